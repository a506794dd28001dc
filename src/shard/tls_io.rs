//! The socket IO of a TLS connection: the handshake, the HTTP phase ([`Sock`]: plain or
//! TLS, the same calls), and an upgraded connection's record protection ([`ClientTls`]).
//!
//! Decisions live in [`crate::tls`] (handshake steps, record sealing and opening); this module
//! only moves bytes between them and the descriptor.

use std::{cell::RefCell, io, os::fd::RawFd, time::Instant};

use crate::{
    rt::Stream as TcpStream,
    tls::{
        handshake::{Handshake, Step},
        record::{alert, RecordError, Records},
        Acceptor,
    },
};

use super::conn::{recv_some, write_all};

/// What a plain-HTTP request to the TLS port is told (nginx says much the same).
const PLAIN_ON_TLS_PORT: &str = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: 74\r\n\r\nThis port speaks TLS: use https:// or wss:// (gateway.tls.enabled is on).\n";

/// Why a TLS connection was refused at its handshake (for the log and the metrics label).
pub enum HandshakeEnd {
    /// Plain HTTP to the TLS port (answered 400 in plain text).
    PlainHttp,
    /// The peer went away or the handshake timed out.
    Gone,
    /// The handshake failed (bad hello, no shared cipher, the client refused our certificate).
    Failed(String),
}

/// A connection's socket while it speaks HTTP.
pub struct Sock<'a> {
    pub stream: &'a TcpStream,
    tls: Option<RefCell<TlsIo>>,
}

struct TlsIo {
    records: Records,
    /// Ciphertext of an incomplete record.
    cipher: Vec<u8>,
    /// Decrypted bytes not yet handed to the reader.
    plain: Vec<u8>,
    closed: bool,
    /// Handshake bytes (the session ticket) sent ahead of the first write.
    unsent: Vec<u8>,
}

