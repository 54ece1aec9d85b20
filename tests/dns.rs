//! Servers named by DNS, against a real DNS server (dnsmasq): traffic follows a changed record
//! with no reload, a name with three addresses is three servers, a failed lookup keeps the
//! addresses last known, and /etc/hosts is read.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::TokioResolver;

use support::edge::installed;
use support::metrics::scrape;
use support::{free_port, get, listen, wait_until, Tandem, TestServer};

const NAME: &str = "app.tandem.test";

/// dnsmasq answering from a hosts file only, with a TTL of 1 s; `set` rewrites the file and
/// has dnsmasq read it again (SIGHUP).
struct Dnsmasq {
    child: Child,
    address: SocketAddr,
    hosts: PathBuf,
    _dir: tempfile::TempDir,
}

impl Dnsmasq {
    async fn start(addresses: &[IpAddr]) -> Dnsmasq {
        let dir = tempfile::tempdir().unwrap();
        let hosts = dir.path().join("hosts");
        write_hosts(&hosts, addresses);
        let address = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let child = Command::new("dnsmasq")
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
            ])
            .args([
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                "--user=root",
            ])
            .args(["--local-ttl=1", "--pid-file="])
            .arg(format!("--port={}", address.port()))
            .arg(format!("--addn-hosts={}", hosts.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq starts");
        let dnsmasq = Dnsmasq {
            child,
            address,
            hosts,
            _dir: dir,
        };
        let expected: Vec<IpAddr> = addresses.to_vec();
        wait_until(Duration::from_secs(10), "dnsmasq answers", || {
            let lookup = dnsmasq.lookup();
            let expected = expected.clone();
            async move {
                lookup.await.is_some_and(|mut found| {
                    found.sort();
                    let mut expected = expected;
                    expected.sort();
                    found == expected
                })
            }
        })
        .await;
        dnsmasq
    }

    /// What dnsmasq answers for the test's name now.
    fn lookup(&self) -> impl std::future::Future<Output = Option<Vec<IpAddr>>> + use<> {
        let mut config = ResolverConfig::new();
        config.add_name_server(NameServerConfig::new(self.address, Protocol::Udp));
        let mut builder =
            TokioResolver::builder_with_config(config, TokioConnectionProvider::default());
        // Asked again and again until dnsmasq listens: each try must be short.
        builder.options_mut().timeout = Duration::from_millis(200);
        builder.options_mut().attempts = 1;
        builder.options_mut().cache_size = 0;
        let resolver = builder.build();
        async move {
            let answer = resolver.lookup_ip(NAME).await.ok()?;
            Some(answer.iter().collect())
        }
    }

    fn set(&self, addresses: &[IpAddr]) {
        write_hosts(&self.hosts, addresses);
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        self.stop();
    }
}

fn write_hosts(path: &PathBuf, addresses: &[IpAddr]) {
    let lines: String = (addresses.iter())
        .map(|address| format!("{address} {NAME}\n"))
        .collect();
    std::fs::write(path, lines).unwrap();
}

