//! The per-lcore forwarding loop (after DPDK's l3fwd): poll the RX queues this lcore
//! owns and move each frame through the stages, one module each, in the order a
//! frame meets them (docs/architecture.md):
//!
//! - [`ethernet`]: header, destination (a VR, a flood, a station);
//! - [`port_security`]: a vif's frames carry its VR interface's MAC and address;
//! - [`arp`], [`ndp`]: neighbour snooping (scoped per VR) and answers for VR
//!   addresses;
//! - [`migration`]: a guest's frame on its vif activates its VR, an announcement on
//!   an uplink quiets it if it is being cloned; changes are reported to the
//!   control side as events;
//! - [`ipv4`], [`ipv6`]: input (fast path or punt, and why) and forward (next
//!   hop, neighbour, rewrite);
//! - [`l2`]: switching inside a segment (nothing learned: every MAC behind a vif
//!   is known);
//! - [`storm`]: each port's broadcast and multicast, limited;
//! - [`punt`]: to the guest, or to the VR's new host while it drains;
//! - [`tx`]: per-port TX buffers drained on a TSC deadline.
//!
//! The stages decide; this loop only moves mbufs between them and keeps the
//! table lookups of a burst software-pipelined (every first-level load before any
//! result is used). Idle lcores back off so that several instances can share a
//! core. Per packet: no allocation, lock, syscall or log line; counters are this
//! lcore's.
mod arp;
mod ethernet;
mod ipv4;
mod ipv6;
mod l2;
mod migration;
pub(crate) mod multipath;
mod ndp;
mod port_security;
mod punt;
mod storm;
#[cfg(test)]
pub(crate) mod testing;
mod tx;

use crate::config::{Config, IdleConfig};
use crate::dataplane::{Clock, Dataplane, Model, PortRole, VrEvent, VrMac, VrState};
use crate::dpdk::{
    self, Burst, Mbuf, Mempool, PortTable, RcuReader, ReadSection, Ready, BURST_SIZE,
};
use crate::lpm::{Fib, FirstEntry};
use crate::stats::{DropReason, LcoreCounters, PuntReason};
use multipath::Route;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use vrfwd_wire::arp::Arp;
use vrfwd_wire::ethernet::{ethertype, EthernetFrame};
use vrfwd_wire::MacAddr;

/// One lcore's state: owned by it, cache-aligned, never shared.
#[repr(align(64))]
pub struct Worker<'a> {
    /// This lcore's RX and TX queue on every port.
    queue: u16,
    /// The model, read anew (under RCU) every loop: VRs come and go at run time.
    model: &'a Model,
    clock: Clock,
    ports: &'a PortTable,
    /// For the frames this lcore makes itself (announcements, ARP replies).
    pool: &'a Mempool,
    /// A VR that became active in the current burst and must announce itself.
    arrived: Option<usize>,
    /// The TSC when the current burst was received.
    now_tsc: u64,
    /// The same in seconds since start (neighbour ages).
    now: u32,
    storm: storm::StormControl,
    tx: tx::Tx<'a>,
    counters: &'a LcoreCounters,
    idle: IdleConfig,
    drain_ticks: u64,
    /// Fast-path candidates of the current burst.
    pending: [Pending; BURST_SIZE],
    /// IPv6 fast-path candidates of the current burst.
    pending6: [Pending6; BURST_SIZE],
    /// The vif sockets the last look at this lcore's epoll set found ready.
    ready: Ready,
    /// The VRs this lcore announced on arrival and announces again.
    repeats: migration::Repeats,
    /// When each VR last punted a packet to resolve a multipath neighbour.
    pacer: multipath::Pacer,
}

/// Vif sockets served per look at the epoll set (the rest wait for the next).
const VIFS_PER_LOOK: usize = 64;

#[derive(Clone, Copy, Default)]
struct Pending {
    slot: u8,
    vr: u16,
    iface: u8,
    draining: bool,
    dst: u32,
    first: FirstEntry,
}

#[derive(Clone, Copy)]
struct Pending6 {
    slot: u8,
    vr: u16,
    iface: u8,
    draining: bool,
    dst: std::net::Ipv6Addr,
}

impl Pending6 {
    const NONE: Pending6 = Pending6 {
        slot: 0,
        vr: 0,
        iface: 0,
        draining: false,
        dst: std::net::Ipv6Addr::UNSPECIFIED,
    };
}

