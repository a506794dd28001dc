//! The runtime seam: everything a shard needs from an async runtime, written once, with one
//! implementation per runtime ([`mono`]: monoio over io_uring or epoll; [`glom`]: glommio).
//! Nothing outside this module names a runtime crate.
//!
//! What the shard asks of a runtime is small, because the connection code does its own IO
//! with non-blocking syscalls on the raw descriptor and only waits through the runtime:
//! run a pinned shard, spawn detached tasks, sleep, accept from a prepared `SO_REUSEPORT`
//! socket, and wait until a stream is readable or takes more bytes. The runtime of the
//! current thread is recorded when its shard starts, so [`spawn`] and [`sleep`] need no
//! handle.

mod glom;
mod mono;

use std::{
    cell::{Cell, RefCell},
    future::Future,
    io,
    net::{SocketAddr, TcpListener as StdListener},
    os::fd::RawFd,
    pin::{pin, Pin},
    task::{Context, Poll},
    time::Duration,
};

/// The runtime a shard runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// monoio on io_uring.
    MonoioUring,
    /// monoio on epoll (the fallback where io_uring is unavailable).
    MonoioEpoll,
    /// glommio (io_uring only).
    Glommio,
}

impl Kind {
    /// The name shown in logs and in `status.gateway.driver`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::MonoioUring => "io_uring",
            Kind::MonoioEpoll => "epoll",
            Kind::Glommio => "glommio",
        }
    }
}

thread_local! {
    static CURRENT: Cell<Option<Kind>> = const { Cell::new(None) };
}

/// The runtime of the calling thread.
///
/// # Panics
/// Outside a shard (or a runtime started by [`block_on`]): spawning there is a programming
/// error, not a condition to recover from.
fn current() -> Kind {
    CURRENT
        .with(|c| c.get())
        .expect("rt: called outside a shard runtime")
}

/// Runs `main` on the calling thread under `kind`, pinned to `cpu`, until it returns.
pub fn run_pinned<F, Fut>(kind: Kind, cpu: usize, name: &str, main: F) -> io::Result<()>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    run_on(kind, Some(cpu), name, main)
}

/// Runs `fut` to completion on a fresh, unpinned runtime of `kind` on the calling thread
/// (tests and tools).
pub fn block_on<Fut: Future<Output = T> + 'static, T: 'static>(kind: Kind, fut: Fut) -> T {
    let slot = std::rc::Rc::new(RefCell::new(None));
    let s = slot.clone();
    run_on(kind, None, "rt-block-on", move || async move {
        *s.borrow_mut() = Some(fut.await);
    })
    .expect("rt: runtime failed to start");
    let out = slot.borrow_mut().take();
    out.expect("rt: future did not complete")
}

/// Runs `main` under `kind`, with the thread's runtime recorded for [`spawn`] and [`sleep`]
/// while it runs.
fn run_on<F, Fut>(kind: Kind, cpu: Option<usize>, name: &str, main: F) -> io::Result<()>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    CURRENT.with(|c| c.set(Some(kind)));
    let r = match kind {
        Kind::MonoioUring | Kind::MonoioEpoll => mono::run(kind, cpu, main),
        Kind::Glommio => glom::run(cpu, name, main),
    };
    CURRENT.with(|c| c.set(None));
    r
}

/// Whether this kernel lets the process use io_uring (`io_uring_setup` succeeds).
pub fn io_uring_available() -> bool {
    mono::detect_uring()
}

/// Checks, before any glommio code runs, that glommio can start here: glommio panics (rather
/// than failing) when io_uring is missing, and poisons every later attempt in the process.
pub fn glommio_preflight() -> Result<(), String> {
    glom::preflight()
}

/// Spawns a detached task on the current shard.
pub fn spawn<F: Future<Output = ()> + 'static>(fut: F) {
    match current() {
        Kind::MonoioUring | Kind::MonoioEpoll => mono::spawn(fut),
        Kind::Glommio => glom::spawn(fut),
    }
}

/// A sleep on the current shard's timer, clamped to
/// [`MAX_SLEEP_MS`](crate::proto::bounds::MAX_SLEEP_MS): monoio panics on durations its timer
/// wheel cannot hold, glommio on an `Instant` overflow (see `shard::timer`).
pub fn sleep(d: Duration) -> Sleep {
    let d = clamp(d);
    match current() {
        Kind::MonoioUring | Kind::MonoioEpoll => Sleep::Monoio(mono::sleep(d)),
        Kind::Glommio => Sleep::Glommio(glom::sleep(d)),
    }
}

