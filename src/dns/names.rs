//! The IO shell of DNS names: one task per named server, asking the backend's resolver when
//! the schedule says and reporting each change of its slots. What it decides is in `slots` and
//! `schedule`; applying a report is the appliance's.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_resolver::config::{LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::TokioResolver;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{schedule, slots, NameKey, Resolved, Slot};
use crate::config::{Config, Family, Resolve, ServerAddress};
use crate::stats;

/// A named server's slots: sent after its first lookup, whatever the result, and after every
/// answer that changes them.
#[derive(Debug)]
pub struct Report {
    pub key: NameKey,
    pub slots: Vec<Slot>,
}

/// The lookup tasks of the names a config has.
pub struct Names {
    tasks: HashMap<NameKey, (Resolve, JoinHandle<()>)>,
    reports: mpsc::UnboundedSender<Report>,
}

impl Names {
    pub fn new() -> (Names, mpsc::UnboundedReceiver<Report>) {
        let (reports, receiver) = mpsc::unbounded_channel();
        let names = Names {
            tasks: HashMap::new(),
            reports,
        };
        (names, receiver)
    }

    /// Looks up the names `config` has from now on: tasks of names it no longer has stop (as do
    /// those whose backend's `resolve:` changed, to start again with the new settings), and new
    /// ones start from what `resolved` knows, asking at once. Returns the keys started, whose
    /// first reports are on their way.
    pub fn follow(&mut self, config: &Config, resolved: &Resolved) -> Vec<NameKey> {
        let mut wanted = HashMap::new();
        for backend in &config.backends {
            for server in &backend.servers {
                if let ServerAddress::Name(name) = &server.address {
                    let key = NameKey {
                        backend: backend.name.clone(),
                        server: server.name.clone(),
                        name: name.clone(),
                    };
                    wanted.insert(key, &backend.resolve);
                }
            }
        }
        self.tasks.retain(|key, (resolve, task)| {
            let kept = wanted.get(key).is_some_and(|wanted| *wanted == resolve);
            if !kept {
                task.abort();
            }
            kept
        });
        let mut resolvers: Vec<(&Resolve, Arc<TokioResolver>)> = Vec::new();
        let mut started = Vec::new();
        for (key, resolve) in wanted {
            if self.tasks.contains_key(&key) {
                continue;
            }
            let resolver = match resolvers.iter().find(|(settings, _)| *settings == resolve) {
                Some((_, resolver)) => Arc::clone(resolver),
                None => {
                    let resolver = Arc::new(resolver(resolve));
                    resolvers.push((resolve, Arc::clone(&resolver)));
                    resolver
                }
            };
            let slots = resolved
                .slots(&key.backend, &key.server, &key.name)
                .to_vec();
            let lookups = Lookups {
                key: key.clone(),
                resolve: resolve.clone(),
                resolver,
                reports: self.reports.clone(),
            };
            let task = tokio::spawn(lookups.run(slots));
            self.tasks.insert(key.clone(), (resolve.clone(), task));
            started.push(key);
        }
        started
    }
}

impl Drop for Names {
    fn drop(&mut self) {
        for (_, task) in self.tasks.values() {
            task.abort();
        }
    }
}

/// Takes reports into `resolved` until every one of `started` has sent its first, or until
/// `wait` has passed (a name whose lookup hangs must not hold a start or a reload longer than
/// its timeout).
pub async fn first_reports(
    receiver: &mut mpsc::UnboundedReceiver<Report>,
    mut started: Vec<NameKey>,
    resolved: &mut Resolved,
    wait: Duration,
) {
    let deadline = tokio::time::Instant::now() + wait;
    while !started.is_empty() {
        let Ok(Some(report)) = tokio::time::timeout_at(deadline, receiver.recv()).await else {
            return;
        };
        started.retain(|key| *key != report.key);
        resolved.set(report.key, report.slots);
    }
}

/// The longest a first lookup of `config`'s names may take.
pub fn longest_timeout(config: &Config) -> Duration {
    (config.backends.iter())
        .filter(|backend| backend.resolves())
        .map(|backend| backend.resolve.timeout)
        .max()
        .unwrap_or_default()
}

