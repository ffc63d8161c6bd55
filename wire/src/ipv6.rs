//! IPv6 headers (RFC 8200): a checked view over the 40 fixed bytes, the hop-limit
//! decrement (IPv6 has no header checksum), the next-header values that name an
//! extension header, and a header builder. Extension headers themselves are not
//! parsed here: whether a packet carrying one is forwarded is a stage's decision.
use crate::Error;
use std::net::Ipv6Addr;

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;

/// Next-header values (IANA "Assigned Internet Protocol Numbers") this crate names.
pub mod next_header {
    pub const HOP_BY_HOP: u8 = 0;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const ESP: u8 = 50;
    pub const AUTH: u8 = 51;
    pub const ICMPV6: u8 = 58;
    pub const NO_NEXT: u8 = 59;
    pub const DEST_OPTIONS: u8 = 60;
    pub const MOBILITY: u8 = 135;
    pub const HIP: u8 = 139;
    pub const SHIM6: u8 = 140;
    pub const EXPERIMENT_1: u8 = 253;
    pub const EXPERIMENT_2: u8 = 254;
}

/// Whether `value` in a next-header field names an IPv6 extension header (RFC
/// 8200 §4, RFC 7045's list) rather than an upper-layer protocol.
pub fn is_extension_header(value: u8) -> bool {
    use next_header::*;
    matches!(
        value,
        HOP_BY_HOP
            | ROUTING
            | FRAGMENT
            | ESP
            | AUTH
            | DEST_OPTIONS
            | MOBILITY
            | HIP
            | SHIM6
            | EXPERIMENT_1
            | EXPERIMENT_2
    )
}

mod field {
    use core::ops::Range;
    pub const VERSION_CLASS_FLOW: Range<usize> = 0..4;
    pub const PAYLOAD_LEN: Range<usize> = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Range<usize> = 8..24;
    pub const DST: Range<usize> = 24..40;
}

/// An IPv6 packet over a buffer at least [`HEADER_LEN`] long. The payload is the
/// reader's to check against [`Ipv6Packet::payload_len`].
#[derive(Debug, Clone, Copy)]
pub struct Ipv6Packet<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wraps `buffer`, or `Error::Truncated` when it is shorter than the fixed header.
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Ipv6Packet { buffer })
    }

    #[inline(always)]
    fn header(&self) -> &[u8; HEADER_LEN] {
        crate::fixed(self.buffer.as_ref())
    }

    #[inline(always)]
    fn first_word(&self) -> u32 {
        let h = self.header();
        u32::from_be_bytes(
            h[field::VERSION_CLASS_FLOW]
                .try_into()
                .expect("a four-byte field"),
        )
    }

    /// Bytes in the buffer from the start of the header.
    #[inline(always)]
    pub fn buffer_len(&self) -> usize {
        self.buffer.as_ref().len()
    }

    #[inline(always)]
    pub fn version(&self) -> u8 {
        (self.first_word() >> 28) as u8
    }

    #[inline(always)]
    pub fn traffic_class(&self) -> u8 {
        (self.first_word() >> 20) as u8
    }

    #[inline(always)]
    pub fn flow_label(&self) -> u32 {
        self.first_word() & 0x000f_ffff
    }

    /// Bytes after the fixed header (extension headers included), as the header says.
    #[inline(always)]
    pub fn payload_len(&self) -> usize {
        usize::from(crate::be16(self.header(), field::PAYLOAD_LEN))
    }

    #[inline(always)]
    pub fn next_header(&self) -> u8 {
        self.header()[field::NEXT_HEADER]
    }

    #[inline(always)]
    pub fn hop_limit(&self) -> u8 {
        self.header()[field::HOP_LIMIT]
    }

    #[inline(always)]
    pub fn src(&self) -> Ipv6Addr {
        crate::ipv6_addr(self.header(), field::SRC)
    }

    #[inline(always)]
    pub fn dst(&self) -> Ipv6Addr {
        crate::ipv6_addr(self.header(), field::DST)
    }

    /// The payload as far as the header's payload length and the buffer both
    /// reach; `Error::Truncated` when the buffer holds less than the header says.
    pub fn payload(&self) -> Result<&[u8], Error> {
        let end = HEADER_LEN + self.payload_len();
        self.buffer
            .as_ref()
            .get(HEADER_LEN..end)
            .ok_or(Error::Truncated)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    #[inline(always)]
    fn header_mut(&mut self) -> &mut [u8; HEADER_LEN] {
        crate::fixed_mut(self.buffer.as_mut())
    }

    /// Decrements the hop limit; false, and nothing written, when it is already 0.
    #[inline(always)]
    pub fn decrement_hop_limit(&mut self) -> bool {
        let h = self.header_mut();
        match h[field::HOP_LIMIT].checked_sub(1) {
            Some(left) => {
                h[field::HOP_LIMIT] = left;
                true
            }
            None => false,
        }
    }
}

