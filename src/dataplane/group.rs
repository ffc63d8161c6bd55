//! Next-hop groups: what a route of several paths resolves to. A route's
//! [`Route`] is one next hop or a set of weighted paths; a set is installed
//! once per VR as a [`Group`] (its paths' next-hop slots, their weights, its
//! [`Buckets`] and per-path packet counters) and named by a next-hop slot of
//! kind [`NextHop::Group`], so routes with the same set share it and the
//! table's entries stay one `u32`.
//!
//! A group never changes once installed: a route whose set changes points at
//! another group, built by [`Buckets::follow`] from the one it had so its
//! flows move only as far as the change demands. [`Groups`] holds one VR's
//! groups for the lcores; the route writer installs and removes them
//! (control::slots), removing one only when no reader can reach it.
use super::ecmp::{Buckets, EcmpError, MAX_PATHS};
use super::{NextHop, NextHops};
use crate::stats::Counter;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Arc;

/// One path of a multipath route: a next hop (attached or a gateway) and its
/// weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Path {
    pub next_hop: NextHop,
    pub weight: u32,
}

/// What a route resolves to: one next hop, or 2 to [`MAX_PATHS`] paths
/// sorted by next hop, each next hop once, every weight at least 1.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Route {
    One(NextHop),
    Multipath(Arc<[Path]>),
}

/// A set of paths that no route can have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error(transparent)]
    Spread(#[from] EcmpError),
    /// A path that is no gateway or attached network (local, or a group).
    #[error("{0:?} cannot be one of a route's paths")]
    NotAPath(NextHop),
}

impl Route {
    /// The route over `paths`: a next hop listed twice weighs the sum of its
    /// weights; a single path is [`Route::One`] whatever its weight.
    pub fn new(mut paths: Vec<Path>) -> Result<Route, RouteError> {
        if let Some(p) = paths.iter().find(|p| !p.next_hop.is_path()) {
            return Err(RouteError::NotAPath(p.next_hop));
        }
        if paths.iter().any(|p| p.weight == 0) {
            return Err(EcmpError::NoWeight.into());
        }
        paths.sort_unstable();
        paths.dedup_by(|later, kept| {
            let same = later.next_hop == kept.next_hop;
            if same {
                kept.weight = kept.weight.saturating_add(later.weight);
            }
            same
        });
        match paths.len() {
            1 => Ok(Route::One(paths[0].next_hop)),
            2..=MAX_PATHS => Ok(Route::Multipath(paths.into())),
            n => Err(EcmpError::PathCount(n).into()),
        }
    }

    /// Its paths (one of weight 1 for [`Route::One`]).
    pub fn paths(&self) -> Vec<Path> {
        match self {
            Route::One(next_hop) => vec![Path {
                next_hop: *next_hop,
                weight: 1,
            }],
            Route::Multipath(paths) => paths.to_vec(),
        }
    }
}

/// One lcore's packet counters of a group's paths (its own cache lines).
#[repr(align(64))]
struct PathCounters([Counter; MAX_PATHS]);

/// An installed set of paths.
pub struct Group {
    /// Each path's next-hop slot, in the order of the set.
    slots: Box<[u32]>,
    /// What those slots hold (they do not change while the group holds them):
    /// read by the lcores without going back to the slots.
    next_hops: Box<[NextHop]>,
    weights: Box<[u32]>,
    buckets: Buckets,
    /// Per lcore, packets sent by each path.
    packets: Box<[PathCounters]>,
}

impl Group {
    /// The group of paths `next_hops` at next-hop slots `slots` weighing
    /// `weights`, spread by `buckets`, counted by `lcores` lcores.
    pub fn new(
        slots: Vec<u32>,
        next_hops: Vec<NextHop>,
        weights: Vec<u32>,
        buckets: Buckets,
        lcores: usize,
    ) -> Group {
        debug_assert_eq!(slots.len(), weights.len());
        debug_assert_eq!(slots.len(), next_hops.len());
        Group {
            slots: slots.into(),
            next_hops: next_hops.into(),
            weights: weights.into(),
            buckets,
            packets: (0..lcores.max(1))
                .map(|_| PathCounters(std::array::from_fn(|_| Counter::default())))
                .collect(),
        }
    }

