//! One connection's TLS handshake, sans IO: bytes from the socket in, bytes for the socket
//! out, until rustls has established the connection and its keys are taken over by
//! [`Records`].
//!
//! rustls is fed one whole record at a time and no further than the end of the handshake, so
//! that when the keys are taken out nothing the client sent after its `Finished` (often in
//! the same segment: the HTTP request) is left inside rustls; those bytes are handed on as
//! [`Established::leftover`].

use std::sync::Arc;

use super::record::{Records, HEADER, MAX_CIPHERTEXT};

/// The first byte of a TLS handshake record.
const HANDSHAKE_RECORD: u8 = 22;

/// A handshake in progress.
pub struct Handshake {
    /// Taken when the keys are handed over.
    conn: Option<rustls::ServerConnection>,
    /// Bytes received and not yet given to rustls (at most one record and a bit).
    pending: Vec<u8>,
    started: bool,
}

/// What a step of the handshake came to.
pub enum Step {
    /// More bytes from the peer are needed.
    More,
    /// Established: the records layer, and ciphertext received after the handshake.
    Done(Box<Established>),
    /// The peer speaks plain HTTP to the TLS port (answered in plain text, then closed).
    NotTls,
    /// The handshake failed (the alert for the peer, if any, is in the output).
    Failed(String),
}

pub struct Established {
    pub records: Records,
    pub leftover: Vec<u8>,
    /// The negotiated suite, for logs.
    pub suite: &'static str,
    /// Whether the client resumed an earlier session (no certificate was sent).
    pub resumed: bool,
}

impl Handshake {
    pub fn new(config: Arc<rustls::ServerConfig>) -> Result<Handshake, rustls::Error> {
        Ok(Handshake {
            conn: Some(rustls::ServerConnection::new(config)?),
            pending: Vec::new(),
            started: false,
        })
    }

    /// Takes bytes read from the socket; appends what must be sent to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Step {
        if !self.started && !bytes.is_empty() {
            self.started = true;
            if bytes[0] != HANDSHAKE_RECORD {
                return if bytes[0].is_ascii_uppercase() {
                    Step::NotTls
                } else {
                    Step::Failed("not a TLS handshake".into())
                };
            }
        }
        let Some(conn) = self.conn.as_mut() else {
            return Step::Failed("handshake already finished".into());
        };
        self.pending.extend_from_slice(bytes);
        let mut at = 0;
        while conn.is_handshaking() {
            let rest = &self.pending[at..];
            if rest.len() < HEADER {
                break;
            }
            let len = u16::from_be_bytes([rest[3], rest[4]]) as usize;
            if len > MAX_CIPHERTEXT {
                return Step::Failed("record longer than TLS allows".into());
            }
            if rest.len() < HEADER + len {
                break;
            }
            // rustls takes at most 4 KiB per read: a larger record (a ClientHello with big
            // key shares or tickets) is handed over in as many reads as it takes.
            let mut record = &rest[..HEADER + len];
            at += HEADER + len;
            let mut processed = Ok(());
            while !record.is_empty() && processed.is_ok() {
                processed = match conn.read_tls(&mut record) {
                    Ok(0) => Err("the handshake stopped taking bytes".to_owned()),
                    Ok(_) => conn
                        .process_new_packets()
                        .map(|_| ())
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
            }
            // Whatever rustls has to say (its flight, or the alert for a failure) goes out.
            while conn.wants_write() {
                if conn.write_tls(out).is_err() {
                    break;
                }
            }
            if let Err(e) = processed {
                return Step::Failed(e);
            }
        }
        self.pending.drain(..at);
        if conn.is_handshaking() {
            return Step::More;
        }
        self.establish()
    }

