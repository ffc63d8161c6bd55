//! Mbuf references against a real DPDK mempool: a shared chained frame (what
//! flooding a jumbo frame to several ports makes) keeps every segment until its
//! last reference is dropped, and the pool is full again afterwards.
use vrfwd::dpdk::{Eal, Mempool};

#[test]
fn a_shared_chain_keeps_every_segment_until_its_last_reference() {
    let _eal = Eal::init(&[
        "--no-huge",
        "--no-shconf",
        "--no-pci",
        "--file-prefix=vrfwd-mbuf-test",
        "--log-level=lib.eal:warning",
    ])
    .expect("EAL");
    let pool = Mempool::new("mbuf_test", 1023, 0, 2048 + 128).expect("mempool");
    let full = pool.available();
    let segment = |byte: u8| {
        let mut m = pool.alloc().expect("an mbuf");
        assert!(m.append(&[byte; 1500]));
        m
    };
    let mut frame = segment(1);
    for byte in 2..=4 {
        assert!(frame.chain(segment(byte)).is_ok());
    }
    assert!(frame.is_chained());
    assert_eq!(frame.pkt_len(), 4 * 1500);
    assert_eq!(pool.available(), full - 4);
    // A flood to four ports: three shared references and the frame itself.
    let copies: Vec<_> = (0..3).map(|_| frame.share()).collect();
    assert!(frame.is_shared());
    // A shared frame cannot be chained onto (its data is not ours alone).
    let spare = segment(9);
    let spare = frame.chain(spare).expect_err("refused while shared");
    drop(spare);
    drop(frame);
    // Before the fix, only the first segment was counted: dropping one reference
    // freed the other three segments under the remaining references.
    assert_eq!(pool.available(), full - 4);
    for (k, copy) in copies.into_iter().enumerate() {
        assert_eq!(copy.pkt_len(), 4 * 1500);
        assert_eq!(copy.data()[0], 1);
        drop(copy);
        let freed = if k == 2 { 4 } else { 0 };
        assert_eq!(pool.available(), full - 4 + freed, "after copy {k}");
    }
    assert!(segment(5).append(&[0; 1]));
    assert!(!segment(6).append(&vec![0; 70_000]), "longer than a u16");
    assert_eq!(pool.available(), full);
}
