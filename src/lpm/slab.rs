//! Index allocation for a table's groups and tail records: fresh indices in
//! order, freed ones reused, and unlinked ones held back until the table's owner
//! says a grace period has passed, so that no reader can walk an index that was
//! given to another prefix.

/// The indices `0..capacity` of one kind of table storage.
#[derive(Debug)]
pub(super) struct Slab {
    capacity: u32,
    next_fresh: u32,
    free: Vec<u32>,
    retired: Vec<u32>,
}

impl Slab {
    pub(super) fn new(capacity: u32) -> Slab {
        Slab {
            capacity,
            next_fresh: 0,
            free: Vec::new(),
            retired: Vec::new(),
        }
    }

    /// Indices [`Slab::alloc`] can still hand out.
    pub(super) fn available(&self) -> u32 {
        self.capacity - self.next_fresh + self.free.len() as u32
    }

    /// An index for new storage; the caller has checked [`Slab::available`].
    pub(super) fn alloc(&mut self) -> u32 {
        self.free.pop().unwrap_or_else(|| {
            assert!(self.next_fresh < self.capacity, "reserved before use");
            self.next_fresh += 1;
            self.next_fresh - 1
        })
    }

    /// An index just unlinked: reusable after [`Slab::reclaim`].
    pub(super) fn retire(&mut self, index: u32) {
        self.retired.push(index);
    }

    /// Makes the retired indices reusable (after a grace period).
    pub(super) fn reclaim(&mut self) {
        self.free.append(&mut self.retired);
    }

    pub(super) fn retired(&self) -> usize {
        self.retired.len()
    }

    /// Indices linked into the table.
    pub(super) fn in_use(&self) -> u32 {
        self.next_fresh - (self.free.len() + self.retired.len()) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retired_indices_wait_for_reclaim() {
        let mut s = Slab::new(2);
        let (a, b) = (s.alloc(), s.alloc());
        assert_eq!((a, b, s.available()), (0, 1, 0));
        s.retire(a);
        assert_eq!((s.available(), s.in_use(), s.retired()), (0, 1, 1));
        s.reclaim();
        assert_eq!((s.available(), s.alloc()), (1, a));
    }
}
