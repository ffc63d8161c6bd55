//! Neighbour discovery's solicitations and advertisements (RFC 4861 §4.3, §4.4):
//! a checked view over the ICMPv6 message, its options checked whole (a message
//! with an option of length 0, or one that runs past the message, is invalid and
//! must be discarded, §7.1), the link-layer address options for Ethernet, and the
//! advertisement vrfwd sends for a VR's own address.
use crate::icmpv6::{self, Icmpv6Packet};
use crate::{Error, MacAddr};
use std::net::Ipv6Addr;

/// The fixed part of a solicitation or advertisement: ICMPv6 header, 4 bytes of
/// flags or reserved, the 16-byte target.
pub const FIXED_LEN: usize = 24;
/// Option types (RFC 4861 §4.6).
pub const OPTION_SOURCE_LINK_ADDR: u8 = 1;
pub const OPTION_TARGET_LINK_ADDR: u8 = 2;
/// Advertisement flags (the first byte after the ICMPv6 header).
pub const FLAG_ROUTER: u8 = 0x80;
pub const FLAG_SOLICITED: u8 = 0x40;
pub const FLAG_OVERRIDE: u8 = 0x20;

mod field {
    use core::ops::Range;
    pub const FLAGS: usize = 4;
    pub const TARGET: Range<usize> = 8..24;
}

/// Which of the two messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Solicitation,
    Advertisement,
}

/// A neighbour solicitation or advertisement over its whole ICMPv6 message, with
/// its ICMPv6 code 0 and its options well-formed (checked in `new_checked`). The
/// checksum and the IPv6 hop limit of 255 are the caller's to check: they need
/// the IPv6 header.
#[derive(Debug, Clone, Copy)]
pub struct NdpPacket<T> {
    buffer: T,
    kind: Kind,
}

impl<T: AsRef<[u8]>> NdpPacket<T> {
    /// Wraps the ICMPv6 message `buffer`: `Truncated` when shorter than the fixed
    /// part or when an option runs past the end, `Unsupported` for another
    /// ICMPv6 type, a code other than 0, or an option of length 0.
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let b = buffer.as_ref();
        let icmp = Icmpv6Packet::new_checked(b)?;
        let kind = match icmp.kind() {
            icmpv6::kind::NEIGHBOR_SOLICITATION => Kind::Solicitation,
            icmpv6::kind::NEIGHBOR_ADVERTISEMENT => Kind::Advertisement,
            _ => return Err(Error::Unsupported),
        };
        if icmp.code() != 0 {
            return Err(Error::Unsupported);
        }
        if b.len() < FIXED_LEN {
            return Err(Error::Truncated);
        }
        Options(&b[FIXED_LEN..]).try_for_each(|o| o.map(|_| ()))?;
        Ok(NdpPacket { buffer, kind })
    }

    #[inline(always)]
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The address solicited or advertised.
    pub fn target(&self) -> Ipv6Addr {
        crate::ipv6_addr(self.buffer.as_ref(), field::TARGET)
    }

    /// An advertisement's flags ([`FLAG_ROUTER`], …); 0 for a solicitation.
    pub fn flags(&self) -> u8 {
        match self.kind {
            Kind::Advertisement => self.buffer.as_ref()[field::FLAGS] & 0xe0,
            Kind::Solicitation => 0,
        }
    }

    /// The options, each `(type, data)`: the bytes after type and length.
    pub fn options(&self) -> impl Iterator<Item = (u8, &[u8])> {
        Options(&self.buffer.as_ref()[FIXED_LEN..]).map(|o| o.expect("checked in new_checked"))
    }

    /// The Ethernet address in the message's link-layer address option: the
    /// source's in a solicitation, the target's in an advertisement (the first
    /// such option, if any; one of another length is not Ethernet's and ignored).
    pub fn link_layer_address(&self) -> Option<MacAddr> {
        let wanted = match self.kind {
            Kind::Solicitation => OPTION_SOURCE_LINK_ADDR,
            Kind::Advertisement => OPTION_TARGET_LINK_ADDR,
        };
        self.options()
            .find(|&(kind, data)| kind == wanted && data.len() == 6)
            .map(|(_, data)| MacAddr::from_slice(data))
    }
}

/// The options after the fixed part: `Err` for an option of length 0 (which
/// would never end) or one that runs past the message, and nothing after it.
struct Options<'a>(&'a [u8]);

impl<'a> Iterator for Options<'a> {
    type Item = Result<(u8, &'a [u8]), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.0;
        let (&kind, &units) = (rest.first()?, rest.get(1).unwrap_or(&0));
        let len = usize::from(units) * 8;
        let result = match (units, rest.get(2..len)) {
            (0, _) if rest.len() < 2 => Err(Error::Truncated),
            (0, _) => Err(Error::Unsupported),
            (_, None) => Err(Error::Truncated),
            (_, Some(data)) => Ok((kind, data)),
        };
        self.0 = if result.is_ok() { &rest[len..] } else { &[] };
        Some(result)
    }
}

