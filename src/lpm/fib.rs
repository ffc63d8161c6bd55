//! The lookup structure readers (lcores) use: a multibit trie with a wide first
//! level and 4-bit groups below (16 entries, one 64-byte cache line), every entry
//! one `AtomicU32`, so a reader's lookup is a few plain loads and a writer changes
//! the table with single stores. One structure serves both families
//! ([`Address`]): IPv4 and IPv6 differ only in how many levels lie below.
//!
//! Why 4 bits: a group costs 64 B, so a prefix that needs groups of its own costs
//! ≈ 64 B per level below the first, and memory follows the routes. 8-bit groups
//! (1 KiB) made a VR with 10k scattered /24s cost ≈ 10 MiB per copy
//! (docs/benchmarks.md, "Route-table memory").
//!
//! A slot under which exactly one longer prefix lies holds a *tail*: the index of
//! a record with that prefix, its leaf and the slot's own answer (the fallback).
//! A lookup that reaches a tail compares its address with the prefix once. So a
//! lone prefix costs one record (16 B for IPv4, 32 B for IPv6) instead of a chain
//! of groups down to its length, which is what keeps an IPv6 /48 that shares no
//! group with another prefix affordable. A second prefix under the slot splits
//! the tail into groups down to where the two part.
//!
//! In an IPv6 table ([`Address::SKIPS`]) a group may *skip*: when every prefix
//! below a slot shares the next address bits (a /24 slot holding one /32
//! allocation shares bits 24–32 and more), the slot points straight to the group
//! where they part, and the pointer says how many groups' worth of bits it skips.
//! The group's *header* (a record like a tail's, at the group's index) holds the
//! path, the bits every address below shares, and the slot's own answer for
//! addresses off it. A walk does not read headers on the way down: at its end, a
//! tail record whose prefix holds the address shows it on every path above (the
//! prefix extends them), else the header of the deepest group it skipped to is
//! checked (each header holds its whole path), and an address off that path is
//! walked again, header by header, to the slot it left the path under.
//!
//! Entry layout: bits 30..32 the kind (empty, leaf, group, tail), bits 22..30 the
//! length of the prefix that wrote a leaf (for a group pointer: the groups it
//! skips), bits 0..22 a next-hop, group or tail index.
//!
//! Prefixes of up to [`SHORT_BITS`] bits (the default route among them) live in a
//! separate 256-entry level that a lookup reads only when the trie has no match,
//! so that a change to one of them writes at most 256 entries instead of up to
//! 2^24 in each copy: the route writer's cost per change stays bounded (a /9, the
//! shortest prefix in the trie, covers 2^15 first-level entries of a wide table).
//!
//! A writer fills a new group or record completely before it publishes the index
//! of it (release store); afterwards it changes only single words (an entry, a
//! record's leaf or fallback), each a valid answer on its own, so a reader never
//! sees half a change. A group or record that is unlinked is not reused until the
//! owner of the table says a grace period has passed (see
//! `super::Table::reclaim`), so a reader that still walks it gets the answer from
//! before the change, never someone else's entries.
use super::Address;
use crate::dpdk::{AtomicArray, Backing};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, Ordering};

/// The kind of an entry, in its two top bits.
pub(super) const KIND: u32 = 3 << 30;
/// A prefix's next hop (the bit alone: "this entry answers").
pub(super) const VALID: u32 = 2 << 30;
/// The index of the group below.
pub(super) const GROUP: u32 = 3 << 30;
/// The index of a tail record: the one prefix below this slot.
pub(super) const TAIL: u32 = 1 << 30;
const DEPTH_SHIFT: u32 = 22;
const DEPTH_MASK: u32 = 0xff << DEPTH_SHIFT;
pub(super) const INDEX_MASK: u32 = (1 << DEPTH_SHIFT) - 1;
// A leaf's length field holds every IPv6 prefix length.
const _: () = assert!(DEPTH_MASK >> DEPTH_SHIFT >= u128::BITS);

