//! Run-time changes as the file describes them: the VRs and segments the
//! appliance runs (each with its ports, as written), compared with an edited
//! file. A change adds, removes or replaces whole VRs and segments; it is
//! checked as the file it leaves behind (the same checks as `vrfwd check`), and
//! anything else that differs (cores, limits, timers...) is refused: it needs a
//! restart.
//!
//! A VR's definition is its `[[vr]]`, its vif `[[port]]`s and the definitions
//! of the segments it is on (their MTU is its interfaces'), so a segment
//! replaced takes the VRs on it along: they are removed before it and added
//! after it.
use super::{invalid, ConfigError, File, PortConfig, SegmentConfig, VrConfig};
use super::{Config, Vr};

/// The VRs and segments running, with the rest of the file they were started
/// from.
#[derive(Debug, Clone)]
pub struct Running {
    file: File,
}

/// What a change does, in this order: VRs removed (by id), segments removed
/// (by name), segments added, VRs added. A VR or segment whose definition
/// changed is removed and added again.
#[derive(Debug, Default)]
pub struct Plan {
    pub remove: Vec<u32>,
    pub remove_segments: Vec<String>,
    pub add_segments: Vec<SegmentAddition>,
    pub add: Vec<Addition>,
}

/// A VR to add, resolved within the file it came from, with its vifs as
/// written: the running model gives the vifs their port slots and its
/// segments their indices ([`Addition::placed`]).
#[derive(Debug, Clone)]
pub struct Addition {
    vr: Vr,
    raw: VrConfig,
    vifs: Vec<PortConfig>,
    /// Each interface's segment, by name.
    segments: Vec<String>,
}

impl Addition {
    pub fn id(&self) -> u32 {
        self.vr.id
    }

    /// Its interfaces' vifs: name and DPDK device (none: attached at run time),
    /// in interface order.
    pub fn vifs(&self) -> impl Iterator<Item = (&str, Option<&str>)> + '_ {
        self.vifs
            .iter()
            .map(|p| (p.name.as_str(), p.device.as_deref()))
    }

    /// The VR with its interfaces' vifs in port slots `vif_slots` (interface
    /// order), and their segments where `segment` finds them by name: the
    /// segment's slot and its uplink's port slot.
    pub fn placed(&self, vif_slots: &[usize], segment: impl Fn(&str) -> (usize, usize)) -> Vr {
        let mut vr = self.vr.clone();
        let each = vr.interfaces.iter_mut().zip(vif_slots).zip(&self.segments);
        for ((ifc, &slot), name) in each {
            ifc.vif = slot;
            (ifc.segment, ifc.uplink) = segment(name);
        }
        vr
    }
}

/// A segment to add with its uplink port, as written.
#[derive(Debug, Clone)]
pub struct SegmentAddition {
    raw: SegmentConfig,
    uplink: PortConfig,
}

impl SegmentAddition {
    pub fn name(&self) -> &str {
        &self.raw.name
    }

    /// Its uplink port: name and DPDK device (a segment's uplink has one).
    pub fn uplink(&self) -> (&str, &str) {
        let device = self.uplink.device.as_deref();
        (&self.uplink.name, device.expect("the config checked it"))
    }
}

impl Running {
    pub fn new(config: &Config) -> Running {
        Running {
            file: config.file.clone(),
        }
    }

    /// The change that makes the running VRs and segments those of `edited`.
    pub fn reload(&self, edited: &Config) -> Result<Plan, ConfigError> {
        self.same_host(&edited.file)?;
        let (old, new) = (&self.file, &edited.file);
        // Defined otherwise in one file than in the other, or in one only.
        let vr_changed = |id: u32| vr_defined(old, id) != vr_defined(new, id);
        let segment_changed = |name: &str| segment_defined(old, name) != segment_defined(new, name);
        Ok(Plan {
            remove: (old.vrs.iter())
                .filter(|v| vr_changed(v.id))
                .map(|v| v.id)
                .collect(),
            remove_segments: (old.segments.iter())
                .filter(|s| segment_changed(&s.name))
                .map(|s| s.name.clone())
                .collect(),
            add_segments: (new.segments.iter())
                .filter(|s| segment_changed(&s.name))
                .map(|s| segment_addition(new, s))
                .collect(),
            add: (new.vrs.iter())
                .filter(|v| vr_changed(v.id))
                .map(|v| addition(edited, v.id))
                .collect(),
        })
    }

