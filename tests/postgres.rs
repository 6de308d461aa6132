//! PostgreSQL through the same interface as SQLite, against a real server the suite starts
//! (`support::postgres`): introspection, the guard and the server's read-only transaction,
//! time limit and cancel, bad input in one line, and one real-model question.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use nano_analyst::core::db::compare::results_match;
use nano_analyst::core::db::exec::{ExecError, ExecLimits, ReadOnlyDb};
use nano_analyst::core::db::source::SqlDialect;

use crate::support::postgres::{ANALYST_PASSWORD, PgServer, SUPERUSER_PASSWORD};
use crate::support::{app_command, binary, chinook_path, model_lock, run_sql};
use crate::tui::e2e::Tmux;

fn open(url: &str) -> ReadOnlyDb {
    ReadOnlyDb::open(Path::new(url)).unwrap_or_else(|e| panic!("{e}"))
}

fn nano(data_dir: &Path, args: &[&str]) -> Output {
    app_command(data_dir)
        .args(args)
        .env_remove("PGPASSWORD")
        .env("PGPASSFILE", data_dir.join("no-pgpass"))
        .output()
        .expect("the binary runs")
}

fn one_line_error(output: &Output) -> String {
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    stderr.trim_end().to_string()
}

#[test]
fn postgres_schema_and_results_match_sqlite() {
    let Some(server) = PgServer::shared() else {
        return;
    };
    let pg = open(&server.analyst_url());
    assert_eq!(pg.dialect(), SqlDialect::Postgres);
    assert_eq!(
        pg.path().display().to_string(),
        format!("postgres://analyst@127.0.0.1:{}/chinook", server.port)
    );
    let sqlite = ReadOnlyDb::open(&chinook_path()).unwrap();
    let (pg_schema, sqlite_schema) = (pg.askable_schema().unwrap(), sqlite.schema().unwrap());
    let names = |s: &nano_analyst::core::db::schema::Schema| -> Vec<String> {
        s.tables.iter().map(|t| t.name.clone()).collect()
    };
    assert_eq!(names(&pg_schema), names(sqlite_schema));
    for (p, s) in pg_schema.tables.iter().zip(&sqlite_schema.tables) {
        assert_eq!(p.row_count, s.row_count, "{}", p.name);
        assert_eq!(p.foreign_keys.len(), s.foreign_keys.len(), "{}", p.name);
        let pk = |t: &nano_analyst::core::db::schema::Table| -> Vec<String> {
            t.columns
                .iter()
                .filter(|c| c.primary_key)
                .map(|c| c.name.clone())
                .collect()
        };
        assert_eq!(pk(p), pk(s), "{}", p.name);
    }
    // The private schema the analyst may not read is named, qualified, as left out.
    assert!(
        pg_schema.broken.iter().any(|b| b.name == "private.Salary"),
        "{:?}",
        pg_schema.broken
    );
    let genre = pg_schema.table("Genre").unwrap();
    assert_eq!(genre.column("Name").unwrap().sample_values.len(), 3);
    for sql in [
        "SELECT count(*) FROM \"Album\"",
        "SELECT \"Name\", \"Milliseconds\", \"UnitPrice\" FROM \"Track\" ORDER BY \"TrackId\" LIMIT 20",
        "SELECT g.\"Name\", count(*) FROM \"Track\" t JOIN \"Genre\" g ON g.\"GenreId\" = t.\"GenreId\" \
         GROUP BY g.\"Name\" ORDER BY 2 DESC, 1",
        "SELECT \"BillingCountry\", sum(\"Total\") FROM \"Invoice\" GROUP BY 1 ORDER BY 2 DESC, 1",
        "SELECT \"InvoiceDate\" FROM \"Invoice\" ORDER BY \"InvoiceId\" LIMIT 3",
    ] {
        let (a, b) = (run_sql(&pg, sql), run_sql(&sqlite, sql));
        assert!(
            results_match(&b, &a, true),
            "{sql}\npg: {a:?}\nsqlite: {b:?}"
        );
    }
}

