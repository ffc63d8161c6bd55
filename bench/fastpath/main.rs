//! `bench/fastpath`: fast-path throughput of one vrfwd lcore against DPDK's l3fwd
//! (built from Debian's dpdk-doc sources into a temporary folder) on the same
//! input: 64-byte UDP frames replayed by pcap `infinite_rx` ports, destinations
//! spread over 10k random prefixes, TX dropped by the pcap PMD. Also vrfwd with 16
//! VRs of 10k prefixes each. With `--ipv6`: 78-byte IPv6 UDP frames to 10k
//! prefixes shaped like the IPv6 Internet's (bench/gen.rs), l3fwd on its LPM6.
//! With `--ecmp`: vrfwd alone, 1 VR, its 10k IPv4 routes over one gateway,
//! then the same routes each over 4 equal-cost gateways (every packet's path
//! chosen by its flow's hash).
//! A benchmark, not a test: it prints figures.
//!
//! Run (root, after `cargo build --release`):
//!   target/release/vrfwd-fastpath-bench [--seconds N] [--core C] [--vrfwd-only] [--ipv6 | --ecmp]
//! Last line: `fastpath: vrfwd=<Mpps> l3fwd=<Mpps> ratio=<vrfwd/l3fwd>` (1 VR), or
//! with `--ipv6` `fastpath6: vrfwd=<Mpps> l3fwd=<Mpps> ratio=<vrfwd/l3fwd>`, or
//! with `--ecmp` `ecmp: single_mpps=<Mpps> ecmp4_mpps=<Mpps> ratio=<ecmp4/single>`.
use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use vrfwd::config::TableSize;

#[path = "../gen.rs"]
#[allow(dead_code)] // shared with the other benchmarks and tests
mod gen;
#[path = "../rig.rs"]
#[allow(dead_code)] // shared with the other benchmarks
mod rig;
use gen::{prefixes, prefixes6, Noise};
use rig::{empty_pcap, ip, measure, run_vrfwd, run_vrfwd_paths};

const PREFIXES_PER_VR: usize = 10_000;

/// DPDK's l3fwd built by bench/l3fwd/build.sh (shared with bench/compare).
fn build_l3fwd(dir: &Path) -> Result<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("l3fwd/build.sh");
    let out = Command::new("bash").arg(script).arg(dir).output()?;
    if !out.status.success() {
        bail!(
            "building l3fwd failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(PathBuf::from(String::from_utf8(out.stdout)?.trim()))
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

/// l3fwd's rules file: every prefix to port 1.
fn rules(routes: impl Iterator<Item = (std::net::IpAddr, u8)>) -> String {
    let mut out = String::new();
    for (net, len) in routes {
        let _ = writeln!(out, "R{net}/{len} 1");
    }
    out
}

/// l3fwd's rate with `v4` and `v6` routes (l3fwd wants both rules files).
fn run_l3fwd(
    dir: &Path,
    core: u16,
    seconds: u64,
    v4: &[(u32, u8)],
    v6: &[(u128, u8)],
) -> Result<f64> {
    let bin = build_l3fwd(dir)?;
    let v4 = v4.iter().map(|&(net, len)| (ip(net).into(), len));
    let v6 = v6
        .iter()
        .map(|&(net, len)| (std::net::Ipv6Addr::from(net).into(), len));
    std::fs::write(dir.join("rules.v4"), rules(v4))?;
    std::fs::write(dir.join("rules.v6"), rules(v6))?;
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
    if args.iter().any(|a| a == "--ipv6") {
        return ipv6(&dir, core, seconds, quick, &mut noise);
    }
    if args.iter().any(|a| a == "--ecmp") {
        return ecmp(&dir, core, seconds, &one, &mut noise);
    }
    if !quick {
        let vrfwd16 = run_vrfwd(&dir, core, seconds, &sixteen, TableSize::Wide, &mut noise)
            .context("vrfwd, 16 VRs")?;
        println!("vrfwd 16 VRs x 10k prefixes: {vrfwd16:.2} Mpps");
    }
    let vrfwd1 =
        run_vrfwd(&dir, core, seconds, &one, TableSize::Wide, &mut noise).context("vrfwd, 1 VR")?;
    println!("vrfwd 1 VR x 10k prefixes:   {vrfwd1:.2} Mpps");
    if quick {
        let _ = std::fs::remove_dir_all(&dir);
        return Ok(());
    }
    // l3fwd replays the same pcap (the 1-VR run wrote it last).
    let v6 = [(0x2001_0db8 << 96, 32)];
    let l3fwd = run_l3fwd(&dir, core, seconds, &one[0], &v6).context("l3fwd")?;
    println!("l3fwd 10k prefixes:          {l3fwd:.2} Mpps");
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "fastpath: vrfwd={vrfwd1:.2} l3fwd={l3fwd:.2} ratio={:.2}",
        vrfwd1 / l3fwd
    );
    Ok(())
}

/// The IPv6 run: vrfwd and l3fwd on the same IPv6 replay.
fn ipv6(dir: &Path, core: u16, seconds: u64, quick: bool, noise: &mut Noise) -> Result<()> {
    let one = vec![prefixes6(noise, PREFIXES_PER_VR)];
    let vrfwd =
        run_vrfwd(dir, core, seconds, &one, TableSize::Wide, noise).context("vrfwd, IPv6")?;
    println!("vrfwd 1 VR x 10k IPv6 prefixes: {vrfwd:.2} Mpps");
    if !quick {
        let v4 = [(0x0a00_0000, 8)];
        let l3fwd = run_l3fwd(dir, core, seconds, &v4, &one[0]).context("l3fwd, IPv6")?;
        println!("l3fwd 10k IPv6 prefixes:        {l3fwd:.2} Mpps");
        println!(
            "fastpath6: vrfwd={vrfwd:.2} l3fwd={l3fwd:.2} ratio={:.2}",
            vrfwd / l3fwd
        );
    }
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

/// The multipath run: one VR's routes over one gateway, then over four.
fn ecmp(
    dir: &Path,
    core: u16,
    seconds: u64,
    one: &[Vec<(u32, u8)>],
    noise: &mut Noise,
) -> Result<()> {
    let single = run_vrfwd_paths(dir, core, seconds, one, TableSize::Wide, noise, 1)
        .context("vrfwd, one path")?;
    println!("vrfwd 1 VR x 10k prefixes, 1 path:  {single:.2} Mpps");
    let ecmp4 = run_vrfwd_paths(dir, core, seconds, one, TableSize::Wide, noise, 4)
        .context("vrfwd, 4 paths")?;
    println!("vrfwd 1 VR x 10k prefixes, 4 paths: {ecmp4:.2} Mpps");
    let _ = std::fs::remove_dir_all(dir);
    println!(
        "ecmp: single_mpps={single:.2} ecmp4_mpps={ecmp4:.2} ratio={:.2}",
        ecmp4 / single
    );
    Ok(())
}
