//! Durations as written in the config: an integer and a unit, such as `500ms`, `2s`, `1m`, `1h`.

use std::time::Duration;

const UNITS: &str = "use ms, s, m or h, e.g. 500ms or 2s";

/// Parses a config duration; the error says what is wrong and how to write it instead.
pub fn parse(text: &str) -> Result<Duration, String> {
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    if number.is_empty() {
        return Err(format!(
            "invalid duration {text:?}: expected a whole number and a unit; {UNITS}"
        ));
    }
    if unit.is_empty() {
        return Err(format!(
            "invalid duration {text:?}: missing unit; write e.g. {number}s or {number}ms"
        ));
    }
    if unit.starts_with('.') {
        return Err(format!(
            "invalid duration {text:?}: fractions are not supported; use a smaller unit, e.g. 1500ms"
        ));
    }
    let seconds_per_unit = match unit {
        "ms" => None,
        "s" => Some(1),
        "m" => Some(60),
        "h" => Some(3600),
        _ => {
            return Err(format!(
                "invalid duration {text:?}: unknown unit {unit:?}; {UNITS}"
            ))
        }
    };
    let too_large = || format!("invalid duration {text:?}: too large");
    let count: u64 = number.parse().map_err(|_| too_large())?;
    match seconds_per_unit {
        None => Ok(Duration::from_millis(count)),
        Some(factor) => count
            .checked_mul(factor)
            .map(Duration::from_secs)
            .ok_or_else(too_large),
    }
}

/// `duration` as it would be written in the config, in the largest unit that keeps it whole.
pub fn display(duration: Duration) -> String {
    let millis = duration.as_millis();
    for (unit, size) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000)] {
        if millis >= size && millis % size == 0 {
            return format!("{}{unit}", millis / size);
        }
    }
    format!("{millis}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_a_missing_unit_and_suggests_one() {
        assert_eq!(
            parse("10"),
            Err(r#"invalid duration "10": missing unit; write e.g. 10s or 10ms"#.to_string())
        );
    }

    #[test]
    fn rejects_an_unknown_unit() {
        assert_eq!(
            parse("2sec"),
            Err(r#"invalid duration "2sec": unknown unit "sec"; use ms, s, m or h, e.g. 500ms or 2s"#
                .to_string())
        );
    }

    #[test]
    fn rejects_text_without_a_number() {
        for garbage in ["", "s", "fast", "-1s", "1.5s", " 2s"] {
            let error = parse(garbage).unwrap_err();
            assert!(
                error.starts_with(&format!("invalid duration {garbage:?}: ")),
                "{garbage:?} gave {error}"
            );
        }
    }

    #[test]
    fn rejects_fractions_and_points_to_a_smaller_unit() {
        assert_eq!(
            parse("1.5s"),
            Err(r#"invalid duration "1.5s": fractions are not supported; use a smaller unit, e.g. 1500ms"#
                .to_string())
        );
    }

    #[test]
    fn rejects_trailing_garbage_and_inner_spaces() {
        assert!(parse("2s ").unwrap_err().contains(r#"unknown unit "s ""#));
        assert!(parse("2 s").unwrap_err().contains(r#"unknown unit " s""#));
        assert!(parse("1m30s")
            .unwrap_err()
            .contains(r#"unknown unit "m30s""#));
    }

    #[test]
    fn displays_in_the_largest_whole_unit() {
        for text in ["24h", "90m", "1h", "59s", "1500ms", "0ms"] {
            assert_eq!(display(parse(text).unwrap()), text);
        }
    }

    #[test]
    fn rejects_overflow() {
        assert_eq!(
            parse("99999999999999999999s"),
            Err(r#"invalid duration "99999999999999999999s": too large"#.to_string())
        );
        assert!(parse("18446744073709551615h")
            .unwrap_err()
            .ends_with("too large"));
    }
}
