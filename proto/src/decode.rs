//! The incremental decoder: bytes in, split anywhere; validated stanzas out.
//!
//! A small scanner frames the stream first (tags, quotes, open elements), so bytes
//! are looked at once however they arrive, and only a complete stanza is handed to
//! quick-xml and serde. Framing problems (no `<vrfwd version="1">`, a DTD, a
//! comment or processing instruction, an oversized stanza, text between stanzas)
//! are fatal, and so are closing tags that do not match, namespaced names,
//! nesting deeper than the protocol's stanza and child, and a second or malformed
//! XML declaration: the stream cannot be trusted after them. A complete stanza
//! that fails validation is rejected alone and the stream goes on.
//!
//! Memory: what the decoder holds is the stanza in progress (at most
//! [`Limits::max_stanza_bytes`]) plus the last fed chunk; whitespace between
//! stanzas is dropped as it is scanned, and consumed bytes are released in
//! amortised O(1) (a large read of many stanzas decodes in linear time).
use crate::raw;
use crate::stanza::{ErrorCode, Stanza, StreamHeader, VERSIONS};

/// Bounds on what a peer may make the decoder hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest stanza, in bytes.
    pub max_stanza_bytes: usize,
}

/// Elements a stanza may nest below the root: the stanza, its children and
/// theirs (`<routes><add><path/></add></routes>`, version 5). A deeper tag is
/// refused at once.
pub const MAX_DEPTH: usize = 3;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_stanza_bytes: 1 << 20,
        }
    }
}

/// A stanza or the stream was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct DecodeError {
    pub code: ErrorCode,
    pub message: String,
    /// The rejected stanza's sequence number, when it could be read.
    pub seq: Option<u64>,
    /// The stream is unusable from here on.
    pub fatal: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the root element.
    Prolog,
    /// Inside `<vrfwd>`.
    Open,
    /// After `</vrfwd>`.
    Closed,
    Failed,
}

/// Buffer capacity a decoder keeps between stanzas.
const RETAINED_BUFFER: usize = 16 << 10;

/// The decoder of one stream.
pub struct Decoder {
    buf: Vec<u8>,
    /// Bytes before this offset are consumed (released lazily, see `compact`).
    base: usize,
    /// Next byte to scan.
    scan: usize,
    /// Start of the stanza being scanned (valid while elements are open or a tag is
    /// being scanned at stream level).
    stanza_start: usize,
    /// Start of the tag being scanned, if inside one.
    tag_start: Option<usize>,
    /// The quote character of the attribute value being scanned.
    quote: Option<u8>,
    /// Names of the elements open inside the root (a stanza and its children),
    /// at most [`MAX_DEPTH`].
    open: Vec<Vec<u8>>,
    state: State,
    /// An XML declaration was seen (only one, only before the root).
    declared: bool,
    /// The peer's root element, once read.
    header: Option<StreamHeader>,
    limits: Limits,
}

impl Decoder {
    pub fn new(limits: Limits) -> Decoder {
        Decoder {
            buf: Vec::new(),
            base: 0,
            scan: 0,
            stanza_start: 0,
            tag_start: None,
            quote: None,
            open: Vec::new(),
            state: State::Prolog,
            declared: false,
            header: None,
            limits,
        }
    }

    /// Changes the limits from the next byte on (a session raises the stanza
    /// limit once its peer has authenticated).
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Appends received bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.state != State::Failed && self.state != State::Closed {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// True once the peer closed the stream with `</vrfwd>`.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Bytes received and not yet consumed (a stanza in progress).
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.base
    }

    fn fail(&mut self, code: ErrorCode, message: String) -> Option<Result<Stanza, DecodeError>> {
        self.state = State::Failed;
        self.buf = Vec::new();
        self.base = 0;
        Some(Err(DecodeError {
            code,
            message,
            seq: None,
            fatal: true,
        }))
    }

