//! `bench/tables`: the per-VR route table against DPDK's `rte_lpm`, the measure
//! behind the choice explained in `src/lpm/mod.rs`: install time for 10k, 100k
//! and 1M prefixes, lookups per second on one core in bursts of 32 (ours with
//! the lcore's two-pass burst lookup, `rte_lpm` with `rte_lpm_lookup_bulk`), and memory.
//! IPv6: 250k prefixes shaped like today's IPv6 Internet (`gen::prefixes6`):
//! install time, lookups against the IPv4 table of as many prefixes, and the
//! bytes per prefix a VR holds for them (both copies and their RIBs, resident).
//! A benchmark, not a test: it prints figures.
//!
//! Run: `cargo build --release && target/release/vrfwd-tables-bench`
//! Last lines:
//! `tables6: install_250k_s=<s> ipv6_mlookups=<M/s> ipv4_mlookups=<M/s> ratio=<x> bytes_per_prefix=<B>`
//! `tables: install_1m_s=<s> vrfwd_mlookups=<M/s> rte_lpm_mlookups=<M/s> ratio=<x>`
use anyhow::{Context, Result};
use std::time::Instant;
use vrfwd::dpdk::Eal;

mod rte_lpm;
use rte_lpm::RteLpm;
use vrfwd::lpm::{Address, Change, FirstEntry, Stride, Table, TablePair};

#[path = "../gen.rs"]
#[allow(dead_code)] // shared with the other benchmarks and tests
mod gen;
#[path = "../rig.rs"]
#[allow(dead_code)] // shared with the other benchmarks
mod rig;
use gen::{address6_in, prefixes, prefixes6, Noise};

const BURST: usize = 32;
const LOOKUPS: usize = 1 << 22;
/// Room for 1M prefixes in either stride (64 B a group, committed only where used).
const MAX_GROUPS: u32 = 1 << 22;

fn install_ours<A: Address>(stride: Stride, routes: &[(A, u8)]) -> (Table<A>, f64) {
    let mut t = Table::new(stride, MAX_GROUPS);
    let start = Instant::now();
    for (i, &(net, len)) in routes.iter().enumerate() {
        t.add(net, len, i as u32 % 4096).expect("add");
    }
    (t, start.elapsed().as_secs_f64())
}

fn install_rte(routes: &[(u32, u8)], name: &str) -> Result<(RteLpm, f64)> {
    let mut t = RteLpm::new(name, routes.len() as u32 * 2, 1 << 16)?;
    let start = Instant::now();
    for (i, &(net, len)) in routes.iter().enumerate() {
        t.add(net, len, i as u32 % 4096)?;
    }
    Ok((t, start.elapsed().as_secs_f64()))
}

/// Mlookups/s of `lookup_burst` over `addrs`, best of three passes.
fn rate<A>(addrs: &[A], mut lookup_burst: impl FnMut(&[A], &mut [u32; BURST])) -> (f64, u64) {
    let mut out = [0u32; BURST];
    let mut best = f64::MAX;
    let mut check = 0u64;
    for _ in 0..3 {
        let start = Instant::now();
        for chunk in addrs.chunks_exact(BURST) {
            lookup_burst(chunk, &mut out);
            // Every answer is used, so no lookup can be optimised away.
            std::hint::black_box(&mut out);
            check = check.wrapping_add(u64::from(out[0]));
        }
        best = best.min(start.elapsed().as_secs_f64());
    }
    (addrs.len() as f64 / best / 1e6, check)
}

const MIB: f64 = (1 << 20) as f64;

/// The lcore's two-pass lookup of one burst.
fn burst_lookup<A: Address>(t: &Table<A>, ips: &[A], out: &mut [u32; BURST]) {
    let fib = t.fib();
    let mut first = [FirstEntry::default(); BURST];
    for (f, &a) in first.iter_mut().zip(ips) {
        *f = fib.start_lookup(a);
    }
    for ((o, &a), &f) in out.iter_mut().zip(ips).zip(&first) {
        *o = fib.finish_lookup(a, f).unwrap_or(u32::MAX);
    }
}

const V6_PREFIXES: usize = 250_000;

