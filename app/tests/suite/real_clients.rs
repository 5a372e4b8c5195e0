//! AWS's own Aurora DSQL clients against the stand-in, as against a cluster: the Sequelize
//! sample's stack (Sequelize 6, node-postgres, `@aws/aurora-dsql-node-postgres-connector`),
//! AWS's Python connector with psycopg, psycopg2 and asyncpg, and `psql` with a token from
//! boto3. The clients are the project's own small scripts under `tests/clients/`, with pinned
//! package versions installed once into the target directory (`npm ci`, a Python venv) and
//! reused while the pins are unchanged. Each client gets only the environment `app local`
//! prints ([`StandIn::client_environment`]) and a private hosts file that resolves the
//! stand-in's endpoint name to the loopback, as a developer's machine would with the line
//! `app local` prints.
#![cfg(feature = "front-door")]

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use app::local::front_door::conflicts::Conflict;
use app::local::stand_in::{StandIn, StandInOptions};
use common::hosts::PrivateHosts;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

/// DSQL's answer to a refused login (dsql-facts.md §3.5), whatever the reason.
const ACCESS_DENIED: &str = "FATAL:  unable to accept connection, access denied";
/// The longest a client run may take; a hang fails the test instead of stalling it.
const CLIENT_DEADLINE: Duration = Duration::from_secs(120);

/// The client scripts and their pinned package lists.
fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// The installed clients: a `node_modules` for the Node scripts and a venv's interpreter.
struct Installed {
    node_modules: PathBuf,
    python: PathBuf,
}

/// Installs the pinned clients once per test binary (and once per machine while the pins are
/// unchanged); panics naming the Debian package for a missing tool.
fn installed() -> &'static Installed {
    static INSTALLED: OnceLock<Installed> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        require_tool("node", &["--version"], "nodejs");
        require_tool("npm", &["--version"], "npm");
        require_tool("python3", &["-c", "import venv, ensurepip"], "python3-venv");
        let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("real-clients");
        let node = clients_dir().join("node");
        let node_dir = cached(&cache, "node", &[&node.join("package-lock.json")], |dir| {
            for file in ["package.json", "package-lock.json"] {
                std::fs::copy(node.join(file), dir.join(file)).expect("copy the npm manifest");
            }
            run_blocking(
                std::process::Command::new("npm")
                    .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                    .current_dir(dir),
                "npm ci",
            );
        });
        let requirements = clients_dir().join("python/requirements.txt");
        let venv = cached(&cache, "python", &[&requirements], |dir| {
            run_blocking(
                std::process::Command::new("python3")
                    .args(["-m", "venv"])
                    .arg(dir),
                "python3 -m venv",
            );
            run_blocking(
                std::process::Command::new(dir.join("bin/python"))
                    .args([
                        "-m",
                        "pip",
                        "install",
                        "--quiet",
                        "--disable-pip-version-check",
                    ])
                    .arg("--requirement")
                    .arg(&requirements),
                "pip install",
            );
        });
        Installed {
            node_modules: node_dir.join("node_modules"),
            python: venv.join("bin/python"),
        }
    })
}

/// Fails the test naming the Debian package when `tool` does not run.
fn require_tool(tool: &str, args: &[&str], package: &str) {
    let ran = std::process::Command::new(tool)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    assert!(
        ran.is_ok_and(|status| status.success()),
        "`{tool}` is missing or incomplete: install Debian's `{package}` \
         (apt-get install {package}) to run AWS's DSQL clients against the stand-in"
    );
}

