//! The agent's loop: subscribe to the kernel's route, link, address and
//! neighbour events (IPv4 and IPv6), dump the kernel's state, connect to vrfwd, say hello with the generation the
//! host handed out last (version 3; the clock with older hosts),
//! declare the interfaces, send the whole table between `sync-begin` and
//! `sync-end`, then stream changes, coalesced over a short window. IPv6 goes
//! only to a host that negotiated protocol version 4. Any failure
//! (TCP error, silence from the host, an interface flapping after a migration)
//! closes the session; the next one starts with a full sync, after a capped
//! exponential back-off.
use crate::config::AgentConfig;
use crate::kernel::{Changed, KernelState};
use anyhow::{bail, Context, Result};
use futures::stream::TryStreamExt;
use futures::StreamExt;
use ipnet::IpNet;
use netlink_packet_core::NetlinkPayload;
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::constants::{
    RTMGRP_IPV4_IFADDR, RTMGRP_IPV4_ROUTE, RTMGRP_IPV6_IFADDR, RTMGRP_IPV6_ROUTE, RTMGRP_LINK,
    RTMGRP_NEIGH,
};
use rtnetlink::sys::{AsyncSocket, SocketAddr};
use rtnetlink::{Handle, RouteMessageBuilder};
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{sleep, Instant};
use vrfwd_proto::{
    encode, stream_header, Auth, Decoder, Hello, Limits, Nonce, Proof, RouteOp, Stanza,
    StreamHeader, VrId, DUAL_STACK, HOST_GENERATIONS, MULTIPATH,
};

/// Routes per `routes` stanza.
const ROUTES_PER_STANZA: usize = 2000;
/// Stanzas sent and not yet acknowledged before the agent waits.
const WINDOW: u64 = 32;

type Events = futures::channel::mpsc::UnboundedReceiver<(
    netlink_packet_core::NetlinkMessage<RouteNetlinkMessage>,
    SocketAddr,
)>;

/// The sysctl that makes the kernel report routes using nexthop objects (as
/// FRR installs them) with their paths expanded, and notify their routes when
/// a nexthop changes (on by default; absent before Linux 5.3).
const NEXTHOP_COMPAT_MODE: &str = "/proc/sys/net/ipv4/nexthop_compat_mode";

/// Refuses to run when the kernel would report routes by nexthop object id
/// only: their paths would never reach the host.
fn check_nexthop_compat_mode(path: &std::path::Path) -> Result<()> {
    match std::fs::read_to_string(path) {
        Ok(v) if v.trim() == "0" => bail!(
            "{} is 0: routes using nexthop objects (FRR's) would reach the agent without their paths; set it to 1",
            path.display()
        ),
        _ => Ok(()),
    }
}

/// Runs forever (until the process is stopped).
pub async fn run(config: AgentConfig, mut kernel: KernelState) -> Result<()> {
    let credential = config.credential()?;
    check_nexthop_compat_mode(std::path::Path::new(NEXTHOP_COMPAT_MODE))?;
    let (mut connection, handle, mut events) = rtnetlink::new_connection().context("rtnetlink")?;
    // A large receive buffer: a full table's worth of events can arrive at once.
    let socket = connection.socket_mut().socket_mut();
    let _ = socket.set_rx_buf_sz(32 << 20);
    socket
        .bind(&SocketAddr::new(
            0,
            RTMGRP_LINK
                | RTMGRP_IPV4_IFADDR
                | RTMGRP_IPV4_ROUTE
                | RTMGRP_IPV6_IFADDR
                | RTMGRP_IPV6_ROUTE
                | RTMGRP_NEIGH,
        ))
        .context("subscribing to route events")?;
    tokio::spawn(connection);
    let mut backoff = Duration::from_millis(100);
    // The generation the host handed out last (none yet): it survives reconnects
    // and migrations (the agent's memory moves with the guest), not a restart.
    let mut generation = 0u64;
    loop {
        // Subscribed first, dumped second: an event that races the dump is applied
        // after it, so nothing is missed.
        kernel.clear();
        dump(&handle, &mut kernel)
            .await
            .context("dumping the kernel's routes")?;
        let started = Instant::now();
        match session(
            &config,
            &credential,
            &mut kernel,
            &mut events,
            &mut generation,
        )
        .await
        {
            Ok(()) => tracing::info!("session closed by the host"),
            Err(e) => tracing::warn!("session ended: {e:#}"),
        }
        if started.elapsed() > Duration::from_secs(10) {
            backoff = Duration::from_millis(100);
        }
        sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_millis(config.reconnect_max_ms));
    }
}