/// The IPv6 figures: install time, lookups (the better of the two burst walks)
/// against IPv4's (wide, as many prefixes, the lcore's two-pass walk), resident
/// bytes per prefix of a VR's pair; prints the `tables6:` line.
fn ipv6(noise: &mut Noise, full4: &[(u32, u8)]) -> Result<()> {
    let routes = prefixes6(noise, V6_PREFIXES);
    let mut lengths = [0usize; 129];
    routes.iter().for_each(|&(_, l)| lengths[l as usize] += 1);
    let share = |r: std::ops::RangeInclusive<usize>| {
        100.0 * lengths[r].iter().sum::<usize>() as f64 / V6_PREFIXES as f64
    };
    println!(
        "\nIPv6: {V6_PREFIXES} prefixes: /48 {:.0} %, /32-/40 {:.0} %, /41-/47 {:.0} %, /49-/64 {:.0} %, /128 {:.0} %",
        share(48..=48),
        share(32..=40),
        share(41..=47),
        share(49..=64),
        share(128..=128)
    );
    let addrs6: Vec<u128> = (0..LOOKUPS)
        .map(|_| {
            let route = routes[noise.next() as usize % routes.len()];
            address6_in(noise, route)
        })
        .collect();
    let routes4 = &full4[..V6_PREFIXES];
    let addrs4: Vec<u32> = (0..LOOKUPS)
        .map(|_| {
            let route = routes4[noise.next() as usize % routes4.len()];
            noise.address_in(route)
        })
        .collect();
    let (v4, _) = install_ours(Stride::Wide24, routes4);
    let (rate4, _) = rate(&addrs4, |ips, out| burst_lookup(&v4, ips, out));
    drop(v4);
    println!(
        "{:>10} {:>8} {:>15} {:>15} {:>14} {:>7} {:>11}",
        "stride", "add s", "two-pass Ml/s", "by level Ml/s", "IPv4 Ml/s", "ratio", "MiB a copy"
    );
    let mut best = (Stride::Compact16, 0.0, 0.0);
    for stride in [Stride::Compact16, Stride::Wide24] {
        let (t, install) = install_ours(stride, &routes);
        let (two_pass, _) = rate(&addrs6, |ips, out| burst_lookup(&t, ips, out));
        let (by_level, _) = rate(&addrs6, |ips, out| level_lookup(&t, ips, out));
        for &a in addrs6.iter().step_by(997) {
            assert_eq!(
                t.fib().lookup(a),
                t.rib().longest_match(a).map(|(_, nh)| nh),
                "the IPv6 trie answers the reference"
            );
        }
        let rate6 = two_pass.max(by_level);
        println!(
            "{:>10} {install:>8.3} {two_pass:>15.1} {by_level:>15.1} {rate4:>14.1} {:>7.2} {:>11.2}",
            format!("{stride:?}"),
            rate6 / rate4,
            t.memory_bytes() as f64 / MIB
        );
        if rate6 > best.2 {
            best = (stride, install, rate6);
        }
    }
    let (stride, install, rate6) = best;
    let per_prefix = pair_bytes_per_prefix(stride, &routes);
    println!("a VR's pair ({stride:?}, both copies and their RIBs): {per_prefix:.0} B per prefix resident");
    println!(
        "tables6: install_250k_s={install:.3} ipv6_mlookups={rate6:.1} ipv4_mlookups={rate4:.1} ratio={:.2} bytes_per_prefix={per_prefix:.0}",
        rate6 / rate4
    );
    Ok(())
}

/// Resident bytes per prefix of a table pair holding `routes`, published and
/// replayed (what a VR holds for them).
fn pair_bytes_per_prefix(stride: Stride, routes: &[(u128, u8)]) -> f64 {
    let rss = || rig::rss_kib(std::process::id()).unwrap_or(0) << 10;
    let before = rss();
    let mut pair: TablePair<u128> = TablePair::new(stride, MAX_GROUPS);
    let changes: Vec<Change<u128>> = routes
        .iter()
        .enumerate()
        .map(|(i, &(net, len))| Change::Add {
            net,
            len,
            next_hop: i as u32 % 4096,
        })
        .collect();
    pair.apply(&changes, |_| {}).expect("apply");
    drop(changes);
    pair.catch_up();
    let bytes = rss().saturating_sub(before);
    assert_eq!(pair.rib().len(), routes.len());
    bytes as f64 / routes.len() as f64
}

