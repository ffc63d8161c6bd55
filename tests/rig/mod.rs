//! The real forwarding loop in-process, on virtual DPDK ports (ring, pcap), for
//! the tests that feed it frames themselves: the EAL, a mempool, every port of
//! the config started, the data plane, one lcore's counters, and the loop run for
//! a while on the test's thread. Dropped in order: ports, pool, EAL.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use vrfwd::config::Config;
use vrfwd::dataplane::{Clock, Dataplane, Model};
use vrfwd::dpdk::{self, Eal, Mbuf, Mempool, Port, PortTable, Rcu, ReadSection, TxBuffer};
use vrfwd::lcore::Worker;
use vrfwd::stats::LcoreCounters;

pub struct Rig {
    /// None once [`Rig::stop_ports`] stopped them.
    ports: Option<PortTable>,
    pub model: Model,
    pub counters: LcoreCounters,
    pub pool: Mempool,
    pub rcu: Arc<Rcu>,
    pub config: Config,
    _eal: Eal,
}

impl Rig {
    /// The EAL with `eal_args`, a pool `pool` of `mbufs` mbufs, and `config`'s
    /// ports (their devices among the EAL's `--vdev`s), one queue pair each.
    pub fn new(config: Config, eal_args: &[&str], pool: &str, mbufs: u32) -> Rig {
        let eal = Eal::init(eal_args).expect("EAL");
        let pool = Mempool::new(pool, mbufs, 0, 2048 + 128).expect("mempool");
        let rcu = Arc::new(Rcu::new(1).expect("RCU"));
        let ports = config
            .topology
            .ports
            .iter()
            .map(|p| Some(Port::start(p.device_name().expect("a device"), 1, &pool).expect("port")))
            .collect();
        let mut ports: Vec<Option<Port>> = ports;
        let clock = Clock::new(dpdk::tsc(), dpdk::tsc_hz());
        let mac = |p: usize| ports[p].as_ref().map(Port::mac).unwrap_or_default();
        let (dp, _routes) = Dataplane::build(&config, clock, &rcu, &mac).expect("data plane");
        ports.resize_with(dp.ports.len(), || None);
        let ports = PortTable::new(ports, 1, Arc::clone(&rcu)).expect("port table");
        let counters = LcoreCounters::new(ports.len(), dp.vrs.len(), dp.segments.len());
        Rig {
            ports: Some(ports),
            model: Model::new(dp, Arc::clone(&rcu)),
            counters,
            pool,
            rcu,
            config,
            _eal: eal,
        }
    }

    pub fn ports(&self) -> &PortTable {
        self.ports.as_ref().expect("ports running")
    }

    /// Runs the forwarding loop for `ms` milliseconds.
    pub fn run_for(&self, ms: u64) {
        let quit = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(ms));
                quit.store(true, Ordering::Relaxed);
            });
            let mut reader = self.rcu.reader(0).expect("RCU reader");
            Worker::new(
                0,
                &self.model,
                self.ports(),
                &self.pool,
                &self.counters,
                &self.config,
            )
            .run(&quit, &mut reader);
        });
    }

    /// Sends `frames` out of port `port` while the loop is not running (a ring
    /// port's RX then holds them); returns how many were sent and dropped.
    pub fn inject(&self, port: usize, frames: impl IntoIterator<Item = Mbuf>) -> (u32, u32) {
        self.with_section(|ports, section| {
            let mut tx = TxBuffer::default();
            let mut total = (0, 0);
            let mut flush = |tx: &mut TxBuffer| {
                let (sent, dropped) = ports.flush(port, 0, tx, section);
                total = (total.0 + sent, total.1 + dropped);
            };
            for m in frames {
                if let Err(m) = tx.push(m) {
                    flush(&mut tx);
                    assert!(tx.push(m).is_ok(), "an empty buffer takes a frame");
                }
            }
            flush(&mut tx);
            total
        })
    }

    /// Calls `f` with the ports inside an RCU read section (the loop not running).
    pub fn with_section<T>(&self, f: impl FnOnce(&PortTable, &ReadSection) -> T) -> T {
        let reader = self.rcu.reader(0).expect("RCU reader");
        let section = reader.section();
        f(self.ports(), &section)
    }

    /// Stops and closes the ports (a pcap port writes its file out).
    pub fn stop_ports(&mut self) {
        self.ports = None;
    }
}
