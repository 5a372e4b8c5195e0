//! A PostgreSQL wire-protocol front door that makes the local stand-in look like Aurora DSQL at
//! the wire: TLS with a certificate authority generated at start, IAM authentication tokens
//! checked like DSQL checks them, then a relay to the throwaway PostgreSQL behind it.
//!
//! The conversation, as DSQL has it, on `127.0.0.1` and `::1` ([`listen`]): the client asks
//! for TLS (`SSLRequest`; a plain startup is refused), or opens TLS at once with ALPN
//! `postgresql` (direct TLS), and gets it with the stand-in's certificate ([`tls`]); it sends
//! its startup message; the front door asks for a cleartext password, which must be a valid
//! IAM token for the stand-in's endpoint, the user's action and an access key the stand-in
//! knows ([`iam`]).
//! Only then is a backend session opened, logged in as the client's role with the client's
//! startup parameters ([`Backend::open_session`]; each parameter one DSQL accepts and none of
//! the stand-in's own switches: [`guards::startup_refusal`]), and from there messages are
//! relayed both ways ([`relay`]), with the statements DSQL refuses and the server cannot see
//! refused on the way ([`wire`] frames the messages).
//!
//! A refused login gets an `ErrorResponse` with DSQL's SQLSTATE and message, and no backend
//! session ever exists for it. Before the token is accepted, every refusal is the same
//! ([`iam`]: DSQL's message, no hint), whatever failed: the server's superuser, a password that
//! is not text, or any check of the token; which one, and the clocks, go only to the front
//! door's log.
//!
//! A role other than `admin` must have been onboarded as on DSQL: mapped to an IAM identity
//! with `AWS IAM GRANT` ([`policy`] understands the statement). Without a mapping its login is
//! refused before a session opens; so is it when the mapping cannot be checked (the check's
//! own query fails), the reason then only in the front door's log.
//!
//! A stranger cannot exhaust it ([`admission`], [`buffers`]): connections still logging in and
//! connections in all are capped ([`Limits`]: past the total, DSQL's `53300`), a client message
//! over DSQL's protocol limit closes the connection as DSQL does, and a message's buffer grows
//! as its bytes arrive and is given back after it. [`FrontDoor::buffered_bytes`] tells what the
//! sessions' buffers hold.
//!
//! The first login to each database installs DSQL's `sys` schema there ([`DSQL_SYS_SQL`]:
//! `sys.jobs`, `sys.wait_for_job`, and the function the `ASYNC` rewrites call), as the
//! server's superuser, before the session is opened.
//!
//! What the clients cost is counted at the relay ([`traffic`]: round trips, statements,
//! transactions, after each login), and an optional model of DSQL's latency holds each answer
//! as long as DSQL would take ([`latency`], off by default).

pub mod admission;
pub mod buffers;
pub mod conflicts;
pub mod guards;
mod held;
pub mod iam;
pub mod latency;
pub mod listen;
pub mod policy;
pub mod relay;
pub mod rules;
mod syntax;
pub mod tls;
pub mod traffic;
pub mod wire;

use std::collections::HashSet;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use sqlx::Connection;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::{debug, info, warn};

use super::backend::{Backend, Session};
use crate::local::error::Result;
use admission::{Admission, LoginSlot, TOO_MANY_CONNECTIONS, TOO_MANY_CONNECTIONS_CODE};
use buffers::BufferGauge;
use conflicts::CommitFailures;
use iam::{ACCESS_DENIED, INVALID_AUTHORIZATION, INVALID_PASSWORD, TokenVerifier};
use latency::{Latency, LatencyModel};
use listen::Listeners;
use relay::Policy;
use relay::{Context, Limits};
use traffic::{Traffic, TrafficCounters};
use wire::Opening;

/// The longest password message accepted: an IAM token with a long session token is a few
/// kilobytes.
const MAX_PASSWORD_LEN: usize = 16 * 1024;
/// How long a client may take from connecting to sending its token.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(30);

/// DSQL's `sys` schema, installed by the front door in each database on its first login.
pub const DSQL_SYS_SQL: &str = include_str!("../dsql_sys.sql");

/// What every connection needs: where the server is, the caps on connections, the TLS
/// configuration, the token check, the statement policy, and the databases that have `sys`
/// already.
struct Shared {
    backend: Backend,
    admission: Arc<Admission>,
    tls: TlsAcceptor,
    verifier: TokenVerifier,
    policy: Box<dyn Policy>,
    context: Context,
    with_sys: tokio::sync::Mutex<HashSet<String>>,
    /// How far ahead of the machine's clock the tokens' expiry is judged, in milliseconds
    /// ([`FrontDoor::advance_clock`]).
    clock_ahead: Arc<AtomicU64>,
}

