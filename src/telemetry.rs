//! DPDK telemetry commands `/vrfwd/…` (docs/operating.md, "DPDK telemetry"),
//! readable with `dpdk-telemetry.py` like DPDK's own `/ethdev/…`: the figures
//! of `vrfwd stats` and of the metrics, taken from one scrape per request, on
//! DPDK's telemetry thread (never an lcore).
//!
//! [`answer`] is the whole protocol (a command and its parameter in, a
//! dictionary or a list out) and knows nothing of DPDK;
//! [`crate::dpdk::telemetry::Registration`] hands it to DPDK's telemetry
//! library for as long as the appliance runs.
use crate::dpdk::telemetry::{Answer, Value};
use crate::metrics::Scrape;

/// The commands and their help, as `dpdk-telemetry.py` lists them (`/help,CMD`).
pub const COMMANDS: &[(&str, &str)] = &[
    (
        "/vrfwd/vrs",
        "The VR ids. Parameter: the index to start at (lists hold 512).",
    ),
    (
        "/vrfwd/vr",
        "A VR's counters, state and session. Parameter: its id.",
    ),
    (
        "/vrfwd/ports",
        "The port names. Parameter: the index to start at.",
    ),
    ("/vrfwd/port", "A port's counters. Parameter: its name."),
    (
        "/vrfwd/segments",
        "The segment names. Parameter: the index to start at.",
    ),
    (
        "/vrfwd/segment",
        "A segment's counters. Parameter: its name.",
    ),
    (
        "/vrfwd/lcore",
        "An lcore's polls. Parameter: its index from 0.",
    ),
    ("/vrfwd/mempool", "The packet-buffer pool. No parameter."),
];

/// Entries a list may hold (DPDK's `RTE_TEL_MAX_ARRAY_ENTRIES`): a longer one
/// is asked for from an index on.
const LIST_MAX: usize = 512;

/// What `cmd` with parameter `param` answers from `s`; None for an unknown
/// command or a parameter that names nothing.
pub fn answer(s: &Scrape, cmd: &str, param: &str) -> Option<Answer> {
    let c = &s.counters;
    let from = || {
        param
            .parse::<usize>()
            .ok()
            .or(param.is_empty().then_some(0))
    };
    match cmd {
        "/vrfwd/vrs" => list(c.vrs.iter().map(|v| Value::U64(v.id.into())), from()?),
        "/vrfwd/ports" => list(c.ports.iter().map(|p| Value::Str(p.name.clone())), from()?),
        "/vrfwd/segments" => list(
            c.segments.iter().map(|g| Value::Str(g.name.clone())),
            from()?,
        ),
        "/vrfwd/vr" => {
            let id: u32 = param.parse().ok()?;
            let counters = c.vrs.iter().find(|v| v.id == id)?;
            let status = s.vrs.iter().find(|v| v.id == id)?;
            let mut dict = flattened(counters);
            dict.push(("state".into(), Value::Str(status.state.label().into())));
            dict.push((
                "session".into(),
                Value::U64(status.session.is_some().into()),
            ));
            dict.push(("generation".into(), Value::U64(status.session.unwrap_or(0))));
            dict.push(("cloning".into(), Value::U64(status.cloning.into())));
            Some(Answer::Dict(dict))
        }
        "/vrfwd/port" => Some(Answer::Dict(flattened(
            c.ports.iter().find(|p| p.name == param)?,
        ))),
        "/vrfwd/segment" => Some(Answer::Dict(flattened(
            c.segments.iter().find(|g| g.name == param)?,
        ))),
        "/vrfwd/lcore" => Some(Answer::Dict(flattened(
            c.lcores.get(param.parse::<usize>().ok()?)?,
        ))),
        "/vrfwd/mempool" => Some(Answer::Dict(flattened(&c.mempool))),
        _ => None,
    }
}

/// Up to [`LIST_MAX`] of `items` from index `from` on.
fn list(items: impl Iterator<Item = Value>, from: usize) -> Option<Answer> {
    Some(Answer::List(items.skip(from).take(LIST_MAX).collect()))
}

