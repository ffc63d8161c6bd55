//! The operator's TOML configuration: parsed with serde, then validated into a
//! [`Config`] whose ports, segments and VRs are resolved ([`Topology`]: indices
//! instead of names, subnets computed), so that a bad file fails at start with the
//! key and the problem named, and nothing after looks a name up again. Owns no
//! runtime state; `crate::dataplane` builds the running model from it.
mod builder;
mod reload;
mod topology;

pub use builder::{Builder, VrBuilder};
pub use reload::{Addition, Plan, Running, SegmentAddition};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
pub use topology::{
    gateway_interface, Interface, NoInterface, Port, PortRole, Segment, StaticNeighbor, StaticPath,
    StaticRoute, Topology, Vr,
};
use vrfwd_wire::MacAddr;

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// TOML syntax, an unknown key or a value of the wrong type.
    #[error("{0}")]
    Syntax(#[from] toml::de::Error),
    /// A value is well-formed but wrong.
    #[error("{key}: {problem}")]
    Invalid { key: String, problem: String },
}

/// The shortest credential accepted: 16 characters (a guessed one is throttled,
/// but only a long one is out of reach).
pub const MIN_CREDENTIAL_LEN: usize = 16;

fn check_credential(key: &str, credential: Option<&str>) -> Result<(), ConfigError> {
    match credential {
        Some("") => Err(invalid(key, "is empty")),
        Some(c) if c.chars().count() < MIN_CREDENTIAL_LEN => Err(invalid(
            key,
            format!("is shorter than {MIN_CREDENTIAL_LEN} characters"),
        )),
        _ => Ok(()),
    }
}

fn invalid(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::invalid(key, problem)
}

impl ConfigError {
    /// `key`'s value is well-formed but wrong: `problem`.
    pub fn invalid(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

/// The whole configuration, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// CPU cores to run forwarding lcores on, one lcore each; the first is EAL's main lcore.
    pub cores: Vec<u16>,
    /// Extra EAL arguments (e.g. `--no-huge`, `--in-memory`, `--file-prefix=x`).
    pub eal_args: Vec<String>,
    /// The operator socket `vrfwd stats` talks to.
    pub socket: PathBuf,
    /// A group (name or number) whose members may use the operator socket besides
    /// root; without one the socket is mode 0600.
    pub socket_group: Option<String>,
    pub mempool: MempoolConfig,
    pub idle: IdleConfig,
    pub timers: Timers,
    pub flood: FloodConfig,
    pub control: ControlConfig,
    pub limits: HostLimits,
    pub attach: AttachConfig,
    pub metrics: MetricsConfig,
    /// Ports, segments and VRs.
    pub topology: Topology,
    /// The file as written, which a reload compares with the edited one.
    file: File,
}

/// How many VRs, ports and segments the host can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slots {
    pub vrs: usize,
    pub ports: usize,
    pub segments: usize,
}

/// The file as written: names not yet resolved.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct File {
    cores: Vec<u16>,
    #[serde(default)]
    eal_args: Vec<String>,
    #[serde(default = "default_socket")]
    socket: PathBuf,
    #[serde(default)]
    socket_group: Option<String>,
    #[serde(default)]
    mempool: MempoolConfig,
    #[serde(default)]
    idle: IdleConfig,
    #[serde(default)]
    timers: Timers,
    #[serde(default)]
    flood: FloodConfig,
    #[serde(default)]
    control: ControlConfig,
    #[serde(default)]
    limits: HostLimits,
    #[serde(default)]
    attach: AttachConfig,
    #[serde(default)]
    metrics: MetricsConfig,
    #[serde(rename = "port", default)]
    ports: Vec<PortConfig>,
    #[serde(rename = "segment", default)]
    segments: Vec<SegmentConfig>,
    #[serde(rename = "vr", default)]
    vrs: Vec<VrConfig>,
}

fn default_socket() -> PathBuf {
    PathBuf::from("/run/vrfwd.sock")
}

impl Config {
    /// This config as a successor taking over a running vrfwd runs it
    /// (`crate::upgrade`): every VR starts in standby, for the running one's
    /// clones to fill, and those clones come from the loopback address.
    pub fn for_successor(&self) -> Config {
        let mut c = self.clone();
        for vr in &mut c.topology.vrs {
            vr.standby = true;
        }
        let loopback = std::net::IpAddr::from(std::net::Ipv4Addr::LOCALHOST);
        if !c.control.peers.contains(&loopback) {
            c.control.peers.push(loopback);
        }
        c
    }

