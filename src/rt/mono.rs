//! The seam on monoio: io_uring (`IoUringDriver`) or epoll (`LegacyDriver`). monoio's
//! readiness waits (`readable`/`writable` with `relaxed = false`) map one to one.

use std::{
    future::Future,
    io,
    net::{SocketAddr, TcpListener as StdListener},
    os::fd::{AsRawFd, RawFd},
    time::Duration,
};

use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};

use super::Kind;

pub type Sleep = monoio::time::Sleep;

/// Submission queue entries per io_uring shard.
const URING_ENTRIES: u32 = 4096;

pub fn run<F, Fut>(kind: Kind, cpu: Option<usize>, main: F) -> io::Result<()>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    if let Some(cpu) = cpu {
        if let Err(e) = pin(cpu) {
            tracing::warn!(cpu, error = %e, "could not pin shard thread");
        }
    }
    match kind {
        Kind::MonoioUring => {
            // Cooperative task running (Linux 5.19+): completions run at the shard's next
            // syscall instead of interrupting it with an IPI; the flag is dropped where the
            // kernel refuses it.
            let mut coop = io_uring::IoUring::builder();
            coop.setup_coop_taskrun();
            let built = RuntimeBuilder::<IoUringDriver>::new()
                .with_entries(URING_ENTRIES)
                .uring_builder(coop)
                .enable_timer()
                .build();
            let mut rt = match built {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::info!(error = %e, "io_uring refused COOP_TASKRUN; using a plain ring");
                    RuntimeBuilder::<IoUringDriver>::new()
                        .with_entries(URING_ENTRIES)
                        .enable_timer()
                        .build()?
                }
            };
            rt.block_on(main());
        }
        _ => {
            let mut rt = RuntimeBuilder::<LegacyDriver>::new()
                .enable_timer()
                .build()?;
            rt.block_on(main());
        }
    }
    Ok(())
}

pub fn detect_uring() -> bool {
    monoio::utils::detect_uring()
}

pub fn pin(cpu: usize) -> io::Result<()> {
    monoio::utils::bind_to_cpu_set([cpu]).map_err(|e| io::Error::other(format!("{e:?}")))
}

pub fn spawn<F: Future<Output = ()> + 'static>(fut: F) {
    // monoio detaches a task whose handle is dropped.
    drop(monoio::spawn(fut));
}

pub fn sleep(d: Duration) -> Sleep {
    monoio::time::sleep(d)
}

pub struct Listener(monoio::net::TcpListener);

impl Listener {
    pub fn new(l: StdListener) -> io::Result<Listener> {
        monoio::net::TcpListener::from_std(l).map(Listener)
    }

    pub async fn accept(&self) -> io::Result<(super::Stream, SocketAddr)> {
        let (s, peer) = self.0.accept().await?;
        Ok((super::Stream::Monoio(Stream(s)), peer))
    }
}

pub struct Stream(monoio::net::TcpStream);

impl Stream {
    pub fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    pub fn set_nodelay(&self) -> io::Result<()> {
        self.0.set_nodelay(true)
    }

    pub async fn readable(&self) -> io::Result<()> {
        self.0.readable(false).await
    }

    pub async fn writable(&self) -> io::Result<()> {
        self.0.writable(false).await
    }

    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match super::sys_recv(self.fd(), buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readable().await?,
                r => return r,
            }
        }
    }

    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        loop {
            match super::sys_send(self.fd(), buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable().await?,
                r => return r,
            }
        }
    }
}
