//! Migration of a VR between hosts, the control-plane half (docs/migration.md; the data
//! plane switches states on announcements, see `lcore`).
//!
//! * **Clone** (`vrfwd ctl migrate VR --to HOST:PORT`, or a hypervisor hook): this
//!   host opens a route-protocol session to the destination with the host
//!   credential and the generation of the VR's guest session, sends the VR's
//!   interfaces, a full sync of its routes and neighbours, then every route change
//!   the writer publishes and the neighbours as they change, until the guest
//!   leaves (the VR drains here: what changes here from then on is this host's,
//!   never the guest's, and is not sent), and the session lasts until the guest's
//!   agent replaces the clone at the destination, the operator cancels it, or the
//!   VR has drained here. The operator's command returns once the destination has
//!   acknowledged the whole sync: the VR is in standby there.
//! * **Cut-over**: only authenticated word drains a VR here: the destination's
//!   `<arrived/>` on the clone session (its guest's frames reached the
//!   destination's vif), the destination replacing the clone with the guest's
//!   own agent, or the operator (`vrfwd ctl drain VR`, which the hypervisor
//!   wrapper runs once the migration completed). An announcement of the VR's MAC
//!   on an uplink only makes a VR being cloned quiet (the data plane); quiet
//!   turns active again after `control.quiet_ms` without such word.
//! * **Drain**: a draining VR is removed from this host after `control.drain_ms`:
//!   its session ends, its routes and learned neighbours go, it waits in standby.
use super::session::Sessions;
use super::writer::{Command, RouteEdit};
use crate::dataplane::{
    neighbor6_of_key, neighbor_of_key, AgeingCache, CacheKey, Dataplane, NextHop, Path, Vr,
    VrEvent, VrState,
};
use ipnet::IpNet;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify};
use tokio::time::{interval, timeout, Instant};
use vrfwd_proto::{
    encode, stream_close, stream_header, Auth, Decoder, ErrorCode, Hello, Limits, NeighborOp,
    Nonce, Proof, RouteOp, Stanza, StreamHeader, VrId, DUAL_STACK, MULTIPATH,
};

/// Routes per `routes` stanza of a clone's sync.
const ROUTES_PER_STANZA: usize = 1000;
/// Route batches a clone may fall behind the writer before it is dropped.
const FEED_DEPTH: usize = 4096;
/// How often a clone sends changed neighbours, and the supervisor looks at states.
const NEIGHBOR_PERIOD: Duration = Duration::from_millis(200);
const SUPERVISE_PERIOD: Duration = Duration::from_millis(10);
/// How long the operator waits for the destination to hold the whole table.
const CLONE_READY_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A clone in progress from this host.
pub struct Outgoing {
    pub to: SocketAddr,
    pub(super) cancel: Arc<Notify>,
}

/// Why a migration could not start or ended badly.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("no control.host_credential is configured: VRs cannot migrate")]
    NoCredential,
    #[error("the route-protocol listener is not running (control.listen is unset)")]
    NoRuntime,
    #[error("vr {0} is {1} on this host: only an active VR migrates")]
    NotActive(u32, &'static str),
    #[error("vr {0} is already being cloned to {1}")]
    Busy(u32, SocketAddr),
    #[error("vr {0} is not being cloned")]
    NotCloning(u32),
    #[error("{to}: {source}")]
    Io {
        to: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0} did not answer within {1:?}")]
    Timeout(SocketAddr, Duration),
    #[error("{0} refused the clone: {1}")]
    Refused(SocketAddr, String),
    #[error("{0} closed the clone session")]
    Closed(SocketAddr),
    #[error("the clone fell more than {FEED_DEPTH} route batches behind")]
    FellBehind,
    #[error("the route writer stopped")]
    Writer,
    #[error(
        "{0} speaks protocol version {1}: this VR needs version {2} ({DUAL_STACK}: IPv6, {MULTIPATH}: multipath routes)"
    )]
    OldPeer(SocketAddr, u8, u8),
}

