//! The benchmark workload: JSON order events generated deterministically from a seed before any timing starts.
//!
//! This module owns what an event looks like and how it is keyed and partitioned on the client side.
//! It knows nothing about any system under test; each system formats these events into its own wire protocol.

use std::fmt::Write as _;

/// How many distinct customers the events are keyed by.
pub(crate) const CUSTOMERS_COUNT: u64 = 10_000;
/// Smallest payload size in bytes; sizes are uniform in `[min, min + spread]`, so the mean is about 250 bytes.
const PAYLOAD_BYTES_MIN: usize = 230;
const PAYLOAD_BYTES_SPREAD: u64 = 40;

const CURRENCIES: [&str; 4] = ["EUR", "USD", "GBP", "CHF"];
const STATUSES: [&str; 4] = ["created", "paid", "shipped", "cancelled"];
const CHANNELS: [&str; 4] = ["web", "mobile", "store", "partner"];
const COUNTRIES: [&str; 6] = ["DE", "FR", "NL", "US", "GB", "CH"];

/// One order event as it is sent: the JSON data, the key it is partitioned by, and the partition.
pub(crate) struct Event {
    /// The customer id, which is also the key every system partitions by.
    pub key: String,
    /// `fnv1a(key) % n_partitions`, for systems whose client chooses the partition (NATS subject, Redis stream, Postgres column).
    pub partition: u32,
    /// The event's JSON data on one line, without a trailing newline.
    pub payload: String,
}

/// A pre-generated list of events and their total payload size.
pub(crate) struct Workload {
    pub events: Vec<Event>,
    pub n_payload_bytes: u64,
}

impl Workload {
    /// Generates `n_events` events; the same `(n_events, seed, n_partitions)` always gives byte-identical events.
    pub(crate) fn generate(n_events: usize, seed: u64, n_partitions: u32) -> Workload {
        assert!(n_partitions > 0, "a stream needs at least one partition");
        let mut random = SplitMix64::new(seed);
        let mut events = Vec::with_capacity(n_events);
        let mut n_payload_bytes = 0u64;
        for event_idx in 0..n_events {
            let event = generate_event(&mut random, event_idx as u64, n_partitions);
            n_payload_bytes += event.payload.len() as u64;
            events.push(event);
        }
        Workload { events, n_payload_bytes }
    }

    pub(crate) fn mean_payload_bytes(&self) -> f64 {
        if self.events.is_empty() {
            return 0.0;
        }
        self.n_payload_bytes as f64 / self.events.len() as f64
    }
}

fn generate_event(random: &mut SplitMix64, event_idx: u64, n_partitions: u32) -> Event {
    let customer_idx = random.below(CUSTOMERS_COUNT);
    let key = format!("c-{customer_idx:05}");
    let partition = (fnv1a(key.as_bytes()) % u64::from(n_partitions)) as u32;
    let order_id = random_uuid_v4(random);
    let amount_cents = 100 + random.below(50_000);
    // One event per millisecond of a fixed day keeps timestamps deterministic and ordered.
    let millis_of_day = event_idx % 86_400_000;
    let (hours, minutes) = (millis_of_day / 3_600_000, (millis_of_day / 60_000) % 60);
    let (seconds, millis) = ((millis_of_day / 1000) % 60, millis_of_day % 1000);

    let mut payload = String::with_capacity(PAYLOAD_BYTES_MIN + PAYLOAD_BYTES_SPREAD as usize + 16);
    write!(
        payload,
        concat!(
            "{{\"order_id\":\"{}\",\"customer_id\":\"{}\",\"amount\":{}.{:02},",
            "\"currency\":\"{}\",\"items\":{},\"timestamp\":\"2026-11-01T{:02}:{:02}:{:02}.{:03}Z\",",
            "\"status\":\"{}\",\"channel\":\"{}\",\"shipping_country\":\"{}\",\"sku\":\"SKU-{:06}\",\"note\":\""
        ),
        order_id,
        key,
        amount_cents / 100,
        amount_cents % 100,
        CURRENCIES[random.below(CURRENCIES.len() as u64) as usize],
        1 + random.below(9),
        hours,
        minutes,
        seconds,
        millis,
        STATUSES[random.below(STATUSES.len() as u64) as usize],
        CHANNELS[random.below(CHANNELS.len() as u64) as usize],
        COUNTRIES[random.below(COUNTRIES.len() as u64) as usize],
        random.below(1_000_000),
    )
    .expect("writing to a String cannot fail");
    // Pad the free-text note so payload sizes spread evenly around 250 bytes.
    let payload_bytes_target = PAYLOAD_BYTES_MIN + random.below(PAYLOAD_BYTES_SPREAD + 1) as usize;
    let closing = "\"}";
    while payload.len() + closing.len() < payload_bytes_target {
        payload.push((b'a' + random.below(26) as u8) as char);
    }
    payload.push_str(closing);
    Event { key, partition, payload }
}

/// A random (version 4, RFC 9562 variant) uuid in its `8-4-4-4-12` hex form, as real order ids often are.
fn random_uuid_v4(random: &mut SplitMix64) -> String {
    let (high, low) = (random.next_u64(), random.next_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:x}{:03x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xffff,
        high & 0x0fff,
        0x8 | (low >> 62),
        (low >> 48) & 0x0fff,
        low & 0xffff_ffff_ffff
    )
}

/// FNV-1a, 64 bit: a stable, dependency-free hash for client-side partitioning.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// SplitMix64: tiny, fast and deterministic, which is all a workload generator needs.
struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..bound`; the modulo bias is irrelevant for a workload.
    fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Proves the workload is deterministic, valid JSON, about 250 bytes per event, spread over all partitions, and
    /// that no two events share an order id.
    #[test]
    fn workload_is_deterministic_valid_json_of_about_250_bytes() {
        let first = Workload::generate(2_000, 7, 8);
        let second = Workload::generate(2_000, 7, 8);
        for (a, b) in first.events.iter().zip(&second.events) {
            assert_eq!(a.payload, b.payload);
        }
        let mean = first.mean_payload_bytes();
        assert!((240.0..260.0).contains(&mean), "mean payload {mean}");
        let payload_bytes_max = PAYLOAD_BYTES_MIN + PAYLOAD_BYTES_SPREAD as usize;
        assert!(first.events.iter().all(|event| event.payload.len() <= payload_bytes_max), "an event outgrew its padding");
        let mut seen_partitions = [false; 8];
        let mut order_ids = std::collections::HashSet::new();
        for event in &first.events {
            let value: serde_json::Value = serde_json::from_str(&event.payload).expect("valid JSON");
            assert_eq!(value["customer_id"], event.key.as_str());
            assert!(order_ids.insert(value["order_id"].as_str().expect("order_id is a string").to_string()));
            seen_partitions[event.partition as usize] = true;
        }
        assert!(seen_partitions.iter().all(|seen| *seen));
    }
}
