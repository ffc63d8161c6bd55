//! Both families' tables of one VR: a batch of IPv4 and IPv6 changes
//! ([`Batch`]) is staged into both private copies and published together, or
//! refused whole ([`DualPair`]). Each family keeps its own [`TablePair`]; this
//! type only keeps the two in step, so the route writer handles a dual-stack
//! VR's batch as it handles one table's.
use super::{Change, Fib, TableError, TablePair};
use std::sync::Arc;

/// Changes of both families. Each family's are applied in order; the two
/// tables are independent, so the order between them does not matter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    pub v4: Vec<Change<u32>>,
    pub v6: Vec<Change<u128>>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Appends `other`'s changes after this batch's.
    pub fn extend_from(&mut self, other: &Batch) {
        self.v4.extend_from_slice(&other.v4);
        self.v6.extend_from_slice(&other.v6);
    }
}

/// Where a batch starts among each family's staged changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mark {
    pub v4: usize,
    pub v6: usize,
}

/// How many of a batch's changes of each family are staged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Staged {
    pub v4: usize,
    pub v6: usize,
}

/// Which family's table refused a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The IPv4 table: everything of the batch staged so far is undone, so the
    /// caller may widen the IPv4 pair and stage the batch again.
    V4(TableError),
    /// The IPv6 table: both families' parts of the batch are undone.
    V6(TableError),
}

impl Refused {
    pub fn error(self) -> TableError {
        match self {
            Refused::V4(e) | Refused::V6(e) => e,
        }
    }
}

/// One VR's IPv4 and IPv6 table pairs.
pub struct DualPair {
    pub v4: TablePair<u32>,
    pub v6: TablePair<u128>,
}

impl DualPair {
    pub fn mark(&self) -> Mark {
        Mark {
            v4: self.v4.mark(),
            v6: self.v6.mark(),
        }
    }

    /// Stages `batch` from where `staged` stands until about `budget` entries are
    /// written (IPv4 changes first); true once all of it is staged. Both private
    /// copies must be caught up ([`DualPair::catch_up_some`] returned true).
    /// `next_hops` hears the next hop each change replaced and the one it put in.
    pub fn stage_some(
        &mut self,
        mark: Mark,
        batch: &Batch,
        staged: &mut Staged,
        budget: u64,
        next_hops: &mut impl FnMut(Option<u32>, Option<u32>),
    ) -> Result<bool, Refused> {
        let start = self.work();
        if staged.v4 < batch.v4.len() {
            staged.v4 += self
                .v4
                .stage_some(mark.v4, &batch.v4[staged.v4..], budget, next_hops)
                .map_err(Refused::V4)?;
        }
        let left = budget.saturating_sub(self.work() - start);
        if staged.v4 == batch.v4.len() && staged.v6 < batch.v6.len() && left > 0 {
            match self
                .v6
                .stage_some(mark.v6, &batch.v6[staged.v6..], left, next_hops)
            {
                Ok(n) => staged.v6 += n,
                Err(e) => {
                    self.v4.unstage(mark.v4);
                    return Err(Refused::V6(e));
                }
            }
        }
        Ok(staged.v4 == batch.v4.len() && staged.v6 == batch.v6.len())
    }

    /// Stages all of `batch` at once (catching up first).
    pub fn stage(&mut self, batch: &Batch) -> Result<(), Refused> {
        self.catch_up_some(u64::MAX);
        let mut staged = Staged::default();
        self.stage_some(self.mark(), batch, &mut staged, u64::MAX, &mut |_, _| {})
            .map(|_| ())
    }

    /// Undoes what both families staged after `mark`.
    pub fn unstage(&mut self, mark: Mark) {
        self.v4.unstage(mark.v4);
        self.v6.unstage(mark.v6);
    }

    /// Publishes what each family has staged (a family with nothing staged is
    /// left alone: its readers see no new table).
    pub fn publish_staged(
        &mut self,
        v4: impl FnOnce(Arc<Fib<u32>>),
        v6: impl FnOnce(Arc<Fib<u128>>),
    ) {
        self.v4.publish_staged(v4);
        self.v6.publish_staged(v6);
    }

    /// Replays published changes on both private copies until about `budget`
    /// entries are written; true once both are caught up.
    pub fn catch_up_some(&mut self, budget: u64) -> bool {
        let start = self.work();
        if !self.v4.catch_up_some(budget) {
            return false;
        }
        let left = budget.saturating_sub(self.work() - start).max(1);
        self.v6.catch_up_some(left)
    }

