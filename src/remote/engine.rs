//! [`RemoteEngine`]: the [`LanguageModel`] interface over HTTP, to any server with the
//! OpenAI chat completions API (llama-server, vLLM, Ollama, ...), streaming.
//!
//! Invariants:
//! - The API key comes from the environment only and goes nowhere but the
//!   `Authorization` header: not into errors, logs or `Debug` output.
//! - Every failure is one [`LlmError`] line naming the server's URL (without any
//!   `user:password@`), and leaves nothing behind: the pipeline's history is the caller's.
//! - The request's system message is sent unchanged, so a server's prompt cache reuses the
//!   schema between questions; only the last user message may gain the folded prefix.

use std::io::{BufReader, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::core::model::{Completion, CompletionRequest, LanguageModel, LlmError, Role, Sampling};
use crate::remote::prefix::fold_instruction;
use crate::remote::sse::error_message;
use crate::remote::stream::{StreamError, StreamSpec, printable, read_stream};

/// The environment variable the API key is read from.
pub const API_KEY_VAR: &str = "NANO_ANALYST_LLM_API_KEY";

/// OpenAI's limit on stop strings; the rest are enforced on the client alone.
const MAX_SERVER_STOPS: usize = 4;

/// Which server is on the other end: what it accepts beyond the OpenAI API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ServerKind {
    /// Only the OpenAI API: the prefix is folded into the prompt, no grammar.
    #[default]
    Openai,
    /// llama.cpp's server: continues the assistant prefix, `cache_prompt`, GBNF grammars.
    LlamaServer,
    /// vLLM: continues the assistant prefix (`continue_final_message`).
    Vllm,
    /// Ollama's /v1 API: the prefix is folded into the prompt.
    Ollama,
}

impl ServerKind {
    fn continues_prefix(self) -> bool {
        matches!(self, ServerKind::LlamaServer | ServerKind::Vllm)
    }
}

#[derive(Clone, PartialEq)]
pub struct RemoteConfig {
    /// The API's base, e.g. `http://gpu-box:8080/v1` (no trailing slash).
    pub url: String,
    /// The model to ask for; `None` takes the first one the server lists.
    pub model: Option<String>,
    pub server: ServerKind,
    pub api_key: Option<String>,
    pub connect_timeout: Duration,
    /// The longest silence allowed while waiting for the answer or between its events.
    pub read_timeout: Duration,
}

impl std::fmt::Debug for RemoteConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteConfig")
            .field("url", &shown_url(&self.url))
            .field("model", &self.model)
            .field("server", &self.server)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .finish()
    }
}

pub struct RemoteEngine {
    config: RemoteConfig,
    agent: ureq::Agent,
    model: String,
    model_id: String,
    cancel: Arc<AtomicBool>,
    grammar_noted: bool,
}

