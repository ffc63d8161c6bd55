//! Hostile frames: random bytes, every length 0..=1518, and every IPv4 header field
//! at its extremes, fed through the real forwarding loop on DPDK ring ports
//! (loopback: what a port sends comes back on its RX, so floods circulate as in a
//! switching loop). The lcore must not crash and, after draining, every mbuf must be
//! back in the pool.
#[allow(dead_code)] // shared by the in-process loop tests; not each uses every part
mod rig;

use rig::Rig;
use std::net::Ipv4Addr;
use vrfwd::config::{Builder, Config, VrBuilder};
use vrfwd::dpdk::Burst;
use vrfwd_wire::ethernet::{self, ethertype};
use vrfwd_wire::{ipv4, MacAddr};

#[path = "../bench/gen.rs"]
#[allow(dead_code)] // shared with the benchmarks
mod gen;
use gen::Noise;

/// VR 1 on lan0 (ring 0 and its vif, ring 1), a default route to a static
/// neighbour; lan1 (ring 2) for frames switched away.
fn config() -> Config {
    let gateway: Ipv4Addr = "10.0.1.2".parse().unwrap();
    Builder::new(0, "hostile", "/run/vrfwd-hostile.sock")
        .idle(0, 0)
        .port("up0", Some("net_ring0"))
        .port("vif0", Some("net_ring1"))
        .port("up1", Some("net_ring2"))
        .segment("lan0", "up0")
        .segment("lan1", "up1")
        .vr(VrBuilder::new(1)
            .interface(
                "eth0",
                MacAddr([2, 0, 0, 0, 1, 1]),
                "10.0.1.1/24".parse().unwrap(),
                "lan0",
                "vif0",
            )
            .route("0.0.0.0/0".parse::<ipnet::Ipv4Net>().unwrap(), gateway)
            .neighbor(gateway, MacAddr([2, 0, 0, 0, 0xaa, 2])))
        .build()
        .unwrap()
}

const MBUFS: u32 = 8191;

fn hostile_frames() -> Vec<Vec<u8>> {
    let vr_mac: MacAddr = "02:00:00:00:01:01".parse().unwrap();
    let src = MacAddr([2, 0, 0, 0, 0xaa, 2]);
    let mut noise = Noise(0x5eed);
    let mut frames = Vec::new();
    let mut random = Vec::new();
    // Random bytes of every length, to a random and to the VR's MAC.
    for len in 0..=1518 {
        random.push(noise.bytes(len));
        let mut f = noise.bytes(len);
        if len >= 12 {
            f[..6].copy_from_slice(&vr_mac.0);
        }
        if len >= 14 {
            f[12..14].copy_from_slice(&ethertype::IPV4.to_be_bytes());
        }
        random.push(f);
    }
    // A valid header with each field at its extremes.
    let base = |ttl: u8, dst: u32| {
        let mut f = ethernet::header(vr_mac, src, ethertype::IPV4).to_vec();
        f.extend_from_slice(&ipv4::header(
            Ipv4Addr::from(0x0a000102),
            Ipv4Addr::from(dst),
            ttl,
            17,
            8,
        ));
        f.extend_from_slice(&[0u8; 8]);
        f
    };
    for (offset, values) in [
        (14, vec![0x00, 0x45, 0x46, 0x4f, 0x65, 0xf5, 0xff]), // version / IHL
        (16, vec![0x00, 0xff]),                               // total length high byte
        (17, vec![0x00, 0x13, 0x14, 0xff]),                   // total length low byte
        (22, vec![0, 1, 2, 255]),                             // TTL
        (24, vec![0, 0xff]),                                  // checksum
    ] {
        for v in values {
            let mut f = base(64, 0x0a000102);
            f[offset] = v;
            frames.push(f);
        }
    }
    for dst in [
        0,
        u32::MAX,
        0xe000_0005,
        0x0a000101,
        0x0a0001ff,
        0x08080808,
        0x0a000177,
    ] {
        for ttl in [0, 1, 2, 255] {
            frames.push(base(ttl, dst));
        }
    }
    // ARP, truncated and full, broadcast and to the VR.
    for dst in [MacAddr::BROADCAST, vr_mac] {
        let mut f = ethernet::header(dst, src, ethertype::ARP).to_vec();
        f.extend_from_slice(&noise.bytes(28));
        f[14..20].copy_from_slice(&[0, 1, 8, 0, 6, 4]);
        for cut in [14, 20, 41, 42] {
            frames.push(f[..cut].to_vec());
        }
    }
    frames.extend(random);
    frames
}

#[test]
fn hostile_frames_neither_crash_nor_leak() {
    let rig = Rig::new(
        config(),
        &[
            "--no-huge",
            "--no-shconf",
            "--no-pci",
            "--file-prefix=vrfwd-hostile",
            "--log-level=lib.eal:warning",
            "--vdev=net_ring0",
            "--vdev=net_ring1",
            "--vdev=net_ring2",
        ],
        "hostile",
        MBUFS,
    );
    // Inject in ring-sized batches (what up0 or up1 sends loops back to its RX),
    // letting the lcore chew on each batch and on the floods it causes.
    for (batch, chunk) in hostile_frames().chunks(512).enumerate() {
        let mbufs = chunk.iter().map(|f| {
            let mut m = rig.pool.alloc().expect("mbuf");
            assert!(m.append(f));
            m
        });
        rig.inject(batch % 2 * 2, mbufs);
        rig.run_for(100);
    }
    // Drain what still circulates, then every mbuf must be home.
    rig.with_section(|ports, section| {
        let mut burst = Burst::default();
        for _ in 0..100 {
            for p in 0..ports.len() {
                while ports.rx_burst(p, 0, &mut burst, &rig.pool, section) > 0 {
                    burst.clear();
                }
            }
        }
    });
    let vr = &rig.counters.vrs[0];
    assert!(
        vr.rx.get() > 0 && vr.forwarded.get() > 0,
        "the VR saw and forwarded traffic"
    );
    assert!(
        rig.counters.segments[0].dropped[0].get() > 0,
        "runts were dropped"
    );
    assert_eq!(
        rig.pool.available(),
        MBUFS,
        "every mbuf is back in the pool"
    );
}