/// `d`, at most [`MAX_SLEEP_MS`](crate::proto::bounds::MAX_SLEEP_MS).
pub(crate) fn clamp(d: Duration) -> Duration {
    d.min(Duration::from_millis(crate::proto::bounds::MAX_SLEEP_MS))
}

/// A pending [`sleep`]. monoio's timer entry lives inline (~640 bytes, as before the seam);
/// boxing it to even out the variants would cost an allocation per sleep.
#[allow(clippy::large_enum_variant)]
pub enum Sleep {
    Monoio(mono::Sleep),
    Glommio(glom::Sleep),
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: structural pinning; the variant is never moved out of or replaced while
        // pinned (`Sleep` has no method that does either).
        unsafe {
            match self.get_unchecked_mut() {
                Sleep::Monoio(s) => Pin::new_unchecked(s).poll(cx),
                Sleep::Glommio(s) => Pin::new_unchecked(s).poll(cx),
            }
        }
    }
}

/// Which of two raced futures finished first.
pub enum Either<A, B> {
    Left(A),
    Right(B),
}

/// Races two futures; the loser is dropped (cancelled). `a` is polled first, so when both
/// are ready `a` wins.
pub async fn select<A: Future, B: Future>(a: A, b: B) -> Either<A::Output, B::Output> {
    let (mut a, mut b) = (pin!(a), pin!(b));
    std::future::poll_fn(|cx| {
        if let Poll::Ready(x) = a.as_mut().poll(cx) {
            return Poll::Ready(Either::Left(x));
        }
        if let Poll::Ready(y) = b.as_mut().poll(cx) {
            return Poll::Ready(Either::Right(y));
        }
        Poll::Pending
    })
    .await
}

/// `fut`'s output, or `None` if `d` passes first. The timer is made only if `fut` is not
/// ready at once, so a read or write that needs no wait costs no timer.
pub async fn timeout<F: Future>(d: Duration, fut: F) -> Option<F::Output> {
    match select(fut, async { sleep(d).await }).await {
        Either::Left(x) => Some(x),
        Either::Right(()) => None,
    }
}

/// A listening socket registered with the current shard's runtime.
pub enum Listener {
    Monoio(mono::Listener),
    Glommio(glom::Listener),
}

impl Listener {
    /// Takes over a bound, listening socket (prepared with `SO_REUSEPORT` by the caller).
    pub fn from_std(l: StdListener) -> io::Result<Listener> {
        Ok(match current() {
            Kind::MonoioUring | Kind::MonoioEpoll => Listener::Monoio(mono::Listener::new(l)?),
            Kind::Glommio => Listener::Glommio(glom::Listener::new(l)),
        })
    }

    /// The next connection and its peer address. The socket is made close-on-exec: io_uring's
    /// accept sets no flags, and a child process (an agent worker) that inherited a client's
    /// socket kept it open after the gateway closed it — the browser then sent its next
    /// request into a connection nobody read, and the dashboard hung.
    pub async fn accept(&self) -> io::Result<(Stream, SocketAddr)> {
        let (s, peer) = match self {
            Listener::Monoio(l) => l.accept().await?,
            Listener::Glommio(l) => l.accept().await?,
        };
        set_cloexec(s.fd());
        Ok((s, peer))
    }
}

/// Sets `FD_CLOEXEC` on a descriptor this process owns.
fn set_cloexec(fd: std::os::fd::RawFd) {
    // SAFETY: fcntl on a descriptor we own; F_GETFD/F_SETFD touch only its flags.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
            libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
        }
    }
}

/// What a connection has queued to send. glommio keeps writable readiness internal, so on
/// glommio the wait for "the socket takes more" is glommio's own send of these bytes.
pub trait Outbox {
    /// The bytes not yet sent (empty when there are none).
    fn unsent_bytes(&self) -> &[u8];
    /// Records that the socket took the first `n` of [`Outbox::unsent_bytes`].
    fn sent(&mut self, n: usize);
}

/// Where bytes read while waiting go. glommio has no readiness wait that holds no buffer
/// except its read path, so on glommio the wait for input reads (see [`Stream::readable`]).
pub trait Inbox {
    /// Keeps `bytes` (read from the socket, in order) for the connection's next parse.
    fn received(&mut self, bytes: &[u8]);
}

