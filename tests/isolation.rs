//! Data-plane isolation, attacked for real (docs/security.md): VR 1's guest shares
//! segment lan0 with VR 2 (scripts/topology.sh with SHARED_LAN=1) and, while VR 2
//! forwards a stream through the same lcore to a station on lan0, sends frames
//! from VR 2's MAC, ARP claiming that station's and VR 2's addresses, a flood of
//! random source MACs and a broadcast storm. Nothing forged leaves its vif, VR 2's
//! neighbours and stream are untouched, the storm is cut to its limit, the
//! counters show every drop and the mempool is full again afterwards. Needs root.
mod common;

use common::*;
use std::time::{Duration, Instant};
use vrfwd::stats::{PortSnapshot, Snapshot};

const VR2_ETH1: &str = "02:00:00:01:02:01";
const STATION_MAC: &str = "02:00:00:00:aa:02";
/// The default `[flood]` limit of a vif.
const VIF_PPS: f64 = 1000.0;
const VIF_BURST: f64 = 1000.0;
const VICTIM_PACKETS: u32 = 3000;

fn port<'a>(s: &'a Snapshot, name: &str) -> &'a PortSnapshot {
    s.ports.iter().find(|p| p.name == name).expect("a port")
}

/// Frames namespace `n`'s `iface` received, by its kernel's count.
fn rx_packets(t: &Topology, n: &str, iface: &str) -> u64 {
    let path = format!("/sys/class/net/{iface}/statistics/rx_packets");
    t.exec(n, &["cat", &path]).trim().parse().expect("a count")
}

/// Runs `pkt.py blast` from VR 1's guest: `count` frames from `src` to broadcast;
/// returns the seconds the sending took.
fn blast(t: &Topology, count: u32, src: &str) -> f64 {
    let count = count.to_string();
    t.pkt("g", &["blast", "g0", &count, src, "ff:ff:ff:ff:ff:ff"])
        .trim()
        .parse()
        .expect("seconds")
}

/// VR 2's neighbour entry for the station, as `vrfwd ctl neighbors 2` shows it.
fn vr2_station_entry(t: &Topology) -> Option<String> {
    t.ctl(&["neighbors", "2"])
        .lines()
        .find(|l| l.starts_with("10.0.1.2 "))
        .map(|l| {
            l.rsplit_once(' ')
                .map_or(l, |(entry, _age)| entry)
                .to_owned()
        })
}

/// Whether a captured frame is one of the forged ones: the attack's ethertype
/// from another MAC than the guest's own, or the attack's ARP (its requests ask
/// for 10.0.1.77, its claims are gratuitous replies).
fn forged(p: &serde_json::Value) -> bool {
    match p["ethertype"].as_u64() {
        Some(0x88b5) => p["src_mac"] != VR1_ETH0,
        Some(0x0806) => p["pdst"] == "10.0.1.77" || (p["op"] == 2 && p["psrc"] == p["pdst"]),
        _ => false,
    }
}

