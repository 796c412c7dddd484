//! `weft consume STREAM`: prints events as NDJSON (one envelope per line).
//!
//! Without `--group` it replays partitions from `--from` (earliest, latest, an offset, or an
//! RFC 3339 time) up to their current end, or keeps following with `--follow`. With
//! `--group` it polls as a member of that consumer group and commits after printing.

use std::io::{BufWriter, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use clap::Args;
use serde_json::{Value, json};

use crate::client::Client;

/// Events per request.
const PAGE_EVENTS: u64 = 1_000;
/// How long a caught-up `--follow` replay waits before asking again.
const FOLLOW_POLL_INTERVAL: Duration = Duration::from_millis(250);

#[derive(Args)]
pub struct ConsumeArgs {
    stream: String,
    /// Consume as a member of this consumer group (committing progress).
    #[arg(long)]
    group: Option<String>,
    /// Member id within the group (default: a name unique to this process).
    #[arg(long)]
    member: Option<String>,
    /// earliest, latest, an offset, or an RFC 3339 time.
    #[arg(long, default_value = "earliest")]
    from: String,
    /// Only this partition.
    #[arg(long)]
    partition: Option<u32>,
    /// Stop after this many events.
    #[arg(long)]
    max: Option<u64>,
    /// Keep waiting for new events instead of stopping at the end.
    #[arg(long)]
    follow: bool,
}

pub fn run(client: &Client, args: ConsumeArgs) -> anyhow::Result<ExitCode> {
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let max = args.max.unwrap_or(u64::MAX);
    match &args.group {
        Some(group) => consume_group(client, &args, group, max, &mut out)?,
        None => replay(client, &args, max, &mut out)?,
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn replay(client: &Client, args: &ConsumeArgs, max: u64, out: &mut impl Write) -> anyhow::Result<()> {
    let stream_path = format!("/api/v1/streams/{}", super::segment(&args.stream));
    let stream = client.get(&stream_path)?;
    let offsets = stream["offsets"].as_array().cloned().unwrap_or_default();
    let mut positions: Vec<(u64, String)> = Vec::new();
    for partition_info in &offsets {
        let partition = partition_info["partition"].as_u64().unwrap_or(0);
        if args.partition.is_some_and(|only| only as u64 != partition) {
            continue;
        }
        let start = match args.from.as_str() {
            "earliest" => format!("offset={}", partition_info["first_offset"]),
            "latest" => format!("offset={}", partition_info["next_offset"]),
            text if text.bytes().all(|b| b.is_ascii_digit()) => format!("offset={text}"),
            time => format!("from_time={}", time.replace('+', "%2B")),
        };
        positions.push((partition, start));
    }
    if positions.is_empty() {
        bail!("stream {} has no partition {}", args.stream, args.partition.unwrap_or(0));
    }
    let mut n_printed = 0u64;
    loop {
        let mut progressed = false;
        for (partition, start) in positions.iter_mut() {
            while n_printed < max {
                let limit = PAGE_EVENTS.min(max - n_printed);
                let page = client.get(&format!("{stream_path}/events?partition={partition}&{start}&limit={limit}"))?;
                let events = page["events"].as_array().cloned().unwrap_or_default();
                *start = format!("offset={}", page["next_offset"]);
                if events.is_empty() {
                    break;
                }
                progressed = true;
                for event in events {
                    writeln!(out, "{}", serde_json::to_string(&event)?)?;
                    n_printed += 1;
                }
            }
        }
        if n_printed >= max || !args.follow {
            return Ok(());
        }
        if !progressed {
            out.flush()?;
            std::thread::sleep(FOLLOW_POLL_INTERVAL);
        }
    }
}

fn consume_group(client: &Client, args: &ConsumeArgs, group: &str, max: u64, out: &mut impl Write) -> anyhow::Result<()> {
    let member = args.member.clone().unwrap_or_else(|| format!("weft-cli-{}", std::process::id()));
    let group_path = format!("/api/v1/streams/{}/groups/{}", super::segment(&args.stream), super::segment(group));
    let from = if args.from == "latest" { "latest" } else { "earliest" };
    let mut n_printed = 0u64;
    while n_printed < max {
        let max_events = PAGE_EVENTS.min(max - n_printed);
        let wait_ms = if args.follow { 5_000 } else { 500 };
        let page = client.post_json(
            &format!("{group_path}/poll"),
            &json!({ "member": member, "max_events": max_events, "wait_ms": wait_ms, "from": from }),
        )?;
        let events = page["events"].as_array().cloned().unwrap_or_default();
        if events.is_empty() && !args.follow {
            break;
        }
        let mut next: serde_json::Map<String, Value> = serde_json::Map::new();
        for event in &events {
            writeln!(out, "{}", serde_json::to_string(event)?)?;
            n_printed += 1;
            let (Some(partition), Some(offset)) = (event["partition"].as_u64(), event["offset"].as_u64()) else { continue };
            next.insert(partition.to_string(), json!(offset + 1));
        }
        out.flush()?;
        if !next.is_empty() {
            client.post_json(&format!("{group_path}/commit"), &json!({ "member": member, "offsets": next }))?;
        }
    }
    // Leave so the group rebalances at once rather than after the session timeout.
    let _ = client.delete(&format!("{group_path}/members/{}", super::segment(&member)));
    Ok(())
}
