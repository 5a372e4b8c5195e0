//! The `app` command: the clinic demo, migrations, user onboarding, IAM tokens, and the local
//! DSQL stand-in.

mod bench;

use std::io::Write;

use anyhow::{Context, Result};
use app::config::Config;
use app::dsql::retry::RetryPolicy;
use app::dsql::{ADMIN_USER, DATABASE};
use app::session::Session;
use bench::{BenchOptions, Sizes, Workload};
use clap::{Args, Parser, Subcommand};
use migration::{Migrator, MigratorTrait};
use secrecy::ExposeSecret;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// SeaORM on Amazon Aurora DSQL: the pet-clinic demo.
///
/// Where it connects comes from the environment (and `.env`): CLUSTER_ENDPOINT for Aurora DSQL
/// with IAM tokens, DATABASE_URL for any PostgreSQL, and with neither a local DSQL stand-in (a
/// throwaway PostgreSQL that refuses what DSQL refuses) that the app starts and stops itself.
/// CLUSTER_USER (default admin) names the user; see the README for every variable. Logging
/// follows RUST_LOG (default: what needs attention, and one line per migration applied;
/// RUST_LOG=debug shows everything).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Migrate, then walk through the clinic: every workaround of the Sequelize sample (the
    /// default).
    Demo,
    /// Run the DSQL-safe migrations over the app's own connection (admin migrates `public`,
    /// any other user its `myschema`).
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Manage database users (run as admin).
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Print an IAM authentication token for CLUSTER_ENDPOINT and CLUSTER_USER on stdout, as
    /// `aws dsql generate-db-connect[-admin]-auth-token` does.
    Token,
    /// Print a connection URL for the configured database on stdout, with a fresh IAM token as
    /// its password on DSQL (PGSSLROOTCERT as sslrootcert, myschema for users other than
    /// admin), for tools that take one: DATABASE_URL="$(cargo run -q -p app -- url)"
    /// sea-orm-cli generate entity -o src/entities.
    Url,
    /// Start the local DSQL stand-in, print how to connect to it, and keep it running until
    /// Ctrl-C (or SIGTERM).
    Local(LocalArgs),
    /// Benchmark the app's data functions (SeaORM) against hand-written raw sqlx on the
    /// configured database, and the local stand-in's front door against the server reached
    /// directly, and print a table (or JSON). Deletes every row of the clinic tables.
    Bench(BenchArgs),
}

/// Where `app local` listens, and whether it adds its name to the hosts file.
#[derive(Debug, Args)]
struct LocalArgs {
    /// Listen on this port of 127.0.0.1 and ::1 (default: any free port), e.g. 5432 for
    /// clients that always connect there.
    #[arg(long, value_name = "N", default_value_t = 0)]
    port: u16,
    /// Append the stand-in's endpoint name to /etc/hosts (127.0.0.1 and ::1) unless it is
    /// there already; needs the right to write it. Without this, only the line is printed.
    #[arg(long)]
    add_hosts_entry: bool,
    /// Model Aurora DSQL's latency at the front door: each answer held 1ms, and 5ms more when
    /// a transaction that wrote commits (AWS's figures and what is assumed: the front door's
    /// `latency` module). Off by default.
    #[arg(long)]
    latency: bool,
    /// The latency model's delay per round trip instead of 1ms (e.g. 500us, 2ms); implies
    /// --latency.
    #[arg(long, value_name = "DURATION", value_parser = parse_delay)]
    latency_round_trip: Option<std::time::Duration>,
    /// The latency model's extra delay per commit that wrote instead of 5ms; implies
    /// --latency.
    #[arg(long, value_name = "DURATION", value_parser = parse_delay)]
    latency_commit: Option<std::time::Duration>,
}

impl LocalArgs {
    /// Whether any latency flag was given.
    fn wants_latency(&self) -> bool {
        self.latency || self.latency_round_trip.is_some() || self.latency_commit.is_some()
    }
}

/// A delay written as a number and a unit, `us`, `ms` or `s`: `500us`, `1.5ms`, `0s`.
fn parse_delay(text: &str) -> std::result::Result<std::time::Duration, String> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale = match unit {
        "us" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        _ => return Err(format!("{text:?}: a number with us, ms or s, e.g. 2ms")),
    };
    number
        .parse::<f64>()
        .ok()
        .and_then(|n| std::time::Duration::try_from_secs_f64(n * scale).ok())
        .ok_or_else(|| format!("{text:?}: a number with us, ms or s, e.g. 2ms"))
}

