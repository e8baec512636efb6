//! The acknowledgement ledger: who was told to shut down, who acknowledged, who is told
//! again, and who came back after power returned. Sans-IO, like the policy: orders,
//! acknowledgements and sightings go in with their time; resends and reports come out.
//!
//! A recorder told to shut down has `ack_timeout` to acknowledge (its ack trap,
//! enterprise 1.3.6.1.4.1.50001). If it does not, it is told again, the wait doubling
//! each time, until its UPS cuts its outlets (the order's time plus the UPS's
//! `outlet_off_delay`); then it is reported not acknowledged. When mains power returns
//! to its UPS, the ledger follows it back: it is back when it is heard from again (a
//! poll of the virtual UPS, a trap) after it has had time to shut down, and reported not
//! back if that has not happened within its `boot_time`.
//!
//! The wait for an acknowledgement counts from when the order actually left (`sent`),
//! not from when it was decided: a late send is not answered by an immediate re-send.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use crate::engine::config::{Remap, Secs, Site};
use crate::engine::id::{RecorderId, UpsId};
use crate::time::Timestamp;

fn after(t: Timestamp, s: Secs) -> Timestamp {
    t.plus_secs(s.0)
}

/// Where one recorder stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Standing {
    /// Nothing under way.
    Idle,
    /// Told (or about to be); waiting for its acknowledgement.
    Ordered {
        /// When it was ordered.
        at: Timestamp,
        /// Times the order went out.
        sent: u32,
        /// When it is told again.
        retry_at: Timestamp,
        /// When its UPS cuts the outlets: no more tries after this.
        until: Timestamp,
    },
    /// It acknowledged.
    Acknowledged {
        /// When it was ordered.
        ordered: Timestamp,
        /// When it acknowledged.
        at: Timestamp,
    },
    /// It never acknowledged before its UPS cut the outlets.
    NotAcknowledged {
        /// When it was ordered.
        ordered: Timestamp,
    },
    /// Power is back: waiting to hear from it.
    Returning {
        /// When it was ordered.
        ordered: Timestamp,
        /// Heard after this counts as back (it had time to shut down by then).
        from: Timestamp,
        /// Reported not back after this.
        deadline: Timestamp,
    },
    /// Back after the outage.
    Back {
        /// When it was heard from.
        at: Timestamp,
    },
    /// Not back within its boot time.
    NotBack,
}

/// What the ledger has for the driver.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LedgerOutput {
    /// Tell this recorder again (it has not acknowledged); `attempt` counts from 2.
    Resend {
        /// The recorder.
        recorder: RecorderId,
        /// Which sending this is.
        attempt: u32,
    },
    /// The recorder never acknowledged before its UPS cut the outlets.
    NotAcknowledged {
        /// The recorder.
        recorder: RecorderId,
        /// Times it was told.
        sent: u32,
    },
    /// The recorder is back after the outage.
    Back {
        /// The recorder.
        recorder: RecorderId,
        /// Seconds from power back to hearing from it.
        after_s: f64,
        /// It had been reported not back (heard from after its boot time).
        late: bool,
    },
    /// The recorder was not heard from within its boot time after power returned.
    NotBack {
        /// The recorder.
        recorder: RecorderId,
    },
    /// The recorder was heard from after it should have been down (its shutdown time
    /// after it acknowledged, or after its order when it never did), its UPS still on
    /// battery: it did not shut down. Said once an outage.
    StillRunning {
        /// The recorder.
        recorder: RecorderId,
        /// Seconds past the time it should have been down by.
        late_s: f64,
    },
}

/// What a checkpoint keeps of the ledger.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LedgerState {
    standing: Vec<Standing>,
    power_back: Vec<Option<Timestamp>>,
    /// Recorders said to be still running in this outage (absent in older journals).
    #[serde(default)]
    still_running: Vec<bool>,
}

