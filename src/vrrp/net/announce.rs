//! Telling the segment where a VIP now lives: gratuitous ARP for IPv4, unsolicited Neighbor
//! Advertisements for IPv6, both carrying the interface's MAC.
//!
//! Neighbours only update entries they already have (Linux ignores unsolicited ARP and NA for
//! unknown addresses by default), which is exactly the failover case: clients and routers that
//! talked to the old master learn the new one without waiting for their entries to go stale.

use std::io::{self, IoSlice};
use std::mem::size_of;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV6};
use std::os::fd::AsRawFd;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, SockaddrIn6};
use pnet_base::MacAddr;
use pnet_packet::arp::{ArpHardwareTypes, ArpOperations, MutableArpPacket};
use pnet_packet::ethernet::{EtherTypes, MutableEthernetPacket};
use pnet_packet::icmpv6::ndp::{
    MutableNeighborAdvertPacket, NdpOption, NdpOptionTypes, NeighborAdvertFlags,
};
use pnet_packet::icmpv6::Icmpv6Types;
use pnet_packet::MutablePacket;
use socket2::{Domain, Protocol, SockAddr, SockAddrStorage, Socket, Type};

use super::interface::Interface;
use super::socket::{discard_everything_received, SocketError};

/// All-nodes on the link: where unsolicited Neighbor Advertisements go (RFC 4861 §7.2.6).
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// Sends gratuitous ARP on one interface.
pub struct ArpAnnouncer {
    socket: Socket,
    interface: Interface,
    broadcast: SockAddr,
}

impl ArpAnnouncer {
    /// Opens a packet socket for the interface. It is opened with protocol 0, so the kernel
    /// hands it no incoming frames: it only sends.
    pub fn open(interface: &Interface) -> Result<Self, SocketError> {
        let fail = |action: &str| {
            let action = format!("opening the gratuitous ARP socket ({action})");
            move |error| SocketError::new(&interface.name, action, error)
        };
        let socket = Socket::new(Domain::PACKET, Type::RAW, None).map_err(fail("socket"))?;
        socket.set_nonblocking(true).map_err(fail("O_NONBLOCK"))?;
        Ok(ArpAnnouncer {
            socket,
            interface: interface.clone(),
            broadcast: link_layer_broadcast(interface.index),
        })
    }

    /// Broadcasts one gratuitous ARP for the VIP: an ARP request whose sender and target are
    /// both the VIP and whose sender hardware address is the interface's MAC, as keepalived
    /// sends it. Linux neighbours accept a request with sender = target as gratuitous and let
    /// it override their entry.
    pub fn announce(&self, vip: Ipv4Addr) -> Result<(), SocketError> {
        let frame = gratuitous_arp(self.interface.mac, vip);
        let action = || format!("sending gratuitous ARP for {vip}");
        let sent = self
            .socket
            .send_to(&frame, &self.broadcast)
            .map_err(|error| SocketError::new(&self.interface.name, action(), error))?;
        check_whole(sent, frame.len())
            .map_err(|error| SocketError::new(&self.interface.name, action(), error))
    }
}

fn gratuitous_arp(mac: MacAddr, vip: Ipv4Addr) -> Vec<u8> {
    let mut frame = vec![
        0;
        MutableEthernetPacket::minimum_packet_size()
            + MutableArpPacket::minimum_packet_size()
    ];
    let mut ethernet = MutableEthernetPacket::new(&mut frame).expect("frame sized for Ethernet");
    ethernet.set_destination(MacAddr::broadcast());
    ethernet.set_source(mac);
    ethernet.set_ethertype(EtherTypes::Arp);
    let mut arp = MutableArpPacket::new(ethernet.payload_mut()).expect("frame sized for ARP");
    arp.set_hardware_type(ArpHardwareTypes::Ethernet);
    arp.set_protocol_type(EtherTypes::Ipv4);
    arp.set_hw_addr_len(6);
    arp.set_proto_addr_len(4);
    arp.set_operation(ArpOperations::Request);
    arp.set_sender_hw_addr(mac);
    arp.set_sender_proto_addr(vip);
    arp.set_target_hw_addr(MacAddr::broadcast());
    arp.set_target_proto_addr(vip);
    frame
}

/// The link-layer broadcast destination on one interface, for a packet socket's `sendto`.
fn link_layer_broadcast(interface_index: u32) -> SockAddr {
    let mut storage = SockAddrStorage::zeroed();
    // SAFETY: sockaddr_ll is one of the platform's sockaddr types, as view_as requires.
    let link = unsafe { storage.view_as::<libc::sockaddr_ll>() };
    link.sll_family = libc::AF_PACKET as libc::sa_family_t;
    link.sll_protocol = (libc::ETH_P_ARP as u16).to_be();
    link.sll_ifindex = interface_index as libc::c_int;
    link.sll_halen = 6;
    link.sll_addr[..6].copy_from_slice(&MacAddr::broadcast().octets());
    // SAFETY: the storage holds an initialised sockaddr_ll, and the length says so.
    unsafe { SockAddr::new(storage, size_of::<libc::sockaddr_ll>() as libc::socklen_t) }
}

/// Sends unsolicited Neighbor Advertisements on one interface.
pub struct NeighborAnnouncer {
    socket: Socket,
    interface: Interface,
}

