//! A Network UPS Tools server (the `upsd` network protocol, NUT 2.8's
//! `docs/net-protocol.txt`), sans-IO: lines in per connection, lines out, and what the
//! station must know (a recorder logged in, shown FSD, logged out). The daemon owns the
//! TCP sockets.
//!
//! Each NUT client is a `[[recorder]]` of `kind = "nut"`, known by its address and, once
//! it logs in, its user name: what it sees is its own (`NutView`): `OL`, `OB`, `OB LB`
//! from the real UPS, or `FSD OB LB` once the policy has ordered it down, while a client
//! of a later tier of the same UPS still sees `OB`. The gateway is the only primary:
//! `PRIMARY`, `MASTER` and `FSD` are refused to clients. A line is at most
//! `MAX_LINE` bytes; a longer one closes the connection, as upsd does.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use crate::engine::config::{RecorderKind, Site};
use crate::engine::id::RecorderId;

/// The longest line a client may send (upsd's own limit is 512).
pub const MAX_LINE: usize = 512;

/// The protocol version trapgate speaks (NETVER).
pub const NETVER: &str = "1.3";

/// A connection, as the daemon numbers them.
pub type ConnId = u64;

/// Which of trapgate's TCP servers a client talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// Network UPS Tools' upsd protocol.
    Nut,
    /// apcupsd's network information server.
    Nis,
}

/// What a NUT client is shown of its UPS.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NutView {
    /// On battery (None: not known yet: OL).
    pub on_battery: bool,
    /// Battery low.
    pub battery_low: bool,
    /// Ordered down: FSD.
    pub forced: bool,
    /// battery.charge, percent.
    pub charge: Option<u8>,
    /// battery.runtime, seconds.
    pub runtime: Option<u32>,
    /// The UPS's name in the site, and its maker as the site says (`ups.mfr`).
    pub ups_name: String,
    /// ups.mfr.
    pub mfr: &'static str,
}

impl NutView {
    /// ups.status, in NUT's words.
    pub fn status(&self) -> String {
        let mut s = String::new();
        if self.forced {
            s.push_str("FSD ");
        }
        s.push_str(if self.on_battery || self.forced {
            "OB"
        } else {
            "OL"
        });
        if self.battery_low || self.forced {
            s.push_str(" LB");
        }
        s
    }

    /// Every variable shown, name and value, in the order `LIST VAR` gives them.
    pub fn vars(&self) -> Vec<(&'static str, String)> {
        let mut v = vec![
            ("battery.charge", self.charge.map(|c| c.to_string())),
            ("battery.runtime", self.runtime.map(|r| r.to_string())),
            ("device.mfr", Some(self.mfr.to_string())),
            (
                "device.model",
                Some(format!("trapgate view of {}", self.ups_name)),
            ),
            ("device.type", Some("ups".to_string())),
            ("driver.name", Some("trapgate".to_string())),
            ("ups.mfr", Some(self.mfr.to_string())),
            (
                "ups.model",
                Some(format!("trapgate view of {}", self.ups_name)),
            ),
            ("ups.status", Some(self.status())),
        ];
        v.retain(|(_, value)| value.is_some());
        v.into_iter()
            .map(|(k, value)| (k, value.unwrap_or_default()))
            .collect()
    }
}

/// A NUT recorder of the site.
#[derive(Clone, Debug)]
struct Client {
    user: String,
    password: String,
    ups: String,
}

/// One connection's state.
#[derive(Clone, Debug, Default)]
struct Conn {
    peer: Option<IpAddr>,
    /// Bytes of a line not ended yet.
    partial: Vec<u8>,
    user: Option<String>,
    password: Option<String>,
    /// The recorder it logged in as, and the UPS name it logged in to.
    login: Option<(RecorderId, String)>,
    /// It was shown FSD while logged in (its logout then acknowledges).
    shown_fsd: bool,
}

