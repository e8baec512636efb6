//! The journal: every event, decision, presented value, sent trap and acknowledgement,
//! appended one record a line, each line checksummed (`CRC32 JSON`), written and
//! fsync'd before a decision is acted on, rotated by size.
//!
//! A restarted gateway reads it back (`read`) and replays its inputs through a fresh
//! policy (see `gateway::resume`): the policy is deterministic, so the outage in
//! progress comes back exactly, timers and all, and the ledger learns again who was
//! told and who acknowledged. A line cut short by a crash (kill -9 mid-write) fails its
//! checksum and is dropped, and the file is cut back to its last whole line.
//!
//! Rotation keeps `KEEP` older files, and every older one still needed: a file whose
//! records reach past the start of an outage under way (`keep_since`) is kept until the
//! outage is over, so no burst of records can push the outage's start out of reach of a
//! restart.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Seek, Write};
use std::net::IpAddr;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use crate::classify::Event;
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
    line: Vec<u8>,
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

/// What was read back from a journal.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The records, oldest first, with their time.
    pub records: Vec<(Timestamp, Json)>,
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

/// Reads every record of the journal at `path` and its rotated files, oldest first. A
/// journal that does not exist reads as empty.
pub fn read(path: &Path) -> io::Result<Recovered> {
    check_regular(path)?;
    let mut out = Recovered::default();
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
        for (i, line) in BufReader::new(f).split(b'\n').enumerate() {
            let line = line?;
            match parse_line(&line) {
                Ok(r) => out.records.push(r),
                Err(why) => out.damaged.push((file.clone(), i + 1, why)),
            }
        }
    }
    Ok(out)
}

