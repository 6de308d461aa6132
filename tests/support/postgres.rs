//! A PostgreSQL 15 server of the test suite's own: initdb'ed in a temporary directory,
//! listening on a free loopback port, with Chinook converted from `sample_dbs/chinook.db`
//! table by table (names kept exactly, so quoted CamelCase as in SQLite). Shared by the
//! tests that run at the same time and stopped when the last of them drops it, panics
//! included (`Drop`).
//!
//! The server speaks TLS (`ssl=on`) with a certificate for the name `db.example` only,
//! signed by a certificate authority made for the run (`ca_cert`); `other_ca_cert` is one
//! that signed nothing, for the checks of `sslmode`.
//!
//! As root (CI), initdb refuses to run, so the server runs as `nobody` through `runuser`,
//! with the directory handed to that user. Without the binaries the tests skip, except
//! under `CI=true`, where they fail.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, Weak};

use rusqlite::types::Value;

pub const SUPERUSER_PASSWORD: &str = "super-secret-pw";
pub const ANALYST_PASSWORD: &str = "analyst-secret-pw";

pub struct PgServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    run_as: Option<String>,
}

impl PgServer {
    /// The running server, started on first use; `None` (with a message) when PostgreSQL
    /// is not installed outside CI.
    pub fn shared() -> Option<Arc<PgServer>> {
        static SERVER: Mutex<Weak<PgServer>> = Mutex::new(Weak::new());
        let mut slot = SERVER.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(server) = slot.upgrade() {
            return Some(server);
        }
        let bin = match find_binaries() {
            Some(bin) => bin,
            None if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("PostgreSQL 15 binaries (initdb, pg_ctl) not found; CI must have them")
            }
            None => {
                eprintln!("skipped: PostgreSQL binaries (initdb, pg_ctl) not found");
                return None;
            }
        };
        let server = Arc::new(PgServer::start(bin));
        server.load_chinook();
        *slot = Arc::downgrade(&server);
        Some(server)
    }

    fn start(bin: PathBuf) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let run_as = is_root().then(|| "nobody".to_string());
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, SUPERUSER_PASSWORD).unwrap();
        if let Some(user) = &run_as {
            chown_to(dir.path(), user);
            chown_to(&pwfile, user);
        }
        let port = free_port();
        let server = Self {
            dir,
            bin,
            port,
            run_as,
        };
        let data = server.data_dir();
        server.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                &format!("--pwfile={}", pwfile.display()),
                "-E",
                "UTF8",
                "--no-locale",
            ],
        );
        let dir = server.dir.path();
        make_certificates(dir);
        if let Some(user) = &server.run_as {
            chown_to(&dir.join("server.key"), user);
            chown_to(&dir.join("server.crt"), user);
        }
        let options = format!(
            "-p {port} -k {dir} -c listen_addresses=127.0.0.1 -c fsync=off -c ssl=on \
             -c ssl_cert_file={dir}/server.crt -c ssl_key_file={dir}/server.key",
            dir = dir.display()
        );
        let log = server.dir.path().join("server.log");
        server.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-o",
                &options,
                "start",
            ],
        );
        server
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs a server binary as the server's user; panics with its output when it fails.
    fn run(&self, name: &str, args: &[&str]) {
        let program = self.bin.join(name);
        let mut command = match &self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(&program);
                command
            }
            None => Command::new(&program),
        };
        let output = command
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("{name} does not run: {e}"));
        assert!(
            output.status.success(),
            "{name} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// `postgres://user:password@127.0.0.1:port/db` (no password part when it is empty).
    pub fn url(&self, user: &str, password: &str, db: &str) -> String {
        if password.is_empty() {
            format!("postgres://{user}@127.0.0.1:{}/{db}", self.port)
        } else {
            format!("postgres://{user}:{password}@127.0.0.1:{}/{db}", self.port)
        }
    }

    /// The root that signed the server's certificate (PEM).
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// A root that signed nothing the server shows.
    pub fn other_ca_cert(&self) -> PathBuf {
        self.dir.path().join("other-ca.crt")
    }

    pub fn analyst_url(&self) -> String {
        self.url("analyst", ANALYST_PASSWORD, "chinook")
    }

    pub fn superuser_url(&self) -> String {
        self.url("postgres", SUPERUSER_PASSWORD, "chinook")
    }

    /// A writable connection as the superuser (test set-up only).
    pub fn admin(&self, db: &str) -> postgres::Client {
        postgres::Client::connect(
            &self.url("postgres", SUPERUSER_PASSWORD, db),
            postgres::NoTls,
        )
        .expect("the superuser connects")
    }

    fn load_chinook(&self) {
        let mut admin = self.admin("postgres");
        admin.batch_execute("CREATE DATABASE chinook").unwrap();
        let mut client = self.admin("chinook");
        let sqlite = rusqlite::Connection::open_with_flags(
            super::chinook_path(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        let tables: Vec<String> = sqlite
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY rowid")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let mut foreign_keys = String::new();
        for table in &tables {
            client.batch_execute(&create_table(&sqlite, table)).unwrap();
            copy_rows(&sqlite, &mut client, table);
            foreign_keys.push_str(&foreign_key_sql(&sqlite, table));
        }
        client.batch_execute(&foreign_keys).unwrap();
        client
            .batch_execute(&format!(
                "CREATE ROLE analyst LOGIN PASSWORD '{ANALYST_PASSWORD}'; \
                 GRANT SELECT ON ALL TABLES IN SCHEMA public TO analyst; \
                 CREATE ROLE noperm LOGIN PASSWORD 'noperm-pw'; \
                 CREATE SCHEMA private; \
                 CREATE TABLE private.\"Salary\" (\"EmployeeId\" integer, \"Amount\" numeric); \
                 INSERT INTO private.\"Salary\" VALUES (1, 100000); \
                 CREATE SEQUENCE public.counter; GRANT USAGE ON SEQUENCE public.counter TO analyst; \
                 REVOKE CREATE ON SCHEMA public FROM PUBLIC;"
            ))
            .unwrap();
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let data = self.data_dir();
        let program = self.bin.join("pg_ctl");
        let args = [
            "-D",
            data.to_str().unwrap_or_default(),
            "-m",
            "immediate",
            "-w",
            "stop",
        ];
        let status = match &self.run_as {
            Some(user) => Command::new("runuser")
                .args(["-u", user, "--"])
                .arg(&program)
                .args(args)
                .output(),
            None => Command::new(&program).args(args).output(),
        };
        if let Err(error) = status {
            eprintln!("could not stop the test PostgreSQL server: {error}");
        }
    }
}

/// A certificate authority, the server's key and certificate (for `db.example`, signed by
/// it) and an unrelated authority, with the openssl command-line tool.
fn make_certificates(dir: &Path) {
    let openssl = |command: &str| {
        let args: Vec<&str> = command.split_whitespace().collect();
        let output = Command::new("openssl")
            .args(&args)
            .current_dir(dir)
            .output()
            .expect("openssl runs (scripts/common.sh installs it)");
        assert!(
            output.status.success(),
            "openssl {command}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let new_key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    for name in ["ca", "other-ca"] {
        openssl(&format!(
            "req -x509 {new_key} -days 3 -subj /CN=nano-analyst-test-{name} \
             -addext basicConstraints=critical,CA:TRUE \
             -addext keyUsage=critical,keyCertSign,cRLSign -keyout {name}.key -out {name}.crt"
        ));
    }
    openssl(&format!(
        "req {new_key} -subj /CN=db.example -keyout server.key -out server.csr"
    ));
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=DNS:db.example\n",
    )
    .unwrap();
    openssl(
        "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3 \
         -extfile server.ext -out server.crt",
    );
    // The server refuses a key that others may read.
    std::fs::set_permissions(
        dir.join("server.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
}

fn find_binaries() -> Option<PathBuf> {
    let candidates = [
        PathBuf::from("/usr/lib/postgresql/15/bin"),
        PathBuf::from("/usr/local/pgsql/bin"),
    ];
    if let Some(dir) = candidates.iter().find(|d| d.join("initdb").is_file()) {
        return Some(dir.clone());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn chown_to(path: &Path, user: &str) {
    let status = Command::new("chown").arg(user).arg(path).status().unwrap();
    assert!(status.success(), "chown {user} {}", path.display());
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    listener.local_addr().unwrap().port()
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// SQLite's declared type in PostgreSQL terms.
fn pg_type(declared: &str) -> String {
    let upper = declared.to_ascii_uppercase();
    if upper.contains("INT") {
        "integer".into()
    } else if upper.starts_with("NUMERIC") || upper.starts_with("DECIMAL") {
        upper.to_lowercase()
    } else if upper.starts_with("NVARCHAR") || upper.starts_with("VARCHAR") {
        upper.trim_start_matches('N').to_lowercase()
    } else if upper.contains("DATE") || upper.contains("TIME") {
        "timestamp".into()
    } else {
        "text".into()
    }
}

fn create_table(sqlite: &rusqlite::Connection, table: &str) -> String {
    let mut columns = Vec::new();
    let mut keys: Vec<(i64, String)> = Vec::new();
    let mut statement = sqlite
        .prepare("SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1)")
        .unwrap();
    let rows = statement
        .query_map([table], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, i64>(3)?,
            ))
        })
        .unwrap();
    for row in rows {
        let (name, declared, not_null, pk) = row.unwrap();
        let null = if not_null != 0 { " NOT NULL" } else { "" };
        columns.push(format!("{} {}{null}", quoted(&name), pg_type(&declared)));
        if pk > 0 {
            keys.push((pk, quoted(&name)));
        }
    }
    keys.sort();
    if !keys.is_empty() {
        let names: Vec<String> = keys.into_iter().map(|(_, name)| name).collect();
        columns.push(format!("PRIMARY KEY ({})", names.join(", ")));
    }
    format!("CREATE TABLE {} ({});", quoted(table), columns.join(", "))
}

fn literal(value: &Value) -> String {
    match value {
        Value::Null => "NULL".into(),
        Value::Integer(n) => n.to_string(),
        Value::Real(x) => format!("{x:?}"),
        Value::Text(text) => format!("'{}'", text.replace('\'', "''")),
        Value::Blob(bytes) => format!("'\\x{}'::bytea", hex::encode(bytes)),
    }
}

fn copy_rows(sqlite: &rusqlite::Connection, client: &mut postgres::Client, table: &str) {
    let mut statement = sqlite
        .prepare(&format!("SELECT * FROM {}", quoted(table)))
        .unwrap();
    let width = statement.column_count();
    let rows: Vec<String> = statement
        .query_map([], |row| {
            let cells: Vec<String> = (0..width)
                .map(|i| row.get::<_, Value>(i).map(|v| literal(&v)))
                .collect::<Result<_, _>>()?;
            Ok(format!("({})", cells.join(", ")))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for chunk in rows.chunks(500) {
        client
            .batch_execute(&format!(
                "INSERT INTO {} VALUES {};",
                quoted(table),
                chunk.join(", ")
            ))
            .unwrap();
    }
}

fn foreign_key_sql(sqlite: &rusqlite::Connection, table: &str) -> String {
    let mut statement = sqlite
        .prepare("SELECT \"from\", \"table\", \"to\" FROM pragma_foreign_key_list(?1)")
        .unwrap();
    let keys: Vec<(String, String, String)> = statement
        .query_map([table], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    keys.iter()
        .map(|(from, to_table, to)| {
            format!(
                "ALTER TABLE {} ADD FOREIGN KEY ({}) REFERENCES {} ({});",
                quoted(table),
                quoted(from),
                quoted(to_table),
                quoted(to)
            )
        })
        .collect()
}
