//! A tap that shows a test the command tags of a session (`INSERT 0 1`, `COMMIT`, `ROLLBACK`…),
//! which sqlx reduces to a row count.
//!
//! The client (sqlx, without TLS) connects to the tap; the tap opens the TLS session to the
//! front door the way a DSQL client does (`SSLRequest`, then TLS verifying the front door's
//! certificate against its CA and host name), relays the client's bytes unchanged, and relays
//! the server's messages one by one, noting the tag of every `CommandComplete` before passing
//! it on. So by the time sqlx has read a statement's result, its tag is in [`Tags`].

use std::sync::{Arc, Mutex, PoisonError};

use app::local::front_door::tls::client_config;
use app::local::front_door::wire::read_frame;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;

/// `SSLRequest`: length 8, code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 4, 210, 22, 47];
/// The largest server message the tap relays (PostgreSQL's own limit is 1 GiB).
const MAX_BODY: usize = 1 << 30;

/// The command tags a session received so far, in order.
#[derive(Clone, Debug, Default)]
pub struct Tags(Arc<Mutex<Vec<String>>>);

impl Tags {
    /// The tags received since the last call.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn push(&self, tag: String) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(tag);
    }
}

/// Where a tapped session goes: the front door's port, host name and CA.
pub struct Tap {
    tls: TlsConnector,
    host: ServerName<'static>,
    door_port: u16,
}

impl Tap {
    /// A tap for the front door on `door_port`, whose certificate for `host` is signed by the
    /// CA in `ca_pem`.
    pub fn new(door_port: u16, host: &str, ca_pem: &str) -> Self {
        let config = client_config(ca_pem).expect("a client configuration for the CA");
        Self {
            tls: TlsConnector::from(config),
            host: ServerName::try_from(host.to_owned()).expect("a host name"),
            door_port,
        }
    }

    /// A listener for one session: the port the client connects to (plain TCP), and the tags
    /// that session will receive. The relay runs until either side closes.
    pub async fn open(&self) -> (u16, Tags) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let port = listener.local_addr().expect("the tap's address").port();
        let tags = Tags::default();
        let (tls, host, door_port) = (self.tls.clone(), self.host.clone(), self.door_port);
        let noted = tags.clone();
        tokio::spawn(async move {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let _ = relay(client, tls, host, door_port, noted).await;
        });
        (port, tags)
    }
}

/// Relays one session: the client's bytes as they come, the server's message by message.
async fn relay(
    client: TcpStream,
    tls: TlsConnector,
    host: ServerName<'static>,
    door_port: u16,
    tags: Tags,
) -> std::io::Result<()> {
    let mut door = TcpStream::connect(("127.0.0.1", door_port)).await?;
    door.write_all(&SSL_REQUEST).await?;
    if door.read_u8().await? != b'S' {
        return Err(std::io::Error::other("the front door refused TLS"));
    }
    let door = tls.connect(host, door).await?;
    let (mut client_in, mut client_out) = client.into_split();
    let (mut door_in, mut door_out) = tokio::io::split(door);
    let upstream = async {
        tokio::io::copy(&mut client_in, &mut door_out).await?;
        door_out.shutdown().await
    };
    let downstream = async {
        let mut frame = Vec::new();
        while read_frame(&mut door_in, MAX_BODY, &mut frame).await? {
            if frame[0] == b'C' {
                let tag = frame[5..].strip_suffix(b"\0").unwrap_or(&frame[5..]);
                tags.push(String::from_utf8_lossy(tag).into_owned());
            }
            client_out.write_all(&frame).await?;
        }
        client_out.shutdown().await
    };
    tokio::try_join!(upstream, downstream).map(|_| ())
}
