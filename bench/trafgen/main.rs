//! `bench/trafgen`: the in-tree traffic generator, the stand-in for TRex on this
//! machine. One DPDK lcore sends the streams of a plan (the VRs' interface MACs and
//! route prefixes: the same inputs the TRex profiles in `bench/trex/` take) at a
//! controlled rate out of one port and receives what the device under test
//! forwards on another, IPv4 or IPv6 (the plan's family), over any DPDK port: memif or ring to a DPDK forwarder,
//! af_xdp or af_packet on a veth to the kernel.
//!
//! Every frame carries a trial number, a sequence number and the low 32 bits of the TSC at which it
//! was sent, so a trial reports loss, duplicates, reordering, the longest silence
//! and latency percentiles. The generator is driven over stdin by the NDR/PDR
//! search in `bench/trex/search.py` (see `bench/compare`): one trial a line,
//!
//!   trial <packets per second> <seconds> [drain ms]   → one JSON line on stdout
//!
//! Run (root): vrfwd-trafgen --plan PLAN.json --tx DEV --rx DEV -- <EAL args>
//! where DEV is the device name of a `--vdev` in the EAL args (e.g. net_memif0).
use anyhow::{bail, Context, Result};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::io::BufRead;
use std::net::IpAddr;
use vrfwd::dpdk::{tsc, tsc_hz, Burst, Eal, Mempool, Port, TxBuffer, BURST_SIZE};
use vrfwd_wire::ethernet::{self, ethertype, EthernetFrame};
use vrfwd_wire::ipv4::{self, Ipv4Packet};
use vrfwd_wire::ipv6::{self, Ipv6Packet};
use vrfwd_wire::MacAddr;

#[path = "../gen.rs"]
#[allow(dead_code)] // shared with the other benchmarks and tests
mod gen;
use gen::Noise;

/// Distinct frames per plan, sent round-robin.
const FRAMES: usize = 4096;
/// The generator's UDP destination port: what it recognises on receive.
const UDP_PORT: u16 = 0x5647;
/// Trial (16 bits) and sequence (48 bits) in one u64, then the send TSC's low
/// 32 bits (latency is their difference modulo 2^32 ticks: about a second, far
/// above the histogram's 20 ms). 12 bytes: they fit in a 78-byte IPv6 frame.
const STAMP_LEN: usize = 12;
const SEQ_BITS: u32 = 48;
/// Latency histogram: 1 µs buckets up to 20 ms, the last one holds the rest.
const LATENCY_BUCKETS: usize = 20_001;

/// What to send: frame sizes and, per VR, the MAC its interface answers to and
/// the prefixes of its table (destinations are drawn inside them), all of the
/// source address's family (bench/trex/plan.py).
#[derive(Deserialize)]
struct Plan {
    /// "64", "78" or "imix" (TRex's 7:4:1 of 64, 594 and 1518 bytes on the
    /// wire; IPv6's smallest UDP frame, 78 bytes, in place of 64).
    size: String,
    src_mac: MacAddr,
    src_ip: IpAddr,
    seed: u64,
    vrs: Vec<PlanVr>,
}

#[derive(Deserialize)]
struct PlanVr {
    mac: MacAddr,
    prefixes: Vec<IpNet>,
}

impl Plan {
    /// Frame lengths without FCS (64 on the wire = 60 here).
    fn lengths(&self) -> Result<Vec<usize>> {
        let smallest = match self.src_ip {
            IpAddr::V4(_) => 60,
            IpAddr::V6(_) => 74,
        };
        Ok(match self.size.as_str() {
            "64" if smallest == 60 => vec![60],
            "78" => vec![74],
            "imix" => [smallest; 7]
                .into_iter()
                .chain([590; 4])
                .chain([1514])
                .collect(),
            other => bail!("plan size {other:?}: expected \"64\" (IPv4 only), \"78\" or \"imix\""),
        })
    }

