//! A VR's next-hop array: what a route-table entry's index means. Each slot is one
//! `AtomicU64`, so the route writer can add next hops while lcores read them.
//! Slot 0 is "local" (punt to the guest); slots 1..=interfaces are "attached on
//! interface i" (the destination itself is the neighbour); gateways follow.
use std::sync::atomic::{AtomicU64, Ordering};

/// What a route resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NextHop {
    /// Addressed to the VR itself (or multicast/broadcast): the guest handles it.
    Local,
    /// On the subnet of interface `iface`: the destination is the neighbour.
    Attached { iface: usize },
    /// Through neighbour `via` on interface `iface`.
    Gateway { iface: usize, via: u32 },
}

const KIND_SHIFT: u32 = 40;
const KIND_LOCAL: u64 = 1;
const KIND_ATTACHED: u64 = 2;
const KIND_GATEWAY: u64 = 3;

fn encode(nh: NextHop) -> u64 {
    match nh {
        NextHop::Local => KIND_LOCAL << KIND_SHIFT,
        NextHop::Attached { iface } => {
            (KIND_ATTACHED << KIND_SHIFT) | ((iface as u64 & 0xff) << 32)
        }
        NextHop::Gateway { iface, via } => {
            (KIND_GATEWAY << KIND_SHIFT) | ((iface as u64 & 0xff) << 32) | u64::from(via)
        }
    }
}

fn decode(v: u64) -> Option<NextHop> {
    let iface = ((v >> 32) & 0xff) as usize;
    match v >> KIND_SHIFT {
        KIND_LOCAL => Some(NextHop::Local),
        KIND_ATTACHED => Some(NextHop::Attached { iface }),
        KIND_GATEWAY => Some(NextHop::Gateway {
            iface,
            via: v as u32,
        }),
        _ => None,
    }
}

/// The array. Written by one writer, read by all lcores.
pub struct NextHops {
    slots: Box<[AtomicU64]>,
}

impl NextHops {
    /// An array of `capacity` slots with the local and attached next hops of
    /// `interfaces` interfaces in place.
    pub fn new(capacity: usize, interfaces: usize) -> NextHops {
        let nh = NextHops {
            slots: (0..capacity.max(interfaces + 1))
                .map(|_| AtomicU64::new(0))
                .collect(),
        };
        nh.slots[0].store(encode(NextHop::Local), Ordering::Relaxed);
        for iface in 0..interfaces {
            nh.slots[1 + iface].store(encode(NextHop::Attached { iface }), Ordering::Relaxed);
        }
        nh
    }

    /// The next hop at `index` (None for an empty or out-of-range slot).
    #[inline(always)]
    pub fn get(&self, index: u32) -> Option<NextHop> {
        decode(self.slots.get(index as usize)?.load(Ordering::Acquire))
    }

    /// The slot holding `nh`, if present.
    pub fn index_of(&self, nh: NextHop) -> Option<u32> {
        let want = encode(nh);
        self.slots
            .iter()
            .position(|s| s.load(Ordering::Relaxed) == want)
            .map(|i| i as u32)
    }

    /// Empties slot `index` (writer only; no route table any reader can still
    /// use may point at it). Reserved slots stay.
    pub fn remove(&self, index: u32) {
        if matches!(self.get(index), Some(NextHop::Gateway { .. })) {
            self.slots[index as usize].store(0, Ordering::Release);
        }
    }

    /// The slot of `nh`, adding it if new (writer only). None when full.
    pub fn insert(&self, nh: NextHop) -> Option<u32> {
        if let Some(i) = self.index_of(nh) {
            return Some(i);
        }
        let free = self
            .slots
            .iter()
            .position(|s| s.load(Ordering::Relaxed) == 0)?;
        self.slots[free].store(encode(nh), Ordering::Release);
        Some(free as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_slots_and_dedup() {
        let n = NextHops::new(8, 2);
        assert_eq!(n.get(0), Some(NextHop::Local));
        assert_eq!(n.get(2), Some(NextHop::Attached { iface: 1 }));
        let g = NextHop::Gateway {
            iface: 1,
            via: 0x0a000002,
        };
        let i = n.insert(g).unwrap();
        assert_eq!(i, 3);
        assert_eq!(n.insert(g), Some(3));
        assert_eq!(n.get(i), Some(g));
        assert_eq!(n.get(7), None);
        assert_eq!(n.get(99), None);
        n.remove(i);
        assert_eq!(n.get(i), None);
        n.remove(0);
        assert_eq!(n.get(0), Some(NextHop::Local), "reserved slots stay");
        assert_eq!(n.insert(g), Some(3), "a freed slot is reused");
    }
}
