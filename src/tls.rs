//! TLS termination for a frontend: certificates loaded from PEM files (with their stapled OCSP
//! responses), the certificate picked by SNI, and the rustls server configuration: versions,
//! cipher suites, ALPN, session tickets (`tickets`) and client certificates (`client_auth`).
//!
//! Everything that depends only on the certificates (names, which one serves which SNI) is
//! worked out once when a frontend's TLS is built, so a handshake does one or two hash lookups.
//! TLS to servers (the client side) is `upstream`.

pub mod client_auth;
pub mod tickets;
pub mod upstream;

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{InconsistentKeys, RootCertStore, ServerConfig, SupportedProtocolVersion};
use x509_parser::extensions::GeneralName;

use crate::config;

/// Why a frontend's TLS could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file cannot be read or used.
    #[error("{}: {problem}", path.display())]
    File {
        path: PathBuf,
        /// Which of the pair it is, so that `tandem check` can name the config field.
        role: FileRole,
        problem: FileProblem,
    },
    #[error("tls needs at least one certificate")]
    NoCertificates,
    /// rustls refused the configuration or could not make its ticket keys.
    #[error("cannot set up TLS: {0}")]
    Setup(rustls::Error),
}

/// A certificate pair's two files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileRole {
    Cert,
    Key,
    /// A server-side (`tls:` on a backend or server) CA file.
    Ca,
    ClientCert,
    ClientKey,
    /// A frontend certificate's stapled OCSP response.
    Ocsp,
    /// The CA file of a frontend's `client_auth`.
    ClientCa,
    SessionTicketKeys,
}

impl FileRole {
    /// The config key that names the file.
    pub fn key(self) -> &'static str {
        match self {
            FileRole::Cert => "cert",
            FileRole::Key => "key",
            FileRole::Ca => "ca",
            FileRole::ClientCert => "client_cert",
            FileRole::ClientKey => "client_key",
            FileRole::Ocsp => "ocsp",
            FileRole::ClientCa => "client_auth.ca",
            FileRole::SessionTicketKeys => "session_ticket_keys",
        }
    }
}

/// What is wrong with one certificate or key file.
#[derive(Debug, thiserror::Error)]
pub enum FileProblem {
    #[error("cannot read: {0}")]
    Read(std::io::Error),
    #[error("not valid PEM: {0}")]
    Pem(rustls::pki_types::pem::Error),
    #[error("no certificate in it (expected PEM \"CERTIFICATE\" blocks)")]
    NoCertificate,
    #[error(
        "no private key in it (expected a PEM PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block)"
    )]
    NoPrivateKey,
    /// `number` counts from 1 in file order; the first is the server's own certificate.
    #[error("certificate {number} in it is not valid X.509: {why}")]
    UnparsableCertificate { number: usize, why: String },
    #[error(
        "unsupported or unparsable private key (expected RSA, ECDSA P-256/P-384/P-521 or Ed25519): {0}"
    )]
    UnsupportedKey(rustls::Error),
    #[error("does not match the certificate in {}", .0.display())]
    KeyMismatch(PathBuf),
    #[error(
        "not a DER OCSP response (`openssl ocsp ... -respout FILE` writes one; PEM is not read)"
    )]
    NotOcspResponse,
    #[error("{0}")]
    TicketKeys(tickets::KeysProblem),
}

fn file_error(path: &Path, role: FileRole, problem: FileProblem) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        role,
        problem,
    }
}

/// One certificate chain and key as loaded from disk.
#[derive(Debug)]
pub struct LoadedCertificate {
    pub files: config::CertificateFiles,
    /// DNS names it serves, lowercase: its subjectAltName dNSName entries (may include
    /// "*.example.com"); the subject CN only when it has no SAN DNS entry.
    pub names: Vec<String>,
    /// notAfter of the leaf, seconds since the Unix epoch.
    pub not_after_unix: i64,
    key: Arc<CertifiedKey>,
}

/// The one crypto provider every certificate and configuration uses.
static PROVIDER: LazyLock<Arc<CryptoProvider>> =
    LazyLock::new(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));

/// Reads and checks a certificate chain and its key. An expired certificate loads (as in
/// HAProxy): the caller reports it from `not_after_unix`.
pub fn load(files: &config::CertificateFiles) -> Result<LoadedCertificate, TlsError> {
    let chain = read_chain(&files.cert, FileRole::Cert)?;
    let (names, not_after_unix) = leaf_facts(&files.cert, &chain)?;
    let signing_key = PROVIDER
        .key_provider
        .load_private_key(read_key(&files.key, FileRole::Key)?)
        .map_err(|e| file_error(&files.key, FileRole::Key, FileProblem::UnsupportedKey(e)))?;
    let mut key = CertifiedKey::new(chain, signing_key);
    key.ocsp = files.ocsp.as_deref().map(read_ocsp).transpose()?;
    match key.keys_match() {
        // A key that cannot tell its public half is taken on trust, as rustls itself does.
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            return Err(file_error(
                &files.key,
                FileRole::Key,
                FileProblem::KeyMismatch(files.cert.clone()),
            ))
        }
        Err(e) => {
            return Err(file_error(
                &files.cert,
                FileRole::Cert,
                FileProblem::UnparsableCertificate {
                    number: 1,
                    why: e.to_string(),
                },
            ))
        }
    }
    Ok(LoadedCertificate {
        files: files.clone(),
        names,
        not_after_unix,
        key: Arc::new(key),
    })
}

fn read(path: &Path, role: FileRole) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| file_error(path, role, FileProblem::Read(e)))
}

/// An OCSP response to staple, as `openssl ocsp -respout` writes it: checked only for being
/// DER (a SEQUENCE), since clients judge its contents.
fn read_ocsp(path: &Path) -> Result<Vec<u8>, TlsError> {
    let response = read(path, FileRole::Ocsp)?;
    match response.first() {
        Some(0x30) => Ok(response),
        _ => Err(file_error(
            path,
            FileRole::Ocsp,
            FileProblem::NotOcspResponse,
        )),
    }
}

/// The CA certificates of a PEM file, as trust anchors.
fn read_roots(path: &Path, role: FileRole) -> Result<RootCertStore, TlsError> {
    roots(path, role, &read(path, role)?)
}

