//! TLS on the gateway port (`gateway.tls.*`, the original's keys): HTTPS and WSS on the same
//! port, TLS 1.3 only.
//!
//! * [`material`]: the certificate and key (read, or generated once), their fingerprint, the
//!   rustls server config.
//! * [`handshake`]: one connection's handshake through rustls, sans IO.
//! * [`record`]: the record layer of an established connection, sans IO (rustls hands its
//!   keys over after the handshake, as it would to kernel TLS).
//! * [`watch`]: renewal: replaced files take effect for new connections, existing ones keep
//!   theirs, and a broken replacement keeps the old pair serving.

pub mod handshake;
pub mod material;
pub mod record;
pub mod watch;

use std::path::{Path, PathBuf};

use serde_json::Value;

pub use material::{Acceptor, Material, TlsError};

use crate::config::{as_str, fields, invalid, ConfigError};

/// `gateway.tls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// Serve HTTPS and WSS instead of HTTP and WS (`enabled`, default false).
    pub enabled: bool,
    /// Generate a self-signed pair when both files are missing (`autoGenerate`, default true).
    pub auto_generate: bool,
    /// PEM certificate chain (`certPath`; default `<stateDir>/gateway/tls/gateway-cert.pem`).
    pub cert_path: Option<PathBuf>,
    /// PEM private key (`keyPath`; default `<stateDir>/gateway/tls/gateway-key.pem`).
    pub key_path: Option<PathBuf>,
    /// PEM CA bundle whose certificates are served after the chain (`caPath`).
    pub ca_path: Option<PathBuf>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            enabled: false,
            auto_generate: true,
            cert_path: None,
            key_path: None,
            ca_path: None,
        }
    }
}

impl TlsConfig {
    pub fn cert_file(&self, state_dir: &Path) -> PathBuf {
        self.cert_path
            .clone()
            .unwrap_or_else(|| state_dir.join("gateway/tls/gateway-cert.pem"))
    }

    pub fn key_file(&self, state_dir: &Path) -> PathBuf {
        self.key_path
            .clone()
            .unwrap_or_else(|| state_dir.join("gateway/tls/gateway-key.pem"))
    }

    /// Parses `gateway.tls` (paths may start with `~/`).
    pub fn parse(v: &Value, path: &str) -> Result<TlsConfig, ConfigError> {
        let mut c = TlsConfig::default();
        for (k, v, key) in fields(
            v,
            path,
            &["enabled", "autoGenerate", "certPath", "keyPath", "caPath"],
        )? {
            match k {
                "enabled" | "autoGenerate" => {
                    let b = v
                        .as_bool()
                        .ok_or_else(|| invalid(&key, "must be true or false"))?;
                    if k == "enabled" {
                        c.enabled = b;
                    } else {
                        c.auto_generate = b;
                    }
                }
                _ => {
                    let p = Some(user_path(&key, as_str(&key, v)?)?);
                    match k {
                        "certPath" => c.cert_path = p,
                        "keyPath" => c.key_path = p,
                        _ => c.ca_path = p,
                    }
                }
            }
        }
        Ok(c)
    }
}

/// A configured path: not blank, `~/` expanded.
fn user_path(key: &str, raw: &str) -> Result<PathBuf, ConfigError> {
    let raw = raw.trim();
    if raw.is_empty() || raw.contains('\0') {
        return Err(invalid(key, "must be a file path"));
    }
    Ok(match raw.strip_prefix("~/") {
        Some(rest) => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default()
            .join(rest),
        None => PathBuf::from(raw),
    })
}

/// Prepares the listener's TLS at start: generates the pair if asked, reads and checks it.
/// An error here stops the start (the original never falls back to plain text either).
pub fn start(cfg: &TlsConfig, state_dir: &Path) -> Result<(Material, Option<PathBuf>), TlsError> {
    let generated = material::ensure(cfg, state_dir)?;
    let files = material::read_files(cfg, state_dir)?;
    Ok((Material::parse(files, cfg, state_dir)?, generated))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_originals_keys_parse_with_its_defaults() {
        let c = TlsConfig::parse(&json!({}), "gateway.tls").unwrap();
        assert!(!c.enabled && c.auto_generate);
        assert_eq!(
            c.cert_file(Path::new("/s")),
            Path::new("/s/gateway/tls/gateway-cert.pem")
        );
        let c = TlsConfig::parse(
            &json!({"enabled": true, "autoGenerate": false, "certPath": "/a.pem",
                    "keyPath": "~/k.pem", "caPath": "/ca.pem"}),
            "gateway.tls",
        )
        .unwrap();
        assert!(c.enabled && !c.auto_generate);
        assert_eq!(c.cert_file(Path::new("/s")), Path::new("/a.pem"));
        assert!(c.key_file(Path::new("/s")).ends_with("k.pem"));
        assert!(!c.key_file(Path::new("/s")).starts_with("~"));
        for bad in [
            json!({"enabled": "yes"}),
            json!({"certPath": ""}),
            json!({"certPath": 3}),
            json!({"mystery": 1}),
        ] {
            assert!(TlsConfig::parse(&bad, "gateway.tls").is_err(), "{bad}");
        }
    }
}
