//! Route-protocol sessions (docs/protocol.md): a tokio server on the control
//! address. Each connection authenticates one VR with its credential, maps the
//! guest's interfaces to the VR's by MAC, turns validated stanzas into route-writer
//! batches and acknowledges them once they are live. One active session per VR:
//! a `hello` with a higher generation replaces the older one. When a VR's session
//! ends, its routes keep forwarding for the hold time (graceful restart); a resync
//! inside it sweeps what the guest no longer has; after it, the VR's fast path is
//! withdrawn.
//!
//! A host that migrates a VR here opens a session with the host credential
//! instead of the VR's (a *clone*, docs/migration.md), accepted only from the
//! configured peer hosts: it may only fill a VR in standby (once the guest has
//! arrived here, its changes are acknowledged and ignored), and when it ends
//! before the guest has arrived, the standby is removed. A guest's own session on
//! a standby VR means the guest runs here: it activates it, and it always takes
//! over from a clone.
//!
//! Limits bound what a peer can cost (docs/security.md): connections host-wide
//! and per source address; a `hello` within a few seconds of connecting, in a
//! stanza of at most 4 KiB, whatever else the peer sends; failed hellos per
//! source and minute; then the stanza size (in the decoder); an idle timeout that
//! counts completed stanzas and that a stream of bytes cannot starve; a write
//! timeout (a peer that never reads acks is dropped; nothing is read while a
//! write waits, so memory stays bounded); stanzas per second (faster peers are
//! slowed down); routes per VR (in the route writer).
use super::writer::{Command, Reply, RouteEdit, WriteError};
use crate::config::{Config, ControlConfig};
use crate::dataplane::{
    neighbor6_key, neighbor_key, Dataplane, Model, NextHop, Path, Route, VrState,
};
use crate::lpm::TableError;
use crossbeam_channel::Sender;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::time::{sleep, sleep_until, timeout, Instant};
use vrfwd_proto::{
    encode, stream_close, stream_header, stream_open, Auth, Decoder, ErrorCode, Limits, NeighborOp,
    Nonce, RouteOp, Stanza, StreamHeader, HOST_GENERATIONS,
};

/// The largest stanza a peer may send before its `hello` succeeded.
const PRE_HELLO_STANZA_BYTES: usize = 4096;
/// The window failed hellos are counted in.
const AUTH_WINDOW: Duration = Duration::from_secs(60);
/// Sources whose failed hellos are remembered before expired ones are dropped.
const MAX_TRACKED_SOURCES: usize = 4096;
/// A peer's `<error>`, and a change refused to an authenticated peer, are each
/// logged at most this often per session.
const LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Characters of a peer's error message that reach the log.
const PEER_ERROR_LOG_CHARS: usize = 200;

/// One kind of log line a peer can cause: written at most once per
/// [`LOG_INTERVAL`], with how many were left out since, so a peer cannot
/// flood the host's log.
#[derive(Debug, Default)]
struct Throttled {
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttled {
    /// Whether to log one now; if so, how many were left out before it.
    fn admit(&mut self, now: Instant) -> Option<u64> {
        if self.last.is_some_and(|last| now - last < LOG_INTERVAL) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// What a `hello` claims, with what it is checked against.
struct Claim<'a> {
    vr: u32,
    generation: u64,
    auth: &'a Auth,
    /// The connection's challenge (version 2).
    nonce: &'a Nonce,
    source: IpAddr,
}

impl Claim<'_> {
    /// Whether the hello proves knowledge of `expected` (constant-time).
    fn holds(&self, expected: &Option<String>) -> bool {
        let Some(expected) = expected.as_deref() else {
            return false;
        };
        match self.auth {
            Auth::Credential(c) => bool::from(expected.as_bytes().ct_eq(c.as_bytes())),
            Auth::Proof(p) => p.verify(expected.as_bytes(), self.nonce, self.vr, self.generation),
        }
    }
}

/// A fresh per-connection challenge from the operating system's generator.
fn random_nonce() -> [u8; 32] {
    let mut nonce = [0u8; 32];
    getrandom::fill(&mut nonce).expect("the OS random number generator");
    nonce
}

/// Opens the stream (as version 1, which every peer reads), says why, and ends.
async fn refuse(
    wr: &mut OwnedWriteHalf,
    code: ErrorCode,
    why: &str,
    write_timeout: Duration,
) -> std::io::Result<()> {
    let e = Stanza::Error {
        seq: None,
        code,
        message: why.into(),
    };
    send(
        wr,
        format!("{}{}", stream_open(), encode(&e)).as_bytes(),
        write_timeout,
    )
    .await
}

/// What every session shares.
pub struct Sessions {
    model: Arc<Model>,
    pub(super) writer: Sender<Command>,
    pub(super) limits: ControlConfig,
    vrs: Mutex<Vec<VrSession>>,
    /// Open connections by source address.
    sources: Mutex<HashMap<IpAddr, usize>>,
    /// Failed hellos by source address: since when, how many.
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
    next_id: AtomicU64,
    /// Outgoing clones (migrations from this host), by VR index.
    pub(super) clones: Mutex<HashMap<usize, super::migrate::Outgoing>>,
    /// The control thread's runtime, once it runs (the operator starts clones on it).
    pub(crate) runtime: std::sync::OnceLock<tokio::runtime::Handle>,
}

#[derive(Default)]
struct VrSession {
    active: Option<Active>,
    /// The highest generation this host has seen or handed out for the VR: a
    /// version-3 guest session gets the next one.
    generation: u64,
    /// Bumped whenever the VR gains or loses its session: a hold timer only fires
    /// for the epoch it was started in.
    epoch: u64,
}

struct Active {
    id: u64,
    generation: u64,
    peer: SocketAddr,
    kick: Arc<Kick>,
    /// Told when the VR's guest runs here (a clone session then says `arrived`).
    arrived: Arc<Notify>,
    clone: bool,
}

/// A session's state for operators.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SessionInfo {
    pub vr: u32,
    pub peer: String,
    pub generation: u64,
    /// A host cloning the VR here, not its guest.
    pub clone: bool,
}

