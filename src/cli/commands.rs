//! The `trapgate` subcommands, each writing to the output it is given: `decode`,
//! `events`, `check-config`, `replay`, `journal` and `run`.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::capture::{self as replay, Replayed};
use crate::classify::Classifier;
use crate::cli::report::{self, Seen};
use crate::engine::config::Site;
use crate::engine::pipeline::{Outcome, Pipeline};

fn seen<'a>(r: &Replayed<'_>, d: &'a crate::wire::frame::Datagram<'a>) -> Seen<'a> {
    Seen {
        frame: r.frame,
        time: r.time,
        origin: r.origin,
        len: r.len,
        datagram: d,
    }
}

/// The pipeline a capture is read with: the built-in rules, or a site's rules and its
/// SNMPv3 users (which decrypt v3 messages, as Wireshark's SNMP users table does).
fn capture_pipeline(ports: &[u16], config: Option<&Path>) -> Result<Pipeline, String> {
    Ok(match config {
        None => Pipeline::new(Classifier::builtin(), ports),
        Some(path) => {
            let site = load_site(Some(path))?;
            let mut p = Pipeline::new(site.classifier(), ports);
            p.set_usm(crate::engine::usm::Usm::new(&site));
            p
        }
    })
}

/// Prints every SNMP message of a capture, as a packet list or JSON lines; with a site
/// file, its v3 users decrypt.
pub fn decode(
    file: &Path,
    json: bool,
    ports: &[u16],
    config: Option<&Path>,
    out: &mut impl Write,
) -> Result<(), String> {
    let mut pipeline = capture_pipeline(ports, config)?;
    let mut write_err = None;
    let end = replay::replay(file, &mut pipeline, |p, r| {
        if write_err.is_some() {
            return;
        }
        let line = match &r.outcome {
            Outcome::Message(d, m, _) => {
                let s = seen(r, d);
                if json {
                    report::message_json(p.classifier(), &s, m).to_string()
                } else {
                    report::message_line(p.classifier(), &s, m)
                }
            }
            Outcome::Malformed(d, e) => {
                let s = seen(r, d);
                if json {
                    report::malformed_json(&s, e).to_string()
                } else {
                    report::malformed_line(&s, e)
                }
            }
            Outcome::Refused(d, why) => {
                let s = seen(r, d);
                if json {
                    report::refused_json(&s, *why).to_string()
                } else {
                    report::refused_line(&s, *why)
                }
            }
            Outcome::NoDatagram(_) | Outcome::OtherPort(_) => return,
        };
        if let Err(e) = writeln!(out, "{line}") {
            write_err = Some(e);
        }
    })
    .map_err(|e| e.to_string())?;
    if let Some(e) = write_err {
        return Err(e.to_string());
    }
    let cut = end.cut_short.as_deref();
    if json {
        writeln!(out, "{}", report::summary_json(pipeline.counters(), cut))
    } else {
        write!(out, "{}", report::summary_text(pipeline.counters(), cut))
    }
    .map_err(|e| e.to_string())
}

/// Prints the classified UPS events of a capture as JSON lines; with a site file, its
/// v3 users decrypt.
pub fn events(
    file: &Path,
    ports: &[u16],
    config: Option<&Path>,
    out: &mut impl Write,
) -> Result<(), String> {
    let mut pipeline = capture_pipeline(ports, config)?;
    let mut write_err = None;
    let end = replay::replay(file, &mut pipeline, |p, r| {
        if let Outcome::Message(d, m, Some(c)) = &r.outcome {
            let line = report::event_json(p.classifier(), &seen(r, d), m, c);
            if write_err.is_none()
                && let Err(e) = writeln!(out, "{line}")
            {
                write_err = Some(e);
            }
        }
    })
    .map_err(|e| e.to_string())?;
    if let Some(e) = write_err {
        return Err(e.to_string());
    }
    writeln!(
        out,
        "{}",
        report::summary_json(pipeline.counters(), end.cut_short.as_deref())
    )
    .map_err(|e| e.to_string())
}

