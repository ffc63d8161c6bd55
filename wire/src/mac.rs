//! MAC addresses: parsed, printed, and packed into a u64 for table keys and atomics.
use std::fmt;
use std::str::FromStr;

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
        // Two loads and byte swaps (the eight-byte form compiles to a vector shuffle).
        let [a, b, c, d, e, f] = self.0;
        (u64::from(u32::from_be_bytes([a, b, c, d])) << 16) | u64::from(u16::from_be_bytes([e, f]))
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

    /// A station's address: neither a group (broadcast, multicast) nor zero.
    #[inline(always)]
    pub fn is_station(self) -> bool {
        !self.is_multicast() && !self.is_zero()
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
        assert!(m.is_station());
        for not_station in [
            MacAddr::BROADCAST,
            MacAddr([1, 0, 0x5e, 0, 0, 1]),
            MacAddr::default(),
        ] {
            assert!(!not_station.is_station(), "{not_station}");
        }
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
}
