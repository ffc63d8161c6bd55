//! A network namespace of the benchmark's own, shared by the benchmarks that
//! make links: everything made in it disappears with the process.
use anyhow::{bail, Context, Result};

/// Leaves the caller's network namespace for a fresh one without IPv6, so every
/// link made here disappears with the process, whatever happens. Call it first
/// in `main`: only the calling thread moves, so threads that exist already
/// would stay behind (that is not unsound, only useless).
pub fn private_netns() -> Result<()> {
    // SAFETY: unshare has no memory-safety preconditions; it moves this thread,
    // and the threads and children it makes later, to a new namespace.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        bail!(
            "unshare(CLONE_NEWNET): {} (run as root)",
            std::io::Error::last_os_error()
        );
    }
    std::fs::write("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1").context("no IPv6")
}
