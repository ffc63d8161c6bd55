//! `bench/scale`: one host with many VRs (docs/benchmarks.md, "Scale"): what
//! vrfwd's resident memory (RSS, everything included: both table copies, the
//! RIBs, next hops, neighbour caches, the vifs' sockets and rings, the mempool)
//! is with N VRs of two socket vifs each and R routes each, what one more small
//! VR costs, what a VR with 10k and with 1M routes costs, and whether the fast
//! path slows down when its traffic is spread over 256 VRs instead of one; and
//! the control plane at that scale: start-up time, the control threads' share of
//! a core while every session sends keepalives, and how fast operator commands
//! answer. A benchmark, not a test: it prints figures.
//!
//! It runs in a network namespace of its own (gone when it exits, with its
//! veths): vrfwd's uplinks are pcap ports, the vifs veth ends attached at run
//! time (`vrfwd ctl attach`), routes sent over the route protocol, one session
//! per VR from its own loopback address, kept open while it measures.
//!
//! Run (root): `cargo build --release && target/release/vrfwd-scale-bench [--vrs N] [--routes R] [--replay-only]`
//! Last line: `scale: vrs=<n> vifs=<n> rss_mib=<n> small_vr_kib=<n> full_vr_mib=<n> ratio_256=<r>`
use anyhow::{bail, Context, Result};
use clap::Parser;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use vrfwd::config::{Builder, TableSize, VrBuilder};
use vrfwd_proto::{encode, Stanza};

#[path = "../gen.rs"]
#[allow(dead_code)] // shared with the other benchmarks and tests
mod gen;
#[path = "../netns.rs"]
mod netns;
#[path = "../rig.rs"]
#[allow(dead_code)] // shared with the other benchmarks
mod rig;
#[path = "../session.rs"]
mod session;
use gen::{prefixes, Noise};
use netns::private_netns;
use rig::{ip, vr_mac, Running, CREDENTIAL};
use session::Session;

#[derive(Parser)]
struct Args {
    /// VRs, two socket vifs each.
    #[arg(long, default_value_t = 1000)]
    vrs: usize,
    /// Routes each VR's session installs.
    #[arg(long, default_value_t = 1000)]
    routes: usize,
    /// Routes of the one full VR.
    #[arg(long, default_value_t = 1_000_000)]
    full: usize,
    /// VRs the replay spreads its traffic over, against one.
    #[arg(long, default_value_t = 256)]
    replay_vrs: usize,
    /// Seconds per rate measurement.
    #[arg(long, default_value_t = 3)]
    seconds: u64,
    /// Rounds of the replay comparison (the median is reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// vrfwd's lcore.
    #[arg(long, default_value_t = 1)]
    core: u16,
    /// Only the replay comparison (no memory figures, no last line).
    #[arg(long)]
    replay_only: bool,
}

const PORT: u16 = 17795;
const PER_STANZA: usize = 5000;
const GATEWAY: &str = "10.1.0.2";
/// How often an agent sends a keepalive (the host's default `keepalive_s`).
const KEEPALIVE: Duration = Duration::from_secs(10);

/// `ip -batch` of `lines`.
fn ip_batch(lines: &str) -> Result<()> {
    let mut child = Command::new("ip")
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .context("ip -batch")?;
    child
        .stdin
        .as_mut()
        .expect("piped")
        .write_all(lines.as_bytes())?;
    drop(child.stdin.take());
    if !child.wait()?.success() {
        bail!("ip -batch failed");
    }
    Ok(())
}

/// The vif of VR index `v`, interface `i`: the veth end vrfwd attaches.
fn vif(v: usize, i: usize) -> String {
    format!("s{}{v}", ["a", "b"][i])
}

