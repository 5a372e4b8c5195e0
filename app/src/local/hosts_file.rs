//! The hosts-file entry that makes the stand-in's DSQL-shaped name ([`HOST`]) resolve to the
//! loopback, for clients other than the app.
//!
//! Why a hosts file: the name must look like a cluster's endpoint (AWS's connectors expand any
//! other), no such name resolves to the loopback on a fresh machine, and a hosts-file line is
//! the one way every resolver (glibc, Node's `getaddrinfo`, Python's) honours without a DNS
//! server or a change to the machine's resolver configuration. The entry is only ever added
//! when asked ([`add_entry`], `app local --add-hosts-entry`), never silently.

use std::io::Write;
use std::path::Path;

use super::STAND_IN_HOST as HOST;
use crate::local::error::{Error, Result};

/// The machine's hosts file.
pub const SYSTEM_HOSTS: &str = "/etc/hosts";

/// The lines to add: [`HOST`] on `127.0.0.1` and `::1`, where the front door listens.
pub fn entry() -> String {
    format!("127.0.0.1 {HOST}\n::1 {HOST}\n")
}

/// Whether `contents` (a hosts file) maps [`HOST`] to any address, on a line not commented
/// out.
pub fn maps_stand_in(contents: &str) -> bool {
    contents.lines().any(|line| {
        let line = line.split('#').next().unwrap_or_default();
        line.split_whitespace().skip(1).any(|name| name == HOST)
    })
}

/// Appends [`entry`] to the hosts file at `path` unless it maps [`HOST`] already; `true` when
/// it was added. Fails with [`Error::Io`] naming the file (e.g. not allowed to write it).
pub fn add_entry(path: &Path) -> Result<bool> {
    let action = |what: &str| format!("{what} {}", path.display());
    let contents = std::fs::read_to_string(path).map_err(Error::io(action("read")))?;
    if maps_stand_in(&contents) {
        return Ok(false);
    }
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(Error::io(action("open for appending")))?;
    let separator = if contents.is_empty() || contents.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    file.write_all(format!("{separator}{}", entry()).as_bytes())
        .map_err(Error::io(action("append to")))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_entry_is_added_once_and_keeps_what_was_there() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("hosts");
        std::fs::write(&path, "127.0.0.1 localhost").expect("a hosts file");
        assert!(add_entry(&path).expect("add"));
        assert!(!add_entry(&path).expect("already there"));
        let written = std::fs::read_to_string(&path).expect("read");
        assert_eq!(written, format!("127.0.0.1 localhost\n{}", entry()));
    }

    #[test]
    fn only_a_line_naming_the_host_counts() {
        assert!(maps_stand_in(&format!("::1   localhost {HOST}\n")));
        assert!(!maps_stand_in(&format!("# 127.0.0.1 {HOST}\n")));
        assert!(!maps_stand_in(&format!("{HOST} 127.0.0.1\n")));
        assert!(!maps_stand_in("127.0.0.1 localhost\n"));
    }

    #[test]
    fn a_hosts_file_that_cannot_be_written_is_named() {
        let error = add_entry(Path::new("/nonexistent-directory/hosts")).expect_err("no file");
        assert!(
            error.to_string().contains("/nonexistent-directory/hosts"),
            "{error}"
        );
    }
}
