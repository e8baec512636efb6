//! Forwarding to the site's network management system, in snmptrapd's vocabulary
//! (`forward OID|default DESTINATION` with `addForwarderInfo yes`): which targets a
//! notification goes to (`Forwarding::route`), and the message each one receives
//! (`forwarded`). Sans-IO: the receive workers route and write the forwarded form
//! once, the forward thread (`crate::daemon::forward`) sends it to each target in its
//! own version and community.
//!
//! The origin is kept as net-snmp's `addForwarderInfo` keeps it: an IPv4 sender is
//! appended as `snmpTrapAddress.x` (1.3.6.1.6.3.18.1.3.x, IpAddress), x the lowest
//! index the notification does not hold yet, so the first forwarder's is `.0`; an IPv6
//! sender, which an IpAddress cannot hold, as `trapgateForwarderAddress6.x`
//! (`IPV6_FORWARDER`, an OCTET STRING of 16 octets, InetAddressIPv6) in the same way. A
//! notification whose forwarder bindings already name a target (it went through that
//! target's host on its way here), or that comes from the target's own address, is not
//! sent to it: a loop is cut where it would close. One whose forwarder bindings name
//! this gateway's own address (`Forwarding::set_own`: it went through here, and another
//! forwarder sent it back) is forwarded nowhere.

use crate::wire::message::{NotificationOidBuf, Pdu, SNMP_TRAP_OID_0, SYS_UPTIME_0};
use crate::wire::oid::{Oid, OidBuf};
use crate::wire::{Message, PduType, Value, VarBind, Version, encode};
use std::net::{IpAddr, SocketAddr};

/// snmpTrapAddress (SNMP-COMMUNITY-MIB, 1.3.6.1.6.3.18.1.3): the forwarder bindings
/// of IPv4 senders are its instances.
pub const SNMP_TRAP_ADDRESS: &[u8] = &[0x2b, 6, 1, 6, 3, 18, 1, 3];
/// snmpTrapCommunity.0 (1.3.6.1.6.3.18.1.4.0): a v1 trap's community, when converted.
pub const SNMP_TRAP_COMMUNITY_0: &[u8] = &[0x2b, 6, 1, 6, 3, 18, 1, 4, 0];
/// snmpTrapEnterprise.0 (1.3.6.1.6.3.1.1.4.3.0): a v1 trap's enterprise, when converted.
pub const SNMP_TRAP_ENTERPRISE_0: &[u8] = &[0x2b, 6, 1, 6, 3, 1, 1, 4, 3, 0];
/// trapgate's forwarder binding of IPv6 senders, 1.3.6.1.4.1.8072.9999.9999.162.1 (in
/// NET-SNMP-MIB's netSnmpPlaypen, the subtree left for local objects: trapgate has no
/// enterprise number of its own): an OCTET STRING of the sender's 16 octets.
pub const IPV6_FORWARDER: &[u8] = &[
    0x2b, 6, 1, 4, 1, 0xbf, 0x08, 0xce, 0x0f, 0xce, 0x0f, 0x81, 0x22, 1,
];

/// Forwarder indices kept: a notification with more forwarder bindings than this is
/// not forwarded (no real chain of forwarders is that long).
const MAX_HOPS: u8 = 32;

/// Which notifications a target takes (snmptrapd's `traphandle`/`forward` OID forms).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Match {
    /// `OID`: that notification only.
    Exact(OidBuf),
    /// `OID*`: that OID and everything below it.
    Subtree(OidBuf),
    /// `OID.*`: everything strictly below it.
    Below(OidBuf),
    /// `*`: every notification.
    All,
    /// `default`: every notification that no OID form (`OID`, `OID*`, `OID.*`) of any
    /// target matched, as snmptrapd's `default`.
    Default,
}

impl Match {
    /// Reads `OID`, `OID*`, `OID.*`, `*` or `default` (an OID with or without its leading
    /// dot, as net-snmp writes it).
    pub fn parse(s: &str) -> Result<Match, String> {
        let s = s.trim();
        let oid = |t: &str| {
            t.trim_start_matches('.')
                .parse::<OidBuf>()
                .map_err(|e| format!("`{s}` is not an OID, OID*, OID.*, * or default: {e}"))
        };
        Ok(match s {
            "default" => Match::Default,
            "*" => Match::All,
            _ => {
                if let Some(t) = s.strip_suffix(".*") {
                    Match::Below(oid(t)?)
                } else if let Some(t) = s.strip_suffix('*') {
                    Match::Subtree(oid(t)?)
                } else {
                    Match::Exact(oid(s)?)
                }
            }
        })
    }

    /// Whether `trap` matches this OID form (`Default` matches nothing here: it is
    /// what the others leave).
    fn takes(&self, trap: Oid<'_>) -> bool {
        match self {
            Match::Exact(o) => trap.as_bytes() == o.as_bytes(),
            Match::Subtree(o) => trap.starts_with(o.as_oid()),
            Match::Below(o) => {
                trap.starts_with(o.as_oid()) && trap.as_bytes().len() > o.as_bytes().len()
            }
            Match::All => true,
            Match::Default => false,
        }
    }
}

/// The version a target receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForwardVersion {
    /// As it came: v1 as v1, v2c as v2c (an SNMPv3 notification goes as v2c: trapgate
    /// has no SNMPv3 user of the target's).
    AsReceived,
    /// v2c: a v1 trap converted as RFC 3584 §3.1 says.
    V2c,
}

