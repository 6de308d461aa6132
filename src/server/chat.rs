//! `POST /v1/chat/completions` and `GET /v1/models`: the OpenAI chat API on the loaded
//! model, so `--llm-url` (and any OpenAI client) can use this server.
//!
//! The messages go through the model's chat template exactly as the in-process engine
//! renders them (it is the same engine), and a trailing assistant message is a prefix the
//! reply continues (as llama-server and vLLM's `continue_final_message` do): the reply
//! holds only the continuation. No `temperature`, or 0, is greedy decoding. A `grammar`
//! (GBNF, llama-server's field) constrains the reply. Fields this server does not use
//! (`top_p`, `cache_prompt`, ...) are accepted and ignored.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::core::model::{ChatMessage, Completion, CompletionRequest, Role, Sampling, StopReason};
use crate::server::AppState;
use crate::server::api::{error_event, event_stream, final_reply, submit};
use crate::server::http::{ApiError, json_body};
use crate::server::worker::{JobKind, Reply};

const DEFAULT_MAX_TOKENS: usize = 512;
const MAX_TOKENS: usize = 4096;
const MAX_STOPS: usize = 16;

#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    pub messages: Vec<MessageIn>,
    #[serde(default)]
    pub stream: bool,
    pub stream_options: Option<StreamOptions>,
    pub max_tokens: Option<usize>,
    pub max_completion_tokens: Option<usize>,
    pub temperature: Option<f32>,
    pub seed: Option<u32>,
    pub stop: Option<Stop>,
    pub grammar: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

#[derive(Debug, Deserialize)]
pub struct MessageIn {
    pub role: String,
    /// A string, or a list of `{"type": "text", "text": ...}` parts.
    pub content: Value,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

/// The request as the engine takes it; a 400 says what is not supported.
pub fn completion_request(request: ChatRequest) -> Result<CompletionRequest, ApiError> {
    let mut messages = Vec::with_capacity(request.messages.len());
    for message in request.messages {
        let role = match message.role.as_str() {
            "system" | "developer" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => {
                return Err(ApiError::bad_request(format!(
                    "message role '{other}' is not supported (system, user, assistant)"
                )));
            }
        };
        messages.push(ChatMessage::new(role, text_of(&message.content)?));
    }
    let assistant_prefix = match messages.last() {
        Some(last) if last.role == Role::Assistant => {
            messages.pop().map(|m| m.content).unwrap_or_default()
        }
        _ => String::new(),
    };
    if messages.is_empty() {
        return Err(ApiError::bad_request("messages is empty"));
    }
    let max_tokens = request
        .max_completion_tokens
        .or(request.max_tokens)
        .unwrap_or(DEFAULT_MAX_TOKENS)
        .clamp(1, MAX_TOKENS);
    let stop = match request.stop {
        None => Vec::new(),
        Some(Stop::One(stop)) => vec![stop],
        Some(Stop::Many(stops)) => stops,
    };
    if stop.len() > MAX_STOPS {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_STOPS} stop strings"
        )));
    }
    let sampling = match request.temperature {
        Some(t) if t.is_finite() && t > 0.0 => Sampling::Temperature {
            temperature: t,
            seed: request.seed.unwrap_or(0),
        },
        Some(t) if !t.is_finite() || t < 0.0 => {
            return Err(ApiError::bad_request("temperature must be 0 or more"));
        }
        _ => Sampling::Greedy,
    };
    Ok(CompletionRequest {
        messages,
        assistant_prefix,
        max_tokens,
        stop: stop.into_iter().filter(|s| !s.is_empty()).collect(),
        sampling,
        grammar: request.grammar.filter(|g| !g.trim().is_empty()),
    })
}

fn text_of(content: &Value) -> Result<String, ApiError> {
    match content {
        Value::String(text) => Ok(text.clone()),
        Value::Null => Ok(String::new()),
        Value::Array(parts) => parts
            .iter()
            .map(|part| match part.get("text").and_then(Value::as_str) {
                Some(text) if part.get("type").and_then(Value::as_str) == Some("text") => Ok(text),
                _ => Err(ApiError::bad_request(
                    "only text message parts are supported",
                )),
            })
            .collect(),
        _ => Err(ApiError::bad_request(
            "a message's content must be a string or a list of text parts",
        )),
    }
}

pub async fn models(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({
        "object": "list",
        "data": [{"id": state.worker.model_id, "object": "model", "owned_by": "nano-analyst"}],
    }))
}

