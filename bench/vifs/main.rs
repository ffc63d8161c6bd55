//! `bench/vifs`: vifs as AF_PACKET sockets outside DPDK's port table
//! (`vrfwd::dpdk::PacketSocket`, one epoll set for all of them), the measure
//! behind the choice in docs/architecture.md ("Vifs"): how many frames one vif
//! carries to and from its guest, how many all vifs carry together, whether idle
//! vifs slow a busy one, and what a vif costs in memory. A benchmark, not a
//! test: it prints figures.
//!
//! It runs in a network namespace of its own (gone when it exits): N veth pairs,
//! the vif end served by one thread through the epoll set (as the slow-path
//! service will), the guest end driven by a generator thread on the other core.
//! 64-byte frames of an experimental EtherType, so no stack answers them.
//!
//! Run (root): `cargo build --release && target/release/vrfwd-vifs-bench [--vifs N] [--seconds S]`
//! Last line: `vifs: vifs=<n> one_in_kpps=<k> one_out_kpps=<k> one_in_among_idle_kpps=<k> all_in_kpps=<k> kib_per_vif=<k>`
use anyhow::{bail, Result};
use clap::Parser;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vrfwd::dpdk::{Burst, Eal, Mempool, PacketSocket, Poller, Ready, TxBuffer, BURST_SIZE};

#[path = "../netns.rs"]
mod netns;
use netns::private_netns;

#[derive(Parser)]
struct Args {
    /// Veth pairs (vifs) to make.
    #[arg(long, default_value_t = 1000)]
    vifs: usize,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
}

/// Receive buffer per vif socket: about 1 000 waiting 64-byte frames
/// (the kernel charges each its skb's truesize).
const RCVBUF: usize = 1 << 20;

/// Runs the calling thread on CPU `cpu` only (the EAL pinned the main thread,
/// and every thread it starts, to its main lcore).
fn pin(cpu: usize) {
    // SAFETY: cpu_set_t is plain data; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid cpu_set_t.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is valid for reads of its size, the size passed; 0 = this thread.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    assert_eq!(rc, 0, "sched_setaffinity({cpu})");
}

/// Makes `n` veth pairs vifI (vrfwd's end) and gI (the guest's), all up.
fn veths(n: usize) -> Result<()> {
    let mut batch = String::new();
    for i in 0..n {
        batch += &format!("link add vif{i} txqueuelen 1000 type veth peer name g{i}\n");
        batch += &format!("link set vif{i} up\nlink set g{i} up\n");
    }
    let mut ip = Command::new("ip")
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .spawn()?;
    std::io::Write::write_all(ip.stdin.as_mut().unwrap(), batch.as_bytes())?;
    drop(ip.stdin.take());
    if !ip.wait()?.success() {
        bail!("ip -batch failed");
    }
    Ok(())
}

