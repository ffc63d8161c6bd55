//! A fixed-capacity, lock-free hash map from u64 keys to u64 values with a
//! last-seen time per entry: the VRs' neighbour caches, which lcores
//! learn into while other lcores read them.
//!
//! Slots are three atomics (key, value, seen). A reader loads the key, the value and
//! the key again (a one-slot seqlock, as crossbeam-utils' `atomic/seq_lock.rs`), so
//! it never pairs one key with another key's value. Learning a new key takes an
//! empty slot or one whose entry has aged out: the writer marks the slot busy (then
//! a release fence, so that no reader can see the new value without seeing the
//! slot busy), writes value and time, then publishes the key. The protocol is
//! model-checked with `loom` (`RUSTFLAGS="--cfg vrfwd_loom"`, see the `loom` tests).
//! Entries never move; lookups probe at most [`PROBES`] slots; nothing allocates
//! after construction, so learning is safe on the per-packet path.
#[cfg(vrfwd_loom)]
use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
#[cfg(not(vrfwd_loom))]
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

/// Slots probed per key.
pub const PROBES: usize = 8;
const EMPTY: u64 = 0;
const BUSY: u64 = u64::MAX;
/// `seen` of an entry that never ages (configured statically).
pub const STATIC: u32 = u32::MAX;
/// `seen` of an entry removed by [`AgeingCache::forget`].
const FORGOTTEN: u32 = u32::MAX - 1;

#[derive(Default)]
struct Slot {
    key: AtomicU64,
    value: AtomicU64,
    seen: AtomicU32,
}

/// The map. Keys 0 and `u64::MAX` are reserved.
pub struct AgeingCache {
    slots: Box<[Slot]>,
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

impl AgeingCache {
    /// A map with at least `capacity` slots (rounded up to a power of two) whose
    /// learned entries expire `max_age` seconds after they were last seen.
    pub fn new(capacity: usize, max_age: u32) -> AgeingCache {
        let n = capacity.max(PROBES).next_power_of_two();
        AgeingCache {
            slots: (0..n).map(|_| Slot::default()).collect(),
            mask: n - 1,
            max_age,
        }
    }

    #[inline(always)]
    fn home(&self, key: u64) -> usize {
        // Fibonacci hashing: spreads consecutive IPs and MACs.
        (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize & self.mask
    }

    #[inline(always)]
    fn probe(&self, key: u64) -> impl Iterator<Item = &Slot> {
        let home = self.home(key);
        (0..PROBES).map(move |i| &self.slots[(home + i) & self.mask])
    }

    fn alive(&self, seen: u32, now: u32) -> bool {
        seen == STATIC || (seen != FORGOTTEN && now.saturating_sub(seen) <= self.max_age)
    }

    /// Removes `key` (its slot stays, dead, until reused).
    pub fn forget(&self, key: u64) {
        if let Some(slot) = self
            .probe(key)
            .find(|s| s.key.load(Ordering::Acquire) == key)
        {
            slot.seen.store(FORGOTTEN, Ordering::Relaxed);
        }
    }

    /// The value of `key` if present and not aged out at time `now` (seconds).
    #[inline(always)]
    pub fn get(&self, key: u64, now: u32) -> Option<u64> {
        for slot in self.probe(key) {
            let k = slot.key.load(Ordering::Acquire);
            if k == key {
                let value = slot.value.load(Ordering::Relaxed);
                let seen = slot.seen.load(Ordering::Relaxed);
                fence(Ordering::Acquire);
                if slot.key.load(Ordering::Relaxed) != key {
                    return None;
                }
                return self.alive(seen, now).then_some(value);
            }
            if k == EMPTY {
                return None;
            }
        }
        None
    }

    /// Records `key → value` as seen at `now` (`STATIC` for an entry that never ages).
    pub fn learn(&self, key: u64, value: u64, now: u32) -> Learned {
        debug_assert!(key != EMPTY && key != BUSY);
        let mut reusable = None;
        for slot in self.probe(key) {
            let k = slot.key.load(Ordering::Acquire);
            if k == key {
                let seen = slot.seen.load(Ordering::Relaxed);
                if slot.value.load(Ordering::Relaxed) == value && self.alive(seen, now) {
                    // Refresh at most once a second: one store, no cache-line churn.
                    if seen != now && seen != STATIC {
                        slot.seen.store(now, Ordering::Relaxed);
                    }
                    return Learned::Refreshed;
                }
                if seen == STATIC && now != STATIC {
                    return Learned::Refreshed; // configured entries win over snooping
                }
                return self.rewrite(slot, key, key, value, now);
            }
            if k == EMPTY {
                reusable.get_or_insert((slot, EMPTY));
                break;
            }
            if k != BUSY
                && reusable.is_none()
                && !self.alive(slot.seen.load(Ordering::Relaxed), now)
            {
                reusable = Some((slot, k));
            }
        }
        match reusable {
            Some((slot, old)) => self.rewrite(slot, old, key, value, now),
            None => Learned::Full,
        }
    }

    /// Takes `slot` from `old` to `key → value` without a reader ever pairing a key
    /// with the wrong value.
    fn rewrite(&self, slot: &Slot, old: u64, key: u64, value: u64, now: u32) -> Learned {
        if slot
            .key
            .compare_exchange(old, BUSY, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return Learned::Full; // another lcore is writing this slot; the next frame retries
        }
        // The stores below must not be seen before BUSY: a reader that reads the new
        // value then re-reads the key (after its acquire fence) sees BUSY or later.
        fence(Ordering::Release);
        slot.value.store(value, Ordering::Relaxed);
        slot.seen.store(now, Ordering::Relaxed);
        slot.key.store(key, Ordering::Release);
        Learned::Updated
    }

    /// Every live entry at `now`: (key, value, seconds since seen or None if static).
    pub fn entries(&self, now: u32) -> Vec<(u64, u64, Option<u32>)> {
        self.slots
            .iter()
            .filter_map(|s| {
                let k = s.key.load(Ordering::Acquire);
                let seen = s.seen.load(Ordering::Relaxed);
                (k != EMPTY && k != BUSY && self.alive(seen, now)).then(|| {
                    let age = (seen != STATIC).then(|| now.saturating_sub(seen));
                    (k, s.value.load(Ordering::Relaxed), age)
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
    fn full() -> AgeingCache {
        let c = AgeingCache::new(PROBES, 1);
        for k in 1..=8 {
            assert_eq!(c.learn(k, k * 10, 0), Learned::Updated);
        }
        c
    }

    #[test]
    fn a_reader_never_pairs_a_key_with_another_keys_value() {
        loom::model(|| {
            // Which key learning key 9 evicts (the first dead slot it probes).
            let probe = full();
            probe.learn(9, 90, 5);
            let victim = (1..=8)
                .find(|&k| probe.get(k, 0).is_none())
                .expect("a slot reused");
            let cache = Arc::new(full());
            let writer = {
                let cache = Arc::clone(&cache);
                loom::thread::spawn(move || assert_eq!(cache.learn(9, 90, 5), Learned::Updated))
            };
            // A reader at time 0, to which the victim is still alive.
            let seen = cache.get(victim, 0);
            assert!(
                seen.is_none() || seen == Some(victim * 10),
                "key {victim} read with value {seen:?}"
            );
            writer.join().unwrap();
        });
    }
}
