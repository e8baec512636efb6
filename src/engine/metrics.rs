//! What the gateway measures about itself: latency from a trap's arrival to its decision
//! being ready, per event kind, in hdrhistograms; and every counter, in the Prometheus
//! text exposition format (version 0.0.4) for a scraper, or as a summary for people.

use core::fmt::Write as _;

use hdrhistogram::Histogram;

use crate::classify::Event;
use crate::engine::pipeline::Counters;
use crate::engine::station::Counts;
use crate::engine::trust::{Refusal, Refusals};
use crate::wire::frame::FrameDrop;
use crate::wire::{ErrorKind, PduType};

/// Arrival → decision-ready latency, nanoseconds, one histogram per event kind.
#[derive(Clone, Debug)]
pub struct Latency {
    by_event: Vec<Histogram<u64>>,
    fanout: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Latency::new()
    }
}

impl Latency {
    /// Empty histograms: 1 ns to 60 s at 3 significant digits.
    pub fn new() -> Latency {
        let h = Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds");
        Latency {
            by_event: vec![h.clone(); Event::ALL.len()],
            fanout: h,
        }
    }

    /// Records the time from the arrival of what caused shutdown orders to the last of
    /// them sent.
    pub fn record_fanout(&mut self, nanos: u64) {
        self.fanout.saturating_record(nanos.max(1));
    }

    /// Arrival → shutdown orders sent.
    pub fn fanout(&self) -> &Histogram<u64> {
        &self.fanout
    }

    /// Adds what `other` recorded (a worker's share) to this one.
    pub fn add(&mut self, other: &Latency) {
        for (mine, theirs) in self.by_event.iter_mut().zip(&other.by_event) {
            if !theirs.is_empty() {
                // Same bounds on both sides: adding cannot fail.
                let _ = mine.add(theirs);
            }
        }
        if !other.fanout.is_empty() {
            let _ = self.fanout.add(&other.fanout);
        }
    }

    /// Forgets everything recorded (the histograms keep their memory).
    pub fn reset(&mut self) {
        self.by_event.iter_mut().for_each(Histogram::reset);
        self.fanout.reset();
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.fanout.is_empty() && self.by_event.iter().all(Histogram::is_empty)
    }

    /// Records one notification's latency; no allocation.
    #[inline]
    pub fn record(&mut self, event: Event, nanos: u64) {
        self.by_event[event as usize].saturating_record(nanos.max(1));
    }

    /// The histogram of one event kind.
    pub fn of(&self, event: Event) -> &Histogram<u64> {
        &self.by_event[event as usize]
    }

