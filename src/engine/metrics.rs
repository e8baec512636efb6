//! What the gateway measures about itself: latency from a trap's arrival to its decision
//! being ready, per event kind, in hdrhistograms; and every counter, in the Prometheus
//! text exposition format (version 0.0.4) for a scraper, or as a summary for people.

use core::fmt::Write as _;
use std::borrow::Cow;

use hdrhistogram::Histogram;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet, prometheus_text};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::classify::Event;
use crate::engine::pipeline::Counters;
use crate::engine::station::Counts;
use crate::engine::station::StatusRows;
use crate::engine::tally::{Counter, Tallies};
use crate::engine::trust::{Refusal, Refusals};
use crate::wire::frame::FrameDrop;
use crate::wire::{ErrorKind, PduType};

/// Arrival → decision-ready latency, nanoseconds, one histogram per event kind; and
/// arrival → counted for what a worker decides alone (what the policy ignores, which
/// never reaches the decision thread).
///
/// A histogram of 1 ns to 60 s at 3 significant digits is 220 KB: a kind never seen
/// has none, so that the copies the decision thread takes twice a second (the workers'
/// shares, the metrics' snapshot) copy and zero only what was recorded. The hot path's
/// own (`preallocated`) has every one, so that a record never allocates.
#[derive(Debug)]
pub struct Latency {
    by_event: Vec<Option<Histogram<u64>>>,
    counted: Vec<Option<Histogram<u64>>>,
    fanout: Option<Histogram<u64>>,
}

impl Default for Latency {
    fn default() -> Self {
        Latency::new()
    }
}

/// A copy of what was recorded: an empty histogram, preallocated or not, is not copied.
impl Clone for Latency {
    fn clone(&self) -> Latency {
        let keep = |h: &Option<Histogram<u64>>| h.as_ref().filter(|h| !h.is_empty()).cloned();
        Latency {
            by_event: self.by_event.iter().map(keep).collect(),
            counted: self.counted.iter().map(keep).collect(),
            fanout: keep(&self.fanout),
        }
    }
}

/// An empty histogram: 1 ns to 60 s at 3 significant digits.
fn blank() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")
}

/// What `Latency::of` gives for a kind never recorded.
fn empty() -> &'static Histogram<u64> {
    static EMPTY: std::sync::OnceLock<Histogram<u64>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(blank)
}

impl Latency {
    /// Nothing recorded, nothing allocated: the first record of a kind allocates its
    /// histogram.
    pub fn new() -> Latency {
        Latency {
            by_event: vec![None; Event::ALL.len()],
            counted: vec![None; Event::ALL.len()],
            fanout: None,
        }
    }

    /// Every histogram allocated (their pages touched only as they are recorded into):
    /// recording never allocates. For the receive workers and the decision thread.
    pub fn preallocated() -> Latency {
        let h = blank();
        Latency {
            by_event: vec![Some(h.clone()); Event::ALL.len()],
            counted: vec![Some(h.clone()); Event::ALL.len()],
            fanout: Some(h),
        }
    }

    /// Records the time from the arrival of what caused shutdown orders to the last of
    /// them sent.
    pub fn record_fanout(&mut self, nanos: u64) {
        record(&mut self.fanout, nanos);
    }

    /// Arrival → shutdown orders sent.
    pub fn fanout(&self) -> &Histogram<u64> {
        self.fanout.as_ref().unwrap_or_else(|| empty())
    }

    /// Adds what `other` recorded (a worker's share) to this one.
    pub fn add(&mut self, other: &Latency) {
        let mine = self
            .by_event
            .iter_mut()
            .chain(self.counted.iter_mut())
            .chain(core::iter::once(&mut self.fanout));
        let theirs = other
            .by_event
            .iter()
            .chain(&other.counted)
            .chain(core::iter::once(&other.fanout));
        for (mine, theirs) in mine.zip(theirs) {
            if let Some(theirs) = theirs
                && !theirs.is_empty()
            {
                // Same bounds on both sides: adding cannot fail.
                let _ = mine.get_or_insert_with(blank).add(theirs);
            }
        }
    }

