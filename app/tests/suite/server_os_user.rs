//! When the app runs as root, the server runs as the `postgres` OS user — and whatever runs as
//! that user (a `COPY … FROM PROGRAM`, another cluster's server) is an attacker here: it must
//! neither log in to the stand-in's server as its superuser or as `admin`, nor change a file
//! that root reads later as trusted input (the AWS credentials file whose profile `app token`
//! reads, the CA certificate clients trust, the password file).
//!
//! Each test runs the attack as the real `postgres` OS user (`runuser`) against a real
//! stand-in. They need root, as CI has it: run as another user they fail and say so.
#![cfg(feature = "front-door")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use app::local::stand_in::StandIn;
use nix::unistd::Uid;

/// The OS user the server runs as when the app is root.
const SERVER_OS_USER: &str = "postgres";

/// Fails the test unless it runs as root: only then does the server run as another OS user.
fn require_root() {
    assert!(
        Uid::effective().is_root(),
        "this attack needs root (the server then runs as `postgres`): run the tests as root, as CI does"
    );
}

/// Runs `program` with `args` as the server's OS user and returns what it did.
fn as_server_user(program: &str, args: &[&str]) -> Output {
    Command::new("runuser")
        .args(["-u", SERVER_OS_USER, "--", program])
        .args(args)
        .env_remove("PGPASSWORD")
        .env_remove("PGPASSFILE")
        .output()
        .expect("run runuser")
}

/// Every file named `name` under `dir`.
fn find_all(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                pending.push(path);
            } else if entry.file_name().to_str().is_some_and(|n| n == name) {
                found.push(path);
            }
        }
    }
    found
}

/// The server's data directory: where its `postmaster.pid` is.
fn data_dir(stand_in: &StandIn) -> PathBuf {
    let pid_files = find_all(stand_in.server().dir(), "postmaster.pid");
    let pid_file = pid_files.first().expect("the server's postmaster.pid");
    pid_file.parent().expect("its directory").to_path_buf()
}

/// The Unix socket directories a login could try: the one the server announces in
/// `postmaster.pid` (if any), the directory of every socket file under the stand-in's
/// directory, and the stand-in's directory itself (where the socket used to be).
fn socket_dirs(stand_in: &StandIn) -> Vec<PathBuf> {
    let pid_file = std::fs::read_to_string(data_dir(stand_in).join("postmaster.pid"))
        .expect("read postmaster.pid");
    let mut dirs: Vec<PathBuf> = pid_file
        .lines()
        .nth(4)
        .filter(|line| !line.trim().is_empty())
        .map(|line| PathBuf::from(line.trim()))
        .into_iter()
        .collect();
    let socket = format!(".s.PGSQL.{}", stand_in.server().port());
    dirs.extend(
        find_all(stand_in.server().dir(), &socket)
            .iter()
            .filter_map(|path| path.parent().map(Path::to_path_buf)),
    );
    dirs.push(stand_in.server().dir().to_path_buf());
    dirs.dedup();
    dirs
}

/// Tries `SELECT 1` with psql as the server's OS user, as `user`, on `host` (a socket
/// directory or an address), without a password prompt; returns what psql did.
fn login_as_server_user(host: &Path, port: u16, user: &str) -> Output {
    as_server_user(
        "psql",
        &[
            "-w",
            "-X",
            "-h",
            &host.display().to_string(),
            "-p",
            &port.to_string(),
            "-U",
            user,
            "-d",
            "postgres",
            "-tAc",
            "SELECT 1",
        ],
    )
}

/// Asserts that no login as the superuser or `admin` gets in, over any Unix socket or TCP.
fn assert_no_login(stand_in: &StandIn) {
    let port = stand_in.server().port();
    let mut hosts = socket_dirs(stand_in);
    hosts.push(PathBuf::from("127.0.0.1"));
    for host in &hosts {
        for user in ["postgres", "admin"] {
            let login = login_as_server_user(host, port, user);
            // psql's status 2: it ran, and the connection failed (not runuser failing).
            assert_eq!(
                login.status.code(),
                Some(2),
                "the server's OS user as {user} via {}: {}{}",
                host.display(),
                String::from_utf8_lossy(&login.stdout),
                String::from_utf8_lossy(&login.stderr)
            );
        }
    }
}

#[tokio::test]
async fn the_servers_os_user_cannot_log_in_as_the_superuser_or_admin() {
    require_root();
    let stand_in = StandIn::start().await.expect("start the stand-in");
    assert_no_login(&stand_in);
}

/// The server's OS user rewrites every `pg_hba.conf` it can write and points `hba_file` at
/// one of its own in `postgresql.auto.conf`, makes the server reload (SIGHUP, as its owner
/// may), waits until the server says it reloaded, and tries again.
#[tokio::test]
async fn the_servers_os_user_cannot_trust_itself_in_by_rewriting_the_server_configuration() {
    require_root();
    let stand_in = StandIn::start().await.expect("start the stand-in");
    let data = data_dir(&stand_in);
    let trust = "local all all trust\nhost all all 127.0.0.1/32 trust\n";
    let own_hba = "/tmp/dsql-local-attack-hba.conf";
    let script = format!(
        "printf '{trust}' > {own_hba}; \
         for f in {data}/pg_hba.conf $(find {stand_in} -name pg_hba.conf 2>/dev/null); do \
             printf '{trust}' > \"$f\"; done; \
         printf \"hba_file = '{own_hba}'\\n\" >> {data}/postgresql.auto.conf; \
         kill -HUP $(head -1 {data}/postmaster.pid)",
        stand_in = stand_in.server().dir().display(),
        data = data.display(),
    );
    let attack = as_server_user("sh", &["-c", &script]);
    assert!(
        attack.status.success(),
        "the reload was not requested: {}",
        String::from_utf8_lossy(&attack.stderr)
    );
    let logs = find_all(stand_in.server().dir(), "server.log");
    let log = logs.first().expect("the server log");
    crate::common::eventually(Duration::from_secs(20), "the server to reload", || async {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .contains("received SIGHUP, reloading configuration files")
            .then_some(())
    })
    .await;
    assert_no_login(&stand_in);
    let _ = std::fs::remove_file(own_hba);
}

/// The server's OS user appends a `credential_process` profile to each file root trusts
/// later, and failing that removes the file and writes its own in its place.
#[tokio::test]
async fn the_servers_os_user_cannot_change_the_files_root_trusts() {
    require_root();
    let stand_in = StandIn::start().await.expect("start the stand-in");
    let files = [
        stand_in
            .write_credentials_file()
            .expect("the credentials file"),
        stand_in.ca_path().to_path_buf(),
        stand_in.server().write_pgpass().expect("the password file"),
    ];
    let hostile = "[profile dsql-local]\\ncredential_process = id\\n";
    let script = format!(
        "printf '{hostile}' >> \"$1\" 2>/dev/null && exit 0; \
         rm -f \"$1\" 2>/dev/null; printf '{hostile}' > \"$1\" 2>/dev/null && exit 0; exit 1"
    );
    for file in &files {
        let before = std::fs::read(file).expect("read the file as root");
        let attack = as_server_user(
            "sh",
            &["-c", &script, "attack", &file.display().to_string()],
        );
        let after = std::fs::read(file).unwrap_or_default();
        assert!(
            !attack.status.success() && after == before,
            "the server's OS user changed {}",
            file.display()
        );
    }
}
