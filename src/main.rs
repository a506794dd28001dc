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
    consts::{SIGINT, SIGTERM},
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
    /// io driver: auto, io_uring or epoll.
    #[arg(long, value_name = "DRIVER")]
    driver: Option<String>,
    /// Validate the configuration and exit.
    #[arg(long)]
    check_config: bool,
}

fn env_token() -> Option<String> {
    ["RINGGATE_TOKEN", "OPENCLAW_GATEWAY_TOKEN"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
}

fn build_config(a: &RunArgs) -> Result<Config, ConfigError> {
    let mut c = Config::default();
    if let Some(path) = &a.config {
        c.apply_file(path)?;
    }
    if let Some(t) = env_token() {
        if matches!(c.auth, AuthMode::Token(_)) {
            c.auth = AuthMode::Token(t);
        }
    }
    if let Some(b) = &a.bind {
        c.bind = config::parse_bind("--bind", b)?;
    }
    if let Some(p) = a.port {
        c.port = p;
    }
    if let Some(t) = &a.token {
        c.auth = AuthMode::Token(t.clone());
    }
    if let Some(p) = &a.password {
        c.auth = AuthMode::Password(p.clone());
    }
    if a.auth.is_some() {
        c.auth = AuthMode::None;
    }
    if let Some(n) = a.shards {
        c.shards = n;
    }
    if let Some(d) = &a.state_dir {
        c.state_dir = d.clone();
    }
    if let Some(d) = &a.driver {
        c.driver = config::parse_driver("--driver", d)?;
    }
    Ok(c)
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
    c.auth = AuthMode::Token(token);
    Ok(Some(path))
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
    let Command::Run(args) = cli.command;
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
    let shards = cfg.shard_count();
    let signals = match Signals::new([SIGINT, SIGTERM]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ringgate: cannot install signal handlers: {e}");
            return ExitCode::from(1);
        }
    };
    let gw = match shard::start(cfg) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("ringgate: cannot listen: {e}");
            return ExitCode::from(1);
        }
    };
    tracing::info!(shards, driver = ?driver, "ringgate {} started", env!("CARGO_PKG_VERSION"));
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening on ws://{}", gw.addr);
    match (&auth, token_file) {
        (AuthMode::Token(t), Some(path)) => {
            let _ = writeln!(out, "token: {t}  (stored in {})", path.display());
            let _ = writeln!(
                out,
                "connect: openclaw gateway call health --url ws://{} --token {t} --json",
                gw.addr
            );
        }
        (AuthMode::None, _) => {
            let _ = writeln!(out, "auth: none (any client on this address may connect)");
        }
        _ => {}
    }
    let _ = out.flush();
    drop(out);
    let mut signals = signals;
    if let Some(sig) = signals.forever().next() {
        tracing::info!(signal = sig, "shutting down");
    }
    gw.shutdown();
    ExitCode::SUCCESS
}
