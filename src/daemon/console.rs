//! stdout and stderr for the live gateway, each written by a thread of its own through a
//! bounded queue, so that a terminal that scrolls slowly, or a pipe nobody reads, never
//! holds up a decision. What does not fit in the queue is dropped, counted, and said:
//! on stdout as a JSON record of how many records were not shown (they are in the
//! journal), on stderr as a line.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::daemon::clock::{OsTime, TimeSource};
use crate::time::Timestamp;

/// Lines each queue holds before it drops.
pub const QUEUE: usize = 16 * 1024;

#[derive(Default)]
struct Counts {
    queued: AtomicU64,
    written: AtomicU64,
    dropped: AtomicU64,
    /// The stream failed (a closed pipe): later lines are discarded.
    broken: AtomicBool,
}

/// One stream, its queue and its writer.
struct Lane {
    tx: Sender<String>,
    counts: Arc<Counts>,
}

impl Lane {
    fn start(name: &'static str, json: bool, open: fn() -> Box<dyn Write + Send>) -> Lane {
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        let counts = Arc::new(Counts::default());
        let c = Arc::clone(&counts);
        // A console that cannot start its thread writes nothing; the gateway goes on.
        let _ = std::thread::Builder::new()
            .name(format!("trapgate-{name}"))
            .spawn(move || write_lines(rx, &c, json, open()));
        Lane { tx, counts }
    }

    fn send(&self, line: String) -> bool {
        match self.tx.try_send(line) {
            Ok(()) => {
                self.counts.queued.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counts.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    fn pending(&self) -> u64 {
        let c = &self.counts;
        if c.broken.load(Ordering::Relaxed) {
            return 0;
        }
        c.queued
            .load(Ordering::Relaxed)
            .saturating_sub(c.written.load(Ordering::Relaxed))
    }
}

fn write_lines(rx: Receiver<String>, c: &Counts, json: bool, mut w: Box<dyn Write + Send>) {
    let mut said = 0u64;
    for line in rx.iter() {
        if !c.broken.load(Ordering::Relaxed) {
            let dropped = c.dropped.load(Ordering::Relaxed);
            let mut ok = true;
            if dropped > said {
                let n = dropped - said;
                said = dropped;
                let note = if json {
                    let now = Timestamp(OsTime::default().wall());
                    format!(
                        "{{\"time\":\"{}\",\"action\":\"NotShown\",\"count\":{n},\"detail\":\"{n} records were not shown: stdout was not read fast enough (they are in the journal)\"}}",
                        now.utc()
                    )
                } else {
                    format!(
                        "trapgate: {n} lines of stderr were not shown: it was not read fast enough"
                    )
                };
                ok = writeln!(w, "{note}").is_ok();
            }
            ok = ok && writeln!(w, "{line}").is_ok();
            if ok && rx.is_empty() {
                ok = w.flush().is_ok();
            }
            if !ok {
                c.broken.store(true, Ordering::Relaxed);
            }
        }
        c.written.fetch_add(1, Ordering::Relaxed);
    }
}

/// The process's console: stdout and stderr.
pub struct Console {
    out: Lane,
    err: Lane,
}

impl Console {
    fn start() -> Console {
        Console {
            // Buffered: a fan-out's thousands of lines leave in a few writes (flushed
            // whenever the queue is empty, so nothing waits), not one syscall each on
            // the core the decisions need.
            out: Lane::start("stdout", true, || {
                Box::new(io::BufWriter::with_capacity(64 * 1024, io::stdout()))
            }),
            err: Lane::start("stderr", false, || Box::new(io::stderr())),
        }
    }
}

static CONSOLE: OnceLock<Console> = OnceLock::new();

fn console() -> &'static Console {
    CONSOLE.get_or_init(Console::start)
}

/// Queues a line for stdout; false if it was dropped (the queue is full).
pub fn out(line: String) -> bool {
    console().out.send(line)
}

/// Queues a line for stderr; false if it was dropped.
pub fn warn(line: String) -> bool {
    console().err.send(line)
}

/// Lines dropped so far: (stdout, stderr).
pub fn dropped() -> (u64, u64) {
    let c = console();
    (
        c.out.counts.dropped.load(Ordering::Relaxed),
        c.err.counts.dropped.load(Ordering::Relaxed),
    )
}

/// Waits until what is queued is written, or `wait` has passed (a stdout nobody reads
/// does not hold the end of the gateway either); true if all of it was.
pub fn flush(wait: Duration) -> bool {
    let Some(c) = CONSOLE.get() else {
        return true;
    };
    let until = Instant::now() + wait;
    while c.out.pending() + c.err.pending() > 0 {
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_blocking() {
        // A writer that never writes: the queue fills, and sending stays instant.
        let (tx, rx) = crossbeam_channel::bounded::<String>(4);
        let lane = Lane {
            tx,
            counts: Arc::new(Counts::default()),
        };
        let started = Instant::now();
        let sent = (0..100).filter(|i| lane.send(format!("line {i}"))).count();
        assert_eq!(sent, 4);
        assert_eq!(lane.counts.dropped.load(Ordering::Relaxed), 96);
        assert!(started.elapsed() < Duration::from_secs(1));
        // Once read, the first line after the drops says how many were lost.
        let out = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        struct Shared(Arc<std::sync::Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        drop(lane.tx);
        write_lines(rx, &lane.counts, true, Box::new(Shared(Arc::clone(&out))));
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert!(
            lines[0].contains("\"action\":\"NotShown\",\"count\":96"),
            "{text}"
        );
        assert_eq!(lines[1], "line 0");
    }
}