    /// The change that adds VR `id` of `edited` (in place of a running VR of
    /// that id), checked as the file it leaves. Its segments must run as
    /// `edited` defines them.
    pub fn add(&self, edited: &Config, id: u32) -> Result<Plan, ConfigError> {
        self.same_host(&edited.file)?;
        let Some(vc) = edited.file.vrs.iter().find(|v| v.id == id) else {
            return Err(invalid("vr", format!("the file has no VR {id}")));
        };
        for i in &vc.interfaces {
            if segment_defined(&self.file, &i.segment) != segment_defined(&edited.file, &i.segment)
            {
                return Err(invalid(
                    "segment",
                    format!(
                        "{:?} does not run as the file defines it: add it first",
                        i.segment
                    ),
                ));
            }
        }
        let unchanged = vr_defined(&self.file, id) == vr_defined(&edited.file, id);
        let mut after = self.clone();
        let remove: Vec<u32> = after.without(id).into_iter().collect();
        let a = addition(edited, id);
        after.with(&a);
        after.check()?;
        Ok(match unchanged {
            true => Plan::default(),
            false => Plan {
                remove,
                add: vec![a],
                ..Plan::default()
            },
        })
    }

    /// The change that removes running VR `id`.
    pub fn remove(&self, id: u32) -> Result<Plan, ConfigError> {
        match self.file.vrs.iter().any(|v| v.id == id) {
            true => Ok(Plan {
                remove: vec![id],
                ..Plan::default()
            }),
            false => Err(invalid("vr", format!("no VR {id} runs here"))),
        }
    }

    /// The change that adds segment `name` of `edited` with its uplink.
    pub fn add_segment(&self, edited: &Config, name: &str) -> Result<Plan, ConfigError> {
        self.same_host(&edited.file)?;
        let Some(s) = edited.file.segments.iter().find(|s| s.name == name) else {
            return Err(invalid(
                "segment",
                format!("the file has no segment {name:?}"),
            ));
        };
        if self.segment(name).is_some() {
            return Err(invalid("segment", format!("{name:?} runs already")));
        }
        let a = segment_addition(&edited.file, s);
        let mut after = self.clone();
        after.with_segment(&a);
        after.check()?;
        Ok(Plan {
            add_segments: vec![a],
            ..Plan::default()
        })
    }

    /// The change that removes running segment `name`, which no VR may be on.
    pub fn remove_segment(&self, name: &str) -> Result<Plan, ConfigError> {
        if self.segment(name).is_none() {
            return Err(invalid("segment", format!("no segment {name:?} runs here")));
        }
        let on = |v: &&VrConfig| v.interfaces.iter().any(|i| i.segment == name);
        if let Some(vr) = self.file.vrs.iter().find(on) {
            return Err(invalid(
                "segment",
                format!("VR {} is on {name:?}: remove it first", vr.id),
            ));
        }
        Ok(Plan {
            remove_segments: vec![name.to_owned()],
            ..Plan::default()
        })
    }

    /// Records that VR `id` and its vifs are gone; returns the id if it ran.
    pub fn without(&mut self, id: u32) -> Option<u32> {
        let at = self.file.vrs.iter().position(|v| v.id == id)?;
        let vr = self.file.vrs.remove(at);
        let vifs: Vec<&str> = vr.interfaces.iter().map(|i| i.vif.as_str()).collect();
        self.file.ports.retain(|p| !vifs.contains(&p.name.as_str()));
        Some(id)
    }

    /// Records that `a` runs.
    pub fn with(&mut self, a: &Addition) {
        self.file.ports.extend(a.vifs.iter().cloned());
        self.file.vrs.push(a.raw.clone());
    }

