//! The whole station at scale, on a virtual clock (no socket, no sleep).
//!
//! - A full outage of a site of 200 UPSes and 5,000 recorders (3 tiers): every UPS on
//!   battery, each tier's grace ending (every order encoded and taken as sent), every
//!   recorder acknowledging, every UPS low on battery, mains back, every recorder heard
//!   from again. Timed per input and per recorder, with and without writing each record
//!   as a journal line (`record::write_line`, as the gateway does before it fsyncs).
//! - The fan-out's CPU: one UPS with 5,000 recorders; a lowBattery trap, until every
//!   order is encoded and every decision is a journal line: what the decision thread
//!   does between the trap and `sendmmsg` (`tools/fanout` measures it on loopback); and
//!   the same after 300 ms asleep, as a gateway meets its trap.
//!
//! Run: `cargo bench --bench station` (without `--bench`, one quick pass that checks the
//! outage went as it should).

use std::hint::black_box;
use std::net::IpAddr;
use std::time::Instant;

use trapgate::classify::Event;
use trapgate::engine::config::Site;
use trapgate::engine::id::{RecorderId, UpsId};
use trapgate::engine::poller::Sequence;
use trapgate::engine::record::{self, Action, Decided, Record};
use trapgate::engine::station::{Happened, Notification, Options, Purpose, Relays, Station};
use trapgate::engine::trust::Who;
use trapgate::time::Timestamp;

fn at(s: u64) -> Timestamp {
    Timestamp(1_700_000_000_000_000_000 + s * 1_000_000_000)
}

/// `upses` UPSes with `per_ups` recorders each, tiers 1–3 (one tier only if `one_tier`).
fn site(upses: usize, per_ups: usize, one_tier: bool) -> Site {
    let mut t = String::from(
        "[gateway]\nlisten = [\"127.0.0.1:1162\"]\nagent = \"127.0.0.1:1161\"\ncommunity = \"public\"\n\n\
         [policy]\ngrace = { 1 = \"10m\", 2 = \"5m\", 3 = \"2m\" }\nshutdown_below_charge = 30\n\
         shutdown_below_runtime = \"5m\"\nconfirm_by_poll = false\n\n",
    );
    for u in 0..upses {
        t.push_str(&format!(
            "[[ups]]\nname = \"ups-{u}\"\naddress = \"127.20.{}.{}\"\nvendor = \"apc\"\npoll_interval = \"10s\"\noutlet_off_delay = \"5m\"\n\n",
            u / 250,
            u % 250 + 1
        ));
    }
    for r in 0..upses * per_ups {
        t.push_str(&format!(
            "[[recorder]]\nname = \"nvr-{r}\"\naddress = \"127.21.{}.{}\"\nups = \"ups-{}\"\ntier = {}\nshutdown_time = \"90s\"\nboot_time = \"5m\"\n\n",
            r / 250,
            r % 250 + 1,
            r / per_ups,
            if one_tier { 1 } else { r % 3 + 1 }
        ));
    }
    Site::parse(&t).expect("the generated site parses")
}

fn relays(site: &Site) -> Relays {
    site.recorders
        .iter()
        .map(|r| ((r.address, r.port).into(), [127, 0, 0, 1]))
        .collect()
}

/// What went by: records, orders, and the journal's bytes if lines are written.
#[derive(Default, Clone, Copy)]
struct Tally {
    records: usize,
    orders: usize,
    acknowledged: usize,
    back: usize,
    journal_bytes: usize,
}

struct Run {
    station: Station,
    tally: Tally,
    line: Vec<u8>,
    journal: bool,
    /// Recorders told since the last look (to acknowledge).
    told: Vec<RecorderId>,
    inputs: usize,
}

impl Run {
    fn new(site: &Site, journal: bool) -> Run {
        let station = Station::new(
            site.clone(),
            Options::default(),
            relays(site),
            Box::new(Sequence(1)),
            at(0),
        );
        let mut run = Run {
            station,
            tally: Tally::default(),
            line: Vec::with_capacity(4096),
            journal,
            told: Vec::new(),
            inputs: 0,
        };
        run.settle();
        run.tally = Tally::default();
        run
    }

    fn settle(&mut self) {
        let mut each = watch(
            &mut self.tally,
            &mut self.line,
            self.journal,
            &mut self.told,
        );
        self.station.settle(&mut each);
    }

