//! The neighbour-discovery stage, IPv6's ARP stage: reads neighbour
//! solicitations and advertisements off a frame (a whole, valid message: hop
//! limit 255, good checksum, options well-formed, RFC 4861 §7.1), snoops IPv6
//! neighbours for the VRs of the segment with the ARP stage's scoping, and
//! answers solicitations for the address of a VR active here. The message still
//! goes on to the guest (the IPv6 input stage punts it: multicast, or to the VR).
use crate::dataplane::{neighbor6_key, Dataplane, Interface, PortRole};
use std::net::Ipv6Addr;
use vrfwd_wire::ethernet::{self, ethertype, EthernetFrame};
use vrfwd_wire::icmpv6::Icmpv6Packet;
use vrfwd_wire::ipv6::{self, next_header, Ipv6Packet};
use vrfwd_wire::ndp::{self, Kind, NdpPacket, FLAG_OVERRIDE, FLAG_ROUTER, FLAG_SOLICITED};
use vrfwd_wire::MacAddr;

/// What a solicitation or advertisement says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ndp {
    pub kind: Kind,
    /// The IPv6 source and destination.
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub target: Ipv6Addr,
    /// The link-layer address option: the source's in a solicitation, the
    /// target's in an advertisement.
    pub link: Option<MacAddr>,
}

/// Neighbour discovery's hop limit: a message with another crossed a router.
const HOP_LIMIT: u8 = 255;

/// The solicitation or advertisement `frame` (of `ethertype`) carries, if it is
/// whole and valid.
#[inline(always)]
pub fn packet(ethertype: u16, frame: &[u8]) -> Option<Ndp> {
    if ethertype != ethertype::IPV6 {
        return None;
    }
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let ip = Ipv6Packet::new_checked(eth.payload()).ok()?;
    if ip.version() != 6 || ip.next_header() != next_header::ICMPV6 {
        return None;
    }
    parse(&ip)
}

/// The message of an ICMPv6 packet `ip`, off the per-frame path.
#[cold]
fn parse(ip: &Ipv6Packet<&[u8]>) -> Option<Ndp> {
    let (src, dst) = (ip.src(), ip.dst());
    let message = ip.payload().ok()?;
    let valid = ip.hop_limit() == HOP_LIMIT
        && Icmpv6Packet::new_checked(message)
            .ok()?
            .verify_checksum(src, dst);
    let ndp = NdpPacket::new_checked(message).ok().filter(|_| valid)?;
    (!ndp.target().is_multicast()).then(|| Ndp {
        kind: ndp.kind(),
        src,
        dst,
        target: ndp.target(),
        link: ndp.link_layer_address(),
    })
}

/// Whether interface `ifc` learns that `ip` is at `mac`: a station on its link
/// other than its own guest.
fn learnable(ifc: &Interface, ip: Ipv6Addr, mac: MacAddr) -> bool {
    ifc.on_link6(ip) && !ifc.owns6(ip) && !ifc.sends_from(mac) && mac.is_station()
}

/// Teaches interface `iface` of VR `v` that `ip` is at `mac`, if it may learn it.
fn teach(dp: &Dataplane, v: usize, iface: usize, (ip, mac): (Ipv6Addr, MacAddr), now: u32) {
    let vr = &dp.vrs[v];
    if learnable(&vr.interfaces[iface], ip, mac) {
        vr.neighbors6
            .learn(neighbor6_key(iface, ip.into()), mac.to_u64(), now);
    }
}

/// The neighbour a message from a station names about itself: an
/// advertisement's target at its link-layer address (or the frame's source), a
/// solicitation's source at its source link-layer address (none without one,
/// nor from `::`, duplicate address detection).
fn sender(ndp: &Ndp, eth_src: MacAddr) -> Option<(Ipv6Addr, MacAddr)> {
    match ndp.kind {
        Kind::Advertisement => Some((ndp.target, ndp.link.unwrap_or(eth_src))),
        Kind::Solicitation if ndp.src.is_unspecified() => None,
        Kind::Solicitation => ndp.link.map(|mac| (ndp.src, mac)),
    }
}

