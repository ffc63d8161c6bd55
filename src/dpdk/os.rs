//! The few Linux calls outside DPDK that need `unsafe` and have no safe std
//! equivalent yet: who is at the other end of a Unix socket, descriptors passed
//! over one (SCM_RIGHTS), and a thread's scheduling priority.
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

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

/// Descriptors one message passes at most.
pub const MAX_FDS: usize = 4;

/// Control-message room for [`MAX_FDS`] descriptors (CMSG_SPACE, 8-aligned).
const CMSG_ROOM: usize = 64;

/// Sends `bytes` on Unix stream `socket` with `fds` (at most [`MAX_FDS`]) as
/// SCM_RIGHTS: the peer receives its own descriptors of the same files.
pub fn send_with_fds(socket: &impl AsRawFd, bytes: &[u8], fds: &[RawFd]) -> std::io::Result<()> {
    assert!(
        fds.len() <= MAX_FDS,
        "at most {MAX_FDS} descriptors a message"
    );
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr().cast_mut().cast(),
        iov_len: bytes.len(),
    };
    let mut room = [0u64; CMSG_ROOM / 8];
    // SAFETY: msghdr is plain data; all zeroes is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let data = std::mem::size_of_val(fds) as u32;
        msg.msg_control = room.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE only computes a size.
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(data) } as usize;
        // SAFETY: `msg_control` points to `room`, 8-aligned and larger than
        // CMSG_SPACE of MAX_FDS descriptors, so the first header and its data fit.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(data) as usize;
            std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(cmsg).cast(), fds.len());
        }
    }
    // SAFETY: `msg` points to `iov` (over `bytes`) and `room`, both alive for the call.
    let sent = unsafe { libc::sendmsg(socket.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    match sent {
        n if n < 0 => Err(std::io::Error::last_os_error()),
        n if n as usize != bytes.len() => Err(std::io::Error::new(
            std::io::ErrorKind::WriteZero,
            "a message with descriptors went out in part",
        )),
        _ => Ok(()),
    }
}

/// Receives into `buf` from Unix stream `socket`, with the descriptors the
/// message carried (owned here, closed on drop): (bytes read, descriptors).
pub fn recv_with_fds(
    socket: &impl AsRawFd,
    buf: &mut [u8],
) -> std::io::Result<(usize, Vec<OwnedFd>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut room = [0u64; CMSG_ROOM / 8];
    // SAFETY: msghdr is plain data; all zeroes is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = room.as_mut_ptr().cast();
    msg.msg_controllen = CMSG_ROOM;
    // SAFETY: `msg` points to `iov` (over `buf`) and `room`, both writable and
    // alive for the call; descriptors arrive close-on-exec.
    let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut fds = Vec::new();
    // SAFETY: the kernel filled `msg_control` with `msg_controllen` bytes of
    // well-formed headers; CMSG_NXTHDR stays within them, and each SCM_RIGHTS
    // header's data holds (cmsg_len - CMSG_LEN(0)) / 4 descriptors now ours.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let count = ((*cmsg).cmsg_len - libc::CMSG_LEN(0) as usize) / 4;
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                for i in 0..count {
                    fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "more descriptors than a message may carry",
        ));
    }
    Ok((n as usize, fds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    #[test]
    fn descriptors_cross_a_unix_socket_with_their_message() {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut left, right) = UnixStream::pair().unwrap();
        send_with_fds(&a, b"here", &[right.as_raw_fd()]).unwrap();
        drop(right);
        let mut buf = [0u8; 16];
        let (n, fds) = recv_with_fds(&b, &mut buf).unwrap();
        assert_eq!((&buf[..n], fds.len()), (&b"here"[..], 1));
        // The descriptor received is the other end of `left`'s pair.
        let mut passed = UnixStream::from(fds.into_iter().next().unwrap());
        left.write_all(b"x").unwrap();
        let mut one = [0u8; 1];
        passed.read_exact(&mut one).unwrap();
        assert_eq!(&one, b"x");
        // No descriptors: a plain message.
        send_with_fds(&a, b"plain", &[]).unwrap();
        assert_eq!(recv_with_fds(&b, &mut buf).unwrap().1.len(), 0);
    }
}
