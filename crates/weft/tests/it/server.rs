//! The test harness: runs the real `weft` binary on a temporary data directory and talks to it over HTTP.
//!
//! It owns the server process: start on a free port and wait for `/healthz` within a deadline, restart on the
//! same data directory, `kill -9`, and SIGTERM (through the `kill` command, so no `libc`); it tells where the
//! Kafka listener of the current run is (`kafka_address`, from the server's ready line).
//! It also runs the CLI against the server, and offers the few JSON conveniences every test module needs
//! (create a stream, produce NDJSON, read a whole partition).
//! It knows nothing of what a test asserts: the tests themselves say which status and code they expect.

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long a server may take from spawn to answering `/healthz`.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a server may take to exit after SIGTERM.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one CLI invocation may run.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between two checks of a condition that is polled until a deadline.
pub const POLL_INTERVAL: Duration = Duration::from_millis(10);
/// Largest response body a test reads.
const RESPONSE_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Attempts to start a server when the free port was taken between picking and binding.
const START_ATTEMPTS_MAX: u32 = 3;

/// Calls `check` until it returns `Some`, or panics naming `what` once `timeout` has passed.
pub fn wait_for<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// A port that was free a moment ago: the OS picks it for a listener that is closed at once.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding an ephemeral port");
    listener.local_addr().expect("local address of the ephemeral listener").port()
}

/// One HTTP answer: the status, the body as text, and the body parsed as JSON (`Null` if it is not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub text: String,
    pub body: Value,
}

impl Reply {
    /// The stable error code of an error reply.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("<no error code>")
    }

    /// Asserts an error reply with this status and code, and that the body has the documented shape.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) -> &Self {
        assert_eq!((self.status, self.code()), (status, code), "unexpected reply: {}", self.text);
        assert!(self.content_type.starts_with("application/json"), "error bodies are JSON, got {:?}", self.content_type);
        let message = self.body["error"]["message"].as_str().expect("error.message is a string");
        assert!(!message.is_empty(), "error.message is not empty: {}", self.text);
        self
    }

    /// Asserts a 2xx reply with this status.
    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "unexpected reply: {}", self.text);
        self
    }
}

/// Turns a ureq result into a `Reply`, whatever the status.
pub fn reply_of(result: Result<ureq::Response, ureq::Error>) -> Result<Reply, String> {
    let response = match result {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(ureq::Error::Transport(transport)) => return Err(transport.to_string()),
    };
    let status = response.status();
    let content_type = response.header("content-type").unwrap_or("").to_string();
    let mut bytes = Vec::new();
    response.into_reader().take(RESPONSE_BYTES_MAX).read_to_end(&mut bytes).map_err(|error| format!("reading the body: {error}"))?;
    let text = String::from_utf8(bytes).expect("response bodies are UTF-8");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Reply { status, content_type, text, body })
}

/// An HTTP client with one connection per request: the server closes a kept-alive connection after refusing a
/// request whose body it did not read (see `keep_alive.rs`), and tests other than that one should not trip on it.
pub fn agent(token: &TokenSlot) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(5))
        .timeout_read(Duration::from_secs(30))
        .max_idle_connections(0)
        .max_idle_connections_per_host(0)
        .middleware(AdminToken(token.clone()))
        .build()
}

/// The admin token of a test server (read from `<data-dir>/admin.token` once it is ready).
#[derive(Clone, Default)]
pub struct TokenSlot(std::sync::Arc<std::sync::Mutex<Option<String>>>);

impl TokenSlot {
    pub fn get(&self) -> Option<String> {
        self.0.lock().expect("token slot").clone()
    }
}

/// Sends the admin token with every request that does not carry its own `authorization`.
struct AdminToken(TokenSlot);

impl ureq::Middleware for AdminToken {
    fn handle(&self, request: ureq::Request, next: ureq::MiddlewareNext) -> Result<ureq::Response, ureq::Error> {
        match (request.header("authorization"), self.0.get()) {
            (None, Some(token)) => next.handle(request.set("authorization", &format!("Bearer {token}"))),
            _ => next.handle(request),
        }
    }
}

/// A running (or stopped) `weft serve` with its own temporary data directory.
pub struct Server {
    root: tempfile::TempDir,
    child: Option<Child>,
    base_url: String,
    agent: ureq::Agent,
    token: TokenSlot,
    /// Arguments added to every `weft serve` of this server (e.g. `--demo`).
    serve_args: Vec<String>,
    /// Environment variables set for every `weft serve` of this server.
    serve_env: Vec<(String, String)>,
    /// The data directory is a tmpfs mounted for this server (unmounted on drop).
    tmpfs: bool,
}

