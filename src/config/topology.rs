//! The resolved topology: ports, segments and VRs as the data plane is built from
//! them, every name replaced by an index and every subnet computed once, checked
//! whole before anything uses it. Indices are positions in vectors that are built
//! by adding one entity at a time, each checked against those before it: the
//! shape in which entities can later be added at run time and published under RCU.
use super::SegmentConfig;
use super::{invalid, ConfigError, InterfaceConfig, NeighborConfig, PortConfig, RouteConfig};
use super::{TableSize, VrConfig, MAX_INTERFACES, MAX_PORTS, MAX_VRS};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use vrfwd_wire::MacAddr;

/// What a port is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortRole {
    /// A segment's physical (or outer) port.
    Uplink { segment: usize },
    /// The port to a VR interface's guest NIC.
    Vif {
        segment: usize,
        vr: usize,
        iface: usize,
    },
}

impl PortRole {
    pub fn segment(self) -> usize {
        match self {
            PortRole::Uplink { segment } | PortRole::Vif { segment, .. } => segment,
        }
    }
}

/// A DPDK port and its role.
#[derive(Debug, Clone)]
pub struct Port {
    pub name: String,
    /// A DPDK device string; none for a vif attached at run time.
    pub device: Option<String>,
    pub role: PortRole,
}

impl Port {
    /// The DPDK device name (before the first comma of the device string).
    pub fn device_name(&self) -> Option<&str> {
        self.device.as_deref().map(super::device_name)
    }
}

/// An L2 domain.
#[derive(Debug, Clone)]
pub struct Segment {
    pub name: String,
    /// Its uplink's port index.
    pub uplink: usize,
    /// Its links' IP MTU.
    pub mtu: u16,
}

/// A VR interface: the guest's NIC on one segment.
#[derive(Debug, Clone)]
pub struct Interface {
    pub name: String,
    pub mac: MacAddr,
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    pub segment: usize,
    /// Its vif's port index.
    pub vif: usize,
    /// Its segment's uplink port index (where it forwards and announces).
    pub uplink: usize,
    /// Further MACs its guest may send from (e.g. VRRP's), none by default.
    pub extra_macs: Vec<MacAddr>,
    /// Further addresses of its guest on its subnet (e.g. VRRP's), none by default.
    pub extra_addresses: Vec<Ipv4Addr>,
    /// Its IPv6 addresses with their prefixes (global or unique-local).
    pub addresses6: Vec<Ipv6Net>,
    /// Its IPv6 link-local address, derived from its MAC (EUI-64).
    pub link_local: Ipv6Addr,
    /// Its segment's IP MTU: the largest packet the fast path sends out of it.
    pub mtu: u16,
    network: u32,
    mask: u32,
}

impl Interface {
    /// Interface `name` with address `net` on `segment` (whose uplink is port
    /// `uplink`), reached through port `vif`.
    pub fn new(
        name: String,
        mac: MacAddr,
        net: Ipv4Net,
        (segment, uplink): (usize, usize),
        vif: usize,
    ) -> Self {
        let mask = u32::from(net.netmask());
        Interface {
            name,
            mac,
            address: net.addr(),
            prefix_len: net.prefix_len(),
            segment,
            vif,
            uplink,
            extra_macs: Vec::new(),
            extra_addresses: Vec::new(),
            addresses6: Vec::new(),
            link_local: eui64_link_local(mac),
            mtu: super::default_mtu(),
            network: u32::from(net.addr()) & mask,
            mask,
        }
    }

    /// The interface's address with its prefix.
    pub fn net(&self) -> Ipv4Net {
        Ipv4Net::new(self.address, self.prefix_len).expect("a prefix length from an Ipv4Net")
    }

    /// Whether the guest may send from `mac` on this interface.
    #[inline(always)]
    pub fn sends_from(&self, mac: MacAddr) -> bool {
        mac == self.mac || self.extra_macs.contains(&mac)
    }

    /// Whether `ip` is one of this interface's own addresses.
    #[inline(always)]
    pub fn owns(&self, ip: Ipv4Addr) -> bool {
        ip == self.address || self.extra_addresses.contains(&ip)
    }