/// The CA certificates of `pem`, the contents of the file at `path`, as trust anchors.
fn roots(path: &Path, role: FileRole, pem: &[u8]) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for (index, certificate) in chain(path, role, pem)?.into_iter().enumerate() {
        roots.add(certificate).map_err(|error| {
            let problem = FileProblem::UnparsableCertificate {
                number: index + 1,
                why: error.to_string(),
            };
            file_error(path, role, problem)
        })?;
    }
    Ok(roots)
}

fn read_chain(path: &Path, role: FileRole) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    chain(path, role, &read(path, role)?)
}

/// The certificates of `pem`, the contents of the file at `path`.
fn chain(
    path: &Path,
    role: FileRole,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, role, FileProblem::Pem(e)))?;
    if chain.is_empty() {
        return Err(file_error(path, role, FileProblem::NoCertificate));
    }
    Ok(chain)
}

fn read_key(path: &Path, role: FileRole) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(&read(path, role)?).map_err(|e| {
        let problem = match e {
            rustls::pki_types::pem::Error::NoItemsFound => FileProblem::NoPrivateKey,
            e => FileProblem::Pem(e),
        };
        file_error(path, role, problem)
    })
}

/// Checks that every certificate in the chain parses, and returns the leaf's names and notAfter.
fn leaf_facts(path: &Path, chain: &[CertificateDer<'_>]) -> Result<(Vec<String>, i64), TlsError> {
    let mut parsed = chain.iter().enumerate().map(|(i, der)| {
        x509_parser::parse_x509_certificate(der)
            .map(|(_, cert)| cert)
            .map_err(|e| {
                file_error(
                    path,
                    FileRole::Cert,
                    FileProblem::UnparsableCertificate {
                        number: i + 1,
                        why: e.to_string(),
                    },
                )
            })
    });
    let leaf = parsed.next().expect("read_chain returns at least one")?;
    parsed.try_for_each(|cert| cert.map(drop))?;

    let san = leaf.subject_alternative_name().map_err(|e| {
        let why = format!("subjectAltName: {e}");
        file_error(
            path,
            FileRole::Cert,
            FileProblem::UnparsableCertificate { number: 1, why },
        )
    })?;
    let mut names: Vec<String> = san
        .iter()
        .flat_map(|ext| &ext.value.general_names)
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some(dns.to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    if names.is_empty() {
        names.extend(
            leaf.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .map(str::to_ascii_lowercase),
        );
    }
    Ok((names, leaf.validity().not_after.timestamp()))
}

/// Which certificate serves which SNI name, as indices into the certificate list.
#[derive(Debug)]
struct SniIndex {
    exact: HashMap<String, usize>,
    /// "*.example.com" is stored under "example.com".
    wildcard: HashMap<String, usize>,
}

impl SniIndex {
    /// Where two certificates claim a name, the earlier one in config order serves it.
    fn new<'a>(names_per_certificate: impl IntoIterator<Item = &'a [String]>) -> Self {
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for (index, names) in names_per_certificate.into_iter().enumerate() {
            for name in names {
                match name.strip_prefix("*.") {
                    Some(parent) => wildcard.entry(parent.to_owned()),
                    None => exact.entry(name.clone()),
                }
                .or_insert(index);
            }
        }
        Self { exact, wildcard }
    }

    /// The certificate for a client's SNI: an exact name, else a wildcard covering exactly one
    /// more label (RFC 6125), else the first certificate, which also serves clients without SNI.
    fn select(&self, sni: Option<&str>) -> usize {
        let Some(sni) = sni else { return 0 };
        // rustls hands over SNI already lowercased; this only costs a scan.
        let sni = match sni.bytes().any(|b| b.is_ascii_uppercase()) {
            true => Cow::Owned(sni.to_ascii_lowercase()),
            false => Cow::Borrowed(sni),
        };
        if let Some(&index) = self.exact.get(sni.as_ref()) {
            return index;
        }
        match sni.split_once('.') {
            Some((label, parent)) if !label.is_empty() => {
                self.wildcard.get(parent).copied().unwrap_or(0)
            }
            _ => 0,
        }
    }
}

#[derive(Debug)]
struct SniResolver {
    index: SniIndex,
    /// In config order; never empty.
    keys: Vec<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.keys[self.index.select(client_hello.server_name())].clone())
    }
}

/// A frontend's TLS, built once per config (re)load.
pub struct Termination {
    pub acceptor: tokio_rustls::TlsAcceptor,
    /// In config order; the first is the default.
    pub certificates: Vec<Arc<LoadedCertificate>>,
}