    /// One line per event kind seen: count, p50, p99, p99.9, max, in microseconds.
    pub fn summary_text(&self) -> String {
        let mut s = String::new();
        let named = Event::ALL
            .iter()
            .map(|e| (e.name(), self.of(*e)))
            .chain(core::iter::once(("shutdown orders sent", &self.fanout)));
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

/// Everything the gateway counts and times, in one struct: `/metrics` serves it
/// (`Stats::prometheus`) and the stop summary prints it.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// The decode → classify counters (the receive workers').
    pub counters: Counters,
    /// What the station counted: decisions, orders, polls, the virtual UPS's answers.
    pub station: Counts,
    /// Datagrams from addresses that are not the site's, dropped before decoding.
    pub foreign: u64,
    /// Datagrams cut by the receive buffer.
    pub truncated: u64,
    /// Datagrams not believed, by reason (`crate::engine::trust`): the workers' and
    /// the station's.
    pub refused: Refusals,
    /// What the kernel dropped, where it tells.
    pub kernel_drops: Option<u64>,
    /// Datagrams on the agent or poll socket that did not decode.
    pub malformed_elsewhere: u64,
    /// Datagrams that could not be sent, by the kernel's word.
    pub send_errors: u64,
    /// Journal appends and fsyncs that failed.
    pub journal_errors: u64,
    /// Lines not shown on stdout and on stderr (nobody read them fast enough).
    pub console_dropped: (u64, u64),
    /// Arrival → decision ready, per event kind; arrival → last order sent.
    pub latency: Latency,
    /// TCP connections open now to the NUT and the NIS server.
    pub tcp_open: [u64; 2],
    /// TCP connections to the NUT and the NIS server closed as they came, for being too
    /// many.
    pub tcp_refused: [u64; 2],
}

impl Stats {
    /// Everything, in the Prometheus text format.
    pub fn prometheus(&self) -> String {
        prometheus(self)
    }
}

fn prometheus(stats: &Stats) -> String {
    let (counters, live, latency) = (&stats.counters, stats, &stats.latency);
    let mut s = String::with_capacity(4096);
    let counter = |s: &mut String, name: &str, help: &str, rows: &[(String, u64)]| {
        let _ = writeln!(s, "# HELP trapgate_{name} {help}");
        let _ = writeln!(s, "# TYPE trapgate_{name} counter");
        for (labels, v) in rows {
            let _ = writeln!(s, "trapgate_{name}{labels} {v}");
        }
    };
    counter(
        &mut s,
        "datagrams_total",
        "UDP datagrams received.",
        &[(String::new(), counters.datagrams)],
    );
    let pdus: Vec<(String, u64)> = counters
        .pdus
        .iter()
        .enumerate()
        .map(|(i, n)| (format!("{{pdu=\"{}\"}}", PduType(i as u32).name()), *n))
        .collect();
    counter(
        &mut s,
        "snmp_messages_total",
        "SNMP messages decoded, by PDU type.",
        &pdus,
    );
    let events: Vec<(String, u64)> = Event::ALL
        .iter()
        .map(|e| (format!("{{event=\"{}\"}}", e.name()), counters.event(*e)))
        .collect();
    counter(
        &mut s,
        "events_total",
        "Notifications classified, by event.",
        &events,
    );
    let mut drops: Vec<(String, u64)> = FrameDrop::ALL
        .iter()
        .map(|d| {
            (
                format!("{{reason=\"{}\"}}", d.reason()),
                counters.no_datagram[d.index()],
            )
        })
        .chain(ErrorKind::ALL.iter().map(|k| {
            (
                format!("{{reason=\"{}\"}}", k.reason()),
                counters.malformed[k.index()],
            )
        }))
        .collect();
    drops.push(("{reason=\"udp_not_snmp_port\"}".into(), counters.other_port));
    drops.push(("{reason=\"source_not_in_site\"}".into(), live.foreign));
    drops.push(("{reason=\"datagram_truncated\"}".into(), live.truncated));
    if let Some(k) = live.kernel_drops {
        drops.push(("{reason=\"kernel_receive_buffer\"}".into(), k));
    }
    counter(
        &mut s,
        "dropped_total",
        "Packets dropped, by reason.",
        &drops,
    );
    counter(
        &mut s,
        "decisions_total",
        "Decisions made by the policy.",
        &[(String::new(), live.station.decisions)],
    );
    let refused: Vec<(String, u64)> = Refusal::ALL
        .iter()
        .map(|r| (format!("{{reason=\"{}\"}}", r.name()), live.refused.get(*r)))
        .collect();
    counter(
        &mut s,
        "refused_total",
        "Datagrams not believed, by reason: they move no decision.",
        &refused,
    );
    for (name, help, v) in [
        (
            "agent_answers_total",
            "Requests the virtual UPS answered.",
            live.station.agent_answers,
        ),
        (
            "agent_trimmed_total",
            "GetBulk answers cut to fewer repetitions to stay within the maximum message size.",
            live.station.agent_trimmed,
        ),
        (
            "agent_too_big_total",
            "Requests answered tooBig, or dropped because not even that fits.",
            live.station.agent_too_big,
        ),
        (
            "nut_lines_total",
            "NUT command lines the NUT server answered.",
            live.station.nut_lines,
        ),
        (
            "nut_lines_too_long_total",
            "NUT connections closed for a line past the protocol's limit.",
            live.station.nut_too_long,
        ),
        (
            "nis_requests_total",
            "apcupsd status requests the NIS server answered.",
            live.station.nis_requests,
        ),
        (
            "malformed_elsewhere_total",
            "Datagrams on the agent or poll socket that did not decode.",
            live.malformed_elsewhere,
        ),
        (
            "journal_errors_total",
            "Journal appends and fsyncs that failed (orders still go out).",
            live.journal_errors,
        ),
        (
            "stdout_dropped_total",
            "Records not shown on stdout because it was not read fast enough.",
            live.console_dropped.0,
        ),
        (
            "stderr_dropped_total",
            "Lines not shown on stderr because it was not read fast enough.",
            live.console_dropped.1,
        ),
        (
            "orders_sent_total",
            "Shutdown orders sent to recorders.",
            live.station.orders_sent,
        ),
        (
            "resends_total",
            "Orders sent again, unacknowledged.",
            live.station.resends,
        ),
        (
            "polls_sent_total",
            "Polls sent to UPSes.",
            live.station.polls_sent,
        ),
        (
            "poll_answers_total",
            "Answers believed: from the UPS's address and port, to an outstanding request id, with its community and the objects asked.",
            live.station.poll_answers,
        ),
        (
            "send_errors_total",
            "Datagrams the kernel refused to send.",
            live.send_errors,
        ),
    ] {
        counter(&mut s, name, help, &[(String::new(), v)]);
    }
    let _ = writeln!(
        s,
        "# HELP trapgate_nut_clients NUT clients logged in to the NUT server now.\n# TYPE trapgate_nut_clients gauge\ntrapgate_nut_clients {}",
        live.station.nut_logged_in
    );
    let _ = writeln!(
        s,
        "# HELP trapgate_tcp_connections TCP connections open now, by server.\n# TYPE trapgate_tcp_connections gauge\ntrapgate_tcp_connections{{server=\"nut\"}} {}\ntrapgate_tcp_connections{{server=\"nis\"}} {}",
        live.tcp_open[0], live.tcp_open[1]
    );
    counter(
        &mut s,
        "tcp_connections_refused_total",
        "TCP connections closed as they came, for being too many, by server.",
        &[
            ("{server=\"nut\"}".to_string(), live.tcp_refused[0]),
            ("{server=\"nis\"}".to_string(), live.tcp_refused[1]),
        ],
    );
    let _ = writeln!(
        s,
        "# HELP trapgate_decision_latency_seconds Arrival to decision ready, by event."
    );
    let _ = writeln!(s, "# TYPE trapgate_decision_latency_seconds summary");
    for e in Event::ALL {
        let h = latency.of(e);
        for q in [0.5, 0.99, 0.999] {
            let _ = writeln!(
                s,
                "trapgate_decision_latency_seconds{{event=\"{}\",quantile=\"{q}\"}} {:.9}",
                e.name(),
                crate::time::ns::as_secs_f64(h.value_at_quantile(q))
            );
        }
        let _ = writeln!(
            s,
            "trapgate_decision_latency_seconds_count{{event=\"{}\"}} {}",
            e.name(),
            h.len()
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let stats = Stats {
            counters: c,
            foreign: 2,
            kernel_drops: Some(0),
            latency: l,
            ..Stats::default()
        };
        let p = stats.prometheus();
        for want in [
            "trapgate_datagrams_total 3",
            "trapgate_events_total{event=\"LowBattery\"} 1",
            "trapgate_dropped_total{reason=\"source_not_in_site\"} 2",
            "trapgate_dropped_total{reason=\"kernel_receive_buffer\"} 0",
            "trapgate_decision_latency_seconds_count{event=\"LowBattery\"} 1000",
            "# TYPE trapgate_decision_latency_seconds summary",
        ] {
            assert!(p.contains(want), "missing {want} in\n{p}");
        }
    }
}
