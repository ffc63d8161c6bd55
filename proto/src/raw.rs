//! Raw stanzas as serde reads them (strings, unchecked), and their validation into
//! typed [`Stanza`]s. A stanza is validated whole: the first problem rejects it.
use crate::stanza::{
    Auth, ErrorCode, Hello, Interface, NeighborOp, Path, Paths, RouteOp, Stanza, VrId, MAX_PATHS,
    MAX_WEIGHT,
};
use ipnet::IpNet;
use serde::Deserialize;
use std::borrow::Cow;
use std::net::IpAddr;
use vrfwd_wire::MacAddr;

/// A rejected stanza: the code and a message naming the problem.
pub type Reject = (ErrorCode, String);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHello {
    #[serde(rename = "@seq")]
    seq: String,
    #[serde(rename = "@vr")]
    vr: String,
    #[serde(rename = "@generation")]
    generation: String,
    #[serde(rename = "@credential", default)]
    credential: Option<String>,
    #[serde(rename = "@proof", default)]
    proof: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInterfaces {
    #[serde(rename = "@seq")]
    seq: String,
    #[serde(rename = "interface", default)]
    interfaces: Vec<RawInterface>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInterface {
    #[serde(rename = "@name")]
    name: String,
    #[serde(rename = "@mac")]
    mac: String,
    #[serde(rename = "@address")]
    address: String,
}

// Route operations borrow their attributes from the stanza text (a full table is
// a million of them): no allocation unless a value holds an escape.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoutes<'a> {
    #[serde(rename = "@seq")]
    seq: String,
    #[serde(rename = "$value", default, borrow)]
    ops: Vec<RawRouteOp<'a>>,
}

#[derive(Deserialize)]
enum RawRouteOp<'a> {
    #[serde(rename = "add", borrow)]
    Add(RawRouteAdd<'a>),
    #[serde(rename = "delete", borrow)]
    Delete(RawPrefix<'a>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRouteAdd<'a> {
    #[serde(rename = "@prefix", borrow)]
    prefix: Cow<'a, str>,
    #[serde(rename = "@via", default, borrow)]
    via: Option<Cow<'a, str>>,
    #[serde(rename = "@interface", default, borrow)]
    interface: Option<Cow<'a, str>>,
    /// Version 5: the paths of a multipath route, as elements.
    #[serde(rename = "path", default, borrow)]
    paths: Vec<RawPath<'a>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPath<'a> {
    #[serde(rename = "@via", default, borrow)]
    via: Option<Cow<'a, str>>,
    #[serde(rename = "@interface", borrow)]
    interface: Cow<'a, str>,
    #[serde(rename = "@weight", default, borrow)]
    weight: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrefix<'a> {
    #[serde(rename = "@prefix", borrow)]
    prefix: Cow<'a, str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNeighbors {
    #[serde(rename = "@seq")]
    seq: String,
    #[serde(rename = "$value", default)]
    ops: Vec<RawNeighborOp>,
}

#[derive(Deserialize)]
enum RawNeighborOp {
    #[serde(rename = "add")]
    Add(RawNeighborAdd),
    #[serde(rename = "delete")]
    Delete(RawNeighborDelete),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNeighborAdd {
    #[serde(rename = "@address")]
    address: String,
    #[serde(rename = "@mac")]
    mac: String,
    #[serde(rename = "@interface")]
    interface: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNeighborDelete {
    #[serde(rename = "@address")]
    address: String,
    #[serde(rename = "@interface")]
    interface: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeq {
    #[serde(rename = "@seq")]
    seq: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmpty {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGeneration {
    #[serde(rename = "@value")]
    value: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawError {
    #[serde(rename = "@seq", default)]
    seq: Option<String>,
    #[serde(rename = "@code")]
    code: String,
    #[serde(rename = "$text", default)]
    message: String,
}

fn de<'a, T: Deserialize<'a>>(name: &str, xml: &'a str) -> Result<T, Reject> {
    quick_xml::de::from_str(xml).map_err(|e| (ErrorCode::InvalidStanza, format!("<{name}>: {e}")))
}

/// A number written the one way the protocol writes it: decimal digits, no sign,
/// no leading zero (so `+1`, `01` and ` 1` are refused, not read as 1).
fn number<T: std::str::FromStr>(s: &str) -> Option<T> {
    let canonical = s.bytes().all(|b| b.is_ascii_digit()) && !(s.len() > 1 && s.starts_with('0'));
    canonical.then(|| s.parse().ok()).flatten()
}

fn seq(s: &str) -> Result<u64, Reject> {
    number(s).ok_or_else(|| {
        (
            ErrorCode::InvalidStanza,
            format!("seq {s:?} is not a number"),
        )
    })
}

fn ifname(s: String, what: &str) -> Result<String, Reject> {
    if !s.is_empty() && s.len() <= 15 && s.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(s)
    } else {
        Err((
            ErrorCode::InvalidStanza,
            format!("{what} {s:?} is not an interface name (1-15 printable characters)"),
        ))
    }
}

fn mac(s: &str) -> Result<MacAddr, Reject> {
    s.parse()
        .map_err(|_| (ErrorCode::BadMac, format!("{s:?} is not a MAC address")))
}

/// A neighbour's MAC: a station's (unicast, not all zeros).
fn station_mac(s: &str) -> Result<MacAddr, Reject> {
    let m = mac(s)?;
    if !m.is_station() {
        return Err((
            ErrorCode::BadMac,
            format!("{m} is not a station's MAC (broadcast, multicast or zero)"),
        ));
    }
    Ok(m)
}

/// An address written the one way the protocol writes it: IPv4 in dotted
/// decimal with no leading zeros, IPv6 in RFC 5952's canonical text (lower case,
/// the longest run of zero groups compressed: what `Ipv6Addr`'s `Display`
/// writes), so that one address has one spelling.
fn canonical_address(s: &str) -> Option<IpAddr> {
    match s.parse().ok()? {
        IpAddr::V6(a) if a.to_string() != s => None,
        a => Some(a),
    }
}

fn address(s: &str) -> Result<IpAddr, Reject> {
    canonical_address(s).ok_or_else(|| {
        (
            ErrorCode::BadAddress,
            format!("{s:?} is not an IPv4 or IPv6 address in canonical form"),
        )
    })
}

/// A gateway: an address of its prefix's family.
fn gateway(s: &str, prefix: &IpNet) -> Result<IpAddr, Reject> {
    let via = address(s)?;
    if via.is_ipv4() != matches!(prefix, IpNet::V4(_)) {
        return Err((
            ErrorCode::BadAddress,
            format!("gateway {via} is not of {prefix}'s family"),
        ));
    }
    Ok(via)
}

/// A neighbour's address: a unicast station address (IPv4: not 0.0.0.0,
/// broadcast, multicast or reserved; IPv6: not unspecified, loopback or
/// multicast; link-local is fine, scoped by the interface).
fn station_address(s: &str) -> Result<IpAddr, Reject> {
    let a = address(s)?;
    let station = match a {
        IpAddr::V4(v4) => {
            !(v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.octets()[0] >= 240)
        }
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_loopback() || v6.is_multicast()),
    };
    if !station {
        return Err((
            ErrorCode::BadAddress,
            format!("{a} is not a station's address"),
        ));
    }
    Ok(a)
}

/// `address/len` written as the address and the length are (canonical address,
/// no leading zeros in the length: `010.0.0.0/8` and `10.0.0.0/08` are
/// refused), host bits allowed.
fn address_and_len(s: &str) -> Result<IpNet, Reject> {
    let bad = || (ErrorCode::BadPrefix, format!("{s:?} is not a prefix"));
    let (addr, len) = s.split_once('/').ok_or_else(bad)?;
    let addr = canonical_address(addr).ok_or_else(bad)?;
    let len: u8 = number(len).ok_or_else(bad)?;
    IpNet::new(addr, len).map_err(|_| bad())
}

/// A prefix as a table takes it: valid syntax and no host bits.
fn prefix(s: &str) -> Result<IpNet, Reject> {
    let p = address_and_len(s)?;
    if p.trunc() != p {
        return Err((
            ErrorCode::HostBits,
            format!("{p} has host bits set (the network is {})", p.trunc()),
        ));
    }
    Ok(p)
}

/// An interface's addresses: one or more `address/len`, separated by single
/// spaces, none twice.
fn interface_addresses(s: &str) -> Result<Vec<IpNet>, Reject> {
    let addresses: Vec<IpNet> = s
        .split(' ')
        .map(address_and_len)
        .collect::<Result<_, _>>()?;
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = addresses.iter().find(|a| !seen.insert(a.addr())) {
        return Err((
            ErrorCode::InvalidStanza,
            format!("address {dup} is listed twice"),
        ));
    }
    Ok(addresses)
}

/// A route's add: its paths as attributes (one path) or as `<path>` elements
/// (two or more, version 5), never both, so that a route has one spelling.
fn route_add(a: RawRouteAdd) -> Result<RouteOp, Reject> {
    let prefix = prefix(&a.prefix)?;
    let one_path = |via: Option<&str>, interface: Cow<str>, weight: u16| {
        Ok(Path {
            via: via.map(|v| gateway(v, &prefix)).transpose()?,
            interface: ifname(interface.into_owned(), "interface")?,
            weight,
        })
    };
    let paths: Paths = match (a.interface, a.paths.len()) {
        (Some(interface), 0) => [one_path(a.via.as_deref(), interface, 1)?].into(),
        (None, 2..=MAX_PATHS) if a.via.is_none() => a
            .paths
            .into_iter()
            .map(|p| one_path(p.via.as_deref(), p.interface, weight(p.weight.as_deref())?))
            .collect::<Result<_, Reject>>()?,
        (None, n @ (0 | 1)) if a.via.is_none() => {
            return Err((
                ErrorCode::InvalidStanza,
                format!(
                    "route {prefix} has {n} <path>: a route of one path names it in attributes"
                ),
            ))
        }
        (None, n) if a.via.is_none() => {
            return Err((
                ErrorCode::Limit,
                format!("route {prefix} has {n} paths; at most {MAX_PATHS}"),
            ))
        }
        _ => {
            return Err((
                ErrorCode::InvalidStanza,
                format!("route {prefix} has both path attributes and <path> elements"),
            ))
        }
    };
    // At most 64 paths: compared pairwise, nothing allocated (a full table
    // is a million single-path routes).
    let twice = |(i, p): (usize, &Path)| {
        paths[..i]
            .iter()
            .any(|q| q.via == p.via && q.interface == p.interface)
    };
    if let Some((_, dup)) = paths.iter().enumerate().find(|&x| twice(x)) {
        return Err((
            ErrorCode::InvalidStanza,
            format!(
                "route {prefix} lists the path via {:?} on {} twice",
                dup.via, dup.interface
            ),
        ));
    }
    Ok(RouteOp::Add { prefix, paths })
}

/// A path's weight: 1 (absent) to [`MAX_WEIGHT`].
fn weight(s: Option<&str>) -> Result<u16, Reject> {
    let Some(s) = s else { return Ok(1) };
    number::<u16>(s)
        .filter(|w| (1..=MAX_WEIGHT).contains(w))
        .ok_or_else(|| {
            (
                ErrorCode::InvalidStanza,
                format!("weight {s:?} is not a number from 1 to {MAX_WEIGHT}"),
            )
        })
}

/// Validates the complete stanza `xml` whose element name is `name`.
pub fn stanza(name: &str, xml: &str) -> Result<Stanza, Reject> {
    Ok(match name {
        "hello" => {
            let r: RawHello = de(name, xml)?;
            let vr = number::<u32>(&r.vr).filter(|&v| v != 0).ok_or((
                ErrorCode::InvalidStanza,
                format!("vr {:?} is not a VR id (1..2^32)", r.vr),
            ))?;
            let auth = match (r.credential, r.proof) {
                (Some(c), None) if c.is_empty() => {
                    return Err((ErrorCode::InvalidStanza, "empty credential".into()))
                }
                (Some(c), None) => Auth::Credential(c),
                (None, Some(p)) => Auth::Proof(p.parse().map_err(|e: crate::BadHex| {
                    (ErrorCode::InvalidStanza, format!("proof: {e}"))
                })?),
                _ => {
                    return Err((
                        ErrorCode::InvalidStanza,
                        "hello needs a credential (version 1) or a proof (version 2)".into(),
                    ))
                }
            };
            Stanza::Hello(Hello {
                seq: seq(&r.seq)?,
                vr: VrId(vr),
                generation: number(&r.generation).ok_or_else(|| {
                    (
                        ErrorCode::InvalidStanza,
                        format!("generation {:?} is not a number", r.generation),
                    )
                })?,
                auth,
            })
        }
        "interfaces" => {
            let r: RawInterfaces = de(name, xml)?;
            let interfaces: Vec<Interface> = r
                .interfaces
                .into_iter()
                .map(|i| {
                    Ok(Interface {
                        name: ifname(i.name, "interface")?,
                        mac: station_mac(&i.mac)?,
                        addresses: interface_addresses(&i.address)?,
                    })
                })
                .collect::<Result<_, Reject>>()?;
            let mut names = std::collections::HashSet::new();
            if let Some(dup) = interfaces.iter().find(|i| !names.insert(&i.name)) {
                return Err((
                    ErrorCode::InvalidStanza,
                    format!("interface {:?} is declared twice", dup.name),
                ));
            }
            Stanza::Interfaces {
                seq: seq(&r.seq)?,
                interfaces,
            }
        }
        "routes" => {
            let r: RawRoutes = de(name, xml)?;
            let ops = r
                .ops
                .into_iter()
                .map(|op| match op {
                    RawRouteOp::Add(a) => route_add(a),
                    RawRouteOp::Delete(d) => Ok(RouteOp::Delete {
                        prefix: prefix(&d.prefix)?,
                    }),
                })
                .collect::<Result<_, Reject>>()?;
            Stanza::Routes {
                seq: seq(&r.seq)?,
                ops,
            }
        }
        "neighbors" => {
            let r: RawNeighbors = de(name, xml)?;
            let ops = r
                .ops
                .into_iter()
                .map(|op| match op {
                    RawNeighborOp::Add(a) => Ok(NeighborOp::Add {
                        address: station_address(&a.address)?,
                        mac: station_mac(&a.mac)?,
                        interface: ifname(a.interface, "interface")?,
                    }),
                    RawNeighborOp::Delete(d) => Ok(NeighborOp::Delete {
                        address: address(&d.address)?,
                        interface: ifname(d.interface, "interface")?,
                    }),
                })
                .collect::<Result<_, Reject>>()?;
            Stanza::Neighbors {
                seq: seq(&r.seq)?,
                ops,
            }
        }
        "sync-begin" => Stanza::SyncBegin {
            seq: seq(&de::<RawSeq>(name, xml)?.seq)?,
        },
        "sync-end" => Stanza::SyncEnd {
            seq: seq(&de::<RawSeq>(name, xml)?.seq)?,
        },
        "ack" => Stanza::Ack {
            seq: seq(&de::<RawSeq>(name, xml)?.seq)?,
        },
        "keepalive" => {
            de::<RawEmpty>(name, xml)?;
            Stanza::Keepalive
        }
        "generation" => {
            let r: RawGeneration = de(name, xml)?;
            Stanza::Generation {
                generation: number(&r.value).ok_or_else(|| {
                    (
                        ErrorCode::InvalidStanza,
                        format!("generation {:?} is not a number", r.value),
                    )
                })?,
            }
        }
        "arrived" => {
            de::<RawEmpty>(name, xml)?;
            Stanza::Arrived
        }
        "error" => {
            let r: RawError = de(name, xml)?;
            Stanza::Error {
                seq: r.seq.as_deref().map(seq).transpose()?,
                code: ErrorCode::parse(&r.code).ok_or((
                    ErrorCode::InvalidStanza,
                    format!("unknown error code {:?}", r.code),
                ))?,
                message: r.message,
            }
        }
        other => {
            return Err((
                ErrorCode::UnknownElement,
                format!("unknown stanza <{other}>"),
            ))
        }
    })
}
