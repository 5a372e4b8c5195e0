//! Finding the PostgreSQL server programs on this machine.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::local::error::{Error, Result};

/// Where `initdb` and `postgres` are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerBinaries {
    /// The `initdb` program.
    pub initdb: PathBuf,
    /// The `postgres` server program.
    pub postgres: PathBuf,
}

impl ServerBinaries {
    /// Looks on `PATH` first, then in `/usr/lib/postgresql/<version>/bin` (newest version
    /// first), for a directory holding both `initdb` and `postgres`.
    pub fn find() -> Result<Self> {
        Self::find_in(
            std::env::var_os("PATH").as_deref(),
            Path::new("/usr/lib/postgresql"),
        )
    }

    /// [`ServerBinaries::find`] with the search path and the Debian root given.
    pub fn find_in(path: Option<&OsStr>, debian_root: &Path) -> Result<Self> {
        path.map(|path| std::env::split_paths(path).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .chain(debian_dirs(debian_root))
            .find_map(|dir| Self::in_dir(&dir))
            .ok_or(Error::NoPostgresBinaries)
    }

    /// The binaries in `dir`, if both are there.
    pub fn in_dir(dir: &Path) -> Option<Self> {
        let initdb = dir.join("initdb");
        let postgres = dir.join("postgres");
        (initdb.is_file() && postgres.is_file()).then_some(Self { initdb, postgres })
    }
}

/// `<root>/<version>/bin` for every numeric version under `root`, newest first.
fn debian_dirs(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut versions: Vec<(u32, PathBuf)> = entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
    versions.into_iter().map(|(_, dir)| dir).collect()
}