/// Veth pairs for the vifs of VRs `vrs` (the guest ends stay unconfigured).
fn make_vifs(vrs: std::ops::Range<usize>) -> Result<()> {
    let mut lines = String::new();
    for v in vrs {
        for i in 0..2 {
            let (end, guest) = (vif(v, i), format!("g{}{v}", ["a", "b"][i]));
            lines += &format!("link add {end} type veth peer name {guest}\n");
            lines += &format!("link set {end} up\nlink set {guest} up\n");
        }
    }
    ip_batch(&lines)
}

/// A host of `vrs` VRs (ids from 1), two detached vifs each, pcap uplinks that
/// carry nothing, and the route protocol on `PORT`.
fn host_config(dir: &Path, core: u16, vrs: usize) -> Builder {
    let mut b = Builder::new(core, "vrfwd-scale", dir.join("vrfwd.sock"))
        .idle(512, 200)
        .control(|c| {
            c.listen = Some(([127, 0, 0, 1], PORT).into());
            c.max_stanzas_per_s = 1_000_000;
            c.max_connections = vrs + 16;
            c.idle_timeout_s = 3600;
            c.hold_time_s = 3600;
        });
    for (name, segment) in [("up0", "lan0"), ("up1", "lan1")] {
        let pcap = dir.join("empty.pcap");
        let device = format!("net_pcap_{name},rx_pcap={}", pcap.display());
        b = b.port(name, Some(&device)).segment(segment, name);
    }
    for v in 0..vrs {
        let mut vr = VrBuilder::new(v as u32 + 1).credential(CREDENTIAL);
        for i in 0..2 {
            b = b.port(&vif(v, i), None);
            vr = vr.interface(
                &format!("eth{i}"),
                vr_mac(v, i),
                format!("10.{i}.0.1/24").parse().expect("a /24"),
                &format!("lan{i}"),
                &vif(v, i),
            );
        }
        b = b.vr(vr);
    }
    b
}

/// A running vrfwd host of this benchmark.
struct Host {
    vrfwd: Running,
    socket: std::path::PathBuf,
}

impl Host {
    fn start(dir: &Path, core: u16, vrs: usize) -> Result<Host> {
        let socket = dir.join("vrfwd.sock");
        Ok(Host {
            vrfwd: rig::start_vrfwd(dir, &host_config(dir, core, vrs))?,
            socket,
        })
    }

    /// vrfwd's resident memory, in bytes.
    fn rss(&self) -> Result<u64> {
        Ok(rig::rss_kib(self.vrfwd.pid()).context("vrfwd's VmRSS")? << 10)
    }

    /// Attaches both vifs of VR indexes `vrs`.
    fn attach(&self, vrs: std::ops::Range<usize>) -> Result<usize> {
        let mut attached = 0;
        for v in vrs {
            for i in 0..2 {
                let command = format!("attach {} {} {}", v + 1, vr_mac(v, i), vif(v, i));
                let reply = vrfwd::control::request(&self.socket, &command)?;
                if !reply.contains("attached") {
                    bail!("{command}: {reply}");
                }
                attached += 1;
            }
        }
        Ok(attached)
    }

    /// RSS once vrfwd has settled after a change (the route writer replays
    /// published batches on the other copy after it answers).
    fn settled_rss(&self) -> Result<u64> {
        std::thread::sleep(Duration::from_millis(1500));
        self.rss()
    }
}

/// VR index `v`'s session, from its own loopback address, with its interfaces
/// declared as its agent would.
fn open_session(v: usize) -> Result<Session> {
    let source = Ipv4Addr::new(127, 1, (v >> 8) as u8, v as u8);
    let mut s = Session::open(source, PORT, v as u32 + 1)?;
    s.call(&format!(
        "<interfaces seq=\"SEQ\"><interface name=\"eth0\" mac=\"{}\" address=\"10.0.0.1/24\"/><interface name=\"eth1\" mac=\"{}\" address=\"10.1.0.1/24\"/></interfaces>",
        vr_mac(v, 0),
        vr_mac(v, 1)
    ))?;
    Ok(s)
}

