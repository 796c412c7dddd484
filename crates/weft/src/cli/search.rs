//! `weft search "customer email" [--domain D] [--tag T] [--classification C] [--limit N] [--json]`.

use std::process::ExitCode;

use clap::Args;

use crate::client::Client;

#[derive(Args)]
pub struct SearchArgs {
    /// Words to search for in names, tags, owners, domains and descriptions (prefixes match).
    #[arg(default_value = "")]
    query: String,
    /// Only hits in this domain.
    #[arg(long)]
    domain: Option<String>,
    /// Only hits with this tag.
    #[arg(long)]
    tag: Option<String>,
    /// Only hits carrying this classification (e.g. pii).
    #[arg(long)]
    classification: Option<String>,
    /// Most hits to print (1 to 100).
    #[arg(long, default_value_t = 20)]
    limit: u32,
    /// Print the server's JSON answer instead of a list.
    #[arg(long)]
    json: bool,
}

/// Percent-encodes a query-string value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'~') { (b as char).to_string() } else { format!("%{b:02X}") }
        })
        .collect()
}

pub fn run(client: &Client, args: SearchArgs) -> anyhow::Result<ExitCode> {
    let mut path = format!("/api/v1/search?q={}&limit={}", encode(&args.query), args.limit);
    for (name, value) in [("domain", &args.domain), ("tag", &args.tag), ("classification", &args.classification)] {
        if let Some(value) = value {
            path.push_str(&format!("&{name}={}", encode(value)));
        }
    }
    let answer = client.get(&path)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(ExitCode::SUCCESS);
    }
    let hits = answer["hits"].as_array().cloned().unwrap_or_default();
    if hits.is_empty() {
        println!("no hits for {:?}", args.query);
        return Ok(ExitCode::SUCCESS);
    }
    for hit in &hits {
        let product = hit["product"].as_str().map(|p| format!("  product {p}")).unwrap_or_default();
        println!(
            "{:>6.2}  {:<8}  {}  ({}){product}",
            hit["score"].as_f64().unwrap_or(0.0),
            hit["kind"].as_str().unwrap_or(""),
            hit["id"].as_str().unwrap_or(""),
            hit["domain"].as_str().unwrap_or("-"),
        );
        for matched in hit["matched"].as_array().into_iter().flatten() {
            println!("          {}: {}", matched["field"].as_str().unwrap_or(""), matched["text"].as_str().unwrap_or(""));
        }
    }
    Ok(ExitCode::SUCCESS)
}
