//! The certificate and key a TLS listener serves: read from the configured files (or
//! generated once, when both are missing and `autoGenerate` is on), checked, fingerprinted,
//! and turned into the rustls server config every shard accepts with.

use std::{
    io::Write,
    path::{Path, PathBuf},
    sync::Arc,
};

use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use super::TlsConfig;

/// Largest certificate or key file read (the original's `MAX_TLS_LEAF_FILE_BYTES`).
pub const MAX_LEAF_FILE: u64 = 64 * 1024;
/// Largest CA bundle read.
pub const MAX_CA_FILE: u64 = 1024 * 1024;
/// Validity of a generated certificate (the original's `-days 3650`).
const GENERATED_DAYS: i64 = 3650;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("gateway tls: cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("gateway tls: {path} is larger than {max} bytes")]
    TooLarge { path: PathBuf, max: u64 },
    #[error("gateway tls: {path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("gateway tls: {path} holds no PEM private key")]
    NoKey { path: PathBuf },
    #[error("gateway tls: cert/key missing ({missing} does not exist; with autoGenerate a pair is made only when both files are missing)")]
    Partial { missing: PathBuf },
    #[error("gateway tls: the key does not fit the certificate, or is not usable: {0}")]
    Unusable(String),
    #[error("gateway tls: generating a certificate failed: {0}")]
    Generate(String),
    #[error("gateway tls: cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The files' contents, as read (a renewal compares them to see whether anything changed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Files {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
    pub ca: Option<Vec<u8>>,
}

/// A checked certificate chain and key, ready to serve.
#[derive(Debug)]
pub struct Material {
    pub files: Files,
    pub chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    /// SHA-256 of the leaf certificate's DER, 64 lowercase hex digits: the form the
    /// original's clients pin (`--tls-fingerprint`, `gateway.remote.tlsFingerprint`).
    pub fingerprint: String,
}

/// What a listener accepts with: shared by every shard and replaced as a whole on renewal.
pub struct Acceptor {
    pub config: Arc<rustls::ServerConfig>,
    pub fingerprint: Arc<str>,
}

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acceptor")
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

/// ring, with the TLS 1.3 suites in the order the server prefers: AES-128-GCM-SHA256 (SHA-256
/// and AES run on CPU instructions), ChaCha20-Poly1305, AES-256-GCM-SHA384.
fn provider() -> rustls::crypto::CryptoProvider {
    use rustls::crypto::ring::cipher_suite as cs;
    rustls::crypto::CryptoProvider {
        cipher_suites: vec![
            cs::TLS13_AES_128_GCM_SHA256,
            cs::TLS13_CHACHA20_POLY1305_SHA256,
            cs::TLS13_AES_256_GCM_SHA384,
        ],
        ..rustls::crypto::ring::default_provider()
    }
}

/// SHA-256 of a DER certificate as 64 lowercase hex digits.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, TlsError> {
    let read = |source| TlsError::Read {
        path: path.into(),
        source,
    };
    use std::io::Read;
    // Read through a bound (a file growing meanwhile, or a FIFO, cannot make this unbounded).
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(max + 1).read_to_end(&mut bytes))
        .map_err(read)?;
    if bytes.len() as u64 > max {
        return Err(TlsError::TooLarge {
            path: path.into(),
            max,
        });
    }
    Ok(bytes)
}

/// Reads the configured files.
pub fn read_files(cfg: &TlsConfig, state_dir: &Path) -> Result<Files, TlsError> {
    Ok(Files {
        cert: read_bounded(&cfg.cert_file(state_dir), MAX_LEAF_FILE)?,
        key: read_bounded(&cfg.key_file(state_dir), MAX_LEAF_FILE)?,
        ca: match &cfg.ca_path {
            Some(p) => Some(read_bounded(p, MAX_CA_FILE)?),
            None => None,
        },
    })
}

impl Material {
    /// Parses and checks files: a certificate chain, a private key that belongs to its leaf,
    /// and the CA bundle's certificates, which are served after the chain to complete it.
    pub fn parse(files: Files, cfg: &TlsConfig, state_dir: &Path) -> Result<Material, TlsError> {
        let mut chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&files.cert)
            .filter_map(Result::ok)
            .collect();
        if chain.is_empty() {
            return Err(TlsError::NoCertificate {
                path: cfg.cert_file(state_dir),
            });
        }
        let key = PrivateKeyDer::from_pem_slice(&files.key).map_err(|_| TlsError::NoKey {
            path: cfg.key_file(state_dir),
        })?;
        if let Some(ca) = &files.ca {
            for c in CertificateDer::pem_slice_iter(ca).filter_map(Result::ok) {
                if !chain.contains(&c) {
                    chain.push(c);
                }
            }
        }
        // The same check rustls makes when serving: the key parses and fits the leaf.
        let provider = rustls::crypto::ring::default_provider();
        rustls::sign::CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider)
            .map_err(|e| TlsError::Unusable(e.to_string()))?;
        let fingerprint = fingerprint(&chain[0]);
        Ok(Material {
            files,
            chain,
            key,
            fingerprint,
        })
    }

    /// The server config: TLS 1.3 only (as the original's `minVersion: "TLSv1.3"`), ALPN
    /// `http/1.1`, stateless resumption tickets from `ticketer` (shared across renewals, so
    /// a renewal does not void the tickets clients hold).
    pub fn acceptor(
        &self,
        ticketer: Arc<dyn rustls::server::ProducesTickets>,
    ) -> Result<Acceptor, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Unusable(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| TlsError::Unusable(e.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        // The server's suite order, not the client's: most clients (OpenSSL, rustls) put
        // AES-256-GCM-SHA384 first, whose SHA-384 key schedule has no CPU instructions and
        // costs a tenth of a handshake; AES-128-GCM-SHA256 is as safe for this use.
        config.ignore_client_order = true;
        config.ticketer = ticketer;
        // One ticket per handshake is enough for a client to resume; each costs bytes and an
        // encryption on every handshake.
        config.send_tls13_tickets = 1;
        // Tickets carry the state; no server-side session cache (and no lock) is needed.
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        // The keys are handed to ringgate's own record layer after the handshake.
        config.enable_secret_extraction = true;
        Ok(Acceptor {
            config: Arc::new(config),
            fingerprint: self.fingerprint.clone().into(),
        })
    }
}

