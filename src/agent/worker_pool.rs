//! The supervisor of `openclaw worker` processes: one thread, off the shards, that starts a
//! process per turn (the envelope on its stdin), keeps each agent to its `maxConcurrent`
//! workers (further turns wait their turn), stops a worker whose run ended or was aborted
//! (SIGTERM to its process group, SIGKILL after a grace period), kills one whose resident
//! memory passes `maxMemoryMb`, and reports how each ended to the run's owner. A worker
//! that dies fails its turn with a reason; nothing it does reaches a shard except through
//! the worker channel and this report.
//!
//! Per turn, not the original's multi-turn mode: that mode keeps a process only while
//! background commands of an earlier turn still run, binds it to one session, and peaks at
//! about 1 GB (against ~370 MB for `openclaw worker`); see BENCHMARKS.md.

use std::{
    collections::{HashMap, VecDeque},
    fs::File,
    io::{Read, Seek, SeekFrom, Write},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use crossbeam::channel::{self, Receiver, RecvTimeoutError, Sender};
use serde_json::Value;

use super::{config::WorkerConfig, Failure, Output, Sink, Usage};

/// After its turn finished, how long a worker gets to exit by itself before it is sent
/// SIGTERM (an aborted or failed run's worker gets it at once).
pub const EXIT_GRACE: Duration = Duration::from_secs(10);
/// How long a stopped worker gets to cancel its turn before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(3);
/// How often running workers are checked (exit, cancel, memory).
const TICK: Duration = Duration::from_millis(100);
/// How often their memory is measured.
const MEMORY_EVERY: Duration = Duration::from_millis(500);

/// One turn's worker to start.
pub struct Launch {
    /// The launch envelope (JSON).
    pub envelope: Vec<u8>,
    pub agent_id: String,
    pub config: WorkerConfig,
    pub run_id: Arc<str>,
    /// Raised when the run ends: a waiting launch is dropped, a running worker stopped.
    pub cancel: Arc<AtomicBool>,
    /// Raised when the run was aborted or failed: the worker is stopped without waiting for
    /// it to finish by itself.
    pub stop: Arc<AtomicBool>,
    /// Where the outcome goes (the run's owner).
    pub sink: Sink,
}

/// The handle shards use to start workers.
#[derive(Clone)]
pub struct WorkerPool {
    tx: Sender<Launch>,
    /// Workers running now, all agents (for `health` and tests).
    pub running: Arc<AtomicU64>,
}

impl WorkerPool {
    /// Starts the supervisor thread (it exits when every handle is dropped and no worker is
    /// left).
    pub fn start() -> WorkerPool {
        let (tx, rx) = channel::unbounded::<Launch>();
        let running = Arc::new(AtomicU64::new(0));
        let count = running.clone();
        let spawned = std::thread::Builder::new()
            .name("ringgate-workers".into())
            .spawn(move || Supervisor::new(count).run(rx));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the agent worker supervisor");
        }
        WorkerPool { tx, running }
    }

    pub fn launch(&self, l: Launch) {
        if let Err(e) = self.tx.send(l) {
            let l = e.into_inner();
            fail(&l, "the agent worker supervisor is not running".into());
        }
    }
}

fn fail(l: &Launch, message: String) {
    l.sink.send(
        &l.run_id,
        Output::Failed(Failure {
            kind: None,
            message,
            detail: None,
        }),
    );
}

/// The `openclaw` launcher to run: the agent's `command`, else `RINGGATE_OPENCLAW_BIN`,
/// else the pinned client the Makefile installs beside ringgate's build
/// (`target/openclaw-client/bin/openclaw`), else `openclaw` on `PATH`.
pub fn resolve_command(configured: Option<&Path>) -> PathBuf {
    if let Some(c) = configured {
        return c.to_owned();
    }
    if let Some(c) = std::env::var_os("RINGGATE_OPENCLAW_BIN") {
        return c.into();
    }
    let beside = std::env::current_exe().ok().and_then(|exe| {
        let target = exe.parent()?.parent()?;
        let c = target.join("openclaw-client/bin/openclaw");
        c.is_file().then_some(c)
    });
    beside.unwrap_or_else(|| "openclaw".into())
}