/// Prefixes this long or shorter are kept in the short level.
pub(super) const SHORT_BITS: u32 = 8;
const SHORT_ENTRIES: usize = 1 << SHORT_BITS;

/// Address bits one group resolves.
pub(super) const GROUP_BITS: u32 = 4;
/// Entries per group.
pub(super) const GROUP_ENTRIES: usize = 1 << GROUP_BITS;

/// Words of one tail record: the prefix, its leaf and the fallback, rounded up
/// so that records do not straddle cache lines (16 B for IPv4, 32 B for IPv6).
pub(super) const fn tail_words<A: Address>() -> usize {
    (A::WORDS + 2).next_power_of_two()
}

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

/// A pointer to `group` that skips `skip` groups' worth of bits.
pub(super) fn group_ptr(group: u32, skip: u32) -> u32 {
    debug_assert!(skip * GROUP_BITS <= u128::BITS, "a skip within an address");
    GROUP | (skip << DEPTH_SHIFT) | group
}

/// The address bits a group pointer skips.
#[inline(always)]
pub(super) fn skipped_bits(entry: u32) -> u32 {
    u32::from(depth(entry)) * GROUP_BITS
}

pub(super) fn tail_ptr(tail: u32) -> u32 {
    TAIL | tail
}

pub(super) fn depth(entry: u32) -> u8 {
    ((entry & DEPTH_MASK) >> DEPTH_SHIFT) as u8
}

/// A first-level entry read by [`Fib::start_lookup`].
#[derive(Debug, Clone, Copy, Default)]
pub struct FirstEntry(u32);

/// The shared, lock-free lookup table of one family (IPv4 by default).
pub struct Fib<A: Address = u32> {
    stride: Stride,
    /// The longest match among prefixes of at most [`SHORT_BITS`] bits, by the
    /// address's first octet; consulted when the trie has no match.
    short: Box<[AtomicU32; SHORT_ENTRIES]>,
    first: AtomicArray,
    /// Every group, `max_groups × GROUP_ENTRIES` entries in one lazily committed mapping:
    /// a group's pages cost memory only once the writer fills it.
    groups: AtomicArray,
    /// Every tail record, `max_groups × tail_words` words, committed the same way.
    tails: AtomicArray,
    /// The header of each group that skips (a record at the group's index: its
    /// path, the path's length as a leaf's, the fallback), committed the same way.
    headers: AtomicArray,
    family: PhantomData<A>,
}

/// First-level entries on one 4 KiB page.
pub(super) const FIRST_PAGE_ENTRIES: usize = 1024;

/// Most addresses [`Fib::lookup_burst`] takes at once (an lcore's burst).
pub const BURST: usize = 32;

const WIDE_FIRST: usize = 1 << 24;
const COMPACT_FIRST: usize = 1 << 16;

impl<A: Address> Fib<A> {
    pub(super) fn new(stride: Stride, max_groups: u32) -> Fib<A> {
        // Huge pages for the 64 MiB level and for the groups of large tables only:
        // a small VR must not grow in 2 MiB steps.
        let backing = match stride {
            Stride::Wide24 => Backing::HugePages,
            Stride::Compact16 => Backing::Pages,
        };
        let first_backing = match A::SPARSE_TOP {
            true => Backing::Pages,
            false => Backing::HugePages,
        };
        let records = max_groups.max(1) as usize;
        Fib {
            stride,
            short: Box::new(std::array::from_fn(|_| AtomicU32::new(0))),
            first: AtomicArray::zeroed(1 << stride.bits(), first_backing),
            groups: AtomicArray::zeroed(records * GROUP_ENTRIES, backing),
            tails: AtomicArray::zeroed(records * tail_words::<A>(), backing),
            headers: AtomicArray::zeroed(
                if A::SKIPS { records } else { 1 } * tail_words::<A>(),
                backing,
            ),
            family: PhantomData,
        }
    }