    /// The places for VRs, ports and segments: what `[limits]` asks, and never
    /// fewer than the file lists.
    pub fn slots(&self) -> Slots {
        Slots {
            vrs: self.limits.vr_slots.max(self.topology.vrs.len()),
            ports: self.limits.port_slots.max(self.topology.ports.len()),
            segments: (self.limits.segment_slots).max(self.topology.segments.len()),
        }
    }

    /// The group id of `socket_group`: a number, or a name from /etc/group.
    pub fn socket_gid(&self) -> Result<Option<u32>, ConfigError> {
        group_id(self.socket_group.as_deref())
    }
}

fn group_id(group: Option<&str>) -> Result<Option<u32>, ConfigError> {
    let Some(group) = group else {
        return Ok(None);
    };
    if let Ok(gid) = group.parse() {
        return Ok(Some(gid));
    }
    let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
    groups
        .lines()
        .find_map(|line| {
            let mut fields = line.split(':');
            (fields.next() == Some(group))
                .then(|| fields.nth(1).and_then(|gid| gid.parse().ok()))
                .flatten()
        })
        .map(Some)
        .ok_or_else(|| invalid("socket_group", format!("no group {group:?}")))
}

/// Packet-buffer pool.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MempoolConfig {
    pub mbufs: u32,
    pub cache: u32,
}

impl Default for MempoolConfig {
    fn default() -> Self {
        MempoolConfig {
            mbufs: 16383,
            cache: 256,
        }
    }
}

/// Idle back-off: after `spin_polls` empty polls in a row an lcore sleeps, doubling
/// the sleep up to `max_sleep_us`, so an idle instance does not hold a core.
/// `max_sleep_us = 0` polls without ever sleeping (dedicated cores).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdleConfig {
    pub spin_polls: u32,
    pub max_sleep_us: u32,
}

impl Default for IdleConfig {
    fn default() -> Self {
        IdleConfig {
            spin_polls: 256,
            max_sleep_us: 200,
        }
    }
}

/// Host-wide budgets that no VR may push the host past.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostLimits {
    /// Route-table memory of all VRs together, both copies of each counted with
    /// their whole first level (a compact pair ≈ 0.5 MiB plus 128 B per group in
    /// use, a wide one ≈ 128 MiB);
    /// a batch that would pass it is refused with `limit`.
    pub table_memory_mib: usize,
    /// Memory the groups of one copy of a compact table may take before the VR
    /// moves to a wide table. The default, 64 MiB, is about what a wide table's
    /// first level holds resident, so widening costs about as much as staying;
    /// lower widens sooner (one-load lookups for mid-size VRs, at ≈ 100 MiB each).
    pub compact_table_kib: usize,
    /// VRs the host can hold, those added at run time included (never fewer than
    /// the file lists): each place costs ≈ 0.2 KiB of counters per lcore.
    pub vr_slots: usize,
    /// Ports likewise (≈ 0.4 KiB per lcore each: counters and a TX buffer).
    pub port_slots: usize,
    /// Segments likewise (≈ 0.2 KiB per lcore each).
    pub segment_slots: usize,
}

impl Default for HostLimits {
    fn default() -> Self {
        HostLimits {
            table_memory_mib: 8192,
            compact_table_kib: 64 << 10,
            vr_slots: 64,
            port_slots: 256,
            segment_slots: 16,
        }
    }
}

impl HostLimits {
    /// Groups a compact table may hold (at least one).
    pub fn compact_groups(&self) -> u32 {
        let groups = self.compact_table_kib.saturating_mul(1024) / crate::lpm::GROUP_BYTES;
        groups.clamp(1, crate::lpm::MAX_GROUPS as usize) as u32
    }
}

/// The Prometheus endpoint (docs/operating.md, "Metrics"): off unless
/// `enabled` or `listen` is set; on loopback when enabled without an address.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    pub enabled: bool,
    pub listen: Option<std::net::SocketAddr>,
}

impl MetricsConfig {
    /// Where the endpoint listens by default: loopback, the port the
    /// Prometheus project's registry lists for no one else.
    pub const DEFAULT_LISTEN: std::net::SocketAddr = std::net::SocketAddr::V4(
        std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 9469),
    );

    /// Where the endpoint listens, if it is on.
    pub fn address(&self) -> Option<std::net::SocketAddr> {
        match (self.enabled, self.listen) {
            (_, Some(listen)) => Some(listen),
            (true, None) => Some(Self::DEFAULT_LISTEN),
            (false, None) => None,
        }
    }
}

/// Storm control: broadcast and multicast frames a port may send into its
/// segment (each is copied to every other port), in frames per second with a
/// burst allowance, host-wide for the port (shared out among the lcores). Past
/// that they are dropped and counted on the port. 0 pps: no limit.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FloodConfig {
    /// Each vif (a guest's broadcasts: ARP, DHCP, routing-protocol hellos).
    pub vif_pps: u32,
    pub vif_burst: u32,
    /// Each uplink (the LAN's broadcasts, copied to every vif of the segment).
    pub uplink_pps: u32,
    pub uplink_burst: u32,
}

