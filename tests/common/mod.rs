//! Shared by the integration tests: the namespace topology (scripts/topology.sh)
//! with a running vrfwd, packet capture and injection with scapy, the operator
//! CLI. Everything a test makes is removed on drop, also when the test fails.
#![allow(dead_code)] // each test binary uses part of it

pub mod client;
pub mod guest;

use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};
use vrfwd::stats::Snapshot;

pub const VR1_ETH0: &str = "02:00:00:00:01:01";
pub const VR1_ETH1: &str = "02:00:00:00:02:01";
pub const VR2_ETH0: &str = "02:00:00:01:01:01";
pub const RECEIVER_MAC: &str = "02:00:00:00:bb:02";

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The directory of the workspace's binaries (vrfwd, vrfwd-agent, and the bench
/// package's vrfwd-stream and vrfwd-trafgen), which the testbeds run; they must
/// all be built (`cargo build --workspace --bins`).
pub fn bin_dir() -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_vrfwd"))
        .parent()
        .expect("target dir")
        .to_path_buf();
    for b in [
        "vrfwd-agent",
        "vrfwd-config",
        "vrfwd-stream",
        "vrfwd-trafgen",
    ] {
        assert!(
            bin.join(b).exists(),
            "{} is missing: build the workspace (cargo build --workspace --bins)",
            bin.join(b).display()
        );
    }
    bin
}

pub fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The namespaces, links and vrfwd process of one test; all removed on drop, also
/// when the test fails.
pub struct Topology {
    pub prefix: String,
    pub config: PathBuf,
    vrfwd: Option<Child>,
}

impl Topology {
    /// The topology with vrfwd configured for `lcores` lcores (one queue pair per
    /// lcore on every af_packet port).
    pub fn up(prefix: &str, lcores: u16) -> Topology {
        Topology::up_with(prefix, lcores, &[])
    }

    /// As [`Topology::up`], with environment overrides for scripts/topology.sh
    /// (control port and limits).
    pub fn up_with(prefix: &str, lcores: u16, env: &[(&str, &str)]) -> Topology {
        let config = std::env::temp_dir().join(format!("vrfwd-{prefix}.toml"));
        let topo = Topology {
            prefix: prefix.into(),
            config: config.clone(),
            vrfwd: None,
        };
        sh(Command::new("bash")
            .arg(root().join("scripts/topology.sh"))
            .args(["up", prefix])
            .arg(&config)
            .env("VRFWD_BIN", bin_dir())
            .env("LCORES", lcores.to_string())
            .envs(env.iter().copied()));
        topo
    }

    pub fn start(&mut self) {
        self.start_with_umask("022");
    }

    /// Starts vrfwd under the file-creation mask `umask` (octal).
    pub fn start_with_umask(&mut self, umask: &str) {
        self.spawn(umask, "text", Stdio::inherit());
    }

    /// Starts vrfwd logging JSON lines to the file `log`.
    pub fn start_logging_json(&mut self, log: &std::path::Path) {
        let file = std::fs::File::create(log).expect("the log file");
        self.spawn("022", "json", Stdio::from(file));
    }

