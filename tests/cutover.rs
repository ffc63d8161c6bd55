//! The migration cut-over only on authenticated word (docs/migration.md), between
//! two real vrfwd hosts on one machine: A runs VR 1 (scripts/topology.sh, prefix
//! `ca`), B waits for it in standby (prefix `cb`, `STANDBY=1`); A clones VR 1 to
//! B over the route protocol on 127.0.0.1. A station on A's LAN forges QEMU's
//! RARP and gratuitous ARPs for VR 1's MAC: with no clone in progress nothing
//! changes (counted); with one, VR 1 only goes quiet (forwarding on, from the
//! uplink's MAC; routes and sessions untouched) and is active again after
//! `control.quiet_ms`; a frame from its guest that is not an announcement (one
//! it may have sent before it left) does not end that early. A clone cancelled
//! before the guest moves leaves A active and B in standby. When the guest's
//! frames reach B's vif, B says `arrived` over the clone session, announces VR 1
//! on its LAN, and again over the next seconds; A drains, and such a frame from
//! the guest does not make it active again. A route A published while cloning
//! reached B; what A changes once the guest has left (an operator's delete, the
//! drain's withdrawal, forgotten neighbours) does not.
//! When the clone session drops before the guest moves back (a partition), both
//! hosts are active until the wrapper's `vrfwd ctl drain` on the source breaks
//! the tie. Needs root.
mod common;

use common::*;
use std::time::{Duration, Instant};

const A_PORT: &str = "7711";
const B_PORT: &str = "7712";
const HOST_SECRET: &str = "host-secret-for-the-cutover-test";
/// Long enough to watch a quiet VR forward (scapy starts in about a second).
const QUIET_MS: u64 = 6000;

fn host(prefix: &str, port: &str, standby: bool) -> Topology {
    let mut env = vec![
        ("CONTROL_PORT", port),
        ("HOST_CREDENTIAL", HOST_SECRET),
        ("PEER", "127.0.0.1"),
        ("QUIET_MS", "6000"),
        ("DRAIN_MS", "3000"),
    ];
    if standby {
        env.push(("STANDBY", "1"));
    }
    let mut t = Topology::up_with(prefix, 1, &env);
    t.start();
    t
}

/// VR 1's state (without "cloning to …") and route count on `t`.
fn vr1(t: &Topology) -> (String, u64) {
    let vrs = t.ctl(&["vrs"]);
    let line = vrs
        .lines()
        .find(|l| l.starts_with("1 "))
        .expect("VR 1's line");
    let words: Vec<&str> = line.split_whitespace().collect();
    let routes = words
        .iter()
        .skip(3)
        .find_map(|w| w.parse().ok())
        .expect("a route count");
    (words[2].to_owned(), routes)
}

fn state(t: &Topology) -> String {
    vr1(t).0
}

