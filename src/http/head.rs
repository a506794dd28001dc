//! The request head on the gateway port: a WebSocket upgrade, an inbound channel POST, or a
//! plain HTTP request (probes, the Control UI), bounded in size and header count and refused
//! when its framing is ambiguous.

/// HTTP request facts the connect gate needs.
#[derive(Debug, Clone, Default)]
pub struct UpgradeInfo {
    pub origin: Option<String>,
    pub host: Option<String>,
    pub scopes_header: Option<String>,
    /// The upgrade asked for the worker channel ([`WORKER_PATH`]): only `openclaw worker`
    /// processes ringgate launched connect there, with the credential it minted for them.
    pub worker: bool,
    /// In trusted-proxy mode: the user the proxy named, or why it could not vouch.
    pub proxy_identity: Option<Result<String, String>>,
    /// A loopback peer that forwarded nothing.
    pub direct_local: bool,
}

/// What routing needs from the config before a head is parsed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Routing<'a> {
    /// `hooks.path` when hooks are on.
    pub hooks_base: Option<&'a str>,
    /// Keep every header of upgrades and API requests (trusted-proxy mode reads the
    /// identity headers it was configured with).
    pub keep_headers: bool,
}

/// The path of the worker channel (the original's `/__openclaw__/worker`).
pub const WORKER_PATH: &str = "/__openclaw__/worker";

/// Largest request head accepted (Node's default `maxHeaderSize`); 431 past it.
pub const MAX_HEAD: usize = 16 * 1024;

/// Most header lines accepted; 431 past it. Browsers send about 20; proxies add a few.
pub const MAX_HEADERS: usize = 128;

/// A parsed request head.
#[derive(Debug)]
pub enum Request {
    /// A WebSocket upgrade: the `Sec-WebSocket-Accept` value and the headers the gate needs.
    Upgrade {
        accept: String,
        info: UpgradeInfo,
        /// Forwarded-client headers (attributed in [`super::proxy`]).
        forwarded: super::proxy::Forwarded,
        /// Every header, when [`Routing::keep_headers`] asked for them (else empty).
        headers: Vec<(String, String)>,
    },
    /// A plain HTTP request (probes, the Control UI).
    Plain(Box<Plain>),
    /// `POST /channels/...`: an inbound channel message (the body follows the head).
    Inbound(Inbound),
    /// The HTTP APIs (`/v1/*`, `/tools/invoke`, `/sessions/<key>/{history,kill}`).
    Api(Box<super::api::ApiHead>),
    /// An inbound webhook under `hooks.path` (its head keeps every header).
    Hook(Box<super::api::ApiHead>),
    /// Refused before routing, with this status line: `400 Bad Request` (malformed, or framed
    /// ambiguously: `Content-Length` with `Transfer-Encoding`, the request-smuggling shape) or
    /// `431 Request Header Fields Too Large`.
    Refused(&'static str),
}

pub const BAD_REQUEST: &str = "400 Bad Request";
pub const HEADERS_TOO_LARGE: &str = "431 Request Header Fields Too Large";

/// A plain (non-upgrade) request: what routing and its handlers read.
#[derive(Debug, Default, Clone)]
pub struct Plain {
    pub method: String,
    /// The path, without the query, as sent (percent-encoded).
    pub path: String,
    /// The query string (without `?`).
    pub query: String,
    pub accept: Option<String>,
    pub accept_encoding: Option<String>,
    pub authorization: Option<String>,
    pub host: Option<String>,
    pub if_modified_since: Option<String>,
    /// An `Upgrade` that is not a valid WebSocket upgrade (another protocol, or a WebSocket
    /// upgrade without its key, version 13 or GET): answered 400, never served as a page.
    pub other_upgrade: bool,
    /// A body follows the head (plain routes read none, so the connection is not reused).
    pub has_body: bool,
    /// The client asked to close after this request (`Connection: close`, or HTTP/1.0
    /// without `keep-alive`).
    pub close: bool,
}

/// The head of an inbound channel request.
#[derive(Debug)]
pub struct Inbound {
    pub path: String,
    pub content_length: Option<usize>,
    pub timestamp: Option<String>,
    pub signature: Option<String>,
}

/// Parses a complete head (`None` until `\r\n\r\n` has arrived); also returns the head's
/// length (bytes after it already belong to the WebSocket stream).
pub fn parse(buf: &[u8]) -> Option<(Request, usize)> {
    parse_routed(buf, Routing::default())
}

/// Headers Node reads once (a repeat is dropped), unlike the rest, whose repeats it joins.
const SINGLE_HEADERS: [&str; 18] = [
    "age",
    "authorization",
    "content-length",
    "content-type",
    "etag",
    "expires",
    "from",
    "host",
    "if-modified-since",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "proxy-authorization",
    "referer",
    "retry-after",
    "server",
    "user-agent",
];

/// Every header: lowercased names, a repeated header's values joined with `, `, each byte one
/// character (Latin-1, as Node reads them: a user name a proxy sends compares as the
/// original compares it).
fn all_headers(req: &httparse::Request) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = Vec::new();
    for h in req.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        let value: String = h.value.iter().map(|&b| char::from(b)).collect();
        match headers.iter_mut().find(|(n, _)| *n == name) {
            // Node keeps the first of these and drops the rest.
            Some(_) if SINGLE_HEADERS.contains(&name.as_str()) => {}
            Some((_, v)) => {
                v.push_str(", ");
                v.push_str(&value);
            }
            None => headers.push((name, value)),
        }
    }
    headers
}

