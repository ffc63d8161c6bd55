//! Ethernet II frames (no VLAN tag): a checked view and a header builder.
use crate::{Error, MacAddr};

/// Length of an Ethernet header without VLAN tag.
pub const HEADER_LEN: usize = 14;
/// The smallest frame on the wire without its FCS; shorter frames vrfwd makes are padded.
pub const MIN_FRAME_LEN: usize = 60;

/// The EtherTypes vrfwd tells apart.
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const RARP: u16 = 0x8035;
    pub const IPV6: u16 = 0x86dd;
}

mod field {
    use core::ops::Range;
    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
}

/// An Ethernet frame over a buffer at least [`HEADER_LEN`] long.
#[derive(Debug, Clone, Copy)]
pub struct EthernetFrame<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps `buffer`, or `Error::Truncated` when it is shorter than a header.
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(EthernetFrame { buffer })
    }

    #[inline(always)]
    fn header(&self) -> &[u8; HEADER_LEN] {
        crate::fixed(self.buffer.as_ref())
    }

    #[inline(always)]
    pub fn dst(&self) -> MacAddr {
        MacAddr::from_slice(&self.header()[field::DST])
    }

    #[inline(always)]
    pub fn src(&self) -> MacAddr {
        MacAddr::from_slice(&self.header()[field::SRC])
    }

    #[inline(always)]
    pub fn ethertype(&self) -> u16 {
        crate::be16(self.header(), field::ETHERTYPE)
    }

    /// What follows the header.
    #[inline(always)]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// The whole frame.
    #[inline(always)]
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    #[inline(always)]
    fn header_mut(&mut self) -> &mut [u8; HEADER_LEN] {
        crate::fixed_mut(self.buffer.as_mut())
    }

    #[inline(always)]
    pub fn set_dst(&mut self, mac: MacAddr) {
        self.header_mut()[field::DST].copy_from_slice(&mac.0);
    }

    #[inline(always)]
    pub fn set_src(&mut self, mac: MacAddr) {
        self.header_mut()[field::SRC].copy_from_slice(&mac.0);
    }

    #[inline(always)]
    pub fn set_ethertype(&mut self, ethertype: u16) {
        self.header_mut()[field::ETHERTYPE].copy_from_slice(&ethertype.to_be_bytes());
    }

    /// What follows the header, to write.
    #[inline(always)]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// An Ethernet header (tests, benchmarks, the frames vrfwd makes).
pub fn header(dst: MacAddr, src: MacAddr, ethertype: u16) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    let mut f = EthernetFrame::new_checked(&mut h[..]).expect("a header's length");
    f.set_dst(dst);
    f.set_src(src);
    f.set_ethertype(ethertype);
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_a_whole_header_and_reads_its_fields() {
        let src = MacAddr([2, 0, 0, 0, 0, 1]);
        let h = header(MacAddr::BROADCAST, src, ethertype::ARP);
        for len in 0..HEADER_LEN {
            assert_eq!(
                EthernetFrame::new_checked(&h[..len]).err(),
                Some(Error::Truncated)
            );
        }
        let f = EthernetFrame::new_checked(&h[..]).unwrap();
        assert_eq!(
            (f.dst(), f.src(), f.ethertype()),
            (MacAddr::BROADCAST, src, ethertype::ARP)
        );
        assert!(f.payload().is_empty());
    }

    #[test]
    fn setters_write_their_field_only() {
        let mut buf = [0xeeu8; 20];
        let mut f = EthernetFrame::new_checked(&mut buf[..]).unwrap();
        f.set_src(MacAddr([2, 0, 0, 0, 0, 9]));
        f.set_dst(MacAddr([2, 0, 0, 0, 0, 8]));
        assert_eq!(&buf[..12], &[2, 0, 0, 0, 0, 8, 2, 0, 0, 0, 0, 9]);
        assert_eq!(&buf[12..], &[0xee; 8]);
    }
}
