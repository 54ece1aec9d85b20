//! TLS to servers (a backend's or a server's `tls:`), and for health checks over TLS.
//!
//! Everything is built when a config is applied: the CA and client certificate files are read
//! then (a bad one fails the apply, naming the file and why), and each server gets one rustls
//! client configuration of its own, whose session cache lets its later connections resume
//! (TLS 1.3 tickets, TLS 1.2 session IDs and tickets) rather than do a full handshake. A reload
//! builds new ones, so the files are read afresh and the next connection to each server is a
//! full handshake.

use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, InconsistentKeys, RootCertStore,
    SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::{
    file_error, read_chain, read_key, read_roots, FileProblem, FileRole, TlsError, PROVIDER,
};
use crate::config::{self, Alpn, UpstreamProtocol, UpstreamTls};

/// How to open TLS to one server: its client configuration and the name it is verified
/// against.
#[derive(Clone)]
pub struct Origination {
    connector: TlsConnector,
    name: ServerName<'static>,
    /// Tells connections made with this configuration from others to the same address (made
    /// before a reload, or without TLS, which is 0), so that none is reused under settings it
    /// was not made with.
    id: u64,
    /// For the log: whose connection failed.
    backend: Arc<str>,
    server: Arc<str>,
    /// Whether a failed handshake is logged here: a check's failure is logged as the server
    /// going down instead, not at every interval.
    log_failures: bool,
}

/// Origination ids; 0 stands for a plain connection.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Origination {
    /// The TLS handshake over `stream`. A failure is logged with the reason (a certificate not
    /// valid for the name, an unknown issuer, no common protocol...) and returned for the
    /// caller to count as a connect failure.
    pub async fn connect<S>(&self, stream: S) -> io::Result<TlsStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let handshake = self.connector.connect(self.name.clone(), stream).await;
        handshake.map_err(|error| {
            let why = describe(&error);
            if self.log_failures {
                tracing::warn!(
                    backend = %self.backend, server = %self.server, name = %self.name.to_str(), %why,
                    "TLS handshake with server failed"
                );
            }
            io::Error::new(error.kind(), format!("TLS: {why}"))
        })
    }

    /// Not 0; different for every origination built.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether ALPN may settle on a protocol other than `protocol`.
    pub fn offers_other_than(&self, protocol: UpstreamProtocol) -> bool {
        let own: &[u8] = match protocol {
            UpstreamProtocol::Http11 => b"http/1.1",
            UpstreamProtocol::H2 => b"h2",
        };
        (self.connector.config().alpn_protocols.iter()).any(|offered| offered != own)
    }
}

/// The HTTP version a TLS connection settled on by ALPN; `None` when none was agreed.
pub fn negotiated<S>(stream: &TlsStream<S>) -> Option<UpstreamProtocol> {
    match stream.get_ref().1.alpn_protocol()? {
        b"h2" => Some(UpstreamProtocol::H2),
        b"http/1.1" => Some(UpstreamProtocol::Http11),
        _ => None,
    }
}

/// What a handshake error says, in an operator's words where rustls's are terse.
fn describe(error: &io::Error) -> String {
    let certificate = (error.get_ref())
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .and_then(|error| match error {
            rustls::Error::InvalidCertificate(certificate) => Some(certificate),
            _ => None,
        });
    match certificate {
        Some(CertificateError::UnknownIssuer) => {
            "server certificate has an unknown issuer (not signed by a trusted CA)".to_owned()
        }
        Some(certificate) => format!("server certificate: {certificate}"),
        None => error.to_string(),
    }
}

/// One server's TLS: for its traffic (when it has `tls`), and for its health checks (when
/// they go over TLS).
#[derive(Default)]
pub struct ServerTls {
    pub traffic: Option<Origination>,
    /// For a connection that will switch protocols (WebSocket): the traffic's, offering
    /// http/1.1 alone, since only an HTTP/1.1 request can ask to switch; `None` when the
    /// traffic's offers nothing else.
    pub upgrade: Option<Origination>,
    pub check: Option<Origination>,
}

