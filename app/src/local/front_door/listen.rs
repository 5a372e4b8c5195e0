//! Where the front door listens: one port on both loopback addresses, `127.0.0.1` and `::1`,
//! as a client that resolves the stand-in's name (or `localhost`) may try either.
//!
//! The port is the one asked for, or any free one (0). A port another program has is an
//! [`Error::PortTaken`] naming it and the fix. A machine without IPv6 gets `127.0.0.1` only
//! (logged), since a client there cannot dial `::1` either.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::net::{TcpListener, TcpStream};
use tracing::warn;

use crate::local::error::{Error, Result};

/// How often a free port of `127.0.0.1` is tried again when `::1` has it already.
const FREE_PORT_ATTEMPTS: usize = 16;

/// The front door's listening sockets: the same port on `127.0.0.1` and, where the machine
/// has IPv6, on `::1`.
#[derive(Debug)]
pub struct Listeners {
    v4: TcpListener,
    v6: Option<TcpListener>,
    port: u16,
}

impl Listeners {
    /// Listens on `port` of both loopback addresses, or on a port free on both when `port` is
    /// 0. Fails with [`Error::PortTaken`] when `port` is taken on either address.
    pub async fn bind(port: u16) -> Result<Self> {
        if port != 0 {
            let v4 = TcpListener::bind((Ipv4Addr::LOCALHOST, port))
                .await
                .map_err(|source| taken_or_io(port, source))?;
            let v6 = bind_v6(port)
                .await
                .map_err(|source| taken_or_io(port, source))?;
            return Ok(Self { v4, v6, port });
        }
        for _ in 0..FREE_PORT_ATTEMPTS {
            let v4 = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .await
                .map_err(Error::io("listen for the front door"))?;
            let port = v4
                .local_addr()
                .map_err(Error::io("read the front door's address"))?
                .port();
            match bind_v6(port).await {
                Ok(v6) => return Ok(Self { v4, v6, port }),
                // Free on 127.0.0.1 but not on ::1: try another.
                Err(error) if error.kind() == io::ErrorKind::AddrInUse => {}
                Err(error) => return Err(Error::io("listen for the front door on ::1")(error)),
            }
        }
        Err(Error::io("find a port free on both 127.0.0.1 and ::1")(
            io::Error::from(io::ErrorKind::AddrInUse),
        ))
    }

    /// The port listened on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The next connection on either address.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        match &self.v6 {
            Some(v6) => tokio::select! {
                accepted = self.v4.accept() => accepted,
                accepted = v6.accept() => accepted,
            },
            None => self.v4.accept().await,
        }
    }
}

/// Listens on `port` of `::1`; `None` where the machine has no IPv6 loopback.
async fn bind_v6(port: u16) -> io::Result<Option<TcpListener>> {
    match TcpListener::bind((Ipv6Addr::LOCALHOST, port)).await {
        Ok(listener) => Ok(Some(listener)),
        Err(error)
            if matches!(
                error.kind(),
                io::ErrorKind::AddrNotAvailable | io::ErrorKind::Unsupported
            ) || error.raw_os_error() == Some(nix::libc::EAFNOSUPPORT) =>
        {
            warn!(%error, "no IPv6 loopback: the front door listens on 127.0.0.1 only");
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

/// [`Error::PortTaken`] for a port in use, else an [`Error::Io`].
fn taken_or_io(port: u16, source: io::Error) -> Error {
    if source.kind() == io::ErrorKind::AddrInUse {
        Error::PortTaken { port, source }
    } else {
        Error::io(format!("listen for the front door on port {port}"))(source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_free_port_is_the_same_on_both_loopback_addresses() {
        let listeners = Listeners::bind(0).await.expect("listen");
        let port = listeners.port();
        let v6 = listeners.v6.as_ref().expect("this machine has ::1");
        assert_eq!(v6.local_addr().expect("address").port(), port);
        for address in [
            SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            SocketAddr::from((Ipv6Addr::LOCALHOST, port)),
        ] {
            let (dialled, accepted) = tokio::join!(TcpStream::connect(address), listeners.accept());
            let dialled = dialled.unwrap_or_else(|error| panic!("dial {address}: {error}"));
            let (_, peer) = accepted.expect("accept");
            assert_eq!(peer, dialled.local_addr().expect("local address"));
        }
    }

    #[tokio::test]
    async fn a_taken_port_is_an_error_naming_it_and_the_fix() {
        let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("occupy a port");
        let port = taken.local_addr().expect("address").port();
        let error = Listeners::bind(port).await.expect_err("the port is taken");
        assert!(
            matches!(error, Error::PortTaken { port: p, .. } if p == port),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains(&format!("port {port} is taken")),
            "{message}"
        );
        assert!(message.contains("--port N"), "{message}");
    }
}
