//! IPv4 header checks for the fast path, TTL decrement with an incremental
//! checksum update (RFC 1624), and the full checksum (RFC 1071).
use super::ether::HEADER_LEN as ETH_LEN;

/// Length of an IPv4 header without options.
pub const HEADER_LEN: usize = 20;
const TTL: usize = 8;
const CHECKSUM: usize = 10;

/// Why a frame may not take the fast path. Each goes to the guest unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unfit {
    /// Shorter than Ethernet + a 20-byte IPv4 header.
    Truncated,
    /// IP version is not 4.
    Version,
    /// Options present (IHL ≠ 5).
    Options,
    /// Total length below 20 or beyond the frame.
    Length,
    /// Header checksum is wrong.
    Checksum,
    /// TTL 0 or 1: the guest sends the ICMP time-exceeded.
    TtlExpired,
}

/// What the fast path needs from a valid header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fields {
    pub src: u32,
    pub dst: u32,
    pub ttl: u8,
}

/// Checks the IPv4 header that follows the Ethernet header in `frame`.
#[inline(always)]
pub fn check(frame: &[u8]) -> Result<Fields, Unfit> {
    let h = frame
        .get(ETH_LEN..ETH_LEN + HEADER_LEN)
        .ok_or(Unfit::Truncated)?;
    if h[0] >> 4 != 4 {
        return Err(Unfit::Version);
    }
    if h[0] & 0x0f != 5 {
        return Err(Unfit::Options);
    }
    let total = u16::from_be_bytes([h[2], h[3]]) as usize;
    if total < HEADER_LEN || total > frame.len() - ETH_LEN {
        return Err(Unfit::Length);
    }
    if checksum_fold(sum_words(h)) != 0 {
        return Err(Unfit::Checksum);
    }
    if h[TTL] <= 1 {
        return Err(Unfit::TtlExpired);
    }
    Ok(Fields {
        src: u32::from_be_bytes([h[12], h[13], h[14], h[15]]),
        dst: u32::from_be_bytes([h[16], h[17], h[18], h[19]]),
        ttl: h[TTL],
    })
}

/// Decrements the TTL of a header that passed [`check`] and patches its checksum
/// incrementally: HC' = ~(~HC + ~m + m') (RFC 1624, eqn. 3).
#[inline(always)]
pub fn decrement_ttl(frame: &mut [u8]) {
    let h = &mut frame[ETH_LEN..ETH_LEN + HEADER_LEN];
    let old_word = u16::from_be_bytes([h[TTL], h[TTL + 1]]);
    h[TTL] -= 1;
    let new_word = u16::from_be_bytes([h[TTL], h[TTL + 1]]);
    let old_sum = u16::from_be_bytes([h[CHECKSUM], h[CHECKSUM + 1]]);
    let new_sum = adjust_checksum(old_sum, old_word, new_word);
    h[CHECKSUM..CHECKSUM + 2].copy_from_slice(&new_sum.to_be_bytes());
}

/// The checksum after one 16-bit word of the covered data changed from `old` to `new`.
#[inline(always)]
pub fn adjust_checksum(checksum: u16, old: u16, new: u16) -> u16 {
    let sum = u32::from(!checksum) + u32::from(!old) + u32::from(new);
    !fold(sum)
}

/// The checksum field value for a header (with its checksum field taken as zero).
pub fn header_checksum(header: &[u8]) -> u16 {
    let mut sum = sum_words(header);
    sum -= u32::from(u16::from_be_bytes([header[CHECKSUM], header[CHECKSUM + 1]]));
    !fold(sum)
}

