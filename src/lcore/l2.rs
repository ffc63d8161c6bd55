//! L2 switching inside a segment, for unicast to a MAC that is not a VR
//! interface's. Every MAC behind a vif is known from the config (port security
//! holds a vif to its interface's MACs), so nothing is learned: a frame to an
//! extra MAC goes to the vifs that declare it, any other MAC is behind the
//! uplink. Unicast is never flooded; broadcast and multicast go to every other
//! port of the segment.
use crate::dataplane::Segment;
use crate::stats::DropReason;
use vrfwd_wire::MacAddr;

/// Where switching sends a unicast frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switched<'a> {
    /// To these ports (one, unless several interfaces share an extra MAC).
    To(&'a [usize]),
    Drop(DropReason),
}

/// Where a frame from `ingress` to station `dst` goes: the vifs behind `dst` if it
/// is an extra MAC, else the uplink; never back where it came from.
#[inline(always)]
pub fn switch<'s>(segment: &'s Segment, ingress: usize, dst: MacAddr) -> Switched<'s> {
    let vifs = segment.vifs_of_extra(dst);
    let to = if vifs.is_empty() {
        std::slice::from_ref(&segment.uplink)
    } else {
        vifs
    };
    match to {
        [port] if *port == ingress => Switched::Drop(DropReason::Filtered),
        to => Switched::To(to),
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
    use crate::lcore::testing::{dataplane, VRRP_MAC};

    #[test]
    fn stations_are_behind_the_uplink_extra_macs_behind_their_vifs() {
        let t = dataplane();
        let seg = &t.dp.segments[0];
        let (uplink, vif) = (seg.uplink, seg.ports[1]);
        let station = MacAddr([2, 0, 0, 0, 0xaa, 1]);
        assert_eq!(switch(seg, vif, station), Switched::To(&[uplink]));
        // The LAN's own traffic that reached us is not ours to send back.
        assert_eq!(
            switch(seg, uplink, station),
            Switched::Drop(DropReason::Filtered)
        );
        // VR 1's interface declares the VRRP MAC.
        assert_eq!(switch(seg, uplink, VRRP_MAC), Switched::To(&[vif]));
        assert_eq!(
            switch(seg, vif, VRRP_MAC),
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
