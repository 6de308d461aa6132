//! Server-sent events as OpenAI-compatible servers stream them, and the chat-completion
//! chunks inside them.
//!
//! The reader follows the SSE rules that matter here: `field: value` lines, a blank line
//! ends an event, several `data` lines join with `\n`, lines starting with `:` are comments,
//! and an event cut off by the end of the stream is dropped. One non-standard field is
//! kept: llama-server reports a failure mid-stream as an `error: {json}` line, which
//! becomes an event of type `error`. A line longer than [`MAX_LINE_BYTES`] is refused so a
//! broken or hostile server cannot grow memory without bound.

use std::io::{self, BufRead, Read};

use serde_json::Value;

/// The longest line accepted; a chunk carries a few tokens, so 1 MiB is generous.
pub const MAX_LINE_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field (or `error` for llama-server's `error:` line); `None` is a message.
    pub event: Option<String>,
    pub data: String,
}

pub struct SseReader<R> {
    reader: R,
    line: Vec<u8>,
}

impl<R: BufRead> SseReader<R> {
    pub fn new(reader: R) -> Self {
        Self {
            reader,
            line: Vec::new(),
        }
    }

    /// The next complete event; `Ok(None)` when the stream ended (a half event is dropped).
    pub fn next_event(&mut self) -> io::Result<Option<SseEvent>> {
        let mut event = SseEvent::default();
        let mut has_data = false;
        loop {
            self.line.clear();
            let read = (&mut self.reader)
                .take(MAX_LINE_BYTES + 1)
                .read_until(b'\n', &mut self.line)?;
            if read == 0 {
                return Ok(None);
            }
            if self.line.len() as u64 > MAX_LINE_BYTES {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("a line longer than {MAX_LINE_BYTES} bytes"),
                ));
            }
            let line = String::from_utf8_lossy(&self.line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if has_data {
                    return Ok(Some(event));
                }
                event.event = None;
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                None => (line, ""),
            };
            match field {
                "data" | "error" => {
                    if has_data {
                        event.data.push('\n');
                    }
                    event.data.push_str(value);
                    has_data = true;
                    if field == "error" {
                        event.event = Some("error".into());
                    }
                }
                "event" => event.event = Some(value.to_string()),
                _ => {}
            }
        }
    }
}

/// Token counts a server reported (OpenAI `usage`, or llama-server's `timings`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub prompt_tokens: Option<usize>,
    pub cached_tokens: Option<usize>,
    pub completion_tokens: Option<usize>,
}

/// What one event said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    Chunk {
        content: String,
        finish_reason: Option<String>,
        usage: Usage,
    },
    /// `data: [DONE]`: the answer is complete.
    Done,
    /// The server reported a failure (its message, as sent).
    Error(String),
}

/// Decodes one event; `Err` says why it is not a chat-completion chunk.
pub fn decode(event: &SseEvent) -> Result<Decoded, String> {
    let data = event.data.trim();
    if data == "[DONE]" {
        return Ok(Decoded::Done);
    }
    let value: Value = serde_json::from_str(data).map_err(|e| format!("not JSON: {e}"))?;
    if event.event.as_deref() == Some("error") {
        return Ok(Decoded::Error(error_message(&value)));
    }
    if let Some(error) = value.get("error") {
        return Ok(Decoded::Error(error_message(error)));
    }
    // vLLM's older error shape: the ErrorResponse itself.
    if value.get("object").and_then(Value::as_str) == Some("error") {
        return Ok(Decoded::Error(error_message(&value)));
    }
    let choices = value
        .get("choices")
        .and_then(Value::as_array)
        .ok_or("no \"choices\" array")?;
    let mut content = String::new();
    let mut finish_reason = None;
    if let Some(choice) = choices.first() {
        if let Some(text) = choice.pointer("/delta/content").and_then(Value::as_str) {
            content.push_str(text);
        }
        finish_reason = choice
            .get("finish_reason")
            .and_then(Value::as_str)
            .map(str::to_string);
    }
    Ok(Decoded::Chunk {
        content,
        finish_reason,
        usage: usage_of(&value),
    })
}

