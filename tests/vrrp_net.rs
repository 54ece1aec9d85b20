//! The VRRP engine's OS-facing pieces against a real kernel: VIP lifetimes over netlink, raw
//! VRRP sockets, gratuitous ARP and unsolicited NA, between hosts in network namespaces.
//! Needs root; skipped with a message otherwise, and failed under CI=true.

mod support;

use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use support::lab::{join_all, run_in, spawn_in, wait_until, Dad, Lab};
use tandem::vrrp::net::socket::{VRRP_GROUP_V4, VRRP_GROUP_V6};
use tandem::vrrp::net::{
    ArpAnnouncer, NeighborAnnouncer, Netlink, ReceivedVrrp, Vip, VipError, VrrpReceiver, VrrpSender,
};

/// Bytes the IO layer carries without reading them (a VRRPv3 advert, as it happens).
const ADVERT: &[u8] = &[0x31, 7, 100, 1, 0, 100, 0, 0, 198, 51, 100, 10];
const REPLY: &[u8] = &[0x31, 7, 90, 1, 0, 100, 0, 0, 198, 51, 100, 10];
/// A MAC from the documentation range (RFC 7042), standing for the old master's.
const OLD_MASTER_MAC: &str = "00:00:5e:00:53:01";
const PACKET_WAIT: Duration = Duration::from_secs(5);

fn vip(text: &str) -> Vip {
    let (address, prefix_len) = text.split_once('/').expect("address/prefix");
    Vip {
        address: address.parse().expect("address"),
        prefix_len: prefix_len.parse().expect("prefix length"),
    }
}

async fn next_packet(receiver: &mut VrrpReceiver) -> ReceivedVrrp {
    tokio::time::timeout(PACKET_WAIT, receiver.recv())
        .await
        .expect("a VRRP packet within 5 s")
        .expect("receiving a VRRP packet")
}

/// The line of `ip -o addr` output that shows `vip`, if the address is there.
fn vip_line(lab: &Lab, host: usize, vip: Vip) -> Option<String> {
    let wanted = format!(" {vip} ");
    lab.addresses(&lab.hosts[host])
        .lines()
        .find(|line| line.contains(&wanted))
        .map(str::to_owned)
}