/// [`parse`], routed by the config: requests under the hooks' base path are
/// [`Request::Hook`].
pub fn parse_routed(buf: &[u8], routing: Routing) -> Option<(Request, usize)> {
    let hooks_base = routing.hooks_base;
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let consumed = match req.parse(buf) {
        Ok(httparse::Status::Partial) => return None,
        Err(httparse::Error::TooManyHeaders) => {
            return Some((Request::Refused(HEADERS_TOO_LARGE), buf.len()))
        }
        Err(_) => return Some((Request::Refused(BAD_REQUEST), buf.len())),
        Ok(httparse::Status::Complete(n)) => n,
    };
    let path = req.path.unwrap_or("/").to_owned();
    let get = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(str::to_owned)
    };
    let count = |name: &str| {
        req.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .count()
    };
    // One body framing, stated once: a request that carries both (or either twice) could be
    // read differently by a proxy in front of us (RFC 9112 §6.3).
    let content_lengths = count("content-length");
    let transfer_encodings = count("transfer-encoding");
    if content_lengths > 1
        || transfer_encodings > 1
        || (content_lengths > 0 && transfer_encodings > 0)
    {
        return Some((Request::Refused(BAD_REQUEST), buf.len()));
    }
    let content_length = match get("content-length") {
        None => None,
        Some(v) if !v.trim().bytes().all(|b| b.is_ascii_digit()) => {
            return Some((Request::Refused(BAD_REQUEST), buf.len()))
        }
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) => Some(n),
            Err(_) => return Some((Request::Refused(BAD_REQUEST), buf.len())),
        },
    };
    if req.method == Some("POST") && path.starts_with("/channels/") {
        let inbound = Inbound {
            content_length,
            timestamp: get("x-ringgate-timestamp"),
            signature: get("x-ringgate-signature"),
            path,
        };
        return Some((Request::Inbound(inbound), consumed));
    }
    let upgrade_header = get("upgrade");
    let upgrade = upgrade_header
        .as_deref()
        .is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    let key = get("sec-websocket-key");
    if req.method != Some("GET")
        || !upgrade
        || key.is_none()
        || get("sec-websocket-version").as_deref() != Some("13")
    {
        // Absolute-form targets (`http://host/path`) name the same path; anything else that
        // is not origin-form (`*`, garbage) is refused.
        let path = match path.split_once("://") {
            Some((scheme, rest))
                if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") =>
            {
                rest.find('/')
                    .map_or_else(|| "/".to_owned(), |i| rest[i..].to_owned())
            }
            _ => path,
        };
        if !path.starts_with('/') {
            return Some((Request::Refused(BAD_REQUEST), buf.len()));
        }
        let (path, query) = match path.split_once('?') {
            Some((p, q)) => (p.to_owned(), q.to_owned()),
            None => (path, String::new()),
        };
        let close = {
            let conn = get("connection").unwrap_or_default().to_ascii_lowercase();
            conn.contains("close") || (req.version == Some(0) && !conn.contains("keep-alive"))
        };
        let hook = hooks_base
            .is_some_and(|b| path == b || path.strip_prefix(b).is_some_and(|r| r.starts_with('/')));
        if (hook || super::api::owns(&path)) && upgrade_header.is_none() {
            let api = super::api::ApiHead {
                method: req.method.unwrap_or("GET").to_owned(),
                path,
                query,
                authorization: get("authorization"),
                content_length,
                chunked: transfer_encodings > 0,
                expect: get("expect"),
                accept: get("accept"),
                origin: get("origin"),
                host: get("host"),
                agent: get("x-openclaw-agent-id").or_else(|| get("x-openclaw-agent")),
                session_key: get("x-openclaw-session-key"),
                scopes: get("x-openclaw-scopes"),
                forwarded: forwarded(&req),
                close,
                http10: req.version == Some(0),
                headers: Vec::new(),
            };
            if hook {
                let api = super::api::ApiHead {
                    headers: all_headers(&req),
                    ..api
                };
                return Some((Request::Hook(Box::new(api)), consumed));
            }
            let mut api = api;
            if routing.keep_headers {
                api.headers = all_headers(&req);
            }
            return Some((Request::Api(Box::new(api)), consumed));
        }
        let plain = Plain {
            method: req.method.unwrap_or("GET").to_owned(),
            path,
            query,
            accept: get("accept"),
            accept_encoding: get("accept-encoding"),
            authorization: get("authorization"),
            host: get("host"),
            if_modified_since: get("if-modified-since"),
            other_upgrade: upgrade_header.is_some(),
            has_body: content_length.is_some_and(|n| n > 0) || transfer_encodings > 0,
            close,
        };
        return Some((Request::Plain(Box::new(plain)), consumed));
    }
    let forwarded = forwarded(&req);
    let accept =
        tungstenite::handshake::derive_accept_key(key.unwrap_or_default().trim().as_bytes());
    let info = UpgradeInfo {
        origin: get("origin"),
        host: get("host"),
        scopes_header: get("x-openclaw-scopes"),
        worker: path.split('?').next() == Some(WORKER_PATH),
        proxy_identity: None,
        direct_local: false,
    };
    let headers = if routing.keep_headers {
        all_headers(&req)
    } else {
        Vec::new()
    };
    Some((
        Request::Upgrade {
            accept,
            info,
            forwarded,
            headers,
        },
        consumed,
    ))
}

