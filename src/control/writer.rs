//! The route writer: the one thread that changes route tables. Sessions and the
//! operator send it edits over a channel; it applies each edit batch to the VR's
//! table pair, publishes the result under RCU (so a batch appears whole), and
//! answers when the batch is live. It also runs full syncs (mark and sweep) and
//! withdraws a VR's fast path when its guest is gone for too long. A migration
//! subscribes to a VR: it gets the VR's routes, then every published change, in
//! the order the tables saw them.
use crate::dataplane::WIDE_MAX_GROUPS;
use crate::dataplane::{Dataplane, NextHop, VrRoutes};
use crate::lpm::{mask, Change, Stride, TableError};
use crossbeam_channel::{Receiver, Sender};
use ipnet::Ipv4Net;
use rustc_hash::{FxHashMap, FxHashSet};
use std::sync::atomic::{AtomicBool, Ordering};

/// One route edit, as sessions and the operator express it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteEdit {
    Add { prefix: Ipv4Net, next_hop: NextHop },
    Delete { prefix: Ipv4Net },
}

/// Why a batch was refused; the table is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Table(#[from] TableError),
    /// The VR's next-hop array is full.
    #[error("too many distinct next hops")]
    NextHops,
    /// `sync-end` without `sync-begin`.
    #[error("no sync in progress")]
    NotSyncing,
}

/// A route as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RouteInfo {
    pub prefix: String,
    pub next_hop: String,
}

/// What the writer is asked to do. Every command names a VR by index.
pub enum Command {
    /// Apply edits atomically; reply when they are live.
    Edit {
        vr: usize,
        edits: Vec<RouteEdit>,
        reply: Sender<Result<(), WriteError>>,
    },
    /// Start a full sync: edits from now on are staged and marked.
    SyncBegin { vr: usize },
    /// End a full sync: remove every route not marked since `SyncBegin` (except
    /// vrfwd's own) and publish the result at once; reply with how many went.
    SyncEnd {
        vr: usize,
        reply: Sender<Result<usize, WriteError>>,
    },
    /// Withdraw the VR's fast path: an empty table, so every packet goes to the guest.
    Withdraw { vr: usize, reply: Sender<()> },
    /// Feed the VR's published route changes (not vrfwd's own routes) to `feed`;
    /// reply with the routes the table holds now, from which the feed continues.
    /// A feed that is closed or falls a whole channel behind is dropped.
    Subscribe {
        vr: usize,
        feed: tokio::sync::mpsc::Sender<Vec<RouteEdit>>,
        reply: Sender<Vec<RouteEdit>>,
    },
    /// The VR's routes.
    List {
        vr: usize,
        reply: Sender<Vec<RouteInfo>>,
    },
}

struct VrState {
    routes: VrRoutes,
    /// The prefixes of vrfwd's own routes (`routes.system`), which sessions,
    /// syncs and feeds leave alone.
    own: FxHashSet<(u32, u8)>,
    /// Next hop → its slot, so that adds do not scan the next-hop array.
    slots: FxHashMap<NextHop, u32>,
    /// Prefixes announced since `SyncBegin`, while a sync runs.
    marked: Option<FxHashSet<(u32, u8)>>,
    withdrawn: bool,
    feed: Option<Feed>,
}

/// A subscriber to a VR's changes.
struct Feed {
    to: tokio::sync::mpsc::Sender<Vec<RouteEdit>>,
    /// Changes staged by a running sync, fed when it is published.
    staged: Vec<Change>,
}

/// The writer and everything it owns.
pub struct RouteWriter<'a> {
    dp: &'a Dataplane,
    vrs: Vec<VrState>,
}

impl<'a> RouteWriter<'a> {
    pub fn new(dp: &'a Dataplane, routes: Vec<VrRoutes>) -> Self {
        RouteWriter {
            dp,
            vrs: routes
                .into_iter()
                .map(|routes| VrState {
                    own: routes.system.iter().map(key).collect(),
                    routes,
                    slots: FxHashMap::default(),
                    marked: None,
                    withdrawn: false,
                    feed: None,
                })
                .collect(),
        }
    }