/// The ledger of a whole site.
#[derive(Debug)]
pub struct Ledger {
    standing: Vec<Standing>,
    /// Every recorder's next deadline, earliest first (the event loop asks at every
    /// wake-up, and a site has thousands of recorders: no scan of them all). A heap
    /// whose entries leave lazily: one whose recorder is no longer due then (its
    /// standing moved on) is stale, and dropped when it comes to the top; a live one
    /// leaves only when it fires. A fan-out arms thousands of timers of one time in
    /// recorder order, which a heap takes in constant time each (a tree walked and
    /// split its nodes for every one).
    timers: BinaryHeap<Reverse<(Timestamp, RecorderId)>>,
    /// When power came back for each recorder's UPS (for `Back`'s delay).
    power_back: Vec<Option<Timestamp>>,
    ack_timeout: Secs,
    outlet_off: Vec<Secs>,
    shutdown_time: Vec<Secs>,
    boot_time: Vec<Secs>,
    ups_of: Vec<UpsId>,
    /// Recorders heard from after they should have been down, in this outage (each
    /// said once).
    still_running: Vec<bool>,
    out: VecDeque<LedgerOutput>,
}

impl Ledger {
    /// An empty ledger for `site`.
    pub fn new(site: &Site) -> Ledger {
        let n = site.recorders.len();
        Ledger {
            standing: vec![Standing::Idle; n],
            // A fan-out's timers (and the stale ones its sends leave) fit from the start.
            timers: BinaryHeap::from(crate::engine::room::touched_vec(
                crate::engine::room::fan_out_room(n, 3),
            )),
            power_back: vec![None; n],
            ack_timeout: site.policy.ack_timeout,
            outlet_off: site
                .recorders
                .iter()
                .map(|r| site.upses[r.ups].outlet_off_delay)
                .collect(),
            shutdown_time: site.recorders.iter().map(|r| r.shutdown_time).collect(),
            boot_time: site.recorders.iter().map(|r| r.boot_time).collect(),
            ups_of: site.recorders.iter().map(|r| r.ups).collect(),
            still_running: vec![false; n],
            out: VecDeque::new(),
        }
    }

    /// UPS `u` cuts its outlets `delay` after its shutdown starts (read from its card):
    /// the recorders it feeds first are told again until then, from their next order.
    pub fn set_outlet_off(&mut self, u: UpsId, delay: Secs) {
        for (r, ups) in self.ups_of.iter().enumerate() {
            if *ups == u {
                self.outlet_off[r] = delay;
            }
        }
    }

    /// Takes a reloaded site: a recorder that stays (same name) keeps where it stands.
    pub fn reload(&mut self, site: &Site, remap: &Remap) {
        let _ = self.take_over(Ledger::new(site), remap);
    }

    /// Becomes `next` (made for the new site, off the decision thread) and returns what it was, for the caller to drop where it costs nothing, carrying over
    /// where each recorder that stays stands.
    pub fn take_over(&mut self, mut next: Ledger, remap: &Remap) -> Ledger {
        for (r, o) in remap.kept_recorders() {
            next.standing[r] = self.standing[o];
            next.power_back[r] = self.power_back[o];
            next.still_running[r] = self.still_running[o];
        }
        next.rebuild_timers();
        std::mem::replace(self, next)
    }

    /// When a standing is due (its resend or report).
    fn due(s: &Standing) -> Option<Timestamp> {
        match *s {
            Standing::Ordered {
                retry_at, until, ..
            } => Some(retry_at.min(until)),
            Standing::Returning { deadline, .. } => Some(deadline),
            _ => None,
        }
    }

    fn set(&mut self, r: RecorderId, s: Standing) {
        let due = Self::due(&s);
        // Due at the same time as before: its entry is still there, and still live.
        if due != Self::due(&self.standing[r])
            && let Some(t) = due
        {
            self.timers.push(Reverse((t, r)));
        }
        self.standing[r] = s;
        // Stale entries wait for their time to come up: past four a recorder, they go.
        if self.timers.len() > 4 * self.standing.len() + 64 {
            self.rebuild_timers();
        }
    }

