//! ARP for IPv4 over Ethernet (RFC 826): only what neighbour snooping reads.
use super::MacAddr;
use std::net::Ipv4Addr;

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;
pub const OP_REQUEST: u16 = 1;
pub const OP_REPLY: u16 = 2;

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

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut ipv6 = bytes;
        ipv6[2..4].copy_from_slice(&[0x86, 0xdd]);
        assert_eq!(parse(&ipv6), None);
    }
}