/// A rejected stanza: the error to send and whether the session must end.
struct Reject {
    seq: Option<u64>,
    code: ErrorCode,
    message: String,
    fatal: bool,
}

fn reject(code: ErrorCode, message: impl Into<String>) -> Reject {
    Reject {
        seq: None,
        code,
        message: message.into(),
        fatal: false,
    }
}

fn fatal(code: ErrorCode, message: impl Into<String>) -> Reject {
    Reject {
        fatal: true,
        ..reject(code, message)
    }
}

impl Sessions {
    pub fn new(model: Arc<Model>, writer: Sender<Command>, config: &Config) -> Arc<Sessions> {
        let slots = model.current().vrs.len();
        Arc::new(Sessions {
            vrs: Mutex::new((0..slots).map(|_| VrSession::default()).collect()),
            model,
            writer,
            limits: config.control.clone(),
            sources: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            clones: Mutex::new(HashMap::new()),
            runtime: std::sync::OnceLock::new(),
        })
    }

    /// The current data-plane model.
    pub(crate) fn dp(&self) -> Arc<Dataplane> {
        self.model.current()
    }

    /// The active sessions.
    pub fn list(&self) -> Vec<SessionInfo> {
        let vrs = self.vrs.lock().expect("session registry");
        vrs.iter()
            .enumerate()
            .filter_map(|(v, s)| {
                s.active.as_ref().map(|a| SessionInfo {
                    vr: self.dp().vrs[v].id,
                    peer: a.peer.to_string(),
                    generation: a.generation,
                    clone: a.clone,
                })
            })
            .collect()
    }

