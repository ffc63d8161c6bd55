//! A VR's next-hop array: what a route-table entry's index means, for both
//! families' tables. Each slot is three `AtomicU64`s (the kind, interface and an
//! IPv4 gateway in the first; an IPv6 gateway's address in the other two), so the
//! route writer can add next hops while lcores read them: it writes a slot's
//! address words before its first word (release), and empties a slot only when
//! no table a reader can use points at it, so a reader that reaches a slot
//! through a table sees it whole. Slot 0 is "local" (punt to the guest); slots
//! 1..=interfaces are "attached on interface i" (the destination itself is the
//! neighbour, in either family); gateways and groups follow (a group slot
//! names a multipath route's set of paths, in the VR's `Groups`).
use std::sync::atomic::{AtomicU64, Ordering};

/// What a route resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NextHop {
    /// Addressed to the VR itself (or multicast/broadcast): the guest handles it.
    Local,
    /// On the subnet (link) of interface `iface`: the destination is the neighbour.
    Attached { iface: usize },
    /// Through IPv4 neighbour `via` on interface `iface`.
    Gateway { iface: usize, via: u32 },
    /// Through IPv6 neighbour `via` on interface `iface` (a link-local `via` is
    /// scoped by it).
    Gateway6 { iface: usize, via: u128 },
    /// Through the paths of group `group` (dataplane::Groups).
    Group { group: u32 },
}

impl NextHop {
    /// Whether this can be one path of a multipath route (an attached network
    /// or a gateway, not local delivery or another group).
    pub fn is_path(&self) -> bool {
        matches!(
            self,
            NextHop::Attached { .. } | NextHop::Gateway { .. } | NextHop::Gateway6 { .. }
        )
    }

    /// Through gateway `via` (either family) on interface `iface`.
    pub fn gateway(iface: usize, via: std::net::IpAddr) -> NextHop {
        match via {
            std::net::IpAddr::V4(via) => NextHop::Gateway {
                iface,
                via: via.into(),
            },
            std::net::IpAddr::V6(via) => NextHop::Gateway6 {
                iface,
                via: via.into(),
            },
        }
    }
}

const KIND_SHIFT: u32 = 40;
const KIND_LOCAL: u64 = 1;
const KIND_ATTACHED: u64 = 2;
const KIND_GATEWAY: u64 = 3;
const KIND_GATEWAY6: u64 = 4;
const KIND_GROUP: u64 = 5;

/// A slot's words: the first (0: empty), and an IPv6 gateway's address.
fn encode(nh: NextHop) -> [u64; 3] {
    let iface = |i: usize| (i as u64 & 0xff) << 32;
    match nh {
        NextHop::Local => [KIND_LOCAL << KIND_SHIFT, 0, 0],
        NextHop::Attached { iface: i } => [(KIND_ATTACHED << KIND_SHIFT) | iface(i), 0, 0],
        NextHop::Gateway { iface: i, via } => [
            (KIND_GATEWAY << KIND_SHIFT) | iface(i) | u64::from(via),
            0,
            0,
        ],
        NextHop::Gateway6 { iface: i, via } => [
            (KIND_GATEWAY6 << KIND_SHIFT) | iface(i),
            (via >> 64) as u64,
            via as u64,
        ],
        NextHop::Group { group } => [(KIND_GROUP << KIND_SHIFT) | u64::from(group), 0, 0],
    }
}

struct Slot {
    first: AtomicU64,
    via6: [AtomicU64; 2],
}

impl Slot {
    #[inline(always)]
    fn read(&self) -> Option<NextHop> {
        let v = self.first.load(Ordering::Acquire);
        let iface = ((v >> 32) & 0xff) as usize;
        // Most routes are through an IPv4 gateway: a compare and a predicted
        // branch before the table of the other kinds.
        if v >> KIND_SHIFT == KIND_GATEWAY {
            return Some(NextHop::Gateway {
                iface,
                via: v as u32,
            });
        }
        match v >> KIND_SHIFT {
            KIND_LOCAL => Some(NextHop::Local),
            KIND_ATTACHED => Some(NextHop::Attached { iface }),
            KIND_GATEWAY6 => {
                let [hi, lo] = [0, 1].map(|i| self.via6[i].load(Ordering::Relaxed));
                Some(NextHop::Gateway6 {
                    iface,
                    via: (u128::from(hi) << 64) | u128::from(lo),
                })
            }
            KIND_GROUP => Some(NextHop::Group { group: v as u32 }),
            _ => None,
        }
    }

