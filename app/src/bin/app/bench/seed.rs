//! The seed's stack as a baseline for the `clinic` workload: Sequelize 6 + node-postgres + AWS's
//! node-postgres connector (the Aurora DSQL Sequelize sample's stack), running the project's
//! script `app/tests/clients/node/sequelize_sample.js` in its `bench` mode against the same
//! stand-in, the same tables, with the same story done the seed's way (`Owner.create`,
//! `Pet.create` twice, `findOne` by name, `findByPk`, `upsert`, `findOne` + `create` for the
//! specialty, `findByPk` with `include`).
//!
//! The script connects like the sample: by the stand-in's endpoint name, with IAM tokens from
//! AWS's connector, so the name must resolve to the loopback (the hosts-file entry `app local`
//! prints, or adds with `--add-hosts-entry`); it is given the port, which the sample never
//! names. It opens its connections, says `ready`, waits for a line on stdin, runs the
//! iterations by its clients, and answers one line of JSON: the clock and the front door's
//! counts are taken around exactly that.
//!
//! Where the baseline cannot run (not the stand-in, no `node`, no `node_modules`, the name
//! does not resolve), [`Seed::prepare`] says why and how to enable it.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use super::counts::Counter;
use super::{Sample, Sides};
use anyhow::{Context, Result, anyhow};
use app::session::Session;

/// The two sides of a line comparing the app with the seed.
pub(crate) const SIDES: Sides = Sides {
    app: "app (SeaORM)",
    raw: "seed (Sequelize 6)",
    app_short: "app",
    raw_short: "seed",
};

/// The app must reach this many times the seed's iterations per second.
pub(crate) const MIN_RATIO: f64 = 3.0;

/// The longest one seed run may take before it is given up.
const DEADLINE: Duration = Duration::from_secs(600);

/// The directory of the project's Node clients, as built.
#[cfg(feature = "front-door")]
fn clients_dir() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/node")
}

/// What a run of the seed needs: the script, its `node_modules`, and the environment that
/// reaches the stand-in as `app local` prints it.
pub(crate) struct Seed {
    script: PathBuf,
    node_modules: PathBuf,
    environment: Vec<(&'static str, String)>,
    user: String,
}

/// What the script answers after its iterations.
#[derive(Debug, Deserialize)]
struct Answer {
    iterations: u64,
    p50_us: f64,
    p99_us: f64,
}

impl Seed {
    /// Everything a run needs, or why the baseline is skipped (and how to enable it).
    pub(crate) async fn prepare(session: &Session, user: &str) -> Result<Self, String> {
        #[cfg(feature = "front-door")]
        {
            use app::local::STAND_IN_HOST as HOST;
            let stand_in = session.stand_in().ok_or_else(|| {
                "skipped: the seed runs against the local stand-in only".to_owned()
            })?;
            let node = Command::new("node")
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await;
            if !node.is_ok_and(|s| s.success()) {
                return Err(
                    "skipped: `node` did not run: not installed (Debian: apt-get install \
                            nodejs npm) or not on PATH"
                        .to_owned(),
                );
            }
            let dir = clients_dir();
            let node_modules = dir.join("node_modules");
            if !node_modules.is_dir() {
                return Err(format!(
                    "skipped: no {}; run `npm ci` there first",
                    node_modules.display()
                ));
            }
            let resolves = tokio::net::lookup_host((HOST, stand_in.port()))
                .await
                .is_ok_and(|mut addresses| addresses.any(|a| a.ip().is_loopback()));
            if !resolves {
                return Err(format!(
                    "skipped: {HOST} does not resolve to the loopback, and the seed's stack \
                     connects by name; add it once with `app local --add-hosts-entry` (or the \
                     line `app local` prints)"
                ));
            }
            let credentials = stand_in
                .write_credentials_file()
                .map_err(|e| format!("skipped: {e}"))?;
            let bundle = stand_in
                .write_trust_bundle()
                .map_err(|e| format!("skipped: {e}"))?;
            Ok(Self {
                script: dir.join("sequelize_sample.js"),
                node_modules,
                environment: stand_in.client_environment(&credentials, &bundle.path),
                user: user.to_owned(),
            })
        }
        #[cfg(not(feature = "front-door"))]
        {
            let _ = (session, user);
            Err(
                "skipped: the seed runs against the local stand-in's front door, and this build \
                 has none (feature front-door)"
                    .to_owned(),
            )
        }
    }

    /// Runs `iterations` of the seed's story by `clients` concurrent clients on empty tables;
    /// returns the iterations with their wall time, latencies' p50 and p99 (from the script)
    /// and the front door's counts over them.
    pub(crate) async fn run(
        &self,
        counter: &Counter<'_>,
        iterations: u64,
        clients: usize,
    ) -> Result<(Sample, Seen)> {
        let mut child = Command::new("node")
            .arg(&self.script)
            .arg("bench")
            .arg(iterations.to_string())
            .arg(clients.to_string())
            .envs(self.environment.iter().map(|(n, v)| (n, v)))
            .env("CLUSTER_USER", &self.user)
            .env("NODE_PATH", &self.node_modules)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_CONFIG_FILE")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("start node")?;
        let mut stdin = child.stdin.take().context("the seed's stdin")?;
        let mut lines = BufReader::new(child.stdout.take().context("the seed's stdout")?).lines();
        let mut stderr = child.stderr.take().context("the seed's stderr")?;
        let ran = tokio::time::timeout(DEADLINE, async {
            loop {
                match lines.next_line().await? {
                    Some(line) if line == "ready" => break,
                    Some(_) => {}
                    None => return Err(anyhow!("the seed ended before it was ready")),
                }
            }
            let before = counter.snapshot();
            let start = Instant::now();
            stdin.write_all(b"go\n").await?;
            stdin.flush().await?;
            let answer = loop {
                match lines.next_line().await? {
                    Some(line) if line.starts_with('{') => break line,
                    Some(_) => {}
                    None => return Err(anyhow!("the seed ended without its result")),
                }
            };
            let elapsed = start.elapsed();
            let trips = counter.since(before);
            let answer: Answer = serde_json::from_str(&answer)
                .with_context(|| format!("the seed's result {answer:?}"))?;
            Ok((answer, elapsed, trips))
        })
        .await;
        let status = child.wait().await;
        let mut errors = String::new();
        {
            use tokio::io::AsyncReadExt;
            let _ = stderr.read_to_string(&mut errors).await;
        }
        let (answer, elapsed, trips) = match ran {
            Ok(Ok(done)) if status.as_ref().is_ok_and(|s| s.success()) => done,
            Ok(Ok(_)) => return Err(anyhow!("the seed failed: {}", errors.trim())),
            Ok(Err(e)) => return Err(anyhow!("{e}: {}", errors.trim())),
            Err(_) => return Err(anyhow!("the seed took longer than {DEADLINE:?}")),
        };
        if answer.iterations != iterations {
            return Err(anyhow!(
                "the seed ran {} iterations, not {iterations}",
                answer.iterations
            ));
        }
        let sample = Sample {
            count: answer.iterations,
            elapsed,
            trips,
            ..Sample::default()
        };
        let seen = Seen {
            p50_us: answer.p50_us,
            p99_us: answer.p99_us,
        };
        Ok((sample, seen))
    }
}

/// The latencies the seed measured itself (one iteration, in microseconds).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Seen {
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
}
