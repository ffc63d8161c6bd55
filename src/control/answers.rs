//! The operator commands' answers as data: each renders for people (aligned
//! columns, `Display`) and as one JSON document (`vrfwd ctl --json …`, one
//! schema per command, docs/operating.md "JSON").
use super::session::SessionInfo;
use super::writer::RouteInfo;
use crate::stats::Snapshot;
use serde::Serialize;
use std::fmt;

/// A command's answer, in either form.
pub trait Answer: fmt::Display {
    fn json(&self) -> Result<String, String>;
}

impl<T: Serialize + fmt::Display> Answer for T {
    fn json(&self) -> Result<String, String> {
        serde_json::to_string(self).map_err(|e| e.to_string())
    }
}

/// What a command that changes something says it did (JSON: `{"message": …}`).
#[derive(Debug, Serialize)]
pub struct Message {
    pub message: String,
}

impl Message {
    /// The answer `message`.
    pub fn boxed(message: impl Into<String>) -> Box<dyn Answer> {
        Box::new(Message {
            message: message.into(),
        })
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)
    }
}

/// `stats`: the counters (JSON: the snapshot, as `vrfwd stats --json`).
#[derive(Serialize)]
#[serde(transparent)]
pub struct Stats(pub Snapshot);

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.render())
    }
}

/// `vrs`: each VR, its state, route and neighbour counts and interfaces.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct Vrs(pub Vec<VrInfo>);

#[derive(Debug, Serialize)]
pub struct VrInfo {
    pub id: u32,
    pub name: String,
    /// `active`, `standby`, `draining` or `quiet`.
    pub state: String,
    /// The host it is being cloned to, during a migration.
    pub cloning_to: Option<String>,
    pub routes: usize,
    pub neighbors: usize,
    pub interfaces: Vec<InterfaceInfo>,
}

#[derive(Debug, Serialize)]
pub struct InterfaceInfo {
    pub name: String,
    /// Address and prefix length, `10.0.1.1/24`.
    pub address: String,
    pub mac: String,
}

impl fmt::Display for Vrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<6} {:<12} {:<9} {:>7} {:>6}  interfaces",
            "vr", "name", "state", "routes", "neigh"
        )?;
        for v in &self.0 {
            let state = match &v.cloning_to {
                Some(to) => format!("{} cloning to {to}", v.state),
                None => v.state.clone(),
            };
            let ifs: Vec<String> = v
                .interfaces
                .iter()
                .map(|i| format!("{}={} {}", i.name, i.address, i.mac))
                .collect();
            writeln!(
                f,
                "{:<6} {:<12} {:<9} {:>7} {:>6}  {}",
                v.id,
                v.name,
                state,
                v.routes,
                v.neighbors,
                ifs.join(", ")
            )?;
        }
        Ok(())
    }
}

/// `sessions`: the route sessions up, one per VR at most.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct SessionList(pub Vec<SessionInfo>);

impl fmt::Display for SessionList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:<6} {:<24} {:>14} role", "vr", "peer", "generation")?;
        for s in &self.0 {
            let role = if s.clone { "clone" } else { "guest" };
            writeln!(f, "{:<6} {:<24} {:>14} {role}", s.vr, s.peer, s.generation)?;
        }
        Ok(())
    }
}

/// `routes VR`: every route, a multipath route's paths under it.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct Routes(pub Vec<RouteInfo>);

impl fmt::Display for Routes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.0 {
            writeln!(f, "{} {}", r.prefix, r.next_hop)?;
            for p in &r.paths {
                writeln!(
                    f,
                    "    {} weight {} packets {}",
                    p.next_hop, p.weight, p.packets
                )?;
            }
        }
        Ok(())
    }
}

/// `neighbors VR`: the neighbours the fast path knows, both families.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct Neighbors(pub Vec<NeighborInfo>);

#[derive(Debug, Serialize)]
pub struct NeighborInfo {
    pub address: String,
    pub interface: String,
    pub mac: String,
    /// Seconds since it was last confirmed; None: a static entry.
    pub age_s: Option<u32>,
}

impl fmt::Display for Neighbors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for n in &self.0 {
            let age = n.age_s.map_or("static".to_owned(), |a| format!("{a}s"));
            writeln!(
                f,
                "{} dev {} lladdr {} {age}",
                n.address, n.interface, n.mac
            )?;
        }
        Ok(())
    }
}

/// `ports`: every port, its role and what it is attached to.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct Ports(pub Vec<PortInfo>);

#[derive(Debug, Serialize)]
pub struct PortInfo {
    pub port: usize,
    pub name: String,
    /// `uplink of SEGMENT` or `vif of VR IFACE`.
    pub role: String,
    /// The device or netdev behind it; None: detached.
    pub attached_to: Option<String>,
}

impl fmt::Display for Ports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:<5} {:<16} {:<28} attached to", "port", "name", "role")?;
        for p in &self.0 {
            let at = p.attached_to.as_deref().unwrap_or("-");
            writeln!(f, "{:<5} {:<16} {:<28} {at}", p.port, p.name, p.role)?;
        }
        Ok(())
    }
}
