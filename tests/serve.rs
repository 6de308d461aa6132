//! `nano-analyst serve` as a client sees it: the real binary on an ephemeral loopback port
//! with the real model. Ask (JSON and streamed), correct, rate and history round trips;
//! refusals (401, 404, 413, 503, a public address without a token); a disconnect that
//! stops the generation (the server's CPU time, from /proc); and `ask --llm-url` against
//! the server, and the TUI with `--llm-url` in tmux, writing the same SQL as the in-process
//! engine.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{binary, chinook_path, model_lock, model_path};
use crate::tui::e2e::Tmux;

const TOKEN: &str = "test-token-0123456789";

struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    url: String,
}

impl Server {
    /// Starts `serve` on port 0 and waits for the address it prints once the model is loaded.
    fn start(data: &Path, token: Option<&str>, extra: &[&str]) -> Self {
        let db = format!("chinook={}", chinook_path().display());
        let mut command = Command::new(binary());
        command
            .args(["serve", "--db", &db, "--port", "0"])
            .args(extra)
            .env("NANO_ANALYST_DATA_DIR", data)
            .env("NANO_ANALYST_MODEL", model_path())
            .env("NANO_ANALYST_CONFIG", data.join("no-config.toml"))
            .env_remove("NANO_ANALYST_SERVE_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(token) = token {
            command.env("NANO_ANALYST_SERVE_TOKEN", token);
        }
        let mut child = command.spawn().expect("serve starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(600))
            .expect("serve prints its address");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                let mut stderr = String::new();
                let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
                panic!("no address in {line:?}: {stderr}")
            })
            .to_string();
        Self { child, url }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(600)))
            .build(),
    )
}

/// Status, Retry-After and body (JSON, or Null).
fn call(url: &str, token: Option<&str>, body: Option<&Value>) -> (u16, Option<String>, Value) {
    let agent = agent();
    let response = match body {
        Some(body) => {
            let mut request = agent.post(url).header("Content-Type", "application/json");
            if let Some(token) = token {
                request = request.header("Authorization", format!("Bearer {token}"));
            }
            request.send(body.to_string())
        }
        None => {
            let mut request = agent.get(url);
            if let Some(token) = token {
                request = request.header("Authorization", format!("Bearer {token}"));
            }
            request.call()
        }
    }
    .expect("the server answers");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let text = response.into_body().read_to_string().unwrap_or_default();
    (
        status,
        retry_after,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

/// A raw HTTP/1.1 POST whose response is read as it streams; dropping it disconnects.
fn open_stream(url: &str, path: &str, body: &Value) -> BufReader<TcpStream> {
    let authority = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(authority).unwrap();
    let body = body.to_string();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    BufReader::new(stream)
}

/// The `data:` lines of a stream up to the first line that satisfies `until`.
fn read_events(reader: &mut BufReader<TcpStream>, until: impl Fn(&str) -> bool) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap_or(0) > 0 {
        let trimmed = line.trim_end().to_string();
        line.clear();
        let done = until(&trimmed);
        lines.push(trimmed);
        if done {
            break;
        }
    }
    lines
}

/// The process's user + system CPU time in clock ticks (/proc/PID/stat fields 14 and 15).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn ticks_per_second(pid: u32, over: Duration) -> f64 {
    let before = cpu_ticks(pid);
    std::thread::sleep(over);
    (cpu_ticks(pid) - before) as f64 / over.as_secs_f64()
}

