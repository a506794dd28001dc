//! One connection's task: the HTTP upgrade with its admission checks, then a loop that waits
//! for the socket to be readable (io_uring poll or epoll), for the outbox to have something to
//! write, or for the socket to accept more. Reads land in the shard's shared read buffer and are
//! parsed there ([`crate::proto::wsread`]); writes go straight from the outbox (or, for fan-out,
//! straight from the shared event template), so an idle connection holds no IO buffer.

use std::{
    cell::RefCell,
    future::poll_fn,
    net::{IpAddr, SocketAddr},
    rc::Rc,
    task::Poll,
    time::{Duration, Instant},
};

use crate::rt::Stream as TcpStream;
use serde_json::json;

use super::{
    client::{Client, End, Phase, CLOSE_GRACE_MS},
    ctx::{ClientRef, ShardCtx},
    dispatch::{self, presence_disconnect, PendingConnect, UpgradeInfo},
    tls_io::{HandshakeEnd, Sock},
};
use crate::auth::secret::AuthMode;
use crate::http::head::{self as http, Request};
use crate::proto::{
    wsframe,
    wsread::{self, In, Next, WsError},
};
use crate::{
    methods::{Deferred, Effect},
    proto::{
        errors::close,
        frame::{res_err, res_ok, EventTemplate},
    },
    state::now_ms,
    store::Op,
};

pub(super) type Shared = Rc<RefCell<ShardCtx>>;

/// IPv4-mapped IPv6 peers are treated as their IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Reads what has arrived into `buf`, waiting for it until `deadline`; `None` on end of
/// stream, an error or the deadline.
pub(super) async fn recv_some(
    stream: &TcpStream,
    buf: &mut [u8],
    deadline: Instant,
) -> Option<usize> {
    let left = deadline.saturating_duration_since(Instant::now());
    match crate::rt::timeout(left, stream.recv(buf)).await {
        Some(Ok(n)) if n > 0 => Some(n),
        _ => None,
    }
}

/// Writes all of `bytes`, waiting for room as needed (bounded by `deadline`).
pub(super) async fn write_all(
    stream: &TcpStream,
    bytes: &[u8],
    deadline: Instant,
) -> std::io::Result<()> {
    let mut pos = 0;
    while pos < bytes.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        match crate::rt::timeout(left, stream.send(&bytes[pos..])).await {
            Some(n) => pos += n?,
            None => return Err(std::io::ErrorKind::TimedOut.into()),
        }
    }
    Ok(())
}

/// After an answer that may have left request bytes unread (a refused body): stop sending and
/// drain briefly, so closing does not reset the connection before the client reads the answer.
async fn linger(sock: &Sock<'_>) {
    const MAX_DRAIN: usize = 1 << 20;
    let deadline = Instant::now() + Duration::from_secs(2);
    sock.shutdown_write(deadline).await;
    let mut chunk = vec![0u8; 16 * 1024];
    let mut drained = 0;
    while drained < MAX_DRAIN {
        match recv_some(sock.stream, &mut chunk, deadline).await {
            Some(n) => drained += n,
            None => return,
        }
    }
}

/// Reads the HTTP request head, bounded in size and time; `head` holds bytes already read
/// (the start of a pipelined request on a kept-alive connection).
async fn read_head(
    sock: &Sock<'_>,
    mut head: Vec<u8>,
    deadline: Instant,
    routing: http::Routing<'_>,
) -> Option<(Request, Vec<u8>)> {
    if !head.is_empty() {
        if let Some((req, used)) = http::parse_routed(&head, routing) {
            let rest = head.split_off(used);
            return Some((req, rest));
        }
    }
    // On the heap: a stack array here would live in every connection's task for its lifetime.
    let mut chunk = vec![0u8; 2048];
    loop {
        let n = sock.recv_some(&mut chunk, deadline).await?;
        head.extend_from_slice(&chunk[..n]);
        if let Some((req, used)) = http::parse_routed(&head, routing) {
            let rest = head.split_off(used);
            return Some((req, rest));
        }
        if head.len() > http::MAX_HEAD {
            return Some((Request::Refused(http::HEADERS_TOO_LARGE), Vec::new()));
        }
    }
}

