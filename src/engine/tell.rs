//! Telling the site's other systems (`[[notify]]`), sans I/O: which records a target
//! takes, how severe each record is (one table), and each kind's message: an RFC 5424
//! syslog message, a webhook's JSON body, XProtect's generic-event line.
//!
//! The daemon (`crate::daemon::tell`) gives each target a queue and a thread of its own
//! and sends what these functions write.

use std::fmt::Write as _;
use std::net::SocketAddr;

use serde_json::Value as Json;

use crate::engine::record::{Action, AlertKind, Decided, Record};
use crate::time::Timestamp;

/// RFC 5424's severities, most severe first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// 0: the system is unusable.
    Emergency,
    /// 1: action must be taken at once.
    Alert,
    /// 2: critical.
    Critical,
    /// 3: an error.
    Error,
    /// 4: a warning.
    Warning,
    /// 5: normal but significant.
    Notice,
    /// 6: informational.
    Info,
    /// 7: debugging.
    Debug,
}

impl Severity {
    /// Every severity, by number.
    pub const ALL: [Severity; 8] = [
        Severity::Emergency,
        Severity::Alert,
        Severity::Critical,
        Severity::Error,
        Severity::Warning,
        Severity::Notice,
        Severity::Info,
        Severity::Debug,
    ];

    /// Its number (RFC 5424).
    pub fn code(self) -> u8 {
        self as u8
    }

    /// Its name, as syslog and the site file write it.
    pub fn name(self) -> &'static str {
        [
            "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
        ][self as usize]
    }

    /// The severity named `s`.
    pub fn parse(s: &str) -> Option<Severity> {
        Severity::ALL.iter().copied().find(|v| v.name() == s)
    }
}

/// What kind of record it is, for `match`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Category {
    /// A decision of the policy (an order, a cancel, an acknowledgement, power back).
    Decision,
    /// An alert: something a person must know.
    Alert,
    /// What the gateway did, done.
    Action,
    /// What the gateway did, failed (an order not sent, a recorder that never
    /// acknowledged or is not back, a command that failed, an outlet refused).
    Failure,
}

/// How severe a record is, and what it is; None: never told (inputs, checkpoints).
/// This is the one table: an order is a notice; a refused outlet command, a recorder
/// that did not shut down, a journal that cannot be written, a pair split are alerts.
pub fn classify(record: &Record) -> Option<(Severity, Category)> {
    use Category as C;
    use Severity as S;
    Some(match record {
        Record::Input(_) | Record::Snapshot(_) => return None,
        Record::Decision(d) => match d {
            Decided::ShutdownRecorder { .. } | Decided::ShutdownTier { .. } => {
                (S::Warning, C::Decision)
            }
            Decided::CancelShutdown { .. } => (S::Notice, C::Decision),
            Decided::PowerBack { .. } => (S::Notice, C::Decision),
            Decided::Acknowledged { .. } => (S::Notice, C::Decision),
            Decided::CycleOutlet { .. } => (S::Notice, C::Decision),
            Decided::PresentCharge { .. } | Decided::Poll { .. } => (S::Info, C::Decision),
            Decided::Alert { kind, .. } => (alert_severity(*kind), C::Alert),
        },
        Record::Action(a) => match a {
            Action::Sent { .. } | Action::SentBatch { .. } => (S::Notice, C::Action),
            Action::SendFailed { .. } => (S::Error, C::Failure),
            Action::NotAcknowledged { .. } => (S::Error, C::Failure),
            Action::NotBack { .. } => (S::Error, C::Failure),
            Action::Back { .. } => (S::Notice, C::Action),
            Action::CommandDone { ok: true, .. } => (S::Info, C::Action),
            Action::CommandDone { ok: false, .. } => (S::Error, C::Failure),
            Action::OutletAnswered { status, .. } if &**status != "noError" => {
                (S::Alert, C::Failure)
            }
            Action::OutletSet { .. }
            | Action::OutletAnswered { .. }
            | Action::OutletReported { .. } => (S::Notice, C::Action),
            Action::Started { .. } | Action::Reloaded { .. } | Action::Role { .. } => {
                (S::Notice, C::Action)
            }
            Action::Refused { .. } => (S::Warning, C::Action),
            Action::NotTold { .. } => (S::Warning, C::Failure),
            Action::WouldSend { .. }
            | Action::Presented { .. }
            | Action::OutletRead { .. }
            | Action::WakeSent { .. } => (S::Info, C::Action),
            Action::Polled { .. } | Action::Replied { .. } | Action::Forwarded { .. } => {
                (S::Debug, C::Action)
            }
            Action::FromPeer { record, .. } => return classify(record),
        },
    })
}