/// What classification makes of one frame: a fast-path candidate, which stays in
/// the burst for the lookups, or an exit it takes at once.
enum Class<'d> {
    FastPath {
        vm: VrMac,
        candidate: ipv4::Candidate,
    },
    FastPath6 {
        vm: VrMac,
        candidate: ipv6::Candidate,
    },
    Exit(Exit<'d>),
}

/// Where a frame that does not take the fast path goes.
enum Exit<'d> {
    Punt {
        vm: VrMac,
        reason: PuntReason,
    },
    /// Unicast switched to these ports (the uplink, or the vifs of an extra MAC;
    /// never the ingress port).
    Switch(&'d [usize]),
    /// Broadcast or multicast, within the ingress port's storm limit.
    Flood,
    Drop(DropReason),
}

impl<'a> Worker<'a> {
    /// Worker `index`: it polls RX queue `index` of every port and transmits on TX
    /// queue `index` (as l3fwd: each port has one queue pair per lcore; the PMD,
    /// e.g. af_packet's fanout or a NIC's RSS, spreads flows over the queues).
    pub fn new(
        index: usize,
        model: &'a Model,
        ports: &'a PortTable,
        pool: &'a Mempool,
        counters: &'a LcoreCounters,
        config: &Config,
    ) -> Self {
        let dp = model.current();
        Worker {
            queue: index as u16,
            model,
            clock: dp.clock,
            ports,
            pool,
            arrived: None,
            now_tsc: 0,
            now: 0,
            storm: storm::StormControl::new(&dp, &config.flood, config.cores.len()),
            tx: tx::Tx::new(index as u16, ports, counters),
            counters,
            idle: config.idle.clone(),
            drain_ticks: dp.clock.hz() / 1_000_000 * u64::from(config.timers.tx_drain_us),
            pending: [Pending::default(); BURST_SIZE],
            pending6: [Pending6::NONE; BURST_SIZE],
            ready: Ready::new(VIFS_PER_LOOK),
            repeats: migration::Repeats::default(),
            pacer: multipath::Pacer::new(dp.vrs.len(), dp.clock.hz()),
        }
    }

    /// Runs until `quit` is set; then sends what is buffered. `rcu` is this lcore's
    /// reader of the route tables: it reports a quiescent state once per loop and
    /// goes offline while it sleeps.
    pub fn run(&mut self, quit: &AtomicBool, rcu: &mut RcuReader) {
        let mut burst = Burst::default();
        let mut empty_polls = 0u32;
        let mut sleep_us = 1u32;
        let mut last_drain = dpdk::tsc();
        while !quit.load(Ordering::Relaxed) {
            let now_tsc = dpdk::tsc();
            self.now_tsc = now_tsc;
            self.now = self.clock.seconds(now_tsc);
            let mut received = 0;
            {
                let section = rcu.section();
                let dp = self.model.read(&section);
                let ports = self.ports;
                for &p in ports.polled(&section) {
                    received += self.receive(dp, p, &mut burst, &section);
                }
                if now_tsc.wrapping_sub(last_drain) >= self.drain_ticks {
                    if ports.has_sockets() {
                        received += self.receive_vifs(dp, &mut burst, &section);
                    }
                    if !self.repeats.is_empty() {
                        self.repeat_announcements(dp, &section);
                    }
                    self.tx.flush_all(&section);
                    last_drain = now_tsc;
                }
            }
            rcu.quiescent();
            self.counters.polls.inc();
            if received > 0 {
                self.counters.busy_polls.inc();
                empty_polls = 0;
                sleep_us = 1;
            } else {
                empty_polls = empty_polls.saturating_add(1);
                if self.idle.max_sleep_us > 0 && empty_polls > self.idle.spin_polls {
                    self.tx.flush_all(&rcu.section());
                    self.counters.sleeps.inc();
                    rcu.offline_while(|| {
                        std::thread::sleep(Duration::from_micros(u64::from(sleep_us)))
                    });
                    sleep_us = (sleep_us * 2).min(self.idle.max_sleep_us);
                } else {
                    dpdk::cpu_relax();
                }
            }
        }
        self.tx.flush_all(&rcu.section());
    }

    /// Receives a burst from port `p` and moves it through the stages; returns
    /// how many frames it held.
    #[inline(always)]
    fn receive(
        &mut self,
        dp: &Dataplane,
        p: usize,
        burst: &mut Burst,
        section: &ReadSection,
    ) -> usize {
        let n = self
            .ports
            .rx_burst(p, self.queue, burst, self.pool, section);
        if n > 0 {
            self.counters.ports[p].rx.add(n as u64);
            self.process_burst(dp, p, burst, section);
            burst.clear();
        }
        n
    }