    /// The frames, round-robin over the VRs, destinations at random inside a
    /// random prefix of the VR's table.
    fn frames(&self) -> Result<Vec<Vec<u8>>> {
        let lengths = self.lengths()?;
        if self.vrs.is_empty() || self.vrs.iter().any(|v| v.prefixes.is_empty()) {
            bail!("the plan needs at least one VR, each with at least one prefix");
        }
        let family = |a: IpAddr| a.is_ipv4();
        if self
            .vrs
            .iter()
            .flat_map(|v| &v.prefixes)
            .any(|p| family(p.addr()) != family(self.src_ip))
        {
            bail!("every prefix of the plan must be of its source address's family");
        }
        let mut noise = Noise(self.seed | 1);
        Ok((0..FRAMES)
            .map(|i| {
                let vr = &self.vrs[i % self.vrs.len()];
                let p = vr.prefixes[noise.next() as usize % vr.prefixes.len()];
                // Every VR gets the whole size mix.
                let len = lengths[i / self.vrs.len() % lengths.len()];
                self.frame(vr.mac, p, len, &mut noise)
            })
            .collect())
    }

    /// A frame of `len` bytes to VR MAC `to`, for a random address in `prefix`.
    fn frame(&self, to: MacAddr, prefix: IpNet, len: usize, noise: &mut Noise) -> Vec<u8> {
        let mut f = Vec::with_capacity(len);
        match (self.src_ip, prefix) {
            (IpAddr::V4(src), IpNet::V4(p)) => {
                let dst = noise.address_in((p.network().into(), p.prefix_len()));
                let udp_len = (len - ethernet::HEADER_LEN - ipv4::HEADER_LEN) as u16;
                f.extend_from_slice(&ethernet::header(to, self.src_mac, ethertype::IPV4));
                f.extend_from_slice(&ipv4::header(src, dst.into(), 64, 17, udp_len));
                f.extend_from_slice(&udp(udp_len));
            }
            (IpAddr::V6(src), IpNet::V6(p)) => {
                let dst = gen::address6_in(noise, (p.network().into(), p.prefix_len()));
                let udp_len = (len - ethernet::HEADER_LEN - ipv6::HEADER_LEN) as u16;
                f.extend_from_slice(&ethernet::header(to, self.src_mac, ethertype::IPV6));
                f.extend_from_slice(&ipv6::header(src, dst.into(), 64, 17, udp_len));
                f.extend_from_slice(&udp(udp_len));
            }
            _ => unreachable!("frames() checked the families"),
        }
        f.resize(len, 0);
        f
    }
}

/// The generator's UDP header: its port both ways, no checksum (routers do
/// not check it; the receiver checks the stamp).
fn udp(len: u16) -> [u8; 8] {
    let [p0, p1] = UDP_PORT.to_be_bytes();
    let [l0, l1] = len.to_be_bytes();
    [p0, p1, p0, p1, l0, l1, 0, 0]
}

/// What one trial measured.
#[derive(Serialize, Default)]
struct TrialReport {
    pps: u64,
    seconds: f64,
    /// Frames the schedule asked for and the generator built.
    offered: u64,
    /// The rate the generator kept until the trial's time was up.
    offered_pps: f64,
    /// Taken by the TX port; the rest it refused (ring full: a drop at the
    /// device under test's input, as a full NIC queue would be).
    sent: u64,
    refused: u64,
    /// Distinct sequence numbers of this trial received back.
    received: u64,
    lost: u64,
    loss_ratio: f64,
    duplicates: u64,
    reordered: u64,
    /// Frames received that were not this trial's (late ones of earlier trials,
    /// the forwarder's own announcements).
    foreign: u64,
    /// The generator could not keep the schedule (when the trial's time was up
    /// it had offered less than 99.5% of it): the trial measured the generator.
    generator_bound: bool,
    longest_gap_ms: f64,
    latency_us: Latency,
}

#[derive(Serialize, Default)]
struct Latency {
    min: u64,
    p50: u64,
    p90: u64,
    p99: u64,
    p999: u64,
    max: u64,
}

