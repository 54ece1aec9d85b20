//! Virtual addresses with a kernel lifetime.
//!
//! A VIP is added with a valid and preferred lifetime, and its holder refreshes that lifetime
//! about once per advert interval. If the process dies, even by `kill -9`, nothing refreshes it
//! and the kernel removes the address a few seconds later, so a dead node never keeps answering
//! for the VIP next to the new master.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use futures_util::TryStreamExt;
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, CacheInfo,
};
use rtnetlink::AddressMessageBuilder;

use super::interface::Interface;
use super::netlink::{kernel_errno, Netlink};

/// A virtual address with its prefix length, as in `ip addr add 192.0.2.10/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Vip {
    pub address: IpAddr,
    pub prefix_len: u8,
}

impl fmt::Display for Vip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VipError {
    #[error(
        "VIP {vip} is already on {interface}, added by someone else or by an earlier run: \
         refresh it to take it over, or remove it (`ip addr del {vip} dev {interface}`)"
    )]
    AlreadyPresent { interface: String, vip: Vip },
    #[error("{action} VIP {vip} on {interface} failed: {source}")]
    Netlink {
        action: &'static str,
        interface: String,
        vip: Vip,
        source: rtnetlink::Error,
    },
}

impl Netlink {
    /// Adds the VIP, expiring after `lifetime` unless refreshed; fails with
    /// [`VipError::AlreadyPresent`] if the interface has it already.
    ///
    /// IPv6 VIPs skip duplicate address detection (IFA_F_NODAD): a VIP moves between nodes by
    /// design, and a tentative address could not be used for the second DAD takes.
    pub async fn add_vip(
        &self,
        interface: &Interface,
        vip: Vip,
        lifetime: Duration,
    ) -> Result<(), VipError> {
        let mut request = self
            .handle()
            .address()
            .add(interface.index, vip.address, vip.prefix_len);
        set_lifetime_and_flags(request.message_mut(), vip, lifetime);
        request.execute().await.map_err(|source| {
            if kernel_errno(&source) == Some(libc::EEXIST) {
                VipError::AlreadyPresent {
                    interface: interface.name.clone(),
                    vip,
                }
            } else {
                netlink_error("adding", interface, vip, source)
            }
        })
    }

    /// Sets the VIP's remaining lifetime to `lifetime`, adding it if it is missing.
    ///
    /// The kernel replaces the lifetime in place (NLM_F_REPLACE), so a refresh never removes the
    /// address, even for an instant.
    pub async fn refresh_vip(
        &self,
        interface: &Interface,
        vip: Vip,
        lifetime: Duration,
    ) -> Result<(), VipError> {
        let mut request = self
            .handle()
            .address()
            .add(interface.index, vip.address, vip.prefix_len)
            .replace();
        set_lifetime_and_flags(request.message_mut(), vip, lifetime);
        request
            .execute()
            .await
            .map_err(|source| netlink_error("refreshing", interface, vip, source))
    }

    /// Removes the VIP; a VIP that is already gone (expired, or removed by hand) is not an error.
    pub async fn remove_vip(&self, interface: &Interface, vip: Vip) -> Result<(), VipError> {
        let message = address_message(interface, vip);
        match self.handle().address().del(message).execute().await {
            Err(source) if kernel_errno(&source) != Some(libc::EADDRNOTAVAIL) => {
                Err(netlink_error("removing", interface, vip, source))
            }
            _ => Ok(()),
        }
    }

    /// Whether the interface has this exact address and prefix length.
    pub async fn has_vip(&self, interface: &Interface, vip: Vip) -> Result<bool, VipError> {
        let mut request = self
            .handle()
            .address()
            .get()
            .set_link_index_filter(interface.index)
            .set_address_filter(vip.address)
            .set_prefix_length_filter(vip.prefix_len);
        request.message_mut().header.family = family(vip);
        let found = request
            .execute()
            .try_next()
            .await
            .map_err(|source| netlink_error("looking up", interface, vip, source))?;
        Ok(found.is_some())
    }
}

fn address_message(interface: &Interface, vip: Vip) -> AddressMessage {
    match vip.address {
        IpAddr::V4(address) => AddressMessageBuilder::<std::net::Ipv4Addr>::new()
            .index(interface.index)
            .address(address, vip.prefix_len)
            .build(),
        IpAddr::V6(address) => AddressMessageBuilder::<std::net::Ipv6Addr>::new()
            .index(interface.index)
            .address(address, vip.prefix_len)
            .build(),
    }
}

fn family(vip: Vip) -> netlink_packet_route::AddressFamily {
    match vip.address {
        IpAddr::V4(_) => netlink_packet_route::AddressFamily::Inet,
        IpAddr::V6(_) => netlink_packet_route::AddressFamily::Inet6,
    }
}

fn set_lifetime_and_flags(message: &mut AddressMessage, vip: Vip, lifetime: Duration) {
    let seconds = lifetime_seconds(lifetime);
    let mut cache_info = CacheInfo::default();
    cache_info.ifa_valid = seconds;
    cache_info.ifa_preferred = seconds;
    message
        .attributes
        .push(AddressAttribute::CacheInfo(cache_info));
    if vip.address.is_ipv6() {
        message.header.flags |= AddressHeaderFlags::Nodad;
        message
            .attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
}

/// Whole seconds, rounded up and at least one: the kernel counts lifetimes in seconds, and
/// u32::MAX would mean "forever".
fn lifetime_seconds(lifetime: Duration) -> u32 {
    let rounded_up = lifetime
        .as_secs()
        .saturating_add(u64::from(lifetime.subsec_nanos() > 0));
    u32::try_from(rounded_up)
        .unwrap_or(u32::MAX - 1)
        .clamp(1, u32::MAX - 1)
}

fn netlink_error(
    action: &'static str,
    interface: &Interface,
    vip: Vip,
    source: rtnetlink::Error,
) -> VipError {
    VipError::Netlink {
        action,
        interface: interface.name.clone(),
        vip,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_round_up_to_whole_seconds_and_never_mean_forever() {
        assert_eq!(lifetime_seconds(Duration::ZERO), 1);
        assert_eq!(lifetime_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(lifetime_seconds(Duration::from_secs(3)), 3);
        assert_eq!(lifetime_seconds(Duration::MAX), u32::MAX - 1);
    }
}