/// `trapgate status`: the running gateway's `/status.json` from `at`, as tables.
pub fn status(at: std::net::SocketAddr, out: &mut impl Write) -> Result<(), String> {
    use std::io::Read;
    let unreachable = |e: &dyn std::fmt::Display| {
        format!(
            "cannot reach trapgate at {at}: {e} (is it running, with [gateway] http = \"{at}\" or --http {at}?)"
        )
    };
    let mut s = std::net::TcpStream::connect_timeout(&at, Duration::from_secs(5))
        .map_err(|e| unreachable(&e))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| unreachable(&e))?;
    write!(
        s,
        "GET /status.json HTTP/1.1\r\nHost: {at}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| unreachable(&e))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| unreachable(&e))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    if !head.starts_with("HTTP/1.1 200") {
        let first = head.lines().next().unwrap_or("");
        return Err(format!(
            "trapgate at {at} answered {first:?}: {}",
            body.trim()
        ));
    }
    let v: serde_json::Value = serde_json::from_str(body)
        .map_err(|e| format!("trapgate at {at} sent what is not its status: {e}"))?;
    let str_of = |v: &serde_json::Value| match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let short = |t: &serde_json::Value| {
        str_of(t)
            .split_once('T')
            .map(|(_, time)| time.split('.').next().unwrap_or(time).to_string() + "Z")
            .unwrap_or_default()
    };
    let w = |e: io::Error| e.to_string();
    writeln!(out, "trapgate at {at}, as of {}", str_of(&v["time"])).map_err(w)?;
    writeln!(out, "{}\n", str_of(&v["summary"])).map_err(w)?;
    for n in v["notify"].as_array().into_iter().flatten() {
        writeln!(
            out,
            "notify {}: {}, {} sent, {} waiting, {} not told, {} failed tries",
            str_of(&n["target"]),
            if n["connected"] == true {
                "connected"
            } else {
                "NOT CONNECTED"
            },
            n["sent"],
            n["queued"],
            n["dropped"],
            n["failed"]
        )
        .map_err(w)?;
    }
    if let Some(p) = v.get("pair").filter(|p| !p.is_null()) {
        let peer = match (&p["peer_role"], p["peer_heard_s"].as_f64()) {
            (serde_json::Value::Null, _) | (_, None) => "never heard".to_string(),
            (role, Some(s)) => format!("{}, heard {s:.1} s ago", str_of(role)),
        };
        writeln!(
            out,
            "pair: {} since {} (address {}); peer {}: {peer}\n",
            str_of(&p["role"]).to_uppercase(),
            short(&p["since"]),
            str_of(&p["address"]),
            str_of(&p["peer"]),
        )
        .map_err(w)?;
    }
    let table = |out: &mut dyn Write, head: &[&str], rows: Vec<Vec<String>>| -> io::Result<()> {
        let mut widths: Vec<usize> = head.iter().map(|h| h.len()).collect();
        for r in &rows {
            for (i, c) in r.iter().enumerate() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        let line = |out: &mut dyn Write, cells: Vec<String>| -> io::Result<()> {
            let cells: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            writeln!(out, "{}", cells.join("  ").trim_end())
        };
        line(out, head.iter().map(|h| h.to_string()).collect())?;
        for r in rows {
            line(out, r)?;
        }
        writeln!(out)
    };
    let none = Vec::new();
    let upses = v["upses"].as_array().unwrap_or(&none);
    let rows = upses
        .iter()
        .map(|u| {
            vec![
                str_of(&u["name"]),
                str_of(&u["address"]),
                if u["on_battery"] == true {
                    "ON BATTERY"
                } else {
                    "on mains"
                }
                .to_string(),
                short(&u["on_battery_since"]),
                u["charge"]
                    .as_u64()
                    .map_or(String::new(), |c| format!("{c} %")),
                u["runtime_s"]
                    .as_u64()
                    .map_or(String::new(), |r| format!("{} min", r / 60)),
                if u["answering_polls"] == true {
                    "answering"
                } else {
                    "not answering"
                }
                .to_string(),
                match &u["last_trap"] {
                    serde_json::Value::Null => String::new(),
                    t => format!("{} {}", str_of(&t["event"]), short(&t["time"])),
                },
            ]
        })
        .collect();
    table(
        out,
        &[
            "UPS",
            "ADDRESS",
            "POWER",
            "SINCE",
            "CHARGE",
            "RUNTIME",
            "POLLS",
            "LAST TRAP",
        ],
        rows,
    )
    .map_err(w)?;
    // Each outage in progress, its tiers in the order they are shed.
    for o in v["outages"].as_array().unwrap_or(&none) {
        let back = if o["mains_back_at"].is_null() {
            String::new()
        } else {
            format!(
                "; mains back since {}, the outage ends at {} if power holds",
                short(&o["mains_back_at"]),
                short(&o["outage_ends_at"])
            )
        };
        writeln!(
            out,
            "\n{} on battery since {}{back}:",
            str_of(&o["ups"]),
            short(&o["on_battery_since"])
        )
        .map_err(w)?;
        for t in o["tiers"].as_array().unwrap_or(&none) {
            let line = if t["held"].as_bool() == Some(true) {
                format!(
                    "  tier {}: {} recorders, not shed: held while mains settles, not shed if power holds",
                    str_of(&t["tier"]),
                    str_of(&t["recorders"]),
                )
            } else if t["shed_at"].is_null() {
                format!(
                    "  tier {}: {} recorders, to be shed {}",
                    str_of(&t["tier"]),
                    str_of(&t["recorders"]),
                    if t["grace_ends"].is_null() {
                        "on low battery".to_string()
                    } else {
                        format!("at {}", short(&t["grace_ends"]))
                    }
                )
            } else {
                format!(
                    "  tier {}: shed at {}: {} told, {} acknowledged, {} not acknowledged of {}",
                    str_of(&t["tier"]),
                    short(&t["shed_at"]),
                    str_of(&t["told"]),
                    str_of(&t["acknowledged"]),
                    str_of(&t["not_acknowledged"]),
                    str_of(&t["recorders"])
                )
            };
            writeln!(out, "{line}").map_err(w)?;
        }
        if !o["outlets_off_at"].is_null() {
            writeln!(out, "  outlets off at {}", short(&o["outlets_off_at"])).map_err(w)?;
        }
        writeln!(out).map_err(w)?;
    }
    let recorders = v["recorders"].as_array().unwrap_or(&none);
    let rows = recorders
        .iter()
        .map(|r| {
            vec![
                str_of(&r["name"]),
                str_of(&r["tier"]),
                str_of(&r["kind"]),
                r["ups"]
                    .as_array()
                    .map(|a| a.iter().map(str_of).collect::<Vec<_>>().join(","))
                    .unwrap_or_default(),
                if r["still_running"] == true {
                    format!("{}, STILL RUNNING", str_of(&r["state"]).replace('_', " "))
                } else {
                    str_of(&r["state"]).replace('_', " ")
                },
                short(&r["ordered_at"]),
                str_of(&r["attempts"]),
                short(&r["outlet_off_at"]),
            ]
        })
        .collect();
    table(
        out,
        &[
            "RECORDER",
            "TIER",
            "KIND",
            "UPS",
            "STATE",
            "TOLD",
            "ATTEMPTS",
            "OUTLETS OFF",
        ],
        rows,
    )
    .map_err(w)?;
    let outlets = v["outlets"].as_array().unwrap_or(&none);
    if outlets.is_empty() {
        return Ok(());
    }
    writeln!(out).map_err(w)?;
    let rows = outlets
        .iter()
        .map(|o| {
            vec![
                str_of(&o["name"]),
                str_of(&o["state"]).replace('_', " "),
                short(&o["cut_at"]),
                o["recorders"]
                    .as_array()
                    .map(|a| a.iter().map(str_of).collect::<Vec<_>>().join(","))
                    .unwrap_or_default(),
            ]
        })
        .collect();
    table(out, &["OUTLET", "STATE", "CUT AT", "RECORDERS"], rows).map_err(w)
}

