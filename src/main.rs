//! `ringgate` command line.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::{Parser, Subcommand};
use ringgate::{
    auth::secret::AuthMode,
    config::{self, Config, ConfigError},
    shard,
};
use signal_hook::{
    consts::{SIGHUP, SIGINT, SIGTERM},
    iterator::Signals,
};

#[derive(Parser)]
#[command(
    name = "ringgate",
    version,
    about = "Thread-per-core OpenClaw Gateway (protocol v4)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Run(RunArgs),
    /// A live per-shard view of a running gateway, from its metrics endpoint (works over SSH).
    Top(TopArgs),
}

#[derive(clap::Args)]
struct TopArgs {
    /// The gateway's HTTP base URL.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:18789")]
    url: String,
    /// Gateway token or password (also RINGGATE_TOKEN / OPENCLAW_GATEWAY_TOKEN).
    #[arg(long, value_name = "T")]
    token: Option<String>,
    /// Seconds between refreshes (the rates are over this interval).
    #[arg(long, value_name = "S", default_value_t = 2.0)]
    interval: f64,
    /// Print one view (two scrapes an interval apart) and exit.
    #[arg(long)]
    once: bool,
}

#[derive(clap::Args)]
struct RunArgs {
    /// JSON5 config file (OpenClaw `gateway.*` keys plus a `ringgate` section).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on: `loopback`, `lan`, or an IP address.
    #[arg(long, value_name = "ADDR")]
    bind: Option<String>,
    /// Port to listen on (0 picks a free one; the line `listening on ws://…` tells which).
    #[arg(long, value_name = "N")]
    port: Option<u16>,
    /// Shared token clients must present (also RINGGATE_TOKEN / OPENCLAW_GATEWAY_TOKEN).
    #[arg(long, value_name = "T", conflicts_with_all = ["password", "auth"])]
    token: Option<String>,
    /// Shared password clients must present.
    #[arg(long, value_name = "P", conflicts_with = "auth")]
    password: Option<String>,
    /// Authentication mode; only `none` is accepted here (token/password are set by value).
    #[arg(long, value_name = "MODE", value_parser = ["none"])]
    auth: Option<String>,
    /// Number of shards (threads pinned to cores); default one per online CPU.
    #[arg(long, value_name = "N")]
    shards: Option<usize>,
    /// State directory (default ~/.ringgate).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// io driver: auto (monoio on io_uring, else epoll), io_uring, epoll or glommio.
    #[arg(long, value_name = "DRIVER")]
    driver: Option<String>,
    /// Join a cluster through this NATS server (`ringgate.cluster.nats`), e.g.
    /// nats://127.0.0.1:4222; JetStream must be enabled.
    #[arg(long, value_name = "URL")]
    cluster_nats: Option<String>,
    /// This host's name in the cluster (`ringgate.cluster.name`; default: the host name).
    #[arg(long, value_name = "NAME")]
    cluster_name: Option<String>,
    /// Validate the configuration and exit.
    #[arg(long)]
    check_config: bool,
}