    /// Accepts sessions until `shutdown` turns true.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        // Acks and keepalives are small writes that must not wait
                        // for the peer's delayed ACK (Nagle: up to 40 ms each).
                        if let Err(e) = stream.set_nodelay(true) {
                            tracing::warn!(%peer, "control TCP_NODELAY: {e}");
                        }
                        let sessions = Arc::clone(&self);
                        let shutdown = shutdown.clone();
                        tokio::spawn(async move { sessions.connection(stream, peer, shutdown).await });
                    }
                    Err(e) => {
                        tracing::warn!("control accept: {e}");
                        sleep(Duration::from_millis(100)).await;
                    }
                },
                _ = shutdown.changed() => return,
            }
        }
    }

    async fn connection(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        shutdown: watch::Receiver<bool>,
    ) {
        let admitted = {
            let mut sources = self.sources.lock().expect("source registry");
            let open = sources.values().sum::<usize>();
            let n = sources.entry(peer.ip()).or_insert(0);
            *n += 1;
            if open >= self.limits.max_connections {
                Err("too many connections to this host")
            } else if *n > self.limits.max_sessions_per_source {
                Err("too many sessions from this address")
            } else {
                Ok(())
            }
        };
        let mut session = Session {
            sessions: Arc::clone(&self),
            peer,
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            bound: None,
            kick: Arc::default(),
            arrived: Arc::new(Notify::new()),
            peer_errors: Throttled::default(),
            refused: Throttled::default(),
            version: None,
            nonce: Nonce(random_nonce()),
            handed_out: None,
        };
        if let Err(e) = session.run(stream, admitted, shutdown).await {
            tracing::debug!(%peer, "session ended: {e}");
        }
        session.release();
        let mut sources = self.sources.lock().expect("source registry");
        if let Some(n) = sources.get_mut(&peer.ip()) {
            *n -= 1;
            if *n == 0 {
                sources.remove(&peer.ip());
            }
        }
    }

    /// The VR a `hello` names and whether it is a clone (the host credential,
    /// from a configured peer) or its guest (the VR's credential). Credentials
    /// and proofs are compared in constant time; every failure reads the same.
    fn authenticate(&self, claim: &Claim) -> Result<(usize, bool), Reject> {
        let vr_id = claim.vr;
        let auth_failed = || fatal(ErrorCode::Auth, format!("wrong credential for vr {vr_id}"));
        let dp = self.dp();
        let v = dp.vrs.position(|v| v.id == vr_id).ok_or_else(auth_failed)?;
        if claim.holds(&dp.vrs[v].credential) {
            Ok((v, false))
        } else if self.limits.peers.contains(&claim.source)
            && claim.holds(&self.limits.host_credential)
        {
            Ok((v, true))
        } else {
            Err(auth_failed())
        }
    }

    /// True while `source` has used up its failed hellos for the minute.
    fn throttled(&self, source: IpAddr) -> bool {
        let failures = self.failures.lock().expect("failure registry");
        failures.get(&source).is_some_and(|&(since, n)| {
            since.elapsed() < AUTH_WINDOW && n >= self.limits.max_auth_failures_per_min
        })
    }

    /// Counts a failed hello from `source`.
    fn failed_hello(&self, source: IpAddr) {
        let mut failures = self.failures.lock().expect("failure registry");
        if failures.len() >= MAX_TRACKED_SOURCES {
            failures.retain(|_, (since, _)| since.elapsed() < AUTH_WINDOW);
        }
        let entry = failures.entry(source).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= AUTH_WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }

    /// The generation of VR `v`'s active session, if it has one.
    pub(super) fn generation(&self, v: usize) -> Option<u64> {
        self.vrs.lock().expect("session registry")[v]
            .active
            .as_ref()
            .map(|a| a.generation)
    }

    /// The guest of VR `v` runs on this host now: if a host is cloning the VR
    /// here, its session tells that host (`<arrived/>`), which drains it.
    pub(super) fn guest_arrived(&self, v: usize) {
        if let Some(a) = &self.vrs.lock().expect("session registry")[v].active {
            if a.clone {
                a.arrived.notify_one();
            }
        }
    }

    /// Ends VR `v`'s active session, if any (its guest left this host).
    pub(super) fn end_session(&self, v: usize, why: &'static str) {
        if let Some(a) = &self.vrs.lock().expect("session registry")[v].active {
            a.kick.end(ErrorCode::WrongState, why);
        }
    }

    /// Removes VR `v` from this host's data plane: no routes, no learned neighbours.
    pub(super) async fn remove(&self, v: usize) {
        self.write(move |reply| Command::Withdraw { vr: v, reply })
            .await;
        let dp = self.dp();
        // (Unless the operator removed the VR from the host meanwhile.)
        if let Some(vr) = dp.vrs.get(v) {
            vr.forget_learned_neighbors(dp.clock.seconds(crate::dpdk::tsc()));
        }
    }

    /// Ends VR `v`'s session and any clone of it, ahead of the VR's removal
    /// from the host: waits (up to [`RETIRE_WAIT`]) until the session has let
    /// go, then starts the slot's record afresh for the next VR in it (a hold
    /// timer still running finds its epoch gone).
    pub fn retire(&self, v: usize) {
        if let Some(c) = self.clones.lock().expect("clone registry").get(&v) {
            c.cancel.notify_one();
        }
        self.end_session(v, "the VR was removed from this host");
        let deadline = std::time::Instant::now() + RETIRE_WAIT;
        let held = || {
            self.vrs.lock().expect("session registry")[v]
                .active
                .is_some()
        };
        while held() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut vrs = self.vrs.lock().expect("session registry");
        if vrs[v].active.is_some() {
            tracing::warn!(
                slot = v,
                "a session did not end in time; its VR is removed anyway"
            );
        }
        let epoch = vrs[v].epoch + 1;
        vrs[v] = VrSession {
            epoch,
            ..VrSession::default()
        };
    }

    /// Sends `command` to the route writer and awaits its answer (the send never
    /// blocks: every sender has at most one command in flight).
    pub(super) async fn write<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Option<T> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.writer.send(make(reply)).ok()?;
        answer.await.ok()
    }
}

/// The word to a session to end, and why (the first reason given).
#[derive(Default)]
struct Kick {
    told: Notify,
    why: std::sync::OnceLock<(ErrorCode, &'static str)>,
}

impl Kick {
    fn end(&self, code: ErrorCode, why: &'static str) {
        let _ = self.why.set((code, why));
        self.told.notify_one();
    }