    /// Vif sockets with frames waiting, on the drain deadline: one look at the
    /// epoll set (one system call), whatever the number of vifs, then a burst
    /// from each; returns how many frames they held.
    fn receive_vifs(&mut self, dp: &Dataplane, burst: &mut Burst, section: &ReadSection) -> usize {
        let mut ready = [0usize; VIFS_PER_LOOK];
        let n = self
            .ports
            .ready(self.queue, &mut self.ready)
            .zip(&mut ready)
            .map(|(p, slot)| *slot = p)
            .count();
        ready[..n]
            .iter()
            .map(|&p| self.receive(dp, p, burst, section))
            .sum()
    }

    /// Moves a burst from `ingress` through the stages: slow-path, switched and
    /// dropped frames leave at once; fast-path candidates are collected, their
    /// first-level table entries loaded in one tight pass, then forwarded.
    fn process_burst(
        &mut self,
        dp: &Dataplane,
        ingress: usize,
        burst: &mut Burst,
        section: &ReadSection,
    ) {
        // A port is detached before the model without it is published, so
        // this is a port an lcore still polled as its VR was removed: its
        // frames are freed with the burst.
        let Some(&role) = dp.ports.get(ingress) else {
            return;
        };
        let (mut pending, mut pending6) = (0, 0);
        for i in 0..burst.len() {
            let Some(m) = burst.get(i) else { continue };
            match self.classify(dp, ingress, role, m, section) {
                Class::FastPath { vm, candidate } => {
                    self.pending[pending] = Pending {
                        slot: i as u8,
                        vr: vm.vr as u16,
                        iface: vm.iface as u8,
                        draining: candidate.draining,
                        dst: candidate.dst,
                        first: FirstEntry::default(),
                    };
                    pending += 1;
                }
                Class::FastPath6 { vm, candidate } => {
                    self.pending6[pending6] = Pending6 {
                        slot: i as u8,
                        vr: vm.vr as u16,
                        iface: vm.iface as u8,
                        draining: candidate.draining,
                        dst: candidate.dst,
                    };
                    pending6 += 1;
                }
                Class::Exit(exit) => {
                    if let Some(m) = burst.take(i) {
                        self.exit(dp, ingress, role, exit, m, section);
                    }
                }
            }
        }
        if let Some(vr) = self.arrived.take() {
            self.announce(dp, vr, section);
        }
        self.forward_pending(dp, burst, pending, section);
        if pending6 > 0 {
            self.forward_pending6(dp, burst, pending6, section);
        }
    }

    /// The IPv6 candidates of the burst: looked up and forwarded, or punted.
    /// Each run of candidates for one VR is looked up level by level together
    /// (`Fib::lookup_burst`), so the loads of its deeper levels overlap. Kept out
    /// of the IPv4 loop's code.
    #[inline(never)]
    fn forward_pending6(
        &mut self,
        dp: &Dataplane,
        burst: &mut Burst,
        pending: usize,
        section: &ReadSection,
    ) {
        const _: () = assert!(BURST_SIZE <= crate::lpm::BURST);
        let candidates = &self.pending6[..pending];
        let mut dsts = [0u128; BURST_SIZE];
        for (d, p) in dsts.iter_mut().zip(candidates) {
            *d = u128::from(p.dst);
        }
        let mut next_hops = [None; BURST_SIZE];
        let mut start = 0;
        while start < pending {
            let vr = candidates[start].vr;
            let run = candidates[start..]
                .iter()
                .take_while(|p| p.vr == vr)
                .count();
            let fib = dp.vrs[vr as usize].fib6.read(section);
            fib.lookup_burst(
                &dsts[start..start + run],
                &mut next_hops[start..start + run],
            );
            start += run;
        }
        for k in 0..pending {
            let p = self.pending6[k];
            let m = burst.take(p.slot as usize).expect("pending slot");
            let v = p.vr as usize;
            let route = multipath::route(&dp.vrs[v], next_hops[k], || {
                multipath::hash(&m, multipath::hash6)
            });
            let draining = p.draining.then_some(&dp.uplink_macs[..]);
            let pacing = self.pacer.at(usize::from(self.queue), self.now_tsc);
            let out = route
                .and_then(|route| ipv6::forward(dp, v, route, dsts[k], self.now, draining, pacing));
            self.send_forwarded(dp, (v, p.iface), out, ipv6::rewrite, m, section);
        }
    }

