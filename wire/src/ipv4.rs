//! IPv4 headers (RFC 791): a checked view over at least the 20 fixed bytes, the TTL
//! decrement with an incremental checksum update, and a header builder.
use crate::{checksum, Error};
use std::net::Ipv4Addr;

/// Length of an IPv4 header without options.
pub const HEADER_LEN: usize = 20;

mod field {
    use core::ops::Range;
    pub const VERSION_IHL: usize = 0;
    pub const TOTAL_LEN: Range<usize> = 2..4;
    pub const FLAGS: usize = 6;
    pub const FRAGMENT: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC: Range<usize> = 12..16;
    pub const DST: Range<usize> = 16..20;
}

/// An IPv4 packet over a buffer at least [`HEADER_LEN`] long. Fields beyond the
/// fixed header (options, payload) are the reader's to check against
/// [`Ipv4Packet::header_len`] and [`Ipv4Packet::total_len`].
#[derive(Debug, Clone, Copy)]
pub struct Ipv4Packet<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps `buffer`, or `Error::Truncated` when it is shorter than the fixed header.
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Ipv4Packet { buffer })
    }

    #[inline(always)]
    fn header(&self) -> &[u8; HEADER_LEN] {
        crate::fixed(self.buffer.as_ref())
    }

    /// Bytes in the buffer from the start of the header.
    #[inline(always)]
    pub fn buffer_len(&self) -> usize {
        self.buffer.as_ref().len()
    }

    #[inline(always)]
    pub fn version(&self) -> u8 {
        self.header()[field::VERSION_IHL] >> 4
    }

    /// The header's length in bytes, options included (IHL × 4).
    #[inline(always)]
    pub fn header_len(&self) -> usize {
        usize::from(self.header()[field::VERSION_IHL] & 0x0f) * 4
    }

    #[inline(always)]
    pub fn total_len(&self) -> usize {
        usize::from(crate::be16(self.header(), field::TOTAL_LEN))
    }

    #[inline(always)]
    pub fn ttl(&self) -> u8 {
        self.header()[field::TTL]
    }

    #[inline(always)]
    pub fn protocol(&self) -> u8 {
        self.header()[field::PROTOCOL]
    }

    #[inline(always)]
    pub fn checksum(&self) -> u16 {
        crate::be16(self.header(), field::CHECKSUM)
    }

    /// Whether this is a fragment (more fragments follow, or an offset past
    /// the first): only the first carries the transport header, so no
    /// fragment's ports identify its flow.
    #[inline(always)]
    pub fn is_fragment(&self) -> bool {
        crate::be16(self.header(), field::FRAGMENT) & 0x3fff != 0
    }

    #[inline(always)]
    pub fn src(&self) -> Ipv4Addr {
        crate::ipv4_addr(self.header(), field::SRC)
    }

    #[inline(always)]
    pub fn dst(&self) -> Ipv4Addr {
        crate::ipv4_addr(self.header(), field::DST)
    }

    /// Whether the fixed header's checksum verifies (a header with options is
    /// checked over its fixed part only: the fast path never takes one).
    #[inline(always)]
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(self.header()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    #[inline(always)]
    fn header_mut(&mut self) -> &mut [u8; HEADER_LEN] {
        crate::fixed_mut(self.buffer.as_mut())
    }

    #[inline(always)]
    pub fn set_checksum(&mut self, value: u16) {
        self.header_mut()[field::CHECKSUM].copy_from_slice(&value.to_be_bytes());
    }

    /// Computes and writes the fixed header's checksum.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.header());
        self.set_checksum(c);
    }

    /// Decrements the TTL and patches the checksum incrementally (RFC 1624); false,
    /// and nothing written, when the TTL is already 0.
    #[inline(always)]
    pub fn decrement_ttl(&mut self) -> bool {
        let ttl = self.ttl();
        if ttl == 0 {
            return false;
        }
        let old_checksum = self.checksum();
        let h = self.header_mut();
        let word = |h: &[u8; HEADER_LEN]| u16::from_be_bytes([h[field::TTL], h[field::TTL + 1]]);
        let old = word(h);
        h[field::TTL] = ttl - 1;
        let new = word(h);
        self.set_checksum(checksum::adjust(old_checksum, old, new));
        true
    }
}

/// A 20-byte header with a correct checksum (tests, benchmarks, the demo).
pub fn header(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ttl: u8,
    protocol: u8,
    payload_len: u16,
) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[field::VERSION_IHL] = 0x45;
    h[field::TOTAL_LEN].copy_from_slice(&(HEADER_LEN as u16 + payload_len).to_be_bytes());
    h[field::FLAGS] = 0x40; // don't fragment
    h[field::TTL] = ttl;
    h[field::PROTOCOL] = protocol;
    h[field::SRC].copy_from_slice(&src.octets());
    h[field::DST].copy_from_slice(&dst.octets());
    Ipv4Packet::new_checked(&mut h[..])
        .expect("a header's length")
        .fill_checksum();
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn valid() -> [u8; HEADER_LEN] {
        header(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 1, 2, 3),
            64,
            17,
            8,
        )
    }

    #[test]
    fn reads_every_field_of_a_built_header() {
        let h = valid();
        let p = Ipv4Packet::new_checked(&h[..]).unwrap();
        assert_eq!((p.version(), p.header_len(), p.total_len()), (4, 20, 28));
        assert_eq!((p.ttl(), p.protocol()), (64, 17));
        assert_eq!(p.src(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(p.dst(), Ipv4Addr::new(10, 1, 2, 3));
        assert!(p.verify_checksum());
        assert!(!p.is_fragment());
        for (flags, fragment) in [([0x40, 0], false), ([0x20, 0], true), ([0, 1], true)] {
            let mut f = h;
            f[6..8].copy_from_slice(&flags);
            let p = Ipv4Packet::new_checked(&f[..]).unwrap();
            assert_eq!(p.is_fragment(), fragment, "{flags:?}");
        }
        for len in 0..HEADER_LEN {
            assert_eq!(
                Ipv4Packet::new_checked(&h[..len]).err(),
                Some(Error::Truncated)
            );
        }
    }

    #[test]
    fn ttl_zero_is_not_decremented() {
        let mut h = header(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, 0, 17, 0);
        let before = h;
        assert!(!Ipv4Packet::new_checked(&mut h[..]).unwrap().decrement_ttl());
        assert_eq!(h, before);
    }

    proptest! {
        /// The incremental update equals a full recomputation for any header.
        #[test]
        fn incremental_checksum_equals_full(
            mut h in proptest::array::uniform20(any::<u8>()),
            ttl in 1u8..=255,
        ) {
            h[field::TTL] = ttl;
            let mut p = Ipv4Packet::new_checked(&mut h[..]).unwrap();
            p.fill_checksum();
            prop_assert!(p.decrement_ttl());
            prop_assert_eq!(p.ttl(), ttl - 1);
            prop_assert!(p.verify_checksum());
            let stored = p.checksum();
            p.fill_checksum();
            let full = p.checksum();
            // 0x0000 and 0xffff both encode a zero sum; RFC 1624 yields the form
            // that verifies.
            prop_assert!(stored == full || (stored ^ full) == 0xffff && (stored == 0 || full == 0));
        }
    }
}
