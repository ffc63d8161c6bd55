//! Counters: one cache-aligned block per lcore, written only by that lcore (plain
//! load + store of relaxed atomics: no locked instruction, no shared cache line),
//! summed when read into a [`Snapshot`].
use crate::dpdk::PortStats;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// A counter with a single writer.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`; only the owning lcore calls this.
    #[inline(always)]
    pub fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    #[inline(always)]
    pub fn inc(&self) {
        self.add(1);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Back to zero, for a slot taken again: only once its lcore can no
    /// longer write it (the entity it counted was unpublished), so the one
    /// writer is never overwritten.
    fn reset(&self) {
        self.0.store(0, Ordering::Relaxed);
    }
}

macro_rules! reasons {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $s:literal,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($(#[$vm])* $v,)* }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$v,)*];
            pub const COUNT: usize = Self::ALL.len();
            pub fn label(self) -> &'static str {
                match self { $($name::$v => $s,)* }
            }
        }
    };
}

reasons! {
    /// Why a frame addressed to a VR went to its guest instead of the fast path.
    PuntReason {
        Arp = "arp",
        /// Neither IPv4 nor IPv6 (nor ARP).
        NotIp = "not_ip",
        Truncated = "truncated",
        Version = "ip_version",
        Options = "ip_options",
        Length = "ip_length",
        Checksum = "ip_checksum",
        TtlExpired = "ttl_expired",
        ToRouter = "to_router",
        NoRoute = "no_route",
        Unresolved = "unresolved",
        /// Larger than the egress interface's MTU: the guest answers (ICMP
        /// fragmentation needed, packet too big) or fragments.
        Mtu = "mtu",
        /// IPv6: an extension header (hop-by-hop options, routing, fragment…).
        ExtensionHeader = "ipv6_extension",
        /// IPv6: to a multicast group (neighbour discovery, OSPFv3, MLD).
        Multicast = "ipv6_multicast",
        /// IPv6: from or to a link-local address.
        LinkLocal = "ipv6_link_local",
        /// The VR waits for its guest to arrive (migration standby).
        Standby = "standby",
        /// The VR's guest left this host: sent on to its new host.
        HandedOver = "handed_over",
    }
}

reasons! {
    /// Why a frame was dropped.
    DropReason {
        /// Shorter than an Ethernet header.
        Runt = "runt",
        /// A guest sent a frame to its own MAC.
        Loop = "loop",
        /// Unicast for a station behind the port it came in on (from an uplink:
        /// any MAC not behind a vif).
        Filtered = "filtered",
        /// From a vif, not from its VR interface's MAC (or ARP not for its address).
        Spoofed = "spoofed",
    }
}

#[derive(Default)]
#[repr(align(64))]
pub struct PortCounters {
    pub rx: Counter,
    pub tx: Counter,
    pub tx_dropped: Counter,
    /// Frames a vif sent that port security dropped.
    pub spoofed: Counter,
    /// Broadcast and multicast frames past the port's storm limit, dropped.
    pub flood_limited: Counter,
}

#[repr(align(64))]
pub struct VrCounters {
    pub rx: Counter,
    pub forwarded: Counter,
    /// ARP requests for the VR's own addresses answered by vrfwd.
    pub arp_answered: Counter,
    /// Neighbour solicitations for the VR's own IPv6 addresses answered by vrfwd.
    pub ndp_answered: Counter,
    /// Announcements of the VR's MACs heard on an uplink while it was active
    /// and not being cloned: forged, or a migration nobody told this host of.
    pub announcements_ignored: Counter,
    pub punted: [Counter; PuntReason::COUNT],
}

impl Default for VrCounters {
    fn default() -> Self {
        VrCounters {
            rx: Counter::default(),
            forwarded: Counter::default(),
            arp_answered: Counter::default(),
            ndp_answered: Counter::default(),
            announcements_ignored: Counter::default(),
            punted: std::array::from_fn(|_| Counter::default()),
        }
    }
}

#[repr(align(64))]
pub struct SegmentCounters {
    pub unicast: Counter,
    pub flooded: Counter,
    pub dropped: [Counter; DropReason::COUNT],
}

impl Default for SegmentCounters {
    fn default() -> Self {
        SegmentCounters {
            unicast: Counter::default(),
            flooded: Counter::default(),
            dropped: std::array::from_fn(|_| Counter::default()),
        }
    }
}