    /// The first-level loads of the burst's candidates, back to back so that their
    /// cache misses overlap; then each is resolved and forwarded, but for the
    /// packets of multipath routes: their paths are chosen in that pass and
    /// they are forwarded after it, so that the loads of several packets'
    /// choices (flow hash, bucket, path) overlap. A flow's packets in a burst
    /// take one route (unless the writer changes it within the burst), so
    /// they keep their order. Each candidate keeps the table it
    /// started in, even if the writer publishes a new one meanwhile: the old
    /// one lives until this lcore is quiescent.
    fn forward_pending(
        &mut self,
        dp: &Dataplane,
        burst: &mut Burst,
        pending: usize,
        section: &ReadSection,
    ) {
        let mut fibs: [Option<&Fib>; BURST_SIZE] = [None; BURST_SIZE];
        let mut last: Option<(u16, &Fib)> = None;
        for (p, fib) in self.pending[..pending].iter_mut().zip(&mut fibs) {
            let table = match last {
                Some((vr, table)) if vr == p.vr => table,
                _ => dp.vrs[p.vr as usize].fib.read(section),
            };
            last = Some((p.vr, table));
            p.first = table.start_lookup(p.dst);
            *fib = Some(table);
        }
        let mut neighbor = ipv4::RecentNeighbors::default();
        let mut paths = [(0, None); BURST_SIZE];
        let mut multipath = 0;
        for (k, fib) in fibs[..pending].iter().enumerate() {
            let p = self.pending[k];
            let next_hop = fib.expect("filled above").finish_lookup(p.dst, p.first);
            let m = burst.get(p.slot as usize).expect("pending slot");
            let vr = &dp.vrs[p.vr as usize];
            let route = multipath::route(vr, next_hop, || multipath::hash(m, multipath::hash4));
            if let Ok(Route::Multipath(path)) = route {
                paths[multipath] = (k, Some(path));
                multipath += 1;
                continue;
            }
            let m = burst.take(p.slot as usize).expect("pending slot");
            self.forward(dp, p, route, m, &mut neighbor, section);
        }
        if multipath > 0 {
            self.forward_paths(dp, burst, &paths[..multipath], &mut neighbor, section);
        }
    }

