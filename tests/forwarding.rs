//! End-to-end forwarding through a real vrfwd process on af_packet ports, between
//! network namespaces (scripts/topology.sh): bytes checked on the wire with scapy,
//! the guest namespace's kernel acting as the VR's slow path. Needs root.
mod common;

use common::*;
use std::time::Duration;

#[test]
fn forwards_punts_switches_and_isolates() {
    let mut t = Topology::up("vf", 1);
    t.start();

    // Warm up: the guest answers ARP (switched through the segment) and forwards the
    // first packets itself while vrfwd snoops the neighbours it resolves.
    t.exec(
        "s",
        &["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.0.2.2"],
    );
    let before = t.stats();
    assert!(
        before.segments[0].unicast > 0,
        "ARP replies were switched as unicast"
    );
    assert!(t.vr(1).neighbors >= 2, "neighbours learned by snooping ARP");

    // Fast path, on bytes: TTL - 1, valid checksum, egress MACs; the guest sees none.
    let at_receiver = t.sniff("r", "eth0", 4, "udp");
    let at_guest = t.sniff("g", "g0", 4, "udp");
    let forwarded_before = t.vr(1).forwarded;
    t.send("s", "eth0", VR1_ETH0, "10.0.2.2", 50, 64);
    let got = at_receiver.packets();
    let guest = at_guest.packets();
    assert_eq!(got.len(), 50, "all 50 forwarded: {got:?}");
    for p in &got {
        assert_eq!(p["ttl"], 63);
        assert_eq!(p["checksum_ok"], true);
        assert_eq!(p["src_mac"], VR1_ETH1);
        assert_eq!(p["dst_mac"], RECEIVER_MAC);
    }
    assert!(
        guest.is_empty(),
        "forwarded packets must not pass the guest: {guest:?}"
    );
    // (plus the receiver's ICMP port-unreachable answers, forwarded back)
    assert!(t.vr(1).forwarded - forwarded_before >= 50);

    // Routes changed at run time by the operator reach the fast path at once.
    let ctl = |args: &[&str]| t.ctl(args);
    ctl(&["route", "add", "1", "10.55.0.0/16", "via", "10.0.2.2"]);
    assert!(ctl(&["routes", "1"]).contains("10.55.0.0/16 via 10.0.2.2 dev eth1"));
    let at_receiver = t.sniff("r", "eth0", 3, "udp");
    t.send("s", "eth0", VR1_ETH0, "10.55.1.1", 5, 64);
    assert_eq!(at_receiver.packets().len(), 5);
    ctl(&["route", "del", "1", "10.55.0.0/16"]);
    let nr_before = punted(&t.vr(1), "no_route");
    t.send("s", "eth0", VR1_ETH0, "10.55.1.1", 2, 64);
    assert_eq!(punted(&t.vr(1), "no_route") - nr_before, 2);

    // Static route through a gateway (10.9/16 via the receiver).
    let at_receiver = t.sniff("r", "eth0", 3, "udp");
    t.send("s", "eth0", VR1_ETH0, "10.9.1.1", 5, 64);
    let got = at_receiver.packets();
    assert_eq!(got.len(), 5);
    assert!(got.iter().all(|p| p["dst"] == "10.9.1.1" && p["ttl"] == 63));

    // TTL 1: punted, and the guest's kernel sends the ICMP time-exceeded.
    let at_sender = t.sniff("s", "eth0", 3, "icmp");
    let ttl_before = punted(&t.vr(1), "ttl_expired");
    t.send("s", "eth0", VR1_ETH0, "10.0.2.2", 3, 1);
    let icmp = at_sender.packets();
    assert_eq!(punted(&t.vr(1), "ttl_expired") - ttl_before, 3);
    assert_eq!(
        icmp.iter()
            .filter(|p| p["icmp_type"] == 11 && p["src"] == "10.0.1.1")
            .count(),
        3,
        "{icmp:?}"
    );

    // No route in the VR's table: the guest answers with a net unreachable.
    let at_sender = t.sniff("s", "eth0", 3, "icmp");
    let nr_before = punted(&t.vr(1), "no_route");
    t.send("s", "eth0", VR1_ETH0, "10.77.0.1", 2, 64);
    let icmp = at_sender.packets();
    assert_eq!(punted(&t.vr(1), "no_route") - nr_before, 2);
    assert!(icmp.iter().any(|p| p["icmp_type"] == 3), "{icmp:?}");

    // Unresolved next hop: punted; the guest ARPs for it.
    let un_before = punted(&t.vr(1), "unresolved");
    t.send("s", "eth0", VR1_ETH0, "10.0.2.77", 2, 64);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(punted(&t.vr(1), "unresolved") - un_before, 2);

    // Packets to the router itself reach the guest (ping answered by its kernel).
    let tr_before = punted(&t.vr(1), "to_router");
    t.exec(
        "s",
        &["ping", "-c", "2", "-i", "0.2", "-W", "2", "10.0.1.1"],
    );
    assert!(punted(&t.vr(1), "to_router") - tr_before >= 2);

    // Two VRs with the same prefixes stay apart: VR 2's traffic reaches VR 2's
    // receiver and never VR 1's.
    t.exec(
        "t",
        &["ping", "-c", "2", "-i", "0.2", "-W", "2", "10.0.2.2"],
    );
    let at_q = t.sniff("q", "eth0", 3, "udp");
    let at_r = t.sniff("r", "eth0", 3, "udp");
    t.send("t", "eth0", VR2_ETH0, "10.0.2.2", 20, 64);
    let (q, r) = (at_q.packets(), at_r.packets());
    assert_eq!(q.len(), 20, "VR 2 forwards to its own receiver");
    assert!(r.is_empty(), "nothing of VR 2 leaks into VR 1: {r:?}");
    assert!(t.vr(2).forwarded >= 20);

    // Port security: VR 1's guest announcing VR 2's MAC on its vif (the RARP that
    // would move VR 2 off this host) leaves nothing on the segment and is counted;
    // its announcement of its own MAC still goes out.
    let spoofed = |t: &Topology| {
        let ports = t.stats().ports;
        ports
            .iter()
            .find(|p| p.name == "v0")
            .expect("vif v0")
            .spoofed
    };
    let rarp = |mac: &str, count: &str| t.pkt("g", &["rarp", "g0", mac, count]);
    let spoofed_before = spoofed(&t);
    let at_sender = t.sniff("s", "eth0", 3, "rarp");
    rarp(VR2_ETH0, "5");
    rarp(VR1_ETH0, "1");
    let seen = at_sender.packets();
    assert!(
        seen.iter().all(|p| p["src_mac"] != VR2_ETH0),
        "a forged announcement left the vif: {seen:?}"
    );
    assert!(
        seen.iter().any(|p| p["src_mac"] == VR1_ETH0),
        "the guest's own announcement goes out: {seen:?}"
    );
    assert_eq!(spoofed(&t) - spoofed_before, 5);

    // Clean shutdown on SIGINT (checked by Drop), nothing left behind.
}

