//! resumebench: what a restart costs on a big journal.
//!
//! Writes a journal of `--size-mib` MiB as the gateway writes it (64 MiB files, each
//! rotated file begun with the station's checkpoint, every file kept while an outage is
//! under way) from a station on a virtual clock: a site of `--upses` UPSes with
//! `--per-ups` recorders each, UPS 0 on battery for the whole run (its recorders never
//! acknowledge: the outage keeps every file), and the others failing one after the
//! other (low battery, every recorder told, each acknowledging, mains back, each back).
//! Then it restarts on it in a child process, as `trapgate run --journal` does
//! (`trapgate::daemon::journal::resume`), and reports the wall time and the child's peak
//! resident memory. `--compare-history` writes the same journal without checkpoints too
//! (a restart then reads the whole history) and restarts on both, side by side.
//!
//! Run: `cargo run --release -p trapgate-tools --bin resumebench -- --size-mib 1024`.
//! Nothing touches the network: the station is sans-IO and its sends go nowhere.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use clap::Parser;
use trapgate::classify::Event;
use trapgate::daemon::journal::{self, Journal};
use trapgate::engine::config::Site;
use trapgate::engine::id::{RecorderId, UpsId};
use trapgate::engine::poller::Sequence;
use trapgate::engine::station::{Happened, Notification, Options, Relays, Station};
use trapgate::engine::trust::Who;
use trapgate::time::Timestamp;

#[derive(Parser)]
#[command(about = "Writes a big journal as the gateway does and times a restart on it")]
struct Args {
    /// The journal's size, all files together.
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
    /// UPSes of the site.
    #[arg(long, default_value_t = 200)]
    upses: usize,
    /// Recorders per UPS.
    #[arg(long, default_value_t = 25)]
    per_ups: usize,
    /// Where the journals go (default: a fresh directory under the temp dir, removed at
    /// the end).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the journals.
    #[arg(long)]
    keep: bool,
    /// Also write the same journal without checkpoints, and restart on both.
    #[arg(long)]
    compare_history: bool,
    /// (internal) Restart on this journal and report, as the child process.
    #[arg(long, hide = true, value_names = ["JOURNAL", "SITE"], num_args = 2)]
    resume: Option<Vec<PathBuf>>,
    /// (internal) The child's restart time, ns since the epoch.
    #[arg(long, hide = true, default_value_t = 0)]
    now: u64,
}

/// A site of `upses` × `per_ups` recorders on loopback addresses (never contacted).
fn site_text(upses: usize, per_ups: usize) -> String {
    let mut t = String::from(
        "[gateway]\nlisten = [\"127.0.0.1:1162\"]\nagent = \"127.0.0.1:1161\"\ncommunity = \"public\"\n\n\
         [policy]\ngrace = { 1 = \"10m\", 2 = \"2m\" }\nshutdown_below_charge = 30\n\
         shutdown_below_runtime = \"5m\"\nconfirm_by_poll = false\n\n",
    );
    for u in 0..upses {
        t.push_str(&format!(
            "[[ups]]\nname = \"ups-{u}\"\naddress = \"127.20.{}.{}\"\nvendor = \"apc\"\npoll_interval = \"10s\"\noutlet_off_delay = \"3m\"\n\n",
            u / 250,
            u % 250 + 1
        ));
    }
    for r in 0..upses * per_ups {
        t.push_str(&format!(
            "[[recorder]]\nname = \"nvr-{r}\"\naddress = \"127.21.{}.{}\"\nups = \"ups-{}\"\ntier = {}\nshutdown_time = \"90s\"\n\n",
            r / 250,
            r % 250 + 1,
            r / per_ups,
            r % 2 + 1
        ));
    }
    t
}

fn relays(site: &Site) -> Relays {
    site.recorders
        .iter()
        .map(|r| ((r.address, r.port).into(), [127, 0, 0, 1]))
        .collect()
}

/// Writes the journal at `path` until its files hold `bytes`; checkpoints at rotation
/// unless `history_only`. Returns the records written and the time of the last.
fn write_journal(site: &Site, path: &Path, bytes: u64, history_only: bool) -> (u64, Timestamp) {
    let t0 = Timestamp(1_800_000_000 * 1_000_000_000);
    let mut station = Station::new(
        site.clone(),
        Options::default(),
        relays(site),
        Box::new(Sequence(1)),
        t0,
    );
    let mut w = Writer {
        j: Journal::open(path).expect("the journal opens"),
        line: Vec::new(),
        records: 0,
        unsynced: 0,
        written: 0,
        history_only,
    };
    let mut at = t0;
    let per_ups = site.recorders.len() / site.upses.len();
    let event = |s: &mut Station, at: Timestamp, who: Who, event: Event, rule: &str| {
        let source = match who {
            Who::Ups(u) => s.site().upses[u].address,
            Who::Recorder(r) => s.site().recorders[r].address,
        };
        let n = Notification {
            who,
            source,
            community: b"public",
            v3: None,
            event,
            rule,
            index: None,
        };
        s.handle_notification(at, &n);
    };
    // UPS 0 on battery for good.
    event(
        &mut station,
        at,
        Who::Ups(UpsId(0)),
        Event::OnBattery,
        "upsOnBattery",
    );
    w.step(&mut station, at);
    let mut k = 0usize;
    while w.written < bytes {
        let u = 1 + k % (site.upses.len() - 1);
        k += 1;
        at = at.plus_secs(1);
        event(
            &mut station,
            at,
            Who::Ups(UpsId::new(u)),
            Event::LowBattery,
            "lowBattery",
        );
        w.step(&mut station, at);
        at = at.plus_secs(2);
        for r in u * per_ups..(u + 1) * per_ups {
            event(
                &mut station,
                at,
                Who::Recorder(RecorderId::new(r)),
                Event::RecorderAck,
                "recorderAck",
            );
        }
        w.step(&mut station, at);
        at = at.plus_secs(30);
        event(
            &mut station,
            at,
            Who::Ups(UpsId::new(u)),
            Event::PowerRestored,
            "upsPowerRestored",
        );
        w.step(&mut station, at);
        at = at.plus_secs(100);
        for r in u * per_ups..(u + 1) * per_ups {
            station.handle_seen(at, RecorderId::new(r));
        }
        w.step(&mut station, at);
    }
    w.j.keep_since(station.keep_since());
    w.j.sync().expect("sync");
    (w.records, station.now())
}

