//! The one way tests, testbeds and benchmarks assemble a configuration: a
//! [`Builder`] writes the TOML file vrfwd reads (the testbeds' scripts reach it
//! through the `vrfwd-config` tool) and checks it with the same validation vrfwd
//! runs at start. Its defaults are those of a test host: one lcore, no hugepages
//! or PCI, EAL files named per instance, quiet EAL logs, 8191 mbufs.
use super::{invalid, Config};
use super::{
    AttachConfig, AttachDriver, ConfigError, ControlConfig, File, FloodConfig, HostLimits,
    IdleConfig, InterfaceConfig, MempoolConfig, MetricsConfig, NeighborConfig, PortConfig,
    RouteConfig, SegmentConfig, TableSize, Timers, VrConfig,
};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use vrfwd_wire::MacAddr;

/// A configuration being assembled.
#[derive(Debug, Clone)]
pub struct Builder {
    file: File,
}

/// One VR being assembled, added with [`Builder::vr`].
#[derive(Debug, Clone)]
pub struct VrBuilder {
    vr: VrConfig,
}

impl Builder {
    /// A config for one lcore on `core`, its EAL files named `prefix`, its operator
    /// socket at `socket`.
    pub fn new(core: u16, prefix: &str, socket: impl Into<PathBuf>) -> Builder {
        let eal_args = [
            "--no-huge",
            "--no-shconf",
            "--no-pci",
            &format!("--file-prefix={prefix}"),
            "--log-level=lib.eal:warning",
        ];
        Builder {
            file: File {
                cores: vec![core],
                eal_args: eal_args.map(String::from).to_vec(),
                socket: socket.into(),
                socket_group: None,
                mempool: MempoolConfig {
                    mbufs: 8191,
                    ..MempoolConfig::default()
                },
                idle: IdleConfig::default(),
                timers: Timers::default(),
                flood: FloodConfig::default(),
                control: ControlConfig::default(),
                limits: HostLimits::default(),
                attach: AttachConfig::default(),
                metrics: MetricsConfig::default(),
                ports: Vec::new(),
                segments: Vec::new(),
                vrs: Vec::new(),
            },
        }
    }

    /// Adds an EAL argument.
    pub fn eal_arg(mut self, arg: &str) -> Self {
        self.file.eal_args.push(arg.to_owned());
        self
    }

    pub fn mbufs(mut self, mbufs: u32) -> Self {
        self.file.mempool.mbufs = mbufs;
        self
    }

    pub fn idle(mut self, spin_polls: u32, max_sleep_us: u32) -> Self {
        self.file.idle = IdleConfig {
            spin_polls,
            max_sleep_us,
        };
        self
    }

    /// Changes the `[control]` section.
    pub fn control(mut self, edit: impl FnOnce(&mut ControlConfig)) -> Self {
        edit(&mut self.file.control);
        self
    }

    /// Vifs attached at run time through a PMD (`driver`) with extra device
    /// arguments, instead of vrfwd's own sockets.
    pub fn attach_pmd(mut self, driver: AttachDriver, args: &str) -> Self {
        self.file.attach = AttachConfig {
            driver,
            args: args.to_owned(),
        };
        self
    }

    /// A port; `device` none for a vif attached at run time.
    pub fn port(mut self, name: &str, device: Option<&str>) -> Self {
        self.file.ports.push(PortConfig {
            name: name.to_owned(),
            device: device.map(str::to_owned),
        });
        self
    }

    pub fn segment(mut self, name: &str, uplink: &str) -> Self {
        self.file.segments.push(SegmentConfig {
            name: name.to_owned(),
            uplink: uplink.to_owned(),
            mtu: super::default_mtu(),
        });
        self
    }

    /// Sets the IP MTU of the segment added last.
    pub fn mtu(mut self, mtu: u16) -> Self {
        let segment = self.file.segments.last_mut();
        segment.expect("a segment is added before its MTU").mtu = mtu;
        self
    }

    pub fn vr(mut self, vr: VrBuilder) -> Self {
        self.file.vrs.push(vr.vr);
        self
    }

