//! Follow-up questions in the app (scripted, pure `update`): the earlier turn goes with a
//! question that reads as a follow-up, a new topic starts by itself or with the key, the
//! thread is recorded, and the question pane keeps the conversation on screen.

use crossterm::event::KeyCode;
use nano_analyst::core::pipeline::EarlierTurn;
use nano_analyst::tui::app::{Effect, Model, Msg, PipelineUpdate};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

use super::fixtures::*;

fn finish(model: &mut Model, id: u64, question: &str, run: i64) -> Vec<Effect> {
    send(
        model,
        [
            pipeline(
                id,
                PipelineUpdate::Finished(Ok(Box::new(outcome(question)))),
            ),
            Msg::RunRecorded { id, run: Ok(run) },
        ],
    )
}

fn asked(effects: &[Effect]) -> (u64, Vec<EarlierTurn>) {
    match effects {
        [Effect::Ask { id, earlier, .. }] => (*id, earlier.clone()),
        other => panic!("{other:?}"),
    }
}

fn screen(model: &Model) -> String {
    let mut terminal = Terminal::new(TestBackend::new(100, 30)).unwrap();
    terminal
        .draw(|frame| nano_analyst::tui::view::view(model, frame))
        .unwrap();
    terminal.backend().to_string()
}

#[test]
fn a_follow_up_goes_with_the_previous_turn_and_is_recorded_under_it() {
    let mut model = ready_model();
    let first = ask(&mut model, "Tracks per genre?");
    let effects = finish(&mut model, first, "Tracks per genre?", 7);
    assert!(matches!(
        effects.as_slice(),
        [Effect::RecordRun { parent: None, .. }]
    ));

    type_text(&mut model, "only the top 3");
    assert!(screen(&model).contains("follow-up (ctrl-n: new topic)"));
    let (second, earlier) = asked(&send(&mut model, [key(KeyCode::Enter)]));
    assert_eq!(
        earlier,
        [EarlierTurn {
            question: "Tracks per genre?".into(),
            sql: GOOD_SQL.into(),
        }]
    );
    assert_eq!(model.run.parent, Some(7));
    let screen_text = screen(&model);
    assert!(screen_text.contains("Tracks per genre?"), "{screen_text}");
    assert!(
        screen_text.contains("asked: only the top 3"),
        "{screen_text}"
    );
    let effects = finish(&mut model, second, "only the top 3", 8);
    assert!(matches!(
        effects.as_slice(),
        [Effect::RecordRun {
            parent: Some(7),
            ..
        }]
    ));

    // Two earlier turns at most, newest last.
    let (_, earlier) = asked(&type_and_enter(&mut model, "same for rock"));
    let questions: Vec<&str> = earlier.iter().map(|t| t.question.as_str()).collect();
    assert_eq!(questions, ["Tracks per genre?", "only the top 3"]);
    assert_eq!(model.run.parent, Some(8));
}

fn type_and_enter(model: &mut Model, text: &str) -> Vec<Effect> {
    type_text(model, text);
    send(model, [key(KeyCode::Enter)])
}

#[test]
fn a_question_that_stands_alone_or_the_new_topic_key_starts_afresh() {
    let mut model = ready_model();
    let first = ask(&mut model, "Tracks per genre?");
    finish(&mut model, first, "Tracks per genre?", 7);
    let (_, earlier) = asked(&type_and_enter(&mut model, "How many albums are there?"));
    assert!(earlier.is_empty());
    assert_eq!(model.run.parent, None);
    assert!(model.conversation.turns.is_empty());

    let mut model = ready_model();
    let first = ask(&mut model, "Tracks per genre?");
    finish(&mut model, first, "Tracks per genre?", 7);
    send(&mut model, [ctrl('n')]);
    assert!(model.flash.as_deref().unwrap_or("").contains("new topic"));
    let (_, earlier) = asked(&type_and_enter(&mut model, "only the top 3"));
    assert!(earlier.is_empty(), "the key started a new conversation");
}

#[test]
fn a_run_opened_from_history_keeps_its_question_and_can_be_followed_up() {
    let mut model = ready_model();
    send(
        &mut model,
        [Msg::RunLoaded {
            run: 3,
            outcome: Ok(Some(Box::new(outcome("Tracks per genre?")))),
        }],
    );
    assert!(screen(&model).contains("asked: Tracks per genre?"));
    let (_, earlier) = asked(&type_and_enter(&mut model, "now by artist"));
    assert_eq!(earlier.len(), 1);
    assert_eq!(model.run.parent, Some(3));
}

#[test]
fn the_help_overlay_documents_the_new_topic_key() {
    let mut model = ready_model();
    send(&mut model, [key(KeyCode::F(1))]);
    let text = screen(&model);
    assert!(text.contains("new topic"), "{text}");
}
