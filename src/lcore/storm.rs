//! Storm control: a frame that floods (broadcast or multicast) is copied to every
//! other port of its segment, so each port may send only so many per second,
//! with a burst allowance (`[flood]` in the config). Each lcore keeps its own
//! share of every port's rate (no shared state on the fast path), as a GCRA
//! (the virtual-scheduling form of a token bucket: one timestamp per port). A
//! frame past the limit is dropped and counted on its port (docs/security.md).
use crate::config::FloodConfig;
use crate::dataplane::Dataplane;

/// One port's limit on this lcore, in TSC ticks.
#[derive(Debug, Clone, Copy)]
struct Gcra {
    /// Ticks one frame costs.
    interval: u64,
    /// How far ahead of now the schedule may run: the burst.
    tolerance: u64,
    /// When the next frame is due if the port kept exactly to its rate.
    due: u64,
}

impl Gcra {
    /// `pps` frames per second with bursts of `burst`, on a clock of `hz`, shared
    /// by `lcores` lcores.
    fn new(pps: u32, burst: u32, hz: u64, lcores: u64) -> Gcra {
        let interval = (hz * lcores / u64::from(pps)).max(1);
        Gcra {
            interval,
            tolerance: interval * u64::from(burst.saturating_sub(1)),
            due: 0,
        }
    }

    /// Whether a frame at `now` is within the limit; if it is, it is charged.
    #[inline(always)]
    fn admit(&mut self, now: u64) -> bool {
        let due = self.due.max(now);
        if due - now > self.tolerance {
            return false;
        }
        self.due = due + self.interval;
        true
    }
}

/// This lcore's storm control over every port.
pub struct StormControl {
    /// By port index; none for ports without a limit.
    ports: Vec<Option<Gcra>>,
}

impl StormControl {
    /// The limits `flood` sets for each port of `dp`, this lcore's share of `lcores`.
    pub fn new(dp: &Dataplane, flood: &FloodConfig, lcores: usize) -> StormControl {
        let hz = dp.clock.hz();
        StormControl {
            // A vacant slot is for a vif added at run time.
            ports: (0..dp.ports.len())
                .map(|p| {
                    flood
                        .limit(dp.ports.get(p).copied())
                        .map(|(pps, burst)| Gcra::new(pps, burst, hz, lcores.max(1) as u64))
                })
                .collect(),
        }
    }

    /// Whether a frame from `port` may flood at TSC `now`.
    #[inline(always)]
    pub fn admit(&mut self, port: usize, now: u64) -> bool {
        self.ports[port].as_mut().is_none_or(|g| g.admit(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lcore::testing::dataplane;

    #[test]
    fn a_burst_then_the_rate() {
        // 10 frames/s, bursts of 3, on a 1 kHz clock: one frame per 100 ticks.
        let mut g = Gcra::new(10, 3, 1000, 1);
        let admitted = |g: &mut Gcra, now: u64, n: usize| (0..n).filter(|_| g.admit(now)).count();
        assert_eq!(admitted(&mut g, 1000, 10), 3, "the burst");
        assert_eq!(admitted(&mut g, 1050, 10), 0, "nothing earned yet");
        assert_eq!(admitted(&mut g, 1100, 10), 1, "one per interval");
        assert_eq!(admitted(&mut g, 1300, 10), 2);
        // Idle for long: the burst again, never more.
        assert_eq!(admitted(&mut g, 100_000, 10), 3);
        // Over any window, at most burst + window / interval.
        let mut g = Gcra::new(10, 3, 1000, 1);
        let sent: usize = (0..10_000).map(|t| admitted(&mut g, t, 5)).sum();
        assert!((100..=103).contains(&sent), "{sent}");
    }

    #[test]
    fn lcores_share_the_rate() {
        let mut g = Gcra::new(10, 1, 1000, 2);
        let sent = (0..10_000).filter(|&t| g.admit(t)).count();
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
        assert_eq!((0..5000).filter(|_| storm.admit(vif, 0)).count(), burst);
        assert_eq!((0..5000).filter(|_| storm.admit(uplink, 0)).count(), 5000);
    }
}
