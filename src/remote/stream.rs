//! From a chat-completion event stream to the text a [`Completion`] holds: the prefix a
//! reply repeated is removed, stop strings are enforced here whatever the server did with
//! them, control characters (terminal escapes) are dropped, and the cancel flag is checked
//! between events (returning drops the connection, which tells the server to stop).
//!
//! [`Completion`]: crate::core::model::Completion

use std::io::{self, BufRead};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::core::model::StopReason;
use crate::core::repetition::ends_in_loop;
use crate::llm::engine::emit_settled_text;
use crate::remote::prefix::PrefixStripper;
use crate::remote::sse::{Decoded, SseReader, Usage, decode};

/// Why a stream did not give a whole answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamError {
    /// The connection ended before the answer did.
    Gone,
    /// No byte arrived within the read timeout.
    Timeout,
    /// An event that is not a chat-completion chunk.
    Malformed(String),
    /// The server reported a failure (its message).
    Failed(String),
    Cancelled,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StreamOutput {
    pub text: String,
    pub stop_reason: StopReason,
    pub usage: Usage,
    /// Chunks that carried text (the token count when the server reports none).
    pub text_chunks: usize,
    pub first_text_at: Option<Duration>,
}

/// What a stream needs besides its bytes.
pub struct StreamSpec<'a> {
    pub prefix: &'a str,
    pub stops: &'a [String],
    pub cancel: &'a AtomicBool,
    pub started: Instant,
}

/// Reads events until `[DONE]`, a stop string, the end of the stream or an error.
pub fn read_stream<R: BufRead>(
    reader: R,
    spec: &StreamSpec<'_>,
    on_text: &mut dyn FnMut(&str),
) -> Result<StreamOutput, StreamError> {
    let mut events = SseReader::new(reader);
    let mut stripper = PrefixStripper::new(spec.prefix);
    let mut out = StreamOutput {
        text: String::new(),
        stop_reason: StopReason::EndOfText,
        usage: Usage::default(),
        text_chunks: 0,
        first_text_at: None,
    };
    let mut emitted = 0usize;
    let mut finish_reason: Option<String> = None;
    let mut done = false;
    while !done {
        if spec.cancel.load(Ordering::Relaxed) {
            return Err(StreamError::Cancelled);
        }
        let Some(event) = events.next_event().map_err(classify_io)? else {
            break;
        };
        match decode(&event).map_err(StreamError::Malformed)? {
            Decoded::Done => done = true,
            Decoded::Error(message) => return Err(StreamError::Failed(message)),
            Decoded::Chunk {
                content,
                finish_reason: reason,
                usage,
            } => {
                merge_usage(&mut out.usage, usage);
                finish_reason = reason.or(finish_reason);
                if content.is_empty() {
                    continue;
                }
                out.text_chunks += 1;
                out.first_text_at
                    .get_or_insert_with(|| spec.started.elapsed());
                out.text.push_str(&stripper.push(&printable(&content)));
                if emit_settled_text(&mut out.text, &mut emitted, spec.stops, on_text) {
                    out.stop_reason = StopReason::StopString;
                    return Ok(out);
                }
                if ends_in_loop(&out.text) {
                    if out.text.len() > emitted {
                        on_text(&out.text[emitted..]);
                    }
                    out.stop_reason = StopReason::Repetition;
                    return Ok(out);
                }
            }
        }
    }
    if cancelled(spec) {
        return Err(StreamError::Cancelled);
    }
    // A stream may end without `[DONE]` once the last chunk said why it finished.
    if !done && finish_reason.is_none() {
        return Err(StreamError::Gone);
    }
    out.text.push_str(&stripper.finish());
    if emit_settled_text(&mut out.text, &mut emitted, spec.stops, on_text) {
        out.stop_reason = StopReason::StopString;
    } else {
        if out.text.len() > emitted {
            on_text(&out.text[emitted..]);
        }
        if finish_reason.as_deref() == Some("length") {
            out.stop_reason = StopReason::MaxTokens;
        }
    }
    Ok(out)
}

