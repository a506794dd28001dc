//! Minimal client-side WebSocket (RFC 6455) over monoio: HTTP upgrade, masked
//! frames out, unmasked frames in. No extensions, no fragmentation on send.
//! `wss://` runs it over rustls (TLS 1.3 as the gateway serves it; any certificate is
//! accepted: this is a loopback benchmark tool, not a client to trust).

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::FromRawFd;
use std::time::Duration;

use base64::Engine;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Largest frame we accept from a server (hello-ok is a few tens of KiB).
const MAX_FRAME: usize = 64 << 20;

/// Errors, classified so the scenarios can count them by kind.
#[derive(Debug)]
pub enum WsError {
    Connect(io::Error),
    Io(io::Error),
    Eof,
    Http(String),
    Protocol(&'static str),
    Timeout,
}

impl WsError {
    pub fn kind(&self) -> String {
        match self {
            WsError::Connect(e) => format!("connect:{}", errno_name(e)),
            WsError::Io(e) => format!("io:{}", errno_name(e)),
            WsError::Eof => "eof".into(),
            WsError::Http(s) => format!("http:{s}"),
            WsError::Protocol(s) => format!("ws-protocol:{s}"),
            WsError::Timeout => "timeout".into(),
        }
    }
}

fn errno_name(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => "ECONNREFUSED".into(),
        Some(libc::ECONNRESET) => "ECONNRESET".into(),
        Some(libc::EPIPE) => "EPIPE".into(),
        Some(libc::EADDRNOTAVAIL) => "EADDRNOTAVAIL".into(),
        Some(libc::EADDRINUSE) => "EADDRINUSE".into(),
        Some(libc::EMFILE) => "EMFILE".into(),
        Some(libc::ENFILE) => "ENFILE".into(),
        Some(libc::ETIMEDOUT) => "ETIMEDOUT".into(),
        Some(n) => format!("errno{n}"),
        None => format!("{:?}", e.kind()),
    }
}

/// Parsed WS URL: only `ws://IPv4:PORT/path` or `wss://…` (loopback only, enforced by caller).
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddrV4,
    pub host: String,
    pub path: String,
    /// `wss://`: TLS.
    pub tls: bool,
}

static TLS_CONFIG: std::sync::OnceLock<std::sync::Arc<rustls::ClientConfig>> =
    std::sync::OnceLock::new();

/// Sets up the TLS client every `wss://` connection of this process uses. With `resume`, a
/// connection resumes the session of an earlier one (a session ticket; the "resumed" rows);
/// without, every handshake is a full one.
pub fn tls_init(resume: bool) {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    if !resume {
        cfg.resumption = rustls::client::Resumption::disabled();
    } else {
        cfg.resumption = rustls::client::Resumption::in_memory_sessions(65_536);
    }
    let _ = TLS_CONFIG.set(std::sync::Arc::new(cfg));
}

/// Accepts the gateway's certificate whatever it is (signatures are still checked).
#[derive(Debug)]
struct AnyCert(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 is not used".into()))
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, String> {
        let (tls, rest) = match url.strip_prefix("wss://") {
            Some(rest) => (true, rest),
            None => (
                false,
                url.strip_prefix("ws://")
                    .ok_or_else(|| format!("only ws:// and wss:// URLs are supported: {url}"))?,
            ),
        };
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = hostport
            .rsplit_once(':')
            .ok_or_else(|| format!("URL needs an explicit port: {url}"))?;
        let ip: Ipv4Addr = if host == "localhost" {
            Ipv4Addr::LOCALHOST
        } else {
            host.parse()
                .map_err(|_| format!("host must be an IPv4 literal: {host}"))?
        };
        if !ip.is_loopback() {
            return Err(format!("refusing non-loopback target {ip}"));
        }
        let port: u16 = port.parse().map_err(|_| format!("bad port {port}"))?;
        Ok(Target {
            addr: SocketAddrV4::new(ip, port),
            host: hostport.to_string(),
            path: path.to_string(),
            tls,
        })
    }
}

