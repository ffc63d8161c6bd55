//! vrfwd-agent in a guest namespace against a running vrfwd: routes installed in
//! the guest kernel reach the VR's table and the fast path, withdrawals follow,
//! a killed and restarted agent resyncs to exactly the kernel's routes while
//! unchanged prefixes keep forwarding, and an agent whose clock steps back a day
//! still reconnects. Needs root.
mod common;

use common::guest::{Agent, AgentFiles};
use common::*;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The agent under `clock`, its log (without colours) in `log`.
fn agent_on_clock(
    t: &Topology,
    config: &std::path::Path,
    clock: &SteppedClock,
    log: &std::path::Path,
) -> Agent {
    let mut ip = Command::new("ip");
    ip.envs(clock.env())
        .env("NO_COLOR", "1")
        .stderr(std::fs::File::create(log).unwrap());
    Agent::spawn(t, config, ip)
}

/// The guest's wall clock as the agent sees it (libfaketime, package faketime):
/// true at first, stepped at run time by rewriting the offset file; monotonic
/// time is left alone.
struct SteppedClock {
    file: std::path::PathBuf,
}

impl SteppedClock {
    const LIB: &'static str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

    fn new(dir: &std::path::Path) -> SteppedClock {
        assert!(
            std::path::Path::new(Self::LIB).exists(),
            "{} is missing: scripts/setup.sh installs faketime",
            Self::LIB
        );
        let clock = SteppedClock {
            file: dir.join("clock"),
        };
        clock.step("+0");
        clock
    }

    /// Sets the offset from the true time (libfaketime's syntax: "-1d").
    fn step(&self, offset: &str) {
        std::fs::write(&self.file, offset).unwrap();
    }

    fn env(&self) -> [(&'static str, std::ffi::OsString); 4] {
        [
            ("LD_PRELOAD", Self::LIB.into()),
            ("FAKETIME_TIMESTAMP_FILE", self.file.clone().into()),
            ("FAKETIME_NO_CACHE", "1".into()),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1".into()),
        ]
    }
}

/// The agent log's "synced with vrfwd" lines: (timestamp, generation) each.
fn syncs(log: &std::path::Path) -> Vec<(String, u64)> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter(|l| l.contains("synced with vrfwd"))
        .map(|l| {
            let stamp = l.split_whitespace().next().unwrap().to_string();
            let generation = l
                .split_whitespace()
                .find_map(|w| w.strip_prefix("generation="))
                .expect("the generation is logged")
                .parse()
                .unwrap();
            (stamp, generation)
        })
        .collect()
}

/// Waits until `check` holds (up to 10 s); returns how long it took.
fn eventually(what: &str, check: impl Fn() -> bool) -> Duration {
    eventually_within(what, Duration::from_secs(10), check)
}

fn eventually_within(what: &str, limit: Duration, check: impl Fn() -> bool) -> Duration {
    eventually_showing(what, limit, check, String::new)
}