struct Running {
    launch: Launch,
    child: Child,
    /// The worker's pid, also its process group.
    pgid: i32,
    /// Its descendants at the last scan (commands its tools started may leave its group).
    tree: Vec<i32>,
    dir: PathBuf,
    started: Instant,
    /// When ringgate saw the run end, and when it sent SIGTERM.
    ended_seen: Option<Instant>,
    term_sent: Option<Instant>,
    /// Why ringgate stopped it (reported instead of the exit status).
    stopped_for: Option<String>,
    peak_rss_kb: u64,
}

/// A started `openclaw worker` without its envelope yet: node and the CLI load while no turn
/// waits, so a turn that takes it skips most of the start-up.
struct Spare {
    child: Child,
    pgid: i32,
    dir: PathBuf,
    command: PathBuf,
}

struct Supervisor {
    waiting: HashMap<String, VecDeque<Launch>>,
    /// Prewarmed processes by workspace.
    spares: HashMap<PathBuf, Vec<Spare>>,
    running: Vec<Running>,
    count: Arc<AtomicU64>,
    last_memory: Instant,
    serial: u64,
}

impl Supervisor {
    fn new(count: Arc<AtomicU64>) -> Supervisor {
        Supervisor {
            waiting: HashMap::new(),
            spares: HashMap::new(),
            running: Vec::new(),
            count,
            last_memory: Instant::now(),
            serial: 0,
        }
    }