/// Whose notifications a target takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sources {
    /// The site's UPSes', with their community or SNMPv3 user.
    Site,
    /// Anyone's, as snmptrapd forwards (`disableAuthorization yes`).
    Any,
}

/// One `[[forward]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Where it goes, as the site file wrote it.
    pub to_text: String,
    /// Where it goes, resolved.
    pub to: SocketAddr,
    /// What it takes.
    pub matches: Vec<Match>,
    /// In which version.
    pub version: ForwardVersion,
    /// With which community.
    pub community: String,
    /// From whom.
    pub sources: Sources,
    /// The address forwards to it leave from (snmptrapd's `clientaddr`); None: the
    /// gateway's listen address where it listens on one, else the host's choice.
    pub source: Option<std::net::IpAddr>,
}

/// The site's forward targets, at most 64 (a notification's targets are a bit mask).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Forwarding {
    targets: Vec<Target>,
    /// Whether a target takes anyone's notifications.
    any: bool,
    /// This gateway's own addresses, those its forwards leave from: a notification whose
    /// forwarder bindings name one went through this gateway already (another forwarded
    /// it back), and is not forwarded again.
    own: Vec<IpAddr>,
}

/// The most `[[forward]]` targets a site may have.
pub const MAX_TARGETS: usize = 64;

impl Forwarding {
    /// The table of `targets` (at most `MAX_TARGETS`, the site reader checks).
    pub fn new(targets: Vec<Target>) -> Forwarding {
        let any = targets.iter().any(|t| t.sources == Sources::Any);
        Forwarding {
            targets,
            any,
            own: Vec::new(),
        }
    }

    /// Takes `own` as this gateway's own addresses (where its forwards leave from).
    pub fn set_own(&mut self, own: Vec<IpAddr>) {
        self.own = own;
    }

    /// This gateway's own addresses, as `set_own` gave them.
    pub fn own(&self) -> &[IpAddr] {
        &self.own
    }

    /// The targets.
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// Whether there is nothing to forward to.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Whether some target takes notifications from anyone.
    pub fn takes_anyone(&self) -> bool {
        self.any
    }

    /// The targets `m`, from `source`, goes to, as a bit mask (bit i: target i): those
    /// whose OID forms match its notification OID (or, if none of any target's do, those
    /// of `default`), that take its sender (`from_site`: a site UPS's, believed), and that
    /// it did not come from or through. 0 for what is not a trap or an inform.
    pub fn route(&self, m: &Message<'_>, source: IpAddr, from_site: bool) -> u64 {
        if self.targets.is_empty() || !m.pdu_type().is_notification() {
            return 0;
        }
        let mut scratch = NotificationOidBuf::default();
        let Some(trap) = m.notification_oid(&mut scratch) else {
            return 0;
        };
        let takes = |t: &Target| from_site || t.sources == Sources::Any;
        // One pass: each target's OID forms and `*`, and whether any target's OID form
        // took it (then `default` does not: `*` is not an OID form).
        let (mut mask, mut matched_any) = (0u64, false);
        for (i, t) in self.targets.iter().enumerate() {
            let (mut by_oid, mut all) = (false, false);
            for x in &t.matches {
                match x {
                    Match::All => all = true,
                    Match::Default => {}
                    _ => by_oid |= x.takes(trap),
                }
            }
            matched_any |= by_oid;
            if takes(t) && (by_oid || all) {
                mask |= 1 << i;
            }
        }
        if !matched_any {
            for (i, t) in self.targets.iter().enumerate() {
                if takes(t) && t.matches.contains(&Match::Default) {
                    mask |= 1 << i;
                }
            }
        }
        if mask == 0 {
            return 0;
        }
        // Loops: not back to where it came from or through, and never again what went
        // through this gateway (another forwarder's binding names one of its addresses).
        let forwarders = Forwarders::of(m.varbinds());
        if self.own.iter().any(|a| forwarders.names(*a)) {
            return 0;
        }
        for (i, t) in self.targets.iter().enumerate() {
            if mask & (1 << i) != 0 && (t.to.ip() == source || forwarders.names(t.to.ip())) {
                mask &= !(1 << i);
            }
        }
        if forwarders.next >= MAX_HOPS {
            return 0;
        }
        mask
    }
}

/// What a notification's forwarder bindings say.
struct Forwarders<'a> {
    varbinds: &'a [VarBind<'a>],
    /// The lowest index free, IPv4 and IPv6 alike.
    next: u8,
}

impl<'a> Forwarders<'a> {
    fn of(varbinds: &'a [VarBind<'a>]) -> Forwarders<'a> {
        let mut used = 0u64;
        for vb in varbinds {
            if let Some(x) = forwarder_index(vb.name.as_bytes()) {
                used |= 1 << x;
            }
        }
        Forwarders {
            varbinds,
            next: (!used).trailing_zeros().min(64) as u8,
        }
    }

    /// Whether a forwarder binding names `ip`.
    fn names(&self, ip: IpAddr) -> bool {
        self.varbinds.iter().any(|vb| {
            forwarder_index(vb.name.as_bytes()).is_some()
                && match (vb.value, ip) {
                    (Value::IpAddress(a), IpAddr::V4(v4)) => a == v4.octets(),
                    (Value::OctetString(a), IpAddr::V6(v6)) => a == v6.octets(),
                    (Value::OctetString(a), IpAddr::V4(v4)) => v4.to_ipv6_mapped().octets() == a,
                    _ => false,
                }
        })
    }
}

