//! `bench/attacks`: what one hostile guest and a crowd on the control network cost
//! another VR. vrfwd forwards a pcap replay with two VRs; VR 1's agent does the
//! worst legal load (5000 /24s on its wide table, then /9s flapping without
//! waiting for acks: 2^15 entries per change in each copy) while 1000 connections
//! from 63 addresses hold the largest stanza allowed before `hello` and reconnect
//! whenever the hello deadline closes them. VR 2's agent adds one route at a time.
//! A benchmark, not a test: it prints figures, the quiet baseline first.
//!
//! Run (root, after `cargo build --release`): `target/release/vrfwd-attacks-bench`
//! Last line: `attacks: victim_ack_p99_ms=<ms> attacker_routes_per_s=<n> rss_growth_mib=<n>`
use anyhow::{Context, Result};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use vrfwd::config::TableSize;
use vrfwd_proto::{stream_header, StreamHeader};

#[path = "../gen.rs"]
#[allow(dead_code)] // shared with the other benchmarks and tests
mod gen;
#[path = "../rig.rs"]
#[allow(dead_code)] // shared with the other benchmarks
mod rig;
#[path = "../session.rs"]
mod session;
use gen::Noise;
use rig::{vr_mac, write_pcap};
use session::{connect, Session};

const PORT: u16 = 17791;
const HOSTILE: usize = 1000;
/// Connections per source address (below vrfwd's default of 16).
const PER_SOURCE: usize = 16;
/// Route operations in one of the attacker's stanzas.
const FLAPS: usize = 200;

/// VR `vr`'s session with its one interface declared.
fn open_session(source: Ipv4Addr, vr: u32) -> Result<Session> {
    let mut s = Session::open(source, PORT, vr)?;
    let mac = vr_mac(vr as usize - 1, 0);
    s.call(&format!("<interfaces seq=\"SEQ\"><interface name=\"eth0\" mac=\"{mac}\" address=\"10.0.0.1/24\"/></interfaces>"))?;
    Ok(s)
}

/// Single-route adds by VR 2 for `seconds`, one at a time, 5 ms apart (an agent
/// following its kernel): their ack times, sorted.
fn victim(s: &mut Session, first: u32, seconds: u64) -> Result<Vec<Duration>> {
    let start = Instant::now();
    let mut waits = Vec::new();
    for i in first.. {
        if start.elapsed() >= Duration::from_secs(seconds) {
            break;
        }
        waits.push(s.call(&format!(
            "<routes seq=\"SEQ\"><add prefix=\"{}.{}.{}.0/24\" via=\"10.0.0.2\" interface=\"eth0\"/></routes>",
            60 + i / 65536,
            i / 256 % 256,
            i % 256
        ))?);
        std::thread::sleep(Duration::from_millis(5));
    }
    waits.sort();
    Ok(waits)
}

fn p99_ms(sorted: &[Duration]) -> f64 {
    sorted[(sorted.len() * 99).div_ceil(100) - 1].as_secs_f64() * 1e3
}

fn rss_mib(pid: u32) -> f64 {
    rig::rss_kib(pid).map_or(0.0, |kib| kib as f64 / 1024.0)
}

/// A connection that opened the stream and holds the largest stanza allowed
/// before `hello` (just under 4 KiB), unfinished.
fn hostile(k: usize) -> Option<TcpStream> {
    let source = Ipv4Addr::new(
        127,
        0,
        1 + (k / PER_SOURCE / 250) as u8,
        1 + (k / PER_SOURCE % 250) as u8,
    );
    let mut s = connect(source, PORT).ok()?;
    let mut text = stream_header(&StreamHeader::client());
    text.push_str("<routes seq=\"1\">");
    while text.len() < 4000 {
        text.push_str("<add prefix=\"10.0.0.0/8\" interface=\"eth0\"/>");
    }
    s.write_all(text.as_bytes()).ok()?;
    s.set_nonblocking(true).ok()?;
    Some(s)
}

