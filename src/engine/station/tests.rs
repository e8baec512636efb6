//! The station on a virtual clock: no socket, no sleep. A `World` plays the network
//! and the driver: what the station sends is delivered at once (or lost), what it
//! journals is kept, and time moves only when the test says.

use super::*;
use crate::engine::config::DEFAULT_SITE;
use crate::engine::poller::Sequence;
use crate::wire::Pdu;

const UPS: &str = "192.168.61.250";
const NVR_244: RecorderId = RecorderId(0);
const NVR_251: RecorderId = RecorderId(1);

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

/// The seed UPS's notification of `event` by `rule`, with its community.
fn from_ups(event: Event, rule: &str) -> Notification<'_> {
    Notification {
        who: Who::Ups(UpsId(0)),
        source: UPS.parse().unwrap(),
        community: b"public",
        v3: None,
        event,
        rule,
        index: None,
    }
}

fn relays(site: &Site) -> Relays {
    site.recorders
        .iter()
        .map(|r| (SocketAddr::new(r.address, r.port), [192, 168, 61, 10]))
        .collect()
}

/// The station, and what it journaled and sent.
struct World {
    station: Station,
    seen: Seen,
}

/// What a station journaled and sent, on the world's clock.
#[derive(Default)]
struct Seen {
    journal: Vec<(Timestamp, Record)>,
    /// Orders that left: (time, recorder, attempt).
    orders: Vec<(Timestamp, RecorderId, u32)>,
    /// Polls that left: (time, UPS).
    polls: Vec<(Timestamp, UpsId)>,
    /// The last poll's bytes.
    last_poll: Vec<u8>,
    /// The virtual UPS's last answer's bytes.
    last_answer: Vec<u8>,
    /// Requests to outlets' cards that left: (time, to, bytes).
    commands: Vec<(Timestamp, SocketAddr, Vec<u8>)>,
    /// Magic packets that left: (time, recorder, to).
    wakes: Vec<(Timestamp, RecorderId, SocketAddr)>,
}

impl Seen {
    fn keep(&mut self) -> impl FnMut(Happened<'_>) + '_ {
        |h| match h {
            Happened::Record(at, r) => self.journal.push((at, r)),
            Happened::Sent {
                at,
                transmit,
                bytes,
            } => match transmit.purpose {
                Purpose::Order { recorder, attempt } => self.orders.push((at, recorder, attempt)),
                Purpose::Poll { ups } => {
                    self.polls.push((at, ups));
                    self.last_poll = bytes.to_vec();
                }
                Purpose::Answer => self.last_answer = bytes.to_vec(),
                Purpose::Command { .. } => self.commands.push((at, transmit.to, bytes.to_vec())),
                Purpose::Wake { recorder, .. } => self.wakes.push((at, recorder, transmit.to)),
            },
            Happened::Command { at, command } => {
                self.orders.push((at, command.recorder, command.attempt))
            }
        }
    }
}

impl World {
    fn new(site: Site) -> World {
        World::with(site, Options::default())
    }

    fn with(site: Site, options: Options) -> World {
        let relays = relays(&site);
        let station = Station::new(site, options, relays, Box::new(Sequence(0)), t(0.0));
        let mut w = World {
            station,
            seen: Seen::default(),
        };
        w.act();
        w
    }

    /// What the station has: journaled, sent, told back.
    fn act(&mut self) {
        self.station.settle(&mut self.seen.keep());
    }

    /// Time moves to `s`: every timer due fires at its own time, acted on then.
    fn to(&mut self, s: f64) {
        self.station.run_to(t(s), &mut self.seen.keep());
    }

    fn trap(&mut self, s: f64, event: Event, rule: &str) {
        self.to(s);
        self.station
            .handle_notification(t(s), &from_ups(event, rule));
        self.act();
    }

    fn ack(&mut self, s: f64, r: RecorderId) {
        self.to(s);
        let n = Notification {
            who: Who::Recorder(r),
            source: self.station.site().recorders[r].address,
            community: b"public",
            v3: None,
            event: Event::RecorderAck,
            rule: "recorderAck",
            index: None,
        };
        self.station.handle_notification(t(s), &n);
        self.act();
    }