pub async fn completions(
    State(state): State<Arc<AppState>>,
    body: Result<Json<ChatRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let request = json_body(body)?;
    let stream = request.stream;
    let include_usage = request
        .stream_options
        .as_ref()
        .is_some_and(|o| o.include_usage);
    let completion = completion_request(request)?;
    let (ticket, replies) = submit(&state, JobKind::Chat(completion))?;
    let meta = Meta {
        id: format!("chatcmpl-{}", unix_nanos()),
        created: unix_nanos() / 1_000_000_000,
        model: state.worker.model_id.clone(),
    };
    if stream {
        let to_events = move |reply| meta.chunk_events(reply, include_usage);
        return Ok(event_stream(replies, ticket, to_events).into_response());
    }
    match final_reply(replies, &ticket, state.config.request_timeout).await? {
        Reply::Chatted(completion) => Ok(Json(meta.whole(&completion)).into_response()),
        other => Err(ApiError::internal(format!("unexpected reply {other:?}"))),
    }
}

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// What every chunk of one completion repeats.
struct Meta {
    id: String,
    created: u128,
    model: String,
}

impl Meta {
    fn whole(&self, completion: &Completion) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": completion.text},
                "finish_reason": finish_reason(completion.stop_reason),
            }],
            "usage": usage(completion),
        })
    }

    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Event {
        let chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        });
        Event::default().data(chunk.to_string())
    }

    /// OpenAI's stream: content deltas, a last chunk with the finish reason, the usage
    /// when asked for, then `[DONE]`.
    fn chunk_events(&self, reply: Reply, include_usage: bool) -> (Vec<Event>, bool) {
        match reply {
            Reply::ChatText(text) => (vec![self.chunk(json!({"content": text}), None)], false),
            Reply::Chatted(completion) => {
                let reason = finish_reason(completion.stop_reason);
                let mut events = vec![self.chunk(json!({}), Some(reason))];
                if include_usage {
                    let chunk = json!({
                        "id": self.id,
                        "object": "chat.completion.chunk",
                        "created": self.created,
                        "model": self.model,
                        "choices": [],
                        "usage": usage(&completion),
                    });
                    events.push(Event::default().data(chunk.to_string()));
                }
                events.push(Event::default().data("[DONE]"));
                (events, true)
            }
            Reply::Failed(error) => (vec![error_event(&ApiError::from(error))], true),
            _ => (Vec::new(), false),
        }
    }
}

fn finish_reason(reason: StopReason) -> &'static str {
    match reason {
        StopReason::EndOfText | StopReason::StopString => "stop",
        StopReason::MaxTokens | StopReason::Repetition => "length",
    }
}

fn usage(completion: &Completion) -> Value {
    json!({
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.generated_tokens,
        "total_tokens": completion.prompt_tokens + completion.generated_tokens,
        "prompt_tokens_details": {"cached_tokens": completion.cached_prompt_tokens},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: Value) -> Result<CompletionRequest, ApiError> {
        completion_request(serde_json::from_value(json).unwrap())
    }

    #[test]
    fn a_trailing_assistant_message_becomes_the_prefix() {
        let request = request(json!({
            "model": "any",
            "messages": [
                {"role": "system", "content": "schema"},
                {"role": "user", "content": [{"type": "text", "text": "how many?"}]},
                {"role": "assistant", "content": "```sql\nSELECT "},
            ],
            "temperature": 0.0,
            "stop": "```",
            "max_tokens": 100000,
            "cache_prompt": true,
        }))
        .unwrap();
        assert_eq!(request.assistant_prefix, "```sql\nSELECT ");
        assert_eq!(request.messages.len(), 2);
        assert_eq!(request.messages[1].content, "how many?");
        assert_eq!(request.sampling, Sampling::Greedy);
        assert_eq!(request.stop, vec!["```".to_string()]);
        assert_eq!(request.max_tokens, MAX_TOKENS);
    }

    #[test]
    fn unsupported_roles_and_contents_are_refused_with_a_reason() {
        let tool = request(json!({"messages": [{"role": "tool", "content": "x"}]}));
        assert!(
            tool.unwrap_err()
                .message
                .contains("'tool' is not supported")
        );
        let image =
            request(json!({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}));
        assert!(image.unwrap_err().message.contains("text message parts"));
        let only_prefix = request(json!({"messages": [{"role": "assistant", "content": "x"}]}));
        assert!(only_prefix.unwrap_err().message.contains("empty"));
    }
}
