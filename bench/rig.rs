//! A vrfwd instance fed by pcap replay, shared by the benchmarks: frames to random
//! addresses in the VRs' prefixes, a config with pcap ports and ring vifs, and a
//! rate measurement from vrfwd's own counters.
use anyhow::{bail, Context, Result};
use ipnet::Ipv4Net;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use vrfwd::config::{Builder, IdleConfig, TableSize, VrBuilder};
use vrfwd_wire::ethernet::{self, ethertype};
use vrfwd_wire::{ipv4, MacAddr};

use super::gen::Noise;

/// DPDK's RTE_MAX_ETHPORTS is 32 in Debian's build: with several VRs each VR gets
/// one interface (vif) and forwards back out of lan0; with 1 VR, lan0 → lan1.
const GATEWAY_ONE_ARM: &str = "10.0.0.2";
const GATEWAY: &str = "10.1.0.2";
const GATEWAY_MAC: &str = "02:00:00:00:ee:02";
/// Distinct frames in the replayed pcap.
const FRAMES: usize = 4096;

pub fn vr_mac(vr: usize, iface: usize) -> MacAddr {
    MacAddr([2, 0, (vr >> 8) as u8, vr as u8, iface as u8, 1])
}

/// Ports DPDK's port table holds in Debian's build.
const MAX_ETHPORTS: usize = 32;

/// A pcap file of 60-byte UDP frames (64 on the wire) to random addresses inside
/// the VRs' prefixes, round-robin over the VRs.
pub fn write_pcap(path: &Path, vrs: &[Vec<(u32, u8)>], noise: &mut Noise) -> Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    f.write_all(&[
        0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0,
    ])?;
    for i in 0..FRAMES {
        let v = i % vrs.len();
        let (net, len) = vrs[v][noise.next() as usize % vrs[v].len()];
        let dst = noise.address_in((net, len));
        let mut frame = ethernet::header(
            vr_mac(v, 0),
            MacAddr([2, 0, 0, 0, 0xaa, 2]),
            ethertype::IPV4,
        )
        .to_vec();
        frame.extend_from_slice(&ipv4::header(ip(0x0a00_0002), ip(dst), 64, 17, 26));
        frame.extend_from_slice(&[0x0f, 0xa0, 0x13, 0x88, 0, 26, 0, 0]);
        frame.resize(60, 0);
        f.write_all(&0u32.to_le_bytes())?;
        f.write_all(&0u32.to_le_bytes())?;
        f.write_all(&(frame.len() as u32).to_le_bytes())?;
        f.write_all(&(frame.len() as u32).to_le_bytes())?;
        f.write_all(&frame)?;
    }
    Ok(())
}

pub fn empty_pcap(path: &Path) -> Result<()> {
    std::fs::write(
        path,
        [
            0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0,
            0,
        ],
    )?;
    Ok(())
}

pub fn ip(a: u32) -> std::net::Ipv4Addr {
    a.into()
}

/// The credential of every VR in benchmark configs.
pub const CREDENTIAL: &str = "bench-credential-0123456789";

