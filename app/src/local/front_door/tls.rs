//! The front door's TLS: a certificate authority minted at start-up, and a server certificate
//! it signs for the names clients connect to.
//!
//! DSQL only accepts TLS, and its clients verify the server (`sslmode=verify-full`). The
//! stand-in does the same with a CA of its own: [`LocalCa::write_ca`] puts the CA certificate
//! where clients can trust it (`sslrootcert`), and [`LocalCa::server_config`] serves the
//! server certificate. The CA's private key is dropped as soon as the server certificate is
//! signed, so nothing else can ever be issued under it; the server's key never leaves memory.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::local::error::{Error, Result};

/// The ALPN protocol name PostgreSQL uses for direct TLS (PostgreSQL 17+ clients ask for it).
const ALPN_POSTGRESQL: &[u8] = b"postgresql";

/// The first byte of a TLS record carrying a handshake message: how a ClientHello starts. An
/// `SSLRequest` or startup message starts with its length's high byte, 0 for any message the
/// front door takes at that point.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// The subject of the generated CA certificate.
const CA_NAME: &str = "SeaORM DSQL local stand-in CA";

/// The subject of the generated server certificate.
const SERVER_NAME: &str = "SeaORM DSQL local stand-in";

/// A certificate authority generated for one run of the stand-in, and a server certificate it
/// signed. Both keys are ECDSA P-256. Its `Debug` shows the host names only, never a key.
pub struct LocalCa {
    hosts: Vec<String>,
    ca_pem: String,
    server_cert: CertificateDer<'static>,
    server_key: PrivatePkcs8KeyDer<'static>,
}

impl LocalCa {
    /// Mints a fresh CA (a self-signed `CA:TRUE` certificate without a path-length limit, for
    /// signing certificates and CRLs only, named "SeaORM DSQL local stand-in CA" with a
    /// random organizational unit, so no two CAs share a name) and a server
    /// certificate signed by it for TLS server authentication, whose subject alternative names
    /// are exactly `hosts`: an entry that parses as an IPv4 or IPv6 address becomes an IP
    /// address SAN, any other a DNS name SAN.
    ///
    /// Fails with [`Error::Tls`] if `hosts` is empty or an entry is not a possible DNS name
    /// (for instance non-ASCII), or if key generation or signing fails.
    pub fn generate(hosts: &[&str]) -> Result<Self> {
        if hosts.is_empty() {
            return Err(Error::Tls(
                "no host names for the server certificate; give at least one, e.g. \"localhost\""
                    .to_owned(),
            ));
        }
        let tls_error = |what: &str| {
            let what = what.to_owned();
            move |error: rcgen::Error| Error::Tls(format!("{what}: {error}"))
        };

        let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(tls_error("generate the CA's key"))?;
        let mut ca_params = CertificateParams::default();
        // Each CA gets a name of its own: a client that trusts the CA of an earlier run then
        // reports an unknown issuer, not a bad signature from a CA of the same name.
        ca_params.distinguished_name = common_name(CA_NAME);
        ca_params.distinguished_name.push(
            DnType::OrganizationalUnitName,
            format!("run {}", uuid::Uuid::new_v4().simple()),
        );
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .map_err(tls_error("sign the CA certificate"))?;
        let issuer = Issuer::new(ca_params, ca_key);

        let names: Vec<String> = hosts.iter().map(|&host| host.to_owned()).collect();
        // `CertificateParams::new` makes an IP address SAN of every entry that parses as one,
        // and a DNS name SAN of the others.
        let mut server_params = CertificateParams::new(names.clone()).map_err(|error| {
            Error::Tls(format!(
                "the host names {names:?} cannot all go into a certificate: {error}"
            ))
        })?;
        server_params.distinguished_name = common_name(SERVER_NAME);
        server_params.is_ca = IsCa::ExplicitNoCa;
        server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        server_params.use_authority_key_identifier_extension = true;
        let server_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(tls_error("generate the server's key"))?;
        let server_cert = server_params
            .signed_by(&server_key, &issuer)
            .map_err(tls_error("sign the server certificate"))?;

        Ok(Self {
            hosts: names,
            ca_pem: ca_cert.pem(),
            server_cert: server_cert.der().clone(),
            server_key: PrivatePkcs8KeyDer::from(server_key.serialize_der()),
        })
    }

