//! The route writer's next-hop slots of one VR, reference-counted (as grout's
//! `nexthop_incref`/`decref`): how many routes of the staged table use each slot,
//! counted from what each staged change replaced (no extra RIB lookup).
//! A slot is emptied only when no table a reader can use points at it: at once
//! for a slot allocated by a batch that was then refused (no table ever held it),
//! otherwise after the publication that took its last route away (the publish
//! waits out the readers of the old table). Slots of vrfwd's own routes (local,
//! attached, configured gateways) are never emptied.
use super::writer::WriteError;
use crate::dataplane::{NextHop, NextHops};
use crate::lpm::{Batch, Change};
use rustc_hash::{FxHashMap, FxHashSet};

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
}

impl Slots {
    /// The slots of a VR whose own routes are `system`.
    pub fn new(system: &Batch) -> Slots {
        let v4 = system.v4.iter().filter_map(Change::next_hop);
        let v6 = system.v6.iter().filter_map(Change::next_hop);
        Slots {
            by_next_hop: FxHashMap::default(),
            refs: FxHashMap::default(),
            pinned: v4.chain(v6).collect(),
            unused: Vec::new(),
        }
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
    /// held by no table and are emptied now.
    pub fn release(&mut self, next_hops: &NextHops, fresh: &[u32]) {
        for &slot in fresh {
            self.empty_if_unused(next_hops, slot);
        }
    }

    /// What was staged is published and no reader can use the old table: slots
    /// that lost their last route are emptied.
    pub fn published(&mut self, next_hops: &NextHops) {
        for slot in std::mem::take(&mut self.unused) {
            self.empty_if_unused(next_hops, slot);
        }
    }

    fn empty_if_unused(&mut self, next_hops: &NextHops, slot: u32) {
        if self.refs.contains_key(&slot) || self.pinned.contains(&slot) {
            return;
        }
        if let Some(nh) = next_hops.get(slot) {
            self.by_next_hop.remove(&nh);
        }
        next_hops.remove(slot);
    }
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
        let mut slots = Slots::new(&system);
        let gw = |via| NextHop::Gateway { iface: 0, via };
        let mut fresh = Vec::new();
        let a = slots.slot(&next_hops, gw(1), &mut fresh).unwrap();
        let b = slots.slot(&next_hops, gw(2), &mut fresh).unwrap();
        assert_eq!(fresh, [a, b]);
        // The batch using b is refused: b is emptied at once; a is accepted.
        slots.apply(&Delta::from_iter([(a, 2)]));
        slots.release(&next_hops, &[b]);
        assert_eq!(next_hops.get(b), None);
        assert_eq!(next_hops.get(a), Some(gw(1)));
        // a loses one route, then the other: emptied after the publication only.
        slots.apply(&Delta::from_iter([(a, -1)]));
        slots.published(&next_hops);
        assert_eq!(next_hops.get(a), Some(gw(1)));
        slots.apply(&Delta::from_iter([(a, -1)]));
        assert_eq!(
            next_hops.get(a),
            Some(gw(1)),
            "the published table may use it"
        );
        slots.published(&next_hops);
        assert_eq!(next_hops.get(a), None);
        // The local slot of vrfwd's own routes stays, whatever its count.
        slots.apply(&Delta::from_iter([(0, 1)]));
        slots.apply(&Delta::from_iter([(0, -1)]));
        slots.published(&next_hops);
        assert_eq!(next_hops.get(0), Some(NextHop::Local));
        // Freed slots are allocated again (the lowest first).
        let mut fresh = Vec::new();
        assert_eq!(slots.slot(&next_hops, gw(3), &mut fresh), Ok(a.min(b)));
        assert_eq!(slots.slot(&next_hops, gw(4), &mut fresh), Ok(a.max(b)));
    }
}