/// What `app bench` runs, and how it reports.
#[derive(Debug, Args)]
struct BenchArgs {
    /// Run only this workload: clinic, ops, bulk, contention, front-door or tokens
    /// (repeatable; default: all).
    #[arg(long = "workload", value_name = "NAME")]
    workloads: Vec<Workload>,
    /// The size of every workload: clinic iterations, calls per ops line, bulk rows,
    /// increments per contention worker, front-door round trips or iterations per pass,
    /// tokens signed (default: 2000, 2000, 100000, 200, 2000, 10000).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    iterations: Option<u64>,
    /// The size of the clinic and ops passes with the DSQL latency model on (default: 200
    /// clinic iterations and 100 calls per ops line, or --iterations if smaller).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    modelled_iterations: Option<u64>,
    /// The number of clinic workers and front-door clients (default: measure 1 and 8).
    #[arg(long, value_name = "C", value_parser = clap::value_parser!(u64).range(1..=1024))]
    concurrency: Option<u64>,
    /// Print one JSON object per workload, one per line, instead of the table.
    #[arg(long)]
    json: bool,
    /// Also write the ratios as a bar chart to FILE (SVG).
    #[arg(long, value_name = "FILE")]
    svg: Option<std::path::PathBuf>,
}

impl BenchArgs {
    fn options(&self, session: &Session, user: &str) -> BenchOptions {
        let defaults = BenchOptions::default();
        let mut sizes = self.iterations.map_or_else(Sizes::default, Sizes::uniform);
        if let Some(n) = self.modelled_iterations {
            (sizes.clinic_modelled, sizes.ops_modelled) = (n, n);
        }
        BenchOptions {
            workloads: self.workloads.clone(),
            sizes,
            concurrency: self.concurrency.map_or(defaults.concurrency, |c| {
                vec![usize::try_from(c).unwrap_or(1)]
            }),
            token_lifetime: session.token_lifetime(),
            user: user.to_owned(),
        }
    }
}

#[derive(Debug, Subcommand)]
enum MigrateAction {
    /// Apply pending migrations (all, or the next N).
    Up { steps: Option<u32> },
    /// Roll back applied migrations (the last one, or the last N).
    Down { steps: Option<u32> },
    /// List every migration and whether it is applied.
    Status,
    /// Drop every table of the schema, one statement at a time, then apply all migrations.
    Fresh,
    /// Roll back all migrations, then apply them all.
    Refresh,
    /// Roll back all migrations and drop the bookkeeping table.
    Reset,
}

