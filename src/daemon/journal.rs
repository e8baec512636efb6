//! The journal: every input that moved the policy, every decision, presented value,
//! sent order and acknowledgement, appended one typed record a line
//! (`crate::engine::record`: `crc32hex {"v":1,"t":…}`), written and fsync'd before a
//! decision is acted on, rotated by size.
//!
//! A restarted gateway reads it back (`resume`), a line at a time, and feeds each record
//! to a fresh station (`Station::restore`): inputs go through the machines again, and
//! what the journal says was decided and done is made to hold even where the input
//! behind it was lost (a damaged line loses only its own fact). A line cut short by a
//! crash (kill -9 mid-write) fails its checksum and is skipped, and the file is cut back
//! to its last whole line. A journal written in another format is refused with a
//! sentence saying so, never misread.
//!
//! Rotation keeps `KEEP` older files, and every older one still needed: a file whose
//! records reach past the start of an outage under way (`keep_since`) is kept until the
//! outage is over, so no burst of records can push the outage's start out of reach of a
//! restart.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Seek, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::engine::config::Site;
use crate::engine::poller::OsRandom;
use crate::engine::record::{self, Action, LineError, Record};
use crate::engine::station::{self, Relays, Station};
use crate::time::Timestamp;

/// Rotate when the journal grows past this (bytes).
pub const ROTATE_AT: u64 = 64 * 1024 * 1024;
/// Rotated files kept beside the journal (`FILE.1` is the newest), beyond those an
/// outage under way still needs.
pub const KEEP: usize = 4;

/// An open journal, appending.
pub struct Journal {
    path: PathBuf,
    file: BufWriter<File>,
    size: u64,
    rotate_at: u64,
    /// The time of the last record appended.
    last: Timestamp,
    /// The last record's time in each rotated file: `FILE.1` first.
    rotated_last: Vec<Option<Timestamp>>,
    /// Records from this time on are needed by a restart (an outage under way).
    keep_since: Option<Timestamp>,
    /// Records written since the journal was opened.
    pub written: u64,
}

impl core::fmt::Debug for Journal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Journal")
            .field("path", &self.path)
            .field("size", &self.size)
            .finish()
    }
}

/// What reading a journal found besides its records.
#[derive(Debug, Default)]
pub struct Read {
    /// Records read.
    pub records: usize,
    /// Lines whose checksum or JSON was wrong: (file, line number, why).
    pub damaged: Vec<(PathBuf, usize, String)>,
}

fn rotated(path: &Path, n: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// The rotated files of the journal at `path` that exist, `FILE.1` first.
fn rotated_files(path: &Path) -> Vec<PathBuf> {
    (1..)
        .map(|n| rotated(path, n))
        .take_while(|p| p.exists())
        .collect()
}

/// A journal is a regular file (or none yet): a device or a directory is a mistake.
fn check_regular(path: &Path) -> io::Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        )),
        _ => Ok(()),
    }
}

/// Reads every record of the journal at `path` and its rotated files, oldest first, a
/// line at a time, handing each to `each`. A journal that does not exist reads as
/// empty; one written in another format is an error that says so.
pub fn read(path: &Path, mut each: impl FnMut(Timestamp, Record)) -> io::Result<Read> {
    check_regular(path)?;
    let mut out = Read::default();
    let files: Vec<PathBuf> = rotated_files(path)
        .into_iter()
        .rev()
        .chain(core::iter::once(path.to_path_buf()))
        .collect();
    for file in files {
        let f = match File::open(&file) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let mut reader = BufReader::with_capacity(1 << 20, f);
        let mut line = Vec::with_capacity(512);
        let mut n = 0;
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            n += 1;
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            match record::read_line(&line) {
                Ok((t, r)) => {
                    out.records += 1;
                    each(t, r);
                }
                Err(e @ LineError::Version(_)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "{}:{n}: {e}: move it aside (or read it with the trapgate that wrote it)",
                            file.display()
                        ),
                    ));
                }
                Err(LineError::Damaged(why)) => out.damaged.push((file.clone(), n, why)),
            }
        }
    }
    Ok(out)
}

