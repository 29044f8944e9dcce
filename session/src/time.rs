//! Wall-clock helpers: milliseconds since the Unix epoch, and the two date formats
//! express-session writes (`Date#toUTCString` for `Expires`, `Date#toJSON` for the
//! stored record). Written by hand to keep the dependency tree small.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch by the system clock, like JavaScript's
/// `Date.now()`. The request path does not read it directly: the layer reads its own
/// clock once per step ([`crate::SessionLayer::with_clock`]) and passes that `now` down,
/// and the memory store reads its own ([`crate::MemoryStore::with_clock`]).
pub(crate) fn now_ms() -> i64 {
    clock_ms()
}

fn clock_ms() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// Converts a [`SystemTime`] to milliseconds since the epoch.
pub(crate) fn system_time_to_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// Converts milliseconds since the epoch to a [`SystemTime`].
pub(crate) fn ms_to_system_time(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

/// Saturating conversion of a duration to whole milliseconds.
pub(crate) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    milli: u32,
    weekday: usize,
}

// Howard Hinnant's days-from-civil algorithms.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn civil(ms: i64) -> Civil {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    Civil {
        year,
        month,
        day,
        hour: (rem / 3_600_000) as u32,
        minute: (rem / 60_000 % 60) as u32,
        second: (rem / 1000 % 60) as u32,
        milli: (rem % 1000) as u32,
        weekday: days.rem_euclid(7) as usize,
    }
}

/// `Date#toUTCString`: `Thu, 26 Nov 2026 01:13:46 GMT` (milliseconds dropped).
#[cfg(test)]
pub(crate) fn http_date(ms: i64) -> String {
    let mut out = String::with_capacity(29);
    push_http_date(ms, &mut out);
    out
}

/// [`http_date`] appended to `out`, without the formatting machinery (it is on the
/// path of every Set-Cookie with an expiry).
pub(crate) fn push_http_date(ms: i64, out: &mut String) {
    let c = civil(ms);
    let two = |out: &mut String, n: u32| {
        out.push(char::from(b'0' + (n / 10 % 10) as u8));
        out.push(char::from(b'0' + (n % 10) as u8));
    };
    out.push_str(DAYS[c.weekday]);
    out.push_str(", ");
    two(out, c.day);
    out.push(' ');
    out.push_str(MONTHS[(c.month - 1) as usize]);
    out.push(' ');
    let year = c.year.clamp(0, 9999) as u32;
    two(out, year / 100);
    two(out, year % 100);
    out.push(' ');
    two(out, c.hour);
    out.push(':');
    two(out, c.minute);
    out.push(':');
    two(out, c.second);
    out.push_str(" GMT");
}

/// `Date#toJSON`: `2026-11-26T01:13:46.493Z`.
pub(crate) fn iso_date(ms: i64) -> String {
    let c = civil(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second, c.milli
    )
}

pub(crate) use tessera_rules::date::parse_iso_date;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_date_agrees_with_the_httpdate_crate() {
        let mut ms: i64 = 0;
        for step in 0..20_000i64 {
            // From 1970 to about 2900, with every kind of day and time on the way.
            ms += 1_234_567_891 + step * 7_919;
            let t = ms_to_system_time(ms);
            assert_eq!(http_date(ms), httpdate::fmt_http_date(t), "{ms}");
        }
    }

    #[test]
    fn http_date_matches_to_utc_string() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        // 2026-11-26T01:13:46.493Z, from the reference's worked example.
        let ms = parse_iso_date("2026-11-26T01:13:46.493Z").unwrap();
        assert_eq!(http_date(ms), "Thu, 26 Nov 2026 01:13:46 GMT");
        assert_eq!(iso_date(ms), "2026-11-26T01:13:46.493Z");
    }

    #[test]
    fn iso_round_trips_across_many_dates() {
        let mut ms = -86_400_000 * 800;
        while ms < 4_102_444_800_000 {
            assert_eq!(parse_iso_date(&iso_date(ms)), Some(ms), "{}", iso_date(ms));
            ms += 7_777_777_777;
        }
    }

    #[test]
    fn iso_parse_accepts_offsets_and_long_fractions() {
        let base = parse_iso_date("2026-11-26T01:13:46.493Z").unwrap();
        assert_eq!(parse_iso_date("2026-11-26T01:13:46.493123456Z"), Some(base));
        assert_eq!(parse_iso_date("2026-11-26T02:13:46.493+01:00"), Some(base));
        assert_eq!(parse_iso_date("2026-11-26T01:13:46.493+00:00"), Some(base));
        assert_eq!(parse_iso_date("2026-11-26T01:13:46Z"), Some(base - 493));
    }

    #[test]
    fn iso_parse_rejects_garbage() {
        for bad in [
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-11-26T01:13:46",
            "2026-11-26T01:13:46.Z",
        ] {
            assert_eq!(parse_iso_date(bad), None, "{bad}");
        }
    }
}