impl RemoteEngine {
    /// Builds the client; asks the server for its model list only when no model is named.
    pub fn connect(config: RemoteConfig) -> Result<Self, LlmError> {
        let agent_config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(config.connect_timeout))
            .timeout_recv_response(Some(config.read_timeout))
            .timeout_per_read(Some(config.read_timeout))
            .build();
        let mut engine = Self {
            agent: ureq::Agent::new_with_config(agent_config),
            model: config.model.clone().unwrap_or_default(),
            model_id: String::new(),
            cancel: Arc::new(AtomicBool::new(false)),
            grammar_noted: false,
            config,
        };
        if engine.model.is_empty() {
            engine.model = engine.first_listed_model()?;
        }
        engine.model_id = format!("remote:{}@{}", engine.model, host_of(&engine.config.url));
        Ok(engine)
    }

    /// Setting the flag stops the running request at the next streamed event.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.cancel)
    }

    fn shown_url(&self) -> String {
        shown_url(&self.config.url)
    }

    fn first_listed_model(&self) -> Result<String, LlmError> {
        let url = format!("{}/models", self.config.url);
        let mut request = self.agent.get(&url);
        if let Some(key) = &self.config.api_key {
            request = request.header("Authorization", format!("Bearer {key}"));
        }
        let response = request.call().map_err(|e| self.request_error(e))?;
        let status = response.status().as_u16();
        let text = read_capped(response.into_body().into_reader(), 1 << 20);
        if status != 200 {
            return Err(self.status_error(status, &text));
        }
        let listed: Option<String> = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.pointer("/data/0/id")?.as_str().map(str::to_string));
        listed.ok_or_else(|| LlmError::Load {
            path: self.shown_url(),
            reason: "the server lists no model at /models; name one with --llm-model NAME".into(),
        })
    }

    /// The JSON body for `request` (see the module doc of `remote::prefix` for the prefix).
    pub fn request_body(&mut self, request: &CompletionRequest) -> Value {
        let server = self.config.server;
        let mut messages: Vec<Value> = request
            .messages
            .iter()
            .map(|m| json!({"role": m.role.as_str(), "content": m.content}))
            .collect();
        let prefix = request.assistant_prefix.as_str();
        let mut max_tokens = request.max_tokens;
        if !prefix.is_empty() && server.continues_prefix() {
            messages.push(json!({"role": "assistant", "content": prefix}));
        } else if !prefix.is_empty() {
            fold_prefix(&mut messages, request, prefix);
            // The reply will likely repeat the prefix: leave room for it.
            max_tokens += estimate_tokens(prefix);
        }
        let mut body = json!({
            "model": self.model,
            "messages": messages,
            "stream": true,
            "stream_options": {"include_usage": true},
            "max_tokens": max_tokens,
        });
        match request.sampling {
            Sampling::Greedy => body["temperature"] = json!(0.0),
            Sampling::Temperature { temperature, seed } => {
                body["temperature"] = json!(temperature);
                body["seed"] = json!(seed);
                if server != ServerKind::Openai {
                    // The local engine samples from the 40 likeliest tokens too.
                    body["top_k"] = json!(40);
                }
            }
        }
        let stops: Vec<&String> = request.stop.iter().take(MAX_SERVER_STOPS).collect();
        if !stops.is_empty() {
            body["stop"] = json!(stops);
        }
        match server {
            ServerKind::LlamaServer => {
                body["cache_prompt"] = json!(true);
                if let Some(grammar) = &request.grammar {
                    body["grammar"] = json!(grammar);
                }
            }
            ServerKind::Vllm if !prefix.is_empty() => {
                body["continue_final_message"] = json!(true);
                body["add_generation_prompt"] = json!(false);
            }
            _ => {}
        }
        if request.grammar.is_some() && server != ServerKind::LlamaServer && !self.grammar_noted {
            self.grammar_noted = true;
            tracing::info!("the grammar is sent to llama-server only; this server runs without it");
        }
        body
    }

    /// A failure before any answer: no connection, a timeout, a connection dropped.
    fn request_error(&self, error: ureq::Error) -> LlmError {
        let url = self.shown_url();
        let seconds = self.config.read_timeout.as_secs();
        let unreachable = |reason: String| LlmError::Unreachable {
            url: url.clone(),
            reason,
        };
        match error {
            ureq::Error::Timeout(ureq::Timeout::Connect | ureq::Timeout::Resolve) => {
                unreachable(format!(
                    "no connection within {} s",
                    self.config.connect_timeout.as_secs()
                ))
            }
            ureq::Error::Timeout(_) => LlmError::ServerTimeout { url, seconds },
            ureq::Error::HostNotFound => unreachable("host not found".into()),
            ureq::Error::Io(io) => match io.kind() {
                std::io::ErrorKind::ConnectionRefused => unreachable("connection refused".into()),
                std::io::ErrorKind::TimedOut => LlmError::ServerTimeout { url, seconds },
                std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::BrokenPipe => LlmError::ServerGone { url },
                _ => unreachable(one_line(&io.to_string())),
            },
            other => unreachable(one_line(&other.to_string())),
        }
    }

    fn status_error(&self, status: u16, body: &str) -> LlmError {
        let said = serde_json::from_str::<Value>(body)
            .ok()
            .map(|v| error_message(v.get("error").unwrap_or(&v)))
            .unwrap_or_else(|| body.to_string());
        let said = one_line(&said);
        let detail = match status {
            401 | 403 => format!("check {API_KEY_VAR}"),
            404 => "check --llm-url (it usually ends in /v1) and --llm-model".into(),
            429 => "the server is busy or rate-limited; wait and ask again".into(),
            _ if said.is_empty() => "see the server's log".into(),
            _ => said,
        };
        LlmError::ServerStatus {
            url: self.shown_url(),
            status,
            reason: status_name(status).into(),
            detail,
        }
    }

    fn stream_error(&self, error: StreamError) -> LlmError {
        let url = self.shown_url();
        match error {
            StreamError::Gone => LlmError::ServerGone { url },
            StreamError::Timeout => LlmError::ServerTimeout {
                url,
                seconds: self.config.read_timeout.as_secs(),
            },
            StreamError::Malformed(reason) => LlmError::MalformedStream {
                url,
                reason: one_line(&reason),
            },
            StreamError::Failed(message) => LlmError::ServerFailed {
                url,
                message: one_line(&message),
            },
            StreamError::Cancelled => LlmError::Cancelled,
        }
    }
}