#[test]
fn ipv4_vip_disappears_by_itself_when_not_refreshed() {
    let Some(lab) = Lab::new(1, Dad::Off) else {
        return;
    };
    let vip = vip("198.51.100.10/24");
    run_in(&lab.hosts[0].namespace, move || async move {
        let netlink = Netlink::connect().unwrap();
        let eth0 = netlink.interface("eth0").await.unwrap();
        netlink
            .add_vip(&eth0, vip, Duration::from_secs(2))
            .await
            .unwrap();
        assert!(netlink.has_vip(&eth0, vip).await.unwrap());
        let again = netlink
            .add_vip(&eth0, vip, Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(matches!(again, VipError::AlreadyPresent { .. }), "{again}");
        let message = again.to_string();
        assert!(
            message.contains("198.51.100.10/24") && message.contains("eth0"),
            "{message}"
        );
    });
    // The adding thread and its netlink connection are gone, as after `kill -9`.
    let added = Instant::now();
    let line = vip_line(&lab, 0, vip).expect("VIP present after adding");
    assert!(
        line.contains("valid_lft") && !line.contains("forever"),
        "{line}"
    );
    wait_until(Duration::from_secs(5), "the VIP expiring", || {
        vip_line(&lab, 0, vip).is_none()
    });
    let lived = added.elapsed();
    assert!(
        lived > Duration::from_millis(1500) && lived < Duration::from_millis(4500),
        "a 2 s VIP lived {lived:?}"
    );
}

#[test]
fn refreshed_vip_stays_and_remove_removes_it() {
    let Some(lab) = Lab::new(1, Dad::Off) else {
        return;
    };
    let vip = vip("198.51.100.10/24");
    run_in(&lab.hosts[0].namespace, move || async move {
        let netlink = Netlink::connect().unwrap();
        let eth0 = netlink.interface("eth0").await.unwrap();
        let lifetime = Duration::from_secs(2);
        netlink.add_vip(&eth0, vip, lifetime).await.unwrap();
        let added = Instant::now();
        let mut refresh = tokio::time::interval(Duration::from_millis(500));
        while added.elapsed() < Duration::from_millis(4500) {
            refresh.tick().await;
            netlink.refresh_vip(&eth0, vip, lifetime).await.unwrap();
            assert!(
                netlink.has_vip(&eth0, vip).await.unwrap(),
                "refreshed VIP gone after {:?}",
                added.elapsed()
            );
        }
        netlink.remove_vip(&eth0, vip).await.unwrap();
        assert!(!netlink.has_vip(&eth0, vip).await.unwrap());
        // Removing what is gone is fine: the VIP may have expired first.
        netlink.remove_vip(&eth0, vip).await.unwrap();
        // A refresh puts back a VIP someone removed.
        netlink.refresh_vip(&eth0, vip, lifetime).await.unwrap();
        assert!(netlink.has_vip(&eth0, vip).await.unwrap());
        netlink.remove_vip(&eth0, vip).await.unwrap();
    });
    assert_eq!(vip_line(&lab, 0, vip), None);
}

#[test]
fn ipv6_vip_is_usable_at_once_and_expires() {
    let Some(lab) = Lab::new(1, Dad::On) else {
        return;
    };
    let vip = vip("2001:db8::10/64");
    run_in(&lab.hosts[0].namespace, move || async move {
        let netlink = Netlink::connect().unwrap();
        let eth0 = netlink.interface("eth0").await.unwrap();
        netlink
            .add_vip(&eth0, vip, Duration::from_secs(2))
            .await
            .unwrap();
        // Binding fails while an address is tentative: this shows DAD was skipped.
        std::net::UdpSocket::bind((vip.address, 0)).expect("the IPv6 VIP is usable at once");
    });
    let added = Instant::now();
    let line = vip_line(&lab, 0, vip).expect("VIP present after adding");
    assert!(
        line.contains("nodad") && !line.contains("tentative"),
        "{line}"
    );
    assert!(!line.contains("forever"), "{line}");
    wait_until(Duration::from_secs(5), "the IPv6 VIP expiring", || {
        vip_line(&lab, 0, vip).is_none()
    });
    assert!(added.elapsed() < Duration::from_millis(4500));
}

#[test]
fn ipv4_adverts_reach_the_peer_with_ttl_255_and_not_the_sender() {
    let Some(lab) = Lab::new(2, Dad::Off) else {
        return;
    };
    let (a_ip, b_ip) = (lab.hosts[0].ipv4, lab.hosts[1].ipv4);
    let (ready, peer_ready) = tokio::sync::oneshot::channel();
    let b = spawn_in(&lab.hosts[1].namespace, move || async move {
        let netlink = Netlink::connect().unwrap();
        let eth0 = netlink.interface("eth0").await.unwrap();
        let source = netlink.source_addresses(&eth0).await.unwrap();
        assert_eq!(source.ipv4, Some(b_ip));
        let mut receiver = VrrpReceiver::open_v4(&eth0).unwrap();
        let sender = VrrpSender::open_v4(&eth0, b_ip).unwrap();
        ready.send(()).unwrap();
        let advert = next_packet(&mut receiver).await;
        let expected = ReceivedVrrp {
            source: a_ip.into(),
            destination: VRRP_GROUP_V4.into(),
            ttl: 255,
            payload: ADVERT.to_vec(),
        };
        assert_eq!(advert, expected);
        sender.send_to(a_ip.into(), REPLY).unwrap();
    });
    let a = spawn_in(&lab.hosts[0].namespace, move || async move {
        let netlink = Netlink::connect().unwrap();
        let missing = netlink.interface("nope0").await.unwrap_err();
        assert!(missing.to_string().contains("\"nope0\""), "{missing}");
        let eth0 = netlink.interface("eth0").await.unwrap();
        // VIPs never become the advert source: one in the node's subnet is a secondary, one in
        // another subnet comes after the node's own address.
        for held in [vip("198.51.100.10/24"), vip("203.0.113.10/24")] {
            let lifetime = Duration::from_secs(30);
            netlink.add_vip(&eth0, held, lifetime).await.unwrap();
        }
        let source = netlink.source_addresses(&eth0).await.unwrap();
        assert_eq!(source.ipv4, Some(a_ip));
        let mut receiver = VrrpReceiver::open_v4(&eth0).unwrap();
        let sender = VrrpSender::open_v4(&eth0, a_ip).unwrap();
        assert_eq!(sender.source(), IpAddr::from(a_ip));
        peer_ready.await.unwrap();
        sender.send_multicast(ADVERT).unwrap();
        // B answers only after it got the advert, so a looped-back copy would come first.
        let first = next_packet(&mut receiver).await;
        let expected = ReceivedVrrp {
            source: b_ip.into(),
            destination: a_ip.into(),
            ttl: 255,
            payload: REPLY.to_vec(),
        };
        assert_eq!(
            first, expected,
            "A got its own advert back, or not B's reply"
        );
    });
    join_all(vec![("a", a), ("b", b)]);
}

#[test]
fn ipv6_adverts_come_from_link_local_with_hop_limit_255_and_not_back() {
    let Some(lab) = Lab::new(2, Dad::Off) else {
        return;
    };
    let (ready, peer_ready) = tokio::sync::oneshot::channel::<Ipv6Addr>();
    let (sent, advert_sent) = tokio::sync::oneshot::channel::<Ipv6Addr>();
    let b = spawn_in(&lab.hosts[1].namespace, move || async move {
        let netlink = Netlink::connect().unwrap();
        let eth0 = netlink.interface("eth0").await.unwrap();
        let link_local = netlink
            .source_addresses(&eth0)
            .await
            .unwrap()
            .ipv6_link_local
            .expect("B has a link-local address");
        let mut receiver = VrrpReceiver::open_v6(&eth0).unwrap();
        let sender = VrrpSender::open_v6(&eth0, link_local).unwrap();
        ready.send(link_local).unwrap();
        let a_link_local = advert_sent.await.unwrap();
        let advert = next_packet(&mut receiver).await;
        let expected = ReceivedVrrp {
            source: a_link_local.into(),
            destination: VRRP_GROUP_V6.into(),
            ttl: 255,
            payload: ADVERT.to_vec(),
        };
        assert_eq!(advert, expected);
        sender.send_to(advert.source, REPLY).unwrap();
    });
    let a = spawn_in(&lab.hosts[0].namespace, move || async move {
        let netlink = Netlink::connect().unwrap();
        let eth0 = netlink.interface("eth0").await.unwrap();
        let link_local = netlink
            .source_addresses(&eth0)
            .await
            .unwrap()
            .ipv6_link_local
            .expect("A has a link-local address");
        let global = "2001:db8::11".parse().unwrap();
        let refused = VrrpSender::open_v6(&eth0, global)
            .err()
            .expect("global source refused");
        assert!(refused.to_string().contains("link-local"), "{refused}");
        let mut receiver = VrrpReceiver::open_v6(&eth0).unwrap();
        let sender = VrrpSender::open_v6(&eth0, link_local).unwrap();
        let b_link_local = peer_ready.await.unwrap();
        sender.send_multicast(ADVERT).unwrap();
        sent.send(link_local).unwrap();
        let first = next_packet(&mut receiver).await;
        let expected = ReceivedVrrp {
            source: b_link_local.into(),
            destination: link_local.into(),
            ttl: 255,
            payload: REPLY.to_vec(),
        };
        assert_eq!(
            first, expected,
            "A got its own advert back, or not B's reply"
        );
    });
    join_all(vec![("a", a), ("b", b)]);
}

#[test]
fn gratuitous_arp_moves_the_peer_to_the_new_mac() {
    let Some(lab) = Lab::new(2, Dad::Off) else {
        return;
    };
    let (a, b) = (&lab.hosts[0], &lab.hosts[1]);
    lab.seed_neighbour(b, "198.51.100.10", OLD_MASTER_MAC);
    let a_mac = lab.mac(a);
    let expected_mac = a_mac.clone();
    run_in(&a.namespace, move || async move {
        let netlink = Netlink::connect().unwrap();
        let eth0 = netlink.interface("eth0").await.unwrap();
        assert_eq!(eth0.mac.to_string(), expected_mac);
        let vip = vip("198.51.100.10/24");
        let lifetime = Duration::from_secs(30);
        netlink.add_vip(&eth0, vip, lifetime).await.unwrap();
        let announcer = ArpAnnouncer::open(&eth0).unwrap();
        announcer
            .announce("198.51.100.10".parse().unwrap())
            .unwrap();
    });
    wait_until(
        Duration::from_secs(3),
        "B learning A's MAC for the VIP",
        || lab.neighbour_mac(b, "198.51.100.10").as_deref() == Some(a_mac.as_str()),
    );
}

#[test]
fn unsolicited_na_moves_the_peer_to_the_new_mac() {
    let Some(lab) = Lab::new(2, Dad::On) else {
        return;
    };
    let (a, b) = (&lab.hosts[0], &lab.hosts[1]);
    lab.seed_neighbour(b, "2001:db8::10", OLD_MASTER_MAC);
    let a_mac = lab.mac(a);
    run_in(&a.namespace, move || async move {
        let netlink = Netlink::connect().unwrap();
        let eth0 = netlink.interface("eth0").await.unwrap();
        let vip = vip("2001:db8::10/64");
        let lifetime = Duration::from_secs(30);
        // The advert's source is the VIP, so it is added first; no DAD means no wait.
        netlink.add_vip(&eth0, vip, lifetime).await.unwrap();
        let announcer = NeighborAnnouncer::open(&eth0).unwrap();
        announcer.announce("2001:db8::10".parse().unwrap()).unwrap();
    });
    wait_until(
        Duration::from_secs(3),
        "B learning A's MAC for the VIP",
        || lab.neighbour_mac(b, "2001:db8::10").as_deref() == Some(a_mac.as_str()),
    );
}