impl<'a> Sock<'a> {
    pub fn plain(stream: &'a TcpStream) -> Sock<'a> {
        Sock { stream, tls: None }
    }

    /// Runs the TLS handshake (bounded by `deadline`).
    pub async fn accept_tls(
        stream: &'a TcpStream,
        acceptor: &Acceptor,
        deadline: Instant,
    ) -> Result<(Sock<'a>, bool), HandshakeEnd> {
        let mut hs = Handshake::new(acceptor.config.clone())
            .map_err(|e| HandshakeEnd::Failed(e.to_string()))?;
        let mut chunk = vec![0u8; 8192];
        let mut out = Vec::new();
        loop {
            let n = recv_some(stream, &mut chunk, deadline)
                .await
                .ok_or(HandshakeEnd::Gone)?;
            out.clear();
            let step = hs.feed(&chunk[..n], &mut out);
            // The last flight (the session ticket) waits for the first response, so the
            // two leave in one segment.
            if !out.is_empty() && !matches!(step, Step::Done(_)) {
                let _ = write_all(stream, &out, deadline).await;
            }
            match step {
                Step::More => {}
                Step::NotTls => {
                    let _ = write_all(stream, PLAIN_ON_TLS_PORT.as_bytes(), deadline).await;
                    return Err(HandshakeEnd::PlainHttp);
                }
                Step::Failed(why) => return Err(HandshakeEnd::Failed(why)),
                Step::Done(est) => {
                    let est = *est;
                    let mut io = TlsIo {
                        records: est.records,
                        cipher: Vec::new(),
                        plain: Vec::new(),
                        closed: false,
                        unsent: std::mem::take(&mut out),
                    };
                    if let Err(e) = io.absorb(&est.leftover) {
                        let mut a = std::mem::take(&mut io.unsent);
                        if let Some(d) = e.alert() {
                            io.records.alert(d, &mut a);
                        }
                        let _ = write_all(stream, &a, deadline).await;
                        return Err(HandshakeEnd::Failed(e.to_string()));
                    }
                    return Ok((
                        Sock {
                            stream,
                            tls: Some(RefCell::new(io)),
                        },
                        est.resumed,
                    ));
                }
            }
        }
    }

    pub fn fd(&self) -> RawFd {
        self.stream.fd()
    }

    /// Reads what has arrived (decrypted) into `buf`, waiting until `deadline`; `None` at the
    /// end of the stream, on an error or at the deadline.
    pub async fn recv_some(&self, buf: &mut [u8], deadline: Instant) -> Option<usize> {
        let Some(tls) = &self.tls else {
            return recv_some(self.stream, buf, deadline).await;
        };
        let mut chunk = vec![0u8; 8192];
        loop {
            if Instant::now() >= deadline {
                // A peer that keeps sending records without data is cut off here too.
                return None;
            }
            {
                let mut t = tls.borrow_mut();
                if !t.plain.is_empty() {
                    let n = t.plain.len().min(buf.len());
                    buf[..n].copy_from_slice(&t.plain[..n]);
                    t.plain.drain(..n);
                    return Some(n);
                }
                if t.closed {
                    return None;
                }
            }
            let n = recv_some(self.stream, &mut chunk, deadline).await?;
            let failed = tls.borrow_mut().absorb(&chunk[..n]).err();
            if let Some(e) = failed {
                self.send_alert(e).await;
                return None;
            }
        }
    }

    /// Writes all of `bytes` (sealed, with TLS), waiting for room until `deadline`.
    pub async fn write_all(&self, bytes: &[u8], deadline: Instant) -> io::Result<()> {
        let Some(tls) = &self.tls else {
            return write_all(self.stream, bytes, deadline).await;
        };
        // A bounded piece at a time: a large file is not sealed into one copy of itself.
        for piece in bytes.chunks(64 * 1024) {
            let mut sealed = std::mem::take(&mut tls.borrow_mut().unsent);
            tls.borrow_mut()
                .records
                .seal(&[piece], &mut sealed)
                .map_err(io::Error::other)?;
            write_all(self.stream, &sealed, deadline).await?;
        }
        Ok(())
    }

    /// Ends our side of the stream: TLS `close_notify`, then the TCP half-close.
    pub async fn shutdown_write(&self, deadline: Instant) {
        if let Some(tls) = &self.tls {
            let mut a = std::mem::take(&mut tls.borrow_mut().unsent);
            tls.borrow_mut().records.alert(alert::CLOSE_NOTIFY, &mut a);
            let _ = write_all(self.stream, &a, deadline).await;
        }
        // SAFETY: the fd is the connection's open socket.
        unsafe { libc::shutdown(self.stream.fd(), libc::SHUT_WR) };
    }

    async fn send_alert(&self, e: RecordError) {
        let Some(tls) = &self.tls else { return };
        if let Some(d) = e.alert() {
            // Behind the held ticket: the alert's sequence number follows it.
            let mut a = std::mem::take(&mut tls.borrow_mut().unsent);
            tls.borrow_mut().records.alert(d, &mut a);
            let deadline = Instant::now() + std::time::Duration::from_millis(200);
            let _ = write_all(self.stream, &a, deadline).await;
        }
    }

    /// Hands the record layer over to the upgraded connection, with the bytes already
    /// decrypted and not yet read (WebSocket data that came with the request).
    pub fn into_tls(self) -> Option<(Box<ClientTls>, Vec<u8>)> {
        let t = self.tls?.into_inner();
        Some((
            Box::new(ClientTls {
                records: t.records,
                cipher: t.cipher,
                out: t.unsent,
                out_pos: 0,
                closed: t.closed,
                failed: None,
            }),
            t.plain,
        ))
    }
}

impl TlsIo {
    /// Decrypts `bytes` (after any incomplete record held) into `plain`.
    fn absorb(&mut self, bytes: &[u8]) -> Result<(), RecordError> {
        let mut input = std::mem::take(&mut self.cipher);
        input.extend_from_slice(bytes);
        let o = self.records.open(&mut input, &mut self.plain)?;
        self.closed |= o.closed;
        if !o.closed && o.used < input.len() {
            input.drain(..o.used);
            self.cipher = input;
        }
        Ok(())
    }
}

thread_local! {
    /// Ciphertext read for one connection at a time on this shard (no connection keeps it).
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Ciphertext read per `recv`.
const READ_SPACE: usize = 16 * 1024;

/// An upgraded connection's record protection: what an idle one holds is its two keys (and,
/// only while a record is incomplete or the socket is full, those bytes).
pub struct ClientTls {
    records: Records,
    /// Ciphertext of an incomplete inbound record.
    cipher: Vec<u8>,
    /// Sealed bytes the socket has not taken yet; `out[out_pos..]` is unsent.
    out: Vec<u8>,
    out_pos: usize,
    /// The peer sent `close_notify`: the next read is the end of the stream.
    closed: bool,
    /// A record error seen while bytes were taken in by the runtime (glommio's read path);
    /// reported by the next read.
    failed: Option<RecordError>,
}

impl ClientTls {
    /// Reads and decrypts into `buf`'s end, like a `recv` (`Ok(0)` is the end of the stream;
    /// `WouldBlock` when nothing more can be read now). A record error sends the alert and
    /// is `InvalidData`.
    pub fn receive(&mut self, fd: RawFd, buf: &mut Vec<u8>) -> io::Result<usize> {
        if let Some(e) = self.failed.take() {
            return Err(self.fail(fd, e));
        }
        let before = buf.len();
        loop {
            if self.closed {
                return Ok(buf.len() - before);
            }
            let read = SCRATCH.with(|s| {
                let mut s = s.borrow_mut();
                s.clear();
                s.extend_from_slice(&self.cipher);
                s.reserve(READ_SPACE);
                let r = super::client::recv_into(fd, &mut s);
                if matches!(r, Ok(n) if n > 0) {
                    let opened = self.records.open(&mut s, buf);
                    match opened {
                        Ok(o) => {
                            self.closed = o.closed;
                            self.keep_incomplete(&s[o.used..]);
                        }
                        Err(e) => return Err(e),
                    }
                }
                Ok(r)
            });
            match read {
                Err(e) => return Err(self.fail(fd, e)),
                Ok(Ok(0)) => return Ok(buf.len() - before),
                Ok(Ok(_)) if buf.len() > before => return Ok(buf.len() - before),
                // Part of a record: read on.
                Ok(Ok(_)) => {}
                Ok(Err(e)) if buf.len() > before && e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(buf.len() - before)
                }
                Ok(Err(e)) => return Err(e),
            }
        }
    }

    /// Decrypts bytes the runtime read while waiting (glommio) into `plain`.
    pub fn absorb(&mut self, bytes: &[u8], plain: &mut Vec<u8>) {
        if self.failed.is_some() || self.closed {
            return;
        }
        let mut input = std::mem::take(&mut self.cipher);
        input.extend_from_slice(bytes);
        match self.records.open(&mut input, plain) {
            Ok(o) => {
                self.closed = o.closed;
                self.keep_incomplete(&input[o.used..]);
            }
            Err(e) => self.failed = Some(e),
        }
    }

    fn keep_incomplete(&mut self, rest: &[u8]) {
        if rest.is_empty() {
            self.cipher = Vec::new();
        } else {
            self.cipher = rest.to_vec();
        }
    }

    /// Sends the alert for `e` (best effort) and turns it into the read error.
    fn fail(&mut self, fd: RawFd, e: RecordError) -> io::Error {
        if let Some(d) = e.alert() {
            // Behind what is queued: the alert's sequence number follows it.
            self.records.alert(d, &mut self.out);
            let _ = self.flush(fd);
        }
        io::Error::new(io::ErrorKind::InvalidData, e)
    }

    /// Sealed bytes not yet taken by the socket.
    pub fn unsent(&self) -> usize {
        self.out.len() - self.out_pos
    }

    pub fn unsent_bytes(&self) -> &[u8] {
        &self.out[self.out_pos.min(self.out.len())..]
    }

    pub fn sent(&mut self, n: usize) {
        self.out_pos = (self.out_pos + n).min(self.out.len());
    }

    /// Seals `parts` as one record behind what is queued.
    pub fn seal(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
        self.records
            .seal(parts, &mut self.out)
            .map_err(io::Error::other)
    }

    /// Queues `close_notify`.
    pub fn close_notify(&mut self) {
        self.records.alert(alert::CLOSE_NOTIFY, &mut self.out);
    }

    /// Whether the connection should be closed before its key runs out.
    pub fn near_limit(&self) -> bool {
        self.records.near_limit()
    }

    /// Writes sealed bytes until the socket is full; `Ok(true)` when none are left.
    pub fn flush(&mut self, fd: RawFd) -> io::Result<bool> {
        super::client::send_queued(fd, &mut self.out, &mut self.out_pos)
    }

    /// Frees the send buffer when nothing is waiting in it.
    pub fn trim(&mut self) {
        if self.out_pos >= self.out.len() && self.out.capacity() > 0 {
            self.out = Vec::new();
            self.out_pos = 0;
        }
    }
}
