//! The station on a virtual clock: no socket, no sleep. A `World` plays the network
//! and the driver: what the station sends is delivered at once (or lost), what it
//! journals is kept, and time moves only when the test says.

use super::*;
use crate::engine::config::DEFAULT_SITE;
use crate::engine::poller::Sequence;

const UPS: &str = "192.168.61.250";
const NVR_244: usize = 0;
const NVR_251: usize = 1;

fn t(s: f64) -> Timestamp {
    Timestamp((1_000.0 * 1e9 + s * 1e9) as u64)
}

/// The seed site, confirming by poll or not.
fn site(confirm: bool) -> Site {
    let text = DEFAULT_SITE.replace(
        "confirm_by_poll = true",
        &format!("confirm_by_poll = {confirm}"),
    );
    Site::parse(&text).expect("valid")
}

fn relays(site: &Site) -> Relays {
    site.recorders
        .iter()
        .map(|r| (SocketAddr::new(r.address, r.port), [192, 168, 61, 10]))
        .collect()
}

/// The station, its journal, and what it sent.
struct World {
    station: Station,
    journal: Vec<(Timestamp, Record)>,
    /// Orders that left: (time, recorder, attempt).
    orders: Vec<(Timestamp, usize, u32)>,
    /// Polls that left: (time, UPS).
    polls: Vec<(Timestamp, usize)>,
}

impl World {
    fn new(site: Site) -> World {
        let relays = relays(&site);
        let station = Station::new(
            site,
            Options::default(),
            relays,
            Box::new(Sequence(0)),
            t(0.0),
        );
        let mut w = World {
            station,
            journal: Vec::new(),
            orders: Vec::new(),
            polls: Vec::new(),
        };
        w.act();
        w
    }

    /// What the station has: journaled, sent, told back.
    fn act(&mut self) {
        loop {
            while let Some(r) = self.station.poll_record() {
                self.journal.push(r);
            }
            let now = self.station.now();
            let mut sent = Vec::new();
            self.station
                .drain_transmits(|tx, _| sent.push((tx.purpose, tx.to)));
            if sent.is_empty() && !self.station.has_records() {
                break;
            }
            for (purpose, to) in sent {
                match purpose {
                    Purpose::Order { recorder, attempt } => {
                        self.orders.push((now, recorder, attempt))
                    }
                    Purpose::Poll { ups } => self.polls.push((now, ups)),
                    Purpose::Answer => {}
                }
                self.station.handle_sent(now, purpose, Ok(Some(to)));
            }
        }
    }

    /// Time moves to `s`: every timer due fires at its own time, acted on then.
    fn to(&mut self, s: f64) {
        while let Some(due) = self.station.poll_timeout().filter(|d| *d <= t(s)) {
            self.station.handle_timeout(due);
            self.act();
        }
        self.station.handle_timeout(t(s));
        self.act();
    }

    fn trap(&mut self, s: f64, event: Event, rule: &str) {
        self.to(s);
        let n = Notification {
            who: Who::Ups(0),
            source: UPS.parse().unwrap(),
            community: b"public",
            event,
            rule,
        };
        self.station.handle_notification(t(s), &n);
        self.act();
    }

    fn ack(&mut self, s: f64, r: usize) {
        self.to(s);
        let n = Notification {
            who: Who::Recorder(r),
            source: self.station.site().recorders[r].address,
            community: b"public",
            event: Event::RecorderAck,
            rule: "recorderAck",
        };
        self.station.handle_notification(t(s), &n);
        self.act();
    }

    fn shown(&self) -> Vec<String> {
        self.journal
            .iter()
            .filter(|(_, r)| r.shown())
            .map(|(at, r)| format!("{:.0} {}", at.since(t(0.0)), r.printed(*at, 0)))
            .collect()
    }
}

#[test]
fn an_outage_goes_out_acknowledged_or_re_sent_until_the_outlets_go_off() {
    let mut w = World::new(site(false));
    w.trap(5.0, Event::LowBattery, "lowBattery");
    // Both told at once, highest tier first, each once.
    let first: Vec<_> = w.orders.iter().map(|(at, r, a)| (*at, *r, *a)).collect();
    assert_eq!(first, [(t(5.0), NVR_244, 1), (t(5.0), NVR_251, 1)]);
    w.ack(7.0, NVR_251);
    w.to(400.0);
    // nvr-244 never acknowledges: told again at +10, +30, +70, +150 s, then reported
    // when its UPS cuts the outlets (3 min after the order).
    let again: Vec<(f64, u32)> = w
        .orders
        .iter()
        .filter(|(_, r, a)| *r == NVR_244 && *a > 1)
        .map(|(at, _, a)| (at.since(t(0.0)).round(), *a))
        .collect();
    assert_eq!(again, [(15.0, 2), (35.0, 3), (75.0, 4), (155.0, 5)]);
    assert!(
        w.orders.iter().all(|(_, r, a)| *r != NVR_251 || *a == 1),
        "an acknowledged recorder is never told again"
    );
    let shown = w.shown();
    assert!(
        shown.iter().any(|l| l.starts_with("185 ")
            && l.contains("NotAcknowledged")
            && l.contains("nvr-244")),
        "{shown:#?}"
    );
    assert!(
        shown
            .iter()
            .any(|l| l.contains("\"decision\":\"Acknowledged\"") && l.contains("nvr-251"))
    );
}