fn cancelled(spec: &StreamSpec<'_>) -> bool {
    spec.cancel.load(Ordering::Relaxed)
}

/// Later reports win: servers send usage once, in the last chunk.
fn merge_usage(into: &mut Usage, from: Usage) {
    into.prompt_tokens = from.prompt_tokens.or(into.prompt_tokens);
    into.cached_tokens = from.cached_tokens.or(into.cached_tokens);
    into.completion_tokens = from.completion_tokens.or(into.completion_tokens);
}

/// Drops control characters but newlines and tabs: a reply is shown in the terminal, and a
/// server must not be able to send escape sequences to it.
pub fn printable(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect()
}

/// A failed read: a timeout, a line too long to be an event, or a lost connection.
fn classify_io(error: io::Error) -> StreamError {
    match error.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => return StreamError::Timeout,
        io::ErrorKind::InvalidData => return StreamError::Malformed(error.to_string()),
        _ => {}
    }
    match ureq::Error::from(error) {
        ureq::Error::Timeout(_) => StreamError::Timeout,
        _ => StreamError::Gone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        stream: &str,
        prefix: &str,
        stops: &[&str],
    ) -> (Result<StreamOutput, StreamError>, String) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let cancel = AtomicBool::new(false);
        let spec = StreamSpec {
            prefix,
            stops: &stops,
            cancel: &cancel,
            started: Instant::now(),
        };
        let mut streamed = String::new();
        let result = read_stream(stream.as_bytes(), &spec, &mut |t| streamed.push_str(t));
        (result, streamed)
    }

    fn chunk(content: &str, finish: Option<&str>) -> String {
        let value = serde_json::json!({
            "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}]
        });
        format!("data: {value}\n\n")
    }

    #[test]
    fn stops_at_a_stop_string_the_server_ignored() {
        let stream = [chunk("1 FROM t\n`", None), chunk("``\nThis query", None)].concat();
        let (result, streamed) = run(&stream, "", &["```"]);
        let out = result.unwrap();
        assert_eq!(out.text, "1 FROM t\n");
        assert_eq!(streamed, "1 FROM t\n");
        assert_eq!(out.stop_reason, StopReason::StopString);
    }

    #[test]
    fn length_finish_is_max_tokens() {
        let stream = [
            chunk("a", None),
            chunk("b", Some("length")),
            "data: [DONE]\n\n".into(),
        ]
        .concat();
        let out = run(&stream, "", &[]).0.unwrap();
        assert_eq!(
            (out.text.as_str(), out.stop_reason),
            ("ab", StopReason::MaxTokens)
        );
    }

    #[test]
    fn a_reply_caught_in_a_loop_is_cut_off() {
        let mut stream = chunk("SELECT name FROM t WHERE city = 'Lyon'", None);
        for _ in 0..20 {
            stream.push_str(&chunk(" OR city = 'Paris'", None));
        }
        let (result, streamed) = run(&stream, "", &[]);
        let out = result.unwrap();
        assert_eq!(out.stop_reason, StopReason::Repetition);
        assert_eq!(streamed, out.text);
        assert!(out.text.matches("Paris").count() < 20, "{}", out.text);
    }

    #[test]
    fn drops_terminal_escapes() {
        let stream = [chunk("a\u{1b}[2Jb\tc\n", Some("stop"))].concat();
        assert_eq!(run(&stream, "", &[]).0.unwrap().text, "a[2Jb\tc\n");
    }

    #[test]
    fn a_cut_stream_is_gone_and_a_cancelled_one_cancelled() {
        let (result, streamed) = run(&chunk("SELECT", None), "", &[]);
        assert_eq!(result, Err(StreamError::Gone));
        assert_eq!(streamed, "SELECT");
        let cancel = AtomicBool::new(true);
        let spec = StreamSpec {
            prefix: "",
            stops: &[],
            cancel: &cancel,
            started: Instant::now(),
        };
        let result = read_stream(chunk("x", None).as_bytes(), &spec, &mut |_| {});
        assert_eq!(result, Err(StreamError::Cancelled));
    }
}