/// All counters of one lcore.
#[repr(align(64))]
pub struct LcoreCounters {
    pub polls: Counter,
    pub busy_polls: Counter,
    pub sleeps: Counter,
    pub ports: Box<[PortCounters]>,
    pub vrs: Box<[VrCounters]>,
    pub segments: Box<[SegmentCounters]>,
}

impl LcoreCounters {
    pub fn new(ports: usize, vrs: usize, segments: usize) -> Self {
        LcoreCounters {
            polls: Counter::default(),
            busy_polls: Counter::default(),
            sleeps: Counter::default(),
            ports: (0..ports).map(|_| PortCounters::default()).collect(),
            vrs: (0..vrs).map(|_| VrCounters::default()).collect(),
            segments: (0..segments).map(|_| SegmentCounters::default()).collect(),
        }
    }
}

impl PortCounters {
    fn all(&self) -> impl Iterator<Item = &Counter> {
        [
            &self.rx,
            &self.tx,
            &self.tx_dropped,
            &self.spoofed,
            &self.flood_limited,
        ]
        .into_iter()
    }
}

impl VrCounters {
    fn all(&self) -> impl Iterator<Item = &Counter> {
        let each = [
            &self.rx,
            &self.forwarded,
            &self.arp_answered,
            &self.ndp_answered,
            &self.announcements_ignored,
        ];
        each.into_iter().chain(&self.punted)
    }
}

impl SegmentCounters {
    fn all(&self) -> impl Iterator<Item = &Counter> {
        [&self.unicast, &self.flooded]
            .into_iter()
            .chain(&self.dropped)
    }
}

/// Zeroing a slot's counters, for the entity taking it again: only once no
/// lcore counts for what held it before (the model without it published, and
/// the TX drain deadline passed).
impl LcoreCounters {
    pub fn reset_vr(&self, v: usize) {
        self.vrs[v].all().for_each(Counter::reset);
    }

    pub fn reset_ports(&self, ports: &[usize]) {
        for &p in ports {
            self.ports[p].all().for_each(Counter::reset);
        }
    }

    pub fn reset_segment(&self, s: usize) {
        self.segments[s].all().for_each(Counter::reset);
    }
}

/// Counters summed over lcores, as `vrfwd stats` shows them.
#[derive(Debug, Default, Serialize, serde::Deserialize)]
pub struct Snapshot {
    pub lcores: Vec<LcoreSnapshot>,
    pub ports: Vec<PortSnapshot>,
    pub vrs: Vec<VrSnapshot>,
    pub segments: Vec<SegmentSnapshot>,
    #[serde(default)]
    pub mempool: MempoolSnapshot,
}

/// The packet-buffer pool: with no traffic in flight, `available` is back to
/// the pool's size less what the ports hold for receiving.
#[derive(Debug, Default, Clone, Copy, Serialize, serde::Deserialize)]
pub struct MempoolSnapshot {
    pub available: u32,
    pub in_use: u32,
}

#[derive(Debug, Default, Serialize, serde::Deserialize)]
pub struct LcoreSnapshot {
    pub polls: u64,
    pub busy_polls: u64,
    pub sleeps: u64,
}

#[derive(Debug, Default, Serialize, serde::Deserialize)]
pub struct PortSnapshot {
    pub name: String,
    pub rx: u64,
    pub tx: u64,
    pub tx_dropped: u64,
    /// Frames a vif sent that port security dropped.
    #[serde(default)]
    pub spoofed: u64,
    /// Broadcast and multicast frames past the port's storm limit.
    #[serde(default)]
    pub flood_limited: u64,
    /// What the PMD itself counted (missed, errors).
    pub pmd: Option<PortStats>,
}

#[derive(Debug, Default, Serialize, serde::Deserialize)]
pub struct VrSnapshot {
    pub id: u32,
    pub name: String,
    pub rx: u64,
    pub forwarded: u64,
    #[serde(default)]
    pub arp_answered: u64,
    #[serde(default)]
    pub ndp_answered: u64,
    /// Announcements of the VR's MACs on an uplink that changed nothing.
    #[serde(default)]
    pub announcements_ignored: u64,
    pub punted: BTreeMap<String, u64>,
    pub routes: usize,
    pub neighbors: usize,
}

#[derive(Debug, Default, Serialize, serde::Deserialize)]
pub struct SegmentSnapshot {
    pub name: String,
    pub unicast: u64,
    pub flooded: u64,
    pub dropped: BTreeMap<String, u64>,
}

fn sum<'a>(it: impl Iterator<Item = &'a Counter>) -> u64 {
    it.map(Counter::get).sum()
}

