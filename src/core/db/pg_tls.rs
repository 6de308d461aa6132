//! TLS for PostgreSQL connections, with the meanings libpq gives `sslmode`, so a URL that
//! works with psql works here:
//!
//! - `disable`: plain connection;
//! - `allow`, `prefer` (the default): TLS when the server offers it, plain otherwise, the
//!   certificate not checked;
//! - `require`: TLS or no connection; the certificate is checked against a root
//!   certificate only when one is there (`sslrootcert`, or `~/.postgresql/root.crt`);
//! - `verify-ca`: TLS, the certificate signed by a trusted root;
//! - `verify-full`: as `verify-ca`, and the certificate names the host connected to.
//!
//! Roots come from `sslrootcert=FILE` (PEM), `sslrootcert=system` (the Mozilla set of
//! public certificate authorities, built in), or `~/.postgresql/root.crt`. `PGSSLMODE` and
//! `PGSSLROOTCERT` are read when the URL does not say.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, Error as TlsError, RootCertStore,
    SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

pub(crate) type PgConnector = MakeRustlsConnect;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(text: &str) -> Result<Self, String> {
        Ok(match text {
            "disable" => Self::Disable,
            "allow" => Self::Allow,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            other => {
                return Err(format!(
                    "unknown sslmode '{other}'; use disable, allow, prefer, require, verify-ca \
                     or verify-full"
                ));
            }
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Allow => "allow",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    /// What the postgres crate does on the wire; the checks above that are the verifier's.
    pub(crate) fn wire(self) -> postgres::config::SslMode {
        match self {
            Self::Disable => postgres::config::SslMode::Disable,
            Self::Allow | Self::Prefer => postgres::config::SslMode::Prefer,
            Self::Require | Self::VerifyCa | Self::VerifyFull => postgres::config::SslMode::Require,
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum RootCert {
    /// `~/.postgresql/root.crt`, when it exists.
    Default,
    File(PathBuf),
    /// The built-in Mozilla set (`sslrootcert=system`, as libpq 16 spells it).
    System,
}

/// The TLS settings of one PostgreSQL target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TlsSettings {
    pub(crate) mode: SslMode,
    root_cert: RootCert,
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self {
            mode: SslMode::Prefer,
            root_cert: RootCert::Default,
        }
    }
}

/// Client certificates, which this build does not send.
const CLIENT_CERT_KEYS: [&str; 3] = ["sslcert", "sslkey", "sslpassword"];

/// Splits the TLS settings out of a `postgres://` URL (the postgres crate knows neither
/// `verify-ca`, `verify-full` nor `sslrootcert`): the URL without them, and the settings (the URL's, else `PGSSLMODE`/`PGSSLROOTCERT`, else `prefer`).
pub(crate) fn split_settings(url: &str) -> Result<(String, TlsSettings), String> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, query),
        None => (url, ""),
    };
    let mut mode = None;
    let mut root_cert = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = decode(value);
        match key {
            "sslmode" => mode = Some(SslMode::parse(&value)?),
            "sslrootcert" => root_cert = Some(value),
            key if CLIENT_CERT_KEYS.contains(&key) => {
                return Err(format!(
                    "{key}: client certificates are not supported; sign in with a password \
                     (PGPASSWORD, ~/.pgpass or the prompt)"
                ));
            }
            _ => kept.push(pair),
        }
    }
    let mode = match mode {
        Some(mode) => mode,
        None => match std::env::var("PGSSLMODE") {
            Ok(text) if !text.is_empty() => {
                SslMode::parse(&text).map_err(|reason| format!("PGSSLMODE: {reason}"))?
            }
            _ => SslMode::Prefer,
        },
    };
    let root_cert = root_cert
        .or_else(|| std::env::var("PGSSLROOTCERT").ok())
        .filter(|text| !text.is_empty())
        .map_or(RootCert::Default, |text| match text.as_str() {
            "system" => RootCert::System,
            path => RootCert::File(PathBuf::from(path)),
        });
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, TlsSettings { mode, root_cert }))
}

fn decode(value: &str) -> String {
    percent_encoding::percent_decode_str(value)
        .decode_utf8_lossy()
        .into_owned()
}

/// The connector for `settings`: the certificate checks of its mode, ring's cryptography.
pub(crate) fn connector(settings: &TlsSettings) -> Result<PgConnector, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = verifier(settings, &provider)?;
    let config = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up failed: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