    /// Entries written in all four copies so far.
    pub fn work(&self) -> u64 {
        self.v4.work() + self.v6.work()
    }

    /// Memory all four copies will hold once what is staged is published.
    pub fn settled_memory_bytes(&self) -> usize {
        self.v4.settled_memory_bytes() + self.v6.settled_memory_bytes()
    }

    /// Routes of both families once what is staged is published.
    pub fn staged_len(&self) -> usize {
        self.v4.staged_rib().len() + self.v6.staged_rib().len()
    }

    /// Routes of both families the lcores see.
    pub fn len(&self) -> usize {
        self.v4.rib().len() + self.v6.rib().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lpm::Stride;

    fn pair(v6_groups: u32) -> DualPair {
        DualPair {
            v4: TablePair::new(Stride::Compact16, 8),
            v6: TablePair::new(Stride::Wide24, v6_groups),
        }
    }

    fn add4(net: u32, len: u8, next_hop: u32) -> Change<u32> {
        Change::Add { net, len, next_hop }
    }

    fn add6(net: u128, len: u8, next_hop: u32) -> Change<u128> {
        Change::Add { net, len, next_hop }
    }

    fn stage_all(p: &mut DualPair, batch: &Batch, budget: u64) -> Result<usize, Refused> {
        p.catch_up_some(u64::MAX);
        let (mark, mut staged, mut calls) = (p.mark(), Staged::default(), 0);
        loop {
            calls += 1;
            if p.stage_some(mark, batch, &mut staged, budget, &mut |_, _| {})? {
                return Ok(calls);
            }
        }
    }

    #[test]
    fn a_dual_stack_batch_publishes_both_families_together() {
        let mut p = pair(64);
        let batch = Batch {
            v4: (0..4)
                .map(|i| add4((10 << 24) | (i << 16), 16, 1))
                .collect(),
            v6: (0..4)
                .map(|i| add6((0x2001 << 112) | (i << 80), 48, 2))
                .collect(),
        };
        assert!(
            stage_all(&mut p, &batch, 1).unwrap() > 2,
            "a budget at a time"
        );
        assert!(p.is_empty(), "nothing visible before publication");
        assert_eq!(p.staged_len(), 8);
        let (mut f4, mut f6) = (None, None);
        p.publish_staged(|f| f4 = Some(f), |f| f6 = Some(f));
        assert_eq!(f4.unwrap().lookup((10 << 24) | (3 << 16) | 9), Some(1));
        assert_eq!(f6.unwrap().lookup((0x2001 << 112) | (3 << 80) | 9), Some(2));
        while !p.catch_up_some(1) {}
        assert_eq!(p.len(), 8);
    }

    #[test]
    fn a_batch_the_ipv6_table_refuses_leaves_both_families_as_they_were() {
        let mut p = pair(8);
        p.v4.apply(&[add4(10 << 24, 8, 1)], |_| {}).unwrap();
        // Nine /64s far apart: more records than the IPv6 table holds.
        let batch = Batch {
            v4: vec![
                add4(11 << 24, 8, 1),
                Change::Delete {
                    net: 10 << 24,
                    len: 8,
                },
            ],
            v6: (0..9u128).map(|i| add6(i << 120, 64, 2)).collect(),
        };
        let refused = stage_all(&mut p, &batch, u64::MAX).unwrap_err();
        assert!(
            matches!(refused, Refused::V6(TableError::Full(_))),
            "{refused:?}"
        );
        assert_eq!(p.staged_len(), 1, "the IPv4 part was undone too");
        p.publish_staged(|_| panic!("nothing to publish"), |_| panic!("nothing"));
        assert_eq!(p.v4.fib().lookup(10 << 24), Some(1));
        // Refused with no IPv4 part: the IPv4 copies are not rebuilt.
        let work = p.v4.work();
        let v6_only = Batch {
            v4: vec![],
            v6: batch.v6.clone(),
        };
        assert!(matches!(
            stage_all(&mut p, &v6_only, u64::MAX),
            Err(Refused::V6(_))
        ));
        assert_eq!(p.v4.work(), work, "the IPv4 copies untouched");
    }

    #[test]
    fn a_family_with_nothing_staged_publishes_nothing() {
        let mut p = pair(8);
        let batch = Batch {
            v4: vec![],
            v6: vec![add6(0, 0, 3)],
        };
        stage_all(&mut p, &batch, u64::MAX).unwrap();
        let mut v6 = false;
        p.publish_staged(|_| panic!("no IPv4 change"), |_| v6 = true);
        assert!(v6);
    }
}
