//! `weft streams create|list|show`.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::json;

use crate::client::Client;

#[derive(Subcommand)]
pub enum StreamsCommand {
    /// Create a stream.
    Create {
        name: String,
        #[arg(long, default_value_t = 1)]
        partitions: u32,
        /// JSON pointer into the event data used as the partition key, e.g. /customer_id.
        #[arg(long)]
        key: Option<String>,
        /// How long events are kept, e.g. 7d, 12h, forever.
        #[arg(long)]
        retention: Option<String>,
        /// always, interval:<ms> or never.
        #[arg(long)]
        fsync: Option<String>,
    },
    /// List streams.
    List,
    /// Show one stream with its partitions' offsets.
    Show { name: String },
}

pub fn run(client: &Client, command: StreamsCommand) -> anyhow::Result<ExitCode> {
    let output = match command {
        StreamsCommand::Create { name, partitions, key, retention, fsync } => {
            let mut body = json!({ "name": name, "partitions": partitions });
            for (field, value) in [("key", key), ("retention", retention), ("fsync", fsync)] {
                if let Some(value) = value {
                    body[field] = json!(value);
                }
            }
            client.post_json("/api/v1/streams", &body)?
        }
        StreamsCommand::List => client.get("/api/v1/streams")?,
        StreamsCommand::Show { name } => client.get(&format!("/api/v1/streams/{}", super::segment(&name)))?,
    };
    println!("{}", serde_json::to_string_pretty(&output)?);
    Ok(ExitCode::SUCCESS)
}
