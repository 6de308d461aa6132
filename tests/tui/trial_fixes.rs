//! Fixes from the trial, each pinned: the table count while loading, "ready" while
//! indexing, a stale answer and correction mark after running edited SQL, long status
//! messages, the retrain offer's minimum, and the mouse.

use crossterm::event::KeyCode;
use nano_analyst::core::feedback::history::RetrainingStatus;
use nano_analyst::tui::app::{
    Effect, Model, MouseAction, MouseInput, Msg, Pane, PipelineUpdate, StartupEvent, Training,
    update,
};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

use super::fixtures::*;

fn screen(model: &Model, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal
        .draw(|frame| nano_analyst::tui::view::view(model, frame))
        .unwrap();
    terminal.backend().to_string()
}

/// Chinook's 11 tables as the schema pane shows them: one closing line per table.
fn chinook_like_schema() -> String {
    (0..11)
        .map(|i| format!("CREATE TABLE T{i} (\n  Id INTEGER PRIMARY KEY\n)\n"))
        .collect()
}

#[test]
fn loading_counts_tables_not_lines_and_never_says_ready() {
    let mut model = model();
    update(
        &mut model,
        Msg::Startup(StartupEvent::SchemaRead {
            schema_text: chinook_like_schema(),
            tables: 11,
        }),
    );
    update(
        &mut model,
        Msg::Startup(StartupEvent::Phase("indexing the schema".into())),
    );
    let text = screen(&model, 120, 40);
    assert!(text.contains("database opened (11 tables)"), "{text}");
    assert!(!text.contains("22 tables"));
    let status = text.lines().last().unwrap_or_default().to_string();
    assert!(status.contains("starting"), "{status}");
    assert!(!status.contains("ready"), "{status}");
}

#[test]
fn running_edited_sql_drops_the_old_answer_and_correction_mark() {
    let mut model = ready_model();
    let id = ask(&mut model, "Tracks per genre?");
    send(
        &mut model,
        [
            pipeline(
                id,
                PipelineUpdate::Finished(Ok(Box::new(outcome("Tracks per genre?")))),
            ),
            Msg::RunRecorded { id, run: Ok(5) },
        ],
    );
    send(&mut model, [alt('3'), key(KeyCode::Char('m'))]);
    assert!(model.run.corrected);
    send(&mut model, [key(KeyCode::Char('e')), key(KeyCode::End)]);
    type_text(&mut model, " LIMIT 2");
    let effects = send(&mut model, [ctrl('s')]);
    assert!(matches!(effects.as_slice(), [Effect::RunSql { .. }]));
    assert!(!model.run.corrected, "the mark was for the earlier SQL");
    assert_eq!(
        model.run.answer, "",
        "the answer was for the earlier result"
    );
    let text = screen(&model, 120, 40);
    assert!(!text.contains("saved as correct"), "{text}");
    assert!(!text.contains("Rock has the most tracks (1297)"), "{text}");
}

#[test]
fn a_long_status_message_is_shown_whole() {
    let mut model = ready_model();
    send(&mut model, [ctrl('t')]);
    let flash = model.flash.clone().unwrap_or_default();
    assert!(flash.ends_with("esc to keep working"), "{flash}");
    for (width, height) in [(80, 24), (120, 40)] {
        let text = screen(&model, width, height);
        let joined: String = text
            .lines()
            .map(|l| l.trim_matches('"').trim_end())
            .collect::<Vec<_>>()
            .join(" ");
        assert!(joined.contains("keep working"), "{width}x{height}:\n{text}");
    }
}

fn pairs(verified: u64) -> Msg {
    Msg::RetrainingChecked(Ok(Some(RetrainingStatus {
        new_feedback: 12,
        threshold: 10,
        due: true,
        verified_pairs: Some(verified),
    })))
}

#[test]
fn retraining_is_offered_only_with_enough_verified_pairs() {
    let minimum = nano_analyst::core::finetune::MIN_TRAINING_PAIRS as u64;
    let mut model = ready_model();
    model.retrain_threshold = 10;
    send(&mut model, [pairs(2)]);
    assert_eq!(model.training, Training::Idle, "no offer with 2 pairs");
    let effects = send(&mut model, [ctrl('t'), ctrl('t')]);
    assert!(effects.is_empty(), "{effects:?}");
    let flash = model.flash.clone().unwrap_or_default();
    assert!(
        flash.contains(&format!("at least {minimum} verified answers")) && flash.contains("has 2"),
        "{flash}"
    );
    send(&mut model, [pairs(minimum)]);
    assert!(matches!(model.training, Training::Due { .. }));
    let effects = send(&mut model, [ctrl('t'), ctrl('t')]);
    assert_eq!(effects, [Effect::StartTraining]);
}

fn mouse(action: MouseAction, column: u16, row: u16) -> Msg {
    Msg::Mouse(MouseInput {
        action,
        column,
        row,
        width: 120,
        height: 40,
    })
}

#[test]
fn the_wheel_scrolls_the_pane_under_the_pointer_and_a_click_focuses_it() {
    let mut model = ready_model();
    let id = ask(&mut model, "Tracks per genre?");
    send(
        &mut model,
        [pipeline(
            id,
            PipelineUpdate::Finished(Ok(Box::new(outcome("Tracks per genre?")))),
        )],
    );
    type_text(&mut model, "draft question");
    assert_eq!(model.focus, Pane::Question);
    // The results pane is in the middle of a 120x40 screen; the schema is top right.
    send(&mut model, [mouse(MouseAction::ScrollDown, 10, 25)]);
    assert_eq!(
        model.results.row, 1,
        "the results under the pointer scrolled"
    );
    assert_eq!(model.focus, Pane::Question, "focus stays");
    send(&mut model, [mouse(MouseAction::ScrollDown, 110, 5)]);
    assert_eq!(model.scrolls.schema, 1);
    // Over the question the wheel never replaces what is typed.
    send(&mut model, [mouse(MouseAction::ScrollUp, 10, 1)]);
    assert_eq!(model.question_text(), "draft question");
    send(&mut model, [mouse(MouseAction::Click, 10, 25)]);
    assert_eq!(model.focus, Pane::Results);
    send(&mut model, [mouse(MouseAction::Click, 110, 5)]);
    assert_eq!(model.focus, Pane::Schema);
}
