//! The commands of `exec` recorders (Network UPS Tools' SHUTDOWNCMD / NOTIFYCMD), each
//! on a thread of its own, never the decision thread's.
//!
//! A command runs under `/bin/sh -c` in a process group of its own, so that at its
//! timeout the whole group is killed — the shell and everything it started — and no
//! orphan is left running. Its stdout and stderr are read as they come and kept up to
//! `CAPTURE` bytes each (the rest is counted, not kept), so a command that writes
//! without end neither fills a pipe and hangs nor grows trapgate's own output; what was
//! kept is journaled with the result.

use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};

use mio::unix::pipe::Receiver;

use crate::engine::id::RecorderId;
pub use crate::engine::station::Command;
use crate::engine::station::CommandEnd;

/// Bytes of stdout and of stderr kept per command.
pub const CAPTURE: usize = 2048;
/// How often a running command is looked at.
const TICK: Duration = Duration::from_millis(10);

/// The first bytes of a stream, and how many it wrote in all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Captured {
    /// Up to `CAPTURE` bytes.
    pub head: Vec<u8>,
    /// Every byte it wrote.
    pub total: u64,
}

impl Captured {
    /// What was kept, as text (lossy), with the count of what was not.
    pub fn text(&self) -> String {
        let mut s = String::from_utf8_lossy(&self.head).into_owned();
        let more = self.total.saturating_sub(self.head.len() as u64);
        if more > 0 {
            s.push_str(&format!("… ({more} more bytes)"));
        }
        s
    }

    fn read_from(&mut self, pipe: &mut Option<Receiver>) {
        let Some(p) = pipe else { return };
        let mut buf = [0u8; 8192];
        loop {
            match p.read(&mut buf) {
                Ok(0) => {
                    *pipe = None;
                    return;
                }
                Ok(n) => {
                    self.total += n as u64;
                    let room = CAPTURE.saturating_sub(self.head.len()).min(n);
                    self.head.extend_from_slice(&buf[..room]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    *pipe = None;
                    return;
                }
            }
        }
    }
}

/// How a command ended.
#[derive(Clone, Debug)]
pub struct Finished {
    /// The recorder.
    pub recorder: RecorderId,
    /// Which order it was.
    pub attempt: u32,
    /// Its exit code (None: killed by a signal, or never started).
    pub status: Option<i32>,
    /// Killed at its timeout.
    pub timed_out: bool,
    /// How long it ran.
    pub took: Duration,
    /// Why it could not run.
    pub error: Option<String>,
    /// What it wrote on stdout.
    pub stdout: Captured,
    /// What it wrote on stderr.
    pub stderr: Captured,
}

impl Finished {
    /// Whether it did its job (exit 0): the recorder's acknowledgement.
    pub fn succeeded(&self) -> bool {
        self.status == Some(0) && !self.timed_out
    }

    /// As the station takes it.
    pub fn end(&self) -> CommandEnd {
        let kept = |c: &Captured| (c.total > 0).then(|| c.text());
        CommandEnd {
            recorder: self.recorder,
            attempt: self.attempt,
            succeeded: self.succeeded(),
            status: self.status_text(),
            took: format!("{:.1} s", self.took.as_secs_f64()),
            stdout: kept(&self.stdout),
            stderr: kept(&self.stderr),
        }
    }