fn loopback(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

/// Test servers `a`, `b`, `c`... on 127.0.0.2, .3, .4... all on `port`.
async fn servers(port: u16, count: u8) -> Vec<TestServer> {
    let mut servers = Vec::new();
    for (index, name) in ["a", "b", "c"].iter().take(usize::from(count)).enumerate() {
        let address = SocketAddr::new(loopback(2 + index as u8), port);
        servers.push(TestServer::start_at(name, address).await);
    }
    servers
}

fn config(web: SocketAddr, admin: SocketAddr, dns: SocketAddr, port: u16) -> String {
    format!(
        "node: {{ name: dns-test }}
admin: {{ listen: \"{admin}\" }}
frontends:
  - {{ name: web, listen: \"{web}\", mode: http, backend: app }}
backends:
  - name: app
    resolve: {{ nameservers: [\"{dns}\"], interval: 2s, min_interval: 100ms, timeout: 1s }}
    servers:
      - {{ name: app, address: \"{NAME}:{port}\" }}
"
    )
}

/// Test servers on one port, a dnsmasq answering `answer` for the name, and tandem sending
/// `web` to the name.
struct Setup {
    port: u16,
    servers: Vec<TestServer>,
    dns: Dnsmasq,
    web: SocketAddr,
    admin: SocketAddr,
}

impl Setup {
    async fn new(servers_count: u8, answer: &[IpAddr]) -> Setup {
        let port = free_port();
        let servers = servers(port, servers_count).await;
        let dns = Dnsmasq::start(answer).await;
        Setup {
            port,
            servers,
            dns,
            web: listen(),
            admin: listen(),
        }
    }

    fn config(&self) -> String {
        config(self.web, self.admin, self.dns.address, self.port)
    }

    async fn tandem(&self) -> Tandem {
        Tandem::start(&self.config(), &[self.web]).await
    }
}

/// Who answers a request through `web`, or the failure.
async fn answered_by(web: SocketAddr) -> Result<String, String> {
    let answer = get(web, "/").await?;
    match answer.status {
        200 => Ok(answer.server.unwrap_or_default()),
        status => Err(format!("status {status}")),
    }
}

#[tokio::test]
async fn traffic_follows_a_changed_record_with_no_reload() {
    if !installed("dnsmasq", "dnsmasq") {
        return;
    }
    let setup = Setup::new(2, &[loopback(2)]).await;
    let (web, admin, dns) = (setup.web, setup.admin, &setup.dns);
    let tandem = setup.tandem().await;
    for _ in 0..3 {
        assert_eq!(
            answered_by(web).await.as_deref(),
            Ok("a"),
            "{}",
            tandem.log()
        );
    }

    dns.set(&[loopback(3)]);
    wait_until(Duration::from_secs(10), "traffic goes to b", || async {
        answered_by(web).await.as_deref() == Ok("b")
    })
    .await;
    for _ in 0..3 {
        assert_eq!(answered_by(web).await.as_deref(), Ok("b"), "and only to b");
    }
    let metrics = scrape(admin).await;
    assert_eq!(
        metrics.sum("tandem_config_reloads_total", &[]),
        0.0,
        "no reload"
    );
    assert!(
        metrics.get(
            "tandem_dns_lookups_total",
            &[("proxy", "app"), ("server", "app"), ("result", "answered")]
        ) >= 2.0
    );
    assert!(tandem.log().contains("name resolved to new addresses"));
}

#[tokio::test]
async fn a_name_with_three_addresses_is_three_servers() {
    if !installed("dnsmasq", "dnsmasq") {
        return;
    }
    let setup = Setup::new(3, &[loopback(2), loopback(3), loopback(4)]).await;
    let (web, admin, port) = (setup.web, setup.admin, setup.port);
    let tandem = setup.tandem().await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(
            answered_by(web)
                .await
                .unwrap_or_else(|e| panic!("{e}: {}", tandem.log())),
        );
    }
    seen.sort();
    assert_eq!(seen, ["a", "b", "c"], "round robin over the three");
    let status = get(admin, "/status").await.expect("status answers");
    let status: serde_json::Value = serde_json::from_slice(&status.body).unwrap();
    let servers = status["backends"][0]["servers"].as_array().unwrap();
    let names: Vec<&str> = servers
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["app-1", "app-2", "app-3"],
        "numbered in the answer's order"
    );
    let mut addresses: Vec<&str> = (servers.iter())
        .map(|s| s["address"].as_str().unwrap())
        .collect();
    addresses.sort();
    let expected: Vec<String> = (2..=4)
        .map(|last| format!("127.0.0.{last}:{port}"))
        .collect();
    assert_eq!(addresses, expected);
    assert!(servers
        .iter()
        .all(|s| s["dns_name"] == format!("{NAME}:{port}").as_str()));
    let metrics = scrape(admin).await;
    for server in ["app-1", "app-2", "app-3"] {
        assert_eq!(
            metrics.get(
                "tandem_server_sessions_total",
                &[("proxy", "app"), ("server", server)]
            ),
            1.0,
            "{server}"
        );
    }
}

#[tokio::test]
async fn a_failed_lookup_keeps_the_addresses_last_known() {
    if !installed("dnsmasq", "dnsmasq") {
        return;
    }
    let mut setup = Setup::new(1, &[loopback(2)]).await;
    let (web, admin) = (setup.web, setup.admin);
    let tandem = setup.tandem().await;
    assert_eq!(answered_by(web).await.as_deref(), Ok("a"));

    setup.dns.stop();
    let failed = [("proxy", "app"), ("server", "app"), ("result", "failed")];
    wait_until(Duration::from_secs(10), "a lookup fails", || async {
        scrape(admin).await.get("tandem_dns_lookups_total", &failed) >= 1.0
    })
    .await;
    for _ in 0..3 {
        assert_eq!(
            answered_by(web).await.as_deref(),
            Ok("a"),
            "{}",
            tandem.log()
        );
    }
    assert!(tandem
        .log()
        .contains("name lookup failed: keeping the addresses last known"));
}

#[tokio::test]
async fn names_in_etc_hosts_are_read() {
    let server = TestServer::start("local").await;
    let (web, admin) = (listen(), listen());
    let config = format!(
        "node: {{ name: hosts-test }}
admin: {{ listen: \"{admin}\" }}
frontends:
  - {{ name: web, listen: \"{web}\", mode: http, backend: app }}
backends:
  - name: app
    servers: [{{ name: app, address: \"localhost:{}\" }}]
",
        server.address.port()
    );
    let tandem = Tandem::start(&config, &[web]).await;
    assert_eq!(
        answered_by(web).await.as_deref(),
        Ok("local"),
        "{}",
        tandem.log()
    );
}

#[tokio::test]
async fn a_reload_that_adds_a_name_applies_it_already_looked_up() {
    if !installed("dnsmasq", "dnsmasq") {
        return;
    }
    let setup = Setup::new(1, &[loopback(2)]).await;
    let (web, port) = (setup.web, setup.port);
    let literal = TestServer::start("literal").await;
    let named = setup.config();
    let first = named.replace(
        &format!("\"{NAME}:{port}\""),
        &format!("\"{}\"", literal.address),
    );
    let tandem = Tandem::start(&first, &[web]).await;
    assert_eq!(answered_by(web).await.as_deref(), Ok("literal"));

    let log = tandem.reload(&named).await;
    assert!(log.contains("config reloaded"), "{log}");
    assert_eq!(
        answered_by(web).await.as_deref(),
        Ok("a"),
        "the first request after the reload goes to the name's address"
    );
    let log = tandem
        .reload(&named.replace("interval: 2s", "interval: 3s"))
        .await;
    assert!(log.contains("config reloaded"), "{log}");
    assert_eq!(
        answered_by(web).await.as_deref(),
        Ok("a"),
        "and after a reload changing resolve:"
    );
}

#[tokio::test]
async fn an_http_check_of_a_named_server_sends_the_name_as_host() {
    if !installed("dnsmasq", "dnsmasq") {
        return;
    }
    let setup = Setup::new(1, &[loopback(2)]).await;
    let (web, admin, port) = (setup.web, setup.admin, setup.port);
    let checked = setup.config().replace(
        "    servers:\n",
        &format!(
            "    health_check: {{ type: http, path: /headers, expect_body: \"host: {NAME}:{port}\", \
             interval: 100ms, timeout: 90ms, rise: 1, fall: 1 }}\n    servers:\n"
        ),
    );
    let tandem = Tandem::start(&checked, &[web]).await;
    wait_until(Duration::from_secs(5), "three checks of app-1", || async {
        setup.servers[0].requests() >= 3
    })
    .await;
    for _ in 0..3 {
        assert_eq!(
            answered_by(web).await.as_deref(),
            Ok("a"),
            "{}",
            tandem.log()
        );
    }
    let metrics = scrape(admin).await;
    assert_eq!(
        metrics.sum("tandem_server_check_failures_total", &[]),
        0.0,
        "{}",
        tandem.log()
    );
}

#[tokio::test]
async fn a_name_changing_leaves_the_other_backends_checks_alone() {
    if !installed("dnsmasq", "dnsmasq") {
        return;
    }
    let setup = Setup::new(2, &[loopback(2)]).await;
    let other = TestServer::start("other").await;
    let web = setup.web;
    let text = format!(
        "{}  - name: other\n    health_check: {{ type: http, path: /headers, interval: 30s }}\n    \
         servers: [{{ name: o, address: \"{}\" }}]\n",
        setup.config(),
        other.address
    );
    let tandem = Tandem::start(&text, &[web]).await;
    wait_until(Duration::from_secs(5), "other's first check", || async {
        other.requests() == 1
    })
    .await;
    setup.dns.set(&[loopback(3)]);
    wait_until(Duration::from_secs(10), "traffic goes to b", || async {
        answered_by(web).await.as_deref() == Ok("b")
    })
    .await;
    assert_eq!(
        other.requests(),
        1,
        "other's check was not started again by app's change: {}",
        tandem.log()
    );
}
