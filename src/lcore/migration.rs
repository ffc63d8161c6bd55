//! The migration stage (docs/migration.md): a frame from a VR's guest on its vif
//! means the guest runs here (after it left or another host announced it: the
//! guest's own announcement), so the VR becomes active and announces itself,
//! again over the next seconds ([`Repeats`]) in case the host it left still
//! sends from its MACs for a while. An
//! announcement (QEMU's RARP, a gratuitous ARP) of an active VR's MAC heard on an
//! uplink proves nothing (any station can send one): it makes a VR that is being
//! cloned quiet, a reversible step, and changes nothing otherwise (counted). Only
//! authenticated word drains a VR (the control side). Each change of state is
//! made with one compare-and-swap on the VR and returned as an event, which the
//! lcore reports to the control side.
use crate::dataplane::{Dataplane, PortRole, VrEvent as Event, VrState};
use vrfwd_wire::arp::{rarp_announcement, Arp, OP_REVERSE_REQUEST};
use vrfwd_wire::ethernet::{ethertype, MIN_FRAME_LEN};
use vrfwd_wire::MacAddr;

/// Whether a frame of `ethertype` carrying `a` from `src` announces that `src`
/// moved: QEMU's RARP after a live migration, or a gratuitous ARP (Xen's netfront
/// after resume, a guest's own announcement).
#[inline(always)]
pub fn announces(ethertype: u16, src: MacAddr, a: &Arp) -> bool {
    match ethertype {
        ethertype::RARP => a.op == OP_REVERSE_REQUEST && a.sender_mac == src,
        ethertype::ARP => a.sender_ip == a.target_ip && a.sender_mac == src,
        _ => false,
    }
}

/// What an announcement on an uplink did to a VR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// The VR is being cloned: it went quiet.
    Quieted { vr: usize },
    /// Active and not being cloned: nothing changed (a forged or unexpected
    /// announcement, counted on the VR).
    Ignored { vr: usize },
}

/// `mac` announced itself on a port of role `role`: if that is an uplink and
/// `mac` the MAC of a VR active here, the VR goes quiet if it is being cloned,
/// and is left as it is otherwise.
pub fn heard_announcement(dp: &Dataplane, role: PortRole, mac: MacAddr) -> Option<Heard> {
    let PortRole::Uplink { segment } = role else {
        return None;
    };
    let v = dp.segments[segment].vr_for_mac(mac)?.vr;
    let vr = &dp.vrs[v];
    if vr.state() != VrState::Active {
        return None;
    }
    if !vr.is_cloning() {
        return Some(Heard::Ignored { vr: v });
    }
    vr.transition(VrState::Active, VrState::Quiet)
        .then_some(Heard::Quieted { vr: v })
}

/// A frame from `src` arrived on a port of role `role`, an announcement
/// (`announced`, see [`announces`]) or not: if that is a vif and `src` the MAC of
/// its VR interface, the guest runs here. A VR in standby becomes active; one
/// draining after its guest left, or quiet after an announcement elsewhere,
/// only on the guest's own announcement (QEMU's RARP, a gratuitous ARP): any
/// other frame may be one the guest sent before it left, still waiting in the
/// vif's queue while this lcore was off its CPU, and taking it for a return
/// would pull the switches back to this host. A VR activated by its agent's
/// hello before this frame is still owed its announcement.
#[inline(always)]
pub fn heard_guest(dp: &Dataplane, role: PortRole, src: MacAddr, announced: bool) -> Option<Event> {
    let PortRole::Vif { vr: v, iface, .. } = role else {
        return None;
    };
    let vr = &dp.vrs[v];
    if src != vr.interfaces[iface].mac {
        return None;
    }
    let arrived = match vr.state() {
        VrState::Active => vr.take_unannounced(),
        VrState::Standby => vr.transition(VrState::Standby, VrState::Active),
        from @ (VrState::Draining | VrState::Quiet) => {
            announced && vr.transition(from, VrState::Active)
        }
    };
    arrived.then_some(Event::Arrived { vr: v })
}

/// The frames that announce VR `vr` after it arrived: for each interface, a RARP
/// naming its MAC out of its segment's uplink (port, frame), so that the switches
/// learn at once where the VR is now.
pub fn announcements(
    dp: &Dataplane,
    vr: usize,
) -> impl Iterator<Item = (usize, [u8; MIN_FRAME_LEN])> + '_ {
    dp.vrs[vr]
        .interfaces
        .iter()
        .map(|ifc| (ifc.uplink, rarp_announcement(ifc.mac)))
}

/// When an arrived VR is announced again, in ms after its arrival. The host it
/// left keeps sending from the VR's MACs until its lcore has seen the first
/// announcement (or the destination's word), and that lcore may be off its CPU
/// for a while (it shares a core with the hypervisor here): each such frame
/// teaches the switches the old port again, each repeat the new one.
pub const REPEATS_MS: [u64; 5] = [100, 300, 700, 1500, 3000];

/// The VRs an lcore announced on arrival and owes repeats ([`REPEATS_MS`]).
#[derive(Debug, Default)]
pub struct Repeats {
    owed: Vec<Owed>,
}