    /// The CA certificate in PEM (one `CERTIFICATE` block, no key): what a client needs to
    /// verify the server.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Writes [`LocalCa::ca_pem`] to `path`, replacing the file if it exists. Only the CA
    /// certificate is written, never a private key. Fails with [`Error::Io`] naming the path.
    pub fn write_ca(&self, path: &Path) -> Result<()> {
        std::fs::write(path, &self.ca_pem).map_err(Error::io(format!(
            "write the local CA certificate to {}",
            path.display()
        )))
    }

    /// A rustls server configuration that presents the server certificate, on the `ring`
    /// provider (named explicitly: with two providers compiled in, rustls' default builder
    /// panics), with rustls' safe default protocol versions (TLS 1.2 and 1.3), no client
    /// certificates, and ALPN `postgresql`. Fails with [`Error::Tls`] if rustls refuses the
    /// certificate or key.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| Error::Tls(format!("choose the TLS versions: {error}")))?
            .with_no_client_auth()
            .with_single_cert(
                vec![self.server_cert.clone()],
                PrivateKeyDer::Pkcs8(self.server_key.clone_key()),
            )
            .map_err(|error| Error::Tls(format!("load the server certificate: {error}")))?;
        config.alpn_protocols = vec![ALPN_POSTGRESQL.to_vec()];
        Ok(Arc::new(config))
    }
}

/// Whether the client opened with a TLS ClientHello (direct TLS) rather than a PostgreSQL
/// message: reads its first byte without taking it from the stream. A connection closed before
/// its first byte is not direct TLS (the reading that follows meets the end).
pub async fn starts_with_client_hello(client: &tokio::net::TcpStream) -> std::io::Result<bool> {
    let mut first = [0u8; 1];
    let read = client.peek(&mut first).await?;
    Ok(read == 1 && first[0] == TLS_HANDSHAKE_RECORD)
}

/// Whether the TLS handshake settled on ALPN `postgresql`, which PostgreSQL 17 requires of a
/// direct TLS connection (so that a TLS connection meant for another protocol cannot be
/// taken for a PostgreSQL one).
pub fn negotiated_postgresql<S>(stream: &tokio_rustls::server::TlsStream<S>) -> bool {
    stream.get_ref().1.alpn_protocol() == Some(ALPN_POSTGRESQL)
}

