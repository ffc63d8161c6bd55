//! Resilient multipath: how the flows of a route with several paths spread over
//! them (docs/architecture.md, "Multipath"). A flow's packets hash to one of a
//! fixed table of buckets ([`Buckets`]), each holding one path; paths get
//! buckets in proportion to their weights. When the weights change (a path goes
//! away, comes back, is reweighed) only the buckets that must move do: a path
//! above its new share gives up the difference, a path below it takes freed
//! buckets, and every other bucket keeps its path, so the flows of paths that
//! stay stay on them (as the kernel's `resilient` next-hop groups do, and unlike
//! hash-modulo-paths, which moves most flows when one path goes).
//!
//! [`Flow::hash`] is what picks the bucket: the addresses, the protocol and the
//! ports when the packet carries them (not a fragment), so a flow's packets keep
//! one path and stay in order.

/// Most paths a group holds (a bucket's path index fits in a byte).
pub const MAX_PATHS: usize = 64;
/// Buckets of a group: enough for 64 equal paths to get 16 each, so that a
/// path's share of the buckets is its weight's share within 1 / 1024.
pub const BUCKETS: usize = 1024;
/// A bucket not yet given a path (only while a table is built).
const UNASSIGNED: u8 = u8::MAX;

/// Why a group's paths cannot be spread.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EcmpError {
    /// Too few or too many paths.
    #[error("a multipath group has 1 to {MAX_PATHS} paths, not {0}")]
    PathCount(usize),
    /// No path has a weight: there is nowhere to send.
    #[error("every path of the group has weight 0")]
    NoWeight,
}

/// A group's buckets: the path of each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buckets {
    table: [u8; BUCKETS],
}

impl Buckets {
    /// Buckets spread over paths weighing `weights` (a weight of 0: the path
    /// gets none).
    pub fn new(weights: &[u32]) -> Result<Buckets, EcmpError> {
        let mut buckets = Buckets {
            table: [UNASSIGNED; BUCKETS],
        };
        buckets.reweigh(weights)?;
        Ok(buckets)
    }

    /// Buckets for paths weighing `weights` that keep the buckets of
    /// `previous` whose path is still one of them (`position`: a previous
    /// path's index here, None when it is gone), as far as the new shares
    /// allow: a route whose set of paths changes moves only the flows it must.
    pub fn follow(
        previous: &Buckets,
        position: impl Fn(usize) -> Option<usize>,
        weights: &[u32],
    ) -> Result<Buckets, EcmpError> {
        let mut table = [UNASSIGNED; BUCKETS];
        for (new, &old) in table.iter_mut().zip(previous.table.iter()) {
            if let Some(p) = position(usize::from(old)).filter(|&p| p < weights.len()) {
                *new = p as u8;
            }
        }
        let mut buckets = Buckets { table };
        buckets.reweigh(weights)?;
        Ok(buckets)
    }

    /// The path of the flow that hashes to `hash`.
    #[inline(always)]
    pub fn path(&self, hash: u32) -> usize {
        // The hash's high bits pick the bucket (multiply-shift, no division).
        let bucket = (u64::from(hash) * BUCKETS as u64) >> 32;
        usize::from(self.table[bucket as usize])
    }

    /// Gives the paths their new weights, moving as few buckets as that takes.
    /// Returns how many buckets moved. Unchanged on error.
    pub fn reweigh(&mut self, weights: &[u32]) -> Result<usize, EcmpError> {
        let targets = shares(weights)?;
        let mut counts = [0usize; MAX_PATHS];
        for &p in self.table.iter().filter(|&&p| p != UNASSIGNED) {
            counts[usize::from(p)] += 1;
        }
        // Free the buckets of paths above their share (every bucket of a path
        // that is gone or has weight 0)...
        let mut freed = Vec::new();
        for (b, p) in self.table.iter_mut().enumerate() {
            let path = usize::from(*p);
            if *p == UNASSIGNED || counts[path] > targets.get(path).copied().unwrap_or(0) {
                if *p != UNASSIGNED {
                    counts[path] -= 1;
                }
                *p = UNASSIGNED;
                freed.push(b);
            }
        }
        // ...and hand them to the paths below theirs, a bucket to each in turn.
        let moved = freed.len();
        let mut freed = freed.into_iter();
        while freed.len() > 0 {
            for (path, &target) in targets.iter().enumerate() {
                if counts[path] < target {
                    let b = freed
                        .next()
                        .expect("as many freed buckets as shares missing");
                    self.table[b] = path as u8;
                    counts[path] += 1;
                }
            }
        }
        Ok(moved)
    }
}

