//! Typed, validated stanzas: what the rest of vrfwd sees of the protocol.
use ipnet::IpNet;
use std::net::IpAddr;
use vrfwd_wire::MacAddr;

pub use crate::auth::{Nonce, Proof};

/// The protocol versions this crate speaks, oldest first: 1 authenticates with
/// the credential itself, 2 with a proof over the host's nonce, 3 as 2 with
/// generations handed out by the host, 4 as 3 with IPv6, 5 as 4 with routes of
/// several weighted paths (docs/protocol.md).
pub const VERSIONS: &[u8] = &[1, 2, 3, 4, 5];

/// The newest version this crate speaks.
pub const PROTOCOL_VERSION: u8 = 5;

/// The first version in which the host hands out generations.
pub const HOST_GENERATIONS: u8 = 3;

/// The first version that carries IPv6 (prefixes, gateways, neighbours,
/// interface addresses) and several addresses per interface.
pub const DUAL_STACK: u8 = 4;

/// The first version that carries routes with several paths, each weighted.
pub const MULTIPATH: u8 = 5;

/// Most paths one route holds (as the host's next-hop groups).
pub const MAX_PATHS: usize = 64;

/// Largest weight of a path (as the kernel's: 1 to 256).
pub const MAX_WEIGHT: u16 = 256;

/// A stream's opening tag, `<vrfwd version="2" versions="1 2" nonce="…">`: the
/// version its sender uses (a host: the one it chose), every version the sender
/// speaks, and the host's challenge (version 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamHeader {
    pub version: u8,
    pub speaks: Vec<u8>,
    pub nonce: Option<Nonce>,
}

impl StreamHeader {
    /// What a client (an agent, a cloning host) opens with: the newest version,
    /// and every version it speaks.
    pub fn client() -> StreamHeader {
        StreamHeader {
            version: PROTOCOL_VERSION,
            speaks: VERSIONS.to_vec(),
            nonce: None,
        }
    }

    /// A host's answer: the version it chose, and the nonce for version 2.
    pub fn host(version: u8, nonce: Option<Nonce>) -> StreamHeader {
        StreamHeader {
            version,
            speaks: VERSIONS.to_vec(),
            nonce,
        }
    }

    /// A host's challenge, for a peer that authenticates with version 2 only
    /// (credentials never in clear text): the nonce, or the version the host
    /// chose instead.
    pub fn challenge(&self) -> Result<Nonce, NoChallenge> {
        match (self.version, self.nonce) {
            (2.., Some(nonce)) => Ok(nonce),
            (version, _) => Err(NoChallenge(version)),
        }
    }

    /// The newest version both this side and the header's sender speak.
    pub fn common_version(&self) -> Option<u8> {
        VERSIONS
            .iter()
            .rev()
            .find(|v| self.speaks.contains(v))
            .copied()
    }
}

/// A host answered with a version older than 2: no nonce to prove a credential over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the host speaks protocol version {0}; version 2 is needed (credentials never cross the wire)"
)]
pub struct NoChallenge(pub u8);

/// How a `hello` proves it may open a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// Version 1: the credential itself (clear text on the wire).
    Credential(String),
    /// Version 2: HMAC of the credential over the host's nonce, VR and generation.
    Proof(Proof),
}

/// A virtual router's id (non-zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VrId(pub u32);

/// `<hello>`: opens a session for a VR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub seq: u64,
    pub vr: VrId,
    /// Higher generations replace older sessions of the same VR (the agent after a
    /// migration).
    pub generation: u64,
    pub auth: Auth,
}

/// One guest interface, as the guest names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub mac: MacAddr,
    /// The guest's addresses and prefixes on it (at least one; before version 4
    /// exactly one, IPv4).
    pub addresses: Vec<IpNet>,
}

/// One path of a route: through `via` on `interface`, or attached to it (no
/// via). A gateway is of its prefix's family; an IPv6 link-local gateway is
/// scoped by the interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    pub via: Option<IpAddr>,
    pub interface: String,
    /// Its share of the route's flows against the other paths' (1 to
    /// [`MAX_WEIGHT`]; 1 for a route of one path).
    pub weight: u16,
}

impl Path {
    /// A path of weight 1.
    pub fn new(via: Option<IpAddr>, interface: impl Into<String>) -> Path {
        Path {
            via,
            interface: interface.into(),
            weight: 1,
        }
    }
}

/// A route's paths: 1 to [`MAX_PATHS`], no two through the same gateway on the
/// same interface (checked where they are decoded). Most routes have one: it is
/// held inline.
pub type Paths = smallvec::SmallVec<[Path; 1]>;

/// One route change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteOp {
    /// Install or replace, the paths as one set: a route's paths change
    /// together or not at all.
    Add {
        prefix: IpNet,
        paths: Paths,
    },
    Delete {
        prefix: IpNet,
    },
}

/// One neighbour change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NeighborOp {
    Add {
        address: IpAddr,
        mac: MacAddr,
        interface: String,
    },
    Delete {
        address: IpAddr,
        interface: String,
    },
}

