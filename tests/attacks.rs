//! Control-plane attacks against a running vrfwd (namespaces + af_packet), each
//! done for real, each asserting its bound (docs/security.md): bytes that never
//! make a stanza, nesting, connections from many sources, guessed credentials,
//! clones from a non-peer, staged routes past the limit, one VR's expensive
//! updates against another's, a flood of sync-begins, the operator socket under
//! umask 000, SIGINT under load. Needs root.
mod common;

use common::client::{error_code, Client};
use common::*;
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vrfwd_proto::{ErrorCode, Stanza};

/// VR 1's guest interfaces in the topology, as its agent declares them.
const RED_IFACES: &str = r#"<interfaces seq="SEQ"><interface name="g0" mac="02:00:00:00:01:01" address="10.0.1.1/24"/><interface name="g1" mac="02:00:00:00:02:01" address="10.0.2.1/24"/></interfaces>"#;
/// VR 2's.
const BLUE_IFACES: &str = r#"<interfaces seq="SEQ"><interface name="g0" mac="02:00:00:01:01:01" address="10.0.1.1/24"/><interface name="g1" mac="02:00:00:01:02:01" address="10.0.2.1/24"/></interfaces>"#;

/// Writes `chunk` until the peer closes or `limit` passes; returns the bytes
/// written and how long it took.
fn flood(c: &mut Client, chunk: &[u8], limit: Duration) -> (usize, Duration) {
    let start = Instant::now();
    let mut sent = 0;
    c.stream
        .set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    while start.elapsed() < limit {
        match c.stream.write(chunk) {
            Ok(0) => break,
            Ok(n) => sent += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
            Err(_) => break,
        }
    }
    (sent, start.elapsed())
}

/// The error that closed the connection (skipping acks and keepalives).
fn closing_error(c: &mut Client) -> Option<(ErrorCode, String)> {
    while let Some(s) = c.recv() {
        if let Stanza::Error { code, message, .. } = s {
            return Some((code, message));
        }
    }
    None
}

fn route_count(t: &Topology, vr: &str) -> usize {
    t.ctl(&["routes", vr]).lines().count()
}

