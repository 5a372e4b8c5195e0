//! The local server goes away with its files however its owner ends: dropped, panicking, asked
//! to stop with Ctrl-C, or killed outright.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::eventually_blocking;

use app::local::{LocalServer, ServerBinaries};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Whether `pid` is a live process (a zombie counts as gone).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Waits up to `limit` for the server process to end and its directory to disappear.
fn gone_within(pid: u32, dir: &Path, limit: Duration) {
    eventually_blocking(
        limit,
        &format!("server process {pid} to end and {} to go", dir.display()),
        || (!alive(pid) && !dir.exists()).then_some(()),
    );
}

#[tokio::test]
async fn dropping_the_server_stops_it_and_removes_its_directory() {
    let server = LocalServer::start().await.expect("start");
    let (pid, dir) = (server.pid(), server.dir().to_path_buf());
    assert!(alive(pid) && server.data_dir().exists());
    assert!(server.data_dir().starts_with(&dir));
    // Nobody else may list it or write in it (the server's OS user, when another, may only
    // pass through to its own part).
    let mode = std::fs::metadata(&dir)
        .expect("the directory")
        .permissions()
        .mode();
    assert_eq!(mode & 0o066, 0, "directory mode {mode:o}");
    drop(server);
    assert!(!alive(pid), "postgres {pid} still runs");
    assert!(!dir.exists(), "{} still exists", dir.display());
}

#[tokio::test]
async fn a_failing_test_still_stops_its_server() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let server = LocalServer::start().await.expect("start");
        tx.send((server.pid(), server.dir().to_path_buf()))
            .expect("send");
        panic!("a test failing while its server runs");
    });
    let (pid, dir) = rx.await.expect("the server started");
    assert!(task.await.expect_err("the task panicked").is_panic());
    gone_within(pid, &dir, Duration::from_secs(15));
}

/// Starts `app local`, waits for its banner and returns the child, the server's pid and dir.
fn start_app_local() -> (std::process::Child, u32, PathBuf) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_app"))
        .arg("local")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run app local");
    let stdout = child.stdout.take().expect("stdout");
    let banner = BufReader::new(stdout)
        .lines()
        .map(|line| line.expect("read stdout"))
        .find(|line| line.contains("files in "))
        .expect("the banner");
    let dir = PathBuf::from(
        banner
            .split("files in ")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .expect("the directory"),
    );
    let pid_file =
        std::fs::read_to_string(dir.join("server/data/postmaster.pid")).expect("pid file");
    let pid = pid_file
        .lines()
        .next()
        .and_then(|line| line.trim().parse().ok())
        .expect("postmaster pid");
    assert!(alive(pid));
    (child, pid, dir)
}

#[test]
fn ctrl_c_stops_app_local_and_its_server() {
    let (mut child, pid, dir) = start_app_local();
    let app = Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    kill(app, Signal::SIGINT).expect("send SIGINT");
    let status = child.wait().expect("wait");
    assert!(status.success(), "app local exited with {status}");
    gone_within(pid, &dir, Duration::from_secs(5));
}

#[test]
fn killing_app_local_outright_still_removes_its_server() {
    let (mut child, pid, dir) = start_app_local();
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");
    // No destructor ran: the dead man's switch does the work.
    gone_within(pid, &dir, Duration::from_secs(20));
}

#[test]
fn without_server_binaries_the_error_says_how_to_get_them() {
    let empty = tempfile::tempdir().expect("temp dir");
    let err = ServerBinaries::find_in(Some(empty.path().as_os_str()), empty.path())
        .expect_err("nothing to find");
    let message = err.to_string();
    for hint in [
        "apt-get install postgresql",
        "CLUSTER_ENDPOINT",
        "DATABASE_URL",
    ] {
        assert!(message.contains(hint), "{message}");
    }
}

/// The start-up phases `app local` announces on stderr at debug level (`start-up phase: …`),
/// in order; after the last comes the banner on stdout.
const PHASES: [&str; 5] = ["directory", "initdb", "server", "profile", "front door"];

/// A running `app local` whose stdout and stderr lines arrive on one channel; killed and
/// waited for when dropped, so that a failed assertion leaves no process behind.
struct Watched {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Watched {
    /// Starts `app local` with its start-up phases logged.
    fn start() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_app"))
            .arg("local")
            .env("RUST_LOG", "warn,app::local=debug")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run app local");
        let (tx, lines) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        for stream in [
            Box::new(stdout) as Box<dyn std::io::Read + Send>,
            Box::new(stderr),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        Self { child, lines }
    }

    /// Waits (60 s at most) for a line containing `marker` and returns it.
    fn wait_for(&self, marker: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(marker) => return line,
                Ok(_) => {}
                Err(error) => panic!("no line with {marker:?} from app local: {error}"),
            }
        }
    }

    /// Sends `signal` to `app local` and waits for it to end.
    fn signal(&mut self, signal: Signal) {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        kill(pid, signal).expect("send the signal");
        self.child.wait().expect("wait for app local");
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The live processes that run in `dir` or name it on their command line (postgres, its
/// backends, initdb, the watcher).
fn processes_using(dir: &Path) -> Vec<String> {
    let dir = dir.display().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            if pid == std::process::id() || !alive(pid) {
                return None;
            }
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let cwd = std::fs::read_link(entry.path().join("cwd"))
                .map(|cwd| cwd.display().to_string())
                .unwrap_or_default();
            (cmdline.contains(&dir) || cwd.starts_with(&dir)).then(|| format!("{pid}: {cmdline}"))
        })
        .collect()
}

/// Starts `app local`, sends `signal` once it reached `phase` (`None`: once it is ready),
/// and asserts that within 30 s no process and no file of it is left.
fn killed_at(phase: Option<&str>, signal: Signal) {
    let mut app = Watched::start();
    let first = app.wait_for("start-up phase: directory ");
    let dir = PathBuf::from(
        first
            .split("start-up phase: directory ")
            .nth(1)
            .expect("the directory")
            .trim(),
    );
    match phase {
        Some("directory") => {}
        Some(phase) => {
            app.wait_for(&format!("start-up phase: {phase}"));
        }
        None => {
            app.wait_for("Press Ctrl-C");
        }
    }
    app.signal(signal);
    eventually_blocking(
        Duration::from_secs(30),
        &format!(
            "{signal} at {phase:?} to leave nothing behind (directory {})",
            dir.display()
        ),
        || (processes_using(&dir).is_empty() && !dir.exists()).then_some(()),
    );
}

#[test]
fn sigkill_at_each_phase_of_start_up_and_after_leaves_nothing_behind() {
    for phase in PHASES.map(Some).into_iter().chain([None]) {
        killed_at(phase, Signal::SIGKILL);
    }
}

#[test]
fn sigterm_at_each_phase_of_start_up_and_after_stops_everything() {
    for phase in PHASES.map(Some).into_iter().chain([None]) {
        killed_at(phase, Signal::SIGTERM);
    }
}
