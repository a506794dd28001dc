//! Schedules: `at` (one-shot), `every` (interval from an anchor) and `cron` (5 or 6 field
//! expressions, as the original's Croner accepts them), and the next-run computation.
//!
//! Time zones: ringgate evaluates cron expressions in UTC. `tz` values naming UTC are accepted;
//! any other zone is refused with a clear message rather than silently evaluated in UTC
//! (the original falls back to the host zone when `tz` is absent; ringgate's host zone is UTC).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::calendar::{civil_from_days, days_from_civil};

/// Default jitter for recurring top-of-hour cron jobs (`DEFAULT_TOP_OF_HOUR_STAGGER_MS`), so a
/// fleet of `0 * * * *` jobs does not fire in the same second.
pub const DEFAULT_TOP_OF_HOUR_STAGGER_MS: u64 = 300_000;

/// Largest ECMAScript Date timestamp; the original refuses anything beyond it.
pub use crate::proto::bounds::MAX_DATE_TIMESTAMP_MS;

/// A job schedule, serialised exactly as the original (`{"kind":"every","everyMs":..}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum Schedule {
    /// One shot at an absolute time, stored as an ISO-8601 UTC string.
    #[serde(rename = "at")]
    At { at: String },
    #[serde(rename = "every")]
    Every {
        #[serde(rename = "everyMs")]
        every_ms: u64,
        #[serde(rename = "anchorMs", skip_serializing_if = "Option::is_none", default)]
        anchor_ms: Option<u64>,
    },
    #[serde(rename = "cron")]
    Cron {
        expr: String,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        tz: Option<String>,
        #[serde(rename = "staggerMs", skip_serializing_if = "Option::is_none", default)]
        stagger_ms: Option<u64>,
    },
}

impl Schedule {
    pub fn kind(&self) -> &'static str {
        match self {
            Schedule::At { .. } => "at",
            Schedule::Every { .. } => "every",
            Schedule::Cron { .. } => "cron",
        }
    }
}

/// `computeNextRunAtMs`: the next fire time strictly after `now_ms`, `None` when the schedule
/// never fires again (a past `at`, an impossible expression). Errors only for an invalid
/// cron expression or time zone, whose message is the `invalid ... params` reason.
pub fn next_run_after(schedule: &Schedule, now_ms: u64) -> Result<Option<u64>, String> {
    match schedule {
        Schedule::At { at } => Ok(parse_absolute_time_ms(at).filter(|&t| t > now_ms)),
        Schedule::Every {
            every_ms,
            anchor_ms,
        } => Ok(next_every(*every_ms, anchor_ms.unwrap_or(now_ms), now_ms)),
        Schedule::Cron { expr, tz, .. } => {
            check_tz(tz.as_deref())?;
            Ok(CronExpr::parse(expr)?.next_after(now_ms))
        }
    }
}

/// `every`: the first `anchor + k*every` strictly after now; the anchor itself when it lies
/// in the future.
pub fn next_every(every_ms: u64, anchor_ms: u64, now_ms: u64) -> Option<u64> {
    if every_ms == 0 {
        return None;
    }
    if now_ms < anchor_ms {
        return Some(anchor_ms);
    }
    let steps = (now_ms - anchor_ms) / every_ms + 1;
    let next = anchor_ms.checked_add(steps.checked_mul(every_ms)?)?;
    (next <= MAX_DATE_TIMESTAMP_MS).then_some(next)
}

/// The stagger a cron schedule gets: the explicit `staggerMs`, else the top-of-hour default.
pub fn effective_stagger_ms(expr: &str, explicit: Option<u64>) -> u64 {
    explicit.unwrap_or_else(|| default_stagger_ms(expr).unwrap_or(0))
}

/// `resolveDefaultCronStaggerMs`: 5 minutes for recurring top-of-hour expressions.
pub fn default_stagger_ms(expr: &str) -> Option<u64> {
    is_recurring_top_of_hour(expr).then_some(DEFAULT_TOP_OF_HOUR_STAGGER_MS)
}

fn is_recurring_top_of_hour(expr: &str) -> bool {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    let (zeroes, hour) = match fields.len() {
        5 => (fields[0] == "0", fields[1]),
        6 => (fields[0] == "0" && fields[1] == "0", fields[2]),
        _ => return false,
    };
    zeroes && recurring_wildcard_hour(hour)
}