/// Each write or side effect: the guard refuses it, and with the guard bypassed (straight
/// to `execute`, as the superuser, so privileges do not decide) the server refuses it (its
/// read-only transaction, or its description of the statement: no columns, not a query)
/// or it leaves nothing behind.
#[test]
fn postgres_guard_refuses_writes_and_the_server_refuses_them_again() {
    let Some(server) = PgServer::shared() else {
        return;
    };
    let db = open(&server.superuser_url());
    let refused_by_server = [
        "DELETE FROM \"Album\"",
        "INSERT INTO \"Genre\" (\"GenreId\", \"Name\") VALUES (999, 'x')",
        "UPDATE \"Album\" SET \"Title\" = 'x'",
        "DROP TABLE \"Album\"",
        "TRUNCATE \"Album\"",
        "CREATE TABLE t (x int)",
        "ALTER TABLE \"Album\" ADD COLUMN x int",
        "COPY \"Album\" FROM '/tmp/nano-analyst-none'",
        "COPY (SELECT 1) TO '/tmp/nano-analyst-copy'",
        "DO $$ BEGIN DELETE FROM \"Album\"; END $$",
        "WITH d AS (DELETE FROM \"Album\" RETURNING *) SELECT count(*) FROM d",
        "SELECT * FROM \"Album\" FOR UPDATE",
        "SELECT * INTO new_table FROM \"Album\"",
        "SELECT nextval('counter')",
        "SELECT 1; DELETE FROM \"Album\"",
        "SET TRANSACTION READ WRITE",
    ];
    let harmless_when_bypassed = [
        "SET statement_timeout = 0",
        "SELECT set_config('statement_timeout', '0', false)",
        "LISTEN channel",
        "NOTIFY channel, 'x'",
        "SELECT pg_advisory_lock(1)",
        // Runs for a superuser even in a read-only transaction; the rollback drops the object.
        "SELECT lo_import('/etc/hostname')",
    ];
    for sql in refused_by_server.iter().chain(&harmless_when_bypassed) {
        assert!(db.check(sql).is_err(), "the guard let through: {sql}");
    }
    for sql in refused_by_server {
        let outcome = db.execute(sql, ExecLimits::default());
        assert!(outcome.is_err(), "the server ran: {sql}: {outcome:?}");
    }
    for sql in harmless_when_bypassed {
        let _ = db.execute(sql, ExecLimits::default());
    }
    // Nothing changed, no setting outlived its transaction, no lock is held.
    let count = run_sql(&db, "SELECT count(*) FROM \"Album\"");
    assert_eq!(count.rows[0][0].to_string(), "347");
    assert!(
        db.execute("SELECT * FROM t", ExecLimits::default())
            .is_err()
    );
    let timeout = run_sql(&db, "SELECT current_setting('statement_timeout')");
    assert_eq!(timeout.rows[0][0].to_string(), "10s");
    let mut admin = server.admin("chinook");
    let locks: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(locks, 0);
    let large_objects: i64 = admin
        .query_one("SELECT count(*) FROM pg_largeobject_metadata", &[])
        .unwrap()
        .get(0);
    assert_eq!(large_objects, 0);
    assert!(!Path::new("/tmp/nano-analyst-copy").exists());
    // The server-file function works for a superuser in a read-only transaction: only
    // the guard stands before it, and it refuses.
    assert!(db.check("SELECT pg_read_file('/etc/hostname')").is_err());
}

#[test]
fn postgres_time_limit_and_cancel_stop_the_query_on_the_server() {
    let Some(server) = PgServer::shared() else {
        return;
    };
    let db = open(&server.analyst_url());
    let limits = ExecLimits {
        timeout: Duration::from_millis(300),
        ..ExecLimits::default()
    };
    assert_eq!(
        db.execute("SELECT pg_sleep(10)", limits),
        Err(ExecError::Timeout(limits.timeout))
    );
    let canceller = db.canceller();
    let cancel = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        canceller.cancel();
    });
    let started = Instant::now();
    assert_eq!(
        db.execute("SELECT pg_sleep(10)", ExecLimits::default()),
        Err(ExecError::Cancelled)
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    cancel.join().unwrap();
    // The connection stays usable, and row caps hold as on SQLite.
    let capped = db
        .execute(
            "SELECT \"TrackId\" FROM \"Track\"",
            ExecLimits {
                row_limit: 10,
                ..ExecLimits::default()
            },
        )
        .unwrap();
    assert_eq!((capped.rows.len(), capped.total_rows), (10, Some(3503)));
}

