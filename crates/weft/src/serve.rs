//! `weft serve`: opens the data directory, starts the HTTP and Kafka listeners, and shuts down
//! cleanly on SIGINT or SIGTERM (stop accepting, finish in-flight requests, fsync every partition).
//!
//! With `--tls-cert` and `--tls-key` both listeners speak TLS (HTTPS; Kafka `SSL`/`SASL_SSL`)
//! with one certificate; without them both are plaintext, and a plaintext listener on an
//! address other than loopback logs a warning, since tokens then cross the network in the clear.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use weft_core::Broker;
use weft_core::SystemClock;

#[derive(Args)]
pub struct ServeArgs {
    /// Where streams and metadata are stored.
    #[arg(long, env = "WEFT_DATA_DIR", default_value = "./weft-data")]
    data_dir: PathBuf,
    /// Address of the HTTP API.
    #[arg(long, env = "WEFT_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Address of the Kafka wire-protocol listener (Kafka clients such as librdkafka and kcat).
    #[arg(long, env = "WEFT_KAFKA_LISTEN", default_value = "127.0.0.1:9092")]
    kafka_listen: SocketAddr,
    /// Host and port Kafka clients are told to connect to (Metadata, FindCoordinator);
    /// defaults to the Kafka listener's address.
    #[arg(long, env = "WEFT_KAFKA_ADVERTISED", value_name = "HOST:PORT")]
    kafka_advertised: Option<String>,
    /// `on` (default): every request must authenticate. `off` treats every caller as admin;
    /// only for local benchmarks on loopback.
    #[arg(long, env = "WEFT_AUTH", default_value = "on", value_parser = ["on", "off"])]
    auth: String,
    /// PEM certificate chain (server certificate first) for TLS on both listeners: HTTPS, and
    /// Kafka `SSL` or `SASL_SSL`. Needs `--tls-key`.
    #[arg(long, env = "WEFT_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of `--tls-cert` (readable only by the server's user: `chmod 600`).
    #[arg(long, env = "WEFT_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// How far ahead of this server's clock an event's `time` or a Kafka record's timestamp may
    /// be (`30m`, `1h`, `forever`); later ones are refused (`event.time_in_future`), so a
    /// producer cannot date events past retention or time lookups.
    #[arg(long, env = "WEFT_MAX_FUTURE_TIME", default_value = "1h", value_name = "DURATION")]
    max_future_time: String,
    /// Start even though the audit log no longer holds the entry `audit.head` names (entries
    /// were lost or rewritten); the first audit entry then records what was accepted.
    /// Without it such a server refuses to start.
    #[arg(long)]
    accept_audit_loss: bool,
    /// Apply the example mesh and run a small generator (three producers, one consumer group).
    #[arg(long)]
    demo: bool,
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
    // Certificates first: a bad file should stop the server before it touches the data directory.
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(crate::tls::server_config(cert, key)?),
        _ => None,
    };
    if tls.is_none() {
        for (listener, address) in [("HTTP", args.listen), ("Kafka", args.kafka_listen)] {
            if !address.ip().is_loopback() {
                tracing::warn!(%address, "the {listener} listener is plaintext on a non-loopback address: tokens travel in the clear; start with --tls-cert and --tls-key");
            }
        }
    }
    // The one duration parser; parsed before the data directory is opened, so a typo changes nothing.
    let max_future_time_ms =
        weft_core::duration::parse_duration_ms(&args.max_future_time).map_err(anyhow::Error::msg).context("--max-future-time")?;
    let data_dir = args.data_dir.clone();
    let broker = tokio::task::spawn_blocking(move || Broker::open(&data_dir, Arc::new(SystemClock)))
        .await?
        .map_err(|error| anyhow::anyhow!("{error}"))
        .with_context(|| format!("opening data directory {}", args.data_dir.display()))?;
    // Tamper evidence must survive a restart: recovery may cut a torn tail, and files may be
    // deleted or rewritten while the server is down, so the log must still hold its head.
    let checking = Arc::clone(&broker);
    let audit_loss =
        tokio::task::spawn_blocking(move || checking.check_audit_continuity()).await?.map_err(|error| anyhow::anyhow!("{error}"))?;
    if let Some(loss) = &audit_loss {
        if !args.accept_audit_loss {
            anyhow::bail!("the audit log was cut or rewritten: {loss}; start with --accept-audit-loss to accept it (that is audited)");
        }
        tracing::warn!(%loss, "starting with --accept-audit-loss: the audit log was cut or rewritten");
        broker.audit(None, "audit.loss_accepted", "audit", weft_governance::audit::AuditDecision::Allow, None, Some(loss.clone())).await;
    }
    if args.auth == "off" {
        tracing::warn!("authentication and authorization are OFF (--auth off): every caller is treated as admin");
        broker.guard().disable();
    }
    broker.set_max_future_time_ms(max_future_time_ms);
    broker.spawn_background_tasks();
    let registry_path = args.data_dir.join("registry.redb");
    let registry = tokio::task::spawn_blocking(move || weft_registry::Registry::open(&registry_path))
        .await?
        .with_context(|| format!("opening the schema registry in {}", args.data_dir.display()))?;
    let registry = Arc::new(registry);
    broker.set_schema_registry(Arc::new(crate::registry_port::RegistryAdapter(Arc::clone(&registry))));
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("binding the HTTP listener to {}", args.listen))?;
    let kafka_listener = tokio::net::TcpListener::bind(args.kafka_listen)
        .await
        .with_context(|| format!("binding the Kafka listener to {}", args.kafka_listen))?;
    let kafka_address = kafka_listener.local_addr()?;
    let advertised = match &args.kafka_advertised {
        None => (kafka_address.ip().to_string(), kafka_address.port() as i32),
        Some(host_port) => {
            let (host, port) = host_port.rsplit_once(':').context("--kafka-advertised must be HOST:PORT")?;
            (host.to_string(), port.parse::<u16>().context("--kafka-advertised port")? as i32)
        }
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(
        data_dir = %args.data_dir.display(),
        http = %format!("{scheme}://{}", listener.local_addr()?),
        kafka = %kafka_address,
        kafka_tls = tls.is_some(),
        "weft is ready"
    );
    // One signal stops both listeners.
    let (stop_sender, stop_receiver) = tokio::sync::watch::channel(false);
    let closing = Arc::clone(&broker);
    tokio::spawn(async move {
        shutdown_signal().await;
        closing.begin_shutdown();
        let _ = stop_sender.send(true);
    });
    let stopped = |mut receiver: tokio::sync::watch::Receiver<bool>| async move {
        let _ = receiver.wait_for(|stop| *stop).await;
    };
    if args.demo {
        let applying = Arc::clone(&broker);
        tokio::task::spawn_blocking(move || crate::demo::apply_examples(&applying)).await??;
        tokio::spawn(crate::demo::run(Arc::clone(&broker), stop_receiver.clone()));
    }
    let http_options =
        weft_http::HttpOptions { registry: Some(registry), kafka_bootstrap: Some(format!("{}:{}", advertised.0, advertised.1)) };
    let kafka_options = weft_kafka::ListenerOptions { tls: tls.clone(), ..weft_kafka::ListenerOptions::default() };
    let kafka =
        tokio::spawn(weft_kafka::serve(kafka_listener, Arc::clone(&broker), advertised, kafka_options, stopped(stop_receiver.clone())));
    weft_http::serve(listener, Arc::clone(&broker), http_options, tls, stopped(stop_receiver)).await.context("serving HTTP")?;
    kafka.await?.context("serving Kafka")?;
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