/// Waits up to `within` for VR 1 on `t` to be in `want`.
fn await_state(t: &Topology, want: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while state(t) != want {
        assert!(
            Instant::now() < deadline,
            "VR 1 on {} is {}, not {want}",
            t.prefix,
            state(t)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A LAN station (A's sender namespace) forges 5 of QEMU's RARPs for VR 1's MAC.
fn forge_rarps(a: &Topology) {
    a.pkt("s", &["rarp", "eth0", VR1_ETH0, "5"]);
}

/// The same station forges 5 gratuitous ARPs for VR 1's MAC and address.
fn forge_gratuitous_arps(a: &Topology) {
    a.pkt("s", &["arp", "eth0", VR1_ETH0, "10.0.1.1", "5"]);
}

/// The guest on `t` sends one ordinary frame (no announcement) from its first
/// NIC, as one it sent before it left could still wait in the vif's queue.
fn guest_frame(t: &Topology) {
    t.send("g", "g0", "ff:ff:ff:ff:ff:ff", "10.0.1.2", 1, 64);
}

/// Sends 5 packets through VR 1 on `a` and returns the source MACs they left with.
fn forwarded_from(a: &Topology) -> Vec<String> {
    let at_receiver = a.sniff("r", "eth0", 3, "udp");
    a.send("s", "eth0", VR1_ETH0, "10.0.2.2", 5, 64);
    at_receiver
        .packets()
        .iter()
        .map(|p| p["src_mac"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn only_authenticated_word_moves_a_vr_and_one_host_is_active_at_every_step() {
    let a = host("ca", A_PORT, false);
    let b = host("cb", B_PORT, true);
    // A resolves the receiver (the guest's kernel forwards the first packets).
    a.exec(
        "s",
        &["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.0.2.2"],
    );
    let (_, routes) = vr1(&a);
    let sessions = a.ctl(&["sessions"]);
    assert_eq!(
        (state(&a).as_str(), state(&b).as_str()),
        ("active", "standby")
    );

    // 1. No clone in progress: forged announcements change nothing, and are counted.
    let ignored = a.vr(1).announcements_ignored;
    forge_rarps(&a);
    forge_gratuitous_arps(&a);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(vr1(&a), ("active".to_owned(), routes));
    assert_eq!(a.ctl(&["sessions"]), sessions);
    assert!(
        a.vr(1).announcements_ignored - ignored >= 10,
        "counted: {}",
        a.vr(1).announcements_ignored - ignored
    );
    assert_eq!(forwarded_from(&a), vec![VR1_ETH1; 5]);

    // 2. A clone session that never completes its sync (nothing listens there) or
    //    is cancelled before the guest moves: A stays active, B drops its standby.
    let nowhere = a
        .try_ctl(&["migrate", "1", "--to", "127.0.0.1:7719"])
        .expect_err("no host listens there");
    assert!(nowhere.contains("127.0.0.1:7719"), "{nowhere}");
    assert_eq!(state(&a), "active");
    let to = format!("127.0.0.1:{B_PORT}");
    a.ctl(&["migrate", "1", "--to", &to]);
    assert_eq!(state(&b), "standby");
    a.ctl(&["migrate", "1", "--cancel"]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        (state(&a).as_str(), state(&b).as_str()),
        ("active", "standby")
    );

    // 3. A clone in progress: forged announcements make VR 1 quiet on A, never
    //    draining; it keeps forwarding (from the uplink's MAC, never VR 1's) and is
    //    active again after quiet_ms without word from B.
    a.ctl(&["migrate", "1", "--to", &to]);
    assert_eq!(state(&a), "active");
    forge_rarps(&a);
    assert_eq!(state(&a), "quiet");
    let quiet = forwarded_from(&a);
    assert_eq!(quiet.len(), 5, "forwarding goes on while quiet");
    assert!(quiet.iter().all(|mac| mac != VR1_ETH1), "{quiet:?}");
    guest_frame(&a);
    assert_eq!(
        state(&a),
        "quiet",
        "only the guest's announcement ends it early"
    );
    assert_eq!(state(&b), "standby");
    await_state(&a, "active", Duration::from_millis(QUIET_MS + 1500));
    assert_eq!(vr1(&a).1, routes, "routes untouched");
    assert_eq!(forwarded_from(&a), vec![VR1_ETH1; 5]);

    // 4. The guest moves: its frames reach B's vif, B activates, announces VR 1
    //    (and again: REPEATS_MS in src/lcore/migration.rs) and says so over the
    //    clone session; A drains, whatever its guest's stale frames say, then
    //    stands by.
    // A route the source publishes while cloning reaches B; what A changes once the
    // guest has left (an operator's delete, the drain's withdrawal and forgotten
    // neighbours) must not.
    a.ctl(&["route", "add", "1", "10.77.0.0/24", "via", "10.0.2.2"]);
    let cloned = Instant::now();
    while !b.ctl(&["routes", "1"]).contains("10.77.0.0/24") {
        assert!(
            cloned.elapsed() < Duration::from_secs(5),
            "the clone carried A's new route to B"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let b_neighbors = b.ctl(&["neighbors", "1"]);
    assert!(b_neighbors.contains("10.0.2.2 "), "{b_neighbors}");
    let announced = b.sniff("s", "eth0", 4, "rarp");
    for nic in ["g0", "g1"] {
        b.exec("g", &["ip", "link", "set", nic, "up"]);
    }
    b.exec(
        "g",
        &["ping", "-c", "2", "-i", "0.2", "-W", "1", "10.0.1.2"],
    );
    await_state(&b, "active", Duration::from_secs(2));
    await_state(&a, "draining", Duration::from_secs(2));
    guest_frame(&a);
    assert_eq!(state(&a), "draining", "a stale frame is no return");
    a.ctl(&["route", "del", "1", "10.77.0.0/24"]);
    await_state(&a, "standby", Duration::from_secs(5));
    assert_eq!(state(&b), "active");
    assert_eq!(vr1(&a).1, 0, "A withdrew VR 1 when it drained");
    // The clone session is still open (no agent replaced it): give a change that
    // crossed it time to land.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        b.ctl(&["routes", "1"]).contains("10.77.0.0/24"),
        "A's changes after the guest left did not reach B: {}",
        b.ctl(&["routes", "1"])
    );
    assert!(
        b.ctl(&["neighbors", "1"]).contains("10.0.2.2 "),
        "A forgetting its neighbours did not reach B"
    );
    let rarps = announced
        .packets()
        .iter()
        .filter(|p| p["src_mac"] == VR1_ETH0)
        .count();
    assert!(rarps >= 5, "B announced VR 1 {rarps} times in 4 s");
}
