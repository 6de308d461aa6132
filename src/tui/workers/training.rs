//! Background fine-tuning: `nano-analyst train run DB --yes --progress json` as a child
//! process (a crash or an abort inside llama.cpp's training stays there), its stdout read
//! line by line on a thread and forwarded as [`Msg::Training`]. Quitting the app sends the
//! child Ctrl-C, which stops it cleanly (intermediate files removed).

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread;

use crate::core::finetune::TrainingEvent;
use crate::tui::app::{Msg, TrainingUpdate, WorkerError};

/// Starts training; tests replace it with a scripted one.
pub(crate) type TrainingLauncher = Box<dyn FnMut(Sender<Msg>) -> Result<TrainingHandle, String>>;

/// The running child, if any.
#[derive(Clone, Default)]
pub struct TrainingHandle {
    pid: Arc<Mutex<Option<u32>>>,
}

impl TrainingHandle {
    /// Asks the child to stop (SIGINT through `kill`, so it cleans up after itself).
    pub(crate) fn interrupt(&self) {
        let pid = self.pid.lock().ok().and_then(|pid| *pid);
        if let Some(pid) = pid {
            let _ = Command::new("kill")
                .args(["-INT", &pid.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The command line the app re-runs itself with.
#[derive(Debug, Clone)]
pub(crate) struct TrainingCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
}

/// A launcher that runs `command` as a child process.
pub(crate) fn process_launcher(command: TrainingCommand) -> TrainingLauncher {
    Box::new(move |out: Sender<Msg>| spawn(&command, out))
}

fn spawn(command: &TrainingCommand, out: Sender<Msg>) -> Result<TrainingHandle, String> {
    tracing::info!(?command, "starting background training");
    let mut child = Command::new(&command.program)
        .args(&command.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start '{}': {e}", command.program.display()))?;
    let handle = TrainingHandle::default();
    if let Ok(mut pid) = handle.pid.lock() {
        *pid = Some(child.id());
    }
    let watched = handle.clone();
    thread::Builder::new()
        .name("training".into())
        .spawn(move || {
            let ended = follow(&mut child, &out);
            if let Ok(mut pid) = watched.pid.lock() {
                *pid = None;
            }
            let ended = ended.map_err(WorkerError::Training);
            let _ = out.send(Msg::Training(TrainingUpdate::Ended(ended)));
        })
        .map_err(|e| format!("cannot start the training thread: {e}"))?;
    Ok(handle)
}

/// Forwards the child's progress lines until it exits; its last stderr line explains a
/// failure.
fn follow(child: &mut Child, out: &Sender<Msg>) -> Result<(), String> {
    let stderr = child.stderr.take();
    let errors = thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut stderr) = stderr {
            let _ = stderr.read_to_string(&mut text);
        }
        text
    });
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            match serde_json::from_str::<TrainingEvent>(&line) {
                Ok(event) => {
                    let _ = out.send(Msg::Training(TrainingUpdate::Event(event)));
                }
                Err(_) => tracing::debug!(%line, "training output"),
            }
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    let stderr = errors.join().unwrap_or_default();
    for line in stderr.lines() {
        tracing::info!(target: "training", "{line}");
    }
    if status.success() {
        Ok(())
    } else {
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| l.trim_start_matches("nano-analyst: ").to_string())
            .unwrap_or_else(|| format!("exited with {status}"));
        Err(last)
    }
}
