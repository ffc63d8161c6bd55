//! The ARP stage: reads ARP and RARP off a frame, snoops neighbours for the VRs
//! of the segment, and answers requests for the address of a VR active here.
//! Announcements (RARP, gratuitous ARP) are the migration stage's; ARP addressed
//! to a VR still goes on to its guest (the IPv4 input stage punts it).
use crate::dataplane::{neighbor_key, Dataplane, Interface, PortRole};
use std::net::Ipv4Addr;
use vrfwd_wire::arp::{Arp, OP_REPLY, OP_REQUEST};
use vrfwd_wire::ethernet::{ethertype, EthernetFrame, MIN_FRAME_LEN};
use vrfwd_wire::MacAddr;

/// The ARP packet of `frame`, of `ethertype` (ARP or RARP), if it carries a whole one.
#[inline(always)]
pub fn packet(ethertype: u16, frame: &[u8]) -> Option<Arp> {
    if ethertype != ethertype::ARP && ethertype != ethertype::RARP {
        return None;
    }
    Arp::parse(EthernetFrame::new_checked(frame).ok()?.payload()).ok()
}

/// Whether interface `ifc` learns that `ip` is at `mac`: a station on its subnet
/// other than its own guest.
fn learnable(ifc: &Interface, ip: Ipv4Addr, mac: MacAddr) -> bool {
    ifc.on_subnet(ip) && !ifc.owns(ip) && !ifc.sends_from(mac) && mac.is_station()
}

/// Teaches interface `iface` of VR `v` that `ip` is at `mac`, if it may learn it.
fn teach(dp: &Dataplane, v: usize, iface: usize, (ip, mac): (Ipv4Addr, MacAddr), now: u32) {
    let vr = &dp.vrs[v];
    if learnable(&vr.interfaces[iface], ip, mac) {
        vr.neighbors
            .learn(neighbor_key(iface, ip.into()), mac.to_u64(), now);
    }
}

/// Learns neighbours from an ARP packet seen on `segment`, arriving on a port of
/// role `ingress`. From the uplink, its sender teaches every VR interface of the
/// segment whose subnet holds it. From a vif, only that vif's own interface
/// learns, and only whom its guest answered (the sender is the guest itself):
/// one guest never teaches another VR anything (docs/security.md).
pub fn snoop(dp: &Dataplane, segment: usize, ingress: PortRole, arp: &Arp, now: u32) {
    match ingress {
        PortRole::Uplink { .. } => {
            for vm in &dp.segments[segment].vr_macs {
                teach(dp, vm.vr, vm.iface, (arp.sender_ip, arp.sender_mac), now);
            }
        }
        PortRole::Vif { vr, iface, .. } if arp.op == OP_REPLY => {
            teach(dp, vr, iface, (arp.target_ip, arp.target_mac), now);
        }
        PortRole::Vif { .. } => {}
    }
}

/// The reply vrfwd sends for a request on `segment` from `ingress` asking for the
/// address of a VR active here (never for one from that VR's own vif): the VR's
/// index and the frame. The request still goes on to the guest, which learns the
/// asker and may answer too; but stations keep their entry for the VR while its
/// guest cannot answer (frozen by a migration: seconds on slow hosts, long enough
/// for a neighbour entry to fail).
pub fn answer(
    dp: &Dataplane,
    segment: usize,
    ingress: usize,
    arp: &Arp,
) -> Option<(usize, [u8; MIN_FRAME_LEN])> {
    if arp.op != OP_REQUEST {
        return None;
    }
    let vm = dp.answering_for(segment, arp.target_ip.into(), ingress)?;
    let ifc = &dp.vrs[vm.vr].interfaces[vm.iface];
    reply_to(arp, (ifc.mac, ifc.address)).map(|frame| (vm.vr, frame))
}

