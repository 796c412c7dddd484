//! `weft serve`: opens the data directory, starts the HTTP listener, and shuts down cleanly
//! on SIGINT or SIGTERM (stop accepting, finish in-flight requests, fsync every partition).

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use weft_core::Broker;
use weft_log::SystemClock;

#[derive(Args)]
pub struct ServeArgs {
    /// Where streams and metadata are stored.
    #[arg(long, env = "WEFT_DATA_DIR", default_value = "./weft-data")]
    data_dir: PathBuf,
    /// Address of the HTTP API.
    #[arg(long, env = "WEFT_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    runtime.block_on(serve(args))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let data_dir = args.data_dir.clone();
    let broker = tokio::task::spawn_blocking(move || Broker::open(&data_dir, Arc::new(SystemClock)))
        .await?
        .map_err(|error| anyhow::anyhow!("{error}"))
        .with_context(|| format!("opening data directory {}", args.data_dir.display()))?;
    broker.spawn_background_tasks();
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("binding the HTTP listener to {}", args.listen))?;
    tracing::info!(data_dir = %args.data_dir.display(), http = %format!("http://{}", listener.local_addr()?), "weft is ready");
    weft_http::serve(listener, Arc::clone(&broker), shutdown_signal()).await.context("serving HTTP")?;
    let syncing = Arc::clone(&broker);
    tokio::task::spawn_blocking(move || syncing.sync_all()).await?;
    tracing::info!("weft stopped cleanly");
    Ok(())
}

async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, shutting down"),
        _ = terminate.recv() => tracing::info!("SIGTERM received, shutting down"),
    }
}
