use std::{
    collections::HashMap,
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    time::Instant,
};

use crossbeam::channel::{bounded, unbounded, Receiver};
use hmac::Mac;
use serde_json::{json, Value};

use super::{
    delivery::{backoff, retryable_status},
    inbound::{to_hex, HmacSha256},
    *,
};
use crate::{
    channels::{report_to, DeliveryOutcome, DeliveryReport},
    config::ConfigError,
};

const SECRET: &str = "0123456789abcdef-test-secret";
const WAIT: Duration = Duration::from_secs(10);

fn account(url: &str) -> WebhookAccountConfig {
    WebhookAccountConfig {
        url: Some(url.into()),
        secret: Some(Secret::new(SECRET)),
        max_attempts: 3,
        backoff_ms: 5,
        max_backoff_ms: 20,
        timeout_ms: 2_000,
        ..WebhookAccountConfig::new(DEFAULT_ACCOUNT_ID)
    }
}

fn channel(acc: WebhookAccountConfig, workers: usize, queue_size: usize) -> WebhookChannel {
    WebhookChannel::new(WebhookConfig {
        accounts: vec![acc],
        queue_size,
        workers,
    })
    .unwrap()
}

fn message(text: &str) -> OutboundMessage {
    OutboundMessage {
        to: "user-1".into(),
        text: text.into(),
        session_key: Some("main".into()),
        ..Default::default()
    }
}

// --- signatures --------------------------------------------------------------------------------

#[test]
fn signature_roundtrip_tamper_and_replay_window() {
    let body = br#"{"text":"hi","from":"u"}"#;
    let now = 1_700_000_000_000;
    let sig = sign(SECRET.as_bytes(), now, body);
    assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64, "{sig}");
    let ts = now.to_string();
    let verify = |ts: &str, sig: &str, body: &[u8], at: u64| {
        verify_signature(SECRET.as_bytes(), ts, sig, body, at, 300_000)
    };
    assert_eq!(verify(&ts, &sig, body, now + 1000), Ok(now));
    assert_eq!(
        verify(
            &ts,
            &sig.to_uppercase().replace("SHA256=", "sha256="),
            body,
            now
        ),
        Ok(now),
        "hex digits in either case"
    );
    let tampered = br#"{"text":"hI","from":"u"}"#;
    assert_eq!(
        verify(&ts, &sig, tampered, now),
        Err(InboundError::BadSignature)
    );
    // The timestamp is part of the signed input: shifting it breaks the signature.
    assert_eq!(
        verify(&(now + 1).to_string(), &sig, body, now),
        Err(InboundError::BadSignature)
    );
    let other_key = sign(b"another-secret-0123456789", now, body);
    assert_eq!(
        verify(&ts, &other_key, body, now),
        Err(InboundError::BadSignature)
    );
    assert_eq!(
        verify(&ts, &sig, body, now + 300_001),
        Err(InboundError::Stale {
            skew_ms: 300_001,
            window_ms: 300_000
        })
    );
    assert!(matches!(
        verify(&ts, &sig, body, now - 400_000),
        Err(InboundError::Stale { .. })
    ));
    assert_eq!(
        verify("yesterday", &sig, body, now),
        Err(InboundError::BadTimestamp)
    );
    for bad in [
        &sig[7..],
        "sha256=abc",
        "sha1=00",
        &format!("{}zz", &sig[..69]),
    ] {
        assert_eq!(
            verify(&ts, bad, body, now),
            Err(InboundError::MalformedSignature),
            "{bad}"
        );
    }
}

