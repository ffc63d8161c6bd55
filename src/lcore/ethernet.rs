//! Ethernet input, the first stage every frame meets: reads the header and says
//! where the destination MAC sends the frame: to a VR of the segment (through its MAC index, whatever the number of
//! VRs), to every port (group addresses), or to L2 switching. It changes nothing.
use crate::dataplane::{Dataplane, PortRole, VrMac};
use crate::stats::DropReason;
use vrfwd_wire::ethernet::EthernetFrame;
use vrfwd_wire::MacAddr;

/// The Ethernet header fields the later stages switch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub dst: MacAddr,
    pub src: MacAddr,
    pub ethertype: u16,
}

/// Where a frame goes after Ethernet input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Addressed to a VR interface on this segment.
    Vr(VrMac),
    /// Broadcast or multicast: every other port of the segment.
    Flood,
    /// To a station: L2 switching decides.
    Switch,
    Drop(DropReason),
}

/// Reads the header of `frame`; a frame shorter than one is a runt.
#[inline(always)]
pub fn header(frame: &[u8]) -> Result<Header, DropReason> {
    let eth = EthernetFrame::new_checked(frame).map_err(|_| DropReason::Runt)?;
    Ok(Header {
        dst: eth.dst(),
        src: eth.src(),
        ethertype: eth.ethertype(),
    })
}

/// Where `dst` sends a frame that arrived on `ingress` (whose role is `role`).
/// A guest's frame to its own interface's MAC is a loop.
#[inline(always)]
pub fn next(dp: &Dataplane, ingress: usize, role: PortRole, dst: MacAddr) -> Next {
    if dst.is_multicast() {
        return Next::Flood;
    }
    match dp.segments[role.segment()].vr_for_mac(dst) {
        Some(vm) if vm.vif == ingress => Next::Drop(DropReason::Loop),
        Some(vm) => Next::Vr(vm),
        None => Next::Switch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lcore::testing::{dataplane, VR1_LAN1_MAC, VR2_LAN1_MAC};
    use vrfwd_wire::ethernet::{ethertype, header as eth_header, HEADER_LEN};

    const STATION: MacAddr = MacAddr([2, 0, 0, 0, 0xaa, 1]);

    #[test]
    fn every_truncation_is_a_runt() {
        let h = eth_header(MacAddr::BROADCAST, STATION, ethertype::ARP);
        for len in 0..HEADER_LEN {
            assert_eq!(header(&h[..len]), Err(DropReason::Runt));
        }
        assert_eq!(
            header(&h),
            Ok(Header {
                dst: MacAddr::BROADCAST,
                src: STATION,
                ethertype: ethertype::ARP
            })
        );
    }

    #[test]
    fn vr_macs_go_to_their_vr_group_addresses_flood_others_switch() {
        let t = dataplane();
        let dp = &t.dp;
        let uplink = dp.segments[0].uplink;
        let role = dp.ports[uplink];
        let vr1 = dp.segments[0].vr_for_mac(VR1_LAN1_MAC).unwrap();
        assert_eq!((vr1.vr, vr1.iface), (0, 0));
        assert_eq!(next(dp, uplink, role, VR1_LAN1_MAC), Next::Vr(vr1));
        let vr2 = next(dp, uplink, role, VR2_LAN1_MAC);
        assert!(
            matches!(
                vr2,
                Next::Vr(VrMac {
                    vr: 1,
                    iface: 0,
                    ..
                })
            ),
            "{vr2:?}"
        );
        assert_eq!(next(dp, uplink, role, MacAddr::BROADCAST), Next::Flood);
        assert_eq!(
            next(dp, uplink, role, MacAddr([1, 0, 0x5e, 0, 0, 5])),
            Next::Flood
        );
        assert_eq!(next(dp, uplink, role, STATION), Next::Switch);
        // VR 1's guest sending to its own MAC.
        let vif = dp.vrs[0].interfaces[0].vif;
        assert_eq!(
            next(dp, vif, dp.ports[vif], VR1_LAN1_MAC),
            Next::Drop(DropReason::Loop)
        );
        // VR 1's guest to VR 2 on the same segment is for VR 2.
        assert_eq!(next(dp, vif, dp.ports[vif], VR2_LAN1_MAC), vr2);
    }
}