/// Options for a raw socket.
#[derive(Clone, Copy, Debug, Default)]
pub struct SockOpts {
    /// Source address to bind (127.0.0.X); None = kernel's choice.
    pub src: Option<Ipv4Addr>,
    /// SO_RCVBUF, if set (used for slow consumers).
    pub rcvbuf: Option<u32>,
    /// Connect here instead of the target's address (another host of a cluster; the
    /// request line and `Host` stay the target's).
    pub addr: Option<SocketAddrV4>,
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// Create a non-blocking TCP socket bound to `opts.src` and start connecting;
/// completes the connect asynchronously (poll for writability + SO_ERROR).
pub async fn tcp_connect(dst: SocketAddrV4, opts: SockOpts) -> io::Result<TcpStream> {
    let std_stream = unsafe {
        let fd = cvt(libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        ))?;
        // From here on the fd is owned by std, so it is closed on error.
        let s = std::net::TcpStream::from_raw_fd(fd);
        let one: libc::c_int = 1;
        let setopt = |level, name, val: libc::c_int| {
            cvt(libc::setsockopt(
                fd,
                level,
                name,
                &val as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            ))
        };
        setopt(libc::IPPROTO_TCP, libc::TCP_NODELAY, one)?;
        if let Some(rb) = opts.rcvbuf {
            setopt(libc::SOL_SOCKET, libc::SO_RCVBUF, rb as libc::c_int)?;
        }
        if let Some(src) = opts.src {
            // Defer the port choice to connect(): the 4-tuple then only has to be
            // unique, so each source IP gets a full ephemeral range per target.
            let _ = setopt(libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT, one);
            let sa = sockaddr(SocketAddrV4::new(src, 0));
            cvt(libc::bind(
                fd,
                &sa as *const libc::sockaddr_in as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            ))?;
        }
        let sa = sockaddr(dst);
        let r = libc::connect(
            fd,
            &sa as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINPROGRESS) {
                return Err(e);
            }
        }
        s
    };
    let stream = TcpStream::from_std(std_stream)?;
    stream.writable(false).await?;
    // SO_ERROR tells whether the connect succeeded.
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
    cvt(unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            &mut err as *mut libc::c_int as *mut libc::c_void,
            &mut len,
        )
    })?;
    if err != 0 {
        return Err(io::Error::from_raw_os_error(err));
    }
    Ok(stream)
}

/// A parsed frame: opcode plus the payload's range inside the read buffer.
/// Valid until the next call that reads from the socket.
#[derive(Clone, Copy, Debug)]
pub struct Frame {
    pub op: u8,
    /// FIN bit (fragmentation is not used by the servers under test).
    #[allow(dead_code)]
    pub fin: bool,
    start: usize,
    end: usize,
}

pub struct Ws {
    stream: TcpStream,
    rbuf: Vec<u8>,
    rpos: usize,
    /// Bytes of a parsed frame to discard before the next parse.
    consumed: usize,
    wbuf: Vec<u8>,
    min_read: usize,
    rng: u32,
    pub bytes_in: u64,
    /// `wss://`: the TLS session (plaintext in `rbuf`/`wbuf`, ciphertext on the socket).
    tls: Option<Box<rustls::ClientConnection>>,
    /// Ciphertext read buffer (TLS only).
    tls_in: Vec<u8>,
}

