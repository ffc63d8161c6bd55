//! Vif sockets (AF_PACKET outside DPDK's port table) on a real veth pair: frames
//! sent from mbufs arrive whole on the other end, chained ones gathered; a socket
//! never reads back what it sent; a frame larger than an mbuf is counted, not
//! cut; the epoll set reports exactly the sockets with frames waiting. A port's
//! sockets share its flows between queues and hand the port from one holder to
//! the next with no frame lost or duplicated. Needs root.
use std::collections::HashSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use vrfwd::dpdk::{
    Burst, Eal, Member, Mempool, PacketError, PacketSocket, Poller, Ready, TxBuffer,
};

/// The EAL, once for the whole test binary (its tests share the process).
fn eal() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let eal = Eal::init(&[
            "--no-huge",
            "--no-shconf",
            "--no-pci",
            "--file-prefix=vrfwd-packet-test",
            "--log-level=lib.eal:warning",
        ])
        .expect("EAL");
        Box::leak(Box::new(eal));
    });
}

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
    eal();
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

/// A port's socket buffer in the hand-over tests: holds a whole round's frames.
const RCVBUF: usize = 8 << 20;

/// A frame of flow `flow` (its IPv4 source address) carrying `seq` (an IPv4
/// header's worth of bytes, then the number).
fn numbered(pool: &Mempool, flow: u8, seq: u64) -> vrfwd::dpdk::Mbuf {
    let mut m = frame(pool, 60, 0);
    let bytes = m.data_mut().expect("one segment");
    bytes[12..14].copy_from_slice(&[0x08, 0x00]);
    bytes[14] = 0x45;
    bytes[26..30].copy_from_slice(&[10, 0, 0, flow]);
    bytes[30..34].copy_from_slice(&[10, 9, 9, 9]);
    bytes[34..42].copy_from_slice(&seq.to_be_bytes());
    m
}

fn seq_of(frame: &[u8]) -> (u8, u64) {
    (
        frame[29],
        u64::from_be_bytes(frame[34..42].try_into().unwrap()),
    )
}

/// Sends numbered frames of 64 flows on `socket`, `rate` a second, `count` of
/// them or until `stop` is set; returns how many it sent.
fn send_numbered(
    socket: &PacketSocket,
    pool: &Mempool,
    count: u64,
    rate: u64,
    stop: &AtomicBool,
) -> u64 {
    let start = Instant::now();
    let mut tx = TxBuffer::default();
    for seq in 0..count {
        if stop.load(Ordering::Relaxed) {
            return seq;
        }
        while start.elapsed() < Duration::from_secs_f64(seq as f64 / rate as f64) {
            std::hint::spin_loop();
        }
        tx.push(numbered(pool, (seq % 64) as u8, seq)).ok().unwrap();
        while socket.flush(&mut tx).0 == 0 && !tx.is_empty() {}
    }
    count
}

/// A holder of a port: a thread reading its sockets (steered by the test)
/// until told to stop, then until they are empty; it returns (flow, seq) of
/// every frame, by queue.
struct Holder {
    sockets: Arc<Vec<PacketSocket>>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Vec<(u8, u64)>>>,
}

impl Holder {
    fn start(sockets: Vec<PacketSocket>, pool: &'static Mempool) -> Holder {
        let sockets = Arc::new(sockets);
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (Arc::clone(&sockets), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let mut got = vec![Vec::new(); s.len()];
            loop {
                let stopping = st.load(Ordering::Acquire);
                let mut read = 0;
                for (q, socket) in s.iter().enumerate() {
                    let mut burst = Burst::default();
                    read += socket.rx_burst(pool, &mut burst).expect("recvmmsg").frames;
                    got[q].extend((0..burst.len()).map(|i| seq_of(burst.get(i).unwrap().data())));
                }
                if stopping && read == 0 {
                    return got;
                }
                if read == 0 {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        });
        Holder {
            sockets,
            stop,
            thread,
        }
    }

    fn groups(&self) -> Vec<u16> {
        self.sockets
            .iter()
            .map(|s| s.group().expect("a group"))
            .collect()
    }

    /// Points every queue's group at `member`.
    fn steer(&self, member: Member) {
        for s in self.sockets.iter() {
            s.steer(member).expect("PACKET_FANOUT_DATA");
        }
    }

    /// Drains what its sockets hold (nothing new reaches them) and closes them.
    fn finish(self) -> Vec<Vec<(u8, u64)>> {
        self.stop.store(true, Ordering::Release);
        drop(self.sockets);
        self.thread.join().expect("the reader")
    }
}

/// Sequence numbers missing from 0..sent, and those received more than once.
fn lost_and_duplicated(frames: &[(u8, u64)], sent: u64) -> (u64, u64) {
    let unique: HashSet<u64> = frames.iter().map(|f| f.1).collect();
    (
        sent - unique.len() as u64,
        frames.len() as u64 - unique.len() as u64,
    )
}

fn leaked_pool(name: &str) -> &'static Mempool {
    Box::leak(Box::new(
        Mempool::new(name, 2047, 0, 2048 + 128).expect("mempool"),
    ))
}

