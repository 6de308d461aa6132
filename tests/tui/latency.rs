//! Input stays responsive while the real model streams: keys are injected every 40 ms
//! while tokens arrive, and each key's time to the next drawn frame is measured through
//! the real event loop, workers and view (headless `TestBackend`, 120x40).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use nano_analyst::core::db::exec::ReadOnlyDb;
use nano_analyst::core::model::{
    Completion, CompletionRequest, LanguageModel, LlmError, StopReason,
};
use nano_analyst::core::retrieval::provider::WholeSchemaContext;
use nano_analyst::tui::app::{Model, Msg, StartupEvent};
use nano_analyst::tui::config::TuiConfig;
use nano_analyst::tui::shell::run_loop;
use nano_analyst::tui::workers::inference::{Loader, Session};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

use super::fixtures::{chinook_shell, model_file_lock};
use crate::support::{chinook_path, default_pipeline, engine, model_lock};

#[test]
fn keypress_to_frame_latency_while_tokens_stream() {
    let _turn = model_lock();
    let _file_lock = model_file_lock();
    let loader: Loader = Box::new(|report: &dyn Fn(StartupEvent)| {
        let db = ReadOnlyDb::open(&chinook_path()).map_err(|e| e.to_string())?;
        let schema = db.introspect().map_err(|e| e.to_string())?;
        let prefix_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tui-prefix-cache");
        let engine = engine(Some(prefix_dir));
        let model_cancel = engine.cancel_flag();
        report(StartupEvent::ModelReady {
            model: "test".into(),
        });
        Ok(Session {
            model: Box::new(engine),
            model_cancel,
            db,
            context: Box::new(WholeSchemaContext::new(&schema)),
            config: default_pipeline(),
            warm: None,
        })
    });
    measure("real model", loader);
}

/// The same measurement with a scripted model streaming a token every 25 ms: the UI's own
/// cost, without the model competing for the CPU.
#[test]
fn keypress_to_frame_latency_with_a_scripted_stream() {
    let loader: Loader = Box::new(|report: &dyn Fn(StartupEvent)| {
        let db = ReadOnlyDb::open(&chinook_path()).map_err(|e| e.to_string())?;
        let schema = db.introspect().map_err(|e| e.to_string())?;
        report(StartupEvent::ModelReady {
            model: "scripted".into(),
        });
        Ok(Session {
            model: Box::new(Scripted),
            model_cancel: Arc::new(AtomicBool::new(false)),
            db,
            context: Box::new(WholeSchemaContext::new(&schema)),
            config: default_pipeline(),
            warm: None,
        })
    });
    measure("scripted stream", loader);
}

struct Scripted;

impl LanguageModel for Scripted {
    fn complete(
        &mut self,
        request: &CompletionRequest,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Completion, LlmError> {
        let text = if request.assistant_prefix.contains("sql") {
            "Name FROM Genre ORDER BY Name LIMIT 40\n```"
        } else {
            "There are 25 genres, from Alternative to World, listed in alphabetical order \
             with Rock and Latin among them and many more besides these ones."
        };
        let started = Instant::now();
        let mut out = String::new();
        for piece in text.split_inclusive(' ') {
            thread::sleep(Duration::from_millis(25));
            out.push_str(piece);
            on_text(piece);
        }
        let out = out.trim_end_matches("\n```").to_string();
        Ok(Completion {
            generated_tokens: out.split(' ').count(),
            text: out,
            prompt_tokens: 10,
            cached_prompt_tokens: 0,
            time_to_first_token: Duration::from_millis(25),
            elapsed: started.elapsed(),
            stop_reason: StopReason::StopString,
            mean_logprob: None,
        })
    }

    fn model_id(&self) -> String {
        "scripted".into()
    }

    fn count_tokens(&self, text: &str) -> usize {
        text.len() / 4
    }
}

fn measure(label: &str, loader: Loader) {
    let (tx, rx) = mpsc::channel::<Msg>();
    let mut shell = chinook_shell(loader, &tx);
    let mut model = Model::new(TuiConfig::builtin(), "chinook.db", 3);
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).unwrap();

    let streaming = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicBool::new(false));
    let sent: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let injector = {
        let (tx, streaming, finished, sent) = (
            tx.clone(),
            Arc::clone(&streaming),
            Arc::clone(&finished),
            Arc::clone(&sent),
        );
        thread::spawn(move || {
            let press = |code| Msg::Key(KeyEvent::new(code, KeyModifiers::NONE));
            for c in "List the names of all genres.".chars() {
                let _ = tx.send(press(KeyCode::Char(c)));
            }
            let _ = tx.send(press(KeyCode::Enter));
            let deadline = Instant::now() + Duration::from_secs(240);
            while !finished.load(Ordering::SeqCst) && Instant::now() < deadline {
                if streaming.load(Ordering::SeqCst) {
                    // Keys land in the question input; the run keeps streaming.
                    sent.lock().unwrap().push(Instant::now());
                    let _ = tx.send(press(KeyCode::Char('x')));
                }
                thread::sleep(Duration::from_millis(40));
            }
            let _ = tx.send(Msg::Key(KeyEvent::new(
                KeyCode::Char('c'),
                KeyModifiers::CONTROL,
            )));
        })
    };

    let mut latencies: Vec<Duration> = Vec::new();
    let mut draw_times: Vec<Duration> = Vec::new();
    let mut key_index = 0usize;
    let mut keys_before_stream = "List the names of all genres.".len() + 1; // and Enter
    let mut was_streaming = false;
    run_loop(&mut terminal, &mut model, &mut shell, &rx, &mut |stats| {
        streaming.store(stats.streaming, Ordering::SeqCst);
        if was_streaming && !stats.busy {
            finished.store(true, Ordering::SeqCst);
        }
        was_streaming |= stats.streaming;
        draw_times.push(stats.draw_time);
        let mut keys = stats.keys;
        let skipped = keys.min(keys_before_stream);
        keys_before_stream -= skipped;
        keys -= skipped;
        let sent = sent.lock().unwrap();
        for _ in 0..keys {
            if let Some(at) = sent.get(key_index) {
                latencies.push(stats.drawn_at.duration_since(*at));
                key_index += 1;
            }
        }
    })
    .unwrap();
    injector.join().unwrap();

    assert!(
        model.run.result.is_some(),
        "the question was answered: {:?}",
        model.stage
    );
    assert!(
        latencies.len() >= 10,
        "only {} keys measured",
        latencies.len()
    );
    latencies.sort();
    draw_times.sort();
    let pct = |v: &[Duration], p: usize| v[(v.len() * p / 100).min(v.len() - 1)];
    eprintln!(
        "{label}: keypress-to-frame while streaming: {} keys, p50 {:?}, p95 {:?}, max {:?}; draw p50 {:?} p95 {:?} ({} frames)",
        latencies.len(),
        pct(&latencies, 50),
        pct(&latencies, 95),
        latencies[latencies.len() - 1],
        pct(&draw_times, 50),
        pct(&draw_times, 95),
        draw_times.len()
    );
    // The figures above are the benchmark (README). What is asserted is the behaviour: the
    // UI keeps answering keys while the model streams, on a loaded CI machine too. A frozen
    // UI waits for the model's whole reply, seconds.
    assert!(
        pct(&latencies, 95) < Duration::from_secs(1),
        "the UI froze while the model streamed: p95 keypress-to-frame {:?}",
        pct(&latencies, 95)
    );
}

use std::path::Path;
