//! IPv6 end to end through a real vrfwd process on af_packet ports, between
//! network namespaces (scripts/topology.sh with DUAL_STACK=1): bytes checked on
//! the wire with scapy, the guest namespace's kernel acting as the VR's slow path.
//! Needs root.
mod common;

use common::client::{error_code, Client};
use common::*;
use std::net::Ipv4Addr;
use vrfwd_proto::{ErrorCode, Stanza};

const SENDER: &str = "2001:db8:1::2";
const RECEIVER: &str = "2001:db8:2::2";
const VR1_ADDRESS: &str = "2001:db8:1::1";

/// Pings `target` over IPv6 `count` times from namespace `n`.
fn ping6(t: &Topology, n: &str, target: &str, count: u32) {
    let count = count.to_string();
    t.exec(
        n,
        &["ping", "-6", "-c", &count, "-i", "0.2", "-W", "2", target],
    );
}

#[test]
fn dual_stack_forwarding_neighbour_discovery_and_punts() {
    let mut t = Topology::up_with("v6", 1, &[("DUAL_STACK", "1"), ("LAN1_MTU", "1400")]);
    t.start();

    // Warm up: the sender resolves the VR's address (vrfwd answers beside the
    // guest), the guest forwards the first packets and resolves the receiver,
    // whose advertisement vrfwd snoops on the uplink.
    ping6(&t, "s", RECEIVER, 3);
    let vr = t.vr(1);
    assert!(
        vr.ndp_answered > 0,
        "vrfwd answered the sender's solicitation"
    );
    // The receiver's link-local address, behind the static 2001:db8:9::/48.
    ping6(&t, "g", "fe80::ff:fe00:bb02%g1", 2);

    // Fast path, on bytes: hop limit − 1, egress MACs, payload; the guest sees none.
    let at_receiver = t.sniff("r", "eth0", 4, "udp");
    let at_guest = t.sniff("g", "g0", 4, "udp");
    let forwarded_before = t.vr(1).forwarded;
    t.send("s", "eth0", VR1_ETH0, RECEIVER, 50, 64);
    let got = at_receiver.packets();
    let guest = at_guest.packets();
    assert_eq!(got.len(), 50, "all 50 forwarded: {got:?}");
    for (i, p) in got.iter().enumerate() {
        assert_eq!(p["ttl"], 63);
        assert_eq!(p["src"], SENDER);
        assert_eq!(p["src_mac"], VR1_ETH1);
        assert_eq!(p["dst_mac"], RECEIVER_MAC);
        assert_eq!(p["tag"], format!("vrfwd-test:{i}"));
    }
    assert!(
        guest.is_empty(),
        "forwarded packets must not pass the guest: {guest:?}"
    );
    assert!(t.vr(1).forwarded - forwarded_before >= 50);

    // The static route through the receiver's link-local address.
    let at_receiver = t.sniff("r", "eth0", 3, "udp");
    t.send("s", "eth0", VR1_ETH0, "2001:db8:9::1", 5, 64);
    let got = at_receiver.packets();
    assert_eq!(got.len(), 5, "{got:?}");
    assert!(got
        .iter()
        .all(|p| p["dst"] == "2001:db8:9::1" && p["ttl"] == 63));

    // Hop limit 1: punted, and the guest's kernel sends ICMPv6 time exceeded.
    let at_sender = t.sniff("s", "eth0", 3, "icmp6");
    let expired_before = punted(&t.vr(1), "ttl_expired");
    t.send("s", "eth0", VR1_ETH0, RECEIVER, 3, 1);
    let icmp = at_sender.packets();
    assert_eq!(punted(&t.vr(1), "ttl_expired") - expired_before, 3);
    let time_exceeded = icmp
        .iter()
        .filter(|p| p["icmp_type"] == 3 && p["src"] == VR1_ADDRESS)
        .count();
    assert_eq!(time_exceeded, 3, "{icmp:?}");

    // To the VR itself and to a prefix it has no route for: the guest's.
    let to_router = punted(&t.vr(1), "to_router");
    let no_route = punted(&t.vr(1), "no_route");
    t.send("s", "eth0", VR1_ETH0, VR1_ADDRESS, 2, 64);
    t.send("s", "eth0", VR1_ETH0, "2001:db8:77::1", 2, 64);
    assert_eq!(punted(&t.vr(1), "to_router") - to_router, 2);
    assert_eq!(punted(&t.vr(1), "no_route") - no_route, 2);
    // Link-local traffic to the VR is its guest's (which answers the ping).
    let link_local = punted(&t.vr(1), "ipv6_link_local");
    let vr_link_local = "fe80::ff:fe00:101%eth0";
    ping6(&t, "s", vr_link_local, 2);
    assert!(punted(&t.vr(1), "ipv6_link_local") - link_local >= 2);

    // Larger than the egress MTU (lan1: 1400), either family: punted, and the
    // guest's kernel answers packet too big (IPv6) or fragmentation needed
    // (IPv4, don't fragment set); up to the MTU the fast path forwards.
    // (The receiver's IPv4 neighbour first: an unresolved packet is punted as such.)
    t.exec(
        "s",
        &["ping", "-c", "2", "-i", "0.2", "-W", "2", "10.0.2.2"],
    );
    let at_sender = t.sniff("s", "eth0", 3, "icmp6 or icmp");
    let mtu_before = punted(&t.vr(1), "mtu");
    t.send_sized("s", "eth0", VR1_ETH0, RECEIVER, 2, 1401);
    t.send_sized("s", "eth0", VR1_ETH0, "10.0.2.2", 2, 1401);
    let errors = at_sender.packets();
    assert_eq!(punted(&t.vr(1), "mtu") - mtu_before, 4);
    let too_big = errors
        .iter()
        .filter(|p| p["icmp_type"] == 2 && p["src"] == VR1_ADDRESS);
    assert_eq!(too_big.count(), 2, "{errors:?}");
    let frag_needed = errors
        .iter()
        .filter(|p| p["icmp_type"] == 3 && p["src"] == "10.0.1.1");
    assert_eq!(frag_needed.count(), 2, "{errors:?}");
    let at_receiver = t.sniff("r", "eth0", 3, "udp");
    t.send_sized("s", "eth0", VR1_ETH0, RECEIVER, 2, 1400);
    assert_eq!(at_receiver.packets().len(), 2, "1400 bytes fit");

    // IPv4 is unchanged beside it.
    let at_receiver = t.sniff("r", "eth0", 3, "udp");
    t.send("s", "eth0", VR1_ETH0, "10.0.2.2", 5, 64);
    assert_eq!(at_receiver.packets().len(), 5);

    let routes = t.ctl(&["routes", "1"]);
    assert!(
        routes.contains("2001:db8:9::/48 via fe80::ff:fe00:bb02 dev eth1"),
        "{routes}"
    );
    assert!(routes.contains("2001:db8:1::/64 dev eth0"), "{routes}");

    guest_session_routes_and_neighbours(&t);
}

