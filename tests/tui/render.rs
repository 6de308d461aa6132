//! Rendered frames of each stage at 120x40 and 80x24 (ratatui `TestBackend` + insta).
//! Clocks and timings come from fixtures, so the frames are stable.

use crossterm::event::KeyCode;
use nano_analyst::core::feedback::history::{HistoryEntry, HistoryStatus};
use nano_analyst::tui::app::{Effect, Model, Msg, PipelineUpdate, update};
use nano_analyst::tui::view::view;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

use super::fixtures::*;

const SIZES: [(u16, u16); 2] = [(120, 40), (80, 24)];

fn frame(model: &Model, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| view(model, f)).unwrap();
    terminal.backend().to_string()
}

fn snapshot_both(name: &str, model: &Model) {
    for (width, height) in SIZES {
        let screen = frame(model, width, height);
        insta::assert_snapshot!(format!("{name}_{width}x{height}"), screen);
    }
}

fn tick(model: &mut Model, ms: u64) {
    update(model, Msg::Tick(ms));
}

#[test]
fn loading_while_the_user_types() {
    let mut model = model();
    update(
        &mut model,
        Msg::Startup(nano_analyst::tui::app::StartupEvent::SchemaRead {
            schema_text: SCHEMA.into(),
            tables: 4,
        }),
    );
    update(
        &mut model,
        Msg::Startup(nano_analyst::tui::app::StartupEvent::Phase(
            "loading the model".into(),
        )),
    );
    tick(&mut model, 2300);
    type_text(&mut model, "How many albums are there?");
    snapshot_both("loading", &model);
}

#[test]
fn generating_streams_sql() {
    let mut model = ready_model();
    let id = ask(&mut model, "Tracks per genre?");
    tick(&mut model, 1000);
    send(&mut model, repaired_run_events(id).into_iter().take(9));
    tick(&mut model, 1800);
    snapshot_both("generating", &model);
}

#[test]
fn repairing_shows_the_failed_attempt() {
    let mut model = ready_model();
    let id = ask(&mut model, "Tracks per genre?");
    let events = repaired_run_events(id);
    send(&mut model, events.into_iter().take(22));
    tick(&mut model, 3400);
    snapshot_both("repairing", &model);
}

fn finished_model() -> Model {
    let mut model = ready_model();
    let id = ask(&mut model, "Tracks per genre?");
    send(&mut model, repaired_run_events(id));
    send(
        &mut model,
        [
            pipeline(
                id,
                PipelineUpdate::Finished(Ok(Box::new(outcome("Tracks per genre?")))),
            ),
            Msg::RunRecorded { id, run: Ok(1) },
        ],
    );
    model
}

#[test]
fn done_with_results_and_answer() {
    let mut model = finished_model();
    send(&mut model, [alt('4'), key(KeyCode::Down)]);
    snapshot_both("done", &model);
}

#[test]
fn failed_run() {
    let mut model = ready_model();
    let id = ask(&mut model, "Show me the weather");
    let mut failed = outcome("Show me the weather");
    failed.result = None;
    failed.answer = None;
    failed.attempts.truncate(1);
    failed.error = Some("could not answer after 1 attempt: no such column: Genre.Name".into());
    send(
        &mut model,
        [pipeline(id, PipelineUpdate::Finished(Ok(Box::new(failed))))],
    );
    snapshot_both("failed", &model);
}

#[test]
fn editing_sql_inline() {
    let mut model = finished_model();
    send(&mut model, [alt('3'), key(KeyCode::Char('e'))]);
    snapshot_both("editing", &model);
}

#[test]
fn chart_view() {
    let mut model = finished_model();
    send(&mut model, [alt('4'), key(KeyCode::Char('c'))]);
    snapshot_both("chart", &model);
}

#[test]
fn zoomed_results() {
    let mut model = finished_model();
    send(&mut model, [alt('4'), alt('z')]);
    snapshot_both("zoomed", &model);
}

#[test]
fn history_overlay() {
    let mut model = finished_model();
    let effects = send(&mut model, [ctrl('r')]);
    let [Effect::ListHistory { id }] = effects.as_slice() else {
        panic!("{effects:?}")
    };
    let entry = |id: i64, question: &str, status: HistoryStatus| HistoryEntry {
        id,
        question: question.into(),
        sql: None,
        status,
        row_count: Some(25),
        rating: None,
        asked_at: 1_700_000_000 + id * 60,
        total_ms: 4100,
        follows: None,
    };
    send(
        &mut model,
        [Msg::HistoryListed {
            id: *id,
            entries: Ok(vec![
                // A follow-up of #2: marked as part of its conversation.
                HistoryEntry {
                    follows: Some(2),
                    ..entry(3, "Tracks per genre?", HistoryStatus::Corrected)
                },
                entry(2, "How many albums are there?", HistoryStatus::Ok),
                entry(1, "Show me the weather", HistoryStatus::Failed),
            ]),
        }],
    );
    type_text(&mut model, "trk");
    snapshot_both("history", &model);
}

#[test]
fn help_overlay() {
    let mut model = ready_model();
    send(&mut model, [key(KeyCode::F(1))]);
    snapshot_both("help", &model);
}

#[test]
fn thumbs_down_note() {
    let mut model = finished_model();
    send(&mut model, [alt('5'), key(KeyCode::Char('-'))]);
    type_text(&mut model, "should count tracks, not albums");
    snapshot_both("note", &model);
}
