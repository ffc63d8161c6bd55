//! Atomic batches by left-right tables: two copies of a VR's table, one published
//! to the lcores, one private. A batch goes into the private copy, which is then
//! published (the caller swaps the RCU pointer and waits a grace period); the
//! batch is replayed on the copy that readers just left, after the caller has
//! answered ([`TablePair::catch_up`]) or before the next batch. Readers see the
//! table before the batch or after it, never half of it, and a batch costs its own
//! size, not a table copy. The price is twice the memory of one table.
//!
//! A full sync is staged: its batches go into the private copy only
//! ([`TablePair::stage`]) and become visible together at its end
//! ([`TablePair::publish_staged`]), so the table is written once on the way to
//! the lcores and replayed on the other copy afterwards.
//!
//! Staging and replaying can be done a budget at a time
//! ([`TablePair::stage_some`], [`TablePair::catch_up_some`]), counted in table
//! entries written: nothing is visible before publication, so the route writer
//! can interleave one VR's large batch with other VRs' work and still publish it
//! whole.
use super::{check_prefix, Address, Fib, Rib, Stride, Table, TableError, MAX_NEXT_HOP};
use std::sync::Arc;

/// One route change (IPv4 by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change<A: Address = u32> {
    Add { net: A, len: u8, next_hop: u32 },
    Delete { net: A, len: u8 },
}

impl<A: Address> Change<A> {
    /// The prefix the change is about.
    pub fn prefix(&self) -> (A, u8) {
        match *self {
            Change::Add { net, len, .. } | Change::Delete { net, len } => (net, len),
        }
    }

    /// The next hop the change puts in (None: it deletes).
    pub fn next_hop(&self) -> Option<u32> {
        match *self {
            Change::Add { next_hop, .. } => Some(next_hop),
            Change::Delete { .. } => None,
        }
    }
}

/// The two copies.
pub struct TablePair<A: Address = u32> {
    live: Table<A>,
    shadow: Table<A>,
    /// Published changes, replayed on `shadow` up to `replayed`.
    behind: Vec<Change<A>>,
    replayed: usize,
    /// Changes in `shadow` not yet published (a staged sync).
    ahead: Vec<Change<A>>,
    stride: Stride,
    max_groups: u32,
}

impl<A: Address> TablePair<A> {
    pub fn new(stride: Stride, max_groups: u32) -> TablePair<A> {
        TablePair {
            live: Table::new(stride, max_groups),
            shadow: Table::new(stride, max_groups),
            behind: Vec::new(),
            replayed: 0,
            ahead: Vec::new(),
            stride,
            max_groups,
        }
    }

    /// The published table.
    pub fn fib(&self) -> &Arc<Fib<A>> {
        self.live.fib()
    }

    /// The routes of the published table.
    pub fn rib(&self) -> &Rib<A> {
        self.live.rib()
    }

    /// The routes the table will have once what is staged is published.
    pub fn staged_rib(&self) -> &Rib<A> {
        if self.ahead.is_empty() {
            self.live.rib()
        } else {
            self.shadow.rib()
        }
    }

    pub fn stride(&self) -> Stride {
        self.stride
    }

    /// Applies `changes` in order, atomically for readers, together with anything
    /// staged. `publish` gets the new table and must return only when no reader
    /// can still use the old one. On error nothing is published and the table and
    /// the staged changes are as they were.
    pub fn apply(
        &mut self,
        changes: &[Change<A>],
        publish: impl FnOnce(Arc<Fib<A>>),
    ) -> Result<(), TableError> {
        self.stage(changes)?;
        self.publish_staged(publish);
        Ok(())
    }

    /// Applies `changes` to the private copy only; they become visible with the
    /// next publication. On error the staged changes of this call are undone.
    pub fn stage(&mut self, changes: &[Change<A>]) -> Result<(), TableError> {
        validate(changes)?;
        self.catch_up();
        let mark = self.mark();
        self.stage_some(mark, changes, u64::MAX, &mut |_, _| {})
            .map(|_| ())
    }