/// How a clone that worked ended.
#[derive(Debug, Clone, Copy)]
enum CloneEnd {
    Cancelled,
    Replaced,
}

impl Sessions {
    /// Starts cloning VR `v` to the host whose route-protocol listener is `to`;
    /// returns once that host holds the VR's whole table in standby.
    pub fn migrate(self: &Arc<Self>, v: usize, to: SocketAddr) -> Result<String, MigrateError> {
        let vr = &self.dp().vrs[v];
        let runtime = self.runtime.get().ok_or(MigrateError::NoRuntime)?.clone();
        if self.limits.host_credential.is_none() {
            return Err(MigrateError::NoCredential);
        }
        if vr.state() != VrState::Active {
            return Err(MigrateError::NotActive(vr.id, vr.state().label()));
        }
        let cancel = Arc::new(Notify::new());
        {
            let mut clones = self.clones.lock().expect("clone registry");
            if let Some(c) = clones.get(&v) {
                return Err(MigrateError::Busy(vr.id, c.to));
            }
            let cancel = Arc::clone(&cancel);
            clones.insert(v, Outgoing { to, cancel });
            vr.set_cloning(true);
        }
        let (ready, answer) = crossbeam_channel::bounded(1);
        let sessions = Arc::clone(self);
        runtime.spawn(async move {
            let mut ready = Some(ready);
            let id = sessions.dp().vrs[v].id;
            match sessions.clone_vr(v, to, &cancel, &mut ready).await {
                Ok(end) => tracing::info!(vr = id, %to, ?end, "clone ended"),
                Err(e) => {
                    tracing::warn!(vr = id, %to, "clone failed: {e}");
                    if let Some(ready) = ready {
                        let _ = ready.send(Err(e));
                    }
                }
            }
            let mut clones = sessions.clones.lock().expect("clone registry");
            if clones
                .get(&v)
                .is_some_and(|c| Arc::ptr_eq(&c.cancel, &cancel))
            {
                clones.remove(&v);
                if let Some(vr) = sessions.dp().vrs.get(v) {
                    vr.set_cloning(false);
                }
            }
        });
        answer
            .recv_timeout(CLONE_READY_TIMEOUT)
            .map_err(|_| MigrateError::Timeout(to, CLONE_READY_TIMEOUT))?
    }

    /// Cancels the clone of VR `v` (an aborted migration): the destination removes
    /// its standby; the VR stays active here.
    pub fn cancel_migration(&self, v: usize) -> Result<String, MigrateError> {
        let id = self.dp().vrs[v].id;
        let clones = self.clones.lock().expect("clone registry");
        let c = clones.get(&v).ok_or(MigrateError::NotCloning(id))?;
        c.cancel.notify_one();
        Ok(format!("vr {id}: clone to {} cancelled", c.to))
    }

    /// The operator's (or the hypervisor wrapper's) word that VR `v`'s guest runs
    /// elsewhere now: the VR drains here.
    /// Draining or standby already: nothing to do (the wrapper runs this after
    /// every migration, usually after the destination's word).
    pub fn drain(&self, v: usize) -> String {
        let vr = &self.dp().vrs[v];
        if vr.depart() {
            tracing::info!(
                vr = vr.id,
                "the operator says the guest runs elsewhere: draining"
            );
            return format!("vr {}: draining", vr.id);
        }
        format!("vr {}: {} already", vr.id, vr.state().label())
    }

    /// Where VR `v` is being cloned to, if it is.
    pub fn cloning_to(&self, v: usize) -> Option<SocketAddr> {
        self.clones
            .lock()
            .expect("clone registry")
            .get(&v)
            .map(|c| c.to)
    }

