//! Running another program with a hosts file of its own, in which the stand-in's endpoint name
//! (`app::local::stand_in::HOST`) resolves to `127.0.0.1` and `::1`, without touching the
//! machine's `/etc/hosts`.
//!
//! The program runs in a private mount namespace (`unshare --mount`, mounts private so nothing
//! leaks back) with a copy of `/etc/hosts` plus the stand-in's entry bind-mounted over
//! `/etc/hosts`. That needs `CAP_SYS_ADMIN`: root, as in CI.
//!
//! ```ignore
//! let hosts = PrivateHosts::new();
//! let output = hosts.command("node").arg("client.js").envs(exports).output();
//! ```

use std::ffi::OsStr;
use std::process::Command;

use app::local::hosts_file::{self, SYSTEM_HOSTS};

/// A hosts file with the stand-in's entry, for [`PrivateHosts::command`]. Keep it until the
/// commands made with it have been spawned.
pub struct PrivateHosts {
    file: tempfile::NamedTempFile,
}

impl PrivateHosts {
    /// A copy of `/etc/hosts` (if any) with [`app::local::stand_in::HOST`] on `127.0.0.1`
    /// and `::1` added. Panics when not root, naming what it needs.
    pub fn new() -> Self {
        let mut contents = Self::machines();
        if !contents.is_empty() && !contents.ends_with('\n') {
            contents.push('\n');
        }
        contents.push_str(&hosts_file::entry());
        Self::with_contents(&contents)
    }

    /// A copy of `/etc/hosts` without any line naming the stand-in, for testing what adds the
    /// entry. Panics when not root.
    pub fn without_entry() -> Self {
        let contents: String = Self::machines()
            .lines()
            .filter(|line| !hosts_file::maps_stand_in(line))
            .map(|line| format!("{line}\n"))
            .collect();
        Self::with_contents(&contents)
    }

    /// The machine's `/etc/hosts` (empty if there is none).
    pub fn machines() -> String {
        std::fs::read_to_string(SYSTEM_HOSTS).unwrap_or_default()
    }

    /// What the private hosts file holds now.
    pub fn contents(&self) -> String {
        std::fs::read_to_string(self.file.path()).expect("read the private hosts file")
    }

    fn with_contents(contents: &str) -> Self {
        assert!(
            nix::unistd::geteuid().is_root(),
            "a private hosts file needs a mount namespace, hence root (CAP_SYS_ADMIN); run the \
             client tests as root, as CI does"
        );
        let file = tempfile::NamedTempFile::new().expect("a temporary hosts file");
        std::fs::write(file.path(), contents).expect("write the private hosts file");
        Self { file }
    }

    /// A command for `program` (add its arguments, environment and stdio as usual) that runs
    /// it with this file as `/etc/hosts`: `unshare --mount` (util-linux) gives it a private
    /// mount namespace, where `mount --bind` puts the file over `/etc/hosts` before `exec`.
    /// Keep `self` until the command has been spawned.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("unshare");
        command
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(format!("mount --bind \"$0\" {SYSTEM_HOSTS} && exec \"$@\""))
            .arg(self.file.path())
            .arg(program);
        command
    }
}