/// The message of an error object: `{"message": ..}`, `{"error": ..}` or a bare string.
pub fn error_message(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Object(map) => map
            .get("message")
            .or_else(|| map.get("error"))
            .map(error_message)
            .unwrap_or_else(|| value.to_string()),
        other => other.to_string(),
    }
}

fn usage_of(value: &Value) -> Usage {
    let count = |pointer: &str| {
        value
            .pointer(pointer)
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok())
    };
    let mut usage = Usage {
        prompt_tokens: count("/usage/prompt_tokens"),
        cached_tokens: count("/usage/prompt_tokens_details/cached_tokens"),
        completion_tokens: count("/usage/completion_tokens"),
    };
    // llama-server: `prompt_n` counts only the evaluated tokens, `cache_n` the reused ones.
    if let (Some(evaluated), Some(cached)) = (count("/timings/prompt_n"), count("/timings/cache_n"))
    {
        usage.prompt_tokens = usage.prompt_tokens.or(Some(evaluated + cached));
        usage.cached_tokens = usage.cached_tokens.or(Some(cached));
    }
    usage.completion_tokens = usage.completion_tokens.or(count("/timings/predicted_n"));
    usage
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(text: &str) -> Vec<SseEvent> {
        let mut reader = SseReader::new(text.as_bytes());
        let mut found = Vec::new();
        while let Some(event) = reader.next_event().unwrap() {
            found.push(event);
        }
        found
    }

    #[test]
    fn splits_events_joins_data_lines_and_skips_comments() {
        let found = events(": ping\n\ndata: a\ndata: b\r\n\r\nevent: error\ndata: {}\n\ndata: cut");
        assert_eq!(
            found,
            vec![
                SseEvent {
                    event: None,
                    data: "a\nb".into()
                },
                SseEvent {
                    event: Some("error".into()),
                    data: "{}".into()
                },
            ]
        );
    }

    #[test]
    fn llama_server_error_line_is_an_error_event() {
        let found = events("error: {\"code\":500,\"message\":\"boom\"}\n\n");
        assert_eq!(decode(&found[0]), Ok(Decoded::Error("boom".into())));
    }

    #[test]
    fn refuses_an_endless_line() {
        let long = "x".repeat(MAX_LINE_BYTES as usize + 10);
        let mut reader = SseReader::new(long.as_bytes());
        assert!(reader.next_event().is_err());
    }

    #[test]
    fn decodes_usage_from_openai_and_llama_server_shapes() {
        let openai = SseEvent {
            event: None,
            data: r#"{"choices":[],"usage":{"prompt_tokens":90,"completion_tokens":7,"prompt_tokens_details":{"cached_tokens":64}}}"#.into(),
        };
        let Ok(Decoded::Chunk { usage, .. }) = decode(&openai) else {
            panic!("not a chunk")
        };
        assert_eq!(
            usage,
            Usage {
                prompt_tokens: Some(90),
                cached_tokens: Some(64),
                completion_tokens: Some(7)
            }
        );
        let llama = SseEvent {
            event: None,
            data: r#"{"choices":[{"delta":{},"finish_reason":"stop"}],"timings":{"prompt_n":10,"cache_n":80,"predicted_n":5}}"#.into(),
        };
        let Ok(Decoded::Chunk {
            usage,
            finish_reason,
            ..
        }) = decode(&llama)
        else {
            panic!("not a chunk")
        };
        assert_eq!(finish_reason.as_deref(), Some("stop"));
        assert_eq!(usage.prompt_tokens, Some(90));
        assert_eq!(usage.cached_tokens, Some(80));
        assert_eq!(usage.completion_tokens, Some(5));
    }

    #[test]
    fn a_chunk_without_choices_is_malformed() {
        let event = SseEvent {
            event: None,
            data: "{\"id\":1}".into(),
        };
        assert!(decode(&event).is_err());
        let event = SseEvent {
            event: None,
            data: "{\"choices\": [".into(),
        };
        assert!(decode(&event).unwrap_err().starts_with("not JSON"));
    }
}
