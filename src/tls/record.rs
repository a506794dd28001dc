//! The TLS 1.3 record layer of an established connection (RFC 8446 §5), sans IO.
//!
//! rustls runs the handshake ([`super::handshake`]); once it is done, its traffic keys are
//! taken out and the connection encrypts and decrypts its records here, as kernel TLS does in
//! the kernel. That keeps a TLS connection's IO the same as a plain one's: ciphertext is read
//! into the shard's shared read buffer and decrypted from there, frames are sealed straight
//! into the connection's outbox, and an idle connection holds its two keys and nothing else
//! (rustls would keep a 4 KiB read buffer and its connection state per connection).
//!
//! What this layer does not do: a peer's `KeyUpdate` ends the connection (no browser, Node or
//! OpenSSL client sends one unprompted), and a connection that reaches its cipher's
//! confidentiality limit is ended rather than re-keyed (2^24 records for AES-GCM).

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use rustls::ConnectionTrafficSecrets;

/// `application_data`: the outer type of every protected record.
const APPLICATION_DATA: u8 = 23;
const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;
/// Header: type, legacy version (2), length (2).
pub const HEADER: usize = 5;
/// Authentication tag of every AEAD TLS 1.3 uses.
const TAG: usize = 16;
/// Largest plaintext of one record (2^14).
pub const MAX_PLAINTEXT: usize = 1 << 14;
/// Largest ciphertext length a record may announce (2^14 + 256).
pub const MAX_CIPHERTEXT: usize = MAX_PLAINTEXT + 256;
/// Bytes a record adds to its plaintext: header, inner content type, tag.
pub const OVERHEAD: usize = HEADER + 1 + TAG;

/// Alert descriptions this layer sends.
pub mod alert {
    pub const CLOSE_NOTIFY: u8 = 0;
    pub const UNEXPECTED_MESSAGE: u8 = 10;
    pub const BAD_RECORD_MAC: u8 = 20;
    pub const RECORD_OVERFLOW: u8 = 22;
    pub const DECODE_ERROR: u8 = 50;
}

/// Why a connection's records cannot go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record failed authentication")]
    BadRecordMac,
    #[error("record longer than TLS allows")]
    Overflow,
    #[error("unexpected record type {0}")]
    Unexpected(u8),
    #[error("peer sent alert {0}")]
    PeerAlert(u8),
    #[error("peer asked for a key update, which ringgate does not support")]
    KeyUpdate,
    #[error("the cipher's confidentiality limit was reached")]
    Exhausted,
    #[error("too many records without data in a row")]
    EmptyFlood,
    #[error("malformed record content")]
    Malformed,
}

impl RecordError {
    /// The alert to send the peer for this error (none for the peer's own alert).
    pub fn alert(self) -> Option<u8> {
        match self {
            RecordError::BadRecordMac => Some(alert::BAD_RECORD_MAC),
            RecordError::Overflow => Some(alert::RECORD_OVERFLOW),
            RecordError::Unexpected(_) | RecordError::KeyUpdate | RecordError::EmptyFlood => {
                Some(alert::UNEXPECTED_MESSAGE)
            }
            RecordError::Malformed => Some(alert::DECODE_ERROR),
            RecordError::PeerAlert(_) => None,
            RecordError::Exhausted => Some(alert::CLOSE_NOTIFY),
        }
    }
}

/// One direction's key, IV and record sequence number.
struct Direction {
    key: LessSafeKey,
    iv: [u8; 12],
    seq: u64,
    /// Records this key may protect (the cipher's confidentiality limit).
    limit: u64,
}