    /// The first level's stride.
    pub fn stride(&self) -> Stride {
        self.stride
    }

    /// Most groups (and most tail records) this table can hold.
    pub(super) fn max_groups(&self) -> u32 {
        (self.groups.len() / GROUP_ENTRIES) as u32
    }

    /// Longest-prefix match: the next-hop index, or None.
    #[inline(always)]
    pub fn lookup(&self, addr: A) -> Option<u32> {
        self.finish_lookup(addr, self.start_lookup(addr))
    }

    /// The first step of a lookup: the first-level entry of `addr`. Split from
    /// [`Fib::finish_lookup`] so that an lcore can issue the loads of a whole burst
    /// before it needs any result (as l3fwd's lookupx4 does).
    #[inline(always)]
    pub fn start_lookup(&self, addr: A) -> FirstEntry {
        // One branch on the stride, then a level whose size the compiler knows, so
        // the index needs no bounds check.
        let entry = match self.stride {
            Stride::Wide24 => self.first_entry::<WIDE_FIRST, 24>(addr),
            Stride::Compact16 => self.first_entry::<COMPACT_FIRST, 16>(addr),
        };
        FirstEntry(entry)
    }

    #[inline(always)]
    fn first_entry<const N: usize, const BITS: u32>(&self, addr: A) -> u32 {
        let first: &[AtomicU32; N] = self.first[..]
            .try_into()
            .expect("first level of the stride's size");
        first[addr.field(0, BITS)].load(Ordering::Acquire)
    }

    /// The rest of the lookup of `addr` from its first-level entry.
    #[inline(always)]
    pub fn finish_lookup(&self, addr: A, first: FirstEntry) -> Option<u32> {
        let groups: &[AtomicU32] = &self.groups;
        let mut walk = Walk::new(first.0, self.stride.bits());
        while walk.entry & KIND == GROUP {
            walk.step::<A>(groups, addr);
        }
        self.settle(addr, walk)
    }

    /// Longest-prefix matches of up to [`BURST`] addresses, walked level by
    /// level: the loads of one level are independent of each other, so their
    /// cache misses overlap, where a deep walk (IPv6) one address at a time waits
    /// for each miss in turn.
    #[inline(always)]
    pub fn lookup_burst(&self, addrs: &[A], out: &mut [Option<u32>]) {
        let groups: &[AtomicU32] = &self.groups;
        let mut walks = [Walk::default(); BURST];
        let walks = &mut walks[..addrs.len().min(BURST)];
        for (w, &a) in walks.iter_mut().zip(addrs) {
            *w = Walk::new(self.start_lookup(a).0, self.stride.bits());
        }
        // Each level in two passes over the walks still at a group: aim each and
        // prefetch its entry, then read them. A prefetch retires at once, so every
        // miss of the level is in flight together; loads alone would stall
        // retirement at the first miss and keep only as many in flight as the
        // reorder buffer holds. The walks still going are listed without a
        // branch per walk, so a level costs the walks in it.
        let mut going = [0u8; BURST];
        let mut count = 0;
        for (i, w) in walks.iter().enumerate() {
            going[count] = i as u8;
            count += usize::from(w.entry & KIND == GROUP);
        }
        while count > 0 {
            for &i in &going[..count] {
                let i = usize::from(i);
                prefetch(&groups[walks[i].aim(addrs[i])]);
            }
            let mut still = 0;
            for k in 0..count {
                let i = usize::from(going[k]);
                let w = &mut walks[i];
                w.entry = groups[w.slot].load(Ordering::Acquire);
                going[still] = i as u8;
                still += usize::from(w.entry & KIND == GROUP);
            }
            count = still;
        }
        for w in walks.iter() {
            if w.entry & KIND == TAIL {
                prefetch(&self.tail(w.entry & INDEX_MASK)[0]);
            }
        }
        for ((o, &w), &a) in out.iter_mut().zip(walks.iter()).zip(addrs) {
            *o = self.settle(a, w);
        }
    }

