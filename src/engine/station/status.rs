//! The status page's data (`/status.json`): copied from the station as plain values
//! (`StatusRows`, on the decision thread), made into JSON elsewhere (`to_json`, on the
//! HTTP endpoint's thread), so that a site of thousands of recorders costs the
//! decisions a copy, not a serialization.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::classify::Event;
use crate::engine::agent::UpsView;
use crate::engine::config::Site;
use crate::engine::id::{RecorderId, UpsId};
use crate::engine::ledger::Standing;
use crate::time::Timestamp;

/// One UPS's state.
#[derive(Clone, Copy, Debug)]
pub struct UpsRow {
    /// What its polls said.
    pub view: UpsView,
    /// On battery, as the policy has it (its traps or its polls).
    pub on_battery: bool,
    /// Since when, as the policy has it.
    pub since: Option<Timestamp>,
    /// Mains power back and settling: since when the outage ran, and when power came
    /// back (the outage ends if it holds for the settling minute).
    pub settling: Option<(Timestamp, Timestamp)>,
    /// Its last trap or inform, and when.
    pub last_trap: Option<(Timestamp, Event)>,
}

impl UpsRow {
    /// Whether the UPS answered a poll lately: within three of its poll intervals, and
    /// at least 30 s.
    pub fn answering(&self, ups: &crate::engine::config::Ups, now: Timestamp) -> bool {
        self.view
            .polled_at
            .is_some_and(|p| now.secs_since(p) <= ups.poll_interval.0.saturating_mul(3).max(30))
    }
}

/// The names of where a recorder stands, as `/status.json` and `/metrics` give them.
pub const STATES: [&str; 7] = [
    "idle",
    "told",
    "acknowledged",
    "unacknowledged",
    "returning",
    "back",
    "not_back",
];

/// Where `s` stands, as an index into `STATES`.
pub fn state_index(s: &Standing) -> usize {
    match s {
        Standing::Idle => 0,
        Standing::Ordered { .. } => 1,
        Standing::Acknowledged { .. } => 2,
        Standing::NotAcknowledged { .. } => 3,
        Standing::Returning { .. } => 4,
        Standing::Back { .. } => 5,
        Standing::NotBack => 6,
    }
}

/// The site and its state at one moment.
#[derive(Clone, Debug)]
pub struct StatusRows {
    /// The site (names, addresses, tiers, feeds).
    pub site: Arc<Site>,
    /// The station's time.
    pub time: Timestamp,
    /// The wall clock's lead on the station's, for the times shown.
    pub offset: i64,
    /// Every UPS's state, in site order.
    pub upses: Vec<UpsRow>,
    /// Every recorder's standing, in site order.
    pub standing: Vec<Standing>,
    /// Which recorders were heard from after they should have been down, in this
    /// outage (`did_not_shut_down`).
    pub still_running: Vec<bool>,
    /// The outlets trapgate may cut: name, where each stands (and when it is due), the
    /// recorders each feeds.
    pub outlets: Vec<OutletRow>,
    /// This gateway's half of a pair (`[pair]`), if it is one.
    pub pair: Option<PairRow>,
    /// Each `[[notify]]` target's counts.
    pub notify: Vec<NotifyRow>,
}

/// One `[[notify]]` target, as `/metrics`, the status page and `trapgate status` show it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NotifyRow {
    /// `syslog udp:127.0.0.1:514`, …
    pub target: String,
    /// Messages it took.
    pub sent: u64,
    /// Records it was never told (its queue full, or every try failed).
    pub dropped: u64,
    /// Tries that failed.
    pub failed: u64,
    /// Waiting now.
    pub queued: u64,
    /// Its connection up (UDP: always).
    pub connected: bool,
}

/// One gateway of a pair, as its status page, `trapgate status` and `/metrics` show it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PairRow {
    /// It holds the pair's address: it answers, orders and commands.
    pub actor: bool,
    /// Since when (the station's time).
    pub since: Timestamp,
    /// The pair's address.
    pub address: String,
    /// This gateway's pair endpoint, and its peer's.
    pub me: String,
    /// The peer's.
    pub peer: String,
    /// The peer's role as it last said it (None: never heard).
    pub peer_actor: Option<bool>,
    /// Milliseconds since the peer was last heard.
    pub peer_heard_ms: Option<u64>,
    /// Records shipped to the peer, records of the peer's applied here.
    pub shipped: u64,
    /// Records of the peer's applied here.
    pub received: u64,
    /// Datagrams sent to the peer, and those the kernel would not send.
    pub datagrams: u64,
    /// Datagrams the kernel would not send to the peer.
    pub send_failed: u64,
    /// Datagrams refused on the pair socket, by reason.
    pub refused: Vec<(&'static str, u64)>,
}