/// An alert's severity by its kind.
fn alert_severity(kind: AlertKind) -> Severity {
    use AlertKind as K;
    match kind {
        K::JournalFailed => Severity::Critical,
        K::DidNotShutDown
        | K::OutletNotCycled
        | K::OutletCutByCard
        | K::PairSplit
        | K::CommunicationLost => Severity::Alert,
        K::UpsNotAnswering | K::PollError | K::PollObjectMissing | K::ReloadRefused => {
            Severity::Error
        }
        K::OnBattery | K::Outage | K::CardSetting | K::JournalLineSkipped | K::Site => {
            Severity::Warning
        }
        K::NotConfirmed | K::CarriedByAnotherFeed | K::UpsAnswering | K::CommunicationRestored => {
            Severity::Notice
        }
    }
}

/// What a target takes: categories, record kinds by name, at least a severity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wants {
    /// Categories it takes whole.
    pub categories: Vec<Category>,
    /// Record kinds it takes by name (`ShutdownRecorder`, `Back`, …).
    pub kinds: Vec<String>,
    /// Nothing less severe than this.
    pub at_least: Severity,
}

impl Default for Wants {
    /// Decisions, alerts and failures, of any severity.
    fn default() -> Wants {
        Wants {
            categories: vec![Category::Decision, Category::Alert, Category::Failure],
            kinds: Vec::new(),
            at_least: Severity::Debug,
        }
    }
}

/// The names `match` takes besides record kinds.
pub const MATCH_WORDS: [(&str, Option<Category>); 5] = [
    ("decisions", Some(Category::Decision)),
    ("alerts", Some(Category::Alert)),
    ("actions", Some(Category::Action)),
    ("failures", Some(Category::Failure)),
    ("all", None),
];

/// A topic level made of `name` (MQTT's wildcards and separators replaced).
pub fn topic_level(name: &str) -> String {
    name.chars()
        .map(|c| {
            if matches!(c, '/' | '+' | '#') || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// Home Assistant's MQTT discovery for the site in `status` (the status page's JSON):
/// each recorder a sensor of its state, each UPS a binary sensor (on battery) and a
/// sensor of its charge, all one device each, available while `PREFIX/status` is
/// `online`: (topic, retained configuration).
pub fn discovery(prefix: &str, status: &Json) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let id = |s: &str| {
        s.chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect::<String>()
    };
    let device = |name: &str| {
        serde_json::json!({
            "identifiers": [format!("trapgate_{}", id(name))],
            "name": name,
            "manufacturer": "trapgate",
        })
    };
    let availability = format!("{prefix}/status");
    for r in status["recorders"].as_array().into_iter().flatten() {
        let Some(name) = r["name"].as_str() else {
            continue;
        };
        let config = serde_json::json!({
            "name": "shutdown state",
            "unique_id": format!("trapgate_recorder_{}", id(name)),
            "state_topic": format!("{prefix}/recorder/{}", topic_level(name)),
            "value_template": "{{ value_json.state }}",
            "availability_topic": availability,
            "device": device(name),
        });
        out.push((
            format!("homeassistant/sensor/trapgate_{}/state/config", id(name)),
            config.to_string(),
        ));
    }
    for u in status["upses"].as_array().into_iter().flatten() {
        let Some(name) = u["name"].as_str() else {
            continue;
        };
        let state = format!("{prefix}/ups/{}", topic_level(name));
        out.push((
            format!(
                "homeassistant/binary_sensor/trapgate_{}/on_battery/config",
                id(name)
            ),
            serde_json::json!({
                "name": "on battery",
                "unique_id": format!("trapgate_ups_{}_on_battery", id(name)),
                "state_topic": state,
                "value_template": "{{ 'ON' if value_json.on_battery else 'OFF' }}",
                "availability_topic": availability,
                "device": device(name),
            })
            .to_string(),
        ));
        out.push((
            format!("homeassistant/sensor/trapgate_{}/charge/config", id(name)),
            serde_json::json!({
                "name": "charge",
                "unique_id": format!("trapgate_ups_{}_charge", id(name)),
                "state_topic": state,
                "value_template": "{{ value_json.charge }}",
                "unit_of_measurement": "%",
                "device_class": "battery",
                "availability_topic": availability,
                "device": device(name),
            })
            .to_string(),
        ));
    }
    out
}

/// The retained state messages of the site in `status` (the status page's JSON):
/// `PREFIX/ups/NAME` and `PREFIX/recorder/NAME`, each the status page's row.
pub fn retained_state(prefix: &str, status: &Json) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (list, level) in [("upses", "ups"), ("recorders", "recorder")] {
        for row in status[list].as_array().into_iter().flatten() {
            if let Some(name) = row["name"].as_str() {
                out.push((
                    format!("{prefix}/{level}/{}", topic_level(name)),
                    row.to_string(),
                ));
            }
        }
    }
    out
}

/// Every record kind's name (`match` takes them).
pub fn record_kind(record: &Record) -> &'static str {
    match record {
        Record::Action(Action::FromPeer { record, .. }) => record_kind(record),
        r => r.kind_name(),
    }
}