    fn shown(&self) -> Vec<String> {
        self.seen
            .journal
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
    let first: Vec<_> = w
        .seen
        .orders
        .iter()
        .map(|(at, r, a)| (*at, *r, *a))
        .collect();
    assert_eq!(first, [(t(5.0), NVR_244, 1), (t(5.0), NVR_251, 1)]);
    w.ack(7.0, NVR_251);
    w.to(400.0);
    // nvr-244 never acknowledges: told again at +10, +30, +70, +150 s, then reported
    // when its UPS cuts the outlets (3 min after the order).
    let again: Vec<(f64, u32)> = w
        .seen
        .orders
        .iter()
        .filter(|(_, r, a)| *r == NVR_244 && *a > 1)
        .map(|(at, _, a)| (at.since(t(0.0)).round(), *a))
        .collect();
    assert_eq!(again, [(15.0, 2), (35.0, 3), (75.0, 4), (155.0, 5)]);
    assert!(
        w.seen
            .orders
            .iter()
            .all(|(_, r, a)| *r != NVR_251 || *a == 1),
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
    let n = from_ups(Event::LowBattery, "lowBattery");
    w.station.handle_notification(t(5.0), &n);
    // The driver is held up for 12 s before it can send (a journal on a slow disk).
    while let Some(r) = w.station.poll_record() {
        w.seen.journal.push(r);
    }
    let mut late = Vec::new();
    w.station.drain_transmits(|tx, _| late.push(tx.purpose));
    for p in late {
        w.station.handle_sent(t(17.0), p, Ok(None));
    }
    w.to(26.9);
    assert!(
        w.seen.orders.is_empty(),
        "no re-send before ack_timeout after it left: {:?}",
        w.seen.orders
    );
    w.to(27.1);
    assert_eq!(w.seen.orders.len(), 2, "{:?}", w.seen.orders);
    assert!(
        w.seen
            .orders
            .iter()
            .all(|(at, _, a)| *at == t(27.0) && *a == 2)
    );
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
    w.seen.journal
}

/// Feeds `journal` to a fresh station, resumes at `now`, and runs it `then` seconds
/// more: what it sends and journals from the restart on.
fn restart(journal: &[(Timestamp, Record)], now: f64, then: f64) -> World {
    let mut w = restored(journal, t(now));
    w.station.resumed(t(now));
    w.act();
    w.to(now + then);
    w
}

/// A fresh station fed `journal` (`now` if it is empty), not yet resumed.
fn restored(journal: &[(Timestamp, Record)], now: Timestamp) -> World {
    let site = site(true);
    let relays = relays(&site);
    let first = journal.first().map_or(now, |(at, _)| *at);
    let station = Station::new(
        site,
        Options::default(),
        relays,
        Box::new(Sequence(100)),
        first,
    );
    let mut w = World {
        station,
        seen: Seen::default(),
    };
    for (at, r) in journal {
        w.station.restore(*at, r);
    }
    w
}

#[test]
fn a_restart_tells_no_acknowledged_recorder_again_and_decides_nothing_twice() {
    let journal = outage_journal();
    let w = restart(&journal, 216.0, 300.0);
    assert!(
        w.seen.orders.is_empty(),
        "both acknowledged: nobody told again: {:?}",
        w.seen.orders
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
            matches!(r, Record::Decision(Decided::ShutdownRecorder { recorder, .. }) if &**recorder == "nvr-251")
        })
        .expect("nvr-251 was told");
    let decided = journal[cut].0;
    journal.truncate(cut + 1);
    // Restarted at once: the order may have left, so it goes out when its wait for an
    // acknowledgement (10 s) would end, not at the restart beside the one that left.
    let w = restart(&journal, 206.0, 30.0);
    let sent: Vec<(Timestamp, RecorderId, u32)> = w.seen.orders.clone();
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
    let first: Vec<(Timestamp, RecorderId, u32)> = w.seen.orders.iter().copied().take(1).collect();
    assert_eq!(first, [(t(230.0), NVR_251, 1)], "{:?}", w.seen.orders);
}

#[test]
fn a_restart_polls_each_ups_once_and_believes_the_answer() {
    // A first start (an empty journal) and a restart mid-outage alike: one poll, and the
    // card's answer to it believed, never refused as an answer to no request.
    for journal in [Vec::new(), outage_journal()] {
        let now = journal
            .last()
            .map_or(5.0, |(at, _): &(Timestamp, Record)| at.since(t(0.0)) + 1.0);
        let mut w = restored(&journal, t(now));
        w.station.resumed(t(now));
        w.act();
        assert_eq!(w.seen.polls.len(), 1, "one poll: {:?}", w.seen.polls);
        let answer = clean_answer(&w, 2, 90);
        w.card_says(now + 0.1, &answer);
        let refused: Vec<String> = w
            .shown()
            .into_iter()
            .filter(|l| l.contains("Refused"))
            .collect();
        assert!(refused.is_empty(), "{refused:?}");
    }
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
            w.seen.orders.is_empty(),
            "line {lost} lost ({}): told again {:?}",
            gone.printed(Timestamp(0), 0),
            w.seen.orders
        );
        // And nothing is decided that the live station did not decide.
        let live: Vec<String> = journal
            .iter()
            .filter_map(|(_, r)| match r {
                Record::Decision(d @ Decided::ShutdownRecorder { .. }) => Some(format!("{d:?}")),
                _ => None,
            })
            .collect();
        for (_, r) in &w.seen.journal {
            if let Record::Decision(d @ Decided::ShutdownRecorder { recorder, .. }) = r {
                assert!(
                    live.iter().any(|l| l.contains(&**recorder)),
                    "line {lost} lost: a decision the live station never made: {d:?}"
                );
            }
        }
    }
}

/// The card's answer to the last poll: `values` for the names asked (none: the names
/// back, with an error).
/// The card's clean answer to the last poll: output source `output` (2 on line, 3 on
/// battery), battery normal, `charge` %, 20 min of runtime.
fn clean_answer(w: &World, output: i64, charge: u32) -> Vec<u8> {
    let values = [
        Value::Integer(output),
        Value::Integer(2),
        Value::Gauge32(charge),
        Value::TimeTicks(120_000),
    ];
    card_answer(w, &values, (0, 0))
}