    /// Whether `ip` lies on this interface's subnet.
    #[inline(always)]
    pub fn on_subnet(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask == self.network
    }

    /// Whether `ip` is one of this interface's own IPv6 addresses.
    pub fn owns6(&self, ip: Ipv6Addr) -> bool {
        ip == self.link_local || self.addresses6.iter().any(|a| a.addr() == ip)
    }

    /// Whether `ip` is on this interface's link: a link-local unicast address,
    /// or one inside one of its IPv6 prefixes.
    pub fn on_link6(&self, ip: Ipv6Addr) -> bool {
        ip.is_unicast_link_local() || self.addresses6.iter().any(|a| a.contains(&ip))
    }

    /// Whether `ip` (either family) is on this interface's subnet or link.
    pub fn reaches(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(ip) => self.on_subnet(ip),
            IpAddr::V6(ip) => self.on_link6(ip),
        }
    }
}

/// The link-local address a kernel derives from `mac` (modified EUI-64, RFC 4291
/// appendix A): fe80::, the MAC with its universal/local bit flipped and ff:fe in
/// the middle.
pub fn eui64_link_local(mac: MacAddr) -> Ipv6Addr {
    let m = mac.0;
    let iid = [m[0] ^ 2, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]];
    let mut octets = [0u8; 16];
    octets[..2].copy_from_slice(&[0xfe, 0x80]);
    octets[8..].copy_from_slice(&iid);
    Ipv6Addr::from(octets)
}

/// Why no interface was found for a gateway or neighbour.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoInterface {
    #[error("no interface {name:?} of this VR reaches {addr}")]
    Named { name: String, addr: IpAddr },
    #[error("{0} is link-local: name its interface")]
    LinkLocal(IpAddr),
    #[error("{0} is not on any interface's subnet")]
    Unreached(IpAddr),
}

/// The interface of a gateway or neighbour `addr`: the one named (which must
/// reach it), else the one whose subnet holds it; an IPv6 link-local address
/// names its interface.
pub fn gateway_interface(
    interfaces: &[Interface],
    addr: IpAddr,
    named: Option<&str>,
) -> Result<usize, NoInterface> {
    match named {
        Some(name) => interfaces
            .iter()
            .position(|i| i.name == name)
            .filter(|&i| interfaces[i].reaches(addr))
            .ok_or_else(|| NoInterface::Named {
                name: name.to_owned(),
                addr,
            }),
        None if matches!(addr, IpAddr::V6(a) if a.is_unicast_link_local()) => {
            Err(NoInterface::LinkLocal(addr))
        }
        None => interfaces
            .iter()
            .position(|i| i.reaches(addr))
            .ok_or(NoInterface::Unreached(addr)),
    }
}

/// A static route's path, its gateway resolved to an interface. Paths of one
/// prefix make one multipath route.
#[derive(Debug, Clone)]
pub struct StaticRoute {
    pub path: StaticPath,
    pub iface: usize,
    /// Its share of the route's flows (1 to 256).
    pub weight: u32,
}

/// A static route's prefix and gateway, of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StaticPath {
    V4 { prefix: Ipv4Net, via: Ipv4Addr },
    V6 { prefix: Ipv6Net, via: Ipv6Addr },
}

impl StaticPath {
    pub fn prefix(&self) -> IpNet {
        match *self {
            StaticPath::V4 { prefix, .. } => prefix.into(),
            StaticPath::V6 { prefix, .. } => prefix.into(),
        }
    }
}

/// A static neighbour, resolved to an interface.
#[derive(Debug, Clone)]
pub struct StaticNeighbor {
    pub address: IpAddr,
    pub mac: MacAddr,
    pub iface: usize,
}

/// A virtual router.
#[derive(Debug, Clone)]
pub struct Vr {
    pub id: u32,
    /// The configured name, or `vr<id>`.
    pub name: String,
    pub table: TableSize,
    pub credential: Option<String>,
    pub standby: bool,
    pub interfaces: Vec<Interface>,
    pub routes: Vec<StaticRoute>,
    pub neighbors: Vec<StaticNeighbor>,
}

