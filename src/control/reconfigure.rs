//! Run-time changes of the host's VRs and segments (docs/operating.md,
//! "Tenants at run time"): `vrfwd ctl vr add|del`, `segment add|del`, `reload`
//! and SIGHUP. A change is planned against the config file whole ([`Running`])
//! before anything moves, then carried out one VR or segment at a time, each
//! step leaving a consistent host:
//!
//! - removing: its session and clones end; its vifs are detached (lcores stop
//!   polling them); the route writer drops its tables; a model without it is
//!   published; once no lcore reads the old model, the VR is freed;
//! - adding: it is built in vacant slots; the route writer takes its tables
//!   (or refuses them: the host's table budget); a model with it is published;
//!   its vifs with a device are started, those without wait for `ctl attach`;
//! - a segment (no VR on it) is removed from the model, then its uplink
//!   detached; one added has its uplink started first (its MAC is the
//!   segment's), then the model with it is published. An uplink polled while
//!   the model does not name it yet (or any more) has its frames freed.
//!
//! Other VRs are never touched: lcores switch models between two loops.
use super::session::Sessions;
use super::writer::{ask_within, AskError, Command, WriteError};
use crate::config::{Addition, Config, ConfigError, Plan, Running, SegmentAddition};
use crate::dataplane::{BuildError, Model};
use crate::dpdk::{AttachError, Mempool, PortTable};
use crate::stats::LcoreCounters;
use crossbeam_channel::Sender;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a change waits for the route writer (a 1M-route VR's tables take
/// seconds to free, and the writer may be busy with other VRs' batches).
const WRITER_WAIT: Duration = Duration::from_secs(60);

/// Why a change was refused or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The edited file is invalid, or changes what needs a restart.
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("vrfwd was started without a config file to reload")]
    NoFile,
    #[error("no room: {0} (raise [limits] {1} and restart)")]
    Slots(&'static str, &'static str),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("vr {vr}: {source}")]
    Tables { vr: u32, source: WriteError },
    #[error("vr {vr}: port {port}: {source}")]
    Port {
        vr: u32,
        port: String,
        source: AttachError,
    },
    #[error("segment {segment}: port {port}: {source}")]
    Segment {
        segment: String,
        port: String,
        source: AttachError,
    },
    #[error("port {port}: {source}")]
    Plug { port: String, source: AttachError },
    #[error("port {0} has no device in the config: vrfwd ctl attach plugs it")]
    NoDevice(String),
    #[error(transparent)]
    Writer(#[from] AskError),
}

/// What a change did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Done {
    pub removed: Vec<u32>,
    pub added: Vec<u32>,
    pub segments_removed: Vec<String>,
    pub segments_added: Vec<String>,
}

impl std::fmt::Display for Done {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |items: Vec<String>| match items.is_empty() {
            true => "none".to_owned(),
            false => items.join(" "),
        };
        let ids = |ids: &[u32]| list(ids.iter().map(u32::to_string).collect());
        write!(
            f,
            "removed: {}; added: {}",
            ids(&self.removed),
            ids(&self.added)
        )?;
        if !(self.segments_removed.is_empty() && self.segments_added.is_empty()) {
            let (gone, new) = (self.segments_removed.clone(), self.segments_added.clone());
            write!(
                f,
                "; segments removed: {}; added: {}",
                list(gone),
                list(new)
            )?;
        }
        Ok(())
    }
}

/// The parts of the appliance a change touches.
pub struct Reconfigure<'a> {
    pub model: &'a Model,
    pub ports: &'a PortTable,
    pub pool: &'a Mempool,
    pub counters: &'a [LcoreCounters],
    pub sessions: &'a Arc<Sessions>,
    pub writer: Sender<Command>,
    /// The file vrfwd was started from, which a reload reads again.
    pub file: Option<PathBuf>,
    /// The VRs and segments running, as the file wrote them; held through a
    /// whole change.
    pub running: Mutex<Running>,
    /// The TX drain deadline: after it, no lcore still counts for a port it
    /// no longer sends on.
    pub tx_drain: Duration,
}

