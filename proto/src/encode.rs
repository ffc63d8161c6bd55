//! The encoder: stanzas to the bytes a peer's [`crate::Decoder`] reads back.
use crate::stanza::{NeighborOp, RouteOp, Stanza, PROTOCOL_VERSION};
use quick_xml::escape::escape;
use std::fmt::Write;

/// The stream's opening tag.
pub fn stream_open() -> String {
    format!("<vrfwd version=\"{PROTOCOL_VERSION}\">")
}

/// The stream's closing tag.
pub fn stream_close() -> &'static str {
    "</vrfwd>"
}

/// One stanza as XML.
pub fn encode(s: &Stanza) -> String {
    let mut o = String::new();
    // Writing to a String cannot fail.
    let _ = write_stanza(&mut o, s);
    o
}

fn write_stanza(o: &mut String, s: &Stanza) -> std::fmt::Result {
    match s {
        Stanza::Hello(h) => write!(
            o,
            "<hello seq=\"{}\" vr=\"{}\" generation=\"{}\" credential=\"{}\"/>",
            h.seq,
            h.vr.0,
            h.generation,
            escape(&h.credential)
        ),
        Stanza::Interfaces { seq, interfaces } => {
            write!(o, "<interfaces seq=\"{seq}\">")?;
            for i in interfaces {
                write!(
                    o,
                    "<interface name=\"{}\" mac=\"{}\" address=\"{}\"/>",
                    escape(&i.name),
                    i.mac,
                    i.address
                )?;
            }
            o.write_str("</interfaces>")
        }
        Stanza::Routes { seq, ops } => {
            write!(o, "<routes seq=\"{seq}\">")?;
            for op in ops {
                match op {
                    RouteOp::Add {
                        prefix,
                        via: Some(via),
                        interface,
                    } => write!(
                        o,
                        "<add prefix=\"{prefix}\" via=\"{via}\" interface=\"{}\"/>",
                        escape(interface)
                    )?,
                    RouteOp::Add {
                        prefix,
                        via: None,
                        interface,
                    } => write!(
                        o,
                        "<add prefix=\"{prefix}\" interface=\"{}\"/>",
                        escape(interface)
                    )?,
                    RouteOp::Delete { prefix } => write!(o, "<delete prefix=\"{prefix}\"/>")?,
                }
            }
            o.write_str("</routes>")
        }
        Stanza::Neighbors { seq, ops } => {
            write!(o, "<neighbors seq=\"{seq}\">")?;
            for op in ops {
                match op {
                    NeighborOp::Add {
                        address,
                        mac,
                        interface,
                    } => write!(
                        o,
                        "<add address=\"{address}\" mac=\"{mac}\" interface=\"{}\"/>",
                        escape(interface)
                    )?,
                    NeighborOp::Delete { address, interface } => write!(
                        o,
                        "<delete address=\"{address}\" interface=\"{}\"/>",
                        escape(interface)
                    )?,
                }
            }
            o.write_str("</neighbors>")
        }
        Stanza::SyncBegin { seq } => write!(o, "<sync-begin seq=\"{seq}\"/>"),
        Stanza::SyncEnd { seq } => write!(o, "<sync-end seq=\"{seq}\"/>"),
        Stanza::Ack { seq } => write!(o, "<ack seq=\"{seq}\"/>"),
        Stanza::Keepalive => o.write_str("<keepalive/>"),
        Stanza::Error { seq, code, message } => {
            o.write_str("<error")?;
            if let Some(seq) = seq {
                write!(o, " seq=\"{seq}\"")?;
            }
            write!(o, " code=\"{}\">{}</error>", code.as_str(), escape(message))
        }
    }
}
