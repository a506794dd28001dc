//! Client-to-server WebSocket frames (RFC 6455), sans-IO: [`next_frame`] finds one frame in a
//! byte buffer and unmasks its payload in place; [`Messages`] joins fragments and applies the
//! protocol rules. The shard reads a socket into one buffer it shares between connections and
//! parses there, so a connection keeps bytes of its own only while a frame is incomplete
//! ([`Messages`] is a few words; an idle connection owns no read buffer).
//!
//! The rules are tungstenite's (the codec this replaces on the read side): masked frames only,
//! no reserved bits or opcodes, control frames final and at most 125 bytes, fragments only
//! inside a fragmented message, frames and messages bounded by the connection's limit, text
//! valid UTF-8. `tools/fuzz` checks this reader against tungstenite on the same bytes.

use std::borrow::Cow;

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Why the stream of frames cannot go on; each maps to a close code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsError {
    /// A frame or message over the limit (1009).
    TooBig,
    /// A protocol violation (1002).
    Protocol(&'static str),
    /// A text message or close reason that is not UTF-8 (1007).
    Utf8,
}

/// One frame found at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub fin: bool,
    pub opcode: u8,
    /// Unmasked.
    pub payload: &'a [u8],
}

/// What [`next_frame`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Next<'a> {
    /// A whole frame, and how many bytes of the buffer it used.
    Frame(Frame<'a>, usize),
    /// The buffer holds the start of a frame: `need` bytes in all are needed to go on (the
    /// header's size when even that is incomplete).
    Incomplete { need: usize },
}

/// Finds the frame at the start of `buf`, unmasking its payload in place. A frame whose
/// declared payload exceeds `limit` is refused from its header, before its bytes arrive.
pub fn next_frame(buf: &mut [u8], limit: usize) -> Result<Next<'_>, WsError> {
    if buf.len() < 2 {
        return Ok(Next::Incomplete { need: 2 });
    }
    let (b0, b1) = (buf[0], buf[1]);
    if b0 & 0x70 != 0 {
        return Err(WsError::Protocol("reserved bits are non-zero"));
    }
    let (fin, opcode) = (b0 & 0x80 != 0, b0 & 0x0F);
    if !matches!(
        opcode,
        OP_CONTINUATION | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG
    ) {
        return Err(WsError::Protocol("unknown opcode"));
    }
    if b1 & 0x80 == 0 {
        return Err(WsError::Protocol("unmasked frame from client"));
    }
    let (len, at) = match b1 & 0x7F {
        126 => {
            if buf.len() < 4 {
                return Ok(Next::Incomplete { need: 8 });
            }
            (u16::from_be_bytes([buf[2], buf[3]]) as u64, 4)
        }
        127 => {
            if buf.len() < 10 {
                return Ok(Next::Incomplete { need: 14 });
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(b), 10)
        }
        n => (n as u64, 2),
    };
    if opcode >= OP_CLOSE {
        if !fin {
            return Err(WsError::Protocol("fragmented control frame"));
        }
        if len > 125 {
            return Err(WsError::Protocol("control frame too big"));
        }
    }
    // (The second bound keeps `start + len` below from overflowing whatever the limit.)
    if len > limit as u64 || len > isize::MAX as u64 {
        return Err(WsError::TooBig);
    }
    let len = len as usize;
    let start = at + 4;
    let end = start + len;
    if buf.len() < end {
        return Ok(Next::Incomplete { need: end });
    }
    let mut mask = [0u8; 4];
    mask.copy_from_slice(&buf[at..start]);
    let payload = &mut buf[start..end];
    unmask(payload, mask);
    Ok(Next::Frame(
        Frame {
            fin,
            opcode,
            payload,
        },
        end,
    ))
}

