//! Human durations as users write them in stream configs and contracts: `500ms`, `30s`,
//! `15m`, `12h`, `7d`, `2w`; `forever` (or `infinite`) means no limit. The one parser for
//! them: stream retention, token lifetimes (`weft token create --expires`) and whatever comes next.

/// Parses a duration into milliseconds; `Ok(None)` means unlimited.
pub fn parse_duration_ms(text: &str) -> Result<Option<i64>, String> {
    let text = text.trim();
    if matches!(text, "forever" | "infinite" | "unlimited") {
        return Ok(None);
    }
    let digits_end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let number: i64 = number.parse().map_err(|_| format!("duration {text:?} must be a number followed by ms, s, m, h, d or w"))?;
    let unit_ms: i64 = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => return Err(format!("duration {text:?} has an unknown unit: use ms, s, m, h, d or w")),
    };
    number.checked_mul(unit_ms).map(Some).ok_or_else(|| format!("duration {text:?} is too large"))
}

/// Formats milliseconds back into the largest whole unit.
pub fn format_duration_ms(ms: i64) -> String {
    for (unit, unit_ms) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)] {
        if ms != 0 && ms % unit_ms == 0 {
            return format!("{}{unit}", ms / unit_ms);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip_in_their_largest_unit() {
        assert_eq!(parse_duration_ms("7d"), Ok(Some(604_800_000)));
        assert_eq!(parse_duration_ms("500ms"), Ok(Some(500)));
        assert_eq!(parse_duration_ms("forever"), Ok(None));
        assert_eq!(format_duration_ms(604_800_000), "7d");
        assert_eq!(format_duration_ms(86_400_000 * 3), "3d");
        assert_eq!(format_duration_ms(1_500), "1500ms");
    }

    #[test]
    fn bad_durations_are_refused_with_a_reason() {
        for bad in ["", "7", "d", "7 days", "-1d", "1.5h", "1y", "99999999999999999w"] {
            assert!(parse_duration_ms(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
