//! Atomic batches by left-right tables: two copies of a VR's table, one published
//! to the lcores, one private. A batch goes into the private copy, which is then
//! published (the caller swaps the RCU pointer and waits a grace period); the
//! batch is replayed on the copy that readers just left, after the caller has
//! answered ([`TablePair::catch_up`]) or before the next batch. Readers see the table
//! before the batch or after it, never half of it, and a batch costs its own size,
//! not a table copy. The price is twice the memory of one table.
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
    /// The last batch, not yet replayed on `shadow`.
    behind: Vec<Change>,
    stride: Stride,
    max_groups: u32,
}

impl TablePair {
    pub fn new(stride: Stride, max_groups: u32) -> TablePair {
        TablePair {
            live: Table::new(stride, max_groups),
            shadow: Table::new(stride, max_groups),
            behind: Vec::new(),
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

    pub fn stride(&self) -> Stride {
        self.stride
    }

    /// Memory of both copies.
    pub fn memory_bytes(&self) -> usize {
        self.live.memory_bytes() + self.shadow.memory_bytes()
    }

    /// Applies `changes` in order, atomically for readers. `publish` gets the new
    /// table and must return only when no reader can still use the old one. On
    /// error nothing is published and the table is as it was.
    pub fn apply(
        &mut self,
        changes: &[Change],
        publish: impl FnOnce(Arc<Fib>),
    ) -> Result<(), TableError> {
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
        self.catch_up();
        if let Err(e) = apply_to(&mut self.shadow, changes) {
            // Out of groups half-way: rebuild the private copy from the live one.
            self.shadow = self.copy_of_live();
            return Err(e);
        }
        // Unpublished: its unlinked groups can be reused at once.
        self.shadow.reclaim();
        publish(Arc::clone(self.shadow.fib()));
        std::mem::swap(&mut self.live, &mut self.shadow);
        // The readers have left the old copy (publish waited); it is brought up to
        // date by `catch_up`, which the caller may run after answering.
        self.behind = changes.to_vec();
        Ok(())
    }

    /// Replays the last batch on the private copy, if not done yet. `apply` does it
    /// first anyway; calling it when idle takes the work off the next batch's path.
    pub fn catch_up(&mut self) {
        let behind = std::mem::take(&mut self.behind);
        if apply_to(&mut self.shadow, &behind).is_err() {
            self.shadow = self.copy_of_live();
        }
        self.shadow.reclaim();
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