    /// Where a batch starts among the staged changes, for [`TablePair::stage_some`].
    pub fn mark(&self) -> usize {
        self.ahead.len()
    }

    /// Stages changes from the front of `changes` (already validated) until about
    /// `budget` entries are written, at least one; returns how many it staged,
    /// telling `staged_next_hops` the next hop each change replaced and the one it
    /// put in (None: no route). The private copy must be caught up
    /// ([`TablePair::catch_up_some`] returned true). On error everything staged
    /// since `mark` (this batch's earlier calls included) is undone.
    pub fn stage_some(
        &mut self,
        mark: usize,
        changes: &[Change<A>],
        budget: u64,
        staged_next_hops: &mut impl FnMut(Option<u32>, Option<u32>),
    ) -> Result<usize, TableError> {
        debug_assert!(self.behind.is_empty(), "stage on a caught-up copy");
        let start = self.shadow.work();
        let mut staged = 0;
        for c in changes {
            if staged > 0 && self.shadow.work() - start >= budget {
                break;
            }
            match apply_one(&mut self.shadow, c) {
                Ok((old, new)) => staged_next_hops(old, new),
                Err(e) => {
                    self.rollback(mark);
                    return Err(e);
                }
            }
            self.ahead.push(*c);
            staged += 1;
        }
        // Unpublished: its unlinked groups can be reused at once.
        self.shadow.reclaim();
        Ok(staged)
    }

    /// Undoes the staged changes after `mark` (a batch refused after staging):
    /// the private copy is rebuilt from the live one and what was staged before.
    /// With nothing staged after `mark` the copy is as it was and is kept (a
    /// rebuild costs the whole table: a dual-stack batch refused for its IPv6
    /// part must not rebuild an untouched IPv4 copy).
    pub fn unstage(&mut self, mark: usize) {
        if self.ahead.len() > mark {
            self.rollback(mark);
        }
    }

    /// Memory both copies will hold once what is staged is published and
    /// replayed (see [`Table::memory_bytes`]).
    pub fn settled_memory_bytes(&self) -> usize {
        let newest = if self.ahead.is_empty() {
            &self.live
        } else {
            &self.shadow
        };
        2 * newest.memory_bytes()
    }

    /// Undoes the staged changes after `mark`: the private copy is rebuilt from
    /// the live one and what was staged before (out of groups half-way).
    fn rollback(&mut self, mark: usize) {
        self.ahead.truncate(mark);
        let mut shadow = self.copy_of_live();
        let _ = apply_to(&mut shadow, &self.ahead);
        self.shadow = shadow;
    }

    /// Publishes what is staged (nothing to do if nothing is).
    pub fn publish_staged(&mut self, publish: impl FnOnce(Arc<Fib<A>>)) {
        if self.ahead.is_empty() {
            return;
        }
        debug_assert!(self.behind.is_empty(), "staged on a caught-up copy");
        publish(Arc::clone(self.shadow.fib()));
        std::mem::swap(&mut self.live, &mut self.shadow);
        // The readers have left the old copy (publish waited); it is brought up to
        // date by `catch_up`, which the caller may run after answering.
        self.behind = std::mem::take(&mut self.ahead);
        self.replayed = 0;
    }

    /// Replays published changes on the private copy, if not done yet. `stage`
    /// does it first anyway; calling it when idle takes the work off the next
    /// batch's path.
    pub fn catch_up(&mut self) {
        self.catch_up_some(u64::MAX);
    }

