//! Raw VRRP sockets (IP protocol 112), one to receive and one to send per interface and family.
//!
//! Receiving and sending are separate sockets, as in keepalived: the send socket is bound to the
//! node's source address so adverts carry it, and a raw socket bound to an address only receives
//! packets sent to that address, which would miss the multicast adverts.

use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};

use nix::sys::socket::{
    recv, recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrIn6,
};
use pnet_packet::ipv4::Ipv4Packet;
use pnet_packet::Packet;
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockFilter, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::interface::Interface;

/// The IP protocol number of VRRP.
pub const IPPROTO_VRRP: i32 = 112;
/// Where IPv4 adverts go (RFC 5798 §5.1.1.2).
pub const VRRP_GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// Where IPv6 adverts go (RFC 5798 §5.1.2.2).
pub const VRRP_GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);

/// VRRP packets are at most a few kilobytes, but a bigger buffer costs nothing and means no
/// datagram the interface can carry is ever cut short.
const RECEIVE_BUFFER_LEN: usize = 65_535;

/// A VRRP packet as received, with what the protocol checks about the IP layer around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedVrrp {
    pub source: IpAddr,
    pub destination: IpAddr,
    /// The IPv4 TTL or IPv6 hop limit; a genuine advert arrives with 255.
    pub ttl: u8,
    /// The VRRP packet, from its version/type byte on.
    pub payload: Vec<u8>,
}

/// An operation on a VRRP, ARP or ND socket that failed, with where and what to do.
#[derive(Debug)]
pub struct SocketError {
    interface: String,
    action: String,
    source: io::Error,
}

impl SocketError {
    pub(super) fn new(interface: &str, action: impl Into<String>, source: io::Error) -> Self {
        SocketError {
            interface: interface.into(),
            action: action.into(),
            source,
        }
    }
}

impl fmt::Display for SocketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} on interface {}: {}",
            self.action, self.interface, self.source
        )?;
        match self.source.raw_os_error() {
            Some(libc::EPERM | libc::EACCES) => {
                f.write_str(" (raw sockets need root or the CAP_NET_RAW capability)")
            }
            Some(libc::EADDRNOTAVAIL) => f.write_str(
                " (is the address configured on this interface, and past duplicate address detection?)",
            ),
            Some(libc::ENODEV) => f.write_str(" (does the interface still exist?)"),
            Some(libc::ENETDOWN) => f.write_str(" (the interface is down: `ip link set dev ... up`)"),
            _ => Ok(()),
        }
    }
}

impl std::error::Error for SocketError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Receives every VRRP packet arriving on one interface for one IP version: adverts to the VRRP
/// group and unicast adverts to this node.
pub struct VrrpReceiver {
    socket: AsyncFd<Socket>,
    interface: String,
    family: Family,
    buffer: Vec<u8>,
    control: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
enum Family {
    V4,
    V6,
}

impl VrrpReceiver {
    /// Opens an IPv4 receive socket on the interface, joined to 224.0.0.18. Must be called
    /// inside a tokio runtime, whose reactor then watches the socket.
    pub fn open_v4(interface: &Interface) -> Result<Self, SocketError> {
        let fail = |action: &str| {
            let action = format!("opening the IPv4 VRRP receive socket ({action})");
            move |error| SocketError::new(&interface.name, action, error)
        };
        let socket = raw_vrrp_socket(Domain::IPV4, interface).map_err(fail("socket"))?;
        // Only groups joined by this socket: by default Linux also delivers groups that any
        // other socket on the host joined.
        socket
            .set_multicast_all_v4(false)
            .map_err(fail("IP_MULTICAST_ALL"))?;
        socket
            .join_multicast_v4_n(
                &VRRP_GROUP_V4,
                &InterfaceIndexOrAddress::Index(interface.index),
            )
            .map_err(fail("joining 224.0.0.18"))?;
        Self::new(socket, interface, Family::V4)
    }

