//! The running model every lcore reads: ports and their roles, segments (L2
//! domains: an uplink and the vifs of the VR interfaces on it, every MAC behind
//! a vif known from the config), and VRs (interfaces, route table, next hops,
//! neighbours). Built from the config's resolved topology; within one model
//! only atomics change (tables, VR states, neighbour learning, the migration
//! events queue), so lcores share it by `&`. A VR added or removed at run time
//! makes a new model ([`Dataplane::with_vr`], [`Dataplane::without_vr`]) that
//! shares every other VR, published under RCU by [`Model`].
mod cache;
mod ecmp;
mod group;
mod macindex;
mod model;
mod nexthop;
mod slots;

pub use cache::{AgeingCache, CacheKey, Learned, STATIC};
pub use ecmp::{from_rss, Buckets, EcmpError, Flow, BUCKETS, MAX_PATHS};
pub use group::{Full, Group, Groups, Path, Route, RouteError};
use macindex::MacIndex;
pub use model::Model;
pub use nexthop::{NextHop, NextHops};
pub use slots::Slots;

pub use crate::config::{Interface, PortRole};

use crate::config::{Config, StaticPath, StaticRoute, TableSize};
use crate::dpdk::{Rcu, RcuCell};
use crate::lpm::{Batch, Change, DualPair, Fib, Stride, TableError, TablePair};
use ipnet::IpNet;
use rustc_hash::FxHashMap;
use std::collections::hash_map::Entry;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use vrfwd_wire::MacAddr;

/// Groups of a wide table: room for every prefix longer than /24 of a 1M-route
/// table at two groups each, with a margin.
pub const WIDE_MAX_GROUPS: u32 = 1 << 20;
/// Neighbour-cache slots per VR.
const NEIGHBOR_SLOTS: usize = 4096;
/// IPv6 neighbours per VR (40 B a slot, allocated with the VR).
const NEIGHBOR6_SLOTS: usize = 1024;
/// Next-hop slots per VR.
const NEXT_HOP_SLOTS: usize = 4096;
/// Multipath groups per VR (8 B each until used; a group allocates its ~1.2 KiB
/// and its counters when installed).
const GROUP_SLOTS: usize = 1024;

/// Where a VR stands on this host during a migration (docs/migration.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum VrState {
    /// Its guest runs here: the fast path forwards with the VR's MACs.
    Active = 0,
    /// Its guest runs elsewhere (or has not arrived): no fast path, frames for it
    /// go to its vif; a clone session may be filling its table.
    Standby = 1,
    /// Its guest moved to another host, on authenticated word (the destination
    /// over the clone session, the hypervisor's hook, the operator): what still
    /// arrives here is forwarded, but never with the VR's MACs, until the drain ends.
    Draining = 2,
    /// Its MAC was announced on an uplink while it is being cloned: it forwards
    /// as when draining (never with its MACs, no ARP answers) but hands nothing
    /// over; active again unless the authenticated word follows in
    /// `control.quiet_ms`.
    Quiet = 3,
}

impl VrState {
    /// Every state.
    pub const ALL: [VrState; 4] = [
        VrState::Active,
        VrState::Standby,
        VrState::Draining,
        VrState::Quiet,
    ];

    pub fn label(self) -> &'static str {
        match self {
            VrState::Active => "active",
            VrState::Standby => "standby",
            VrState::Draining => "draining",
            VrState::Quiet => "quiet",
        }
    }

    /// Whether the fast path forwards from the uplink's MAC rather than the VR's
    /// (another host may own the VR's MACs now).
    #[inline(always)]
    pub fn anonymous(self) -> bool {
        matches!(self, VrState::Draining | VrState::Quiet)
    }
}

