//! The echo runtime: a deterministic agent for development, demos and benchmarks. It answers
//! `echo: <message>`, streamed in chunks of `chunk_chars` characters `delay_ms` apart on the
//! owning shard's timers (no thread, no network). With `delay_ms = 0` it answers at once.
//! It only says what to report; the shard's driver plays it.

use super::{estimate_tokens, Output, Turn, Usage};

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

impl Echo {
    /// Everything the echo agent reports for `turn`, in order: the reply in chunks, then
    /// `Done`. The shard plays them `delay_ms` apart on its own timers.
    pub fn outputs(&self, turn: &Turn) -> Vec<Output> {
        let text = reply(turn.message());
        let usage = Usage {
            input: estimate_tokens(turn.message()),
            output: estimate_tokens(&text),
        };
        let mut out: Vec<Output> = chunks(&text, self.chunk_chars)
            .into_iter()
            .map(Output::Delta)
            .collect();
        out.push(Output::Done {
            usage,
            stop_reason: "stop".into(),
        });
        out
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