impl Server {
    /// Starts a server on a fresh data directory and waits until it is ready.
    pub fn start() -> Self {
        Self::start_with_args(&[])
    }

    /// Like `start`, with extra `weft serve` arguments.
    pub fn start_with_args(serve_args: &[&str]) -> Self {
        Self::start_in(serve_args, None)
    }

    /// Like `start`, with extra environment variables for `weft serve`.
    pub fn start_with_env(serve_env: &[(&str, &str)]) -> Self {
        let mut server = Self::new_stopped(&[], None);
        server.serve_env = serve_env.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect();
        server.start_again();
        server
    }

    /// Starts a server whose data directory is a tmpfs of `size_bytes`, so the disk fills up.
    /// Mounting needs root; `None` when the tests do not run as root.
    pub fn start_on_small_disk(size_bytes: u64) -> Option<Self> {
        let is_root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0");
        if !is_root {
            return None;
        }
        Some(Self::start_in(&[], Some(size_bytes)))
    }

    fn start_in(serve_args: &[&str], tmpfs_bytes: Option<u64>) -> Self {
        let mut server = Self::new_stopped(serve_args, tmpfs_bytes);
        server.start_again();
        server
    }

    fn new_stopped(serve_args: &[&str], tmpfs_bytes: Option<u64>) -> Self {
        let root = tempfile::Builder::new().prefix("weft-it-").tempdir().expect("creating a temporary directory");
        std::fs::create_dir(root.path().join("data")).expect("creating the data directory");
        if let Some(size_bytes) = tmpfs_bytes {
            let status = Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size_bytes}"), "tmpfs"])
                .arg(root.path().join("data"))
                .status()
                .expect("running mount");
            assert!(status.success(), "mounting a tmpfs as root failed");
        }
        let token = TokenSlot::default();
        let serve_args = serve_args.iter().map(|a| a.to_string()).collect();
        Self {
            root,
            child: None,
            base_url: String::new(),
            agent: agent(&token),
            token,
            serve_args,
            serve_env: Vec::new(),
            tmpfs: tmpfs_bytes.is_some(),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.root.path().join("server.log")
    }

    /// The server's log so far (stderr of every run), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The address the Kafka listener of the current run bound (the harness starts it on port 0),
    /// read from the last "weft is ready" line of the server log (`kafka=<address>`).
    #[track_caller]
    pub fn kafka_address(&self) -> std::net::SocketAddr {
        assert!(self.child.is_some(), "the server is running");
        let log = self.log();
        let ready = log.lines().rev().find(|line| line.contains("weft is ready")).expect("the server logged that it is ready");
        let address = ready
            .split_whitespace()
            .find_map(|field| field.strip_prefix("kafka="))
            .unwrap_or_else(|| panic!("no kafka= field in the ready line: {ready}"));
        address.parse().unwrap_or_else(|error| panic!("kafka address {address:?} in the ready line: {error}"))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Starts the server again on the same data directory (after `kill_9` or `terminate`).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the server is still running");
        for attempt in 1..=START_ATTEMPTS_MAX {
            let port = free_port();
            let log = File::options().create(true).append(true).open(self.log_path()).expect("opening the server log");
            let child = Command::new(env!("CARGO_BIN_EXE_weft"))
                .args(["serve", "--data-dir"])
                .arg(self.data_dir())
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .args(&self.serve_args)
                .envs(self.serve_env.iter().map(|(name, value)| (name.as_str(), value.as_str())))
                .env("RUST_LOG", "info")
                // The Kafka listener defaults to the fixed port 9092, which parallel servers cannot share.
                .env("WEFT_KAFKA_LISTEN", "127.0.0.1:0")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("spawning weft serve");
            self.child = Some(child);
            self.base_url = format!("http://127.0.0.1:{port}");
            match self.wait_until_ready() {
                Ok(()) => return,
                Err(exit) => {
                    self.child = None;
                    let log = self.log();
                    let port_taken = log.contains("binding the HTTP listener");
                    assert!(port_taken && attempt < START_ATTEMPTS_MAX, "weft serve exited with {exit} before it was ready; log:\n{log}");
                }
            }
        }
    }

