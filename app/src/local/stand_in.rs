//! The local DSQL stand-in as the app reaches it: a [`LocalServer`] with a [`FrontDoor`] before
//! it, a certificate authority for TLS `verify-full`, and an AWS access key the front door
//! accepts IAM tokens from. The app connects to it exactly as to Aurora DSQL: an endpoint
//! name ([`HOST`]), a port, a region ([`REGION`]), AWS credentials and `PGSSLROOTCERT`.

use std::path::{Path, PathBuf};

use aws_config::SdkConfig;
use tracing::{debug, info};

use super::front_door::FrontDoor;
use super::front_door::conflicts::CommitFailures;
use super::front_door::iam::TokenVerifier;
use super::front_door::policy::DsqlRules;
use super::front_door::relay::Limits;
use super::front_door::tls::LocalCa;
use super::{LocalServer, write_private_file};
use crate::dsql::endpoint::Endpoint;
use crate::dsql::token::fixed_credentials;
use crate::error::Result;
use crate::secret::Secret;

/// The stand-in's endpoint name. It must resolve on the machine and is in the certificate
/// (with `127.0.0.1` and `::1`).
pub const HOST: &str = "localhost";
/// The stand-in's AWS Region: the region its tokens must be signed for.
pub const REGION: &str = "us-east-1";
/// The AWS profile of the credentials file the stand-in writes.
pub const PROFILE: &str = "dsql-local";

/// A running stand-in. Dropping it stops the front door, then the server (which removes its
/// directory, and with it the CA and credentials files).
pub struct StandIn {
    // Field order matters: the front door goes before the server behind it.
    door: FrontDoor,
    access_key_id: String,
    secret_access_key: Secret,
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
    /// write), and opens the front door.
    pub async fn start() -> Result<Self> {
        let server = LocalServer::start().await?;
        debug!("start-up phase: front door");
        let ca = LocalCa::generate(&[HOST, "127.0.0.1", "::1"])?;
        let ca_path = server.dir().join("ca.pem");
        ca.write_ca(&ca_path)?;
        let access_key_id = format!(
            "AKIDLOCAL{}",
            uuid::Uuid::new_v4().simple().to_string()[..11].to_uppercase()
        );
        let secret_access_key = Secret::random();
        let verifier = TokenVerifier::new(
            HOST,
            REGION,
            [(access_key_id.clone(), secret_access_key.clone())],
        );
        let door = FrontDoor::start(
            server.backend(),
            ca.server_config()?,
            verifier,
            DsqlRules,
            Limits::default(),
        )
        .await?;
        info!(port = door.port(), "local DSQL stand-in ready");
        Ok(Self {
            door,
            access_key_id,
            secret_access_key,
            ca_path,
            server,
        })
    }

    /// The server behind the front door, for onboarding users and for tests.
    pub fn server(&self) -> &LocalServer {
        &self.server
    }

    /// The endpoint to connect to: [`HOST`] in [`REGION`].
    pub fn endpoint(&self) -> Result<Endpoint> {
        Endpoint::parse(HOST, Some(REGION))
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

    /// The CA certificate to trust (`PGSSLROOTCERT`).
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
            self.secret_access_key.expose(),
            None,
        )
        .await
    }

    /// What a client process needs in its environment to reach the stand-in as it reaches a
    /// cluster, as `(name, value)` pairs in the order `app local` prints them: the endpoint and
    /// port (`CLUSTER_ENDPOINT`, `CLUSTER_PORT`), the Region under both names the AWS SDKs read,
    /// the credentials file written by [`write_credentials_file`](Self::write_credentials_file)
    /// (`credentials`) and its profile, and the CA under the name each ecosystem reads
    /// (`PGSSLROOTCERT` for libpq, `NODE_EXTRA_CA_CERTS` for Node, `SSL_CERT_FILE` for
    /// Python's `ssl`).
    pub fn client_environment(&self, credentials: &Path) -> Vec<(&'static str, String)> {
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
            ("NODE_EXTRA_CA_CERTS", ca.clone()),
            ("SSL_CERT_FILE", ca),
        ]
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
            self.secret_access_key.expose()
        );
        write_private_file(&path, &contents)?;
        Ok(path)
    }
}
