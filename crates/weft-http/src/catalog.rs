//! Catalog endpoints: live stream statistics and samples on the product page, search, and
//! lineage (Weft's own graph and OpenLineage).
//!
//! - `GET /api/v1/products/{id}` (in `mesh.rs`) gains, on every entry of `streams`, a `stats`
//!   object (what the server measured since it started; see `weft_core::stream_activity`)
//!   and `samples`, the last `SAMPLES_PER_STREAM` events as fetch envelopes, newest first,
//!   masked for the viewer by `mask_for_viewer` like every other read path. Samples are event
//!   data: a viewer who may read the catalog but not `consume` the stream gets `samples: []` and
//!   `samples_withheld`, the denial that says why (not audited: the page itself was allowed).
//! - `GET /api/v1/search?q=&domain=&tag=&classification=&limit=` ranks products, contracts,
//!   properties, streams and domains: `{"query","hits":[{"kind","id","product","domain",
//!   "name","score","matched":[{"field","text"}]}]}`. `q` is at most
//!   `weft_core::catalog::SEARCH_QUERY_BYTES_MAX` bytes; an empty `q` needs a filter.
//! - `GET /api/v1/lineage/{product}?depth=N` (default `LINEAGE_DEPTH_DEFAULT`, at most
//!   `LINEAGE_DEPTH_MAX`): `{"root","nodes","edges","disagreements"}`.
//! - `GET /api/v1/lineage/{product}/openlineage?depth=N` (default 0, the product alone) and
//!   `GET /api/v1/openlineage`: arrays of OpenLineage 2-0-2 RunEvents (see `openlineage.rs`).
//!
//! Hits, lineage and OpenLineage list only products the caller may read in the catalog.

use std::collections::BTreeSet;

use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use serde_json::{Value, json};
use weft_contract::DataProduct;
use weft_core::catalog::{SEARCH_HITS_DEFAULT, SEARCH_HITS_MAX, SearchQuery};
use weft_core::cloudevent::format_rfc3339_ms;
use weft_core::guard::{AuthzAction, AuthzResource, Caller};
use weft_core::lineage::{LINEAGE_DEPTH_DEFAULT, LINEAGE_DEPTH_MAX, LineageGraph};
use weft_core::mesh::MeshState;
use weft_core::stream_activity::HistogramSnapshot;
use weft_core::{Error, Kind, Stream};

use crate::api_error::ApiError;
use crate::query::QueryParams;
use crate::render::write_envelope;
use crate::{AppState, codes};

/// Events shown per stream on the product page.
pub const SAMPLES_PER_STREAM: usize = 5;
/// Bytes read per partition to find the samples.
const SAMPLES_READ_BYTES: usize = 256 * 1024;

/// The masking a viewer gets on a stream's samples: the same rule as every fetch path (the
/// guard's masker hides classified fields the viewer may not read in clear).
pub fn mask_for_viewer(state: &AppState, stream: &Stream, viewer: &Caller) -> Option<weft_core::guard::Masker> {
    state.broker.guard().masker(viewer, &state.broker, stream.name())
}

fn may_read_product(state: &AppState, caller: &Caller, product_id: &str) -> bool {
    state.broker.guard().check(caller, AuthzAction::ReadCatalog, &AuthzResource::DataProduct(product_id.to_string())).is_ok()
}

fn histogram_ms(histogram: &HistogramSnapshot) -> Value {
    let ms = |q: f64| histogram.quantile_upper_bound(q).map(|seconds| seconds * 1000.0);
    json!({ "count": histogram.count, "p50_upper_bound": ms(0.5), "p99_upper_bound": ms(0.99) })
}

/// The consumer groups of a stream with their total lag: live HTTP groups and every group
/// with committed offsets (the Kafka listener's included).
pub(crate) fn consumer_groups(state: &AppState, stream: &Stream) -> Result<Vec<(String, u64)>, Error> {
    let groups: BTreeSet<String> = state
        .broker
        .meta()
        .groups()?
        .into_iter()
        .chain(state.broker.groups().subscriptions())
        .filter(|(_, s)| s == stream.name())
        .map(|(g, _)| g)
        .collect();
    let partition_stats = stream.stats();
    let mut lags = Vec::with_capacity(groups.len());
    for group in groups {
        let committed = state.broker.meta().committed_offsets(&group, stream.name())?;
        let lag: u64 = partition_stats
            .iter()
            .enumerate()
            .map(|(partition, stats)| {
                let from = committed.get(&(partition as u32)).copied().unwrap_or(stats.log_start_offset).max(stats.log_start_offset);
                stats.visible_next_offset.saturating_sub(from)
            })
            .sum();
        lags.push((group, lag));
    }
    Ok(lags)
}

/// Dead letters stored for a governed stream.
pub(crate) fn dead_letter_count(state: &AppState, stream: &Stream) -> u64 {
    stream
        .governance()
        .and_then(|g| state.broker.stream(&g.dead_letter_stream).ok())
        .map_or(0, |dlq| dlq.stats().iter().map(|s| s.visible_next_offset - s.log_start_offset).sum())
}