    fn run(mut self, rx: Receiver<Launch>) {
        loop {
            let busy = !self.running.is_empty() || self.waiting.values().any(|q| !q.is_empty());
            let got = if busy {
                rx.recv_timeout(TICK)
            } else {
                rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
            };
            match got {
                Ok(l) => {
                    self.waiting
                        .entry(l.agent_id.clone())
                        .or_default()
                        .push_back(l);
                    // Take whatever else is queued before starting anything.
                    while let Ok(l) = rx.try_recv() {
                        self.waiting
                            .entry(l.agent_id.clone())
                            .or_default()
                            .push_back(l);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) if !busy => {
                    // The gateway is going away: no turn will take the prewarmed processes.
                    for s in self.spares.drain().flat_map(|(_, l)| l) {
                        signal(s.pgid, libc::SIGKILL);
                        let _ = std::fs::remove_dir_all(&s.dir);
                    }
                    return;
                }
                Err(RecvTimeoutError::Disconnected) => std::thread::sleep(TICK),
            }
            self.start_waiting();
            self.watch();
            self.count
                .store(self.running.len() as u64, Ordering::Relaxed);
        }
    }

    fn start_waiting(&mut self) {
        let agents: Vec<String> = self.waiting.keys().cloned().collect();
        for agent in agents {
            loop {
                let busy = self
                    .running
                    .iter()
                    .filter(|r| r.launch.agent_id == agent)
                    .count();
                let Some(q) = self.waiting.get_mut(&agent) else {
                    break;
                };
                // A run that ended while waiting needs no worker.
                q.retain(|l| !l.cancel.load(Ordering::Acquire));
                let Some(max) = q.front().map(|l| l.config.max_concurrent) else {
                    break;
                };
                if busy >= max {
                    break;
                }
                let l = q.pop_front().expect("front exists");
                self.spawn(l);
            }
        }
        self.waiting.retain(|_, q| !q.is_empty());
    }

    /// Starts an `openclaw worker` process that waits for its envelope on stdin.
    fn start_process(&mut self, command: &Path, workspace: &Path) -> std::io::Result<Spare> {
        self.serial += 1;
        let dir = std::env::temp_dir().join(format!(
            "ringgate-worker-{}-{}",
            std::process::id(),
            self.serial
        ));
        let started = (|| -> std::io::Result<Child> {
            std::fs::create_dir_all(&dir)?;
            let out = File::create(dir.join("stdout"))?;
            let err = File::create(dir.join("stderr"))?;
            let mut cmd = Command::new(command);
            // SAFETY: only async-signal-safe calls between fork and exec: prctl(2) and
            // close_range(2). A worker must not outlive the gateway that holds its transcript
            // (the supervisor thread that forks it lives as long as the process). Nor may it
            // inherit the gateway's descriptors: a client socket a shard accepted a moment
            // before the fork (before it was marked close-on-exec) would stay open in the
            // worker after the gateway closed it, and the client would wait on it forever.
            // Everything past stdio is marked close-on-exec (std's own exec-error pipe already
            // is); a kernel without close_range (before 5.11) leaves only that race open.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                    libc::syscall(
                        libc::SYS_close_range,
                        3u32,
                        u32::MAX,
                        libc::CLOSE_RANGE_CLOEXEC,
                    );
                    Ok(())
                });
            }
            cmd.arg("worker")
                // A throwaway home: the worker keeps no state between turns.
                .env("HOME", &dir)
                .env("OPENCLAW_CLIENT_HOME", &dir)
                // Its own temporary state goes here too, removed with the directory.
                .env("TMPDIR", &dir)
                // One node process (the launcher would otherwise re-spawn node detached).
                .env("OPENCLAW_NO_RESPAWN", "1")
                .current_dir(workspace)
                .stdin(Stdio::piped())
                .stdout(out)
                .stderr(err)
                .process_group(0)
                .spawn()
        })();
        match started {
            Ok(child) => Ok(Spare {
                pgid: child.id() as i32,
                child,
                dir,
                command: command.to_owned(),
            }),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    /// Takes a prewarmed process started for this command and workspace, if one is alive.
    fn take_spare(&mut self, command: &Path, workspace: &Path) -> Option<Spare> {
        let list = self.spares.get_mut(workspace)?;
        while let Some(i) = list.iter().position(|s| s.command == command) {
            let mut s = list.swap_remove(i);
            if matches!(s.child.try_wait(), Ok(None)) {
                return Some(s);
            }
            let _ = std::fs::remove_dir_all(&s.dir);
        }
        None
    }

    /// Keeps `want` prewarmed processes for this command and workspace.
    fn refill_spares(&mut self, command: &Path, workspace: &Path, want: usize) {
        let have = self
            .spares
            .get(workspace)
            .map_or(0, |l| l.iter().filter(|s| s.command == command).count());
        for _ in have..want {
            match self.start_process(command, workspace) {
                Ok(s) => self.spares.entry(workspace.to_owned()).or_default().push(s),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot prewarm an agent worker");
                    return;
                }
            }
        }
    }

    fn spawn(&mut self, mut l: Launch) {
        let command = resolve_command(l.config.command.as_deref());
        if !l.config.workspace.is_dir() {
            let w = l.config.workspace.display();
            return fail(&l, format!("the agent's workspace {w} is not a directory"));
        }
        let workspace = l.config.workspace.clone();
        let warm = self.take_spare(&command, &workspace);
        let was_warm = warm.is_some();
        let proc = match warm.map_or_else(|| self.start_process(&command, &workspace), Ok) {
            Ok(p) => p,
            Err(e) => {
                let hint = if e.kind() == std::io::ErrorKind::NotFound {
                    " (install the pinned OpenClaw package with `make openclaw-client`, or set the agent's `command`)"
                } else {
                    ""
                };
                fail(
                    &l,
                    format!(
                        "cannot start the agent worker `{}`: {e}{hint}",
                        command.display()
                    ),
                );
                return;
            }
        };
        let Spare {
            mut child,
            pgid,
            dir,
            ..
        } = proc;
        // The envelope can exceed a pipe's buffer; the worker reads it only once node has
        // started, so a helper thread writes it and closes stdin.
        if let Some(mut stdin) = child.stdin.take() {
            let envelope = std::mem::take(&mut l.envelope);
            let _ = std::thread::Builder::new()
                .name("ringgate-worker-stdin".into())
                .spawn(move || {
                    let _ = stdin.write_all(&envelope);
                });
        }
        tracing::info!(run = %l.run_id, agent = %l.agent_id, pid = pgid, prewarmed = was_warm,
            "agent worker started");
        let prewarm = l.config.prewarm;
        self.running.push(Running {
            launch: l,
            child,
            pgid,
            tree: Vec::new(),
            dir,
            started: Instant::now(),
            ended_seen: None,
            term_sent: None,
            stopped_for: None,
            peak_rss_kb: 0,
        });
        // The next turn's process starts now, while this one runs.
        self.refill_spares(&command, &workspace, prewarm);
    }

    fn watch(&mut self) {
        let measure = self.last_memory.elapsed() >= MEMORY_EVERY;
        let mut rss = if measure {
            self.last_memory = Instant::now();
            tree_rss_kb(&self.running.iter().map(|r| r.pgid).collect::<Vec<_>>())
        } else {
            HashMap::new()
        };
        let mut i = 0;
        while i < self.running.len() {
            let r = &mut self.running[i];
            if let Some((kb, tree)) = rss.remove(&r.pgid) {
                r.peak_rss_kb = r.peak_rss_kb.max(kb);
                r.tree = tree;
                let limit = r.launch.config.max_memory_mb * 1024;
                if kb > limit && r.stopped_for.is_none() {
                    r.stopped_for = Some(format!(
                        "the agent worker used {} MB, over its limit of {} MB, and was stopped",
                        kb / 1024,
                        r.launch.config.max_memory_mb
                    ));
                    kill_tree(r, libc::SIGKILL);
                }
            }
            if r.launch.cancel.load(Ordering::Acquire) && r.ended_seen.is_none() {
                r.ended_seen = Some(Instant::now());
            }
            let stop_now = r.launch.stop.load(Ordering::Acquire);
            if r.term_sent.is_none()
                && r.ended_seen
                    .is_some_and(|t| stop_now || t.elapsed() >= EXIT_GRACE)
            {
                r.term_sent = Some(Instant::now());
                // The worker cancels its turn and stops the commands it started itself.
                signal(r.pgid, libc::SIGTERM);
            }
            if r.term_sent.is_some_and(|t| t.elapsed() > STOP_GRACE) {
                kill_tree(r, libc::SIGKILL);
            }
            match r.child.try_wait() {
                Ok(Some(status)) => {
                    let r = self.running.swap_remove(i);
                    finished(r, status.code());
                }
                Ok(None) => i += 1,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot wait for an agent worker");
                    i += 1;
                }
            }
        }
    }
}

