//! Where each recorder's power comes from, as far as trapgate can switch it: a UPS's
//! outlet group (APC) or receptacle (Eaton), a whole UPS's output, a switched PDU's
//! outlet (`[[pdu]]`); the write access a card gives trapgate (`write_community`, or a
//! v3 `write_user`); and a recorder's Wake-on-LAN.
//!
//! ```toml
//! [[ups]]
//! write_community = "private"        # or write_community_file / _env, or write_user
//! [[pdu]]
//! name = "pdu-a"
//! address = "192.0.2.40"
//! vendor = "apc-rpdu2"               # apc-rpdu, apc-rpdu2, cyberpower-epdu
//! write_community = "private"
//! [[recorder]]
//! outlet = { ups = "ups-main", group = 2 }   # or { ups = "ups-main" }, { pdu = "pdu-a", outlet = 7 }
//! wol = "00:11:22:33:44:55"                  # wol_to = "192.0.2.255:9"
//! ```

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use toml_span::Span;
use toml_span::value::{Value, ValueInner};

use super::usm::{SecretAt, Secrets, UsmUser, V3Access};
use super::{
    Mistakes, Tbl, Vendor, finish, int_in, one_of, optional, or_default, parse_as, required, table,
    text,
};
use crate::engine::id::{PduId, UpsId};

/// How trapgate writes to a card: the SET requests that cycle an outlet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// This read-write community, in SNMPv1 (or SNMPv2c: `write_version = "2c"`).
    Community {
        /// The community.
        community: String,
        /// SNMPv2c rather than SNMPv1.
        v2c: bool,
    },
    /// SNMPv3 as this user (one with a write view on the card), at its level.
    User(V3Access),
}

/// A switched PDU's kind: whose MIB commands its outlets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PduVendor {
    /// APC's first rack PDUs (AP79xx): rPDUOutletControlOutletCommand.
    ApcRpdu,
    /// APC's rPDU2 (AP8xxx, AP79xx on rPDU2 firmware): rPDU2OutletSwitchedControlCommand.
    ApcRpdu2,
    /// CyberPower's switched ePDU: ePDUOutletControlOutletCommand.
    CyberPowerEpdu,
}

impl PduVendor {
    /// Its name in the site file.
    pub fn name(self) -> &'static str {
        match self {
            PduVendor::ApcRpdu => "apc-rpdu",
            PduVendor::ApcRpdu2 => "apc-rpdu2",
            PduVendor::CyberPowerEpdu => "cyberpower-epdu",
        }
    }

    const NAMES: [(&'static str, PduVendor); 3] = [
        ("apc-rpdu", PduVendor::ApcRpdu),
        ("apc-rpdu2", PduVendor::ApcRpdu2),
        ("cyberpower-epdu", PduVendor::CyberPowerEpdu),
    ];
}

/// A switched rack PDU (`[[pdu]]`): no battery, downstream of a UPS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pdu {
    /// Its name in the site.
    pub name: String,
    /// Its card's address.
    pub address: IpAddr,
    /// Its card's SNMP port.
    pub port: u16,
    /// Its MIB.
    pub vendor: PduVendor,
    /// Its read community.
    pub community: String,
    /// SNMPv3: its read user and level.
    pub v3: Option<V3Access>,
    /// How trapgate writes to it.
    pub write: Option<Write>,
}

/// Where a recorder's power comes from, as far as trapgate can switch it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Plug {
    /// An outlet group of a UPS (APC) or one of its receptacles (Eaton).
    Group {
        /// The UPS.
        ups: UpsId,
        /// The group's (receptacle's) number, from 1.
        group: u32,
    },
    /// A UPS's whole output.
    Output(UpsId),
    /// An outlet of a switched PDU.
    PduOutlet {
        /// The PDU.
        pdu: PduId,
        /// The outlet's number, from 1.
        outlet: u32,
    },
}

impl super::Site {
    /// How the operator knows `plug`: `ups-main/group 2`, `ups-main` (its whole output),
    /// `pdu-a/outlet 7`.
    pub fn plug_name(&self, plug: Plug) -> String {
        match plug {
            Plug::Group { ups, group } => format!("{}/group {group}", self.upses[ups].name),
            Plug::Output(ups) => self.upses[ups].name.clone(),
            Plug::PduOutlet { pdu, outlet } => format!("{}/outlet {outlet}", self.pdus[pdu].name),
        }
    }
}

