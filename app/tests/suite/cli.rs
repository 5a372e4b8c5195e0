//! The `app` binary as a user meets it: help, configuration errors, the token command, and the
//! demo against the local stand-in, as admin and as another user.

use crate::common;

use migration::{Migrator, MigratorTrait};
use std::process::{Command, Output};

/// Runs `app` with `args`, a clean environment (no AWS or database variables from the caller)
/// plus `env`, from a directory without a `.env` file.
fn app(args: &[&str], env: &[(&str, &str)]) -> Output {
    let empty = tempfile::tempdir().expect("temp dir");
    let mut command = Command::new(env!("CARGO_BIN_EXE_app"));
    command.args(args).current_dir(empty.path()).env_clear();
    for var in ["PATH", "HOME", "TMPDIR"] {
        if let Some(value) = std::env::var_os(var) {
            command.env(var, value);
        }
    }
    command.env("RUST_LOG", "warn").envs(env.iter().copied());
    command.output().expect("run app")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn help_lists_every_command() {
    let output = app(&["--help"], &[]);
    assert!(output.status.success());
    for command in ["demo", "migrate", "user", "token", "url", "local", "bench"] {
        assert!(
            stdout(&output).contains(command),
            "{command} missing from --help"
        );
    }
}

#[test]
fn a_bad_setting_fails_before_connecting_and_names_the_variable() {
    let output = app(&["demo"], &[("CLUSTER_PORT", "fifty")]);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("CLUSTER_PORT"), "{message}");
    assert!(!message.contains("Connected"), "{message}");
}

