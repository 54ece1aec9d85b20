//! Runtime changes from the admin endpoint, applied on the control thread between reloads,
//! so that neither sees the other half done.

use std::sync::Arc;

use http::StatusCode;
use tokio::sync::oneshot;

use super::Running;
use crate::admin::api::{Change, Refusal};
use crate::backend::admin_state::{AdminState, Override};
use crate::backend::BackendState;
use crate::vrrp::machine::Event;

type Answer = oneshot::Sender<Result<String, Refusal>>;

impl Running {
    /// Applies `change` and answers it: at once, or for `announce`, whose drain waits for the
    /// routers, from a task of its own, so that reloads and signals don't wait with it.
    pub(super) async fn answer(&mut self, change: Change, answer: Answer) {
        match change {
            Change::Announce { drain } => self.announce_state(drain, answer),
            change => {
                let _ = answer.send(self.apply(change).await);
            }
        }
    }

    /// The runtime API's `announce` change, answered from a task of its own.
    fn announce_state(&self, drain: bool, answer: Answer) {
        let Some(announcer) = &self.announcer else {
            let refusal = Refusal::not_found("this node has no announce section");
            let _ = answer.send(Err(refusal));
            return;
        };
        let control = announcer.control();
        tokio::spawn(async move {
            let done = match drain {
                true => control.drain().await,
                false => control.ready().await,
            };
            tracing::info!("runtime change: {done}");
            let _ = answer.send(Ok(done));
        });
    }

    /// Applies `change`; the line says what changed, and is logged.
    async fn apply(&mut self, change: Change) -> Result<String, Refusal> {
        let done = match change {
            Change::ServerState {
                backend,
                server,
                state,
            } => self.change_server(&backend, &server, |change| change.state = state)?,
            Change::ServerWeight {
                backend,
                server,
                weight,
            } => self.change_server(&backend, &server, |change| change.weight = Some(weight))?,
            Change::Frontend { name, enabled } => self.enable_frontend(&name, enabled).await?,
            Change::VrrpResign { instance } => self.vrrp_resign(&instance).await?,
            Change::VrrpMaintenance { instance, on } => {
                self.vrrp_maintenance(&instance, on).await?
            }
            Change::Announce { .. } => unreachable!("answered by Running::answer"),
        };
        tracing::info!("runtime change: {done}");
        Ok(done)
    }

    /// Changes one server's runtime state with `edit`: its backend is rebuilt around the same
    /// servers (health, sessions and TLS stay) with new selectors, and serves at once.
    fn change_server(
        &mut self,
        backend: &str,
        server: &str,
        edit: impl FnOnce(&mut Override),
    ) -> Result<String, Refusal> {
        let Some(at) = (self.backends.iter()).position(|running| running.config.name == backend)
        else {
            return Err(Refusal::not_found(format!("no backend {backend:?}")));
        };
        let running = &self.backends[at];
        let Some(index) = running.server_index(server) else {
            return Err(Refusal::not_found(format!(
                "no server {server:?} in backend {backend:?}"
            )));
        };
        let mut change = (running.change(index).cloned()).unwrap_or_else(|| Override {
            state: AdminState::Ready,
            weight: None,
            entry: running.entry(index).clone(),
        });
        edit(&mut change);
        let done = format!(
            "server {backend}/{server} set to {}, weight {}",
            change.state,
            change.ready_weight()
        );
        let rebuilt = Arc::new(running.changed(index, Some(change)));
        let mut backends = self.backends.clone();
        backends[at] = rebuilt;
        self.frontends.replace_backends(&backends);
        // The same servers: this marks maintenance and drains on them for the queue.
        BackendState::take_over(&self.backends, &backends);
        self.backends = backends;
        self.publish();
        Ok(done)
    }

    async fn enable_frontend(&mut self, name: &str, enabled: bool) -> Result<String, Refusal> {
        let word = if enabled { "enabled" } else { "disabled" };
        match self.frontends.set_enabled(name, enabled).await {
            Ok(Some(_)) => {
                self.publish();
                Ok(format!("frontend {name} {word}"))
            }
            Ok(None) => Err(Refusal::not_found(format!("no frontend {name:?}"))),
            Err(error) => Err(Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{error:#}"),
            )),
        }
    }

    async fn vrrp_resign(&mut self, instance: &str) -> Result<String, Refusal> {
        self.vrrp_command(instance, Event::Resign).await
    }

    async fn vrrp_maintenance(&mut self, instance: &str, on: bool) -> Result<String, Refusal> {
        self.vrrp_command(instance, Event::Maintenance(on)).await
    }

    async fn vrrp_command(&mut self, instance: &str, event: Event) -> Result<String, Refusal> {
        let unknown = || Refusal::not_found(format!("no VRRP instance {instance:?}"));
        let engine = self.engine.as_ref().ok_or_else(unknown)?;
        let answer = engine.command(instance, event).ok_or_else(unknown)?;
        answer.await.map_err(|_| {
            Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("VRRP instance {instance} is stopping"),
            )
        })
    }
}

/// Logs each runtime change that `current` (serving now in place of `previous`, after a
/// reload or a DNS change) dropped because the file changed its server.
pub(super) fn log_dropped(previous: &[Arc<BackendState>], current: &[Arc<BackendState>]) {
    for backend in current {
        let Some(old) = previous
            .iter()
            .find(|old| old.config.name == backend.config.name)
        else {
            continue;
        };
        for index in 0..old.servers.len() {
            let name = &old.servers[index].name;
            let Some(now) = backend.server_index(name) else {
                continue;
            };
            if old.change(index).is_some() && backend.change(now).is_none() {
                tracing::info!(
                    "runtime change dropped: server {}/{name} is back to {}, weight {}: the file changed it",
                    backend.config.name,
                    AdminState::Ready,
                    backend.entry(now).weight
                );
            }
        }
    }
}
