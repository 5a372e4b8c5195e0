//! A client of the front door written by hand, for tests that send what no driver would: the
//! `SSLRequest` and TLS, a startup message, a password, then raw frames.

use secrecy::ExposeSecret;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use app::dsql::token::TokenSource;
use app::local::front_door::tls::client_config;
use app::local::front_door::wire;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::door::{Door, HOST};

/// A TLS session with the front door.
pub type Stream = TlsStream<TcpStream>;

/// `SSLRequest`: length 8, code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 4, 210, 22, 47];

/// How a client opens TLS with the front door.
#[derive(Clone, Debug)]
pub enum Opening {
    /// `SSLRequest`, its `S`, then the handshake, with ALPN `postgresql`.
    SslRequest,
    /// The handshake at once (PostgreSQL 17's `sslnegotiation=direct`), offering these ALPN
    /// protocols (none: no ALPN extension).
    Direct(Vec<&'static [u8]>),
}

/// A TLS connection to the front door (after `SSLRequest` and its `S`), trusting its CA.
pub async fn tls(door: &Door) -> Stream {
    tls_by(door, Opening::SslRequest, IpAddr::from(Ipv4Addr::LOCALHOST))
        .await
        .expect("a TLS session")
}

/// A TLS connection to the front door at `address`, opened as `opening` says, trusting its CA
/// and verifying its certificate for [`HOST`]; the handshake's error if it fails.
pub async fn tls_by(door: &Door, opening: Opening, address: IpAddr) -> std::io::Result<Stream> {
    let mut tcp = TcpStream::connect((address, door.port()))
        .await
        .expect("reach the front door");
    let ca = std::fs::read_to_string(door.ca_file.path()).expect("the CA file");
    let mut config = client_config(&ca).expect("a client configuration");
    match opening {
        Opening::SslRequest => {
            tcp.write_all(&SSL_REQUEST).await.expect("SSLRequest");
            let mut answer = [0_u8; 1];
            tcp.read_exact(&mut answer).await.expect("an answer");
            assert_eq!(&answer, b"S");
        }
        Opening::Direct(alpn) => {
            Arc::make_mut(&mut config).alpn_protocols =
                alpn.iter().map(|protocol| protocol.to_vec()).collect();
        }
    }
    let name = ServerName::try_from(HOST).expect("a server name");
    TlsConnector::from(config).connect(name, tcp).await
}

/// A TLS connection that has sent its startup message for `user` and `database` and answered
/// the password request with `password`.
pub async fn send_password(door: &Door, user: &str, database: &str, password: &str) -> Stream {
    send_password_on(tls(door).await, user, database, password).await
}

/// [`send_password`] on `stream`, a TLS session opened by the caller.
pub async fn send_password_on(
    mut stream: Stream,
    user: &str,
    database: &str,
    password: &str,
) -> Stream {
    let startup = wire::startup_message([("user", user), ("database", database)]);
    stream.write_all(&startup).await.expect("startup");
    let request = wire::read_message(&mut stream, 1024)
        .await
        .expect("read")
        .expect("a password request");
    assert_eq!(request.tag, b'R', "the front door asks for the password");
    let mut body = password.as_bytes().to_vec();
    body.push(0);
    let mut message = Vec::new();
    wire::put_message(&mut message, b'p', &body);
    stream.write_all(&message).await.expect("the password");
    stream.flush().await.expect("flush");
    stream
}

/// Every byte the front door sends on `stream` until it closes the connection; panics if it
/// is still open after `within`.
pub async fn read_until_closed<S: AsyncRead + Unpin>(stream: &mut S, within: Duration) -> Vec<u8> {
    let mut received = Vec::new();
    let until = tokio::time::Instant::now() + within;
    let mut chunk = vec![0_u8; 16 * 1024];
    loop {
        match tokio::time::timeout_at(until, stream.read(&mut chunk)).await {
            Ok(Ok(0) | Err(_)) => return received,
            Ok(Ok(n)) => received.extend_from_slice(&chunk[..n]),
            Err(_) => panic!(
                "the front door kept the connection open for {within:?}, after {} bytes",
                received.len()
            ),
        }
    }
}

/// A session logged in as `admin` by hand (startup, token), past its first `ReadyForQuery`.
pub async fn logged_in(door: &Door, database: &str) -> Stream {
    logged_in_on(door, tls(door).await, database).await
}

/// [`logged_in`] on `stream`, a TLS session opened by the caller.
pub async fn logged_in_on(door: &Door, stream: Stream, database: &str) -> Stream {
    let source = door
        .tokens("admin", &door.secret, Duration::from_secs(900))
        .await;
    let token = source.token().await.expect("a token");
    let mut stream =
        send_password_on(stream, "admin", database, token.secret.expose_secret()).await;
    loop {
        let message = wire::read_message(&mut stream, 1 << 20)
            .await
            .expect("read")
            .expect("the login's answers");
        assert_ne!(message.tag, b'E', "the login failed");
        if message.tag == b'Z' {
            return stream;
        }
    }
}
