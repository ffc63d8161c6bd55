//! The lookup structure readers (lcores) use: a multibit trie with a wide first
//! level and 4-bit groups below (16 entries, one 64-byte cache line), every entry
//! one `AtomicU32`, so a reader's lookup is a few plain loads and a writer changes
//! the table with single stores.
//!
//! Why 4 bits: a group costs 64 B, so a prefix that needs groups of its own costs
//! ≈ 64 B per level below the first (a /24 in a compact table: two groups, 128 B),
//! and memory follows the routes. 8-bit groups (1 KiB) made a VR with 10k
//! scattered /24s cost ≈ 10 MiB per copy (docs/benchmarks.md, "Route-table memory").
//!
//! Entry layout: bit 31 valid, bit 30 "points to a group", bits 24..30 the prefix
//! length that wrote it, bits 0..24 a next-hop index or a group index.
//!
//! Prefixes of up to [`SHORT_BITS`] bits (the default route among them) live in a
//! separate 256-entry level that a lookup reads only when the trie has no match,
//! so that a change to one of them writes at most 256 entries instead of up to
//! 2^24 in each copy: the route writer's cost per change stays bounded (a /9, the
//! shortest prefix in the trie, covers 2^15 first-level entries of a wide table).
//!
//! A writer fills a new group completely before it publishes the pointer to it
//! (release store), so a reader never sees a half-built group. A group that is
//! unlinked is not reused until the owner of the table says a grace period has
//! passed (see `super::Table::reclaim`), so a reader that still walks it gets the
//! answer from before the change, never someone else's entries.
use crate::dpdk::{AtomicArray, Backing};
use std::sync::atomic::{AtomicU32, Ordering};

pub(super) const VALID: u32 = 1 << 31;
pub(super) const GROUP: u32 = 1 << 30;
const DEPTH_SHIFT: u32 = 24;
const DEPTH_MASK: u32 = 0x3f << DEPTH_SHIFT;
pub(super) const INDEX_MASK: u32 = (1 << 24) - 1;

/// Prefixes this long or shorter are kept in the short level.
pub(super) const SHORT_BITS: u32 = 8;
const SHORT_ENTRIES: usize = 1 << SHORT_BITS;

/// Address bits one group resolves.
pub(super) const GROUP_BITS: u32 = 4;
/// Entries per group.
pub(super) const GROUP_ENTRIES: usize = 1 << GROUP_BITS;

/// The stride of the first level: how many address bits one load resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Stride {
    /// 2^16 first-level entries (256 KiB): for small tables; /17–/20 take two
    /// loads, /21–/24 three.
    Compact16,
    /// 2^24 first-level entries (64 MiB virtual, touched pages only): one load up
    /// to /24, two up to /28, three up to /32.
    Wide24,
}

impl Stride {
    pub(super) fn bits(self) -> u32 {
        match self {
            Stride::Compact16 => 16,
            Stride::Wide24 => 24,
        }
    }
}

pub(super) fn leaf(len: u8, next_hop: u32) -> u32 {
    VALID | (u32::from(len) << DEPTH_SHIFT) | (next_hop & INDEX_MASK)
}

pub(super) fn group_ptr(group: u32) -> u32 {
    VALID | GROUP | group
}

pub(super) fn depth(entry: u32) -> u8 {
    ((entry & DEPTH_MASK) >> DEPTH_SHIFT) as u8
}

/// A first-level entry read by [`Fib::start_lookup`].
#[derive(Debug, Clone, Copy, Default)]
pub struct FirstEntry(u32);

/// The shared, lock-free lookup table.
pub struct Fib {
    stride: Stride,
    /// The longest match among prefixes of at most [`SHORT_BITS`] bits, by the
    /// address's first octet; consulted when the trie has no match.
    short: Box<[AtomicU32; SHORT_ENTRIES]>,
    first: AtomicArray,
    /// Every group, `max_groups × GROUP_ENTRIES` entries in one lazily committed mapping:
    /// a group's pages cost memory only once the writer fills it.
    groups: AtomicArray,
}

