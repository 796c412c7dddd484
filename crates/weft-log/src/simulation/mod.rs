//! A simulated disk for crash tests: `SimulatedDisk` implements `StorageBackend` in memory and
//! keeps what was synced apart from what was only written, so a test can cut the power at any
//! point, reopen the log on what survived, and check that nothing acknowledged was lost.
//!
//! It is test support, compiled into the library so that this crate's integration tests and
//! other crates' tests can use it; production never constructs one.
//!
//! The model (what survives `power_loss`):
//! - **File contents.** Each file has durable contents and volatile contents (what reads see,
//!   the page cache). Writes and length changes go to the volatile contents and are queued as
//!   unsynced. A successful `sync_data` applies the queue to the durable contents.
//!   At power loss the queue is applied to the durable contents as `PowerLossMode` says: all of
//!   it dropped, all of it kept with the last write torn at a random byte, a random prefix kept
//!   (the last one possibly torn), or a random subset kept (each possibly torn). A torn write
//!   keeps a prefix of its bytes and leaves the rest unwritten, zeroed or filled with garbage.
//! - **A failed `sync_data` (EIO)** marks the queued writes as lost: reads still return them,
//!   but no later `sync_data` makes them durable (Linux marks the pages clean), and at power
//!   loss they may or may not have reached the disk.
//! - **Directory entries.** Each directory has durable and volatile entries. Creating, renaming
//!   and removing a file (or creating a directory) changes the volatile entries and is queued;
//!   `sync_dir` makes the queue durable. At power loss a random prefix of each directory's
//!   queue survives (journaled file systems order entry changes), so a created file may
//!   vanish and a removed one come back. A directory whose own entry did not survive vanishes
//!   with everything in it. The root `/` always exists. Renames stay within one directory.
//! - **Faults.** `fail_sync_data_after(n)` makes the (n+1)-th next `sync_data` fail with EIO,
//!   `fail_sync_dir_after(n)` the same for `sync_dir`; `set_capacity_bytes` makes writes that
//!   would grow the files past a byte budget write what fits and fail with ENOSPC;
//!   `crash_after_ops(n)` cuts the power after n more mutating calls (every call after that
//!   fails until `power_loss`), so a crash can land inside a multi-step operation.
//!   `set_ignore_sync_data(true)` makes `sync_data` report success without syncing, to prove
//!   that a test would notice a missing fsync.
//!
//! Everything random is drawn from a `SplitMix64` seeded at `new`, so a run replays exactly.
//! Open handles from before a power loss fail afterwards, like file descriptors of a dead
//! process.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::backend::{OpenMode, StorageBackend, StorageFile};

mod file;
mod rng;

use file::{FileChange, Inode, SimulatedFile, UnsyncedChange, apply_change, apply_torn_write};
pub use rng::SplitMix64;

/// What happens at power loss to a file's writes that were not synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerLossMode {
    /// Every unsynced write is lost.
    DropUnsynced,
    /// Every unsynced write reached the disk, in order, except that the last one is torn at a
    /// random byte.
    TearLastWrite,
    /// A random prefix of the unsynced writes reached the disk; the last of them may be torn.
    KeepPrefix,
    /// Each unsynced write reached the disk or not, independently, and each may be torn
    /// (write-back out of order).
    KeepSubset,
}

impl PowerLossMode {
    pub const ALL: [Self; 4] = [Self::DropUnsynced, Self::TearLastWrite, Self::KeepPrefix, Self::KeepSubset];
}

/// Counts of what the disk was asked to do, for test reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimulatedDiskStats {
    /// Every call that could change the disk (writes, truncates, syncs, creations, renames,
    /// removals), whether it succeeded or not.
    pub n_mutating_calls: u64,
    pub n_writes: u64,
    pub n_sync_data: u64,
    pub n_sync_dir: u64,
    pub n_power_losses: u64,
    pub n_injected_failures: u64,
}

/// An in-memory disk that loses unsynced data at power loss; see the module doc for the model.
/// Clones share the same disk.
#[derive(Clone)]
pub struct SimulatedDisk {
    state: Arc<Mutex<DiskState>>,
}

struct DiskState {
    rng: SplitMix64,
    /// Bumped at every power loss; handles from an older generation fail.
    generation: u64,
    inodes: BTreeMap<u64, Inode>,
    next_inode: u64,
    /// Every directory that exists (in the volatile view), by absolute path.
    dirs: BTreeMap<PathBuf, Dir>,
    capacity_bytes: Option<u64>,
    sync_data_fails_after: Option<u64>,
    sync_dir_fails_after: Option<u64>,
    crash_after_ops: Option<u64>,
    crashed: bool,
    ignore_sync_data: bool,
    stats: SimulatedDiskStats,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    File(u64),
    Dir,
}

