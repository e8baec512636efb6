//! systemd's notify protocol (`Type=notify`), through the `sd-notify` crate: `READY=1`
//! once every socket is bound and the journal resumed, `STATUS=` with the site in one
//! line when it changes, `WATCHDOG=1` from the decision thread itself (so that a stuck
//! decision thread stops the pings and systemd restarts the gateway, which resumes from
//! its journal), `RELOADING=1` around a SIGHUP, `STOPPING=1` on the way out. Nothing at
//! all when `NOTIFY_SOCKET` is not set (not under systemd).

use std::time::{Duration, Instant};

use sd_notify::NotifyState;

/// The gateway's side of the notify protocol.
#[derive(Debug)]
pub struct Notifier {
    on: bool,
    /// systemd's `WatchdogSec`, if it asks for pings.
    watchdog: Option<Duration>,
    /// When the next ping is due.
    ping_at: Instant,
    /// The status last sent.
    status: String,
}

impl Notifier {
    /// From the environment systemd gives (`NOTIFY_SOCKET`, `WATCHDOG_USEC`,
    /// `WATCHDOG_PID`).
    pub fn from_env() -> Notifier {
        let on = std::env::var_os("NOTIFY_SOCKET").is_some();
        Notifier {
            on,
            watchdog: if on {
                sd_notify::watchdog_enabled()
            } else {
                None
            },
            ping_at: Instant::now(),
            status: String::new(),
        }
    }

    /// Whether systemd listens (`NOTIFY_SOCKET` set).
    pub fn is_on(&self) -> bool {
        self.on
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        if self.on {
            // A notify socket that went away is systemd's business; the gateway goes on.
            let _ = sd_notify::notify(states);
        }
    }

    /// Every socket bound and the journal resumed: ready, with the site's status.
    pub fn ready(&mut self, status: String) {
        self.send(&[NotifyState::Ready, NotifyState::Status(&status)]);
        self.status = status;
    }

    /// The site's status, sent when it changed.
    pub fn status(&mut self, status: String) {
        if status != self.status {
            self.send(&[NotifyState::Status(&status)]);
            self.status = status;
        }
    }

    /// A SIGHUP: the site file is being read again.
    pub fn reloading(&self) {
        let now = NotifyState::monotonic_usec_now().ok();
        let mut states = vec![NotifyState::Reloading];
        states.extend(now);
        self.send(&states);
    }

    /// The reload is over (taken or refused): ready again.
    pub fn reloaded(&mut self, status: String) {
        self.ready(status);
    }

    /// On the way out.
    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping]);
    }

    /// Pings the watchdog if a ping is due (twice per `WatchdogSec`, as systemd
    /// advises); returns when the next is due, for the loop's wait.
    pub fn tick(&mut self, now: Instant) -> Option<Instant> {
        let period = self.watchdog?;
        if now >= self.ping_at {
            self.send(&[NotifyState::Watchdog]);
            self.ping_at = now + period / 2;
        }
        Some(self.ping_at)
    }
}
