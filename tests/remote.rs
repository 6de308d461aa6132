//! The remote engine against a fake OpenAI-compatible server on 127.0.0.1: recorded
//! llama-server, vLLM and Ollama streams (`tests/fixtures/remote/`), failures mid-stream,
//! HTTP errors, timeouts and cancel; and `ask --llm-url` end to end. No network, no model.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nano_analyst::core::model::{
    ChatMessage, CompletionRequest, LanguageModel, LlmError, Role, Sampling, StopReason,
};
use nano_analyst::remote::{RemoteConfig, RemoteEngine, ServerKind};

use crate::support::{binary, chinook_path};

/// What the fake server answers one request with.
#[derive(Clone)]
enum Reply {
    /// An event stream ended by closing the connection.
    Sse(String),
    /// An event stream in chunked encoding, as llama-server sends it.
    Chunked(String),
    /// A chunked stream whose connection drops before the final empty chunk.
    ChunkedCut(String),
    /// Events one at a time with a pause between them.
    Slow(Vec<String>, Duration),
    /// Headers never come: the connection stays silent this long.
    Silent(Duration),
    Status(u16, String),
    Json(String),
}

#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: String,
    body: String,
}

struct FakeServer {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeServer {
    /// Serves every request on a thread; `reply` picks the answer from what was asked.
    fn start(reply: impl Fn(&Seen) -> Reply + Send + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let Some(request) = read_request(&stream) else {
                    continue;
                };
                log.lock().unwrap().push(request.clone());
                respond(stream, reply(&request));
            }
        });
        Self { url, seen }
    }

    fn always(reply: Reply) -> Self {
        Self::start(move |_| reply.clone())
    }

    fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn read_request(stream: &TcpStream) -> Option<Seen> {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let mut headers = String::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        if line.trim().is_empty() {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().ok()?;
        }
        headers.push_str(&line);
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    Some(Seen {
        path: request_line.split_whitespace().nth(1)?.to_string(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn respond(mut stream: TcpStream, reply: Reply) {
    let sse = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n";
    let _ = match reply {
        Reply::Sse(body) => write!(stream, "{sse}Connection: close\r\n\r\n{body}"),
        Reply::Chunked(body) | Reply::ChunkedCut(body) if body.is_empty() => Ok(()),
        Reply::Chunked(body) => write_chunked(&mut stream, sse, &body, true),
        Reply::ChunkedCut(body) => write_chunked(&mut stream, sse, &body, false),
        Reply::Slow(events, pause) => {
            let _ = write!(stream, "{sse}Connection: close\r\n\r\n");
            for event in events {
                if write!(stream, "{event}")
                    .and_then(|_| stream.flush())
                    .is_err()
                {
                    break;
                }
                thread::sleep(pause);
            }
            Ok(())
        }
        Reply::Silent(pause) => {
            thread::sleep(pause);
            Ok(())
        }
        Reply::Status(status, body) => write!(
            stream,
            "HTTP/1.1 {status} Error\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
        Reply::Json(body) => write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    };
    let _ = stream.flush();
}

/// One HTTP chunk per event; `finish` writes the closing empty chunk.
fn write_chunked(
    stream: &mut TcpStream,
    head: &str,
    body: &str,
    finish: bool,
) -> std::io::Result<()> {
    write!(stream, "{head}Transfer-Encoding: chunked\r\n\r\n")?;
    for event in body.split_inclusive("\n\n") {
        write!(stream, "{:x}\r\n{event}\r\n", event.len())?;
        stream.flush()?;
    }
    if finish {
        write!(stream, "0\r\n\r\n")?;
    }
    Ok(())
}

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/remote")
        .join(name);
    std::fs::read_to_string(&path).unwrap()
}

fn config(url: &str, server: ServerKind) -> RemoteConfig {
    RemoteConfig {
        url: url.to_string(),
        model: Some("test-model".into()),
        server,
        api_key: Some("sk-fake".into()),
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(1),
    }
}

fn sql_request() -> CompletionRequest {
    CompletionRequest {
        messages: vec![
            ChatMessage::new(
                Role::System,
                "CREATE TABLE Album (AlbumId INTEGER, Title TEXT);",
            ),
            ChatMessage::new(Role::User, "How many albums are there?"),
        ],
        assistant_prefix: "```sql\nSELECT ".into(),
        max_tokens: 64,
        stop: vec!["```".into()],
        sampling: Sampling::Greedy,
        grammar: None,
    }
}

/// Streams `reply` through a remote engine; the text passed to `on_text`, and the result.
fn ask(
    reply: Reply,
    server: ServerKind,
) -> (
    Result<nano_analyst::core::model::Completion, LlmError>,
    String,
    FakeServer,
) {
    let fake = FakeServer::always(reply);
    let mut engine = RemoteEngine::connect(config(&fake.url, server)).unwrap();
    let mut streamed = String::new();
    let result = engine.complete(&sql_request(), &mut |text| streamed.push_str(text));
    (result, streamed, fake)
}

#[test]
fn llama_server_stream_continues_the_prefix_with_its_cache_counts() {
    let (result, streamed, fake) = ask(
        Reply::Chunked(fixture("llama-server.sse")),
        ServerKind::LlamaServer,
    );
    let completion = result.unwrap();
    assert_eq!(completion.text, "count(*) FROM Album");
    assert_eq!(streamed, completion.text);
    assert_eq!(completion.stop_reason, StopReason::EndOfText);
    assert_eq!(completion.prompt_tokens, 412);
    assert_eq!(completion.cached_prompt_tokens, 400);
    assert_eq!(completion.generated_tokens, 6);
    let seen = &fake.requests()[0];
    assert_eq!(seen.path, "/v1/chat/completions");
    assert!(seen.headers.contains("Bearer sk-fake"), "{}", seen.headers);
    let body: serde_json::Value = serde_json::from_str(&seen.body).unwrap();
    assert_eq!(body["cache_prompt"], true);
    assert_eq!(body["stream"], true);
    assert_eq!(body["temperature"], 0.0);
    assert_eq!(body["messages"][2]["content"], "```sql\nSELECT ");
}

#[test]
fn vllm_stream_with_a_usage_chunk() {
    let (result, streamed, fake) = ask(Reply::Sse(fixture("vllm.sse")), ServerKind::Vllm);
    let completion = result.unwrap();
    assert_eq!(completion.text, "count(*) FROM Album");
    assert_eq!(streamed, completion.text);
    assert_eq!(completion.prompt_tokens, 415);
    assert_eq!(completion.cached_prompt_tokens, 384);
    let body: serde_json::Value = serde_json::from_str(&fake.requests()[0].body).unwrap();
    assert_eq!(body["continue_final_message"], true);
}

#[test]
fn ollama_stream_repeating_the_prefix_and_ignoring_the_stop_string() {
    let (result, streamed, fake) = ask(Reply::Sse(fixture("ollama.sse")), ServerKind::Ollama);
    let completion = result.unwrap();
    assert_eq!(completion.text, "count(*) FROM Album\n");
    assert_eq!(
        streamed, completion.text,
        "streamed in order, prefix and fence held back"
    );
    assert_eq!(completion.stop_reason, StopReason::StopString);
    let body: serde_json::Value = serde_json::from_str(&fake.requests()[0].body).unwrap();
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(
        messages.len(),
        2,
        "the prefix is folded, not a third message"
    );
    assert!(
        messages[1]["content"]
            .as_str()
            .unwrap()
            .contains("Begin your reply")
    );
}

#[test]
fn an_error_mid_stream_is_one_line_from_each_server() {
    for (file, server, says) in [
        (
            "llama-server-error.sse",
            ServerKind::LlamaServer,
            "Context size has been exceeded.",
        ),
        (
            "vllm-error.sse",
            ServerKind::Vllm,
            "The engine loop has stopped",
        ),
        (
            "ollama-error.sse",
            ServerKind::Ollama,
            "model runner has unexpectedly stopped",
        ),
    ] {
        let (result, _, fake) = ask(Reply::Sse(fixture(file)), server);
        let error = result.unwrap_err();
        assert!(
            matches!(error, LlmError::ServerFailed { .. }),
            "{file}: {error:?}"
        );
        assert_eq!(
            error.to_string(),
            format!("the model server at {} failed mid-answer: {says}", fake.url)
        );
    }
}

#[test]
fn a_malformed_event_says_so() {
    let (result, _, _) = ask(
        Reply::Sse(fixture("malformed.sse")),
        ServerKind::LlamaServer,
    );
    let error = result.unwrap_err().to_string();
    assert!(
        error.contains("sent something that is not a chat completion (not JSON"),
        "{error}"
    );
    assert_eq!(error.lines().count(), 1);
}

#[test]
fn a_server_that_goes_away_mid_answer() {
    for reply in [
        Reply::Sse(fixture("cut-off.sse")),
        Reply::ChunkedCut(fixture("cut-off.sse")),
    ] {
        let (result, streamed, fake) = ask(reply, ServerKind::LlamaServer);
        assert_eq!(streamed, "count(*) FR", "what came is shown");
        assert_eq!(
            result.unwrap_err().to_string(),
            format!(
                "the model server at {} went away mid-answer; nothing was lost, ask again",
                fake.url
            )
        );
    }
}

#[test]
fn http_errors_are_one_line_each() {
    for (status, body, expected) in [
        (
            401,
            r#"{"error":{"message":"Invalid API Key","type":"authentication_error"}}"#,
            "answered 401 Unauthorized: check NANO_ANALYST_LLM_API_KEY",
        ),
        (
            429,
            r#"{"error":{"message":"slow down"}}"#,
            "answered 429 Too Many Requests: the server is busy or rate-limited; wait and ask again",
        ),
        (
            500,
            r#"{"error":{"code":500,"message":"CUDA error: out of memory\nat ggml.c:42","type":"server_error"}}"#,
            "answered 500 Internal Server Error: CUDA error: out of memory at ggml.c:42",
        ),
    ] {
        let (result, _, fake) = ask(Reply::Status(status, body.into()), ServerKind::Openai);
        let error = result.unwrap_err().to_string();
        assert_eq!(
            error,
            format!("the model server at {} {expected}", fake.url)
        );
        assert!(!error.contains("sk-fake"));
    }
}

#[test]
fn a_silent_server_times_out_and_a_closed_port_is_unreachable() {
    let started = Instant::now();
    let (result, _, _) = ask(Reply::Silent(Duration::from_secs(4)), ServerKind::Openai);
    let error = result.unwrap_err();
    assert!(
        matches!(error, LlmError::ServerTimeout { seconds: 1, .. }),
        "{error:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));

    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/v1");
    let mut engine = RemoteEngine::connect(config(&url, ServerKind::Openai)).unwrap();
    let error = engine.complete(&sql_request(), &mut |_| {}).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("could not reach the model server at {url}: connection refused")
    );
}

#[test]
fn cancel_stops_reading_the_stream() {
    let events: Vec<String> = (0..50)
        .map(|i| {
            let chunk = serde_json::json!({"choices": [{"index": 0, "delta": {"content": format!("c{i} ")}, "finish_reason": null}]});
            format!("data: {chunk}\n\n")
        })
        .collect();
    let fake = FakeServer::always(Reply::Slow(events, Duration::from_millis(100)));
    let mut engine = RemoteEngine::connect(config(&fake.url, ServerKind::Openai)).unwrap();
    let cancel = engine.cancel_flag();
    let started = Instant::now();
    let mut streamed = String::new();
    let result = engine.complete(&sql_request(), &mut |text| {
        streamed.push_str(text);
        cancel.store(true, Ordering::SeqCst);
    });
    assert!(matches!(result, Err(LlmError::Cancelled)), "{result:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(!streamed.contains("c3"), "{streamed}");
}

#[test]
fn the_model_is_taken_from_the_server_list_when_unnamed() {
    let fake = FakeServer::start(|seen| {
        if seen.path == "/v1/models" {
            Reply::Json(
                r#"{"object":"list","data":[{"id":"qwen2.5-coder:7b","object":"model"}]}"#.into(),
            )
        } else {
            Reply::Status(404, String::new())
        }
    });
    let mut remote = config(&fake.url, ServerKind::Ollama);
    remote.model = None;
    let engine = RemoteEngine::connect(remote).unwrap();
    let host = fake
        .url
        .trim_start_matches("http://")
        .trim_end_matches("/v1");
    assert_eq!(engine.model_id(), format!("remote:qwen2.5-coder:7b@{host}"));
}

/// One SSE stream whose only content is `text`.
fn stream_of(text: &str) -> String {
    let chunk = serde_json::json!({"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": "stop"}]});
    format!("data: {chunk}\n\ndata: [DONE]\n\n")
}

fn ask_cli(url: &str, data: &Path, extra: &[&str]) -> std::process::Output {
    let db = chinook_path();
    let mut args = vec!["ask", "--llm-url", url, "--llm-model", "fake"];
    args.extend_from_slice(extra);
    args.extend([db.to_str().unwrap(), "How many albums are there?", "--json"]);
    Command::new(binary())
        .args(&args)
        .env("NANO_ANALYST_DATA_DIR", data)
        .env("NANO_ANALYST_CONFIG", data.join("no-config.toml"))
        .env("NANO_ANALYST_EMBED_MODEL", data.join("no-embedder.gguf"))
        .env("NANO_ANALYST_MODEL", data.join("no-model.gguf"))
        .env_remove("NANO_ANALYST_LLM_API_KEY")
        .output()
        .expect("the binary runs")
}

#[test]
fn ask_with_llm_url_answers_from_the_server() {
    // The SQL request carries the folded prefix; the answer request does not.
    let fake = FakeServer::start(|seen| {
        if seen.body.contains("Begin your reply") {
            Reply::Sse(stream_of("SELECT count(*) FROM Album\n```"))
        } else {
            Reply::Sse(stream_of("There are 347 albums."))
        }
    });
    let data = tempfile::tempdir().unwrap();
    let output = ask_cli(&fake.url, data.path(), &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    assert_eq!(json["rows"], serde_json::json!([[347]]));
    assert_eq!(json["answer"], "There are 347 albums.");
    let host = fake
        .url
        .trim_start_matches("http://")
        .trim_end_matches("/v1");
    assert_eq!(json["model"], format!("remote:fake@{host}"));
}

#[test]
fn ask_with_llm_url_and_a_refusing_server_is_one_line() {
    let fake = FakeServer::always(Reply::Status(401, r#"{"error":"no key"}"#.into()));
    let data = tempfile::tempdir().unwrap();
    let output = ask_cli(&fake.url, data.path(), &[]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Besides the note that retrieval runs without the (absent) embedder: one line.
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|line| !line.contains("schema retrieval uses BM25 only"))
        .collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].ends_with(&format!(
            "the model server at {} answered 401 Unauthorized: check NANO_ANALYST_LLM_API_KEY",
            fake.url
        )),
        "{stderr}"
    );
}

#[test]
fn a_bad_llm_url_is_a_usage_error() {
    let data = tempfile::tempdir().unwrap();
    let output = ask_cli("gpu-box:8080/v1", data.path(), &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("--llm-url 'gpu-box:8080/v1' must start with http://"),
        "{stderr}"
    );
}