    /// Records that segment `name` and its uplink are gone.
    pub fn without_segment(&mut self, name: &str) {
        if let Some(at) = self.file.segments.iter().position(|s| s.name == name) {
            let s = self.file.segments.remove(at);
            self.file.ports.retain(|p| p.name != s.uplink);
        }
    }

    /// Records that segment `a` runs.
    pub fn with_segment(&mut self, a: &SegmentAddition) {
        self.file.ports.push(a.uplink.clone());
        self.file.segments.push(a.raw.clone());
    }

    /// The DPDK device of running port `name`, if it has one.
    pub fn device(&self, name: &str) -> Result<Option<&str>, ConfigError> {
        let port = self.file.ports.iter().find(|p| p.name == name);
        let port = port.ok_or_else(|| invalid("port", format!("no port {name:?} runs here")))?;
        Ok(port.device.as_deref())
    }

    fn segment(&self, name: &str) -> Option<&SegmentConfig> {
        self.file.segments.iter().find(|s| s.name == name)
    }

    /// The running file as it would be checked at start.
    fn check(&self) -> Result<(), ConfigError> {
        self.file.clone().validate().map(drop)
    }

    /// Refuses `edited` if anything but its VRs, segments and their ports
    /// differs.
    fn same_host(&self, edited: &File) -> Result<(), ConfigError> {
        let (running, edited) = (host_part(&self.file), host_part(edited));
        let changed =
            (running.keys().chain(edited.keys())).find(|k| running.get(*k) != edited.get(*k));
        match changed {
            Some(key) => Err(invalid(key.as_str(), "changes only with a restart")),
            None => Ok(()),
        }
    }
}

/// A VR as written: its table, its vif ports and its segments' definitions.
fn vr_definition(file: &File, vc: &VrConfig) -> toml::Value {
    let vifs: Vec<&PortConfig> = vif_ports(file, vc).collect();
    let segments: Vec<toml::Value> = (vc.interfaces.iter())
        .filter_map(|i| segment_defined(file, &i.segment))
        .collect();
    toml::Value::try_from((vc, vifs, segments)).expect("a VR serialises")
}

/// VR `id`'s definition in `file`, if the file lists it.
fn vr_defined(file: &File, id: u32) -> Option<toml::Value> {
    let vc = file.vrs.iter().find(|v| v.id == id)?;
    Some(vr_definition(file, vc))
}

/// Segment `name`'s definition in `file`, if the file lists it.
fn segment_defined(file: &File, name: &str) -> Option<toml::Value> {
    let s = file.segments.iter().find(|s| s.name == name)?;
    Some(segment_definition(file, s))
}

/// A segment as written, with its uplink port.
fn segment_definition(file: &File, s: &SegmentConfig) -> toml::Value {
    let uplink = file.ports.iter().find(|p| p.name == s.uplink);
    toml::Value::try_from((s, uplink)).expect("a segment serialises")
}

fn vif_ports<'f>(file: &'f File, vc: &'f VrConfig) -> impl Iterator<Item = &'f PortConfig> + 'f {
    (vc.interfaces.iter()).filter_map(move |i| file.ports.iter().find(|p| p.name == i.vif))
}

/// Everything in `file` but its VRs, its segments and their ports, by top-level
/// key.
fn host_part(file: &File) -> toml::map::Map<String, toml::Value> {
    let mut host = file.clone();
    let vifs = (file.vrs.iter()).flat_map(|v| v.interfaces.iter().map(|i| i.vif.as_str()));
    let ports: Vec<&str> = vifs
        .chain(file.segments.iter().map(|s| s.uplink.as_str()))
        .collect();
    host.ports.retain(|p| !ports.contains(&p.name.as_str()));
    host.vrs.clear();
    host.segments.clear();
    match toml::Value::try_from(&host).expect("a file serialises") {
        toml::Value::Table(t) => t,
        _ => unreachable!("a file is a table"),
    }
}