    /// One clone session; `ready` gets the answer for the operator when the
    /// destination acknowledges the sync (left in place on an earlier failure).
    async fn clone_vr(
        &self,
        v: usize,
        to: SocketAddr,
        cancel: &Notify,
        ready: &mut Option<crossbeam_channel::Sender<Result<String, MigrateError>>>,
    ) -> Result<CloneEnd, MigrateError> {
        let io = |source| MigrateError::Io { to, source };
        let vr = &self.dp().vrs[v];
        let credential = self
            .limits
            .host_credential
            .clone()
            .ok_or(MigrateError::NoCredential)?;
        let stream = timeout(CONNECT_TIMEOUT, TcpStream::connect(to))
            .await
            .map_err(|_| MigrateError::Timeout(to, CONNECT_TIMEOUT))?
            .map_err(io)?;
        stream.set_nodelay(true).map_err(io)?;
        let (mut rd, mut wr) = stream.into_split();
        let (feed, mut changes) = tokio::sync::mpsc::channel(FEED_DEPTH);
        let routes = self
            .write(move |reply| Command::Subscribe { vr: v, feed, reply })
            .await
            .ok_or(MigrateError::Writer)?;

        let write_timeout = Duration::from_secs(self.limits.write_timeout_s.into());
        let mut decoder = Decoder::new(Limits {
            max_stanza_bytes: self.limits.max_stanza_bytes,
        });
        let mut buf = vec![0u8; 16 * 1024];
        send(
            &mut wr,
            &stream_header(&StreamHeader::client()),
            write_timeout,
            to,
        )
        .await?;
        let (version, nonce) = timeout(
            CONNECT_TIMEOUT,
            host_header(&mut rd, &mut decoder, &mut buf),
        )
        .await
        .map_err(|_| MigrateError::Timeout(to, CONNECT_TIMEOUT))?
        .map_err(|why| MigrateError::Refused(to, why))?;

        let mut seq = 0u64;
        let mut next = || {
            seq += 1;
            seq
        };
        let mut out = String::new();
        // A destination that speaks no IPv6 (or no multipath) ends the clone
        // at the first IPv6 route, neighbour or address (or multipath route),
        // rather than hold the VR without them.
        let push = |out: &mut String, s: Stanza| {
            if s.version_needed() > version {
                return Err(MigrateError::OldPeer(to, version, s.version_needed()));
            }
            out.push_str(&encode(&s));
            Ok(())
        };
        let generation = self.generation(v).unwrap_or(0);
        push(
            &mut out,
            Stanza::Hello(Hello {
                seq: next(),
                vr: VrId(vr.id),
                generation,
                auth: Auth::Proof(Proof::new(credential.as_bytes(), &nonce, vr.id, generation)),
            }),
        )?;
        push(
            &mut out,
            Stanza::Interfaces {
                seq: next(),
                interfaces: vr.interfaces.iter().map(interface).collect(),
            },
        )?;
        push(&mut out, Stanza::SyncBegin { seq: next() })?;
        for chunk in routes.chunks(ROUTES_PER_STANZA) {
            let ops = chunk.iter().map(|e| route_op(vr, e)).collect();
            push(&mut out, Stanza::Routes { seq: next(), ops })?;
        }
        let mut neighbors = SentNeighbors::default();
        let ops = neighbors.changes(vr, self.now());
        if !ops.is_empty() {
            push(&mut out, Stanza::Neighbors { seq: next(), ops })?;
        }
        let sync_end = next();
        push(&mut out, Stanza::SyncEnd { seq: sync_end })?;
        let keepalive = Duration::from_secs(self.limits.keepalive_s.into());
        send(&mut wr, &out, write_timeout, to).await?;
        let mut last_sent = Instant::now();

        let mut tick = interval(NEIGHBOR_PERIOD);
        loop {
            let mut out = String::new();
            tokio::select! {
                read = rd.read(&mut buf) => {
                    let n = read.map_err(io)?;
                    if n == 0 {
                        return Err(MigrateError::Closed(to));
                    }
                    decoder.feed(&buf[..n]);
                    while let Some(stanza) = decoder.next_stanza() {
                        match stanza {
                            Ok(Stanza::Ack { seq }) if seq >= sync_end => {
                                if let Some(ready) = ready.take() {
                                    let _ = ready.send(Ok(format!(
                                        "vr {}: {} routes and {} neighbours cloned to {to}; standby there",
                                        vr.id, routes.len(), neighbors.len()
                                    )));
                                }
                            }
                            Ok(Stanza::Arrived) if ready.is_none() => {
                                departed(vr, to, "its guest runs there");
                            }
                            Ok(Stanza::Error { code: ErrorCode::Replaced, .. }) if ready.is_none() => {
                                departed(vr, to, "its guest's agent took over there");
                                return Ok(CloneEnd::Replaced);
                            }
                            Ok(Stanza::Error { code, message, .. }) => {
                                return Err(MigrateError::Refused(to, format!("{}: {message}", code.as_str())));
                            }
                            Ok(_) => {}
                            Err(e) => return Err(MigrateError::Refused(to, e.message)),
                        }
                    }
                    if decoder.is_closed() {
                        return Err(MigrateError::Closed(to));
                    }
                }
                edits = changes.recv() => {
                    let edits = edits.ok_or(MigrateError::FellBehind)?;
                    if guest_left(vr) {
                        // This host's own change (the drain's withdrawal, an
                        // operator's edit): never the destination's.
                        tracing::debug!(vr = vr.id, edits = edits.len(), "not cloned: the guest runs there");
                    } else {
                        // A sync the guest's agent ran here is one batch of up to
                        // its whole table: cut as the clone's own sync is, under
                        // the destination's stanza limit.
                        for chunk in edits.chunks(ROUTES_PER_STANZA) {
                            let ops = chunk.iter().map(|e| route_op(vr, e)).collect();
                            push(&mut out, Stanza::Routes { seq: next(), ops })?;
                        }
                    }
                }
                _ = tick.tick() => {
                    let ops = match guest_left(vr) {
                        false => neighbors.changes(vr, self.now()),
                        true => Vec::new(),
                    };
                    if !ops.is_empty() {
                        push(&mut out, Stanza::Neighbors { seq: next(), ops })?;
                    } else if last_sent.elapsed() >= keepalive {
                        push(&mut out, Stanza::Keepalive)?;
                    }
                }
                _ = cancel.notified() => {
                    send(&mut wr, stream_close(), write_timeout, to).await?;
                    return Ok(CloneEnd::Cancelled);
                }
            }
            if !out.is_empty() {
                send(&mut wr, &out, write_timeout, to).await?;
                last_sent = Instant::now();
            }
        }
    }

