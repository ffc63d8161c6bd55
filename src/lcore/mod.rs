//! The per-lcore forwarding loop (after DPDK's l3fwd): poll the RX queues this lcore
//! owns, classify each frame, forward IPv4 for VRs on the fast path with one
//! software-pipelined table lookup pass per burst, hand everything else to the
//! guest, switch the rest inside its segment, and send in bursts from per-port TX
//! buffers drained on a TSC deadline. Idle lcores back off so that several
//! instances can share a core.
//!
//! Migration (docs/migration.md) costs the fast path one load of the VR's state per frame:
//! a standby VR's frames go to its vif; a draining VR's frames are forwarded with
//! the segment uplink's own MAC, and its slow-path frames handed to the VR's new
//! host. A frame from a VR's guest on its vif (QEMU's RARP, Xen's gratuitous ARP
//! come first after a migration) means the guest runs here: the VR becomes active
//! and announces itself on every uplink. An announcement (RARP, gratuitous ARP)
//! of an active VR's MAC heard on an uplink means the guest moved away: it drains.
//!
//! Per packet: no allocation, lock, syscall or log line; counters are this lcore's.
use crate::config::{IdleConfig, Timers};
use crate::dataplane::{neighbor_key, Dataplane, NextHop, PortRole, VrMac, VrState};
use crate::dpdk::{
    self, Burst, Mbuf, Mempool, PortTable, RcuReader, ReadSection, TxBuffer, BURST_SIZE,
};
use crate::lpm::{Fib, FirstEntry};
use crate::net::{arp, ether, ipv4, MacAddr};
use crate::stats::{DropReason, LcoreCounters, PuntReason};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// One lcore's state: owned by it, cache-aligned, never shared.
#[repr(align(64))]
pub struct Worker<'a> {
    /// This lcore's RX and TX queue on every port.
    queue: u16,
    dp: &'a Dataplane,
    ports: &'a PortTable,
    /// For the frames this lcore makes itself (announcements).
    pool: &'a Mempool,
    /// Each segment's uplink MAC: the source of frames a draining VR still forwards.
    uplink_macs: Vec<MacAddr>,
    /// A VR that became active in the current burst and must announce itself.
    arrived: Option<usize>,
    tx: Vec<TxBuffer>,
    counters: &'a LcoreCounters,
    idle: IdleConfig,
    drain_ticks: u64,
    /// Fast-path candidates of the current burst.
    pending: [Pending; BURST_SIZE],
}

#[derive(Clone, Copy, Default)]
struct Pending {
    slot: u8,
    vr: u16,
    iface: u8,
    draining: bool,
    dst: u32,
    first: FirstEntry,
}

