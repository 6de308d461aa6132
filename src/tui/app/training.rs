//! Fine-tuning from the app: when enough feedback piled up, the status bar offers it; the
//! retrain key asks for confirmation, then starts `train run` as a background process
//! (a crash there cannot take the app down) whose progress lines arrive as messages. The
//! app stays usable throughout. Pure: effects only.

use crate::core::feedback::history::RetrainingStatus;
use crate::core::finetune::{MIN_TRAINING_PAIRS, TrainingEvent};
use crate::tui::app::{Effect, Model, Training, TrainingUpdate, WorkerError};
use crate::tui::keymap::{Command, KeyContext};

/// The retrain key: first press asks, second press starts.
pub(super) fn on_retrain_key(model: &mut Model, effects: &mut Vec<Effect>) {
    let key = model
        .config
        .keymap
        .key_for(KeyContext::Global, Command::Retrain)
        .map(|k| k.to_string())
        .unwrap_or_else(|| "the retrain key".into());
    match &model.training {
        Training::Running { .. } => {
            model.flash = Some("training is already running in the background".into());
        }
        Training::Confirming { .. } => {
            model.training = Training::Running {
                phase: "starting".into(),
                detail: String::new(),
                step: 0,
                steps: 0,
                loss: None,
                eta_s: None,
            };
            model.flash = None;
            effects.push(Effect::StartTraining);
        }
        _ if too_few_pairs(model).is_some() => {
            model.flash = too_few_pairs(model);
        }
        other => {
            let due = matches!(other, Training::Due { .. });
            model.training = Training::Confirming { due };
            model.flash = Some(format!(
                "fine-tune the model on your verified answers? It runs in the background for \
                 an hour or more and uses several GB of disk; press {key} again to start, esc to \
                 keep working"
            ));
        }
    }
}

/// Why training cannot start yet, when the store said how many verified pairs there are:
/// `train run` needs [`MIN_TRAINING_PAIRS`] to train on half and judge on the other half.
fn too_few_pairs(model: &Model) -> Option<String> {
    let pairs = model.verified_pairs?;
    (pairs < MIN_TRAINING_PAIRS as u64).then(|| {
        format!(
            "fine-tuning needs at least {MIN_TRAINING_PAIRS} verified answers on this database \
             and it has {pairs}: mark SQL correct or rate good answers first"
        )
    })
}

/// Esc while confirming: back to where it was. Returns whether it handled the key.
pub(super) fn cancel_confirmation(model: &mut Model) -> bool {
    let Training::Confirming { due } = model.training else {
        return false;
    };
    model.training = if due {
        // The numbers come back with the next check; keep offering meanwhile.
        Training::Due {
            new_feedback: model.retrain_threshold,
            threshold: model.retrain_threshold,
        }
    } else {
        Training::Idle
    };
    model.flash = Some("not training".into());
    true
}

pub(super) fn on_retraining_checked(
    model: &mut Model,
    status: Result<Option<RetrainingStatus>, WorkerError>,
) {
    let status = match status {
        Ok(Some(status)) => status,
        Ok(None) => return,
        Err(error) => {
            tracing::warn!("cannot read the retraining status: {error}");
            return;
        }
    };
    if status.verified_pairs.is_some() {
        model.verified_pairs = status.verified_pairs;
    }
    // A run in progress, a question being confirmed or a result on screen stay.
    if matches!(model.training, Training::Idle | Training::Due { .. }) {
        model.training = if status.due && too_few_pairs(model).is_none() {
            Training::Due {
                new_feedback: status.new_feedback,
                threshold: status.threshold,
            }
        } else {
            Training::Idle
        };
    }
}

pub(super) fn on_training_update(model: &mut Model, update: TrainingUpdate) {
    match update {
        TrainingUpdate::Event(event) => on_event(model, event),
        TrainingUpdate::Ended(Ok(())) => {
            if model.training.is_running() {
                model.training = Training::Failed("training stopped without a result".into());
            }
        }
        TrainingUpdate::Ended(Err(error)) => {
            if !matches!(model.training, Training::Finished { .. }) {
                model.training = Training::Failed(error.to_string());
            }
        }
    }
}

fn on_event(model: &mut Model, event: TrainingEvent) {
    match event {
        TrainingEvent::Phase { phase, detail } => {
            if let Training::Running {
                phase: current,
                detail: current_detail,
                loss,
                eta_s,
                ..
            } = &mut model.training
            {
                *current = phase;
                *current_detail = detail;
                if current != "train" {
                    *loss = None;
                    *eta_s = None;
                }
            }
        }
        TrainingEvent::Step {
            step,
            steps,
            loss,
            eta_s,
            ..
        } => {
            model.training = Training::Running {
                phase: "train".into(),
                detail: String::new(),
                step,
                steps,
                loss: Some(loss),
                eta_s: Some(eta_s),
            };
        }
        TrainingEvent::Done {
            id,
            passed,
            reason,
            held_out,
            general,
        } => {
            let verdict = if passed {
                "now in use"
            } else {
                "rejected, base model kept"
            };
            let general = if general.base.total == 0 {
                "not evaluated".to_string()
            } else {
                format!(
                    "{:.1}% -> {:.1}%",
                    general.base.percent(),
                    general.candidate.percent()
                )
            };
            let next = if passed {
                "; restart the app to load it"
            } else {
                ""
            };
            model.training = Training::Finished {
                summary: format!(
                    "{id} {verdict}: held-out EX {:.1}% -> {:.1}%, general {general} ({reason}){next}",
                    held_out.base.percent(),
                    held_out.candidate.percent(),
                ),
                id,
                passed,
            };
        }
        TrainingEvent::Error { message } => model.training = Training::Failed(message),
    }
}

/// The status bar's training segment, and whether it asks for attention.
pub fn status_text(model: &Model) -> Option<(String, bool)> {
    let key = model
        .config
        .keymap
        .key_for(KeyContext::Global, Command::Retrain)
        .map(|k| k.to_string())
        .unwrap_or_default();
    match &model.training {
        Training::Idle => None,
        Training::Due { new_feedback, .. } => Some((
            format!("retraining due ({new_feedback} new corrections): {key} to fine-tune"),
            true,
        )),
        Training::Confirming { .. } => Some((format!("{key} again starts training"), true)),
        Training::Running {
            phase,
            detail,
            step,
            steps,
            loss,
            eta_s,
        } => Some((
            match (phase.as_str(), loss, eta_s) {
                ("train", Some(loss), Some(eta)) => format!(
                    "training {step}/{steps} · loss {loss:.3} · ETA {}",
                    format_eta(*eta)
                ),
                (phase, _, _) if detail.is_empty() => format!("training: {phase}"),
                (phase, _, _) => format!("training: {phase} · {detail}"),
            },
            false,
        )),
        Training::Finished { summary, .. } => Some((summary.clone(), false)),
        Training::Failed(reason) => Some((format!("training failed: {reason}"), true)),
    }
}

fn format_eta(seconds: u64) -> String {
    if seconds >= 3600 {
        format!("{}h{:02}m", seconds / 3600, seconds % 3600 / 60)
    } else if seconds >= 60 {
        format!("{}m{:02}s", seconds / 60, seconds % 60)
    } else {
        format!("{seconds}s")
    }
}