/// A directory under `cache` named for `kind` and a digest of `pins`, made by `install` in a
/// scratch directory and renamed into place when it succeeds, so a failed or concurrent
/// install never leaves a half-made one behind.
fn cached(cache: &Path, kind: &str, pins: &[&Path], install: impl FnOnce(&Path)) -> PathBuf {
    let mut digest = Sha256::new();
    for pin in pins {
        digest.update(std::fs::read(pin).expect("read a pinned package list"));
    }
    let dir = cache.join(format!("{kind}-{}", &hex::encode(digest.finalize())[..16]));
    if dir.is_dir() {
        return dir;
    }
    let scratch = cache.join(format!("{kind}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).expect("a scratch directory for the install");
    install(&scratch);
    if std::fs::rename(&scratch, &dir).is_err() {
        // Another run installed the same pins first.
        assert!(
            dir.is_dir(),
            "could not move the install into {}",
            dir.display()
        );
        let _ = std::fs::remove_dir_all(&scratch);
    }
    dir
}

/// Runs an install step, failing the test with its output when it fails.
fn run_blocking(command: &mut std::process::Command, what: &str) {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    succeeded(&output, what);
}

/// A running stand-in with what a client needs to reach it.
struct Stand {
    stand_in: StandIn,
    environment: Vec<(&'static str, String)>,
    hosts: PrivateHosts,
}

/// The port the Sequelize sample reaches: it names none, and Sequelize's postgres dialect then
/// connects to PostgreSQL's default whatever the environment says.
const SEQUELIZE_PORT: u16 = 5432;

/// How long a test waits for [`SEQUELIZE_PORT`] to be free.
const PORT_DEADLINE: Duration = Duration::from_secs(10);

/// Held by a test while its stand-in listens on [`SEQUELIZE_PORT`].
static SEQUELIZE_PORT_IN_USE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl Stand {
    /// A stand-in on [`SEQUELIZE_PORT`], after the guard that keeps the binary's other tests
    /// off it (bind the guard first, so that it is dropped after the stand-in). The port of a
    /// stand-in just dropped may take a moment to be free again: a taken port is retried until
    /// [`PORT_DEADLINE`], then the test fails naming it.
    async fn on_sequelizes_port() -> (tokio::sync::MutexGuard<'static, ()>, Self) {
        let guard = SEQUELIZE_PORT_IN_USE.lock().await;
        let options = StandInOptions {
            port: SEQUELIZE_PORT,
            ..StandInOptions::default()
        };
        let stand_in = common::eventually(
            PORT_DEADLINE,
            "port 5432, where the Sequelize sample connects, to be free (stop what listens there)",
            || async {
                match StandIn::start_with(&options).await {
                    Err(app::local::Error::PortTaken { .. }) => None,
                    started => Some(started.expect("start the stand-in on 5432")),
                }
            },
        )
        .await;
        (guard, Self::reached(stand_in))
    }

    /// A stand-in on any free port.
    async fn start() -> Self {
        Self::reached(StandIn::start().await.expect("start the stand-in"))
    }

    /// `stand_in` with the settings `app local` would print for it.
    fn reached(stand_in: StandIn) -> Self {
        let credentials = stand_in
            .write_credentials_file()
            .expect("write the credentials file");
        let bundle = stand_in.write_trust_bundle().expect("write the CA bundle");
        let environment = stand_in.client_environment(&credentials, &bundle.path);
        Self {
            stand_in,
            environment,
            hosts: PrivateHosts::new(),
        }
    }

    /// The value of one of the printed settings.
    fn setting(&self, name: &str) -> &str {
        self.environment
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("`app local` prints no {name}"))
    }

    /// `program args…` with only the printed settings as AWS and PostgreSQL configuration,
    /// seeing a hosts file that maps the endpoint name to the loopback ([`PrivateHosts`]).
    fn command(&self, program: &Path, args: &[&str]) -> Command {
        let mut command = Command::from(self.hosts.command(program));
        command
            .args(args)
            .envs(self.environment.iter().map(|(n, v)| (n, v)))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .kill_on_drop(true)
            .stdin(Stdio::null());
        for name in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_CONFIG_FILE",
            "PGHOST",
            "PGPORT",
            "PGUSER",
            "PGPASSWORD",
            "PGSSLMODE",
        ] {
            command.env_remove(name);
        }
        command
    }

    /// A Node script of `tests/clients/node` as `user`.
    fn node(&self, user: &str, args: &[&str]) -> Command {
        let script = clients_dir().join("node/sequelize_sample.js");
        let mut all = vec![script.to_str().expect("a UTF-8 path")];
        all.extend_from_slice(args);
        let mut command = self.command(Path::new("node"), &all);
        command
            .env("NODE_PATH", &installed().node_modules)
            .env("CLUSTER_USER", user);
        command
    }

    /// The Python script of `tests/clients/python` in the venv.
    fn python(&self, args: &[&str]) -> Command {
        let script = clients_dir().join("python/dsql_clients.py");
        let mut all = vec![script.to_str().expect("a UTF-8 path")];
        all.extend_from_slice(args);
        self.command(&installed().python, &all)
    }

    /// A boto3 token (`dsql_clients.py token` with `args`).
    async fn token(&self, args: &[&str]) -> String {
        let mut all = vec!["token"];
        all.extend_from_slice(args);
        let output = finished(self.python(&all)).await;
        succeeded(&output, "boto3's token");
        String::from_utf8(output.stdout)
            .expect("a UTF-8 token")
            .trim()
            .to_owned()
    }

    /// `psql` as `user` with `token` and `sslmode`, running `sql`.
    async fn psql(&self, user: &str, token: &str, sslmode: &str, sql: &str) -> Output {
        let conninfo = format!(
            "host={} port={} user={user} dbname=postgres sslmode={sslmode}",
            self.setting("CLUSTER_ENDPOINT"),
            self.setting("CLUSTER_PORT"),
        );
        let mut command = self.command(Path::new("psql"), &[&conninfo, "-XAtc", sql]);
        command.env("PGPASSWORD", token);
        finished(command).await
    }
}

/// What `command` printed and how it ended, within [`CLIENT_DEADLINE`].
async fn finished(mut command: Command) -> Output {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the client");
    tokio::time::timeout(CLIENT_DEADLINE, child.wait_with_output())
        .await
        .expect("the client finishes in time")
        .expect("the client's output")
}

/// Panics with the client's output unless it succeeded.
fn succeeded(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sequelize_sample_runs_as_admin_in_public_and_as_a_user_in_myschema() {
    let (_port, stand) = Stand::on_sequelizes_port().await;
    let admin = finished(stand.node("admin", &[])).await;
    succeeded(&admin, "the Sequelize sample as admin");
    assert!(
        stdout(&admin).contains("sample: ok\n"),
        "{}",
        stdout(&admin)
    );
    assert!(stdout(&admin).contains("retry example: ok\n"));

    app::users::onboard_local(stand.stand_in.server(), app::local::DATABASE, "sampleuser")
        .await
        .expect("onboard a user");
    let user = finished(stand.node("sampleuser", &[])).await;
    succeeded(&user, "the Sequelize sample as an onboarded user");
    assert!(stdout(&user).contains("sample: ok\n"), "{}", stdout(&user));
    assert!(stdout(&user).contains("retry example: ok\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_samples_retry_wrapper_retries_a_forced_oc000_and_oc001_once() {
    let (_port, stand) = Stand::on_sequelizes_port().await;
    let failures = stand.stand_in.commit_failures();
    for conflict in [Conflict::Data, Conflict::Schema] {
        let mut child = stand
            .node("admin", &["retry"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the retry client");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut printed = Vec::new();
        let pid = tokio::time::timeout(CLIENT_DEADLINE, async {
            while let Some(line) = lines.next_line().await.expect("read the client") {
                if let Some(pid) = line.strip_prefix("pid ") {
                    return pid.parse::<u32>().expect("a pid");
                }
                printed.push(line);
            }
            panic!("the client ended before printing its pid: {printed:?}");
        })
        .await
        .expect("the client prints its pid in time");
        failures.fail_next_commit(pid, conflict);
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(b"go\n")
            .await
            .expect("tell the client to go on");
        drop(stdin);
        while let Some(line) = tokio::time::timeout(CLIENT_DEADLINE, lines.next_line())
            .await
            .expect("the client finishes in time")
            .expect("read the client")
        {
            printed.push(line);
        }
        let status = child.wait().await.expect("the client's status");
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            tokio::io::AsyncReadExt::read_to_string(&mut pipe, &mut stderr)
                .await
                .expect("read stderr");
        }
        assert!(status.success(), "{conflict:?}: {printed:?}\n{stderr}");
        let retries = printed
            .iter()
            .filter(|l| l.ends_with("executing retry"))
            .count();
        assert_eq!(retries + 1, 2, "{conflict:?}: two attempts: {printed:?}");
        assert!(
            printed.iter().any(|l| l == "updated 1"),
            "{conflict:?}: one increment: {printed:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_python_connector_works_with_psycopg_psycopg2_and_asyncpg() {
    let stand = Stand::start().await;
    let output = finished(stand.python(&["connectors"])).await;
    succeeded(&output, "AWS's Python connector");
    let lines: Vec<String> = stdout(&output).lines().map(str::to_owned).collect();
    let mut expected = Vec::new();
    for driver in ["psycopg", "psycopg2", "asyncpg"] {
        for form in ["endpoint", "cluster-id", "direct-tls"] {
            expected.push(format!("{driver} {form}: ok"));
        }
    }
    assert_eq!(lines, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_logs_in_with_a_boto3_token_and_bad_logins_are_refused_as_dsql_refuses_them() {
    let stand = Stand::start().await;
    let good = stand.token(&[]).await;
    let admin = stand
        .psql(
            "admin",
            &good,
            "verify-full",
            "CREATE ROLE unmapped WITH LOGIN",
        )
        .await;
    succeeded(&admin, "psql with a boto3 admin token");
    let whoami = stand
        .psql("admin", &good, "verify-full", "SELECT current_user")
        .await;
    succeeded(&whoami, "psql with a boto3 admin token");
    assert_eq!(stdout(&whoami), "admin\n");

    let credentials = std::fs::read_to_string(stand.setting("AWS_SHARED_CREDENTIALS_FILE"))
        .expect("the credentials file");
    let key = credentials
        .lines()
        .find_map(|l| l.strip_prefix("aws_access_key_id = "))
        .expect("an access key");
    let other_host = "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws";
    let cases: [(&str, Vec<&str>, &str); 6] = [
        (
            "a wrong secret",
            vec!["--access-key", key, "--secret", "wrong"],
            "admin",
        ),
        (
            "an unknown key",
            vec!["--access-key", "AKIDUNKNOWN000000000", "--secret", "s"],
            "admin",
        ),
        (
            "a token for another host",
            vec!["--host", other_host],
            "admin",
        ),
        (
            "a token for another Region",
            vec!["--region", "us-west-2"],
            "admin",
        ),
        ("DbConnect for admin", vec!["--action", "user"], "admin"),
        ("an unmapped role", vec!["--action", "user"], "unmapped"),
    ];
    for (case, args, user) in cases {
        let token = stand.token(&args).await;
        let refused = stand.psql(user, &token, "verify-full", "SELECT 1").await;
        assert_eq!(refused.status.code(), Some(2), "{case}: {refused:?}");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains(ACCESS_DENIED), "{case}: {stderr}");
    }

    // No TLS: refused before the token is even asked for.
    let plain = stand.psql("admin", &good, "disable", "SELECT 1").await;
    assert_eq!(plain.status.code(), Some(2), "{plain:?}");
    let stderr = String::from_utf8_lossy(&plain.stderr);
    assert!(stderr.contains("FATAL:"), "{stderr}");
    assert!(!stdout(&plain).contains('1'), "no query ran without TLS");
}
