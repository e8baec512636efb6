//! Rule tables: which notification OID means which UPS event, and object names.
//!
//! The vendor tables (APC PowerNet-MIB, Eaton XUPS-MIB, MGE, CyberPower CPS-MIB,
//! Megatec XPPC-MIB, Liebert, Socomec, Delta) are generated into `tables.rs` from
//! `../shared/mibs/oids.md`; RFC 1628, SNMPv2-MIB's generic traps and the recorder
//! acknowledgement are written here. Each SMIv1 trap (enterprise E, specific N) is
//! entered under both notification forms seen in the wild (oids.md §0): `E.0.N`, what
//! RFC 3584 makes of a v1 trap and what SMIv2 MIBs define, and `E.N`, what RFC 1628,
//! Socomec and Riello define natively and some proxies send.

use super::Event;
use crate::wire::OidBuf;
use crate::wire::oid::oid;

/// The event a trap rule produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ev {
    /// Always this event.
    Is(Event),
    /// An alarm-table entry was added: the event follows the alarm OID in a varbind.
    AlarmAdded,
    /// An alarm-table entry was removed: the alarm's event is cleared.
    AlarmRemoved,
}

/// One vendor's SMIv1 trap table.
#[derive(Debug)]
pub struct VendorTable {
    /// The MIB module name, as net-snmp prints it before `::`.
    pub mib: &'static str,
    /// The v1 enterprise of its traps.
    pub enterprise: &'static str,
    /// (specific-trap, name, event).
    pub traps: &'static [(u32, &'static str, Ev)],
}

/// A rule keyed by a notification OID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrapRule {
    /// The notification OID (or, for a prefix rule, the subtree).
    pub oid: OidBuf,
    /// The notification's name in its MIB.
    pub name: String,
    /// The MIB module.
    pub mib: String,
    /// What it means for the site.
    pub event: Ev,
    /// Matches every notification under `oid`, not only `oid` itself.
    pub prefix: bool,
}

/// A well-known alarm or condition OID, carried as a varbind value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlarmRule {
    /// The alarm OID (the value of upsAlarmDescr and its kin).
    pub oid: OidBuf,
    /// Its name.
    pub name: String,
    /// Its MIB.
    pub mib: String,
    /// The event when the alarm is added; its removal clears it (`Event::cleared`).
    pub event: Event,
}

/// A name for an object or subtree, for display only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectName {
    /// The object (or subtree) OID, without instance.
    pub oid: OidBuf,
    /// Its name.
    pub name: String,
    /// Its MIB.
    pub mib: String,
}

/// The recorder acknowledgement enterprise (the seed's NVR sends a v1 trap under it).
pub const RECORDER_ACK_ENTERPRISE: &str = "1.3.6.1.4.1.50001";

/// RFC 1628 UPS-MIB notifications: `upsTraps` = 1.3.6.1.2.1.33.2, defined without `.0`.
const UPS_MIB_TRAPS: &[(u32, &str, Ev)] = &[
    (1, "upsTrapOnBattery", Ev::Is(Event::OnBattery)),
    (2, "upsTrapTestCompleted", Ev::Is(Event::Informational)),
    (3, "upsTrapAlarmEntryAdded", Ev::AlarmAdded),
    (4, "upsTrapAlarmEntryRemoved", Ev::AlarmRemoved),
];

/// SNMPv2-MIB generic traps (snmpTraps.1–6): what v1 generic-trap 0–5 become.
const GENERIC_TRAPS: &[(u32, &str)] = &[
    (1, "coldStart"),
    (2, "warmStart"),
    (3, "linkDown"),
    (4, "linkUp"),
    (5, "authenticationFailure"),
    (6, "egpNeighborLoss"),
];

