//! Many VRs on one host, far past DPDK's 32 ports (docs/architecture.md,
//! "Vifs"): 300 VRs with two interfaces each, their 600 vifs attached at run
//! time as vrfwd's own sockets. Every VR forwards a packet on its fast path and
//! punts an ARP to its guest; vifs are detached and attached again while traffic
//! crosses every VR, and nothing forwarded is lost. Needs root.
//!
//!   {P}s (sender 10.0.0.2/16) ── {P}u0 ┐ vrfwd, one lcore: VR k eth0 10.0.x.y/16 on lan0,
//!   {P}r (receiver 10.1.0.2/16) ─ {P}u1 ┘   eth1 10.1.x.y/16 on lan1 (x.y from k)
//!   {P}g (every VR's guest ends a{k}, b{k}) ── {P}a{k}, {P}b{k} (the vifs)
mod common;

use common::client::Client;
use common::*;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use vrfwd::config::{Builder, VrBuilder};
use vrfwd_wire::MacAddr;

const P: &str = "sc";
const VRS: u32 = 300;
const CONTROL_PORT: u16 = 17741;
const RECEIVER: &str = "10.1.0.2";
const RECEIVER_MAC: &str = "02:00:00:00:bb:02";

/// VR `k`'s interface `i` (0: lan0, 1: lan1): its MAC and address.
fn iface(k: u32, i: u32) -> (MacAddr, String) {
    let mac = MacAddr([0x02, 0x10 + i as u8, 0, 0, (k >> 8) as u8, k as u8]);
    (mac, format!("10.{i}.{}.{}", 1 + k / 250, 1 + k % 250))
}

fn ns(n: &str) -> String {
    format!("{P}{n}")
}

/// `ip -batch` of `lines`, in namespace `netns` when given.
fn ip_batch(netns: Option<&str>, lines: &str) {
    let mut ip = Command::new("ip");
    if let Some(n) = netns {
        ip.args(["-n", n]);
    }
    let mut child = ip
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("ip -batch");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), lines.as_bytes()).unwrap();
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success(), "ip -batch failed");
}

/// The namespaces, links and vrfwd of this test; all removed on drop.
struct Host {
    config: std::path::PathBuf,
    targets: std::path::PathBuf,
    vrfwd: Option<Child>,
}

impl Host {
    fn up() -> Host {
        Host::down();
        let host = Host {
            config: std::env::temp_dir().join("vrfwd-scale.toml"),
            targets: std::env::temp_dir().join("vrfwd-scale-targets"),
            vrfwd: None,
        };
        for n in ["s", "r", "g"] {
            sh(Command::new("ip").args(["netns", "add", &ns(n)]));
            let sysctl = "net.ipv6.conf.default.disable_ipv6=1";
            sh(Command::new("ip").args(["netns", "exec", &ns(n), "sysctl", "-qw", sysctl]));
        }
        let mut root = String::new();
        let mut guests = String::from("link set lo up\n");
        for (end, n, mac) in [("u0", "s", "02:00:00:00:aa:02"), ("u1", "r", RECEIVER_MAC)] {
            root += &format!(
                "link add {P}{end} type veth peer name eth0 address {mac} netns {}\nlink set {P}{end} up\n",
                ns(n)
            );
        }
        for k in 1..=VRS {
            for (i, side) in ["a", "b"].iter().enumerate() {
                let (mac, _) = iface(k, i as u32);
                root += &format!(
                    "link add {P}{side}{k} type veth peer name {side}{k} address {mac} netns {}\nlink set {P}{side}{k} up\n",
                    ns("g")
                );
                guests += &format!("link set {side}{k} up\n");
            }
        }
        ip_batch(None, &root);
        ip_batch(Some(&ns("g")), &guests);
        for (n, addr) in [("s", "10.0.0.2/16"), ("r", "10.1.0.2/16")] {
            ip_batch(
                Some(&ns(n)),
                &format!("link set lo up\nlink set eth0 up\naddress add {addr} dev eth0\n"),
            );
        }
        host
    }

    fn down() {
        for n in ["s", "r", "g"] {
            let _ = Command::new("ip").args(["netns", "del", &ns(n)]).status();
        }
        let _ = std::fs::remove_file(format!("/run/vrfwd-{P}.sock"));
    }

    fn socket() -> String {
        format!("/run/vrfwd-{P}.sock")
    }