    fn why(&self) -> (ErrorCode, &'static str) {
        self.why
            .get()
            .copied()
            .unwrap_or((ErrorCode::Internal, "ended"))
    }
}

/// How long [`Sessions::retire`] waits for a session to end.
const RETIRE_WAIT: Duration = Duration::from_secs(2);

/// One connection.
struct Session {
    sessions: Arc<Sessions>,
    peer: SocketAddr,
    id: u64,
    bound: Option<Bound>,
    kick: Arc<Kick>,
    /// Told when the VR this clone session is for has its guest here.
    arrived: Arc<Notify>,
    /// The peer's `<error>`s, logged.
    peer_errors: Throttled,
    /// The changes refused to the authenticated peer, logged.
    refused: Throttled,
    /// The version agreed in the stream headers, once the peer's has arrived.
    version: Option<u8>,
    /// This connection's challenge (version 2).
    nonce: Nonce,
    /// The generation handed out by the last `hello`, to send after its ack.
    handed_out: Option<u64>,
}

/// A session after a successful `hello`.
struct Bound {
    vr: usize,
    /// A host cloning the VR (host credential), not its guest.
    clone: bool,
    /// Guest interface name → VR interface index.
    interfaces: HashMap<String, usize>,
}

impl Session {
    async fn run(
        &mut self,
        stream: TcpStream,
        admitted: Result<(), &'static str>,
        mut shutdown: watch::Receiver<bool>,
    ) -> std::io::Result<()> {
        let limits = self.sessions.limits.clone();
        let (mut rd, mut wr) = stream.into_split();
        let write_timeout = Duration::from_secs(limits.write_timeout_s.into());
        if let Err(why) = admitted {
            return refuse(&mut wr, ErrorCode::Limit, why, write_timeout).await;
        }
        // Until the peer has authenticated it may not make the host hold more
        // than a hello needs.
        let mut decoder = Decoder::new(Limits {
            max_stanza_bytes: PRE_HELLO_STANZA_BYTES.min(limits.max_stanza_bytes),
        });
        let idle = Duration::from_secs(limits.idle_timeout_s.into());
        let keepalive = Duration::from_secs(limits.keepalive_s.into());
        let hello_by = Instant::now() + Duration::from_secs(limits.hello_timeout_s.into());
        let mut idle_by = Instant::now() + idle;
        let mut last_sent = Instant::now();
        let mut window = (Instant::now(), 0u32);
        let mut buf = vec![0u8; 16 * 1024];
        let kick = Arc::clone(&self.kick);
        let arrived = Arc::clone(&self.arrived);
        loop {
            let (deadline, why) = match self.bound {
                None if hello_by < idle_by => (
                    hello_by,
                    format!("no hello within {}s", limits.hello_timeout_s),
                ),
                _ => (
                    idle_by,
                    format!("no complete stanza for {}s", idle.as_secs()),
                ),
            };
            tokio::select! {
                // Deadlines first: a peer that keeps bytes coming cannot starve them.
                biased;
                _ = sleep_until(deadline) => {
                    let e = Stanza::Error { seq: None, code: ErrorCode::Limit, message: why };
                    return send(&mut wr, encode(&e).as_bytes(), write_timeout).await;
                }
                _ = kick.told.notified() => {
                    let (code, message) = kick.why();
                    let e = Stanza::Error { seq: None, code, message: message.into() };
                    return send(&mut wr, encode(&e).as_bytes(), write_timeout).await;
                }
                _ = shutdown.changed() => return send(&mut wr, stream_close().as_bytes(), write_timeout).await,
                _ = arrived.notified() => {
                    send(&mut wr, encode(&Stanza::Arrived).as_bytes(), write_timeout).await?;
                    last_sent = Instant::now();
                }
                read = rd.read(&mut buf) => {
                    let n = read?;
                    if n == 0 {
                        return Ok(());
                    }
                    decoder.feed(&buf[..n]);
                    loop {
                        let next = decoder.next_stanza();
                        // The host speaks once it knows what the peer speaks.
                        if let (None, Some(peer)) = (self.version, decoder.header()) {
                            match self.answer_header(peer) {
                                Ok(ours) => send(&mut wr, stream_header(&ours).as_bytes(), write_timeout).await?,
                                Err(r) => return refuse(&mut wr, r.code, &r.message, write_timeout).await,
                            }
                        }
                        let Some(next) = next else { break };
                        if self.version.is_none() {
                            // Failed before the header (a DTD, text, a bad root).
                            send(&mut wr, stream_open().as_bytes(), write_timeout).await?;
                            self.version = Some(1);
                        }
                        idle_by = Instant::now() + idle;
                        // Rate limit: slow down a peer that sends too fast.
                        if window.0.elapsed() >= Duration::from_secs(1) {
                            window = (Instant::now(), 0);
                        }
                        window.1 += 1;
                        if window.1 > limits.max_stanzas_per_s {
                            sleep(Duration::from_secs(1).saturating_sub(window.0.elapsed())).await;
                            window = (Instant::now(), 1);
                        }
                        let was_bound = self.bound.is_some();
                        let (reply, fatal) = match next {
                            Ok(stanza) => match self.handle(stanza).await {
                                Ok(reply) => (reply, false),
                                Err(r) => (Some(Stanza::Error { seq: r.seq, code: r.code, message: r.message }), r.fatal),
                            },
                            Err(e) => (Some(Stanza::Error { seq: e.seq, code: e.code, message: e.message }), e.fatal),
                        };
                        if !was_bound && self.bound.is_some() {
                            decoder.set_limits(Limits { max_stanza_bytes: limits.max_stanza_bytes });
                        }
                        if let Some(reply) = &reply {
                            send(&mut wr, encode(reply).as_bytes(), write_timeout).await?;
                            last_sent = Instant::now();
                        }
                        if let Some(generation) = self.handed_out.take() {
                            send(&mut wr, encode(&Stanza::Generation { generation }).as_bytes(), write_timeout).await?;
                        }
                        if let (false, Some(Stanza::Error { code, message, .. })) = (fatal, &reply) {
                            self.log_refused(*code, message);
                        }
                        if fatal {
                            if let (Some(b), Some(Stanza::Error { code, message, .. })) = (&self.bound, &reply) {
                                // An authenticated peer's session: the operator wants to know.
                                tracing::warn!(vr = self.sessions.dp().vrs[b.vr].id, peer = %self.peer, code = code.as_str(), "session ended: {message}");
                            }
                            return Ok(());
                        }
                    }
                    if decoder.is_closed() {
                        return send(&mut wr, stream_close().as_bytes(), write_timeout).await;
                    }
                }
                _ = sleep(keepalive.saturating_sub(last_sent.elapsed())) => {
                    send(&mut wr, encode(&Stanza::Keepalive).as_bytes(), write_timeout).await?;
                    last_sent = Instant::now();
                }
            }
        }
    }