/// Installs `routes` through `s`, a stanza of `PER_STANZA` at a time.
fn install(s: &mut Session, routes: &[(u32, u8)]) -> Result<()> {
    for chunk in routes.chunks(PER_STANZA) {
        let ops: String = chunk
            .iter()
            .map(|&(net, len)| {
                format!(
                    "<add prefix=\"{}/{len}\" via=\"{GATEWAY}\" interface=\"eth1\"/>",
                    ip(net)
                )
            })
            .collect();
        s.call(&format!("<routes seq=\"SEQ\">{ops}</routes>"))?;
    }
    Ok(())
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

struct Memory {
    vifs: usize,
    rss: u64,
    small_vr: u64,
    mid_vr: u64,
    full_vr: u64,
}

/// Clock ticks (of `_SC_CLK_TCK`) vrfwd's control threads (named: not the
/// lcores) have run so far.
fn control_ticks(pid: u32) -> Result<u64> {
    let mut ticks = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let task = task?.path();
        let comm = std::fs::read_to_string(task.join("comm"))?;
        if !matches!(comm.trim(), "route-writer" | "sessions" | "operator") {
            continue;
        }
        let stat = std::fs::read_to_string(task.join("stat"))?;
        // Fields after the parenthesised name: utime and stime are the 12th and 13th.
        let after = stat.rsplit_once(')').context("a stat line")?.1;
        let fields: Vec<&str> = after.split_whitespace().collect();
        ticks += fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    }
    Ok(ticks)
}

/// Share of one core vrfwd's control threads use over `seconds` while every
/// session sends a keepalive every `KEEPALIVE` (spread out), as agents do.
fn keepalive_load(pid: u32, sessions: &mut [Session], seconds: u64) -> Result<f64> {
    let keepalive = encode(&Stanza::Keepalive);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let (start, ticks0) = (Instant::now(), control_ticks(pid)?);
    let step = KEEPALIVE / sessions.len().max(1) as u32;
    let mut next = 0;
    while start.elapsed() < Duration::from_secs(seconds) {
        sessions[next].stream.write_all(keepalive.as_bytes())?;
        next = (next + 1) % sessions.len();
        std::thread::sleep(step);
    }
    let ticks = control_ticks(pid)? - ticks0;
    Ok(ticks as f64 / hz / start.elapsed().as_secs_f64())
}

/// Milliseconds operator command `command` takes to answer: the median of 5.
fn ctl_ms(socket: &Path, command: &str) -> Result<f64> {
    let mut times = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        vrfwd::control::request(socket, command)?;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[2])
}

/// The memory figures: a one-VR host as the base, then the N-VR host.
fn memory(dir: &Path, args: &Args) -> Result<Memory> {
    let n = args.vrs;
    // VR index n is the one that grows to 10k and then to a full table.
    make_vifs(0..n + 1)?;
    let base = {
        let host = Host::start(dir, args.core, 1)?;
        host.attach(0..1)?;
        host.settled_rss()?
    };
    let started = Instant::now();
    let host = Host::start(dir, args.core, n + 1)?;
    let startup = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let vifs = host.attach(0..n + 1)?;
    let attached = host.settled_rss()?;
    println!(
        "{} VRs, {vifs} socket vifs attached in {:.1} s: RSS {:.1} MiB (1 VR: {:.1} MiB)",
        n + 1,
        started.elapsed().as_secs_f64(),
        mib(attached),
        mib(base)
    );
    let small_vr = attached.saturating_sub(base) / n as u64;

    let started = Instant::now();
    let mut sessions = Vec::with_capacity(n + 1);
    for v in 0..n {
        let mut s = open_session(v).with_context(|| format!("VR {}'s session", v + 1))?;
        install(&mut s, &prefixes(&mut Noise(v as u64 + 1), args.routes))?;
        sessions.push(s);
    }
    let loaded = host.settled_rss()?;
    println!(
        "{n} sessions of {} routes each in {:.1} s: RSS {:.1} MiB",
        args.routes,
        started.elapsed().as_secs_f64(),
        mib(loaded)
    );
    let load = keepalive_load(host.vrfwd.pid(), &mut sessions, 30)?;
    let (vrs_ms, stats_ms) = (ctl_ms(&host.socket, "vrs")?, ctl_ms(&host.socket, "stats")?);
    println!(
        "control plane: start-up with {} VRs {startup:.1} s; {n} sessions with keepalives \
         {:.1} % of a core; `vrfwd ctl vrs` {vrs_ms:.1} ms, `stats` {stats_ms:.1} ms",
        n + 1,
        load * 100.0
    );

    let full = prefixes(&mut Noise(0xf011), args.full);
    let mut grower = open_session(n)?;
    let mid = full.len().min(10_000);
    install(&mut grower, &full[..mid])?;
    let with_mid = host.settled_rss()?;
    install(&mut grower, &full[mid..])?;
    let with_full = host.settled_rss()?;
    println!(
        "one VR with {mid} routes: +{:.2} MiB; with {}: +{:.1} MiB",
        mib(with_mid.saturating_sub(loaded)),
        full.len(),
        mib(with_full.saturating_sub(loaded))
    );
    Ok(Memory {
        vifs,
        rss: loaded,
        small_vr,
        mid_vr: with_mid.saturating_sub(loaded),
        full_vr: with_full.saturating_sub(loaded),
    })
}

