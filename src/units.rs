//! Durations, numbers and timestamps as operators write and read them (pure): `90s`, `15m` and
//! `1h30m` parsed and printed, numbers without noise, and timestamp arithmetic that saturates
//! instead of failing.

use std::time::Duration;

use jiff::Timestamp;
use jiff::fmt::friendly::{Designator, Spacing, SpanPrinter};

/// Parses a duration as operators write it (`90s`, `15m`, `1h30m`, `30d` with days of 24
/// hours); negative ones are refused.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d: jiff::SignedDuration = match s.parse() {
        Ok(d) => d,
        Err(e) => s
            .parse::<jiff::Span>()
            .ok()
            .and_then(|span| {
                span.to_duration(jiff::SpanRelativeTo::days_are_24_hours())
                    .ok()
            })
            .ok_or_else(|| format!("{s:?} is not a duration like 90s, 15m, 1h30m or 30d ({e})"))?,
    };
    Duration::try_from(d).map_err(|_| format!("{s:?} must not be negative"))
}

/// Renders a duration the way an operator writes it (`45m`, `1h30m`, `90s` → `1m30s`): whole
/// seconds from one second up, milliseconds below.
pub fn human(d: Duration) -> String {
    let shown = if d.as_secs() > 0 {
        Duration::from_secs(d.as_secs())
    } else {
        d
    };
    SpanPrinter::new()
        .designator(Designator::Compact)
        .spacing(Spacing::None)
        .unsigned_duration_to_string(&shown)
}

/// Renders a number without noise (`3`, `0.083`, `1200.5`).
pub fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Time from `since` to `now`; zero when `now` is earlier (a clock step back).
pub fn between(since: Timestamp, now: Timestamp) -> Duration {
    Duration::try_from(now.duration_since(since)).unwrap_or(Duration::ZERO)
}

/// A duration in JSON: seconds, as a number (`serialize_with`).
pub fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// `t + d`, saturating at the largest timestamp: a deadline too far to represent is never
/// reached.
pub fn plus(t: Timestamp, d: Duration) -> Timestamp {
    t.saturating_add(d).unwrap_or(Timestamp::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_24_hours() {
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86400)));
        assert_eq!(parse_duration("1d12h"), Ok(Duration::from_secs(36 * 3600)));
        assert!(parse_duration("2mo").is_err());
        assert!(parse_duration("-1d").unwrap_err().contains("negative"));
    }

    #[test]
    fn durations_and_numbers_read_naturally() {
        assert_eq!(human(Duration::from_secs(45 * 60)), "45m");
        assert_eq!(human(Duration::from_secs(5400)), "1h30m");
        assert_eq!(human(Duration::from_secs(90)), "1m30s");
        assert_eq!(human(Duration::from_millis(500)), "500ms");
        assert_eq!(human(Duration::from_millis(1500)), "1s");
        assert_eq!(human(Duration::ZERO), "0s");
        assert_eq!(human(Duration::from_secs(50 * 3600)), "50h");
        assert_eq!(num(3.0), "3");
        assert_eq!(num(5.0 / 60.0), "0.083");
        assert_eq!(num(1200.54), "1200.5");
    }

    #[test]
    fn durations_read_like_an_operator_writes_them() {
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("5").unwrap_err().contains("like 90s"));
        assert!(parse_duration("-5m").unwrap_err().contains("negative"));
    }

    #[test]
    fn parsed_durations_print_back_as_written() {
        for s in ["90s", "15m", "1h30m", "45m", "500ms"] {
            let d = parse_duration(s).unwrap();
            assert_eq!(parse_duration(&human(d)).unwrap(), d, "{s}");
        }
        assert!(
            parse_duration("-5m")
                .unwrap_err()
                .contains("must not be negative")
        );
        assert!(
            parse_duration("soon")
                .unwrap_err()
                .contains("not a duration")
        );
    }

    #[test]
    fn time_between_and_after_never_fails() {
        let t = Timestamp::from_second(1_000).unwrap();
        let later = Timestamp::from_second(1_090).unwrap();
        assert_eq!(between(t, later), Duration::from_secs(90));
        assert_eq!(between(later, t), Duration::ZERO);
        assert_eq!(plus(t, Duration::from_secs(90)), later);
        assert_eq!(plus(t, Duration::MAX), Timestamp::MAX);
    }
}