#[derive(Debug)]
struct Owed {
    vr: usize,
    arrived_tsc: u64,
    /// The index in [`REPEATS_MS`] of the next repeat.
    next: usize,
}

impl Repeats {
    /// VR `vr` arrived (and was announced) at `now_tsc`: its repeats start over.
    pub fn arrived(&mut self, vr: usize, now_tsc: u64) {
        self.owed.retain(|o| o.vr != vr);
        self.owed.push(Owed {
            vr,
            arrived_tsc: now_tsc,
            next: 0,
        });
    }

    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.owed.is_empty()
    }

    /// Calls `announce` for each VR whose next repeat is due at `now_tsc`,
    /// once however late it is, and forgets those with none left.
    pub fn take_due(&mut self, now_tsc: u64, ticks_per_ms: u64, mut announce: impl FnMut(usize)) {
        let due = |i: usize| REPEATS_MS[i].saturating_mul(ticks_per_ms);
        self.owed.retain_mut(|o| {
            let elapsed = now_tsc.wrapping_sub(o.arrived_tsc);
            if elapsed < due(o.next) {
                return true;
            }
            announce(o.vr);
            while o.next < REPEATS_MS.len() && elapsed >= due(o.next) {
                o.next += 1;
            }
            o.next < REPEATS_MS.len()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lcore::testing::{dataplane, VR1_LAN1_MAC, VR1_LAN2_MAC, VR2_LAN1_MAC};
    use std::net::Ipv4Addr;
    use vrfwd_wire::arp::OP_REQUEST;
    use vrfwd_wire::ethernet::EthernetFrame;

    fn rarp(mac: MacAddr) -> Arp {
        let f = rarp_announcement(mac);
        Arp::parse(EthernetFrame::new_checked(&f[..]).unwrap().payload()).unwrap()
    }

    #[test]
    fn rarp_and_gratuitous_arp_announce_their_sender_only() {
        let a = rarp(VR1_LAN1_MAC);
        assert!(announces(ethertype::RARP, VR1_LAN1_MAC, &a));
        assert!(!announces(ethertype::RARP, VR2_LAN1_MAC, &a));
        assert!(!announces(ethertype::IPV4, VR1_LAN1_MAC, &a));
        let ip = Ipv4Addr::new(10, 0, 1, 1);
        let garp = Arp {
            op: OP_REQUEST,
            sender_mac: VR1_LAN1_MAC,
            sender_ip: ip,
            target_mac: MacAddr::default(),
            target_ip: ip,
        };
        assert!(announces(ethertype::ARP, VR1_LAN1_MAC, &garp));
        let request = Arp {
            target_ip: Ipv4Addr::new(10, 0, 1, 2),
            ..garp
        };
        assert!(!announces(ethertype::ARP, VR1_LAN1_MAC, &request));
    }

    #[test]
    fn an_announcement_on_an_uplink_changes_nothing_without_a_clone() {
        let t = dataplane();
        let dp = &t.dp;
        let uplink = dp.ports[dp.segments[0].uplink];
        let vif = dp.ports[dp.vrs[0].interfaces[0].vif];
        assert_eq!(heard_announcement(dp, vif, VR1_LAN1_MAC), None);
        assert_eq!(
            heard_announcement(dp, uplink, MacAddr([2, 0, 0, 0, 9, 9])),
            None
        );
        for _ in 0..3 {
            assert_eq!(
                heard_announcement(dp, uplink, VR1_LAN1_MAC),
                Some(Heard::Ignored { vr: 0 })
            );
            assert_eq!(dp.vrs[0].state(), VrState::Active);
        }
    }

    #[test]
    fn an_announcement_quiets_a_vr_being_cloned_once_and_its_guest_revives_it() {
        let t = dataplane();
        let dp = &t.dp;
        let uplink = dp.ports[dp.segments[0].uplink];
        let vif = dp.ports[dp.vrs[0].interfaces[0].vif];
        dp.vrs[0].set_cloning(true);
        assert_eq!(
            heard_announcement(dp, uplink, VR1_LAN1_MAC),
            Some(Heard::Quieted { vr: 0 })
        );
        assert_eq!(dp.vrs[0].state(), VrState::Quiet);
        assert!(dp.vrs[0].state().anonymous());
        assert_eq!(heard_announcement(dp, uplink, VR1_LAN1_MAC), None);
        assert_eq!(dp.vrs[1].state(), VrState::Active, "only the VR announced");
        // A frame its guest may have sent before it left proves nothing; its own
        // announcement does (it never left, or came back).
        assert_eq!(heard_guest(dp, vif, VR1_LAN1_MAC, false), None);
        assert_eq!(dp.vrs[0].state(), VrState::Quiet);
        assert_eq!(
            heard_guest(dp, vif, VR1_LAN1_MAC, true),
            Some(Event::Arrived { vr: 0 })
        );
        assert_eq!(dp.vrs[0].state(), VrState::Active);
        // Quiet, then authenticated word: draining; quiet, then no word: active
        // again, owing an announcement.
        assert!(dp.vrs[0].transition(VrState::Active, VrState::Quiet));
        assert!(dp.vrs[0].depart());
        assert_eq!(dp.vrs[0].state(), VrState::Draining);
        assert!(!dp.vrs[0].depart(), "once");
        assert!(dp.vrs[0].transition(VrState::Draining, VrState::Quiet));
        assert!(dp.vrs[0].unquiet());
        assert_eq!(
            heard_guest(dp, vif, VR1_LAN1_MAC, false),
            Some(Event::Arrived { vr: 0 })
        );
        // Every change counted once, per state entered (the metrics' cut-overs).
        let entered = VrState::ALL.map(|s| dp.vrs[0].times_entered(s));
        assert_eq!(entered, [2, 0, 1, 3], "active, standby, draining, quiet");
        assert_eq!(dp.vrs[1].times_entered(VrState::Quiet), 0);
    }

    #[test]
    fn the_guests_frame_activates_a_standby_vr_its_announcement_one_it_left() {
        let t = dataplane();
        let dp = &t.dp;
        let vif = dp.ports[dp.vrs[0].interfaces[0].vif];
        let uplink = dp.ports[dp.segments[0].uplink];
        // Active already, nothing owed: no event.
        assert_eq!(heard_guest(dp, vif, VR1_LAN1_MAC, true), None);
        for from in [VrState::Standby, VrState::Draining, VrState::Quiet] {
            assert!(dp.vrs[0].transition(VrState::Active, from));
            for announced in [false, true] {
                // Another MAC on the vif, or the VR's MAC on the uplink: not the guest.
                assert_eq!(heard_guest(dp, vif, VR2_LAN1_MAC, announced), None);
                assert_eq!(heard_guest(dp, uplink, VR1_LAN1_MAC, announced), None);
            }
            if from != VrState::Standby {
                // Perhaps sent before the guest left: the VR stays as it is.
                assert_eq!(heard_guest(dp, vif, VR1_LAN1_MAC, false), None);
                assert_eq!(dp.vrs[0].state(), from);
            }
            let announced = from != VrState::Standby;
            assert_eq!(
                heard_guest(dp, vif, VR1_LAN1_MAC, announced),
                Some(Event::Arrived { vr: 0 })
            );
            assert_eq!(dp.vrs[0].state(), VrState::Active);
        }
        assert!(dp.vrs[0].transition(VrState::Active, VrState::Standby));
        assert!(dp.vrs[0].activate_from_session());
        assert_eq!(
            heard_guest(dp, vif, VR1_LAN1_MAC, false),
            Some(Event::Arrived { vr: 0 })
        );
        assert_eq!(heard_guest(dp, vif, VR1_LAN1_MAC, false), None);
    }

    #[test]
    fn a_vr_is_announced_on_the_uplink_of_each_interface() {
        let t = dataplane();
        let dp = &t.dp;
        let sent: Vec<(usize, MacAddr)> = announcements(dp, 0)
            .map(|(port, f)| (port, EthernetFrame::new_checked(&f[..]).unwrap().src()))
            .collect();
        assert_eq!(
            sent,
            [
                (dp.segments[0].uplink, VR1_LAN1_MAC),
                (dp.segments[1].uplink, VR1_LAN2_MAC)
            ]
        );
    }

    #[test]
    fn an_arrived_vr_is_announced_again_on_schedule_then_no_more() {
        const MS: u64 = 1000; // ticks per ms
        let mut r = Repeats::default();
        let due = |r: &mut Repeats, t: u64| {
            let mut vrs = Vec::new();
            r.take_due(t, MS, |vr| vrs.push(vr));
            vrs
        };
        assert!(r.is_empty());
        r.arrived(3, 10_000);
        assert_eq!(due(&mut r, 10_000 + 99 * MS), Vec::<usize>::new());
        assert_eq!(due(&mut r, 10_000 + 100 * MS), vec![3]);
        assert_eq!(due(&mut r, 10_000 + 101 * MS), Vec::<usize>::new(), "once");
        // Late (the lcore was off its CPU): one repeat for the rounds it missed.
        assert_eq!(due(&mut r, 10_000 + 800 * MS), vec![3]);
        assert_eq!(due(&mut r, 10_000 + 1499 * MS), Vec::<usize>::new());
        r.arrived(4, 10_000 + 1499 * MS);
        assert_eq!(due(&mut r, 10_000 + 1500 * MS), vec![3]);
        assert_eq!(due(&mut r, 10_000 + 1599 * MS), vec![4]);
        assert_eq!(due(&mut r, 10_000 + 3000 * MS), vec![3, 4]);
        assert!(!r.is_empty(), "VR 4 owes its last repeat");
        assert_eq!(due(&mut r, u64::MAX / 2), vec![4]);
        assert!(r.is_empty(), "every repeat made");
        // Arriving again starts the schedule over, without a second entry.
        r.arrived(5, 0);
        r.arrived(5, 50 * MS);
        assert_eq!(due(&mut r, 100 * MS), Vec::<usize>::new());
        assert_eq!(due(&mut r, 150 * MS), vec![5]);
    }
}
