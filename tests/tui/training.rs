//! Retraining from the app, scripted: the offer when feedback piles up, the confirmation,
//! the background run's progress in the status bar, and how it ends. No model, no process.

use crossterm::event::KeyCode;
use nano_analyst::core::feedback::history::RetrainingStatus;
use nano_analyst::core::finetune::{Comparison, Score, TrainingEvent};
use nano_analyst::tui::app::{
    Effect, Msg, Training, TrainingUpdate, WorkerError, training_status, update,
};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

use super::fixtures::*;

fn due(new_feedback: u64) -> Msg {
    Msg::RetrainingChecked(Ok(Some(RetrainingStatus {
        new_feedback,
        threshold: 10,
        due: new_feedback >= 10,
        verified_pairs: None,
    })))
}

fn event(event: TrainingEvent) -> Msg {
    Msg::Training(TrainingUpdate::Event(event))
}

fn status_line(model: &nano_analyst::tui::app::Model) -> String {
    let mut terminal = Terminal::new(TestBackend::new(160, 40)).unwrap();
    terminal
        .draw(|frame| nano_analyst::tui::view::view(model, frame))
        .unwrap();
    let buffer = terminal.backend().buffer();
    (0..160)
        .map(|x| buffer[(x, 39)].symbol().to_string())
        .collect::<String>()
}

#[test]
fn feedback_checks_start_at_launch_and_follow_every_rating() {
    let mut model = ready_model();
    assert!(
        !model
            .init()
            .contains(&Effect::CheckRetraining { threshold: 10 })
    );
    model.retrain_threshold = 10;
    assert!(
        model
            .init()
            .contains(&Effect::CheckRetraining { threshold: 10 })
    );
    let effects = send(&mut model, [Msg::Stored(Ok("saved: thumbs down".into()))]);
    assert_eq!(effects, [Effect::CheckRetraining { threshold: 10 }]);
    send(&mut model, [due(4)]);
    assert_eq!(model.training, Training::Idle);
    assert_eq!(training_status(&model), None);
    send(&mut model, [due(10)]);
    assert!(matches!(
        model.training,
        Training::Due {
            new_feedback: 10,
            ..
        }
    ));
    let line = status_line(&model);
    assert!(
        line.contains("retraining due (10 new corrections): ctrl-t to fine-tune"),
        "{line}"
    );
}

#[test]
fn the_retrain_key_asks_first_and_esc_keeps_working() {
    let mut model = ready_model();
    model.retrain_threshold = 10;
    send(&mut model, [due(12)]);
    assert!(
        send(&mut model, [ctrl('t')]).is_empty(),
        "nothing starts on the first press"
    );
    assert_eq!(model.training, Training::Confirming { due: true });
    assert!(
        model
            .flash
            .as_deref()
            .unwrap()
            .contains("press ctrl-t again")
    );
    send(&mut model, [key(KeyCode::Esc)]);
    assert!(matches!(model.training, Training::Due { .. }));
    // Asked again, and confirmed.
    send(&mut model, [ctrl('t')]);
    assert_eq!(send(&mut model, [ctrl('t')]), [Effect::StartTraining]);
    assert!(model.training.is_running());
    // A third press does not start a second run.
    assert!(send(&mut model, [ctrl('t')]).is_empty());
    assert!(model.flash.as_deref().unwrap().contains("already running"));
    // Retraining checks do not hide the run.
    send(&mut model, [due(0)]);
    assert!(model.training.is_running());
}

#[test]
fn progress_shows_in_the_status_bar_while_the_app_stays_usable() {
    let mut model = ready_model();
    send(&mut model, [ctrl('t'), ctrl('t')]);
    send(
        &mut model,
        [event(TrainingEvent::Phase {
            phase: "dequantize".into(),
            detail: "converting".into(),
        })],
    );
    assert!(status_line(&model).contains("training: dequantize"));
    assert!(
        status_line(&model).contains("converting"),
        "the phase's progress shows too"
    );
    send(
        &mut model,
        [event(TrainingEvent::Step {
            epoch: 1,
            epochs: 2,
            step: 12,
            steps: 84,
            loss: 0.4213,
            tokens_per_s: 9.1,
            eta_s: 2400,
        })],
    );
    let line = status_line(&model);
    assert!(
        line.contains("training 12/84 · loss 0.421 · ETA 40m00s"),
        "{line}"
    );
    // A question runs while training goes on.
    let id = ask(&mut model, "How many albums?");
    assert!(model.training.is_running());
    assert!(id > 0);

    let score = |correct, total| Score { correct, total };
    send(
        &mut model,
        [event(TrainingEvent::Done {
            id: "v2".into(),
            passed: true,
            reason: "held-out EX rose".into(),
            held_out: Comparison {
                base: score(20, 42),
                candidate: score(26, 42),
            },
            general: Comparison {
                base: score(70, 100),
                candidate: score(70, 100),
            },
        })],
    );
    send(&mut model, [Msg::Training(TrainingUpdate::Ended(Ok(())))]);
    match &model.training {
        Training::Finished {
            id,
            passed,
            summary,
        } => {
            assert_eq!(id, "v2");
            assert!(passed);
            assert!(summary.contains("held-out EX 47.6% -> 61.9%"), "{summary}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_failed_or_vanished_run_says_why() {
    let mut model = ready_model();
    send(&mut model, [ctrl('t'), ctrl('t')]);
    send(
        &mut model,
        [Msg::Training(TrainingUpdate::Ended(Err(
            WorkerError::Training(
                "not enough disk space in '/data': 13.4 GB needed, 2.0 GB free".into(),
            ),
        )))],
    );
    assert!(status_line(&model).contains("training failed: not enough disk space"));
    // A process that exits without a result is a failure too; a new run can start.
    send(&mut model, [ctrl('t'), ctrl('t')]);
    send(&mut model, [Msg::Training(TrainingUpdate::Ended(Ok(())))]);
    assert!(matches!(model.training, Training::Failed(_)));
    let _ = update(&mut model, Msg::Tick(1));
}
