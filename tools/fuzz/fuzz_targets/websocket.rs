//! WebSocket frames as a shard reads them: tungstenite's server context with ringgate's
//! limits (small read chunk, pre-auth frame limit), fed from the fuzz input.
#![no_main]

use std::io::{self, Read, Write};

use libfuzzer_sys::fuzz_target;
use tungstenite::protocol::{Role, WebSocketConfig, WebSocketContext};

struct Io<'a> {
    input: &'a [u8],
    out: Vec<u8>,
}

impl Read for Io<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.input.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        // Small reads, like a socket delivering bytes in pieces.
        let n = buf.len().min(self.input.len()).min(7);
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input = &self.input[n..];
        Ok(n)
    }
}

impl Write for Io<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let config = WebSocketConfig::default()
        .read_buffer_size(ringgate::shard::client::READ_CHUNK)
        .write_buffer_size(0)
        .max_message_size(Some(4096))
        .max_frame_size(Some(4096));
    let mut ws = WebSocketContext::from_partially_read(Vec::new(), Role::Server, Some(config));
    let mut io = Io {
        input: data,
        out: Vec::new(),
    };
    for _ in 0..10_000 {
        match ws.read(&mut io) {
            Ok(msg) => {
                if let Ok(text) = msg.to_text() {
                    let mut parser = ringgate::proto::frame::Parser::default();
                    let _ = parser.parse(text.as_bytes());
                }
            }
            Err(_) => break,
        }
    }
});
