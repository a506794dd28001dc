//! Certificate renewal without a restart: a thread looks at the certificate, key and CA files
//! once a second (as the original's `fs.watchFile` does); when one has changed it reads them
//! again, checks the pair, and hands every shard a new [`Acceptor`]. New connections get the
//! new certificate; established ones keep their keys. A broken replacement (unreadable, half
//! written, a key of another certificate) keeps the old pair serving and is logged once.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime},
};

use super::{material, Acceptor, Material, TlsConfig};

/// How often the files are looked at.
pub const POLL: Duration = Duration::from_secs(1);
/// After a change is seen, how long to wait for the writer to finish the other file (the
/// original's debounce).
pub const SETTLE: Duration = Duration::from_millis(300);

/// What identifies a file's version without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp(Option<(SystemTime, u64, u64)>);

fn stamp(p: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    Stamp(std::fs::metadata(p).ok().map(|m| {
        (
            m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            m.len(),
            m.ino(),
        )
    }))
}

/// Starts the renewal thread. `publish` hands a new acceptor to every shard; the thread ends
/// once `stopping` says so.
pub fn start(
    cfg: TlsConfig,
    state_dir: PathBuf,
    current: Material,
    ticketer: Arc<dyn rustls::server::ProducesTickets>,
    stopping: impl Fn() -> bool + Send + 'static,
    publish: impl Fn(Arc<Acceptor>) + Send + 'static,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("ringgate-tls-watch".into())
        .spawn(move || {
            let paths: Vec<PathBuf> = [
                Some(cfg.cert_file(&state_dir)),
                Some(cfg.key_file(&state_dir)),
                cfg.ca_path.clone(),
            ]
            .into_iter()
            .flatten()
            .collect();
            let stamps = || paths.iter().map(|p| stamp(p)).collect::<Vec<_>>();
            let mut seen = stamps();
            let mut serving = current.files;
            let mut refused: Option<material::Files> = None;
            while !stopping() {
                std::thread::sleep(POLL);
                let now = stamps();
                if now == seen {
                    continue;
                }
                std::thread::sleep(SETTLE);
                seen = stamps();
                match renew(&cfg, &state_dir, &serving, &refused, &ticketer) {
                    Renewal::Same => {}
                    Renewal::New(files, acceptor) => {
                        tracing::info!(
                            fingerprint = %acceptor.fingerprint,
                            "gateway TLS certificate renewed without restarting listeners"
                        );
                        serving = files;
                        refused = None;
                        publish(Arc::new(acceptor));
                    }
                    Renewal::Refused(files, why) => {
                        tracing::error!(
                            error = %why,
                            "gateway TLS renewal refused; the previous certificate keeps serving"
                        );
                        refused = files;
                    }
                    Renewal::AlreadyRefused => {}
                }
            }
        })
        .map(|_| ())
}

enum Renewal {
    Same,
    New(material::Files, Acceptor),
    Refused(Option<material::Files>, String),
    /// The same broken files as last time (logged once).
    AlreadyRefused,
}

fn renew(
    cfg: &TlsConfig,
    state_dir: &Path,
    serving: &material::Files,
    refused: &Option<material::Files>,
    ticketer: &Arc<dyn rustls::server::ProducesTickets>,
) -> Renewal {
    let files = match material::read_files(cfg, state_dir) {
        Ok(f) => f,
        Err(e) => return Renewal::Refused(None, e.to_string()),
    };
    if &files == serving {
        return Renewal::Same;
    }
    if refused.as_ref() == Some(&files) {
        return Renewal::AlreadyRefused;
    }
    match Material::parse(files.clone(), cfg, state_dir).and_then(|m| m.acceptor(ticketer.clone()))
    {
        Ok(a) => Renewal::New(files, a),
        Err(e) => Renewal::Refused(Some(files), e.to_string()),
    }
}
