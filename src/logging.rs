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
    let filter = log_filter(std::env::var("NANO_ANALYST_LOG").ok().as_deref());
    tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init()
        .ok()?;
    Some(guard)
}

/// The filter `NANO_ANALYST_LOG` asks for (`info` without it). sqlparser logs every token
/// it parses at debug level, thousands of lines per question, so it stays at `warn` unless
/// the variable names it.
fn log_filter(requested: Option<&str>) -> EnvFilter {
    let requested = requested.filter(|r| !r.trim().is_empty());
    let mut filter = requested
        .and_then(|r| EnvFilter::try_new(r).ok())
        .unwrap_or_else(|| EnvFilter::new("info,llama_cpp_2=warn"));
    if !requested.is_some_and(|r| r.contains("sqlparser"))
        && let Ok(quiet) = "sqlparser=warn".parse()
    {
        filter = filter.add_directive(quiet);
    }
    filter
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_logs_leave_the_sql_parser_at_warn_unless_asked() {
        assert!(
            log_filter(Some("debug"))
                .to_string()
                .contains("sqlparser=warn")
        );
        assert!(log_filter(None).to_string().contains("llama_cpp_2=warn"));
        let asked = log_filter(Some("debug,sqlparser=debug")).to_string();
        assert!(!asked.contains("sqlparser=warn"), "{asked}");
    }
}
