//! Quiescent-state-based RCU (DPDK's `rte_rcu_qsbr`) and the one structure built on
//! it: [`RcuCell`], a pointer that lcores read without locks and a writer swaps,
//! freeing the old value only after every reader has passed a quiescent state.
//!
//! The borrow checker carries the protocol: a reader gets a [`ReadSection`] from
//! its [`RcuReader`]; values read through a section cannot outlive it; and
//! [`RcuReader::quiescent`] needs `&mut`, so no section (and no value read in it)
//! is alive when the lcore reports that it holds nothing.
use super::{check, DpdkError};
use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Arc;

/// A QSBR variable for up to `max_readers` reader threads.
pub struct Rcu {
    qs: NonNull<dpdk_sys::rte_rcu_qsbr>,
    layout: Layout,
    max_readers: u32,
}

// SAFETY: rte_rcu_qsbr is designed for concurrent use: readers update their own
// per-thread counters, writers read them; all with atomics.
unsafe impl Send for Rcu {}
// SAFETY: as above.
unsafe impl Sync for Rcu {}

impl Rcu {
    /// A variable for reader ids `0..max_readers`.
    pub fn new(max_readers: u32) -> Result<Rcu, DpdkError> {
        // SAFETY: pure computation.
        let size = unsafe { dpdk_sys::rte_rcu_qsbr_get_memsize(max_readers) };
        if size == 0 {
            return Err(super::errno_error("rte_rcu_qsbr_get_memsize"));
        }
        let layout = Layout::from_size_align(size, 64).expect("QSBR size");
        // SAFETY: non-zero size.
        let raw = unsafe { alloc_zeroed(layout) } as *mut dpdk_sys::rte_rcu_qsbr;
        let qs = NonNull::new(raw).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        let rcu = Rcu {
            qs,
            layout,
            max_readers,
        };
        // SAFETY: qs points to `size` zeroed, cache-line-aligned bytes, as DPDK requires.
        check("rte_rcu_qsbr_init", unsafe {
            dpdk_sys::rte_rcu_qsbr_init(qs.as_ptr(), max_readers)
        })?;
        Ok(rcu)
    }

    /// Registers reader `id` (< max_readers) and puts it online. Each id may have
    /// one reader at a time; it goes offline and unregisters on drop.
    pub fn reader(&self, id: u32) -> Result<RcuReader<'_>, DpdkError> {
        if id >= self.max_readers {
            return Err(super::call_error(
                format!("RCU reader {id} of {}", self.max_readers),
                22,
            ));
        }
        // SAFETY: initialised variable, id in range.
        check("rte_rcu_qsbr_thread_register", unsafe {
            dpdk_sys::rte_rcu_qsbr_thread_register(self.qs.as_ptr(), id)
        })?;
        // SAFETY: registered id.
        unsafe { dpdk_sys::rte_rcu_qsbr_thread_online(self.qs.as_ptr(), id) };
        Ok(RcuReader { rcu: self, id })
    }

    /// Waits until every online reader has reported a quiescent state (a grace
    /// period). Call from a thread that is not one of the readers.
    pub fn synchronize(&self) {
        // SAFETY: initialised variable; the caller is not a reader (THRID_INVALID).
        unsafe {
            dpdk_sys::rte_rcu_qsbr_synchronize(self.qs.as_ptr(), dpdk_sys::RTE_QSBR_THRID_INVALID)
        };
    }
}

impl Drop for Rcu {
    fn drop(&mut self) {
        // SAFETY: allocated in new() with this layout; readers borrow self, so none
        // is left.
        unsafe { dealloc(self.qs.as_ptr() as *mut u8, self.layout) };
    }
}

/// One reader (an lcore). Not `Send`: it reports for the thread that made it.
pub struct RcuReader<'r> {
    rcu: &'r Rcu,
    id: u32,
}

impl RcuReader<'_> {
    /// Opens a read-side section; values read in it live as long as it does.
    #[inline(always)]
    pub fn section(&self) -> ReadSection<'_> {
        ReadSection { rcu: self.rcu }
    }

    /// Runs `f` (a sleep) with this reader offline, so that writers do not wait for
    /// it meanwhile.
    pub fn offline_while<R>(&mut self, f: impl FnOnce() -> R) -> R {
        // SAFETY: registered id; &mut self means no section is alive.
        unsafe { dpdk_sys::rte_rcu_qsbr_thread_offline(self.rcu.qs.as_ptr(), self.id) };
        let r = f();
        // SAFETY: as above; back online before any new section can start.
        unsafe { dpdk_sys::rte_rcu_qsbr_thread_online(self.rcu.qs.as_ptr(), self.id) };
        r
    }

    /// Reports that this reader holds no reference into RCU-protected data.
    #[inline(always)]
    pub fn quiescent(&mut self) {
        // SAFETY: registered, online id of this reader.
        unsafe { dpdk_sys::rte_rcu_qsbr_quiescent(self.rcu.qs.as_ptr(), self.id) };
    }
}