#[derive(Default)]
struct Dir {
    durable: BTreeMap<String, Entry>,
    volatile: BTreeMap<String, Entry>,
    unsynced: Vec<EntryChange>,
}

enum EntryChange {
    Insert(String, Entry),
    Remove(String),
    Rename { from: String, to: String },
}

impl EntryChange {
    fn apply(&self, entries: &mut BTreeMap<String, Entry>) {
        match self {
            Self::Insert(name, entry) => {
                entries.insert(name.clone(), *entry);
            }
            Self::Remove(name) => {
                entries.remove(name);
            }
            Self::Rename { from, to } => {
                if let Some(entry) = entries.remove(from) {
                    entries.insert(to.clone(), entry);
                }
            }
        }
    }
}

fn eio(what: &str) -> io::Error {
    io::Error::other(format!("input/output error (simulated {what} failure)"))
}

fn powered_off() -> io::Error {
    io::Error::other("the simulated disk lost power")
}

/// `(parent directory, file name)` of an absolute path.
fn split_path(path: &Path) -> io::Result<(PathBuf, String)> {
    let invalid =
        || io::Error::new(io::ErrorKind::InvalidInput, format!("the simulated disk needs absolute plain paths, not {}", path.display()));
    if !path.is_absolute() {
        return Err(invalid());
    }
    let name = path.file_name().and_then(|name| name.to_str()).ok_or_else(invalid)?;
    let parent = path.parent().ok_or_else(invalid)?;
    Ok((parent.to_path_buf(), name.to_string()))
}