/// One virtual router.
pub struct Vr {
    pub id: u32,
    pub name: String,
    /// What its guest's agent proves in its hello (none: no agent may connect).
    pub credential: Option<String>,
    pub interfaces: Vec<Interface>,
    /// The published route table (swapped by the route writer under RCU).
    pub fib: RcuCell<Fib>,
    /// The published IPv6 route table, likewise.
    pub fib6: RcuCell<Fib<u128>>,
    /// Routes in the published table (kept by the route writer, for operators).
    pub routes: AtomicUsize,
    pub next_hops: NextHops,
    /// The sets of paths that multipath routes' next hops name.
    pub groups: Groups,
    pub neighbors: AgeingCache,
    /// IPv6 neighbours, keyed by [`neighbor6_key`].
    pub neighbors6: AgeingCache<[u64; 3]>,
    state: AtomicU8,
    /// Activated by its agent's session before the guest's first frame on its
    /// vif: that frame must still make an lcore announce the VR.
    unannounced: AtomicBool,
    /// This host is cloning the VR to another (a migration is under way): an
    /// announcement of its MAC on an uplink makes it quiet, not more.
    cloning: AtomicBool,
    /// How many times the VR entered each state (by `VrState as usize`):
    /// entries to active are arrivals, entries to draining departures.
    entered: [AtomicU64; 4],
}

impl Vr {
    #[inline(always)]
    pub fn state(&self) -> VrState {
        match self.state.load(Ordering::Acquire) {
            0 => VrState::Active,
            1 => VrState::Standby,
            2 => VrState::Draining,
            _ => VrState::Quiet,
        }
    }

    /// `next_hop` as the operator sees it: `via ADDR dev IFACE`, `dev IFACE`,
    /// `local` or `multipath`.
    pub fn next_hop_name(&self, next_hop: NextHop) -> String {
        let dev = |iface: usize| self.interfaces.get(iface).map_or("?", |i| i.name.as_str());
        match next_hop {
            NextHop::Local => "local".into(),
            NextHop::Attached { iface } => format!("dev {}", dev(iface)),
            NextHop::Gateway { iface, via } => {
                format!("via {} dev {}", std::net::Ipv4Addr::from(via), dev(iface))
            }
            NextHop::Gateway6 { iface, via } => {
                format!("via {} dev {}", std::net::Ipv6Addr::from(via), dev(iface))
            }
            NextHop::Group { .. } => "multipath".into(),
        }
    }

    /// Marks the start (true) or end (false) of a clone of this VR to another host.
    pub fn set_cloning(&self, cloning: bool) {
        self.cloning.store(cloning, Ordering::Release);
    }

    #[inline]
    pub fn is_cloning(&self) -> bool {
        self.cloning.load(Ordering::Acquire)
    }

    /// Active or quiet → draining, on authenticated word that the guest runs
    /// elsewhere; false in any other state.
    pub fn depart(&self) -> bool {
        self.transition(VrState::Active, VrState::Draining)
            || self.transition(VrState::Quiet, VrState::Draining)
    }

    /// Quiet → active (no word followed the announcement); the guest's next
    /// frame announces the VR again, correcting the switches.
    pub fn unquiet(&self) -> bool {
        self.activate_unannounced(VrState::Quiet)
    }

    /// `from` → active by the control side, owing the announcement that the
    /// guest's next frame on its vif makes an lcore send.
    fn activate_unannounced(&self, from: VrState) -> bool {
        let activated = self.transition(from, VrState::Active);
        if activated {
            self.unannounced.store(true, Ordering::Release);
        }
        activated
    }

    /// Forgets every neighbour learned or announced (static ones stay).
    pub fn forget_learned_neighbors(&self, now: u32) {
        for (key, _, age) in self.neighbors.entries(now) {
            if age.is_some() {
                self.neighbors.forget(key);
            }
        }
    }

    /// Moves from `from` to `to`; false if the VR was not in `from` (another lcore
    /// or the control thread got there first).
    pub fn transition(&self, from: VrState, to: VrState) -> bool {
        let moved = self
            .state
            .compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if moved {
            self.entered[to as usize].fetch_add(1, Ordering::Relaxed);
        }
        moved
    }

    /// How many times the VR entered `state` since vrfwd started.
    pub fn times_entered(&self, state: VrState) -> u64 {
        self.entered[state as usize].load(Ordering::Relaxed)
    }

    /// Standby → active from the control side (the guest's agent said hello
    /// here); the guest's next frame on its vif announces the VR.
    pub fn activate_from_session(&self) -> bool {
        self.activate_unannounced(VrState::Standby)
    }