/// A non-blocking `recv` on `fd`.
pub fn sys_recv(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for buf.len() bytes; fd is an open socket.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// A non-blocking `send` on `fd` (no `SIGPIPE`).
pub fn sys_send(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for buf.len() bytes; fd is an open socket.
    let n = unsafe {
        libc::send(
            fd,
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// An accepted TCP stream. The connection code reads and writes the raw descriptor itself
/// (non-blocking `recv`/`send`/`sendmsg`); the runtime only tells it when to try again.
pub enum Stream {
    Monoio(mono::Stream),
    Glommio(glom::Stream),
}

impl Stream {
    pub fn fd(&self) -> RawFd {
        match self {
            Stream::Monoio(s) => s.fd(),
            Stream::Glommio(s) => s.fd(),
        }
    }

    pub fn set_nodelay(&self) -> io::Result<()> {
        match self {
            Stream::Monoio(s) => s.set_nodelay(),
            Stream::Glommio(s) => s.set_nodelay(),
        }
    }

    /// Resolves when the peer has closed (or reset) the connection, reading nothing: for a
    /// request that is answered long after it was read (an agent run), so the work stops
    /// when its caller is gone. Bytes the peer sends meanwhile stay in the socket, and the
    /// watch then ends without resolving (they are the next request's). glommio has no
    /// readiness wait that leaves data unread, so there it never resolves.
    pub async fn hangup(&self) {
        let Stream::Monoio(s) = self else {
            return std::future::pending().await;
        };
        loop {
            if s.readable().await.is_err() {
                return;
            }
            let mut b = [0u8; 1];
            // SAFETY: b is valid for one byte; the fd is this open socket.
            let n = unsafe {
                libc::recv(
                    s.fd(),
                    b.as_mut_ptr().cast(),
                    1,
                    libc::MSG_PEEK | libc::MSG_DONTWAIT,
                )
            };
            match n {
                0 => return,
                n if n > 0 => return std::future::pending().await,
                _ => match io::Error::last_os_error().kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => {}
                    _ => return,
                },
            }
        }
    }

    /// Resolves when the connection has input to handle: a `recv` would not block (data,
    /// end of stream or an error is there). On glommio the wait is a read, and what it read
    /// is in `inbox` (see [`Inbox`]); on monoio nothing is read.
    pub async fn readable<I: Inbox>(&self, inbox: &RefCell<I>) -> io::Result<()> {
        match self {
            Stream::Monoio(s) => s.readable().await,
            Stream::Glommio(s) => s.readable(inbox).await,
        }
    }

    /// Reads what has arrived into `buf`, waiting for it; `Ok(0)` is the end of the stream.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Monoio(s) => s.recv(buf).await,
            Stream::Glommio(s) => s.recv(buf).await,
        }
    }

    /// Writes some of `buf`, waiting for room; how much the socket took.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Monoio(s) => s.send(buf).await,
            Stream::Glommio(s) => s.send(buf).await,
        }
    }

    /// Resolves when the socket has room for more bytes. It never writes on monoio; on
    /// glommio (no public readiness) it sends the head of `outbox` through glommio's write
    /// path and records what was taken in the outbox. Either way the caller then flushes.
    pub async fn writable<O: Outbox>(&self, outbox: &RefCell<O>) -> io::Result<()> {
        match self {
            Stream::Monoio(s) => s.writable().await,
            Stream::Glommio(s) => s.write_from(outbox).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    fn kinds() -> Vec<Kind> {
        let mut k = vec![Kind::MonoioEpoll];
        if io_uring_available() {
            k.push(Kind::MonoioUring);
            if glommio_preflight().is_ok() {
                k.push(Kind::Glommio);
            }
        }
        k
    }

    #[test]
    fn select_drops_the_loser_and_prefers_the_first_when_both_are_ready() {
        for kind in kinds() {
            let dropped = Rc::new(Cell::new(false));
            let d = dropped.clone();
            let r = block_on(kind, async move {
                struct Flag(Rc<Cell<bool>>);
                impl Drop for Flag {
                    fn drop(&mut self) {
                        self.0.set(true);
                    }
                }
                let flag = Flag(d);
                let slow = async move {
                    sleep(Duration::from_secs(60)).await;
                    drop(flag);
                    1
                };
                // The slow one is polled (and so armed) first, then loses.
                let quick = async {
                    sleep(Duration::from_millis(1)).await;
                    2
                };
                match select(slow, quick).await {
                    Either::Left(x) => x,
                    Either::Right(x) => x,
                }
            });
            assert_eq!(r, 2, "{kind:?}");
            assert!(dropped.get(), "{kind:?}: the losing future was not dropped");
            let both = block_on(kind, select(async { 1 }, async { 2 }));
            assert!(matches!(both, Either::Left(1)), "{kind:?}");
        }
    }

    #[test]
    fn spawned_tasks_run_and_sleeps_end() {
        for kind in kinds() {
            let hits = block_on(kind, async {
                let hits = Rc::new(Cell::new(0));
                for _ in 0..3 {
                    let h = hits.clone();
                    spawn(async move {
                        sleep(Duration::from_millis(5)).await;
                        h.set(h.get() + 1);
                    });
                }
                assert!(
                    timeout(Duration::from_millis(5), std::future::pending::<()>())
                        .await
                        .is_none()
                );
                sleep(Duration::from_millis(50)).await;
                hits.get()
            });
            assert_eq!(hits, 3, "{kind:?}");
        }
    }

    /// A socket pair through the seam: accept, readable after the peer writes, and writable
    /// (on glommio, by sending the outbox) once the peer drains a full socket.
    #[test]
    fn accept_readable_and_writable_on_every_runtime() {
        use std::io::{Read, Write};
        struct Out(Vec<u8>, usize);
        impl Inbox for Out {
            fn received(&mut self, bytes: &[u8]) {
                self.0.extend_from_slice(bytes);
            }
        }
        impl Outbox for Out {
            fn unsent_bytes(&self) -> &[u8] {
                &self.0[self.1..]
            }
            fn sent(&mut self, n: usize) {
                self.1 += n;
            }
        }
        for kind in kinds() {
            let std_l = StdListener::bind("127.0.0.1:0").unwrap();
            std_l.set_nonblocking(true).unwrap();
            let addr = std_l.local_addr().unwrap();
            let peer = std::thread::spawn(move || {
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                s.write_all(b"ping").unwrap();
                // Let the server fill its send buffer, then drain everything.
                std::thread::sleep(Duration::from_millis(200));
                let mut all = Vec::new();
                s.read_to_end(&mut all).unwrap();
                all.len()
            });
            let sent = block_on(kind, async move {
                let l = Listener::from_std(std_l).unwrap();
                let (s, _) = l.accept().await.unwrap();
                // A child process must never inherit a client's socket.
                // SAFETY: reads the flags of a descriptor this test owns.
                let fd_flags = unsafe { libc::fcntl(s.fd(), libc::F_GETFD) };
                assert_eq!(fd_flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC, "{kind:?}");
                let inbox = RefCell::new(Out(Vec::new(), 0));
                s.readable(&inbox).await.unwrap();
                // Whatever the wait did not take into the inbox is read here.
                let mut got = inbox.borrow().0.clone();
                let mut buf = [0u8; 8];
                while got.len() < 4 {
                    let n = s.recv(&mut buf).await.unwrap();
                    got.extend_from_slice(&buf[..n]);
                }
                assert_eq!(got, b"ping");
                // Fill the socket until it refuses, then wait until it takes more.
                let chunk = vec![7u8; 1 << 16];
                let mut total = 0usize;
                loop {
                    // SAFETY: valid buffer, open socket.
                    let n = unsafe {
                        libc::send(
                            s.fd(),
                            chunk.as_ptr().cast(),
                            chunk.len(),
                            libc::MSG_DONTWAIT,
                        )
                    };
                    if n < 0 {
                        break;
                    }
                    total += n as usize;
                }
                let out = RefCell::new(Out(vec![9u8; 1000], 0));
                timeout(Duration::from_secs(10), s.writable(&out))
                    .await
                    .expect("writable never fired")
                    .unwrap();
                // Whatever the runtime took from the outbox is on the wire; send the rest.
                let rest = out.borrow().unsent_bytes().to_vec();
                let mut pos = 0;
                while pos < rest.len() {
                    // SAFETY: valid buffer, open socket.
                    let n = unsafe {
                        libc::send(s.fd(), rest[pos..].as_ptr().cast(), rest.len() - pos, 0)
                    };
                    assert!(n > 0);
                    pos += n as usize;
                }
                total + 1000
            });
            assert_eq!(peer.join().unwrap(), sent, "{kind:?}");
        }
    }
}
