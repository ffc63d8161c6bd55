//! Large zeroed arrays of `AtomicU32` for route tables, each its own anonymous
//! mapping: pages are committed only when written, and big arrays can be aligned
//! to 2 MiB and advised as transparent huge pages (`MADV_HUGEPAGE`), so that a
//! 64 MiB first level costs 32 TLB entries instead of 16384.
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;

const HUGE_PAGE: usize = 2 << 20;

/// How an [`AtomicArray`] is backed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backing {
    /// Transparent huge pages where the kernel allows (2 MiB-aligned, `MADV_HUGEPAGE`).
    HugePages,
    /// Ordinary pages: memory grows 4 KiB at a time as entries are written.
    Pages,
}

/// An owned, zero-initialised `[AtomicU32]` in its own anonymous mapping.
pub struct AtomicArray {
    ptr: NonNull<AtomicU32>,
    len: usize,
    /// The whole mapping (the array starts at the first 2 MiB boundary in it).
    map: NonNull<libc::c_void>,
    map_len: usize,
}

// SAFETY: the array is a private mapping of atomics owned by this value; sharing
// atomics across threads is what they are for.
unsafe impl Send for AtomicArray {}
// SAFETY: as above; &AtomicArray only hands out &[AtomicU32].
unsafe impl Sync for AtomicArray {}

impl AtomicArray {
    /// `len` zeroed atomics (at least one). Panics if memory cannot be mapped, as
    /// `Vec` aborts when allocation fails.
    pub fn zeroed(len: usize, backing: Backing) -> AtomicArray {
        let len = len.max(1);
        let bytes = len * std::mem::size_of::<AtomicU32>();
        let huge = backing == Backing::HugePages && bytes >= HUGE_PAGE;
        let map_len = if huge { bytes + HUGE_PAGE } else { bytes };
        // SAFETY: a fresh private anonymous mapping; no existing memory is affected.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert!(
            map != libc::MAP_FAILED,
            "cannot map {map_len} bytes for a route table"
        );
        let offset = if huge {
            (HUGE_PAGE - map as usize % HUGE_PAGE) % HUGE_PAGE
        } else {
            0
        };
        // SAFETY: offset < HUGE_PAGE and offset + bytes <= map_len, inside the mapping.
        let start = unsafe { (map as *mut u8).add(offset) };
        if huge {
            // SAFETY: [start, start + bytes) lies in our mapping; madvise only changes
            // how the kernel backs it. A refusal (THP off) leaves ordinary pages.
            let _ =
                unsafe { libc::madvise(start as *mut libc::c_void, bytes, libc::MADV_HUGEPAGE) };
        }
        AtomicArray {
            ptr: NonNull::new(start as *mut AtomicU32).expect("mmap returned non-null"),
            len,
            map: NonNull::new(map).expect("mmap returned non-null"),
            map_len,
        }
    }
}

impl Deref for AtomicArray {
    type Target = [AtomicU32];
    fn deref(&self) -> &[AtomicU32] {
        // SAFETY: ptr points to len zero-initialised (anonymous mapping) AtomicU32,
        // suitably aligned (page-aligned), owned by self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for AtomicArray {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in zeroed(); no reference to it
        // outlives self.
        unsafe { libc::munmap(self.map.as_ptr(), self.map_len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn zeroed_aligned_and_writable() {
        for len in [1, 1000, 1 << 24] {
            let a = AtomicArray::zeroed(len, Backing::HugePages);
            assert_eq!(a.len(), len);
            assert!(a
                .iter()
                .step_by(4096)
                .all(|x| x.load(Ordering::Relaxed) == 0));
            a[len - 1].store(7, Ordering::Relaxed);
            assert_eq!(a[len - 1].load(Ordering::Relaxed), 7);
            if len * 4 >= HUGE_PAGE {
                assert_eq!(a.as_ptr() as usize % HUGE_PAGE, 0);
            }
        }
    }
}
