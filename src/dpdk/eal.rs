//! EAL start-up and shutdown, lcore launch, and the TSC clock.
use super::{check, DpdkError};
use std::ffi::{c_char, c_int, c_void, CString};
use std::sync::atomic::{AtomicBool, Ordering};

static EAL_STARTED: AtomicBool = AtomicBool::new(false);

/// The initialised DPDK environment. One per process; dropping it runs
/// `rte_eal_cleanup`, so everything built on it (ports, mempools) must be dropped first.
pub struct Eal {
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Eal {
    /// Initialises the EAL with `args` (as on DPDK's command line, without argv\[0\]).
    pub fn init<S: AsRef<str>>(args: &[S]) -> Result<Eal, DpdkError> {
        if EAL_STARTED.swap(true, Ordering::SeqCst) {
            return Err(DpdkError::EalTwice);
        }
        let owned: Vec<CString> = std::iter::once("vrfwd")
            .chain(args.iter().map(AsRef::as_ref))
            .map(|a| CString::new(a).map_err(|_| DpdkError::Nul(a.to_owned())))
            .collect::<Result<_, _>>()?;
        // rte_eal_init may permute argv; it keeps pointers into it, so leak the array
        // (it lives as long as the process, as DPDK expects).
        let argv: &mut [*mut c_char] =
            Vec::leak(owned.into_iter().map(|c| c.into_raw()).collect::<Vec<_>>());
        // SAFETY: argv holds argc valid NUL-terminated strings that are never freed.
        let ret = unsafe { dpdk_sys::rte_eal_init(argv.len() as c_int, argv.as_mut_ptr()) };
        if ret < 0 {
            EAL_STARTED.store(false, Ordering::SeqCst);
            return Err(super::errno_error("rte_eal_init"));
        }
        Ok(Eal {
            _not_send: std::marker::PhantomData,
        })
    }

    /// Number of lcores the EAL was started with (main included).
    pub fn lcore_count(&self) -> u32 {
        // SAFETY: the EAL is initialised.
        unsafe { dpdk_sys::rte_lcore_count() }
    }

    /// Runs `f(worker_index)` on every EAL lcore (the main lcore included, as index 0)
    /// and returns when all have returned. Indices are dense, 0..lcore_count.
    pub fn run_on_all_lcores<F: Fn(usize) + Sync>(&self, f: &F) -> Result<(), DpdkError> {
        extern "C" fn trampoline<F: Fn(usize) + Sync>(arg: *mut c_void) -> c_int {
            // SAFETY: `arg` is the `&F` passed below, alive until rte_eal_mp_wait_lcore
            // returns; F is Sync so sharing it across lcores is sound.
            let f = unsafe { &*(arg as *const F) };
            // SAFETY: called on an EAL lcore; rte_lcore_index(-1) reads this lcore's index.
            let index = unsafe { dpdk_sys::rte_lcore_index(-1) };
            f(index.max(0) as usize);
            0
        }
        // SAFETY: the trampoline matches lcore_function_t; `f` outlives the launch
        // because we wait for every lcore before returning.
        let ret = unsafe {
            dpdk_sys::rte_eal_mp_remote_launch(
                Some(trampoline::<F>),
                f as *const F as *mut c_void,
                dpdk_sys::rte_rmt_call_main_t_CALL_MAIN,
            )
        };
        // SAFETY: waits for the workers launched above (a no-op if none were).
        unsafe { dpdk_sys::rte_eal_mp_wait_lcore() };
        check("rte_eal_mp_remote_launch", ret).map(|_| ())
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        // SAFETY: every DPDK object is owned by values that borrow or outlive nothing
        // past this point (callers drop ports and pools first).
        unsafe { dpdk_sys::rte_eal_cleanup() };
    }
}

/// The CPU's time-stamp counter (no syscall).
#[inline(always)]
pub fn tsc() -> u64 {
    // SAFETY: rdtsc has no preconditions on x86_64.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// TSC ticks per second as measured by the EAL.
pub fn tsc_hz() -> u64 {
    // SAFETY: reads a value the EAL computed at init; harmless before init (returns 0).
    unsafe { dpdk_sys::rte_get_tsc_hz() }
}

/// A spin-loop hint for busy waits.
#[inline(always)]
pub fn cpu_relax() {
    std::hint::spin_loop();
}