    /// Whether an announcement is still owed since [`Vr::activate_from_session`]
    /// (true once).
    #[inline]
    pub fn take_unannounced(&self) -> bool {
        self.unannounced.load(Ordering::Relaxed) && self.unannounced.swap(false, Ordering::AcqRel)
    }
}

/// The writer's side of one VR's routes: its table pairs, IPv4 and IPv6, and the
/// routes vrfwd itself installs in them (local addresses, broadcast, multicast,
/// connected subnets and configured static routes), which a guest's full sync
/// never removes.
pub struct VrRoutes {
    pub tables: DualPair,
    pub system: Batch,
}

/// The neighbour-cache key of `ip` on interface `iface` (never 0).
#[inline(always)]
pub fn neighbor_key(iface: usize, ip: u32) -> u64 {
    ((iface as u64 + 1) << 32) | u64::from(ip)
}

/// The IPv6 neighbour-cache key of `ip` on interface `iface`: a link-local
/// address is only meaningful with its interface, and a global one is learned
/// per interface as IPv4 addresses are.
#[inline(always)]
pub fn neighbor6_key(iface: usize, ip: u128) -> [u64; 3] {
    [iface as u64 + 1, (ip >> 64) as u64, ip as u64]
}

/// The interface and address a neighbour-cache key was made of.
pub fn neighbor_of_key(key: u64) -> (usize, Ipv4Addr) {
    (((key >> 32) - 1) as usize, Ipv4Addr::from(key as u32))
}

/// The interface and address of an IPv6 neighbour-cache key.
pub fn neighbor6_of_key(key: [u64; 3]) -> (usize, std::net::Ipv6Addr) {
    let ip = (u128::from(key[1]) << 64) | u128::from(key[2]);
    ((key[0] - 1) as usize, ip.into())
}

/// A VR interface MAC on a segment, for the per-frame "is this for a VR" test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VrMac {
    pub mac: u64,
    pub vr: usize,
    pub iface: usize,
    /// The interface's vif (a guest's frame to its own MAC is a loop).
    pub vif: usize,
}

/// An L2 domain: an uplink and the vifs of the VR interfaces on it. Port
/// security lets a vif send only from its interface's MACs, so every MAC behind
/// a vif is known from the config and any other is behind the uplink: nothing
/// is learned, no frame can fill a table, and unicast is never flooded.
pub struct Segment {
    pub name: String,
    pub uplink: usize,
    /// The uplink port's MAC: the source of the frames a draining VR still
    /// forwards out of this segment.
    pub uplink_mac: MacAddr,
    /// All ports: the uplink and every vif.
    pub ports: Vec<usize>,
    /// Every VR interface on the segment, in config order.
    pub vr_macs: Vec<VrMac>,
    /// The same, by MAC (the first interface of a MAC, as the list's order says).
    by_mac: MacIndex,
    /// The same, by address: IPv4, IPv6 and link-local.
    by_address: FxHashMap<IpAddr, Vec<VrMac>>,
    /// Extra MACs (e.g. VRRP's) → the vifs whose interfaces declare them.
    extra_macs: FxHashMap<MacAddr, Vec<usize>>,
}

/// What a segment is before its members: its name, its uplink port and that
/// port's MAC.
#[derive(Debug, Clone)]
struct SegmentHead {
    name: String,
    uplink: usize,
    uplink_mac: MacAddr,
}

impl Segment {
    fn head(&self) -> SegmentHead {
        SegmentHead {
            name: self.name.clone(),
            uplink: self.uplink,
            uplink_mac: self.uplink_mac,
        }
    }