fn signal(pgid: i32, sig: i32) {
    // SAFETY: signals the worker's own process group (created at spawn); a group that has
    // already exited makes this fail with ESRCH, which is fine.
    unsafe {
        libc::kill(-pgid, sig);
    }
}

/// Signals the worker's group and every descendant seen at the last scan.
fn kill_tree(r: &Running, sig: i32) {
    signal(r.pgid, sig);
    for pid in &r.tree {
        // SAFETY: a descendant of our worker at the last scan (a recycled pid within 500 ms
        // is the accepted risk of every process supervisor without pidfds).
        unsafe {
            libc::kill(*pid, sig);
        }
    }
}

/// Resident memory of one process (`VmRSS`), in KiB.
fn rss_kb(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// The direct children of `pid` (every thread's `children` list), or `None` where the
/// kernel does not offer those lists.
fn children_of(pid: i32) -> Option<Vec<i32>> {
    let mut out = Vec::new();
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    for t in tasks.flatten() {
        let list = std::fs::read_to_string(t.path().join("children")).ok()?;
        out.extend(
            list.split_whitespace()
                .filter_map(|c| c.parse::<i32>().ok()),
        );
    }
    Some(out)
}

/// For each root pid: the resident memory of it and its descendants, and the descendants'
/// pids — from the roots' `children` lists (a few small reads per worker), or one scan of
/// all of `/proc` where the kernel has no such lists.
fn tree_rss_kb(roots: &[i32]) -> HashMap<i32, (u64, Vec<i32>)> {
    let mut out = HashMap::new();
    let mut walked = true;
    for &root in roots {
        let mut kb = rss_kb(root);
        let mut tree = Vec::new();
        let mut frontier = vec![root];
        while let Some(p) = frontier.pop() {
            let Some(kids) = children_of(p) else {
                walked = false;
                break;
            };
            for k in kids {
                if tree.len() < 4096 && !tree.contains(&k) {
                    kb += rss_kb(k);
                    tree.push(k);
                    frontier.push(k);
                }
            }
        }
        if !walked {
            break;
        }
        out.insert(root, (kb, tree));
    }
    if walked {
        return out;
    }
    tree_rss_kb_scan(roots)
}

/// [`tree_rss_kb`] by one scan of every process in `/proc`.
fn tree_rss_kb_scan(roots: &[i32]) -> HashMap<i32, (u64, Vec<i32>)> {
    let mut out = HashMap::new();
    if roots.is_empty() {
        return out;
    }
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    // pid → (ppid, rss)
    let mut procs: HashMap<i32, (i32, u64)> = HashMap::new();
    for e in dir.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        let field = |k: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .and_then(|v| v.split_whitespace().next()?.parse::<i64>().ok())
        };
        let ppid = field("PPid:").unwrap_or(0) as i32;
        let rss = field("VmRSS:").unwrap_or(0).max(0) as u64;
        procs.insert(pid, (ppid, rss));
    }
    for &root in roots {
        let mut kb = procs.get(&root).map_or(0, |p| p.1);
        let mut tree = Vec::new();
        let mut frontier = vec![root];
        while let Some(parent) = frontier.pop() {
            for (&pid, &(ppid, rss)) in &procs {
                if ppid == parent && !tree.contains(&pid) && tree.len() < 4096 {
                    tree.push(pid);
                    frontier.push(pid);
                    kb += rss;
                }
            }
        }
        out.insert(root, (kb, tree));
    }
    out
}

