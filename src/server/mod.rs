//! `nano-analyst serve`: the pipeline over HTTP (axum on tokio), for databases named at
//! start, plus an OpenAI-compatible chat completions endpoint on the loaded model.
//!
//! Invariants:
//! - A request names a database by the name it was served under; no request chooses a
//!   file path, and every database is opened read-only.
//! - A non-loopback address is refused at start without a token; with a token, every
//!   request without `Authorization: Bearer <token>` gets 401.
//! - One model worker runs one job at a time (`worker`); a full queue answers 503 with
//!   Retry-After, a client that goes away cancels its job, every job has a deadline.
//! - One log line per request, to the log file.
//! - SIGTERM or Ctrl-C stops accepting connections, lets the question running finish (its
//!   run is recorded) within its own deadline, answers the queued ones 503, and exits 0.
//!
//! tokio and axum stay inside this module (and `commands::serve`); `api` and `chat` are the
//! handlers, `http` the shared plumbing (auth, logging, errors).

pub mod api;
pub mod chat;
pub mod http;
pub mod worker;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::core::db::exec::ReadOnlyDb;
use crate::core::feedback::history::DbScope;
use crate::core::feedback::store::scope_of;
use crate::error::AppError;
use crate::session::RuntimeOptions;

/// How to serve, from the command line.
#[derive(Clone, PartialEq)]
pub struct ServeConfig {
    /// Name -> database file.
    pub databases: BTreeMap<String, PathBuf>,
    pub host: IpAddr,
    /// 0 takes a free port (printed at start).
    pub port: u16,
    pub token: Option<String>,
    /// Jobs waiting for the model beyond the running one.
    pub queue: usize,
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
}

impl std::fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeConfig")
            .field("databases", &self.databases)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("queue", &self.queue)
            .field("request_timeout", &self.request_timeout)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "refusing to serve on {0} without a token: anyone who can reach it could query the \
         databases; pass --token (or NANO_ANALYST_SERVE_TOKEN), or bind 127.0.0.1"
    )]
    NeedsToken(IpAddr),
    #[error("the token is shorter than 16 characters; use a long random secret")]
    WeakToken,
    #[error("no database to serve: name one with --db NAME=PATH")]
    NoDatabase,
    #[error("'{0}' is not a usable database name: use letters, digits, '-' and '_' (at most 64)")]
    BadName(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the server stopped: {0}")]
    Runtime(std::io::Error),
}

/// A served database as the handlers see it.
#[derive(Debug, Clone)]
pub struct ServedDb {
    pub path: PathBuf,
    pub scope: DbScope,
}

/// What every handler shares.
pub struct AppState {
    pub worker: worker::WorkerHandle,
    pub databases: BTreeMap<String, ServedDb>,
    pub options: RuntimeOptions,
    pub config: ServeConfig,
}

/// Checks the address, token and names before anything is loaded.
pub fn check(config: &ServeConfig) -> Result<(), ServeError> {
    if config.databases.is_empty() {
        return Err(ServeError::NoDatabase);
    }
    for name in config.databases.keys() {
        let usable = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !usable {
            return Err(ServeError::BadName(name.clone()));
        }
    }
    match &config.token {
        Some(token) if token.trim().chars().count() < 16 => Err(ServeError::WeakToken),
        None if !config.host.is_loopback() => Err(ServeError::NeedsToken(config.host)),
        _ => Ok(()),
    }
}

