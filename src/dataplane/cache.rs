//! A fixed-capacity, lock-free hash map from keys of one or more words
//! ([`CacheKey`]: an IPv4 neighbour's `u64`, an IPv6 neighbour's interface and
//! address) to u64 values with a last-seen time per entry: the VRs' neighbour
//! caches, which lcores learn into while other lcores read them.
//!
//! A slot is a sequence number, the time, the key's words and the value. The
//! sequence is the slot's seqlock (as crossbeam-utils' `atomic/seq_lock.rs`): 0
//! while the slot was never used, odd while a writer rewrites it. A reader loads
//! the sequence, the key and the value, and the sequence again; it takes the
//! entry only if the sequence was even and did not change, so it never pairs one
//! key with another key's value, whatever the key's width. Learning a new key
//! takes an empty slot or one whose entry has aged out: the writer moves the
//! sequence to odd (compare-and-swap from what it read, then a release fence, so
//! that no reader can see the new words without seeing the slot busy), writes
//! key, value and time, then publishes the next even sequence. The protocol is
//! model-checked with `loom` (`RUSTFLAGS="--cfg vrfwd_loom"`, see the `loom`
//! tests). Entries never move; lookups probe at most [`PROBES`] slots; nothing
//! allocates after construction, so learning is safe on the per-packet path.
#[cfg(vrfwd_loom)]
use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
#[cfg(not(vrfwd_loom))]
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

/// Slots probed per key.
pub const PROBES: usize = 8;
/// `seq` of a slot never used.
const NEVER: u32 = 0;
/// `seen` of an entry that never ages (configured statically).
pub const STATIC: u32 = u32::MAX;
/// `seen` of an entry removed by [`AgeingCache::forget`].
const FORGOTTEN: u32 = u32::MAX - 1;

/// A key the cache can hold: written to and read from a slot's words one
/// relaxed atomic at a time (the slot's sequence makes the whole consistent).
pub trait CacheKey: Copy + Eq {
    /// The atomics a slot keeps the key in.
    type Words: Default + Send + Sync;
    fn store(self, words: &Self::Words);
    fn load(words: &Self::Words) -> Self;
    /// The key folded to 64 bits, for the slot it starts probing at.
    fn fold(self) -> u64;
}

impl CacheKey for u64 {
    type Words = AtomicU64;

    #[inline(always)]
    fn store(self, words: &AtomicU64) {
        words.store(self, Ordering::Relaxed);
    }

    #[inline(always)]
    fn load(words: &AtomicU64) -> u64 {
        words.load(Ordering::Relaxed)
    }

    #[inline(always)]
    fn fold(self) -> u64 {
        self
    }
}

/// Three words: an IPv6 neighbour's interface and address.
impl CacheKey for [u64; 3] {
    type Words = [AtomicU64; 3];

    #[inline(always)]
    fn store(self, words: &[AtomicU64; 3]) {
        for (w, v) in words.iter().zip(self) {
            w.store(v, Ordering::Relaxed);
        }
    }

    #[inline(always)]
    fn load(words: &[AtomicU64; 3]) -> [u64; 3] {
        [0, 1, 2].map(|i| words[i].load(Ordering::Relaxed))
    }

    #[inline(always)]
    fn fold(self) -> u64 {
        self[0] ^ self[1].rotate_left(21) ^ self[2].rotate_left(42)
    }
}

struct Slot<K: CacheKey> {
    seq: AtomicU32,
    seen: AtomicU32,
    key: K::Words,
    value: AtomicU64,
}

impl<K: CacheKey> Default for Slot<K> {
    fn default() -> Self {
        Slot {
            seq: AtomicU32::new(NEVER),
            seen: AtomicU32::new(0),
            key: K::Words::default(),
            value: AtomicU64::new(0),
        }
    }
}

/// A slot's entry as one consistent read.
struct Entry<K> {
    seq: u32,
    key: K,
    value: u64,
    seen: u32,
}

