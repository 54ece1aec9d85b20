//! Node b of a pair as another VRRP implementation runs it (tandem, Debian's keepalived, or
//! FRR's vrrpd with the virtual MAC), and who holds the VIP whatever b is.

use std::any::Any;

use super::frr::{tandem_holds, Frr, FrrHost};
use super::lab::Lab;
use super::pair::{holds, VIP4};
use super::{Keepalived, Tandem};

/// What runs VRRP on node b.
#[derive(Clone, Copy)]
pub enum Peer {
    Tandem,
    Keepalived,
    Frr,
}

impl Peer {
    /// VRRP keys node a adds beside this peer: FRR expects the virtual MAC.
    pub fn tandem_extra(self) -> &'static str {
        match self {
            Peer::Frr => "      virtual_mac: true\n",
            Peer::Tandem | Peer::Keepalived => "",
        }
    }
}

/// keepalived as b: v3, 100 ms adverts, priority 100, preempting (its default).
pub fn keepalived_config() -> String {
    format!(
        "global_defs {{\n  router_id keepalived-b\n}}\n\
         vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 33\n  \
         priority 100\n  version 3\n  advert_int 0.1\n  virtual_ipaddress {{\n    {VIP4}/24\n  }}\n}}\n"
    )
}

/// Node b, running until dropped.
pub struct PeerNode {
    frr: Option<Frr>,
    _other: Option<Box<dyn Any>>,
}

impl PeerNode {
    /// Starts `peer` at priority 100 on lab host 1 for `vip`; `tandem_config` is b's config
    /// when b is tandem.
    pub fn start(lab: &Lab, peer: Peer, vip: &str, tandem_config: &str) -> PeerNode {
        let host = &lab.hosts[1].namespace;
        let (frr, other): (_, Option<Box<dyn Any>>) = match peer {
            Peer::Tandem => (None, Some(Box::new(Tandem::start_in(host, tandem_config)))),
            Peer::Keepalived => (
                None,
                Some(Box::new(Keepalived::start_in(host, &keepalived_config()))),
            ),
            Peer::Frr => (Some(Frr::start(&FrrHost::prepare(host, vip), 100)), None),
        };
        PeerNode { frr, _other: other }
    }

    /// Whether node a (lab host 0) holds `vip`: beside FRR, on its virtual MAC's macvlan.
    pub fn a_holds(&self, lab: &Lab, vip: &str) -> bool {
        match self.frr {
            Some(_) => tandem_holds(&lab.hosts[0].namespace, vip),
            None => holds(lab, 0, vip),
        }
    }

    /// Whether node b holds `vip`: FRR's copy is always on its macvlan, so its state says.
    pub fn b_holds(&self, lab: &Lab, vip: &str) -> bool {
        (self.frr.as_ref()).map_or_else(|| holds(lab, 1, vip), Frr::is_master)
    }
}
