//! The journal: every input that moved the policy, every decision, presented value,
//! sent order and acknowledgement, appended one typed record a line
//! (`crate::engine::record`: `crc32hex {"v":4,"t":…}`), written and fsync'd before a
//! decision is acted on, rotated by size.
//!
//! A restarted gateway reads it back (`resume`), a line at a time, and feeds each record
//! to a fresh station (`Station::restore`): inputs go through the machines again, and
//! what the journal says was decided and done is made to hold even where the input
//! behind it was lost (a damaged line loses only its own fact). A line cut short by a
//! crash (kill -9 mid-write) fails its checksum and is skipped, and the file is cut back
//! to its last whole line. A journal written in another format is refused with a
//! sentence saying so, never misread; a stray line of another format amid this one's is
//! skipped with an alert.
//!
//! Rotation keeps `KEEP` older files, and every older one still needed: a file whose
//! records reach past the start of an outage under way (`keep_since`) is kept until the
//! outage is over, so no burst of records can push the outage's start out of reach of a
//! restart.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Seek, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::daemon::random::OsRandom;
use crate::engine::config::Site;
use crate::engine::record::{self, Action, Decided, LineError, Record};
use crate::engine::station::{self, Relays, Station};
use crate::time::Timestamp;

/// Rotate when the journal grows past this (bytes).
pub const ROTATE_AT: u64 = 64 * 1024 * 1024;
/// Rotated files kept beside the journal (`FILE.1` is the newest), beyond those an
/// outage under way still needs.
pub const KEEP: usize = 4;
/// The journal's file is written ahead of its records, this much at a time, with
/// newlines (blank lines, which a reader skips): a record is then written over bytes
/// the file already has, and its fsync flushes that data alone, no size or extent to
/// update in the filesystem's own journal (`fdatasync`'s cheap case).
pub const PREPARE: u64 = 4 * 1024 * 1024;
/// How much of a file `open` reads at a time, backwards, to find where its records end.
const TAIL: u64 = 64 * 1024;
/// A new stretch is prepared once less than this is left.
const PREPARE_BELOW: u64 = 1024 * 1024;

