//! Noticing that a function's code changed on disk, cheaply enough to check on every
//! invocation: a file's size and modification time.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
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

    /// The current stamp of `path` if it is a regular file (following symlinks).
    fn of_file(path: &Path) -> Option<FileStamp> {
        let meta = std::fs::metadata(path).ok()?;
        meta.is_file().then(|| FileStamp {
            path: path.to_path_buf(),
            len: meta.len(),
            modified: meta.modified().ok(),
        })
    }

    /// Whether the file has not been modified for at least `quiet` (a file being written, say by
    /// a linker writing its output in place, is modified again and again until it is done). A
    /// modification time in the future (a clock set back) counts as settled.
    pub fn settled(&self, quiet: std::time::Duration) -> bool {
        self.modified
            .is_none_or(|m| m.elapsed().map_or(true, |age| age >= quiet))
    }

    /// Whether the file now differs from this stamp (a missing file counts as unchanged, so a
    /// rebuild that deletes and rewrites the file does not flap).
    pub fn changed(&self) -> bool {
        FileStamp::of(&self.path).is_some_and(|now| now != *self)
    }
}

/// The files a running program depends on (an executable, the script it runs), each as last
/// seen, so that a change to any of them is noticed once.
#[derive(Debug)]
pub struct FileStamps {
    /// Each path with its stamp when last seen as a regular file; `None` until then.
    seen: Mutex<Vec<(PathBuf, Option<FileStamp>)>>,
}

impl FileStamps {
    /// Remembers the current stamps of `paths` (paths that are not regular files are kept and
    /// looked at again on every check).
    pub fn new(paths: impl IntoIterator<Item = PathBuf>) -> FileStamps {
        let seen = paths
            .into_iter()
            .map(|path| {
                let stamp = FileStamp::of_file(&path);
                (path, stamp)
            })
            .collect();
        FileStamps {
            seen: Mutex::new(seen),
        }
    }

    /// The files whose content changed since they were last seen (one `stat` per path). A
    /// missing file is not a change, so a rebuild that deletes and rewrites a file is reported
    /// once, when the new file is there; nor is a file that appears where there was none, since
    /// nothing can have run it yet.
    pub fn changed(&self) -> Vec<PathBuf> {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let mut changed = Vec::new();
        for (path, last) in seen.iter_mut() {
            let Some(now) = FileStamp::of_file(path) else {
                continue;
            };
            if last.as_ref() == Some(&now) {
                continue;
            }
            if last.replace(now).is_some() {
                changed.push(path.clone());
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_to_any_file_is_reported_once_and_missing_files_are_not_changes() {
        let dir = std::env::temp_dir().join(format!("trellis-stamps-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let (a, b, later) = (dir.join("a"), dir.join("b"), dir.join("later"));
        std::fs::write(&a, "one").expect("write");
        std::fs::write(&b, "one").expect("write");
        let stamps = FileStamps::new([a.clone(), b.clone(), later.clone(), dir.clone()]);
        assert!(stamps.changed().is_empty());

        std::fs::write(&b, "two, longer").expect("write");
        assert_eq!(stamps.changed(), vec![b.clone()]);
        assert!(stamps.changed().is_empty(), "reported once");

        std::fs::remove_file(&a).expect("remove");
        assert!(
            stamps.changed().is_empty(),
            "a missing file is not a change"
        );
        std::fs::write(&a, "rewritten").expect("write");
        assert_eq!(stamps.changed(), vec![a.clone()]);

        std::fs::write(&later, "new").expect("write");
        assert!(
            stamps.changed().is_empty(),
            "a file that appears is not a change"
        );
        std::fs::write(&later, "newer content").expect("write");
        assert_eq!(stamps.changed(), vec![later.clone()]);

        // A directory is not watched: adding a file to it changes nothing.
        std::fs::write(dir.join("c"), "x").expect("write");
        assert!(stamps.changed().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
