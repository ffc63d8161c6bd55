//! A vrfwd instance fed by pcap replay, shared by the benchmarks: frames to random
//! addresses in the VRs' prefixes (IPv4 or IPv6: [`Prefix`]), a config with pcap
//! ports and ring vifs, and a rate measurement from vrfwd's own counters.
use anyhow::{bail, Context, Result};
use ipnet::{Ipv4Net, Ipv6Net};
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use vrfwd::config::{Builder, IdleConfig, TableSize, VrBuilder};
use vrfwd_wire::ethernet::{self, ethertype};
use vrfwd_wire::{ipv4, ipv6, MacAddr};

use super::gen::Noise;

/// DPDK's RTE_MAX_ETHPORTS is 32 in Debian's build: with several VRs each VR gets
/// one interface (vif) and forwards back out of lan0 to the gateway there; with 1
/// VR, lan0 → lan1 (interface 1's gateway). Gateway `k` has this MAC with
/// `2 + k` as its last byte.
const GATEWAY_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0xee, 2]);
/// Distinct frames in the replayed pcap.
const FRAMES: usize = 4096;

pub fn vr_mac(vr: usize, iface: usize) -> MacAddr {
    MacAddr([2, 0, (vr >> 8) as u8, vr as u8, iface as u8, 1])
}

/// Ports DPDK's port table holds in Debian's build.
const MAX_ETHPORTS: usize = 32;

/// A route's prefix of one family, as the benchmarks route and address traffic to it.
pub trait Prefix: Copy {
    /// A UDP frame to VR MAC `to`, for a random address inside the prefix: the
    /// family's smallest test frame (IPv4 64 bytes on the wire, IPv6 78).
    fn frame(self, to: MacAddr, noise: &mut Noise) -> Vec<u8>;
    /// Gateway `k` on interface `i` of a VR.
    fn gateway(i: usize, k: usize) -> IpAddr;
    /// `vr`'s address of this family on interface `i`, if the family needs one
    /// beside the interface's IPv4 address.
    fn address(vr: VrBuilder, i: usize) -> VrBuilder;
    /// `vr` with a route to the prefix through `gateway`.
    fn route(self, vr: VrBuilder, gateway: IpAddr) -> VrBuilder;
}

/// UDP header and payload after the IP header: ports 4000 → 5000.
fn udp(len: u16) -> [u8; 8] {
    let [hi, lo] = len.to_be_bytes();
    [0x0f, 0xa0, 0x13, 0x88, hi, lo, 0, 0]
}

impl Prefix for (u32, u8) {
    fn frame(self, to: MacAddr, noise: &mut Noise) -> Vec<u8> {
        let dst = noise.address_in(self);
        let mut frame =
            ethernet::header(to, MacAddr([2, 0, 0, 0, 0xaa, 2]), ethertype::IPV4).to_vec();
        frame.extend_from_slice(&ipv4::header(ip(0x0a00_0002), ip(dst), 64, 17, 26));
        frame.extend_from_slice(&udp(26));
        frame.resize(60, 0);
        frame
    }

    fn gateway(i: usize, k: usize) -> IpAddr {
        Ipv4Addr::new(10, i as u8, 0, 2 + k as u8).into()
    }

    fn address(vr: VrBuilder, _: usize) -> VrBuilder {
        vr
    }

    fn route(self, vr: VrBuilder, gateway: IpAddr) -> VrBuilder {
        vr.route(
            Ipv4Net::new(ip(self.0), self.1).expect("a prefix length"),
            gateway,
        )
    }
}

impl Prefix for (u128, u8) {
    fn frame(self, to: MacAddr, noise: &mut Noise) -> Vec<u8> {
        let dst = super::gen::address6_in(noise, self);
        let src = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
        let mut frame =
            ethernet::header(to, MacAddr([2, 0, 0, 0, 0xaa, 2]), ethertype::IPV6).to_vec();
        frame.extend_from_slice(&ipv6::header(src, dst.into(), 64, 17, 20));
        frame.extend_from_slice(&udp(20));
        frame.resize(74, 0);
        frame
    }

    fn gateway(i: usize, k: usize) -> IpAddr {
        Ipv6Addr::new(0x2001, 0xdb8, i as u16, 0, 0, 0, 0, 2 + k as u16).into()
    }

