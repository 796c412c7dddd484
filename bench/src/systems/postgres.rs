//! PostgreSQL as a transactional outbox: one table per stream shaped `outbox(id bigserial, partition int, key text, payload jsonb)`.
//!
//! A private cluster is made with `initdb` and started with `pg_ctl` on a loopback port, with its data and socket under the temp dir,
//! as a non-root user (PostgreSQL refuses to run as root; as root we run it through `runuser -u <user>`).
//! Settings are the defaults (`fsync=on`, `synchronous_commit=on`), so a commit is acknowledged after its WAL is flushed.
//! A batch is one multi-row `INSERT ... SELECT FROM unnest($1, $2, $3)` in its own transaction.
//! Consuming reads id ranges of 10,000 rows with up to `n_consumers` connections.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use tokio_postgres::{Client, NoTls, Statement};

use crate::server_process::{ServerProcess, free_loopback_port, send_signal};
use crate::systems::{CONSUME_BATCH_EVENTS_MAX, ConsumeOutcome, Lane, START_TIMEOUT, StreamSpec, System};
use crate::workload::Event;

/// The database role `initdb` creates and the benchmark connects as.
const DATABASE_ROLE: &str = "bench";

/// Where the PostgreSQL server binaries are and which user runs them.
#[derive(Clone, Debug)]
pub(crate) struct PostgresInstall {
    pub bin_dir: PathBuf,
    /// The OS user to run the cluster as when the benchmark runs as root.
    pub os_user: String,
}

impl PostgresInstall {
    /// Looks for `initdb` on `PATH`, then in Debian's `/usr/lib/postgresql/<version>/bin` (newest first).
    pub(crate) fn find(os_user: &str) -> Option<PostgresInstall> {
        let from_path = crate::server_process::find_on_path("initdb")
            .and_then(|initdb| std::fs::canonicalize(initdb).ok())
            .and_then(|initdb| initdb.parent().map(Path::to_path_buf));
        let from_debian = || {
            let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
                .ok()?
                .flatten()
                .filter_map(|entry| Some((entry.file_name().to_str()?.parse().ok()?, entry.path().join("bin"))))
                .filter(|(_, bin_dir)| bin_dir.join("initdb").is_file())
                .collect();
            versions.sort();
            versions.pop().map(|(_, bin_dir)| bin_dir)
        };
        let bin_dir = from_path.filter(|dir| dir.join("pg_ctl").is_file()).or_else(from_debian)?;
        Some(PostgresInstall { bin_dir, os_user: os_user.to_string() })
    }

    /// A command for a PostgreSQL program, run as `os_user` when we are root.
    fn command(&self, program: &str) -> Result<Command> {
        let binary = self.bin_dir.join(program);
        if running_as_root() {
            let mut command = Command::new("runuser");
            command.arg("-u").arg(&self.os_user).arg("--").arg(binary);
            Ok(command)
        } else {
            Ok(Command::new(binary))
        }
    }
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let uid_line = status.lines().find(|line| line.starts_with("Uid:"))?;
            Some(uid_line.split_whitespace().nth(1)? == "0")
        })
        .unwrap_or(false)
}

/// Gives `path` to `os_user` so that a cluster run as that user can write there.
fn hand_over_directory(path: &Path, os_user: &str) -> Result<()> {
    let id = |flag: &str| -> Result<u32> {
        let output = Command::new("id").arg(flag).arg(os_user).output().context("run id")?;
        if !output.status.success() {
            bail!("OS user {os_user:?} does not exist; create it (scripts/bench.sh does: useradd --system {os_user}) or pass --pg-user");
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().parse()?)
    };
    std::os::unix::fs::chown(path, Some(id("-u")?), Some(id("-g")?)).with_context(|| format!("chown {} to {os_user}", path.display()))
}