/// Ports, segments and VRs, resolved.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    pub ports: Vec<Port>,
    pub segments: Vec<Segment>,
    pub vrs: Vec<Vr>,
}

/// The state of a resolution: names seen so far and the roles ports were given.
#[derive(Default)]
struct Resolver<'a> {
    ports: HashMap<&'a str, usize>,
    roles: Vec<Option<(PortRole, String)>>,
    /// Segment name → (index, uplink port).
    segments: HashMap<&'a str, (usize, usize, u16)>,
    vr_ids: HashSet<u32>,
    /// Interfaces' own MACs, and their extra MACs (which interfaces may share,
    /// e.g. the two routers of a VRRP pair, but no interface may own).
    macs: HashSet<MacAddr>,
    extra_macs: HashSet<MacAddr>,
}

impl Topology {
    /// Checks and resolves the configured ports, segments and VRs; the first
    /// problem is an error naming its key.
    pub(super) fn resolve(
        ports: &[PortConfig],
        segments: &[SegmentConfig],
        vrs: &[VrConfig],
    ) -> Result<Topology, ConfigError> {
        if ports.len() > MAX_PORTS {
            return Err(invalid("port", format!("more than {MAX_PORTS} ports")));
        }
        if vrs.len() > MAX_VRS {
            return Err(invalid("vr", format!("more than {MAX_VRS} VRs")));
        }
        let mut r = Resolver::default();
        let mut devices = HashSet::new();
        for (i, p) in ports.iter().enumerate() {
            r.add_port(i, p, &mut devices)?;
        }
        let mut topology = Topology::default();
        for (i, s) in segments.iter().enumerate() {
            let segment = r.add_segment(i, s, ports)?;
            topology.segments.push(segment);
        }
        for (v, vc) in vrs.iter().enumerate() {
            let vr = r.add_vr(v, vc)?;
            topology.vrs.push(vr);
        }
        for (p, role) in ports.iter().zip(r.roles) {
            let Some((role, _)) = role else {
                return Err(invalid(
                    "port",
                    format!("port {:?} is neither a segment uplink nor a vif", p.name),
                ));
            };
            topology.ports.push(Port {
                name: p.name.clone(),
                device: p.device.clone(),
                role,
            });
        }
        Ok(topology)
    }
}

impl<'a> Resolver<'a> {
    fn add_port(
        &mut self,
        i: usize,
        p: &'a PortConfig,
        devices: &mut HashSet<&'a str>,
    ) -> Result<(), ConfigError> {
        if self.ports.insert(p.name.as_str(), i).is_some() {
            return Err(invalid(
                format!("port[{i}].name"),
                format!("{:?} is used twice", p.name),
            ));
        }
        if let Some(name) = p.device_name() {
            if name.is_empty() || !devices.insert(name) {
                return Err(invalid(
                    format!("port[{i}].device"),
                    format!("{:?} is empty or its device name is used twice", p.device),
                ));
            }
            let socket = p.device.as_deref().and_then(super::socket_netdev);
            if socket.is_some_and(|netdev| netdev.is_empty() || netdev.contains(',')) {
                return Err(invalid(
                    format!("port[{i}].device"),
                    format!("{:?}: a socket takes a netdev's name alone", p.device),
                ));
            }
        }
        self.roles.push(None);
        Ok(())
    }

    /// Gives port `name` its one role; `key` names the claim in errors.
    fn claim(&mut self, name: &str, role: PortRole, key: String) -> Result<usize, ConfigError> {
        let Some(&port) = self.ports.get(name) else {
            return Err(invalid(key, format!("no [[port]] is named {name:?}")));
        };
        if let Some((_, prev)) = &self.roles[port] {
            return Err(invalid(
                key,
                format!("port {name:?} is already used by {prev}"),
            ));
        }
        self.roles[port] = Some((role, key));
        Ok(port)
    }

