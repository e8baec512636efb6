//! What `trapgate decode` and `trapgate events` print: a Wireshark-like packet list,
//! JSON lines, and the summary of counts and drop reasons. Only for people and files;
//! nothing here runs on the hot path.

use crate::engine::tally::Counter;
use core::fmt::Write as _;

use serde_json::{Map, Value as Json, json};

use crate::classify::{Classification, Classifier, Event};
use crate::cli::commands::hex_id;
use crate::engine::pipeline::Counters;
use crate::engine::usm::UsmRefusal;
use crate::time::Timestamp;
use crate::wire::frame::Datagram;
use crate::wire::value::Octets;
use crate::wire::{ErrorKind, Message, NotificationOidBuf, Pdu, PduType, Value, VarBind};

/// Where and when a message was seen.
#[derive(Clone, Copy, Debug)]
pub struct Seen<'a> {
    /// Frame number in the capture.
    pub frame: u64,
    /// Capture time.
    pub time: Timestamp,
    /// Time of the capture's first frame (for the relative column).
    pub origin: Timestamp,
    /// Length of the frame on the wire (Wireshark's Length column).
    pub len: u32,
    /// The datagram.
    pub datagram: &'a Datagram<'a>,
}

fn endpoint(d: &Datagram<'_>, src: bool) -> String {
    let (ip, port) = if src {
        (d.src, d.src_port)
    } else {
        (d.dst, d.dst_port)
    };
    match ip {
        std::net::IpAddr::V4(a) => format!("{a}:{port}"),
        std::net::IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

fn generic_name(g: i64) -> &'static str {
    match g {
        0 => "coldStart",
        1 => "warmStart",
        2 => "linkDown",
        3 => "linkUp",
        4 => "authenticationFailure",
        5 => "egpNeighborLoss",
        6 => "enterpriseSpecific",
        _ => "unknown",
    }
}

fn varbind_text(c: &Classifier, vb: &VarBind<'_>, out: &mut String) {
    let name = c.name(vb.name);
    if name.is_known() {
        let _ = write!(out, "{} ({}) = {}", vb.name, name, vb.value);
    } else {
        let _ = write!(out, "{} = {}", vb.name, vb.value);
    }
}

/// The columns every line starts with, as Wireshark's packet list: number, time since
/// the first frame, source, destination, length.
fn columns(seen: &Seen<'_>) -> String {
    let mut s = String::with_capacity(200);
    let _ = write!(
        s,
        "{:>5} {:>12.6} {} → {} {:>4}",
        seen.frame,
        seen.time.since(seen.origin),
        endpoint(seen.datagram, true),
        endpoint(seen.datagram, false),
        seen.len
    );
    s
}

/// One line of the packet list for a decoded message.
pub fn message_line(c: &Classifier, seen: &Seen<'_>, msg: &Message<'_>) -> String {
    let mut s = columns(seen);
    match msg.v3 {
        // As Wireshark names a decrypted v3 message: its user, engine and level.
        Some(v3) => {
            let _ = write!(
                s,
                " v3 user {:?} engine {} {} {}",
                String::from_utf8_lossy(msg.community),
                hex_id(v3.header.engine_id),
                v3.level.name(),
                msg.pdu_type()
            );
        }
        None => {
            let _ = write!(
                s,
                " {} {:?} {}",
                msg.version.name(),
                String::from_utf8_lossy(msg.community),
                msg.pdu_type()
            );
        }
    }
    match &msg.pdu {
        Pdu::TrapV1(t) => {
            let [a, b, cc, d] = t.agent_addr;
            let _ = write!(
                s,
                " enterprise={} agent={a}.{b}.{cc}.{d} generic={}({}) specific={} uptime={}",
                t.enterprise,
                generic_name(t.generic_trap),
                t.generic_trap,
                t.specific_trap,
                t.time_stamp
            );
        }
        Pdu::Request(r) => {
            if r.kind == PduType::GET_BULK_REQUEST {
                let _ = write!(
                    s,
                    " id={} non-repeaters={} max-repetitions={}",
                    r.request_id, r.error_status, r.error_index
                );
            } else {
                let _ = write!(s, " id={}", r.request_id);
                if r.error_status != 0 || r.error_index != 0 {
                    let _ = write!(s, " error={}/{}", r.error_status, r.error_index);
                }
            }
        }
    }
    let mut scratch = NotificationOidBuf::default();
    if let Some(oid) = msg.notification_oid(&mut scratch) {
        let _ = write!(s, " trap={}", oid);
        let name = c.name(oid);
        if name.is_known() {
            let _ = write!(s, " ({name})");
        }
    }
    for vb in msg.varbinds() {
        s.push_str(" | ");
        varbind_text(c, vb, &mut s);
    }
    s
}

/// One line of the packet list for an SNMP datagram that did not decode.
pub fn malformed_line(seen: &Seen<'_>, err: &crate::wire::Error) -> String {
    let what = if err.kind == ErrorKind::UnsupportedV3 {
        "SNMPv3 (not decoded: v1 and v2c only)".to_string()
    } else {
        format!("MALFORMED: {err}")
    };
    let mut s = columns(seen);
    s.push(' ');
    s.push_str(&what);
    s
}

/// What a v3 message's header says, for one the security model did not open: its
/// user, engine ID and level, as Wireshark shows them before decryption.
fn v3_header(payload: &[u8]) -> String {
    match crate::wire::v3::Header::parse(payload) {
        Ok(h) => format!(
            "SNMPv3 user {:?}, engine {}, {}",
            String::from_utf8_lossy(h.user),
            hex_id(h.engine_id),
            h.level()
                .map_or("privacy without authentication", |l| l.name())
        ),
        Err(_) => "SNMPv3".to_string(),
    }
}

/// The line `trapgate decode` prints for a v3 message the security model refused.
pub fn refused_line(seen: &Seen<'_>, why: UsmRefusal) -> String {
    let mut s = columns(seen);
    s.push(' ');
    s.push_str(&v3_header(seen.datagram.payload));
    s.push_str(&format!(
        ": not opened ({}: {})",
        why.name(),
        why.sentence()
    ));
    s
}

/// The JSON line for a v3 message the security model refused.
pub fn refused_json(seen: &Seen<'_>, why: UsmRefusal) -> Json {
    let mut o = common(seen);
    o.insert("version".into(), json!("v3"));
    if let Ok(h) = crate::wire::v3::Header::parse(seen.datagram.payload) {
        o.insert("user".into(), json!(String::from_utf8_lossy(h.user)));
        o.insert("engine_id".into(), json!(hex_id(h.engine_id)));
        if let Some(l) = h.level() {
            o.insert("security_level".into(), json!(l.name()));
        }
    }
    o.insert("error".into(), json!(why.name()));
    o.insert("detail".into(), json!(why.sentence()));
    Json::Object(o)
}

/// A varbind value as JSON: numbers as numbers, text as text, other octets as hex.
fn value_json(v: &Value<'_>) -> (&'static str, Json) {
    match *v {
        Value::Integer(i) => ("INTEGER", json!(i)),
        Value::OctetString(s) => {
            let o = Octets(s);
            if o.is_text() {
                ("STRING", json!(o.to_string()))
            } else {
                ("Hex-STRING", json!(o.to_string()))
            }
        }
        Value::Null => ("NULL", Json::Null),
        Value::ObjectId(o) => ("OID", json!(o.to_string())),
        Value::IpAddress([a, b, c, d]) => ("IpAddress", json!(format!("{a}.{b}.{c}.{d}"))),
        Value::Counter32(n) => ("Counter32", json!(n)),
        Value::Gauge32(n) => ("Gauge32", json!(n)),
        Value::TimeTicks(n) => ("Timeticks", json!(n)),
        Value::Opaque(s) => ("Opaque", json!(Octets(s).to_string())),
        Value::Counter64(n) => ("Counter64", json!(n)),
        Value::NoSuchObject => ("noSuchObject", Json::Null),
        Value::NoSuchInstance => ("noSuchInstance", Json::Null),
        Value::EndOfMibView => ("endOfMibView", Json::Null),
        Value::Other(tag, s) => (
            "Other",
            json!(format!(
                "tag {:#04x}/{}: {}",
                tag.form,
                tag.number,
                Octets(s)
            )),
        ),
    }
}

fn varbinds_json(c: &Classifier, list: &[VarBind<'_>]) -> Json {
    Json::Array(
        list.iter()
            .map(|vb| {
                let (ty, value) = value_json(&vb.value);
                let name = c.name(vb.name);
                let mut o = Map::new();
                o.insert("oid".into(), json!(vb.name.to_string()));
                if name.is_known() {
                    o.insert("name".into(), json!(name.to_string()));
                }
                o.insert("type".into(), json!(ty));
                o.insert("value".into(), value);
                Json::Object(o)
            })
            .collect(),
    )
}

fn common(seen: &Seen<'_>) -> Map<String, Json> {
    let mut o = Map::new();
    o.insert("frame".into(), json!(seen.frame));
    o.insert("time".into(), json!(seen.time.utc().to_string()));
    let rel = (seen.time.since(seen.origin) * 1e6).round() / 1e6;
    o.insert("rel".into(), json!(rel));
    o.insert("src".into(), json!(endpoint(seen.datagram, true)));
    o.insert("dst".into(), json!(endpoint(seen.datagram, false)));
    o.insert("len".into(), json!(seen.len));
    o
}

/// The JSON line `trapgate decode --json` prints for a decoded message.
pub fn message_json(c: &Classifier, seen: &Seen<'_>, msg: &Message<'_>) -> Json {
    let mut o = common(seen);
    o.insert("version".into(), json!(msg.version.name()));
    match msg.v3 {
        Some(v3) => {
            o.insert("user".into(), json!(String::from_utf8_lossy(msg.community)));
            o.insert("engine_id".into(), json!(hex_id(v3.header.engine_id)));
            o.insert("security_level".into(), json!(v3.level.name()));
        }
        None => {
            o.insert(
                "community".into(),
                json!(String::from_utf8_lossy(msg.community)),
            );
        }
    }
    o.insert("pdu".into(), json!(msg.pdu_type().name()));
    match &msg.pdu {
        Pdu::TrapV1(t) => {
            let [a, b, cc, d] = t.agent_addr;
            o.insert("enterprise".into(), json!(t.enterprise.to_string()));
            o.insert("agent_addr".into(), json!(format!("{a}.{b}.{cc}.{d}")));
            o.insert("generic_trap".into(), json!(t.generic_trap));
            o.insert("specific_trap".into(), json!(t.specific_trap));
            o.insert("time_stamp".into(), json!(t.time_stamp));
        }
        Pdu::Request(r) => {
            o.insert("request_id".into(), json!(r.request_id));
            if r.kind == PduType::GET_BULK_REQUEST {
                o.insert("non_repeaters".into(), json!(r.error_status));
                o.insert("max_repetitions".into(), json!(r.error_index));
            } else {
                o.insert("error_status".into(), json!(r.error_status));
                o.insert("error_index".into(), json!(r.error_index));
            }
        }
    }
    let mut scratch = NotificationOidBuf::default();
    if let Some(oid) = msg.notification_oid(&mut scratch) {
        o.insert("trap_oid".into(), json!(oid.to_string()));
        let name = c.name(oid);
        if name.is_known() {
            o.insert("trap_name".into(), json!(name.to_string()));
        }
    }
    o.insert("varbinds".into(), varbinds_json(c, msg.varbinds()));
    Json::Object(o)
}

/// The JSON line `trapgate decode --json` prints for an SNMP datagram that did not decode.
pub fn malformed_json(seen: &Seen<'_>, err: &crate::wire::Error) -> Json {
    let mut o = common(seen);
    o.insert("error".into(), json!(err.kind.reason()));
    o.insert("offset".into(), json!(err.offset));
    o.insert("detail".into(), json!(err.to_string()));
    Json::Object(o)
}

/// The JSON line `trapgate events` prints for a classified notification.
pub fn event_json(
    c: &Classifier,
    seen: &Seen<'_>,
    msg: &Message<'_>,
    class: &Classification,
) -> Json {
    let mut o = Map::new();
    o.insert("time".into(), json!(seen.time.utc().to_string()));
    o.insert("frame".into(), json!(seen.frame));
    // The sender: a UPS, or for an acknowledgement the recorder.
    let who = if class.event == Event::RecorderAck {
        "recorder"
    } else {
        "ups"
    };
    o.insert(who.into(), json!(seen.datagram.src.to_string()));
    o.insert("event".into(), json!(class.event.name()));
    match class.rule.map(|i| c.rule(i)) {
        Some(r) => {
            o.insert("rule".into(), json!(r.name));
            o.insert("mib".into(), json!(r.mib));
        }
        None => {
            o.insert("rule".into(), Json::Null);
            o.insert("mib".into(), Json::Null);
        }
    }
    if let Some(a) = class.alarm.map(|i| c.alarm(i)) {
        o.insert("alarm".into(), json!(a.name));
    }
    let mut scratch = NotificationOidBuf::default();
    o.insert(
        "trap_oid".into(),
        msg.notification_oid(&mut scratch)
            .map(|t| json!(t.to_string()))
            .unwrap_or(Json::Null),
    );
    o.insert("version".into(), json!(msg.version.name()));
    o.insert("pdu".into(), json!(msg.pdu_type().name()));
    match msg.v3 {
        Some(v3) => {
            o.insert("user".into(), json!(String::from_utf8_lossy(msg.community)));
            o.insert("engine_id".into(), json!(hex_id(v3.header.engine_id)));
            o.insert("security_level".into(), json!(v3.level.name()));
        }
        None => {
            o.insert(
                "community".into(),
                json!(String::from_utf8_lossy(msg.community)),
            );
        }
    }
    if let Pdu::TrapV1(t) = &msg.pdu {
        let [a, b, cc, d] = t.agent_addr;
        o.insert("agent_addr".into(), json!(format!("{a}.{b}.{cc}.{d}")));
    }
    o.insert("varbinds".into(), varbinds_json(c, msg.varbinds()));
    Json::Object(o)
}

/// The summary as one JSON object: counts, and every non-zero drop reason.
pub fn summary_json(counters: &Counters, cut_short: Option<&str>) -> Json {
    let mut pdus = Map::new();
    for (i, n) in counters.pdus.iter().enumerate() {
        if *n > 0 {
            pdus.insert(PduType(i as u32).name().into(), json!(n));
        }
    }
    let mut events = Map::new();
    for e in Event::ALL {
        let n = counters.event(e);
        if n > 0 {
            events.insert(e.name().into(), json!(n));
        }
    }
    let mut drops = Map::new();
    for (reason, n) in counters.drops() {
        drops.insert(reason.into(), json!(n));
    }
    let mut o = Map::new();
    o.insert("frames".into(), json!(counters.frames));
    o.insert("snmp_messages".into(), json!(counters.messages()));
    o.insert("pdus".into(), Json::Object(pdus));
    o.insert("events".into(), Json::Object(events));
    o.insert("dropped".into(), Json::Object(drops));
    if let Some(c) = cut_short {
        o.insert("capture_cut_short".into(), json!(c));
    }
    json!({ "summary": Json::Object(o) })
}

/// The summary for people.
pub fn summary_text(counters: &Counters, cut_short: Option<&str>) -> String {
    let mut s = String::new();
    let (n, what) = if counters.frames > 0 {
        (counters.frames, "frames")
    } else {
        (counters.datagrams, "datagrams")
    };
    let _ = writeln!(
        s,
        "-- {n} {what}, {} SNMP messages decoded",
        counters.messages()
    );
    let pdus: Vec<String> = counters
        .pdus
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(i, n)| format!("{} {n}", PduType(i as u32).name()))
        .collect();
    if !pdus.is_empty() {
        let _ = writeln!(s, "   PDUs: {}", pdus.join(", "));
    }
    let events: Vec<String> = Event::ALL
        .iter()
        .filter(|e| counters.event(**e) > 0)
        .map(|e| format!("{} {}", e.name(), counters.event(*e)))
        .collect();
    if !events.is_empty() {
        let _ = writeln!(s, "   events: {}", events.join(", "));
    }
    let drops: Vec<String> = counters.drops().map(|(r, n)| format!("{r} {n}")).collect();
    if drops.is_empty() {
        let _ = writeln!(s, "   dropped: none");
    } else {
        let _ = writeln!(s, "   dropped: {}", drops.join(", "));
    }
    if let Some(c) = cut_short {
        let _ = writeln!(
            s,
            "   warning: the capture file appears to have been cut short ({c})"
        );
    }
    s
}

/// What `trapgate run` prints on stderr when it stops: everything in `stats`.
pub fn stop_summary(stats: &crate::engine::metrics::Stats, signal: i32) -> String {
    use core::fmt::Write as _;
    // SNMPv3 messages the security model did not open are refusals, on the line below
    // (a discovery probe, answered, is neither): not drops as well.
    let mut counters = stats.counters.clone();
    counters.usm = Default::default();
    let mut out = summary_text(&counters, None);
    let t = |c: Counter| stats.tallies.get(c);
    let kernel = stats
        .kernel_drops
        .map_or("unknown".to_string(), |n| n.to_string());
    let _ = writeln!(
        out,
        "   not from the site's UPSes or recorders: {}, truncated: {}, dropped by the kernel: {kernel}",
        t(Counter::Foreign),
        t(Counter::Truncated)
    );
    let refused: Vec<String> = stats
        .refused
        .nonzero()
        .map(|(r, n)| format!("{} {n}", r.name()))
        .collect();
    let _ = writeln!(
        out,
        "   refused: {}{}",
        stats.refused.total(),
        if refused.is_empty() {
            String::new()
        } else {
            format!(" ({})", refused.join(", "))
        }
    );
    if t(Counter::UsmReports) + t(Counter::UsmReportsHeld) > 0 {
        let _ = writeln!(
            out,
            "   SNMPv3 Reports sent: {} (discovery, time, wrong keys); held back by their limit: {}",
            t(Counter::UsmReports),
            t(Counter::UsmReportsHeld)
        );
    }
    let _ = writeln!(
        out,
        "   decisions: {}; orders sent: {} ({} resent); polls sent: {}; virtual UPS answers: {} ({} trimmed, {} too big); journal errors: {}; not shown: {} stdout, {} stderr; stopped by {}",
        t(Counter::Decisions),
        t(Counter::OrdersSent),
        t(Counter::Resends),
        t(Counter::PollsSent),
        t(Counter::AgentAnswers),
        t(Counter::AgentTrimmed),
        t(Counter::AgentTooBig),
        t(Counter::JournalErrors),
        t(Counter::StdoutDropped),
        t(Counter::StderrDropped),
        if signal == 0 {
            "its shutdown handle".to_string()
        } else {
            format!("signal {signal}")
        },
    );
    for t in &stats.forward {
        let _ = writeln!(
            out,
            "   forwarded to {}: sent {}, failed {}, dropped {}; informs acknowledged {}, unacknowledged {}",
            t.to, t.sent, t.failed, t.dropped, t.acknowledged, t.unacknowledged
        );
    }
    out.push_str(&stats.latency.summary_text());
    out.push_str(&stats.journal_sync.summary_text());
    out
}