/// VR `id` of the (checked) `edited` file, ready to place.
fn addition(edited: &Config, id: u32) -> Addition {
    let v = (edited.topology.vrs.iter())
        .position(|v| v.id == id)
        .expect("a VR of the file");
    let raw = edited.file.vrs[v].clone();
    Addition {
        vifs: vif_ports(&edited.file, &raw).cloned().collect(),
        segments: raw.interfaces.iter().map(|i| i.segment.clone()).collect(),
        vr: edited.topology.vrs[v].clone(),
        raw,
    }
}

/// Segment `s` of (checked) `file`, ready to add.
fn segment_addition(file: &File, s: &SegmentConfig) -> SegmentAddition {
    let uplink = (file.ports.iter())
        .find(|p| p.name == s.uplink)
        .expect("the config checked the uplink");
    SegmentAddition {
        raw: s.clone(),
        uplink: uplink.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::EXAMPLE;

    /// VR `id` on lan0 with MAC …:`id`, address 10.0.1.`id`, vif `vif<id>`.
    fn vr(id: u32) -> String {
        format!(
            r#"
            [[port]]
            name = "vif{id}"
            device = "net_af_packet{id},iface=vif{id}"
            [[vr]]
            id = {id}
            [[vr.interface]]
            name = "eth0"
            mac = "02:00:00:00:{id:02x}:01"
            address = "10.0.1.{id}/24"
            segment = "lan0"
            vif = "vif{id}"
            "#
        )
    }

    fn config(text: &str) -> Config {
        Config::parse(text).unwrap()
    }

    fn ids(plan: &Plan) -> (Vec<u32>, Vec<u32>) {
        (
            plan.remove.clone(),
            plan.add.iter().map(Addition::id).collect(),
        )
    }

    #[test]
    fn a_reload_adds_and_removes_whole_vrs_and_replaces_changed_ones() {
        let running = Running::new(&config(&format!("{EXAMPLE}{}", vr(2))));
        let same = config(&format!("{EXAMPLE}{}", vr(2)));
        assert_eq!(ids(&running.reload(&same).unwrap()), (vec![], vec![]));
        let more = config(&format!("{EXAMPLE}{}{}", vr(2), vr(3)));
        let plan = running.reload(&more).unwrap();
        assert_eq!(ids(&plan), (vec![], vec![3]));
        let vifs: Vec<_> = plan.add[0].vifs().collect();
        assert_eq!(vifs, [("vif3", Some("net_af_packet3,iface=vif3"))]);
        let fewer = config(EXAMPLE);
        assert_eq!(ids(&running.reload(&fewer).unwrap()), (vec![2], vec![]));
        let moved = config(&format!(
            "{EXAMPLE}{}",
            vr(2).replace("10.0.1.2/", "10.0.1.9/")
        ));
        assert_eq!(ids(&running.reload(&moved).unwrap()), (vec![2], vec![2]));
        // Its vif's device is part of a VR's definition too.
        let replugged = config(&format!(
            "{EXAMPLE}{}",
            vr(2).replace("iface=vif2", "iface=x")
        ));
        assert_eq!(
            ids(&running.reload(&replugged).unwrap()),
            (vec![2], vec![2])
        );
    }

    #[test]
    fn anything_but_vrs_segments_and_their_ports_needs_a_restart() {
        let running = Running::new(&config(EXAMPLE));
        let edited = config(&EXAMPLE.replace("cores = [0]", "cores = [1]"));
        let e = running.reload(&edited).unwrap_err().to_string();
        assert_eq!(e, "cores: changes only with a restart");
        let limits = config(&format!("{EXAMPLE}\n[limits]\nvr_slots = 8"));
        let e = running.reload(&limits).unwrap_err().to_string();
        assert_eq!(e, "limits: changes only with a restart");
    }

    /// Segment `lan9` with uplink `up9`.
    fn lan9() -> String {
        "[[port]]\nname = \"up9\"\ndevice = \"net_af_packet9,iface=up9\"\n\
         [[segment]]\nname = \"lan9\"\nuplink = \"up9\"\n"
            .to_owned()
    }

    #[test]
    fn a_segment_comes_and_goes_and_one_replaced_takes_its_vrs_along() {
        let running = Running::new(&config(EXAMPLE));
        // lan9 and a VR on it.
        let on_lan9 = vr(4).replace("\"lan0\"", "\"lan9\"");
        let more = config(&format!("{EXAMPLE}{}{on_lan9}", lan9()));
        let plan = running.reload(&more).unwrap();
        assert_eq!(ids(&plan), (vec![], vec![4]));
        assert!(plan.remove_segments.is_empty());
        let added: Vec<_> = plan
            .add_segments
            .iter()
            .map(SegmentAddition::name)
            .collect();
        assert_eq!(added, ["lan9"]);
        assert_eq!(
            plan.add_segments[0].uplink(),
            ("up9", "net_af_packet9,iface=up9")
        );
        let vr4 = plan.add[0].placed(&[17], |name| {
            assert_eq!(name, "lan9");
            (5, 21)
        });
        let ifc = &vr4.interfaces[0];
        assert_eq!((ifc.vif, ifc.segment, ifc.uplink), (17, 5, 21));

        // lan0's MTU changed: lan0 replaced, and VR 1 on it with it.
        let jumbo = config(&EXAMPLE.replace("uplink = \"up0\"", "uplink = \"up0\"\nmtu = 9000"));
        let plan = running.reload(&jumbo).unwrap();
        assert_eq!(ids(&plan), (vec![1], vec![1]));
        assert_eq!(plan.remove_segments, ["lan0"]);
        assert_eq!(plan.add_segments.len(), 1);
        assert_eq!(plan.add[0].placed(&[3], |_| (0, 0)).interfaces[0].mtu, 9000);

        // One at a time: a segment VR 1 is on stays; one added runs once.
        let e = running.remove_segment("lan0").unwrap_err().to_string();
        assert!(e.contains("VR 1 is on \"lan0\": remove it first"), "{e}");
        let mut running = running;
        let plan = running.add_segment(&more, "lan9").unwrap();
        running.with_segment(&plan.add_segments[0]);
        assert!(
            running.add_segment(&more, "lan9").is_err(),
            "it runs already"
        );
        assert_eq!(
            running.remove_segment("lan9").unwrap().remove_segments,
            ["lan9"]
        );
        // VR 4 alone, now that lan9 runs; not before.
        assert_eq!(ids(&running.add(&more, 4).unwrap()), (vec![], vec![4]));
        running.without_segment("lan9");
        let e = running.add(&more, 4).unwrap_err().to_string();
        assert!(
            e.contains("\"lan9\" does not run as the file defines it"),
            "{e}"
        );
    }

    #[test]
    fn one_vr_is_added_as_checked_against_the_running_ones() {
        let mut running = Running::new(&config(&format!("{EXAMPLE}{}", vr(2))));
        // The edited file dropped VR 2 and added VR 3 with VR 2's MAC: alone
        // valid, but not next to VR 2, which still runs.
        let clash = vr(3).replace("02:00:00:00:03:01", "02:00:00:00:02:01");
        let edited = config(&format!("{EXAMPLE}{clash}"));
        let e = running.add(&edited, 3).unwrap_err().to_string();
        assert!(e.contains("belongs to another interface too"), "{e}");
        assert!(running.add(&edited, 7).is_err(), "no VR 7 in the file");

        let edited = config(&format!("{EXAMPLE}{}{}", vr(2), vr(3)));
        let plan = running.add(&edited, 3).unwrap();
        assert_eq!(ids(&plan), (vec![], vec![3]));
        running.with(&plan.add[0]);
        assert_eq!(ids(&running.reload(&edited).unwrap()), (vec![], vec![]));
        assert_eq!(ids(&running.add(&edited, 3).unwrap()), (vec![], vec![]));

        assert_eq!(ids(&running.remove(2).unwrap()), (vec![2], vec![]));
        assert!(running.remove(9).is_err());
        assert_eq!(running.without(2), Some(2));
        assert_eq!(ids(&running.reload(&edited).unwrap()), (vec![], vec![2]));
    }
}