fn env_token() -> Option<String> {
    ["RINGGATE_TOKEN", "OPENCLAW_GATEWAY_TOKEN"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
}

/// Flags and environment, which win over the file (on start and on every reload).
fn overrides(a: &RunArgs) -> Result<config::Overrides, ConfigError> {
    let auth = if a.auth.is_some() {
        Some(AuthMode::None)
    } else if let Some(t) = &a.token {
        Some(AuthMode::Token(t.clone()))
    } else {
        a.password.clone().map(AuthMode::Password)
    };
    Ok(config::Overrides {
        bind: a
            .bind
            .as_deref()
            .map(|b| config::parse_bind("--bind", b))
            .transpose()?,
        port: a.port,
        auth,
        env_token: env_token(),
        shards: a.shards,
        state_dir: a.state_dir.clone(),
        driver: a
            .driver
            .as_deref()
            .map(|d| config::parse_driver("--driver", d))
            .transpose()?,
        cluster_nats: a.cluster_nats.clone(),
        cluster_name: a.cluster_name.clone(),
        fallback_token: None,
    })
}

/// defaults ← file (`--config`, else `<stateDir>/ringgate.json5` when it exists) ← environment
/// ← flags.
fn build_config(a: &RunArgs) -> Result<Config, ConfigError> {
    let o = overrides(a)?;
    let path = match &a.config {
        Some(p) => Some(p.clone()),
        None => {
            let dir = o
                .state_dir
                .clone()
                .unwrap_or_else(config::default_state_dir);
            Some(dir.join(config::DEFAULT_FILE_NAME)).filter(|p| p.exists())
        }
    };
    let doc = match &path {
        Some(p) => config::read_doc(p)?,
        None => serde_json::json!({}),
    };
    Config::from_doc(&doc, path, std::sync::Arc::new(o))
}

/// With token auth and no token configured, use (or create) `<state-dir>/gateway-token`.
fn ensure_token(c: &mut Config) -> std::io::Result<Option<PathBuf>> {
    if !matches!(&c.auth, AuthMode::Token(t) if t.is_empty()) {
        return Ok(None);
    }
    let path = c.state_dir.join("gateway-token");
    let token = match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => t.trim().to_owned(),
        _ => {
            std::fs::create_dir_all(&c.state_dir)?;
            let token = generate_token();
            write_private(&path, &token)?;
            token
        }
    };
    c.auth = AuthMode::Token(token.clone());
    let mut o = (*c.overrides).clone();
    o.fallback_token = Some(token);
    c.overrides = std::sync::Arc::new(o);
    Ok(Some(path))
}

/// Connects the cluster link when `ringgate.cluster` (or `--cluster-nats`) asks for one.
fn cluster_link(cfg: &mut Config) -> Result<Option<ringgate::cluster::link::Link>, String> {
    let Some(c) = cfg.cluster.as_mut() else {
        return Ok(None);
    };
    if c.nats.is_empty() {
        return Err(
            "--cluster-name needs a NATS server: --cluster-nats or ringgate.cluster.nats".into(),
        );
    }
    c.validate("ringgate.cluster").map_err(|e| e.to_string())?;
    ringgate::cluster::link::connect(c).map(Some)
}