/// Keeps `HOSTILE` hostile connections open until `stop`; returns reconnects.
fn crowd(stop: &AtomicBool) -> u64 {
    let mut conns: Vec<Option<TcpStream>> = (0..HOSTILE).map(hostile).collect();
    let mut reconnects = 0;
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        for (k, c) in conns.iter_mut().enumerate() {
            let closed = match c {
                None => true,
                Some(s) => match s.read(&mut buf) {
                    Ok(0) => true,
                    Ok(_) => false,
                    Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
                },
            };
            if closed {
                *c = hostile(k);
                reconnects += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    reconnects
}

fn main() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("vrfwd-attacks-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    rig::empty_pcap(&dir.join("empty.pcap"))?;
    let vrs: Vec<Vec<(u32, u8)>> = vec![vec![(10 << 24 | 9 << 16, 16)]; 2];
    write_pcap(&dir.join("in.pcap"), &vrs, &mut Noise(7))?;
    let config = rig::vrfwd_config(&dir, 1, &vrs, TableSize::Wide, Some(PORT));
    let vrfwd = rig::start_vrfwd(&dir, &config)?;
    let pid = vrfwd.pid();

    let mut blue = open_session(Ipv4Addr::new(127, 0, 0, 2), 2).context("VR 2's session")?;
    let mut red = open_session(Ipv4Addr::new(127, 0, 0, 3), 1).context("VR 1's session")?;
    let wide: String = (0..5000u32)
        .map(|i| {
            let a = Ipv4Addr::from((30 << 24) + (i << 16));
            format!("<add prefix=\"{a}/24\" via=\"10.0.0.2\" interface=\"eth0\"/>")
        })
        .collect();
    red.call(&format!("<routes seq=\"SEQ\">{wide}</routes>"))?;
    let quiet = victim(&mut blue, 0, 3)?;
    let rss_before = rss_mib(pid);
    println!(
        "quiet: victim ack median {:.3} ms, p99 {:.3} ms; vrfwd RSS {rss_before:.0} MiB",
        quiet[quiet.len() / 2].as_secs_f64() * 1e3,
        p99_ms(&quiet)
    );

    let stop = AtomicBool::new(false);
    let acked = AtomicU64::new(0);
    let rss_peak = AtomicU64::new(0);
    let flaps: String = (0..FLAPS / 2)
        .map(|k| {
            let p = format!("{}.128.0.0/9", 100 + k % 50);
            format!(
                "<add prefix=\"{p}\" via=\"10.0.0.2\" interface=\"eth0\"/><delete prefix=\"{p}\"/>"
            )
        })
        .collect();
    let (loaded, seconds, reconnects) = std::thread::scope(|scope| -> Result<_> {
        let mut writer = red.stream.try_clone()?;
        let mut reader = red.stream.try_clone()?;
        let first_seq = red.seq;
        let (stop, acked, rss_peak, flaps) = (&stop, &acked, &rss_peak, &flaps);
        scope.spawn(move || {
            let mut seq = first_seq;
            while !stop.load(Ordering::Relaxed) {
                seq += 1;
                let stanza = format!("<routes seq=\"{seq}\">{flaps}</routes>");
                if writer.write_all(stanza.as_bytes()).is_err() {
                    break;
                }
            }
        });
        scope.spawn(move || {
            let mut buf = [0u8; 65536];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 || stop.load(Ordering::Relaxed) {
                    break;
                }
                let acks = buf[..n].windows(4).filter(|w| w == b"<ack").count();
                acked.fetch_add(acks as u64, Ordering::Relaxed);
            }
        });
        scope.spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                rss_peak.fetch_max((rss_mib(pid) * 1024.0) as u64, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let crowd = scope.spawn(move || crowd(stop));
        std::thread::sleep(Duration::from_secs(2));
        let (acked0, start) = (acked.load(Ordering::Relaxed), Instant::now());
        let loaded = victim(&mut blue, 100_000, 10);
        let seconds = start.elapsed().as_secs_f64();
        let stanzas = acked.load(Ordering::Relaxed) - acked0;
        stop.store(true, Ordering::Relaxed);
        let _ = red.stream.shutdown(std::net::Shutdown::Both);
        let reconnects = crowd.join().expect("crowd thread");
        Ok((loaded?, (stanzas, seconds), reconnects))
    })?;
    let (stanzas, secs) = seconds;
    let attacker_routes_per_s = (stanzas as f64 * FLAPS as f64 / secs).round();
    let growth = (rss_peak.load(Ordering::Relaxed) as f64 / 1024.0 - rss_before).max(0.0);
    println!(
        "under attack ({secs:.1} s): victim ack median {:.3} ms, p99 {:.3} ms, max {:.3} ms; \
         attacker {stanzas} stanzas of {FLAPS} /9 changes acked; {HOSTILE} hostile connections, \
         {reconnects} reconnects; vrfwd RSS peak {:.0} MiB",
        loaded[loaded.len() / 2].as_secs_f64() * 1e3,
        p99_ms(&loaded),
        loaded[loaded.len() - 1].as_secs_f64() * 1e3,
        rss_before + growth
    );
    drop(vrfwd);
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "attacks: victim_ack_p99_ms={:.2} attacker_routes_per_s={attacker_routes_per_s} rss_growth_mib={growth:.0}",
        p99_ms(&loaded)
    );
    Ok(())
}