    /// Handles one valid stanza: the reply to send, or a rejection.
    async fn handle(&mut self, stanza: Stanza) -> Result<Option<Stanza>, Reject> {
        let seq = stanza.seq();
        match self.apply(stanza).await {
            Ok(true) => Ok(seq.map(|seq| Stanza::Ack { seq })),
            Ok(false) => Ok(None),
            Err(r) => Err(Reject { seq, ..r }),
        }
    }

    /// Carries out one stanza; true if it is to be acknowledged.
    async fn apply(&mut self, stanza: Stanza) -> Result<bool, Reject> {
        let version = self.version.unwrap_or(1);
        if stanza.version_needed() > version {
            return Err(reject(
                ErrorCode::BadVersion,
                format!(
                    "this stanza needs protocol version {} (4: IPv6, several addresses per interface; 5: routes of several paths); the stream speaks {version}",
                    stanza.version_needed()
                ),
            ));
        }
        match (&self.bound, stanza) {
            (None, Stanza::Hello(h)) => self.hello(h.vr.0, h.generation, &h.auth).map(|_| true),
            (None, Stanza::Keepalive) => Ok(false),
            (None, _) => Err(fatal(ErrorCode::Sequence, "hello must come first")),
            (Some(_), Stanza::Hello(_)) => Err(reject(
                ErrorCode::Sequence,
                "this session already said hello",
            )),
            (Some(_), Stanza::Interfaces { interfaces, .. }) => {
                self.interfaces(&interfaces).map(|_| true)
            }
            (
                Some(b),
                Stanza::Routes { .. }
                | Stanza::Neighbors { .. }
                | Stanza::SyncBegin { .. }
                | Stanza::SyncEnd { .. },
            ) if b.clone && self.sessions.dp().vrs[b.vr].state() != VrState::Standby => {
                // The guest runs here: its own agent speaks for it, and nothing
                // the source changes from now on (its drain's withdrawal) is the
                // guest's. Acknowledged, so the source's clone goes on.
                tracing::info!(
                    vr = self.sessions.dp().vrs[b.vr].id,
                    "a clone's change after the guest arrived here: ignored"
                );
                Ok(true)
            }
            (Some(b), Stanza::Routes { ops, .. }) => {
                let vr = b.vr;
                let edits = self.route_edits(&ops)?;
                let answer = self
                    .sessions
                    .write(move |reply| Command::Edit { vr, edits, reply })
                    .await;
                match answer {
                    Some(Ok(())) => Ok(true),
                    Some(Err(e)) => Err(write_reject(e)),
                    None => Err(fatal(ErrorCode::Internal, "the route writer stopped")),
                }
            }
            (Some(_), Stanza::Neighbors { ops, .. }) => self.neighbors(&ops).map(|_| true),
            (Some(b), Stanza::SyncBegin { .. }) => {
                let vr = b.vr;
                self.sessions
                    .write(move |reply| Command::SyncBegin { vr, reply })
                    .await
                    .map(|()| true)
                    .ok_or_else(|| fatal(ErrorCode::Internal, "the route writer stopped"))
            }
            (Some(b), Stanza::SyncEnd { .. }) => {
                let vr = b.vr;
                match self
                    .sessions
                    .write(move |reply| Command::SyncEnd { vr, reply })
                    .await
                {
                    Some(Ok(removed)) => {
                        tracing::info!(
                            vr = self.sessions.dp().vrs[vr].id,
                            removed,
                            "sync complete"
                        );
                        Ok(true)
                    }
                    Some(Err(e)) => Err(write_reject(e)),
                    None => Err(fatal(ErrorCode::Internal, "the route writer stopped")),
                }
            }
            (Some(_), Stanza::Keepalive | Stanza::Ack { .. }) => Ok(false),
            (Some(_), Stanza::Arrived | Stanza::Generation { .. }) => Err(reject(
                ErrorCode::Forbidden,
                "a host's stanza: a host sends it, never receives it",
            )),
            (Some(_), Stanza::Error { code, message, .. }) => {
                self.log_peer_error(code, &message);
                Ok(false)
            }
        }
    }

