//! TLS bytes from the network: a handshake fed arbitrary bytes in arbitrary pieces (rustls
//! behind ringgate's record framing), the record layer opening arbitrary bytes, and sealed
//! data read back whole across any split (what is sealed must open to the same bytes).
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use ringgate::tls::{
    handshake::{Handshake, Step},
    record::Records,
    Material, TlsConfig,
};
use rustls::{
    crypto::cipher::{AeadKey, Iv},
    ConnectionTrafficSecrets, ExtractedSecrets,
};

fn server() -> &'static Arc<rustls::ServerConfig> {
    static S: OnceLock<Arc<rustls::ServerConfig>> = OnceLock::new();
    S.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ringgate-fuzz-tls-{}", std::process::id()));
        let cfg = TlsConfig {
            enabled: true,
            ..TlsConfig::default()
        };
        let (m, _): (Material, _) = ringgate::tls::start(&cfg, &dir).expect("certificate");
        let a = m
            .acceptor(rustls::crypto::ring::Ticketer::new().unwrap())
            .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        a.config
    })
}

fn records(swap: bool) -> Records {
    let s = |k: u8| ConnectionTrafficSecrets::Aes256Gcm {
        key: AeadKey::from([k; 32]),
        iv: Iv::new([k; 12]),
    };
    let (a, b) = if swap { (2, 1) } else { (1, 2) };
    Records::new(ExtractedSecrets {
        tx: (0, s(a)),
        rx: (0, s(b)),
    })
    .expect("keys")
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            let mut hs = Handshake::new(server().clone()).unwrap();
            let mut out = Vec::new();
            // Piece sizes come from the input too.
            let mut at = 0;
            let mut i = 0;
            while at < rest.len() {
                let n = (rest[i % rest.len()] as usize % 64 + 1).min(rest.len() - at);
                i += 1;
                match hs.feed(&rest[at..at + n], &mut out) {
                    Step::More => at += n,
                    _ => break,
                }
            }
        }
        1 => {
            let mut r = records(false);
            let mut input = rest.to_vec();
            let _ = r.open(&mut input, &mut Vec::new());
        }
        _ => {
            let (mut tx, mut rx) = (records(false), records(true));
            let mut wire = Vec::new();
            let split = rest.len() / 2;
            tx.seal(&[&rest[..split], &rest[split..]], &mut wire).unwrap();
            let mut plain = Vec::new();
            let mut pending = Vec::new();
            let step = (rest.first().copied().unwrap_or(1) as usize % 97) + 1;
            for piece in wire.chunks(step) {
                pending.extend_from_slice(piece);
                let o = rx.open(&mut pending, &mut plain).expect("our own records open");
                pending.drain(..o.used);
            }
            assert!(pending.is_empty());
            assert_eq!(plain, rest);
        }
    }
});
