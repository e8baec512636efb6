//! Classification: a notification (v1 trap, v2c trap, inform) becomes a normalized UPS
//! event by matching its notification OID, and where a rule says so a varbind's value,
//! against compiled OID tries built once from the rule tables.
//!
//! The tables follow `../shared/mibs/oids.md` (APC PowerNet-MIB, RFC 1628 UPS-MIB,
//! Eaton XUPS-MIB and MGE, CyberPower CPS-MIB, Megatec, Liebert, Socomec, Delta) and
//! the recorder acknowledgement enterprise 1.3.6.1.4.1.50001.

pub mod rules;
mod tables;
pub mod trie;

use core::fmt;
use std::borrow::Cow;

use crate::wire::{Message, NotificationOidBuf, Oid, Pdu, Value, VarBind};
use rules::{AlarmRule, Ev, ObjectName, TrapRule};
use trie::{Key, Match, OidTrie, Words};

/// A normalized UPS event (journaled by its name).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Event {
    /// Mains power failed; the UPS runs on its battery.
    OnBattery,
    /// The battery is low or discharged: shut down now.
    LowBattery,
    /// Mains power is back.
    PowerRestored,
    /// The battery left its low condition.
    BatteryRestored,
    /// The UPS announced it will cut its output (graceful shutdown, sleep, countdown).
    ShutdownPending,
    /// The UPS output is off.
    UpsOff,
    /// The UPS's network card lost contact with the UPS.
    CommunicationLost,
    /// The card and the UPS talk again.
    CommunicationRestored,
    /// The card turned an outlet group of its UPS off, or took a command for it (the
    /// group's index in `Classification::index`): what trapgate's cut confirms by.
    OutletOff,
    /// The card turned an outlet group of its UPS on again.
    OutletOn,
    /// A known notification that moves no decision.
    Informational,
    /// A recorder acknowledged a shutdown order.
    RecorderAck,
    /// A notification no rule knows.
    Unknown,
}

impl Event {
    /// Every event, in declaration order.
    pub const ALL: [Event; 13] = [
        Event::OnBattery,
        Event::LowBattery,
        Event::PowerRestored,
        Event::BatteryRestored,
        Event::ShutdownPending,
        Event::UpsOff,
        Event::CommunicationLost,
        Event::CommunicationRestored,
        Event::OutletOff,
        Event::OutletOn,
        Event::Informational,
        Event::RecorderAck,
        Event::Unknown,
    ];

    /// Whether the policy acts on it (the others, informational and unknown, are only
    /// counted and timed).
    pub fn acted_on(self) -> bool {
        !matches!(self, Event::Informational | Event::Unknown)
    }

    /// The event's name, as printed and journaled.
    pub fn name(self) -> &'static str {
        match self {
            Event::OnBattery => "OnBattery",
            Event::LowBattery => "LowBattery",
            Event::PowerRestored => "PowerRestored",
            Event::BatteryRestored => "BatteryRestored",
            Event::ShutdownPending => "ShutdownPending",
            Event::UpsOff => "UpsOff",
            Event::CommunicationLost => "CommunicationLost",
            Event::CommunicationRestored => "CommunicationRestored",
            Event::OutletOff => "OutletOff",
            Event::OutletOn => "OutletOn",
            Event::Informational => "Informational",
            Event::RecorderAck => "RecorderAck",
            Event::Unknown => "Unknown",
        }
    }

    /// What the removal of an alarm that raised `self` means.
    pub fn cleared(self) -> Event {
        match self {
            Event::OnBattery => Event::PowerRestored,
            Event::LowBattery => Event::BatteryRestored,
            Event::CommunicationLost => Event::CommunicationRestored,
            _ => Event::Informational,
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The result of classifying one notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Classification {
    /// The event.
    pub event: Event,
    /// Index of the trap rule that matched (`Classifier::rule`).
    pub rule: Option<u32>,
    /// Index of the alarm whose varbind decided the event (`Classifier::alarm`).
    pub alarm: Option<u32>,
    /// For an outlet group's report (`OutletOff`, `OutletOn`): the group's index, the
    /// value of the trap's `upsOutletGroupControlIndex` (its first INTEGER varbind).
    pub index: Option<u32>,
}

/// Rule tables that name the same OID twice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DuplicateRules(pub Vec<String>);

impl fmt::Display for DuplicateRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "trap rules name the same OID twice: {}",
            self.0.join(", ")
        )
    }
}