    /// Segment `head` with `members`, its VR interfaces in slot and interface
    /// order.
    fn new(head: &SegmentHead, members: Vec<(VrMac, &Interface)>) -> Segment {
        let (uplink, uplink_mac) = (head.uplink, head.uplink_mac);
        let mut by_address: FxHashMap<IpAddr, Vec<VrMac>> = FxHashMap::default();
        let mut extra_macs: FxHashMap<MacAddr, Vec<usize>> = FxHashMap::default();
        for &(vm, ifc) in &members {
            let v6 = ifc
                .addresses6
                .iter()
                .map(|a| a.addr())
                .chain([ifc.link_local]);
            let own = std::iter::once(IpAddr::from(ifc.address)).chain(v6.map(IpAddr::from));
            for ip in own {
                by_address.entry(ip).or_default().push(vm);
            }
            for &mac in &ifc.extra_macs {
                extra_macs.entry(mac).or_default().push(vm.vif);
            }
        }
        let vr_macs: Vec<VrMac> = members.into_iter().map(|(vm, _)| vm).collect();
        Segment {
            name: head.name.clone(),
            uplink,
            uplink_mac,
            ports: std::iter::once(uplink)
                .chain(vr_macs.iter().map(|vm| vm.vif))
                .collect(),
            by_mac: MacIndex::new(&vr_macs),
            vr_macs,
            by_address,
            extra_macs,
        }
    }

    /// The vifs behind extra MAC `mac` (none if it is no interface's extra MAC).
    pub fn vifs_of_extra(&self, mac: MacAddr) -> &[usize] {
        self.extra_macs.get(&mac).map_or(&[], Vec::as_slice)
    }

    /// The VR interface that owns `mac`, if any: bounded work, whatever the number
    /// of VRs on the segment.
    #[inline(always)]
    pub fn vr_for_mac(&self, mac: MacAddr) -> Option<VrMac> {
        self.by_mac.get(mac.to_u64())
    }

    /// The VR interfaces of the segment that have address `ip` (one, unless the
    /// operator configured a conflict).
    pub fn vrs_at(&self, ip: IpAddr) -> &[VrMac] {
        self.by_address.get(&ip).map_or(&[], Vec::as_slice)
    }
}

/// A change of a VR's migration state made by an lcore because of a frame
/// (docs/migration.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VrEvent {
    /// The VR's guest sent a frame on its vif: it runs here; the VR is active and
    /// announced on its segments' uplinks.
    Arrived { vr: usize },
    /// The VR's MAC was announced on an uplink while it is being cloned: quiet,
    /// until the authenticated word (drain) or `control.quiet_ms` (active again).
    Quieted { vr: usize },
}

impl VrEvent {
    /// The slot of the VR it concerns.
    pub fn vr(self) -> usize {
        match self {
            VrEvent::Arrived { vr } | VrEvent::Quieted { vr } => vr,
        }
    }
}

/// Events queued before the control side takes them.
const EVENTS_QUEUED: usize = 4096;

/// The lcores' events on their way to the control side: reporting never blocks
/// or allocates; when the control side is [`EVENTS_QUEUED`] events behind,
/// further ones are counted as lost (the VR's state itself is never lost: it is
/// the VR's).
pub struct Events {
    tx: crossbeam_channel::Sender<VrEvent>,
    rx: crossbeam_channel::Receiver<VrEvent>,
    lost: AtomicU64,
}

impl Events {
    fn new() -> Events {
        let (tx, rx) = crossbeam_channel::bounded(EVENTS_QUEUED);
        Events {
            tx,
            rx,
            lost: AtomicU64::new(0),
        }
    }

    /// Queues `event` (lcores).
    pub fn report(&self, event: VrEvent) {
        if self.tx.try_send(event).is_err() {
            self.lost.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The events queued so far, oldest first (the control side).
    pub fn take(&self) -> impl Iterator<Item = VrEvent> + '_ {
        self.rx.try_iter()
    }

    /// Events that found the queue full.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }
}

/// Seconds since start, from the TSC (no syscall).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: u64,
    hz: u64,
}

impl Clock {
    pub fn new(start: u64, hz: u64) -> Clock {
        Clock {
            start,
            hz: hz.max(1),
        }
    }

    #[inline(always)]
    pub fn seconds(&self, tsc: u64) -> u32 {
        (tsc.saturating_sub(self.start) / self.hz) as u32
    }

    pub fn hz(&self) -> u64 {
        self.hz
    }
}