fn recurring_wildcard_hour(field: &str) -> bool {
    let part_ok = |p: &str| {
        let (base, step) = match p.split_once('/') {
            Some((b, s)) => (b, Some(s)),
            None => (p, None),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let step_ok = step.is_none_or(digits);
        let base_ok = base == "*"
            || base == "?"
            || digits(base)
            || base
                .split_once('-')
                .is_some_and(|(a, b)| digits(a) && digits(b));
        step_ok && base_ok
    };
    let parts: Vec<&str> = field.split(',').collect();
    parts.iter().all(|p| part_ok(p))
        && parts
            .iter()
            .any(|p| p.starts_with('*') || p.starts_with('?'))
}

/// Stable per-job offset within the stagger window (`resolveStableCronOffsetMs`: first four
/// bytes of sha256(jobId), big-endian, modulo the window).
pub fn stable_offset_ms(job_id: &str, stagger_ms: u64) -> u64 {
    if stagger_ms <= 1 {
        return 0;
    }
    let digest = Sha256::digest(job_id.as_bytes());
    let head = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    u64::from(head) % stagger_ms
}

/// `computeStaggeredCronNextRunAtMs`: the next slot shifted by the job's stable offset.
pub fn next_staggered(
    schedule: &Schedule,
    job_id: &str,
    now_ms: u64,
) -> Result<Option<u64>, String> {
    let Schedule::Cron {
        expr, stagger_ms, ..
    } = schedule
    else {
        return next_run_after(schedule, now_ms);
    };
    let offset = stable_offset_ms(job_id, effective_stagger_ms(expr, *stagger_ms));
    if offset == 0 {
        return next_run_after(schedule, now_ms);
    }
    let mut cursor = now_ms.saturating_sub(offset);
    for _ in 0..4 {
        let Some(base) = next_run_after(schedule, cursor)? else {
            return Ok(None);
        };
        let shifted = base + offset;
        if shifted > now_ms {
            return Ok(Some(shifted));
        }
        cursor = (cursor + 1).max(base + 1000);
    }
    Ok(None)
}

/// UTC is all ringgate evaluates; say so instead of silently shifting a job's wall time.
pub fn check_tz(tz: Option<&str>) -> Result<(), String> {
    match tz.map(str::trim) {
        None | Some("") => Ok(()),
        Some(z) if is_utc_name(z) => Ok(()),
        Some(z) => Err(format!(
            "unsupported cron timezone \"{z}\": this gateway evaluates cron expressions in UTC only"
        )),
    }
}

fn is_utc_name(z: &str) -> bool {
    matches!(
        z.to_ascii_uppercase().as_str(),
        "UTC"
            | "ETC/UTC"
            | "GMT"
            | "ETC/GMT"
            | "Z"
            | "UCT"
            | "ETC/UCT"
            | "ZULU"
            | "ETC/ZULU"
            | "UNIVERSAL"
    )
}

// ---------------------------------------------------------------------------------------------
// Cron expressions

/// A parsed cron expression: one bitset per field. Seconds default to `0` for 5-field forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronExpr {
    seconds: u64,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// Day-of-month restricted (not `*`/`?`); with `dow_restricted`, either may match (Vixie).
    dom_restricted: bool,
    dow_restricted: bool,
}

const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// Value the names start at (JAN = 1, SUN = 0).
    name_base: u32,
}

const SECOND: Field = Field {
    name: "seconds",
    min: 0,
    max: 59,
    names: &[],
    name_base: 0,
};
const MINUTE: Field = Field {
    name: "minutes",
    min: 0,
    max: 59,
    names: &[],
    name_base: 0,
};
const HOUR: Field = Field {
    name: "hours",
    min: 0,
    max: 23,
    names: &[],
    name_base: 0,
};
const DAY: Field = Field {
    name: "days",
    min: 1,
    max: 31,
    names: &[],
    name_base: 0,
};
const MONTH: Field = Field {
    name: "months",
    min: 1,
    max: 12,
    names: &MONTH_NAMES,
    name_base: 1,
};
// 7 is accepted as Sunday, folded to 0 after parsing.
const WEEKDAY: Field = Field {
    name: "daysOfWeek",
    min: 0,
    max: 7,
    names: &DAY_NAMES,
    name_base: 0,
};

