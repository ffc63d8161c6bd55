//! `vrfwd-stream`: a paced, sequence-numbered UDP stream and its receiver, for the
//! migration testbed (the paper's measurement: lost, duplicated and reordered
//! packets, the longest gap, and packets per millisecond around a migration).
//!
//! `send --to ADDR:PORT --pps N --seconds S` sends N packets a second, each with its
//! sequence number, and prints `sent=<count>`; ADDR may be IPv4 or IPv6.
//! `receive --port P [--bind IP] --seconds S` counts
//! until S seconds after its first packet (or `--silence-s` of silence after the
//! stream started, 2 s unless set) and prints one JSON object. Both stop early on
//! SIGINT or SIGTERM and still print what they counted (a run that ends when a
//! migration of unknown length is over).
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Bytes of a stream packet's UDP payload: sequence number, send time, padding.
const PAYLOAD: usize = 64;
/// Receive buffer asked for (bytes).
const RECV_BUFFER: usize = 64 << 20;
/// Silences longer than this are listed (ms), at most `MAX_GAPS` of them.
const LISTED_GAP_MS: f64 = 1.0;
const MAX_GAPS: usize = 10_000;
/// Sequence numbers above this are not ours (a stray packet): ignored.
const MAX_SEQ: u64 = 1 << 28;

#[derive(Parser)]
#[command(about = "Sequence-numbered UDP stream for the migration testbed")]
struct Args {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    Send {
        #[arg(long)]
        to: SocketAddr,
        #[arg(long)]
        pps: u64,
        #[arg(long)]
        seconds: f64,
    },
    Receive {
        #[arg(long)]
        port: u16,
        /// The address to receive on (`::` for an IPv6 stream).
        #[arg(long, default_value = "0.0.0.0")]
        bind: std::net::IpAddr,
        #[arg(long)]
        seconds: f64,
        /// Stop after this long without a packet once the stream started (a
        /// stock migration under emulation is silent for seconds).
        #[arg(long, default_value_t = 2.0)]
        silence_s: f64,
    },
}

fn main() -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("signal handler")?;
    }
    STOP.set(stop).expect("set once");
    match Args::parse().mode {
        Mode::Send { to, pps, seconds } => send(to, pps, seconds),
        Mode::Receive {
            port,
            bind,
            seconds,
            silence_s,
        } => receive(
            (bind, port).into(),
            seconds,
            Duration::from_secs_f64(silence_s),
        ),
    }
}

/// Sends on a fixed schedule: packet i leaves at start + i/pps. A late sender
/// catches up at once, so the count is exact even when the pacing jitters.
/// Set by SIGINT or SIGTERM.
static STOP: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();

fn stopped() -> bool {
    STOP.get().is_some_and(|s| s.load(Ordering::Relaxed))
}

fn send(to: SocketAddr, pps: u64, seconds: f64) -> Result<()> {
    if pps == 0 {
        bail!("--pps must be positive");
    }
    let any: std::net::IpAddr = match to {
        SocketAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    };
    let socket = UdpSocket::bind((any, 0)).context("bind")?;
    socket
        .connect(to)
        .with_context(|| format!("connect {to}"))?;
    let total = (pps as f64 * seconds) as u64;
    let start = Instant::now();
    let mut packet = [0u8; PAYLOAD];
    let mut sent = 0u64;
    let mut failed = 0u64;
    // How far behind its schedule the sender ever was (a stalled sender, not the
    // network, would explain a silence at the receiver).
    let mut max_late = Duration::ZERO;
    while sent < total && !stopped() {
        let due = Duration::from_nanos(sent * 1_000_000_000 / pps);
        let now = start.elapsed();
        if now < due {
            let ahead = due - now;
            if ahead > Duration::from_micros(200) {
                std::thread::sleep(ahead - Duration::from_micros(100));
            } else {
                std::hint::spin_loop();
            }
            continue;
        }
        max_late = max_late.max(now - due);
        packet[..8].copy_from_slice(&sent.to_be_bytes());
        packet[8..16].copy_from_slice(&unix_ns().to_be_bytes());
        // A full socket buffer or a missing route counts as sent: the packet is lost
        // on the way, which is what the receiver measures.
        if socket.send(&packet).is_err() {
            failed += 1;
        }
        sent += 1;
    }
    println!(
        "sent={sent} send_errors={failed} seconds={:.3} max_late_ms={:.3}",
        start.elapsed().as_secs_f64(),
        max_late.as_secs_f64() * 1000.0
    );
    Ok(())
}

fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// What the receiver measured.
#[derive(serde::Serialize, Default)]
struct Report {
    received: u64,
    unique: u64,
    duplicates: u64,
    /// Packets with a lower sequence number than one received before them.
    reordered: u64,
    highest_seq: Option<u64>,
    /// The longest time without a packet between the first and the last (ms), and
    /// when it began (ms after the first packet).
    longest_gap_ms: f64,
    gap_start_ms: f64,
    /// Every silence over `LISTED_GAP_MS`: (start ms after the first packet, ms).
    gaps: Vec<(f64, f64)>,
    /// Wall-clock time of the first packet (Unix seconds), to align with events.
    first_unix_s: f64,
    /// Packets received in each millisecond after the first one.
    per_ms: Vec<u32>,
}

fn receive(at: SocketAddr, seconds: f64, silence: Duration) -> Result<()> {
    let socket = UdpSocket::bind(at).with_context(|| format!("bind {at}"))?;
    // Room for a long descheduling of this process at full rate: what the network
    // delivered must not be lost in our own socket (capped by net.core.rmem_max).
    socket2::SockRef::from(&socket)
        .set_recv_buffer_size(RECV_BUFFER)
        .context("SO_RCVBUF")?;
    socket.set_read_timeout(Some(Duration::from_millis(50)))?;
    let mut seen: Vec<bool> = Vec::new();
    let mut r = Report::default();
    let mut buf = [0u8; 2048];
    let mut first: Option<Instant> = None;
    let mut last = Instant::now();
    let limit = Duration::from_secs_f64(seconds);
    let started = Instant::now();
    loop {
        match first {
            _ if stopped() => break,
            Some(f) if f.elapsed() >= limit || last.elapsed() >= silence => break,
            None if started.elapsed() >= limit + silence => break,
            _ => {}
        }
        let n = match socket.recv(&mut buf) {
            Ok(n) => n,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut
                    || e.kind() == std::io::ErrorKind::Interrupted =>
            {
                continue
            }
            Err(e) => return Err(e).context("recv"),
        };
        if n < 8 {
            continue;
        }
        let now = Instant::now();
        let f = *first.get_or_insert_with(|| {
            r.first_unix_s = unix_ns() as f64 / 1e9;
            now
        });
        if r.received > 0 {
            let gap = now.duration_since(last).as_secs_f64() * 1000.0;
            let start = last.duration_since(f).as_secs_f64() * 1000.0;
            if gap > r.longest_gap_ms {
                r.longest_gap_ms = gap;
                r.gap_start_ms = start;
            }
            if gap > LISTED_GAP_MS && r.gaps.len() < MAX_GAPS {
                r.gaps.push((start, gap));
            }
        }
        last = now;
        r.received += 1;
        let ms = now.duration_since(f).as_millis() as usize;
        if r.per_ms.len() <= ms {
            r.per_ms.resize(ms + 1, 0);
        }
        r.per_ms[ms] += 1;
        let seq = u64::from_be_bytes(buf[..8].try_into().expect("8 bytes"));
        if seq > MAX_SEQ {
            continue;
        }
        let i = seq as usize;
        if seen.len() <= i {
            seen.resize(i + 1, false);
        }
        if seen[i] {
            r.duplicates += 1;
            continue;
        }
        seen[i] = true;
        r.unique += 1;
        match r.highest_seq {
            Some(h) if seq < h => r.reordered += 1,
            _ => r.highest_seq = Some(seq),
        }
    }
    println!("{}", serde_json::to_string(&r)?);
    Ok(())
}
