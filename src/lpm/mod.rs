//! Per-VR IPv4 route tables: a lock-free lookup structure ([`Fib`]) shared with the
//! lcores, and its single writer ([`Table`]), which also keeps the full route list
//! ([`Rib`]).
//!
//! # Why not `rte_lpm` or `rte_fib`
//! The table must (1) look up at least as fast as `rte_lpm` bulk, (2) install 1M
//! prefixes in ≤ 1 s, (3) change under running readers without exposing freed memory
//! or half a change, and (4) cost little for a small VR.
//! - `rte_lpm` fails (2): its add scans the rules of the same length, O(n); 1.08M
//!   routes took ≈ 150 s here. It also costs 64 MiB per table, failing (4).
//! - `rte_fib` (DIR24_8) adds fast but fails (3) in 22.11: it has no RCU hook and
//!   returns tbl8 groups to its pool at once on delete, so a reader may walk a group
//!   that was already reused for another prefix. 16–128 MiB per table.
//!
//! So vrfwd keeps its own DIR-24-8-style trie in safe Rust: first level 2^24
//! ([`Stride::Wide24`]) or 2^16 ([`Stride::Compact16`], 256 KiB, until a VR
//! widens), 4-bit groups below (one cache line each), every entry an
//! `AtomicU32` (one load per level, inlined in the lcore loop, no FFI call).
//! Prefix lengths live in the entries (as in
//! `rte_lpm`), the RIB finds the covering route on delete in ≤ 32 hash probes, so
//! add and delete cost O(entries covered), not O(rules). New groups are filled
//! before they are linked; unlinked groups wait for [`Table::reclaim`]. Batches
//! are made atomic by [`TablePair`] (left-right copies published under RCU). The
//! levels live in their own anonymous mappings (huge pages for large tables),
//! committed only where written.
//!
//! Measured with `target/release/vrfwd-tables-bench` (2-vCPU AMD EPYC VM,
//! 2026-12-06, docs/benchmarks.md "Route tables"): 1M prefixes installed in
//! 0.24–0.32 s (`rte_lpm`: 100k in 1.6 s, 1M would take minutes); bulk lookups
//! in bursts of 32, wide, at 1.03–1.19 × `rte_lpm_lookup_bulk` (10k prefixes);
//! one table copy holds 0.18 MiB resident with 100 prefixes compact, 1.34 MiB
//! with 10k, 49 MiB with 1M (`rte_lpm`: ≥ 64 MiB always).
mod fib;
mod pair;
mod rib;

pub use fib::{Fib, FirstEntry, Stride};
pub use pair::{validate, Change, TablePair};
pub use rib::{mask, Rib};

use fib::{
    depth, group_ptr, leaf, GROUP, GROUP_BITS, GROUP_ENTRIES, INDEX_MASK, SHORT_BITS, VALID,
};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Largest next-hop index an entry can hold.
pub const MAX_NEXT_HOP: u32 = INDEX_MASK;
/// Most groups a table can address.
pub const MAX_GROUPS: u32 = INDEX_MASK + 1;
/// Bytes of one group.
pub const GROUP_BYTES: usize = GROUP_ENTRIES * std::mem::size_of::<AtomicU32>();

/// Why a table change was refused. The table is unchanged when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// The prefix length is above 32.
    #[error("prefix length {0} is longer than 32")]
    BadLength(u8),
    /// The prefix has bits set beyond its length.
    #[error("{0}/{1} has host bits set")]
    HostBits(std::net::Ipv4Addr, u8),
    /// The next-hop index does not fit in an entry.
    #[error("next-hop index {0} exceeds {MAX_NEXT_HOP}")]
    NextHopRange(u32),
    /// Every group is in use (or waiting for a grace period).
    #[error("the table is out of groups ({0}); raise max_groups")]
    Full(u32),
}

/// The writer side of one route table. Not `Sync`: one writer at a time; readers
/// use the [`Fib`] from [`Table::fib`].
pub struct Table {
    fib: Arc<Fib>,
    rib: Rib,
    next_fresh_group: u32,
    free_groups: Vec<u32>,
    retired_groups: Vec<u32>,
    /// Entries written so far: the cost the route writer schedules by.
    work: u64,
}

impl Table {
    /// An empty table with the given first-level stride and group capacity.
    pub fn new(stride: Stride, max_groups: u32) -> Table {
        Table {
            fib: Arc::new(Fib::new(stride, max_groups)),
            rib: Rib::default(),
            next_fresh_group: 0,
            free_groups: Vec::new(),
            retired_groups: Vec::new(),
            work: 0,
        }
    }

