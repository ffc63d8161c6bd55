//! L2 switching inside a segment: learns which port a station's MAC is behind,
//! sends a frame for a known station out of that port (never back where it came
//! from), and floods the rest to every other port of the segment.
use crate::dataplane::{Learned, Segment};
use crate::stats::DropReason;
use vrfwd_wire::MacAddr;

/// Where switching sends a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switched {
    Unicast(usize),
    Flood,
    Drop(DropReason),
}

/// Learns that `mac` is behind `port`; false when the segment's MAC table is full.
#[inline(always)]
pub fn learn(segment: &Segment, mac: MacAddr, port: usize, now: u32) -> bool {
    segment.macs.learn(mac.to_u64(), port as u64, now) != Learned::Full
}

/// Where a frame from `ingress` to station `dst` goes.
#[inline(always)]
pub fn switch(segment: &Segment, ingress: usize, dst: MacAddr, now: u32) -> Switched {
    match segment.macs.get(dst.to_u64(), now) {
        Some(port) if port as usize == ingress => Switched::Drop(DropReason::Filtered),
        Some(port) => Switched::Unicast(port as usize),
        None => Switched::Flood,
    }
}

/// The ports a frame from `ingress` floods to.
#[inline(always)]
pub fn flood_targets(segment: &Segment, ingress: usize) -> impl Iterator<Item = usize> + '_ {
    segment.ports.iter().copied().filter(move |&p| p != ingress)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lcore::testing::dataplane;

    #[test]
    fn learned_stations_are_switched_unknown_ones_flooded_hairpins_dropped() {
        let t = dataplane();
        let seg = &t.dp.segments[0];
        let (uplink, vif) = (seg.uplink, seg.ports[1]);
        let station = MacAddr([2, 0, 0, 0, 0xaa, 1]);
        assert_eq!(switch(seg, vif, station, 0), Switched::Flood);
        assert!(learn(seg, station, uplink, 0));
        assert_eq!(switch(seg, vif, station, 0), Switched::Unicast(uplink));
        assert_eq!(
            switch(seg, uplink, station, 0),
            Switched::Drop(DropReason::Filtered)
        );
    }

    #[test]
    fn floods_to_every_other_port_of_the_segment() {
        let t = dataplane();
        let seg = &t.dp.segments[0];
        let all: Vec<usize> = seg.ports.clone();
        assert_eq!(all.len(), 3, "uplink and two vifs");
        assert_eq!(flood_targets(seg, all[0]).collect::<Vec<_>>(), &all[1..]);
        assert_eq!(
            flood_targets(seg, all[1]).collect::<Vec<_>>(),
            [all[0], all[2]]
        );
    }
}