    /// Forgets everything recorded (the histograms keep their memory; one never
    /// recorded into is not touched).
    pub fn reset(&mut self) {
        let all = self
            .by_event
            .iter_mut()
            .chain(self.counted.iter_mut())
            .chain(core::iter::once(&mut self.fanout));
        for h in all.flatten() {
            if !h.is_empty() {
                h.reset();
            }
        }
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.by_event
            .iter()
            .chain(&self.counted)
            .chain(core::iter::once(&self.fanout))
            .flatten()
            .all(Histogram::is_empty)
    }

    /// Records one notification's latency; no allocation.
    #[inline]
    pub fn record(&mut self, event: Event, nanos: u64) {
        record(&mut self.by_event[event as usize], nanos);
    }

    /// Records the latency of one notification a worker decided alone (arrival →
    /// counted); no allocation.
    #[inline]
    pub fn record_counted(&mut self, event: Event, nanos: u64) {
        record(&mut self.counted[event as usize], nanos);
    }

    /// The histogram of one event kind.
    pub fn of(&self, event: Event) -> &Histogram<u64> {
        self.by_event[event as usize]
            .as_ref()
            .unwrap_or_else(|| empty())
    }

    /// The arrival → counted histogram of one event kind.
    pub fn counted_of(&self, event: Event) -> &Histogram<u64> {
        self.counted[event as usize]
            .as_ref()
            .unwrap_or_else(|| empty())
    }

    /// One line per event kind seen: count, p50, p99, p99.9, max, in microseconds (the
    /// arrival → counted ones named "counted").
    pub fn summary_text(&self) -> String {
        let mut s = String::new();
        let named = Event::ALL
            .iter()
            .map(|e| (Cow::Borrowed(e.name()), self.of(*e)))
            .chain(Event::ALL.iter().map(|e| {
                (
                    Cow::Owned(format!("{} counted", e.name())),
                    self.counted_of(*e),
                )
            }))
            .chain(core::iter::once((
                Cow::Borrowed("shutdown orders sent"),
                self.fanout(),
            )));
        for (name, h) in named {
            if h.is_empty() {
                continue;
            }
            let us = |q: f64| h.value_at_quantile(q) as f64 / 1e3;
            let _ = writeln!(
                s,
                "   latency {:<22} n={:<9} p50 {:>8.1} µs  p99 {:>8.1} µs  p99.9 {:>8.1} µs  max {:>8.1} µs",
                name,
                h.len(),
                us(0.5),
                us(0.99),
                us(0.999),
                h.max() as f64 / 1e3
            );
        }
        s
    }
}

/// The journal's syncs before acting (write what is buffered, `fdatasync`): how long
/// each took, and the largest in bytes, of all and of those orders waited for.
#[derive(Clone, Debug, Default)]
pub struct Syncs {
    times: Option<Histogram<u64>>,
    /// The most bytes one sync made durable, and how long it took (ns): at a large
    /// site's start, its `Started` record (the site's text).
    pub largest: (u64, u64),
    /// The same of the syncs orders waited for: a fan-out's decisions.
    pub largest_before_orders: (u64, u64),
    last: (u64, u64),
}

impl Syncs {
    /// One sync of `bytes` that took `nanos`.
    pub fn record(&mut self, bytes: u64, nanos: u64) {
        record(&mut self.times, nanos);
        if bytes >= self.largest.0 {
            self.largest = (bytes, nanos);
        }
        self.last = (bytes, nanos);
    }

    /// How many syncs so far.
    pub fn count(&self) -> u64 {
        self.times().len()
    }

    /// Orders waited for the syncs since there were `before` (`count`): the last of
    /// them, if any, is one a fan-out's time includes.
    pub fn orders_waited(&mut self, before: u64) {
        if self.count() > before && self.last.0 >= self.largest_before_orders.0 {
            self.largest_before_orders = self.last;
        }
    }

    /// How long they took.
    pub fn times(&self) -> &Histogram<u64> {
        self.times.as_ref().unwrap_or_else(|| empty())
    }

    /// The stop summary's line, if there was a sync.
    pub fn summary_text(&self) -> String {
        let h = self.times();
        if h.is_empty() {
            return String::new();
        }
        let ms = |ns: u64| ns as f64 / 1e6;
        format!(
            "   journal syncs n={:<9} p50 {:>8.3} ms  p99 {:>8.3} ms  max {:>8.3} ms; the largest {} bytes in {:.3} ms; before orders left, the largest {} bytes in {:.3} ms\n",
            h.len(),
            ms(h.value_at_quantile(0.5)),
            ms(h.value_at_quantile(0.99)),
            ms(h.max()),
            self.largest.0,
            ms(self.largest.1),
            self.largest_before_orders.0,
            ms(self.largest_before_orders.1)
        )
    }
}

