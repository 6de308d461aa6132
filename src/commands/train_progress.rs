//! How `train run` reports progress: a bar with loss, tokens/s and ETA on stderr, or one
//! JSON object per line on stdout for the terminal app, which runs training as a child
//! process and shows these events in its status bar.
//!
//! JSON events (`event` says which):
//! - `{"event":"phase","phase":"dequantize"|"tokenize"|"train"|"save"|"quantize"|"eval","detail":..}`
//! - `{"event":"step","epoch":1,"epochs":2,"step":3,"steps":84,"loss":0.91,"tokens_per_s":9.2,"eta_s":812}`
//! - `{"event":"done","id":"v1","passed":true,"reason":..,"held_out":{..},"general":{..}}`
//! - `{"event":"error","message":..}`

use std::io::Write;
use std::time::Duration;

use crate::cli::ProgressMode;
use crate::commands::eval::{progress_bar, update_bar};
use crate::core::eval::Prediction;
pub use crate::core::finetune::TrainingEvent as ProgressEvent;
use crate::session::finetune::FinetuneProgress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Reporter {
    mode: ProgressMode,
    bar: Option<ProgressBar>,
    /// The gate evaluation in progress (hidden in JSON mode).
    eval_bar: Option<ProgressBar>,
}

impl Reporter {
    pub fn new(mode: ProgressMode) -> Self {
        Self {
            mode,
            bar: None,
            eval_bar: None,
        }
    }

    pub fn mode(&self) -> ProgressMode {
        self.mode
    }

    pub fn emit(&self, event: &ProgressEvent) {
        if self.mode == ProgressMode::Json
            && let Ok(line) = serde_json::to_string(event)
        {
            // A reader that went away (the app quit) must not turn into a panic here.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", super::terminal::visible(&line)).and_then(|()| out.flush());
        }
    }

    pub fn finish_bar(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        // Only a failed evaluation leaves its bar here; it stays on screen as it was.
        self.eval_bar = None;
    }
}

impl FinetuneProgress for Reporter {
    /// A line for people (stderr in bar mode; nothing in JSON mode, whose reader gets the
    /// structured events).
    fn note(&mut self, text: &str) {
        if self.mode == ProgressMode::Bar {
            match &self.bar {
                Some(bar) => bar.println(text),
                None => crate::errln!("{text}"),
            }
        }
        tracing::info!("{text}");
    }

    fn phase(&mut self, phase: &str, detail: &str) {
        self.finish_bar();
        self.emit(&ProgressEvent::Phase {
            phase: phase.into(),
            detail: detail.into(),
        });
        if self.mode == ProgressMode::Bar {
            crate::errln!("{phase}: {detail}");
        }
    }

    fn start_steps(&mut self, steps: usize) {
        if self.mode != ProgressMode::Bar {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(steps as u64), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{bar:30.cyan/blue} {pos}/{len} steps | {msg} | {elapsed_precise} elapsed, ETA {eta}",
        ) {
            bar.set_style(style.progress_chars("█▉▊▋▌▍▎▏ "));
        }
        bar.enable_steady_tick(Duration::from_millis(500));
        self.bar = Some(bar);
    }

    fn step(&mut self, event: ProgressEvent) {
        if let (
            Some(bar),
            ProgressEvent::Step {
                epoch,
                epochs,
                step,
                loss,
                tokens_per_s,
                ..
            },
        ) = (&self.bar, &event)
        {
            bar.set_position(*step as u64);
            bar.set_message(format!(
                "epoch {epoch}/{epochs} | loss {loss:.3} | {tokens_per_s:.1} tokens/s"
            ));
        }
        self.emit(&event);
    }

    fn eval_started(&mut self, questions: usize) {
        let quiet = self.mode == ProgressMode::Json;
        self.eval_bar = Some(progress_bar(questions, 0, quiet));
    }

    fn eval_answered(&mut self, predictions: &[Prediction], db_id: &str) {
        if let Some(bar) = &self.eval_bar {
            bar.inc(1);
            update_bar(bar, predictions, db_id);
        }
    }

    fn eval_finished(&mut self) {
        if let Some(bar) = self.eval_bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.finish_bar();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialise_with_their_kind() {
        let line = serde_json::to_string(&ProgressEvent::Step {
            epoch: 1,
            epochs: 2,
            step: 3,
            steps: 84,
            loss: 0.5,
            tokens_per_s: 9.0,
            eta_s: 10,
        })
        .unwrap();
        assert!(line.starts_with(r#"{"event":"step","epoch":1"#), "{line}");
    }
}