    /// Forwards the candidates of multipath routes by the paths chosen for
    /// them, `(candidate, path)` (the path an `Option` only so that the array
    /// holding them can be initialised). Kept out of the single-path loop's
    /// code.
    #[inline(never)]
    fn forward_paths<'d>(
        &mut self,
        dp: &'d Dataplane,
        burst: &mut Burst,
        paths: &[(usize, Option<multipath::Path<'d>>)],
        neighbor: &mut ipv4::RecentNeighbors,
        section: &ReadSection,
    ) {
        for &(k, path) in paths {
            let p = self.pending[k];
            let m = burst.take(p.slot as usize).expect("pending slot");
            let path = path.expect("a chosen path");
            self.forward(dp, p, Ok(Route::Multipath(path)), m, neighbor, section);
        }
    }

    /// Sends a frame that leaves without the fast path where `exit` says.
    fn exit(
        &mut self,
        dp: &Dataplane,
        ingress: usize,
        role: PortRole,
        exit: Exit<'_>,
        m: Mbuf,
        section: &ReadSection,
    ) {
        let segment = role.segment();
        let counters = &self.counters.segments[segment];
        match exit {
            Exit::Punt { vm, reason } => self.punt(dp, vm.vr, vm.iface, reason, m, section),
            Exit::Switch(ports) => {
                counters.unicast.inc();
                let targets = ports.iter().copied().filter(|&p| p != ingress);
                self.tx.flood(targets, m, section);
            }
            Exit::Flood if !self.storm.admit(ingress, role, self.now_tsc) => {
                // `m` is freed here.
                self.counters.ports[ingress].flood_limited.inc();
            }
            Exit::Flood => {
                counters.flooded.inc();
                let targets = l2::flood_targets(dp, &dp.segments[segment], ingress);
                self.tx.flood(targets, m, section);
            }
            // `m` is freed here.
            Exit::Drop(reason) => counters.dropped[reason as usize].inc(),
        }
    }

    /// Runs a frame through Ethernet input, port security, ARP and migration, and
    /// says where it goes.
    #[inline(always)]
    fn classify<'d>(
        &mut self,
        dp: &'d Dataplane,
        ingress: usize,
        role: PortRole,
        m: &Mbuf,
        section: &ReadSection,
    ) -> Class<'d> {
        let frame = m.data();
        let eth = match ethernet::header(frame) {
            Ok(eth) => eth,
            Err(reason) => return Class::Exit(Exit::Drop(reason)),
        };
        let arp = arp::packet(eth.ethertype, frame);
        let nd = ndp::packet(eth.ethertype, frame);
        if let Err(reason) = port_security::check(dp, role, &eth, arp.as_ref(), nd.as_ref()) {
            self.counters.ports[ingress].spoofed.inc();
            return Class::Exit(Exit::Drop(reason));
        }
        let segment = role.segment();
        let announced = arp
            .as_ref()
            .is_some_and(|a| migration::announces(eth.ethertype, eth.src, a));
        if let Some(a) = arp {
            self.arp_input(dp, ingress, role, eth.ethertype, &a, section);
        }
        if let Some(n) = nd {
            self.ndp_input(dp, ingress, role, &eth, &n, section);
        }
        if announced {
            self.heard_announcement(dp, role, eth.src);
        }
        if let Some(event) = migration::heard_guest(dp, role, eth.src, announced) {
            self.report(dp, event);
        }
        let exit = match ethernet::next(dp, ingress, role, eth.dst) {
            ethernet::Next::Vr(vm) => {
                self.counters.vrs[vm.vr].rx.inc();
                let state = dp.vrs[vm.vr].state();
                if eth.ethertype == ethertype::IPV6 {
                    match ipv6::input(state, frame, m.is_chained()) {
                        Ok(candidate) => return Class::FastPath6 { vm, candidate },
                        Err(reason) => Exit::Punt { vm, reason },
                    }
                } else {
                    match ipv4::input(state, eth.ethertype, frame, m.is_chained()) {
                        Ok(candidate) => return Class::FastPath { vm, candidate },
                        Err(reason) => Exit::Punt { vm, reason },
                    }
                }
            }
            ethernet::Next::Flood => Exit::Flood,
            ethernet::Next::Switch => match l2::switch(&dp.segments[segment], ingress, eth.dst) {
                l2::Switched::To(ports) => Exit::Switch(ports),
                l2::Switched::Drop(reason) => Exit::Drop(reason),
            },
            ethernet::Next::Drop(reason) => Exit::Drop(reason),
        };
        Class::Exit(exit)
    }

    /// The ARP stage for an ARP or RARP packet `a` (of `ether_type`): the slow
    /// path, kept out of the loop's code.
    #[cold]
    #[inline(never)]
    fn arp_input(
        &mut self,
        dp: &Dataplane,
        ingress: usize,
        role: PortRole,
        ether_type: u16,
        a: &Arp,
        section: &ReadSection,
    ) {
        if ether_type == ethertype::ARP {
            arp::snoop(dp, role.segment(), role, a, self.now);
            if let Some((vr, reply)) = arp::answer(dp, role.segment(), ingress, a) {
                if self.tx.send_frame(self.pool, ingress, &reply, section) {
                    self.counters.vrs[vr].arp_answered.inc();
                }
            }
        }
    }

    /// The neighbour-discovery stage for message `nd` in a frame with header
    /// `eth`: the slow path, kept out of the loop's code.
    #[cold]
    #[inline(never)]
    fn ndp_input(
        &mut self,
        dp: &Dataplane,
        ingress: usize,
        role: PortRole,
        eth: &ethernet::Header,
        nd: &ndp::Ndp,
        section: &ReadSection,
    ) {
        ndp::snoop(dp, role.segment(), role, nd, (eth.src, eth.dst), self.now);
        if let Some((vr, advertisement)) = ndp::answer(dp, role.segment(), ingress, nd, eth.src) {
            if self
                .tx
                .send_frame(self.pool, ingress, &advertisement, section)
            {
                self.counters.vrs[vr].ndp_answered.inc();
            }
        }
    }

    /// `mac` announced itself (RARP, gratuitous ARP) on a port of role `role`.
    fn heard_announcement(&mut self, dp: &Dataplane, role: PortRole, mac: MacAddr) {
        match migration::heard_announcement(dp, role, mac) {
            Some(migration::Heard::Quieted { vr }) => self.report(dp, VrEvent::Quieted { vr }),
            Some(migration::Heard::Ignored { vr }) => {
                self.counters.vrs[vr].announcements_ignored.inc()
            }
            None => {}
        }
    }

    /// Reports a migration event to the control side; an arrived VR is announced
    /// once the burst is classified.
    fn report(&mut self, dp: &Dataplane, event: VrEvent) {
        if let VrEvent::Arrived { vr } = event {
            self.arrived = Some(vr);
        }
        dp.events.report(event);
    }

    /// Announces every interface of VR `v` out of its segment's uplink, now and
    /// again on [`migration::REPEATS_MS`]. Rare: kept out of the loop's code.
    #[cold]
    #[inline(never)]
    fn announce(&mut self, dp: &Dataplane, v: usize, section: &ReadSection) {
        self.repeats.arrived(v, self.now_tsc);
        self.send_announcements(dp, v, section);
    }

    /// The repeats that are due, for the VRs still active (one that left since
    /// must not pull the switches back here). Rare: kept out of the loop's code.
    #[cold]
    #[inline(never)]
    fn repeat_announcements(&mut self, dp: &Dataplane, section: &ReadSection) {
        let mut repeats = std::mem::take(&mut self.repeats);
        repeats.take_due(self.now_tsc, dp.clock.hz() / 1000, |v| {
            // (A VR removed since is not announced.)
            if dp
                .vrs
                .get(v)
                .is_some_and(|vr| vr.state() == VrState::Active)
            {
                self.send_announcements(dp, v, section);
            }
        });
        self.repeats = repeats;
    }

    fn send_announcements(&mut self, dp: &Dataplane, v: usize, section: &ReadSection) {
        for (port, frame) in migration::announcements(dp, v) {
            if !self.tx.send_frame(self.pool, port, &frame, section) {
                return;
            }
        }
        for (port, frame) in ndp::unsolicited(dp, v) {
            if !self.tx.send_frame(self.pool, port, &frame, section) {
                return;
            }
        }
    }

    /// Forwards a fast-path candidate by the route its lookup gave
    /// ([`multipath::route`]), or punts it.
    #[inline(always)]
    fn forward<'d>(
        &mut self,
        dp: &'d Dataplane,
        p: Pending,
        route: Result<Route<'d>, PuntReason>,
        m: Mbuf,
        neighbor: &mut ipv4::RecentNeighbors,
        section: &ReadSection,
    ) {
        let v = p.vr as usize;
        let draining = p.draining.then_some(&dp.uplink_macs[..]);
        let pacing = self.pacer.at(usize::from(self.queue), self.now_tsc);
        let out = route.and_then(|route| {
            ipv4::forward(dp, v, route, p.dst, self.now, neighbor, draining, pacing)
        });
        self.send_forwarded(dp, (v, p.iface), out, ipv4::rewrite, m, section);
    }

    /// Sends `m` (arrived on interface `iface` of VR `v`: `(v, iface)`) where
    /// forward said, rewritten by `rewrite`, or punts it for the reason forward
    /// or the rewrite gave.
    #[inline(always)]
    fn send_forwarded(
        &mut self,
        dp: &Dataplane,
        (v, iface): (usize, u8),
        out: Result<ipv4::Out, PuntReason>,
        rewrite: impl Fn(&mut [u8], &ipv4::Out) -> Result<(), PuntReason>,
        mut m: Mbuf,
        section: &ReadSection,
    ) {
        let sent = out.and_then(|out| {
            let frame = m.data_mut().ok_or(PuntReason::Length)?;
            rewrite(frame, &out).map(|()| out.port)
        });
        match sent {
            Ok(port) => {
                self.counters.vrs[v].forwarded.inc();
                self.tx.send(port, m, section);
            }
            Err(reason) => self.punt(dp, v, iface as usize, reason, m, section),
        }
    }

    /// Punts `m` for interface `iface` of VR `vr` where [`punt::target`] says.
    fn punt(
        &mut self,
        dp: &Dataplane,
        vr: usize,
        iface: usize,
        reason: PuntReason,
        mut m: Mbuf,
        section: &ReadSection,
    ) {
        let mut to = punt::target(dp, vr, iface, reason, &dp.uplink_macs);
        if let Some(source) = to.source {
            let frame = m
                .data_mut()
                .and_then(|f| EthernetFrame::new_checked(f).ok());
            match frame {
                Some(mut eth) => eth.set_src(source),
                // Not writable: the guest gets it rather than the new host unchanged.
                None => to = punt::to_guest(dp, vr, iface, reason),
            }
        }
        self.counters.vrs[vr].punted[to.reason as usize].inc();
        self.tx.send(to.port, m, section);
    }
}