fn add_reasons(to: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (reason, n) in from {
        *to.entry(reason.clone()).or_default() += n;
    }
}

fn by_reason<R: Copy>(
    all: &[R],
    label: impl Fn(R) -> &'static str,
    count: impl Fn(usize) -> u64,
) -> BTreeMap<String, u64> {
    all.iter()
        .enumerate()
        .map(|(i, &r)| (label(r).to_owned(), count(i)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

impl Snapshot {
    /// Sums the lcores' counters; `pmd` reads a port's own counters.
    pub fn collect(
        lcores: &[LcoreCounters],
        dp: &crate::dataplane::Dataplane,
        pmd: &dyn Fn(usize) -> Option<PortStats>,
        mempool: MempoolSnapshot,
        now: u32,
    ) -> Snapshot {
        Snapshot {
            lcores: lcores
                .iter()
                .map(|l| LcoreSnapshot {
                    polls: l.polls.get(),
                    busy_polls: l.busy_polls.get(),
                    sleeps: l.sleeps.get(),
                })
                .collect(),
            ports: dp
                .port_names
                .iter()
                .map(|(p, name)| PortSnapshot {
                    name: name.clone(),
                    rx: sum(lcores.iter().map(|l| &l.ports[p].rx)),
                    tx: sum(lcores.iter().map(|l| &l.ports[p].tx)),
                    tx_dropped: sum(lcores.iter().map(|l| &l.ports[p].tx_dropped)),
                    spoofed: sum(lcores.iter().map(|l| &l.ports[p].spoofed)),
                    flood_limited: sum(lcores.iter().map(|l| &l.ports[p].flood_limited)),
                    pmd: pmd(p),
                })
                .collect(),
            vrs: dp
                .vrs
                .iter()
                .map(|(v, vr)| VrSnapshot {
                    id: vr.id,
                    name: vr.name.clone(),
                    rx: sum(lcores.iter().map(|l| &l.vrs[v].rx)),
                    forwarded: sum(lcores.iter().map(|l| &l.vrs[v].forwarded)),
                    arp_answered: sum(lcores.iter().map(|l| &l.vrs[v].arp_answered)),
                    ndp_answered: sum(lcores.iter().map(|l| &l.vrs[v].ndp_answered)),
                    announcements_ignored: sum(lcores
                        .iter()
                        .map(|l| &l.vrs[v].announcements_ignored)),
                    punted: by_reason(PuntReason::ALL, PuntReason::label, |i| {
                        sum(lcores.iter().map(|l| &l.vrs[v].punted[i]))
                    }),
                    routes: vr.routes.load(std::sync::atomic::Ordering::Relaxed),
                    neighbors: vr.neighbors.entries(now).len() + vr.neighbors6.entries(now).len(),
                })
                .collect(),
            segments: dp
                .segments
                .iter()
                .map(|(s, seg)| SegmentSnapshot {
                    name: seg.name.clone(),
                    unicast: sum(lcores.iter().map(|l| &l.segments[s].unicast)),
                    flooded: sum(lcores.iter().map(|l| &l.segments[s].flooded)),
                    dropped: by_reason(DropReason::ALL, DropReason::label, |i| {
                        sum(lcores.iter().map(|l| &l.segments[s].dropped[i]))
                    }),
                })
                .collect(),
            mempool,
        }
    }

    /// Adds a predecessor's final counters (`crate::upgrade`), so that counts
    /// and rates go on across a hand-over: port by name, VR by id, segment by
    /// name, lcore by index; what is no longer here is left out, and the
    /// gauges (routes, neighbours, the pool) stay this process's.
    pub fn carry(&mut self, earlier: &Snapshot) {
        for (now, then) in self.lcores.iter_mut().zip(&earlier.lcores) {
            now.polls += then.polls;
            now.busy_polls += then.busy_polls;
            now.sleeps += then.sleeps;
        }
        for p in &mut self.ports {
            if let Some(e) = earlier.ports.iter().find(|e| e.name == p.name) {
                p.rx += e.rx;
                p.tx += e.tx;
                p.tx_dropped += e.tx_dropped;
                p.spoofed += e.spoofed;
                p.flood_limited += e.flood_limited;
            }
        }
        for v in &mut self.vrs {
            if let Some(e) = earlier.vrs.iter().find(|e| e.id == v.id) {
                v.rx += e.rx;
                v.forwarded += e.forwarded;
                v.arp_answered += e.arp_answered;
                v.ndp_answered += e.ndp_answered;
                v.announcements_ignored += e.announcements_ignored;
                add_reasons(&mut v.punted, &e.punted);
            }
        }
        for g in &mut self.segments {
            if let Some(e) = earlier.segments.iter().find(|e| e.name == g.name) {
                g.unicast += e.unicast;
                g.flooded += e.flooded;
                add_reasons(&mut g.dropped, &e.dropped);
            }
        }
    }

    /// Human-readable table.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut o = String::new();
        let _ = writeln!(
            o,
            "{:<16} {:>12} {:>12} {:>10} {:>10} {:>10} {:>10}",
            "port", "rx", "tx", "tx_drop", "rx_missed", "spoofed", "flood_lim"
        );
        for p in &self.ports {
            let missed = p.pmd.map_or(0, |s| s.rx_missed);
            let _ = writeln!(
                o,
                "{:<16} {:>12} {:>12} {:>10} {:>10} {:>10} {:>10}",
                p.name, p.rx, p.tx, p.tx_dropped, missed, p.spoofed, p.flood_limited
            );
        }
        let _ = writeln!(
            o,
            "\n{:<6} {:<12} {:>12} {:>12} {:>7} {:>6} {:>8} {:>8} {:>8}  punted",
            "vr", "name", "rx", "forwarded", "routes", "neigh", "arp_ans", "nd_ans", "ann_ign"
        );
        for v in &self.vrs {
            let punted: Vec<String> = v.punted.iter().map(|(k, n)| format!("{k}={n}")).collect();
            let _ = writeln!(
                o,
                "{:<6} {:<12} {:>12} {:>12} {:>7} {:>6} {:>8} {:>8} {:>8}  {}",
                v.id,
                v.name,
                v.rx,
                v.forwarded,
                v.routes,
                v.neighbors,
                v.arp_answered,
                v.ndp_answered,
                v.announcements_ignored,
                punted.join(" ")
            );
        }
        let _ = writeln!(
            o,
            "\n{:<12} {:>12} {:>12}  dropped",
            "segment", "unicast", "flooded"
        );
        for s in &self.segments {
            let dropped: Vec<String> = s.dropped.iter().map(|(k, n)| format!("{k}={n}")).collect();
            let _ = writeln!(
                o,
                "{:<12} {:>12} {:>12}  {}",
                s.name,
                s.unicast,
                s.flooded,
                dropped.join(" ")
            );
        }
        let _ = writeln!(
            o,
            "\nmempool: available={} in_use={}",
            self.mempool.available, self.mempool.in_use
        );
        for (i, l) in self.lcores.iter().enumerate() {
            let _ = writeln!(
                o,
                "\nlcore {i}: polls={} busy={} sleeps={}",
                l.polls, l.busy_polls, l.sleeps
            );
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(port: &str, vr: u32, n: u64) -> Snapshot {
        Snapshot {
            lcores: vec![LcoreSnapshot {
                polls: n,
                ..LcoreSnapshot::default()
            }],
            ports: vec![PortSnapshot {
                name: port.into(),
                rx: n,
                tx: n,
                ..PortSnapshot::default()
            }],
            vrs: vec![VrSnapshot {
                id: vr,
                forwarded: n,
                punted: [("no_route".to_owned(), n)].into(),
                routes: 7,
                ..VrSnapshot::default()
            }],
            segments: vec![SegmentSnapshot {
                name: "lan0".into(),
                flooded: n,
                ..SegmentSnapshot::default()
            }],
            mempool: MempoolSnapshot::default(),
        }
    }

    #[test]
    fn a_predecessors_counts_add_to_the_same_ports_vrs_and_segments() {
        let mut now = snapshot("u0", 1, 5);
        now.carry(&snapshot("u0", 1, 100));
        assert_eq!(
            (now.lcores[0].polls, now.ports[0].rx, now.ports[0].tx),
            (105, 105, 105)
        );
        assert_eq!(now.vrs[0].forwarded, 105);
        assert_eq!(now.vrs[0].punted["no_route"], 105);
        assert_eq!(now.vrs[0].routes, 7, "a gauge is this process's");
        assert_eq!(now.segments[0].flooded, 105);
        // A port or VR the predecessor did not have, or no longer here: no sum.
        now.carry(&snapshot("u9", 2, 1000));
        assert_eq!((now.ports[0].rx, now.vrs[0].forwarded), (105, 105));
        assert_eq!(now.segments[0].flooded, 1105);
    }
}
