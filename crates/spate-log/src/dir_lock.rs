//! An exclusive lock on a data directory, as Kafka's `.lock`: one process at a time opens it.
//!
//! The lock is an advisory `flock` on `<dir>/.lock`, taken without waiting and held until the
//! [`DirLock`] is dropped (or the process dies: the kernel releases it, so a crash never leaves
//! a stale lock). The holder writes its process id into the file, so a second process can say
//! who holds the directory.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The lock file's name inside the data directory.
pub const LOCK_FILE: &str = ".lock";

/// Why a data directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum DirLockError {
    /// Another process (or another open of the same directory) holds it.
    #[error("in use by {holder}, which holds {dir}/.lock: stop it first or choose another data directory", dir = dir.display())]
    Held {
        /// The directory.
        dir: PathBuf,
        /// Who holds it, as far as the lock file says ("process 1234").
        holder: String,
    },
    /// The lock file could not be opened or written.
    #[error("cannot lock {path}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Holds a data directory for this process until dropped.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock on `dir` (which must exist) without waiting.
    pub fn acquire(dir: &Path) -> Result<DirLock, DirLockError> {
        let path = dir.join(LOCK_FILE);
        let io = |source| DirLockError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                let mut text = String::new();
                let holder = match file.read_to_string(&mut text) {
                    Ok(_) if !text.trim().is_empty() => format!("process {}", text.trim()),
                    _ => "another process".to_string(),
                };
                return Err(DirLockError::Held {
                    dir: dir.to_path_buf(),
                    holder,
                });
            }
            Err(errno) => return Err(io(errno.into())),
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(DirLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_directory_is_refused_with_the_holder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = DirLock::acquire(dir.path()).expect("first lock");
        let err = DirLock::acquire(dir.path()).expect_err("second lock must fail");
        let text = err.to_string();
        assert!(
            text.contains(&format!("process {}", std::process::id())),
            "{text}"
        );
        drop(first);
        DirLock::acquire(dir.path()).expect("lock again once released");
    }
}
