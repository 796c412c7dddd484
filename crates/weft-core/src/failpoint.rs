//! Pause points for tests that must hold the server at a named step (for example, to prove
//! that other connections are served while one request's blocking work is in progress), and
//! crash points for tests that must kill it there (to prove a multi-step change is atomic
//! across a crash).
//!
//! Crash points are off unless the environment says `WEFT_CRASH_AT=<point>`; then the process
//! aborts (no destructors, no flushes: as close to `kill -9` as a process can do to itself)
//! when it reaches `crash(<point>)`.
//!
//! Off unless the environment says `WEFT_PAUSE_AT=<point>:<dir>` when the server starts. Then
//! the first thread that reaches `pause(<point>)` creates `<dir>/<point>.paused` and waits
//! until `<dir>/<point>.release` exists (at most `PAUSE_MS_MAX`); later arrivals pass. Reading
//! the variable once keeps the cost of a disabled point to one atomic load.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The environment variable that arms a pause point.
pub const PAUSE_AT_ENV: &str = "WEFT_PAUSE_AT";
/// The environment variable that arms a crash point.
pub const CRASH_AT_ENV: &str = "WEFT_CRASH_AT";
/// Longest a pause holds before it lets the thread go on anyway.
pub const PAUSE_MS_MAX: u64 = 60_000;
/// How often a paused thread looks for the release file.
const RELEASE_POLL_MS: u64 = 5;

struct Armed {
    point: String,
    dir: PathBuf,
    used: AtomicBool,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let value = std::env::var(PAUSE_AT_ENV).ok()?;
            let (point, dir) = value.split_once(':')?;
            Some(Armed { point: point.to_string(), dir: PathBuf::from(dir), used: AtomicBool::new(false) })
        })
        .as_ref()
}

/// Holds the calling (blocking) thread at `point` if a test armed it; otherwise returns at once.
pub fn pause(point: &str) {
    let Some(armed) = armed() else { return };
    if armed.point != point || armed.used.swap(true, Ordering::SeqCst) {
        return;
    }
    let _ = std::fs::write(armed.dir.join(format!("{point}.paused")), b"");
    let release = armed.dir.join(format!("{point}.release"));
    let started = Instant::now();
    while !release.exists() && started.elapsed() < Duration::from_millis(PAUSE_MS_MAX) {
        std::thread::sleep(Duration::from_millis(RELEASE_POLL_MS));
    }
}

/// Aborts the process at `point` if a test armed it with `WEFT_CRASH_AT`; otherwise returns at
/// once (one read of a cached value).
pub fn crash(point: &str) {
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    if ARMED.get_or_init(|| std::env::var(CRASH_AT_ENV).ok()).as_deref() == Some(point) {
        eprintln!("weft: crashing at {point} ({CRASH_AT_ENV})");
        std::process::abort();
    }
}
