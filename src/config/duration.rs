//! Human durations as people write them in the config: `90s`, `10m`, `1h30m`, `7d`, `2w`.

use std::time::Duration;

/// Parses a human duration. A bare number is refused: `30` could mean seconds or days, and a
/// silent guess is how a 30-day backfill becomes a 30-second one.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("a duration cannot be empty".into());
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("`{text}` is not a duration: expected a number at `{rest}`"));
        }
        let number: u64 =
            rest[..digits].parse().map_err(|_| format!("`{text}` is not a duration: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = rest[..unit_len].trim();
        let millis = match unit {
            "ms" => 1,
            "s" | "sec" | "secs" => 1_000,
            "m" | "min" | "mins" => 60_000,
            "h" | "hour" | "hours" => 3_600_000,
            "d" | "day" | "days" => 86_400_000,
            "w" | "week" | "weeks" => 604_800_000,
            "" => {
                return Err(format!("`{text}` has no unit: write e.g. `{number}s`, `{number}m` or `{number}d`"));
            }
            other => return Err(format!("`{text}` has an unknown unit `{other}` (use ms, s, m, h, d or w)")),
        };
        total = number
            .checked_mul(millis)
            .and_then(|m| total.checked_add(m))
            .ok_or_else(|| format!("`{text}` is too long a duration"))?;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_millis(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_sums() {
        assert_eq!(parse("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("2 weeks"), Ok(Duration::from_secs(14 * 86_400)));
    }

    #[test]
    fn refuses_ambiguous_or_broken() {
        assert!(parse("30").unwrap_err().contains("no unit"));
        assert!(parse("5y").unwrap_err().contains("unknown unit `y`"));
        assert!(parse("m").is_err());
        assert!(parse("").is_err());
        assert!(parse("99999999999999999999d").is_err());
    }
}
