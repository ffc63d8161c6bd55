//! Handover groups: how two processes share a socket port so that one hands it
//! to the other without losing or duplicating a frame (docs/architecture.md,
//! "Ports that can be handed over").
//!
//! Each queue of a socket port is its own AF_PACKET fanout group of type CBPF,
//! whose program (the *selector*) returns a constant: the member that receives
//! every frame the group takes. A running vrfwd's socket is its group's only
//! member, at index 0 ([`Member::Holder`]). A successor joins as member 1
//! ([`Member::Successor`]) and receives nothing while the selector names 0; it
//! points the selector at itself, the kernel swaps the program under RCU and
//! returns once no CPU runs the old one, so from then on the holder's socket
//! receives nothing new: it drains what waits and closes. The group then holds
//! the successor alone, at index 0 (the selector's `1` taken modulo one member),
//! which points the selector back at 0 before anyone joins again. A successor
//! that gives up points the selector at the holder before it closes.
//!
//! A member's socket filter keeps its queue's share of the flows (a hash of the
//! IP addresses: a flow stays on one lcore, as a NIC's RSS keeps it) and never
//! what this host sends (a group, unlike a lone socket, sees it). A socket
//! is opened with a filter that drops everything, so that between its bind and
//! its join it takes no copy of a frame the group delivers too.
use super::packet::{sys_error, PacketError, PacketSocket};
use std::io;

/// A member of a handover group, by its index in the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Member {
    /// The socket of the process that holds the port.
    Holder = 0,
    /// The socket of the process taking the port over.
    Successor = 1,
}

/// `PACKET_FANOUT` type and flag, `PACKET_FANOUT_DATA`, `SO_ATTACH_FILTER`
/// (linux/if_packet.h, asm-generic/socket.h), which the libc crate lacks here.
const FANOUT_CBPF: u32 = 6;
const FANOUT_FLAG_UNIQUEID: u32 = 0x2000;
const PACKET_FANOUT_DATA: i32 = 22;
const SO_ATTACH_FILTER: i32 = 26;
/// `skb->pkt_type` of a frame this host sends (linux/if_packet.h).
const PACKET_OUTGOING: u32 = 4;

impl PacketSocket {
    /// Opens queue `queue` of a port's `queues` on `iface`, alone in a new
    /// handover group that steers every frame to it.
    pub fn open_queue(
        iface: &str,
        rcvbuf: usize,
        queue: u16,
        queues: u16,
    ) -> Result<PacketSocket, PacketError> {
        PacketSocket::open_in(iface, rcvbuf, None, queue, queues)
    }

    /// Opens queue `queue` of a port's `queues` on `iface` as the successor in
    /// handover group `group` (the holder's, as [`PacketSocket::group`] reports
    /// it): it receives nothing until the selector names it.
    pub fn join_queue(
        iface: &str,
        rcvbuf: usize,
        group: u16,
        queue: u16,
        queues: u16,
    ) -> Result<PacketSocket, PacketError> {
        PacketSocket::open_in(iface, rcvbuf, Some(group), queue, queues)
    }

    /// Opens queue `queue` of `queues` on `iface` in handover group `group`, or
    /// (none) alone in a new one that steers to it.
    fn open_in(
        iface: &str,
        rcvbuf: usize,
        group: Option<u16>,
        queue: u16,
        queues: u16,
    ) -> Result<PacketSocket, PacketError> {
        let s = PacketSocket::open_filtered(iface, rcvbuf, &Program::ret(0))?;
        let sys = |call| sys_error(call, iface);
        let fanout = match group {
            None => (FANOUT_CBPF | FANOUT_FLAG_UNIQUEID) << 16,
            Some(id) => u32::from(id) | (FANOUT_CBPF << 16),
        };
        s.set(libc::SOL_PACKET, libc::PACKET_FANOUT, &fanout)
            .map_err(sys("PACKET_FANOUT"))?;
        if group.is_none() {
            s.steer(Member::Holder).map_err(sys("PACKET_FANOUT_DATA"))?;
        }
        s.filter(&Program::share(queue, queues))
            .map_err(sys("SO_ATTACH_FILTER"))?;
        Ok(s)
    }

    /// The id of this socket's handover group (unique in its network namespace).
    pub fn group(&self) -> io::Result<u16> {
        let mut arg = 0u32;
        self.get(libc::SOL_PACKET, libc::PACKET_FANOUT, &mut arg)?;
        if arg == 0 {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "the socket is in no fanout group",
            ));
        }
        Ok(arg as u16)
    }

    /// Points its group's selector at `member`. Returns once the kernel runs the
    /// old selector nowhere: no frame reaches another member after it.
    pub fn steer(&self, member: Member) -> io::Result<()> {
        let program = Program::ret(member as u32);
        self.set(libc::SOL_PACKET, PACKET_FANOUT_DATA, &program.fprog())
    }

    /// Replaces the socket's filter with `program`.
    pub(super) fn filter(&self, program: &Program) -> io::Result<()> {
        self.set(libc::SOL_SOCKET, SO_ATTACH_FILTER, &program.fprog())
    }
}

