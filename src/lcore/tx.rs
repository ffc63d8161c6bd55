//! TX: one buffer per port for this lcore's TX queue, sent when a burst is full
//! and drained by the loop on a TSC deadline (only the buffers holding frames:
//! a drain costs what was sent, not the number of ports); frames vrfwd makes
//! itself (ARP replies, announcements) and floods (one reference per target
//! port) go out through the same buffers. Counts what each port sent and dropped.
use crate::dpdk::{Mbuf, Mempool, PortTable, ReadSection, TxBuffer};
use crate::stats::LcoreCounters;

/// This lcore's side of every port's TX queue `queue`.
pub struct Tx<'a> {
    queue: u16,
    ports: &'a PortTable,
    buffers: Vec<TxBuffer>,
    /// The ports whose buffer took a frame since the last drain, each once.
    dirty: Vec<usize>,
    is_dirty: Vec<bool>,
    counters: &'a LcoreCounters,
}

impl<'a> Tx<'a> {
    pub fn new(queue: u16, ports: &'a PortTable, counters: &'a LcoreCounters) -> Self {
        Tx {
            queue,
            ports,
            buffers: (0..ports.len()).map(|_| TxBuffer::default()).collect(),
            dirty: Vec::with_capacity(ports.len()),
            is_dirty: vec![false; ports.len()],
            counters,
        }
    }

    /// Sends what every buffer holds.
    pub fn flush_all(&mut self, section: &ReadSection) {
        while let Some(p) = self.dirty.pop() {
            self.is_dirty[p] = false;
            self.flush(p, section);
        }
    }

    fn flush(&mut self, port: usize, section: &ReadSection) {
        let (sent, dropped) = self
            .ports
            .flush(port, self.queue, &mut self.buffers[port], section);
        let c = &self.counters.ports[port];
        c.tx.add(u64::from(sent));
        c.tx_dropped.add(u64::from(dropped));
    }

    /// Queues `m` for `port`, sending a burst when one is full.
    #[inline(always)]
    pub fn send(&mut self, port: usize, m: Mbuf, section: &ReadSection) {
        if !self.is_dirty[port] {
            self.is_dirty[port] = true;
            self.dirty.push(port);
        }
        if let Err(m) = self.buffers[port].push(m) {
            self.flush(port, section);
            // The buffer is empty now; a second refusal cannot happen.
            let _ = self.buffers[port].push(m);
        }
        if self.buffers[port].has_full_burst() {
            self.flush(port, section);
        }
    }

    /// Queues a frame vrfwd made itself for `port`, in an mbuf from `pool`; false
    /// when no mbuf was free (or the frame did not fit one).
    pub fn send_frame(
        &mut self,
        pool: &Mempool,
        port: usize,
        frame: &[u8],
        section: &ReadSection,
    ) -> bool {
        let Some(mut m) = pool.alloc() else {
            return false;
        };
        let fits = m.append(frame);
        if fits {
            self.send(port, m, section);
        }
        fits
    }

    /// Sends `m` to every port of `targets`: shared references to all but the last,
    /// `m` itself to the last; with no target, `m` is freed here.
    pub fn flood(&mut self, targets: impl Iterator<Item = usize>, m: Mbuf, section: &ReadSection) {
        let mut targets = targets.peekable();
        while let Some(port) = targets.next() {
            if targets.peek().is_some() {
                let copy = m.share();
                self.send(port, copy, section);
            } else {
                self.send(port, m, section);
                return;
            }
        }
    }
}
