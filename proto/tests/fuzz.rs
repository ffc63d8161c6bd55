//! An in-tree mutational fuzzer for the decoder, on stable Rust: the versioned
//! corpus (streams, rejected stanzas, this crate's own encodings) mutated by bit
//! flips, protocol-significant bytes and tokens, deletions, repetitions and
//! splices, fed in random chunk sizes. Every input must decode without a panic,
//! hold no more than the stanza limit plus one chunk, and every stanza it
//! accepts must encode and decode back to itself.
//!
//! CI runs a short campaign (`fuzz_short`); the long one is run by hand:
//!   FUZZ_EXECS=10000000 cargo test --release -p vrfwd-proto --test fuzz -- --ignored
//! (docs/security.md keeps its figures).
use vrfwd_proto::*;

/// xorshift64*: fast, seeded, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const LIMIT: usize = 4096;

/// Bytes and fragments that change how the scanner and the validators read.
const TOKENS: &[&[u8]] = &[
    b"<",
    b">",
    b"/>",
    b"</",
    b"\"",
    b"'",
    b"=",
    b"!",
    b"?",
    b"&",
    b";",
    b":",
    b" ",
    b"\0",
    b"\xff",
    b"\xc3",
    b"<!--",
    b"-->",
    b"<![CDATA[",
    b"<!DOCTYPE x [<!ENTITY a \"b\">]>",
    b"&amp;",
    b"&#x41;",
    b"&lt;",
    b"&bogus;",
    b"<?xml version=\"1.0\"?>",
    b"<vrfwd version=\"1\">",
    b"<vrfwd version=\"2\" versions=\"1 2\">",
    b"</vrfwd>",
    b"<routes seq=\"1\">",
    b"</routes>",
    b"<add prefix=\"0.0.0.0/0\" interface=\"e\"/>",
    b"<delete prefix=\"10.0.0.0/8\"/>",
    b"<keepalive/>",
    b"<arrived/>",
    b"<generation value=\"7\"/>",
    b"<x:add ",
    b"xmlns:x=\"u\"",
    b"seq=\"18446744073709551616\"",
    b"seq=\"+1\"",
    b"/33",
    b"/08",
    b"010.",
    b"ff:ff:ff:ff:ff:ff",
];

fn seeds() -> Vec<Vec<u8>> {
    let dir = format!("{}/tests/corpus/v1", env!("CARGO_MANIFEST_DIR"));
    let mut seeds = Vec::new();
    for sub in ["good", "bad"] {
        for entry in std::fs::read_dir(format!("{dir}/{sub}")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "xml") {
                seeds.push(std::fs::read(path).unwrap());
            }
        }
    }
    let stanzas = std::fs::read_to_string(format!("{dir}/stanzas.txt")).unwrap();
    for line in stanzas.lines().filter(|l| !l.starts_with('#')) {
        if let Some((_, stanza)) = line.split_once('\t') {
            seeds.push(format!("{}{stanza}</vrfwd>", stream_open()).into_bytes());
        }
    }
    let hello = Stanza::Hello(Hello {
        seq: 1,
        vr: VrId(3),
        generation: 9,
        auth: Auth::Proof(Proof([0x5a; 32])),
    });
    let host = StreamHeader::host(2, Some(Nonce([1; 32])));
    seeds.push(format!("{}{}", stream_header(&host), encode(&hello)).into_bytes());
    seeds
}

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut data = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(8) {
        let at = rng.below(data.len() + 1);
        match rng.below(7) {
            0 if !data.is_empty() => {
                let i = at.min(data.len() - 1);
                data[i] ^= 1 << rng.below(8);
            }
            1 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                data.splice(at..at, t.iter().copied());
            }
            2 if !data.is_empty() => {
                let end = (at + 1 + rng.below(16)).min(data.len());
                data.drain(at.min(end)..end);
            }
            3 if !data.is_empty() => {
                // Repeat a run: deep nesting, long names, many stanzas.
                let start = at.min(data.len() - 1);
                let end = (start + 1 + rng.below(24)).min(data.len());
                let run = data[start..end].to_vec();
                for _ in 0..1 + rng.below(64) {
                    data.splice(end..end, run.iter().copied());
                }
            }
            4 => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len());
                let to = (from + rng.below(64)).min(other.len());
                data.splice(at..at, other[from..to].iter().copied());
            }
            5 if !data.is_empty() => {
                let i = at.min(data.len() - 1);
                data[i] = rng.next() as u8;
            }
            _ => data.truncate(at),
        }
    }
    data
}

/// Decodes `input` in random chunks; checks the invariants. Returns the stanzas
/// it accepted.
fn run_one(rng: &mut Rng, input: &[u8]) -> usize {
    let mut d = Decoder::new(Limits {
        max_stanza_bytes: LIMIT,
    });
    let mut accepted = 0;
    let mut rest = input;
    while !rest.is_empty() {
        let n = (1 + rng.below(256)).min(rest.len());
        d.feed(&rest[..n]);
        rest = &rest[n..];
        while let Some(r) = d.next_stanza() {
            if let Ok(s) = r {
                round_trips(&s);
                accepted += 1;
            }
        }
        assert!(
            d.buffered() <= LIMIT + n,
            "holds {} bytes after a {n}-byte chunk",
            d.buffered()
        );
    }
    accepted
}

/// What the decoder accepted is what the encoder writes.
fn round_trips(s: &Stanza) {
    let text = format!("{}{}", stream_open(), encode(s));
    let mut d = Decoder::new(Limits::default());
    d.feed(text.as_bytes());
    let back = d
        .next_stanza()
        .unwrap_or_else(|| panic!("{text}: nothing decoded"))
        .unwrap_or_else(|e| panic!("{text}: {e}"));
    let normal = |s: &Stanza| match s.clone() {
        // Text content is read back trimmed.
        Stanza::Error { seq, code, message } => Stanza::Error {
            seq,
            code,
            message: message.trim().to_owned(),
        },
        other => other,
    };
    assert_eq!(normal(&back), normal(s), "{text}");
}

/// Runs `execs` inputs from `seed`; returns how many stanzas were accepted.
fn campaign(execs: u64, seed: u64) -> u64 {
    let seeds = seeds();
    let mut rng = Rng(seed | 1);
    let mut accepted = 0;
    for i in 0..execs {
        let input = mutate(&mut rng, &seeds);
        let mut chunks = Rng(rng.next() | 1);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_one(&mut chunks, &input)
        }));
        match outcome {
            Ok(n) => accepted += n as u64,
            Err(_) => panic!(
                "exec {i} (seed {seed}) failed on input {:?}",
                String::from_utf8_lossy(&input)
            ),
        }
    }
    accepted
}

#[test]
fn fuzz_short() {
    let accepted = campaign(300_000, 0x5eed);
    assert!(accepted > 0, "the mutations must reach the validators too");
}

#[test]
#[ignore]
fn fuzz_long() {
    let execs = std::env::var("FUZZ_EXECS")
        .ok()
        .and_then(|e| e.parse().ok())
        .unwrap_or(10_000_000);
    let seed = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|e| e.parse().ok())
        .unwrap_or(1);
    let start = std::time::Instant::now();
    let accepted = campaign(execs, seed);
    println!(
        "fuzz: execs={execs} seed={seed} accepted_stanzas={accepted} crashes=0 seconds={:.0}",
        start.elapsed().as_secs_f64()
    );
}
