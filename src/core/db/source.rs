//! Where a database comes from: a SQLite file path (the default), a `postgres://` URL, or
//! a DuckDB source (a DuckDB database, CSV/Parquet files or a folder of them, told apart
//! by their headers in [`super::duck::files`]), and the SQL dialect each one speaks.
//!
//! Every command takes the same argument, so a URL travels wherever a path does. A URL is
//! only ever shown without its password ([`PgTarget::display`]); the password comes from the
//! URL, `PGPASSWORD` or the pgpass file, in that order, as libpq does, and last from what
//! the user typed at the prompt ([`remember_password`]).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::core::db::duck::files::{self, DuckTarget, FileKind};
use crate::core::db::open::DbError;
use crate::core::db::pg_tls::{self, TlsSettings};

/// How long connecting to a server may take before it is called unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The SQL a database speaks: what the prompt names, the guard parses and the grammar offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SqlDialect {
    #[default]
    Sqlite,
    Postgres,
    DuckDb,
}

impl SqlDialect {
    /// The name the prompt uses ("Write one SQLite query").
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
            Self::DuckDb => "DuckDB",
        }
    }

    pub(crate) fn parser(self) -> Box<dyn sqlparser::dialect::Dialect> {
        match self {
            Self::Sqlite => Box::new(sqlparser::dialect::SQLiteDialect {}),
            Self::Postgres => Box::new(sqlparser::dialect::PostgreSqlDialect {}),
            Self::DuckDb => Box::new(sqlparser::dialect::DuckDbDialect {}),
        }
    }
}

/// A database argument, parsed.
#[derive(Debug, Clone)]
pub enum Source {
    Sqlite(PathBuf),
    Postgres(Box<PgTarget>),
    DuckDb(DuckTarget),
}

impl Source {
    /// A `scheme://` argument is a URL (only `postgres`/`postgresql` are known); anything
    /// else is a file or folder path, read as a path even when it looks like `file:x.db`,
    /// whose kind its contents decide ([`files::classify`]).
    pub fn parse(argument: &Path) -> Result<Self, DbError> {
        let Some(text) = argument.to_str() else {
            return Self::path(argument);
        };
        let Some((scheme, _)) = text.split_once("://") else {
            return Self::path(argument);
        };
        let plain_scheme = !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !plain_scheme {
            return Self::path(argument);
        }
        match scheme.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" => Ok(Self::Postgres(Box::new(PgTarget::parse(text)?))),
            "sqlite" | "file" => Err(DbError::UnknownScheme {
                scheme: scheme.to_string(),
                hint: "give a SQLite database as a plain file path",
            }),
            _ => Err(DbError::UnknownScheme {
                scheme: scheme.to_string(),
                hint: "use a SQLite file path or a postgres:// URL",
            }),
        }
    }

    fn path(path: &Path) -> Result<Self, DbError> {
        Ok(match files::classify(path)? {
            FileKind::Sqlite => Self::Sqlite(path.to_path_buf()),
            FileKind::DuckDb(target) => Self::DuckDb(target),
        })
    }
}

/// A PostgreSQL server and database, with the password resolved but never displayed.
#[derive(Clone)]
pub struct PgTarget {
    pub(crate) config: postgres::Config,
    pub(crate) tls: TlsSettings,
    shown: String,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgTarget({})", self.shown)
    }
}

impl PgTarget {
    fn parse(url: &str) -> Result<Self, DbError> {
        let bad = |reason: String| DbError::BadUrl {
            url: redact_url(url),
            reason,
        };
        let (plain_url, tls) = pg_tls::split_settings(url).map_err(bad)?;
        let mut config = postgres::Config::from_str(&plain_url).map_err(|e| bad(e.to_string()))?;
        config.ssl_mode(tls.mode.wire());
        if config.get_hosts().is_empty() {
            config.host("localhost");
        }
        if config.get_user().is_none() {
            config.user(&std::env::var("PGUSER").unwrap_or_else(|_| whoami_user()));
        }
        if config.get_dbname().is_none() {
            return Err(bad(
                "name the database after the host: postgres://host/NAME".into(),
            ));
        }
        config.connect_timeout(CONNECT_TIMEOUT);
        config.application_name("nano-analyst");
        let shown = display_url(&config);
        if config.get_password().is_none()
            && let Some(password) = find_password(&config)
        {
            config.password(password);
        }
        Ok(Self { config, tls, shown })
    }

    /// `postgres://user@host:port/db`: no password, ever.
    pub fn display(&self) -> &str {
        &self.shown
    }

    pub(crate) fn user(&self) -> &str {
        self.config.get_user().unwrap_or_default()
    }

    /// `host:port`, for messages about reaching the server.
    pub(crate) fn server(&self) -> String {
        let host = host_text(self.config.get_hosts().first());
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        format!("{host}:{port}")
    }

    pub(crate) fn has_password(&self) -> bool {
        self.config.get_password().is_some()
    }
}

fn whoami_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "postgres".into())
}

fn host_text(host: Option<&postgres::config::Host>) -> String {
    match host {
        Some(postgres::config::Host::Tcp(name)) => name.clone(),
        #[cfg(unix)]
        Some(postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".into(),
    }
}

fn display_url(config: &postgres::Config) -> String {
    let user = config.get_user().unwrap_or_default();
    let host = host_text(config.get_hosts().first());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().unwrap_or_default();
    format!("postgres://{user}@{host}:{port}/{db}")
}

/// `url` with the password part of `user:password@` replaced, for error messages about a
/// URL that could not be parsed.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        _ => url.to_string(),
    }
}