    /// The next stanza, a rejection, or None when more bytes are needed (or the
    /// stream is closed or failed). Jumps between the bytes that matter (`<`,
    /// `>`, quotes) with memchr, so each byte is looked at about once.
    pub fn next_stanza(&mut self) -> Option<Result<Stanza, DecodeError>> {
        loop {
            if matches!(self.state, State::Closed | State::Failed) {
                return None;
            }
            let rest = &self.buf[self.scan..];
            if rest.is_empty() {
                return None;
            }
            let Some(tag_start) = self.tag_start else {
                if self.open.is_empty() {
                    // Between stanzas: only whitespace may come before the next
                    // tag, and it is dropped at once (it must not pile up).
                    let blank = rest.iter().take_while(|b| b.is_ascii_whitespace()).count();
                    self.scan += blank;
                    let Some(&b) = rest.get(blank) else {
                        self.compact(self.scan);
                        return None;
                    };
                    if b != b'<' {
                        return self.fail(
                            ErrorCode::MalformedXml,
                            format!("text {:?} outside any stanza", b as char),
                        );
                    }
                    self.compact(self.scan);
                    self.tag_start = Some(self.scan);
                    self.stanza_start = self.scan;
                    self.scan += 1;
                } else {
                    // Text inside a stanza: skip to the next tag.
                    match memchr::memchr(b'<', rest) {
                        Some(k) => {
                            self.tag_start = Some(self.scan + k);
                            self.scan += k + 1;
                        }
                        None => self.scan = self.buf.len(),
                    }
                }
                if let Some(r) = self.check_size(self.scan - 1) {
                    return Some(r);
                }
                continue;
            };
            let found = match self.quote {
                Some(q) => memchr::memchr(q, rest),
                None if self.buf[tag_start + 1..].first() == Some(&b'!') => {
                    memchr::memchr(b'>', rest)
                }
                None => memchr::memchr3(b'"', b'\'', b'>', rest),
            };
            let Some(k) = found else {
                self.scan = self.buf.len();
                if let Some(r) = self.check_size(self.scan - 1) {
                    return Some(r);
                }
                continue;
            };
            let i = self.scan + k;
            self.scan = i + 1;
            if let Some(r) = self.check_size(i) {
                return Some(r);
            }
            match (self.quote, self.buf[i]) {
                (Some(_), _) => self.quote = None,
                (None, b'>') => {
                    self.tag_start = None;
                    if let Some(r) = self.end_of_tag(tag_start, i) {
                        return Some(r);
                    }
                }
                (None, q) => self.quote = Some(q),
            }
        }
    }

    fn check_size(&mut self, i: usize) -> Option<Result<Stanza, DecodeError>> {
        let in_stanza = !self.open.is_empty() || self.tag_start.is_some();
        if in_stanza && i + 1 - self.stanza_start > self.limits.max_stanza_bytes {
            let max = self.limits.max_stanza_bytes;
            return self.fail(
                ErrorCode::TooLarge,
                format!("stanza larger than {max} bytes"),
            );
        }
        None
    }

    /// A tag spans `start..=end`.
    fn end_of_tag(&mut self, start: usize, end: usize) -> Option<Result<Stanza, DecodeError>> {
        let tag = &self.buf[start..=end];
        match tag.get(1) {
            Some(b'!') => {
                return self.fail(
                    ErrorCode::Forbidden,
                    "DTDs, entities, comments and CDATA are not allowed".into(),
                );
            }
            Some(b'?') if tag.starts_with(b"<?xml") && !tag.starts_with(b"<?xml-") => {
                if self.state != State::Prolog || self.declared {
                    return self.fail(
                        ErrorCode::MalformedXml,
                        "the XML declaration may come once, before <vrfwd>".into(),
                    );
                }
                if !is_declaration(tag) {
                    let tag = String::from_utf8_lossy(tag).into_owned();
                    return self.fail(
                        ErrorCode::MalformedXml,
                        format!("{tag:?} is not an XML 1.0 UTF-8 declaration"),
                    );
                }
                self.declared = true;
                return None;
            }
            Some(b'?') => {
                return self.fail(
                    ErrorCode::Forbidden,
                    "processing instructions are not allowed".into(),
                );
            }
            _ => {}
        }
        let closing = tag.get(1) == Some(&b'/');
        let self_closing = tag.len() >= 3 && tag[tag.len() - 2] == b'/';
        if self.state == State::Prolog {
            return self.open_root(start, end, closing || self_closing);
        }
        // Names are compared as bytes; only elements that stay open are stored.
        let name = tag_name(tag);
        if name.contains(&b':') {
            let name = String::from_utf8_lossy(name).into_owned();
            return self.fail(
                ErrorCode::Forbidden,
                format!("namespaced name <{name}>: the protocol has no namespaces"),
            );
        }
        if closing {
            match self.open.pop() {
                None if name == b"vrfwd" => {
                    self.state = State::Closed;
                    self.buf.clear();
                    self.scan = 0;
                    self.base = 0;
                    return None;
                }
                None => {
                    let name = String::from_utf8_lossy(name).into_owned();
                    return self.fail(
                        ErrorCode::MalformedXml,
                        format!("unexpected </{name}> at stream level"),
                    );
                }
                Some(open) if open != name => {
                    let (name, open) = (
                        String::from_utf8_lossy(name),
                        String::from_utf8_lossy(&open),
                    );
                    let message = format!("</{name}> closes <{open}>");
                    return self.fail(ErrorCode::MalformedXml, message);
                }
                Some(_) => {}
            }
        } else if !self_closing {
            if self.open.len() == MAX_DEPTH {
                return self.fail(
                    ErrorCode::Forbidden,
                    format!("elements nested deeper than {MAX_DEPTH} below <vrfwd>"),
                );
            }
            let name = name.to_vec();
            self.open.push(name);
        }
        if !self.open.is_empty() {
            return None;
        }
        Some(self.take_stanza(end))
    }