/// A classic BPF program: a fanout selector, or a socket filter.
pub(super) struct Program(Vec<libc::sock_filter>);

/// Instruction classes and fields (linux/filter.h).
const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const LD_H_ABS: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_ABS) as u16;
const LD_IMM: u16 = (libc::BPF_LD | libc::BPF_IMM) as u16;
const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
const XOR_X: u16 = (libc::BPF_ALU | libc::BPF_XOR | libc::BPF_X) as u16;
const RSH_K: u16 = (libc::BPF_ALU | libc::BPF_RSH | libc::BPF_K) as u16;
const MOD_K: u16 = (libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K) as u16;
const TAX: u16 = (libc::BPF_MISC | libc::BPF_TAX) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
/// The ancillary load of a frame's packet type.
const PKTTYPE: u32 = (libc::SKF_AD_OFF + libc::SKF_AD_PKTTYPE) as u32;
/// A socket filter's "keep the whole frame".
const WHOLE: u32 = u32::MAX;

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

impl Program {
    /// Returns `k` for every frame: a selector naming member `k`, or (0) a
    /// socket filter that drops everything.
    pub(super) fn ret(k: u32) -> Program {
        Program(vec![insn(RET_K, 0, 0, k)])
    }

    /// A socket filter keeping queue `queue`'s share of `queues`: frames of
    /// the flows (IPv4 or IPv6 addresses) that hash to it, other frames on
    /// queue 0, nothing this host sends.
    pub(super) fn share(queue: u16, queues: u16) -> Program {
        if queues <= 1 {
            return Program(vec![
                insn(LD_W_ABS, 0, 0, PKTTYPE),
                insn(JEQ_K, 1, 0, PACKET_OUTGOING),
                insn(RET_K, 0, 0, WHOLE),
                insn(RET_K, 0, 0, 0),
            ]);
        }
        // Comments give each instruction's index; jumps count from the next one.
        Program(vec![
            /* 0 */ insn(LD_W_ABS, 0, 0, PKTTYPE),
            /* 1 */ insn(JEQ_K, 20, 0, PACKET_OUTGOING), // to 22, drop
            /* 2 */ insn(LD_H_ABS, 0, 0, 12), // the ethertype
            /* 3 */ insn(JEQ_K, 0, 4, 0x0800), // IPv4 at 4, else 8
            /* 4 */ insn(LD_W_ABS, 0, 0, 14 + 12), // source address
            /* 5 */ insn(TAX, 0, 0, 0),
            /* 6 */ insn(LD_W_ABS, 0, 0, 14 + 16), // destination address
            /* 7 */ insn(JA, 0, 0, 7), // to 15
            /* 8 */ insn(JEQ_K, 0, 4, 0x86dd), // IPv6 at 9, else 13
            /* 9 */ insn(LD_W_ABS, 0, 0, 14 + 8 + 12), // source's last word
            /* 10 */ insn(TAX, 0, 0, 0),
            /* 11 */ insn(LD_W_ABS, 0, 0, 14 + 24 + 12), // destination's last word
            /* 12 */ insn(JA, 0, 0, 2), // to 15
            /* 13 */ insn(LD_IMM, 0, 0, 0), // any other frame: hash 0
            /* 14 */ insn(TAX, 0, 0, 0),
            /* 15 */ insn(XOR_X, 0, 0, 0),
            /* 16 */ insn(TAX, 0, 0, 0),
            /* 17 */ insn(RSH_K, 0, 0, 16),
            /* 18 */ insn(XOR_X, 0, 0, 0),
            /* 19 */ insn(MOD_K, 0, 0, u32::from(queues)),
            /* 20 */ insn(JEQ_K, 0, 1, u32::from(queue)), // to 21, else 22
            /* 21 */ insn(RET_K, 0, 0, WHOLE),
            /* 22 */ insn(RET_K, 0, 0, 0),
        ])
    }

    /// The kernel's view of it, valid while `self` lives.
    pub(super) fn fprog(&self) -> libc::sock_fprog {
        libc::sock_fprog {
            len: self.0.len() as u16,
            filter: self.0.as_ptr().cast_mut(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every jump of `p` lands inside it, and its last instruction returns.
    fn well_formed(p: &Program) {
        let n = p.0.len();
        for (i, f) in p.0.iter().enumerate() {
            let class = u32::from(f.code) & 0x07;
            if class == libc::BPF_JMP {
                let reach = if f.code == JA {
                    vec![f.k as usize]
                } else {
                    vec![usize::from(f.jt), usize::from(f.jf)]
                };
                for r in reach {
                    assert!(i + 1 + r < n, "instruction {i} jumps past the end");
                }
            }
        }
        assert_eq!(p.0[n - 1].code, RET_K);
    }

    #[test]
    fn programs_jump_only_inside_themselves() {
        for (q, n) in [(0, 1), (0, 2), (1, 2), (3, 4)] {
            well_formed(&Program::share(q, n));
        }
        well_formed(&Program::ret(1));
    }
}