impl Default for FloodConfig {
    fn default() -> Self {
        FloodConfig {
            vif_pps: 1000,
            vif_burst: 1000,
            uplink_pps: 0,
            uplink_burst: 1000,
        }
    }
}

/// A port's flood limit: (frames per second, burst), none if unlimited.
pub type FloodLimit = Option<(u32, u32)>;

impl FloodConfig {
    /// A vif's limit and an uplink's.
    pub fn limits(&self) -> (FloodLimit, FloodLimit) {
        let limit = |pps: u32, burst: u32| (pps > 0).then_some((pps, burst.max(1)));
        (
            limit(self.vif_pps, self.vif_burst),
            limit(self.uplink_pps, self.uplink_burst),
        )
    }
}

/// Timers.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timers {
    /// TX buffers are sent at the latest this long after the first packet entered them.
    pub tx_drain_us: u32,
    /// A learned neighbour not confirmed by ARP for this long is unresolved again.
    pub neighbor_timeout_s: u32,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            tx_drain_us: 100,
            neighbor_timeout_s: 300,
        }
    }
}

/// The route-protocol listener and its limits (docs/protocol.md).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlConfig {
    /// Where guests (and migrating hosts) connect; no listener when unset.
    pub listen: Option<std::net::SocketAddr>,
    /// How long a VR keeps forwarding with its last table after its session drops.
    pub hold_time_s: u32,
    /// A session that completes no stanza for this long is closed.
    pub idle_timeout_s: u32,
    /// The host sends a keepalive after this long without sending anything.
    pub keepalive_s: u32,
    /// A peer that does not take our bytes for this long is closed.
    pub write_timeout_s: u32,
    pub max_stanza_bytes: usize,
    pub max_routes_per_vr: usize,
    /// Stanzas per second per session; faster peers are slowed down.
    pub max_stanzas_per_s: u32,
    pub max_sessions_per_source: usize,
    /// Connections open at once, host-wide (authenticated or not).
    pub max_connections: usize,
    /// A connection that has not completed `hello` this long after it opened is
    /// closed, whatever it sends.
    pub hello_timeout_s: u32,
    /// Failed `hello`s one source address may make per minute; past that its
    /// `hello`s are refused unchecked until the minute is over.
    pub max_auth_failures_per_min: u32,
    /// The secret hosts present to clone a VR here before it migrates in
    /// (docs/migration.md); no VR can migrate in or out without one.
    pub host_credential: Option<String>,
    /// The addresses other hosts clone VRs from: the host credential is
    /// accepted from these only (never from a guest).
    pub peers: Vec<std::net::IpAddr>,
    /// Accept version-1 peers, whose `hello` carries the credential in clear
    /// text (version 2 proves it over a nonce). Turn off once every agent speaks 2.
    pub accept_v1: bool,
    /// How long a VR that migrated away keeps forwarding what still reaches this
    /// host before it is removed here.
    pub drain_ms: u32,
    /// How long a VR being cloned stays quiet after an announcement of its MAC
    /// on an uplink, waiting for the destination's word, before it is active again.
    pub quiet_ms: u32,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            listen: None,
            hold_time_s: 90,
            idle_timeout_s: 30,
            keepalive_s: 10,
            write_timeout_s: 10,
            max_stanza_bytes: 1 << 20,
            max_routes_per_vr: 2_000_000,
            max_stanzas_per_s: 10_000,
            max_sessions_per_source: 16,
            max_connections: 2048,
            hello_timeout_s: 5,
            max_auth_failures_per_min: 10,
            host_credential: None,
            peers: Vec::new(),
            accept_v1: true,
            drain_ms: 2000,
            quiet_ms: 2000,
        }
    }
}

/// A DPDK port.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct PortConfig {
    pub name: String,
    /// A DPDK device string, e.g. `net_af_packet0,iface=vif3.0`, or
    /// `socket:NETDEV`: kernel netdev NETDEV through vrfwd's own AF_PACKET
    /// sockets, which a new vrfwd can take over (docs/operating.md,
    /// "Upgrading"). A vif without one is attached at run time (`vrfwd ctl
    /// attach`, e.g. by Xen's vif hotplug script when the guest is created or
    /// migrates in).
    #[serde(default)]
    pub device: Option<String>,
}

impl PortConfig {
    fn device_name(&self) -> Option<&str> {
        self.device.as_deref().map(device_name)
    }
}

