//! Server-to-client WebSocket frames, written straight into a connection's outbox. Server
//! frames are unmasked, so the header is all there is to it. (Inbound frames: `wsread`.)

/// Writes a final text frame header for a payload of `len` bytes.
pub fn write_text_header(out: &mut Vec<u8>, len: usize) {
    let mut buf = [0u8; 10];
    out.extend_from_slice(header_into(&mut buf, len));
}

/// Writes a final text frame header for a payload of `len` bytes into `buf`; returns it.
pub fn header_into(buf: &mut [u8; 10], len: usize) -> &[u8] {
    buf[0] = 0x81; // FIN + text
    if len < 126 {
        buf[1] = len as u8;
        &buf[..2]
    } else if len <= u16::MAX as usize {
        buf[1] = 126;
        buf[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        &buf[..4]
    } else {
        buf[1] = 127;
        buf[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        &buf[..10]
    }
}

/// Header bytes for a payload of `len`.
pub fn header_len(len: usize) -> usize {
    if len < 126 {
        2
    } else if len <= u16::MAX as usize {
        4
    } else {
        10
    }
}

/// Writes a whole text frame.
pub fn write_text(out: &mut Vec<u8>, payload: &[u8]) {
    write_text_header(out, payload.len());
    out.extend_from_slice(payload);
}

/// Writes a control frame (ping, pong, close); `payload` is at most 125 bytes (longer is cut).
pub fn write_control(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    let payload = &payload[..payload.len().min(125)];
    out.push(0x80 | opcode);
    out.push(payload.len() as u8);
    out.extend_from_slice(payload);
}

/// Writes a close frame: the code and a reason cut to fit (at a character boundary), or an
/// empty payload.
pub fn write_close(out: &mut Vec<u8>, close: Option<(u16, &str)>) {
    let mut payload = [0u8; 125];
    let len = match close {
        None => 0,
        Some((code, reason)) => {
            let mut cut = reason.len().min(123);
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            payload[..2].copy_from_slice(&code.to_be_bytes());
            payload[2..2 + cut].copy_from_slice(&reason.as_bytes()[..cut]);
            2 + cut
        }
    };
    write_control(out, super::wsread::OP_CLOSE, &payload[..len]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_sizes() {
        for (len, hdr) in [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)] {
            let mut v = Vec::new();
            write_text_header(&mut v, len);
            assert_eq!(v.len(), hdr);
            assert_eq!(header_len(len), hdr);
            assert_eq!(v[0], 0x81);
        }
        for len in [0, 125, 126, 300, 65535, 65536, 1 << 33] {
            let (mut v, mut buf) = (Vec::new(), [0u8; 10]);
            write_text_header(&mut v, len);
            assert_eq!(header_into(&mut buf, len), &v[..]);
        }
        let mut v = Vec::new();
        write_text_header(&mut v, 300);
        assert_eq!(&v, &[0x81, 126, 1, 44]);
    }

    #[test]
    fn close_frames_fit_a_control_frame() {
        let mut v = Vec::new();
        write_close(&mut v, Some((1008, "slow consumer")));
        assert_eq!(&v[..4], &[0x88, 15, 0x03, 0xf0]);
        assert_eq!(&v[4..], b"slow consumer");
        let long = "\u{e9}".repeat(100);
        let mut v = Vec::new();
        write_close(&mut v, Some((1000, &long)));
        assert_eq!(v[1], 124);
        assert!(std::str::from_utf8(&v[4..]).is_ok());
        let mut v = Vec::new();
        write_close(&mut v, None);
        assert_eq!(v, [0x88, 0]);
    }
}