/// How many of the [`BUCKETS`] each path gets: its weight's share, rounded by
/// largest remainder (ties to the lower path), so the shares add up.
fn shares(weights: &[u32]) -> Result<Vec<usize>, EcmpError> {
    if weights.is_empty() || weights.len() > MAX_PATHS {
        return Err(EcmpError::PathCount(weights.len()));
    }
    let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
    if total == 0 {
        return Err(EcmpError::NoWeight);
    }
    let exact = |w: u32| u64::from(w) * BUCKETS as u64;
    let mut shares: Vec<usize> = weights
        .iter()
        .map(|&w| (exact(w) / total) as usize)
        .collect();
    let mut by_remainder: Vec<usize> = (0..weights.len()).collect();
    by_remainder.sort_by_key(|&p| std::cmp::Reverse(exact(weights[p]) % total));
    let short = BUCKETS - shares.iter().sum::<usize>();
    for &p in by_remainder.iter().take(short) {
        shares[p] += 1;
    }
    Ok(shares)
}

/// What identifies a flow for the choice of its path. IPv4 addresses are
/// widened to 128 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    pub src: u128,
    pub dst: u128,
    /// The IP protocol (IPv6: the next header).
    pub protocol: u8,
    /// Source and destination ports, when the packet carries its transport
    /// header (not a fragment past the first, not a protocol without ports).
    pub ports: Option<(u16, u16)>,
}

impl Flow {
    /// Whether packets of IP protocol `protocol` start with the source and
    /// destination ports (TCP, UDP, DCCP, SCTP, UDP-Lite), which then belong
    /// to the flow.
    #[inline(always)]
    pub fn has_ports(protocol: u8) -> bool {
        matches!(protocol, 6 | 17 | 33 | 132 | 136)
    }

    /// A hash of the flow, mixed so that its high bits (which pick the bucket)
    /// depend on every field.
    #[inline(always)]
    pub fn hash(&self) -> u32 {
        let fold = |a: u128| (a as u64) ^ ((a >> 64) as u64).rotate_left(29);
        let (sport, dport) = self.ports.unwrap_or((0, 0));
        let ports = (u64::from(sport) << 16) | u64::from(dport) | (u64::from(self.protocol) << 32);
        // Odd multipliers keep the fields apart (a flow and its reverse hash
        // differently); the last multiply carries every bit of the folded
        // word into the high bits, which pick the bucket.
        let x = fold(self.src).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ fold(self.dst)
            ^ ports.wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
        ((x ^ (x >> 32)).wrapping_mul(0xff51_afd7_ed55_8ccd) >> 32) as u32
    }
}

