//! Vifs outside DPDK's port table: a raw AF_PACKET socket bound to one Linux
//! interface, read and written a burst at a time (`recvmmsg`/`sendmmsg`) straight
//! into and out of mbufs, and an epoll set that says which of many sockets have
//! frames waiting.
//!
//! Debian's DPDK has 32 ports and a host has up to 2000 vifs; a vif carries only
//! its guest's own traffic and the slow path, so it needs neither a DPDK port nor
//! a ring of its own (docs/architecture.md, "Vifs"). A [`PacketSocket`] keeps
//! frames in the kernel's socket buffer (bounded by `SO_RCVBUF`, charged only
//! while frames wait): an idle vif costs a file descriptor. A [`Poller`] wakes
//! its thread only for the sockets that have frames, so the cost of a wake-up
//! follows the busy vifs, not all of them.
use super::fanout::Program;
use super::mbuf::TX_BUFFER_SIZE;
use super::{Burst, Mempool, TxBuffer, BURST_SIZE};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Why a socket could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum PacketError {
    #[error("no interface named {0:?}")]
    NoInterface(String),
    #[error("{call} for {iface}: {source}")]
    Sys {
        call: &'static str,
        iface: String,
        source: io::Error,
    },
}

/// A raw AF_PACKET socket on one interface: every frame the interface receives
/// (promiscuous), none of those this host sends on it.
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: u32,
    /// Frames dropped so far because they did not fit an mbuf (read by the
    /// control side while an lcore receives).
    oversize: AtomicU64,
}

/// What one receive call did: frames put into the burst, and frames that did
/// not fit an mbuf (dropped, the caller counts them).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub frames: usize,
    pub truncated: usize,
}

impl PacketSocket {
    /// Opens a socket on interface `iface` whose receive buffer holds
    /// `rcvbuf` bytes of waiting frames.
    pub fn open(iface: &str, rcvbuf: usize) -> Result<PacketSocket, PacketError> {
        PacketSocket::socket(iface, rcvbuf, None)
    }

    /// Opens a socket as [`PacketSocket::open`] does, which `filter` holds to
    /// from before it is bound.
    pub(super) fn open_filtered(
        iface: &str,
        rcvbuf: usize,
        filter: &Program,
    ) -> Result<PacketSocket, PacketError> {
        PacketSocket::socket(iface, rcvbuf, Some(filter))
    }