    /// Replays published changes on the private copy until about `budget`
    /// entries are written; true once it is caught up.
    pub fn catch_up_some(&mut self, budget: u64) -> bool {
        let start = self.shadow.work();
        while let Some(c) = self.behind.get(self.replayed) {
            if self.shadow.work() - start >= budget {
                return false;
            }
            if apply_one(&mut self.shadow, c).is_err() {
                self.shadow = self.copy_of_live();
                break;
            }
            self.replayed += 1;
        }
        // A large sync's list goes with it: an idle VR keeps only its tables.
        self.behind = Vec::new();
        self.replayed = 0;
        self.shadow.reclaim();
        true
    }

    /// Entries written in both copies so far (see [`Table::work`]).
    pub fn work(&self) -> u64 {
        self.live.work() + self.shadow.work()
    }

    /// A pair with a wide first level holding everything this one holds or has
    /// staged, all of it staged (nothing published yet): for a VR that outgrew its
    /// compact table. The caller publishes it like any staged change.
    pub fn widened(&self, max_groups: u32) -> Result<TablePair<A>, TableError> {
        let mut wide = TablePair::new(Stride::Wide24, max_groups);
        let all: Vec<Change<A>> = self
            .staged_rib()
            .iter()
            .map(|(net, len, next_hop)| Change::Add { net, len, next_hop })
            .collect();
        wide.stage(&all)?;
        Ok(wide)
    }

    fn copy_of_live(&self) -> Table<A> {
        let mut t = Table::new(self.stride, self.max_groups);
        for (net, len, nh) in self.live.rib().iter() {
            // The live copy holds these routes in the same capacity: cannot fail.
            let _ = t.add(net, len, nh);
        }
        t
    }
}

/// Checks every change before any is applied (prefix, length, next-hop range).
pub fn validate<A: Address>(changes: &[Change<A>]) -> Result<(), TableError> {
    for c in changes {
        match *c {
            Change::Add { net, len, next_hop } => {
                check_prefix(net, len)?;
                if next_hop > MAX_NEXT_HOP {
                    return Err(TableError::NextHopRange(next_hop));
                }
            }
            Change::Delete { net, len } => check_prefix(net, len)?,
        }
    }
    Ok(())
}

fn apply_to<A: Address>(t: &mut Table<A>, changes: &[Change<A>]) -> Result<(), TableError> {
    changes.iter().try_for_each(|c| apply_one(t, c).map(|_| ()))
}

