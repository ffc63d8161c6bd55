//! The codec against its contract: round trips (property test), streams split at
//! every byte offset, the versioned corpus, and hostile input.
use ipnet::IpNet;
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use vrfwd_proto::*;
use vrfwd_wire::MacAddr;

fn decode_all(bytes: &[u8], chunk: usize) -> Vec<Result<Stanza, DecodeError>> {
    let mut d = Decoder::new(Limits::default());
    let mut out = Vec::new();
    for piece in bytes.chunks(chunk.max(1)) {
        d.feed(piece);
        while let Some(r) = d.next_stanza() {
            out.push(r);
        }
    }
    out
}

fn corpus(path: &str) -> Vec<u8> {
    corpus_of(1, path)
}

/// A file of the corpus of protocol version `version`.
fn corpus_of(version: u8, path: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/corpus/v{version}/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[test]
fn corpus_session_decodes_at_every_split() {
    let bytes = corpus("good/session.xml");
    let whole = decode_all(&bytes, bytes.len());
    assert_eq!(whole.len(), 7, "{whole:?}");
    assert!(whole.iter().all(Result::is_ok), "{whole:?}");
    match &whole[0] {
        Ok(Stanza::Hello(h)) => {
            assert_eq!(
                (h.vr, h.generation, &h.auth),
                (VrId(3), 7, &Auth::Credential("s3cret&more".into()))
            );
        }
        other => panic!("{other:?}"),
    }
    match &whole[3] {
        Ok(Stanza::Routes { seq: 4, ops }) => {
            assert_eq!(ops.len(), 4);
            assert_eq!(
                ops[0],
                RouteOp::Add {
                    prefix: "10.9.0.0/16".parse().unwrap(),
                    paths: [Path::new(Some(Ipv4Addr::new(10, 0, 2, 2).into()), "eth1")].into(),
                }
            );
            assert_eq!(
                ops[2],
                RouteOp::Delete {
                    prefix: "192.0.2.0/24".parse().unwrap()
                }
            );
        }
        other => panic!("{other:?}"),
    }
    // Split into two pieces at every offset, and fed one byte at a time.
    for cut in 0..bytes.len() {
        let mut d = Decoder::new(Limits::default());
        let mut got = Vec::new();
        for piece in [&bytes[..cut], &bytes[cut..]] {
            d.feed(piece);
            while let Some(r) = d.next_stanza() {
                got.push(r);
            }
        }
        assert_eq!(got, whole, "split at {cut}");
        assert!(d.is_closed());
    }
    assert_eq!(decode_all(&bytes, 1), whole);
}

#[test]
fn corpus_host_replies() {
    let got = decode_all(&corpus("good/host-replies.xml"), 7);
    assert_eq!(got.len(), 4);
    assert_eq!(got[0], Ok(Stanza::Ack { seq: 6 }));
    match &got[2] {
        Ok(Stanza::Error {
            seq: Some(9),
            code: ErrorCode::HostBits,
            message,
        }) => {
            assert!(message.contains("10.9.0.1/16"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn corpus_bad_streams_fail_fatally_with_a_named_problem() {
    for (file, code) in [
        ("bad/version.xml", ErrorCode::BadVersion),
        ("bad/billion-laughs.xml", ErrorCode::Forbidden),
        ("bad/comment.xml", ErrorCode::Forbidden),
        ("bad/text.xml", ErrorCode::MalformedXml),
        ("bad/root.xml", ErrorCode::MalformedXml),
        ("bad/mismatched.xml", ErrorCode::MalformedXml),
        ("bad/namespace.xml", ErrorCode::Forbidden),
        ("bad/deep.xml", ErrorCode::Forbidden),
        ("bad/two-declarations.xml", ErrorCode::MalformedXml),
        ("bad/garbage-declaration.xml", ErrorCode::MalformedXml),
        ("bad/late-declaration.xml", ErrorCode::MalformedXml),
    ] {
        let got = decode_all(&corpus(file), 5);
        let last = got
            .last()
            .unwrap_or_else(|| panic!("{file}: nothing decoded"));
        let err = last.as_ref().expect_err(file);
        assert_eq!((err.code, err.fatal), (code, true), "{file}: {err}");
        assert!(
            got.iter().all(|r| !matches!(r, Ok(Stanza::Hello(_)))),
            "{file}: no stanza may pass"
        );
    }
}

#[test]
fn corpus_bad_stanzas_are_rejected_alone() {
    for version in [1, 4, 5] {
        bad_stanzas_are_rejected_alone(&corpus_of(version, "stanzas.txt"));
    }
}

#[test]
fn corpus_dual_stack_session() {
    let bytes = corpus_of(4, "good/dual-stack.xml");
    let got = decode_all(&bytes, 11);
    assert!(got.iter().all(Result::is_ok), "{got:?}");
    assert_eq!(got.len(), 6);
    let needed: Vec<u8> = got.iter().flatten().map(Stanza::version_needed).collect();
    assert_eq!(
        needed,
        [1, DUAL_STACK, 1, DUAL_STACK, DUAL_STACK, 1],
        "hello, interfaces, sync-begin, routes, neighbors, sync-end"
    );
    match &got[1] {
        Ok(Stanza::Interfaces { interfaces, .. }) => assert_eq!(
            interfaces[0].addresses,
            ["10.0.1.1/24", "2001:db8:1::1/64", "fe80::ff:fe00:301/64"]
                .map(|a| a.parse::<IpNet>().unwrap())
        ),
        other => panic!("{other:?}"),
    }
    match &got[3] {
        Ok(Stanza::Routes { ops, .. }) => assert_eq!(
            ops[1],
            RouteOp::Add {
                prefix: "2001:db8:9::/48".parse().unwrap(),
                paths: [Path::new(Some("fe80::2".parse().unwrap()), "eth1")].into(),
            }
        ),
        other => panic!("{other:?}"),
    }
    // What version 1 stanzas hold needs version 1 only.
    let v1 = decode_all(&corpus("good/session.xml"), 64);
    assert!(v1.iter().flatten().all(|s| s.version_needed() == 1));
}

#[test]
fn corpus_multipath_session() {
    let bytes = corpus_of(5, "good/multipath.xml");
    let got = decode_all(&bytes, 7);
    assert!(got.iter().all(Result::is_ok), "{got:?}");
    let Ok(Stanza::Routes { ops, .. }) = &got[1] else {
        panic!("{got:?}")
    };
    let via = |s: &str| Some(s.parse::<IpAddr>().unwrap());
    let weighted = |v, i: &str, weight| Path {
        weight,
        ..Path::new(via(v), i)
    };
    assert_eq!(
        ops[0],
        RouteOp::Add {
            prefix: "10.9.0.0/16".parse().unwrap(),
            paths: Paths::from_iter([
                weighted("10.0.2.2", "eth1", 1),
                weighted("10.0.3.2", "eth2", 3)
            ]),
        }
    );
    assert_eq!(
        ops[1],
        RouteOp::Add {
            prefix: "2001:db8:9::/48".parse().unwrap(),
            paths: Paths::from_iter([
                weighted("fe80::2", "eth1", 1),
                weighted("fe80::2", "eth2", 1),
                weighted("fe80::3", "eth2", 256)
            ]),
        },
        "one gateway on two interfaces is two paths"
    );
    assert_eq!(got[1].as_ref().unwrap().version_needed(), MULTIPATH);
    // A stanza whose routes have one path each needs no more than before.
    let single = Stanza::Routes {
        seq: 1,
        ops: vec![ops[2].clone()],
    };
    assert_eq!(single.version_needed(), 1);
    // Encoded and decoded again, the routes are the same.
    let again = decode_all(
        format!(
            "<vrfwd version=\"5\">{}</vrfwd>",
            encode(got[1].as_ref().unwrap())
        )
        .as_bytes(),
        5,
    );
    assert_eq!(again[0].as_ref().unwrap(), got[1].as_ref().unwrap());
}

fn bad_stanzas_are_rejected_alone(list: &[u8]) {
    let list = String::from_utf8(list.to_vec()).unwrap();
    for line in list
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (code, stanza) = line.split_once('\t').unwrap();
        let stream = format!("<vrfwd version=\"1\">{stanza}<keepalive/></vrfwd>");
        let got = decode_all(stream.as_bytes(), 3);
        assert_eq!(got.len(), 2, "{line}: {got:?}");
        let err = got[0].as_ref().expect_err(line);
        assert_eq!(err.code.as_str(), code, "{line}: {err}");
        assert!(!err.fatal);
        assert_eq!(
            got[1],
            Ok(Stanza::Keepalive),
            "the stream goes on after {line}"
        );
    }
}

#[test]
fn oversized_stanza_is_fatal_and_bounded() {
    let mut d = Decoder::new(Limits {
        max_stanza_bytes: 256,
    });
    d.feed(b"<vrfwd version=\"1\"><routes seq=\"1\">");
    let add = b"<add prefix=\"10.0.0.0/8\" interface=\"eth0\"/>";
    let mut err = None;
    for _ in 0..100 {
        d.feed(add);
        if let Some(r) = d.next_stanza() {
            err = Some(r);
            break;
        }
    }
    let err = err.expect("rejected before 100 adds").unwrap_err();
    assert_eq!((err.code, err.fatal), (ErrorCode::TooLarge, true));
    d.feed(&[b'x'; 10_000]);
    assert!(d.next_stanza().is_none());
    assert!(d.buffered() < 512, "a failed stream holds no more input");
}

#[test]
fn seq_of_a_rejected_stanza_is_reported() {
    let got = decode_all(b"<vrfwd version=\"1\"><routes seq=\"42\"><add prefix=\"1.2.3.4/8\" interface=\"e\"/></routes>", 64);
    assert_eq!(got[0].as_ref().unwrap_err().seq, Some(42));
}

/// An address of either family.
fn arb_address() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|a| Ipv4Addr::from(a).into()),
        any::<u128>().prop_map(|a| Ipv6Addr::from(a).into()),
    ]
}

/// An address with a length, host bits allowed (an interface's).
fn arb_net() -> impl Strategy<Value = IpNet> {
    (arb_address(), 0u8..=128).prop_map(|(a, l)| {
        let max = if a.is_ipv4() { 32 } else { 128 };
        IpNet::new(a, l % (max + 1)).unwrap()
    })
}

fn arb_prefix() -> impl Strategy<Value = IpNet> {
    arb_net().prop_map(|n| n.trunc())
}

/// An address of `prefix`'s family made of `bits`.
fn of_family(prefix: &IpNet, bits: u128) -> IpAddr {
    match prefix {
        IpNet::V4(_) => Ipv4Addr::from(bits as u32).into(),
        IpNet::V6(_) => Ipv6Addr::from(bits).into(),
    }
}

fn arb_name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9<>&\"'.]{0,14}"
}

/// A station's MAC (unicast, not zero): what interfaces and neighbours carry.
fn arb_mac() -> impl Strategy<Value = MacAddr> {
    any::<[u8; 6]>().prop_map(|mut m| {
        m[0] &= 0xfe;
        m[5] |= 1;
        MacAddr(m)
    })
}

/// A station's address (IPv4: not 0.0.0.0, multicast, reserved or broadcast;
/// IPv6: not unspecified, loopback or multicast).
fn arb_station() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        (1u32..0xe000_0000).prop_map(|a| Ipv4Addr::from(a).into()),
        (2u128..0xff00 << 112).prop_map(|a| Ipv6Addr::from(a).into()),
    ]
}

