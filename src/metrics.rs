//! The Prometheus endpoint (`[metrics]`, docs/operating.md "Metrics"): an
//! HTTP listener answering `GET /metrics` with the counters' snapshot taken at
//! that moment, in the OpenMetrics text format written by `prometheus-client`
//! (the Prometheus project's client). Names and labels follow Prometheus's
//! conventions: `vrfwd_…_total` for counters, labels for port, VR, segment,
//! lcore and reason. Nothing here runs on an lcore: a scrape reads the
//! per-lcore counters as `vrfwd stats` does.
use crate::dataplane::VrState;
use crate::stats::Snapshot;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long the listener sleeps when no scrape waits (it checks for shutdown).
const POLL: Duration = Duration::from_millis(50);
/// How long a scraper may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// The content type of the OpenMetrics text format (what Prometheus asks for).
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of Prometheus's classic text format (for other scrapers
/// and `promtool check metrics`).
const CLASSIC: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What one scrape reads: the counters, and each VR's state and session.
#[derive(Debug)]
pub struct Scrape {
    pub counters: Snapshot,
    pub vrs: Vec<VrStatus>,
    /// How long the route writer's batches took.
    pub batch_seconds: Histogram,
}

/// A VR's state as the control side sees it.
#[derive(Debug, Clone)]
pub struct VrStatus {
    pub id: u32,
    pub state: VrState,
    /// The generation of its guest's agent's session, when one is up.
    pub session: Option<u64>,
    /// Being cloned to another host (a migration under way).
    pub cloning: bool,
    /// How many times it entered each state (by [`VrState::ALL`]'s order).
    pub entered: [u64; 4],
}

/// Serves scrapes on `listener` (non-blocking) until `quit`, each answered
/// with what `snapshot` reads then.
pub fn serve(listener: &TcpListener, quit: &AtomicBool, snapshot: &dyn Fn() -> Scrape) {
    while !quit.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(e) = answer(stream, snapshot) {
                    tracing::debug!("metrics scrape: {e}");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(e) => {
                tracing::warn!("metrics accept: {e}");
                std::thread::sleep(POLL);
            }
        }
    }
}

/// Answers one HTTP request: the metrics for `GET /metrics`, 404 otherwise.
fn answer(stream: TcpStream, snapshot: &dyn Fn() -> Scrape) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    let mut reader = BufReader::new(&stream);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // The headers, up to the blank line: only Accept matters.
    let mut openmetrics = false;
    let mut header = String::new();
    while reader.read_line(&mut header)? > 2 {
        let accept = header.to_ascii_lowercase();
        openmetrics |=
            accept.starts_with("accept:") && accept.contains("application/openmetrics-text");
        header.clear();
    }
    let (status, body) = match request.split_whitespace().collect::<Vec<_>>()[..] {
        ["GET", "/metrics", _] => match encode(snapshot()) {
            Ok(body) if openmetrics => ("200 OK", body),
            Ok(body) => ("200 OK", classic(&body)),
            Err(_) => ("500 Internal Server Error", String::new()),
        },
        _ => ("404 Not Found", String::new()),
    };
    let content_type = if openmetrics { OPENMETRICS } else { CLASSIC };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    (&stream).write_all(head.as_bytes())?;
    (&stream).write_all(body.as_bytes())
}

/// `snapshot` in the OpenMetrics text format.
pub fn encode(snapshot: Scrape) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Figures(snapshot)));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    Ok(out)
}

