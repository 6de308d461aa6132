//! `nano-analyst serve --db NAME=PATH [--host H] [--port P] [--token T]`: flags over the
//! `[serve]` settings, then the server. The one line printed, once the model is loaded and
//! the port accepts connections, is `listening on http://ADDR` (tests read the address).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::ServeArgs;
use crate::error::AppError;
use crate::server::ServeConfig;
use crate::session::RuntimeOptions;

pub fn run(args: &ServeArgs, options: &RuntimeOptions) -> Result<(), AppError> {
    let config = serve_config(args, options)?;
    crate::server::run(config, options, |addr| {
        crate::outln!("listening on http://{addr}");
    })
}

/// The flags over the settings; a bad `--db` or `--host` is a one-line usage error.
pub fn serve_config(args: &ServeArgs, options: &RuntimeOptions) -> Result<ServeConfig, AppError> {
    let settings = &options.serve;
    let mut databases: BTreeMap<String, PathBuf> = settings
        .databases
        .iter()
        .map(|(name, path)| (name.clone(), PathBuf::from(path)))
        .collect();
    for spec in &args.databases {
        let Some((name, path)) = spec
            .split_once('=')
            .filter(|(n, p)| !n.is_empty() && !p.is_empty())
        else {
            return Err(AppError::Usage(format!(
                "--db '{spec}' is not NAME=PATH (e.g. --db chinook=sample_dbs/chinook.db)"
            )));
        };
        databases.insert(name.to_string(), PathBuf::from(path));
    }
    let host = args.host.as_deref().unwrap_or(&settings.host);
    let host: IpAddr = host.parse().map_err(|_| {
        AppError::Usage(format!(
            "--host '{host}' is not an IP address (e.g. 127.0.0.1, ::1 or 0.0.0.0)"
        ))
    })?;
    let config = ServeConfig {
        databases,
        host,
        port: args.port.unwrap_or(settings.port),
        token: args
            .token
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string),
        queue: args.queue.unwrap_or(settings.queue).max(1),
        request_timeout: Duration::from_secs(
            args.request_timeout
                .unwrap_or(settings.request_timeout_secs)
                .max(1),
        ),
        max_body_bytes: settings.max_body_kib.max(1) * 1024,
    };
    crate::server::check(&config).map_err(|e| AppError::Usage(e.to_string()))?;
    Ok(config)
}