/// In a terminal, a URL with no password anywhere gets psql's prompt once, without echo,
/// and the command goes on with what was typed.
#[test]
fn postgres_asks_for_the_password_in_a_terminal() {
    let Some(server) = PgServer::shared() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let url = server.url("analyst", "", "chinook");
    let script = format!(
        "env -u PGPASSWORD PGPASSFILE={nopass} NANO_ANALYST_DATA_DIR={data} \
         NANO_ANALYST_CONFIG={config} {bin} schema {url} 'albums by artist'; \
         echo exit-status-$?; sleep 120",
        nopass = data.path().join("no-pgpass").display(),
        data = data.path().display(),
        config = data.path().join("no-config.toml").display(),
        bin = binary().display(),
    );
    let tmux = Tmux::start(&[script], 160, 50);
    let prompt = format!(
        "Password for postgres://analyst@127.0.0.1:{}/chinook:",
        server.port
    );
    tmux.wait_for(&[&prompt], Duration::from_secs(60));
    tmux.type_text(ANALYST_PASSWORD);
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for(&["exit-status-"], Duration::from_secs(120));
    assert!(screen.contains("exit-status-0"), "{screen}");
    assert!(screen.contains("Album"), "{screen}");
    assert!(
        !screen.contains(ANALYST_PASSWORD),
        "the password is not echoed: {screen}"
    );
}

#[test]
fn postgres_bad_input_gets_one_clear_line() {
    let Some(server) = PgServer::shared() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cases: Vec<(String, &str)> = vec![
        (
            format!("postgres://analyst@127.0.0.1:{closed_port}/chinook"),
            "cannot reach the PostgreSQL server at '127.0.0.1:",
        ),
        (
            server.url("analyst", "wrong-password", "chinook"),
            "the PostgreSQL server refused user 'analyst'",
        ),
        (server.url("analyst", "", "chinook"), "none was given"),
        (
            server.url("noperm", "noperm-pw", "chinook"),
            "has no SELECT permission on it",
        ),
        (
            server.url("analyst", ANALYST_PASSWORD, "chinok"),
            "database \"chinok\" does not exist",
        ),
        (
            format!("postgres://analyst:{ANALYST_PASSWORD}@127.0.0.1:54x2/chinook"),
            "invalid PostgreSQL URL 'postgres://analyst:***@127.0.0.1:54x2/chinook'",
        ),
        (
            "mysql://analyst@127.0.0.1/chinook".to_string(),
            "unknown database scheme 'mysql'",
        ),
    ];
    for (url, expected) in cases {
        let error = one_line_error(&nano(data.path(), &["schema", &url, "albums"]));
        assert!(error.contains(expected), "{url}: {error}");
        for secret in [
            ANALYST_PASSWORD,
            SUPERUSER_PASSWORD,
            "wrong-password",
            "noperm-pw",
        ] {
            assert!(!error.contains(secret), "{error}");
        }
    }
    // A query on a table the user may not read is refused by the server, in one line.
    let db = open(&server.analyst_url());
    let error = db
        .execute("SELECT * FROM private.\"Salary\"", ExecLimits::default())
        .unwrap_err()
        .to_string();
    assert_eq!(error, "permission denied for schema private");
}

