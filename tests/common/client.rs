//! A route-protocol client for the integration tests, as an agent would be:
//! stanzas as text with the next `seq` filled in, replies decoded.
use socket2::{Domain, Socket, Type};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;
use vrfwd_proto::{
    encode, stream_header, stream_open, Auth, Decoder, ErrorCode, Hello, Limits, Nonce, Proof,
    Stanza, StreamHeader, VrId,
};

/// A protocol client, as an agent would be.
pub struct Client {
    pub stream: TcpStream,
    decoder: Decoder,
    pub seq: u64,
    /// The generation the host handed out last (version 3).
    pub generation: Option<u64>,
}

impl Client {
    /// Connected from 127.0.0.1, the stream opened.
    pub fn connect(port: u16) -> Client {
        Client::connect_from(Ipv4Addr::LOCALHOST, port)
    }

    /// Connected from `source` (any 127/8 address: many sources on one host),
    /// the stream opened.
    pub fn connect_from(source: Ipv4Addr, port: u16) -> Client {
        let mut c = Client::bare(source, port);
        c.raw(stream_open().as_bytes());
        c
    }

    /// Connected from `source` as a version-2 peer; returns the host's nonce.
    pub fn connect_v2(source: Ipv4Addr, port: u16) -> (Client, Nonce) {
        let mut c = Client::bare(source, port);
        c.raw(stream_header(&StreamHeader::client()).as_bytes());
        let h = c.header().expect("the host's stream header");
        let nonce = h.challenge().unwrap_or_else(|e| panic!("{e}: {h:?}"));
        (c, nonce)
    }

    /// The `hello` a version-2 agent sends: a proof of `credential` over `nonce`.
    pub fn hello_v2(
        &mut self,
        vr: u32,
        generation: u64,
        credential: &str,
        nonce: &Nonce,
    ) -> String {
        self.seq += 1;
        encode(&Stanza::Hello(Hello {
            seq: self.seq,
            vr: VrId(vr),
            generation,
            auth: Auth::Proof(Proof::new(credential.as_bytes(), nonce, vr, generation)),
        }))
    }

    /// Reads until the host's stream header has arrived.
    pub fn header(&mut self) -> Option<StreamHeader> {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(h) = self.decoder.header() {
                return Some(h.clone());
            }
            match self.stream.read(&mut buf) {
                Ok(0) | Err(_) => return None,
                Ok(n) => {
                    self.decoder.feed(&buf[..n]);
                    if let Some(Err(e)) = self.decoder.next_stanza() {
                        panic!("the host's stream: {e}");
                    }
                }
            }
        }
    }

    /// Connected from `source`, nothing sent yet.
    pub fn bare(source: Ipv4Addr, port: u16) -> Client {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        socket
            .bind(&SocketAddr::from((source, 0)).into())
            .expect("bind the source address");
        socket
            .connect(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)).into())
            .expect("connect");
        let stream: TcpStream = socket.into();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Client {
            stream,
            decoder: Decoder::new(Limits::default()),
            seq: 0,
            generation: None,
        }
    }

    pub fn raw(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// The next stanza from vrfwd other than a keepalive or a handed-out
    /// generation (kept in `generation`); None once it closed.
    pub fn recv(&mut self) -> Option<Stanza> {
        let mut buf = [0u8; 4096];
        loop {
            while let Some(r) = self.decoder.next_stanza() {
                match r.expect("vrfwd sends valid stanzas") {
                    Stanza::Keepalive => continue,
                    Stanza::Generation { generation } => self.generation = Some(generation),
                    s => return Some(s),
                }
            }
            match self.stream.read(&mut buf) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.decoder.feed(&buf[..n]),
            }
        }
    }

    /// Sends a stanza given as text with the next `seq` filled in; returns the reply.
    pub fn call(&mut self, stanza: &str) -> Option<Stanza> {
        self.seq += 1;
        self.raw(stanza.replace("SEQ", &self.seq.to_string()).as_bytes());
        self.recv()
    }

    pub fn ok(&mut self, stanza: &str) {
        let reply = self.call(stanza);
        assert_eq!(reply, Some(Stanza::Ack { seq: self.seq }), "{stanza}");
    }

    /// A version-2 session for VR `vr` from `source`, authenticated by proof over
    /// the host's nonce, with `interfaces` (a whole `<interfaces>` stanza) declared.
    pub fn session_v2(
        port: u16,
        source: Ipv4Addr,
        vr: u32,
        credential: &str,
        interfaces: &str,
    ) -> Client {
        let (mut c, nonce) = Client::connect_v2(source, port);
        let hello = c.hello_v2(vr, 1, credential, &nonce);
        c.raw(hello.as_bytes());
        assert_eq!(c.recv(), Some(Stanza::Ack { seq: c.seq }));
        c.ok(interfaces);
        c
    }

    pub fn session(port: u16, vr: u32, generation: u64, credential: &str) -> Client {
        let mut c = Client::connect(port);
        c.ok(&format!("<hello seq=\"SEQ\" vr=\"{vr}\" generation=\"{generation}\" credential=\"{credential}\"/>"));
        c.ok("<interfaces seq=\"SEQ\"><interface name=\"g0\" mac=\"02:00:00:00:01:01\" address=\"10.0.1.1/24\"/><interface name=\"g1\" mac=\"02:00:00:00:02:01\" address=\"10.0.2.1/24\"/></interfaces>");
        c
    }
}

pub fn error_code(reply: Option<Stanza>) -> ErrorCode {
    match reply {
        Some(Stanza::Error { code, .. }) => code,
        other => panic!("expected an error, got {other:?}"),
    }
}