/// The answer to a socket over its address's pre-auth cap (counted).
async fn refuse_over_cap(sock: &Sock<'_>, deadline: Instant) {
    crate::metrics::record(|m| m.preauth_refused("per_ip_cap"));
    let r = http::response(
        "503 Service Unavailable",
        "text/plain; charset=utf-8",
        "Too many unauthenticated sockets",
    );
    let _ = sock.write_all(&r, deadline).await;
}

/// Logs (within the shard's log budget) and counts a TLS handshake that did not finish.
fn handshake_failed(shared: &Shared, ip: IpAddr, end: HandshakeEnd) {
    let reason = match &end {
        HandshakeEnd::PlainHttp => "plain_http",
        HandshakeEnd::Gone => "gone",
        HandshakeEnd::Failed(_) => "failed",
    };
    crate::metrics::record(|m| m.tls_handshake(reason));
    if let HandshakeEnd::Failed(why) = end {
        if shared.borrow().globals.log_allowed() {
            tracing::info!(%ip, error = %why, "TLS handshake failed");
        }
    }
}

/// A pre-auth slot released on drop unless handed to the client record.
struct PreauthSlot<'a> {
    globals: &'a crate::state::Globals,
    ip: IpAddr,
    held: bool,
}

impl PreauthSlot<'_> {
    fn disarm(mut self) {
        self.held = false;
    }

    /// Gives the slot back now (the socket authenticated as an HTTP API caller).
    fn release(&mut self) {
        if std::mem::take(&mut self.held) {
            self.globals.release_preauth(self.ip);
        }
    }
}

impl Drop for PreauthSlot<'_> {
    fn drop(&mut self) {
        if self.held {
            self.globals.release_preauth(self.ip);
        }
    }
}

/// Serves one accepted socket until it closes.
///
/// The upgrade and the close run as boxed futures of their own: their state (request heads,
/// deadlines, the inbound-HTTP path) exists only while they run, so what a connection holds
/// for its lifetime is the small loop of [`run`] (a few hundred bytes, not the ~2.4 KiB of
/// the largest upgrade state).
pub async fn serve(shared: Shared, stream: TcpStream, peer: SocketAddr) {
    let Some((client, info)) = Box::pin(upgrade(&shared, &stream, peer)).await else {
        return;
    };
    run(&shared, &client, &stream, &info).await;
    Box::pin(finish(&shared, &client, &stream)).await;
}

