//! `GET /metrics`: Prometheus text exposition format 0.0.4, written by hand (a few dozen lines
//! do not justify a metrics crate and its compile time).
//!
//! Per stream: `weft_stream_events_in_total`, `weft_stream_bytes_in_total`,
//! `weft_stream_events_rejected_total{reason}`, `weft_produce_latency_seconds` and
//! `weft_fsync_latency_seconds` (histograms), `weft_dead_letters_total` (dead letters stored),
//! `weft_stream_freshness_seconds` (age of the last event, for streams that had one) and
//! `weft_stream_late` (1 while the stream misses its contract's latency SLA). Per group and
//! stream: `weft_consumer_group_lag`. Process: `process_resident_memory_bytes`,
//! `process_cpu_seconds_total`, `process_open_fds`, `process_start_time_seconds`, read from
//! `/proc` (Linux; absent elsewhere). Counters count since the server started.
//!
//! Producers are not labels: their names come from clients, so their number is not bounded
//! by the server; they are on the product page instead.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use weft_core::Error;
use weft_core::stream_activity::{FreshnessStatus, HistogramSnapshot};

use crate::AppState;
use crate::api_error::ApiError;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Clock ticks per second of `/proc/<pid>/stat` times (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// A label value escaped for the exposition format: backslash, double quote and line feed.
pub fn escape_label_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// `{name="value",...}` with escaped values (empty for no labels).
fn labels(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = pairs.iter().map(|(name, value)| format!("{name}=\"{}\"", escape_label_value(value))).collect();
    format!("{{{}}}", inner.join(","))
}

/// Collects samples per metric family so each family is written once with its HELP and TYPE.
#[derive(Default)]
struct Exposition {
    families: Vec<(&'static str, &'static str, &'static str, Vec<String>)>,
}

impl Exposition {
    fn family(&mut self, name: &'static str, kind: &'static str, help: &'static str) -> &mut Vec<String> {
        let idx = match self.families.iter().position(|(n, _, _, _)| *n == name) {
            Some(idx) => idx,
            None => {
                self.families.push((name, kind, help, Vec::new()));
                self.families.len() - 1
            }
        };
        &mut self.families[idx].3
    }

    fn sample(&mut self, name: &'static str, kind: &'static str, help: &'static str, pairs: &[(&str, &str)], value: f64) {
        let line = format!("{name}{} {}", labels(pairs), format_value(value));
        self.family(name, kind, help).push(line);
    }

    fn histogram(&mut self, name: &'static str, help: &'static str, pairs: &[(&str, &str)], histogram: &HistogramSnapshot) {
        let mut lines = Vec::new();
        for (bound, count) in histogram.cumulative() {
            let le = bound.map_or_else(|| "+Inf".to_string(), format_value);
            let mut with_le: Vec<(&str, &str)> = pairs.to_vec();
            with_le.push(("le", &le));
            lines.push(format!("{name}_bucket{} {count}", labels(&with_le)));
        }
        lines.push(format!("{name}_sum{} {}", labels(pairs), format_value(histogram.sum_seconds)));
        lines.push(format!("{name}_count{} {}", labels(pairs), histogram.count));
        self.family(name, "histogram", help).extend(lines);
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for (name, kind, help, lines) in &self.families {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for line in lines {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

fn format_value(value: f64) -> String {
    if value.is_finite() && value.fract() == 0.0 && value.abs() < 1e15 { format!("{}", value as i64) } else { format!("{value}") }
}

fn render_metrics(state: &AppState) -> Result<String, Error> {
    let mut exposition = Exposition::default();
    let now_ms = state.broker.now_ms();
    for stream in state.broker.streams() {
        let name = stream.name();
        let stream_label = [("stream", name)];
        let activity = stream.activity().snapshot(now_ms);
        exposition.sample(
            "weft_stream_events_in_total",
            "counter",
            "Events accepted into the stream since the server started.",
            &stream_label,
            activity.events_total as f64,
        );
        exposition.sample(
            "weft_stream_bytes_in_total",
            "counter",
            "Bytes (data and attributes) accepted into the stream since the server started.",
            &stream_label,
            activity.bytes_total as f64,
        );
        for (reason, count) in &activity.rejected_by_reason {
            exposition.sample(
                "weft_stream_events_rejected_total",
                "counter",
                "Events refused by the stream since the server started, by reason code.",
                &[("stream", name), ("reason", reason)],
                *count as f64,
            );
        }
        exposition.histogram(
            "weft_produce_latency_seconds",
            "Time from receiving a produce request to acknowledging it.",
            &stream_label,
            &activity.produce_latency,
        );
        exposition.histogram(
            "weft_fsync_latency_seconds",
            "Time waiting for the fsync that makes appended events durable (streams with fsync always).",
            &stream_label,
            &activity.fsync_latency,
        );
        if stream.governance().is_some() {
            exposition.sample(
                "weft_dead_letters_total",
                "gauge",
                "Dead letters stored for the stream.",
                &stream_label,
                crate::catalog::dead_letter_count(state, &stream) as f64,
            );
        }
        let freshness = state.broker.freshness(&stream);
        if let Some(age_ms) = freshness.age_ms {
            exposition.sample(
                "weft_stream_freshness_seconds",
                "gauge",
                "Seconds since the stream's last accepted event.",
                &stream_label,
                age_ms as f64 / 1000.0,
            );
        }
        if freshness.latency_sla_ms.is_some() {
            exposition.sample(
                "weft_stream_late",
                "gauge",
                "1 while the stream has had no event for longer than its contract's latency SLA.",
                &stream_label,
                if freshness.status == FreshnessStatus::Late { 1.0 } else { 0.0 },
            );
        }
        for (group, lag) in crate::catalog::consumer_groups(state, &stream)? {
            exposition.sample(
                "weft_consumer_group_lag",
                "gauge",
                "Events in the stream after the group's committed offsets.",
                &[("group", &group), ("stream", name)],
                lag as f64,
            );
        }
    }
    process_metrics(&mut exposition);
    Ok(exposition.render())
}

/// Process metrics from `/proc`; silently absent where `/proc` is not readable.
fn process_metrics(exposition: &mut Exposition) {
    if let Some(rss_kib) = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| status.lines().find_map(|l| l.strip_prefix("VmRSS:").map(str::to_string)))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
    {
        exposition.sample("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", &[], rss_kib * 1024.0);
    }
    // Fields after the command name, which is in parentheses and may contain spaces.
    let stat = std::fs::read_to_string("/proc/self/stat").ok();
    let fields: Vec<&str> =
        stat.as_deref().and_then(|s| s.rsplit_once(')')).map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    // `fields[0]` is field 3 (state): utime is field 14, stime 15, starttime 22.
    let field = |number: usize| fields.get(number - 3).and_then(|v| v.parse::<f64>().ok());
    if let (Some(utime), Some(stime)) = (field(14), field(15)) {
        exposition.sample(
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            &[],
            (utime + stime) / CLOCK_TICKS_PER_SECOND,
        );
    }
    let boot_time = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("btime ").and_then(|v| v.trim().parse::<f64>().ok())));
    if let (Some(boot_time), Some(start_ticks)) = (boot_time, field(22)) {
        exposition.sample(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since the Unix epoch in seconds.",
            &[],
            boot_time + start_ticks / CLOCK_TICKS_PER_SECOND,
        );
    }
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        exposition.sample("process_open_fds", "gauge", "Number of open file descriptors.", &[], entries.count() as f64);
    }
}

/// `GET /metrics`.
pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let text = tokio::task::spawn_blocking(move || render_metrics(&state)).await.map_err(|error| Error::internal(error.to_string()))??;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label_value(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label_value("line\nbreak"), "line\\nbreak");
        assert_eq!(escape_label_value("plain-group@x:1"), "plain-group@x:1");
        assert_eq!(labels(&[("group", "g\"1"), ("stream", "s")]), r#"{group="g\"1",stream="s"}"#);
        assert_eq!(labels(&[]), "");
    }

    #[test]
    fn families_are_written_once_with_help_and_type() {
        let mut exposition = Exposition::default();
        exposition.sample("m_total", "counter", "Help.", &[("stream", "a")], 1.0);
        exposition.sample("m_total", "counter", "Help.", &[("stream", "b")], 2.5);
        let histogram = HistogramSnapshot { counts: vec![1, 0, 2], count: 3, sum_seconds: 0.25 };
        exposition.histogram("h_seconds", "Latency.", &[("stream", "a")], &histogram);
        let text = exposition.render();
        assert_eq!(text.matches("# TYPE m_total counter").count(), 1);
        assert!(text.contains("m_total{stream=\"b\"} 2.5\n"));
        assert!(text.contains("h_seconds_bucket{stream=\"a\",le=\"0.0005\"} 1\n"));
        assert!(text.contains("h_seconds_bucket{stream=\"a\",le=\"0.001\"} 1\n"));
        assert!(text.contains("h_seconds_count{stream=\"a\"} 3\n"));
    }
}