/// The setting that used to abort the app with a 192 GB allocation: refused before anything
/// starts, naming the variable and DSQL's per-cluster connection limit.
#[test]
fn a_pool_larger_than_dsqls_connection_limit_is_refused_before_connecting() {
    let output = app(&["demo"], &[("POOL_MAX_CONNECTIONS", "4000000000")]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(message.contains("POOL_MAX_CONNECTIONS"), "{message}");
    assert!(message.contains("10000"), "{message}");
    assert!(
        !stdout(&output).contains("Connected"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn token_prints_a_well_formed_admin_token_with_fake_credentials() {
    let host = "abcdefghijklmnopqrstuvwxyz.dsql.eu-west-1.on.aws";
    let output = app(
        &["token"],
        &[
            ("CLUSTER_ENDPOINT", host),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "fake-secret-key"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let token = stdout(&output);
    let token = token.trim();
    // A SigV4 presigned URL without its scheme (the format of
    // `aws dsql generate-db-connect-admin-auth-token`).
    assert!(
        token.starts_with(&format!("{host}/?Action=DbConnectAdmin&")),
        "{token}"
    );
    for part in [
        "X-Amz-Algorithm=AWS4-HMAC-SHA256",
        "X-Amz-Credential=AKIDEXAMPLE%2F",
        "%2Feu-west-1%2Fdsql%2Faws4_request",
        "X-Amz-Expires=900",
        "X-Amz-SignedHeaders=host",
        "X-Amz-Signature=",
    ] {
        assert!(token.contains(part), "{part} missing from {token}");
    }
    assert!(
        !stderr(&output).contains("X-Amz-Signature"),
        "the token was logged"
    );
}

#[test]
fn token_for_a_non_admin_user_asks_for_db_connect() {
    let output = app(
        &["token"],
        &[
            ("CLUSTER_ENDPOINT", "abcdefghijklmnopqrstuvwxyz"),
            ("AWS_REGION", "us-east-2"),
            ("CLUSTER_USER", "clinic_app"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "fake-secret-key"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output)
            .starts_with("abcdefghijklmnopqrstuvwxyz.dsql.us-east-2.on.aws/?Action=DbConnect&"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn the_demo_runs_on_the_local_stand_in_as_admin_and_as_another_user() {
    for (user, schema) in [("admin", "public"), ("clinic_cli_user", "myschema")] {
        let output = app(&["demo"], &[("CLUSTER_USER", user)]);
        assert!(output.status.success(), "{user}: {}", stderr(&output));
        let printed = stdout(&output);
        assert!(
            printed.contains(&format!("as {user} (schema {schema})")),
            "{printed}"
        );
        assert!(printed.contains("Deleted all 12 rows"), "{printed}");
    }
}

#[test]
fn url_without_a_running_database_says_what_to_start() {
    let unset = app(&["url"], &[]);
    let free_port = common::free_port().to_string();
    let nobody = app(
        &["url"],
        &[
            ("CLUSTER_ENDPOINT", "localhost"),
            ("CLUSTER_PORT", &free_port),
            ("AWS_REGION", "us-east-1"),
        ],
    );
    for output in [unset, nobody] {
        assert!(!output.status.success());
        assert_eq!(stdout(&output), "", "nothing to pass on as DATABASE_URL");
        assert!(
            stderr(&output).contains("cargo run -p app -- local"),
            "{}",
            stderr(&output)
        );
    }
}

/// A first run with no `RUST_LOG`: the demo on stdout, and on stderr one line to say the
/// stand-in is starting and one per migration applied — no server NOTICEs, no per-statement
/// lines, no warnings for retries that succeeded (the stand-in's OC001 after DDL causes some).
#[test]
fn a_first_run_is_quiet_by_default() {
    let output = app(&["demo"], &[("RUST_LOG", "")]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("Deleted all 12 rows"));
    let logged = stderr(&output);
    let applied = logged
        .lines()
        .filter(|line| line.contains("has been applied"))
        .count();
    assert_eq!(applied, Migrator::migrations().len(), "{logged}");
    for noise in ["NOTICE", "notice", "WARN", "retrying", "CREATE", "ALTER"] {
        assert!(
            !logged.contains(noise),
            "{noise:?} in the default output:\n{logged}"
        );
    }
    assert!(logged.lines().count() <= applied + 3, "{logged}");
}

#[test]
fn migrate_status_lists_every_migration() {
    let output = app(&["migrate", "status"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let printed = stdout(&output);
    let listed = printed.lines().filter(|l| l.contains("m2026")).count();
    assert_eq!(listed, Migrator::migrations().len(), "{printed}");
}

/// The benchmark as a smoke test, tiny sizes: every workload reports, SeaORM against raw sqlx
/// where both exist (with the stand-in's latency model off and on), the front door against the
/// direct path (or says it is skipped, built without it), the app against the seed's stack or a
/// line saying why the seed was skipped, and the outcomes that must hold whatever the speed
/// hold: every contention increment lands exactly once, one IAM token is signed for the whole
/// run, however many connections open, and each operation's round trips are counted at the
/// front door, never fewer than the fewest its guarantees allow. Speeds are not asserted.
#[test]
fn bench_json_reports_every_workload_and_exactly_once_increments() {
    let output = app(
        &[
            "bench",
            "--iterations",
            "20",
            "--modelled-iterations",
            "3",
            "--json",
        ],
        &[],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let reports: Vec<serde_json::Value> = stdout(&output)
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    let workloads: Vec<&str> = reports
        .iter()
        .map(|r| r["workload"].as_str().expect("a workload name"))
        .collect();
    assert_eq!(
        workloads,
        [
            "clinic",
            "ops",
            "bulk",
            "contention",
            "front-door",
            "tokens"
        ]
    );
    let lines = |workload: usize| reports[workload]["lines"].as_array().expect("lines");
    let named = |workload: usize, name: &str| {
        lines(workload)
            .iter()
            .find(|line| line["name"] == name)
            .unwrap_or_else(|| panic!("no line {name:?} in {}", reports[workload]))
    };
    let front_door = cfg!(feature = "front-door");
    let ops = [
        "get by PK",
        "insert",
        "upsert",
        "find-or-create (existing)",
        "find-or-create (new)",
        "create both pets",
        "owner + pets load",
    ];
    // clinic at C = 1 and 8; seven ops; one bulk line: each with both sides and a ratio, and,
    // on the stand-in, the same with the latency model on.
    let mut compared: Vec<(usize, String)> = ["C=1", "C=8"]
        .into_iter()
        .map(|name| (0, name.to_owned()))
        .chain(ops.iter().map(|name| (1, (*name).to_owned())))
        .collect();
    if front_door {
        let modelled: Vec<(usize, String)> = compared
            .iter()
            .map(|(w, name)| (*w, format!("{name}, DSQL latency")))
            .collect();
        compared.extend(modelled);
    } else {
        for workload in [0, 1] {
            let note = named(workload, "DSQL latency model")["note"].as_str();
            assert!(note.is_some_and(|n| n.starts_with("skipped")), "{note:?}");
        }
    }
    compared.push((2, lines(2)[0]["name"].as_str().expect("a name").to_owned()));
    for (workload, name) in &compared {
        let line = named(*workload, name);
        assert!(line["app"]["count"].as_u64() > Some(0), "{line}");
        assert!(line["raw"]["count"].as_u64() > Some(0), "{line}");
        assert!(line["ratio"].as_f64().is_some(), "{line}");
    }
    // Round trips per operation, counted at the front door with the model off: never fewer
    // than the fewest the guarantees allow, on either side; not counted without the front door.
    for (workload, name) in compared.iter().filter(|(w, n)| *w < 2 && !n.contains(',')) {
        let line = named(*workload, name);
        let fewest = line["fewest"]["round_trips"].as_f64().expect("the fewest");
        for side in ["app", "raw"] {
            let counted = line[side]["per_op"]["round_trips"].as_f64();
            if front_door {
                assert!(counted.is_some_and(|rt| rt >= fewest), "{side}: {line}");
            } else {
                assert_eq!(counted, None, "{line}");
            }
        }
    }
    // The seed's stack ran against the same stand-in, or one line says why it did not.
    match lines(0).iter().find(|line| line["name"] == "vs seed") {
        Some(skipped) => {
            let note = skipped["note"].as_str().unwrap_or_default();
            assert!(note.starts_with("skipped"), "{note}");
        }
        None => {
            let versus = named(0, "C=1 vs seed");
            assert!(versus["ratio"].as_f64().is_some(), "{versus}");
        }
    }
    // 16 workers x 20 increments, on 4 hot rows and on 16 rows, both sides, two passes per
    // A B B A round, three rounds (the benchmark's `ROUNDS`, in the binary).
    let passes = 2 * 3;
    for line in &lines(3)[..2] {
        for side in ["app", "raw"] {
            let check = &line[side]["check"];
            assert_eq!(check["expected"].as_u64(), Some(passes * 16 * 20), "{line}");
            assert_eq!(check["found"], check["expected"], "{line}");
            assert_eq!(line[side]["retries"]["failed"].as_u64(), Some(0), "{line}");
        }
    }
    // Get by PK and the mixed workload, by 1 and by 8 clients, both paths, with what the front
    // door adds at the median; built without it, one line saying it was skipped.
    if front_door {
        assert_eq!(lines(4).len(), 4, "{}", reports[4]);
        for line in lines(4) {
            assert!(line["app"]["count"].as_u64() > Some(0), "{line}");
            assert!(line["raw"]["count"].as_u64() > Some(0), "{line}");
            assert!(line["ratio"].as_f64().is_some(), "{line}");
            assert!(line["added_p50_us"].as_f64().is_some(), "{line}");
        }
    } else {
        assert_eq!(lines(4).len(), 1, "{}", reports[4]);
        let note = lines(4)[0]["note"].as_str().unwrap_or_default();
        assert!(note.starts_with("skipped"), "{note}");
    }
    let issued = &lines(5)[1];
    assert_eq!(issued["app"]["count"].as_u64(), Some(1), "{issued}");
    assert_eq!(issued["met"].as_bool(), Some(true), "{issued}");
}

/// Starts `app local` with `args`; returns it and its banner, up to "Press Ctrl-C".
#[cfg(feature = "front-door")]
fn app_local(args: &[&str]) -> (Interrupted, Vec<String>) {
    app_local_by(Command::new(env!("CARGO_BIN_EXE_app")), args)
}

/// [`app_local`] run by `command` (the app, or something that runs it in its place).
#[cfg(feature = "front-door")]
fn app_local_by(mut command: Command, args: &[&str]) -> (Interrupted, Vec<String>) {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let mut local = Interrupted(
        command
            .arg("local")
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run app local"),
    );
    let mut lines = BufReader::new(local.0.stdout.take().expect("stdout")).lines();
    let mut banner = Vec::new();
    for line in lines.by_ref() {
        let line = line.expect("read the banner");
        let last = line.starts_with("Press Ctrl-C");
        banner.push(line);
        if last {
            break;
        }
    }
    (local, banner)
}

/// The `NAME=value` pairs of a banner's `export` lines, in order.
#[cfg(feature = "front-door")]
fn exports(banner: &[String]) -> Vec<(String, String)> {
    let mut vars = Vec::new();
    for line in banner.iter().filter_map(|l| l.strip_prefix("export ")) {
        for pair in line.split_whitespace() {
            let (name, value) = pair.split_once('=').expect("NAME=value");
            vars.push((name.to_owned(), value.to_owned()));
        }
    }
    vars
}

/// `app local` from another shell: its `export` lines are all the app needs to reach the
/// stand-in the DSQL way (a DSQL-shaped endpoint, port, the Region for every SDK, AWS
/// credentials file, the CA for libpq, Node and OpenSSL), for `token` and `migrate`; `psql`
/// with the printed settings and token logs in by the endpoint name (resolved by a private
/// hosts file) and gets `TRUNCATE` refused as DSQL refuses it; the banner never shows the
/// secret key.
#[cfg(feature = "front-door")]
#[test]
fn app_local_prints_the_settings_that_reach_it_like_dsql() {
    use app::local::STAND_IN_HOST as HOST;

    let machine_hosts = common::hosts::PrivateHosts::machines();
    let (mut local, banner) = app_local(&[]);
    assert_eq!(
        common::hosts::PrivateHosts::machines(),
        machine_hosts,
        "app local without --add-hosts-entry leaves /etc/hosts alone"
    );
    let vars = exports(&banner);
    let names: Vec<&str> = vars.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "CLUSTER_ENDPOINT",
            "CLUSTER_PORT",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_SHARED_CREDENTIALS_FILE",
            "AWS_PROFILE",
            "PGSSLROOTCERT",
            "NODE_EXTRA_CA_CERTS",
            "SSL_CERT_FILE",
        ],
        "{banner:?}"
    );
    let var = |name: &str| -> &str { &vars.iter().find(|(n, _)| n == name).expect("printed").1 };
    assert_eq!(var("CLUSTER_ENDPOINT"), HOST);
    assert!(HOST.ends_with(".dsql.us-east-1.on.aws"), "{HOST}");
    assert_eq!(var("AWS_REGION"), "us-east-1");
    assert_eq!(var("AWS_DEFAULT_REGION"), "us-east-1");
    assert_eq!(var("NODE_EXTRA_CA_CERTS"), var("PGSSLROOTCERT"));
    // SSL_CERT_FILE replaces the system's roots: it keeps them, and adds the stand-in's CA.
    let ca = std::fs::read_to_string(var("PGSSLROOTCERT")).expect("the CA certificate");
    let bundle = std::fs::read_to_string(var("SSL_CERT_FILE")).expect("the CA bundle");
    assert!(
        bundle.ends_with(&ca),
        "the bundle ends with the stand-in's CA"
    );
    if let Ok(system) = std::fs::read_to_string("/etc/ssl/certs/ca-certificates.crt") {
        assert!(
            bundle.starts_with(&system),
            "the bundle starts with the system's roots"
        );
    }
    assert!(
        banner
            .iter()
            .any(|l| l.contains(&format!("127.0.0.1 {HOST}"))),
        "the banner names the hosts entry: {banner:?}"
    );
    let credentials =
        std::fs::read_to_string(var("AWS_SHARED_CREDENTIALS_FILE")).expect("the credentials file");
    let secret = credentials
        .lines()
        .find_map(|l| l.strip_prefix("aws_secret_access_key = "))
        .expect("a secret key in the file");
    assert!(
        !banner.join("\n").contains(secret),
        "the banner shows the secret key"
    );

    let env: Vec<(&str, &str)> = vars.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let token = app(&["token"], &env);
    assert!(token.status.success(), "{}", stderr(&token));
    assert!(stdout(&token).starts_with(&format!("{HOST}/?Action=DbConnectAdmin&")));
    let status = app(&["migrate", "status"], &env);
    assert!(status.status.success(), "{}", stderr(&status));
    let port = var("CLUSTER_PORT");
    assert!(
        stdout(&status).starts_with(&format!("Connected to Aurora DSQL at {HOST}:{port}")),
        "{}",
        stdout(&status)
    );
    assert!(stdout(&status).contains("Pending  m20261125_000001_create_owner_table"));

    // `app url` gives other tools one line: the token percent-encoded, TLS verify-full
    // against the printed CA, dialling the loopback (sqlx checks the certificate against the
    // address it dials, which the certificate names). A client with only that URL reaches the
    // stand-in, which answers SHOW server_version as DSQL does (environment.json).
    let url = app(&["url"], &env);
    assert!(url.status.success(), "{}", stderr(&url));
    let url = stdout(&url).trim().to_owned();
    assert!(url.starts_with("postgres://admin:"), "{url}");
    assert!(
        url.contains(&format!("@127.0.0.1:{port}/postgres?")),
        "{url}"
    );
    let from_url: sqlx::postgres::PgConnectOptions = url.parse().expect("a PostgreSQL URL");
    let version = tokio::runtime::Runtime::new()
        .expect("a runtime")
        .block_on(async {
            use sqlx::Connection;
            let mut by_url = sqlx::PgConnection::connect_with(&from_url)
                .await
                .expect("log in with the URL");
            sqlx::query_scalar::<_, String>("SHOW server_version")
                .fetch_one(&mut by_url)
                .await
                .expect("SHOW server_version")
        });
    assert_eq!(version, "16.15");

    // psql, as another client would: the endpoint name (resolved by the private hosts
    // file), the printed port and CA (PGSSLROOTCERT), TLS verify-full, the printed token.
    let hosts = common::hosts::PrivateHosts::new();
    let psql = hosts
        .command("psql")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .env("PGPASSWORD", stdout(&token).trim())
        .args([
            &format!("host={HOST} port={port} user=admin dbname=postgres sslmode=verify-full"),
            "-XAtc",
            "TRUNCATE seaql_migrations",
        ])
        .output()
        .expect("run psql");
    assert!(!psql.status.success(), "{psql:?}");
    let refused = String::from_utf8_lossy(&psql.stderr);
    assert!(
        refused.contains("ERROR:  unsupported statement: Truncate"),
        "{refused}"
    );

    let ended = local.interrupt().expect("app local ends on Ctrl-C");
    assert!(ended.success(), "{ended}");
}

/// `app local --port N` listens on N, on both loopback addresses, and says so in its exports.
#[cfg(feature = "front-door")]
#[test]
fn app_local_listens_on_the_port_asked_for() {
    let port = common::free_port();
    let (mut local, banner) = app_local(&["--port", &port.to_string()]);
    let vars = exports(&banner);
    assert!(
        vars.contains(&("CLUSTER_PORT".to_owned(), port.to_string())),
        "{banner:?}"
    );
    for address in ["127.0.0.1", "[::1]"] {
        std::net::TcpStream::connect(format!("{address}:{port}"))
            .unwrap_or_else(|error| panic!("the front door on {address}:{port}: {error}"));
    }
    let ended = local.interrupt().expect("app local ends on Ctrl-C");
    assert!(ended.success(), "{ended}");
}

/// A port another program has: `app local --port N` fails at once, naming the port and the
/// fix, and starts nothing.
#[cfg(feature = "front-door")]
#[test]
fn app_local_on_a_taken_port_names_it_and_the_fix() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("occupy a port");
    let port = taken.local_addr().expect("its address").port();
    let output = app(&["local", "--port", &port.to_string()], &[]);
    assert!(!output.status.success(), "{}", stdout(&output));
    let message = stderr(&output);
    assert!(
        message.contains(&format!("port {port} is taken")),
        "{message}"
    );
    assert!(message.contains("`app local --port N`"), "{message}");
    assert!(!stdout(&output).contains("export"), "{}", stdout(&output));
}

/// `app local --add-hosts-entry` appends the stand-in's name on 127.0.0.1 and ::1 to the
/// hosts file it sees (here a private copy of the machine's, without the entry), keeping what
/// was there, and then says the name is mapped; the machine's own hosts file is untouched.
#[cfg(feature = "front-door")]
#[test]
fn app_local_adds_the_hosts_entry_when_asked() {
    use app::local::STAND_IN_HOST as HOST;
    use app::local::hosts_file;
    use common::hosts::PrivateHosts;

    let machine_hosts = PrivateHosts::machines();
    let hosts = PrivateHosts::without_entry();
    let before = hosts.contents();
    let command = hosts.command(env!("CARGO_BIN_EXE_app"));
    let (mut local, banner) = app_local_by(command, &["--add-hosts-entry"]);
    assert!(
        banner[0].starts_with(&format!("Added {HOST} on 127.0.0.1 and ::1 to /etc/hosts")),
        "{banner:?}"
    );
    assert!(
        banner
            .iter()
            .any(|l| l == &format!("/etc/hosts maps {HOST} already.")),
        "{banner:?}"
    );
    let ended = local.interrupt().expect("app local ends on Ctrl-C");
    assert!(ended.success(), "{ended}");
    let written = hosts.contents();
    assert!(written.starts_with(&before), "{written}");
    assert!(written.ends_with(&hosts_file::entry()), "{written}");
    assert_eq!(PrivateHosts::machines(), machine_hosts);
}

/// A running `app local`, given Ctrl-C and waited for when dropped, so that a failed assertion
/// does not leave it running with its server and files.
#[cfg(feature = "front-door")]
struct Interrupted(std::process::Child);

#[cfg(feature = "front-door")]
impl Interrupted {
    /// Sends Ctrl-C (SIGINT) and waits for the process to end.
    fn interrupt(&mut self) -> std::io::Result<std::process::ExitStatus> {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.0.id()).expect("a pid"));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT)?;
        self.0.wait()
    }
}

#[cfg(feature = "front-door")]
impl Drop for Interrupted {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.interrupt();
        }
    }
}

/// The helper other clients' tests run them with: inside, the stand-in's endpoint name
/// resolves to both loopback addresses; outside, the machine's hosts file is unchanged.
#[cfg(feature = "front-door")]
#[test]
fn the_stand_in_name_resolves_to_the_loopback_only_inside() {
    let hosts = common::hosts::PrivateHosts::new();
    let inside = hosts
        .command("getent")
        .args(["ahosts", app::local::STAND_IN_HOST])
        .output()
        .expect("run getent");
    assert!(inside.status.success(), "{inside:?}");
    let stdout = String::from_utf8_lossy(&inside.stdout);
    let mut addresses: Vec<&str> = stdout
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    addresses.sort_unstable();
    addresses.dedup();
    assert_eq!(addresses, ["127.0.0.1", "::1"], "{stdout}");

    let outside = Command::new("getent")
        .args(["hosts", app::local::STAND_IN_HOST])
        .output()
        .expect("run getent");
    let machine_has_it = std::fs::read_to_string(app::local::hosts_file::SYSTEM_HOSTS)
        .is_ok_and(|contents| app::local::hosts_file::maps_stand_in(&contents));
    assert_eq!(outside.status.success(), machine_has_it, "{outside:?}");
}