/// Why a backend's TLS to its servers could not be built: which server, and the field (from
/// the backend, as `tls.ca` or `servers[1].tls.ca`) that named the file.
#[derive(Debug, thiserror::Error)]
#[error("server {server}: {field}: {error}")]
pub struct UpstreamTlsError {
    pub server: String,
    pub field: String,
    /// Boxed: a `TlsError` is large, and this is returned on every apply.
    pub error: Box<TlsError>,
}

/// The TLS of every server of `backend` as written (a server named by DNS once, by its name),
/// in server order, its files read now: what `tandem check` loads.
pub fn for_backend(backend: &config::Backend) -> Result<Vec<ServerTls>, UpstreamTlsError> {
    let servers =
        (backend.servers.iter().enumerate()).map(|(index, server)| match &server.address {
            config::ServerAddress::Ip(address) => UpstreamServer {
                server,
                index,
                address: address.ip(),
                dns_host: None,
            },
            config::ServerAddress::Name(name) => UpstreamServer {
                server,
                index,
                address: IpAddr::from([0, 0, 0, 0]),
                dns_host: Some(&name.host),
            },
        });
    for_servers(backend, servers)
}

/// A server as TLS to it is built for: one of a backend's servers as it runs (a server named
/// by DNS is one per address).
pub struct UpstreamServer<'a> {
    pub server: &'a config::Server,
    /// Where the server is in the file's `servers`, for errors.
    pub index: usize,
    pub address: IpAddr,
    /// The name it was found by, if by DNS: the SNI and the name verified when `tls` sets no
    /// `sni`, as nginx's `proxy_ssl_name` defaults to the host named in `proxy_pass`.
    pub dns_host: Option<&'a str>,
}

/// The TLS of each of `servers` of `backend`, in order, its files read now.
pub fn for_servers<'a>(
    backend: &config::Backend,
    servers: impl Iterator<Item = UpstreamServer<'a>>,
) -> Result<Vec<ServerTls>, UpstreamTlsError> {
    let backend_name: Arc<str> = Arc::from(backend.name.as_str());
    let mut system_roots = None;
    servers
        .map(
            |UpstreamServer {
                 server,
                 index,
                 address,
                 dns_host,
             }| {
                let fail = |error: TlsError| {
                    let role = match &error {
                        TlsError::File { role, .. } => Some(role.key()),
                        _ => None,
                    };
                    // The server's own key when it set one, else the backend's.
                    let own = |key: &str| {
                        (server.tls.as_ref()).is_some_and(|tls| match key {
                            "ca" => tls.ca.is_some(),
                            "client_cert" => tls.client_cert.is_some(),
                            "client_key" => tls.client_key.is_some(),
                            _ => false,
                        })
                    };
                    let field = match role {
                        Some(key) if own(key) => format!("servers[{index}].tls.{key}"),
                        Some(key) => format!("tls.{key}"),
                        None if server.tls.is_some() => format!("servers[{index}].tls"),
                        None => "tls".to_owned(),
                    };
                    UpstreamTlsError {
                        server: server.name.clone(),
                        field,
                        error: Box::new(error),
                    }
                };
                let tls = UpstreamTls::of(backend, server);
                let server_name: Arc<str> = Arc::from(server.name.as_str());
                let originate =
                    |config: Arc<ClientConfig>, sni: Option<&str>, log_failures| Origination {
                        connector: TlsConnector::from(config),
                        name: server_name_for(sni.or(dns_host), address),
                        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                        backend: Arc::clone(&backend_name),
                        server: Arc::clone(&server_name),
                        log_failures,
                    };
                let traffic = (tls.as_ref())
                    .map(|tls| client_config(tls, &mut system_roots).map(Arc::new))
                    .transpose()
                    .map_err(fail)?;
                let check = match &backend.health_check {
                    Some(check) if check.tls.unwrap_or(tls.is_some()) => {
                        let mut config = match &traffic {
                            // The same session cache as the traffic's, shared through its Arc.
                            Some(traffic) => ClientConfig::clone(traffic),
                            None => {
                                client_config(&default_tls(), &mut system_roots).map_err(fail)?
                            }
                        };
                        // A check speaks the backend's protocol.
                        config.alpn_protocols = vec![protocol_alpn(backend.protocol).id().to_vec()];
                        let sni = (check.sni.as_deref())
                            .or(tls.as_ref().and_then(|tls| tls.sni.as_deref()));
                        Some(originate(Arc::new(config), sni, false))
                    }
                    _ => None,
                };
                let sni = tls.as_ref().and_then(|tls| tls.sni.as_deref());
                let http_1_1 = [Alpn::Http11.id().to_vec()];
                let upgrade = (traffic.as_ref())
                    .filter(|config| config.alpn_protocols != http_1_1)
                    .map(|config| {
                        // The same session cache as the traffic's, shared through its Arc.
                        let mut config = ClientConfig::clone(config);
                        config.alpn_protocols = http_1_1.to_vec();
                        originate(Arc::new(config), sni, true)
                    });
                Ok(ServerTls {
                    traffic: traffic.map(|config| originate(config, sni, true)),
                    upgrade,
                    check,
                })
            },
        )
        .collect()
}

