//! `weft`: the server and the command-line client in one binary.
//!
//! `weft serve` runs the broker on the embedded default (data under `./weft-data`, HTTP on
//! 127.0.0.1:8080). Every other command is a client that talks to a server over HTTP
//! (`--server` or `WEFT_SERVER`).

mod cli;
mod client;
mod demo;
mod registry_port;
mod serve;
mod tls;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "weft", version, about = "Weft: an event-driven data mesh in one binary")]
struct Cli {
    /// Base URL of the Weft server the client commands talk to.
    #[arg(long, global = true, env = "WEFT_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// Token to authenticate with (default: the local server's admin token, if readable).
    #[arg(long, global = true, env = "WEFT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the Weft server.
    Serve(serve::ServeArgs),
    /// Create, list and show streams.
    #[command(subcommand)]
    Streams(cli::streams::StreamsCommand),
    /// Produce events: NDJSON (one event's data per line) from FILE or standard input.
    Produce(cli::produce::ProduceArgs),
    /// Consume events as NDJSON, by replay or as a member of a consumer group.
    Consume(cli::consume::ConsumeArgs),
    /// Apply domains, data products, data contracts and policies from YAML files.
    Apply(cli::apply::ApplyArgs),
    /// List and show data products.
    #[command(subcommand)]
    Products(cli::products::ProductsCommand),
    /// Inspect and replay dead letters (events a contract refused).
    #[command(subcommand)]
    Dlq(cli::dlq::DlqCommand),
    /// Work with contract files locally.
    #[command(subcommand)]
    Contract(cli::contract::ContractCommand),
    /// Manage principals.
    #[command(subcommand)]
    Principal(cli::governance::PrincipalCommand),
    /// Create, list and revoke tokens.
    #[command(subcommand)]
    Token(cli::governance::TokenCommand),
    /// The Cedar schema, and why a request is allowed or denied.
    #[command(subcommand)]
    Authz(cli::governance::AuthzCommand),
    /// Verify and search the tamper-evident audit log.
    #[command(subcommand)]
    Audit(cli::governance::AuditCommand),
    /// Search the catalog: products, contracts, properties, streams and domains.
    Search(cli::search::SearchArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let client = client::Client::new(&cli.server, cli.token.clone());
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Streams(command) => cli::streams::run(&client, command),
        Command::Produce(args) => cli::produce::run(&client, args),
        Command::Consume(args) => cli::consume::run(&client, args),
        Command::Apply(args) => cli::apply::run(&client, args),
        Command::Products(command) => cli::products::run(&client, command),
        Command::Dlq(command) => cli::dlq::run(&client, command),
        Command::Contract(command) => cli::contract::run(command),
        Command::Principal(command) => cli::governance::principal(&client, command),
        Command::Token(command) => cli::governance::token(&client, command),
        Command::Authz(command) => cli::governance::authz(&client, command),
        Command::Audit(command) => cli::governance::audit(&client, command),
        Command::Search(args) => cli::search::run(&client, args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