/// The journal being written, and how much.
struct Writer {
    j: Journal,
    line: Vec<u8>,
    records: u64,
    unsynced: u64,
    written: u64,
    history_only: bool,
}

impl Writer {
    /// Runs the station to `to`, journaling its records; commits as the gateway does
    /// (every 20,000 records here: the fsyncs do not change what a restart reads).
    fn step(&mut self, s: &mut Station, to: Timestamp) {
        let (j, line) = (&mut self.j, &mut self.line);
        let (records, unsynced, written) =
            (&mut self.records, &mut self.unsynced, &mut self.written);
        s.run_to(to, &mut |h| {
            if let Happened::Record(t, r) = h {
                j.append(t, &r, line).expect("append");
                *records += 1;
                *unsynced += 1;
                *written += line.len() as u64;
            }
        });
        if self.unsynced >= 20_000 {
            self.unsynced = 0;
            if self.history_only {
                self.j.keep_since(s.keep_since());
                self.j.sync().expect("sync");
            } else {
                self.j.commit(s, &mut self.line).expect("commit");
            }
        }
    }
}

/// The journal's files and their sizes, newest first.
fn files(path: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut n = 0;
    loop {
        let f = if n == 0 {
            path.to_path_buf()
        } else {
            PathBuf::from(format!("{}.{n}", path.display()))
        };
        match std::fs::metadata(&f) {
            Ok(m) => out.push((f, m.len())),
            Err(_) => return out,
        }
        n += 1;
    }
}

/// The child: restarts on the journal and prints what it took.
fn resume_child(journal_path: &Path, site_path: &Path, now: Timestamp) {
    let text = std::fs::read_to_string(site_path).expect("site");
    let started = Instant::now();
    let site = Site::parse(&text).expect("the site parses");
    let r = journal::resume(journal_path, site, Options::default(), &relays, now)
        .expect("the journal resumes");
    let took = started.elapsed();
    // SAFETY: getrusage fills the struct we hand it.
    #[allow(unsafe_code)]
    let rss_kib = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u.ru_maxrss
    };
    println!(
        "{{\"records\":{},\"damaged\":{},\"waiting\":{},\"seconds\":{:.3},\"peak_rss_mib\":{:.1}}}",
        r.records,
        r.damaged,
        r.resumed.waiting,
        took.as_secs_f64(),
        rss_kib as f64 / 1024.0
    );
}

fn measure(me: &Path, journal_path: &Path, site_path: &Path, now: Timestamp) -> serde_json::Value {
    let out = Command::new(me)
        .arg("--resume")
        .arg(journal_path)
        .arg(site_path)
        .arg("--now")
        .arg(now.0.to_string())
        .output()
        .expect("the child runs");
    assert!(
        out.status.success(),
        "the restart failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the child's report")
}

fn main() {
    let args = Args::parse();
    if let Some(p) = &args.resume {
        resume_child(&p[0], &p[1], Timestamp(args.now));
        return;
    }
    let dir = args.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("trapgate-resumebench-{}", std::process::id()))
    });
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("the directory");
    let text = site_text(args.upses, args.per_ups);
    let site_path = dir.join("site.toml");
    std::fs::write(&site_path, &text).expect("the site");
    let site = Site::parse(&text).expect("the generated site parses");
    let me = std::env::current_exe().expect("this binary");
    let bytes = args.size_mib * 1024 * 1024;
    let mut runs = vec![("checkpoints", dir.join("journal"), false)];
    if args.compare_history {
        runs.push(("whole history", dir.join("history"), true));
    }
    println!(
        "site: {} UPS, {} recorders; journal: {} MiB",
        args.upses,
        args.upses * args.per_ups,
        args.size_mib
    );
    for (name, path, history_only) in &runs {
        let started = Instant::now();
        let (records, last) = write_journal(&site, path, bytes, *history_only);
        let fs = files(path);
        let total: u64 = fs.iter().map(|(_, n)| n).sum();
        println!(
            "{name}: wrote {records} records, {} files, {:.0} MiB in all, the newest {:.1} MiB ({:.1} s)",
            fs.len(),
            total as f64 / 1048576.0,
            fs[0].1 as f64 / 1048576.0,
            started.elapsed().as_secs_f64()
        );
        // Read from the disk's cache, as a restart after a crash mostly is; three times.
        for _ in 0..3 {
            let m = measure(&me, path, &site_path, last.plus_secs(1));
            println!(
                "{name}: restart read {} records in {} s, peak resident memory {} MiB ({} recorders waiting)",
                m["records"], m["seconds"], m["peak_rss_mib"], m["waiting"]
            );
        }
    }
    if !args.keep {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        println!("kept in {}", dir.display());
    }
}