fn stats_json(state: &AppState, stream: &Stream) -> Result<Value, Error> {
    let now_ms = state.broker.now_ms();
    let activity = stream.activity().snapshot(now_ms);
    let freshness = state.broker.freshness(stream);
    let groups = consumer_groups(state, stream)?;
    Ok(json!({
        "events_total": activity.events_total,
        "bytes_total": activity.bytes_total,
        "events_last_minute": activity.events_last_minute,
        "events_last_hour": activity.events_last_hour,
        "rejected_total": activity.rejected_total,
        "rejected_by_reason": activity.rejected_by_reason,
        "last_event_at": activity.last_event_ms.map(format_rfc3339_ms),
        "freshness": {
            "latency_sla_ms": freshness.latency_sla_ms,
            "age_ms": freshness.age_ms,
            "status": freshness.status.name(),
            "late_since": freshness.late_since_ms.map(format_rfc3339_ms),
        },
        "throughput": activity.throughput.iter().map(|(minute_ms, events)| json!({ "minute": format_rfc3339_ms(*minute_ms), "events": events })).collect::<Vec<_>>(),
        "consumer_groups": groups.iter().map(|(group, lag)| json!({ "group": group, "lag": lag })).collect::<Vec<_>>(),
        "dead_letters": dead_letter_count(state, stream),
        "producers": activity.producers.iter().map(|p| json!({
            "producer": p.producer,
            "events": p.n_events,
            "first_seen": format_rfc3339_ms(p.first_seen_ms),
            "last_seen": format_rfc3339_ms(p.last_seen_ms),
        })).collect::<Vec<_>>(),
        "produce_latency_ms": histogram_ms(&activity.produce_latency),
        "fsync_latency_ms": histogram_ms(&activity.fsync_latency),
    }))
}

/// The last `SAMPLES_PER_STREAM` events of a stream across its partitions, newest first.
async fn samples(state: &AppState, stream: &std::sync::Arc<Stream>, viewer: &Caller) -> Result<Vec<Value>, Error> {
    let masker = mask_for_viewer(state, stream, viewer);
    let mut found: Vec<(i64, u32, u64, Value)> = Vec::new();
    for (partition, stats) in stream.stats().iter().enumerate() {
        let partition = partition as u32;
        let from = stats.visible_next_offset.saturating_sub(SAMPLES_PER_STREAM as u64).max(stats.log_start_offset);
        if from >= stats.visible_next_offset {
            continue;
        }
        let fetched = state.broker.read_batches(stream, partition, from, SAMPLES_READ_BYTES).await?;
        for record in fetched.records(SAMPLES_PER_STREAM)? {
            let mut out = Vec::with_capacity(512);
            write_envelope(&mut out, stream.name(), partition, &record, masker.as_ref());
            let envelope: Value = serde_json::from_slice(&out).map_err(|error| Error::internal(format!("rendering a sample: {error}")))?;
            found.push((record.record.timestamp_ms, partition, record.record.offset, envelope));
        }
    }
    found.sort_by_key(|sample| std::cmp::Reverse((sample.0, sample.2, sample.1)));
    Ok(found.into_iter().take(SAMPLES_PER_STREAM).map(|(_, _, _, envelope)| envelope).collect())
}

/// Adds `stats` and `samples` to every entry of a product body's `streams`; samples only where
/// the viewer may `consume` the stream, `samples_withheld` with the reason elsewhere.
pub(crate) async fn add_stream_observations(state: &AppState, viewer: &Caller, body: &mut Value) -> Result<(), Error> {
    let Some(streams) = body.get_mut("streams").and_then(Value::as_array_mut) else { return Ok(()) };
    for entry in streams {
        let Some(stream) = entry["name"].as_str().and_then(|name| state.broker.stream(name).ok()) else { continue };
        entry["stats"] = stats_json(state, &stream)?;
        let resource = AuthzResource::Stream(stream.name().to_string());
        match state.broker.guard().check(viewer, AuthzAction::Consume, &resource) {
            Ok(()) => entry["samples"] = Value::Array(samples(state, &stream, viewer).await?),
            Err(denied) => {
                entry["samples"] = json!([]);
                entry["samples_withheld"] = json!(denied.message);
            }
        }
    }
    Ok(())
}

