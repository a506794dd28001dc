//! `gateway.tls`: HTTPS and WSS on the gateway port, on every driver; certificate renewal
//! without dropping connections; hostile TLS input. A rustls client (the same library, but
//! none of ringgate's TLS code) stands in for browsers; `tests/conformance_openclaw.rs` runs
//! the real OpenClaw CLI and node host over `wss://`.

mod common;

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use common::{Server, TempDir, TOKEN};
use rustls::{
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    pki_types::{pem::PemObject, CertificateDer, ServerName, UnixTime},
    ClientConfig, ClientConnection, DigitallySignedStruct, StreamOwned,
};
use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

type Tls = StreamOwned<ClientConnection, TcpStream>;

/// TLS on, and an echo agent that answers in large pieces (a 100 KB turn streams quickly).
const TLS_CONFIG: &str = "{gateway: {tls: {enabled: true}}, \
    ringgate: {agents: {main: {runtime: 'echo', chunkDelayMs: 1, chunkChars: 20000}}}}";

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client that trusts exactly this certificate (and checks names, dates, signatures).
fn trusting(cert: &Path) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(cert).expect("cert"))
        .unwrap();
    Arc::new(
        ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// Accepts any certificate and records the fingerprint of the leaf it was shown (the
/// original's clients pin this way).
#[derive(Debug, Default)]
struct Seen(Mutex<Vec<String>>);

impl ServerCertVerifier for Seen {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.0
            .lock()
            .unwrap()
            .push(ringgate::tls::material::fingerprint(end_entity));
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 is not expected".into()))
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn pinning() -> (Arc<ClientConfig>, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let cfg = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(seen.clone())
        .with_no_client_auth();
    (Arc::new(cfg), seen)
}

fn tls_connect(server: &Server, cfg: &Arc<ClientConfig>, name: &str) -> std::io::Result<Tls> {
    let tcp = TcpStream::connect(server.addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let conn = ClientConnection::new(cfg.clone(), ServerName::try_from(name.to_owned()).unwrap())
        .map_err(std::io::Error::other)?;
    let mut s = StreamOwned::new(conn, tcp);
    // Complete the handshake now, so a refusal shows here.
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(s)
}

/// One HTTP/1.1 request over TLS (`Connection: close`): status code and body.
fn https(server: &Server, cfg: &Arc<ClientConfig>, req: &str) -> (u16, String) {
    let mut s = tls_connect(server, cfg, "localhost").expect("tls");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_owned())
        .unwrap_or_default();
    (code, body)
}

fn get(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    )
}

/// A WebSocket client over TLS that has completed `connect` (hello-ok).
struct Wss {
    ws: WebSocket<Tls>,
    next: u64,
}

impl Wss {
    fn open(server: &Server, cfg: &Arc<ClientConfig>) -> Wss {
        let s = tls_connect(server, cfg, "localhost").expect("tls");
        let url = format!("wss://localhost:{}/", server.addr.port());
        let (mut ws, resp) = tungstenite::client::client(url, s).expect("websocket upgrade");
        assert_eq!(resp.status().as_u16(), 101);
        let challenge = read_json(&mut ws);
        assert_eq!(challenge["event"], "connect.challenge", "{challenge}");
        let mut w = Wss { ws, next: 1 };
        let hello = w.call("connect", common::connect_params());
        assert_eq!(hello["type"], "hello-ok", "{hello}");
        w
    }

    /// A request's `payload` (panics on an error response).
    fn call(&mut self, method: &str, params: Value) -> Value {
        let res = self.request(method, params);
        assert_eq!(res["ok"], true, "{method}: {res}");
        res["payload"].clone()
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = format!("r{}", self.next);
        self.send(&json!({"type": "req", "id": id, "method": method, "params": params}));
        loop {
            let v = read_json(&mut self.ws);
            if v["type"] == "res" && v["id"] == id.as_str() {
                return v;
            }
        }
    }

    fn send(&mut self, v: &Value) {
        self.ws.send(Message::text(v.to_string())).expect("send");
    }

    /// Events until one matches `want` (within 20 s).
    fn wait_event(&mut self, want: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            assert!(Instant::now() < deadline, "event never came");
            let v = read_json(&mut self.ws);
            if v["type"] == "event" && want(&v) {
                return v;
            }
        }
    }
}