impl std::error::Error for DuplicateRules {}

/// What the trap trie stores per key: everything a match needs, inline, so a lookup
/// never touches the (large) rule records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleRef {
    /// Index of the rule in `Classifier::rules`.
    pub index: u32,
    /// The rule's event.
    pub event: Ev,
    /// Whether the rule matches a whole subtree.
    pub prefix: bool,
}

/// A notification that no rule knows.
const UNKNOWN: Classification = Classification {
    event: Event::Unknown,
    rule: None,
    alarm: None,
    index: None,
};

/// Which trap keys match a notification OID: the OID itself, or a rule's whole subtree.
#[inline(always)]
fn accept(rule: &RuleRef, exact: bool) -> bool {
    exact || rule.prefix
}

/// The compiled rule tables.
#[derive(Clone, Debug)]
pub struct Classifier {
    traps: OidTrie<RuleRef>,
    rules: Vec<TrapRule>,
    alarms: OidTrie<u32>,
    alarm_rules: Vec<AlarmRule>,
    names: OidTrie<u32>,
    object_names: Vec<ObjectName>,
}

impl Classifier {
    /// The built-in tables.
    pub fn builtin() -> Classifier {
        Classifier::new(
            rules::builtin_trap_rules(),
            rules::builtin_alarms(),
            rules::builtin_object_names(),
        )
        .expect("the built-in tables have no duplicate OIDs (tested)")
    }