/// Records `nanos` into `h`, allocated first if it is not (`Latency::preallocated` never
/// needs it).
#[inline]
fn record(h: &mut Option<Histogram<u64>>, nanos: u64) {
    h.get_or_insert_with(blank).saturating_record(nanos.max(1));
}

/// Everything the gateway counts and times, in one struct: `/metrics` serves it
/// (`Stats::prometheus`) and the stop summary prints it.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// The decode → classify counters (the receive workers').
    pub counters: Counters,
    /// What the station counted (its refusals are in `refused`, its plain counts in
    /// `tallies`; the NUT clients logged in now).
    pub station: Counts,
    /// Every plain count, named once (`crate::engine::tally`): the workers', the
    /// station's, forwarding's and the decision thread's, added up.
    pub tallies: Tallies,
    /// Datagrams not believed, by reason (`crate::engine::trust`): the workers' and
    /// the station's.
    pub refused: Refusals,
    /// The journal's syncs.
    pub journal_sync: Syncs,
    /// What the kernel dropped, where it tells.
    pub kernel_drops: Option<u64>,
    /// Arrival → decision ready, per event kind; arrival → last order sent.
    pub latency: Latency,
    /// TCP connections open now to the NUT and the NIS server.
    pub tcp_open: [u64; 2],
    /// TCP connections to the NUT and the NIS server closed as they came, for being too
    /// many.
    pub tcp_refused: [u64; 2],
    /// TCP connections to the NUT and the NIS server closed to make room for another
    /// (their address held its share, or the server was full: the oldest went).
    pub tcp_evicted: [u64; 2],
    /// TCP connections to the NUT and the NIS server closed for saying nothing.
    pub tcp_idle_closed: [u64; 2],
    /// What was forwarded to each `[[forward]]` target.
    pub forward: Vec<ForwardRow>,
}

/// One forward target's counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ForwardRow {
    /// The target as the site file wrote it.
    pub to: String,
    /// Datagrams sent to it.
    pub sent: u64,
    /// Datagrams the kernel refused to send to it.
    pub failed: u64,
    /// Notifications dropped for it (no room).
    pub dropped: u64,
    /// Informs it acknowledged.
    pub acknowledged: u64,
    /// Informs it never acknowledged.
    pub unacknowledged: u64,
}

impl Stats {
    /// Everything, in the Prometheus text format (version 0.0.4), with the site's state
    /// (`rows`: each UPS's gauges, the recorders by state) where there is one.
    pub fn prometheus(&self, rows: Option<&StatusRows>) -> String {
        exposition(self, rows)
    }
}

/// A label set.
type Labels = Vec<(&'static str, String)>;

/// A family of values made for one scrape: each label set's value, as it is.
#[derive(Debug)]
struct Values<T> {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    rows: Vec<(Labels, T)>,
}

impl Collector for Values<u64> {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut e = encoder.encode_descriptor(self.name, self.help, None, self.kind)?;
        for (labels, v) in &self.rows {
            let mut m = e.encode_family(labels)?;
            match self.kind {
                MetricType::Counter => m.encode_counter::<NoLabelSet, u64, f64>(v, None)?,
                _ => m.encode_gauge(&(*v as i64))?,
            }
        }
        Ok(())
    }
}

impl Collector for Values<f64> {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut e = encoder.encode_descriptor(self.name, self.help, None, self.kind)?;
        for (labels, v) in &self.rows {
            e.encode_family(labels)?.encode_gauge(v)?;
        }
        Ok(())
    }
}

/// One histogram per event: its buckets (not cumulative), sum and count, seconds.
#[derive(Debug)]
struct Histograms {
    name: &'static str,
    help: &'static str,
    rows: Vec<(Labels, Buckets)>,
}

/// One family of latency histograms by event: which of `Latency`'s, and the names and
/// helps of the histogram and of its p50, p99 and p99.9 gauges.
struct LatencyFamily {
    of: fn(&Latency, Event) -> &Histogram<u64>,
    names: [(&'static str, &'static str); 4],
}