#[test]
fn serve_refuses_a_public_address_without_a_token_before_loading_anything() {
    let data = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let output = Command::new(binary())
        .args([
            "serve",
            "--host",
            "0.0.0.0",
            "--db",
            "chinook=sample_dbs/chinook.db",
        ])
        .env("NANO_ANALYST_DATA_DIR", data.path())
        .env("NANO_ANALYST_CONFIG", data.path().join("no-config.toml"))
        .env("NANO_ANALYST_MODEL", data.path().join("no-model.gguf"))
        .env_remove("NANO_ANALYST_SERVE_TOKEN")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("refusing to serve on 0.0.0.0 without a token"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    for (args, says) in [
        (vec!["--db", "chinook"], "is not NAME=PATH"),
        (vec!["--db", "../x=a.db"], "not a usable database name"),
        (
            vec!["--db", "a=b.db", "--host", "localhost:80"],
            "is not an IP address",
        ),
        (
            vec!["--db", "a=b.db", "--host", "::", "--token", "short"],
            "shorter than 16",
        ),
    ] {
        let output = Command::new(binary())
            .arg("serve")
            .args(&args)
            .env("NANO_ANALYST_DATA_DIR", data.path())
            .env("NANO_ANALYST_CONFIG", data.path().join("no-config.toml"))
            .env_remove("NANO_ANALYST_SERVE_TOKEN")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

/// Ask, stream, correct, rate and history with the real model, and every refusal.
#[test]
fn serve_answers_streams_records_and_refuses() {
    let _turn = model_lock();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), Some(TOKEN), &["--queue", "1"]);
    let url = |path: &str| format!("{}{path}", server.url);
    let token = Some(TOKEN);

    // Every request needs the token.
    assert_eq!(call(&url("/healthz"), None, None).0, 401);
    assert_eq!(
        call(&url("/healthz"), Some("wrong-token-0123456789"), None).0,
        401
    );
    let ask =
        json!({"database": "chinook", "question": "How many albums are there?", "answer": false});
    assert_eq!(call(&url("/v1/ask"), None, Some(&ask)).0, 401);
    let (status, _, health) = call(&url("/healthz"), token, None);
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    let (_, _, listed) = call(&url("/v1/databases"), token, None);
    assert_eq!(listed, json!({"databases": [{"name": "chinook"}]}));

    // Ask: the JSON of `ask --json`, with the run's id.
    let (status, _, asked) = call(&url("/v1/ask"), token, Some(&ask));
    assert_eq!(status, 200, "{asked}");
    assert_eq!(asked["rows"], json!([[347]]));
    assert_eq!(asked["answer"], Value::Null);
    let first_run = asked["run_id"].as_i64().expect("a run id");

    // Stream: stages and SQL tokens as they come, the result last.
    let streamed = json!({"database": "chinook", "question": "How many customers are there?",
        "answer": false, "stream": true});
    let mut stream = open_stream(&server.url, "/v1/ask", &streamed);
    let lines = read_events(&mut stream, |l| {
        l.starts_with("data:") && l.contains("\"rows\"")
    });
    let text = lines.join("\n");
    assert!(
        text.contains("event: stage\ndata: {\"stage\":\"retrieving\"}"),
        "{text}"
    );
    assert!(text.contains("event: sql\ndata: {\"attempt\":1"), "{text}");
    let result: Value =
        serde_json::from_str(lines.last().unwrap().trim_start_matches("data: ")).unwrap();
    assert_eq!(result["rows"], json!([[59]]), "{text}");
    let second_run = result["run_id"].as_i64().unwrap();
    drop(stream);

    // Correct the second run, rate the first; both show in the history.
    let fix = json!({"database": "chinook", "run_id": second_run,
        "sql": "SELECT count(*) AS customers FROM Customer"});
    let (status, _, corrected) = call(&url("/v1/correct"), token, Some(&fix));
    assert_eq!(status, 200, "{corrected}");
    assert_eq!(corrected["question"], "How many customers are there?");
    let write = json!({"database": "chinook", "run_id": second_run, "sql": "DELETE FROM Customer"});
    let (status, _, refused) = call(&url("/v1/correct"), token, Some(&write));
    assert_eq!(status, 400);
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("read-only"),
        "{refused}"
    );
    let up = json!({"database": "chinook", "run_id": first_run, "rating": "up"});
    assert_eq!(call(&url("/v1/rate"), token, Some(&up)).0, 200);
    let (status, _, history) = call(&url("/v1/history?database=chinook"), token, None);
    assert_eq!(status, 200, "{history}");
    let runs = history["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{history}");
    assert_eq!(runs[0]["id"], second_run);
    assert_eq!(runs[0]["status"], "corrected");
    assert_eq!(runs[0]["sql"], "SELECT count(*) AS customers FROM Customer");
    assert_eq!(
        (runs[1]["id"].as_i64(), runs[1]["rating"].as_str()),
        (Some(first_run), Some("up"))
    );

    // A request names a database; it never gives a path, and bodies are bounded.
    let unknown = json!({"database": "/etc/passwd", "question": "q"});
    assert_eq!(call(&url("/v1/ask"), token, Some(&unknown)).0, 404);
    let with_path = json!({"database": "chinook", "question": "q", "path": "/tmp/x.db"});
    assert_eq!(call(&url("/v1/ask"), token, Some(&with_path)).0, 422);
    let huge = json!({"database": "chinook", "question": "x".repeat(300 * 1024)});
    assert_eq!(call(&url("/v1/ask"), token, Some(&huge)).0, 413);

    queue_refuses_and_disconnect_cancels(&server);

    let log_dir = data.path().join("logs");
    let log: String = std::fs::read_dir(&log_dir)
        .unwrap()
        .map(|f| std::fs::read_to_string(f.unwrap().path()).unwrap())
        .collect();
    assert!(log.contains("POST /v1/ask 200"), "{log}");
    assert!(log.contains("GET /healthz 401"), "{log}");
}