/// Everything the lcores share: one published model.
pub struct Dataplane {
    /// Each port slot's name (vacant: a slot for a port added at run time).
    pub port_names: Slots<String>,
    pub ports: Slots<PortRole>,
    pub segments: Slots<Segment>,
    /// Each segment slot's uplink MAC (zero when vacant), as the fast path
    /// takes them.
    pub uplink_macs: Vec<MacAddr>,
    pub vrs: Slots<Arc<Vr>>,
    pub clock: Clock,
    /// Migration events from the lcores to the control side (one queue for
    /// every model).
    pub events: Arc<Events>,
    /// Forwarding lcores (rows of per-lcore counters kept outside them).
    pub lcores: usize,
    /// What a VR added at run time is built with.
    settings: Arc<VrSettings>,
}

/// What a model is made of: its ports, segments (their heads: members follow
/// from the VRs) and VRs.
struct Parts {
    port_names: Slots<String>,
    ports: Slots<PortRole>,
    segments: Slots<SegmentHead>,
    vrs: Slots<Arc<Vr>>,
}

/// What every model of one appliance shares.
struct Shared {
    clock: Clock,
    events: Arc<Events>,
    lcores: usize,
    settings: Arc<VrSettings>,
}

impl Parts {
    /// The model of these parts: each segment with the VR interfaces on it
    /// (in slot and interface order), and the uplink MACs by segment slot.
    fn assemble(self, shared: Shared) -> Dataplane {
        let mut members: Vec<Vec<(VrMac, &Interface)>> = vec![Vec::new(); self.segments.len()];
        for (v, vr) in self.vrs.iter() {
            for (i, ifc) in vr.interfaces.iter().enumerate() {
                let vm = VrMac {
                    mac: ifc.mac.to_u64(),
                    vr: v,
                    iface: i,
                    vif: ifc.vif,
                };
                members[ifc.segment].push((vm, ifc));
            }
        }
        let mut segments = Slots::new([], self.segments.len());
        let mut uplink_macs = vec![MacAddr::default(); self.segments.len()];
        for (s, head) in self.segments.iter() {
            segments.fill(s, Segment::new(head, std::mem::take(&mut members[s])));
            uplink_macs[s] = head.uplink_mac;
        }
        Dataplane {
            port_names: self.port_names,
            ports: self.ports,
            segments,
            uplink_macs,
            vrs: self.vrs,
            clock: shared.clock,
            events: shared.events,
            lcores: shared.lcores,
            settings: shared.settings,
        }
    }
}

/// The config's settings every VR is built with.
struct VrSettings {
    compact_groups: u32,
    neighbor_timeout: u32,
    rcu: Arc<Rcu>,
}

/// A VR could not be built from the config.
#[derive(Debug, thiserror::Error)]
#[error("vr {vr}: {source}")]
pub struct BuildError {
    vr: u32,
    source: VrError,
}

/// Why a VR's tables could not hold its config's routes.
#[derive(Debug, Clone, thiserror::Error)]
pub enum VrError {
    #[error(transparent)]
    Table(#[from] TableError),
    #[error("more than {NEXT_HOP_SLOTS} distinct next hops")]
    NextHops,
    #[error("more than {GROUP_SLOTS} distinct sets of static multipath routes' paths")]
    Groups,
}

impl Dataplane {
    /// The interface on `segment` with address `ip` of a VR active here, for a
    /// question (ARP request, neighbour solicitation) that arrived on port
    /// `ingress`, never that interface's own vif: whom vrfwd answers for.
    pub fn answering_for(&self, segment: usize, ip: IpAddr, ingress: usize) -> Option<VrMac> {
        self.segments[segment]
            .vrs_at(ip)
            .iter()
            .find(|vm| {
                let vr = &self.vrs[vm.vr];
                vr.interfaces[vm.iface].vif != ingress && vr.state() == VrState::Active
            })
            .copied()
    }

