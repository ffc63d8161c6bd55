//! `xl migrate` of a router DomU between two real Xen 4.17 hosts (nested under
//! QEMU TCG): the testbed in testbed/xen/run.py. With vrfwd in each Dom0 (the
//! DomU's data vifs attached by hooks/vif-vrfwd, the migration run by
//! hooks/vrfwd-migrate) a 1 kpps stream through the router loses and duplicates
//! nothing, and it was forwarded by Dom0's vrfwd, not by the DomU; with Xen's
//! stock bridges the same migration loses packets. The testbed retries once on a
//! known emulation failure and removes its namespaces and QEMU hosts itself.
//!
//! Not in CI: run it with `cargo test --release --test xen -- --ignored` (≈ 30 min
//! for both modes). It passes on this machine when nothing else runs; while the
//! 2-core machine was also compiling and benchmarking, 3 of 3 vrfwd runs lost
//! 784–1 552 packets in one 0.8–1.4 s gap, located in one of them at the outer
//! switch (its tap to the stalled emulated host dropped exactly the lost packets;
//! the taps now queue 30 s and every report counts drops at each hop). A third of
//! the CI budget and a machine-load dependence keep it out of every CI run.
mod common;

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

/// Runs the testbed in `mode` and returns its JSON report.
fn xen_testbed(mode: &str) -> Value {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let bin = common::bin_dir();
    let out = std::env::temp_dir().join(format!("vrfwd-xen-{mode}.json"));
    let _ = std::fs::remove_file(&out);
    let status = Command::new("python3")
        .arg(root.join("testbed/xen/run.py"))
        .args(["--mode", mode, "--out"])
        .arg(&out)
        .arg("--bin")
        .arg(&bin)
        .status()
        .expect("run the Xen testbed");
    assert!(
        status.success(),
        "the Xen testbed ({mode}) failed: {status}"
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("testbed report"))
            .expect("testbed JSON");
    eprintln!("xen {mode}: {report:#}");
    report
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// The `vrfwd ctl vrs` line of VR 1 on host `h`: state, routes.
fn vr(report: &Value, h: &str) -> (String, u64) {
    let line = report[format!("vr_{h}")].as_array().expect("vr line");
    (
        line[2].as_str().unwrap().to_owned(),
        line[3].as_str().unwrap().parse().unwrap(),
    )
}

/// Who attached what after the migration: (port line mentions a vif netdev).
fn vifs_attached(report: &Value, h: &str) -> usize {
    report[format!("ports_{h}")]
        .as_array()
        .expect("ports")
        .iter()
        .filter(|l| {
            let l = l.as_str().unwrap();
            l.contains("vif of router") && !l.ends_with('-')
        })
        .count()
}

#[test]
#[ignore = "nested Xen under TCG, ≈ 30 min, needs an otherwise idle machine (issue 6)"]
fn xl_migrate_loses_nothing_with_vrfwd_in_dom0_and_packets_without() {
    let r = xen_testbed("vrfwd");
    let sent = n(&r["sent"]);
    assert!(sent > 10_000, "the stream ran through the migration: {r:#}");
    assert_eq!(n(&r["lost"]), 0, "nothing lost with vrfwd: {r:#}");
    assert_eq!(n(&r["duplicates"]), 0, "nothing forwarded twice: {r:#}");
    assert_eq!(r["domain_on_B"], true);
    assert_eq!(r["domain_on_A"], false);
    // The destination's vrfwd is active with the guest's routes and its vifs,
    // attached by vif-vrfwd; the source has drained and detached.
    let (state_b, _) = vr(&r, "B");
    assert_eq!(state_b, "active", "{r:#}");
    // B's table holds what A's held before (the clone, then the guest's resync),
    // the OSPF route to the receiver included.
    assert_eq!(r["routes_B"], r["routes_A_before"], "{r:#}");
    assert!(
        r["routes_B"]
            .as_array()
            .expect("routes")
            .contains(&Value::from("10.20.0.0/24")),
        "{r:#}"
    );
    assert_eq!(vr(&r, "A"), ("standby".to_owned(), 0), "{r:#}");
    assert_eq!(vifs_attached(&r, "B"), 2, "{r:#}");
    assert_eq!(vifs_attached(&r, "A"), 0, "{r:#}");
    // The stream was forwarded by the Dom0s' vrfwd, not by the DomU.
    let after = &r["counters"]["after"];
    let by_vrfwd = n(&after["A"]["vrfwd_forwarded"]) + n(&after["B"]["vrfwd_forwarded"]);
    assert!(
        by_vrfwd as f64 >= 0.95 * n(&r["received"]) as f64,
        "forwarded by vrfwd: {by_vrfwd} of {}: {r:#}",
        r["received"]
    );

    let stock = xen_testbed("stock");
    assert!(n(&stock["sent"]) > 10_000);
    assert!(
        n(&stock["lost"]) > 0,
        "the stock migration must lose packets, or the comparison proves nothing: {stock:#}"
    );
}
