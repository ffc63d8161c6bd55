//! A data plane for the stages' unit tests, built from a config without the EAL:
//! segment `lan1` (uplink `up1`) holds interface `eth0` of VR 1 (10.0.1.1/24) and
//! of VR 2 (10.0.1.101/24); segment `lan2` (uplink `up2`) holds VR 1's `eth1`
//! (10.0.2.1/24). VR 1 routes 10.9.0.0/16 via 10.0.2.2.
use crate::config::Config;
use crate::dataplane::{Clock, Dataplane, VrRoutes};
use crate::dpdk::Rcu;
use std::sync::Arc;
use vrfwd_wire::MacAddr;

pub const VR1_LAN1_MAC: MacAddr = MacAddr([2, 0, 0, 0, 1, 1]);
pub const VR1_LAN2_MAC: MacAddr = MacAddr([2, 0, 0, 0, 1, 2]);
pub const VR2_LAN1_MAC: MacAddr = MacAddr([2, 0, 0, 0, 2, 1]);

const CONFIG: &str = r#"
    cores = [0]
    [[port]]
    name = "up1"
    device = "net_null0"
    [[port]]
    name = "up2"
    device = "net_null1"
    [[port]]
    name = "vif1.0"
    [[port]]
    name = "vif1.1"
    [[port]]
    name = "vif2.0"
    [[segment]]
    name = "lan1"
    uplink = "up1"
    [[segment]]
    name = "lan2"
    uplink = "up2"
    [[vr]]
    id = 1
    [[vr.interface]]
    name = "eth0"
    mac = "02:00:00:00:01:01"
    address = "10.0.1.1/24"
    segment = "lan1"
    vif = "vif1.0"
    [[vr.interface]]
    name = "eth1"
    mac = "02:00:00:00:01:02"
    address = "10.0.2.1/24"
    segment = "lan2"
    vif = "vif1.1"
    [[vr.route]]
    prefix = "10.9.0.0/16"
    via = "10.0.2.2"
    [[vr]]
    id = 2
    [[vr.interface]]
    name = "eth0"
    mac = "02:00:00:00:02:01"
    address = "10.0.1.101/24"
    segment = "lan1"
    vif = "vif2.0"
"#;

/// The data plane and what keeps it valid.
pub struct TestPlane {
    pub dp: Dataplane,
    pub routes: Vec<VrRoutes>,
}

pub fn dataplane() -> TestPlane {
    let config = Config::parse(CONFIG).expect("the test config");
    let rcu = Arc::new(Rcu::new(1).expect("an RCU variable"));
    let (dp, routes) = Dataplane::build(&config, Clock::new(0, 1), &rcu).expect("the data plane");
    TestPlane { dp, routes }
}
