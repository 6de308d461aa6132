//! One integration-test binary (link time is dominated by llama.cpp), one module per area.

mod support;

mod architecture;
mod cli;
mod duck_sources;
mod eval;
mod feedback;
mod finetune;
mod postgres;
mod remote;
mod retrieval;
mod serve;
mod sources_accuracy;
mod spine;
mod store_races;
mod trust;
mod tui;