    /// The position of the path of the flow hashing to `hash`.
    #[inline(always)]
    pub fn choose(&self, hash: u32) -> usize {
        self.buckets.path(hash)
    }

    /// The next-hop slot of the path at `position`.
    #[inline(always)]
    pub fn slot(&self, position: usize) -> u32 {
        self.slots[position]
    }

    /// The next hop of the path at `position`.
    #[inline(always)]
    pub fn next_hop(&self, position: usize) -> NextHop {
        self.next_hops[position]
    }

    pub fn slots(&self) -> &[u32] {
        &self.slots
    }

    /// The positions of the paths in the order a flow of path `first` tries
    /// them when its neighbour is unresolved: `first`, then those after it,
    /// round the set.
    pub fn fallbacks(&self, first: usize) -> impl Iterator<Item = usize> {
        let n = self.slots.len();
        (0..n).map(move |k| (first + k) % n)
    }

    /// The paths, in the order of the set (their positions).
    pub fn paths(&self) -> impl Iterator<Item = Path> + '_ {
        let paths = self.next_hops.iter().zip(self.weights.iter());
        paths.map(|(&next_hop, &weight)| Path { next_hop, weight })
    }

    pub fn weights(&self) -> &[u32] {
        &self.weights
    }

    pub fn buckets(&self) -> &Buckets {
        &self.buckets
    }

    /// Counts a packet sent by the path at `position` (lcore `lcore` only).
    #[inline(always)]
    pub fn count(&self, lcore: usize, position: usize) {
        if let Some(row) = self.packets.get(lcore) {
            row.0[position].inc();
        }
    }

    /// Packets sent by the path at `position`, over every lcore.
    pub fn packets(&self, position: usize) -> u64 {
        self.packets.iter().map(|row| row.0[position].get()).sum()
    }
}

/// What had no room for a new group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    Groups,
    NextHops,
}

/// One VR's groups, by id: written by the route writer, read by every lcore.
pub struct Groups {
    groups: Box<[AtomicPtr<Group>]>,
}

impl Groups {
    /// Room for `capacity` groups (a null pointer each until installed).
    pub fn new(capacity: usize) -> Groups {
        Groups {
            groups: (0..capacity)
                .map(|_| AtomicPtr::new(std::ptr::null_mut()))
                .collect(),
        }
    }

    /// The group with id `id`, if installed.
    #[inline(always)]
    pub fn get(&self, id: u32) -> Option<&Group> {
        let ptr = self.groups.get(id as usize)?.load(Ordering::Acquire);
        // SAFETY: a non-null pointer came from `Box::into_raw` in `install`
        // (released with the group fully built) and is freed only by `remove`,
        // whose caller guarantees no reader can still reach this id; `&self`
        // outlives the use, as readers use a group within one read section.
        unsafe { ptr.as_ref() }
    }

    /// Installs `group` in a free id (writer only). None when full.
    pub fn install(&self, group: Group) -> Option<u32> {
        let free = self
            .groups
            .iter()
            .position(|g| g.load(Ordering::Relaxed).is_null())?;
        self.groups[free].store(Box::into_raw(Box::new(group)), Ordering::Release);
        Some(free as u32)
    }

    /// Installs `group` and names it by a next-hop slot of `next_hops`
    /// (writer only): its id and the slot, or which of the two was full
    /// (nothing installed then).
    pub fn install_named(&self, next_hops: &NextHops, group: Group) -> Result<(u32, u32), Full> {
        let id = self.install(group).ok_or(Full::Groups)?;
        match next_hops.insert(NextHop::Group { group: id }) {
            Some(slot) => Ok((id, slot)),
            None => {
                // SAFETY: no slot names the group just installed: no reader can reach it.
                unsafe { self.remove(id) };
                Err(Full::NextHops)
            }
        }
    }