/// An open journal, appending.
pub struct Journal {
    path: PathBuf,
    file: BufWriter<File>,
    /// Where the records end (the next one is written there).
    size: u64,
    /// How far the file is prepared (its length: blank lines after `size`).
    prepared: u64,
    rotate_at: u64,
    /// The time of the last record appended.
    last: Timestamp,
    /// The last record's time in each rotated file: `FILE.1` first.
    rotated_last: Vec<Option<Timestamp>>,
    /// Records from this time on are needed by a restart (an outage under way).
    keep_since: Option<Timestamp>,
    /// Records written since the journal was opened.
    pub written: u64,
    /// Its syncs before acting: how long each took.
    pub syncs: crate::engine::metrics::Syncs,
    /// Where the records ended at the last sync.
    synced: u64,
    /// Why the file could not be prepared ahead, until `prepare_ahead` says it once:
    /// it is not tried again until the next file.
    unprepared: Option<io::Error>,
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
    /// Lines of another journal format amid this one's (a copy's, an editor's, a
    /// downgrade's): (file, line number, what it says), skipped.
    pub other_format: Vec<(PathBuf, usize, String)>,
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
pub fn read(path: &Path, each: impl FnMut(Timestamp, Record)) -> io::Result<Read> {
    check_regular(path)?;
    let files: Vec<PathBuf> = rotated_files(path)
        .into_iter()
        .rev()
        .chain(core::iter::once(path.to_path_buf()))
        .collect();
    read_files(&files, each)
}

/// Reads `files` in turn, a line at a time, handing each record to `each`; a damaged
/// line is counted and skipped. A journal that begins in another format (no record of
/// this one before it) ends the reading with an error that says so; a line of another
/// format after records of this one is a stray, skipped and named (`other_format`).
fn read_files(files: &[PathBuf], mut each: impl FnMut(Timestamp, Record)) -> io::Result<Read> {
    let mut out = Read::default();
    for file in files {
        let f = match File::open(file) {
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
            // A blank line: the file prepared ahead of its records (`PREPARE`).
            if line.is_empty() {
                continue;
            }
            match record::read_line(&line) {
                // A tier's line: each recorder's shutdown, as the station decided it.
                Ok((t, Record::Decision(d @ Decided::ShutdownTier { .. }))) => {
                    for d in d.expanded() {
                        out.records += 1;
                        each(t, Record::Decision(d));
                    }
                }
                // A batch's line: each recorder's trap sent, in the order they left.
                Ok((t, Record::Action(a @ Action::SentBatch { .. }))) => {
                    for a in a.expanded() {
                        out.records += 1;
                        each(t, Record::Action(a));
                    }
                }
                Ok((t, r)) => {
                    out.records += 1;
                    each(t, r);
                }
                Err(e @ LineError::Version(_)) if out.records > 0 => {
                    out.other_format.push((file.clone(), n, e.to_string()));
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

/// Where the records of a file of `len` bytes end: after its last byte that is not the
/// newline the file was prepared with (read backwards, 64 KiB at a time).
fn records_end(file: &File, len: u64) -> io::Result<u64> {
    let mut block = vec![0u8; 64 * 1024];
    let mut end = len;
    while end > 0 {
        let from = end.saturating_sub(block.len() as u64);
        let chunk = &mut block[..(end - from) as usize];
        file.read_exact_at(chunk, from)?;
        if let Some(i) = chunk.iter().rposition(|&b| b != b'\n') {
            // The record's own newline, if it has one, belongs to it.
            let last = from + i as u64 + 1;
            return Ok((last + 1).min(len));
        }
        end = from;
    }
    Ok(0)
}

/// Where the last line of the first `end` bytes of `file` begins: after the newline
/// before its own (read backwards, 64 KiB at a time: a checkpoint's line may be long).
fn last_line_start(file: &File, end: u64) -> io::Result<u64> {
    let mut block = vec![0u8; TAIL as usize];
    // Its own newline, if it has one, is not the one before it.
    let mut to = end.saturating_sub(1);
    while to > 0 {
        let from = to.saturating_sub(TAIL);
        let chunk = &mut block[..(to - from) as usize];
        file.read_exact_at(chunk, from)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(from + i as u64 + 1);
        }
        to = from;
    }
    Ok(0)
}

/// Prepares `file` from `from` to `to` with newlines and makes that durable (its
/// length and extents, once, so that the records written over them later need not).
fn prepare(file: &File, from: u64, to: u64) -> io::Result<()> {
    let block = vec![b'\n'; 256 * 1024];
    let mut at = from;
    while at < to {
        let n = (to - at).min(block.len() as u64) as usize;
        file.write_all_at(&block[..n], at)?;
        at += n as u64;
    }
    file.sync_all()
}

/// The time of the last whole record of a journal file (None: none of its last 64
/// lines can be read). Its lines are read whole from the end, however long: a
/// fan-out's line names thousands of recorders.
fn last_time(path: &Path) -> Option<Timestamp> {
    let f = File::open(path).ok()?;
    let mut end = records_end(&f, f.metadata().ok()?.len()).ok()?;
    for _ in 0..64 {
        if end == 0 {
            return None;
        }
        let start = last_line_start(&f, end).ok()?;
        let mut line = vec![0u8; (end - start) as usize];
        f.read_exact_at(&mut line, start).ok()?;
        if let Ok((t, _)) = record::read_line(line.trim_ascii_end()) {
            return Some(t);
        }
        end = start;
    }
    None
}

impl Journal {
    /// Opens the journal at `path` for appending (creating it), after cutting a torn
    /// last line off. Read it with `read` first to resume.
    pub fn open(path: &Path) -> io::Result<Journal> {
        check_regular(path)?;
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(path)?;
        let len = file.metadata()?.len();
        let mut size = records_end(&file, len)?;
        // A torn last line: cut back to the last whole line, or a new record would glue
        // onto it; its bytes become blank again. Torn is a last line without its
        // newline, or, in a prepared file (where the blank rest follows whatever was
        // written), one that does not read: its checksum fails.
        let start = last_line_start(&file, size)?;
        let mut line = vec![0u8; (size - start) as usize];
        file.read_exact_at(&mut line, start)?;
        let body = line.strip_suffix(b"\n").unwrap_or(&line);
        let torn = !line.is_empty()
            && (!line.ends_with(b"\n")
                || (size < len && matches!(record::read_line(body), Err(LineError::Damaged(_)))));
        if torn {
            file.write_all_at(&vec![b'\n'; (size - start) as usize], start)?;
            file.sync_data()?;
            size = start;
        }
        // Prepared ahead if it can be (a full disk or a file-size limit: the records
        // are appended as they come, as an unprepared file takes them).
        let mut prepared = len.max(size);
        let mut unprepared = None;
        if prepared < size + PREPARE_BELOW {
            match prepare(&file, prepared, size + PREPARE) {
                Ok(()) => prepared = size + PREPARE,
                Err(e) => unprepared = Some(e),
            }
        }
        file.seek(io::SeekFrom::Start(size))?;
        Ok(Journal {
            path: path.to_path_buf(),
            file: BufWriter::with_capacity(256 * 1024, file),
            size,
            prepared,
            rotate_at: ROTATE_AT,
            last: last_time(path).unwrap_or_default(),
            rotated_last: rotated_files(path).iter().map(|p| last_time(p)).collect(),
            keep_since: None,
            written: 0,
            syncs: Default::default(),
            synced: size,
            unprepared,
        })
    }

    /// Prepares the next stretch of the file (`PREPARE`) once less than
    /// `PREPARE_BELOW` is left: called when the gateway has nothing to send, so that
    /// the writes and the fsync of the metadata are off a decision's path. A record
    /// written past the prepared end is still written (the file grows as it would
    /// without).
    pub fn prepare_ahead(&mut self) -> io::Result<()> {
        if self.prepared == u64::MAX {
            return Ok(());
        }
        if let Some(e) = self.unprepared.take() {
            self.prepared = u64::MAX;
            return Err(e);
        }
        if self.prepared >= self.size + PREPARE_BELOW {
            return Ok(());
        }
        self.file.flush()?;
        let to = self.size + PREPARE;
        if let Err(e) = prepare(self.file.get_ref(), self.prepared.max(self.size), to) {
            // Not tried again on this file: its records are appended as they come.
            self.prepared = u64::MAX;
            return Err(e);
        }
        self.prepared = to;
        Ok(())
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
        self.write_line(t, line)
    }

    /// Hands what is buffered to the kernel (it then outlives a kill -9 of the
    /// process, not a power cut: that is what [`Journal::sync`] is for).
    pub fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }

    /// Writes what is buffered and fsyncs it; rotates if the file has grown past its
    /// size. True if it rotated: the new file's first record must be a checkpoint
    /// (`Station::snapshot`), so that a restart reads from there.
    pub fn sync(&mut self) -> io::Result<bool> {
        self.write_and_sync()?;
        if self.size >= self.rotate_at {
            self.rotate()?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Makes what was appended durable, as the gateway does before it acts: keeps every
    /// file the station's outages still need, fsyncs, and, when that rotated the file,
    /// begins the new one with the station's checkpoint (`line`: the caller's buffer).
    pub fn commit(&mut self, station: &Station, line: &mut Vec<u8>) -> io::Result<()> {
        self.keep_since(station.keep_since());
        self.write_and_sync()?;
        self.roll(station, line)
    }

    /// Writes what is buffered and `fdatasync`s it, timed (`syncs`).
    fn write_and_sync(&mut self) -> io::Result<()> {
        let started = std::time::Instant::now();
        self.file.flush()?;
        self.file.get_ref().sync_data()?;
        let bytes = self.size.saturating_sub(self.synced);
        self.synced = self.size;
        self.syncs
            .record(bytes, started.elapsed().as_nanos() as u64);
        Ok(())
    }

    /// Once what was appended is durable: a file grown past its size rotates, and the
    /// new one begins with the station's checkpoint, made durable too (and never rotated
    /// away however big: a file's first record is its checkpoint).
    fn roll(&mut self, station: &Station, line: &mut Vec<u8>) -> io::Result<()> {
        if self.size < self.rotate_at {
            return Ok(());
        }
        self.rotate()?;
        self.append(station.now(), &station.snapshot(), line)?;
        self.file.flush()?;
        self.file.get_ref().sync_data()
    }

    /// Appends each of `records`; one whose append failed is marked not journaled (its
    /// flag in `journaled`, side by side). The first error, if any.
    /// The shutdowns of one UPS's tier decided at once (consecutive `ShutdownRecorder`s
    /// of one time and reason) are one `ShutdownTier` line (format 3); the traps sent at
    /// once (consecutive `Sent`s with an address, of one time, sending and kind) one
    /// `SentBatch` line (format 4).
    pub fn append_all(
        &mut self,
        records: &[(Timestamp, Record)],
        journaled: &mut [bool],
        line: &mut Vec<u8>,
    ) -> io::Result<()> {
        let mut first = Ok(());
        let mut i = 0;
        while i < records.len() {
            // The run of shutdowns, or of traps sent, that one line holds, from `i`.
            let t = records[i].0;
            let alike = |same: &dyn Fn(&Record) -> bool| {
                records[i..]
                    .iter()
                    .take_while(|(at, r)| *at == t && same(r))
                    .count()
            };
            let run = match &records[i].1 {
                Record::Decision(d @ Decided::ShutdownRecorder { .. }) => {
                    alike(&|r| matches!(r, Record::Decision(o) if d.same_tier(o)))
                }
                Record::Action(a @ Action::Sent { to: Some(_), .. }) => {
                    alike(&|r| matches!(r, Record::Action(o) if a.same_send(o)))
                }
                _ => 1,
            }
            .max(1);
            let appended = if run > 1 {
                let run = &records[i..i + run];
                match &records[i].1 {
                    Record::Decision(_) => record::write_tier_line(t, run, line),
                    _ => record::write_sent_line(t, run, line),
                }
                self.write_line(t, line)
            } else {
                self.append(t, &records[i].1, line)
            };
            if let Err(e) = appended {
                for j in journaled.iter_mut().skip(i).take(run) {
                    *j = false;
                }
                if first.is_ok() {
                    first = Err(e);
                }
            }
            i += run;
        }
        first
    }

    /// Appends a line already written (`record::write_line`) of a record at `t`.
    fn write_line(&mut self, t: Timestamp, line: &[u8]) -> io::Result<()> {
        self.file.write_all(line)?;
        self.last = self.last.max(t);
        self.size += line.len() as u64;
        self.written += 1;
        Ok(())
    }

    /// FILE → FILE.1 → FILE.2 …; then the oldest files beyond `KEEP` go, unless their
    /// records reach past `keep_since`.
    fn rotate(&mut self) -> io::Result<()> {
        // The file kept holds its records alone: its prepared rest goes.
        self.file.flush()?;
        self.file.get_ref().set_len(self.size)?;
        for n in (1..=self.rotated_last.len()).rev() {
            std::fs::rename(rotated(&self.path, n), rotated(&self.path, n + 1))?;
        }
        std::fs::rename(&self.path, rotated(&self.path, 1))?;
        self.rotated_last.insert(0, Some(self.last));
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&self.path)?;
        self.prepared = match prepare(&file, 0, PREPARE) {
            Ok(()) => PREPARE,
            Err(e) => {
                self.unprepared = Some(e);
                0
            }
        };
        self.file = BufWriter::with_capacity(256 * 1024, file);
        self.size = 0;
        self.synced = 0;
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

/// The first record of a journal file, if it can be read.
fn first_record(file: &Path) -> Option<Record> {
    let mut line = Vec::new();
    BufReader::new(File::open(file).ok()?)
        .read_until(b'\n', &mut line)
        .ok()?;
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    record::read_line(&line).ok().map(|(_, r)| r)
}

/// The files of the journal at `path` a restart reads, oldest first: from the newest
/// one that begins with a checkpoint (every one since a rotation does), or all of them.
fn files_from_checkpoint(path: &Path) -> Vec<PathBuf> {
    let newest_first: Vec<PathBuf> = core::iter::once(path.to_path_buf())
        .chain(rotated_files(path))
        .collect();
    let start = newest_first
        .iter()
        .position(|f| matches!(first_record(f), Some(Record::Snapshot(_))))
        .unwrap_or(newest_first.len().saturating_sub(1));
    newest_first[..=start.min(newest_first.len() - 1)]
        .iter()
        .rev()
        .cloned()
        .collect()
}

/// Opens the journal at `path` and feeds its records, from its newest checkpoint on, to
/// a station: the outage in progress comes back, the orders decided and not journaled as sent go
/// out, once, and nothing else the journal holds is done again.
///
/// The station decides with the site the journal's records were made with (its text is
/// in every checkpoint, start and reload): a journaled decision is never re-derived
/// from a changed site file. The `site` given, the file as it is now, is then taken as a
/// reload, by SIGHUP's rules: refused, and the journal's site kept with an alert, if it
/// would drop an outage under way. `relays` gives any site's recorders their relays.
/// The `Started` record the caller journals first says what was read.
pub fn resume(
    path: &Path,
    site: Site,
    options: station::Options,
    relays: &dyn Fn(&Site) -> Relays,
    now: Timestamp,
) -> io::Result<Resume> {
    check_regular(path)?;
    let files = files_from_checkpoint(path);
    let mut station: Option<Station> = None;
    let make = |site: Site, t: Timestamp| -> Station {
        let r = relays(&site);
        Station::new(site, options, r, Box::new(OsRandom), t)
    };
    // The site of now where the journal's is the same text (its passphrases, which the
    // journal does not keep, are the file's); another one read as the journal has it.
    let parse = |text: &str| {
        if *text == *site.text {
            Some(site.clone())
        } else {
            Site::parse_with(text, &crate::daemon::secrets::read).ok()
        }
    };
    let out = read_files(&files, |t, r| {
        // The site of the records that follow: a checkpoint's, a start's, a reload's.
        let (site_text, snapshot) = match &r {
            Record::Snapshot(record::Snapshot::Station { site, state }) => {
                (Some(site.as_str()), Some(state))
            }
            Record::Action(Action::Started { site, .. } | Action::Reloaded { site, .. }) => {
                (site.as_deref(), None)
            }
            _ => (None, None),
        };
        let changed =
            site_text.filter(|text| station.as_ref().is_none_or(|s| *s.site().text != **text));
        match (changed.and_then(parse), station.as_mut()) {
            (Some(new), None) => station = Some(make(new, t)),
            (Some(new), Some(s)) => {
                let p = station::Prepared::new(
                    new.clone(),
                    std::sync::Arc::clone(s.site()),
                    relays(&new),
                    Box::new(OsRandom),
                );
                drop(s.restore_reload(t, p));
            }
            (None, _) => {}
        }
        // Records older than any site the journal names: the site of now.
        let s = station.get_or_insert_with(|| make(site.clone(), t));
        match snapshot {
            Some(state) => s.restore_snapshot(state),
            None => s.restore(t, &r),
        }
    })?;
    let mut station = station.unwrap_or_else(|| make(site.clone(), now));
    // From now on: the timers that fell due while the gateway was down fire now, not at
    // times it did not live (the driver's first `handle_timeout`); the orders not
    // journaled as sent go out once, under the site that decided them.
    let resumed = station.resumed(now);
    for (file, line, why) in &out.damaged {
        crate::daemon::console::warn(format!(
            "trapgate: journal {}:{line}: skipped: {why}",
            file.display()
        ));
    }
    // A stray line of another format: skipped, and said where an operator looks (its
    // record, if it was a decision, is lost to the restart).
    for (file, line, what) in &out.other_format {
        let reason = format!(
            "journal {}:{line}: {what}; the line was skipped (the rest is this format)",
            file.display()
        );
        crate::daemon::console::warn(format!("trapgate: {reason}"));
        station.note(
            now,
            Record::Decision(record::Decided::Alert {
                ups: None,
                recorder: None,
                outlet: None,
                kind: crate::engine::record::AlertKind::JournalLineSkipped,
                reason,
            }),
        );
    }
    let journal = Journal::open(path)?;
    let detail = format!(
        "journal: {} records read ({} damaged lines skipped), {} recorders waiting for their acknowledgement, {} acknowledged, {} orders not journaled as sent",
        out.records,
        out.damaged.len(),
        resumed.waiting,
        resumed.acknowledged,
        resumed.unsent
    );
    let text = station.site().text.to_string();
    station.note(
        now,
        Record::Action(Action::Started {
            detail,
            site: (!text.is_empty()).then_some(text),
        }),
    );
    // The site file as it is now: a reload right after the start, by SIGHUP's rules.
    if *station.site().text != *site.text && !site.text.is_empty() {
        let p = station::Prepared::new(
            site.clone(),
            std::sync::Arc::clone(station.site()),
            relays(&site),
            Box::new(OsRandom),
        );
        match station.offer_site(now, p) {
            Err(why) => {
                crate::daemon::console::warn(format!(
                    "trapgate: the site file changed since the journal was written, and {why}: running the journal's site"
                ));
            }
            Ok(replaced) => drop(replaced),
        }
    }
    Ok(Resume {
        station,
        journal,
        records: out.records,
        damaged: out.damaged.len(),
        resumed,
    })
}

/// What the journal's thread is handed, and hands back: the journal itself, the records
/// (those from `from` on to append), the line buffer, and how the appends and the sync
/// went.
struct Job {
    journal: Journal,
    records: Vec<(Timestamp, Record)>,
    journaled: Vec<bool>,
    from: usize,
    line: Vec<u8>,
    appended: io::Result<()>,
    synced: io::Result<()>,
}

impl Job {
    /// Appends the records from `from` on and makes them durable.
    fn work(&mut self) {
        let from = self.from.min(self.records.len()).min(self.journaled.len());
        self.appended = self.journal.append_all(
            &self.records[from..],
            &mut self.journaled[from..],
            &mut self.line,
        );
        self.synced = self.journal.write_and_sync();
    }
}

/// A thread kept for the journal: a fan-out's decisions are appended and fsync'd there
/// while the decision thread encodes their orders. Made at start, so that an outage does
/// not wait for a thread to be created (here, after 300 ms of quiet, a median of 171 µs
/// for a spawn and its join, against 28 µs to hand a job to a thread that is there and
/// have it back).
pub struct Hand {
    jobs: Option<crossbeam_channel::Sender<Job>>,
    done: crossbeam_channel::Receiver<Job>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Hand {
    /// The journal's thread, started.
    pub fn start() -> io::Result<Hand> {
        let (jobs, take) = crossbeam_channel::bounded::<Job>(1);
        let (give, done) = crossbeam_channel::bounded::<Job>(1);
        let thread = std::thread::Builder::new()
            .name("trapgate-journal".into())
            .spawn(move || {
                while let Ok(mut job) = take.recv() {
                    // The journal comes back whatever happens to the work.
                    let worked =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.work()));
                    if worked.is_err() {
                        let e = || io::Error::other("the journal's thread panicked");
                        (job.appended, job.synced) = (Err(e()), Err(e()));
                    }
                    if give.send(job).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Hand {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
        })
    }

    /// Appends `records[from..]` to `journal` and makes them durable (`Journal::commit`)
    /// (marking in `journaled`, side by side with them, those it could not append),
    /// on the journal's thread while this one does `work` (encoding the orders the
    /// records decided): both are over before this returns, so nothing leaves before the
    /// decisions are durable, and a fan-out to thousands of recorders does not wait for
    /// its journal lines, its fsync and then its encoding. `work` runs whatever the
    /// journal's fate (orders go out even when it cannot be written). Gives back the
    /// appends' result, the write's and fsync's, and `work`'s. Without a journal, only
    /// `work`.
    pub fn commit_while<T>(
        &self,
        journal: &mut Option<Journal>,
        (records, journaled): (&mut Vec<(Timestamp, Record)>, &mut Vec<bool>),
        from: usize,
        station: &mut Station,
        line: &mut Vec<u8>,
        work: impl FnOnce(&mut Station) -> T,
    ) -> (io::Result<()>, io::Result<()>, T) {
        let Some(mut j) = journal.take() else {
            return (Ok(()), Ok(()), work(station));
        };
        j.keep_since(station.keep_since());
        let job = Job {
            journal: j,
            records: std::mem::take(records),
            journaled: std::mem::take(journaled),
            from,
            line: std::mem::take(line),
            appended: Ok(()),
            synced: Ok(()),
        };
        let handed = match &self.jobs {
            Some(jobs) => jobs.send(job).map_err(|e| e.into_inner()),
            None => Err(job),
        };
        let (out, mut job) = match handed {
            Ok(()) => {
                let out = work(station);
                match self.done.recv() {
                    Ok(job) => (out, job),
                    // Never: the thread sends every job back, even one whose work panicked.
                    Err(_) => {
                        let e = io::Error::other("the journal's thread is gone with the journal");
                        return (Err(e), Err(io::Error::other("no journal")), out);
                    }
                }
            }
            // The thread is gone: the journal's work is done here, then `work`.
            Err(mut job) => {
                job.work();
                (work(station), job)
            }
        };
        let synced = std::mem::replace(&mut job.synced, Ok(()))
            .and_then(|()| job.journal.roll(station, &mut job.line));
        *records = job.records;
        *journaled = job.journaled;
        *line = job.line;
        *journal = Some(job.journal);
        (job.appended, synced, out)
    }
}

impl Drop for Hand {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl core::fmt::Debug for Hand {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Hand").finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Event;
    use crate::engine::record::Input;

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
            recorder: None,
            outlet: None,
            kind: crate::engine::record::AlertKind::Site,
            reason: reason.into(),
        })
    }

    fn event(event: Event) -> Record {
        Record::Input(Input::Event {
            source: "127.0.0.1".parse().unwrap(),
            ups: Some("ups-main".into()),
            recorder: None,
            community: "public".into(),
            security_level: None,
            event,
            rule: "lowBattery".into(),
            index: None,
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
    fn records_are_written_over_the_prepared_file_and_a_restart_finds_their_end() {
        let d = dir("prepared");
        let path = d.join("journal");
        let mut line = Vec::new();
        let mut j = Journal::open(&path).unwrap();
        // Prepared ahead: the file's length is there before any record.
        assert_eq!(std::fs::metadata(&path).unwrap().len(), PREPARE);
        for t in 1..=3 {
            j.append(Timestamp(t), &alert("a"), &mut line).unwrap();
        }
        j.sync().unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            PREPARE,
            "not grown"
        );
        drop(j);
        // A crash in the middle of the fourth record: its bytes, then the blank rest.
        let end = {
            let f = File::open(&path).unwrap();
            records_end(&f, PREPARE).unwrap()
        };
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(b"1234abcd {\"v\":1,\"t\":4,\"decis", end)
            .unwrap();
        drop(f);
        let (records, r) = all(&path);
        assert_eq!(records.len(), 3);
        assert_eq!(r.damaged.len(), 1, "the torn record: {:?}", r.damaged);
        // The restart writes where the records end, over the torn bytes.
        let mut j = Journal::open(&path).unwrap();
        j.append(Timestamp(5), &sent("nvr-1"), &mut line).unwrap();
        j.sync().unwrap();
        drop(j);
        let (records, r) = all(&path);
        assert_eq!(records.len(), 4);
        assert_eq!(records[3], (Timestamp(5), sent("nvr-1")));
        assert!(r.damaged.is_empty(), "{:?}", r.damaged);
        // Near the prepared end, the next stretch is prepared (when the gateway is
        // idle); a record past it is written all the same.
        let mut j = Journal::open(&path).unwrap();
        let big = alert(&"x".repeat(200_000));
        let mut t = 10;
        while std::fs::metadata(&path).unwrap().len() == PREPARE {
            j.append(Timestamp(t), &big, &mut line).unwrap();
            j.sync().unwrap();
            j.prepare_ahead().unwrap();
            t += 1;
            assert!(t < 40, "prepared again before the end");
        }
        let len = std::fs::metadata(&path).unwrap().len();
        assert!(len > PREPARE + PREPARE_BELOW, "{len}");
        drop(j);
        let (records, r) = all(&path);
        assert_eq!(records.len(), 4 + (t - 10) as usize);
        assert!(r.damaged.is_empty());
        // A last record longer than what `open` reads at a time (a checkpoint's can be)
        // is whole, and a restart keeps it.
        drop(Journal::open(&path).unwrap());
        let (again, _) = all(&path);
        assert_eq!(again.len(), records.len(), "the long last record kept");
    }

    #[test]
    fn a_journal_written_without_preparing_is_continued() {
        // As the releases before wrote it: appended, its length its records'.
        let d = dir("unprepared");
        let path = d.join("journal");
        let mut bytes = Vec::new();
        for t in 1..=2 {
            record::write_line(Timestamp(t), &alert("old"), &mut bytes);
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .unwrap()
                .write_all(&bytes)
                .unwrap();
        }
        let mut line = Vec::new();
        let mut j = Journal::open(&path).unwrap();
        j.append(Timestamp(3), &alert("new"), &mut line).unwrap();
        j.sync().unwrap();
        drop(j);
        let (records, r) = all(&path);
        let reasons: Vec<Timestamp> = records.iter().map(|(t, _)| *t).collect();
        assert_eq!(reasons, [Timestamp(1), Timestamp(2), Timestamp(3)]);
        assert!(r.damaged.is_empty());
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
        // A stray line of another format amid this one's: skipped and named, the rest
        // read.
        let mut j = Journal::open(&d.join("mixed")).unwrap();
        for t in 0..2 {
            j.append(Timestamp(t), &alert("x"), &mut line).unwrap();
        }
        j.sync().unwrap();
        drop(j);
        let newer = "{\"v\":5,\"t\":7,\"decision\":\"Acknowledged\",\"recorder\":\"nvr-1\"}";
        let mut bytes = std::fs::read(d.join("mixed")).unwrap();
        // Written by hand after the records (an editor keeps no prepared blank lines).
        let end = bytes.iter().rposition(|&b| b != b'\n').unwrap() + 2;
        bytes.truncate(end);
        bytes.extend_from_slice(
            format!("{:08x} {newer}\n", crc32fast::hash(newer.as_bytes())).as_bytes(),
        );
        std::fs::write(d.join("mixed"), &bytes).unwrap();
        let mut j = Journal::open(&d.join("mixed")).unwrap();
        j.append(Timestamp(9), &alert("y"), &mut line).unwrap();
        j.sync().unwrap();
        let (records, r) = all(&d.join("mixed"));
        assert_eq!(records.len(), 3);
        assert_eq!(r.other_format.len(), 1, "{:?}", r.other_format);
        assert_eq!(r.other_format[0].1, 3);
        assert!(
            r.other_format[0].2.contains("journal format 5"),
            "{:?}",
            r.other_format
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

#[cfg(test)]
mod restart {
    use super::*;
    use crate::classify::Event;
    use crate::engine::config::DEFAULT_SITE;
    use crate::engine::id::UpsId;
    use crate::engine::record::Decided;
    use crate::engine::station::{Happened, Notification, Purpose};
    use crate::engine::trust::Who;
    use std::net::SocketAddr;

    /// An empty directory of the test's own.
    fn fresh_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("trapgate-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn t(s: u64) -> Timestamp {
        Timestamp(crate::time::ns::secs(1_000 + s as u32))
    }

    fn site(grace2: &str) -> Site {
        let text = DEFAULT_SITE
            .replace("confirm_by_poll = true", "confirm_by_poll = false")
            .replace("2 = \"2m\"", &format!("2 = \"{grace2}\""));
        Site::parse(&text).unwrap()
    }

    fn relays(site: &Site) -> Relays {
        site.recorders
            .iter()
            .map(|r| (SocketAddr::new(r.address, r.port), [10, 0, 0, 1]))
            .collect()
    }

    /// Drives `s` to `to` as the daemon would, journaling into `j`: the orders it sends.
    fn drive(s: &mut Station, j: &mut Journal, to: Timestamp) -> Vec<(Timestamp, String, u32)> {
        let mut line = Vec::new();
        let mut orders = Vec::new();
        // Journaled as the daemon journals them (`append_all`: a tier's shutdowns one line).
        let mut records = Vec::new();
        let names: Vec<String> = s.site().recorders.iter().map(|r| r.name.clone()).collect();
        s.run_to(to, &mut |h| match h {
            Happened::Record(at, r) => records.push((at, r)),
            Happened::Sent { at, transmit, .. } => {
                if let Purpose::Order { recorder, attempt } = transmit.purpose {
                    orders.push((at, names[recorder].clone(), attempt));
                }
            }
            Happened::Command { .. } => {}
        });
        j.append_all(&records, &mut vec![true; records.len()], &mut line)
            .unwrap();
        j.sync().unwrap();
        orders
    }

    fn on_battery(s: &mut Station, at: Timestamp) {
        let n = Notification {
            who: Who::Ups(UpsId(0)),
            source: "192.168.61.250".parse().unwrap(),
            community: b"public",
            v3: None,
            event: Event::OnBattery,
            rule: "upsOnBattery",
            index: None,
        };
        s.handle_notification(at, &n);
    }

    /// The live run of the format tests on `site`, journaled at `path`: on battery at
    /// 10 s, tier 2 told at 130 s, dead at 140 s. Its records as read back.
    fn live_run(path: &Path, site: &Site) -> Vec<(Timestamp, Record)> {
        let r = resume(path, site.clone(), Default::default(), &relays, t(0)).unwrap();
        let (mut s, mut j) = (r.station, r.journal);
        drive(&mut s, &mut j, t(10));
        on_battery(&mut s, t(10));
        let told = drive(&mut s, &mut j, t(140));
        assert!(told.iter().any(|(_, r, _)| r == "nvr-244"), "{told:?}");
        drop((s, j));
        let mut records = Vec::new();
        read(path, |t, r| records.push((t, r))).unwrap();
        records
    }

    /// Each of `paths` resumed at 150 s on `site` (nothing damaged, nvr-244 presented
    /// 0 %) and driven to 400 s: the same orders after each.
    fn resume_alike(paths: &[&Path], site: &Site) {
        let mut after = Vec::new();
        for path in paths {
            let r = resume(path, site.clone(), Default::default(), &relays, t(150)).unwrap();
            assert_eq!(r.damaged, 0, "{}", path.display());
            let (mut s, mut j) = (r.station, r.journal);
            let nvr_244 = crate::engine::id::RecorderId(0);
            assert_eq!(s.site().recorders[nvr_244].name, "nvr-244");
            assert_eq!(s.presented_charge(nvr_244), Some(0), "{}", path.display());
            after.push(drive(&mut s, &mut j, t(400)));
        }
        assert!(
            after.windows(2).all(|w| w[0] == w[1]),
            "the same orders after each: {after:?}"
        );
    }

    /// A journal of format 1 (the releases before: a `PresentCharge` after every
    /// `ShutdownRecorder`) resumes as the same journal in this format does: nothing
    /// damaged, the told recorder presented 0 %, the same orders after.
    #[test]
    fn a_journal_of_format_1_resumes_as_this_format_does() {
        let d = fresh_dir("format1");
        let (now, then) = (d.join("journal-now"), d.join("journal-1"));
        let records = live_run(&now, &site("2m"));
        // The same records as format 1 wrote them.
        let mut old = Vec::new();
        for (t, r) in records {
            if let Record::Decision(Decided::ShutdownRecorder { recorder, .. }) = &r {
                let present = Record::Decision(Decided::PresentCharge {
                    recorder: recorder.clone(),
                    percent: crate::engine::record::Percent::Value(0),
                });
                old.push((t, r));
                old.push((t, present));
            } else {
                old.push((t, r));
            }
        }
        assert!(
            old.iter()
                .any(|(_, r)| matches!(r, Record::Decision(Decided::PresentCharge { .. })))
        );
        std::fs::write(&then, written_in_format(&old, 1)).unwrap();
        resume_alike(&[&now, &then], &site("2m"));
        let _ = std::fs::remove_dir_all(&d);
    }

    /// The journal of `records` as a trapgate of format `v` wrote it: a line each.
    fn written_in_format(records: &[(Timestamp, Record)], v: u32) -> Vec<u8> {
        let (mut out, mut line) = (Vec::new(), Vec::new());
        for (t, r) in records {
            record::write_line(*t, r, &mut line);
            let text = std::str::from_utf8(&line).unwrap();
            let json = text[9..].trim_end().replacen(
                &format!("{{\"v\":{},", record::FORMAT),
                &format!("{{\"v\":{v},"),
                1,
            );
            out.extend_from_slice(
                format!("{:08x} {json}\n", crc32fast::hash(json.as_bytes())).as_bytes(),
            );
        }
        out
    }

    /// A tier's shutdowns decided at once are one line; read back, each recorder's own
    /// record, in order, with everything around them.
    #[test]
    fn a_tiers_shutdowns_are_one_line_and_read_back_as_each() {
        let d = fresh_dir("tier");
        let path = d.join("journal");
        let shutdown = |i: usize, tier: u8| {
            Record::Decision(Decided::ShutdownRecorder {
                ups: "ups-main".into(),
                recorder: format!("nvr-{i}").into(),
                tier,
                deadline: Timestamp(99),
                reason: "lowBattery".into(),
                event: "LowBattery".into(),
                rule: "lowBattery".into(),
            })
        };
        let alert = Record::site_alert;
        let mut records: Vec<(Timestamp, Record)> = Vec::new();
        records.push((Timestamp(1), alert("before")));
        records.extend((0..1000).map(|i| (Timestamp(2), shutdown(i, 1))));
        records.extend((1000..1500).map(|i| (Timestamp(2), shutdown(i, 2))));
        records.push((Timestamp(2), shutdown(1500, 1)));
        records.push((Timestamp(3), alert("after")));
        let text = appended_and_read_back(&path, &records);
        let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        // alert, tier 1's thousand, tier 2's five hundred, one more of tier 1, alert.
        assert_eq!(lines.len(), 5, "{}", lines.len());
        assert!(lines[1].contains("\"decision\":\"ShutdownTier\""));
        assert!(lines[1].contains("\"nvr-999\"") && !lines[1].contains("\"nvr-1000\""));
        let _ = std::fs::remove_dir_all(&d);
    }

    /// Appends `records` to a new journal at `path` (`append_all`), syncs it, asserts
    /// that it reads back as them, whole and in order; returns the file's text.
    fn appended_and_read_back(path: &Path, records: &[(Timestamp, Record)]) -> String {
        let mut line = Vec::new();
        let mut j = Journal::open(path).unwrap();
        j.append_all(records, &mut vec![true; records.len()], &mut line)
            .unwrap();
        j.sync().unwrap();
        drop(j);
        let mut back = Vec::new();
        let r = read(path, |t, r| back.push((t, r))).unwrap();
        assert_eq!(r.damaged.len(), 0);
        assert_eq!(back, records, "each recorder's record, in order");
        std::fs::read_to_string(path).unwrap()
    }

    /// The traps sent at once, of one sending and one kind, are one line; read back,
    /// each recorder's own record, in order, with everything around them. A journal
    /// whose last line is longer than the 64 KiB read back at a time still gives its
    /// last record's time when it is opened again.
    #[test]
    fn a_batchs_sends_are_one_line_and_read_back_as_each() {
        let d = fresh_dir("batch");
        let path = d.join("journal");
        let sent = |i: usize, attempt: u32, to: bool| {
            Record::Action(Action::Sent {
                recorder: format!("nvr-{i}-with-a-longer-name").into(),
                attempt,
                to: to.then(|| SocketAddr::from(([192, 0, 2, (i % 250) as u8 + 1], 162))),
                detail: "APC lowBattery v1 trap".into(),
            })
        };
        let alert = Record::site_alert;
        let mut records: Vec<(Timestamp, Record)> = Vec::new();
        records.push((Timestamp(1), alert("before")));
        records.extend((0..1000).map(|i| (Timestamp(2), sent(i, 1, true))));
        records.extend((1000..1500).map(|i| (Timestamp(2), sent(i, 2, true))));
        records.push((Timestamp(2), sent(1500, 2, false)));
        records.push((Timestamp(2), sent(1501, 2, false)));
        records.extend((1502..1504).map(|i| (Timestamp(3), sent(i, 2, true))));
        records.push((Timestamp(4), alert("after")));
        records.extend((0..3000).map(|i| (Timestamp(5), sent(i, 1, true))));
        let text = appended_and_read_back(&path, &records);
        let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        // alert, the first sending's thousand, the second's five hundred, two commands
        // (no address: a line each), two sent a moment later, alert, three thousand.
        assert_eq!(lines.len(), 8, "{}", lines.len());
        assert!(lines[1].contains("\"action\":\"SentBatch\""));
        assert!(lines[1].contains("\"nvr-999-") && !lines[1].contains("\"nvr-1000-"));
        assert!(lines[3].contains("\"action\":\"Sent\""));
        assert!(lines[7].len() > 64 * 1024, "{}", lines[7].len());
        let j = Journal::open(&path).unwrap();
        assert_eq!(j.last, Timestamp(5), "the last line's time, read whole");
        let _ = std::fs::remove_dir_all(&d);
    }

    /// A journal of format 2 (a line each recorder's shutdown) or of format 3 (a line
    /// each trap sent) resumes as the same journal in format 4 does, where tier 2's two
    /// shutdowns, decided at once, are one line, and so are its two orders, sent at once.
    #[test]
    fn journals_of_formats_2_and_3_resume_as_format_4_does() {
        let d = fresh_dir("format2");
        let now = d.join("journal-4");
        // A second recorder in tier 2: its shutdown and nvr-244's are decided at once.
        let text = format!(
            "{}\n[[recorder]]\nname = \"nvr-245\"\naddress = \"192.168.61.245\"\nups = \"ups-main\"\ntier = 2\nshutdown_time = \"90s\"\n",
            DEFAULT_SITE.replace("confirm_by_poll = true", "confirm_by_poll = false")
        );
        let site = Site::parse(&text).unwrap();
        let records = live_run(&now, &site);
        let written = std::fs::read_to_string(&now).unwrap();
        assert_eq!(
            written.matches("\"decision\":\"ShutdownTier\"").count(),
            1,
            "tier 2's two shutdowns are one line"
        );
        assert!(
            written.contains("\"action\":\"SentBatch\""),
            "tier 2's two orders are one line"
        );
        let (two, three) = (d.join("journal-2"), d.join("journal-3"));
        std::fs::write(&two, written_in_format(&records, 2)).unwrap();
        std::fs::write(&three, written_in_format(&records, 3)).unwrap();
        // Each resumed once: a resume goes on writing into the journal it read.
        resume_alike(&[&now, &two, &three], &site);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_site_changed_between_runs_is_a_reload_and_backdates_nothing() {
        let d = fresh_dir("restart");
        let path = d.join("journal");
        // The live run: tier 2's grace 2 min; on battery at 10 s; it dies at 40 s.
        let before = site("2m");
        let r = resume(&path, before.clone(), Default::default(), &relays, t(0)).unwrap();
        let (mut s, mut j) = (r.station, r.journal);
        drive(&mut s, &mut j, t(10));
        on_battery(&mut s, t(10));
        assert!(drive(&mut s, &mut j, t(40)).is_empty());
        drop((s, j));
        // Restarted at 60 s with tier 2's grace edited to 30 s.
        let after = site("30s");
        let r = resume(&path, after, Default::default(), &relays, t(60)).unwrap();
        let (mut s, mut j) = (r.station, r.journal);
        let orders = drive(&mut s, &mut j, t(400));
        // The outage keeps the times it was decided with: tier 2 at 130 s (10 s + 2 min),
        // once; not at 40 s (10 s + 30 s, back-dated), nor twice at the restart.
        let nvr_244: Vec<(u64, u32)> = orders
            .iter()
            .filter(|(_, r, _)| r == "nvr-244")
            .map(|(at, _, a)| (at.ns_since(t(0)) / 1_000_000_000, *a))
            .collect();
        assert_eq!(nvr_244[0], (130, 1), "{orders:?}");
        assert_eq!(nvr_244.iter().filter(|(_, a)| *a == 1).count(), 1);
        let mut times: Vec<u64> = nvr_244.iter().map(|(s, _)| *s).collect();
        times.dedup();
        assert_eq!(
            times.len(),
            nvr_244.len(),
            "two orders at one instant: {nvr_244:?}"
        );
        // The reload is journaled, with the new site's text.
        let mut reloads = 0;
        read(&path, |_, r| {
            if let Record::Action(Action::Reloaded {
                site: Some(text), ..
            }) = r
            {
                assert!(text.contains("2 = \"30s\""));
                reloads += 1;
            }
        })
        .unwrap();
        assert_eq!(reloads, 1);
    }

    #[test]
    fn a_timer_due_while_the_gateway_was_down_fires_at_the_restart_not_back_dated() {
        let d = fresh_dir("down");
        let path = d.join("journal");
        let r = resume(&path, site("2m"), Default::default(), &relays, t(0)).unwrap();
        let (mut s, mut j) = (r.station, r.journal);
        on_battery(&mut s, t(10));
        assert!(drive(&mut s, &mut j, t(40)).is_empty());
        drop((s, j));
        let mut live = 0;
        read(&path, |_, _| live += 1).unwrap();
        // Down from 40 s to 500 s: tier 2's grace ended at 130 s, while it was down.
        let r = resume(&path, site("2m"), Default::default(), &relays, t(500)).unwrap();
        let (mut s, mut j) = (r.station, r.journal);
        let orders = drive(&mut s, &mut j, t(505));
        assert_eq!(
            orders
                .iter()
                .map(|(at, r, a)| (at.ns_since(t(0)) / 1_000_000_000, r.as_str(), *a))
                .collect::<Vec<_>>(),
            [(500, "nvr-244", 1)],
            "told at the restart, once"
        );
        let mut all = Vec::new();
        read(&path, |at, r| all.push((at, r))).unwrap();
        let restarted = live;
        for (at, r) in &all[restarted..] {
            assert!(
                *at >= t(500),
                "journaled at {} s, while the gateway was down: {r:?}",
                at.ns_since(t(0)) / 1_000_000_000
            );
        }
        // The polls start afresh: one per UPS, not one for every interval it was down.
        let polls = all[restarted..]
            .iter()
            .filter(|(_, r)| {
                matches!(
                    r,
                    Record::Input(crate::engine::record::Input::PollUnanswered { .. })
                )
            })
            .count();
        assert!(
            polls <= 1,
            "{polls} unanswered polls journaled at the restart"
        );
    }

    #[test]
    fn a_restart_reads_from_the_newest_checkpoint() {
        let d = fresh_dir("checkpoint");
        let path = d.join("journal");
        let r = resume(&path, site("2m"), Default::default(), &relays, t(0)).unwrap();
        let (mut s, mut j) = (r.station, r.journal);
        on_battery(&mut s, t(10));
        let told = drive(&mut s, &mut j, t(200));
        assert_eq!(
            told.iter()
                .filter(|(_, r, a)| r == "nvr-244" && *a == 1)
                .count(),
            1
        );
        // Rotation: the new file begins with the station's checkpoint, and the older
        // file goes away (lost, say): the outage is not lost with it.
        let mut line = Vec::new();
        j.rotate().unwrap();
        j.append(s.now(), &s.snapshot(), &mut line).unwrap();
        j.sync().unwrap();
        drop((s, j));
        std::fs::remove_file(rotated(&path, 1)).unwrap();
        let r = resume(&path, site("2m"), Default::default(), &relays, t(210)).unwrap();
        assert_eq!(r.records, 1, "only the checkpoint is read");
        let (mut s, mut j) = (r.station, r.journal);
        let after = drive(&mut s, &mut j, t(2000));
        // nvr-244 was told at 130 s: not again; nvr-251 at its tier's 10 min.
        assert!(
            after.iter().all(|(_, r, a)| r != "nvr-244" || *a > 1),
            "{after:?}"
        );
        assert!(
            after.iter().any(|(at, r, a)| r == "nvr-251"
                && *a == 1
                && at.ns_since(t(0)) / 1_000_000_000 == 610),
            "{after:?}"
        );
        let mut decided = Vec::new();
        read(&path, |_, r| {
            if let Record::Decision(Decided::ShutdownRecorder { recorder, .. }) = r {
                decided.push(recorder.to_string());
            }
        })
        .unwrap();
        assert_eq!(decided, ["nvr-251"], "decided once, after the restart");
    }

    /// Without the journal's thread (one the system would not make, or gone), a commit's
    /// records are written and synced on the caller's before its work runs.
    #[test]
    fn without_the_journals_thread_the_records_are_made_durable_before_the_work() {
        let d = fresh_dir("commit-inline");
        let path = d.join("journal");
        let r = resume(&path, site("2m"), Default::default(), &relays, t(0)).unwrap();
        let (mut s, mut j) = (r.station, Some(r.journal));
        // A thread that could not be made (or is gone).
        let hand = Hand {
            jobs: None,
            done: crossbeam_channel::never(),
            thread: None,
        };
        let mut records = vec![(
            t(10),
            Record::Decision(Decided::PowerBack {
                ups: "ups-x".into(),
            }),
        )];
        let mut journaled = vec![true];
        let mut line = Vec::new();
        let (appended, written, synced_before) = hand.commit_while(
            &mut j,
            (&mut records, &mut journaled),
            0,
            &mut s,
            &mut line,
            |_| {
                // The work sees the journal's sync done already.
                std::fs::read_to_string(&path)
                    .unwrap()
                    .contains("PowerBack")
            },
        );
        appended.unwrap();
        written.unwrap();
        assert!(
            synced_before,
            "the decision was written before the work ran"
        );
        assert!(j.is_some() && records.len() == 1 && journaled == [true]);
        let _ = std::fs::remove_dir_all(&d);
    }

    /// Many records committed while the orders are encoded: every one read back, in
    /// order, each once.
    #[test]
    fn many_records_committed_while_encoding_come_back_in_order() {
        let d = fresh_dir("commit-many");
        let path = d.join("journal");
        let r = resume(&path, site("2m"), Default::default(), &relays, t(0)).unwrap();
        let (mut s, mut j) = (r.station, Some(r.journal));
        let before = j.as_ref().unwrap().written;
        let mut records: Vec<(Timestamp, Record)> = (0..1_001u64)
            .map(|i| (t(10).plus_ns(i), Record::site_alert(&format!("record {i}"))))
            .collect();
        let mut line = Vec::new();
        // Records before `from` are the caller's, already journaled: left alone.
        records.insert(
            0,
            (
                t(9),
                Record::Decision(Decided::PowerBack {
                    ups: "ups-x".into(),
                }),
            ),
        );
        let mut journaled = vec![true; records.len()];
        let hand = Hand::start().unwrap();
        let (appended, written, ()) = hand.commit_while(
            &mut j,
            (&mut records, &mut journaled),
            1,
            &mut s,
            &mut line,
            |_| {},
        );
        appended.unwrap();
        written.unwrap();
        assert_eq!(records.len(), 1_002, "the records come back");
        assert!(journaled.len() == 1_002 && journaled.iter().all(|j| *j));
        assert_eq!(j.as_ref().unwrap().written - before, 1_001);
        drop((s, j));
        let mut reasons = Vec::new();
        read(&path, |_, r| {
            if let Record::Decision(Decided::Alert { reason, .. }) = r
                && let Some(n) = reason.strip_prefix("record ")
            {
                reasons.push(n.parse::<u64>().unwrap());
            }
        })
        .unwrap();
        assert_eq!(reasons, (0..1_001).collect::<Vec<u64>>());
    }

    #[test]
    fn records_committed_while_orders_are_encoded_are_durable_and_a_new_file_starts_with_a_checkpoint()
     {
        let d = fresh_dir("commit-while");
        let path = d.join("journal");
        let all = |p: &Path| {
            let mut v = Vec::new();
            read(p, |t, r| v.push((t, r))).unwrap();
            v
        };
        let r = resume(&path, site("2m"), Default::default(), &relays, t(0)).unwrap();
        let (mut s, mut j) = (r.station, r.journal);
        // The next fsync rotates.
        j.rotate_at(1);
        let mut j = Some(j);
        on_battery(&mut s, t(10));
        s.handle_timeout(t(200));
        let mut records: Vec<(Timestamp, Record)> = Vec::new();
        while let Some((at, r)) = s.poll_record() {
            records.push((at, r));
        }
        let mut journaled = vec![true; records.len()];
        let decided = records
            .iter()
            .filter(|(_, r)| matches!(r, Record::Decision(Decided::ShutdownRecorder { .. })))
            .count();
        assert_eq!(decided, 1, "nvr-244 decided at the end of its tier's grace");
        let mut line = Vec::new();
        let hand = Hand::start().unwrap();
        let (appended, written, encoded) = hand.commit_while(
            &mut j,
            (&mut records, &mut journaled),
            0,
            &mut s,
            &mut line,
            |s| {
                let mut n = 0;
                s.drain_transmits(|_, bytes| n += usize::from(!bytes.is_empty()));
                n
            },
        );
        assert!(j.is_some(), "the journal comes back");
        appended.unwrap();
        written.unwrap();
        assert!(encoded >= 1, "the order was encoded meanwhile");
        assert!(journaled.len() == records.len() && journaled.iter().all(|j| *j));
        // The records are in the file that rotated; the new file holds the checkpoint
        // alone (however small the rotation size).
        assert!(!rotated(&path, 2).exists(), "rotated once");
        let every = all(&path);
        assert_eq!(every.len(), records.len() + 1, "{every:?}");
        assert!(matches!(every.last(), Some((_, Record::Snapshot(_)))));
        let newest = std::fs::read_to_string(&path).unwrap();
        let lines = newest.lines().filter(|l| !l.is_empty()).count();
        assert_eq!(lines, 1, "{newest}");
        drop((s, j));
        // A restart reads the checkpoint only, and does not decide nvr-244 again.
        let r = resume(&path, site("2m"), Default::default(), &relays, t(210)).unwrap();
        assert_eq!(r.records, 1);
        let (mut s, mut j) = (r.station, r.journal);
        let after = drive(&mut s, &mut j, t(220));
        assert!(
            after.iter().all(|(_, r, a)| r != "nvr-244" || *a > 1),
            "{after:?}"
        );
        let _ = std::fs::remove_dir_all(&d);
    }
}