/// Prints the verdict on a site file; Ok(false) when it has mistakes.
pub fn check_config(file: Option<&Path>, out: &mut impl Write) -> Result<bool, String> {
    let (name, text) = match file {
        Some(f) => (
            f.display().to_string(),
            std::fs::read_to_string(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?,
        ),
        None => (
            "(embedded default site)".to_string(),
            crate::engine::config::DEFAULT_SITE.to_string(),
        ),
    };
    let w = |e: io::Error| e.to_string();
    match Site::parse_with(&text, &crate::daemon::secrets::read) {
        Ok(site) => {
            let tiers: Vec<String> = site.policy.grace.keys().map(|t| t.to_string()).collect();
            writeln!(
                out,
                "{name}: OK: {} UPS, {} recorders, tiers {}, {} extra trap rules",
                site.upses.len(),
                site.recorders.len(),
                tiers.join(", "),
                site.rules.len()
            )
            .map_err(w)?;
            for warning in site.warnings() {
                writeln!(out, "{name}: warning: {warning}").map_err(w)?;
            }
            for t in site.forwarding.targets() {
                use crate::engine::forward::{ForwardVersion, Match, Sources};
                let matches: Vec<String> = t
                    .matches
                    .iter()
                    .map(|m| match m {
                        Match::Exact(o) => o.to_string(),
                        Match::Subtree(o) => format!("{o}*"),
                        Match::Below(o) => format!("{o}.*"),
                        Match::All => "*".into(),
                        Match::Default => "default".into(),
                    })
                    .collect();
                let from = match t.source {
                    Some(a) => format!(" from {a}"),
                    None => String::new(),
                };
                writeln!(
                    out,
                    "{name}: forwards to {} ({}){from}: {}; {}; {}",
                    t.to_text,
                    t.to,
                    matches.join(", "),
                    match t.version {
                        ForwardVersion::AsReceived => "as received",
                        ForwardVersion::V2c => "as v2c",
                    },
                    match t.sources {
                        Sources::Site => "the site's UPSes' notifications",
                        Sources::Any => "anyone's notifications",
                    }
                )
                .map_err(w)?;
            }
            if !site.usm_users.is_empty() {
                let engine = crate::daemon::receive::local_engine(&site, 0);
                let users: Vec<String> = site
                    .usm_users
                    .iter()
                    .map(|u| format!("{} ({})", u.name, u.level().name()))
                    .collect();
                writeln!(
                    out,
                    "{name}: SNMPv3 users {}; trapgate's engine ID {}",
                    users.join(", "),
                    hex_id(&engine.id)
                )
                .map_err(w)?;
            }
            Ok(true)
        }
        Err(errors) => {
            for e in &errors {
                writeln!(out, "{name}:{e}").map_err(w)?;
            }
            writeln!(
                out,
                "{name}: {} mistake{}",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            )
            .map_err(w)?;
            Ok(false)
        }
    }
}

/// `check-config --probe FILE`, once the file reads well: every card read and held
/// against it (`daemon::probe`); Ok(false) on a disagreement or a card not answering.
pub fn probe_cards(file: &Path, out: &mut impl Write) -> Result<bool, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let site = Site::parse_with(&text, &crate::daemon::secrets::read)
        .map_err(|_| format!("{}: not a good site file", file.display()))?;
    let name = file.display();
    let w = |e: io::Error| e.to_string();
    let findings = crate::daemon::probe::probe(&site);
    let mut bad = 0;
    for f in &findings {
        if f.fails() {
            bad += 1;
            writeln!(out, "{name}: {}: disagreement: {}", f.card, f.text).map_err(w)?;
        } else {
            writeln!(out, "{name}: {}: {}", f.card, f.text).map_err(w)?;
        }
    }
    writeln!(
        out,
        "{name}: probe: {} UPS and {} PDU read, {bad} disagreement{}",
        site.upses.len(),
        site.pdus.len(),
        if bad == 1 { "" } else { "s" }
    )
    .map_err(w)?;
    Ok(bad == 0)
}

