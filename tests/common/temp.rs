//! A temporary directory for a test's data, removed when dropped.

use std::path::{Path, PathBuf};

/// A directory under the system's temporary directory, unique to this
/// process and call (`wschat-TAG-PID-RANDOM`), not created until something
/// writes there, and removed (with everything in it) when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh path named after `tag`.
    pub fn new(tag: &str) -> TempDir {
        TempDir(std::env::temp_dir().join(format!(
            "wschat-{tag}-{}-{}",
            std::process::id(),
            wschat::random::random_u64()
        )))
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
