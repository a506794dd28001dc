//! The echo runtime: a deterministic agent for development, demos and benchmarks. It answers
//! `echo: <message>`, streamed in chunks of `chunk_chars` characters `delay_ms` apart on the
//! owning shard's timers (no thread, no network). With `delay_ms = 0` it answers at once.

use std::time::Duration;

use super::{estimate_tokens, Output, Runtime, Sink, Turn, Usage};

pub struct Echo {
    pub delay_ms: u64,
    pub chunk_chars: usize,
}

/// The reply the echo agent gives to `message`.
pub fn reply(message: &str) -> String {
    format!("echo: {message}")
}

/// Splits `text` into chunks of at most `n` characters (never inside a character).
pub fn chunks(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(n.max(1)).map(|c| c.iter().collect()).collect()
}

impl Runtime for Echo {
    fn start(&self, turn: Turn, sink: Sink) {
        let text = reply(turn.message());
        let parts = chunks(&text, self.chunk_chars);
        let usage = Usage {
            input: estimate_tokens(turn.message()),
            output: estimate_tokens(&text),
        };
        let delay = Duration::from_millis(self.delay_ms);
        monoio::spawn(async move {
            for part in parts {
                if !delay.is_zero() {
                    crate::shard::timer::sleep(delay).await;
                }
                if turn.cancelled() {
                    return;
                }
                sink.send(&turn.run_id, Output::Delta(part));
            }
            if !turn.cancelled() {
                sink.send(
                    &turn.run_id,
                    Output::Done {
                        usage,
                        stop_reason: "stop".into(),
                    },
                );
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_respect_characters() {
        assert_eq!(chunks("abcdé", 2), vec!["ab", "cd", "é"]);
        assert_eq!(chunks("", 3), Vec::<String>::new());
        assert_eq!(chunks(&reply("hi"), 100), vec!["echo: hi"]);
    }
}
