//! The control plane: the route writer ([`writer`]) and the operator socket, a Unix
//! stream socket on which the running appliance answers one-line commands
//! (`vrfwd ctl`). Nothing here touches the fast path except through the writer.
//!
//! The operator socket is the host's most powerful interface (it moves VRs to
//! other hosts with the host credential), so it is created mode 0600 (0660 with a
//! configured group) whatever the umask, never reachable under another mode, and
//! every connection's peer is checked with SO_PEERCRED ([`Access`]).
mod answers;
pub mod ctl;
pub mod migrate;
pub mod reconfigure;
pub mod route_get;
pub mod session;
mod slots;
pub mod writer;

use crate::dpdk::{peer_cred, PeerCred};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// How long the idle accept loop sleeps (the longest a command waits to be read).
const POLL: Duration = Duration::from_millis(1);
/// How long a client waits for a reply: longer than the slowest command, a
/// migration's clone (`migrate::CLONE_READY_TIMEOUT`).
const REPLY_TIMEOUT: Duration = Duration::from_secs(75);
/// Operator connections answered at once; more wait their turn.
const CONCURRENT: usize = 4;
/// The longest command line read.
const MAX_COMMAND: usize = 4096;

/// An operator-socket failure.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Another vrfwd answers on this socket.
    #[error("{0} is in use by a running vrfwd")]
    InUse(String),
    /// The socket could not be created or used.
    #[error("operator socket {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// No vrfwd answers on this socket.
    #[error("vrfwd is not running (nothing listens on {0})")]
    NotRunning(String),
    /// The daemon refused the command.
    #[error("{0}")]
    Refused(String),
}

/// Who may use the operator socket: root, the user vrfwd runs as, and the
/// members of the configured group (primary or supplementary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    owner: u32,
    group: Option<u32>,
}

impl Access {
    /// Root and this process's user, and `group` if given.
    pub fn new(group: Option<u32>) -> Access {
        Access {
            owner: crate::dpdk::euid(),
            group,
        }
    }

    /// The socket file's mode.
    fn mode(&self) -> u32 {
        if self.group.is_some() {
            0o660
        } else {
            0o600
        }
    }

    fn allows(&self, peer: PeerCred) -> bool {
        peer.uid == 0
            || peer.uid == self.owner
            || self
                .group
                .is_some_and(|g| peer.gid == g || supplementary_groups(peer.pid).contains(&g))
    }
}

/// The supplementary groups of process `pid` (empty if it is gone).
fn supplementary_groups(pid: i32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Groups:"))
                .map(|g| {
                    g.split_whitespace()
                        .filter_map(|n| n.parse().ok())
                        .collect()
                })
        })
        .unwrap_or_default()
}

/// The bound operator socket: its listener, and its file, which drop removes
/// while the file is still this socket's (a successor binds its own in its
/// place before this vrfwd exits: `crate::upgrade`).
pub struct OperatorSocket {
    listener: UnixListener,
    path: PathBuf,
    inode: u64,
}

impl std::ops::Deref for OperatorSocket {
    type Target = UnixListener;

    fn deref(&self) -> &UnixListener {
        &self.listener
    }
}

impl Drop for OperatorSocket {
    fn drop(&mut self) {
        if std::fs::metadata(&self.path).is_ok_and(|m| m.ino() == self.inode) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Binds the socket, replacing a stale file left by a dead instance. The socket
/// is made in a private directory, given its mode and group there, and only then
/// renamed into place, so it is never reachable with the umask's mode.
pub fn bind(path: &Path, access: Access) -> Result<OperatorSocket, ControlError> {
    let io = |source| ControlError::Io {
        path: path.display().to_string(),
        source,
    };
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(ControlError::InUse(path.display().to_string()));
        }
        // Gone already: its owner removed it on its way out.
        if let Err(e) = std::fs::remove_file(path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(io(e));
            }
        }
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let private = dir.join(format!(".vrfwd-sock-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&private);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .map_err(io)?;
    let staged = private.join("s");
    let made = UnixListener::bind(&staged).and_then(|listener| {
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(access.mode()))?;
        std::os::unix::fs::chown(&staged, None, access.group)?;
        let inode = std::fs::metadata(&staged)?.ino();
        std::fs::rename(&staged, path)?;
        listener.set_nonblocking(true)?;
        Ok(OperatorSocket {
            listener,
            path: path.to_owned(),
            inode,
        })
    });
    let _ = std::fs::remove_dir_all(&private);
    made.map_err(io)
}

/// What the operator socket does with a connection's first line: answer it
/// (`answer` maps a command to its reply), or hand the connection to
/// `hand_over` when it asks for a hand-over (`crate::upgrade`).
pub struct Handlers<'a> {
    pub answer: &'a (dyn Fn(&str) -> String + Sync),
    pub hand_over: &'a (dyn Fn(UnixStream) + Sync),
}

