//! The VRRP virtual MAC (RFC 9568 §7.2): 00-00-5E-00-01-{VRID} for IPv4, 00-00-5E-00-02-{VRID}
//! for IPv6, carried by a macvlan on the instance's interface that tandem creates and removes,
//! as keepalived's `use_vmac` does (FRR expects the operator to create it).
//!
//! Adverts and announcements leave through the macvlan, so they carry the virtual MAC and the
//! switch learns where it lives; the VIPs sit on the macvlan, so the kernel answers ARP and
//! Neighbor Solicitations for them with the virtual MAC. Clients then keep one MAC for the VIP
//! whichever node holds it, and a failover only has to move the switch's entry. The macvlan is
//! up only while its node holds the VIPs (FRR's vrrpd keeps its own protodown likewise), so a
//! Backup's never sends from the virtual MAC and never draws the switch's entry to itself.

use std::io;

use futures_util::TryStreamExt;
use netlink_packet_route::link::{
    AfSpecInet6, AfSpecUnspec, In6AddrGenMode, InfoKind, LinkAttribute, LinkInfo, MacVlanMode,
};
use pnet_base::MacAddr;
use rtnetlink::LinkMacVlan;

use super::interface::Interface;
use super::netlink::{kernel_errno, Netlink};

/// The virtual router MAC of `vrid` for the VIPs' family (RFC 9568 §7.2).
pub fn virtual_mac(vrid: u8, ipv6: bool) -> MacAddr {
    MacAddr::new(0x00, 0x00, 0x5e, 0x00, if ipv6 { 0x02 } else { 0x01 }, vrid)
}

/// The macvlan's name: `vrrp4.<VRID>` or `vrrp6.<VRID>` (at most 9 of the 15 bytes Linux allows).
pub fn macvlan_name(vrid: u8, ipv6: bool) -> String {
    format!("vrrp{}.{vrid}", if ipv6 { 6 } else { 4 })
}

#[derive(Debug, thiserror::Error)]
pub enum VirtualMacError {
    #[error(
        "{name} exists but is not the macvlan of {parent} with MAC {mac}: \
         rename or remove it (`ip link del {name}`), or turn virtual_mac off"
    )]
    NameTaken {
        name: String,
        parent: String,
        mac: MacAddr,
    },
    #[error("{action} the virtual MAC interface {name} failed: {source}")]
    Netlink {
        action: &'static str,
        name: String,
        source: rtnetlink::Error,
    },
    #[error("setting {path} to {value} failed: {source}")]
    Sysctl {
        path: String,
        value: u8,
        source: io::Error,
    },
}

