//! ARP for IPv4 over Ethernet (RFC 826): what neighbour snooping reads, the
//! replies vrfwd gives for a VR's own addresses, and migration announcements.
use super::MacAddr;
use std::net::Ipv4Addr;

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;
pub const OP_REQUEST: u16 = 1;
pub const OP_REPLY: u16 = 2;
/// RARP "request reverse" (RFC 903), which QEMU sends to announce a NIC.
pub const OP_REVERSE_REQUEST: u16 = 3;

/// The addresses an ARP packet carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arp {
    pub op: u16,
    pub sender_mac: MacAddr,
    pub sender_ip: Ipv4Addr,
    pub target_mac: MacAddr,
    pub target_ip: Ipv4Addr,
}

/// Parses the ARP payload of a frame (after the Ethernet header). None unless it is
/// Ethernet/IPv4 ARP of full length.
pub fn parse(payload: &[u8]) -> Option<Arp> {
    let p = payload.get(..PACKET_LEN)?;
    let ip = |o: usize| Ipv4Addr::new(p[o], p[o + 1], p[o + 2], p[o + 3]);
    (p[0..6] == [0, 1, 0x08, 0x00, 6, 4]).then(|| Arp {
        op: u16::from_be_bytes([p[6], p[7]]),
        sender_mac: MacAddr::from_slice(&p[8..14]),
        sender_ip: ip(14),
        target_mac: MacAddr::from_slice(&p[18..24]),
        target_ip: ip(24),
    })
}

/// Encodes an ARP packet (tests, the demo, gratuitous announcements).
pub fn encode(a: &Arp) -> [u8; PACKET_LEN] {
    let mut p = [0u8; PACKET_LEN];
    p[0..6].copy_from_slice(&[0, 1, 0x08, 0x00, 6, 4]);
    p[6..8].copy_from_slice(&a.op.to_be_bytes());
    p[8..14].copy_from_slice(&a.sender_mac.0);
    p[14..18].copy_from_slice(&a.sender_ip.octets());
    p[18..24].copy_from_slice(&a.target_mac.0);
    p[24..28].copy_from_slice(&a.target_ip.octets());
    p
}

/// Whether a frame of `ethertype` carrying `a` from `src` announces that `src`
/// moved here: QEMU's RARP after a live migration, or a gratuitous ARP (Xen's
/// netfront after resume, a guest's own announcement).
pub fn announces(ethertype: u16, src: MacAddr, a: &Arp) -> bool {
    match ethertype {
        super::ether::ETHERTYPE_RARP => a.op == OP_REVERSE_REQUEST && a.sender_mac == src,
        super::ether::ETHERTYPE_ARP => a.sender_ip == a.target_ip && a.sender_mac == src,
        _ => false,
    }
}

/// The reply that `owner` (MAC, address) sends to `request`, padded to the
/// Ethernet minimum, or None when `request` is not a request for an address of
/// someone else's to answer: only a request from a real station (not a probe
/// from 0.0.0.0, not a gratuitous ARP) for `owner`'s address.
pub fn reply_to(request: &Arp, owner: (MacAddr, Ipv4Addr)) -> Option<[u8; 60]> {
    let (mac, ip) = owner;
    let real = request.op == OP_REQUEST
        && request.target_ip == ip
        && request.sender_ip != request.target_ip
        && !request.sender_ip.is_unspecified()
        && !request.sender_mac.is_multicast()
        && !request.sender_mac.is_zero();
    if !real {
        return None;
    }
    let mut f = [0u8; 60];
    let header = super::ether::header(request.sender_mac, mac, super::ether::ETHERTYPE_ARP);
    f[..super::ether::HEADER_LEN].copy_from_slice(&header);
    let body = encode(&Arp {
        op: OP_REPLY,
        sender_mac: mac,
        sender_ip: ip,
        target_mac: request.sender_mac,
        target_ip: request.sender_ip,
    });
    f[super::ether::HEADER_LEN..super::ether::HEADER_LEN + PACKET_LEN].copy_from_slice(&body);
    Some(f)
}

