//! `bench/fastpath`: fast-path throughput of one vrfwd lcore against DPDK's l3fwd
//! (built from Debian's dpdk-doc sources into a temporary folder) on the same
//! input: 64-byte UDP frames replayed by pcap `infinite_rx` ports, destinations
//! spread over 10k random prefixes, TX dropped by the pcap PMD. Also vrfwd with 16
//! VRs of 10k prefixes each. A benchmark, not a test: it prints figures.
//!
//! Run (root, after `cargo build --release`):
//!   target/release/vrfwd-fastpath-bench [--seconds N] [--core C] [--vrfwd-only]
//! Last line: `fastpath: vrfwd=<Mpps> l3fwd=<Mpps> ratio=<vrfwd/l3fwd>` (1 VR).
use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use vrfwd::net::{ether, ipv4, MacAddr};

#[path = "../gen.rs"]
#[allow(dead_code)] // shared with the other benchmarks and tests
mod gen;
use gen::{prefixes, Noise};

const PREFIXES_PER_VR: usize = 10_000;
const FRAMES: usize = 4096;
/// DPDK's RTE_MAX_ETHPORTS is 32 in Debian's build: with 16 VRs each VR gets one
/// interface (vif) and forwards back out of lan0; with 1 VR, lan0 → lan1.
const GATEWAY_ONE_ARM: &str = "10.0.0.2";
const GATEWAY: &str = "10.1.0.2";
const GATEWAY_MAC: &str = "02:00:00:00:ee:02";

fn vr_mac(vr: usize, iface: usize) -> MacAddr {
    MacAddr([2, 0, 0, vr as u8, iface as u8, 1])
}