impl Drop for RcuReader<'_> {
    fn drop(&mut self) {
        // SAFETY: registered id; after offline + unregister writers stop waiting for it.
        unsafe {
            dpdk_sys::rte_rcu_qsbr_thread_offline(self.rcu.qs.as_ptr(), self.id);
            dpdk_sys::rte_rcu_qsbr_thread_unregister(self.rcu.qs.as_ptr(), self.id);
        }
    }
}

/// Proof that the holder is inside a read-side section of one [`Rcu`].
pub struct ReadSection<'a> {
    rcu: &'a Rcu,
}

impl ReadSection<'_> {
    /// True if this is a section of `rcu`.
    pub fn of(&self, rcu: &Rcu) -> bool {
        std::ptr::eq(self.rcu, rcu)
    }
}

/// An RCU-protected, swappable `Arc<T>`.
pub struct RcuCell<T> {
    ptr: AtomicPtr<T>,
    rcu: Arc<Rcu>,
}

// SAFETY: the cell hands out &T to many threads (T: Sync) and drops T on whichever
// thread replaces or drops it (T: Send).
unsafe impl<T: Send + Sync> Send for RcuCell<T> {}
// SAFETY: as above; the pointer itself is an atomic.
unsafe impl<T: Send + Sync> Sync for RcuCell<T> {}

impl<T> RcuCell<T> {
    /// A cell holding `value`, protected by `rcu`.
    pub fn new(value: Arc<T>, rcu: Arc<Rcu>) -> Self {
        RcuCell {
            ptr: AtomicPtr::new(Arc::into_raw(value) as *mut T),
            rcu,
        }
    }

    /// The current value, valid for the section.
    #[inline(always)]
    pub fn read<'a>(&'a self, section: &'a ReadSection<'_>) -> &'a T {
        assert!(
            std::ptr::eq(section.rcu, &*self.rcu),
            "section of another RCU variable"
        );
        // SAFETY: the pointer came from Arc::into_raw and is freed only by replace(),
        // after a grace period of this cell's Rcu; the section proves the caller is a
        // reader of that Rcu that has not reported quiescence since it started
        // (quiescent needs &mut RcuReader, which the section borrows).
        unsafe { &*self.ptr.load(Ordering::Acquire) }
    }

    /// Publishes `value` and returns the old one once no reader can hold it.
    pub fn replace(&self, value: Arc<T>) -> Arc<T> {
        let old = self
            .ptr
            .swap(Arc::into_raw(value) as *mut T, Ordering::AcqRel);
        self.rcu.synchronize();
        // SAFETY: `old` came from Arc::into_raw; after the grace period no reader
        // holds a reference obtained through the cell, and we took it out of the
        // cell, so this is the cell's one owning reference.
        unsafe { Arc::from_raw(old) }
    }
}

impl<T> Drop for RcuCell<T> {
    fn drop(&mut self) {
        // SAFETY: from Arc::into_raw; dropping the cell means no section borrows it.
        drop(unsafe { Arc::from_raw(self.ptr.load(Ordering::Acquire)) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU64};

    /// Readers keep reading while a writer swaps values; every value a reader sees is
    /// intact (its two halves agree) and freed values are never read (the checker
    /// counts drops of values still visible).
    #[test]
    fn readers_never_see_freed_values() {
        struct Value {
            a: u64,
            b: u64,
            alive: Arc<AtomicU64>,
        }
        impl Drop for Value {
            fn drop(&mut self) {
                self.a = u64::MAX; // poison
                self.alive.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let rcu = Arc::new(Rcu::new(4).unwrap());
        let alive = Arc::new(AtomicU64::new(1));
        let cell = RcuCell::new(
            Arc::new(Value {
                a: 0,
                b: 0,
                alive: alive.clone(),
            }),
            rcu.clone(),
        );
        let stop = AtomicBool::new(false);
        let started = std::sync::Barrier::new(3);
        std::thread::scope(|s| {
            for id in 0..2 {
                let (rcu, cell, stop, started) = (&rcu, &cell, &stop, &started);
                s.spawn(move || {
                    let mut reader = rcu.reader(id).unwrap();
                    started.wait();
                    let mut reads = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        {
                            let section = reader.section();
                            let v = cell.read(&section);
                            assert_ne!(v.a, u64::MAX, "read a freed value");
                            assert_eq!(v.a, v.b, "torn value");
                            reads += 1;
                        }
                        reader.quiescent();
                    }
                    assert!(reads > 0);
                });
            }
            started.wait();
            for i in 1..=300u64 {
                alive.fetch_add(1, Ordering::SeqCst);
                drop(cell.replace(Arc::new(Value {
                    a: i,
                    b: i,
                    alive: alive.clone(),
                })));
            }
            stop.store(true, Ordering::Relaxed);
        });
        assert_eq!(
            alive.load(Ordering::SeqCst),
            1,
            "every replaced value was freed"
        );
    }

    #[test]
    fn reader_ids_are_bounded() {
        let rcu = Rcu::new(2).unwrap();
        assert!(rcu.reader(2).is_err());
        let _r = rcu.reader(1).unwrap();
    }
}