    fn add_segment(
        &mut self,
        i: usize,
        s: &'a SegmentConfig,
        ports: &[PortConfig],
    ) -> Result<Segment, ConfigError> {
        if self.segments.contains_key(s.name.as_str()) {
            return Err(invalid(
                format!("segment[{i}].name"),
                format!("{:?} is used twice", s.name),
            ));
        }
        let key = format!("segment[{i}].uplink");
        let uplink = self.claim(&s.uplink, PortRole::Uplink { segment: i }, key.clone())?;
        if !super::MTUS.contains(&s.mtu) {
            return Err(invalid(
                format!("segment[{i}].mtu"),
                format!("{} is outside {:?}", s.mtu, super::MTUS),
            ));
        }
        self.segments.insert(s.name.as_str(), (i, uplink, s.mtu));
        if ports[uplink].device.is_none() {
            return Err(invalid(
                key,
                format!(
                    "port {:?} has no device (only vifs are attached at run time)",
                    s.uplink
                ),
            ));
        }
        Ok(Segment {
            name: s.name.clone(),
            uplink,
            mtu: s.mtu,
        })
    }

    fn add_vr(&mut self, v: usize, vr: &VrConfig) -> Result<Vr, ConfigError> {
        let key = |rest: &str| format!("vr[{v}]{rest}");
        if vr.id == 0 || !self.vr_ids.insert(vr.id) {
            return Err(invalid(
                key(".id"),
                format!("{} is zero or used twice", vr.id),
            ));
        }
        super::check_credential(&key(".credential"), vr.credential.as_deref())?;
        if vr.interfaces.is_empty() || vr.interfaces.len() > MAX_INTERFACES {
            return Err(invalid(
                key(".interface"),
                format!("a VR needs 1 to {MAX_INTERFACES} interfaces"),
            ));
        }
        let mut interfaces: Vec<Interface> = Vec::with_capacity(vr.interfaces.len());
        for (n, ifc) in vr.interfaces.iter().enumerate() {
            let k = |f: &str| key(&format!(".interface[{n}].{f}"));
            if interfaces.iter().any(|i| i.name == ifc.name) {
                return Err(invalid(
                    k("name"),
                    format!("{:?} is used twice in this VR", ifc.name),
                ));
            }
            if !ifc.mac.is_station() {
                return Err(invalid(
                    k("mac"),
                    format!("{} is not a unicast station address", ifc.mac),
                ));
            }
            if self.extra_macs.contains(&ifc.mac) || !self.macs.insert(ifc.mac) {
                return Err(invalid(
                    k("mac"),
                    format!("{} belongs to another interface too", ifc.mac),
                ));
            }
            if ifc.address.prefix_len() > 30
                || ifc.address.addr() == ifc.address.network()
                || ifc.address.addr() == ifc.address.broadcast()
            {
                return Err(invalid(
                    k("address"),
                    format!(
                        "{} is not a host address on a /30 or wider subnet",
                        ifc.address
                    ),
                ));
            }
            let Some(&(segment, uplink, mtu)) = self.segments.get(ifc.segment.as_str()) else {
                return Err(invalid(
                    k("segment"),
                    format!("no [[segment]] is named {:?}", ifc.segment),
                ));
            };
            let role = PortRole::Vif {
                segment,
                vr: v,
                iface: n,
            };
            let vif = self.claim(&ifc.vif, role, k("vif"))?;
            let mut interface = Interface::new(
                ifc.name.clone(),
                ifc.mac,
                ifc.address,
                (segment, uplink),
                vif,
            );
            interface.mtu = mtu;
            interface.extra_macs = self.extra_macs(ifc, &k("extra_macs"))?;
            interface.extra_addresses = extra_addresses(&interface, ifc, &k("extra_addresses"))?;
            interface.addresses6 = addresses6(&interfaces, ifc, &k("address6"))?;
            if let Some(ll) = ifc.link_local {
                interface.link_local = link_local(ll, &k("link_local"))?;
            }
            interfaces.push(interface);
        }
        let routes: Vec<StaticRoute> = vr
            .routes
            .iter()
            .enumerate()
            .map(|(n, r)| static_route(&interfaces, r, || key(&format!(".route[{n}]"))))
            .collect::<Result<_, _>>()?;
        static_paths_distinct(&routes, |n| key(&format!(".route[{n}]")))?;
        let neighbors = vr
            .neighbors
            .iter()
            .enumerate()
            .map(|(n, nb)| static_neighbor(&interfaces, nb, || key(&format!(".neighbor[{n}]"))))
            .collect::<Result<_, _>>()?;
        Ok(Vr {
            id: vr.id,
            name: vr.name.clone().unwrap_or_else(|| format!("vr{}", vr.id)),
            table: vr.table,
            credential: vr.credential.clone(),
            standby: vr.standby,
            interfaces,
            routes,
            neighbors,
        })
    }
}