    /// Removes and frees group `id` (writer only).
    ///
    /// # Safety
    /// No reader may hold or reach the group: no next-hop slot a published
    /// table can lead to names it, and every reader that could have read such
    /// a slot has left its read section since.
    pub unsafe fn remove(&self, id: u32) {
        let Some(cell) = self.groups.get(id as usize) else {
            return;
        };
        let ptr = cell.swap(std::ptr::null_mut(), Ordering::AcqRel);
        if !ptr.is_null() {
            // SAFETY: from `Box::into_raw` in `install`, taken out of the cell
            // once (the swap), and unreachable by readers (the caller's promise).
            drop(unsafe { Box::from_raw(ptr) });
        }
    }

    /// Groups installed (for operators and tests).
    pub fn len(&self) -> usize {
        self.groups
            .iter()
            .filter(|g| !g.load(Ordering::Relaxed).is_null())
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Groups {
    fn drop(&mut self) {
        for id in 0..self.groups.len() {
            // SAFETY: `&mut self`: no reader exists.
            unsafe { self.remove(id as u32) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gw(via: u32) -> NextHop {
        NextHop::Gateway { iface: 0, via }
    }

    fn path(via: u32, weight: u32) -> Path {
        Path {
            next_hop: gw(via),
            weight,
        }
    }

    #[test]
    fn a_route_is_one_canonical_set() {
        assert_eq!(Route::new(vec![path(1, 5)]), Ok(Route::One(gw(1))));
        let a = Route::new(vec![path(2, 1), path(1, 1)]).unwrap();
        let b = Route::new(vec![path(1, 1), path(2, 1)]).unwrap();
        assert_eq!(a, b, "order does not matter");
        assert_eq!(
            Route::new(vec![path(1, 1), path(2, 1), path(1, 2)]).unwrap(),
            Route::Multipath(vec![path(1, 3), path(2, 1)].into()),
            "a next hop listed twice weighs both"
        );
        assert_eq!(
            Route::new(vec![path(1, 1), path(1, 1)]),
            Ok(Route::One(gw(1)))
        );
        assert_eq!(
            Route::new(vec![path(1, 0), path(2, 1)]),
            Err(EcmpError::NoWeight.into())
        );
        assert_eq!(
            Route::new((0..65).map(|v| path(v, 1)).collect()),
            Err(EcmpError::PathCount(65).into())
        );
        assert_eq!(Route::new(vec![]), Err(EcmpError::PathCount(0).into()));
        let local = Path {
            next_hop: NextHop::Local,
            weight: 1,
        };
        assert_eq!(
            Route::new(vec![local, path(1, 1)]),
            Err(RouteError::NotAPath(NextHop::Local))
        );
    }

    #[test]
    fn groups_are_installed_found_counted_and_freed() {
        let groups = Groups::new(2);
        let group = |n: u32| {
            let weights = vec![1; n as usize];
            Group::new(
                (10..10 + n).collect(),
                (10..10 + n).map(gw).collect(),
                weights.clone(),
                Buckets::new(&weights).unwrap(),
                2,
            )
        };
        let a = groups.install(group(2)).unwrap();
        let b = groups.install(group(3)).unwrap();
        assert_eq!(groups.install(group(2)).map(|_| ()), None, "full");
        let g = groups.get(b).unwrap();
        assert_eq!(g.slots(), [10, 11, 12]);
        assert_eq!(g.slot(g.choose(0)), 10);
        g.count(0, 2);
        g.count(1, 2);
        g.count(7, 2); // an lcore out of range counts nothing
        assert_eq!(g.packets(2), 2);
        // SAFETY: no reader in this test.
        unsafe { groups.remove(a) };
        assert!(groups.get(a).is_none());
        assert_eq!(groups.len(), 1);
        assert_eq!(groups.install(group(2)), Some(a), "a freed id is reused");
        assert!(groups.get(99).is_none());
    }
}
