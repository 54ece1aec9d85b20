//! The kernel side of announcing: a TUN device that exists only while this process holds its
//! file descriptor, the announced addresses on it (FRR redistributes its connected routes), and
//! the `local` routes that keep the node accepting the addresses whether announced or not.
//!
//! The descriptor is the lease: when the process dies, even by `kill -9`, the kernel deletes
//! the device with its addresses, zebra sees them go and bgpd withdraws them. No timer.

use std::fs::{File, OpenOptions};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::OpenOptionsExt as _;

use futures_util::TryStreamExt as _;
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags};
use netlink_packet_route::link::{AfSpecInet6, AfSpecUnspec, In6AddrGenMode, LinkAttribute};
use netlink_packet_route::route::{RouteMessage, RouteProtocol, RouteScope, RouteType};
use rtnetlink::{AddressMessageBuilder, Handle, RouteMessageBuilder};

/// The `local` routes tandem adds carry this protocol number, so removing them never removes
/// one the kernel made for an address the operator put on the node.
const ROUTE_PROTOCOL: u8 = 87;
/// The kernel's `local` routing table.
const LOCAL_TABLE: u32 = 255;

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("announce.interface {name}: cannot open /dev/net/tun (is the tun module loaded, and may tandem use the device?)")]
    Open { name: String, source: io::Error },
    #[error("announce.interface {name}: cannot create the TUN device{hint}")]
    Create {
        name: String,
        source: io::Error,
        hint: &'static str,
    },
    #[error("announce.interface {name}: {action}")]
    Netlink {
        name: String,
        action: &'static str,
        source: rtnetlink::Error,
    },
}

/// A route-netlink connection for the announcer, in the namespace of the thread that opens it.
pub fn connect() -> io::Result<Handle> {
    let (connection, handle, _) = rtnetlink::new_connection()?;
    tokio::spawn(connection);
    Ok(handle)
}

/// The TUN device the announced addresses live on; the kernel deletes it when dropped.
pub struct Device {
    pub name: String,
    index: u32,
    /// Never read or written: holding it is what keeps the device.
    _descriptor: File,
}

