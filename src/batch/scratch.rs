//! The job's scratch space. Bucket files and downloaded exports hold whole FHIR resources, so the
//! directory is the owner's alone (0700, files 0600) and goes when the job ends. A job killed with
//! SIGKILL cannot clean up after itself: the next job in the same parent directory does, and only
//! for jobs that are gone.
//!
//! Whether a job is gone is decided by a lock, not by guessing: each job creates and locks
//! (`flock`, exclusive) a file `trdscreen-batch-{pid}-{nanos}.lock` *before* it makes the directory
//! of the same name, and holds the lock until it has removed the directory. The kernel releases the
//! lock when the process dies, however it dies. So a lock that can be taken belongs to a job that is
//! gone; a lock that cannot be taken belongs to a live job, whose directory is left alone. Scratch
//! directories of releases before the lock (no `.lock` beside them) are removed only when the
//! process id in their name no longer exists.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

const PREFIX: &str = "trdscreen-batch-";
const LOCK: &str = ".lock";

/// Owner-only modes for everything the job writes that holds clinical data.
pub const DIR_MODE: u32 = 0o700;
pub const FILE_MODE: u32 = 0o600;

/// The job's scratch directory, removed when dropped (the job ended, however it ended short of a
/// kill).
pub struct Scratch {
    path: PathBuf,
    lock_path: PathBuf,
    /// Held while the job lives: the lock is what tells other jobs this one is alive.
    _lock: File,
    /// Stale scratch of earlier jobs removed when this one started.
    pub removed_stale: usize,
}

impl Scratch {
    /// Locks, cleans up after dead jobs in `parent` (default: the system's temp directory), then
    /// creates this job's owner-only directory.
    pub fn create(parent: Option<&Path>) -> io::Result<Scratch> {
        let parent = parent.map_or_else(std::env::temp_dir, Path::to_path_buf);
        std::fs::create_dir_all(&parent)?;
        let unique = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!("{PREFIX}{}-{unique}", std::process::id());
        let lock_path = parent.join(format!("{name}{LOCK}"));
        let lock = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&lock_path)?;
        // std's advisory lock (flock) is Rust 1.89; the crate's let-chains already need 1.88, so
        // the declared rust-version (1.85) is behind either way.
        #[allow(clippy::incompatible_msrv)]
        let locked = lock.try_lock();
        locked.map_err(|e| match e {
            std::fs::TryLockError::Error(e) => e,
            std::fs::TryLockError::WouldBlock => io::Error::other("a fresh lock file is locked"),
        })?;
        let owner = lock.metadata()?.uid();
        let removed_stale = remove_stale(&parent, &name, owner);
        let path = parent.join(&name);
        let made = DirBuilder::new().mode(DIR_MODE).create(&path);
        if let Err(e) = made {
            let _ = std::fs::remove_file(&lock_path);
            return Err(e);
        }
        Ok(Scratch {
            path,
            lock_path,
            _lock: lock,
            removed_stale,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // The directory first, the lock file last: a directory is never without its lock.
        let _ = std::fs::remove_dir_all(&self.path);
        let _ = std::fs::remove_file(&self.lock_path);
    }
}

/// Removes the scratch of jobs that are gone; returns how many were removed. Best effort: what
/// cannot be removed now is tried again by the next job.
fn remove_stale(parent: &Path, own: &str, owner: u32) -> usize {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str() else {
            continue;
        };
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        // Symbolic links and other users' files are never followed or touched.
        let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
            continue;
        };
        if meta.uid() != owner || meta.file_type().is_symlink() {
            continue;
        }
        if let Some(job) = name.strip_suffix(LOCK) {
            if job != own && meta.is_file() && remove_if_unlocked(parent, job) {
                removed += 1;
            }
        } else if meta.is_dir()
            && !parent.join(format!("{name}{LOCK}")).exists()
            && legacy_owner_is_gone(rest)
            && std::fs::remove_dir_all(entry.path()).is_ok()
        {
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::warn!(
            removed,
            "removed the scratch of earlier jobs that were killed before they could clean up"
        );
    }
    removed
}