    /// Writes the config (VR k's interfaces on vifs a{k} and b{k}, no devices: they
    /// are attached at run time) and starts vrfwd.
    fn start(&mut self) {
        let mut b = Builder::new(0, &format!("vrfwd-{P}"), Host::socket())
            .idle(512, 200)
            .port("u0", Some(&format!("net_af_packet{P}u0,iface={P}u0")))
            .port("u1", Some(&format!("net_af_packet{P}u1,iface={P}u1")))
            .segment("lan0", "u0")
            .segment("lan1", "u1")
            .control(|c| c.listen = Some(([127, 0, 0, 1], CONTROL_PORT).into()));
        let mut targets = String::new();
        for k in 1..=VRS {
            b = b.port(&format!("a{k}"), None).port(&format!("b{k}"), None);
            let (mac0, addr0) = iface(k, 0);
            let (mac1, addr1) = iface(k, 1);
            b = b.vr(VrBuilder::new(k)
                .name(&format!("vr{k}"))
                .credential(&format!("scale-test-secret-{k:04}"))
                .interface(
                    "eth0",
                    mac0,
                    format!("{addr0}/16").parse().unwrap(),
                    "lan0",
                    &format!("a{k}"),
                )
                .interface(
                    "eth1",
                    mac1,
                    format!("{addr1}/16").parse().unwrap(),
                    "lan1",
                    &format!("b{k}"),
                )
                .neighbor(
                    RECEIVER.parse::<std::net::Ipv4Addr>().unwrap(),
                    RECEIVER_MAC.parse().unwrap(),
                ));
            targets += &format!("{mac0} {addr0}\n");
        }
        b.write(&self.config).expect("config");
        std::fs::write(&self.targets, targets).unwrap();
        self.vrfwd = Some(
            Command::new(env!("CARGO_BIN_EXE_vrfwd"))
                .args(["run", "-c"])
                .arg(&self.config)
                .stdout(Stdio::null())
                .spawn()
                .expect("start vrfwd"),
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.try_ctl(&["stats-json"]).is_err() {
            assert!(Instant::now() < deadline, "vrfwd did not come up");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn try_ctl(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(env!("CARGO_BIN_EXE_vrfwd"))
            .args(["ctl", "-s", &Host::socket()])
            .args(args)
            .output()
            .expect("vrfwd ctl");
        match out.status.success() {
            true => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
            false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
        }
    }

    fn ctl(&self, args: &[&str]) -> String {
        self.try_ctl(args)
            .unwrap_or_else(|e| panic!("vrfwd ctl {args:?}: {e}"))
    }

    fn stats(&self) -> vrfwd::stats::Snapshot {
        serde_json::from_str(&self.ctl(&["stats-json"])).expect("stats JSON")
    }

    fn attach(&self, k: u32, i: u32) {
        let (mac, _) = iface(k, i);
        let side = ["a", "b"][i as usize];
        let reply = self.ctl(&[
            "attach",
            &k.to_string(),
            &mac.to_string(),
            &format!("{P}{side}{k}"),
        ]);
        assert!(reply.contains("attached"), "{reply}");
    }

    fn detach(&self, k: u32, i: u32) {
        let side = ["a", "b"][i as usize];
        let reply = self.ctl(&["detach", &format!("{P}{side}{k}")]);
        assert!(reply.contains("detached"), "{reply}");
    }

    /// One packet through, and one ARP to, every VR, from the sender.
    fn sweep(&self) {
        sh(Command::new("ip")
            .args(["netns", "exec", &ns("s"), "/usr/bin/python3"])
            .arg(root().join("tests/helpers/pkt.py"))
            .args(["sweep", "eth0", RECEIVER])
            .arg(&self.targets));
    }

    fn rss_kib(&self) -> u64 {
        rss_kib(self.vrfwd.as_ref().expect("vrfwd runs").id())
    }

    /// VR `k`'s session, as its agent opens it, with its interfaces declared.
    fn session(&self, k: u32) -> Client {
        let declared: String = (0..2)
            .map(|i| {
                let (mac, addr) = iface(k, i);
                format!(r#"<interface name="eth{i}" mac="{mac}" address="{addr}/16"/>"#)
            })
            .collect();
        Client::session_v2(
            CONTROL_PORT,
            "127.0.0.1".parse().unwrap(),
            k,
            &format!("scale-test-secret-{k:04}"),
            &format!(r#"<interfaces seq="SEQ">{declared}</interfaces>"#),
        )
    }

    /// Frames each guest end a{k} has received (in VR order).
    fn guest_rx(&self) -> Vec<u64> {
        let out = sh(Command::new("ip").args(["-n", &ns("g"), "-s", "-j", "link", "show"]));
        let links: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
        (1..=VRS)
            .map(|k| {
                let l = links
                    .iter()
                    .find(|l| l["ifname"] == format!("a{k}"))
                    .expect("guest end");
                l["stats64"]["rx"]["packets"].as_u64().unwrap()
            })
            .collect()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(mut c) = self.vrfwd.take() {
            stop(&mut c);
        }
        Host::down();
        let _ = std::fs::remove_file(&self.config);
        let _ = std::fs::remove_file(&self.targets);
    }
}

#[test]
fn three_hundred_vrs_forward_and_punt_through_six_hundred_socket_vifs() {
    let mut h = Host::up();
    h.start();
    let t = Instant::now();
    for k in 1..=VRS {
        h.attach(k, 0);
        h.attach(k, 1);
    }
    eprintln!("600 vifs attached in {:.1} s", t.elapsed().as_secs_f64());
    let ports = h.ctl(&["ports"]);
    assert_eq!(
        ports
            .lines()
            .filter(|l| l.contains(&format!("{P}a")) || l.contains(&format!("{P}b")))
            .count(),
        2 * VRS as usize,
        "every vif attached"
    );

    let punted_arp = |s: &vrfwd::stats::Snapshot| -> Vec<u64> {
        s.vrs.iter().map(|v| punted(v, "arp")).collect()
    };
    let before = h.stats();
    let rx_before = h.guest_rx();
    h.sweep();
    std::thread::sleep(Duration::from_millis(500));
    let after = h.stats();
    let rx_after = h.guest_rx();
    for (k, (b, a)) in before.vrs.iter().zip(&after.vrs).enumerate() {
        assert!(a.forwarded > b.forwarded, "VR {} forwarded nothing", k + 1);
    }
    let (pb, pa) = (punted_arp(&before), punted_arp(&after));
    for k in 0..VRS as usize {
        assert!(
            pa[k] > pb[k],
            "VR {} punted no ARP: {:?}",
            k + 1,
            after.vrs[k].punted
        );
        assert!(
            rx_after[k] > rx_before[k],
            "VR {}'s guest got nothing",
            k + 1
        );
    }

    // Vifs of 30 VRs detached and attached again while every VR forwards: the
    // fast path does not need them, and the guests are reachable afterwards.
    let before = h.stats();
    std::thread::scope(|s| {
        s.spawn(|| h.sweep());
        for k in (1..=VRS).step_by(10) {
            h.detach(k, 0);
            h.detach(k, 1);
            h.attach(k, 0);
            h.attach(k, 1);
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let after = h.stats();
    for (k, (b, a)) in before.vrs.iter().zip(&after.vrs).enumerate() {
        assert_eq!(
            a.forwarded - b.forwarded,
            1,
            "VR {} during the churn",
            k + 1
        );
    }
    let rx_before = h.guest_rx();
    h.sweep();
    std::thread::sleep(Duration::from_millis(500));
    let rx_after = h.guest_rx();
    for k in 0..VRS as usize {
        assert!(
            rx_after[k] > rx_before[k],
            "VR {}'s guest after the churn",
            k + 1
        );
    }

    // A VR with 100 routes costs at most 1 MiB (docs/benchmarks.md, "Scale"),
    // counted from above: the whole host's RSS shared out among its VRs (the
    // mempool included), plus what VR 1's 100 routes from its agent add.
    let share = h.rss_kib() / u64::from(VRS);
    let before = h.rss_kib();
    let mut agent = h.session(1);
    let routes: String = (0..100)
        .map(|i| format!(r#"<add prefix="20.{i}.0.0/24" via="{RECEIVER}" interface="eth1"/>"#))
        .collect();
    agent.ok(&format!(r#"<routes seq="SEQ">{routes}</routes>"#));
    std::thread::sleep(Duration::from_millis(500));
    let added = h.rss_kib().saturating_sub(before);
    eprintln!("a VR's share of the host: {share} KiB; 100 routes: +{added} KiB");
    assert!(
        share + added <= 1024,
        "a 100-route VR costs {share} + {added} KiB"
    );
    let out = h.ctl(&["routes", "1"]);
    assert!(out.contains("20.99.0.0/24"), "{out}");
}
