//! Per-VR route tables, IPv4 and IPv6 ([`Address`]): a lock-free lookup
//! structure ([`Fib`]) shared with the lcores, and its single writer ([`Table`]),
//! which also keeps the full route list ([`Rib`]).
//!
//! # Why not `rte_lpm`, `rte_fib` or `rte_fib6`
//! The table must (1) look up at least as fast as `rte_lpm` bulk, (2) install 1M
//! prefixes in ≤ 1 s, (3) change under running readers without exposing freed memory
//! or half a change, and (4) cost little for a small VR.
//! - `rte_lpm` fails (2): its add scans the rules of the same length, O(n); 1.08M
//!   routes took ≈ 150 s here. It also costs 64 MiB per table, failing (4).
//! - `rte_fib` and `rte_fib6` add fast but fail (3) in 22.11: they have no RCU
//!   hook and return tbl8 groups to their pool at once on delete, so a reader may
//!   walk a group that was already reused for another prefix. 16–128 MiB per table.
//!
//! So vrfwd keeps its own DIR-24-8-style trie in safe Rust, one code for both
//! families: first level 2^24 ([`Stride::Wide24`]) or 2^16
//! ([`Stride::Compact16`], 256 KiB, until an IPv4 VR widens), 4-bit groups below
//! (one cache line each), tail records for prefixes alone below a slot, IPv6
//! groups that skip the bits every prefix below their slot shares, every
//! entry an `AtomicU32` (one load per level, inlined in the lcore loop, no FFI
//! call). Prefix lengths live in the entries (as in `rte_lpm`), the RIB finds the
//! covering route on delete in one hash probe per prefix length in use, so add
//! and delete cost O(entries covered), not O(rules). New groups and records are
//! filled before they are linked; unlinked ones wait for [`Table::reclaim`].
//! Batches are made atomic by [`TablePair`] (left-right copies published under
//! RCU). The levels live in their own anonymous mappings (huge pages for large
//! IPv4 tables), committed only where written.
//!
//! Measured with `target/release/vrfwd-tables-bench` (2-vCPU AMD EPYC VM,
//! 2026-12-06, docs/benchmarks.md "Route tables"): 1M IPv4 prefixes installed in
//! 0.15 s (`rte_lpm`: 100k in 1.5 s, 1M would take minutes); bulk lookups in
//! bursts of 32, wide, at 1.1–1.2 × `rte_lpm_lookup_bulk` (10k prefixes); one
//! compact copy holds 0.16 MiB resident with 100 prefixes, 0.39 MiB with 10k,
//! 28 MiB with 1M (`rte_lpm`: ≥ 64 MiB always). 250k IPv6 prefixes shaped like
//! the Internet's install in 0.04–0.06 s and cost a VR 290 B each (both copies,
//! their RIBs); with groups that skip, their lookups run at 0.30–0.41 × IPv4's
//! (goal 0.8: not met, see docs/benchmarks.md "IPv6 groups that skip").
mod addr;
mod dual;
mod fib;
mod pair;
mod rib;
mod slab;

pub use addr::Address;
pub use dual::{Batch, DualPair, Mark, Refused, Staged};
pub use fib::{Fib, FirstEntry, Stride, BURST};
pub use pair::{validate, Change, TablePair};
pub use rib::Rib;

use fib::{
    depth, group_ptr, leaf, skipped_bits, tail_ptr, tail_words, Record, FIRST_PAGE_ENTRIES, GROUP,
    GROUP_BITS, GROUP_ENTRIES, INDEX_MASK, KIND, SHORT_BITS, TAIL, VALID,
};
use slab::Slab;
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
    /// The prefix length is longer than the family's addresses.
    #[error("prefix length {0} is longer than the address")]
    BadLength(u8),
    /// The prefix has bits set beyond its length.
    #[error("{0}/{1} has host bits set")]
    HostBits(std::net::IpAddr, u8),
    /// The next-hop index does not fit in an entry.
    #[error("next-hop index {0} exceeds {MAX_NEXT_HOP}")]
    NextHopRange(u32),
    /// Every group is in use (or waiting for a grace period).
    #[error("the table is out of groups ({0}); raise max_groups")]
    Full(u32),
}

/// The writer side of one route table (IPv4 by default). Not `Sync`: one writer
/// at a time; readers use the [`Fib`] from [`Table::fib`].
pub struct Table<A: Address = u32> {
    fib: Arc<Fib<A>>,
    rib: Rib<A>,
    groups: Slab,
    tails: Slab,
    /// The first level's pages written so far, a bit each, for a family sparse
    /// at the top (counted as its memory); empty for the others, whose first
    /// level counts whole.
    first_pages: Vec<u64>,
    /// Entries written so far: the cost the route writer schedules by.
    work: u64,
}

