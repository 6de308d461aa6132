//! What the user tells us back: the run history (trait and SQLite store with migrations),
//! ratings and corrections, the example memory built from them and the retraining export.

pub mod history;
pub mod memory;
pub mod store;
pub mod training;