#[test]
fn a_guest_cannot_impersonate_poison_or_flood_another_vr() {
    let mut t = Topology::up_with("vi", 1, &[("SHARED_LAN", "1")]);
    t.start();

    // VR 2 learns the station (10.0.1.2) from its ARP on the uplink.
    t.exec(
        "s",
        &["ping", "-c", "2", "-i", "0.2", "-W", "2", "10.0.1.101"],
    );
    let entry = vr2_station_entry(&t);
    assert_eq!(
        entry.as_deref(),
        Some(format!("10.0.1.2 dev eth0 lladdr {STATION_MAC}").as_str())
    );
    let at_rest = t.stats().mempool;
    let station_rx = rx_packets(&t, "s", "eth0");
    let vr2_guest_rx = rx_packets(&t, "h", "g0");

    // VR 2's stream: q → VR 2 → the station on lan0, through the lcore the
    // attacks hit.
    let at_station = t.sniff("s", "eth0", 12, "udp and src host 10.0.2.2");
    let at_station_forged = t.sniff("s", "eth0", 12, "ether proto 0x88b5 or arp");
    let at_vr2_guest = t.sniff("h", "g0", 12, "ether proto 0x88b5 or arp");
    let (phases, storm_s) = std::thread::scope(|s| {
        let victim = s.spawn(|| t.send("q", "eth0", VR2_ETH1, "10.0.1.2", VICTIM_PACKETS, 64));
        std::thread::sleep(Duration::from_millis(500));
        let mut phases = vec![t.stats()];
        // 1. VR 2's MAC as source.
        blast(&t, 2000, VR2_ETH0);
        phases.push(t.stats());
        // 2. ARP claiming the station's and VR 2's addresses (under VR 1's MAC,
        //    which passes the Ethernet check, and under VR 2's).
        for (mac, ip) in [
            (VR1_ETH0, "10.0.1.2"),
            (VR1_ETH0, "10.0.1.101"),
            (VR2_ETH0, "10.0.1.101"),
        ] {
            t.pkt("g", &["arp", "g0", mac, ip, "5"]);
        }
        phases.push(t.stats());
        // 3. A different source MAC in every frame (what fills a MAC table).
        blast(&t, 20_000, "random");
        phases.push(t.stats());
        // 4. A broadcast storm from the guest's own MAC.
        let storm_s = blast(&t, 20_000, VR1_ETH0);
        phases.push(t.stats());
        victim.join().expect("victim sender");
        (phases, storm_s)
    });
    let victim = at_station.packets();
    let forged_at_station = at_station_forged.packets();
    let at_vr2_guest = at_vr2_guest.packets();
    let v0 = |k: usize, f: fn(&PortSnapshot) -> u64| {
        f(port(&phases[k + 1], "v0")) - f(port(&phases[k], "v0"))
    };
    for k in 0..4 {
        eprintln!(
            "phase {}: v0 rx {} spoofed {} flood_limited {}, lan0 flooded {}",
            k + 1,
            v0(k, |p| p.rx),
            v0(k, |p| p.spoofed),
            v0(k, |p| p.flood_limited),
            phases[k + 1].segments[0].flooded - phases[k].segments[0].flooded
        );
    }

    // VR 2's stream lost nothing; its neighbour for the station is unchanged.
    assert_eq!(
        victim.len() as u32,
        VICTIM_PACKETS,
        "VR 2's stream lost packets"
    );
    assert!(victim.iter().all(|p| p["src_mac"] == VR2_ETH0));
    assert_eq!(vr2_station_entry(&t), entry, "VR 2's neighbour changed");
    let vr1_neighbors = t.ctl(&["neighbors", "1"]);
    assert!(
        !vr1_neighbors.contains(VR1_ETH0),
        "VR 1 learned its own guest's claims: {vr1_neighbors}"
    );

    // Nothing forged left the vif: no frame from VR 2's MAC or a random one, no
    // forged ARP; of the storm, only what its limit let through.
    for (at, seen) in [
        ("station", forged_at_station),
        ("VR 2's guest", at_vr2_guest),
    ] {
        let forged: Vec<_> = seen.iter().filter(|p| forged(p)).collect();
        assert!(forged.is_empty(), "forged frames reached {at}: {forged:?}");
    }
    // Every frame of attacks 1–3 that reached vrfwd (the kernel drops some of a
    // blast before af_packet) was dropped as spoofed, a few of the guest's own
    // frames aside; the ARP ones all.
    for (k, sent) in [(0, 2000), (1, 30), (2, 20_000)] {
        let (rx, spoofed) = (v0(k, |p| p.rx), v0(k, |p| p.spoofed));
        assert!(
            spoofed + 5 >= rx && spoofed >= sent / 2,
            "attack {}: {spoofed} of {rx} received dropped, {sent} sent",
            k + 1
        );
    }

    // The storm: flooded at most at the vif's rate plus its burst; the rest counted.
    let bound = (VIF_BURST + VIF_PPS * (storm_s + 1.0)) as u64;
    let flooded = phases[4].segments[0].flooded - phases[3].segments[0].flooded;
    let (rx, limited) = (v0(3, |p| p.rx), v0(3, |p| p.flood_limited));
    assert!(flooded <= bound, "flooded {flooded} > {bound}");
    assert!(
        limited + flooded + 5 >= rx && limited >= 5000,
        "limited {limited}, flooded {flooded} of {rx} received"
    );
    let storm_at_station = rx_packets(&t, "s", "eth0") - station_rx - VICTIM_PACKETS as u64;
    let storm_at_vr2_guest = rx_packets(&t, "h", "g0") - vr2_guest_rx;
    assert!(
        storm_at_station <= bound && storm_at_vr2_guest <= bound,
        "station {storm_at_station}, VR 2's guest {storm_at_vr2_guest}, bound {bound}"
    );

    // Every mbuf is back once the traffic is over.
    let deadline = Instant::now() + Duration::from_secs(5);
    while t.stats().mempool.in_use > at_rest.in_use {
        assert!(
            Instant::now() < deadline,
            "mbufs still in use: {:?} (at rest before: {at_rest:?})",
            t.stats().mempool
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
