//! One file of the simulated disk: its durable and volatile contents, the queue of unsynced
//! changes between them, and the open handle (`SimulatedFile`) that reads, writes, truncates and
//! fdatasyncs it.

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{DiskState, SplitMix64, eio, powered_off};
use crate::backend::StorageFile;

#[derive(Default)]
pub(super) struct Inode {
    pub(super) durable: Vec<u8>,
    pub(super) volatile: Vec<u8>,
    pub(super) unsynced: Vec<UnsyncedChange>,
}

pub(super) struct UnsyncedChange {
    pub(super) change: FileChange,
    /// A failed fdatasync covered it: no later fdatasync writes it.
    pub(super) lost: bool,
}

#[derive(Clone)]
pub(super) enum FileChange {
    Write { position: u64, bytes: Vec<u8> },
    SetLen(u64),
}

pub(super) fn apply_write(contents: &mut Vec<u8>, position: u64, bytes: &[u8]) {
    let position = position as usize;
    if contents.len() < position + bytes.len() {
        contents.resize(position + bytes.len(), 0);
    }
    contents[position..position + bytes.len()].copy_from_slice(bytes);
}

pub(super) fn apply_change(contents: &mut Vec<u8>, change: &FileChange) {
    match change {
        FileChange::Write { position, bytes } => apply_write(contents, *position, bytes),
        FileChange::SetLen(len_bytes) => contents.resize(*len_bytes as usize, 0),
    }
}

/// Applies a write that power cut in the middle: a prefix of its bytes, then (at random)
/// nothing, zeros or garbage where the rest should have gone.
pub(super) fn apply_torn_write(contents: &mut Vec<u8>, position: u64, bytes: &[u8], rng: &mut SplitMix64) {
    let cut = rng.below(bytes.len() as u64 + 1) as usize;
    apply_write(contents, position, &bytes[..cut]);
    let rest = bytes.len() - cut;
    match rng.below(3) {
        0 => {}
        1 => apply_write(contents, position + cut as u64, &vec![0u8; rest]),
        _ => {
            let mut garbage = vec![0u8; rest];
            rng.fill(&mut garbage);
            apply_write(contents, position + cut as u64, &garbage);
        }
    }
}

/// An open file of a `SimulatedDisk`.
pub(super) struct SimulatedFile {
    pub(super) disk: Arc<Mutex<DiskState>>,
    pub(super) inode: u64,
    pub(super) generation: u64,
    pub(super) writable: bool,
}

impl fmt::Debug for SimulatedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimulatedFile").field("inode", &self.inode).field("generation", &self.generation).finish()
    }
}

impl SimulatedFile {
    /// The disk, if this handle is still live.
    fn lock(&self) -> io::Result<MutexGuard<'_, DiskState>> {
        let state = self.disk.lock().unwrap_or_else(|poison| poison.into_inner());
        if state.crashed || state.generation != self.generation || !state.inodes.contains_key(&self.inode) {
            return Err(powered_off());
        }
        Ok(state)
    }

    fn lock_for_writing(&self) -> io::Result<MutexGuard<'_, DiskState>> {
        if !self.writable {
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, "the file was opened read-only"));
        }
        let mut state = self.lock()?;
        state.tick()?;
        Ok(state)
    }
}

impl StorageFile for SimulatedFile {
    fn read_exact_at(&self, buf: &mut [u8], position: u64) -> io::Result<()> {
        let state = self.lock()?;
        let contents = &state.inodes[&self.inode].volatile;
        let start = usize::try_from(position).unwrap_or(usize::MAX);
        if start.saturating_add(buf.len()) > contents.len() {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end of the file"));
        }
        buf.copy_from_slice(&contents[start..start + buf.len()]);
        Ok(())
    }

    fn write_all_at(&self, bytes: &[u8], position: u64) -> io::Result<()> {
        let mut state = self.lock_for_writing()?;
        state.stats.n_writes += 1;
        let len_bytes = state.inodes[&self.inode].volatile.len() as u64;
        let wanted_len_bytes = len_bytes.max(position + bytes.len() as u64);
        let allowed_len_bytes = len_bytes + state.growth_allowed(self.inode, wanted_len_bytes);
        let n_written =
            if allowed_len_bytes >= wanted_len_bytes { bytes.len() } else { allowed_len_bytes.saturating_sub(position) as usize };
        let inode = state.inodes.get_mut(&self.inode).expect("checked by lock");
        if n_written > 0 {
            apply_write(&mut inode.volatile, position, &bytes[..n_written]);
            inode.unsynced.push(UnsyncedChange { change: FileChange::Write { position, bytes: bytes[..n_written].to_vec() }, lost: false });
        }
        if n_written < bytes.len() {
            state.stats.n_injected_failures += 1;
            return Err(io::Error::new(io::ErrorKind::StorageFull, "no space left on device (simulated)"));
        }
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut state = self.lock_for_writing()?;
        state.stats.n_sync_data += 1;
        let fail = match state.sync_data_fails_after {
            Some(0) => {
                state.sync_data_fails_after = None;
                state.stats.n_injected_failures += 1;
                true
            }
            Some(n) => {
                state.sync_data_fails_after = Some(n - 1);
                false
            }
            None => false,
        };
        let ignore = state.ignore_sync_data;
        let inode = state.inodes.get_mut(&self.inode).expect("checked by lock");
        if fail {
            for unsynced in &mut inode.unsynced {
                unsynced.lost = true;
            }
            return Err(eio("fdatasync"));
        }
        if !ignore {
            for unsynced in std::mem::take(&mut inode.unsynced) {
                if !unsynced.lost {
                    apply_change(&mut inode.durable, &unsynced.change);
                }
            }
        }
        Ok(())
    }

    fn set_len(&self, len_bytes: u64) -> io::Result<()> {
        let mut state = self.lock_for_writing()?;
        if state.growth_allowed(self.inode, len_bytes) < len_bytes.saturating_sub(state.inodes[&self.inode].volatile.len() as u64) {
            return Err(io::Error::new(io::ErrorKind::StorageFull, "no space left on device (simulated)"));
        }
        let inode = state.inodes.get_mut(&self.inode).expect("checked by lock");
        inode.volatile.resize(len_bytes as usize, 0);
        inode.unsynced.push(UnsyncedChange { change: FileChange::SetLen(len_bytes), lost: false });
        Ok(())
    }

    fn len_bytes(&self) -> io::Result<u64> {
        Ok(self.lock()?.inodes[&self.inode].volatile.len() as u64)
    }
}
