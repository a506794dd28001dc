//! One connection's state on its shard: its inbound frame state (the bytes of an incomplete
//! frame, a fragmented message; nothing while idle), the outbox of framed bytes waiting for the
//! socket, the protocol phase, and the per-connection event `seq`. Owned by one shard; shared
//! between the connection's task and the shard's fan-out through `Rc<RefCell<_>>`, never
//! across threads.

use std::{io, net::IpAddr, os::fd::RawFd, task::Waker};

use crate::proto::{
    frame::{EventTemplate, SeqBuf},
    handshake::ClientInfo,
    scopes::{Role, ScopeSet},
    wsframe, wsread,
};

/// How long a queued close frame may take to flush before the socket is dropped
/// (`WEBSOCKET_CLOSE_GRACE_MS`).
pub const CLOSE_GRACE_MS: u64 = 1000;

/// An authenticated connection's identity and authority.
#[derive(Debug, Clone)]
pub struct Session {
    pub role: Role,
    pub scopes: ScopeSet,
    /// `hello-ok.auth.scopes`, as granted.
    pub scope_list: Vec<String>,
    pub client: ClientInfo,
    pub caps: Vec<String>,
    /// Presence key when this client is presence-tracked.
    pub presence_key: Option<String>,
    pub device_id: Option<String>,
    /// `hello-ok.auth.method`.
    pub auth_method: &'static str,
    /// Called `sessions.subscribe` (receives `sessions.changed`).
    pub sessions_subscribed: bool,
    /// Advertised cap `session-scoped-events`: `chat`/`agent` only for subscribed sessions.
    pub scoped_events: bool,
    /// Advertised cap `tool-events`: receives structured tool lifecycle `agent` events.
    pub tool_events: bool,
    /// Sessions (canonical keys) subscribed with `sessions.messages.subscribe`.
    pub message_subs: Vec<std::sync::Arc<str>>,
    /// For a node: its node id (registered in the node registry).
    pub node_id: Option<String>,
    /// Receives `exec.approval.*` events (counted in `Globals::approval_clients`).
    pub approval_client: bool,
    /// The shard's shared-secret generation when this client was admitted.
    pub auth_gen: u64,
}

impl Session {
    pub fn subscribed_to(&self, key: &str) -> bool {
        self.message_subs.iter().any(|k| &**k == key)
    }
}

/// Where the connection is in its life.
#[derive(Debug)]
pub enum Phase {
    /// Challenge sent; waiting for `connect`.
    AwaitingConnect { nonce: String, opened_ms: u64 },
    /// Rejected: the error is being delayed (loopback auth-failure backoff), then closed.
    Rejecting,
    /// Waiting for the storage thread (pairing, device token).
    Pairing,
    /// `hello-ok` sent; [`Client::session`] is set.
    Open,
    /// An agent worker admitted on the worker channel, by the grant its credential carries
    /// (no [`Client::session`]: it is not an operator).
    Worker(Box<crate::worker::credential::Grant>),
    /// A close frame was queued (or the socket is being dropped).
    Closing,
}

/// One non-blocking `recv` into `buf`'s spare capacity; `Ok(0)` is the end of the stream.
pub fn recv_into(fd: RawFd, buf: &mut Vec<u8>) -> io::Result<usize> {
    let spare = buf.spare_capacity_mut();
    // SAFETY: `spare` is writable for its length; fd is this connection's open socket. The
    // kernel initialises the `n` bytes it reports, which `set_len` then exposes.
    let n = unsafe {
        libc::recv(
            fd,
            spare.as_mut_ptr().cast(),
            spare.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: see above.
    unsafe { buf.set_len(buf.len() + n as usize) };
    crate::metrics::record(|m| m.bytes_in += n as u64);
    Ok(n as usize)
}

/// Writes `parts` with one non-blocking `sendmsg`; returns the bytes the socket took (0 when it
/// took none or failed: the caller queues the rest, and the connection's task sees any error
/// on its next write).
fn send_vectored(fd: RawFd, parts: &[&[u8]; 4]) -> usize {
    let mut iov = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; 4];
    let mut n = 0;
    for p in parts.iter().filter(|p| !p.is_empty()) {
        iov[n] = libc::iovec {
            iov_base: p.as_ptr() as *mut libc::c_void,
            iov_len: p.len(),
        };
        n += 1;
    }
    // SAFETY: a zeroed msghdr is valid; it points at `iov`, whose entries point at live slices
    // for the duration of the call; fd is this connection's open socket.
    let sent = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = n;
        libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
    };
    sent.max(0) as usize
}

