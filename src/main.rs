use std::process::ExitCode;

use clap::Parser;
use nano_analyst::cli::{Cli, Command, RewritesCommand};
use nano_analyst::error::AppError;
use nano_analyst::session::RuntimeOptions;
use nano_analyst::{commands, logging};

fn main() -> ExitCode {
    // Aborts inside llama.cpp skip Rust's panic hook; this stops them printing a gdb trace.
    // SAFETY: set before any other thread starts.
    unsafe { std::env::set_var("GGML_NO_BACKTRACE", "1") };
    let _ = color_eyre::install();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            report(&error);
            ExitCode::FAILURE
        }
    }
}

fn report(error: &AppError) {
    nano_analyst::commands::terminal::print_stderr(&format!("nano-analyst: {error}\n"));
}

/// Ends the app without running C++ static destructors. Its worker threads (loading the
/// model, building the retrieval index, the database) may still be inside llama.cpp or
/// DuckDB when the app quits, and `exit` would tear those libraries down under them: a
/// segfault after the terminal was given back, seen after SIGINT under load. Everything
/// the app keeps is written by now (the history store is closed and the log guard
/// dropped), so only the buffered output is flushed.
fn leave_now(status: u8) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    signal_hook::low_level::exit(i32::from(status))
}

fn run(cli: Cli) -> Result<ExitCode, AppError> {
    if let Some(Command::Completions { shell }) = cli.command {
        commands::paths::completions(shell);
        return Ok(ExitCode::SUCCESS);
    }
    let mut options = RuntimeOptions::resolve(&cli.global)?;
    let log_guard = logging::init(&options.paths.log_dir());
    commands::password::ask_where_missing(std::env::args_os().skip(1));
    match cli.command {
        Some(Command::Ask(args)) => {
            let answered = commands::ask::run(&args, &mut options)?;
            Ok(if answered {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Some(Command::Eval(args)) => {
            commands::eval::run(&args, &mut options)?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::EvalParaphrases(args)) => {
            commands::eval_paraphrases::run(&args, &mut options)?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Bench(args)) => {
            commands::bench::run(&args, &mut options)?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Schema(args)) => {
            commands::schema::run(&args, &options)?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::RetrievalBench(args)) => {
            commands::retrieval_bench::run(&args, &options)?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Correct(args)) => commands::feedback::correct(&args, &options),
        Some(Command::Rate(args)) => commands::feedback::rate(&args, &options),
        Some(Command::History(args)) => commands::feedback::history(&args, &options),
        Some(Command::Corrections(command)) => commands::feedback::corrections(&command, &options),
        Some(Command::Train(command)) => commands::train::run(&command, &mut options),
        Some(Command::Serve(args)) => {
            commands::serve::run(&args, &options)?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::BenchServe(args)) => {
            let clean = commands::bench_serve::run(&args)?;
            Ok(if clean {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Some(Command::Paths) => {
            commands::paths::run(&options);
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Completions { .. }) => Ok(ExitCode::SUCCESS),
        Some(Command::Rewrites(RewritesCommand::Audit(args))) => {
            let clean = commands::rewrites::audit(&args, &options)?;
            Ok(if clean {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        None => {
            let Some(database) = cli.database else {
                use clap::CommandFactory;
                let _ = Cli::command().print_help();
                return Ok(ExitCode::FAILURE);
            };
            let status = match nano_analyst::tui::run(&database, &options) {
                Ok(nano_analyst::tui::Ended::Quit) => 0,
                // The shell's convention for a process stopped by a signal.
                Ok(nano_analyst::tui::Ended::Signalled(signal)) => {
                    u8::try_from(128 + signal).unwrap_or(1)
                }
                Err(error) => {
                    report(&error);
                    1
                }
            };
            drop(log_guard);
            leave_now(status)
        }
    }
}
