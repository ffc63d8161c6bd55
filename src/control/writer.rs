//! The route writer: the one thread that changes route tables. Sessions and the
//! operator send it commands over a channel; it applies each edit batch to the
//! VR's table pair, publishes the result under RCU (so a batch appears whole),
//! and answers when the batch is live. It also runs full syncs (mark and sweep)
//! and withdraws a VR's fast path when its guest is gone for too long. A
//! migration subscribes to a VR: it gets the VR's routes, then every published
//! change, in the order the tables saw them.
//!
//! Fairness: commands wait in one queue per VR, and the VRs with work take turns
//! of [`QUANTUM`] table entries written (round robin by cost). A batch is staged
//! into the VR's private table copy a quantum at a time and published whole when
//! it is complete, and the replay onto the other copy is cut the same way, so
//! one VR's expensive updates (short prefixes over a wide table, a full table)
//! delay another VR's by about one quantum, not by their whole cost
//! (docs/security.md). Every sender has at most one command in flight, so the
//! queues are bounded by the number of sessions and operator connections.
use super::route_get::{self, Probe, RouteGet};
use super::slots::{self, Delta, Slots};
use crate::dataplane::Slots as Places;
use crate::dataplane::WIDE_MAX_GROUPS;
use crate::dataplane::{Clock, Dataplane, EcmpError, NextHop, Route, Vr, VrRoutes};
use crate::lpm::{
    validate, Address, Batch, Change, DualPair, Refused, Rib, Staged, Stride, TableError,
};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use ipnet::IpNet;
use prometheus_client::metrics::histogram::Histogram;
use rustc_hash::FxHashSet;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Table entries one VR may write in a turn before the next VR with work gets
/// its own (about 50–150 µs of stores here).
pub const QUANTUM: u64 = 1 << 16;

/// How the writer answers a command.
pub type Reply<T> = tokio::sync::oneshot::Sender<T>;

/// Why a blocking request got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AskError {
    #[error("the route writer stopped")]
    Stopped,
    /// Other VRs' work is ahead of the request; nothing was lost, ask again.
    #[error("the route writer is busy (no answer within {0:?}); try again")]
    Busy(Duration),
}

/// Sends a command from a thread outside the async runtime (the operator
/// socket) and waits at most `limit` for its answer. The command still runs
/// if the wait gives up.
pub fn ask_within<T>(
    writer: &Sender<Command>,
    make: impl FnOnce(Reply<T>) -> Command,
    limit: Duration,
) -> Result<T, AskError> {
    use tokio::sync::oneshot::error::TryRecvError;
    let (reply, mut answer) = tokio::sync::oneshot::channel();
    writer.send(make(reply)).map_err(|_| AskError::Stopped)?;
    let deadline = std::time::Instant::now() + limit;
    loop {
        match answer.try_recv() {
            Ok(value) => return Ok(value),
            Err(TryRecvError::Closed) => return Err(AskError::Stopped),
            Err(TryRecvError::Empty) if std::time::Instant::now() >= deadline => {
                return Err(AskError::Busy(limit))
            }
            // Operator requests are rare; the oneshot has no timed blocking wait.
            Err(TryRecvError::Empty) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

/// One route edit, as sessions and the operator express it, of either family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteEdit {
    Add { prefix: IpNet, route: Route },
    Delete { prefix: IpNet },
}

impl RouteEdit {
    pub fn prefix(&self) -> IpNet {
        match *self {
            RouteEdit::Add { prefix, .. } | RouteEdit::Delete { prefix } => prefix,
        }
    }
}

/// Why a batch was refused; the table is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Table(#[from] TableError),
    /// The VR's next-hop array is full.
    #[error("too many distinct next hops")]
    NextHops,
    /// The VR's multipath groups are all in use.
    #[error("too many distinct sets of multipath routes' paths")]
    Groups,
    /// A multipath route's paths cannot be spread.
    #[error(transparent)]
    Paths(#[from] EcmpError),
    /// The batch would take the VR past its route limit (staged routes count).
    #[error("more than {0} routes for this VR")]
    Routes(usize),
    /// The batch would take the host's route tables past their memory budget.
    #[error("the host's route-table memory budget ({0} MiB) would be exceeded")]
    Memory(usize),
    /// `sync-end` without `sync-begin`.
    #[error("no sync in progress")]
    NotSyncing,
    /// The VR was removed from the host while the batch was under way.
    #[error("the VR was removed")]
    Gone,
}

/// A route as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RouteInfo {
    pub prefix: String,
    /// The next hop, or "multipath" for a route with [`RouteInfo::paths`].
    pub next_hop: String,
    /// A multipath route's paths (empty for a route of one next hop).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<PathInfo>,
}

/// One path of a multipath route, with the packets the fast path sent by it
/// since its set was installed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PathInfo {
    pub next_hop: String,
    pub weight: u32,
    pub packets: u64,
}

/// What the writer is asked to do. Every command names a VR by index.
pub enum Command {
    /// Apply edits atomically; reply when they are live.
    Edit {
        vr: usize,
        edits: Vec<RouteEdit>,
        reply: Reply<Result<(), WriteError>>,
    },
    /// Start a full sync: edits from now on are staged and marked.
    SyncBegin { vr: usize, reply: Reply<()> },
    /// End a full sync: remove every route not marked since `SyncBegin` (except
    /// vrfwd's own) and publish the result at once; reply with how many went.
    SyncEnd {
        vr: usize,
        reply: Reply<Result<usize, WriteError>>,
    },
    /// Withdraw the VR's fast path: an empty table, so every packet goes to the guest.
    Withdraw { vr: usize, reply: Reply<()> },
    /// Feed the VR's published route changes (not vrfwd's own routes) to `feed`;
    /// reply with the routes the table holds now, from which the feed continues.
    /// A feed that is closed or falls a whole channel behind is dropped.
    Subscribe {
        vr: usize,
        feed: tokio::sync::mpsc::Sender<Vec<RouteEdit>>,
        reply: Reply<Vec<RouteEdit>>,
    },
    /// The VR's routes.
    List {
        vr: usize,
        reply: Reply<Vec<RouteInfo>>,
    },
    /// Where the fast path sends `probe` now.
    Get {
        vr: usize,
        probe: Probe,
        reply: Reply<RouteGet>,
    },
    /// Take the routes of `vr`, a VR added at run time in vacant slot `slot`;
    /// refused (the VR stays out) if its tables would pass the host's budget.
    AddVr {
        slot: usize,
        vr: Arc<Vr>,
        routes: Box<VrRoutes>,
        reply: Reply<Result<(), WriteError>>,
    },
    /// Drop VR `vr`'s routes and everything queued for it (a VR removed at
    /// run time, whose session has ended).
    RemoveVr { vr: usize, reply: Reply<()> },
}

impl Command {
    fn vr(&self) -> usize {
        match self {
            Command::Edit { vr, .. }
            | Command::SyncBegin { vr, .. }
            | Command::SyncEnd { vr, .. }
            | Command::Withdraw { vr, .. }
            | Command::Subscribe { vr, .. }
            | Command::List { vr, .. }
            | Command::Get { vr, .. }
            | Command::RemoveVr { vr, .. } => *vr,
            Command::AddVr { slot, .. } => *slot,
        }
    }
}

/// Prefixes of both families.
#[derive(Default)]
struct Prefixes {
    v4: FxHashSet<(u32, u8)>,
    v6: FxHashSet<(u128, u8)>,
}

impl Prefixes {
    /// Every prefix `batch` names.
    fn of(batch: &Batch) -> Prefixes {
        Prefixes {
            v4: batch.v4.iter().map(Change::prefix).collect(),
            v6: batch.v6.iter().map(Change::prefix).collect(),
        }
    }

    /// Takes in what `batch` announced: its adds, not its deletes.
    fn note(&mut self, batch: &Batch) {
        note(&mut self.v4, &batch.v4);
        note(&mut self.v6, &batch.v6);
    }

    fn contains(&self, prefix: IpNet) -> bool {
        match prefix {
            IpNet::V4(p) => self.v4.contains(&(p.addr().into(), p.prefix_len())),
            IpNet::V6(p) => self.v6.contains(&(p.addr().into(), p.prefix_len())),
        }
    }
}

fn note<A: Address>(set: &mut FxHashSet<(A, u8)>, changes: &[Change<A>]) {
    for c in changes {
        match c {
            Change::Add { .. } => set.insert(c.prefix()),
            Change::Delete { .. } => set.remove(&c.prefix()),
        };
    }
}

