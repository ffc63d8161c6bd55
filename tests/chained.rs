//! Jumbo frames flooded through the real forwarding loop: chained mbufs (three
//! 1500-byte segments each) broadcast on a segment with three vifs, so that every
//! frame leaves as three references to one chain. The uplink is a DPDK ring port
//! (what it sends comes back on its RX); the vifs are pcap ports writing what they
//! transmit to files. Every vif must write every frame whole, each segment still
//! holding its own bytes, and every mbuf must be back in the pool. Before
//! `Mbuf::share` counted every segment, the first vif to send a frame freed its
//! tail segments under the other two references: the next frames reused them.
#[allow(dead_code)] // shared by the in-process loop tests; not each uses every part
mod rig;

use rig::Rig;
use std::path::{Path, PathBuf};
use vrfwd::config::{Builder, Config, VrBuilder};
use vrfwd::dpdk::{Mbuf, Mempool};
use vrfwd_wire::ethernet;
use vrfwd_wire::MacAddr;

const VIFS: usize = 3;
const SEGMENTS: usize = 3;
const SEGMENT_LEN: usize = 1500;
const FRAMES: usize = 256;
const BATCH: usize = 32;
const MBUFS: u32 = 2047;
const EXPERIMENTAL: u16 = 0x88b5;

fn dir() -> PathBuf {
    std::env::temp_dir().join("vrfwd-chained-test")
}

fn vif_pcap(v: usize) -> PathBuf {
    dir().join(format!("vif{v}.pcap"))
}

/// Three VRs, one interface each, on lan0: the uplink (ring) and three vifs (pcap).
fn config() -> Config {
    let mut b = Builder::new(0, "chained", "/run/vrfwd-chained.sock")
        .idle(0, 0)
        .port("up0", Some("net_ring0"));
    for v in 0..VIFS {
        b = b.port(&format!("vif{v}"), Some(&format!("net_pcap{v}")));
    }
    b = b.segment("lan0", "up0");
    for v in 0..VIFS {
        let address = format!("10.0.1.{}/24", v + 1).parse().unwrap();
        let mac = MacAddr([2, 0, 0, 0, 1, v as u8 + 1]);
        b = b.vr(VrBuilder::new(v as u32 + 1).interface(
            "eth0",
            mac,
            address,
            "lan0",
            &format!("vif{v}"),
        ));
    }
    b.build().unwrap()
}

/// The byte segment `s` of frame `f` is filled with.
fn fill(f: usize, s: usize) -> u8 {
    (f * SEGMENTS + s) as u8 | 1
}

/// Frame `f`: a broadcast Ethernet header, then each segment filled with its byte.
fn frame(pool: &Mempool, f: usize) -> Mbuf {
    let station = MacAddr([2, 0, 0, 0, 0xaa, 1]);
    let mut segments = (0..SEGMENTS).map(|s| {
        let mut m = pool.alloc().expect("an mbuf");
        let mut bytes = vec![fill(f, s); SEGMENT_LEN];
        if s == 0 {
            bytes[..ethernet::HEADER_LEN].copy_from_slice(&ethernet::header(
                MacAddr::BROADCAST,
                station,
                EXPERIMENTAL,
            ));
            bytes[ethernet::HEADER_LEN..ethernet::HEADER_LEN + 2]
                .copy_from_slice(&(f as u16).to_be_bytes());
        }
        assert!(m.append(&bytes));
        m
    });
    let mut head = segments.next().expect("a first segment");
    for tail in segments {
        assert!(head.chain(tail).is_ok());
    }
    head
}

/// The frames of a pcap file.
fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).expect("a pcap file");
    let mut at = 24;
    let mut frames = Vec::new();
    while at + 16 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        frames.push(bytes[at + 16..at + 16 + len].to_vec());
        at += 16 + len;
    }
    frames
}

/// An empty pcap file (the vifs' RX: nothing).
fn write_empty_pcap(path: &Path) {
    let mut header = Vec::new();
    header.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    header.extend_from_slice(&2u16.to_le_bytes());
    header.extend_from_slice(&4u16.to_le_bytes());
    header.extend_from_slice(&[0; 8]);
    header.extend_from_slice(&65535u32.to_le_bytes());
    header.extend_from_slice(&1u32.to_le_bytes());
    std::fs::write(path, header).unwrap();
}

#[test]
fn a_flooded_jumbo_frame_reaches_every_vif_whole() {
    let _ = std::fs::remove_dir_all(dir());
    std::fs::create_dir_all(dir()).unwrap();
    let empty = dir().join("empty.pcap");
    write_empty_pcap(&empty);
    let mut eal_args = vec![
        "--no-huge".to_owned(),
        "--no-shconf".to_owned(),
        "--no-pci".to_owned(),
        "--file-prefix=vrfwd-chained".to_owned(),
        "--log-level=lib.eal:warning".to_owned(),
        "--vdev=net_ring0".to_owned(),
    ];
    for v in 0..VIFS {
        eal_args.push(format!(
            "--vdev=net_pcap{v},rx_pcap={},tx_pcap={}",
            empty.display(),
            vif_pcap(v).display()
        ));
    }
    let eal_args: Vec<&str> = eal_args.iter().map(String::as_str).collect();
    let mut rig = Rig::new(config(), &eal_args, "chained", MBUFS);
    // Batches into the uplink's ring, the lcore flooding each before the next
    // batch allocates (reusing whatever was freed).
    for (b, first) in (0..FRAMES).step_by(BATCH).enumerate() {
        let sent = rig.inject(0, (first..first + BATCH).map(|f| frame(&rig.pool, f)));
        assert_eq!(sent, (BATCH as u32, 0), "batch {b}");
        rig.run_for(50);
    }
    assert_eq!(
        rig.counters.segments[0].flooded.get(),
        FRAMES as u64,
        "every frame flooded"
    );
    assert_eq!(
        rig.pool.available(),
        MBUFS,
        "every mbuf is back in the pool"
    );
    // Stopping the ports closes the pcap files.
    rig.stop_ports();
    for v in 0..VIFS {
        let frames = read_pcap(&vif_pcap(v));
        assert_eq!(frames.len(), FRAMES, "vif {v}");
        for (f, bytes) in frames.iter().enumerate() {
            assert_eq!(bytes.len(), SEGMENTS * SEGMENT_LEN, "vif {v} frame {f}");
            let id = u16::from_be_bytes([bytes[14], bytes[15]]) as usize;
            assert_eq!(id, f, "vif {v}: frames in order");
            for s in 0..SEGMENTS {
                let segment = &bytes[s * SEGMENT_LEN..(s + 1) * SEGMENT_LEN];
                let want = fill(f, s);
                assert!(
                    segment[16..].iter().all(|&x| x == want),
                    "vif {v} frame {f} segment {s}: another frame's bytes"
                );
            }
        }
    }
    drop(rig);
    let _ = std::fs::remove_dir_all(dir());
}
