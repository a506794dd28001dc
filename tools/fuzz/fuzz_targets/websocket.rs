//! WebSocket frames as a shard reads them: ringgate's sans-IO reader (`proto::wsread`, with
//! the pre-auth frame limit), checked against tungstenite's server context on the same bytes.
//! Both must accept exactly the same data messages, in the same order, with the same bytes,
//! whatever the input; each message is also fed to the request parser.
#![no_main]

use std::io::{self, Read, Write};

use libfuzzer_sys::fuzz_target;
use ringgate::proto::wsread::{self, In, Next};
use tungstenite::protocol::{Message, Role, WebSocketConfig, WebSocketContext};

const LIMIT: usize = 4096;

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

/// Data messages tungstenite reads before its first error, close or the end of input.
fn tungstenite_messages(data: &[u8]) -> Vec<Vec<u8>> {
    let config = WebSocketConfig::default()
        .read_buffer_size(1024)
        .write_buffer_size(0)
        .max_message_size(Some(LIMIT))
        .max_frame_size(Some(LIMIT));
    let mut ws = WebSocketContext::from_partially_read(Vec::new(), Role::Server, Some(config));
    let mut io = Io {
        input: data,
        out: Vec::new(),
    };
    let mut out = Vec::new();
    for _ in 0..10_000 {
        match ws.read(&mut io) {
            Ok(Message::Text(t)) => out.push(t.as_bytes().to_vec()),
            Ok(Message::Binary(b)) => out.push(b.to_vec()),
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    out
}

/// The same through ringgate's reader, fed in the same small pieces.
fn ringgate_messages(data: &[u8]) -> Vec<Vec<u8>> {
    let mut msgs = wsread::Messages::default();
    let mut buf: Vec<u8> = Vec::new();
    let mut input = data;
    let mut out = Vec::new();
    loop {
        match wsread::next_frame(&mut buf, LIMIT) {
            Ok(Next::Frame(f, used)) => {
                let item = msgs.on_frame(f, LIMIT);
                match item {
                    Ok(In::Message(m)) => out.push(m.into_owned()),
                    Ok(In::Close(_)) | Err(_) => break,
                    Ok(_) => {}
                }
                buf.drain(..used);
            }
            Ok(Next::Incomplete { .. }) => {
                if input.is_empty() {
                    break;
                }
                let n = input.len().min(7);
                buf.extend_from_slice(&input[..n]);
                input = &input[n..];
            }
            Err(_) => break,
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let ours = ringgate_messages(data);
    let theirs = tungstenite_messages(data);
    assert_eq!(ours, theirs, "readers disagree");
    let mut parser = ringgate::proto::frame::Parser::default();
    for m in &ours {
        let _ = parser.parse(m);
    }
});
