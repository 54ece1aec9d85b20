//! The VRRP engine's contact with the operating system, and nothing else: no protocol logic.
//!
//! - [`netlink`]: one route-netlink connection, shared by the two files below.
//! - [`interface`]: an interface's index and MAC, and the source addresses VRRP sends from.
//! - [`vip`]: virtual addresses with a kernel lifetime, so a VIP dies with the process holding it.
//! - [`socket`]: raw VRRP sockets (IP protocol 112) for IPv4 and IPv6, receive and send.
//! - [`announce`]: gratuitous ARP and unsolicited Neighbor Advertisements for a VIP.
//! - [`virtual_mac`]: the macvlan that carries the VRRP virtual MAC, and the sysctls it needs.
//!
//! Everything here acts in the network namespace of the thread that opens it: tests run it in a
//! thread that has entered a namespace, and the engine in its own thread of the main namespace.

pub mod announce;
pub mod interface;
pub mod netlink;
pub mod socket;
pub mod vip;
pub mod virtual_mac;

pub use announce::{ArpAnnouncer, NeighborAnnouncer};
pub use interface::{Interface, InterfaceError, SourceAddresses};
pub use netlink::Netlink;
pub use socket::{ReceivedVrrp, SocketError, VrrpReceiver, VrrpSender};
pub use vip::{Vip, VipError};
pub use virtual_mac::VirtualMacError;
