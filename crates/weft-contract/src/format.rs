//! String `format` checks for `logicalType: string` (`email`, `uuid`, `uri`, `hostname`, `ipv4`,
//! `ipv6`), written by hand so the hot path does no allocation and no regex.
//!
//! Owns only the syntax of each format. Formats ODCS lists as mere hints (`password`, `byte`,
//! `binary`) and formats we do not know are not checked, as in JSON Schema.

use std::net::{Ipv4Addr, Ipv6Addr};

/// A string format Weft checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StringFormat {
    Email,
    Uuid,
    Uri,
    Hostname,
    Ipv4,
    Ipv6,
}

impl StringFormat {
    /// The checked format named `name`, or `None` for formats that are documentation only.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "email" => Some(StringFormat::Email),
            "uuid" => Some(StringFormat::Uuid),
            "uri" => Some(StringFormat::Uri),
            "hostname" => Some(StringFormat::Hostname),
            "ipv4" => Some(StringFormat::Ipv4),
            "ipv6" => Some(StringFormat::Ipv6),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            StringFormat::Email => "email",
            StringFormat::Uuid => "uuid",
            StringFormat::Uri => "uri",
            StringFormat::Hostname => "hostname",
            StringFormat::Ipv4 => "ipv4",
            StringFormat::Ipv6 => "ipv6",
        }
    }

    pub fn matches(self, text: &str) -> bool {
        match self {
            StringFormat::Email => is_email(text),
            StringFormat::Uuid => is_uuid(text),
            StringFormat::Uri => is_uri(text),
            StringFormat::Hostname => is_hostname(text),
            StringFormat::Ipv4 => text.parse::<Ipv4Addr>().is_ok(),
            StringFormat::Ipv6 => text.parse::<Ipv6Addr>().is_ok(),
        }
    }
}

/// `local@domain` with a non-empty local part of at most 64 bytes and a hostname (or a bracketed
/// IP literal) as domain. Quoted local parts are not supported.
fn is_email(text: &str) -> bool {
    let Some((local, domain)) = text.rsplit_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b));
    let domain_ok = match domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        Some(literal) => {
            literal.parse::<Ipv4Addr>().is_ok() || literal.strip_prefix("IPv6:").is_some_and(|v6| v6.parse::<Ipv6Addr>().is_ok())
        }
        None => is_hostname(domain),
    };
    local_ok && domain_ok
}

/// `8-4-4-4-12` hexadecimal digits (any version, either case).
fn is_uuid(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(idx, c)| match idx {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// An absolute URI: a scheme (`ALPHA *(ALPHA / DIGIT / + / - / .)`), a colon, and no whitespace,
/// control characters or characters RFC 3986 forbids anywhere in a URI.
fn is_uri(text: &str) -> bool {
    let Some((scheme, rest)) = text.split_once(':') else {
        return false;
    };
    let mut scheme_bytes = scheme.bytes();
    let scheme_ok = scheme_bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && scheme_bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    scheme_ok
        && !rest.is_empty()
        && rest.bytes().all(|b| b > b' ' && b != 0x7f && !matches!(b, b'"' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}'))
}

/// RFC 1123 host name: at most 253 bytes, dot-separated labels of 1-63 letters, digits and
/// hyphens that neither start nor end with a hyphen.
fn is_hostname(text: &str) -> bool {
    let text = text.strip_suffix('.').unwrap_or(text);
    !text.is_empty()
        && text.len() <= 253
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::StringFormat;

    fn check(format: &str, text: &str, expected: bool) {
        let format = StringFormat::from_name(format).unwrap();
        assert_eq!(format.matches(text), expected, "{} {text:?}", format.name());
    }

    #[test]
    fn each_format_accepts_its_examples_and_refuses_near_misses() {
        check("email", "ana@example.com", true);
        check("email", "a.b+tag@sub.example.org", true);
        check("email", "ana@", false);
        check("email", "@example.com", false);
        check("email", "ana example@example.com", false);
        check("uuid", "0191b3f2-7c1e-7a4b-9e0f-1234567890ab", true);
        check("uuid", "0191b3f2-7c1e-7a4b-9e0f-1234567890a", false);
        check("uri", "https://example.com/a?b=c", true);
        check("uri", "urn:isbn:0451450523", true);
        check("uri", "/relative/path", false);
        check("uri", "https://exa mple.com", false);
        check("hostname", "kafka-1.internal", true);
        check("hostname", "-bad.example", false);
        check("ipv4", "192.168.0.1", true);
        check("ipv4", "192.168.0.256", false);
        check("ipv4", "01.2.3.4", false);
        check("ipv6", "::1", true);
        check("ipv6", "2001:db8::g", false);
    }
}