/// The HTTP part of a connection: admission, plain requests on a kept-alive socket, and the
/// WebSocket upgrade. `Some` once the socket is a registered WebSocket client.
async fn upgrade(
    shared: &Shared,
    stream: &TcpStream,
    peer: SocketAddr,
) -> Option<(ClientRef, UpgradeInfo)> {
    let _ = stream.set_nodelay();
    // The peer; behind a trusted proxy, the client it names (see the upgrade below).
    let mut ip = canonical(peer.ip());
    let (limits, globals) = {
        let ctx = shared.borrow();
        (ctx.config.limits.clone(), ctx.globals.clone())
    };
    let deadline = Instant::now() + Duration::from_millis(limits.handshake_timeout_ms);
    let acceptor = shared.borrow().tls.clone();
    // The per-IP pre-auth budget counts a socket from accept, so slow request heads (and slow
    // TLS handshakes) count too. A trusted proxy carries many clients: its sockets count
    // against the client each request names, once the head is read.
    let trusted_peer = shared.borrow().config.proxies.trusts(ip);
    let admitted = trusted_peer || globals.acquire_preauth(ip, limits.max_preauth_per_ip);
    let mut slot = PreauthSlot {
        globals: &globals,
        ip,
        held: admitted && !trusted_peer,
    };
    let sock = match &acceptor {
        // Over its cap, a TLS socket is refused before the handshake costs anything: a
        // plain-text fatal alert (internal_error), then close.
        Some(_) if !admitted => {
            crate::metrics::record(|m| m.preauth_refused("per_ip_cap"));
            let _ = write_all(stream, &[21, 3, 3, 0, 2, 2, 80], deadline).await;
            return None;
        }
        None => Sock::plain(stream),
        Some(a) => match Box::pin(Sock::accept_tls(stream, a, deadline)).await {
            Ok((sock, resumed)) => {
                crate::metrics::record(|m| {
                    m.tls_handshake(if resumed { "resumed" } else { "full" })
                });
                sock
            }
            Err(end) => {
                handshake_failed(shared, ip, end);
                return None;
            }
        },
    };
    if !admitted {
        refuse_over_cap(&sock, deadline).await;
        return None;
    }
    // Plain HTTP requests (probes, the Control UI) may follow one another on a kept-alive
    // connection; the first other request ends the loop.
    let mut pending = Vec::new();
    let mut head_deadline = deadline;
    let mut served = 0;
    let (req, leftover) = loop {
        let (hooks_base, keep_headers) = {
            let ctx = shared.borrow();
            (
                ctx.config.hooks.as_ref().map(|h| h.base_path.clone()),
                matches!(ctx.config.auth, AuthMode::TrustedProxy(_)),
            )
        };
        let routing = http::Routing {
            hooks_base: hooks_base.as_deref(),
            keep_headers,
        };
        let read = read_head(&sock, pending, head_deadline, routing);
        let (req, leftover) = Box::pin(read).await?;
        let req = match req {
            Request::Api(_) | Request::Hook(_) => {
                // The HTTP APIs and hooks read their own bodies and may stream; a kept-alive
                // connection goes on with what arrived after the body. The last request it
                // may carry (or one while draining) is answered `Connection: close`.
                let last = served + 1 >= super::web::MAX_REQUESTS_PER_CONNECTION
                    || shared.borrow().shutting_down;
                let mut authenticated = || slot.release();
                let (mut head, hook) = match req {
                    Request::Api(head) => (head, false),
                    Request::Hook(head) => (head, true),
                    _ => unreachable!("matched above"),
                };
                head.close |= last;
                let next = if hook {
                    let served =
                        super::hooks::serve(shared, &sock, ip, &head, leftover, &mut authenticated);
                    Box::pin(served).await
                } else {
                    let served =
                        super::api::serve(shared, &sock, ip, &head, leftover, &mut authenticated);
                    Box::pin(served).await
                };
                let close = head.close;
                match next {
                    super::api::Next::KeepAlive(rest) if !close => {
                        served += 1;
                        pending = rest;
                        head_deadline = Instant::now() + super::web::KEEP_ALIVE_IDLE;
                        continue;
                    }
                    _ => {
                        linger(&sock).await;
                        return None;
                    }
                }
            }
            other => other,
        };
        let Request::Plain(plain) = req else {
            break (req, leftover);
        };
        let keep = !plain.has_body
            && !plain.close
            && served + 1 < super::web::MAX_REQUESTS_PER_CONNECTION
            && !shared.borrow().shutting_down;
        let mut resp = Box::pin(super::web::serve_plain(shared, ip, &plain)).await;
        resp.close |= !keep;
        let write_deadline = Instant::now() + super::web::WRITE_TIMEOUT;
        let mut ok = sock
            .write_all(&resp.encode_head(), write_deadline)
            .await
            .is_ok();
        if ok && !resp.body_bytes().is_empty() {
            ok = sock
                .write_all(resp.body_bytes(), write_deadline)
                .await
                .is_ok();
        }
        if !ok {
            return None;
        }
        if resp.close {
            linger(&sock).await;
            return None;
        }
        served += 1;
        pending = leftover;
        head_deadline = Instant::now() + super::web::KEEP_ALIVE_IDLE;
    };
    let (accept, info) = match req {
        Request::Upgrade {
            accept,
            mut info,
            forwarded,
            headers,
        } => {
            let peer_ip = ip;
            let (client, identity) = {
                let ctx = shared.borrow();
                let attributed = crate::http::proxy::attribute(ip, &forwarded, &ctx.config.proxies);
                // Behind an identity-aware proxy, who it says the user is (decided now, while
                // the upgrade's headers are at hand; the connect frame cannot carry them).
                let identity = match &ctx.config.auth {
                    AuthMode::TrustedProxy(tp) => {
                        let header =
                            |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
                        Some(crate::auth::trusted_proxy::authorize(
                            tp,
                            &ctx.config.proxies,
                            peer_ip,
                            attributed,
                            &header,
                        ))
                    }
                    _ => None,
                };
                (attributed.ip(), identity)
            };
            info.proxy_identity = identity;
            info.direct_local = peer_ip.is_loopback() && !forwarded.present;
            drop(headers);
            if let Some(client) = client.filter(|c| *c != ip) {
                // The slot moves to the client the proxy named.
                slot.release();
                ip = client;
                slot.ip = client;
            }
            // Behind a proxy, or after an API request gave the slot back, the upgrade takes
            // one now.
            if client.is_some() && !slot.held {
                if !globals.acquire_preauth(ip, limits.max_preauth_per_ip) {
                    refuse_over_cap(&sock, deadline).await;
                    return None;
                }
                slot.held = true;
            }
            let refusal = if client.is_none() {
                crate::metrics::record(|m| m.preauth_refused("proxy_attribution"));
                let body = crate::http::api::proxy_attribution_required();
                Some(http::response(
                    "403 Forbidden",
                    "application/json; charset=utf-8",
                    std::str::from_utf8(&body.body).unwrap_or_default(),
                ))
            } else if shared.borrow().shutting_down {
                crate::metrics::record(|m| m.preauth_refused("draining"));
                Some(http::response(
                    "503 Service Unavailable",
                    "text/plain; charset=utf-8",
                    "Gateway websocket admission closed",
                ))
            } else if shared.borrow().buffered_total > limits.shard_buffered_budget {
                crate::metrics::record(|m| m.preauth_refused("shard_budget"));
                Some(http::response(
                    "503 Service Unavailable",
                    "text/plain; charset=utf-8",
                    "Gateway busy: shard send buffers over budget",
                ))
            } else {
                None
            };
            if let Some(r) = refusal {
                let _ = sock.write_all(&r, deadline).await;
                return None;
            }
            (accept, info)
        }
        Request::Inbound(head) => {
            let r = super::inbound::serve(shared, &sock, head, leftover, deadline).await;
            if sock.write_all(&r, deadline).await.is_ok() {
                linger(&sock).await;
            }
            return None;
        }
        Request::Plain(_) | Request::Api(_) | Request::Hook(_) => {
            unreachable!("served above")
        }
        Request::Refused(status) => {
            let r = http::response(status, "text/plain; charset=utf-8", status);
            if sock.write_all(&r, deadline).await.is_ok() {
                linger(&sock).await;
            }
            return None;
        }
    };
    if sock
        .write_all(&http::switching_protocols(&accept), deadline)
        .await
        .is_err()
    {
        return None;
    }
    // The record layer moves to the client, with any WebSocket bytes it already decrypted.
    let (tls, mut leftover) = match sock.into_tls() {
        Some((tls, early)) => {
            let mut l = leftover;
            l.extend_from_slice(&early);
            (Some(tls), l)
        }
        None => (None, leftover),
    };
    // From here the client record holds the slot (released at hello-ok or on close).
    slot.disarm();
    let client = {
        let mut ctx = shared.borrow_mut();
        let id = ctx.next_client_id();
        let nonce = uuid::Uuid::new_v4().to_string();
        let now = now_ms();
        let mut c = Client::new(
            id,
            stream.fd(),
            ip,
            nonce.clone(),
            now,
            limits.max_preauth_payload,
            std::mem::take(&mut leftover),
        );
        c.tls = tls;
        // The shard prefix tells operators (and tests) where a connection lives.
        c.conn_id = format!("s{}-{}", ctx.id, c.conn_id);
        // A worker's first frame is its `connect`; it takes no challenge (its credential is
        // the proof) and refuses any other frame first.
        if !info.worker {
            let challenge = EventTemplate::new(
                "connect.challenge",
                &json!({"nonce": nonce, "ts": now, "capabilities": crate::methods::CAPABILITIES}),
                None,
            );
            c.push_event(&challenge, false);
        }
        let c = Rc::new(RefCell::new(c));
        ctx.clients.insert(id, c.clone());
        c
    };
    Some((client, info))
}