impl Direction {
    fn new(seq: u64, secrets: ConnectionTrafficSecrets) -> Option<Direction> {
        let (alg, key, iv, limit) = match secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => {
                (&aead::AES_128_GCM, key, iv, 1u64 << 24)
            }
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => {
                (&aead::AES_256_GCM, key, iv, 1u64 << 24)
            }
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
                (&aead::CHACHA20_POLY1305, key, iv, u64::MAX)
            }
            _ => return None,
        };
        let key = LessSafeKey::new(UnboundKey::new(alg, key.as_ref()).ok()?);
        let iv: [u8; 12] = iv.as_ref().try_into().ok()?;
        Some(Direction {
            key,
            iv,
            seq,
            limit,
        })
    }

    /// The per-record nonce: the IV XOR the sequence number (RFC 8446 §5.3).
    fn nonce(&self) -> Nonce {
        let mut n = self.iv;
        for (b, s) in n[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *b ^= s;
        }
        Nonce::assume_unique_for_key(n)
    }
}

/// An established connection's record protection, both ways.
pub struct Records {
    rx: Direction,
    tx: Direction,
    /// Records in a row that carried no data (each costs a decryption and yields nothing).
    empty_run: u8,
}

/// Records without data accepted in a row (rustls allows the same): past it, a flood of
/// them is refused instead of holding a shard.
const MAX_EMPTY_RUN: u8 = 32;

/// What [`Records::open`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Opened {
    /// Bytes of the input consumed (complete records); the rest is an incomplete record.
    pub used: usize,
    /// The peer closed its side (`close_notify`): no more data follows.
    pub closed: bool,
}

impl Records {
    /// From the traffic secrets rustls hands over after the handshake (`None` for a cipher
    /// this layer does not implement; TLS 1.3 has only the three it does).
    pub fn new(secrets: rustls::ExtractedSecrets) -> Option<Records> {
        Some(Records {
            rx: Direction::new(secrets.rx.0, secrets.rx.1)?,
            tx: Direction::new(secrets.tx.0, secrets.tx.1)?,
            empty_run: 0,
        })
    }

    /// Decrypts the complete records at the start of `input` in place and appends their
    /// application data to `plain`. Stops at an incomplete record (its bytes are left for the
    /// next call: see [`Opened::used`]) or at the peer's `close_notify`.
    pub fn open(&mut self, input: &mut [u8], plain: &mut Vec<u8>) -> Result<Opened, RecordError> {
        let mut at = 0;
        loop {
            let rest = &mut input[at..];
            if rest.len() < HEADER {
                return Ok(Opened {
                    used: at,
                    closed: false,
                });
            }
            let len = u16::from_be_bytes([rest[3], rest[4]]) as usize;
            if rest[0] != APPLICATION_DATA {
                return Err(RecordError::Unexpected(rest[0]));
            }
            if len > MAX_CIPHERTEXT {
                return Err(RecordError::Overflow);
            }
            if len < TAG + 1 {
                return Err(RecordError::BadRecordMac);
            }
            if rest.len() < HEADER + len {
                return Ok(Opened {
                    used: at,
                    closed: false,
                });
            }
            if self.rx.seq >= self.rx.limit {
                return Err(RecordError::Exhausted);
            }
            let (header, body) = rest[..HEADER + len].split_at_mut(HEADER);
            let nonce = self.rx.nonce();
            let inner = self
                .rx
                .key
                .open_in_place(nonce, Aad::from(&header[..]), body)
                .map_err(|_| RecordError::BadRecordMac)?;
            self.rx.seq += 1;
            at += HEADER + len;
            // The inner plaintext (content, type, padding) is bounded as a whole (§5.4).
            if inner.len() > MAX_PLAINTEXT + 1 {
                return Err(RecordError::Overflow);
            }
            // The real content type is the last non-zero byte; zeros after it are padding.
            let Some(end) = inner.iter().rposition(|b| *b != 0) else {
                return Err(RecordError::Unexpected(0));
            };
            let (content, kind) = (&inner[..end], inner[end]);
            match kind {
                APPLICATION_DATA if content.is_empty() => {
                    self.empty_run += 1;
                    if self.empty_run > MAX_EMPTY_RUN {
                        return Err(RecordError::EmptyFlood);
                    }
                }
                APPLICATION_DATA => {
                    self.empty_run = 0;
                    plain.extend_from_slice(content)
                }
                ALERT => {
                    return match content {
                        [_, alert::CLOSE_NOTIFY] => Ok(Opened {
                            used: at,
                            closed: true,
                        }),
                        [_, d] => Err(RecordError::PeerAlert(*d)),
                        _ => Err(RecordError::Malformed),
                    }
                }
                // KeyUpdate (24); anything else from a client after the handshake is wrong.
                HANDSHAKE if content.first() == Some(&24) => return Err(RecordError::KeyUpdate),
                other => return Err(RecordError::Unexpected(other)),
            }
        }
    }

