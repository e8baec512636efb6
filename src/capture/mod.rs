//! Capture files as a source: pcap and pcapng, read with `pcap-file`, and replayed
//! through the engine with their own timestamps as the clock.
//!
//! Frames come out in file order with the capture's own timestamp, which is the clock
//! of a replay. pcapng interfaces may differ in link type and timestamp resolution
//! (`if_tsresol`, `if_tsoffset`); both are applied here, because `pcap-file` 2.0 hands
//! out the raw enhanced-packet timestamp as if it were nanoseconds.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use pcap_file::DataLink;
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{Block, PcapNgReader};

use crate::engine::pipeline::{Outcome, Pipeline};
use crate::time::Timestamp;
use crate::wire::frame::LinkType;

pub mod tcp;

/// One captured frame.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// 1-based frame number, as Wireshark counts.
    pub number: u64,
    /// Capture time, nanoseconds since the Unix epoch.
    pub time_ns: u64,
    /// The link type of the interface it was captured on.
    pub link: LinkType,
    /// The captured bytes.
    pub data: &'a [u8],
    /// The frame's length on the wire.
    pub orig_len: u32,
}

/// The container format of a capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// libpcap (microsecond or nanosecond).
    Pcap,
    /// pcapng.
    PcapNg,
}

/// How reading a capture ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadEnd {
    /// The container format.
    pub format: Format,
    /// Frames delivered.
    pub frames: u64,
    /// Set when the file ended in the middle of a record or a record was malformed,
    /// like Wireshark's "the capture file appears to have been cut short". The frames
    /// before it were delivered.
    pub cut_short: Option<String>,
}

/// A capture that cannot be read at all.
#[derive(Debug)]
pub enum CaptureError {
    /// The file cannot be opened or read.
    Io(PathBuf, std::io::Error),
    /// Not a pcap or pcapng file.
    NotACapture(PathBuf),
    /// A pcap or pcapng header that cannot be read.
    BadHeader(PathBuf, String),
}

impl core::fmt::Display for CaptureError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CaptureError::Io(p, e) => write!(f, "cannot read {}: {e}", p.display()),
            CaptureError::NotACapture(p) => write!(
                f,
                "{} is not a pcap or pcapng capture file (unknown magic number)",
                p.display()
            ),
            CaptureError::BadHeader(p, e) => {
                write!(
                    f,
                    "{}: the capture file header is invalid: {e}",
                    p.display()
                )
            }
        }
    }
}

impl std::error::Error for CaptureError {}

/// Reads every frame of the capture at `path`, in file order, calling `each` for each.
pub fn read_capture(path: &Path, mut each: impl FnMut(Frame<'_>)) -> Result<ReadEnd, CaptureError> {
    let io = |e| CaptureError::Io(path.to_path_buf(), e);
    let mut file = BufReader::new(File::open(path).map_err(io)?);
    let mut magic = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match file.read(&mut magic[got..]).map_err(io)? {
            0 => return Err(CaptureError::NotACapture(path.to_path_buf())),
            n => got += n,
        }
    }
    // Re-open rather than seek a BufReader: simplest correct way to hand the readers
    // the whole file.
    let file = BufReader::new(File::open(path).map_err(io)?);
    match u32::from_le_bytes(magic) {
        0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1 => read_pcap(path, file, &mut each),
        0x0a0d_0d0a => read_pcapng(path, file, &mut each),
        _ => Err(CaptureError::NotACapture(path.to_path_buf())),
    }
}

