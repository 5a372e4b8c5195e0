//! The local server goes away with its files however its owner ends: dropped, panicking, asked
//! to stop with Ctrl-C, or killed outright.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
fn gone_within(pid: u32, dir: &Path, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if !alive(pid) && !dir.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[tokio::test]
async fn dropping_the_server_stops_it_and_removes_its_directory() {
    let server = LocalServer::start().await.expect("start");
    let (pid, dir) = (server.pid(), server.dir().to_path_buf());
    assert!(alive(pid) && dir.join("data").exists());
    // The Unix socket in it trusts every login, so nobody but the server's user may enter.
    let mode = std::fs::metadata(&dir)
        .expect("the directory")
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "directory mode {mode:o}");
    assert!(server.socket_path().starts_with(&dir));
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
    assert!(gone_within(pid, &dir, Duration::from_secs(15)));
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
    let pid_file = std::fs::read_to_string(dir.join("data/postmaster.pid")).expect("pid file");
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
    assert!(gone_within(pid, &dir, Duration::from_secs(5)));
}

#[test]
fn killing_app_local_outright_still_removes_its_server() {
    let (mut child, pid, dir) = start_app_local();
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");
    // No destructor ran: the dead man's switch does the work.
    assert!(gone_within(pid, &dir, Duration::from_secs(20)));
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