/// Answers commands until `quit` is set.
/// The listener does not block, so that `quit` is seen even if the socket file
/// was removed; an idle loop sleeps [`POLL`], which bounds a command's wait. Each
/// connection is answered on its own thread (up to [`CONCURRENT`] at once), so a
/// slow command (a migration's clone) does not hold up `vrs` or `stats`.
pub fn serve(listener: &UnixListener, access: Access, quit: &AtomicBool, handlers: &Handlers) {
    let busy = AtomicUsize::new(0);
    std::thread::scope(|s| {
        while !quit.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((stream, _)) if !permitted(&stream, access) => {
                    let _ = (&stream).write_all(b"error: permission denied\n");
                }
                Ok((stream, _)) if busy.load(Ordering::Relaxed) < CONCURRENT => {
                    busy.fetch_add(1, Ordering::Relaxed);
                    let busy = &busy;
                    s.spawn(move || {
                        answer_logged(stream, handlers);
                        busy.fetch_sub(1, Ordering::Relaxed);
                    });
                }
                Ok((stream, _)) => answer_logged(stream, handlers),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
                Err(e) => {
                    tracing::warn!("operator socket accept: {e}");
                    std::thread::sleep(POLL);
                }
            }
        }
    });
}

/// Whether the peer of `stream` may use the socket (logged when not).
fn permitted(stream: &UnixStream, access: Access) -> bool {
    match peer_cred(stream) {
        Ok(peer) if access.allows(peer) => true,
        Ok(peer) => {
            tracing::warn!(
                uid = peer.uid,
                pid = peer.pid,
                "operator socket: connection refused"
            );
            false
        }
        Err(e) => {
            tracing::warn!("operator socket: cannot read the peer's credentials: {e}");
            false
        }
    }
}

fn answer_logged(stream: UnixStream, handlers: &Handlers) {
    if let Err(e) = reply(stream, handlers) {
        tracing::debug!("operator connection: {e}");
    }
}

fn reply(stream: UnixStream, handlers: &Handlers) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut bytes = Vec::new();
    // One byte at a time: what follows the line (a hand-over's messages) stays
    // in the socket for whoever reads on.
    for byte in std::io::Read::bytes(&stream) {
        match byte? {
            b'\n' => break,
            b => bytes.push(b),
        }
        if bytes.len() > MAX_COMMAND {
            break;
        }
    }
    let line = String::from_utf8(bytes)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    if line.trim() == crate::upgrade::HANDOVER {
        (handlers.hand_over)(stream);
        return Ok(());
    }
    let mut out = (handlers.answer)(line.trim());
    out.push('\n');
    (&stream).write_all(out.as_bytes())
}