/// `GET /api/v1/search`.
pub async fn search(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> Result<axum::Json<Value>, ApiError> {
    let params = QueryParams::parse(raw.as_deref(), &["q", "domain", "tag", "classification", "limit"])?;
    let text = params.get("q").unwrap_or("");
    let limit = params.u64("limit", SEARCH_HITS_MAX as u64)?.map_or(SEARCH_HITS_DEFAULT, |l| l.max(1) as usize);
    let non_empty = |name: &str| params.get(name).map(str::trim).filter(|v| !v.is_empty());
    let query = SearchQuery {
        text,
        domain: non_empty("domain"),
        tag: non_empty("tag"),
        classification: non_empty("classification"),
        limit: SEARCH_HITS_MAX,
    };
    let index = state.broker.search_index();
    let hits = index.search(&query).map_err(|error| Error::invalid(codes::INVALID_PARAMETER, error.to_string()).with_path("/q"))?;
    let hits: Vec<Value> = hits
        .into_iter()
        .filter(|hit| hit.product.as_deref().is_none_or(|product| may_read_product(&state, &caller, product)))
        .take(limit)
        .map(|hit| {
            json!({
                "kind": hit.kind.name(),
                "id": hit.id,
                "product": hit.product,
                "domain": hit.domain,
                "name": hit.name,
                "score": hit.score,
                "matched": hit.matched.iter().map(|m| json!({ "field": m.field, "text": m.text })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(axum::Json(json!({ "query": text, "hits": hits })))
}

pub(crate) fn product_not_found(id: &str) -> Error {
    Error::new(
        Kind::NotFound,
        weft_core::codes::PRODUCT_NOT_FOUND,
        format!("product {:?} does not exist", weft_core::stream::truncate_for_message(id)),
    )
}

fn depth_param(params: &QueryParams, default: u32) -> Result<u32, Error> {
    Ok(params.u64("depth", LINEAGE_DEPTH_MAX as u64)?.map_or(default, |depth| depth as u32))
}

/// The product, if it exists and the caller may read it (otherwise `product.not_found`, so
/// the answer does not reveal products the caller may not see).
fn readable_product<'a>(state: &AppState, caller: &Caller, mesh: &'a MeshState, id: &str) -> Result<&'a DataProduct, Error> {
    mesh.catalog_product(id).filter(|_| may_read_product(state, caller, id)).ok_or_else(|| product_not_found(id))
}

/// `GET /api/v1/lineage/{product}`.
pub async fn lineage(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(product): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<axum::Json<Value>, ApiError> {
    let params = QueryParams::parse(raw.as_deref(), &["depth"])?;
    let depth = depth_param(&params, LINEAGE_DEPTH_DEFAULT)?;
    let mesh = state.broker.mesh();
    readable_product(&state, &caller, &mesh, &product)?;
    let observed = state.broker.observed_lineage()?;
    let mut graph = weft_core::lineage::lineage_of(&mesh, &observed, &product, depth).ok_or_else(|| product_not_found(&product))?;
    // Products the caller may not read are cut out with their edges.
    let hidden: BTreeSet<String> = graph
        .nodes
        .iter()
        .filter(|n| n.kind == weft_core::lineage::NodeKind::Product)
        .filter(|n| !may_read_product(&state, &caller, n.id.trim_start_matches("product:")))
        .map(|n| n.id.clone())
        .collect();
    graph.nodes.retain(|n| !hidden.contains(&n.id));
    graph.edges.retain(|e| !hidden.contains(&e.from) && !hidden.contains(&e.to));
    graph.disagreements.retain(|d| !hidden.contains(&d.from) && !hidden.contains(&d.to));
    Ok(axum::Json(lineage_json(&graph)))
}

/// `GET /api/v1/lineage/{product}/openlineage`.
pub async fn product_openlineage(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(product): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<axum::Json<Value>, ApiError> {
    let params = QueryParams::parse(raw.as_deref(), &["depth"])?;
    let depth = depth_param(&params, 0)?;
    let mesh = state.broker.mesh();
    readable_product(&state, &caller, &mesh, &product)?;
    let graph = weft_core::lineage::lineage_of(&mesh, &Default::default(), &product, depth).ok_or_else(|| product_not_found(&product))?;
    let products: Vec<&DataProduct> = graph
        .nodes
        .iter()
        .filter_map(|n| n.id.strip_prefix("product:"))
        .filter(|id| may_read_product(&state, &caller, id))
        .filter_map(|id| mesh.catalog_product(id))
        .collect();
    Ok(axum::Json(crate::openlineage::run_events(&state, &mesh, &products)))
}

/// `GET /api/v1/openlineage`: one RunEvent per readable product.
pub async fn all_openlineage(State(state): State<AppState>, Extension(caller): Extension<Caller>) -> axum::Json<Value> {
    let mesh = state.broker.mesh();
    let products: Vec<&DataProduct> = mesh.catalog_products().into_iter().filter(|p| may_read_product(&state, &caller, &p.id)).collect();
    axum::Json(crate::openlineage::run_events(&state, &mesh, &products))
}

/// The lineage graph as the API shows it: nodes, edges and disagreements in the core's order.
fn lineage_json(graph: &LineageGraph) -> Value {
    let nodes: Vec<Value> = graph
        .nodes
        .iter()
        .map(|node| {
            let mut out = json!({ "id": node.id, "kind": node.kind.as_str(), "label": node.label, "domain": node.domain });
            if let Some(product) = &node.product {
                out["product"] = json!(product);
            }
            out
        })
        .collect();
    let edges: Vec<Value> = graph
        .edges
        .iter()
        .map(|edge| json!({ "from": edge.from, "to": edge.to, "kind": edge.kind.as_str(), "relation": edge.relation.as_str() }))
        .collect();
    let disagreements: Vec<Value> =
        graph.disagreements.iter().map(|d| json!({ "kind": d.kind.as_str(), "from": d.from, "to": d.to, "message": d.message })).collect();
    json!({ "root": graph.root, "nodes": nodes, "edges": edges, "disagreements": disagreements })
}