/// The end of a file (at most `max` bytes), lossily as text.
fn tail(path: &Path, max: u64) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(max)));
    let mut buf = Vec::new();
    let _ = f.take(max).read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// What a worker's exit means for its run.
pub fn outcome(stdout: &str, stderr: &str, code: Option<i32>) -> Output {
    let result: Option<Value> = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l.trim()).ok());
    let failed = |message: String| {
        Output::Failed(Failure {
            kind: None,
            message,
            detail: None,
        })
    };
    match result.as_ref().and_then(|r| r["status"].as_str()) {
        Some("completed") => Output::Done {
            usage: Usage::default(),
            stop_reason: "stop".into(),
        },
        Some(status) => {
            let r = result.as_ref().expect("has a status");
            let why = r["errorText"]
                .as_str()
                .or(r["reason"].as_str())
                .unwrap_or("no reason given");
            failed(format!("the agent worker's turn ended {status}: {why}"))
        }
        None => {
            // The CLI prints `Reason: …` on stderr when it fails.
            let reason = stderr
                .lines()
                .rev()
                .find_map(|l| l.split_once("Reason: ").map(|(_, r)| r.trim().to_owned()));
            let code = code.map_or("a signal".to_owned(), |c| format!("status {c}"));
            failed(match reason {
                Some(r) => format!("the agent worker exited with {code}: {r}"),
                None => format!("the agent worker exited with {code}"),
            })
        }
    }
}

