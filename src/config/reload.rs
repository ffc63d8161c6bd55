//! Run-time changes as the file describes them: the VRs the appliance runs (each
//! with its vif ports, as written), compared with an edited file. A change adds,
//! removes or replaces whole VRs; it is checked as the file it leaves behind
//! (the same checks as `vrfwd check`), and anything else that differs (cores,
//! segments, uplinks, limits...) is refused: it needs a restart.
use super::{invalid, ConfigError, File, PortConfig, VrConfig};
use super::{Config, Vr};

/// The VRs running, with the rest of the file they were started from.
#[derive(Debug, Clone)]
pub struct Running {
    file: File,
}

/// What a change does: VRs removed (by id), then VRs added. A VR whose
/// definition changed is removed and added again.
#[derive(Debug)]
pub struct Plan {
    pub remove: Vec<u32>,
    pub add: Vec<Addition>,
}

/// A VR to add, resolved within the file it came from, with its vifs as
/// written: the running model gives the vifs their port slots
/// ([`Addition::placed`]).
#[derive(Debug, Clone)]
pub struct Addition {
    vr: Vr,
    raw: VrConfig,
    vifs: Vec<PortConfig>,
    /// Each interface's segment's uplink port, by name.
    uplinks: Vec<String>,
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
    /// order) and their uplinks at the port slots `uplink` gives for their
    /// names. Segments keep their indices: a change never touches them.
    pub fn placed(&self, vif_slots: &[usize], uplink: impl Fn(&str) -> usize) -> Vr {
        let mut vr = self.vr.clone();
        for ((ifc, &slot), name) in vr.interfaces.iter_mut().zip(vif_slots).zip(&self.uplinks) {
            ifc.vif = slot;
            ifc.uplink = uplink(name);
        }
        vr
    }
}

impl Running {
    pub fn new(config: &Config) -> Running {
        Running {
            file: config.file.clone(),
        }
    }

    /// The change that makes the running VRs those of `edited`.
    pub fn reload(&self, edited: &Config) -> Result<Plan, ConfigError> {
        self.same_host(&edited.file)?;
        let remove = (self.file.vrs.iter())
            .filter(|v| Some(file_definition(&self.file, v)) != edited_definition(edited, v.id))
            .map(|v| v.id)
            .collect();
        let add = (edited.file.vrs.iter())
            .filter(|v| self.definition_of(v.id) != Some(file_definition(&edited.file, v)))
            .map(|v| addition(edited, v.id))
            .collect();
        Ok(Plan { remove, add })
    }

    /// The change that adds VR `id` of `edited` (in place of a running VR of
    /// that id), checked as the file it leaves.
    pub fn add(&self, edited: &Config, id: u32) -> Result<Plan, ConfigError> {
        self.same_host(&edited.file)?;
        let Some(vc) = edited.file.vrs.iter().find(|v| v.id == id) else {
            return Err(invalid("vr", format!("the file has no VR {id}")));
        };
        let mut after = self.clone();
        let remove: Vec<u32> = after.without(id).into_iter().collect();
        let a = addition(edited, id);
        after.with(&a);
        after.check()?;
        if remove.is_empty() || self.definition_of(id) != Some(file_definition(&edited.file, vc)) {
            Ok(Plan {
                remove,
                add: vec![a],
            })
        } else {
            Ok(Plan {
                remove: Vec::new(),
                add: Vec::new(),
            })
        }
    }

    /// The change that removes running VR `id`.
    pub fn remove(&self, id: u32) -> Result<Plan, ConfigError> {
        match self.file.vrs.iter().any(|v| v.id == id) {
            true => Ok(Plan {
                remove: vec![id],
                add: Vec::new(),
            }),
            false => Err(invalid("vr", format!("no VR {id} runs here"))),
        }
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

    /// The running file as it would be checked at start.
    fn check(&self) -> Result<(), ConfigError> {
        self.file.clone().validate().map(drop)
    }

    /// Refuses `edited` if anything but its VRs and their vifs differs.
    fn same_host(&self, edited: &File) -> Result<(), ConfigError> {
        let (running, edited) = (host_part(&self.file), host_part(edited));
        let changed =
            (running.keys().chain(edited.keys())).find(|k| running.get(*k) != edited.get(*k));
        match changed {
            Some(key) => Err(invalid(key.as_str(), "changes only with a restart")),
            None => Ok(()),
        }
    }

    fn definition_of(&self, id: u32) -> Option<toml::Value> {
        let vc = self.file.vrs.iter().find(|v| v.id == id)?;
        Some(file_definition(&self.file, vc))
    }
}

/// VR `id`'s definition in `edited`, if it has one.
fn edited_definition(edited: &Config, id: u32) -> Option<toml::Value> {
    let vc = edited.file.vrs.iter().find(|v| v.id == id)?;
    Some(file_definition(&edited.file, vc))
}

/// A VR as written with its vif ports: what decides whether it changed.
fn file_definition(file: &File, vc: &VrConfig) -> toml::Value {
    let vifs: Vec<&PortConfig> = vif_ports(file, vc).collect();
    toml::Value::try_from((vc, vifs)).expect("a VR serialises")
}

fn vif_ports<'f>(file: &'f File, vc: &'f VrConfig) -> impl Iterator<Item = &'f PortConfig> + 'f {
    vc.interfaces
        .iter()
        .filter_map(move |i| file.ports.iter().find(|p| p.name == i.vif))
}

/// Everything in `file` but its VRs and their vifs, by top-level key.
fn host_part(file: &File) -> toml::map::Map<String, toml::Value> {
    let mut host = file.clone();
    let vifs: Vec<&str> = (file.vrs.iter())
        .flat_map(|v| v.interfaces.iter().map(|i| i.vif.as_str()))
        .collect();
    host.ports.retain(|p| !vifs.contains(&p.name.as_str()));
    host.vrs.clear();
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
    let vr = edited.topology.vrs[v].clone();
    let uplinks = (vr.interfaces.iter())
        .map(|i| edited.topology.ports[i.uplink].name.clone())
        .collect();
    Addition {
        vifs: vif_ports(&edited.file, &raw).cloned().collect(),
        vr,
        raw,
        uplinks,
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
    fn anything_but_vrs_and_their_vifs_needs_a_restart() {
        let running = Running::new(&config(EXAMPLE));
        for (from, to, key) in [
            ("cores = [0]", "cores = [1]", "cores"),
            (
                "uplink = \"up0\"",
                "uplink = \"up0\"\nmtu = 9000",
                "segment",
            ),
            ("iface=up0", "iface=eth9", "port"),
        ] {
            let edited = config(&EXAMPLE.replace(from, to));
            let e = running.reload(&edited).unwrap_err().to_string();
            assert_eq!(e, format!("{key}: changes only with a restart"), "{to}");
        }
        let limits = config(&format!("{EXAMPLE}\n[limits]\nvr_slots = 8"));
        let e = running.reload(&limits).unwrap_err().to_string();
        assert_eq!(e, "limits: changes only with a restart");
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

    #[test]
    fn an_added_vr_is_placed_in_the_slots_it_is_given() {
        let edited = config(&format!("{EXAMPLE}{}", vr(3)));
        let plan = Running::new(&config(EXAMPLE)).reload(&edited).unwrap();
        let vr = plan.add[0].placed(&[17], |name| if name == "up0" { 4 } else { 99 });
        assert_eq!((vr.interfaces[0].vif, vr.interfaces[0].uplink), (17, 4));
        assert_eq!(vr.interfaces[0].segment, 0);
    }
}