#[test]
fn postgres_sslmode_is_honoured() {
    let Some(server) = PgServer::shared() else {
        return;
    };
    let ca = server.ca_cert().display().to_string();
    let other_ca = server.other_ca_cert().display().to_string();
    let url = |query: &str| format!("{}?{query}", server.analyst_url());
    // Whether the connection the queries run on is encrypted, as the server sees it.
    let encrypted = |query: &str| -> Result<bool, String> {
        let db = ReadOnlyDb::open(Path::new(&url(query))).map_err(|e| e.to_string())?;
        let sql = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
        let result = run_sql(&db, sql);
        Ok(result.rows[0][0].to_string() == "1")
    };
    assert_eq!(encrypted("sslmode=disable"), Ok(false));
    assert_eq!(encrypted("sslmode=prefer"), Ok(true));
    assert_eq!(encrypted("sslmode=require"), Ok(true));
    // The certificate is for db.example and signed by the test's authority: the chain
    // holds, the name does not.
    assert_eq!(
        encrypted(&format!("sslmode=verify-ca&sslrootcert={ca}")),
        Ok(true)
    );
    let refusals = [
        (
            format!("sslmode=verify-full&sslrootcert={ca}"),
            "not valid for name",
        ),
        (
            format!("sslmode=verify-ca&sslrootcert={other_ca}"),
            "UnknownIssuer",
        ),
        (
            format!("sslmode=require&sslrootcert={other_ca}"),
            "UnknownIssuer",
        ),
        (
            "sslmode=verify-full&sslrootcert=system".to_string(),
            "UnknownIssuer",
        ),
    ];
    for (query, expected) in refusals {
        let error = encrypted(&query).unwrap_err();
        assert!(
            error.contains("no TLS connection to the PostgreSQL server at '127.0.0.1:")
                && error.contains(expected),
            "{query}: {error}"
        );
    }
    // From the command line: one line, saying what to do.
    let data = tempfile::tempdir().unwrap();
    let output = app_command(data.path())
        .args(["schema", &url("sslmode=verify-full"), "albums"])
        .env("HOME", data.path())
        .output()
        .unwrap();
    let error = one_line_error(&output);
    assert!(
        error.contains("sslmode=verify-full needs a root certificate")
            && error.contains("sslrootcert=system"),
        "{error}"
    );
    assert!(!error.contains(ANALYST_PASSWORD), "{error}");
}

#[test]
fn postgres_ask_answers_a_chinook_question_with_the_real_model() {
    let Some(server) = PgServer::shared() else {
        return;
    };
    let _turn = model_lock();
    let _file_turn = model_file_lock();
    let data = tempfile::tempdir().unwrap();
    let url = server.analyst_url();
    let output = nano(
        data.path(),
        &["ask", &url, "How many albums are there?", "--json"],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(!stdout.contains(ANALYST_PASSWORD) && !stderr.contains(ANALYST_PASSWORD));
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    assert_eq!(json["rows"], serde_json::json!([[347]]), "{stdout}");
    // The history names the source by its URL, without the password.
    let history = nano(data.path(), &["history", &url]);
    let listed = String::from_utf8_lossy(&history.stdout);
    assert!(
        history.status.success(),
        "{listed}{}",
        String::from_utf8_lossy(&history.stderr)
    );
    assert!(listed.contains("How many albums"), "{listed}");
    let store = rusqlite::Connection::open(data.path().join("history.sqlite3")).unwrap();
    let scope: String = store
        .query_row("SELECT path FROM scopes", [], |row| row.get(0))
        .unwrap();
    assert_eq!(
        scope,
        format!("postgres://analyst@127.0.0.1:{}/chinook", server.port)
    );
}

/// `/tmp/nano-model.lock`, as the TUI's real-model tests take it, so runs in other processes
/// take turns (`NANO_MODEL_LOCK_HELD=1` under an outer `flock`).
fn model_file_lock() -> Option<std::fs::File> {
    if std::env::var_os("NANO_MODEL_LOCK_HELD").is_some() {
        return None;
    }
    let file = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(Path::new("/tmp/nano-model.lock"))
        .ok()?;
    file.lock().ok()?;
    Some(file)
}

/// A correction on a PostgreSQL source goes through the PostgreSQL guard: a server file
/// function, which a SQLite reading would pass as a plain call, is refused before it runs.
#[test]
fn postgres_corrections_go_through_the_postgresql_guard() {
    let Some(server) = PgServer::shared() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let url = server.analyst_url();
    let correct = |sql: &str| {
        nano(
            data.path(),
            &[
                "correct",
                &url,
                "--question",
                "How many albums are there?",
                "--sql",
                sql,
            ],
        )
    };
    let refused = correct("SELECT pg_read_file('/etc/hostname')");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains("'pg_read_file()' acts outside the query")
            && !stderr.contains("does not run"),
        "refused by the server, not the guard: {stderr}"
    );
    let saved = correct("SELECT count(*) FROM \"Album\"");
    let stdout = String::from_utf8_lossy(&saved.stdout);
    assert!(
        saved.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&saved.stderr)
    );
    assert!(stdout.contains("recorded correction"), "{stdout}");
}
