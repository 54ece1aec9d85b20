//! Sizes as written in the config: a whole number of bytes, bare or with a binary unit, such as
//! `512`, `512B`, `1KiB`, `2MiB`, `1GiB`.
//!
//! Only the binary units: `KB` is 1000 bytes to some and 1024 to others (nginx's `1k` is 1024),
//! so it is refused with the unit that says which.

const UNITS: &str = "use B, KiB, MiB or GiB, e.g. 512, 1KiB or 2MiB";

/// Parses a config size in bytes; the error says what is wrong and how to write it instead.
pub fn parse(text: &str) -> Result<u64, String> {
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    if number.is_empty() {
        return Err(format!(
            "invalid size {text:?}: expected a whole number of bytes and an optional unit; {UNITS}"
        ));
    }
    if unit.starts_with('.') {
        return Err(format!(
            "invalid size {text:?}: fractions are not supported; use a smaller unit, e.g. 1536KiB"
        ));
    }
    let shift = match unit {
        "" | "B" => 0,
        "KiB" => 10,
        "MiB" => 20,
        "GiB" => 30,
        _ => return Err(unit_error(text, number, unit)),
    };
    let too_large = || format!("invalid size {text:?}: too large");
    let count: u64 = number.parse().map_err(|_| too_large())?;
    (count.checked_mul(1 << shift)).ok_or_else(too_large)
}

/// Why `unit` is refused: a decimal or lowercase spelling of a binary unit gets that unit.
fn unit_error(text: &str, number: &str, unit: &str) -> String {
    let binary = match unit.to_ascii_lowercase().as_str() {
        "k" | "kb" | "kib" => "KiB",
        "m" | "mb" | "mib" => "MiB",
        "g" | "gb" | "gib" => "GiB",
        _ => return format!("invalid size {text:?}: unknown unit {unit:?}; {UNITS}"),
    };
    format!(
        "invalid size {text:?}: {unit:?} is ambiguous; write {number}{binary} for the binary \
         unit (1KiB = 1024 bytes), or the number of bytes"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bytes_and_every_unit() {
        assert_eq!(parse("0"), Ok(0));
        assert_eq!(parse("512"), Ok(512));
        assert_eq!(parse("512B"), Ok(512));
        assert_eq!(parse("1KiB"), Ok(1024));
        assert_eq!(parse("2MiB"), Ok(2 << 20));
        assert_eq!(parse("3GiB"), Ok(3 << 30));
        assert_eq!(parse("0KiB"), Ok(0));
    }

    #[test]
    fn refuses_ambiguous_decimal_units_and_names_the_binary_one() {
        assert_eq!(
            parse("1KB"),
            Err(
                "invalid size \"1KB\": \"KB\" is ambiguous; write 1KiB for the binary unit \
                 (1KiB = 1024 bytes), or the number of bytes"
                    .to_string()
            )
        );
        for text in ["1k", "1K", "1kB", "1kb", "1kib", "1KIB"] {
            assert!(parse(text).unwrap_err().contains("write 1KiB"), "{text}");
        }
        for text in ["2m", "2M", "2MB", "2mib"] {
            assert!(parse(text).unwrap_err().contains("write 2MiB"), "{text}");
        }
        assert!(parse("3GB").unwrap_err().contains("write 3GiB"));
    }

    #[test]
    fn refuses_an_unknown_unit() {
        assert_eq!(
            parse("1TiB"),
            Err(
                "invalid size \"1TiB\": unknown unit \"TiB\"; use B, KiB, MiB or GiB, \
                 e.g. 512, 1KiB or 2MiB"
                    .to_string()
            )
        );
        assert!(parse("1 KiB")
            .unwrap_err()
            .contains("unknown unit \" KiB\""));
        assert!(parse("1KiB ")
            .unwrap_err()
            .contains("unknown unit \"KiB \""));
        assert!(parse("1KiB512")
            .unwrap_err()
            .contains("unknown unit \"KiB512\""));
    }

    #[test]
    fn refuses_text_without_a_number() {
        for garbage in ["", "KiB", "big", "-1", "+1", " 1", "1.5KiB", "0x10"] {
            let error = parse(garbage).unwrap_err();
            assert!(
                error.starts_with(&format!("invalid size {garbage:?}: ")),
                "{garbage:?} gave {error}"
            );
        }
    }

    #[test]
    fn refuses_fractions_and_points_to_a_smaller_unit() {
        assert_eq!(
            parse("1.5MiB"),
            Err(
                "invalid size \"1.5MiB\": fractions are not supported; use a smaller unit, \
                 e.g. 1536KiB"
                    .to_string()
            )
        );
    }

    #[test]
    fn refuses_overflow() {
        assert_eq!(
            parse("18446744073709551616"),
            Err("invalid size \"18446744073709551616\": too large".to_string())
        );
        assert_eq!(parse("18446744073709551615"), Ok(u64::MAX));
        assert!(parse("17179869184GiB").unwrap_err().ends_with("too large"));
        assert_eq!(parse("17179869183GiB"), Ok(17179869183 << 30));
    }
}
