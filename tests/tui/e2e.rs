//! The real binary in tmux with the real model on Chinook: type a question while the model
//! loads, wait for the rows, edit the SQL inline, run it, mark it correct, open the history
//! and find the entry, quit and check the terminal was given back.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::fixtures::model_file_lock;
use crate::support::{binary, chinook_path, model_lock, model_path};

pub(crate) struct Tmux {
    socket: String,
}

impl Tmux {
    pub(crate) fn start(command: &[String], width: u16, height: u16) -> Self {
        // One server per session: tests in this binary run at the same time.
        static SESSIONS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = SESSIONS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let socket = format!("nano-e2e-{}-{n}", std::process::id());
        let status = Command::new("tmux")
            .args([
                "-L",
                &socket,
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-s",
                "e2e",
            ])
            .args(["-x", &width.to_string(), "-y", &height.to_string()])
            .arg(command.join(" "))
            .env("TERM", "xterm-256color")
            .status()
            .expect("tmux runs");
        assert!(status.success(), "tmux new-session failed");
        Self { socket }
    }

    fn tmux(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux runs")
    }

    pub(crate) fn keys(&self, keys: &[&str]) {
        for key in keys {
            self.tmux(&["send-keys", "-t", "e2e", key]);
            std::thread::sleep(Duration::from_millis(60));
        }
    }

    pub(crate) fn type_text(&self, text: &str) {
        self.tmux(&["send-keys", "-t", "e2e", "-l", text]);
        std::thread::sleep(Duration::from_millis(100));
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-t", "e2e"]).stdout)
            .into_owned()
    }