/// A flow hash from a NIC's RSS hash, for [`Buckets::path`]: multiplied so
/// that its high bits, which pick the bucket, depend on all of it. The RSS
/// hash's low bits pick the receive queue, so one lcore's flows share them,
/// and its high bits may be weak (not every NIC computes Toeplitz).
#[inline(always)]
pub fn from_rss(rss: u32) -> u32 {
    rss.wrapping_mul(0x9e37_79b1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 64-bit finalizer (MurmurHash3's fmix64): every input bit reaches every
    /// output bit.
    #[inline(always)]
    fn mix(mut x: u64) -> u64 {
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        x ^ (x >> 33)
    }

    /// `n` distinct pseudo-random IPv4 UDP flows.
    fn flows(n: usize) -> Vec<Flow> {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state = mix(state.wrapping_add(0x9e37_79b9_7f4a_7c15));
            state
        };
        (0..n)
            .map(|_| {
                let r = next();
                Flow {
                    src: u128::from(0x0a00_0000 | (r as u32 & 0xffff)),
                    dst: u128::from(0xc633_6400 | ((r >> 16) as u32 & 0xff)),
                    protocol: 17,
                    ports: Some(((r >> 24) as u16, (r >> 40) as u16)),
                }
            })
            .collect()
    }

    fn paths_of(buckets: &Buckets, flows: &[Flow]) -> Vec<usize> {
        flows.iter().map(|f| buckets.path(f.hash())).collect()
    }

    /// Asserts each path's share of `paths` is its weight's share within ±10 %.
    fn assert_spread(paths: &[usize], weights: &[u32]) {
        let total: u32 = weights.iter().sum();
        for (p, &w) in weights.iter().enumerate() {
            let want = paths.len() as f64 * f64::from(w) / f64::from(total);
            let got = paths.iter().filter(|&&q| q == p).count() as f64;
            assert!(
                (got - want).abs() <= want * 0.1,
                "path {p} of {weights:?}: {got} flows, want {want:.0} ± 10 %"
            );
        }
    }

    #[test]
    fn equal_paths_share_the_flows() {
        let flows = flows(10_000);
        for n in [2, 3, 4, 8] {
            let weights = vec![1; n];
            let buckets = Buckets::new(&weights).unwrap();
            assert_spread(&paths_of(&buckets, &flows), &weights);
        }
    }

    #[test]
    fn weights_are_honoured() {
        let weights = [1, 3];
        let buckets = Buckets::new(&weights).unwrap();
        assert_spread(&paths_of(&buckets, &flows(10_000)), &weights);
        assert_eq!(shares(&weights).unwrap(), vec![256, 768]);
        assert_eq!(shares(&[1, 1, 1]).unwrap(), vec![342, 341, 341]);
    }

    #[test]
    fn a_path_that_goes_moves_only_its_flows_and_takes_back_only_its_share() {
        let flows = flows(10_000);
        let mut buckets = Buckets::new(&[1, 1, 1, 1]).unwrap();
        let before = paths_of(&buckets, &flows);
        assert_eq!(buckets.reweigh(&[1, 1, 0, 1]).unwrap(), BUCKETS / 4);
        let without = paths_of(&buckets, &flows);
        for (b, w) in before.iter().zip(&without) {
            match *b {
                2 => assert_ne!(*w, 2, "path 2's flows move"),
                _ => assert_eq!(b, w, "other flows stay"),
            }
        }
        assert_spread(&without, &[1, 1, 0, 1]);
        // Back: it takes its share, and only flows moving to it move.
        assert_eq!(buckets.reweigh(&[1, 1, 1, 1]).unwrap(), BUCKETS / 4);
        let back = paths_of(&buckets, &flows);
        let moved = without.iter().zip(&back).filter(|(w, b)| w != b).count();
        assert!(
            moved <= flows.len() / 4 + flows.len() / 40,
            "{moved} flows moved"
        );
        assert!(without.iter().zip(&back).all(|(w, b)| w == b || *b == 2));
        assert_spread(&back, &[1, 1, 1, 1]);
    }

    #[test]
    fn a_new_path_takes_its_share_from_each() {
        let mut buckets = Buckets::new(&[1, 1, 1]).unwrap();
        assert_eq!(
            buckets.reweigh(&[1, 1, 1]).unwrap(),
            0,
            "no change, no move"
        );
        let moved = buckets.reweigh(&[1, 1, 1, 1]).unwrap();
        assert_eq!(moved, BUCKETS / 4);
        let counts: Vec<usize> = (0..4)
            .map(|p| {
                buckets
                    .table
                    .iter()
                    .filter(|&&q| usize::from(q) == p)
                    .count()
            })
            .collect();
        assert_eq!(counts, shares(&[1, 1, 1, 1]).unwrap());
    }

    #[test]
    fn following_a_previous_set_moves_only_what_the_change_must() {
        let flows = flows(10_000);
        // Paths a, b, c, d at positions 0..4; the new set is b, c, d, e (a gone,
        // e new), so b, c, d are at positions 0, 1, 2 and e at 3.
        let before = Buckets::new(&[1, 1, 1, 1]).unwrap();
        let after = Buckets::follow(&before, |p| p.checked_sub(1), &[1, 1, 1, 1]).unwrap();
        let (old, new) = (paths_of(&before, &flows), paths_of(&after, &flows));
        for (o, n) in old.iter().zip(&new) {
            match *o {
                0 => assert_eq!(*n, 3, "a's flows go to e, the one path short"),
                o => assert_eq!(*n, o - 1, "b, c and d keep their flows"),
            }
        }
        // From one path to two: half the flows move, to the new path only.
        let one = Buckets::new(&[1]).unwrap();
        let two = Buckets::follow(&one, |_| Some(1), &[1, 1]).unwrap();
        let moved = paths_of(&two, &flows);
        assert_spread(&moved, &[1, 1]);
        assert_eq!(
            Buckets::follow(&one, |_| None, &[]),
            Err(EcmpError::PathCount(0))
        );
    }

    #[test]
    fn bad_groups_are_refused_and_leave_the_buckets_alone() {
        assert_eq!(Buckets::new(&[]), Err(EcmpError::PathCount(0)));
        assert_eq!(Buckets::new(&[1; 65]), Err(EcmpError::PathCount(65)));
        assert_eq!(Buckets::new(&[0, 0]), Err(EcmpError::NoWeight));
        let mut buckets = Buckets::new(&[1; MAX_PATHS]).unwrap();
        let kept = buckets.clone();
        assert_eq!(buckets.reweigh(&[0; 3]), Err(EcmpError::NoWeight));
        assert_eq!(buckets, kept);
    }

    #[test]
    fn nic_hashes_spread_though_one_queues_share_their_low_bits() {
        let mut state = 1u64;
        let mut rss = || {
            state = mix(state.wrapping_add(0x9e37_79b9_7f4a_7c15));
            state as u32
        };
        // One lcore's queue of a 128-entry redirection table: the low 7 bits fixed.
        let queue: Vec<u32> = (0..10_000).map(|_| (rss() & !0x7f) | 0x2a).collect();
        // A NIC whose hash fills only the low 16 bits.
        let narrow: Vec<u32> = (0..10_000).map(|_| rss() & 0xffff).collect();
        for hashes in [queue, narrow] {
            for n in [2, 4, 8] {
                let weights = vec![1; n];
                let buckets = Buckets::new(&weights).unwrap();
                let paths: Vec<usize> = hashes.iter().map(|&h| buckets.path(from_rss(h))).collect();
                assert_spread(&paths, &weights);
            }
        }
    }

    #[test]
    fn a_flows_hash_depends_on_every_field() {
        let f = flows(1)[0];
        let h = f.hash();
        assert_ne!(
            Flow {
                src: f.src ^ 1,
                ..f
            }
            .hash(),
            h
        );
        assert_ne!(
            Flow {
                dst: f.dst ^ 1,
                ..f
            }
            .hash(),
            h
        );
        assert_ne!(Flow { protocol: 6, ..f }.hash(), h);
        assert_ne!(Flow { ports: None, ..f }.hash(), h);
        let v6 = Flow {
            src: 0x2001_0db8 << 96,
            dst: (0x2001_0db8 << 96) | (1 << 64),
            ..f
        };
        assert_ne!(
            Flow {
                dst: v6.dst ^ (1 << 100),
                ..v6
            }
            .hash(),
            v6.hash()
        );
    }
}