/// The frame vrfwd sends to announce `mac` on a segment: a broadcast RARP as QEMU
/// sends it, padded to the Ethernet minimum, so that switches learn its port.
pub fn rarp_announcement(mac: MacAddr) -> [u8; 60] {
    let mut f = [0u8; 60];
    let header = super::ether::header(MacAddr::BROADCAST, mac, super::ether::ETHERTYPE_RARP);
    f[..super::ether::HEADER_LEN].copy_from_slice(&header);
    let unspecified = Ipv4Addr::UNSPECIFIED;
    let body = encode(&Arp {
        op: OP_REVERSE_REQUEST,
        sender_mac: mac,
        sender_ip: unspecified,
        target_mac: mac,
        target_ip: unspecified,
    });
    f[super::ether::HEADER_LEN..super::ether::HEADER_LEN + PACKET_LEN].copy_from_slice(&body);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_only_to_real_requests_for_the_owner() {
        let vr = (MacAddr([2, 0, 0, 0, 1, 1]), Ipv4Addr::new(10, 0, 1, 1));
        let host = MacAddr([2, 0, 0, 0, 0xaa, 2]);
        let request = Arp {
            op: OP_REQUEST,
            sender_mac: host,
            sender_ip: Ipv4Addr::new(10, 0, 1, 2),
            target_mac: MacAddr::default(),
            target_ip: vr.1,
        };
        let f = reply_to(&request, vr).expect("a reply");
        let eth = super::super::ether::parse(&f).unwrap();
        assert_eq!((eth.dst, eth.src), (host, vr.0));
        let r = parse(&f[super::super::ether::HEADER_LEN..]).unwrap();
        assert_eq!(
            r,
            Arp {
                op: OP_REPLY,
                sender_mac: vr.0,
                sender_ip: vr.1,
                target_mac: host,
                target_ip: request.sender_ip,
            }
        );
        let not_ours = Arp {
            target_ip: Ipv4Addr::new(10, 0, 1, 9),
            ..request
        };
        let probe = Arp {
            sender_ip: Ipv4Addr::UNSPECIFIED,
            ..request
        };
        let gratuitous = Arp {
            sender_ip: vr.1,
            ..request
        };
        let a_reply = Arp {
            op: OP_REPLY,
            ..request
        };
        for a in [not_ours, probe, gratuitous, a_reply] {
            assert_eq!(reply_to(&a, vr), None, "{a:?}");
        }
    }

    #[test]
    fn round_trip_and_rejects() {
        let a = Arp {
            op: OP_REPLY,
            sender_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            sender_ip: Ipv4Addr::new(10, 0, 0, 1),
            target_mac: MacAddr([2, 0, 0, 0, 0, 2]),
            target_ip: Ipv4Addr::new(10, 0, 0, 2),
        };
        let bytes = encode(&a);
        assert_eq!(parse(&bytes), Some(a));
        for len in 0..PACKET_LEN {
            assert_eq!(parse(&bytes[..len]), None);
        }
        assert!(!announces(
            crate::net::ether::ETHERTYPE_ARP,
            a.sender_mac,
            &a
        ));
        let mut ipv6 = bytes;
        ipv6[2..4].copy_from_slice(&[0x86, 0xdd]);
        assert_eq!(parse(&ipv6), None);
    }

    #[test]
    fn announcements_are_recognised() {
        let mac = MacAddr([0x52, 0x54, 0, 0, 0, 1]);
        let frame = rarp_announcement(mac);
        let eth = crate::net::ether::parse(&frame).unwrap();
        let a = parse(&frame[crate::net::ether::HEADER_LEN..]).unwrap();
        assert!(announces(eth.ethertype, eth.src, &a));
        assert!(!announces(eth.ethertype, MacAddr([2, 0, 0, 0, 0, 9]), &a));
        let ip = Ipv4Addr::new(10, 0, 0, 1);
        let garp = Arp {
            op: OP_REQUEST,
            sender_mac: mac,
            sender_ip: ip,
            target_mac: MacAddr::default(),
            target_ip: ip,
        };
        assert!(announces(crate::net::ether::ETHERTYPE_ARP, mac, &garp));
    }
}