    /// Sets `key` (dotted, e.g. `control.hold_time_s`) to `value`, a TOML value
    /// (`90`, `true`, `"text"`, `["a"]`): what the builder has no method for.
    pub fn set(self, key: &str, value: &str) -> Result<Self, ConfigError> {
        let bad = |problem: String| invalid(key, problem);
        let value: toml::Table = toml::from_str(&format!("v = {value}"))
            .map_err(|e| bad(format!("{value:?} is not a TOML value: {e}")))?;
        let value = value.get("v").cloned().expect("parsed as v");
        let mut doc = toml::Table::try_from(&self.file).expect("a config serializes");
        let mut parts: Vec<&str> = key.split('.').collect();
        let last = parts.pop().ok_or_else(|| bad("no key".into()))?;
        let mut table = &mut doc;
        for part in parts {
            table = table
                .entry(part)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .ok_or_else(|| bad(format!("{part} is not a table")))?;
        }
        table.insert(last.to_owned(), value);
        let file = doc.try_into().map_err(ConfigError::Syntax)?;
        Ok(Builder { file })
    }

    /// The config as the TOML vrfwd reads.
    pub fn to_toml(&self) -> String {
        toml::to_string(&self.file).expect("a config serializes")
    }

    /// Checks the config as vrfwd will at start.
    pub fn build(&self) -> Result<Config, ConfigError> {
        self.file.clone().validate()
    }

    /// Checks the config and writes it to `path`, readable by its owner only (it
    /// may hold credentials).
    pub fn write(&self, path: &Path) -> Result<Config, ConfigError> {
        let config = self.build()?;
        let write = |source| ConfigError::Read {
            path: path.to_owned(),
            source,
        };
        let _ = std::fs::remove_file(path);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(write)?;
        std::io::Write::write_all(&mut f, self.to_toml().as_bytes()).map_err(write)?;
        Ok(config)
    }
}

impl VrBuilder {
    /// A VR with id `id`, no interface yet.
    pub fn new(id: u32) -> VrBuilder {
        VrBuilder {
            vr: VrConfig {
                id,
                name: None,
                table: TableSize::Auto,
                credential: None,
                standby: false,
                interfaces: Vec::new(),
                routes: Vec::new(),
                neighbors: Vec::new(),
            },
        }
    }

    pub fn name(mut self, name: &str) -> Self {
        self.vr.name = Some(name.to_owned());
        self
    }

    pub fn credential(mut self, credential: &str) -> Self {
        self.vr.credential = Some(credential.to_owned());
        self
    }

    pub fn standby(mut self, standby: bool) -> Self {
        self.vr.standby = standby;
        self
    }

    pub fn table(mut self, table: TableSize) -> Self {
        self.vr.table = table;
        self
    }

    /// An interface with address `address` on `segment`, reached through port `vif`.
    pub fn interface(
        mut self,
        name: &str,
        mac: MacAddr,
        address: Ipv4Net,
        segment: &str,
        vif: &str,
    ) -> Self {
        self.vr.interfaces.push(InterfaceConfig {
            name: name.to_owned(),
            mac,
            address,
            segment: segment.to_owned(),
            vif: vif.to_owned(),
            address6: Vec::new(),
            link_local: None,
            extra_macs: Vec::new(),
            extra_addresses: Vec::new(),
        });
        self
    }

    /// Gives the interface added last the IPv6 address and prefix `address`.
    pub fn address6(mut self, address: Ipv6Net) -> Self {
        self.last_interface().address6.push(address);
        self
    }

    /// Gives the interface added last the guest's link-local address `ll` (a
    /// guest that does not derive it from its MAC).
    pub fn link_local(mut self, ll: std::net::Ipv6Addr) -> Self {
        self.last_interface().link_local = Some(ll);
        self
    }

    /// Declares `mac` an extra MAC of the interface added last.
    pub fn extra_mac(mut self, mac: MacAddr) -> Self {
        self.last_interface().extra_macs.push(mac);
        self
    }

    /// Declares `address` an extra address of the interface added last.
    pub fn extra_address(mut self, address: Ipv4Addr) -> Self {
        self.last_interface().extra_addresses.push(address);
        self
    }

