//! `weft dlq list|show|replay PRODUCT`: dead letters of a product's streams (or of one stream).
//!
//! `show` prints one page of the listing with its `next_cursor` (pass it back with `--cursor`),
//! or with `--all` follows the cursors and prints every dead letter as one JSON line, a page at
//! a time, so it holds at most one page in memory however many letters there are.

use std::io::Write as _;
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::{Value, json};

use crate::client::Client;

#[derive(Subcommand)]
pub enum DlqCommand {
    /// Dead letters grouped by reason, with counts, how many were moved, and examples.
    List { product: String },
    /// The dead letters themselves (optionally of one reason), one page at a time.
    Show {
        product: String,
        #[arg(long)]
        reason: Option<String>,
        /// Dead letters per page (at most 1000).
        #[arg(long, default_value_t = 100)]
        limit: u64,
        /// Where the page starts: the `next_cursor` of the page before.
        #[arg(long, conflicts_with = "all")]
        cursor: Option<String>,
        /// Follow the cursors to the last page and print every dead letter as one JSON line.
        #[arg(long)]
        all: bool,
    },
    /// Re-validate dead letters against the current contract and move those that pass.
    Replay { product: String },
}

pub fn run(client: &Client, command: DlqCommand) -> anyhow::Result<ExitCode> {
    let output = match command {
        DlqCommand::List { product } => client.get(&format!("/api/v1/products/{}/dead-letters", super::segment(&product)))?,
        DlqCommand::Show { product, reason, limit, cursor, all } => {
            let reason = reason.map(|r| format!("&reason={}", super::segment(&r))).unwrap_or_default();
            let page_path = |cursor: Option<&str>| {
                let cursor = cursor.map(|c| format!("&cursor={}", super::segment(c))).unwrap_or_default();
                format!("/api/v1/products/{}/dead-letters?list=true&limit={limit}{reason}{cursor}", super::segment(&product))
            };
            if !all {
                client.get(&page_path(cursor.as_deref()))?
            } else {
                print_every_letter(client, page_path)?;
                return Ok(ExitCode::SUCCESS);
            }
        }
        DlqCommand::Replay { product } => {
            client.post_json(&format!("/api/v1/products/{}/dead-letters/replay", super::segment(&product)), &json!({}))?
        }
    };
    println!("{}", serde_json::to_string_pretty(&output)?);
    Ok(ExitCode::SUCCESS)
}

/// Prints every dead letter of the listing, page after page, until `next_cursor` is null.
fn print_every_letter(client: &Client, page_path: impl Fn(Option<&str>) -> String) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let mut cursor: Option<String> = None;
    loop {
        let page = client.get(&page_path(cursor.as_deref()))?;
        for stream in page["streams"].as_array().map(Vec::as_slice).unwrap_or_default() {
            for letter in stream["dead_letters"].as_array().map(Vec::as_slice).unwrap_or_default() {
                writeln!(out, "{letter}")?;
            }
        }
        match &page["next_cursor"] {
            Value::String(next) => cursor = Some(next.clone()),
            _ => return Ok(()),
        }
    }
}