    /// The host's stream header for the peer's: the newest version both speak
    /// (version 1 only where the host accepts credentials in clear text) and,
    /// for version 2, this connection's nonce.
    fn answer_header(&mut self, peer: &StreamHeader) -> Result<StreamHeader, Reject> {
        let version = peer.common_version().unwrap_or(1);
        if version == 1 && !self.sessions.limits.accept_v1 {
            return Err(fatal(
                ErrorCode::BadVersion,
                "this host does not accept version 1 (credentials in clear text): upgrade the agent",
            ));
        }
        self.version = Some(version);
        Ok(StreamHeader::host(
            version,
            (version >= 2).then_some(self.nonce),
        ))
    }

    /// Logs what the peer reported, escaped, cut short, and at most once per
    /// [`LOG_INTERVAL`] (with how many were left out).
    fn log_peer_error(&mut self, code: ErrorCode, message: &str) {
        let Some(suppressed) = self.peer_errors.admit(Instant::now()) else {
            return;
        };
        let shown: String = message.chars().take(PEER_ERROR_LOG_CHARS).collect();
        tracing::warn!(peer = %self.peer, code = code.as_str(), suppressed, "peer reported: {shown:?}");
    }

    /// Logs a change refused to the authenticated peer (the session goes on),
    /// at most once per [`LOG_INTERVAL`] (with how many were left out).
    fn log_refused(&mut self, code: ErrorCode, message: &str) {
        let Some(bound) = &self.bound else { return };
        let vr = self.sessions.dp().vrs[bound.vr].id;
        let Some(suppressed) = self.refused.admit(Instant::now()) else {
            return;
        };
        tracing::warn!(vr, peer = %self.peer, code = code.as_str(), suppressed, "change refused: {message}");
    }