fn run_checked(mut command: Command, what: &str) -> Result<()> {
    let output = command.output().with_context(|| format!("{what}: {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{what} failed with {}: {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

pub(crate) struct PostgresSystem {
    install: PostgresInstall,
    cluster_dir: PathBuf,
    process: ServerProcess,
    port: u16,
    control: Client,
}

impl PostgresSystem {
    pub(crate) async fn start(install: &PostgresInstall, data_dir: &Path) -> Result<PostgresSystem> {
        let pg_dir = data_dir.join("postgres");
        std::fs::create_dir_all(&pg_dir)?;
        if running_as_root() {
            // The cluster's user must be able to traverse the (root-owned, 0700) temp dir to reach its own directory.
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o711))?;
            hand_over_directory(&pg_dir, &install.os_user)?;
        }
        let cluster_dir = pg_dir.join("cluster");
        let mut initdb = install.command("initdb")?;
        initdb
            .arg("-D")
            .arg(&cluster_dir)
            .arg("-U")
            .arg(DATABASE_ROLE)
            .arg("--auth=trust")
            .arg("--encoding=UTF8")
            .arg("--no-locale")
            .arg("--no-sync");
        run_checked(initdb, "initdb")?;

        let port = free_loopback_port()?;
        let server_options =
            format!("-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on", pg_dir.display());
        let mut pg_ctl = install.command("pg_ctl")?;
        pg_ctl
            .arg("-D")
            .arg(&cluster_dir)
            .arg("-l")
            .arg(pg_dir.join("postgres.log"))
            .arg("-o")
            .arg(server_options)
            .arg("-w")
            .arg("-t")
            .arg(START_TIMEOUT.as_secs().to_string())
            .arg("start");
        run_checked(pg_ctl, "pg_ctl start")?;
        let pid_file = std::fs::read_to_string(cluster_dir.join("postmaster.pid")).context("read postmaster.pid")?;
        let pid: u32 =
            pid_file.lines().next().and_then(|line| line.trim().parse().ok()).context("postmaster.pid has no pid on its first line")?;
        let process = ServerProcess::Daemon { name: "postgres".to_string(), pid };
        let control = connect(port).await?;
        Ok(PostgresSystem { install: install.clone(), cluster_dir, process, port, control })
    }
}

async fn connect(port: u16) -> Result<Client> {
    let config = format!("host=127.0.0.1 port={port} user={DATABASE_ROLE} dbname=postgres");
    let (client, connection) =
        tokio_postgres::connect(&config, NoTls).await.with_context(|| format!("connect to postgres on port {port}"))?;
    // The connection task ends by itself when the client is dropped.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

fn table_name(stream: &StreamSpec) -> String {
    let sanitized: String = stream.name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    format!("outbox_{sanitized}")
}

impl System for PostgresSystem {
    type Lane = PostgresLane;

    fn server_pid(&self) -> u32 {
        self.process.pid()
    }

    async fn create_stream(&mut self, stream: &StreamSpec) -> Result<()> {
        let table = table_name(stream);
        self.control
            .batch_execute(&format!(
                "CREATE TABLE {table} (id bigserial PRIMARY KEY, partition int NOT NULL, key text NOT NULL, payload jsonb NOT NULL)"
            ))
            .await
            .with_context(|| format!("create table {table}"))?;
        Ok(())
    }

    async fn open_lane(&self, stream: &StreamSpec, _lane_idx: usize) -> Result<PostgresLane> {
        let client = connect(self.port).await?;
        let insert = client
            .prepare(&format!(
                "INSERT INTO {} (partition, key, payload) \
                 SELECT p, k, v::jsonb FROM unnest($1::int4[], $2::text[], $3::text[]) AS batch(p, k, v)",
                table_name(stream)
            ))
            .await?;
        Ok(PostgresLane { client, insert })
    }

    async fn consume_all(&self, stream: &StreamSpec, n_events_expected: u64, n_consumers: usize) -> Result<ConsumeOutcome> {
        let table = table_name(stream);
        let max_id: i64 = self.control.query_one(&format!("SELECT coalesce(max(id), 0) FROM {table}"), &[]).await?.get(0);
        let next_range_idx = std::sync::atomic::AtomicI64::new(0);
        let range_ids = CONSUME_BATCH_EVENTS_MAX as i64;
        let consumers = (0..n_consumers.max(1)).map(|_| async {
            let client = connect(self.port).await?;
            let select = client
                .prepare(&format!("SELECT id, partition, key, payload::text FROM {table} WHERE id > $1 AND id <= $2 ORDER BY id"))
                .await?;
            let mut outcome = ConsumeOutcome::default();
            loop {
                let range_idx = next_range_idx.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let after_id = range_idx * range_ids;
                if after_id >= max_id {
                    return Ok::<_, anyhow::Error>(outcome);
                }
                let rows = client.query(&select, &[&after_id, &(after_id + range_ids)]).await?;
                for row in &rows {
                    let payload: &str = row.get(3);
                    outcome.n_events += 1;
                    outcome.n_payload_bytes += payload.len() as u64;
                }
            }
        });
        super::sum_consumed(consumers, n_events_expected, "rows").await
    }

    async fn stop(mut self) -> Result<()> {
        drop(self.control);
        let mut pg_ctl = self.install.command("pg_ctl")?;
        pg_ctl.arg("-D").arg(&self.cluster_dir).arg("-m").arg("fast").arg("-w").arg("-t").arg("60").arg("stop");
        if let Err(error) = run_checked(pg_ctl, "pg_ctl stop") {
            let _ = send_signal(self.process.pid(), "QUIT");
            return Err(error);
        }
        self.process.stop()
    }
}

pub(crate) struct PostgresLane {
    client: Client,
    insert: Statement,
}

impl Lane for PostgresLane {
    async fn send_batch(&mut self, events: &[Event]) -> Result<()> {
        let partitions: Vec<i32> = events.iter().map(|event| event.partition as i32).collect();
        let keys: Vec<&str> = events.iter().map(|event| event.key.as_str()).collect();
        let payloads: Vec<&str> = events.iter().map(|event| event.payload.as_str()).collect();
        let n_inserted = self.client.execute(&self.insert, &[&partitions, &keys, &payloads]).await?;
        if n_inserted != events.len() as u64 {
            bail!("inserted {n_inserted} rows of a batch of {}", events.len());
        }
        Ok(())
    }
}
