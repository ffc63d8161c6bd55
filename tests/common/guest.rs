//! The guest's side of a topology: vrfwd-agent for VR 1 in the guest namespace,
//! and vrfwd-stream senders and receivers in the hosts' namespaces; each
//! stopped on drop.
use super::{bin_dir, Topology};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The agent's configuration and credential for VR 1 of topology `t`, pointing at
/// vrfwd's control port; removed on drop.
pub struct AgentFiles {
    pub dir: std::path::PathBuf,
    pub config: std::path::PathBuf,
}

impl AgentFiles {
    pub fn new(t: &Topology, port: u16, extra: &str) -> AgentFiles {
        let dir = std::env::temp_dir().join(format!("vrfwd-{}-agent", t.prefix));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("credential"), "red-secret-for-tests\n").unwrap();
        let config = dir.join("agent.toml");
        let text = format!(
            "host = \"10.255.0.1:{port}\"\nvr = 1\ncredential_file = \"{}\"\ninterfaces = [\"g0\", \"g1\"]\n{extra}",
            dir.join("credential").display()
        );
        std::fs::write(&config, text).unwrap();
        AgentFiles { dir, config }
    }
}

impl Drop for AgentFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The agent process in the guest namespace; killed on drop.
pub struct Agent(Child);

impl Agent {
    pub fn start(t: &Topology, config: &std::path::Path) -> Agent {
        Agent::spawn(t, config, Command::new("ip"))
    }

    pub fn spawn(t: &Topology, config: &std::path::Path, mut ip: Command) -> Agent {
        // Built with the workspace, beside the vrfwd binary.
        let bin = std::path::Path::new(env!("CARGO_BIN_EXE_vrfwd")).with_file_name("vrfwd-agent");
        assert!(
            bin.exists(),
            "{} is missing: build the workspace (cargo build --workspace)",
            bin.display()
        );
        let child = ip
            .args(["netns", "exec", &t.ns("g")])
            .arg(bin)
            .arg("-c")
            .arg(config)
            .spawn()
            .expect("start vrfwd-agent");
        Agent(child)
    }

    pub fn kill(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A stream sender or receiver, interrupted (and reaped) on drop.
pub struct Stream(Option<Child>);

impl Stream {
    pub fn start(t: &Topology, n: &str, args: &[&str]) -> Stream {
        let child = Command::new("ip")
            .args(["netns", "exec", &t.ns(n)])
            .arg(bin_dir().join("vrfwd-stream"))
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start vrfwd-stream");
        Stream(Some(child))
    }

    /// Interrupts it and returns what it printed.
    pub fn finish(mut self, interrupt: bool) -> String {
        let child = self.0.take().expect("running");
        if interrupt {
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
        }
        let out = child.wait_with_output().expect("vrfwd-stream output");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The count of a sender's `sent=N ...` line.
pub fn sent(out: &str) -> u64 {
    (out.split_whitespace().next())
        .and_then(|w| w.strip_prefix("sent="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a sender's count: {out:?}"))
}

/// Receivers on r:5000 (VR 1's stream) and q:5001 (VR 2's), bound before they
/// return (a packet that arrives before is lost to the test).
pub fn stream_receivers(t: &Topology) -> [Stream; 2] {
    let receivers = [
        Stream::start(t, "r", &["receive", "--port", "5000", "--seconds", "600"]),
        Stream::start(t, "q", &["receive", "--port", "5001", "--seconds", "600"]),
    ];
    for (n, port) in [("r", "5000"), ("q", "5001")] {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !t.exec(n, &["ss", "-Huln"]).contains(&format!(":{port} ")) {
            assert!(
                Instant::now() < deadline,
                "the receiver in {n} did not bind"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    receivers
}

/// Senders through VR 1 (s, to `vr1_to`) and VR 2 (t, to q's receiver),
/// `pps` each.
pub fn stream_senders(t: &Topology, pps: &str, vr1_to: &str) -> [Stream; 2] {
    let long = ["--pps", pps, "--seconds", "600"];
    [("s", vr1_to), ("t", "10.0.2.2:5001")]
        .map(|(n, to)| Stream::start(t, n, &[&["send", "--to", to][..], &long].concat()))
}