/// The reply that `owner` (MAC, address) sends to `request`, or None when
/// `request` is not a request for its address from a real station (not a probe
/// from 0.0.0.0, not a gratuitous ARP).
pub fn reply_to(request: &Arp, owner: (MacAddr, Ipv4Addr)) -> Option<[u8; MIN_FRAME_LEN]> {
    let (mac, ip) = owner;
    let real = request.op == OP_REQUEST
        && request.target_ip == ip
        && request.sender_ip != request.target_ip
        && !request.sender_ip.is_unspecified()
        && request.sender_mac.is_station();
    if !real {
        return None;
    }
    let reply = Arp {
        op: OP_REPLY,
        sender_mac: mac,
        sender_ip: ip,
        target_mac: request.sender_mac,
        target_ip: request.sender_ip,
    };
    Some(reply.frame(request.sender_mac, mac, ethertype::ARP))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::VrState;
    use crate::lcore::testing::{dataplane, VR1_LAN1_MAC, VR2_LAN1_MAC};

    const HOST: MacAddr = MacAddr([2, 0, 0, 0, 0xaa, 2]);
    const VR1: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 1);
    const VR2: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 101);

    fn request(target: Ipv4Addr) -> Arp {
        Arp {
            op: OP_REQUEST,
            sender_mac: HOST,
            sender_ip: Ipv4Addr::new(10, 0, 1, 2),
            target_mac: MacAddr::default(),
            target_ip: target,
        }
    }

    #[test]
    fn only_arp_and_rarp_carry_a_packet() {
        let frame = request(VR1).frame(MacAddr::BROADCAST, HOST, ethertype::ARP);
        assert_eq!(packet(ethertype::ARP, &frame), Some(request(VR1)));
        assert_eq!(packet(ethertype::RARP, &frame), Some(request(VR1)));
        assert_eq!(packet(ethertype::IPV4, &frame), None);
        for len in 0..14 + 28 {
            assert_eq!(packet(ethertype::ARP, &frame[..len]), None, "len {len}");
        }
    }

    #[test]
    fn replies_only_to_real_requests_for_the_owner() {
        let owner = (VR1_LAN1_MAC, VR1);
        let f = reply_to(&request(VR1), owner).expect("a reply");
        let eth = EthernetFrame::new_checked(&f[..]).unwrap();
        assert_eq!((eth.dst(), eth.src()), (HOST, VR1_LAN1_MAC));
        assert_eq!(
            Arp::parse(eth.payload()).unwrap(),
            Arp {
                op: OP_REPLY,
                sender_mac: VR1_LAN1_MAC,
                sender_ip: VR1,
                target_mac: HOST,
                target_ip: Ipv4Addr::new(10, 0, 1, 2),
            }
        );
        let r = request(VR1);
        let not_ours = Arp {
            target_ip: Ipv4Addr::new(10, 0, 1, 9),
            ..r
        };
        let probe = Arp {
            sender_ip: Ipv4Addr::UNSPECIFIED,
            ..r
        };
        let gratuitous = Arp {
            sender_ip: VR1,
            ..r
        };
        let a_reply = Arp { op: OP_REPLY, ..r };
        for a in [not_ours, probe, gratuitous, a_reply] {
            assert_eq!(reply_to(&a, owner), None, "{a:?}");
        }
    }

    #[test]
    fn answers_for_the_vr_that_owns_the_address_when_active_and_not_to_its_own_guest() {
        let t = dataplane();
        let dp = &t.dp;
        let uplink = dp.segments[0].uplink;
        let (vr, f) = answer(dp, 0, uplink, &request(VR2)).expect("VR 2 answers");
        assert_eq!(vr, 1);
        assert_eq!(
            EthernetFrame::new_checked(&f[..]).unwrap().src(),
            VR2_LAN1_MAC
        );
        assert_eq!(
            answer(dp, 0, uplink, &request(Ipv4Addr::new(10, 0, 1, 7))),
            None
        );
        // VR 1's second address is on the other segment.
        assert_eq!(
            answer(dp, 0, uplink, &request(Ipv4Addr::new(10, 0, 2, 1))),
            None
        );
        let own_vif = dp.vrs[1].interfaces[0].vif;
        assert_eq!(answer(dp, 0, own_vif, &request(VR2)), None);
        assert!(dp.vrs[1].transition(VrState::Active, VrState::Standby));
        assert_eq!(answer(dp, 0, uplink, &request(VR2)), None);
    }

    #[test]
    fn snooping_teaches_each_vr_whose_subnet_holds_the_sender() {
        let t = dataplane();
        let dp = &t.dp;
        let uplink = dp.ports[dp.segments[0].uplink];
        snoop(dp, 0, uplink, &request(VR1), 0);
        let key = neighbor_key(0, u32::from(Ipv4Addr::new(10, 0, 1, 2)));
        assert_eq!(dp.vrs[0].neighbors.get(key, 0), Some(HOST.to_u64()));
        assert_eq!(dp.vrs[1].neighbors.get(key, 0), Some(HOST.to_u64()));
        // A sender off every subnet, a group MAC, a VR's own address: nothing.
        for (ip, mac) in [
            (Ipv4Addr::new(10, 7, 0, 1), MacAddr([2, 0, 0, 0, 0xbb, 1])),
            (Ipv4Addr::new(10, 0, 1, 3), MacAddr::BROADCAST),
            (VR1, MacAddr([2, 0, 0, 0, 0xbb, 2])),
        ] {
            let a = Arp {
                sender_ip: ip,
                sender_mac: mac,
                ..request(VR2)
            };
            snoop(dp, 0, uplink, &a, 0);
            let key = neighbor_key(0, u32::from(ip));
            assert_eq!(dp.vrs[0].neighbors.get(key, 0), None, "{ip}");
        }
    }

    #[test]
    fn a_guests_reply_teaches_its_vr_whom_it_answered() {
        let t = dataplane();
        let dp = &t.dp;
        let station = (Ipv4Addr::new(10, 0, 1, 50), MacAddr([2, 0, 0, 0, 0xcc, 1]));
        let reply = Arp {
            op: OP_REPLY,
            sender_mac: VR1_LAN1_MAC,
            sender_ip: VR1,
            target_mac: station.1,
            target_ip: station.0,
        };
        let key = neighbor_key(0, u32::from(station.0));
        // From the uplink, the target of a reply teaches nothing.
        snoop(dp, 0, dp.ports[dp.segments[0].uplink], &reply, 0);
        assert_eq!(dp.vrs[0].neighbors.get(key, 0), None);
        let vif = dp.vrs[0].interfaces[0].vif;
        snoop(dp, 0, dp.ports[vif], &reply, 0);
        assert_eq!(dp.vrs[0].neighbors.get(key, 0), Some(station.1.to_u64()));
        assert_eq!(dp.vrs[1].neighbors.get(key, 0), None);
    }

    #[test]
    fn a_guest_teaches_no_other_vr_even_what_port_security_lets_through() {
        let t = dataplane();
        let dp = &t.dp;
        let vif = dp.ports[dp.vrs[0].interfaces[0].vif];
        // VR 1's guest's own request and gratuitous ARP: VR 2 (same segment and
        // subnet) learns nothing, not even VR 1's true address.
        let own = Arp {
            sender_mac: VR1_LAN1_MAC,
            sender_ip: VR1,
            ..request(Ipv4Addr::new(10, 0, 1, 2))
        };
        let gratuitous = Arp {
            target_ip: VR1,
            ..own
        };
        // And what port security would drop: a station's address under its MAC.
        let forged = Arp {
            sender_ip: Ipv4Addr::new(10, 0, 1, 2),
            ..own
        };
        for a in [own, gratuitous, forged] {
            snoop(dp, 0, vif, &a, 0);
            let reply = Arp {
                op: OP_REPLY,
                target_mac: VR1_LAN1_MAC,
                target_ip: Ipv4Addr::new(10, 0, 1, 9),
                ..a
            };
            snoop(dp, 0, vif, &reply, 0);
        }
        assert!(dp.vrs[1].neighbors.entries(0).is_empty());
        // Its own guest's reply naming itself teaches VR 1 nothing either.
        assert!(dp.vrs[0].neighbors.entries(0).is_empty());
    }
}