/// Where the listener's material comes from at start: generated when `autoGenerate` is on and
/// both files are missing (the generated files' paths are returned), refused when only one is.
pub fn ensure(cfg: &TlsConfig, state_dir: &Path) -> Result<Option<PathBuf>, TlsError> {
    let (cert, key) = (cfg.cert_file(state_dir), cfg.key_file(state_dir));
    match (cert.exists(), key.exists()) {
        (true, true) => Ok(None),
        (false, false) if cfg.auto_generate => {
            generate(&cert, &key)?;
            Ok(Some(cert))
        }
        (false, _) => Err(TlsError::Partial { missing: cert }),
        (true, false) => Err(TlsError::Partial { missing: key }),
    }
}

/// Generates a self-signed ECDSA P-256 certificate (10 years; CN `ringgate-gateway`; names
/// `localhost`, `127.0.0.1`, `::1` and this host's name, so clients that verify names accept
/// it once trusted) and writes it and its key with mode 0600, never over an existing file.
pub fn generate(cert_path: &Path, key_path: &Path) -> Result<(), TlsError> {
    let gen = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".into(), "::1".into()];
    let host = crate::state::hostname();
    let dns_safe = |h: &str| {
        h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    };
    if host != "localhost" && dns_safe(&host) {
        names.push(host);
    }
    let mut params = rcgen::CertificateParams::new(names).map_err(gen)?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, "ringgate-gateway");
    params.distinguished_name = dn;
    let today = (crate::state::now_ms() / 86_400_000) as i64;
    let date = |days: i64| {
        let (y, m, d) = crate::calendar::civil_from_days(days);
        rcgen::date_time_ymd(y as i32, m as u8, d as u8)
    };
    params.not_before = date(today - 1);
    params.not_after = date(today + GENERATED_DAYS);
    let key = rcgen::KeyPair::generate().map_err(gen)?;
    let cert = params.self_signed(&key).map_err(gen)?;
    for dir in [cert_path.parent(), key_path.parent()]
        .into_iter()
        .flatten()
    {
        create_private_dir(dir)?;
    }
    // The key first: a crash between the two leaves a lone key, which the next start reports
    // ("cert/key missing") rather than serving a certificate without its key.
    write_new(key_path, key.serialize_pem().as_bytes())?;
    write_new(cert_path, cert.pem().as_bytes())?;
    Ok(())
}

fn create_private_dir(dir: &Path) -> Result<(), TlsError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| TlsError::Write {
            path: dir.into(),
            source,
        })
}

/// Writes a new file with mode 0600 (refusing to replace one), synced to disk.
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| TlsError::Write {
        path: path.into(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ringgate-tls-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn cfg() -> TlsConfig {
        TlsConfig {
            enabled: true,
            ..TlsConfig::default()
        }
    }

    #[test]
    fn a_pair_is_generated_once_and_only_when_both_files_are_missing() {
        let dir = tmp("gen");
        let c = cfg();
        let made = ensure(&c, &dir).unwrap().expect("generated");
        assert_eq!(made, dir.join("gateway/tls/gateway-cert.pem"));
        let first = read_files(&c, &dir).unwrap();
        // A second start keeps the pair.
        assert_eq!(ensure(&c, &dir).unwrap(), None);
        assert_eq!(read_files(&c, &dir).unwrap(), first);
        let m = Material::parse(first, &c, &dir).unwrap();
        assert_eq!(m.fingerprint.len(), 64);
        assert!(m
            .fingerprint
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("gateway/tls/gateway-key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        m.acceptor(rustls::crypto::ring::Ticketer::new().unwrap())
            .unwrap();
        // With one file gone nothing is generated: that would hide a lost key.
        std::fs::remove_file(dir.join("gateway/tls/gateway-cert.pem")).unwrap();
        assert!(matches!(ensure(&c, &dir), Err(TlsError::Partial { .. })));
        let off = TlsConfig {
            auto_generate: false,
            ..cfg()
        };
        let empty = tmp("gen-off");
        assert!(matches!(
            ensure(&off, &empty),
            Err(TlsError::Partial { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_key_of_another_certificate_or_junk_is_refused() {
        let (a, b) = (tmp("a"), tmp("b"));
        ensure(&cfg(), &a).unwrap();
        ensure(&cfg(), &b).unwrap();
        let mut files = read_files(&cfg(), &a).unwrap();
        files.key = read_files(&cfg(), &b).unwrap().key;
        assert!(matches!(
            Material::parse(files.clone(), &cfg(), &a),
            Err(TlsError::Unusable(_))
        ));
        files.key = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".to_vec();
        assert!(Material::parse(files.clone(), &cfg(), &a).is_err());
        files.cert = b"not pem".to_vec();
        assert!(matches!(
            Material::parse(files, &cfg(), &a),
            Err(TlsError::NoCertificate { .. })
        ));
        let _ = std::fs::remove_dir_all(&a);
        let _ = std::fs::remove_dir_all(&b);
    }
}
