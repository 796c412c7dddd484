//! The benchmarked configurations: which systems and Weft settings a command line asks for, each configuration's
//! report key, and what an acknowledgement means in it.
//!
//! This module only names and describes configurations; `main.rs` runs them and `systems/` talks to the servers.

use anyhow::{Result, bail};

use crate::Cli;
use crate::systems::redis::RedisPersistence;
use crate::systems::weft::{WeftOptions, WeftTransport};

/// One benchmarked configuration.
#[derive(Clone, Debug)]
pub(crate) enum SystemConfig {
    /// Weft over HTTP or over its Kafka listener.
    Weft {
        options: WeftOptions,
    },
    NatsJetStream,
    Redis(RedisPersistence),
    PostgresOutbox,
}

impl SystemConfig {
    pub(crate) fn key(&self) -> String {
        match self {
            SystemConfig::Weft { options } => {
                let transport = match options.transport {
                    WeftTransport::Http => "http",
                    WeftTransport::Kafka => "kafka",
                };
                let contracts = if options.contracts { "-contracts" } else { "" };
                let auth = if options.auth { "" } else { "-auth-off" };
                format!("weft-{transport}-fsync-{}{contracts}{auth}", options.fsync.replace(':', ""))
            }
            SystemConfig::NatsJetStream => "nats-jetstream-file".to_string(),
            SystemConfig::Redis(RedisPersistence::AofEverySecond) => "redis-aof-everysec".to_string(),
            SystemConfig::Redis(RedisPersistence::None) => "redis-no-persistence".to_string(),
            SystemConfig::PostgresOutbox => "postgres-outbox".to_string(),
        }
    }

    pub(crate) fn is_weft(&self) -> bool {
        matches!(self, SystemConfig::Weft { .. })
    }

    pub(crate) fn weft_options(&self) -> Option<&WeftOptions> {
        match self {
            SystemConfig::Weft { options } => Some(options),
            _ => None,
        }
    }

    /// What an acknowledgement means in this configuration, in words.
    pub(crate) fn durability(&self) -> String {
        match self {
            SystemConfig::Weft { options } => {
                let transport = match options.transport {
                    WeftTransport::Http => "over HTTP",
                    WeftTransport::Kafka => "over the Kafka listener with kcat (acks=all)",
                };
                let contracts = if options.contracts {
                    "streams created from the ODCS contract bench/contracts/orders.odcs.yaml, so every event is validated before it is appended"
                } else {
                    "no contract, events not validated"
                };
                let auth = match (options.auth, options.transport) {
                    (true, WeftTransport::Http) => "auth on (every request authenticated by bearer token and authorized)",
                    (true, WeftTransport::Kafka) => "auth on (SASL/PLAIN as admin)",
                    (false, _) => "auth off (`--auth off`, every caller is admin)",
                };
                format!("{} ({transport}; {contracts}; {auth})", Self::weft_fsync_durability(&options.fsync))
            }
            SystemConfig::NatsJetStream => "JetStream file storage, 1 replica: acknowledged after write to the OS; the file \
                 store is fsynced every 2 minutes by default (`sync_interval`, per the NATS docs and `defaultSyncInterval` in the \
                 server's filestore.go), so a power failure can lose up to 2 minutes of acknowledged messages; a process crash \
                 loses none"
                .to_string(),
            SystemConfig::Redis(RedisPersistence::AofEverySecond) => "Redis AOF, appendfsync everysec: acknowledged after write \
                 to the OS; the AOF is fsynced once a second, so a power failure loses up to 1 s (2 s if an fsync stalls) of \
                 acknowledged writes; a process crash loses none"
                .to_string(),
            SystemConfig::Redis(RedisPersistence::None) => {
                "Redis without persistence (no AOF, no RDB): memory only, everything is lost on restart".to_string()
            }
            SystemConfig::PostgresOutbox => "PostgreSQL, default settings (fsync=on, synchronous_commit=on): each batch is one \
                 transaction, acknowledged after its WAL is flushed with fdatasync; concurrent commits share flushes (group commit)"
                .to_string(),
        }
    }

    /// What an acknowledgement of Weft means under an fsync policy.
    fn weft_fsync_durability(fsync: &str) -> String {
        match fsync {
            "always" => "Weft fsync always: acknowledged after fdatasync of every partition the request wrote to; \
             partitions are appended and fsynced in parallel, and concurrent appends to one partition share an fsync \
             (group commit), as crates/weft-log/src/partition.rs did when this tool was written"
                .to_string(),
            "never" => "Weft fsync never: acknowledged after write to the OS; the OS decides when data reaches disk, \
             so a power failure can lose any acknowledged event not yet written back; a process crash loses none"
                .to_string(),
            policy => format!(
                "Weft fsync {policy}: acknowledged after write to the OS, before any fsync; a background flusher \
             fdatasyncs every partition on that timer, so a power failure can lose the acknowledged events of about \
             one interval (plus the flush itself); a process crash loses none (as crates/weft-core/src/broker.rs did \
             when this tool was written)"
            ),
        }
    }
}

pub(crate) fn parse_systems(cli: &Cli) -> Result<Vec<SystemConfig>> {
    let mut configs = Vec::new();
    for name in &cli.systems {
        match name.trim() {
            "weft" => push_weft_configs(cli, WeftTransport::Http, &cli.weft_auth, &mut configs)?,
            "weft-kafka" => push_weft_configs(cli, WeftTransport::Kafka, &cli.weft_kafka_auth, &mut configs)?,
            "nats" => configs.push(SystemConfig::NatsJetStream),
            "redis-aof" => configs.push(SystemConfig::Redis(RedisPersistence::AofEverySecond)),
            "redis-none" => configs.push(SystemConfig::Redis(RedisPersistence::None)),
            "postgres" => configs.push(SystemConfig::PostgresOutbox),
            other => bail!("unknown system {other:?}; expected weft, weft-kafka, nats, redis-aof, redis-none or postgres"),
        }
    }
    Ok(configs)
}

/// One Weft configuration per fsync policy, contracts setting and auth setting.
fn push_weft_configs(cli: &Cli, transport: WeftTransport, auths: &[String], configs: &mut Vec<SystemConfig>) -> Result<()> {
    for fsync in &cli.weft_fsync {
        let fsync = parse_fsync(fsync)?;
        for contracts in &cli.weft_contracts {
            for auth in auths {
                let options = WeftOptions { transport, fsync: fsync.clone(), contracts: contracts == "on", auth: auth == "on" };
                configs.push(SystemConfig::Weft { options });
            }
        }
    }
    Ok(())
}

fn parse_fsync(fsync: &str) -> Result<String> {
    let fsync = fsync.trim();
    let valid = fsync == "always" || fsync == "never" || fsync.strip_prefix("interval:").is_some_and(|ms| ms.parse::<u64>().is_ok());
    if !valid {
        bail!("--weft-fsync {fsync:?}: expected always, never or interval:<ms>");
    }
    Ok(fsync.to_string())
}
