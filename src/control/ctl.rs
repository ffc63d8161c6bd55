//! The operator's commands (`vrfwd ctl …`), answered on the operator socket: parse
//! a command line, ask the dataplane or the route writer, render the answer.
//! Replies that start with `error: ` are failures.
use super::answers::{
    Answer, InterfaceInfo, Message, NeighborInfo, Neighbors, PortInfo, Ports, Routes, SessionList,
    Stats, VrInfo, Vrs,
};
use super::reconfigure::{ChangeError, Done, Reconfigure};
use super::route_get::{Probe, RouteGet};
use super::session::Sessions;
use super::writer::{ask_within, Command, RouteEdit};
use crate::config::AttachConfig;
use crate::dataplane::{
    neighbor6_of_key, neighbor_of_key, Dataplane, Model, NextHop, Path, PortRole, Route,
};
use crate::dpdk::{Mempool, PortTable};
use crate::stats::Snapshot;
use crossbeam_channel::Sender;
use ipnet::IpNet;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use vrfwd_wire::MacAddr;

/// The commands, for `help` and errors.
pub const USAGE: &str = "stats | stats-json | vrs | sessions | routes VR | neighbors VR | \
route add VR PREFIX (via ADDR [dev IFACE] | dev IFACE) [weight N]... | route del VR PREFIX | \
route get VR ADDRESS [from ADDR] [proto N] [sport N] [dport N] | \
migrate VR --to HOST:PORT | migrate VR --cancel | drain VR | ports | \
attach VR MAC NETDEV [--segment SEGMENT] | detach NETDEV | \
vr add ID | vr del VR | segment add NAME | segment del NAME | port add NAME | port del NAME | \
reload";

/// The longest an operator command waits for the route writer: it answers
/// "busy" rather than hang behind other VRs' work.
const WRITER_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// What the operator commands can reach.
pub struct Ctl<'a> {
    pub model: &'a Model,
    pub writer: Sender<Command>,
    pub snapshot: &'a (dyn Fn() -> Snapshot + Sync),
    pub sessions: &'a std::sync::Arc<Sessions>,
    /// Vif ports without a configured device are attached here at run time.
    pub ports: &'a PortTable,
    pub pool: &'a Mempool,
    pub attach: &'a AttachConfig,
    /// VRs added and removed at run time.
    pub reconfigure: &'a Reconfigure<'a>,
}

