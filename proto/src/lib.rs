//! The vrfwd route protocol (docs/protocol.md): a stream of XML stanzas inside one
//! `<vrfwd version="…">` root element (versions negotiated in it, [`StreamHeader`]), as XMPP frames its streams, carried over
//! TCP from a virtual router's agent (or a migrating host) to vrfwd.
//!
//! - [`Decoder`] takes bytes split anywhere and yields validated [`Stanza`]s; a bad
//!   stanza is an error naming the problem, never a partial value.
//! - [`encode`] writes stanzas; [`Stanza`] values are typed (prefixes without host
//!   bits, VR ids, MACs), so what decodes is what the tables may receive.
//!
//! Sans-IO and without DPDK: shared by the appliance and the guest agent.
#![deny(unsafe_code)]

mod auth;
mod decode;
mod encode;
mod raw;
mod stanza;

pub use auth::BadHex;
pub use decode::{DecodeError, Decoder, Limits};
pub use encode::{encode, stream_close, stream_header, stream_open};
pub use stanza::{
    Auth, ErrorCode, Hello, Interface, NeighborOp, NoChallenge, Nonce, Path, Paths, Proof, RouteOp,
    Stanza, StreamHeader, VrId, DUAL_STACK, HOST_GENERATIONS, MAX_PATHS, MAX_WEIGHT, MULTIPATH,
    PROTOCOL_VERSION, VERSIONS,
};
