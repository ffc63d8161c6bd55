//! Checked views of the headers vrfwd reads and rewrites (Ethernet, ARP, IPv4) and
//! the Internet checksum. Plain functions over byte slices, as smoltcp does: every
//! field is read at a constant offset after one length check, nothing allocates, and
//! a short or odd frame yields `None` or an error, never a panic.
pub mod arp;
pub mod ether;
pub mod ipv4;

pub use ether::MacAddr;