    fn to(&mut self, s: u64) {
        let mut each = watch(
            &mut self.tally,
            &mut self.line,
            self.journal,
            &mut self.told,
        );
        self.station.run_to(at(s), &mut each);
    }

    fn notify(&mut self, s: u64, who: Who, source: IpAddr, event: Event, rule: &str) {
        let n = Notification {
            who,
            source,
            community: b"public",
            v3: None,
            event,
            rule,
            index: None,
        };
        self.station.handle_notification(at(s), &n);
        self.inputs += 1;
        self.settle();
    }

    /// Every recorder told since the last call acknowledges at `s`.
    fn acknowledge(&mut self, s: u64) {
        let told = std::mem::take(&mut self.told);
        for r in told {
            let source = self.station.site().recorders[r].address;
            self.notify(
                s,
                Who::Recorder(r),
                source,
                Event::RecorderAck,
                "recorderAck",
            );
        }
    }

    fn each_ups(&mut self, s: u64, event: Event, rule: &str) {
        for u in UpsId::all(self.station.site().upses.len()) {
            let source = self.station.site().upses[u].address;
            self.notify(s, Who::Ups(u), source, event, rule);
        }
    }
}

/// What a driver does with what the station gives: counts it, writes each record as
/// a journal line if `journal`, notes who was told.
fn watch<'a>(
    tally: &'a mut Tally,
    line: &'a mut Vec<u8>,
    journal: bool,
    told: &'a mut Vec<RecorderId>,
) -> impl FnMut(Happened<'_>) + 'a {
    move |h| match h {
        Happened::Record(t, r) => {
            tally.records += 1;
            match &r {
                Record::Decision(Decided::Acknowledged { .. }) => tally.acknowledged += 1,
                Record::Action(Action::Back { .. }) => tally.back += 1,
                _ => {}
            }
            if journal {
                record::write_line(t, &r, line);
                tally.journal_bytes += line.len();
            }
            black_box(&r);
        }
        Happened::Sent {
            transmit, bytes, ..
        } => {
            if let Purpose::Order { recorder, .. } = transmit.purpose {
                tally.orders += 1;
                told.push(recorder);
            }
            black_box(bytes);
        }
        Happened::Command { .. } => tally.orders += 1,
    }
}

/// One full outage; the tally of what went by, and the inputs handled.
fn outage(site: &Site, journal: bool) -> (Tally, usize, f64) {
    let mut run = Run::new(site, journal);
    let started = Instant::now();
    run.each_ups(1, Event::OnBattery, "upsOnBattery");
    // Tier 3's grace ends at +2 min, tier 2's at +5 min: told, each acknowledging.
    run.to(125);
    run.acknowledge(126);
    run.to(305);
    run.acknowledge(306);
    run.each_ups(400, Event::LowBattery, "lowBattery");
    run.acknowledge(401);
    run.each_ups(500, Event::PowerRestored, "upsOnline");
    // Every recorder heard from again once back up.
    run.to(570);
    for r in RecorderId::all(run.station.site().recorders.len()) {
        run.station.handle_seen(at(600), r);
        run.inputs += 1;
        run.settle();
    }
    run.to(700);
    let ns = started.elapsed().as_nanos() as f64;
    (run.tally, run.inputs, ns)
}

/// The fan-out: a lowBattery trap for one UPS with `site`'s recorders, until every order
/// is encoded (and, with `journal`, every decision a journal line). Nanoseconds. With
/// `idle`, the thread sleeps 300 ms before the trap, as a gateway that waited for it
/// does: on a shared machine, what the fan-out reads has left the caches by then (filling
/// the caches with other memory instead costs little: this thread's caches are not what
/// is lost).
fn fan_out(site: &Site, journal: bool, idle: bool) -> (Tally, f64) {
    let mut run = Run::new(site, journal);
    run.notify(
        1,
        Who::Ups(UpsId(0)),
        site.upses[0].address,
        Event::OnBattery,
        "upsOnBattery",
    );
    run.tally = Tally::default();
    if idle {
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let started = Instant::now();
    run.notify(
        2,
        Who::Ups(UpsId(0)),
        site.upses[0].address,
        Event::LowBattery,
        "lowBattery",
    );
    (run.tally, started.elapsed().as_nanos() as f64)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let big = site(200, 25, false);
    let recorders = big.recorders.len();
    let rounds = if quick { 1 } else { 11 };

    let (mut bare, mut lines) = (Vec::new(), Vec::new());
    let (mut tally, mut inputs) = (Tally::default(), 0);
    for _ in 0..rounds {
        // Side by side, alternating, so a slow spell falls on both.
        let (t, n, ns) = outage(&big, false);
        bare.push(ns);
        (tally, inputs) = (t, n);
        let (t, _, ns) = outage(&big, true);
        lines.push(ns);
        tally.journal_bytes = t.journal_bytes;
    }
    assert_eq!(tally.acknowledged, recorders, "every recorder acknowledged");
    assert_eq!(tally.back, recorders, "every recorder back");
    assert!(tally.orders >= recorders, "every recorder told");

    let one = site(1, 5000, true);
    let (mut fan_bare, mut fan_lines, mut fan_idle) = (Vec::new(), Vec::new(), Vec::new());
    let mut fan = Tally::default();
    for _ in 0..rounds {
        let (t, ns) = fan_out(&one, false, false);
        fan_bare.push(ns);
        fan = t;
        let (t, ns) = fan_out(&one, true, false);
        fan_lines.push(ns);
        fan.journal_bytes = t.journal_bytes;
        let (t, ns) = fan_out(&one, false, !quick);
        fan_idle.push(ns);
        assert_eq!(
            t.orders, fan.orders,
            "every recorder told after the wait too"
        );
    }
    assert_eq!(fan.orders, 5000, "every recorder of the UPS told");

    // The status page's snapshot of the big site (what the decision thread builds for
    // /status.json, twice a second while the endpoint is on), made and written out.
    let status_of = Station::new(
        big.clone(),
        Options::default(),
        relays(&big),
        Box::new(Sequence(1)),
        at(0),
    );
    let (mut copied, mut made) = (Vec::new(), Vec::new());
    let mut status_bytes = 0;
    for _ in 0..rounds {
        // On the decision thread: the copy; on the endpoint's: the JSON.
        let t = Instant::now();
        let rows = std::hint::black_box(status_of.status_rows(0));
        copied.push(t.elapsed().as_nanos() as f64);
        let t = Instant::now();
        let text = rows.to_json().to_string();
        made.push(t.elapsed().as_nanos() as f64);
        status_bytes = std::hint::black_box(text.len());
    }
    assert!(status_bytes > recorders * 50, "a row per recorder");

    if quick {
        println!(
            "station bench: {inputs} inputs, {} records, {} orders; run `cargo bench --bench station` to measure",
            tally.records, tally.orders
        );
        return;
    }
    let (b, l) = (median(&mut bare), median(&mut lines));
    println!(
        "site: 200 UPSes, {recorders} recorders, 3 tiers; a full outage = {inputs} inputs, {} records, {} orders ({} journal bytes); medians of {rounds} runs",
        tally.records, tally.orders, tally.journal_bytes
    );
    println!(
        "  station alone:         {:.2} ms; per input {:.2} µs; per recorder {:.2} µs",
        b / 1e6,
        b / inputs as f64 / 1e3,
        b / recorders as f64 / 1e3
    );
    println!(
        "  with journal lines:    {:.2} ms; per input {:.2} µs; per recorder {:.2} µs",
        l / 1e6,
        l / inputs as f64 / 1e3,
        l / recorders as f64 / 1e3
    );
    println!(
        "status snapshot of {recorders} recorders: copied on the decision thread {:.3} ms; its /status.json ({status_bytes} bytes) made on the endpoint's thread {:.2} ms",
        median(&mut copied) / 1e6,
        median(&mut made) / 1e6
    );
    let (fb, fl) = (median(&mut fan_bare), median(&mut fan_lines));
    println!(
        "fan-out: one lowBattery trap, 5000 recorders of one UPS: {} records, {} orders ({} journal bytes)",
        fan.records, fan.orders, fan.journal_bytes
    );
    println!(
        "  decided and encoded:   {:.2} ms ({:.2} µs per recorder); with journal lines {:.2} ms ({:.2} µs per recorder)",
        fb / 1e6,
        fb / 5000.0 / 1e3,
        fl / 1e6,
        fl / 5000.0 / 1e3
    );
    let fi = median(&mut fan_idle);
    println!(
        "  after 300 ms idle:     {:.2} ms ({:.2} µs per recorder), {:.2}× the run without the wait",
        fi / 1e6,
        fi / 5000.0 / 1e3,
        fi / fb
    );
}
