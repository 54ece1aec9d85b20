//! A frontend's TLS settings as OpenSSL's `s_client` sees them: versions, the server's cipher
//! order, a stapled OCSP response (made with `openssl ocsp` and reread on SIGHUP), client
//! certificates (refused without one, routed and denied by subject, logged), session resumption
//! across two tandem processes sharing a ticket-key file (and not where the client-certificate
//! settings differ), and `tandem check` naming each bad setting at its place in the file. The
//! certificates come from a CA made with `openssl` too.
mod support;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::edge::installed;
use support::*;

const LIMIT: Duration = Duration::from_secs(10);

/// A test CA made with the openssl command, and the directory of its files.
struct OpensslCa {
    dir: tempfile::TempDir,
}

/// A certificate and its key as files.
struct Issued {
    cert: PathBuf,
    key: PathBuf,
}

impl Issued {
    fn yaml(&self) -> String {
        format!(
            "{{ cert: \"{}\", key: \"{}\" }}",
            self.cert.display(),
            self.key.display()
        )
    }
}

/// Runs `openssl` with `args` in `dir`; panics with its output if it fails.
fn openssl(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "openssl {args:?}:\n{text}");
    text
}

impl OpensslCa {
    fn new(name: &str) -> OpensslCa {
        let dir = tempfile::tempdir().unwrap();
        openssl(
            dir.path(),
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        OpensslCa { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn ca(&self) -> PathBuf {
        self.path("ca.pem")
    }

    /// A P-256 certificate for `subject` (`/O=Example/CN=alice`) with the `extensions`
    /// (openssl's `-extfile` lines), as `<stem>.pem` and `<stem>.key`.
    fn issue(&self, stem: &str, subject: &str, extensions: &str) -> Issued {
        let dir = self.dir.path();
        let (csr, ext) = (format!("{stem}.csr"), format!("{stem}.ext"));
        let issued = Issued {
            cert: self.path(&format!("{stem}.pem")),
            key: self.path(&format!("{stem}.key")),
        };
        let key = issued.key.to_str().unwrap();
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                key,
                "-out",
                &csr,
                "-subj",
                subject,
            ],
        );
        std::fs::write(
            dir.join(&ext),
            format!("basicConstraints=CA:FALSE\n{extensions}\n"),
        )
        .unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &ext,
                "-out",
                issued.cert.to_str().unwrap(),
            ],
        );
        issued
    }

    fn server(&self, stem: &str) -> Issued {
        self.issue(
            stem,
            "/CN=www.example.com",
            "subjectAltName=DNS:www.example.com\nextendedKeyUsage=serverAuth",
        )
    }

    fn client(&self, stem: &str, subject: &str) -> Issued {
        self.issue(stem, subject, "extendedKeyUsage=clientAuth")
    }

    /// Writes an OCSP response for `certificate` to `<stem>.ocsp`, signed by a responder
    /// certificate of this CA, saying the certificate is good or revoked.
    fn ocsp(&self, certificate: &Issued, revoked: bool) -> PathBuf {
        let dir = self.dir.path();
        if !self.path("responder.pem").exists() {
            self.issue(
                "responder",
                "/CN=OCSP responder",
                "extendedKeyUsage=OCSPSigning",
            );
        }
        let cert = certificate.cert.to_str().unwrap();
        let serial = openssl(dir, &["x509", "-noout", "-serial", "-in", cert]);
        let serial = serial.trim().trim_start_matches("serial=");
        let (status, revoked_at) = match revoked {
            true => ("R", "261201000000Z"),
            false => ("V", ""),
        };
        let index = format!(
            "{status}\t301231235959Z\t{revoked_at}\t{serial}\tunknown\t/CN=www.example.com\n"
        );
        std::fs::write(dir.join("index.txt"), index).unwrap();
        let out = certificate.cert.with_extension("ocsp");
        openssl(
            dir,
            &[
                "ocsp",
                "-index",
                "index.txt",
                "-rsigner",
                "responder.pem",
                "-rkey",
                "responder.key",
                "-CA",
                "ca.pem",
                "-issuer",
                "ca.pem",
                "-cert",
                cert,
                "-respout",
                out.to_str().unwrap(),
                "-ndays",
                "1",
            ],
        );
        out
    }
}