/// Writes `out[*pos..]` until the socket is full: `Ok(true)` (and `out` emptied) when all of
/// it went, `Ok(false)` when the socket is full (the sent part dropped once it is most of
/// the buffer). Plain frames and sealed TLS records leave through here alike.
pub(super) fn send_queued(fd: RawFd, out: &mut Vec<u8>, pos: &mut usize) -> io::Result<bool> {
    while *pos < out.len() {
        match crate::rt::sys_send(fd, &out[*pos..]) {
            Ok(n) => {
                *pos += n;
                crate::metrics::record(|m| m.bytes_out += n as u64);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                compact(out, pos);
                return Ok(false);
            }
            Err(e) => return Err(e),
        }
    }
    out.clear();
    *pos = 0;
    Ok(true)
}

fn compact(out: &mut Vec<u8>, pos: &mut usize) {
    if *pos > 0 && *pos >= out.len() / 2 {
        out.drain(..*pos);
        *pos = 0;
    }
}

/// How the connection should end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Flush what is queued (a close frame included), then close the socket.
    AfterFlush,
    /// Drop the socket now (missed pong, slow consumer past its grace).
    Now,
}

/// A connection's state.
pub struct Client {
    pub id: u64,
    pub conn_id: String,
    pub ip: IpAddr,
    pub fd: RawFd,
    pub phase: Phase,
    /// Set at `hello-ok` and kept until the connection is gone (for cleanup after a close).
    pub session: Option<Box<Session>>,
    /// Bytes of an incomplete inbound frame (empty, unallocated, between frames).
    pub partial: Vec<u8>,
    /// A fragmented inbound message in progress.
    pub msgs: wsread::Messages,
    /// Largest inbound frame and message (the pre-auth limit until `hello-ok`).
    pub limit: usize,
    /// Framed bytes not yet written to the socket; `out[out_pos..]` is unsent.
    pub out: Vec<u8>,
    pub out_pos: usize,
    /// Next event `seq` is `seq + 1`.
    pub seq: u64,
    /// Consecutive `unauthorized role` errors (the flood guard).
    pub strikes: u32,
    /// A ping was sent and no pong has arrived yet.
    pub awaiting_pong: bool,
    pub last_ping_ms: u64,
    /// Whether this connection still holds a pre-auth slot for its IP.
    pub holds_preauth: bool,
    pub peer_eof: bool,
    pub end: Option<End>,
    /// When a slow consumer's close frame must have been flushed by (else dropped).
    pub end_deadline_ms: Option<u64>,
    /// The connection task's waker and whether it has work to look at.
    pub waker: Option<Waker>,
    pub signalled: bool,
    /// Replies of this connection waiting for the storage thread (see
    /// [`Client::close_after_replies`]).
    pub replies_in_flight: u32,
    /// A close that waits for those replies to be queued first.
    pub close_when_answered: Option<Box<(u16, String)>>,
    /// TLS record protection (a connection on a `gateway.tls` port): `out` then holds
    /// frames not yet sealed, and the sealed bytes wait in here.
    pub tls: Option<Box<super::tls_io::ClientTls>>,
    /// Live-text frames held back while this client is slow (newest per key; see
    /// [`crate::proto::frame::LiveKey`]).
    pub held: Vec<(
        std::sync::Arc<str>,
        &'static str,
        std::sync::Arc<EventTemplate>,
    )>,
}

impl Client {
    /// `leftover`: bytes that arrived with the HTTP request head (already WebSocket data).
    pub fn new(
        id: u64,
        fd: RawFd,
        ip: IpAddr,
        nonce: String,
        now_ms: u64,
        max_preauth: usize,
        leftover: Vec<u8>,
    ) -> Self {
        Client {
            id,
            conn_id: uuid::Uuid::new_v4().to_string(),
            ip,
            fd,
            phase: Phase::AwaitingConnect {
                nonce,
                opened_ms: now_ms,
            },
            session: None,
            partial: leftover,
            msgs: wsread::Messages::default(),
            limit: max_preauth,
            out: Vec::new(),
            out_pos: 0,
            seq: 0,
            strikes: 0,
            awaiting_pong: false,
            last_ping_ms: now_ms,
            holds_preauth: true,
            peer_eof: false,
            end: None,
            end_deadline_ms: None,
            waker: None,
            signalled: false,
            replies_in_flight: 0,
            close_when_answered: None,
            tls: None,
            held: Vec::new(),
        }
    }

    /// Is more than `cap` still unsent after trying the socket once? (The slow-consumer test:
    /// what this turn queued may not have been offered to the socket yet.)
    pub fn over(&mut self, cap: usize) -> bool {
        if self.unsent() > cap && self.fd >= 0 {
            let _ = self.flush_socket();
        }
        self.unsent() > cap
    }