    /// Authenticates the session for a VR. Every check (throttle, credential,
    /// peer, VR state, the session it would replace) comes before any state
    /// changes: a refused hello leaves the VR as it was.
    fn hello(&mut self, vr_id: u32, generation: u64, auth: &Auth) -> Result<(), Reject> {
        let sessions = Arc::clone(&self.sessions);
        let source = self.peer.ip();
        if sessions.throttled(source) {
            return Err(fatal(
                ErrorCode::Limit,
                format!("too many failed hellos from {source}: wait a minute"),
            ));
        }
        match (self.version, auth) {
            (Some(1), Auth::Credential(_)) | (Some(2..), Auth::Proof(_)) => {}
            (version, _) => {
                return Err(fatal(
                    ErrorCode::Auth,
                    format!(
                        "version {} authenticates with {}",
                        version.unwrap_or(1),
                        if version >= Some(2) {
                            "a proof"
                        } else {
                            "a credential"
                        }
                    ),
                ))
            }
        }
        let claim = Claim {
            vr: vr_id,
            generation,
            auth,
            nonce: &self.nonce,
            source,
        };
        let (v, clone) = sessions
            .authenticate(&claim)
            .inspect_err(|_| sessions.failed_hello(source))?;
        let vr = &sessions.dp().vrs[v];
        if clone && vr.state() != VrState::Standby {
            return Err(fatal(
                ErrorCode::WrongState,
                format!("vr {vr_id} is {} on this host", vr.state().label()),
            ));
        }
        let mut vrs = sessions.vrs.lock().expect("session registry");
        let state = &mut vrs[v];
        let handed_out = !clone && self.version >= Some(HOST_GENERATIONS);
        if let Some(active) = &state.active {
            // The guest's own agent always takes over from a clone (whatever
            // generation the other host gave it). Otherwise, version 3: the agent
            // that presents the generation this host gave last (or a later one)
            // takes over; older versions: the higher generation wins.
            let guest_over_clone = !clone && active.clone;
            let stale = if handed_out {
                generation < active.generation
            } else {
                generation <= active.generation
            };
            if !guest_over_clone && stale {
                return Err(fatal(
                    ErrorCode::Replaced,
                    format!(
                        "vr {vr_id} has a session of generation {} (this one is {generation})",
                        active.generation
                    ),
                ));
            }
        }
        // Accepted: from here on state changes.
        let generation = if handed_out {
            let next = state.generation.max(generation).saturating_add(1);
            self.handed_out = Some(next);
            next
        } else {
            generation
        };
        state.generation = state.generation.max(generation);
        if !clone && vr.activate_from_session() {
            tracing::info!(vr = vr_id, "the guest's agent is here: active");
        }
        if let Some(active) = &state.active {
            active
                .kick
                .end(ErrorCode::Replaced, "another session took over this VR");
        }
        state.active = Some(Active {
            id: self.id,
            generation,
            peer: self.peer,
            kick: Arc::clone(&self.kick),
            arrived: Arc::clone(&self.arrived),
            clone,
        });
        state.epoch += 1;
        self.bound = Some(Bound {
            vr: v,
            clone,
            interfaces: HashMap::new(),
        });
        tracing::info!(vr = vr_id, generation, clone, peer = %self.peer, "session up");
        Ok(())
    }

    fn interfaces(&mut self, list: &[vrfwd_proto::Interface]) -> Result<(), Reject> {
        let b = self.bound.as_mut().expect("bound");
        let vr = &self.sessions.dp().vrs[b.vr];
        let mut map = HashMap::new();
        for i in list {
            let iface = vr
                .interfaces
                .iter()
                .position(|h| h.mac == i.mac)
                .ok_or_else(|| {
                    reject(
                        ErrorCode::UnknownInterface,
                        format!("no interface of this VR has MAC {} ({})", i.mac, i.name),
                    )
                })?;
            map.insert(i.name.clone(), iface);
        }
        b.interfaces = map;
        Ok(())
    }

    fn iface(&self, name: &str) -> Result<usize, Reject> {
        let b = self.bound.as_ref().expect("bound");
        b.interfaces.get(name).copied().ok_or_else(|| {
            reject(
                ErrorCode::UnknownInterface,
                format!("interface {name:?} was not declared"),
            )
        })
    }

    /// `addr` (a gateway or a neighbour, named on the guest's `interface`) must
    /// lie on the subnet or link of the VR's interface `iface`.
    fn reaches(&self, iface: usize, addr: IpAddr, interface: &str) -> Result<(), Reject> {
        let b = self.bound.as_ref().expect("bound");
        if self.sessions.dp().vrs[b.vr].interfaces[iface].reaches(addr) {
            Ok(())
        } else {
            Err(reject(
                ErrorCode::BadAddress,
                format!("{addr} is not on {interface}'s subnet"),
            ))
        }
    }

    /// Validates route operations against the VR: known interfaces, gateways on
    /// their interface's subnet or link (a link-local gateway is scoped by the
    /// interface it is named on). The route limit is the writer's (it counts what
    /// a sync has staged too).
    fn route_edits(&self, ops: &[RouteOp]) -> Result<Vec<RouteEdit>, Reject> {
        ops.iter()
            .map(|op| match op {
                RouteOp::Add { prefix, paths } => {
                    let route = match &paths[..] {
                        // Most routes: no set to build.
                        [one] => Route::One(self.path(one)?.next_hop),
                        many => {
                            let paths = many
                                .iter()
                                .map(|p| self.path(p))
                                .collect::<Result<_, _>>()?;
                            Route::new(paths).map_err(|e| {
                                reject(ErrorCode::InvalidStanza, format!("route {prefix}: {e}"))
                            })?
                        }
                    };
                    Ok(RouteEdit::Add {
                        prefix: *prefix,
                        route,
                    })
                }
                RouteOp::Delete { prefix } => Ok(RouteEdit::Delete { prefix: *prefix }),
            })
            .collect()
    }

    /// One path of a route as a next hop of the VR.
    fn path(&self, path: &vrfwd_proto::Path) -> Result<Path, Reject> {
        let iface = self.iface(&path.interface)?;
        let next_hop = match path.via {
            None => NextHop::Attached { iface },
            Some(via) => {
                self.reaches(iface, via, &path.interface)?;
                NextHop::gateway(iface, via)
            }
        };
        Ok(Path {
            next_hop,
            weight: u32::from(path.weight),
        })
    }

