//! Every sleep a shard arms is clamped ([`crate::rt::sleep`] does it, so the seam's
//! `timeout` is covered too), so no duration — however it was computed — can reach the
//! runtime's timer unchecked. monoio panics ("Duration too far into the future") on
//! durations its clock cannot represent (glommio on an `Instant` overflow), and a panic on a
//! shard thread is an outage; client durations are bounded by their params schemas
//! ([`crate::proto::bounds`]) before they get this far, and this clamp is the second line.

use std::time::Duration;

/// Longest single sleep: JavaScript's `setTimeout` ceiling (2³¹−1 ms, about 24.8 days), far
/// inside monoio's timer wheel (2³⁶ ms). Code that waits longer re-checks its deadline when
/// the sleep ends.
pub use crate::proto::bounds::MAX_SLEEP_MS;

/// A sleep of `ms` milliseconds, clamped to [`MAX_SLEEP_MS`].
pub fn sleep_ms(ms: u64) -> crate::rt::Sleep {
    crate::rt::sleep(Duration::from_millis(ms))
}

/// A sleep of `d`, clamped to [`MAX_SLEEP_MS`].
pub fn sleep(d: Duration) -> crate::rt::Sleep {
    crate::rt::sleep(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_durations_are_clamped() {
        use crate::rt::clamp;
        assert_eq!(
            clamp(Duration::from_millis(u64::MAX)),
            Duration::from_millis(MAX_SLEEP_MS)
        );
        assert_eq!(clamp(Duration::MAX), Duration::from_millis(MAX_SLEEP_MS));
        assert_eq!(clamp(Duration::from_millis(5)), Duration::from_millis(5));
    }

    #[test]
    fn a_huge_sleep_is_armed_without_panicking() {
        use crate::rt::{select, Either, Kind};
        let mut kinds = vec![Kind::MonoioEpoll];
        if crate::rt::io_uring_available() {
            kinds.push(Kind::MonoioUring);
            if crate::rt::glommio_preflight().is_ok() {
                kinds.push(Kind::Glommio);
            }
        }
        for kind in kinds {
            crate::rt::block_on(kind, async move {
                let huge = select(sleep_ms(u64::MAX), sleep(Duration::MAX));
                match select(huge, sleep_ms(5)).await {
                    Either::Left(_) => panic!("{kind:?}: a 24-day sleep ended at once"),
                    Either::Right(()) => {}
                }
            });
        }
    }
}