    /// Opens an IPv6 receive socket on the interface, joined to ff02::12, reporting each packet's
    /// hop limit and destination (IPv6 raw sockets do not deliver the IP header).
    pub fn open_v6(interface: &Interface) -> Result<Self, SocketError> {
        let fail = |action: &str| {
            let action = format!("opening the IPv6 VRRP receive socket ({action})");
            move |error| SocketError::new(&interface.name, action, error)
        };
        let socket = raw_vrrp_socket(Domain::IPV6, interface).map_err(fail("socket"))?;
        socket
            .set_multicast_all_v6(false)
            .map_err(fail("IPV6_MULTICAST_ALL"))?;
        socket
            .join_multicast_v6(&VRRP_GROUP_V6, interface.index)
            .map_err(fail("joining ff02::12"))?;
        socket
            .set_recv_hoplimit_v6(true)
            .map_err(fail("IPV6_RECVHOPLIMIT"))?;
        setsockopt(&socket, sockopt::Ipv6RecvPacketInfo, &true)
            .map_err(|errno| fail("IPV6_RECVPKTINFO")(errno.into()))?;
        Self::new(socket, interface, Family::V6)
    }

    fn new(socket: Socket, interface: &Interface, family: Family) -> Result<Self, SocketError> {
        // SAFETY: the Socket owns its descriptor and the AsyncFd owns the Socket, which is never
        // replaced: the descriptor stays open and the same for the AsyncFd's whole life.
        let socket = unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) }
            .map_err(|error| {
                SocketError::new(
                    &interface.name,
                    "registering the VRRP receive socket with tokio",
                    error.into(),
                )
            })?;
        Ok(VrrpReceiver {
            socket,
            interface: interface.name.clone(),
            family,
            buffer: vec![0; RECEIVE_BUFFER_LEN],
            control: nix::cmsg_space!(libc::in6_pktinfo, libc::c_int),
        })
    }

    /// Waits for the next VRRP packet. Cancel-safe: a packet is only taken when it is returned.
    pub async fn recv(&mut self) -> Result<ReceivedVrrp, SocketError> {
        loop {
            let mut ready = self.socket.readable().await.map_err(|error| {
                SocketError::new(&self.interface, "waiting for a VRRP packet", error)
            })?;
            let fd = ready.get_inner().as_raw_fd();
            let attempt = match self.family {
                Family::V4 => receive_v4(fd, &mut self.buffer),
                Family::V6 => receive_v6(fd, &mut self.buffer, &mut self.control),
            };
            match attempt {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    ready.clear_ready();
                }
                result => {
                    return result.map_err(|error| {
                        SocketError::new(&self.interface, "receiving a VRRP packet", error)
                    })
                }
            }
        }
    }
}

fn receive_v4(fd: RawFd, buffer: &mut [u8]) -> io::Result<ReceivedVrrp> {
    // MSG_TRUNC makes recv return the datagram's real length, so a cut-short one is noticed.
    let len = recv(fd, buffer, MsgFlags::MSG_TRUNC)?;
    if len > buffer.len() {
        return Err(truncated(len));
    }
    // IPv4 raw sockets deliver the IP header; its length varies with options (IHL).
    let header = Ipv4Packet::new(&buffer[..len])
        .filter(|packet| {
            let header_len = usize::from(packet.get_header_length()) * 4;
            header_len >= Ipv4Packet::minimum_packet_size() && header_len <= len
        })
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a {len}-byte packet has no valid IPv4 header"),
            )
        })?;
    Ok(ReceivedVrrp {
        source: header.get_source().into(),
        destination: header.get_destination().into(),
        ttl: header.get_ttl(),
        payload: header.payload().to_vec(),
    })
}

