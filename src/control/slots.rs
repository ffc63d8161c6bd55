//! The route writer's next-hop slots of one VR, reference-counted (as grout's
//! `nexthop_incref`/`decref`): how many routes of the staged table use each slot,
//! counted from what each staged change replaced (no extra RIB lookup).
//! A slot is emptied only when no table a reader can use points at it: at once
//! for a slot allocated by a batch that was then refused (no table ever held it),
//! otherwise after the publication that took its last route away (the publish
//! waits out the readers of the old table). Slots of vrfwd's own routes (local,
//! attached, configured gateways) are never emptied.
//!
//! A multipath route's slot names a group (dataplane::Group): one per set of
//! paths, shared by the routes with that set. The group holds a count on each
//! of its paths' slots for as long as it is installed, and is removed with
//! its own slot.
use super::writer::WriteError;
use crate::dataplane::{Buckets, Full, Group, Groups, NextHop, NextHops, Path};
use crate::lpm::{Batch, Change};
use rustc_hash::{FxHashMap, FxHashSet};

/// A set of paths as installed: (next-hop slot, weight), sorted by slot.
type Set = Box<[(u32, u32)]>;

/// Route counts per slot that a batch changes (applied when it is accepted).
pub type Delta = FxHashMap<u32, i64>;

/// One VR's slots.
pub struct Slots {
    /// Next hop → its slot, so that adds do not scan the next-hop array.
    by_next_hop: FxHashMap<NextHop, u32>,
    /// Routes of the staged table per slot (slots absent: none).
    refs: FxHashMap<u32, u64>,
    /// Slots of vrfwd's own routes.
    pinned: FxHashSet<u32>,
    /// Slots whose count fell to zero since the last publication.
    unused: Vec<u32>,
    /// Each installed set's group slot.
    by_set: FxHashMap<Set, u32>,
    /// Each group slot's group id and set.
    groups: FxHashMap<u32, (u32, Set)>,
    /// Forwarding lcores, for the groups' per-lcore counters.
    lcores: usize,
}

impl Slots {
    /// The slots of a VR whose own routes are `system` (their groups, of
    /// static multipath routes, in `groups`), forwarded by `lcores`.
    pub fn new(system: &Batch, next_hops: &NextHops, groups: &Groups, lcores: usize) -> Slots {
        let v4 = system.v4.iter().filter_map(Change::next_hop);
        let v6 = system.v6.iter().filter_map(Change::next_hop);
        let mut slots = Slots {
            by_next_hop: FxHashMap::default(),
            refs: FxHashMap::default(),
            pinned: v4.chain(v6).collect(),
            unused: Vec::new(),
            by_set: FxHashMap::default(),
            groups: FxHashMap::default(),
            lcores,
        };
        // A static group's paths are pinned with it; a route of the same set
        // shares it.
        let pinned: Vec<u32> = slots.pinned.iter().copied().collect();
        for slot in pinned {
            let Some(NextHop::Group { group }) = next_hops.get(slot) else {
                continue;
            };
            let Some(g) = groups.get(group) else { continue };
            let mut set: Vec<(u32, u32)> = g
                .slots()
                .iter()
                .copied()
                .zip(g.weights().iter().copied())
                .collect();
            set.sort_unstable();
            let set: Set = set.into();
            slots.pinned.extend(g.slots());
            slots.by_set.insert(set.clone(), slot);
            slots.groups.insert(slot, (group, set));
        }
        slots
    }

