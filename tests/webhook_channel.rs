//! The built-in webhook channel: `send` delivers signed POSTs to a local receiver with retries
//! and idempotency across shards; failures are reported; signed inbound messages reach their
//! session and the agent's reply goes back out; `channels.status|start|stop`; reload.

mod common;

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    sync::mpsc,
    thread,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use common::*;
use ringgate::channels::webhook::sign;
use serde_json::{json, Value};

const SECRET: &str = "0123456789abcdef-webhook";
const WAIT: Duration = Duration::from_secs(10);

/// One request the receiver got.
#[derive(Debug)]
struct Seen {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// The signature checks out with the shared secret.
    fn signed(&self) -> bool {
        let ts: u64 = self.header("x-ringgate-timestamp").parse().unwrap();
        sign(SECRET.as_bytes(), ts, &self.body) == self.header("x-ringgate-signature")
    }
}

/// A receiver answering with `statuses` in turn (the last one repeats).
fn receiver(statuses: Vec<u16>) -> (String, mpsc::Receiver<Seen>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for (i, s) in l.incoming().enumerate() {
            let Ok(mut s) = s else { continue };
            let Some(seen) = read_request(&mut s) else {
                continue;
            };
            let status = statuses[i.min(statuses.len() - 1)];
            let _ = write!(
                s,
                "HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
            );
            if tx.send(seen).is_err() {
                return;
            }
        }
    });
    (url, rx)
}

fn read_request(s: &mut TcpStream) -> Option<Seen> {
    let mut r = BufReader::new(s.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))?
        .1
        .parse()
        .ok()?;
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Seen { headers, body })
}

fn server(url: &str, extra: &str) -> Server {
    Server::opts()
        .config(&format!(
            r#"{{ringgate: {{
                agents: {{main: {{runtime: "echo", chunkDelayMs: 0}}}},
                channels: {{webhook: {{url: "{url}", secret: "{SECRET}", backoffMs: 20, maxBackoffMs: 40, maxAttempts: 3 {extra}}}}}}}}}"#
        ))
        .start()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// POSTs an inbound message; returns (status, body).