fn receive_v6(fd: RawFd, buffer: &mut [u8], control: &mut [u8]) -> io::Result<ReceivedVrrp> {
    let mut iov = [IoSliceMut::new(buffer)];
    let message = recvmsg::<SockaddrIn6>(fd, &mut iov, Some(control), MsgFlags::MSG_TRUNC)?;
    if message.flags.contains(MsgFlags::MSG_TRUNC) {
        return Err(truncated(message.bytes));
    }
    let len = message.bytes;
    let source = message
        .address
        .map(|address| address.ip())
        .ok_or_else(|| missing("the sender's address"))?;
    let mut destination = None;
    let mut hop_limit = None;
    for control_message in message.cmsgs()? {
        match control_message {
            ControlMessageOwned::Ipv6PacketInfo(info) => {
                destination = Some(Ipv6Addr::from(info.ipi6_addr.s6_addr));
            }
            ControlMessageOwned::Ipv6HopLimit(limit) => hop_limit = u8::try_from(limit).ok(),
            _ => {}
        }
    }
    Ok(ReceivedVrrp {
        source: source.into(),
        destination: destination
            .ok_or_else(|| missing("the destination (IPV6_PKTINFO)"))?
            .into(),
        ttl: hop_limit.ok_or_else(|| missing("the hop limit (IPV6_HOPLIMIT)"))?,
        payload: buffer[..len].to_vec(),
    })
}

fn truncated(len: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("a {len}-byte packet did not fit the {RECEIVE_BUFFER_LEN}-byte buffer"),
    )
}

fn missing(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the kernel did not report {what} of a received packet"),
    )
}

/// Sends VRRP packets from one source address out of one interface, with TTL (hop limit) 255 and
/// without looping them back to this host.
pub struct VrrpSender {
    socket: Socket,
    interface: Interface,
    source: IpAddr,
}

impl VrrpSender {
    /// Opens an IPv4 send socket on the interface with `source` as the adverts' source address
    /// (the interface's primary address, see [`super::Netlink::source_addresses`]).
    pub fn open_v4(interface: &Interface, source: Ipv4Addr) -> Result<Self, SocketError> {
        let fail = |action: &str| {
            let action = format!("opening the IPv4 VRRP send socket from {source} ({action})");
            move |error| SocketError::new(&interface.name, action, error)
        };
        // No IP_MULTICAST_IF: SO_BINDTODEVICE already picks the interface, and naming it by
        // `source` would name the parent when sending through the virtual MAC's macvlan.
        let socket = raw_vrrp_socket(Domain::IPV4, interface).map_err(fail("socket"))?;
        socket
            .set_multicast_ttl_v4(255)
            .map_err(fail("IP_MULTICAST_TTL"))?;
        socket.set_ttl_v4(255).map_err(fail("IP_TTL"))?;
        socket
            .set_multicast_loop_v4(false)
            .map_err(fail("IP_MULTICAST_LOOP"))?;
        socket
            .bind(&SocketAddrV4::new(source, 0).into())
            .map_err(fail("bind"))?;
        discard_everything_received(&socket).map_err(fail("SO_ATTACH_FILTER"))?;
        Ok(VrrpSender {
            socket,
            interface: interface.clone(),
            source: source.into(),
        })
    }

    /// Opens an IPv6 send socket on the interface from its link-local address, which RFC 5798
    /// §5.1.2.1 requires as the source of IPv6 adverts.
    pub fn open_v6(interface: &Interface, link_local: Ipv6Addr) -> Result<Self, SocketError> {
        Self::open_v6_from(interface, link_local, false)
    }

    /// Opens an IPv6 send socket on the virtual MAC's macvlan from its parent's link-local
    /// address, which the macvlan does not have (see [`super::virtual_mac`]): adverts keep the
    /// node's address, and so its place in elections, with or without the virtual MAC.
    pub fn open_v6_through(
        macvlan: &Interface,
        parent_link_local: Ipv6Addr,
    ) -> Result<Self, SocketError> {
        Self::open_v6_from(macvlan, parent_link_local, true)
    }

