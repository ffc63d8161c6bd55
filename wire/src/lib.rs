//! Checked views of the headers vrfwd reads and rewrites, after smoltcp's `wire`:
//! a view wraps any `AsRef<[u8]>` (and `AsMut<[u8]>` to write), checks its length
//! once in `new_checked`, and then reads and writes fields at constant offsets that
//! cannot be out of range. Nothing here allocates, touches DPDK or decides policy:
//! which frames the fast path takes is the data plane's stages' business
//! (docs/architecture.md). IPv6, ICMPv6 and neighbour discovery are modules of
//! the same shape; nothing uses them yet (IPv6 forwarding is being built).
#![deny(unsafe_code)]

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
mod mac;
pub mod ndp;

pub use mac::{BadMac, MacAddr};

/// A buffer too short for the header a view was asked to read, or a header whose
/// fixed fields name another protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Shorter than the header.
    #[error("truncated header")]
    Truncated,
    /// A fixed field (ARP's hardware or protocol type) is not the one this view reads.
    #[error("unsupported header")]
    Unsupported,
}

/// The first `N` bytes of a buffer that a view's `new_checked` found long enough.
#[inline(always)]
fn fixed<const N: usize>(buffer: &[u8]) -> &[u8; N] {
    buffer[..N]
        .try_into()
        .expect("length checked in new_checked")
}

/// As [`fixed`], to write.
#[inline(always)]
fn fixed_mut<const N: usize>(buffer: &mut [u8]) -> &mut [u8; N] {
    (&mut buffer[..N])
        .try_into()
        .expect("length checked in new_checked")
}

/// The big-endian 16-bit value in the two bytes of `field` of `header`.
#[inline(always)]
fn be16(header: &[u8], field: core::ops::Range<usize>) -> u16 {
    u16::from_be_bytes([header[field.start], header[field.start + 1]])
}

/// The IPv4 address in the four bytes of `field` of `header`.
#[inline(always)]
fn ipv4_addr(header: &[u8], field: core::ops::Range<usize>) -> std::net::Ipv4Addr {
    let b: [u8; 4] = header[field].try_into().expect("a four-byte field");
    b.into()
}

/// The IPv6 address in the sixteen bytes of `field` of `header`.
#[inline(always)]
fn ipv6_addr(header: &[u8], field: core::ops::Range<usize>) -> std::net::Ipv6Addr {
    let b: [u8; 16] = header[field].try_into().expect("a sixteen-byte field");
    b.into()
}
