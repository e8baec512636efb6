//! The `trapgate` command line: parse arguments, pick a source, run the pipeline.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use trapgate::cli::commands::{
    check_config, decode, events, print_journal, replay_policy, run_gateway,
};

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
        /// A site file: its SNMPv3 users decrypt v3 messages (as Wireshark's SNMP users
        /// table does) and its rules classify.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Check a site file and print every mistake with its line and column (without a
    /// file: the embedded default site, the seed's).
    CheckConfig {
        /// The site file (site.toml).
        file: Option<PathBuf>,
        /// Also read every UPS card and PDU of the site (GET and GETNEXT only, never a
        /// SET) and hold its settings against the file: shutoff and low-battery delays,
        /// outlet groups' off delays, the card's trap receivers. Exits 1 on any
        /// disagreement or a card that does not answer.
        #[arg(long, requires = "file")]
        probe: bool,
    },
    /// Run the gateway: hear UPS traps and decide, until SIGINT or SIGTERM. Decisions are
    /// printed as JSON lines; a summary goes to stderr at the end.
    #[command(
        after_help = "A site file is required: the gateway polls its UPSes and tells its recorders at once. Start from the embedded seed site (src/engine/config/default-site.toml, or the README's example) and check it with `trapgate check-config FILE`."
    )]
    Run {
        /// The site file (required; `trapgate check-config FILE` checks it).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Listen here instead of the site's [gateway] listen addresses. Repeatable.
        #[arg(long = "listen", value_name = "ADDR:PORT")]
        listen: Vec<std::net::SocketAddr>,
        /// Serve the status page at http://ADDR:PORT/, its data at /status.json and the
        /// metrics (Prometheus text format) at /metrics; instead of [gateway] http.
        /// `--metrics` is its old name.
        #[arg(long = "http", alias = "metrics", value_name = "ADDR:PORT")]
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
        /// the site's [gateway] workers; 0 there means one per core but one).
        #[arg(long, value_name = "N")]
        workers: Option<usize>,
    },
    /// Print a journal readably, optionally only what concerns one UPS or recorder.
    Journal {
        /// The journal file (its rotated files FILE.1 … are read too). Two or more (a
        /// pair's two gateways'): one story, merged by time, each line labelled with its
        /// file, a record one shipped to the other shown once.
        #[arg(required = true, num_args = 1..)]
        files: Vec<PathBuf>,
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
        /// The whole site on SNMPv3 at authPriv (SHA, AES-128): the UPS's traps and
        /// polls, the recorders' polls, orders and acknowledgements.
        #[arg(long)]
        v3: bool,
    },
    /// Replay a capture through the whole gateway on its own clock and print what it
    /// decides and does (the records `run` prints) as JSON lines; nothing is sent.
    Replay {
        /// The capture file (pcap or pcapng).
        file: PathBuf,
        /// The site (default: the embedded seed site).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Compare with this golden decision log; print the differences and exit 1.
        #[arg(long)]
        expect: Option<PathBuf>,
        /// Instead of deciding, send the capture's notifications (traps, informs) to this
        /// address (loopback or a test namespace) at the capture's pace.
        #[arg(long, value_name = "ADDR:PORT")]
        send: Option<std::net::SocketAddr>,
        /// With --send: pace multiplier (2 = twice as fast; 0 = as fast as possible).
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// With --send: send what came from CAPTURED from LOCAL, an address of this
        /// machine (e.g. 192.168.61.250=127.0.0.250: a gateway believes a UPS's trap only
        /// from its address). Repeatable.
        #[arg(long = "source", value_name = "CAPTURED=LOCAL", value_parser = trapgate::daemon::send::parse_source)]
        sources: Vec<(std::net::IpAddr, std::net::IpAddr)>,
        /// With --send: send what no --source maps from this local address.
        #[arg(long, value_name = "IP")]
        from: Option<std::net::IpAddr>,
        /// Also take UDP on this port as SNMP (161 and 162 always are). Repeatable.
        #[arg(long = "port", value_name = "PORT")]
        ports: Vec<u16>,
        /// Restart the gateway this many seconds after the capture's first frame, as a
        /// crash and `run --journal` would: a fresh gateway reads the journal so far,
        /// resumes, and takes the rest of the capture.
        #[arg(long, value_name = "SECONDS", conflicts_with = "send")]
        restart_at: Option<u32>,
        /// Print what each of the site's [[notify]] targets would have been told (its
        /// syslog message, XProtect line, webhook JSON or MQTT event), one JSON line
        /// each, instead of the decision log; nothing is sent.
        #[arg(long, conflicts_with_all = ["send", "expect"])]
        notify_dry: bool,
    },
    /// Print the running gateway's status (its /status.json) as tables: every UPS and
    /// every recorder, for an engineer on SSH.
    Status {
        /// Where the gateway's HTTP endpoint is ([gateway] http or run --http).
        #[arg(
            long = "http",
            value_name = "ADDR:PORT",
            default_value = "127.0.0.1:9162"
        )]
        http: std::net::SocketAddr,
    },
    /// Write the manual pages: trapgate(1), a page per subcommand and
    /// trapgate-site.toml(5), every key of the site file with its default.
    Man {
        /// The directory to write them to.
        #[arg(long, value_name = "DIR", default_value = ".")]
        dir: PathBuf,
    },
    /// Print a shell completion script (bash: save it as
    /// /usr/share/bash-completion/completions/trapgate).
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the classified UPS events of a capture as JSON lines.
    Events {
        /// The capture file (pcap or pcapng).
        file: PathBuf,
        /// Also take UDP on this port as SNMP (161 and 162 always are). Repeatable.
        #[arg(long = "port", value_name = "PORT")]
        ports: Vec<u16>,
        /// A site file: its SNMPv3 users decrypt v3 messages and its rules classify.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

/// Standard output that notes when its reader has gone (EPIPE, by its error kind).
struct Reader<W> {
    out: W,
    closed: std::rc::Rc<std::cell::Cell<bool>>,
}

impl<W: Write> Reader<W> {
    fn noted<T>(&self, r: io::Result<T>) -> io::Result<T> {
        if let Err(e) = &r
            && e.kind() == io::ErrorKind::BrokenPipe
        {
            self.closed.set(true);
        }
        r
    }
}

impl<W: Write> Write for Reader<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let r = self.out.write(buf);
        self.noted(r)
    }

    fn flush(&mut self) -> io::Result<()> {
        let r = self.out.flush();
        self.noted(r)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A gateway asks for huge pages: it starts again, as this process, with glibc's
    // malloc asking for them (see `daemon::hugepages`), before anything else is done.
    if matches!(cli.command, Command::Run { .. })
        && let Some(e) = trapgate::daemon::hugepages::start_again_on_huge_pages()
    {
        eprintln!("trapgate: could not start again on huge pages ({e}): running on small pages");
    }
    // `run` writes stdout from the console's own thread: it must not be locked here.
    let locked = !matches!(cli.command, Command::Run { .. });
    let stdout = io::stdout();
    let pipe_closed = std::rc::Rc::new(std::cell::Cell::new(false));
    let mut out: Box<dyn Write> = if locked {
        Box::new(BufWriter::new(Reader {
            out: stdout.lock(),
            closed: std::rc::Rc::clone(&pipe_closed),
        }))
    } else {
        Box::new(io::sink())
    };
    let result = match cli.command {
        Command::Decode {
            file,
            json,
            ports,
            config,
        } => decode(&file, json, &ports, config.as_deref(), &mut out),
        Command::Events {
            file,
            ports,
            config,
        } => events(&file, &ports, config.as_deref(), &mut out),
        Command::Run {
            config,
            listen,
            metrics,
            agent,
            journal,
            dry_run,
            workers,
        } => {
            let opts = trapgate::daemon::Options {
                listen,
                agent,
                metrics,
                journal,
                dry_run,
                speed: 1.0,
                workers,
                time: None,
                shutdown: None,
            };
            run_gateway(&config, opts)
        }
        Command::Journal { files, only, json } => print_journal(&files, &only, json, &mut out),
        Command::Demo {
            recorders,
            speed,
            v3,
        } => trapgate::cli::demo::run(recorders, speed, v3, &mut out),
        Command::Replay {
            file,
            send: Some(to),
            speed,
            sources,
            from,
            ports,
            ..
        } => {
            let opts = trapgate::daemon::send::SendOptions {
                speed,
                ports,
                sources,
                from,
            };
            trapgate::daemon::send::send_capture(&file, to, &opts).and_then(|sent| {
                writeln!(
                    out,
                    "sent {} SNMP notifications from {} to {to} ({} other frames skipped)",
                    sent.datagrams,
                    file.display(),
                    sent.skipped
                )
                .map_err(|e| e.to_string())
            })
        }
        Command::Replay {
            file,
            config,
            ports,
            restart_at,
            notify_dry: true,
            ..
        } => trapgate::cli::commands::replay_notify(
            &file,
            config.as_deref(),
            &ports,
            restart_at,
            &mut out,
        ),
        Command::Replay {
            file,
            config,
            expect,
            ports,
            restart_at,
            ..
        } => match replay_policy(
            &file,
            config.as_deref(),
            expect.as_deref(),
            &ports,
            restart_at,
            &mut out,
        ) {
            Ok(true) => Ok(()),
            Ok(false) => {
                let _ = out.flush();
                return ExitCode::from(1);
            }
            Err(e) => Err(e),
        },
        Command::Status { http } => trapgate::cli::commands::status(http, &mut out),
        Command::Man { dir } => {
            use clap::CommandFactory;
            trapgate::cli::manual::write_pages(Cli::command(), &dir)
                .map_err(|e| format!("cannot write the manual pages to {}: {e}", dir.display()))
                .and_then(|pages| {
                    pages.iter().try_for_each(|p| {
                        writeln!(out, "{}", p.display()).map_err(|e| e.to_string())
                    })
                })
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let script = trapgate::cli::manual::completions(&mut Cli::command(), shell);
            out.write_all(&script).map_err(|e| e.to_string())
        }
        Command::CheckConfig { file, probe } => match check_config(file.as_deref(), &mut out)
            .and_then(|ok| match (ok, probe, file.as_deref()) {
                (true, true, Some(f)) => trapgate::cli::commands::probe_cards(f, &mut out),
                _ => Ok(ok),
            }) {
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
    trapgate::daemon::console::flush(Duration::from_secs(1));
    match result.and(flushed.map_err(|e| e.to_string())) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went (`trapgate decode … | head`): not an error of trapgate's.
        Err(_) if pipe_closed.get() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("trapgate: {e}");
            ExitCode::from(2)
        }
    }
}