    /// Whether the timer entry `(t, r)` is live: `r` is due at `t`.
    fn live(&self, t: Timestamp, r: RecorderId) -> bool {
        Self::due(&self.standing[r]) == Some(t)
    }

    fn rebuild_timers(&mut self) {
        let mut entries = std::mem::take(&mut self.timers).into_vec();
        entries.clear();
        entries.extend(
            RecorderId::enumerate(&self.standing)
                .filter_map(|(r, s)| Self::due(s).map(|t| Reverse((t, r)))),
        );
        self.timers = BinaryHeap::from(entries);
    }

    /// What a checkpoint keeps: where each recorder stands, when power came back.
    pub fn state(&self) -> LedgerState {
        LedgerState {
            standing: self.standing.clone(),
            power_back: self.power_back.clone(),
            still_running: self.still_running.clone(),
        }
    }

    /// Takes a checkpoint's state back (for the same site: same length, or nothing).
    pub fn set_state(&mut self, s: LedgerState) {
        if s.standing.len() == self.standing.len() && s.power_back.len() == self.power_back.len() {
            self.standing = s.standing;
            self.rebuild_timers();
            self.power_back = s.power_back;
            if s.still_running.len() == self.still_running.len() {
                self.still_running = s.still_running;
            }
        }
    }

    /// Where recorder `r` stands.
    pub fn standing(&self, r: RecorderId) -> Standing {
        self.standing[r]
    }

    /// Every recorder's standing.
    pub fn all(&self) -> &[Standing] {
        &self.standing
    }

    /// Which recorders were heard from after they should have been down, in this
    /// outage.
    pub fn still_running(&self) -> &[bool] {
        &self.still_running
    }

    /// Recorder `r` was said to be still running (a journal's alert fed back).
    pub fn said_still_running(&mut self, r: RecorderId) {
        if let Some(s) = self.still_running.get_mut(r.index()) {
            *s = true;
        }
    }

    /// Recorder `r` was told to shut down at `now` (the first sending).
    /// Until it has left (`sent`), an order's wait for an acknowledgement does not run:
    /// only its UPS's outlet deadline does.
    pub fn ordered(&mut self, now: Timestamp, r: RecorderId) {
        self.still_running[r] = false;
        let until = after(now, self.outlet_off[r]);
        let ordered = Standing::Ordered {
            at: now,
            sent: 0,
            retry_at: until,
            until,
        };
        self.set(r, ordered);
    }

    /// Order number `attempt` to recorder `r` left at `now`: it has its wait for an
    /// acknowledgement (ack_timeout, doubling with each attempt) from now.
    pub fn sent(&mut self, now: Timestamp, r: RecorderId, attempt: u32) {
        if let Standing::Ordered {
            at, until, sent, ..
        } = self.standing[r]
        {
            let again = Standing::Ordered {
                at,
                sent: sent.max(attempt),
                retry_at: after(now, self.wait(attempt)).min(until),
                until,
            };
            self.set(r, again);
        }
    }

    /// Recorder `r`'s next order was decided at `decided` and may have left then (a
    /// journal without its `Sent`, the crash between the two): it goes out when its wait
    /// for an acknowledgement would end, had it left (the outlet deadline allowing).
    pub fn may_have_left(&mut self, r: RecorderId, decided: Timestamp) {
        if let Standing::Ordered {
            at, until, sent, ..
        } = self.standing[r]
        {
            let again = Standing::Ordered {
                at,
                sent,
                retry_at: after(decided, self.wait(sent + 1)).min(until),
                until,
            };
            self.set(r, again);
        }
    }