/// Wake-on-LAN for a recorder: its MAC, and where the magic packet goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wol {
    /// Its network card's address.
    pub mac: [u8; 6],
    /// Where the magic packet is sent (default: the broadcast address, port 9).
    pub to: SocketAddr,
}

/// The default destination of a magic packet: everyone on the segment, port 9 (discard).
pub const WOL_BROADCAST: SocketAddr = SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::BROADCAST), 9);

/// Whether `vendor`'s UPSes have outlet groups (receptacles) trapgate can command.
pub fn has_groups(vendor: Vendor) -> bool {
    matches!(vendor, Vendor::Apc | Vendor::Eaton)
}

/// Whether trapgate reads the card's shutoff delay (the site's `outlet_off_delay` may be
/// left out): APC's `upsAdvConfigShutoffDelay`, CyberPower's `upsAdvanceConfigShutoffDelay`.
pub fn off_delay_is_read(vendor: Vendor) -> bool {
    matches!(vendor, Vendor::Apc | Vendor::CyberPower)
}

/// Whether trapgate can cycle `vendor`'s whole output with a form that returns by
/// itself once mains is good.
pub fn has_output_control(vendor: Vendor) -> bool {
    matches!(
        vendor,
        Vendor::Apc | Vendor::UpsMib | Vendor::Eaton | Vendor::CyberPower
    )
}