/// As [`eventually_within`]; a timeout also shows what `state` reports then.
fn eventually_showing(
    what: &str,
    limit: Duration,
    check: impl Fn() -> bool,
    state: impl Fn() -> String,
) -> Duration {
    let start = Instant::now();
    while !check() {
        if start.elapsed() >= limit {
            panic!("timed out waiting for {what}\n{}", state());
        }
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
    let files = AgentFiles::new(
        &t,
        17721,
        "keepalive_ms = 500\ncoalesce_ms = 5\nreconnect_max_ms = 500\n",
    );
    let config = files.config.clone();
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

    // The guest's neighbours are exported too (vrfwd also snoops ARP).
    t.exec(
        "g",
        &[
            "ip",
            "neigh",
            "replace",
            "10.0.2.50",
            "lladdr",
            "02:00:00:00:bb:50",
            "dev",
            "g1",
            "nud",
            "permanent",
        ],
    );
    eventually("the neighbour on the host", || {
        t.ctl(&["neighbors", "1"])
            .contains("10.0.2.50 dev eth1 lladdr 02:00:00:00:bb:50")
    });

    // Two routes of one prefix, metrics 10 and 20, added in either order: the
    // host forwards by the lower, and when it goes the other replaces it without
    // the prefix ever missing from the host's table.
    let ip_route = |verb: &str, via: &str, metric: &str| {
        let route = [
            "ip",
            "route",
            verb,
            "10.75.0.0/16",
            "via",
            via,
            "metric",
            metric,
        ];
        t.exec("g", &[&route[..], &["proto", "static"]].concat());
    };
    for order in [
        [("10.0.2.2", "10"), ("10.0.2.50", "20")],
        [("10.0.2.50", "20"), ("10.0.2.2", "10")],
    ] {
        for (via, metric) in order {
            ip_route("add", via, metric);
        }
        eventually("the lower metric's route on the host", || {
            routes().contains("10.75.0.0/16 via 10.0.2.2 dev eth1")
        });
        let watching = std::sync::atomic::AtomicBool::new(true);
        let lapsed = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                while watching.load(std::sync::atomic::Ordering::Relaxed) {
                    if !routes().contains("10.75.0.0/16") {
                        lapsed.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
            ip_route("del", "10.0.2.2", "10");
            eventually("the other route on the host", || {
                routes().contains("10.75.0.0/16 via 10.0.2.50 dev eth1")
            });
            watching.store(false, std::sync::atomic::Ordering::Relaxed);
        });
        assert!(
            !lapsed.load(std::sync::atomic::Ordering::Relaxed),
            "the prefix never left the host's table"
        );
        ip_route("del", "10.0.2.50", "20");
        eventually("10.75/16 gone", || !routes().contains("10.75.0.0/16"));
    }

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
}

/// A BIRD daemon in a namespace; stopped on drop.
struct Bird {
    ns: String,
    pid_file: std::path::PathBuf,
}

impl Bird {
    fn start(t: &Topology, n: &str, conf: &str) -> Bird {
        let dir = std::env::temp_dir().join(format!("vrfwd-bird-{}", t.ns(n)));
        std::fs::create_dir_all(&dir).unwrap();
        let pid_file = dir.join("bird.pid");
        t.exec(
            n,
            &[
                "bird",
                "-c",
                root()
                    .join("tests/helpers/bird")
                    .join(conf)
                    .to_str()
                    .unwrap(),
                "-s",
                dir.join("bird.ctl").to_str().unwrap(),
                "-P",
                pid_file.to_str().unwrap(),
            ],
        );
        Bird {
            ns: t.ns(n),
            pid_file,
        }
    }
}

impl Bird {
    /// What `birdc show WHAT` answers.
    fn show(&self, what: &str) -> String {
        let ctl = self.pid_file.with_file_name("bird.ctl");
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, "birdc", "-s"])
            .arg(&ctl)
            .arg("show")
            .args(what.split_whitespace())
            .output()
            .expect("birdc");
        format!(
            "{} show {what}:\n{}",
            self.ns,
            String::from_utf8_lossy(&out.stdout)
        )
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.pid_file) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
        let _ = std::fs::remove_dir_all(self.pid_file.parent().unwrap());
        let _ = &self.ns;
    }
}

