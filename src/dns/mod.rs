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

    /// Whether `backend`'s names resolve to other slots here than in `other`.
    pub fn differs_for(&self, other: &Resolved, backend: &str) -> bool {
        let slots = |table: &Resolved, key: &NameKey| table.0.get(key).cloned();
        (self.0.keys().chain(other.0.keys()))
            .filter(|key| key.backend == backend)
            .any(|key| slots(self, key) != slots(other, key))
    }

    /// Forgets the names `keep` says are no longer configured.
    pub fn retain(&mut self, mut keep: impl FnMut(&NameKey) -> bool) {
        self.0.retain(|key, _| keep(key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(backend: &str) -> NameKey {
        NameKey {
            backend: backend.into(),
            server: "app".into(),
            name: DnsName {
                host: "app.internal".into(),
                port: 80,
            },
        }
    }

    fn slot(last: u8) -> Vec<Slot> {
        vec![Slot {
            number: 1,
            address: ([192, 0, 2, last], 80).into(),
        }]
    }

    #[test]
    fn a_backend_differs_only_where_its_own_names_do() {
        let mut applied = Resolved::default();
        applied.set(key("a"), slot(1));
        applied.set(key("b"), slot(1));
        let mut resolved = applied.clone();
        assert!(!resolved.differs_for(&applied, "a"));
        assert!(resolved.set(key("b"), slot(2)), "b's answer changed");
        assert!(!resolved.differs_for(&applied, "a"), "a is as it was");
        assert!(resolved.differs_for(&applied, "b"));
        resolved.set(key("c"), slot(1));
        assert!(resolved.differs_for(&applied, "c"), "a name known only now");
        assert!(applied.differs_for(&resolved, "c"), "either way");
    }
}