    /// Bytes queued and not yet written to the socket.
    pub fn unsent(&self) -> usize {
        self.out.len() - self.out_pos + self.tls.as_ref().map_or(0, |t| t.unsent())
    }

    /// One non-blocking read into `buf`'s end (decrypted on a TLS connection); `Ok(0)` is
    /// the end of the stream.
    pub fn receive(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        match &mut self.tls {
            None => recv_into(self.fd, buf),
            Some(t) => t.receive(self.fd, buf),
        }
    }

    /// The session while the connection is open (not once it is closing).
    pub fn session(&self) -> Option<&Session> {
        match self.phase {
            Phase::Open => self.session.as_deref(),
            _ => None,
        }
    }

    /// Wakes the connection task.
    pub fn signal(&mut self) {
        self.signalled = true;
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// Queues one text frame.
    pub fn push_text(&mut self, payload: &[u8]) {
        wsframe::write_text(&mut self.out, payload);
        crate::metrics::record(|m| m.frames_out += 1);
        self.signal();
    }

    /// Sends (or queues) an event frame from a template; `with_seq` stamps the next `seq`.
    ///
    /// With nothing queued ahead of it, the frame goes to the socket at once in one vectored
    /// write straight from the shared template: a fan-out to N connections costs N `sendmsg`
    /// calls and no copy, allocation or task wake-up per recipient. Only what the socket does
    /// not take is copied into the outbox, and then the connection's task is woken to finish it.
    pub fn push_event(&mut self, ev: &EventTemplate, with_seq: bool) -> usize {
        let seq = with_seq.then(|| {
            self.seq += 1;
            self.seq
        });
        let len = ev.len_with_seq(seq);
        let mut hdr = [0u8; 10];
        let hdr = wsframe::header_into(&mut hdr, len);
        let mut seq_buf = SeqBuf::default();
        let [head, seq_part, tail] = ev.parts(seq, &mut seq_buf);
        let parts = [hdr, head, seq_part, tail];
        let total = hdr.len() + len;
        if self.tls.is_some() {
            self.push_sealed(&parts);
            return total;
        }
        let sent = if self.unsent() == 0 && self.fd >= 0 && self.end.is_none() {
            send_vectored(self.fd, &parts)
        } else {
            0
        };
        crate::metrics::record(|m| {
            m.frames_out += 1;
            m.bytes_out += sent as u64;
        });
        if sent < total {
            if self.out_pos == self.out.len() {
                self.out.clear();
                self.out_pos = 0;
            }
            let mut skip = sent;
            for p in parts {
                let k = skip.min(p.len());
                self.out.extend_from_slice(&p[k..]);
                skip -= k;
            }
            self.signal();
        }
        total
    }

    /// [`Client::push_event`] on a TLS connection: the frame is sealed as one record straight
    /// from the template (behind any frames still waiting to be sealed, which keep their
    /// order) and offered to the socket at once.
    fn push_sealed(&mut self, parts: &[&[u8]; 4]) {
        crate::metrics::record(|m| m.frames_out += 1);
        if self.out_pos < self.out.len() || self.fd < 0 || self.end.is_some() {
            for p in parts {
                self.out.extend_from_slice(p);
            }
            self.signal();
            return;
        }
        let Some(t) = self.tls.as_mut() else { return };
        if t.near_limit() {
            // The task's flush closes the connection cleanly before the key runs out.
            for p in parts {
                self.out.extend_from_slice(p);
            }
            self.signal();
            return;
        }
        let was_idle = t.unsent() == 0;
        if t.seal(parts).is_err() {
            self.terminate();
            return;
        }
        if was_idle {
            if let Err(e) = t.flush(self.fd) {
                // The task sees it again on its next flush and ends the connection.
                tracing::trace!(error = %e, "tls write failed");
            }
        }
        if t.unsent() > 0 {
            self.signal();
        }
    }

    /// Queues a close frame with a code and reason, then ends after flushing.
    pub fn close(&mut self, code: u16, reason: &str) {
        if self.end.is_some() {
            return;
        }
        wsframe::write_close(&mut self.out, Some((code, reason)));
        crate::metrics::record(|m| m.closed(code));
        self.phase = Phase::Closing;
        self.end = Some(End::AfterFlush);
        self.end_deadline_ms = Some(crate::state::now_ms() + CLOSE_GRACE_MS);
        self.signal();
    }

    /// Closes the connection once the replies it is waiting for have been queued: a change
    /// that voids its own credentials (rotating its own device token) still reaches it with
    /// its answer first, as on the original. Meanwhile it is no longer open: no events, and
    /// its further requests are ignored.
    pub fn close_after_replies(&mut self, code: u16, reason: &str) {
        if self.end.is_some() {
            return;
        }
        if self.replies_in_flight == 0 {
            self.close(code, reason);
            return;
        }
        self.phase = Phase::Closing;
        self.close_when_answered = Some(Box::new((code, reason.to_owned())));
    }

    /// A reply that waited for the storage thread has been queued (or dropped).
    pub fn reply_answered(&mut self) {
        self.replies_in_flight = self.replies_in_flight.saturating_sub(1);
        if self.replies_in_flight == 0 {
            if let Some(c) = self.close_when_answered.take() {
                self.close(c.0, &c.1);
            }
        }
    }

    /// Sends a WebSocket ping.
    pub fn ping(&mut self, now_ms: u64) {
        wsframe::write_control(&mut self.out, wsread::OP_PING, &[]);
        self.awaiting_pong = true;
        self.last_ping_ms = now_ms;
        self.signal();
    }

    /// Drops the socket without a close frame.
    pub fn terminate(&mut self) {
        self.phase = Phase::Closing;
        self.end = Some(End::Now);
        self.signal();
    }

    /// Writes as much of the outbox as the socket takes. `Ok(true)` when everything was sent.
    pub fn flush_socket(&mut self) -> io::Result<bool> {
        if self.tls.is_some() {
            return self.flush_sealed();
        }
        if !send_queued(self.fd, &mut self.out, &mut self.out_pos)? {
            return Ok(false);
        }
        // Give back memory after a burst; [`Client::trim`] frees the rest once idle.
        if self.out.capacity() > 64 * 1024 {
            self.out = Vec::new();
        }
        Ok(true)
    }

    /// [`Client::flush_socket`] on a TLS connection: sealed bytes first, then the frames
    /// waiting to be sealed, a bounded piece at a time (so a large backlog is not sealed
    /// into a second copy of itself while the socket is full).
    fn flush_sealed(&mut self) -> io::Result<bool> {
        const SEAL_STEP: usize = 64 * 1024;
        if self.tls.as_ref().is_some_and(|t| t.near_limit()) && self.end.is_none() {
            // Re-keying is not implemented; a clean close (sealed below, with what is
            // queued ahead of it) lets the client reconnect.
            self.close(1012, "TLS record limit reached; reconnect");
        }
        let Some(t) = self.tls.as_mut() else {
            return Ok(true);
        };
        loop {
            if !t.flush(self.fd)? {
                self.compact();
                return Ok(false);
            }
            if self.out_pos == self.out.len() {
                break;
            }
            let end = self.out.len().min(self.out_pos + SEAL_STEP);
            t.seal(&[&self.out[self.out_pos..end]])?;
            self.out_pos = end;
        }
        self.out.clear();
        self.out_pos = 0;
        if self.out.capacity() > 64 * 1024 {
            self.out = Vec::new();
        }
        Ok(true)
    }

    /// Frees the outbox of a connection with nothing to send, so idle connections hold no
    /// write buffer (called by the shard's housekeeping timer, a few times a second).
    pub fn trim(&mut self) {
        if self.unsent() == 0 && self.out.capacity() > 0 {
            self.out = Vec::new();
            self.out_pos = 0;
        }
        if let Some(t) = self.tls.as_mut() {
            t.trim();
        }
    }

    fn compact(&mut self) {
        compact(&mut self.out, &mut self.out_pos);
    }
}

/// The runtime seam writes from the outbox where the runtime has no writable readiness of its
/// own (glommio).
impl crate::rt::Outbox for Client {
    fn unsent_bytes(&self) -> &[u8] {
        match &self.tls {
            // Sealed bytes only: the task's flush seals before it waits.
            Some(t) => t.unsent_bytes(),
            None => &self.out[self.out_pos.min(self.out.len())..],
        }
    }

    fn sent(&mut self, n: usize) {
        match &mut self.tls {
            Some(t) => t.sent(n),
            None => self.out_pos = (self.out_pos + n).min(self.out.len()),
        }
        crate::metrics::record(|m| m.bytes_out += n as u64);
    }
}

/// Bytes a runtime's read path took while waiting for input (glommio) join the connection's
/// unparsed bytes, ahead of anything its own `recv` reads next.
impl crate::rt::Inbox for Client {
    fn received(&mut self, bytes: &[u8]) {
        match &mut self.tls {
            Some(t) => t.absorb(bytes, &mut self.partial),
            None => self.partial.extend_from_slice(bytes),
        }
        crate::metrics::record(|m| m.bytes_in += bytes.len() as u64);
    }
}
