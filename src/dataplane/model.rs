//! The published model: lcores read the current [`Dataplane`] inside their RCU
//! read sections; control threads take a reference to it; a run-time change
//! publishes a new one and returns once no lcore can still read the old.
use super::Dataplane;
use crate::dpdk::{Rcu, RcuCell, ReadSection};
use std::sync::{Arc, Mutex, MutexGuard};

/// The current model, for lcores and control threads alike.
pub struct Model {
    /// What lcores read.
    lcores: RcuCell<Dataplane>,
    /// The same model, for control threads (which are no RCU readers).
    current: Mutex<Arc<Dataplane>>,
    /// Held by whoever changes the model, from reading it to publishing the
    /// next, so that changes never overwrite each other.
    changing: Mutex<()>,
}

/// The right to change the model, held for one change.
pub struct Change<'m> {
    model: &'m Model,
    _held: MutexGuard<'m, ()>,
}

impl Model {
    pub fn new(dp: Dataplane, rcu: Arc<Rcu>) -> Model {
        let dp = Arc::new(dp);
        Model {
            lcores: RcuCell::new(Arc::clone(&dp), rcu),
            current: Mutex::new(dp),
            changing: Mutex::new(()),
        }
    }

    /// The model an lcore forwards with until its next quiescent state.
    #[inline(always)]
    pub fn read<'a>(&'a self, section: &'a ReadSection<'_>) -> &'a Dataplane {
        self.lcores.read(section)
    }

    /// The current model, for a control thread.
    pub fn current(&self) -> Arc<Dataplane> {
        Arc::clone(&self.current.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Waits for any other change to finish and starts one.
    pub fn change(&self) -> Change<'_> {
        Change {
            model: self,
            _held: self.changing.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }
}

impl Change<'_> {
    /// The model this change starts from.
    pub fn current(&self) -> Arc<Dataplane> {
        self.model.current()
    }

    /// Publishes `dp`; returns once no lcore reads the model it replaced.
    pub fn publish(&self, dp: Dataplane) {
        let dp = Arc::new(dp);
        *self.model.current.lock().unwrap_or_else(|e| e.into_inner()) = Arc::clone(&dp);
        drop(self.model.lcores.replace(dp));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::PortRole;
    use crate::lcore::testing::{self, VR1_LAN1_MAC, VR2_LAN1_MAC};

    #[test]
    fn a_vr_removed_and_added_again_leaves_the_others_as_they_were() {
        let dp = testing::dataplane().dp;
        let vif = dp.vrs[1].interfaces[0].vif;
        let without = dp.without_vr(1);
        assert!(Arc::ptr_eq(&without.vrs[0], &dp.vrs[0]), "VR 1 is shared");
        assert!(without.vrs.get(1).is_none());
        assert!(without.ports.get(vif).is_none() && without.port_names.get(vif).is_none());
        let lan1 = &without.segments[0];
        assert!(lan1.vr_for_mac(VR2_LAN1_MAC).is_none());
        assert_eq!(lan1.vr_for_mac(VR1_LAN1_MAC).map(|m| m.vr), Some(0));
        assert!(!lan1.ports.contains(&vif));

        // VR 2 again, in slot 5 with its vif in port slot 9.
        let mut vc = testing::config().topology.vrs[1].clone();
        vc.interfaces[0].vif = 9;
        let (with, routes) = without.with_vr(5, &vc, &["vif9".into()]).unwrap();
        assert!(Arc::ptr_eq(&with.vrs[0], &dp.vrs[0]));
        assert_eq!(with.vrs[5].id, 2);
        let vm = with.segments[0].vr_for_mac(VR2_LAN1_MAC).unwrap();
        assert_eq!((vm.vr, vm.vif), (5, 9));
        assert!(with.segments[0].ports.contains(&9));
        let role = PortRole::Vif {
            segment: 0,
            vr: 5,
            iface: 0,
        };
        assert_eq!((with.ports[9], with.port_names[9].as_str()), (role, "vif9"));
        assert!(!routes.system.v4.is_empty(), "its own routes come with it");
    }

    #[test]
    fn a_segment_added_and_removed_brings_its_uplink_and_mac() {
        let dp = testing::dataplane().dp;
        let mac = vrfwd_wire::MacAddr([2, 0, 0, 0, 9, 9]);
        let with = dp.with_segment(7, "lan9", (30, "up9"), mac);
        assert_eq!(with.segments[7].name, "lan9");
        assert_eq!(with.segments[7].ports, [30]);
        assert_eq!(with.ports[30], PortRole::Uplink { segment: 7 });
        assert_eq!(with.port_names[30], "up9");
        assert_eq!(with.uplink_macs[7], mac);
        assert_eq!(with.uplink_macs[0], dp.uplink_macs[0], "lan1 as it was");
        assert_eq!(with.segments[0].vr_macs, dp.segments[0].vr_macs);
        let without = with.without_segment(7);
        assert!(without.segments.get(7).is_none() && without.ports.get(30).is_none());
        assert_eq!(without.uplink_macs[7], vrfwd_wire::MacAddr::default());
    }

    #[test]
    fn a_vr_on_a_segment_after_vacant_slots_is_that_segments_member() {
        let dp = testing::dataplane().dp;
        let mac = vrfwd_wire::MacAddr([2, 0, 0, 0, 9, 9]);
        // Slots 2–4 and 6 vacant, segments in 5 and 7.
        let dp = dp.with_segment(5, "lan5", (30, "up5"), mac);
        let dp = dp.with_segment(7, "lan7", (31, "up7"), mac);
        let mut vc = testing::config().topology.vrs[1].clone();
        (
            vc.interfaces[0].segment,
            vc.interfaces[0].uplink,
            vc.interfaces[0].vif,
        ) = (7, 31, 32);
        let (dp, _) = dp.without_vr(1).with_vr(1, &vc, &["vif32".into()]).unwrap();
        let members = |s: usize| {
            dp.segments[s]
                .vr_macs
                .iter()
                .map(|m| m.vr)
                .collect::<Vec<_>>()
        };
        assert_eq!(members(7), [1], "VR 2 on lan7");
        assert!(members(5).is_empty());
        assert_eq!(members(0), [0], "VR 1 alone on lan1 now");
    }

    #[test]
    #[should_panic(expected = "a segment without VRs")]
    fn a_segment_with_a_vr_on_it_is_not_removed() {
        let dp = testing::dataplane().dp;
        let _ = dp.without_segment(0);
    }

    #[test]
    fn lcores_read_the_published_model_and_control_threads_the_same() {
        let rcu = Arc::new(Rcu::new(1).unwrap());
        let model = Model::new(testing::dataplane().dp, Arc::clone(&rcu));
        let change = model.change();
        change.publish(change.current().without_vr(1));
        drop(change);
        let reader = rcu.reader(0).unwrap();
        let section = reader.section();
        assert!(model.read(&section).vrs.get(1).is_none());
        assert!(model.current().vrs.get(1).is_none());
        assert!(model.current().vrs.get(0).is_some());
    }
}