/// Serves until the process is stopped. `on_ready` gets the bound address once the model is
/// loaded and the port accepts connections.
pub fn run(
    config: ServeConfig,
    options: &RuntimeOptions,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<(), AppError> {
    check(&config).map_err(|e| AppError::Usage(e.to_string()))?;
    let addr = SocketAddr::new(config.host, config.port);
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|source| AppError::Usage(ServeError::Bind { addr, source }.to_string()))?;
    let mut databases = BTreeMap::new();
    for (name, path) in &config.databases {
        let db = ReadOnlyDb::open(path)?;
        let scope = scope_of(&db)?;
        databases.insert(
            name.clone(),
            ServedDb {
                path: path.clone(),
                scope,
            },
        );
    }
    let worker = worker::start(&config.databases, options, config.queue)?;
    let bound = listener
        .local_addr()
        .map_err(AppError::io("cannot read the bound address"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(AppError::io("cannot start the async runtime"))?;
    let grace = config.request_timeout;
    let stop_worker = worker.clone();
    let state = Arc::new(AppState {
        worker,
        databases,
        options: options.clone(),
        config,
    });
    runtime.block_on(async move {
        listener
            .set_nonblocking(true)
            .map_err(AppError::io("cannot configure the listening socket"))?;
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(AppError::io("cannot configure the listening socket"))?;
        tracing::info!("serving on http://{bound}");
        on_ready(bound);
        let stopping = Arc::new(tokio::sync::Notify::new());
        let stop_accepting = Arc::clone(&stopping);
        let server = axum::serve(listener, router(state))
            .with_graceful_shutdown(async move { stop_accepting.notified().await });
        tokio::select! {
            served = server => {
                tracing::info!("stopped: every request in flight finished");
                served.map_err(|e| AppError::Usage(ServeError::Runtime(e).to_string()))
            }
            () = grace_after_stop_signal(&stopping, &stop_worker, grace) => {
                tracing::warn!(grace_s = grace.as_secs(), "stopped with requests still in flight");
                Ok(())
            }
        }
    })
}

/// Resolves `grace` (the request timeout: the longest the running question may still take)
/// after the first SIGTERM or Ctrl-C, or at once on a second one. The first tells the server
/// to stop accepting and the worker to refuse what is queued.
async fn grace_after_stop_signal(
    stopping: &tokio::sync::Notify,
    worker: &worker::WorkerHandle,
    grace: Duration,
) {
    stop_signal().await;
    tracing::info!("stop signal: finishing the question running, refusing the queued ones");
    worker.stop();
    stopping.notify_one();
    tokio::select! {
        () = tokio::time::sleep(grace) => {}
        () = stop_signal() => {}
    }
}

async fn stop_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

/// Every route, behind the body limit, the token check and the request log.
pub fn router(state: Arc<AppState>) -> Router {
    let max_body = state.config.max_body_bytes;
    Router::new()
        .route("/healthz", get(api::healthz))
        .route("/v1/databases", get(api::databases))
        .route("/v1/history", get(api::history))
        .route("/v1/ask", post(api::ask))
        .route("/v1/correct", post(api::correct))
        .route("/v1/rate", post(api::rate))
        .route("/v1/models", get(chat::models))
        .route("/v1/chat/completions", post(chat::completions))
        .fallback(http::not_found)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            http::authorize,
        ))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn(http::log_request))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(host: &str, token: Option<&str>, name: &str) -> ServeConfig {
        ServeConfig {
            databases: BTreeMap::from([(name.to_string(), PathBuf::from("x.db"))]),
            host: host.parse().unwrap(),
            port: 0,
            token: token.map(str::to_string),
            queue: 1,
            request_timeout: Duration::from_secs(1),
            max_body_bytes: 1024,
        }
    }

    #[test]
    fn a_public_address_needs_a_long_token() {
        let long = Some("0123456789abcdef");
        assert!(check(&config("127.0.0.1", None, "db")).is_ok());
        assert!(check(&config("::1", None, "db")).is_ok());
        let refused = check(&config("0.0.0.0", None, "db")).unwrap_err();
        assert!(refused.to_string().contains("without a token"), "{refused}");
        assert!(check(&config("192.168.1.5", Some("short"), "db")).is_err());
        assert!(check(&config("0.0.0.0", long, "db")).is_ok());
        let debug = format!("{:?}", config("0.0.0.0", long, "db"));
        assert!(!debug.contains("0123456789abcdef"), "{debug}");
    }

    #[test]
    fn database_names_are_plain_words() {
        for bad in ["", "../etc", "a b", "chinook.db", &"x".repeat(65)] {
            assert!(check(&config("127.0.0.1", None, bad)).is_err(), "{bad}");
        }
        assert!(check(&config("127.0.0.1", None, "chinook_2-b")).is_ok());
    }
}
