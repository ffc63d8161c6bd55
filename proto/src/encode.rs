//! The encoder: stanzas to the bytes a peer's [`crate::Decoder`] reads back.
use crate::stanza::{Auth, NeighborOp, Path, RouteOp, Stanza, StreamHeader};
use ipnet::IpNet;
use quick_xml::escape::escape;
use std::fmt::Write;

/// A version-1 stream's opening tag, as version-1 peers write it.
pub fn stream_open() -> String {
    "<vrfwd version=\"1\">".to_owned()
}

/// A stream's opening tag with the versions its sender speaks (and a host's nonce).
pub fn stream_header(h: &StreamHeader) -> String {
    let speaks: Vec<String> = h.speaks.iter().map(u8::to_string).collect();
    let mut o = format!(
        "<vrfwd version=\"{}\" versions=\"{}\"",
        h.version,
        speaks.join(" ")
    );
    if let Some(nonce) = &h.nonce {
        let _ = write!(o, " nonce=\"{nonce}\"");
    }
    o.push('>');
    o
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

/// A route's add: one path in attributes, several as `<path>` elements.
fn write_add(o: &mut String, prefix: &IpNet, paths: &[Path]) -> std::fmt::Result {
    write!(o, "<add prefix=\"{prefix}\"")?;
    if let [path] = paths {
        write_path(o, path, false)?;
        return o.write_str("/>");
    }
    o.write_char('>')?;
    for path in paths {
        o.write_str("<path")?;
        write_path(o, path, true)?;
        o.write_str("/>")?;
    }
    o.write_str("</add>")
}

/// A path's attributes (its weight when `weighted` and not 1).
fn write_path(o: &mut String, path: &Path, weighted: bool) -> std::fmt::Result {
    if let Some(via) = path.via {
        write!(o, " via=\"{via}\"")?;
    }
    write!(o, " interface=\"{}\"", escape(&path.interface))?;
    if weighted && path.weight != 1 {
        write!(o, " weight=\"{}\"", path.weight)?;
    }
    Ok(())
}

fn write_stanza(o: &mut String, s: &Stanza) -> std::fmt::Result {
    match s {
        Stanza::Hello(h) => {
            write!(
                o,
                "<hello seq=\"{}\" vr=\"{}\" generation=\"{}\"",
                h.seq, h.vr.0, h.generation
            )?;
            match &h.auth {
                Auth::Credential(c) => write!(o, " credential=\"{}\"/>", escape(c)),
                Auth::Proof(p) => write!(o, " proof=\"{p}\"/>"),
            }
        }
        Stanza::Interfaces { seq, interfaces } => {
            write!(o, "<interfaces seq=\"{seq}\">")?;
            for i in interfaces {
                write!(
                    o,
                    "<interface name=\"{}\" mac=\"{}\" address=\"",
                    escape(&i.name),
                    i.mac
                )?;
                for (n, a) in i.addresses.iter().enumerate() {
                    let gap = if n > 0 { " " } else { "" };
                    write!(o, "{gap}{a}")?;
                }
                o.write_str("\"/>")?;
            }
            o.write_str("</interfaces>")
        }
        Stanza::Routes { seq, ops } => {
            write!(o, "<routes seq=\"{seq}\">")?;
            for op in ops {
                match op {
                    RouteOp::Add { prefix, paths } => write_add(o, prefix, paths)?,
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
        Stanza::Generation { generation } => write!(o, "<generation value=\"{generation}\"/>"),
        Stanza::Arrived => o.write_str("<arrived/>"),
        Stanza::Error { seq, code, message } => {
            o.write_str("<error")?;
            if let Some(seq) = seq {
                write!(o, " seq=\"{seq}\"")?;
            }
            write!(o, " code=\"{}\">{}</error>", code.as_str(), escape(message))
        }
    }
}
