//! `weft products list|show`.

use std::process::ExitCode;

use clap::Subcommand;

use crate::client::Client;

#[derive(Subcommand)]
pub enum ProductsCommand {
    /// List data products.
    List,
    /// Show one data product with its contracts and streams.
    Show { id: String },
}

pub fn run(client: &Client, command: ProductsCommand) -> anyhow::Result<ExitCode> {
    let output = match command {
        ProductsCommand::List => client.get("/api/v1/products")?,
        ProductsCommand::Show { id } => client.get(&format!("/api/v1/products/{}", super::segment(&id)))?,
    };
    println!("{}", serde_json::to_string_pretty(&output)?);
    Ok(ExitCode::SUCCESS)
}