    fn now(&self) -> u32 {
        self.dp().clock.seconds(crate::dpdk::tsc())
    }

    /// Watches the VRs' states: takes the lcores' migration events (a VR whose
    /// guest arrived here tells the host cloning it), turns a VR quiet for
    /// `control.quiet_ms` active again, and removes a VR that has drained for
    /// `control.drain_ms`. Runs until `shutdown` turns true.
    pub async fn supervise(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let drain = Duration::from_millis(self.limits.drain_ms.into());
        let quiet = Duration::from_millis(self.limits.quiet_ms.into());
        let slots = self.dp().vrs.len();
        let mut seen: Vec<(VrState, Instant)> = vec![(VrState::Standby, Instant::now()); slots];
        let mut tick = interval(SUPERVISE_PERIOD);
        let mut lost = 0;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            let dp = self.dp();
            // (An event of a VR removed since it was queued is dropped.)
            for event in dp.events.take().filter(|e| dp.vrs.get(e.vr()).is_some()) {
                log_event(&dp, event);
                if let VrEvent::Arrived { vr } = event {
                    self.guest_arrived(vr);
                }
            }
            if dp.events.lost() > lost {
                lost = dp.events.lost();
                tracing::warn!(
                    lost,
                    "migration events lost: the control thread fell behind"
                );
            }
            for (v, vr) in dp.vrs.iter() {
                let state = vr.state();
                if state != seen[v].0 {
                    tracing::debug!(vr = vr.id, "{} → {}", seen[v].0.label(), state.label());
                    seen[v] = (state, Instant::now());
                }
                if state == VrState::Quiet && seen[v].1.elapsed() >= quiet && vr.unquiet() {
                    tracing::warn!(
                        vr = vr.id,
                        "announced elsewhere, but no word from the destination: active again"
                    );
                    seen[v] = (VrState::Active, Instant::now());
                }
                if state == VrState::Draining
                    && seen[v].1.elapsed() >= drain
                    && vr.transition(VrState::Draining, VrState::Standby)
                {
                    if let Some(c) = self.clones.lock().expect("clone registry").get(&v) {
                        c.cancel.notify_one();
                    }
                    self.end_session(v, "the VR drained: its guest runs on another host");
                    self.remove(v).await;
                    tracing::info!(vr = vr.id, "drained: removed from this host, standby");
                    seen[v] = (VrState::Standby, Instant::now());
                }
            }
        }
    }
}