impl Reconfigure<'_> {
    /// Applies the edited file: VRs and segments it no longer lists (or lists
    /// changed) are removed, new ones added.
    pub fn reload(&self) -> Result<Done, ChangeError> {
        let edited = self.edited()?;
        self.apply(|running| running.reload(&edited))
    }

    /// Adds (or replaces) VR `id` as the file defines it.
    pub fn add(&self, id: u32) -> Result<Done, ChangeError> {
        let edited = self.edited()?;
        self.apply(|running| running.add(&edited, id))
    }

    /// Removes VR `id` from the host.
    pub fn remove(&self, id: u32) -> Result<Done, ChangeError> {
        self.apply(|running| running.remove(id))
    }

    /// Adds segment `name` with its uplink, as the file defines them.
    pub fn add_segment(&self, name: &str) -> Result<Done, ChangeError> {
        let edited = self.edited()?;
        self.apply(|running| running.add_segment(&edited, name))
    }

    /// Removes segment `name` (no VR may be on it) and its uplink.
    pub fn remove_segment(&self, name: &str) -> Result<Done, ChangeError> {
        self.apply(|running| running.remove_segment(name))
    }

    /// Unplugs port `name`'s device (or a vif's attachment), leaving the port
    /// in the model: what it would receive or send is lost until `plug`.
    pub fn unplug(&self, name: &str) -> Result<String, ChangeError> {
        let _running = self.running();
        let _change = self.model.change();
        let port = self.port(name)?;
        self.ports.release(port);
        tracing::info!(port = name, "port unplugged");
        Ok(format!("unplugged port {name}"))
    }

    /// Plugs port `name`'s device again, as the running config has it.
    pub fn plug(&self, name: &str) -> Result<String, ChangeError> {
        let running = self.running();
        let _change = self.model.change();
        let port = self.port(name)?;
        let device = running
            .device(name)?
            .ok_or_else(|| ChangeError::NoDevice(name.into()))?;
        let plugged = self.ports.start(port, device, self.pool);
        plugged.map_err(|source| ChangeError::Plug {
            port: name.into(),
            source,
        })?;
        tracing::info!(port = name, device, "port plugged");
        Ok(format!("plugged port {name} ({device})"))
    }

    /// The slot of running port `name`.
    fn port(&self, name: &str) -> Result<usize, ChangeError> {
        let dp = self.model.current();
        let port = dp.port_names.position(|n| n == name);
        port.ok_or_else(|| {
            ConfigError::invalid("port", format!("no port {name:?} runs here")).into()
        })
    }

    fn running(&self) -> std::sync::MutexGuard<'_, Running> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn edited(&self) -> Result<Config, ChangeError> {
        let file = self.file.as_deref().ok_or(ChangeError::NoFile)?;
        Ok(Config::load(file)?)
    }

    /// Plans a change on the running VRs and carries it out, one change at a
    /// time.
    fn apply(
        &self,
        plan: impl FnOnce(&Running) -> Result<Plan, ConfigError>,
    ) -> Result<Done, ChangeError> {
        let mut running = self.running();
        let plan = plan(&running)?;
        self.has_room(&plan)?;
        let mut done = Done::default();
        for &id in &plan.remove {
            self.remove_vr(id)?;
            running.without(id);
            tracing::info!(vr = id, "VR removed");
            done.removed.push(id);
        }
        for name in &plan.remove_segments {
            self.remove_segment_now(name);
            running.without_segment(name);
            tracing::info!(segment = %name, "segment removed");
            done.segments_removed.push(name.clone());
        }
        for a in &plan.add_segments {
            self.add_segment_now(a)?;
            running.with_segment(a);
            tracing::info!(segment = %a.name(), "segment added");
            done.segments_added.push(a.name().to_owned());
        }
        for a in &plan.add {
            self.add_vr(a)?;
            running.with(a);
            tracing::info!(vr = a.id(), "VR added");
            done.added.push(a.id());
        }
        Ok(done)
    }

    /// Refuses a plan the slots cannot hold once its removals are done.
    fn has_room(&self, plan: &Plan) -> Result<(), ChangeError> {
        let dp = self.model.current();
        let removed = |id: u32| dp.vrs.values().find(|v| v.id == id);
        let freed_vrs = plan.remove.iter().filter_map(|&id| removed(id)).count();
        let freed_ports: usize = (plan.remove.iter())
            .filter_map(|&id| removed(id).map(|v| v.interfaces.len()))
            .sum();
        let free_vrs = dp.vrs.len() - dp.vrs.values().count() + freed_vrs;
        let free_ports = dp.ports.len() - dp.ports.values().count() + freed_ports;
        let running_segment = |name: &String| dp.segments.values().any(|s| &s.name == name);
        let freed_segments = plan
            .remove_segments
            .iter()
            .filter(|n| running_segment(n))
            .count();
        let free_segments = dp.segments.len() - dp.segments.values().count() + freed_segments;
        let vifs: usize = plan.add.iter().map(|a| a.vifs().count()).sum();
        if plan.add.len() > free_vrs {
            return Err(ChangeError::Slots("every VR slot is taken", "vr_slots"));
        }
        if vifs + plan.add_segments.len() > free_ports + freed_segments {
            return Err(ChangeError::Slots("every port slot is taken", "port_slots"));
        }
        if plan.add_segments.len() > free_segments {
            return Err(ChangeError::Slots(
                "every segment slot is taken",
                "segment_slots",
            ));
        }
        Ok(())
    }

    /// Removes VR `id` (if it runs) and its vifs. If the route writer does not
    /// confirm, the VR stays published (without its session and vifs) and
    /// its slot taken: a retry finishes the removal.
    fn remove_vr(&self, id: u32) -> Result<(), ChangeError> {
        let change = self.model.change();
        let dp = change.current();
        let Some(v) = dp.vrs.position(|vr| vr.id == id) else {
            return Ok(());
        };
        self.sessions.retire(v);
        for ifc in &dp.vrs[v].interfaces {
            self.ports.release(ifc.vif);
        }
        // The writer drops the VR's routes and anything queued for it.
        ask_within(
            &self.writer,
            |reply| Command::RemoveVr { vr: v, reply },
            WRITER_WAIT,
        )?;
        change.publish(dp.without_vr(v));
        Ok(())
    }

    /// Adds VR `a` in vacant slots; on any failure nothing of it stays.
    fn add_vr(&self, a: &Addition) -> Result<(), ChangeError> {
        let change = self.model.change();
        let dp = change.current();
        // (`has_room` counted them.)
        let slot =
            (dp.vrs.vacant(1)).ok_or(ChangeError::Slots("every VR slot is taken", "vr_slots"))?[0];
        let vifs = (dp.ports.vacant(a.vifs().count()))
            .ok_or(ChangeError::Slots("every port slot is taken", "port_slots"))?;
        let segment = |name: &str| {
            let s = (dp.segments.position(|s| s.name == name)).expect("its segments run");
            (s, dp.segments[s].uplink)
        };
        let vr = a.placed(&vifs, segment);
        let names: Vec<String> = a.vifs().map(|(name, _)| name.to_owned()).collect();
        let (next, routes) = dp.with_vr(slot, &vr, &names)?;
        // The slots' last users were unpublished at least a drain ago.
        std::thread::sleep(self.tx_drain);
        for c in self.counters {
            c.reset_vr(slot);
            c.reset_ports(&vifs);
        }
        let added = ask_within(
            &self.writer,
            |reply| Command::AddVr {
                slot,
                vr: Arc::clone(&next.vrs[slot]),
                routes: Box::new(routes),
                reply,
            },
            WRITER_WAIT,
        );
        added?.map_err(|source| ChangeError::Tables { vr: a.id(), source })?;
        change.publish(next);
        for (&port, (name, device)) in vifs.iter().zip(a.vifs()) {
            let Some(device) = device else { continue };
            if let Err(source) = self.ports.start(port, device, self.pool) {
                drop(change);
                self.remove_vr(a.id())?;
                return Err(ChangeError::Port {
                    vr: a.id(),
                    port: name.to_owned(),
                    source,
                });
            }
        }
        Ok(())
    }

    /// Removes segment `name` (no VR is on it: the plan removed them) and its
    /// uplink.
    fn remove_segment_now(&self, name: &str) {
        let change = self.model.change();
        let dp = change.current();
        let Some(s) = dp.segments.position(|s| s.name == name) else {
            return;
        };
        let uplink = dp.segments[s].uplink;
        change.publish(dp.without_segment(s));
        self.ports.release(uplink);
    }

    /// Adds segment `a`: its uplink started in a vacant port slot, then the
    /// segment published in a vacant segment slot.
    fn add_segment_now(&self, a: &SegmentAddition) -> Result<(), ChangeError> {
        let change = self.model.change();
        let dp = change.current();
        let (name, device) = a.uplink();
        let room = |what| ChangeError::Slots(what, "segment_slots or port_slots");
        let slot = dp
            .segments
            .vacant(1)
            .ok_or(room("every segment slot is taken"))?[0];
        let port = dp.ports.vacant(1).ok_or(room("every port slot is taken"))?[0];
        std::thread::sleep(self.tx_drain);
        for c in self.counters {
            c.reset_segment(slot);
            c.reset_ports(&[port]);
        }
        let started = self.ports.start(port, device, self.pool);
        started.map_err(|source| ChangeError::Segment {
            segment: a.name().to_owned(),
            port: name.to_owned(),
            source,
        })?;
        let mac = self.ports.mac(port).unwrap_or_default();
        change.publish(dp.with_segment(slot, a.name(), (port, name), mac));
        Ok(())
    }
}
