//! Owned packet buffers and the fixed-size burst arrays the lcores move them in.
//!
//! An [`Mbuf`] owns one reference to a DPDK mbuf and frees it on drop; a [`Burst`]
//! is what `rx_burst` fills; a [`TxBuffer`] collects mbufs for one (port, queue)
//! and hands them to `tx_burst`. `Option<Mbuf>` has the layout of a raw mbuf
//! pointer, so the arrays are passed to DPDK as they are, with no copying.
use std::ptr::NonNull;

/// Packets per RX burst (as l3fwd's MAX_PKT_BURST).
pub const BURST_SIZE: usize = 32;
/// Packets a TX buffer holds before it is flushed.
pub(super) const TX_BUFFER_SIZE: usize = 2 * BURST_SIZE;

/// One owned reference to a single-segment or chained DPDK mbuf.
#[repr(transparent)]
pub struct Mbuf(NonNull<dpdk_sys::rte_mbuf>);

// SAFETY: an mbuf reference may move between lcores; DPDK's refcounts are atomic.
unsafe impl Send for Mbuf {}

impl Mbuf {
    pub(super) fn from_raw(raw: NonNull<dpdk_sys::rte_mbuf>) -> Self {
        Mbuf(raw)
    }

    fn raw(&self) -> &dpdk_sys::rte_mbuf {
        // SAFETY: we hold a reference, so the mbuf is alive and initialised.
        unsafe { self.0.as_ref() }
    }

    /// The packet's first segment as bytes (the whole frame for single-segment mbufs).
    #[inline(always)]
    pub fn data(&self) -> &[u8] {
        let m = self.raw();
        // SAFETY: buf_addr + data_off .. + data_len lies inside the mbuf's buffer.
        unsafe {
            std::slice::from_raw_parts(
                (m.buf_addr as *const u8).add(m.data_off as usize),
                m.data_len as usize,
            )
        }
    }

    /// The first segment, writable. Only sound while this is the only reference to
    /// the data, which holds unless [`Mbuf::share`] was called: then use [`Mbuf::is_shared`].
    #[inline(always)]
    pub fn data_mut(&mut self) -> Option<&mut [u8]> {
        if self.is_shared() {
            return None;
        }
        let m = self.raw();
        let (addr, off, len) = (
            m.buf_addr as *mut u8,
            m.data_off as usize,
            m.data_len as usize,
        );
        // SAFETY: as in data(); refcnt is 1 so no other holder reads these bytes.
        Some(unsafe { std::slice::from_raw_parts_mut(addr.add(off), len) })
    }

    /// The flow hash the port's RSS computed for this frame, if it did (the
    /// port was configured for RSS and the NIC hashed the frame).
    #[inline(always)]
    pub fn rss_hash(&self) -> Option<u32> {
        let m = self.raw();
        if m.ol_flags & u64::from(dpdk_sys::RTE_MBUF_F_RX_RSS_HASH) == 0 {
            return None;
        }
        // SAFETY: every variant of the hash union is plain integers; with the
        // RSS flag set the driver wrote `rss`.
        Some(unsafe { m.__bindgen_anon_2.hash.rss })
    }

    /// Total packet length over all segments.
    pub fn pkt_len(&self) -> u32 {
        self.raw().pkt_len
    }

    /// True if the frame continues in further segments.
    pub fn is_chained(&self) -> bool {
        self.raw().nb_segs > 1
    }

    /// True if another reference to this mbuf exists.
    pub fn is_shared(&self) -> bool {
        self.raw().refcnt != 1
    }

    /// A second reference to the same frame, for flooding it to several ports: the
    /// reference count of every segment of the chain goes up by one, as dropping
    /// a reference frees the whole chain. Neither reference may then write the data.
    pub fn share(&self) -> Mbuf {
        // SAFETY: we hold a reference, so every segment of the chain is alive;
        // rte_pktmbuf_refcnt_update walks the chain and updates each segment's
        // count atomically.
        unsafe { dpdk_sys::rte_pktmbuf_refcnt_update(self.0.as_ptr(), 1) };
        Mbuf(self.0)
    }

    /// Appends the packet `tail` after this packet's last segment (a PMD does
    /// this for frames larger than one mbuf; tests and benchmarks build such
    /// frames with it). `tail` comes back when either packet is shared or the chain
    /// would be too long.
    pub fn chain(&mut self, tail: Mbuf) -> Result<(), Mbuf> {
        if self.is_shared() || tail.is_shared() {
            return Err(tail);
        }
        // SAFETY: both packets are alive and referenced only by us; on success
        // the head owns the tail's segments and frees them with its own.
        let rc = unsafe { dpdk_sys::rte_pktmbuf_chain(self.0.as_ptr(), tail.0.as_ptr()) };
        if rc != 0 {
            return Err(tail);
        }
        // Owned by the head now: dropping `tail` would free its segments twice.
        std::mem::forget(tail);
        Ok(())
    }

    /// A fresh mbuf's whole data room, from the data offset to the buffer's end,
    /// for a receive to write into; [`Mbuf::set_len`] then says how much it wrote.
    pub(super) fn room(&mut self) -> &mut [u8] {
        let m = self.raw();
        let (addr, off, len) = (
            m.buf_addr as *mut u8,
            m.data_off as usize,
            (m.buf_len - m.data_off) as usize,
        );
        debug_assert!(!self.is_shared() && !self.is_chained() && m.data_len == 0);
        // SAFETY: buf_addr + data_off .. buf_len lies inside the mbuf's buffer, and
        // a fresh mbuf's buffer is ours alone (refcnt 1, one segment).
        unsafe { std::slice::from_raw_parts_mut(addr.add(off), len) }
    }