/// TLS with every default: verified against the system's CAs, for checks of a server that has
/// no `tls` of its own.
fn default_tls() -> UpstreamTls {
    UpstreamTls {
        verify: true,
        ca: None,
        sni: None,
        client_certificate: None,
        alpn: Vec::new(),
    }
}

fn protocol_alpn(protocol: UpstreamProtocol) -> Alpn {
    match protocol {
        UpstreamProtocol::Http11 => Alpn::Http11,
        UpstreamProtocol::H2 => Alpn::H2,
    }
}

/// The name sent as SNI and verified: `sni`, else the server's IP address (verified against
/// the certificate's IP address entries; rustls sends no SNI for an address).
fn server_name_for(sni: Option<&str>, address: IpAddr) -> ServerName<'static> {
    sni.and_then(|sni| ServerName::try_from(sni.to_owned()).ok())
        .unwrap_or(ServerName::IpAddress(address.into()))
}

/// A server's rustls client configuration: TLS 1.3 and 1.2, its own session cache (rustls's
/// default: 256 servers' sessions in memory).
fn client_config(
    tls: &UpstreamTls,
    system_roots: &mut Option<Arc<RootCertStore>>,
) -> Result<ClientConfig, TlsError> {
    let builder = ClientConfig::builder_with_provider(PROVIDER.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Setup)?;
    let builder = match tls.verify {
        true => {
            let roots = match &tls.ca {
                Some(ca) => Arc::new(read_roots(ca, FileRole::Ca)?),
                None => match system_roots {
                    Some(roots) => Arc::clone(roots),
                    None => Arc::clone(system_roots.insert(Arc::new(system_ca()?))),
                },
            };
            let verifier = WebPkiServerVerifier::builder_with_provider(roots, PROVIDER.clone())
                .build()
                .map_err(|error| TlsError::Setup(rustls::Error::General(error.to_string())))?;
            builder.with_webpki_verifier(verifier)
        }
        false => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification)),
    };
    let mut config = match &tls.client_certificate {
        None => builder.with_no_client_auth(),
        Some(files) => {
            let chain = read_chain(&files.cert, FileRole::ClientCert)?;
            let key = read_key(&files.key, FileRole::ClientKey)?;
            let signing_key = (PROVIDER.key_provider)
                .load_private_key(key.clone_key())
                .map_err(|e| {
                    file_error(
                        &files.key,
                        FileRole::ClientKey,
                        FileProblem::UnsupportedKey(e),
                    )
                })?;
            let certified = rustls::sign::CertifiedKey::new(chain.clone(), signing_key);
            if let Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) =
                certified.keys_match()
            {
                let problem = FileProblem::KeyMismatch(files.cert.clone());
                return Err(file_error(&files.key, FileRole::ClientKey, problem));
            }
            builder
                .with_client_auth_cert(chain, key)
                .map_err(TlsError::Setup)?
        }
    };
    config.alpn_protocols = tls.alpn.iter().map(|alpn| alpn.id().to_vec()).collect();
    Ok(config)
}

