//! The few Linux calls outside DPDK that need `unsafe` and have no safe std
//! equivalent yet: who is at the other end of a Unix socket, and a thread's
//! scheduling priority.
use std::os::fd::AsRawFd;

/// The credentials of a Unix socket's peer, as the kernel recorded them when it
/// connected (SO_PEERCRED): process, user and primary group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCred {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
}

/// The peer of `socket` (a connected Unix stream socket).
pub fn peer_cred(socket: &impl AsRawFd) -> std::io::Result<PeerCred> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: the fd is open for the borrow's duration; `cred` and `len` are valid
    // for writes of the size passed, which is ucred's.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(PeerCred {
        pid: cred.pid,
        uid: cred.uid,
        gid: cred.gid,
    })
}

/// The effective user id of this process.
pub fn euid() -> u32 {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

/// Sets the calling thread's niceness (on Linux, `PRIO_PROCESS` with a thread id
/// names that thread only).
pub fn set_thread_niceness(nice: i32) -> std::io::Result<()> {
    // SAFETY: plain syscalls without pointers.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, nice) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
