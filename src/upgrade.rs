//! Hitless upgrade: a successor vrfwd takes a running one's ports, VRs and
//! listeners over while every VR forwards (docs/operating.md, "Upgrading";
//! docs/architecture.md, "Ports that can be handed over").
//!
//! The successor (`vrfwd run --take-over`, which `vrfwd upgrade` starts) asks
//! the holder's operator socket for a `handover`; the two then exchange one
//! JSON line a message on that connection:
//! 1. holder → [`Message::Offer`]: its EAL file prefix, its socket ports with
//!    their handover groups, and (SCM_RIGHTS) its route-protocol and metrics
//!    listeners, which both processes then hold: no connection is refused;
//! 2. the successor starts with every VR in standby and its ports joined as
//!    their groups' second members (receiving nothing), then → [`Message::Ready`]
//!    with a loopback port; the holder clones every active VR to it by the
//!    migration's clone path (interfaces, routes, neighbours, generation, then
//!    every change) and → [`Message::Cloned`] once each is synced;
//! 3. the successor makes those VRs active, steers every port's groups to itself,
//!    and → [`Message::Switched`];
//! 4. the holder waits until its sockets are empty (nothing new reaches them),
//!    lets its lcores send what they hold, and exits: its agents' sessions end
//!    and reconnect to the successor, which holds their routes meanwhile;
//! 5. once the holder's end of the connection closes, the successor (alone in
//!    the groups) points them back at member 0 and binds the operator socket.
//!
//! Anything that fails before the switch leaves the holder forwarding as before:
//! the successor's sockets never received a frame, and a successor that gives
//! up after steering some ports steers them back before it closes them.
use crate::dataplane::{Model, VrState};
use crate::dpdk::{
    peer_cred, recv_with_fds, send_with_fds, AttachError, HandedPort, Member, PortTable,
};
use crate::stats::Snapshot;
use serde::{Deserialize, Serialize};
use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The operator-socket command that starts a hand-over.
pub const HANDOVER: &str = "handover";

/// The successor's log line that says the hand-over is complete.
pub const COMPLETE: &str = "take-over complete";

/// How long either side waits for the other's next message: longer than the
/// clone of every VR (each bounded by the migration's own timeout).
const STEP_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a successor waits for the holder to exit after the switch.
const HOLDER_EXIT: Duration = Duration::from_secs(10);
/// How long the holder waits for its sockets to empty after the switch.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);
/// The longest message a side accepts.
const MAX_LINE: usize = 1 << 20;

/// One step of the hand-over.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Message {
    /// Holder → successor, with its listeners' descriptors (control first).
    Offer(Offer),
    /// Successor → holder: clone the VRs to this loopback port.
    Ready { clone_port: u16 },
    /// Holder → successor: these VRs (ids) are synced there and follow changes.
    Cloned { vrs: Vec<u32> },
    /// Successor → holder: every port's groups name the successor.
    Switched,
    /// Holder → successor, its lcores stopped: its final counters, which the
    /// successor's go on from.
    Counters { counters: Box<Snapshot> },
    /// Either side: the hand-over is off, and why.
    Refused { why: String },
}

/// What the holder hands over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    /// The holder's EAL file prefix (the successor takes the other of a pair).
    pub prefix: String,
    pub ports: Vec<HandedPort>,
    /// Whether the message carries the route-protocol listener, and the
    /// metrics listener (in that order).
    pub control: bool,
    pub metrics: bool,
}

