//! Vif sockets (AF_PACKET outside DPDK's port table) on a real veth pair: frames
//! sent from mbufs arrive whole on the other end, chained ones gathered; a socket
//! never reads back what it sent; a frame larger than an mbuf is counted, not
//! cut; the epoll set reports exactly the sockets with frames waiting. Needs root.
use std::process::Command;
use std::time::Duration;
use vrfwd::dpdk::{Burst, Eal, Mempool, PacketError, PacketSocket, Poller, Ready, TxBuffer};

/// A veth pair (MTU 9000) in the test's own namespace-free names; deleted on drop.
struct Veth(&'static str, &'static str);

impl Veth {
    fn new(a: &'static str, b: &'static str) -> Veth {
        let _ = Command::new("ip").args(["link", "del", a]).status();
        let ip = |args: &[&str]| assert!(Command::new("ip").args(args).status().unwrap().success());
        ip(&[
            "link", "add", a, "mtu", "9000", "type", "veth", "peer", "name", b, "mtu", "9000",
        ]);
        for n in [a, b] {
            // No IPv6 on the test links: nothing but the test's frames on them.
            let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{n}/disable_ipv6"), "1");
            ip(&["link", "set", n, "up"]);
        }
        Veth(a, b)
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", self.0]).status();
    }
}

fn frame(pool: &Mempool, len: usize, byte: u8) -> vrfwd::dpdk::Mbuf {
    let mut m = pool.alloc().expect("an mbuf");
    let mut bytes = vec![byte; len];
    bytes[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xbb]);
    bytes[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xaa]);
    bytes[12..14].copy_from_slice(&[0x88, 0xb5]); // local experimental ethertype
    assert!(m.append(&bytes));
    m
}

/// Receives until `want` frames arrived or a second passed.
fn receive(s: &PacketSocket, pool: &Mempool, want: usize) -> (Vec<Vec<u8>>, usize) {
    let (mut frames, mut truncated) = (Vec::new(), 0);
    let end = std::time::Instant::now() + Duration::from_secs(1);
    while frames.len() + truncated < want && std::time::Instant::now() < end {
        let mut burst = Burst::default();
        let r = s.rx_burst(pool, &mut burst).expect("recvmmsg");
        truncated += r.truncated;
        frames.extend((0..burst.len()).map(|i| burst.get(i).unwrap().data().to_vec()));
        std::thread::sleep(Duration::from_millis(5));
    }
    (frames, truncated)
}

#[test]
fn vif_sockets_carry_whole_frames_and_report_readiness() {
    let _eal = Eal::init(&[
        "--no-huge",
        "--no-shconf",
        "--no-pci",
        "--file-prefix=vrfwd-packet-test",
        "--log-level=lib.eal:warning",
    ])
    .expect("EAL");
    let pool = Mempool::new("packet_test", 1023, 0, 2048 + 128).expect("mempool");
    let full = pool.available();
    let veth = Veth::new("vpkt-a", "vpkt-b");
    assert!(matches!(
        PacketSocket::open("vpkt-none", 1 << 16),
        Err(PacketError::NoInterface(_))
    ));
    let a = PacketSocket::open(veth.0, 1 << 20).expect("socket on a");
    let b = PacketSocket::open(veth.1, 1 << 20).expect("socket on b");
    let poller = Poller::new().unwrap();
    let mut ready = Ready::new(8);
    poller.add(&a, 1).unwrap();
    poller.add(&b, 2).unwrap();
    assert_eq!(
        poller.wait(&mut ready, Duration::from_millis(50)).count(),
        0,
        "nothing waits yet"
    );

    // Three frames, one of them chained from two mbufs (1800 bytes).
    let mut tx = TxBuffer::default();
    tx.push(frame(&pool, 60, 1)).ok().unwrap();
    let mut chained = frame(&pool, 900, 2);
    assert!(chained.chain(frame(&pool, 900, 3)).is_ok());
    tx.push(chained).ok().unwrap();
    tx.push(frame(&pool, 1514, 4)).ok().unwrap();
    assert_eq!(a.flush(&mut tx), (3, 0));

    let woke: Vec<u64> = poller.wait(&mut ready, Duration::from_secs(1)).collect();
    assert_eq!(woke, [2], "only b has frames: a never reads what it sent");
    let (frames, truncated) = receive(&b, &pool, 3);
    assert_eq!(truncated, 0);
    let lens: Vec<usize> = frames.iter().map(Vec::len).collect();
    assert_eq!(lens, [60, 1800, 1514]);
    assert!(frames[1][14..900].iter().all(|&x| x == 2));
    assert_eq!(&frames[1][900..914], &frame(&pool, 14, 0).data()[..14]);
    assert!(frames[1][914..].iter().all(|&x| x == 3));
    assert_eq!(receive(&a, &pool, 1).0.len(), 0, "a's own frames stay out");

    // A frame larger than an mbuf's room (4000 bytes) is dropped and counted,
    // never cut.
    let mut big = frame(&pool, 2000, 5);
    assert!(big.chain(frame(&pool, 2000, 6)).is_ok());
    tx.push(big).ok().unwrap();
    assert_eq!(b.flush(&mut tx), (1, 0));
    assert_eq!(receive(&a, &pool, 1), (Vec::new(), 1));
    assert_eq!(a.oversize(), 1, "kept for the port's counters");
    assert_eq!(
        poller.wait(&mut ready, Duration::from_millis(50)).count(),
        0,
        "all read"
    );
    poller.remove(&b).unwrap();
    drop(frames);
    assert_eq!(pool.available(), full, "every mbuf back in the pool");
}