/// With `--queue 1`: one generation runs, one waits, the next is refused with 503 and
/// Retry-After; the running one's client disconnects and the server's CPU falls idle.
fn queue_refuses_and_disconnect_cancels(server: &Server) {
    let chat = |max_tokens: u32, stream: bool| {
        json!({"model": "any", "stream": stream, "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": "Write the numbers from 1 to 2000, one per line."}]})
    };
    let mut long = open_stream(&server.url, "/v1/chat/completions", &chat(3000, true));
    read_events(&mut long, |l| l.contains("\"delta\":{\"content\""));
    let busy = ticks_per_second(server.pid(), Duration::from_secs(2));

    let waiting_url = format!("{}/v1/chat/completions", server.url);
    let short = chat(4, false);
    let waiting = std::thread::spawn(move || call(&waiting_url, Some(TOKEN), Some(&short)));
    std::thread::sleep(Duration::from_millis(500));
    let url = format!("{}/v1/chat/completions", server.url);
    let (status, retry_after, body) = call(&url, Some(TOKEN), Some(&chat(4, false)));
    assert_eq!(status, 503, "{body}");
    assert_eq!(retry_after.as_deref(), Some("2"));

    let dropped_at = Instant::now();
    drop(long);
    let (status, _, answered) = waiting.join().unwrap();
    assert_eq!(status, 200, "{answered}");
    assert_eq!(answered["choices"][0]["finish_reason"], "length");
    let waited = dropped_at.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let idle = ticks_per_second(server.pid(), Duration::from_secs(2));
    eprintln!(
        "server CPU: {busy:.0} ticks/s generating, {idle:.0} ticks/s after the client left \
         (the queued request was answered {:.1} s after the disconnect)",
        waited.as_secs_f64()
    );
    assert!(busy >= 20.0, "the generation was running: {busy} ticks/s");
    assert!(
        idle * 5.0 < busy,
        "{idle} ticks/s after the disconnect, {busy} before"
    );
}

const QUESTIONS: [&str; 10] = [
    "How many albums are there?",
    "How many customers are from Brazil?",
    "List the names of all genres.",
    "Which artist has the most albums?",
    "How many tracks are in the Rock genre?",
    "How many employees are there?",
    "What are the five longest tracks?",
    "Which country has the most customers?",
    "What is the average unit price of tracks?",
    "How many invoices were issued in 2010?",
];