/// Applies `c`; returns the next hop it replaced and the one it put in.
fn apply_one<A: Address>(
    t: &mut Table<A>,
    c: &Change<A>,
) -> Result<(Option<u32>, Option<u32>), TableError> {
    match *c {
        Change::Add { net, len, next_hop } => {
            t.add(net, len, next_hop).map(|old| (old, Some(next_hop)))
        }
        Change::Delete { net, len } => t.delete(net, len).map(|old| (old, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_change() -> impl Strategy<Value = Change> {
        let prefix = (any::<u32>(), 0u8..=32).prop_map(|(a, l)| (a & u32::mask(l), l));
        (prefix, 0u32..50, any::<bool>()).prop_map(|((net, len), next_hop, add)| match add {
            true => Change::Add { net, len, next_hop },
            false => Change::Delete { net, len },
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Batches into a compact pair of a few groups, widened when one does not
        /// fit (as the route writer does): whatever the sequence, the published
        /// table and the replayed copy answer what the by-the-book longest match
        /// over the routes answers, before and after the pair widens.
        #[test]
        fn a_pair_that_widens_matches_the_reference(
            batches in proptest::collection::vec(proptest::collection::vec(arb_change(), 1..30), 1..8),
            probes in proptest::collection::vec(any::<u32>(), 32),
        ) {
            let mut p: TablePair = TablePair::new(Stride::Compact16, 24);
            for batch in &batches {
                if let Err(TableError::Full(_)) = p.stage(batch) {
                    let mut wide = p.widened(1 << 12).unwrap();
                    wide.stage(batch).unwrap();
                    p = wide;
                }
                p.publish_staged(|_| {});
                p.catch_up();
                let mut addrs = probes.clone();
                addrs.extend(p.rib().iter().flat_map(|(n, l, _)| [n, n | !u32::mask(l)]));
                for a in addrs {
                    let want = p.rib().longest_match(a).map(|(_, nh)| nh);
                    prop_assert_eq!(p.fib().lookup(a), want);
                    prop_assert_eq!(p.shadow.fib().lookup(a), want, "the replayed copy");
                }
            }
        }
    }

    #[test]
    fn batches_publish_whole_and_both_copies_agree() {
        let mut p: TablePair = TablePair::new(Stride::Compact16, 64);
        let mut published = Vec::new();
        let adds: Vec<Change> = (0..10u32)
            .map(|i| Change::Add {
                net: (10 << 24) | (i << 8),
                len: 24,
                next_hop: i + 1,
            })
            .collect();
        p.apply(&adds, |f| published.push(f)).unwrap();
        assert_eq!(published.len(), 1);
        let fib = &published[0];
        for i in 0..10u32 {
            assert_eq!(
                fib.lookup((10 << 24) | (i << 8) | 7),
                Some(i + 1),
                "the published copy has the whole batch"
            );
        }
        let dels = [
            Change::Delete {
                net: 10 << 24,
                len: 24,
            },
            Change::Add {
                net: 11 << 24,
                len: 8,
                next_hop: 99,
            },
        ];
        p.apply(&dels, |f| published.push(f)).unwrap();
        let fib = &published[1];
        assert_eq!(fib.lookup((10 << 24) | 7), None);
        assert_eq!(fib.lookup((11 << 24) | 7), Some(99));
        assert!(Arc::ptr_eq(fib, p.fib()));
        // The other copy replays both batches.
        p.catch_up();
        assert_eq!(p.shadow.rib().len(), p.live.rib().len());
        assert_eq!(p.shadow.fib().lookup((11 << 24) | 1), Some(99));
    }

    #[test]
    fn staged_changes_appear_together() {
        let mut p: TablePair = TablePair::new(Stride::Compact16, 64);
        p.apply(
            &[Change::Add {
                net: 10 << 24,
                len: 8,
                next_hop: 1,
            }],
            |_| {},
        )
        .unwrap();
        p.stage(&[Change::Add {
            net: 20 << 24,
            len: 8,
            next_hop: 2,
        }])
        .unwrap();
        p.stage(&[Change::Delete {
            net: 10 << 24,
            len: 8,
        }])
        .unwrap();
        assert_eq!(
            p.fib().lookup(10 << 24),
            Some(1),
            "nothing visible before publication"
        );
        assert_eq!(p.fib().lookup(20 << 24), None);
        assert_eq!(p.staged_rib().len(), 1);
        let mut published = None;
        p.publish_staged(|f| published = Some(f));
        let fib = published.expect("published");
        assert_eq!(fib.lookup(10 << 24), None);
        assert_eq!(fib.lookup(20 << 24), Some(2));
        p.catch_up();
        assert_eq!(p.shadow.fib().lookup(20 << 24), Some(2));
        assert_eq!(p.shadow.fib().lookup(10 << 24), None);
    }

    #[test]
    fn a_batch_staged_a_budget_at_a_time_publishes_whole_or_not_at_all() {
        let mut p: TablePair = TablePair::new(Stride::Compact16, 16);
        let batch: Vec<Change> = (0..100u32)
            .map(|i| Change::Add {
                net: (10 << 24) | (i << 8),
                len: 24,
                next_hop: 1,
            })
            .chain([Change::Add {
                net: 0,
                len: 0,
                next_hop: 2,
            }])
            .collect();
        let mark = p.mark();
        let mut done = 0;
        let mut calls = 0;
        while done < batch.len() {
            done += p
                .stage_some(mark, &batch[done..], 64, &mut |_, _| {})
                .unwrap();
            calls += 1;
            assert_eq!(
                p.fib().lookup(1 << 24),
                None,
                "nothing visible while staging"
            );
        }
        assert!(calls > 2, "the /0 and the /24s took several budgets");
        let mut published = None;
        p.publish_staged(|f| published = Some(f));
        let fib = published.unwrap();
        assert_eq!(fib.lookup((10 << 24) | (99 << 8) | 1), Some(1));
        assert_eq!(fib.lookup(1 << 24), Some(2));
        // Replay a budget at a time, then both copies agree.
        let mut rounds = 0;
        while !p.catch_up_some(100) {
            rounds += 1;
        }
        assert!(rounds > 0);
        assert_eq!(p.shadow.rib().len(), p.live.rib().len());
        assert_eq!(p.shadow.fib().lookup(1 << 24), Some(2));

        // A batch that runs out of groups in its third call undoes its first two.
        let before = p.rib().len();
        let mark = p.mark();
        let grow: Vec<Change> = (0..20u32)
            .map(|i| Change::Add {
                net: (20 << 24) | (i << 16) | (1 << 8),
                len: 24,
                next_hop: 3,
            })
            .collect();
        let mut done = 0;
        let err = loop {
            match p.stage_some(mark, &grow[done..], 1, &mut |_, _| {}) {
                Ok(n) => done += n,
                Err(e) => break e,
            }
        };
        assert_eq!(err, TableError::Full(16));
        assert!(done > 1);
        assert_eq!(p.staged_rib().len(), before, "the whole batch was undone");
        p.publish_staged(|_| panic!("nothing to publish"));
    }

    #[test]
    fn a_compact_pair_widens_with_its_routes_staged() {
        let mut p: TablePair = TablePair::new(Stride::Compact16, 4);
        p.apply(
            &[Change::Add {
                net: 10 << 24,
                len: 24,
                next_hop: 1,
            }],
            |_| {},
        )
        .unwrap();
        p.stage(&[Change::Add {
            net: 11 << 24,
            len: 24,
            next_hop: 2,
        }])
        .unwrap();
        let mut wide = p.widened(64).unwrap();
        assert_eq!(wide.stride(), Stride::Wide24);
        assert!(wide.rib().is_empty(), "nothing published yet");
        let mut published = None;
        wide.publish_staged(|f| published = Some(f));
        let fib = published.unwrap();
        assert_eq!(fib.lookup((10 << 24) | 1), Some(1));
        assert_eq!(fib.lookup((11 << 24) | 1), Some(2));
    }

    #[test]
    fn a_failing_batch_changes_nothing() {
        // Four records: two lone /24s fit (one each, with room kept for splits), six do not.
        let mut p: TablePair = TablePair::new(Stride::Compact16, 4);
        p.apply(
            &[Change::Add {
                net: 10 << 24,
                len: 24,
                next_hop: 1,
            }],
            |_| {},
        )
        .unwrap();
        let before = p.rib().len();
        let too_many: Vec<Change> = (0..5u32)
            .map(|i| Change::Add {
                net: (20 + i) << 24,
                len: 24,
                next_hop: 2,
            })
            .collect();
        let mut published = false;
        assert_eq!(
            p.apply(&too_many, |_| published = true),
            Err(TableError::Full(4))
        );
        assert!(!published);
        assert_eq!(p.rib().len(), before);
        let bad = [
            Change::Add {
                net: 30 << 24,
                len: 24,
                next_hop: 3,
            },
            Change::Add {
                net: 1,
                len: 8,
                next_hop: 1,
            },
        ];
        assert!(matches!(
            p.apply(&bad, |_| published = true),
            Err(TableError::HostBits(..))
        ));
        assert!(!published);
        // And the pair still works.
        p.apply(
            &[Change::Add {
                net: 40 << 24,
                len: 24,
                next_hop: 4,
            }],
            |_| {},
        )
        .unwrap();
        assert_eq!(p.fib().lookup((40 << 24) | 1), Some(4));
    }
}
