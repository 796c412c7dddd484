//! `weft dlq list|show|replay PRODUCT`: dead letters of a product's streams (or of one stream).

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::json;

use crate::client::Client;

#[derive(Subcommand)]
pub enum DlqCommand {
    /// Dead letters grouped by reason, with counts and examples.
    List { product: String },
    /// The dead letters themselves (optionally of one reason).
    Show {
        product: String,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
    /// Re-validate dead letters against the current contract and move those that pass.
    Replay { product: String },
}

pub fn run(client: &Client, command: DlqCommand) -> anyhow::Result<ExitCode> {
    let output = match command {
        DlqCommand::List { product } => client.get(&format!("/api/v1/products/{}/dead-letters", super::segment(&product)))?,
        DlqCommand::Show { product, reason, limit } => {
            let reason = reason.map(|r| format!("&reason={}", super::segment(&r))).unwrap_or_default();
            client.get(&format!("/api/v1/products/{}/dead-letters?list=true&limit={limit}{reason}", super::segment(&product)))?
        }
        DlqCommand::Replay { product } => {
            client.post_json(&format!("/api/v1/products/{}/dead-letters/replay", super::segment(&product)), &json!({}))?
        }
    };
    println!("{}", serde_json::to_string_pretty(&output)?);
    Ok(ExitCode::SUCCESS)
}
