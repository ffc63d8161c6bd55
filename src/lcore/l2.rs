//! L2 switching inside a segment, for unicast to a MAC that is not a VR
//! interface's. Every MAC behind a vif is known from the config (port security
//! holds a vif to its interface's MACs), so nothing is learned: a frame to an
//! extra MAC goes to the vifs that declare it, any other MAC is behind the
//! uplink. Unicast is never flooded; broadcast and multicast go to every other
//! port of the segment whose guest is here.
use crate::dataplane::{Dataplane, PortRole, Segment, VrState};
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

/// The ports a frame from `ingress` on `segment` floods to: every other one but
/// the vifs of VRs whose guest is not here (standby, or drained away). Nothing
/// reads such a vif, or its reader is a guest still arriving: the kernel or the
/// hypervisor would queue the frames and hand them to the guest when it resumes,
/// seconds stale (an OSPF hello from before the guest's adjacency, replayed,
/// tears that adjacency down).
#[inline(always)]
pub fn flood_targets<'d>(
    dp: &'d Dataplane,
    segment: &'d Segment,
    ingress: usize,
) -> impl Iterator<Item = usize> + 'd {
    segment
        .ports
        .iter()
        .copied()
        .filter(move |&p| p != ingress && guest_here(dp, p))
}

/// Whether port `p` leads to a guest that runs here: an uplink, or a vif of a
/// VR active (or quiet: its guest may not have left) on this host.
#[inline(always)]
fn guest_here(dp: &Dataplane, p: usize) -> bool {
    match dp.ports[p] {
        PortRole::Uplink { .. } => true,
        PortRole::Vif { vr, .. } => {
            !matches!(dp.vrs[vr].state(), VrState::Standby | VrState::Draining)
        }
    }
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
    fn floods_to_every_other_port_of_the_segment_whose_guest_is_here() {
        let t = dataplane();
        let (dp, seg) = (&t.dp, &t.dp.segments[0]);
        let all: Vec<usize> = seg.ports.clone();
        assert_eq!(all.len(), 3, "uplink and two vifs");
        let targets = |from: usize| flood_targets(dp, seg, from).collect::<Vec<_>>();
        assert_eq!(targets(all[0]), &all[1..]);
        assert_eq!(targets(all[1]), [all[0], all[2]]);
        // A VR in standby or draining: its vif gets no flooded frame.
        let PortRole::Vif { vr, .. } = dp.ports[all[2]] else {
            panic!("a vif")
        };
        let mut state = VrState::Active;
        for next in [VrState::Standby, VrState::Draining] {
            assert!(dp.vrs[vr].transition(state, next));
            state = next;
            assert_eq!(targets(all[0]), [all[1]], "{state:?}");
        }
        assert!(dp.vrs[vr].transition(state, VrState::Quiet));
        assert_eq!(targets(all[0]), &all[1..], "a quiet VR's guest may be here");
    }
}