/// What the station learns from the NUT server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NutEvent {
    /// A recorder's client logged in (it is up and watching).
    LoggedIn(RecorderId),
    /// A recorder's client, logged in, asked for its status (it is up). A client that
    /// has not logged in proved nothing: it is answered, not taken as heard from.
    Asked(RecorderId),
    /// A LOGIN with a wrong user name or password, from this address.
    WrongPassword(IpAddr),
    /// A recorder's client was shown FSD.
    ShownFsd(RecorderId),
    /// A recorder's client logged out or closed, after it had been shown FSD (NUT's
    /// secondary does so as it shuts down): its acknowledgement.
    LeftAfterFsd(RecorderId),
    /// A recorder's client logged out or closed otherwise.
    Left(RecorderId),
}

/// What to send on a connection, and whether to close it after.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reply {
    /// The bytes (lines ending in `\n`).
    pub bytes: Vec<u8>,
    /// Close the connection after sending.
    pub close: bool,
    /// Whole lines (or requests) left for a later turn: the budget ran out. The driver
    /// hands no new bytes until they are answered.
    pub more: bool,
    /// Hold the answer, and read nothing more from the connection, this long (ns): a
    /// wrong password's delay, growing with each from the address.
    pub hold: u64,
}

/// The first wrong password's delay; each next one from the address doubles it.
pub const WRONG_PASSWORD_DELAY: u64 = 250 * crate::time::ns::MILLI;
/// The longest delay.
pub const WRONG_PASSWORD_DELAY_MAX: u64 = 16 * crate::time::ns::SECOND;
/// Wrong passwords from an address are forgotten this long after its last.
pub const WRONG_PASSWORD_MEMORY: u64 = 600 * crate::time::ns::SECOND;
/// Lines one connection may have answered per `received` at most (its turn).
pub const LINES_PER_TURN: usize = 32;

/// The NUT server of a site.
#[derive(Debug, Default)]
pub struct NutServer {
    clients: Vec<Option<Client>>,
    /// NUT recorders by address (several clients may share one: by user name then).
    by_address: HashMap<IpAddr, Vec<RecorderId>>,
    conns: HashMap<ConnId, Conn>,
    events: Vec<NutEvent>,
    /// Wrong passwords per address: how many, and the last one's time.
    failures: HashMap<IpAddr, (u32, crate::time::Timestamp)>,
    /// Lines answered, connections refused, lines too long.
    pub lines: u64,
    /// Connections closed for a line past `MAX_LINE`.
    pub too_long: u64,
}