/// Waits until the connection has been signalled (new outbox bytes, a close, a termination).
async fn signalled(c: &ClientRef) {
    poll_fn(|cx| {
        let mut c = c.borrow_mut();
        if c.signalled {
            c.signalled = false;
            Poll::Ready(())
        } else {
            c.waker = Some(cx.waker().clone());
            Poll::Pending
        }
    })
    .await
}

async fn run(shared: &Shared, c: &ClientRef, stream: &TcpStream, info: &UpgradeInfo) {
    // One readiness wait stays armed across loop turns; it is replaced only once it fires.
    let mut readable = Box::pin(stream.readable(&**c));
    loop {
        let (end, flushed) = {
            let mut cb = c.borrow_mut();
            if cb.end == Some(End::Now) {
                return;
            }
            match cb.flush_socket() {
                Ok(f) => (cb.end, f),
                Err(_) => return,
            }
        };
        if end == Some(End::AfterFlush) && flushed {
            return;
        }
        // A signal (new bytes, a close, a termination) must always be seen, also while the
        // socket is full; writability matters only when bytes are waiting.
        let wait_other = async {
            if flushed {
                signalled(c).await;
            } else {
                // A write error here is seen again by the next flush, which ends the
                // connection.
                let _ = crate::rt::select(stream.writable(&**c), signalled(c)).await;
            }
        };
        if end.is_some() {
            // Closing: stop reading (unread input would keep readiness firing); the close
            // deadline set by `Client::close` bounds how long the flush may take.
            wait_other.await;
            continue;
        }
        if let crate::rt::Either::Left(r) = crate::rt::select(&mut readable, wait_other).await {
            readable = Box::pin(stream.readable(&**c));
            if r.is_err() {
                return;
            }
            // Boxed: its state exists only while a read is handled, so an idle connection's
            // task stays small.
            if !Box::pin(on_readable(shared, c, info)).await {
                return;
            }
        }
    }
}