/// Takes `job`'s lock; when it can be taken the job is gone, and its directory and lock file are
/// removed (in that order, holding the lock).
fn remove_if_unlocked(parent: &Path, job: &str) -> bool {
    let lock_path = parent.join(format!("{job}{LOCK}"));
    let Ok(lock) = File::open(&lock_path) else {
        return false;
    };
    #[allow(clippy::incompatible_msrv)]
    let taken = lock.try_lock().is_ok();
    if !taken {
        return false;
    }
    let dir = parent.join(job);
    let gone = match std::fs::symlink_metadata(&dir) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(&dir).is_ok(),
        Ok(_) => false,
        Err(e) => e.kind() == io::ErrorKind::NotFound,
    };
    gone && std::fs::remove_file(&lock_path).is_ok()
}

/// A directory named `{pid}-{nanos}` by a release without the lock: its job is gone when no process
/// has that id. Without `/proc` nothing can be told, and the directory is kept.
fn legacy_owner_is_gone(rest: &str) -> bool {
    let Some((pid, nanos)) = rest.split_once('-') else {
        return false;
    };
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !numeric(pid) || !numeric(nanos) || !Path::new("/proc/self").exists() {
        return false;
    }
    !Path::new("/proc").join(pid).exists()
}

/// Creates (or truncates) a file only its owner can read, for data the job keeps in scratch.
pub fn create_file(path: &Path) -> io::Result<File> {
    crate::output::create_private(path)
}

/// Creates a directory (and missing parents) only its owner can enter.
pub fn create_dir(path: &Path) -> io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn parent(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "trdscreen-scratch-test-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn scratch_is_owner_only_and_goes_with_the_job() {
        let dir = parent("own");
        let scratch = Scratch::create(Some(&dir)).unwrap();
        assert_eq!(mode(scratch.path()), DIR_MODE);
        let file = scratch.path().join("bucket");
        create_file(&file).unwrap();
        assert_eq!(mode(&file), FILE_MODE);
        let path = scratch.path().to_owned();
        drop(scratch);
        assert!(!path.exists());
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            0,
            "the lock file goes too"
        );
    }

    #[test]
    fn a_dead_jobs_scratch_is_removed_and_a_live_jobs_is_kept() {
        let dir = parent("stale");
        // A job that is gone: its lock file is there but nobody holds the lock.
        let dead = dir.join("trdscreen-batch-1-1");
        create_dir(&dead).unwrap();
        std::fs::write(dead.join("bucket-0000-0"), "R\tp\t{}").unwrap();
        std::fs::write(dir.join("trdscreen-batch-1-1.lock"), "").unwrap();
        // A live job: this test holds its lock.
        let live = Scratch::create(Some(&dir)).unwrap();
        // Not ours by name: never touched.
        std::fs::create_dir_all(dir.join("other-data")).unwrap();
        assert!(
            !dead.exists(),
            "the dead job's scratch was removed when the live one started"
        );

        let next = Scratch::create(Some(&dir)).unwrap();
        assert!(
            live.path().exists(),
            "a live job's scratch is never removed"
        );
        assert!(dir.join("other-data").exists());
        assert_eq!(next.removed_stale, 0);
    }

    #[test]
    fn a_legacy_directory_is_removed_only_when_its_process_is_gone() {
        let dir = parent("legacy");
        let gone = dir.join(format!("trdscreen-batch-{}-7", u32::MAX - 1));
        let alive = dir.join(format!("trdscreen-batch-{}-7", std::process::id()));
        create_dir(&gone).unwrap();
        create_dir(&alive).unwrap();
        let scratch = Scratch::create(Some(&dir)).unwrap();
        assert!(!gone.exists());
        assert!(alive.exists(), "this process is alive: its directory stays");
        assert_eq!(scratch.removed_stale, 1);
    }
}