    /// Builds the model from a validated config, its route tables published under
    /// `rcu`, with the room `config.slots()` says; `uplink_mac` gives a port's
    /// MAC. Returns it with each VR's routes (index = VR slot), which the route
    /// writer owns from then on.
    pub fn build(
        config: &Config,
        clock: Clock,
        rcu: &Arc<Rcu>,
        uplink_mac: &dyn Fn(usize) -> MacAddr,
    ) -> Result<(Dataplane, Vec<VrRoutes>), BuildError> {
        let topology = &config.topology;
        let settings = Arc::new(VrSettings {
            compact_groups: config.limits.compact_groups(),
            neighbor_timeout: config.timers.neighbor_timeout_s,
            rcu: Arc::clone(rcu),
        });
        let mut vrs = Vec::with_capacity(topology.vrs.len());
        let mut tables = Vec::with_capacity(topology.vrs.len());
        for vc in &topology.vrs {
            let (vr, table) = build_vr(vc, &settings, config.cores.len())
                .map_err(|source| BuildError { vr: vc.id, source })?;
            vrs.push(Arc::new(vr));
            tables.push(table);
        }
        let slots = config.slots();
        let heads = topology.segments.iter().map(|s| SegmentHead {
            name: s.name.clone(),
            uplink: s.uplink,
            uplink_mac: uplink_mac(s.uplink),
        });
        let parts = Parts {
            port_names: Slots::new(topology.ports.iter().map(|p| p.name.clone()), slots.ports),
            ports: Slots::new(topology.ports.iter().map(|p| p.role), slots.ports),
            segments: Slots::new(heads, slots.segments),
            vrs: Slots::new(vrs, slots.vrs),
        };
        let shared = Shared {
            clock,
            events: Arc::new(Events::new()),
            lcores: config.cores.len(),
            settings,
        };
        Ok((parts.assemble(shared), tables))
    }

    /// A copy of this model sharing its VRs, with its parts as `f` changes
    /// them.
    fn changed(&self, f: impl FnOnce(&mut Parts)) -> Dataplane {
        let mut parts = Parts {
            port_names: self.port_names.clone(),
            ports: self.ports.clone(),
            segments: Slots::new([], self.segments.len()),
            vrs: self.vrs.clone(),
        };
        for (s, seg) in self.segments.iter() {
            parts.segments.fill(s, seg.head());
        }
        f(&mut parts);
        parts.assemble(Shared {
            clock: self.clock,
            events: Arc::clone(&self.events),
            lcores: self.lcores,
            settings: Arc::clone(&self.settings),
        })
    }

    /// This model with segment `name` in vacant slot `slot`, its uplink port
    /// `port` (named `port_name`, of MAC `mac`) in a vacant port slot.
    pub fn with_segment(
        &self,
        slot: usize,
        name: &str,
        (port, port_name): (usize, &str),
        mac: MacAddr,
    ) -> Dataplane {
        self.changed(|parts| {
            let head = SegmentHead {
                name: name.to_owned(),
                uplink: port,
                uplink_mac: mac,
            };
            let filled = parts.port_names.fill(port, port_name.to_owned())
                && parts.ports.fill(port, PortRole::Uplink { segment: slot })
                && parts.segments.fill(slot, head);
            assert!(filled, "vacant slots");
        })
    }

    /// This model without segment `slot` and its uplink port (no VR may be on it).
    pub fn without_segment(&self, slot: usize) -> Dataplane {
        self.changed(|parts| {
            let on_it = |vr: &Arc<Vr>| vr.interfaces.iter().any(|i| i.segment == slot);
            assert!(!parts.vrs.values().any(on_it), "a segment without VRs");
            if let Some(head) = parts.segments.take(slot) {
                parts.port_names.take(head.uplink);
                parts.ports.take(head.uplink);
            }
        })
    }

    /// This model with VR `vc` in vacant slot `slot` and its vifs in the
    /// vacant port slots its interfaces name (`vc` resolved against this
    /// model: [`crate::config::Addition`]). Returns it with the VR's routes.
    pub fn with_vr(
        &self,
        slot: usize,
        vc: &crate::config::Vr,
        vif_names: &[String],
    ) -> Result<(Dataplane, VrRoutes), BuildError> {
        let (vr, routes) = build_vr(vc, &self.settings, self.lcores)
            .map_err(|source| BuildError { vr: vc.id, source })?;
        let dp = self.changed(|parts| {
            for (i, (ifc, name)) in vc.interfaces.iter().zip(vif_names).enumerate() {
                let role = PortRole::Vif {
                    segment: ifc.segment,
                    vr: slot,
                    iface: i,
                };
                assert!(
                    parts.port_names.fill(ifc.vif, name.clone()) && parts.ports.fill(ifc.vif, role),
                    "a vacant port slot"
                );
            }
            assert!(parts.vrs.fill(slot, Arc::new(vr)), "a vacant VR slot");
        });
        Ok((dp, routes))
    }