impl Ctl<'_> {
    /// The current model.
    fn dp(&self) -> Arc<Dataplane> {
        self.model.current()
    }

    /// Answers one command line; `--json` first: as JSON.
    pub fn answer(&self, line: &str) -> String {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (json, words) = match words.as_slice() {
            ["--json", rest @ ..] => (true, rest),
            // `vrfwd stats --json` of earlier releases.
            ["stats-json"] => (true, &["stats"][..]),
            words => (false, words),
        };
        let answer = self.command(words);
        if let (Err(e), true) = (&answer, changes(words)) {
            tracing::warn!(command = words.join(" "), "refused: {e}");
        }
        let rendered = answer.and_then(|a| if json { a.json() } else { Ok(a.to_string()) });
        rendered.unwrap_or_else(|e| format!("error: {e}"))
    }

    /// Carries out one command.
    fn command(&self, words: &[&str]) -> Result<Box<dyn Answer>, String> {
        let answer: Box<dyn Answer> = match words {
            ["stats"] => Box::new(Stats((self.snapshot)())),
            ["vrs"] => Box::new(self.vrs()),
            ["sessions"] => Box::new(SessionList(self.sessions.list())),
            ["routes", vr] => Box::new(self.routes(self.vr(vr)?)?),
            ["neighbors", vr] => Box::new(self.neighbors(self.vr(vr)?)),
            ["route", "add", vr, prefix, how @ ..] => {
                Message::boxed(self.route_add(vr, prefix, how)?)
            }
            ["route", "del", vr, prefix] => Message::boxed(self.route_del(vr, prefix)?),
            ["route", "get", vr, address, flow @ ..] => {
                Box::new(self.route_get(vr, address, flow)?)
            }
            ["migrate", vr, "--to", to] => {
                let v = self.vr(vr)?;
                let to = to
                    .parse()
                    .map_err(|_| format!("{to:?} is not HOST:PORT (an IPv4 address and port)"))?;
                Message::boxed(self.sessions.migrate(v, to).map_err(|e| e.to_string())?)
            }
            ["migrate", vr, "--cancel"] => {
                let v = self.vr(vr)?;
                Message::boxed(
                    self.sessions
                        .cancel_migration(v)
                        .map_err(|e| e.to_string())?,
                )
            }
            ["drain", vr] => Message::boxed(self.sessions.drain(self.vr(vr)?)),
            ["ports"] => Box::new(self.ports()),
            ["attach", vr, mac, netdev] => Message::boxed(self.attach(vr, mac, netdev, None)?),
            ["attach", vr, mac, netdev, "--segment", segment] => {
                Message::boxed(self.attach(vr, mac, netdev, Some(segment))?)
            }
            ["detach", netdev] => Message::boxed(self.detach(netdev)?),
            ["vr", "add", id] => {
                let id = id.parse().map_err(|_| format!("{id:?} is not a VR id"))?;
                Message::boxed(changed(self.reconfigure.add(id))?)
            }
            ["vr", "del", vr] => {
                let id = self.dp().vrs[self.vr(vr)?].id;
                Message::boxed(changed(self.reconfigure.remove(id))?)
            }
            ["segment", "add", name] => {
                Message::boxed(changed(self.reconfigure.add_segment(name))?)
            }
            ["segment", "del", name] => {
                Message::boxed(changed(self.reconfigure.remove_segment(name))?)
            }
            ["port", "add", name] => {
                Message::boxed(self.reconfigure.plug(name).map_err(|e| e.to_string())?)
            }
            ["port", "del", name] => {
                Message::boxed(self.reconfigure.unplug(name).map_err(|e| e.to_string())?)
            }
            ["reload"] => Message::boxed(changed(self.reconfigure.reload())?),
            ["help"] => Message::boxed(USAGE),
            _ => {
                let line = words.join(" ");
                return Err(format!("unknown command {line:?}; commands: {USAGE}"));
            }
        };
        Ok(answer)
    }

    /// A VR by id or by name.
    fn vr(&self, vr: &str) -> Result<usize, String> {
        let id: Option<u32> = vr.parse().ok();
        self.dp()
            .vrs
            .position(|v| Some(v.id) == id || v.name == vr)
            .ok_or_else(|| format!("no VR {vr:?}"))
    }

    fn ports(&self) -> Ports {
        let dp = self.dp();
        let port = |(p, role): (usize, &PortRole)| {
            let role = match *role {
                PortRole::Uplink { segment } => {
                    format!("uplink of {}", dp.segments[segment].name)
                }
                PortRole::Vif { vr, iface, .. } => {
                    let v = &dp.vrs[vr];
                    format!("vif of {} {}", v.name, v.interfaces[iface].name)
                }
            };
            PortInfo {
                port: p,
                name: dp.port_names[p].clone(),
                role,
                attached_to: self.ports.attachment(p),
            }
        };
        Ports(dp.ports.iter().map(port).collect())
    }

    /// Attaches kernel netdev `netdev` (a Xen vif, a QEMU tap) as the vif of the
    /// interface of VR `vr` whose MAC is `mac`; `segment`, when given, must be that
    /// interface's segment (a hotplug script passes the bridge it was told).
    fn attach(
        &self,
        vr: &str,
        mac: &str,
        netdev: &str,
        segment: Option<&str>,
    ) -> Result<String, String> {
        // No VR comes or goes meanwhile.
        let _change = self.model.change();
        let v = self.vr(vr)?;
        let mac: MacAddr = mac.parse().map_err(|_| format!("{mac:?} is not a MAC"))?;
        let vr = &self.dp().vrs[v];
        let ifc = vr
            .interfaces
            .iter()
            .find(|i| i.mac == mac)
            .ok_or_else(|| format!("VR {} has no interface with MAC {mac}", vr.name))?;
        let on = &self.dp().segments[ifc.segment].name;
        if let Some(want) = segment.filter(|s| s != on) {
            return Err(format!(
                "interface {} of VR {} is on segment {on}, not {want}",
                ifc.name, vr.name
            ));
        }
        check_netdev(netdev)?;
        let attached = match self.attach.device(ifc.vif, netdev, self.ports.queues()) {
            Some(device) => self.ports.attach(ifc.vif, netdev, &device, self.pool),
            None => self.ports.attach_socket(ifc.vif, netdev),
        };
        attached.map_err(|e| format!("{netdev}: {e}"))?;
        tracing::info!(vr = %vr.name, iface = %ifc.name, netdev, "vif attached");
        Ok(format!(
            "attached {netdev} to VR {} interface {} (port {}, segment {on})",
            vr.name,
            ifc.name,
            self.dp().port_names[ifc.vif]
        ))
    }

    fn detach(&self, netdev: &str) -> Result<String, String> {
        let port = self.ports.detach(netdev).map_err(|e| e.to_string())?;
        tracing::info!(netdev, port = %self.dp().port_names[port], "vif detached");
        Ok(format!(
            "detached {netdev} (port {})",
            self.dp().port_names[port]
        ))
    }

    fn vrs(&self) -> Vrs {
        let now = self.dp().clock.seconds(crate::dpdk::tsc());
        let vr = |(i, v): (usize, &Arc<crate::dataplane::Vr>)| VrInfo {
            id: v.id,
            name: v.name.clone(),
            state: v.state().label().to_owned(),
            cloning_to: self.sessions.cloning_to(i).map(|to| to.to_string()),
            routes: v.routes.load(Ordering::Relaxed),
            neighbors: v.neighbors.entries(now).len(),
            interfaces: v
                .interfaces
                .iter()
                .map(|i| InterfaceInfo {
                    name: i.name.clone(),
                    address: format!("{}/{}", i.address, i.prefix_len),
                    mac: i.mac.to_string(),
                })
                .collect(),
        };
        Vrs(self.dp().vrs.iter().map(vr).collect())
    }

    fn routes(&self, v: usize) -> Result<Routes, String> {
        ask_within(
            &self.writer,
            |reply| Command::List { vr: v, reply },
            WRITER_WAIT,
        )
        .map(Routes)
        .map_err(|e| e.to_string())
    }

    fn neighbors(&self, v: usize) -> Neighbors {
        let vr = &self.dp().vrs[v];
        let now = self.dp().clock.seconds(crate::dpdk::tsc());
        let v4 = vr
            .neighbors
            .entries(now)
            .into_iter()
            .map(|(key, mac, age)| {
                let (iface, address) = neighbor_of_key(key);
                (iface, IpAddr::from(address), mac, age)
            });
        let v6 = vr
            .neighbors6
            .entries(now)
            .into_iter()
            .map(|(key, mac, age)| {
                let (iface, address) = neighbor6_of_key(key);
                (iface, IpAddr::from(address), mac, age)
            });
        let mut rows: Vec<_> = v4.chain(v6).collect();
        rows.sort_unstable_by_key(|&(iface, address, ..)| (address, iface));
        let row = |&(iface, address, mac, age): &(usize, IpAddr, u64, Option<u32>)| NeighborInfo {
            address: address.to_string(),
            interface: vr
                .interfaces
                .get(iface)
                .map_or("?".to_owned(), |i| i.name.clone()),
            mac: MacAddr::from_u64(mac).to_string(),
            age_s: age,
        };
        Neighbors(rows.iter().map(row).collect())
    }

    /// `route add VR PREFIX PATH...`: one path, or several (a multipath
    /// route), each `via ADDR [dev IFACE] [weight N]` or `dev IFACE [weight N]`.
    fn route_add(&self, vr: &str, prefix: &str, how: &[&str]) -> Result<String, String> {
        let v = self.vr(vr)?;
        let prefix = parse_prefix(prefix)?;
        let mut paths = Vec::new();
        let mut rest = how;
        while !rest.is_empty() {
            let (path, after) = self.path(vr, v, prefix, rest)?;
            paths.push(path);
            rest = after;
        }
        let route = Route::new(paths).map_err(|e| format!("route {prefix}: {e}"))?;
        self.edit(v, RouteEdit::Add { prefix, route })
    }

    /// The path `words` start with, and the words after it.
    fn path<'w>(
        &self,
        vr: &str,
        v: usize,
        prefix: IpNet,
        words: &'w [&'w str],
    ) -> Result<(Path, &'w [&'w str]), String> {
        let interfaces = &self.dp().vrs[v].interfaces;
        let named = |name: &str| {
            interfaces
                .iter()
                .position(|i| i.name == name)
                .ok_or_else(|| format!("VR {vr} has no interface {name:?}"))
        };
        let gateway = |addr: &str, dev: Option<&str>| {
            let via: IpAddr = addr
                .parse()
                .map_err(|_| format!("{addr:?} is not an address"))?;
            if via.is_ipv4() != prefix.addr().is_ipv4() {
                return Err(format!("{via} is not of {prefix}'s family"));
            }
            let iface = crate::config::gateway_interface(interfaces, via, dev)
                .map_err(|e| format!("VR {vr}: {e}"))?;
            Ok(NextHop::gateway(iface, via))
        };
        let (next_hop, rest) = match words {
            ["via", addr, "dev", dev, rest @ ..] => (gateway(addr, Some(dev))?, rest),
            ["via", addr, rest @ ..] => (gateway(addr, None)?, rest),
            ["dev", name, rest @ ..] => (
                NextHop::Attached {
                    iface: named(name)?,
                },
                rest,
            ),
            _ => {
                return Err(format!(
                    "route add needs paths 'via ADDR [dev IFACE] [weight N]' or 'dev IFACE [weight N]'; commands: {USAGE}"
                ))
            }
        };
        let (weight, rest) = match rest {
            ["weight", w, rest @ ..] => (
                w.parse()
                    .ok()
                    .filter(|w| (1..=u32::from(vrfwd_proto::MAX_WEIGHT)).contains(w))
                    .ok_or_else(|| {
                        format!(
                            "weight {w:?} is not a number from 1 to {}",
                            vrfwd_proto::MAX_WEIGHT
                        )
                    })?,
                rest,
            ),
            rest => (1, rest),
        };
        Ok((Path { next_hop, weight }, rest))
    }

    /// `route get VR ADDRESS [from ADDR] [proto N] [sport N] [dport N]`: where
    /// the fast path sends such a packet now (the flow fields choose a
    /// multipath route's path; unset, they are 0 and the unspecified address).
    fn route_get(&self, vr: &str, address: &str, flow: &[&str]) -> Result<RouteGet, String> {
        let v = self.vr(vr)?;
        let probe = parse_probe(address, flow)?;
        ask_within(
            &self.writer,
            |reply| Command::Get {
                vr: v,
                probe,
                reply,
            },
            WRITER_WAIT,
        )
        .map_err(|e| e.to_string())
    }

    fn route_del(&self, vr: &str, prefix: &str) -> Result<String, String> {
        let v = self.vr(vr)?;
        self.edit(
            v,
            RouteEdit::Delete {
                prefix: parse_prefix(prefix)?,
            },
        )
    }

    fn edit(&self, vr: usize, edit: RouteEdit) -> Result<String, String> {
        let make = |reply| Command::Edit {
            vr,
            edits: vec![edit],
            reply,
        };
        match ask_within(&self.writer, make, WRITER_WAIT) {
            Ok(Ok(())) => Ok("ok".into()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// A kernel interface name that exists; refused before it reaches DPDK's device
/// arguments (where a comma or `=` would add arguments of its own).
fn check_netdev(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b));
    if !valid {
        return Err(format!("{name:?} is not a network interface name"));
    }
    // Asked of the kernel in vrfwd's own network namespace (/sys may show another).
    let c_name = std::ffi::CString::new(name).expect("checked: no NUL");
    // SAFETY: `c_name` is a valid NUL-terminated string for the call's duration.
    if unsafe { libc::if_nametoindex(c_name.as_ptr()) } == 0 {
        return Err(format!("no network interface {name:?}"));
    }
    Ok(())
}

/// Whether command `words` changes something (a refused one is logged).
/// What a run-time change did, for the operator.
fn changed(done: Result<Done, ChangeError>) -> Result<String, String> {
    done.map(|d| d.to_string()).map_err(|e| e.to_string())
}

fn changes(words: &[&str]) -> bool {
    matches!(
        words,
        ["route", "add" | "del", ..]
            | ["vr" | "segment" | "port", "add" | "del", ..]
            | ["migrate" | "drain" | "attach" | "detach" | "reload", ..]
    )
}

/// The packet `route get ADDRESS FLOW...` asks about.
fn parse_probe(address: &str, flow: &[&str]) -> Result<Probe, String> {
    let addr = |a: &str| {
        a.parse::<IpAddr>()
            .map_err(|_| format!("{a:?} is not an address"))
    };
    let number = |field: &str, n: &str| {
        n.parse::<u16>()
            .map_err(|_| format!("{field} {n:?} is not a number from 0 to 65535"))
    };
    let dst = addr(address)?;
    let unspecified = match dst {
        IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
    };
    let mut probe = Probe {
        dst,
        src: unspecified,
        protocol: 0,
        ports: (0, 0),
    };
    let mut rest = flow;
    while !rest.is_empty() {
        rest = match rest {
            ["from", a, rest @ ..] => {
                probe.src = addr(a)?;
                rest
            }
            ["proto", p, rest @ ..] => {
                probe.protocol = u8::try_from(number("proto", p)?)
                    .map_err(|_| format!("proto {p:?} is not a number from 0 to 255"))?;
                rest
            }
            ["sport", n, rest @ ..] => {
                probe.ports.0 = number("sport", n)?;
                rest
            }
            ["dport", n, rest @ ..] => {
                probe.ports.1 = number("dport", n)?;
                rest
            }
            _ => return Err(format!("route get: unexpected {rest:?}; commands: {USAGE}")),
        };
    }
    if probe.src.is_ipv4() != dst.is_ipv4() {
        return Err(format!("{} is not of {dst}'s family", probe.src));
    }
    Ok(probe)
}

fn parse_prefix(s: &str) -> Result<IpNet, String> {
    let p: IpNet = s.parse().map_err(|_| format!("{s:?} is not a prefix"))?;
    if p.trunc() != p {
        return Err(format!(
            "{p} has host bits set (the network is {})",
            p.trunc()
        ));
    }
    Ok(p)
}
