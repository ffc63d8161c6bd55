//! vrfwd's Prometheus endpoint scraped by a real Prometheus (Debian's
//! `prometheus`, on loopback, every second) while a stream of a known rate is
//! forwarded through VR 1: the rate Prometheus computes from the VR's
//! forwarded-packets counter is the stream's within 5 %, and `promtool check
//! metrics` accepts the endpoint's output; `dpdk-telemetry.py` reads the same
//! figures through DPDK telemetry's `/vrfwd/…` commands. Needs root and
//! `prometheus` (scripts/setup.sh installs it).
mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const METRICS: &str = "127.0.0.1:19469";
const PROMETHEUS: &str = "127.0.0.1:19090";
const PPS: u64 = 2000;

/// A process killed, and its folder removed, on drop (also when the test fails).
struct Running(Child, Option<PathBuf>);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        if let Some(dir) = &self.1 {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The body of `GET http://ADDRESS/PATH` (HTTP/1.0, no keep-alive).
fn get(address: &str, path: &str) -> String {
    let mut s = TcpStream::connect(address).unwrap_or_else(|e| panic!("{address}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(s, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").expect("request");
    let mut reply = String::new();
    s.read_to_string(&mut reply).expect("reply");
    let (head, body) = reply.split_once("\r\n\r\n").expect("an HTTP reply");
    assert!(
        head.starts_with("HTTP/1.") && head.contains(" 200 "),
        "{head}"
    );
    body.to_owned()
}

fn prometheus() -> Running {
    let dir = std::env::temp_dir().join("vrfwd-metrics-prometheus");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("prometheus folder");
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: vrfwd\n    static_configs:\n      - targets: ['{METRICS}']\n"
        ),
    )
    .expect("prometheus.yml");
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={PROMETHEUS}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus (apt-get install prometheus)");
    Running(child, Some(dir))
}

/// The value of Prometheus instant query `query`, if it has one.
fn query(q: &str) -> Option<f64> {
    let encoded: String = q
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let body = get(PROMETHEUS, &format!("/api/v1/query?query={encoded}"));
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

#[test]
fn prometheus_scrapes_the_forwarded_rate_and_promtool_accepts_the_endpoint() {
    let mut t = Topology::up_with("mx", 1, &[("METRICS_LISTEN", METRICS)]);
    t.start();
    t.exec(
        "s",
        &["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.0.2.2"],
    );
    // One batch through the route writer, for its histogram.
    t.ctl(&["route", "add", "1", "10.55.0.0/16", "via", "10.0.2.2"]);
    let stream = bin_dir().join("vrfwd-stream");
    let netns = |n: &str, args: &[&str]| {
        let child = Command::new("ip")
            .args(["netns", "exec", &t.ns(n)])
            .arg(&stream)
            .args(args)
            .stdout(Stdio::null())
            .spawn()
            .expect("start vrfwd-stream");
        Running(child, None)
    };
    let _receiver = netns("r", &["receive", "--port", "5000", "--seconds", "40"]);
    let _prometheus = prometheus();
    let pps = PPS.to_string();
    let _sender = netns(
        "s",
        &[
            "send",
            "--to",
            "10.0.2.2:5000",
            "--pps",
            &pps,
            "--seconds",
            "30",
        ],
    );
    // Prometheus up and scraping, and 10 s of the stream in its window; over
    // the same 10 s, the rate vrfwd's own counter shows.
    let rate_query = "rate(vrfwd_vr_forwarded_packets_total{vr=\"1\"}[10s])";
    std::thread::sleep(Duration::from_secs(6));
    let (start, before) = (Instant::now(), t.vr(1).forwarded);
    std::thread::sleep(Duration::from_secs(10));
    let counted = (t.vr(1).forwarded - before) as f64 / start.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(10);
    let rate = loop {
        match query(rate_query) {
            Some(rate) if rate > 0.0 => break rate,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_secs(1)),
            other => panic!("no rate from Prometheus: {other:?}"),
        }
    };
    let want = PPS as f64;
    eprintln!("stream {want} pps; vrfwd counted {counted:.0} pps; Prometheus {rate:.0} pps");
    assert!(
        (rate - want).abs() <= want * 0.05,
        "Prometheus's rate {rate:.0} pps, the stream's {want} pps (vrfwd counted {counted:.0})"
    );
    assert_eq!(query("up{job=\"vrfwd\"}"), Some(1.0), "the target is up");
    let state =
        |vr: &str, state: &str| query(&format!("vrfwd_vr_state{{vr=\"{vr}\",state=\"{state}\"}}"));
    assert_eq!(state("1", "active"), Some(1.0));
    assert_eq!(state("1", "standby"), Some(0.0));
    assert_eq!(
        query("vrfwd_vr_session_up{vr=\"1\"}"),
        Some(0.0),
        "no agent runs here"
    );
    let arrivals = query("vrfwd_vr_state_changes_total{vr=\"1\",to=\"active\"}");
    assert_eq!(arrivals, Some(0.0), "VR 1 started active and stayed");
    let batches = query("vrfwd_route_writer_batch_duration_seconds_count");
    assert!(batches >= Some(1.0), "the route add's batch: {batches:?}");

    let body = get(METRICS, "/metrics");
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    promtool
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("promtool input");
    let checked = promtool.wait_with_output().expect("promtool");
    assert!(
        checked.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    // The same figures through DPDK telemetry, as dpdk-telemetry.py reads them.
    let (forwarded_before, tx_before) = (t.vr(1).forwarded, t.stats().ports[1].tx);
    let answers = telemetry(
        &t,
        &[
            "/vrfwd/vrs",
            "/vrfwd/vr,1",
            "/vrfwd/port,u1",
            "/vrfwd/vr,77",
        ],
    );
    assert_eq!(answers[0]["/vrfwd/vrs"], serde_json::json!([1, 2]));
    let vr1 = &answers[1]["/vrfwd/vr"];
    assert_eq!(vr1["state"], "active");
    assert!(vr1["forwarded"].as_u64() >= Some(forwarded_before), "{vr1}");
    assert!(forwarded_before > PPS * 10, "the stream went through VR 1");
    let u1 = &answers[2]["/vrfwd/port"];
    assert!(u1["tx"].as_u64() >= Some(tx_before), "{u1}");
    assert_eq!(answers[3]["/vrfwd/vr"], serde_json::Value::Null, "no VR 77");
}

/// The answers `dpdk-telemetry.py` prints for `commands` to the running vrfwd
/// (its EAL file prefix is `vrfwd-PREFIX`), one JSON document each.
fn telemetry(t: &Topology, commands: &[&str]) -> Vec<serde_json::Value> {
    let mut py = Command::new("dpdk-telemetry.py")
        .args(["-f", &format!("vrfwd-{}", t.prefix)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("dpdk-telemetry.py (Debian's dpdk package)");
    let input = commands.join("\n") + "\n";
    py.stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("the commands");
    let out = py.wait_with_output().expect("dpdk-telemetry.py");
    let text = String::from_utf8_lossy(&out.stdout);
    let answers: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    assert_eq!(answers.len(), commands.len(), "{text}");
    answers
}