/// The receive side's bookkeeping for one trial, allocated before it starts.
struct Receiver {
    trial: u64,
    seen: Vec<u64>,
    highest: Option<u64>,
    received: u64,
    duplicates: u64,
    reordered: u64,
    foreign: u64,
    last_rx: Option<u64>,
    longest_gap: u64,
    latency: Vec<u64>,
    ticks_per_us: u64,
}

impl Receiver {
    fn new(trial: u64, expected: u64, ticks_per_us: u64) -> Receiver {
        Receiver {
            trial,
            seen: vec![0; (expected as usize).div_ceil(64) + 1],
            highest: None,
            received: 0,
            duplicates: 0,
            reordered: 0,
            foreign: 0,
            last_rx: None,
            longest_gap: 0,
            latency: vec![0; LATENCY_BUCKETS],
            ticks_per_us,
        }
    }

    /// Accounts one received frame at TSC `now`.
    #[inline(always)]
    fn frame(&mut self, frame: &[u8], now: u64) {
        let Some((trial, seq, sent_at)) = stamp_of(frame) else {
            self.foreign += 1;
            return;
        };
        let (word, bit) = (seq as usize / 64, 1u64 << (seq % 64));
        if trial != self.trial || word >= self.seen.len() {
            self.foreign += 1;
            return;
        }
        if self.seen[word] & bit != 0 {
            self.duplicates += 1;
            return;
        }
        self.seen[word] |= bit;
        self.received += 1;
        match self.highest {
            Some(h) if seq < h => self.reordered += 1,
            _ => self.highest = Some(seq),
        }
        if let Some(last) = self.last_rx {
            self.longest_gap = self.longest_gap.max(now.saturating_sub(last));
        }
        self.last_rx = Some(now);
        let ticks = (now as u32).wrapping_sub(sent_at);
        let us = (u64::from(ticks) / self.ticks_per_us) as usize;
        self.latency[us.min(LATENCY_BUCKETS - 1)] += 1;
    }

    fn latency(&self) -> Latency {
        let total: u64 = self.latency.iter().sum();
        if total == 0 {
            return Latency::default();
        }
        let at = |q: f64| {
            let rank = ((total as f64 * q).ceil() as u64).max(1);
            let mut seen = 0;
            for (us, &n) in self.latency.iter().enumerate() {
                seen += n;
                if seen >= rank {
                    return us as u64;
                }
            }
            (LATENCY_BUCKETS - 1) as u64
        };
        Latency {
            min: self.latency.iter().position(|&n| n > 0).unwrap_or(0) as u64,
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            max: self.latency.iter().rposition(|&n| n > 0).unwrap_or(0) as u64,
        }
    }
}

/// Where the stamp lies in one of the generator's frames: after the UDP header
/// (IPv4 without options, IPv6 without extension headers), if the frame is one.
#[inline(always)]
fn stamp_at(frame: &[u8]) -> Option<usize> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let ip_len = match eth.ethertype() {
        ethertype::IPV4 => {
            let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
            let ours =
                ip.version() == 4 && ip.header_len() == ipv4::HEADER_LEN && ip.protocol() == 17;
            ours.then_some(ipv4::HEADER_LEN)?
        }
        ethertype::IPV6 => {
            let ip = Ipv6Packet::new_checked(eth.payload()).ok()?;
            (ip.next_header() == 17).then_some(ipv6::HEADER_LEN)?
        }
        _ => return None,
    };
    let udp = eth.payload().get(ip_len..ip_len + 8)?;
    let at = ethernet::HEADER_LEN + ip_len + 8;
    (u16::from_be_bytes([udp[2], udp[3]]) == UDP_PORT && frame.len() >= at + STAMP_LEN)
        .then_some(at)
}

