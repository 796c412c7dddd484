//! Client commands: each talks to a running server over HTTP.

pub mod apply;
pub mod consume;
pub mod contract;
pub mod dlq;
pub mod governance;
pub mod produce;
pub mod products;
pub mod search;
pub mod streams;

/// Percent-encodes one path segment (stream and group names are plain, but be safe).
pub fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}