    /// The answer for `addr` from where its walk ended. A walk that skipped
    /// must be on the path of the deepest group it skipped to (and so on every
    /// shorter path above it): a tail record whose prefix holds the address shows
    /// it (the prefix extends the path), else that group's header is read. An
    /// address off the path takes the exact walk.
    #[inline(always)]
    fn settle(&self, addr: A, walk: Walk) -> Option<u32> {
        if !A::SKIPS || walk.skipped_to == NO_SKIP {
            return self.answer(addr, walk.entry);
        }
        if walk.entry & KIND == TAIL {
            let record = Record(self.tail(walk.entry & INDEX_MASK));
            if record.covers(addr) {
                return Some(record.leaf() & INDEX_MASK);
            }
        }
        if !Record(self.header(walk.skipped_to)).covers(addr) {
            return self.lookup_off_path(addr);
        }
        self.answer(addr, walk.entry)
    }

    /// The lookup of an address that left a skipping group's path: walked again,
    /// checking each skipping group's header, and answered by the header of the
    /// first one it is off (the slot's own answer).
    #[cold]
    #[inline(never)]
    fn lookup_off_path(&self, addr: A) -> Option<u32> {
        let mut entry = self.start_lookup(addr).0;
        let mut consumed = self.stride.bits();
        while entry & KIND == GROUP {
            let group = entry & INDEX_MASK;
            let level = consumed + skipped_bits(entry);
            let header = Record(self.header(group));
            if level != consumed && !header.covers(addr) {
                return self.answer(addr, header.fallback());
            }
            let slot = addr.field(level, level + GROUP_BITS);
            entry = self.groups[group as usize * GROUP_ENTRIES + slot].load(Ordering::Acquire);
            consumed = level + GROUP_BITS;
        }
        self.answer(addr, entry)
    }

    /// The next hop of `addr` from the leaf, empty entry or tail its walk ended
    /// at: a tail's answer, else the short level's when the trie has none.
    #[inline(always)]
    fn answer(&self, addr: A, mut entry: u32) -> Option<u32> {
        if entry & KIND == TAIL {
            entry = self.tail_answer(addr, entry & INDEX_MASK);
        }
        if entry & VALID == 0 {
            entry = self.short[addr.field(0, SHORT_BITS)].load(Ordering::Acquire);
        }
        (entry & VALID != 0).then_some(entry & INDEX_MASK)
    }

