//! Days as integers (days since 1970-01-01) and the calendar arithmetic the simulation needs.
//!
//! Integer days keep the hot loop free of date types and make every date printable without
//! allocation; the civil-date conversions are Howard Hinnant's public-domain algorithms.

/// Days since 1970-01-01.
pub type Day = i32;

/// The day of a civil date.
pub fn day_of(year: i32, month: u32, day: u32) -> Day {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = month as i32;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i32 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date (year, month, day) of a day.
pub fn civil(day: Day) -> (i32, u32, u32) {
    let z = day + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

/// Monday = 0 ... Sunday = 6.
#[inline]
pub fn weekday(day: Day) -> usize {
    (day + 3).rem_euclid(7) as usize
}

/// Position in the year as a fraction in [0, 1), for seasonal curves.
#[inline]
pub fn year_fraction(day: Day) -> f64 {
    // The mean tropical year is close enough: seasonality needs no leap-day precision.
    (day as f64 / 365.2425).rem_euclid(1.0)
}

/// Parse `YYYY-MM-DD`.
pub fn parse_iso(text: &str) -> Option<Day> {
    let mut parts = text.splitn(3, '-');
    let year = parts.next()?.parse().ok()?;
    let month: u32 = parts.next()?.parse().ok()?;
    let day: u32 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    Some(day_of(year, month, day))
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let next = if month == 12 {
        day_of(year + 1, 1, 1)
    } else {
        day_of(year, month + 1, 1)
    };
    (next - day_of(year, month, 1)) as u32
}

/// The same calendar day `years` later (29 February becomes 28 February).
pub fn add_years(day: Day, years: i32) -> Day {
    let (y, m, d) = civil(day);
    let d = d.min(days_in_month(y + years, m));
    day_of(y + years, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trips() {
        for day in -800_000..800_000 {
            let (y, m, d) = civil(day);
            assert_eq!(day_of(y, m, d), day);
        }
        assert_eq!(day_of(1970, 1, 1), 0);
        assert_eq!(civil(day_of(2024, 2, 29)), (2024, 2, 29));
        assert_eq!(weekday(day_of(2026, 11, 23)), 0, "23 November 2026 is a Monday");
    }

    #[test]
    fn parses_and_shifts_iso_dates() {
        assert_eq!(parse_iso("2026-09-30"), Some(day_of(2026, 9, 30)));
        assert_eq!(parse_iso("2026-02-30"), None);
        assert_eq!(parse_iso("2026-13-01"), None);
        assert_eq!(add_years(day_of(2024, 2, 29), -1), day_of(2023, 2, 28));
    }
}
