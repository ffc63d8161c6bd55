//! A segment's VR interfaces by MAC, built once: up to [`SCAN_MAX`] interfaces
//! are found by scanning their MACs (contiguous, two cache lines: in the fast path
//! this beats hashing, whose address depends on the frame), more through an
//! open-addressing table at most half full (one multiply and usually one load).
//! Either way the work per frame is bounded, whatever the number of VRs.
use super::VrMac;

/// Segments with at most this many VR interfaces are scanned.
const SCAN_MAX: usize = 16;

/// VR interfaces by MAC.
pub struct MacIndex {
    /// The MACs, in `entries`' order (scanned), or the table's slots (a MAC of
    /// zero, never a VR's, marks an empty slot).
    keys: Box<[u64]>,
    /// The interface of each key.
    values: Box<[VrMac]>,
    /// log2 of the number of slots; 0 when scanned.
    bits: u32,
}

impl MacIndex {
    /// The index of `entries` (the first of a MAC wins; MACs of zero are left out).
    pub fn new(entries: &[VrMac]) -> MacIndex {
        let entries: Vec<VrMac> = entries.iter().copied().filter(|vm| vm.mac != 0).collect();
        if entries.len() <= SCAN_MAX {
            return MacIndex {
                keys: entries.iter().map(|vm| vm.mac).collect(),
                values: entries.into_boxed_slice(),
                bits: 0,
            };
        }
        let bits = (entries.len() * 2).next_power_of_two().trailing_zeros();
        let mut index = MacIndex {
            keys: vec![0; 1 << bits].into_boxed_slice(),
            values: vec![entries[0]; 1 << bits].into_boxed_slice(),
            bits,
        };
        for vm in &entries {
            let slot = index.probe(vm.mac);
            if index.keys[slot] == 0 {
                index.keys[slot] = vm.mac;
                index.values[slot] = *vm;
            }
        }
        index
    }

    /// The slot holding `mac`, or the empty slot where it would go (hashed only).
    #[inline(always)]
    fn probe(&self, mac: u64) -> usize {
        let mask = self.keys.len() - 1;
        let mut i = (mac.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - self.bits)) as usize;
        // At most half full: an empty slot ends every probe.
        while self.keys[i] != mac && self.keys[i] != 0 {
            i = (i + 1) & mask;
        }
        i
    }

    #[inline(always)]
    pub fn get(&self, mac: u64) -> Option<VrMac> {
        let at = if self.bits == 0 {
            self.keys.iter().position(|&k| k == mac)?
        } else {
            self.probe(mac)
        };
        (self.keys[at] == mac && mac != 0).then(|| self.values[at])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(mac: u64, vr: usize) -> VrMac {
        VrMac {
            mac,
            vr,
            iface: 0,
            vif: 0,
        }
    }

    #[test]
    fn finds_every_entry_and_nothing_else_scanned_or_hashed() {
        for n in [0usize, 1, 2, SCAN_MAX, SCAN_MAX + 1, 1000] {
            let entries: Vec<VrMac> = (1..=n as u64)
                .map(|m| vm(0x0200_0000_0000 | m << 8, m as usize))
                .collect();
            let index = MacIndex::new(&entries);
            for e in &entries {
                assert_eq!(index.get(e.mac), Some(*e));
            }
            assert_eq!(index.get(0x0200_0000_0001), None);
            assert_eq!(index.get(0), None);
        }
    }

    #[test]
    fn the_first_of_a_mac_wins() {
        for n in [2, SCAN_MAX + 1] {
            let mut entries = vec![vm(7, 1), vm(7, 2)];
            entries.extend((0..n as u64).map(|m| vm(0x100 + m, 9)));
            assert_eq!(MacIndex::new(&entries).get(7), Some(vm(7, 1)));
        }
    }
}