    /// The outcome in a few words: "exit 0", "killed: timed out", ….
    pub fn status_text(&self) -> String {
        match (&self.error, self.timed_out, self.status) {
            (Some(e), _, _) => e.clone(),
            (None, true, _) => "killed: timed out".to_string(),
            (None, false, Some(c)) => format!("exit {c}"),
            (None, false, None) => "killed by a signal".to_string(),
        }
    }
}

/// Runs `cmd` to its end (or its timeout), on the calling thread.
pub fn run(cmd: &Command) -> Finished {
    let start = Instant::now();
    let mut done = Finished {
        recorder: cmd.recorder,
        attempt: cmd.attempt,
        status: None,
        timed_out: false,
        took: Duration::ZERO,
        error: None,
        stdout: Captured::default(),
        stderr: Captured::default(),
    };
    let mut process = Process::new("/bin/sh");
    // What the gateway's start on huge pages set is the gateway's too.
    for name in crate::daemon::hugepages::set_by_the_start_again() {
        process.env_remove(name);
    }
    let spawned = process
        .arg("-c")
        .arg(&cmd.command)
        .envs(cmd.env.iter().map(|(k, v)| (*k, v.as_str())))
        // systemd's notify socket and watchdog are the gateway's, not its commands'.
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group (id = its pid): killed whole at the timeout.
        .process_group(0)
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            done.error = Some(format!("cannot run /bin/sh: {e}"));
            return done;
        }
    };
    let pipe = |p: Option<Receiver>| p.filter(|r| r.set_nonblocking(true).is_ok());
    let mut out = pipe(child.stdout.take().map(Receiver::from));
    let mut err = pipe(child.stderr.take().map(Receiver::from));
    loop {
        done.stdout.read_from(&mut out);
        done.stderr.read_from(&mut err);
        match child.try_wait() {
            Ok(Some(status)) => {
                done.status = status.code();
                break;
            }
            Ok(None) if start.elapsed() >= cmd.timeout => {
                // The shell and everything it started; then reap the shell.
                let _ = crate::daemon::socket::kill_group(child.id());
                let _ = child.kill();
                let _ = child.wait();
                done.timed_out = true;
                break;
            }
            Ok(None) => std::thread::sleep(TICK),
            Err(e) => {
                done.error = Some(e.to_string());
                break;
            }
        }
    }
    // What is left in the pipes (a child that outlived the shell may hold them open:
    // what it writes later is not waited for).
    done.stdout.read_from(&mut out);
    done.stderr.read_from(&mut err);
    done.took = start.elapsed();
    done
}

/// Runs `cmd` on a thread of its own and hands its end to `finished`.
pub fn spawn(cmd: Command, finished: impl FnOnce(Finished) + Send + 'static) {
    let name = format!("trapgate-exec-{}", cmd.recorder);
    let started = std::thread::Builder::new()
        .name(name)
        .spawn(move || finished(run(&cmd)));
    if let Err(e) = started {
        crate::daemon::console::warn(format!("trapgate: cannot start a command thread: {e}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(text: &str, timeout_ms: u64) -> Command {
        Command {
            recorder: RecorderId(0),
            attempt: 1,
            command: text.to_string(),
            env: vec![("TRAPGATE_RECORDER", "nvr-1".to_string())],
            timeout: Duration::from_millis(timeout_ms),
        }
    }

    fn alive(pid: u32) -> bool {
        // A zombie (exited, not reaped by its new parent yet) is not running.
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit(')').next().map(|r| r.trim_start().to_string()))
            .is_some_and(|r| !r.starts_with('Z') && !r.starts_with('X'))
    }

    #[test]
    fn a_command_that_hangs_is_killed_with_everything_it_started() {
        let dir = std::env::temp_dir().join(format!("trapgate-exec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pids = dir.join("pids");
        let text = format!(
            "sleep 300 & echo $! > {p}; (sleep 300; echo late) & echo $! >> {p}; sleep 300",
            p = pids.display()
        );
        let done = run(&command(&text, 500));
        assert!(done.timed_out, "{done:?}");
        assert_eq!(done.status_text(), "killed: timed out");
        let started: Vec<u32> = std::fs::read_to_string(&pids)
            .unwrap()
            .lines()
            .map(|l| l.trim().parse().unwrap())
            .collect();
        assert_eq!(started.len(), 2);
        std::thread::sleep(Duration::from_millis(200));
        for pid in started {
            assert!(!alive(pid), "process {pid} outlived its command's timeout");
        }
        assert!(done.took < Duration::from_secs(5), "{:?}", done.took);
    }

    #[test]
    fn what_a_command_writes_is_kept_up_to_a_bound() {
        let done = run(&command(
            "echo \"told $TRAPGATE_RECORDER\"; head -c 10000000 /dev/zero | tr '\\0' x >&2; exit 3",
            20_000,
        ));
        assert_eq!(done.status, Some(3));
        assert!(!done.succeeded());
        assert_eq!(done.stdout.text(), "told nvr-1\n");
        assert_eq!(done.stderr.total, 10_000_000);
        assert_eq!(done.stderr.head.len(), CAPTURE);
        assert!(
            done.stderr.text().ends_with("(9997952 more bytes)"),
            "{}",
            done.stderr.text().len()
        );
        let ok = run(&command("true", 5_000));
        assert!(ok.succeeded());
        assert_eq!(ok.status_text(), "exit 0");
    }
}