    fn open_root(
        &mut self,
        start: usize,
        end: usize,
        not_opening: bool,
    ) -> Option<Result<Stanza, DecodeError>> {
        let tag = String::from_utf8_lossy(&self.buf[start..=end]).into_owned();
        if not_opening || element_name(&tag) != "vrfwd" {
            return self.fail(
                ErrorCode::MalformedXml,
                "the stream must open with <vrfwd version=\"…\">".into(),
            );
        }
        match header(&tag) {
            Ok(h) if h.common_version().is_some() => {
                self.header = Some(h);
                self.state = State::Open;
                self.compact(end + 1);
                None
            }
            Ok(h) => self.fail(
                ErrorCode::BadVersion,
                format!(
                    "the peer speaks versions {:?}, this side {VERSIONS:?}: none in common",
                    h.speaks
                ),
            ),
            Err(message) => self.fail(ErrorCode::BadVersion, message),
        }
    }

    /// The peer's stream header, once its root element has opened.
    pub fn header(&self) -> Option<&StreamHeader> {
        self.header.as_ref()
    }

    /// The stanza ending at `end` is complete: validate it and drop its bytes.
    fn take_stanza(&mut self, end: usize) -> Result<Stanza, DecodeError> {
        let result = match std::str::from_utf8(&self.buf[self.stanza_start..=end]) {
            Ok(xml) => {
                let name = element_name(xml).to_owned();
                raw::stanza(&name, xml).map_err(|(code, message)| DecodeError {
                    code,
                    message,
                    seq: attribute(xml, "seq").and_then(|s| s.parse().ok()),
                    fatal: false,
                })
            }
            Err(_) => Err(DecodeError {
                code: ErrorCode::MalformedXml,
                message: "stanza is not UTF-8".into(),
                seq: None,
                fatal: false,
            }),
        };
        self.compact(end + 1);
        result
    }

    /// Consumes the bytes before `upto`. They are released when they are at least
    /// half the buffer, so many stanzas in one read cost linear time, not
    /// quadratic, and a consumed prefix never outgrows what is live.
    fn compact(&mut self, upto: usize) {
        self.base = upto;
        if self.base == self.buf.len() {
            self.buf.clear();
            // An idle session keeps a small buffer, not its largest stanza's.
            self.buf.shrink_to(RETAINED_BUFFER);
        } else if self.base * 2 >= self.buf.len() {
            self.buf.drain(..self.base);
        } else {
            return;
        }
        self.scan -= self.base;
        self.stanza_start = self.stanza_start.saturating_sub(self.base);
        self.tag_start = self.tag_start.map(|t| t - self.base);
        self.base = 0;
    }
}

/// The attributes of `<vrfwd …>`: `version` (required), `versions` (the
/// versions the sender speaks; `version` alone when absent), `nonce` (a host's).
fn header(tag: &str) -> Result<StreamHeader, String> {
    let number = |v: &str| {
        (v.bytes().all(|b| b.is_ascii_digit()) && !v.starts_with('0'))
            .then(|| v.parse::<u8>().ok())
            .flatten()
    };
    let version = attribute(tag, "version")
        .as_deref()
        .and_then(number)
        .ok_or_else(|| format!("{tag:?} names no version"))?;
    let speaks = match attribute(tag, "versions") {
        None => vec![version],
        Some(list) => list
            .split_ascii_whitespace()
            .map(|v| number(v).ok_or_else(|| format!("versions {list:?} are not numbers")))
            .collect::<Result<Vec<u8>, String>>()?,
    };
    if !speaks.contains(&version) {
        return Err(format!(
            "version {version} is not among versions {speaks:?}"
        ));
    }
    let nonce = attribute(tag, "nonce")
        .map(|n| n.parse().map_err(|e| format!("nonce: {e}")))
        .transpose()?;
    Ok(StreamHeader {
        version,
        speaks,
        nonce,
    })
}