fn generate_token() -> String {
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())?;
    f.write_all(b"\n")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = match cli.command {
        Command::Run(args) => args,
        Command::Top(t) => return top(t),
    };
    let mut cfg = match build_config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ringgate: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check_config {
        println!("configuration ok");
        return ExitCode::SUCCESS;
    }
    let _log_guard = ringgate::logs::init(&cfg.state_dir);
    ringgate::panic_policy::install();
    let token_file = match ensure_token(&mut cfg) {
        Ok(p) => p,
        Err(e) => {
            eprintln!(
                "ringgate: cannot prepare state dir {}: {e}",
                cfg.state_dir.display()
            );
            return ExitCode::from(1);
        }
    };
    let auth = cfg.auth.clone();
    let driver = shard::resolve_driver(cfg.driver);
    if let Err(why) = shard::check_driver(driver) {
        eprintln!("ringgate: the {driver:?} driver cannot start on this host: {why}");
        return ExitCode::from(2);
    }
    let shards = cfg.shard_count();
    let signals = match Signals::new([SIGINT, SIGTERM, SIGHUP]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ringgate: cannot install signal handlers: {e}");
            return ExitCode::from(1);
        }
    };
    // The cluster link first: a host that cannot reach NATS must not start serving alone.
    let link = match cluster_link(&mut cfg) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("ringgate: cannot join the cluster: {e}");
            return ExitCode::from(2);
        }
    };
    let gw = match shard::start(cfg, link) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("ringgate: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    tracing::info!(shards, driver = ?driver, "ringgate {} started", env!("CARGO_PKG_VERSION"));
    let mut out = std::io::stdout().lock();
    let (ws, http) = match gw.tls_fingerprint {
        Some(_) => ("wss", "https"),
        None => ("ws", "http"),
    };
    let _ = writeln!(out, "listening on {ws}://{}", gw.addr);
    if let Some(fp) = &gw.tls_fingerprint {
        // The pin the original's clients take (`--tls-fingerprint`, `gateway.remote.tlsFingerprint`).
        let _ = writeln!(out, "tls: sha256 {fp}");
    }
    let ui = &gw.control_ui;
    let dashboard = ui.index.as_ref().map(|_| {
        // Bound to every interface: this host reaches it on loopback.
        let mut at = gw.addr;
        if at.ip().is_unspecified() {
            at.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("{http}://{at}{}/", ui.base_path)
    });
    match (&auth, token_file) {
        (AuthMode::Token(t), Some(path)) => {
            let _ = writeln!(out, "token: {t}  (stored in {})", path.display());
            let _ = writeln!(
                out,
                "connect: openclaw gateway call health --url {ws}://{} --token {t} --json",
                gw.addr
            );
            if let Some(url) = &dashboard {
                let _ = writeln!(out, "dashboard: {url}#token={t}");
            }
        }
        (AuthMode::Token(_) | AuthMode::Password(_), _) => {
            if let Some(url) = &dashboard {
                let _ = writeln!(
                    out,
                    "dashboard: {url}#token=<your token>  (or enter the password in it)"
                );
            }
        }
        (AuthMode::TrustedProxy(tp), _) => {
            let _ = writeln!(
                out,
                "auth: trusted-proxy (users named in {} by a proxy in gateway.trustedProxies)",
                tp.user_header
            );
        }
        (AuthMode::None, _) => {
            let _ = writeln!(out, "auth: none (any client on this address may connect)");
            if let Some(url) = &dashboard {
                let _ = writeln!(out, "dashboard: {url}");
            }
        }
    }
    let _ = out.flush();
    drop(out);
    let mut signals = signals;
    for sig in signals.forever() {
        if sig == SIGHUP {
            tracing::info!("SIGHUP: reloading the config file");
            gw.reload_config();
            continue;
        }
        tracing::info!(signal = sig, "shutting down");
        break;
    }
    gw.shutdown();
    ExitCode::SUCCESS
}

/// `ringgate top`: scrapes the metrics endpoint every interval and redraws the view.
fn top(a: TopArgs) -> ExitCode {
    use ringgate::metrics::{text, top::View};
    let interval = std::time::Duration::from_secs_f64(a.interval.clamp(0.2, 3600.0));
    let url = format!(
        "{}{}",
        a.url.trim_end_matches('/'),
        ringgate::http::METRICS_PATHS[0]
    );
    let token = a.token.clone().or_else(env_token);
    let agent = ureq::AgentBuilder::new()
        .timeout(std::time::Duration::from_secs(10))
        .build();
    let scrape = || -> Result<Vec<text::Sample>, String> {
        let mut req = agent.get(&url);
        if let Some(t) = &token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        match req.call() {
            Ok(r) => r
                .into_string()
                .map(|body| text::parse(&body))
                .map_err(|e| e.to_string()),
            Err(ureq::Error::Status(401, _)) => {
                Err("401 unauthorized: pass --token (or set RINGGATE_TOKEN)".into())
            }
            Err(ureq::Error::Status(code, r)) => {
                Err(format!("{code}: {}", r.into_string().unwrap_or_default()))
            }
            Err(e) => Err(e.to_string()),
        }
    };
    let mut prev = match scrape() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ringgate top: {url}: {e}");
            return ExitCode::from(1);
        }
    };
    let mut at = std::time::Instant::now();
    loop {
        std::thread::sleep(interval);
        let cur = match scrape() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("ringgate top: {url}: {e}");
                return ExitCode::from(1);
            }
        };
        let dt = at.elapsed().as_secs_f64();
        at = std::time::Instant::now();
        let screen = View {
            prev: &prev,
            cur: &cur,
            dt,
        }
        .render(&a.url);
        if a.once {
            print!("{screen}");
            return ExitCode::SUCCESS;
        }
        // Home and clear, then the view: plain ANSI, so it works in any terminal and over SSH.
        print!("\x1b[H\x1b[2J{screen}");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        prev = cur;
    }
}