/// Why a hand-over failed.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error("hand-over connection: {0}")]
    Io(#[from] io::Error),
    #[error("the other vrfwd said: {0}")]
    Refused(String),
    #[error("expected {expected}, got {got}")]
    Unexpected { expected: &'static str, got: String },
    #[error("a malformed hand-over message: {0}")]
    Malformed(String),
    #[error("the running vrfwd closed the hand-over")]
    Closed,
    #[error(transparent)]
    Ports(#[from] AttachError),
    #[error("vr {vr}: {source}")]
    Clone {
        vr: u32,
        source: crate::control::migrate::MigrateError,
    },
    #[error("{0}")]
    Mismatch(String),
    #[error("the holder (pid {0}) still runs {HOLDER_EXIT:?} after the switch")]
    HolderStays(i32),
    #[error("the lcores still run {0:?} after the switch")]
    LcoresRun(Duration),
}

/// One end of the hand-over connection: JSON lines, descriptors alongside.
pub struct Channel {
    stream: UnixStream,
    buf: Vec<u8>,
    fds: Vec<OwnedFd>,
}

impl Channel {
    fn new(stream: UnixStream) -> io::Result<Channel> {
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(STEP_TIMEOUT))?;
        Ok(Channel {
            stream,
            buf: Vec::new(),
            fds: Vec::new(),
        })
    }

    fn send(&mut self, message: &Message, fds: &[&dyn AsRawFd]) -> Result<(), UpgradeError> {
        let mut line = serde_json::to_vec(message).expect("messages serialise");
        line.push(b'\n');
        let raw: Vec<_> = fds.iter().map(|f| f.as_raw_fd()).collect();
        send_with_fds(&self.stream, &line, &raw)?;
        Ok(())
    }

    /// The next message, and the descriptors that came with it.
    fn recv(&mut self) -> Result<(Message, Vec<OwnedFd>), UpgradeError> {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=end).collect();
                let message: Message = serde_json::from_slice(&line)
                    .map_err(|e| UpgradeError::Malformed(e.to_string()))?;
                if let Message::Refused { why } = message {
                    return Err(UpgradeError::Refused(why));
                }
                return Ok((message, std::mem::take(&mut self.fds)));
            }
            if self.buf.len() > MAX_LINE {
                return Err(UpgradeError::Malformed("an endless line".into()));
            }
            let mut chunk = [0u8; 4096];
            let (n, fds) = recv_with_fds(&self.stream, &mut chunk)?;
            if n == 0 {
                return Err(UpgradeError::Closed);
            }
            self.buf.extend_from_slice(&chunk[..n]);
            self.fds.extend(fds);
        }
    }

    /// Tells the other side the hand-over is off (best effort).
    fn refuse(&mut self, why: &UpgradeError) {
        let _ = self.send(
            &Message::Refused {
                why: why.to_string(),
            },
            &[],
        );
    }

    /// Waits until the other side's end closes.
    fn closed(&mut self) -> Result<(), UpgradeError> {
        match self.recv() {
            Err(UpgradeError::Closed) => Ok(()),
            Err(e) => Err(e),
            Ok((m, _)) => Err(UpgradeError::Unexpected {
                expected: "the holder's exit",
                got: format!("{m:?}"),
            }),
        }
    }
}

/// The EAL file prefix of EAL arguments `args` (DPDK's default: `rte`).
pub fn file_prefix(args: &[String]) -> String {
    args.iter()
        .find_map(|a| a.strip_prefix("--file-prefix="))
        .unwrap_or("rte")
        .to_owned()
}

/// The file prefix a successor of a holder with `prefix` takes: each hand-over
/// alternates between a prefix and the same with `.1`, so that the two never
/// share DPDK's run-time files.
pub fn successor_prefix(prefix: &str) -> String {
    match prefix.strip_suffix(".1") {
        Some(base) => base.to_owned(),
        None => format!("{prefix}.1"),
    }
}

/// The running vrfwd's side.
pub struct Holder<'a> {
    pub ports: &'a PortTable,
    pub sessions: &'a Arc<crate::control::session::Sessions>,
    pub prefix: String,
    /// Descriptors of its listeners, for the successor to share.
    pub control: Option<&'a TcpListener>,
    pub metrics: Option<&'a TcpListener>,
    /// Set to stop this vrfwd once it has drained.
    pub quit: &'a AtomicBool,
    /// Set once its lcores have stopped; then `counters` are final.
    pub stopped: &'a AtomicBool,
    pub counters: &'a (dyn Fn() -> Snapshot + Sync),
}

