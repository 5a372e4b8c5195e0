//! A PostgreSQL wire-protocol front door that makes the local stand-in look like Aurora DSQL at
//! the wire: TLS with a certificate authority generated at start, IAM authentication tokens
//! checked like DSQL checks them, then a relay to the throwaway PostgreSQL behind it.
//!
//! The conversation, as DSQL has it: the client asks for TLS (`SSLRequest`; a plain startup is
//! refused) and gets it with the stand-in's certificate ([`tls`]); it sends its startup
//! message; the front door asks for a cleartext password, which must be a valid IAM token for
//! the stand-in's endpoint, the user's action and an access key the stand-in knows ([`iam`]).
//! Only then is a backend session opened, over the server's Unix socket with the client's
//! startup parameters, and from there messages are relayed both ways ([`relay`]), with the
//! statements DSQL refuses and the server cannot see refused on the way ([`wire`] frames the
//! messages).
//!
//! A refused login gets an `ErrorResponse` with DSQL's SQLSTATE and message, and no backend
//! session ever exists for it.

pub mod iam;
pub mod relay;
pub mod rules;
pub mod tls;
pub mod wire;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info};

use crate::error::{Error, Result};
use iam::TokenVerifier;
use relay::Policy;
use wire::Opening;

/// The longest password message accepted: an IAM token with a long session token is a few
/// kilobytes.
const MAX_PASSWORD_LEN: usize = 16 * 1024;

/// What every connection needs: where the server is, the TLS configuration and the token check.
struct Shared {
    backend: PathBuf,
    tls: TlsAcceptor,
    verifier: TokenVerifier,
    policy: Box<dyn Policy>,
}

/// A running front door on a loopback port. Dropping it stops accepting and ends every
/// connection it relays.
pub struct FrontDoor {
    port: u16,
    accept: JoinHandle<()>,
}

impl FrontDoor {
    /// Listens on a free port of 127.0.0.1 and serves each connection as the module
    /// documentation says, relaying to the PostgreSQL Unix socket at `backend` and refusing
    /// the statements `policy` refuses ([`relay`]).
    pub async fn start(
        backend: PathBuf,
        tls: Arc<rustls::ServerConfig>,
        verifier: TokenVerifier,
        policy: impl Policy,
    ) -> Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(Error::io("listen for the front door"))?;
        let port = listener
            .local_addr()
            .map_err(Error::io("read the front door's address"))?
            .port();
        let shared = Arc::new(Shared {
            backend,
            tls: TlsAcceptor::from(tls),
            verifier,
            policy: Box::new(policy),
        });
        info!(port, "front door listening");
        let accept = tokio::spawn(accept_loop(listener, shared));
        Ok(Self { port, accept })
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for FrontDoor {
    fn drop(&mut self) {
        // The connections run in the loop's JoinSet, which aborts them when it is dropped.
        self.accept.abort();
    }
}

/// Accepts connections until aborted; each one runs in a task of its own.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, peer)) => {
                    let shared = Arc::clone(&shared);
                    connections.spawn(async move {
                        if let Err(error) = serve(client, &shared).await {
                            debug!(%peer, %error, "front door connection ended with an error");
                        }
                    });
                }
                Err(error) => debug!(%error, "front door accept failed"),
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// One client connection, from its first byte to the end of the relay.
async fn serve(mut client: TcpStream, shared: &Shared) -> io::Result<()> {
    client.set_nodelay(true)?;
    loop {
        match wire::read_opening(&mut client).await? {
            Opening::Ssl => {
                client.write_all(b"S").await?;
                break;
            }
            Opening::GssEnc => client.write_all(b"N").await?,
            Opening::Cancel { packet, .. } => return cancel(&shared.backend, &packet).await,
            Opening::Startup { .. } => {
                return refuse(&mut client, "28000", "SSL/TLS is required", None).await;
            }
        }
    }
    let mut client = shared.tls.accept(client).await?;
    let opening = wire::read_opening(&mut client).await?;
    let parameters = match opening {
        Opening::Startup { parameters, .. } => parameters,
        Opening::Cancel { packet, .. } => return cancel(&shared.backend, &packet).await,
        Opening::Ssl | Opening::GssEnc => {
            return refuse(&mut client, "08P01", "unexpected encryption request", None).await;
        }
    };
    let Some(user) = parameters
        .iter()
        .find(|(name, _)| name == "user")
        .map(|(_, user)| user.clone())
    else {
        let message = "no PostgreSQL user name specified in startup packet";
        return refuse(&mut client, "28000", message, None).await;
    };
    client
        .write_all(&wire::cleartext_password_request())
        .await?;
    client.flush().await?;
    let token = match wire::read_message(&mut client, MAX_PASSWORD_LEN).await? {
        Some(message) if message.tag == b'p' => wire::password(&message.body)?.to_owned(),
        _ => return refuse(&mut client, "08P01", "expected a password message", None).await,
    };
    if let Err(refusal) = shared.verifier.verify(&token, &user, SystemTime::now()) {
        info!(user, code = refusal.code, "front door refused a login");
        let hint = refusal.hint.as_deref();
        return refuse(&mut client, refusal.code, &refusal.message, hint).await;
    }
    let mut backend = UnixStream::connect(&shared.backend).await?;
    let startup = wire::startup_message(
        parameters
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str())),
    );
    backend.write_all(&startup).await?;
    debug!(user, "front door relays a session");
    relay::run(client, backend, shared.policy.as_ref()).await
}

/// Passes a `CancelRequest` on to the server, which matches it to its own backend keys (the
/// relay forwards `BackendKeyData` untouched).
async fn cancel(backend: &PathBuf, packet: &[u8]) -> io::Result<()> {
    let mut server = UnixStream::connect(backend).await?;
    server.write_all(packet).await?;
    server.shutdown().await
}

/// Sends a `FATAL` error and closes the connection.
async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut S,
    code: &str,
    message: &str,
    hint: Option<&str>,
) -> io::Result<()> {
    client
        .write_all(&wire::error_response("FATAL", code, message, hint))
        .await?;
    client.shutdown().await
}
