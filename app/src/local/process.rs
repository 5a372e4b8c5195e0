//! Running the PostgreSQL programs: as which OS user, and how the server is stopped.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
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

/// A `postgres` server and its dead man's switch.
///
/// The switch is a `sh` process reading a pipe from us; each line we write is the pid of the
/// server it must stop, or empty while no server runs. When this process ends in any way —
/// including a crash, `SIGKILL`, or a test binary exiting with the server in a `static` that is
/// never dropped — the pipe closes, and the switch stops the last server it was told about and
/// deletes the directory. It stays armed while the server is stopped in place
/// ([`halt`](Self::halt)), so the directory is cleaned up whenever the server is down too. On an
/// orderly [`stop`](Self::stop) we disarm the switch first and stop the server ourselves.
pub struct ServerProcess {
    /// The server of the latest start (already reaped once it has been halted).
    server: Child,
    switch: Option<DeadMansSwitch>,
    dir: PathBuf,
}

/// How long a fast shutdown may take before the server is killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How often a stopping server is checked for having exited.
const EXIT_POLL: Duration = Duration::from_millis(20);

impl ServerProcess {
    /// Starts `command` (a configured `postgres` invocation) with the switch armed to stop it
    /// and remove `dir` if we die. The switch is armed before the server starts.
    pub fn spawn(command: Command, dir: &Path) -> Result<Self> {
        let mut switch = DeadMansSwitch::arm(dir)?;
        let server = start_watched(command, &mut switch)?;
        Ok(Self {
            server,
            switch: Some(switch),
            dir: dir.to_path_buf(),
        })
    }

    /// The process id of the latest server start.
    pub fn id(&self) -> u32 {
        self.server.id()
    }

    /// `Some(status)` once the latest server has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.server.try_wait().ok().flatten()
    }

    /// Stops the server and keeps its directory: a fast shutdown as in [`stop`](Self::stop),
    /// waited for without blocking the thread. The switch stays armed (with no server to
    /// stop), so the directory is still removed if this process dies before a
    /// [`restart`](Self::restart). Fails only if the switch can no longer be told.
    pub async fn halt(&mut self) -> Result<()> {
        if self.request_fast_shutdown() {
            let deadline = Instant::now() + SHUTDOWN_GRACE;
            while Instant::now() < deadline && self.exited().is_none() {
                tokio::time::sleep(EXIT_POLL).await;
            }
        }
        self.kill_now();
        match &mut self.switch {
            Some(switch) => switch.watch(None),
            None => Ok(()),
        }
    }

    /// Starts `command` in place of the server, which must have been [halted](Self::halt)
    /// (a running one is halted first), and points the switch at the new one (re-arming it if
    /// [`stop`](Self::stop) had disarmed it).
    pub async fn restart(&mut self, command: Command) -> Result<()> {
        if self.exited().is_none() {
            self.halt().await?;
        }
        let mut switch = match self.switch.take() {
            Some(switch) => switch,
            None => DeadMansSwitch::arm(&self.dir)?,
        };
        let started = start_watched(command, &mut switch);
        self.switch = Some(switch);
        self.server = started?;
        Ok(())
    }

    /// Stops the server: disarms the switch, asks for a fast shutdown (`SIGINT`: roll back open
    /// transactions, disconnect clients, exit), and kills it if it is not gone in 10 s.
    pub fn stop(&mut self) {
        if let Some(switch) = self.switch.take() {
            switch.disarm();
        }
        if self.request_fast_shutdown() {
            let deadline = Instant::now() + SHUTDOWN_GRACE;
            while Instant::now() < deadline && self.exited().is_none() {
                std::thread::sleep(EXIT_POLL);
            }
        }
        self.kill_now();
    }

    /// Sends `SIGINT` (PostgreSQL's fast shutdown) unless the server has exited; returns
    /// whether it was still running.
    fn request_fast_shutdown(&mut self) -> bool {
        if self.exited().is_some() {
            return false;
        }
        let pid = Pid::from_raw(i32::try_from(self.server.id()).unwrap_or(i32::MAX));
        let _ = kill(pid, Signal::SIGINT);
        true
    }

    /// Kills the server if it still runs, and reaps it.
    fn kill_now(&mut self) {
        if self.exited().is_none() {
            let _ = self.server.kill();
            let _ = self.server.wait();
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts `command` and tells `switch` its pid; if the switch cannot be told, the server is
/// killed again, so it never runs unguarded.
fn start_watched(mut command: Command, switch: &mut DeadMansSwitch) -> Result<Child> {
    let mut server = command
        .spawn()
        .map_err(Error::io("start the postgres server"))?;
    if let Err(error) = switch.watch(Some(server.id())) {
        let _ = server.kill();
        let _ = server.wait();
        return Err(error);
    }
    Ok(server)
}

/// The watcher process behind [`ServerProcess`]: on end of input it stops the last pid it was
/// given (`SIGINT`, then `SIGKILL` after 10 s) and removes the directory.
struct DeadMansSwitch {
    watcher: Child,
    pipe: ChildStdin,
}

impl DeadMansSwitch {
    const SCRIPT: &str = r#"pid=
        while IFS= read -r line; do pid=$line; done
        if [ -n "$pid" ]; then
            kill -INT "$pid" 2>/dev/null
            for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -KILL "$pid" 2>/dev/null
        fi
        rm -rf "$1""#;

    /// Starts the watcher for `dir`, with no server to stop yet.
    fn arm(dir: &Path) -> Result<Self> {
        let mut watcher = Command::new("sh")
            .arg("-c")
            .arg(Self::SCRIPT)
            .arg("dead-man-switch")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(Error::io("start the server's clean-up watcher"))?;
        match watcher.stdin.take() {
            Some(pipe) => Ok(Self { watcher, pipe }),
            None => {
                let _ = watcher.kill();
                let _ = watcher.wait();
                Err(Error::Io {
                    action: "connect to the server's clean-up watcher".to_owned(),
                    source: std::io::Error::other("no pipe to the watcher"),
                })
            }
        }
    }

    /// Tells the watcher which server to stop if we die (`None`: none is running).
    fn watch(&mut self, pid: Option<u32>) -> Result<()> {
        let line = pid.map(|pid| pid.to_string()).unwrap_or_default();
        writeln!(self.pipe, "{line}")
            .and_then(|()| self.pipe.flush())
            .map_err(Error::io("tell the server's clean-up watcher"))
    }

    /// Ends the watcher without letting it act (for an orderly stop).
    fn disarm(mut self) {
        let _ = self.watcher.kill();
        let _ = self.watcher.wait();
    }
}