    fn address(vr: VrBuilder, i: usize) -> VrBuilder {
        let own = Ipv6Addr::new(0x2001, 0xdb8, i as u16, 0, 0, 0, 0, 1);
        vr.address6(Ipv6Net::new(own, 64).expect("a /64"))
    }

    fn route(self, vr: VrBuilder, gateway: IpAddr) -> VrBuilder {
        vr.route(
            Ipv6Net::new(self.0.into(), self.1).expect("a prefix length"),
            gateway,
        )
    }
}

/// A pcap file of UDP frames to random addresses inside the VRs' prefixes,
/// round-robin over the VRs.
pub fn write_pcap<P: Prefix>(path: &Path, vrs: &[Vec<P>], noise: &mut Noise) -> Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    f.write_all(&[
        0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0,
    ])?;
    for i in 0..FRAMES {
        let v = i % vrs.len();
        let prefix = vrs[v][noise.next() as usize % vrs[v].len()];
        let frame = prefix.frame(vr_mac(v, 0), noise);
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
pub fn vrfwd_config<P: Prefix>(
    dir: &Path,
    core: u16,
    vrs: &[Vec<P>],
    table: TableSize,
    control: Option<u16>,
) -> Builder {
    vrfwd_config_paths(dir, core, vrs, table, control, 1)
}

/// As [`vrfwd_config`], every route over `paths` equal-cost gateways.
pub fn vrfwd_config_paths<P: Prefix>(
    dir: &Path,
    core: u16,
    vrs: &[Vec<P>],
    table: TableSize,
    control: Option<u16>,
    paths: usize,
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
    let ifaces = if vrs.len() > 1 { 1 } else { 2 };
    let gateways: Vec<IpAddr> = (0..paths).map(|k| P::gateway(ifaces - 1, k)).collect();
    // Ring vifs while they fit in DPDK's port table beside the two pcap ports;
    // past that the vifs stay detached (the fast path does not use them here).
    let ring_vifs = 2 + vrs.len() * ifaces <= MAX_ETHPORTS;
    for (v, routes) in vrs.iter().enumerate() {
        let mut vr = VrBuilder::new(v as u32 + 1)
            .table(table)
            .credential(CREDENTIAL);
        for (k, &gateway) in gateways.iter().enumerate() {
            let mut mac = GATEWAY_MAC;
            mac.0[5] += k as u8;
            vr = vr.neighbor(gateway, mac);
        }
        for i in 0..ifaces {
            let vif = format!("vif{v}_{i}");
            let ring = format!("net_ring{}", v * ifaces + i);
            b = b.port(&vif, ring_vifs.then_some(ring.as_str()));
            let address = Ipv4Net::new(Ipv4Addr::new(10, i as u8, 0, 1), 24).expect("a /24");
            vr = P::address(
                vr.interface(
                    &format!("eth{i}"),
                    vr_mac(v, i),
                    address,
                    &format!("lan{i}"),
                    &vif,
                ),
                i,
            );
        }
        for &prefix in routes {
            for &gateway in &gateways {
                vr = prefix.route(vr, gateway);
            }
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
pub fn run_vrfwd<P: Prefix>(
    dir: &Path,
    core: u16,
    seconds: u64,
    vrs: &[Vec<P>],
    table: TableSize,
    noise: &mut Noise,
) -> Result<f64> {
    run_vrfwd_paths(dir, core, seconds, vrs, table, noise, 1)
}

/// As [`run_vrfwd`], every route over `paths` equal-cost gateways.
pub fn run_vrfwd_paths<P: Prefix>(
    dir: &Path,
    core: u16,
    seconds: u64,
    vrs: &[Vec<P>],
    table: TableSize,
    noise: &mut Noise,
    paths: usize,
) -> Result<f64> {
    write_pcap(&dir.join("in.pcap"), vrs, noise)?;
    let config = vrfwd_config_paths(dir, core, vrs, table, None, paths);
    let _running = start_vrfwd(dir, &config)?;
    std::thread::sleep(Duration::from_secs(1));
    let socket = dir.join("vrfwd.sock");
    mpps(seconds as f64, &|| vrfwd_forwarded(&socket))
}