impl<K: CacheKey> Slot<K> {
    /// The slot's entry, or None while it is being rewritten (`seq` odd, or
    /// changed during the read). A never-used slot reads with `seq` [`NEVER`].
    #[inline(always)]
    fn read(&self) -> Option<Entry<K>> {
        let seq = self.seq.load(Ordering::Acquire);
        if seq & 1 == 1 {
            return None;
        }
        let key = K::load(&self.key);
        let value = self.value.load(Ordering::Relaxed);
        let seen = self.seen.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        (self.seq.load(Ordering::Relaxed) == seq).then_some(Entry {
            seq,
            key,
            value,
            seen,
        })
    }
}

/// The map (keys `u64` by default: IPv4 neighbours).
pub struct AgeingCache<K: CacheKey = u64> {
    slots: Box<[Slot<K>]>,
    mask: usize,
    max_age: u32,
}

/// What [`AgeingCache::learn`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    /// The key was known with this value; its time was refreshed.
    Refreshed,
    /// A new key, or a known key with a new value.
    Updated,
    /// No free slot among the probed ones: nothing stored.
    Full,
}

impl<K: CacheKey> AgeingCache<K> {
    /// A map with at least `capacity` slots (rounded up to a power of two) whose
    /// learned entries expire `max_age` seconds after they were last seen.
    pub fn new(capacity: usize, max_age: u32) -> AgeingCache<K> {
        let n = capacity.max(PROBES).next_power_of_two();
        AgeingCache {
            slots: (0..n).map(|_| Slot::default()).collect(),
            mask: n - 1,
            max_age,
        }
    }

