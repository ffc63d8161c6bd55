//! The routing information base of one table: every installed prefix with its next
//! hop, one hash map per prefix length. It answers what the lookup structure cannot:
//! "which shorter prefix covers this one" when a route is deleted, and "list all".
//! Owned by the table's single writer; readers never touch it.
use rustc_hash::FxHashMap;

/// Prefixes by length: `by_len[l]` maps a network address (host bits zero) of a /l
/// to its next hop.
#[derive(Clone)]
pub struct Rib {
    by_len: [FxHashMap<u32, u32>; 33],
}

impl Default for Rib {
    fn default() -> Self {
        Rib {
            by_len: std::array::from_fn(|_| FxHashMap::default()),
        }
    }
}

/// The network mask of a /len.
pub fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

impl Rib {
    /// Inserts or replaces; returns the previous next hop.
    pub fn insert(&mut self, net: u32, len: u8, next_hop: u32) -> Option<u32> {
        self.by_len[len as usize].insert(net, next_hop)
    }

    /// Removes; returns the next hop it had.
    pub fn remove(&mut self, net: u32, len: u8) -> Option<u32> {
        self.by_len[len as usize].remove(&net)
    }

    /// The next hop of exactly `net/len`.
    pub fn get(&self, net: u32, len: u8) -> Option<u32> {
        self.by_len[len as usize].get(&net).copied()
    }

    /// The longest prefix strictly shorter than `len` that covers `net`:
    /// (length, next hop).
    pub fn covering(&self, net: u32, len: u8) -> Option<(u8, u32)> {
        (0..len)
            .rev()
            .find_map(|l| self.get(net & mask(l), l).map(|nh| (l, nh)))
    }

    /// Longest-prefix match of an address, by the book (slow; for tests and tools).
    pub fn longest_match(&self, addr: u32) -> Option<(u8, u32)> {
        self.covering(addr, 33)
    }

    /// Number of prefixes.
    pub fn len(&self) -> usize {
        self.by_len.iter().map(|m| m.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every (network, length, next hop), shortest prefixes first.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u8, u32)> + '_ {
        self.by_len
            .iter()
            .enumerate()
            .flat_map(|(l, m)| m.iter().map(move |(&n, &nh)| (n, l as u8, nh)))
    }
}
