//! Looking up an interface: the index and MAC that sockets and announcements need, and the
//! addresses VRRP adverts are sent from.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures_util::TryStreamExt;
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::link::LinkAttribute;
use pnet_base::MacAddr;

use super::netlink::{kernel_errno, Netlink};

/// An Ethernet-like interface, as the sockets and announcements of this module address it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub index: u32,
    pub mac: MacAddr,
}

/// The addresses a node sends VRRP adverts from on one interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SourceAddresses {
    /// The first primary IPv4 address in the kernel's order (the earliest added), never a
    /// secondary: a VIP in the node's own subnet is a secondary and so is never picked.
    pub ipv4: Option<Ipv4Addr>,
    /// A link-local address that has passed duplicate address detection (a tentative one cannot
    /// be bound yet), as RFC 5798 requires for IPv6 adverts.
    pub ipv6_link_local: Option<Ipv6Addr>,
}

#[derive(Debug, thiserror::Error)]
pub enum InterfaceError {
    #[error(
        "interface {name:?} does not exist in this network namespace: \
         check the interface name in the VRRP configuration (`ip link` lists them)"
    )]
    NotFound { name: String },
    #[error(
        "interface {name:?} has no Ethernet MAC address: \
         VRRP needs an Ethernet-like interface (physical, veth, bridge, bond, VLAN)"
    )]
    NoMac { name: String },
    #[error("reading interface {name:?} over netlink failed: {source}")]
    Netlink {
        name: String,
        source: rtnetlink::Error,
    },
}

impl Netlink {
    /// Looks up an interface by name.
    pub async fn interface(&self, name: &str) -> Result<Interface, InterfaceError> {
        let link = self
            .handle()
            .link()
            .get()
            .match_name(name)
            .execute()
            .try_next()
            .await
            .map_err(|source| match kernel_errno(&source) {
                Some(libc::ENODEV) => InterfaceError::NotFound { name: name.into() },
                _ => InterfaceError::Netlink {
                    name: name.into(),
                    source,
                },
            })?
            .ok_or_else(|| InterfaceError::NotFound { name: name.into() })?;
        let mac = link
            .attributes
            .iter()
            .find_map(|attribute| match attribute {
                LinkAttribute::Address(bytes) => <[u8; 6]>::try_from(bytes.as_slice()).ok(),
                _ => None,
            })
            .ok_or_else(|| InterfaceError::NoMac { name: name.into() })?;
        Ok(Interface {
            name: name.into(),
            index: link.header.index,
            mac: MacAddr::from(mac),
        })
    }

    /// The interface's current primary IPv4 address and usable link-local IPv6 address.
    pub async fn source_addresses(
        &self,
        interface: &Interface,
    ) -> Result<SourceAddresses, InterfaceError> {
        let messages: Vec<AddressMessage> = self
            .handle()
            .address()
            .get()
            .set_link_index_filter(interface.index)
            .execute()
            .try_collect()
            .await
            .map_err(|source| InterfaceError::Netlink {
                name: interface.name.clone(),
                source,
            })?;
        let mut sources = SourceAddresses::default();
        for message in &messages {
            let flags = address_flags(message);
            match local_address(message) {
                Some(IpAddr::V4(address)) if !flags.contains(AddressFlags::Secondary) => {
                    sources.ipv4.get_or_insert(address);
                }
                Some(IpAddr::V6(address))
                    if address.is_unicast_link_local()
                        && !flags.intersects(AddressFlags::Tentative | AddressFlags::Dadfailed) =>
                {
                    sources.ipv6_link_local.get_or_insert(address);
                }
                _ => {}
            }
        }
        Ok(sources)
    }
}

/// The full flags: IFA_FLAGS when the kernel sends it, else the header's first eight bits.
fn address_flags(message: &AddressMessage) -> AddressFlags {
    message
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            AddressAttribute::Flags(flags) => Some(*flags),
            _ => None,
        })
        .unwrap_or_else(|| AddressFlags::from_bits_retain(message.header.flags.bits().into()))
}

/// The interface's own address: IFA_LOCAL for IPv4 (IFA_ADDRESS is the peer on point-to-point
/// links), IFA_ADDRESS for IPv6, which has no IFA_LOCAL.
fn local_address(message: &AddressMessage) -> Option<IpAddr> {
    let find = |want_local: bool| {
        message
            .attributes
            .iter()
            .find_map(|attribute| match (attribute, want_local) {
                (AddressAttribute::Local(address), true) => Some(*address),
                (AddressAttribute::Address(address), false) => Some(*address),
                _ => None,
            })
    };
    find(true).or_else(|| find(false))
}