    fn last_interface(&mut self) -> &mut InterfaceConfig {
        self.vr
            .interfaces
            .last_mut()
            .expect("an interface is added before its extras")
    }

    /// A static route through `via`, on the interface whose subnet holds it.
    pub fn route(self, prefix: impl Into<IpNet>, via: impl Into<IpAddr>) -> Self {
        self.route_on(prefix, via, None)
    }

    /// A static route through `via` on `interface` (an IPv6 link-local gateway
    /// names its interface).
    pub fn route_on(
        mut self,
        prefix: impl Into<IpNet>,
        via: impl Into<IpAddr>,
        interface: Option<&str>,
    ) -> Self {
        self.vr.routes.push(RouteConfig {
            prefix: prefix.into(),
            via: via.into(),
            interface: interface.map(str::to_owned),
            weight: None,
        });
        self
    }

    /// A static neighbour, on the interface whose subnet holds it.
    pub fn neighbor(self, address: impl Into<IpAddr>, mac: MacAddr) -> Self {
        self.neighbor_on(address, mac, None)
    }

    /// A static neighbour on `interface` (an IPv6 link-local one names it).
    pub fn neighbor_on(
        mut self,
        address: impl Into<IpAddr>,
        mac: MacAddr,
        interface: Option<&str>,
    ) -> Self {
        self.vr.neighbors.push(NeighborConfig {
            address: address.into(),
            mac,
            interface: interface.map(str::to_owned),
        });
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PortRole;

    fn two_segments() -> Builder {
        Builder::new(0, "builder-test", "/run/test.sock")
            .port("up0", Some("net_null0"))
            .port("vif1", None)
            .segment("lan0", "up0")
            .vr(VrBuilder::new(1)
                .credential("red-secret-for-tests")
                .interface(
                    "eth0",
                    MacAddr([2, 0, 0, 0, 1, 1]),
                    "10.0.1.1/24".parse().unwrap(),
                    "lan0",
                    "vif1",
                )
                .route(
                    "10.9.0.0/16".parse::<Ipv4Net>().unwrap(),
                    "10.0.1.2".parse::<Ipv4Addr>().unwrap(),
                ))
    }

    #[test]
    fn what_it_writes_is_what_vrfwd_reads() {
        let b = two_segments().control(|c| c.hold_time_s = 5);
        let parsed = Config::parse(&b.to_toml()).expect("valid");
        assert_eq!(parsed.control.hold_time_s, 5);
        assert_eq!(parsed.mempool.mbufs, 8191);
        assert!(parsed
            .eal_args
            .contains(&"--file-prefix=builder-test".to_owned()));
        let vr = &parsed.topology.vrs[0];
        assert_eq!(vr.credential.as_deref(), Some("red-secret-for-tests"));
        assert_eq!(vr.routes[0].iface, 0);
        assert_eq!(
            parsed.topology.ports[1].role,
            PortRole::Vif {
                segment: 0,
                vr: 0,
                iface: 0
            }
        );
    }

    #[test]
    fn set_reaches_any_key_and_checks_the_value() {
        let b = two_segments()
            .set("control.accept_v1", "false")
            .unwrap()
            .set("control.peers", r#"["10.99.0.1"]"#)
            .unwrap()
            .set("timers.neighbor_timeout_s", "7")
            .unwrap();
        let c = b.build().unwrap();
        assert!(!c.control.accept_v1);
        assert_eq!(
            c.control.peers,
            ["10.99.0.1".parse::<std::net::IpAddr>().unwrap()]
        );
        assert_eq!(c.timers.neighbor_timeout_s, 7);
        for (key, value) in [
            ("control.hold_time_s", "\"ninety\""),
            ("control.bogus", "1"),
            ("control.hold_time_s", "9 9"),
            ("cores.x", "1"),
        ] {
            assert!(two_segments().set(key, value).is_err(), "{key} = {value}");
        }
    }

    #[test]
    fn build_refuses_what_vrfwd_would() {
        let e = two_segments()
            .segment("lan1", "nowhere")
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("segment[1].uplink"), "{e}");
    }
}