#[derive(Debug, Subcommand)]
enum UserAction {
    /// Create a login role the DSQL way: the role, `AWS IAM GRANT` to an IAM role (on DSQL),
    /// the schema `myschema`, and usage and create rights on it.
    Create {
        /// The database role to create (letters, digits and _).
        name: String,
        /// The IAM role (or user) whose principals may log in as it, e.g.
        /// arn:aws:iam::123456789012:role/clinic; anything else is refused before connecting.
        #[arg(long)]
        iam_role: Option<String>,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    // The benchmark counts the retries of its contention workload; a warning for each would
    // flood the terminal.
    let default_filter = match cli.command {
        Some(Command::Bench(_)) => app::logging::BENCH_DIRECTIVES,
        _ => app::logging::DEFAULT_DIRECTIVES,
    };
    let directives = std::env::var("RUST_LOG")
        .ok()
        .filter(|directives| !directives.is_empty());
    let layer = match directives
        .as_deref()
        .map(|d| app::logging::layer(d, std::io::stderr))
    {
        Some(Ok(layer)) => layer,
        Some(Err(error)) => {
            eprintln!("RUST_LOG: {error}; logging with {default_filter:?} instead");
            app::logging::layer(default_filter, std::io::stderr)?
        }
        None => app::logging::layer(default_filter, std::io::stderr)?,
    };
    tracing_subscriber::registry().with(layer).init();
    let command = cli.command.unwrap_or(Command::Demo);
    // Ctrl-C or SIGTERM drops the work in progress, and with it any local server, which
    // stops it.
    let stop = stop_signal()?;
    tokio::select! {
        result = run(&command) => result,
        () = stop => {
            match command {
                Command::Local(_) => Ok(()),
                _ => anyhow::bail!("interrupted"),
            }
        }
    }
}

/// Resolves on the first Ctrl-C (SIGINT) or SIGTERM; both are listened for from now on.
fn stop_signal() -> Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for Ctrl-C")?;
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

async fn run(command: &Command) -> Result<()> {
    if let Command::Local(args) = command {
        return local(args).await;
    }
    let config = Config::from_env().context("reading the configuration")?;
    match command {
        Command::Token => {
            let token = app::url::token_for(&config).await?;
            // The one place a token is shown: this command exists to print it.
            println!("{}", token.expose_secret());
            Ok(())
        }
        Command::Url => {
            let root_cert = std::env::var_os("PGSSLROOTCERT").map(std::path::PathBuf::from);
            let url = app::url::connection_url(&config, root_cert.as_deref()).await?;
            // The other deliberate output of a secret: this command exists to print it.
            println!("{}", url.expose_secret());
            Ok(())
        }
        Command::Demo => with_session(&config, true, demo).await,
        Command::Migrate { action } => {
            with_session(&config, true, async |s| migrate(s, action).await).await
        }
        Command::Bench(args) => {
            with_session(&config, !args.json, async |s| {
                bench(s, &config.user, args).await
            })
            .await
        }
        Command::User {
            action: UserAction::Create { name, iam_role },
        } => {
            anyhow::ensure!(
                config.is_admin(),
                "users are created by admin: set CLUSTER_USER=admin (it is {})",
                config.user
            );
            with_session(&config, true, async |session| {
                app::users::onboard(&session.db(), name, iam_role.as_deref()).await?;
                println!("User {name} can log in and work in schema myschema");
                Ok(())
            })
            .await
        }
        Command::Local(_) => unreachable!("handled above"),
    }
}

/// Opens a session, says where it connected (on stdout, or on stderr when stdout is kept for
/// machine-readable output), runs `work`, and closes the session whatever `work` returned.
async fn with_session(
    config: &Config,
    connected_on_stdout: bool,
    work: impl AsyncFnOnce(&Session) -> Result<()>,
) -> Result<()> {
    let session = Session::open(config).await.context("connecting")?;
    let connected = format!(
        "Connected to {} as {} (schema {})",
        session.description(),
        config.user,
        config.schema()
    );
    if connected_on_stdout {
        println!("{connected}");
    } else {
        eprintln!("{connected}");
    }
    let result = work(&session).await;
    session.close().await;
    result
}

async fn demo(session: &Session) -> Result<()> {
    let db = session.db();
    app::demo::migrate(&db).await.context("migrating")?;
    let columns = app::catalog::columns(&db)
        .await
        .context("reading the schema back")?;
    println!(
        "Schema migrated (DSQL-safe: one DDL statement per transaction): {}",
        app::catalog::summary(&columns)
    );
    app::demo::run(&db, &RetryPolicy::default(), |line| println!("{line}"))
        .await
        .context("running the demo")?;
    Ok(())
}

async fn bench(session: &Session, user: &str, args: &BenchArgs) -> Result<()> {
    let reports = bench::run(session, &args.options(session, user))
        .await
        .context("running the benchmark")?;
    if let Some(path) = &args.svg {
        std::fs::write(path, bench::chart(&reports))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        for report in &reports {
            println!("{}", report.to_json()?);
        }
    } else {
        if let Some(report) = reports.first() {
            println!("Machine: {}", report.machine);
        }
        print!("{}", bench::table(&reports));
    }
    Ok(())
}

async fn migrate(session: &Session, action: &MigrateAction) -> Result<()> {
    let db = session.db();
    match action {
        MigrateAction::Up { steps } => Migrator::up(&db, *steps).await?,
        MigrateAction::Down { steps } => Migrator::down(&db, Some(steps.unwrap_or(1))).await?,
        MigrateAction::Fresh => Migrator::fresh(&db).await?,
        MigrateAction::Refresh => Migrator::refresh(&db).await?,
        MigrateAction::Reset => Migrator::reset(&db).await?,
        MigrateAction::Status => {
            for migration in Migrator::get_migration_with_status(&db).await? {
                println!("{}  {}", migration.status(), migration.name());
            }
            let columns = app::catalog::columns(&db).await?;
            print!(
                "\nTables in the current schema:\n{}",
                app::catalog::render(&columns)
            );
        }
    }
    Ok(())
}

/// `app local`: the stand-in, reached like Aurora DSQL, until Ctrl-C. It prints what each
/// ecosystem reads: the AWS SDKs' Region variables (`AWS_REGION`; boto3 and the AWS CLI read
/// `AWS_DEFAULT_REGION`), libpq's `PGSSLROOTCERT`, Node's `NODE_EXTRA_CA_CERTS`, and
/// `SSL_CERT_FILE` (which replaces OpenSSL's roots, hence a bundle with the system's).
#[cfg(feature = "front-door")]
async fn local(args: &LocalArgs) -> Result<()> {
    use app::local::STAND_IN_HOST as HOST;
    use app::local::hosts_file::{self, SYSTEM_HOSTS};
    use app::local::stand_in::{StandIn, StandInOptions};
    let hosts_path = std::path::Path::new(SYSTEM_HOSTS);
    if args.add_hosts_entry && hosts_file::add_entry(hosts_path)? {
        println!("Added {HOST} on 127.0.0.1 and ::1 to {SYSTEM_HOSTS}.");
    }
    use app::local::front_door::latency::Latency;
    let latency = args.wants_latency().then(|| Latency {
        per_round_trip: args
            .latency_round_trip
            .unwrap_or(Latency::DSQL.per_round_trip),
        per_commit: args.latency_commit.unwrap_or(Latency::DSQL.per_commit),
    });
    let options = StandInOptions {
        port: args.port,
        latency,
    };
    let stand_in = StandIn::start_with(&options)
        .await
        .context("starting the local DSQL stand-in")?;
    let credentials = stand_in
        .write_credentials_file()
        .context("writing the AWS credentials file")?;
    let bundle = stand_in
        .write_trust_bundle()
        .context("writing the CA bundle for SSL_CERT_FILE")?;
    let (port, ca) = (stand_in.port(), stand_in.ca_path().display());
    let exports: String = stand_in
        .client_environment(&credentials, &bundle.path)
        .into_iter()
        .map(|(name, value)| format!("export {name}={value}\n"))
        .collect();
    let bundle_note = if bundle.with_system_roots {
        "the system's roots and the stand-in's CA"
    } else {
        "only the stand-in's CA: this machine has no /etc/ssl/certs/ca-certificates.crt, so \
         programs given it trust nothing else"
    };
    let resolves = std::fs::read_to_string(hosts_path)
        .is_ok_and(|contents| hosts_file::maps_stand_in(&contents));
    let hosts = if resolves {
        format!("{SYSTEM_HOSTS} maps {HOST} already.")
    } else {
        format!(
            "Other clients need {HOST} to resolve to the loopback (the app does not); \
             {SYSTEM_HOSTS} lacks it, add it once:\n  printf '{}' | sudo tee -a {SYSTEM_HOSTS}\n\
             or rerun as a user who may write it with `app local --add-hosts-entry`.",
            hosts_file::entry().replace('\n', "\\n")
        )
    };
    let latency_note = match latency {
        Some(l) => format!(
            "Latency model on: {:?} per round trip, {:?} more per commit that wrote.\n",
            l.per_round_trip, l.per_commit
        ),
        None => String::new(),
    };
    let banner = format!(
        "Local DSQL stand-in running: front door on {HOST}:{port} (127.0.0.1 and ::1; TLS, IAM \
         tokens), PostgreSQL behind it (files in {dir}).\n{latency_note}\
         Reach it like Aurora DSQL from another shell. The AWS secret key is in {credentials}; \
         it is never printed.\n\n\
         {exports}\n\
         SSL_CERT_FILE holds {bundle_note}.\n\
         {hosts}\n\n\
         cargo run -p app                    # the demo, through the front door\n\
         cargo run -p app -- migrate status\n\
         PGPASSWORD=$(cargo run -q -p app -- token) psql \"host={HOST} hostaddr=127.0.0.1 \
         port={port} user={ADMIN_USER} dbname={DATABASE} sslmode=verify-full sslrootcert={ca}\"\n\
         DATABASE_URL=\"$(cargo run -q -p app -- url)\" sea-orm-cli migrate status\n\n\
         Press Ctrl-C to stop it and delete its files.\n",
        dir = stand_in.server().dir().display(),
        credentials = credentials.display(),
    );
    print_or_warn(&banner);
    // Runs until Ctrl-C or SIGTERM, which drops the stand-in (see `main`).
    std::future::pending::<()>().await;
    drop(stand_in);
    Ok(())
}

/// `app local`, built without the front door: the bare server, reached with a password.
#[cfg(not(feature = "front-door"))]
async fn local(args: &LocalArgs) -> Result<()> {
    anyhow::ensure!(
        args.port == 0 && !args.add_hosts_entry && !args.wants_latency(),
        "--port, --add-hosts-entry and --latency* are the front door's; this build has none \
         (feature front-door)"
    );
    let server = app::local::LocalServer::start()
        .await
        .context("starting the local DSQL stand-in")?;
    let pgpass = server.write_pgpass().context("writing the password file")?;
    let (host, port) = (server.host(), server.port());
    let banner = format!(
        "Local PostgreSQL running on {host}:{port} (files in {dir}), without the front door.\n\
         The admin password is in {pgpass}; point libpq, sqlx and sea-orm-cli at it:\n\n\
         export PGPASSFILE={pgpass}\n\
         export DATABASE_URL=postgres://{ADMIN_USER}@{host}:{port}/{DATABASE}\n\n\
         Press Ctrl-C to stop it and delete its files.\n",
        dir = server.dir().display(),
        pgpass = pgpass.display(),
    );
    print_or_warn(&banner);
    std::future::pending::<()>().await;
    drop(server);
    Ok(())
}

/// Writes `text` to stdout in one go. If stdout is gone (a closed pipe), says so on stderr and
/// goes on: the server keeps running for whoever uses it, where `println!` would panic.
fn print_or_warn(text: &str) {
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        tracing::warn!(%error, "could not print the connection details");
    }
}