/// Unsent bytes a connection may accumulate before `hello-ok`.
const PREAUTH_OUTBOX_CAP: usize = 64 * 1024;

/// Messages handled per turn before yielding to the shard's other tasks.
const MESSAGES_PER_TURN: usize = 64;

/// Frames of any kind (pings, empty fragments) handled per turn: a flood of frames that are
/// not messages yields to the shard's other connections too.
const FRAMES_PER_TURN: usize = 1024;

/// Yields once to the executor.
async fn yield_now() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

/// A delayed connect rejection: the `res` frame, close code and reason.
type Rejection = (Vec<u8>, u16, String);

/// What one pass over the available messages left to do.
#[derive(Default)]
struct Pass {
    effects: Vec<Effect>,
    rejection: Option<(u64, Rejection)>,
    connect: Option<PendingConnect>,
    deferred: Vec<(String, Box<Deferred>, Option<crate::metrics::rpc::Pending>)>,
    /// The turn budget ran out with messages possibly still buffered.
    more: bool,
}

/// Bytes asked of the socket per `recv` (more when a frame in progress needs more).
const READ_SPACE: usize = 16 * 1024;

/// The shard's shared read buffer is kept between passes up to this size (a pass that read a
/// large frame frees it).
const SHARED_READ_MAX: usize = 256 * 1024;