/// A secret given inline (`key`, kept out of the journaled text), in a file
/// (`key_file`, its first line) or in the environment (`key_env`): at most one.
/// Some(None): none given; None: a mistake, noted.
pub(super) fn secret(
    t: &mut Tbl<'_>,
    keys: [&'static str; 3],
    secrets: Secrets<'_>,
    m: &mut Mistakes,
) -> Option<Option<String>> {
    let given: Vec<(&str, Option<toml_span::Spanned<String>>)> = keys
        .iter()
        .filter_map(|k| optional(t, k).map(|v| (*k, text(Some(v), m))))
        .collect();
    let (key, value) = match given.as_slice() {
        [] => return Some(None),
        [(key, value)] => (*key, value.clone()?),
        [.., (key, value)] => {
            let span = value.as_ref().map_or(t.span, |v| v.span);
            m.add(
                span,
                format!(
                    "`{key}`: give one of `{}`, `{}` and `{}`, not several",
                    keys[0], keys[1], keys[2]
                ),
            );
            return None;
        }
    };
    if key == keys[0] {
        m.secret_spans.push(value.span);
        return Some(Some(value.value));
    }
    let at = if key == keys[1] {
        SecretAt::File(&value.value)
    } else {
        SecretAt::Env(&value.value)
    };
    match secrets(at) {
        Ok(s) => Some(Some(s)),
        Err(why) => {
            m.add(value.span, format!("`{key}` = \"{}\": {why}", value.value));
            None
        }
    }
}

/// A card's write access: `write_community` (or its `_file` / `_env`), or for a v3 card
/// `write_user` (a `[[usm_user]]`). None if neither is given.
pub(super) fn write(
    t: &mut Tbl<'_>,
    v3: Option<&V3Access>,
    users: &[(Span, UsmUser)],
    secrets: Secrets<'_>,
    m: &mut Mistakes,
) -> Option<Option<Write>> {
    let community = secret(
        t,
        [
            "write_community",
            "write_community_file",
            "write_community_env",
        ],
        secrets,
        m,
    )?;
    let user = optional(t, "write_user").and_then(|v| text(Some(v), m));
    // The community's SNMP version: "1" (every card takes it) or "2c" (its errors say
    // more: noAccess, notWritable, wrongValue where SNMPv1 has noSuchName, badValue).
    let version = optional(t, "write_version").and_then(|v| text(Some(v), m));
    let v2c = match version.as_ref().map(|v| v.value.as_str()) {
        None | Some("1") => false,
        Some("2c") => true,
        Some(other) => {
            let at = version.as_ref().map_or(t.span, |v| v.span);
            m.add(
                at,
                format!("`write_version` `{other}`: \"1\" or \"2c\" (a v3 card has `write_user`)"),
            );
            return None;
        }
    };
    if let (Some(v), None) = (&version, &community) {
        m.add(
            v.span,
            "`write_version` is the version of `write_community`: give that too, or remove it",
        );
        return None;
    }
    match (community, user, v3) {
        (None, None, _) => Some(None),
        (Some(_), Some(u), _) => {
            m.add(
                u.span,
                "give `write_community` (SNMPv1) or `write_user` (SNMPv3), not both",
            );
            None
        }
        (Some(community), None, None) => Some(Some(Write::Community { community, v2c })),
        (Some(_), None, Some(_)) => {
            m.add(
                t.span,
                "a card of version \"3\" is written to as a v3 user: `write_user`, not `write_community`",
            );
            None
        }
        (None, Some(u), None) => {
            m.add(
                u.span,
                "`write_user` is for a card of version \"3\": add `version = \"3\"`, or give `write_community`",
            );
            None
        }
        (None, Some(u), Some(_)) => match users.iter().find(|(_, x)| x.name == u.value) {
            None => {
                m.add(
                    u.span,
                    format!("`write_user` `{}` is not a [[usm_user]]", u.value),
                );
                None
            }
            Some((_, x)) if x.auth.is_none() => {
                m.add(
                    u.span,
                    format!(
                        "`write_user` `{}` has no authentication: a card's write access is never given unauthenticated",
                        u.value
                    ),
                );
                None
            }
            Some((_, x)) => Some(Some(Write::User(V3Access {
                user: u.value,
                level: x.level(),
            }))),
        },
    }
}

/// One `[[pdu]]`, and where it is.
pub(super) fn pdu(
    v: &mut Value<'_>,
    users: &[(Span, UsmUser)],
    secrets: Secrets<'_>,
    m: &mut Mistakes,
) -> (Option<toml_span::Spanned<String>>, Span, Option<Pdu>) {
    let at = v.span;
    let Some(mut t) = table(v, m) else {
        return (None, at, None);
    };
    let name = text(required(&mut t, "name", m), m);
    let address = parse_as::<IpAddr>(text(required(&mut t, "address", m), m), "an IP address", m);
    let port = or_default(optional(&mut t, "port"), 161, |v| {
        int_in::<u16>(v, "port", (1, 65535), m)
    });
    let vendor = one_of(text(required(&mut t, "vendor", m), m), &PduVendor::NAMES, m);
    let community = or_default(optional(&mut t, "community"), "public".to_string(), |v| {
        text(v, m).map(|s| s.value)
    });
    let v3 = super::usm::access(&mut t, at, users, "PDU", m);
    let write = v3
        .as_ref()
        .and_then(|v3| write(&mut t, v3.as_ref(), users, secrets, m));
    if let Some(None) = &write {
        m.add(
            at,
            "a [[pdu]] is there for trapgate to switch its outlets: give it `write_community` (or, for version \"3\", `write_user`)",
        );
    }
    finish(t, m);
    let item = (|| {
        Some(Pdu {
            name: name.as_ref()?.value.clone(),
            address: address?,
            port: port?,
            vendor: vendor?,
            community: community?,
            v3: v3?,
            write: write?,
        })
    })();
    (name, at, item)
}

/// What a recorder's `outlet` names, before it is checked against its feeds.
pub(super) struct OutletAt {
    pub plug: Plug,
    pub at: Span,
}

/// A recorder's `outlet = { ups = "…", group = N }`, `{ ups = "…" }` or
/// `{ pdu = "…", outlet = N }`.
pub(super) fn outlet(
    v: Option<Value<'_>>,
    upses: &HashMap<&str, UpsId>,
    ups_vendors: &[Option<Vendor>],
    pdus: &HashMap<&str, PduId>,
    m: &mut Mistakes,
) -> Option<Option<OutletAt>> {
    let Some(mut v) = v else {
        return Some(None);
    };
    let at = v.span;
    if !matches!(v.as_ref(), ValueInner::Table(_)) {
        m.add(
            at,
            "`outlet` is a table: { ups = \"…\", group = N }, { ups = \"…\" } or { pdu = \"…\", outlet = N }",
        );
        return None;
    }
    let mut t = table(&mut v, m)?;
    let ups = optional(&mut t, "ups").and_then(|v| text(Some(v), m));
    let group = optional(&mut t, "group").and_then(|v| int_in::<u32>(Some(v), "group", (1, 64), m));
    let pdu = optional(&mut t, "pdu").and_then(|v| text(Some(v), m));
    let number =
        optional(&mut t, "outlet").and_then(|v| int_in::<u32>(Some(v), "outlet", (1, 1024), m));
    finish(t, m);
    let plug = match (ups, pdu) {
        (Some(u), None) => {
            let Some(&id) = upses.get(u.value.as_str()) else {
                m.add(
                    u.span,
                    format!("UPS `{}` is not defined in any [[ups]]", u.value),
                );
                return None;
            };
            if number.is_some() {
                m.add(
                    at,
                    "`outlet = N` is a PDU's: a UPS's outlet group is `group = N`",
                );
                return None;
            }
            let vendor = ups_vendors.get(id.index()).copied().flatten();
            match group {
                Some(g) => {
                    if vendor.is_some_and(|v| !has_groups(v)) {
                        m.add(
                            at,
                            format!(
                                "UPS `{}` ({}) has no outlet groups trapgate can command (APC's outlet groups and Eaton's receptacles are): write outlet = {{ ups = \"{}\" }} for its whole output",
                                u.value,
                                vendor.map_or("?", Vendor::name),
                                u.value
                            ),
                        );
                        return None;
                    }
                    Plug::Group { ups: id, group: g }
                }
                None => {
                    if vendor.is_some_and(|v| !has_output_control(v)) {
                        m.add(
                            at,
                            format!(
                                "trapgate cannot cycle the output of UPS `{}` ({}): its MIB has no shutdown that returns by itself",
                                u.value,
                                vendor.map_or("?", Vendor::name)
                            ),
                        );
                        return None;
                    }
                    Plug::Output(id)
                }
            }
        }
        (None, Some(p)) => {
            let Some(&id) = pdus.get(p.value.as_str()) else {
                m.add(
                    p.span,
                    format!("PDU `{}` is not defined in any [[pdu]]", p.value),
                );
                return None;
            };
            if group.is_some() {
                m.add(at, "`group = N` is a UPS's: a PDU's outlet is `outlet = N`");
                return None;
            }
            let Some(n) = number else {
                m.add(at, "a PDU's outlet needs its number: `outlet = N`");
                return None;
            };
            Plug::PduOutlet { pdu: id, outlet: n }
        }
        (Some(u), Some(_)) => {
            m.add(u.span, "`outlet` names a UPS or a PDU, not both");
            return None;
        }
        (None, None) => {
            m.add(at, "`outlet` names a `ups` or a `pdu`");
            return None;
        }
    };
    Some(Some(OutletAt { plug, at }))
}

/// A recorder's `wol` (its MAC) and `wol_to` (where to send the magic packet).
pub(super) fn wol(
    wol: Option<Value<'_>>,
    to: Option<Value<'_>>,
    m: &mut Mistakes,
) -> Option<Option<Wol>> {
    let mac = text(wol, m);
    let to = text(to, m);
    let Some(mac) = mac else {
        if let Some(t) = to {
            m.add(
                t.span,
                "`wol_to` is where `wol`'s magic packet goes: give `wol` (the recorder's MAC) too",
            );
            return None;
        }
        return Some(None);
    };
    let Some(bytes) = parse_mac(&mac.value) else {
        m.add(
            mac.span,
            format!(
                "`{}` is not a MAC address (six hex octets: 00:11:22:33:44:55)",
                mac.value
            ),
        );
        return None;
    };
    let to = match to {
        None => WOL_BROADCAST,
        Some(t) => match t.value.parse::<SocketAddr>() {
            Ok(a) => a,
            Err(_) => {
                m.add(
                    t.span,
                    format!(
                        "`{}` is not an address and port (\"192.0.2.255:9\")",
                        t.value
                    ),
                );
                return None;
            }
        },
    };
    Some(Some(Wol { mac: bytes, to }))
}

/// A MAC in `00:11:22:33:44:55`, `00-11-22-33-44-55` or `001122334455` form.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let hex: String = s.chars().filter(|c| *c != ':' && *c != '-').collect();
    if hex.len() != 12 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let mut mac = [0u8; 6];
    for (i, b) in mac.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(mac)
}
