//! Ethernet ports (`rte_ethdev`): lookup by device name, configuration with one
//! queue pair per lcore, start/stop, bursts, statistics.
use super::{check, DpdkError, Mempool};
use std::ffi::CString;

/// Descriptors per RX / TX queue.
const RX_DESCRIPTORS: u16 = 1024;
const TX_DESCRIPTORS: u16 = 1024;

/// A started DPDK port. Stopped and closed on drop.
pub struct Port {
    id: u16,
    name: String,
}

/// Counters kept by the PMD itself.
#[derive(Debug, Default, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct PortStats {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_missed: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_nombuf: u64,
}

impl Port {
    /// Finds the port DPDK created for device `name` (the part of a `--vdev` string
    /// before the first comma, e.g. `net_af_packet0`), configures `queues` RX and TX
    /// queue pairs fed from `pool`, enables promiscuous mode, and starts it.
    pub fn start(name: &str, queues: u16, pool: &Mempool) -> Result<Port, DpdkError> {
        let (rx_queues, tx_queues) = (queues, queues);
        let cname = CString::new(name).map_err(|_| DpdkError::Nul(name.into()))?;
        let mut id = 0u16;
        // SAFETY: valid C string and out-pointer.
        let ret = unsafe { dpdk_sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
        if ret < 0 {
            return Err(DpdkError::NoSuchPort(name.into()));
        }
        let port = Port {
            id,
            name: name.to_owned(),
        };
        let conf = dpdk_sys::rte_eth_conf::default();
        // SAFETY: the port exists and is stopped; conf is a zeroed (default) config.
        check("rte_eth_dev_configure", unsafe {
            dpdk_sys::rte_eth_dev_configure(id, rx_queues, tx_queues, &conf)
        })?;
        // SAFETY: as above; socket id of the port's NUMA node.
        let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(id) };
        let socket = if socket < 0 { 0 } else { socket as u32 };
        for q in 0..rx_queues {
            // SAFETY: configured port, queue in range, NULL conf = driver defaults,
            // the pool outlives the port (callers drop ports first).
            check("rte_eth_rx_queue_setup", unsafe {
                dpdk_sys::rte_eth_rx_queue_setup(
                    id,
                    q,
                    RX_DESCRIPTORS,
                    socket,
                    std::ptr::null(),
                    pool.as_ptr(),
                )
            })?;
        }
        for q in 0..tx_queues {
            // SAFETY: configured port, queue in range, NULL conf = driver defaults.
            check("rte_eth_tx_queue_setup", unsafe {
                dpdk_sys::rte_eth_tx_queue_setup(id, q, TX_DESCRIPTORS, socket, std::ptr::null())
            })?;
        }
        // SAFETY: every queue is set up.
        check("rte_eth_dev_start", unsafe {
            dpdk_sys::rte_eth_dev_start(id)
        })?;
        // SAFETY: started port. Not every virtual PMD supports promiscuous mode
        // (af_packet does; ring and pcap report ENOTSUP), so the result is ignored.
        let _ = unsafe { dpdk_sys::rte_eth_promiscuous_enable(id) };
        Ok(port)
    }

    /// DPDK's port id.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// The port's own MAC address (for af_packet and af_xdp: the kernel interface's).
    pub fn mac(&self) -> crate::net::MacAddr {
        let mut a = dpdk_sys::rte_ether_addr::default();
        // SAFETY: valid port id and out-pointer. On failure `a` stays zero.
        let _ = unsafe { dpdk_sys::rte_eth_macaddr_get(self.id, &mut a) };
        crate::net::MacAddr(a.addr_bytes)
    }

    /// The device name this port was found by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Receives up to a burst into `burst`, which must be empty. Returns the count.
    #[inline(always)]
    pub fn rx_burst(&self, queue: u16, burst: &mut super::Burst) -> usize {
        // SAFETY: the port is started; the burst's slots are BURST_SIZE pointers
        // that rx_burst fills with owned mbufs (Option<Mbuf> is pointer-sized).
        let n = unsafe {
            dpdk_sys::rte_eth_rx_burst(self.id, queue, burst.fill_ptr(), super::BURST_SIZE as u16)
        } as usize;
        burst.set_len(n);
        n
    }

    pub(super) fn tx_burst_raw(
        &self,
        queue: u16,
        pkts: *mut *mut dpdk_sys::rte_mbuf,
        n: u16,
    ) -> u16 {
        // SAFETY: pkts holds n owned mbufs (TxBuffer's slots); the PMD takes
        // ownership of the first `returned` of them.
        unsafe { dpdk_sys::rte_eth_tx_burst(self.id, queue, pkts, n) }
    }

    /// The PMD's own counters.
    pub fn stats(&self) -> Result<PortStats, DpdkError> {
        let mut s = dpdk_sys::rte_eth_stats::default();
        // SAFETY: valid port id and out-pointer.
        check("rte_eth_stats_get", unsafe {
            dpdk_sys::rte_eth_stats_get(self.id, &mut s)
        })?;
        Ok(PortStats {
            rx_packets: s.ipackets,
            tx_packets: s.opackets,
            rx_bytes: s.ibytes,
            tx_bytes: s.obytes,
            rx_missed: s.imissed,
            rx_errors: s.ierrors,
            tx_errors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        // SAFETY: we own the started port; after stop + close the id is not used again.
        unsafe {
            dpdk_sys::rte_eth_dev_stop(self.id);
            dpdk_sys::rte_eth_dev_close(self.id);
        }
    }
}
