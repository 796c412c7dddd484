//! An optional CPU profile of the server during the produce phase, taken with Linux `perf record` (`--perf-record-dir`).
//!
//! perf attaches to the server's pid with its events disabled (`-D -1`); the run enables them through perf's control
//! FIFO right before the first batch is sent and disables them right after the last acknowledgement, waiting for
//! perf's `ack` each time, so the profile holds the produce phase and nothing else (not start-up, stream creation,
//! consume or the latency phase).
//! perf samples on the `cpu-clock` software event, which works in virtual machines without hardware counters.
//! This module starts and stops perf; it does not read profiles (`scripts/profile.sh` runs `perf report`).

use std::fs::File;
use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::server_process::send_signal;

/// The signal that makes perf record write its data file and stop.
const SIGINT: i32 = 2;
/// Samples per second and thread; an odd rate does not beat in step with the runtime's timers.
const SAMPLES_PER_SECOND: u32 = 999;
/// How long perf may take to answer `enable` or `disable` (it attaches to every thread of the server first).
const PERF_ACK_TIMEOUT: Duration = Duration::from_secs(30);
/// How long perf may take to write its data file and exit after SIGINT.
const PERF_EXIT_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the exit of perf is checked while waiting for it.
const PERF_EXIT_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// A running `perf record -p <server pid>` whose events are switched through its control FIFO.
pub(crate) struct ProduceProfiler {
    child: Child,
    control: File,
    /// `ack` lines from perf, read on their own thread so that waiting for one can time out.
    acks: mpsc::Receiver<std::io::Result<String>>,
    output: PathBuf,
    /// Holds the two FIFOs; deleted when the profiler is dropped.
    _fifo_dir: tempfile::TempDir,
}

impl ProduceProfiler {
    /// Starts perf on `server_pid` with events disabled, writing call graphs (`-g`) to `output`.
    pub(crate) fn attach(server_pid: u32, output: &Path) -> Result<ProduceProfiler> {
        let fifo_dir = tempfile::Builder::new().prefix("weft-bench-perf-").tempdir().context("create the perf FIFO dir")?;
        let control_path = fifo_dir.path().join("control");
        let ack_path = fifo_dir.path().join("ack");
        for path in [&control_path, &ack_path] {
            let status = Command::new("mkfifo").arg(path).status().context("run mkfifo")?;
            if !status.success() {
                bail!("mkfifo {} failed: {status}", path.display());
            }
        }
        // Opening a FIFO for reading and writing never blocks on Linux, so this does not wait for perf to open it.
        let control = File::options().read(true).write(true).open(&control_path).context("open the perf control FIFO")?;
        let log_path = output.with_extension("log");
        let log = File::create(&log_path).with_context(|| format!("create {}", log_path.display()))?;
        let child = Command::new("perf")
            .arg("record")
            .args(["-e", "cpu-clock", "-F", &SAMPLES_PER_SECOND.to_string(), "-g"])
            .arg("-p")
            .arg(server_pid.to_string())
            .arg("-o")
            .arg(output)
            .args(["-D", "-1", "--control"])
            .arg(format!("fifo:{},{}", control_path.display(), ack_path.display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("start perf record (is perf installed? scripts/profile.sh installs it)")?;
        let (sender, acks) = mpsc::channel();
        // Opening the ack FIFO read-only waits for perf to open it for writing, and reading it ends when perf exits, so
        // this thread ends with perf (or with the process, if perf never starts).
        std::thread::spawn(move || {
            let mut reader = match File::open(&ack_path) {
                Ok(file) => BufReader::new(file),
                Err(error) => {
                    let _ = sender.send(Err(error));
                    return;
                }
            };
            loop {
                let mut line = String::new();
                match reader.read_line(&mut line) {
                    Ok(0) => return,
                    Ok(_) if sender.send(Ok(line)).is_ok() => {}
                    Ok(_) => return,
                    Err(error) => {
                        let _ = sender.send(Err(error));
                        return;
                    }
                }
            }
        });
        Ok(ProduceProfiler { child, control, acks, output: output.to_path_buf(), _fifo_dir: fifo_dir })
    }

    /// Starts sampling; returns once perf has confirmed it.
    pub(crate) fn enable(&mut self) -> Result<()> {
        self.command("enable")
    }

    /// Stops sampling, then stops perf and waits until it has written its data file.
    pub(crate) fn finish(mut self) -> Result<PathBuf> {
        self.command("disable")?;
        send_signal(self.child.id(), "INT")?;
        let deadline = Instant::now() + PERF_EXIT_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                // perf writes its data on SIGINT, then ends by that signal (or exits 0 when the server exited first).
                if !(status.success() || status.signal() == Some(SIGINT)) {
                    bail!("perf record exited with {status}; see {}", self.output.with_extension("log").display());
                }
                if std::fs::metadata(&self.output).map_or(true, |metadata| metadata.len() == 0) {
                    bail!("perf record wrote no {}; see {}", self.output.display(), self.output.with_extension("log").display());
                }
                return Ok(self.output.clone());
            }
            if Instant::now() >= deadline {
                bail!("perf record did not exit within {PERF_EXIT_TIMEOUT:?} of SIGINT");
            }
            std::thread::sleep(PERF_EXIT_POLL_INTERVAL);
        }
    }

    fn command(&mut self, command: &str) -> Result<()> {
        writeln!(self.control, "{command}").with_context(|| format!("send {command:?} to perf"))?;
        let deadline = Instant::now() + PERF_ACK_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("perf record exited with {status}; see {}", self.output.with_extension("log").display());
            }
            match self.acks.recv_timeout(PERF_EXIT_POLL_INTERVAL) {
                // perf writes `ack\n` with its C string's terminating NUL, which then starts the next line.
                Ok(Ok(line)) if line.trim_matches(|c: char| c == '\0' || c.is_whitespace()) == "ack" => return Ok(()),
                Ok(Ok(line)) => bail!("perf answered {line:?} to {command:?}, expected \"ack\""),
                Ok(Err(error)) => return Err(error).context("read perf's ack FIFO"),
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
                Err(_) => bail!("perf did not acknowledge {command:?} within {PERF_ACK_TIMEOUT:?}"),
            }
        }
    }
}

impl Drop for ProduceProfiler {
    /// A profiler dropped on an error path must not leave perf attached to the next run's server.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
