//! Starting, watching and stopping a server process, and reading its CPU time and memory from `/proc`.
//!
//! A server is either a child we spawned (NATS, Redis, Weft) or a daemon we only know by pid (the PostgreSQL postmaster, started by `pg_ctl`).
//! CPU and memory are read for the whole process tree, because PostgreSQL does its work in backend processes and Redis rewrites its AOF in a forked child.
//! This module does not know any protocol; readiness checks live with each system.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

/// How long a server gets to exit after SIGTERM before it is killed.
const STOP_GRACE_MAX: Duration = Duration::from_secs(30);
/// How often the memory sampler walks the process tree.
const RSS_SAMPLE_INTERVAL: Duration = Duration::from_millis(200);

pub(crate) enum ServerProcess {
    /// A child process we spawned and must reap.
    Child { name: String, child: Child },
    /// A daemon that some other command started; stopped by the system's own stop command or by signal.
    Daemon { name: String, pid: u32 },
}

impl ServerProcess {
    /// Spawns `command` with stdout and stderr appended to `log_path`.
    pub(crate) fn spawn(name: &str, mut command: Command, log_path: &Path) -> Result<ServerProcess> {
        let log = std::fs::File::create(log_path).with_context(|| format!("create {}", log_path.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawn {name}: {command:?}"))?;
        Ok(ServerProcess::Child { name: name.to_string(), child })
    }

    pub(crate) fn pid(&self) -> u32 {
        match self {
            ServerProcess::Child { child, .. } => child.id(),
            ServerProcess::Daemon { pid, .. } => *pid,
        }
    }

    /// Fails if a spawned child has already exited, so a server that died at start-up is reported at once.
    pub(crate) fn check_running(&mut self) -> Result<()> {
        match self {
            ServerProcess::Child { name, child } => {
                if let Some(status) = child.try_wait()? {
                    bail!("{name} exited during start-up with {status}");
                }
                Ok(())
            }
            ServerProcess::Daemon { name, pid } => {
                if !process_is_alive(*pid) {
                    bail!("{name} (pid {pid}) is not running");
                }
                Ok(())
            }
        }
    }

    /// Sends SIGTERM, waits up to the grace period, then SIGKILL.
    pub(crate) fn stop(&mut self) -> Result<()> {
        let pid = self.pid();
        if !self.has_exited() {
            send_signal(pid, "TERM")?;
        }
        let deadline = Instant::now() + STOP_GRACE_MAX;
        while Instant::now() < deadline {
            if self.has_exited() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        send_signal(pid, "KILL")?;
        std::thread::sleep(Duration::from_millis(100));
        bail!("{} did not exit within {:?} of SIGTERM and was killed", self.name(), STOP_GRACE_MAX)
    }

    fn name(&self) -> &str {
        match self {
            ServerProcess::Child { name, .. } | ServerProcess::Daemon { name, .. } => name,
        }
    }

    fn has_exited(&mut self) -> bool {
        match self {
            ServerProcess::Child { child, .. } => !matches!(child.try_wait(), Ok(None)),
            ServerProcess::Daemon { pid, .. } => !process_is_alive(*pid),
        }
    }
}

impl Drop for ServerProcess {
    /// A server must never outlive the benchmark, even when a phase failed or panicked.
    fn drop(&mut self) {
        if !self.has_exited() {
            let _ = send_signal(self.pid(), "KILL");
            if let ServerProcess::Child { child, .. } = self {
                let _ = child.wait();
            }
        }
    }
}

/// Sends a signal with the `kill` command, which keeps this crate free of `unsafe` and of a libc dependency.
pub(crate) fn send_signal(pid: u32, signal: &str) -> Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("run kill")?;
    if !status.success() && process_is_alive(pid) {
        bail!("kill -{signal} {pid} failed with {status}");
    }
    Ok(())
}

fn process_is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // A zombie has exited; it only waits for its parent to reap it.
        Ok(stat) => stat_fields(&stat).is_some_and(|fields| fields.first() != Some(&"Z")),
        Err(_) => false,
    }
}

/// The fields of `/proc/<pid>/stat` after the command name, which may itself contain spaces and parentheses.
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    Some(after_name.split_whitespace().collect())
}

/// CPU seconds (user + system, including reaped children) of `root_pid` and all its descendants.
pub(crate) fn tree_cpu_seconds(root_pid: u32) -> f64 {
    let ticks_per_second = clock_ticks_per_second();
    let ticks: u64 = process_tree(root_pid)
        .iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|stat| {
            let fields = stat_fields(&stat)?;
            // After the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
            let field = |idx: usize| fields.get(idx).and_then(|value| value.parse::<u64>().ok());
            Some(field(11)? + field(12)? + field(13)? + field(14)?)
        })
        .sum();
    ticks as f64 / ticks_per_second as f64
}