impl NeighborAnnouncer {
    /// Opens a raw ICMPv6 socket on the interface: the kernel fills in the ICMPv6 checksum, and
    /// hop limit 255 marks the advert as link-local, as receivers require (RFC 4861 §7.1.2).
    pub fn open(interface: &Interface) -> Result<Self, SocketError> {
        let fail = |action: &str| {
            let action = format!("opening the Neighbor Advertisement socket ({action})");
            move |error| SocketError::new(&interface.name, action, error)
        };
        let socket =
            Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6)).map_err(fail("socket"))?;
        socket
            .bind_device(Some(interface.name.as_bytes()))
            .map_err(fail("SO_BINDTODEVICE"))?;
        socket
            .set_multicast_if_v6(interface.index)
            .map_err(fail("IPV6_MULTICAST_IF"))?;
        socket
            .set_multicast_hops_v6(255)
            .map_err(fail("IPV6_MULTICAST_HOPS"))?;
        socket
            .set_multicast_loop_v6(false)
            .map_err(fail("IPV6_MULTICAST_LOOP"))?;
        socket.set_nonblocking(true).map_err(fail("O_NONBLOCK"))?;
        discard_everything_received(&socket).map_err(fail("SO_ATTACH_FILTER"))?;
        Ok(NeighborAnnouncer {
            socket,
            interface: interface.clone(),
        })
    }

    /// Sends one unsolicited Neighbor Advertisement for the VIP to all nodes: Override set so
    /// neighbours replace the old master's MAC, Solicited clear, the interface's MAC as target
    /// link-layer address. The source is the VIP itself, as keepalived sends it (RFC 4861 §7.2.6
    /// asks for an address of the sending interface), so the VIP must already be on the
    /// interface; VIPs are added without DAD so that it is at once.
    ///
    /// The Router flag is left clear: tandem's VIPs are service addresses, not gateways, and a
    /// node advertising R while not forwarding would mislead hosts (RFC 5798 §6.4.2 sets R
    /// because a VRRP router is a gateway).
    pub fn announce(&self, vip: Ipv6Addr) -> Result<(), SocketError> {
        let advert = unsolicited_neighbor_advert(self.interface.mac, vip);
        let action = || format!("sending an unsolicited Neighbor Advertisement for {vip}");
        let fail = |error| SocketError::new(&self.interface.name, action(), error);
        let source = libc::in6_pktinfo {
            ipi6_addr: libc::in6_addr {
                s6_addr: vip.octets(),
            },
            ipi6_ifindex: self.interface.index,
        };
        let destination =
            SockaddrIn6::from(SocketAddrV6::new(ALL_NODES, 0, 0, self.interface.index));
        let sent = sendmsg(
            self.socket.as_raw_fd(),
            &[IoSlice::new(&advert)],
            &[ControlMessage::Ipv6PacketInfo(&source)],
            MsgFlags::empty(),
            Some(&destination),
        )
        .map_err(|errno| fail(errno.into()))?;
        check_whole(sent, advert.len()).map_err(fail)
    }
}

fn unsolicited_neighbor_advert(mac: MacAddr, vip: Ipv6Addr) -> Vec<u8> {
    let target_link_layer = NdpOption {
        option_type: NdpOptionTypes::TargetLLAddr,
        // In units of 8 bytes: type, length and the 6-byte MAC.
        length: 1,
        data: mac.octets().to_vec(),
    };
    let mut advert = vec![0; MutableNeighborAdvertPacket::minimum_packet_size() + 8];
    let mut packet =
        MutableNeighborAdvertPacket::new(&mut advert).expect("buffer sized for the advert");
    packet.set_icmpv6_type(Icmpv6Types::NeighborAdvert);
    packet.set_flags(NeighborAdvertFlags::Override);
    packet.set_target_addr(vip);
    packet.set_options(&[target_link_layer]);
    advert
}

fn check_whole(sent: usize, len: usize) -> io::Result<()> {
    if sent == len {
        Ok(())
    } else {
        Err(io::Error::other(format!("only {sent} of {len} bytes left")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pnet_packet::arp::ArpPacket;
    use pnet_packet::ethernet::EthernetPacket;
    use pnet_packet::icmpv6::ndp::NeighborAdvertPacket;
    use pnet_packet::Packet;

    const MAC: MacAddr = MacAddr(0x02, 0, 0, 0, 0, 0x0a);

    #[test]
    fn gratuitous_arp_names_the_vip_as_sender_and_target() {
        let vip = Ipv4Addr::new(192, 0, 2, 10);
        let frame = gratuitous_arp(MAC, vip);
        let ethernet = EthernetPacket::new(&frame).unwrap();
        assert_eq!(ethernet.get_destination(), MacAddr::broadcast());
        assert_eq!(ethernet.get_source(), MAC);
        assert_eq!(ethernet.get_ethertype(), EtherTypes::Arp);
        let arp = ArpPacket::new(ethernet.payload()).unwrap();
        assert_eq!(arp.get_operation(), ArpOperations::Request);
        assert_eq!(arp.get_sender_hw_addr(), MAC);
        assert_eq!(arp.get_sender_proto_addr(), vip);
        assert_eq!(arp.get_target_proto_addr(), vip);
    }

    #[test]
    fn neighbor_advert_overrides_unsolicited_with_the_mac() {
        let vip = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
        let bytes = unsolicited_neighbor_advert(MAC, vip);
        assert_eq!(bytes.len(), 32);
        let advert = NeighborAdvertPacket::new(&bytes).unwrap();
        assert_eq!(advert.get_icmpv6_type(), Icmpv6Types::NeighborAdvert);
        assert_eq!(advert.get_flags(), NeighborAdvertFlags::Override);
        assert_eq!(advert.get_target_addr(), vip);
        let options = advert.get_options();
        assert_eq!(options.len(), 1);
        assert_eq!(options[0].option_type, NdpOptionTypes::TargetLLAddr);
        assert_eq!(options[0].data, MAC.octets());
    }
}