/// A config with pcap ports for `vrs` (their routes as static routes) and, with
/// `control`, the route protocol on port `control` of every local address.
pub fn vrfwd_config(
    dir: &Path,
    core: u16,
    vrs: &[Vec<(u32, u8)>],
    table: TableSize,
    control: Option<u16>,
) -> Builder {
    let mut b = Builder::new(core, "vrfwd-bench", dir.join("vrfwd.sock"))
        .idle(IdleConfig::default().spin_polls, 0)
        .port(
            "in",
            Some(&format!(
                "net_pcap0,rx_pcap={},infinite_rx=1",
                dir.join("in.pcap").display()
            )),
        )
        .port(
            "out",
            Some(&format!(
                "net_pcap1,rx_pcap={}",
                dir.join("empty.pcap").display()
            )),
        )
        .segment("lan0", "in")
        .segment("lan1", "out");
    if let Some(port) = control {
        b = b.control(|c| {
            c.listen = Some(SocketAddr::from(([0, 0, 0, 0], port)));
            c.max_stanzas_per_s = 1_000_000;
        });
    }
    let (ifaces, gateway) = if vrs.len() > 1 {
        (1, GATEWAY_ONE_ARM)
    } else {
        (2, GATEWAY)
    };
    let gateway: Ipv4Addr = gateway.parse().expect("an address");
    // Ring vifs while they fit in DPDK's port table beside the two pcap ports;
    // past that the vifs stay detached (the fast path does not use them here).
    let ring_vifs = 2 + vrs.len() * ifaces <= MAX_ETHPORTS;
    for (v, routes) in vrs.iter().enumerate() {
        let mut vr = VrBuilder::new(v as u32 + 1)
            .table(table)
            .credential(CREDENTIAL)
            .neighbor(gateway, GATEWAY_MAC.parse().expect("a MAC"));
        for i in 0..ifaces {
            let vif = format!("vif{v}_{i}");
            let ring = format!("net_ring{}", v * ifaces + i);
            b = b.port(&vif, ring_vifs.then_some(ring.as_str()));
            let address = Ipv4Net::new(Ipv4Addr::new(10, i as u8, 0, 1), 24).expect("a /24");
            vr = vr.interface(
                &format!("eth{i}"),
                vr_mac(v, i),
                address,
                &format!("lan{i}"),
                &vif,
            );
        }
        for &(net, len) in routes {
            vr = vr.route(
                Ipv4Net::new(ip(net), len).expect("a prefix length"),
                gateway,
            );
        }
        b = b.vr(vr);
    }
    b
}

/// A running forwarder (vrfwd or l3fwd), stopped with SIGINT on drop.
pub struct Running {
    child: Child,
}

impl Running {
    /// Starts `cmd` and waits until `count` answers.
    pub fn spawn(mut cmd: Command, count: &dyn Fn() -> Option<u64>) -> Result<Running> {
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("start")?;
        let mut running = Running { child };
        let deadline = Instant::now() + Duration::from_secs(60);
        while count().is_none() {
            if Instant::now() > deadline || running.child.try_wait()?.is_some() {
                bail!("did not come up");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(running)
    }
}

/// Packets per second (millions) by `count`, sampled `seconds` apart.
pub fn mpps(seconds: f64, count: &dyn Fn() -> Option<u64>) -> Result<f64> {
    let (t0, c0) = (Instant::now(), count().context("sample")?);
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let (t1, c1) = (Instant::now(), count().context("sample")?);
    Ok((c1 - c0) as f64 / (t1 - t0).as_secs_f64() / 1e6)
}

impl Running {
    /// The process id of what runs.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// Runs `cmd`, warms up for a second, and returns its rate over `seconds`.
pub fn measure(cmd: Command, seconds: u64, count: &dyn Fn() -> Option<u64>) -> Result<f64> {
    let _running = Running::spawn(cmd, count)?;
    std::thread::sleep(Duration::from_secs(1));
    mpps(seconds as f64, count)
}

/// The resident memory (VmRSS) of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

pub fn vrfwd_forwarded(socket: &Path) -> Option<u64> {
    let reply = vrfwd::control::request(socket, "stats-json").ok()?;
    let s: vrfwd::stats::Snapshot = serde_json::from_str(&reply).ok()?;
    Some(s.vrs.iter().map(|v| v.forwarded).sum())
}

/// Starts vrfwd from `config` (in `dir`), replaying `dir/in.pcap`.
pub fn start_vrfwd(dir: &Path, config: &Builder) -> Result<Running> {
    let conf = dir.join("vrfwd.toml");
    config.write(&conf)?;
    let bin = std::env::current_exe()?.with_file_name("vrfwd");
    let mut cmd = Command::new(bin);
    cmd.args(["run", "-c"]).arg(&conf);
    let socket = dir.join("vrfwd.sock");
    Running::spawn(cmd, &|| vrfwd_forwarded(&socket))
}

/// vrfwd's fast-path rate for `vrs`, their routes configured statically.
pub fn run_vrfwd(
    dir: &Path,
    core: u16,
    seconds: u64,
    vrs: &[Vec<(u32, u8)>],
    table: TableSize,
    noise: &mut Noise,
) -> Result<f64> {
    write_pcap(&dir.join("in.pcap"), vrs, noise)?;
    let _running = start_vrfwd(dir, &vrfwd_config(dir, core, vrs, table, None))?;
    std::thread::sleep(Duration::from_secs(1));
    let socket = dir.join("vrfwd.sock");
    mpps(seconds as f64, &|| vrfwd_forwarded(&socket))
}
