//! The seam on glommio 0.9, through its public API only.
//!
//! - **Readable**: glommio's `AsyncRead::poll_read` tries a non-blocking `recv` and, when
//!   nothing is there, arms the reactor's readable poll (no buffer is held while waiting).
//!   So the wait for input is a read through that path ([`Stream::readable`]); the bytes it
//!   returns are handed to the connection's inbox, which parses them before its own `recv`s.
//!   (`peek` would wait without consuming, but each pending peek holds a 4 KiB-aligned
//!   buffer from glommio's allocator: kilobytes per idle connection.)
//! - **Writable**: glommio keeps `poll_write_ready` internal. Its `AsyncWrite::poll_write`
//!   tries a non-blocking `send` and, when the socket is full, arms the reactor's writable
//!   poll and parks the task; so the wait for room is a send of the outbox's head through that
//!   path ([`Stream::write_from`]). Nothing is queued in glommio: the bytes it takes are
//!   on the wire and recorded in the outbox at once.
//! - **Executors**: one `LocalExecutor` per shard thread, pinned with `Placement::Fixed`, with
//!   64 KiB of registered IO memory (that pool only serves file DMA and small socket
//!   buffers; glommio's default of 10 MiB costs ~10 MB of RSS per shard). Spawned tasks are
//!   detached (dropping a glommio `Task` cancels it) and queued, not run inline.

use std::{
    cell::RefCell,
    future::{poll_fn, Future},
    io,
    net::{SocketAddr, TcpListener as StdListener},
    os::fd::{AsRawFd, IntoRawFd, RawFd},
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use futures_io::{AsyncRead, AsyncWrite};
use glommio::{LocalExecutorBuilder, Placement};

use super::{Inbox, Outbox};

pub type Sleep = SleepTimer;

/// glommio's timer, with the `()` output the seam's [`super::Sleep`] has.
pub struct SleepTimer(glommio::timer::Timer);

impl Future for SleepTimer {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

/// Registered IO memory per executor (see the module docs).
const IO_MEMORY: usize = 64 << 10;

/// The smallest `RLIMIT_MEMLOCK` glommio starts with (it refuses below this).
const MIN_MEMLOCK: u64 = 512 << 10;

/// The oldest kernel glommio 0.9 supports (the io_uring operations it registers).
const MIN_KERNEL: (u32, u32) = (5, 8);

pub fn preflight() -> Result<(), String> {
    let (major, minor) = kernel_version().ok_or("cannot read the kernel version (uname)")?;
    if (major, minor) < MIN_KERNEL {
        return Err(format!(
            "glommio needs Linux {}.{} or newer; this kernel is {major}.{minor}",
            MIN_KERNEL.0, MIN_KERNEL.1
        ));
    }
    if !super::mono::detect_uring() {
        return Err(
            "glommio needs io_uring, which this kernel or sandbox refuses (io_uring_setup failed; \
             check kernel.io_uring_disabled and seccomp)"
                .into(),
        );
    }
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } == 0
        && lim.rlim_cur != libc::RLIM_INFINITY
        && lim.rlim_cur < MIN_MEMLOCK
    {
        return Err(format!(
            "glommio needs a locked-memory limit (ulimit -l) of at least {} KiB; this process has {} KiB",
            MIN_MEMLOCK >> 10,
            lim.rlim_cur >> 10
        ));
    }
    Ok(())
}

fn kernel_version() -> Option<(u32, u32)> {
    // SAFETY: utsname is plain data; uname fills it.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: u is a valid utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        return None;
    }
    // SAFETY: uname NUL-terminates release.
    let release = unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) }.to_string_lossy();
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

pub fn run<F, Fut>(cpu: Option<usize>, name: &str, main: F) -> io::Result<()>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    // glommio panics instead of failing when io_uring is unusable; never get that far.
    preflight().map_err(io::Error::other)?;
    let placement = match cpu {
        Some(cpu) => Placement::Fixed(cpu),
        None => Placement::Unbound,
    };
    let ex = LocalExecutorBuilder::new(placement)
        .name(name)
        .io_memory(IO_MEMORY)
        .make()
        .map_err(|e| io::Error::other(e.to_string()))?;
    ex.run(main());
    Ok(())
}