impl Wants {
    /// Whether the target takes `record`.
    pub fn takes(&self, record: &Record) -> bool {
        let Some((severity, category)) = classify(record) else {
            return false;
        };
        severity <= self.at_least
            && (self.categories.contains(&category)
                || self.kinds.iter().any(|k| k == record_kind(record)))
    }
}

/// How a syslog target is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// One datagram a message (RFC 5426).
    Udp,
    /// A stream, each message preceded by its length (RFC 6587's octet counting).
    Tcp,
    /// The same stream in TLS (RFC 5425).
    Tls,
}

/// How a TLS target is checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsTrust {
    /// The PEM file of the certificate authorities its certificate must chain to.
    pub ca_file: String,
    /// The name its certificate must carry (a host name or an address).
    pub server_name: String,
}

/// A target's kind and what it needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// RFC 5424 syslog.
    Syslog {
        /// UDP or TCP.
        transport: Transport,
        /// Its facility (RFC 5424's number: 3 daemon, 16–23 local0–local7).
        facility: u8,
        /// The structured data's enterprise number (SD-ID `trapgate@N`).
        enterprise: u32,
        /// With TLS: what its certificate is checked against.
        tls: Option<TlsTrust>,
    },
    /// An HTTP POST of each record as JSON.
    Webhook {
        /// The URL, as written.
        url: String,
        /// A header it sends with each (its name, its value: a token).
        header: Option<(String, String)>,
        /// For https: the PEM file of the CAs its certificate must chain to (None:
        /// Mozilla's roots, webpki-roots).
        ca_file: Option<String>,
    },
    /// Milestone XProtect's generic events: a line on a TCP connection to its event
    /// server.
    Milestone,
    /// An MQTT 3.1.1 broker: an event message per record, retained state per UPS and
    /// recorder, a last will.
    Mqtt {
        /// The topics' prefix (`trapgate`).
        prefix: String,
        /// The client id (empty: `trapgate-HOSTNAME`).
        client_id: String,
        /// A user and its password.
        login: Option<(String, String)>,
        /// Home Assistant's MQTT discovery: each UPS and recorder a device.
        discovery: bool,
        /// MQTT's keep-alive: the broker sends the last will this long and a half after
        /// the gateway went silent.
        keep_alive: u32,
        /// MQTT over TLS: what the broker's certificate is checked against (its name:
        /// the host of `to`).
        tls: Option<TlsTrust>,
        /// MQTT 5 rather than 3.1.1.
        v5: bool,
    },
}

impl Kind {
    /// Its name in the site file.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Syslog { .. } => "syslog",
            Kind::Webhook { .. } => "webhook",
            Kind::Milestone => "milestone",
            Kind::Mqtt { .. } => "mqtt",
        }
    }
}

/// One `[[notify]]` target.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    /// What it is.
    pub kind: Kind,
    /// Where, as written (`host:port`, a URL).
    pub to_text: String,
    /// Where, resolved.
    pub to: SocketAddr,
    /// What it takes.
    pub wants: Wants,
}

impl core::fmt::Debug for Target {
    // A webhook's header holds a token: never printed.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Target")
            .field("kind", &self.kind.name())
            .field("to", &self.to_text)
            .field("wants", &self.wants)
            .finish()
    }
}

