//! The route protocol against a running vrfwd (namespaces + af_packet): bad input
//! of every kind is rejected with a named error and leaves the tables as they
//! were; sessions are authenticated, replaced by higher generations (version 3:
//! the generation the host handed out last), held after a
//! drop and withdrawn after the hold time; route churn and full resyncs never
//! disturb a stream forwarded meanwhile. Needs root.
mod common;

use common::client::{error_code, Client};
use common::*;
use std::io::Write;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use vrfwd_proto::{ErrorCode, Stanza};

#[test]
fn bad_input_is_rejected_whole_and_tables_stay() {
    let port = 17711;
    let mut t = Topology::up_with(
        "vc",
        1,
        &[
            ("CONTROL_PORT", "17711"),
            ("IDLE_TIMEOUT_S", "3"),
            ("KEEPALIVE_S", "1"),
            ("WRITE_TIMEOUT_S", "2"),
            ("MAX_ROUTES", "20"),
            ("MAX_STANZAS_PER_S", "10000000"),
        ],
    );
    t.start();

    // Authentication: a wrong credential, and VR 1's credential naming VR 2.
    let mut c = Client::connect(port);
    assert_eq!(
        error_code(c.call(r#"<hello seq="SEQ" vr="1" generation="1" credential="nope"/>"#)),
        ErrorCode::Auth
    );
    assert_eq!(c.recv(), None, "closed after a failed hello");
    let mut c = Client::connect(port);
    assert_eq!(
        error_code(
            c.call(r#"<hello seq="SEQ" vr="2" generation="1" credential="red-secret-for-tests"/>"#)
        ),
        ErrorCode::Auth
    );
    let mut c = Client::connect(port);
    assert_eq!(
        error_code(c.call(r#"<routes seq="SEQ"/>"#)),
        ErrorCode::Sequence,
        "hello first"
    );

    // Wrong version.
    let mut c = Client::bare(std::net::Ipv4Addr::LOCALHOST, port);
    c.raw(b"<vrfwd version=\"9\">");
    assert_eq!(error_code(c.recv()), ErrorCode::BadVersion);

    let mut c = Client::session(port, 1, 1, "red-secret-for-tests");
    c.ok(
        r#"<routes seq="SEQ"><add prefix="10.55.0.0/16" via="10.0.2.2" interface="g1"/></routes>"#,
    );
    let baseline = t.ctl(&["routes", "1"]);
    assert!(baseline.contains("10.55.0.0/16 via 10.0.2.2 dev eth1"));
    let too_many: String = (0..20)
        .map(|i| format!("<add prefix=\"10.{i}.128.0/24\" interface=\"g1\"/>"))
        .collect();
    for (stanza, code) in [
        (r#"<routes seq="SEQ"><add prefix="10.1.0.0/16"/></routes>"#.to_owned(), ErrorCode::InvalidStanza),
        (r#"<bogus seq="SEQ"/>"#.to_owned(), ErrorCode::UnknownElement),
        (r#"<routes seq="SEQ" colour="red"/>"#.to_owned(), ErrorCode::InvalidStanza),
        (r#"<routes seq="SEQ"><add prefix="10.1.0.0/16" interface="g1" metric="1"/></routes>"#.to_owned(), ErrorCode::InvalidStanza),
        (r#"<routes seq="SEQ"><add prefix="10.1.0.0/99" interface="g1"/></routes>"#.to_owned(), ErrorCode::BadPrefix),
        // The good first add must not be applied either: the stanza goes whole.
        (r#"<routes seq="SEQ"><add prefix="10.2.0.0/16" interface="g1"/><add prefix="10.1.0.1/16" interface="g1"/></routes>"#.to_owned(), ErrorCode::HostBits),
        (r#"<routes seq="SEQ"><add prefix="10.2.0.0/16" interface="g1"/><add prefix="10.1.0.0/16" via="192.0.2.1" interface="g1"/></routes>"#.to_owned(), ErrorCode::BadAddress),
        (r#"<routes seq="SEQ"><add prefix="10.2.0.0/16" interface="g1"/><add prefix="10.1.0.0/16" interface="eth9"/></routes>"#.to_owned(), ErrorCode::UnknownInterface),
        (format!("<routes seq=\"SEQ\">{too_many}</routes>"), ErrorCode::Limit),
        (r#"<interfaces seq="SEQ"><interface name="x" mac="02:99:00:00:00:01" address="10.9.9.1/24"/></interfaces>"#.to_owned(), ErrorCode::UnknownInterface),
        // A neighbour must be a station on its interface's subnet.
        (r#"<neighbors seq="SEQ"><add address="10.0.2.9" mac="02:00:00:00:bb:09" interface="g1"/><add address="10.0.9.9" mac="02:00:00:00:bb:09" interface="g1"/></neighbors>"#.to_owned(), ErrorCode::BadAddress),
        (r#"<neighbors seq="SEQ"><add address="10.0.2.9" mac="01:00:5e:00:00:09" interface="g1"/></neighbors>"#.to_owned(), ErrorCode::BadMac),
        // IPv6 needs version 4, which this stream did not negotiate.
        (r#"<routes seq="SEQ"><add prefix="10.2.0.0/16" interface="g1"/><add prefix="2001:db8::/32" interface="g1"/></routes>"#.to_owned(), ErrorCode::BadVersion),
        (r#"<neighbors seq="SEQ"><add address="fe80::9" mac="02:00:00:00:bb:09" interface="g1"/></neighbors>"#.to_owned(), ErrorCode::BadVersion),
    ] {
        let reply = c.call(&stanza);
        match reply {
            Some(Stanza::Error { code: got, seq: Some(seq), message }) => {
                assert_eq!((got, seq), (code, c.seq), "{stanza}: {message}");
                assert!(!message.is_empty());
            }
            other => panic!("{stanza}: {other:?}"),
        }
        assert_eq!(t.ctl(&["routes", "1"]), baseline, "{stanza} changed the table");
    }
    c.ok(r#"<keepalive/><routes seq="SEQ"/>"#);

    // Malformed XML (a closing tag that closes the wrong element) ends the session.
    let mut m = Client::session(port, 1, 5, "red-secret-for-tests");
    let reply = m.call(r#"<routes seq="SEQ"><add prefix="10.1.0.0/16" interface="g1"></routes>"#);
    assert_eq!(error_code(reply), ErrorCode::MalformedXml);
    assert_eq!(m.recv(), None);
    assert_eq!(t.ctl(&["routes", "1"]), baseline);
    let mut c = Client::session(port, 1, 6, "red-secret-for-tests");

    // A DOCTYPE (entity expansion attempt) ends the session; the tables stay.
    assert_eq!(
        error_code(c.call("<!DOCTYPE x [<!ENTITY a \"aaaa\">]>")),
        ErrorCode::Forbidden
    );
    assert_eq!(c.recv(), None);
    assert_eq!(t.ctl(&["routes", "1"]), baseline);

    // Oversized stanza.
    let mut c = Client::session(port, 1, 2, "red-secret-for-tests");
    let huge = format!(
        "<routes seq=\"9\">{}</routes>",
        "<delete prefix=\"10.0.0.0/8\"/>".repeat(40_000)
    );
    c.raw(huge.as_bytes());
    assert_eq!(error_code(c.recv()), ErrorCode::TooLarge);
    assert_eq!(t.ctl(&["routes", "1"]), baseline);

    // Slowloris: one byte a second never completes a stanza in time.
    let mut c = Client::session(port, 1, 3, "red-secret-for-tests");
    let start = Instant::now();
    for b in br#"<routes seq="3"><add prefix="10.3.0.0/16" interface="g1"/></routes>"# {
        c.raw(&[*b]);
        std::thread::sleep(Duration::from_millis(1000));
        if start.elapsed() > Duration::from_secs(8) {
            break;
        }
    }
    assert_eq!(error_code(c.recv()), ErrorCode::Limit, "idle timeout");
    assert!(start.elapsed() < Duration::from_secs(9));

    // A client that never reads its acks is dropped, and vrfwd stays bounded.
    let mut c = Client::session(port, 1, 4, "red-secret-for-tests");
    let burst = "<interfaces seq=\"7\"/>".repeat(10_000);
    let start = Instant::now();
    let mut dropped = false;
    while start.elapsed() < Duration::from_secs(30) {
        if c.stream.write_all(burst.as_bytes()).is_err() {
            dropped = true;
            break;
        }
    }
    assert!(dropped, "vrfwd must stop serving a peer that does not read");

    // Sessions per source address.
    let many: Vec<Client> = (0..16).map(|_| Client::connect(port)).collect();
    let mut extra = Client::connect(port);
    assert_eq!(error_code(extra.recv()), ErrorCode::Limit);
    drop(many);
    assert_eq!(t.ctl(&["routes", "1"]), baseline);
}

fn routes_of(t: &Topology) -> usize {
    t.vr(1).routes
}

#[test]
fn sessions_hold_replace_resync_and_withdraw() {
    let port = 17712;
    let mut t = Topology::up_with(
        "vh",
        1,
        &[
            ("CONTROL_PORT", "17712"),
            ("HOLD_TIME_S", "3"),
            ("KEEPALIVE_S", "1"),
        ],
    );
    t.start();
    t.exec(
        "s",
        &["ping", "-c", "2", "-i", "0.2", "-W", "2", "10.0.2.2"],
    );
    let system = routes_of(&t);

    let mut a = Client::session(port, 1, 1, "red-secret-for-tests");
    a.ok(
        r#"<routes seq="SEQ"><add prefix="10.55.0.0/16" via="10.0.2.2" interface="g1"/></routes>"#,
    );
    a.ok(r#"<neighbors seq="SEQ"><add address="10.0.2.9" mac="02:00:00:00:bb:09" interface="g1"/></neighbors>"#);
    assert!(t
        .ctl(&["neighbors", "1"])
        .contains("10.0.2.9 dev eth1 lladdr 02:00:00:00:bb:09"));
    assert!(t.ctl(&["sessions"]).contains("127.0.0.1"));
    let forwarded = |t: &Topology| t.vr(1).forwarded;

    // A higher generation replaces the session; a lower one is refused.
    let b = Client::session(port, 1, 5, "red-secret-for-tests");
    assert_eq!(error_code(a.recv()), ErrorCode::Replaced);
    let mut old = Client::connect(port);
    assert_eq!(
        error_code(
            old.call(
                r#"<hello seq="SEQ" vr="1" generation="4" credential="red-secret-for-tests"/>"#
            )
        ),
        ErrorCode::Replaced
    );

    // The session drops: routes keep forwarding during the hold time.
    drop(b);
    std::thread::sleep(Duration::from_millis(300));
    let before = forwarded(&t);
    t.send("s", "eth0", VR1_ETH0, "10.55.1.1", 5, 64);
    assert_eq!(
        forwarded(&t) - before,
        5,
        "stale routes forward during the hold time"
    );

    // A resync inside the hold time replaces the stale routes.
    let mut c = Client::session(port, 1, 6, "red-secret-for-tests");
    c.ok(r#"<sync-begin seq="SEQ"/>"#);
    c.ok(
        r#"<routes seq="SEQ"><add prefix="10.56.0.0/16" via="10.0.2.2" interface="g1"/></routes>"#,
    );
    c.ok(r#"<sync-end seq="SEQ"/>"#);
    let routes = t.ctl(&["routes", "1"]);
    assert!(
        routes.contains("10.56.0.0/16") && !routes.contains("10.55.0.0/16"),
        "{routes}"
    );
    assert_eq!(routes_of(&t), system + 1);

    // Gone for longer than the hold time: the fast path is withdrawn and every
    // packet goes to the guest.
    drop(c);
    std::thread::sleep(Duration::from_millis(4500));
    assert_eq!(routes_of(&t), 0);
    let (fwd, no_route) = (forwarded(&t), punted(&t.vr(1), "no_route"));
    t.send("s", "eth0", VR1_ETH0, "10.0.2.2", 3, 64);
    assert_eq!(forwarded(&t), fwd, "nothing takes the fast path");
    // (the 3 packets, and the receiver's answers coming back the other way)
    assert!(punted(&t.vr(1), "no_route") - no_route >= 3);

    // And it comes back when the guest reconnects and syncs.
    let mut d = Client::session(port, 1, 7, "red-secret-for-tests");
    d.ok(r#"<sync-begin seq="SEQ"/>"#);
    d.ok(r#"<sync-end seq="SEQ"/>"#);
    assert_eq!(routes_of(&t), system);
    let fwd = forwarded(&t);
    t.send("s", "eth0", VR1_ETH0, "10.0.2.2", 3, 64);
    assert!(forwarded(&t) - fwd >= 3);

    // Version 3: the host hands out generations, and an agent presents the last
    // one it got, whatever its clock says. An older one is a stale twin's: refused,
    // and the refusal changes nothing.
    drop(d);
    std::thread::sleep(Duration::from_millis(300));
    let v3 = |generation: u64| {
        let (mut c, nonce) = Client::connect_v2(Ipv4Addr::LOCALHOST, port);
        let hello = c.hello_v2(1, generation, "red-secret-for-tests", &nonce);
        c.raw(hello.as_bytes());
        let reply = c.recv();
        (c, reply)
    };
    let (mut e, reply) = v3(0);
    assert_eq!(reply, Some(Stanza::Ack { seq: 1 }));
    e.ok(r#"<sync-begin seq="SEQ"/>"#);
    let handed = e.generation.expect("a generation handed out");
    assert!(handed > 7, "after every generation seen: {handed}");
    let sessions = t.ctl(&["sessions"]);
    let (_stale, reply) = v3(handed - 1);
    assert_eq!(error_code(reply), ErrorCode::Replaced);
    assert_eq!(
        t.ctl(&["sessions"]),
        sessions,
        "a refused hello changes nothing"
    );
    let (mut f, reply) = v3(handed);
    assert_eq!(reply, Some(Stanza::Ack { seq: 1 }));
    assert_eq!(error_code(e.recv()), ErrorCode::Replaced);
    f.ok(r#"<sync-begin seq="SEQ"/>"#);
    assert_eq!(f.generation, Some(handed + 1));
}

/// 100k route changes and a full resync of 100k routes while a 10k packet/s stream
/// is forwarded to a destination none of them touches: nothing lost, nothing
/// reordered.
#[test]
fn route_churn_and_resync_never_disturb_a_stream() {
    let port = 17713;
    let mut t = Topology::up_with(
        "vs",
        1,
        &[("CONTROL_PORT", "17713"), ("MAX_STANZAS_PER_S", "100000")],
    );
    t.start();
    t.exec(
        "s",
        &["ping", "-c", "2", "-i", "0.2", "-W", "2", "10.0.2.2"],
    );
    let server_log = std::env::temp_dir().join("vrfwd-vs-iperf3.json");
    let _ = std::fs::remove_file(&server_log);
    t.exec(
        "r",
        &[
            "iperf3",
            "-s",
            "-1",
            "-D",
            "-J",
            "--logfile",
            server_log.to_str().unwrap(),
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    let client = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &t.ns("s"),
            "iperf3",
            "-u",
            "-c",
            "10.0.2.2",
            "-b",
            "8M",
            "-l",
            "100",
            "-t",
            "14",
            "-J",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("iperf3");
    std::thread::sleep(Duration::from_millis(1000));

    let mut c = Client::session(port, 1, 1, "red-secret-for-tests");
    let prefix = |i: u32| format!("{}.{}.{}.0/24", 20 + i / 65536, (i / 256) % 256, i % 256);
    let start = Instant::now();
    for add in [true, false] {
        for chunk in 0..50u32 {
            let ops: String = (chunk * 1000..(chunk + 1) * 1000)
                .map(|i| match add {
                    true => format!(
                        "<add prefix=\"{}\" via=\"10.0.2.2\" interface=\"g1\"/>",
                        prefix(i)
                    ),
                    false => format!("<delete prefix=\"{}\"/>", prefix(i)),
                })
                .collect();
            c.ok(&format!("<routes seq=\"SEQ\">{ops}</routes>"));
        }
    }
    let churn = start.elapsed();
    let start = Instant::now();
    c.ok(r#"<sync-begin seq="SEQ"/>"#);
    for chunk in 0..100u32 {
        let ops: String = (chunk * 1000..(chunk + 1) * 1000)
            .map(|i| {
                format!(
                    "<add prefix=\"{}\" via=\"10.0.2.2\" interface=\"g1\"/>",
                    prefix(i)
                )
            })
            .collect();
        c.ok(&format!("<routes seq=\"SEQ\">{ops}</routes>"));
    }
    c.ok(r#"<sync-end seq="SEQ"/>"#);
    let resync = start.elapsed();
    eprintln!("100k changes in {churn:?}, 100k-route resync in {resync:?}");
    assert!(t.vr(1).routes >= 100_000);

    client.wait_with_output().expect("iperf3 client");
    // The receiver's own report: what arrived, lost and out of order.
    let deadline = Instant::now() + Duration::from_secs(5);
    let report: serde_json::Value = loop {
        let parsed = std::fs::read(&server_log)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        match parsed {
            Some(r) => break r,
            None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            None => panic!("no iperf3 server report"),
        }
    };
    let _ = std::fs::remove_file(&server_log);
    let udp = &report["end"]["streams"][0]["udp"];
    eprintln!("iperf3 receiver: {udp}");
    assert!(udp["packets"].as_u64().expect("packets") > 100_000, "{udp}");
    assert_eq!(udp["lost_packets"].as_u64(), Some(0), "{udp}");
    assert_eq!(udp["out_of_order"].as_u64(), Some(0), "{udp}");
}