const DECISION_LATENCY: LatencyFamily = LatencyFamily {
    of: Latency::of,
    names: [
        (
            "decision_latency_seconds",
            "Arrival to decision ready, by event",
        ),
        (
            "decision_latency_p50_seconds",
            "Arrival to decision ready, by event: the median since the start",
        ),
        (
            "decision_latency_p99_seconds",
            "Arrival to decision ready, by event: the 99th percentile since the start",
        ),
        (
            "decision_latency_p999_seconds",
            "Arrival to decision ready, by event: the 99.9th percentile since the start",
        ),
    ],
};

const COUNTED_LATENCY: LatencyFamily = LatencyFamily {
    of: Latency::counted_of,
    names: [
        (
            "counted_latency_seconds",
            "Arrival to counted on a receive worker, for what the policy ignores (it never reaches the decision thread), by event",
        ),
        (
            "counted_latency_p50_seconds",
            "Arrival to counted on a receive worker, by event: the median since the start",
        ),
        (
            "counted_latency_p99_seconds",
            "Arrival to counted on a receive worker, by event: the 99th percentile since the start",
        ),
        (
            "counted_latency_p999_seconds",
            "Arrival to counted on a receive worker, by event: the 99.9th percentile since the start",
        ),
    ],
};

/// Registers `family`'s histograms of `latency`, and the quantiles their buckets are too
/// coarse for as gauges (a summary's `quantile` label is for summaries alone).
fn latency_histograms(registry: &mut Registry, latency: &Latency, family: &LatencyFamily) {
    let l = |k: &'static str, v: &str| -> Labels { vec![(k, v.to_string())] };
    let mut quantiles: [Vec<(Labels, f64)>; 3] = Default::default();
    let mut histograms = Vec::new();
    for e in Event::ALL {
        let h = (family.of)(latency, e);
        for (rows, q) in quantiles.iter_mut().zip([0.5, 0.99, 0.999]) {
            rows.push((
                l("event", e.name()),
                crate::time::ns::as_secs_f64(h.value_at_quantile(q)),
            ));
        }
        histograms.push((l("event", e.name()), buckets(h)));
    }
    let [(name, help), gauges @ ..] = family.names;
    registry.register_collector(Box::new(Histograms {
        name,
        help,
        rows: histograms,
    }));
    for ((name, help), rows) in gauges.into_iter().zip(quantiles) {
        registry.register_collector(Box::new(Values {
            name,
            help,
            kind: MetricType::Gauge,
            rows,
        }));
    }
}

/// A histogram's buckets (upper bound, that bucket's own count), sum and count.
type Buckets = (Vec<(f64, u64)>, f64, u64);

impl Collector for Histograms {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut e = encoder.encode_descriptor(self.name, self.help, None, MetricType::Histogram)?;
        for (labels, (buckets, sum, count)) in &self.rows {
            e.encode_family(labels)?
                .encode_histogram::<NoLabelSet>(*sum, *count, buckets, None)?;
        }
        Ok(())
    }
}

