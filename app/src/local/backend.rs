//! How the front door reaches the server behind it: over loopback TCP, each session logged in
//! with SCRAM-SHA-256 as the client's own role, with that role's stand-in password
//! ([`RolePasswords`]), which only this process knows.
//!
//! Why the client's own role, and not the superuser followed by `SET ROLE` or `SET SESSION
//! AUTHORIZATION`: a session that logged in as the superuser stays able to become it again
//! (`RESET ROLE`, `SET SESSION AUTHORIZATION DEFAULT`, `DISCARD ALL`, `set_config`, …), so
//! every such route would have to be found and refused; a session that logged in as the role
//! has nothing to return to. Why TCP and not a Unix socket: the socket would be a file in a
//! directory the server's OS user writes, which that user could replace with its own, and
//! learn the passwords sent there; the TCP port is held by the server for as long as it runs.
//!
//! A role's stand-in password is set lazily: a role the front door cannot log in as (created
//! through the front door without one, or given another) gets it — as a SCRAM verifier, by
//! the superuser — and the login is tried once more.

use secrecy::ExposeSecret;
use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};

use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, PgConnection};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing::debug;

use super::front_door::wire;
use super::role_passwords::RolePasswords;
use super::scram::{self, SaltedKeys};
use super::{DATABASE, SUPERUSER, quote_identifier};

/// The largest authentication message read from the server.
const MAX_AUTH_MESSAGE: usize = 64 * 1024;
/// SQLSTATE `invalid_password`: the server's refusal of a password login.
const INVALID_PASSWORD: &str = "28P01";
/// Salted keys kept at most (per role and salt; a role's salt changes only when its password
/// is set again).
const MAX_KEPT_KEYS: usize = 1024;

/// What salted keys are kept for: a role, a salt and an iteration count.
type KeysFor = (String, Vec<u8>, u32);

/// The way to a [`LocalServer`](super::LocalServer) for the front door: its port and its
/// roles' passwords.
#[derive(Clone, Debug)]
pub struct Backend {
    port: u16,
    passwords: RolePasswords,
    keys: Arc<Mutex<HashMap<KeysFor, SaltedKeys>>>,
    /// Held while a role's password is set: two `ALTER ROLE`s of one role at once fail.
    setting_password: Arc<tokio::sync::Mutex<()>>,
}

/// A backend session being opened.
#[derive(Debug)]
pub enum Session {
    /// Logged in: the next message is the server's `AuthenticationOk`, then the session's
    /// parameters, as the client expects them.
    Open(TcpStream),
    /// The server refused the login: its `ErrorResponse`, to pass on to the client.
    Refused(Vec<u8>),
}

impl Backend {
    /// The server on loopback `port`, whose roles have `passwords`.
    pub(super) fn new(port: u16, passwords: RolePasswords) -> Self {
        Self {
            port,
            passwords,
            keys: Arc::default(),
            setting_password: Arc::default(),
        }
    }

    /// A TCP connection to the server, not logged in (for a `CancelRequest`).
    pub async fn connect(&self) -> io::Result<TcpStream> {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    /// Options to log in to `database` as the server's superuser, statements not logged.
    pub fn superuser_options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new_without_pgpass()
            .host("127.0.0.1")
            .port(self.port)
            .username(SUPERUSER)
            .password(self.passwords.of(SUPERUSER).expose_secret())
            .database(database)
            .disable_statement_logging()
    }

    /// Opens a session as `user` with `startup` (the client's `StartupMessage`, `user`
    /// included) and logs it in. If the server refuses `user`'s stand-in password, sets it and
    /// tries once more.
    pub async fn open_session(&self, user: &str, startup: &[u8]) -> io::Result<Session> {
        let refusal = match self.log_in(user, startup).await? {
            Session::Refused(error) if sqlstate(&error) == Some(INVALID_PASSWORD) => error,
            session => return Ok(session),
        };
        if let Err(error) = self.set_password(user).await {
            debug!(user, %error, "front door could not set a role's password");
            return Ok(Session::Refused(refusal));
        }
        self.log_in(user, startup).await
    }

