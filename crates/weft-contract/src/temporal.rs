//! Dates, times and timestamps inside event strings: ISO 8601 / RFC 3339 parsing, JDK
//! `DateTimeFormatter`-style patterns from `logicalTypeOptions.format`, and ordering for bounds.
//!
//! Owns only string-to-instant conversion; no clock, no time zones database.
//! A `defaultTimezone` other than UTC is stored but values without an offset are compared as UTC.

use regex::Regex;

/// The parts of a temporal value that were present in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct TemporalParts {
    pub year: Option<i64>,
    pub month: Option<u32>,
    pub day: Option<u32>,
    pub hour: Option<u32>,
    pub minute: Option<u32>,
    pub second: Option<u32>,
    pub nanos: u32,
    /// Offset east of UTC in seconds, when the text carries one.
    pub offset_seconds: Option<i64>,
}

impl TemporalParts {
    /// A totally ordered key: date parts, then time of day, normalized to UTC when an offset exists.
    /// Values without a date compare by time of day only (for `time` properties).
    pub fn order_key(&self) -> (i64, i64, u32) {
        let days = match (self.year, self.month, self.day) {
            (Some(y), Some(m), Some(d)) => days_from_civil(y, m, d),
            (Some(y), Some(m), None) => days_from_civil(y, m, 1),
            (Some(y), None, None) => days_from_civil(y, 1, 1),
            _ => 0,
        };
        let seconds_of_day =
            i64::from(self.hour.unwrap_or(0)) * 3600 + i64::from(self.minute.unwrap_or(0)) * 60 + i64::from(self.second.unwrap_or(0));
        let total = days * 86_400 + seconds_of_day - self.offset_seconds.unwrap_or(0);
        (total.div_euclid(86_400), total.rem_euclid(86_400), self.nanos)
    }
}

/// What a temporal property holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TemporalKind {
    Date,
    Timestamp,
    Time,
}

