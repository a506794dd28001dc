//! Shards: one OS thread per core, pinned, each with its own runtime (monoio on io_uring or
//! epoll, or glommio; see [`crate::rt`]), `SO_REUSEPORT` listener, client table and timers.
//! [`start`] binds the listeners and spawns the threads; everything a shard does afterwards
//! happens on its own thread.

mod api;
pub mod client;
pub mod conn;
pub mod ctx;
pub mod dispatch;
pub mod drive;
pub mod hello;
mod hooks;
mod inbound;
pub mod subs;
mod tap;
pub mod timer;
pub mod tls_io;
pub mod web;
pub mod worker;

use std::{
    cell::RefCell,
    io,
    net::{SocketAddr, TcpListener as StdListener},
    os::fd::FromRawFd,
    rc::Rc,
    sync::{atomic::Ordering, Arc},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use serde_json::json;

use self::{client::Phase, ctx::ShardCtx};
use crate::{
    bus::{Bus, BusMsg, Sender},
    config::{Config, Driver},
    pairing::PairedDevice,
    proto::{errors::close, frame::EventTemplate},
    state::{now_ms, Globals},
    store::Store,
};

/// A running gateway: its address and shard threads.
pub struct Gateway {
    pub addr: SocketAddr,
    /// The Control UI this gateway serves (if it found one).
    pub control_ui: Arc<crate::http::control_ui::ControlUi>,
    pub bus: Arc<Bus>,
    pub globals: Arc<Globals>,
    /// The certificate's SHA-256 fingerprint when the port speaks TLS (as served at start).
    pub tls_fingerprint: Option<Arc<str>>,
    threads: Vec<JoinHandle<()>>,
    store: Store,
}

impl Gateway {
    /// Re-reads the config file and applies what changed on every shard (SIGHUP). The storage
    /// thread logs the outcome; an invalid file keeps the running config.
    pub fn reload_config(&self) {
        self.store.submit(crate::store::Op::Config(
            crate::store::config::ConfigOp::Reload,
        ));
    }

    /// Asks every shard to shut down (shutdown event, close 1012) and waits for them.
    pub fn shutdown(self) {
        self.globals.stopping.store(true, Ordering::Release);
        for i in 0..self.bus.shards() {
            // A full inbox drains quickly; never give up on delivering the shutdown.
            while self.bus.inbox(i).push(BusMsg::Shutdown).is_err() {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Creates a listening socket with `SO_REUSEPORT` so every shard can bind the same port.
fn reuseport_listener(addr: SocketAddr) -> io::Result<StdListener> {
    let domain = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain socket syscalls on a descriptor we own; every error path closes it.
    unsafe {
        let fd = libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let listener = StdListener::from_raw_fd(fd);
        let one: libc::c_int = 1;
        for opt in [libc::SO_REUSEADDR, libc::SO_REUSEPORT] {
            let r = libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&one as *const libc::c_int).cast(),
                4,
            );
            if r < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        let (storage, len) = sockaddr(addr);
        if libc::bind(fd, (&storage as *const libc::sockaddr_storage).cast(), len) < 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::listen(fd, 4096) < 0 {
            return Err(io::Error::last_os_error());
        }
        listener.set_nonblocking(true)?;
        Ok(listener)
    }
}

fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; zeroed is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            (
                storage,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: sockaddr_in6 fits in sockaddr_storage.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            (
                storage,
                std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        }
    }
}

/// The driver a shard will actually run. `auto` is monoio on io_uring where the kernel
/// allows it, else monoio on epoll; never glommio, which must be asked for (it has no
/// fallback, and measures behind monoio on io_uring: BENCHMARKS.md).
pub fn resolve_driver(d: Driver) -> Driver {
    match d {
        Driver::Auto if crate::rt::io_uring_available() => Driver::IoUring,
        Driver::Auto => Driver::Epoll,
        other => other,
    }
}

/// The runtime behind a resolved driver.
fn runtime(d: Driver) -> crate::rt::Kind {
    match d {
        Driver::IoUring => crate::rt::Kind::MonoioUring,
        Driver::Glommio => crate::rt::Kind::Glommio,
        Driver::Epoll | Driver::Auto => crate::rt::Kind::MonoioEpoll,
    }
}

/// Checks that the resolved driver can start on this host, before any shard tries: an
/// explicit `glommio` that cannot (no io_uring, an old kernel, a low locked-memory limit) is
/// a start-up error with the reason, never a panic on a shard thread.
pub fn check_driver(d: Driver) -> Result<(), String> {
    match resolve_driver(d) {
        Driver::Glommio => crate::rt::glommio_preflight(),
        _ => Ok(()),
    }
}

/// Binds one listener per shard (shard 0 first; the others join its port) and starts the
/// shard threads.
pub fn start(mut config: Config, link: Option<crate::cluster::link::Link>) -> io::Result<Gateway> {
    config.applied_hash = crate::config_doc::read(&config.file_path()).hash;
    // Compile the request schemas now: a fixed cost of the process, paid before the first
    // client instead of inside its `connect`.
    crate::proto::schema::Schemas::get();
    let n = config.shard_count();
    let driver = resolve_driver(config.driver);
    check_driver(driver).map_err(io::Error::other)?;
    let kind = runtime(driver);
    let first = reuseport_listener(SocketAddr::new(config.bind, config.port))?;
    let addr = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..n {
        listeners.push(reuseport_listener(addr)?);
    }
    let bus = Bus::new(n);
    let hub = crate::channels::hub::ChannelHub::build(&config)?;
    let publish: Arc<dyn crate::store::Publish> = match &link {
        Some(l) => Arc::new(crate::cluster::ClusterPublish {
            bus: bus.clone(),
            cluster: l.handle.clone(),
        }),
        None => bus.clone(),
    };
    let (store, boot) = Store::open(Arc::new(config.clone()), hub.clone(), publish)
        .map_err(|e| io::Error::other(e.to_string()))?;
    let devices = Arc::new(boot.devices);
    let recent_runs = Arc::new(boot.recent_runs);
    let control_ui = crate::http::control_ui::ControlUi::locate(&config.control_ui);
    let files = crate::http::files::Files::start()?;
    let config = Arc::new(config);
    let globals = Arc::new(Globals::with_shards(n));
    globals.port.store(addr.port(), Ordering::Relaxed);
    let tls = start_tls(&config, &bus, &globals)?;
    let workers = crate::agent::openai::Workers::start(config.agent_workers);
    let cluster = link.map(|l| {
        let h = l.handle.clone();
        l.attach(crate::cluster::link::Attach {
            bus: bus.clone(),
            devices: devices.clone(),
            store: store.clone(),
            globals: globals.clone(),
            url: format!("ws://{addr}"),
        });
        h
    });
    let cores = std::thread::available_parallelism()
        .map(|c| c.get())
        .unwrap_or(1);
    let mut threads = Vec::with_capacity(n);
    for (id, listener) in listeners.into_iter().enumerate() {
        let (config, globals, bus) = (config.clone(), globals.clone(), bus.clone());
        let (store, devices, workers) = (store.clone(), devices.clone(), workers.clone());
        let recent_runs = recent_runs.clone();
        let (control_ui, files) = (control_ui.clone(), files.clone());
        let hub = hub.clone();
        let cluster = cluster.clone();
        let tls = tls.clone();
        let t = std::thread::Builder::new()
            .name(format!("ringgate-shard-{id}"))
            .spawn(move || {
                let boot = Boot {
                    store,
                    devices,
                    recent_runs,
                    workers,
                    hub,
                    control_ui,
                    files,
                    cluster,
                    tls,
                };
                let name = format!("ringgate-shard-{id}");
                let r = crate::rt::run_pinned(kind, id % cores, &name, move || {
                    shard_main(id, config, globals, bus, listener, kind.name(), boot)
                });
                if let Err(e) = r {
                    // A gateway with a shard missing would accept connections it never serves.
                    eprintln!("ringgate: fatal: shard {id} runtime failed to start: {e}");
                    tracing::error!(shard = id, error = %e, "shard runtime failed to start");
                    crate::panic_policy::fatal_exit();
                }
            })?;
        threads.push(t);
    }
    start_watchdog(globals.clone(), store.clone())?;
    Ok(Gateway {
        addr,
        tls_fingerprint: tls.as_ref().map(|a| a.fingerprint.clone()),
        control_ui,
        bus,
        globals,
        threads,
        store,
    })
}

/// With `gateway.tls.enabled`: the certificate (generated if asked), its first acceptor, and
/// the renewal thread that hands every shard the next one. A certificate that cannot be
/// served stops the start: the gateway never falls back to plain text.
fn start_tls(
    config: &Config,
    bus: &Arc<Bus>,
    globals: &Arc<Globals>,
) -> io::Result<Option<Arc<crate::tls::Acceptor>>> {
    let cfg = &config.tls;
    if !cfg.enabled {
        return Ok(None);
    }
    let (material, generated) =
        crate::tls::start(cfg, &config.state_dir).map_err(io::Error::other)?;
    if let Some(path) = generated {
        tracing::info!(path = %path.display(), "gateway tls: generated a self-signed certificate");
    }
    let ticketer = rustls::crypto::ring::Ticketer::new().map_err(io::Error::other)?;
    let acceptor = Arc::new(
        material
            .acceptor(ticketer.clone())
            .map_err(io::Error::other)?,
    );
    tracing::info!(
        fingerprint = %acceptor.fingerprint,
        cert = %cfg.cert_file(&config.state_dir).display(),
        "gateway tls: serving HTTPS and WSS (TLS 1.3); pin clients with this SHA-256 fingerprint"
    );
    let bus = bus.clone();
    let globals = globals.clone();
    crate::tls::watch::start(
        cfg.clone(),
        config.state_dir.clone(),
        material,
        ticketer,
        move || globals.stopping.load(Ordering::Acquire),
        move |a| {
            for shard in 0..bus.shards() {
                bus.push_waiting(shard, BusMsg::Tls(a.clone()));
            }
        },
    )?;
    Ok(Some(acceptor))
}

/// A shard whose housekeeping pass has not run for this long has stalled (a stuck loop, a
/// blocked thread): the process stops rather than serve on half-dead (`crate::panic_policy`).
pub const STALL_MS: u64 = 30_000;

/// Watches every shard's heartbeat from its own thread, and pings the storage thread (whose
/// answers `/readyz` reads).
fn start_watchdog(globals: Arc<Globals>, store: Store) -> io::Result<()> {
    std::thread::Builder::new()
        .name("ringgate-watchdog".into())
        .spawn(move || {
            let mut proc_sampler = crate::state::vitals::ProcSampler::default();
            let mut trim = TrimAfterCloses::default();
            loop {
                std::thread::sleep(Duration::from_secs(1));
                if globals.stopping.load(Ordering::Acquire) {
                    return;
                }
                trim.check(globals.connections.load(Ordering::Relaxed) as u64);
                store.ping();
                proc_sampler.sample(&globals.process);
                let shards_busy: u64 = globals
                    .loops
                    .iter()
                    .map(|l| l.busy_ppm.load(Ordering::Relaxed))
                    .sum();
                globals
                    .process
                    .shards_cpu_ppm
                    .store(shards_busy, Ordering::Relaxed);
                let stalled = globals.stalled_shards(now_ms(), STALL_MS);
                if !stalled.is_empty() {
                    eprintln!(
                    "ringgate: fatal: shard(s) {stalled:?} made no progress for {STALL_MS} ms; \
                     exiting with code {} so a supervisor restarts the gateway",
                    crate::panic_policy::EXIT_CODE
                );
                    tracing::error!(?stalled, "fatal: shard stalled; exiting");
                    crate::panic_policy::fatal_exit();
                }
            }
        })
        .map(|_| ())
}

/// Gives memory back to the system after many connections have closed.
///
/// A connection's allocations are freed when it closes, but the allocator keeps the pages for
/// reuse, so after a peak of connections the process would stay at its peak size for good.
/// Once the count has fallen by [`TrimAfterCloses::STEP`] since the last trim (at most every
/// few seconds), `malloc_trim` returns the free pages of every arena. It runs on the watchdog
/// thread, never on a shard; the shards only wait on an arena lock while it walks theirs.
#[derive(Default)]
struct TrimAfterCloses {
    /// Highest connection count since the last trim.
    high: u64,
    last: Option<Instant>,
}

impl TrimAfterCloses {
    const STEP: u64 = 1000;
    const EVERY: Duration = Duration::from_secs(5);

    fn check(&mut self, connections: u64) {
        self.high = self.high.max(connections);
        if self.high - connections < Self::STEP
            || self.last.is_some_and(|t| t.elapsed() < Self::EVERY)
        {
            return;
        }
        self.high = connections;
        self.last = Some(Instant::now());
        #[cfg(target_env = "gnu")]
        // SAFETY: malloc_trim has no preconditions; it only releases free memory.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

/// What a shard starts from besides its config: the shared services and the state the
/// storage thread read at start-up.
struct Boot {
    store: Store,
    devices: Arc<Vec<Arc<PairedDevice>>>,
    recent_runs: Arc<Vec<crate::store::sessions::RecentRun>>,
    workers: crate::agent::openai::Workers,
    hub: Arc<crate::channels::hub::ChannelHub>,
    control_ui: Arc<crate::http::control_ui::ControlUi>,
    files: crate::http::files::Files,
    cluster: Option<crate::cluster::Handle>,
    tls: Option<Arc<crate::tls::Acceptor>>,
}

async fn shard_main(
    id: usize,
    config: Arc<Config>,
    globals: Arc<Globals>,
    bus: Arc<Bus>,
    listener: StdListener,
    driver: &'static str,
    boot: Boot,
) {
    let sender = Sender::new(bus.clone(), id);
    crate::metrics::shard::set_enabled(config.diagnostics_enabled);
    let ctx = Rc::new(RefCell::new(ShardCtx::new(
        id,
        config.clone(),
        globals,
        sender,
        driver,
        boot.store,
        &boot.devices,
        boot.workers,
        boot.control_ui,
        boot.files,
    )));
    ctx.borrow_mut().me = Rc::downgrade(&ctx);
    ctx.borrow_mut().channels = boot.hub;
    ctx.borrow_mut().cluster = boot.cluster;
    ctx.borrow_mut().tls = boot.tls;
    {
        // Runs that ended before this start: `agent.wait` on any shard answers them, and
        // each session's owner remembers their idempotency keys.
        let c = &mut *ctx.borrow_mut();
        let placement = crate::placement::Placement::new(bus.shards());
        for r in boot.recent_runs.iter() {
            crate::chat::runs::restore(&mut c.run_index, r);
            if placement.session(&r.session_key) == id {
                crate::chat::owner::restore(&mut c.chat, r);
            }
        }
    }
    drive::cron_start(&mut ctx.borrow_mut());
    let listener = match crate::rt::Listener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("ringgate: fatal: shard {id} cannot register its listener: {e}");
            tracing::error!(shard = id, error = %e, "cannot register listener");
            crate::panic_policy::fatal_exit();
        }
    };
    tracing::info!(shard = id, driver, "shard started");

    // Accept loop.
    let accept_ctx = ctx.clone();
    crate::rt::spawn(async move {
        // Failures since the last log line: the condition repeats on every retry until a
        // socket closes, so it is logged at most once a second with a count.
        let (mut unlogged, mut last_line) = (0u64, None::<Instant>);
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    crate::rt::spawn(conn::serve(accept_ctx.clone(), stream, peer));
                }
                Err(e) => {
                    // Out of descriptors or memory: back off instead of spinning.
                    let g = accept_ctx.borrow().globals.clone();
                    g.accept_errors.fetch_add(1, Ordering::Relaxed);
                    unlogged += 1;
                    if last_line.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                        tracing::warn!(
                            shard = id,
                            error = %e,
                            failures = unlogged,
                            "accept failed; retrying every 20 ms"
                        );
                        unlogged = 0;
                        last_line = Some(Instant::now());
                    }
                    timer::sleep_ms(20).await;
                }
            }
        }
    });

    // Bus drain.
    let bus_ctx = ctx.clone();
    crate::rt::spawn(async move {
        let mut batch = Vec::with_capacity(64);
        loop {
            bus.inbox(id).recv_all(&mut batch).await;
            let mut c = bus_ctx.borrow_mut();
            for m in batch.drain(..) {
                c.on_bus(m);
            }
        }
    });

    // Housekeeping: handshake timeouts, pings, slow-consumer grace, bus overflow, budget.
    let hk_ctx = ctx.clone();
    crate::rt::spawn(async move {
        loop {
            timer::sleep_ms(250).await;
            let mut c = hk_ctx.borrow_mut();
            let now = now_ms();
            let limits = c.config.limits.clone();
            for client in c.clients.values() {
                let Ok(mut cl) = client.try_borrow_mut() else {
                    continue;
                };
                match cl.phase {
                    Phase::AwaitingConnect { opened_ms, .. }
                        if now.saturating_sub(opened_ms) >= limits.handshake_timeout_ms =>
                    {
                        cl.close(close::NORMAL, "");
                    }
                    Phase::Open | Phase::Worker(_)
                        if now.saturating_sub(cl.last_ping_ms) >= limits.ping_interval_ms =>
                    {
                        if cl.awaiting_pong {
                            tracing::debug!(conn = %cl.conn_id, "no pong: terminating");
                            cl.terminate();
                        } else {
                            cl.ping(now);
                        }
                    }
                    _ => {}
                }
            }
            c.housekeeping(now);
            c.sender.flush_overflow();
            c.globals.beat(id, now);
        }
    });

    // Loop health probe (see `state::vitals`).
    let probe_ctx = ctx.clone();
    crate::rt::spawn(async move {
        use crate::state::vitals::{thread_cpu_ns, DelayWindow, LoopSample, PROBE_MS, WINDOW_MS};
        let mut window = DelayWindow::default();
        let mut started = std::time::Instant::now();
        let mut cpu_at_start = thread_cpu_ns();
        loop {
            let asked = std::time::Instant::now();
            timer::sleep_ms(PROBE_MS).await;
            let slept = asked.elapsed().as_micros() as u64;
            window.record(slept.saturating_sub(PROBE_MS * 1_000));
            let wall = started.elapsed();
            if wall.as_millis() as u64 >= WINDOW_MS {
                let cpu = thread_cpu_ns();
                let (p99, max) = window.take();
                crate::metrics::record(|m| {
                    m.loop_delay_max.observe(max as f64 / 1e6);
                    m.loop_observed_seconds += wall.as_secs_f64();
                });
                let c = probe_ctx.borrow();
                let sample = LoopSample {
                    delay_p99_us: p99,
                    delay_max_us: max,
                    busy_ppm: (cpu.saturating_sub(cpu_at_start) as u128 * 1_000_000
                        / wall.as_nanos().max(1)) as u64,
                    interval_ms: wall.as_millis() as u64,
                    connections: c.clients.len() as u64,
                };
                if let Some(g) = c.globals.loops.get(id) {
                    g.publish(sample, now_ms());
                }
                started = std::time::Instant::now();
                cpu_at_start = cpu;
            }
        }
    });

    // Tick.
    let tick_ctx = ctx.clone();
    crate::rt::spawn(async move {
        loop {
            // Read each time: a config reload may change the cadence.
            let every = tick_ctx.borrow().config.limits.tick_interval_ms;
            timer::sleep_ms(every).await;
            let ev = Arc::new(EventTemplate::new("tick", &json!({"ts": now_ms()}), None));
            tick_ctx.borrow_mut().fanout(&ev);
        }
    });

    // Health refresh, owned by shard 0.
    if id == 0 {
        let h_ctx = ctx.clone();
        crate::rt::spawn(async move {
            loop {
                let every = h_ctx.borrow().config.limits.health_interval_ms;
                timer::sleep_ms(every).await;
                let mut c = h_ctx.borrow_mut();
                let hv = c.globals.health_version.fetch_add(1, Ordering::AcqRel) + 1;
                let pv = c.globals.presence_version.load(Ordering::Acquire);
                let ev = EventTemplate::new("health", &c.health_snapshot(), Some((pv, hv)));
                c.broadcast(ev);
            }
        });
    }

    // Run until shutdown, then give clients up to 3 s to receive their close frames.
    let mut since: Option<Instant> = None;
    loop {
        timer::sleep_ms(50).await;
        let c = ctx.borrow();
        if !c.shutting_down {
            continue;
        }
        let started = *since.get_or_insert_with(Instant::now);
        if c.clients.is_empty() || started.elapsed() > Duration::from_secs(3) {
            tracing::info!(shard = id, remaining = c.clients.len(), "shard stopped");
            return;
        }
    }
}