/// A pcap file of 60-byte UDP frames (64 on the wire) to random addresses inside
/// the VRs' prefixes, round-robin over the VRs.
fn write_pcap(path: &Path, vrs: &[Vec<(u32, u8)>], noise: &mut Noise) -> Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    f.write_all(&[
        0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0,
    ])?;
    for i in 0..FRAMES {
        let v = i % vrs.len();
        let (net, len) = vrs[v][noise.next() as usize % vrs[v].len()];
        let dst = noise.address_in((net, len));
        let mut frame = ether::header(
            vr_mac(v, 0),
            MacAddr([2, 0, 0, 0, 0xaa, 2]),
            ether::ETHERTYPE_IPV4,
        )
        .to_vec();
        frame.extend_from_slice(&ipv4::header(0x0a00_0002, dst, 64, 17, 26));
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

fn empty_pcap(path: &Path) -> Result<()> {
    std::fs::write(
        path,
        [
            0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0,
            0,
        ],
    )?;
    Ok(())
}

fn ip(a: u32) -> std::net::Ipv4Addr {
    a.into()
}

fn vrfwd_config(dir: &Path, core: u16, vrs: &[Vec<(u32, u8)>]) -> String {
    let mut c = String::new();
    let _ = writeln!(c, "cores = [{core}]");
    let _ = writeln!(c, "eal_args = [\"--no-huge\", \"--no-shconf\", \"--no-pci\", \"--file-prefix=vrfwd-bench\", \"--log-level=lib.eal:warning\"]");
    let _ = writeln!(c, "socket = \"{}\"", dir.join("vrfwd.sock").display());
    let _ = writeln!(c, "[idle]\nmax_sleep_us = 0\n[mempool]\nmbufs = 8191");
    let _ = writeln!(
        c,
        "[[port]]\nname = \"in\"\ndevice = \"net_pcap0,rx_pcap={},infinite_rx=1\"",
        dir.join("in.pcap").display()
    );
    let _ = writeln!(
        c,
        "[[port]]\nname = \"out\"\ndevice = \"net_pcap1,rx_pcap={}\"",
        dir.join("empty.pcap").display()
    );
    let _ = writeln!(c, "[[segment]]\nname = \"lan0\"\nuplink = \"in\"\n[[segment]]\nname = \"lan1\"\nuplink = \"out\"");
    let (ifaces, gateway) = if vrs.len() > 1 {
        (1, GATEWAY_ONE_ARM)
    } else {
        (2, GATEWAY)
    };
    for (v, routes) in vrs.iter().enumerate() {
        for i in 0..ifaces {
            let _ = writeln!(
                c,
                "[[port]]\nname = \"vif{v}_{i}\"\ndevice = \"net_ring{}\"",
                v * ifaces + i
            );
        }
        let _ = writeln!(c, "[[vr]]\nid = {}\ntable = \"wide\"", v + 1);
        for i in 0..ifaces {
            let _ = writeln!(c, "[[vr.interface]]\nname = \"eth{i}\"\nmac = \"{}\"\naddress = \"10.{i}.0.1/24\"\nsegment = \"lan{i}\"\nvif = \"vif{v}_{i}\"", vr_mac(v, i));
        }
        let _ = writeln!(
            c,
            "[[vr.neighbor]]\naddress = \"{gateway}\"\nmac = \"{GATEWAY_MAC}\""
        );
        for &(net, len) in routes {
            let _ = writeln!(
                c,
                "[[vr.route]]\nprefix = \"{}/{len}\"\nvia = \"{gateway}\"",
                ip(net)
            );
        }
    }
    c
}

/// Runs `cmd`, waits `warmup`, samples `count()` twice `seconds` apart, stops it
/// with SIGINT. Returns Mpps.
fn measure(mut cmd: Command, seconds: u64, count: &dyn Fn() -> Option<u64>) -> Result<f64> {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("start")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let result = (|| {
        while count().is_none() {
            if Instant::now() > deadline || child.try_wait()?.is_some() {
                bail!("did not come up");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        std::thread::sleep(Duration::from_secs(1));
        let (t0, c0) = (Instant::now(), count().context("sample")?);
        std::thread::sleep(Duration::from_secs(seconds));
        let (t1, c1) = (Instant::now(), count().context("sample")?);
        Ok((c1 - c0) as f64 / (t1 - t0).as_secs_f64() / 1e6)
    })();
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let _ = child.wait();
    result
}

fn vrfwd_forwarded(socket: &Path) -> Option<u64> {
    let reply = vrfwd::control::request(socket, "stats-json").ok()?;
    let s: vrfwd::stats::Snapshot = serde_json::from_str(&reply).ok()?;
    Some(s.vrs.iter().map(|v| v.forwarded).sum())
}

fn run_vrfwd(
    dir: &Path,
    core: u16,
    seconds: u64,
    vrs: &[Vec<(u32, u8)>],
    noise: &mut Noise,
) -> Result<f64> {
    write_pcap(&dir.join("in.pcap"), vrs, noise)?;
    let conf = dir.join("vrfwd.toml");
    std::fs::write(&conf, vrfwd_config(dir, core, vrs))?;
    let bin = std::env::current_exe()?.with_file_name("vrfwd");
    let mut cmd = Command::new(bin);
    cmd.args(["run", "-c"]).arg(&conf);
    let socket = dir.join("vrfwd.sock");
    measure(cmd, seconds, &|| vrfwd_forwarded(&socket))
}

/// Builds l3fwd from Debian's example sources with the RX checksum offload request
/// and RSS removed (virtual PMDs refuse them) and its LPM enlarged for 10k routes.
fn build_l3fwd(dir: &Path) -> Result<PathBuf> {
    let src = Path::new("/usr/share/dpdk/examples/l3fwd");
    let build = dir.join("l3fwd");
    std::fs::create_dir_all(&build)?;
    for e in std::fs::read_dir(src)? {
        let e = e?;
        std::fs::copy(e.path(), build.join(e.file_name()))?;
    }
    let main = build.join("main.c");
    let text = std::fs::read_to_string(&main)?
        .replace(".offloads = RTE_ETH_RX_OFFLOAD_CHECKSUM,", "")
        .replace(
            ".mq_mode = RTE_ETH_MQ_RX_RSS,",
            ".mq_mode = RTE_ETH_MQ_RX_NONE,",
        );
    std::fs::write(&main, text)?;
    // l3fwd's LPM holds 1024 rules and 256 tbl8 groups: room for the 10k prefixes.
    let lpm = build.join("l3fwd_lpm.c");
    let text = std::fs::read_to_string(&lpm)?
        .replace(
            "IPV4_L3FWD_LPM_MAX_RULES         1024",
            "IPV4_L3FWD_LPM_MAX_RULES (1 << 20)",
        )
        .replace(
            "IPV4_L3FWD_LPM_NUMBER_TBL8S (1 << 8)",
            "IPV4_L3FWD_LPM_NUMBER_TBL8S (1 << 16)",
        );
    std::fs::write(&lpm, text)?;
    let makefile = build.join("Makefile");
    // The sources include examples/common/sse/port_group.h.
    let mk = std::fs::read_to_string(&makefile)?.replace(
        "CFLAGS += -O3",
        "CFLAGS += -O3 -I/usr/share/dpdk/examples/common",
    );
    std::fs::write(&makefile, mk)?;
    let out = Command::new("make")
        .arg("-C")
        .arg(&build)
        .arg("shared")
        .output()?;
    if !out.status.success() {
        bail!(
            "building l3fwd failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(build.join("build/l3fwd"))
}

fn telemetry_opackets(prefix: &str, port: u16) -> Option<u64> {
    let script = format!(
        "import socket,json,glob\n\
         p=glob.glob('/var/run/dpdk/{prefix}/dpdk_telemetry.v2')[0]\n\
         s=socket.socket(socket.AF_UNIX,socket.SOCK_SEQPACKET);s.connect(p);s.recv(1024)\n\
         s.send(b'/ethdev/stats,{port}');print(json.loads(s.recv(65536))['/ethdev/stats']['opackets'])"
    );
    let out = Command::new("/usr/bin/python3")
        .args(["-c", &script])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn run_l3fwd(dir: &Path, core: u16, seconds: u64, routes: &[(u32, u8)]) -> Result<f64> {
    let bin = build_l3fwd(dir)?;
    let mut v4 = String::new();
    for &(net, len) in routes {
        let _ = writeln!(v4, "R{}/{len} 1", ip(net));
    }
    std::fs::write(dir.join("rules.v4"), v4)?;
    std::fs::write(dir.join("rules.v6"), "R2001:db8::/32 1\n")?;
    let prefix = "l3fwd-bench";
    let mut cmd = Command::new(bin);
    cmd.args([
        "-l",
        &core.to_string(),
        "--no-huge",
        "-m",
        "1024",
        "--no-pci",
        "--file-prefix",
        prefix,
        "--log-level=lib.eal:warning",
    ])
    .arg(format!(
        "--vdev=net_pcap0,rx_pcap={},infinite_rx=1",
        dir.join("in.pcap").display()
    ))
    .arg(format!(
        "--vdev=net_pcap1,rx_pcap={}",
        dir.join("empty.pcap").display()
    ))
    .args(["--", "-p", "0x3", "-P", "--parse-ptype", "--lookup=lpm"])
    .arg(format!("--config=(0,0,{core}),(1,0,{core})"))
    .arg(format!("--rule_ipv4={}", dir.join("rules.v4").display()))
    .arg(format!("--rule_ipv6={}", dir.join("rules.v6").display()));
    measure(cmd, seconds, &|| telemetry_opackets(prefix, 1))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let opt = |name: &str, default: u64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (seconds, core) = (opt("--seconds", 5), opt("--core", 1) as u16);
    let dir = std::env::temp_dir().join(format!("vrfwd-fastpath-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    empty_pcap(&dir.join("empty.pcap"))?;
    let mut noise = Noise(0x0b5e_55ed);
    let one = vec![prefixes(&mut noise, PREFIXES_PER_VR)];
    let sixteen: Vec<_> = (0..16)
        .map(|_| prefixes(&mut noise, PREFIXES_PER_VR))
        .collect();

    let quick = args.iter().any(|a| a == "--vrfwd-only");
    if !quick {
        let vrfwd16 =
            run_vrfwd(&dir, core, seconds, &sixteen, &mut noise).context("vrfwd, 16 VRs")?;
        println!("vrfwd 16 VRs x 10k prefixes: {vrfwd16:.2} Mpps");
    }
    let vrfwd1 = run_vrfwd(&dir, core, seconds, &one, &mut noise).context("vrfwd, 1 VR")?;
    println!("vrfwd 1 VR x 10k prefixes:   {vrfwd1:.2} Mpps");
    if quick {
        let _ = std::fs::remove_dir_all(&dir);
        return Ok(());
    }
    // l3fwd replays the same pcap (the 1-VR run wrote it last).
    let l3fwd = run_l3fwd(&dir, core, seconds, &one[0]).context("l3fwd")?;
    println!("l3fwd 10k prefixes:          {l3fwd:.2} Mpps");
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "fastpath: vrfwd={vrfwd1:.2} l3fwd={l3fwd:.2} ratio={:.2}",
        vrfwd1 / l3fwd
    );
    Ok(())
}
