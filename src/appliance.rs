//! Start-up and shutdown of the appliance: EAL, mempool, ports, the shared
//! dataplane model, one worker per lcore, the operator socket; on quit, the lcores
//! stop, buffered packets are sent, and ports and EAL are released in order.
use crate::config::Running;
use crate::config::{self, Config};
use crate::control::ctl::Ctl;
use crate::control::reconfigure::Reconfigure;
use crate::control::session::Sessions;
use crate::control::writer::{Budget, RouteWriter};
use crate::control::{self, ControlError};
use crate::dataplane::{BuildError, Clock, Dataplane, Model, VrState};
use crate::dpdk::telemetry::Registration;
use crate::dpdk::{self, DpdkError, Eal, Mempool, Port, PortTable, Rcu};
use crate::lcore::Worker;
use crate::stats::{LcoreCounters, MempoolSnapshot, Snapshot};
use crate::upgrade::{self, Successor, UpgradeError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Packet data room per mbuf (DPDK's RTE_MBUF_DEFAULT_BUF_SIZE).
const MBUF_DATA_ROOM: u16 = 2048 + 128;

/// Why the appliance could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum ApplianceError {
    #[error(transparent)]
    Dpdk(#[from] DpdkError),
    #[error("port {port}: {source}")]
    Port {
        port: String,
        source: crate::dpdk::AttachError,
    },
    #[error("port table: {0}")]
    Ports(#[from] crate::dpdk::AttachError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("control address {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("metrics address {addr}: {source}")]
    Metrics {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("take-over: {0}")]
    TakeOver(#[from] UpgradeError),
    #[error("listeners: {0}")]
    Listeners(std::io::Error),
    #[error("EAL has {have} lcores but the config lists {want} cores")]
    Lcores { have: u32, want: usize },
}

/// The EAL command line for `config`: lcores on the configured cores, one `--vdev`
/// per port, then the operator's extra arguments.
pub fn eal_args(config: &Config) -> Vec<String> {
    let cores: Vec<String> = config.cores.iter().map(u16::to_string).collect();
    let mut args = vec!["-l".to_owned(), cores.join(",")];
    for device in config
        .topology
        .ports
        .iter()
        .filter_map(|p| p.device.clone())
        .filter(|d| config::socket_netdev(d).is_none())
    {
        args.push("--vdev".to_owned());
        args.push(device);
    }
    args.extend(config.eal_args.iter().cloned());
    args
}

/// What tells the appliance to stop or to reload, and the file it reloads.
pub struct Signals<'a> {
    /// Set on SIGINT or SIGTERM.
    pub quit: &'a AtomicBool,
    /// Set on SIGHUP: the appliance reloads `file` and clears it.
    pub reload: &'a AtomicBool,
    pub file: Option<std::path::PathBuf>,
}

/// How the appliance starts: afresh, or taking a running vrfwd's ports, VRs
/// and listeners over (`crate::upgrade`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    Fresh,
    TakeOver,
}

/// Runs the appliance until `signals.quit` is set. Returns the final counters.
pub fn run(config: &Config, signals: &Signals, start: Start) -> Result<Snapshot, ApplianceError> {
    // Before the EAL pins this thread to the main lcore's core.
    let control_cores = ControlCores::new(&config.cores);
    let successor = match start {
        Start::Fresh => None,
        Start::TakeOver => Some(Successor::connect(&config.socket)?),
    };
    let mut args = eal_args(config);
    if let Some(s) = &successor {
        args.retain(|a| !a.starts_with("--file-prefix="));
        let prefix = upgrade::successor_prefix(&s.offer.prefix);
        args.push(format!("--file-prefix={prefix}"));
    }
    let prefix = upgrade::file_prefix(&args);
    let eal = Eal::init(&args)?;
    let lcores = eal.lcore_count() as usize;
    if lcores != config.cores.len() {
        return Err(ApplianceError::Lcores {
            have: lcores as u32,
            want: config.cores.len(),
        });
    }
    let snapshot = run_on(
        &eal,
        config,
        lcores,
        &control_cores,
        signals,
        Lineage { prefix, successor },
    );
    drop(eal);
    snapshot
}

/// Where this vrfwd stands in a line of hand-overs: its EAL file prefix (told
/// to a successor), and the hand-over it is taking, if it is one.
struct Lineage {
    prefix: String,
    successor: Option<Successor>,
}

fn run_on(
    eal: &Eal,
    file_config: &Config,
    lcores: usize,
    control_cores: &ControlCores,
    signals: &Signals,
    lineage: Lineage,
) -> Result<Snapshot, ApplianceError> {
    let Lineage {
        prefix,
        mut successor,
    } = lineage;
    // A successor starts every VR in standby, for the holder's clones to fill.
    let successor_config = successor.as_ref().map(|_| file_config.for_successor());
    let config = successor_config.as_ref().unwrap_or(file_config);
    let quit = signals.quit;
    let pool = Mempool::new(
        "vrfwd_mbufs",
        config.mempool.mbufs,
        config.mempool.cache,
        MBUF_DATA_ROOM,
    )?;
    let rcu = Arc::new(Rcu::new(lcores as u32)?);
    let ports = config
        .topology
        .ports
        .iter()
        .map(|p| {
            p.device_name()
                .filter(|d| config::socket_netdev(d).is_none() && successor.is_none())
                .map(|device| Port::start(device, lcores as u16, &pool))
                .transpose()
                .map_err(|source| ApplianceError::Port {
                    port: p.name.clone(),
                    source: source.into(),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Vacant slots for vifs added at run time.
    let mut ports = ports;
    ports.resize_with(config.slots().ports, || None);
    let ports = PortTable::new(ports, lcores as u16, Arc::clone(&rcu))?;
    match &mut successor {
        Some(s) => join_ports(s, config, &ports)?,
        None => start_sockets(config, &ports, &pool)?,
    }
    let clock = Clock::new(dpdk::tsc(), dpdk::tsc_hz());
    let mac = |p: usize| ports.mac(p).unwrap_or_default();
    let (dp, routes) = Dataplane::build(config, clock, &rcu, &mac)?;
    let counters: Vec<LcoreCounters> = (0..lcores)
        .map(|_| LcoreCounters::new(dp.ports.len(), dp.vrs.len(), dp.segments.len()))
        .collect();
    let writer = RouteWriter::new(&dp, routes, budget(config));
    let model = Arc::new(Model::new(dp, Arc::clone(&rcu)));
    let access = control::Access::new(config.socket_gid()?);
    // A successor's counters go on from its holder's final ones.
    let inherited = std::sync::OnceLock::<Snapshot>::new();
    let snapshot = || {
        let mut now = Snapshot::collect(
            &counters,
            &model.current(),
            &|p| ports.stats(p),
            MempoolSnapshot {
                available: pool.available(),
                in_use: pool.in_use(),
            },
            model.current().clock.seconds(dpdk::tsc()),
        );
        if let Some(earlier) = inherited.get() {
            now.carry(earlier);
        }
        now
    };
    tracing::info!(
        lcores,
        ports = config.topology.ports.len(),
        vrs = config.topology.vrs.len(),
        "forwarding"
    );
    let stop = AtomicBool::new(false);
    // Unbounded by type, bounded by use: every session and operator connection
    // has at most one command in flight.
    let (to_writer, commands) = crossbeam_channel::unbounded();
    let sessions = Sessions::new(Arc::clone(&model), to_writer.clone(), config);
    let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
    let control_listener = listen(
        successor.as_mut().map(|s| s.control.take()),
        config.control.listen,
        |addr, source| ApplianceError::Listen { addr, source },
    )?;
    let metrics_listener = listen(
        successor.as_mut().map(|s| s.metrics.take()),
        config.metrics.address(),
        |addr, source| ApplianceError::Metrics { addr, source },
    )?;
    if let Some(l) = &metrics_listener {
        l.set_nonblocking(true).map_err(ApplianceError::Listeners)?;
    }
    // A successor's sessions take the holder's clones on a loopback port.
    let clone_listener = successor
        .as_ref()
        .map(|_| std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)))
        .transpose()
        .map_err(ApplianceError::Listeners)?;
    let clone_port = match &clone_listener {
        Some(l) => l.local_addr().map_err(ApplianceError::Listeners)?.port(),
        None => 0,
    };
    // What a successor shares with this vrfwd, should one ask.
    let shared = |l: &Option<std::net::TcpListener>| {
        l.as_ref()
            .map(std::net::TcpListener::try_clone)
            .transpose()
            .map_err(ApplianceError::Listeners)
    };
    let (shared_control, shared_metrics) = (shared(&control_listener)?, shared(&metrics_listener)?);
    // A successor binds the operator socket last, once the holder is gone.
    let operator = match successor {
        None => Operator::Bound(control::bind(&config.socket, access)?),
        Some(s) => Operator::AfterTakeOver(s),
    };
    let (model, snapshot, stop_ref, sessions_ref) = (&*model, &snapshot, &stop, &sessions);
    let inherited_ref = &inherited;
    let (ports_ref, pool_ref) = (&ports, &pool);
    let reconfigure = Reconfigure {
        model,
        ports: &ports,
        pool: &pool,
        counters: &counters,
        sessions: &sessions,
        writer: to_writer.clone(),
        file: signals.file.clone(),
        running: std::sync::Mutex::new(Running::new(file_config)),
        tx_drain: std::time::Duration::from_micros(config.timers.tx_drain_us.into()),
    };
    let reconfigure = &reconfigure;
    // Named, so that an operator (`top -H`) and bench/scale tell them from lcores;
    // a thread that cannot be spawned panics, as `Scope::spawn` does.
    let named = |name: &str| std::thread::Builder::new().name(name.into());
    let batch_seconds = crate::control::writer::batch_histogram();
    let batch_seconds_ref = &batch_seconds;
    let scrape = &|| crate::metrics::Scrape {
        counters: snapshot(),
        vrs: vr_status(&model.current(), sessions_ref),
        batch_seconds: batch_seconds_ref.clone(),
    };
    // `dpdk-telemetry.py`'s /vrfwd/… commands, answered until vrfwd stops.
    let telemetry = |cmd: &str, param: &str| crate::telemetry::answer(&scrape(), cmd, param);
    let registration = Registration::new(crate::telemetry::COMMANDS, &telemetry);
    let result = std::thread::scope(|s| {
        let batch_seconds = batch_seconds.clone();
        named("route-writer")
            .spawn_scoped(s, move || {
                control_cores.enter();
                writer.measured(batch_seconds).run(commands, stop_ref)
            })
            .expect("spawn the route writer");
        let listeners: Vec<_> = [control_listener, clone_listener]
            .into_iter()
            .flatten()
            .collect();
        if !listeners.is_empty() {
            let sessions = Arc::clone(sessions_ref);
            named("sessions")
                .spawn_scoped(s, move || {
                    control_cores.enter();
                    control_thread(sessions, listeners, shutdown_rx)
                })
                .expect("spawn the session thread");
        }
        if let Some(listener) = metrics_listener {
            named("metrics")
                .spawn_scoped(s, move || {
                    control_cores.enter();
                    crate::metrics::serve(&listener, stop_ref, scrape)
                })
                .expect("spawn the metrics thread");
        }
        named("reload")
            .spawn_scoped(s, move || {
                control_cores.enter();
                reload_on_signal(reconfigure, signals.reload, stop_ref)
            })
            .expect("spawn the reload thread");
        named("operator")
            .spawn_scoped(s, move || {
                control_cores.enter();
                let ctl = Ctl {
                    model,
                    writer: to_writer,
                    snapshot,
                    sessions: sessions_ref,
                    ports: ports_ref,
                    pool: pool_ref,
                    attach: &config.attach,
                    reconfigure,
                };
                let holder = upgrade::Holder {
                    ports: ports_ref,
                    sessions: sessions_ref,
                    prefix,
                    control: shared_control.as_ref(),
                    metrics: shared_metrics.as_ref(),
                    quit,
                    stopped: stop_ref,
                    counters: snapshot,
                };
                let listener = match operator {
                    Operator::Bound(socket) => socket,
                    Operator::AfterTakeOver(s) => {
                        match take_over(s, clone_port, model, ports_ref, &config.socket, access) {
                            Ok((socket, earlier)) => {
                                let _ = inherited_ref.set(earlier);
                                socket
                            }
                            Err(e) => {
                                tracing::error!("take-over failed: {e}");
                                quit.store(true, Ordering::Relaxed);
                                return;
                            }
                        }
                    }
                };
                let handlers = control::Handlers {
                    answer: &|line| ctl.answer(line),
                    hand_over: &|stream| holder.hand_over(stream),
                };
                control::serve(&listener, access, stop_ref, &handlers)
            })
            .expect("spawn the operator thread");
        let result = eal.run_on_all_lcores(&|index| {
            let mut reader = rcu.reader(index as u32).expect("one RCU reader per lcore");
            Worker::new(index, model, &ports, &pool, &counters[index], config)
                .run(quit, &mut reader)
        });
        stop.store(true, Ordering::Relaxed);
        let _ = shutdown.send(true);
        result
    });
    drop(registration);
    result?;
    let last = snapshot();
    drop(ports);
    drop(pool);
    Ok(last)
}

/// The operator socket, bound; or, for a successor, the hand-over it completes
/// before it binds the socket.
enum Operator {
    Bound(control::OperatorSocket),
    AfterTakeOver(Successor),
}

/// The listener a holder handed over (`handed`: a successor's, which may be
/// none), or one bound at the config's `addr`.
fn listen(
    handed: Option<Option<std::net::TcpListener>>,
    addr: Option<std::net::SocketAddr>,
    error: fn(std::net::SocketAddr, std::io::Error) -> ApplianceError,
) -> Result<Option<std::net::TcpListener>, ApplianceError> {
    match handed {
        Some(listener) => Ok(listener),
        None => addr
            .map(|a| std::net::TcpListener::bind(a).map_err(|e| error(a, e)))
            .transpose(),
    }
}

/// Opens the config's socket ports (DPDK ports are started before the table).
fn start_sockets(config: &Config, ports: &PortTable, pool: &Mempool) -> Result<(), ApplianceError> {
    for (i, p) in config.topology.ports.iter().enumerate() {
        let Some(device) = p.device.as_deref() else {
            continue;
        };
        if config::socket_netdev(device).is_some() {
            ports
                .start(i, device, pool)
                .map_err(|source| ApplianceError::Port {
                    port: p.name.clone(),
                    source,
                })?;
        }
    }
    Ok(())
}

/// Joins the ports the holder offers, which must be the config's: every port
/// with a device is a socket on the same netdev.
fn join_ports(s: &mut Successor, config: &Config, ports: &PortTable) -> Result<(), ApplianceError> {
    for (i, p) in config.topology.ports.iter().enumerate() {
        let Some(device) = p.device.as_deref() else {
            continue;
        };
        let offered = s.offer.ports.iter().find(|o| o.index == i);
        let same = offered.is_some_and(|o| config::socket_netdev(device) == Some(&o.iface));
        if !same {
            return Err(UpgradeError::Mismatch(format!(
                "port {} is {device} here, {} in the running vrfwd",
                p.name,
                offered.map_or("not a socket".to_owned(), |o| format!("socket:{}", o.iface))
            ))
            .into());
        }
    }
    s.join(ports)?;
    Ok(())
}

/// A successor's last steps: takes the ports over (`Successor::take_over`) and
/// binds the operator socket the holder left.
fn take_over(
    successor: Successor,
    clone_port: u16,
    model: &Model,
    ports: &PortTable,
    socket: &std::path::Path,
    access: control::Access,
) -> Result<(control::OperatorSocket, Snapshot), ApplianceError> {
    let earlier = successor.take_over(clone_port, model, ports)?;
    let listener = control::bind(socket, access)?;
    tracing::info!(socket = %socket.display(), "{}", upgrade::COMPLETE);
    Ok((listener, earlier))
}

/// How often the reload thread looks for SIGHUP.
const RELOAD_POLL: std::time::Duration = std::time::Duration::from_millis(200);

/// Reloads the config file each time `reload` is set (SIGHUP), until `stop`.
fn reload_on_signal(reconfigure: &Reconfigure, reload: &AtomicBool, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        if reload.swap(false, Ordering::Relaxed) {
            match reconfigure.reload() {
                Ok(done) => tracing::info!("reloaded: {done}"),
                Err(e) => tracing::warn!("reload refused: {e}"),
            }
        }
        std::thread::sleep(RELOAD_POLL);
    }
}

/// What the route writer lets VRs hold.
fn budget(config: &Config) -> Budget {
    Budget {
        max_routes: config.control.max_routes_per_vr,
        table_memory: config.limits.table_memory_mib << 20,
    }
}

/// Each VR's state, session and migration, for a metrics scrape.
fn vr_status(dp: &Dataplane, sessions: &Sessions) -> Vec<crate::metrics::VrStatus> {
    let up = sessions.list();
    dp.vrs
        .iter()
        .map(|(v, vr)| crate::metrics::VrStatus {
            id: vr.id,
            state: vr.state(),
            session: up
                .iter()
                .find(|s| s.vr == vr.id && !s.clone)
                .map(|s| s.generation),
            cloning: sessions.cloning_to(v).is_some(),
            entered: VrState::ALL.map(|state| vr.times_entered(state)),
        })
        .collect()
}

/// The control thread: a single-threaded tokio runtime serving route-protocol
/// sessions, migrations and the VR-state supervisor until shutdown.
fn control_thread(
    sessions: Arc<Sessions>,
    listeners: Vec<std::net::TcpListener>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let result = runtime.map(|rt| {
        rt.block_on(async {
            let _ = sessions.runtime.set(tokio::runtime::Handle::current());
            tokio::spawn(Arc::clone(&sessions).supervise(shutdown.clone()));
            let mut serving = tokio::task::JoinSet::new();
            for listener in listeners {
                listener.set_nonblocking(true)?;
                let listener = tokio::net::TcpListener::from_std(listener)?;
                serving.spawn(Arc::clone(&sessions).serve(listener, shutdown.clone()));
            }
            while serving.join_next().await.is_some() {}
            Ok::<(), std::io::Error>(())
        })
    });
    if let Err(e) | Ok(Err(e)) = result {
        tracing::error!("control thread: {e}");
    }
}

/// Scheduling niceness of control threads: where they must share a core with a
/// forwarding loop (fewer cores than threads), the loop gets ≈ 90% of it.
const CONTROL_NICE: i32 = 10;

/// The cores control threads run on: every core this process may use that the
/// lcores leave free (all of them when the lcores take every core), handed out in
/// turn so that the control threads spread over them. Made before `rte_eal_init`
/// pins the main thread; threads spawned after it inherit the main lcore's pinning
/// and priority, so each control thread moves itself.
struct ControlCores {
    cores: Vec<core_affinity::CoreId>,
    next: std::sync::atomic::AtomicUsize,
}

impl ControlCores {
    fn new(lcore_cores: &[u16]) -> ControlCores {
        let online = core_affinity::get_core_ids().unwrap_or_default();
        let free: Vec<_> = online
            .iter()
            .copied()
            .filter(|c| !lcore_cores.iter().any(|&l| usize::from(l) == c.id))
            .collect();
        ControlCores {
            cores: if free.is_empty() { online } else { free },
            next: Default::default(),
        }
    }

    /// Pins the calling thread to the next control core and lowers its priority
    /// below the lcores', so that a burst of control work (a million routes to
    /// decode) never starves a forwarding loop; a failure only costs performance,
    /// so it is logged.
    fn enter(&self) {
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        let pinned = !self.cores.is_empty()
            && core_affinity::set_for_current(self.cores[turn % self.cores.len()]);
        if !pinned {
            tracing::warn!("cannot move a control thread off the lcores' cores");
        }
        if let Err(e) = dpdk::set_thread_niceness(CONTROL_NICE) {
            tracing::warn!("cannot lower a control thread's priority: {e}");
        }
    }
}