/// Splits a NUT command line into words: spaces separate, a double-quoted word may hold
/// spaces, and a backslash escapes the next character inside quotes.
pub fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut escaped, mut any) = (false, false, false);
    for c in line.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
            any = true;
        } else if c.is_ascii_whitespace() && !quoted {
            if any || !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
                any = false;
            }
        } else {
            cur.push(c);
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// A value as NUT quotes it: in double quotes, `"` and `\` escaped.
pub fn quoted(value: &str) -> String {
    let mut s = String::with_capacity(value.len() + 2);
    s.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
    s
}

impl NutServer {
    /// The NUT server of `site`'s recorders of kind `nut`.
    pub fn new(site: &Site) -> NutServer {
        let mut by_address: HashMap<IpAddr, Vec<RecorderId>> = HashMap::new();
        let clients = RecorderId::enumerate(&site.recorders)
            .map(|(id, r)| match &r.kind {
                RecorderKind::Nut {
                    user,
                    password,
                    ups,
                } => {
                    by_address.entry(r.address).or_default().push(id);
                    Some(Client {
                        user: user.clone(),
                        password: password.clone(),
                        ups: ups.clone(),
                    })
                }
                _ => None,
            })
            .collect();
        NutServer {
            clients,
            by_address,
            ..NutServer::default()
        }
    }

    /// Takes a reloaded site: connections stay, logged in as the same recorder where it
    /// stays (`remap`), else logged out.
    pub fn reload(&mut self, site: &Site, remap: &crate::engine::config::Remap) {
        let mut next = NutServer::new(site);
        let mut now_is: HashMap<RecorderId, RecorderId> = HashMap::new();
        for (new, old) in remap.kept_recorders() {
            now_is.insert(old, new);
        }
        for (id, mut c) in std::mem::take(&mut self.conns) {
            c.login = c
                .login
                .and_then(|(r, ups)| Some((*now_is.get(&r)?, ups)))
                .filter(|(r, _)| next.clients[*r].is_some());
            next.conns.insert(id, c);
        }
        next.lines = self.lines;
        next.too_long = self.too_long;
        next.failures = std::mem::take(&mut self.failures);
        *self = next;
    }

    /// A connection from `peer`: taken only from a NUT recorder's address (anyone else
    /// is told so and closed).
    pub fn connected(&mut self, conn: ConnId, peer: IpAddr) -> Reply {
        if !self.by_address.contains_key(&peer) {
            return Reply {
                bytes: b"ERR ACCESS-DENIED\n".to_vec(),
                close: true,
                ..Reply::default()
            };
        }
        self.conns.insert(
            conn,
            Conn {
                peer: Some(peer),
                ..Conn::default()
            },
        );
        Reply::default()
    }

    /// The connection closed (by the client, or after a reply that closes).
    pub fn closed(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.remove(&conn)
            && let Some((r, _)) = c.login
        {
            self.events.push(if c.shown_fsd {
                NutEvent::LeftAfterFsd(r)
            } else {
                NutEvent::Left(r)
            });
        }
    }

    /// Bytes from connection `conn` at `now`: its whole lines answered, at most
    /// `budget` of them (taken from it; `LINES_PER_TURN` at most for one connection),
    /// with `view` giving what each recorder is shown. Lines left wait in the
    /// connection's buffer (`Reply::more`) for a call with no new bytes.
    pub fn received(
        &mut self,
        conn: ConnId,
        bytes: &[u8],
        now: crate::time::Timestamp,
        view: &dyn Fn(RecorderId) -> NutView,
        budget: &mut usize,
    ) -> Reply {
        let mut reply = Reply::default();
        let Some(c) = self.conns.get_mut(&conn) else {
            reply.close = true;
            return reply;
        };
        c.partial.extend_from_slice(bytes);
        let mut taken = 0;
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                reply.close = true;
                return reply;
            };
            let Some(end) = memchr::memchr(b'\n', &c.partial) else {
                if c.partial.len() > MAX_LINE {
                    self.too_long += 1;
                    reply.bytes.extend_from_slice(b"ERR INVALID-ARGUMENT\n");
                    reply.close = true;
                }
                return reply;
            };
            if end + 1 > MAX_LINE {
                self.too_long += 1;
                reply.bytes.extend_from_slice(b"ERR INVALID-ARGUMENT\n");
                reply.close = true;
                return reply;
            }
            if *budget == 0 || taken == LINES_PER_TURN || reply.hold > 0 {
                reply.more = true;
                return reply;
            }
            *budget -= 1;
            taken += 1;
            let line: Vec<u8> = c.partial.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\r', '\n']);
            self.lines += 1;
            let (out, close, hold) = self.command(conn, text, now, view);
            reply.bytes.extend_from_slice(out.as_bytes());
            reply.hold = hold;
            if close {
                reply.close = true;
                return reply;
            }
        }
    }

    /// The delay a wrong password from `peer` at `now` earns: 250 ms, doubled for each
    /// before it that is not forgotten yet, 16 s at most.
    fn wrong_password(&mut self, peer: IpAddr, now: crate::time::Timestamp) -> u64 {
        if self.failures.len() >= 65_536 {
            self.failures
                .retain(|_, (_, at)| now.ns_since(*at) < WRONG_PASSWORD_MEMORY);
        }
        let (n, at) = self.failures.entry(peer).or_insert((0, now));
        if now.ns_since(*at) >= WRONG_PASSWORD_MEMORY {
            *n = 0;
        }
        *n = n.saturating_add(1);
        *at = now;
        self.events.push(NutEvent::WrongPassword(peer));
        WRONG_PASSWORD_DELAY
            .saturating_mul(1 << (*n - 1).min(16))
            .min(WRONG_PASSWORD_DELAY_MAX)
    }

    /// The next event for the station.
    pub fn poll_event(&mut self) -> Option<NutEvent> {
        if self.events.is_empty() {
            None
        } else {
            Some(self.events.remove(0))
        }
    }

    /// Recorders logged in now.
    pub fn logged_in(&self) -> usize {
        self.conns.values().filter(|c| c.login.is_some()).count()
    }

    /// The recorder a connection speaks for when it names `ups`: by its login, else by
    /// its address and the UPS name (and user name, if it gave one).
    fn recorder_for(&self, conn: &Conn, ups: &str) -> Option<RecorderId> {
        if let Some((r, _)) = &conn.login {
            return self.clients[*r]
                .as_ref()
                .filter(|c| c.ups == ups)
                .map(|_| *r);
        }
        let peer = conn.peer?;
        self.by_address.get(&peer)?.iter().copied().find(|&r| {
            self.clients[r]
                .as_ref()
                .is_some_and(|c| c.ups == ups && conn.user.as_deref().is_none_or(|u| u == c.user))
        })
    }

    /// One line: its answer, whether to close, and how long to hold the answer.
    fn command(
        &mut self,
        conn: ConnId,
        line: &str,
        now: crate::time::Timestamp,
        view: &dyn Fn(RecorderId) -> NutView,
    ) -> (String, bool, u64) {
        if let ["LOGIN", ups] = words(line).iter().map(String::as_str).collect::<Vec<_>>()[..] {
            return self.login(conn, ups, now);
        }
        let (out, close) = self.answer(conn, line, view);
        (out, close, 0)
    }

    /// LOGIN `ups` on `conn`: the user and password it gave must be a NUT recorder's of
    /// its address (compared in constant time); a wrong one is counted and held back.
    fn login(
        &mut self,
        conn: ConnId,
        ups: &str,
        now: crate::time::Timestamp,
    ) -> (String, bool, u64) {
        let Some(c) = self.conns.get(&conn) else {
            return (String::new(), true, 0);
        };
        if c.login.is_some() {
            return ("ERR ALREADY-LOGGED-IN\n".into(), false, 0);
        }
        let Some(user) = c.user.as_deref() else {
            return ("ERR USERNAME-REQUIRED\n".into(), false, 0);
        };
        let Some(pw) = c.password.as_deref() else {
            return ("ERR PASSWORD-REQUIRED\n".into(), false, 0);
        };
        let peer = c.peer;
        let found = peer.and_then(|peer| {
            self.by_address.get(&peer)?.iter().copied().find(|&r| {
                self.clients[r]
                    .as_ref()
                    .is_some_and(|k| k.user == user && k.ups == ups)
            })
        });
        let right = |k: &Client| {
            use subtle::ConstantTimeEq;
            bool::from(k.password.as_bytes().ct_eq(pw.as_bytes()))
        };
        match found {
            Some(r) if self.clients[r].as_ref().is_some_and(right) => {
                self.conns.get_mut(&conn).expect("known").login = Some((r, ups.to_string()));
                self.events.push(NutEvent::LoggedIn(r));
                ("OK\n".into(), false, 0)
            }
            // A wrong password, or a user this address does not have: a guess.
            _ if self.ups_known(peer, ups) => {
                let hold = peer.map_or(0, |p| self.wrong_password(p, now));
                ("ERR ACCESS-DENIED\n".into(), false, hold)
            }
            _ => ("ERR UNKNOWN-UPS\n".into(), false, 0),
        }
    }

    fn answer(
        &mut self,
        conn: ConnId,
        line: &str,
        view: &dyn Fn(RecorderId) -> NutView,
    ) -> (String, bool) {
        let w = words(line);
        let w: Vec<&str> = w.iter().map(String::as_str).collect();
        let Some(c) = self.conns.get(&conn).cloned() else {
            return (String::new(), true);
        };
        let ups_err = "ERR UNKNOWN-UPS\n".to_string();
        match w.as_slice() {
            [] => (String::new(), false),
            ["VER"] => (
                format!(
                    "trapgate {} (Network UPS Tools protocol {NETVER})\n",
                    env!("CARGO_PKG_VERSION")
                ),
                false,
            ),
            ["NETVER"] => (format!("{NETVER}\n"), false),
            ["HELP"] => (
                "Commands: HELP VER GET LIST SET INSTCMD LOGIN LOGOUT USERNAME PASSWORD STARTTLS\n"
                    .into(),
                false,
            ),
            ["STARTTLS"] => ("ERR FEATURE-NOT-CONFIGURED\n".into(), false),
            ["USERNAME", name] => {
                if c.user.is_some() {
                    return ("ERR ALREADY-SET-USERNAME\n".into(), false);
                }
                self.conns.get_mut(&conn).expect("known").user = Some((*name).to_string());
                ("OK\n".into(), false)
            }
            ["PASSWORD", pw] => {
                if c.password.is_some() {
                    return ("ERR ALREADY-SET-PASSWORD\n".into(), false);
                }
                self.conns.get_mut(&conn).expect("known").password = Some((*pw).to_string());
                ("OK\n".into(), false)
            }
            ["LOGOUT"] => ("OK Goodbye\n".into(), true),
            ["PRIMARY" | "MASTER", _] | ["FSD", _] => {
                // The gateway is the only primary of its UPSes.
                ("ERR ACCESS-DENIED\n".into(), false)
            }
            ["GET", "VAR", ups, var] => match self.recorder_for(&c, ups) {
                None => (ups_err, false),
                Some(r) => {
                    let v = view(r);
                    if *var == "ups.status" && c.login.is_some() {
                        if v.forced {
                            self.conns.get_mut(&conn).expect("known").shown_fsd = true;
                            self.events.push(NutEvent::ShownFsd(r));
                        } else {
                            self.events.push(NutEvent::Asked(r));
                        }
                    }
                    match v.vars().into_iter().find(|(k, _)| k == var) {
                        Some((k, value)) => (format!("VAR {ups} {k} {}\n", quoted(&value)), false),
                        None => ("ERR VAR-NOT-SUPPORTED\n".into(), false),
                    }
                }
            },
            ["GET", "UPSDESC", ups] => match self.recorder_for(&c, ups) {
                None => (ups_err, false),
                Some(r) => (
                    format!(
                        "UPSDESC {ups} {}\n",
                        quoted(&format!("trapgate's view of UPS {}", view(r).ups_name))
                    ),
                    false,
                ),
            },
            ["GET", "NUMLOGINS", ups] => match self.recorder_for(&c, ups) {
                None => (ups_err, false),
                Some(r) => {
                    let n = self
                        .conns
                        .values()
                        .filter(|k| k.login.as_ref().is_some_and(|(x, _)| *x == r))
                        .count();
                    (format!("NUMLOGINS {ups} {n}\n"), false)
                }
            },
            ["GET", "TYPE", ups, var] => match self.recorder_for(&c, ups) {
                None => (ups_err, false),
                Some(r) => match view(r).vars().into_iter().find(|(k, _)| k == var) {
                    None => ("ERR VAR-NOT-SUPPORTED\n".into(), false),
                    Some((k, value)) => {
                        let ty = if value.parse::<f64>().is_ok() {
                            "NUMBER".to_string()
                        } else {
                            format!("STRING:{}", value.len().max(1))
                        };
                        (format!("TYPE {ups} {k} {ty}\n"), false)
                    }
                },
            },
            ["GET", "DESC", ups, var] => match self.recorder_for(&c, ups) {
                None => (ups_err, false),
                Some(_) => (
                    format!("DESC {ups} {var} {}\n", quoted("Description unavailable")),
                    false,
                ),
            },
            ["GET", "CMDDESC", ups, cmd] => match self.recorder_for(&c, ups) {
                None => (ups_err, false),
                Some(_) => (
                    format!(
                        "CMDDESC {ups} {cmd} {}\n",
                        quoted("Description unavailable")
                    ),
                    false,
                ),
            },
            ["LIST", "UPS"] => {
                let mut s = "BEGIN LIST UPS\n".to_string();
                let mut seen = Vec::new();
                if let Some(peer) = c.peer {
                    for &r in self.by_address.get(&peer).map_or(&[][..], Vec::as_slice) {
                        if let Some(k) = &self.clients[r]
                            && !seen.contains(&k.ups)
                        {
                            let _ = writeln!(
                                s,
                                "UPS {} {}",
                                k.ups,
                                quoted(&format!("trapgate's view of UPS {}", view(r).ups_name))
                            );
                            seen.push(k.ups.clone());
                        }
                    }
                }
                s.push_str("END LIST UPS\n");
                (s, false)
            }
            ["LIST", "VAR", ups] => match self.recorder_for(&c, ups) {
                None => (ups_err, false),
                Some(r) => {
                    let mut s = format!("BEGIN LIST VAR {ups}\n");
                    for (k, value) in view(r).vars() {
                        let _ = writeln!(s, "VAR {ups} {k} {}", quoted(&value));
                    }
                    let _ = writeln!(s, "END LIST VAR {ups}");
                    (s, false)
                }
            },
            ["LIST", "CLIENT", ups] => match self.recorder_for(&c, ups) {
                None => (ups_err, false),
                Some(r) => {
                    let mut s = format!("BEGIN LIST CLIENT {ups}\n");
                    for k in self.conns.values() {
                        if k.login.as_ref().is_some_and(|(x, _)| *x == r)
                            && let Some(p) = k.peer
                        {
                            let _ = writeln!(s, "CLIENT {ups} {p}");
                        }
                    }
                    let _ = writeln!(s, "END LIST CLIENT {ups}");
                    (s, false)
                }
            },
            [
                "LIST",
                kind @ ("CMD" | "RW" | "ENUM" | "RANGE"),
                ups,
                rest @ ..,
            ] => match self.recorder_for(&c, ups) {
                None => (ups_err, false),
                Some(_) => {
                    let tail = rest.iter().map(|x| format!(" {x}")).collect::<String>();
                    (
                        format!("BEGIN LIST {kind} {ups}{tail}\nEND LIST {kind} {ups}{tail}\n"),
                        false,
                    )
                }
            },
            ["SET", ..] | ["INSTCMD", ..] => ("ERR ACCESS-DENIED\n".into(), false),
            ["GET", ..] | ["LIST", ..] => ("ERR INVALID-ARGUMENT\n".into(), false),
            _ => ("ERR UNKNOWN-COMMAND\n".into(), false),
        }
    }

    fn ups_known(&self, peer: Option<IpAddr>, ups: &str) -> bool {
        peer.and_then(|p| self.by_address.get(&p))
            .is_some_and(|rs| {
                rs.iter()
                    .any(|&r| self.clients[r].as_ref().is_some_and(|k| k.ups == ups))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> Site {
        let text = crate::engine::config::DEFAULT_SITE.replacen(
            "[[recorder]]\n",
            "[[recorder]]\nname = \"nas-1\"\naddress = \"192.168.61.30\"\nups = \"ups-main\"\ntier = 2\nshutdown_time = \"60s\"\nkind = \"nut\"\nnut_user = \"monuser\"\nnut_password = \"secret\"\nnut_ups = \"ups\"\n\n[[recorder]]\n",
            1,
        );
        Site::parse(&text).expect("valid")
    }

    fn view(forced: bool) -> impl Fn(RecorderId) -> NutView {
        move |_| NutView {
            on_battery: true,
            battery_low: false,
            forced,
            charge: Some(64),
            runtime: Some(900),
            ups_name: "ups-main".into(),
            mfr: "APC",
        }
    }

    fn at(ms: u64) -> crate::time::Timestamp {
        crate::time::Timestamp(1_000 * crate::time::ns::SECOND + ms * crate::time::ns::MILLI)
    }

    fn said(s: &mut NutServer, conn: ConnId, line: &str, forced: bool, now: u64) -> Reply {
        s.received(
            conn,
            format!("{line}\n").as_bytes(),
            at(now),
            &view(forced),
            &mut { usize::MAX },
        )
    }

    fn say(s: &mut NutServer, conn: ConnId, line: &str, forced: bool) -> String {
        String::from_utf8(said(s, conn, line, forced, 0).bytes).unwrap()
    }

    #[test]
    fn a_synology_style_client_logs_in_reads_its_status_and_logs_out_acknowledging_fsd() {
        let site = site();
        let nas = RecorderId::enumerate(&site.recorders)
            .find(|(_, r)| r.name == "nas-1")
            .map(|(i, _)| i)
            .unwrap();
        let mut s = NutServer::new(&site);
        assert_eq!(
            s.connected(1, "192.168.61.30".parse().unwrap()),
            Reply::default()
        );
        assert_eq!(
            say(&mut s, 1, "GET VAR ups ups.status", false),
            "VAR ups ups.status \"OB\"\n"
        );
        assert_eq!(say(&mut s, 1, "USERNAME monuser", false), "OK\n");
        assert_eq!(say(&mut s, 1, "PASSWORD secret", false), "OK\n");
        assert_eq!(say(&mut s, 1, "LOGIN ups", false), "OK\n");
        assert_eq!(
            say(&mut s, 1, "GET NUMLOGINS ups", false),
            "NUMLOGINS ups 1\n"
        );
        assert_eq!(say(&mut s, 1, "PRIMARY ups", false), "ERR ACCESS-DENIED\n");
        assert_eq!(say(&mut s, 1, "FSD ups", false), "ERR ACCESS-DENIED\n");
        assert_eq!(
            say(&mut s, 1, "GET VAR ups battery.charge", false),
            "VAR ups battery.charge \"64\"\n"
        );
        assert_eq!(
            say(&mut s, 1, "GET VAR ups nonsense", false),
            "ERR VAR-NOT-SUPPORTED\n"
        );
        assert_eq!(
            say(&mut s, 1, "GET VAR other ups.status", false),
            "ERR UNKNOWN-UPS\n"
        );
        assert_eq!(
            say(&mut s, 1, "STARTTLS", false),
            "ERR FEATURE-NOT-CONFIGURED\n"
        );
        assert_eq!(say(&mut s, 1, "FLY", false), "ERR UNKNOWN-COMMAND\n");
        // Ordered down: FSD, and the logout that follows acknowledges.
        assert_eq!(
            say(&mut s, 1, "GET VAR ups ups.status", true),
            "VAR ups ups.status \"FSD OB LB\"\n"
        );
        let r = said(&mut s, 1, "LOGOUT", true, 0);
        assert_eq!((r.bytes.as_slice(), r.close), (&b"OK Goodbye\n"[..], true));
        s.closed(1);
        let events: Vec<NutEvent> = std::iter::from_fn(|| s.poll_event()).collect();
        assert_eq!(
            events,
            [
                NutEvent::LoggedIn(nas),
                NutEvent::ShownFsd(nas),
                NutEvent::LeftAfterFsd(nas)
            ]
        );
    }

    #[test]
    fn strangers_wrong_passwords_and_long_lines_are_refused() {
        let mut s = NutServer::new(&site());
        let r = s.connected(2, "192.168.61.99".parse().unwrap());
        assert!(r.close && r.bytes == b"ERR ACCESS-DENIED\n");
        s.connected(3, "192.168.61.30".parse().unwrap());
        assert_eq!(
            say(&mut s, 3, "LOGIN ups", false),
            "ERR USERNAME-REQUIRED\n"
        );
        say(&mut s, 3, "USERNAME monuser", false);
        say(&mut s, 3, "PASSWORD guess", false);
        assert_eq!(say(&mut s, 3, "LOGIN ups", false), "ERR ACCESS-DENIED\n");
        s.connected(4, "192.168.61.30".parse().unwrap());
        let long = vec![b'A'; MAX_LINE + 10];
        let r = s.received(4, &long, at(0), &view(false), &mut { usize::MAX });
        assert!(r.close, "a line past the limit closes");
        assert_eq!(s.too_long, 1);
    }

    #[test]
    fn words_and_quotes_follow_the_protocol() {
        assert_eq!(
            words("GET VAR ups ups.status"),
            ["GET", "VAR", "ups", "ups.status"]
        );
        assert_eq!(
            words(r#"SET VAR ups x "a \"b\" c""#),
            ["SET", "VAR", "ups", "x", "a \"b\" c"]
        );
        assert_eq!(words(r#"USERNAME """#), ["USERNAME", ""]);
        assert_eq!(quoted(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