impl Resolver<'_> {
    /// The extra MACs of interface `ifc`: stations, none an interface's own MAC.
    fn extra_macs(
        &mut self,
        ifc: &InterfaceConfig,
        key: &str,
    ) -> Result<Vec<MacAddr>, ConfigError> {
        for &mac in &ifc.extra_macs {
            // (`macs` holds this interface's own MAC already.)
            if !mac.is_station() || self.macs.contains(&mac) {
                return Err(invalid(
                    key,
                    format!("{mac} is not a unicast station address or is an interface's own MAC"),
                ));
            }
            self.extra_macs.insert(mac);
        }
        Ok(ifc.extra_macs.clone())
    }
}

/// The extra addresses of `ifc` (resolved as `interface`): host addresses on its
/// subnet other than its own.
fn extra_addresses(
    interface: &Interface,
    ifc: &InterfaceConfig,
    key: &str,
) -> Result<Vec<Ipv4Addr>, ConfigError> {
    let net = interface.net();
    for &ip in &ifc.extra_addresses {
        if !net.contains(&ip) || ip == net.network() || ip == net.broadcast() || ip == net.addr() {
            return Err(invalid(
                key,
                format!("{ip} is not another host address on {net}"),
            ));
        }
    }
    Ok(ifc.extra_addresses.clone())
}

/// A configured link-local address: unicast in fe80::/64 (RFC 4291 2.5.6).
fn link_local(ip: Ipv6Addr, key: &str) -> Result<Ipv6Addr, ConfigError> {
    match ip.segments()[..4] == [0xfe80, 0, 0, 0]
        && ip != Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0)
    {
        true => Ok(ip),
        false => Err(invalid(
            key,
            format!("{ip} is not a link-local host address (fe80::/64)"),
        )),
    }
}

/// The IPv6 addresses of `ifc`: unicast, neither link-local (derived from the
/// MAC) nor a subnet's all-zero anycast address, none used by an interface
/// before it in the VR.
fn addresses6(
    before: &[Interface],
    ifc: &InterfaceConfig,
    key: &str,
) -> Result<Vec<Ipv6Net>, ConfigError> {
    for (n, a) in ifc.address6.iter().enumerate() {
        let ip = a.addr();
        let anycast = a.prefix_len() < 127 && ip == a.network();
        if ip.is_unspecified()
            || ip.is_loopback()
            || ip.is_multicast()
            || ip.is_unicast_link_local()
            || anycast
        {
            return Err(invalid(
                key,
                format!("{a} is not a global or unique-local host address"),
            ));
        }
        let earlier = ifc.address6[..n].iter().map(|a| a.addr());
        if earlier
            .chain(
                before
                    .iter()
                    .flat_map(|i| i.addresses6.iter().map(|a| a.addr())),
            )
            .any(|other| other == ip)
        {
            return Err(invalid(key, format!("{ip} is used twice in this VR")));
        }
    }
    Ok(ifc.address6.clone())
}

/// [`gateway_interface`], its error under the config key `key`.
fn interface_of(
    interfaces: &[Interface],
    addr: IpAddr,
    named: Option<&str>,
    key: impl Fn() -> String,
) -> Result<usize, ConfigError> {
    gateway_interface(interfaces, addr, named).map_err(|e| match e {
        NoInterface::Unreached(_) => invalid(key(), e.to_string()),
        NoInterface::Named { .. } | NoInterface::LinkLocal(_) => {
            invalid(key() + ".interface", e.to_string())
        }
    })
}

