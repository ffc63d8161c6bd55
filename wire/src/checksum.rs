//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).

/// One's-complement sum of 16-bit big-endian words (an odd last byte padded),
/// at most 0x1fffe: [`fold`] finishes it.
///
/// Summed four bytes at a time into 64 bits, then folded (2^32 and 2^16 are both
/// 1 modulo 2^16 − 1): five additions for an IPv4 header, in a plain loop that
/// stays fast whether or not the compiler inlines it into the lcore's loop.
#[inline(always)]
pub fn sum_words(data: &[u8]) -> u32 {
    let mut words = data.chunks_exact(4);
    let mut sum: u64 = 0;
    for w in words.by_ref() {
        sum += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let rest = words.remainder();
    let mut tail = [0u8; 4];
    tail[..rest.len()].copy_from_slice(rest);
    sum += u64::from(u32::from_be_bytes(tail));
    let sum = (sum & 0xffff_ffff) + (sum >> 32);
    let sum = (sum & 0xffff_ffff) + (sum >> 32);
    ((sum & 0xffff) + (sum >> 16)) as u32
}

/// Folds a 32-bit one's-complement sum to 16 bits.
#[inline(always)]
pub fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The checksum of `data` (the checksum field, if inside, taken as it is).
#[inline(always)]
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum_words(data))
}

/// The checksum after one 16-bit word of the covered data changed from `old` to
/// `new`: HC' = ~(~HC + ~m + m') (RFC 1624, eqn. 3).
#[inline(always)]
pub fn adjust(checksum: u16, old: u16, new: u16) -> u16 {
    let sum = u32::from(!checksum) + u32::from(!old) + u32::from(new);
    !fold(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum_words(&data)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
        assert_eq!(fold(sum_words(&[0xab])), 0xab00);
    }

    /// The 32-bit summation folds to what word-by-word addition gives, for
    /// every length from 0 to 64 bytes (all-ones words included).
    #[test]
    fn matches_the_word_by_word_sum() {
        let reference = |data: &[u8]| {
            let mut sum = 0u32;
            for (i, b) in data.iter().enumerate() {
                sum += u32::from(*b) << if i % 2 == 0 { 8 } else { 0 };
            }
            fold(sum)
        };
        let mut x = 0x9e37_79b9u32;
        let bytes: Vec<u8> = (0..64)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (x >> 24) as u8
            })
            .collect();
        for len in 0..=64 {
            assert_eq!(
                fold(sum_words(&bytes[..len])),
                reference(&bytes[..len]),
                "{len}"
            );
            let ones = vec![0xff; len];
            assert_eq!(fold(sum_words(&ones)), reference(&ones), "ones {len}");
        }
    }
}
