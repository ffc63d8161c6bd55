//! The routing information base of one table: every installed prefix with its next
//! hop, one hash map per prefix length. It answers what the lookup structure cannot:
//! "which shorter prefix covers this one" when a route is deleted, and "list all".
//! Owned by the table's single writer; readers never touch it.
use super::Address;
use rustc_hash::FxHashMap;

/// Prefixes by length: `by_len[l]` maps a network address (host bits zero) of a /l
/// to its next hop.
#[derive(Clone)]
pub struct Rib<A: Address = u32> {
    by_len: Box<[FxHashMap<A, u32>]>,
}

impl<A: Address> Default for Rib<A> {
    fn default() -> Self {
        Rib {
            by_len: (0..=A::BITS).map(|_| FxHashMap::default()).collect(),
        }
    }
}

impl<A: Address> Rib<A> {
    /// Inserts or replaces; returns the previous next hop.
    pub fn insert(&mut self, net: A, len: u8, next_hop: u32) -> Option<u32> {
        self.by_len[len as usize].insert(net, next_hop)
    }

    /// Removes; returns the next hop it had.
    pub fn remove(&mut self, net: A, len: u8) -> Option<u32> {
        self.by_len[len as usize].remove(&net)
    }

    /// The next hop of exactly `net/len`.
    pub fn get(&self, net: A, len: u8) -> Option<u32> {
        self.by_len[len as usize].get(&net).copied()
    }

    /// The longest prefix strictly shorter than `len` that covers `net`:
    /// (length, next hop).
    pub fn covering(&self, net: A, len: u8) -> Option<(u8, u32)> {
        (0..len)
            .rev()
            .filter(|&l| !self.by_len[l as usize].is_empty())
            .find_map(|l| self.get(net & A::mask(l), l).map(|nh| (l, nh)))
    }

    /// Longest-prefix match of an address, by the book (slow; for tests and tools).
    pub fn longest_match(&self, addr: A) -> Option<(u8, u32)> {
        self.covering(addr, A::BITS as u8 + 1)
    }

    /// Number of prefixes.
    pub fn len(&self) -> usize {
        self.by_len.iter().map(|m| m.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every (network, length, next hop), shortest prefixes first.
    pub fn iter(&self) -> impl Iterator<Item = (A, u8, u32)> + '_ {
        self.by_len
            .iter()
            .enumerate()
            .flat_map(|(l, m)| m.iter().map(move |(&n, &nh)| (n, l as u8, nh)))
    }
}