/// Sends `command` to the appliance at `path` and returns its reply.
pub fn request(path: &Path, command: &str) -> Result<String, ControlError> {
    let io = |source| ControlError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut stream = UnixStream::connect(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
            ControlError::NotRunning(path.display().to_string())
        }
        _ => io(e),
    })?;
    stream.set_read_timeout(Some(REPLY_TIMEOUT)).map_err(io)?;
    stream
        .write_all(format!("{command}\n").as_bytes())
        .map_err(io)?;
    let mut out = String::new();
    std::io::Read::read_to_string(&mut stream, &mut out).map_err(io)?;
    if let Some(err) = out.strip_prefix("error: ") {
        return Err(ControlError::Refused(err.trim().to_owned()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Handlers that answer with `answer` and close a hand-over at once.
    fn handlers(answer: &(dyn Fn(&str) -> String + Sync)) -> Handlers<'_> {
        Handlers {
            answer,
            hand_over: &drop,
        }
    }

    #[test]
    fn request_reply_and_stale_socket() {
        let dir = std::env::temp_dir().join(format!("vrfwd-ctl-{}", std::process::id()));
        let path = dir.join("s.sock");
        let quit = AtomicBool::new(false);
        let listener = bind(&path, Access::new(None)).unwrap();
        assert!(matches!(
            bind(&path, Access::new(None)),
            Err(ControlError::InUse(_))
        ));
        std::thread::scope(|s| {
            s.spawn(|| {
                let answer = |c: &str| match c {
                    "ping" => "pong".into(),
                    other => format!("error: unknown command {other:?}"),
                };
                serve(&listener, Access::new(None), &quit, &handlers(&answer))
            });
            assert_eq!(request(&path, "ping").unwrap().trim(), "pong");
            assert!(matches!(request(&path, "x"), Err(ControlError::Refused(_))));
            quit.store(true, Ordering::Relaxed);
        });
        drop(listener);
        assert!(!path.exists(), "its file goes with the socket");
        assert!(matches!(
            request(&path, "ping"),
            Err(ControlError::NotRunning(_))
        ));
        // A stale file (a dead instance's): a new instance takes it over, and
        // the socket that replaced another's leaves the newer one's file alone.
        drop(UnixListener::bind(&path).unwrap());
        let first = bind(&path, Access::new(None)).unwrap();
        std::fs::remove_file(&path).unwrap();
        let second = bind(&path, Access::new(None)).unwrap();
        drop(first);
        assert!(path.exists(), "the second socket's file stays");
        drop(second);
        assert!(!path.exists());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_slow_command_does_not_hold_up_others() {
        let dir = std::env::temp_dir().join(format!("vrfwd-ctl-slow-{}", std::process::id()));
        let path = dir.join("s.sock");
        let (quit, released) = (AtomicBool::new(false), AtomicBool::new(false));
        let listener = bind(&path, Access::new(None)).unwrap();
        let answer = |c: &str| match c {
            // Waits until the test has had its answer to "ping" (or gives up).
            "slow" => {
                for _ in 0..1000 {
                    if released.load(Ordering::Relaxed) {
                        return "released".to_owned();
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                "never released".to_owned()
            }
            _ => "pong".to_owned(),
        };
        std::thread::scope(|s| {
            s.spawn(|| serve(&listener, Access::new(None), &quit, &handlers(&answer)));
            let slow = s.spawn(|| request(&path, "slow").unwrap());
            std::thread::sleep(Duration::from_millis(50)); // "slow" is being answered
            assert_eq!(request(&path, "ping").unwrap().trim(), "pong");
            released.store(true, Ordering::Relaxed);
            assert_eq!(slow.join().unwrap().trim(), "released");
            quit.store(true, Ordering::Relaxed);
        });
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_socket_is_private_whatever_the_umask_and_checks_its_peers() {
        let dir = std::env::temp_dir().join(format!("vrfwd-ctl-mode-{}", std::process::id()));
        let path = dir.join("s.sock");
        let _listener = bind(&path, Access::new(None)).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "the private directory is gone"
        );
        drop(_listener);
        let group = bind(&path, Access::new(Some(4242))).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o660);
        assert_eq!(std::os::unix::fs::MetadataExt::gid(&meta), 4242);
        drop(group);

        let me = crate::dpdk::euid();
        let access = Access {
            owner: me,
            group: Some(4242),
        };
        let cred = |uid, gid| PeerCred { pid: 0, uid, gid };
        assert!(access.allows(cred(0, 0)));
        assert!(access.allows(cred(me, 1)));
        assert!(access.allows(cred(1234, 4242)));
        assert!(!access.allows(cred(65534, 65534)));
        assert!(!Access::new(None).allows(cred(65534, 4242)));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
