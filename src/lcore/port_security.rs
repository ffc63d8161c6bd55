//! Port security on vifs, the first check a frame from a guest meets (before
//! anything learns from it): it must come from a MAC of the VR interface its vif
//! belongs to (its own, or an extra one the config declares, e.g. VRRP's), an
//! ARP packet must name such a MAC and one of that interface's addresses as
//! sender, and a neighbour solicitation or advertisement only such MACs and the
//! interface's IPv6 addresses. Migration's own frames pass: QEMU's RARP (sender 0.0.0.0) and a
//! guest's gratuitous ARP for its own address. Everything else is dropped and
//! counted on the vif (docs/security.md). Frames from uplinks are not checked
//! here.
use super::ndp::{self, Ndp};
use crate::dataplane::{Dataplane, PortRole};
use crate::stats::DropReason;
use vrfwd_wire::arp::Arp;
use vrfwd_wire::ethernet::ethertype;

use super::ethernet::Header;

/// Whether a frame with header `eth` (and ARP packet `arp`, or neighbour
/// discovery message `nd`, if any) that arrived on a port of role `role` may go on.
#[inline(always)]
pub fn check(
    dp: &Dataplane,
    role: PortRole,
    eth: &Header,
    arp: Option<&Arp>,
    nd: Option<&Ndp>,
) -> Result<(), DropReason> {
    let PortRole::Vif { vr, iface, .. } = role else {
        return Ok(());
    };
    let ifc = &dp.vrs[vr].interfaces[iface];
    let allowed = ifc.sends_from(eth.src)
        && arp.is_none_or(|a| {
            ifc.sends_from(a.sender_mac)
                && (eth.ethertype == ethertype::RARP || ifc.owns(a.sender_ip))
        })
        && nd.is_none_or(|n| ndp::speaks_for(ifc, n));
    if allowed {
        Ok(())
    } else {
        Err(DropReason::Spoofed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lcore::testing::{dataplane, VR1_LAN1_MAC, VR2_LAN1_MAC, VRRP_ADDRESS, VRRP_MAC};
    use std::net::Ipv4Addr;
    use vrfwd_wire::arp::{rarp_announcement, OP_REPLY, OP_REQUEST};
    use vrfwd_wire::ethernet::EthernetFrame;
    use vrfwd_wire::MacAddr;

    const VR1: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 1);

    fn eth(src: MacAddr, ethertype: u16) -> Header {
        Header {
            dst: MacAddr::BROADCAST,
            src,
            ethertype,
        }
    }

    fn arp(sender_mac: MacAddr, sender_ip: Ipv4Addr, target_ip: Ipv4Addr) -> Arp {
        Arp {
            op: OP_REQUEST,
            sender_mac,
            sender_ip,
            target_mac: MacAddr::default(),
            target_ip,
        }
    }

    #[test]
    fn a_vif_speaks_only_for_its_own_interface() {
        let t = dataplane();
        let dp = &t.dp;
        let vif = dp.ports[dp.vrs[0].interfaces[0].vif];
        let ok = |e: &Header, a: Option<&Arp>| check(dp, vif, e, a, None);
        // IPv4 and other frames from the interface's MAC pass; from any other MAC
        // (another VR's, a station's) they do not.
        assert_eq!(ok(&eth(VR1_LAN1_MAC, ethertype::IPV4), None), Ok(()));
        for src in [VR2_LAN1_MAC, MacAddr([2, 0, 0, 0, 0xaa, 1])] {
            assert_eq!(
                ok(&eth(src, ethertype::IPV4), None),
                Err(DropReason::Spoofed)
            );
        }
        // ARP: its own address as sender (a request, a reply, a gratuitous ARP).
        let station = Ipv4Addr::new(10, 0, 1, 2);
        let arp_eth = eth(VR1_LAN1_MAC, ethertype::ARP);
        assert_eq!(ok(&arp_eth, Some(&arp(VR1_LAN1_MAC, VR1, station))), Ok(()));
        let reply = Arp {
            op: OP_REPLY,
            ..arp(VR1_LAN1_MAC, VR1, station)
        };
        assert_eq!(ok(&arp_eth, Some(&reply)), Ok(()));
        assert_eq!(ok(&arp_eth, Some(&arp(VR1_LAN1_MAC, VR1, VR1))), Ok(()));
        // ... not another address, not another MAC inside the packet, not 0.0.0.0.
        for a in [
            arp(VR1_LAN1_MAC, Ipv4Addr::new(10, 0, 1, 101), station),
            arp(VR2_LAN1_MAC, VR1, station),
            arp(VR1_LAN1_MAC, Ipv4Addr::UNSPECIFIED, VR1),
        ] {
            assert_eq!(ok(&arp_eth, Some(&a)), Err(DropReason::Spoofed), "{a:?}");
        }
        // QEMU's RARP for the interface's MAC passes; one for another VR's does not.
        let rarp = |mac: MacAddr| {
            let f = rarp_announcement(mac);
            Arp::parse(EthernetFrame::new_checked(&f[..]).unwrap().payload()).unwrap()
        };
        let rarp_eth = |mac| eth(mac, ethertype::RARP);
        assert_eq!(
            ok(&rarp_eth(VR1_LAN1_MAC), Some(&rarp(VR1_LAN1_MAC))),
            Ok(())
        );
        assert_eq!(
            ok(&rarp_eth(VR2_LAN1_MAC), Some(&rarp(VR2_LAN1_MAC))),
            Err(DropReason::Spoofed)
        );
        assert_eq!(
            ok(&rarp_eth(VR1_LAN1_MAC), Some(&rarp(VR2_LAN1_MAC))),
            Err(DropReason::Spoofed)
        );
    }

    #[test]
    fn a_vif_may_speak_for_its_interfaces_extra_macs_and_addresses() {
        let t = dataplane();
        let dp = &t.dp;
        let vif = |v: usize| dp.ports[dp.vrs[v].interfaces[0].vif];
        let station = Ipv4Addr::new(10, 0, 1, 2);
        // VRRP's gratuitous ARP: the virtual MAC and address.
        let vrrp = arp(VRRP_MAC, VRRP_ADDRESS, VRRP_ADDRESS);
        assert_eq!(
            check(
                dp,
                vif(0),
                &eth(VRRP_MAC, ethertype::ARP),
                Some(&vrrp),
                None
            ),
            Ok(())
        );
        assert_eq!(
            check(dp, vif(0), &eth(VRRP_MAC, ethertype::IPV4), None, None),
            Ok(())
        );
        // The extra address with the interface's own MAC, in a request.
        let own_mac = arp(VR1_LAN1_MAC, VRRP_ADDRESS, station);
        assert_eq!(
            check(
                dp,
                vif(0),
                &eth(VR1_LAN1_MAC, ethertype::ARP),
                Some(&own_mac),
                None
            ),
            Ok(())
        );
        // They are VR 1's eth0's only: not VR 2's.
        assert_eq!(
            check(dp, vif(1), &eth(VRRP_MAC, ethertype::IPV4), None, None),
            Err(DropReason::Spoofed)
        );
        let claim = arp(VR2_LAN1_MAC, VRRP_ADDRESS, station);
        assert_eq!(
            check(
                dp,
                vif(1),
                &eth(VR2_LAN1_MAC, ethertype::ARP),
                Some(&claim),
                None
            ),
            Err(DropReason::Spoofed)
        );
    }

    #[test]
    fn uplinks_are_not_checked_here() {
        let t = dataplane();
        let dp = &t.dp;
        let uplink = dp.ports[dp.segments[0].uplink];
        let station = MacAddr([2, 0, 0, 0, 0xaa, 1]);
        let a = arp(station, Ipv4Addr::new(10, 0, 1, 2), VR1);
        assert_eq!(
            check(dp, uplink, &eth(station, ethertype::ARP), Some(&a), None),
            Ok(())
        );
    }

    #[test]
    fn a_vifs_neighbour_discovery_names_only_its_interface() {
        let t = dataplane();
        let dp = &t.dp;
        let vif = dp.ports[dp.vrs[0].interfaces[0].vif];
        let na = |target: &str| Ndp {
            kind: vrfwd_wire::ndp::Kind::Advertisement,
            src: target.parse().unwrap(),
            dst: "ff02::1".parse().unwrap(),
            target: target.parse().unwrap(),
            link: Some(VR1_LAN1_MAC),
        };
        let e = eth(VR1_LAN1_MAC, ethertype::IPV6);
        assert_eq!(check(dp, vif, &e, None, Some(&na("2001:db8:1::1"))), Ok(()));
        assert_eq!(
            check(dp, vif, &e, None, Some(&na("2001:db8:1::2"))),
            Err(DropReason::Spoofed),
            "another station's address"
        );
        let uplink = dp.ports[dp.segments[0].uplink];
        assert_eq!(
            check(dp, uplink, &e, None, Some(&na("2001:db8:1::2"))),
            Ok(()),
            "uplinks are not checked here"
        );
    }
}