#[test]
fn two_lcores_share_the_ports() {
    let mut t = Topology::up("vm", 2);
    t.start();
    assert_eq!(t.stats().lcores.len(), 2);
    forwards_a_hundred(&t);
}

/// After the guest resolved the neighbours, 100 packets from s reach r
/// through VR 1's fast path.
fn forwards_a_hundred(t: &Topology) {
    t.exec(
        "s",
        &["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.0.2.2"],
    );
    let at_receiver = t.sniff("r", "eth0", 4, "udp");
    t.send("s", "eth0", VR1_ETH0, "10.0.2.2", 100, 64);
    let got = at_receiver.packets();
    assert_eq!(got.len(), 100);
    assert!(got
        .iter()
        .all(|p| p["ttl"] == 63 && p["checksum_ok"] == true));
    assert!(t.vr(1).forwarded >= 100);
}

#[test]
fn every_port_may_be_a_socket_a_successor_can_take_over() {
    let mut t = Topology::up_with("vk", 2, &[("PORTS", "socket")]);
    t.start();
    let ports = t.ctl(&["ports"]);
    assert!(ports.contains("socket:vku0"), "{ports}");
    forwards_a_hundred(&t);
}

/// Topology `prefix` with 2 lcores whose VR 1 eth0 vif (`{prefix}v0`) has no
/// device in the config, attached at run time by `driver`; started.
fn without_vif_device(prefix: &str, driver: &str) -> Topology {
    let mut t = Topology::up(prefix, 2);
    let text = std::fs::read_to_string(&t.config).unwrap();
    let device = text
        .lines()
        .find(|l| l.starts_with(&format!("device = \"net_af_packet{prefix}v0,")))
        .expect("VR 1 eth0's vif in the config")
        .to_owned();
    let default = "driver = \"socket\"";
    assert!(text.contains(default), "the [attach] table in the config");
    let text = text
        .replace(&device, "")
        .replace(default, &format!("driver = \"{driver}\""));
    std::fs::write(&t.config, text).unwrap();
    t.start();
    t
}

