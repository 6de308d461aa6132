//! The finished run's confidence in the SQL pane title and the status bar, and error text
//! that keeps its line breaks.

use nano_analyst::core::pipeline::outcome::{Confidence, ConfidenceLevel, Source};
use nano_analyst::tui::app::{Model, PipelineUpdate, update};
use nano_analyst::tui::view::view;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

use super::fixtures::*;

fn frame(model: &Model) -> String {
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).unwrap();
    terminal.draw(|f| view(model, f)).unwrap();
    terminal.backend().to_string()
}

#[test]
fn the_confidence_shows_in_the_sql_title_and_the_status_bar() {
    let mut model = ready_model();
    let id = ask(&mut model, "Tracks per genre?");
    send(&mut model, repaired_run_events(id));
    let mut outcome = outcome("Tracks per genre?");
    outcome.source = Some(Source::Repaired { attempt: 2 });
    outcome.confidence = Some(Confidence {
        level: ConfidenceLevel::Medium,
        reasons: vec!["answered by repair attempt 2".into()],
        sql_logprob: None,
    });
    update(
        &mut model,
        pipeline(id, PipelineUpdate::Finished(Ok(Box::new(outcome)))),
    );
    let screen = frame(&model);
    assert_eq!(
        screen.matches("confidence medium").count(),
        2,
        "SQL pane title and status bar:\n{screen}"
    );
}

#[test]
fn an_error_quoting_multi_line_sql_keeps_its_line_breaks() {
    let mut model = ready_model();
    let id = ask(&mut model, "Revenue?");
    send(
        &mut model,
        [pipeline(
            id,
            PipelineUpdate::AttemptFailed {
                attempt: 1,
                sql: "SELECT sum(Total) AS Revenue\nFROM Invoice".into(),
                error: "near \"AS Revenue\nFROM Invoice\": syntax error".into(),
            },
        )],
    );
    let screen = frame(&model);
    assert!(!screen.contains("RevenueFROM"), "{screen}");
    assert!(screen.contains("FROM Invoice\": syntax error"), "{screen}");
}

#[test]
fn an_export_error_is_shown_whole() {
    let mut model = ready_model();
    let id = ask(&mut model, "Tracks per genre?");
    send(&mut model, repaired_run_events(id));
    update(
        &mut model,
        pipeline(
            id,
            PipelineUpdate::Finished(Ok(Box::new(outcome("Tracks per genre?")))),
        ),
    );
    let error = "cannot write '/home/ann/exports/tracks-per-genre-1733333333.json': \
                 Permission denied (os error 13)";
    update(
        &mut model,
        nano_analyst::tui::app::Msg::Exported(Err(nano_analyst::tui::app::WorkerError::Export(
            error.into(),
        ))),
    );
    let screen = frame(&model);
    // The status bar grows to show it whole, wrapped where the line ends.
    assert!(screen.contains("Permission denied (os error"), "{screen}");
    assert!(screen.contains("13)"), "{screen}");
    assert!(screen.contains("export failed: cannot write"), "{screen}");
}