    /// One login attempt: the startup message, then SCRAM, the server's signature checked.
    async fn log_in(&self, user: &str, startup: &[u8]) -> io::Result<Session> {
        let mut server = self.connect().await?;
        server.write_all(startup).await?;
        let mut client = scram::Client::new();
        let mut step = 0;
        loop {
            let Some(message) = wire::read_message(&mut server, MAX_AUTH_MESSAGE).await? else {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection during login",
                ));
            };
            if message.tag == b'E' {
                let mut error = Vec::new();
                wire::put_message(&mut error, b'E', &message.body);
                return Ok(Session::Refused(error));
            }
            let (code, data) = match (message.tag, message.body.split_first_chunk::<4>()) {
                (b'R', Some((code, data))) => (u32::from_be_bytes(*code), data),
                _ => return Err(protocol_error("an unexpected message during login")),
            };
            // Only SCRAM, in order: a server that offers less (or skips a step) is refused.
            let mut reply = Vec::new();
            match (step, code) {
                (0, 10) if mechanisms(data).any(|m| m == scram::MECHANISM) => {
                    let first = client.first_message();
                    let mut body = format!("{}\0", scram::MECHANISM).into_bytes();
                    body.extend_from_slice(&u32::try_from(first.len()).unwrap_or(0).to_be_bytes());
                    body.extend_from_slice(first.as_bytes());
                    wire::put_message(&mut reply, b'p', &body);
                }
                (1, 11) => {
                    let server_first = std::str::from_utf8(data).map_err(protocol_error)?;
                    let last = client
                        .final_message(server_first, |salt, iterations| {
                            self.keys_for(user, salt, iterations)
                        })
                        .map_err(protocol_error)?;
                    wire::put_message(&mut reply, b'p', last.as_bytes());
                }
                (2, 12) => {
                    let server_final = std::str::from_utf8(data).map_err(protocol_error)?;
                    client.verify_server(server_final).map_err(protocol_error)?;
                    return Ok(Session::Open(server));
                }
                _ => return Err(protocol_error("the server did not ask for SCRAM-SHA-256")),
            }
            server.write_all(&reply).await?;
            step += 1;
        }
    }

    /// `user`'s salted keys for `salt` and `iterations`, derived once and kept.
    fn keys_for(&self, user: &str, salt: &[u8], iterations: u32) -> SaltedKeys {
        let key = (user.to_owned(), salt.to_vec(), iterations);
        if let Some(keys) = self
            .keys
            .lock()
            .ok()
            .and_then(|kept| kept.get(&key).cloned())
        {
            return keys;
        }
        let keys = SaltedKeys::derive(&self.passwords.of(user), salt, iterations);
        if let Ok(mut kept) = self.keys.lock() {
            if kept.len() >= MAX_KEPT_KEYS {
                kept.clear();
            }
            kept.insert(key, keys.clone());
        }
        keys
    }

    /// Gives `user` its stand-in password (as a verifier, which is all the server learns),
    /// valid for ever, as the superuser.
    async fn set_password(&self, user: &str) -> Result<(), sqlx::Error> {
        let _one_at_a_time = self.setting_password.lock().await;
        let mut conn = PgConnection::connect_with(&self.superuser_options(DATABASE)).await?;
        let sql = format!(
            "ALTER ROLE {} WITH PASSWORD '{}' VALID UNTIL 'infinity'",
            quote_identifier(user),
            scram::verifier(&self.passwords.of(user))
        );
        sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut conn).await?;
        conn.close().await
    }
}

/// The SASL mechanisms of an `AuthenticationSASL` message.
fn mechanisms(data: &[u8]) -> impl Iterator<Item = &str> {
    data.split(|&byte| byte == 0)
        .filter(|name| !name.is_empty())
        .filter_map(|name| std::str::from_utf8(name).ok())
}

/// The SQLSTATE of an `ErrorResponse` message (tag and length included).
fn sqlstate(error: &[u8]) -> Option<&str> {
    super::front_door::relay::error_field(error.get(5..)?, b'C')
}

/// An [`io::ErrorKind::InvalidData`] error: the server broke the protocol.
fn protocol_error(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}