/// Whether VR 1's guest answers a ping from the sender.
fn guest_answers(t: &Topology) -> bool {
    std::process::Command::new("ip")
        .args(["netns", "exec", &t.ns("s")])
        .args(["ping", "-c", "2", "-i", "0.2", "-W", "1", "10.0.1.1"])
        .status()
        .unwrap()
        .success()
}

/// A vif without a configured device (a Xen vif or QEMU tap that appears when the
/// guest is created or migrates in) is attached and detached while the lcores run,
/// as vrfwd's own sockets (the default: no DPDK port).
#[test]
fn a_vif_is_attached_and_detached_at_run_time() {
    let t = without_vif_device("va", "socket");
    let ports = t.ctl(&["ports"]);
    assert!(
        ports
            .lines()
            .any(|l| l.contains("vif of red eth0") && l.ends_with(" -")),
        "{ports}"
    );
    assert!(!guest_answers(&t), "no vif yet: the guest is unreachable");
    // ... but its address resolves: vrfwd answers ARP for an active VR itself.
    let neigh = t.exec("s", &["ip", "neigh", "show", "10.0.1.1"]);
    assert!(neigh.contains(VR1_ETH0), "{neigh}");
    assert!(t.vr(1).arp_answered >= 1);

    let attach = ["attach", "red", VR1_ETH0, "vav0", "--segment", "lan0"];
    let reply = t.ctl(&attach);
    assert!(
        reply.contains("attached vav0 to VR red interface eth0"),
        "{reply}"
    );
    let ports = t.ctl(&["ports"]);
    assert!(ports.contains("vav0 (socket)"), "{ports}");
    assert!(
        guest_answers(&t),
        "the guest answers through its attached vif"
    );

    // Refused, and nothing changes: a second attach, a wrong segment, an unknown
    // interface, netdev or VR, a name that would smuggle device arguments.
    for (args, want) in [
        (attach.to_vec(), "attached already (to vav0)"),
        (
            vec!["attach", "1", VR1_ETH0, "vav0", "--segment", "lan1"],
            "on segment lan0, not lan1",
        ),
        (
            vec!["attach", "1", "02:00:00:00:09:09", "vav0"],
            "no interface with MAC",
        ),
        (
            vec!["attach", "1", VR1_ETH1, "nosuchif"],
            "no network interface",
        ),
        (
            vec!["attach", "1", VR1_ETH1, "vav1,iface=x"],
            "not a network interface name",
        ),
        (vec!["attach", "vr9", VR1_ETH1, "vav1"], "no VR \"vr9\""),
        (vec!["detach", "vav1"], "no port is attached to \"vav1\""),
    ] {
        let e = t.try_ctl(&args).expect_err("refused");
        assert!(e.contains(want), "{args:?}: {e:?} should say {want:?}");
    }
    assert!(guest_answers(&t));

    // Detach and attach again, repeatedly, while the fast path forwards a stream:
    // no lcore stops, nothing forwarded is lost, the guest is back at the end.
    t.exec(
        "s",
        &["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.0.2.2"],
    );
    let forwarded = t.vr(1).forwarded;
    let at_receiver = t.sniff("r", "eth0", 12, "udp and dst port 5000");
    std::thread::scope(|s| {
        s.spawn(|| t.send("s", "eth0", VR1_ETH0, "10.0.2.2", 3000, 64));
        for _ in 0..10 {
            assert!(t.ctl(&["detach", "vav0"]).contains("detached vav0"));
            t.ctl(&attach);
        }
    });
    assert_eq!(at_receiver.packets().len(), 3000, "every packet forwarded");
    assert!(t.vr(1).forwarded - forwarded >= 3000);
    assert!(guest_answers(&t));
    t.ctl(&["detach", "vav0"]);
    assert!(!guest_answers(&t), "detached again");
    assert_eq!(t.stats().lcores.len(), 2);
}