impl Target {
    /// Its name on `/metrics` and in the journal: `syslog udp:127.0.0.1:514`.
    pub fn label(&self) -> String {
        match &self.kind {
            Kind::Syslog { transport, .. } => format!(
                "syslog {}:{}",
                match transport {
                    Transport::Udp => "udp",
                    Transport::Tcp => "tcp",
                    Transport::Tls => "tls",
                },
                self.to_text
            ),
            // One broker may take two prefixes (two sites, two dashboards).
            Kind::Mqtt { prefix, .. } => format!("mqtt {}/{prefix}", self.to_text),
            k => format!("{} {}", k.name(), self.to_text),
        }
    }
}

/// The sentence of a record, in the journal's words (`trapgate journal`'s, without the
/// time).
pub fn text(record: &Record) -> String {
    let line = record.readable(Timestamp(0));
    match line.split_once("  ") {
        Some((_, what)) => what.to_string(),
        None => line,
    }
}

/// Writes `value` as an RFC 5424 PARAM-VALUE: `"`, `\` and `]` escaped.
fn sd_value(out: &mut String, value: &str) {
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
}

/// An RFC 5424 message for `record` made at `at` (the station's time; `offset` the wall
/// clock's lead then), from `host` and process `pid`:
/// `<PRI>1 TIMESTAMP HOST trapgate PID KIND [trapgate@N field="value" …] text`, its
/// times (a deadline, an outlet's cut) in UTC as `run` prints them.
pub fn syslog(
    record: &Record,
    (at, offset): (Timestamp, i64),
    (facility, enterprise): (u8, u32),
    (host, pid): (&str, u32),
) -> Option<String> {
    let wall = at.shifted(offset);
    let (severity, _) = classify(record)?;
    let pri = u32::from(facility) * 8 + u32::from(severity.code());
    let mut out = String::with_capacity(256);
    let host = if host.is_empty() { "-" } else { host };
    let pid = if pid == 0 {
        "-".to_string()
    } else {
        pid.to_string()
    };
    let _ = write!(
        out,
        "<{pri}>1 {} {host} trapgate {pid} {} [trapgate@{enterprise}",
        wall.utc(),
        record_kind(record)
    );
    let inner = match record {
        Record::Action(Action::FromPeer { record, peer, .. }) => {
            let _ = write!(out, " peer=\"{peer}\"");
            record
        }
        r => r,
    };
    if let Json::Object(fields) = inner.printed(wall, offset) {
        for (k, v) in fields {
            if matches!(
                k.as_str(),
                "time" | "reason" | "detail" | "real" | "stdout" | "stderr"
            ) || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                continue;
            }
            let v = match v {
                Json::Null => continue,
                Json::String(s) => s,
                other => other.to_string(),
            };
            let _ = write!(out, " {k}=\"");
            sd_value(&mut out, &v);
            out.push('"');
        }
    }
    let _ = write!(out, " severity=\"{}\"] {}", severity.name(), text(record));
    Some(out)
}

/// The JSON a webhook is POSTed for `record` made at `at` (its times shifted by
/// `offset` to the wall clock): the record as `run` prints it, with its severity.
pub fn webhook_body(record: &Record, at: Timestamp, offset: i64) -> Option<Vec<u8>> {
    let (severity, _) = classify(record)?;
    let mut v = record.printed(at.shifted(offset), offset);
    if let Some(o) = v.as_object_mut() {
        o.insert("severity".into(), severity.name().into());
        o.insert("text".into(), text(record).into());
    }
    serde_json::to_vec(&v).ok()
}

/// The line sent to XProtect's event server for `record`: `trapgate KIND NAME: text`,
/// NAME the recorder (else the UPS or outlet) it is about, `-` if none. An XProtect
/// generic event matches on it (`trapgate ShutdownRecorder`, `trapgate Back nvr-17`).
pub fn milestone_line(record: &Record) -> Option<String> {
    classify(record)?;
    let (ups, recorder) = record.names();
    let name = recorder.or(ups).unwrap_or("-");
    let mut line = format!("trapgate {} {name}: {}", record_kind(record), text(record));
    line.retain(|c| c != '\r' && c != '\n');
    line.push_str("\r\n");
    Some(line)
}