/// VR 1's interfaces as its guest declares them, both families.
const RED_IFACES6: &str = r#"<interfaces seq="SEQ"><interface name="g0" mac="02:00:00:00:01:01" address="10.0.1.1/24 2001:db8:1::1/64"/><interface name="g1" mac="02:00:00:00:02:01" address="10.0.2.1/24 2001:db8:2::1/64"/></interfaces>"#;

/// A guest's session (protocol version 4) installs IPv6 routes and neighbours
/// as it does IPv4's, and its sync sweeps them; a version-3 session may not
/// send them.
fn guest_session_routes_and_neighbours(t: &Topology) {
    let port = 7700;
    let mut c = Client::session_v2(
        port,
        Ipv4Addr::LOCALHOST,
        1,
        "red-secret-for-tests",
        RED_IFACES6,
    );
    c.ok(r#"<sync-begin seq="SEQ"/>"#);
    c.ok(r#"<routes seq="SEQ"><add prefix="2001:db8:30::/48" via="fe80::ff:fe00:bb02" interface="g1"/><add prefix="10.30.0.0/16" via="10.0.2.2" interface="g1"/></routes>"#);
    c.ok(r#"<neighbors seq="SEQ"><add address="fe80::ff:fe00:bb02" mac="02:00:00:00:bb:02" interface="g1"/></neighbors>"#);
    c.ok(r#"<sync-end seq="SEQ"/>"#);
    let routes = t.ctl(&["routes", "1"]);
    assert!(
        routes.contains("2001:db8:30::/48 via fe80::ff:fe00:bb02 dev eth1"),
        "{routes}"
    );
    assert!(
        t.ctl(&["neighbors", "1"])
            .contains("fe80::ff:fe00:bb02 dev eth1"),
        "{}",
        t.ctl(&["neighbors", "1"])
    );
    let at_receiver = t.sniff("r", "eth0", 3, "udp");
    t.send("s", "eth0", VR1_ETH0, "2001:db8:30::9", 5, 64);
    let got = at_receiver.packets();
    assert_eq!(got.len(), 5, "the session's route forwards: {got:?}");
    assert!(got
        .iter()
        .all(|p| p["dst_mac"] == RECEIVER_MAC && p["ttl"] == 63));

    // A resync without the IPv6 route sweeps it: its packets go to the guest.
    c.ok(r#"<sync-begin seq="SEQ"/>"#);
    c.ok(
        r#"<routes seq="SEQ"><add prefix="10.30.0.0/16" via="10.0.2.2" interface="g1"/></routes>"#,
    );
    c.ok(r#"<sync-end seq="SEQ"/>"#);
    assert!(!t.ctl(&["routes", "1"]).contains("2001:db8:30::/48"));
    let no_route = punted(&t.vr(1), "no_route");
    t.send("s", "eth0", VR1_ETH0, "2001:db8:30::9", 2, 64);
    assert_eq!(punted(&t.vr(1), "no_route") - no_route, 2);
    // A gateway off the interface's link is refused, the tables unchanged.
    let reply = c.call(r#"<routes seq="SEQ"><add prefix="2001:db8:31::/48" via="2001:db8:7::1" interface="g1"/></routes>"#);
    assert_eq!(error_code(reply), ErrorCode::BadAddress);
    drop(c);

    // A version-3 peer speaks IPv4 only.
    let mut old = Client::bare(Ipv4Addr::new(127, 0, 0, 2), port);
    old.raw(br#"<vrfwd version="3" versions="2 3">"#);
    let nonce = old.header().expect("header").challenge().expect("nonce");
    let hello = old.hello_v2(1, 9, "red-secret-for-tests", &nonce);
    old.raw(hello.as_bytes());
    assert_eq!(old.recv(), Some(Stanza::Ack { seq: old.seq }));
    let reply =
        old.call(r#"<routes seq="SEQ"><add prefix="2001:db8:32::/48" interface="g1"/></routes>"#);
    assert_eq!(error_code(reply), ErrorCode::BadVersion);
}