fn read_json(ws: &mut WebSocket<Tls>) -> Value {
    loop {
        match ws.read().expect("read frame") {
            Message::Text(t) => return serde_json::from_str(t.as_str()).expect("json frame"),
            Message::Close(c) => panic!("closed: {c:?}"),
            _ => {}
        }
    }
}

fn cert_of(state: &Path) -> PathBuf {
    state.join("gateway/tls/gateway-cert.pem")
}

/// A TLS gateway with this config (JSON5), keeping its state in `state`.
fn start_config(state: &TempDir, config: &str) -> Server {
    Server::opts()
        .config(config)
        .state_dir(state.path())
        .start()
}

fn start(state: &TempDir, driver: Option<&str>) -> Server {
    let mut opts = Server::opts().config(TLS_CONFIG).state_dir(state.path());
    if let Some(d) = driver {
        opts = opts.arg("--driver").arg(d);
    }
    opts.start()
}

/// What every driver must do over TLS: the probes and the Control UI over HTTPS, a WSS client
/// through connect, a request with a large frame each way (several records), a streamed chat
/// turn (events sealed on the fan-out path), and the plain-HTTP and TLS 1.2 refusals.
fn serves_https_and_wss(driver: Option<&str>) {
    let state = TempDir::new("tls-state");
    let server = start(&state, driver);
    assert_eq!(server.scheme(), "wss");
    let cert = cert_of(state.path());
    let der = CertificateDer::from_pem_file(&cert).unwrap();
    assert_eq!(
        server.tls_fingerprint().as_deref(),
        Some(ringgate::tls::material::fingerprint(&der).as_str()),
        "the printed fingerprint is the certificate's"
    );
    let trust = trusting(&cert);

    let (code, body) = https(&server, &trust, &get("/healthz"));
    assert_eq!(
        (code, body.as_str()),
        (200, r#"{"ok":true,"status":"live"}"#)
    );
    // The same certificate names 127.0.0.1.
    let s = tls_connect(&server, &trust, "127.0.0.1");
    assert!(s.is_ok(), "{s:?}", s = s.err());

    let mut c = Wss::open(&server, &trust);
    let health = c.call("health", json!({}));
    assert_eq!(health["ok"], true, "{health}");
    // 100 KB of message in (7 records), the transcript with it out.
    let big = "x".repeat(100_000);
    let sent = c.call(
        "chat.send",
        json!({"sessionKey": "tls", "message": big, "idempotencyKey": "tls-1"}),
    );
    let run = sent["runId"].as_str().expect("runId").to_owned();
    let fin = c.wait_event(|v| {
        v["event"] == "chat"
            && v["payload"]["runId"] == run.as_str()
            && v["payload"]["state"] == "final"
    });
    let text = fin["payload"]["message"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(
        text.starts_with("echo: xxx"),
        "{}",
        &text[..text.len().min(80)]
    );
    let history = c.call("chat.history", json!({"sessionKey": "tls"}));
    // The user's message comes back whole (its content is the plain string).
    let first = &history["messages"][0]["content"];
    assert_eq!(first.as_str().map(str::len), Some(100_000));

    // Plain HTTP to the TLS port is told what to use, in plain text.
    let mut plain = TcpStream::connect(server.addr).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = plain.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("use https:// or wss://"), "{answer}");

    // TLS 1.2 is refused (the original accepts TLS 1.3 only).
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der).unwrap();
    let tls12 = Arc::new(
        ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let refused = tls_connect(&server, &tls12, "localhost");
    assert!(refused.is_err(), "TLS 1.2 was accepted");

    // The connection from before is unharmed by all of that.
    assert_eq!(c.call("health", json!({}))["ok"], true);
    let (code, metrics) = https(&server, &trust, &get("/metrics"));
    assert_eq!(code, 200);
    let count = |outcome: &str| -> u64 {
        metrics
            .lines()
            .filter(|l| {
                l.starts_with("ringgate_tls_handshakes_total")
                    && l.contains(&format!("outcome=\"{outcome}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    // The first handshake is full; the client's later ones resume with its ticket, on
    // whichever shard they land (the ticket key is shared).
    assert!(count("full") >= 1, "{metrics}");
    assert!(count("resumed") >= 1, "{metrics}");
    assert!(count("full") + count("resumed") >= 4, "{metrics}");
    assert_eq!(count("plain_http"), 1, "{metrics}");
    assert!(count("failed") >= 1, "{metrics}");
}

#[test]
fn https_and_wss_on_the_default_driver() {
    serves_https_and_wss(None);
}

#[test]
fn https_and_wss_on_epoll() {
    serves_https_and_wss(Some("epoll"));
}

#[test]
fn https_and_wss_on_glommio() {
    serves_https_and_wss(Some("glommio"));
}

#[test]
fn a_generated_pair_is_kept_private_and_reused() {
    use std::os::unix::fs::PermissionsExt;
    let state = TempDir::new("tls-keep");
    let first = start(&state, None).tls_fingerprint();
    let key = state.path().join("gateway/tls/gateway-key.pem");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // A restart serves the same pair.
    assert_eq!(start(&state, None).tls_fingerprint(), first);
    // A lost certificate with its key still there is an error, not a new identity.
    std::fs::remove_file(cert_of(state.path())).unwrap();
    let out = std::process::Command::new(common::bin())
        .args(["run", "--port", "0", "--token", TOKEN, "--config"])
        .arg(state.path().join("config.json5"))
        .arg("--state-dir")
        .arg(state.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cert/key missing"), "{err}");
}

/// Replacing the files renews the certificate for new connections without dropping the
/// established ones; a broken replacement keeps the last good pair serving.
#[test]
fn a_renewed_certificate_serves_new_connections_and_keeps_old_ones() {
    let state = TempDir::new("tls-renew");
    let server = start(&state, None);
    let cert = cert_of(state.path());
    let key = state.path().join("gateway/tls/gateway-key.pem");
    let old = server.tls_fingerprint().unwrap();
    let mut before = Wss::open(&server, &trusting(&cert));

    // Renew: a new pair, moved into place (key first, as a renewal script would).
    let next = TempDir::new("tls-next");
    let (ncert, nkey) = (next.path().join("c.pem"), next.path().join("k.pem"));
    ringgate::tls::material::generate(&ncert, &nkey).unwrap();
    std::fs::rename(&nkey, &key).unwrap();
    std::fs::rename(&ncert, &cert).unwrap();
    let new = ringgate::tls::material::fingerprint(&CertificateDer::from_pem_file(&cert).unwrap());
    assert_ne!(new, old);
    let shown = wait_for_fingerprint(&server, &new);
    assert_eq!(shown, new);
    // The connection made before the renewal still works, on its old keys.
    assert_eq!(before.call("health", json!({}))["ok"], true);
    let mut after = Wss::open(&server, &trusting(&cert));
    assert_eq!(after.call("health", json!({}))["ok"], true);

    // A certificate that is not PEM, then a key of another certificate: both refused, the
    // last good pair keeps serving.
    std::fs::write(&cert, "not a certificate\n").unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    let other = TempDir::new("tls-other");
    let (ocert, okey) = (other.path().join("c.pem"), other.path().join("k.pem"));
    ringgate::tls::material::generate(&ocert, &okey).unwrap();
    std::fs::copy(&ocert, &cert).unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    let (cfg, seen) = pinning();
    tls_connect(&server, &cfg, "localhost").expect("still serving");
    assert_eq!(seen.0.lock().unwrap().last(), Some(&new));
    let log = server.stderr();
    assert!(
        log.matches("gateway TLS renewal refused").count() >= 2,
        "{log}"
    );
    assert!(
        log.contains("renewed without restarting listeners"),
        "{log}"
    );
    assert_eq!(before.call("health", json!({}))["ok"], true);
}

/// Connects (accepting any certificate) until the server shows `want`; returns the last seen.
fn wait_for_fingerprint(server: &Server, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (cfg, seen) = pinning();
        let _ = tls_connect(server, &cfg, "localhost");
        let got = seen.0.lock().unwrap().last().cloned().unwrap_or_default();
        if got == want || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Hostile TLS: junk instead of a hello, a record longer than TLS allows, a stalled
/// handshake, a tampered record after the handshake, a request in one-byte records. Each
/// costs its own connection only; the gateway goes on serving.
#[test]
fn hostile_tls_input_costs_only_its_connection() {
    let state = TempDir::new("tls-hostile");
    let server = start_config(
        &state,
        "{gateway: {tls: {enabled: true}}, ringgate: {limits: {handshakeTimeoutMs: 1500}}}",
    );
    let trust = trusting(&cert_of(state.path()));
    let raw = |bytes: &[u8]| -> Vec<u8> {
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(bytes);
        let mut back = Vec::new();
        let _ = s.read_to_end(&mut back);
        back
    };
    // Binary junk: closed without an HTTP answer.
    let back = raw(&[0x00, 0xff, 0x13, 0x37, 1, 2, 3, 4, 5]);
    assert!(!back.starts_with(b"HTTP"), "{back:?}");
    // A handshake record announcing 65,535 bytes.
    raw(&[22, 3, 1, 0xff, 0xff, 1, 0, 0]);
    // A stalled handshake is closed at the handshake timeout.
    let t0 = Instant::now();
    raw(&[22, 3, 1, 0, 200, 1]);
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());

    // After a good handshake: a record that fails authentication gets an alert and a close.
    let mut s = tls_connect(&server, &trust, "localhost").unwrap();
    let mut junk = vec![23u8, 3, 3, 0, 40];
    junk.extend_from_slice(&[0x5a; 40]);
    s.sock.write_all(&junk).unwrap();
    let mut back = Vec::new();
    let _ = s.sock.read_to_end(&mut back);
    assert_eq!(
        back.first(),
        Some(&23),
        "expected an (encrypted) alert record: {back:?}"
    );

    // A request in one-byte records (rustls seals each write as a record of its own):
    // reassembled and answered. (A run of records without data is refused past 32: unit
    // test `a_run_of_empty_records_is_bounded`.)
    let mut s = tls_connect(&server, &trust, "localhost").unwrap();
    for b in get("/healthz").as_bytes() {
        s.conn.writer().write_all(&[*b]).unwrap();
    }
    s.flush().unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");

    // And the gateway serves on.
    let mut c = Wss::open(&server, &trust);
    assert_eq!(c.call("health", json!({}))["ok"], true);
    let (code, metrics) = https(&server, &trust, &get("/metrics"));
    assert_eq!(code, 200);
    assert!(metrics.contains("outcome=\"failed\""), "{metrics}");
}

/// Over the per-IP cap of unauthenticated sockets, a TLS socket is refused before its
/// handshake costs anything: a plain-text fatal alert, which the client reports.
#[test]
fn the_per_ip_cap_refuses_before_the_handshake() {
    let state = TempDir::new("tls-cap");
    let server = start_config(
        &state,
        "{gateway: {tls: {enabled: true}}, ringgate: {limits: {maxPreauthPerIp: 1}}}",
    );
    let trust = trusting(&cert_of(state.path()));
    // One socket that never speaks holds the IP's only slot.
    let _held = TcpStream::connect(server.addr).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let t0 = Instant::now();
    let err = tls_connect(&server, &trust, "localhost").expect_err("admitted over the cap");
    assert!(err.to_string().contains("InternalError"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(2));
    drop(_held);
    std::thread::sleep(Duration::from_millis(300));
    let mut c = Wss::open(&server, &trust);
    assert_eq!(c.call("health", json!({}))["ok"], true);
}