/// An engine ID as net-snmp writes it: 0x and hex.
pub fn hex_id(id: &[u8]) -> String {
    format!("0x{}", crate::wire::hex::encode(id))
}

/// Loads a site file, or the embedded default site; a broken file is an error naming
/// every mistake.
pub fn load_site(config: Option<&Path>) -> Result<Site, String> {
    let Some(path) = config else {
        return Ok(Site::default_site());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Site::parse_with(&text, &crate::daemon::secrets::read).map_err(|errors| {
        let lines: Vec<String> = errors
            .iter()
            .map(|e| format!("{}:{e}", path.display()))
            .collect();
        format!("the site file has mistakes:\n{}", lines.join("\n"))
    })
}

/// `replay --notify-dry`: what each of the site's `[[notify]]` targets would have been
/// told of the capture, one JSON line each (`{"notify": TARGET, "time": …, "kind": …,
/// "message": …}`); nothing is sent.
pub fn replay_notify(
    file: &Path,
    config: Option<&Path>,
    ports: &[u16],
    restart_at: Option<u32>,
    out: &mut impl Write,
) -> Result<(), String> {
    let site = load_site(config)?;
    if site.notify.is_empty() {
        return Err(format!(
            "{}: the site has no [[notify]]: nothing would be told (add the targets to check, or leave out --notify-dry)",
            config.map_or_else(
                || "the embedded site".to_string(),
                |p| p.display().to_string()
            )
        ));
    }
    let targets = site.notify.clone();
    let (log, _) =
        replay::replay_story(file, site, ports, restart_at).map_err(|e| e.to_string())?;
    let w = |e: io::Error| e.to_string();
    for (t, r) in &log {
        for target in &targets {
            if let Some(message) = crate::engine::tell::dry(target, r, *t, 0) {
                let line = serde_json::json!({
                    "notify": target.label(),
                    "time": t.utc().to_string(),
                    "kind": crate::engine::tell::record_kind(r),
                    "message": message,
                });
                writeln!(out, "{line}").map_err(w)?;
            }
        }
    }
    Ok(())
}

/// Prints the decision log of a capture; Ok(false) when it differs from `expect`.
pub fn replay_policy(
    file: &Path,
    config: Option<&Path>,
    expect: Option<&Path>,
    ports: &[u16],
    restart_at: Option<u32>,
    out: &mut impl Write,
) -> Result<bool, String> {
    let site = load_site(config)?;
    let (log, end) =
        replay::replay_story(file, site, ports, restart_at).map_err(|e| e.to_string())?;
    let mut text = String::new();
    let mut decisions = 0;
    for (t, r) in log.iter().filter(|(_, r)| r.shown()) {
        decisions += usize::from(matches!(r, crate::engine::record::Record::Decision(_)));
        text.push_str(&r.printed(*t, 0).to_string());
        text.push('\n');
    }
    let mut summary = report::summary_json(&end.counters, end.read.cut_short.as_deref());
    if end.foreign > 0 {
        summary["summary"]["dropped"]["source_not_in_site"] = serde_json::json!(end.foreign);
    }
    summary["summary"]["decisions"] = serde_json::json!(decisions);
    summary["summary"]["refused"] = serde_json::json!(end.refused.total());
    let by_reason: serde_json::Map<String, serde_json::Value> = end
        .refused
        .nonzero()
        .map(|(r, n)| (r.name().to_string(), serde_json::json!(n)))
        .collect();
    if !by_reason.is_empty() {
        summary["summary"]["refused_by_reason"] = serde_json::Value::Object(by_reason);
    }
    text.push_str(&summary.to_string());
    text.push('\n');
    let w = |e: io::Error| e.to_string();
    let Some(expect) = expect else {
        out.write_all(text.as_bytes()).map_err(w)?;
        return Ok(true);
    };
    let golden = std::fs::read_to_string(expect)
        .map_err(|e| format!("cannot read {}: {e}", expect.display()))?;
    if golden == text {
        writeln!(
            out,
            "{}: the decisions match {}",
            file.display(),
            expect.display()
        )
        .map_err(w)?;
        return Ok(true);
    }
    let (want, got): (Vec<&str>, Vec<&str>) = (golden.lines().collect(), text.lines().collect());
    for i in 0..want.len().max(got.len()) {
        let (a, b) = (want.get(i), got.get(i));
        if a != b {
            writeln!(out, "line {}:", i + 1).map_err(w)?;
            writeln!(out, "- {}", a.unwrap_or(&"(none)")).map_err(w)?;
            writeln!(out, "+ {}", b.unwrap_or(&"(none)")).map_err(w)?;
        }
    }
    writeln!(
        out,
        "{}: the decisions differ from {}",
        file.display(),
        expect.display()
    )
    .map_err(w)?;
    Ok(false)
}

/// `trapgate journal FILE…`: the records of one journal as a person reads them (or as
/// JSON lines), only those about `only` if given; of several (a pair's), one story merged
/// by time, each line labelled with its file's name, and a record the actor shipped
/// shown once (from the journal that made it: the standby's `FromPeer` copy is left out
/// where the actor's own journal has the record).
pub fn print_journal(
    files: &[std::path::PathBuf],
    only: &[String],
    json: bool,
    out: &mut impl Write,
) -> Result<(), String> {
    use crate::engine::record::{Action, Record};
    let w = |e: io::Error| e.to_string();
    let mut all: Vec<(crate::time::Timestamp, usize, Record)> = Vec::new();
    let (mut read, mut damaged, mut shown) = (0, 0, 0);
    let one = files.len() == 1;
    let mut failed = None;
    for (i, file) in files.iter().enumerate() {
        if !file.exists() {
            return Err(format!("{}: no such journal", file.display()));
        }
        let found = crate::daemon::journal::read(file, |t, r| {
            if failed.is_some() || (!only.is_empty() && !only.iter().any(|n| r.concerns(n))) {
                return;
            }
            if !one {
                all.push((t, i, r));
                return;
            }
            // One journal is printed as it is read (a year of it need not fit in memory).
            shown += 1;
            let line = if json {
                r.printed(t, 0).to_string()
            } else {
                r.readable(t)
            };
            if let Err(e) = writeln!(out, "{line}") {
                failed = Some(e);
            }
        })
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        for (f, line, why) in &found.damaged {
            eprintln!("trapgate: {}:{line}: skipped: {why}", f.display());
        }
        for (f, line, what) in &found.other_format {
            eprintln!("trapgate: {}:{line}: skipped: {what}", f.display());
        }
        read += found.records;
        damaged += found.damaged.len();
    }
    if let Some(e) = failed {
        return Err(w(e));
    }
    // Several journals: the records each made itself, to leave out the copies shipped.
    let own: std::collections::HashSet<String> = if !one {
        all.iter()
            .filter(|(_, _, r)| !matches!(r, Record::Action(Action::FromPeer { .. })))
            .filter_map(|(_, _, r)| serde_json::to_string(r).ok())
            .collect()
    } else {
        Default::default()
    };
    all.sort_by_key(|(t, i, _)| (*t, *i));
    let label = |i: usize| {
        files[i].file_name().map_or_else(
            || files[i].display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    };
    for (t, i, r) in &all {
        if let Record::Action(Action::FromPeer { record, .. }) = r
            && serde_json::to_string(record).is_ok_and(|j| own.contains(&j))
        {
            continue;
        }
        shown += 1;
        let line = if json {
            let mut v = r.printed(*t, 0);
            if let Some(o) = v.as_object_mut() {
                o.insert("journal".into(), label(*i).into());
            }
            v.to_string()
        } else {
            let text = r.readable(*t);
            match text.split_once("  ") {
                Some((at, what)) => format!("{at}  [{}] {what}", label(*i)),
                None => text,
            }
        };
        writeln!(out, "{line}").map_err(w)?;
    }
    eprintln!("trapgate: {shown} of {read} records shown, {damaged} damaged lines skipped");
    Ok(())
}

/// Runs the live gateway until a signal stops it. Its records go to stdout through the
/// console's queue (a stdout nobody reads never holds up an order).
pub fn run_gateway(config: &Path, opts: crate::daemon::Options) -> Result<(), String> {
    use crate::daemon::console;
    let site = load_site(Some(config))?;
    let (upses, recorders) = (site.upses.len(), site.recorders.len());
    let v3 = !site.usm_users.is_empty();
    let dry_run = opts.dry_run;
    let config: PathBuf = config.to_path_buf();
    let stopped = crate::daemon::run(
        site,
        opts,
        |b| {
            let addrs: Vec<String> = b.listen.iter().map(|a| a.to_string()).collect();
            console::warn(format!(
                "trapgate: listening on {} ({upses} UPS, {recorders} recorders; {} receive worker{}{}), virtual UPS on {}, polls from {}{}",
                addrs.join(", "),
                b.workers,
                if b.workers == 1 { "" } else { "s" },
                match (b.workers, b.steered) {
                    (1, _) => "",
                    (_, true) => ", each source steered to one",
                    (_, false) => ", spread by the kernel's hash: no source steering on this kernel",
                },
                b.agent,
                b.polls
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(" and "),
                if dry_run { "; dry run: nothing is sent to recorders" } else { "" }
            ));
            if let Some(m) = b.metrics {
                console::warn(format!("trapgate: metrics on http://{m}/metrics"));
                console::warn(format!(
                    "trapgate: status page on http://{m}/ (and /status.json)"
                ));
            }
            if let Some(n) = b.nut {
                console::warn(format!("trapgate: NUT server on {n}"));
            }
            if let Some(n) = b.nis {
                console::warn(format!("trapgate: apcupsd NIS server on {n}"));
            }
            if let Some((me, peer, address, actor)) = b.pair {
                console::warn(format!(
                    "trapgate: pair channel on {me} to {peer}; {}",
                    if actor {
                        format!("the actor: holds {address}")
                    } else {
                        format!("the standby: {address} is not on this host (it decides and journals, and sends nothing to a recorder or an outlet)")
                    }
                ));
            }
            if v3 {
                console::warn(format!(
                    "trapgate: SNMPv3 engine ID {} (boots {}): v3 informs are sent to it",
                    hex_id(&b.engine.id),
                    b.engine.boots
                ));
            }
            if let Some(r) = &b.resumed {
                console::warn(format!(
                    "trapgate: journal: {} records read, {} damaged lines skipped; {} recorders waiting for an acknowledgement, {} acknowledged, {} orders not journaled as sent (sent once, an acknowledgement wait after they were decided)",
                    r.records, r.damaged, r.waiting, r.acknowledged, r.unsent
                ));
            }
        },
        |s| {
            console::out(s.printed.to_string());
        },
        move || load_site(Some(&config)),
    )
    .map_err(|e| e.to_string())?;
    // What is queued goes out first (a stdout nobody reads holds the summary 2 s at most).
    console::flush(Duration::from_secs(2));
    // A stderr closed meanwhile loses the summary, not the exit status.
    let _ = write!(
        std::io::stderr(),
        "{}",
        report::stop_summary(&stopped.stats, stopped.signal)
    );
    Ok(())
}
