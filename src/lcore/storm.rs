//! Storm control: a frame that floods (broadcast or multicast) is copied to every
//! other port of its segment, so each port may send only so many per second,
//! with a burst allowance (`[flood]` in the config). Each lcore keeps its own
//! share of every port's rate (no shared state on the fast path), as a GCRA
//! (the virtual-scheduling form of a token bucket: one timestamp per port). A
//! frame past the limit is dropped and counted on its port (docs/security.md).
use crate::config::{FloodConfig, FloodLimit};
use crate::dataplane::{Dataplane, PortRole};

/// A limit on this lcore, in TSC ticks.
#[derive(Debug, Clone, Copy)]
struct Gcra {
    /// Ticks one frame costs.
    interval: u64,
    /// How far ahead of now the schedule may run: the burst.
    tolerance: u64,
}

impl Gcra {
    /// `pps` frames per second with bursts of `burst`, on a clock of `hz`, shared
    /// by `lcores` lcores.
    fn new(pps: u32, burst: u32, hz: u64, lcores: u64) -> Gcra {
        let interval = (hz * lcores / u64::from(pps)).max(1);
        Gcra {
            interval,
            tolerance: interval * u64::from(burst.saturating_sub(1)),
        }
    }

    /// Whether a frame at `now` is within the limit of a port whose next frame
    /// is `due` (were it keeping exactly to its rate); if it is, it is charged.
    #[inline(always)]
    fn admit(&self, due: &mut u64, now: u64) -> bool {
        let next = (*due).max(now);
        if next - now > self.tolerance {
            return false;
        }
        *due = next + self.interval;
        true
    }
}

/// This lcore's storm control over every port slot: the limit is the port's
/// role's (ports come and go at run time), the schedule the port's own.
pub struct StormControl {
    /// A vif's and an uplink's limit; none: unlimited.
    vif: Option<Gcra>,
    uplink: Option<Gcra>,
    /// By port slot: when its next frame is due.
    due: Vec<u64>,
}

impl StormControl {
    /// The limits `flood` sets, this lcore's share of `lcores`, for every port
    /// slot of `dp`.
    pub fn new(dp: &Dataplane, flood: &FloodConfig, lcores: usize) -> StormControl {
        let hz = dp.clock.hz();
        let gcra = |limit: FloodLimit| {
            limit.map(|(pps, burst)| Gcra::new(pps, burst, hz, lcores.max(1) as u64))
        };
        let (vif, uplink) = flood.limits();
        StormControl {
            vif: gcra(vif),
            uplink: gcra(uplink),
            due: vec![0; dp.ports.len()],
        }
    }

    /// Whether a frame from `port`, of role `role`, may flood at TSC `now`.
    #[inline(always)]
    pub fn admit(&mut self, port: usize, role: PortRole, now: u64) -> bool {
        let limit = match role {
            PortRole::Vif { .. } => &self.vif,
            PortRole::Uplink { .. } => &self.uplink,
        };
        limit
            .as_ref()
            .is_none_or(|g| g.admit(&mut self.due[port], now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lcore::testing::dataplane;

    #[test]
    fn a_burst_then_the_rate() {
        // 10 frames/s, bursts of 3, on a 1 kHz clock: one frame per 100 ticks.
        let g = Gcra::new(10, 3, 1000, 1);
        let mut due = 0;
        let mut admitted = |now: u64, n: usize| (0..n).filter(|_| g.admit(&mut due, now)).count();
        assert_eq!(admitted(1000, 10), 3, "the burst");
        assert_eq!(admitted(1050, 10), 0, "nothing earned yet");
        assert_eq!(admitted(1100, 10), 1, "one per interval");
        assert_eq!(admitted(1300, 10), 2);
        // Idle for long: the burst again, never more.
        assert_eq!(admitted(100_000, 10), 3);
        // Over any window, at most burst + window / interval.
        let mut due = 0;
        let sent: usize = (0..10_000)
            .map(|t| (0..5).filter(|_| g.admit(&mut due, t)).count())
            .sum();
        assert!((100..=103).contains(&sent), "{sent}");
    }

    #[test]
    fn lcores_share_the_rate() {
        let g = Gcra::new(10, 1, 1000, 2);
        let mut due = 0;
        let sent = (0..10_000).filter(|&t| g.admit(&mut due, t)).count();
        assert_eq!(sent, 50, "half of 100 in 10 s on each of two lcores");
    }

    #[test]
    fn vifs_are_limited_uplinks_by_default_not() {
        let t = dataplane();
        let dp = &t.dp;
        let mut storm = StormControl::new(dp, &FloodConfig::default(), 1);
        let uplink = dp.segments[0].uplink;
        let vif = dp.vrs[0].interfaces[0].vif;
        let burst = FloodConfig::default().vif_burst as usize;
        let mut admitted = |p: usize| (0..5000).filter(|_| storm.admit(p, dp.ports[p], 0)).count();
        assert_eq!(admitted(vif), burst);
        assert_eq!(admitted(uplink), 5000);
        // A port slot that was a vif and is now an uplink has the uplink's limit.
        let uplink_now = PortRole::Uplink { segment: 1 };
        assert_eq!(
            (0..5000)
                .filter(|_| storm.admit(vif, uplink_now, 0))
                .count(),
            5000
        );
    }
}
