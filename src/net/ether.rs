//! Ethernet II framing and MAC addresses.

/// Length of an Ethernet header without VLAN tag.
pub const HEADER_LEN: usize = 14;
pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_RARP: u16 = 0x8035;

pub use vrfwd_proto::MacAddr;

/// The fields of an Ethernet header vrfwd switches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub dst: MacAddr,
    pub src: MacAddr,
    pub ethertype: u16,
}

/// Parses the Ethernet header of `frame`; None if the frame is shorter than one.
#[inline(always)]
pub fn parse(frame: &[u8]) -> Option<Header> {
    let h = frame.get(..HEADER_LEN)?;
    Some(Header {
        dst: MacAddr::from_slice(&h[0..6]),
        src: MacAddr::from_slice(&h[6..12]),
        ethertype: u16::from_be_bytes([h[12], h[13]]),
    })
}

/// Rewrites destination and source MAC in place (frame is at least a header long).
#[inline(always)]
pub fn set_addresses(frame: &mut [u8], dst: MacAddr, src: MacAddr) {
    frame[0..6].copy_from_slice(&dst.0);
    frame[6..12].copy_from_slice(&src.0);
}

/// Rewrites the source MAC in place (frame is at least a header long).
#[inline(always)]
pub fn set_source(frame: &mut [u8], src: MacAddr) {
    frame[6..12].copy_from_slice(&src.0);
}

/// Builds an Ethernet header (tests, benchmarks and the demo's traffic).
pub fn header(dst: MacAddr, src: MacAddr, ethertype: u16) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..6].copy_from_slice(&dst.0);
    h[6..12].copy_from_slice(&src.0);
    h[12..14].copy_from_slice(&ethertype.to_be_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_needs_a_whole_header() {
        let h = header(
            MacAddr::BROADCAST,
            MacAddr([2, 0, 0, 0, 0, 1]),
            ETHERTYPE_ARP,
        );
        for len in 0..HEADER_LEN {
            assert!(parse(&h[..len]).is_none());
        }
        let p = parse(&h).unwrap();
        assert_eq!((p.dst, p.ethertype), (MacAddr::BROADCAST, ETHERTYPE_ARP));
    }
}
