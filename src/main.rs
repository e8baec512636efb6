//! The `trapgate` command line: parse arguments, pick a source, run the pipeline.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use trapgate::classify::Classifier;
use trapgate::config::Site;
use trapgate::pipeline::{Outcome, Pipeline};
use trapgate::report::{self, Seen};
use trapgate::source::replay::{self, Replayed};

/// An SNMP trap gateway for video-surveillance sites: UPS traps in, recorder shutdowns out.
#[derive(Parser)]
#[command(name = "trapgate", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print every SNMP message of a pcap/pcapng capture, like Wireshark's packet list.
    Decode {
        /// The capture file (pcap or pcapng).
        file: PathBuf,
        /// Print JSON lines instead of text.
        #[arg(long)]
        json: bool,
        /// Also take UDP on this port as SNMP (161 and 162 always are). Repeatable.
        #[arg(long = "port", value_name = "PORT")]
        ports: Vec<u16>,
    },
    /// Check a site file and print every mistake with its line and column (without a
    /// file: the embedded default site, the seed's).
    CheckConfig {
        /// The site file (site.toml).
        file: Option<PathBuf>,
    },
    /// Run the gateway: hear UPS traps and decide, until SIGINT or SIGTERM. Decisions are
    /// printed as JSON lines; a summary goes to stderr at the end.
    Run {
        /// The site (default: the embedded seed site).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Listen here instead of the site's [gateway] listen addresses. Repeatable.
        #[arg(long = "listen", value_name = "ADDR:PORT")]
        listen: Vec<std::net::SocketAddr>,
        /// Serve metrics (Prometheus text format) at http://ADDR:PORT/metrics.
        #[arg(long, value_name = "ADDR:PORT")]
        metrics: Option<std::net::SocketAddr>,
        /// Answer recorders' polls here instead of the site's [gateway] agent address.
        #[arg(long, value_name = "ADDR:PORT")]
        agent: Option<std::net::SocketAddr>,
        /// Append every event, decision and action to this journal (fsync'd before a
        /// decision is acted on), and resume the outage it holds at start.
        #[arg(long, value_name = "FILE")]
        journal: Option<PathBuf>,
        /// Decide, journal and report everything, but send nothing to recorders.
        #[arg(long)]
        dry_run: bool,
        /// Receive workers, each with its own socket on every listen address (default:
        /// the site's [gateway] workers; 0 there means one per core).
        #[arg(long, value_name = "N")]
        workers: Option<usize>,
    },
    /// Print a journal readably, optionally only what concerns one UPS or recorder.
    Journal {
        /// The journal file (its rotated files FILE.1 … are read too).
        file: PathBuf,
        /// Only records about this UPS or recorder (by name). Repeatable.
        #[arg(long = "only", value_name = "NAME")]
        only: Vec<String>,
        /// Print the records as JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Play the seed's story on loopback: a UPS, its recorders and the gateway, over
    /// real sockets, told as it happens, with the latency at the end.
    Demo {
        /// How many recorders (the seed had 2).
        #[arg(long, default_value_t = 2)]
        recorders: usize,
        /// How fast the site's clock runs (60: the seed's minutes pass in seconds).
        #[arg(long, default_value_t = 60.0)]
        speed: f64,
    },
    /// Replay a capture through the shutdown policy and print its decisions as JSON lines.
    Replay {
        /// The capture file (pcap or pcapng).
        file: PathBuf,
        /// The site (default: the embedded seed site).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Compare with this golden decision log; print the differences and exit 1.
        #[arg(long)]
        expect: Option<PathBuf>,
        /// Instead of deciding, send the capture's SNMP datagrams to this address
        /// (loopback or a test namespace) at the capture's pace.
        #[arg(long, value_name = "ADDR:PORT")]
        send: Option<std::net::SocketAddr>,
        /// With --send: pace multiplier (2 = twice as fast; 0 = as fast as possible).
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
    },
    /// Print the classified UPS events of a capture as JSON lines.
    Events {
        /// The capture file (pcap or pcapng).
        file: PathBuf,
        /// Also take UDP on this port as SNMP (161 and 162 always are). Repeatable.
        #[arg(long = "port", value_name = "PORT")]
        ports: Vec<u16>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `run` writes stdout from the console's own thread: it must not be locked here.
    let locked = !matches!(cli.command, Command::Run { .. });
    let stdout = io::stdout();
    let mut out: Box<dyn Write> = if locked {
        Box::new(BufWriter::new(stdout.lock()))
    } else {
        Box::new(io::sink())
    };
    let result = match cli.command {
        Command::Decode { file, json, ports } => decode(&file, json, &ports, &mut out),
        Command::Events { file, ports } => events(&file, &ports, &mut out),
        Command::Run {
            config,
            listen,
            metrics,
            agent,
            journal,
            dry_run,
            workers,
        } => {
            let opts = trapgate::gateway::Options {
                listen,
                agent,
                metrics,
                journal,
                dry_run,
                speed: 1.0,
                workers,
                time: None,
            };
            run_gateway(config.as_deref(), opts)
        }
        Command::Journal { file, only, json } => print_journal(&file, &only, json, &mut out),
        Command::Demo { recorders, speed } => trapgate::demo::run(recorders, speed, &mut out),
        Command::Replay {
            file,
            send: Some(to),
            speed,
            ..
        } => replay::send_capture(&file, to, speed).and_then(|sent| {
            writeln!(
                out,
                "sent {} SNMP datagrams from {} to {to} ({} other frames skipped)",
                sent.datagrams,
                file.display(),
                sent.skipped
            )
            .map_err(|e| e.to_string())
        }),
        Command::Replay {
            file,
            config,
            expect,
            ..
        } => match replay_policy(&file, config.as_deref(), expect.as_deref(), &mut out) {
            Ok(true) => Ok(()),
            Ok(false) => {
                let _ = out.flush();
                return ExitCode::from(1);
            }
            Err(e) => Err(e),
        },
        Command::CheckConfig { file } => match check_config(file.as_deref(), &mut out) {
            Ok(true) => Ok(()),
            Ok(false) => {
                let _ = out.flush();
                return ExitCode::from(1);
            }
            Err(e) => Err(e),
        },
    };
    let flushed = out.flush();
    // What the gateway said on stderr (the demo runs one) before the process goes.
    trapgate::source::console::flush(Duration::from_secs(1));
    match result.and(flushed.map_err(|e| e.to_string())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.contains("Broken pipe") => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("trapgate: {e}");
            ExitCode::from(2)
        }
    }
}