/// Handles up to [`MESSAGES_PER_TURN`] complete messages (and [`FRAMES_PER_TURN`] frames).
///
/// Bytes are parsed where they land: in the shard's shared read buffer, or, when the
/// connection carries the start of an incomplete frame from an earlier read, in that
/// connection's own buffer (which then grows in place until the frame is whole). What is left
/// unparsed at the end of the pass is all a connection keeps.
fn read_pass(shared: &Shared, c: &ClientRef, info: &UpgradeInfo) -> Pass {
    let mut pass = Pass::default();
    let mut cb = c.borrow_mut();
    let mut ctx = shared.borrow_mut();
    let cl = &mut *cb;
    let own = !cl.partial.is_empty();
    let mut buf = if own {
        std::mem::take(&mut cl.partial)
    } else {
        std::mem::take(&mut ctx.read_buf)
    };
    let mut pos = 0;
    let mut handled = 0;
    let mut frames = 0;
    let mut pong = ([0u8; 125], None::<usize>);
    loop {
        if cl.end.is_some() {
            break;
        }
        if handled == MESSAGES_PER_TURN || frames == FRAMES_PER_TURN {
            pass.more = true;
            break;
        }
        // The bandwidth gate also covers what a client makes us write by sending (responses,
        // errors, pongs): past the cap it is a slow consumer. Before hello the cap is small.
        let cap = if matches!(cl.phase, Phase::Open | Phase::Worker(_)) {
            ctx.config.limits.max_buffered_bytes
        } else {
            PREAUTH_OUTBOX_CAP
        };
        if cl.over(cap) {
            ctx.globals
                .slow_closes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            cl.close(close::POLICY, "slow consumer");
            break;
        }
        let limit = cl.limit;
        let frame = match wsread::next_frame(&mut buf[pos..], limit) {
            Ok(Next::Frame(f, used)) => {
                pos += used;
                frames += 1;
                crate::metrics::record(|m| m.frames_in += 1);
                f
            }
            Ok(Next::Incomplete { need }) => {
                if cl.peer_eof {
                    break;
                }
                // Make room for the rest of the frame, a bounded step at a time: a header
                // that announces a large frame is not an allocation of that size.
                if pos > 0 {
                    buf.drain(..pos);
                    pos = 0;
                }
                buf.reserve(need.saturating_sub(buf.len()).clamp(READ_SPACE, 1 << 20));
                match cl.receive(&mut buf) {
                    Ok(0) => cl.peer_eof = true,
                    Ok(_) => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        cl.end = Some(End::Now);
                        break;
                    }
                }
                // End of stream: flush what we owe the peer, then close.
                cl.end = Some(End::AfterFlush);
                cl.end_deadline_ms = Some(now_ms() + CLOSE_GRACE_MS);
                break;
            }
            Err(e) => {
                ws_error(cl, e);
                break;
            }
        };
        let text = match cl.msgs.on_frame(frame, limit) {
            Ok(In::Message(text)) => text,
            Ok(In::Fragment) => continue,
            Ok(In::Ping(payload)) => {
                // Only the newest ping of a pass is answered (RFC 6455 §5.5.3 allows it), so
                // a ping flood costs one pong per read, not one per ping.
                pong.0[..payload.len()].copy_from_slice(payload);
                pong.1 = Some(payload.len());
                continue;
            }
            Ok(In::Pong) => {
                cl.awaiting_pong = false;
                continue;
            }
            Ok(In::Close(echo)) => {
                // Answer with the peer's own code and reason (RFC 6455 §5.5.1), then close.
                wsframe::write_close(&mut cl.out, echo);
                cl.phase = Phase::Closing;
                cl.end = Some(End::AfterFlush);
                break;
            }
            Err(e) => {
                ws_error(cl, e);
                break;
            }
        };
        handled += 1;
        // A panic here is confined to this connection (crate::panic_policy).
        let after = match crate::panic_policy::contain(|| {
            dispatch::on_text(&mut ctx, &mut *cl, info, &text)
        }) {
            Ok(after) => after,
            Err(_) => {
                ctx.globals
                    .panics_contained
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                cl.close(close::INTERNAL, "internal error");
                break;
            }
        };
        pass.effects.extend(after.effects);
        pass.deferred.extend(after.deferred);
        if after.rejection.is_some() {
            pass.rejection = after.rejection.map(|r| (after.reject_delay_ms, r));
            break;
        }
        if after.connect.is_some() {
            // Later frames wait in the buffer until the connect is decided.
            pass.connect = after.connect;
            pass.more = true;
            break;
        }
    }
    if let (Some(n), None) = (pong.1, cl.end) {
        wsframe::write_control(&mut cl.out, wsread::OP_PONG, &pong.0[..n]);
    }
    // Keep only the unparsed bytes, and only on the connection that needs them.
    if own {
        buf.drain(..pos);
        if !buf.is_empty() {
            cl.partial = buf;
        }
    } else {
        if pos < buf.len() {
            cl.partial = buf[pos..].to_vec();
        }
        buf.clear();
        if buf.capacity() <= SHARED_READ_MAX {
            ctx.read_buf = buf;
        }
    }
    pass
}