/// Field `key` (in KiB) of a /proc file such as /proc/self/status.
fn kib(file: &str, key: &str) -> u64 {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// What the process and the kernel's slabs hold, KiB: a socket's memory is
/// mostly the kernel's.
fn memory_kib() -> u64 {
    kib("/proc/self/status", "VmRSS:") + kib("/proc/meminfo", "Slab:")
}

const FRAME: [u8; 64] = {
    let mut f = [0u8; 64];
    f[0] = 0x02;
    f[5] = 0x01;
    f[6] = 0x02;
    f[11] = 0x02;
    f[12] = 0x88;
    f[13] = 0xb5;
    f
};

/// Sends bursts of FRAME round-robin over `sockets` until `stop`.
fn generate(sockets: &[PacketSocket], pool: &Mempool, stop: &AtomicBool) -> u64 {
    let mut sent = 0u64;
    let mut tx = TxBuffer::default();
    while !stop.load(Ordering::Relaxed) {
        for s in sockets {
            for _ in 0..BURST_SIZE {
                let Some(mut m) = pool.alloc() else { break };
                m.append(&FRAME);
                if tx.push(m).is_err() {
                    break;
                }
            }
            sent += u64::from(s.flush(&mut tx).0);
        }
    }
    sent
}

/// Bursts read from one ready socket before the next is served.
const BUDGET: usize = 8;

/// Receives from every socket the epoll set reports until `stop`; frames counted.
fn serve(sockets: &[PacketSocket], pool: &Mempool, stop: &AtomicBool, got: &AtomicU64) {
    let poller = Poller::new().expect("epoll");
    let mut ready = Ready::new(64);
    for (i, s) in sockets.iter().enumerate() {
        poller.add(s, i as u64).expect("epoll add");
    }
    let mut burst = Burst::default();
    while !stop.load(Ordering::Relaxed) {
        for token in poller.wait(&mut ready, Duration::from_millis(10)) {
            for _ in 0..BUDGET {
                let r = sockets[token as usize]
                    .rx_burst(pool, &mut burst)
                    .expect("recvmmsg");
                got.fetch_add(r.frames as u64, Ordering::Relaxed);
                burst.clear();
                if r.frames < BURST_SIZE {
                    break;
                }
            }
        }
    }
}

/// Frames per second (thousands) that `receivers` take in while `senders` send
/// for `seconds`: the receiving side served through one epoll set. Prints what
/// the senders offered over the whole run beside it.
fn rate(
    what: &str,
    senders: &[PacketSocket],
    receivers: &[PacketSocket],
    pool: &Mempool,
    seconds: f64,
) -> f64 {
    let stop = AtomicBool::new(false);
    let got = AtomicU64::new(0);
    std::thread::scope(|s| {
        // The service on one core, the generator (and the kernel's delivery of
        // what it sends, done in its system calls) on the other.
        s.spawn(|| {
            pin(0);
            serve(receivers, pool, &stop, &got)
        });
        let start = Instant::now();
        let g = s.spawn(|| {
            pin(1);
            generate(senders, pool, &stop)
        });
        std::thread::sleep(Duration::from_millis(200));
        let (from, base) = (Instant::now(), got.load(Ordering::Relaxed));
        std::thread::sleep(Duration::from_secs_f64(seconds));
        let kpps = (got.load(Ordering::Relaxed) - base) as f64 / from.elapsed().as_secs_f64() / 1e3;
        stop.store(true, Ordering::Relaxed);
        let offered = g.join().unwrap_or(0) as f64 / start.elapsed().as_secs_f64() / 1e3;
        eprintln!("{what}: received {kpps:.0} kpps, offered {offered:.0} kpps");
        kpps
    })
}

fn open(prefix: &str, n: usize) -> Result<Vec<PacketSocket>> {
    (0..n)
        .map(|i| PacketSocket::open(&format!("{prefix}{i}"), RCVBUF).map_err(Into::into))
        .collect()
}

fn main() -> Result<()> {
    let a = Args::parse();
    private_netns()?;
    let _eal = Eal::init(&[
        "--no-huge",
        "--no-shconf",
        "--no-pci",
        "--file-prefix=vrfwd-vifs-bench",
        "--log-level=lib.eal:warning",
        "-m",
        "256",
    ])?;
    let pool = Arc::new(Mempool::new("vifs_bench", 32767, 256, 2048 + 128)?);
    let t = Instant::now();
    veths(a.vifs)?;
    eprintln!(
        "{} veth pairs in {:.1} s",
        a.vifs,
        t.elapsed().as_secs_f64()
    );

    let before = memory_kib();
    let vifs = open("vif", a.vifs)?;
    let kib_per_vif = (memory_kib().saturating_sub(before)) as f64 / a.vifs as f64;
    let guests = open("g", a.vifs)?;

    let one_in = rate("one vif in", &guests[..1], &vifs[..1], &pool, a.seconds);
    let one_out = rate("one vif out", &vifs[..1], &guests[..1], &pool, a.seconds);
    // One busy vif served through the same epoll set as all the idle ones.
    let among_idle = rate(
        "one vif among idle ones",
        &guests[..1],
        &vifs,
        &pool,
        a.seconds,
    );
    let all_in = rate("all vifs in", &guests, &vifs, &pool, a.seconds);
    println!(
        "vifs: vifs={} one_in_kpps={one_in:.0} one_out_kpps={one_out:.0} one_in_among_idle_kpps={among_idle:.0} all_in_kpps={all_in:.0} kib_per_vif={kib_per_vif:.1}",
        a.vifs
    );
    Ok(())
}