impl CronExpr {
    /// Parses 5 (`min hour dom mon dow`) or 6 (`sec min hour dom mon dow`) fields with `*`,
    /// `?`, lists, ranges, steps and JAN..DEC / SUN..SAT names.
    pub fn parse(expr: &str) -> Result<CronExpr, String> {
        let fields: Vec<&str> = expr.split_whitespace().collect();
        let (sec, rest) = match fields.len() {
            5 => ("0", &fields[..]),
            6 => (fields[0], &fields[1..]),
            _ => {
                return Err(format!(
                    "CronPattern: invalid configuration format ('{}'), exactly five or six space separated parts are required.",
                    expr.trim()
                ))
            }
        };
        let mut weekdays = parse_field(rest[4], &WEEKDAY)?;
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays & !(1 << 7)) | 1;
        }
        Ok(CronExpr {
            seconds: parse_field(sec, &SECOND)?,
            minutes: parse_field(rest[0], &MINUTE)?,
            hours: parse_field(rest[1], &HOUR)?,
            days: parse_field(rest[2], &DAY)?,
            months: parse_field(rest[3], &MONTH)?,
            weekdays,
            dom_restricted: !is_wildcard(rest[2]),
            dow_restricted: !is_wildcard(rest[4]),
        })
    }

    fn day_matches(&self, y: i64, m: u32, d: u32) -> bool {
        let dom = self.days & (1 << d) != 0;
        let dow = self.weekdays & (1 << weekday(y, m, d)) != 0;
        match (self.dom_restricted, self.dow_restricted) {
            (true, true) => dom || dow,
            (true, false) => dom,
            (false, true) => dow,
            (false, false) => true,
        }
    }

    /// The first matching second strictly after `now_ms` (UTC), searched day by day over at
    /// most ~8 years (enough for `0 0 29 2 *` across a skipped leap year), else `None`.
    pub fn next_after(&self, now_ms: u64) -> Option<u64> {
        let start = now_ms / 1000 + 1;
        let first_day = (start / 86_400) as i64;
        let first_sod = (start % 86_400) as u32;
        (first_day..first_day + 366 * 8).find_map(|day| {
            let (y, m, d) = civil_from_days(day);
            if self.months & (1 << m) == 0 || !self.day_matches(y, m, d) {
                return None;
            }
            let from = if day == first_day { first_sod } else { 0 };
            let sod = self.first_time_of_day(from)?;
            Some((day as u64 * 86_400 + u64::from(sod)) * 1000)
        })
    }

    /// The first matching second-of-day at or after `from`.
    fn first_time_of_day(&self, from: u32) -> Option<u32> {
        let (h0, m0, s0) = (from / 3600, from / 60 % 60, from % 60);
        for h in h0..24 {
            if self.hours & (1 << h) == 0 {
                continue;
            }
            let m_start = if h == h0 { m0 } else { 0 };
            for m in m_start..60 {
                if self.minutes & (1 << m) == 0 {
                    continue;
                }
                let s_start = if h == h0 && m == m0 { s0 } else { 0 };
                if let Some(s) = (s_start..60).find(|s| self.seconds & (1 << s) != 0) {
                    return Some(h * 3600 + m * 60 + s);
                }
            }
        }
        None
    }
}

fn is_wildcard(field: &str) -> bool {
    field == "*" || field == "?"
}

fn parse_field(text: &str, f: &Field) -> Result<u64, String> {
    let mut bits = 0u64;
    for part in text.split(',') {
        bits |= parse_part(part, f)
            .ok_or_else(|| format!("CronPattern: invalid value for {}: '{}'", f.name, text))?;
    }
    Ok(bits)
}

fn parse_part(part: &str, f: &Field) -> Option<u64> {
    let (range, step) = match part.split_once('/') {
        Some((r, s)) => (r, Some(s.parse::<u32>().ok().filter(|&s| s > 0)?)),
        None => (part, None),
    };
    let (lo, hi) = if is_wildcard(range) {
        (f.min, f.max)
    } else if let Some((a, b)) = range.split_once('-') {
        (value(a, f)?, value(b, f)?)
    } else {
        let v = value(range, f)?;
        // `5/15` means "from 5 to the end, every 15".
        (v, if step.is_some() { f.max } else { v })
    };
    if lo > hi {
        return None;
    }
    let step = step.unwrap_or(1);
    let mut bits = 0u64;
    let mut v = lo;
    while v <= hi {
        bits |= 1 << v;
        v += step;
    }
    Some(bits)
}