/// The time of the last whole record of a journal file (None: none can be read).
fn last_time(path: &Path) -> Option<Timestamp> {
    let mut f = File::open(path).ok()?;
    let size = f.metadata().ok()?.len();
    let from = size.saturating_sub(64 * 1024);
    f.seek(io::SeekFrom::Start(from)).ok()?;
    let mut tail = Vec::new();
    io::Read::read_to_end(&mut f, &mut tail).ok()?;
    tail.split(|&b| b == b'\n')
        .rev()
        .find_map(|line| record::read_line(line).ok())
        .map(|(t, _)| t)
}

impl Journal {
    /// Opens the journal at `path` for appending (creating it), after cutting a torn
    /// last line off. Read it with `read` first to resume.
    pub fn open(path: &Path) -> io::Result<Journal> {
        check_regular(path)?;
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)?;
        let mut size = file.metadata()?.len();
        // A torn last line (no newline at the end): cut back to the last whole line, or
        // a new record would glue onto it. Only then is the whole file read.
        let mut last = [b'\n'];
        if size > 0 {
            file.read_exact_at(&mut last, size - 1)?;
        }
        if last[0] != b'\n' {
            let mut bytes = Vec::new();
            io::Read::read_to_end(&mut file, &mut bytes)?;
            let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1) as u64;
            if whole < size {
                file.set_len(whole)?;
                file.seek(io::SeekFrom::End(0))?;
                size = whole;
            }
        }
        Ok(Journal {
            path: path.to_path_buf(),
            file: BufWriter::with_capacity(256 * 1024, file),
            size,
            rotate_at: ROTATE_AT,
            last: last_time(path).unwrap_or_default(),
            rotated_last: rotated_files(path).iter().map(|p| last_time(p)).collect(),
            keep_since: None,
            written: 0,
        })
    }

    /// From `since` on, records are needed by a restart (the start of the oldest outage
    /// under way; None: none is): rotation keeps every file that holds them.
    pub fn keep_since(&mut self, since: Option<Timestamp>) {
        self.keep_since = since;
    }

    /// The files rotation has kept beside the journal.
    pub fn rotated(&self) -> usize {
        self.rotated_last.len()
    }

    /// Rotates at `bytes` instead of `ROTATE_AT` (tests).
    pub fn rotate_at(&mut self, bytes: u64) {
        self.rotate_at = bytes;
    }

    /// Appends `record` at `t` (`line`: the caller's buffer, reused).
    pub fn append(&mut self, t: Timestamp, r: &Record, line: &mut Vec<u8>) -> io::Result<()> {
        record::write_line(t, r, line);
        self.file.write_all(line)?;
        self.last = self.last.max(t);
        self.size += line.len() as u64;
        self.written += 1;
        Ok(())
    }

    /// Hands what is buffered to the kernel (it then outlives a kill -9 of the
    /// process, not a power cut: that is what [`Journal::sync`] is for).
    pub fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }

    /// Writes what is buffered and fsyncs it; rotates if the file has grown past its size.
    pub fn sync(&mut self) -> io::Result<()> {
        self.file.flush()?;
        self.file.get_ref().sync_data()?;
        if self.size >= self.rotate_at {
            self.rotate()?;
        }
        Ok(())
    }

    /// FILE → FILE.1 → FILE.2 …; then the oldest files beyond `KEEP` go, unless their
    /// records reach past `keep_since`.
    fn rotate(&mut self) -> io::Result<()> {
        for n in (1..=self.rotated_last.len()).rev() {
            std::fs::rename(rotated(&self.path, n), rotated(&self.path, n + 1))?;
        }
        std::fs::rename(&self.path, rotated(&self.path, 1))?;
        self.rotated_last.insert(0, Some(self.last));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.file = BufWriter::with_capacity(256 * 1024, file);
        self.size = 0;
        // Files are in time order: once one is needed, every newer one is too.
        while self.rotated_last.len() > KEEP {
            let oldest = self.rotated_last.len();
            let needed = match (self.rotated_last[oldest - 1], self.keep_since) {
                (Some(last), Some(since)) => last >= since,
                _ => false,
            };
            if needed {
                break;
            }
            std::fs::remove_file(rotated(&self.path, oldest))?;
            self.rotated_last.pop();
        }
        Ok(())
    }
}