    /// The slot of the group of `paths` (a multipath route's, sorted, each
    /// next hop once) for a prefix whose staged slot is `previous`: the
    /// installed group of that set, or a new one whose buckets follow
    /// `previous`'s paths (pushed on `fresh` with any new path slots).
    pub fn group(
        &mut self,
        next_hops: &NextHops,
        groups: &Groups,
        paths: &[Path],
        previous: Option<u32>,
        fresh: &mut Vec<u32>,
    ) -> Result<u32, WriteError> {
        let mut set = Vec::with_capacity(paths.len());
        for p in paths {
            set.push((self.slot(next_hops, p.next_hop, fresh)?, p.weight));
        }
        set.sort_unstable();
        if let Some(&slot) = self.by_set.get(&set[..]) {
            return Ok(slot);
        }
        let (slots, weights): (Vec<u32>, Vec<u32>) = set.iter().copied().unzip();
        let buckets = follow(next_hops, groups, previous, &slots, &weights)?;
        let hops = slots
            .iter()
            .map(|&s| next_hops.get(s).expect("allocated above"))
            .collect();
        let group = Group::new(slots, hops, weights, buckets, self.lcores);
        let (id, slot) = match groups.install_named(next_hops, group) {
            Ok(named) => named,
            Err(Full::Groups) => return Err(WriteError::Groups),
            Err(Full::NextHops) => return Err(WriteError::NextHops),
        };
        for &(member, _) in &set {
            *self.refs.entry(member).or_default() += 1;
        }
        let set: Set = set.into();
        self.by_set.insert(set.clone(), slot);
        self.groups.insert(slot, (id, set));
        fresh.push(slot);
        Ok(slot)
    }

    /// The slot of `nh`, allocated if new (and then pushed on `fresh`).
    pub fn slot(
        &mut self,
        next_hops: &NextHops,
        nh: NextHop,
        fresh: &mut Vec<u32>,
    ) -> Result<u32, WriteError> {
        if let Some(&slot) = self.by_next_hop.get(&nh) {
            return Ok(slot);
        }
        let slot = next_hops.insert(nh).ok_or(WriteError::NextHops)?;
        self.by_next_hop.insert(nh, slot);
        fresh.push(slot);
        Ok(slot)
    }

    /// A batch was accepted: its route counts take effect.
    pub fn apply(&mut self, delta: &Delta) {
        for (&slot, &d) in delta {
            let refs = self.refs.entry(slot).or_default();
            *refs = refs.saturating_add_signed(d);
            if *refs == 0 {
                self.refs.remove(&slot);
                self.unused.push(slot);
            }
        }
    }

    /// A batch was refused (nothing of it staged): the slots it allocated are
    /// held by no table and are emptied now (groups before their paths).
    pub fn release(&mut self, next_hops: &NextHops, groups: &Groups, fresh: &[u32]) {
        for &slot in fresh.iter().rev() {
            self.empty_if_unused(next_hops, groups, slot);
        }
    }

    /// What was staged is published and no reader can use the old table: slots
    /// that lost their last route are emptied.
    pub fn published(&mut self, next_hops: &NextHops, groups: &Groups) {
        for slot in std::mem::take(&mut self.unused) {
            self.empty_if_unused(next_hops, groups, slot);
        }
    }

    /// Empties `slot` if no staged route, group or vrfwd route uses it. The
    /// caller guarantees no reader can reach it: it was never published, or a
    /// publication since its last route went has waited out the readers.
    fn empty_if_unused(&mut self, next_hops: &NextHops, groups: &Groups, slot: u32) {
        if self.refs.contains_key(&slot) || self.pinned.contains(&slot) {
            return;
        }
        if let Some(nh) = next_hops.get(slot) {
            self.by_next_hop.remove(&nh);
        }
        next_hops.remove(slot);
        if let Some((id, set)) = self.groups.remove(&slot) {
            self.by_set.remove(&set);
            // SAFETY: the slot naming the group is empty and unreachable (the
            // caller's guarantee), and no other slot names it.
            unsafe { groups.remove(id) };
            // Its paths may still be reached through the published table by
            // routes staged away since: emptied after the next publication.
            for &(member, _) in set.iter() {
                if let Some(refs) = self.refs.get_mut(&member) {
                    *refs -= 1;
                    if *refs == 0 {
                        self.refs.remove(&member);
                        self.unused.push(member);
                    }
                }
            }
        }
    }
}

