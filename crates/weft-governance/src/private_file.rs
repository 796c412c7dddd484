//! Files only their owner may read (the admin token, the server secret, the audit head), written
//! so that a crash never leaves a torn or world-readable one.
//!
//! Owns the write protocol only; what goes into each file belongs to the module that writes it.

use std::fs;
use std::io::Write;
use std::path::Path;

/// Writes a file readable only by its owner, atomically (temporary file, fsync, rename, fsync of the
/// directory), so a crash leaves the old content or the new, never a torn or world-readable one.
pub(crate) fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let directory = path.parent().unwrap_or(Path::new("."));
    let file_name = path.file_name().and_then(|name| name.to_str()).unwrap_or("file");
    let temporary = directory.join(format!(".{file_name}.tmp"));
    // A stale temporary file could have other permissions; mode applies only at creation.
    match fs::remove_file(&temporary) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&temporary, path)?;
    fs::File::open(directory)?.sync_all()?;
    Ok(())
}

/// Creates `path` empty with mode 0600 if it does not exist, and tightens it to 0600 if it does:
/// for files another library then opens (the identity store's `redb` file), so they are never
/// readable by others, not even for a moment.
pub(crate) fn create_private_file(path: &Path) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        options.open(path)?.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    options.open(path)?;
    Ok(())
}