impl Shared {
    /// The time that judges tokens: the machine's, plus what [`FrontDoor::advance_clock`] added.
    fn now(&self) -> SystemTime {
        SystemTime::now() + Duration::from_millis(self.clock_ahead.load(Ordering::Relaxed))
    }

    /// Installs [`DSQL_SYS_SQL`] in `database` unless done before. A failure (a database that
    /// does not exist, say) is left for the client's own session to meet.
    async fn install_sys(&self, database: &str) {
        let mut with_sys = self.with_sys.lock().await;
        if with_sys.contains(database) {
            return;
        }
        let installed = async {
            let options = self.backend.superuser_options(database);
            let mut conn = sqlx::PgConnection::connect_with(&options).await?;
            sqlx::raw_sql(DSQL_SYS_SQL).execute(&mut conn).await?;
            conn.close().await
        };
        match installed.await {
            Ok(()) => {
                with_sys.insert(database.to_owned());
            }
            Err(error) => debug!(database, %error, "front door did not install sys"),
        }
    }

    /// Whether `user` has been onboarded in `database`: given an IAM identity with `AWS IAM
    /// GRANT` (a row in `dsql_local.iam_grants`). An error when the server cannot be asked
    /// (the mapping table is gone, the database does not exist…): the check has not decided,
    /// and the caller refuses the login.
    async fn onboarded(
        &self,
        database: &str,
        user: &str,
    ) -> std::result::Result<bool, sqlx::Error> {
        let options = self.backend.superuser_options(database);
        let mut conn = sqlx::PgConnection::connect_with(&options).await?;
        let found: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM dsql_local.iam_grants WHERE role = $1)",
        )
        .bind(user)
        .fetch_one(&mut conn)
        .await?;
        conn.close().await?;
        Ok(found)
    }
}

/// A running front door on a loopback port. Dropping it stops accepting and ends every
/// connection it relays.
pub struct FrontDoor {
    port: u16,
    clock_ahead: Arc<AtomicU64>,
    failures: CommitFailures,
    buffers: BufferGauge,
    traffic: TrafficCounters,
    latency: LatencyModel,
    accept: JoinHandle<()>,
}