/// Closes a connection whose frames broke the protocol, with the matching code.
fn ws_error(cl: &mut Client, e: WsError) {
    match e {
        WsError::TooBig => {
            let reason = if matches!(cl.phase, Phase::Open | Phase::Worker(_)) {
                "payload too large"
            } else {
                "preauth payload too large"
            };
            cl.close(close::TOO_BIG, reason);
        }
        WsError::Protocol(what) => {
            tracing::debug!(conn = %cl.conn_id, error = what, "websocket protocol error");
            cl.close(close::PROTOCOL, "protocol error");
        }
        WsError::Utf8 => cl.close(1007, "invalid utf-8"),
    }
}

/// Longest wait for the storage thread before answering `UNAVAILABLE`.
const STORE_TIMEOUT: Duration = Duration::from_secs(10);

/// A store round trip bounded by [`STORE_TIMEOUT`] (a late result is discarded).
pub async fn call_store(store: &crate::store::Store, op: Op) -> crate::store::OpResult {
    crate::rt::timeout(STORE_TIMEOUT, store.call(op))
        .await
        .unwrap_or_else(|| crate::store::OpResult::Failed("state store timed out".into()))
}

/// Asks the chat layer (on the session's owner, possibly another shard) for an HTTP request
/// and waits for its answer, at most `timeout` (`None` then; a late answer is dropped).
pub async fn ask_chat(
    shared: &Shared,
    req: crate::chat::ChatRequest,
    timeout: Duration,
) -> Option<Result<serde_json::Value, crate::proto::errors::ErrorShape>> {
    let (token, waiter) = {
        let mut ctx = shared.borrow_mut();
        let (caller, token, waiter) = ctx.http_waiter();
        super::drive::chat_as(&mut ctx, caller, req);
        (token, waiter)
    };
    let r = crate::rt::timeout(timeout, waiter.wait()).await;
    if r.is_none() {
        shared.borrow_mut().http_waiters.remove(&token);
    }
    r
}

/// Runs a deferred reply on its own task so the connection keeps reading meanwhile.
fn spawn_deferred(
    shared: &Shared,
    c: &ClientRef,
    id: String,
    d: Box<Deferred>,
    rpc: Option<crate::metrics::rpc::Pending>,
) {
    let store = shared.borrow().store.clone();
    c.borrow_mut().replies_in_flight += 1;
    let (shared, c) = (shared.clone(), c.clone());
    crate::rt::spawn(async move {
        let Deferred { op, finish } = *d;
        let r = call_store(&store, op).await;
        // Building the reply is request handling: a panic closes this connection only.
        let reply = crate::panic_policy::contain(|| finish(r, &shared.borrow()));
        let mut cb = c.borrow_mut();
        if cb.end.is_some() {
            return;
        }
        let _answered = Answered(&mut cb);
        let cb = &mut *_answered.0;
        match reply {
            Ok(Ok(payload)) => {
                cb.push_text(&res_ok(&id, &payload));
                if let Some(r) = rpc {
                    r.responded(true);
                }
            }
            Ok(Err(e)) => {
                cb.push_text(&res_err(&id, &e));
                if let Some(r) = rpc {
                    r.responded(false);
                }
            }
            Err(_) => {
                shared
                    .borrow()
                    .globals
                    .panics_contained
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                cb.close(close::INTERNAL, "internal error");
            }
        }
    });
}

/// Marks a deferred reply answered when dropped (after it was queued, or if building it
/// panicked), releasing a close that waited for it.
struct Answered<'a>(&'a mut Client);

