//! The in-tree generator (bench/trafgen, what bench/compare measures with) against
//! a real vrfwd over memif ports: of a trial with every other destination outside
//! the VR's table, the routed half comes back whole and in order, and the other
//! half is reported lost, packet for packet what vrfwd punted for want of a
//! route. A generator that could not see loss would measure nothing.
mod common;

use common::bin_dir;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};
use vrfwd::config::{Builder, VrBuilder};

const VR_ETH0: &str = "02:00:00:00:00:01";
const VR_ETH1: &str = "02:00:00:00:01:01";

/// A child process stopped on drop, also when the test fails.
struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        common::stop(&mut self.0);
    }
}

struct Trafgen {
    _child: Killed,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Trafgen {
    fn start(dir: &std::path::Path, memif: &str) -> Trafgen {
        let plan = json!({"size": "64", "src_mac": "02:00:00:00:aa:02", "src_ip": "10.0.0.2",
            "seed": 3, "vrs": [{"mac": VR_ETH0, "prefixes": ["20.1.0.0/16"]},
                               {"mac": VR_ETH0, "prefixes": ["30.0.0.0/16"]}]});
        let plan_path = dir.join("plan.json");
        std::fs::write(&plan_path, plan.to_string()).unwrap();
        let mut child = Command::new(bin_dir().join("vrfwd-trafgen"))
            .arg("--plan")
            .arg(&plan_path)
            .args(["--tx", "net_memif0", "--rx", "net_memif1", "--"])
            .args([
                "-l",
                "0",
                "--no-huge",
                "-m",
                "256",
                "--no-pci",
                "--no-shconf",
            ])
            .arg(format!("--file-prefix=trafgen-test-{}", std::process::id()))
            .arg(format!("--vdev=net_memif0,role=server,socket={memif},id=0"))
            .arg(format!("--vdev=net_memif1,role=server,socket={memif},id=1"))
            .arg("--log-level=*:warning")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("vrfwd-trafgen");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready");
        Trafgen {
            _child: Killed(child),
            stdin,
            stdout,
        }
    }

    fn trial(&mut self, pps: u64, seconds: f64) -> Value {
        writeln!(self.stdin, "trial {pps} {seconds} 300").unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap()
    }
}

fn vrfwd_config(dir: &std::path::Path, memif: &str) -> Builder {
    let prefix = format!("vrfwd-trafgen-test-{}", std::process::id());
    let gateway: Ipv4Addr = "10.1.0.2".parse().unwrap();
    Builder::new(1, &prefix, dir.join("vrfwd.sock"))
        .eal_arg("-m")
        .eal_arg("256")
        .eal_arg("--log-level=*:warning")
        .mbufs(16383)
        .port(
            "in",
            Some(&format!("net_memif0,role=client,socket={memif},id=0")),
        )
        .port(
            "out",
            Some(&format!("net_memif1,role=client,socket={memif},id=1")),
        )
        .port("vif0", Some("net_ring0"))
        .port("vif1", Some("net_ring1"))
        .segment("lan0", "in")
        .segment("lan1", "out")
        .vr(VrBuilder::new(1)
            .credential("trafgen-test-credential")
            .interface(
                "eth0",
                VR_ETH0.parse().unwrap(),
                "10.0.0.1/24".parse().unwrap(),
                "lan0",
                "vif0",
            )
            .interface(
                "eth1",
                VR_ETH1.parse().unwrap(),
                "10.1.0.1/24".parse().unwrap(),
                "lan1",
                "vif1",
            )
            .neighbor(gateway, "02:00:00:00:ee:02".parse().unwrap())
            .route("20.0.0.0/8".parse::<ipnet::Ipv4Net>().unwrap(), gateway))
}

#[test]
fn the_generator_measures_vrfwd_over_memif_and_sees_every_loss() {
    let dir = std::env::temp_dir().join(format!("vrfwd-trafgen-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let memif = dir.join("memif.sock").display().to_string();
    let config = dir.join("vrfwd.toml");
    vrfwd_config(&dir, &memif).write(&config).unwrap();
    let socket = dir.join("vrfwd.sock");
    let stats = || -> Option<vrfwd::stats::Snapshot> {
        let reply = vrfwd::control::request(&socket, "stats-json").ok()?;
        serde_json::from_str(&reply).ok()
    };

    // Every other frame to a destination inside the VR's 20.0.0.0/8, the others
    // outside every route (the plan's second "VR" is the same MAC with other
    // prefixes). The generator is the memif server: it starts first.
    let mut gen = Trafgen::start(&dir, &memif);
    let _vrfwd = Killed(
        Command::new(env!("CARGO_BIN_EXE_vrfwd"))
            .args(["run", "-c"])
            .arg(&config)
            .spawn()
            .expect("vrfwd"),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while gen.trial(10_000, 0.2)["received"] == 0 {
        assert!(Instant::now() < deadline, "memif never came up");
    }
    let before = common::punted(&stats().expect("vrfwd's stats").vrs[0], "no_route");
    // A modest rate: the memif ring (1024 frames) then covers 200 ms of an lcore
    // descheduled on a busy 2-core machine.
    let r = gen.trial(5_000, 1.0);
    assert_eq!(r["offered"], 5_000, "{r}");
    assert_eq!(r["sent"], r["offered"], "everything went into vrfwd: {r}");
    assert_eq!(r["received"], 2_500, "the routed half came back: {r}");
    assert_eq!(r["lost"], 2_500, "the unrouted half is lost: {r}");
    assert_eq!(r["loss_ratio"], 0.5, "{r}");
    assert_eq!(
        (r["duplicates"].clone(), r["reordered"].clone()),
        (json!(0), json!(0)),
        "{r}"
    );
    assert_eq!(r["generator_bound"], false, "{r}");
    // What the generator calls lost is what vrfwd punted for want of a route.
    let no_route = common::punted(&stats().unwrap().vrs[0], "no_route") - before;
    assert_eq!(no_route, 2_500, "{r}");
    // Percentiles in order (their values depend on the machine: not asserted).
    let l = |q: &str| r["latency_us"][q].as_u64().unwrap();
    assert!(
        l("min") <= l("p50") && l("p50") <= l("p99") && l("p99") <= l("max"),
        "{r}"
    );
    drop(gen);
    let _ = std::fs::remove_dir_all(&dir);
}