async fn dump(handle: &Handle, kernel: &mut KernelState) -> Result<()> {
    let mut links = handle.link().get().execute();
    while let Some(l) = links.try_next().await? {
        kernel.apply(&RouteNetlinkMessage::NewLink(l));
    }
    let mut addresses = handle.address().get().execute();
    while let Some(a) = addresses.try_next().await? {
        kernel.apply(&RouteNetlinkMessage::NewAddress(a));
    }
    for query in [
        RouteMessageBuilder::<Ipv4Addr>::new().build(),
        RouteMessageBuilder::<Ipv6Addr>::new().build(),
    ] {
        let mut routes = handle.route().get(query).execute();
        while let Some(r) = routes.try_next().await? {
            kernel.apply(&RouteNetlinkMessage::NewRoute(r));
        }
    }
    let mut neighbours = handle.neighbours().get().execute();
    while let Some(n) = neighbours.try_next().await? {
        kernel.apply(&RouteNetlinkMessage::NewNeighbour(n));
    }
    Ok(())
}

/// One connection to vrfwd.
struct Link {
    stream: TcpStream,
    decoder: Decoder,
    seq: u64,
    acked: u64,
    /// The generation the host handed out for this session (version 3).
    handed_out: Option<u64>,
}

impl Link {
    async fn send(&mut self, stanza: &Stanza) -> Result<u64> {
        let stanza = match stanza {
            Stanza::Keepalive => Stanza::Keepalive,
            other => {
                self.seq += 1;
                with_seq(other, self.seq)
            }
        };
        self.stream.write_all(encode(&stanza).as_bytes()).await?;
        Ok(self.seq)
    }

