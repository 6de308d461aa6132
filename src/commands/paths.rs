//! `nano-analyst paths` (where the app reads and writes, and whether each exists) and
//! `nano-analyst completions SHELL`.

use std::path::{Path, PathBuf};

use crate::cli::{Cli, CompletionShell};
use crate::session::RuntimeOptions;

/// One line per place: its name, its path, and whether it is there.
pub fn run(options: &RuntimeOptions) {
    for (name, path, missing) in places(options) {
        crate::outln!("{}", line(name, path.as_deref(), missing));
    }
}

/// `(name, path, what a missing one means)`; `None` when there is no such place.
fn places(options: &RuntimeOptions) -> Vec<(&'static str, Option<PathBuf>, &'static str)> {
    let paths = &options.paths;
    let log_dir = paths.log_dir();
    let log = newest_log(&log_dir).unwrap_or_else(|| log_dir.join("nano-analyst.log.<date>"));
    vec![
        (
            "config file",
            paths.config_file.clone(),
            "missing: the built-in defaults apply",
        ),
        (
            "data dir",
            Some(paths.data_dir.clone()),
            "missing: created on first use",
        ),
        ("log file", Some(log), "missing: written on first use"),
        (
            "model dir",
            Some(paths.data_dir.join("models")),
            "missing: run scripts/fetch-model.sh",
        ),
        (
            "model",
            Some(options.engine.model_path.clone()),
            "missing: run scripts/fetch-model.sh or pass --model",
        ),
        (
            "history",
            Some(paths.history_db()),
            "missing: created on first use",
        ),
    ]
}

fn line(name: &str, path: Option<&Path>, missing: &str) -> String {
    match path {
        Some(path) if path.exists() => format!("{name:<12} {}  (exists)", path.display()),
        Some(path) => format!("{name:<12} {}  ({missing})", path.display()),
        None => format!("{name:<12} -  (no platform directory)"),
    }
}

/// The newest daily log file (`nano-analyst.log.YYYY-MM-DD`), when there is one.
fn newest_log(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("nano-analyst.log"))
        })
        .max()
}

/// Writes the completion script for `shell` to stdout.
pub fn completions(shell: CompletionShell) {
    use clap::CommandFactory;
    use clap_complete::Shell;
    let shell = match shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
    };
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "nano-analyst", &mut std::io::stdout());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_says_whether_the_place_exists() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            line("data dir", Some(dir.path()), "missing"),
            format!("data dir     {}  (exists)", dir.path().display())
        );
        let gone = dir.path().join("gone.toml");
        assert_eq!(
            line(
                "config file",
                Some(&gone),
                "missing: the built-in defaults apply"
            ),
            format!(
                "config file  {}  (missing: the built-in defaults apply)",
                gone.display()
            )
        );
        std::fs::create_dir(dir.path().join("logs")).unwrap();
        std::fs::write(dir.path().join("logs/nano-analyst.log.2026-12-03"), "").unwrap();
        std::fs::write(dir.path().join("logs/nano-analyst.log.2026-12-04"), "").unwrap();
        assert_eq!(
            newest_log(&dir.path().join("logs")),
            Some(dir.path().join("logs/nano-analyst.log.2026-12-04"))
        );
    }
}