impl Device {
    /// Creates the device `name` and sets it up. Fails when another process holds a device of
    /// that name, or an interface that is not such a device has it.
    pub async fn open(handle: &Handle, name: &str) -> Result<Device, DeviceError> {
        let descriptor = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .map_err(|source| DeviceError::Open {
                name: name.to_owned(),
                source,
            })?;
        // SAFETY: ifreq is plain data; all zeroes is a valid value of it.
        let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
        for (slot, byte) in request.ifr_name.iter_mut().zip(name.bytes()) {
            *slot = byte as libc::c_char;
        }
        // Exclusive: a device of that name already there (another tandem's, or a persistent one
        // made with `ip tuntap`, which would outlive this process) is refused, not joined.
        let flags = libc::IFF_TUN | libc::IFF_NO_PI | libc::IFF_TUN_EXCL;
        request.ifr_ifru.ifru_flags = flags as libc::c_short;
        // SAFETY: the descriptor is open, and TUNSETIFF reads and writes one ifreq.
        if unsafe { libc::ioctl(descriptor.as_raw_fd(), libc::TUNSETIFF, &mut request) } < 0 {
            let source = io::Error::last_os_error();
            let hint = match source.raw_os_error() {
                Some(libc::EBUSY) => {
                    " (an interface of that name exists: another tandem's device, one made with \
                     `ip tuntap`, or another interface; name another, or remove it)"
                }
                _ => "",
            };
            return Err(DeviceError::Create {
                name: name.to_owned(),
                source,
                hint,
            });
        }
        let fail = |action| {
            move |source| DeviceError::Netlink {
                name: name.to_owned(),
                action,
                source,
            }
        };
        let mut links = handle.link().get().match_name(name.to_owned()).execute();
        let link = (links.try_next().await)
            .map_err(fail("looking it up"))?
            .expect("the kernel lists an interface it has just created");
        let index = link.header.index;
        // Before it is up, so it never has one: a link-local address would only send router
        // solicitations into a device nobody reads.
        let no_link_local =
            LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(vec![AfSpecInet6::AddrGenMode(
                In6AddrGenMode::None,
            )])]);
        let quiet = rtnetlink::LinkUnspec::new_with_index(index)
            .append_extra_attribute(no_link_local)
            .build();
        match handle.link().set(quiet).execute().await {
            // IPv6 is off in this kernel (ipv6.disable=1): no link-local address either.
            Err(error) if errno(&error) == Some(libc::EAFNOSUPPORT) => {}
            other => other.map_err(fail("turning off its IPv6 link-local address"))?,
        }
        let up = rtnetlink::LinkUnspec::new_with_index(index).up().build();
        (handle.link().set(up).execute().await).map_err(fail("setting it up"))?;
        Ok(Device {
            name: name.to_owned(),
            index,
            _descriptor: descriptor,
        })
    }

    /// Puts `address` on the device, which announces it. Already there is fine.
    pub async fn add(&self, handle: &Handle, address: IpAddr) -> Result<(), rtnetlink::Error> {
        let mut request = (handle.address()).add(self.index, address, host_prefix(address));
        if address.is_ipv6() {
            // Nothing else may claim the address here; a tentative one would not be announced.
            let message = request.message_mut();
            message.header.flags |= AddressHeaderFlags::Nodad;
            (message.attributes).push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        ignore(request.execute().await, libc::EEXIST)
    }

    /// Takes `address` off the device, which withdraws it. Already gone is fine.
    pub async fn remove(&self, handle: &Handle, address: IpAddr) -> Result<(), rtnetlink::Error> {
        let message = match address {
            IpAddr::V4(address) => AddressMessageBuilder::<Ipv4Addr>::new()
                .index(self.index)
                .address(address, 32)
                .build(),
            IpAddr::V6(address) => AddressMessageBuilder::<Ipv6Addr>::new()
                .index(self.index)
                .address(address, 128)
                .build(),
        };
        ignore(
            handle.address().del(message).execute().await,
            libc::EADDRNOTAVAIL,
        )
    }
}

/// Makes the node take connections to `address` (and listeners bind it) without announcing
/// it: a `local` route on `lo`, in the table the kernel consults first and zebra ignores. One
/// already there (from a run that was killed, or the operator's) is fine.
pub async fn accept_locally(handle: &Handle, address: IpAddr) -> Result<(), rtnetlink::Error> {
    let request = handle.route().add(local_route(handle, address).await?);
    ignore(request.execute().await, libc::EEXIST)
}

/// Removes what [`accept_locally`] added; a route of the same address that tandem did not add
/// stays.
pub async fn stop_accepting_locally(
    handle: &Handle,
    address: IpAddr,
) -> Result<(), rtnetlink::Error> {
    let request = handle.route().del(local_route(handle, address).await?);
    ignore(request.execute().await, libc::ESRCH)
}

async fn local_route(handle: &Handle, address: IpAddr) -> Result<RouteMessage, rtnetlink::Error> {
    let mut links = handle.link().get().match_name("lo").execute();
    let loopback = links.try_next().await?.map_or(1, |link| link.header.index);
    let builder = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(address, host_prefix(address))
        .expect("an address and its host prefix agree");
    Ok(builder
        .table_id(LOCAL_TABLE)
        .kind(RouteType::Local)
        .scope(RouteScope::Host)
        .protocol(RouteProtocol::Other(ROUTE_PROTOCOL))
        .output_interface(loopback)
        .build())
}

fn host_prefix(address: IpAddr) -> u8 {
    match address {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// `result`, with the kernel's `done` errno (that the change was already made) taken as
/// success.
fn ignore(result: Result<(), rtnetlink::Error>, done: i32) -> Result<(), rtnetlink::Error> {
    match result {
        Err(error) if errno(&error) == Some(done) => Ok(()),
        other => other,
    }
}

fn errno(error: &rtnetlink::Error) -> Option<i32> {
    match error {
        rtnetlink::Error::NetlinkError(message) => message.to_io().raw_os_error(),
        _ => None,
    }
}