/// SQL from `ask --llm-url` against the server (its own process, as a user runs it).
fn remote_sql(data: &Path, question: &str, url: &str) -> String {
    let db = chinook_path();
    let output = Command::new(binary())
        .args(["ask", "--llm-url", url, "--llm-server", "llama-server"])
        .args([db.to_str().unwrap(), question, "--json", "--no-answer"])
        .env("NANO_ANALYST_DATA_DIR", data)
        .env("NANO_ANALYST_CONFIG", data.join("no-config.toml"))
        .env("NANO_ANALYST_LLM_API_KEY", TOKEN)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let json: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|_| panic!("{stdout}\n{}", String::from_utf8_lossy(&output.stderr)));
    json["sql"].as_str().unwrap_or_default().to_string()
}

/// The in-process engine on the same questions in the same order: one engine whose KV
/// cache goes through the same states as the server's (llama.cpp's sums depend on how a
/// prompt is split into batches, so a one-shot `ask` process, which restores the system
/// prompt from disk, can break a near tie differently from a warm engine).
fn in_process_sql(data: &Path) -> Vec<String> {
    use clap::Parser;
    // An empty config: the defaults, as the server (whose NANO_ANALYST_CONFIG names no file)
    // runs with; `--config` must name a file that exists.
    let config = data.join("empty-config.toml");
    std::fs::write(&config, "").unwrap();
    let cli = nano_analyst::cli::Cli::try_parse_from([
        "nano-analyst".as_ref(),
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--model".as_ref(),
        model_path().as_os_str(),
        "--config".as_ref(),
        config.as_os_str(),
    ])
    .unwrap();
    let mut options = nano_analyst::session::RuntimeOptions::resolve(&cli.global).unwrap();
    options.pipeline.answer = false;
    let mut analyst = nano_analyst::session::Analyst::open(&chinook_path(), &options).unwrap();
    QUESTIONS
        .iter()
        .map(|q| analyst.ask(q, &mut |_| {}).unwrap().sql.unwrap_or_default())
        .collect()
}