/// Passwords typed at the prompt, by server, database and user: the process opens the same
/// database more than once (the app, its store, its workers) and asks only once.
static TYPED_PASSWORDS: std::sync::Mutex<Vec<(String, Vec<u8>)>> =
    std::sync::Mutex::new(Vec::new());

/// Keeps the password the user typed for `target`, so that every later open of the same
/// URL in this process uses it. Held in memory only, never written.
pub fn remember_password(target: &PgTarget, password: &str) {
    let mut typed = TYPED_PASSWORDS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    typed.retain(|(shown, _)| *shown != target.shown);
    typed.push((target.shown.clone(), password.as_bytes().to_vec()));
}

fn typed_password(shown: &str) -> Option<Vec<u8>> {
    let typed = TYPED_PASSWORDS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    typed
        .iter()
        .find(|(key, _)| key == shown)
        .map(|(_, password)| password.clone())
}

/// `PGPASSWORD`, else the first matching line of the pgpass file, else what the user typed.
fn find_password(config: &postgres::Config) -> Option<Vec<u8>> {
    if let Ok(password) = std::env::var("PGPASSWORD") {
        return Some(password.into_bytes());
    }
    find_password_in_pgpass(config).or_else(|| typed_password(&display_url(config)))
}

fn find_password_in_pgpass(config: &postgres::Config) -> Option<Vec<u8>> {
    let file = std::env::var_os("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".pgpass")))?;
    let text = read_private_file(&file)?;
    let host = host_text(config.get_hosts().first());
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let want = [
        host.as_str(),
        port.as_str(),
        config.get_dbname().unwrap_or_default(),
        config.get_user().unwrap_or_default(),
    ];
    pgpass_lookup(&text, want).map(String::into_bytes)
}

/// The pgpass file's text, unless others may read it (libpq ignores such a file too).
fn read_private_file(file: &Path) -> Option<String> {
    let metadata = std::fs::metadata(file).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if metadata.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                "ignoring '{}': it must not be readable by others (chmod 0600)",
                file.display()
            );
            return None;
        }
    }
    #[cfg(not(unix))]
    let _ = metadata;
    std::fs::read_to_string(file).ok()
}

/// The password of the first `host:port:database:user:password` line that matches `want`
/// (`*` matches anything; `\:` and `\\` are a literal colon and backslash).
pub(crate) fn pgpass_lookup(text: &str, want: [&str; 4]) -> Option<String> {
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let fields = split_pgpass_line(line);
            (fields.len() == 5).then_some(fields)
        })
        .find(|fields| {
            fields[..4]
                .iter()
                .zip(want)
                .all(|(field, wanted)| field == "*" || field == wanted)
        })
        .map(|fields| fields[4].clone())
}

fn split_pgpass_line(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next()
                    && let Some(last) = fields.last_mut()
                {
                    last.push(next);
                }
            }
            // The password is the rest of the line, colons included.
            ':' if fields.len() < 5 => fields.push(String::new()),
            _ => {
                if let Some(last) = fields.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_paths_and_urls_are_recognised() {
        for path in ["chinook.db", "file:chinook.db", "/tmp/x.db", "./a://b.db"] {
            assert!(
                matches!(Source::parse(Path::new(path)), Ok(Source::Sqlite(_))),
                "{path}"
            );
        }
        let Ok(Source::Postgres(target)) = Source::parse(Path::new(
            "postgresql://analyst:s3cret@db.example:6543/shop?sslmode=prefer",
        )) else {
            panic!("not a postgres URL");
        };
        assert_eq!(target.display(), "postgres://analyst@db.example:6543/shop");
        assert!(!format!("{target:?}").contains("s3cret"));
        assert_eq!(target.server(), "db.example:6543");
    }

    #[test]
    fn bad_urls_say_what_is_wrong_in_one_line_without_the_password() {
        let cases = [
            (
                "mysql://root@localhost/shop",
                "unknown database scheme 'mysql': use a SQLite file path or a postgres:// URL",
            ),
            (
                "postgres://analyst:s3cret@localhost:54x2/shop",
                "invalid PostgreSQL URL 'postgres://analyst:***@localhost:54x2/shop': ",
            ),
            (
                "postgres://analyst@localhost:5432/shop?sslmode=sometimes",
                "unknown sslmode 'sometimes'",
            ),
            (
                "postgres://analyst@localhost:5432",
                "name the database after the host",
            ),
        ];
        for (url, expected) in cases {
            let message = Source::parse(Path::new(url)).unwrap_err().to_string();
            assert!(message.contains(expected), "{url}: {message}");
            assert!(
                !message.contains("s3cret") && !message.contains('\n'),
                "{message}"
            );
        }
    }

    #[test]
    fn pgpass_lines_match_with_wildcards_and_escapes() {
        let text = "# comment\n\
                    other:5432:shop:analyst:wrong\n\
                    localhost:5432:*:analyst:pa\\:ss:word\n\
                    *:*:*:*:fallback\n";
        assert_eq!(
            pgpass_lookup(text, ["localhost", "5432", "shop", "analyst"]).as_deref(),
            Some("pa:ss:word")
        );
        assert_eq!(
            pgpass_lookup(text, ["db", "1", "x", "y"]).as_deref(),
            Some("fallback")
        );
        assert_eq!(pgpass_lookup("a:b:c:d\n", ["a", "b", "c", "d"]), None);
    }

    #[test]
    fn redacts_only_the_password() {
        assert_eq!(
            redact_url("postgres://u:p@h/db?x=1"),
            "postgres://u:***@h/db?x=1"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
    }
}