/// True for `<?xml version="1.0"?>`, optionally with `encoding="UTF-8"` and
/// `standalone="yes|no"` in that order (either quote), as XML 1.0 writes them.
fn is_declaration(tag: &[u8]) -> bool {
    let Some(body) = tag
        .strip_prefix(b"<?xml")
        .and_then(|t| t.strip_suffix(b"?>"))
        .and_then(|t| std::str::from_utf8(t).ok())
    else {
        return false;
    };
    let mut wanted = [
        ("version", &["1.0"][..], true),
        ("encoding", &["UTF-8", "utf-8"][..], false),
        ("standalone", &["yes", "no"][..], false),
    ]
    .into_iter();
    let mut rest = body;
    loop {
        let trimmed = rest.trim_start_matches([' ', '\t', '\r', '\n']);
        if trimmed.is_empty() {
            return wanted.all(|(_, _, required)| !required);
        }
        if trimmed.len() == rest.len() {
            return false; // pseudo-attributes are separated by whitespace
        }
        let Some((name, value)) = trimmed.split_once('=') else {
            return false;
        };
        let Some(quote) = value.chars().next().filter(|q| *q == '"' || *q == '\'') else {
            return false;
        };
        let Some((value, after)) = value[1..].split_once(quote) else {
            return false;
        };
        // The next expected pseudo-attribute with this name; optional ones may be skipped.
        let found = wanted
            .by_ref()
            .find(|(n, _, required)| *n == name || *required)
            .filter(|(n, values, _)| *n == name && values.contains(&value));
        if found.is_none() {
            return false;
        }
        rest = after;
    }
}

/// The element name of a tag, as bytes (`<name ...`, `</name>`, `<name/>`).
fn tag_name(tag: &[u8]) -> &[u8] {
    let rest = tag
        .strip_prefix(b"</")
        .or_else(|| tag.strip_prefix(b"<"))
        .unwrap_or(tag);
    let end = rest
        .iter()
        .position(|&b| b.is_ascii_whitespace() || b == b'/' || b == b'>')
        .unwrap_or(rest.len());
    &rest[..end]
}

/// The element name of a tag or stanza text (`<name ...` or `</name>`).
fn element_name(xml: &str) -> &str {
    // tag_name stops at ASCII bytes only, so the slice is still UTF-8.
    std::str::from_utf8(tag_name(xml.trim_start().as_bytes())).unwrap_or("")
}

/// The value of attribute `name` in the first tag of `xml`, unescaped.
fn attribute(xml: &str, name: &str) -> Option<String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    loop {
        match reader.read_event().ok()? {
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e) => {
                let a = e.try_get_attribute(name).ok()??;
                return a
                    .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                    .ok()
                    .map(|v| v.into_owned());
            }
            quick_xml::events::Event::Eof => return None,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_declaration;

    #[test]
    fn declarations_as_xml_writes_them_and_nothing_else() {
        for good in [
            "<?xml version=\"1.0\"?>",
            "<?xml version='1.0' encoding='UTF-8'?>",
            "<?xml version=\"1.0\" standalone=\"no\" ?>",
            "<?xml version=\"1.0\" encoding=\"utf-8\" standalone=\"yes\"?>",
        ] {
            assert!(is_declaration(good.as_bytes()), "{good}");
        }
        for bad in [
            "<?xml?>",
            "<?xml encoding=\"UTF-8\"?>",
            "<?xmlversion=\"1.0\"?>",
            "<?xml version=\"1.1\"?>",
            "<?xml version=\"1.0\" encoding=\"latin1\"?>",
            "<?xml version=\"1.0\" standalone=\"yes\" encoding=\"UTF-8\"?>",
            "<?xml version=\"1.0\" version=\"1.0\"?>",
            "<?xml version=\"1.0\" x=\"1\"?>",
            "<?xml version=\"1.0?>",
            "<?xml version=1.0?>",
        ] {
            assert!(!is_declaration(bad.as_bytes()), "{bad}");
        }
    }
}