    /// Appends `parts`, concatenated, to `out` as protected application-data records (one
    /// record per 16 KiB).
    pub fn seal(&mut self, parts: &[&[u8]], out: &mut Vec<u8>) -> Result<(), RecordError> {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let records = total.div_ceil(MAX_PLAINTEXT).max(1);
        out.reserve(total + records * OVERHEAD);
        let mut part = 0;
        let mut skip = 0;
        let mut left = total;
        loop {
            let n = left.min(MAX_PLAINTEXT);
            let start = out.len();
            self.begin(n, out)?;
            let mut need = n;
            while need > 0 {
                let p = &parts[part][skip..];
                let k = p.len().min(need);
                out.extend_from_slice(&p[..k]);
                need -= k;
                skip += k;
                if skip == parts[part].len() {
                    part += 1;
                    skip = 0;
                }
            }
            self.finish(APPLICATION_DATA, start, out);
            left -= n;
            if left == 0 {
                return Ok(());
            }
        }
    }

    /// Appends an alert record (a `close_notify`, or the error that ends the connection).
    pub fn alert(&mut self, description: u8, out: &mut Vec<u8>) {
        let level = if description == alert::CLOSE_NOTIFY {
            1
        } else {
            2
        };
        let start = out.len();
        if self.begin(2, out).is_ok() {
            out.extend_from_slice(&[level, description]);
            self.finish(ALERT, start, out);
        }
    }

    /// Writes the header of a record of `n` plaintext bytes.
    fn begin(&mut self, n: usize, out: &mut Vec<u8>) -> Result<(), RecordError> {
        if self.tx.seq >= self.tx.limit {
            return Err(RecordError::Exhausted);
        }
        let len = (n + 1 + TAG) as u16;
        out.extend_from_slice(&[APPLICATION_DATA, 3, 3]);
        out.extend_from_slice(&len.to_be_bytes());
        Ok(())
    }

    /// Adds the inner content type, encrypts the record begun at `start` and appends its tag.
    fn finish(&mut self, kind: u8, start: usize, out: &mut Vec<u8>) {
        out.push(kind);
        let nonce = self.tx.nonce();
        let (header, body) = out[start..].split_at_mut(HEADER);
        let tag = self
            .tx
            .key
            .seal_in_place_separate_tag(nonce, Aad::from(&header[..]), body)
            .expect("sealing fails only past ring's maximum input, far above one record");
        out.extend_from_slice(tag.as_ref());
        self.tx.seq += 1;
    }

    /// Whether sending more would pass the cipher's confidentiality limit soon (the owner then
    /// ends the connection cleanly, before [`RecordError::Exhausted`]).
    pub fn near_limit(&self) -> bool {
        self.tx.seq.saturating_add(1 << 16) >= self.tx.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::crypto::cipher::{AeadKey, Iv};

    fn pair(kind: u8) -> (Records, Records) {
        let secrets = |k: u8| {
            let key = AeadKey::from([k; 32]);
            let iv = Iv::new([k; 12]);
            match kind {
                0 => ConnectionTrafficSecrets::Aes256Gcm { key, iv },
                _ => ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv },
            }
        };
        let a = Records::new(rustls::ExtractedSecrets {
            tx: (7, secrets(1)),
            rx: (3, secrets(2)),
        })
        .unwrap();
        let b = Records::new(rustls::ExtractedSecrets {
            tx: (3, secrets(2)),
            rx: (7, secrets(1)),
        })
        .unwrap();
        (a, b)
    }