impl<'a> Worker<'a> {
    /// Worker `index`: it polls RX queue `index` of every port and transmits on TX
    /// queue `index` (as l3fwd: each port has one queue pair per lcore; the PMD,
    /// e.g. af_packet's fanout or a NIC's RSS, spreads flows over the queues).
    pub fn new(
        index: usize,
        dp: &'a Dataplane,
        ports: &'a PortTable,
        pool: &'a Mempool,
        counters: &'a LcoreCounters,
        idle: &IdleConfig,
        timers: &Timers,
    ) -> Self {
        Worker {
            queue: index as u16,
            dp,
            ports,
            pool,
            uplink_macs: dp
                .segments
                .iter()
                .map(|s| {
                    ports
                        .mac(s.uplink)
                        .expect("uplinks have a configured device")
                })
                .collect(),
            arrived: None,
            tx: (0..ports.len()).map(|_| TxBuffer::default()).collect(),
            counters,
            idle: idle.clone(),
            drain_ticks: dp.clock.hz() / 1_000_000 * u64::from(timers.tx_drain_us),
            pending: [Pending::default(); BURST_SIZE],
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
            let now = self.dp.clock.seconds(now_tsc);
            let mut received = 0;
            {
                let section = rcu.section();
                for p in 0..self.ports.len() {
                    let n = self.ports.rx_burst(p, self.queue, &mut burst, &section);
                    if n > 0 {
                        received += n;
                        self.counters.ports[p].rx.add(n as u64);
                        self.process_burst(p, &mut burst, now, &section);
                        burst.clear();
                    }
                }
                if now_tsc.wrapping_sub(last_drain) >= self.drain_ticks {
                    self.flush_all(&section);
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
                    self.flush_all(&rcu.section());
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
        self.flush_all(&rcu.section());
    }

    fn flush_all(&mut self, section: &ReadSection) {
        for p in 0..self.tx.len() {
            self.flush(p, section);
        }
    }

    fn flush(&mut self, port: usize, section: &ReadSection) {
        let (sent, dropped) = self
            .ports
            .flush(port, self.queue, &mut self.tx[port], section);
        let c = &self.counters.ports[port];
        c.tx.add(u64::from(sent));
        c.tx_dropped.add(u64::from(dropped));
    }

    /// Queues `m` for `port`, sending a burst when one is full.
    #[inline(always)]
    fn send(&mut self, port: usize, m: Mbuf, section: &ReadSection) {
        if let Err(m) = self.tx[port].push(m) {
            self.flush(port, section);
            // The buffer is empty now; a second refusal cannot happen.
            let _ = self.tx[port].push(m);
        }
        if self.tx[port].has_full_burst() {
            self.flush(port, section);
        }
    }

    /// Classifies a burst from `ingress`: slow-path, switched and dropped frames are
    /// dealt with at once; fast-path candidates are collected, their first-level
    /// table entries loaded in one tight pass, then resolved.
    fn process_burst(
        &mut self,
        ingress: usize,
        burst: &mut Burst,
        now: u32,
        section: &ReadSection,
    ) {
        let role = self.dp.ports[ingress];
        let segment = role.segment();
        let mut pending = 0;
        // A burst mostly comes from one station: learn each source MAC once per burst.
        let mut learned = MacAddr::default();
        for i in 0..burst.len() {
            let Some(m) = burst.get(i) else { continue };
            match self.classify(ingress, role, segment, m, now, &mut learned, section) {
                Class::FastPath { vm, draining, dst } => {
                    self.pending[pending] = Pending {
                        slot: i as u8,
                        vr: vm.vr as u16,
                        iface: vm.iface as u8,
                        draining,
                        dst,
                        first: FirstEntry::default(),
                    };
                    pending += 1;
                }
                Class::Punt { vm, reason } => {
                    let m = burst.take(i).expect("present");
                    self.punt(vm.vr, vm.iface, reason, m, section);
                }
                Class::Unicast(port) => {
                    self.counters.segments[segment].unicast.inc();
                    let m = burst.take(i).expect("present");
                    self.send(port, m, section);
                }
                Class::Flood => {
                    self.counters.segments[segment].flooded.inc();
                    let m = burst.take(i).expect("present");
                    self.flood(segment, ingress, m, section);
                }
                Class::Drop(reason) => {
                    self.counters.segments[segment].dropped[reason as usize].inc();
                    drop(burst.take(i));
                }
            }
        }
        if let Some(vr) = self.arrived.take() {
            self.announce(vr, section);
        }
        // The first-level loads of the whole burst, back to back, so that their cache
        // misses overlap; then each candidate is resolved.
        // Each candidate keeps the table it started in, even if the writer publishes
        // a new one meanwhile: the old one lives until this lcore is quiescent.
        let dp = self.dp;
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
        let mut resolved = ResolvedNeighbor::default();
        for (k, fib) in fibs[..pending].iter().enumerate() {
            let p = self.pending[k];
            let m = burst.take(p.slot as usize).expect("pending slot");
            self.forward(
                p,
                m,
                fib.expect("filled above"),
                now,
                &mut resolved,
                section,
            );
        }
    }

    /// Decides what to do with one frame (reads only; learns MACs and neighbours,
    /// answers ARP for VR addresses). `learned` is the source MAC learned last in
    /// this burst.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn classify(
        &mut self,
        ingress: usize,
        role: PortRole,
        segment: usize,
        m: &Mbuf,
        now: u32,
        learned: &mut MacAddr,
        section: &ReadSection,
    ) -> Class {
        let frame = m.data();
        let Some(eth) = ether::parse(frame) else {
            return Class::Drop(DropReason::Runt);
        };
        let seg = &self.dp.segments[segment];
        if eth.src != *learned && !eth.src.is_multicast() && !eth.src.is_zero() {
            self.learn_mac(segment, eth.src, ingress, now);
            *learned = eth.src;
        }
        if eth.ethertype == ether::ETHERTYPE_ARP || eth.ethertype == ether::ETHERTYPE_RARP {
            if let Some(a) = arp::parse(&frame[ether::HEADER_LEN..]) {
                if eth.ethertype == ether::ETHERTYPE_ARP {
                    self.dp.snoop_arp(segment, role, &a, now);
                    self.answer_arp(ingress, segment, &a, section);
                }
                if matches!(role, PortRole::Uplink { .. })
                    && arp::announces(eth.ethertype, eth.src, &a)
                {
                    self.heard_announcement(segment, eth.src);
                }
            }
        }
        if let PortRole::Vif { vr, iface, .. } = role {
            if eth.src == self.dp.vrs[vr].interfaces[iface].mac {
                self.guest_is_here(vr);
            }
        }
        if eth.dst.is_multicast() {
            return Class::Flood;
        }
        if let Some(vm) = seg.vr_for_mac(eth.dst) {
            if ingress == self.dp.vrs[vm.vr].interfaces[vm.iface].vif {
                return Class::Drop(DropReason::Loop);
            }
            self.counters.vrs[vm.vr].rx.inc();
            let state = self.dp.vrs[vm.vr].state();
            if state == VrState::Standby {
                return Class::Punt {
                    vm,
                    reason: PuntReason::Standby,
                };
            }
            if eth.ethertype != ether::ETHERTYPE_IPV4 {
                let reason = if eth.ethertype == ether::ETHERTYPE_ARP {
                    PuntReason::Arp
                } else {
                    PuntReason::NotIpv4
                };
                return Class::Punt { vm, reason };
            }
            return match ipv4::check(frame) {
                Ok(f) if !m.is_chained() => Class::FastPath {
                    vm,
                    draining: state == VrState::Draining,
                    dst: f.dst,
                },
                Ok(_) => Class::Punt {
                    vm,
                    reason: PuntReason::Length,
                },
                Err(unfit) => Class::Punt {
                    vm,
                    reason: punt_reason(unfit),
                },
            };
        }
        match seg.macs.get(eth.dst.to_u64(), now) {
            Some(port) if port as usize == ingress => Class::Drop(DropReason::Filtered),
            Some(port) => Class::Unicast(port as usize),
            None => Class::Flood,
        }
    }

    /// Answers an ARP request for the address of a VR active here, arriving from
    /// anywhere but that VR's own vif. The request still goes on to the guest,
    /// which learns the asker and may answer too; but stations keep their entry
    /// for the VR while its guest cannot answer (frozen by a migration: seconds
    /// on slow hosts, long enough for a neighbour entry to fail).
    fn answer_arp(&mut self, ingress: usize, segment: usize, a: &arp::Arp, section: &ReadSection) {
        if a.op != arp::OP_REQUEST {
            return;
        }
        let dp = self.dp;
        for vm in &dp.segments[segment].vr_macs {
            let vr = &dp.vrs[vm.vr];
            let ifc = &vr.interfaces[vm.iface];
            if ifc.address != a.target_ip || ifc.vif == ingress || vr.state() != VrState::Active {
                continue;
            }
            let Some(reply) = arp::reply_to(a, (ifc.mac, ifc.address)) else {
                return;
            };
            if self.send_frame(ingress, &reply, section) {
                self.counters.vrs[vm.vr].arp_answered.inc();
            }
            return;
        }
    }

    /// `mac` announced itself on an uplink: if it is the MAC of a VR active here,
    /// its guest resumed on another host, and this one drains.
    fn heard_announcement(&self, segment: usize, mac: MacAddr) {
        if let Some(vm) = self.dp.segments[segment].vr_for_mac(mac) {
            self.dp.vrs[vm.vr].transition(VrState::Active, VrState::Draining);
        }
    }

    /// VR `v`'s guest sent a frame on its vif: it runs here. A VR in standby (or
    /// still draining after its guest left, or activated by its agent's hello
    /// before this frame) becomes active, and announces itself once the burst is
    /// classified.
    fn guest_is_here(&mut self, v: usize) {
        let vr = &self.dp.vrs[v];
        let arrived = match vr.state() {
            VrState::Active => vr.take_unannounced(),
            VrState::Standby | VrState::Draining => {
                vr.transition(VrState::Standby, VrState::Active)
                    || vr.transition(VrState::Draining, VrState::Active)
            }
        };
        if arrived {
            self.arrived = Some(v);
        }
    }

    /// Announces every interface of VR `v` out of its segment's uplink, so that the
    /// switches learn at once where the VR's MACs are now.
    fn announce(&mut self, v: usize, section: &ReadSection) {
        let dp = self.dp;
        for ifc in &dp.vrs[v].interfaces {
            if !self.send_frame(
                dp.segments[ifc.segment].uplink,
                &arp::rarp_announcement(ifc.mac),
                section,
            ) {
                return;
            }
        }
    }

    /// Queues a frame vrfwd made itself (an announcement, an ARP reply) for
    /// `port`; false when no mbuf was free (or the frame did not fit one).
    fn send_frame(&mut self, port: usize, frame: &[u8], section: &ReadSection) -> bool {
        let Some(mut m) = self.pool.alloc() else {
            return false;
        };
        let fits = m.append(frame);
        if fits {
            self.send(port, m, section);
        }
        fits
    }

    fn learn_mac(&self, segment: usize, mac: MacAddr, port: usize, now: u32) {
        let seg = &self.dp.segments[segment];
        if seg.macs.learn(mac.to_u64(), port as u64, now) == crate::dataplane::Learned::Full {
            self.counters.segments[segment].learn_full.inc();
        }
    }

    /// Resolves a fast-path candidate; forwards it or punts it. `resolved` carries
    /// the last neighbour looked up in this burst (most of a burst shares one).
    #[inline(always)]
    fn forward(
        &mut self,
        p: Pending,
        mut m: Mbuf,
        fib: &Fib,
        now: u32,
        resolved: &mut ResolvedNeighbor,
        section: &ReadSection,
    ) {
        let (v, arrived_on) = (p.vr as usize, p.iface as usize);
        let vr = &self.dp.vrs[v];
        let Some(nh) = fib.finish_lookup(p.dst, p.first) else {
            return self.punt(v, arrived_on, PuntReason::NoRoute, m, section);
        };
        let (iface, neighbor) = match vr.next_hops.get(nh) {
            Some(NextHop::Attached { iface }) => (iface, p.dst),
            Some(NextHop::Gateway { iface, via }) => (iface, via),
            Some(NextHop::Local) | None => {
                return self.punt(v, arrived_on, PuntReason::ToRouter, m, section)
            }
        };
        let key = neighbor_key(iface, neighbor);
        let mac = if resolved.vr == v && resolved.key == key {
            resolved.mac
        } else {
            let Some(mac) = vr.neighbors.get(key, now) else {
                return self.punt(v, arrived_on, PuntReason::Unresolved, m, section);
            };
            *resolved = ResolvedNeighbor { vr: v, key, mac };
            mac
        };
        let egress = &vr.interfaces[iface];
        let source = if p.draining {
            self.uplink_macs[egress.segment]
        } else {
            egress.mac
        };
        let Some(frame) = m.data_mut() else {
            return self.punt(v, arrived_on, PuntReason::Length, m, section);
        };
        ether::set_addresses(frame, MacAddr::from_u64(mac), source);
        ipv4::decrement_ttl(frame);
        self.counters.vrs[v].forwarded.inc();
        let uplink = self.dp.segments[egress.segment].uplink;
        self.send(uplink, m, section);
    }

    /// Hands `m` to VR `vr`'s guest through the vif of `iface`; while the VR drains,
    /// to its new host instead: back out of the uplink, still addressed to the VR's
    /// MAC (which the switches now place at the new host), from the uplink's own
    /// MAC so that they learn nothing wrong.
    fn punt(
        &mut self,
        vr: usize,
        iface: usize,
        reason: PuntReason,
        mut m: Mbuf,
        section: &ReadSection,
    ) {
        let ifc = &self.dp.vrs[vr].interfaces[iface];
        if self.dp.vrs[vr].state() == VrState::Draining {
            let source = self.uplink_macs[ifc.segment];
            let uplink = self.dp.segments[ifc.segment].uplink;
            if let Some(frame) = m.data_mut() {
                self.counters.vrs[vr].punted[PuntReason::HandedOver as usize].inc();
                ether::set_source(frame, source);
                return self.send(uplink, m, section);
            }
        }
        self.counters.vrs[vr].punted[reason as usize].inc();
        self.send(ifc.vif, m, section);
    }

    fn flood(&mut self, segment: usize, ingress: usize, m: Mbuf, section: &ReadSection) {
        let dp = self.dp;
        let mut targets = dp.segments[segment]
            .ports
            .iter()
            .copied()
            .filter(|&p| p != ingress)
            .peekable();
        while let Some(port) = targets.next() {
            if targets.peek().is_some() {
                let copy = m.share();
                self.send(port, copy, section);
            } else {
                self.send(port, m, section);
                return;
            }
        }
        // No other port in the segment: `m` is dropped (freed) here.
    }
}

/// A neighbour resolved earlier in the same burst (key 0: none).
#[derive(Default)]
struct ResolvedNeighbor {
    vr: usize,
    key: u64,
    mac: u64,
}

/// The classification of one frame.
enum Class {
    FastPath { vm: VrMac, draining: bool, dst: u32 },
    Punt { vm: VrMac, reason: PuntReason },
    Unicast(usize),
    Flood,
    Drop(DropReason),
}

fn punt_reason(u: ipv4::Unfit) -> PuntReason {
    match u {
        ipv4::Unfit::Truncated => PuntReason::Truncated,
        ipv4::Unfit::Version => PuntReason::Version,
        ipv4::Unfit::Options => PuntReason::Options,
        ipv4::Unfit::Length => PuntReason::Length,
        ipv4::Unfit::Checksum => PuntReason::Checksum,
        ipv4::Unfit::TtlExpired => PuntReason::TtlExpired,
    }
}
