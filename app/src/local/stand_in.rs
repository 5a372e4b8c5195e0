//! The local DSQL stand-in as the app reaches it: a [`LocalServer`] with a [`FrontDoor`] before
//! it, a certificate authority for TLS `verify-full`, and an AWS access key the front door
//! accepts IAM tokens from. The app connects to it exactly as to Aurora DSQL: an endpoint
//! name ([`HOST`]), a port, a region ([`REGION`]), AWS credentials and `PGSSLROOTCERT`.
//!
//! [`HOST`] is shaped like a cluster's endpoint, because AWS's connectors take any other name
//! for a cluster id and expand it. No such name resolves to the loopback by itself, and the
//! stand-in does not touch the machine's resolver: the least invasive way that works for every
//! client is one hosts-file line ([`super::hosts_file`]), which `app local` prints (and adds only
//! when asked to). The app itself dials the loopback for it and needs no entry
//! (`app::dsql::endpoint::Endpoint::dialled_at`).

use std::path::{Path, PathBuf};

use aws_config::SdkConfig;
use tracing::{debug, info};

use super::front_door::FrontDoor;
use super::front_door::conflicts::CommitFailures;
use super::front_door::iam::TokenVerifier;
use super::front_door::latency::Latency;
use super::front_door::listen::Listeners;
use super::front_door::policy::DsqlRules;
use super::front_door::relay::Limits;
use super::front_door::tls::LocalCa;
use super::front_door::traffic::Traffic;
use super::{LocalServer, write_private_file, write_public_file};
use secrecy::{ExposeSecret, SecretString};

use super::error::{Error, Result};
use super::fixed_credentials;
use super::{STAND_IN_ADDRESS, STAND_IN_HOST as HOST, STAND_IN_REGION as REGION};

/// The names the server certificate is for.
const CERTIFICATE_NAMES: [&str; 4] = [HOST, "localhost", STAND_IN_ADDRESS, "::1"];
/// The AWS profile of the credentials file the stand-in writes.
pub const PROFILE: &str = "dsql-local";
/// Debian's bundle of the system's trusted roots, what OpenSSL reads by default there.
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// How to start a stand-in.
#[derive(Clone, Debug, Default)]
pub struct StandInOptions {
    /// The port the front door listens on, on `127.0.0.1` and `::1`; 0 (the default) for any
    /// free one.
    pub port: u16,
    /// The front door's model of DSQL's latency, `None` (the default) for none
    /// ([`crate::local::front_door::latency`]; [`Latency::DSQL`] has AWS's figures).
    pub latency: Option<Latency>,
}

/// The CA bundle for `SSL_CERT_FILE`, which replaces a program's trusted roots: the system's
/// roots, when the machine has them, then the stand-in's CA.
#[derive(Clone, Debug)]
pub struct TrustBundle {
    /// Where it was written.
    pub path: PathBuf,
    /// Whether the system's roots are in it (else only the stand-in's CA).
    pub with_system_roots: bool,
}

/// A front door as the stand-in opens one before a server: a fresh CA for the names a client
/// may dial, one random access key whose tokens it accepts for the first of those names in
/// [`REGION`], DSQL's rules, and `limits`. The one place a front door is assembled: the
/// stand-in and the tests' own doors both open theirs with it.
pub struct OpenedDoor {
    /// The front door, serving.
    pub door: FrontDoor,
    /// Its certificate authority: clients trust it (`PGSSLROOTCERT`).
    pub ca: LocalCa,
    /// The access key id the door knows.
    pub access_key_id: String,
    /// Its secret access key.
    pub secret_access_key: SecretString,
}

impl OpenedDoor {
    /// Opens a front door on `listener` before `server`, its certificate for `names` (the
    /// first is the host tokens are signed for).
    pub fn open(
        server: &LocalServer,
        listener: Listeners,
        names: &[&str],
        limits: Limits,
    ) -> Result<Self> {
        let ca = LocalCa::generate(names)?;
        let access_key_id = format!(
            "AKIDLOCAL{}",
            uuid::Uuid::new_v4().simple().to_string()[..11].to_uppercase()
        );
        let secret_access_key = super::random_secret();
        let verifier = TokenVerifier::new(
            names.first().copied().unwrap_or(HOST),
            REGION,
            [(access_key_id.clone(), secret_access_key.clone())],
        );
        let door = FrontDoor::start_on(
            listener,
            server.backend(),
            ca.server_config()?,
            verifier,
            DsqlRules,
            limits,
        )?;
        Ok(Self {
            door,
            ca,
            access_key_id,
            secret_access_key,
        })
    }
}

/// A running stand-in. Dropping it stops the front door, then the server (which removes its
/// directory, and with it the CA, CA bundle and credentials files).
pub struct StandIn {
    // Field order matters: the front door goes before the server behind it.
    door: FrontDoor,
    access_key_id: String,
    secret_access_key: SecretString,
    ca_path: PathBuf,
    server: LocalServer,
}

impl std::fmt::Debug for StandIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandIn")
            .field("port", &self.door.port())
            .field("access_key_id", &self.access_key_id)
            .field("ca_path", &self.ca_path)
            .finish_non_exhaustive()
    }
}

impl StandIn {
    /// Starts a [`LocalServer`], mints a CA and a random access key, writes the CA
    /// certificate to `ca.pem` in the stand-in's directory (where the server's OS user cannot
    /// write), and opens the front door on any free port.
    pub async fn start() -> Result<Self> {
        Self::start_with(&StandInOptions::default()).await
    }

