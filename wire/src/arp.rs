//! ARP and RARP for IPv4 over Ethernet (RFC 826, RFC 903): a checked view, the
//! addresses a packet carries as plain data, and the frames vrfwd builds from them.
use crate::ethernet::{self, EthernetFrame};
use crate::{Error, MacAddr};
use std::net::Ipv4Addr;

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;
pub const OP_REQUEST: u16 = 1;
pub const OP_REPLY: u16 = 2;
/// RARP "request reverse" (RFC 903), which QEMU sends to announce a NIC.
pub const OP_REVERSE_REQUEST: u16 = 3;

/// Hardware type Ethernet, protocol IPv4, address lengths 6 and 4.
const ETHERNET_IPV4: [u8; 6] = [0, 1, 0x08, 0x00, 6, 4];

mod field {
    use core::ops::Range;
    pub const FORMAT: Range<usize> = 0..6;
    pub const OP: Range<usize> = 6..8;
    pub const SENDER_MAC: Range<usize> = 8..14;
    pub const SENDER_IP: Range<usize> = 14..18;
    pub const TARGET_MAC: Range<usize> = 18..24;
    pub const TARGET_IP: Range<usize> = 24..28;
}

/// An Ethernet/IPv4 ARP packet over a buffer at least [`PACKET_LEN`] long.
#[derive(Debug, Clone, Copy)]
pub struct ArpPacket<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps `buffer`: `Truncated` when shorter than a packet, `Unsupported` when
    /// it is not ARP for IPv4 over Ethernet.
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let b = buffer.as_ref();
        if b.len() < PACKET_LEN {
            return Err(Error::Truncated);
        }
        if b[field::FORMAT] != ETHERNET_IPV4 {
            return Err(Error::Unsupported);
        }
        Ok(ArpPacket { buffer })
    }

    #[inline(always)]
    fn packet(&self) -> &[u8; PACKET_LEN] {
        crate::fixed(self.buffer.as_ref())
    }

    pub fn op(&self) -> u16 {
        crate::be16(self.packet(), field::OP)
    }

    pub fn sender_mac(&self) -> MacAddr {
        MacAddr::from_slice(&self.packet()[field::SENDER_MAC])
    }

    pub fn sender_ip(&self) -> Ipv4Addr {
        crate::ipv4_addr(self.packet(), field::SENDER_IP)
    }

    pub fn target_mac(&self) -> MacAddr {
        MacAddr::from_slice(&self.packet()[field::TARGET_MAC])
    }

    pub fn target_ip(&self) -> Ipv4Addr {
        crate::ipv4_addr(self.packet(), field::TARGET_IP)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    fn packet_mut(&mut self) -> &mut [u8; PACKET_LEN] {
        crate::fixed_mut(self.buffer.as_mut())
    }

    /// Writes every field of `arp` (the format included).
    pub fn fill(&mut self, arp: &Arp) {
        let p = self.packet_mut();
        p[field::FORMAT].copy_from_slice(&ETHERNET_IPV4);
        p[field::OP].copy_from_slice(&arp.op.to_be_bytes());
        p[field::SENDER_MAC].copy_from_slice(&arp.sender_mac.0);
        p[field::SENDER_IP].copy_from_slice(&arp.sender_ip.octets());
        p[field::TARGET_MAC].copy_from_slice(&arp.target_mac.0);
        p[field::TARGET_IP].copy_from_slice(&arp.target_ip.octets());
    }
}

/// The addresses an ARP packet carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arp {
    pub op: u16,
    pub sender_mac: MacAddr,
    pub sender_ip: Ipv4Addr,
    pub target_mac: MacAddr,
    pub target_ip: Ipv4Addr,
}

impl Arp {
    /// Reads the ARP packet at the start of `payload` (an Ethernet payload).
    pub fn parse(payload: &[u8]) -> Result<Arp, Error> {
        let p = ArpPacket::new_checked(payload)?;
        Ok(Arp {
            op: p.op(),
            sender_mac: p.sender_mac(),
            sender_ip: p.sender_ip(),
            target_mac: p.target_mac(),
            target_ip: p.target_ip(),
        })
    }

    /// The packet's 28 bytes.
    pub fn encode(&self) -> [u8; PACKET_LEN] {
        let mut p = [0u8; PACKET_LEN];
        // A buffer of a packet's length, about to get its format written by `fill`.
        ArpPacket { buffer: &mut p[..] }.fill(self);
        p
    }

    /// A whole frame carrying this packet, padded to the Ethernet minimum.
    pub fn frame(
        &self,
        dst: MacAddr,
        src: MacAddr,
        ethertype: u16,
    ) -> [u8; ethernet::MIN_FRAME_LEN] {
        let mut f = [0u8; ethernet::MIN_FRAME_LEN];
        f[..ethernet::HEADER_LEN].copy_from_slice(&ethernet::header(dst, src, ethertype));
        let mut eth = EthernetFrame::new_checked(&mut f[..]).expect("a minimum frame");
        eth.payload_mut()[..PACKET_LEN].copy_from_slice(&self.encode());
        f
    }
}

/// The frame QEMU sends to announce a NIC after a migration, and vrfwd sends to
/// announce a VR: a broadcast RARP naming `mac`, padded to the Ethernet minimum.
pub fn rarp_announcement(mac: MacAddr) -> [u8; ethernet::MIN_FRAME_LEN] {
    Arp {
        op: OP_REVERSE_REQUEST,
        sender_mac: mac,
        sender_ip: Ipv4Addr::UNSPECIFIED,
        target_mac: mac,
        target_ip: Ipv4Addr::UNSPECIFIED,
    }
    .frame(MacAddr::BROADCAST, mac, ethernet::ethertype::RARP)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Arp {
        Arp {
            op: OP_REPLY,
            sender_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            sender_ip: Ipv4Addr::new(10, 0, 0, 1),
            target_mac: MacAddr([2, 0, 0, 0, 0, 2]),
            target_ip: Ipv4Addr::new(10, 0, 0, 2),
        }
    }

    #[test]
    fn round_trips_and_rejects_short_or_foreign_packets() {
        let a = sample();
        let bytes = a.encode();
        assert_eq!(Arp::parse(&bytes), Ok(a));
        for len in 0..PACKET_LEN {
            assert_eq!(Arp::parse(&bytes[..len]), Err(Error::Truncated));
        }
        let mut ipv6 = bytes;
        ipv6[2..4].copy_from_slice(&[0x86, 0xdd]);
        assert_eq!(Arp::parse(&ipv6), Err(Error::Unsupported));
    }

    #[test]
    fn frames_are_padded_and_addressed() {
        let mac = MacAddr([0x52, 0x54, 0, 0, 0, 1]);
        let f = rarp_announcement(mac);
        let eth = EthernetFrame::new_checked(&f[..]).unwrap();
        assert_eq!(
            (eth.dst(), eth.src(), eth.ethertype()),
            (MacAddr::BROADCAST, mac, ethernet::ethertype::RARP)
        );
        let a = Arp::parse(eth.payload()).unwrap();
        assert_eq!(
            (a.op, a.sender_mac, a.target_mac),
            (OP_REVERSE_REQUEST, mac, mac)
        );
        assert!(f[ethernet::HEADER_LEN + PACKET_LEN..]
            .iter()
            .all(|&b| b == 0));
    }
}