#[test]
fn ospf_routes_learned_by_bird_reach_the_host() {
    let mut t = Topology::up_with("vo", 1, &[("CONTROL_PORT", "17722"), ("DUAL_STACK", "1")]);
    t.start();
    // The neighbour router (the receiver namespace) announces 10.88.0.0/16 over
    // OSPFv2 and 2001:db8:88::/48 over OSPFv3.
    // (a veth pair: this kernel has no dummy driver)
    t.exec(
        "r",
        &[
            "ip", "link", "add", "nbr0", "type", "veth", "peer", "name", "nbr1",
        ],
    );
    t.exec("r", &["ip", "link", "set", "nbr1", "up"]);
    t.exec("r", &["ip", "addr", "add", "10.88.0.1/16", "dev", "nbr0"]);
    t.exec(
        "r",
        &[
            "ip",
            "-6",
            "addr",
            "add",
            "2001:db8:88::1/48",
            "dev",
            "nbr0",
        ],
    );
    t.exec("r", &["ip", "link", "set", "nbr0", "up"]);
    let _neighbor = Bird::start(&t, "r", "neighbor.conf");
    // A second neighbour router on the guest's other segment announces 10.87.0.0/16.
    t.exec(
        "s",
        &[
            "ip", "link", "add", "nbr0", "type", "veth", "peer", "name", "nbr1",
        ],
    );
    t.exec("s", &["ip", "link", "set", "nbr1", "up"]);
    t.exec("s", &["ip", "addr", "add", "10.87.0.1/16", "dev", "nbr0"]);
    t.exec("s", &["ip", "link", "set", "nbr0", "up"]);
    let _neighbor2 = Bird::start(&t, "s", "neighbor2.conf");
    let _guest = Bird::start(&t, "g", "guest.conf");
    let files = AgentFiles::new(&t, 17722, "");
    let config = files.config.clone();
    let _agent = Agent::start(&t, &config);
    let routes = || t.ctl(&["routes", "1"]);
    // OSPF adjacency (hello 1 s), SPF, kernel, agent, vrfwd.
    let took = eventually_within(
        "10.88/16 learned by OSPF on the host",
        Duration::from_secs(40),
        || routes().contains("10.88.0.0/16 via 10.0.2.2 dev eth1"),
    );
    eprintln!("OSPF route on the host after {took:?}");
    eventually_within(
        "10.87/16 from the second neighbour",
        Duration::from_secs(40),
        || routes().contains("10.87.0.0/16 via 10.0.1.2 dev eth0"),
    );
    // Forwarded on the fast path to the neighbour (which owns 10.88.0.1).
    t.exec(
        "s",
        &["ping", "-c", "2", "-i", "0.2", "-W", "2", "10.0.2.2"],
    );
    let before = t.vr(1).forwarded;
    t.exec(
        "s",
        &["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.88.0.1"],
    );
    assert!(t.vr(1).forwarded - before >= 3);
    // OSPFv3: the route through the neighbour's link-local address, its neighbour
    // entry (the guest kernel's, exported), and the fast path.
    let via = "2001:db8:88::/48 via fe80::ff:fe00:bb02 dev eth1";
    let took = eventually_within(
        "2001:db8:88::/48 learned by OSPFv3 on the host",
        Duration::from_secs(40),
        || routes().contains(via),
    );
    eprintln!("OSPFv3 route on the host after {took:?}");
    // The agent's session holds: nothing it exports (OSPF's multicast neighbour
    // entries included) is refused.
    let sessions = t.ctl(&["sessions"]);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(t.ctl(&["sessions"]), sessions, "the agent reconnected");
    let before = t.vr(1).forwarded;
    t.exec(
        "s",
        &[
            "ping",
            "-6",
            "-c",
            "3",
            "-i",
            "0.2",
            "-W",
            "2",
            "2001:db8:88::1",
        ],
    );
    assert!(
        t.vr(1).forwarded - before >= 3,
        "forwarded {} (neighbours: {})",
        t.vr(1).forwarded - before,
        t.ctl(&["neighbors", "1"])
    );
    // The neighbour's link to the guest goes down: the adjacency dies (dead 4 s),
    // OSPF withdraws, and so does the host.
    t.exec("r", &["ip", "link", "set", "eth0", "down"]);
    eventually_within("10.88/16 withdrawn", Duration::from_secs(20), || {
        !routes().contains("10.88.0.0/16")
    });
    eventually_within(
        "2001:db8:88::/48 withdrawn",
        Duration::from_secs(20),
        || !routes().contains("2001:db8:88::/48"),
    );
    assert!(
        routes().contains("10.87.0.0/16"),
        "the other neighbour's prefix stays"
    );
    t.exec("r", &["ip", "link", "set", "eth0", "up"]);
    eventually_within("10.88/16 back", Duration::from_secs(20), || {
        routes().contains("10.88.0.0/16")
    });
}

