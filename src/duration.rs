//! Duration flags (`--target-timeout 1.5s`, `1500ms`, `2`): parsed by clap, so a bad value is a
//! usage error (exit 2) before anything starts.

use std::time::Duration;

/// What the help texts say a duration looks like.
pub const FORMS: &str = "a number of seconds (2, 1.5) or a number with a unit (1.5s, 1500ms)";

/// Parses `N`, `Ns` (seconds, fractions allowed) or `Nms` (milliseconds).
pub fn parse(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    // Divided rather than multiplied by 0.001, which has no exact binary form.
    let (number, per_second) = if let Some(n) = trimmed.strip_suffix("ms") {
        (n, 1000.0)
    } else if let Some(n) = trimmed.strip_suffix('s') {
        (n, 1.0)
    } else {
        (trimmed, 1.0)
    };
    let bad = || format!("expected {FORMS}, not \"{text}\"");
    // `f64::from_str` also takes "inf", "NaN" and "+1": only digits and one point here.
    let number = number.trim_end();
    if number.is_empty()
        || number.bytes().filter(|&b| b == b'.').count() > 1
        || !number.bytes().all(|b| b.is_ascii_digit() || b == b'.')
    {
        return Err(bad());
    }
    let value: f64 = number.parse().map_err(|_| bad())?;
    Duration::try_from_secs_f64(value / per_second).map_err(|_| format!("\"{text}\" is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_fractions_and_milliseconds() {
        assert_eq!(parse("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("0.25"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("10 s"), Ok(Duration::from_secs(10)));
    }

    #[test]
    fn anything_else_is_refused_with_the_accepted_forms() {
        for bad in [
            "", "abc", "s", "ms", "-1", "+1", "1.5.2", "inf", "NaN", "1m", "1h", "2 x", "1e3",
        ] {
            let err = parse(bad).expect_err(bad);
            assert!(err.contains("1500ms"), "{bad}: {err}");
        }
        assert!(parse("1e300").is_err());
        assert!(
            parse(&"9".repeat(400))
                .expect_err("too long")
                .contains("too long")
        );
    }
}
