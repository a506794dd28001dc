//! Bounds on the numbers clients send. Every duration, count, size and version a request
//! carries is bounded in its method's params schema (so a value out of range gets
//! `INVALID_REQUEST` naming the field and the limit) and is then used with saturating
//! arithmetic. RELIABILITY.md lists the limits.
//!
//! Durations follow the original gateway: its schemas take any non-negative integer and it
//! clamps timers at run time (`resolveTimerTimeoutMs`, to [`MAX_TIMER_TIMEOUT_MS`]). ringgate
//! takes the same values — up to [`MAX_SAFE_INTEGER`], beyond which a JSON number is no longer
//! an exact integer for a JavaScript client — and clamps the same way, so a client that asks
//! for "as long as possible" waits about 24.8 days on either gateway.

use serde_json::{json, Value};

/// `Number.MAX_SAFE_INTEGER`: the largest integer every client can send exactly.
pub const MAX_SAFE_INTEGER: u64 = 9_007_199_254_740_991;

/// The original's `MAX_TIMER_TIMEOUT_MS`: the longest wait a client can ask for.
pub const MAX_TIMER_TIMEOUT_MS: u64 = 2_147_000_000;

// Every clamped client timeout is a sleep the runtime can arm.
/// The longest sleep the runtime is asked for (2³¹−1 ms, JavaScript's `setTimeout` ceiling):
/// the runtime's timer panics on durations too far in the future, so every sleep is clamped
/// to this.
pub const MAX_SLEEP_MS: u64 = i32::MAX as u64;

const _: () = assert!(MAX_TIMER_TIMEOUT_MS <= MAX_SLEEP_MS);

/// The original's `MAX_DATE_TIMESTAMP_MS` (the JavaScript `Date` range): timestamps and
/// schedule intervals are at most this.
pub const MAX_DATE_TIMESTAMP_MS: u64 = 8_640_000_000_000_000;

/// A client duration as a timer will use it.
pub fn timer_ms(ms: u64) -> u64 {
    ms.min(MAX_TIMER_TIMEOUT_MS)
}

/// Schema of an integer in `[min, max]`.
pub fn int(min: u64, max: u64) -> Value {
    json!({"type": "integer", "minimum": min, "maximum": max})
}

/// Schema of a duration in milliseconds: an integer in `[min, MAX_SAFE_INTEGER]` (clamped to
/// [`MAX_TIMER_TIMEOUT_MS`] when used).
pub fn duration_ms(min: u64) -> Value {
    int(min, MAX_SAFE_INTEGER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_are_clamped_like_the_original() {
        assert_eq!(timer_ms(u64::MAX), MAX_TIMER_TIMEOUT_MS);
        assert_eq!(timer_ms(30_000), 30_000);
    }
}