    /// Entries written (or visited) since the table was made: a change's cost is
    /// the difference across it.
    pub fn work(&self) -> u64 {
        self.work
    }

    /// The lookup structure, to hand to readers.
    pub fn fib(&self) -> &Arc<Fib> {
        &self.fib
    }

    /// The installed routes.
    pub fn rib(&self) -> &Rib {
        &self.rib
    }

    /// Installs or replaces `net/len → next_hop`. Returns the next hop it had, or
    /// None if it was not installed.
    pub fn add(&mut self, net: u32, len: u8, next_hop: u32) -> Result<Option<u32>, TableError> {
        check_prefix(net, len)?;
        if next_hop > MAX_NEXT_HOP {
            return Err(TableError::NextHopRange(next_hop));
        }
        // Reserve the groups this add may need first, so a full table fails whole
        // (unless the route is there already).
        let levels_below = u32::from(len)
            .saturating_sub(self.fib.stride().bits())
            .div_ceil(GROUP_BITS);
        if self.groups_available() < levels_below && self.rib.get(net, len) != Some(next_hop) {
            return Err(TableError::Full(self.fib.max_groups()));
        }
        // One hash operation on the common path: the RIB is large and cold.
        let old = self.rib.insert(net, len, next_hop);
        if old != Some(next_hop) {
            self.write_prefix(net, len, &Write::Add(leaf(len, next_hop)));
        }
        Ok(old)
    }

    /// Applies `op` for `net/len` at the level the prefix lives in: the short
    /// level up to [`SHORT_BITS`] bits, the trie below its first level otherwise.
    fn write_prefix(&mut self, net: u32, len: u8, op: &Write) {
        let fib = Arc::clone(&self.fib);
        if u32::from(len) <= SHORT_BITS {
            self.write(fib.short_level(), 0, SHORT_BITS, net, len, op);
        } else {
            self.write(fib.first_level(), 0, fib.stride().bits(), net, len, op);
        }
    }

    /// Removes `net/len`; lookups fall back to the next covering route. Returns the
    /// next hop it had, or None if it was not installed.
    pub fn delete(&mut self, net: u32, len: u8) -> Result<Option<u32>, TableError> {
        check_prefix(net, len)?;
        let Some(old) = self.rib.remove(net, len) else {
            return Ok(None);
        };
        // Entries of a level hold only that level's prefixes: a trie entry whose
        // covering route is short falls through to the short level.
        let same_level = |l: u8| (u32::from(l) <= SHORT_BITS) == (u32::from(len) <= SHORT_BITS);
        let replacement = self
            .rib
            .covering(net, len)
            .filter(|&(l, _)| same_level(l))
            .map_or(0, |(l, nh)| leaf(l, nh));
        self.write_prefix(net, len, &Write::Delete { len, replacement });
        Ok(Some(old))
    }

    /// Makes the groups unlinked so far reusable. Call only when every reader has
    /// passed a quiescent state since they were unlinked (an RCU grace period).
    pub fn reclaim(&mut self) {
        self.free_groups.append(&mut self.retired_groups);
    }

    /// Groups unlinked and waiting for [`Table::reclaim`].
    pub fn retired(&self) -> usize {
        self.retired_groups.len()
    }

    /// Groups currently linked into the table.
    pub fn groups_in_use(&self) -> u32 {
        self.next_fresh_group - (self.free_groups.len() + self.retired_groups.len()) as u32
    }

    /// Memory the table holds: the first level and the groups in use (unlinked
    /// groups and never-used ones are not counted; their pages stay untouched or
    /// are reused).
    pub fn memory_bytes(&self) -> usize {
        self.fib.first_level_bytes() + self.groups_in_use() as usize * GROUP_BYTES
    }

    fn groups_available(&self) -> u32 {
        self.fib.max_groups() - self.next_fresh_group + self.free_groups.len() as u32
    }

    fn alloc_group(&mut self) -> u32 {
        self.free_groups.pop().unwrap_or_else(|| {
            self.next_fresh_group += 1;
            self.next_fresh_group - 1
        })
    }