    /// "alternate_on cursor_flag" of the pane: "1 0" while a full-screen app runs.
    pub(super) fn pane_flags(&self) -> String {
        let output = self.tmux(&[
            "display",
            "-p",
            "-t",
            "e2e",
            "#{alternate_on} #{cursor_flag}",
        ]);
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// The process the pane runs (its first command).
    pub(super) fn pane_pid(&self) -> String {
        let output = self.tmux(&["display", "-p", "-t", "e2e", "#{pane_pid}"]);
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    fn alive(&self) -> bool {
        self.tmux(&["has-session", "-t", "e2e"]).status.success()
    }

    /// Waits until every needle is on screen; fails with the screen otherwise.
    pub(crate) fn wait_for(&self, needles: &[&str], timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.screen();
            if needles.iter().all(|n| screen.contains(n)) {
                return screen;
            }
            assert!(
                Instant::now() < deadline && self.alive(),
                "timed out waiting for {needles:?}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

fn data_dir() -> PathBuf {
    // Kept between runs so the schema prompt's KV cache is reused.
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("tui-e2e-data")
}

/// Removes the history store (and the corrections in it) left by an earlier run, so the
/// history holds this run's question only and no earlier correction steers the model.
fn forget_earlier_runs(data_dir: &Path) {
    for name in [
        "history.sqlite3",
        "history.sqlite3-wal",
        "history.sqlite3-shm",
    ] {
        let path = data_dir.join(name);
        if path.exists() {
            std::fs::remove_file(&path).expect("remove the earlier history store");
        }
    }
}

#[test]
fn tmux_question_edit_correct_and_history_with_the_real_model() {
    if Command::new("tmux").arg("-V").output().is_err() {
        panic!("tmux is required for this test (apt-get install tmux)");
    }
    let _turn = model_lock();
    let _file_lock = model_file_lock();
    // The shared target directory is rebuilt by other checkouts; NANO_TUI_BIN points at a
    // private copy of this checkout's binary when that matters.
    let program = std::env::var_os("NANO_TUI_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(binary);
    forget_earlier_runs(&data_dir());
    let command = vec![
        program.display().to_string(),
        "--data-dir".into(),
        data_dir().display().to_string(),
        "--model".into(),
        model_path().display().to_string(),
        chinook_path().display().to_string(),
    ];
    let tmux = Tmux::start(&command, 120, 40);
    tmux.wait_for(&["1 Question", "4 Results"], Duration::from_secs(20));

    // Typed while the model may still be loading: it runs once the model is ready.
    tmux.type_text("How many albums are there?");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for(&["1 row", "347"], Duration::from_secs(300));
    assert!(screen.contains("Results"), "{screen}");
    // Let the answer finish so the run is recorded.
    tmux.wait_for(&[" done"], Duration::from_secs(120));

    // Edit the SQL inline: clear it and write another query.
    tmux.keys(&["M-3", "e"]);
    tmux.wait_for(&["editing"], Duration::from_secs(10));
    for _ in 0..6 {
        tmux.keys(&["C-k", "Delete"]);
    }
    tmux.type_text("SELECT Title FROM Album WHERE ArtistId = 1 ORDER BY Title");
    tmux.keys(&["C-s"]);
    let screen = tmux.wait_for(
        &[
            "2 rows",
            "For Those About To Rock We Salute You",
            "Let There Be Rock",
        ],
        Duration::from_secs(30),
    );
    assert!(screen.contains("your SQL (ran)"), "{screen}");

    // Mark it correct.
    tmux.keys(&["m"]);
    tmux.wait_for(&["saved as the correct SQL"], Duration::from_secs(10));

    // The history lists the question as fixed; the fuzzy filter finds it.
    tmux.keys(&["C-r"]);
    tmux.wait_for(&["History of chinook.db", "fixed"], Duration::from_secs(10));
    tmux.type_text("albms");
    let screen = tmux.wait_for(
        &["How many albums are there?", "1 of 1"],
        Duration::from_secs(10),
    );
    assert!(screen.contains("fixed"), "{screen}");
    // Enter re-opens it: the corrected SQL is shown.
    tmux.keys(&["Enter"]);
    tmux.wait_for(&["ArtistId = 1"], Duration::from_secs(10));

    // Ctrl-C quits and gives the terminal back (the session ends with the process).
    tmux.keys(&["C-c"]);
    let deadline = Instant::now() + Duration::from_secs(15);
    while tmux.alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!tmux.alive(), "the app did not exit on Ctrl-C");
}

/// The follow-up and the results grid in the real binary: "same for 2024" after a question
/// about 2023 reuses its query; then a 1,000-row result is sorted, searched and a cell
/// opened in full.
#[test]
fn tmux_follow_up_and_the_results_grid_with_the_real_model() {
    if Command::new("tmux").arg("-V").output().is_err() {
        panic!("tmux is required for this test (apt-get install tmux)");
    }
    let _turn = model_lock();
    let _file_lock = model_file_lock();
    let program = std::env::var_os("NANO_TUI_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(binary);
    let data = data_dir().join("follow-up");
    std::fs::create_dir_all(&data).expect("a data directory");
    forget_earlier_runs(&data);
    let command = vec![
        program.display().to_string(),
        "--data-dir".into(),
        data.display().to_string(),
        "--model".into(),
        model_path().display().to_string(),
        chinook_path().display().to_string(),
    ];
    let tmux = Tmux::start(&command, 120, 40);
    tmux.wait_for(&["1 Question", "4 Results"], Duration::from_secs(20));

    tmux.type_text("What was the total invoice amount in 2023?");
    tmux.keys(&["Enter"]);
    tmux.wait_for(&["469.58", " done"], Duration::from_secs(400));
    tmux.type_text("same for 2024");
    let screen = tmux.wait_for(&["follow-up"], Duration::from_secs(10));
    assert!(screen.contains("ctrl-n: new topic"), "{screen}");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for(&["477.53", " done"], Duration::from_secs(300));
    assert!(screen.contains("asked: same for 2024"), "{screen}");
    assert!(screen.contains("total invoice amount in 2023"), "{screen}");

    // A new topic: 1,000 of the 3,503 tracks.
    tmux.keys(&["C-n"]);
    tmux.type_text("List the name and composer of every track.");
    tmux.keys(&["Enter"]);
    tmux.wait_for(&["1000 of 3503 rows", " done"], Duration::from_secs(300));
    tmux.keys(&["M-4", "s", "s"]);
    tmux.wait_for(&["▼"], Duration::from_secs(10));
    tmux.keys(&["/"]);
    tmux.type_text("love");
    let screen = tmux.wait_for(&["/love", "matching"], Duration::from_secs(10));
    assert!(!screen.contains(" 0 matching"), "{screen}");
    tmux.keys(&["Enter", "Enter"]);
    tmux.wait_for(&["chars"], Duration::from_secs(10));
    tmux.keys(&["Escape", "C-c"]);
    let deadline = Instant::now() + Duration::from_secs(15);
    while tmux.alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!tmux.alive(), "the app did not exit on Ctrl-C");
}
