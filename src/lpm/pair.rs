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
use super::{check_prefix, Fib, Rib, Stride, Table, TableError, MAX_NEXT_HOP};
use std::sync::Arc;

/// One route change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Add { net: u32, len: u8, next_hop: u32 },
    Delete { net: u32, len: u8 },
}

/// The two copies.
pub struct TablePair {
    live: Table,
    shadow: Table,
    /// Published changes not yet replayed on `shadow` (empty while staging).
    behind: Vec<Change>,
    /// Changes in `shadow` not yet published (a staged sync).
    ahead: Vec<Change>,
    stride: Stride,
    max_groups: u32,
}

impl TablePair {
    pub fn new(stride: Stride, max_groups: u32) -> TablePair {
        TablePair {
            live: Table::new(stride, max_groups),
            shadow: Table::new(stride, max_groups),
            behind: Vec::new(),
            ahead: Vec::new(),
            stride,
            max_groups,
        }
    }

    /// The published table.
    pub fn fib(&self) -> &Arc<Fib> {
        self.live.fib()
    }

    /// The routes of the published table.
    pub fn rib(&self) -> &Rib {
        self.live.rib()
    }

    /// The routes the table will have once what is staged is published.
    pub fn staged_rib(&self) -> &Rib {
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
        changes: &[Change],
        publish: impl FnOnce(Arc<Fib>),
    ) -> Result<(), TableError> {
        self.stage(changes)?;
        self.publish_staged(publish);
        Ok(())
    }

    /// Applies `changes` to the private copy only; they become visible with the
    /// next publication. On error the staged changes of this call are undone.
    pub fn stage(&mut self, changes: &[Change]) -> Result<(), TableError> {
        validate(changes)?;
        self.catch_up();
        if let Err(e) = apply_to(&mut self.shadow, changes) {
            // Out of groups half-way: rebuild the private copy from the live one
            // and what was staged before.
            let mut shadow = self.copy_of_live();
            let _ = apply_to(&mut shadow, &self.ahead);
            self.shadow = shadow;
            return Err(e);
        }
        // Unpublished: its unlinked groups can be reused at once.
        self.shadow.reclaim();
        self.ahead.extend_from_slice(changes);
        Ok(())
    }

    /// Publishes what is staged (nothing to do if nothing is).
    pub fn publish_staged(&mut self, publish: impl FnOnce(Arc<Fib>)) {
        if self.ahead.is_empty() {
            return;
        }
        publish(Arc::clone(self.shadow.fib()));
        std::mem::swap(&mut self.live, &mut self.shadow);
        // The readers have left the old copy (publish waited); it is brought up to
        // date by `catch_up`, which the caller may run after answering.
        self.behind = std::mem::take(&mut self.ahead);
    }

    /// Replays published changes on the private copy, if not done yet. `stage`
    /// does it first anyway; calling it when idle takes the work off the next
    /// batch's path.
    pub fn catch_up(&mut self) {
        if self.behind.is_empty() {
            return;
        }
        let behind = std::mem::take(&mut self.behind);
        if apply_to(&mut self.shadow, &behind).is_err() {
            self.shadow = self.copy_of_live();
        }
        self.shadow.reclaim();
    }

    /// A pair with a wide first level holding everything this one holds or has
    /// staged, all of it staged (nothing published yet): for a VR that outgrew its
    /// compact table. The caller publishes it like any staged change.
    pub fn widened(&self, max_groups: u32) -> Result<TablePair, TableError> {
        let mut wide = TablePair::new(Stride::Wide24, max_groups);
        let all: Vec<Change> = self
            .staged_rib()
            .iter()
            .map(|(net, len, next_hop)| Change::Add { net, len, next_hop })
            .collect();
        wide.stage(&all)?;
        Ok(wide)
    }

    fn copy_of_live(&self) -> Table {
        let mut t = Table::new(self.stride, self.max_groups);
        for (net, len, nh) in self.live.rib().iter() {
            // The live copy holds these routes in the same capacity: cannot fail.
            let _ = t.add(net, len, nh);
        }
        t
    }
}

fn validate(changes: &[Change]) -> Result<(), TableError> {
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

fn apply_to(t: &mut Table, changes: &[Change]) -> Result<(), TableError> {
    for c in changes {
        match *c {
            Change::Add { net, len, next_hop } => t.add(net, len, next_hop)?,
            Change::Delete { net, len } => {
                t.delete(net, len)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_publish_whole_and_both_copies_agree() {
        let mut p = TablePair::new(Stride::Compact16, 64);
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
        let mut p = TablePair::new(Stride::Compact16, 64);
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
    fn a_compact_pair_widens_with_its_routes_staged() {
        let mut p = TablePair::new(Stride::Compact16, 4);
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
        let mut p = TablePair::new(Stride::Compact16, 2);
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
            Err(TableError::Full(2))
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