fn read_pcap(
    path: &Path,
    file: BufReader<File>,
    each: &mut dyn FnMut(Frame<'_>),
) -> Result<ReadEnd, CaptureError> {
    let mut reader = PcapReader::new(file)
        .map_err(|e| CaptureError::BadHeader(path.to_path_buf(), e.to_string()))?;
    let link = LinkType(u32::from(reader.header().datalink));
    let mut end = ReadEnd {
        format: Format::Pcap,
        frames: 0,
        cut_short: None,
    };
    while let Some(packet) = reader.next_packet() {
        match packet {
            Ok(p) => {
                end.frames += 1;
                each(Frame {
                    number: end.frames,
                    time_ns: p.timestamp.as_nanos() as u64,
                    link,
                    data: &p.data,
                    orig_len: p.orig_len,
                });
            }
            Err(e) => {
                end.cut_short = Some(format!("after frame {}: {e}", end.frames));
                break;
            }
        }
    }
    Ok(end)
}

/// Per-interface facts of a pcapng section.
struct Interface {
    link: LinkType,
    /// Units per second of the raw timestamp.
    units_per_sec: u128,
    offset_sec: u64,
}

fn read_pcapng(
    path: &Path,
    file: BufReader<File>,
    each: &mut dyn FnMut(Frame<'_>),
) -> Result<ReadEnd, CaptureError> {
    let mut reader = PcapNgReader::new(file)
        .map_err(|e| CaptureError::BadHeader(path.to_path_buf(), e.to_string()))?;
    let mut interfaces: Vec<Interface> = Vec::new();
    let mut end = ReadEnd {
        format: Format::PcapNg,
        frames: 0,
        cut_short: None,
    };
    while let Some(block) = reader.next_block() {
        let block = match block {
            Ok(b) => b,
            Err(e) => {
                end.cut_short = Some(format!("after frame {}: {e}", end.frames));
                break;
            }
        };
        match block {
            Block::SectionHeader(_) => interfaces.clear(),
            Block::InterfaceDescription(idb) => {
                let mut units_per_sec = 1_000_000u128;
                let mut offset_sec = 0;
                for opt in &idb.options {
                    match *opt {
                        InterfaceDescriptionOption::IfTsResol(r) => {
                            units_per_sec = if r & 0x80 == 0 {
                                10u128.checked_pow(r as u32).unwrap_or(1_000_000)
                            } else {
                                1u128.checked_shl((r & 0x7f) as u32).unwrap_or(1_000_000)
                            };
                        }
                        InterfaceDescriptionOption::IfTsOffset(o) => offset_sec = o,
                        _ => {}
                    }
                }
                interfaces.push(Interface {
                    link: LinkType(u32::from(idb.linktype)),
                    units_per_sec,
                    offset_sec,
                });
            }
            Block::EnhancedPacket(epb) => {
                let Some(ifc) = interfaces.get(epb.interface_id as usize) else {
                    end.cut_short = Some(format!(
                        "frame {} names interface {} that the file never described",
                        end.frames + 1,
                        epb.interface_id
                    ));
                    break;
                };
                // pcap-file stores the raw 64-bit timestamp as nanoseconds.
                let raw = epb.timestamp.as_nanos();
                let ns = crate::time::ns::from_units(raw, ifc.units_per_sec, ifc.offset_sec);
                end.frames += 1;
                each(Frame {
                    number: end.frames,
                    time_ns: ns as u64,
                    link: ifc.link,
                    data: &epb.data,
                    orig_len: epb.original_len,
                });
            }
            Block::SimplePacket(spb) => {
                let link = interfaces
                    .first()
                    .map(|i| i.link)
                    .unwrap_or(LinkType(u32::from(DataLink::ETHERNET)));
                end.frames += 1;
                each(Frame {
                    number: end.frames,
                    time_ns: 0,
                    link,
                    data: &spb.data,
                    orig_len: spb.original_len,
                });
            }
            Block::Packet(pb) => {
                let Some(ifc) = interfaces.get(pb.interface_id as usize) else {
                    end.cut_short = Some(format!(
                        "frame {} names an undescribed interface",
                        end.frames + 1
                    ));
                    break;
                };
                let ns = crate::time::ns::from_units(pb.timestamp as u128, ifc.units_per_sec, 0);
                end.frames += 1;
                each(Frame {
                    number: end.frames,
                    time_ns: ns as u64,
                    link: ifc.link,
                    data: &pb.data,
                    orig_len: pb.original_len,
                });
            }
            _ => {}
        }
    }
    Ok(end)
}

/// One frame's result in a replay, with its place in the capture.
#[derive(Clone, Copy, Debug)]
pub struct Replayed<'a> {
    /// Frame number.
    pub frame: u64,
    /// Capture time of the frame.
    pub time: Timestamp,
    /// Capture time of the first frame.
    pub origin: Timestamp,
    /// The frame's length on the wire.
    pub len: u32,
    /// What the pipeline made of it.
    pub outcome: Outcome<'a>,
    /// The frame's link type and bytes (for what the pipeline does not read: TCP).
    pub link: LinkType,
    /// The captured bytes.
    pub data: &'a [u8],
}

/// Replays a capture through `pipeline`, the capture's timestamps as the clock; `each`
/// sees every frame's outcome. One arena serves the whole replay, reset per frame.
pub fn replay(
    path: &Path,
    pipeline: &mut Pipeline,
    mut each: impl FnMut(&Pipeline, &Replayed<'_>),
) -> Result<ReadEnd, CaptureError> {
    let mut arena = bumpalo::Bump::new();
    let mut origin = None;
    read_capture(path, |frame| {
        arena.reset();
        let time = Timestamp(frame.time_ns);
        let origin = *origin.get_or_insert(time);
        let outcome = pipeline.process_frame(frame.link, frame.data, &arena, time);
        let r = Replayed {
            frame: frame.number,
            time,
            origin,
            len: frame.orig_len,
            outcome,
            link: frame.link,
            data: frame.data,
        };
        each(pipeline, &r);
    })
}

/// How a replay ended, beyond its story.
#[derive(Clone, Debug)]
pub struct ReplayEnd {
    /// How reading the capture ended.
    pub read: ReadEnd,
    /// The decode → classify counters.
    pub counters: crate::engine::pipeline::Counters,
    /// Datagrams not believed, by reason.
    pub refused: crate::engine::trust::Refusals,
    /// Datagrams from addresses that are not the site's (dropped before decoding, as
    /// the live gateway does).
    pub foreign: u64,
    /// What the station counted.
    pub counts: crate::engine::station::Counts,
}

/// Where the gateway's traps to each recorder go in a replay, and the agent-addr they
/// carry (the site's agent address when it names one).
fn replay_relays(site: &crate::engine::config::Site) -> crate::engine::station::Relays {
    let agent = match site.gateway.agent.ip() {
        std::net::IpAddr::V4(a) => a.octets(),
        std::net::IpAddr::V6(_) => [0; 4],
    };
    site.recorders
        .iter()
        .map(|r| (std::net::SocketAddr::new(r.address, r.port), agent))
        .collect()
}

/// One step of a NUT or apcupsd client into the station, as the live daemon gives it;
/// what the station would send back goes nowhere (the capture has the answers it gave),
/// but a connection it closes is closed.
fn client_step(
    s: &mut crate::engine::station::Station,
    clients: &mut tcp::Clients,
    at: Timestamp,
    step: tcp::Step<'_>,
) {
    use tcp::{Service, Step};
    let reply = match step {
        Step::Connected(Service::Nut, id, peer) => (id, s.handle_nut_connected(at, id, peer)),
        Step::Connected(Service::Nis, id, peer) => (id, s.handle_nis_connected(at, id, peer)),
        // A capture's bytes are answered whole: the replay has no other input waiting.
        Step::Bytes(Service::Nut, id, b) => {
            (id, s.handle_nut_bytes(at, id, b, &mut { usize::MAX }))
        }
        Step::Bytes(Service::Nis, id, b) => {
            (id, s.handle_nis_bytes(at, id, b, &mut { usize::MAX }))
        }
        Step::Closed(Service::Nut, id) => return s.handle_nut_closed(at, id),
        Step::Closed(Service::Nis, id) => return s.handle_nis_closed(at, id),
    };
    if reply.1.close {
        match step {
            Step::Connected(Service::Nut, ..) | Step::Bytes(Service::Nut, ..) => {
                s.handle_nut_closed(at, reply.0)
            }
            _ => s.handle_nis_closed(at, reply.0),
        }
        clients.dropped(reply.0);
    }
}

/// A replay's restart at `at`: `old`'s timers run to then; a new station (`make` at the
/// journal's first time) is fed every record so far (the journal), and resumed.
fn restarted(
    old: &mut crate::engine::station::Station,
    at: Timestamp,
    keep: &mut impl FnMut(crate::engine::station::Happened<'_>),
    log: &std::cell::RefCell<Vec<(Timestamp, crate::engine::record::Record)>>,
    make: &dyn Fn(Timestamp) -> crate::engine::station::Station,
) -> crate::engine::station::Station {
    use crate::engine::record::{Action, Record};
    old.run_to(at, keep);
    old.settle(keep);
    let journal = log.borrow().clone();
    let mut s = make(journal.first().map_or(at, |(t, _)| *t));
    for (t, r) in &journal {
        s.restore(*t, r);
    }
    let resumed = s.resumed(at);
    let detail = format!(
        "replay restarted: journal: {} records read, {} recorders waiting for their acknowledgement, {} acknowledged, {} orders not journaled as sent",
        journal.len(),
        resumed.waiting,
        resumed.acknowledged,
        resumed.unsent
    );
    s.note(at, Record::Action(Action::Started { detail, site: None }));
    s.settle(keep);
    s
}

/// Whether a datagram in a capture is for the gateway's trap port: to 162, or a
/// notification (a v1 or v2 trap, an inform) to a port the replay was given (`--port`:
/// the agents' and the trap port's moved alike, which only the PDU tells apart).
fn at_trap_port(d: &crate::wire::frame::Datagram<'_>, ports: &[u16]) -> bool {
    d.dst_port == 162
        || (ports.contains(&d.dst_port)
            && matches!(
                crate::engine::forward::pdu_tag(d.payload),
                Some(0xa4 | 0xa6 | 0xa7)
            ))
}

/// How long past a capture's last frame a replay's timers may run: a day.
pub const RUN_OUT_S: u32 = 86_400;

/// Replays a capture through decode → classify → trust → the station, the capture's
/// clock driving it: before each frame, every timer due at or before its time fires (at
/// the timer's own time), then the frame goes in. What a frame may do is checked as
/// the live gateway checks it (`crate::engine::trust`): a notification from its
/// source's address with its community; a request to the virtual UPS from a recorder
/// with its; a UPS's answer only as the answer to a request seen on the wire. NUT and
/// apcupsd clients' TCP connections to the site's ports (`[gateway] nut` and `nis`,
/// else 3493 and 3551) go in as the live daemon gives them: connected, bytes, closed
/// (`tcp::Clients`). What the
/// station sends goes nowhere, but it is decided, encoded and recorded as if sent (the
/// capture holds no answer to the station's own polls). Returns every record, in
/// order, with its capture time. The story's timers still pending after the last frame
/// run out (`Station::run_out`, `RUN_OUT_S` at most): a capture that stops mid-outage
/// shows its re-sends, `NotAcknowledged`, `NotBack` as the live gateway would.
///
/// `restart_at` (seconds after the first frame) restarts the gateway then, as a crash
/// and `trapgate run --journal` would: a fresh station is fed every record so far (the
/// journal), resumed, and takes the rest of the capture; what the old one had under way
/// and had not journaled is lost with it.
pub fn replay_story(
    path: &Path,
    site: crate::engine::config::Site,
    ports: &[u16],
    restart_at: Option<u32>,
) -> Result<(Vec<(Timestamp, crate::engine::record::Record)>, ReplayEnd), CaptureError> {
    use crate::engine::poller::Sequence;
    use crate::engine::record::Record;
    use crate::engine::station::{Happened, Notification, Options, Station};
    use crate::engine::trust::{Credential, Refusal, Refusals, Trust, Who, WireWatch};
    use crate::wire::{Pdu, PduType};

    let trust = Trust::new(&site);
    let relays = replay_relays(&site);
    let mut clients = tcp::Clients::new(
        site.gateway.nut.map_or(3493, |a| a.port()),
        site.gateway.nis.map_or(3551, |a| a.port()),
    );
    let mut pipeline = Pipeline::new(site.classifier(), ports);
    pipeline.set_usm(crate::engine::usm::Usm::new(&site));
    // The trap port, as the live workers decide it.
    let mut ingress = crate::engine::ingress::Ingress::new(pipeline, site.recorders.len());
    let forwarding = site.forwarding.clone();
    let first_site = site.clone();
    let mut site = Some(site);
    let mut station: Option<Station> = None;
    let log: std::cell::RefCell<Vec<(Timestamp, Record)>> = Default::default();
    let mut restart = restart_at;
    let mut refusals = Refusals::default();
    let mut wire = WireWatch::default();
    let mut commands = WireWatch::default();
    let mut foreign = 0u64;
    // Everything the station has: its records, and what it sends, as sent.
    let mut keep = |h: Happened<'_>| {
        if let Happened::Record(at, r) = h {
            log.borrow_mut().push((at, r));
        }
    };
    // A station of the site: trapgate's SNMPv3 engine, for the orders to v3 recorders,
    // is the site's, or one named for the replay (no host's name: a replay is the same
    // anywhere); a restart's is booted once more, its request ids others.
    let make = |site: crate::engine::config::Site, t: Timestamp, boots: u32| {
        let engine = crate::engine::usm::LocalEngine {
            id: site
                .gateway
                .engine_id
                .clone()
                .unwrap_or_else(|| crate::engine::usm::local_engine_id("replay")),
            boots,
        };
        let mut s = Station::new(
            site,
            Options::default(),
            relays.clone(),
            Box::new(Sequence((boots as i32 - 1) * 10_000)),
            t,
        );
        s.set_local_engine(engine);
        s
    };
    // The virtual UPS's requests, decoded again by the station's one entry for them.
    let mut requests = bumpalo::Bump::new();
    let mut last = Timestamp(0);
    let mut origin = None;
    let mut arena = bumpalo::Bump::new();
    let end = read_capture(path, |frame| {
        arena.reset();
        let time = Timestamp(frame.time_ns);
        let first = *origin.get_or_insert(time);
        let s = station.get_or_insert_with(|| make(site.take().expect("made once"), time, 1));
        if let Some(after) = restart
            && time >= first.plus_secs(after)
        {
            restart = None;
            let at = first.plus_secs(after);
            *s = restarted(s, at, &mut keep, &log, &|t| make(first_site.clone(), t, 2));
        }
        // Every timer due before the frame fires first, at its own time, and what it
        // decided is acted on then.
        s.run_to(time, &mut keep);
        last = time;
        let outcome = match ingress.pipeline_mut().frame(frame.link, frame.data) {
            Err(drop) => Outcome::NoDatagram(drop),
            // The trap port: decided as the live workers decide it.
            Ok(d) if at_trap_port(&d, ports) => {
                let (from, local) = (
                    std::net::SocketAddr::new(d.src, d.src_port),
                    std::net::SocketAddr::new(d.dst, d.dst_port),
                );
                let took = ingress.handle(
                    &trust,
                    &forwarding,
                    time,
                    (local, from),
                    d.payload,
                    false,
                    time.0,
                    &arena,
                );
                if let Some(detail) = took.reply {
                    let r = crate::engine::record::Action::Replied {
                        to: from,
                        detail: detail.into(),
                    };
                    log.borrow_mut().push((time, Record::Action(r)));
                }
                if let Some((mask, _)) = &took.forward {
                    let to = forwarding
                        .targets()
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| mask & (1 << i) != 0)
                        .map(|(_, t)| t.to_text.as_str().into())
                        .collect();
                    let r = crate::engine::record::Action::Forwarded { from, to };
                    log.borrow_mut().push((time, Record::Action(r)));
                }
                if let Some((why, event)) = took.refused {
                    refusals.add(why);
                    s.handle_refused(time, why, 1, Some(from.ip()), event);
                }
                match took.heard {
                    Some(crate::engine::ingress::Heard::Event {
                        source,
                        who,
                        community,
                        v3,
                        class,
                        ..
                    }) => {
                        let rule = ingress.pipeline().classifier().rule_name(class);
                        let n = Notification {
                            who,
                            source,
                            community: community.as_bytes(),
                            v3,
                            event: class.event,
                            rule: &rule,
                            index: class.index,
                        };
                        s.handle_notification(time, &n);
                    }
                    Some(crate::engine::ingress::Heard::Seen { recorder, .. }) => {
                        s.handle_seen(time, recorder)
                    }
                    None => {}
                }
                s.settle(&mut keep);
                return;
            }
            Ok(d) => ingress.pipeline_mut().process_datagram(d, &arena, time),
        };
        let r = Replayed {
            frame: frame.number,
            time,
            origin: first,
            len: frame.orig_len,
            outcome,
            link: frame.link,
            data: frame.data,
        };
        let (d, m, class) = match &r.outcome {
            Outcome::Message(d, m, class) => (d, m, class),
            Outcome::NoDatagram(crate::wire::frame::FrameDrop::NotUdp) => {
                if let Ok(seg) = crate::wire::frame::tcp_segment(r.link, r.data) {
                    let mut steps = Vec::new();
                    clients.segment(&seg, &mut steps);
                    for step in steps.drain(..) {
                        client_step(s, &mut clients, r.time, step);
                    }
                    s.settle(&mut keep);
                }
                return;
            }
            // A v3 message of a site address the security model refused: counted and
            // journaled as the live gateway does.
            Outcome::Refused(d, why) if trust.who(d.src).is_some() => {
                let why = Refusal::from(*why);
                refusals.add(why);
                s.handle_refused(r.time, why, 1, Some(d.src), None);
                return;
            }
            _ => return,
        };
        let (from, to) = (
            std::net::SocketAddr::new(d.src, d.src_port),
            std::net::SocketAddr::new(d.dst, d.dst_port),
        );
        // The gateway's own commands to a card seen on the wire (a get or set to an
        // outlet's card from an address that is not the site's, or any set): the card's
        // answer counts as it does live, for the outlet whose request under way it
        // answers (same endpoints, request id and write community).
        if let Pdu::Request(q) = &m.pdu {
            let own = trust.who(d.src).is_none() || q.kind == PduType::SET_REQUEST;
            if own
                && matches!(q.kind, PduType::GET_REQUEST | PduType::SET_REQUEST)
                && s.is_outlet_card(to)
            {
                commands.request(r.time, from, to, q.request_id, m.community);
                return;
            }
            // Another's answer goes on, to be refused as an answer to nothing asked.
            if q.kind == PduType::RESPONSE
                && s.is_outlet_card(from)
                && commands.response(r.time, from, to, q.request_id, m.community)
                && s.handle_wire_command_answer(r.time, from, m.community, q)
            {
                s.settle(&mut keep);
                return;
            }
        }
        let Some(who) = trust.who(d.src) else {
            foreign += 1;
            return;
        };
        let mut refuse = |s: &mut Station, why: Refusal, event| {
            refusals.add(why);
            s.handle_refused(r.time, why, 1, Some(d.src), event);
        };
        let to_a_ups = matches!(trust.who(d.dst), Some(Who::Ups(_)));
        match (&m.pdu, class) {
            // A notification off the trap port (to an agent's port): nothing, as live.
            (_, Some(_)) => {}
            (Pdu::Request(q), None)
                if matches!(
                    q.kind,
                    PduType::GET_REQUEST | PduType::GET_NEXT_REQUEST | PduType::GET_BULK_REQUEST
                ) =>
            {
                if to_a_ups {
                    // A recorder (or anyone) polling a UPS itself: its answer may count.
                    wire.request(r.time, from, to, q.request_id, m.community);
                    if let Some(rec) = trust.heard_from(who, Credential::of(m)) {
                        s.handle_seen(r.time, rec);
                    }
                } else {
                    // A recorder polling its virtual UPS.
                    requests.reset();
                    s.handle_agent_datagram(r.time, from, d.payload, &requests);
                }
            }
            (Pdu::Request(q), None) if q.kind == PduType::RESPONSE => {
                let Who::Ups(u) = who else { return };
                if *m.community != *trust.community(who) {
                    refuse(s, Refusal::AnswerWrongCommunity, None);
                } else if !wire.response(r.time, from, to, q.request_id, m.community) {
                    refuse(s, Refusal::AnswerUnknownRequest, None);
                } else {
                    s.handle_wire_answer(r.time, u, q);
                }
            }
            _ => {
                if let Some(rec) = trust.heard_from(who, Credential::of(m)) {
                    s.handle_seen(r.time, rec);
                }
            }
        }
        s.settle(&mut keep);
    })?;
    let counts = match station.as_mut() {
        Some(s) => {
            // A restart after the last frame.
            if let Some(after) = restart
                && let Some(origin) = origin
                && origin.plus_secs(after) <= last.plus_secs(RUN_OUT_S)
            {
                let at = origin.plus_secs(after);
                *s = restarted(s, at, &mut keep, &log, &|t| make(first_site.clone(), t, 2));
            }
            // The story's timers run out past the last frame (a day at most).
            s.run_out(last.plus_secs(RUN_OUT_S), &mut keep);
            s.flush_refusals(last);
            s.settle(&mut keep);
            s.counts()
        }
        None => Default::default(),
    };
    Ok((
        log.into_inner(),
        ReplayEnd {
            read: end,
            counters: ingress.pipeline().counters().clone(),
            refused: refusals,
            foreign: foreign
                + ingress
                    .tallies()
                    .get(crate::engine::tally::Counter::Foreign),
            counts,
        },
    ))
}
