//! UTC calendar arithmetic for backup names, listings and retention (days, ISO weeks,
//! months), without a time-zone database: Coffer's times are UTC throughout.

/// A UTC calendar date and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DateTime {
    /// Year.
    pub(crate) year: i64,
    /// Month, 1 to 12.
    pub(crate) month: u32,
    /// Day of the month, 1 to 31.
    pub(crate) day: u32,
    /// Seconds since midnight.
    pub(crate) seconds: u32,
}

/// The date and time of Unix time `t`.
pub(crate) fn from_unix(t: i64) -> DateTime {
    let days = t.div_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    DateTime {
        year,
        month,
        day,
        seconds: t.rem_euclid(86_400) as u32,
    }
}

/// `2026-11-23T10:15:00Z`.
pub(crate) fn rfc3339(t: i64) -> String {
    let d = from_unix(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        d.year,
        d.month,
        d.day,
        d.seconds / 3600,
        d.seconds / 60 % 60,
        d.seconds % 60
    )
}

/// `20261123T101500Z`: a default backup name that sorts by time and is a valid
/// object-key segment and file name everywhere.
pub(crate) fn compact(t: i64) -> String {
    rfc3339(t).replace(['-', ':'], "")
}

/// The day number (days since 1970-01-01) of Unix time `t`.
pub(crate) fn day(t: i64) -> i64 {
    t.div_euclid(86_400)
}

/// `(ISO year, ISO week)` of Unix time `t`: weeks start on Monday, and week 1 is the
/// one holding the year's first Thursday.
pub(crate) fn iso_week(t: i64) -> (i64, u32) {
    let days = day(t);
    // 1970-01-01 was a Thursday; weekday 0 = Monday.
    let weekday = (days + 3).rem_euclid(7);
    let thursday = days - weekday + 3;
    let (year, _, _) = civil_from_days(thursday);
    let jan1 = days_from_civil(year, 1, 1);
    (year, ((thursday - jan1) / 7 + 1) as u32)
}

/// `(year, month)` of Unix time `t`.
pub(crate) fn month(t: i64) -> (i64, u32) {
    let d = from_unix(t);
    (d.year, d.month)
}

/// Howard Hinnant's `civil_from_days`: proleptic Gregorian date of a day number.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
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

/// The inverse of [`civil_from_days`].
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_434_900), "2026-11-23T11:55:00Z");
        assert_eq!(compact(1_795_434_900), "20261123T115500Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
        for days in -800_000..800_000i64 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn iso_weeks() {
        let at = |y, m, d| days_from_civil(y, m, d) * 86_400;
        assert_eq!(iso_week(at(2026, 11, 23)), (2026, 48));
        // 2021-01-03 (a Sunday) is in week 53 of 2020; 2024-12-30 in week 1 of 2025.
        assert_eq!(iso_week(at(2021, 1, 3)), (2020, 53));
        assert_eq!(iso_week(at(2021, 1, 4)), (2021, 1));
        assert_eq!(iso_week(at(2024, 12, 30)), (2025, 1));
        assert_eq!(month(at(2024, 12, 30)), (2024, 12));
    }
}