#[test]
fn connection_attacks_are_bounded() {
    let port = 17721;
    let mut t = Topology::up_with(
        "ka",
        1,
        &[
            ("CONTROL_PORT", "17721"),
            ("HELLO_TIMEOUT_S", "2"),
            ("IDLE_TIMEOUT_S", "3"),
            ("KEEPALIVE_S", "1"),
            ("MAX_SESSIONS_PER_SOURCE", "4"),
            ("MAX_CONNECTIONS", "64"),
            ("MAX_AUTH_FAILURES", "3"),
            ("MAX_ROUTES", "20"),
            ("HOST_CREDENTIAL", "host-secret-for-tests"),
            ("PEER", "10.99.99.99"),
        ],
    );
    // Row 7: a umask that would leave the socket open to every user.
    t.start_with_umask("000");
    let mode = std::fs::metadata(t.socket()).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600,
        "operator socket mode under umask 000"
    );
    let nobody = Command::new("runuser")
        .args(["-u", "nobody", "--", "python3", "-c"])
        .arg("import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b'vrs\\n'); print(s.recv(100))")
        .arg(t.socket())
        .output()
        .expect("runuser");
    assert!(
        !nobody.status.success() && String::from_utf8_lossy(&nobody.stderr).contains("Permission"),
        "user nobody reached the operator socket: {nobody:?}"
    );
    let rss0 = t.rss_kib();

    // Row 1, before hello: a stream of blanks is cut at the hello deadline.
    let mut c = Client::connect_from(Ipv4Addr::new(127, 0, 0, 2), port);
    let blanks = vec![b' '; 64 * 1024];
    let (sent, took) = flood(&mut c, &blanks, Duration::from_secs(10));
    assert!(took < Duration::from_secs(5), "closed after {took:?}");
    let rss1 = t.rss_kib();
    eprintln!("blanks before hello: {sent} bytes in {took:?}, RSS {rss0} -> {rss1} KiB");
    assert!(rss1 < rss0 + 32 * 1024, "RSS grew {rss0} -> {rss1} KiB");

    // Row 1, after hello: blanks are not a stanza, so the idle timeout ends it,
    // and they are not held meanwhile.
    let mut c = Client::session_v2(
        port,
        Ipv4Addr::new(127, 0, 0, 3),
        2,
        "blue-secret-for-tests",
        BLUE_IFACES,
    );
    let (sent, took) = flood(&mut c, &blanks, Duration::from_secs(10));
    let rss2 = t.rss_kib();
    eprintln!("blanks after hello: {sent} bytes in {took:?}, RSS {rss1} -> {rss2} KiB");
    assert!(took < Duration::from_secs(6), "closed after {took:?}");
    assert!(sent > 64 * 1024 * 1024 || took >= Duration::from_secs(3));
    assert!(rss2 < rss0 + 32 * 1024, "RSS grew {rss0} -> {rss2} KiB");

    // Row 5: keepalives without a hello do not keep a connection.
    let mut c = Client::connect_from(Ipv4Addr::new(127, 0, 0, 4), port);
    let start = Instant::now();
    let keep = std::thread::spawn({
        let mut s = c.stream.try_clone().unwrap();
        move || {
            while s.write_all(b"<keepalive/>").is_ok() && start.elapsed() < Duration::from_secs(8) {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    });
    let (code, why) = closing_error(&mut c).expect("an error before closing");
    assert_eq!(code, ErrorCode::Limit, "{why}");
    assert!(why.contains("no hello"), "{why}");
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    keep.join().unwrap();

    // Row 6: unclosed tags are refused at the third level, whatever their size.
    let tags = b"<a>".repeat(300_000);
    for k in 0..20u8 {
        let mut c = Client::connect_from(Ipv4Addr::new(127, 0, 2, k), port);
        let _ = c.stream.write_all(&tags[..1000]);
        assert_eq!(error_code(c.recv()), ErrorCode::Forbidden);
        let _ = c.stream.write_all(&tags);
    }
    let rss3 = t.rss_kib();
    assert!(rss3 < rss0 + 32 * 1024, "RSS grew {rss0} -> {rss3} KiB");

    // Row 5: connections per source and host-wide.
    let open: Vec<Client> = (0..4)
        .map(|_| Client::connect_from(Ipv4Addr::new(127, 0, 0, 5), port))
        .collect();
    let mut fifth = Client::connect_from(Ipv4Addr::new(127, 0, 0, 5), port);
    let (code, why) = closing_error(&mut fifth).expect("refused");
    assert_eq!(code, ErrorCode::Limit);
    assert!(why.contains("from this address"), "{why}");
    // All at once (an admitted one is closed at its hello deadline, 2 s).
    let mut burst: Vec<Client> = (0..80u8)
        .map(|k| Client::connect_from(Ipv4Addr::new(127, 0, 3, k), port))
        .collect();
    let mut refused = 0;
    for c in &mut burst {
        c.stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        if let Some(Stanza::Error { code, message, .. }) = c.recv() {
            if message.contains("too many connections") {
                assert_eq!(code, ErrorCode::Limit);
                refused += 1;
            }
        }
    }
    assert!(
        refused >= 80 + 4 - 64,
        "refused {refused} of 80 past the cap"
    );
    drop(burst);
    drop(open);
    std::thread::sleep(Duration::from_millis(300));

    // Guessed credentials: after 3 failures a source is refused unchecked, even
    // with the right credential; another source is not.
    let guesser = Ipv4Addr::new(127, 0, 0, 6);
    for guess in ["a", "b", "c"] {
        let mut c = Client::connect_from(guesser, port);
        let hello = format!(r#"<hello seq="SEQ" vr="1" generation="1" credential="{guess}"/>"#);
        assert_eq!(error_code(c.call(&hello)), ErrorCode::Auth);
    }
    let mut c = Client::connect_from(guesser, port);
    let (code, why) = match c
        .call(r#"<hello seq="SEQ" vr="1" generation="1" credential="red-secret-for-tests"/>"#)
    {
        Some(Stanza::Error { code, message, .. }) => (code, message),
        other => panic!("{other:?}"),
    };
    assert_eq!(code, ErrorCode::Limit, "{why}");
    drop(c);

    // The host credential from a guest (not a configured peer) clones nothing.
    let mut c = Client::connect_from(Ipv4Addr::new(127, 0, 0, 7), port);
    assert_eq!(
        error_code(c.call(
            r#"<hello seq="SEQ" vr="2" generation="18446744073709551615" credential="host-secret-for-tests"/>"#
        )),
        ErrorCode::Auth
    );

    // Row 4: staged routes count against max_routes (20 here).
    let mut c = Client::session_v2(
        port,
        Ipv4Addr::new(127, 0, 0, 8),
        1,
        "red-secret-for-tests",
        RED_IFACES,
    );
    c.ok(r#"<sync-begin seq="SEQ"/>"#);
    let mut refused = None;
    for k in 0..4 {
        let adds: String = (0..10)
            .map(|i| format!(r#"<add prefix="10.{}.{i}.0/24" interface="g1"/>"#, 100 + k))
            .collect();
        match c.call(&format!(r#"<routes seq="SEQ">{adds}</routes>"#)) {
            Some(Stanza::Ack { .. }) => {}
            other => {
                refused = Some(error_code(other));
                break;
            }
        }
    }
    assert_eq!(refused, Some(ErrorCode::Limit));
    c.ok(r#"<sync-end seq="SEQ"/>"#);
    let installed = route_count(&t, "1");
    assert!(
        installed <= 20,
        "{installed} routes with max_routes_per_vr = 20"
    );
}

/// Row 2 and 3: one VR's worst legal load (short prefixes flapping over a wide
/// table) and a flood of sync-begins; another VR's single-route adds are acked
/// within 100 ms (p99), operator commands answer, and SIGINT stops vrfwd in 2 s.
#[test]
fn one_vr_cannot_hold_up_anothers_updates() {
    let port = 17722;
    let mut t = Topology::up_with(
        "kb",
        1,
        &[
            ("CONTROL_PORT", "17722"),
            ("MAX_STANZAS_PER_S", "1000000"),
            ("WRITE_TIMEOUT_S", "30"),
            ("ACCEPT_V1", "false"),
            // Compact tables of 4096 groups: 5000 scattered /24s widen one.
            ("COMPACT_TABLE_KIB", "256"),
        ],
    );
    t.start();

    // Credentials never on the wire: a version-1 peer is refused, and a sniffed
    // version-2 hello is worth nothing on another connection (another nonce).
    let mut v1 = Client::connect_from(Ipv4Addr::new(127, 0, 0, 9), port);
    assert_eq!(error_code(v1.recv()), ErrorCode::BadVersion);
    let (mut first, nonce) = Client::connect_v2(Ipv4Addr::new(127, 0, 0, 9), port);
    let sniffed = first.hello_v2(2, 1, "blue-secret-for-tests", &nonce);
    first.raw(sniffed.as_bytes());
    assert_eq!(first.recv(), Some(Stanza::Ack { seq: 1 }));
    let (mut replay, _) = Client::connect_v2(Ipv4Addr::new(127, 0, 0, 9), port);
    replay.raw(sniffed.as_bytes());
    assert_eq!(error_code(replay.recv()), ErrorCode::Auth);
    drop((first, replay));

    // Row 3: 80 sync-begins from one session do not block the control runtime.
    let mut flooder = Client::session_v2(
        port,
        Ipv4Addr::new(127, 0, 0, 2),
        2,
        "blue-secret-for-tests",
        BLUE_IFACES,
    );
    let begins: String = (0..80)
        .map(|k| format!(r#"<sync-begin seq="{}"/>"#, flooder.seq + 1 + k))
        .collect();
    flooder.raw(begins.as_bytes());
    flooder.seq += 80;
    let start = Instant::now();
    let (_other, _) = Client::connect_v2(Ipv4Addr::new(127, 0, 0, 3), port);
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    flooder.call(r#"<sync-end seq="SEQ"/>"#);
    let last = flooder.seq;
    while let Some(s) = flooder.recv() {
        match s {
            Stanza::Ack { seq } if seq == last => break,
            Stanza::Ack { .. } => {}
            other => panic!("{other:?}"),
        }
    }
    drop(flooder);

    // The attacker: VR 1 widens its table (5000 /24s in distinct /16s), then
    // flaps /9s (2^15 entries each in each copy), never waiting for acks.
    let mut red = Client::session_v2(
        port,
        Ipv4Addr::new(127, 0, 0, 4),
        1,
        "red-secret-for-tests",
        RED_IFACES,
    );
    let wide: String = (0..5000u32)
        .map(|i| {
            let a = Ipv4Addr::from((30 << 24) + (i << 16));
            format!(r#"<add prefix="{a}/24" via="10.0.2.2" interface="g1"/>"#)
        })
        .collect();
    red.ok(&format!(r#"<routes seq="SEQ">{wide}</routes>"#));
    let flaps: String = (0..100)
        .map(|k| {
            let p = format!("{}.128.0.0/9", 100 + k % 50);
            format!(r#"<add prefix="{p}" via="10.0.2.2" interface="g1"/><delete prefix="{p}"/>"#)
        })
        .collect();
    let attacking = Arc::new(AtomicBool::new(true));
    let acks = {
        // Reads the attacker's acks so that vrfwd never waits on its writes.
        let mut s = red.stream.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            let mut n = 0;
            while let Ok(k) = s.read(&mut buf) {
                if k == 0 {
                    break;
                }
                n += buf[..k].windows(4).filter(|w| w == b"<ack").count();
            }
            n
        })
    };
    let attacker = {
        let attacking = Arc::clone(&attacking);
        let mut s = red.stream.try_clone().unwrap();
        let mut seq = red.seq;
        std::thread::spawn(move || {
            let mut sent = 0u64;
            while attacking.load(Ordering::Relaxed) {
                seq += 1;
                let stanza = format!(r#"<routes seq="{seq}">{flaps}</routes>"#);
                if s.write_all(stanza.as_bytes()).is_err() {
                    break;
                }
                sent += 200;
            }
            sent
        })
    };
    std::thread::sleep(Duration::from_millis(500));

    // The victim: VR 2's agent adds one route at a time.
    let mut blue = Client::session_v2(
        port,
        Ipv4Addr::new(127, 0, 0, 5),
        2,
        "blue-secret-for-tests",
        BLUE_IFACES,
    );
    let mut waits = Vec::new();
    for i in 0..100 {
        let start = Instant::now();
        blue.ok(&format!(
            r#"<routes seq="SEQ"><add prefix="10.77.{i}.0/24" via="10.0.2.2" interface="g1"/></routes>"#
        ));
        waits.push(start.elapsed());
        if i == 50 {
            let start = Instant::now();
            let answer = t.try_ctl(&["routes", "2"]);
            assert!(
                start.elapsed() < Duration::from_secs(3),
                "ctl took {:?}",
                start.elapsed()
            );
            assert!(answer.is_ok() || answer.unwrap_err().contains("busy"));
        }
    }
    waits.sort();
    // Nearest-rank p99 of 100 adds: the second slowest.
    let p99 = waits[(waits.len() * 99).div_ceil(100) - 1];
    eprintln!(
        "victim acks: median {:?}, p99 {p99:?}, max {:?}",
        waits[waits.len() / 2],
        waits[waits.len() - 1]
    );
    assert!(p99 <= Duration::from_millis(100), "victim p99 {p99:?}");

    // SIGINT with the attacker's backlog queued.
    let took = t.interrupt();
    attacking.store(false, Ordering::Relaxed);
    let sent = attacker.join().unwrap();
    let acked = acks.join().unwrap();
    eprintln!("attacker: {sent} route ops sent, {acked} stanzas acked; vrfwd stopped in {took:?}");
    assert!(acked > 0, "the attacker's work was done too");
    assert!(took <= Duration::from_secs(2), "stopped in {took:?}");
}