    /// This model without the VR in slot `slot` and its vifs.
    pub fn without_vr(&self, slot: usize) -> Dataplane {
        self.changed(|parts| {
            if let Some(vr) = parts.vrs.take(slot) {
                for ifc in &vr.interfaces {
                    parts.port_names.take(ifc.vif);
                    parts.ports.take(ifc.vif);
                }
            }
        })
    }
}

/// A VR's first tables holding `routes`: compact (of `compact_groups` groups,
/// `[limits] compact_table_kib`) unless the config says wide, or unless its
/// static routes do not fit a compact table.
fn initial_tables(
    size: TableSize,
    compact_groups: u32,
    routes: &[Change],
) -> Result<TablePair, TableError> {
    let build = |stride, max_groups| {
        let mut tables = TablePair::new(stride, max_groups);
        // No reader exists yet: nothing to wait for when publishing.
        tables.apply(routes, |_| {})?;
        Ok(tables)
    };
    match size {
        TableSize::Compact => build(Stride::Compact16, compact_groups),
        TableSize::Wide => build(Stride::Wide24, WIDE_MAX_GROUPS),
        TableSize::Auto => match build(Stride::Compact16, compact_groups) {
            Err(TableError::Full(_)) => build(Stride::Wide24, WIDE_MAX_GROUPS),
            other => other,
        },
    }
}

/// A VR's static routes by prefix, in the config's order: the paths listed for
/// one prefix make one route (the config checked them).
fn static_routes(routes: &[StaticRoute]) -> Vec<(IpNet, Route)> {
    let mut by_prefix: Vec<(IpNet, Vec<Path>)> = Vec::new();
    let mut index: FxHashMap<IpNet, usize> = FxHashMap::default();
    for r in routes {
        let next_hop = match r.path {
            StaticPath::V4 { via, .. } => NextHop::Gateway {
                iface: r.iface,
                via: via.into(),
            },
            StaticPath::V6 { via, .. } => NextHop::Gateway6 {
                iface: r.iface,
                via: via.into(),
            },
        };
        let path = Path {
            next_hop,
            weight: r.weight,
        };
        match index.entry(r.path.prefix()) {
            Entry::Occupied(at) => by_prefix[*at.get()].1.push(path),
            Entry::Vacant(at) => {
                at.insert(by_prefix.len());
                by_prefix.push((r.path.prefix(), vec![path]));
            }
        }
    }
    by_prefix
        .into_iter()
        .map(|(prefix, paths)| {
            let route = Route::new(paths).expect("the config checked the paths");
            (prefix, route)
        })
        .collect()
}

/// The next-hop slot of a static route, with its group installed for a
/// multipath one (before any reader exists).
fn static_next_hop(
    next_hops: &NextHops,
    groups: &Groups,
    route: &Route,
    lcores: usize,
) -> Result<u32, VrError> {
    let paths = match route {
        Route::One(next_hop) => return next_hops.insert(*next_hop).ok_or(VrError::NextHops),
        Route::Multipath(paths) => paths,
    };
    let slots = paths
        .iter()
        .map(|p| next_hops.insert(p.next_hop).ok_or(VrError::NextHops))
        .collect::<Result<Vec<_>, _>>()?;
    let weights: Vec<u32> = paths.iter().map(|p| p.weight).collect();
    let hops = paths.iter().map(|p| p.next_hop).collect();
    let buckets = Buckets::new(&weights).expect("a route's paths spread");
    let group = Group::new(slots, hops, weights, buckets, lcores);
    match groups.install_named(next_hops, group) {
        Ok((_, slot)) => Ok(slot),
        Err(Full::Groups) => Err(VrError::Groups),
        Err(Full::NextHops) => Err(VrError::NextHops),
    }
}

/// Builds one VR: its interfaces' connected and local routes, its static routes
/// and neighbours.
fn build_vr(
    vc: &crate::config::Vr,
    settings: &VrSettings,
    lcores: usize,
) -> Result<(Vr, VrRoutes), VrError> {
    let (compact_groups, neighbor_timeout, rcu) = (
        settings.compact_groups,
        settings.neighbor_timeout,
        &settings.rcu,
    );
    let next_hops = NextHops::new(NEXT_HOP_SLOTS, vc.interfaces.len());
    let local = next_hops.index_of(NextHop::Local).expect("reserved");
    let add = |net: u32, len: u8, next_hop: u32| Change::Add { net, len, next_hop };
    let add6 = |net: std::net::Ipv6Addr, len: u8, next_hop: u32| Change::Add {
        net: u128::from(net),
        len,
        next_hop,
    };
    // Addresses the guest must see itself: multicast and limited broadcast.
    let mut system = vec![add(0xe000_0000, 4, local), add(u32::MAX, 32, local)];
    for (i, ifc) in vc.interfaces.iter().enumerate() {
        let subnet = ifc.net();
        let attached = next_hops
            .index_of(NextHop::Attached { iface: i })
            .expect("reserved");
        system.push(add(subnet.network().into(), subnet.prefix_len(), attached));
        for &own in std::iter::once(&ifc.address).chain(&ifc.extra_addresses) {
            system.push(add(own.into(), 32, local));
        }
        system.push(add(subnet.broadcast().into(), 32, local));
    }
    let mut system6 = Vec::new();
    for (i, ifc) in vc.interfaces.iter().enumerate() {
        let attached = next_hops
            .index_of(NextHop::Attached { iface: i })
            .expect("reserved");
        for a in &ifc.addresses6 {
            let net = a.trunc();
            system6.push(add6(net.network(), net.prefix_len(), attached));
            system6.push(add6(a.addr(), 128, local));
        }
    }
    let groups = Groups::new(GROUP_SLOTS);
    // Routes over the same paths share their slot (and group).
    let mut slots: FxHashMap<Route, u32> = FxHashMap::default();
    for (prefix, route) in static_routes(&vc.routes) {
        let nh = match slots.get(&route) {
            Some(&nh) => nh,
            None => static_next_hop(&next_hops, &groups, &route, lcores)?,
        };
        slots.insert(route, nh);
        match prefix {
            IpNet::V4(p) => system.push(add(p.network().into(), p.prefix_len(), nh)),
            IpNet::V6(p) => system6.push(add6(p.network(), p.prefix_len(), nh)),
        }
    }
    let v4 = initial_tables(vc.table, compact_groups, &system)?;
    // IPv6 tables are always wide: their first level counts as the pages written.
    let mut v6 = TablePair::new(Stride::Wide24, WIDE_MAX_GROUPS);
    // No reader exists yet: nothing to wait for when publishing.
    v6.apply(&system6, |_| {})?;
    let tables = DualPair { v4, v6 };
    let neighbors = AgeingCache::new(NEIGHBOR_SLOTS, neighbor_timeout);
    let neighbors6 = AgeingCache::new(NEIGHBOR6_SLOTS, neighbor_timeout);
    for n in &vc.neighbors {
        let mac = n.mac.to_u64();
        match n.address {
            IpAddr::V4(a) => neighbors.learn(neighbor_key(n.iface, a.into()), mac, STATIC),
            IpAddr::V6(a) => neighbors6.learn(neighbor6_key(n.iface, a.into()), mac, STATIC),
        };
    }
    let vr = Vr {
        id: vc.id,
        name: vc.name.clone(),
        credential: vc.credential.clone(),
        interfaces: vc.interfaces.clone(),
        fib: RcuCell::new(Arc::clone(tables.v4.fib()), Arc::clone(rcu)),
        fib6: RcuCell::new(Arc::clone(tables.v6.fib()), Arc::clone(rcu)),
        routes: AtomicUsize::new(tables.len()),
        next_hops,
        groups,
        neighbors,
        neighbors6,
        state: AtomicU8::new(if vc.standby {
            VrState::Standby
        } else {
            VrState::Active
        } as u8),
        unannounced: AtomicBool::new(false),
        cloning: AtomicBool::new(false),
        entered: Default::default(),
    };
    Ok((
        vr,
        VrRoutes {
            tables,
            system: Batch {
                v4: system,
                v6: system6,
            },
        },
    ))
}
