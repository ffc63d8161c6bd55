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
        net | (self.next() as u32 & !<u32 as vrfwd::lpm::Address>::mask(len))
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
        let net = addr & <u32 as vrfwd::lpm::Address>::mask(len);
        if seen.insert((net, len)) {
            out.push((net, len));
        }
    }
    out
}

/// IPv6 address blocks the RIRs allocate from (2001::/16, 2400::/12, 2600::/12,
/// 2800::/12, 2a00::/12, 2c00::/12): the first 16 bits of an allocation.
const V6_BLOCKS: [(u16, u16); 6] = [
    (0x2001, 1),
    (0x2400, 16),
    (0x2600, 16),
    (0x2800, 16),
    (0x2a00, 16),
    (0x2c00, 16),
];

/// `n` distinct IPv6 prefixes shaped like today's Internet table: about 50 % /48,
/// 20 % /32–/40, 20 % /41–/47, 10 % /49–/64 and a /128 tail (1 %), under about
/// one /32 allocation per eight prefixes drawn from the RIRs' blocks (so that,
/// as in the real table, prefixes cluster under their allocation).
pub fn prefixes6(noise: &mut Noise, n: usize) -> Vec<(u128, u8)> {
    let allocations: Vec<u128> = (0..n.div_ceil(8))
        .map(|_| {
            let r = noise.next();
            let (base, span) = V6_BLOCKS[(r % V6_BLOCKS.len() as u64) as usize];
            let top = u128::from(base + ((r >> 8) as u16 % span));
            (top << 112) | (u128::from((r >> 24) as u16) << 96)
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let r = noise.next();
        let len = match r % 100 {
            0..=48 => 48,
            49..=68 => 32 + (r >> 8) as u8 % 9,
            69..=88 => 41 + (r >> 8) as u8 % 7,
            89..=98 => 49 + (r >> 8) as u8 % 16,
            _ => 128,
        };
        let allocation = allocations[(r >> 16) as usize % allocations.len()];
        let below = (u128::from(noise.next()) << 64) | u128::from(noise.next());
        let mask = <u128 as vrfwd::lpm::Address>::mask(len);
        let net = (allocation | (below >> 32)) & mask;
        if seen.insert((net, len)) {
            out.push((net, len));
        }
    }
    out
}

/// A random IPv6 address inside `net/len`.
pub fn address6_in(noise: &mut Noise, (net, len): (u128, u8)) -> u128 {
    let bits = (u128::from(noise.next()) << 64) | u128::from(noise.next());
    net | (bits & !<u128 as vrfwd::lpm::Address>::mask(len))
}