impl Holder<'_> {
    /// Hands everything over on `stream` (an operator connection that asked for
    /// a hand-over). On success this vrfwd is told to stop; on failure it
    /// forwards on as before.
    pub fn hand_over(&self, stream: UnixStream) {
        let mut channel = match Channel::new(stream) {
            Ok(c) => c,
            Err(e) => return tracing::warn!("hand-over: {e}"),
        };
        let mut cloned = Vec::new();
        match self.run(&mut channel, &mut cloned) {
            Ok(()) => {
                tracing::info!("hand-over: drained; the successor holds every port");
                self.quit.store(true, Ordering::Relaxed);
                if let Err(e) = self.hand_counters(&mut channel) {
                    tracing::warn!("hand-over: the counters stay here: {e}");
                }
            }
            Err(e) => {
                tracing::warn!("hand-over abandoned, forwarding on: {e}");
                channel.refuse(&e);
                // Whatever the successor did, the groups name this vrfwd again.
                if let Err(e) = self.ports.steer(Member::Holder) {
                    tracing::error!("hand-over: cannot steer the ports back: {e}");
                }
                for v in cloned {
                    let _ = self.sessions.cancel_migration(v);
                }
            }
        }
    }

    fn run(&self, channel: &mut Channel, cloned: &mut Vec<usize>) -> Result<(), UpgradeError> {
        let offer = Offer {
            prefix: self.prefix.clone(),
            ports: self.ports.handover()?,
            control: self.control.is_some(),
            metrics: self.metrics.is_some(),
        };
        let fds: Vec<&dyn AsRawFd> = [self.control, self.metrics]
            .into_iter()
            .flatten()
            .map(|l| l as &dyn AsRawFd)
            .collect();
        tracing::info!(ports = offer.ports.len(), "hand-over: offered");
        channel.send(&Message::Offer(offer), &fds)?;
        let clone_port = match channel.recv()?.0 {
            Message::Ready { clone_port } => clone_port,
            m => return Err(unexpected("ready", &m)),
        };
        let to = SocketAddr::from((Ipv4Addr::LOCALHOST, clone_port));
        let dp = self.sessions.dp();
        let mut ids = Vec::new();
        for (v, vr) in dp.vrs.iter() {
            if vr.state() != VrState::Active {
                continue;
            }
            let done = self
                .sessions
                .migrate(v, to)
                .map_err(|source| UpgradeError::Clone { vr: vr.id, source })?;
            tracing::info!("hand-over: {done}");
            cloned.push(v);
            ids.push(vr.id);
        }
        channel.send(&Message::Cloned { vrs: ids }, &[])?;
        match channel.recv()?.0 {
            Message::Switched => {}
            m => return Err(unexpected("switched", &m)),
        }
        tracing::info!("hand-over: the successor took the ports; draining");
        let start = Instant::now();
        while self.ports.waiting() && start.elapsed() < DRAIN_LIMIT {
            std::thread::sleep(Duration::from_millis(1));
        }
        // The lcores read a socket at most a TX drain period after it has frames
        // and send what they forward by the next: a few periods suffice.
        std::thread::sleep(Duration::from_millis(20));
        Ok(())
    }

    /// Once the lcores have stopped, sends the final counters.
    fn hand_counters(&self, channel: &mut Channel) -> Result<(), UpgradeError> {
        let start = Instant::now();
        while !self.stopped.load(Ordering::Relaxed) {
            if start.elapsed() > HOLDER_EXIT {
                return Err(UpgradeError::LcoresRun(HOLDER_EXIT));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let counters = Box::new((self.counters)());
        channel.send(&Message::Counters { counters }, &[])
    }
}

fn unexpected(expected: &'static str, got: &Message) -> UpgradeError {
    UpgradeError::Unexpected {
        expected,
        got: format!("{got:?}"),
    }
}

/// Whether process `pid` runs (exists and is not a zombie).
fn process_runs(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // "pid (comm) S …": the state follows the last parenthesis.
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// The successor's side, from its first message to its last.
pub struct Successor {
    channel: Channel,
    /// The holder's process id (its operator socket's peer).
    holder: i32,
    pub offer: Offer,
    pub control: Option<TcpListener>,
    pub metrics: Option<TcpListener>,
}

impl Successor {
    /// Asks the vrfwd answering on operator socket `path` for a hand-over and
    /// takes its offer.
    pub fn connect(path: &Path) -> Result<Successor, UpgradeError> {
        let mut stream = UnixStream::connect(path)?;
        let holder = peer_cred(&stream)?.pid;
        stream.write_all(format!("{HANDOVER}\n").as_bytes())?;
        let mut channel = Channel::new(stream)?;
        let (message, fds) = channel.recv()?;
        let Message::Offer(offer) = message else {
            return Err(unexpected("an offer", &message));
        };
        let want = usize::from(offer.control) + usize::from(offer.metrics);
        if fds.len() != want {
            return Err(UpgradeError::Malformed(format!(
                "{} descriptors with an offer of {want}",
                fds.len()
            )));
        }
        let mut fds = fds.into_iter().map(TcpListener::from);
        let control = offer.control.then(|| fds.next()).flatten();
        let metrics = offer.metrics.then(|| fds.next()).flatten();
        Ok(Successor {
            channel,
            holder,
            offer,
            control,
            metrics,
        })
    }

    /// Joins every offered port as slot of `ports`.
    pub fn join(&mut self, ports: &PortTable) -> Result<(), UpgradeError> {
        for p in &self.offer.ports {
            ports.join(p.index, &p.iface, p.netdev.clone(), &p.groups)?;
        }
        Ok(())
    }

    /// Steps 2 to 5, once this vrfwd forwards (every VR in standby) and its
    /// sessions accept clones on loopback port `clone_port`: returns the
    /// holder's final counters once it is gone and the ports are this vrfwd's
    /// alone.
    pub fn take_over(
        mut self,
        clone_port: u16,
        model: &Model,
        ports: &PortTable,
    ) -> Result<Snapshot, UpgradeError> {
        if let Err(e) = self.switch(clone_port, model, ports) {
            self.channel.refuse(&e);
            // Never close a socket the selector names.
            let _ = ports.steer(Member::Holder);
            return Err(e);
        }
        let counters = match self.channel.recv()?.0 {
            Message::Counters { counters } => *counters,
            m => return Err(unexpected("counters", &m)),
        };
        self.channel.closed()?;
        // Its connection closes before its sockets do: re-pointed while it is
        // still a member, the selector would name the holder's socket again.
        self.holder_exited()?;
        ports.steer(Member::Holder)?;
        Ok(counters)
    }

    /// Waits until the holder's process has exited (its descriptors, its
    /// sockets among them, are closed once it is a zombie).
    fn holder_exited(&self) -> Result<(), UpgradeError> {
        let start = Instant::now();
        while process_runs(self.holder) {
            if start.elapsed() > HOLDER_EXIT {
                return Err(UpgradeError::HolderStays(self.holder));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    fn switch(
        &mut self,
        clone_port: u16,
        model: &Model,
        ports: &PortTable,
    ) -> Result<(), UpgradeError> {
        self.channel.send(&Message::Ready { clone_port }, &[])?;
        let vrs = match self.channel.recv()?.0 {
            Message::Cloned { vrs } => vrs,
            m => return Err(unexpected("cloned", &m)),
        };
        tracing::info!(vrs = vrs.len(), "take-over: every VR cloned here");
        let dp = model.current();
        for id in &vrs {
            let vr =
                dp.vrs.values().find(|vr| vr.id == *id).ok_or_else(|| {
                    UpgradeError::Mismatch(format!("vr {id} is not in this config"))
                })?;
            if !vr.transition(VrState::Standby, VrState::Active) {
                return Err(UpgradeError::Mismatch(format!(
                    "vr {id} is {} here, not standby",
                    vr.state().label()
                )));
            }
        }
        let switching = Instant::now();
        ports.steer(Member::Successor)?;
        let switch_ms = switching.elapsed().as_secs_f64() * 1e3;
        self.channel.send(&Message::Switched, &[])?;
        tracing::info!(
            switch_ms,
            "take-over: every port steered here; the holder drains"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_alternate_between_hand_overs() {
        assert_eq!(file_prefix(&["--no-huge".into()]), "rte");
        let args = ["-l".to_owned(), "0".into(), "--file-prefix=vrfwd-a".into()];
        assert_eq!(file_prefix(&args), "vrfwd-a");
        assert_eq!(successor_prefix("vrfwd-a"), "vrfwd-a.1");
        assert_eq!(successor_prefix("vrfwd-a.1"), "vrfwd-a");
    }

    #[test]
    fn a_process_runs_until_it_has_exited() {
        assert!(process_runs(std::process::id() as i32));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        // Exited but not reaped: a zombie, whose descriptors are closed.
        std::thread::sleep(Duration::from_millis(200));
        assert!(!process_runs(pid));
        child.wait().unwrap();
        assert!(!process_runs(pid));
    }

    #[test]
    fn messages_cross_with_their_descriptors_and_a_refusal_is_an_error() {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut holder, mut successor) = (Channel::new(a).unwrap(), Channel::new(b).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let offer = Message::Offer(Offer {
            prefix: "p".into(),
            ports: vec![HandedPort {
                index: 3,
                iface: "u0".into(),
                netdev: None,
                groups: vec![7, 9],
            }],
            control: true,
            metrics: false,
        });
        holder.send(&offer, &[&listener]).unwrap();
        holder.send(&Message::Switched, &[]).unwrap();
        let (got, fds) = successor.recv().unwrap();
        let json = |m: &Message| serde_json::to_string(m).unwrap();
        assert_eq!((json(&got), fds.len()), (json(&offer), 1));
        let shared = TcpListener::from(fds.into_iter().next().unwrap());
        assert_eq!(shared.local_addr().unwrap(), listener.local_addr().unwrap());
        assert!(matches!(successor.recv().unwrap().0, Message::Switched));
        holder.refuse(&UpgradeError::Closed);
        assert!(matches!(successor.recv(), Err(UpgradeError::Refused(_))));
        drop(holder);
        assert!(successor.closed().is_ok());
    }
}