/// Queues `fut` to run after the current task yields. glommio's `spawn_local` polls a new
/// task inline, inside the caller; shard code spawns while it holds its context borrowed
/// (as with monoio, a spawned task must start later), so tasks are queued into the current
/// task queue instead, which glommio always schedules.
pub fn spawn<F: Future<Output = ()> + 'static>(fut: F) {
    let queue = glommio::executor().current_task_queue();
    match glommio::spawn_local_into(fut, queue) {
        Ok(task) => {
            task.detach();
        }
        // The current queue always exists while a task of it runs.
        Err(e) => unreachable!("glommio: the current task queue is gone: {e}"),
    }
}

pub fn sleep(d: Duration) -> Sleep {
    SleepTimer(glommio::timer::Timer::new(d))
}

pub struct Listener(glommio::net::TcpListener);

impl Listener {
    pub fn new(l: StdListener) -> Listener {
        use std::os::fd::FromRawFd;
        // SAFETY: the descriptor is a bound, listening TCP socket whose ownership moves here.
        Listener(unsafe { glommio::net::TcpListener::from_raw_fd(l.into_raw_fd()) })
    }

    pub async fn accept(&self) -> io::Result<(super::Stream, SocketAddr)> {
        let s = self.0.accept().await.map_err(io::Error::from)?;
        let peer = s.peer_addr().map_err(io::Error::from)?;
        Ok((super::Stream::Glommio(Stream(RefCell::new(s))), peer))
    }
}

/// A glommio stream. The `RefCell` is for glommio's `poll_read`/`poll_write` (which take
/// `&mut`): every borrow lasts one poll, never across a suspension point, so the read and the
/// write waits of one connection can both be pending.
pub struct Stream(RefCell<glommio::net::TcpStream>);

/// Bytes read per poll when the read path itself fills a buffer (see [`Stream::readable`]):
/// zeroed on every poll, so kept small; the connection's own `recv` reads the rest.
const READ_CHUNK: usize = 4 * 1024;

impl Stream {
    pub fn fd(&self) -> RawFd {
        self.0.borrow().as_raw_fd()
    }

    pub fn set_nodelay(&self) -> io::Result<()> {
        self.0.borrow().set_nodelay(true).map_err(io::Error::from)
    }

    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_read(cx, buf)
    }

    fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_write(cx, buf)
    }

    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_read(cx, buf)).await
    }

    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_write(cx, buf)).await
    }

    /// Waits for input through glommio's read path: a non-blocking `recv`, and, when nothing
    /// is there, the reactor's readable poll (no buffer is held while waiting). What the
    /// `recv` returns goes to `inbox`; an idle connection keeps nothing.
    pub async fn readable<I: Inbox>(&self, inbox: &RefCell<I>) -> io::Result<()> {
        poll_fn(|cx| {
            // On the stack of one poll: a buffer in the future would stay with every idle
            // connection.
            let mut chunk = [0u8; READ_CHUNK];
            match self.poll_read(cx, &mut chunk) {
                Poll::Ready(Ok(n)) => {
                    // End of stream (0) is seen again by the connection's own `recv`.
                    if n > 0 {
                        inbox.borrow_mut().received(&chunk[..n]);
                    }
                    Poll::Ready(Ok(()))
                }
                other => other.map(|r| r.map(|_| ())),
            }
        })
        .await
    }

    /// Sends the head of `outbox` through glommio's write path, waiting for room if the
    /// socket is full; records what the socket took.
    pub async fn write_from<O: Outbox>(&self, outbox: &RefCell<O>) -> io::Result<()> {
        poll_fn(|cx| {
            let mut o = outbox.borrow_mut();
            let head = o.unsent_bytes();
            if head.is_empty() {
                return Poll::Ready(Ok(()));
            }
            match self.poll_write(cx, head) {
                Poll::Ready(Ok(n)) => {
                    o.sent(n);
                    Poll::Ready(Ok(()))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }
}