/// What `openssl s_client` printed for one connection, stdout and stderr together.
struct Session(String);

impl Session {
    /// The HTTP status line's code, when a response came back.
    fn status(&self) -> Option<u16> {
        let at = self.0.find("HTTP/1.1 ")?;
        self.0[at + 9..at + 12].parse().ok()
    }

    /// The text after `label` up to the end of its line.
    fn after(&self, label: &str) -> Option<&str> {
        let at = self.0.find(label)? + label.len();
        self.0[at..].lines().next().map(str::trim)
    }

    /// The negotiated suite: `Cipher is X` on the `New,`/`Reused,` line.
    fn cipher(&self) -> Option<&str> {
        self.after("Cipher is ")
    }

    /// `New` or `Reused`, and the version: `New, TLSv1.3`.
    fn handshake(&self) -> Option<String> {
        let line = self.0.lines().find(|line| {
            (line.starts_with("New, ") || line.starts_with("Reused, ")) && line.contains("Cipher")
        })?;
        let mut parts = line.split(", ");
        Some(format!("{}, {}", parts.next()?, parts.next()?))
    }
}

/// Connects with `openssl s_client` (verifying tandem's certificate against `ca`), sends a
/// GET for `path` and reads until tandem closes; `extra` adds s_client options. coreutils'
/// `timeout` bounds a run that would hang.
async fn s_client(address: SocketAddr, ca: &Path, path: &str, extra: &[&str]) -> Session {
    let mut command = Command::new("timeout");
    command
        .args([
            "20",
            "openssl",
            "s_client",
            "-connect",
            &address.to_string(),
        ])
        .args(["-servername", "www.example.com", "-CAfile"])
        .arg(ca)
        .args(["-verify_return_error", "-ign_eof"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n");
    tokio::task::spawn_blocking(move || {
        let mut child = command.spawn().unwrap();
        // A refused handshake may close the pipe before the request is written.
        let _ = child.stdin.take().unwrap().write_all(request.as_bytes());
        let output = child.wait_with_output().unwrap();
        assert_ne!(output.status.code(), Some(124), "s_client timed out");
        Session(format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    })
    .await
    .unwrap()
}

/// tandem with `frontends` (YAML list items, each on backend `pool` unless it says) and the
/// backends `pool` (server `web`) and `admin` (server `admin`).
struct Setup {
    tandem: Tandem,
    _web: TestServer,
    _admin: TestServer,
}

async fn start(frontends: &[(SocketAddr, String)], extra: &str) -> Setup {
    let named: Vec<(String, SocketAddr, String)> = (frontends.iter())
        .map(|(address, keys)| (format!("f{}", address.port()), *address, keys.clone()))
        .collect();
    start_named(&named, extra).await
}

/// [`start`] with the frontends' names given: session tickets resume only on a frontend of
/// the same name, as on the other node of a pair.
async fn start_named(frontends: &[(String, SocketAddr, String)], extra: &str) -> Setup {
    let web = TestServer::start("web").await;
    let admin = TestServer::start("admin").await;
    let mut config = format!("node: {{ name: edge, threads: 1 }}\n{extra}frontends:\n");
    for (name, address, keys) in frontends {
        config.push_str(&format!(
            "  - name: {name}\n    listen: \"{address}\"\n    mode: http\n    backend: pool\n{keys}"
        ));
    }
    config.push_str(&format!(
        "backends:\n  - {{ name: pool, servers: [{{ name: web, address: \"{}\" }}] }}\n\
         \x20 - {{ name: admin, servers: [{{ name: admin, address: \"{}\" }}] }}\n",
        web.address, admin.address
    ));
    let listens: Vec<SocketAddr> = frontends.iter().map(|(_, address, _)| *address).collect();
    Setup {
        tandem: Tandem::start(&config, &listens).await,
        _web: web,
        _admin: admin,
    }
}

/// The `tls:` block of a frontend with `site` and `keys` (lines indented under `tls:`).
fn tls(site: &Issued, keys: &str) -> String {
    format!("    tls:\n      certificates: [{}]\n{keys}", site.yaml())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls12_client_is_refused_under_min_version_13() {
    if !installed("openssl", "openssl") {
        return;
    }
    let ca = OpensslCa::new("tandem test CA");
    let site = ca.server("site");
    let (strict, default) = (listen(), listen());
    let _setup = start(
        &[
            (strict, tls(&site, "      min_version: \"1.3\"\n")),
            (default, tls(&site, "")),
        ],
        "",
    )
    .await;

    let refused = s_client(strict, &ca.ca(), "/", &["-tls1_2"]).await;
    assert_eq!(refused.status(), None, "{}", refused.0);
    assert!(
        refused.0.contains("alert protocol version"),
        "{}",
        refused.0
    );
    let modern = s_client(strict, &ca.ca(), "/", &["-tls1_3"]).await;
    assert_eq!(
        modern.handshake().as_deref(),
        Some("New, TLSv1.3"),
        "{}",
        modern.0
    );
    assert_eq!(modern.status(), Some(200));
    let old = s_client(default, &ca.ca(), "/", &["-tls1_2"]).await;
    assert_eq!(
        old.handshake().as_deref(),
        Some("New, TLSv1.2"),
        "{}",
        old.0
    );
    assert_eq!(old.status(), Some(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_cipher_order_wins_with_prefer_server_ciphers() {
    if !installed("openssl", "openssl") {
        return;
    }
    let ca = OpensslCa::new("tandem test CA");
    let site = ca.server("site");
    // A colon-joined OpenSSL list as pasted from HAProxy or nginx, then IANA names.
    let suites = "      cipher_suites:\n\
                  \x20       - \"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256\"\n\
                  \x20       - TLS_AES_256_GCM_SHA384\n\
                  \x20       - TLS_AES_128_GCM_SHA256\n";
    let (server_order, client_order) = (listen(), listen());
    let _setup = start(
        &[
            (
                server_order,
                tls(
                    &site,
                    &format!("{suites}      prefer_server_ciphers: true\n"),
                ),
            ),
            (client_order, tls(&site, suites)),
        ],
        "",
    )
    .await;

    // The client offers the server's second choice first.
    let tls12 = [
        "-tls1_2",
        "-cipher",
        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384",
    ];
    let tls13 = [
        "-tls1_3",
        "-ciphersuites",
        "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384",
    ];
    for (offer, server_first, client_first) in [
        (
            &tls12,
            "ECDHE-ECDSA-AES256-GCM-SHA384",
            "ECDHE-ECDSA-AES128-GCM-SHA256",
        ),
        (&tls13, "TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256"),
    ] {
        let session = s_client(server_order, &ca.ca(), "/", offer).await;
        assert_eq!(session.cipher(), Some(server_first), "{}", session.0);
        assert_eq!(session.status(), Some(200));
        let session = s_client(client_order, &ca.ca(), "/", offer).await;
        assert_eq!(session.cipher(), Some(client_first), "{}", session.0);
    }
    // A suite the frontend does not list is not served.
    let session = s_client(
        server_order,
        &ca.ca(),
        "/",
        &["-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"],
    )
    .await;
    assert_eq!(session.status(), None, "{}", session.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stapled_ocsp_response_is_seen_and_reread_on_sighup() {
    if !installed("openssl", "openssl") {
        return;
    }
    let ca = OpensslCa::new("tandem test CA");
    let site = ca.server("site");
    let ocsp = ca.ocsp(&site, false);
    let (stapling, plain) = (listen(), listen());
    let stapled = format!(
        "    tls:\n      certificates:\n        - {{ cert: \"{}\", key: \"{}\", ocsp: \"{}\" }}\n",
        site.cert.display(),
        site.key.display(),
        ocsp.display()
    );
    let setup = start(&[(stapling, stapled), (plain, tls(&site, ""))], "").await;

    for version in ["-tls1_3", "-tls1_2"] {
        let session = s_client(stapling, &ca.ca(), "/", &["-status", version]).await;
        assert_eq!(
            session.after("OCSP Response Status:"),
            Some("successful (0x0)"),
            "{version}: {}",
            session.0
        );
        assert_eq!(session.after("Cert Status:"), Some("good"), "{}", session.0);
        assert_eq!(session.status(), Some(200));
    }
    let without = s_client(plain, &ca.ca(), "/", &["-status"]).await;
    assert!(
        without.0.contains("OCSP response: no response sent"),
        "{}",
        without.0
    );

    // A new response in the same file: served after SIGHUP.
    ca.ocsp(&site, true);
    let config = std::fs::read_to_string(&setup.tandem.config_path).unwrap();
    let log = setup.tandem.reload(&config).await;
    assert!(log.contains("config reloaded"), "{log}");
    let session = s_client(stapling, &ca.ca(), "/", &["-status"]).await;
    assert_eq!(
        session.after("Cert Status:"),
        Some("revoked"),
        "{}",
        session.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_required_and_their_subject_routes_denies_and_is_logged() {
    if !installed("openssl", "openssl") {
        return;
    }
    let ca = OpensslCa::new("tandem test CA");
    let site = ca.server("site");
    let clients = OpensslCa::new("tandem clients CA");
    let alice = clients.client("alice", "/O=Example/CN=alice");
    let operator = clients.client("operator", "/O=Example/OU=ops/CN=operator");
    let mallory = clients.client("mallory", "/O=Example/CN=mallory");
    // Signed by the server CA, which client_auth does not trust.
    let stranger = ca.client("stranger", "/O=Example/CN=alice");

    let access_log = tempfile::NamedTempFile::new().unwrap();
    let extra = format!(
        "access_log: {{ format: json, path: \"{}\" }}\n",
        access_log.path().display()
    );
    let rules = "    rules:\n\
                 \x20     - { match: { client_cert: { subject: \"~^CN=mallory,\" } }, deny: 403 }\n\
                 \x20     - { match: { client_cert: { subject: \"~,OU=ops,\" } }, backend: admin }\n\
                 \x20     - { match: { client_cert: { subject: false } }, deny: 401 }\n\
                 \x20     - set_request_headers: { X-Client-DN: \"{client_subject}\" }\n";
    let client_auth = |required: bool| {
        format!(
            "      client_auth: {{ ca: \"{}\", required: {required} }}\n{rules}",
            clients.ca().display()
        )
    };
    let (required, optional) = (listen(), listen());
    let _setup = start(
        &[
            (required, tls(&site, &client_auth(true))),
            (optional, tls(&site, &client_auth(false))),
        ],
        &extra,
    )
    .await;
    // s_client's options presenting `who`'s certificate (none for `None`), then `version`.
    let options = |who: Option<&Issued>, version: &str| -> Vec<String> {
        let mut options = Vec::new();
        if let Some(who) = who {
            options.extend(["-cert".into(), who.cert.display().to_string()]);
            options.extend(["-key".into(), who.key.display().to_string()]);
        }
        options.push(version.to_owned());
        options
    };
    let connect = |address, path: &'static str, options: Vec<String>| {
        let ca = ca.ca();
        async move {
            let options: Vec<&str> = options.iter().map(String::as_str).collect();
            s_client(address, &ca, path, &options).await
        }
    };

    for version in ["-tls1_3", "-tls1_2"] {
        let refused = connect(required, "/", options(None, version)).await;
        assert_eq!(
            refused.status(),
            None,
            "no certificate, {version}: {}",
            refused.0
        );
        let session = connect(required, "/headers", options(Some(&alice), version)).await;
        assert_eq!(session.status(), Some(200), "{version}: {}", session.0);
        assert!(
            session.0.contains("x-client-dn: CN=alice,O=Example\n"),
            "the subject reaches the server: {}",
            session.0
        );
        let session = connect(required, "/", options(Some(&stranger), version)).await;
        assert_eq!(
            session.status(),
            None,
            "another CA's certificate: {}",
            session.0
        );
    }

    for (address, who, expected_status, expected_server) in [
        (required, Some(&operator), 200, Some("admin")),
        (required, Some(&mallory), 403, None),
        (required, Some(&alice), 200, Some("web")),
        (optional, Some(&alice), 200, Some("web")),
        (optional, None, 401, None),
    ] {
        let session = connect(address, "/", options(who, "-tls1_3")).await;
        assert_eq!(session.status(), Some(expected_status), "{}", session.0);
        if let Some(server) = expected_server {
            let body = format!("\r\n\r\n{server}");
            assert!(session.0.contains(&body), "{server} answers: {}", session.0);
        }
    }

    // The subject as openssl prints it in RFC 2253 form, in the access log.
    let printed = openssl(
        clients.dir.path(),
        &[
            "x509",
            "-noout",
            "-subject",
            "-nameopt",
            "RFC2253",
            "-in",
            "operator.pem",
        ],
    );
    let subject = printed.trim().trim_start_matches("subject=").to_owned();
    assert_eq!(subject, "CN=operator,OU=ops,O=Example");
    let path = access_log.path().to_path_buf();
    let lines = || -> Vec<serde_json::Value> {
        (std::fs::read_to_string(&path).unwrap_or_default().lines())
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    };
    wait_until(LIMIT, "the operator's request is logged", || async {
        lines().iter().any(|line| line["server"] == "admin")
    })
    .await;
    let logged = lines();
    let operator_line = logged
        .iter()
        .find(|line| line["server"] == "admin")
        .unwrap();
    assert_eq!(operator_line["client_subject"], subject.as_str());
    assert!(
        logged
            .iter()
            .any(|line| line["status"] == 401 && line.get("client_subject").is_none()),
        "a request without a certificate has no subject: {logged:?}"
    );
}

/// A ticket-key file of `keys` random keys, made as the docs say.
fn ticket_keys(dir: &Path, name: &str, keys: usize) -> PathBuf {
    let lines: Vec<String> = (0..keys)
        .map(|_| openssl(dir, &["rand", "-base64", "48"]).trim().to_owned())
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_resume_on_another_tandem_sharing_the_ticket_key_file() {
    if !installed("openssl", "openssl") {
        return;
    }
    let ca = OpensslCa::new("tandem test CA");
    let site = ca.server("site");
    let shared = ticket_keys(ca.dir.path(), "shared.keys", 2);
    let other = ticket_keys(ca.dir.path(), "other.keys", 1);
    let keys = |file: &Path| format!("      session_ticket_keys: \"{}\"\n", file.display());
    let (first, second, stranger) = (listen(), listen(), listen());
    // Three processes: the two nodes of a pair, and one with other keys; the same frontend.
    let site_on = |address, file: &Path| [("site".to_owned(), address, tls(&site, &keys(file)))];
    let _first = start_named(&site_on(first, &shared), "").await;
    let second_node = start_named(&site_on(second, &shared), "").await;
    let _stranger = start_named(&site_on(stranger, &other), "").await;

    for version in ["-tls1_3", "-tls1_2"] {
        let session = ca.path(&format!("session{version}.pem"));
        let session_path = session.to_str().unwrap();
        let full = s_client(first, &ca.ca(), "/", &[version, "-sess_out", session_path]).await;
        assert_eq!(full.status(), Some(200), "{}", full.0);
        assert!(full.handshake().unwrap().starts_with("New"), "{}", full.0);
        let resumed = s_client(second, &ca.ca(), "/", &[version, "-sess_in", session_path]).await;
        assert!(
            resumed.handshake().unwrap().starts_with("Reused"),
            "{version} on the peer: {}",
            resumed.0
        );
        assert_eq!(resumed.status(), Some(200));
        let other = s_client(
            stranger,
            &ca.ca(),
            "/",
            &[version, "-sess_in", session_path],
        )
        .await;
        assert!(
            other.handshake().unwrap().starts_with("New"),
            "{version} with other keys: {}",
            other.0
        );
        assert_eq!(other.status(), Some(200));
    }

    // Rotation, read on SIGHUP: a new first key keeps the old sessions resuming; once the old
    // key is gone, they don't.
    let session = ca.path("session-tls1_3.pem");
    let session = session.to_str().unwrap();
    s_client(first, &ca.ca(), "/", &["-tls1_3", "-sess_out", session]).await;
    let old_keys = std::fs::read_to_string(&shared).unwrap();
    let new_key = openssl(ca.dir.path(), &["rand", "-base64", "48"]);
    let config = std::fs::read_to_string(&second_node.tandem.config_path).unwrap();
    for (keys, resumes) in [(format!("{new_key}{old_keys}"), true), (new_key, false)] {
        std::fs::write(&shared, keys).unwrap();
        let log = second_node.tandem.reload(&config).await;
        assert!(last_reload_succeeded(&log), "{log}");
        let again = s_client(second, &ca.ca(), "/", &["-tls1_3", "-sess_in", session]).await;
        let expected = if resumes { "Reused" } else { "New" };
        assert!(
            again.handshake().unwrap().starts_with(expected),
            "{expected} expected: {}",
            again.0
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_resumes_only_with_the_client_certificate_settings_it_was_issued_under() {
    if !installed("openssl", "openssl") {
        return;
    }
    let ca = OpensslCa::new("tandem test CA");
    let site = ca.server("site");
    let clients = OpensslCa::new("tandem clients CA");
    let alice = clients.client("alice", "/O=Example/CN=alice");
    // The CA file client_auth names, rewritten below to trust another CA.
    let client_ca = ca.path("client-ca.pem");
    std::fs::copy(clients.ca(), &client_ca).unwrap();
    let shared = ticket_keys(ca.dir.path(), "shared.keys", 1);
    let keys = format!("      session_ticket_keys: \"{}\"\n", shared.display());
    let required = format!(
        "{keys}      client_auth: {{ ca: \"{}\", required: true }}\n",
        client_ca.display()
    );
    let (open_node, open, locked) = (listen(), listen(), listen());
    // A pair whose frontend `site` differs in client_auth alone, and on the second node
    // another frontend without client_auth; all under the same keys, for the same SNI.
    let _open_node = start_named(&[("site".into(), open_node, tls(&site, &keys))], "").await;
    let locked_node = start_named(
        &[
            ("site".into(), locked, tls(&site, &required)),
            ("open".into(), open, tls(&site, &keys)),
        ],
        "",
    )
    .await;
    let alice_options = |version| {
        let (cert, key) = (alice.cert.to_str().unwrap(), alice.key.to_str().unwrap());
        [version, "-cert", cert, "-key", key]
    };

    for version in ["-tls1_3", "-tls1_2"] {
        for (from, label) in [(open_node, "the peer's site"), (open, "this node's open")] {
            let session = ca.path(&format!("from-{}{version}.pem", from.port()));
            let session = session.to_str().unwrap();
            let issued = s_client(from, &ca.ca(), "/", &[version, "-sess_out", session]).await;
            assert_eq!(issued.status(), Some(200), "{}", issued.0);
            let replayed = s_client(locked, &ca.ca(), "/", &[version, "-sess_in", session]).await;
            assert!(
                replayed
                    .handshake()
                    .is_some_and(|kind| kind.starts_with("New")),
                "{version}, a ticket of {label}: {}",
                replayed.0
            );
            assert_eq!(
                replayed.status(),
                None,
                "{version}, a ticket of {label} stands in for a certificate: {}",
                replayed.0
            );
        }
        // Its own tickets do resume, carrying the certificate they were issued with.
        let session = ca.path(&format!("alice{version}.pem"));
        let session = session.to_str().unwrap();
        let mut options = alice_options(version).to_vec();
        options.extend(["-sess_out", session]);
        let full = s_client(locked, &ca.ca(), "/", &options).await;
        assert_eq!(full.status(), Some(200), "{}", full.0);
        let resumed = s_client(locked, &ca.ca(), "/", &[version, "-sess_in", session]).await;
        assert!(
            resumed.handshake().unwrap().starts_with("Reused"),
            "{version}: {}",
            resumed.0
        );
        assert_eq!(resumed.status(), Some(200), "{}", resumed.0);
    }

    // A reload that trusts another CA: alice's ticket no longer resumes.
    std::fs::copy(ca.ca(), &client_ca).unwrap();
    let config = std::fs::read_to_string(&locked_node.tandem.config_path).unwrap();
    let log = locked_node.tandem.reload(&config).await;
    assert!(last_reload_succeeded(&log), "{log}");
    let session = ca.path("alice-tls1_3.pem");
    let session = session.to_str().unwrap();
    let replayed = s_client(locked, &ca.ca(), "/", &["-tls1_3", "-sess_in", session]).await;
    assert!(
        replayed
            .handshake()
            .is_some_and(|kind| kind.starts_with("New")),
        "after the CA changed: {}",
        replayed.0
    );
    assert_eq!(replayed.status(), None, "{}", replayed.0);
}

/// Whether the last reload outcome in tandem's log is a success.
fn last_reload_succeeded(log: &str) -> bool {
    log.rfind("config reloaded") > log.rfind("reload failed")
}

/// `tandem check` on `config`: the errors it prints, from `line:column:` on.
fn check(dir: &Path, config: &str) -> Vec<String> {
    let path = dir.join("tandem.yaml");
    std::fs::write(&path, config).unwrap();
    let output = Command::new(tandem_binary())
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let prefix = format!("{}:", path.display());
    (stderr.lines())
        .filter_map(|line| line.strip_prefix(&prefix))
        .filter(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        .map(str::to_owned)
        .collect()
}

#[test]
fn check_names_bad_versions_suites_and_files_at_their_place() {
    if !installed("openssl", "openssl") {
        return;
    }
    let ca = OpensslCa::new("tandem test CA");
    let site = ca.server("site");
    let head = format!(
        "node: {{ name: edge }}\n\
         backends: [{{ name: pool, servers: [{{ name: s, address: 127.0.0.1:8080 }}] }}]\n\
         frontends:\n\
         \x20 - name: edge\n\
         \x20   listen: 127.0.0.1:8443\n\
         \x20   mode: http\n\
         \x20   backend: pool\n\
         \x20   tls:\n\
         \x20     certificates: [{}]\n",
        site.yaml()
    );
    let found = check(
        ca.dir.path(),
        &format!(
            "{head}      min_version: \"1.1\"\n      max_version: 1.3\n      \
             cipher_suites: [TLS_AES_128_GCM_SHA256, RC4-MD5]\n"
        ),
    );
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[0].starts_with(
            "10:20: frontends[0].tls.min_version: \"1.1\" is not a TLS version tandem serves"
        ),
        "{found:?}"
    );
    assert!(
        found[1].starts_with(
            "12:47: frontends[0].tls.cipher_suites[1]: unknown cipher suite \"RC4-MD5\"; tandem \
             serves TLS_AES_256_GCM_SHA384"
        ),
        "{found:?}"
    );

    let found = check(
        ca.dir.path(),
        &format!("{head}      client_auth: {{ ca: ca.pem, requried: true }}\n"),
    );
    assert_eq!(
        found,
        ["10:34: frontends[0].tls.client_auth.requried: unknown field `requried`, expected `ca` \
          or `required`"]
    );

    let ocsp_head = head.replace(
        "certificates: [{ cert",
        "certificates: [{ ocsp: missing.ocsp, cert",
    );
    let found = check(
        ca.dir.path(),
        &format!(
            "{ocsp_head}      session_ticket_keys: missing.keys\n      \
             client_auth: {{ ca: missing-ca.pem }}\n"
        ),
    );
    let dir = ca.dir.path().display();
    assert_eq!(
        found,
        [
            format!(
                "9:30: frontends[0].tls.certificates[0].ocsp: {dir}/missing.ocsp: cannot read: No \
                 such file or directory (os error 2)"
            ),
            format!(
                "11:26: frontends[0].tls.client_auth.ca: {dir}/missing-ca.pem: cannot read: No \
                 such file or directory (os error 2)"
            ),
            format!(
                "10:28: frontends[0].tls.session_ticket_keys: {dir}/missing.keys: cannot read: \
                 No such file or directory (os error 2)"
            ),
        ]
    );
}
