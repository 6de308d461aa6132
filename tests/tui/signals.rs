//! A termination signal quits through the event loop, so the terminal is given back on
//! the normal path: the pure transition, the loop itself, and the real binary in tmux.

use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nano_analyst::tui::app::{Active, Effect, Model, Msg};
use nano_analyst::tui::config::TuiConfig;
use nano_analyst::tui::shell::run_loop;
use nano_analyst::tui::workers::inference::Loader;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

use super::e2e::Tmux;
use super::fixtures::{ask, chinook_shell, ready_model, send};
use crate::support::{binary, chinook_path};

#[test]
fn a_signal_quits_like_the_quit_key_and_stops_the_running_question() {
    let mut model = ready_model();
    let id = ask(&mut model, "How many albums?");
    assert_eq!(model.active, Some(Active::Ask(id)));
    let effects = send(&mut model, [Msg::Signalled]);
    assert!(model.quit);
    assert!(effects.contains(&Effect::CancelAsk { id }), "{effects:?}");
    assert_eq!(effects.last(), Some(&Effect::Quit));
}

#[test]
fn the_event_loop_returns_when_a_signal_arrives() {
    let (tx, rx) = mpsc::channel::<Msg>();
    // A model that never finishes loading: the app is waiting, as at start-up.
    let loader: Loader = Box::new(|_| {
        thread::sleep(Duration::from_secs(3600));
        Err("never".into())
    });
    let mut shell = chinook_shell(loader, &tx);
    let mut model = Model::new(TuiConfig::builtin(), "chinook.db", 3);
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    let sender = thread::spawn(move || {
        thread::sleep(Duration::from_millis(300));
        tx.send(Msg::Signalled).unwrap();
        // Kept open: the loop must stop on the message, not on a closed channel.
        thread::sleep(Duration::from_secs(5));
    });
    let started = Instant::now();
    run_loop(&mut terminal, &mut model, &mut shell, &rx, &mut |_| {}).unwrap();
    assert!(model.quit);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    drop(sender);
}

/// The process the tmux pane's shell started (the app).
fn child_of(shell_pid: &str) -> Option<String> {
    let output = Command::new("ps")
        .args(["-o", "pid=", "--ppid", shell_pid])
        .output()
        .ok()?;
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .map(str::to_string)
}

#[test]
fn sigterm_sighup_and_sigint_give_the_terminal_back() {
    if Command::new("tmux").arg("-V").output().is_err() {
        panic!("tmux is required for this test (apt-get install tmux)");
    }
    let program = std::env::var_os("NANO_TUI_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(binary);
    for (signal, code) in [("TERM", 143), ("HUP", 129), ("INT", 130)] {
        let data = tempfile::tempdir().unwrap();
        // No model: the app opens and waits, which is all this needs. The shell stays
        // after the app exits and reports its exit status and terminal mode.
        let app = format!(
            "NANO_ANALYST_MODEL=/nonexistent.gguf {} --data-dir {} {}",
            program.display(),
            data.path().display(),
            chinook_path().display()
        );
        let script = format!("{app}; echo \"exit=$?\"; stty -a | grep -o -- '-*icanon'; sleep 60");
        // tmux runs the line with `sh -c`.
        let tmux = Tmux::start(&[script], 100, 30);
        tmux.wait_for(&["1 Question"], Duration::from_secs(20));
        assert_eq!(
            tmux.pane_flags(),
            "1 0",
            "alternate screen on, cursor hidden"
        );
        let shell_pid = tmux.pane_pid();
        let app_pid = child_of(&shell_pid).expect("the app runs under the pane's shell");
        let killed = Command::new("kill")
            .args([&format!("-{signal}"), &app_pid])
            .status()
            .unwrap();
        assert!(killed.success());
        // The shell prints the exit status, then the terminal mode: wait for both.
        let screen = tmux.wait_for(
            &[&format!("exit={code}"), "icanon"],
            Duration::from_secs(10),
        );
        // Cooked mode again (raw mode clears icanon), main screen, cursor shown.
        assert!(
            screen.lines().any(|l| l.trim() == "icanon"),
            "SIG{signal}:\n{screen}"
        );
        assert_eq!(
            tmux.pane_flags(),
            "0 1",
            "SIG{signal}: main screen, cursor shown"
        );
    }
}
