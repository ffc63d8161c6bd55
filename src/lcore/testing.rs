//! A data plane for the stages' unit tests, built from a config without the EAL:
//! segment `lan1` (uplink `up1`) holds interface `eth0` of VR 1 (10.0.1.1/24) and
//! of VR 2 (10.0.1.101/24); segment `lan2` (uplink `up2`) holds VR 1's `eth1`
//! (10.0.2.1/24). VR 1 routes 10.9.0.0/16 via 10.0.2.2; its `eth0` declares a
//! VRRP MAC and address (10.0.1.254). VR 1 is dual-stack: `eth0` holds
//! 2001:db8:1::1/64, `eth1` 2001:db8:2::1/64, and it routes 2001:db8:9::/48 via
//! fe80::2 on `eth1`.
use crate::config::{Builder, Config, VrBuilder};
use crate::dataplane::{Clock, Dataplane, VrRoutes};
use crate::dpdk::Rcu;
use std::net::Ipv4Addr;
use std::sync::Arc;
use vrfwd_wire::MacAddr;

pub const VR1_LAN1_MAC: MacAddr = MacAddr([2, 0, 0, 0, 1, 1]);
pub const VR1_LAN2_MAC: MacAddr = MacAddr([2, 0, 0, 0, 1, 2]);
pub const VR2_LAN1_MAC: MacAddr = MacAddr([2, 0, 0, 0, 2, 1]);
pub const VRRP_MAC: MacAddr = MacAddr([0, 0, 0x5e, 0, 1, 7]);
pub const VRRP_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 254);

/// The data plane and what keeps it valid.
pub struct TestPlane {
    pub dp: Dataplane,
    pub routes: Vec<VrRoutes>,
}

pub fn config() -> Config {
    let net = |s: &str| s.parse().expect("a prefix");
    let net6 = |s: &str| s.parse::<ipnet::Ipv6Net>().expect("a prefix");
    Builder::new(0, "lcore-test", "/run/vrfwd-lcore-test.sock")
        .port("up1", Some("net_null0"))
        .port("up2", Some("net_null1"))
        .port("vif1.0", None)
        .port("vif1.1", None)
        .port("vif2.0", None)
        .segment("lan1", "up1")
        .segment("lan2", "up2")
        .vr(VrBuilder::new(1)
            .interface("eth0", VR1_LAN1_MAC, net("10.0.1.1/24"), "lan1", "vif1.0")
            .extra_mac(VRRP_MAC)
            .extra_address(VRRP_ADDRESS)
            .address6(net6("2001:db8:1::1/64"))
            .interface("eth1", VR1_LAN2_MAC, net("10.0.2.1/24"), "lan2", "vif1.1")
            .address6(net6("2001:db8:2::1/64"))
            .route(
                net("10.9.0.0/16"),
                "10.0.2.2".parse::<Ipv4Addr>().expect("an address"),
            )
            .route_on(
                net6("2001:db8:9::/48"),
                "fe80::2".parse::<std::net::Ipv6Addr>().expect("an address"),
                Some("eth1"),
            ))
        .vr(VrBuilder::new(2).interface(
            "eth0",
            VR2_LAN1_MAC,
            net("10.0.1.101/24"),
            "lan1",
            "vif2.0",
        ))
        .build()
        .expect("the test config")
}

pub fn dataplane() -> TestPlane {
    let config = config();
    let rcu = Arc::new(Rcu::new(1).expect("an RCU variable"));
    let (dp, routes) = Dataplane::build(&config, Clock::new(0, 1), &rcu, &|_| {
        vrfwd_wire::MacAddr::default()
    })
    .expect("the data plane");
    TestPlane { dp, routes }
}
