//! Hitless upgrade (docs/operating.md, "Upgrading"): on the namespace topology
//! with every port a socket, VR 1 and VR 2 each forwarding a numbered stream,
//! and VR 1's guest agent churning a route, `vrfwd upgrade` hands everything
//! from one vrfwd to the next ten times: neither stream loses or repeats a
//! packet (VR 1's follows one of the agent's routes), every route and
//! neighbour is still there, the agent's session comes back each time, and
//! the counters go on from one vrfwd to the next. A hand-over whose successor gives up half-way (it has
//! joined the ports and taken a VR's clone when the next VR's clone is
//! refused) leaves the running vrfwd forwarding. Two negative controls show
//! the streams' counts see both failures: a second vrfwd on the same ports
//! without a hand-over duplicates every packet, and a restart loses packets.
//! Needs root.
mod common;

use common::guest::{sent, stream_receivers, stream_senders, Agent, AgentFiles, Stream};
use common::*;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const PREFIX: &str = "hu";
const CONTROL_PORT: u16 = 17741;
const HAND_OVERS: usize = 10;
/// Routes the guest holds throughout, which every successor must hold too.
const KEPT: usize = 10;
/// An address of r's inside the first kept route.
const KEPT_ADDRESS: &str = "10.78.0.1";
/// The route the guest adds and removes while the hand-overs run.
const CHURNED: &str = "10.77.0.0/24";

/// Every vrfwd this test starts besides the topology's own (successors, and the
/// negative control's second instance), stopped on drop; and the successors' log.
struct Instances {
    config: String,
    log: std::path::PathBuf,
}

impl Instances {
    fn new(t: &Topology) -> Instances {
        Instances {
            config: t.config.display().to_string(),
            log: std::env::temp_dir().join(format!("vrfwd-{PREFIX}-upgrade.log")),
        }
    }

    /// `vrfwd upgrade` to the binary under test: its output, or why it failed.
    fn upgrade(&self, config: &str) -> Result<String, String> {
        let out = Command::new(env!("CARGO_BIN_EXE_vrfwd"))
            .args(["upgrade", "--config", config, "--binary"])
            .arg(env!("CARGO_BIN_EXE_vrfwd"))
            .arg("--log")
            .arg(&self.log)
            .stdin(Stdio::null())
            .output()
            .expect("run vrfwd upgrade");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        match out.status.success() {
            true => Ok(text),
            false => Err(text),
        }
    }
}

