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
    /// Whether a group may skip the bits every prefix below a slot shares
    /// (`super::fib`). IPv6 prefixes lie 8 to 40 bits below their first-level
    /// slot, sharing most of them (an allocation's /32); IPv4 prefixes end within
    /// 8 bits of a wide first level, where a skip saves little and would cost the
    /// lcores' IPv4 walk its checks (docs/benchmarks.md, "Route tables").
    const SKIPS: bool;

    /// The network mask of a /len (`len` ≤ [`Address::BITS`]).
    fn mask(len: u8) -> Self;

    /// Bits `lo..hi` of the address, counted from the first (most significant)
    /// one, as an index: `hi - lo` ≤ 24, `hi` ≥ 8.
    fn field(self, lo: u32, hi: u32) -> usize;

    /// The address with bits `lo..hi` (as [`Address::field`] counts them) set to
    /// `value`.
    fn with_field(self, lo: u32, hi: u32, value: usize) -> Self;

    /// How many leading bits `self` and `other` share.
    fn shared_bits(self, other: Self) -> u32;

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
    const SKIPS: bool = false;

    #[inline(always)]
    fn mask(len: u8) -> u32 {
        u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
    }

    #[inline(always)]
    fn field(self, lo: u32, hi: u32) -> usize {
        ((self >> (32 - hi)) & ((1 << (hi - lo)) - 1)) as usize
    }

    fn with_field(self, lo: u32, hi: u32, value: usize) -> u32 {
        let mask = ((1u32 << (hi - lo)) - 1) << (32 - hi);
        (self & !mask) | ((value as u32) << (32 - hi) & mask)
    }

    fn shared_bits(self, other: u32) -> u32 {
        (self ^ other).leading_zeros()
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
    const SKIPS: bool = true;

    #[inline(always)]
    fn mask(len: u8) -> u128 {
        u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
    }

    #[inline(always)]
    fn field(self, lo: u32, hi: u32) -> usize {
        ((self >> (128 - hi)) as usize) & ((1 << (hi - lo)) - 1)
    }

    fn with_field(self, lo: u32, hi: u32, value: usize) -> u128 {
        let mask = ((1u128 << (hi - lo)) - 1) << (128 - hi);
        (self & !mask) | ((value as u128) << (128 - hi) & mask)
    }

    fn shared_bits(self, other: u128) -> u32 {
        (self ^ other).leading_zeros()
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
    fn fields_are_set_where_they_are_read() {
        let v4 = u32::from(Ipv4Addr::new(10, 1, 2, 3));
        assert_eq!(
            v4.with_field(28, 32, 9),
            u32::from(Ipv4Addr::new(10, 1, 2, 9))
        );
        assert_eq!(v4.with_field(0, 8, 192).field(0, 8), 192);
        let v6 = u128::from("2001:db8::ff".parse::<Ipv6Addr>().unwrap());
        let set = v6.with_field(32, 36, 0xa);
        assert_eq!(
            set,
            u128::from("2001:db8:a000::ff".parse::<Ipv6Addr>().unwrap())
        );
        assert_eq!(v6.with_field(124, 128, 0).field(120, 128), 0xf0);
    }

    #[test]
    fn shared_bits_count_from_the_first() {
        let a = u32::from(Ipv4Addr::new(10, 1, 2, 3));
        assert_eq!(a.shared_bits(a), 32);
        assert_eq!(a.shared_bits(u32::from(Ipv4Addr::new(10, 1, 3, 3))), 23);
        let b = u128::from("2001:db8::".parse::<Ipv6Addr>().unwrap());
        assert_eq!(b.shared_bits(b | 1), 127);
        assert_eq!(b.shared_bits(0), 2);
    }

    #[test]
    fn words_round_trip() {
        let v6 = u128::from("2001:db8:1:2:3:4:5:6".parse::<Ipv6Addr>().unwrap());
        assert_eq!(v6.word(0), 0x2001_0db8);
        assert_eq!(u128::from_words(|i| v6.word(i)), v6);
        assert_eq!(u32::from_words(|i| 7u32.word(i)), 7);
    }
}
