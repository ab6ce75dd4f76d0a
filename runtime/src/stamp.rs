//! Noticing that a function's code changed on disk, cheaply enough to check on every
//! invocation: a file's size and modification time.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The identity of a file's content as the file system reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStamp {
    pub path: PathBuf,
    len: u64,
    modified: Option<SystemTime>,
}

impl FileStamp {
    /// The current stamp of `path`, or `None` if it cannot be read.
    pub fn of(path: &Path) -> Option<FileStamp> {
        let meta = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            path: path.to_path_buf(),
            len: meta.len(),
            modified: meta.modified().ok(),
        })
    }

    /// Whether the file now differs from this stamp (a missing file counts as unchanged, so a
    /// rebuild that deletes and rewrites the file does not flap).
    pub fn changed(&self) -> bool {
        FileStamp::of(&self.path).is_some_and(|now| now != *self)
    }
}
