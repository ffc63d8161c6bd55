//! Ethernet II framing and MAC addresses.
use std::fmt;
use std::str::FromStr;

/// Length of an Ethernet header without VLAN tag.
pub const HEADER_LEN: usize = 14;
pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;

/// A MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);

    /// Reads a MAC from the first six bytes of `b` (caller checked the length).
    #[inline(always)]
    pub fn from_slice(b: &[u8]) -> MacAddr {
        let mut m = [0u8; 6];
        m.copy_from_slice(&b[..6]);
        MacAddr(m)
    }

    /// The address as the low 48 bits of a u64 (for table keys and atomics).
    #[inline(always)]
    pub fn to_u64(self) -> u64 {
        let b = self.0;
        u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]])
    }

    /// The inverse of [`MacAddr::to_u64`] (high bits ignored).
    #[inline(always)]
    pub fn from_u64(v: u64) -> MacAddr {
        let b = v.to_be_bytes();
        MacAddr([b[2], b[3], b[4], b[5], b[6], b[7]])
    }

    /// Group bit: broadcast and multicast.
    #[inline(always)]
    pub fn is_multicast(self) -> bool {
        self.0[0] & 1 != 0
    }

    /// All zeros (never a valid station).
    pub fn is_zero(self) -> bool {
        self.0 == [0; 6]
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A MAC address string was not six colon-separated hex bytes.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a MAC address (expected six hex bytes like 02:00:00:00:00:01)")]
pub struct BadMac(String);

impl FromStr for MacAddr {
    type Err = BadMac;
    fn from_str(s: &str) -> Result<Self, BadMac> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in &mut out {
            let p = parts.next().ok_or_else(|| BadMac(s.into()))?;
            if p.len() != 2 {
                return Err(BadMac(s.into()));
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| BadMac(s.into()))?;
        }
        if parts.next().is_some() {
            return Err(BadMac(s.into()));
        }
        Ok(MacAddr(out))
    }
}

impl<'de> serde::Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

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
    fn mac_round_trips() {
        let m: MacAddr = "02:aa:bb:cc:dd:0f".parse().unwrap();
        assert_eq!(m.to_string(), "02:aa:bb:cc:dd:0f");
        assert_eq!(MacAddr::from_u64(m.to_u64()), m);
        assert!(!m.is_multicast());
        assert!(MacAddr::BROADCAST.is_multicast());
        for bad in [
            "",
            "02:aa:bb:cc:dd",
            "02:aa:bb:cc:dd:0f:11",
            "zz:aa:bb:cc:dd:0f",
            "2:aa:bb:cc:dd:0f",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }

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
