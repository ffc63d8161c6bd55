//! A blocking route-protocol session for the benchmarks, as vrfwd-agent opens
//! it: a version-2 stream from a chosen local address, `hello` proving the
//! benchmark credential over the host's nonce, then stanzas with `SEQ` filled in.
use anyhow::{bail, Result};
use socket2::{Domain, Socket, Type};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use vrfwd_proto::{
    encode, stream_header, Auth, Decoder, Hello, Limits, Proof, Stanza, StreamHeader, VrId,
};

use super::rig::CREDENTIAL;

/// A TCP connection to vrfwd's listener on `port`, from `source` (any 127/8
/// address: many sources on one machine).
pub fn connect(source: Ipv4Addr, port: u16) -> Result<TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.bind(&SocketAddr::from((source, 0)).into())?;
    socket.connect(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)).into())?;
    let stream: TcpStream = socket.into();
    stream.set_nodelay(true)?;
    Ok(stream)
}

pub struct Session {
    pub stream: TcpStream,
    decoder: Decoder,
    pub seq: u64,
}

impl Session {
    /// An authenticated session for VR `vr` (id), its interfaces not declared yet.
    pub fn open(source: Ipv4Addr, port: u16, vr: u32) -> Result<Session> {
        let mut s = Session {
            stream: connect(source, port)?,
            decoder: Decoder::new(Limits::default()),
            seq: 0,
        };
        s.stream
            .write_all(stream_header(&StreamHeader::client()).as_bytes())?;
        let mut buf = [0u8; 4096];
        let nonce = loop {
            if let Some(h) = s.decoder.header() {
                break h.challenge()?;
            }
            let n = s.stream.read(&mut buf)?;
            if n == 0 {
                bail!("vrfwd closed before its header");
            }
            s.decoder.feed(&buf[..n]);
            if let Some(Err(e)) = s.decoder.next_stanza() {
                bail!("{e}");
            }
        };
        s.seq = 1;
        let hello = Stanza::Hello(Hello {
            seq: 1,
            vr: VrId(vr),
            generation: 1,
            auth: Auth::Proof(Proof::new(CREDENTIAL.as_bytes(), &nonce, vr, 1)),
        });
        s.stream.write_all(encode(&hello).as_bytes())?;
        s.wait_ack(1)?;
        Ok(s)
    }

    /// Sends one stanza (`SEQ` replaced by its number) and returns how long its
    /// ack took.
    pub fn call(&mut self, stanza: &str) -> Result<Duration> {
        self.seq += 1;
        let start = Instant::now();
        self.stream
            .write_all(stanza.replace("SEQ", &self.seq.to_string()).as_bytes())?;
        self.wait_ack(self.seq)?;
        Ok(start.elapsed())
    }

    /// Reads until the ack of `want` (acks are cumulative).
    pub fn wait_ack(&mut self, want: u64) -> Result<()> {
        let mut buf = [0u8; 4096];
        loop {
            while let Some(r) = self.decoder.next_stanza() {
                match r? {
                    Stanza::Ack { seq } if seq == want => return Ok(()),
                    Stanza::Ack { .. } | Stanza::Keepalive | Stanza::Generation { .. } => {}
                    other => bail!("vrfwd answered {}", encode(&other)),
                }
            }
            let n = self.stream.read(&mut buf)?;
            if n == 0 {
                bail!("vrfwd closed the session");
            }
            self.decoder.feed(&buf[..n]);
        }
    }
}