fn verifier(
    settings: &TlsSettings,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>, String> {
    let relaxed = |chain| -> Arc<dyn ServerCertVerifier> {
        Arc::new(Relaxed {
            chain,
            provider: Arc::clone(provider),
        })
    };
    let roots = match settings.mode {
        SslMode::Disable | SslMode::Allow | SslMode::Prefer => return Ok(relaxed(None)),
        SslMode::Require => match roots(&settings.root_cert)? {
            Some(roots) => roots,
            None => return Ok(relaxed(None)),
        },
        SslMode::VerifyCa | SslMode::VerifyFull => {
            roots(&settings.root_cert)?.ok_or_else(|| {
                format!(
                    "sslmode={} needs a root certificate and there is none at {}; give \
                     sslrootcert=FILE, or sslrootcert=system for the public certificate \
                     authorities",
                    settings.mode,
                    default_root_cert()
                        .map_or("~/.postgresql/root.crt".into(), |p| p.display().to_string())
                )
            })?
        }
    };
    let chain = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
        .build()
        .map_err(|e| format!("TLS set-up failed: {e}"))?;
    Ok(match settings.mode {
        SslMode::VerifyFull => chain,
        _ => relaxed(Some(chain)),
    })
}

fn default_root_cert() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    Some(Path::new(&home).join(".postgresql").join("root.crt"))
}

/// The trusted roots, or `None` where none were named and the default file is absent.
fn roots(root_cert: &RootCert) -> Result<Option<RootCertStore>, String> {
    match root_cert {
        RootCert::System => Ok(Some(RootCertStore::from_iter(
            webpki_roots::TLS_SERVER_ROOTS.iter().cloned(),
        ))),
        RootCert::File(path) => read_roots(path).map(Some),
        RootCert::Default => match default_root_cert().filter(|path| path.is_file()) {
            Some(path) => read_roots(&path).map(Some),
            None => Ok(None),
        },
    }
}

fn read_roots(path: &Path) -> Result<RootCertStore, String> {
    let shown = path.display();
    let unreadable =
        |reason: String| format!("cannot read the root certificate '{shown}': {reason}");
    let mut store = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path).map_err(|e| unreadable(e.to_string()))?;
    for cert in certs {
        let cert = cert.map_err(|e| unreadable(e.to_string()))?;
        store.add(cert).map_err(|e| unreadable(e.to_string()))?;
    }
    if store.is_empty() {
        return Err(unreadable("no PEM certificate in it".into()));
    }
    Ok(store)
}

/// Every mode but `verify-full`. With a chain verifier (`verify-ca`, `require` with a
/// root), the chain must lead to a trusted root and the name in it is not checked; without
/// one (`prefer`, `require` without a root), any certificate is taken, as libpq does. The
/// handshake's signatures are checked either way, so the traffic is encrypted to the
/// holder of the certificate's key.
#[derive(Debug)]
struct Relaxed {
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Relaxed {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        // The chain is checked before the name, so a name mismatch means the chain held.
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(TlsError::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_keys_leave_the_url_and_others_stay() {
        let (url, settings) = split_settings(
            "postgres://a@h/db?application_name=x&sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem",
        )
        .unwrap();
        assert_eq!(url, "postgres://a@h/db?application_name=x");
        assert_eq!(settings.mode, SslMode::VerifyFull);
        assert_eq!(settings.root_cert, RootCert::File("/tmp/ca.pem".into()));
        let (url, settings) = split_settings("postgres://a@h/db?sslrootcert=system").unwrap();
        assert_eq!(url, "postgres://a@h/db");
        assert_eq!(settings.root_cert, RootCert::System);
    }

    #[test]
    fn bad_modes_and_client_certificates_are_refused() {
        let error = split_settings("postgres://a@h/db?sslmode=sometimes").unwrap_err();
        assert!(error.contains("unknown sslmode 'sometimes'"), "{error}");
        let error = split_settings("postgres://a@h/db?sslcert=/c.pem").unwrap_err();
        assert!(error.contains("client certificates"), "{error}");
    }

    #[test]
    fn verify_modes_without_a_root_say_where_to_put_one() {
        let settings = TlsSettings {
            mode: SslMode::VerifyCa,
            root_cert: RootCert::File("/nonexistent/root.crt".into()),
        };
        let error = connector(&settings).err().unwrap();
        assert!(
            error.contains("cannot read the root certificate"),
            "{error}"
        );
        for mode in [SslMode::Prefer, SslMode::Require, SslMode::Disable] {
            let settings = TlsSettings {
                mode,
                root_cert: RootCert::System,
            };
            assert!(connector(&settings).is_ok(), "{mode}");
        }
    }
}