impl DiskState {
    /// Counts one mutating call against `crash_after_ops`; fails once the power is off.
    fn tick(&mut self) -> io::Result<()> {
        self.stats.n_mutating_calls += 1;
        if self.crashed {
            return Err(powered_off());
        }
        match self.crash_after_ops {
            Some(0) => {
                self.crashed = true;
                Err(powered_off())
            }
            Some(n) => {
                self.crash_after_ops = Some(n - 1);
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn dir_mut(&mut self, dir: &Path) -> io::Result<&mut Dir> {
        self.dirs.get_mut(dir).ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no directory {}", dir.display())))
    }

    fn used_bytes(&self) -> u64 {
        let mut used = 0;
        for dir in self.dirs.values() {
            for entry in dir.volatile.values() {
                if let Entry::File(inode) = entry {
                    used += self.inodes.get(inode).map_or(0, |inode| inode.volatile.len() as u64);
                }
            }
        }
        used
    }

    /// How many bytes a change that grows file `inode` to `new_len_bytes` may grow it by.
    fn growth_allowed(&self, inode: u64, new_len_bytes: u64) -> u64 {
        let len_bytes = self.inodes[&inode].volatile.len() as u64;
        let growth = new_len_bytes.saturating_sub(len_bytes);
        match self.capacity_bytes {
            Some(capacity_bytes) if growth > 0 => growth.min(capacity_bytes.saturating_sub(self.used_bytes())),
            _ => growth,
        }
    }

    fn insert_entry(&mut self, dir: &Path, name: String, entry: Entry) -> io::Result<()> {
        let dir = self.dir_mut(dir)?;
        dir.volatile.insert(name.clone(), entry);
        dir.unsynced.push(EntryChange::Insert(name, entry));
        Ok(())
    }

    fn new_inode(&mut self) -> u64 {
        let inode = self.next_inode;
        self.next_inode += 1;
        self.inodes.insert(inode, Inode::default());
        inode
    }

    fn power_loss(&mut self, mode: PowerLossMode) {
        let rng = &mut self.rng;
        for dir in self.dirs.values_mut() {
            let n_kept = rng.below(dir.unsynced.len() as u64 + 1) as usize;
            for change in &dir.unsynced[..n_kept] {
                change.apply(&mut dir.durable);
            }
            dir.unsynced.clear();
            dir.volatile = dir.durable.clone();
        }
        // Keep only the directories (and files) still reachable from the root.
        let mut reachable = BTreeMap::new();
        let mut linked_inodes = Vec::new();
        let mut to_visit = vec![PathBuf::from("/")];
        while let Some(path) = to_visit.pop() {
            let Some(dir) = self.dirs.remove(&path) else { continue };
            for (name, entry) in &dir.durable {
                match entry {
                    Entry::Dir => to_visit.push(path.join(name)),
                    Entry::File(inode) => linked_inodes.push(*inode),
                }
            }
            reachable.insert(path, dir);
        }
        self.dirs = reachable;
        let mut inodes = BTreeMap::new();
        for inode_id in linked_inodes {
            let Some(mut inode) = self.inodes.remove(&inode_id) else { continue };
            let mut contents = std::mem::take(&mut inode.durable);
            let n_changes = inode.unsynced.len();
            let kept: Vec<(bool, bool)> = match mode {
                PowerLossMode::DropUnsynced => vec![(false, false); n_changes],
                PowerLossMode::TearLastWrite => (0..n_changes).map(|idx| (true, idx + 1 == n_changes)).collect(),
                PowerLossMode::KeepPrefix => {
                    let n_kept = rng.below(n_changes as u64 + 1) as usize;
                    let torn = rng.chance(1, 2);
                    (0..n_changes).map(|idx| (idx < n_kept, torn && idx + 1 == n_kept)).collect()
                }
                PowerLossMode::KeepSubset => (0..n_changes).map(|_| (rng.chance(1, 2), rng.chance(1, 4))).collect(),
            };
            for (unsynced, (keep, tear)) in inode.unsynced.iter().zip(kept) {
                match (&unsynced.change, keep, tear) {
                    (_, false, _) => {}
                    (FileChange::Write { position, bytes }, true, true) => apply_torn_write(&mut contents, *position, bytes, rng),
                    (change, true, _) => apply_change(&mut contents, change),
                }
            }
            inodes.insert(inode_id, Inode { durable: contents.clone(), volatile: contents, unsynced: Vec::new() });
        }
        self.inodes = inodes;
        self.generation += 1;
        self.crashed = false;
        self.crash_after_ops = None;
        self.sync_data_fails_after = None;
        self.sync_dir_fails_after = None;
        self.stats.n_power_losses += 1;
    }
}

impl SimulatedDisk {
    /// An empty disk with only `/`; `seed` drives every random choice it makes.
    pub fn new(seed: u64) -> Self {
        let mut dirs = BTreeMap::new();
        dirs.insert(PathBuf::from("/"), Dir::default());
        let state = DiskState {
            rng: SplitMix64::new(seed),
            generation: 0,
            inodes: BTreeMap::new(),
            next_inode: 1,
            dirs,
            capacity_bytes: None,
            sync_data_fails_after: None,
            sync_dir_fails_after: None,
            crash_after_ops: None,
            crashed: false,
            ignore_sync_data: false,
            stats: SimulatedDiskStats::default(),
        };
        Self { state: Arc::new(Mutex::new(state)) }
    }

    fn lock(&self) -> MutexGuard<'_, DiskState> {
        self.state.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    /// Cuts the power: unsynced file changes and directory entries survive as `mode` and the
    /// seed decide (see the module doc), open handles go stale, and injected faults are cleared.
    pub fn power_loss(&self, mode: PowerLossMode) {
        self.lock().power_loss(mode);
    }

    /// Makes the (`n_calls` + 1)-th next `sync_data` fail with EIO (once).
    pub fn fail_sync_data_after(&self, n_calls: u64) {
        self.lock().sync_data_fails_after = Some(n_calls);
    }

    /// Makes the (`n_calls` + 1)-th next `sync_dir` fail with EIO (once).
    pub fn fail_sync_dir_after(&self, n_calls: u64) {
        self.lock().sync_dir_fails_after = Some(n_calls);
    }

    /// Limits the total size of all files; writes past it fail with ENOSPC. `None` lifts it.
    pub fn set_capacity_bytes(&self, capacity_bytes: Option<u64>) {
        self.lock().capacity_bytes = capacity_bytes;
    }

    /// Cuts the power after `n_ops` more mutating calls: from then on every call fails until
    /// `power_loss` is called.
    pub fn crash_after_ops(&self, n_ops: u64) {
        self.lock().crash_after_ops = Some(n_ops);
    }

    /// Whether the power is off (after `crash_after_ops` ran out).
    pub fn is_powered_off(&self) -> bool {
        self.lock().crashed
    }

    /// Clears injected faults that have not fired yet (not the capacity).
    pub fn clear_faults(&self) {
        let mut state = self.lock();
        state.sync_data_fails_after = None;
        state.sync_dir_fails_after = None;
        state.crash_after_ops = None;
    }

    /// A lying disk: `sync_data` reports success and makes nothing durable.
    pub fn set_ignore_sync_data(&self, ignore: bool) {
        self.lock().ignore_sync_data = ignore;
    }

    /// Total size of all files now (what `set_capacity_bytes` limits).
    pub fn used_bytes(&self) -> u64 {
        self.lock().used_bytes()
    }

    pub fn stats(&self) -> SimulatedDiskStats {
        self.lock().stats
    }

    /// What reads of `path` return now, or `None` if no such file exists.
    pub fn volatile_contents(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.lock();
        let (dir, name) = split_path(path).ok()?;
        let Entry::File(inode) = state.dirs.get(&dir)?.volatile.get(&name)? else { return None };
        Some(state.inodes[inode].volatile.clone())
    }

    /// What `path` is sure to hold after power loss (its synced contents, if its directory
    /// entry is durable), or `None`.
    pub fn durable_contents(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.lock();
        let (dir, name) = split_path(path).ok()?;
        let Entry::File(inode) = state.dirs.get(&dir)?.durable.get(&name)? else { return None };
        state.inodes.get(inode).map(|inode| inode.durable.clone())
    }
}

impl fmt::Debug for SimulatedDisk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("SimulatedDisk")
            .field("generation", &state.generation)
            .field("n_dirs", &state.dirs.len())
            .field("n_files", &state.inodes.len())
            .field("stats", &state.stats)
            .finish_non_exhaustive()
    }
}

impl StorageBackend for SimulatedDisk {
    fn create_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.lock();
        let (parent, name) = split_path(dir)?;
        let entries = &state.dir_mut(&parent)?.volatile;
        if entries.contains_key(&name) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{} exists", dir.display())));
        }
        state.tick()?;
        state.insert_entry(&parent, name, Entry::Dir)?;
        state.dirs.insert(dir.to_path_buf(), Dir::default());
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut state = self.lock();
        if state.crashed {
            return Err(powered_off());
        }
        Ok(state.dir_mut(dir)?.volatile.keys().cloned().collect())
    }

    fn open_file(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        let mut state = self.lock();
        if state.crashed {
            return Err(powered_off());
        }
        let (parent, name) = split_path(path)?;
        let existing = state.dir_mut(&parent)?.volatile.get(&name).copied();
        let inode = match (mode, existing) {
            (_, Some(Entry::Dir)) => return Err(io::Error::other(format!("{} is a directory", path.display()))),
            (OpenMode::ReadWrite | OpenMode::ReadOnly, Some(Entry::File(inode))) => inode,
            (OpenMode::ReadWrite | OpenMode::ReadOnly, None) => {
                return Err(io::Error::new(io::ErrorKind::NotFound, format!("no file {}", path.display())));
            }
            (OpenMode::CreateNew, Some(_)) => {
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{} exists", path.display())));
            }
            (OpenMode::CreateTruncate, Some(Entry::File(inode))) => {
                state.tick()?;
                let inode_state = state.inodes.get_mut(&inode).expect("a linked file has an inode");
                inode_state.volatile.clear();
                inode_state.unsynced.push(UnsyncedChange { change: FileChange::SetLen(0), lost: false });
                inode
            }
            (OpenMode::CreateNew | OpenMode::CreateTruncate, None) => {
                state.tick()?;
                let inode = state.new_inode();
                state.insert_entry(&parent, name, Entry::File(inode))?;
                inode
            }
        };
        let file =
            SimulatedFile { disk: Arc::clone(&self.state), inode, generation: state.generation, writable: mode != OpenMode::ReadOnly };
        Ok(Arc::new(file))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.lock();
        let (from_dir, from_name) = split_path(from)?;
        let (to_dir, to_name) = split_path(to)?;
        if from_dir != to_dir {
            return Err(io::Error::other("the simulated disk renames only within one directory"));
        }
        if !state.dir_mut(&from_dir)?.volatile.contains_key(&from_name) {
            return Err(io::Error::new(io::ErrorKind::NotFound, format!("no file {}", from.display())));
        }
        state.tick()?;
        let dir = state.dir_mut(&from_dir)?;
        let entry = dir.volatile.remove(&from_name).expect("checked above");
        dir.volatile.insert(to_name.clone(), entry);
        dir.unsynced.push(EntryChange::Rename { from: from_name, to: to_name });
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        let (dir, name) = split_path(path)?;
        match state.dir_mut(&dir)?.volatile.get(&name) {
            Some(Entry::File(_)) => {}
            Some(Entry::Dir) => return Err(io::Error::other(format!("{} is a directory", path.display()))),
            None => return Err(io::Error::new(io::ErrorKind::NotFound, format!("no file {}", path.display()))),
        }
        state.tick()?;
        let dir = state.dir_mut(&dir)?;
        dir.volatile.remove(&name);
        dir.unsynced.push(EntryChange::Remove(name));
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.dir_mut(dir)?;
        state.tick()?;
        state.stats.n_sync_dir += 1;
        match state.sync_dir_fails_after {
            Some(0) => {
                state.sync_dir_fails_after = None;
                state.stats.n_injected_failures += 1;
                return Err(eio("directory fsync"));
            }
            Some(n) => state.sync_dir_fails_after = Some(n - 1),
            None => {}
        }
        let dir = state.dir_mut(dir)?;
        dir.durable = dir.volatile.clone();
        dir.unsynced.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_file(disk: &SimulatedDisk, path: &str, bytes: &[u8]) -> Arc<dyn StorageFile> {
        let file = disk.open_file(Path::new(path), OpenMode::CreateNew).unwrap();
        file.write_all_at(bytes, 0).unwrap();
        file
    }

    /// Proves: synced bytes of a file whose entry was dir-synced survive every power-loss mode,
    /// and unsynced bytes are gone under `DropUnsynced`.
    #[test]
    fn synced_data_survives_power_loss_and_unsynced_data_may_not() {
        for (seed, mode) in PowerLossMode::ALL.into_iter().enumerate() {
            let disk = SimulatedDisk::new(seed as u64);
            let file = write_file(&disk, "/a", b"durable");
            file.sync_data().unwrap();
            disk.sync_dir(Path::new("/")).unwrap();
            file.write_all_at(b"-volatile", 7).unwrap();
            disk.power_loss(mode);
            let after = disk.volatile_contents(Path::new("/a")).unwrap();
            assert!(after.starts_with(b"durable"), "{mode:?}: {after:?}");
            if mode == PowerLossMode::DropUnsynced {
                assert_eq!(after, b"durable");
            }
            assert!(file.read_exact_at(&mut [0u8; 1], 0).is_err(), "a handle from before the power loss is stale");
        }
    }

    /// Proves: a file created but never dir-synced may vanish at power loss, even if its data
    /// was synced, and a removal that was not dir-synced may be undone.
    #[test]
    fn directory_entries_are_durable_only_after_a_directory_sync() {
        let (mut vanished, mut came_back) = (false, false);
        for seed in 0..64 {
            let disk = SimulatedDisk::new(seed);
            let old = write_file(&disk, "/old", b"x");
            old.sync_data().unwrap();
            disk.sync_dir(Path::new("/")).unwrap();
            let new = write_file(&disk, "/new", b"y");
            new.sync_data().unwrap();
            disk.remove_file(Path::new("/old")).unwrap();
            disk.power_loss(PowerLossMode::DropUnsynced);
            vanished |= disk.volatile_contents(Path::new("/new")).is_none();
            came_back |= disk.volatile_contents(Path::new("/old")).is_some();
        }
        assert!(vanished && came_back);
    }

    /// Proves: after a failed fdatasync the writes it covered are never made durable by a
    /// later successful one, although reads still return them.
    #[test]
    fn a_failed_sync_loses_its_writes_for_good() {
        let disk = SimulatedDisk::new(7);
        let file = write_file(&disk, "/a", b"lost");
        disk.sync_dir(Path::new("/")).unwrap();
        disk.fail_sync_data_after(0);
        assert!(file.sync_data().is_err());
        file.sync_data().expect("the next fdatasync reports success");
        assert_eq!(disk.volatile_contents(Path::new("/a")).unwrap(), b"lost");
        assert_eq!(disk.durable_contents(Path::new("/a")).unwrap(), b"");
    }

    /// Proves: a write past the capacity writes what fits and fails with ENOSPC.
    #[test]
    fn a_write_past_the_capacity_fails_with_storage_full() {
        let disk = SimulatedDisk::new(1);
        disk.set_capacity_bytes(Some(4));
        let file = disk.open_file(Path::new("/a"), OpenMode::CreateNew).unwrap();
        let error = file.write_all_at(b"123456", 0).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::StorageFull);
        assert_eq!(disk.volatile_contents(Path::new("/a")).unwrap(), b"1234");
        file.write_all_at(b"ab", 0).expect("overwriting needs no space");
    }
}