/// SQL the TUI wrote over `--llm-url` for `QUESTIONS`, asked one by one in the real binary
/// in tmux (each a new topic, no answer sentence, as `ask --no-answer` runs), read back from
/// the history it recorded.
fn tui_sql(data: &Path, url: &str) -> Vec<String> {
    let config = data.join("no-answer.toml");
    std::fs::write(&config, "[pipeline]\nanswer = false\n").unwrap();
    let db = chinook_path().display().to_string();
    let command = vec![
        "env".to_string(),
        format!("NANO_ANALYST_LLM_API_KEY={TOKEN}"),
        binary().display().to_string(),
        "--data-dir".into(),
        data.display().to_string(),
        "--config".into(),
        config.display().to_string(),
        "--llm-url".into(),
        url.to_string(),
        "--llm-server".into(),
        "llama-server".into(),
        db.clone(),
    ];
    let tmux = Tmux::start(&command, 120, 40);
    tmux.wait_for(&["1 Question", "4 Results"], Duration::from_secs(60));
    let history = || {
        let output = Command::new(binary())
            .args(["history", &db, "--json", "--limit", "50"])
            .env("NANO_ANALYST_DATA_DIR", data)
            .env("NANO_ANALYST_CONFIG", &config)
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).unwrap())
            .collect::<Vec<_>>()
    };
    for (asked, question) in QUESTIONS.iter().enumerate() {
        tmux.keys(&["C-n"]);
        tmux.type_text(question);
        tmux.keys(&["Enter"]);
        let deadline = Instant::now() + Duration::from_secs(300);
        while history().len() <= asked {
            assert!(
                Instant::now() < deadline,
                "the TUI never recorded {question:?}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    tmux.keys(&["C-c"]);
    let recorded = history();
    QUESTIONS
        .iter()
        .map(|question| {
            let run = recorded
                .iter()
                .find(|run| run["question"] == *question)
                .unwrap_or_else(|| panic!("{question:?} is not in the history: {recorded:?}"));
            run["sql"].as_str().unwrap_or_default().to_string()
        })
        .collect()
}

/// The chat endpoint renders the messages through the model's template as the in-process
/// engine does and continues the assistant prefix, so greedy SQL is the same either way:
/// for `ask --llm-url` and for the TUI with `--llm-url`. Each client gets a server of its
/// own, started fresh, so both see the server's KV cache go through the same states as
/// the in-process engine's.
#[test]
fn ask_and_the_tui_over_llm_url_write_the_same_sql_as_in_process() {
    let _turn = model_lock();
    let local_data = tempfile::tempdir().unwrap();
    let local = in_process_sql(local_data.path());
    let mut different = Vec::new();
    {
        let served = tempfile::tempdir().unwrap();
        let server = Server::start(served.path(), Some(TOKEN), &[]);
        let remote_url = format!("{}/v1", server.url);
        let remote_data = tempfile::tempdir().unwrap();
        for (question, local) in QUESTIONS.iter().zip(&local) {
            let remote = remote_sql(remote_data.path(), question, &remote_url);
            eprintln!("{question}\n  in process: {local}\n  ask --llm-url: {remote}");
            assert!(!local.is_empty(), "{question}: no SQL in process");
            if *local != remote {
                different.push(format!("ask: {question}"));
            }
        }
    }
    let served = tempfile::tempdir().unwrap();
    let server = Server::start(served.path(), Some(TOKEN), &[]);
    let tui_data = tempfile::tempdir().unwrap();
    let tui = tui_sql(tui_data.path(), &format!("{}/v1", server.url));
    for ((question, local), tui) in QUESTIONS.iter().zip(&local).zip(&tui) {
        eprintln!("{question}\n  in process: {local}\n  TUI --llm-url: {tui}");
        if local != tui {
            different.push(format!("TUI: {question}"));
        }
    }
    assert!(different.is_empty(), "different SQL for {different:?}");
}

/// SIGTERM while a question runs: the server stops accepting, the question finishes and is
/// recorded, the one queued behind it gets 503, and the process exits 0 (as systemd expects
/// of a stopped service).
#[test]
fn a_stop_signal_lets_the_question_in_flight_finish() {
    let _turn = model_lock();
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(data.path(), None, &[]);
    let asked = json!({"database": "chinook", "question": "How many albums are there?",
        "answer": false, "stream": true});
    let mut stream = open_stream(&server.url, "/v1/ask", &asked);
    read_events(&mut stream, |l| l.starts_with("event: stage"));
    let queued_url = format!("{}/v1/ask", server.url);
    let queued = std::thread::spawn(move || {
        let asked = json!({"database": "chinook", "question": "How many artists are there?",
            "answer": false});
        call(&queued_url, None, Some(&asked))
    });
    std::thread::sleep(Duration::from_millis(500));
    let killed = Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let lines = read_events(&mut stream, |l| {
        l.starts_with("data:") && l.contains("\"rows\"")
    });
    let result: Value =
        serde_json::from_str(lines.last().unwrap().trim_start_matches("data: ")).unwrap();
    assert_eq!(result["rows"], json!([[347]]), "{lines:?}");
    drop(stream);
    let (status, retry_after, body) = queued.join().unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(retry_after.is_some());
    assert!(body.to_string().contains("shutting down"), "{body}");

    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "serve did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "exit status {status:?}");
    let authority = server.url.trim_start_matches("http://");
    assert!(
        TcpStream::connect(authority).is_err(),
        "still accepting after SIGTERM"
    );
    let history = Command::new(binary())
        .args(["history", chinook_path().to_str().unwrap(), "--json"])
        .env("NANO_ANALYST_DATA_DIR", data.path())
        .env("NANO_ANALYST_CONFIG", data.path().join("no-config.toml"))
        .output()
        .unwrap();
    let history = String::from_utf8_lossy(&history.stdout);
    assert!(
        history.contains("How many albums are there?"),
        "the run in flight was not recorded: {history}"
    );
}