    #[inline(always)]
    fn home(&self, key: K) -> usize {
        // Fibonacci hashing: spreads consecutive IPs and MACs.
        (key.fold().wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize & self.mask
    }

    #[inline(always)]
    fn probe(&self, key: K) -> impl Iterator<Item = &Slot<K>> {
        let home = self.home(key);
        (0..PROBES).map(move |i| &self.slots[(home + i) & self.mask])
    }

    fn alive(&self, seen: u32, now: u32) -> bool {
        seen == STATIC || (seen != FORGOTTEN && now.saturating_sub(seen) <= self.max_age)
    }

    /// Removes `key` (its slot stays, dead, until reused).
    pub fn forget(&self, key: K) {
        if let Some(slot) = self
            .probe(key)
            .find(|s| s.read().is_some_and(|e| e.seq != NEVER && e.key == key))
        {
            slot.seen.store(FORGOTTEN, Ordering::Relaxed);
        }
    }

    /// The value of `key` if present and not aged out at time `now` (seconds).
    #[inline(always)]
    pub fn get(&self, key: K, now: u32) -> Option<u64> {
        for slot in self.probe(key) {
            match slot.read() {
                Some(e) if e.seq == NEVER => return None,
                Some(e) if e.key == key => return self.alive(e.seen, now).then_some(e.value),
                // Another key, or a slot being rewritten (perhaps to this key:
                // a miss until the writer is done).
                _ => {}
            }
        }
        None
    }

    /// Records `key → value` as seen at `now` (`STATIC` for an entry that never ages).
    pub fn learn(&self, key: K, value: u64, now: u32) -> Learned {
        let mut reusable = None;
        for slot in self.probe(key) {
            let Some(e) = slot.read() else { continue };
            if e.seq == NEVER {
                reusable.get_or_insert((slot, NEVER));
                break;
            }
            if e.key == key {
                if e.value == value && self.alive(e.seen, now) {
                    // Refresh at most once a second: one store, no cache-line churn.
                    if e.seen != now && e.seen != STATIC {
                        slot.seen.store(now, Ordering::Relaxed);
                    }
                    return Learned::Refreshed;
                }
                if e.seen == STATIC && now != STATIC {
                    return Learned::Refreshed; // configured entries win over snooping
                }
                return self.rewrite(slot, e.seq, key, value, now);
            }
            if reusable.is_none() && !self.alive(e.seen, now) {
                reusable = Some((slot, e.seq));
            }
        }
        match reusable {
            Some((slot, seq)) => self.rewrite(slot, seq, key, value, now),
            None => Learned::Full,
        }
    }

    /// Takes `slot`, read at sequence `seq`, to `key → value` without a reader
    /// ever pairing a key with the wrong value.
    fn rewrite(&self, slot: &Slot<K>, seq: u32, key: K, value: u64, now: u32) -> Learned {
        if slot
            .seq
            .compare_exchange(seq, seq | 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return Learned::Full; // another lcore is writing this slot; the next frame retries
        }
        // The stores below must not be seen before the odd sequence: a reader
        // that reads a new word then re-reads the sequence (after its acquire
        // fence) sees it odd or later.
        fence(Ordering::Release);
        key.store(&slot.key);
        slot.value.store(value, Ordering::Relaxed);
        slot.seen.store(now, Ordering::Relaxed);
        // Even again, never NEVER (after 2^31 rewrites the sequence wraps).
        let next = (seq | 1).wrapping_add(1).max(2);
        slot.seq.store(next, Ordering::Release);
        Learned::Updated
    }

    /// Every live entry at `now`: (key, value, seconds since seen or None if static).
    pub fn entries(&self, now: u32) -> Vec<(K, u64, Option<u32>)> {
        self.slots
            .iter()
            .filter_map(|s| {
                let e = s.read()?;
                (e.seq != NEVER && self.alive(e.seen, now)).then(|| {
                    let age = (e.seen != STATIC).then(|| now.saturating_sub(e.seen));
                    (e.key, e.value, age)
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_refreshes_and_ages() {
        let c = AgeingCache::new(64, 300);
        assert_eq!(c.get(7, 0), None);
        assert_eq!(c.learn(7, 70, 10), Learned::Updated);
        assert_eq!(c.learn(7, 70, 11), Learned::Refreshed);
        assert_eq!(c.get(7, 311), Some(70), "seen at 11, alive for 300 s");
        assert_eq!(c.get(7, 312), None, "aged out");
        assert_eq!(
            c.learn(7, 71, 400),
            Learned::Updated,
            "relearned after ageing"
        );
        assert_eq!(c.get(7, 400), Some(71));
        assert_eq!(c.learn(7, 72, 401), Learned::Updated, "moved (new MAC)");
        assert_eq!(c.get(7, 401), Some(72));
    }

    #[test]
    fn forgotten_entries_are_gone_until_learned_again() {
        let c = AgeingCache::new(64, 300);
        c.learn(5, 50, 1);
        c.forget(5);
        assert_eq!(c.get(5, 1), None);
        assert_eq!(c.learn(5, 50, 2), Learned::Updated);
        assert_eq!(c.get(5, 2), Some(50));
    }

    #[test]
    fn static_entries_never_age_and_win() {
        let c = AgeingCache::new(64, 1);
        c.learn(9, 90, STATIC);
        assert_eq!(c.get(9, u32::MAX - 1), Some(90));
        assert_eq!(c.learn(9, 91, 5), Learned::Refreshed);
        assert_eq!(c.get(9, 5), Some(90));
    }

    #[test]
    fn full_neighbourhood_then_reuse_of_aged_slots() {
        let c = AgeingCache::new(8, 10);
        for k in 1..=8u64 {
            assert_eq!(c.learn(k, k, 0), Learned::Updated);
        }
        assert_eq!(c.learn(100, 1, 5), Learned::Full);
        assert_eq!(
            c.learn(100, 1, 20),
            Learned::Updated,
            "an aged slot is reused"
        );
        assert_eq!(c.get(100, 20), Some(1));
        assert_eq!(c.entries(20).len(), 1);
    }

    #[test]
    fn wide_keys_differ_in_every_word() {
        let c: AgeingCache<[u64; 3]> = AgeingCache::new(64, 300);
        let keys = [[1, 2, 3], [2, 2, 3], [1, 3, 3], [1, 2, 4], [0, 0, 0]];
        for (n, k) in keys.iter().enumerate() {
            assert_eq!(c.learn(*k, n as u64 + 10, 1), Learned::Updated);
        }
        for (n, k) in keys.iter().enumerate() {
            assert_eq!(c.get(*k, 1), Some(n as u64 + 10), "{k:?}");
        }
        c.forget([1, 2, 4]);
        assert_eq!(c.get([1, 2, 4], 1), None);
        assert_eq!(c.entries(1).len(), 4);
    }

    #[test]
    fn concurrent_learners_of_wide_keys_never_mix_their_words() {
        // Every key's words and value are derived from one number, so a torn read
        // (words of two keys, or a key with another's value) cannot match.
        let key = |n: u64| [n, n.rotate_left(17), n.rotate_left(41)];
        let c: AgeingCache<[u64; 3]> = AgeingCache::new(256, 1);
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let c = &c;
                s.spawn(move || {
                    for round in 0..20_000u32 {
                        let n = 1 + (u64::from(round) * 7 + t) % 300;
                        c.learn(key(n), n * 1000, round / 100);
                        let other = n ^ 1 | 1;
                        if let Some(v) = c.get(key(other), round / 100) {
                            assert_eq!(v, other * 1000);
                        }
                    }
                });
            }
        });
    }

    #[test]
    fn concurrent_learners_never_mix_keys_and_values() {
        let c = AgeingCache::new(256, 1);
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let c = &c;
                s.spawn(move || {
                    for round in 0..20_000u32 {
                        let key = 1 + (u64::from(round) * 7 + t) % 300;
                        c.learn(key, key * 1000, round / 100);
                        if let Some(v) = c.get(key ^ 1 | 1, round / 100) {
                            assert_eq!(v, (key ^ 1 | 1) * 1000);
                        }
                    }
                });
            }
        });
    }
}