fn seen<'a>(r: &Replayed<'_>, d: &'a trapgate::source::frame::Datagram<'a>) -> Seen<'a> {
    Seen {
        frame: r.frame,
        time: r.time,
        origin: r.origin,
        len: r.len,
        datagram: d,
    }
}

fn decode(file: &Path, json: bool, ports: &[u16], out: &mut impl Write) -> Result<(), String> {
    let mut pipeline = Pipeline::new(Classifier::builtin(), ports);
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

fn events(file: &Path, ports: &[u16], out: &mut impl Write) -> Result<(), String> {
    let mut pipeline = Pipeline::new(Classifier::builtin(), ports);
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

/// Prints the verdict on a site file; Ok(false) when it has mistakes.
fn check_config(file: Option<&Path>, out: &mut impl Write) -> Result<bool, String> {
    let (name, text) = match file {
        Some(f) => (
            f.display().to_string(),
            std::fs::read_to_string(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?,
        ),
        None => (
            "(embedded default site)".to_string(),
            trapgate::config::DEFAULT_SITE.to_string(),
        ),
    };
    let w = |e: io::Error| e.to_string();
    match Site::parse(&text) {
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

/// Loads a site file, or the embedded default site; a broken file is an error naming
/// every mistake.
fn load_site(config: Option<&Path>) -> Result<Site, String> {
    let Some(path) = config else {
        return Ok(Site::default_site());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Site::parse(&text).map_err(|errors| {
        let lines: Vec<String> = errors
            .iter()
            .map(|e| format!("{}:{e}", path.display()))
            .collect();
        format!("the site file has mistakes:\n{}", lines.join("\n"))
    })
}

/// Prints the decision log of a capture; Ok(false) when it differs from `expect`.
fn replay_policy(
    file: &Path,
    config: Option<&Path>,
    expect: Option<&Path>,
    out: &mut impl Write,
) -> Result<bool, String> {
    let site = load_site(config)?;
    let (log, end) = replay::replay_decisions(file, site.clone()).map_err(|e| e.to_string())?;
    let mut text = String::new();
    let mut decisions = 0;
    for d in &log {
        let line = match &d.told {
            replay::Told::Decision(x) => {
                decisions += 1;
                report::decision_json(&site, d.time, x, 0)
            }
            replay::Told::Refused(r) => report::with_time(d.time, &report::refused_json(r)),
        };
        text.push_str(&line.to_string());
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

/// Prints a journal, all of it or what concerns the names in `only`.
fn print_journal(
    file: &Path,
    only: &[String],
    json: bool,
    out: &mut impl Write,
) -> Result<(), String> {
    if !file.exists() {
        return Err(format!("{}: no such journal", file.display()));
    }
    let found = trapgate::journal::read(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let w = |e: io::Error| e.to_string();
    let mut shown = 0;
    for (t, r) in &found.records {
        if !only.is_empty() && !only.iter().any(|n| trapgate::journal::concerns(r, n)) {
            continue;
        }
        shown += 1;
        if json {
            writeln!(out, "{r}").map_err(w)?;
        } else {
            writeln!(out, "{}", trapgate::journal::readable(*t, r)).map_err(w)?;
        }
    }
    for (f, line, why) in &found.damaged {
        eprintln!("trapgate: {}:{line}: skipped: {why}", f.display());
    }
    eprintln!(
        "trapgate: {shown} of {} records shown, {} damaged lines skipped",
        found.records.len(),
        found.damaged.len()
    );
    Ok(())
}

/// Runs the live gateway until a signal stops it. Its records go to stdout through the
/// console's queue (a stdout nobody reads never holds up an order).
fn run_gateway(config: Option<&Path>, opts: trapgate::gateway::Options) -> Result<(), String> {
    use trapgate::source::console;
    let site = load_site(config)?;
    let (upses, recorders) = (site.upses.len(), site.recorders.len());
    let dry_run = opts.dry_run;
    let config: Option<PathBuf> = config.map(Path::to_path_buf);
    let stopped = trapgate::gateway::run(
        site,
        opts,
        |b| {
            let addrs: Vec<String> = b.listen.iter().map(|a| a.to_string()).collect();
            eprintln!(
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
            );
            if let Some(m) = b.metrics {
                eprintln!("trapgate: metrics on http://{m}/metrics");
            }
            if let Some(r) = &b.resumed {
                eprintln!(
                    "trapgate: journal: {} records read, {} damaged lines skipped; {} recorders waiting for an acknowledgement, {} acknowledged, {} orders never sent (sending now)",
                    r.records, r.damaged, r.waiting, r.acknowledged, r.unsent
                );
            }
        },
        |at, v| {
            console::out(report::with_time(at, v).to_string());
        },
        move || match &config {
            Some(path) => load_site(Some(path)),
            None => Err("no --config: the embedded site cannot change".to_string()),
        },
    )
    .map_err(|e| e.to_string())?;
    // What is queued goes out first (a stdout nobody reads holds the summary 2 s at most).
    console::flush(Duration::from_secs(2));
    eprint!("{}", report::summary_text(&stopped.counters, None));
    let live = &stopped.live;
    let kernel = live
        .kernel_drops
        .map_or("unknown".to_string(), |n| n.to_string());
    eprintln!(
        "   not from the site's UPSes or recorders: {}, truncated: {}, dropped by the kernel: {kernel}",
        live.foreign, live.truncated
    );
    let refused: Vec<String> = live
        .refused
        .nonzero()
        .map(|(r, n)| format!("{} {n}", r.name()))
        .collect();
    eprintln!(
        "   refused: {}{}",
        live.refused.total(),
        if refused.is_empty() {
            String::new()
        } else {
            format!(" ({})", refused.join(", "))
        }
    );
    eprintln!(
        "   decisions: {}; orders sent: {} ({} resent); polls sent: {}; virtual UPS answers: {} ({} trimmed, {} too big); journal errors: {}; not shown: {} stdout, {} stderr; stopped by signal {}",
        live.decisions,
        live.orders_sent,
        live.resends,
        live.polls_sent,
        live.agent_answers,
        live.agent_trimmed,
        live.agent_too_big,
        live.journal_errors,
        live.console_dropped.0,
        live.console_dropped.1,
        stopped.signal
    );
    eprint!("{}", stopped.latency.summary_text());
    Ok(())
}