/// The system's CA certificates, where OpenSSL finds them (/etc/ssl/certs on Debian, or
/// SSL_CERT_FILE / SSL_CERT_DIR).
fn system_ca() -> Result<RootCertStore, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let why = match found.errors.first() {
            Some(error) => format!("no system CA certificates could be read ({error})"),
            None => "no system CA certificates found (/etc/ssl/certs)".to_owned(),
        };
        return Err(TlsError::Setup(rustls::Error::General(format!(
            "{why}; name a ca file or install ca-certificates"
        ))));
    }
    Ok(roots)
}

/// `verify: false`: any certificate is taken, though the handshake's signatures are still
/// checked (so the session is at least with the holder of the certificate's key).
#[derive(Debug)]
struct NoVerification;

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &PROVIDER.signature_verification_algorithms;
        verify_tls12_signature(message, certificate, signature, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &PROVIDER.signature_verification_algorithms;
        verify_tls13_signature(message, certificate, signature, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        PROVIDER
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use rustls::HandshakeKind;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;
    use crate::config::{CertificateFiles, Tls};
    use crate::tls::termination;

    /// A CA, a server certificate it signed for `server.test` and 127.0.0.1, and the CA's PEM.
    struct Files {
        dir: tempfile::TempDir,
        server: CertificateFiles,
        ca: PathBuf,
    }

    /// `ca_name` is the CA's common name: two CAs of one name would be taken for each other.
    fn files(ca_name: &str) -> Files {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        (ca_params.distinguished_name).push(rcgen::DnType::CommonName, ca_name);
        let ca = write("ca.pem", ca_params.self_signed(&ca_key).unwrap().pem());
        let key = KeyPair::generate().unwrap();
        let names = vec!["server.test".to_owned(), "127.0.0.1".to_owned()];
        let issuer = Issuer::from_params(&ca_params, &ca_key);
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let server = CertificateFiles {
            cert: write("server.pem", cert.pem()),
            key: write("server.key", key.serialize_pem()),
            ocsp: None,
        };
        Files { dir, server, ca }
    }

    /// A backend of one server at `address` with `tls` (YAML flow map) on the backend.
    fn backend(address: std::net::SocketAddr, tls: &str, check: &str) -> config::Backend {
        let text = format!(
            "node: {{ name: n }}\n\
             frontends: [{{ name: f, listen: 127.0.0.1:1, mode: http, backend: b }}]\n\
             backends: [{{ name: b, tls: {tls}{check}, servers: [{{ name: s, address: \"{address}\" }}] }}]\n"
        );
        let mut config = config::parse(&text, Path::new("/t.yaml")).unwrap();
        config.backends.remove(0)
    }

    /// A TLS server answering `ok` to each connection's first byte.
    async fn server(files: &Files) -> std::net::SocketAddr {
        let tls = Tls {
            certificates: vec![files.server.clone()],
            alpn: vec![Alpn::H2, Alpn::Http11],
            versions: crate::config::TlsVersions::ALL,
            cipher_suites: None,
            prefer_server_ciphers: false,
            session_tickets: crate::config::SessionTickets::Ephemeral,
            client_auth: None,
        };
        let acceptor = termination("web", &tls).unwrap().acceptor;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let mut byte = [0; 1];
                    if stream.read_exact(&mut byte).await.is_ok() {
                        let _ = stream.write_all(b"ok").await;
                    }
                });
            }
        });
        address
    }

    async fn exchange(
        origination: &Origination,
        address: std::net::SocketAddr,
    ) -> io::Result<HandshakeKind> {
        let mut stream = origination
            .connect(TcpStream::connect(address).await?)
            .await?;
        stream.write_all(b"?").await?;
        let mut answer = [0; 2];
        stream.read_exact(&mut answer).await?;
        assert_eq!(&answer, b"ok");
        Ok(stream.get_ref().1.handshake_kind().unwrap())
    }

    #[tokio::test]
    async fn later_connections_to_a_server_resume_its_session() {
        let files = files("test CA");
        let address = server(&files).await;
        let tls = format!("{{ ca: \"{}\", sni: server.test }}", files.ca.display());
        let servers = for_backend(&backend(address, &tls, "")).unwrap();
        let origination = servers[0].traffic.as_ref().unwrap();
        assert_eq!(
            exchange(origination, address).await.unwrap(),
            HandshakeKind::Full
        );
        for _ in 0..3 {
            let kind = exchange(origination, address).await.unwrap();
            assert_eq!(kind, HandshakeKind::Resumed);
        }
        assert!(servers[0].check.is_none(), "no health check");
    }

    #[tokio::test]
    async fn a_server_is_verified_against_its_address_without_sni() {
        let files = files("test CA");
        let address = server(&files).await;
        let tls = format!("{{ ca: \"{}\" }}", files.ca.display());
        let servers = for_backend(&backend(address, &tls, "")).unwrap();
        let origination = servers[0].traffic.as_ref().unwrap();
        assert_eq!(origination.name, ServerName::IpAddress(address.ip().into()));
        exchange(origination, address).await.unwrap();
    }

    #[tokio::test]
    async fn an_unknown_issuer_and_a_wrong_name_are_named() {
        let files = files("test CA");
        let other = self::files("another CA");
        let address = server(&files).await;
        for (tls, expected) in [
            (
                format!("{{ ca: \"{}\", sni: server.test }}", other.ca.display()),
                "TLS: server certificate has an unknown issuer (not signed by a trusted CA)",
            ),
            (
                format!("{{ ca: \"{}\", sni: other.test }}", files.ca.display()),
                "TLS: server certificate: certificate not valid for name \"other.test\"; \
                 certificate is only valid for DnsName(\"server.test\") or IpAddress(127.0.0.1)",
            ),
        ] {
            let servers = for_backend(&backend(address, &tls, "")).unwrap();
            let origination = servers[0].traffic.as_ref().unwrap();
            let error = exchange(origination, address).await.unwrap_err();
            assert_eq!(error.to_string(), expected);
        }
    }

    #[tokio::test]
    async fn checks_offer_only_the_backend_protocol_and_take_their_own_sni() {
        let files = files("test CA");
        let tls = format!(
            "{{ ca: \"{}\", sni: server.test, alpn: [h2, http/1.1] }}",
            files.ca.display()
        );
        let check = ", health_check: { type: tcp, sni: check.test }";
        let servers = for_backend(&backend("127.0.0.1:1".parse().unwrap(), &tls, check)).unwrap();
        let (traffic, check) = (
            servers[0].traffic.as_ref().unwrap(),
            servers[0].check.as_ref().unwrap(),
        );
        assert_eq!(
            traffic.connector.config().alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        assert_eq!(
            check.connector.config().alpn_protocols,
            [b"http/1.1".to_vec()]
        );
        assert_eq!(check.name.to_str(), "check.test");
        assert_ne!(traffic.id(), check.id());
    }

    #[test]
    fn a_connection_that_will_switch_protocols_offers_http_1_1_alone() {
        let files = files("test CA");
        let both = format!("{{ ca: \"{}\", alpn: [h2, http/1.1] }}", files.ca.display());
        let servers = for_backend(&backend("127.0.0.1:1".parse().unwrap(), &both, "")).unwrap();
        let upgrade = servers[0]
            .upgrade
            .as_ref()
            .expect("h2 is offered otherwise");
        assert_eq!(
            upgrade.connector.config().alpn_protocols,
            [b"http/1.1".to_vec()]
        );
        assert_ne!(upgrade.id(), servers[0].traffic.as_ref().unwrap().id());
        let one = format!("{{ ca: \"{}\" }}", files.ca.display());
        let servers = for_backend(&backend("127.0.0.1:1".parse().unwrap(), &one, "")).unwrap();
        assert!(
            servers[0].upgrade.is_none(),
            "the traffic's offers http/1.1 alone"
        );
    }

    #[test]
    fn a_missing_ca_file_is_named_at_the_key_that_named_it() {
        let files = files("test CA");
        let missing = files.dir.path().join("missing.pem");
        let tls = format!("{{ ca: \"{}\" }}", missing.display());
        let error = for_backend(&backend("127.0.0.1:1".parse().unwrap(), &tls, ""))
            .err()
            .unwrap();
        assert_eq!(error.field, "tls.ca");
        assert_eq!(
            error.to_string(),
            format!(
                "server s: tls.ca: {}: cannot read: No such file or directory (os error 2)",
                missing.display()
            )
        );
    }
}
