//! Calendar arithmetic (proleptic Gregorian, UTC) shared by the cron scheduler and the usage
//! reports: day numbers (days since 1970-01-01) to and from civil dates, and `YYYY-MM-DD`.

/// Days since 1970-01-01 to (year, month 1-12, day 1-31) (H. Hinnant's `civil_from_days`).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// (year, month, day) to days since 1970-01-01.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD` of a day number.
pub fn date_of_day(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Day number of `YYYY-MM-DD`, or `None` when it is not a valid date (2026-02-31 included).
/// The year has exactly four digits, so any accepted date is a small day number.
pub fn day_of_date(s: &str) -> Option<i64> {
    if s.len() != 10 || !s.is_char_boundary(4) || !s[..4].bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut it = s.split('-');
    let (y, m, d): (i64, u32, u32) = (
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
    );
    if it.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let day = days_from_civil(y, m, d);
    (date_of_day(day) == s).then_some(day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        assert_eq!(date_of_day(0), "1970-01-01");
        assert_eq!(day_of_date("1970-01-02"), Some(1));
        for d in [-1000, 0, 10_957, 20_000, 20_515] {
            assert_eq!(day_of_date(&date_of_day(d)), Some(d));
        }
        assert_eq!(day_of_date("2026-02-31"), None);
        assert_eq!(day_of_date("2026-13-01"), None);
        assert_eq!(day_of_date("x"), None);
        assert_eq!(day_of_date("9223372036854775807-01-01"), None);
        assert_eq!(day_of_date("-001-01-01"), None);
        assert_eq!(day_of_date("9999-12-31"), Some(2_932_896));
    }
}