impl Netlink {
    /// Creates (or, after a crash left it behind, takes back) the macvlan carrying `vrid`'s
    /// virtual MAC on `parent`, down until [`Netlink::set_virtual_mac_up`], and sets the
    /// sysctls that keep ARP answers for the VIPs on it. Returns the macvlan.
    pub async fn open_virtual_mac(
        &self,
        parent: &Interface,
        vrid: u8,
        family_is_v6: bool,
    ) -> Result<Interface, VirtualMacError> {
        let name = macvlan_name(vrid, family_is_v6);
        let mac = virtual_mac(vrid, family_is_v6);
        let fail = |action| {
            let name = name.clone();
            move |source| VirtualMacError::Netlink {
                action,
                name,
                source,
            }
        };
        // No IPv6 address of its own: a link-local here would answer Neighbor Solicitations
        // from the virtual MAC on a Backup too, and draw the switch's entry to it. IPv6 adverts
        // leave with the parent's link-local instead (see `VrrpSender::open_v6_through`).
        let no_link_local =
            LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(vec![AfSpecInet6::AddrGenMode(
                In6AddrGenMode::None,
            )])]);
        // Bridge mode: in private mode the kernel would keep multicast that carries our MAC as
        // its source (the peer's adverts) from the parent, where tandem listens.
        let message = LinkMacVlan::new(&name, parent.index, MacVlanMode::Bridge)
            .address(mac.octets().to_vec())
            .build();
        match self.handle().link().add(message).execute().await {
            Ok(()) => {}
            Err(error) if kernel_errno(&error) == Some(libc::EEXIST) => {
                self.take_back(parent, &name, mac).await?;
            }
            Err(error) => return Err(fail("creating")(error)),
        }
        let macvlan = self
            .interface(&name)
            .await
            .map_err(|_| VirtualMacError::NameTaken {
                name: name.clone(),
                parent: parent.name.clone(),
                mac,
            })?;
        // Down (one left up by a killed master may still hold VIPs) until this node holds them.
        self.set_virtual_mac_up(&macvlan, false).await?;
        // Only now: the kernel takes no IPv6 setting for a link it has not registered yet, and
        // one that has been up has its link-local already.
        let message = rtnetlink::LinkUnspec::new_with_index(macvlan.index)
            .append_extra_attribute(no_link_local)
            .build();
        (self.handle().link().set(message).execute().await)
            .map_err(fail("turning off IPv6 addresses of"))?;
        // The macvlan answers ARP only for the VIPs on it, never for the node's own addresses
        // (arp_ignore 1), and asks (for a unicast peer) in a VIP's name only (arp_announce 2),
        // so nobody learns the virtual MAC for the node's own address; it receives what the
        // routes send back through the parent (rp_filter 0).
        raise_sysctl(&name, "arp_ignore", 1)?;
        raise_sysctl(&name, "arp_announce", 2)?;
        set_sysctl(&name, "rp_filter", 0)?;
        if !family_is_v6 {
            // The parent must not answer ARP for the VIPs with its own MAC (arp_ignore 1), nor
            // name a VIP as the sender of its own ARP requests (arp_announce 2), which would
            // teach clients its MAC for the VIP.
            raise_sysctl(&parent.name, "arp_ignore", 1)?;
            raise_sysctl(&parent.name, "arp_announce", 2)?;
        }
        Ok(macvlan)
    }

    /// A macvlan of that name left by an earlier run is ours again if it has our MAC and
    /// parent; anything else is someone else's.
    async fn take_back(
        &self,
        parent: &Interface,
        name: &str,
        mac: MacAddr,
    ) -> Result<(), VirtualMacError> {
        let taken = || VirtualMacError::NameTaken {
            name: name.into(),
            parent: parent.name.clone(),
            mac,
        };
        let link = self
            .handle()
            .link()
            .get()
            .match_name(name)
            .execute()
            .try_next()
            .await
            .map_err(|source| VirtualMacError::Netlink {
                action: "looking up",
                name: name.into(),
                source,
            })?
            .ok_or_else(taken)?;
        let has = |wanted: &dyn Fn(&LinkAttribute) -> bool| link.attributes.iter().any(wanted);
        let ours = has(
            &|attribute| matches!(attribute, LinkAttribute::Address(bytes) if bytes[..] == mac.octets()),
        ) && has(
            &|attribute| matches!(attribute, LinkAttribute::Link(index) if *index == parent.index),
        ) && has(&|attribute| {
            matches!(attribute, LinkAttribute::LinkInfo(infos)
                    if infos.contains(&LinkInfo::Kind(InfoKind::MacVlan)))
        });
        if ours {
            Ok(())
        } else {
            Err(taken())
        }
    }

    /// Sets the macvlan up (it carries the VIPs) or down (it sends and receives nothing).
    pub async fn set_virtual_mac_up(
        &self,
        macvlan: &Interface,
        up: bool,
    ) -> Result<(), VirtualMacError> {
        let message = rtnetlink::LinkUnspec::new_with_index(macvlan.index);
        let message = if up { message.up() } else { message.down() }.build();
        (self.handle().link().set(message).execute().await).map_err(|source| {
            VirtualMacError::Netlink {
                action: if up { "setting up" } else { "setting down" },
                name: macvlan.name.clone(),
                source,
            }
        })
    }

    /// Removes the macvlan, and with it the VIPs still on it. One already gone is not an error.
    pub async fn remove_virtual_mac(&self, macvlan: &Interface) -> Result<(), VirtualMacError> {
        match self.handle().link().del(macvlan.index).execute().await {
            Err(source) if kernel_errno(&source) != Some(libc::ENODEV) => {
                Err(VirtualMacError::Netlink {
                    action: "removing",
                    name: macvlan.name.clone(),
                    source,
                })
            }
            _ => Ok(()),
        }
    }
}

fn sysctl_path(interface: &str, key: &str) -> String {
    format!("/proc/sys/net/ipv4/conf/{interface}/{key}")
}

/// Sets an IPv4 per-interface sysctl to at least `value`: an operator's stricter setting stays.
fn raise_sysctl(interface: &str, key: &str, value: u8) -> Result<(), VirtualMacError> {
    let path = sysctl_path(interface, key);
    let current = std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| text.trim().parse::<u8>().ok());
    if current.is_some_and(|current| current >= value) {
        return Ok(());
    }
    set_sysctl(interface, key, value)
}

fn set_sysctl(interface: &str, key: &str, value: u8) -> Result<(), VirtualMacError> {
    let path = sysctl_path(interface, key);
    std::fs::write(&path, value.to_string()).map_err(|source| VirtualMacError::Sysctl {
        path,
        value,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `config::validate::announce` spells these names too, to keep announce off them.
    #[test]
    fn the_macvlan_is_named_for_the_family_and_the_vrid() {
        assert_eq!(macvlan_name(33, false), "vrrp4.33");
        assert_eq!(macvlan_name(33, true), "vrrp6.33");
    }

    #[test]
    fn the_virtual_mac_names_the_family_and_the_vrid() {
        assert_eq!(virtual_mac(33, false).to_string(), "00:00:5e:00:01:21");
        assert_eq!(virtual_mac(255, true).to_string(), "00:00:5e:00:02:ff");
    }

    #[test]
    fn macvlan_names_fit_the_kernel_limit() {
        assert_eq!(macvlan_name(1, false), "vrrp4.1");
        assert!(macvlan_name(255, true).len() <= 15);
    }
}