/// A rustls client configuration, on the `ring` provider, that trusts only the certificates in
/// `ca_pem` and asks for ALPN `postgresql`: how a DSQL client verifies the front door, for a
/// client that speaks the wire protocol itself (the conformance test's tap). Fails with
/// [`Error::Tls`] if `ca_pem` holds no usable certificate.
pub fn client_config(ca_pem: &str) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|error| Error::Tls(format!("read the CA certificate: {error}")))?;
        roots
            .add(cert)
            .map_err(|error| Error::Tls(format!("trust the CA certificate: {error}")))?;
    }
    if roots.is_empty() {
        return Err(Error::Tls("no CA certificate to trust".to_owned()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| Error::Tls(format!("choose the TLS versions: {error}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_POSTGRESQL.to_vec()];
    Ok(Arc::new(config))
}

impl fmt::Debug for LocalCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalCa")
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

/// A distinguished name with only a common name.
fn common_name(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

#[cfg(test)]
mod tests {
    use super::*;

    use rustls::CertificateError;
    use rustls::pki_types::ServerName;
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    const DSQL_HOST: &str = "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws";
    const HOSTS: [&str; 4] = ["localhost", "127.0.0.1", "::1", DSQL_HOST];

    /// [`client_config`] for `ca_pem`, which must hold exactly one certificate.
    fn trusting(ca_pem: &str) -> Arc<rustls::ClientConfig> {
        let certificates = CertificateDer::pem_slice_iter(ca_pem.as_bytes()).count();
        assert_eq!(certificates, 1, "ca_pem holds exactly one certificate");
        client_config(ca_pem).expect("a client configuration")
    }

    /// Runs a TLS handshake between a server with `server` and a client trusting `client_ca`
    /// that connects to `host`, over an in-memory pipe. Returns the client's outcome: the ALPN
    /// protocol it negotiated, or its error.
    async fn handshake(
        server: Arc<rustls::ServerConfig>,
        client_ca: &str,
        host: &str,
    ) -> std::io::Result<Option<Vec<u8>>> {
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let name = ServerName::try_from(host.to_owned()).expect("a server name");
        let acceptor = TlsAcceptor::from(server);
        let connector = TlsConnector::from(trusting(client_ca));
        let (client, _server) = tokio::join!(
            connector.connect(name, client_io),
            acceptor.accept(server_io)
        );
        client.map(|stream| stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec))
    }

    /// The rustls error inside a failed handshake's I/O error.
    fn rustls_error(error: &std::io::Error) -> &rustls::Error {
        error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .unwrap_or_else(|| panic!("not a rustls error: {error}"))
    }

    #[tokio::test]
    async fn a_client_trusting_the_ca_completes_the_handshake_for_every_host() {
        let ca = LocalCa::generate(&HOSTS).expect("a CA");
        let server = ca.server_config().expect("a server config");
        for host in HOSTS {
            let alpn = handshake(Arc::clone(&server), ca.ca_pem(), host)
                .await
                .unwrap_or_else(|error| panic!("handshake for {host}: {error}"));
            assert_eq!(alpn.as_deref(), Some(ALPN_POSTGRESQL), "ALPN for {host}");
        }
    }

    #[tokio::test]
    async fn a_client_trusting_another_ca_gets_unknown_issuer() {
        let ca = LocalCa::generate(&HOSTS).expect("a CA");
        let other = LocalCa::generate(&HOSTS).expect("another CA");
        let server = ca.server_config().expect("a server config");
        for host in ["localhost", DSQL_HOST] {
            let error = handshake(Arc::clone(&server), other.ca_pem(), host)
                .await
                .expect_err("a handshake with the wrong CA must fail");
            assert_eq!(
                rustls_error(&error),
                &rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
                "{host}"
            );
        }
    }

    #[tokio::test]
    async fn a_host_missing_from_the_certificate_is_refused() {
        let ca = LocalCa::generate(&["localhost"]).expect("a CA");
        let server = ca.server_config().expect("a server config");
        for host in ["127.0.0.1", DSQL_HOST] {
            let error = handshake(Arc::clone(&server), ca.ca_pem(), host)
                .await
                .expect_err("a name not in the certificate must fail");
            assert!(
                matches!(
                    rustls_error(&error),
                    rustls::Error::InvalidCertificate(
                        CertificateError::NotValidForName
                            | CertificateError::NotValidForNameContext { .. }
                    )
                ),
                "{host}: {error}"
            );
        }
    }

    #[test]
    fn write_ca_writes_the_ca_certificate_and_no_key() {
        let ca = LocalCa::generate(&HOSTS).expect("a CA");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "old contents").expect("a file to replace");
        ca.write_ca(&path).expect("write ca.pem");
        let written = std::fs::read_to_string(&path).expect("read ca.pem");
        assert_eq!(written, ca.ca_pem());
        assert!(
            written.starts_with("-----BEGIN CERTIFICATE-----"),
            "{written}"
        );
        assert_eq!(written.matches("-----BEGIN").count(), 1, "{written}");
        assert!(!written.contains("PRIVATE KEY"), "{written}");
        assert!(!format!("{ca:?}").contains("PRIVATE"));
    }

    #[test]
    fn write_ca_names_the_path_it_could_not_write() {
        let ca = LocalCa::generate(&["localhost"]).expect("a CA");
        let path = Path::new("/nonexistent-directory/ca.pem");
        let error = ca.write_ca(path).expect_err("no such directory");
        assert!(matches!(error, Error::Io { .. }), "{error:?}");
        assert!(
            error.to_string().contains("/nonexistent-directory/ca.pem"),
            "{error}"
        );
    }

    #[test]
    fn generate_refuses_no_hosts_and_impossible_names() {
        assert!(matches!(LocalCa::generate(&[]), Err(Error::Tls(_))));
        assert!(matches!(
            LocalCa::generate(&["bäd.example"]),
            Err(Error::Tls(_))
        ));
    }

    #[test]
    fn each_ca_is_fresh() {
        let first = LocalCa::generate(&["localhost"]).expect("a CA");
        let second = LocalCa::generate(&["localhost"]).expect("a CA");
        assert_ne!(first.ca_pem(), second.ca_pem());
    }
}