/// What `target` is sent for `record` made at `at` (`offset`: the wall clock's lead
/// then), as `replay --notify-dry` prints it: the syslog message, the XProtect line
/// (without its line end), the webhook's JSON, an MQTT event as `TOPIC PAYLOAD`; None if
/// the target does not take it. The host name and process id of syslog's header are
/// its nil value: a replay's output does not depend on the machine.
pub fn dry(target: &Target, record: &Record, at: Timestamp, offset: i64) -> Option<String> {
    if !target.wants.takes(record) {
        return None;
    }
    match &target.kind {
        Kind::Syslog {
            facility,
            enterprise,
            ..
        } => syslog(record, (at, offset), (*facility, *enterprise), ("", 0)),
        Kind::Milestone => milestone_line(record).map(|l| l.trim_end().to_string()),
        Kind::Webhook { .. } => {
            webhook_body(record, at, offset).map(|b| String::from_utf8_lossy(&b).into_owned())
        }
        Kind::Mqtt { prefix, .. } => webhook_body(record, at, offset)
            .map(|b| format!("{prefix}/event {}", String::from_utf8_lossy(&b))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> Record {
        Record::Decision(Decided::ShutdownRecorder {
            ups: "ups-main".into(),
            recorder: "nvr-17".into(),
            tier: 2,
            deadline: Timestamp(1_800_000_000_000_000_000),
            reason: "tier 2's grace (2 min) on battery".into(),
            event: "OnBattery".into(),
            rule: "upsOnBattery".into(),
        })
    }

    #[test]
    fn every_record_kind_has_its_severity_and_the_default_takes_decisions_alerts_failures() {
        let w = Wants::default();
        assert!(w.takes(&order()));
        let refused_outlet = Record::Action(Action::OutletAnswered {
            outlet: "ups-main/group 2".into(),
            form: "immediateRebootShutdown".into(),
            status: "noAccess".into(),
        });
        assert_eq!(
            classify(&refused_outlet),
            Some((Severity::Alert, Category::Failure))
        );
        assert!(w.takes(&refused_outlet));
        let sent = Record::Action(Action::Sent {
            recorder: "nvr-17".into(),
            attempt: 1,
            to: None,
            detail: "x".into(),
        });
        assert_eq!(classify(&sent).map(|c| c.0), Some(Severity::Notice));
        assert!(!w.takes(&sent), "an action done is not a default");
        let only_sent = Wants {
            categories: Vec::new(),
            kinds: vec!["Sent".into()],
            at_least: Severity::Debug,
        };
        assert!(only_sent.takes(&sent) && !only_sent.takes(&order()));
        let severe = Wants {
            at_least: Severity::Error,
            ..Wants::default()
        };
        assert!(!severe.takes(&order()) && severe.takes(&refused_outlet));
    }

    #[test]
    fn a_syslog_message_is_rfc_5424_with_the_fields_as_structured_data() {
        let m = syslog(
            &order(),
            (Timestamp(1_800_000_000_000_000_000), 0),
            (3, 32473),
            ("gw-1", 42),
        )
        .expect("told");
        // PRI = daemon (3) * 8 + warning (4).
        assert!(
            m.starts_with("<28>1 2027-01-15T08:00:00.000000Z gw-1 trapgate 42 ShutdownRecorder [trapgate@32473 "),
            "{m}"
        );
        assert!(m.contains(" recorder=\"nvr-17\""), "{m}");
        assert!(m.contains(" tier=\"2\""), "{m}");
        assert!(
            m.contains(" deadline=\"2027-01-15T08:00:00.000000Z\""),
            "in UTC: {m}"
        );
        assert!(
            m.contains("severity=\"warning\"] decided ShutdownRecorder"),
            "{m}"
        );
        let quoted = Record::Decision(Decided::Alert {
            ups: Some("ups \"a\" ]\\".into()),
            recorder: None,
            outlet: None,
            kind: AlertKind::DidNotShutDown,
            reason: "x".into(),
        });
        let m = syslog(&quoted, (Timestamp(0), 0), (3, 32473), ("", 1)).unwrap();
        assert!(m.starts_with("<25>1 "), "alert: {m}");
        assert!(
            m.contains(" - trapgate 1 "),
            "no host name: the nil value: {m}"
        );
        assert!(m.contains("ups=\"ups \\\"a\\\" \\]\\\\\""), "{m}");
    }

    #[test]
    fn a_milestone_line_names_the_recorder_and_is_one_line() {
        let l = milestone_line(&order()).unwrap();
        assert!(
            l.starts_with("trapgate ShutdownRecorder nvr-17: decided ShutdownRecorder"),
            "{l}"
        );
        assert!(l.ends_with("\r\n") && l.matches('\n').count() == 1, "{l:?}");
        let body = webhook_body(&order(), Timestamp(0), 0).unwrap();
        let v: Json = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["severity"], "warning");
        assert_eq!(v["recorder"], "nvr-17");
    }
}