impl Drop for Answered<'_> {
    fn drop(&mut self) {
        self.0.reply_answered();
    }
}

/// Reads and handles every complete message available; false when the socket is done.
async fn on_readable(shared: &Shared, c: &ClientRef, info: &UpgradeInfo) -> bool {
    loop {
        let mut pass = read_pass(shared, c, info);
        if !pass.effects.is_empty() {
            dispatch::apply(&mut shared.borrow_mut(), std::mem::take(&mut pass.effects));
        }
        for (id, d, rpc) in pass.deferred.drain(..) {
            spawn_deferred(shared, c, id, d, rpc);
        }
        if let Some((delay, (frame, code, reason))) = pass.rejection {
            crate::shard::timer::sleep_ms(delay).await;
            let mut cb = c.borrow_mut();
            if cb.end.is_none() {
                cb.push_text(&frame);
                cb.close(code, &reason);
            }
            return true;
        }
        if let Some(mut pc) = pass.connect {
            let store = shared.borrow().store.clone();
            let op = std::mem::replace(&mut pc.op, Op::List);
            let r = call_store(&store, op).await;
            let effects = {
                let mut ctx = shared.borrow_mut();
                let mut cb = c.borrow_mut();
                dispatch::finish_connect(&mut ctx, &mut cb, pc, r)
            };
            dispatch::apply(&mut shared.borrow_mut(), effects);
        }
        if c.borrow().end == Some(End::Now) {
            return false;
        }
        if !pass.more {
            return true;
        }
        yield_now().await;
    }
}

/// Ends a connection: lingering close (so the peer reads our close frame rather than a reset),
/// then table, presence and counter cleanup.
async fn finish(shared: &Shared, c: &ClientRef, stream: &TcpStream) {
    let graceful = {
        let mut cb = c.borrow_mut();
        let graceful = cb.end != Some(End::Now);
        let fd = cb.fd;
        if let (true, Some(t)) = (graceful, cb.tls.as_mut()) {
            // The TLS end of the stream, behind the close frame already flushed.
            t.close_notify();
            let _ = t.flush(fd);
        }
        // Nothing more is written to this socket from here (fan-out writes straight to it
        // while the client is in the table, until the removal below).
        cb.fd = -1;
        graceful
    };
    if graceful {
        // SAFETY: the fd is the connection's open socket.
        unsafe { libc::shutdown(stream.fd(), libc::SHUT_WR) };
        let deadline = Instant::now() + Duration::from_millis(1000);
        let mut sink = vec![0u8; 4096];
        while Instant::now() < deadline && recv_some(stream, &mut sink, deadline).await.is_some() {}
    }
    let (id, presence_key, opened, holds_preauth, ip, node, approval_client) = {
        let cb = c.borrow();
        let s = cb.session.as_deref();
        (
            cb.id,
            s.and_then(|s| s.presence_key.clone()),
            s.is_some(),
            cb.holds_preauth,
            cb.ip,
            s.and_then(|s| s.node_id.clone())
                .map(|n| (n, cb.conn_id.clone())),
            s.is_some_and(|s| s.approval_client),
        )
    };
    let mut ctx = shared.borrow_mut();
    ctx.clients.remove(&id);
    ctx.awaiting_reply.remove(&id);
    ctx.forwarded.remove(&id);
    if let Some(s) = c.borrow().session.as_deref() {
        for key in &s.message_subs {
            ctx.subs.unsubscribe(key, id);
        }
        ctx.subs.invalidate_broad();
    }
    if holds_preauth {
        ctx.globals.release_preauth(ip);
    }
    if opened {
        ctx.globals
            .connections
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
    if let (Some(key), false) = (presence_key, ctx.shutting_down) {
        ctx.presence_change(key, presence_disconnect());
    }
    super::drive::invoke_closed(&mut ctx, id);
    if approval_client {
        ctx.globals
            .approval_clients
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
    if let Some((node_id, conn_id)) = node {
        ctx.node_change(crate::nodes::registry::NodeDelta::Down {
            node_id,
            conn_id,
            at_ms: now_ms(),
        });
    }
}