/// A 40-byte header (tests, benchmarks, the demo).
pub fn header(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop_limit: u8,
    next_header: u8,
    payload_len: u16,
) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[field::VERSION_CLASS_FLOW].copy_from_slice(&(6u32 << 28).to_be_bytes());
    h[field::PAYLOAD_LEN].copy_from_slice(&payload_len.to_be_bytes());
    h[field::NEXT_HEADER] = next_header;
    h[field::HOP_LIMIT] = hop_limit;
    h[field::SRC].copy_from_slice(&src.octets());
    h[field::DST].copy_from_slice(&dst.octets());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 1);
    const DST: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 0x22);

    #[test]
    fn reads_every_field_of_a_built_header() {
        let mut h = header(SRC, DST, 64, next_header::UDP, 8);
        // Traffic class 0xb8 (EF), flow label 0x12345.
        h[..4].copy_from_slice(&((6u32 << 28) | (0xb8 << 20) | 0x12345).to_be_bytes());
        let p = Ipv6Packet::new_checked(&h[..]).unwrap();
        assert_eq!(
            (p.version(), p.traffic_class(), p.flow_label()),
            (6, 0xb8, 0x12345)
        );
        assert_eq!(
            (p.payload_len(), p.next_header(), p.hop_limit()),
            (8, 17, 64)
        );
        assert_eq!((p.src(), p.dst()), (SRC, DST));
        for len in 0..HEADER_LEN {
            assert_eq!(
                Ipv6Packet::new_checked(&h[..len]).err(),
                Some(Error::Truncated)
            );
        }
    }

    #[test]
    fn the_payload_is_what_both_the_header_and_the_buffer_hold() {
        let mut packet = header(SRC, DST, 64, next_header::UDP, 8).to_vec();
        packet.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8, 0xee]); // one byte of padding
        let p = Ipv6Packet::new_checked(&packet[..]).unwrap();
        assert_eq!(p.payload(), Ok(&[1, 2, 3, 4, 5, 6, 7, 8][..]));
        let short = Ipv6Packet::new_checked(&packet[..HEADER_LEN + 7]).unwrap();
        assert_eq!(short.payload(), Err(Error::Truncated));
    }

    #[test]
    fn hop_limit_counts_down_to_zero_and_stops() {
        let mut h = header(SRC, DST, 2, next_header::ICMPV6, 0);
        let mut p = Ipv6Packet::new_checked(&mut h[..]).unwrap();
        assert!(p.decrement_hop_limit());
        assert!(p.decrement_hop_limit());
        assert_eq!(p.hop_limit(), 0);
        let before = h;
        assert!(!Ipv6Packet::new_checked(&mut h[..])
            .unwrap()
            .decrement_hop_limit());
        assert_eq!(h, before, "nothing written at 0");
    }

    #[test]
    fn extension_headers_are_told_from_upper_layers() {
        for ext in [0, 43, 44, 50, 51, 60, 135, 139, 140, 253, 254] {
            assert!(is_extension_header(ext), "{ext}");
        }
        for upper in [6, 17, 58, 59, 4, 41, 132] {
            assert!(!is_extension_header(upper), "{upper}");
        }
    }
}
