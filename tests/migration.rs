//! Zero-loss migration, end to end (docs/migration.md): the testbed (testbed/migration.py)
//! builds hosts A and C, a switch, a sender, a receiver behind an OSPF neighbour,
//! and a dual-stack virtual-router guest running BIRD (OSPFv2 and OSPFv3) and
//! vrfwd-agent; it migrates the guest A→C→A→C while a 10 kpps IPv4 and a 5 kpps
//! IPv6 sequence-numbered stream and iperf3 cross it. With vrfwd on the hosts
//! nothing of either family may be lost or duplicated; the stock set-up (the
//! guest forwarding in its own kernel, its vifs bridged) must lose packets in the
//! same conditions, or the experiment proves nothing. The testbed removes its
//! namespaces, processes and QEMU guests itself, also when a run fails.
mod common;

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

/// Runs the testbed and returns its JSON report.
fn testbed(mode: &str, guest: &str, extra: &[&str]) -> Value {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let bin = common::bin_dir();
    let out = std::env::temp_dir().join(format!("vrfwd-migration-{mode}-{guest}.json"));
    let status = Command::new("python3")
        .arg(root.join("testbed/migration.py"))
        .args(["--mode", mode, "--guest", guest, "--out"])
        .arg(&out)
        .arg("--bin")
        .arg(&bin)
        .args(["--prefix", "mt", "--work"])
        .arg(std::env::temp_dir().join("vrfwd-testbed"))
        .args(extra)
        .status()
        .expect("run the testbed");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("testbed report"))
            .expect("testbed JSON");
    std::fs::remove_file(&out).ok();
    eprintln!(
        "testbed {mode}/{guest}: exit {status}, errors {}",
        report["errors"]
    );
    report
}

/// The testbed again if the first run hit the known TCG failure: the guest
/// panicking after a migration (≈ 1 in 50 here, see the QEMU recipe's notes).
fn testbed_retrying_panics(mode: &str, guest: &str, extra: &[&str]) -> Value {
    let report = testbed(mode, guest, extra);
    let panicked = report["errors"].as_array().is_some_and(|e| {
        e.iter()
            .any(|e| e.as_str().unwrap_or("").contains("panicked"))
    });
    if panicked {
        eprintln!("the guest panicked under TCG (known emulation failure): retrying once");
        return testbed(mode, guest, extra);
    }
    report
}

fn migrations(report: &Value) -> &Vec<Value> {
    report["migrations"].as_array().expect("migrations")
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// What tells where a migration's packets of `stream` (the migration's IPv4
/// figures, or its "ipv6" ones) were lost: the sender's report, the receiver's
/// wire (when its last packet came, relative to the migration), the cut-over as
/// the switch saw it and each host's VR counters.
fn loss_facts(m: &Value, stream: &Value) -> String {
    let wire = &stream["wire"];
    let started = m["migration_started_unix"].as_f64().unwrap_or(0.0);
    let last = wire["first_unix_s"].as_f64().unwrap_or(0.0)
        + wire["per_ms"].as_array().map_or(0, |p| p.len()) as f64 / 1000.0;
    format!(
        "sender {}; on the receiver's wire {} packets in {} gaps, the last {:.2} s after \
         the migration started (it took {} s); cut-over {}; stats {}",
        stream["sender"],
        wire["packets"],
        wire["gaps"].as_array().map_or(0, |g| g.len()),
        last - started,
        m["migration_s"],
        m["cutover"],
        m["stats"],
    )
}

/// vrfwd's run: every migration loses and duplicates nothing (our stream and
/// iperf3), the destination is active and the source has let the VR go; a route
/// BIRD learns after the first migration reaches the new host's table; an
/// aborted migration leaves the VR active on its host and nothing on the other.
fn check_vrfwd(report: &Value, expected: usize) {
    assert_eq!(report["errors"], serde_json::json!([]), "{report:#}");
    let runs = migrations(report);
    assert_eq!(
        runs.len(),
        expected + 1,
        "{expected} migrations and one aborted"
    );
    for m in runs {
        let (from, to) = (m["from"].as_str().unwrap(), m["to"].as_str().unwrap());
        let what = format!("migration {} {from}→{to}", m["index"]);
        for (family, stream) in [("IPv4", m), ("IPv6", &m["ipv6"])] {
            assert!(n(&stream["sent"]) > 0, "{what}: no {family} sent");
            assert_eq!(
                n(&stream["lost"]),
                0,
                "{what}: {family} packets lost; {}",
                loss_facts(m, stream)
            );
            assert_eq!(
                n(&stream["duplicates"]),
                0,
                "{what}: {family} packets duplicated"
            );
        }
        assert_eq!(n(&m["iperf3"]["lost"]), 0, "{what}: iperf3 lost packets");
        assert_eq!(
            m["standby_on_destination"][0], "standby",
            "{what}: the destination held the clone in standby"
        );
        let aborted = m["aborted"].as_bool().unwrap();
        if !aborted {
            assert_eq!(
                m["cutover"]["announced"], true,
                "{what}: the destination announced the VR"
            );
            assert_eq!(
                m["cutover"]["source_frames_after_reaction"], 0,
                "{what}: the source sent from the VR's MACs after the cut-over: {}",
                m["cutover"]
            );
        }
        let (stays, leaves) = if aborted { (from, to) } else { (to, from) };
        assert_eq!(m["after"][stays][0], "active", "{what}: {m:#}");
        assert_eq!(m["after"][leaves][0], "standby", "{what}: {m:#}");
        assert_eq!(m["after"][leaves][1], 0, "{what}: routes left behind");
    }
    assert_eq!(
        report["route_change"]["reached_table"], true,
        "a route BIRD learned after the migration reached the new host: {}",
        report["route_change"]
    );
}

fn check_stock_loses(report: &Value) {
    assert_eq!(report["errors"], serde_json::json!([]), "{report:#}");
    let lost: u64 = migrations(report).iter().map(|m| n(&m["lost"])).sum();
    assert!(
        lost > 0,
        "the stock set-up lost nothing: the baseline is void"
    );
}

#[test]
fn namespace_guest_migrates_without_loss_and_stock_loses() {
    check_vrfwd(
        &testbed(
            "vrfwd",
            "netns",
            // The guest is out of the data path: vrfwd runs at twice the rate the
            // stock guest sustains.
            &[
                "--migrations",
                "3",
                "--abort",
                "--route-change",
                "--pps",
                "20000",
            ],
        ),
        3,
    );
    check_stock_loses(&testbed("stock", "netns", &["--migrations", "2"]));
}

#[test]
fn qemu_guest_migrates_without_loss_and_stock_loses() {
    check_vrfwd(
        &testbed_retrying_panics(
            "vrfwd",
            "qemu",
            &["--migrations", "3", "--abort", "--route-change"],
        ),
        3,
    );
    check_stock_loses(&testbed_retrying_panics(
        "stock",
        "qemu",
        &["--migrations", "3"],
    ));
}