impl<A: Address> Table<A> {
    /// An empty table with the given first-level stride and group capacity (as
    /// many tail records again).
    pub fn new(stride: Stride, max_groups: u32) -> Table<A> {
        let fib = Arc::new(Fib::new(stride, max_groups));
        let capacity = fib.max_groups();
        Table {
            fib,
            rib: Rib::default(),
            groups: Slab::new(capacity),
            tails: Slab::new(capacity),
            first_pages: match A::SPARSE_TOP {
                true => vec![0; (1usize << stride.bits()).div_ceil(FIRST_PAGE_ENTRIES * 64)],
                false => Vec::new(),
            },
            work: 0,
        }
    }

    /// Entries written (or visited) since the table was made: a change's cost is
    /// the difference across it.
    pub fn work(&self) -> u64 {
        self.work
    }

    /// The lookup structure, to hand to readers.
    pub fn fib(&self) -> &Arc<Fib<A>> {
        &self.fib
    }

    /// The installed routes.
    pub fn rib(&self) -> &Rib<A> {
        &self.rib
    }

    /// Installs or replaces `net/len → next_hop`. Returns the next hop it had, or
    /// None if it was not installed.
    pub fn add(&mut self, net: A, len: u8, next_hop: u32) -> Result<Option<u32>, TableError> {
        check_prefix(net, len)?;
        if next_hop > MAX_NEXT_HOP {
            return Err(TableError::NextHopRange(next_hop));
        }
        // Reserve what this add may need first, so a full table fails whole
        // (unless the route is there already). Where groups skip, a prefix below
        // the first level makes at most one group, where it parts from what is
        // there, and two tail records: its own and the one it split, placed again
        // in that group. Where they do not, a group per level below the first and
        // a record per split on the way plus its own.
        let levels_below = u32::from(len)
            .saturating_sub(self.fib.stride().bits())
            .div_ceil(GROUP_BITS);
        let (groups, tails) = match A::SKIPS {
            true => (levels_below.min(1), 2 * levels_below.min(1)),
            false => (levels_below, levels_below + 1),
        };
        let room = self.groups.available() >= groups && self.tails.available() >= tails;
        if !room && self.rib.get(net, len) != Some(next_hop) {
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
    fn write_prefix(&mut self, net: A, len: u8, op: &Write) {
        let fib = Arc::clone(&self.fib);
        if u32::from(len) <= SHORT_BITS {
            self.write(fib.short_level(), 0, SHORT_BITS, net, len, op);
        } else {
            let bits = fib.stride().bits();
            if A::SPARSE_TOP {
                self.note_first_pages(net.field(0, bits), 1 << bits.saturating_sub(len.into()));
            }
            self.write(fib.first_level(), 0, bits, net, len, op);
        }
    }

    /// Marks the first-level pages of `count` entries from `start` as written.
    fn note_first_pages(&mut self, start: usize, count: usize) {
        let pages = start / FIRST_PAGE_ENTRIES..=(start + count - 1) / FIRST_PAGE_ENTRIES;
        for page in pages {
            self.first_pages[page / 64] |= 1 << (page % 64);
        }
    }

    /// Removes `net/len`; lookups fall back to the next covering route. Returns the
    /// next hop it had, or None if it was not installed.
    pub fn delete(&mut self, net: A, len: u8) -> Result<Option<u32>, TableError> {
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

    /// Makes the groups and records unlinked so far reusable. Call only when
    /// every reader has passed a quiescent state since they were unlinked (an RCU
    /// grace period).
    pub fn reclaim(&mut self) {
        self.groups.reclaim();
        self.tails.reclaim();
    }

    /// Groups and records unlinked and waiting for [`Table::reclaim`].
    pub fn retired(&self) -> usize {
        self.groups.retired() + self.tails.retired()
    }

    /// Groups currently linked into the table.
    pub fn groups_in_use(&self) -> u32 {
        self.groups.in_use()
    }

    /// Tail records currently linked into the table.
    pub fn tails_in_use(&self) -> u32 {
        self.tails.in_use()
    }

    /// Memory the table holds: the first level, the groups and the records in
    /// use (unlinked ones and never-used ones are not counted; their pages stay
    /// untouched or are reused).
    pub fn memory_bytes(&self) -> usize {
        let record_bytes = tail_words::<A>() * std::mem::size_of::<AtomicU32>();
        let pages_written = self
            .first_pages
            .iter()
            .map(|w| w.count_ones() as usize)
            .sum();
        // A group's header counts with it where groups skip: headers share the
        // group's index.
        let header_bytes = if A::SKIPS { record_bytes } else { 0 };
        self.fib.first_level_bytes(pages_written)
            + self.groups.in_use() as usize * (GROUP_BYTES + header_bytes)
            + self.tails.in_use() as usize * record_bytes
    }

    /// Applies `op` for `net/len` to the level `slots`, which resolves address bits
    /// `lo..hi`.
    fn write(&mut self, slots: &[AtomicU32], lo: u32, hi: u32, net: A, len: u8, op: &Write) {
        let len32 = u32::from(len);
        if len32 <= hi {
            // The prefix covers a run of slots at this level.
            let start = net.field(lo, hi);
            let count = 1usize << (hi - len32.max(lo));
            for slot in &slots[start..start + count] {
                self.write_covered(slot, hi, op);
            }
            return;
        }
        // The prefix is longer: it lies below one slot.
        let slot = &slots[net.field(lo, hi)];
        let current = slot.load(Ordering::Relaxed);
        match current & KIND {
            GROUP => self.write_below_group(slot, hi, current, net, len, op),
            TAIL => self.write_at_tail(slot, hi, current & INDEX_MASK, net, len, op),
            // Alone below this slot: a record, filled before it is linked.
            _ => {
                if let Write::Add(new) = *op {
                    let tail = self.tails.alloc();
                    Record(self.fib.tail(tail)).fill(net, new, current);
                    self.work += 1;
                    slot.store(tail_ptr(tail), Ordering::Release);
                }
            }
        }
    }

    /// Applies `op` for `net/len` (longer than `hi`) to `slot`, which points to a
    /// group: into the group when the prefix lies on its path, else (an add) by
    /// splitting the skip where the prefix leaves the path.
    fn write_below_group(
        &mut self,
        slot: &AtomicU32,
        hi: u32,
        current: u32,
        net: A,
        len: u8,
        op: &Write,
    ) {
        let fib = Arc::clone(&self.fib);
        let group = current & INDEX_MASK;
        let level = hi + skipped_bits(current);
        let on_path =
            level == hi || (u32::from(len) > level && Record(fib.header(group)).covers(net));
        if !on_path {
            // A delete has nothing here: no prefix lies in the bits a group skips.
            if let Write::Add(_) = op {
                self.split_skip(slot, hi, current, net, len, op);
            }
            return;
        }
        let entries = fib.group(group);
        self.write(entries, level, level + GROUP_BITS, net, len, op);
        if matches!(op, Write::Delete { .. }) {
            self.collapse_if_uniform(slot, hi, current, Some(net));
        }
    }

    /// Adds `net/len`, which lies below `slot` but off the path of the group the
    /// slot skips to: a new group where the prefix and the path part takes the
    /// slot, with the old group below it skipping what remains. The new group is
    /// linked first, holding only what the slot answered, and the prefix written
    /// into it after, so a reader meets the old group through one pointer or the
    /// other, never with a fallback meant for the other.
    fn split_skip(&mut self, slot: &AtomicU32, hi: u32, current: u32, net: A, len: u8, op: &Write) {
        let fib = Arc::clone(&self.fib);
        let old = current & INDEX_MASK;
        let level = hi + skipped_bits(current);
        let header = Record(fib.header(old));
        let (path, fallback) = (header.prefix::<A>(), header.fallback());
        let at = parting_level(hi, level - GROUP_BITS, path, net, len);
        let parent = self.new_group(hi, at, net, fallback);
        let entries = fib.group(parent);
        let rest = (level - at - GROUP_BITS) / GROUP_BITS;
        entries[path.field(at, at + GROUP_BITS)].store(group_ptr(old, rest), Ordering::Relaxed);
        slot.store(group_ptr(parent, (at - hi) / GROUP_BITS), Ordering::Release);
        self.write(entries, at, at + GROUP_BITS, net, len, op);
    }

    /// A new group for a slot resolving up to `hi`, resolving `at..at + GROUP_BITS`
    /// (skipping from `hi` to `at` on the path of `on_path`), every entry and the
    /// header's fallback answering `fallback`. Not linked yet.
    fn new_group(&mut self, hi: u32, at: u32, on_path: A, fallback: u32) -> u32 {
        let group = self.groups.alloc();
        self.fib
            .group(group)
            .iter()
            .for_each(|e| e.store(fallback, Ordering::Relaxed));
        if at > hi {
            Record(self.fib.header(group)).fill(
                on_path & A::mask(at as u8),
                leaf(at as u8, 0),
                fallback,
            );
        }
        self.work += GROUP_ENTRIES as u64;
        group
    }

    /// Applies `op` for `net/len` (longer than `hi`) to `slot`, which holds tail
    /// record `tail`: the record's own prefix changes in place or goes; another
    /// prefix splits the record into a group holding both, at the level where
    /// they part (skipping the bits they share).
    fn write_at_tail(&mut self, slot: &AtomicU32, hi: u32, tail: u32, net: A, len: u8, op: &Write) {
        let fib = Arc::clone(&self.fib);
        let record = Record(fib.tail(tail));
        let (prefix, own, fallback) = (record.prefix::<A>(), record.leaf(), record.fallback());
        self.work += 1;
        if prefix == net && depth(own) == len {
            match *op {
                Write::Add(new) => record.set_leaf(new),
                Write::Delete { replacement, .. } => {
                    debug_assert_eq!(fallback, replacement, "a record's fallback is its cover");
                    slot.store(fallback, Ordering::Release);
                    self.tails.retire(tail);
                }
            }
            return;
        }
        if let Write::Add(_) = op {
            // Build the group off-line, then link it.
            let at = parting_level(hi, A::BITS - GROUP_BITS, prefix, net, depth(own).min(len));
            let group = self.new_group(hi, at, net, fallback);
            let entries = fib.group(group);
            let next = at + GROUP_BITS;
            self.write(entries, at, next, prefix, depth(own), &Write::Add(own));
            self.write(entries, at, next, net, len, op);
            slot.store(group_ptr(group, (at - hi) / GROUP_BITS), Ordering::Release);
            self.tails.retire(tail);
        }
        // A delete of a prefix that is not the record's has nothing to remove.
    }

    /// Applies `op` to one slot the prefix covers entirely (recursing into a group
    /// and its header; for a tail record, its fallback is what the slot answers).
    fn write_covered(&mut self, slot: &AtomicU32, hi: u32, op: &Write) {
        self.work += 1;
        let current = slot.load(Ordering::Relaxed);
        match current & KIND {
            GROUP => {
                let group = current & INDEX_MASK;
                let level = hi + skipped_bits(current);
                let fib = Arc::clone(&self.fib);
                if level > hi {
                    let header = Record(fib.header(group));
                    if let Some(new) = op.covered(header.fallback()) {
                        header.set_fallback(new);
                    }
                }
                for e in fib.group(group) {
                    self.write_covered(e, level + GROUP_BITS, op);
                }
                if matches!(op, Write::Delete { .. }) {
                    self.collapse_if_uniform(slot, hi, current, None);
                }
            }
            TAIL => {
                let record = Record(self.fib.tail(current & INDEX_MASK));
                if let Some(new) = op.covered(record.fallback()) {
                    record.set_fallback(new);
                }
            }
            _ => {
                if let Some(new) = op.covered(current) {
                    slot.store(new, Ordering::Release);
                }
            }
        }
    }

    /// After a delete: a group that answers one thing throughout is folded back
    /// into its parent slot (resolving up to `parent_hi`) and retired until the
    /// next grace period. One thing: the same leaf everywhere, written by a prefix
    /// no longer than the parent level; or that leaf everywhere but in one slot
    /// holding a tail record that falls back to it (the record moves up), or a
    /// group (the slot then skips to it; `on_path`, an address on this group's
    /// path, gives that group's path when it had none).
    fn collapse_if_uniform(
        &mut self,
        slot: &AtomicU32,
        parent_hi: u32,
        current: u32,
        on_path: Option<A>,
    ) {
        let fib = Arc::clone(&self.fib);
        let group = current & INDEX_MASK;
        let mut answer = None;
        let mut child = None;
        for (i, entry) in fib
            .group(group)
            .iter()
            .map(|e| e.load(Ordering::Relaxed))
            .enumerate()
        {
            match entry & KIND {
                GROUP | TAIL if child.is_none() => child = Some((i, entry)),
                GROUP | TAIL => return,
                _ if *answer.get_or_insert(entry) != entry => return,
                _ => {}
            }
        }
        let answer = answer.unwrap_or(0);
        if u32::from(depth(answer)) > parent_hi {
            return;
        }
        let folded = match child {
            None => answer,
            Some((_, t)) if t & KIND == TAIL => {
                if Record(fib.tail(t & INDEX_MASK)).fallback() != answer {
                    return;
                }
                t
            }
            Some(_) if !A::SKIPS => return,
            Some((i, g)) => match self.skip_to(parent_hi, current, i, g, answer, on_path) {
                Some(pointer) => pointer,
                None => return,
            },
        };
        slot.store(folded, Ordering::Release);
        self.groups.retire(group);
    }

    /// For the slot resolving up to `parent_hi` that points to `parent`, whose
    /// entries answer `answer` but entry `index`, which points to another group:
    /// a pointer skipping straight to that group, if no prefix lies on the way
    /// (one would need the levels skipped). Its header is written first when it
    /// had none (nothing reads it until the new pointer is stored). None when the
    /// path is not known or a prefix lies on the way.
    fn skip_to(
        &mut self,
        parent_hi: u32,
        parent: u32,
        index: usize,
        pointer: u32,
        answer: u32,
        on_path: Option<A>,
    ) -> Option<u32> {
        let level = parent_hi + skipped_bits(parent);
        let child = pointer & INDEX_MASK;
        let below = level + GROUP_BITS;
        let child_level = below + skipped_bits(pointer);
        let header = Record(self.fib.header(child));
        let path = match child_level == below {
            true => on_path?.with_field(level, below, index) & A::mask(below as u8),
            false => header.prefix::<A>(),
        };
        let on_the_way = self.rib.covering(path, child_level as u8 + 1);
        if on_the_way.is_some_and(|(len, _)| u32::from(len) > parent_hi) {
            return None;
        }
        if child_level == below {
            header.fill(path, leaf(below as u8, 0), answer);
        }
        debug_assert_eq!(
            header.fallback(),
            answer,
            "a skipped slot's answer is its cover"
        );
        Some(group_ptr(child, (child_level - parent_hi) / GROUP_BITS))
    }
}

/// The deepest group level from `hi` (at most `max`, in steps of a group) above
/// which `a` and `b` agree and below which both prefixes, the shorter `shortest`
/// bits long, still go on: where one group holds both.
fn parting_level<A: Address>(hi: u32, max: u32, a: A, b: A, shortest: u8) -> u32 {
    if !A::SKIPS {
        return hi;
    }
    let limit = a.shared_bits(b).min(u32::from(shortest) - 1).min(max);
    hi + (limit - hi) / GROUP_BITS * GROUP_BITS
}

/// One table change, as applied to entries.
enum Write {
    /// Set entries whose prefix is not longer than the new one.
    Add(u32),
    /// Entries written by a prefix of exactly `len` take `replacement`.
    Delete { len: u8, replacement: u32 },
}

impl Write {
    /// What a leaf or empty entry `current`, entirely covered by the prefix,
    /// becomes (None: it stays).
    fn covered(&self, current: u32) -> Option<u32> {
        match *self {
            Write::Add(new) => {
                (current & VALID == 0 || depth(current) <= depth(new)).then_some(new)
            }
            Write::Delete { len, replacement } => {
                (current & VALID != 0 && depth(current) == len).then_some(replacement)
            }
        }
    }
}

pub(crate) fn check_prefix<A: Address>(net: A, len: u8) -> Result<(), TableError> {
    if u32::from(len) > A::BITS {
        return Err(TableError::BadLength(len));
    }
    if net & !A::mask(len) != A::default() {
        return Err(TableError::HostBits(net.ip(), len));
    }
    Ok(())
}

// Both strides leave a whole number of groups down to a full-length prefix in
// both families.
const _: () = assert!((32 - 16) % GROUP_BITS == 0 && (32 - 24) % GROUP_BITS == 0);
const _: () = assert!((128 - 16) % GROUP_BITS == 0 && (128 - 24) % GROUP_BITS == 0);
const _: () = assert!(TAIL & VALID == 0 && GROUP & VALID != 0);

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
            Err(TableError::HostBits("10.0.0.1".parse().unwrap(), 24))
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
        // Two /24s under one /16 part in their third octet: two groups each pair.
        let mut t = Table::new(Stride::Compact16, 64);
        let pair = |i: u32| {
            [
                (10 << 24) | (i << 16) | (1 << 8),
                (10 << 24) | (i << 16) | (2 << 8),
            ]
        };
        for i in 0..32 {
            for net in pair(i) {
                t.add(net, 24, i).unwrap();
            }
            // The records the split retired (as after a grace period).
            t.reclaim();
        }
        assert_eq!((t.groups_in_use(), t.tails_in_use()), (64, 0));
        let err = t.add(ip("11.0.0.0"), 24, 99).unwrap_err();
        assert_eq!(err, TableError::Full(64));
        assert_eq!(t.rib().get(ip("11.0.0.0"), 24), None);
        for net in pair(1) {
            t.delete(net, 24).unwrap();
        }
        assert_eq!(t.retired(), 2, "both groups of the pair fold away");
        assert!(
            t.add(ip("11.0.0.0"), 24, 99).is_err(),
            "retired group is not reused before reclaim"
        );
        t.reclaim();
        t.add(ip("11.0.0.0"), 24, 99).unwrap();
        assert_eq!(t.fib().lookup(ip("11.0.0.7")), Some(99));
    }

    #[test]
    fn a_lone_prefix_is_one_tail_record_and_splits_where_another_parts() {
        let mut t = Table::new(Stride::Compact16, 64);
        t.add(ip("10.1.0.0"), 16, 1).unwrap();
        t.add(ip("10.1.2.0"), 24, 2).unwrap();
        assert_eq!((t.groups_in_use(), t.tails_in_use()), (0, 1));
        let f = t.fib().clone();
        assert_eq!(f.lookup(ip("10.1.2.9")), Some(2));
        assert_eq!(f.lookup(ip("10.1.3.9")), Some(1), "the fallback");
        // Another prefix under the same /16 parts from the first in the 3rd octet's
        // low nibble: a group for bits 16..20, one for 20..24, and leaves.
        t.add(ip("10.1.3.128"), 25, 3).unwrap();
        assert_eq!((t.groups_in_use(), t.tails_in_use()), (2, 1));
        assert_eq!(f.lookup(ip("10.1.3.200")), Some(3));
        assert_eq!(f.lookup(ip("10.1.3.1")), Some(1));
        assert_eq!(f.lookup(ip("10.1.2.1")), Some(2));
        // The cover changes under the record: the record answers the new cover.
        t.add(ip("10.1.0.0"), 16, 4).unwrap();
        assert_eq!(f.lookup(ip("10.1.3.1")), Some(4));
        assert_eq!(f.lookup(ip("10.1.3.200")), Some(3));
        // Deleting the /24 folds the groups back to the /25's record alone.
        t.delete(ip("10.1.2.0"), 24).unwrap();
        assert_eq!((t.groups_in_use(), t.tails_in_use()), (0, 1));
        assert_eq!(f.lookup(ip("10.1.2.1")), Some(4));
        assert_eq!(f.lookup(ip("10.1.3.200")), Some(3));
        t.delete(ip("10.1.3.128"), 25).unwrap();
        t.delete(ip("10.1.0.0"), 16).unwrap();
        assert_eq!((t.groups_in_use(), t.tails_in_use()), (0, 0));
        assert_eq!(f.lookup(ip("10.1.3.200")), None);
    }

    #[test]
    fn ipv6_default_host_and_neighbouring_prefixes() {
        let v6 = |s: &str| u128::from(s.parse::<std::net::Ipv6Addr>().unwrap());
        for stride in [Stride::Compact16, Stride::Wide24] {
            let mut t: Table<u128> = Table::new(stride, 1024);
            t.add(0, 0, 1).unwrap();
            t.add(v6("2001:db8::"), 32, 2).unwrap();
            t.add(v6("2001:db8:1::"), 48, 3).unwrap();
            t.add(v6("2001:db8:1::1"), 128, 4).unwrap();
            // Differ in their last bit only.
            t.add(v6("2001:db8:2::"), 127, 5).unwrap();
            t.add(v6("2001:db8:2::2"), 127, 6).unwrap();
            let f = t.fib().clone();
            assert_eq!(f.lookup(v6("::1")), Some(1));
            assert_eq!(f.lookup(v6("2001:db8:9::")), Some(2));
            assert_eq!(f.lookup(v6("2001:db8:1::2")), Some(3));
            assert_eq!(f.lookup(v6("2001:db8:1::1")), Some(4));
            assert_eq!(f.lookup(v6("2001:db8:2::1")), Some(5));
            assert_eq!(f.lookup(v6("2001:db8:2::3")), Some(6));
            assert_eq!(f.lookup(v6("2001:db8:2::4")), Some(2));
            assert_eq!(
                t.add(v6("2001:db8::1"), 64, 1),
                Err(TableError::HostBits("2001:db8::1".parse().unwrap(), 64))
            );
            assert_eq!(t.add(0, 129, 1), Err(TableError::BadLength(129)));
            for (net, len) in [
                ("2001:db8:2::2", 127),
                ("2001:db8:2::", 127),
                ("2001:db8:1::1", 128),
            ] {
                t.delete(v6(net), len).unwrap();
            }
            t.delete(v6("2001:db8:1::"), 48).unwrap();
            t.delete(v6("2001:db8::"), 32).unwrap();
            assert_eq!(f.lookup(v6("2001:db8:2::3")), Some(1));
            assert_eq!((t.groups_in_use(), t.tails_in_use()), (0, 0));
        }
    }

    #[test]
    fn ipv6_groups_skip_the_bits_their_prefixes_share() {
        let v6 = |s: &str| u128::from(s.parse::<std::net::Ipv6Addr>().unwrap());
        let mut t: Table<u128> = Table::new(Stride::Wide24, 64);
        let f = t.fib().clone();
        // Two /48s of one allocation part in bit 46: one group for bits 44..48
        // holding their leaves, which the /24 slot points to, skipping 24..44.
        t.add(v6("2001:db8:1::"), 48, 1).unwrap();
        t.add(v6("2001:db8:2::"), 48, 2).unwrap();
        assert_eq!((t.groups_in_use(), t.tails_in_use()), (1, 0));
        assert_eq!(f.lookup(v6("2001:db8:1::9")), Some(1));
        assert_eq!(f.lookup(v6("2001:db8:2::9")), Some(2));
        assert_eq!(f.lookup(v6("2001:db8:3::9")), None);
        // Same /24 slot, off the path in the skipped bits.
        assert_eq!(f.lookup(v6("2001:db9:1::9")), None);
        // A cover of the slot answers off the path (the header's fallback).
        t.add(v6("2001::"), 16, 3).unwrap();
        assert_eq!(f.lookup(v6("2001:db9:1::9")), Some(3));
        assert_eq!(f.lookup(v6("2001:db8:3::9")), Some(3));
        // A prefix that leaves the path in the skipped bits splits the skip: a
        // group for bits 32..36 above the old one, which now skips 36..44.
        t.add(v6("2001:db8:8000::"), 33, 4).unwrap();
        assert_eq!(t.groups_in_use(), 2);
        for (addr, want) in [
            ("2001:db8:8001::1", 4),
            ("2001:db8:1::1", 1),
            ("2001:db8:2::1", 2),
            ("2001:db8:4000::1", 3),
            ("2001:db8:10::1", 3),
            ("2001:db9:1::9", 3),
        ] {
            assert_eq!(f.lookup(v6(addr)), Some(want), "{addr}");
            let mut burst = [None];
            f.lookup_burst(&[v6(addr)], &mut burst);
            assert_eq!(burst[0], Some(want), "burst {addr}");
        }
        // Deleting it joins the skip again: one group, the same answers.
        t.delete(v6("2001:db8:8000::"), 33).unwrap();
        assert_eq!(t.groups_in_use(), 1);
        assert_eq!(f.lookup(v6("2001:db8:8001::1")), Some(3));
        assert_eq!(f.lookup(v6("2001:db8:2::1")), Some(2));
        // A prefix on the path but shorter than the skip splits it too, and
        // covers the old group where it lies.
        t.add(v6("2001:db8::"), 40, 5).unwrap();
        assert_eq!(f.lookup(v6("2001:db8:3::9")), Some(5));
        assert_eq!(f.lookup(v6("2001:db8:1::9")), Some(1));
        assert_eq!(f.lookup(v6("2001:db8:100::9")), Some(3));
        for (net, len) in [
            ("2001:db8::", 40),
            ("2001::", 16),
            ("2001:db8:1::", 48),
            ("2001:db8:2::", 48),
        ] {
            t.delete(v6(net), len).unwrap();
        }
        assert_eq!((t.groups_in_use(), t.tails_in_use()), (0, 0));
        assert_eq!(f.lookup(v6("2001:db8:2::1")), None);
    }

    /// The address with only its last bit set.
    fn last_bit<A: Address>() -> A {
        A::from_words(|i| u32::from(i == A::WORDS - 1))
    }

    /// `a` with its last bit flipped.
    fn flip_last<A: Address>(a: A) -> A {
        let one = last_bit::<A>();
        if a & one == A::default() {
            a | one
        } else {
            a & !one
        }
    }

    /// Routes clustered around a few anchors (so that prefixes share groups and
    /// split each other's records), every length from /0 to full, full-length
    /// ones in pairs that differ in their last bit.
    fn arb_routes<A: Address>() -> impl Strategy<Value = Vec<(A, u8, u32)>> {
        let word = || prop::array::uniform4(any::<u32>());
        let route = (
            0usize..4,
            0..=A::BITS as u8,
            word(),
            0..=A::BITS as u8,
            0u32..1000,
        );
        (
            prop::array::uniform4(word()),
            proptest::collection::vec(route, 1..120),
        )
            .prop_map(|(anchors, routes)| {
                routes
                    .into_iter()
                    .flat_map(|(anchor, keep, noise, len, nh)| {
                        let anchor = A::from_words(|i| anchors[anchor][i]);
                        let noise = A::from_words(|i| noise[i]);
                        let addr = (anchor & A::mask(keep)) | (noise & !A::mask(keep));
                        let net = addr & A::mask(len);
                        let twin = (len == A::BITS as u8).then(|| flip_last(net));
                        std::iter::once((net, len, nh)).chain(twin.map(|t| (t, len, nh + 1)))
                    })
                    .collect()
            })
    }

    /// Checks `lookup` and `lookup_burst` on every address of `probes` against
    /// the by-the-book longest match over the RIB.
    fn check_probes<A: Address>(
        t: &Table<A>,
        stride: Stride,
        probes: impl Iterator<Item = A>,
    ) -> Result<(), TestCaseError> {
        let probes: Vec<A> = probes.collect();
        for chunk in probes.chunks(BURST) {
            let mut burst = [None; BURST];
            t.fib().lookup_burst(chunk, &mut burst);
            for (&a, &got) in chunk.iter().zip(&burst) {
                let want = t.rib().longest_match(a).map(|(_, nh)| nh);
                prop_assert_eq!(t.fib().lookup(a), want, "{:?} {:?}", stride, a);
                prop_assert_eq!(got, want, "burst {:?} {:?}", stride, a);
            }
        }
        Ok(())
    }

    /// Installs `routes`, deletes some, and checks every lookup against the
    /// by-the-book longest match; then deletes everything and checks the table
    /// holds no group or record.
    fn check_against_reference<A: Address>(
        routes: &[(A, u8, u32)],
        deletes: &[prop::sample::Index],
        probes: &[A],
    ) -> Result<(), TestCaseError> {
        for stride in [Stride::Compact16, Stride::Wide24] {
            let mut t: Table<A> = Table::new(stride, 4096);
            for &(n, l, nh) in routes {
                t.add(n, l, nh).unwrap();
            }
            for d in deletes {
                let (n, l, _) = routes[d.index(routes.len())];
                t.delete(n, l).unwrap();
            }
            let edges = routes.iter().flat_map(|&(n, l, _)| {
                let last = n | !A::mask(l);
                [n, last, flip_last(last)]
            });
            check_probes(&t, stride, probes.iter().copied().chain(edges))?;
            for &(n, l, _) in routes {
                t.delete(n, l).unwrap();
            }
            prop_assert_eq!((t.groups_in_use(), t.tails_in_use()), (0, 0));
        }
        Ok(())
    }

    /// Up to 160 changes: which route of the pool, add (true) or delete, and the
    /// next hop an add puts in.
    fn arb_ops() -> impl Strategy<Value = Vec<(prop::sample::Index, bool, u32)>> {
        proptest::collection::vec(
            (any::<prop::sample::Index>(), any::<bool>(), 0u32..8),
            1..160,
        )
    }

    /// Adds and deletes interleaved over a clustered pool of routes (re-adds with
    /// other next hops, deletes of absent prefixes, splits after folds), checking
    /// the trie against the by-the-book longest match after every change.
    fn check_interleaved<A: Address>(
        routes: &[(A, u8, u32)],
        ops: &[(prop::sample::Index, bool, u32)],
        probes: &[A],
    ) -> Result<(), TestCaseError> {
        for stride in [Stride::Compact16, Stride::Wide24] {
            let mut t: Table<A> = Table::new(stride, 4096);
            for &(pick, add, nh) in ops {
                let (n, l, _) = routes[pick.index(routes.len())];
                let before = (t.groups.in_use(), t.tails.in_use());
                match add {
                    true => t.add(n, l, nh % 4).map(|_| ()).unwrap(),
                    false => t.delete(n, l).map(|_| ()).unwrap(),
                }
                if add && A::SKIPS {
                    // What `Table::add` reserves where groups skip.
                    let made = |s: &Slab, before: u32| s.in_use() + s.retired() as u32 - before;
                    prop_assert!(made(&t.groups, before.0) <= 1, "one group an add");
                    prop_assert!(made(&t.tails, before.1) <= 2, "two records an add");
                }
                t.reclaim();
                let edges = routes.iter().flat_map(|&(n, l, _)| {
                    let last = n | !A::mask(l);
                    [n, last, flip_last(last), flip_last(n)]
                });
                check_probes(&t, stride, probes.iter().copied().chain(edges))?;
            }
            for &(n, l, _) in routes {
                t.delete(n, l).unwrap();
            }
            prop_assert_eq!((t.groups_in_use(), t.tails_in_use()), (0, 0));
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// After any sequence of adds and deletes the trie answers exactly what the
        /// by-the-book longest match over the RIB answers, and memory follows the
        /// routes back to nothing.
        #[test]
        fn ipv4_matches_reference(
            routes in arb_routes::<u32>(),
            deletes in proptest::collection::vec(any::<prop::sample::Index>(), 0..80),
            probes in proptest::collection::vec(any::<u32>(), 64),
        ) {
            check_against_reference(&routes, &deletes, &probes)?;
        }

        #[test]
        fn ipv4_interleaved_matches_reference(
            routes in arb_routes::<u32>(),
            ops in arb_ops(),
            probes in proptest::collection::vec(any::<u32>(), 16),
        ) {
            check_interleaved(&routes, &ops, &probes)?;
        }

        #[test]
        fn ipv6_interleaved_matches_reference(
            routes in arb_routes::<u128>(),
            ops in arb_ops(),
            probes in proptest::collection::vec(any::<u128>(), 16),
        ) {
            check_interleaved(&routes, &ops, &probes)?;
        }

        #[test]
        fn ipv6_matches_reference(
            routes in arb_routes::<u128>(),
            deletes in proptest::collection::vec(any::<prop::sample::Index>(), 0..80),
            probes in proptest::collection::vec(any::<u128>(), 64),
        ) {
            check_against_reference(&routes, &deletes, &probes)?;
        }
    }
}
