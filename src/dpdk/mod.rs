//! The only module of vrfwd that contains `unsafe`: small safe wrappers over the raw
//! `dpdk-sys` bindings (EAL, lcores, mempool, ports, mbufs, RCU), the huge-page-backed arrays the route tables live in,
//! the AF_PACKET sockets and epoll set that carry vifs outside DPDK's port table, and
//! the one socket option std cannot read yet (a Unix socket peer's credentials). Everything above this module is safe Rust.
//!
//! Rules kept here: every `unsafe` block says why it is sound (`// SAFETY:`); the
//! FFI boundary is crossed once per burst on the fast path; DPDK's negative return
//! codes and NULL + `rte_errno` become [`DpdkError`].

mod eal;
mod fanout;
mod mbuf;
mod memory;
mod mempool;
mod os;
mod packet;
mod port;
mod rcu;
pub mod telemetry;

pub use eal::{cpu_relax, tsc, tsc_hz, Eal};
pub use fanout::Member;
pub use mbuf::{Burst, Mbuf, TxBuffer, BURST_SIZE};
pub use memory::{AtomicArray, Backing};
pub use mempool::Mempool;
pub use os::{euid, peer_cred, recv_with_fds, send_with_fds, set_thread_niceness, PeerCred};
pub use packet::{PacketError, PacketSocket, Poller, Ready, Received};
pub use port::{AttachError, HandedPort, Port, PortStats, PortTable};
pub use rcu::{Rcu, RcuCell, RcuReader, ReadSection};

use std::ffi::CStr;

/// An error reported by DPDK.
#[derive(Debug, thiserror::Error)]
pub enum DpdkError {
    /// `what` failed with DPDK error `code`: `message`.
    #[error("{what}: {message} (errno {code})")]
    Call {
        what: String,
        code: i32,
        message: String,
    },
    /// A string handed to DPDK contained a NUL byte.
    #[error("{0:?} contains a NUL byte")]
    Nul(String),
    /// The EAL was already initialised in this process (DPDK allows it once).
    #[error("the DPDK EAL can be initialised once per process")]
    EalTwice,
    /// A PMD would not create device `0`; it logs its reason to vrfwd's log (PMDs
    /// return -1, not an errno, from their probe).
    #[error("the driver refused device {0:?} (its reason is in vrfwd's log)")]
    DriverRefused(String),
    /// No DPDK port carries this device name.
    #[error("no DPDK port named {0:?} (was the device passed with --vdev?)")]
    NoSuchPort(String),
}

/// Builds the error for a failed DPDK call from a (negative or positive) errno.
fn call_error(what: impl Into<String>, code: i32) -> DpdkError {
    let code = code.abs();
    // SAFETY: rte_strerror returns a pointer to a static or thread-local NUL-terminated
    // string that stays valid until the next call on this thread; we copy it at once.
    let message = unsafe { CStr::from_ptr(dpdk_sys::rte_strerror(code)) }
        .to_string_lossy()
        .into_owned();
    DpdkError::Call {
        what: what.into(),
        code,
        message,
    }
}

/// Turns a DPDK return code (negative errno on failure) into a `Result`.
pub fn check(what: &str, ret: i32) -> Result<i32, DpdkError> {
    if ret < 0 {
        Err(call_error(what, ret))
    } else {
        Ok(ret)
    }
}

/// The error for a call that returned NULL and set `rte_errno`.
pub fn errno_error(what: &str) -> DpdkError {
    // SAFETY: reads this thread's rte_errno; no preconditions.
    call_error(what, unsafe { dpdk_sys::vrfwd_rte_errno() })
}