/// The same burst walked level by level ([`vrfwd::lpm::Fib::lookup_burst`]).
fn level_lookup<A: Address>(t: &Table<A>, ips: &[A], out: &mut [u32; BURST]) {
    let mut found = [None; BURST];
    t.fib().lookup_burst(ips, &mut found);
    for (o, f) in out.iter_mut().zip(found) {
        *o = f.unwrap_or(u32::MAX);
    }
}

fn main() -> Result<()> {
    let _eal = Eal::init(&[
        "--no-huge",
        "-m",
        "2048",
        "--no-pci",
        "--no-shconf",
        "--file-prefix=vrfwd-tables",
        "--log-level=lib.eal:warning",
    ])
    .context("EAL")?;
    let mut noise = Noise(0x7ab1e5);
    let full = prefixes(&mut noise, 1_000_000);

    println!(
        "{:>9} {:>14} {:>14}",
        "prefixes", "vrfwd add s", "rte_lpm add s"
    );
    let mut install_1m = 0.0;
    for n in [10_000, 100_000, 1_000_000] {
        let (_, ours) = install_ours(Stride::Wide24, &full[..n]);
        // rte_lpm's add is O(rules of the same length): 1M would take minutes.
        let rte = if n <= 100_000 {
            format!("{:.3}", install_rte(&full[..n], &format!("inst{n}"))?.1)
        } else {
            "(skipped)".into()
        };
        println!("{n:>9} {ours:>14.3} {rte:>14}");
        install_1m = ours;
    }

    let mut vrfwd_rate = 0.0;
    let mut rte_rate = 0.0;
    println!(
        "\n{:>9} {:>16} {:>16} {:>16} {:>7}",
        "prefixes", "wide Mlookups/s", "compact Mlook/s", "rte_lpm Mlook/s", "ratio"
    );
    for n in [10_000, 100_000] {
        let routes = &full[..n];
        let addrs: Vec<u32> = (0..LOOKUPS)
            .map(|_| {
                let route = routes[noise.next() as usize % n];
                noise.address_in(route)
            })
            .collect();
        let (wide, _) = install_ours(Stride::Wide24, routes);
        let (compact, _) = install_ours(Stride::Compact16, routes);
        let (rte, _) = install_rte(routes, &format!("look{n}"))?;
        let (r_wide, c1) = rate(&addrs, |ips, out| burst_lookup(&wide, ips, out));
        let (r_compact, c2) = rate(&addrs, |ips, out| burst_lookup(&compact, ips, out));
        let (r_rte, c3) = rate(&addrs, |ips, out| rte.lookup_bulk(ips, out));
        assert!(
            c1 == c3 && c2 == c3,
            "the tables must give the same answers"
        );
        println!(
            "{n:>9} {r_wide:>16.1} {r_compact:>16.1} {r_rte:>16.1} {:>7.2}",
            r_wide / r_rte
        );
        if n == 10_000 {
            (vrfwd_rate, rte_rate) = (r_wide, r_rte);
        }
    }

    println!(
        "\nmemory of one table copy: counted (first level + groups in use) / resident (RSS delta)"
    );
    for n in [100, 1_000, 10_000, 100_000, 1_000_000] {
        for stride in [Stride::Compact16, Stride::Wide24] {
            let rss = || rig::rss_kib(std::process::id()).unwrap_or(0) << 10;
            let before = rss();
            let (t, _) = install_ours(stride, &full[..n]);
            let resident = rss().saturating_sub(before);
            println!(
                "  {n:>9} prefixes {stride:<10?} {:>8.2} MiB / {:>8.2} MiB",
                t.memory_bytes() as f64 / MIB,
                resident as f64 / MIB
            );
        }
    }
    println!("  rte_lpm: 64 MiB of tbl24 + 1 KiB per tbl8 group + 8 B per rule, whatever the size");
    ipv6(&mut noise, &full)?;
    println!(
        "tables: install_1m_s={install_1m:.3} vrfwd_mlookups={vrfwd_rate:.1} rte_lpm_mlookups={rte_rate:.1} ratio={:.2}",
        vrfwd_rate / rte_rate
    );
    Ok(())
}