fn static_route(
    interfaces: &[Interface],
    r: &RouteConfig,
    key: impl Fn() -> String,
) -> Result<StaticRoute, ConfigError> {
    if r.prefix.trunc() != r.prefix {
        return Err(invalid(
            key() + ".prefix",
            format!(
                "{} has host bits set (did you mean {}?)",
                r.prefix,
                r.prefix.trunc()
            ),
        ));
    }
    let path = match (r.prefix, r.via) {
        (IpNet::V4(prefix), IpAddr::V4(via)) => StaticPath::V4 { prefix, via },
        (IpNet::V6(prefix), IpAddr::V6(via)) => StaticPath::V6 { prefix, via },
        _ => {
            return Err(invalid(
                key() + ".via",
                format!("{} is not of {}'s family", r.via, r.prefix),
            ))
        }
    };
    let iface = interface_of(interfaces, r.via, r.interface.as_deref(), || key() + ".via")?;
    let weight = r.weight.unwrap_or(1);
    if !(1..=256).contains(&weight) {
        return Err(invalid(
            key() + ".weight",
            format!("{weight} is not from 1 to 256"),
        ));
    }
    Ok(StaticRoute {
        path,
        iface,
        weight,
    })
}

/// Refuses a path listed twice (a prefix through one gateway on one
/// interface), and a prefix with more paths than a route holds.
fn static_paths_distinct(
    routes: &[StaticRoute],
    key: impl Fn(usize) -> String,
) -> Result<(), ConfigError> {
    let mut seen = std::collections::HashMap::new();
    let mut paths = std::collections::HashMap::<IpNet, usize>::new();
    for (n, r) in routes.iter().enumerate() {
        if let Some(first) = seen.insert((r.path, r.iface), n) {
            return Err(invalid(key(n), format!("repeats route[{first}]")));
        }
        let count = paths.entry(r.path.prefix()).or_default();
        *count += 1;
        if *count > crate::dataplane::MAX_PATHS {
            return Err(invalid(
                key(n),
                format!(
                    "{} has more than {} paths",
                    r.path.prefix(),
                    crate::dataplane::MAX_PATHS
                ),
            ));
        }
    }
    Ok(())
}

fn static_neighbor(
    interfaces: &[Interface],
    nb: &NeighborConfig,
    key: impl Fn() -> String,
) -> Result<StaticNeighbor, ConfigError> {
    let iface = interface_of(interfaces, nb.address, nb.interface.as_deref(), || {
        key() + ".address"
    })?;
    if !nb.mac.is_station() {
        return Err(invalid(
            key() + ".mac",
            format!("{} is not a unicast station address", nb.mac),
        ));
    }
    Ok(StaticNeighbor {
        address: nb.address,
        mac: nb.mac,
        iface,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{tests::EXAMPLE, Config};

    #[test]
    fn names_become_indices_and_every_port_has_its_role() {
        let t = Config::parse(EXAMPLE).unwrap().topology;
        assert_eq!(t.segments[0].uplink, 0);
        assert_eq!(t.ports[0].role, PortRole::Uplink { segment: 0 });
        assert_eq!(
            t.ports[1].role,
            PortRole::Vif {
                segment: 0,
                vr: 0,
                iface: 0
            }
        );
        let vr = &t.vrs[0];
        assert_eq!(vr.name, "vr1");
        let ifc = &vr.interfaces[0];
        assert_eq!((ifc.segment, ifc.vif, ifc.uplink), (0, 1, 0));
        assert_eq!(vr.routes[0].iface, 0);
    }

    #[test]
    fn the_interface_whose_subnet_holds_an_address() {
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        let ifcs = [
            Interface::new("a".into(), mac, "10.0.1.1/24".parse().unwrap(), (0, 0), 1),
            Interface::new("b".into(), mac, "10.0.2.1/30".parse().unwrap(), (0, 0), 2),
        ];
        let at = |s: &str| gateway_interface(&ifcs, s.parse().unwrap(), None).ok();
        assert_eq!(at("10.0.1.0"), Some(0));
        assert_eq!(at("10.0.1.255"), Some(0));
        assert_eq!(at("10.0.2.2"), Some(1));
        assert_eq!(at("10.0.2.3"), Some(1));
        assert_eq!(at("10.0.2.4"), None);
        assert_eq!(at("10.0.0.255"), None);
        assert_eq!(ifcs[1].net().to_string(), "10.0.2.1/30");
    }
}