/// Buckets for paths at `slots` weighing `weights` that keep the flows of the
/// prefix's `previous` next hop (one path or a group) where they can.
fn follow(
    next_hops: &NextHops,
    groups: &Groups,
    previous: Option<u32>,
    slots: &[u32],
    weights: &[u32],
) -> Result<Buckets, WriteError> {
    let position = |slot: u32| slots.iter().position(|&s| s == slot);
    let buckets = match previous.and_then(|p| Some((p, next_hops.get(p)?))) {
        Some((_, NextHop::Group { group })) => match groups.get(group) {
            Some(g) => Buckets::follow(g.buckets(), |p| position(g.slot(p)), weights),
            None => Buckets::new(weights),
        },
        Some((slot, _)) => Buckets::follow(&Buckets::new(&[1])?, |_| position(slot), weights),
        None => Buckets::new(weights),
    };
    Ok(buckets?)
}

/// Records in `delta` that a staged change replaced next hop `old` by `new`
/// (None: no route).
pub fn record(delta: &mut Delta, old: Option<u32>, new: Option<u32>) {
    if old == new {
        return;
    }
    if let Some(old) = old {
        *delta.entry(old).or_default() -= 1;
    }
    if let Some(new) = new {
        *delta.entry(new).or_default() += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_counts_what_each_change_replaced() {
        let mut d = Delta::default();
        // 10/8 moves from 5 to 6, then back to 5; 11/8 via 5 is deleted; 12/8 is
        // added via 7 then deleted; a delete of an absent prefix.
        for (old, new) in [
            (Some(5), Some(6)),
            (Some(6), Some(5)),
            (Some(5), None),
            (None, Some(7)),
            (Some(7), None),
            (None, None),
        ] {
            record(&mut d, old, new);
        }
        d.retain(|_, n| *n != 0);
        assert_eq!(d, Delta::from_iter([(5, -1)]));
    }

    #[test]
    fn a_slot_is_emptied_only_when_no_route_and_no_reader_can_use_it() {
        let next_hops = NextHops::new(8, 1);
        let system = Batch {
            v4: vec![Change::Add {
                net: 0,
                len: 0,
                next_hop: 0,
            }],
            v6: vec![],
        };
        let groups = Groups::new(4);
        let mut slots = Slots::new(&system, &next_hops, &groups, 1);
        let gw = |via| NextHop::Gateway { iface: 0, via };
        let mut fresh = Vec::new();
        let a = slots.slot(&next_hops, gw(1), &mut fresh).unwrap();
        let b = slots.slot(&next_hops, gw(2), &mut fresh).unwrap();
        assert_eq!(fresh, [a, b]);
        // The batch using b is refused: b is emptied at once; a is accepted.
        slots.apply(&Delta::from_iter([(a, 2)]));
        slots.release(&next_hops, &groups, &[b]);
        assert_eq!(next_hops.get(b), None);
        assert_eq!(next_hops.get(a), Some(gw(1)));
        // a loses one route, then the other: emptied after the publication only.
        slots.apply(&Delta::from_iter([(a, -1)]));
        slots.published(&next_hops, &groups);
        assert_eq!(next_hops.get(a), Some(gw(1)));
        slots.apply(&Delta::from_iter([(a, -1)]));
        assert_eq!(
            next_hops.get(a),
            Some(gw(1)),
            "the published table may use it"
        );
        slots.published(&next_hops, &groups);
        assert_eq!(next_hops.get(a), None);
        // The local slot of vrfwd's own routes stays, whatever its count.
        slots.apply(&Delta::from_iter([(0, 1)]));
        slots.apply(&Delta::from_iter([(0, -1)]));
        slots.published(&next_hops, &groups);
        assert_eq!(next_hops.get(0), Some(NextHop::Local));
        // Freed slots are allocated again (the lowest first).
        let mut fresh = Vec::new();
        assert_eq!(slots.slot(&next_hops, gw(3), &mut fresh), Ok(a.min(b)));
        assert_eq!(slots.slot(&next_hops, gw(4), &mut fresh), Ok(a.max(b)));
    }
}