impl LanguageModel for RemoteEngine {
    fn complete(
        &mut self,
        request: &CompletionRequest,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Completion, LlmError> {
        let started = Instant::now();
        self.cancel.store(false, Ordering::SeqCst);
        let body = self.request_body(request).to_string();
        let mut http = self
            .agent
            .post(format!("{}/chat/completions", self.config.url))
            .header("Content-Type", "application/json")
            .header("Accept", "text/event-stream");
        if let Some(key) = &self.config.api_key {
            http = http.header("Authorization", format!("Bearer {key}"));
        }
        let response = http.send(body).map_err(|e| self.request_error(e))?;
        let status = response.status().as_u16();
        let reader = response.into_body().into_reader();
        if status != 200 {
            return Err(self.status_error(status, &read_capped(reader, 64 * 1024)));
        }
        let spec = StreamSpec {
            prefix: &request.assistant_prefix,
            stops: &request.stop,
            cancel: &self.cancel,
            started,
        };
        let out = read_stream(BufReader::new(reader), &spec, on_text)
            .map_err(|e| self.stream_error(e))?;
        let prompt_estimate = || {
            request
                .messages
                .iter()
                .map(|m| estimate_tokens(&m.content))
                .sum()
        };
        Ok(Completion {
            prompt_tokens: out.usage.prompt_tokens.unwrap_or_else(prompt_estimate),
            cached_prompt_tokens: out.usage.cached_tokens.unwrap_or(0),
            generated_tokens: out.usage.completion_tokens.unwrap_or(out.text_chunks),
            time_to_first_token: out.first_text_at.unwrap_or_else(|| started.elapsed()),
            elapsed: started.elapsed(),
            stop_reason: out.stop_reason,
            text: out.text,
            // Servers stream log-probabilities only on request, and not all of them can.
            mean_logprob: None,
        })
    }

    fn model_id(&self) -> String {
        self.model_id.clone()
    }

    /// An estimate, 3.5 characters a token (about right for English and SQL with BPE
    /// vocabularies): the server's tokenizer is a round trip away, and the count only
    /// budgets the prompt.
    fn count_tokens(&self, text: &str) -> usize {
        estimate_tokens(text)
    }
}

/// `text`'s tokens at 3.5 characters each, rounded up.
pub fn estimate_tokens(text: &str) -> usize {
    (text.chars().count() * 2).div_ceil(7)
}

/// Appends the prefix instruction to the last user message (or adds one).
fn fold_prefix(messages: &mut Vec<Value>, request: &CompletionRequest, prefix: &str) {
    let instruction = fold_instruction(prefix);
    match request.messages.last() {
        Some(last) if last.role == Role::User => {
            if let Some(message) = messages.last_mut() {
                message["content"] = json!(format!("{}{instruction}", last.content));
            }
        }
        _ => messages.push(json!({"role": "user", "content": instruction.trim_start()})),
    }
}

/// The URL without a `user:password@` part.
pub fn shown_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if scheme.is_empty() {
        format!("{host}{path}")
    } else {
        format!("{scheme}://{host}{path}")
    }
}

/// `gpu-box:8080` for `http://user@gpu-box:8080/v1`.
fn host_of(url: &str) -> String {
    let shown = shown_url(url);
    let rest = shown.split_once("://").map_or(shown.as_str(), |(_, r)| r);
    rest.split('/').next().unwrap_or(rest).to_string()
}