/// The seqlock under `loom`'s model of the C11 memory model (which x86 cannot
/// show): `RUSTFLAGS="--cfg vrfwd_loom" cargo test --release --lib loom`.
#[cfg(all(test, vrfwd_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

    /// A cache whose eight slots hold keys 1..=8 (value key × 10), seen at 0 and
    /// dead from time 2 on.
    fn full<K: CacheKey>(key: fn(u64) -> K) -> AgeingCache<K> {
        let c = AgeingCache::new(PROBES, 1);
        for k in 1..=8 {
            assert_eq!(c.learn(key(k), k * 10, 0), Learned::Updated);
        }
        c
    }

    /// A reader races a writer that evicts the reader's key for key 9.
    fn reader_never_pairs_a_key_with_another_keys_value<K: CacheKey + 'static>(key: fn(u64) -> K) {
        // A wide key makes every read and write more atomic steps than loom's
        // default budget of branches allows.
        let mut model = loom::model::Builder::new();
        model.max_branches = 100_000;
        model.check(move || {
            // Which key learning key 9 evicts (the first dead slot it probes).
            let probe = full(key);
            probe.learn(key(9), 90, 5);
            let victim = (1..=8)
                .find(|&k| probe.get(key(k), 0).is_none())
                .expect("a slot reused");
            let cache = Arc::new(full(key));
            let writer = {
                let cache = Arc::clone(&cache);
                loom::thread::spawn(move || {
                    assert_eq!(cache.learn(key(9), 90, 5), Learned::Updated)
                })
            };
            // A reader at time 0, to which the victim is still alive.
            let seen = cache.get(key(victim), 0);
            assert!(
                seen.is_none() || seen == Some(victim * 10),
                "key {victim} read with value {seen:?}"
            );
            writer.join().unwrap();
        });
    }

    #[test]
    fn a_reader_never_pairs_a_key_with_another_keys_value() {
        reader_never_pairs_a_key_with_another_keys_value(|k| k);
    }

    #[test]
    fn a_reader_never_pairs_a_wide_key_with_another_keys_value() {
        reader_never_pairs_a_key_with_another_keys_value(|k| [k, k << 8, k << 16]);
    }
}