fn arb_stanza() -> impl Strategy<Value = Stanza> {
    prop_oneof![
        (
            any::<u64>(),
            1u32..,
            any::<u64>(),
            prop_oneof![
                "[ -~]{1,40}".prop_map(Auth::Credential),
                any::<[u8; 32]>().prop_map(|p| Auth::Proof(Proof(p))),
            ]
        )
            .prop_map(|(seq, vr, generation, auth)| {
                Stanza::Hello(Hello {
                    seq,
                    vr: VrId(vr),
                    generation,
                    auth,
                })
            }),
        (
            any::<u64>(),
            proptest::collection::vec(
                (
                    arb_name(),
                    arb_mac(),
                    proptest::collection::vec(arb_net(), 1..4)
                ),
                0..5
            )
        )
            .prop_map(|(seq, v)| Stanza::Interfaces {
                seq,
                interfaces: v
                    .into_iter()
                    .enumerate()
                    .map(|(k, (name, mac, mut addresses))| {
                        // Names are unique within the stanza, addresses within
                        // an interface.
                        let mut seen = std::collections::HashSet::new();
                        addresses.retain(|a| seen.insert(a.addr()));
                        Interface {
                            name: format!("{k}{}", &name[..name.len().min(14)]),
                            mac,
                            addresses,
                        }
                    })
                    .collect(),
            }),
        (
            any::<u64>(),
            proptest::collection::vec(
                prop_oneof![
                    (
                        arb_prefix(),
                        proptest::collection::vec(
                            (
                                proptest::option::of(any::<u128>()),
                                arb_name(),
                                1..=MAX_WEIGHT
                            ),
                            1..=MAX_PATHS
                        )
                    )
                        .prop_map(|(prefix, paths)| {
                            let single = paths.len() == 1;
                            let mut paths: Paths = paths
                                .into_iter()
                                .enumerate()
                                .map(|(k, (via, name, weight))| Path {
                                    via: via.map(|v| of_family(&prefix, v)),
                                    // Distinct paths: the interface names differ.
                                    interface: format!("{k}{}", &name[..name.len().min(13)]),
                                    weight,
                                })
                                .collect();
                            if single {
                                paths[0].weight = 1;
                            }
                            RouteOp::Add { prefix, paths }
                        }),
                    arb_prefix().prop_map(|prefix| RouteOp::Delete { prefix }),
                ],
                0..20
            )
        )
            .prop_map(|(seq, ops)| Stanza::Routes { seq, ops }),
        (
            any::<u64>(),
            proptest::collection::vec(
                prop_oneof![
                    (arb_station(), arb_mac(), arb_name()).prop_map(|(address, mac, interface)| {
                        NeighborOp::Add {
                            address,
                            mac,
                            interface,
                        }
                    }),
                    (arb_address(), arb_name()).prop_map(|(address, interface)| {
                        NeighborOp::Delete { address, interface }
                    }),
                ],
                0..10
            )
        )
            .prop_map(|(seq, ops)| Stanza::Neighbors { seq, ops }),
        any::<u64>().prop_map(|seq| Stanza::SyncBegin { seq }),
        any::<u64>().prop_map(|seq| Stanza::SyncEnd { seq }),
        any::<u64>().prop_map(|seq| Stanza::Ack { seq }),
        Just(Stanza::Keepalive),
        Just(Stanza::Arrived),
        any::<u64>().prop_map(|generation| Stanza::Generation { generation }),
        (
            proptest::option::of(any::<u64>()),
            proptest::sample::select(ErrorCode::ALL),
            "[ -~]{0,60}"
        )
            .prop_map(|(seq, code, message)| Stanza::Error {
                seq,
                code,
                message: message.trim().to_owned()
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// Whatever is encoded decodes to itself, however the bytes are split.
    #[test]
    fn round_trip(stanzas in proptest::collection::vec(arb_stanza(), 1..8), chunk in 1usize..64) {
        let mut text = stream_open();
        for s in &stanzas {
            text.push_str(&encode(s));
        }
        text.push_str(stream_close());
        let got = decode_all(text.as_bytes(), chunk);
        let want: Vec<_> = stanzas.into_iter().map(Ok).collect();
        prop_assert_eq!(got, want);
    }

    /// Random bytes never panic the decoder and never buffer past the limit.
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let mut d = Decoder::new(Limits { max_stanza_bytes: 512 });
        d.feed(b"<vrfwd version=\"1\">");
        for piece in bytes.chunks(17) {
            d.feed(piece);
            while d.next_stanza().is_some() {}
            prop_assert!(d.buffered() <= 512 + 17);
        }
    }
}

#[test]
fn whitespace_between_stanzas_is_not_held() {
    let mut d = Decoder::new(Limits {
        max_stanza_bytes: 1024,
    });
    d.feed(b"<vrfwd version=\"1\">");
    let blank = vec![b' '; 64 * 1024];
    for _ in 0..100 {
        d.feed(&blank);
        assert!(d.next_stanza().is_none());
        assert_eq!(d.buffered(), 0, "whitespace is dropped as it is scanned");
    }
    d.feed(b"  <keepalive/>\n");
    assert_eq!(d.next_stanza(), Some(Ok(Stanza::Keepalive)));
}

#[test]
fn open_tags_are_bounded_by_depth_not_by_bytes() {
    let mut d = Decoder::new(Limits::default());
    d.feed(b"<vrfwd version=\"1\"><a><b><c>");
    assert_eq!(
        d.next_stanza(),
        None,
        "a stanza, a child and a grandchild may be open"
    );
    d.feed(b"<d>");
    let err = d.next_stanza().unwrap().unwrap_err();
    assert_eq!((err.code, err.fatal), (ErrorCode::Forbidden, true));
    assert_eq!(d.buffered(), 0);
}

#[test]
fn many_stanzas_in_one_read_decode_in_linear_time() {
    // 200k keepalives in one feed: with a drain per stanza this took minutes.
    let mut text = stream_open();
    text.push_str(&"<keepalive/>".repeat(200_000));
    let mut d = Decoder::new(Limits::default());
    d.feed(text.as_bytes());
    let start = std::time::Instant::now();
    let mut n = 0;
    while let Some(r) = d.next_stanza() {
        r.unwrap();
        n += 1;
    }
    assert_eq!(n, 200_000);
    assert_eq!(d.buffered(), 0);
    // Not a timing assertion on speed, a bound on complexity: quadratic drains of
    // 2.4 MB would take well over a minute.
    assert!(start.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn a_raised_limit_applies_from_the_next_stanza() {
    let mut d = Decoder::new(Limits {
        max_stanza_bytes: 64,
    });
    d.feed(b"<vrfwd version=\"1\"><keepalive/>");
    assert_eq!(d.next_stanza(), Some(Ok(Stanza::Keepalive)));
    d.set_limits(Limits {
        max_stanza_bytes: 4096,
    });
    let big = format!(
        "<routes seq=\"1\">{}</routes>",
        "<delete prefix=\"10.0.0.0/8\"/>".repeat(20)
    );
    d.feed(big.as_bytes());
    assert!(matches!(d.next_stanza(), Some(Ok(Stanza::Routes { .. }))));
}

fn header_of(text: &str) -> Result<Option<StreamHeader>, DecodeError> {
    let mut d = Decoder::new(Limits::default());
    d.feed(text.as_bytes());
    match d.next_stanza() {
        Some(Err(e)) => Err(e),
        _ => Ok(d.header().cloned()),
    }
}

#[test]
fn stream_headers_negotiate_the_newest_common_version() {
    // A version-1 peer: version 1 only.
    let v1 = header_of(&stream_open()).unwrap().unwrap();
    assert_eq!((v1.speaks.clone(), v1.common_version()), (vec![1], Some(1)));
    // This crate's client, and a host's answer with its nonce, read back.
    let client = header_of(&stream_header(&StreamHeader::client()))
        .unwrap()
        .unwrap();
    assert_eq!(client, StreamHeader::client());
    assert_eq!(client.common_version(), Some(MULTIPATH));
    // A version-4 peer (no multipath) gets version 4.
    let v4 = header_of(r#"<vrfwd version="4" versions="1 2 3 4">"#)
        .unwrap()
        .unwrap();
    assert_eq!(v4.common_version(), Some(DUAL_STACK));
    // A version-3 peer (IPv4 only) still gets version 3.
    let v3 = header_of(r#"<vrfwd version="3" versions="1 2 3">"#)
        .unwrap()
        .unwrap();
    assert_eq!(v3.common_version(), Some(3));
    let nonce = Nonce([0xab; 32]);
    let host = StreamHeader::host(2, Some(nonce));
    assert_eq!(host.challenge(), Ok(nonce));
    assert_eq!(
        StreamHeader::host(1, None).challenge(),
        Err(NoChallenge(1)),
        "a version-1 host gives nothing to prove a credential over"
    );
    assert_eq!(
        header_of(&stream_header(&host)).unwrap().unwrap().nonce,
        Some(nonce)
    );
    assert_eq!(StreamHeader::host(3, Some(nonce)).challenge(), Ok(nonce));
    // A newer peer that also speaks 2 is understood; one that speaks only 9 is not.
    let newer = header_of(r#"<vrfwd version="9" versions="2 9">"#)
        .unwrap()
        .unwrap();
    assert_eq!(newer.common_version(), Some(2));
    let older = header_of(r#"<vrfwd version="2" versions="1 2">"#)
        .unwrap()
        .unwrap();
    assert_eq!(older.common_version(), Some(2), "a version-2 agent");
    for bad in [
        r#"<vrfwd version="9">"#,
        r#"<vrfwd version="2" versions="1">"#,
        r#"<vrfwd version="02">"#,
        r#"<vrfwd version="2" nonce="xyz">"#,
        r#"<vrfwd>"#,
    ] {
        let err = header_of(bad).unwrap_err();
        assert_eq!(
            (err.code, err.fatal),
            (ErrorCode::BadVersion, true),
            "{bad}"
        );
    }
}

#[test]
fn a_hello_carries_a_credential_or_a_proof_never_both() {
    let proof = Proof([1; 32]);
    let stream = format!(
        "<vrfwd version=\"2\"><hello seq=\"1\" vr=\"3\" generation=\"4\" proof=\"{proof}\"/></vrfwd>"
    );
    match &decode_all(stream.as_bytes(), 5)[0] {
        Ok(Stanza::Hello(h)) => assert_eq!(h.auth, Auth::Proof(proof)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_closed_stream_holds_nothing() {
    // Found by tests/fuzz.rs: the count of held bytes underflowed after </vrfwd>.
    let mut d = Decoder::new(Limits::default());
    d.feed(b"<vrfwd version=\"1\"><keepalive/></vrfwd><more/>");
    assert_eq!(d.next_stanza(), Some(Ok(Stanza::Keepalive)));
    assert_eq!(d.next_stanza(), None);
    assert!(d.is_closed());
    assert_eq!(d.buffered(), 0);
}