/// Deletes of the routes in `rib` that `keep` does not keep.
fn deletes<A: Address>(rib: &Rib<A>, keep: impl Fn(&(A, u8)) -> bool) -> Vec<Change<A>> {
    rib.iter()
        .map(|(net, len, _)| (net, len))
        .filter(|p| !keep(p))
        .map(|(net, len)| Change::Delete { net, len })
        .collect()
}

/// Adds of every route in `rib`.
fn adds<A: Address>(rib: &Rib<A>) -> impl Iterator<Item = Change<A>> + '_ {
    rib.iter()
        .map(|(net, len, next_hop)| Change::Add { net, len, next_hop })
}

struct VrState {
    /// The VR itself, whose tables the writer publishes.
    vr: Arc<Vr>,
    routes: VrRoutes,
    /// The prefixes of vrfwd's own routes (`routes.system`), which sessions,
    /// syncs and feeds leave alone.
    own: Prefixes,
    /// Next-hop slots and the routes using them.
    slots: Slots,
    /// Prefixes announced since `SyncBegin`, while a sync runs.
    marked: Option<Prefixes>,
    withdrawn: bool,
    feed: Option<Feed>,
    /// Commands waiting for the batch in progress.
    queue: VecDeque<Command>,
    /// The batch being staged.
    job: Option<Job>,
    /// In the round-robin list of VRs with work.
    scheduled: bool,
    /// The table memory this VR is accounted for (its pair, settled).
    memory: usize,
}

impl VrState {
    fn new(vr: Arc<Vr>, routes: VrRoutes, lcores: usize) -> VrState {
        VrState {
            own: Prefixes::of(&routes.system),
            memory: routes.tables.settled_memory_bytes(),
            slots: Slots::new(&routes.system, &vr.next_hops, &vr.groups, lcores),
            vr,
            routes,
            marked: None,
            withdrawn: false,
            feed: None,
            queue: VecDeque::new(),
            job: None,
            scheduled: false,
        }
    }
}

/// A batch staged a quantum at a time, published whole when complete.
struct Job {
    changes: Batch,
    /// How much of `changes` is staged.
    staged: Staged,
    /// Where the batch starts among the pairs' staged changes (to undo it).
    mark: crate::lpm::Mark,
    /// Its effect on the routes using each next-hop slot, recorded as it is
    /// staged and applied once it is accepted.
    delta: Delta,
    /// Next-hop slots allocated for it (emptied again if it is refused).
    fresh: Vec<u32>,
    done: Done,
    /// When the writer began it.
    began: std::time::Instant,
}

/// What a completed batch answers.
enum Done {
    Edit(Reply<Result<(), WriteError>>),
    SyncEnd(Reply<Result<usize, WriteError>>),
    Withdraw(Reply<()>),
}

impl Done {
    fn fail(self, e: WriteError) {
        // A requester that gave up does not stop the writer.
        match self {
            Done::Edit(r) => drop(r.send(Err(e))),
            Done::SyncEnd(r) => drop(r.send(Err(e))),
            // Deletes need no groups: a withdrawal does not fail.
            Done::Withdraw(r) => drop(r.send(())),
        }
    }
}

/// A subscriber to a VR's changes.
struct Feed {
    to: tokio::sync::mpsc::Sender<Vec<RouteEdit>>,
    /// Changes staged by a running sync, fed when it is published.
    staged: Batch,
}

/// The writer and everything it owns.
pub struct RouteWriter {
    clock: Clock,
    lcores: usize,
    /// By VR slot.
    vrs: Places<VrState>,
    /// VRs with work, in turn order.
    ready: VecDeque<usize>,
    /// Routes a VR may hold, staged ones included.
    max_routes: usize,
    /// Table memory all VRs may hold together, and what they hold.
    memory_budget: usize,
    memory_used: usize,
    /// How long batches took, from their turn to their publication (or, in a
    /// sync, to their staging), for the metrics.
    batch_seconds: Histogram,
}

/// A histogram of batch times: buckets from 100 µs to about 100 s.
pub fn batch_histogram() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        1e-4, 4.0, 11,
    ))
}

/// What the writer may let VRs hold.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Routes per VR, staged ones included.
    pub max_routes: usize,
    /// Table memory of all VRs together, in bytes.
    pub table_memory: usize,
}

impl RouteWriter {
    /// The writer of `dp`'s VRs, whose routes (by slot) it owns from now on.
    pub fn new(dp: &Dataplane, routes: Vec<VrRoutes>, budget: Budget) -> Self {
        let vrs = (dp.vrs.values().zip(routes))
            .map(|(vr, routes)| VrState::new(Arc::clone(vr), routes, dp.lcores));
        let vrs = Places::new(vrs, dp.vrs.len());
        RouteWriter {
            clock: dp.clock,
            lcores: dp.lcores,
            memory_used: vrs.values().map(|v| v.memory).sum(),
            vrs,
            ready: VecDeque::new(),
            max_routes: budget.max_routes,
            memory_budget: budget.table_memory,
            batch_seconds: batch_histogram(),
        }
    }

    /// The writer, its batch times recorded in `batch_seconds` (shared with
    /// the metrics; [`batch_histogram`] makes one).
    pub fn measured(self, batch_seconds: Histogram) -> Self {
        RouteWriter {
            batch_seconds,
            ..self
        }
    }

    /// Whether VR `v` holding `bytes` of tables would keep the host in budget
    /// (shrinking always does).
    fn fits(&self, v: usize, bytes: usize) -> bool {
        let old = self.vrs[v].memory;
        bytes <= old || self.memory_used - old + bytes <= self.memory_budget
    }

    /// Accounts VR `v`'s tables as they will be once settled.
    fn account(&mut self, v: usize) {
        let bytes = self.vrs[v].routes.tables.settled_memory_bytes();
        self.memory_used = self.memory_used - self.vrs[v].memory + bytes;
        self.vrs[v].memory = bytes;
    }