/// Objects a decoded trap or poll shows: (OID, name, MIB).
const OBJECTS: &[(&str, &str, &str)] = &[
    ("1.3.6.1.2.1.1.1", "sysDescr", "SNMPv2-MIB"),
    ("1.3.6.1.2.1.1.2", "sysObjectID", "SNMPv2-MIB"),
    ("1.3.6.1.2.1.1.3", "sysUpTime", "SNMPv2-MIB"),
    ("1.3.6.1.2.1.1.4", "sysContact", "SNMPv2-MIB"),
    ("1.3.6.1.2.1.1.5", "sysName", "SNMPv2-MIB"),
    ("1.3.6.1.2.1.1.6", "sysLocation", "SNMPv2-MIB"),
    ("1.3.6.1.2.1.1.7", "sysServices", "SNMPv2-MIB"),
    ("1.3.6.1.2.1.2.1", "ifNumber", "IF-MIB"),
    ("1.3.6.1.2.1.2.2.1.1", "ifIndex", "IF-MIB"),
    ("1.3.6.1.2.1.2.2.1.2", "ifDescr", "IF-MIB"),
    ("1.3.6.1.2.1.2.2.1.3", "ifType", "IF-MIB"),
    ("1.3.6.1.2.1.2.2.1.7", "ifAdminStatus", "IF-MIB"),
    ("1.3.6.1.2.1.2.2.1.8", "ifOperStatus", "IF-MIB"),
    ("1.3.6.1.6.3.1.1.4.1", "snmpTrapOID", "SNMPv2-MIB"),
    ("1.3.6.1.6.3.1.1.4.3", "snmpTrapEnterprise", "SNMPv2-MIB"),
    (
        "1.3.6.1.6.3.18.1.3",
        "snmpTrapAddress",
        "SNMP-COMMUNITY-MIB",
    ),
    (
        "1.3.6.1.6.3.18.1.4",
        "snmpTrapCommunity",
        "SNMP-COMMUNITY-MIB",
    ),
    // APC PowerNet-MIB
    ("1.3.6.1.4.1.318", "apc", "PowerNet-MIB"),
    ("1.3.6.1.4.1.318.2.3.1", "mtrapargsInteger", "PowerNet-MIB"),
    (
        "1.3.6.1.4.1.318.2.3.2",
        "mtrapargsIpAddress",
        "PowerNet-MIB",
    ),
    ("1.3.6.1.4.1.318.2.3.3", "mtrapargsString", "PowerNet-MIB"),
    ("1.3.6.1.4.1.318.2.3.4", "mtrapargsGauge", "PowerNet-MIB"),
    (
        "1.3.6.1.4.1.318.2.3.5",
        "mtrapargsTimeTicks",
        "PowerNet-MIB",
    ),
    (
        "1.3.6.1.4.1.318.2.3.6",
        "mtrapargsInteger02",
        "PowerNet-MIB",
    ),
    (
        "1.3.6.1.4.1.318.2.3.7",
        "mtrapargsInteger03",
        "PowerNet-MIB",
    ),
    (
        "1.3.6.1.4.1.318.2.3.10",
        "mtrapargsString02",
        "PowerNet-MIB",
    ),
    (
        "1.3.6.1.4.1.318.2.3.11",
        "mtrapargsString03",
        "PowerNet-MIB",
    ),
    (
        "1.3.6.1.4.1.318.2.3.23",
        "mtrapargsOctetString",
        "PowerNet-MIB",
    ),
    (
        "1.3.6.1.4.1.318.1.1.1.1.1.1",
        "upsBasicIdentModel",
        "PowerNet-MIB",
    ),
    (
        "1.3.6.1.4.1.318.1.1.1.1.1.2",
        "upsBasicIdentName",
        "PowerNet-MIB",
    ),
    (
        "1.3.6.1.4.1.318.1.1.1.2.1.1",
        "upsBasicBatteryStatus",
        "PowerNet-MIB",
    ),
    (
        "1.3.6.1.4.1.318.1.1.1.2.1.2",
        "upsBasicBatteryTimeOnBattery",
        "PowerNet-MIB",
    ),
    (
        "1.3.6.1.4.1.318.1.1.1.2.2.1",
        "upsAdvBatteryCapacity",
        "PowerNet-MIB",
    ),
    (
        "1.3.6.1.4.1.318.1.1.1.2.2.3",
        "upsAdvBatteryRunTimeRemaining",
        "PowerNet-MIB",
    ),
    (
        "1.3.6.1.4.1.318.1.1.1.2.3.1",
        "upsHighPrecBatteryCapacity",
        "PowerNet-MIB",
    ),
    (
        "1.3.6.1.4.1.318.1.1.1.4.1.1",
        "upsBasicOutputStatus",
        "PowerNet-MIB",
    ),
    (
        "1.3.6.1.4.1.318.1.1.1.4.2.3",
        "upsAdvOutputLoad",
        "PowerNet-MIB",
    ),
    (
        "1.3.6.1.4.1.318.1.1.1.5.2.10",
        "upsAdvConfigShutoffDelay",
        "PowerNet-MIB",
    ),
    ("1.3.6.1.4.1.318.1.1.1.8.1", "upsCommStatus", "PowerNet-MIB"),
    // RFC 1628 UPS-MIB
    ("1.3.6.1.2.1.33", "upsMIB", "UPS-MIB"),
    ("1.3.6.1.2.1.33.1.2.1", "upsBatteryStatus", "UPS-MIB"),
    ("1.3.6.1.2.1.33.1.2.2", "upsSecondsOnBattery", "UPS-MIB"),
    (
        "1.3.6.1.2.1.33.1.2.3",
        "upsEstimatedMinutesRemaining",
        "UPS-MIB",
    ),
    (
        "1.3.6.1.2.1.33.1.2.4",
        "upsEstimatedChargeRemaining",
        "UPS-MIB",
    ),
    ("1.3.6.1.2.1.33.1.2.5", "upsBatteryVoltage", "UPS-MIB"),
    ("1.3.6.1.2.1.33.1.4.1", "upsOutputSource", "UPS-MIB"),
    ("1.3.6.1.2.1.33.1.6.1", "upsAlarmsPresent", "UPS-MIB"),
    ("1.3.6.1.2.1.33.1.6.2.1.1", "upsAlarmId", "UPS-MIB"),
    ("1.3.6.1.2.1.33.1.6.2.1.2", "upsAlarmDescr", "UPS-MIB"),
    ("1.3.6.1.2.1.33.1.6.2.1.3", "upsAlarmTime", "UPS-MIB"),
    ("1.3.6.1.2.1.33.1.7.1", "upsTestId", "UPS-MIB"),
    ("1.3.6.1.2.1.33.1.8.1", "upsShutdownType", "UPS-MIB"),
    ("1.3.6.1.2.1.33.1.8.2", "upsShutdownAfterDelay", "UPS-MIB"),
    ("1.3.6.1.2.1.33.1.8.3", "upsStartupAfterDelay", "UPS-MIB"),
    ("1.3.6.1.2.1.33.1.8.5", "upsAutoRestart", "UPS-MIB"),
    ("1.3.6.1.2.1.33.1.9.7", "upsConfigLowBattTime", "UPS-MIB"),
    // Eaton XUPS-MIB and MGE
    ("1.3.6.1.4.1.534", "eaton", "XUPS-MIB"),
    ("1.3.6.1.4.1.534.1.2.1", "xupsBatTimeRemaining", "XUPS-MIB"),
    ("1.3.6.1.4.1.534.1.2.4", "xupsBatCapacity", "XUPS-MIB"),
    ("1.3.6.1.4.1.534.1.2.5", "xupsBatteryAbmStatus", "XUPS-MIB"),
    ("1.3.6.1.4.1.534.1.3.5", "xupsInputSource", "XUPS-MIB"),
    ("1.3.6.1.4.1.534.1.4.5", "xupsOutputSource", "XUPS-MIB"),
    ("1.3.6.1.4.1.534.1.7.1", "xupsAlarms", "XUPS-MIB"),
    ("1.3.6.1.4.1.534.1.7.2.1.1", "xupsAlarmID", "XUPS-MIB"),
    ("1.3.6.1.4.1.534.1.7.2.1.2", "xupsAlarmDescr", "XUPS-MIB"),
    ("1.3.6.1.4.1.534.1.11.3", "xupsTrapMessage", "XUPS-MIB"),
    (
        "1.3.6.1.4.1.705.1.5.1",
        "upsmgBatteryRemainingTime",
        "MG-SNMP-UPS-MIB",
    ),
    (
        "1.3.6.1.4.1.705.1.5.2",
        "upsmgBatteryLevel",
        "MG-SNMP-UPS-MIB",
    ),
    // CyberPower CPS-MIB
    ("1.3.6.1.4.1.3808", "cps", "CPS-MIB"),
    ("1.3.6.1.4.1.3808.2.2.1", "mtrapinfoInteger", "CPS-MIB"),
    ("1.3.6.1.4.1.3808.2.2.2", "mtrapinfoIpAddress", "CPS-MIB"),
    ("1.3.6.1.4.1.3808.2.2.3", "mtrapinfoString", "CPS-MIB"),
    (
        "1.3.6.1.4.1.3808.1.1.1.2.1.1",
        "upsBaseBatteryStatus",
        "CPS-MIB",
    ),
    (
        "1.3.6.1.4.1.3808.1.1.1.2.2.1",
        "upsAdvanceBatteryCapacity",
        "CPS-MIB",
    ),
    (
        "1.3.6.1.4.1.3808.1.1.1.2.2.4",
        "upsAdvanceBatteryRunTimeRemaining",
        "CPS-MIB",
    ),
    (
        "1.3.6.1.4.1.3808.1.1.1.4.1.1",
        "upsBaseOutputStatus",
        "CPS-MIB",
    ),
    // Liebert, Socomec, Megatec, Delta
    (
        "1.3.6.1.4.1.476.1.42.3.2.3.1.1",
        "lgpConditionId",
        "LIEBERT-GP-CONDITIONS-MIB",
    ),
    (
        "1.3.6.1.4.1.476.1.42.3.2.3.1.2",
        "lgpConditionDescr",
        "LIEBERT-GP-CONDITIONS-MIB",
    ),
    (
        "1.3.6.1.4.1.476.1.42.3.2.3.1.3",
        "lgpConditionTime",
        "LIEBERT-GP-CONDITIONS-MIB",
    ),
    (
        "1.3.6.1.4.1.4555.1.1.1.1.10.50",
        "upsAgentTrapString",
        "SOCOMECUPS-MIB",
    ),
    ("1.3.6.1.4.1.935", "ppc", "XPPC-MIB"),
    ("1.3.6.1.4.1.2254.2.4", "dups", "DeltaUPS-MIB"),
    // The recorder side
    (RECORDER_ACK_ENTERPRISE, "recorderAck", "NVR"),
];