    fn holds(&self, words: [u64; 3]) -> bool {
        self.first.load(Ordering::Relaxed) == words[0]
            && (0..2).all(|i| self.via6[i].load(Ordering::Relaxed) == words[i + 1])
    }

    fn write(&self, words: [u64; 3]) {
        for i in 0..2 {
            self.via6[i].store(words[i + 1], Ordering::Relaxed);
        }
        self.first.store(words[0], Ordering::Release);
    }
}

/// The array. Written by one writer, read by all lcores.
pub struct NextHops {
    slots: Box<[Slot]>,
}

impl NextHops {
    /// An array of `capacity` slots with the local and attached next hops of
    /// `interfaces` interfaces in place.
    pub fn new(capacity: usize, interfaces: usize) -> NextHops {
        let nh = NextHops {
            slots: (0..capacity.max(interfaces + 1))
                .map(|_| Slot {
                    first: AtomicU64::new(0),
                    via6: [AtomicU64::new(0), AtomicU64::new(0)],
                })
                .collect(),
        };
        nh.slots[0].write(encode(NextHop::Local));
        for iface in 0..interfaces {
            nh.slots[1 + iface].write(encode(NextHop::Attached { iface }));
        }
        nh
    }

    /// The next hop at `index` (None for an empty or out-of-range slot).
    #[inline(always)]
    pub fn get(&self, index: u32) -> Option<NextHop> {
        self.slots.get(index as usize)?.read()
    }

    /// The slot holding `nh`, if present.
    pub fn index_of(&self, nh: NextHop) -> Option<u32> {
        let want = encode(nh);
        self.slots
            .iter()
            .position(|s| s.holds(want))
            .map(|i| i as u32)
    }

    /// Empties slot `index` (writer only; no route table any reader can still
    /// use may point at it). Reserved slots stay.
    pub fn remove(&self, index: u32) {
        if matches!(
            self.get(index),
            Some(NextHop::Gateway { .. } | NextHop::Gateway6 { .. } | NextHop::Group { .. })
        ) {
            self.slots[index as usize].first.store(0, Ordering::Release);
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
            .position(|s| s.first.load(Ordering::Relaxed) == 0)?;
        self.slots[free].write(encode(nh));
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

    #[test]
    fn ipv6_gateways_keep_their_whole_address() {
        let n = NextHops::new(8, 2);
        let ll = |via: u128| NextHop::Gateway6 { iface: 1, via };
        let a = n.insert(ll(0xfe80 << 112 | 2)).unwrap();
        let b = n.insert(ll(0xfe80 << 112 | 2 << 64 | 2)).unwrap();
        assert_ne!(a, b, "differ in the upper half of the interface id only");
        assert_eq!(n.get(b), Some(ll(0xfe80 << 112 | 2 << 64 | 2)));
        let v4 = NextHop::Gateway { iface: 1, via: 2 };
        assert_ne!(n.insert(v4).unwrap(), a, "no family shares a slot");
        n.remove(a);
        assert_eq!(n.get(a), None);
        assert_eq!(n.index_of(ll(0xfe80 << 112 | 2)), None);
    }

    #[test]
    fn a_group_slot_names_its_group() {
        let n = NextHops::new(8, 1);
        let g = NextHop::Group { group: 0xffff_fffe };
        let i = n.insert(g).unwrap();
        assert_eq!(n.get(i), Some(g));
        assert!(!g.is_path() && !NextHop::Local.is_path());
        assert!(NextHop::Attached { iface: 0 }.is_path());
        n.remove(i);
        assert_eq!(n.get(i), None);
    }
}
