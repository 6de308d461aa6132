//! Logs go to a daily file in the data directory, never to the terminal: the terminal
//! belongs to the UI, and llama.cpp's own logs are routed here too.

use std::path::Path;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

/// Starts file logging; keep the guard alive until exit so buffered lines are written.
/// Logging is best effort: an unwritable directory leaves the app working, unlogged.
pub fn init(log_dir: &Path) -> Option<WorkerGuard> {
    std::fs::create_dir_all(log_dir).ok()?;
    let appender = tracing_appender::rolling::daily(log_dir, "nano-analyst.log");
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let filter = EnvFilter::try_from_env("NANO_ANALYST_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,llama_cpp_2=warn"));
    tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init()
        .ok()?;
    Some(guard)
}