/// With `[attach] driver = "af_packet"` a vif is plugged in as a DPDK port
/// instead (at most RTE_MAX_ETHPORTS of them), and unplugged again.
#[test]
fn a_vif_is_attached_through_a_pmd_when_configured() {
    let t = without_vif_device("vp", "af_packet");
    assert!(!guest_answers(&t));
    let reply = t.ctl(&["attach", "red", VR1_ETH0, "vpv0"]);
    assert!(reply.contains("attached vpv0"), "{reply}");
    assert!(
        guest_answers(&t),
        "the guest answers through the PMD's port"
    );
    let ports = t.stats().ports;
    let pmd = ports.iter().find(|p| p.name == "v0").and_then(|p| p.pmd);
    assert!(
        pmd.is_some_and(|s| s.rx_packets > 0),
        "a DPDK port, counting in its PMD: {pmd:?}"
    );
    let listed = t.ctl(&["ports"]);
    assert!(listed.contains("vpv0 (PMD net_af_packet"), "{listed}");
    assert!(t.ctl(&["detach", "vpv0"]).contains("detached vpv0"));
    assert!(!guest_answers(&t), "unplugged");
}

/// `vrfwd ctl route get` for 1000 random addresses (routed through the
/// receiver, attached on its segment but unresolved, the VR's own, matching
/// nothing) agrees with where one packet to each goes: forwarded ones reach
/// the receiver with the MAC it named, punted ones reach the guest.
#[test]
fn route_get_agrees_with_where_packets_go() {
    let mut t = Topology::up("rg", 1);
    let log = std::env::temp_dir().join("vrfwd-rg.log");
    t.start_logging_json(&log);
    t.exec(
        "s",
        &["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.0.2.2"],
    );
    t.ctl(&["route", "add", "1", "10.55.0.0/16", "via", "10.0.2.2"]);
    let addresses = addresses(1000);
    let answers: Vec<String> = addresses
        .iter()
        .map(|a| {
            let a = a.to_string();
            let flow = [
                "from", "10.0.1.2", "proto", "17", "sport", "4000", "dport", "5000",
            ];
            t.ctl(&[&["route", "get", "1", &a][..], &flow[..]].concat())
        })
        .collect();
    let list = std::env::temp_dir().join("vrfwd-rg-addresses");
    let lines: Vec<String> = addresses.iter().map(|a| a.to_string()).collect();
    std::fs::write(&list, lines.join("\n")).expect("the address list");
    let at_receiver = t.sniff("r", "eth0", 8, "udp port 5000");
    let at_guest = t.sniff("g", "g0", 8, "udp port 5000");
    let list_arg = list.to_str().expect("a UTF-8 path");
    t.pkt("s", &["spray", "eth0", VR1_ETH0, list_arg]);
    let (received, punted) = (at_receiver.packets(), at_guest.packets());
    let _ = std::fs::remove_file(&list);
    let seen = |packets: &[serde_json::Value], a: &str| {
        packets
            .iter()
            .find(|p| p["dst"] == a)
            .map(|p| p["dst_mac"].as_str().unwrap_or_default().to_owned())
    };
    let mut forwarded = 0;
    for (a, answer) in addresses.iter().zip(&answers) {
        let (a, answer) = (a.to_string(), answer.trim_end());
        let (to_receiver, to_guest) = (seen(&received, &a), seen(&punted, &a));
        if answer.ends_with(" forwarded") {
            let mac = answer
                .split(" lladdr ")
                .nth(1)
                .and_then(|m| m.split(' ').next());
            assert_eq!(to_receiver.as_deref(), mac, "{a}: {answer}");
            assert_eq!(to_guest, None, "{a}: {answer}");
            forwarded += 1;
        } else {
            assert!(answer.contains(" to guest ("), "{a}: {answer}");
            assert!(to_guest.is_some(), "{a} was not punted: {answer}");
            assert_eq!(to_receiver, None, "{a}: {answer}");
        }
    }
    assert!(
        (200..800).contains(&forwarded),
        "both fates among the addresses: {forwarded} forwarded"
    );
    every_command_answers_in_json(&t);
    t.stop();
    every_log_line_is_json_and_the_refusal_is_logged(&log);
    let _ = std::fs::remove_file(&log);
}