/// Learns IPv6 neighbours from a message seen on `segment`, arriving on a port of
/// role `ingress` in a frame from `eth_src` to `eth_dst`. From the uplink, the
/// station it names teaches every VR interface of the segment whose link holds
/// it. From a vif, only that vif's own interface learns, and only whom its guest
/// answered (the advertisement's destination; the guest is the sender): one
/// guest never teaches another VR anything (docs/security.md).
pub fn snoop(
    dp: &Dataplane,
    segment: usize,
    ingress: PortRole,
    ndp: &Ndp,
    (eth_src, eth_dst): (MacAddr, MacAddr),
    now: u32,
) {
    match ingress {
        PortRole::Uplink { .. } => {
            let Some(neighbor) = sender(ndp, eth_src) else {
                return;
            };
            for vm in &dp.segments[segment].vr_macs {
                teach(dp, vm.vr, vm.iface, neighbor, now);
            }
        }
        PortRole::Vif { vr, iface, .. } if ndp.kind == Kind::Advertisement => {
            if !ndp.dst.is_multicast() {
                teach(dp, vr, iface, (ndp.dst, eth_dst), now);
            }
        }
        PortRole::Vif { .. } => {}
    }
}

/// Bytes of the advertisement frame vrfwd sends: Ethernet, IPv6, the message.
pub const ADVERTISEMENT_LEN: usize = ethernet::HEADER_LEN + ipv6::HEADER_LEN + ndp::FIXED_LEN + 8;

/// The advertisement vrfwd sends for a solicitation on `segment` from `ingress`
/// for an address of a VR active here (never for one from that VR's own vif):
/// the VR's index and the frame. The solicitation still goes on to the guest, as
/// an ARP request does, for the same reason (docs/migration.md: stations keep
/// their entry while the guest is frozen).
pub fn answer(
    dp: &Dataplane,
    segment: usize,
    ingress: usize,
    ndp: &Ndp,
    eth_src: MacAddr,
) -> Option<(usize, [u8; ADVERTISEMENT_LEN])> {
    if ndp.kind != Kind::Solicitation || ndp.src.is_unspecified() {
        return None;
    }
    let vm = dp.answering_for(segment, ndp.target.into(), ingress)?;
    let mac = dp.vrs[vm.vr].interfaces[vm.iface].mac;
    let to = (ndp.src, ndp.link.unwrap_or(eth_src));
    let flags = FLAG_ROUTER | FLAG_SOLICITED | FLAG_OVERRIDE;
    Some((vm.vr, advertisement((ndp.target, mac), to, flags)))
}

/// An advertisement that `owner` (address, MAC) sends to `to` (address, MAC).
pub fn advertisement(
    (ip, mac): (Ipv6Addr, MacAddr),
    (to_ip, to_mac): (Ipv6Addr, MacAddr),
    flags: u8,
) -> [u8; ADVERTISEMENT_LEN] {
    let message = ndp::advertisement(ip, to_ip, ip, flags, mac);
    let header = ipv6::header(
        ip,
        to_ip,
        HOP_LIMIT,
        next_header::ICMPV6,
        message.len() as u16,
    );
    let mut frame = [0u8; ADVERTISEMENT_LEN];
    let (eth, rest) = frame.split_at_mut(ethernet::HEADER_LEN);
    eth.copy_from_slice(&ethernet::header(to_mac, mac, ethertype::IPV6));
    let (ip_header, body) = rest.split_at_mut(ipv6::HEADER_LEN);
    ip_header.copy_from_slice(&header);
    body.copy_from_slice(&message);
    frame
}

/// The all-nodes group and its Ethernet address.
const ALL_NODES: (Ipv6Addr, MacAddr) = (
    Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
    MacAddr([0x33, 0x33, 0, 0, 0, 1]),
);