/// The DPDK device name of a device string (before the first comma), which names
/// the ethdev; for sockets, the whole string.
fn device_name(device: &str) -> &str {
    device.split(',').next().unwrap_or_default()
}

/// The kernel netdev of a `socket:NETDEV` device string; none for a DPDK device.
pub fn socket_netdev(device: &str) -> Option<&str> {
    device.strip_prefix("socket:")
}

/// How a vif is attached at run time: vrfwd's own AF_PACKET sockets (no DPDK
/// port, so no port limit: docs/architecture.md, "Vifs"), or a PMD that opens
/// the kernel netdev as a DPDK port.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AttachConfig {
    pub driver: AttachDriver,
    /// Extra device arguments for a PMD, e.g. `framecnt=4096` (af_packet's ring
    /// size); none for sockets.
    pub args: String,
}

/// What opens a kernel netdev as a vif.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AttachDriver {
    /// vrfwd's own AF_PACKET sockets, outside DPDK's port table.
    #[default]
    Socket,
    AfPacket,
    AfXdp,
}

impl AttachConfig {
    /// The `--vdev` string that opens kernel netdev `netdev` as port `index` with
    /// `queues` queue pairs (one per lcore); None when sockets open it.
    pub fn device(&self, index: usize, netdev: &str, queues: u16) -> Option<String> {
        let mut d = match self.driver {
            AttachDriver::Socket => return None,
            AttachDriver::AfPacket => {
                format!("net_af_packet_vif{index},iface={netdev},qpairs={queues}")
            }
            AttachDriver::AfXdp => {
                format!("net_af_xdp_vif{index},iface={netdev},start_queue=0,queue_count={queues}")
            }
        };
        if !self.args.is_empty() {
            d.push(',');
            d.push_str(&self.args);
        }
        Some(d)
    }
}

/// An L2 domain: one uplink port and the vif ports of the VR interfaces in it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct SegmentConfig {
    pub name: String,
    pub uplink: String,
    /// The IP MTU of the segment's links (1280–9216, default 1500): a packet
    /// the fast path would forward onto it that is larger goes to its VR's
    /// guest, whose kernel answers with ICMP fragmentation needed or packet too
    /// big (or fragments it), as the router it is.
    #[serde(default = "default_mtu")]
    pub mtu: u16,
}

fn default_mtu() -> u16 {
    1500
}

/// The MTUs a segment may have: IPv6's minimum link MTU to a jumbo frame's.
pub const MTUS: std::ops::RangeInclusive<u16> = 1280..=9216;

/// Which first level a VR's table uses. `auto` (the default) starts compact
/// (memory follows the routes) and widens when the compact table is full, at
/// about equal memory; `wide` gives one-load lookups up to /24 (l3fwd's
/// `rte_lpm` class) for ≈ 100 MiB resident per VR whatever its size.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum TableSize {
    #[default]
    Auto,
    Compact,
    Wide,
}

/// A virtual router.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct VrConfig {
    pub id: u32,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub table: TableSize,
    /// The secret a guest's agent presents in `hello`; no session without one.
    #[serde(default)]
    pub credential: Option<String>,
    /// The VR's guest runs on another host: it waits here, without a fast path,
    /// until a host clones it and its guest announces itself (docs/migration.md).
    #[serde(default)]
    pub standby: bool,
    #[serde(rename = "interface", default)]
    pub interfaces: Vec<InterfaceConfig>,
    #[serde(rename = "route", default)]
    pub routes: Vec<RouteConfig>,
    #[serde(rename = "neighbor", default)]
    pub neighbors: Vec<NeighborConfig>,
}

/// A VR interface: the guest's NIC on one segment.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct InterfaceConfig {
    pub name: String,
    pub mac: MacAddr,
    /// The VR's address and prefix on this interface, e.g. `10.0.1.1/24`.
    pub address: Ipv4Net,
    /// The VR's IPv6 addresses and prefixes on this interface (global or
    /// unique-local), e.g. `2001:db8:1::1/64`. Its link-local address is derived
    /// from its MAC (EUI-64), as the guest's kernel derives it by default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub address6: Vec<Ipv6Net>,
    /// The guest's link-local address on this interface, for a guest that does
    /// not derive it from its MAC (stable-privacy addresses, RFC 7217:
    /// `addr_gen_mode` 2 or 3, NetworkManager's default): only this address may
    /// speak for the VR in neighbour discovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_local: Option<Ipv6Addr>,
    pub segment: String,
    /// The port that reaches the guest's NIC (its vif or tap).
    pub vif: String,
    /// Further MACs the guest may send from on this interface (e.g. a VRRP
    /// virtual router's 00:00:5e:00:01:xx); frames to them are switched to its vif.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_macs: Vec<MacAddr>,
    /// Further addresses of the guest on this interface's subnet (e.g. a VRRP
    /// virtual address): it may name them in ARP; the fast path hands what is
    /// addressed to them to the guest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_addresses: Vec<Ipv4Addr>,
}

