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
pub use crate::core::finetune::TrainingEvent as ProgressEvent;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Reporter {
    mode: ProgressMode,
    bar: Option<ProgressBar>,
}

impl Reporter {
    pub fn new(mode: ProgressMode) -> Self {
        Self { mode, bar: None }
    }

    pub fn mode(&self) -> ProgressMode {
        self.mode
    }

    /// A line for people (stderr in bar mode; nothing in JSON mode, whose reader gets the
    /// structured events).
    pub fn note(&self, text: &str) {
        if self.mode == ProgressMode::Bar {
            match &self.bar {
                Some(bar) => bar.println(text),
                None => eprintln!("{text}"),
            }
        }
        tracing::info!("{text}");
    }

    pub fn phase(&mut self, phase: &str, detail: &str) {
        self.finish_bar();
        self.emit(&ProgressEvent::Phase {
            phase: phase.into(),
            detail: detail.into(),
        });
        if self.mode == ProgressMode::Bar {
            eprintln!("{phase}: {detail}");
        }
    }

    pub fn start_steps(&mut self, steps: usize) {
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

    pub fn step(&mut self, event: ProgressEvent) {
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

    pub fn emit(&self, event: &ProgressEvent) {
        if self.mode == ProgressMode::Json
            && let Ok(line) = serde_json::to_string(event)
        {
            // A reader that went away (the app quit) must not turn into a panic here.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}").and_then(|()| out.flush());
        }
    }

    pub fn finish_bar(&mut self) {
        if let Some(bar) = self.bar.take() {
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