    /// [`StandIn::start`] with `options`: fails with [`Error::PortTaken`] when
    /// the port asked for is taken.
    pub async fn start_with(options: &StandInOptions) -> Result<Self> {
        // The port first: a taken one fails before the server starts.
        let listener = Listeners::bind(options.port).await?;
        let server = LocalServer::start().await?;
        debug!("start-up phase: front door");
        let opened = OpenedDoor::open(&server, listener, &CERTIFICATE_NAMES, Limits::default())?;
        let ca_path = server.dir().join("ca.pem");
        opened.ca.write_ca(&ca_path)?;
        opened.door.set_latency(options.latency);
        info!(port = opened.door.port(), "local DSQL stand-in ready");
        Ok(Self {
            door: opened.door,
            access_key_id: opened.access_key_id,
            secret_access_key: opened.secret_access_key,
            ca_path,
            server,
        })
    }

    /// The server behind the front door, for onboarding users and for tests.
    pub fn server(&self) -> &LocalServer {
        &self.server
    }

    /// The front door's port.
    pub fn port(&self) -> u16 {
        self.door.port()
    }

    /// The front door's switch that makes a chosen session's next commit fail, for tests of
    /// clients' retry code ([`FrontDoor::commit_failures`]).
    pub fn commit_failures(&self) -> CommitFailures {
        self.door.commit_failures()
    }

    /// What the front door's clients were answered since it started, after their logins
    /// ([`FrontDoor::traffic`]): take one before and one after some work ([`Traffic::since`]).
    pub fn traffic(&self) -> Traffic {
        self.door.traffic()
    }

    /// Switches the front door's model of DSQL's latency on or off
    /// ([`FrontDoor::set_latency`]), e.g. between two passes of a benchmark.
    pub fn set_latency(&self, latency: Option<Latency>) {
        self.door.set_latency(latency);
    }

    /// The latency model's delays in force; `None` when it is off.
    pub fn latency(&self) -> Option<Latency> {
        self.door.latency()
    }

    /// The CA certificate to trust (`PGSSLROOTCERT`, `NODE_EXTRA_CA_CERTS`).
    pub fn ca_path(&self) -> &Path {
        &self.ca_path
    }

    /// An AWS configuration with the stand-in's access key as static credentials, in
    /// [`REGION`], reading nothing from the environment: what the app's token source signs
    /// with.
    pub async fn sdk_config(&self) -> SdkConfig {
        fixed_credentials(
            REGION,
            &self.access_key_id,
            self.secret_access_key.expose_secret(),
            None,
        )
        .await
    }

    /// What a client process needs in its environment to reach the stand-in as it reaches a
    /// cluster, as `(name, value)` pairs in the order `app local` prints them: the endpoint and
    /// port (`CLUSTER_ENDPOINT`, `CLUSTER_PORT`), the Region under both names the AWS SDKs read,
    /// the credentials file written by [`write_credentials_file`](Self::write_credentials_file)
    /// (`credentials`) and its profile, and the CA under the name each ecosystem reads
    /// (`PGSSLROOTCERT` for libpq, `NODE_EXTRA_CA_CERTS` for Node; `SSL_CERT_FILE`, which
    /// replaces OpenSSL's roots, gets the [`TrustBundle`] written by
    /// [`write_trust_bundle`](Self::write_trust_bundle), `bundle`).
    pub fn client_environment(
        &self,
        credentials: &Path,
        bundle: &Path,
    ) -> Vec<(&'static str, String)> {
        let ca = self.ca_path.display().to_string();
        vec![
            ("CLUSTER_ENDPOINT", HOST.to_owned()),
            ("CLUSTER_PORT", self.port().to_string()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_DEFAULT_REGION", REGION.to_owned()),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                credentials.display().to_string(),
            ),
            ("AWS_PROFILE", PROFILE.to_owned()),
            ("PGSSLROOTCERT", ca.clone()),
            ("NODE_EXTRA_CA_CERTS", ca),
            ("SSL_CERT_FILE", bundle.display().to_string()),
        ]
    }

    /// Writes a [`TrustBundle`] (`trust-bundle.pem`, in the stand-in's directory, where the
    /// server's OS user cannot write): the machine's roots from Debian's
    /// `/etc/ssl/certs/ca-certificates.crt` if it exists, then the stand-in's CA.
    pub fn write_trust_bundle(&self) -> Result<TrustBundle> {
        let ca = std::fs::read_to_string(&self.ca_path).map_err(Error::io(format!(
            "read the local CA certificate {}",
            self.ca_path.display()
        )))?;
        let system = match std::fs::read_to_string(SYSTEM_ROOTS) {
            Ok(roots) => Some(roots),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => return Err(Error::io(format!("read {SYSTEM_ROOTS}"))(error)),
        };
        let with_system_roots = system.is_some();
        let mut bundle = system.unwrap_or_default();
        if !bundle.is_empty() && !bundle.ends_with('\n') {
            bundle.push('\n');
        }
        bundle.push_str(&ca);
        let path = self.server.dir().join("trust-bundle.pem");
        write_public_file(&path, &bundle)?;
        Ok(TrustBundle {
            path,
            with_system_roots,
        })
    }

    /// Writes the access key as profile [`PROFILE`] of an AWS shared credentials file
    /// (`credentials`, mode 0600, in the stand-in's directory, where the server's OS user
    /// cannot write), for other processes: point
    /// `AWS_SHARED_CREDENTIALS_FILE` at it and set `AWS_PROFILE`.
    pub fn write_credentials_file(&self) -> Result<PathBuf> {
        let path = self.server.dir().join("credentials");
        let contents = format!(
            "[{PROFILE}]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            self.access_key_id,
            self.secret_access_key.expose_secret()
        );
        write_private_file(&path, &contents)?;
        Ok(path)
    }
}