    /// Reads what the host sent; false if it closed the stream.
    fn absorb(&mut self, bytes: &[u8]) -> Result<()> {
        self.decoder.feed(bytes);
        while let Some(s) = self.decoder.next_stanza() {
            match s? {
                Stanza::Ack { seq } => self.acked = self.acked.max(seq),
                Stanza::Generation { generation } => self.handed_out = Some(generation),
                Stanza::Error { seq, code, message } => {
                    bail!("vrfwd refused stanza {seq:?}: {} {message}", code.as_str())
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Reads vrfwd's stream header and returns the version it chose and its
    /// challenge. The agent speaks versions 2 and up only: its credential never
    /// crosses the wire.
    async fn host_header(&mut self, timeout: Duration) -> Result<(u8, Nonce)> {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(h) = self.decoder.header() {
                return Ok((h.version, h.challenge().context("upgrade vrfwd")?));
            }
            let n = tokio::time::timeout(timeout, self.stream.read(&mut buf))
                .await
                .context("no stream header from vrfwd")??;
            if n == 0 {
                bail!("vrfwd closed the connection before its stream header");
            }
            self.absorb(&buf[..n])?;
        }
    }

    /// Waits until no more than `window` stanzas are unacknowledged.
    async fn drain(&mut self, window: u64, timeout: Duration) -> Result<()> {
        let mut buf = [0u8; 4096];
        while self.seq - self.acked > window {
            let n = tokio::time::timeout(timeout, self.stream.read(&mut buf))
                .await
                .context("no ack from vrfwd")??;
            if n == 0 {
                bail!("vrfwd closed the session");
            }
            self.absorb(&buf[..n])?;
        }
        Ok(())
    }
}

fn with_seq(s: &Stanza, seq: u64) -> Stanza {
    match s.clone() {
        Stanza::Hello(h) => Stanza::Hello(Hello { seq, ..h }),
        Stanza::Interfaces { interfaces, .. } => Stanza::Interfaces { seq, interfaces },
        Stanza::Routes { ops, .. } => Stanza::Routes { seq, ops },
        Stanza::Neighbors { ops, .. } => Stanza::Neighbors { seq, ops },
        Stanza::SyncBegin { .. } => Stanza::SyncBegin { seq },
        Stanza::SyncEnd { .. } => Stanza::SyncEnd { seq },
        other => other,
    }
}

async fn session(
    config: &AgentConfig,
    credential: &str,
    kernel: &mut KernelState,
    events: &mut Events,
    last_generation: &mut u64,
) -> Result<()> {
    let keepalive = Duration::from_millis(config.keepalive_ms);
    let host_timeout = Duration::from_millis(config.host_timeout_ms);
    let stream = tokio::time::timeout(keepalive, TcpStream::connect(config.host))
        .await
        .context("connecting")?
        .with_context(|| format!("connecting to {}", config.host))?;
    stream.set_nodelay(true)?;
    let mut link = Link {
        stream,
        decoder: Decoder::new(Limits::default()),
        seq: 0,
        acked: 0,
        handed_out: None,
    };
    link.stream
        .write_all(stream_header(&StreamHeader::client()).as_bytes())
        .await?;
    let (version, nonce) = link.host_header(host_timeout).await?;
    let generation = if version >= HOST_GENERATIONS {
        *last_generation
    } else {
        // An older host compares generations itself: the clock in milliseconds.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_millis() as u64)
    };
    let hello = Hello {
        seq: 0,
        vr: VrId(config.vr),
        generation,
        auth: Auth::Proof(Proof::new(
            credential.as_bytes(),
            &nonce,
            config.vr,
            generation,
        )),
    };
    let dual_stack = version >= DUAL_STACK;
    let multipath = version >= MULTIPATH;
    link.send(&Stanza::Hello(hello)).await?;
    link.send(&Stanza::Interfaces {
        seq: 0,
        interfaces: kernel.interfaces(dual_stack),
    })
    .await?;
    // The full table, and only then sync-end.
    link.send(&Stanza::SyncBegin { seq: 0 }).await?;
    for chunk in kernel
        .all_adds(dual_stack, multipath)
        .chunks(ROUTES_PER_STANZA)
    {
        link.send(&Stanza::Routes {
            seq: 0,
            ops: chunk.to_vec(),
        })
        .await?;
        link.drain(WINDOW, host_timeout).await?;
    }
    let neighbors = kernel.all_neighbors(dual_stack);
    if !neighbors.is_empty() {
        link.send(&Stanza::Neighbors {
            seq: 0,
            ops: neighbors,
        })
        .await?;
    }
    let end = link.send(&Stanza::SyncEnd { seq: 0 }).await?;
    link.drain(0, host_timeout).await?;
    // Handed out right after the hello's ack, so here by now.
    let generation = link.handed_out.unwrap_or(generation);
    *last_generation = generation;
    tracing::info!(
        routes = kernel.route_count(),
        generation,
        seq = end,
        "synced with vrfwd"
    );

    let coalesce = Duration::from_millis(config.coalesce_ms);
    let mut dirty: BTreeSet<IpNet> = BTreeSet::new();
    let mut dirty_neighbors: BTreeSet<(u32, IpAddr)> = BTreeSet::new();
    let mut flush_at: Option<Instant> = None;
    let mut interfaces_dirty = false;
    let mut last_heard = Instant::now();
    let mut last_sent = Instant::now();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let deadline =
            flush_at.unwrap_or_else(|| (last_sent + keepalive).min(last_heard + host_timeout));
        tokio::select! {
            event = events.next() => {
                let Some((msg, _)) = event else { bail!("the netlink socket closed") };
                let NetlinkPayload::InnerMessage(msg) = msg.payload else { continue };
                let changed = kernel.apply(&msg);
                tracing::trace!(?changed, ?msg, "kernel event");
                match changed {
                    Changed::Nothing => continue,
                    // An IPv4-only host (version 3) is not told of IPv6.
                    Changed::Route(IpNet::V6(_)) | Changed::Neighbor(_, IpAddr::V6(_)) if !dual_stack => continue,
                    Changed::Route(p) => { dirty.insert(p); }
                    Changed::Neighbor(i, a) => { dirty_neighbors.insert((i, a)); }
                    Changed::Interfaces => interfaces_dirty = true,
                    Changed::LinkFlap => bail!("an interface flapped (migration?): resyncing"),
                }
                flush_at.get_or_insert(Instant::now() + coalesce);
                if dirty.len() >= ROUTES_PER_STANZA {
                    flush_at = Some(Instant::now());
                }
            }
            read = link.stream.read(&mut buf) => {
                let n = read?;
                if n == 0 {
                    return Ok(());
                }
                link.absorb(&buf[..n])?;
                last_heard = Instant::now();
            }
            _ = tokio::time::sleep_until(deadline) => {
                if last_heard.elapsed() > host_timeout {
                    bail!("vrfwd silent for {:?}", last_heard.elapsed());
                }
                if flush_at.take().is_some() {
                    if std::mem::take(&mut interfaces_dirty) {
                        link.send(&Stanza::Interfaces { seq: 0, interfaces: kernel.interfaces(dual_stack) }).await?;
                    }
                    let neighbors: Vec<_> = std::mem::take(&mut dirty_neighbors)
                        .into_iter()
                        .filter_map(|(i, a)| kernel.neighbor_op(i, a))
                        .collect();
                    if !neighbors.is_empty() {
                        link.send(&Stanza::Neighbors { seq: 0, ops: neighbors }).await?;
                    }
                    let ops: Vec<RouteOp> = std::mem::take(&mut dirty).into_iter().map(|p| kernel.op(p, multipath)).collect();
                    for chunk in ops.chunks(ROUTES_PER_STANZA) {
                        link.send(&Stanza::Routes { seq: 0, ops: chunk.to_vec() }).await?;
                        link.drain(WINDOW, host_timeout).await?;
                    }
                } else {
                    link.send(&Stanza::Keepalive).await?;
                }
                last_sent = Instant::now();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_nexthop_id_only_are_refused_up_front() {
        let path = std::env::temp_dir().join(format!("vrfwd-agent-ncm-{}", std::process::id()));
        std::fs::write(&path, "0\n").unwrap();
        assert!(check_nexthop_compat_mode(&path).is_err());
        std::fs::write(&path, "1\n").unwrap();
        assert!(check_nexthop_compat_mode(&path).is_ok());
        std::fs::remove_file(&path).unwrap();
        assert!(
            check_nexthop_compat_mode(&path).is_ok(),
            "a kernel without nexthop objects"
        );
    }
}
