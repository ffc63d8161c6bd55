//! Ethernet ports (`rte_ethdev`): lookup by device name, configuration with one
//! queue pair per lcore, start/stop, bursts, statistics; virtual devices plugged
//! in and out at run time; and the [`PortTable`] through which lcores reach ports
//! that may be detached while they run.
use super::{
    check, fanout::Member, packet::sys_error, DpdkError, Mempool, PacketError, PacketSocket,
    Poller, Rcu, RcuCell, ReadSection, Ready, TxBuffer,
};
use std::ffi::CString;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The bus virtual devices are plugged into.
const VDEV_BUS: &std::ffi::CStr = c"vdev";

/// Descriptors per RX / TX queue.
const RX_DESCRIPTORS: u16 = 1024;
const TX_DESCRIPTORS: u16 = 1024;

/// A started DPDK port. Stopped and closed on drop.
pub struct Port {
    id: u16,
    name: String,
    /// Created by [`Port::plug`]: its virtual device is removed on drop.
    plugged: bool,
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
        Port::open(name, false)?.configure(queues, pool)
    }

    /// Creates the virtual device `device` (a `--vdev` string such as
    /// `net_af_packet_vif3,iface=vif5.0,qpairs=1`) in the running EAL and starts its
    /// port as [`Port::start`] does. Dropping the port removes the device again.
    pub fn plug(device: &str, queues: u16, pool: &Mempool) -> Result<Port, DpdkError> {
        let (name, args) = device.split_once(',').unwrap_or((device, ""));
        let c = |s: &str| CString::new(s).map_err(|_| DpdkError::Nul(s.into()));
        let (cname, cargs) = (c(name)?, c(args)?);
        // SAFETY: valid C strings; hot-plug is serialised by the caller (PortTable).
        let ret = unsafe {
            dpdk_sys::rte_eal_hotplug_add(VDEV_BUS.as_ptr(), cname.as_ptr(), cargs.as_ptr())
        };
        if ret == -1 {
            return Err(DpdkError::DriverRefused(name.to_owned()));
        }
        check("rte_eal_hotplug_add", ret)?;
        match Port::open(name, true) {
            Ok(port) => port.configure(queues, pool),
            Err(e) => {
                // SAFETY: the device was added above and has no port we could use.
                unsafe { dpdk_sys::rte_eal_hotplug_remove(VDEV_BUS.as_ptr(), cname.as_ptr()) };
                Err(e)
            }
        }
    }

    fn open(name: &str, plugged: bool) -> Result<Port, DpdkError> {
        let cname = CString::new(name).map_err(|_| DpdkError::Nul(name.into()))?;
        let mut id = 0u16;
        // SAFETY: valid C string and out-pointer.
        let ret = unsafe { dpdk_sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
        if ret < 0 {
            return Err(DpdkError::NoSuchPort(name.into()));
        }
        Ok(Port {
            id,
            name: name.to_owned(),
            plugged,
        })
    }

    fn configure(self, queues: u16, pool: &Mempool) -> Result<Port, DpdkError> {
        let (id, port) = (self.id, self);
        let (rx_queues, tx_queues) = (queues, queues);
        let conf = rss_conf(&port.info()?);
        if conf.rxmode.mq_mode == dpdk_sys::rte_eth_rx_mq_mode_RTE_ETH_MQ_RX_RSS {
            tracing::info!(port = port.name, "RSS on: the device offers to hash flows");
        }
        // SAFETY: the port exists and is stopped; conf is zeroed (the defaults)
        // but for RSS, which asks only what the device said it offers.
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

    /// What the device offers (`rte_eth_dev_info_get`).
    fn info(&self) -> Result<dpdk_sys::rte_eth_dev_info, DpdkError> {
        let mut info = dpdk_sys::rte_eth_dev_info::default();
        // SAFETY: valid port id and out-pointer.
        check("rte_eth_dev_info_get", unsafe {
            dpdk_sys::rte_eth_dev_info_get(self.id, &mut info)
        })?;
        Ok(info)
    }

    /// The port's own MAC address (for af_packet and af_xdp: the kernel interface's).
    pub fn mac(&self) -> vrfwd_wire::MacAddr {
        let mut a = dpdk_sys::rte_ether_addr::default();
        // SAFETY: valid port id and out-pointer. On failure `a` stays zero.
        let _ = unsafe { dpdk_sys::rte_eth_macaddr_get(self.id, &mut a) };
        vrfwd_wire::MacAddr(a.addr_bytes)
    }

    /// The device name this port was found by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Receives up to a burst from `queue` into the (empty) `burst`. For programs
    /// that own their ports outright (the benchmarks' generator); the appliance's
    /// lcores go through [`PortTable`].
    #[inline(always)]
    pub fn rx_burst(&mut self, queue: u16, burst: &mut super::Burst) -> usize {
        // SAFETY: a `Port` is started until dropped, and `&mut self` keeps the
        // queue to this caller.
        unsafe { rx_burst(self.id, queue, burst) }
    }

    /// Sends what `buffer` holds on `queue`; frees what the PMD refused.
    /// Returns (sent, dropped).
    #[inline(always)]
    pub fn flush(&mut self, queue: u16, buffer: &mut TxBuffer) -> (u32, u32) {
        // SAFETY: as in rx_burst.
        unsafe { flush(self.id, queue, buffer) }
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
        if self.plugged {
            if let Ok(name) = CString::new(self.name.as_str()) {
                // SAFETY: the device was plugged by us and its port is closed.
                unsafe { dpdk_sys::rte_eal_hotplug_remove(VDEV_BUS.as_ptr(), name.as_ptr()) };
            }
        }
    }
}

/// Receives up to a burst from queue `queue` of port `id` into the (empty) `burst`.
///
/// # Safety
/// Port `id` must be started and stay open for the call, and `queue` must be
/// polled by this thread only.
#[inline(always)]
unsafe fn rx_burst(id: u16, queue: u16, burst: &mut super::Burst) -> usize {
    // SAFETY: the caller guarantees the port; the burst's slots are BURST_SIZE
    // pointers that rx_burst fills with owned mbufs (Option<Mbuf> is pointer-sized).
    let n = unsafe {
        dpdk_sys::rte_eth_rx_burst(id, queue, burst.fill_ptr(), super::BURST_SIZE as u16)
    } as usize;
    burst.set_len(n);
    n
}

/// Sends what `buffer` holds on queue `queue` of port `id`; frees what the PMD
/// refused. Returns (sent, dropped).
///
/// # Safety
/// As for [`rx_burst`].
#[inline(always)]
unsafe fn flush(id: u16, queue: u16, buffer: &mut TxBuffer) -> (u32, u32) {
    // SAFETY: the caller guarantees the port; pkts holds n owned mbufs and the PMD
    // takes ownership of the first `returned` of them.
    buffer.flush(|pkts, n| unsafe { dpdk_sys::rte_eth_tx_burst(id, queue, pkts, n) })
}

/// The port configuration: DPDK's defaults, and RSS over addresses and ports
/// when the device hashes them, with the hash delivered in each mbuf when it
/// can be (a multipath route's flow hash is then the NIC's, not computed per
/// packet: docs/architecture.md, "Multipath"). Devices without RSS (most
/// virtual PMDs) keep the defaults.
fn rss_conf(info: &dpdk_sys::rte_eth_dev_info) -> dpdk_sys::rte_eth_conf {
    let mut conf = dpdk_sys::rte_eth_conf::default();
    let wanted = u64::from(
        dpdk_sys::vrfwd_flags_VRFWD_ETH_RSS_IP
            | dpdk_sys::vrfwd_flags_VRFWD_ETH_RSS_TCP
            | dpdk_sys::vrfwd_flags_VRFWD_ETH_RSS_UDP,
    );
    let hashed = info.flow_type_rss_offloads & wanted;
    if hashed != 0 {
        conf.rxmode.mq_mode = dpdk_sys::rte_eth_rx_mq_mode_RTE_ETH_MQ_RX_RSS;
        conf.rx_adv_conf.rss_conf.rss_hf = hashed;
        conf.rxmode.offloads |=
            info.rx_offload_capa & u64::from(dpdk_sys::vrfwd_flags_VRFWD_ETH_RX_OFFLOAD_RSS_HASH);
    }
    conf
}

/// What a table slot holds, as lcores see it.
enum Slot {
    Detached,
    /// A started DPDK port, by id (its `Port` is in the table's owned list).
    Dpdk(u16),
    /// A vif outside DPDK's port table: one socket per lcore queue.
    Socket(Arc<[PacketSocket]>),
}

/// Receive buffer of a vif socket: about a thousand waiting frames.
const VIF_RCVBUF: usize = 1 << 20;

/// Every port of the appliance by index (the index the dataplane model and the
/// counters use). Uplinks and configured vifs are started with the appliance; a
/// vif without a configured device (a hypervisor's netdev that appears when its
/// guest is created or migrates in) is attached and detached at run time, either
/// as a DPDK port (a PMD plugged in: at most `RTE_MAX_ETHPORTS` of them) or as the
/// project's own AF_PACKET sockets (no DPDK port: as many as the host has vifs).
///
/// Lcores poll the DPDK ports every loop and the sockets only when their epoll
/// set says frames wait, so an idle vif costs them nothing. They reach slots only
/// inside an RCU read section: a detached slot is unlinked first, and its port
/// stopped, closed and unplugged (or its sockets closed) only after every lcore
/// has passed a quiescent state. What an lcore still buffers for a detached port
/// is dropped.
pub struct PortTable {
    /// What lcores read, per slot.
    slots: Box<[RcuCell<Slot>]>,
    /// The slots that are DPDK ports, which lcores poll every loop.
    polled: RcuCell<Box<[usize]>>,
    /// Per lcore queue: the epoll set of every socket slot's socket for that
    /// queue, each reported by its slot index.
    pollers: Box<[Poller]>,
    /// How many slots are sockets: with none, lcores make no system call at all.
    socket_slots: AtomicUsize,
    /// The DPDK ports themselves, and the netdev a run-time slot was attached to;
    /// only control threads lock this, and attaching is serialised by it.
    owned: Mutex<Vec<Option<Owned>>>,
    queues: u16,
}

/// A slot's owner on the control side.
struct Owned {
    device: Device,
    /// The netdev of a run-time attach (None for a configured device).
    netdev: Option<String>,
}

/// What a slot was opened as.
enum Device {
    Port(Port),
    /// A port's sockets (the slot holds them too), its netdev and the netdev's
    /// MAC, and the frames their buffers dropped so far.
    Sockets {
        sockets: Arc<[PacketSocket]>,
        iface: String,
        mac: vrfwd_wire::MacAddr,
        drops: u64,
    },
}

impl Owned {
    fn is_port(&self) -> bool {
        matches!(self.device, Device::Port(_))
    }
}

/// Why a run-time attach or detach was refused.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("port {0} is attached already (to {1}); detach it first")]
    Attached(usize, String),
    #[error("port {0} has a device from the config and stays attached")]
    Configured(usize),
    #[error("no port is attached to {0:?}")]
    NotAttached(String),
    #[error(transparent)]
    Dpdk(#[from] DpdkError),
    #[error(transparent)]
    Socket(#[from] PacketError),
    #[error("epoll: {0}")]
    Poller(std::io::Error),
    #[error("port {0} is a DPDK device ({1}): only socket ports can be handed over")]
    NotShared(usize, String),
    #[error("{0} has {1} handover groups, this vrfwd {2} queues")]
    Queues(String, usize, u16),
}

/// Threads that steer a table's sockets at once ([`PortTable::steer`]).
const STEERERS: usize = 16;

/// A socket port as its holder hands it to a successor.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HandedPort {
    pub index: usize,
    pub iface: String,
    /// The netdev of a run-time attach; none for a port from the config.
    pub netdev: Option<String>,
    pub groups: Vec<u16>,
}

impl PortTable {
    /// A table of `ports` (None: a slot for a run-time attach), each with `queues`
    /// queue pairs, whose readers are those of `rcu`.
    pub fn new(
        ports: Vec<Option<Port>>,
        queues: u16,
        rcu: Arc<Rcu>,
    ) -> Result<PortTable, AttachError> {
        let cell = |slot| RcuCell::new(Arc::new(slot), Arc::clone(&rcu));
        let slots = ports
            .iter()
            .map(|p| cell(p.as_ref().map_or(Slot::Detached, |p| Slot::Dpdk(p.id))))
            .collect();
        let polled: Box<[usize]> = (0..ports.len()).filter(|&i| ports[i].is_some()).collect();
        let pollers = (0..queues.max(1))
            .map(|_| Poller::new())
            .collect::<Result<_, _>>()
            .map_err(AttachError::Poller)?;
        Ok(PortTable {
            slots,
            polled: RcuCell::new(Arc::new(polled), Arc::clone(&rcu)),
            pollers,
            socket_slots: AtomicUsize::new(0),
            owned: Mutex::new(
                ports
                    .into_iter()
                    .map(|p| {
                        p.map(|port| Owned {
                            device: Device::Port(port),
                            netdev: None,
                        })
                    })
                    .collect(),
            ),
            queues,
        })
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Queue pairs per port (one per lcore).
    pub fn queues(&self) -> u16 {
        self.queues
    }

    /// The slots that are DPDK ports: an lcore polls each every loop.
    #[inline(always)]
    pub fn polled<'s>(&'s self, section: &'s ReadSection) -> &'s [usize] {
        self.polled.read(section)
    }

    /// Whether any slot is a socket (an lcore need not look at its epoll set
    /// otherwise).
    #[inline(always)]
    pub fn has_sockets(&self) -> bool {
        self.socket_slots.load(Ordering::Relaxed) > 0
    }

    /// The socket slots with frames waiting for queue `queue` (looks, never
    /// waits): their indices, as many as `ready` has room for.
    pub fn ready<'r>(&self, queue: u16, ready: &'r mut Ready) -> impl Iterator<Item = usize> + 'r {
        self.pollers[queue as usize]
            .wait(ready, std::time::Duration::ZERO)
            .map(|token| token as usize)
    }

    /// Receives up to a burst from slot `index` into the (empty) `burst`, a
    /// socket's frames into mbufs from `pool`; 0 while the slot is detached.
    #[inline(always)]
    pub fn rx_burst(
        &self,
        index: usize,
        queue: u16,
        burst: &mut super::Burst,
        pool: &Mempool,
        section: &ReadSection,
    ) -> usize {
        match self.slots[index].read(section) {
            // SAFETY: inside a read section the port is started and stays open (see
            // the type's doc).
            Slot::Dpdk(id) => unsafe { rx_burst(*id, queue, burst) },
            // A failed receive (the netdev going away) reads nothing; frames too
            // big for an mbuf are counted by the socket (`stats`: rx_errors).
            Slot::Socket(sockets) => sockets[queue as usize]
                .rx_burst(pool, burst)
                .map_or(0, |r| r.frames),
            Slot::Detached => 0,
        }
    }

    /// Sends what `buffer` holds on slot `index`; frees it all while the slot is
    /// detached. Returns (sent, dropped).
    #[inline(always)]
    pub fn flush(
        &self,
        index: usize,
        queue: u16,
        buffer: &mut TxBuffer,
        section: &ReadSection,
    ) -> (u32, u32) {
        match self.slots[index].read(section) {
            // SAFETY: as in rx_burst.
            Slot::Dpdk(id) => unsafe { flush(*id, queue, buffer) },
            Slot::Socket(sockets) => sockets[queue as usize].flush(buffer),
            Slot::Detached => buffer.flush(|_, _| 0),
        }
    }

    /// The MAC address of slot `index`, if attached.
    pub fn mac(&self, index: usize) -> Option<vrfwd_wire::MacAddr> {
        self.lock()[index].as_ref().map(|o| match &o.device {
            Device::Port(port) => port.mac(),
            Device::Sockets { mac, .. } => *mac,
        })
    }

    /// The counters of slot `index`, if attached: the PMD's, or for sockets the
    /// frames their buffers dropped (as `rx_missed`) and those too large for an
    /// mbuf (as `rx_errors`).
    pub fn stats(&self, index: usize) -> Option<PortStats> {
        let mut owned = self.lock();
        match &mut owned[index].as_mut()?.device {
            Device::Port(port) => port.stats().ok(),
            Device::Sockets { sockets, drops, .. } => {
                *drops += sockets
                    .iter()
                    .filter_map(|s| s.take_drops().ok())
                    .sum::<u64>();
                Some(PortStats {
                    rx_missed: *drops,
                    rx_errors: sockets.iter().map(|s| s.oversize()).sum(),
                    ..PortStats::default()
                })
            }
        }
    }

    /// What slot `index` is attached to: the netdev of a run-time attach with how
    /// (`(socket)`, or `(PMD <device>)`), the DPDK device of a configured one,
    /// None when detached.
    pub fn attachment(&self, index: usize) -> Option<String> {
        self.lock()[index]
            .as_ref()
            .map(|o| match (&o.netdev, &o.device) {
                (Some(netdev), Device::Port(port)) => format!("{netdev} (PMD {})", port.name()),
                (Some(netdev), Device::Sockets { .. }) => format!("{netdev} (socket)"),
                (None, Device::Port(port)) => port.name().to_owned(),
                (None, Device::Sockets { iface, .. }) => format!("socket:{iface}"),
            })
    }

    /// Plugs `device` (a `--vdev` string for kernel netdev `netdev`) and makes it
    /// slot `index`, which lcores poll from their next loop.
    pub fn attach(
        &self,
        index: usize,
        netdev: &str,
        device: &str,
        pool: &Mempool,
    ) -> Result<(), AttachError> {
        self.plug(index, device, Some(netdev.to_owned()), pool)
    }

    /// Opens the config's `device` as slot `index`: a `--vdev` string plugs a
    /// DPDK device, `socket:NETDEV` opens vrfwd's own sockets; lcores poll it
    /// from their next loop.
    pub fn start(&self, index: usize, device: &str, pool: &Mempool) -> Result<(), AttachError> {
        match crate::config::socket_netdev(device) {
            Some(netdev) => self.open_sockets(index, netdev, None),
            None => self.plug(index, device, None, pool),
        }
    }

    fn plug(
        &self,
        index: usize,
        device: &str,
        netdev: Option<String>,
        pool: &Mempool,
    ) -> Result<(), AttachError> {
        let mut owned = self.lock();
        Self::vacant(&owned, index)?;
        let port = Port::plug(device, self.queues, pool)?;
        let id = port.id;
        owned[index] = Some(Owned {
            device: Device::Port(port),
            netdev,
        });
        let _ = self.slots[index].replace(Arc::new(Slot::Dpdk(id)));
        self.republish_polled(&owned);
        Ok(())
    }

    /// Opens kernel netdev `netdev` as slot `index` through AF_PACKET sockets, one
    /// per queue; lcores read them from their next loop, when frames wait.
    pub fn attach_socket(&self, index: usize, netdev: &str) -> Result<(), AttachError> {
        self.open_sockets(index, netdev, Some(netdev.to_owned()))
    }

    /// Opens `iface`'s sockets as slot `index`, attached at run time to
    /// `netdev` or (none) from the config.
    fn open_sockets(
        &self,
        index: usize,
        iface: &str,
        netdev: Option<String>,
    ) -> Result<(), AttachError> {
        self.install(index, iface, netdev, || {
            PacketSocket::open_queues(iface, VIF_RCVBUF, self.queues)
        })
    }

    /// Opens slot `index` as the successor of the port a predecessor holds
    /// on `iface` (its queues' handover groups `groups`), attached at run time
    /// to `netdev` or from the config: its sockets receive nothing until
    /// [`PortTable::steer`] names them.
    pub fn join(
        &self,
        index: usize,
        iface: &str,
        netdev: Option<String>,
        groups: &[u16],
    ) -> Result<(), AttachError> {
        if groups.len() != usize::from(self.queues.max(1)) {
            return Err(AttachError::Queues(
                iface.to_owned(),
                groups.len(),
                self.queues,
            ));
        }
        self.install(index, iface, netdev, || {
            PacketSocket::join_queues(iface, VIF_RCVBUF, groups)
        })
    }

    /// Makes the sockets `open` opens on `iface` slot `index`.
    fn install(
        &self,
        index: usize,
        iface: &str,
        netdev: Option<String>,
        open: impl FnOnce() -> Result<Vec<PacketSocket>, PacketError>,
    ) -> Result<(), AttachError> {
        let mut owned = self.lock();
        Self::vacant(&owned, index)?;
        let sockets = open()?;
        let mac = sockets[0].mac().map_err(sys_error("getsockname", iface))?;
        for (poller, socket) in self.pollers.iter().zip(&sockets) {
            if let Err(e) = poller.add(socket, index as u64) {
                for (p, s) in self.pollers.iter().zip(&sockets) {
                    let _ = p.remove(s);
                }
                return Err(AttachError::Poller(e));
            }
        }
        let sockets: Arc<[PacketSocket]> = sockets.into();
        owned[index] = Some(Owned {
            device: Device::Sockets {
                sockets: Arc::clone(&sockets),
                iface: iface.to_owned(),
                mac,
                drops: 0,
            },
            netdev,
        });
        let _ = self.slots[index].replace(Arc::new(Slot::Socket(sockets)));
        self.socket_slots.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// What a successor needs to take every port over: per occupied slot, its
    /// netdev, the netdev it was attached to at run time (none: from the
    /// config), and its queues' handover groups. Refused while any slot is a
    /// DPDK port, which cannot be shared.
    pub fn handover(&self) -> Result<Vec<HandedPort>, AttachError> {
        let owned = self.lock();
        let mut handed = Vec::new();
        for (index, o) in owned.iter().enumerate() {
            let Some(o) = o else { continue };
            match &o.device {
                Device::Port(port) => {
                    return Err(AttachError::NotShared(index, port.name().to_owned()))
                }
                Device::Sockets { sockets, iface, .. } => handed.push(HandedPort {
                    index,
                    iface: iface.clone(),
                    netdev: o.netdev.clone(),
                    groups: sockets
                        .iter()
                        .map(PacketSocket::group)
                        .collect::<Result<_, _>>()
                        .map_err(sys_error("PACKET_FANOUT", iface))?,
                }),
            }
        }
        Ok(handed)
    }

    /// Points every socket slot's handover groups at `member`; returns once no
    /// frame reaches another member. Each swap waits for the kernel's
    /// `synchronize_net`, so [`STEERERS`] threads swap at once: the waits
    /// overlap, and a host's switch takes about one of them, not one a port.
    pub fn steer(&self, member: Member) -> std::io::Result<()> {
        let owned = self.lock();
        let sockets: Vec<&PacketSocket> = owned
            .iter()
            .flatten()
            .filter_map(|o| match &o.device {
                Device::Sockets { sockets, .. } => Some(sockets.iter()),
                Device::Port(_) => None,
            })
            .flatten()
            .collect();
        let share = sockets.len().div_ceil(STEERERS).max(1);
        std::thread::scope(|s| {
            let steerers: Vec<_> = sockets
                .chunks(share)
                .map(|chunk| s.spawn(move || chunk.iter().try_for_each(|k| k.steer(member))))
                .collect();
            steerers
                .into_iter()
                .try_for_each(|t| t.join().expect("a steering thread"))
        })
    }

    /// Whether any socket slot has frames waiting to be read.
    pub fn waiting(&self) -> bool {
        self.lock().iter().flatten().any(|o| match &o.device {
            Device::Sockets { sockets, .. } => sockets.iter().any(PacketSocket::readable),
            Device::Port(_) => false,
        })
    }

    fn vacant(owned: &[Option<Owned>], index: usize) -> Result<(), AttachError> {
        match &owned[index] {
            None => Ok(()),
            Some(Owned {
                netdev: Some(at), ..
            }) => Err(AttachError::Attached(index, at.clone())),
            Some(_) => Err(AttachError::Configured(index)),
        }
    }

    /// Detaches the slot attached to `netdev` at run time; returns its index once
    /// no lcore uses it and its device (or its sockets) are gone.
    pub fn detach(&self, netdev: &str) -> Result<usize, AttachError> {
        let mut owned = self.lock();
        let index = owned
            .iter()
            .position(|o| o.as_ref().and_then(|o| o.netdev.as_deref()) == Some(netdev))
            .ok_or_else(|| AttachError::NotAttached(netdev.to_owned()))?;
        self.empty(&mut owned, index);
        Ok(index)
    }

    /// Empties slot `index` whatever it holds (the vif of a VR removed at run
    /// time); returns once no lcore uses it.
    pub fn release(&self, index: usize) {
        let mut owned = self.lock();
        self.empty(&mut owned, index);
    }

    /// Empties slot `index`: unlinked first, its device (or sockets) dropped
    /// once every lcore is past it.
    fn empty(&self, owned: &mut [Option<Owned>], index: usize) {
        // Out of the owned list first (so the polled list no longer names it),
        // dropped last: the port, or the sockets with `old`, go only once every
        // lcore is past the slot (each replace waits for a grace period).
        let Some(mut gone) = owned[index].take() else {
            return;
        };
        // A device from the EAL's command line leaves the vdev bus too, so that
        // a segment or VR added again can plug the same device.
        if let Device::Port(port) = &mut gone.device {
            port.plugged = true;
        }
        let old = self.slots[index].replace(Arc::new(Slot::Detached));
        if let Slot::Socket(sockets) = &*old {
            for (p, s) in self.pollers.iter().zip(sockets.iter()) {
                let _ = p.remove(s);
            }
            self.socket_slots.fetch_sub(1, Ordering::Relaxed);
        }
        if gone.is_port() {
            self.republish_polled(owned);
        }
        drop(gone);
    }

    /// Publishes the list of DPDK slots after an attach or detach.
    fn republish_polled(&self, owned: &[Option<Owned>]) {
        let polled: Box<[usize]> = (0..owned.len())
            .filter(|&i| owned[i].as_ref().is_some_and(Owned::is_port))
            .collect();
        let _ = self.polled.replace(Arc::new(polled));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Option<Owned>>> {
        // A panic while holding the lock leaves the table itself consistent.
        self.owned.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dpdk_sys::rte_eth_rx_mq_mode_RTE_ETH_MQ_RX_RSS as MQ_RSS;

    #[test]
    fn rss_is_asked_for_only_as_far_as_the_device_offers_it() {
        let mut nic = dpdk_sys::rte_eth_dev_info {
            // IPv4, non-fragmented IPv4 TCP, and L2 payload (bit 14), not wanted.
            flow_type_rss_offloads: (1 << 2) | (1 << 4) | (1 << 14),
            rx_offload_capa: u64::from(dpdk_sys::vrfwd_flags_VRFWD_ETH_RX_OFFLOAD_RSS_HASH) | 1,
            ..Default::default()
        };
        let conf = rss_conf(&nic);
        assert_eq!(conf.rxmode.mq_mode, MQ_RSS);
        assert_eq!(conf.rx_adv_conf.rss_conf.rss_hf, (1 << 2) | (1 << 4));
        assert_eq!(
            conf.rxmode.offloads,
            u64::from(dpdk_sys::vrfwd_flags_VRFWD_ETH_RX_OFFLOAD_RSS_HASH)
        );
        // RSS without the hash-delivery offload: configured, nothing more asked.
        nic.rx_offload_capa = 1;
        assert_eq!(rss_conf(&nic).rxmode.offloads, 0);

        let virtual_pmd = dpdk_sys::rte_eth_dev_info::default();
        let conf = rss_conf(&virtual_pmd);
        assert_ne!(conf.rxmode.mq_mode, MQ_RSS);
        assert_eq!(conf.rx_adv_conf.rss_conf.rss_hf, 0);
        assert_eq!(conf.rxmode.offloads, 0);
    }
}