/// Logs a migration event an lcore reported.
fn log_event(dp: &Dataplane, event: VrEvent) {
    match event {
        VrEvent::Arrived { vr } => {
            tracing::info!(vr = dp.vrs[vr].id, "guest runs here: active, announced")
        }
        VrEvent::Quieted { vr } => tracing::info!(
            vr = dp.vrs[vr].id,
            "announced on an uplink while being cloned: quiet until the destination confirms"
        ),
    }
}

/// Whether VR `vr`'s guest has left this host (on authenticated word: it drains
/// or has drained). From then on nothing that changes here is the guest's: its
/// agent's session here is dead, and what this host does to the VR (the drain
/// withdraws its routes and forgets its neighbours) must not reach the
/// destination, where the guest now runs.
fn guest_left(vr: &Vr) -> bool {
    matches!(vr.state(), VrState::Draining | VrState::Standby)
}

/// The destination `to` of VR `vr`'s clone said the guest runs there (`why`):
/// the VR drains here.
fn departed(vr: &Vr, to: SocketAddr, why: &str) {
    if vr.depart() {
        tracing::info!(vr = vr.id, %to, "{why}: draining");
    }
}

/// A route edit in protocol terms, naming interfaces by this host's names (the
/// destination maps them by MAC).
fn route_op(vr: &Vr, edit: &RouteEdit) -> RouteOp {
    match edit {
        RouteEdit::Add { prefix, route } => RouteOp::Add {
            prefix: *prefix,
            paths: route.paths().iter().map(|p| path(vr, p)).collect(),
        },
        RouteEdit::Delete { prefix } => RouteOp::Delete { prefix: *prefix },
    }
}

/// One path in protocol terms.
fn path(vr: &Vr, path: &Path) -> vrfwd_proto::Path {
    let (iface, via) = match path.next_hop {
        NextHop::Attached { iface } => (iface, None),
        NextHop::Gateway { iface, via } => (iface, Some(Ipv4Addr::from(via).into())),
        NextHop::Gateway6 { iface, via } => (iface, Some(std::net::Ipv6Addr::from(via).into())),
        NextHop::Local | NextHop::Group { .. } => {
            unreachable!("the writer feeds no local routes, and groups as their paths")
        }
    };
    vrfwd_proto::Path {
        via,
        interface: vr.interfaces[iface].name.clone(),
        // Weights come from the protocol (at most 256) or the operator.
        weight: path.weight.min(u32::from(vrfwd_proto::MAX_WEIGHT)) as u16,
    }
}

/// VR `vr`'s interface `i` as the protocol declares it: its name, MAC and
/// addresses (IPv4, then IPv6).
fn interface(i: &crate::config::Interface) -> vrfwd_proto::Interface {
    let v6 = i.addresses6.iter().map(|&a| IpNet::V6(a));
    vrfwd_proto::Interface {
        name: i.name.clone(),
        mac: i.mac,
        addresses: std::iter::once(IpNet::V4(i.net())).chain(v6).collect(),
    }
}