    /// Applies `op` for `net/len` to the level `slots`, which resolves address bits
    /// `lo..hi`.
    fn write(&mut self, slots: &[AtomicU32], lo: u32, hi: u32, net: u32, len: u8, op: &Write) {
        let len32 = u32::from(len);
        if len32 <= hi {
            // The prefix covers a run of slots at this level.
            let start = ((net >> (32 - hi)) & ((1 << (hi - lo)) - 1)) as usize;
            let count = 1usize << (hi - len32.max(lo));
            for slot in &slots[start..start + count] {
                self.write_covered(slot, hi, op);
            }
            return;
        }
        // The prefix is longer: descend into (or create) the group under one slot.
        let slot = &slots[((net >> (32 - hi)) & ((1 << (hi - lo)) - 1)) as usize];
        let current = slot.load(Ordering::Relaxed);
        if current & GROUP != 0 {
            let group = current & INDEX_MASK;
            let fib = Arc::clone(&self.fib);
            let entries = fib.group(group);
            self.write(entries, hi, hi + GROUP_BITS, net, len, op);
            if matches!(op, Write::Delete { .. }) {
                self.collapse_if_uniform(slot, hi, group, entries);
            }
        } else if let Write::Add(_) = op {
            // Build the group off-line (every entry inherits what the slot said), then
            // publish it with one release store.
            let group = self.alloc_group();
            let fib = Arc::clone(&self.fib);
            let entries = fib.group(group);
            entries
                .iter()
                .for_each(|e| e.store(current, Ordering::Relaxed));
            self.work += GROUP_ENTRIES as u64;
            self.write(entries, hi, hi + GROUP_BITS, net, len, op);
            slot.store(group_ptr(group), Ordering::Release);
        }
        // A delete under a leaf has nothing to remove.
    }

    /// Applies `op` to one slot the prefix covers entirely (recursing into a group).
    fn write_covered(&mut self, slot: &AtomicU32, hi: u32, op: &Write) {
        self.work += 1;
        let current = slot.load(Ordering::Relaxed);
        if current & GROUP != 0 {
            let group = current & INDEX_MASK;
            let fib = Arc::clone(&self.fib);
            let entries = fib.group(group);
            for e in entries {
                self.write_covered(e, hi + GROUP_BITS, op);
            }
            if matches!(op, Write::Delete { .. }) {
                self.collapse_if_uniform(slot, hi, group, entries);
            }
            return;
        }
        let replace = match *op {
            Write::Add(new) => current & VALID == 0 || depth(current) <= depth(new),
            Write::Delete { len, .. } => current & VALID != 0 && depth(current) == len,
        };
        if replace {
            let new = match *op {
                Write::Add(new) => new,
                Write::Delete { replacement, .. } => replacement,
            };
            slot.store(new, Ordering::Release);
        }
    }

    /// After a delete: a group whose entries are all the same leaf, written by a
    /// prefix no longer than its parent level (`parent_hi` bits), is folded back
    /// into the parent slot and retired until the next grace period.
    fn collapse_if_uniform(
        &mut self,
        slot: &AtomicU32,
        parent_hi: u32,
        group: u32,
        entries: &[AtomicU32],
    ) {
        let first = entries[0].load(Ordering::Relaxed);
        if first & GROUP == 0
            && u32::from(depth(first)) <= parent_hi
            && entries.iter().all(|e| e.load(Ordering::Relaxed) == first)
        {
            slot.store(first, Ordering::Release);
            self.retired_groups.push(group);
        }
    }
}

/// One table change, as applied to entries.
enum Write {
    /// Set entries whose prefix is not longer than the new one.
    Add(u32),
    /// Entries written by a prefix of exactly `len` take `replacement`.
    Delete { len: u8, replacement: u32 },
}

pub(crate) fn check_prefix(net: u32, len: u8) -> Result<(), TableError> {
    if len > 32 {
        return Err(TableError::BadLength(len));
    }
    if net & !mask(len) != 0 {
        return Err(TableError::HostBits(net.into(), len));
    }
    Ok(())
}