/// The generator's stamp in a received frame: (trial, sequence, the send TSC's
/// low 32 bits).
#[inline(always)]
fn stamp_of(frame: &[u8]) -> Option<(u64, u64, u32)> {
    let at = stamp_at(frame)?;
    let tagged = u64::from_be_bytes(frame[at..at + 8].try_into().ok()?);
    let sent = u32::from_be_bytes(frame[at + 8..at + 12].try_into().ok()?);
    Some((tagged >> SEQ_BITS, tagged & ((1 << SEQ_BITS) - 1), sent))
}

struct Generator {
    pool: Mempool,
    tx: Port,
    /// None when the device under test sends back on the TX port (one-armed).
    rx: Option<Port>,
    frames: Vec<Vec<u8>>,
    /// Where the stamp goes in every frame (one family per plan).
    stamp_at: usize,
    trials: u64,
}

impl Generator {
    fn rx_port(&mut self) -> &mut Port {
        self.rx.as_mut().unwrap_or(&mut self.tx)
    }

    /// Polls the RX port once, accounting what arrived.
    fn receive(&mut self, burst: &mut Burst, receiver: &mut Receiver) {
        let n = self.rx_port().rx_burst(0, burst);
        let now = tsc();
        for i in 0..n {
            if let Some(m) = burst.take(i) {
                receiver.frame(m.data(), now);
            }
        }
    }

    /// Sends `pps` for `seconds`, then keeps receiving for `drain_ms`.
    fn trial(&mut self, pps: u64, seconds: f64, drain_ms: u64) -> TrialReport {
        self.trials += 1;
        let trial = self.trials & 0xffff;
        let hz = tsc_hz();
        let duration = (seconds * hz as f64) as u64;
        let target = (pps as f64 * seconds) as u64;
        // Whatever an earlier trial left in flight is counted as foreign here.
        let mut receiver =
            Receiver::new(trial, target + BURST_SIZE as u64, (hz / 1_000_000).max(1));
        let (mut burst, mut out) = (Burst::default(), TxBuffer::default());
        let mut report = TrialReport {
            pps,
            seconds,
            ..TrialReport::default()
        };
        let start = tsc();
        let end = start + duration;
        // Past the end the rest of the schedule is sent, for at most 10 ms more.
        let last_call = end + hz / 100;
        let mut offered_in_time = None;
        loop {
            let now = tsc();
            if now >= end && offered_in_time.is_none() {
                offered_in_time = Some(report.offered);
            }
            if now >= last_call || (now >= end && report.offered >= target) {
                break;
            }
            let due = ((now - start) as u128 * pps as u128 / hz as u128).min(target as u128) as u64;
            let mut room = due.saturating_sub(report.offered).min(BURST_SIZE as u64);
            while room > 0 {
                let seq = report.offered;
                let Some(mut m) = self.pool.alloc() else {
                    break; // every mbuf is in flight: the schedule slips
                };
                let frame = &self.frames[seq as usize % self.frames.len()];
                if !m.append(frame) {
                    break;
                }
                if let Some(d) = m.data_mut() {
                    let at = self.stamp_at;
                    d[at..at + 8].copy_from_slice(&(trial << SEQ_BITS | seq).to_be_bytes());
                    d[at + 8..at + 12].copy_from_slice(&(tsc() as u32).to_be_bytes());
                }
                report.offered += 1;
                room -= 1;
                if let Err(m) = out.push(m) {
                    drop(m);
                    report.refused += 1;
                }
            }
            let (sent, refused) = self.tx.flush(0, &mut out);
            report.sent += u64::from(sent);
            report.refused += u64::from(refused);
            self.receive(&mut burst, &mut receiver);
        }
        let drain_end = tsc() + drain_ms * hz / 1000;
        while tsc() < drain_end {
            self.receive(&mut burst, &mut receiver);
        }
        // Behind schedule at the end by more than 0.5%: the trial measured the
        // generator (what it sent late came in a burst the schedule never asked for).
        let in_time = offered_in_time.unwrap_or(report.offered);
        report.generator_bound = (in_time as f64) < target as f64 * 0.995;
        report.offered_pps = in_time as f64 / seconds;
        report.received = receiver.received;
        report.lost = report.offered.saturating_sub(receiver.received);
        report.loss_ratio = if report.offered == 0 {
            0.0
        } else {
            report.lost as f64 / report.offered as f64
        };
        report.duplicates = receiver.duplicates;
        report.reordered = receiver.reordered;
        report.foreign = receiver.foreign;
        report.longest_gap_ms = receiver.longest_gap as f64 * 1e3 / hz as f64;
        report.latency_us = receiver.latency();
        report
    }
}

