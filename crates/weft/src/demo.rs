//! `weft serve --demo`: applies the example mesh (embedded from `examples/`, so the binary works
//! from any directory) and runs a small in-process generator until the server stops.
//!
//! Three producers publish a few events per second each: `customers` (CustomerCreated),
//! `sales` (SaleRecorded) and `inventory` (StockLevelChanged). About `INVALID_PER_MILLE` of
//! the events break their contract on purpose (a bad enum value, a pattern, a negative
//! amount, a missing field), so dead letters and rejection reasons show. One consumer group,
//! `customer-sales-insights` (attributed to that product by name), reads the sales orders a
//! little behind the producers and commits, so lag and observed lineage are populated.
//!
//! Bounded: `DEMO_EVENTS_MAX` events in all, then the generator stops; it also stops when the
//! server begins to shut down. Randomness comes from a small seeded generator, so a run is
//! reproducible from its seed (logged at start).

use std::sync::Arc;
use std::time::Duration;

use weft_core::broker::{Incoming, ProduceContext};
use weft_core::cloudevent::format_rfc3339_ms;
use weft_core::group::OffsetReset;
use weft_core::guard::Caller;
use weft_core::mesh::ApplySource;
use weft_core::{Broker, CloudEvent};

/// The example mesh, embedded.
const EXAMPLE_FILES: [(&str, &str); 12] = [
    ("examples/customers/domain.yaml", include_str!("../../../examples/customers/domain.yaml")),
    ("examples/customers/customer-created.odcs.yaml", include_str!("../../../examples/customers/customer-created.odcs.yaml")),
    ("examples/customers/customers.odps.yaml", include_str!("../../../examples/customers/customers.odps.yaml")),
    ("examples/sales/domain.yaml", include_str!("../../../examples/sales/domain.yaml")),
    ("examples/sales/sale-recorded.odcs.yaml", include_str!("../../../examples/sales/sale-recorded.odcs.yaml")),
    ("examples/sales/sales.odps.yaml", include_str!("../../../examples/sales/sales.odps.yaml")),
    ("examples/inventory/domain.yaml", include_str!("../../../examples/inventory/domain.yaml")),
    ("examples/inventory/stock-levels.odcs.yaml", include_str!("../../../examples/inventory/stock-levels.odcs.yaml")),
    ("examples/inventory/inventory.odps.yaml", include_str!("../../../examples/inventory/inventory.odps.yaml")),
    ("examples/insights/domain.yaml", include_str!("../../../examples/insights/domain.yaml")),
    ("examples/insights/customer-revenue.odcs.yaml", include_str!("../../../examples/insights/customer-revenue.odcs.yaml")),
    ("examples/insights/customer-sales-insights.odps.yaml", include_str!("../../../examples/insights/customer-sales-insights.odps.yaml")),
];

/// Most events the generator publishes in one run.
pub const DEMO_EVENTS_MAX: u64 = 1_000_000;
/// Time between two generator ticks; each producer publishes one event per tick.
const TICK: Duration = Duration::from_millis(400);
/// Share of events that break their contract on purpose, per mille.
const INVALID_PER_MILLE: u64 = 50;
const CUSTOMERS_STREAM: &str = "customers.customer-created.v1";
const SALES_STREAM: &str = "sales.orders.v1";
const INVENTORY_STREAM: &str = "inventory.stock-levels.v1";
/// The consumer group reading sales orders; named after the product that declares that input.
pub const DEMO_GROUP: &str = "customer-sales-insights";
const DEMO_MEMBER: &str = "demo-reader";
/// The demo reader polls every this many ticks, so lag builds up between its polls.
const READER_TICKS_PER_POLL: u64 = 5;
/// Events the demo reader takes per partition and poll.
const READER_EVENTS_PER_POLL: usize = 2;
/// Customer ids remembered so orders can refer to customers that exist.
const KNOWN_CUSTOMERS_MAX: usize = 256;