    /// Hands the keys of a finished handshake to [`Records`].
    fn establish(&mut self) -> Step {
        let Some(conn) = self.conn.take() else {
            return Step::Failed("handshake already finished".into());
        };
        let suite = conn
            .negotiated_cipher_suite()
            .and_then(|s| s.suite().as_str())
            .unwrap_or("unknown");
        let resumed = matches!(conn.handshake_kind(), Some(rustls::HandshakeKind::Resumed));
        match conn.dangerous_extract_secrets() {
            Ok(secrets) => match Records::new(secrets) {
                Some(records) => Step::Done(Box::new(Established {
                    records,
                    leftover: std::mem::take(&mut self.pending),
                    suite,
                    resumed,
                })),
                None => Step::Failed(format!("cipher suite {suite} not supported")),
            },
            Err(e) => Step::Failed(format!("taking over the keys failed: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::ServerName;
    use std::io::{Read, Write};

    /// A server acceptor over a freshly generated pair, and a client config trusting it.
    pub(crate) fn pair() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
        let dir = std::env::temp_dir().join(format!(
            "ringgate-hs-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        let cfg = crate::tls::TlsConfig {
            enabled: true,
            ..Default::default()
        };
        let (m, _) = crate::tls::start(&cfg, &dir).unwrap();
        let a = m
            .acceptor(rustls::crypto::ring::Ticketer::new().unwrap())
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(m.chain[0].clone()).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let _ = std::fs::remove_dir_all(&dir);
        (a.config, Arc::new(client))
    }

    /// Runs a handshake between a rustls client and [`Handshake`], the client sending `early`
    /// right behind its `Finished`; returns the server's layer, what it received after the
    /// handshake, and the client.
    fn connect(
        server: &Arc<rustls::ServerConfig>,
        client: &Arc<rustls::ClientConfig>,
        early: &[u8],
    ) -> (Box<Established>, rustls::ClientConnection) {
        let mut c = rustls::ClientConnection::new(
            client.clone(),
            ServerName::try_from("localhost").unwrap(),
        )
        .unwrap();
        let mut hs = Handshake::new(server.clone()).unwrap();
        let mut wrote_early = false;
        for _ in 0..10 {
            let mut to_server = Vec::new();
            if !c.is_handshaking() && !wrote_early {
                c.writer().write_all(early).unwrap();
                wrote_early = true;
            }
            while c.wants_write() {
                c.write_tls(&mut to_server).unwrap();
            }
            let mut to_client = Vec::new();
            // Byte-sized pieces: records split anywhere must still be reassembled.
            let mut step = Step::More;
            let mut fed = 0;
            for chunk in to_server.chunks(7) {
                fed += chunk.len();
                step = hs.feed(chunk, &mut to_client);
                if !matches!(step, Step::More) {
                    break;
                }
            }
            // Bytes behind the last record of the handshake are the caller's to keep.
            if let Step::Done(e) = &mut step {
                e.leftover.extend_from_slice(&to_server[fed..]);
            }
            c.read_tls(&mut &to_client[..]).unwrap();
            c.process_new_packets().unwrap();
            match step {
                Step::Done(e) => return (e, c),
                Step::More => {}
                Step::NotTls => panic!("not tls"),
                Step::Failed(e) => panic!("handshake failed: {e}"),
            }
        }
        panic!("handshake did not finish");
    }

    #[test]
    fn a_rustls_client_talks_to_the_record_layer_after_the_handshake() {
        let (server, client) = pair();
        let (mut est, mut c) = connect(&server, &client, b"GET / HTTP/1.1\r\n\r\n");
        assert!(!est.resumed);
        assert!(est.suite.starts_with("TLS13_"), "{}", est.suite);
        // What the client sent behind its Finished arrives through the record layer.
        let mut plain = Vec::new();
        let mut rest = std::mem::take(&mut est.leftover);
        // The request may still be in flight (written after the last feed): fetch it.
        if rest.is_empty() {
            c.write_tls(&mut rest).unwrap();
        }
        let o = est.records.open(&mut rest, &mut plain).unwrap();
        assert_eq!(o.used, rest.len());
        assert_eq!(plain, b"GET / HTTP/1.1\r\n\r\n");
        // Both ways after that.
        let mut wire = Vec::new();
        est.records
            .seal(&[b"HTTP/1.1 ", b"200 OK"], &mut wire)
            .unwrap();
        c.read_tls(&mut &wire[..]).unwrap();
        c.process_new_packets().unwrap();
        let mut got = String::new();
        c.reader().read_to_string(&mut got).ok();
        assert_eq!(got, "HTTP/1.1 200 OK");
        c.writer().write_all(b"more").unwrap();
        let mut wire = Vec::new();
        c.write_tls(&mut wire).unwrap();
        let mut plain = Vec::new();
        est.records.open(&mut wire, &mut plain).unwrap();
        assert_eq!(plain, b"more");
        // The client's close_notify is the end of the stream.
        c.send_close_notify();
        let mut wire = Vec::new();
        c.write_tls(&mut wire).unwrap();
        assert!(est.records.open(&mut wire, &mut Vec::new()).unwrap().closed);
    }

    #[test]
    fn a_second_connection_resumes_with_the_ticket_of_the_first() {
        let (server, client) = pair();
        let (_, mut c) = connect(&server, &client, b"x");
        // The ticket arrives after the handshake; let the client read it.
        let _ = c.process_new_packets();
        let (est, _) = connect(&server, &client, b"y");
        assert!(est.resumed, "the second handshake was a full one");
    }

    #[test]
    fn a_client_hello_larger_than_rustls_reads_at_once_completes() {
        let (server, client) = pair();
        // 30 ALPN names of 200 bytes: a ClientHello of about 6 KB in one record.
        let mut big = (*client).clone();
        big.alpn_protocols = (0..30u8).map(|i| vec![b'a' + i % 26; 200]).collect();
        big.alpn_protocols.push(b"http/1.1".to_vec());
        let (est, _) = connect(&server, &Arc::new(big), b"x");
        assert!(!est.resumed);
    }

    #[test]
    fn plain_http_and_junk_are_told_apart_from_tls() {
        let (server, _) = pair();
        let mut out = Vec::new();
        let mut hs = Handshake::new(server.clone()).unwrap();
        assert!(matches!(
            hs.feed(b"GET / HTTP/1.1\r\n", &mut out),
            Step::NotTls
        ));
        let mut hs = Handshake::new(server.clone()).unwrap();
        assert!(matches!(hs.feed(&[0, 1, 2], &mut out), Step::Failed(_)));
        // A handshake record announcing more than TLS allows.
        let mut hs = Handshake::new(server.clone()).unwrap();
        assert!(matches!(
            hs.feed(&[22, 3, 1, 0xff, 0xff], &mut out),
            Step::Failed(_)
        ));
        // A garbage ClientHello gets rustls's alert.
        let mut hs = Handshake::new(server).unwrap();
        let mut out = Vec::new();
        assert!(matches!(
            hs.feed(&[22, 3, 1, 0, 4, 1, 0, 0, 0], &mut out),
            Step::Failed(_)
        ));
        assert_eq!(out.first(), Some(&21), "no alert sent");
    }
}