/// The index x of `snmpTrapAddress.x` or `trapgateForwarderAddress6.x` (x < 64).
fn forwarder_index(name: &[u8]) -> Option<u8> {
    let x = name
        .strip_prefix(SNMP_TRAP_ADDRESS)
        .or_else(|| name.strip_prefix(IPV6_FORWARDER))?;
    match x {
        [x] if *x < 64 => Some(*x),
        _ => None,
    }
}

/// The forwarder binding's name for index `x` (< 128), written in `room`.
fn forwarder_name(v6: bool, x: u8, room: &mut [u8; 16]) -> Oid<'_> {
    let base = if v6 {
        IPV6_FORWARDER
    } else {
        SNMP_TRAP_ADDRESS
    };
    room[..base.len()].copy_from_slice(base);
    room[base.len()] = x;
    Oid::trusted(&room[..=base.len()])
}

/// Appends to `out` the form of `m` (heard from `source`) that the forward thread
/// starts from: v1 stays v1 (its agent-addr is its origin; 0.0.0.0 becomes the
/// sender's IPv4 address), v2c and v3 become v2c with the forwarder binding added. The
/// community is `m`'s (for v3: empty); `forwarded` sets each target's. False (nothing
/// written) for what is not a notification.
pub fn canonical(m: &Message<'_>, source: IpAddr, out: &mut Vec<u8>) -> bool {
    canonical_with(m, None, source, out)
}

/// `canonical`, for `m` decoded from `datagram`: a v2c notification's form is the
/// datagram's own bytes with the forwarder binding appended and the three lengths
/// around it rewritten (nothing decoded is encoded again); what the datagram's
/// encoding cannot give (a v1 trap, a v3 one) is encoded as `canonical` does. The same
/// bytes as `canonical` for a datagram in minimal BER, as every agent writes; the
/// same message for any other the decoder took.
pub fn canonical_from(datagram: &[u8], m: &Message<'_>, source: IpAddr, out: &mut Vec<u8>) -> bool {
    canonical_with(m, Some(datagram), source, out)
}

fn canonical_with(
    m: &Message<'_>,
    datagram: Option<&[u8]>,
    source: IpAddr,
    out: &mut Vec<u8>,
) -> bool {
    match &m.pdu {
        Pdu::TrapV1(t) => {
            let mut t = *t;
            if t.agent_addr == [0; 4]
                && let IpAddr::V4(v4) = source
            {
                t.agent_addr = v4.octets();
            }
            let msg = Message {
                version: Version::V1,
                community: m.community,
                pdu: Pdu::TrapV1(t),
                v3: None,
            };
            encode::encode(&msg, out);
            true
        }
        Pdu::Request(r) if r.kind.is_notification() => {
            let forwarders = Forwarders::of(r.varbinds);
            let mut room = [0u8; 16];
            let ip = match source {
                IpAddr::V4(v4) => Some(v4),
                IpAddr::V6(v6) => v6.to_ipv4_mapped(),
            };
            let octets6 = match source {
                IpAddr::V6(v6) => v6.octets(),
                IpAddr::V4(_) => [0; 16],
            };
            let added = VarBind {
                name: forwarder_name(ip.is_none(), forwarders.next, &mut room),
                value: match ip {
                    Some(v4) => Value::IpAddress(v4.octets()),
                    None => Value::OctetString(&octets6),
                },
            };
            if let Some(datagram) = datagram
                && m.version == Version::V2c
                && splice(datagram, added, out)
            {
                return true;
            }
            let community = if m.version == Version::V3 {
                &[][..]
            } else {
                m.community
            };
            encode_with(
                Version::V2c,
                community,
                r.kind,
                r.request_id,
                &[r.varbinds, &[added]],
                out,
            );
            true
        }
        Pdu::Request(_) => false,
    }
}