/// xorshift64*: small, fast and good enough for demo data.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    fn invalid(&mut self) -> bool {
        self.below(1000) < INVALID_PER_MILLE
    }

    /// A random UUID in the version 4 layout.
    fn uuid(&mut self) -> String {
        let (high, low) = (self.next(), self.next());
        let high = (high & !0xf000) | 0x4000;
        let low = (low & !(0xc << 60)) | (0x8 << 60);
        let hex = format!("{high:016x}{low:016x}");
        format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
    }
}

/// Applies the example mesh; returns an error naming what was refused.
pub fn apply_examples(broker: &Broker) -> anyhow::Result<()> {
    let sources = EXAMPLE_FILES.iter().map(|(name, text)| ApplySource { name: name.to_string(), text: text.to_string() }).collect();
    let caller = Caller::without_token(weft_governance::identity::ADMIN_PRINCIPAL, "demo");
    let plan = broker.apply(sources, false, &caller).map_err(|error| anyhow::anyhow!("{error}"))?;
    if plan.n_refused() > 0 {
        let refused: Vec<String> = plan
            .resources
            .iter()
            .filter_map(|r| r.error.as_ref().map(|e| format!("{} {}: {}: {}", r.kind, r.id, e.code, e.message)))
            .collect();
        anyhow::bail!("the example mesh was refused: {}", refused.join("; "));
    }
    Ok(())
}

fn customer_created(random: &mut Random, now_ms: i64, customer_id: &str) -> serde_json::Value {
    let first = random.pick(&["Ana", "Ben", "Chen", "Dana", "Emil", "Farah", "Goran", "Hana"]);
    let country = random.pick(&["DE", "CH", "AT", "FR", "GB", "US"]);
    let mut data = serde_json::json!({
        "customer_id": customer_id,
        "email": format!("{}.{}@example.com", first.to_lowercase(), random.below(10_000)),
        "name": format!("{first} Example"),
        "country": country,
        "created_at": format_rfc3339_ms(now_ms),
    });
    if random.invalid() {
        match random.below(3) {
            0 => data["country"] = "Germany".into(),
            1 => data["email"] = "not-an-email".into(),
            _ => drop(data.as_object_mut().map(|o| o.remove("name"))),
        }
    }
    data
}

fn sale_recorded(random: &mut Random, now_ms: i64, customer_id: &str) -> serde_json::Value {
    let quantity = 1 + random.below(5);
    let mut data = serde_json::json!({
        "order_id": random.uuid(),
        "amount": (random.below(50_000) as f64) / 100.0 + 1.0,
        "currency": random.pick(&["EUR", "USD", "CHF", "GBP"]),
        "quantity": quantity,
        "placed_at": format_rfc3339_ms(now_ms),
        "customer": { "customer_id": customer_id, "email": format!("buyer{}@example.com", random.below(1000)) },
        "lines": [{ "sku": format!("SKU-{:04}", random.below(500)), "quantity": quantity }],
    });
    if random.invalid() {
        match random.below(3) {
            0 => data["currency"] = "XYZ".into(),
            1 => data["amount"] = (-5.0).into(),
            _ => data["lines"] = serde_json::json!([]),
        }
    }
    data
}

fn stock_level(random: &mut Random, now_ms: i64) -> serde_json::Value {
    let mut data = serde_json::json!({
        "sku": format!("SKU-{:04}", random.below(500)),
        "warehouse": random.pick(&["BER-1", "MUC-1", "ZRH-1"]),
        "on_hand": random.below(1_000),
        "reserved": random.below(50),
        "changed_at": format_rfc3339_ms(now_ms),
    });
    if random.invalid() {
        match random.below(2) {
            0 => data["warehouse"] = "LHR-9".into(),
            _ => data["on_hand"] = (-1).into(),
        }
    }
    data
}

fn wrap(stream: &str, event_type: &str, random: &mut Random, now_ms: i64, data: &serde_json::Value) -> Incoming {
    let event = serde_json::json!({
        "specversion": "1.0",
        "id": random.uuid(),
        "source": format!("/weft/demo/{stream}"),
        "type": event_type,
        "time": format_rfc3339_ms(now_ms),
        "datacontenttype": "application/json",
        "data": data,
    });
    match CloudEvent::from_json(event.to_string().as_bytes()) {
        Ok(event) => Incoming::Event(event),
        Err(error) => Incoming::Unparsed { error, raw: event.to_string().into_bytes() },
    }
}