/// The unsolicited advertisements that announce VR `vr`'s IPv6 addresses after
/// it arrived (RFC 4861 §7.2.6), beside the RARP of its MACs: for each interface
/// and address (link-local first), one to all nodes out of its segment's uplink
/// (port, frame), so that neighbours that kept an entry for it update it at once.
pub fn unsolicited(
    dp: &Dataplane,
    vr: usize,
) -> impl Iterator<Item = (usize, [u8; ADVERTISEMENT_LEN])> + '_ {
    dp.vrs[vr].interfaces.iter().flat_map(|ifc| {
        let own = std::iter::once(ifc.link_local).chain(ifc.addresses6.iter().map(|a| a.addr()));
        own.map(|ip| {
            let frame = advertisement((ip, ifc.mac), ALL_NODES, FLAG_ROUTER | FLAG_OVERRIDE);
            (ifc.uplink, frame)
        })
    })
}

/// Whether a guest's message speaks only for its own interface `ifc`: it names
/// only the interface's addresses (a solicitation's source, unless `::`; an
/// advertisement's target) and MACs (the link-layer address option).
pub fn speaks_for(ifc: &Interface, ndp: &Ndp) -> bool {
    let address = match ndp.kind {
        Kind::Solicitation => ndp.src.is_unspecified() || ifc.owns6(ndp.src),
        Kind::Advertisement => ifc.owns6(ndp.target),
    };
    address && ndp.link.is_none_or(|mac| ifc.sends_from(mac))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::PortRole;
    use crate::dataplane::VrState;
    use crate::lcore::testing::{dataplane, VR1_LAN1_MAC, VR1_LAN2_MAC, VR2_LAN1_MAC};
    use vrfwd_wire::icmpv6;

    const HOST: MacAddr = MacAddr([2, 0, 0, 0, 0xaa, 2]);

    fn v6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    /// A frame with a solicitation from `src` for `target` (with `HOST` as its
    /// source link-layer address unless `src` is `::`), to `dst`.
    fn solicitation(src: &str, dst: &str, target: &str, hop_limit: u8) -> Vec<u8> {
        let (src, dst) = (v6(src), v6(dst));
        let mut m = vec![icmpv6::kind::NEIGHBOR_SOLICITATION, 0, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(&v6(target).octets());
        if !src.is_unspecified() {
            m.extend_from_slice(&[ndp::OPTION_SOURCE_LINK_ADDR, 1]);
            m.extend_from_slice(&HOST.0);
        }
        Icmpv6Packet::new_checked(&mut m[..])
            .unwrap()
            .fill_checksum(src, dst);
        let mut f = ethernet::header(MacAddr::BROADCAST, HOST, ethertype::IPV6).to_vec();
        f.extend_from_slice(&ipv6::header(
            src,
            dst,
            hop_limit,
            next_header::ICMPV6,
            m.len() as u16,
        ));
        f.extend_from_slice(&m);
        f
    }

    fn uplink(dp: &Dataplane, segment: usize) -> PortRole {
        dp.ports[dp.segments[segment].uplink]
    }

    #[test]
    fn only_whole_valid_messages_are_read() {
        let f = solicitation("2001:db8:1::2", "ff02::1:ff00:1", "2001:db8:1::1", 255);
        let ndp = packet(ethertype::IPV6, &f).expect("a solicitation");
        assert_eq!(
            (ndp.kind, ndp.target, ndp.link),
            (Kind::Solicitation, v6("2001:db8:1::1"), Some(HOST))
        );
        assert_eq!(packet(ethertype::IPV4, &f), None);
        for len in 0..f.len() {
            assert_eq!(packet(ethertype::IPV6, &f[..len]), None, "len {len}");
        }
        let routed = solicitation("2001:db8:1::2", "ff02::1:ff00:1", "2001:db8:1::1", 254);
        assert_eq!(packet(ethertype::IPV6, &routed), None, "hop limit 254");
        let mut corrupt = f.clone();
        *corrupt.last_mut().unwrap() ^= 1;
        assert_eq!(packet(ethertype::IPV6, &corrupt), None, "bad checksum");
        let multicast_target = solicitation("2001:db8:1::2", "ff02::1", "ff02::1", 255);
        assert_eq!(packet(ethertype::IPV6, &multicast_target), None);
    }

    #[test]
    fn the_uplink_teaches_the_segments_vrs_on_link_and_a_vif_its_own() {
        let t = dataplane();
        let dp = &t.dp;
        let ns = |src: &str| {
            let f = solicitation(src, "ff02::1:ff00:1", "2001:db8:1::1", 255);
            packet(ethertype::IPV6, &f).unwrap()
        };
        let eth = (HOST, MacAddr::BROADCAST);
        let known = |v: usize, iface: usize, ip: &str| {
            dp.vrs[v]
                .neighbors6
                .get(neighbor6_key(iface, v6(ip).into()), 0)
        };
        snoop(dp, 0, uplink(dp, 0), &ns("2001:db8:1::2"), eth, 0);
        assert_eq!(known(0, 0, "2001:db8:1::2"), Some(HOST.to_u64()));
        assert_eq!(
            known(1, 0, "2001:db8:1::2"),
            None,
            "VR 2 has no IPv6 prefix on lan1"
        );
        snoop(dp, 0, uplink(dp, 0), &ns("fe80::2"), eth, 0);
        assert_eq!(known(0, 0, "fe80::2"), Some(HOST.to_u64()));
        assert_eq!(known(1, 0, "fe80::2"), Some(HOST.to_u64()), "link-local");
        assert_eq!(known(0, 1, "fe80::2"), None, "not on lan2");
        snoop(dp, 0, uplink(dp, 0), &ns("2001:db8:7::2"), eth, 0);
        assert_eq!(known(0, 0, "2001:db8:7::2"), None, "off link");
        // Duplicate address detection names no neighbour.
        let dad = solicitation("::", "ff02::1:ff00:9", "2001:db8:1::9", 255);
        snoop(
            dp,
            0,
            uplink(dp, 0),
            &packet(ethertype::IPV6, &dad).unwrap(),
            eth,
            0,
        );
        assert_eq!(dp.vrs[0].neighbors6.entries(0).len(), 2);

        // From a vif: only whom the guest answers, on its own interface.
        let vif = dp.ports[dp.vrs[0].interfaces[0].vif];
        let na = Ndp {
            kind: Kind::Advertisement,
            src: v6("2001:db8:1::1"),
            dst: v6("2001:db8:1::30"),
            target: v6("2001:db8:1::1"),
            link: Some(VR1_LAN1_MAC),
        };
        let asker = MacAddr([2, 0, 0, 0, 0xaa, 0x30]);
        snoop(dp, 0, vif, &na, (VR1_LAN1_MAC, asker), 0);
        assert_eq!(known(0, 0, "2001:db8:1::30"), Some(asker.to_u64()));
        assert_eq!(known(0, 0, "2001:db8:1::1"), None, "never the guest itself");
        assert_eq!(known(1, 0, "2001:db8:1::30"), None, "never another VR");
    }

    #[test]
    fn answers_solicitations_for_an_active_vrs_address() {
        let t = dataplane();
        let dp = &t.dp;
        let up = dp.segments[0].uplink;
        let f = solicitation("2001:db8:1::2", "ff02::1:ff00:1", "2001:db8:1::1", 255);
        let ns = packet(ethertype::IPV6, &f).unwrap();
        let (vr, frame) = answer(dp, 0, up, &ns, HOST).expect("an answer");
        assert_eq!(vr, 0);
        let eth = EthernetFrame::new_checked(&frame[..]).unwrap();
        assert_eq!((eth.dst(), eth.src()), (HOST, VR1_LAN1_MAC));
        let na = packet(ethertype::IPV6, &frame).expect("a valid advertisement");
        assert_eq!(
            (na.kind, na.src, na.dst, na.target, na.link),
            (
                Kind::Advertisement,
                v6("2001:db8:1::1"),
                v6("2001:db8:1::2"),
                v6("2001:db8:1::1"),
                Some(VR1_LAN1_MAC)
            )
        );
        // Its link-local address too (EUI-64 of its MAC).
        let ll = "fe80::ff:fe00:101";
        let f = solicitation("fe80::2", "ff02::1:ff00:101", ll, 255);
        assert!(answer(dp, 0, up, &packet(ethertype::IPV6, &f).unwrap(), HOST).is_some());
        // Not from the VR's own vif, not for DAD, not for others, not when standby.
        let vif = dp.vrs[0].interfaces[0].vif;
        assert!(answer(dp, 0, vif, &ns, HOST).is_none());
        let dad = solicitation("::", "ff02::1:ff00:1", "2001:db8:1::1", 255);
        assert!(answer(dp, 0, up, &packet(ethertype::IPV6, &dad).unwrap(), HOST).is_none());
        let other = solicitation("2001:db8:1::2", "ff02::1:ff00:9", "2001:db8:1::9", 255);
        assert!(answer(dp, 0, up, &packet(ethertype::IPV6, &other).unwrap(), HOST).is_none());
        assert!(dp.vrs[0].transition(VrState::Active, VrState::Standby));
        assert!(answer(dp, 0, up, &ns, HOST).is_none());
    }

    #[test]
    fn an_arrived_vr_advertises_every_address_to_all_nodes() {
        let t = dataplane();
        let dp = &t.dp;
        let sent: Vec<(usize, Ndp)> = unsolicited(dp, 0)
            .map(|(port, f)| (port, packet(ethertype::IPV6, &f).expect("valid")))
            .collect();
        let targets: Vec<(usize, Ipv6Addr)> = sent.iter().map(|(p, n)| (*p, n.target)).collect();
        let (up1, up2) = (dp.segments[0].uplink, dp.segments[1].uplink);
        assert_eq!(
            targets,
            [
                (up1, v6("fe80::ff:fe00:101")),
                (up1, v6("2001:db8:1::1")),
                (up2, v6("fe80::ff:fe00:102")),
                (up2, v6("2001:db8:2::1"))
            ]
        );
        assert!(sent
            .iter()
            .all(|(_, n)| n.dst == ALL_NODES.0 && n.link.is_some()));
        assert_eq!(unsolicited(dp, 1).count(), 1, "VR 2: its link-local only");
    }

    #[test]
    fn a_guest_speaks_only_for_its_own_addresses_and_macs() {
        let t = dataplane();
        let ifc = &t.dp.vrs[0].interfaces[0];
        let na = |target: &str, link| Ndp {
            kind: Kind::Advertisement,
            src: v6(target),
            dst: v6("ff02::1"),
            target: v6(target),
            link,
        };
        assert!(speaks_for(ifc, &na("2001:db8:1::1", Some(VR1_LAN1_MAC))));
        assert!(speaks_for(ifc, &na("fe80::ff:fe00:101", None)));
        assert!(!speaks_for(ifc, &na("2001:db8:1::2", Some(VR1_LAN1_MAC))));
        assert!(!speaks_for(ifc, &na("2001:db8:1::1", Some(VR2_LAN1_MAC))));
        assert!(!speaks_for(ifc, &na("2001:db8:1::1", Some(VR1_LAN2_MAC))));
        let ns = |src: &str| Ndp {
            kind: Kind::Solicitation,
            src: v6(src),
            dst: v6("ff02::1:ff00:2"),
            target: v6("2001:db8:1::2"),
            link: None,
        };
        assert!(speaks_for(ifc, &ns("2001:db8:1::1")));
        assert!(speaks_for(ifc, &ns("::")), "duplicate address detection");
        assert!(!speaks_for(ifc, &ns("2001:db8:1::99")));
    }
}