#[test]
fn signature_matches_an_independent_hmac() {
    // RFC 4231 test case 2, with the "<timestamp>." prefix folded into the data.
    let mut m = HmacSha256::new_from_slice(b"Jefe").unwrap();
    m.update(b"what do ya want for nothing?");
    let expected = to_hex(&m.finalize().into_bytes());
    assert_eq!(
        expected,
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    let mut m = HmacSha256::new_from_slice(b"k").unwrap();
    m.update(b"42.body");
    assert_eq!(
        sign(b"k", 42, b"body"),
        format!("sha256={}", to_hex(&m.finalize().into_bytes()))
    );
}

// --- inbound -----------------------------------------------------------------------------------

fn signed(body: &[u8], ts: u64) -> (String, String) {
    (ts.to_string(), sign(SECRET.as_bytes(), ts, body))
}

#[test]
fn inbound_verify_then_parse() {
    let acc = account("http://127.0.0.1:9");
    let now = 1_700_000_000_000;
    let check = |body: &[u8]| {
        let (ts, sig) = signed(body, now);
        let h = InboundHeaders {
            timestamp: Some(&ts),
            signature: Some(&sig),
        };
        verify_inbound(&acc, &h, body, now)
    };
    let m = check(br#"{"text":"hello","from":"alice","messageId":"m1"}"#).unwrap();
    assert_eq!(
        m,
        InboundMessage {
            account_id: "default".into(),
            from: "alice".into(),
            text: "hello".into(),
            session_key: "main".into(),
            message_id: Some("m1".into()),
            timestamp_ms: now,
        }
    );
    let m = check(br#"{"text":"x","from":"a","sessionKey":"work"}"#).unwrap();
    assert_eq!(m.session_key, "work");

    let err = |body: &[u8]| check(body).unwrap_err();
    let e = err(b"{not json");
    assert!(
        matches!(e, InboundError::BadJson(_)) && e.http_status() == 400,
        "{e}"
    );
    let e = err(br#"{"from":"a"}"#);
    assert!(e.to_string().contains("missing field `text`"), "{e}");
    let e = err(br#"{"text":"x","from":"a","sesionKey":"k"}"#);
    assert!(e.to_string().contains("unknown field `sesionKey`"), "{e}");
    let e = err(br#"{"text":"  ","from":"a"}"#);
    assert_eq!(e.to_string(), "invalid message: `text` must not be empty");
    let e = err(br#"{"text":"x","from":"a","sessionKey":""}"#);
    assert_eq!(e.http_status(), 400);
    let e = err(br#"{"text":5,"from":"a"}"#);
    assert!(matches!(e, InboundError::Invalid(_)), "{e}");
}

#[test]
fn inbound_refusals_map_to_http_statuses() {
    let mut acc = account("http://127.0.0.1:9");
    acc.max_inbound_bytes = 1024;
    let now = now_ms();
    let body = br#"{"text":"hi","from":"a"}"#;
    let (ts, sig) = signed(body, now);
    let headers = InboundHeaders {
        timestamp: Some(&ts),
        signature: Some(&sig),
    };
    let big = vec![b' '; 1025];
    let e = verify_inbound(&acc, &headers, &big, now).unwrap_err();
    assert_eq!(
        (e.http_status(), e.to_string().as_str()),
        (413, "body is 1025 bytes, over the 1024-byte limit")
    );
    let no_sig = InboundHeaders {
        timestamp: Some(&ts),
        signature: None,
    };
    let e = verify_inbound(&acc, &no_sig, body, now).unwrap_err();
    assert_eq!(e, InboundError::MissingHeader("X-Ringgate-Signature"));
    assert_eq!(e.http_status(), 401);
    let e = verify_inbound(&acc, &headers, b"{}", now).unwrap_err();
    assert_eq!(
        (e.clone(), e.http_status()),
        (InboundError::BadSignature, 401)
    );

    let ch = channel(acc, 1, 4);
    assert_eq!(ch.receive("default", &headers, body).unwrap().text, "hi");
    assert_eq!(ch.accounts()[0].counters.received, 1);
    assert!(ch.accounts()[0].last_inbound_at.is_some());
    let e = ch.receive("nope", &headers, body).unwrap_err();
    assert_eq!(e.http_status(), 404);
    ch.stop(None).unwrap();
    assert_eq!(
        ch.receive("default", &headers, body)
            .unwrap_err()
            .http_status(),
        503
    );
    assert_eq!(ch.accounts()[0].counters.received, 1);
}

// --- config ------------------------------------------------------------------------------------

const PATH: &str = "ringgate.channels.webhook";

fn parse(v: Value) -> Result<WebhookConfig, ConfigError> {
    parse_config(&v, PATH)
}

#[test]
fn config_defaults_and_accounts_inherit() {
    let c = parse(json!({"url": "https://x.test/hook", "secret": SECRET})).unwrap();
    assert_eq!(
        (c.queue_size, c.workers),
        (DEFAULT_QUEUE_SIZE, DEFAULT_WORKERS)
    );
    let [a] = c.accounts.as_slice() else {
        panic!("{c:?}")
    };
    assert_eq!(a.account_id, "default");
    assert_eq!(
        (
            a.max_attempts,
            a.backoff_ms,
            a.timeout_ms,
            a.session_key.as_str()
        ),
        (5, 500, 10_000, "main")
    );
    assert!(a.enabled && a.configured());
    assert!(
        !format!("{a:?}").contains(SECRET),
        "Debug must not print the secret"
    );

    let c = parse(json!({
        "secret": SECRET, "maxAttempts": 2, "workers": 1,
        "accounts": {"ops": {"url": "http://ops.test/h", "name": "Ops"}, "inbox": {"sessionKey": "inbox"}}
    }))
    .unwrap();
    let ids: Vec<_> = c.accounts.iter().map(|a| a.account_id.as_str()).collect();
    assert_eq!(
        ids,
        ["ops", "inbox"],
        "no top-level url: no default account"
    );
    assert_eq!(c.accounts[0].max_attempts, 2);
    assert_eq!(c.accounts[0].name.as_deref(), Some("Ops"));
    assert!(c.accounts[0].configured());
    assert!(!c.accounts[1].configured(), "inbound-only account");
    assert_eq!(c.accounts[1].session_key, "inbox");
    let ch = WebhookChannel::new(c).unwrap();
    assert_eq!(ch.default_account_id(), "ops");

    // `secretEnv` reads the variable at load. PATH stands in for a secret variable: setting
    // one here would race with other test threads reading the environment.
    let path = std::env::var("PATH").unwrap_or_default();
    if path.len() >= MIN_SECRET_LEN {
        let c = parse(json!({"url": "http://a.test", "secretEnv": "PATH"})).unwrap();
        assert_eq!(c.accounts[0].secret.as_ref().unwrap().expose(), path);
    }
}

#[test]
fn config_errors_name_the_key() {
    let err = |v: Value| parse(v).unwrap_err().to_string();
    assert_eq!(
        err(json!({"url": "ftp://x"})),
        "invalid value for `ringgate.channels.webhook.url`: must start with http:// or https://"
    );
    assert_eq!(
        err(json!({"secret": "short"})),
        "invalid value for `ringgate.channels.webhook.secret`: must be at least 16 characters"
    );
    assert_eq!(
        err(json!({"accounts": {"ops": {"urll": "http://x"}}})),
        "unknown config key `ringgate.channels.webhook.accounts.ops.urll`"
    );
    assert!(err(json!({"maxAttempts": 0}))
        .contains("`ringgate.channels.webhook.maxAttempts`: must be between 1 and 100"));
    assert!(err(json!({"timeoutMs": "10s"}))
        .contains("`ringgate.channels.webhook.timeoutMs`: must be a non-negative integer"));
    assert!(err(json!({"enabled": "yes"})).contains("`ringgate.channels.webhook.enabled`"));
    assert!(
        err(json!({"accounts": {"a b": {}}})).contains("`ringgate.channels.webhook.accounts.a b`")
    );
    assert_eq!(
        err(json!({"accounts": {"x": {"backoffMs": 1000, "maxBackoffMs": 10}}})),
        "invalid value for `ringgate.channels.webhook.accounts.x.maxBackoffMs`: must be at least backoffMs (1000)"
    );
    assert!(err(json!({"secretEnv": "RINGGATE_TEST_SURELY_UNSET_VAR"})).contains("is not set"));
    assert!(err(json!("nope")).contains("must be an object"));
}

// --- backoff -----------------------------------------------------------------------------------

#[test]
fn backoff_doubles_caps_and_honours_retry_after() {
    let c = WebhookAccountConfig::new("a");
    let ms = |n, ra: Option<u64>| backoff(&c, n, ra.map(Duration::from_secs)).as_millis();
    assert_eq!([ms(1, None), ms(2, None), ms(3, None)], [500, 1000, 2000]);
    assert_eq!(ms(8, None), 60_000);
    assert_eq!(ms(1000, None), 60_000, "no overflow on huge attempt counts");
    assert_eq!(ms(1, Some(5)), 5_000);
    assert_eq!(ms(1, Some(3600)), 60_000, "Retry-After is capped too");
    assert!(retryable_status(500) && retryable_status(503) && retryable_status(429));
    assert!(retryable_status(408) && !retryable_status(400) && !retryable_status(404));
}

// --- delivery against a local receiver ---------------------------------------------------------

/// What the receiver saw in one request.
#[derive(Debug)]
struct Seen {
    headers: HashMap<String, String>,
    body: Vec<u8>,
    /// The signature checked out against the shared secret.
    signature_ok: bool,
}

/// A one-request-per-connection HTTP server on 127.0.0.1:0 answering with `script` in order
/// (200 once it runs out). When `gate` is given, the first answer waits for a message on it.
fn receiver(script: Vec<u16>, gate: Option<Receiver<()>>) -> (String, Receiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = unbounded();
    std::thread::spawn(move || {
        let mut script = script.into_iter();
        let mut gate = gate;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let Some(seen) = read_request(&mut stream) else {
                continue;
            };
            if tx.send(seen).is_err() {
                return;
            }
            if let Some(g) = gate.take() {
                let _ = g.recv_timeout(WAIT);
            }
            let status = script.next().unwrap_or(200);
            let reply = format!(
                "HTTP/1.1 {status} X\r\ncontent-length: 4\r\nconnection: close\r\n\r\nnope"
            );
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    (url, rx)
}

fn read_request(stream: &mut TcpStream) -> Option<Seen> {
    stream.set_read_timeout(Some(WAIT)).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let mut hs = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut hs);
        if let httparse::Status::Complete(head) = req.parse(&buf).ok()? {
            let headers: HashMap<String, String> = req
                .headers
                .iter()
                .map(|h| {
                    let v = String::from_utf8_lossy(h.value).into_owned();
                    (h.name.to_ascii_lowercase(), v)
                })
                .collect();
            let len: usize = headers.get("content-length")?.parse().ok()?;
            while buf.len() < head + len {
                let n = stream.read(&mut chunk).ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = buf[head..head + len].to_vec();
            let signature_ok = verify_signature(
                SECRET.as_bytes(),
                headers.get(HEADER_TIMESTAMP)?,
                headers.get(HEADER_SIGNATURE)?,
                &body,
                now_ms(),
                60_000,
            )
            .is_ok();
            return Some(Seen {
                headers,
                body,
                signature_ok,
            });
        }
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn send(ch: &WebhookChannel, msg: OutboundMessage) -> (String, Receiver<DeliveryReport>) {
    let (tx, rx) = bounded(1);
    let id = ch.send(msg, report_to(tx)).unwrap();
    (id, rx)
}

#[test]
fn retries_5xx_then_delivers_with_one_delivery_id() {
    let (url, seen) = receiver(vec![500, 503, 200], None);
    let mut acc = account(&url);
    acc.max_attempts = 5;
    let ch = channel(acc, 1, 8);
    let mut msg = message("hello");
    msg.run_id = Some("run-1".into());
    let (id, reports) = send(&ch, msg);
    let report = reports.recv_timeout(WAIT).unwrap();
    assert_eq!(
        report,
        DeliveryReport {
            delivery_id: id.clone(),
            channel: "webhook",
            account_id: "default".into(),
            attempts: 3,
            outcome: DeliveryOutcome::Delivered { status: 200 },
        }
    );
    let requests: Vec<Seen> = seen.try_iter().collect();
    assert_eq!(requests.len(), 3);
    for (i, r) in requests.iter().enumerate() {
        assert!(r.signature_ok, "attempt {i} is signed");
        assert_eq!(r.headers[HEADER_DELIVERY], id);
        assert_eq!(r.headers[HEADER_ATTEMPT], (i + 1).to_string());
        assert_eq!(r.headers["content-type"], "application/json");
        assert_eq!(r.body, requests[0].body, "retries resend the same body");
    }
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    let ts = body["ts"].as_u64().unwrap();
    assert_eq!(
        body,
        json!({"id": id, "channel": "webhook", "accountId": "default", "to": "user-1",
               "text": "hello", "sessionKey": "main", "runId": "run-1", "ts": ts})
    );
    let s = &ch.accounts()[0];
    assert_eq!(
        (
            s.counters.sent,
            s.counters.retries,
            s.counters.failed,
            s.counters.pending
        ),
        (1, 2, 0, 0)
    );
    assert_eq!(s.connected, Some(true));
    assert!(s.last_outbound_at.is_some());
    assert_eq!(s.last_error.as_deref(), Some("HTTP 503: nope"));
}

#[test]
fn client_errors_are_not_retried() {
    let (url, seen) = receiver(vec![400], None);
    let ch = channel(account(&url), 1, 8);
    let mut msg = message("x");
    msg.delivery_id = Some("idem-42".into());
    let (id, reports) = send(&ch, msg);
    assert_eq!(id, "idem-42", "caller-chosen delivery ids are kept");
    let r = reports.recv_timeout(WAIT).unwrap();
    assert_eq!(r.attempts, 1);
    assert_eq!(
        r.outcome,
        DeliveryOutcome::Failed {
            error: "HTTP 400: nope".into(),
            status: Some(400)
        }
    );
    assert_eq!(seen.try_iter().count(), 1);
    let s = &ch.accounts()[0];
    assert_eq!((s.counters.failed, s.counters.retries), (1, 0));
    assert_eq!(s.connected, Some(false));
}

#[test]
fn gives_up_after_max_attempts() {
    let (url, seen) = receiver(vec![500, 429, 502], None);
    let ch = channel(account(&url), 1, 8);
    let (_, reports) = send(&ch, message("x"));
    let r = reports.recv_timeout(WAIT).unwrap();
    assert_eq!(r.attempts, 3);
    assert_eq!(
        r.outcome,
        DeliveryOutcome::Failed {
            error: "HTTP 502: nope".into(),
            status: Some(502)
        }
    );
    assert_eq!(seen.try_iter().count(), 3);
    assert_eq!(ch.accounts()[0].counters.retries, 2);
    assert_eq!(ch.status()["lastError"], "HTTP 502: nope");
}

#[test]
fn connection_errors_are_retried_then_reported() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let ch = channel(account(&format!("http://127.0.0.1:{port}/hook")), 1, 8);
    let (_, reports) = send(&ch, message("x"));
    let r = reports.recv_timeout(WAIT).unwrap();
    assert_eq!(r.attempts, 3);
    let DeliveryOutcome::Failed { error, status } = &r.outcome else {
        panic!("{r:?}")
    };
    assert_eq!(*status, None);
    assert!(error.starts_with("Connection Failed"), "{error}");
    assert!(!error.contains("127.0.0.1"), "no URL in errors: {error}");
}

#[test]
fn full_queue_is_refused_without_blocking() {
    let (release, gate) = bounded(1);
    let (url, seen) = receiver(vec![200, 200, 200], Some(gate));
    let ch = channel(account(&url), 1, 1);
    let (_, first) = send(&ch, message("1"));
    // The one worker is now held inside the first POST; the queue has room for one more.
    seen.recv_timeout(WAIT).unwrap();
    let (_, second) = send(&ch, message("2"));
    let (tx, third) = bounded(1);
    assert_eq!(
        ch.send(message("3"), report_to(tx)),
        Err(ChannelError::QueueFull)
    );
    assert_eq!(ch.accounts()[0].counters.pending, 2);
    release.send(()).unwrap();
    assert!(first.recv_timeout(WAIT).unwrap().is_delivered());
    assert!(second.recv_timeout(WAIT).unwrap().is_delivered());
    assert!(
        third.recv_timeout(Duration::from_millis(50)).is_err(),
        "refused sends never report"
    );
    assert_eq!(ch.accounts()[0].counters.pending, 0);
}

#[test]
fn refusals_before_queueing() {
    let (url, _seen) = receiver(vec![], None);
    let ch = channel(account(&url), 1, 4);
    let noop = || -> ReportFn { Box::new(|_| {}) };
    let mut msg = message("x");
    msg.account_id = Some("other".into());
    let e = ch.send(msg, noop()).unwrap_err();
    assert_eq!(
        (e.code(), e.to_string().as_str()),
        ("INVALID_REQUEST", "unknown account `other`")
    );
    let mut msg = message("x");
    msg.delivery_id = Some("has space".into());
    assert!(matches!(
        ch.send(msg, noop()),
        Err(ChannelError::InvalidMessage(_))
    ));
    assert!(matches!(
        ch.send(message(""), noop()),
        Err(ChannelError::InvalidMessage(_))
    ));

    ch.stop(Some("default")).unwrap();
    assert_eq!(
        ch.send(message("x"), noop()),
        Err(ChannelError::NotRunning("default".into()))
    );
    let s = &ch.accounts()[0];
    assert!(!s.running && s.last_stop_at.is_some());
    ch.start(None).unwrap();
    assert!(ch.accounts()[0].running);

    let mut inbound_only = account(&url);
    inbound_only.url = None;
    let ch = channel(inbound_only, 1, 4);
    assert_eq!(
        ch.send(message("x"), noop()),
        Err(ChannelError::NotConfigured {
            account: "default".into(),
            missing: "url"
        })
    );
    let mut disabled = account(&url);
    disabled.enabled = false;
    let ch = channel(disabled, 1, 4);
    assert_eq!(
        ch.send(message("x"), noop()),
        Err(ChannelError::Disabled("default".into()))
    );
    assert_eq!(
        ch.start(Some("default")),
        Err(ChannelError::Disabled("default".into()))
    );
    assert!(!ch.accounts()[0].running);
}

#[test]
fn drop_fails_waiting_retries_with_a_report() {
    let (url, seen) = receiver(vec![500], None);
    let mut acc = account(&url);
    acc.backoff_ms = 60_000;
    acc.max_backoff_ms = 60_000;
    let ch = channel(acc, 1, 4);
    let (_, reports) = send(&ch, message("x"));
    seen.recv_timeout(WAIT).unwrap();
    // Wait until the failed attempt is parked as a retry, then shut down.
    let parked = Instant::now();
    while ch.accounts()[0].counters.retries == 0 {
        assert!(parked.elapsed() < WAIT);
        std::thread::sleep(Duration::from_millis(1));
    }
    let started = Instant::now();
    drop(ch);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown does not wait out the backoff"
    );
    let r = reports.recv_timeout(WAIT).unwrap();
    assert_eq!(
        (r.attempts, r.outcome),
        (
            1,
            DeliveryOutcome::Failed {
                error: "channel shut down".into(),
                status: None
            }
        )
    );
}