/// The upper bounds of the latency histograms' buckets, seconds: 10 µs to 10 s.
const LATENCY_BUCKETS: [f64; 19] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A histogram of nanoseconds as Prometheus buckets (each bucket's own count), its sum
/// and count, in seconds.
fn buckets(h: &Histogram<u64>) -> Buckets {
    let mut out = Vec::with_capacity(LATENCY_BUCKETS.len());
    let mut below = 0u64;
    for le in LATENCY_BUCKETS {
        let upto = h.count_between(0, (le * 1e9) as u64);
        out.push((le, upto.saturating_sub(below)));
        below = upto;
    }
    let sum = h.mean() * h.len() as f64 / 1e9;
    (out, sum, h.len())
}

fn l(key: &'static str, value: impl Into<String>) -> Labels {
    vec![(key, value.into())]
}

fn exposition(stats: &Stats, rows: Option<&StatusRows>) -> String {
    let (counters, live, latency) = (&stats.counters, stats, &stats.latency);
    let mut registry = Registry::with_prefix("trapgate");
    let values = |kind: MetricType| {
        move |registry: &mut Registry,
              name: &'static str,
              help: &'static str,
              rows: Vec<(Labels, u64)>| {
            registry.register_collector(Box::new(Values {
                name,
                help,
                kind,
                rows,
            }));
        }
    };
    let (counter, gauge) = (values(MetricType::Counter), values(MetricType::Gauge));
    registry.register(
        "build",
        "The trapgate that runs: its version",
        Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
    );
    // Every datagram that reached trapgate: decoded or not, believed or not, dropped
    // for its source or cut by the receive buffer (those decoded only to be forwarded
    // are counted once).
    counter(
        &mut registry,
        "datagrams",
        "UDP datagrams received on the trap port, every one (dropped for their source included)",
        vec![(
            Labels::new(),
            counters.datagrams
                + live.tallies.get(Counter::Foreign)
                + live.tallies.get(Counter::Truncated)
                - live.tallies.get(Counter::ForeignDecoded),
        )],
    );
    let pdus = counters
        .pdus
        .iter()
        .enumerate()
        .map(|(i, n)| (l("pdu", PduType(i as u32).name()), *n))
        .collect();
    counter(
        &mut registry,
        "snmp_messages",
        "SNMP messages decoded, by PDU type",
        pdus,
    );
    let events = Event::ALL
        .iter()
        .map(|e| (l("event", e.name()), counters.event(*e)))
        .collect();
    counter(
        &mut registry,
        "events",
        "Notifications classified, by event",
        events,
    );
    let mut drops: Vec<(Labels, u64)> = FrameDrop::ALL
        .iter()
        .map(|d| (l("reason", d.reason()), counters.no_datagram[d.index()]))
        .chain(
            ErrorKind::ALL
                .iter()
                .map(|k| (l("reason", k.reason()), counters.malformed[k.index()])),
        )
        .collect();
    drops.push((l("reason", "udp_not_snmp_port"), counters.other_port));
    for c in [Counter::Foreign, Counter::Truncated] {
        drops.push((l("reason", c.name()), live.tallies.get(c)));
    }
    if let Some(k) = live.kernel_drops {
        drops.push((l("reason", "kernel_receive_buffer"), k));
    }
    counter(
        &mut registry,
        "dropped",
        "Packets dropped, by reason",
        drops,
    );
    let refused = Refusal::ALL
        .iter()
        .map(|r| (l("reason", r.name()), live.refused.get(*r)))
        .collect();
    counter(
        &mut registry,
        "refused",
        "Datagrams not believed, by reason: they move no decision",
        refused,
    );
    // Every plain count, from its one table (those shown as `dropped` reasons above
    // have no help of their own).
    for c in Counter::ALL.iter().filter(|c| !c.help().is_empty()) {
        counter(
            &mut registry,
            c.name(),
            c.help(),
            vec![(Labels::new(), live.tallies.get(*c))],
        );
    }
    let per_target = |f: fn(&ForwardRow) -> u64| -> Vec<(Labels, u64)> {
        live.forward
            .iter()
            .map(|t| (l("to", t.to.clone()), f(t)))
            .collect()
    };
    for (name, help, f) in [
        (
            "forwarded",
            "Datagrams forwarded, by [[forward]] target (informs sent again included)",
            (|t: &ForwardRow| t.sent) as fn(&ForwardRow) -> u64,
        ),
        (
            "forward_failed",
            "Datagrams the kernel refused to send to a [[forward]] target",
            |t| t.failed,
        ),
        (
            "forward_dropped",
            "Notifications not forwarded to a target for want of room: the forward thread behind, or its outstanding informs at their limit",
            |t| t.dropped,
        ),
        (
            "forward_informs_acknowledged",
            "Forwarded informs the target acknowledged",
            |t| t.acknowledged,
        ),
        (
            "forward_informs_unacknowledged",
            "Forwarded informs the target never acknowledged, every retry spent",
            |t| t.unacknowledged,
        ),
    ] {
        counter(&mut registry, name, help, per_target(f));
    }
    gauge(
        &mut registry,
        "nut_clients",
        "NUT clients logged in to the NUT server now",
        vec![(Labels::new(), live.station.nut_logged_in)],
    );
    gauge(
        &mut registry,
        "tcp_connections",
        "TCP connections open now, by server",
        vec![
            (l("server", "nut"), live.tcp_open[0]),
            (l("server", "nis"), live.tcp_open[1]),
        ],
    );
    for (name, help, v) in [
        (
            "tcp_connections_refused",
            "TCP connections closed as they came, for being too many, by server",
            live.tcp_refused,
        ),
        (
            "tcp_connections_evicted",
            "TCP connections closed to make room for another: their address held its share (16), or the server was full and theirs held the most, by server",
            live.tcp_evicted,
        ),
        (
            "tcp_connections_idle_closed",
            "TCP connections closed for saying nothing for the idle timeout (NUT 120 s, NIS 15 s), by server",
            live.tcp_idle_closed,
        ),
    ] {
        counter(
            &mut registry,
            name,
            help,
            vec![(l("server", "nut"), v[0]), (l("server", "nis"), v[1])],
        );
    }
    if let Some(p) = rows.and_then(|r| r.pair.as_ref().map(|p| (r, p))) {
        pair_metrics(&mut registry, p.0, p.1, &counter, &gauge);
    }
    if let Some(rows) = rows.filter(|r| !r.notify.is_empty()) {
        let per = |f: fn(&crate::engine::station::NotifyRow) -> u64| {
            rows.notify
                .iter()
                .map(|n| (vec![("target", n.target.clone())], f(n)))
                .collect::<Vec<_>>()
        };
        for (name, help, f) in [
            (
                "notify_sent",
                "Messages a [[notify]] target took",
                (|n| n.sent) as fn(&crate::engine::station::NotifyRow) -> u64,
            ),
            (
                "notify_dropped",
                "Records a [[notify]] target was never told: its queue full, or every try failed",
                |n| n.dropped,
            ),
            (
                "notify_failed",
                "Tries to tell a [[notify]] target that failed (a connection refused, a send or POST that failed)",
                |n| n.failed,
            ),
        ] {
            counter(&mut registry, name, help, per(f));
        }
        gauge(
            &mut registry,
            "notify_queued",
            "Records waiting for a [[notify]] target now",
            per(|n| n.queued),
        );
        gauge(
            &mut registry,
            "notify_connected",
            "1 while a [[notify]] target's connection is up (UDP: always; a webhook: its last POST was taken)",
            per(|n| n.connected as u64),
        );
    }
    if let Some(rows) = rows {
        site_gauges(&mut registry, rows);
    }
    for table in [&DECISION_LATENCY, &COUNTED_LATENCY] {
        latency_histograms(&mut registry, latency, table);
    }

    registry.register_collector(Box::new(Histograms {
        name: "fanout_seconds",
        help: "Arrival of what caused shutdown orders to the last of them sent",
        rows: vec![(Labels::new(), buckets(latency.fanout()))],
    }));
    registry.register_collector(Box::new(Histograms {
        name: "journal_sync_seconds",
        help: "The journal's syncs before acting: what was buffered written and fdatasync'd",
        rows: vec![(Labels::new(), buckets(stats.journal_sync.times()))],
    }));
    let mut text = String::with_capacity(16 * 1024);
    // Writing to a String cannot fail.
    let _ = prometheus_text::encode(&mut text, &registry);
    text
}

/// Each UPS's gauges and the recorders by state.
/// Registers a family of values (a counter's or a gauge's).
type Family = dyn Fn(&mut Registry, &'static str, &'static str, Vec<(Labels, u64)>);

/// A pair's role and channel.
fn pair_metrics(
    registry: &mut Registry,
    rows: &StatusRows,
    p: &crate::engine::station::PairRow,
    counter: &Family,
    gauge: &Family,
) {
    let one = |v: u64| vec![(Labels::new(), v)];
    gauge(
        registry,
        "pair_actor",
        "1 while this gateway of the pair holds its address and acts (orders, answers, commands), 0 while it is the standby",
        one(p.actor as u64),
    );
    gauge(
        registry,
        "pair_role_seconds",
        "Seconds this gateway has held its role (pair_actor)",
        one(rows.time.ns_since(p.since) / crate::time::ns::SECOND),
    );
    if let Some(a) = p.peer_actor {
        gauge(
            registry,
            "pair_peer_actor",
            "1 if the peer last said it acts, 0 if it said it is the standby",
            one(a as u64),
        );
    }
    if let Some(ms) = p.peer_heard_ms {
        gauge(
            registry,
            "pair_peer_heard_milliseconds",
            "Milliseconds since the peer was last heard on the pair channel (it says its role every second)",
            one(ms),
        );
    }
    for (name, help, v) in [
        (
            "pair_records_shipped",
            "Records shipped to the peer (orders sent, acknowledgements, commands' ends, outlets' answers)",
            p.shipped,
        ),
        (
            "pair_records_received",
            "Records of the peer's applied here",
            p.received,
        ),
        (
            "pair_datagrams_sent",
            "Datagrams sent to the peer, its hellos included",
            p.datagrams,
        ),
        (
            "pair_send_failed",
            "Datagrams to the peer the kernel would not send",
            p.send_failed,
        ),
    ] {
        counter(registry, name, help, one(v));
    }
    counter(
        registry,
        "pair_refused",
        "Datagrams on the pair socket not believed, by reason (bad_mac, replayed, stale, not_from_peer, ...)",
        p.refused
            .iter()
            .map(|(reason, n)| (vec![("reason", reason.to_string())], *n))
            .collect(),
    );
}

fn site_gauges(registry: &mut Registry, rows: &StatusRows) {
    let site = &rows.site;
    let ups = |i: usize| {
        vec![
            ("ups", site.upses[i].name.clone()),
            ("address", site.upses[i].address.to_string()),
        ]
    };
    let mut on_battery = Vec::new();
    let mut answering = Vec::new();
    let mut charge = Vec::new();
    let mut runtime = Vec::new();
    for (i, row) in rows.upses.iter().enumerate() {
        on_battery.push((ups(i), row.on_battery as u64));
        answering.push((ups(i), row.answering(&site.upses[i], rows.time) as u64));
        if let Some(c) = row.view.values.charge {
            charge.push((ups(i), f64::from(c)));
        }
        if let Some(r) = row.view.values.runtime {
            runtime.push((ups(i), f64::from(r.0)));
        }
    }
    for (name, help, rows) in [
        (
            "ups_on_battery",
            "1 if the UPS is on battery (its traps or its polls), else 0",
            on_battery,
        ),
        (
            "ups_answering",
            "1 if the UPS answered a poll lately (within three poll intervals, at least 30 s), else 0",
            answering,
        ),
    ] {
        registry.register_collector(Box::new(Values {
            name,
            help,
            kind: MetricType::Gauge,
            rows,
        }));
    }
    for (name, help, rows) in [
        (
            "ups_charge_percent",
            "The battery charge the UPS's last answer gave, percent (absent until it answers)",
            charge,
        ),
        (
            "ups_runtime_seconds",
            "The runtime left the UPS's last answer gave, seconds (absent until it answers)",
            runtime,
        ),
    ] {
        registry.register_collector(Box::new(Values {
            name,
            help,
            kind: MetricType::Gauge,
            rows,
        }));
    }
    let mut by_state = [0u64; 7];
    for s in &rows.standing {
        by_state[crate::engine::station::state_index(s)] += 1;
    }
    registry.register_collector(Box::new(Values {
        name: "recorders",
        help: "Recorders by where they stand: idle, told (not acknowledged yet), acknowledged, unacknowledged (the outlets went off first), returning, back, not_back",
        kind: MetricType::Gauge,
        rows: crate::engine::station::STATES
            .iter()
            .zip(by_state)
            .map(|(s, n)| (l("state", *s), n))
            .collect(),
    }));
    if !rows.outlets.is_empty() {
        let names = crate::engine::power::Stage::NAMES;
        let mut by_stage = [0u64; crate::engine::power::Stage::NAMES.len()];
        for o in &rows.outlets {
            if let Some(k) = names.iter().position(|n| *n == o.stage.name()) {
                by_stage[k] += 1;
            }
        }
        registry.register_collector(Box::new(Values {
            name: "outlets",
            help: "Outlets trapgate may cut, by where they stand: idle, due, reading, setting, checking, confirming (a SET's answer lost), armed (the card has the cycle), off (a PDU's, until mains), switching_on, not_cut, done",
            kind: MetricType::Gauge,
            rows: names.iter().zip(by_stage).map(|(s, n)| (l("state", *s), n)).collect(),
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sync_a_fan_out_waited_for_is_told_apart_from_the_starts() {
        let mut syncs = Syncs::default();
        // The start's record (a large site's text), no order waiting.
        let before = syncs.count();
        syncs.record(670_000, 3_000_000);
        assert_eq!(syncs.largest, (670_000, 3_000_000));
        // The fan-out's decisions, its orders waiting.
        let before_fan_out = syncs.count();
        assert_eq!(before_fan_out, before + 1);
        syncs.record(54_000, 900_000);
        syncs.orders_waited(before_fan_out);
        // Orders waiting but nothing synced since: the last sync is not theirs.
        let now = syncs.count();
        syncs.orders_waited(now);
        syncs.record(200, 100_000);
        syncs.orders_waited(now + 5);
        assert_eq!(syncs.largest_before_orders, (54_000, 900_000));
        assert_eq!(syncs.largest, (670_000, 3_000_000));
        let line = syncs.summary_text();
        assert!(
            line.contains("the largest 670000 bytes in 3.000 ms; before orders left, the largest 54000 bytes in 0.900 ms"),
            "{line}"
        );
    }

    #[test]
    fn a_copy_holds_only_what_was_recorded_and_adds_up() {
        let mut hot = Latency::preallocated();
        hot.record(Event::LowBattery, 2_000);
        hot.record_counted(Event::Informational, 3_000);
        let copy = hot.clone();
        let held = |l: &Latency| {
            l.by_event
                .iter()
                .chain(&l.counted)
                .chain(core::iter::once(&l.fanout))
                .filter(|h| h.is_some())
                .count()
        };
        assert_eq!(held(&hot), 2 * Event::ALL.len() + 1);
        assert_eq!(held(&copy), 2, "the two kinds recorded, nothing else");
        let mut sum = Latency::new();
        sum.add(&copy);
        sum.add(&hot);
        assert_eq!(held(&sum), 2);
        assert_eq!(sum.of(Event::LowBattery).len(), 2);
        assert_eq!(sum.counted_of(Event::Informational).len(), 2);
        assert!(sum.of(Event::OnBattery).is_empty());
        hot.reset();
        assert!(hot.is_empty());
        assert!(!sum.is_empty());
    }

    #[test]
    fn latency_quantiles_and_prometheus_text() {
        let mut l = Latency::new();
        for us in 1..=1000u64 {
            l.record(Event::LowBattery, us * 1000);
        }
        let h = l.of(Event::LowBattery);
        assert_eq!(h.len(), 1000);
        assert!((h.value_at_quantile(0.5) as f64 - 500_000.0).abs() < 1_000.0);
        let text = l.summary_text();
        assert!(
            text.contains("LowBattery") && text.contains("n=1000"),
            "{text}"
        );
        let mut c = Counters {
            datagrams: 3,
            ..Counters::default()
        };
        c.events[Event::LowBattery as usize] = 1;
        let mut stats = Stats {
            counters: c,
            kernel_drops: Some(0),
            latency: l,
            ..Stats::default()
        };
        stats.tallies.add(Counter::Foreign, 2);
        let p = stats.prometheus(None);
        for want in [
            // The two dropped for their source are datagrams received too.
            "trapgate_datagrams_total 5",
            "trapgate_events_total{event=\"LowBattery\"} 1",
            "trapgate_dropped_total{reason=\"source_not_in_site\"} 2",
            "trapgate_dropped_total{reason=\"kernel_receive_buffer\"} 0",
            "# TYPE trapgate_decision_latency_seconds histogram",
            "trapgate_decision_latency_seconds_count{event=\"LowBattery\"} 1000",
            // 1 µs to 1 ms, one per µs: 10 up to 10 µs, 500 up to 0.5 ms, all by 1 ms.
            "trapgate_decision_latency_seconds_bucket{event=\"LowBattery\",le=\"1e-05\"} 10",
            "trapgate_decision_latency_seconds_bucket{event=\"LowBattery\",le=\"0.0005\"} 500",
            "trapgate_decision_latency_seconds_bucket{event=\"LowBattery\",le=\"0.001\"} 1000",
            "trapgate_decision_latency_seconds_bucket{event=\"LowBattery\",le=\"+Inf\"} 1000",
            "trapgate_decision_latency_p50_seconds{event=\"LowBattery\"} 0.0005",
            "# TYPE trapgate_build_info gauge",
            concat!(
                "trapgate_build_info{version=\"",
                env!("CARGO_PKG_VERSION"),
                "\"} 1"
            ),
        ] {
            assert!(p.contains(want), "missing {want} in\n{p}");
        }
        // Every plain count is on /metrics: as its own counter, or as a reason of
        // `dropped`.
        for c in Counter::ALL {
            let want = if c.help().is_empty() {
                format!("reason=\"{}\"", c.name())
            } else {
                format!("trapgate_{}_total ", c.name())
            };
            assert!(
                p.contains(&want) || *c == Counter::ForeignDecoded,
                "{c:?}: missing {want} in\n{p}"
            );
        }
    }
}