/// What `resume` gives back: the station with the journal's outage in it, the journal
/// open for appending, and what reading it found.
pub struct Resume {
    /// The station.
    pub station: Station,
    /// The journal.
    pub journal: Journal,
    /// Records read.
    pub records: usize,
    /// Damaged lines skipped.
    pub damaged: usize,
    /// What the station resumed.
    pub resumed: station::Resumed,
}

/// Opens the journal at `path` and feeds its records to a station for `site` (orders to
/// `relays`): the outage in progress comes back, the orders decided and never sent go
/// out, once, and nothing else the journal holds is done again. Its first record is the
/// `Started` the caller journals next.
pub fn resume(
    path: &Path,
    site: Site,
    options: station::Options,
    relays: Relays,
    now: Timestamp,
) -> io::Result<Resume> {
    let mut station: Option<Station> = None;
    let mut site = Some(site);
    let mut relays = Some(relays);
    let mut make = |t: Timestamp| {
        Station::new(
            site.take().expect("made once"),
            options,
            relays.take().expect("made once"),
            Box::new(OsRandom),
            t,
        )
    };
    let read = read(path, |t, r| {
        let s = station.get_or_insert_with(|| make(t));
        s.restore(t, &r);
    })?;
    let mut station = station.unwrap_or_else(|| make(now));
    let resumed = station.resumed(now);
    for (file, line, why) in &read.damaged {
        crate::daemon::console::warn(format!(
            "trapgate: journal {}:{line}: skipped: {why}",
            file.display()
        ));
    }
    let journal = Journal::open(path)?;
    let r = Resume {
        station,
        journal,
        records: read.records,
        damaged: read.damaged.len(),
        resumed,
    };
    let detail = format!(
        "journal: {} records read ({} damaged lines skipped), {} recorders waiting for their acknowledgement, {} acknowledged, {} orders never sent",
        r.records, r.damaged, resumed.waiting, resumed.acknowledged, resumed.unsent
    );
    let mut r = r;
    r.station
        .note(now, Record::Action(Action::Started { detail }));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Event;
    use crate::engine::record::{Decided, Input};

    fn dir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("trapgate-journal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn alert(reason: &str) -> Record {
        Record::Decision(Decided::Alert {
            ups: None,
            kind: "site".into(),
            reason: reason.into(),
        })
    }

    fn event(event: Event) -> Record {
        Record::Input(Input::Event {
            source: "127.0.0.1".parse().unwrap(),
            ups: Some("ups-main".into()),
            recorder: None,
            community: "public".into(),
            event,
            rule: "lowBattery".into(),
        })
    }

    fn sent(recorder: &str) -> Record {
        Record::Action(Action::Sent {
            recorder: recorder.into(),
            attempt: 1,
            to: None,
            detail: "command started".into(),
        })
    }

    fn all(path: &Path) -> (Vec<(Timestamp, Record)>, Read) {
        let mut records = Vec::new();
        let r = read(path, |t, x| records.push((t, x))).unwrap();
        (records, r)
    }

    #[test]
    fn records_come_back_in_order_and_a_torn_last_line_is_dropped_and_cut() {
        let d = dir("torn");
        let path = d.join("journal");
        let mut line = Vec::new();
        let mut j = Journal::open(&path).unwrap();
        j.append(Timestamp(1), &alert("a \"quoted\" reason"), &mut line)
            .unwrap();
        j.append(Timestamp(2), &event(Event::LowBattery), &mut line)
            .unwrap();
        j.sync().unwrap();
        drop(j);
        // A crash in the middle of the third line.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"1234abcd {\"v\":1,\"t\":3,\"decis").unwrap();
        drop(f);
        let (records, r) = all(&path);
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].1, alert("a \"quoted\" reason"));
        assert_eq!(records[1], (Timestamp(2), event(Event::LowBattery)));
        assert_eq!(r.damaged.len(), 1, "{:?}", r.damaged);
        // Reopening cuts the torn line, and new records read back whole.
        let mut j = Journal::open(&path).unwrap();
        j.append(Timestamp(4), &sent("nvr-1"), &mut line).unwrap();
        j.sync().unwrap();
        let (records, r) = all(&path);
        assert_eq!(records.len(), 3);
        assert!(r.damaged.is_empty(), "{:?}", r.damaged);
        assert_eq!(records[2].0, Timestamp(4));
    }

    #[test]
    fn a_flipped_byte_fails_the_checksum_and_another_format_is_refused() {
        let d = dir("flip");
        let path = d.join("journal");
        let mut line = Vec::new();
        let mut j = Journal::open(&path).unwrap();
        for t in 0..3 {
            j.append(Timestamp(t), &alert("x"), &mut line).unwrap();
        }
        j.sync().unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let second = bytes.iter().position(|&b| b == b'\n').unwrap() + 20;
        bytes[second] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        let (records, r) = all(&path);
        assert_eq!(records.len(), 2);
        assert_eq!(r.damaged[0].1, 2);
        // A line of the journal format before this one: refused, with a sentence.
        let old = "{\"t\":7,\"decision\":\"Acknowledged\",\"recorder\":\"nvr-1\"}";
        let old = format!("{:08x} {old}\n", crc32fast::hash(old.as_bytes()));
        std::fs::write(&path, old).unwrap();
        let e = read(&path, |_, _| {}).unwrap_err();
        assert!(
            e.to_string().contains("written without a format version"),
            "{e}"
        );
    }

    #[test]
    fn rotation_keeps_every_file_an_outage_under_way_needs() {
        let d = dir("keep");
        let path = d.join("journal");
        let mut line = Vec::new();
        let mut j = Journal::open(&path).unwrap();
        j.rotate_at(300);
        // The outage starts at t = 5 (its OnBattery), then a burst of records.
        j.keep_since(Some(Timestamp(5)));
        for t in 0..60 {
            let what = if t == 5 {
                event(Event::OnBattery)
            } else {
                event(Event::Informational)
            };
            j.append(Timestamp(t), &what, &mut line).unwrap();
            j.sync().unwrap();
        }
        assert!(j.rotated() > KEEP, "{} files kept", j.rotated());
        let (records, _) = all(&path);
        assert!(
            records
                .iter()
                .any(|(t, r)| t.0 == 5 && *r == event(Event::OnBattery)),
            "the outage's start survives the burst"
        );
        // The outage is over: the next rotation lets the old files go.
        j.keep_since(None);
        for t in 60..70 {
            j.append(Timestamp(t), &event(Event::Informational), &mut line)
                .unwrap();
            j.sync().unwrap();
        }
        assert_eq!(j.rotated(), KEEP);
        assert_eq!(rotated_files(&path).len(), KEEP);
        // A reopened journal knows its rotated files and their times.
        drop(j);
        let j = Journal::open(&path).unwrap();
        assert_eq!(j.rotated(), KEEP);
        // A journal must be a regular file.
        assert!(Journal::open(Path::new("/dev/null")).is_err());
        assert!(read(Path::new("/dev/full"), |_, _| {}).is_err());
    }

    #[test]
    fn rotation_keeps_every_record_readable() {
        let d = dir("rotate");
        let path = d.join("journal");
        let mut line = Vec::new();
        let mut j = Journal::open(&path).unwrap();
        j.rotate_at(400);
        for t in 0..20 {
            j.append(Timestamp(t), &sent(&format!("nvr-{t}")), &mut line)
                .unwrap();
            j.sync().unwrap();
        }
        assert!(rotated(&path, 1).exists() && rotated(&path, 2).exists());
        let (records, _) = all(&path);
        let times: Vec<u64> = records.iter().map(|(t, _)| t.0).collect();
        // The oldest files beyond KEEP are gone; what is kept is in order.
        assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
        assert_eq!(times.last(), Some(&19));
    }
}
