//! One user database, read-only: execution with time, row and byte limits, schema introspection,
//! the compact schema text, identifier splitting, SQL parsing and the read-only guard.
//! Depends on nothing else in the core.

pub mod compare;
pub mod exec;
pub mod guard;
pub mod ident;
pub mod limits;
pub mod open;
pub mod render;
pub mod schema;
pub mod sql_ast;