/// Appends to `out` the v2c notification `datagram` with `added` as its last binding:
/// its version, community, request-id and bindings copied as they are, its error
/// fields zero. False (nothing written) if `datagram` is not a v2c notification's message.
fn splice(datagram: &[u8], added: VarBind<'_>, out: &mut Vec<u8>) -> bool {
    use crate::wire::ber::{self, Reader};
    let Ok(top) = Reader::new(datagram).expect(ber::SEQUENCE) else {
        return false;
    };
    let mut r = top.reader();
    let (Ok(version), Ok(community), Ok(pdu)) = (
        r.expect(ber::INTEGER),
        r.expect(ber::OCTET_STRING),
        r.read(),
    ) else {
        return false;
    };
    let Some(tag) = pdu.tag.to_byte().filter(|t| matches!(t, 0xa6 | 0xa7)) else {
        return false;
    };
    let mut p = pdu.reader();
    let (Ok(request_id), Ok(_), Ok(_), Ok(list)) = (
        p.expect(ber::INTEGER),
        p.expect(ber::INTEGER),
        p.expect(ber::INTEGER),
        p.expect(ber::SEQUENCE),
    ) else {
        return false;
    };
    let request_id = &datagram[request_id.start()..request_id.offset + request_id.value.len()];
    // error-status and error-index: zero in a notification (RFC 3416 §4.2.6), as
    // `canonical` writes them whatever the sender put there.
    const NO_ERROR: [u8; 6] = [0x02, 1, 0, 0x02, 1, 0];
    // The added binding: SEQUENCE { OID, IpAddress or OCTET STRING }, short lengths
    // (a name of at most 16 octets, a value of at most 16).
    let name = added.name.as_bytes();
    let (value_tag, value): (u8, &[u8]) = match &added.value {
        Value::IpAddress(a) => (0x40, a),
        Value::OctetString(o) => (0x04, o),
        _ => return false,
    };
    let inner = 2 + name.len() + 2 + value.len();
    if inner > 0x7f {
        return false;
    }
    let list_len = list.value.len() + 2 + inner;
    let pdu_len = request_id.len() + NO_ERROR.len() + 1 + ber_length_len(list_len) + list_len;
    let front = &datagram[version.start()..community.offset + community.value.len()];
    let message_len = front.len() + 1 + ber_length_len(pdu_len) + pdu_len;
    out.reserve(1 + ber_length_len(message_len) + message_len);
    out.push(0x30);
    push_ber_length(out, message_len);
    out.extend_from_slice(front);
    out.push(tag);
    push_ber_length(out, pdu_len);
    out.extend_from_slice(request_id);
    out.extend_from_slice(&NO_ERROR);
    out.push(0x30);
    push_ber_length(out, list_len);
    out.extend_from_slice(list.value);
    out.extend_from_slice(&[0x30, inner as u8, 0x06, name.len() as u8]);
    out.extend_from_slice(name);
    out.extend_from_slice(&[value_tag, value.len() as u8]);
    out.extend_from_slice(value);
    true
}