    /// Every recorder ordered and not acknowledged is told again at `now` (a pair's new
    /// actor: it cannot know what the old one's last order reached); how many.
    pub fn tell_now(&mut self, now: Timestamp) -> usize {
        let ordered: Vec<(RecorderId, Standing)> = RecorderId::enumerate(&self.standing)
            .filter(|(_, s)| matches!(s, Standing::Ordered { until, .. } if *until > now))
            .map(|(r, s)| (r, *s))
            .collect();
        for (r, s) in &ordered {
            if let Standing::Ordered {
                at, sent, until, ..
            } = *s
            {
                let again = Standing::Ordered {
                    at,
                    sent,
                    retry_at: now,
                    until,
                };
                self.set(*r, again);
            }
        }
        ordered.len()
    }

    /// The wait for an acknowledgement of sending number `attempt`: ack_timeout,
    /// doubling with each.
    fn wait(&self, attempt: u32) -> Secs {
        Secs(
            self.ack_timeout
                .0
                .saturating_mul(1 << attempt.saturating_sub(1).min(16)),
        )
    }

    /// Order number `attempt` to recorder `r` could not be sent at `now`: it is tried
    /// again after the wait it would have had.
    pub fn send_failed(&mut self, now: Timestamp, r: RecorderId, attempt: u32) {
        if let Standing::Ordered {
            at, until, sent, ..
        } = self.standing[r]
        {
            let again = Standing::Ordered {
                at,
                sent,
                retry_at: after(now, self.wait(attempt)).min(until),
                until,
            };
            self.set(r, again);
        }
    }

    /// The earliest order still followed (waiting for its acknowledgement, or for the
    /// recorder to come back): a journal keeps every record since.
    pub fn oldest_followed(&self) -> Option<Timestamp> {
        self.standing
            .iter()
            .filter_map(|s| match *s {
                Standing::Ordered { at, .. } | Standing::Returning { ordered: at, .. } => Some(at),
                _ => None,
            })
            .min()
    }

    /// Recorder `r` acknowledged at `now`.
    pub fn acknowledged(&mut self, now: Timestamp, r: RecorderId) {
        let ordered = match self.standing[r] {
            Standing::Ordered { at, .. } | Standing::NotAcknowledged { ordered: at } => at,
            _ => now,
        };
        self.set(r, Standing::Acknowledged { ordered, at: now });
    }

    /// Whether recorder `r` has acknowledged its order (and must not be told again).
    pub fn has_acknowledged(&self, r: RecorderId) -> bool {
        matches!(self.standing[r], Standing::Acknowledged { .. })
    }

    /// Mains power is back at `now` for UPS `u`: follow its recorders back.
    pub fn power_back(&mut self, now: Timestamp, u: UpsId) {
        for r in RecorderId::all(self.standing.len()) {
            if self.ups_of[r] != u {
                continue;
            }
            // Down by its shutdown time after it acknowledged, or after it was ordered.
            let (ordered, down_by) = match self.standing[r] {
                Standing::Acknowledged { ordered, at } => {
                    (ordered, after(at, self.shutdown_time[r]))
                }
                Standing::Ordered { at, .. } | Standing::NotAcknowledged { ordered: at } => {
                    (at, after(at, self.shutdown_time[r]))
                }
                _ => continue,
            };
            self.power_back[r] = Some(now);
            let returning = Standing::Returning {
                ordered,
                from: down_by.max(now),
                deadline: after(down_by.max(now), self.boot_time[r]),
            };
            self.set(r, returning);
        }
    }

    /// Recorder `r` was heard from at `now` (a poll of the virtual UPS, a trap).
    pub fn seen(&mut self, now: Timestamp, r: RecorderId) {
        // Its UPS still on battery (power back makes it `Returning`): heard from after
        // it should have been down, it is still running.
        let down_by = match self.standing[r] {
            Standing::Acknowledged { at, .. } => Some(after(at, self.shutdown_time[r])),
            Standing::NotAcknowledged { ordered } => Some(after(ordered, self.shutdown_time[r])),
            _ => None,
        };
        if let Some(down_by) = down_by {
            if now > down_by && !self.still_running[r] {
                self.still_running[r] = true;
                self.out.push_back(LedgerOutput::StillRunning {
                    recorder: r,
                    late_s: now.since(down_by),
                });
            }
            return;
        }
        let late = match self.standing[r] {
            Standing::Returning { from, .. } if now >= from => false,
            // Reported not back, and heard from after all: back, late.
            Standing::NotBack => true,
            _ => return,
        };
        self.set(r, Standing::Back { at: now });
        let since = self.power_back[r].unwrap_or(now);
        self.out.push_back(LedgerOutput::Back {
            recorder: r,
            after_s: now.since(since),
            late,
        });
    }

