//! Packet-buffer pools (`rte_pktmbuf_pool_create`).
use super::{errno_error, DpdkError};
use std::ffi::CString;
use std::ptr::NonNull;

/// A pool of packet buffers. Freed on drop (all mbufs must be back by then).
pub struct Mempool {
    raw: NonNull<dpdk_sys::rte_mempool>,
}

// SAFETY: DPDK mempools are multi-producer/multi-consumer safe; the handle is a
// pointer to shared hugepage memory.
unsafe impl Send for Mempool {}
// SAFETY: as above; all operations through &Mempool are thread-safe in DPDK.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Creates a pool of `count` mbufs with a per-lcore cache of `cache` and room for
    /// `data_room` bytes of packet data (headroom included).
    pub fn new(name: &str, count: u32, cache: u32, data_room: u16) -> Result<Self, DpdkError> {
        let cname = CString::new(name).map_err(|_| DpdkError::Nul(name.into()))?;
        // SAFETY: the EAL is initialised (a Mempool is only built after Eal::init);
        // the name is a valid C string.
        let raw = unsafe {
            dpdk_sys::rte_pktmbuf_pool_create(cname.as_ptr(), count, cache, 0, data_room, -1)
        };
        NonNull::new(raw)
            .map(|raw| Mempool { raw })
            .ok_or_else(|| errno_error("rte_pktmbuf_pool_create"))
    }

    /// Mbufs currently in the pool (not held by ports, queues or the application).
    pub fn available(&self) -> u32 {
        // SAFETY: the pool is valid for the lifetime of self.
        unsafe { dpdk_sys::rte_mempool_avail_count(self.raw.as_ptr()) }
    }

    /// Mbufs currently taken from the pool.
    pub fn in_use(&self) -> u32 {
        // SAFETY: the pool is valid for the lifetime of self.
        unsafe { dpdk_sys::rte_mempool_in_use_count(self.raw.as_ptr()) }
    }

    /// Allocates one mbuf (None when the pool is empty).
    pub fn alloc(&self) -> Option<super::Mbuf> {
        // SAFETY: the pool is valid; rte_pktmbuf_alloc returns an owned mbuf or NULL.
        let m = unsafe { dpdk_sys::rte_pktmbuf_alloc(self.raw.as_ptr()) };
        NonNull::new(m).map(super::Mbuf::from_raw)
    }

    pub(super) fn as_ptr(&self) -> *mut dpdk_sys::rte_mempool {
        self.raw.as_ptr()
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // SAFETY: we own the pool; ports using it were stopped and closed before.
        unsafe { dpdk_sys::rte_mempool_free(self.raw.as_ptr()) };
    }
}