    fn open_v6_from(
        interface: &Interface,
        link_local: Ipv6Addr,
        elsewhere: bool,
    ) -> Result<Self, SocketError> {
        let fail = |action: &str| {
            let action = format!("opening the IPv6 VRRP send socket from {link_local} ({action})");
            move |error| SocketError::new(&interface.name, action, error)
        };
        if !link_local.is_unicast_link_local() {
            return Err(fail("source check")(io::Error::new(
                io::ErrorKind::InvalidInput,
                "IPv6 adverts must come from the interface's link-local (fe80::/10) address",
            )));
        }
        let socket = raw_vrrp_socket(Domain::IPV6, interface).map_err(fail("socket"))?;
        if elsewhere {
            // Lets bind take an address of another interface (the parent's link-local).
            socket
                .set_freebind_v6(true)
                .map_err(fail("IPV6_FREEBIND"))?;
        }
        socket
            .set_multicast_if_v6(interface.index)
            .map_err(fail("IPV6_MULTICAST_IF"))?;
        socket
            .set_multicast_hops_v6(255)
            .map_err(fail("IPV6_MULTICAST_HOPS"))?;
        socket
            .set_unicast_hops_v6(255)
            .map_err(fail("IPV6_UNICAST_HOPS"))?;
        socket
            .set_multicast_loop_v6(false)
            .map_err(fail("IPV6_MULTICAST_LOOP"))?;
        socket
            .bind(&SocketAddrV6::new(link_local, 0, 0, interface.index).into())
            .map_err(fail("bind"))?;
        discard_everything_received(&socket).map_err(fail("SO_ATTACH_FILTER"))?;
        Ok(VrrpSender {
            socket,
            interface: interface.clone(),
            source: link_local.into(),
        })
    }

    /// The source address every packet carries (the checksum's pseudo-header needs it).
    pub fn source(&self) -> IpAddr {
        self.source
    }

    /// Sends to the VRRP group of this socket's IP version (224.0.0.18 or ff02::12).
    pub fn send_multicast(&self, packet: &[u8]) -> Result<(), SocketError> {
        let group = match self.source {
            IpAddr::V4(_) => IpAddr::V4(VRRP_GROUP_V4),
            IpAddr::V6(_) => IpAddr::V6(VRRP_GROUP_V6),
        };
        self.send_to(group, packet)
    }

    /// Sends to one address: a unicast peer, or the VRRP group.
    pub fn send_to(&self, destination: IpAddr, packet: &[u8]) -> Result<(), SocketError> {
        let address = match destination {
            IpAddr::V4(address) => SocketAddr::V4(SocketAddrV4::new(address, 0)),
            // The scope only matters for link-local and link-scope multicast destinations.
            IpAddr::V6(address) => {
                SocketAddr::V6(SocketAddrV6::new(address, 0, 0, self.interface.index))
            }
        };
        let sent = self
            .socket
            .send_to(packet, &address.into())
            .map_err(|error| {
                SocketError::new(
                    &self.interface.name,
                    format!(
                        "sending a VRRP packet from {} to {destination}",
                        self.source
                    ),
                    error,
                )
            })?;
        if sent != packet.len() {
            return Err(SocketError::new(
                &self.interface.name,
                format!(
                    "sending a VRRP packet from {} to {destination}",
                    self.source
                ),
                io::Error::other(format!("only {sent} of {} bytes left", packet.len())),
            ));
        }
        Ok(())
    }
}

/// A non-blocking raw VRRP socket bound to the interface, so it neither receives from nor sends
/// to any other interface.
fn raw_vrrp_socket(domain: Domain, interface: &Interface) -> io::Result<Socket> {
    let socket = Socket::new(domain, Type::RAW, Some(Protocol::from(IPPROTO_VRRP)))?;
    socket.bind_device(Some(interface.name.as_bytes()))?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// Makes a send-only raw socket drop everything the kernel would queue to it (a raw socket
/// receives every packet of its protocol), so its receive buffer never fills with packets
/// nobody reads. A one-instruction BPF program: "accept 0 bytes".
pub(super) fn discard_everything_received(socket: &Socket) -> io::Result<()> {
    const BPF_RET_CONSTANT: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    socket.attach_filter(&[SockFilter::new(BPF_RET_CONSTANT, 0, 0, 0)])
}