    /// The earliest time `handle_timeout` must be called at.
    pub fn poll_timeout(&mut self) -> Option<Timestamp> {
        while let Some(&Reverse((t, r))) = self.timers.peek() {
            if self.live(t, r) {
                return Some(t);
            }
            self.timers.pop();
        }
        None
    }

    /// Fires what is due at `now`, earliest first: resends, and the reports of who never
    /// acknowledged or never came back.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        while let Some(&Reverse((due, r))) = self.timers.peek() {
            if due > now {
                return;
            }
            if !self.live(due, r) {
                self.timers.pop();
                continue;
            }
            // Each branch moves the standing on (to a later time or none): the entry at
            // the top is stale then, and goes at the next turn of the loop.
            match self.standing[r] {
                Standing::Ordered {
                    at, sent, until, ..
                } => {
                    if until <= now {
                        self.set(r, Standing::NotAcknowledged { ordered: at });
                        self.out
                            .push_back(LedgerOutput::NotAcknowledged { recorder: r, sent });
                        continue;
                    }
                    // Told again; its wait (ack_timeout, 2×, 4×, … until the outlets go
                    // off) starts when this sending leaves (`sent`).
                    let again = Standing::Ordered {
                        at,
                        sent,
                        retry_at: until,
                        until,
                    };
                    self.set(r, again);
                    self.out.push_back(LedgerOutput::Resend {
                        recorder: r,
                        attempt: sent + 1,
                    });
                }
                Standing::Returning { .. } => {
                    self.set(r, Standing::NotBack);
                    self.out.push_back(LedgerOutput::NotBack { recorder: r });
                }
                // Not due (live says it is): never here; dropped all the same.
                _ => {
                    self.timers.pop();
                }
            }
        }
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<LedgerOutput> {
        self.out.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::config::Site;

    fn t(s: u64) -> Timestamp {
        Timestamp(crate::time::ns::secs(1_000 + s as u32))
    }

    fn drain(l: &mut Ledger) -> Vec<LedgerOutput> {
        core::iter::from_fn(|| l.poll_output()).collect()
    }

    /// Runs the ledger's timers second by second up to `to`; every re-send leaves at
    /// once, as a driver sends it.
    fn run(l: &mut Ledger, from: u64, to: u64) -> Vec<(u64, LedgerOutput)> {
        let mut got = Vec::new();
        for s in from..=to {
            if l.poll_timeout().is_some_and(|d| d <= t(s)) {
                l.handle_timeout(t(s));
            }
            for o in drain(l) {
                if let LedgerOutput::Resend { recorder, attempt } = o {
                    l.sent(t(s), recorder, attempt);
                }
                got.push((s, o));
            }
        }
        got
    }

    /// Recorder `r` ordered at `s`, the order leaving at once.
    fn order(l: &mut Ledger, s: u64, r: RecorderId) {
        l.ordered(t(s), r);
        l.sent(t(s), r, 1);
    }

    #[test]
    fn unacknowledged_recorders_are_told_again_with_backoff_until_the_outlets_go_off() {
        // The seed site: ack_timeout 10 s, outlets off 3 min after the order.
        let site = Site::default_site();
        let mut l = Ledger::new(&site);
        order(&mut l, 0, RecorderId(0));
        order(&mut l, 0, RecorderId(1));
        l.acknowledged(t(4), RecorderId(1));
        let got = run(&mut l, 0, 200);
        let resends: Vec<(u64, u32)> = got
            .iter()
            .filter_map(|(s, o)| match o {
                LedgerOutput::Resend {
                    recorder: RecorderId(0),
                    attempt,
                } => Some((*s, *attempt)),
                _ => None,
            })
            .collect();
        assert_eq!(resends, vec![(10, 2), (30, 3), (70, 4), (150, 5)]);
        assert!(
            got.iter().all(|(_, o)| !matches!(
                o,
                LedgerOutput::Resend {
                    recorder: RecorderId(1),
                    ..
                }
            )),
            "an acknowledged recorder is never told again"
        );
        assert_eq!(
            got.last(),
            Some(&(
                180,
                LedgerOutput::NotAcknowledged {
                    recorder: RecorderId(0),
                    sent: 5
                }
            ))
        );
    }

    /// A timer armed again and again leaves stale entries behind: none of them fires,
    /// the live one fires once at its time, and the entries stay bounded however often
    /// a recorder is re-armed.
    #[test]
    fn a_timer_armed_again_fires_once_at_its_last_time_and_stale_ones_never() {
        let site = Site::default_site();
        let mut l = Ledger::new(&site);
        let (a, b) = (RecorderId(0), RecorderId(1));
        // nvr-244: decided at 0, its order leaving at 1, 2, … 9 s (the same attempt
        // reported sent again: each moves its wait for an acknowledgement on).
        l.ordered(t(0), a);
        for s in 1..10 {
            l.sent(t(s), a, 1);
        }
        // nvr-251: ordered and acknowledged at once (no timer left).
        order(&mut l, 0, b);
        l.acknowledged(t(1), b);
        assert_eq!(
            l.poll_timeout(),
            Some(t(9 + 10)),
            "the last wait: 10 s from 9 s"
        );
        let got = run(&mut l, 0, 30);
        let fired: Vec<(u64, &LedgerOutput)> = got.iter().map(|(s, o)| (*s, o)).collect();
        assert_eq!(
            fired,
            vec![(
                19,
                &LedgerOutput::Resend {
                    recorder: a,
                    attempt: 2
                }
            )],
            "one resend, at the last wait's end; none for nvr-251"
        );
        // 100,000 re-arms of one recorder: the stale entries are dropped as they pile up.
        for i in 0..100_000u64 {
            l.sent(t(31 + i / 1000), a, 2);
        }
        assert!(l.timers.len() <= 4 * 2 + 64, "{} entries", l.timers.len());
    }

    #[test]
    fn the_wait_for_an_acknowledgement_counts_from_when_the_order_left() {
        let site = Site::default_site();
        let mut l = Ledger::new(&site);
        // Decided at 0, sent only at 12 s (the decision thread was held up): nothing is
        // re-sent while it waits to leave.
        l.ordered(t(0), RecorderId(0));
        assert!(run(&mut l, 0, 11).is_empty());
        l.sent(t(12), RecorderId(0), 1);
        let got = run(&mut l, 12, 40);
        let resends: Vec<u64> = got
            .iter()
            .filter_map(|(s, o)| matches!(o, LedgerOutput::Resend { .. }).then_some(*s))
            .collect();
        assert_eq!(resends, vec![22], "not at once: ack_timeout after it left");
        // The re-send itself went out late too (at 25 s): the next waits 20 s from then.
        l.sent(t(25), RecorderId(0), 2);
        let got = run(&mut l, 25, 80);
        let resends: Vec<u64> = got
            .iter()
            .filter_map(|(s, o)| matches!(o, LedgerOutput::Resend { .. }).then_some(*s))
            .collect();
        assert_eq!(resends, vec![45]);
        assert_eq!(l.oldest_followed(), Some(t(0)));
    }

    #[test]
    fn a_reload_keeps_where_each_recorder_that_stays_stands() {
        let site = Site::default_site();
        let mut l = Ledger::new(&site);
        l.ordered(t(0), RecorderId(0));
        l.ordered(t(0), RecorderId(1));
        l.acknowledged(t(2), RecorderId(1));
        // The reloaded site lists nvr-251 first and has lost nvr-244.
        let mut next = site.clone();
        next.recorders.swap(0, 1);
        next.recorders.pop();
        l.reload(&next, &Remap::between(&site, &next));
        assert!(
            l.has_acknowledged(RecorderId(0)),
            "nvr-251 stays acknowledged"
        );
        assert_eq!(l.all().len(), 1);
        assert_eq!(run(&mut l, 0, 200), vec![], "no resend to anyone");
    }

    #[test]
    fn recorders_are_followed_back_after_power_returns() {
        let site = Site::default_site();
        let mut l = Ledger::new(&site);
        l.ordered(t(0), RecorderId(0));
        l.ordered(t(0), RecorderId(1));
        l.acknowledged(t(1), RecorderId(0));
        l.acknowledged(t(1), RecorderId(1));
        // Power back at 30 s: the recorders (90 s to shut down) count as back when heard
        // from after 91 s, and are late after 91 s + 5 min of boot time.
        l.power_back(t(30), UpsId(0));
        l.seen(t(40), RecorderId(0));
        assert!(
            drain(&mut l).is_empty(),
            "a poll before it shut down is not 'back'"
        );
        l.seen(t(150), RecorderId(0));
        assert_eq!(
            drain(&mut l),
            vec![LedgerOutput::Back {
                recorder: RecorderId(0),
                after_s: 120.0,
                late: false
            }]
        );
        let got = run(&mut l, 150, 400);
        assert_eq!(
            got,
            vec![(
                391,
                LedgerOutput::NotBack {
                    recorder: RecorderId(1)
                }
            )]
        );
        // Reported not back, nvr-251 is heard from at 500 s: back, late; once.
        l.seen(t(500), RecorderId(1));
        l.seen(t(501), RecorderId(1));
        assert_eq!(
            drain(&mut l),
            vec![LedgerOutput::Back {
                recorder: RecorderId(1),
                after_s: 470.0,
                late: true
            }]
        );
    }

    #[test]
    fn a_recorder_heard_after_it_should_be_down_is_still_running_said_once() {
        // The seed site: 90 s to shut down, outlets off 3 min after the order.
        let site = Site::default_site();
        let mut l = Ledger::new(&site);
        order(&mut l, 0, RecorderId(0));
        l.acknowledged(t(5), RecorderId(0));
        // Polling while it shuts down: nothing to say.
        l.seen(t(60), RecorderId(0));
        l.seen(t(95), RecorderId(0));
        assert!(drain(&mut l).is_empty());
        // Down by 95 s; heard at 100 s and after, its UPS still on battery.
        l.seen(t(100), RecorderId(0));
        l.seen(t(110), RecorderId(0));
        assert_eq!(
            drain(&mut l),
            vec![LedgerOutput::StillRunning {
                recorder: RecorderId(0),
                late_s: 5.0
            }]
        );
        assert_eq!(l.still_running(), [true, false]);
        // Never acknowledged, heard after the outlets' cut: still running too.
        order(&mut l, 0, RecorderId(1));
        let _ = run(&mut l, 0, 181);
        l.seen(t(200), RecorderId(1));
        assert_eq!(
            drain(&mut l),
            vec![LedgerOutput::StillRunning {
                recorder: RecorderId(1),
                late_s: 110.0
            }]
        );
        // Power back: heard from is back, not still running; a new outage's order
        // clears what was said.
        l.power_back(t(300), UpsId(0));
        l.seen(t(400), RecorderId(0));
        assert!(matches!(drain(&mut l)[..], [LedgerOutput::Back { .. }]));
        order(&mut l, 500, RecorderId(0));
        assert_eq!(l.still_running(), [false, true]);
    }
}