/// Every built-in trap rule.
pub fn builtin_trap_rules() -> Vec<TrapRule> {
    let mut rules = Vec::new();
    let mut smi_v1 = |mib: &str, enterprise: &str, traps: &[(u32, &str, Ev)]| {
        let ent = oid(enterprise);
        for &(n, name, event) in traps {
            for key in [ent.child(&[0, n]), ent.child(&[n])] {
                rules.push(TrapRule {
                    oid: key,
                    name: name.to_string(),
                    mib: mib.to_string(),
                    event,
                    prefix: false,
                });
            }
        }
    };
    for v in super::tables::VENDORS {
        smi_v1(v.mib, v.enterprise, v.traps);
    }
    smi_v1("UPS-MIB", "1.3.6.1.2.1.33.2", UPS_MIB_TRAPS);
    let snmp_traps = oid("1.3.6.1.6.3.1.1.5");
    for &(n, name) in GENERIC_TRAPS {
        rules.push(TrapRule {
            oid: snmp_traps.child(&[n]),
            name: name.to_string(),
            mib: "SNMPv2-MIB".to_string(),
            event: Ev::Is(Event::Informational),
            prefix: false,
        });
    }
    rules.push(TrapRule {
        oid: oid(RECORDER_ACK_ENTERPRISE),
        name: "recorderAck".to_string(),
        mib: "NVR".to_string(),
        event: Ev::Is(Event::RecorderAck),
        prefix: true,
    });
    rules
}