    /// Compiles rule tables. Duplicate trap or alarm OIDs are an error; duplicate names
    /// keep the first.
    pub fn new(
        rules: Vec<TrapRule>,
        alarm_rules: Vec<AlarmRule>,
        object_names: Vec<ObjectName>,
    ) -> Result<Classifier, DuplicateRules> {
        let index = |v: &[Vec<u8>]| -> Vec<(Vec<u8>, u32)> {
            v.iter()
                .enumerate()
                .map(|(i, k)| (k.clone(), i as u32))
                .collect()
        };
        let alarm_keys: Vec<Vec<u8>> = alarm_rules
            .iter()
            .map(|r| r.oid.as_bytes().to_vec())
            .collect();
        let name_keys: Vec<Vec<u8>> = object_names
            .iter()
            .map(|r| r.oid.as_bytes().to_vec())
            .collect();
        let trap_entries = rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let rule = RuleRef {
                    index: i as u32,
                    event: r.event,
                    prefix: r.prefix,
                };
                (r.oid.as_bytes().to_vec(), rule)
            })
            .collect();
        let (traps, dup_traps) = OidTrie::build(trap_entries);
        let (alarms, dup_alarms) = OidTrie::build(index(&alarm_keys));
        let (names, _) = OidTrie::build(index(&name_keys));
        let dups: Vec<String> = dup_traps
            .iter()
            .chain(&dup_alarms)
            .filter_map(|k| Oid::parse(k, 0).ok().map(|o| o.to_string()))
            .collect();
        if !dups.is_empty() {
            return Err(DuplicateRules(dups));
        }
        Ok(Classifier {
            traps,
            rules,
            alarms,
            alarm_rules,
            names,
            object_names,
        })
    }

    /// Classifies a notification by its notification OID and varbinds.
    #[inline]
    pub fn classify(&self, trap_oid: Oid<'_>, varbinds: &[VarBind<'_>]) -> Classification {
        let hit = self
            .traps
            .longest_prefix_by_key(Key::new(trap_oid.as_bytes()), accept);
        self.classify_hit(hit, varbinds)
    }

    /// What the trap rule that matched (if one did) and the varbinds make of it.
    #[inline(always)]
    fn classify_hit(
        &self,
        hit: Option<Match<'_, RuleRef>>,
        varbinds: &[VarBind<'_>],
    ) -> Classification {
        let Some(hit) = hit else {
            return UNKNOWN;
        };
        let rule = hit.value.index;
        let (event, alarm) = match hit.value.event {
            Ev::Is(e) => (e, None),
            Ev::AlarmAdded => self.alarm_in(varbinds, false),
            Ev::AlarmRemoved => self.alarm_in(varbinds, true),
        };
        // Only an outlet group's report reads its index: nothing more per trap.
        let index = match event {
            Event::OutletOff | Event::OutletOn => varbinds.iter().find_map(|vb| match vb.value {
                Value::Integer(i) => u32::try_from(i).ok(),
                _ => None,
            }),
            _ => None,
        };
        Classification {
            event,
            rule: Some(rule),
            alarm,
            index,
        }
    }

    /// Classifies a message; None unless it is a notification (trap or inform).
    /// `scratch` holds a v1 trap's notification OID when its bytes are needed; the
    /// caller keeps one and reuses it, so nothing is initialised per packet.
    #[inline]
    pub fn classify_message(
        &self,
        msg: &Message<'_>,
        scratch: &mut NotificationOidBuf,
    ) -> Option<Classification> {
        if !msg.pdu_type().is_notification() {
            return None;
        }
        let hit = match &msg.pdu {
            // Found by its words; written out only for a walk or a long OID.
            Pdu::TrapV1(t) => match t.notification_parts() {
                Some(parts) => self.traps.longest_prefix_by_words(
                    Words::new(parts.words(), parts.len()),
                    || parts.write(scratch).as_bytes(),
                    accept,
                ),
                None => return Some(UNKNOWN),
            },
            Pdu::Request(r) => match r.notification_oid() {
                Some(o) => self
                    .traps
                    .longest_prefix_by_key(Key::new(o.as_bytes()), accept),
                None => return Some(UNKNOWN),
            },
        };
        Some(self.classify_hit(hit, msg.varbinds()))
    }

    /// The first varbind whose value is a known alarm OID decides the event.
    fn alarm_in(&self, varbinds: &[VarBind<'_>], removed: bool) -> (Event, Option<u32>) {
        for vb in varbinds {
            if let Value::ObjectId(v) = vb.value
                && let Some(&i) = self.alarms.exact(v.as_bytes())
            {
                let e = self.alarm_rules[i as usize].event;
                return (if removed { e.cleared() } else { e }, Some(i));
            }
        }
        (Event::Informational, None)
    }

    /// The name of the rule (and alarm) behind `c`, as the policy and the journal
    /// carry it: `upsTrapAlarmEntryAdded upsAlarmOnBattery` for an alarm-table trap.
    pub fn rule_name(&self, c: Classification) -> Cow<'_, str> {
        let rule = c.rule.map_or("", |i| self.rules[i as usize].name.as_str());
        match c.alarm {
            // Alarm-table traps are few: naming them allocates, nothing else does.
            Some(a) => Cow::Owned(format!("{rule} {}", self.alarm_rules[a as usize].name)),
            None => Cow::Borrowed(rule),
        }
    }

    /// The trap rule at `index`.
    pub fn rule(&self, index: u32) -> &TrapRule {
        &self.rules[index as usize]
    }

    /// The alarm at `index`.
    pub fn alarm(&self, index: u32) -> &AlarmRule {
        &self.alarm_rules[index as usize]
    }

    /// Every trap rule.
    pub fn rules(&self) -> &[TrapRule] {
        &self.rules
    }

    /// A display name for `oid`: the longest named ancestor and the arcs below it.
    pub fn name<'a>(&'a self, oid: Oid<'a>) -> OidName<'a> {
        let m = self.names.longest_prefix(oid.as_bytes());
        OidName {
            oid,
            named: m.map(|m| (&self.object_names[*m.value as usize], m.len)),
        }
    }
}

/// An OID shown with its MIB name, as net-snmp does: `PowerNet-MIB::mtrapargsString.0`.
#[derive(Clone, Copy, Debug)]
pub struct OidName<'a> {
    oid: Oid<'a>,
    named: Option<(&'a ObjectName, usize)>,
}

impl OidName<'_> {
    /// True when some ancestor of the OID has a name.
    pub fn is_known(&self) -> bool {
        self.named.is_some()
    }
}