/// The neighbours a clone has sent, per family, by cache key → MAC.
#[derive(Default)]
struct SentNeighbors {
    v4: HashMap<u64, u64>,
    v6: HashMap<[u64; 3], u64>,
}

impl SentNeighbors {
    fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// The changes of VR `vr`'s neighbours since they were last sent (which
    /// then records them as sent).
    fn changes(&mut self, vr: &Vr, now: u32) -> Vec<NeighborOp> {
        let name = |iface: usize| vr.interfaces[iface].name.clone();
        let mut ops = changes_of(&vr.neighbors, now, &mut self.v4, |k| {
            let (iface, address) = neighbor_of_key(k);
            (name(iface), address.into())
        });
        ops.extend(changes_of(&vr.neighbors6, now, &mut self.v6, |k| {
            let (iface, address) = neighbor6_of_key(k);
            (name(iface), address.into())
        }));
        ops
    }
}

/// The changes of one neighbour cache since `sent` (which is brought up to
/// date); `split` names a key's interface and address.
fn changes_of<K: CacheKey + Hash>(
    cache: &AgeingCache<K>,
    now: u32,
    sent: &mut HashMap<K, u64>,
    split: impl Fn(K) -> (String, IpAddr),
) -> Vec<NeighborOp> {
    let current: HashMap<K, u64> = cache
        .entries(now)
        .into_iter()
        .map(|(key, mac, _)| (key, mac))
        .collect();
    let mut ops: Vec<NeighborOp> = sent
        .keys()
        .filter(|k| !current.contains_key(k))
        .map(|&k| {
            let (interface, address) = split(k);
            NeighborOp::Delete { address, interface }
        })
        .collect();
    ops.extend(
        current
            .iter()
            .filter(|(k, mac)| sent.get(k) != Some(mac))
            .map(|(&k, &mac)| {
                let (interface, address) = split(k);
                NeighborOp::Add {
                    address,
                    mac: vrfwd_wire::MacAddr::from_u64(mac),
                    interface,
                }
            }),
    );
    *sent = current;
    ops
}

/// The sessions' bounded write, with the destination named in its error.
async fn send(
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    text: &str,
    limit: Duration,
    to: SocketAddr,
) -> Result<(), MigrateError> {
    super::session::send(wr, text.as_bytes(), limit)
        .await
        .map_err(|source| MigrateError::Io { to, source })
}