    /// What tail record `tail` answers for `addr`: its prefix's leaf if the
    /// address is in it, else the slot's own answer.
    #[inline(always)]
    fn tail_answer(&self, addr: A, tail: u32) -> u32 {
        let record = Record(self.tail(tail));
        if record.covers(addr) {
            record.leaf()
        } else {
            record.fallback()
        }
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

    /// The words of tail record `tail`.
    #[inline(always)]
    pub(super) fn tail(&self, tail: u32) -> &[AtomicU32] {
        let words = tail_words::<A>();
        let start = tail as usize * words;
        &self.tails[start..start + words]
    }

    /// The header of `group` (meaningful only while a pointer skips to it).
    #[inline(always)]
    pub(super) fn header(&self, group: u32) -> &[AtomicU32] {
        let words = tail_words::<A>();
        let start = group as usize * words;
        &self.headers[start..start + words]
    }

    /// Bytes of the first level and the short level (all of it counts: lookups
    /// touch them anywhere), or for a family sparse at the top, of the short
    /// level and the first level's `pages_written` pages.
    pub(super) fn first_level_bytes(&self, pages_written: usize) -> usize {
        let first = match A::SPARSE_TOP {
            true => (pages_written * FIRST_PAGE_ENTRIES).min(self.first.len()),
            false => self.first.len(),
        };
        (first + SHORT_ENTRIES) * std::mem::size_of::<AtomicU32>()
    }
}

/// Asks the CPU to bring the cache line of `entry` in, without waiting for it.
#[inline(always)]
fn prefetch(entry: &AtomicU32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is in x86_64's baseline, so the instruction exists; a prefetch
    // changes nothing the program can see and cannot fault (and `entry` is a live
    // reference in any case).
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((entry as *const AtomicU32).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = entry;
}

/// No group skipped to on a walk.
const NO_SKIP: u32 = u32::MAX;

/// One address's walk down the groups: the entry reached, the bits consumed to
/// reach it, and the deepest group it skipped to, whose path it must be on.
/// The walk does not read headers on the way: one check at the end covers every
/// path above, as each header holds its whole path.
#[derive(Clone, Copy)]
struct Walk {
    entry: u32,
    consumed: u32,
    skipped_to: u32,
    /// Where in the groups the next entry is, once aimed.
    slot: usize,
}

impl Default for Walk {
    fn default() -> Walk {
        Walk::new(0, 0)
    }
}

impl Walk {
    #[inline(always)]
    fn new(entry: u32, consumed: u32) -> Walk {
        Walk {
            entry,
            consumed,
            skipped_to: NO_SKIP,
            slot: 0,
        }
    }

    /// Aims the walk one group down from the group pointer `self.entry`: where in
    /// the groups the entry for `addr` is (returned).
    #[inline(always)]
    fn aim<A: Address>(&mut self, addr: A) -> usize {
        let group = self.entry & INDEX_MASK;
        let skip = if A::SKIPS {
            skipped_bits(self.entry)
        } else {
            0
        };
        let level = self.consumed + skip;
        self.slot = group as usize * GROUP_ENTRIES + addr.field(level, level + GROUP_BITS);
        if skip != 0 {
            self.skipped_to = group;
        }
        self.consumed = level + GROUP_BITS;
        self.slot
    }

    /// One group down from the group pointer `self.entry`.
    #[inline(always)]
    fn step<A: Address>(&mut self, groups: &[AtomicU32], addr: A) {
        let slot = self.aim(addr);
        self.entry = groups[slot].load(Ordering::Acquire);
    }
}

/// A tail record's words: the prefix (its address words), then the prefix's leaf,
/// then the fallback. The prefix is written before the record is linked and never
/// changes; the leaf and the fallback are single words the writer may store. A
/// group's header has the same words: its path, a leaf-shaped word holding the
/// path's length, the fallback.
#[derive(Clone, Copy)]
pub(super) struct Record<'a>(pub(super) &'a [AtomicU32]);

impl Record<'_> {
    #[inline(always)]
    pub(super) fn prefix<A: Address>(self) -> A {
        A::from_words(|i| self.0[i].load(Ordering::Relaxed))
    }

    /// Whether `addr` lies in the record's prefix (a header's path).
    #[inline(always)]
    pub(super) fn covers<A: Address>(self, addr: A) -> bool {
        addr & A::mask(depth(self.leaf())) == self.prefix::<A>()
    }

    #[inline(always)]
    pub(super) fn leaf(self) -> u32 {
        self.0[self.0.len() - 2].load(Ordering::Acquire)
    }

    #[inline(always)]
    pub(super) fn fallback(self) -> u32 {
        self.0[self.0.len() - 1].load(Ordering::Acquire)
    }

    pub(super) fn set_leaf(self, leaf: u32) {
        self.0[self.0.len() - 2].store(leaf, Ordering::Release);
    }

    pub(super) fn set_fallback(self, entry: u32) {
        self.0[self.0.len() - 1].store(entry, Ordering::Release);
    }

    /// Fills an unlinked record.
    pub(super) fn fill<A: Address>(self, prefix: A, leaf: u32, fallback: u32) {
        for i in 0..A::WORDS {
            self.0[i].store(prefix.word(i), Ordering::Relaxed);
        }
        self.set_leaf(leaf);
        self.set_fallback(fallback);
    }
}
