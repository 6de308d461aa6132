//! The terminal app: pure update transitions, rendered frames (insta snapshots), the real
//! binary driven in tmux with the real model, and keypress-to-frame latency while tokens
//! stream.

pub(crate) mod e2e;
mod fixtures;
mod follow_up;
mod grid;
mod latency;
mod real_model;
mod render;
mod signals;
mod training;
mod trial_fixes;
mod trust;
mod update;
mod warm;
