//! The storage engine's only door to the disk: a small backend trait for files and directories.
//!
//! Every byte `partition`, `segment` and `read_only` read or write, every fdatasync, truncate,
//! rename, unlink and directory sync goes through `StorageBackend` and `StorageFile`.
//! Production uses `FileBackend`, a thin layer over `std::fs` (one virtual call in front of
//! each system call, nothing buffered, nothing added); tests use `crate::simulation::SimulatedDisk`,
//! which keeps what was synced apart from what was only written, so a test can pull the plug
//! at any point and see exactly what a real disk might have kept.
//!
//! The trait says what the engine relies on, and no more:
//! - `StorageFile::sync_data` is a barrier: after it returns `Ok`, every earlier write and
//!   length change of that file survives power loss.
//! - A directory entry (created, renamed or removed) survives power loss only after
//!   `StorageBackend::sync_dir` of its directory returned `Ok`; before that it may vanish or
//!   come back. Entry changes in one directory reach the disk in the order they were made.
//! - A failed `sync_data` may have lost the unsynced writes for good even though reads still
//!   return them, and a later `sync_data` may return `Ok` without writing them.
//!
//! It does not know segments, batches or offsets.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// How `StorageBackend::open_file` opens a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Read and write an existing file.
    ReadWrite,
    /// Read an existing file; writes, truncates and syncs fail.
    ReadOnly,
    /// Create a new, empty file for reading and writing; fails if the name exists (`O_EXCL`).
    CreateNew,
    /// Create the file, or cut an existing one to zero bytes, for writing.
    CreateTruncate,
}

/// Files and directories of one storage device.
pub trait StorageBackend: Send + Sync + fmt::Debug {
    /// Creates one directory; its parent must exist. Fails with `AlreadyExists` if it does.
    fn create_dir(&self, dir: &Path) -> io::Result<()>;
    /// The names of the entries of `dir` (files and directories), in no particular order.
    /// Fails with `NotFound` if `dir` does not exist.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
    fn open_file(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>>;
    /// Renames a file within its directory, replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Makes the entries of `dir` (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// One open file. Positioned reads and writes only: nothing keeps a cursor.
pub trait StorageFile: Send + Sync + fmt::Debug {
    /// Fills `buf` from `position`; fails with `UnexpectedEof` if the file ends first.
    fn read_exact_at(&self, buf: &mut [u8], position: u64) -> io::Result<()>;
    /// Writes all of `bytes` at `position`. On an error, any prefix of `bytes` may have been written.
    fn write_all_at(&self, bytes: &[u8], position: u64) -> io::Result<()>;
    /// fdatasync: the file's data and length are durable once this returns `Ok`.
    fn sync_data(&self) -> io::Result<()>;
    fn set_len(&self, len_bytes: u64) -> io::Result<()>;
    fn len_bytes(&self) -> io::Result<u64>;
}

/// The real file system, through `std::fs`.
#[derive(Debug, Default, Clone, Copy)]
pub struct FileBackend;

impl StorageBackend for FileBackend {
    /// Directories are created `0700` and files `0600`: the log holds every event (the data
    /// directory is private, see ARCHITECTURE.md).
    fn create_dir(&self, dir: &Path) -> io::Result<()> {
        std::os::unix::fs::DirBuilderExt::mode(&mut fs::DirBuilder::new(), 0o700).create(dir)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    }

    fn open_file(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        let mut options = OpenOptions::new();
        match mode {
            OpenMode::ReadWrite => options.read(true).write(true),
            OpenMode::ReadOnly => options.read(true),
            OpenMode::CreateNew => options.read(true).write(true).create_new(true),
            OpenMode::CreateTruncate => options.write(true).create(true).truncate(true),
        };
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        Ok(Arc::new(RealFile(options.open(path)?)))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

/// An open `std::fs::File`.
#[derive(Debug)]
struct RealFile(File);

impl StorageFile for RealFile {
    fn read_exact_at(&self, buf: &mut [u8], position: u64) -> io::Result<()> {
        self.0.read_exact_at(buf, position)
    }

    fn write_all_at(&self, bytes: &[u8], position: u64) -> io::Result<()> {
        self.0.write_all_at(bytes, position)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn set_len(&self, len_bytes: u64) -> io::Result<()> {
        self.0.set_len(len_bytes)
    }

    fn len_bytes(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
}

/// Reads a whole file.
pub(crate) fn read_whole_file(backend: &dyn StorageBackend, path: &Path) -> io::Result<Vec<u8>> {
    let file = backend.open_file(path, OpenMode::ReadOnly)?;
    let len_bytes = usize::try_from(file.len_bytes()?).map_err(|_| io::Error::other("file larger than memory"))?;
    let mut bytes = vec![0u8; len_bytes];
    file.read_exact_at(&mut bytes, 0)?;
    Ok(bytes)
}

/// Writes `bytes` to `path` so that the name holds either the old contents or all of the new
/// ones: through `{stem}.tmp`, fdatasynced, then renamed over `path`. The rename is durable
/// only after the caller syncs the directory.
pub(crate) fn write_file_atomically(backend: &dyn StorageBackend, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp_path = path.with_extension("tmp");
    let file = backend.open_file(&tmp_path, OpenMode::CreateTruncate)?;
    file.write_all_at(bytes, 0)?;
    file.sync_data()?;
    drop(file);
    backend.rename(&tmp_path, path)
}

/// Creates `dir` and any missing parents (without syncing anything).
pub(crate) fn create_dir_all(backend: &dyn StorageBackend, dir: &Path) -> io::Result<()> {
    match backend.create_dir(dir) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            let parent = parent_dir(dir).ok_or(error)?;
            create_dir_all(backend, parent)?;
            match backend.create_dir(dir) {
                Err(error) if error.kind() != io::ErrorKind::AlreadyExists => Err(error),
                _ => Ok(()),
            }
        }
        Err(error) => Err(error),
    }
}

/// Syncs every directory above `dir`, up to the root, so the names leading to `dir` survive
/// power loss: any of them may have been created by this process, or by an earlier attempt
/// that failed before its sync. The parent must sync; an ancestor above it that cannot even be
/// opened (`PermissionDenied`, e.g. `/home` of another user) is skipped, as no one here created it.
pub(crate) fn sync_ancestors(backend: &dyn StorageBackend, dir: &Path) -> io::Result<()> {
    let mut ancestor = parent_dir(dir);
    let mut is_parent = true;
    while let Some(path) = ancestor {
        match backend.sync_dir(path) {
            Ok(()) => {}
            Err(error) if !is_parent && error.kind() == io::ErrorKind::PermissionDenied => {}
            Err(error) => return Err(error),
        }
        is_parent = false;
        ancestor = parent_dir(path);
    }
    Ok(())
}

/// The directory that holds `path`; `.` for a bare relative name, `None` at the root or at `.`.
fn parent_dir(path: &Path) -> Option<&Path> {
    if path == Path::new(".") {
        return None;
    }
    match path.parent() {
        Some(parent) if parent.as_os_str().is_empty() => Some(Path::new(".")),
        parent => parent,
    }
}
