//! The lookup structure readers (lcores) use: a multibit trie with a wide first
//! level and 8-bit groups below, every entry one `AtomicU32`, so a reader's lookup
//! is one to three plain loads and a writer changes the table with single stores.
//!
//! Entry layout: bit 31 valid, bit 30 "points to a group", bits 24..30 the prefix
//! length that wrote it, bits 0..24 a next-hop index or a group index.
//!
//! A writer fills a new group completely before it publishes the pointer to it
//! (release store), so a reader never sees a half-built group. A group that is
//! unlinked is not reused until the owner of the table says a grace period has
//! passed (see `super::Table::reclaim`), so a reader that still walks it gets the
//! answer from before the change, never someone else's entries.
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use zerocopy::FromZeros;

pub(super) const VALID: u32 = 1 << 31;
pub(super) const GROUP: u32 = 1 << 30;
const DEPTH_SHIFT: u32 = 24;
const DEPTH_MASK: u32 = 0x3f << DEPTH_SHIFT;
pub(super) const INDEX_MASK: u32 = (1 << 24) - 1;

/// Entries per group (8 address bits).
pub(super) const GROUP_ENTRIES: usize = 256;
/// Groups per lazily allocated chunk (64 KiB).
const GROUPS_PER_CHUNK: usize = 64;

/// The stride of the first level: how many address bits one load resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Stride {
    /// 2^16 first-level entries (256 KiB): for small tables; /17–/24 take two loads.
    Compact16,
    /// 2^24 first-level entries (64 MiB virtual, touched pages only): one load up to /24.
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

/// The shared, lock-free lookup table.
pub struct Fib {
    stride: Stride,
    first: Box<[AtomicU32]>,
    chunks: Box<[OnceLock<Box<[AtomicU32]>>]>,
}

impl Fib {
    pub(super) fn new(stride: Stride, max_groups: u32) -> Fib {
        let chunks = (max_groups as usize).div_ceil(GROUPS_PER_CHUNK);
        Fib {
            stride,
            first: <[AtomicU32]>::new_box_zeroed_with_elems(1 << stride.bits())
                .expect("first level allocation"),
            chunks: (0..chunks).map(|_| OnceLock::new()).collect(),
        }
    }

    /// The first level's stride.
    pub fn stride(&self) -> Stride {
        self.stride
    }

    /// Most groups this table can hold.
    pub(super) fn max_groups(&self) -> u32 {
        (self.chunks.len() * GROUPS_PER_CHUNK) as u32
    }

    /// Longest-prefix match: the next-hop index, or None.
    #[inline(always)]
    pub fn lookup(&self, addr: u32) -> Option<u32> {
        let first_bits = self.stride.bits();
        let mut entry = self.first[(addr >> (32 - first_bits)) as usize].load(Ordering::Acquire);
        let mut consumed = first_bits;
        while entry & GROUP != 0 {
            consumed += 8;
            let slot = ((addr >> (32 - consumed)) & 0xff) as usize;
            entry = self
                .group_slot(entry & INDEX_MASK, slot)
                .load(Ordering::Acquire);
        }
        (entry & VALID != 0).then_some(entry & INDEX_MASK)
    }

    /// Hints the CPU to fetch the first-level entry of `addr` (software pipelining in
    /// bursts, as l3fwd's lookupx4).
    #[inline(always)]
    pub fn prefetch(&self, addr: u32) {
        crate::dpdk::prefetch(&self.first[(addr >> (32 - self.stride.bits())) as usize]);
    }

    pub(super) fn first_level(&self) -> &[AtomicU32] {
        &self.first
    }

    /// The entries of `group` (allocating its chunk on first use).
    pub(super) fn group(&self, group: u32) -> &[AtomicU32] {
        let chunk = self.chunks[group as usize / GROUPS_PER_CHUNK].get_or_init(|| {
            <[AtomicU32]>::new_box_zeroed_with_elems(GROUPS_PER_CHUNK * GROUP_ENTRIES)
                .expect("group chunk allocation")
        });
        let start = (group as usize % GROUPS_PER_CHUNK) * GROUP_ENTRIES;
        &chunk[start..start + GROUP_ENTRIES]
    }

    #[inline(always)]
    fn group_slot(&self, group: u32, slot: usize) -> &AtomicU32 {
        // A published group's chunk is always initialised: the writer allocates it
        // before it stores the pointer (release), and our load of that pointer acquires.
        let chunk = self.chunks[group as usize / GROUPS_PER_CHUNK]
            .get()
            .expect("published group in an allocated chunk");
        &chunk[(group as usize % GROUPS_PER_CHUNK) * GROUP_ENTRIES + slot]
    }

    /// Bytes this table holds in its first level and allocated group chunks.
    pub fn memory_bytes(&self) -> usize {
        let chunk_bytes = GROUPS_PER_CHUNK * GROUP_ENTRIES * 4;
        self.first.len() * 4
            + self.chunks.iter().filter(|c| c.get().is_some()).count() * chunk_bytes
    }
}
