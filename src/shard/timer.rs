//! Every sleep a shard arms goes through here, so no duration — however it was computed — can
//! reach the runtime's timer unchecked. monoio panics ("Duration too far into the future") on
//! durations its clock cannot represent, and a panic on a shard thread is an outage; client
//! durations are bounded by their params schemas ([`crate::proto::bounds`]) before they get
//! this far, and this clamp is the second line.

use std::time::Duration;

/// Longest single sleep: JavaScript's `setTimeout` ceiling (2³¹−1 ms, about 24.8 days), far
/// inside monoio's timer wheel (2³⁶ ms). Code that waits longer re-checks its deadline when
/// the sleep ends.
pub use crate::proto::bounds::MAX_SLEEP_MS;

/// A sleep of `ms` milliseconds, clamped to [`MAX_SLEEP_MS`].
pub fn sleep_ms(ms: u64) -> monoio::time::Sleep {
    monoio::time::sleep(clamp(Duration::from_millis(ms)))
}

/// A sleep of `d`, clamped to [`MAX_SLEEP_MS`].
pub fn sleep(d: Duration) -> monoio::time::Sleep {
    monoio::time::sleep(clamp(d))
}

fn clamp(d: Duration) -> Duration {
    d.min(Duration::from_millis(MAX_SLEEP_MS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_durations_are_clamped() {
        assert_eq!(
            clamp(Duration::from_millis(u64::MAX)),
            Duration::from_millis(MAX_SLEEP_MS)
        );
        assert_eq!(clamp(Duration::MAX), Duration::from_millis(MAX_SLEEP_MS));
        assert_eq!(clamp(Duration::from_millis(5)), Duration::from_millis(5));
    }

    #[test]
    fn a_huge_sleep_is_armed_without_panicking() {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap();
        rt.block_on(async {
            monoio::select! {
                _ = sleep_ms(u64::MAX) => panic!("a 24-day sleep ended at once"),
                _ = sleep(Duration::MAX) => panic!("a 24-day sleep ended at once"),
                _ = sleep_ms(5) => {}
            }
        });
    }
}
