//! The PostgreSQL password prompt, as psql has it: asked once, before the command starts,
//! when a `postgres://` argument has no password from the URL, `PGPASSWORD` or the pgpass
//! file and the server asks for one. Only on a terminal: a script or a service gets the
//! one-line "asks for a password" error instead of a prompt that would wait forever.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::Path;

use crate::core::db::open::DbError;
use crate::core::db::postgres::PgDb;
use crate::core::db::source::{PgTarget, Source, remember_password};

/// Prompts for the password of every PostgreSQL URL among `arguments` that needs one.
pub fn ask_where_missing(arguments: impl IntoIterator<Item = OsString>) {
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return;
    }
    for argument in arguments {
        if let Some(target) = passwordless_target(&argument)
            && server_wants_a_password(&target)
        {
            match rpassword::prompt_password(format!("Password for {}: ", target.display())) {
                Ok(password) => remember_password(&target, &password),
                Err(error) => tracing::warn!("could not read the password: {error}"),
            }
        }
    }
}

/// The server and database of `argument` when it is a `postgres://` URL for which no
/// password was found.
fn passwordless_target(argument: &OsString) -> Option<PgTarget> {
    let text = argument.to_str()?;
    let scheme = text.split_once("://")?.0.to_ascii_lowercase();
    if !matches!(scheme.as_str(), "postgres" | "postgresql") {
        return None;
    }
    match Source::parse(Path::new(text)) {
        Ok(Source::Postgres(target)) if !target.has_password() => Some(*target),
        _ => None,
    }
}

/// Whether connecting without a password is refused for want of one (any other failure is
/// left to the command, which reports it in its own words).
fn server_wants_a_password(target: &PgTarget) -> bool {
    matches!(PgDb::connect(target), Err(DbError::AuthFailed { .. }))
}