fn parse_line(line: &[u8]) -> Result<(Timestamp, Json), String> {
    let text = core::str::from_utf8(line).map_err(|_| "not UTF-8".to_string())?;
    let (sum, json) = text
        .split_once(' ')
        .ok_or_else(|| "no checksum".to_string())?;
    let sum = u32::from_str_radix(sum, 16).map_err(|_| format!("bad checksum field {sum:?}"))?;
    if crc32fast::hash(json.as_bytes()) != sum {
        return Err("checksum mismatch (a line cut short by a crash?)".into());
    }
    let v: Json = serde_json::from_str(json).map_err(|e| format!("bad JSON: {e}"))?;
    let t = v["t"]
        .as_u64()
        .ok_or_else(|| "no time field `t`".to_string())?;
    Ok((Timestamp(t), v))
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
        .find_map(|line| parse_line(line).ok())
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
            line: Vec::with_capacity(512),
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

    fn finish_line(&mut self) -> io::Result<()> {
        let sum = crc32fast::hash(&self.line);
        self.line.push(b'\n');
        // `crc32hex ` then the line: written straight into the buffered file.
        write!(self.file, "{sum:08x} ")?;
        self.file.write_all(&self.line)?;
        self.size += (9 + self.line.len()) as u64;
        self.written += 1;
        Ok(())
    }

    fn started(&mut self, t: Timestamp) {
        self.last = self.last.max(t);
    }

    /// Appends a record: `fields` (a JSON object) with the time `t` added first.
    pub fn append(&mut self, t: Timestamp, fields: &Json) -> io::Result<()> {
        self.started(t);
        self.line.clear();
        let _ = write!(self.line, "{{\"t\":{}", t.0);
        if let Some(map) = fields.as_object() {
            for (k, v) in map {
                self.line.push(b',');
                serde_json::to_writer(&mut self.line, k).map_err(io::Error::other)?;
                self.line.push(b':');
                serde_json::to_writer(&mut self.line, v).map_err(io::Error::other)?;
            }
        }
        self.line.push(b'}');
        self.finish_line()
    }

    /// Appends a notification as the policy received it (the hot path: no JSON tree,
    /// only the line buffer, which is reused).
    pub fn event(
        &mut self,
        t: Timestamp,
        source: IpAddr,
        ups: Option<&str>,
        community: &[u8],
        event: Event,
        rule: &str,
    ) -> io::Result<()> {
        self.started(t);
        self.line.clear();
        let _ = write!(
            self.line,
            "{{\"t\":{},\"input\":\"event\",\"source\":\"{source}\",",
            t.0
        );
        if let Some(u) = ups {
            self.line.extend_from_slice(b"\"ups\":");
            serde_json::to_writer(&mut self.line, u).map_err(io::Error::other)?;
            self.line.push(b',');
        }
        self.line.extend_from_slice(b"\"community\":");
        serde_json::to_writer(&mut self.line, &String::from_utf8_lossy(community))
            .map_err(io::Error::other)?;
        let _ = write!(self.line, ",\"event\":\"{}\",\"rule\":", event.name());
        serde_json::to_writer(&mut self.line, rule).map_err(io::Error::other)?;
        self.line.push(b'}');
        self.finish_line()
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

/// One record as a person reads it: the time, then what happened.
pub fn readable(t: Timestamp, r: &Json) -> String {
    let s = |k: &str| r[k].as_str().unwrap_or("");
    // ` key=value` for each of `keys` the record has (strings unquoted).
    let fields = |w: &mut String, keys: &[&str]| {
        for k in keys {
            if !r[k].is_null() {
                let v = r[k].as_str().map_or(r[k].to_string(), str::to_string);
                w.push_str(&format!(" {k}={v}"));
            }
        }
    };
    let mut line = format!("{}  ", t.utc());
    let what = if let Some(input) = r["input"].as_str() {
        match input {
            "event" => format!(
                "heard {} from {}{} ({}, community {:?})",
                s("event"),
                s("source"),
                r["ups"]
                    .as_str()
                    .map_or(String::new(), |u| format!(" (UPS {u})")),
                s("rule"),
                s("community")
            ),
            "poll" => format!(
                "UPS {} polled: {}",
                s("ups"),
                serde_json::to_string(&r["answer"]).unwrap_or_default()
            ),
            "silent" => format!(
                "UPS {} {}",
                s("ups"),
                if r["silent"].as_bool() == Some(true) {
                    "stopped answering polls"
                } else {
                    "answers polls again"
                }
            ),
            "timeout" => "timers due".to_string(),
            other => format!("input {other}"),
        }
    } else if let Some(d) = r["decision"].as_str() {
        let mut w = format!("decided {d}");
        fields(
            &mut w,
            &["ups", "recorder", "tier", "percent", "kind", "source"],
        );
        if let Some(reason) = r["reason"].as_str() {
            w.push_str(&format!(": {reason}"));
        }
        if let Some(rule) = r["rule"].as_str() {
            w.push_str(&format!(" [{rule}]"));
        }
        w
    } else if let Some(a) = r["action"].as_str() {
        let mut w = a.to_string();
        fields(
            &mut w,
            &[
                "recorder", "ups", "attempt", "to", "after_s", "status", "detail",
            ],
        );
        w
    } else {
        r.to_string()
    };
    line.push_str(&what);
    line
}

/// Whether record `r` concerns the UPS or recorder named `name`.
pub fn concerns(r: &Json, name: &str) -> bool {
    r["ups"].as_str() == Some(name) || r["recorder"].as_str() == Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("trapgate-journal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn records_come_back_in_order_and_a_torn_last_line_is_dropped_and_cut() {
        let d = dir("torn");
        let path = d.join("journal");
        let mut j = Journal::open(&path).unwrap();
        j.append(
            Timestamp(1),
            &json!({"decision": "Alert", "reason": "a \"quoted\" reason"}),
        )
        .unwrap();
        j.event(
            Timestamp(2),
            "127.0.0.1".parse().unwrap(),
            Some("ups-main"),
            b"public",
            Event::LowBattery,
            "lowBattery",
        )
        .unwrap();
        j.sync().unwrap();
        drop(j);
        // A crash in the middle of the third line.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"1234abcd {\"t\":3,\"decis").unwrap();
        drop(f);
        let r = read(&path).unwrap();
        assert_eq!(r.records.len(), 2);
        assert_eq!(r.records[0].1["reason"], "a \"quoted\" reason");
        assert_eq!(r.records[1].1["event"], "LowBattery");
        assert_eq!(r.records[1].1["ups"], "ups-main");
        assert_eq!(r.damaged.len(), 1, "{:?}", r.damaged);
        // Reopening cuts the torn line, and new records read back whole.
        let mut j = Journal::open(&path).unwrap();
        j.append(
            Timestamp(4),
            &json!({"action": "Sent", "recorder": "nvr-1"}),
        )
        .unwrap();
        j.sync().unwrap();
        let r = read(&path).unwrap();
        assert_eq!(r.records.len(), 3);
        assert!(r.damaged.is_empty(), "{:?}", r.damaged);
        assert_eq!(r.records[2].0, Timestamp(4));
    }

    #[test]
    fn a_flipped_byte_fails_the_checksum() {
        let d = dir("flip");
        let path = d.join("journal");
        let mut j = Journal::open(&path).unwrap();
        for t in 0..3 {
            j.append(Timestamp(t), &json!({"decision": "Alert", "reason": "x"}))
                .unwrap();
        }
        j.sync().unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let second = bytes.iter().position(|&b| b == b'\n').unwrap() + 20;
        bytes[second] ^= 0x01;
        std::fs::write(&path, bytes).unwrap();
        let r = read(&path).unwrap();
        assert_eq!(r.records.len(), 2);
        assert_eq!(r.damaged[0].1, 2);
    }

    #[test]
    fn rotation_keeps_every_file_an_outage_under_way_needs() {
        let d = dir("keep");
        let path = d.join("journal");
        let mut j = Journal::open(&path).unwrap();
        j.rotate_at(300);
        // The outage starts at t = 5 (its OnBattery), then a burst of records.
        j.keep_since(Some(Timestamp(5)));
        for t in 0..60 {
            let what = if t == 5 { "OnBattery" } else { "noise" };
            j.append(Timestamp(t), &json!({"input": "event", "event": what}))
                .unwrap();
            j.sync().unwrap();
        }
        assert!(j.rotated() > KEEP, "{} files kept", j.rotated());
        let r = read(&path).unwrap();
        assert!(
            r.records
                .iter()
                .any(|(t, v)| t.0 == 5 && v["event"] == "OnBattery"),
            "the outage's start survives the burst"
        );
        // The outage is over: the next rotation lets the old files go.
        j.keep_since(None);
        for t in 60..70 {
            j.append(Timestamp(t), &json!({"input": "event", "event": "noise"}))
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
        assert!(read(Path::new("/dev/full")).is_err());
    }

    #[test]
    fn rotation_keeps_every_record_readable() {
        let d = dir("rotate");
        let path = d.join("journal");
        let mut j = Journal::open(&path).unwrap();
        j.rotate_at(400);
        for t in 0..20 {
            j.append(
                Timestamp(t),
                &json!({"action": "Sent", "recorder": format!("nvr-{t}")}),
            )
            .unwrap();
            j.sync().unwrap();
        }
        assert!(rotated(&path, 1).exists() && rotated(&path, 2).exists());
        let r = read(&path).unwrap();
        let times: Vec<u64> = r.records.iter().map(|(t, _)| t.0).collect();
        // The oldest files beyond KEEP are gone; what is kept is in order.
        assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
        assert_eq!(times.last(), Some(&19));
    }
}