const WIDE_FIRST: usize = 1 << 24;
const COMPACT_FIRST: usize = 1 << 16;

impl Fib {
    pub(super) fn new(stride: Stride, max_groups: u32) -> Fib {
        // Huge pages for the 64 MiB level and for the groups of large tables only:
        // a small VR must not grow in 2 MiB steps.
        let backing = match stride {
            Stride::Wide24 => Backing::HugePages,
            Stride::Compact16 => Backing::Pages,
        };
        Fib {
            stride,
            short: Box::new(std::array::from_fn(|_| AtomicU32::new(0))),
            first: AtomicArray::zeroed(1 << stride.bits(), Backing::HugePages),
            groups: AtomicArray::zeroed(max_groups.max(1) as usize * GROUP_ENTRIES, backing),
        }
    }

    /// The first level's stride.
    pub fn stride(&self) -> Stride {
        self.stride
    }

    /// Most groups this table can hold.
    pub(super) fn max_groups(&self) -> u32 {
        (self.groups.len() / GROUP_ENTRIES) as u32
    }

    /// Longest-prefix match: the next-hop index, or None.
    #[inline(always)]
    pub fn lookup(&self, addr: u32) -> Option<u32> {
        self.finish_lookup(addr, self.start_lookup(addr))
    }

    /// The first step of a lookup: the first-level entry of `addr`. Split from
    /// [`Fib::finish_lookup`] so that an lcore can issue the loads of a whole burst
    /// before it needs any result (as l3fwd's lookupx4 does).
    #[inline(always)]
    pub fn start_lookup(&self, addr: u32) -> FirstEntry {
        // One branch on the stride, then a level whose size the compiler knows, so
        // the index needs no bounds check.
        let entry = match self.stride {
            Stride::Wide24 => self.first_entry::<WIDE_FIRST, 24>(addr),
            Stride::Compact16 => self.first_entry::<COMPACT_FIRST, 16>(addr),
        };
        FirstEntry(entry)
    }

    #[inline(always)]
    fn first_entry<const N: usize, const BITS: u32>(&self, addr: u32) -> u32 {
        let first: &[AtomicU32; N] = self.first[..]
            .try_into()
            .expect("first level of the stride's size");
        first[(addr >> (32 - BITS)) as usize].load(Ordering::Acquire)
    }

    /// The rest of the lookup of `addr` from its first-level entry.
    #[inline(always)]
    pub fn finish_lookup(&self, addr: u32, first: FirstEntry) -> Option<u32> {
        let mut entry = first.0;
        let mut consumed = self.stride.bits();
        while entry & GROUP != 0 {
            consumed += GROUP_BITS;
            let slot = ((addr >> (32 - consumed)) as usize) & (GROUP_ENTRIES - 1);
            let index = (entry & INDEX_MASK) as usize * GROUP_ENTRIES + slot;
            entry = self.groups[index].load(Ordering::Acquire);
        }
        if entry & VALID == 0 {
            entry = self.short[(addr >> (32 - SHORT_BITS)) as usize].load(Ordering::Acquire);
        }
        (entry & VALID != 0).then_some(entry & INDEX_MASK)
    }

    /// The level of prefixes up to [`SHORT_BITS`] bits.
    pub(super) fn short_level(&self) -> &[AtomicU32] {
        &self.short[..]
    }

    pub(super) fn first_level(&self) -> &[AtomicU32] {
        &self.first
    }

    /// The entries of `group`.
    pub(super) fn group(&self, group: u32) -> &[AtomicU32] {
        let start = group as usize * GROUP_ENTRIES;
        &self.groups[start..start + GROUP_ENTRIES]
    }

    /// Bytes of the first level and the short level (all of it counts: lookups
    /// touch them anywhere).
    pub(super) fn first_level_bytes(&self) -> usize {
        (self.first.len() + SHORT_ENTRIES) * std::mem::size_of::<AtomicU32>()
    }
}