/// A snapshot's fields as one dictionary: numbers and strings as they are,
/// nested ones (`punted`, `dropped`, a port's `pmd`) as `outer_inner`.
fn flattened(item: &impl serde::Serialize) -> Vec<(String, Value)> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, Value)>) {
        match v {
            serde_json::Value::Object(fields) => {
                for (k, v) in fields {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}_{k}")
                    };
                    walk(&key, v, out);
                }
            }
            serde_json::Value::Number(n) => {
                out.push((prefix.into(), Value::U64(n.as_u64().unwrap_or(0))))
            }
            serde_json::Value::String(s) => out.push((prefix.into(), Value::Str(s.clone()))),
            serde_json::Value::Bool(b) => out.push((prefix.into(), Value::U64((*b).into()))),
            serde_json::Value::Null | serde_json::Value::Array(_) => {}
        }
    }
    let mut out = Vec::new();
    walk(
        "",
        &serde_json::to_value(item).expect("a snapshot serialises"),
        &mut out,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::VrState;
    use crate::metrics::VrStatus;
    use crate::stats::{LcoreSnapshot, PortSnapshot, Snapshot, VrSnapshot};

    fn scrape() -> Scrape {
        let mut counters = Snapshot::default();
        counters.ports.push(PortSnapshot {
            name: "up1".into(),
            rx: 10,
            spoofed: 2,
            ..Default::default()
        });
        counters.lcores.push(LcoreSnapshot {
            polls: 100,
            busy_polls: 40,
            sleeps: 3,
        });
        counters.vrs = (1..=600)
            .map(|id| VrSnapshot {
                id,
                forwarded: 1234,
                punted: [("no_route".to_owned(), 9)].into(),
                ..Default::default()
            })
            .collect();
        let vrs = vec![VrStatus {
            id: 3,
            state: VrState::Draining,
            session: Some(7),
            cloning: true,
            entered: [1, 0, 1, 0],
        }];
        Scrape {
            counters,
            vrs,
            batch_seconds: crate::control::writer::batch_histogram(),
        }
    }

    fn get<'a>(a: &'a Answer, key: &str) -> Option<&'a Value> {
        let Answer::Dict(entries) = a else {
            return None;
        };
        entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    #[test]
    fn a_vr_answers_its_counters_state_and_session() {
        let s = scrape();
        let vr = answer(&s, "/vrfwd/vr", "3").expect("VR 3");
        assert_eq!(get(&vr, "forwarded"), Some(&Value::U64(1234)));
        assert_eq!(get(&vr, "punted_no_route"), Some(&Value::U64(9)));
        assert_eq!(get(&vr, "state"), Some(&Value::Str("draining".into())));
        assert_eq!(get(&vr, "generation"), Some(&Value::U64(7)));
        assert_eq!(get(&vr, "cloning"), Some(&Value::U64(1)));
        assert_eq!(answer(&s, "/vrfwd/vr", "9999"), None, "no such VR");
        assert_eq!(answer(&s, "/vrfwd/vr", "x"), None);
        assert_eq!(answer(&s, "/vrfwd/nothing", ""), None);
    }

    #[test]
    fn lists_hold_512_and_go_on_from_an_index() {
        let s = scrape();
        let Some(Answer::List(first)) = answer(&s, "/vrfwd/vrs", "") else {
            panic!("a list")
        };
        assert_eq!((first.len(), &first[0]), (512, &Value::U64(1)));
        let Some(Answer::List(rest)) = answer(&s, "/vrfwd/vrs", "512") else {
            panic!("a list")
        };
        assert_eq!((rest.len(), &rest[0]), (88, &Value::U64(513)));
        let ports = answer(&s, "/vrfwd/ports", "").unwrap();
        assert_eq!(ports, Answer::List(vec![Value::Str("up1".into())]));
    }

    #[test]
    fn ports_lcores_and_the_pool_answer_their_snapshots() {
        let s = scrape();
        let port = answer(&s, "/vrfwd/port", "up1").expect("up1");
        assert_eq!(get(&port, "spoofed"), Some(&Value::U64(2)));
        assert_eq!(get(&port, "name"), Some(&Value::Str("up1".into())));
        let lcore = answer(&s, "/vrfwd/lcore", "0").expect("lcore 0");
        assert_eq!(get(&lcore, "busy_polls"), Some(&Value::U64(40)));
        assert_eq!(answer(&s, "/vrfwd/lcore", "1"), None);
        assert!(get(&answer(&s, "/vrfwd/mempool", "").unwrap(), "in_use").is_some());
    }
}