#[test]
fn agent_resyncs_after_a_host_restart_and_an_outage_across_a_clock_step() {
    let mut t = Topology::up_with(
        "vu",
        1,
        &[
            ("CONTROL_PORT", "17723"),
            ("HOLD_TIME_S", "3"),
            ("IDLE_TIMEOUT_S", "2"),
            ("KEEPALIVE_S", "1"),
        ],
    );
    t.start();
    let files = AgentFiles::new(
        &t,
        17723,
        "keepalive_ms = 500\nhost_timeout_ms = 2000\nreconnect_max_ms = 500\n",
    );
    let config = files.config.clone();
    let clock = SteppedClock::new(&files.dir);
    let log = files.dir.join("agent.log");
    t.exec(
        "g",
        &[
            "ip",
            "route",
            "add",
            "10.66.0.0/16",
            "via",
            "10.0.2.2",
            "proto",
            "static",
        ],
    );
    let _agent = agent_on_clock(&t, &config, &clock, &log);
    let routes = |t: &Topology| {
        t.try_stats()
            .map(|_| t.ctl(&["routes", "1"]))
            .unwrap_or_default()
    };
    eventually("the first sync", || routes(&t).contains("10.66.0.0/16"));

    // The host restarts: it comes back with vrfwd's own routes only, and the
    // agent's resync brings the guest's back.
    t.stop();
    t.start();
    eventually("resync after a host restart", || {
        routes(&t).contains("10.66.0.0/16 via 10.0.2.2 dev eth1")
    });

    // The guest's clock steps back a day (as after a migration to a host whose
    // time differs), then the host is unreachable for longer than the hold time:
    // vrfwd drops the silent session (idle 2 s), holds (3 s), withdraws the fast
    // path; the agent reconnects and resyncs once the control link is back, its
    // hello accepted whatever its clock says (the host hands out generations).
    let before_step = syncs(&log).last().expect("synced").1;
    clock.step("-1d");
    t.exec("g", &["ip", "link", "set", "ctl0", "down"]);
    eventually_within(
        "withdrawal after the hold time",
        Duration::from_secs(15),
        || t.vr(1).routes == 0,
    );
    t.exec("g", &["ip", "link", "set", "ctl0", "up"]);
    eventually_within("resync after the outage", Duration::from_secs(15), || {
        routes(&t).contains("10.66.0.0/16 via 10.0.2.2 dev eth1")
    });
    let before = t.vr(1).forwarded;
    t.exec(
        "s",
        &["ping", "-c", "2", "-i", "0.2", "-W", "2", "10.0.2.2"],
    );
    t.send("s", "eth0", VR1_ETH0, "10.66.1.1", 3, 64);
    assert!(t.vr(1).forwarded - before >= 3, "the fast path is back");
    let yesterday = Command::new("date")
        .args(["-u", "-d", "yesterday", "+%F"])
        .output()
        .unwrap();
    let yesterday = String::from_utf8(yesterday.stdout).unwrap();
    let (stamp, after_step) = syncs(&log).last().cloned().unwrap();
    assert!(
        stamp.starts_with(yesterday.trim()),
        "the agent's clock was stepped back a day: {stamp}"
    );
    assert!(
        after_step > before_step,
        "generations go on rising across the step: {before_step} then {after_step}"
    );
}

/// FRR's zebra and staticd in a namespace; stopped on drop (zebra then removes
/// its routes from the kernel).
struct Frr {
    dir: std::path::PathBuf,
}

impl Frr {
    fn start(t: &Topology, n: &str, staticd_conf: &str) -> Frr {
        let dir = std::env::temp_dir().join(format!("vrfwd-frr-{}", t.ns(n)));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("zebra.conf"), "hostname guest\n").unwrap();
        std::fs::write(dir.join("staticd.conf"), staticd_conf).unwrap();
        sh(Command::new("chown").args(["-R", "frr:frr"]).arg(&dir));
        let d = |f: &str| dir.join(f).to_str().unwrap().to_owned();
        for daemon in ["zebra", "staticd"] {
            t.exec(
                n,
                &[
                    &format!("/usr/lib/frr/{daemon}"),
                    "-d",
                    "-N",
                    &t.ns(n),
                    "-f",
                    &d(&format!("{daemon}.conf")),
                    "-i",
                    &d(&format!("{daemon}.pid")),
                    "-z",
                    &d("zserv.api"),
                    "--vty_socket",
                    &d(""),
                ],
            );
        }
        Frr { dir }
    }
}