fn value(text: &str, f: &Field) -> Option<u32> {
    let upper = text.to_ascii_uppercase();
    if let Some(i) = f.names.iter().position(|n| *n == upper) {
        return Some(i as u32 + f.name_base);
    }
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u32>()
        .ok()
        .filter(|v| (f.min..=f.max).contains(v))
}

// ---------------------------------------------------------------------------------------------
// Calendar arithmetic (proleptic Gregorian, UTC)

/// 0 = Sunday.
fn weekday(y: i64, m: u32, d: u32) -> u32 {
    (days_from_civil(y, m, d) + 4).rem_euclid(7) as u32
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `Date.prototype.toISOString` for a non-negative timestamp: `2026-01-02T03:04:05.006Z`.
pub fn ms_to_iso(ms: u64) -> String {
    let secs = ms / 1000;
    let (y, mo, d) = civil_from_days((secs / 86_400) as i64);
    let sod = secs % 86_400;
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60,
        ms % 1000
    )
}

/// `parseAbsoluteTimeMs`: epoch milliseconds as digits, or an ISO date / date-time; a missing
/// offset means UTC. `None` for anything else or an impossible calendar date.
pub fn parse_absolute_time_ms(input: &str) -> Option<u64> {
    let raw = input.trim();
    if raw.is_empty() {
        return None;
    }
    if raw.bytes().all(|b| b.is_ascii_digit()) {
        return raw
            .parse::<u64>()
            .ok()
            .filter(|&n| n > 0 && n <= MAX_DATE_TIMESTAMP_MS);
    }
    parse_iso(raw)
}