impl PairRow {
    /// Its role's name.
    pub fn role(&self) -> &'static str {
        if self.actor { "actor" } else { "standby" }
    }
}

/// One outlet trapgate may cut, as the status page shows it.
#[derive(Clone, Debug)]
pub struct OutletRow {
    /// "ups-main/group 2", "ups-main", "pdu-a/outlet 7".
    pub name: String,
    /// Where it stands.
    pub stage: crate::engine::power::Stage,
    /// The recorders it feeds.
    pub recorders: Vec<RecorderId>,
}

/// The site in one line.
pub fn summary(upses: usize, on_battery: usize, standing: &[Standing]) -> String {
    let (mut told, mut acknowledged) = (0, 0);
    for s in standing {
        match s {
            // Nothing under way, or back after the outage.
            Standing::Idle | Standing::Back { .. } => {}
            Standing::Acknowledged { .. } => {
                told += 1;
                acknowledged += 1;
            }
            _ => told += 1,
        }
    }
    format!(
        "{} UPS on mains, {on_battery} on battery; {} recorders, {told} told, {acknowledged} acknowledged",
        upses - on_battery,
        standing.len()
    )
}

impl StatusRows {
    /// Each outage in progress as a timeline: the UPS on battery since when, each tier
    /// it feeds in the order they are shed (the highest first) with its grace's end,
    /// when it was shed and where its recorders stand, and the outlets' cut (the last
    /// deadline of its orders).
    /// An outage whose mains power is back is shown until it ends (the settling
    /// minute): the tiers not shed then wait, and are not shed if power holds.
    fn outages(&self, wall: &dyn Fn(Timestamp) -> String) -> Vec<Value> {
        let site = &self.site;
        let mut out = Vec::new();
        for ((u, ups), row) in UpsId::enumerate(&site.upses).zip(&self.upses) {
            if !row.on_battery && row.settling.is_none() {
                continue;
            }
            let back = row.settling.map(|(_, back)| back);
            let since = row
                .since
                .or(row.settling.map(|(since, _)| since))
                .or(row.view.on_battery_since);
            // Per tier: shed at (the first order), counts by state.
            let mut tiers: std::collections::BTreeMap<u8, (Option<Timestamp>, [u32; 7])> =
                std::collections::BTreeMap::new();
            let mut outlets_off: Option<Timestamp> = None;
            for (rec, standing) in site.recorders.iter().zip(&self.standing) {
                if !rec.feeds.contains(&u) {
                    continue;
                }
                let tier = tiers.entry(rec.tier).or_default();
                tier.1[state_index(standing)] += 1;
                let ordered = match *standing {
                    Standing::Ordered { at, until, .. } => {
                        outlets_off = Some(outlets_off.map_or(until, |o| o.max(until)));
                        Some(at)
                    }
                    Standing::Acknowledged { ordered, .. }
                    | Standing::NotAcknowledged { ordered }
                    | Standing::Returning { ordered, .. } => Some(ordered),
                    _ => None,
                };
                if let Some(at) = ordered {
                    tier.0 = Some(tier.0.map_or(at, |t: Timestamp| t.min(at)));
                }
            }
            let tiers: Vec<Value> = tiers
                .iter()
                .rev()
                .map(|(tier, (shed, n))| {
                    // While mains settles no grace runs: the tier waits for the outage's end.
                    let due = since
                        .and_then(|s| site.policy.grace.get(tier).map(|g| s.plus_secs(g.0)))
                        .filter(|_| back.is_none());
                    json!({
                        "tier": tier,
                        "grace_ends": due.map(wall),
                        "held": shed.is_none() && back.is_some(),
                        "shed_at": shed.map(wall),
                        "recorders": n.iter().sum::<u32>(),
                        "told": n[1],
                        "acknowledged": n[2],
                        "not_acknowledged": n[3],
                        "idle": n[0],
                    })
                })
                .collect();
            out.push(json!({
                "ups": ups.name,
                "on_battery_since": since.map(wall),
                "mains_back_at": back.map(wall),
                "outage_ends_at": back.map(|b| wall(b.plus_secs(crate::engine::policy::SETTLE.0))),
                "tiers": tiers,
                "outlets_off_at": outlets_off.map(wall),
            }));
        }
        out
    }

