//! The control plane: the route writer ([`writer`]) and the operator socket, a Unix
//! stream socket on which the running appliance answers one-line commands
//! (`vrfwd ctl`). Nothing here touches the fast path except through the writer.
pub mod ctl;
pub mod migrate;
pub mod session;
pub mod writer;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// How long the idle accept loop sleeps (the longest a command waits to be read).
const POLL: Duration = Duration::from_millis(1);
/// How long a client waits for a reply: longer than the slowest command, a
/// migration's clone (`migrate::CLONE_READY_TIMEOUT`).
const REPLY_TIMEOUT: Duration = Duration::from_secs(75);
/// Operator connections answered at once; more wait their turn.
const CONCURRENT: usize = 4;

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

/// Binds the socket, replacing a stale file left by a dead instance.
pub fn bind(path: &Path) -> Result<UnixListener, ControlError> {
    let io = |source| ControlError::Io {
        path: path.display().to_string(),
        source,
    };
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(ControlError::InUse(path.display().to_string()));
        }
        std::fs::remove_file(path).map_err(io)?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let listener = UnixListener::bind(path).map_err(io)?;
    listener.set_nonblocking(true).map_err(io)?;
    Ok(listener)
}

/// Answers commands until `quit` is set. `answer` maps a command to its reply.
/// The listener does not block, so that `quit` is seen even if the socket file
/// was removed; an idle loop sleeps [`POLL`], which bounds a command's wait. Each
/// connection is answered on its own thread (up to [`CONCURRENT`] at once), so a
/// slow command (a migration's clone) does not hold up `vrs` or `stats`.
pub fn serve(listener: &UnixListener, quit: &AtomicBool, answer: &(dyn Fn(&str) -> String + Sync)) {
    let busy = AtomicUsize::new(0);
    std::thread::scope(|s| {
        while !quit.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((stream, _)) if busy.load(Ordering::Relaxed) < CONCURRENT => {
                    busy.fetch_add(1, Ordering::Relaxed);
                    let busy = &busy;
                    s.spawn(move || {
                        answer_logged(stream, answer);
                        busy.fetch_sub(1, Ordering::Relaxed);
                    });
                }
                Ok((stream, _)) => answer_logged(stream, answer),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
                Err(e) => {
                    tracing::warn!("operator socket accept: {e}");
                    std::thread::sleep(POLL);
                }
            }
        }
    });
}

fn answer_logged(stream: UnixStream, answer: &dyn Fn(&str) -> String) {
    if let Err(e) = reply(stream, answer) {
        tracing::debug!("operator connection: {e}");
    }
}

fn reply(stream: UnixStream, answer: &dyn Fn(&str) -> String) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    let mut out = answer(line.trim());
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

    #[test]
    fn request_reply_and_stale_socket() {
        let dir = std::env::temp_dir().join(format!("vrfwd-ctl-{}", std::process::id()));
        let path = dir.join("s.sock");
        let quit = AtomicBool::new(false);
        let listener = bind(&path).unwrap();
        assert!(matches!(bind(&path), Err(ControlError::InUse(_))));
        std::thread::scope(|s| {
            s.spawn(|| {
                serve(&listener, &quit, &|c| match c {
                    "ping" => "pong".into(),
                    other => format!("error: unknown command {other:?}"),
                })
            });
            assert_eq!(request(&path, "ping").unwrap().trim(), "pong");
            assert!(matches!(request(&path, "x"), Err(ControlError::Refused(_))));
            quit.store(true, Ordering::Relaxed);
        });
        drop(listener);
        assert!(matches!(
            request(&path, "ping"),
            Err(ControlError::NotRunning(_))
        ));
        // The file is stale now: a new instance takes it over.
        assert!(bind(&path).is_ok());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_slow_command_does_not_hold_up_others() {
        let dir = std::env::temp_dir().join(format!("vrfwd-ctl-slow-{}", std::process::id()));
        let path = dir.join("s.sock");
        let (quit, released) = (AtomicBool::new(false), AtomicBool::new(false));
        let listener = bind(&path).unwrap();
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
            s.spawn(|| serve(&listener, &quit, &answer));
            let slow = s.spawn(|| request(&path, "slow").unwrap());
            std::thread::sleep(Duration::from_millis(50)); // "slow" is being answered
            assert_eq!(request(&path, "ping").unwrap().trim(), "pong");
            released.store(true, Ordering::Relaxed);
            assert_eq!(slow.join().unwrap().trim(), "released");
            quit.store(true, Ordering::Relaxed);
        });
        std::fs::remove_dir_all(dir).unwrap();
    }
}