/// One stdin command: `trial PPS SECONDS [DRAIN_MS]`.
fn parse_trial(line: &str) -> Result<(u64, f64, u64)> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["trial", pps, seconds, rest @ ..] if rest.len() <= 1 => {
            let pps = pps.parse().context("packets per second")?;
            let seconds: f64 = seconds.parse().context("seconds")?;
            if !(0.01..=3600.0).contains(&seconds) || pps == 0 || pps > 1 << 30 {
                bail!("trial: rate 1..2^30 pps and 0.01..3600 s");
            }
            let drain = rest.first().map_or(Ok(200), |d| d.parse())?;
            Ok((pps, seconds, drain))
        }
        _ => bail!("expected: trial <pps> <seconds> [drain ms]"),
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let split = args.iter().position(|a| a == "--").unwrap_or(args.len());
    let (own, eal_args) = (&args[..split], args.get(split + 1..).unwrap_or(&[]));
    let opt = |name: &str| {
        own.iter()
            .position(|a| a == name)
            .and_then(|i| own.get(i + 1))
            .cloned()
    };
    let (Some(plan), Some(tx), Some(rx)) = (opt("--plan"), opt("--tx"), opt("--rx")) else {
        bail!("usage: vrfwd-trafgen --plan PLAN.json --tx DEV --rx DEV -- <EAL args>");
    };
    let plan: Plan = serde_json::from_str(
        &std::fs::read_to_string(&plan).with_context(|| format!("reading {plan}"))?,
    )
    .context("the plan")?;
    let frames = plan.frames()?;
    let _eal = Eal::init(eal_args).context("EAL")?;
    // Room for the TX port's ring, the device under test's rings and a few bursts.
    let pool = Mempool::new("trafgen", 16383, 256, 2048 + 128).context("mempool")?;
    let tx_port = Port::start(&tx, 1, &pool).with_context(|| format!("port {tx}"))?;
    let rx_port = if rx == tx {
        None
    } else {
        Some(Port::start(&rx, 1, &pool).with_context(|| format!("port {rx}"))?)
    };
    let stamp_at = stamp_at(&frames[0]).context("the plan's frames carry no stamp")?;
    let mut generator = Generator {
        pool,
        tx: tx_port,
        rx: rx_port,
        frames,
        stamp_at,
        trials: 0,
    };
    println!("ready");
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        if line.trim() == "quit" {
            break;
        }
        match parse_trial(&line) {
            Ok((pps, seconds, drain)) => {
                let report = generator.trial(pps, seconds, drain);
                println!("{}", serde_json::to_string(&report)?);
            }
            Err(e) => println!("{}", serde_json::json!({ "error": format!("{e:#}") })),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(size: &str) -> Plan {
        Plan {
            size: size.into(),
            src_mac: MacAddr([2, 0, 0, 0, 0xaa, 2]),
            src_ip: "10.0.0.2".parse().unwrap(),
            seed: 7,
            vrs: vec![
                PlanVr {
                    mac: MacAddr([2, 0, 0, 1, 0, 1]),
                    prefixes: vec!["20.1.0.0/16".parse().unwrap()],
                },
                PlanVr {
                    mac: MacAddr([2, 0, 0, 2, 0, 1]),
                    prefixes: vec!["30.0.0.0/24".parse().unwrap()],
                },
            ],
        }
    }

    #[test]
    fn frames_go_round_robin_to_the_vrs_inside_their_prefixes() {
        let frames = plan("64").frames().unwrap();
        assert_eq!(frames.len(), FRAMES);
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(f.len(), 60);
            let dst = u32::from_be_bytes(f[30..34].try_into().unwrap());
            let ip = Ipv4Packet::new_checked(&f[ethernet::HEADER_LEN..]).unwrap();
            assert!(ip.verify_checksum());
            assert_eq!(u32::from(ip.dst()), dst);
            if i % 2 == 0 {
                assert_eq!(&f[0..6], &[2, 0, 0, 1, 0, 1]);
                assert_eq!(dst >> 16, 20 << 8 | 1);
            } else {
                assert_eq!(dst >> 8, 30 << 16);
            }
        }
    }

    #[test]
    fn imix_is_seven_four_one() {
        let frames = plan("imix").frames().unwrap();
        let count = |len| frames.iter().filter(|f| f.len() == len).count();
        assert_eq!((count(60), count(590), count(1514)), (2394, 1362, 340));
        assert!(plan("jumbo").frames().is_err());
    }

    #[test]
    fn the_receiver_counts_loss_duplicates_reordering_and_strangers() {
        let frames = plan("64").frames().unwrap();
        let stamp = stamp_at(&frames[0]).unwrap();
        assert_eq!(stamp, 42);
        let stamped = |trial: u64, seq: u64, at: u64| {
            let mut f = frames[0].clone();
            f[stamp..stamp + 8].copy_from_slice(&(trial << SEQ_BITS | seq).to_be_bytes());
            f[stamp + 8..stamp + 12].copy_from_slice(&(at as u32).to_be_bytes());
            f
        };
        let mut r = Receiver::new(3, 10, 1000);
        for (seq, now) in [(0, 5_000), (2, 6_000), (1, 9_000), (2, 9_500)] {
            r.frame(&stamped(3, seq, 1_000), now);
        }
        r.frame(&stamped(2, 4, 1_000), 9_600); // an earlier trial's
        r.frame(&[0u8; 60], 9_700);
        assert_eq!(
            (r.received, r.duplicates, r.reordered, r.foreign),
            (3, 1, 1, 2)
        );
        assert_eq!(r.longest_gap, 3_000);
        let l = r.latency();
        assert_eq!((l.min, l.p50, l.max), (4, 5, 8));
    }

    #[test]
    fn an_ipv6_plan_sends_ipv6_frames_inside_its_prefixes() {
        let mut p = plan("78");
        p.src_ip = "2001:db8::2".parse().unwrap();
        assert!(p.frames().is_err(), "IPv4 prefixes in an IPv6 plan");
        p.vrs[0].prefixes = vec!["2001:db8:20::/48".parse().unwrap()];
        p.vrs[1].prefixes = vec!["2001:db8:1:2::/64".parse().unwrap()];
        let frames = p.frames().unwrap();
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(f.len(), 74, "78 bytes on the wire");
            let ip = Ipv6Packet::new_checked(&f[ethernet::HEADER_LEN..]).unwrap();
            let within: IpNet = p.vrs[i % 2].prefixes[0];
            assert!(within.contains(&IpAddr::from(ip.dst())), "{}", ip.dst());
            assert_eq!(stamp_at(f), Some(62));
        }
        p.size = "imix".into();
        let frames = p.frames().unwrap();
        assert_eq!(frames.iter().filter(|f| f.len() == 74).count(), 2394);
        p.size = "64".into();
        assert!(p.frames().is_err(), "no 64-byte IPv6 UDP frame");
    }

    #[test]
    fn trial_commands_are_checked() {
        assert_eq!(parse_trial("trial 1000 2").unwrap(), (1000, 2.0, 200));
        assert_eq!(parse_trial("trial 5 0.5 50").unwrap(), (5, 0.5, 50));
        for bad in [
            "",
            "trial",
            "trial x 1",
            "trial 0 1",
            "trial 10 0",
            "go 1 1",
            "trial 1 1 1 1",
        ] {
            assert!(parse_trial(bad).is_err(), "{bad:?}");
        }
    }
}