/// XORs `payload` with the masking key, eight bytes at a time.
fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = payload.chunks_exact_mut(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        c.copy_from_slice(&(u64::from_ne_bytes(w) ^ wide).to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
}

/// A complete inbound item.
#[derive(Debug, PartialEq, Eq)]
pub enum In<'a> {
    /// A whole data message (text already checked to be UTF-8).
    Message(Cow<'a, [u8]>),
    Ping(&'a [u8]),
    Pong,
    /// The peer's close: its code and reason, if it sent any (a disallowed code reads as
    /// 1002, as tungstenite replies).
    Close(Option<(u16, &'a str)>),
    /// A fragment was taken into the message being assembled.
    Fragment,
}

/// The part of a fragmented message received so far.
#[derive(Debug)]
struct Partial {
    text: bool,
    bytes: Vec<u8>,
}

/// A connection's message state between frames: empty (no allocation) unless a fragmented
/// message is in progress.
#[derive(Debug, Default)]
pub struct Messages {
    partial: Option<Box<Partial>>,
}

impl Messages {
    /// Takes one frame; `limit` bounds the assembled message too.
    pub fn on_frame<'a>(&mut self, f: Frame<'a>, limit: usize) -> Result<In<'a>, WsError> {
        match f.opcode {
            OP_TEXT | OP_BINARY => {
                if self.partial.is_some() {
                    return Err(WsError::Protocol("data frame inside a fragmented message"));
                }
                let text = f.opcode == OP_TEXT;
                if f.fin {
                    if text && std::str::from_utf8(f.payload).is_err() {
                        return Err(WsError::Utf8);
                    }
                    return Ok(In::Message(Cow::Borrowed(f.payload)));
                }
                self.partial = Some(Box::new(Partial {
                    text,
                    bytes: f.payload.to_vec(),
                }));
                Ok(In::Fragment)
            }
            OP_CONTINUATION => {
                let Some(p) = self.partial.as_mut() else {
                    return Err(WsError::Protocol("continuation without a message"));
                };
                if p.bytes.len() + f.payload.len() > limit {
                    return Err(WsError::TooBig);
                }
                p.bytes.extend_from_slice(f.payload);
                if !f.fin {
                    return Ok(In::Fragment);
                }
                let p = self.partial.take().expect("checked above");
                if p.text && std::str::from_utf8(&p.bytes).is_err() {
                    return Err(WsError::Utf8);
                }
                Ok(In::Message(Cow::Owned(p.bytes)))
            }
            OP_PING => Ok(In::Ping(f.payload)),
            OP_PONG => Ok(In::Pong),
            OP_CLOSE => close_payload(f.payload).map(In::Close),
            _ => Err(WsError::Protocol("unknown opcode")),
        }
    }
}

/// Reads a close frame's payload (RFC 6455 §5.5.1, §7.4).
fn close_payload(p: &[u8]) -> Result<Option<(u16, &str)>, WsError> {
    match p.len() {
        0 => Ok(None),
        1 => Err(WsError::Protocol("close frame with a one-byte payload")),
        _ => {
            let code = u16::from_be_bytes([p[0], p[1]]);
            let reason = std::str::from_utf8(&p[2..]).map_err(|_| WsError::Utf8)?;
            if code_allowed(code) {
                Ok(Some((code, reason)))
            } else {
                Ok(Some((1002, "Protocol violation")))
            }
        }
    }
}

/// Codes a peer may send (tungstenite's `CloseCode::is_allowed`).
fn code_allowed(code: u16) -> bool {
    !matches!(code, 0..=999 | 1004..=1006 | 1014..=2999 | 5000..)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame.
    fn frame(b0: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut v = vec![b0];
        match payload.len() {
            n if n < 126 => v.push(0x80 | n as u8),
            n if n <= 0xFFFF => {
                v.push(0x80 | 126);
                v.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                v.push(0x80 | 127);
                v.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        v.extend_from_slice(&mask);
        v.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        v
    }

    fn one(bytes: &mut [u8], limit: usize) -> Result<(Vec<u8>, u8, bool, usize), WsError> {
        match next_frame(bytes, limit)? {
            Next::Frame(f, used) => Ok((f.payload.to_vec(), f.opcode, f.fin, used)),
            Next::Incomplete { need } => panic!("incomplete, need {need}"),
        }
    }

    #[test]
    fn unmasks_every_length_encoding() {
        for n in [0, 1, 7, 8, 9, 125, 126, 127, 65535, 65536, 70_000] {
            let payload: Vec<u8> = (0..n).map(|i| (i * 31 % 251) as u8).collect();
            let mut f = frame(0x81, &payload);
            let total = f.len();
            let (p, op, fin, used) = one(&mut f, 1 << 20).unwrap();
            assert_eq!(
                (p, op, fin, used),
                (payload, OP_TEXT, true, total),
                "len {n}"
            );
        }
    }

    #[test]
    fn every_prefix_is_incomplete_and_asks_for_more() {
        let mut whole = frame(0x81, &[b'x'; 300]);
        whole.extend_from_slice(b"trailing bytes of the next frame");
        let total = whole.len() - 32;
        for cut in 0..total {
            let mut part = whole[..cut].to_vec();
            match next_frame(&mut part, 1 << 20).unwrap() {
                Next::Incomplete { need } => assert!(need > cut, "cut {cut} need {need}"),
                Next::Frame(..) => panic!("frame from {cut} bytes"),
            }
        }
        let (_, _, _, used) = one(&mut whole, 1 << 20).unwrap();
        assert_eq!(used, total);
    }

    #[test]
    fn refuses_what_tungstenite_refuses() {
        let mut unmasked = vec![0x81, 0x01, b'x'];
        assert!(matches!(
            next_frame(&mut unmasked, 100),
            Err(WsError::Protocol(_))
        ));
        for b0 in [0x81 | 0x40, 0x81 | 0x20, 0x81 | 0x10, 0x83, 0x8B] {
            assert!(matches!(
                next_frame(&mut frame(b0, b"x"), 100),
                Err(WsError::Protocol(_))
            ));
        }
        // Control frames: final, and at most 125 bytes.
        assert!(matches!(
            next_frame(&mut frame(0x09, b""), 100),
            Err(WsError::Protocol(_))
        ));
        assert!(matches!(
            next_frame(&mut frame(0x89, &[0; 126]), 1000),
            Err(WsError::Protocol(_))
        ));
        // Over the limit: refused from the header alone.
        let mut big = frame(0x81, &[b'x'; 101]);
        big.truncate(8);
        assert_eq!(next_frame(&mut big, 100), Err(WsError::TooBig));
        let mut huge = vec![0x81, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        assert_eq!(next_frame(&mut huge, usize::MAX), Err(WsError::TooBig));
    }

    #[test]
    fn joins_fragments_within_the_limit() {
        let mut m = Messages::default();
        let f = |fin, opcode, payload| Frame {
            fin,
            opcode,
            payload,
        };
        assert_eq!(m.on_frame(f(false, OP_TEXT, b"hel"), 10), Ok(In::Fragment));
        assert_eq!(m.on_frame(f(true, OP_PING, b"p"), 10), Ok(In::Ping(b"p")));
        assert_eq!(
            m.on_frame(f(false, OP_TEXT, b"x"), 10),
            Err(WsError::Protocol("data frame inside a fragmented message"))
        );
        assert_eq!(
            m.on_frame(f(false, OP_CONTINUATION, b"lo "), 10),
            Ok(In::Fragment)
        );
        assert_eq!(
            m.on_frame(f(true, OP_CONTINUATION, b"you"), 10),
            Ok(In::Message(Cow::Owned(b"hello you".to_vec())))
        );
        assert!(m.partial.is_none());
        assert!(matches!(
            m.on_frame(f(true, OP_CONTINUATION, b"x"), 10),
            Err(WsError::Protocol(_))
        ));
        let mut m = Messages::default();
        m.on_frame(f(false, OP_BINARY, b"123456"), 10).unwrap();
        assert_eq!(
            m.on_frame(f(true, OP_CONTINUATION, b"78901"), 10),
            Err(WsError::TooBig)
        );
    }

    #[test]
    fn text_must_be_utf8_binary_need_not() {
        let f = |opcode, payload| Frame {
            fin: true,
            opcode,
            payload,
        };
        let mut m = Messages::default();
        assert_eq!(m.on_frame(f(OP_TEXT, b"\xff"), 10), Err(WsError::Utf8));
        assert!(matches!(
            m.on_frame(f(OP_BINARY, b"\xff"), 10),
            Ok(In::Message(_))
        ));
        // A code point split across fragments is fine once joined.
        let mut m = Messages::default();
        let snow = "\u{2603}".as_bytes();
        m.on_frame(
            Frame {
                fin: false,
                opcode: OP_TEXT,
                payload: &snow[..1],
            },
            10,
        )
        .unwrap();
        assert!(matches!(
            m.on_frame(
                Frame {
                    fin: true,
                    opcode: OP_CONTINUATION,
                    payload: &snow[1..]
                },
                10
            ),
            Ok(In::Message(_))
        ));
    }

    #[test]
    fn close_frames() {
        let f = |payload| Frame {
            fin: true,
            opcode: OP_CLOSE,
            payload,
        };
        let mut m = Messages::default();
        assert_eq!(m.on_frame(f(b""), 10), Ok(In::Close(None)));
        assert!(matches!(
            m.on_frame(f(b"\x03"), 10),
            Err(WsError::Protocol(_))
        ));
        assert_eq!(
            m.on_frame(f(b"\x03\xe8bye"), 10),
            Ok(In::Close(Some((1000, "bye"))))
        );
        assert_eq!(
            m.on_frame(f(b"\x03\xed"), 10),
            Ok(In::Close(Some((1002, "Protocol violation"))))
        );
        assert_eq!(m.on_frame(f(b"\x03\xe8\xff"), 10), Err(WsError::Utf8));
    }
}