    /// The page's JSON: `time`, `summary`, `upses` (on battery or not and since when,
    /// polled charge and runtime, when it last answered and whether it answers, its
    /// last trap) and `recorders` (tier, kind, feeds, and where it stands: idle, told,
    /// acknowledged, not_acknowledged, returning, back, not_back).
    pub fn to_json(&self) -> Value {
        let site = &self.site;
        let now = self.time;
        let wall = |t: Timestamp| t.shifted(self.offset).utc().to_string();
        let on_battery = self.upses.iter().filter(|u| u.on_battery).count();
        let upses: Vec<Value> = UpsId::enumerate(&site.upses)
            .zip(&self.upses)
            .map(|((_, ups), row)| {
                let view = &row.view;
                let answering = row.answering(ups, now);
                json!({
                    "name": ups.name,
                    "address": ups.address.to_string(),
                    "vendor": ups.vendor.maker(),
                    "on_battery": row.on_battery,
                    "on_battery_since": row.since.or(view.on_battery_since).map(wall),
                    "charge": view.values.charge,
                    "runtime_s": view.values.runtime.map(|r| r.0),
                    "battery_low": view.values.battery_low,
                    "polled_at": view.polled_at.map(wall),
                    "answering_polls": answering,
                    "last_trap": row.last_trap.map(|(t, e)| json!({"time": wall(t), "event": e.name()})),
                })
            })
            .collect();
        let recorders: Vec<Value> = RecorderId::enumerate(&site.recorders)
            .zip(&self.standing)
            .map(|((r, rec), standing)| {
                let (state, ordered, attempts, until) = match *standing {
                    Standing::Idle => ("idle", None, None, None),
                    Standing::Ordered {
                        at, sent, until, ..
                    } => ("told", Some(at), Some(sent), Some(until)),
                    Standing::Acknowledged { ordered, .. } => {
                        ("acknowledged", Some(ordered), None, None)
                    }
                    Standing::NotAcknowledged { ordered } => {
                        ("not_acknowledged", Some(ordered), None, None)
                    }
                    Standing::Returning { ordered, .. } => {
                        ("returning", Some(ordered), None, None)
                    }
                    Standing::Back { .. } => ("back", None, None, None),
                    Standing::NotBack => ("not_back", None, None, None),
                };
                json!({
                    "name": rec.name,
                    "address": rec.address.to_string(),
                    "tier": rec.tier,
                    "kind": rec.kind.name(),
                    "ups": rec.feeds.iter().map(|&u| site.upses[u].name.as_str()).collect::<Vec<_>>(),
                    "state": state,
                    "ordered_at": ordered.map(wall),
                    "attempts": attempts,
                    "outlet_off_at": until.map(wall),
                    "still_running": self.still_running.get(r.index()).copied().unwrap_or(false),
                })
            })
            .collect();
        let outlets: Vec<Value> = self
            .outlets
            .iter()
            .map(|o| {
                json!({
                    "name": o.name,
                    "state": o.stage.name(),
                    "cut_at": match o.stage {
                        crate::engine::power::Stage::Due { at } => Some(wall(at)),
                        _ => None,
                    },
                    "recorders": o.recorders.iter().map(|r| site.recorders[*r].name.as_str()).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({
            "time": wall(now),
            "summary": summary(site.upses.len(), on_battery, &self.standing),
            "upses": upses,
            "outages": self.outages(&wall),
            "recorders": recorders,
            "outlets": outlets,
            "notify": self.notify.iter().map(|n| json!({
                "target": n.target,
                "sent": n.sent,
                "dropped": n.dropped,
                "failed": n.failed,
                "queued": n.queued,
                "connected": n.connected,
            })).collect::<Vec<_>>(),
            "pair": self.pair.as_ref().map(|p| json!({
                "role": p.role(),
                "since": wall(p.since),
                "address": p.address,
                "self": p.me,
                "peer": p.peer,
                "peer_role": p.peer_actor.map(|a| if a { "actor" } else { "standby" }),
                "peer_heard_s": p.peer_heard_ms.map(|ms| ms as f64 / 1000.0),
                "records_shipped": p.shipped,
                "records_received": p.received,
            })),
        })
    }
}