fn parse_iso(raw: &str) -> Option<u64> {
    let b = raw.as_bytes();
    let num = |s: &[u8]| -> Option<u32> {
        if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(s).ok()?.parse().ok()
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, mo, d) = (num(&b[0..4])?, num(&b[5..7])?, num(&b[8..10])?);
    let (mut h, mut mi, mut s, mut frac_ms) = (0u32, 0u32, 0u32, 0u32);
    let mut offset_min: i64 = 0;
    let mut rest = &b[10..];
    if !rest.is_empty() {
        if rest[0] != b'T' && rest[0] != b't' || rest.len() < 6 || rest[3] != b':' {
            return None;
        }
        h = num(&rest[1..3])?;
        mi = num(&rest[4..6])?;
        rest = &rest[6..];
        if rest.first() == Some(&b':') {
            s = num(rest.get(1..3)?)?;
            rest = &rest[3..];
            if rest.first() == Some(&b'.') {
                let end = rest[1..]
                    .iter()
                    .position(|c| !c.is_ascii_digit())
                    .map_or(rest.len(), |p| p + 1);
                let digits = &rest[1..end];
                if digits.is_empty() {
                    return None;
                }
                let mut ms3 = [b'0'; 3];
                for (i, c) in digits.iter().take(3).enumerate() {
                    ms3[i] = *c;
                }
                frac_ms = num(&ms3)?;
                rest = &rest[end..];
            }
        }
        match rest {
            [] | [b'Z'] | [b'z'] => {}
            [sign @ (b'+' | b'-'), tail @ ..] => {
                let (oh, om) = match tail {
                    [a, b2, b':', c, d2] => (num(&[*a, *b2])?, num(&[*c, *d2])?),
                    [a, b2, c, d2] => (num(&[*a, *b2])?, num(&[*c, *d2])?),
                    _ => return None,
                };
                let total = i64::from(oh * 60 + om);
                offset_min = if *sign == b'+' { total } else { -total };
            }
            _ => return None,
        }
    }
    let end_of_day = h == 24 && mi == 0 && s == 0 && frac_ms == 0;
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(i64::from(y), mo) {
        return None;
    }
    if (h > 23 && !end_of_day) || mi > 59 || s > 59 {
        return None;
    }
    let days = days_from_civil(i64::from(y), mo, d);
    let ms = (days * 86_400 + i64::from(h * 3600 + mi * 60 + s) - offset_min * 60) * 1000
        + i64::from(frac_ms);
    u64::try_from(ms)
        .ok()
        .filter(|&v| v <= MAX_DATE_TIMESTAMP_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(iso: &str) -> u64 {
        parse_absolute_time_ms(iso).unwrap()
    }

    fn next(expr: &str, from: &str) -> String {
        ms_to_iso(CronExpr::parse(expr).unwrap().next_after(ms(from)).unwrap())
    }

    #[test]
    fn iso_round_trip_and_forms() {
        assert_eq!(ms("1970-01-01T00:00:00Z"), 0);
        assert_eq!(ms("2026-03-01T12:30:00Z"), 1_772_368_200_000);
        assert_eq!(ms_to_iso(1_772_368_200_123), "2026-03-01T12:30:00.123Z");
        assert_eq!(ms("2026-03-01"), ms("2026-03-01T00:00:00Z"));
        assert_eq!(ms("2026-03-01T12:30"), ms("2026-03-01T12:30:00.000Z"));
        assert_eq!(ms("2026-03-01T14:30:00+02:00"), ms("2026-03-01T12:30:00Z"));
        assert_eq!(ms("2026-03-01T10:30:00-0200"), ms("2026-03-01T12:30:00Z"));
        assert_eq!(
            ms("2026-03-01T12:30:00.5Z"),
            ms("2026-03-01T12:30:00Z") + 500
        );
        assert_eq!(ms("1772368200000"), 1_772_368_200_000);
        assert_eq!(parse_absolute_time_ms("2026-02-30T00:00:00Z"), None);
        assert_eq!(parse_absolute_time_ms("tomorrow"), None);
        assert_eq!(parse_absolute_time_ms("2026-03-01 12:00"), None);
        assert_eq!(parse_absolute_time_ms(""), None);
    }

    #[test]
    fn civil_round_trip() {
        for day in [-1000i64, 0, 59, 60, 11_016, 20_513, 50_000] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
        assert_eq!(weekday(1970, 1, 1), 4); // Thursday
        assert_eq!(weekday(2026, 3, 1), 0); // Sunday
    }

    #[test]
    fn cron_daily_and_strictly_after() {
        assert_eq!(
            next("0 3 * * *", "2026-03-01T02:59:59Z"),
            "2026-03-01T03:00:00.000Z"
        );
        // Exactly on the slot: strictly after, so tomorrow.
        assert_eq!(
            next("0 3 * * *", "2026-03-01T03:00:00Z"),
            "2026-03-02T03:00:00.000Z"
        );
        assert_eq!(
            next("0 3 * * *", "2026-03-01T03:00:00.500Z"),
            "2026-03-02T03:00:00.000Z"
        );
    }

    #[test]
    fn cron_steps_ranges_lists() {
        assert_eq!(
            next("*/15 * * * *", "2026-03-01T10:07:00Z"),
            "2026-03-01T10:15:00.000Z"
        );
        assert_eq!(
            next("5/20 * * * *", "2026-03-01T10:26:00Z"),
            "2026-03-01T10:45:00.000Z"
        );
        assert_eq!(
            next("0 9-17/4 * * *", "2026-03-01T13:00:00Z"),
            "2026-03-01T17:00:00.000Z"
        );
        assert_eq!(
            next("0 8,20 * * *", "2026-03-01T08:00:00Z"),
            "2026-03-01T20:00:00.000Z"
        );
        assert_eq!(
            next("59 23 31 12 *", "2026-03-01T00:00:00Z"),
            "2026-12-31T23:59:00.000Z"
        );
    }

    #[test]
    fn cron_names_and_weekdays() {
        // 2026-03-01 is a Sunday.
        assert_eq!(
            next("0 9 * * MON-FRI", "2026-03-01T00:00:00Z"),
            "2026-03-02T09:00:00.000Z"
        );
        assert_eq!(
            next("0 9 * * sun", "2026-03-01T10:00:00Z"),
            "2026-03-08T09:00:00.000Z"
        );
        assert_eq!(
            next("0 9 * * 7", "2026-03-01T10:00:00Z"),
            "2026-03-08T09:00:00.000Z"
        );
        assert_eq!(
            next("0 0 1 JAN *", "2026-03-01T00:00:00Z"),
            "2027-01-01T00:00:00.000Z"
        );
        assert_eq!(
            next("0 0 * FEB,mar ?", "2026-03-31T12:00:00Z"),
            "2027-02-01T00:00:00.000Z"
        );
    }

    #[test]
    fn cron_dom_or_dow_when_both_restricted() {
        // Vixie semantics: the 15th OR any Monday.
        assert_eq!(
            next("0 0 15 * MON", "2026-03-01T00:00:00Z"),
            "2026-03-02T00:00:00.000Z"
        );
        assert_eq!(
            next("0 0 15 * MON", "2026-03-10T00:00:00Z"),
            "2026-03-15T00:00:00.000Z"
        );
    }

    #[test]
    fn cron_six_fields_and_leap_day() {
        assert_eq!(
            next("30 * * * * *", "2026-03-01T10:00:30Z"),
            "2026-03-01T10:01:30.000Z"
        );
        assert_eq!(
            next("*/10 * * * * *", "2026-03-01T10:00:01Z"),
            "2026-03-01T10:00:10.000Z"
        );
        assert_eq!(
            next("0 0 29 2 *", "2026-03-01T00:00:00Z"),
            "2028-02-29T00:00:00.000Z"
        );
        assert_eq!(CronExpr::parse("0 0 30 2 *").unwrap().next_after(0), None);
    }

    #[test]
    fn cron_rejects_bad_expressions() {
        let e = CronExpr::parse("0 0 * *").unwrap_err();
        assert!(e.contains("exactly five or six"), "{e}");
        assert!(CronExpr::parse("61 * * * *").is_err());
        assert!(CronExpr::parse("* 24 * * *").is_err());
        assert!(CronExpr::parse("* * 0 * *").is_err());
        assert!(CronExpr::parse("*/0 * * * *").is_err());
        assert!(CronExpr::parse("5-1 * * * *").is_err());
        assert!(CronExpr::parse("* * * FOO *").is_err());
    }

    #[test]
    fn every_with_anchor() {
        assert_eq!(next_every(1000, 5000, 100), Some(5000));
        assert_eq!(next_every(1000, 5000, 5000), Some(6000));
        assert_eq!(next_every(1000, 5000, 6500), Some(7000));
        assert_eq!(
            next_every(1_800_000, 1_193_378, 1_795_508_393_396),
            Some(1_795_510_193_378)
        );
        assert_eq!(next_every(0, 0, 0), None);
    }

    #[test]
    fn at_is_one_shot() {
        let s = Schedule::At {
            at: "2026-03-01T12:00:00.000Z".into(),
        };
        let t = ms("2026-03-01T12:00:00Z");
        assert_eq!(next_run_after(&s, t - 1).unwrap(), Some(t));
        assert_eq!(next_run_after(&s, t).unwrap(), None);
    }

    #[test]
    fn tz_utc_only() {
        assert!(check_tz(Some("UTC")).is_ok());
        assert!(check_tz(Some("Etc/UTC")).is_ok());
        assert!(check_tz(None).is_ok());
        let e = check_tz(Some("Europe/Paris")).unwrap_err();
        assert!(e.contains("Europe/Paris"));
    }

    #[test]
    fn stagger_defaults_and_offsets() {
        assert_eq!(default_stagger_ms("0 * * * *"), Some(300_000));
        assert_eq!(default_stagger_ms("0 */2 * * *"), Some(300_000));
        assert_eq!(default_stagger_ms("0 3 * * *"), None);
        assert_eq!(default_stagger_ms("0 0 * * * *"), Some(300_000));
        let off = stable_offset_ms("job-1", 300_000);
        assert!(off < 300_000);
        assert_eq!(off, stable_offset_ms("job-1", 300_000));
        let s = Schedule::Cron {
            expr: "0 * * * *".into(),
            tz: None,
            stagger_ms: None,
        };
        let now = ms("2026-03-01T10:00:00Z");
        let n = next_staggered(&s, "job-1", now).unwrap().unwrap();
        assert!(n > now && n < now + 3_600_000 + 300_000);
        assert_eq!((n - off) % 3_600_000, 0);
        // staggerMs 0 disables it.
        let s0 = Schedule::Cron {
            expr: "0 * * * *".into(),
            tz: None,
            stagger_ms: Some(0),
        };
        assert_eq!(
            next_staggered(&s0, "job-1", now).unwrap(),
            Some(now + 3_600_000)
        );
    }

    #[test]
    fn schedule_serde_shapes() {
        let s: Schedule =
            serde_json::from_str(r#"{"kind":"every","everyMs":1800000,"anchorMs":1193378}"#)
                .unwrap();
        assert_eq!(
            s,
            Schedule::Every {
                every_ms: 1_800_000,
                anchor_ms: Some(1_193_378)
            }
        );
        assert_eq!(
            serde_json::to_string(&Schedule::Cron {
                expr: "0 3 * * *".into(),
                tz: None,
                stagger_ms: None
            })
            .unwrap(),
            r#"{"kind":"cron","expr":"0 3 * * *"}"#
        );
    }
}
