//! `bench/routes`: how fast routes reach the fast path over the route protocol.
//! Full tables of 10k, 100k and 1M prefixes (realistic length mix, reproducible)
//! are sent as XML over TCP to a running vrfwd as one full sync each, timed from
//! the first byte to the acknowledgement of `sync-end` (sent once the table is
//! published to the lcores); then the fast-path rate of one lcore (pcap replay to
//! addresses inside the 10k table) without and with a steady 100k route updates
//! per second on other prefixes. A benchmark, not a test: it prints figures.
//!
//! Run (root, after `cargo build --release`): `target/release/vrfwd-routes-bench`
//! Last line: `routes: full_table_1m_s=<s> routes_per_s=<rate> churn_cost=<fraction>`
use anyhow::{Context, Result};
use std::io::Write;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use vrfwd::config::TableSize;

#[path = "../gen.rs"]
#[allow(dead_code)] // shared with the other benchmarks and tests
mod gen;
#[path = "../rig.rs"]
#[allow(dead_code)] // shared with the other benchmarks
mod rig;
#[path = "../session.rs"]
mod session;
use gen::{prefixes, Noise};
use rig::{ip, vr_mac, vrfwd_forwarded, write_pcap};
use session::Session;

const PORT: u16 = 17790;
const PER_STANZA: usize = 5000;

/// The benchmark's session: VR 1 with its two interfaces declared.
fn open_session() -> Result<Session> {
    let mut s = Session::open(Ipv4Addr::LOCALHOST, PORT, 1)?;
    s.call(&format!(
        "<interfaces seq=\"SEQ\"><interface name=\"eth0\" mac=\"{}\" address=\"10.0.0.1/24\"/><interface name=\"eth1\" mac=\"{}\" address=\"10.1.0.1/24\"/></interfaces>",
        vr_mac(0, 0),
        vr_mac(0, 1)
    ))?;
    Ok(s)
}

impl Session {
    fn routes(&mut self, routes: &[(u32, u8)], add: bool) -> Result<()> {
        for chunk in routes.chunks(PER_STANZA) {
            let ops: String = chunk
                .iter()
                .map(|&(net, len)| match add {
                    true => format!(
                        "<add prefix=\"{}/{len}\" via=\"10.1.0.2\" interface=\"eth1\"/>",
                        ip(net)
                    ),
                    false => format!("<delete prefix=\"{}/{len}\"/>", ip(net)),
                })
                .collect();
            self.call(&format!("<routes seq=\"SEQ\">{ops}</routes>"))?;
        }
        Ok(())
    }

    /// A full sync of `routes`: seconds from the first byte to the last ack. The
    /// stanzas are prepared first and sent without waiting for each ack (as an
    /// agent with a send window would), while the acks are read.
    fn full_sync(&mut self, routes: &[(u32, u8)]) -> Result<f64> {
        let first = self.seq + 1;
        let mut text = format!("<sync-begin seq=\"{first}\"/>");
        let mut seq = first;
        for chunk in routes.chunks(PER_STANZA) {
            seq += 1;
            text.push_str(&format!("<routes seq=\"{seq}\">"));
            for &(net, len) in chunk {
                text.push_str(&format!(
                    "<add prefix=\"{}/{len}\" via=\"10.1.0.2\" interface=\"eth1\"/>",
                    ip(net)
                ));
            }
            text.push_str("</routes>");
        }
        seq += 1;
        text.push_str(&format!("<sync-end seq=\"{seq}\"/>"));
        let start = Instant::now();
        let mut writer = self.stream.try_clone()?;
        let sender = std::thread::spawn(move || writer.write_all(text.as_bytes()));
        self.seq = seq;
        self.wait_ack(seq)?;
        sender.join().expect("sender thread")?;
        Ok(start.elapsed().as_secs_f64())
    }
}

fn main() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("vrfwd-routes-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    rig::empty_pcap(&dir.join("empty.pcap"))?;
    let mut noise = Noise(0x0123_4567);
    let full = prefixes(&mut noise, 1_000_000);
    let small = &full[..10_000];
    write_pcap(&dir.join("in.pcap"), &[small.to_vec()], &mut noise)?;
    // Churn on prefixes the traffic never uses (224+ is outside the generator's range).
    let churn: Vec<(u32, u8)> = (0..1000u32).map(|i| ((200 << 24) | (i << 8), 24)).collect();
    let socket = dir.join("vrfwd.sock");
    let config = rig::vrfwd_config(
        &dir,
        1,
        &[Vec::<(u32, u8)>::new()],
        TableSize::Wide,
        Some(PORT),
    );
    let _vrfwd = rig::start_vrfwd(&dir, &config)?;
    let forwarded = || vrfwd_forwarded(&socket);

    let mut s = open_session().context("route-protocol session")?;
    let mut times = Vec::new();
    // The second 1M sync finds the table's memory already mapped (the first one
    // pays the page faults of ~300 MiB of fresh table memory).
    for table in [small, &full[..100_000], &full[..], small, &full[..]] {
        let secs = s.full_sync(table)?;
        println!(
            "full sync of {:>7} prefixes: {secs:.3} s ({:.0} routes/s)",
            table.len(),
            table.len() as f64 / secs
        );
        times.push(secs);
    }
    // Back to the 10k table the traffic is aimed at.
    s.full_sync(small)?;
    std::thread::sleep(Duration::from_secs(1));
    let quiet = rig::mpps(4.0, &forwarded)?;
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (busy, updates) = std::thread::scope(|scope| {
        let churner = scope.spawn(|| -> Result<f64> {
            // 100 stanzas of 1000 changes a second, adds and deletes in turn.
            let start = Instant::now();
            let mut done = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let due = start + Duration::from_millis(done * 10);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                s.routes(&churn, done.is_multiple_of(2))?;
                done += 1;
            }
            Ok(done as f64 * churn.len() as f64 / start.elapsed().as_secs_f64())
        });
        std::thread::sleep(Duration::from_millis(500));
        let busy = rig::mpps(4.0, &forwarded);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (busy, churner.join().expect("churn thread"))
    });
    let (busy, updates) = (busy?, updates?);
    let cost = (1.0 - busy / quiet).max(0.0);
    println!("fast path, 1 lcore: {quiet:.2} Mpps quiet, {busy:.2} Mpps with {updates:.0} route updates/s (cost {cost:.3})");
    let _ = std::fs::remove_dir_all(&dir);
    let full_1m = times[2];
    println!(
        "routes: full_table_1m_s={full_1m:.3} routes_per_s={:.0} churn_cost={cost:.3}",
        1e6 / full_1m
    );
    Ok(())
}
