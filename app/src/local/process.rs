//! Running the PostgreSQL programs: as which OS user, and how the server is stopped.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::{Gid, Pid, Uid, User};

use crate::error::{Error, Result};

/// The OS user the server programs run as: this process's own user, or `postgres` when this
/// process is root (initdb and postgres refuse to run as root).
#[derive(Clone, Copy, Debug)]
pub struct ServerUser {
    run_as: Option<(Uid, Gid)>,
}

impl ServerUser {
    /// Decides the user for this process.
    pub fn for_this_process() -> Result<Self> {
        if !Uid::effective().is_root() {
            return Ok(Self { run_as: None });
        }
        let user = User::from_name("postgres")
            .ok()
            .flatten()
            .ok_or(Error::NoUnprivilegedUser)?;
        Ok(Self {
            run_as: Some((user.uid, user.gid)),
        })
    }

    /// Makes `path` belong to the server's user (a no-op unless running as root).
    pub fn own(&self, path: &Path) -> Result<()> {
        if let Some((uid, gid)) = self.run_as {
            nix::unistd::chown(path, Some(uid), Some(gid)).map_err(|errno| Error::Io {
                action: format!("give {} to the postgres user", path.display()),
                source: errno.into(),
            })?;
        }
        Ok(())
    }

    /// A command for `program` that will run as the server's user, with its own process group
    /// (so a Ctrl-C in the terminal reaches us, and we stop the server in order).
    pub fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        if let Some((uid, gid)) = self.run_as {
            command.uid(uid.as_raw()).gid(gid.as_raw());
        }
        command.process_group(0).stdin(Stdio::null());
        command
    }
}

/// A running `postgres` server and its dead man's switch.
///
/// The switch is a `sh` process reading a pipe from us. When this process ends in any way —
/// including a crash, `SIGKILL`, or a test binary exiting with the server in a `static` that is
/// never dropped — the pipe closes, and the switch stops the server and deletes its directory.
/// On an orderly stop we disarm the switch first and stop the server ourselves.
pub struct ServerProcess {
    server: Child,
    switch: Option<(Child, ChildStdin)>,
}

impl ServerProcess {
    /// Starts `command` (a configured `postgres` invocation) and arms the switch to remove
    /// `dir` if we die.
    pub fn spawn(mut command: Command, dir: &Path) -> Result<Self> {
        let server = command
            .spawn()
            .map_err(Error::io("start the postgres server"))?;
        let mut switch = Command::new("sh")
            .arg("-c")
            .arg(
                r#"cat >/dev/null; kill -INT "$1" 2>/dev/null
                   for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
                   kill -KILL "$1" 2>/dev/null; rm -rf "$2""#,
            )
            .arg("dead-man-switch")
            .arg(server.id().to_string())
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(Error::io("start the server's clean-up watcher"))?;
        let pipe = switch.stdin.take();
        Ok(Self {
            server,
            switch: pipe.map(|pipe| (switch, pipe)),
        })
    }

    /// The server's process id.
    pub fn id(&self) -> u32 {
        self.server.id()
    }

    /// `Some(status)` once the server has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.server.try_wait().ok().flatten()
    }

    /// Stops the server: disarms the switch, asks for a fast shutdown (`SIGINT`: roll back open
    /// transactions, disconnect clients, exit), and kills it if it is not gone in 10 s.
    pub fn stop(&mut self) {
        if let Some((mut switch, mut pipe)) = self.switch.take() {
            let _ = switch.kill();
            let _ = switch.wait();
            let _ = pipe.flush();
        }
        if self.exited().is_some() {
            return;
        }
        let pid = Pid::from_raw(i32::try_from(self.server.id()).unwrap_or(i32::MAX));
        let _ = kill(pid, Signal::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}