    fn socket(
        iface: &str,
        rcvbuf: usize,
        filter: Option<&Program>,
    ) -> Result<PacketSocket, PacketError> {
        let sys = |call| sys_error(call, iface);
        let name = CString::new(iface).map_err(|_| PacketError::NoInterface(iface.into()))?;
        // SAFETY: a valid C string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(PacketError::NoInterface(iface.into()));
        }
        // Protocol 0: the socket receives nothing until bind() names the interface,
        // so no other interface's frame is ever queued on it.
        // SAFETY: plain syscall; the fd it returns is owned below.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if raw < 0 {
            return Err(sys("socket")(io::Error::last_os_error()));
        }
        // SAFETY: a fresh descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let s = PacketSocket {
            fd,
            ifindex,
            oversize: AtomicU64::new(0),
        };
        s.set(libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &1i32)
            .map_err(sys("PACKET_IGNORE_OUTGOING"))?;
        s.set(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &(rcvbuf as i32))
            .or_else(|_| s.set(libc::SOL_SOCKET, libc::SO_RCVBUF, &(rcvbuf as i32)))
            .map_err(sys("SO_RCVBUF"))?;
        let promisc = libc::packet_mreq {
            mr_ifindex: ifindex as i32,
            mr_type: libc::PACKET_MR_PROMISC as u16,
            mr_alen: 0,
            mr_address: [0; 8],
        };
        s.set(libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &promisc)
            .map_err(sys("PACKET_ADD_MEMBERSHIP"))?;
        if let Some(filter) = filter {
            s.filter(filter).map_err(sys("SO_ATTACH_FILTER"))?;
        }
        s.bind().map_err(sys("bind"))?;
        Ok(s)
    }

    /// A port's sockets on interface `iface`, one per queue, each alone in a
    /// new handover group (`fanout`) and taking its queue's share of the flows.
    pub fn open_queues(
        iface: &str,
        rcvbuf: usize,
        queues: u16,
    ) -> Result<Vec<PacketSocket>, PacketError> {
        let queues = queues.max(1);
        (0..queues)
            .map(|q| PacketSocket::open_queue(iface, rcvbuf, q, queues))
            .collect()
    }

    /// The sockets of a port a predecessor holds on interface `iface`, one per
    /// group of `groups` (its queues'), each its group's successor: they
    /// receive nothing until steered to.
    pub fn join_queues(
        iface: &str,
        rcvbuf: usize,
        groups: &[u16],
    ) -> Result<Vec<PacketSocket>, PacketError> {
        let queues = groups.len() as u16;
        (0..queues)
            .zip(groups)
            .map(|(q, &g)| PacketSocket::join_queue(iface, rcvbuf, g, q, queues))
            .collect()
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The interface's MAC address, as the kernel reports it for the bound socket
    /// (in vrfwd's own network namespace, whatever /sys shows).
    pub fn mac(&self) -> io::Result<vrfwd_wire::MacAddr> {
        // SAFETY: sockaddr_ll is plain data; all zeroes is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: `addr` is writable for `len` bytes, the length passed.
        let rc = unsafe {
            libc::getsockname(
                self.fd.as_raw_fd(),
                (&mut addr as *mut libc::sockaddr_ll).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        if addr.sll_halen != 6 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a {}-byte hardware address, not a MAC", addr.sll_halen),
            ));
        }
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&addr.sll_addr[..6]);
        Ok(vrfwd_wire::MacAddr(mac))
    }

    /// Whether frames wait to be read (looks, never waits).
    pub fn readable(&self) -> bool {
        let mut fd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, the count passed; no timeout.
        let n = unsafe { libc::poll(&mut fd, 1, 0) };
        n > 0 && fd.revents & libc::POLLIN != 0
    }

    /// Frames dropped so far because they were larger than an mbuf.
    pub fn oversize(&self) -> u64 {
        self.oversize.load(Ordering::Relaxed)
    }

    /// Frames the kernel dropped because this socket's buffer was full, since the
    /// last call.
    pub fn take_drops(&self) -> io::Result<u64> {
        let mut st = libc::tpacket_stats {
            tp_packets: 0,
            tp_drops: 0,
        };
        self.get(libc::SOL_PACKET, libc::PACKET_STATISTICS, &mut st)?;
        Ok(u64::from(st.tp_drops))
    }

    /// Reads socket option `name` at `level` into `value`, a plain-data type the
    /// option fills.
    pub(super) fn get<T: Copy>(&self, level: i32, name: i32, value: &mut T) -> io::Result<()> {
        let mut len = std::mem::size_of::<T>() as libc::socklen_t;
        // SAFETY: `value` and `len` are valid for writes of size_of::<T>() bytes,
        // the size passed; the callers pass integers or C structs of integers,
        // for which any bytes the kernel writes are a valid value.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                (value as *mut T).cast(),
                &mut len,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    pub(super) fn set<T>(&self, level: i32, name: i32, value: &T) -> io::Result<()> {
        // SAFETY: `value` is valid for reads of size_of::<T>() bytes, the size passed.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                (value as *const T).cast(),
                std::mem::size_of::<T>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn bind(&self) -> io::Result<()> {
        // SAFETY: sockaddr_ll is plain data; all zeroes is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        addr.sll_ifindex = self.ifindex as i32;
        // SAFETY: `addr` is a valid sockaddr_ll of the size passed.
        let rc = unsafe {
            libc::bind(
                self.fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Receives up to a burst of waiting frames into mbufs from `pool`, straight
    /// into their data rooms; `burst` must be empty. Never blocks. A frame larger
    /// than an mbuf's room is dropped and counted in [`Received::truncated`].
    ///
    /// Never inlined, as [`PacketSocket::flush`]: their message arrays (kilobytes
    /// of stack) must not grow the frame of an lcore's hot loop, whose DPDK
    /// ports take the other branch.
    #[inline(never)]
    pub fn rx_burst(&self, pool: &Mempool, burst: &mut Burst) -> io::Result<Received> {
        let mut mbufs: [Option<super::Mbuf>; BURST_SIZE] = std::array::from_fn(|_| None);
        let mut iov = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; BURST_SIZE];
        let mut n = 0;
        for (slot, v) in mbufs.iter_mut().zip(iov.iter_mut()) {
            let Some(mut m) = pool.alloc() else { break };
            let room = m.room();
            *v = libc::iovec {
                iov_base: room.as_mut_ptr().cast(),
                iov_len: room.len(),
            };
            *slot = Some(m);
            n += 1;
        }
        if n == 0 {
            return Ok(Received::default());
        }
        // SAFETY: mmsghdr is plain data; all zeroes is a valid value.
        let mut msgs: [libc::mmsghdr; BURST_SIZE] = unsafe { std::mem::zeroed() };
        for (msg, v) in msgs.iter_mut().zip(iov.iter_mut()).take(n) {
            msg.msg_hdr.msg_iov = v;
            msg.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: `msgs[..n]` each point to one iovec into an mbuf we own, valid for
        // writes of its length until the mbufs are dropped after this call.
        let got = unsafe {
            libc::recvmmsg(
                self.fd.as_raw_fd(),
                msgs.as_mut_ptr(),
                n as u32,
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                std::ptr::null_mut(),
            )
        };
        if got < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock => Ok(Received::default()),
                _ => Err(e),
            };
        }
        let mut out = Received::default();
        for (msg, slot) in msgs.iter().zip(mbufs.iter_mut()).take(got as usize) {
            let mut m = slot.take().expect("an mbuf per message");
            if msg.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                out.truncated += 1;
                self.oversize.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            m.set_len(msg.msg_len as u16);
            burst.push(m);
            out.frames += 1;
        }
        Ok(out)
    }

    /// Sends what `buffer` holds, one frame per mbuf (segments gathered); never
    /// blocks. Returns (sent, dropped): what the socket would not take now is
    /// freed, as a PMD's full ring drops it.
    #[inline(never)]
    pub fn flush(&self, buffer: &mut TxBuffer) -> (u32, u32) {
        let fd = self.fd.as_raw_fd();
        buffer.flush(|mbufs, count| {
            // SAFETY: TxBuffer::flush passes its `count` live mbuf pointers.
            let mbufs = unsafe { std::slice::from_raw_parts(mbufs, count as usize) };
            let sent = send_mbufs(fd, mbufs);
            // The kernel copied the first `sent` frames; TxBuffer forgets its
            // references to exactly those, so they are freed here, once.
            for &m in &mbufs[..sent] {
                // SAFETY: a live mbuf whose only reference TxBuffer gives up.
                unsafe { dpdk_sys::rte_pktmbuf_free(m) };
            }
            sent as u16
        })
    }
}

/// How a failed call `call` on interface `iface` is reported.
pub(super) fn sys_error(call: &'static str, iface: &str) -> impl Fn(io::Error) -> PacketError {
    let iface = iface.to_owned();
    move |source| PacketError::Sys {
        call,
        iface: iface.clone(),
        source,
    }
}

/// Segments gathered per frame (a jumbo frame chained by the PMD that received it).
const MAX_SEGMENTS: usize = 8;

/// `sendmmsg` of `mbufs` on `fd`; returns how many the kernel took. A frame of
/// more than [`MAX_SEGMENTS`] segments goes out truncated to them (never more
/// than the chain holds).
fn send_mbufs(fd: RawFd, mbufs: &[*mut dpdk_sys::rte_mbuf]) -> usize {
    let count = mbufs.len().min(TX_BUFFER_SIZE);
    let mut iov = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; TX_BUFFER_SIZE * MAX_SEGMENTS];
    // SAFETY: mmsghdr is plain data; all zeroes is a valid value.
    let mut msgs: [libc::mmsghdr; TX_BUFFER_SIZE] = unsafe { std::mem::zeroed() };
    for (i, (&m, msg)) in mbufs.iter().zip(msgs.iter_mut()).enumerate() {
        let frame = &mut iov[i * MAX_SEGMENTS..(i + 1) * MAX_SEGMENTS];
        let mut segs = 0;
        let mut seg = m;
        while !seg.is_null() && segs < MAX_SEGMENTS {
            // SAFETY: `seg` is a live segment of a chain TxBuffer owns.
            let s = unsafe { &*seg };
            frame[segs] = libc::iovec {
                // SAFETY: buf_addr + data_off .. + data_len lies inside its buffer.
                iov_base: unsafe { (s.buf_addr as *mut u8).add(s.data_off as usize) }.cast(),
                iov_len: s.data_len as usize,
            };
            segs += 1;
            seg = s.next;
        }
        msg.msg_hdr.msg_iov = frame.as_mut_ptr();
        msg.msg_hdr.msg_iovlen = segs;
    }
    // SAFETY: every message points to iovecs over live mbuf data, read-only for
    // the kernel; the socket is bound, so no address is needed.
    let sent = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), count as u32, libc::MSG_DONTWAIT) };
    sent.max(0) as usize
}

