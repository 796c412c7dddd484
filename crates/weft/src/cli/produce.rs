//! `weft produce STREAM [FILE|-]`: sends NDJSON in batches, shows progress on a terminal,
//! and prints a JSON summary. Exits non-zero if any event was rejected.

use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::{Value, json};

use crate::client::Client;

/// Events per request.
const BATCH_EVENTS_MAX: usize = 1_000;
/// Bytes per request, well under the server's body limit.
const BATCH_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Rejections echoed in the summary.
const SUMMARY_ERRORS_MAX: usize = 20;

#[derive(Args)]
pub struct ProduceArgs {
    stream: String,
    /// NDJSON file; `-` or nothing reads standard input.
    file: Option<PathBuf>,
}

pub fn run(client: &Client, args: ProduceArgs) -> anyhow::Result<ExitCode> {
    let input: Box<dyn Read> = match &args.file {
        None => Box::new(std::io::stdin()),
        Some(path) if path.as_os_str() == "-" => Box::new(std::io::stdin()),
        Some(path) => Box::new(File::open(path).map_err(|error| anyhow::anyhow!("cannot open {}: {error}", path.display()))?),
    };
    let path = format!("/api/v1/streams/{}/events", super::segment(&args.stream));
    let show_progress = std::io::stderr().is_terminal();
    let mut reader = BufReader::new(input);
    let (mut n_accepted, mut n_rejected, mut line_idx) = (0u64, 0u64, 0u64);
    let mut errors: Vec<Value> = Vec::new();
    let mut batch = Vec::with_capacity(BATCH_BYTES_MAX);
    // The input line number of each event in the current batch (blank lines are skipped).
    let mut batch_lines: Vec<u64> = Vec::with_capacity(BATCH_EVENTS_MAX);
    let mut n_in_batch = 0usize;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n_read = reader.read_until(b'\n', &mut line)?;
        let at_end = n_read == 0;
        if !at_end {
            line_idx += 1;
            if line.trim_ascii().is_empty() {
                continue;
            }
            batch.extend_from_slice(line.trim_ascii_end());
            batch.push(b'\n');
            batch_lines.push(line_idx);
            n_in_batch += 1;
        }
        if n_in_batch > 0 && (at_end || n_in_batch >= BATCH_EVENTS_MAX || batch.len() >= BATCH_BYTES_MAX) {
            let response = client.post_bytes(&path, "application/x-ndjson", &batch)?;
            n_accepted += response["accepted"].as_u64().unwrap_or(0);
            n_rejected += response["rejected"].as_u64().unwrap_or(0);
            collect_errors(&response, &batch_lines, &mut errors);
            batch.clear();
            batch_lines.clear();
            n_in_batch = 0;
            if show_progress {
                eprint!("\rproduced {n_accepted} events, {n_rejected} rejected");
                std::io::stderr().flush()?;
            }
        }
        if at_end {
            break;
        }
    }
    if show_progress {
        eprintln!();
    }
    let summary = json!({ "stream": args.stream, "accepted": n_accepted, "rejected": n_rejected, "errors": errors });
    println!("{}", serde_json::to_string(&summary)?);
    Ok(if n_rejected == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Records the first rejections with the input line they came from.
fn collect_errors(response: &Value, batch_lines: &[u64], errors: &mut Vec<Value>) {
    let Some(results) = response["results"].as_array() else { return };
    for (event_idx, result) in results.iter().enumerate() {
        if errors.len() >= SUMMARY_ERRORS_MAX {
            return;
        }
        if let Some(error) = result.get("error") {
            errors.push(json!({ "line": batch_lines.get(event_idx), "event": batch_lines.get(event_idx), "error": error }));
        }
    }
}