    /// Starts vrfwd under `umask` (octal), its log in `log_format` to `stderr`.
    fn spawn(&mut self, umask: &str, log_format: &str, stderr: Stdio) {
        let child = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "umask {umask} && exec \"$0\" --log-format {log_format} run -c \"$1\""
            ))
            .arg(env!("CARGO_BIN_EXE_vrfwd"))
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start vrfwd");
        self.vrfwd = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.try_stats().is_none() {
            assert!(Instant::now() < deadline, "vrfwd did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `vrfwd ctl ARGS` against this instance; panics if it fails.
    pub fn ctl(&self, args: &[&str]) -> String {
        sh(Command::new(env!("CARGO_BIN_EXE_vrfwd"))
            .args(["ctl", "-s", &self.socket()])
            .args(args))
    }

    /// `vrfwd ctl ARGS`: the reply, or what the failing command printed.
    pub fn try_ctl(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(env!("CARGO_BIN_EXE_vrfwd"))
            .args(["ctl", "-s", &self.socket()])
            .args(args)
            .output()
            .expect("spawn vrfwd ctl");
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        if out.status.success() {
            Ok(text(&out.stdout))
        } else {
            Err(text(&out.stderr))
        }
    }

    pub fn socket(&self) -> String {
        format!("/run/vrfwd-{}.sock", self.prefix)
    }

    pub fn try_stats(&self) -> Option<Snapshot> {
        let out = Command::new(env!("CARGO_BIN_EXE_vrfwd"))
            .args(["stats", "--json", "-s", &self.socket()])
            .output()
            .ok()?;
        serde_json::from_slice(&out.stdout).ok()
    }

    pub fn stats(&self) -> Snapshot {
        self.try_stats().expect("stats from the running vrfwd")
    }

    pub fn ns(&self, n: &str) -> String {
        format!("{}{}", self.prefix, n)
    }

    pub fn exec(&self, n: &str, args: &[&str]) -> String {
        sh(Command::new("ip")
            .args(["netns", "exec", &self.ns(n)])
            .args(args))
    }

    /// Starts capturing IPv4 on `iface` in namespace `n` for `secs` seconds.
    pub fn sniff(&self, n: &str, iface: &str, secs: u32, bpf: &str) -> Sniffer {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(n), "/usr/bin/python3"])
            .arg(root().join("tests/helpers/pkt.py"))
            .args(["sniff", iface, &secs.to_string(), bpf])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start sniffer");
        let mut child = child;
        let mut lines = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        lines.read_line(&mut line).expect("sniffer output");
        assert_eq!(line.trim(), "READY", "sniffer did not start");
        Sniffer(Some(child), lines)
    }

    /// Runs `tests/helpers/pkt.py ARGS` in namespace `n`; returns what it printed.
    pub fn pkt(&self, n: &str, args: &[&str]) -> String {
        let pkt = root().join("tests/helpers/pkt.py");
        let script = pkt.to_str().expect("a UTF-8 path");
        self.exec(n, &[&["/usr/bin/python3", script][..], args].concat())
    }

    pub fn send(&self, n: &str, iface: &str, dst_mac: &str, dst_ip: &str, count: u32, ttl: u8) {
        let (count, ttl) = (count.to_string(), ttl.to_string());
        self.pkt(n, &["send", iface, dst_mac, dst_ip, &count, &ttl]);
    }

    /// As [`Topology::send`], each packet `size` bytes from its IP header on
    /// (IPv4: with don't fragment).
    pub fn send_sized(
        &self,
        n: &str,
        iface: &str,
        dst_mac: &str,
        dst_ip: &str,
        count: u32,
        size: u16,
    ) {
        let (count, size) = (count.to_string(), size.to_string());
        let args = [
            "send",
            iface,
            dst_mac,
            dst_ip,
            &count,
            "64",
            "vrfwd-test",
            &size,
        ];
        self.pkt(n, &args);
    }

    pub fn vr(&self, id: u32) -> vrfwd::stats::VrSnapshot {
        self.stats()
            .vrs
            .into_iter()
            .find(|v| v.id == id)
            .expect("vr")
    }
}

impl Topology {
    /// vrfwd's process id.
    pub fn pid(&self) -> u32 {
        self.vrfwd.as_ref().expect("vrfwd runs").id()
    }

    /// vrfwd's resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid())
    }

    /// Sends SIGINT and returns how long vrfwd took to exit (it is killed after
    /// 10 s, which then shows as the time).
    pub fn interrupt(&mut self) -> Duration {
        let start = Instant::now();
        self.stop();
        start.elapsed()
    }

    /// Stops vrfwd (see [`stop`]).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.vrfwd.take() {
            stop(&mut child);
        }
    }
}

/// Stops `child` with SIGINT, killing it if it does not stop within 10 s.
/// The resident memory of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("a status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

pub fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.stop();
        let _ = Command::new("bash")
            .arg(root().join("scripts/topology.sh"))
            .args(["down", &self.prefix])
            .status();
        let _ = std::fs::remove_file(&self.config);
    }
}

/// A running capture: the process and its output after the READY line.
pub struct Sniffer(Option<Child>, BufReader<ChildStdout>);

impl Sniffer {
    pub fn packets(mut self) -> Vec<Value> {
        let mut out = String::new();
        self.1.read_to_string(&mut out).expect("sniffer output");
        let _ = self.0.take().map(|mut c| c.wait());
        out.lines()
            .map(|l| serde_json::from_str(l).expect("sniffer json"))
            .collect()
    }
}

impl Drop for Sniffer {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn punted(v: &vrfwd::stats::VrSnapshot, reason: &str) -> u64 {
    v.punted.get(reason).copied().unwrap_or(0)
}