impl Drop for Instances {
    fn drop(&mut self) {
        for signal in ["-INT", "-KILL"] {
            let _ = Command::new("pkill")
                .args([signal, "-f", &format!("vrfwd.*{}", self.config)])
                .status();
            std::thread::sleep(Duration::from_millis(500));
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// The receiver's counts (JSON: unique, duplicates, reordered…).
fn counts(receiver: Stream) -> serde_json::Value {
    let out = receiver.finish(false);
    serde_json::from_str(&out).unwrap_or_else(|_| panic!("a receiver's counts: {out:?}"))
}

/// What the receiver counted, in brief.
fn brief(counts: &serde_json::Value) -> String {
    ["unique", "duplicates", "reordered", "longest_gap_ms"]
        .map(|k| format!("{k}={}", counts[k]))
        .join(" ")
}

/// Stops the senders and returns (sent, receiver counts) per VR.
fn finish(senders: [Stream; 2], receivers: [Stream; 2]) -> [(u64, serde_json::Value); 2] {
    let sent = senders.map(|s| sent(&s.finish(true)));
    std::thread::sleep(Duration::from_millis(500));
    let got = receivers.map(counts);
    [(sent[0], got[0].clone()), (sent[1], got[1].clone())]
}

fn eventually(what: &str, limit: Duration, check: impl Fn() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

/// Whether VR 1's guest agent has its session (not a clone's).
fn agent_session(t: &Topology) -> bool {
    t.try_ctl(&["sessions"]).is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("1 ") && l.ends_with("guest"))
    })
}

#[test]
fn ten_hand_overs_lose_and_repeat_nothing() {
    let mut t = Topology::up_with(
        PREFIX,
        1,
        &[
            ("PORTS", "socket"),
            ("CONTROL_PORT", &CONTROL_PORT.to_string()),
            ("HOST_CREDENTIAL", "host-secret-for-tests"),
        ],
    );
    t.start();
    let instances = Instances::new(&t);
    // Reconnecting within half a second, however often its sessions ended.
    let files = AgentFiles::new(&t, CONTROL_PORT, "reconnect_max_ms = 500\n");
    let _agent = Agent::start(&t, &files.config);
    for k in 0..KEPT {
        t.exec(
            "g",
            &[
                "ip",
                "route",
                "add",
                &format!("10.78.{k}.0/24"),
                "via",
                "10.0.2.2",
            ],
        );
    }
    let kept_on_host = |t: &Topology| {
        t.try_ctl(&["routes", "1"]).is_ok_and(|routes| {
            (0..KEPT).all(|k| routes.contains(&format!("10.78.{k}.0/24 via 10.0.2.2")))
        })
    };
    eventually(
        "the guest's routes on the host",
        Duration::from_secs(20),
        || agent_session(&t) && kept_on_host(&t),
    );
    for n in ["s", "t"] {
        t.exec(n, &["ping", "-c", "2", "-i", "0.2", "-W", "2", "10.0.2.2"]);
    }

    // VR 1's stream follows a route of the agent's: withdrawn for a moment,
    // as a resync after a reconnect might, it would lose packets.
    t.exec("r", &["ip", "addr", "add", KEPT_ADDRESS, "dev", "lo"]);
    let forwarded_before = t.vr(1).forwarded;
    let receivers = stream_receivers(&t);
    let senders = stream_senders(&t, "2000", &format!("{KEPT_ADDRESS}:5000"));
    std::thread::sleep(Duration::from_secs(1));
    let churning = AtomicBool::new(true);
    let mut took = Vec::new();
    let churned = std::thread::scope(|s| {
        let churn = s.spawn(|| {
            let mut changes = 0u32;
            while churning.load(Ordering::Relaxed) {
                let verb = if changes.is_multiple_of(2) {
                    "add"
                } else {
                    "del"
                };
                t.exec("g", &["ip", "route", verb, CHURNED, "via", "10.0.2.2"]);
                changes += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            changes
        });
        for round in 0..HAND_OVERS {
            let start = Instant::now();
            let out = instances
                .upgrade(&instances.config)
                .unwrap_or_else(|e| panic!("hand-over {round}: {e}"));
            assert!(out.contains("took over"), "hand-over {round}: {out}");
            took.push(start.elapsed());
            let back = eventually("the agent's session", Duration::from_secs(20), || {
                agent_session(&t)
            });
            eprintln!(
                "hand-over {round}: {:?}; the agent back after {back:?}",
                took[round]
            );
        }
        churning.store(false, Ordering::Relaxed);
        churn.join().expect("the churn")
    });
    std::thread::sleep(Duration::from_secs(1));
    let [(s1, r1), (s2, r2)] = finish(senders, receivers);
    eprintln!(
        "{HAND_OVERS} hand-overs ({took:?}) with {churned} route changes; VR 1: sent {s1}, {}; \
         VR 2: sent {s2}, {}",
        brief(&r1),
        brief(&r2)
    );
    for (vr, sent, got) in [(1, s1, &r1), (2, s2, &r2)] {
        assert_eq!(got["unique"].as_u64(), Some(sent), "VR {vr} lost packets");
        assert_eq!(
            got["duplicates"].as_u64(),
            Some(0),
            "VR {vr} repeated packets"
        );
    }
    assert!(kept_on_host(&t), "every kept route is still there");
    let forwarded = t.vr(1).forwarded - forwarded_before;
    assert!(
        forwarded >= s1,
        "VR 1's counters go on across hand-overs: {forwarded} forwarded of {s1} sent"
    );
    let guest_has_churned = !churned.is_multiple_of(2);
    eventually(
        "the churned route as the guest has it",
        Duration::from_secs(10),
        || {
            t.try_ctl(&["routes", "1"])
                .is_ok_and(|r| r.contains(CHURNED) == guest_has_churned)
        },
    );
    let neighbors = t.ctl(&["neighbors", "1"]);
    assert!(neighbors.contains("10.0.2.2 dev eth1"), "{neighbors}");
    assert!(t.ctl(&["vrs"]).matches("active").count() >= 2);

    a_refused_clone_leaves_the_running_vrfwd_forwarding(&t, &instances);
    a_second_instance_without_hand_over_duplicates_and_a_restart_loses(&mut t, &instances);
}

/// The successor's config lacks VR 2: it joins the ports and takes VR 1's
/// clone, then VR 2's clone is refused; the running vrfwd steers the ports
/// back, keeps forwarding both streams, and stays the one that answers.
fn a_refused_clone_leaves_the_running_vrfwd_forwarding(t: &Topology, instances: &Instances) {
    let text = std::fs::read_to_string(&t.config).expect("the config");
    let vr2 = text.rfind("[[vr]]").expect("two VRs");
    let mut one_vr = text[..vr2].to_owned();
    for vif in ["v2", "v3"] {
        let port = format!("[[port]]\nname = \"{vif}\"\ndevice = \"socket:{PREFIX}{vif}\"\n\n");
        assert!(one_vr.contains(&port), "VR 2's vif {vif} in {one_vr}");
        one_vr = one_vr.replace(&port, "");
    }
    let without_vr2 = std::env::temp_dir().join(format!("vrfwd-{PREFIX}-one-vr.toml"));
    std::fs::write(&without_vr2, one_vr).expect("the second config");
    let receivers = stream_receivers(t);
    let senders = stream_senders(t, "2000", "10.0.2.2:5000");
    std::thread::sleep(Duration::from_secs(1));
    let refused = instances.upgrade(&without_vr2.display().to_string());
    let _ = std::fs::remove_file(&without_vr2);
    let why = refused.expect_err("a successor without VR 2 is refused");
    assert!(why.contains("vr 2"), "{why}");
    std::thread::sleep(Duration::from_secs(1));
    let [(s1, r1), (s2, r2)] = finish(senders, receivers);
    eprintln!(
        "abandoned hand-over: VR 1: sent {s1}, {}; VR 2: sent {s2}, {}",
        brief(&r1),
        brief(&r2)
    );
    for (vr, sent, got) in [(1, s1, &r1), (2, s2, &r2)] {
        assert_eq!(got["unique"].as_u64(), Some(sent), "VR {vr} lost packets");
        assert_eq!(got["duplicates"].as_u64(), Some(0), "VR {vr}");
    }
    assert!(t.ctl(&["vrs"]).matches("active").count() >= 2);
}

/// The negative controls: a second vrfwd on the same socket ports (its own
/// groups, as two instances without a hand-over would have) forwards every
/// packet a second time; a restart (stop, start) loses what arrives between.
fn a_second_instance_without_hand_over_duplicates_and_a_restart_loses(
    t: &mut Topology,
    instances: &Instances,
) {
    let text = std::fs::read_to_string(&t.config).expect("the config");
    let twin = std::env::temp_dir().join(format!("vrfwd-{PREFIX}-twin.toml"));
    std::fs::write(
        &twin,
        text.replace(
            &format!("vrfwd-{PREFIX}.sock"),
            &format!("vrfwd-{PREFIX}-twin.sock"),
        )
        .replace(
            &format!("--file-prefix=vrfwd-{PREFIX}"),
            &format!("--file-prefix=vrfwd-{PREFIX}-twin"),
        )
        .replace(
            &format!(":{CONTROL_PORT}"),
            &format!(":{}", CONTROL_PORT + 1),
        ),
    )
    .expect("the twin's config");
    let receivers = stream_receivers(t);
    let senders = stream_senders(t, "1000", "10.0.2.2:5000");
    let mut twin_vrfwd = Command::new(env!("CARGO_BIN_EXE_vrfwd"))
        .args(["run", "--config"])
        .arg(&twin)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the twin");
    std::thread::sleep(Duration::from_secs(3));
    stop(&mut twin_vrfwd);
    let _ = std::fs::remove_file(&twin);
    let [(_, r1), _] = finish(senders, receivers);
    eprintln!("a twin without hand-over: VR 1 {}", brief(&r1));
    assert!(
        r1["duplicates"].as_u64() > Some(100),
        "duplicates seen: {r1}"
    );

    let receivers = stream_receivers(t);
    let senders = stream_senders(t, "1000", "10.0.2.2:5000");
    std::thread::sleep(Duration::from_secs(1));
    // The running vrfwd is a successor: stop it by its socket's owner.
    let _ = Command::new("pkill")
        .args(["-INT", "-f", &format!("vrfwd.*{}", instances.config)])
        .status();
    eventually("the running vrfwd to stop", Duration::from_secs(10), || {
        t.try_stats().is_none()
    });
    t.stop();
    t.start();
    std::thread::sleep(Duration::from_secs(1));
    let [(s1, r1), _] = finish(senders, receivers);
    eprintln!("a restart: VR 1 sent {s1}, {}", brief(&r1));
    assert!(
        r1["unique"].as_u64() < Some(s1),
        "a restart loses packets: {r1}"
    );
}