/// Encodes a v2 notification whose bindings are `parts`, one after another: joined on
/// the stack when they fit (a trap's always do), no binding copied to the heap.
fn encode_with(
    version: Version,
    community: &[u8],
    kind: PduType,
    request_id: i32,
    parts: &[&[VarBind<'_>]],
    out: &mut Vec<u8>,
) {
    const ROOM: usize = 48;
    let n: usize = parts.iter().map(|p| p.len()).sum();
    let joined = parts.iter().flat_map(|p| p.iter()).copied();
    if n <= ROOM {
        let mut all = [VarBind {
            name: Oid::trusted(SYS_UPTIME_0),
            value: Value::Null,
        }; ROOM];
        for (slot, vb) in all.iter_mut().zip(joined) {
            *slot = vb;
        }
        encode::encode(
            &Message::pdu(version, community, kind, request_id, &all[..n]),
            out,
        );
    } else {
        let all: Vec<VarBind<'_>> = joined.collect();
        encode::encode(
            &Message::pdu(version, community, kind, request_id, &all),
            out,
        );
    }
}

/// Appends to `out` what `target` receives of `canonical` (a message `canonical`
/// wrote, decoded): its community, its version (a v1 trap converted to v2c as RFC 3584
/// §3.1 says if it asks for v2c) and, for an inform, `request_id` (the forward thread's
/// own, to match the target's answer).
pub fn forwarded(canonical: &Message<'_>, target: &Target, request_id: i32, out: &mut Vec<u8>) {
    let community = target.community.as_bytes();
    match &canonical.pdu {
        Pdu::TrapV1(t) if target.version == ForwardVersion::AsReceived => {
            let msg = Message {
                version: Version::V1,
                community,
                pdu: Pdu::TrapV1(*t),
                v3: None,
            };
            encode::encode(&msg, out);
        }
        Pdu::TrapV1(t) => {
            // RFC 3584 §3.1: sysUpTime.0, snmpTrapOID.0, the trap's bindings, then
            // snmpTrapAddress.0 (its agent-addr), snmpTrapCommunity.0 and
            // snmpTrapEnterprise.0.
            let mut scratch = NotificationOidBuf::default();
            let Some(trap) = t.notification_oid(&mut scratch) else {
                return;
            };
            let head = [
                VarBind {
                    name: Oid::trusted(SYS_UPTIME_0),
                    value: Value::TimeTicks(t.time_stamp),
                },
                VarBind {
                    name: Oid::trusted(SNMP_TRAP_OID_0),
                    value: Value::ObjectId(trap),
                },
            ];
            let has = |name: &[u8]| t.varbinds.iter().any(|vb| vb.name.as_bytes() == name);
            let mut tail: [VarBind<'_>; 3] = [head[0]; 3];
            let mut k = 0;
            let mut room = [0u8; 16];
            let address0 = forwarder_name(false, 0, &mut room);
            for (name, value) in [
                (address0, Value::IpAddress(t.agent_addr)),
                (
                    Oid::trusted(SNMP_TRAP_COMMUNITY_0),
                    Value::OctetString(canonical.community),
                ),
                (
                    Oid::trusted(SNMP_TRAP_ENTERPRISE_0),
                    Value::ObjectId(t.enterprise),
                ),
            ] {
                if !has(name.as_bytes()) {
                    tail[k] = VarBind { name, value };
                    k += 1;
                }
            }
            encode_with(
                Version::V2c,
                community,
                PduType::SNMPV2_TRAP,
                request_id_of_v1(t.time_stamp),
                &[&head, t.varbinds, &tail[..k]],
                out,
            );
        }
        Pdu::Request(r) => {
            let id = if r.kind == PduType::INFORM_REQUEST {
                request_id
            } else {
                r.request_id
            };
            let msg = Message::pdu(Version::V2c, community, r.kind, id, r.varbinds);
            encode::encode(&msg, out);
        }
    }
}

/// Appends to `out` what `target` receives of `canonical` (bytes `canonical` wrote)
/// when only the community changes: a v2c trap, or a v1 trap in the version it came.
/// The PDU's bytes are copied as they are, nothing decoded; false (nothing written)
/// for what `forwarded` must rebuild (an inform, a v1 trap converted).
pub fn reframe(canonical: &[u8], target: &Target, out: &mut Vec<u8>) -> bool {
    use crate::wire::ber::{self, Reader};
    let mut top = Reader::new(canonical);
    let Ok(seq) = top.expect(ber::SEQUENCE) else {
        return false;
    };
    let mut r = seq.reader();
    let Ok(version) = r.expect(ber::INTEGER) else {
        return false;
    };
    if r.octets().is_err() {
        return false;
    }
    let pdu = r.rest();
    let same = match pdu.first() {
        Some(0xa7) => true,
        Some(0xa4) => target.version == ForwardVersion::AsReceived,
        _ => false,
    };
    if !same {
        return false;
    }
    let version = &canonical[version.start()..version.offset + version.value.len()];
    let community = target.community.as_bytes();
    let content = version.len() + 1 + ber_length_len(community.len()) + community.len() + pdu.len();
    out.push(0x30);
    push_ber_length(out, content);
    out.extend_from_slice(version);
    out.push(0x04);
    push_ber_length(out, community.len());
    out.extend_from_slice(community);
    out.extend_from_slice(pdu);
    true
}

/// The PDU of an SNMP v1/v2c message, tag and all, read past its header; None if it is
/// not one.
pub fn pdu_of(message: &[u8]) -> Option<&[u8]> {
    use crate::wire::ber::{self, Reader};
    let seq = Reader::new(message).expect(ber::SEQUENCE).ok()?;
    let mut r = seq.reader();
    r.expect(ber::INTEGER).ok()?;
    r.octets().ok()?;
    Some(r.rest())
}

/// The PDU's tag octet of an SNMP v1/v2c message (0xa4 a v1 trap, 0xa6 an inform,
/// 0xa7 a v2 trap), read past its header; None if it is not one.
pub fn pdu_tag(message: &[u8]) -> Option<u8> {
    use crate::wire::ber::{self, Reader};
    let seq = Reader::new(message).expect(ber::SEQUENCE).ok()?;
    let mut r = seq.reader();
    r.expect(ber::INTEGER).ok()?;
    r.octets().ok()?;
    r.rest().first().copied()
}

/// The octets of a BER length.
fn ber_length_len(len: usize) -> usize {
    match len {
        0..=0x7f => 1,
        0x80..=0xff => 2,
        0x100..=0xffff => 3,
        0x1_0000..=0xff_ffff => 4,
        _ => 5,
    }
}

/// Appends a BER length (definite, minimal).
fn push_ber_length(out: &mut Vec<u8>, len: usize) {
    let n = ber_length_len(len);
    if n == 1 {
        out.push(len as u8);
    } else {
        out.push(0x80 | (n - 1) as u8);
        out.extend_from_slice(&(len as u32).to_be_bytes()[5 - n..]);
    }
}

/// A converted v1 trap's request-id: v1 has none; net-snmp makes one up, trapgate uses
/// the trap's time-stamp (the same trap forwarded twice is recognisably one).
fn request_id_of_v1(time_stamp: u32) -> i32 {
    (time_stamp & 0x7fff_ffff) as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::oid::oid;
    use bumpalo::Bump;

    fn target(to: &str, matches: &[&str], version: ForwardVersion, sources: Sources) -> Target {
        Target {
            to_text: to.into(),
            to: to.parse().unwrap(),
            matches: matches.iter().map(|m| Match::parse(m).unwrap()).collect(),
            version,
            community: "nms".into(),
            sources,
            source: None,
        }
    }

    fn v2_trap(trap: &str, extra: &[VarBind<'_>]) -> Vec<u8> {
        let trap = oid(trap);
        let mut vbs = vec![
            VarBind {
                name: Oid::trusted(SYS_UPTIME_0),
                value: Value::TimeTicks(42),
            },
            VarBind {
                name: Oid::trusted(SNMP_TRAP_OID_0),
                value: Value::ObjectId(trap.as_oid()),
            },
        ];
        vbs.extend_from_slice(extra);
        encode::to_vec(&Message::pdu(
            Version::V2c,
            b"public",
            PduType::SNMPV2_TRAP,
            7,
            &vbs,
        ))
    }

    const UPS: &str = "1.3.6.1.4.1.318.0.5";

    #[test]
    fn oid_forms_are_snmptrapds() {
        let a = Bump::new();
        let low = v2_trap(UPS, &[]);
        let m = Message::parse(&low, &a).unwrap();
        let src: IpAddr = "127.13.0.1".parse().unwrap();
        let f = Forwarding::new(vec![
            target(
                "127.0.0.1:1",
                &["1.3.6.1.4.1.318.0.5"],
                ForwardVersion::V2c,
                Sources::Site,
            ),
            target(
                "127.0.0.1:2",
                &[".1.3.6.1.4.1.318*"],
                ForwardVersion::V2c,
                Sources::Site,
            ),
            target(
                "127.0.0.1:3",
                &["1.3.6.1.4.1.318.0.5.*"],
                ForwardVersion::V2c,
                Sources::Site,
            ),
            target(
                "127.0.0.1:4",
                &["default"],
                ForwardVersion::V2c,
                Sources::Site,
            ),
            target("127.0.0.1:5", &["*"], ForwardVersion::V2c, Sources::Site),
            target(
                "127.0.0.1:6",
                &["1.3.6.1.4.1.318.0.5*"],
                ForwardVersion::V2c,
                Sources::Any,
            ),
        ]);
        // Exact, subtree (itself included), not strictly below, not default (matched),
        // everything, subtree.
        assert_eq!(f.route(&m, src, true), 0b110011);
        // A trap nobody's OID takes goes to default and to `*`.
        let other = v2_trap("1.3.6.1.6.3.1.1.5.1", &[]);
        let o = Message::parse(&other, &a).unwrap();
        assert_eq!(f.route(&o, src, true), 0b011000);
        // Not a site UPS's: only the target that takes anyone's.
        assert_eq!(f.route(&m, src, false), 0b100000);
        // 318.0.50 is not in the subtree of 318.0.5.
        let fifty = v2_trap("1.3.6.1.4.1.318.0.50", &[]);
        let fm = Message::parse(&fifty, &a).unwrap();
        assert_eq!(
            f.route(&fm, src, true) & 0b100101,
            0,
            "{:b}",
            f.route(&fm, src, true)
        );
        assert!(Match::parse("1.3.x*").is_err());
        assert!(Match::parse("").is_err());
    }

    #[test]
    fn what_went_through_this_gateway_is_not_forwarded_again() {
        let a = Bump::new();
        let mut f = Forwarding::new(vec![target(
            "127.0.0.9:162",
            &["*"],
            ForwardVersion::AsReceived,
            Sources::Any,
        )]);
        f.set_own(vec!["127.0.0.3".parse().unwrap()]);
        // The UPS's trap, forwarded by this gateway (127.0.0.3) to another, which
        // forwarded it back from 127.0.0.7: it names 127.0.0.3 as a forwarder.
        let back = v2_trap(
            UPS,
            &[
                VarBind {
                    name: Oid::trusted(&[0x2b, 6, 1, 6, 3, 18, 1, 3, 0]),
                    value: Value::IpAddress([127, 13, 0, 1]),
                },
                VarBind {
                    name: Oid::trusted(&[0x2b, 6, 1, 6, 3, 18, 1, 3, 1]),
                    value: Value::IpAddress([127, 0, 0, 3]),
                },
            ],
        );
        let m = Message::parse(&back, &a).unwrap();
        assert_eq!(f.route(&m, "127.0.0.7".parse().unwrap(), false), 0);
        // The first pass (only the UPS named) goes on.
        let first = v2_trap(UPS, &[]);
        let m = Message::parse(&first, &a).unwrap();
        assert_eq!(f.route(&m, "127.13.0.1".parse().unwrap(), false), 1);
    }

    #[test]
    fn origin_is_kept_and_loops_are_cut() {
        let a = Bump::new();
        let src: IpAddr = "127.13.0.1".parse().unwrap();
        let f = Forwarding::new(vec![
            target(
                "127.0.0.9:162",
                &["*"],
                ForwardVersion::AsReceived,
                Sources::Any,
            ),
            target(
                "[::1]:162",
                &["*"],
                ForwardVersion::AsReceived,
                Sources::Any,
            ),
        ]);
        let first = v2_trap(UPS, &[]);
        let m = Message::parse(&first, &a).unwrap();
        let mut out = Vec::new();
        assert!(canonical(&m, src, &mut out));
        let c = Message::parse(&out, &a).unwrap();
        let last = c.varbinds().last().unwrap();
        assert_eq!(last.name.as_bytes(), [SNMP_TRAP_ADDRESS, &[0]].concat());
        assert_eq!(last.value, Value::IpAddress([127, 13, 0, 1]));
        // It went through 127.0.0.9: not back there; on to ::1.
        let through = v2_trap(
            UPS,
            &[VarBind {
                name: Oid::trusted(&[0x2b, 6, 1, 6, 3, 18, 1, 3, 0]),
                value: Value::IpAddress([127, 0, 0, 9]),
            }],
        );
        let t = Message::parse(&through, &a).unwrap();
        assert_eq!(f.route(&t, src, true), 0b10);
        // From a target's own address: not back to it.
        assert_eq!(f.route(&m, "127.0.0.9".parse().unwrap(), true), 0b10);
        // Heard again from another forwarder: the next index, the first one kept.
        out.clear();
        assert!(canonical(&t, "127.0.0.7".parse().unwrap(), &mut out));
        let c = Message::parse(&out, &a).unwrap();
        let addrs: Vec<_> = c
            .varbinds()
            .iter()
            .filter(|v| forwarder_index(v.name.as_bytes()).is_some())
            .map(|v| (forwarder_index(v.name.as_bytes()).unwrap(), v.value))
            .collect();
        assert_eq!(
            addrs,
            [
                (0, Value::IpAddress([127, 0, 0, 9])),
                (1, Value::IpAddress([127, 0, 0, 7]))
            ]
        );
        // An IPv6 sender: the 16 octets, under trapgate's own name.
        out.clear();
        assert!(canonical(&m, "::1".parse().unwrap(), &mut out));
        let c = Message::parse(&out, &a).unwrap();
        let last = c.varbinds().last().unwrap();
        assert_eq!(last.name.as_bytes(), [IPV6_FORWARDER, &[0]].concat());
        assert_eq!(
            last.value,
            Value::OctetString(&std::net::Ipv6Addr::LOCALHOST.octets())
        );
        assert_eq!(
            f.route(&c, "127.0.0.5".parse().unwrap(), true),
            0b01,
            "not back to ::1"
        );
        assert_eq!(
            oid("1.3.6.1.4.1.8072.9999.9999.162.1").as_bytes(),
            IPV6_FORWARDER
        );
    }

    #[test]
    fn v1_is_kept_or_converted_as_rfc_3584_says() {
        let a = Bump::new();
        let ent = oid("1.3.6.1.4.1.318");
        let vb = [VarBind {
            name: Oid::trusted(&[0x2b, 6, 1, 4, 1, 0x82, 0x3e, 1, 1, 1, 2, 2, 1, 0]),
            value: Value::Gauge32(50),
        }];
        let v1 = encode::to_vec(&Message::trap_v1(b"ups", ent.as_oid(), [0; 4], 5, 900, &vb));
        let m = Message::parse(&v1, &a).unwrap();
        let mut c = Vec::new();
        assert!(canonical(&m, "127.13.0.1".parse().unwrap(), &mut c));
        let c = Message::parse(&c, &a).unwrap();
        let same = target(
            "127.0.0.1:1",
            &["*"],
            ForwardVersion::AsReceived,
            Sources::Site,
        );
        let mut out = Vec::new();
        forwarded(&c, &same, 0, &mut out);
        let k = Message::parse(&out, &a).unwrap();
        assert_eq!(k.version, Version::V1);
        assert_eq!(k.community, b"nms");
        let Pdu::TrapV1(t) = k.pdu else { panic!() };
        assert_eq!(t.agent_addr, [127, 13, 0, 1], "0.0.0.0 is the sender");
        assert_eq!((t.specific_trap, t.time_stamp), (5, 900));
        let v2 = target("127.0.0.1:1", &["*"], ForwardVersion::V2c, Sources::Site);
        out.clear();
        forwarded(&c, &v2, 0, &mut out);
        let k = Message::parse(&out, &a).unwrap();
        assert_eq!(
            (k.version, k.pdu_type()),
            (Version::V2c, PduType::SNMPV2_TRAP)
        );
        let vbs = k.varbinds();
        assert_eq!(vbs[0].value, Value::TimeTicks(900));
        assert_eq!(
            vbs[1].value,
            Value::ObjectId(oid("1.3.6.1.4.1.318.0.5").as_oid())
        );
        assert_eq!(vbs[2], vb[0]);
        assert_eq!(vbs[3].value, Value::IpAddress([127, 13, 0, 1]));
        assert_eq!(vbs[4].value, Value::OctetString(b"ups"));
        assert_eq!(vbs[5].value, Value::ObjectId(ent.as_oid()));
        assert_eq!(vbs.len(), 6);
    }

    #[test]
    fn reframing_a_trap_writes_what_rebuilding_it_does() {
        let a = Bump::new();
        let long = vec![b'x'; 300];
        let ent = oid("1.3.6.1.4.1.318");
        let vb = [VarBind {
            name: Oid::trusted(SYS_UPTIME_0),
            value: Value::OctetString(&long),
        }];
        let v1 = encode::to_vec(&Message::trap_v1(
            b"ups",
            ent.as_oid(),
            [10, 0, 0, 1],
            5,
            900,
            &vb,
        ));
        for raw in [v2_trap(UPS, &[]), v2_trap(UPS, &vb), v1] {
            let m = Message::parse(&raw, &a).unwrap();
            let mut c = Vec::new();
            assert!(canonical(&m, "127.13.0.1".parse().unwrap(), &mut c));
            let cm = Message::parse(&c, &a).unwrap();
            for community in ["", "nms", &"c".repeat(200)] {
                for version in [ForwardVersion::AsReceived, ForwardVersion::V2c] {
                    let mut t = target("127.0.0.1:1", &["*"], version, Sources::Site);
                    t.community = community.to_string();
                    let (mut fast, mut slow) = (Vec::new(), Vec::new());
                    forwarded(&cm, &t, 0, &mut slow);
                    if reframe(&c, &t, &mut fast) {
                        assert_eq!(fast, slow, "{version:?} {}", community.len());
                    } else {
                        assert!(matches!(cm.pdu, Pdu::TrapV1(_)) && version == ForwardVersion::V2c);
                    }
                }
            }
        }
    }

    #[test]
    fn splicing_a_v2c_notification_writes_what_encoding_it_does() {
        let a = Bump::new();
        let long = vec![b'x'; 300];
        let through = VarBind {
            name: Oid::trusted(&[0x2b, 6, 1, 6, 3, 18, 1, 3, 0]),
            value: Value::IpAddress([127, 0, 0, 9]),
        };
        let big = VarBind {
            name: Oid::trusted(SYS_UPTIME_0),
            value: Value::OctetString(&long),
        };
        let trap = v2_trap(UPS, &[]);
        let inform = {
            let m = Message::parse(&trap, &a).unwrap();
            encode::to_vec(&Message::pdu(
                Version::V2c,
                &[b'c'; 130],
                PduType::INFORM_REQUEST,
                -5,
                m.varbinds(),
            ))
        };
        // Both forms of `m` (decoded from `raw`) from `source`: spliced, encoded.
        let forms = |raw: &[u8], m: &Message<'_>, source: &str| {
            let source: IpAddr = source.parse().unwrap();
            let (mut spliced, mut encoded) = (vec![0xee], vec![0xee]);
            assert!(canonical_from(raw, m, source, &mut spliced));
            assert!(canonical(m, source, &mut encoded));
            (spliced, encoded)
        };
        // The same bytes, from an IPv4, a mapped and an IPv6 sender, with and without
        // forwarders before, with long-form lengths at every level.
        for raw in [
            v2_trap(UPS, &[]),
            v2_trap(UPS, &[through]),
            v2_trap(UPS, &[big, through]),
            inform,
        ] {
            let m = Message::parse(&raw, &a).unwrap();
            for source in ["127.13.0.1", "::ffff:127.0.0.3", "::1"] {
                let (spliced, encoded) = forms(&raw, &m, source);
                assert_eq!(spliced, encoded, "{source}, {} bytes", raw.len());
            }
        }
        // Error fields a notification should not have: zero in its form, as encoded.
        let mut odd = v2_trap(UPS, &[]);
        let fields = odd
            .windows(9)
            .position(|w| w == [2, 1, 7, 2, 1, 0, 2, 1, 0])
            .unwrap();
        odd[fields + 5] = 5;
        odd[fields + 8] = 2;
        let m = Message::parse(&odd, &a).unwrap();
        let (spliced, encoded) = forms(&odd, &m, "::1");
        assert_eq!(spliced, encoded);
        // A datagram in BER that is not minimal (a long-form length where a short one
        // does): its bytes kept, the same message as the minimal one's.
        let raw = v2_trap(UPS, &[through]);
        let community = raw.iter().position(|&b| b == 0x04).unwrap();
        let mut loose = raw[..community].to_vec();
        loose.extend_from_slice(&[0x04, 0x81, raw[community + 1]]);
        loose.extend_from_slice(&raw[community + 2..]);
        loose[1] += 1;
        let lm = Message::parse(&loose, &a).unwrap();
        let (spliced, _) = forms(&loose, &lm, "127.13.0.1");
        let (_, encoded) = forms(&raw, &Message::parse(&raw, &a).unwrap(), "127.13.0.1");
        assert_ne!(spliced, encoded);
        let sm = Message::parse(&spliced[1..], &a).unwrap();
        assert_eq!(encode::to_vec(&sm), encoded[1..]);
        // A v1 trap is encoded: nothing of it is spliced.
        let v1 = encode::to_vec(&Message::trap_v1(
            b"ups",
            oid("1.3.6.1.4.1.318").as_oid(),
            [0; 4],
            5,
            9,
            &[],
        ));
        let m = Message::parse(&v1, &a).unwrap();
        let (from, encoded) = forms(&v1, &m, "127.13.0.1");
        assert_eq!(from, encoded);
    }

    #[test]
    fn an_inform_keeps_its_kind_with_the_forwarders_request_id() {
        let a = Bump::new();
        let trap = oid(UPS);
        let vbs = [
            VarBind {
                name: Oid::trusted(SYS_UPTIME_0),
                value: Value::TimeTicks(1),
            },
            VarBind {
                name: Oid::trusted(SNMP_TRAP_OID_0),
                value: Value::ObjectId(trap.as_oid()),
            },
        ];
        let inform = encode::to_vec(&Message::pdu(
            Version::V2c,
            b"public",
            PduType::INFORM_REQUEST,
            11,
            &vbs,
        ));
        let m = Message::parse(&inform, &a).unwrap();
        let mut c = Vec::new();
        assert!(canonical(&m, "127.13.0.1".parse().unwrap(), &mut c));
        let c = Message::parse(&c, &a).unwrap();
        let t = target(
            "127.0.0.1:1",
            &["*"],
            ForwardVersion::AsReceived,
            Sources::Site,
        );
        let mut out = Vec::new();
        forwarded(&c, &t, 777, &mut out);
        let k = Message::parse(&out, &a).unwrap();
        let Pdu::Request(r) = k.pdu else { panic!() };
        assert_eq!((r.kind, r.request_id), (PduType::INFORM_REQUEST, 777));
        assert_eq!(r.varbinds.len(), 3);
        // A response or a request is not forwarded.
        let get = encode::to_vec(&Message::pdu(
            Version::V2c,
            b"public",
            PduType::GET_REQUEST,
            1,
            &vbs,
        ));
        let g = Message::parse(&get, &a).unwrap();
        assert!(!canonical(
            &g,
            "127.0.0.1".parse().unwrap(),
            &mut Vec::new()
        ));
        let f = Forwarding::new(vec![t]);
        assert_eq!(f.route(&g, "127.13.0.1".parse().unwrap(), true), 0);
    }
}