fn card_answer(w: &World, values: &[Value<'static>], error: (i32, i32)) -> Vec<u8> {
    let arena = bumpalo::Bump::new();
    let asked = Message::parse(&w.seen.last_poll, &arena).expect("our poll");
    let Pdu::Request(q) = asked.pdu else {
        panic!("a get")
    };
    let vb: Vec<VarBind<'_>> = q
        .varbinds
        .iter()
        .enumerate()
        .map(|(i, vb)| VarBind {
            name: vb.name,
            value: values.get(i).copied().unwrap_or(Value::Null),
        })
        .collect();
    let mut m = Message::pdu(
        crate::wire::Version::V1,
        b"public",
        crate::wire::PduType::RESPONSE,
        q.request_id,
        &vb,
    );
    if let Pdu::Request(r) = &mut m.pdu {
        (r.error_status, r.error_index) = error;
    }
    encode::to_vec(&m)
}

impl World {
    fn card_says(&mut self, s: f64, bytes: &[u8]) {
        self.to(s);
        let arena = bumpalo::Bump::new();
        let m = Message::parse(bytes, &arena).expect("the card's answer");
        let from = SocketAddr::new(UPS.parse().unwrap(), 161);
        self.station
            .handle_answer(t(s), from, &m)
            .expect("believed");
        self.act();
    }

    /// What the virtual UPS answers nvr-244 asking for `object`.
    fn recorder_asks(&mut self, s: f64, object: &str) -> String {
        self.to(s);
        let name = crate::wire::oid::oid(object);
        let vb = [VarBind {
            name: name.as_oid(),
            value: Value::Null,
        }];
        let bytes = encode::to_vec(&Message::pdu(
            crate::wire::Version::V2c,
            b"public",
            crate::wire::PduType::GET_REQUEST,
            77,
            &vb,
        ));
        let arena = bumpalo::Bump::new();
        let m = Message::parse(&bytes, &arena).expect("a get");
        let from = SocketAddr::new("192.168.61.244".parse().unwrap(), 40000);
        self.station.handle_request(t(s), from, &m, bytes.len());
        self.act();
        let answer = Message::parse(&self.seen.last_answer, &arena).expect("an answer");
        format!("{:?}", answer.varbinds()[0].value)
    }
}

#[test]
fn a_card_without_one_polled_object_is_alive_and_its_other_values_count() {
    let mut w = World::new(site(true));
    w.to(0.0);
    // The card has no runtime (PowerNet's 4th object): v1 noSuchName, error-index 4.
    let lacks = card_answer(&w, &[], (2, 4));
    w.card_says(0.1, &lacks);
    // Reported once, and asked again at once without it: on mains, 87 %.
    let ok = card_answer(
        &w,
        &[Value::Integer(2), Value::Integer(2), Value::Gauge32(87)],
        (0, 0),
    );
    assert_eq!(
        w.seen.polls.len(),
        2,
        "asked again at once: {:?}",
        w.seen.polls
    );
    w.card_says(0.2, &ok);
    // A recorder sees the real charge, and no runtime (the card has none).
    assert_eq!(
        w.recorder_asks(1.0, "1.3.6.1.2.1.33.1.2.4.0"),
        "Integer(87)"
    );
    assert_eq!(
        w.recorder_asks(1.0, "1.3.6.1.2.1.33.1.2.3.0"),
        "NoSuchInstance"
    );
    // The low-battery trap is confirmed by the next answer: on battery, battery low.
    w.trap(5.0, Event::LowBattery, "lowBattery");
    let on_battery = card_answer(
        &w,
        &[Value::Integer(3), Value::Integer(3), Value::Gauge32(50)],
        (0, 0),
    );
    w.card_says(5.1, &on_battery);
    w.to(9.0);
    let shown = w.shown();
    let missing: Vec<&String> = shown
        .iter()
        .filter(|l| l.contains("poll_object_missing"))
        .collect();
    assert_eq!(missing.len(), 1, "{shown:#?}");
    assert!(
        missing[0].contains("upsAdvBatteryRunTimeRemaining.0"),
        "{}",
        missing[0]
    );
    assert!(
        shown
            .iter()
            .any(|l| l.contains("ShutdownRecorder") && l.contains("confirmed by poll")),
        "{shown:#?}"
    );
    assert!(
        !shown
            .iter()
            .any(|l| l.contains("did not answer") || l.contains("ups_not_answering")),
        "{shown:#?}"
    );
    assert_eq!(w.seen.orders.len(), 2, "{:?}", w.seen.orders);
}

#[test]
fn a_confirming_poll_answered_with_an_error_says_so() {
    let mut w = World::new(site(true));
    w.to(0.0);
    let ok = clean_answer(&w, 2, 87);
    w.card_says(0.1, &ok);
    w.to(10.15);
    let ok = clean_answer(&w, 2, 87);
    w.card_says(10.2, &ok);
    w.trap(20.0, Event::LowBattery, "lowBattery");
    // genErr: the confirmation times out saying the UPS answered; the next poll's
    // genErr is not reported again.
    let failed = card_answer(&w, &[], (5, 0));
    w.card_says(20.1, &failed);
    w.to(30.15);
    let failed = card_answer(&w, &[], (5, 0));
    w.card_says(30.2, &failed);
    w.to(40.0);
    let shown = w.shown();
    let errors = shown
        .iter()
        .filter(|l| l.contains("\"poll_error\""))
        .count();
    assert_eq!(errors, 1, "{shown:#?}");
    assert!(
        shown.iter().any(
            |l| l.contains("ShutdownRecorder") && l.contains("answered the poll with an error")
        ),
        "{shown:#?}"
    );
    assert!(
        !shown.iter().any(|l| l.contains("ups_not_answering")),
        "{shown:#?}"
    );
}

#[test]
fn a_dry_run_presents_the_real_values_and_records_what_it_would_have() {
    let mut w = World::with(site(false), Options { dry_run: true });
    w.to(0.0);
    let ok = clean_answer(&w, 3, 64);
    w.card_says(0.1, &ok);
    w.trap(5.0, Event::LowBattery, "lowBattery");
    assert!(
        w.seen.orders.is_empty(),
        "a dry run sends nothing: {:?}",
        w.seen.orders
    );
    // nvr-244 polls its virtual UPS: the real 64 %, not the 0 % a real run shows.
    assert_eq!(
        w.recorder_asks(6.0, "1.3.6.1.2.1.33.1.2.4.0"),
        "Integer(64)"
    );
    // What it would have presented is recorded: the shutdown (0 % from then on).
    let shown = w.shown();
    assert!(
        shown
            .iter()
            .any(|l| l.contains("ShutdownRecorder") && l.contains("nvr-244")),
        "{shown:#?}"
    );
    assert!(
        shown
            .iter()
            .any(|l| l.contains("\"action\":\"Presented\"") && l.contains("\"charge\":64")),
        "{shown:#?}"
    );
    // A real run shows 0 %.
    let mut w = World::new(site(false));
    w.to(0.0);
    let ok = clean_answer(&w, 3, 64);
    w.card_says(0.1, &ok);
    w.trap(5.0, Event::LowBattery, "lowBattery");
    assert_eq!(w.recorder_asks(6.0, "1.3.6.1.2.1.33.1.2.4.0"), "Integer(0)");
}

/// The seed site reloaded with a new UPS listed first, the seed's recorders in the
/// other order and a new one after them: every id of the running site means another
/// entry.
fn reshuffled(site: &Site) -> Site {
    let mut next = site.clone();
    let mut new_ups = next.upses[0].clone();
    new_ups.name = "ups-annex".into();
    new_ups.address = "192.168.61.249".parse().unwrap();
    next.upses.insert(0, new_ups);
    for r in &mut next.recorders {
        r.ups = UpsId(r.ups.0 + 1);
        r.feeds = vec![r.ups];
    }
    next.recorders.reverse();
    let mut annex = next.recorders[0].clone();
    annex.name = "nvr-annex".into();
    annex.address = "192.168.61.230".parse().unwrap();
    annex.ups = UpsId(0);
    annex.feeds = vec![UpsId(0)];
    next.recorders.push(annex);
    next
}

fn reload(w: &mut World, s: f64, next: Site) {
    w.to(s);
    let relays = relays(&next);
    let base = Arc::clone(w.station.site());
    let p = Prepared::new(next, base, relays, Box::new(Sequence(500)));
    assert_eq!(w.station.reload_refusal(&p), None);
    drop(w.station.handle_reload(t(s), p));
    w.act();
}

#[test]
fn a_reload_that_renumbers_every_ups_and_recorder_changes_nothing_under_way() {
    let mut w = World::new(site(false));
    w.trap(5.0, Event::LowBattery, "lowBattery");
    w.ack(7.0, NVR_251);
    let (polls_before, orders_before) = (w.seen.polls.len(), w.seen.orders.len());
    let old = Arc::clone(w.station.site());
    let next = reshuffled(&old);
    reload(&mut w, 12.0, next);
    w.to(400.0);
    // Each order named by the site it was sent under.
    let told: Vec<(f64, String, u32)> = w
        .seen
        .orders
        .iter()
        .enumerate()
        .map(|(i, (at, r, a))| {
            let site = if i < orders_before {
                &old
            } else {
                w.station.site()
            };
            (
                at.since(t(0.0)).round(),
                site.recorders[*r].name.clone(),
                *a,
            )
        })
        .collect();
    // nvr-244 goes on being told on its own schedule; nvr-251 (acknowledged) and the
    // annex's recorder (its UPS on mains) are not told.
    let expected: Vec<(f64, String, u32)> = [
        (5.0, 1),
        (5.0, 1),
        (15.0, 2),
        (35.0, 3),
        (75.0, 4),
        (155.0, 5),
    ]
    .iter()
    .enumerate()
    .map(|(i, (s, a))| {
        (
            *s,
            if i == 1 { "nvr-251" } else { "nvr-244" }.to_string(),
            *a,
        )
    })
    .collect();
    let mut sorted = told.clone();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let mut want = expected;
    want.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(sorted, want, "{told:?}");
    let shown = w.shown();
    assert!(
        shown.iter().any(|l| l.starts_with("185 ")
            && l.contains("NotAcknowledged")
            && l.contains("nvr-244")),
        "{shown:#?}"
    );
    // The running UPS keeps its poll schedule: unanswered (no card in this world),
    // three tries from 0 s, the next poll 10 s after the last try, at 15 s, not at the
    // reload; only the new UPS is polled at once.
    let first_after = |ups: &str| {
        w.seen.polls[polls_before..]
            .iter()
            .find(|(_, u)| w.station.site().upses[*u].name == ups)
            .map(|(at, _)| at.since(t(0.0)).round())
    };
    assert_eq!(first_after("ups-annex"), Some(12.0));
    assert_eq!(first_after("ups-main"), Some(15.0));
}

#[test]
fn an_order_a_restart_has_still_to_send_goes_to_its_own_recorder_after_a_reload() {
    let mut journal = outage_journal();
    let cut = journal
        .iter()
        .position(|(_, r)| {
            matches!(r, Record::Decision(Decided::ShutdownRecorder { recorder, .. }) if &**recorder == "nvr-251")
        })
        .expect("nvr-251 was told");
    let decided = journal[cut].0;
    journal.truncate(cut + 1);
    // The journal goes on with a reload that renumbers the site, before the crash;
    // restarted at once, nvr-251's order is to go out one wait (10 s) after it was
    // decided.
    let mut w = restored(&journal, decided);
    let next = reshuffled(w.station.site());
    let base = Arc::clone(w.station.site());
    let relays = relays(&next);
    let p = Prepared::new(next, base, relays, Box::new(Sequence(500)));
    drop(w.station.restore_reload(decided.plus_secs(1), p));
    w.station.resumed(decided.plus_secs(2));
    w.act();
    w.to(230.0);
    let name = |r: RecorderId| w.station.site().recorders[r].name.clone();
    let sent: Vec<(Timestamp, String, u32)> = w
        .seen
        .orders
        .iter()
        .map(|(at, r, a)| (*at, name(*r), *a))
        .collect();
    assert_eq!(
        sent.first(),
        Some(&(decided.plus_secs(10), "nvr-251".to_string(), 1)),
        "the unsent order goes to nvr-251, one wait after it was decided: {sent:?}"
    );
    assert!(
        sent.iter().all(|(_, r, _)| r == "nvr-251"),
        "nvr-244 acknowledged, the annex's UPS on mains: {sent:?}"
    );
}

#[test]
fn a_nut_client_fed_by_two_ups_sees_the_better_until_it_is_ordered_down() {
    let text = DEFAULT_SITE
        .replace("confirm_by_poll = true", "confirm_by_poll = false")
        .replacen(
            "[[recorder]]\n",
            "[[ups]]\nname = \"ups-b\"\naddress = \"192.168.61.249\"\nvendor = \"apc\"\noutlet_off_delay = \"3m\"\n\n[[recorder]]\nname = \"nas-dual\"\naddress = \"192.168.61.30\"\nups = [\"ups-main\", \"ups-b\"]\ntier = 1\nshutdown_time = \"60s\"\nkind = \"nut\"\nnut_user = \"monuser\"\nnut_password = \"secret\"\nnut_ups = \"ups\"\n\n[[recorder]]\n",
            1,
        );
    let mut w = World::new(Site::parse(&text).expect("valid"));
    let peer: IpAddr = "192.168.61.30".parse().unwrap();
    assert_eq!(
        w.station.handle_nut_connected(t(1.0), 7, peer),
        Reply::default()
    );
    let ask = |w: &mut World, s: f64| {
        let r = w
            .station
            .handle_nut_bytes(t(s), 7, b"GET VAR ups ups.status\n", &mut { usize::MAX });
        String::from_utf8(r.bytes).unwrap()
    };
    // ups-main on battery: ups-b carries it, and it sees ups-b: on line.
    w.trap(5.0, Event::OnBattery, "upsOnBattery");
    assert_eq!(ask(&mut w, 6.0), "VAR ups ups.status \"OL\"\n");
    // ups-main's low battery: still carried by ups-b, still on line.
    w.trap(10.0, Event::LowBattery, "lowBattery");
    assert_eq!(ask(&mut w, 11.0), "VAR ups ups.status \"OL\"\n");
    // ups-b fails too, low: ordered down, FSD.
    let n = Notification {
        who: Who::Ups(UpsId(1)),
        source: "192.168.61.249".parse().unwrap(),
        community: b"public",
        v3: None,
        event: Event::LowBattery,
        rule: "lowBattery",
        index: None,
    };
    w.station.handle_notification(t(20.0), &n);
    w.act();
    assert_eq!(ask(&mut w, 21.0), "VAR ups ups.status \"FSD OB LB\"\n");
}

#[test]
fn an_outage_whose_power_is_back_shows_its_held_tier_until_it_ends() {
    let mut w = World::new(site(false));
    w.trap(10.0, Event::OnBattery, "upsOnBattery");
    // Tier 2 is shed at 130 s; power comes back at 150 s, tier 1 still due at 610 s.
    w.to(140.0);
    w.trap(150.0, Event::PowerRestored, "powerRestored");
    w.to(170.0);
    let status = w.station.status(0);
    let outages = status["outages"].as_array().expect("outages");
    assert_eq!(
        outages.len(),
        1,
        "the outage goes on while mains settles: {status}"
    );
    let o = &outages[0];
    assert_eq!(o["mains_back_at"], t(150.0).utc().to_string());
    assert_eq!(o["outage_ends_at"], t(210.0).utc().to_string());
    let tiers = o["tiers"].as_array().expect("tiers");
    assert_eq!(tiers[0]["tier"], 2);
    assert!(!tiers[0]["shed_at"].is_null(), "{o}");
    assert_eq!(tiers[1]["tier"], 1);
    assert_eq!(tiers[1]["held"], true, "{o}");
    assert!(tiers[1]["grace_ends"].is_null(), "no grace runs: {o}");
    // Power held for the settling minute: the outage is over.
    w.to(211.0);
    let status = w.station.status(0);
    assert_eq!(
        status["outages"].as_array().map(Vec::len),
        Some(0),
        "{status}"
    );
}

#[test]
fn a_recorder_still_polling_after_its_shutdown_time_is_said_once_and_shown() {
    let mut w = World::new(site(false));
    w.trap(10.0, Event::OnBattery, "upsOnBattery");
    // Tier 2 shed at 130 s; nvr-244 acknowledges at once: down by 221 s (90 s).
    w.to(130.0);
    w.ack(131.0, NVR_244);
    w.recorder_asks(200.0, "1.3.6.1.2.1.33.1.2.4.0");
    let said = |w: &World| -> Vec<String> {
        w.shown()
            .into_iter()
            .filter(|l| l.contains("did_not_shut_down"))
            .collect()
    };
    assert!(said(&w).is_empty(), "still within its shutdown time");
    w.recorder_asks(230.0, "1.3.6.1.2.1.33.1.2.4.0");
    w.recorder_asks(240.0, "1.3.6.1.2.1.33.1.2.4.0");
    let alerts = said(&w);
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert!(
        alerts[0].contains(
            "recorder `nvr-244` did not shut down: heard from 9 s after it should have been down"
        ) && alerts[0].contains("UPS `ups-main` is still on battery"),
        "{}",
        alerts[0]
    );
    assert_eq!(
        w.station
            .counts()
            .tallies
            .get(crate::engine::tally::Counter::NotShutDown),
        1
    );
    let status = w.station.status(0);
    assert_eq!(status["recorders"][0]["still_running"], true, "{status}");
    assert_eq!(status["recorders"][1]["still_running"], false);
    // A restart from the journal says it no more.
    let journal = w.seen.journal.clone();
    let mut again = restored(&journal, t(250.0));
    again.station.resumed(t(250.0));
    again.act();
    again.recorder_asks(260.0, "1.3.6.1.2.1.33.1.2.4.0");
    assert!(said(&again).is_empty(), "{:#?}", again.shown());
    assert_eq!(
        again.station.status(0)["recorders"][0]["still_running"],
        true
    );
}

/// The seed site with nvr-244 (tier 2) on APC outlet group 2 and nvr-251 (tier 1) on
/// group 1, a write community, and Wake-on-LAN for nvr-244.
fn outlet_site() -> Site {
    let text = DEFAULT_SITE
        .replace("confirm_by_poll = true", "confirm_by_poll = false")
        .replace(
            "restart = \"auto\"",
            "restart = \"auto\"\nwrite_community = \"private\"",
        )
        .replacen(
            "kind = \"trap-relay\"",
            "kind = \"trap-relay\"\noutlet = { ups = \"ups-main\", group = 2 }\nwol = \"00:11:22:33:44:55\"\nwol_to = \"192.0.2.255:9\"",
            1,
        )
        .replacen(
            "tier = 1\nshutdown_time = \"90s\"\nkind = \"trap-relay\"",
            "tier = 1\nshutdown_time = \"90s\"\nkind = \"trap-relay\"\noutlet = { ups = \"ups-main\", group = 1 }",
            1,
        );
    Site::parse(&text).expect("valid")
}

impl World {
    /// The card answers the last request to it: `value` for a read, taken for a SET.
    fn card_answers(&mut self, s: f64, value: i64) {
        let (_, _, request) = self.seen.commands.last().cloned().expect("a request");
        let arena = bumpalo::Bump::new();
        let m = Message::parse(&request, &arena).expect("our request");
        let Pdu::Request(q) = m.pdu else {
            panic!("a request")
        };
        let vbs: Vec<VarBind<'_>> = q
            .varbinds
            .iter()
            .map(|vb| VarBind {
                name: vb.name,
                value: if q.kind == crate::wire::PduType::GET_REQUEST {
                    Value::Integer(value)
                } else {
                    vb.value
                },
            })
            .collect();
        let a = encode::to_vec(&Message::pdu(
            crate::wire::Version::V1,
            b"private",
            crate::wire::PduType::RESPONSE,
            q.request_id,
            &vbs,
        ));
        self.to(s);
        let from = SocketAddr::new(UPS.parse().unwrap(), 161);
        assert!(
            self.station.handle_command_answer(t(s), from, &a, &arena),
            "taken"
        );
        self.act();
    }
}

#[test]
fn power_back_mid_shedding_cycles_the_shed_tiers_outlet_and_wakes_its_recorder() {
    let mut w = World::new(outlet_site());
    w.trap(10.0, Event::OnBattery, "upsOnBattery");
    // Tier 2's grace ends at 130 s: nvr-244 is told, and its group is committed for 220 s
    // (its 90 s of shutdown time).
    w.to(131.0);
    let committed: Vec<String> = w
        .shown()
        .into_iter()
        .filter(|l| l.contains("CycleOutlet"))
        .collect();
    assert_eq!(committed.len(), 1, "{committed:?}");
    assert!(
        committed[0].contains("ups-main/group 2") && committed[0].contains("nvr-244"),
        "{committed:?}"
    );
    // Mains power returns at 150 s, before tier 1's grace: nvr-251's group is not touched,
    // nvr-244's is cycled all the same (it halted on a live outlet).
    w.trap(150.0, Event::PowerRestored, "powerRestored");
    w.to(219.0);
    assert!(
        w.seen.commands.is_empty(),
        "nothing before its shutdown time"
    );
    w.to(220.0);
    assert_eq!(w.seen.commands.len(), 1, "the read before the write");
    w.card_answers(220.1, 2);
    w.card_answers(220.2, 0);
    w.card_answers(220.3, 1);
    let sets: Vec<String> = w
        .shown()
        .into_iter()
        .filter(|l| {
            l.contains("OutletSet") || l.contains("OutletAnswered") || l.contains("OutletRead")
        })
        .collect();
    assert!(
        sets.iter().any(|l| l
            .contains("upsOutletGroupControlCommand.2 = upsOutletGroupImmediateRebootShutdown(9)")),
        "{sets:#?}"
    );
    assert!(sets.iter().any(|l| l.contains("noError")), "{sets:#?}");
    let status = w.station.status(0);
    let outlets = status["outlets"].as_array().expect("outlets");
    assert_eq!(outlets[0]["name"], "ups-main/group 1");
    assert_eq!(
        outlets[0]["state"], "idle",
        "the running tier's group untouched"
    );
    assert_eq!(outlets[1]["state"], "armed", "{status}");
    // Wake-on-LAN: from power back on, until nvr-244 is heard from.
    assert!(
        w.seen
            .wakes
            .iter()
            .all(|(_, r, to)| *r == NVR_244 && *to == "192.0.2.255:9".parse().unwrap()),
        "{:?}",
        w.seen.wakes
    );
    // Down at 220 s; its outlet's cycle has two minutes; then woken, the spacing doubling.
    w.to(500.0);
    let when: Vec<f64> = w
        .seen
        .wakes
        .iter()
        .map(|(at, _, _)| at.since(t(0.0)))
        .collect();
    assert_eq!(when, [340.0, 350.0, 370.0, 410.0, 490.0]);
    let before = w.seen.wakes.len();
    w.recorder_asks(500.0, "1.3.6.1.2.1.33.1.2.4.0");
    w.to(900.0);
    assert_eq!(w.seen.wakes.len(), before, "no more once it is back");
}

#[test]
fn a_restart_mid_cycle_reads_the_card_and_arms_nothing_twice() {
    let mut w = World::new(outlet_site());
    w.trap(10.0, Event::OnBattery, "upsOnBattery");
    w.to(220.0);
    // The read, then the SET left; the gateway dies before the card's answer.
    w.card_answers(220.1, 2);
    let journal = w.seen.journal.clone();
    assert!(
        journal
            .iter()
            .any(|(_, r)| matches!(r, Record::Action(Action::OutletSet { .. })))
    );
    let site = outlet_site();
    let relays = relays(&site);
    let mut again = World {
        station: Station::new(
            site,
            Options::default(),
            relays,
            Box::new(Sequence(900)),
            journal[0].0,
        ),
        seen: Seen::default(),
    };
    for (at, r) in &journal {
        again.station.restore(*at, r);
    }
    again.station.resumed(t(230.0));
    again.act();
    again.to(231.0);
    // It reads first: the card says the command is pending; nothing is written again.
    assert_eq!(again.seen.commands.len(), 1);
    let arena = bumpalo::Bump::new();
    let m = Message::parse(&again.seen.commands[0].2, &arena).unwrap();
    assert_eq!(m.pdu_type(), crate::wire::PduType::GET_REQUEST);
    again.card_answers(231.1, 1);
    again.to(300.0);
    assert_eq!(
        again.seen.commands.len(),
        1,
        "no SET over the pending command"
    );
    let status = again.station.status(0);
    assert_eq!(status["outlets"][1]["state"], "armed", "{status}");
    // Its commitment is the journal's: not decided a second time.
    assert!(
        !again
            .seen
            .journal
            .iter()
            .any(|(_, r)| matches!(r, Record::Decision(Decided::CycleOutlet { .. }))),
        "{:#?}",
        again.seen.journal
    );
}

/// The seed site with its UPS's `outlet_off_delay` left to the card.
fn site_leaving_the_delay_to_the_card() -> Site {
    let text = DEFAULT_SITE
        .replace("confirm_by_poll = true", "confirm_by_poll = false")
        .replace("outlet_off_delay = \"3m\"", "");
    Site::parse(&text).expect("valid")
}

/// When nvr-244, never acknowledging, is reported NotAcknowledged (seconds on the
/// world's clock), its order at 5 s.
fn not_acknowledged_at(w: &mut World) -> Option<f64> {
    w.trap(5.0, Event::LowBattery, "lowBattery");
    w.ack(6.0, NVR_251);
    w.to(900.0);
    w.seen
        .journal
        .iter()
        .find(|(at, r)| r.printed(*at, 0).to_string().contains("NotAcknowledged"))
        .map(|(at, _)| at.since(t(0.0)).round())
}

#[test]
fn a_shutoff_delay_left_to_the_card_is_taken_once_read_and_kept_on_resume() {
    // Unread, it stands at the slowest shutdown of the recorders the UPS feeds (90 s).
    let left = site_leaving_the_delay_to_the_card();
    assert!(left.upses[0].off_delay_from_card);
    assert_eq!(left.upses[0].outlet_off_delay, Secs(90));
    let mut w = World::new(left.clone());
    assert_eq!(not_acknowledged_at(&mut w), Some(95.0));

    // The card says 10 min: nvr-244 is told again until then, the delay journaled.
    let mut w = World::new(left.clone());
    w.station.handle_off_delay(t(1.0), "ups-main", 600);
    w.act();
    assert!(
        w.seen.journal.iter().any(|(_, r)| matches!(
            r,
            Record::Input(Input::OffDelay { ups, seconds: 600 }) if &**ups == "ups-main"
        )),
        "{:#?}",
        w.seen.journal
    );
    assert_eq!(not_acknowledged_at(&mut w), Some(605.0));
    // Read again with the same value (a reload): nothing more journaled.
    let records = w.seen.journal.len();
    w.station.handle_off_delay(t(901.0), "ups-main", 600);
    w.act();
    assert_eq!(w.seen.journal.len(), records);

    // A journal fed back keeps it.
    let journal: Vec<_> = w
        .seen
        .journal
        .iter()
        .take_while(|(at, _)| *at <= t(1.0))
        .cloned()
        .collect();
    let mut back = World::new(left);
    for (at, r) in &journal {
        back.station.restore(*at, r);
    }
    back.station.resumed(t(2.0));
    back.act();
    assert_eq!(not_acknowledged_at(&mut back), Some(605.0));

    // A site that names its delay keeps it, whatever the card says.
    let mut w = World::new(site(false));
    w.station.handle_off_delay(t(1.0), "ups-main", 600);
    w.act();
    assert_eq!(not_acknowledged_at(&mut w), Some(185.0));
}

/// `r` with every sentence a person reads rewritten: alerts' and decisions' reasons, a
/// command's status.
fn reworded(r: &Record) -> Record {
    let mut r = r.clone();
    match &mut r {
        Record::Decision(
            Decided::Alert { reason, .. }
            | Decided::Poll { reason, .. }
            | Decided::CancelShutdown { reason, .. },
        ) => *reason = format!("reworded: {}", reason.len()),
        Record::Decision(Decided::ShutdownRecorder { reason, .. }) => {
            *reason = "reworded".into();
        }
        Record::Action(Action::CommandDone { status, detail, .. }) => {
            *status = "reworded".into();
            *detail = "reworded".into();
        }
        _ => {}
    }
    r
}

#[test]
fn a_restart_rebuilds_from_kinds_and_fields_never_from_sentences() {
    // The seed's outage, every sentence reworded: the restart sees the same state.
    let journal = outage_journal();
    let renamed: Vec<_> = journal.iter().map(|(t, r)| (*t, reworded(r))).collect();
    assert_ne!(journal, renamed, "something was reworded");
    let (a, b) = (
        restart(&journal, 216.0, 300.0),
        restart(&renamed, 216.0, 300.0),
    );
    assert_eq!(a.seen.orders, b.seen.orders);
    assert_eq!(a.station.status(0), b.station.status(0));
    // Stopped during the outage (its on-battery alert journaled, the trap's input
    // lost): the restart still knows the outage from the alert's kind.
    let early: Vec<_> = journal
        .iter()
        .filter(|(at, r)| *at <= t(20.0) && !matches!(r, Record::Input(_)))
        .map(|(at, r)| (*at, reworded(r)))
        .collect();
    let w = restart(&early, 30.0, 200.0);
    assert!(
        w.seen.orders.iter().any(|(_, r, _)| *r == NVR_244),
        "the outage went on after the restart: {:?}",
        w.seen.orders
    );
    // A command's success is its field, not its words: nvr-244's command done (as
    // an exec recorder's would be) stands for its acknowledgement; not done, it is told
    // again.
    let before_ack: Vec<_> = journal
        .iter()
        .filter(|(at, _)| *at < t(131.0))
        .cloned()
        .collect();
    for ok in [true, false] {
        let mut j = before_ack.clone();
        j.push((
            t(130.5),
            Record::Action(Action::CommandDone {
                recorder: "nvr-244".into(),
                attempt: 1,
                ok,
                status: if ok { "killed: timed out" } else { "exit 0" }.into(),
                detail: String::new(),
                stdout: None,
                stderr: None,
            }),
        ));
        let w = restart(&j, 140.0, 100.0);
        let again = w.seen.orders.iter().any(|(_, r, _)| *r == NVR_244);
        assert_eq!(again, !ok, "ok = {ok}: {:?}", w.seen.orders);
    }
}

/// 1,000 reports of group 1 by the card's address with its community, in two seconds
/// (the `k`th's event and trap from `report`): a forger who has the community, or a
/// card repeating itself.
fn outlet_flood(report: impl Fn(u32) -> (Event, &'static str)) -> World {
    let mut w = World::new(outlet_site());
    for k in 0..1000u32 {
        let s = 10.0 + f64::from(k) / 500.0;
        w.to(s);
        let (event, rule) = report(k);
        let n = Notification {
            index: Some(1),
            ..from_ups(event, rule)
        };
        w.station.handle_notification(t(s), &n);
        w.act();
    }
    w
}

#[test]
fn a_flood_of_a_cards_outlet_trap_is_journaled_once() {
    let w = outlet_flood(|_| (Event::OutletOff, "upsOutletGroupTurnedOff"));
    let count = |f: &dyn Fn(&Record) -> bool| w.seen.journal.iter().filter(|(_, r)| f(r)).count();
    assert_eq!(
        count(&|r| matches!(
            r,
            Record::Input(Input::Event {
                event: Event::OutletOff,
                ..
            })
        )),
        1
    );
    assert_eq!(
        count(&|r| matches!(r, Record::Action(Action::OutletReported { .. }))),
        1
    );
    assert_eq!(
        count(&|r| matches!(
            r,
            Record::Decision(Decided::Alert {
                kind: AlertKind::OutletCutByCard,
                ..
            })
        )),
        1,
        "{:#?}",
        w.seen.journal
    );
    // Alternating off and on, as no card does: a few a minute recorded, no more.
    let w = outlet_flood(|k| {
        if k % 2 == 0 {
            (Event::OutletOff, "upsOutletGroupTurnedOff")
        } else {
            (Event::OutletOn, "upsOutletGroupTurnedOn")
        }
    });
    let reported = w
        .seen
        .journal
        .iter()
        .filter(|(_, r)| matches!(r, Record::Action(Action::OutletReported { .. })))
        .count();
    assert_eq!(
        reported,
        usize::from(crate::engine::power::REPORTS_A_MINUTE)
    );
}

/// A fan-out encodes its trap once per community: every recorder still gets its own
/// community, whatever the order of the recorders (one of another community between
/// two of the site's).
#[test]
fn each_order_carries_its_recorders_community_when_the_trap_is_encoded_once() {
    let text = DEFAULT_SITE.replace("confirm_by_poll = true", "confirm_by_poll = false")
        + "\n[[recorder]]\nname = \"nvr-other\"\naddress = \"192.168.61.245\"\nups = \"ups-main\"\ntier = 1\nshutdown_time = \"60s\"\ncommunity = \"other\"\n\
           \n[[recorder]]\nname = \"nvr-last\"\naddress = \"192.168.61.246\"\nups = \"ups-main\"\ntier = 1\nshutdown_time = \"60s\"\n";
    let site = Site::parse(&text).expect("valid");
    let mut station = Station::new(
        site.clone(),
        Options::default(),
        relays(&site),
        Box::new(Sequence(0)),
        t(0.0),
    );
    station.settle(&mut |_| {});
    let n = from_ups(Event::LowBattery, "lowBattery");
    station.handle_notification(t(1.0), &n);
    let mut sent = Vec::new();
    while station.has_records() || station.transmits_waiting() > 0 {
        while station.poll_record().is_some() {}
        station.drain_transmits(|tx, bytes| {
            if let Purpose::Order { recorder, .. } = tx.purpose {
                sent.push((recorder, bytes.to_vec()));
            }
        });
    }
    assert_eq!(sent.len(), site.recorders.len(), "every recorder told");
    let arena = bumpalo::Bump::new();
    for (r, bytes) in &sent {
        let m = crate::wire::Message::parse(bytes, &arena).expect("decodes");
        assert_eq!(
            m.community,
            site.recorders[*r].community.as_bytes(),
            "{}",
            site.recorders[*r].name
        );
    }
    // Those of one community are the same bytes.
    let of = |name: &str| {
        &sent
            .iter()
            .find(|(r, _)| site.recorders[*r].name == name)
            .unwrap()
            .1
    };
    assert_eq!(of("nvr-244"), of("nvr-last"));
    assert_ne!(of("nvr-244"), of("nvr-other"));
}

// --- A pair of gateways ------------------------------------------------------------

const PEER: &str = "192.0.2.2:1620";

/// The records of `w`'s journal the pair's actor ships (`ships`), as it would.
fn shipped(w: &World) -> Vec<Record> {
    w.seen
        .journal
        .iter()
        .filter(|(_, r)| ships(r))
        .map(|(_, r)| r.clone())
        .collect()
}

/// Hands `records` to the standby at `s`, in datagram 1.
fn from_actor(w: &mut World, s: f64, records: Vec<Record>) {
    w.to(s);
    for r in records {
        assert!(
            w.station
                .handle_peer_record(t(s), PEER.parse().unwrap(), 1, "made".into(), r),
            "a record an actor ships is taken"
        );
    }
    w.act();
}

#[test]
fn a_standby_decides_and_journals_the_outage_and_sends_no_order_nor_re_send() {
    let mut w = World::new(site(false));
    w.station.demote(t(1.0), "does not hold the address");
    w.trap(5.0, Event::LowBattery, "lowBattery");
    w.to(400.0);
    assert!(w.seen.orders.is_empty(), "{:?}", w.seen.orders);
    let shown = w.shown();
    for nvr in ["nvr-244", "nvr-251"] {
        assert!(
            shown
                .iter()
                .any(|l| l.contains("ShutdownRecorder") && l.contains(nvr)),
            "the standby decides as the actor does: {shown:#?}"
        );
    }
    assert!(
        !shown.iter().any(|l| l.contains("\"action\":\"Sent\"")),
        "{shown:#?}"
    );
}

#[test]
fn a_promoted_standby_tells_at_once_only_who_it_does_not_know_acknowledged() {
    // The actor: the outage, nvr-251 acknowledges, nvr-244 does not.
    let mut actor = World::new(site(false));
    actor.trap(5.0, Event::LowBattery, "lowBattery");
    actor.ack(6.0, NVR_251);
    let records = shipped(&actor);
    assert!(
        records
            .iter()
            .any(|r| matches!(r, Record::Decision(Decided::Acknowledged { .. }))),
        "{records:?}"
    );
    // The standby hears the same trap and takes what the actor shipped.
    let mut standby = World::new(site(false));
    standby.station.demote(t(1.0), "standby");
    standby.trap(5.0, Event::LowBattery, "lowBattery");
    from_actor(&mut standby, 6.5, records);
    assert!(standby.seen.orders.is_empty());
    let journaled: Vec<String> = standby.shown();
    assert!(
        journaled
            .iter()
            .any(|l| l.contains("FromPeer") && l.contains("Acknowledged") && l.contains("nvr-251")),
        "{journaled:#?}"
    );
    // The actor dies; the standby takes the address at 8 s.
    let told = standby.station.promote(t(8.0), "the address came");
    standby.act();
    assert_eq!(told, 1);
    assert_eq!(standby.seen.orders, [(t(8.0), NVR_244, 2)]);
    // Its re-sends go on from there; nvr-251 is never told.
    standby.to(400.0);
    assert!(standby.seen.orders.iter().all(|(_, r, _)| *r == NVR_244));
    assert!(standby.seen.orders.len() > 2, "{:?}", standby.seen.orders);
}

#[test]
fn a_promoted_standby_that_missed_the_trap_tells_what_the_actor_decided() {
    let mut actor = World::new(site(false));
    actor.trap(5.0, Event::LowBattery, "lowBattery");
    let records = shipped(&actor);
    // The trap never reached the standby; the actor's orders did.
    let mut standby = World::new(site(false));
    standby.station.demote(t(1.0), "standby");
    from_actor(&mut standby, 5.1, records);
    assert!(standby.seen.orders.is_empty());
    standby.station.promote(t(9.0), "the address came");
    standby.act();
    let mut told: Vec<RecorderId> = standby.seen.orders.iter().map(|(_, r, _)| *r).collect();
    told.sort();
    assert_eq!(told, [NVR_244, NVR_251]);
}

#[test]
fn what_no_actor_ships_is_refused_and_changes_nothing() {
    let mut w = World::new(site(false));
    w.station.demote(t(1.0), "standby");
    w.to(2.0);
    let before = w.seen.journal.len();
    // A forged peer record that would start an outage, or move the policy.
    for r in [
        Record::Input(Input::Event {
            source: UPS.parse().unwrap(),
            ups: Some("ups-main".into()),
            recorder: None,
            community: "public".into(),
            security_level: None,
            event: Event::LowBattery,
            rule: "lowBattery".into(),
            index: None,
        }),
        Record::Decision(Decided::PowerBack {
            ups: "ups-main".into(),
        }),
        Record::Decision(Decided::Alert {
            ups: Some("ups-main".into()),
            recorder: None,
            outlet: None,
            kind: AlertKind::OnBattery,
            reason: "forged".into(),
        }),
        Record::Action(Action::FromPeer {
            peer: PEER.parse().unwrap(),
            seq: 1,
            made: "x".into(),
            record: Box::new(Record::Decision(Decided::Acknowledged {
                recorder: "nvr-244".into(),
            })),
        }),
    ] {
        assert!(
            !w.station
                .handle_peer_record(t(2.0), PEER.parse().unwrap(), 1, "x".into(), r)
        );
    }
    w.act();
    assert_eq!(w.seen.journal.len(), before);
    w.station.promote(t(3.0), "the address came");
    w.trap(4.0, Event::LowBattery, "lowBattery");
    assert_eq!(
        w.seen.orders.len(),
        2,
        "an outage as ever: {:?}",
        w.seen.orders
    );
}

#[test]
fn a_restarted_standby_keeps_what_its_peer_shipped() {
    let mut actor = World::new(site(true));
    actor.trap(10.0, Event::OnBattery, "upsOnBattery");
    actor.trap(200.0, Event::LowBattery, "lowBattery");
    actor.to(206.0);
    actor.ack(207.0, NVR_251);
    let records = shipped(&actor);
    let mut standby = World::new(site(true));
    standby.station.demote(t(1.0), "standby");
    standby.trap(10.0, Event::OnBattery, "upsOnBattery");
    standby.trap(200.0, Event::LowBattery, "lowBattery");
    from_actor(&mut standby, 208.0, records);
    standby.to(209.0);
    // The standby restarts from its journal, then takes the address.
    let mut w = restored(&standby.seen.journal, t(210.0));
    w.station.resumed(t(210.0));
    w.station.promote(t(210.0), "the address came");
    w.act();
    w.to(215.0);
    let told: Vec<RecorderId> = w.seen.orders.iter().map(|(_, r, _)| *r).collect();
    assert!(
        !told.contains(&NVR_251),
        "acknowledged to the actor: {told:?}"
    );
    assert!(told.contains(&NVR_244), "{told:?}");
}

/// A driver takes the records as a whole: into an empty buffer the queue changes hands
/// (the buffer's room comes back to the station), into one that holds records they go
/// after them; every record once, in order, with whether one is to be fsync'd at once.
#[test]
fn records_are_taken_whole_in_order_with_whether_one_needs_its_sync() {
    let site = site(false);
    let relays = relays(&site);
    let mut s = Station::new(
        site,
        Options::default(),
        relays,
        Box::new(Sequence(0)),
        t(0.0),
    );
    let decision = Record::site_alert;
    let done = Record::Action(Action::Back {
        recorder: "nvr-244".into(),
        after_s: 1.0,
        late: false,
    });
    let mut taken: Vec<(Timestamp, Record)> = Vec::with_capacity(64);
    let room = taken.capacity();
    s.note(t(1.0), done.clone());
    assert!(
        !s.take_records(&mut taken),
        "an action needs no sync of its own"
    );
    assert_eq!(taken, vec![(t(1.0), done.clone())]);
    s.note(t(2.0), decision("a"));
    s.note(t(3.0), done.clone());
    assert!(s.take_records(&mut taken), "a decision among them");
    assert_eq!(
        taken,
        vec![
            (t(1.0), done.clone()),
            (t(2.0), decision("a")),
            (t(3.0), done.clone())
        ]
    );
    assert!(
        !s.take_records(&mut taken) && taken.len() == 3,
        "nothing new, no sync"
    );
    // Shown and emptied by the driver: the next records change hands with the queue.
    taken.clear();
    for i in 0..10 {
        s.note(t(4.0), decision(&format!("tier {i}")));
    }
    assert!(s.take_records(&mut taken));
    assert_eq!(taken.len(), 10);
    assert!(
        taken
            .iter()
            .enumerate()
            .all(|(i, (_, r))| *r == decision(&format!("tier {i}")))
    );
    assert!(!s.has_records());
    // The buffer handed back is the station's queue now: it takes records as before.
    for _ in 0..room {
        s.note(t(5.0), done.clone());
    }
    let mut again = Vec::new();
    assert!(!s.take_records(&mut again), "the sync was reset when taken");
    assert_eq!(again.len(), room);
    // One taken by `poll_record` to the last resets it too.
    s.note(t(6.0), decision("b"));
    assert!(s.poll_record().is_some());
    assert!(!s.take_records(&mut again));
}