/// Did a proxy say whose request this is (`Forwarded`, `X-Forwarded-*`, `X-Real-IP`, Tailscale
/// identity headers)? From a peer that is not a trusted proxy such a request is refused: its
/// claims cannot be checked, and ignoring them would attribute every client to the proxy.
fn forwarded(req: &httparse::Request) -> super::proxy::Forwarded {
    let present = req.headers.iter().any(|h| {
        let n = h.name.to_ascii_lowercase();
        n == "forwarded"
            || n.starts_with("x-forwarded-")
            || n == "x-real-ip"
            || n.starts_with("tailscale-")
    });
    // Repeated lines are one list, as Node joins them (some proxies add a line rather than
    // append to the last one).
    let joined = |name: &str| {
        let all: Vec<&str> = req
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .filter_map(|h| std::str::from_utf8(h.value).ok())
            .collect();
        (!all.is_empty()).then(|| all.join(", "))
    };
    super::proxy::Forwarded {
        present,
        forwarded_for: joined("x-forwarded-for"),
        real_ip: joined("x-real-ip"),
    }
}

pub fn switching_protocols(accept: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    )
    .into_bytes()
}

/// A complete plain response that closes the connection (the WebSocket-side refusals; the
/// HTTP routes build theirs with [`super::Response`]).
pub fn response(status: &str, content_type: &str, body: &str) -> Vec<u8> {
    response_with(status, &[], content_type, body)
}

/// [`response`] with extra header lines.
pub fn response_with(
    status: &str,
    headers: &[(&str, &str)],
    content_type: &str,
    body: &str,
) -> Vec<u8> {
    let mut head = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    format!(
        "{head}Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_websocket_upgrade_is_not_a_page_request() {
        for head in [
            "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 99\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        ] {
            match parse(head.as_bytes()) {
                Some((Request::Plain(p), _)) => assert!(p.other_upgrade, "{head}"),
                other => panic!("{head}: {other:?}"),
            }
        }
    }

    #[test]
    fn upgrade_and_plain() {
        let req = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:1\r\n\r\n";
        assert!(parse(&req[..20]).is_none());
        match parse(req).unwrap().0 {
            Request::Upgrade {
                accept,
                info,
                forwarded,
                headers,
            } => {
                assert!(headers.is_empty(), "kept only when routing asks");
                assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
                assert_eq!(info.origin.as_deref(), Some("http://127.0.0.1:1"));
                assert!(!forwarded.present);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(b"GET /healthz HTTP/1.1\r\n\r\n"),
            Some((Request::Plain { .. }, _))
        ));
        assert!(matches!(
            parse(b"\x00\x01garbage\r\n\r\n"),
            Some((Request::Refused(BAD_REQUEST), _))
        ));
    }

    #[test]
    fn request_targets_are_paths() {
        let target = |t: &str| parse(format!("GET {t} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        match target("http://example.com/assets/a.js?v=1") {
            Some((Request::Plain(p), _)) => {
                assert_eq!((p.path.as_str(), p.query.as_str()), ("/assets/a.js", "v=1"))
            }
            other => panic!("{other:?}"),
        }
        for bad in ["*", "assets/a.js", "\u{277}/"] {
            assert!(
                matches!(target(bad), Some((Request::Refused(BAD_REQUEST), _)) | None),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn ambiguous_body_framing_is_refused() {
        for head in [
            "POST /channels/webhook HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST /channels/webhook HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            "POST /channels/webhook HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "POST /channels/webhook HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            "POST /channels/webhook HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
            "POST /channels/webhook HTTP/1.1\r\nContent-Length: \r\n\r\n",
            "POST /channels/webhook HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            "GET /healthz HTTP/1.1\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert!(
                matches!(parse(head.as_bytes()), Some((Request::Refused(BAD_REQUEST), _))),
                "{head:?}"
            );
        }
    }

    #[test]
    fn many_headers_pass_and_too_many_get_431() {
        let with = |n: usize| {
            let mut h = String::from("GET /healthz HTTP/1.1\r\n");
            for i in 0..n {
                h.push_str(&format!("X-H{i}: v\r\n"));
            }
            h.push_str("\r\n");
            h
        };
        assert!(matches!(
            parse(with(100).as_bytes()),
            Some((Request::Plain { .. }, _))
        ));
        assert!(matches!(
            parse(with(MAX_HEADERS + 1).as_bytes()),
            Some((Request::Refused(HEADERS_TOO_LARGE), _))
        ));
    }
}
