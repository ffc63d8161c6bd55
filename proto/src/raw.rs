//! Raw stanzas as serde reads them (strings, unchecked), and their validation into
//! typed [`Stanza`]s. A stanza is validated whole: the first problem rejects it.
use crate::stanza::{ErrorCode, Hello, Interface, MacAddr, NeighborOp, RouteOp, Stanza, VrId};
use ipnet::Ipv4Net;
use serde::Deserialize;
use std::borrow::Cow;
use std::net::Ipv4Addr;

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
    #[serde(rename = "@credential")]
    credential: String,
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
    #[serde(rename = "@interface", borrow)]
    interface: Cow<'a, str>,
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

fn seq(s: &str) -> Result<u64, Reject> {
    s.parse().map_err(|_| {
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

fn address(s: &str) -> Result<Ipv4Addr, Reject> {
    s.parse().map_err(|_| {
        (
            ErrorCode::BadAddress,
            format!("{s:?} is not an IPv4 address"),
        )
    })
}

/// A prefix as a table takes it: valid syntax and no host bits.
fn prefix(s: &str) -> Result<Ipv4Net, Reject> {
    let p: Ipv4Net = s
        .parse()
        .map_err(|_| (ErrorCode::BadPrefix, format!("{s:?} is not an IPv4 prefix")))?;
    if p.trunc() != p {
        return Err((
            ErrorCode::HostBits,
            format!("{p} has host bits set (the network is {})", p.trunc()),
        ));
    }
    Ok(p)
}

/// Validates the complete stanza `xml` whose element name is `name`.
pub fn stanza(name: &str, xml: &str) -> Result<Stanza, Reject> {
    Ok(match name {
        "hello" => {
            let r: RawHello = de(name, xml)?;
            let vr = r.vr.parse::<u32>().ok().filter(|&v| v != 0).ok_or((
                ErrorCode::InvalidStanza,
                format!("vr {:?} is not a VR id (1..2^32)", r.vr),
            ))?;
            if r.credential.is_empty() {
                return Err((ErrorCode::InvalidStanza, "empty credential".into()));
            }
            Stanza::Hello(Hello {
                seq: seq(&r.seq)?,
                vr: VrId(vr),
                generation: r.generation.parse().map_err(|_| {
                    (
                        ErrorCode::InvalidStanza,
                        format!("generation {:?} is not a number", r.generation),
                    )
                })?,
                credential: r.credential,
            })
        }
        "interfaces" => {
            let r: RawInterfaces = de(name, xml)?;
            let interfaces = r
                .interfaces
                .into_iter()
                .map(|i| {
                    let address: Ipv4Net = i.address.parse().map_err(|_| {
                        (
                            ErrorCode::BadPrefix,
                            format!("{:?} is not an address/prefix", i.address),
                        )
                    })?;
                    Ok(Interface {
                        name: ifname(i.name, "interface")?,
                        mac: mac(&i.mac)?,
                        address,
                    })
                })
                .collect::<Result<_, Reject>>()?;
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
                    RawRouteOp::Add(a) => Ok(RouteOp::Add {
                        prefix: prefix(&a.prefix)?,
                        via: a.via.as_deref().map(address).transpose()?,
                        interface: ifname(a.interface.into_owned(), "interface")?,
                    }),
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
                        address: address(&a.address)?,
                        mac: mac(&a.mac)?,
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