fn finished(r: Running, code: Option<i32>) {
    let stdout = tail(&r.dir.join("stdout"), 64 * 1024);
    let stderr = tail(&r.dir.join("stderr"), 8 * 1024);
    let _ = std::fs::remove_dir_all(&r.dir);
    let ms = r.started.elapsed().as_millis() as u64;
    tracing::info!(run = %r.launch.run_id, agent = %r.launch.agent_id, code = ?code, ms,
        peak_rss_mb = r.peak_rss_kb / 1024, "agent worker exited");
    if let Some(why) = r.stopped_for {
        return fail(&r.launch, why);
    }
    if r.launch.cancel.load(Ordering::Acquire) {
        // The run already ended (aborted, finished, or failed by its owner).
        return;
    }
    r.launch
        .sink
        .send(&r.launch.run_id, outcome(&stdout, &stderr, code));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_become_outcomes_with_reasons() {
        assert!(matches!(
            outcome(
                "{\"status\":\"completed\",\"transcriptLeafId\":\"e8\",\"transcriptNextSeq\":9}\n",
                "",
                Some(0)
            ),
            Output::Done { .. }
        ));
        let Output::Failed(f) = outcome(
            "{\"status\":\"not-started\",\"reason\":\"admission-deadline\",\"errorText\":\"worker admission deadline exceeded\"}",
            "",
            Some(0),
        ) else {
            panic!()
        };
        assert!(
            f.message
                .contains("not-started: worker admission deadline exceeded"),
            "{}",
            f.message
        );
        let Output::Failed(f) = outcome(
            "",
            "[openclaw] The CLI command failed.\n[openclaw] Reason: worker admission rejected: invalid-credential\n",
            Some(1),
        ) else {
            panic!()
        };
        assert_eq!(
            f.message,
            "the agent worker exited with status 1: worker admission rejected: invalid-credential"
        );
        let Output::Failed(f) = outcome("", "", None) else {
            panic!()
        };
        assert_eq!(f.message, "the agent worker exited with a signal");
    }

    /// Launches one turn's worker with this launcher on a fresh pool; its outcome arrives on
    /// the returned channel.
    fn launch(command: PathBuf, workspace: PathBuf, max_memory_mb: u64) -> Receiver<Output> {
        let (tx, rx) = channel::unbounded();
        let sink = Sink::new(move |_, out| {
            let _ = tx.send(out);
        });
        WorkerPool::start().launch(Launch {
            envelope: b"{}".to_vec(),
            agent_id: "a".into(),
            config: WorkerConfig {
                provider: crate::agent::config::OpenAiConfig {
                    base_url: "http://127.0.0.1:9/v1".into(),
                    api_key: None,
                    model: "m".into(),
                    timeout_ms: 1000,
                    system_prompt: None,
                },
                workspace,
                tools: vec![],
                command: Some(command),
                max_concurrent: 1,
                max_memory_mb,
                start_timeout_ms: 1000,
                prewarm: 0,
            },
            run_id: Arc::from("r1"),
            cancel: Arc::new(AtomicBool::new(false)),
            stop: Arc::new(AtomicBool::new(false)),
            sink,
        });
        rx
    }

    #[test]
    fn a_missing_launcher_fails_the_turn_with_a_hint() {
        let rx = launch("/nonexistent/openclaw".into(), std::env::temp_dir(), 512);
        let Ok(Output::Failed(f)) = rx.recv_timeout(Duration::from_secs(10)) else {
            panic!("no failure reported")
        };
        assert!(f.message.contains("make openclaw-client"), "{}", f.message);
    }

    #[test]
    fn a_worker_over_its_memory_limit_is_killed_and_its_turn_fails() {
        // `sh` stands in for the launcher: it starts a child that holds ~300 MB resident.
        let dir = std::env::temp_dir().join(format!("rg-pool-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("openclaw");
        std::fs::write(
            &script,
            "#!/bin/sh\ncat >/dev/null\nexec python3 -c 'import time; b=b\"x\"*(300*1024*1024); time.sleep(30)'\n",
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let rx = launch(script, dir.clone(), 256);
        let Ok(Output::Failed(f)) = rx.recv_timeout(Duration::from_secs(20)) else {
            panic!("no failure reported")
        };
        assert!(
            f.message.contains("over its limit of 256 MB"),
            "{}",
            f.message
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
