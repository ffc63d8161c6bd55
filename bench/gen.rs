//! Reproducible inputs shared by the benchmarks and tests: a small PRNG and route
//! tables with a realistic prefix-length mix. Included with `#[path]`; each
//! program uses part of it.

/// Reproducible noise (xorshift64*).
pub struct Noise(pub u64);
impl Noise {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// `n` noise bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    /// A random address inside `net/len`.
    pub fn address_in(&mut self, (net, len): (u32, u8)) -> u32 {
        net | (self.next() as u32 & !vrfwd::lpm::mask(len))
    }
}

/// `n` distinct prefixes, mostly /24 with a tail of /16–/23 and /25–/32, inside
/// 20.0.0.0–199.255.255.255.
pub fn prefixes(noise: &mut Noise, n: usize) -> Vec<(u32, u8)> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let r = noise.next();
        let len = match r % 100 {
            0..=69 => 24,
            70..=89 => 16 + (r >> 8) as u8 % 8,
            _ => 25 + (r >> 8) as u8 % 8,
        };
        let addr = (20 + ((r >> 16) % 180) as u32) << 24 | ((r >> 32) as u32 & 0x00ff_ffff);
        let net = addr & vrfwd::lpm::mask(len);
        if seen.insert((net, len)) {
            out.push((net, len));
        }
    }
    out
}
