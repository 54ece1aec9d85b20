//! Servers named by DNS (`address: name:port`): which addresses each name has now
//! ([`Resolved`]), how a new answer maps onto numbered servers ([`slots`]), when to ask again
//! ([`schedule`]), and the tasks that ask ([`names`]).

pub mod names;
pub mod schedule;
pub mod slots;

use std::collections::HashMap;

use crate::config::DnsName;
pub use slots::Slot;

/// One named server of one backend. The name is part of the key, so a reload that points the
/// server at another name starts from nothing rather than from the old name's addresses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NameKey {
    pub backend: String,
    pub server: String,
    pub name: DnsName,
}

/// The addresses last known for every named server, each at its numbered slot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resolved(HashMap<NameKey, Vec<Slot>>);

impl Resolved {
    /// The slots of `server` (named `name`) in `backend`: empty until its first answer.
    pub fn slots(&self, backend: &str, server: &str, name: &DnsName) -> &[Slot] {
        let key = NameKey {
            backend: backend.to_owned(),
            server: server.to_owned(),
            name: name.clone(),
        };
        self.0.get(&key).map_or(&[], Vec::as_slice)
    }

    /// Records `slots` for `key`; whether they differ from what was known.
    pub fn set(&mut self, key: NameKey, slots: Vec<Slot>) -> bool {
        self.0
            .insert(key, slots.clone())
            .is_none_or(|old| old != slots)
    }

    /// Forgets the names `keep` says are no longer configured.
    pub fn retain(&mut self, mut keep: impl FnMut(&NameKey) -> bool) {
        self.0.retain(|key, _| keep(key));
    }
}