/// Loads the frontend's certificates and the files its settings name, and builds its TLS
/// server: the configured versions and cipher suites, ALPN in the configured order, client
/// certificates when `client_auth` asks for them, and resumption by stateless tickets unless
/// they are off (clients without ticket support resume from an in-memory session cache).
/// Without a ticket-key file, ticket keys are new for each build, so a reload makes clients do
/// one full handshake; with one, tickets are bound to `frontend`'s name and client-certificate
/// settings (`tickets::Binding`). Built again on every reload, so every file is read afresh.
pub fn termination(frontend: &str, tls: &config::Tls) -> Result<Termination, TlsError> {
    if tls.certificates.is_empty() {
        return Err(TlsError::NoCertificates);
    }
    let certificates = tls
        .certificates
        .iter()
        .map(|files| load(files).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()?;
    let resolver = SniResolver {
        index: SniIndex::new(certificates.iter().map(|c| c.names.as_slice())),
        keys: certificates.iter().map(|c| c.key.clone()).collect(),
    };

    let builder = ServerConfig::builder_with_provider(provider(tls)?)
        .with_protocol_versions(&versions(tls.versions))
        .map_err(TlsError::Setup)?;
    let (builder, binding) = match &tls.client_auth {
        Some(client_auth) => {
            let (verifier, ca) = client_auth::verifier(client_auth)?;
            let binding = tickets::Binding::new(frontend, Some(&ca), client_auth.required);
            (builder.with_client_cert_verifier(verifier), binding)
        }
        None => (
            builder.with_no_client_auth(),
            tickets::Binding::new(frontend, None, false),
        ),
    };
    let mut server = builder.with_cert_resolver(Arc::new(resolver));
    server.alpn_protocols = tls.alpn.iter().map(|alpn| alpn.id().to_vec()).collect();
    server.ignore_client_order = tls.prefer_server_ciphers;
    match &tls.session_tickets {
        config::SessionTickets::Ephemeral => {
            server.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new().map_err(TlsError::Setup)?
        }
        config::SessionTickets::KeyFile(path) => {
            let keys = ticket_keys(path)?;
            server.ticketer = Arc::new(tickets::FileTicketer::new(keys, binding));
        }
        // rustls's default ticketer makes none: TLS 1.2 resumes by session ID and TLS 1.3 by
        // tickets that only name a session kept in memory.
        config::SessionTickets::Off => {}
    }

    Ok(Termination {
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
        certificates,
    })
}

/// The files of a frontend's TLS settings that won't load, for `tandem check`: the client CA
/// and the ticket keys (each certificate's files, OCSP included, are `load`'s).
pub fn settings_errors(tls: &config::Tls) -> Vec<TlsError> {
    let client_ca = (tls.client_auth.as_ref()).map(client_auth::verifier);
    let tickets = match &tls.session_tickets {
        config::SessionTickets::KeyFile(path) => Some(ticket_keys(path)),
        _ => None,
    };
    let client_ca = client_ca.and_then(Result::err);
    client_ca
        .into_iter()
        .chain(tickets.and_then(Result::err))
        .collect()
}

/// The provider with only the configured cipher suites, in the configured order.
fn provider(tls: &config::Tls) -> Result<Arc<CryptoProvider>, TlsError> {
    let Some(wanted) = &tls.cipher_suites else {
        return Ok(PROVIDER.clone());
    };
    let cipher_suites = (wanted.iter())
        .map(|suite| {
            (PROVIDER.cipher_suites.iter())
                .find(|supported| supported.suite() == *suite)
                .copied()
                .ok_or_else(|| {
                    let name = suite
                        .as_str()
                        .map_or_else(|| format!("0x{:04x}", u16::from(*suite)), str::to_owned);
                    TlsError::Setup(rustls::Error::General(format!(
                        "cipher suite {name} is not available"
                    )))
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Arc::new(CryptoProvider {
        cipher_suites,
        ..CryptoProvider::clone(&PROVIDER)
    }))
}

fn versions(versions: config::TlsVersions) -> Vec<&'static SupportedProtocolVersion> {
    [
        (config::TlsVersion::Tls13, &rustls::version::TLS13),
        (config::TlsVersion::Tls12, &rustls::version::TLS12),
    ]
    .into_iter()
    .filter(|(version, _)| versions.contains(*version))
    .map(|(_, supported)| supported)
    .collect()
}

fn ticket_keys(path: &Path) -> Result<tickets::TicketKeys, TlsError> {
    let role = FileRole::SessionTicketKeys;
    // Bytes that are not UTF-8 become U+FFFD, which the line holding them reports as not base64.
    let text = read(path, role)?;
    match tickets::TicketKeys::parse(&String::from_utf8_lossy(&text)) {
        Ok(keys) => Ok(keys),
        Err(problem) => Err(file_error(path, role, FileProblem::TicketKeys(problem))),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, PKCS_RSA_SHA256,
    };
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::client::WebPkiServerVerifier;
    use rustls::pki_types::{ServerName, UnixTime};
    use rustls::{
        CertificateError, ClientConfig, DigitallySignedStruct, HandshakeKind, ProtocolVersion,
        RootCertStore, SignatureScheme, SupportedProtocolVersion,
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_rustls::TlsConnector;

    use super::*;
    use crate::config::{Alpn, CertificateFiles, Tls};

    /// A test CA and a directory its certificates are written to.
    struct Pki {
        dir: tempfile::TempDir,
        ca_key: KeyPair,
        ca_params: CertificateParams,
        ca_der: CertificateDer<'static>,
    }

    /// A certificate as written to disk.
    struct Written {
        files: CertificateFiles,
        der: CertificateDer<'static>,
    }

    impl Pki {
        fn new() -> Self {
            let ca_key = KeyPair::generate().unwrap();
            let mut ca_params = CertificateParams::new(Vec::new()).unwrap();
            ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            ca_params
                .distinguished_name
                .push(DnType::CommonName, "tandem test CA");
            let ca_der = ca_params.self_signed(&ca_key).unwrap().der().clone();
            Self {
                dir: tempfile::tempdir().unwrap(),
                ca_key,
                ca_params,
                ca_der,
            }
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }

        fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
            let path = self.path(name);
            std::fs::write(&path, contents).unwrap();
            path
        }

        /// Signs `params` for `key` with the CA and writes `<stem>.pem` and `<stem>.key`.
        fn issue_with(&self, stem: &str, params: CertificateParams, key: &KeyPair) -> Written {
            let issuer = Issuer::from_params(&self.ca_params, &self.ca_key);
            let cert = params.signed_by(key, &issuer).unwrap();
            Written {
                files: CertificateFiles {
                    cert: self.write(&format!("{stem}.pem"), cert.pem()),
                    key: self.write(&format!("{stem}.key"), key.serialize_pem()),
                    ocsp: None,
                },
                der: cert.der().clone(),
            }
        }

        /// An ECDSA P-256 certificate for `names` (subjectAltName dNSName entries).
        fn issue(&self, stem: &str, names: &[&str]) -> Written {
            let names = names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
            let params = CertificateParams::new(names).unwrap();
            self.issue_with(stem, params, &KeyPair::generate().unwrap())
        }

        fn roots(&self) -> Arc<RootCertStore> {
            let mut roots = RootCertStore::empty();
            roots.add(self.ca_der.clone()).unwrap();
            Arc::new(roots)
        }

        /// A client that trusts the test CA and checks the name as usual.
        fn client(&self, versions: &[&'static SupportedProtocolVersion]) -> ClientConfig {
            ClientConfig::builder_with_provider(PROVIDER.clone())
                .with_protocol_versions(versions)
                .unwrap()
                .with_root_certificates(self.roots())
                .with_no_client_auth()
        }

        /// A client that trusts the test CA but takes a certificate for another name, to see
        /// which certificate the server falls back to.
        fn client_any_name(&self) -> ClientConfig {
            let verifier =
                WebPkiServerVerifier::builder_with_provider(self.roots(), PROVIDER.clone())
                    .build()
                    .unwrap();
            ClientConfig::builder_with_provider(PROVIDER.clone())
                .with_safe_default_protocol_versions()
                .unwrap()
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyNameVerifier(verifier)))
                .with_no_client_auth()
        }
    }

    #[derive(Debug)]
    struct AnyNameVerifier(Arc<WebPkiServerVerifier>);

    impl ServerCertVerifier for AnyNameVerifier {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            intermediates: &[CertificateDer<'_>],
            server_name: &ServerName<'_>,
            ocsp_response: &[u8],
            now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            match self.0.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ) {
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                )) => Ok(ServerCertVerified::assertion()),
                other => other,
            }
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.0.verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.0.verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.supported_verify_schemes()
        }
    }

    /// What the client saw of one handshake.
    struct Seen {
        leaf: CertificateDer<'static>,
        alpn: Option<Vec<u8>>,
        version: ProtocolVersion,
        kind: HandshakeKind,
        /// None on a TLS 1.2 resumption, which exchanges no new key.
        key_exchange: Option<String>,
        suite: rustls::CipherSuite,
        /// The client certificate's subject, as the server worked it out.
        client_subject: Option<Box<str>>,
    }

    /// One real handshake over loopback: the server accepts, writes one byte and closes; the
    /// client reads that byte (which also takes in any session tickets sent before it).
    async fn handshake(
        acceptor: &tokio_rustls::TlsAcceptor,
        client: &TlsConnector,
        name: &str,
    ) -> Seen {
        attempt(acceptor, client, name).await.unwrap()
    }

    /// [`handshake`], or why it failed as the client saw it.
    async fn attempt(
        acceptor: &tokio_rustls::TlsAcceptor,
        client: &TlsConnector,
        name: &str,
    ) -> Result<Seen, String> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let acceptor = acceptor.clone();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = acceptor.accept(tcp).await.ok()?;
            let subject = (tls.get_ref().1.peer_certificates()).and_then(client_auth::subject);
            tls.write_all(b"x").await.unwrap();
            tls.shutdown().await.unwrap();
            Some(subject)
        });
        let name = ServerName::try_from(name.to_owned()).unwrap();
        let client = async {
            let tcp = TcpStream::connect(address).await.unwrap();
            let mut tls = client.connect(name, tcp).await.map_err(|e| e.to_string())?;
            let mut byte = [0; 1];
            tls.read_exact(&mut byte).await.map_err(|e| e.to_string())?;
            assert_eq!(&byte, b"x");
            let (_, connection) = tls.get_ref();
            Ok::<_, String>(Seen {
                leaf: connection.peer_certificates().unwrap()[0].clone(),
                alpn: connection.alpn_protocol().map(<[u8]>::to_vec),
                version: connection.protocol_version().unwrap(),
                kind: connection.handshake_kind().unwrap(),
                key_exchange: connection
                    .negotiated_key_exchange_group()
                    .map(|group| format!("{:?}", group.name())),
                suite: connection.negotiated_cipher_suite().unwrap().suite(),
                client_subject: None,
            })
        };
        let deadline = Duration::from_secs(20);
        let seen = tokio::time::timeout(deadline, client).await.unwrap();
        let server = tokio::time::timeout(deadline, server).await.unwrap();
        let mut seen = seen?;
        seen.client_subject = server.unwrap().ok_or("the server's handshake failed")?;
        Ok(seen)
    }

    fn tls(certificates: &[&Written], alpn: &[Alpn]) -> Tls {
        Tls {
            certificates: certificates.iter().map(|w| w.files.clone()).collect(),
            alpn: alpn.to_vec(),
            versions: config::TlsVersions::ALL,
            cipher_suites: None,
            prefer_server_ciphers: false,
            session_tickets: config::SessionTickets::Ephemeral,
            client_auth: None,
        }
    }

    fn error_text(result: Result<LoadedCertificate, TlsError>) -> String {
        result.unwrap_err().to_string()
    }

    #[test]
    fn unreadable_files_are_named() {
        let pki = Pki::new();
        let good = pki.issue("good", &["a.test"]);
        let missing = pki.path("missing.pem");
        let no_cert = CertificateFiles {
            cert: missing.clone(),
            key: good.files.key.clone(),
            ocsp: None,
        };
        assert_eq!(
            error_text(load(&no_cert)),
            format!(
                "{}: cannot read: No such file or directory (os error 2)",
                missing.display()
            )
        );
        let no_key = CertificateFiles {
            cert: good.files.cert.clone(),
            key: missing.clone(),
            ocsp: None,
        };
        assert_eq!(
            error_text(load(&no_key)),
            format!(
                "{}: cannot read: No such file or directory (os error 2)",
                missing.display()
            )
        );
    }

    #[test]
    fn a_certificate_file_without_a_certificate_is_named() {
        let pki = Pki::new();
        let good = pki.issue("good", &["a.test"]);
        // The easy mistake: the key file given as the certificate.
        let files = CertificateFiles {
            cert: good.files.key.clone(),
            key: good.files.key.clone(),
            ocsp: None,
        };
        assert_eq!(
            error_text(load(&files)),
            format!(
                "{}: no certificate in it (expected PEM \"CERTIFICATE\" blocks)",
                good.files.key.display()
            )
        );
    }

    #[test]
    fn a_key_file_without_a_key_is_named() {
        let pki = Pki::new();
        let good = pki.issue("good", &["a.test"]);
        let files = CertificateFiles {
            cert: good.files.cert.clone(),
            key: good.files.cert.clone(),
            ocsp: None,
        };
        assert_eq!(
            error_text(load(&files)),
            format!(
                "{}: no private key in it (expected a PEM PRIVATE KEY, RSA PRIVATE KEY or EC \
                 PRIVATE KEY block)",
                good.files.cert.display()
            )
        );
    }

    #[test]
    fn broken_pem_is_named() {
        let pki = Pki::new();
        let good = pki.issue("good", &["a.test"]);
        let pem = std::fs::read_to_string(&good.files.cert).unwrap();
        let truncated = pki.write("truncated.pem", &pem[..pem.len() / 2]);
        let files = CertificateFiles {
            cert: truncated.clone(),
            key: good.files.key.clone(),
            ocsp: None,
        };
        let text = error_text(load(&files));
        assert!(
            text.starts_with(&format!("{}: not valid PEM: ", truncated.display())),
            "{text}"
        );
    }

    #[test]
    fn an_unparsable_certificate_is_named_with_its_place_in_the_chain() {
        let pki = Pki::new();
        let good = pki.issue("good", &["a.test"]);
        let junk =
            "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n";
        let leaf_pem = std::fs::read_to_string(&good.files.cert).unwrap();
        for (name, contents, number) in [
            ("junk-leaf.pem", junk.to_owned(), 1),
            ("junk-intermediate.pem", format!("{leaf_pem}{junk}"), 2),
        ] {
            let path = pki.write(name, contents);
            let files = CertificateFiles {
                cert: path.clone(),
                key: good.files.key.clone(),
                ocsp: None,
            };
            let text = error_text(load(&files));
            let expected = format!(
                "{}: certificate {number} in it is not valid X.509: ",
                path.display()
            );
            assert!(text.starts_with(&expected), "{text}");
        }
    }

    #[test]
    fn the_key_of_another_certificate_is_rejected() {
        let pki = Pki::new();
        let site = pki.issue("site", &["site.test"]);
        let other = pki.issue("other", &["other.test"]);
        let files = CertificateFiles {
            cert: site.files.cert.clone(),
            key: other.files.key.clone(),
            ocsp: None,
        };
        assert_eq!(
            error_text(load(&files)),
            format!(
                "{}: does not match the certificate in {}",
                other.files.key.display(),
                site.files.cert.display()
            )
        );
    }

    #[test]
    fn an_unsupported_key_type_is_named() {
        let pki = Pki::new();
        let site = pki.issue("site", &["site.test"]);
        // An X25519 key in PKCS#8: a key-agreement key, which cannot sign.
        let x25519 = "-----BEGIN PRIVATE KEY-----\n\
                      MC4CAQAwBQYDK2VuBCIEIDBVUz+mTB7aThh8Hj6k9+8zCI1vXEpSQf+Zq0Bk6M5X\n\
                      -----END PRIVATE KEY-----\n";
        let key = pki.write("x25519.key", x25519);
        let files = CertificateFiles {
            cert: site.files.cert.clone(),
            key: key.clone(),
            ocsp: None,
        };
        let text = error_text(load(&files));
        let expected = format!(
            "{}: unsupported or unparsable private key (expected RSA, ECDSA P-256/P-384/P-521 or \
             Ed25519): ",
            key.display()
        );
        assert!(text.starts_with(&expected), "{text}");
    }

    #[test]
    fn no_certificates_is_an_error() {
        let error = termination(
            "web",
            &Tls {
                certificates: Vec::new(),
                ..tls(&[], &[])
            },
        )
        .err()
        .unwrap();
        assert!(matches!(error, TlsError::NoCertificates));
    }

    #[test]
    fn names_come_from_dns_subject_alt_names_lowercased() {
        let pki = Pki::new();
        let mut params = CertificateParams::new(vec![
            "WWW.Example.TEST".to_owned(),
            "*.Example.test".to_owned(),
            "192.0.2.7".to_owned(),
        ])
        .unwrap();
        // Ignored: the certificate has SAN DNS names.
        params
            .distinguished_name
            .push(DnType::CommonName, "cn.test");
        let written = pki.issue_with("san", params, &KeyPair::generate().unwrap());
        let loaded = load(&written.files).unwrap();
        assert_eq!(loaded.names, ["www.example.test", "*.example.test"]);
        assert_eq!(loaded.files, written.files);
    }

    #[test]
    fn names_fall_back_to_the_common_name_without_san_dns_names() {
        let pki = Pki::new();
        let mut params = CertificateParams::new(vec!["192.0.2.7".to_owned()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "Legacy.Example.test");
        let written = pki.issue_with("cn", params, &KeyPair::generate().unwrap());
        assert_eq!(load(&written.files).unwrap().names, ["legacy.example.test"]);
    }

    #[test]
    fn an_expired_certificate_loads_with_its_not_after() {
        let pki = Pki::new();
        let mut params = CertificateParams::new(vec!["old.test".to_owned()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 2, 3);
        let written = pki.issue_with("old", params, &KeyPair::generate().unwrap());
        // 2001-02-03T00:00:00Z
        assert_eq!(load(&written.files).unwrap().not_after_unix, 981_158_400);
    }

    #[test]
    fn a_chain_with_its_ca_loads_and_is_served_whole() {
        let pki = Pki::new();
        let site = pki.issue("site", &["site.test"]);
        let ca_pem = pki.ca_params.self_signed(&pki.ca_key).unwrap().pem();
        let leaf_pem = std::fs::read_to_string(&site.files.cert).unwrap();
        let chain = pki.write("chain.pem", format!("{leaf_pem}{ca_pem}"));
        let loaded = load(&CertificateFiles {
            cert: chain,
            key: site.files.key.clone(),
            ocsp: None,
        })
        .unwrap();
        assert_eq!(loaded.key.cert.len(), 2);
        assert_eq!(loaded.key.cert[0], site.der);
    }

    fn index(names: &[&[&str]]) -> SniIndex {
        let owned: Vec<Vec<String>> = names
            .iter()
            .map(|names| names.iter().map(|n| n.to_string()).collect())
            .collect();
        SniIndex::new(owned.iter().map(Vec::as_slice))
    }

    #[test]
    fn sni_selection_order() {
        let index = index(&[
            &["default.test"],
            &["*.example.test"],
            &["www.example.test", "example.test"],
            &["www.example.test", "*.example.test", "*.b.example.test"],
        ]);
        let cases = [
            (None, 0),
            (Some("default.test"), 0),
            (Some("www.example.test"), 2),
            (Some("WWW.Example.Test"), 2),
            (Some("example.test"), 2),
            (Some("a.example.test"), 1),
            (Some("A.EXAMPLE.TEST"), 1),
            (Some("a.b.example.test"), 3),
            (Some("x.a.example.test"), 0),
            (Some("unknown.test"), 0),
            (Some("test"), 0),
            (Some(".example.test"), 0),
        ];
        for (sni, expected) in cases {
            assert_eq!(index.select(sni), expected, "{sni:?}");
        }
    }

    #[test]
    fn a_wildcard_covers_exactly_one_label() {
        let index = index(&[&["default.test"], &["*.example.test"]]);
        assert_eq!(index.select(Some("a.example.test")), 1);
        assert_eq!(index.select(Some("a.b.example.test")), 0);
        assert_eq!(index.select(Some("example.test")), 0);
    }

    #[tokio::test]
    async fn sni_picks_the_certificate_in_real_handshakes() {
        let pki = Pki::new();
        let default = pki.issue("default", &["default.test"]);
        let wildcard = pki.issue("wildcard", &["*.example.test"]);
        let www = pki.issue("www", &["www.example.test"]);
        let termination = termination("web", &tls(&[&default, &wildcard, &www], &[])).unwrap();
        assert_eq!(termination.certificates.len(), 3);
        assert_eq!(termination.certificates[1].files, wildcard.files);

        let strict = TlsConnector::from(Arc::new(
            pki.client(&[&rustls::version::TLS13, &rustls::version::TLS12]),
        ));
        let any_name = TlsConnector::from(Arc::new(pki.client_any_name()));
        let acceptor = &termination.acceptor;
        for (client, name, expected) in [
            (&strict, "www.example.test", &www),
            (&strict, "WWW.EXAMPLE.Test", &www),
            (&strict, "a.example.test", &wildcard),
            (&strict, "default.test", &default),
            (&any_name, "a.b.example.test", &default),
            (&any_name, "example.test", &default),
            (&any_name, "unknown.test", &default),
        ] {
            assert_eq!(
                handshake(acceptor, client, name).await.leaf,
                expected.der,
                "{name}"
            );
        }
    }

    #[tokio::test]
    async fn a_client_without_sni_gets_the_default() {
        let pki = Pki::new();
        let default = pki.issue("default", &["default.test"]);
        let other = pki.issue("other", &["other.test"]);
        let termination = termination("web", &tls(&[&default, &other], &[])).unwrap();
        let mut client = pki.client(&[&rustls::version::TLS13]);
        client.enable_sni = false;
        let client = TlsConnector::from(Arc::new(client));
        // The client still checks the certificate against this name; it just does not send it.
        let seen = handshake(&termination.acceptor, &client, "default.test").await;
        assert_eq!(seen.leaf, default.der);
    }

    #[tokio::test]
    async fn alpn_follows_the_configured_order() {
        let pki = Pki::new();
        let site = pki.issue("site", &["site.test"]);
        let both = termination("web", &tls(&[&site], &[Alpn::H2, Alpn::Http11])).unwrap();
        let http11_only = termination("web", &tls(&[&site], &[Alpn::Http11])).unwrap();
        let none = termination("web", &tls(&[&site], &[])).unwrap();

        let mut client = pki.client(&[&rustls::version::TLS13]);
        client.alpn_protocols = vec![b"http/1.1".to_vec(), b"h2".to_vec()];
        let client = TlsConnector::from(Arc::new(client));
        let alpn = |seen: Seen| seen.alpn;
        assert_eq!(
            alpn(handshake(&both.acceptor, &client, "site.test").await),
            Some(b"h2".to_vec())
        );
        assert_eq!(
            alpn(handshake(&http11_only.acceptor, &client, "site.test").await),
            Some(b"http/1.1".to_vec())
        );
        assert_eq!(
            alpn(handshake(&none.acceptor, &client, "site.test").await),
            None
        );
    }

    #[tokio::test]
    async fn tls13_by_default_and_tickets_resume() {
        let pki = Pki::new();
        let site = pki.issue("site", &["site.test"]);
        let termination = termination("web", &tls(&[&site], &[Alpn::Http11])).unwrap();
        let mut client = pki.client(&[&rustls::version::TLS13, &rustls::version::TLS12]);
        client.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let client = TlsConnector::from(Arc::new(client));
        let first = handshake(&termination.acceptor, &client, "site.test").await;
        assert_eq!(first.version, ProtocolVersion::TLSv1_3);
        assert_eq!(first.kind, HandshakeKind::Full);
        // The server takes the client's first group it supports: rustls clients offer the
        // post-quantum hybrid first.
        assert_eq!(first.key_exchange.as_deref(), Some("X25519MLKEM768"));
        let again = handshake(&termination.acceptor, &client, "site.test").await;
        assert_eq!(again.kind, HandshakeKind::Resumed);
        assert_eq!(again.alpn, Some(b"http/1.1".to_vec()));
        // Resumption would work from the session cache alone; tickets keep the server stateless.
        let config = termination.acceptor.config();
        assert!(config.ticketer.enabled());
        assert_eq!(config.send_tls13_tickets, 2);
    }

    #[tokio::test]
    async fn tls12_works_and_resumes() {
        let pki = Pki::new();
        let site = pki.issue("site", &["site.test"]);
        let termination = termination("web", &tls(&[&site], &[Alpn::H2, Alpn::Http11])).unwrap();
        let mut client = pki.client(&[&rustls::version::TLS12]);
        client.alpn_protocols = vec![b"h2".to_vec()];
        let client = TlsConnector::from(Arc::new(client));
        let first = handshake(&termination.acceptor, &client, "site.test").await;
        assert_eq!(first.version, ProtocolVersion::TLSv1_2);
        assert_eq!(first.kind, HandshakeKind::Full);
        assert_eq!(first.alpn, Some(b"h2".to_vec()));
        assert_eq!(first.key_exchange.as_deref(), Some("X25519"));
        let again = handshake(&termination.acceptor, &client, "site.test").await;
        assert_eq!(again.kind, HandshakeKind::Resumed);
    }

    #[tokio::test]
    async fn rsa_and_ecdsa_p256_keys_both_serve() {
        let pki = Pki::new();
        let rsa_params = CertificateParams::new(vec!["rsa.test".to_owned()]).unwrap();
        let rsa = pki.issue_with(
            "rsa",
            rsa_params,
            &KeyPair::generate_for(&PKCS_RSA_SHA256).unwrap(),
        );
        let ecdsa = pki.issue("ecdsa", &["ecdsa.test"]);
        let termination = termination("web", &tls(&[&rsa, &ecdsa], &[])).unwrap();
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            let client = TlsConnector::from(Arc::new(pki.client(&[version])));
            for (name, expected) in [("rsa.test", &rsa), ("ecdsa.test", &ecdsa)] {
                let seen = handshake(&termination.acceptor, &client, name).await;
                assert_eq!(seen.leaf, expected.der, "{name} over {:?}", version.version);
                assert_eq!(seen.version, version.version);
            }
        }
    }

    /// `site`'s TLS with `adjust` applied, built.
    fn knobs(site: &Written, adjust: impl FnOnce(&mut Tls)) -> Termination {
        let mut tls = tls(&[site], &[]);
        adjust(&mut tls);
        termination("web", &tls).unwrap()
    }

    fn connector(config: ClientConfig) -> TlsConnector {
        TlsConnector::from(Arc::new(config))
    }

    /// A client of `pki` that offers only `suites`, in that order.
    fn offering(pki: &Pki, suites: &[rustls::SupportedCipherSuite]) -> TlsConnector {
        let provider = CryptoProvider {
            cipher_suites: suites.to_vec(),
            ..rustls::crypto::aws_lc_rs::default_provider()
        };
        connector(
            ClientConfig::builder_with_provider(Arc::new(provider))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(pki.roots())
                .with_no_client_auth(),
        )
    }

    #[tokio::test]
    async fn versions_outside_the_configured_range_are_refused() {
        let pki = Pki::new();
        let site = pki.issue("site", &["site.test"]);
        let range = |min, max| move |tls: &mut Tls| tls.versions = config::TlsVersions { min, max };
        use config::TlsVersion::{Tls12, Tls13};
        let only13 = knobs(&site, range(Tls13, Tls13));
        let only12 = knobs(&site, range(Tls12, Tls12));
        let tls12 = connector(pki.client(&[&rustls::version::TLS12]));
        let tls13 = connector(pki.client(&[&rustls::version::TLS13]));
        let both = connector(pki.client(&[&rustls::version::TLS13, &rustls::version::TLS12]));
        let refused = attempt(&only13.acceptor, &tls12, "site.test").await;
        assert!(refused.is_err(), "a TLS 1.2 client under min_version 1.3");
        let seen = handshake(&only13.acceptor, &both, "site.test").await;
        assert_eq!(seen.version, ProtocolVersion::TLSv1_3);
        assert!(attempt(&only12.acceptor, &tls13, "site.test")
            .await
            .is_err());
        let seen = handshake(&only12.acceptor, &both, "site.test").await;
        assert_eq!(seen.version, ProtocolVersion::TLSv1_2);
    }

    #[tokio::test]
    async fn the_server_order_of_suites_wins_when_preferred() {
        use rustls::crypto::aws_lc_rs::cipher_suite::*;
        use rustls::CipherSuite as Suite;
        let pki = Pki::new();
        let site = pki.issue("site", &["site.test"]);
        let cases = [
            (
                [TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384],
                [
                    Suite::TLS13_AES_256_GCM_SHA384,
                    Suite::TLS13_AES_128_GCM_SHA256,
                ],
            ),
            (
                [
                    TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                    TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
                ],
                [
                    Suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
                    Suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                ],
            ),
        ];
        for (client_order, server_order) in cases {
            let client = offering(&pki, &client_order);
            for (prefer, expected) in [(false, client_order[0].suite()), (true, server_order[0])] {
                let server = knobs(&site, |tls| {
                    tls.cipher_suites = Some(server_order.to_vec());
                    tls.prefer_server_ciphers = prefer;
                });
                let seen = handshake(&server.acceptor, &client, "site.test").await;
                assert_eq!(seen.suite, expected, "prefer_server_ciphers: {prefer}");
            }
        }
        // A suite left out of the list is not served.
        let server = knobs(&site, |tls| {
            tls.cipher_suites = Some(vec![
                Suite::TLS13_AES_256_GCM_SHA384,
                Suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            ]);
        });
        let client = offering(&pki, &[TLS13_AES_128_GCM_SHA256]);
        assert!(attempt(&server.acceptor, &client, "site.test")
            .await
            .is_err());
    }

    /// A ticket-key file of fresh random keys.
    fn ticket_key_file(pki: &Pki, name: &str, keys: usize) -> PathBuf {
        use base64::Engine as _;
        let lines: Vec<String> = (0..keys)
            .map(|_| {
                let mut key = [0u8; tickets::KEY_LEN];
                aws_lc_rs::rand::fill(&mut key).unwrap();
                base64::engine::general_purpose::STANDARD.encode(key)
            })
            .collect();
        pki.write(name, lines.join("\n"))
    }

    #[tokio::test]
    async fn a_shared_ticket_key_file_resumes_sessions_on_another_server() {
        let pki = Pki::new();
        let site = pki.issue("site", &["site.test"]);
        let shared = ticket_key_file(&pki, "shared.keys", 2);
        let other = ticket_key_file(&pki, "other.keys", 1);
        let with = |file: &PathBuf| {
            let file = file.clone();
            knobs(&site, move |tls| {
                tls.session_tickets = config::SessionTickets::KeyFile(file)
            })
        };
        let ephemeral = || knobs(&site, |_| {});
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            // `first` and `second` stand for the two nodes of a pair: nothing in common but
            // the file.
            for (first, second, resumes) in [
                (with(&shared), with(&shared), true),
                (with(&shared), with(&other), false),
                (ephemeral(), ephemeral(), false),
            ] {
                let client = connector(pki.client(&[version]));
                let full = handshake(&first.acceptor, &client, "site.test").await;
                assert_eq!(full.kind, HandshakeKind::Full);
                let again = handshake(&second.acceptor, &client, "site.test").await;
                let expected = match resumes {
                    true => HandshakeKind::Resumed,
                    false => HandshakeKind::Full,
                };
                assert_eq!(again.kind, expected, "{:?}", version.version);
            }
        }
    }

    #[tokio::test]
    async fn without_tickets_only_this_servers_memory_resumes() {
        let pki = Pki::new();
        let site = pki.issue("site", &["site.test"]);
        let off = |tls: &mut Tls| tls.session_tickets = config::SessionTickets::Off;
        let server = knobs(&site, off);
        assert!(!server.acceptor.config().ticketer.enabled());
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            let client = connector(pki.client(&[version]));
            let full = handshake(&server.acceptor, &client, "site.test").await;
            assert_eq!(full.kind, HandshakeKind::Full);
            let again = handshake(&server.acceptor, &client, "site.test").await;
            assert_eq!(again.kind, HandshakeKind::Resumed, "{:?}", version.version);
            let elsewhere = knobs(&site, off);
            let seen = handshake(&elsewhere.acceptor, &client, "site.test").await;
            assert_eq!(seen.kind, HandshakeKind::Full, "{:?}", version.version);
        }
    }

    /// A client of `pki` presenting `certificate`.
    fn presenting(pki: &Pki, certificate: &Written) -> TlsConnector {
        let key = read_key(&certificate.files.key, FileRole::ClientKey).unwrap();
        connector(
            ClientConfig::builder_with_provider(PROVIDER.clone())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(pki.roots())
                .with_client_auth_cert(vec![certificate.der.clone()], key)
                .unwrap(),
        )
    }

    #[tokio::test]
    async fn client_certificates_are_checked_and_their_subject_read() {
        let pki = Pki::new();
        let site = pki.issue("site", &["site.test"]);
        let clients = Pki::new();
        let ca = pki.write(
            "clients-ca.pem",
            clients
                .ca_params
                .self_signed(&clients.ca_key)
                .unwrap()
                .pem(),
        );
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Example");
        params.distinguished_name.push(DnType::CommonName, "alice");
        let alice = clients.issue_with("alice", params, &KeyPair::generate().unwrap());
        // Issued by another CA than `client_auth.ca`.
        let stranger = pki.issue("stranger", &["stranger.test"]);

        let auth = |required| {
            let ca = ca.clone();
            move |tls: &mut Tls| tls.client_auth = Some(config::ClientAuth { ca, required })
        };
        let required = knobs(&site, auth(true));
        let optional = knobs(&site, auth(false));
        let anonymous = connector(pki.client(&[&rustls::version::TLS13, &rustls::version::TLS12]));
        for (server, required) in [(&required, true), (&optional, false)] {
            let seen = handshake(&server.acceptor, &presenting(&pki, &alice), "site.test").await;
            assert_eq!(seen.client_subject.as_deref(), Some("CN=alice,O=Example"));
            let stranger = presenting(&pki, &stranger);
            let refused = attempt(&server.acceptor, &stranger, "site.test").await;
            assert!(refused.is_err(), "a certificate from another CA");
            let without = attempt(&server.acceptor, &anonymous, "site.test").await;
            match required {
                true => assert!(without.is_err(), "no certificate, but one is required"),
                false => assert_eq!(without.unwrap().client_subject, None),
            }
        }
    }

    #[test]
    fn an_ocsp_response_is_stapled_with_its_certificate_and_checked_for_der() {
        let pki = Pki::new();
        let site = pki.issue("site", &["site.test"]);
        // A DER SEQUENCE holding an OCSPResponseStatus of 6, unauthorized.
        let response = [0x30, 0x03, 0x0a, 0x01, 0x06];
        let ocsp = pki.write("site.ocsp", response);
        let files = |ocsp: &PathBuf| CertificateFiles {
            ocsp: Some(ocsp.clone()),
            ..site.files.clone()
        };
        let loaded = load(&files(&ocsp)).unwrap();
        assert_eq!(loaded.key.ocsp.as_deref(), Some(&response[..]));
        assert_eq!(load(&site.files).unwrap().key.ocsp, None);

        let pem = pki.write("site.ocsp.pem", "-----BEGIN OCSP RESPONSE-----\n");
        assert_eq!(
            error_text(load(&files(&pem))),
            format!(
                "{}: not a DER OCSP response (`openssl ocsp ... -respout FILE` writes one; PEM \
                 is not read)",
                pem.display()
            )
        );
        let missing = pki.path("missing.ocsp");
        let error = load(&files(&missing)).unwrap_err();
        assert!(
            matches!(
                error,
                TlsError::File {
                    role: FileRole::Ocsp,
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn settings_errors_name_the_client_ca_and_the_ticket_keys() {
        let pki = Pki::new();
        let site = pki.issue("site", &["site.test"]);
        let mut tls = tls(&[&site], &[]);
        assert!(settings_errors(&tls).is_empty());
        let keys = pki.write("bad.keys", "AAAA\n");
        tls.session_tickets = config::SessionTickets::KeyFile(keys.clone());
        tls.client_auth = Some(config::ClientAuth {
            ca: pki.path("missing-ca.pem"),
            required: true,
        });
        let errors: Vec<(&str, String)> = (settings_errors(&tls).iter())
            .map(|error| match error {
                TlsError::File { role, .. } => (role.key(), error.to_string()),
                other => panic!("{other}"),
            })
            .collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(errors[0].0, "client_auth.ca");
        assert!(errors[0]
            .1
            .ends_with("missing-ca.pem: cannot read: No such file or directory (os error 2)"));
        assert_eq!(
            errors[1],
            (
                "session_ticket_keys",
                format!(
                    "{}: line 1 holds 3 bytes; a key is 48 (`openssl rand -base64 48`)",
                    keys.display()
                )
            )
        );
        assert!(
            termination("web", &tls).is_err(),
            "the same files fail a build"
        );

        // nginx's binary key file, under a comment line.
        let mut binary = b"# from nginx\n".to_vec();
        binary.extend([0xff; 80]);
        let nginx = pki.write("nginx.key", binary);
        let error = ticket_keys(&nginx).unwrap_err().to_string();
        assert_eq!(error, format!("{}: line 2 is not base64", nginx.display()));
    }
}
