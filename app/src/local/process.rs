//! Running the PostgreSQL programs: as which OS user, and how the server is stopped.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::{Gid, Pid, Uid, User};

use crate::local::error::{Error, Result};

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

    /// Whether the server programs run as another OS user than this process (which is root).
    pub fn is_another_user(&self) -> bool {
        self.run_as.is_some()
    }

    /// Makes `path` belong to the server's user (a no-op unless running as root). Only for a
    /// path in a directory the server's user cannot write, where it cannot have been swapped
    /// for a link to another file.
    pub fn own(&self, path: &Path) -> Result<()> {
        if let Some((uid, gid)) = self.run_as {
            nix::unistd::chown(path, Some(uid), Some(gid)).map_err(|errno| Error::Io {
                action: format!("give {} to the postgres user", path.display()),
                source: errno.into(),
            })?;
        }
        Ok(())
    }

    /// Makes the open `file` belong to the server's user (a no-op unless running as root).
    pub fn own_file(&self, file: &std::fs::File) -> Result<()> {
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::fchown(file, Some(uid.as_raw()), Some(gid.as_raw()))
                .map_err(Error::io("give a file to the postgres user"))?;
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

/// The server's programs (initdb, then `postgres`) and their dead man's switch.
///
/// The switch is a `sh` process reading a pipe from us; each line we write is the pid of the
/// program it must stop (a process-group leader: its whole group is stopped), or empty while
/// none runs. It is armed before the directory it guards exists ([`arm`](Self::arm)), so from
/// the first file on, whenever this process ends — including a crash, `SIGKILL`, or a test
/// binary exiting with the server in a `static` that is never dropped — the pipe closes, and
/// the switch stops the last program it was told about and deletes the directory. It stays
/// armed while the server is stopped in place ([`halt`](Self::halt)), so the directory is
/// cleaned up whenever the server is down too. On an orderly [`stop`](Self::stop) (and on
/// drop) we disarm the switch first and stop the program ourselves.
pub struct ServerProcess {
    /// The program of the latest start: initdb while the data directory is made, then the
    /// server (already reaped once it has been halted); `None` before the first.
    running: Option<Child>,
    switch: Option<DeadMansSwitch>,
    dir: PathBuf,
}

/// How long a fast shutdown may take before the server is killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How often a stopping server is checked for having exited.
const EXIT_POLL: Duration = Duration::from_millis(20);

impl ServerProcess {
    /// Arms the switch for `dir`, which should not exist yet: create it only once this
    /// returned, so that nothing is ever written there unguarded.
    pub fn arm(dir: &Path) -> Result<Self> {
        Ok(Self {
            running: None,
            switch: Some(DeadMansSwitch::arm(dir)?),
            dir: dir.to_path_buf(),
        })
    }

    /// Runs `command` (initdb) to its end under the switch and returns its exit status. If
    /// this future is dropped first, the program is still stopped: by [`stop`](Self::stop) or
    /// dropping this value, or by the switch if this process dies.
    pub async fn run(&mut self, command: Command) -> Result<ExitStatus> {
        self.start(command)?;
        loop {
            if let Some(status) = self.exited() {
                self.running = None;
                if let Some(switch) = &mut self.switch {
                    switch.watch(None)?;
                }
                return Ok(status);
            }
            tokio::time::sleep(EXIT_POLL).await;
        }
    }

    /// Starts `command` (a configured `postgres` invocation) under the switch, stopping the
    /// program that ran before, if any.
    pub fn start(&mut self, command: Command) -> Result<()> {
        self.kill_now();
        let switch = match &mut self.switch {
            Some(switch) => switch,
            None => self.switch.insert(DeadMansSwitch::arm(&self.dir)?),
        };
        self.running = Some(start_watched(command, switch)?);
        Ok(())
    }

    /// The process id of the latest start (0 before the first).
    pub fn id(&self) -> u32 {
        self.running.as_ref().map_or(0, Child::id)
    }

    /// `Some(status)` once the latest program has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.running.as_mut()?.try_wait().ok().flatten()
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
        self.start(command)
    }

    /// Stops the program: disarms the switch, asks for a fast shutdown (`SIGINT`: the server
    /// rolls back open transactions, disconnects clients and exits; initdb removes what it
    /// made), and kills its process group if it is not gone in 10 s.
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

    /// Sends `SIGINT` (PostgreSQL's fast shutdown) unless the program has exited; returns
    /// whether it was still running.
    fn request_fast_shutdown(&mut self) -> bool {
        if self.running.is_none() || self.exited().is_some() {
            return false;
        }
        let _ = kill(self.pid(), Signal::SIGINT);
        true
    }

    /// Kills the program's process group (its children too) and reaps the program, unless
    /// it has exited.
    fn kill_now(&mut self) {
        let group = self.pid();
        if self.exited().is_none()
            && let Some(child) = &mut self.running
        {
            let _ = killpg(group, Signal::SIGKILL);
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The latest program's pid (also its process group).
    fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.id()).unwrap_or(i32::MAX))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts `command` and tells `switch` its pid; if the switch cannot be told, the program is
/// killed again, so it never runs unguarded.
fn start_watched(mut command: Command, switch: &mut DeadMansSwitch) -> Result<Child> {
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = command
        .spawn()
        .map_err(Error::io(format!("start {program}")))?;
    if let Err(error) = switch.watch(Some(child.id())) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(error);
    }
    Ok(child)
}

/// The watcher process behind [`ServerProcess`]: on end of input it stops the process group
/// of the last pid it was given (`SIGINT`, then `SIGKILL` after 10 s) and removes the
/// directory.
struct DeadMansSwitch {
    watcher: Child,
    pipe: ChildStdin,
}

impl DeadMansSwitch {
    const SCRIPT: &str = r#"pid=
        while IFS= read -r line; do pid=$line; done
        if [ -n "$pid" ]; then
            kill -INT -"$pid" 2>/dev/null
            for _ in $(seq 100); do kill -0 -"$pid" 2>/dev/null || break; sleep 0.1; done
            kill -KILL -"$pid" 2>/dev/null
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
