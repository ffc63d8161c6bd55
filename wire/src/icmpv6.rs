//! ICMPv6 (RFC 4443): a checked view over a message's 4-byte header, the message
//! types vrfwd tells apart, and the checksum over the IPv6 pseudo-header
//! (RFC 8200 §8.1). Neighbour discovery's messages are [`crate::ndp`]'s.
use crate::{checksum, ipv6, Error};
use std::net::Ipv6Addr;

/// Length of the ICMPv6 header (type, code, checksum).
pub const HEADER_LEN: usize = 4;

/// Message types (IANA "ICMPv6 Parameters").
pub mod kind {
    pub const DESTINATION_UNREACHABLE: u8 = 1;
    pub const PACKET_TOO_BIG: u8 = 2;
    pub const TIME_EXCEEDED: u8 = 3;
    pub const PARAMETER_PROBLEM: u8 = 4;
    pub const ECHO_REQUEST: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
    pub const MLD_QUERY: u8 = 130;
    pub const MLD_REPORT: u8 = 131;
    pub const MLD_DONE: u8 = 132;
    pub const ROUTER_SOLICITATION: u8 = 133;
    pub const ROUTER_ADVERTISEMENT: u8 = 134;
    pub const NEIGHBOR_SOLICITATION: u8 = 135;
    pub const NEIGHBOR_ADVERTISEMENT: u8 = 136;
    pub const REDIRECT: u8 = 137;
    pub const MLD2_REPORT: u8 = 143;
}

mod field {
    use core::ops::Range;
    pub const KIND: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
}

/// An ICMPv6 message over a buffer at least [`HEADER_LEN`] long: the buffer is
/// the whole message (the IPv6 payload), which the checksum covers.
#[derive(Debug, Clone, Copy)]
pub struct Icmpv6Packet<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    /// Wraps `buffer`, or `Error::Truncated` when it is shorter than the header.
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Icmpv6Packet { buffer })
    }

    #[inline(always)]
    pub fn kind(&self) -> u8 {
        self.buffer.as_ref()[field::KIND]
    }

    #[inline(always)]
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    #[inline(always)]
    pub fn checksum(&self) -> u16 {
        crate::be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The whole message, header included.
    #[inline(always)]
    pub fn message(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Whether the checksum verifies for a message from `src` to `dst`.
    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        sum(src, dst, self.message()) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
    /// Computes and writes the checksum for a message from `src` to `dst`.
    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&[0, 0]);
        let c = !sum(src, dst, self.message());
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
    }
}

/// The folded one's-complement sum of the pseudo-header (source, destination,
/// upper-layer length, next header 58) and `message`.
fn sum(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> u16 {
    let mut pseudo = [0u8; 40];
    pseudo[..16].copy_from_slice(&src.octets());
    pseudo[16..32].copy_from_slice(&dst.octets());
    pseudo[32..36].copy_from_slice(&(message.len() as u32).to_be_bytes());
    pseudo[39] = ipv6::next_header::ICMPV6;
    checksum::fold(checksum::sum_words(&pseudo) + checksum::sum_words(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0x0200, 0, 0, 1);
    const DST: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 2);

    #[test]
    fn a_filled_checksum_verifies_and_any_flipped_bit_fails_it() {
        let mut m = vec![
            kind::ECHO_REQUEST,
            0,
            0,
            0,
            0x12,
            0x34,
            0,
            1,
            b'h',
            b'i',
            b'!',
        ];
        Icmpv6Packet::new_checked(&mut m[..])
            .unwrap()
            .fill_checksum(SRC, DST);
        let p = Icmpv6Packet::new_checked(&m[..]).unwrap();
        assert_eq!((p.kind(), p.code()), (kind::ECHO_REQUEST, 0));
        assert!(p.verify_checksum(SRC, DST));
        for bit in 0..m.len() * 8 {
            let mut bad = m.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(
                !Icmpv6Packet::new_checked(&bad[..])
                    .unwrap()
                    .verify_checksum(SRC, DST),
                "bit {bit}"
            );
        }
    }

    #[test]
    fn the_pseudo_header_counts() {
        let mut m = vec![kind::ECHO_REPLY, 0, 0, 0, 0, 0, 0, 0];
        Icmpv6Packet::new_checked(&mut m[..])
            .unwrap()
            .fill_checksum(SRC, DST);
        let p = Icmpv6Packet::new_checked(&m[..]).unwrap();
        let other = Ipv6Addr::new(0xfe80, 0, 0, 0, 0x0200, 0, 0, 2);
        assert!(!p.verify_checksum(other, DST));
        assert!(!p.verify_checksum(SRC, other));
        // The length is in the pseudo-header too: a trailing zero byte changes it.
        let mut longer = m.clone();
        longer.extend_from_slice(&[0, 0]);
        assert!(!Icmpv6Packet::new_checked(&longer[..])
            .unwrap()
            .verify_checksum(SRC, DST));
    }

    #[test]
    fn shorter_than_the_header_is_truncated() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                Icmpv6Packet::new_checked(&[0u8; HEADER_LEN][..len]).err(),
                Some(Error::Truncated)
            );
        }
    }
}