/// An epoll set of sockets, each known by a token; level-triggered, so a socket
/// left with frames after a burst is reported by the next wait again. Sockets
/// are added and removed by one thread while another waits.
pub struct Poller {
    fd: OwnedFd,
}

/// Where one waiter of a [`Poller`] receives the tokens of ready sockets.
pub struct Ready {
    events: Vec<libc::epoll_event>,
}

impl Ready {
    /// Room for `max` ready sockets per wait.
    pub fn new(max: usize) -> Ready {
        Ready {
            events: vec![libc::epoll_event { events: 0, u64: 0 }; max.max(1)],
        }
    }
}

impl Poller {
    pub fn new() -> io::Result<Poller> {
        // SAFETY: plain syscall; the fd it returns is owned below.
        let raw = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Poller {
            // SAFETY: a fresh descriptor nothing else owns.
            fd: unsafe { OwnedFd::from_raw_fd(raw) },
        })
    }

    /// Watches `socket` for frames, reported as `token`.
    pub fn add(&self, socket: &impl AsRawFd, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, socket.as_raw_fd(), token)
    }

    /// Stops watching `socket`.
    pub fn remove(&self, socket: &impl AsRawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, socket.as_raw_fd(), 0)
    }

    fn ctl(&self, op: i32, fd: RawFd, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: both descriptors are open; `ev` is valid for the call.
        let rc = unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut ev) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits up to `timeout` (zero: only looks) for sockets with frames; returns
    /// their tokens, at most as many as `ready` has room for. An interrupted or
    /// failed wait reports none.
    pub fn wait<'r>(
        &self,
        ready: &'r mut Ready,
        timeout: Duration,
    ) -> impl Iterator<Item = u64> + 'r {
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: `events` is valid for writes of its length, the count passed.
        let n = unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                ready.events.as_mut_ptr(),
                ready.events.len() as i32,
                ms,
            )
        };
        ready.events[..n.max(0) as usize].iter().map(|e| e.u64)
    }
}

impl AsRawFd for PacketSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