/// Runs the generator and the reader until `stop` turns true or `DEMO_EVENTS_MAX` is reached.
pub async fn run(broker: Arc<Broker>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let seed = broker.now_ms() as u64 | 1;
    tracing::info!(seed, "demo generator started");
    let mut random = Random(seed);
    let (Ok(customers), Ok(sales), Ok(inventory)) =
        (broker.stream(CUSTOMERS_STREAM), broker.stream(SALES_STREAM), broker.stream(INVENTORY_STREAM))
    else {
        tracing::error!("the demo streams do not exist; was the example mesh applied?");
        return;
    };
    let mut known_customers: Vec<String> = Vec::new();
    let mut n_events = 0u64;
    let mut n_ticks = 0u64;
    let mut ticker = tokio::time::interval(TICK);
    while n_events < DEMO_EVENTS_MAX && !*stop.borrow() {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => break,
        }
        let now_ms = broker.now_ms();
        let customer_id = random.uuid();
        let created = customer_created(&mut random, now_ms, &customer_id);
        if known_customers.len() >= KNOWN_CUSTOMERS_MAX {
            known_customers.remove(0);
        }
        known_customers.push(customer_id);
        let buyer = known_customers[random.below(known_customers.len() as u64) as usize].clone();
        let order = sale_recorded(&mut random, now_ms, &buyer);
        let stock = stock_level(&mut random, now_ms);
        let batches = [
            (&customers, "customers", wrap(CUSTOMERS_STREAM, "CustomerCreated", &mut random, now_ms, &created)),
            (&sales, "sales", wrap(SALES_STREAM, "SaleRecorded", &mut random, now_ms, &order)),
            (&inventory, "inventory", wrap(INVENTORY_STREAM, "StockLevelChanged", &mut random, now_ms, &stock)),
        ];
        for (stream, producer, event) in batches {
            let context = ProduceContext { producer: producer.to_string() };
            let outcome = broker.produce(stream, vec![event], &context).await;
            if let Some(error) = outcome.storage_error {
                tracing::error!(stream = stream.name(), %error, "demo produce failed; stopping the generator");
                return;
            }
            n_events += 1;
        }
        n_ticks += 1;
        if n_ticks.is_multiple_of(READER_TICKS_PER_POLL) {
            read_some_orders(&broker, &sales).await;
        }
    }
    tracing::info!(n_events, "demo generator stopped");
}

/// Bytes the demo reader reads per partition and poll.
const READER_READ_BYTES: usize = 64 * 1024;

/// One poll of the demo reader: takes a few orders and commits past them.
async fn read_some_orders(broker: &Broker, sales: &Arc<weft_core::Stream>) {
    let assignment = match broker.groups().poll(DEMO_GROUP, sales, DEMO_MEMBER, 30_000, OffsetReset::Earliest) {
        Ok(assignment) => assignment,
        Err(error) => {
            tracing::warn!(%error, "demo reader could not poll");
            return;
        }
    };
    let mut committed = Vec::new();
    for (partition, position) in assignment.positions {
        let Ok(fetched) = broker.read_batches(sales, partition, position, READER_READ_BYTES).await else { continue };
        let Ok(records) = fetched.records(READER_EVENTS_PER_POLL) else { continue };
        if let Some(last) = records.last() {
            committed.push((partition, last.record.offset + 1));
        }
    }
    if committed.is_empty() {
        return;
    }
    broker.groups().advance(DEMO_GROUP, sales.name(), DEMO_MEMBER, &committed);
    if let Err(error) = broker.groups().commit(DEMO_GROUP, sales, DEMO_MEMBER, &committed) {
        tracing::warn!(%error, "demo reader could not commit");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_uuids_have_the_v4_layout() {
        let mut random = Random(42);
        for _ in 0..100 {
            let id = random.uuid();
            assert_eq!(id.len(), 36);
            assert_eq!(&id[14..15], "4");
            assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
        }
    }
}