impl Ws {
    /// Connect and perform the HTTP upgrade. `read_buf` is the initial (and
    /// minimum spare) read buffer size, kept small for idle connections.
    pub async fn connect(
        target: &Target,
        opts: SockOpts,
        read_buf: usize,
        timeout: Duration,
    ) -> Result<Ws, WsError> {
        let stream = match monoio::time::timeout(
            timeout,
            tcp_connect(opts.addr.unwrap_or(target.addr), opts),
        )
        .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(WsError::Connect(e)),
            Err(_) => return Err(WsError::Timeout),
        };
        let mut ws = Ws {
            stream,
            rbuf: Vec::with_capacity(read_buf.max(256)),
            rpos: 0,
            consumed: 0,
            wbuf: Vec::with_capacity(256),
            min_read: read_buf.max(256),
            rng: rand::random::<u32>() | 1,
            bytes_in: 0,
            tls: None,
            tls_in: Vec::new(),
        };
        if target.tls {
            match monoio::time::timeout(timeout, ws.tls_handshake(target)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(WsError::Timeout),
            }
        }
        match monoio::time::timeout(timeout, ws.upgrade(target)).await {
            Ok(r) => r.map(|_| ws),
            Err(_) => Err(WsError::Timeout),
        }
    }

    async fn upgrade(&mut self, target: &Target) -> Result<(), WsError> {
        let key: [u8; 16] = rand::random();
        let key = base64::engine::general_purpose::STANDARD.encode(key);
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\nUser-Agent: ringgate-loadgen\r\n\r\n",
            target.path, target.host, key
        );
        self.wbuf.extend_from_slice(req.as_bytes());
        self.flush().await?;
        loop {
            if let Some(i) = find(&self.rbuf[self.rpos..], b"\r\n\r\n") {
                let head = &self.rbuf[self.rpos..self.rpos + i];
                let line_end = find(head, b"\r\n").unwrap_or(head.len());
                let status = std::str::from_utf8(&head[..line_end]).unwrap_or("");
                let code = status.split(' ').nth(1).unwrap_or("?").to_string();
                if code != "101" {
                    return Err(WsError::Http(code));
                }
                self.rpos += i + 4;
                return Ok(());
            }
            if self.rbuf.len() - self.rpos > 16 * 1024 {
                return Err(WsError::Http("oversized-response".into()));
            }
            self.fill().await?;
        }
    }

    /// The TLS handshake (before the HTTP upgrade).
    async fn tls_handshake(&mut self, target: &Target) -> Result<(), WsError> {
        let cfg = TLS_CONFIG.get().expect("tls_init").clone();
        let name = rustls::pki_types::ServerName::IpAddress(
            std::net::IpAddr::V4(*target.addr.ip()).into(),
        );
        let mut conn =
            rustls::ClientConnection::new(cfg, name).map_err(|_| WsError::Protocol("tls-setup"))?;
        conn.set_buffer_limit(None);
        self.tls = Some(Box::new(conn));
        self.tls_in = Vec::with_capacity(16 * 1024);
        loop {
            self.tls_send().await?;
            if !self.tls.as_ref().unwrap().is_handshaking() {
                return Ok(());
            }
            self.tls_read().await?;
        }
    }

    /// Writes what rustls has to send.
    async fn tls_send(&mut self) -> Result<(), WsError> {
        let tls = self.tls.as_mut().unwrap();
        if !tls.wants_write() {
            return Ok(());
        }
        let mut out = Vec::new();
        while tls.wants_write() {
            tls.write_tls(&mut out).map_err(WsError::Io)?;
        }
        let (res, _) = self.stream.write_all(out).await;
        res.map(|_| ()).map_err(WsError::Io)
    }

    /// Reads ciphertext from the socket and decrypts it (plaintext stays in rustls).
    async fn tls_read(&mut self) -> Result<(), WsError> {
        let mut buf = std::mem::take(&mut self.tls_in);
        buf.clear();
        let (res, buf) = self.stream.read(buf).await;
        self.tls_in = buf;
        match res {
            Ok(0) => return Err(WsError::Eof),
            Ok(_) => {}
            Err(e) => return Err(WsError::Io(e)),
        }
        let tls = self.tls.as_mut().unwrap();
        let mut slice = &self.tls_in[..];
        while !slice.is_empty() {
            tls.read_tls(&mut slice).map_err(WsError::Io)?;
            tls.process_new_packets()
                .map_err(|_| WsError::Protocol("tls"))?;
        }
        Ok(())
    }

    /// [`Ws::fill`] over TLS: decrypted bytes into `rbuf`.
    async fn fill_tls(&mut self) -> Result<(), WsError> {
        use std::io::Read;
        loop {
            let len = self.rbuf.len();
            self.rbuf.resize(len + self.min_read.max(16 * 1024), 0);
            let r = self
                .tls
                .as_mut()
                .unwrap()
                .reader()
                .read(&mut self.rbuf[len..]);
            match r {
                Ok(0) => {
                    self.rbuf.truncate(len);
                    return Err(WsError::Eof);
                }
                Ok(n) => {
                    self.rbuf.truncate(len + n);
                    self.bytes_in += n as u64;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.rbuf.truncate(len),
                Err(e) => {
                    self.rbuf.truncate(len);
                    return Err(WsError::Io(e));
                }
            }
            self.tls_read().await?;
            self.tls_send().await?;
        }
    }

    /// Read more bytes from the socket into `rbuf`.
    async fn fill(&mut self) -> Result<(), WsError> {
        if self.rpos > 0 {
            if self.rpos == self.rbuf.len() {
                self.rbuf.clear();
                // Give memory back after a big frame (idle connections).
                if self.rbuf.capacity() > 4 * self.min_read.max(16 * 1024) {
                    self.rbuf = Vec::with_capacity(self.min_read);
                }
            } else {
                self.rbuf.drain(..self.rpos);
            }
            self.rpos = 0;
        }
        if self.tls.is_some() {
            return self.fill_tls().await;
        }
        let len = self.rbuf.len();
        if self.rbuf.capacity() - len < self.min_read {
            self.rbuf.reserve(self.min_read);
        }
        let cap = self.rbuf.capacity();
        let buf = std::mem::take(&mut self.rbuf);
        let (res, slice) = self.stream.read(buf.slice_mut(len..cap)).await;
        self.rbuf = slice.into_inner();
        match res {
            Ok(0) => Err(WsError::Eof),
            Ok(n) => {
                self.bytes_in += n as u64;
                Ok(())
            }
            Err(e) => Err(WsError::Io(e)),
        }
    }

    /// Try to parse one complete frame from the buffer.
    fn try_parse(&mut self) -> Result<Option<Frame>, WsError> {
        self.rpos += self.consumed;
        self.consumed = 0;
        let b = &self.rbuf[self.rpos..];
        if b.len() < 2 {
            return Ok(None);
        }
        let fin = b[0] & 0x80 != 0;
        let op = b[0] & 0x0f;
        let masked = b[1] & 0x80 != 0;
        let mut len = (b[1] & 0x7f) as usize;
        let mut hdr = 2;
        if len == 126 {
            if b.len() < 4 {
                return Ok(None);
            }
            len = u16::from_be_bytes([b[2], b[3]]) as usize;
            hdr = 4;
        } else if len == 127 {
            if b.len() < 10 {
                return Ok(None);
            }
            let l = u64::from_be_bytes(b[2..10].try_into().unwrap());
            if l > MAX_FRAME as u64 {
                return Err(WsError::Protocol("frame-too-large"));
            }
            len = l as usize;
            hdr = 10;
        }
        let mask_at = hdr;
        if masked {
            hdr += 4;
        }
        if b.len() < hdr + len {
            // Make sure the next read can take the whole frame.
            let need = hdr + len - b.len();
            if self.rbuf.capacity() - self.rbuf.len() < need {
                self.rbuf.reserve(need);
            }
            return Ok(None);
        }
        let start = self.rpos + hdr;
        let end = start + len;
        if masked {
            let m: [u8; 4] = self.rbuf[self.rpos + mask_at..self.rpos + mask_at + 4]
                .try_into()
                .unwrap();
            for (i, x) in self.rbuf[start..end].iter_mut().enumerate() {
                *x ^= m[i & 3];
            }
        }
        self.consumed = hdr + len;
        Ok(Some(Frame {
            op,
            fin,
            start,
            end,
        }))
    }

    /// Next data/close frame. Pings are answered with pongs, pongs ignored.
    pub async fn next(&mut self) -> Result<Frame, WsError> {
        loop {
            if let Some(f) = self.try_parse()? {
                match f.op {
                    OP_PING => {
                        let p = self.payload(&f).to_vec();
                        self.queue(OP_PONG, &p);
                        self.flush().await?;
                    }
                    OP_PONG => {}
                    _ => return Ok(f),
                }
                continue;
            }
            self.fill().await?;
        }
    }

    /// Frame from the buffer only (no socket read); used to drain what is
    /// already received before issuing more writes.
    pub fn next_buffered(&mut self) -> Result<Option<Frame>, WsError> {
        loop {
            match self.try_parse()? {
                Some(f) if f.op == OP_PING => {
                    let p = self.payload(&f).to_vec();
                    self.queue(OP_PONG, &p);
                }
                Some(f) if f.op == OP_PONG => {}
                other => return Ok(other),
            }
        }
    }

    /// Wait until more data has arrived (or error).
    pub async fn read_more(&mut self) -> Result<(), WsError> {
        self.fill().await
    }

    /// Drop consumed bytes and give back read-buffer memory beyond the
    /// configured minimum (call after the large hello-ok).
    pub fn shrink(&mut self) {
        self.rpos += self.consumed;
        self.consumed = 0;
        let rest = self.rbuf[self.rpos..].to_vec();
        let mut v = Vec::with_capacity(self.min_read.max(rest.len()));
        v.extend_from_slice(&rest);
        self.rbuf = v;
        self.rpos = 0;
        self.wbuf = Vec::with_capacity(64);
    }

    pub fn payload(&self, f: &Frame) -> &[u8] {
        &self.rbuf[f.start..f.end]
    }

    /// Queue a masked frame for sending (call `flush`).
    pub fn queue(&mut self, op: u8, payload: &[u8]) {
        let w = &mut self.wbuf;
        w.push(0x80 | op);
        let n = payload.len();
        if n < 126 {
            w.push(0x80 | n as u8);
        } else if n <= 0xffff {
            w.push(0x80 | 126);
            w.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            w.push(0x80 | 127);
            w.extend_from_slice(&(n as u64).to_be_bytes());
        }
        // xorshift32 mask key
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.rng = x;
        let m = x.to_ne_bytes();
        w.extend_from_slice(&m);
        let base = w.len();
        w.extend_from_slice(payload);
        for (i, b) in w[base..].iter_mut().enumerate() {
            *b ^= m[i & 3];
        }
    }

    pub fn queue_text(&mut self, s: &[u8]) {
        self.queue(OP_TEXT, s)
    }

    pub fn queue_close(&mut self, code: u16, reason: &str) {
        let mut p = code.to_be_bytes().to_vec();
        p.extend_from_slice(reason.as_bytes());
        self.queue(OP_CLOSE, &p);
    }

    pub fn pending_write(&self) -> bool {
        !self.wbuf.is_empty()
    }

    pub async fn flush(&mut self) -> Result<(), WsError> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        if let Some(tls) = self.tls.as_mut() {
            use std::io::Write;
            tls.writer().write_all(&self.wbuf).map_err(WsError::Io)?;
            self.wbuf.clear();
            return self.tls_send().await;
        }
        let buf = std::mem::take(&mut self.wbuf);
        let (res, mut buf) = self.stream.write_all(buf).await;
        buf.clear();
        self.wbuf = buf;
        res.map(|_| ()).map_err(WsError::Io)
    }

    /// Polite close: send a close frame, wait (bounded) for the server's
    /// close or EOF, then drop the socket.
    pub async fn close(mut self, wait: Duration) {
        self.queue_close(1000, "");
        if self.flush().await.is_err() {
            return;
        }
        let _ = monoio::time::timeout(wait, async {
            loop {
                match self.next().await {
                    Ok(f) if f.op == OP_CLOSE => break,
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        })
        .await;
        let _ = self.stream.shutdown().await;
    }

    /// Drain the socket for up to `wait`: returns a description of what the
    /// peer did (close frame, EOF, reset) or that it is still open.
    pub async fn probe_state(&mut self, wait: Duration) -> String {
        let r = monoio::time::timeout(wait, async {
            loop {
                match self.next().await {
                    Ok(f) if f.op == OP_CLOSE => {
                        let (code, reason) = close_info(self.payload(&f));
                        return format!("closed {code} \"{reason}\"");
                    }
                    Ok(_) => {}
                    Err(WsError::Eof) => return "eof-without-close-frame".to_string(),
                    Err(e) => return e.kind(),
                }
            }
        })
        .await;
        match r {
            Ok(s) => s,
            Err(_) => "still-open".to_string(),
        }
    }
}

/// (code, reason) from a close frame payload.
pub fn close_info(p: &[u8]) -> (u16, String) {
    if p.len() < 2 {
        return (1005, String::new());
    }
    (
        u16::from_be_bytes([p[0], p[1]]),
        String::from_utf8_lossy(&p[2..]).into_owned(),
    )
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_target() {
        let t = Target::parse("ws://127.0.0.1:18999").unwrap();
        assert_eq!(t.addr.port(), 18999);
        assert_eq!(t.path, "/");
        assert!(Target::parse("ws://10.0.0.1:1/").is_err());
        assert!(Target::parse("wss://127.0.0.1:1/").unwrap().tls);
        assert!(!t.tls);
        assert!(Target::parse("http://127.0.0.1:1/").is_err());
    }

    #[test]
    fn close_payload() {
        let mut p = 1008u16.to_be_bytes().to_vec();
        p.extend_from_slice(b"slow consumer");
        assert_eq!(close_info(&p), (1008, "slow consumer".to_string()));
    }
}
