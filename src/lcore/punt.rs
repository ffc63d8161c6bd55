//! Punt: frames for a VR that the fast path does not take go to the VR's guest
//! through the vif of the interface they arrived for; while the VR drains, to its
//! new host instead: back out of the segment's uplink, still addressed to the VR's
//! MAC (which the switches now place at the new host), from the uplink's own MAC
//! so that they learn nothing wrong.
use crate::dataplane::{Dataplane, VrState};
use crate::stats::PuntReason;
use vrfwd_wire::MacAddr;

/// Where a punted frame goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Punt {
    pub port: usize,
    /// Counted as this (`HandedOver` when the VR drains).
    pub reason: PuntReason,
    /// The source MAC to write first, if any.
    pub source: Option<MacAddr>,
}

/// Where a frame for interface `iface` of VR `vr`, punted for `reason`, goes;
/// `uplink_macs` are the segments' uplink MACs.
#[inline(always)]
pub fn target(
    dp: &Dataplane,
    vr: usize,
    iface: usize,
    reason: PuntReason,
    uplink_macs: &[MacAddr],
) -> Punt {
    let ifc = &dp.vrs[vr].interfaces[iface];
    if dp.vrs[vr].state() == VrState::Draining {
        return Punt {
            port: ifc.uplink,
            reason: PuntReason::HandedOver,
            source: Some(uplink_macs[ifc.segment]),
        };
    }
    to_guest(dp, vr, iface, reason)
}

/// The guest's vif, whatever the VR's state.
#[inline(always)]
pub fn to_guest(dp: &Dataplane, vr: usize, iface: usize, reason: PuntReason) -> Punt {
    Punt {
        port: dp.vrs[vr].interfaces[iface].vif,
        reason,
        source: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lcore::testing::dataplane;

    #[test]
    fn to_the_guest_or_while_draining_to_the_new_host() {
        let t = dataplane();
        let dp = &t.dp;
        let uplink_macs = [
            MacAddr([2, 0, 0, 0, 0xee, 1]),
            MacAddr([2, 0, 0, 0, 0xee, 2]),
        ];
        let to_guest = target(dp, 0, 1, PuntReason::NoRoute, &uplink_macs);
        assert_eq!(
            to_guest,
            Punt {
                port: dp.vrs[0].interfaces[1].vif,
                reason: PuntReason::NoRoute,
                source: None
            }
        );
        assert!(dp.vrs[0].transition(VrState::Active, VrState::Draining));
        assert_eq!(
            target(dp, 0, 1, PuntReason::NoRoute, &uplink_macs),
            Punt {
                port: dp.segments[1].uplink,
                reason: PuntReason::HandedOver,
                source: Some(uplink_macs[1])
            }
        );
        // Another VR is not affected.
        assert_eq!(target(dp, 1, 0, PuntReason::Arp, &uplink_macs).source, None);
    }
}