fn resolver(resolve: &Resolve) -> TokioResolver {
    let provider = TokioConnectionProvider::default();
    let mut builder = if resolve.nameservers.is_empty() {
        TokioResolver::builder_tokio().unwrap_or_else(|error| {
            tracing::error!(
                %error,
                "cannot read the system's resolver settings (/etc/resolv.conf): names are \
                 looked up in /etc/hosts only; set resolve.nameservers"
            );
            TokioResolver::builder_with_config(ResolverConfig::new(), provider)
        })
    } else {
        let mut config = ResolverConfig::new();
        for &address in &resolve.nameservers {
            config.add_name_server(NameServerConfig::new(address, Protocol::Udp));
            config.add_name_server(NameServerConfig::new(address, Protocol::Tcp));
        }
        TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
    };
    let options = builder.options_mut();
    options.use_hosts_file = ResolveHosts::Always;
    options.ip_strategy = match resolve.prefer {
        Family::Ipv4 => LookupIpStrategy::Ipv4thenIpv6,
        Family::Ipv6 => LookupIpStrategy::Ipv6thenIpv4,
    };
    // A cached answer must not outlive the next scheduled lookup, or that lookup would see
    // nothing new.
    options.positive_max_ttl = Some(resolve.interval);
    options.negative_max_ttl = Some(resolve.min_interval);
    options.timeout = resolve.timeout / 2;
    options.attempts = 2;
    builder.build()
}

struct Lookups {
    key: NameKey,
    resolve: Resolve,
    resolver: Arc<TokioResolver>,
    reports: mpsc::UnboundedSender<Report>,
}

impl Lookups {
    async fn run(self, mut slots: Vec<Slot>) {
        let [answered, failed] = stats::dns_lookups(&self.key.backend, &self.key.server);
        let mut failures = 0;
        let mut first = true;
        loop {
            let delay = match self.lookup().await {
                Ok((addresses, ttl)) => {
                    answered.increment(1);
                    failures = 0;
                    let port = self.key.name.port;
                    let next = slots::assign(&slots, &addresses, port, self.resolve.max_addresses);
                    let changed = next != slots;
                    if changed {
                        tracing::info!(
                            backend = %self.key.backend, server = %self.key.server,
                            name = %self.key.name, addresses = %Listed(&next),
                            "name resolved to new addresses"
                        );
                    }
                    slots = next;
                    if changed || first {
                        self.report(&slots);
                    }
                    schedule::after_answer(ttl, &self.resolve)
                }
                Err(why) => {
                    failed.increment(1);
                    failures += 1;
                    tracing::warn!(
                        backend = %self.key.backend, server = %self.key.server,
                        name = %self.key.name, %why, failures, kept = %Listed(&slots),
                        "name lookup failed: keeping the addresses last known"
                    );
                    if first {
                        self.report(&slots);
                    }
                    schedule::after_failure(failures, &self.resolve)
                }
            };
            first = false;
            tokio::time::sleep(delay).await;
        }
    }

    /// The addresses answered, and for how long the answer holds. An answer with none is a
    /// failure: it keeps the last known addresses, as a lookup that times out does.
    async fn lookup(&self) -> Result<(Vec<IpAddr>, Duration), String> {
        let host = self.key.name.host.as_str();
        let lookup = tokio::time::timeout(self.resolve.timeout, self.resolver.lookup_ip(host));
        let answer = match lookup.await {
            Ok(Ok(answer)) => answer,
            Ok(Err(error)) => return Err(error.to_string()),
            Err(_) => {
                return Err(format!(
                    "no answer within {}",
                    crate::config::display_duration(self.resolve.timeout)
                ))
            }
        };
        let addresses: Vec<IpAddr> = answer.iter().collect();
        if addresses.is_empty() {
            return Err("the answer has no address".into());
        }
        let ttl = answer
            .valid_until()
            .saturating_duration_since(Instant::now());
        Ok((addresses, ttl))
    }

    fn report(&self, slots: &[Slot]) {
        // The receiver goes only when tandem stops.
        let _ = self.reports.send(Report {
            key: self.key.clone(),
            slots: slots.to_vec(),
        });
    }
}

/// Slots as `1=192.0.2.1:80 2=...` for the log.
struct Listed<'a>(&'a [Slot]);

impl std::fmt::Display for Listed<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        for (index, slot) in self.0.iter().enumerate() {
            let space = if index == 0 { "" } else { " " };
            write!(f, "{space}{}={}", slot.number, slot.address)?;
        }
        Ok(())
    }
}
