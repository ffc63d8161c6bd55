//! Version 2 authentication: the host's stream header carries a fresh nonce, and
//! the peer's `hello` carries a proof, HMAC-SHA-256 keyed with the credential
//! over the nonce, the VR id and the generation. The credential never crosses
//! the wire, and a proof seen on one connection is worth nothing on another
//! (each has its own nonce). Verification is constant-time.
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;
use std::str::FromStr;

/// What the proof's MAC covers first: this protocol and this use, nothing else.
const CONTEXT: &[u8] = b"vrfwd hello v2\0";

/// A host's per-connection challenge.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Nonce(pub [u8; 32]);

/// A peer's answer to a [`Nonce`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Proof(pub [u8; 32]);

/// Hex that is not 64 lowercase or uppercase digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not 32 bytes of hex")]
pub struct BadHex(pub String);

fn mac(credential: &[u8], nonce: &Nonce, vr: u32, generation: u64) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(credential).expect("HMAC takes any key length");
    mac.update(CONTEXT);
    mac.update(&nonce.0);
    mac.update(&vr.to_be_bytes());
    mac.update(&generation.to_be_bytes());
    mac
}

impl Proof {
    /// The proof that the sender knows `credential`, for this nonce, VR and generation.
    pub fn new(credential: &[u8], nonce: &Nonce, vr: u32, generation: u64) -> Proof {
        Proof(
            mac(credential, nonce, vr, generation)
                .finalize()
                .into_bytes()
                .into(),
        )
    }

    /// Whether the proof was made with `credential` for exactly these values
    /// (constant-time).
    pub fn verify(&self, credential: &[u8], nonce: &Nonce, vr: u32, generation: u64) -> bool {
        mac(credential, nonce, vr, generation)
            .verify_slice(&self.0)
            .is_ok()
    }
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8; 32]) -> fmt::Result {
    bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
}

fn parse_hex(s: &str) -> Result<[u8; 32], BadHex> {
    let bad = || BadHex(s.chars().take(80).collect());
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

macro_rules! hex_value {
    ($t:ident) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_hex(f, &self.0)
            }
        }

        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_hex(f, &self.0)
            }
        }

        impl FromStr for $t {
            type Err = BadHex;
            fn from_str(s: &str) -> Result<$t, BadHex> {
                parse_hex(s).map($t)
            }
        }
    };
}

hex_value!(Nonce);
hex_value!(Proof);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_holds_for_its_credential_nonce_vr_and_generation_only() {
        let nonce = Nonce([7; 32]);
        let p = Proof::new(b"red-secret-for-tests", &nonce, 3, 9);
        assert!(p.verify(b"red-secret-for-tests", &nonce, 3, 9));
        assert!(!p.verify(b"red-secret-for-test", &nonce, 3, 9));
        assert!(!p.verify(b"red-secret-for-tests", &Nonce([8; 32]), 3, 9));
        assert!(!p.verify(b"red-secret-for-tests", &nonce, 4, 9));
        assert!(!p.verify(b"red-secret-for-tests", &nonce, 3, 10));
        assert_eq!(p.to_string().parse::<Proof>(), Ok(p));
        assert_eq!(p.to_string().len(), 64);
        for bad in ["", "00", &"g".repeat(64), &"0".repeat(63), &"0".repeat(65)] {
            assert!(bad.parse::<Nonce>().is_err(), "{bad}");
        }
    }
}
