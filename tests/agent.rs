//! vrfwd-agent in a guest namespace against a running vrfwd: routes installed in
//! the guest kernel reach the VR's table and the fast path, withdrawals follow,
//! and a killed and restarted agent resyncs to exactly the kernel's routes while
//! unchanged prefixes keep forwarding. Needs root.
mod common;

use common::*;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The agent process in the guest namespace; killed on drop.
struct Agent(Child);

impl Agent {
    fn start(t: &Topology, config: &std::path::Path) -> Agent {
        // Built with the workspace, beside the vrfwd binary.
        let bin = std::path::Path::new(env!("CARGO_BIN_EXE_vrfwd")).with_file_name("vrfwd-agent");
        assert!(
            bin.exists(),
            "{} is missing: build the workspace (cargo build --workspace)",
            bin.display()
        );
        let child = Command::new("ip")
            .args(["netns", "exec", &t.ns("g")])
            .arg(bin)
            .arg("-c")
            .arg(config)
            .spawn()
            .expect("start vrfwd-agent");
        Agent(child)
    }

    fn kill(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `check` holds (up to 10 s); returns how long it took.
fn eventually(what: &str, check: impl Fn() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

#[test]
fn agent_mirrors_the_guest_kernel() {
    let mut t = Topology::up_with("va", 1, &[("CONTROL_PORT", "17721"), ("HOLD_TIME_S", "30")]);
    t.start();
    t.exec(
        "s",
        &["ping", "-c", "2", "-i", "0.2", "-W", "2", "10.0.2.2"],
    );
    let dir = std::env::temp_dir().join("vrfwd-va-agent");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("credential"), "red-secret\n").unwrap();
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "host = \"10.255.0.1:17721\"\nvr = 1\ncredential_file = \"{}\"\ninterfaces = [\"g0\", \"g1\"]\nkeepalive_ms = 500\ncoalesce_ms = 5\nreconnect_max_ms = 500\n",
            dir.join("credential").display()
        ),
    )
    .unwrap();
    let routes = || t.ctl(&["routes", "1"]);
    let agent = Agent::start(&t, &config);
    eventually("the agent's session", || {
        t.ctl(&["sessions"]).lines().count() > 1
    });

    // A route the guest's kernel learns appears in the VR's table, and forwards.
    t.exec(
        "g",
        &[
            "ip",
            "route",
            "add",
            "10.77.0.0/16",
            "via",
            "10.0.2.2",
            "proto",
            "static",
        ],
    );
    let took = eventually("10.77/16 on the host", || {
        routes().contains("10.77.0.0/16 via 10.0.2.2 dev eth1")
    });
    eprintln!("route live on the host {took:?} after the kernel change");
    let before = t.vr(1).forwarded;
    let at_receiver = t.sniff("r", "eth0", 3, "udp");
    t.send("s", "eth0", VR1_ETH0, "10.77.1.1", 5, 64);
    assert_eq!(at_receiver.packets().len(), 5);
    assert!(
        t.vr(1).forwarded - before >= 5,
        "forwarded by vrfwd, not the guest"
    );

    // Withdrawn in the kernel, withdrawn on the host.
    t.exec("g", &["ip", "route", "del", "10.77.0.0/16"]);
    eventually("10.77/16 gone", || !routes().contains("10.77.0.0/16"));

    // Routes of other protocols than the exported ones stay in the guest.
    t.exec(
        "g",
        &[
            "ip",
            "route",
            "add",
            "10.79.0.0/16",
            "via",
            "10.0.2.2",
            "proto",
            "186",
            "table",
            "100",
        ],
    );

    // kill -9, a change while the agent is gone, a restart: the host converges to
    // exactly the kernel's routes, and an unchanged prefix never stops forwarding.
    t.exec(
        "g",
        &[
            "ip",
            "route",
            "add",
            "10.76.0.0/16",
            "via",
            "10.0.2.2",
            "proto",
            "static",
        ],
    );
    eventually("10.76/16 on the host", || routes().contains("10.76.0.0/16"));
    agent.kill();
    t.exec(
        "g",
        &[
            "ip",
            "route",
            "add",
            "10.78.0.0/16",
            "via",
            "10.0.2.2",
            "proto",
            "static",
        ],
    );
    t.exec("g", &["ip", "route", "del", "10.76.0.0/16"]);
    assert!(
        routes().contains("10.76.0.0/16"),
        "held during the hold time"
    );
    let before = t.vr(1).forwarded;
    t.send("s", "eth0", VR1_ETH0, "10.9.1.1", 3, 64);
    assert!(
        t.vr(1).forwarded - before >= 3,
        "unchanged prefixes forward while the agent is gone"
    );
    let _agent = Agent::start(&t, &config);
    eventually("the resync", || {
        let r = routes();
        r.contains("10.78.0.0/16 via 10.0.2.2 dev eth1") && !r.contains("10.76.0.0/16")
    });
    let r = routes();
    assert!(
        !r.contains("10.79.0.0/16"),
        "other tables and protocols are not exported: {r}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