/// Reads the destination's stream header and returns the version it chose and
/// its challenge: clones authenticate with version 2 or later only (the host
/// credential never crosses the wire).
async fn host_header(
    rd: &mut tokio::net::tcp::OwnedReadHalf,
    decoder: &mut Decoder,
    buf: &mut [u8],
) -> Result<(u8, Nonce), String> {
    loop {
        if let Some(h) = decoder.header() {
            return h
                .challenge()
                .map(|nonce| (h.version, nonce))
                .map_err(|e| e.to_string());
        }
        let n = rd.read(buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed before its stream header".into());
        }
        decoder.feed(&buf[..n]);
        if let Some(Err(e)) = decoder.next_stanza() {
            return Err(e.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::dataplane::{neighbor6_key, neighbor_key, Clock, Dataplane, Route};
    use crate::dpdk::Rcu;

    /// The config module's example: VR 1 with eth0 10.0.1.1/24 and 2001:db8:1::1/64.
    fn vr() -> Dataplane {
        let dual = crate::config::tests::EXAMPLE.replace(
            "vif = \"vif1\"",
            "vif = \"vif1\"\naddress6 = [\"2001:db8:1::1/64\"]",
        );
        let config = Config::parse(&dual).unwrap();
        let rcu = Arc::new(Rcu::new(1).unwrap());
        Dataplane::build(&config, Clock::new(0, 1), &rcu, &|_| {
            vrfwd_wire::MacAddr::default()
        })
        .unwrap()
        .0
    }

    #[test]
    fn neighbours_of_both_families_are_cloned_as_changes() {
        let dp = vr();
        let vr = &dp.vrs[0];
        let mac = vrfwd_wire::MacAddr([2, 0, 0, 0, 0, 7]);
        let v4 = Ipv4Addr::new(10, 0, 1, 7);
        let v6: std::net::Ipv6Addr = "fe80::7".parse().unwrap();
        let (key, key6) = (neighbor_key(0, v4.into()), neighbor6_key(0, v6.into()));
        let mut sent = SentNeighbors::default();
        assert!(sent.changes(vr, 0).is_empty());
        vr.neighbors.learn(key, mac.to_u64(), 0);
        vr.neighbors6.learn(key6, mac.to_u64(), 0);
        let add = |address: IpAddr| NeighborOp::Add {
            address,
            mac,
            interface: "eth0".into(),
        };
        assert_eq!(sent.changes(vr, 0), vec![add(v4.into()), add(v6.into())]);
        assert!(sent.changes(vr, 1).is_empty(), "unchanged");
        vr.neighbors.forget(key);
        vr.neighbors6.forget(key6);
        let delete = |address: IpAddr| NeighborOp::Delete {
            address,
            interface: "eth0".into(),
        };
        assert_eq!(
            sent.changes(vr, 1),
            vec![delete(v4.into()), delete(v6.into())]
        );
    }

    #[test]
    fn an_interface_is_declared_with_both_families_addresses() {
        let dp = vr();
        let declared = interface(&dp.vrs[0].interfaces[0]);
        assert_eq!(
            declared.addresses,
            vec![
                "10.0.1.1/24".parse::<IpNet>().unwrap(),
                "2001:db8:1::1/64".parse().unwrap()
            ]
        );
        let s = Stanza::Interfaces {
            seq: 1,
            interfaces: vec![declared],
        };
        assert_eq!(
            s.version_needed(),
            DUAL_STACK,
            "a version-3 peer cannot take it"
        );
    }

    #[test]
    fn routes_are_cloned_by_interface_name() {
        let dp = vr();
        let prefix: ipnet::IpNet = "10.9.0.0/16".parse().unwrap();
        let via = Ipv4Addr::new(10, 0, 1, 2);
        let gateway = RouteEdit::Add {
            prefix,
            route: Route::One(NextHop::Gateway {
                iface: 0,
                via: via.into(),
            }),
        };
        assert_eq!(
            route_op(&dp.vrs[0], &gateway),
            RouteOp::Add {
                prefix,
                paths: [vrfwd_proto::Path::new(Some(via.into()), "eth0")].into(),
            }
        );
        // A multipath route's paths go whole, with their weights.
        let path = |via: Ipv4Addr, weight| Path {
            next_hop: NextHop::Gateway {
                iface: 0,
                via: via.into(),
            },
            weight,
        };
        let two = Ipv4Addr::new(10, 0, 1, 3);
        let multipath = RouteEdit::Add {
            prefix,
            route: Route::new(vec![path(via, 1), path(two, 3)]).unwrap(),
        };
        let weighted = |via: Ipv4Addr, weight| vrfwd_proto::Path {
            weight,
            ..vrfwd_proto::Path::new(Some(via.into()), "eth0")
        };
        let op = route_op(&dp.vrs[0], &multipath);
        assert_eq!(
            op,
            RouteOp::Add {
                prefix,
                paths: vrfwd_proto::Paths::from_iter([weighted(via, 1), weighted(two, 3)]),
            }
        );
        let stanza = Stanza::Routes {
            seq: 1,
            ops: vec![op],
        };
        assert_eq!(stanza.version_needed(), vrfwd_proto::MULTIPATH);
        assert_eq!(
            route_op(&dp.vrs[0], &RouteEdit::Delete { prefix }),
            RouteOp::Delete { prefix }
        );
    }
}