    /// Waits for `/healthz`; `Err` if the process exited first.
    fn wait_until_ready(&mut self) -> Result<(), ExitStatus> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let probe = ureq::AgentBuilder::new().timeout(Duration::from_secs(1)).build();
        loop {
            if let Some(exit) = self.child.as_mut().expect("spawned").try_wait().expect("checking the server process") {
                return Err(exit);
            }
            if probe.get(&self.url("/healthz")).call().is_ok_and(|response| response.status() == 200) {
                let token = std::fs::read_to_string(self.data_dir().join("admin.token")).expect("the server wrote its admin token");
                *self.token.0.lock().expect("token slot") = Some(token.trim().to_string());
                return Ok(());
            }
            assert!(Instant::now() < deadline, "weft serve did not answer /healthz within {STARTUP_TIMEOUT:?}; log:\n{}", self.log());
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// SIGKILL: the process gets no chance to flush or clean up.
    pub fn kill_9(&mut self) {
        let mut child = self.child.take().expect("the server is running");
        child.kill().expect("sending SIGKILL");
        child.wait().expect("reaping the killed server");
    }

    /// SIGTERM, then waits up to `SHUTDOWN_TIMEOUT`. `None` if it did not exit in time (it is then killed).
    pub fn terminate(&mut self) -> Option<(ExitStatus, Duration)> {
        let mut child = self.child.take().expect("the server is running");
        let started = Instant::now();
        let sent = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("running kill -TERM");
        assert!(sent.success(), "kill -TERM failed");
        let deadline = started + SHUTDOWN_TIMEOUT;
        loop {
            if let Some(exit) = child.try_wait().expect("checking the server process") {
                return Some((exit, started.elapsed()));
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Waits (up to `SHUTDOWN_TIMEOUT`) for a server that is expected to stop by itself, for
    /// example at an armed crash point, and returns how it exited.
    pub fn expect_exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the server is running");
        let deadline = Instant::now() + SHUTDOWN_TIMEOUT;
        loop {
            if let Some(exit) = child.try_wait().expect("checking the server process") {
                return exit;
            }
            assert!(Instant::now() < deadline, "the server did not exit by itself; log:\n{}", self.log());
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Adds `weft serve` arguments for the next `start_again`.
    pub fn add_serve_args(&mut self, args: &[&str]) {
        self.serve_args.extend(args.iter().map(|arg| arg.to_string()));
    }

    /// Runs `weft serve` on this server's (stopped) data directory expecting it to refuse to
    /// start; returns its exit status and what it printed. Panics if it is still running after
    /// `STARTUP_TIMEOUT` (it started instead of refusing).
    pub fn serve_expecting_refusal(&self) -> (ExitStatus, String) {
        assert!(self.child.is_none(), "the server is still running");
        let mut child = Command::new(env!("CARGO_BIN_EXE_weft"))
            .args(["serve", "--data-dir"])
            .arg(self.data_dir())
            .args(["--listen", "127.0.0.1:0"])
            .args(&self.serve_args)
            .env("WEFT_KAFKA_LISTEN", "127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning weft serve");
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(exit) = child.try_wait().expect("checking the server process") {
                let mut printed = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().expect("piped stderr"), &mut printed).expect("reading stderr");
                return (exit, printed);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("weft serve started instead of refusing to");
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Forgets the environment variables given at start, for the next `start_again`.
    pub fn clear_serve_env(&mut self) {
        self.serve_env.clear();
    }

    /// kill -9 and start again on the same data directory.
    pub fn restart_after_kill_9(&mut self) {
        self.kill_9();
        self.start_again();
    }

    /// The admin token the server created on first start.
    pub fn admin_token(&self) -> String {
        self.token.get().expect("the server has started")
    }

    pub fn agent(&self) -> &ureq::Agent {
        &self.agent
    }

    /// Sends a prepared request (with an optional body) and returns the reply whatever its status.
    #[track_caller]
    pub fn send(&self, request: ureq::Request, body: Option<&[u8]>) -> Reply {
        let url = request.url().to_string();
        let result = match body {
            Some(body) => request.send_bytes(body),
            None => request.call(),
        };
        reply_of(result).unwrap_or_else(|transport| panic!("request to {url} failed: {transport}; server log:\n{}", self.log()))
    }

    #[track_caller]
    pub fn get(&self, path: &str) -> Reply {
        self.send(self.agent.get(&self.url(path)), None)
    }

    #[track_caller]
    pub fn post(&self, path: &str, content_type: &str, body: &[u8]) -> Reply {
        self.send(self.agent.post(&self.url(path)).set("content-type", content_type), Some(body))
    }

    #[track_caller]
    pub fn post_json(&self, path: &str, body: &Value) -> Reply {
        self.post(path, "application/json", body.to_string().as_bytes())
    }

    #[track_caller]
    pub fn delete(&self, path: &str) -> Reply {
        self.send(self.agent.delete(&self.url(path)), None)
    }

    /// Creates a stream and asserts 201.
    #[track_caller]
    pub fn create_stream(&self, name: &str, partitions: u32, fsync: &str) -> Value {
        let reply = self.post_json("/api/v1/streams", &json!({ "name": name, "partitions": partitions, "fsync": fsync }));
        reply.assert_status(201);
        reply.body
    }

    /// Produces one event per element as NDJSON, asserts all were accepted, and returns their positions.
    #[track_caller]
    pub fn produce_ndjson(&self, stream: &str, lines: &[Value]) -> Vec<(u32, u64)> {
        let body: String = lines.iter().map(|line| format!("{line}\n")).collect();
        let reply = self.post(&format!("/api/v1/streams/{stream}/events"), "application/x-ndjson", body.as_bytes());
        reply.assert_status(200);
        assert_eq!(reply.body["accepted"], lines.len(), "every event is accepted: {}", reply.text);
        positions_of(&reply.body)
    }

    /// Every stored event of one partition, in offset order.
    #[track_caller]
    pub fn read_partition(&self, stream: &str, partition: u32) -> Vec<Value> {
        let mut events = Vec::new();
        let mut offset = 0u64;
        loop {
            let reply = self.get(&format!("/api/v1/streams/{stream}/events?partition={partition}&offset={offset}&limit=10000"));
            reply.assert_status(200);
            let page = reply.body["events"].as_array().expect("events is an array").clone();
            if page.is_empty() {
                return events;
            }
            offset = reply.body["next_offset"].as_u64().expect("next_offset is a number");
            events.extend(page);
        }
    }

    /// The stream's partitions' `next_offset`s.
    #[track_caller]
    pub fn next_offsets(&self, stream: &str) -> Vec<u64> {
        let reply = self.get(&format!("/api/v1/streams/{stream}"));
        reply.assert_status(200);
        reply.body["offsets"].as_array().expect("offsets").iter().map(|o| o["next_offset"].as_u64().expect("next_offset")).collect()
    }

    /// Everything a stream holds: per partition, its offsets and its events. Used to show a refused
    /// request changed nothing.
    #[track_caller]
    pub fn snapshot(&self, stream: &str) -> Value {
        let shown = self.get(&format!("/api/v1/streams/{stream}"));
        shown.assert_status(200);
        let partitions: Vec<Value> = (0..shown.body["partitions"].as_u64().expect("partitions") as u32)
            .map(|partition| Value::Array(self.read_partition(stream, partition)))
            .collect();
        json!({ "offsets": shown.body["offsets"], "events": partitions })
    }

    /// Asserts the stream holds exactly `before` and still accepts and serves a new event.
    #[track_caller]
    pub fn assert_unchanged_and_alive(&self, stream: &str, before: &Value) {
        assert_eq!(&self.snapshot(stream), before, "refused requests left {stream} unchanged");
        let probe = json!({ "probe": "still-alive" });
        let (partition, offset) = self.produce_ndjson(stream, std::slice::from_ref(&probe))[0];
        let events = self.read_partition(stream, partition);
        assert_eq!(events.last().expect("the probe event")["offset"], offset);
        assert_eq!(events.last().expect("the probe event")["event"]["data"], probe);
    }

    /// Runs `weft --server <this server> ARGS` with `stdin`, bounded by `CLI_TIMEOUT`.
    pub fn run_cli(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_weft"))
            .args(["--server", &self.base_url])
            .args(args)
            .env("WEFT_TOKEN", self.token.get().unwrap_or_default())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning the weft CLI");
        let pid = child.id();
        let mut input = child.stdin.take().expect("piped stdin");
        let stdin = stdin.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = input.write_all(&stdin);
        });
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = sender.send(child.wait_with_output());
        });
        let output = match receiver.recv_timeout(CLI_TIMEOUT) {
            Ok(output) => output.expect("waiting for the weft CLI"),
            Err(_) => {
                let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
                panic!("weft {args:?} did not finish within {CLI_TIMEOUT:?}");
            }
        };
        writer.join().expect("stdin writer");
        output
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if self.tmpfs {
            let _ = Command::new("umount").arg(self.data_dir()).status();
        }
        if std::thread::panicking() {
            let log = self.log();
            let tail: String = log.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
            eprintln!("--- last lines of the weft server log ---\n{tail}");
        }
    }
}

/// The `(partition, offset)` of every accepted event in a produce reply, in request order.
#[track_caller]
pub fn positions_of(produce_reply: &Value) -> Vec<(u32, u64)> {
    produce_reply["results"]
        .as_array()
        .expect("results is an array")
        .iter()
        .map(|result| {
            let partition = result["partition"].as_u64().unwrap_or_else(|| panic!("an accepted result, got {result}"));
            (partition as u32, result["offset"].as_u64().expect("offset"))
        })
        .collect()
}