#[test]
fn a_late_send_waits_its_whole_acknowledgement_time_from_when_it_left() {
    let mut w = World::new(site(false));
    w.to(5.0);
    let n = Notification {
        who: Who::Ups(0),
        source: UPS.parse().unwrap(),
        community: b"public",
        event: Event::LowBattery,
        rule: "lowBattery",
    };
    w.station.handle_notification(t(5.0), &n);
    // The driver is held up for 12 s before it can send (a journal on a slow disk).
    while let Some(r) = w.station.poll_record() {
        w.journal.push(r);
    }
    let mut late = Vec::new();
    w.station.drain_transmits(|tx, _| late.push(tx.purpose));
    for p in late {
        w.station.handle_sent(t(17.0), p, Ok(None));
    }
    w.to(26.9);
    assert!(
        w.orders.is_empty(),
        "no re-send before ack_timeout after it left: {:?}",
        w.orders
    );
    w.to(27.1);
    assert_eq!(w.orders.len(), 2, "{:?}", w.orders);
    assert!(w.orders.iter().all(|(at, _, a)| *at == t(27.0) && *a == 2));
}

/// Runs the seed's outage through a fresh station and returns its journal.
fn outage_journal() -> Vec<(Timestamp, Record)> {
    let mut w = World::new(site(true));
    w.trap(10.0, Event::OnBattery, "upsOnBattery");
    w.to(131.0);
    w.ack(131.0, NVR_244);
    w.trap(200.0, Event::LowBattery, "lowBattery");
    w.to(206.0);
    w.ack(207.0, NVR_251);
    w.to(215.0);
    w.journal
}

/// Feeds `journal` to a fresh station, resumes at `now`, and runs it `then` seconds
/// more: what it sends and journals from the restart on.
fn restart(journal: &[(Timestamp, Record)], now: f64, then: f64) -> World {
    let site = site(true);
    let relays = relays(&site);
    let first = journal.first().map_or(t(now), |(at, _)| *at);
    let station = Station::new(
        site,
        Options::default(),
        relays,
        Box::new(Sequence(100)),
        first,
    );
    let mut w = World {
        station,
        journal: Vec::new(),
        orders: Vec::new(),
        polls: Vec::new(),
    };
    for (at, r) in journal {
        w.station.restore(*at, r);
    }
    w.station.resumed(t(now));
    w.act();
    w.to(now + then);
    w
}

#[test]
fn a_restart_tells_no_acknowledged_recorder_again_and_decides_nothing_twice() {
    let journal = outage_journal();
    let w = restart(&journal, 216.0, 300.0);
    assert!(
        w.orders.is_empty(),
        "both acknowledged: nobody told again: {:?}",
        w.orders
    );
    let decided: Vec<String> = w
        .shown()
        .into_iter()
        .filter(|l| l.contains("ShutdownRecorder") || l.contains("Acknowledged"))
        .collect();
    assert!(
        decided.is_empty(),
        "decided again after the restart: {decided:#?}"
    );
}

#[test]
fn a_restart_sends_an_order_decided_and_not_journaled_as_sent_once_one_wait_later() {
    let mut journal = outage_journal();
    // Cut the journal just after nvr-251's order was decided, before it was journaled as
    // sent: the crash came between the fsync and the send, or just after the send.
    let cut = journal
        .iter()
        .position(|(_, r)| {
            matches!(r, Record::Decision(Decided::ShutdownRecorder { recorder, .. }) if recorder == "nvr-251")
        })
        .expect("nvr-251 was told");
    let decided = journal[cut].0;
    journal.truncate(cut + 2);
    // Restarted at once: the order may have left, so it goes out when its wait for an
    // acknowledgement (10 s) would end, not at the restart beside the one that left.
    let w = restart(&journal, 206.0, 30.0);
    let sent: Vec<(Timestamp, usize, u32)> = w.orders.clone();
    assert_eq!(
        sent.iter()
            .filter(|(_, r, a)| *r == NVR_251 && *a == 1)
            .map(|(at, _, _)| *at)
            .collect::<Vec<_>>(),
        [decided.plus_secs(10)],
        "the order not journaled as sent goes out once, one wait after it was decided: {sent:?}"
    );
    assert!(
        sent.iter().all(|(_, r, _)| *r != NVR_244),
        "nvr-244 acknowledged: {sent:?}"
    );
    // Restarted after that wait: it goes out at once.
    let w = restart(&journal, 230.0, 1.0);
    let first: Vec<(Timestamp, usize, u32)> = w.orders.iter().copied().take(1).collect();
    assert_eq!(first, [(t(230.0), NVR_251, 1)], "{:?}", w.orders);
}

#[test]
fn a_damaged_line_loses_only_its_own_fact() {
    let journal = outage_journal();
    for lost in 0..journal.len() {
        let mut damaged = journal.clone();
        let (_, gone) = damaged.remove(lost);
        let w = restart(&damaged, 216.0, 600.0);
        // No acknowledged recorder is told again, whatever line was lost: both
        // acknowledgements are in two records each (the input and the decision).
        assert!(
            w.orders.is_empty(),
            "line {lost} lost ({}): told again {:?}",
            gone.printed(Timestamp(0), 0),
            w.orders
        );
        // And nothing is decided that the live station did not decide.
        let live: Vec<String> = journal
            .iter()
            .filter_map(|(_, r)| match r {
                Record::Decision(d @ Decided::ShutdownRecorder { .. }) => Some(format!("{d:?}")),
                _ => None,
            })
            .collect();
        for (_, r) in &w.journal {
            if let Record::Decision(d @ Decided::ShutdownRecorder { recorder, .. }) = r {
                assert!(
                    live.iter().any(|l| l.contains(recorder.as_str())),
                    "line {lost} lost: a decision the live station never made: {d:?}"
                );
            }
        }
    }
}