impl fmt::Display for OidName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some((obj, len)) = self.named else {
            return self.oid.fmt(f);
        };
        write!(f, "{}::{}", obj.mib, obj.name)?;
        let rest = &self.oid.as_bytes()[len..];
        // Arcs below the named node: each is one base-128 group sequence.
        let mut value: u32 = 0;
        for &b in rest {
            value = (value << 7) | (b & 0x7f) as u32;
            if b & 0x80 == 0 {
                write!(f, ".{value}")?;
                value = 0;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::oid::oid;

    fn event_of(c: &Classifier, trap: &str) -> (Event, Option<String>) {
        let o = oid(trap);
        let r = c.classify(o.as_oid(), &[]);
        (r.event, r.rule.map(|i| c.rule(i).name.clone()))
    }

    #[test]
    fn builtin_tables_compile_without_duplicates() {
        let c = Classifier::builtin();
        assert!(c.rules().len() > 400, "{}", c.rules().len());
    }

    #[test]
    fn an_outlet_groups_report_carries_its_group() {
        let c = Classifier::builtin();
        let group = oid("1.3.6.1.4.1.318.1.1.1.12.3.2.1.1.2");
        let text = oid("1.3.6.1.4.1.318.2.3.3.0");
        let vbs = [
            VarBind {
                name: group.as_oid(),
                value: Value::Integer(2),
            },
            VarBind {
                name: text.as_oid(),
                value: Value::OctetString(b"UPS: Outlet Group 2 turned off."),
            },
        ];
        for (trap, event, name) in [
            (
                "1.3.6.1.4.1.318.0.299",
                Event::OutletOff,
                "upsOutletGroupTurnedOff",
            ),
            (
                "1.3.6.1.4.1.318.0.732",
                Event::OutletOff,
                "upsOutletGroupCommand",
            ),
            (
                "1.3.6.1.4.1.318.0.298",
                Event::OutletOn,
                "upsOutletGroupTurnedOn",
            ),
        ] {
            let r = c.classify(oid(trap).as_oid(), &vbs);
            assert_eq!(
                (r.event, c.rule(r.rule.unwrap()).name.as_str(), r.index),
                (event, name, Some(2))
            );
            // Without its group (a card that sends none): no index.
            assert_eq!(c.classify(oid(trap).as_oid(), &vbs[1..]).index, None);
        }
        // Another trap's integers are not read.
        let r = c.classify(oid("1.3.6.1.4.1.318.0.5").as_oid(), &vbs);
        assert_eq!((r.event, r.index), (Event::OnBattery, None));
    }

    #[test]
    fn both_v2_forms_of_v1_traps() {
        let c = Classifier::builtin();
        for form in ["1.3.6.1.4.1.318.0.7", "1.3.6.1.4.1.318.7"] {
            assert_eq!(
                event_of(&c, form),
                (Event::LowBattery, Some("lowBattery".into()))
            );
        }
        for form in ["1.3.6.1.2.1.33.2.1", "1.3.6.1.2.1.33.2.0.1"] {
            assert_eq!(
                event_of(&c, form),
                (Event::OnBattery, Some("upsTrapOnBattery".into()))
            );
        }
    }

    #[test]
    fn one_trap_per_vendor() {
        let c = Classifier::builtin();
        let cases = [
            ("1.3.6.1.4.1.318.0.5", Event::OnBattery, "upsOnBattery"),
            ("1.3.6.1.4.1.318.0.9", Event::PowerRestored, "powerRestored"),
            (
                "1.3.6.1.4.1.318.0.39",
                Event::ShutdownPending,
                "gracefulShutdown",
            ),
            (
                "1.3.6.1.4.1.534.1.11.4.1.0.3",
                Event::OnBattery,
                "xupstdOnBattery",
            ),
            (
                "1.3.6.1.4.1.534.1.11.4.1.0.4",
                Event::LowBattery,
                "xupstdLowBattery",
            ),
            (
                "1.3.6.1.4.1.3808.0.29",
                Event::ShutdownPending,
                "upsSignalClientShutdown",
            ),
            (
                "1.3.6.1.4.1.3808.0.1",
                Event::CommunicationLost,
                "communicationLost",
            ),
            (
                "1.3.6.1.4.1.705.1.11.0.11",
                Event::OnBattery,
                "upsmgOnBattery",
            ),
            ("1.3.6.1.4.1.935.0.7", Event::LowBattery, "lowBattery"),
            (
                "1.3.6.1.4.1.476.1.42.3.3.0.3",
                Event::LowBattery,
                "lgpEventLowBatteryWarning",
            ),
            (
                "1.3.6.1.4.1.4555.1.1.1.2.0.8",
                Event::LowBattery,
                "upsTrapBatteryLow",
            ),
            (
                "1.3.6.1.4.1.4555.1.1.7.2.0.23",
                Event::PowerRestored,
                "upsTrapPowerRestored",
            ),
            (
                "1.3.6.1.4.1.2254.2.4.20.0.3",
                Event::OnBattery,
                "dupsPowerFail",
            ),
            ("1.3.6.1.6.3.1.1.5.1", Event::Informational, "coldStart"),
        ];
        for (trap, event, name) in cases {
            assert_eq!(event_of(&c, trap), (event, Some(name.into())), "{trap}");
        }
    }

    #[test]
    fn recorder_ack_matches_any_trap_under_its_enterprise() {
        let c = Classifier::builtin();
        for t in [
            "1.3.6.1.4.1.50001.0.1",
            "1.3.6.1.4.1.50001.0.200",
            "1.3.6.1.4.1.50001",
        ] {
            assert_eq!(
                event_of(&c, t),
                (Event::RecorderAck, Some("recorderAck".into()))
            );
        }
        assert_eq!(
            event_of(&c, "1.3.6.1.4.1.500010.0.1"),
            (Event::Unknown, None)
        );
        // A prefix of a known trap is not that trap.
        assert_eq!(event_of(&c, "1.3.6.1.4.1.318.0"), (Event::Unknown, None));
        assert_eq!(
            event_of(&c, "1.3.6.1.4.1.318.0.7.1"),
            (Event::Unknown, None)
        );
    }

    #[test]
    fn alarm_table_traps_follow_the_alarm_varbind() {
        let c = Classifier::builtin();
        let descr = oid("1.3.6.1.2.1.33.1.6.2.1.2.7");
        let on_battery = oid("1.3.6.1.2.1.33.1.6.3.2");
        let low = oid("1.3.6.1.2.1.33.1.6.3.3");
        use crate::wire::OidBuf;
        let added = oid("1.3.6.1.2.1.33.2.3");
        let removed = oid("1.3.6.1.2.1.33.2.4");
        let cls = |t: &OidBuf, a: &OidBuf| {
            let vb = VarBind {
                name: descr.as_oid(),
                value: Value::ObjectId(a.as_oid()),
            };
            c.classify(t.as_oid(), &[vb]).event
        };
        assert_eq!(cls(&added, &low), Event::LowBattery);
        assert_eq!(cls(&removed, &low), Event::BatteryRestored);
        assert_eq!(cls(&removed, &on_battery), Event::PowerRestored);
        // Eaton's xupstdAlarmEntryAdded may carry an RFC 1628 alarm.
        assert_eq!(
            cls(
                &oid("1.3.6.1.4.1.534.1.11.4.1.0.21"),
                &oid("1.3.6.1.2.1.33.1.6.3.22")
            ),
            Event::ShutdownPending
        );
        // Liebert condition added / removed.
        let lgp = oid("1.3.6.1.4.1.476.1.42.3.2.1.72");
        assert_eq!(
            cls(&oid("1.3.6.1.4.1.476.1.42.3.3.0.1"), &lgp),
            Event::OnBattery
        );
        assert_eq!(
            cls(&oid("1.3.6.1.4.1.476.1.42.3.3.0.2"), &lgp),
            Event::PowerRestored
        );
        // No alarm varbind: nothing to act on.
        assert_eq!(c.classify(added.as_oid(), &[]).event, Event::Informational);
    }

    /// A v1 trap is found by the words of its notification OID, built only when a walk
    /// or a long key needs its bytes; that must decide as the OID itself does.
    #[test]
    fn v1_traps_by_words_as_by_their_oid() {
        use crate::wire::{TrapV1, Version};
        let check =
            |c: &Classifier, enterprise: &crate::wire::OidBuf, generic: i64, specific: i64| {
                let trap = TrapV1 {
                    enterprise: enterprise.as_oid(),
                    agent_addr: [127, 0, 0, 1],
                    generic_trap: generic,
                    specific_trap: specific,
                    time_stamp: 0,
                    varbinds: &[],
                };
                let msg = Message {
                    version: Version::V1,
                    community: b"public",
                    pdu: Pdu::TrapV1(trap),
                    v3: None,
                };
                let mut scratch = NotificationOidBuf::default();
                let by_words = c
                    .classify_message(&msg, &mut scratch)
                    .expect("a notification");
                let mut reference = NotificationOidBuf::default();
                let by_oid = match trap.notification_oid(&mut reference) {
                    Some(o) => c.classify(o, &[]),
                    None => UNKNOWN,
                };
                assert_eq!(by_words, by_oid, "{enterprise} {generic} {specific}");
                by_words
            };
        let c = Classifier::builtin();
        // Every enterprise of the tables, with the trap numbers they define and others.
        let mut enterprises: Vec<crate::wire::OidBuf> = c
            .rules()
            .iter()
            .filter_map(|r| {
                let arcs: Vec<u32> = r.oid.as_oid().arcs().collect();
                (arcs.len() > 2 && arcs[arcs.len() - 2] == 0)
                    .then(|| crate::wire::OidBuf::from_arcs(&arcs[..arcs.len() - 2]).expect("arcs"))
            })
            .collect();
        enterprises.dedup();
        for e in &enterprises {
            for specific in [0, 1, 5, 7, 39, 127, 128, 787, 16384, 300_000, -1] {
                check(&c, e, 6, specific);
            }
        }
        let apc = oid("1.3.6.1.4.1.318");
        assert_eq!(check(&c, &apc, 6, 7).event, Event::LowBattery);
        for generic in -1..=7 {
            check(&c, &apc, generic, 0);
        }
        // A prefix rule: found by the walk, over the OID written out.
        let ack = oid("1.3.6.1.4.1.50001");
        assert_eq!(check(&c, &ack, 6, 1).event, Event::RecorderAck);
        // Keys past 16 bytes, which their words alone cannot confirm.
        let long = oid("1.3.6.1.4.1.99999.1.2.3.4.5.6.7.8.9");
        let rules = vec![TrapRule {
            oid: oid("1.3.6.1.4.1.99999.1.2.3.4.5.6.7.8.9.0.1"),
            name: "longTrap".into(),
            mib: "TEST-MIB".into(),
            event: Ev::Is(Event::OnBattery),
            prefix: false,
        }];
        let c = Classifier::new(rules, Vec::new(), Vec::new()).expect("no duplicates");
        assert_eq!(check(&c, &long, 6, 1).event, Event::OnBattery);
        assert_eq!(check(&c, &long, 6, 2).event, Event::Unknown);
    }

    #[test]
    fn names_like_net_snmp() {
        let c = Classifier::builtin();
        let show = |s: &str| {
            let o = oid(s);
            c.name(o.as_oid()).to_string()
        };
        assert_eq!(
            show("1.3.6.1.4.1.318.2.3.3.0"),
            "PowerNet-MIB::mtrapargsString.0"
        );
        assert_eq!(
            show("1.3.6.1.4.1.318.2.3.3"),
            "PowerNet-MIB::mtrapargsString"
        );
        assert_eq!(
            show("1.3.6.1.2.1.33.1.2.4.0"),
            "UPS-MIB::upsEstimatedChargeRemaining.0"
        );
        assert_eq!(show("1.3.6.1.4.1.318.0.7"), "PowerNet-MIB::lowBattery");
        assert_eq!(
            show("1.3.6.1.4.1.318.1.1.1.2.2.1.0"),
            "PowerNet-MIB::upsAdvBatteryCapacity.0"
        );
        assert_eq!(show("1.3.6.1.4.1.318.9.1"), "PowerNet-MIB::apc.9.1");
        assert_eq!(show("1.3.6.1.4.1.9.9"), "1.3.6.1.4.1.9.9");
    }
}
