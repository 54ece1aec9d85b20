//! Whether tracked interfaces are up and running (carrier present), from the kernel's link
//! notifications (RTMGRP_LINK): no polling, and a change is seen as soon as the kernel sends it.

use std::collections::HashMap;
use std::future::Future;
use std::io;

use futures_util::{StreamExt as _, TryStreamExt as _};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::constants::RTMGRP_LINK;
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::sys::{AsyncSocket as _, SocketAddr};
use tokio::sync::watch;

/// Each named interface's state (`true`: up and running) and the future that keeps them
/// current, which the caller runs for as long as it needs them.
pub type LinkStates = HashMap<String, watch::Receiver<bool>>;

/// Starts watching `names`. An interface that does not exist counts as down until it appears.
pub async fn watch_links(
    names: impl IntoIterator<Item = String>,
) -> io::Result<(LinkStates, impl Future<Output = ()>)> {
    let (mut connection, handle, mut notifications) = rtnetlink::new_connection()?;
    // Subscribed before the dump below, so no change can fall between the two.
    connection
        .socket_mut()
        .socket_mut()
        .bind(&SocketAddr::new(0, RTMGRP_LINK))?;
    tokio::spawn(connection);
    let senders: HashMap<String, watch::Sender<bool>> = (names.into_iter())
        .map(|name| (name, watch::Sender::new(false)))
        .collect();
    let mut links = handle.link().get().execute();
    while let Some(link) = links.try_next().await.map_err(io::Error::other)? {
        update(&senders, &link, true);
    }
    for (name, state) in &senders {
        if !*state.borrow() {
            tracing::warn!(interface = %name, "tracked interface is down or missing: its track items fail");
        }
    }
    let states = (senders.iter())
        .map(|(name, sender)| (name.clone(), sender.subscribe()))
        .collect();
    let monitor = async move {
        while let Some((message, _)) = notifications.next().await {
            match message.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
                    update(&senders, &link, true);
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(link)) => {
                    update(&senders, &link, false);
                }
                _ => {}
            }
        }
        tracing::error!("link notifications ended: tracked interfaces are no longer followed");
    };
    Ok((states, monitor))
}

/// Records the state `link` describes, if it is one of the watched interfaces.
fn update(senders: &HashMap<String, watch::Sender<bool>>, link: &LinkMessage, exists: bool) {
    let Some(sender) = name(link).and_then(|name| senders.get(name)) else {
        return;
    };
    let running = exists && is_running(link.header.flags);
    sender.send_if_modified(|state| std::mem::replace(state, running) != running);
}

fn name(link: &LinkMessage) -> Option<&str> {
    link.attributes
        .iter()
        .find_map(|attribute| match attribute {
            LinkAttribute::IfName(name) => Some(name.as_str()),
            _ => None,
        })
}

/// Administratively up and with a carrier (IFF_RUNNING): what `ip link` shows as state UP.
fn is_running(flags: LinkFlags) -> bool {
    flags.contains(LinkFlags::Up | LinkFlags::Running)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_runs_only_when_up_with_a_carrier() {
        assert!(is_running(
            LinkFlags::Up | LinkFlags::Running | LinkFlags::Broadcast
        ));
        assert!(!is_running(LinkFlags::Up | LinkFlags::Broadcast));
        assert!(!is_running(LinkFlags::Running));
    }

    #[test]
    fn updates_only_watched_links_and_only_on_change() {
        let senders = HashMap::from([("eth0".to_string(), watch::Sender::new(false))]);
        let mut state = senders["eth0"].subscribe();
        let link = |name: &str, flags: LinkFlags| {
            let mut link = LinkMessage::default();
            link.header.flags = flags;
            link.attributes.push(LinkAttribute::IfName(name.into()));
            link
        };
        let running = LinkFlags::Up | LinkFlags::Running;
        update(&senders, &link("eth1", running), true);
        assert!(!state.has_changed().unwrap());
        update(&senders, &link("eth0", running), true);
        assert!(*state.borrow_and_update());
        update(&senders, &link("eth0", running), true);
        assert!(!state.has_changed().unwrap());
        update(&senders, &link("eth0", running), false);
        assert!(!*state.borrow_and_update());
    }
}