/// A server's text as one printable line of at most 200 characters.
fn one_line(text: &str) -> String {
    let flat: String = printable(&text.replace(['\n', '\r', '\t'], " "));
    let flat = flat.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > 200 {
        let cut: String = flat.chars().take(200).collect();
        format!("{cut}...")
    } else {
        flat
    }
}

/// At most `limit` bytes of an error body, as text (a failed read gives what came).
fn read_capped(reader: impl Read, limit: u64) -> String {
    let mut bytes = Vec::new();
    let _ = reader.take(limit).read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

fn status_name(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::ChatMessage;

    fn engine(server: ServerKind) -> RemoteEngine {
        RemoteEngine::connect(RemoteConfig {
            url: "http://user:secret@gpu-box:8080/v1".into(),
            model: Some("qwen".into()),
            server,
            api_key: Some("sk-test".into()),
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
        })
        .unwrap()
    }

    fn request() -> CompletionRequest {
        CompletionRequest {
            messages: vec![
                ChatMessage::new(Role::System, "schema"),
                ChatMessage::new(Role::User, "How many?"),
            ],
            assistant_prefix: "```sql\nSELECT ".into(),
            max_tokens: 100,
            stop: vec!["```".into()],
            sampling: Sampling::Temperature {
                temperature: 0.7,
                seed: 3,
            },
            grammar: Some("root ::= \"x\"".into()),
        }
    }

    #[test]
    fn llama_server_continues_the_prefix_with_cache_and_grammar() {
        let body = engine(ServerKind::LlamaServer).request_body(&request());
        assert_eq!(body["messages"][2]["role"], "assistant");
        assert_eq!(body["messages"][2]["content"], "```sql\nSELECT ");
        assert_eq!(body["messages"][1]["content"], "How many?");
        assert_eq!(body["cache_prompt"], true);
        assert_eq!(body["grammar"], "root ::= \"x\"");
        assert_eq!(body["seed"], 3);
        assert_eq!(body["stop"], json!(["```"]));
        assert_eq!(body["max_tokens"], 100);
    }

    #[test]
    fn vllm_continues_the_final_message() {
        let body = engine(ServerKind::Vllm).request_body(&request());
        assert_eq!(body["continue_final_message"], true);
        assert_eq!(body["add_generation_prompt"], false);
        assert!(body.get("grammar").is_none());
    }

    #[test]
    fn other_servers_get_the_prefix_folded_and_the_system_message_unchanged() {
        let body = engine(ServerKind::Openai).request_body(&request());
        let messages = body["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0]["content"], "schema");
        assert!(
            messages[1]["content"]
                .as_str()
                .unwrap()
                .ends_with("continue it:\n```sql\nSELECT ")
        );
        assert!(body.get("top_k").is_none() && body.get("cache_prompt").is_none());
        assert!(body["max_tokens"].as_u64().unwrap() > 100);
    }

    #[test]
    fn the_key_and_password_stay_out_of_ids_errors_and_debug() {
        let engine = engine(ServerKind::Openai);
        assert_eq!(engine.model_id(), "remote:qwen@gpu-box:8080");
        let shown = format!(
            "{:?} {}",
            engine.config,
            engine.status_error(401, "{\"error\":{\"message\":\"bad key sk-test\"}}")
        );
        assert!(
            !shown.contains("secret") && !shown.contains("sk-test"),
            "{shown}"
        );
        assert!(shown.contains("answered 401 Unauthorized: check NANO_ANALYST_LLM_API_KEY"));
    }

    #[test]
    fn a_server_message_becomes_one_short_printable_line() {
        let engine = engine(ServerKind::Openai);
        let long = format!(
            "{{\"error\":{{\"message\":\"bad\\n\\u001b[31mthing {}\"}}}}",
            "x".repeat(300)
        );
        let error = engine.status_error(500, &long).to_string();
        assert!(
            !error.contains('\n') && !error.contains('\u{1b}'),
            "{error}"
        );
        assert!(
            error.contains("500 Internal Server Error: bad [31mthing x"),
            "{error}"
        );
        assert!(error.len() < 320, "{error}");
    }
}