/// OpenMetrics text as Prometheus's classic text format: a counter family is
/// named with its `_total` suffix there, and there are no `# UNIT` lines and
/// no `# EOF`.
fn classic(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    let openmetrics_only = |l: &str| l == "# EOF" || l.starts_with("# UNIT ");
    for line in openmetrics.lines().filter(|&l| !openmetrics_only(l)) {
        let family = ["# HELP ", "# TYPE "].into_iter().find_map(|tag| {
            let rest = line.strip_prefix(tag)?;
            let name = rest.split(' ').next()?;
            counters
                .contains(&name)
                .then(|| format!("{tag}{name}_total{}", &rest[name.len()..]))
        });
        out.push_str(family.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// A scrape's figures, as the collector of one scrape.
#[derive(Debug)]
struct Figures(Scrape);

/// One metric family: its name (without `_total`), help and type, and the
/// value of each label set.
struct Family<L> {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    values: Vec<(L, u64)>,
}

impl<L: EncodeLabelSet> Family<L> {
    fn encode(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let mut metric = encoder.encode_descriptor(self.name, self.help, None, self.kind)?;
        for (labels, value) in &self.values {
            let family = metric.encode_family(labels)?;
            match self.kind {
                MetricType::Gauge => ConstGauge::new(*value as i64).encode(family)?,
                _ => ConstCounter::new(*value).encode(family)?,
            }
        }
        Ok(())
    }
}

type Labels = Vec<(&'static str, String)>;

fn counter(name: &'static str, help: &'static str, values: Vec<(Labels, u64)>) -> Family<Labels> {
    Family {
        name,
        help,
        kind: MetricType::Counter,
        values,
    }
}

fn gauge(name: &'static str, help: &'static str, values: Vec<(Labels, u64)>) -> Family<Labels> {
    Family {
        name,
        help,
        kind: MetricType::Gauge,
        values,
    }
}

impl Figures {
    /// Every family, from the snapshot.
    fn families(&self) -> Vec<Family<Labels>> {
        let mut families = self.counters();
        families.extend(self.states());
        families
    }

    /// Each VR's state (one series per state, 1 for the VR's), session and
    /// migration.
    fn states(&self) -> Vec<Family<Labels>> {
        let vrs = &self.0.vrs;
        let vr = |v: &VrStatus| vec![("vr", v.id.to_string())];
        let states = vrs.iter().flat_map(|v| {
            VrState::ALL.map(|state| {
                let labels = [vr(v), vec![("state", state.label().to_owned())]].concat();
                (labels, u64::from(v.state == state))
            })
        });
        let up = vrs.iter().map(|v| (vr(v), u64::from(v.session.is_some())));
        let generations = vrs.iter().filter_map(|v| Some((vr(v), v.session?)));
        let cloning = vrs.iter().map(|v| (vr(v), u64::from(v.cloning)));
        let entered = vrs.iter().flat_map(|v| {
            VrState::ALL.map(|state| {
                let labels = [vr(v), vec![("to", state.label().to_owned())]].concat();
                (labels, v.entered[state as usize])
            })
        });
        vec![
            gauge(
                "vrfwd_vr_state",
                "The VR's state: 1 for the one it is in.",
                states.collect(),
            ),
            gauge(
                "vrfwd_vr_session_up",
                "Whether the VR's guest's agent has a session up.",
                up.collect(),
            ),
            gauge(
                "vrfwd_vr_session_generation",
                "The generation of the VR's session.",
                generations.collect(),
            ),
            gauge(
                "vrfwd_vr_cloning",
                "Whether the VR is being cloned to another host.",
                cloning.collect(),
            ),
            counter(
                "vrfwd_vr_state_changes",
                "Times the VR entered a state (to active: arrivals; to draining: departures).",
                entered.collect(),
            ),
        ]
    }

    /// The counters of ports, VRs, segments and lcores.
    fn counters(&self) -> Vec<Family<Labels>> {
        let s = &self.0.counters;
        let port = |p: &crate::stats::PortSnapshot| vec![("port", p.name.clone())];
        let vr = |v: &crate::stats::VrSnapshot| vec![("vr", v.id.to_string())];
        let segment = |g: &crate::stats::SegmentSnapshot| vec![("segment", g.name.clone())];
        let lcore = |i: usize| vec![("lcore", i.to_string())];
        let ports = |f: fn(&crate::stats::PortSnapshot) -> u64| {
            s.ports.iter().map(|p| (port(p), f(p))).collect()
        };
        let vrs =
            |f: fn(&crate::stats::VrSnapshot) -> u64| s.vrs.iter().map(|v| (vr(v), f(v))).collect();
        let port_drops = s.ports.iter().flat_map(|p| {
            [
                ("tx_full", p.tx_dropped),
                ("spoofed", p.spoofed),
                ("flood_limited", p.flood_limited),
            ]
            .map(|(reason, n)| ([port(p), vec![("reason", reason.to_owned())]].concat(), n))
        });
        let punts = s.vrs.iter().flat_map(|v| {
            v.punted
                .iter()
                .map(move |(reason, &n)| ([vr(v), vec![("reason", reason.clone())]].concat(), n))
        });
        let segment_drops = s.segments.iter().flat_map(|g| {
            g.dropped.iter().map(move |(reason, &n)| {
                ([segment(g), vec![("reason", reason.clone())]].concat(), n)
            })
        });
        vec![
            counter(
                "vrfwd_port_received_packets",
                "Frames received on the port.",
                ports(|p| p.rx),
            ),
            counter(
                "vrfwd_port_sent_packets",
                "Frames sent on the port.",
                ports(|p| p.tx),
            ),
            counter(
                "vrfwd_port_dropped_packets",
                "Frames the port dropped, by reason.",
                port_drops.collect(),
            ),
            counter(
                "vrfwd_vr_received_packets",
                "IP packets the VR's interfaces received.",
                vrs(|v| v.rx),
            ),
            counter(
                "vrfwd_vr_forwarded_packets",
                "Packets the fast path forwarded for the VR.",
                vrs(|v| v.forwarded),
            ),
            counter(
                "vrfwd_vr_punted_packets",
                "Packets sent to the VR's guest, by reason.",
                punts.collect(),
            ),
            counter(
                "vrfwd_vr_arp_answered",
                "ARP requests the fast path answered for the VR.",
                vrs(|v| v.arp_answered),
            ),
            counter(
                "vrfwd_vr_ndp_answered",
                "Neighbour solicitations the fast path answered for the VR.",
                vrs(|v| v.ndp_answered),
            ),
            gauge(
                "vrfwd_vr_routes",
                "Routes in the VR's table.",
                vrs(|v| v.routes as u64),
            ),
            gauge(
                "vrfwd_vr_neighbors",
                "Neighbours the VR's fast path knows.",
                vrs(|v| v.neighbors as u64),
            ),
            counter(
                "vrfwd_segment_unicast_packets",
                "Frames switched within the segment.",
                s.segments.iter().map(|g| (segment(g), g.unicast)).collect(),
            ),
            counter(
                "vrfwd_segment_flooded_packets",
                "Frames flooded on the segment.",
                s.segments.iter().map(|g| (segment(g), g.flooded)).collect(),
            ),
            counter(
                "vrfwd_segment_dropped_packets",
                "Frames dropped on the segment, by reason.",
                segment_drops.collect(),
            ),
            counter(
                "vrfwd_lcore_polls",
                "Polling loops of the lcore.",
                s.lcores
                    .iter()
                    .enumerate()
                    .map(|(i, l)| (lcore(i), l.polls))
                    .collect(),
            ),
            counter(
                "vrfwd_lcore_busy_polls",
                "Polling loops of the lcore that found frames.",
                s.lcores
                    .iter()
                    .enumerate()
                    .map(|(i, l)| (lcore(i), l.busy_polls))
                    .collect(),
            ),
        ]
    }
}

impl Collector for Figures {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        self.families()
            .iter()
            .try_for_each(|family| family.encode(&mut encoder))?;
        let metric = encoder.encode_descriptor(
            "vrfwd_route_writer_batch_duration",
            "How long the route writer took from a batch's turn to its publication.",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        self.0.batch_seconds.encode(metric)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{PortSnapshot, VrSnapshot};

    #[test]
    fn a_snapshot_is_encoded_by_prometheus_conventions() {
        let mut snapshot = Snapshot::default();
        snapshot.ports.push(PortSnapshot {
            name: "up1".into(),
            rx: 10,
            tx: 7,
            spoofed: 2,
            ..Default::default()
        });
        snapshot.vrs.push(VrSnapshot {
            id: 3,
            forwarded: 1234,
            routes: 5,
            punted: [("no_route".to_owned(), 9)].into(),
            ..Default::default()
        });
        let vrs = vec![VrStatus {
            id: 3,
            state: VrState::Active,
            session: Some(7),
            cloning: false,
            entered: [2, 1, 1, 0],
        }];
        let batches = crate::control::writer::batch_histogram();
        batches.observe(0.003);
        let text = encode(Scrape {
            counters: snapshot,
            vrs,
            batch_seconds: batches,
        })
        .unwrap();
        for line in [
            "# TYPE vrfwd_vr_forwarded_packets counter",
            "vrfwd_vr_forwarded_packets_total{vr=\"3\"} 1234",
            "vrfwd_vr_punted_packets_total{vr=\"3\",reason=\"no_route\"} 9",
            "vrfwd_port_received_packets_total{port=\"up1\"} 10",
            "vrfwd_port_dropped_packets_total{port=\"up1\",reason=\"spoofed\"} 2",
            "# TYPE vrfwd_vr_routes gauge",
            "vrfwd_vr_routes{vr=\"3\"} 5",
            "vrfwd_vr_state{vr=\"3\",state=\"active\"} 1",
            "vrfwd_vr_state{vr=\"3\",state=\"draining\"} 0",
            "vrfwd_vr_session_up{vr=\"3\"} 1",
            "vrfwd_vr_session_generation{vr=\"3\"} 7",
            "vrfwd_vr_cloning{vr=\"3\"} 0",
            "vrfwd_vr_state_changes_total{vr=\"3\",to=\"active\"} 2",
            "vrfwd_vr_state_changes_total{vr=\"3\",to=\"draining\"} 1",
            "# TYPE vrfwd_route_writer_batch_duration_seconds histogram",
            "vrfwd_route_writer_batch_duration_seconds_count 1",
            "vrfwd_route_writer_batch_duration_seconds_bucket{le=\"0.0016\"} 0",
            "vrfwd_route_writer_batch_duration_seconds_bucket{le=\"0.0064\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing from:\n{text}"
            );
        }
        assert!(text.ends_with("# EOF\n"));
        let classic = classic(&text);
        for line in [
            "# HELP vrfwd_vr_forwarded_packets_total Packets the fast path forwarded for the VR.",
            "# TYPE vrfwd_vr_forwarded_packets_total counter",
            "vrfwd_vr_forwarded_packets_total{vr=\"3\"} 1234",
            "# TYPE vrfwd_vr_routes gauge",
        ] {
            assert!(
                classic.lines().any(|l| l == line),
                "{line:?} missing from:\n{classic}"
            );
        }
        assert!(!classic.contains("# EOF"));
    }
}