/// One's-complement sum of 16-bit big-endian words (an odd last byte padded).
#[inline(always)]
fn sum_words(data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    let mut sum: u32 = chunks
        .by_ref()
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

#[inline(always)]
fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Zero when a header including its checksum field is valid.
#[inline(always)]
fn checksum_fold(sum: u32) -> u16 {
    !fold(sum)
}

/// Builds a 20-byte header with a correct checksum (tests, benchmarks, the demo).
pub fn header(src: u32, dst: u32, ttl: u8, protocol: u8, payload_len: u16) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&(HEADER_LEN as u16 + payload_len).to_be_bytes());
    h[6] = 0x40; // don't fragment
    h[TTL] = ttl;
    h[9] = protocol;
    h[12..16].copy_from_slice(&src.to_be_bytes());
    h[16..20].copy_from_slice(&dst.to_be_bytes());
    let c = header_checksum(&h);
    h[CHECKSUM..CHECKSUM + 2].copy_from_slice(&c.to_be_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame(ip: [u8; HEADER_LEN], payload: usize) -> Vec<u8> {
        let mut f = vec![0u8; ETH_LEN];
        f.extend_from_slice(&ip);
        f.resize(ETH_LEN + HEADER_LEN + payload, 0xab);
        f
    }

    fn valid() -> [u8; HEADER_LEN] {
        header(0x0a000001, 0x0a010203, 64, 17, 8)
    }

    #[test]
    fn accepts_valid_and_reads_fields() {
        let f = frame(valid(), 8);
        assert_eq!(
            check(&f),
            Ok(Fields {
                src: 0x0a000001,
                dst: 0x0a010203,
                ttl: 64
            })
        );
    }

    #[test]
    fn every_truncation_is_unfit() {
        let f = frame(valid(), 8);
        for len in 0..ETH_LEN + HEADER_LEN {
            assert_eq!(check(&f[..len]), Err(Unfit::Truncated), "len {len}");
        }
        // Total length says 28 but only 20 bytes of IP arrived.
        assert_eq!(check(&f[..ETH_LEN + HEADER_LEN + 7]), Err(Unfit::Length));
    }

    #[test]
    fn rejects_each_bad_field() {
        let mut h = valid();
        h[0] = 0x65;
        assert_eq!(check(&frame(h, 8)), Err(Unfit::Version));
        let mut h = valid();
        h[0] = 0x46;
        assert_eq!(check(&frame(h, 8)), Err(Unfit::Options));
        let mut h = valid();
        h[3] = 19;
        h[2] = 0;
        assert_eq!(check(&frame(h, 8)), Err(Unfit::Length));
        let mut h = valid();
        h[15] ^= 1;
        assert_eq!(check(&frame(h, 8)), Err(Unfit::Checksum));
        for ttl in [0, 1] {
            let h = header(1, 2, ttl, 17, 8);
            assert_eq!(check(&frame(h, 8)), Err(Unfit::TtlExpired));
        }
        assert!(check(&frame(header(1, 2, 2, 17, 8), 8)).is_ok());
    }

    proptest! {
        /// The incremental update equals a full recomputation for any header.
        #[test]
        fn incremental_checksum_equals_full(
            mut h in proptest::array::uniform20(any::<u8>()),
            ttl in 2u8..=255,
        ) {
            h[0] = 0x45;
            h[2..4].copy_from_slice(&20u16.to_be_bytes());
            h[TTL] = ttl;
            let c = header_checksum(&h);
            h[CHECKSUM..CHECKSUM + 2].copy_from_slice(&c.to_be_bytes());
            let mut f = frame(h, 0);
            prop_assert!(check(&f).is_ok());
            decrement_ttl(&mut f);
            let after = &f[ETH_LEN..];
            prop_assert_eq!(after[TTL], ttl - 1);
            let stored = u16::from_be_bytes([after[CHECKSUM], after[CHECKSUM + 1]]);
            // Both 0x0000 and 0xffff encode a zero sum; RFC 1624 yields the form
            // that verifies. Compare by verification and by value modulo that.
            prop_assert_eq!(checksum_fold(sum_words(&after[..HEADER_LEN])), 0);
            let full = header_checksum(&after[..HEADER_LEN]);
            prop_assert!(stored == full || (stored ^ full) == 0xffff && (stored == 0 || full == 0));
        }
    }
}