/// Problem codes carried by `<error code="…">`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    MalformedXml,
    Forbidden,
    UnknownElement,
    InvalidStanza,
    BadVersion,
    BadPrefix,
    HostBits,
    BadAddress,
    BadMac,
    TooLarge,
    Auth,
    UnknownInterface,
    Limit,
    Sequence,
    Replaced,
    /// The VR is not in a state that allows this (a clone of a VR active here).
    WrongState,
    Internal,
}

impl ErrorCode {
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::MalformedXml,
        ErrorCode::Forbidden,
        ErrorCode::UnknownElement,
        ErrorCode::InvalidStanza,
        ErrorCode::BadVersion,
        ErrorCode::BadPrefix,
        ErrorCode::HostBits,
        ErrorCode::BadAddress,
        ErrorCode::BadMac,
        ErrorCode::TooLarge,
        ErrorCode::Auth,
        ErrorCode::UnknownInterface,
        ErrorCode::Limit,
        ErrorCode::Sequence,
        ErrorCode::Replaced,
        ErrorCode::WrongState,
        ErrorCode::Internal,
    ];

    /// The code as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedXml => "malformed-xml",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::UnknownElement => "unknown-element",
            ErrorCode::InvalidStanza => "invalid-stanza",
            ErrorCode::BadVersion => "bad-version",
            ErrorCode::BadPrefix => "bad-prefix",
            ErrorCode::HostBits => "host-bits",
            ErrorCode::BadAddress => "bad-address",
            ErrorCode::BadMac => "bad-mac",
            ErrorCode::TooLarge => "too-large",
            ErrorCode::Auth => "auth",
            ErrorCode::UnknownInterface => "unknown-interface",
            ErrorCode::Limit => "limit",
            ErrorCode::Sequence => "sequence",
            ErrorCode::Replaced => "replaced",
            ErrorCode::WrongState => "wrong-state",
            ErrorCode::Internal => "internal",
        }
    }

    pub fn parse(s: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.iter().copied().find(|c| c.as_str() == s)
    }
}

/// Every stanza of the protocol, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stanza {
    Hello(Hello),
    Interfaces {
        seq: u64,
        interfaces: Vec<Interface>,
    },
    Routes {
        seq: u64,
        ops: Vec<RouteOp>,
    },
    Neighbors {
        seq: u64,
        ops: Vec<NeighborOp>,
    },
    /// Starts a full table: everything not re-announced before `sync-end` goes.
    SyncBegin {
        seq: u64,
    },
    SyncEnd {
        seq: u64,
    },
    /// Everything up to `seq` is applied.
    Ack {
        seq: u64,
    },
    Keepalive,
    /// Host to agent (version 3), after the `hello`'s ack: the generation of
    /// this session, to present in the agent's next `hello` for the VR.
    Generation {
        generation: u64,
    },
    /// Host to cloning host, on a clone session: the VR's guest runs here now
    /// (it sent frames on its vif, or its agent took over); the cloning host drains it.
    Arrived,
    Error {
        seq: Option<u64>,
        code: ErrorCode,
        message: String,
    },
}

impl Stanza {
    /// The oldest protocol version in which this stanza can be sent: a peer
    /// that negotiated an older one rejects it whole (docs/protocol.md).
    pub fn version_needed(&self) -> u8 {
        let multipath = match self {
            Stanza::Routes { ops, .. } => ops.iter().any(|op| match op {
                RouteOp::Add { paths, .. } => paths.len() > 1,
                RouteOp::Delete { .. } => false,
            }),
            _ => false,
        };
        let dual_stack = match self {
            Stanza::Interfaces { interfaces, .. } => interfaces
                .iter()
                .any(|i| !matches!(i.addresses[..], [IpNet::V4(_)])),
            Stanza::Routes { ops, .. } => ops.iter().any(|op| match op {
                RouteOp::Add { prefix, .. } | RouteOp::Delete { prefix } => {
                    matches!(prefix, IpNet::V6(_))
                }
            }),
            Stanza::Neighbors { ops, .. } => ops.iter().any(|op| match op {
                NeighborOp::Add { address, .. } | NeighborOp::Delete { address, .. } => {
                    address.is_ipv6()
                }
            }),
            _ => false,
        };
        if multipath {
            MULTIPATH
        } else if dual_stack {
            DUAL_STACK
        } else {
            1
        }
    }

    /// The sequence number a peer acknowledges, for stanzas that carry one.
    pub fn seq(&self) -> Option<u64> {
        match self {
            Stanza::Hello(h) => Some(h.seq),
            Stanza::Interfaces { seq, .. }
            | Stanza::Routes { seq, .. }
            | Stanza::Neighbors { seq, .. }
            | Stanza::SyncBegin { seq }
            | Stanza::SyncEnd { seq } => Some(*seq),
            Stanza::Ack { .. }
            | Stanza::Keepalive
            | Stanza::Generation { .. }
            | Stanza::Arrived
            | Stanza::Error { .. } => None,
        }
    }
}