/// Every built-in alarm and condition OID.
pub fn builtin_alarms() -> Vec<AlarmRule> {
    super::tables::ALARMS
        .iter()
        .map(|&(o, name, mib, event)| AlarmRule {
            oid: oid(o),
            name: name.to_string(),
            mib: mib.to_string(),
            event,
        })
        .collect()
}

/// Every built-in object name: objects, trap names (their `E.0.N` form), alarms.
pub fn builtin_object_names() -> Vec<ObjectName> {
    let named = |oid: OidBuf, name: &str, mib: &str| ObjectName {
        oid,
        name: name.to_string(),
        mib: mib.to_string(),
    };
    let mut names: Vec<ObjectName> = OBJECTS
        .iter()
        .map(|&(o, name, mib)| named(oid(o), name, mib))
        .collect();
    // Trap names in their SMIv2 form only: `E.N` would name unrelated subtrees
    // (APC's 318.1 is its products tree, not trap 1).
    for v in super::tables::VENDORS {
        let ent = oid(v.enterprise);
        names.extend(
            v.traps
                .iter()
                .map(|&(n, name, _)| named(ent.child(&[0, n]), name, v.mib)),
        );
    }
    let ups_traps = oid("1.3.6.1.2.1.33.2");
    names.extend(
        UPS_MIB_TRAPS
            .iter()
            .map(|&(n, name, _)| named(ups_traps.child(&[n]), name, "UPS-MIB")),
    );
    let snmp_traps = oid("1.3.6.1.6.3.1.1.5");
    names.extend(
        GENERIC_TRAPS
            .iter()
            .map(|&(n, name)| named(snmp_traps.child(&[n]), name, "SNMPv2-MIB")),
    );
    names.extend(builtin_alarms().into_iter().map(|a| ObjectName {
        oid: a.oid,
        name: a.name,
        mib: a.mib,
    }));
    names
}