    /// Serves commands until `stop` is set or every sender is gone. Waits on the
    /// channel only when no VR has work; `stop` is seen within one turn.
    pub fn run(mut self, commands: Receiver<Command>, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            if self.ready.is_empty() {
                match commands.recv_timeout(Duration::from_millis(100)) {
                    Ok(c) => self.enqueue(c),
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
            while let Ok(c) = commands.try_recv() {
                self.enqueue(c);
            }
            self.next_turn();
        }
    }

    /// Queues `command` and serves every VR until no work is left (tests, and
    /// callers that own the writer).
    pub fn handle(&mut self, command: Command) {
        self.enqueue(command);
        while !self.ready.is_empty() {
            self.next_turn();
        }
    }

    fn enqueue(&mut self, command: Command) {
        let command = match command {
            Command::AddVr {
                slot,
                vr,
                routes,
                reply,
            } => return drop(reply.send(self.add_vr(slot, vr, *routes))),
            Command::RemoveVr { vr, reply } => {
                self.remove_vr(vr);
                let _ = reply.send(());
                return;
            }
            other => other,
        };
        let v = command.vr();
        let Some(state) = self.vrs.get_mut(v) else {
            return; // no such VR: the reply is dropped, the requester sees an error
        };
        state.queue.push_back(command);
        self.schedule(v);
    }

    /// Takes VR `vr`'s routes in vacant slot `slot`, within the host's budget.
    fn add_vr(&mut self, slot: usize, vr: Arc<Vr>, routes: VrRoutes) -> Result<(), WriteError> {
        let state = VrState::new(vr, routes, self.lcores);
        if self.memory_used + state.memory > self.memory_budget {
            return Err(WriteError::Memory(self.memory_budget >> 20));
        }
        self.memory_used += state.memory;
        let filled = self.vrs.fill(slot, state);
        assert!(filled, "the model gave a vacant slot");
        Ok(())
    }

    /// Drops VR `v`'s routes, its queued commands (their requesters see the
    /// writer gone) and its turn.
    fn remove_vr(&mut self, v: usize) {
        if let Some(state) = self.vrs.take(v) {
            self.memory_used -= state.memory;
            self.ready.retain(|&r| r != v);
            if let Some(job) = state.job {
                job.done.fail(WriteError::Gone);
            }
        }
    }

    fn schedule(&mut self, v: usize) {
        if !std::mem::replace(&mut self.vrs[v].scheduled, true) {
            self.ready.push_back(v);
        }
    }

    /// Gives the VR at the head of the turn order one quantum.
    fn next_turn(&mut self) {
        let Some(v) = self.ready.pop_front() else {
            return;
        };
        self.vrs[v].scheduled = false;
        if self.turn(v) {
            self.schedule(v);
        }
    }

    /// Works for VR `v` until [`QUANTUM`] entries are written or it has nothing
    /// left; true if it has more.
    fn turn(&mut self, v: usize) -> bool {
        let start = self.vrs[v].routes.tables.work();
        loop {
            // (A widened VR has a new pair, whose count starts lower.)
            let spent = self.vrs[v].routes.tables.work().saturating_sub(start);
            let Some(left) = QUANTUM.checked_sub(spent).filter(|&l| l > 0) else {
                return true;
            };
            // Published changes are replayed on the private copy first.
            if !self.vrs[v].routes.tables.catch_up_some(left) {
                return true;
            }
            if self.vrs[v].job.is_some() {
                self.advance(v, left);
                continue;
            }
            match self.vrs[v].queue.pop_front() {
                Some(command) => self.start(v, command),
                None => return false,
            }
        }
    }

    /// Starts one command: cheap ones are answered here, batches become the VR's job.
    fn start(&mut self, v: usize, command: Command) {
        match command {
            Command::Edit { edits, reply, .. } => {
                self.restore(v);
                match self.changes(v, &edits) {
                    Ok((changes, fresh)) => self.begin(v, changes, fresh, Done::Edit(reply)),
                    Err(e) => drop(reply.send(Err(e))),
                }
            }
            Command::SyncBegin { reply, .. } => {
                self.restore(v);
                self.vrs[v].marked = Some(Prefixes::default());
                let _ = reply.send(());
            }
            Command::SyncEnd { reply, .. } => match self.vrs[v].marked.take() {
                None => drop(reply.send(Err(WriteError::NotSyncing))),
                Some(marked) => {
                    let (own, tables) = (&self.vrs[v].own, &self.vrs[v].routes.tables);
                    let stale = Batch {
                        v4: deletes(tables.v4.staged_rib(), |p| {
                            marked.v4.contains(p) || own.v4.contains(p)
                        }),
                        v6: deletes(tables.v6.staged_rib(), |p| {
                            marked.v6.contains(p) || own.v6.contains(p)
                        }),
                    };
                    self.begin(v, stale, Vec::new(), Done::SyncEnd(reply));
                }
            },
            Command::Withdraw { reply, .. } => {
                self.vrs[v].marked = None;
                let tables = &self.vrs[v].routes.tables;
                let all = Batch {
                    v4: deletes(tables.v4.staged_rib(), |_| false),
                    v6: deletes(tables.v6.staged_rib(), |_| false),
                };
                self.begin(v, all, Vec::new(), Done::Withdraw(reply));
            }
            Command::Subscribe { feed, reply, .. } => {
                let tables = &self.vrs[v].routes.tables;
                let routes = Batch {
                    v4: adds(tables.v4.rib()).collect(),
                    v6: adds(tables.v6.rib()).collect(),
                };
                let _ = reply.send(self.edits(v, &routes));
                self.vrs[v].feed = Some(Feed {
                    to: feed,
                    staged: Batch::default(),
                });
            }
            Command::List { reply, .. } => {
                let _ = reply.send(self.list(v));
            }
            Command::AddVr { .. } | Command::RemoveVr { .. } => {
                unreachable!("enqueue serves them at once")
            }
            Command::Get { probe, reply, .. } => {
                let now = self.clock.seconds(crate::dpdk::tsc());
                let tables = &self.vrs[v].routes.tables;
                let _ = reply.send(route_get::answer(&self.vrs[v].vr, tables, &probe, now));
            }
        }
    }

    fn begin(&mut self, v: usize, changes: Batch, fresh: Vec<u32>, done: Done) {
        let mark = self.vrs[v].routes.tables.mark();
        self.vrs[v].job = Some(Job {
            changes,
            staged: Staged::default(),
            mark,
            delta: Delta::default(),
            fresh,
            done,
            began: std::time::Instant::now(),
        });
    }

    /// Refuses VR `v`'s job (nothing of it is staged any more) with `e`.
    fn refuse(&mut self, v: usize, job: Job, e: WriteError) {
        let vr = Arc::clone(&self.vrs[v].vr);
        self.vrs[v]
            .slots
            .release(&vr.next_hops, &vr.groups, &job.fresh);
        job.done.fail(e);
    }

    /// Stages about `budget` entries of VR `v`'s job; completes it when all is staged.
    fn advance(&mut self, v: usize, budget: u64) {
        // Whether the host has room for this VR's tables to widen, if they must.
        let wide_fits = self.fits(v, wide_pair_bytes() + self.vrs[v].memory);
        let id = self.vrs[v].vr.id;
        let state = &mut self.vrs[v];
        let job = state.job.as_mut().expect("a job");
        let tables = &mut state.routes.tables;
        // A batch restaged on a widened table (which holds what was staged of it
        // already) records, for that part, changes that replace a next hop by
        // itself: the counts stay exact.
        let delta = &mut job.delta;
        let staged = tables.stage_some(
            job.mark,
            &job.changes,
            &mut job.staged,
            budget,
            &mut |old, new| slots::record(delta, old, new),
        );
        let compact = tables.v4.stride() == Stride::Compact16;
        match staged {
            Ok(false) => {}
            Ok(true) => {
                let job = state.job.take().expect("a job");
                self.finish(v, job);
            }
            // A small VR that outgrew its compact IPv4 table moves to a wide one,
            // whole: everything staged before this batch, then the batch's IPv4
            // part from its start (its IPv6 part is staged after it).
            Err(Refused::V4(TableError::Full(_))) if compact && wide_fits => {
                match tables.v4.widened(WIDE_MAX_GROUPS) {
                    Ok(wide) => {
                        tracing::info!(vr = id, "route table widened to a 2^24 first level");
                        tables.v4 = wide;
                        job.mark.v4 = tables.v4.mark();
                        job.staged.v4 = 0;
                    }
                    Err(e) => {
                        let job = state.job.take().expect("a job");
                        self.refuse(v, job, e.into());
                    }
                }
            }
            Err(Refused::V4(TableError::Full(_))) if compact => {
                let job = state.job.take().expect("a job");
                self.refuse(v, job, WriteError::Memory(self.memory_budget >> 20));
            }
            Err(refused) => {
                let job = state.job.take().expect("a job");
                self.refuse(v, job, refused.error().into());
            }
        }
    }

    /// A job is staged whole: complete it if the host's table memory allows,
    /// otherwise take it back out and refuse it.
    fn finish(&mut self, v: usize, job: Job) {
        let bytes = self.vrs[v].routes.tables.settled_memory_bytes();
        if self.fits(v, bytes) {
            self.complete(v, job);
        } else {
            self.vrs[v].routes.tables.unstage(job.mark);
            self.refuse(v, job, WriteError::Memory(self.memory_budget >> 20));
        }
    }

    /// A job's batch is staged whole: mark it (during a sync) or publish it, and answer.
    fn complete(&mut self, v: usize, job: Job) {
        self.batch_seconds
            .observe(job.began.elapsed().as_secs_f64());
        self.account(v);
        let state = &mut self.vrs[v];
        state.slots.apply(&job.delta);
        if let Some(feed) = &mut state.feed {
            feed.staged.extend_from(&job.changes);
        }
        match &mut state.marked {
            Some(marked) => marked.note(&job.changes),
            None => self.publish_staged(v),
        }
        match job.done {
            Done::Edit(reply) => drop(reply.send(Ok(()))),
            Done::SyncEnd(reply) => drop(reply.send(Ok(job.changes.len()))),
            Done::Withdraw(reply) => {
                self.vrs[v].withdrawn = true;
                let _ = reply.send(());
            }
        }
    }

    /// `edits` as table changes, with the next-hop slots allocated for them:
    /// vrfwd's own routes left out, every change valid, the VR's route limit kept.
    /// A refused batch leaves no slot allocated.
    fn changes(&mut self, v: usize, edits: &[RouteEdit]) -> Result<(Batch, Vec<u32>), WriteError> {
        let mut fresh = Vec::new();
        let changes = self.changes_allocating(v, edits, &mut fresh);
        if changes.is_err() {
            let vr = Arc::clone(&self.vrs[v].vr);
            self.vrs[v].slots.release(&vr.next_hops, &vr.groups, &fresh);
        }
        changes.map(|c| (c, fresh))
    }

    fn changes_allocating(
        &mut self,
        v: usize,
        edits: &[RouteEdit],
        fresh: &mut Vec<u32>,
    ) -> Result<Batch, WriteError> {
        let vr = Arc::clone(&self.vrs[v].vr);
        let (next_hops, groups) = (&vr.next_hops, &vr.groups);
        let VrState {
            own, slots, routes, ..
        } = &mut self.vrs[v];
        let adds = edits
            .iter()
            .filter(|e| matches!(e, RouteEdit::Add { .. }))
            .count();
        // One limit over both families: a VR's routes cost the host alike.
        if routes.tables.staged_len() + adds > self.max_routes {
            return Err(WriteError::Routes(self.max_routes));
        }
        let mut batch = Batch::default();
        for e in edits {
            // vrfwd's own routes (the VR's addresses, connected and static routes
            // from its config) are not a session's to change: a guest's connected
            // route adds nothing, and deleting one is refused.
            let prefix = e.prefix();
            if own.contains(prefix) {
                if let RouteEdit::Delete { .. } = e {
                    tracing::warn!(vr = vr.id, %prefix, "delete of vrfwd's own route ignored");
                }
                continue;
            }
            let next_hop = match e {
                RouteEdit::Add {
                    route: Route::One(next_hop),
                    ..
                } => Some(slots.slot(next_hops, *next_hop, fresh)?),
                RouteEdit::Add {
                    route: Route::Multipath(paths),
                    ..
                } => {
                    let previous = staged_next_hop(&routes.tables, prefix);
                    Some(slots.group(next_hops, groups, paths, previous, fresh)?)
                }
                RouteEdit::Delete { .. } => None,
            };
            // The address as given: a prefix with host bits is refused, not truncated.
            match prefix {
                IpNet::V4(p) => batch
                    .v4
                    .push(change(p.addr().into(), p.prefix_len(), next_hop)),
                IpNet::V6(p) => batch
                    .v6
                    .push(change(p.addr().into(), p.prefix_len(), next_hop)),
            }
        }
        validate(&batch.v4)?;
        validate(&batch.v6)?;
        Ok(batch)
    }

    /// After a withdrawal, the next edit or sync first puts vrfwd's own routes back.
    fn restore(&mut self, v: usize) {
        if !std::mem::take(&mut self.vrs[v].withdrawn) {
            return;
        }
        let routes = &mut self.vrs[v].routes;
        // These fitted the tables at start-up, and they are empty now: this cannot fail.
        let _ = routes.tables.stage(&routes.system);
        if self.vrs[v].marked.is_none() {
            self.publish_staged(v);
        }
        self.account(v);
    }

    /// Publishes what VR `v` has staged and feeds its subscriber.
    fn publish_staged(&mut self, v: usize) {
        let vr = Arc::clone(&self.vrs[v].vr);
        let tables = &mut self.vrs[v].routes.tables;
        tables.publish_staged(
            |fib| drop(vr.fib.replace(fib)),
            |fib| drop(vr.fib6.replace(fib)),
        );
        // No reader can use the old tables any more (replace waited).
        self.vrs[v].slots.published(&vr.next_hops, &vr.groups);
        vr.routes
            .store(self.vrs[v].routes.tables.len(), Ordering::Relaxed);
        self.feed(v);
    }

    /// Sends the subscriber of VR `v` what was just published.
    fn feed(&mut self, v: usize) {
        let Some(feed) = &mut self.vrs[v].feed else {
            return;
        };
        let published = std::mem::take(&mut feed.staged);
        let edits = self.edits(v, &published);
        if edits.is_empty() {
            return;
        }
        let feed = self.vrs[v].feed.as_ref().expect("checked above");
        if let Err(e) = feed.to.try_send(edits) {
            tracing::warn!(vr = self.vrs[v].vr.id, "route feed dropped: {e}");
            self.vrs[v].feed = None;
        }
    }

    /// `changes` as route edits, without vrfwd's own routes (another host has its
    /// own) and without routes to the router itself.
    fn edits(&self, v: usize, changes: &Batch) -> Vec<RouteEdit> {
        let edit = |(net, len): (IpAddr, u8), next_hop: Option<u32>| {
            let prefix = IpNet::new(net, len).ok()?;
            if self.vrs[v].own.contains(prefix) {
                return None;
            }
            match next_hop {
                None => Some(RouteEdit::Delete { prefix }),
                Some(nh) => Some(RouteEdit::Add {
                    prefix,
                    route: self.route(v, nh)?,
                }),
            }
        };
        let v4 = changes.v4.iter().map(|c| (ip_prefix(c), c.next_hop()));
        let v6 = changes.v6.iter().map(|c| (ip_prefix(c), c.next_hop()));
        v4.chain(v6)
            .filter_map(|(prefix, nh)| edit(prefix, nh))
            .collect()
    }

    /// The route that next-hop slot `slot` of VR `v` stands for (None: local
    /// delivery, or an empty slot).
    fn route(&self, v: usize, slot: u32) -> Option<Route> {
        let vr = Arc::clone(&self.vrs[v].vr);
        match vr.next_hops.get(slot)? {
            NextHop::Local => None,
            NextHop::Group { group } => {
                let g = vr.groups.get(group)?;
                Route::new(g.paths().collect()).ok()
            }
            next_hop => Some(Route::One(next_hop)),
        }
    }

    fn list(&self, v: usize) -> Vec<RouteInfo> {
        let vr = Arc::clone(&self.vrs[v].vr);
        let name = |nh: Option<NextHop>| nh.map_or("?".into(), |nh| vr.next_hop_name(nh));
        let info = |prefix: String, nh: u32| match vr.next_hops.get(nh) {
            Some(NextHop::Group { group }) => {
                let g = vr.groups.get(group);
                let paths = g.map(|g| {
                    g.paths()
                        .enumerate()
                        .map(|(p, path)| PathInfo {
                            next_hop: name(Some(path.next_hop)),
                            weight: path.weight,
                            packets: g.packets(p),
                        })
                        .collect()
                });
                RouteInfo {
                    prefix,
                    next_hop: "multipath".into(),
                    paths: paths.unwrap_or_default(),
                }
            }
            next_hop => RouteInfo {
                prefix,
                next_hop: name(next_hop),
                paths: Vec::new(),
            },
        };
        let tables = &self.vrs[v].routes.tables;
        let v4 = sorted(tables.v4.rib());
        let v6 = sorted(tables.v6.rib());
        v4.chain(v6)
            .map(|(net, len, nh)| {
                let prefix = IpNet::new(net, len).map(|p| p.to_string());
                info(prefix.unwrap_or_default(), nh)
            })
            .collect()
    }
}

/// The routes of `rib` in address order, shortest first among equals.
fn sorted<A: Address + Ord>(rib: &Rib<A>) -> impl Iterator<Item = (IpAddr, u8, u32)> {
    let mut routes: Vec<(A, u8, u32)> = rib.iter().collect();
    routes.sort_unstable();
    routes.into_iter().map(|(net, len, nh)| (net.ip(), len, nh))
}

/// What a wide pair holds at least: two 2^24-entry first levels.
fn wide_pair_bytes() -> usize {
    2 * (1 << 24) * std::mem::size_of::<u32>()
}

/// The slot `prefix` has in the staged tables, if any.
fn staged_next_hop(tables: &DualPair, prefix: IpNet) -> Option<u32> {
    match prefix {
        IpNet::V4(p) => tables.v4.staged_rib().get(p.addr().into(), p.prefix_len()),
        IpNet::V6(p) => tables.v6.staged_rib().get(p.addr().into(), p.prefix_len()),
    }
}

/// The change that installs `net/len → next_hop`, or deletes it (None).
fn change<A: Address>(net: A, len: u8, next_hop: Option<u32>) -> Change<A> {
    match next_hop {
        Some(next_hop) => Change::Add { net, len, next_hop },
        None => Change::Delete { net, len },
    }
}

fn ip_prefix<A: Address>(c: &Change<A>) -> (IpAddr, u8) {
    let (net, len) = c.prefix();
    (net.ip(), len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::dataplane::{Buckets, Clock, Path, VrRoutes};
    use crate::dpdk::Rcu;
    use std::sync::Arc;

    /// The config module's example: VR 1, eth0 10.0.1.1/24, 10.9.0.0/16 via 10.0.1.2.
    fn setup() -> (Dataplane, Arc<Rcu>, Vec<VrRoutes>) {
        setup_with(crate::config::tests::EXAMPLE)
    }

    fn setup_with(config: &str) -> (Dataplane, Arc<Rcu>, Vec<VrRoutes>) {
        let config = Config::parse(config).unwrap();
        let rcu = Arc::new(Rcu::new(1).unwrap());
        let (dp, routes) = Dataplane::build(&config, Clock::new(0, 1), &rcu, &|_| {
            vrfwd_wire::MacAddr::default()
        })
        .unwrap();
        (dp, rcu, routes)
    }

    const BUDGET: Budget = Budget {
        max_routes: 1_000_000,
        table_memory: 1 << 40,
    };

    const GW: NextHop = NextHop::Gateway {
        iface: 0,
        via: 0x0a00_0102,
    };

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    /// The IPv4 prefix `addr/len`.
    fn net4(addr: u32, len: u8) -> Result<IpNet, ipnet::PrefixLenError> {
        IpNet::new(std::net::Ipv4Addr::from(addr).into(), len)
    }

    fn lookup(dp: &Dataplane, rcu: &Rcu, addr: &str) -> Option<NextHop> {
        let reader = rcu.reader(0).unwrap();
        let section = reader.section();
        let vr = &dp.vrs[0];
        let nh = vr
            .fib
            .read(&section)
            .lookup(u32::from(addr.parse::<std::net::Ipv4Addr>().unwrap()))?;
        vr.next_hops.get(nh)
    }

    /// Sends a command that answers and returns the answer.
    fn ask<T>(w: &mut RouteWriter, make: impl FnOnce(Reply<T>) -> Command) -> T {
        let (reply, mut answer) = tokio::sync::oneshot::channel();
        w.handle(make(reply));
        answer.try_recv().unwrap()
    }

    fn sync_begin(w: &mut RouteWriter) {
        ask(w, |reply| Command::SyncBegin { vr: 0, reply })
    }

    fn delete(w: &mut RouteWriter, prefix: &str) {
        let prefix = net(prefix);
        edit(w, vec![RouteEdit::Delete { prefix }]).unwrap();
    }

    fn edit(w: &mut RouteWriter, edits: Vec<RouteEdit>) -> Result<(), WriteError> {
        ask(w, |reply| Command::Edit {
            vr: 0,
            edits,
            reply,
        })
    }

    #[test]
    fn a_vr_added_at_run_time_is_served_and_a_removed_one_forgotten() {
        let (dp, _rcu, routes) = setup();
        let mut w = RouteWriter::new(&dp, routes, BUDGET);
        let used = w.memory_used;
        // VR 1 again, as a second VR in slot 3.
        let mut vc = Config::parse(crate::config::tests::EXAMPLE)
            .unwrap()
            .topology
            .vrs[0]
            .clone();
        vc.interfaces[0].vif = 7;
        let add = |w: &mut RouteWriter, dp: &Dataplane| {
            let (next, routes) = dp.without_vr(0).with_vr(3, &vc, &["vif7".into()]).unwrap();
            let (vr, routes) = (Arc::clone(&next.vrs[3]), Box::new(routes));
            ask(w, |reply| Command::AddVr {
                slot: 3,
                vr,
                routes,
                reply,
            })
        };
        assert!(add(&mut w, &dp).is_ok());
        assert!(w.memory_used > used, "its tables are accounted");
        let listed = ask(&mut w, |reply| Command::List { vr: 3, reply });
        assert!(listed.iter().any(|r| r.prefix == "10.9.0.0/16"));
        ask(&mut w, |reply| Command::RemoveVr { vr: 3, reply });
        assert_eq!(w.memory_used, used, "and released");
        let (reply, mut answer) = tokio::sync::oneshot::channel();
        w.handle(Command::List { vr: 3, reply });
        assert!(
            answer.try_recv().is_err(),
            "nothing answers for a removed VR"
        );

        // A VR whose tables would pass the host's budget stays out.
        let tight = Budget {
            table_memory: used,
            ..BUDGET
        };
        let (dp, _rcu, routes) = setup();
        let mut w = RouteWriter::new(&dp, routes, tight);
        let added = add(&mut w, &dp);
        assert!(matches!(added, Err(WriteError::Memory(_))), "{added:?}");
        assert_eq!(w.memory_used, used);
    }

    /// The example with compact tables of 4096 groups (the default is 2^20).
    fn small_compact_tables(config: &str) -> String {
        let mut doc: toml::Table = toml::from_str(config).unwrap();
        let limits = doc
            .entry("limits")
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        limits
            .as_table_mut()
            .unwrap()
            .insert("compact_table_kib".into(), toml::Value::Integer(256));
        toml::to_string(&doc).unwrap()
    }

    #[test]
    fn a_small_vr_that_outgrows_its_table_widens() {
        let (dp, rcu, routes) = setup_with(&small_compact_tables(crate::config::tests::EXAMPLE));
        let mut w = RouteWriter::new(&dp, routes, BUDGET);
        let gw = GW;
        // 5000 /24s in distinct /16s: each needs two groups of its own in a
        // compact table, 10 000 in all.
        let edits: Vec<RouteEdit> = (0..5000u32)
            .map(|i| RouteEdit::Add {
                prefix: net4((30 << 24) + (i << 16), 24).unwrap(),
                route: Route::One(gw),
            })
            .collect();
        for chunk in edits.chunks(1000) {
            edit(&mut w, chunk.to_vec()).unwrap();
        }
        assert_eq!(w.vrs[0].routes.tables.v4.stride(), Stride::Wide24);
        assert_eq!(lookup(&dp, &rcu, "30.0.0.1"), Some(gw));
        assert_eq!(
            lookup(
                &dp,
                &rcu,
                &std::net::Ipv4Addr::from((30 << 24) + (4999 << 16) + 7).to_string()
            ),
            Some(gw)
        );
        assert_eq!(
            lookup(&dp, &rcu, "10.9.1.1"),
            Some(gw),
            "the static route came along"
        );
    }

    #[test]
    fn edits_sync_and_withdraw() {
        let (dp, rcu, routes) = setup();
        let mut w = RouteWriter::new(&dp, routes, BUDGET);
        let gw = GW;
        let system = dp.vrs[0].routes.load(Ordering::Relaxed);

        edit(
            &mut w,
            vec![RouteEdit::Add {
                prefix: net("20.0.0.0/8"),
                route: Route::One(gw),
            }],
        )
        .unwrap();
        assert_eq!(lookup(&dp, &rcu, "20.1.2.3"), Some(gw));
        assert_eq!(dp.vrs[0].routes.load(Ordering::Relaxed), system + 1);

        // A batch with a bad change is refused whole: its good part is not applied.
        let bad = vec![
            RouteEdit::Add {
                prefix: net("24.0.0.0/8"),
                route: Route::One(gw),
            },
            RouteEdit::Add {
                prefix: net("25.1.0.0/8"),
                route: Route::One(gw),
            },
        ];
        assert!(matches!(
            edit(&mut w, bad),
            Err(WriteError::Table(TableError::HostBits(..)))
        ));
        assert_eq!(lookup(&dp, &rcu, "24.1.2.3"), None);
        // A good batch applies in order.
        let good = vec![
            RouteEdit::Add {
                prefix: net("21.0.0.0/8"),
                route: Route::One(gw),
            },
            RouteEdit::Delete {
                prefix: net("20.0.0.0/8"),
            },
        ];
        edit(&mut w, good).unwrap();
        assert_eq!(lookup(&dp, &rcu, "20.1.2.3"), None);
        assert_eq!(lookup(&dp, &rcu, "21.1.2.3"), Some(gw));

        // Full sync: 21/8 is re-announced, 22/8 is new, nothing else of the guest's
        // survives; vrfwd's own routes (connected, static) stay.
        edit(
            &mut w,
            vec![RouteEdit::Add {
                prefix: net("23.0.0.0/8"),
                route: Route::One(gw),
            }],
        )
        .unwrap();
        sync_begin(&mut w);
        edit(
            &mut w,
            vec![
                RouteEdit::Add {
                    prefix: net("21.0.0.0/8"),
                    route: Route::One(gw),
                },
                RouteEdit::Add {
                    prefix: net("22.0.0.0/8"),
                    route: Route::One(gw),
                },
            ],
        )
        .unwrap();
        assert_eq!(
            lookup(&dp, &rcu, "23.0.0.1"),
            Some(gw),
            "stale routes forward until sync-end"
        );
        assert_eq!(
            lookup(&dp, &rcu, "22.0.0.1"),
            None,
            "a sync is published whole, at its end"
        );
        assert_eq!(
            ask(&mut w, |reply| Command::SyncEnd { vr: 0, reply }),
            Ok(1),
            "only 23/8 was swept"
        );
        assert_eq!(lookup(&dp, &rcu, "23.0.0.1"), None);
        assert_eq!(lookup(&dp, &rcu, "22.0.0.1"), Some(gw));
        assert_eq!(lookup(&dp, &rcu, "10.9.1.1"), Some(gw), "static route kept");
        assert_eq!(
            lookup(&dp, &rcu, "10.0.1.7"),
            Some(NextHop::Attached { iface: 0 })
        );

        assert_eq!(
            ask(&mut w, |reply| Command::SyncEnd { vr: 0, reply }),
            Err(WriteError::NotSyncing)
        );

        // vrfwd's own routes are not a session's to change: the VR's address,
        // its connected net and its static route stay as configured.
        let routes = dp.vrs[0].routes.load(Ordering::Relaxed);
        edit(
            &mut w,
            ["10.0.1.1/32", "10.0.1.0/24", "10.9.0.0/16"]
                .iter()
                .map(|p| RouteEdit::Delete { prefix: net(p) })
                .chain([RouteEdit::Add {
                    prefix: net("10.0.1.0/24"),
                    route: Route::One(gw),
                }])
                .collect(),
        )
        .unwrap();
        assert_eq!(dp.vrs[0].routes.load(Ordering::Relaxed), routes);
        assert_eq!(lookup(&dp, &rcu, "10.0.1.1"), Some(NextHop::Local));
        assert_eq!(
            lookup(&dp, &rcu, "10.0.1.7"),
            Some(NextHop::Attached { iface: 0 })
        );
        assert_eq!(lookup(&dp, &rcu, "10.9.1.1"), Some(gw));

        // Withdrawal empties the table; the next sync restores vrfwd's own routes.
        ask(&mut w, |reply| Command::Withdraw { vr: 0, reply });
        assert_eq!(lookup(&dp, &rcu, "10.0.1.7"), None);
        assert_eq!(dp.vrs[0].routes.load(Ordering::Relaxed), 0);
        sync_begin(&mut w);
        assert_eq!(
            lookup(&dp, &rcu, "10.0.1.7"),
            Some(NextHop::Attached { iface: 0 })
        );
        assert_eq!(lookup(&dp, &rcu, "22.0.0.1"), None);
    }

    #[test]
    fn a_subscriber_gets_the_routes_then_each_published_change() {
        let (dp, _rcu, routes) = setup();
        let mut w = RouteWriter::new(&dp, routes, BUDGET);
        edit(
            &mut w,
            vec![RouteEdit::Add {
                prefix: net("20.0.0.0/8"),
                route: Route::One(GW),
            }],
        )
        .unwrap();
        let (feed, mut changes) = tokio::sync::mpsc::channel(16);
        let snapshot = ask(&mut w, |reply| Command::Subscribe { vr: 0, feed, reply });
        // The guest's route only: connected, local and static routes are the host's.
        assert_eq!(
            snapshot,
            vec![RouteEdit::Add {
                prefix: net("20.0.0.0/8"),
                route: Route::One(GW)
            }]
        );
        let del = RouteEdit::Delete {
            prefix: net("20.0.0.0/8"),
        };
        edit(&mut w, vec![del.clone()]).unwrap();
        assert_eq!(changes.try_recv().unwrap(), vec![del.clone()]);
        // A sync is fed when it is published, at its end, with what it swept.
        sync_begin(&mut w);
        let add = RouteEdit::Add {
            prefix: net("22.0.0.0/8"),
            route: Route::One(GW),
        };
        edit(&mut w, vec![add.clone()]).unwrap();
        assert!(changes.try_recv().is_err(), "nothing before sync-end");
        ask(&mut w, |reply| Command::SyncEnd { vr: 0, reply }).unwrap();
        assert_eq!(changes.try_recv().unwrap(), vec![add]);
        // A refused batch feeds nothing.
        let bad = RouteEdit::Add {
            prefix: IpNet::new("25.1.0.0".parse().unwrap(), 8).unwrap(),
            route: Route::One(GW),
        };
        assert!(edit(&mut w, vec![bad]).is_err());
        assert!(changes.try_recv().is_err());
        // A subscriber that went away is dropped; the writer goes on.
        drop(changes);
        edit(&mut w, vec![del]).unwrap();
        assert!(w.vrs[0].feed.is_none());
    }

    /// The config module's example with `2001:db8:1::1/64` on eth0.
    fn dual_stack() -> String {
        crate::config::tests::EXAMPLE.replace(
            "vif = \"vif1\"",
            "vif = \"vif1\"\naddress6 = [\"2001:db8:1::1/64\"]",
        )
    }

    fn lookup6(dp: &Dataplane, rcu: &Rcu, addr: &str) -> Option<NextHop> {
        let reader = rcu.reader(0).unwrap();
        let section = reader.section();
        let vr = &dp.vrs[0];
        let ip = u128::from(addr.parse::<std::net::Ipv6Addr>().unwrap());
        vr.next_hops.get(vr.fib6.read(&section).lookup(ip)?)
    }

    #[test]
    fn a_dual_stack_vr_edits_syncs_feeds_and_withdraws_both_families() {
        let (dp, rcu, routes) = setup_with(&dual_stack());
        let mut w = RouteWriter::new(&dp, routes, BUDGET);
        let system = dp.vrs[0].routes.load(Ordering::Relaxed);
        let gw6 = NextHop::gateway(0, "fe80::2".parse().unwrap());
        let add = |p: &str, next_hop| RouteEdit::Add {
            prefix: net(p),
            route: Route::One(next_hop),
        };
        // One batch, both families, published together.
        edit(
            &mut w,
            vec![
                add("20.0.0.0/8", GW),
                add("2001:db8:20::/48", gw6),
                add("2001:db8:21::/48", gw6),
            ],
        )
        .unwrap();
        assert_eq!(lookup(&dp, &rcu, "20.1.2.3"), Some(GW));
        assert_eq!(lookup6(&dp, &rcu, "2001:db8:20::7"), Some(gw6));
        assert_eq!(dp.vrs[0].routes.load(Ordering::Relaxed), system + 3);
        assert_eq!(
            lookup6(&dp, &rcu, "2001:db8:1::9"),
            Some(NextHop::Attached { iface: 0 }),
            "the connected IPv6 net is vrfwd's own"
        );
        // An IPv6 change with host bits refuses the IPv4 change beside it.
        let bad = vec![
            add("24.0.0.0/8", GW),
            RouteEdit::Delete {
                prefix: net("2001:db8:20::1/48"),
            },
        ];
        assert!(matches!(
            edit(&mut w, bad),
            Err(WriteError::Table(TableError::HostBits(..)))
        ));
        assert_eq!(lookup(&dp, &rcu, "24.1.2.3"), None);

        let (feed, mut changes) = tokio::sync::mpsc::channel(16);
        let mut snapshot = ask(&mut w, |reply| Command::Subscribe { vr: 0, feed, reply });
        snapshot.sort_by_key(|e| e.prefix());
        assert_eq!(
            snapshot,
            vec![
                add("20.0.0.0/8", GW),
                add("2001:db8:20::/48", gw6),
                add("2001:db8:21::/48", gw6)
            ],
            "the guest's routes of both families, not vrfwd's own"
        );

        // A sync re-announces the IPv4 route and one IPv6 route: the other is swept.
        sync_begin(&mut w);
        edit(
            &mut w,
            vec![add("20.0.0.0/8", GW), add("2001:db8:21::/48", gw6)],
        )
        .unwrap();
        assert_eq!(
            ask(&mut w, |reply| Command::SyncEnd { vr: 0, reply }),
            Ok(1)
        );
        assert_eq!(lookup6(&dp, &rcu, "2001:db8:20::7"), None);
        assert_eq!(lookup6(&dp, &rcu, "2001:db8:21::7"), Some(gw6));
        assert_eq!(
            lookup6(&dp, &rcu, "2001:db8:1::1"),
            Some(NextHop::Local),
            "own route kept"
        );
        let fed = changes.try_recv().unwrap();
        assert_eq!(
            fed.last(),
            Some(&RouteEdit::Delete {
                prefix: net("2001:db8:20::/48")
            }),
            "the sync was fed, its sweep included: {fed:?}"
        );

        // Withdrawal empties both tables; the next edit restores vrfwd's own routes.
        ask(&mut w, |reply| Command::Withdraw { vr: 0, reply });
        assert_eq!(dp.vrs[0].routes.load(Ordering::Relaxed), 0);
        assert_eq!(lookup6(&dp, &rcu, "2001:db8:1::1"), None);
        edit(&mut w, vec![add("2001:db8:22::/48", gw6)]).unwrap();
        assert_eq!(dp.vrs[0].routes.load(Ordering::Relaxed), system + 1);
        assert_eq!(lookup6(&dp, &rcu, "2001:db8:1::1"), Some(NextHop::Local));
    }

    #[test]
    fn the_route_limit_counts_both_families() {
        let (dp, _rcu, routes) = setup_with(&dual_stack());
        let system = dp.vrs[0].routes.load(Ordering::Relaxed);
        let limit = Budget {
            max_routes: system + 3,
            ..BUDGET
        };
        let mut w = RouteWriter::new(&dp, routes, limit);
        let gw6 = NextHop::gateway(0, "2001:db8:1::fe".parse().unwrap());
        let v6 = |i: u32| RouteEdit::Add {
            prefix: net(&format!("2001:db8:{i:x}::/48")),
            route: Route::One(gw6),
        };
        edit(&mut w, vec![v6(0x30), v6(0x31)]).unwrap();
        let v4 = RouteEdit::Add {
            prefix: net("20.0.0.0/8"),
            route: Route::One(GW),
        };
        assert_eq!(
            edit(&mut w, vec![v4.clone(), v6(0x32)]),
            Err(WriteError::Routes(system + 3))
        );
        edit(&mut w, vec![v4]).unwrap();
        assert_eq!(dp.vrs[0].routes.load(Ordering::Relaxed), system + 3);
    }

    /// A route to `prefix` through gateway number `i` (a distinct next hop each).
    fn via_gateway(prefix: &str, i: u32) -> RouteEdit {
        RouteEdit::Add {
            prefix: net(prefix),
            route: Route::One(NextHop::Gateway {
                iface: 0,
                via: 0x0b00_0000 + i,
            }),
        }
    }

    #[test]
    fn next_hop_slots_are_freed_when_their_last_route_goes_or_their_batch_is_refused() {
        let (dp, rcu, routes) = setup();
        let system = dp.vrs[0].routes.load(Ordering::Relaxed);
        let mut w = RouteWriter::new(
            &dp,
            routes,
            Budget {
                max_routes: system + 10,
                ..BUDGET
            },
        );
        // More distinct gateways over the VR's life than it has slots (4096).
        for i in 0..5000 {
            // Refused after its gateways got slots (the last prefix has host bits):
            // its slots are not kept.
            let refused = ["31.0.0.0/24", "32.0.0.0/24", "33.0.0.1/24"];
            let refused = (0..3).map(|k| via_gateway(refused[k], 3 * i + k as u32));
            assert!(matches!(
                edit(&mut w, refused.collect()),
                Err(WriteError::Table(TableError::HostBits(..)))
            ));
            // Accepted, replacing the route of the turn before and so freeing its
            // gateway's slot once published.
            assert_eq!(
                edit(&mut w, vec![via_gateway("30.0.0.0/24", 10_000 + i)]),
                Ok(()),
                "turn {i}"
            );
        }
        assert_eq!(
            lookup(&dp, &rcu, "30.0.0.9"),
            Some(NextHop::Gateway {
                iface: 0,
                via: 0x0b00_0000 + 10_000 + 4999
            })
        );
        // Only the local, attached, configured and current gateways hold slots.
        let used = (0..4096)
            .filter(|&i| dp.vrs[0].next_hops.get(i).is_some())
            .count();
        assert_eq!(
            used, 4,
            "local, attached eth0, 10.0.1.2 and the last gateway"
        );
        // The configured gateway's slot is shared by a session route and stays
        // when that route goes.
        delete(&mut w, "30.0.0.0/24");
        edit(
            &mut w,
            vec![RouteEdit::Add {
                prefix: net("30.0.0.0/24"),
                route: Route::One(GW),
            }],
        )
        .unwrap();
        delete(&mut w, "30.0.0.0/24");
        assert_eq!(lookup(&dp, &rcu, "10.9.0.1"), Some(GW));
    }

    /// The multipath route over gateways 10.0.1.(2 + k) for `ks`, weight 1 each.
    fn multipath(ks: &[u32]) -> Route {
        let paths = ks.iter().map(|&k| Path {
            next_hop: NextHop::Gateway {
                iface: 0,
                via: 0x0a00_0102 + k,
            },
            weight: 1,
        });
        Route::new(paths.collect()).unwrap()
    }

    /// VR 0's group for `addr`, with the reader section that keeps it.
    fn group_of(dp: &Dataplane, rcu: &Rcu, addr: &str) -> Option<(Vec<u32>, Buckets)> {
        let reader = rcu.reader(0).unwrap();
        let section = reader.section();
        let vr = &dp.vrs[0];
        let addr = u32::from(addr.parse::<std::net::Ipv4Addr>().unwrap());
        let nh = vr.fib.read(&section).lookup(addr)?;
        let NextHop::Group { group } = vr.next_hops.get(nh)? else {
            return None;
        };
        let g = vr.groups.get(group)?;
        Some((g.slots().to_vec(), g.buckets().clone()))
    }

    #[test]
    fn multipath_routes_share_groups_follow_their_flows_and_free_what_they_leave() {
        let (dp, rcu, routes) = setup();
        let mut w = RouteWriter::new(&dp, routes, BUDGET);
        let add = |prefix: &str, route: Route| RouteEdit::Add {
            prefix: net(prefix),
            route,
        };
        // Two prefixes over the same four paths share one group.
        let four = multipath(&[0, 1, 2, 3]);
        edit(
            &mut w,
            vec![
                add("30.0.0.0/24", four.clone()),
                add("31.0.0.0/24", four.clone()),
            ],
        )
        .unwrap();
        assert_eq!(dp.vrs[0].groups.len(), 1);
        let (slots, before) = group_of(&dp, &rcu, "30.0.0.1").unwrap();
        assert_eq!(slots.len(), 4);
        assert_eq!(group_of(&dp, &rcu, "31.0.0.1").unwrap().0, slots);
        // One path goes from the first route: a new group whose buckets keep
        // the flows of the three paths that stay.
        edit(&mut w, vec![add("30.0.0.0/24", multipath(&[0, 1, 3]))]).unwrap();
        assert_eq!(dp.vrs[0].groups.len(), 2);
        let (three, after) = group_of(&dp, &rcu, "30.0.0.1").unwrap();
        let gone = slots[2];
        let mut moved = 0;
        for hash in (0..u32::MAX).step_by(1 << 20) {
            let (old, new) = (slots[before.path(hash)], three[after.path(hash)]);
            match old == gone {
                true => moved += 1,
                false => assert_eq!(old, new, "a flow of a path that stays moved"),
            }
        }
        assert!(moved > 0);
        // Its paths are shared with the other group: the gone path's slot stays
        // while the other route's group uses it.
        assert!(dp.vrs[0].next_hops.get(gone).is_some());
        // The second route goes: its group and the path only it used go too.
        delete(&mut w, "31.0.0.0/24");
        assert_eq!(dp.vrs[0].groups.len(), 1);
        // The member slot is freed after the next publication.
        delete(&mut w, "32.0.0.0/24");
        assert_eq!(dp.vrs[0].next_hops.get(gone), None);
        // A route back to one path lets its group go (one slot per path stays).
        edit(&mut w, vec![add("30.0.0.0/24", Route::One(GW))]).unwrap();
        delete(&mut w, "32.0.0.0/24");
        assert!(dp.vrs[0].groups.is_empty());
        let used = (0..4096)
            .filter(|&i| dp.vrs[0].next_hops.get(i).is_some())
            .count();
        assert_eq!(used, 3, "local, attached eth0 and 10.0.1.2: {used}");
        // A refused batch leaves no group behind.
        let refused = edit(
            &mut w,
            vec![add("33.0.0.0/24", four), add("34.0.0.1/24", Route::One(GW))],
        );
        assert!(matches!(
            refused,
            Err(WriteError::Table(TableError::HostBits(..)))
        ));
        assert!(dp.vrs[0].groups.is_empty());
        // The feed and the listing show the paths.
        edit(&mut w, vec![add("35.0.0.0/24", multipath(&[0, 1]))]).unwrap();
        let listed = ask(&mut w, |reply| Command::List { vr: 0, reply });
        let route = listed.iter().find(|r| r.prefix == "35.0.0.0/24").unwrap();
        assert_eq!(route.next_hop, "multipath");
        let hops: Vec<&str> = route.paths.iter().map(|p| p.next_hop.as_str()).collect();
        assert_eq!(hops, ["via 10.0.1.2 dev eth0", "via 10.0.1.3 dev eth0"]);
        assert_eq!(
            w.route(
                0,
                dp.vrs[0]
                    .fib
                    .read(&rcu.reader(0).unwrap().section())
                    .lookup(0x2300_0001)
                    .unwrap()
            ),
            Some(multipath(&[0, 1]))
        );
    }

    #[test]
    fn a_batch_that_needs_more_groups_than_a_vr_has_is_refused_whole() {
        let (dp, _rcu, routes) = setup();
        let mut w = RouteWriter::new(&dp, routes, BUDGET);
        // Pairs of 46 gateways: 1035 distinct sets, one route each.
        let pairs = (0..46u32).flat_map(|a| (a + 1..46).map(move |b| [a, b]));
        let edits: Vec<RouteEdit> = pairs
            .enumerate()
            .map(|(i, ks)| RouteEdit::Add {
                prefix: net4((30 << 24) + ((i as u32) << 8), 24).unwrap(),
                route: multipath(&ks),
            })
            .collect();
        assert_eq!(edit(&mut w, edits.clone()), Err(WriteError::Groups));
        assert!(dp.vrs[0].groups.is_empty(), "nothing of it is left");
        let used = (0..4096)
            .filter(|&i| dp.vrs[0].next_hops.get(i).is_some())
            .count();
        assert_eq!(used, 3, "local, attached eth0 and 10.0.1.2");
        assert_eq!(edit(&mut w, edits[..1000].to_vec()), Ok(()), "1000 fit");
        assert_eq!(dp.vrs[0].groups.len(), 1000);
    }

    #[test]
    fn a_static_multipath_route_is_a_group_that_sessions_share_and_never_free() {
        let config = crate::config::tests::EXAMPLE.replace(
            "via = \"10.0.1.2\"",
            "via = \"10.0.1.2\"\n[[vr.route]]\nprefix = \"10.9.0.0/16\"\nvia = \"10.0.1.3\"",
        );
        let (dp, rcu, routes) = setup_with(&config);
        let mut w = RouteWriter::new(&dp, routes, BUDGET);
        let (slots, _) = group_of(&dp, &rcu, "10.9.0.1").expect("a group");
        assert_eq!(slots.len(), 2);
        let add = RouteEdit::Add {
            prefix: net("30.0.0.0/24"),
            route: multipath(&[0, 1]),
        };
        edit(&mut w, vec![add]).unwrap();
        assert_eq!(dp.vrs[0].groups.len(), 1, "the session's route shares it");
        delete(&mut w, "30.0.0.0/24");
        delete(&mut w, "31.0.0.0/24");
        assert_eq!(
            group_of(&dp, &rcu, "10.9.0.1").map(|g| g.0),
            Some(slots.clone())
        );
        assert!(slots.iter().all(|&s| dp.vrs[0].next_hops.get(s).is_some()));
    }

    #[test]
    fn the_route_limit_counts_staged_routes() {
        let (dp, _rcu, routes) = setup();
        let system = dp.vrs[0].routes.load(Ordering::Relaxed);
        let mut w = RouteWriter::new(
            &dp,
            routes,
            Budget {
                max_routes: system + 20,
                ..BUDGET
            },
        );
        let batch = |k: u32| {
            (0..10u32)
                .map(|i| RouteEdit::Add {
                    prefix: net4((40 + k) << 24 | i << 16, 16).unwrap(),
                    route: Route::One(GW),
                })
                .collect::<Vec<_>>()
        };
        sync_begin(&mut w);
        edit(&mut w, batch(0)).unwrap();
        edit(&mut w, batch(1)).unwrap();
        assert_eq!(
            edit(&mut w, batch(2)),
            Err(WriteError::Routes(system + 20)),
            "20 staged routes fill the limit although none is published"
        );
        assert_eq!(
            ask(&mut w, |reply| Command::SyncEnd { vr: 0, reply }),
            Ok(0)
        );
        assert_eq!(dp.vrs[0].routes.load(Ordering::Relaxed), system + 20);
    }

    /// Two VRs with the same address, each with one interface on segment lan0.
    fn two_vrs() -> String {
        let vr = |id: u32, mac: [u8; 6], vif: &str| {
            crate::config::VrBuilder::new(id).interface(
                "eth0",
                vrfwd_wire::MacAddr(mac),
                "10.0.1.1/24".parse().unwrap(),
                "lan0",
                vif,
            )
        };
        crate::config::Builder::new(0, "writer-test", "/run/vrfwd-writer-test.sock")
            .port("up0", Some("net_null0"))
            .port("vif1", None)
            .port("vif2", None)
            .segment("lan0", "up0")
            .vr(vr(1, [2, 0, 0, 0, 1, 1], "vif1"))
            .vr(vr(2, [2, 0, 0, 0, 2, 1], "vif2"))
            .to_toml()
    }

    #[test]
    fn an_expensive_batch_does_not_hold_up_another_vrs_edit() {
        let (dp, rcu, routes) = setup_with(&small_compact_tables(&two_vrs()));
        let mut w = RouteWriter::new(&dp, routes, BUDGET);
        // VR 1 widens (like the attack: its table has a 2^24 first level), then
        // queues flaps of a /9, the costliest single change (2^15 entries in each
        // copy; a default route writes only the short level).
        let wide: Vec<RouteEdit> = (0..5000u32)
            .map(|i| RouteEdit::Add {
                prefix: net4((30 << 24) + (i << 16), 24).unwrap(),
                route: Route::One(GW),
            })
            .collect();
        let (reply, _) = tokio::sync::oneshot::channel();
        w.handle(Command::Edit {
            vr: 0,
            edits: wide,
            reply,
        });
        assert_eq!(w.vrs[0].routes.tables.v4.stride(), Stride::Wide24);
        let short = net("0.0.0.0/9");
        let flaps: Vec<RouteEdit> = (0..16)
            .flat_map(|_| {
                [
                    RouteEdit::Add {
                        prefix: short,
                        route: Route::One(GW),
                    },
                    RouteEdit::Delete { prefix: short },
                ]
            })
            .collect();
        let (reply, mut attacker) = tokio::sync::oneshot::channel();
        w.enqueue(Command::Edit {
            vr: 0,
            edits: flaps,
            reply,
        });
        w.next_turn(); // VR 1's batch is under way
        let (reply, mut victim) = tokio::sync::oneshot::channel();
        w.enqueue(Command::Edit {
            vr: 1,
            edits: vec![RouteEdit::Add {
                prefix: net("20.0.0.0/8"),
                route: Route::One(NextHop::Gateway {
                    iface: 0,
                    via: 0x0a00_0102,
                }),
            }],
            reply,
        });
        let mut turns = 0;
        while victim.try_recv().is_err() {
            w.next_turn();
            turns += 1;
        }
        assert!(turns <= 2, "VR 2 waited {turns} turns");
        assert!(
            attacker.try_recv().is_err(),
            "VR 1's batch is still being staged"
        );
        {
            let reader = rcu.reader(0).unwrap();
            let section = reader.section();
            assert!(dp.vrs[1].fib.read(&section).lookup(0x1401_0101).is_some());
            assert_eq!(
                dp.vrs[0].fib.read(&section).lookup(0x0808_0808),
                None,
                "none of VR 1's batch is visible before it is complete"
            );
        }
        while !w.ready.is_empty() {
            w.next_turn();
        }
        assert_eq!(attacker.try_recv(), Ok(Ok(())));
    }

    #[test]
    fn the_host_memory_budget_refuses_growth_whole() {
        let (dp, rcu, routes) = setup();
        let start = routes[0].tables.settled_memory_bytes();
        // Room for a few more records, not for a wide pair.
        let mut w = RouteWriter::new(
            &dp,
            routes,
            Budget {
                table_memory: start + 1024,
                ..BUDGET
            },
        );
        // Each /24 alone in its /16 is a 16-byte tail record in each copy: 32 B.
        let batch = |first: u32, n: u32| -> Vec<RouteEdit> {
            (first..first + n)
                .map(|i| RouteEdit::Add {
                    prefix: net4((60 << 24) + (i << 16), 24).unwrap(),
                    route: Route::One(GW),
                })
                .collect()
        };
        edit(&mut w, batch(0, 4)).unwrap();
        assert_eq!(lookup(&dp, &rcu, "60.3.0.1"), Some(GW));
        let routes = dp.vrs[0].routes.load(Ordering::Relaxed);
        assert_eq!(
            edit(&mut w, batch(4, 64)),
            Err(WriteError::Memory(0)),
            "64 more routes (2 KiB) on top of 4 (128 B) exceed the budget"
        );
        assert_eq!(dp.vrs[0].routes.load(Ordering::Relaxed), routes);
        assert_eq!(lookup(&dp, &rcu, "60.4.0.1"), None, "nothing of it applied");
        // Growing past the compact table would need a wide pair: refused too.
        assert_eq!(edit(&mut w, batch(100, 5000)), Err(WriteError::Memory(0)));
        assert_eq!(w.vrs[0].routes.tables.v4.stride(), Stride::Compact16);
        // Deleting always fits, and then the room is there again.
        delete(&mut w, "60.0.0.0/24");
        edit(&mut w, batch(4, 1)).unwrap();
        assert_eq!(lookup(&dp, &rcu, "60.4.0.1"), Some(GW));
    }

    #[test]
    fn a_vr_activated_by_its_agent_still_owes_one_announcement() {
        let config = crate::config::tests::EXAMPLE.replace("[[vr]]", "[[vr]]\nstandby = true");
        let (dp, _rcu, _routes) = setup_with(&config);
        let vr = &dp.vrs[0];
        assert!(!vr.take_unannounced());
        assert!(vr.activate_from_session());
        assert!(!vr.activate_from_session(), "active already");
        assert!(vr.take_unannounced(), "the guest's first frame announces");
        assert!(!vr.take_unannounced(), "once");
    }
}