/// Fast-path rate with the traffic spread over `replay_vrs` VRs against one VR,
/// each with `routes` routes: the median ratio over `rounds` interleaved rounds.
fn replay_ratio(dir: &Path, args: &Args) -> Result<f64> {
    let tables = |vrs: usize| -> Vec<Vec<(u32, u8)>> {
        (0..vrs)
            .map(|v| prefixes(&mut Noise(0x5ca1e + v as u64), args.routes))
            .collect()
    };
    let (one, many) = (tables(1), tables(args.replay_vrs));
    let mut ratios = Vec::new();
    for round in 0..args.rounds {
        let r1 = rig::run_vrfwd(
            dir,
            args.core,
            args.seconds,
            &one,
            TableSize::Auto,
            &mut Noise(9),
        )?;
        let rn = rig::run_vrfwd(
            dir,
            args.core,
            args.seconds,
            &many,
            TableSize::Auto,
            &mut Noise(9),
        )?;
        println!(
            "replay round {round}: 1 VR {r1:.2} Mpps, {} VRs {rn:.2} Mpps, ratio {:.2}",
            args.replay_vrs,
            rn / r1
        );
        ratios.push(rn / r1);
    }
    ratios.sort_by(f64::total_cmp);
    Ok(ratios[ratios.len() / 2])
}

fn main() -> Result<()> {
    let args = Args::parse();
    private_netns()?;
    ip_batch("link set lo up\n")?;
    let dir = std::env::temp_dir().join(format!("vrfwd-scale-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    rig::empty_pcap(&dir.join("empty.pcap"))?;
    if args.replay_only {
        let ratio = replay_ratio(&dir, &args);
        let _ = std::fs::remove_dir_all(&dir);
        println!("median ratio: {:.2}", ratio?);
        return Ok(());
    }
    let result = memory(&dir, &args).and_then(|m| Ok((m, replay_ratio(&dir, &args)?)));
    let _ = std::fs::remove_dir_all(&dir);
    let (m, ratio) = result?;
    println!(
        "small VR (≤ 100 routes, 2 vifs): {:.0} KiB; 10k-route VR: {:.2} MiB; {}-route VR: {:.1} MiB",
        m.small_vr as f64 / 1024.0,
        mib(m.mid_vr),
        args.full,
        mib(m.full_vr)
    );
    println!(
        "scale: vrs={} vifs={} rss_mib={:.0} small_vr_kib={:.0} full_vr_mib={:.0} ratio_256={ratio:.2}",
        args.vrs,
        m.vifs,
        mib(m.rss),
        m.small_vr as f64 / 1024.0,
        mib(m.full_vr)
    );
    Ok(())
}