/// How strings of one temporal property are read.
#[derive(Debug, Clone)]
pub(crate) enum TemporalFormat {
    /// ISO 8601: `2026-11-21`, RFC 3339 `2026-11-21T10:00:00.123Z`, `10:00:00`.
    Iso { offset_required: bool },
    /// A JDK pattern such as `yyyy-MM-dd HH:mm:ss`, translated to an anchored regex.
    Pattern { regex: Regex, fields: Vec<PatternField> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatternField {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    Fraction,
    Offset,
}

impl TemporalFormat {
    /// Builds the reader for `kind` from the optional JDK `format` option and `timezone` flag.
    pub fn new(kind: TemporalKind, format: Option<&str>, timezone: Option<bool>) -> Result<Self, String> {
        let iso_equivalent = matches!(
            (kind, format),
            (_, None) | (TemporalKind::Date, Some("yyyy-MM-dd" | "uuuu-MM-dd")) | (TemporalKind::Time, Some("HH:mm:ss"))
        );
        if iso_equivalent {
            // JSON Schema `date-time` (what `datacontract export jsonschema` emits) requires an
            // offset; `timezone: false` says the producer sends local times without one.
            let offset_required = kind == TemporalKind::Timestamp && timezone != Some(false);
            return Ok(TemporalFormat::Iso { offset_required });
        }
        let pattern = format.unwrap_or_default();
        let (regex_text, fields) = translate_jdk_pattern(pattern)?;
        let regex = Regex::new(&regex_text).map_err(|e| format!("format `{pattern}`: {e}"))?;
        Ok(TemporalFormat::Pattern { regex, fields })
    }

    pub fn parse(&self, kind: TemporalKind, text: &str) -> Option<TemporalParts> {
        match self {
            TemporalFormat::Iso { offset_required } => match kind {
                TemporalKind::Date => parse_iso_date(text),
                TemporalKind::Time => parse_iso_time(text.as_bytes(), false).map(|(p, _)| p),
                TemporalKind::Timestamp => parse_iso_timestamp(text, *offset_required),
            },
            TemporalFormat::Pattern { regex, fields } => {
                let captures = regex.captures(text)?;
                let mut parts = TemporalParts::default();
                for (field_idx, field) in fields.iter().enumerate() {
                    let raw = captures.get(field_idx + 1)?.as_str();
                    match field {
                        PatternField::Year => parts.year = Some(raw.parse().ok()?),
                        PatternField::Month => parts.month = Some(raw.parse().ok()?),
                        PatternField::Day => parts.day = Some(raw.parse().ok()?),
                        PatternField::Hour => parts.hour = Some(raw.parse().ok()?),
                        PatternField::Minute => parts.minute = Some(raw.parse().ok()?),
                        PatternField::Second => parts.second = Some(raw.parse().ok()?),
                        PatternField::Fraction => parts.nanos = fraction_nanos(raw.as_bytes())?,
                        PatternField::Offset => parts.offset_seconds = Some(parse_offset(raw.as_bytes())?),
                    }
                }
                parts_in_range(&parts).then_some(parts)
            }
        }
    }
}

/// Translates the JDK `DateTimeFormatter` letters Weft supports (`y u M d H m s S X x Z`, quoted
/// literals) into an anchored regex with one capture group per field.
fn translate_jdk_pattern(pattern: &str) -> Result<(String, Vec<PatternField>), String> {
    let mut regex_text = String::from("^");
    let mut fields = Vec::new();
    let chars: Vec<char> = pattern.chars().collect();
    let mut idx = 0;
    while idx < chars.len() {
        let c = chars[idx];
        let run = chars[idx..].iter().take_while(|&&other| other == c).count();
        if c == '\'' {
            let end = chars[idx + 1..]
                .iter()
                .position(|&other| other == '\'')
                .ok_or_else(|| format!("format `{pattern}` has an unterminated quote"))?;
            let literal: String = chars[idx + 1..idx + 1 + end].iter().collect();
            regex_text.push_str(&regex::escape(if literal.is_empty() { "'" } else { &literal }));
            idx += end + 2;
            continue;
        }
        let (group, field) = match c {
            'y' | 'u' if run == 2 => (r"(\d{2})".to_owned(), PatternField::Year),
            'y' | 'u' => (format!(r"(\d{{{run},}})"), PatternField::Year),
            'M' if run <= 2 => (digits(run), PatternField::Month),
            'd' if run <= 2 => (digits(run), PatternField::Day),
            'H' if run <= 2 => (digits(run), PatternField::Hour),
            'm' if run <= 2 => (digits(run), PatternField::Minute),
            's' if run <= 2 => (digits(run), PatternField::Second),
            'S' => (format!(r"(\d{{{run}}})"), PatternField::Fraction),
            'X' => (r"(Z|[+-]\d{2}(?::?\d{2})?)".to_owned(), PatternField::Offset),
            'x' | 'Z' => (r"([+-]\d{2}(?::?\d{2})?)".to_owned(), PatternField::Offset),
            c if c.is_ascii_alphabetic() => {
                return Err(format!(
                    "format `{pattern}` uses `{}`, which weft does not support (supported: y u M d H m s S X x Z and quoted text)",
                    c.to_string().repeat(run)
                ));
            }
            _ => {
                regex_text.push_str(&regex::escape(&c.to_string().repeat(run)));
                idx += run;
                continue;
            }
        };
        regex_text.push_str(&group);
        fields.push(field);
        idx += run;
    }
    regex_text.push('$');
    Ok((regex_text, fields))
}

fn digits(run: usize) -> String {
    if run == 1 { r"(\d{1,2})".to_owned() } else { r"(\d{2})".to_owned() }
}

fn parts_in_range(parts: &TemporalParts) -> bool {
    if let Some(month) = parts.month
        && !(1..=12).contains(&month)
    {
        return false;
    }
    if let Some(day) = parts.day {
        let max_day = match (parts.year, parts.month) {
            (Some(year), Some(month)) => days_in_month(year, month),
            _ => 31,
        };
        if day == 0 || day > max_day {
            return false;
        }
    }
    parts.hour.is_none_or(|h| h <= 23) && parts.minute.is_none_or(|m| m <= 59) && parts.second.is_none_or(|s| s <= 60)
}

pub(crate) fn parse_iso_date(text: &str) -> Option<TemporalParts> {
    let b = text.as_bytes();
    let (parts, rest) = parse_date_prefix(b)?;
    rest.is_empty().then_some(parts)
}

fn parse_date_prefix(b: &[u8]) -> Option<(TemporalParts, &[u8])> {
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = number(&b[0..4])?;
    let month = number(&b[5..7])?;
    let day = number(&b[8..10])?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(i64::from(year), month) {
        return None;
    }
    let parts = TemporalParts { year: Some(i64::from(year)), month: Some(month), day: Some(day), ..TemporalParts::default() };
    Some((parts, &b[10..]))
}

/// `HH:MM:SS(.fraction)?` followed, when `allow_offset`, by the rest of the text (returned).
pub(crate) fn parse_iso_time(b: &[u8], allow_offset: bool) -> Option<(TemporalParts, &[u8])> {
    if b.len() < 8 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    let hour = number(&b[0..2])?;
    let minute = number(&b[3..5])?;
    let second = number(&b[6..8])?;
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &b[8..];
    let mut nanos = 0;
    if let Some((b'.', after_dot)) = rest.split_first() {
        let n_digits = after_dot.iter().take_while(|c| c.is_ascii_digit()).count();
        if n_digits == 0 {
            return None;
        }
        nanos = fraction_nanos(&after_dot[..n_digits])?;
        rest = &after_dot[n_digits..];
    }
    let mut parts = TemporalParts { hour: Some(hour), minute: Some(minute), second: Some(second), nanos, ..TemporalParts::default() };
    if !allow_offset {
        // A `time` may carry an offset too (JSON Schema `time` is RFC 3339 `full-time`).
        if !rest.is_empty() {
            parts.offset_seconds = Some(parse_offset(rest)?);
        }
        return Some((parts, &[]));
    }
    Some((parts, rest))
}

fn parse_iso_timestamp(text: &str, offset_required: bool) -> Option<TemporalParts> {
    let b = text.as_bytes();
    let (date, rest) = parse_date_prefix(b)?;
    let (separator, rest) = rest.split_first()?;
    if !matches!(separator, b'T' | b't') {
        return None;
    }
    let (time, rest) = parse_iso_time(rest, true)?;
    let offset_seconds = if rest.is_empty() {
        if offset_required {
            return None;
        }
        None
    } else {
        Some(parse_offset(rest)?)
    };
    Some(TemporalParts { hour: time.hour, minute: time.minute, second: time.second, nanos: time.nanos, offset_seconds, ..date })
}

/// `Z`, `z`, `+HH:MM`, `-HH:MM`, `+HHMM` or `+HH`.
fn parse_offset(b: &[u8]) -> Option<i64> {
    match b {
        [b'Z' | b'z'] => Some(0),
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (hours, minutes) = match rest {
                [h1, h2] => (number(&[*h1, *h2])?, 0),
                [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => (number(&[*h1, *h2])?, number(&[*m1, *m2])?),
                _ => return None,
            };
            if hours > 23 || minutes > 59 {
                return None;
            }
            let seconds = i64::from(hours * 3600 + minutes * 60);
            Some(if *sign == b'-' { -seconds } else { seconds })
        }
        _ => None,
    }
}

fn fraction_nanos(digits: &[u8]) -> Option<u32> {
    let mut nanos: u32 = 0;
    for (digit_idx, digit) in digits.iter().enumerate() {
        if !digit.is_ascii_digit() {
            return None;
        }
        if digit_idx < 9 {
            nanos += u32::from(digit - b'0') * 10u32.pow(8 - digit_idx as u32);
        }
    }
    Some(nanos)
}

fn number(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    b.iter().try_fold(0u32, |n, d| n.checked_mul(10)?.checked_add(u32::from(d - b'0')))
}

fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_timestamp_needs_offset_unless_timezone_false() {
        let with_offset = TemporalFormat::new(TemporalKind::Timestamp, None, None).unwrap();
        assert!(with_offset.parse(TemporalKind::Timestamp, "2026-11-21T10:00:00Z").is_some());
        assert!(with_offset.parse(TemporalKind::Timestamp, "2026-11-21T10:00:00.123+01:00").is_some());
        assert!(with_offset.parse(TemporalKind::Timestamp, "2026-11-21T10:00:00").is_none());
        let local = TemporalFormat::new(TemporalKind::Timestamp, None, Some(false)).unwrap();
        assert!(local.parse(TemporalKind::Timestamp, "2026-11-21T10:00:00").is_some());
    }

    #[test]
    fn calendar_rules_reject_impossible_dates() {
        assert!(parse_iso_date("2024-02-29").is_some());
        assert!(parse_iso_date("2023-02-29").is_none());
        assert!(parse_iso_date("2023-13-01").is_none());
        assert!(parse_iso_date("2023-1-01").is_none());
    }

    #[test]
    fn offsets_normalize_to_utc_for_ordering() {
        let format = TemporalFormat::new(TemporalKind::Timestamp, None, None).unwrap();
        let a = format.parse(TemporalKind::Timestamp, "2026-01-01T01:00:00+01:00").unwrap();
        let b = format.parse(TemporalKind::Timestamp, "2026-01-01T00:00:00Z").unwrap();
        assert_eq!(a.order_key(), b.order_key());
        assert_eq!(days_from_civil(1970, 1, 1), 0);
    }

    #[test]
    fn jdk_patterns_translate_to_checked_fields() {
        let format = TemporalFormat::new(TemporalKind::Timestamp, Some("yyyy-MM-dd HH:mm:ss"), None).unwrap();
        assert!(format.parse(TemporalKind::Timestamp, "2026-11-21 10:00:00").is_some());
        assert!(format.parse(TemporalKind::Timestamp, "2026-11-21 25:00:00").is_none());
        assert!(format.parse(TemporalKind::Timestamp, "2026-11-21T10:00:00").is_none());
        let quoted = TemporalFormat::new(TemporalKind::Timestamp, Some("yyyy-MM-dd'T'HH:mm:ssXXX"), None).unwrap();
        assert!(quoted.parse(TemporalKind::Timestamp, "2026-11-21T10:00:00+02:00").is_some());
        assert!(TemporalFormat::new(TemporalKind::Date, Some("EEE yyyy"), None).is_err());
    }
}
