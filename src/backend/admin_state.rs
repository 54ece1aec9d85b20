//! What an operator set a server to at run time (the runtime API), and the rule for keeping
//! it across a reload: while the file gives the server the same entry it had when the
//! change was made. Pure data.

use std::fmt;
use std::str::FromStr;

use crate::config;

/// A server's administrative state, as HAProxy's `set server ... state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AdminState {
    /// Takes traffic as its health and weight say.
    #[default]
    Ready,
    /// No new sessions, except clients pinned to it (cookie persistence), as HAProxy's drain;
    /// its sessions finish and its health checks go on.
    Drain,
    /// No traffic at all, pinned clients included; health checks stopped. Counted down, so
    /// VRRP trackers and `on_down: shutdown_sessions` see it as down. Back to ready, it starts
    /// as a new server does (up, and down at its first failed check).
    Maint,
}

impl AdminState {
    pub const ALL: [AdminState; 3] = [AdminState::Ready, AdminState::Drain, AdminState::Maint];

    pub fn label(self) -> &'static str {
        match self {
            AdminState::Ready => "ready",
            AdminState::Drain => "drain",
            AdminState::Maint => "maint",
        }
    }
}

impl fmt::Display for AdminState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

impl FromStr for AdminState {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        (AdminState::ALL.into_iter())
            .find(|state| state.label() == text)
            .ok_or_else(|| format!("{text:?} is not a server state: ready, drain or maint"))
    }
}

/// A server's runtime changes.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    pub state: AdminState,
    /// `None`: the file's.
    pub weight: Option<u32>,
    /// The server's entry in the file when the change was made.
    pub entry: config::Server,
}

impl Override {
    /// The weight the selectors balance by: none for a drained or maintained server.
    pub fn weight(&self) -> u32 {
        match self.state {
            AdminState::Ready => self.weight.unwrap_or(self.entry.weight),
            AdminState::Drain | AdminState::Maint => 0,
        }
    }

    /// The weight it takes traffic by once ready: the runtime one, else the file's.
    pub fn ready_weight(&self) -> u32 {
        self.weight.unwrap_or(self.entry.weight)
    }

    /// Whether it changes nothing: then there is no need to keep it.
    pub fn is_noop(&self) -> bool {
        self.state == AdminState::Ready && self.weight.is_none()
    }

    /// This override for a server the file now gives `entry`: kept while the entry is the
    /// one it was made against, dropped once the file changes that server.
    pub fn carried_to(&self, entry: &config::Server) -> Option<Override> {
        (self.entry == *entry).then(|| self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServerAddress;

    fn entry(weight: u32) -> config::Server {
        config::Server {
            name: "a".into(),
            address: ServerAddress::Ip(([127, 0, 0, 1], 81).into()),
            weight,
            tls: None,
            backup: false,
            max_connections: None,
            slow_start: None,
        }
    }

    #[test]
    fn states_read_and_print_as_the_api_names_them() {
        for state in AdminState::ALL {
            assert_eq!(state.label().parse(), Ok(state));
        }
        assert_eq!(
            "up".parse::<AdminState>(),
            Err("\"up\" is not a server state: ready, drain or maint".into())
        );
    }

    #[test]
    fn weight_is_zero_unless_ready_and_the_runtime_one_wins_over_the_file() {
        let mut over = Override {
            state: AdminState::Ready,
            weight: Some(7),
            entry: entry(3),
        };
        assert_eq!((over.weight(), over.ready_weight()), (7, 7));
        over.weight = None;
        assert!(over.is_noop());
        assert_eq!(over.weight(), 3);
        over.state = AdminState::Drain;
        assert_eq!((over.weight(), over.ready_weight()), (0, 3));
        over.state = AdminState::Maint;
        assert_eq!(over.weight(), 0);
        assert!(!over.is_noop());
    }

    #[test]
    fn kept_while_the_file_entry_stays_the_same() {
        let over = Override {
            state: AdminState::Drain,
            weight: None,
            entry: entry(3),
        };
        assert_eq!(over.carried_to(&entry(3)), Some(over.clone()));
        assert_eq!(
            over.carried_to(&entry(4)),
            None,
            "the file changed its weight"
        );
    }
}
