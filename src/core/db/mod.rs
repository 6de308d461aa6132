//! One user database, read-only: a SQLite file, a PostgreSQL database or a DuckDB source
//! (a DuckDB file, CSV/Parquet files or a folder of them) behind one
//! [`exec::ReadOnlyDb`] (execution with time, row and byte limits, cancel, introspection,
//! dialect), the compact schema text, identifier splitting, SQL parsing and the read-only
//! guard. Depends on nothing else in the core.

pub mod compare;
pub mod duck;
pub mod exec;
pub mod guard;
pub mod ident;
pub mod limits;
pub mod open;
mod pg_tls;
pub mod postgres;
pub mod render;
pub mod schema;
pub mod source;
pub mod sql_ast;