    /// Sets a one-segment mbuf's length to `len` bytes of its room (what a
    /// receive wrote there).
    pub(super) fn set_len(&mut self, len: u16) {
        // SAFETY: we own the only reference; the fields are plain integers.
        let m = unsafe { self.0.as_mut() };
        debug_assert!(m.nb_segs == 1 && len <= m.buf_len - m.data_off);
        m.data_len = len;
        m.pkt_len = len as u32;
    }

    /// Appends `bytes` to the packet's last segment (used to build frames in tests
    /// and benchmarks). Returns false if it has no room.
    pub fn append(&mut self, bytes: &[u8]) -> bool {
        let Ok(len) = u16::try_from(bytes.len()) else {
            return false;
        };
        // SAFETY: rte_pktmbuf_append returns NULL or a pointer to `len` fresh bytes
        // inside the last segment's buffer.
        let dst = unsafe { dpdk_sys::rte_pktmbuf_append(self.0.as_ptr(), len) };
        if dst.is_null() {
            return false;
        }
        // SAFETY: dst points to bytes.len() writable bytes (see above).
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst as *mut u8, bytes.len()) };
        true
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own this reference; freeing drops exactly it.
        unsafe { dpdk_sys::rte_pktmbuf_free(self.0.as_ptr()) };
    }
}

/// Up to [`BURST_SIZE`] received mbufs.
pub struct Burst {
    slots: [Option<Mbuf>; BURST_SIZE],
    len: usize,
}

impl Default for Burst {
    fn default() -> Self {
        Burst {
            slots: std::array::from_fn(|_| None),
            len: 0,
        }
    }
}

impl Burst {
    /// Number of packets received into this burst.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Takes packet `i` out of the burst (None if taken already or out of range).
    #[inline(always)]
    pub fn take(&mut self, i: usize) -> Option<Mbuf> {
        self.slots.get_mut(i).and_then(Option::take)
    }

    /// Packet `i`, still in the burst.
    #[inline(always)]
    pub fn get(&self, i: usize) -> Option<&Mbuf> {
        self.slots.get(i).and_then(Option::as_ref)
    }

    /// Frees whatever is left and empties the burst.
    pub fn clear(&mut self) {
        self.slots[..self.len]
            .iter_mut()
            .for_each(|s| drop(s.take()));
        self.len = 0;
    }

    /// Adds `m` after the packets already in the burst (dropped if it is full).
    pub(super) fn push(&mut self, m: Mbuf) {
        if let Some(slot) = self.slots.get_mut(self.len) {
            *slot = Some(m);
            self.len += 1;
        }
    }

    /// Raw slot array for rx_burst; the burst must be empty.
    pub(super) fn fill_ptr(&mut self) -> *mut *mut dpdk_sys::rte_mbuf {
        debug_assert!(self.slots.iter().all(Option::is_none));
        self.slots.as_mut_ptr() as *mut *mut dpdk_sys::rte_mbuf
    }

    pub(super) fn set_len(&mut self, len: usize) {
        self.len = len.min(BURST_SIZE);
    }
}

impl Drop for Burst {
    fn drop(&mut self) {
        self.clear();
    }
}

/// Mbufs waiting to be sent on one (port, queue).
pub struct TxBuffer {
    slots: [Option<Mbuf>; TX_BUFFER_SIZE],
    len: usize,
}

impl Default for TxBuffer {
    fn default() -> Self {
        TxBuffer {
            slots: std::array::from_fn(|_| None),
            len: 0,
        }
    }
}

impl TxBuffer {
    /// Number of packets waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when a full burst is waiting and should be flushed now.
    #[inline(always)]
    pub fn has_full_burst(&self) -> bool {
        self.len >= BURST_SIZE
    }

    /// Queues `m`. Returns it back if the buffer is full (flush first).
    #[inline(always)]
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        match self.slots.get_mut(self.len) {
            Some(slot) => {
                *slot = Some(m);
                self.len += 1;
                Ok(())
            }
            None => Err(m),
        }
    }

    /// Hands what is queued to `tx_burst` (which takes ownership of the first
    /// mbufs, as many as it returns); frees the rest. Returns (sent, dropped).
    #[inline(always)]
    pub(super) fn flush(
        &mut self,
        tx_burst: impl FnOnce(*mut *mut dpdk_sys::rte_mbuf, u16) -> u16,
    ) -> (u32, u32) {
        if self.len == 0 {
            return (0, 0);
        }
        let sent = tx_burst(
            self.slots.as_mut_ptr() as *mut *mut dpdk_sys::rte_mbuf,
            self.len as u16,
        )
        .min(self.len as u16) as usize;
        // The PMD owns the first `sent` mbufs now: forget our references to them.
        self.slots[..sent]
            .iter_mut()
            .for_each(|s| std::mem::forget(s.take()));
        let dropped = self.len - sent;
        self.slots[sent..self.len]
            .iter_mut()
            .for_each(|s| drop(s.take()));
        self.len = 0;
        (sent as u32, dropped as u32)
    }
}

impl Drop for TxBuffer {
    fn drop(&mut self) {
        self.slots.iter_mut().for_each(|s| drop(s.take()));
    }
}
