//! The address families a route table is built for: IPv4 as `u32`, IPv6 as
//! `u128`, both in host order with the first address bit most significant. The
//! trie, the RIB and the left-right pair are written once over [`Address`]; a
//! family differs only in its width.
use std::fmt::Debug;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::{BitAnd, BitOr, Not};

/// An address as the tables handle it.
pub trait Address:
    Copy
    + Eq
    + Hash
    + Debug
    + Default
    + Send
    + Sync
    + 'static
    + BitAnd<Output = Self>
    + BitOr<Output = Self>
    + Not<Output = Self>
{
    /// Address bits: the longest prefix.
    const BITS: u32;
    /// 32-bit words the address takes in a tail record.
    const WORDS: usize;
    /// Whether the addresses in use are sparse at the top (IPv6: a few hundred
    /// of the 2^24 first-level slots): the first level then lives on ordinary
    /// pages and counts as the pages written, not as its whole size.
    const SPARSE_TOP: bool;

    /// The network mask of a /len (`len` ≤ [`Address::BITS`]).
    fn mask(len: u8) -> Self;

    /// Bits `lo..hi` of the address, counted from the first (most significant)
    /// one, as an index: `hi - lo` ≤ 24, `hi` ≥ 8.
    fn field(self, lo: u32, hi: u32) -> usize;

    /// Word `i` of the address, the first word holding its first bits.
    fn word(self, i: usize) -> u32;

    /// The address made of [`Address::WORDS`] words, as [`Address::word`] gives them.
    fn from_words(word: impl Fn(usize) -> u32) -> Self;

    /// The address for messages.
    fn ip(self) -> IpAddr;
}

impl Address for u32 {
    const BITS: u32 = 32;
    const WORDS: usize = 1;
    const SPARSE_TOP: bool = false;

    #[inline(always)]
    fn mask(len: u8) -> u32 {
        u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
    }

    #[inline(always)]
    fn field(self, lo: u32, hi: u32) -> usize {
        ((self >> (32 - hi)) & ((1 << (hi - lo)) - 1)) as usize
    }

    fn word(self, _: usize) -> u32 {
        self
    }

    #[inline(always)]
    fn from_words(word: impl Fn(usize) -> u32) -> u32 {
        word(0)
    }

    fn ip(self) -> IpAddr {
        Ipv4Addr::from(self).into()
    }
}

impl Address for u128 {
    const BITS: u32 = 128;
    const WORDS: usize = 4;
    const SPARSE_TOP: bool = true;

    #[inline(always)]
    fn mask(len: u8) -> u128 {
        u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
    }

    #[inline(always)]
    fn field(self, lo: u32, hi: u32) -> usize {
        ((self >> (128 - hi)) as usize) & ((1 << (hi - lo)) - 1)
    }

    fn word(self, i: usize) -> u32 {
        (self >> (96 - 32 * i)) as u32
    }

    #[inline(always)]
    fn from_words(word: impl Fn(usize) -> u32) -> u128 {
        (0..4).fold(0, |a, i| (a << 32) | u128::from(word(i)))
    }

    fn ip(self) -> IpAddr {
        Ipv6Addr::from(self).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_at_both_ends() {
        assert_eq!(u32::mask(0), 0);
        assert_eq!(u32::mask(1), 0x8000_0000);
        assert_eq!(u32::mask(32), u32::MAX);
        assert_eq!(u128::mask(0), 0);
        assert_eq!(u128::mask(1), 1 << 127);
        assert_eq!(u128::mask(127), u128::MAX - 1);
        assert_eq!(u128::mask(128), u128::MAX);
    }

    #[test]
    fn fields_count_from_the_first_bit() {
        let v4 = u32::from(Ipv4Addr::new(10, 1, 2, 3));
        assert_eq!(v4.field(0, 8), 10);
        assert_eq!(v4.field(0, 16), 0x0a01);
        assert_eq!(v4.field(16, 20), 0);
        assert_eq!(v4.field(28, 32), 3);
        let v6 = u128::from("2001:db8::ff".parse::<Ipv6Addr>().unwrap());
        assert_eq!(v6.field(0, 16), 0x2001);
        assert_eq!(v6.field(0, 24), 0x20010d);
        assert_eq!(v6.field(16, 20), 0);
        assert_eq!(v6.field(20, 24), 0xd);
        assert_eq!(v6.field(120, 128), 0xff);
    }

    #[test]
    fn words_round_trip() {
        let v6 = u128::from("2001:db8:1:2:3:4:5:6".parse::<Ipv6Addr>().unwrap());
        assert_eq!(v6.word(0), 0x2001_0db8);
        assert_eq!(u128::from_words(|i| v6.word(i)), v6);
        assert_eq!(u32::from_words(|i| 7u32.word(i)), 7);
    }
}