fn post(server: &Server, path: &str, body: &str, secret: &str) -> (u16, Value) {
    let ts = now_ms();
    let sig = sign(secret.as_bytes(), ts, body.as_bytes());
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nX-Ringgate-Timestamp: {ts}\r\nX-Ringgate-Signature: {sig}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[test]
fn send_retries_then_delivers_once_per_idempotency_key() {
    let (url, seen) = receiver(vec![500, 200]);
    let server = server(&url, "");
    let mut a = Client::connect_to_shard(&server, &connect_params(), 0);
    let mut b = Client::connect_to_shard(&server, &connect_params(), 1);
    let p = json!({"to": "user-1", "message": "hello out there", "idempotencyKey": "send-1"});
    let r = a.call("send", Some(p.clone()));
    assert_eq!(
        (r["messageId"].as_str(), r["channel"].as_str()),
        (Some("send-1"), Some("webhook"))
    );
    assert_eq!(r["attempts"], 2);
    let first = seen.recv_timeout(WAIT).unwrap();
    let second = seen.recv_timeout(WAIT).unwrap();
    for s in [&first, &second] {
        assert!(s.signed(), "bad signature: {s:?}");
        assert_eq!(s.header("x-ringgate-delivery"), "send-1");
        assert_eq!(s.json()["text"], "hello out there");
        assert_eq!(s.json()["to"], "user-1");
    }
    assert_eq!(first.body, second.body);
    // The same key from another shard: the first result, no second delivery.
    let again = b.call("send", Some(p));
    assert_eq!(again, r);
    assert!(seen.recv_timeout(Duration::from_millis(300)).is_err());
    // The same key for a different message is refused.
    let e = b.call_err(
        "send",
        Some(json!({"to": "user-1", "message": "other", "idempotencyKey": "send-1"})),
    );
    assert_eq!(e["code"], "INVALID_REQUEST");
    let st = a.call("channels.status", Some(json!({})));
    assert_eq!(st["channelOrder"], json!(["webhook"]));
    let acc = &st["channelAccounts"]["webhook"][0];
    assert_eq!(
        (acc["accountId"].as_str(), acc["running"].as_bool()),
        (Some("default"), Some(true))
    );
    assert_eq!(
        (
            acc["counters"]["sent"].as_u64(),
            acc["counters"]["retries"].as_u64()
        ),
        (Some(1), Some(1))
    );
    let e = a.call_err(
        "send",
        Some(json!({"to": "x", "message": "m", "idempotencyKey": "k", "channel": "telegram"})),
    );
    assert_eq!(e["message"], "unsupported channel: telegram");
}

#[test]
fn failed_deliveries_are_reported_and_stopped_accounts_refuse() {
    let (url, seen) = receiver(vec![503]);
    let server = server(&url, "");
    let mut c = Client::connect(&server);
    let res = c.request(
        "send",
        Some(json!({"to": "u", "message": "doomed", "idempotencyKey": "f-1"})),
    );
    assert_eq!(res["ok"], false, "{res}");
    assert_eq!(res["error"]["code"], "UNAVAILABLE");
    assert!(
        res["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("delivery failed after 3 attempt(s): HTTP 503"),
        "{res}"
    );
    for _ in 0..3 {
        seen.recv_timeout(WAIT).unwrap();
    }
    // A failure is not remembered: retrying the same key delivers again (and fails again).
    let res = c.request(
        "send",
        Some(json!({"to": "u", "message": "doomed", "idempotencyKey": "f-1"})),
    );
    assert_eq!(res["ok"], false, "{res}");
    for _ in 0..3 {
        seen.recv_timeout(WAIT).unwrap();
    }
    let st = c.call("channels.status", Some(json!({"channel": "webhook"})));
    let acc = &st["channelAccounts"]["webhook"][0];
    assert_eq!(acc["counters"]["failed"], 2);
    assert!(acc["lastError"].as_str().unwrap().contains("503"), "{acc}");
    assert_eq!(st["statusIssues"][0]["kind"], "runtime");

    let r = c.call("channels.stop", Some(json!({"channel": "webhook"})));
    assert_eq!(r["running"], false);
    let st = c.call("status", None);
    assert_eq!(
        st["channelSummary"],
        json!(["Webhook default: enabled, configured, stopped"])
    );
    assert_eq!(st["ringgate"]["cron"]["enabled"], true);
    let e = c.call_err(
        "send",
        Some(json!({"to": "u", "message": "m", "idempotencyKey": "f-2"})),
    );
    assert_eq!(
        (e["code"].as_str(), e["message"].as_str()),
        (Some("UNAVAILABLE"), Some("account `default` is stopped"))
    );
    let (status, _) = post(
        &server,
        "/channels/webhook/default",
        r#"{"text":"hi","from":"u"}"#,
        SECRET,
    );
    assert_eq!(status, 503);
    let r = c.call("channels.start", Some(json!({"channel": "webhook"})));
    assert_eq!(r["running"], true);
}

#[test]
fn inbound_messages_reach_the_session_and_replies_go_back_out() {
    let (url, seen) = receiver(vec![200]);
    let server = server(&url, r#", sessionKey: "support""#);
    let mut watcher = Client::connect(&server);
    let body = r#"{"text":"hello from outside","from":"user-9","messageId":"m-1"}"#;
    let (status, r) = post(&server, "/channels/webhook/default", body, SECRET);
    assert_eq!(status, 202, "{r}");
    assert_eq!(r["runId"], "webhook:default:m-1");
    assert_eq!(r["sessionKey"], "agent:main:support");
    // The agent's reply is delivered back to the sender.
    let out = seen.recv_timeout(WAIT).unwrap();
    assert!(out.signed());
    let j = out.json();
    assert_eq!(
        (j["to"].as_str(), j["text"].as_str()),
        (Some("user-9"), Some("echo: hello from outside"))
    );
    assert_eq!(j["sessionKey"], "agent:main:support");
    // Both turns are in the session.
    let h = watcher.call("chat.history", Some(json!({"sessionKey": "support"})));
    let msgs = h["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2, "{h}");
    assert_eq!(msgs[0]["content"], "hello from outside");
    // A redelivered message (same messageId) does not run twice.
    let (status, r) = post(&server, "/channels/webhook/default", body, SECRET);
    assert_eq!(
        (status, r["runId"].as_str()),
        (202, Some("webhook:default:m-1"))
    );
    let h = watcher.call("chat.history", Some(json!({"sessionKey": "support"})));
    assert_eq!(h["messages"].as_array().unwrap().len(), 2);
    // Refusals: forged signature, unknown account, oversize body, bad JSON.
    let (status, r) = post(
        &server,
        "/channels/webhook/default",
        body,
        "wrong-secret-0123456789",
    );
    assert_eq!(status, 401, "{r}");
    let (status, _) = post(&server, "/channels/webhook/nobody", body, SECRET);
    assert_eq!(status, 404);
    let big = format!(r#"{{"text":"{}","from":"u"}}"#, "x".repeat(70_000));
    let (status, _) = post(&server, "/channels/webhook/default", &big, SECRET);
    assert_eq!(status, 413);
    let (status, _) = post(&server, "/channels/webhook/default", "{not json", SECRET);
    assert_eq!(status, 400);
    assert_eq!(
        watcher.call("chat.history", Some(json!({"sessionKey": "support"})))["messages"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn reconfiguring_the_channel_takes_effect_without_restart() {
    let (url1, seen1) = receiver(vec![200]);
    let (url2, seen2) = receiver(vec![200]);
    let server = server(&url1, "");
    let mut c = Client::connect(&server);
    c.call(
        "send",
        Some(json!({"to": "a", "message": "one", "idempotencyKey": "r-1"})),
    );
    seen1.recv_timeout(WAIT).unwrap();
    let hash = c.call("config.get", Some(json!({})))["hash"].clone();
    let patch = format!(r#"{{ringgate: {{channels: {{webhook: {{url: "{url2}"}}}}}}}}"#);
    c.call(
        "config.patch",
        Some(json!({"raw": patch, "baseHash": hash})),
    );
    c.wait_event_where("config.changed", WAIT, |_| true);
    for shard in 0..2 {
        let mut s = Client::connect_to_shard(&server, &connect_params(), shard);
        s.call(
            "send",
            Some(json!({"to": "a", "message": "two", "idempotencyKey": format!("r-2-{shard}")})),
        );
        assert_eq!(seen2.recv_timeout(WAIT).unwrap().json()["text"], "two");
    }
    assert!(seen1.recv_timeout(Duration::from_millis(200)).is_err());
    // An invalid channel config is refused and changes nothing.
    let hash = c.call("config.get", Some(json!({})))["hash"].clone();
    let e = c.call_err(
        "config.patch",
        Some(json!({"raw": r#"{ringgate: {channels: {webhook: {url: "ftp://x"}}}}"#, "baseHash": hash})),
    );
    assert_eq!(e["message"], "invalid config: invalid value for `ringgate.channels.webhook.url`: must start with http:// or https://");
}