    fn neighbors(&self, ops: &[NeighborOp]) -> Result<(), Reject> {
        let b = self.bound.as_ref().expect("bound");
        let vr = &self.sessions.dp().vrs[b.vr];
        // Validate all first: the stanza applies whole or not at all.
        let checked = ops
            .iter()
            .map(|op| match op {
                NeighborOp::Add {
                    address,
                    mac,
                    interface,
                } => {
                    let iface = self.iface(interface)?;
                    self.reaches(iface, *address, interface)?;
                    Ok((iface, *address, Some(*mac)))
                }
                NeighborOp::Delete { address, interface } => {
                    Ok((self.iface(interface)?, *address, None))
                }
            })
            .collect::<Result<Vec<_>, Reject>>()?;
        let now = self.sessions.dp().clock.seconds(crate::dpdk::tsc());
        for (iface, address, mac) in checked {
            match (address, mac) {
                (IpAddr::V4(a), Some(mac)) => {
                    vr.neighbors
                        .learn(neighbor_key(iface, a.into()), mac.to_u64(), now);
                }
                (IpAddr::V4(a), None) => vr.neighbors.forget(neighbor_key(iface, a.into())),
                (IpAddr::V6(a), Some(mac)) => {
                    vr.neighbors6
                        .learn(neighbor6_key(iface, a.into()), mac.to_u64(), now);
                }
                (IpAddr::V6(a), None) => vr.neighbors6.forget(neighbor6_key(iface, a.into())),
            }
        }
        Ok(())
    }

    /// The session is over: if it was its VR's active one, start the hold timer.
    fn release(&self) {
        let Some(b) = &self.bound else { return };
        let mut vrs = self.sessions.vrs.lock().expect("session registry");
        let state = &mut vrs[b.vr];
        if state.active.as_ref().map(|a| a.id) != Some(self.id) {
            return; // replaced: the new session owns the VR
        }
        state.active = None;
        state.epoch += 1;
        let epoch = state.epoch;
        let (sessions, vr) = (Arc::clone(&self.sessions), b.vr);
        if b.clone && sessions.dp().vrs[vr].state() == VrState::Standby {
            // The migration ended before the guest arrived: nothing stays here.
            tracing::info!(
                vr = sessions.dp().vrs[vr].id,
                "clone ended: standby removed"
            );
            tokio::spawn(async move { sessions.remove(vr).await });
            return;
        }
        let hold = Duration::from_secs(sessions.limits.hold_time_s.into());
        tracing::info!(
            vr = sessions.dp().vrs[vr].id,
            hold_s = hold.as_secs(),
            "session down: forwarding with stale routes"
        );
        tokio::spawn(async move {
            sleep(hold).await;
            let expired = sessions.vrs.lock().expect("session registry")[vr].epoch == epoch;
            if expired {
                tracing::warn!(
                    vr = sessions.dp().vrs[vr].id,
                    "hold time over: fast path withdrawn"
                );
                sessions
                    .write(move |reply| Command::Withdraw { vr, reply })
                    .await;
            }
        });
    }
}

fn write_reject(e: WriteError) -> Reject {
    let code = match e {
        WriteError::Table(TableError::HostBits(..)) => ErrorCode::HostBits,
        WriteError::Table(TableError::BadLength(_)) => ErrorCode::BadPrefix,
        WriteError::Table(_)
        | WriteError::NextHops
        | WriteError::Groups
        | WriteError::Routes(_)
        | WriteError::Memory(_) => ErrorCode::Limit,
        WriteError::Paths(_) => ErrorCode::InvalidStanza,
        WriteError::NotSyncing => ErrorCode::Sequence,
        WriteError::Gone => ErrorCode::WrongState,
    };
    reject(code, e.to_string())
}

/// Writes `bytes`, failing with `TimedOut` if the peer does not take them in `limit`.
pub(super) async fn send(
    wr: &mut OwnedWriteHalf,
    bytes: &[u8],
    limit: Duration,
) -> std::io::Result<()> {
    timeout(limit, wr.write_all(bytes))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "peer does not read"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttled_line_is_written_once_per_interval_with_what_it_left_out() {
        let mut t = Throttled::default();
        let start = Instant::now();
        assert_eq!(t.admit(start), Some(0));
        for k in 1..=5 {
            assert_eq!(t.admit(start + Duration::from_secs(k)), None);
        }
        assert_eq!(t.admit(start + LOG_INTERVAL), Some(5), "the five left out");
        assert_eq!(t.admit(start + LOG_INTERVAL), None);
        assert_eq!(t.admit(start + 3 * LOG_INTERVAL), Some(1));
    }
}