impl Drop for Frr {
    fn drop(&mut self) {
        for daemon in ["staticd", "zebra"] {
            if let Ok(pid) = std::fs::read_to_string(self.dir.join(format!("{daemon}.pid"))) {
                let _ = Command::new("kill").arg(pid.trim()).status();
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn frr_static_routes_reach_the_host() {
    let mut t = Topology::up_with("vz", 1, &[("CONTROL_PORT", "17724")]);
    t.start();
    let files = AgentFiles::new(&t, 17724, "");
    let config = files.config.clone();
    let _agent = Agent::start(&t, &config);
    let routes = || t.ctl(&["routes", "1"]);
    let frr = Frr::start(&t, "g", "hostname guest\nip route 10.99.0.0/16 10.0.2.2\n");
    eventually_within(
        "FRR's static route on the host",
        Duration::from_secs(20),
        || routes().contains("10.99.0.0/16 via 10.0.2.2 dev eth1"),
    );
    t.exec(
        "s",
        &["ping", "-c", "2", "-i", "0.2", "-W", "2", "10.0.2.2"],
    );
    let before = t.vr(1).forwarded;
    t.send("s", "eth0", VR1_ETH0, "10.99.1.1", 3, 64);
    assert!(t.vr(1).forwarded - before >= 3, "forwarded by vrfwd");
    // FRR stops: zebra takes its routes out of the kernel, the host follows.
    drop(frr);
    eventually_within("FRR's route withdrawn", Duration::from_secs(20), || {
        !routes().contains("10.99.0.0/16")
    });
}

/// Two neighbour routers beside the receiver on VR 1's eth1 segment, and a host
/// behind both: the receiver's eth0 joins a bridge with a link to router a
/// (10.0.2.3) and one to router b (10.0.2.4); host x reaches a over xa
/// (10.66.1.0/30) and b over xb (10.66.2.0/30), and owns 10.66.0.1/24 on its
/// nbr0. All of it inside the topology's namespaces (removed with it).
fn two_neighbours(t: &Topology) {
    for n in ["a", "b", "x"] {
        sh(Command::new("ip").args(["netns", "add", &t.ns(n)]));
        t.exec(n, &["ip", "link", "set", "lo", "up"]);
        for key in ["all", "default"] {
            t.exec(
                n,
                &["sysctl", "-qw", &format!("net.ipv4.conf.{key}.rp_filter=0")],
            );
        }
    }
    // veth NS_A IF_A NS_B IF_B: a link between two of the namespaces.
    let link = |na: &str, ia: &str, nb: &str, ib: &str| {
        sh(Command::new("ip").args([
            "link",
            "add",
            ia,
            "netns",
            &t.ns(na),
            "type",
            "veth",
            "peer",
            "name",
            ib,
            "netns",
            &t.ns(nb),
        ]));
        for (n, i) in [(na, ia), (nb, ib)] {
            let _ = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &t.ns(n),
                    "ethtool",
                    "-K",
                    i,
                    "tx",
                    "off",
                    "rx",
                    "off",
                ])
                .output();
            t.exec(n, &["ip", "link", "set", i, "up"]);
        }
    };
    t.exec("r", &["ip", "link", "add", "br0", "type", "bridge"]);
    t.exec("r", &["ip", "addr", "del", "10.0.2.2/24", "dev", "eth0"]);
    t.exec("r", &["ip", "link", "set", "eth0", "master", "br0"]);
    t.exec("r", &["ip", "link", "set", "br0", "up"]);
    t.exec("r", &["ip", "addr", "add", "10.0.2.2/24", "dev", "br0"]);
    t.exec("r", &["ip", "route", "add", "default", "via", "10.0.2.1"]);
    for (n, mac, addr, x_addr, x_link) in [
        (
            "a",
            "02:00:00:00:bb:03",
            "10.0.2.3/24",
            "10.66.1.1/30",
            "xa",
        ),
        (
            "b",
            "02:00:00:00:bb:04",
            "10.0.2.4/24",
            "10.66.2.1/30",
            "xb",
        ),
    ] {
        let port = format!("br{n}");
        link("r", &port, n, "eth0");
        t.exec("r", &["ip", "link", "set", &port, "master", "br0"]);
        t.exec(n, &["ip", "link", "set", "eth0", "address", mac]);
        t.exec(n, &["ip", "addr", "add", addr, "dev", "eth0"]);
        t.exec(n, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        link(n, x_link, "x", x_link);
        t.exec(n, &["ip", "addr", "add", x_addr, "dev", x_link]);
    }
    t.exec("x", &["ip", "addr", "add", "10.66.1.2/30", "dev", "xa"]);
    t.exec("x", &["ip", "addr", "add", "10.66.2.2/30", "dev", "xb"]);
    // (a veth pair: this kernel has no dummy driver)
    link("x", "nbr0", "x", "nbr1");
    t.exec("x", &["ip", "addr", "add", "10.66.0.1/24", "dev", "nbr0"]);
}

/// `tests/helpers/flows.py receive` in namespace `n`; killed on drop.
struct FlowReceiver(Child, std::io::BufReader<std::process::ChildStdout>);

impl FlowReceiver {
    fn start(t: &Topology, n: &str, port: u16, secs: u32) -> FlowReceiver {
        use std::io::BufRead;
        let mut child = Command::new("ip")
            .args(["netns", "exec", &t.ns(n), "/usr/bin/python3"])
            .arg(root().join("tests/helpers/flows.py"))
            .args(["receive", &port.to_string(), &secs.to_string()])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start the flow receiver");
        let mut out = std::io::BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        out.read_line(&mut line).expect("receiver output");
        assert_eq!(line.trim(), "READY", "the flow receiver did not start");
        FlowReceiver(child, out)
    }

    /// Per flow (source port): what arrived, once the receiver stopped.
    fn flows(mut self) -> std::collections::BTreeMap<String, serde_json::Value> {
        use std::io::Read;
        let mut out = String::new();
        self.1.read_to_string(&mut out).expect("receiver output");
        serde_json::from_str(&out).expect("receiver JSON")
    }
}

impl Drop for FlowReceiver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `flows.py send` of `flows` flows to `dst`:5353 from namespace `n`, 50
/// rounds a second for `secs` seconds; killed on drop, waited by `wait`.
struct FlowSender(Child);

impl FlowSender {
    fn start(t: &Topology, n: &str, dst: &str, flows: u32, secs: f64) -> FlowSender {
        let child = Command::new("ip")
            .args(["netns", "exec", &t.ns(n), "/usr/bin/python3"])
            .arg(root().join("tests/helpers/flows.py"))
            .args([
                "send",
                dst,
                "5353",
                &flows.to_string(),
                "50",
                &secs.to_string(),
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start the flow sender");
        FlowSender(child)
    }

    /// Waits for the end; returns how many packets each flow sent.
    fn wait(mut self) -> u64 {
        use std::io::Read;
        let mut out = String::new();
        let stdout = self.0.stdout.as_mut().expect("piped");
        stdout.read_to_string(&mut out).expect("sender output");
        let sent: serde_json::Value = serde_json::from_str(&out).expect("sender JSON");
        sent["sent"].as_u64().expect("a count")
    }
}

impl Drop for FlowSender {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// 64 flows for 2 s from the sender to `dst`, received on x: each keeps one
/// path, loses nothing and stays in order. Returns, per interface of x, the
/// flows and packets that came in on it.
fn spread_flows(t: &Topology, dst: &str) -> std::collections::BTreeMap<String, (u64, u64)> {
    let receiver = FlowReceiver::start(t, "x", 5353, 30);
    let sent = FlowSender::start(t, "s", dst, 64, 2.0).wait();
    let flows = receiver.flows();
    assert_eq!(flows.len(), 64, "every flow arrived");
    let mut by_path = std::collections::BTreeMap::<String, (u64, u64)>::new();
    for (port, f) in &flows {
        let runs = runs(f);
        assert_eq!(runs.len(), 1, "flow {port} kept one path: {runs:?}");
        assert_eq!(
            f["received"].as_u64(),
            Some(sent),
            "flow {port} lost nothing"
        );
        assert_eq!(f["reordered"].as_u64(), Some(0), "flow {port} in order");
        let e = by_path.entry(runs[0].0.clone()).or_default();
        *e = (e.0 + 1, e.1 + runs[0].3);
    }
    by_path
}

/// Each flow's runs of packets by ingress interface: [[interface, first seq,
/// last seq, packets], ...].
fn runs(flow: &serde_json::Value) -> Vec<(String, u64, u64, u64)> {
    flow["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|r| {
            let n = |i: usize| r[i].as_u64().unwrap();
            (r[0].as_str().unwrap().to_owned(), n(1), n(2), n(3))
        })
        .collect()
}

/// The paths `ctl routes` lists under `prefix`: (next hop, packets).
fn host_paths(routes: &str, prefix: &str) -> Vec<(String, u64)> {
    let mut lines = routes.lines().skip_while(|l| !l.starts_with(prefix));
    let Some(head) = lines.next() else {
        return Vec::new();
    };
    if !head.ends_with("multipath") {
        return vec![(head[prefix.len()..].trim().to_owned(), 0)];
    }
    lines
        .take_while(|l| l.starts_with("    "))
        .map(|l| {
            let (hop, packets) = l.trim().split_once(" weight ").unwrap();
            let packets = packets.rsplit(' ').next().unwrap().parse().unwrap();
            (hop.to_owned(), packets)
        })
        .collect()
}

/// The guest kernel's next hops for `prefix` (`ip route` words after "via").
fn guest_paths(t: &Topology, prefix: &str) -> Vec<String> {
    let route = t.exec("g", &["ip", "route", "show", prefix]);
    let words: Vec<&str> = route.split_whitespace().collect();
    let mut vias: Vec<String> = words
        .windows(2)
        .filter(|w| w[0] == "via")
        .map(|w| format!("via {} dev eth1", w[1]))
        .collect();
    vias.sort();
    vias
}

const VIA_A: &str = "via 10.0.2.3 dev eth1";
const VIA_B: &str = "via 10.0.2.4 dev eth1";

/// Waits until the host holds both neighbours, so that no flow starts on the
/// other path while one is unresolved.
fn both_neighbours_resolved(t: &Topology) {
    eventually_within(
        "both neighbours on the host",
        Duration::from_secs(30),
        || {
            let n = t.ctl(&["neighbors", "1"]);
            n.contains("10.0.2.3 dev eth1") && n.contains("10.0.2.4 dev eth1")
        },
    );
}

#[test]
fn ospf_equal_cost_paths_spread_flows_and_follow_a_lost_neighbour() {
    let mut t = Topology::up_with("ve", 1, &[("CONTROL_PORT", "17725")]);
    t.start();
    two_neighbours(&t);
    let a = Bird::start(&t, "a", "ecmp.conf");
    let b = Bird::start(&t, "b", "ecmp.conf");
    let x = Bird::start(&t, "x", "ecmp.conf");
    let guest = Bird::start(&t, "g", "guest.conf");
    let files = AgentFiles::new(&t, 17725, "");
    let config = files.config.clone();
    let _agent = Agent::start(&t, &config);
    let prefix = "10.66.0.0/24";
    let paths = || host_paths(&t.ctl(&["routes", "1"]), prefix);
    let hops = || paths().into_iter().map(|(h, _)| h).collect::<Vec<_>>();
    let routers = [&a, &b, &x, &guest];
    let took = eventually_showing(
        "both OSPF paths on the host",
        Duration::from_secs(60),
        || hops() == [VIA_A, VIA_B],
        || {
            let mut state: Vec<String> = routers.iter().map(|r| r.show("ospf neighbors")).collect();
            state.push(guest.show(&format!("route {prefix} all")));
            state.push(t.ctl(&["routes", "1"]));
            state.join("\n")
        },
    );
    eprintln!("multipath route on the host after {took:?}");
    assert_eq!(
        guest_paths(&t, prefix),
        [VIA_A, VIA_B],
        "as the guest's kernel"
    );
    both_neighbours_resolved(&t);

    // 64 flows for 2 s: each keeps one path, both paths carry flows, nothing
    // is lost, and the host counted each path's packets.
    let by_path = spread_flows(&t, "10.66.0.1");
    eprintln!("flows (count, packets) per neighbour: {by_path:?}");
    let (on_a, on_b) = (by_path["xa"], by_path["xb"]);
    assert!(
        on_a.0 >= 16 && on_b.0 >= 16,
        "split across both: {by_path:?}"
    );
    assert_eq!(
        paths(),
        [(VIA_A.to_owned(), on_a.1), (VIA_B.to_owned(), on_b.1)],
        "the host's per-path counts"
    );

    // b's link goes down while 64 flows run: the guest's OSPF declares b dead
    // (4 s) and routes by a alone; the host follows. a's flows lose nothing
    // and stay in order; b's arrive by a afterwards.
    let receiver = FlowReceiver::start(&t, "x", 5353, 60);
    let sender = FlowSender::start(&t, "s", "10.66.0.1", 64, 14.0);
    std::thread::sleep(Duration::from_secs(2));
    t.exec("b", &["ip", "link", "set", "eth0", "down"]);
    let took = eventually_within(
        "the host's route by a alone",
        Duration::from_secs(20),
        || hops() == [VIA_A],
    );
    eprintln!("the host followed the lost neighbour after {took:?}");
    assert_eq!(guest_paths(&t, prefix), [VIA_A], "as the guest's kernel");
    let sent = sender.wait();
    let flows = receiver.flows();
    let (mut stayed, mut moved, mut lost) = (0, 0, 0);
    for (port, f) in &flows {
        let runs = runs(f);
        assert_eq!(
            f["reordered"].as_u64(),
            Some(0),
            "flow {port} in order: {runs:?}"
        );
        assert_eq!(f["duplicates"].as_u64(), Some(0), "flow {port}: {runs:?}");
        match runs[0].0.as_str() {
            "xa" => {
                stayed += 1;
                assert_eq!(runs.len(), 1, "a's flow {port} stayed on a: {runs:?}");
                assert_eq!(
                    f["received"].as_u64(),
                    Some(sent),
                    "a's flow {port} lost nothing"
                );
            }
            _ => {
                moved += 1;
                let last = runs.last().unwrap();
                assert_eq!(last.0, "xa", "b's flow {port} moved to a: {runs:?}");
                assert_eq!(
                    last.2 + 1,
                    sent,
                    "b's flow {port} arrives to its end: {runs:?}"
                );
                lost += sent - f["received"].as_u64().unwrap();
            }
        }
    }
    eprintln!("{stayed} flows stayed on a, {moved} moved from b, losing {lost} packets in all");
    assert!(
        stayed >= 16 && moved >= 16,
        "{stayed} flows stayed, {moved} moved"
    );

    // b comes back: the host follows the guest to both paths again.
    t.exec("b", &["ip", "link", "set", "eth0", "up"]);
    let took = eventually_within(
        "both paths back on the host",
        Duration::from_secs(40),
        || hops() == [VIA_A, VIA_B],
    );
    eprintln!("both paths back after {took:?}");
    assert_eq!(guest_paths(&t, prefix), [VIA_A, VIA_B]);
}

#[test]
fn frr_static_multipath_routes_reach_the_host_and_spread_flows() {
    let mut t = Topology::up_with("vn", 1, &[("CONTROL_PORT", "17726")]);
    t.start();
    two_neighbours(&t);
    for (n, via) in [("a", "10.66.1.2"), ("b", "10.66.2.2")] {
        t.exec(n, &["ip", "route", "add", "10.98.0.0/16", "via", via]);
    }
    t.exec("x", &["ip", "addr", "add", "10.98.0.1/32", "dev", "lo"]);
    let files = AgentFiles::new(&t, 17726, "");
    let config = files.config.clone();
    let _agent = Agent::start(&t, &config);
    // Two static paths of one prefix: zebra installs them as a nexthop group
    // (nexthop objects), which the kernel reports expanded.
    let _frr = Frr::start(
        &t,
        "g",
        "hostname guest\nip route 10.98.0.0/16 10.0.2.3\nip route 10.98.0.0/16 10.0.2.4\n",
    );
    let prefix = "10.98.0.0/16";
    let hops = || {
        host_paths(&t.ctl(&["routes", "1"]), prefix)
            .into_iter()
            .map(|(h, _)| h)
            .collect::<Vec<_>>()
    };
    eventually_within(
        "FRR's multipath route on the host",
        Duration::from_secs(20),
        || hops() == [VIA_A, VIA_B],
    );
    let guest = t.exec("g", &["ip", "route", "show", prefix]);
    assert!(
        guest.contains("nhid"),
        "zebra used a nexthop object: {guest}"
    );
    for gw in ["10.0.2.3", "10.0.2.4"] {
        t.exec("g", &["ping", "-c", "1", "-W", "2", gw]);
    }
    both_neighbours_resolved(&t);
    let on = spread_flows(&t, "10.98.0.1");
    eprintln!("flows (count, packets) per neighbour: {on:?}");
    assert!(
        on["xa"].0 >= 16 && on["xb"].0 >= 16,
        "spread over both paths: {on:?}"
    );
}