#[test]
fn a_port_is_handed_over_ten_times_losing_and_duplicating_no_frame() {
    eal();
    let pool = leaked_pool("handover_test");
    let veth = Veth::new("vhov-a", "vhov-b");
    let sender = PacketSocket::open(veth.0, RCVBUF).expect("socket on a");
    let rate = 20_000;

    // Two queues: each flow on one of them, every frame on exactly one.
    let mut holder = Holder::start(
        PacketSocket::open_queues(veth.1, RCVBUF, 2).expect("sockets on b"),
        pool,
    );
    let mut frames = Vec::new();
    let done = AtomicBool::new(false);
    let sent = std::thread::scope(|scope| {
        let sending = scope.spawn(|| send_numbered(&sender, pool, u64::MAX, rate, &done));
        for _ in 0..10 {
            std::thread::sleep(Duration::from_millis(100));
            let successor = Holder::start(
                PacketSocket::join_queues(veth.1, RCVBUF, &holder.groups()).expect("joined"),
                pool,
            );
            successor.steer(Member::Successor);
            let old = std::mem::replace(&mut holder, successor);
            let got = old.finish();
            assert!(got.iter().all(|q| !q.is_empty()), "each queue took flows");
            frames.extend(got);
            // Alone in its groups: it is member 0 again before anyone joins.
            holder.steer(Member::Holder);
        }
        std::thread::sleep(Duration::from_millis(100));
        done.store(true, Ordering::Relaxed);
        sending.join().expect("the sender")
    });
    std::thread::sleep(Duration::from_millis(100));
    frames.extend(holder.finish());
    let mut queue_of = std::collections::HashMap::new();
    for (q, queue) in frames.iter().enumerate() {
        for &(flow, _) in queue {
            let q = q % 2;
            assert_eq!(
                *queue_of.entry(flow).or_insert(q),
                q,
                "flow {flow} kept its queue"
            );
        }
    }
    let all: Vec<(u8, u64)> = frames.concat();
    assert_eq!(
        lost_and_duplicated(&all, sent),
        (0, 0),
        "over 10 hand-overs"
    );

    // The negative control: a second holder in a group of its own takes a copy
    // of every frame, and the count above sees it.
    let a = Holder::start(PacketSocket::open_queues(veth.1, RCVBUF, 1).unwrap(), pool);
    let b = Holder::start(PacketSocket::open_queues(veth.1, RCVBUF, 1).unwrap(), pool);
    send_numbered(&sender, pool, 1000, rate, &AtomicBool::new(false));
    std::thread::sleep(Duration::from_millis(100));
    let all = [a.finish().concat(), b.finish().concat()].concat();
    assert_eq!(lost_and_duplicated(&all, 1000), (0, 1000));
}

#[test]
fn a_port_socket_never_reads_what_it_sends() {
    eal();
    let pool = leaked_pool("outgoing_test");
    let veth = Veth::new("vout-a", "vout-b");
    let far = Holder::start(PacketSocket::open_queues(veth.0, RCVBUF, 1).unwrap(), pool);
    let sockets = PacketSocket::open_queues(veth.1, RCVBUF, 2).unwrap();
    send_numbered(&sockets[1], pool, 100, 10_000, &AtomicBool::new(false));
    let near = Holder::start(sockets, pool);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(near.finish().concat(), []);
    assert_eq!(lost_and_duplicated(&far.finish().concat(), 100), (0, 0));
}