/// A static route (until the guest's agent feeds routes), IPv4 or IPv6. A
/// prefix listed with several gateways is one multipath route over them.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RouteConfig {
    pub prefix: IpNet,
    pub via: IpAddr,
    /// The interface of the gateway: needed for an IPv6 link-local one, else
    /// the interface whose subnet holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// This path's share of a multipath route's flows against its other
    /// paths' (1 to 256; 1 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

/// A static neighbour, IPv4 or IPv6.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct NeighborConfig {
    pub address: IpAddr,
    pub mac: MacAddr,
    /// Its interface: needed for an IPv6 link-local neighbour, else the
    /// interface whose subnet holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
}

/// Most VRs, interfaces per VR and ports one instance handles.
pub const MAX_VRS: usize = 1024;
pub const MAX_INTERFACES: usize = 64;
pub const MAX_PORTS: usize = 4096;

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let read = |source| ConfigError::Read {
            path: path.to_owned(),
            source,
        };
        let text = std::fs::read_to_string(path).map_err(read)?;
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(path).map_err(read)?.permissions(),
        );
        let config = Config::parse(&text)?;
        if mode & 0o077 != 0 && config.holds_credentials() {
            tracing::warn!(
                "{} holds credentials and other users may read it (mode {:o}): chmod 600 it",
                path.display(),
                mode & 0o777
            );
        }
        Ok(config)
    }

    /// Whether the file names any credential.
    fn holds_credentials(&self) -> bool {
        self.control.host_credential.is_some()
            || self.topology.vrs.iter().any(|v| v.credential.is_some())
    }

    /// Parses and validates configuration text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let file: File = toml::from_str(text)?;
        file.validate()
    }
}

impl File {
    /// The configuration, checked whole: the first problem is an error naming its key.
    fn validate(self) -> Result<Config, ConfigError> {
        if self.cores.is_empty() {
            return Err(invalid("cores", "at least one core is needed"));
        }
        if self.cores.iter().collect::<HashSet<_>>().len() != self.cores.len() {
            return Err(invalid("cores", "a core is listed twice"));
        }
        group_id(self.socket_group.as_deref())?;
        self.control.validate()?;
        if self.attach.driver == AttachDriver::Socket && !self.attach.args.is_empty() {
            return Err(invalid(
                "attach.args",
                "device arguments are for a PMD (driver = \"af_packet\" or \"af_xdp\"), not sockets",
            ));
        }
        if self.mempool.mbufs < 1024 {
            return Err(invalid("mempool.mbufs", "at least 1024 mbufs are needed"));
        }
        let l = &self.limits;
        if l.vr_slots > MAX_VRS || l.port_slots > MAX_PORTS || l.segment_slots > MAX_PORTS {
            return Err(invalid(
                "limits",
                format!("vr_slots is at most {MAX_VRS}, port_slots and segment_slots {MAX_PORTS}"),
            ));
        }
        let topology = Topology::resolve(&self.ports, &self.segments, &self.vrs)?;
        let file = self.clone();
        Ok(Config {
            cores: self.cores,
            eal_args: self.eal_args,
            socket: self.socket,
            socket_group: self.socket_group,
            mempool: self.mempool,
            idle: self.idle,
            timers: self.timers,
            flood: self.flood,
            control: self.control,
            limits: self.limits,
            attach: self.attach,
            metrics: self.metrics,
            topology,
            file,
        })
    }
}