impl FrontDoor {
    /// Serves each connection on `listener` ([`Listeners::bind`]: a port of `127.0.0.1` and
    /// `::1`, bound by the caller, who can so learn that a port is taken before anything else
    /// starts) as the module documentation says, relaying to the server (`backend`) with the
    /// statements judged by `policy` and DSQL's `limits` ([`relay`]).
    pub fn start_on(
        listener: Listeners,
        backend: Backend,
        tls: Arc<rustls::ServerConfig>,
        verifier: TokenVerifier,
        policy: impl Policy,
        limits: Limits,
    ) -> Result<Self> {
        let port = listener.port();
        let shared = Arc::new(Shared {
            backend,
            admission: Admission::new(limits.max_logins, limits.max_connections),
            tls: TlsAcceptor::from(tls),
            verifier,
            policy: Box::new(policy),
            context: Context {
                limits,
                ..Context::default()
            },
            with_sys: tokio::sync::Mutex::default(),
            clock_ahead: Arc::default(),
        });
        let clock_ahead = Arc::clone(&shared.clock_ahead);
        let failures = shared.context.failures.clone();
        let buffers = shared.context.buffers.clone();
        let traffic = shared.context.traffic.clone();
        let latency = shared.context.latency.clone();
        info!(port, "front door listening");
        let accept = tokio::spawn(accept_loop(listener, shared));
        Ok(Self {
            port,
            clock_ahead,
            failures,
            buffers,
            traffic,
            latency,
            accept,
        })
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Moves the clock that judges tokens' expiry `by` further ahead of the machine's, so that
    /// a test sees a token expire without waiting for it. Never moves back.
    pub fn advance_clock(&self, by: Duration) {
        let millis = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.clock_ahead.fetch_add(millis, Ordering::Relaxed);
    }

    /// The handle that makes a chosen session's next commit fail, for tests of retry code.
    pub fn commit_failures(&self) -> CommitFailures {
        self.failures.clone()
    }

    /// The bytes its sessions' buffers hold now ([`buffers`]): a few tens of KiB per session,
    /// plus a message being relayed, at most twice what of it has arrived.
    pub fn buffered_bytes(&self) -> usize {
        self.buffers.bytes()
    }

    /// What its clients were answered since it started, after their logins ([`traffic`]: round
    /// trips, statements, transactions, commits, rollbacks, write commits, modelled delay). A
    /// snapshot taken before and after some work ([`Traffic::since`]) is what the work cost.
    pub fn traffic(&self) -> Traffic {
        self.traffic.snapshot()
    }

    /// Switches the model of DSQL's latency on with `latency` (e.g. [`Latency::DSQL`]), or off
    /// with `None` ([`latency`]); from the next answer of every session on.
    pub fn set_latency(&self, latency: Option<Latency>) {
        self.latency.set(latency);
    }

    /// The latency model's delays in force; `None` when it is off (the default).
    pub fn latency(&self) -> Option<Latency> {
        self.latency.get()
    }
}

impl Drop for FrontDoor {
    fn drop(&mut self) {
        // The connections run in the loop's JoinSet, which aborts them when it is dropped.
        self.accept.abort();
    }
}

/// Accepts connections until aborted; each one runs in a task of its own.
async fn accept_loop(listener: Listeners, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, peer)) => {
                    let slot = shared.admission.login();
                    let shared = Arc::clone(&shared);
                    connections.spawn(async move {
                        if let Err(error) = serve(client, &shared, slot).await {
                            debug!(%peer, %error, "front door connection ended with an error");
                        }
                    });
                }
                Err(error) => {
                    // E.g. out of file descriptors: wait rather than spin.
                    debug!(%error, "front door accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// One client connection, from its first byte to the end of the relay. The login must be
/// done within [`LOGIN_TIMEOUT`], and ends early if a newer connection takes its `slot`.
async fn serve(client: TcpStream, shared: &Shared, mut slot: LoginSlot) -> io::Result<()> {
    let login = tokio::select! {
        login = tokio::time::timeout(LOGIN_TIMEOUT, login(client, shared)) => login
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no login within 30 s"))??,
        () = slot.evicted() => {
            return Err(io::Error::other("closed in login to make room for a newer connection"));
        }
    };
    drop(slot);
    match login {
        Some(session) => {
            let judge = relay::Judge {
                policy: shared.policy.as_ref(),
                context: &shared.context,
                database: &session.database,
            };
            let _place = session.place;
            relay::run(session.client, session.backend, judge).await
        }
        None => Ok(()),
    }
}

/// A logged-in client, its backend session, and its place among the front door's connections.
struct LoggedIn {
    client: TlsStream<TcpStream>,
    backend: TcpStream,
    database: String,
    place: OwnedSemaphorePermit,
}

/// The opening, TLS, a place among the connections, and the token check; then the backend
/// session, opened with the client's startup parameters. `None` when the connection ended
/// there (refused, or a cancel request passed on).
async fn login(mut client: TcpStream, shared: &Shared) -> io::Result<Option<LoggedIn>> {
    client.set_nodelay(true)?;
    // Direct TLS (PostgreSQL 17's `sslnegotiation=direct`) opens with a ClientHello, not an
    // `SSLRequest` (also after a refused GSSENCRequest); DSQL takes both.
    let direct = loop {
        if tls::starts_with_client_hello(&client).await? {
            break true;
        }
        match wire::read_opening(&mut client).await? {
            Opening::Ssl => {
                client.write_all(b"S").await?;
                break false;
            }
            Opening::GssEnc => client.write_all(b"N").await?,
            Opening::Cancel { packet, .. } => return ended(cancel(&shared.backend, &packet)).await,
            Opening::Startup { .. } => {
                return ended(refuse(&mut client, "28000", "SSL/TLS is required", None)).await;
            }
        }
    };
    let mut client = shared.tls.accept(client).await?;
    if direct && !tls::negotiated_postgresql(&client) {
        // As PostgreSQL 17: direct TLS without ALPN `postgresql` is closed, unanswered.
        info!("front door closed a direct TLS connection without ALPN postgresql");
        return ended(client.shutdown()).await;
    }
    let parameters = match wire::read_opening(&mut client).await? {
        Opening::Startup { parameters, .. } => parameters,
        Opening::Cancel { packet, .. } => return ended(cancel(&shared.backend, &packet)).await,
        Opening::Ssl | Opening::GssEnc => {
            let message = "unexpected encryption request";
            return ended(refuse(&mut client, "08P01", message, None)).await;
        }
    };
    let Some(place) = shared.admission.place() else {
        info!("front door refused a login: no place for another connection");
        let (code, message) = (TOO_MANY_CONNECTIONS_CODE, TOO_MANY_CONNECTIONS);
        return ended(refuse(&mut client, code, message, None)).await;
    };
    let Some(user) = parameters
        .iter()
        .find(|(name, _)| name == "user")
        .map(|(_, user)| user.clone())
    else {
        let message = "no PostgreSQL user name specified in startup packet";
        return ended(refuse(&mut client, "28000", message, None)).await;
    };
    // Replication and `_pq_.` protocol extensions are not DSQL's; sessions are plain ones.
    if let Some((name, _)) = parameters
        .iter()
        .find(|(name, _)| name == "replication" || name.starts_with("_pq_."))
    {
        let message = format!("unsupported startup parameter {name:?}");
        return ended(refuse(&mut client, "08P01", &message, None)).await;
    }
    client
        .write_all(&wire::cleartext_password_request())
        .await?;
    client.flush().await?;
    let message = match wire::read_message(&mut client, MAX_PASSWORD_LEN).await? {
        Some(message) if message.tag == b'p' => message,
        _ => {
            let message = "expected a password message";
            return ended(refuse(&mut client, "08P01", message, None)).await;
        }
    };
    let refused = match wire::password(&message.body) {
        // The server's superuser is exempt from the in-server rules: not a role DSQL has, so
        // nobody logs in as it through the front door.
        _ if user == super::SUPERUSER => {
            Some("the server's superuser does not log in through the front door".to_owned())
        }
        Err(_) => Some("the password is not text".to_owned()),
        Ok(token) => shared
            .verifier
            .verify(token, &user, shared.now())
            .err()
            .map(|refusal| refusal.reason),
    };
    if let Some(reason) = refused {
        info!(user, reason, "front door refused a login");
        return ended(refuse(&mut client, INVALID_PASSWORD, ACCESS_DENIED, None)).await;
    }
    // What the session may start with: only settings DSQL accepts, none of the stand-in's own.
    let startup = parameters.iter().map(|(n, v)| (n.as_str(), v.as_str()));
    if let Some(refusal) = guards::startup_refusal(startup) {
        info!(
            user,
            code = refusal.code,
            "front door refused a startup parameter"
        );
        return ended(refuse(&mut client, refusal.code, &refusal.message, None)).await;
    }
    let database = parameters
        .iter()
        .find(|(name, _)| name == "database")
        .map_or(user.as_str(), |(_, database)| database.as_str());
    shared.install_sys(database).await;
    if user != super::ADMIN_USER {
        match shared.onboarded(database, &user).await {
            Ok(true) => {}
            Ok(false) => {
                info!(user, "front door refused a role without AWS IAM GRANT");
                let hint = format!(
                    "role {user:?} has no IAM identity: as admin, run `app user create {user} --iam-role <role ARN>` (AWS IAM GRANT)"
                );
                return ended(refuse(
                    &mut client,
                    INVALID_AUTHORIZATION,
                    ACCESS_DENIED,
                    Some(&hint),
                ))
                .await;
            }
            // Fail closed: what cannot be checked is refused, the reason only in this log.
            Err(error) => {
                warn!(user, database, %error, "front door refused a login: its AWS IAM GRANT mapping could not be checked");
                return ended(refuse(
                    &mut client,
                    INVALID_AUTHORIZATION,
                    ACCESS_DENIED,
                    None,
                ))
                .await;
            }
        }
    }
    let startup = wire::startup_message(
        parameters
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str())),
    );
    match shared.backend.open_session(&user, &startup).await {
        Ok(Session::Open(backend)) => {
            debug!(user, "front door relays a session");
            Ok(Some(LoggedIn {
                client,
                backend,
                database: database.to_owned(),
                place,
            }))
        }
        Ok(Session::Refused(error)) => {
            client.write_all(&error).await?;
            ended(client.shutdown()).await
        }
        Err(error) => {
            let message = format!("the server behind the front door is unreachable: {error}");
            refuse(&mut client, "08006", &message, None).await?;
            Err(error)
        }
    }
}

/// `Ok(None)` once `step`, the last thing a connection does, is done.
async fn ended<T>(step: impl Future<Output = io::Result<()>>) -> io::Result<Option<T>> {
    step.await.map(|()| None)
}

/// Passes a `CancelRequest` on to the server, which matches it to its own backend keys (the
/// relay forwards `BackendKeyData` untouched).
async fn cancel(backend: &Backend, packet: &[u8]) -> io::Result<()> {
    let mut server = backend.connect().await?;
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
