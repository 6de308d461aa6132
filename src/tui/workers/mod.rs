//! One actor per blocking resource, each on its own OS thread, answering with [`Msg`]s on
//! the app's channel: the model ([`inference`]), the user's database for edited SQL
//! ([`database`]), the run history ([`store`]). Exports run on short-lived threads;
//! fine-tuning runs as a child process ([`training`]).
//!
//! [`Msg`]: crate::tui::app::Msg

pub mod database;
pub mod export;
pub mod inference;
pub mod store;
pub mod training;