/// CPU seconds (user + system) of this benchmark process alone: the client's cost.
/// Children are left out on purpose, since the servers we spawned add their time to ours once they are reaped.
pub(crate) fn own_cpu_seconds() -> f64 {
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            let fields = stat_fields(&stat)?;
            let field = |idx: usize| fields.get(idx).and_then(|value| value.parse::<u64>().ok());
            Some(field(11)? + field(12)?)
        })
        .unwrap_or(0);
    ticks as f64 / clock_ticks_per_second() as f64
}

/// CPU seconds (user + system) of this process's children that have exited and been reaped: the cost of client
/// processes such as kcat. Servers count here only once reaped at their stop, after every phase was measured.
pub(crate) fn reaped_children_cpu_seconds() -> f64 {
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            let fields = stat_fields(&stat)?;
            let field = |idx: usize| fields.get(idx).and_then(|value| value.parse::<u64>().ok());
            Some(field(13)? + field(14)?)
        })
        .unwrap_or(0);
    ticks as f64 / clock_ticks_per_second() as f64
}

fn clock_ticks_per_second() -> u64 {
    static TICKS: AtomicU64 = AtomicU64::new(0);
    let cached = TICKS.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    let ticks = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse::<u64>().ok())
        .unwrap_or(100);
    TICKS.store(ticks, Ordering::Relaxed);
    ticks
}

/// `root_pid` followed by all its living descendants.
fn process_tree(root_pid: u32) -> Vec<u32> {
    let mut children_by_parent: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            if let Some(parent) = stat_fields(&stat).and_then(|fields| fields.get(1)?.parse::<u32>().ok()) {
                children_by_parent.entry(parent).or_default().push(pid);
            }
        }
    }
    let mut tree = vec![root_pid];
    let mut next_idx = 0;
    while next_idx < tree.len() {
        if let Some(children) = children_by_parent.get(&tree[next_idx]) {
            tree.extend(children);
        }
        next_idx += 1;
        assert!(tree.len() < 1_000_000, "process tree walk does not terminate");
    }
    tree
}

/// Memory of the process tree now, in bytes, with shared memory counted once:
/// the sum of private and file-backed resident memory plus the largest shared-memory resident size.
fn tree_rss_bytes(root_pid: u32) -> u64 {
    let mut private_bytes = 0u64;
    let mut shared_bytes_max = 0u64;
    for pid in process_tree(root_pid) {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        private_bytes += status_kib(&status, "RssAnon:") * 1024 + status_kib(&status, "RssFile:") * 1024;
        shared_bytes_max = shared_bytes_max.max(status_kib(&status, "RssShmem:") * 1024);
    }
    private_bytes + shared_bytes_max
}

/// `VmHWM` (peak resident set) of one process, in bytes.
pub(crate) fn peak_rss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status")).map(|status| status_kib(&status, "VmHWM:") * 1024).unwrap_or(0)
}

fn status_kib(status: &str, field: &str) -> u64 {
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

/// Samples the process tree's memory in a background thread and keeps the peak.
/// Needed for multi-process servers, where no single `VmHWM` tells the peak of the whole.
pub(crate) struct RssSampler {
    peak_bytes: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    pub(crate) fn start(root_pid: u32) -> RssSampler {
        let peak_bytes = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (peak_bytes, stop) = (Arc::clone(&peak_bytes), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    peak_bytes.fetch_max(tree_rss_bytes(root_pid), Ordering::Relaxed);
                    std::thread::sleep(RSS_SAMPLE_INTERVAL);
                }
            })
        };
        RssSampler { peak_bytes, stop, thread: Some(thread) }
    }

    /// The largest tree size seen so far, sampling once more now.
    pub(crate) fn peak_so_far(&self, root_pid: u32) -> u64 {
        self.peak_bytes.fetch_max(tree_rss_bytes(root_pid), Ordering::Relaxed);
        self.peak_bytes.load(Ordering::Relaxed)
    }

    /// Stops sampling and returns the largest tree size seen.
    pub(crate) fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.peak_bytes.load(Ordering::Relaxed)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Picks a free loopback port by binding port 0; the small race with other programs is acceptable for a benchmark.
pub(crate) fn free_loopback_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("bind a loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// Finds an executable by name on `PATH`.
pub(crate) fn find_on_path(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| candidate.is_file())
}