/// A neighbour advertisement for `target` with `flags`, carrying `mac` as the
/// target's link-layer address, its checksum filled for `src` → `dst`: the
/// ICMPv6 message (the IPv6 payload, hop limit 255).
pub fn advertisement(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    target: Ipv6Addr,
    flags: u8,
    mac: MacAddr,
) -> [u8; FIXED_LEN + 8] {
    let mut m = [0u8; FIXED_LEN + 8];
    m[0] = icmpv6::kind::NEIGHBOR_ADVERTISEMENT;
    m[field::FLAGS] = flags & 0xe0;
    m[field::TARGET].copy_from_slice(&target.octets());
    m[FIXED_LEN] = OPTION_TARGET_LINK_ADDR;
    m[FIXED_LEN + 1] = 1;
    m[FIXED_LEN + 2..].copy_from_slice(&mac.0);
    Icmpv6Packet::new_checked(&mut m[..])
        .expect("a message's length")
        .fill_checksum(src, dst);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 2);
    const VR: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 1);
    const MAC: MacAddr = MacAddr([2, 0, 0, 0, 1, 1]);

    /// A solicitation for `VR` from `HOST` with `options` after the fixed part.
    fn solicitation(options: &[u8]) -> Vec<u8> {
        let mut m = vec![icmpv6::kind::NEIGHBOR_SOLICITATION, 0, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(&VR.octets());
        m.extend_from_slice(options);
        Icmpv6Packet::new_checked(&mut m[..])
            .unwrap()
            .fill_checksum(HOST, VR);
        m
    }

    #[test]
    fn a_solicitation_with_and_without_its_source_address() {
        let bare = solicitation(&[]);
        let p = NdpPacket::new_checked(&bare[..]).unwrap();
        assert_eq!(
            (p.kind(), p.target(), p.flags()),
            (Kind::Solicitation, VR, 0)
        );
        assert_eq!(p.link_layer_address(), None);
        assert!(Icmpv6Packet::new_checked(&bare[..])
            .unwrap()
            .verify_checksum(HOST, VR));

        // An unknown option (type 14, nonce: 8 bytes) before the source address.
        let with = solicitation(&[14, 1, 9, 9, 9, 9, 9, 9, 1, 1, 2, 0, 0, 0, 0xaa, 1]);
        let p = NdpPacket::new_checked(&with[..]).unwrap();
        assert_eq!(p.options().count(), 2);
        assert_eq!(p.link_layer_address(), Some(MacAddr([2, 0, 0, 0, 0xaa, 1])));
    }

    #[test]
    fn every_truncation_and_bad_option_is_refused() {
        let m = solicitation(&[1, 1, 2, 0, 0, 0, 0xaa, 1]);
        for len in 0..FIXED_LEN {
            assert_eq!(
                NdpPacket::new_checked(&m[..len]).err(),
                Some(Error::Truncated),
                "{len}"
            );
        }
        // Cut inside the option: runs past the message.
        for len in FIXED_LEN + 1..m.len() {
            assert_eq!(
                NdpPacket::new_checked(&m[..len]).err(),
                Some(Error::Truncated),
                "{len}"
            );
        }
        assert!(NdpPacket::new_checked(&m[..]).is_ok());
        // Length 0 never ends: invalid (RFC 4861 §7.1.1).
        let zero = solicitation(&[1, 0, 2, 0, 0, 0, 0xaa, 1]);
        assert_eq!(
            NdpPacket::new_checked(&zero[..]).err(),
            Some(Error::Unsupported)
        );
        // A length that runs past the message.
        let long = solicitation(&[1, 2, 2, 0, 0, 0, 0xaa, 1]);
        assert_eq!(
            NdpPacket::new_checked(&long[..]).err(),
            Some(Error::Truncated)
        );
    }

    #[test]
    fn other_messages_and_codes_are_not_neighbour_discovery() {
        let mut m = solicitation(&[]);
        m[1] = 1;
        assert_eq!(
            NdpPacket::new_checked(&m[..]).err(),
            Some(Error::Unsupported)
        );
        for kind in [
            icmpv6::kind::ECHO_REQUEST,
            icmpv6::kind::ROUTER_ADVERTISEMENT,
        ] {
            let mut m = solicitation(&[]);
            m[0] = kind;
            assert_eq!(
                NdpPacket::new_checked(&m[..]).err(),
                Some(Error::Unsupported)
            );
        }
    }

    proptest::proptest! {
        /// Whatever the bytes, the view refuses them or holds a message whose
        /// options cover exactly what follows the fixed part.
        #[test]
        fn any_bytes_are_refused_or_read_whole(mut m in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80)) {
            if let Some(first) = m.first_mut() {
                *first = icmpv6::kind::NEIGHBOR_SOLICITATION;
            }
            if let Some(code) = m.get_mut(1) {
                *code = 0;
            }
            if let Ok(p) = NdpPacket::new_checked(&m[..]) {
                let covered: usize = p.options().map(|(_, data)| data.len() + 2).sum();
                proptest::prop_assert_eq!(FIXED_LEN + covered, m.len());
            }
        }
    }

    #[test]
    fn an_advertisement_reads_back_as_built() {
        let all = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
        let m = advertisement(VR, all, VR, FLAG_ROUTER | FLAG_OVERRIDE | 0x1f, MAC);
        let p = NdpPacket::new_checked(&m[..]).unwrap();
        assert_eq!(p.kind(), Kind::Advertisement);
        assert_eq!((p.target(), p.flags()), (VR, FLAG_ROUTER | FLAG_OVERRIDE));
        assert_eq!(p.link_layer_address(), Some(MAC));
        assert!(Icmpv6Packet::new_checked(&m[..])
            .unwrap()
            .verify_checksum(VR, all));
    }
}