    /// Serves commands until `stop` is set or every sender is gone.
    pub fn run(mut self, commands: Receiver<Command>, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            match commands.recv_timeout(std::time::Duration::from_millis(100)) {
                Ok(c) => {
                    self.handle(c);
                    // Replies are sent: bring the private copies up to date now,
                    // while the sessions read their next stanzas.
                    if commands.is_empty() {
                        self.vrs.iter_mut().for_each(|v| v.routes.tables.catch_up());
                    }
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Carries out one command (replies are best effort: a requester that gave up
    /// does not stop the writer).
    pub fn handle(&mut self, command: Command) {
        match command {
            Command::Edit { vr, edits, reply } => {
                let _ = reply.send(self.edit(vr, &edits));
            }
            Command::SyncBegin { vr } => {
                self.restore(vr);
                self.vrs[vr].marked = Some(FxHashSet::default());
            }
            Command::SyncEnd { vr, reply } => {
                let _ = reply.send(self.sync_end(vr));
            }
            Command::Withdraw { vr, reply } => {
                self.withdraw(vr);
                let _ = reply.send(());
            }
            Command::Subscribe { vr, feed, reply } => {
                let routes = self.vrs[vr].routes.tables.rib().iter();
                let _ = reply.send(self.edits(
                    vr,
                    routes.map(|(net, len, nh)| Change::Add {
                        net,
                        len,
                        next_hop: nh,
                    }),
                ));
                self.vrs[vr].feed = Some(Feed {
                    to: feed,
                    staged: Vec::new(),
                });
            }
            Command::List { vr, reply } => {
                let _ = reply.send(self.list(vr));
            }
        }
    }

    fn edit(&mut self, v: usize, edits: &[RouteEdit]) -> Result<(), WriteError> {
        self.restore(v);
        let next_hops = &self.dp.vrs[v].next_hops;
        let VrState { own, slots, .. } = &mut self.vrs[v];
        let changes = edits
            .iter()
            // vrfwd's own routes (the VR's addresses, connected and static routes
            // from its config) are not a session's to change: a guest's connected
            // route adds nothing, and deleting one is refused.
            .filter(|e| {
                let prefix = match e {
                    RouteEdit::Add { prefix, .. } | RouteEdit::Delete { prefix } => prefix,
                };
                let is_own = own.contains(&(prefix.addr().into(), prefix.prefix_len()));
                if is_own && matches!(e, RouteEdit::Delete { .. }) {
                    tracing::warn!(vr = self.dp.vrs[v].id, %prefix, "delete of vrfwd's own route ignored");
                }
                !is_own
            })
            .map(|e| match *e {
                RouteEdit::Add { prefix, next_hop } => Ok(Change::Add {
                    // The address as given: a prefix with host bits is refused, not truncated.
                    net: prefix.addr().into(),
                    len: prefix.prefix_len(),
                    next_hop: match slots.get(&next_hop) {
                        Some(&slot) => slot,
                        None => {
                            let slot = next_hops.insert(next_hop).ok_or(WriteError::NextHops)?;
                            slots.insert(next_hop, slot);
                            slot
                        }
                    },
                }),
                RouteEdit::Delete { prefix } => Ok(Change::Delete {
                    net: prefix.addr().into(),
                    len: prefix.prefix_len(),
                }),
            })
            .collect::<Result<Vec<_>, WriteError>>()?;
        self.publish(v, &changes)?;
        if let Some(marked) = &mut self.vrs[v].marked {
            for c in &changes {
                match *c {
                    Change::Add { net, len, .. } => marked.insert((net, len)),
                    Change::Delete { net, len } => marked.remove(&(net, len)),
                };
            }
        }
        Ok(())
    }

    fn sync_end(&mut self, v: usize) -> Result<usize, WriteError> {
        let marked = self.vrs[v].marked.take().ok_or(WriteError::NotSyncing)?;
        let own = &self.vrs[v].own;
        let stale: Vec<Change> = self.vrs[v]
            .routes
            .tables
            .staged_rib()
            .iter()
            .filter(|&(net, len, _)| !marked.contains(&(net, len)) && !own.contains(&(net, len)))
            .map(|(net, len, _)| Change::Delete { net, len })
            .collect();
        self.publish(v, &stale)?;
        Ok(stale.len())
    }

    fn withdraw(&mut self, v: usize) {
        self.vrs[v].marked = None;
        let all: Vec<Change> = self.vrs[v]
            .routes
            .tables
            .staged_rib()
            .iter()
            .map(|(net, len, _)| Change::Delete { net, len })
            .collect();
        // Deletes need no new groups: this cannot fail.
        let _ = self.publish(v, &all);
        self.vrs[v].withdrawn = true;
    }

    /// After a withdrawal, the next edit or sync first puts vrfwd's own routes back.
    fn restore(&mut self, v: usize) {
        if std::mem::take(&mut self.vrs[v].withdrawn) {
            let system = self.vrs[v].routes.system.clone();
            // These fitted the table at start-up; the table is empty now.
            let _ = self.publish(v, &system);
        }
    }

    /// Applies `changes`: staged while a sync runs (published with its end),
    /// published at once otherwise, together with anything staged.
    fn publish(&mut self, v: usize, changes: &[Change]) -> Result<(), WriteError> {
        let vr = &self.dp.vrs[v];
        let state = &mut self.vrs[v];
        match state.routes.tables.stage(changes) {
            // A small VR that outgrew its compact table moves to a wide one, whole.
            Err(TableError::Full(_)) if state.routes.tables.stride() == Stride::Compact16 => {
                let mut wide = state.routes.tables.widened(WIDE_MAX_GROUPS)?;
                wide.stage(changes)?;
                tracing::info!(vr = vr.id, "route table widened to a 2^24 first level");
                state.routes.tables = wide;
            }
            other => other?,
        }
        if let Some(feed) = &mut state.feed {
            feed.staged.extend_from_slice(changes);
        }
        if state.marked.is_none() {
            state
                .routes
                .tables
                .publish_staged(|fib| drop(vr.fib.replace(fib)));
            vr.routes
                .store(state.routes.tables.rib().len(), Ordering::Relaxed);
            self.feed(v);
        }
        Ok(())
    }

    /// Sends the subscriber of VR `v` what was just published.
    fn feed(&mut self, v: usize) {
        let Some(feed) = &mut self.vrs[v].feed else {
            return;
        };
        let published = std::mem::take(&mut feed.staged);
        let edits = self.edits(v, published.into_iter());
        if edits.is_empty() {
            return;
        }
        let feed = self.vrs[v].feed.as_ref().expect("checked above");
        if let Err(e) = feed.to.try_send(edits) {
            tracing::warn!(vr = self.dp.vrs[v].id, "route feed dropped: {e}");
            self.vrs[v].feed = None;
        }
    }

    /// `changes` as route edits, without vrfwd's own routes (another host has its
    /// own) and without routes to the router itself.
    fn edits(&self, v: usize, changes: impl Iterator<Item = Change>) -> Vec<RouteEdit> {
        let own = &self.vrs[v].own;
        let next_hops = &self.dp.vrs[v].next_hops;
        changes
            .filter(|c| !own.contains(&key(c)))
            .filter_map(|c| {
                let (net, len) = key(&c);
                let prefix = Ipv4Net::new(net.into(), len).ok()?;
                match c {
                    Change::Add { next_hop, .. } => match next_hops.get(next_hop)? {
                        NextHop::Local => None,
                        next_hop => Some(RouteEdit::Add { prefix, next_hop }),
                    },
                    Change::Delete { .. } => Some(RouteEdit::Delete { prefix }),
                }
            })
            .collect()
    }

    fn list(&self, v: usize) -> Vec<RouteInfo> {
        let vr = &self.dp.vrs[v];
        let mut routes: Vec<(u32, u8, u32)> = self.vrs[v].routes.tables.rib().iter().collect();
        routes.sort_unstable();
        routes
            .into_iter()
            .map(|(net, len, nh)| RouteInfo {
                prefix: Ipv4Net::new(net.into(), len)
                    .map(|p| p.to_string())
                    .unwrap_or_default(),
                next_hop: match vr.next_hops.get(nh) {
                    Some(NextHop::Local) => "local".into(),
                    Some(NextHop::Attached { iface }) => {
                        format!("dev {}", vr.interfaces[iface].name)
                    }
                    Some(NextHop::Gateway { iface, via }) => {
                        format!(
                            "via {} dev {}",
                            std::net::Ipv4Addr::from(via),
                            vr.interfaces[iface].name
                        )
                    }
                    None => "?".into(),
                },
            })
            .collect()
    }
}

fn key(c: &Change) -> (u32, u8) {
    match *c {
        Change::Add { net, len, .. } | Change::Delete { net, len } => (net & mask(len), len),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::dataplane::{Clock, VrRoutes};
    use crate::dpdk::Rcu;
    use std::sync::Arc;

    /// The config module's example: VR 1, eth0 10.0.1.1/24, 10.9.0.0/16 via 10.0.1.2.
    fn setup() -> (Dataplane, Arc<Rcu>, Vec<VrRoutes>) {
        let config = Config::parse(crate::config::tests::EXAMPLE).unwrap();
        let rcu = Arc::new(Rcu::new(1).unwrap());
        let (dp, routes) = Dataplane::build(&config, Clock::new(0, 1), &rcu).unwrap();
        (dp, rcu, routes)
    }

    const GW: NextHop = NextHop::Gateway {
        iface: 0,
        via: 0x0a00_0102,
    };

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
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
    fn ask<T>(
        w: &mut RouteWriter,
        make: impl FnOnce(crossbeam_channel::Sender<T>) -> Command,
    ) -> T {
        let (reply, answer) = crossbeam_channel::bounded(1);
        w.handle(make(reply));
        answer.recv().unwrap()
    }

    fn edit(w: &mut RouteWriter, edits: Vec<RouteEdit>) -> Result<(), WriteError> {
        ask(w, |reply| Command::Edit {
            vr: 0,
            edits,
            reply,
        })
    }

    #[test]
    fn a_small_vr_that_outgrows_its_table_widens() {
        let (dp, rcu, routes) = setup();
        let mut w = RouteWriter::new(&dp, routes);
        let gw = GW;
        // 5000 /24s in distinct /16s: each needs its own group in a compact table.
        let edits: Vec<RouteEdit> = (0..5000u32)
            .map(|i| RouteEdit::Add {
                prefix: Ipv4Net::new(std::net::Ipv4Addr::from((30 << 24) + (i << 16)), 24).unwrap(),
                next_hop: gw,
            })
            .collect();
        for chunk in edits.chunks(1000) {
            edit(&mut w, chunk.to_vec()).unwrap();
        }
        assert_eq!(w.vrs[0].routes.tables.stride(), Stride::Wide24);
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
        let mut w = RouteWriter::new(&dp, routes);
        let gw = GW;
        let system = dp.vrs[0].routes.load(Ordering::Relaxed);

        edit(
            &mut w,
            vec![RouteEdit::Add {
                prefix: net("20.0.0.0/8"),
                next_hop: gw,
            }],
        )
        .unwrap();
        assert_eq!(lookup(&dp, &rcu, "20.1.2.3"), Some(gw));
        assert_eq!(dp.vrs[0].routes.load(Ordering::Relaxed), system + 1);

        // A batch with a bad change is refused whole: its good part is not applied.
        let bad = vec![
            RouteEdit::Add {
                prefix: net("24.0.0.0/8"),
                next_hop: gw,
            },
            RouteEdit::Add {
                prefix: net("25.1.0.0/8"),
                next_hop: gw,
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
                next_hop: gw,
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
                next_hop: gw,
            }],
        )
        .unwrap();
        w.handle(Command::SyncBegin { vr: 0 });
        edit(
            &mut w,
            vec![
                RouteEdit::Add {
                    prefix: net("21.0.0.0/8"),
                    next_hop: gw,
                },
                RouteEdit::Add {
                    prefix: net("22.0.0.0/8"),
                    next_hop: gw,
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
                    next_hop: gw,
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
        w.handle(Command::SyncBegin { vr: 0 });
        assert_eq!(
            lookup(&dp, &rcu, "10.0.1.7"),
            Some(NextHop::Attached { iface: 0 })
        );
        assert_eq!(lookup(&dp, &rcu, "22.0.0.1"), None);
    }

    #[test]
    fn a_subscriber_gets_the_routes_then_each_published_change() {
        let (dp, _rcu, routes) = setup();
        let mut w = RouteWriter::new(&dp, routes);
        edit(
            &mut w,
            vec![RouteEdit::Add {
                prefix: net("20.0.0.0/8"),
                next_hop: GW,
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
                next_hop: GW
            }]
        );
        let del = RouteEdit::Delete {
            prefix: net("20.0.0.0/8"),
        };
        edit(&mut w, vec![del]).unwrap();
        assert_eq!(changes.try_recv().unwrap(), vec![del]);
        // A sync is fed when it is published, at its end, with what it swept.
        w.handle(Command::SyncBegin { vr: 0 });
        let add = RouteEdit::Add {
            prefix: net("22.0.0.0/8"),
            next_hop: GW,
        };
        edit(&mut w, vec![add]).unwrap();
        assert!(changes.try_recv().is_err(), "nothing before sync-end");
        ask(&mut w, |reply| Command::SyncEnd { vr: 0, reply }).unwrap();
        assert_eq!(changes.try_recv().unwrap(), vec![add]);
        // A refused batch feeds nothing.
        let bad = RouteEdit::Add {
            prefix: Ipv4Net::new("25.1.0.0".parse().unwrap(), 8).unwrap(),
            next_hop: GW,
        };
        assert!(edit(&mut w, vec![bad]).is_err());
        assert!(changes.try_recv().is_err());
        // A subscriber that went away is dropped; the writer goes on.
        drop(changes);
        edit(&mut w, vec![del]).unwrap();
        assert!(w.vrs[0].feed.is_none());
    }
}