/// `vrfwd --log-format json`: one JSON object a line; the command refused in
/// [`every_command_answers_in_json`] logged once, with its reason.
fn every_log_line_is_json_and_the_refusal_is_logged(log: &std::path::Path) {
    let text = std::fs::read_to_string(log).expect("the log");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["fields"]["message"] == "forwarding"),
        "{text}"
    );
    let refused: Vec<_> = lines
        .iter()
        .filter(|l| {
            let command = l["fields"]["command"].as_str().unwrap_or_default();
            command.contains("10.57.0.0/16")
        })
        .collect();
    assert_eq!(refused.len(), 1, "{text}");
    assert_eq!(refused[0]["level"], "WARN");
    let message = refused[0]["fields"]["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("refused: "), "{message}");
}

/// `vrfwd ctl --json`: each command's one JSON document, with what its text
/// form says.
fn every_command_answers_in_json(t: &Topology) {
    let json = |args: &[&str]| -> serde_json::Value {
        let out = t.ctl(&[&["--json"][..], args].concat());
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
    };
    let get = json(&[
        "route",
        "get",
        "1",
        "10.55.1.2",
        "proto",
        "6",
        "dport",
        "80",
    ]);
    assert_eq!(get["prefix"], "10.55.0.0/16");
    assert_eq!(get["next_hop"], "via 10.0.2.2 dev eth1");
    assert_eq!(get["mac"], RECEIVER_MAC);
    assert_eq!(get["to_guest"], serde_json::Value::Null);
    let routes = json(&["routes", "1"]);
    assert!(routes
        .as_array()
        .expect("a list")
        .iter()
        .any(|r| r["prefix"] == "10.55.0.0/16" && r["next_hop"] == "via 10.0.2.2 dev eth1"));
    let vrs = json(&["vrs"]);
    assert_eq!(vrs[0]["id"], 1);
    assert_eq!(vrs[0]["state"], "active");
    assert_eq!(vrs[0]["interfaces"][0]["mac"], VR1_ETH0);
    let neighbors = json(&["neighbors", "1"]);
    assert!(neighbors
        .as_array()
        .expect("a list")
        .iter()
        .any(|n| n["address"] == "10.0.2.2" && n["mac"] == RECEIVER_MAC));
    let ports = json(&["ports"]);
    assert!(ports.as_array().expect("a list").len() >= 4);
    assert!(json(&["sessions"]).as_array().is_some());
    assert!(json(&["stats"])["vrs"].as_array().is_some());
    let added = json(&["route", "add", "1", "10.56.0.0/16", "via", "10.0.2.2"]);
    assert_eq!(added["message"], "ok");
    let refused = t.try_ctl(&[
        "--json",
        "route",
        "add",
        "1",
        "10.57.0.0/16",
        "via",
        "10.1.1.1",
    ]);
    assert!(
        refused.is_err(),
        "a refused command fails in JSON too: {refused:?}"
    );
}

/// `n` random addresses (a fixed sequence): a quarter in each of 10.9.0.0/16
/// and 10.55.0.0/16 (routed through the receiver), 10.0.2.0/24 (the
/// receiver's segment: its own address resolved, the rest not) and anywhere
/// else but the sender's segment, plus the VR's own addresses.
fn addresses(n: usize) -> Vec<std::net::Ipv4Addr> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state as u32
    };
    let mut out: Vec<std::net::Ipv4Addr> = ["10.0.1.1", "10.0.2.1", "10.0.2.2"]
        .iter()
        .map(|a| a.parse().expect("an address"))
        .collect();
    while out.len() < n {
        let r = next();
        let a = match r % 4 {
            0 => 0x0a09_0000 | (r >> 16),
            1 => 0x0a37_0000 | (r >> 16),
            2 => 0x0a00_0200 | (r >> 24),
            _ => r,
        };
        let a = std::net::Ipv4Addr::from(a);
        let usable =
            !(a.is_multicast() || a.is_broadcast() || a.is_loopback() || a.is_unspecified())
                && (u32::from(a) >> 8) != 0x0a_00_01
                && u32::from(a) & 0xff != 0xff
                && !out.contains(&a);
        if usable {
            out.push(a);
        }
    }
    out
}