    #[test]
    fn sealed_parts_open_whole_across_record_and_read_boundaries() {
        for kind in [0, 1] {
            let (mut a, mut b) = pair(kind);
            let big = vec![b'x'; 40_000];
            let mut wire = Vec::new();
            a.seal(&[b"hello ", b"", b"world"], &mut wire).unwrap();
            a.seal(&[&big], &mut wire).unwrap();
            assert_eq!(wire.len(), 11 + 40_000 + 4 * OVERHEAD);
            // Fed a byte at a time, then all at once: the same plaintext.
            let mut plain = Vec::new();
            let mut pending = Vec::new();
            for byte in &wire {
                pending.push(*byte);
                let o = b.open(&mut pending, &mut plain).unwrap();
                pending.drain(..o.used);
            }
            assert!(pending.is_empty());
            assert_eq!(&plain[..11], b"hello world");
            assert_eq!(plain.len(), 40_011);
        }
    }

    #[test]
    fn tampering_reordering_and_alerts_are_refused() {
        let (mut a, mut b) = pair(0);
        let mut one = Vec::new();
        a.seal(&[b"one"], &mut one).unwrap();
        let mut two = Vec::new();
        a.seal(&[b"two"], &mut two).unwrap();
        let mut plain = Vec::new();
        // Out of order: the nonce does not match.
        assert_eq!(
            b.open(&mut two.clone(), &mut plain),
            Err(RecordError::BadRecordMac)
        );
        let (mut a, mut b) = pair(0);
        let mut rec = Vec::new();
        a.seal(&[b"one"], &mut rec).unwrap();
        rec[7] ^= 1;
        assert_eq!(b.open(&mut rec, &mut plain), Err(RecordError::BadRecordMac));
        // A plaintext handshake record after the handshake, an oversized length.
        let (_, mut b) = pair(0);
        assert_eq!(
            b.open(&mut [22, 3, 3, 0, 40], &mut plain),
            Err(RecordError::Unexpected(22))
        );
        assert_eq!(
            b.open(&mut [23, 3, 3, 0xff, 0xff], &mut plain),
            Err(RecordError::Overflow)
        );
        // close_notify ends the stream cleanly; another alert is an error.
        let (mut a, mut b) = pair(1);
        let mut wire = Vec::new();
        a.seal(&[b"last"], &mut wire).unwrap();
        a.alert(alert::CLOSE_NOTIFY, &mut wire);
        let o = b.open(&mut wire, &mut plain).unwrap();
        assert!(o.closed);
        assert_eq!(o.used, wire.len());
        assert_eq!(plain, b"last");
        let (mut a, mut b) = pair(1);
        let mut wire = Vec::new();
        a.alert(alert::DECODE_ERROR, &mut wire);
        assert_eq!(
            b.open(&mut wire, &mut plain),
            Err(RecordError::PeerAlert(alert::DECODE_ERROR))
        );
    }

    #[test]
    fn a_run_of_empty_records_is_bounded() {
        let (mut a, mut b) = pair(0);
        let mut wire = Vec::new();
        for _ in 0..MAX_EMPTY_RUN {
            a.seal(&[b""], &mut wire).unwrap();
        }
        a.seal(&[b"data"], &mut wire).unwrap();
        let mut plain = Vec::new();
        b.open(&mut wire, &mut plain).unwrap();
        assert_eq!(plain, b"data");
        // Data resets the run; one more than allowed in a row is refused.
        let mut wire = Vec::new();
        for _ in 0..=MAX_EMPTY_RUN {
            a.seal(&[b""], &mut wire).unwrap();
        }
        assert_eq!(b.open(&mut wire, &mut plain), Err(RecordError::EmptyFlood));
    }

    #[test]
    fn the_confidentiality_limit_ends_sending() {
        let (mut a, _) = pair(0);
        a.tx.seq = a.tx.limit - 1;
        let mut out = Vec::new();
        assert!(a.near_limit());
        a.seal(&[b"x"], &mut out).unwrap();
        assert_eq!(a.seal(&[b"y"], &mut out), Err(RecordError::Exhausted));
    }
}