impl ControlConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.idle_timeout_s == 0
            || self.keepalive_s == 0
            || self.keepalive_s >= self.idle_timeout_s
        {
            return Err(invalid(
                "control.keepalive_s",
                "needs 0 < keepalive_s < idle_timeout_s",
            ));
        }
        if self.max_stanza_bytes < 1024
            || self.max_stanzas_per_s == 0
            || self.max_sessions_per_source == 0
            || self.max_connections == 0
            || self.hello_timeout_s == 0
        {
            return Err(invalid(
                "control",
                "limits must allow at least one 1 KiB stanza, one connection and a hello",
            ));
        }
        check_credential("control.host_credential", self.host_credential.as_deref())?;
        if self.host_credential.is_some() && self.peers.is_empty() {
            return Err(invalid(
                "control.peers",
                "host_credential needs the peer hosts' addresses (clones are accepted from them only)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const EXAMPLE: &str = r#"
        cores = [0]
        eal_args = ["--no-huge", "--in-memory"]
        [[port]]
        name = "up0"
        device = "net_af_packet0,iface=up0"
        [[port]]
        name = "vif1"
        device = "net_af_packet1,iface=vif1"
        [[segment]]
        name = "lan0"
        uplink = "up0"
        [[vr]]
        id = 1
        [[vr.interface]]
        name = "eth0"
        mac = "02:00:00:00:01:01"
        address = "10.0.1.1/24"
        segment = "lan0"
        vif = "vif1"
        [[vr.route]]
        prefix = "10.9.0.0/16"
        via = "10.0.1.2"
    "#;

    #[test]
    fn a_prefix_with_several_gateways_is_a_multipath_route() {
        let c = Config::parse(&EXAMPLE.replace(
            "via = \"10.0.1.2\"",
            "via = \"10.0.1.2\"\n[[vr.route]]\nprefix = \"10.9.0.0/16\"\nvia = \"10.0.1.3\"\nweight = 3",
        ))
        .unwrap();
        let routes = &c.topology.vrs[0].routes;
        assert_eq!(routes.len(), 2);
        assert_eq!((routes[0].weight, routes[1].weight), (1, 3));
        assert_eq!(routes[0].path.prefix(), routes[1].path.prefix());
    }

    #[test]
    fn a_vr_whose_guest_runs_elsewhere_starts_in_standby() {
        assert!(!Config::parse(EXAMPLE).unwrap().topology.vrs[0].standby);
        let c = Config::parse(&EXAMPLE.replace("[[vr]]", "[[vr]]\nstandby = true")).unwrap();
        assert!(c.topology.vrs[0].standby);
    }

    #[test]
    fn an_interface_may_declare_extra_macs_and_addresses() {
        let c = Config::parse(&EXAMPLE.replace(
            "vif = \"vif1\"",
            "vif = \"vif1\"\nextra_macs = [\"00:00:5e:00:01:07\"]\nextra_addresses = [\"10.0.1.254\"]",
        ))
        .unwrap();
        let ifc = &c.topology.vrs[0].interfaces[0];
        let vrrp: MacAddr = "00:00:5e:00:01:07".parse().unwrap();
        assert!(ifc.sends_from(ifc.mac) && ifc.sends_from(vrrp));
        assert!(!ifc.sends_from("02:00:00:00:01:02".parse().unwrap()));
        assert!(ifc.owns(ifc.address) && ifc.owns("10.0.1.254".parse().unwrap()));
        assert!(!ifc.owns("10.0.1.253".parse().unwrap()));
    }

    #[test]
    fn dual_stack_interfaces_routes_and_neighbours() {
        let dual = EXAMPLE.replace(
            "vif = \"vif1\"",
            "vif = \"vif1\"\naddress6 = [\"2001:db8:1::1/64\"]",
        ) + r#"
        [[vr.route]]
        prefix = "2001:db8:9::/48"
        via = "fe80::2"
        interface = "eth0"
        [[vr.route]]
        prefix = "2001:db8:8::/48"
        via = "2001:db8:1::fe"
        [[vr.neighbor]]
        address = "fe80::2"
        mac = "02:00:00:00:bb:02"
        interface = "eth0"
        "#;
        let c = Config::parse(&dual).unwrap();
        let vr = &c.topology.vrs[0];
        let ifc = &vr.interfaces[0];
        let ll: std::net::Ipv6Addr = "fe80::ff:fe00:101".parse().unwrap();
        assert_eq!(ifc.link_local, ll, "EUI-64 of 02:00:00:00:01:01");
        assert!(ifc.owns6(ll) && ifc.owns6("2001:db8:1::1".parse().unwrap()));
        assert!(ifc.on_link6("2001:db8:1::77".parse().unwrap()));
        assert!(!ifc.on_link6("2001:db8:2::77".parse().unwrap()));
        assert_eq!((vr.routes[1].iface, vr.routes[2].iface), (0, 0));
        assert_eq!(
            vr.neighbors[0].address,
            "fe80::2".parse::<IpAddr>().unwrap()
        );

        let refused = |from: &str, to: &str| {
            let e = Config::parse(&dual.replace(from, to)).unwrap_err();
            match e {
                ConfigError::Invalid { key, .. } => key,
                other => panic!("{other:?}"),
            }
        };
        // A link-local gateway names its interface.
        let first_interface_line = "        interface = \"eth0\"\n        [[vr.route]]";
        assert_eq!(
            refused(first_interface_line, "        [[vr.route]]"),
            "vr[0].route[1].via.interface"
        );
        assert_eq!(
            refused("via = \"2001:db8:1::fe\"", "via = \"10.0.1.2\""),
            "vr[0].route[2].via"
        );
        assert_eq!(
            refused("via = \"2001:db8:1::fe\"", "via = \"2001:db8:7::fe\""),
            "vr[0].route[2].via"
        );
        // A guest with stable-privacy link-local addresses names its own.
        let stable = dual.replace(
            "address6 = [\"2001:db8:1::1/64\"]",
            "address6 = [\"2001:db8:1::1/64\"]\nlink_local = \"fe80::6b2f:19d0:77a1:5c3e\"",
        );
        let ifc = &Config::parse(&stable).unwrap().topology.vrs[0].interfaces[0];
        let configured: std::net::Ipv6Addr = "fe80::6b2f:19d0:77a1:5c3e".parse().unwrap();
        assert_eq!(ifc.link_local, configured);
        assert!(
            ifc.owns6(configured) && !ifc.owns6(ll),
            "the EUI-64 one is not the guest's"
        );
        for bad in ["fe80:1::1", "fe80::", "2001:db8:1::9"] {
            let e = Config::parse(&stable.replace("fe80::6b2f:19d0:77a1:5c3e", bad)).unwrap_err();
            assert!(
                matches!(&e, ConfigError::Invalid { key, .. } if key == "vr[0].interface[0].link_local"),
                "{bad}: {e:?}"
            );
        }
        for bad in ["fe80::1/64", "ff02::1/64", "2001:db8:1::/64"] {
            assert_eq!(
                refused("\"2001:db8:1::1/64\"", &format!("\"{bad}\"")),
                "vr[0].interface[0].address6",
                "{bad}"
            );
        }
    }

    #[test]
    fn a_segments_mtu_is_its_interfaces_and_is_checked() {
        let c = Config::parse(EXAMPLE).unwrap();
        assert_eq!(c.topology.vrs[0].interfaces[0].mtu, 1500, "the default");
        let with = |mtu: &str| {
            Config::parse(&EXAMPLE.replace(
                "uplink = \"up0\"",
                &format!("uplink = \"up0\"\nmtu = {mtu}"),
            ))
        };
        let c = with("9000").unwrap();
        assert_eq!(c.topology.segments[0].mtu, 9000);
        assert_eq!(c.topology.vrs[0].interfaces[0].mtu, 9000);
        for bad in ["1279", "9217"] {
            assert!(
                matches!(with(bad), Err(ConfigError::Invalid { ref key, .. }) if key == "segment[0].mtu"),
                "{bad}"
            );
        }
    }

    #[test]
    fn flood_limits_by_role_and_zero_is_none() {
        let c = Config::parse(EXAMPLE).unwrap();
        assert_eq!(c.flood.limits(), (Some((1000, 1000)), None));
        let c = Config::parse(&format!(
            "{EXAMPLE}\n[flood]\nvif_pps = 0\nuplink_pps = 50\nuplink_burst = 0"
        ))
        .unwrap();
        assert_eq!(c.flood.limits(), (None, Some((50, 1))));
    }

    #[test]
    fn an_uplink_may_be_a_socket_outside_the_eal_command_line() {
        let c = Config::parse(&EXAMPLE.replace("net_af_packet0,iface=up0", "socket:up0")).unwrap();
        assert_eq!(c.topology.ports[0].device.as_deref(), Some("socket:up0"));
        assert_eq!(socket_netdev("socket:up0"), Some("up0"));
        assert_eq!(socket_netdev("net_af_packet0,iface=up0"), None);
        let eal = crate::appliance::eal_args(&c);
        assert!(!eal.iter().any(|a| a.contains("up0")), "{eal:?}");
    }

    #[test]
    fn a_vif_without_a_device_is_attached_at_run_time() {
        let c =
            Config::parse(&EXAMPLE.replace("device = \"net_af_packet1,iface=vif1\"", "")).unwrap();
        assert_eq!(c.topology.ports[1].device, None);
        // By default vrfwd's own sockets open it: no DPDK device.
        assert_eq!(c.attach.device(1, "vif5.0", 2), None);
        let pmd = Config::parse(&EXAMPLE.replace(
            "via = \"10.0.1.2\"",
            "via = \"10.0.1.2\"\n[attach]\ndriver = \"af_packet\"",
        ))
        .unwrap();
        let args_for_sockets = Config::parse(&EXAMPLE.replace(
            "via = \"10.0.1.2\"",
            "via = \"10.0.1.2\"\n[attach]\nargs = \"framecnt=2048\"",
        ));
        assert!(
            matches!(args_for_sockets, Err(ConfigError::Invalid { ref key, .. }) if key == "attach.args"),
            "{args_for_sockets:?}"
        );
        assert_eq!(
            pmd.attach.device(1, "vif5.0", 2).as_deref(),
            Some("net_af_packet_vif1,iface=vif5.0,qpairs=2")
        );
        let xdp = Config::parse(&EXAMPLE.replace(
            "via = \"10.0.1.2\"",
            "via = \"10.0.1.2\"\n[attach]\ndriver = \"af_xdp\"\nargs = \"busy_budget=0\"",
        ))
        .unwrap();
        assert_eq!(
            xdp.attach.device(3, "vif1.1", 1).as_deref(),
            Some("net_af_xdp_vif3,iface=vif1.1,start_queue=0,queue_count=1,busy_budget=0")
        );
    }

    #[test]
    fn errors_name_the_key() {
        // (text to replace in EXAMPLE, replacement, what the error must say)
        let cases = [
            ("cores = [0]", "cores = []", "cores"),
            (
                "02:00:00:00:01:01",
                "01:00:00:00:01:01",
                "vr[0].interface[0].mac",
            ),
            (
                "10.9.0.0/16",
                "10.9.0.1/16",
                "vr[0].route[0].prefix: 10.9.0.1/16 has host bits set",
            ),
            (
                "via = \"10.0.1.2\"",
                "via = \"10.5.1.2\"",
                "vr[0].route[0].via",
            ),
            (
                "via = \"10.0.1.2\"",
                "via = \"10.0.1.2\"\nweight = 257",
                "vr[0].route[0].weight",
            ),
            (
                "via = \"10.0.1.2\"",
                "via = \"10.0.1.2\"\n[[vr.route]]\nprefix = \"10.9.0.0/16\"\nvia = \"10.0.1.2\"",
                "vr[0].route[1]: repeats route[0]",
            ),
            (
                "vif = \"vif1\"",
                "vif = \"up0\"",
                "vr[0].interface[0].vif: port \"up0\" is already used by segment[0].uplink",
            ),
            (
                "segment = \"lan0\"",
                "segment = \"lan9\"",
                "vr[0].interface[0].segment",
            ),
            ("10.0.1.1/24", "10.0.1.0/24", "vr[0].interface[0].address"),
            ("id = 1", "id = 0", "vr[0].id"),
            (
                "vif = \"vif1\"",
                "vif = \"vif1\"\nextra_macs = [\"02:00:00:00:01:01\"]",
                "vr[0].interface[0].extra_macs: 02:00:00:00:01:01 is not a unicast station",
            ),
            (
                "vif = \"vif1\"",
                "vif = \"vif1\"\nextra_macs = [\"01:00:5e:00:00:01\"]",
                "vr[0].interface[0].extra_macs",
            ),
            (
                "vif = \"vif1\"",
                "vif = \"vif1\"\nextra_addresses = [\"10.0.2.5\"]",
                "vr[0].interface[0].extra_addresses: 10.0.2.5 is not another host address on 10.0.1.1/24",
            ),
            (
                "vif = \"vif1\"",
                "vif = \"vif1\"\nextra_addresses = [\"10.0.1.1\"]",
                "vr[0].interface[0].extra_addresses",
            ),
            ("[[vr]]", "[[vr]]\nbogus = 1", "unknown field `bogus`"),
            (
                "eal_args = [\"--no-huge\", \"--in-memory\"]",
                "[control]\nhost_credential = \"\"",
                "control.host_credential: is empty",
            ),
            (
                "eal_args = [\"--no-huge\", \"--in-memory\"]",
                "[control]\nhost_credential = \"host-secret-for-tests\"",
                "control.peers: host_credential needs the peer hosts' addresses",
            ),
            (
                "eal_args = [\"--no-huge\", \"--in-memory\"]",
                "[control]\nhost_credential = \"short\"",
                "control.host_credential: is shorter than 16 characters",
            ),
            ("[[vr]]", "[[vr]]\nstandby = 1", "standby = 1"),
            (
                "cores = [0]",
                "cores = [0]\nsocket_group = \"no-such-group-here\"",
                "socket_group: no group \"no-such-group-here\"",
            ),
            (
                "device = \"net_af_packet0,iface=up0\"",
                "",
                "segment[0].uplink: port \"up0\" has no device",
            ),
            (
                "via = \"10.0.1.2\"",
                "via = \"10.0.1.2\"\n[attach]\ndriver = \"tap\"",
                "unknown variant `tap`",
            ),
            (
                "net_af_packet0,iface=up0",
                "socket:up0,qpairs=2",
                "port[0].device: Some(\"socket:up0,qpairs=2\"): a socket takes a netdev's name alone",
            ),
            (
                "net_af_packet0,iface=up0",
                "socket:",
                "a socket takes a netdev's name alone",
            ),
        ];
        for (from, to, want) in cases {
            let e = Config::parse(&EXAMPLE.replace(from, to))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{e:?} should contain {want:?}");
        }
    }
}