// Both strides leave a whole number of groups down to a /32.
const _: () = assert!((32 - 16) % GROUP_BITS == 0 && (32 - 24) % GROUP_BITS == 0);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> u32 {
        u32::from(s.parse::<std::net::Ipv4Addr>().unwrap())
    }

    fn both_strides() -> [Table; 2] {
        [
            Table::new(Stride::Compact16, 1024),
            Table::new(Stride::Wide24, 1024),
        ]
    }

    #[test]
    fn default_route_and_host_routes() {
        for mut t in both_strides() {
            assert_eq!(t.fib().lookup(ip("8.8.8.8")), None);
            t.add(0, 0, 1).unwrap();
            t.add(ip("10.0.0.0"), 8, 2).unwrap();
            t.add(ip("10.1.2.3"), 32, 3).unwrap();
            t.add(ip("10.1.2.0"), 24, 4).unwrap();
            let f = t.fib().clone();
            assert_eq!(f.lookup(ip("8.8.8.8")), Some(1));
            assert_eq!(f.lookup(ip("10.9.9.9")), Some(2));
            assert_eq!(f.lookup(ip("10.1.2.3")), Some(3));
            assert_eq!(f.lookup(ip("10.1.2.4")), Some(4));
            assert_eq!(f.lookup(ip("255.255.255.255")), Some(1));
            assert_eq!(t.delete(ip("10.1.2.3"), 32).unwrap(), Some(3));
            assert_eq!(f.lookup(ip("10.1.2.3")), Some(4));
            t.delete(ip("10.1.2.0"), 24).unwrap();
            assert_eq!(f.lookup(ip("10.1.2.3")), Some(2));
            t.delete(0, 0).unwrap();
            assert_eq!(f.lookup(ip("8.8.8.8")), None);
            assert_eq!(t.groups_in_use(), 0, "groups fold back when emptied");
        }
    }

    #[test]
    fn a_short_prefix_costs_at_most_its_level() {
        let mut t = Table::new(Stride::Wide24, 1024);
        t.add(ip("10.1.0.0"), 16, 1).unwrap();
        let before = t.work();
        t.add(0, 0, 2).unwrap();
        t.delete(0, 0).unwrap();
        t.add(ip("10.0.0.0"), 8, 3).unwrap();
        assert!(
            t.work() - before <= 3 * 256,
            "a /0 and a /8 write the short level only, not 2^24 entries"
        );
        let before = t.work();
        t.add(ip("10.128.0.0"), 9, 4).unwrap();
        assert_eq!(
            t.work() - before,
            1 << 15,
            "a /9 covers 2^15 first-level entries"
        );
        let f = t.fib().clone();
        assert_eq!(f.lookup(ip("10.1.2.3")), Some(1));
        assert_eq!(f.lookup(ip("10.2.2.3")), Some(3));
        assert_eq!(f.lookup(ip("10.200.2.3")), Some(4));
        assert_eq!(f.lookup(ip("11.0.0.1")), None);
    }

    #[test]
    fn rejects_bad_prefixes_without_change() {
        let mut t = Table::new(Stride::Compact16, 4);
        assert_eq!(
            t.add(ip("10.0.0.1"), 24, 1),
            Err(TableError::HostBits(ip("10.0.0.1").into(), 24))
        );
        assert_eq!(t.add(0, 33, 1), Err(TableError::BadLength(33)));
        assert_eq!(
            t.add(0, 0, MAX_NEXT_HOP + 1),
            Err(TableError::NextHopRange(MAX_NEXT_HOP + 1))
        );
        assert!(t.rib().is_empty());
        assert_eq!(t.fib().lookup(0), None);
    }

    #[test]
    fn full_table_refuses_whole_and_reclaim_reuses_groups() {
        // Each /24 under its own /16 takes one group per level below the first.
        let per_route = (24 - 16) / GROUP_BITS;
        let mut t = Table::new(Stride::Compact16, 64);
        for i in 0..64 / per_route {
            t.add((10 << 24) | (i << 16) | (1 << 8), 24, i).unwrap();
        }
        let err = t.add(ip("11.0.0.0"), 24, 99).unwrap_err();
        assert_eq!(err, TableError::Full(64));
        assert_eq!(t.rib().get(ip("11.0.0.0"), 24), None);
        t.delete((10 << 24) | (1 << 8), 24).unwrap();
        assert_eq!(t.retired(), per_route as usize);
        assert!(
            t.add(ip("11.0.0.0"), 24, 99).is_err(),
            "retired group is not reused before reclaim"
        );
        t.reclaim();
        t.add(ip("11.0.0.0"), 24, 99).unwrap();
        assert_eq!(t.fib().lookup(ip("11.0.0.7")), Some(99));
    }

    fn arb_route() -> impl Strategy<Value = (u32, u8, u32)> {
        (any::<u32>(), 0u8..=32, 0u32..1000).prop_map(|(a, l, nh)| (a & mask(l), l, nh))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// After any sequence of adds and deletes the trie answers exactly what the
        /// by-the-book longest match over the RIB answers.
        #[test]
        fn matches_reference(
            routes in proptest::collection::vec(arb_route(), 1..120),
            deletes in proptest::collection::vec(any::<prop::sample::Index>(), 0..80),
            probes in proptest::collection::vec(any::<u32>(), 64),
        ) {
            for mut t in both_strides() {
                for &(n, l, nh) in &routes { t.add(n, l, nh).unwrap(); }
                for d in &deletes {
                    let (n, l, _) = routes[d.index(routes.len())];
                    t.delete(n, l).unwrap();
                }
                let mut addrs = probes.clone();
                addrs.extend(routes.iter().map(|r| r.0));
                addrs.extend(routes.iter().map(|r| r.0 | !mask(r.1)));
                for a in addrs {
                    prop_assert_eq!(t.fib().lookup(a), t.rib().longest_match(a).map(|(_, nh)| nh));
                }
            }
        }
    }
}
