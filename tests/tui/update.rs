//! Pure `update` transitions: messages in, model and effects out. No IO, no threads.

use crossterm::event::KeyCode;
use nano_analyst::core::db::exec::QueryResult;
use nano_analyst::core::feedback::history::{HistoryEntry, HistoryStatus, Rating};
use nano_analyst::core::pipeline::outcome::Stage as PipelineStage;
use nano_analyst::tui::app::{
    Active, Effect, Msg, Overlay, Pane, PipelineUpdate, RECALL_LIST_ID, Stage, Startup,
    StartupEvent, WorkerError, update,
};

use super::fixtures::*;

#[test]
fn a_question_flows_through_every_stage_and_is_recorded() {
    let mut model = ready_model();
    type_text(&mut model, "Tracks per genre?");
    let effects = send(&mut model, [key(KeyCode::Enter)]);
    let id = match effects.as_slice() {
        [Effect::Ask { id, question, .. }] => {
            assert_eq!(question, "Tracks per genre?");
            *id
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(model.stage, Stage::Retrieving);
    assert_eq!(model.question_text(), "", "the input is cleared");
    assert_eq!(model.active, Some(Active::Ask(id)));

    send(&mut model, repaired_run_events(id));
    assert_eq!(model.stage, Stage::Answering);
    assert_eq!(model.run.attempts.len(), 2);
    assert_eq!(model.run.attempts[1].sql.trim(), GOOD_SQL);
    assert_eq!(model.run.result, Some(genre_counts()));
    assert_eq!(model.run.answer, "Rock has the most tracks");

    let effects = send(
        &mut model,
        [pipeline(
            id,
            PipelineUpdate::Finished(Ok(Box::new(outcome("Tracks per genre?")))),
        )],
    );
    assert!(matches!(effects.as_slice(), [Effect::RecordRun { id: r, .. }] if *r == id));
    assert_eq!(model.stage, Stage::Done);
    assert_eq!(model.active, None);
    assert_eq!(model.run.timings, Some(timings()));
    send(&mut model, [Msg::RunRecorded { id, run: Ok(7) }]);
    assert_eq!(model.run.run_id, Some(7));
}

#[test]
fn sql_streams_piece_by_piece_and_a_restart_clears_it() {
    let mut model = ready_model();
    let id = ask(&mut model, "q");
    send(
        &mut model,
        [
            pipeline(id, PipelineUpdate::Stage(PipelineStage::Generating(1))),
            pipeline(
                id,
                PipelineUpdate::SqlText {
                    attempt: 1,
                    text: "SELECT ".into(),
                },
            ),
            pipeline(
                id,
                PipelineUpdate::SqlText {
                    attempt: 1,
                    text: "count(*)".into(),
                },
            ),
        ],
    );
    assert_eq!(model.stage, Stage::Generating);
    assert_eq!(model.run.attempts[0].sql, "SELECT count(*)");
    send(
        &mut model,
        [pipeline(id, PipelineUpdate::SqlRestarted { attempt: 1 })],
    );
    assert_eq!(model.run.attempts[0].sql, "");
}

#[test]
fn esc_cancels_at_once_and_later_events_of_that_run_are_dropped() {
    let mut model = ready_model();
    let id = ask(&mut model, "Tracks per genre?");
    send(&mut model, repaired_run_events(id).into_iter().take(6));
    assert_eq!(model.stage, Stage::Generating);
    let effects = send(&mut model, [key(KeyCode::Esc)]);
    assert_eq!(effects, [Effect::CancelAsk { id }]);
    assert_eq!(model.stage, Stage::Cancelled);
    assert_eq!(model.active, None);
    let shown = model.run.attempts.clone();

    // The worker was mid-token: whatever it still sends is ignored.
    let late = send(
        &mut model,
        [
            pipeline(
                id,
                PipelineUpdate::SqlText {
                    attempt: 1,
                    text: "late".into(),
                },
            ),
            pipeline(id, PipelineUpdate::Executed(genre_counts())),
            pipeline(
                id,
                PipelineUpdate::Finished(Ok(Box::new(outcome("Tracks per genre?")))),
            ),
        ],
    );
    assert!(late.is_empty(), "{late:?}");
    assert_eq!(model.run.attempts, shown);
    assert_eq!(model.run.result, None);
    assert_eq!(model.stage, Stage::Cancelled);

    // Esc with nothing running only leaves zoom.
    send(&mut model, [alt('z')]);
    assert!(model.zoomed);
    assert!(send(&mut model, [key(KeyCode::Esc)]).is_empty());
    assert!(!model.zoomed);
}

#[test]
fn a_new_question_replaces_the_running_one_and_stale_results_are_dropped() {
    let mut model = ready_model();
    let first = ask(&mut model, "first");
    type_text(&mut model, "second");
    let effects = send(&mut model, [key(KeyCode::Enter)]);
    let second = match effects.as_slice() {
        [
            Effect::CancelAsk { id },
            Effect::Ask {
                id: new, question, ..
            },
        ] => {
            assert_eq!(*id, first);
            assert_eq!(question, "second");
            *new
        }
        other => panic!("{other:?}"),
    };
    assert!(second > first);
    send(
        &mut model,
        [
            pipeline(first, PipelineUpdate::Executed(genre_counts())),
            pipeline(
                first,
                PipelineUpdate::Finished(Ok(Box::new(outcome("first")))),
            ),
        ],
    );
    assert_eq!(model.run.question, "second");
    assert_eq!(model.run.result, None);
    assert_eq!(model.active, Some(Active::Ask(second)));
    // A recording acknowledged for the old run does not attach to the new one.
    send(
        &mut model,
        [Msg::RunRecorded {
            id: first,
            run: Ok(1),
        }],
    );
    assert_eq!(model.run.run_id, None);
}

#[test]
fn repairs_show_every_attempt_with_its_error_and_the_repair_count() {
    let mut model = ready_model();
    let id = ask(&mut model, "Tracks per genre?");
    let events = repaired_run_events(id);
    let repairing_at = events
        .iter()
        .position(|m| {
            matches!(
                m,
                Msg::Pipeline {
                    update: PipelineUpdate::Stage(PipelineStage::Repairing(2)),
                    ..
                }
            )
        })
        .unwrap();
    send(&mut model, events.into_iter().take(repairing_at + 1));
    assert_eq!(model.stage, Stage::Repairing { repair: 1, of: 3 });
    assert_eq!(model.stage.label(), "repairing 1/3");
    assert_eq!(model.run.attempts.len(), 2);
    assert_eq!(
        model.run.attempts[0].error.as_deref(),
        Some("no such column: Genre.Name")
    );
    assert_eq!(model.run.attempts[0].sql, BAD_SQL);
}

#[test]
fn failures_end_the_run_with_their_message() {
    // Every attempt failed: the pipeline's outcome carries the reason.
    let mut model = ready_model();
    let id = ask(&mut model, "q");
    let mut failed = outcome("q");
    failed.result = None;
    failed.answer = None;
    failed.error = Some("could not answer after 4 attempts: no such table: X".into());
    let effects = send(
        &mut model,
        [pipeline(id, PipelineUpdate::Finished(Ok(Box::new(failed))))],
    );
    assert!(matches!(effects.as_slice(), [Effect::RecordRun { .. }]));
    assert!(matches!(&model.stage, Stage::Failed(e) if e.contains("4 attempts")));
    assert_eq!(model.active, None);

    // The engine failed (prompt too long, inference error).
    let id = ask(&mut model, "q2");
    send(
        &mut model,
        [pipeline(
            id,
            PipelineUpdate::Finished(Err(WorkerError::Pipeline(
                "the prompt needs 5000 tokens".into(),
            ))),
        )],
    );
    assert!(matches!(&model.stage, Stage::Failed(e) if e.contains("5000")));
    assert_eq!(
        model.run.error.as_deref(),
        Some("the prompt needs 5000 tokens")
    );

    // The model never loaded: the waiting question fails with the load error.
    let mut model = super::fixtures::model();
    ask(&mut model, "q3");
    assert_eq!(model.stage, Stage::Retrieving);
    send(
        &mut model,
        [Msg::Startup(StartupEvent::Failed(WorkerError::Startup(
            "model not found: '/x.gguf'".into(),
        )))],
    );
    assert!(matches!(model.startup, Startup::Failed(_)));
    assert!(matches!(&model.stage, Stage::Failed(e) if e.contains("/x.gguf")));

    // The user's SQL failed.
    let mut model = ready_model();
    let id = ask(&mut model, "q");
    send(
        &mut model,
        [pipeline(
            id,
            PipelineUpdate::Finished(Ok(Box::new(outcome("q")))),
        )],
    );
    send(&mut model, [alt('3')]);
    let effects = send(&mut model, [key(KeyCode::Char('r'))]);
    let sql_id = match effects.as_slice() {
        [Effect::RunSql { id, sql }] => {
            assert_eq!(sql, GOOD_SQL);
            *id
        }
        other => panic!("{other:?}"),
    };
    send(
        &mut model,
        [Msg::SqlRan {
            id: sql_id,
            result: Err(WorkerError::Query("no such table: Nope".into())),
            elapsed_ms: 1,
        }],
    );
    assert!(matches!(&model.stage, Stage::Failed(e) if e.contains("Nope")));
    // A failed query cannot be marked correct.
    send(&mut model, [Msg::RunRecorded { id, run: Ok(3) }]);
    let effects = send(&mut model, [key(KeyCode::Char('m'))]);
    assert!(effects.is_empty());
    assert!(
        model
            .flash
            .as_deref()
            .unwrap_or("")
            .contains("run the SQL first")
    );
}

#[test]
fn questions_typed_while_the_model_loads_are_sent_at_once() {
    let mut model = super::fixtures::model();
    assert!(matches!(model.startup, Startup::Loading { .. }));
    let effects = {
        type_text(&mut model, "How many albums?");
        send(&mut model, [key(KeyCode::Enter)])
    };
    assert!(matches!(effects.as_slice(), [Effect::Ask { .. }]));
    send(
        &mut model,
        [Msg::Startup(StartupEvent::ModelReady { model: "m".into() })],
    );
    assert_eq!(model.startup, Startup::Ready { model: "m".into() });
    assert_eq!(model.stage, Stage::Retrieving);
}

#[test]
fn edit_run_and_mark_correct_saves_the_edited_sql() {
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
    send(&mut model, [alt('3'), key(KeyCode::Char('e'))]);
    assert!(model.editor.is_some());
    assert_eq!(
        model.key_context(),
        nano_analyst::tui::keymap::KeyContext::Editor
    );
    // Typing goes into the editor, even keys bound in the SQL pane.
    send(&mut model, [key(KeyCode::End)]);
    type_text(&mut model, " LIMIT 3");
    let effects = send(&mut model, [ctrl('s')]);
    let edited = format!("{GOOD_SQL} LIMIT 3");
    let sql_id = match effects.as_slice() {
        [Effect::RunSql { id, sql }] => {
            assert_eq!(sql, &edited);
            *id
        }
        other => panic!("{other:?}"),
    };
    assert!(model.editor.is_none());
    assert_eq!(model.stage, Stage::RunningSql);
    let mut three = genre_counts();
    three.rows.truncate(3);
    three.total_rows = Some(3);
    send(
        &mut model,
        [Msg::SqlRan {
            id: sql_id,
            result: Ok(three.clone()),
            elapsed_ms: 2,
        }],
    );
    assert_eq!(model.run.result, Some(three));
    assert_eq!(model.stage, Stage::Done);
    let effects = send(&mut model, [key(KeyCode::Char('m'))]);
    assert_eq!(
        effects,
        [Effect::Correct {
            run: 5,
            sql: edited
        }]
    );
    assert!(model.run.corrected);
}

#[test]
fn running_sql_can_be_cancelled_and_its_late_result_is_dropped() {
    let mut model = ready_model();
    let id = ask(&mut model, "q");
    send(
        &mut model,
        [pipeline(
            id,
            PipelineUpdate::Finished(Ok(Box::new(outcome("q")))),
        )],
    );
    send(&mut model, [alt('3')]);
    let effects = send(&mut model, [key(KeyCode::Char('r'))]);
    let Effect::RunSql { id: sql_id, .. } = effects[0].clone() else {
        panic!("{effects:?}")
    };
    assert_eq!(
        send(&mut model, [key(KeyCode::Esc)]),
        [Effect::CancelSql { id: sql_id }]
    );
    send(
        &mut model,
        [Msg::SqlRan {
            id: sql_id,
            result: Ok(QueryResult {
                columns: vec!["x".into()],
                rows: vec![],
                total_rows: Some(0),
                cut: None,
            }),
            elapsed_ms: 1,
        }],
    );
    assert_eq!(model.stage, Stage::Cancelled);
    assert_eq!(model.run.result, Some(genre_counts()));
}

#[test]
fn thumbs_up_and_down_with_a_note_are_stored_with_the_run() {
    let mut model = ready_model();
    let id = ask(&mut model, "q");
    send(
        &mut model,
        [pipeline(
            id,
            PipelineUpdate::Finished(Ok(Box::new(outcome("q")))),
        )],
    );
    send(&mut model, [alt('5')]);
    // Not saved yet: nothing to attach the rating to.
    assert!(send(&mut model, [key(KeyCode::Char('+'))]).is_empty());
    send(&mut model, [Msg::RunRecorded { id, run: Ok(9) }]);
    assert_eq!(
        send(&mut model, [key(KeyCode::Char('+'))]),
        [Effect::Rate {
            run: 9,
            rating: Rating::Up,
            note: None
        }]
    );
    assert!(send(&mut model, [key(KeyCode::Char('-'))]).is_empty());
    assert!(matches!(model.overlay, Overlay::Note { .. }));
    type_text(&mut model, "wrong join");
    assert_eq!(
        send(&mut model, [key(KeyCode::Enter)]),
        [Effect::Rate {
            run: 9,
            rating: Rating::Down,
            note: Some("wrong join".into())
        }]
    );
    assert!(matches!(model.overlay, Overlay::None));
    assert_eq!(model.run.rating, Some(Rating::Down));
}

fn entry(id: i64, question: &str, status: HistoryStatus) -> HistoryEntry {
    HistoryEntry {
        id,
        question: question.into(),
        sql: Some(format!("SELECT {id}")),
        status,
        row_count: Some(id as u64),
        rating: None,
        asked_at: 1_700_000_000 + id,
        total_ms: 1000,
        follows: None,
    }
}

#[test]
fn history_lists_filters_fuzzily_and_opens_reruns_or_copies_a_run() {
    let mut model = ready_model();
    let effects = send(&mut model, [ctrl('r')]);
    let [Effect::ListHistory { id }] = effects.as_slice() else {
        panic!("{effects:?}")
    };
    let entries = vec![
        entry(
            3,
            "Which genre has the most tracks?",
            HistoryStatus::Corrected,
        ),
        entry(2, "How many albums are there?", HistoryStatus::Ok),
        entry(1, "List customers in Brazil", HistoryStatus::Failed),
    ];
    // A listing for another request is ignored.
    send(
        &mut model,
        [Msg::HistoryListed {
            id: id + 100,
            entries: Ok(vec![]),
        }],
    );
    send(
        &mut model,
        [Msg::HistoryListed {
            id: *id,
            entries: Ok(entries),
        }],
    );
    let Overlay::History(history) = &model.overlay else {
        panic!("no history overlay")
    };
    assert_eq!(history.matches, [0, 1, 2]);
    type_text(&mut model, "albms");
    let Overlay::History(history) = &model.overlay else {
        panic!()
    };
    assert_eq!(history.matches, [1], "fuzzy: 'albms' finds 'albums'");
    send(&mut model, [key(KeyCode::Backspace)]);
    assert_eq!(
        send(&mut model, [ctrl('y')]),
        [Effect::Copy("SELECT 2".into())]
    );
    assert_eq!(
        send(&mut model, [key(KeyCode::Enter)]),
        [Effect::LoadRun { run: 2 }]
    );
    assert!(matches!(model.overlay, Overlay::None));
    send(
        &mut model,
        [Msg::RunLoaded {
            run: 2,
            outcome: Ok(Some(Box::new(outcome("How many albums are there?")))),
        }],
    );
    assert_eq!(model.run.question, "How many albums are there?");
    assert_eq!(model.run.run_id, Some(2));
    assert_eq!(model.stage, Stage::Done);

    // Re-run from the history asks again.
    let effects = send(&mut model, [ctrl('r')]);
    let [Effect::ListHistory { id }] = effects.as_slice() else {
        panic!()
    };
    send(
        &mut model,
        [Msg::HistoryListed {
            id: *id,
            entries: Ok(vec![entry(
                2,
                "How many albums are there?",
                HistoryStatus::Ok,
            )]),
        }],
    );
    let effects = send(&mut model, [ctrl('o')]);
    assert!(
        matches!(effects.as_slice(), [Effect::Ask { question, .. }] if question == "How many albums are there?")
    );
}

#[test]
fn up_and_down_recall_earlier_questions() {
    let mut model = ready_model();
    send(
        &mut model,
        [Msg::HistoryListed {
            id: RECALL_LIST_ID,
            entries: Ok(vec![
                entry(2, "newest", HistoryStatus::Ok),
                entry(1, "oldest", HistoryStatus::Ok),
            ]),
        }],
    );
    type_text(&mut model, "draft");
    send(&mut model, [key(KeyCode::Up)]);
    assert_eq!(model.question_text(), "newest");
    send(&mut model, [key(KeyCode::Up)]);
    assert_eq!(model.question_text(), "oldest");
    send(&mut model, [key(KeyCode::Down), key(KeyCode::Down)]);
    assert_eq!(model.question_text(), "draft");
}

#[test]
fn focus_keys_tab_zoom_and_typing_anywhere() {
    let mut model = ready_model();
    assert_eq!(model.focus, Pane::Question);
    send(&mut model, [key(KeyCode::Tab)]);
    assert_eq!(model.focus, Pane::Schema);
    send(&mut model, [key(KeyCode::BackTab), key(KeyCode::BackTab)]);
    assert_eq!(model.focus, Pane::Answer);
    send(&mut model, [alt('4'), alt('z')]);
    assert_eq!(model.focus, Pane::Results);
    assert!(model.zoomed);
    // A letter with no binding in the Results pane starts a question.
    type_text(&mut model, "W");
    assert_eq!(model.focus, Pane::Question);
    assert_eq!(model.question_text(), "W");
    send(&mut model, [key(KeyCode::F(1))]);
    assert!(matches!(model.overlay, Overlay::Help));
    send(&mut model, [key(KeyCode::Esc)]);
    assert!(matches!(model.overlay, Overlay::None));
}

#[test]
fn results_cursor_copy_chart_and_export() {
    let mut model = ready_model();
    let id = ask(&mut model, "Tracks per genre?");
    send(
        &mut model,
        [pipeline(
            id,
            PipelineUpdate::Finished(Ok(Box::new(outcome("Tracks per genre?")))),
        )],
    );
    send(
        &mut model,
        [alt('4'), key(KeyCode::Down), key(KeyCode::Right)],
    );
    assert_eq!((model.results.row, model.results.column), (1, 1));
    assert_eq!(
        send(&mut model, [key(KeyCode::Char('y'))]),
        [Effect::Copy("579".into())]
    );
    assert_eq!(
        send(&mut model, [key(KeyCode::Char('Y'))]),
        [Effect::Copy("Latin\t579".into())]
    );
    send(&mut model, [key(KeyCode::End)]);
    assert_eq!(model.results.row, 5);
    send(&mut model, [key(KeyCode::Char('c'))]);
    assert!(model.results.chart);
    let effects = send(&mut model, [key(KeyCode::Char('x'))]);
    assert!(matches!(
        effects.as_slice(),
        [Effect::Export {
            format: nano_analyst::tui::app::ExportFormat::Csv,
            ..
        }]
    ));
}

#[test]
fn only_changes_mark_the_screen_dirty() {
    let mut model = ready_model();
    model.dirty = false;
    update(&mut model, Msg::Tick(5_000));
    assert!(!model.dirty, "an idle tick draws nothing");
    ask(&mut model, "q");
    model.dirty = false;
    update(&mut model, Msg::Tick(5_100));
    assert!(model.dirty, "a running stage redraws its clock");
    let mut quit = ready_model();
    assert_eq!(send(&mut quit, [ctrl('c')]), [Effect::Quit]);
    assert!(quit.quit);
}
