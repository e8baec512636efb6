//! The UPS poller: asks each UPS for its output source, battery status, charge and
//! runtime at its `poll_interval`, with retries and timeouts, and matches the answers by
//! request id. Sans-IO: time goes in, requests to send and what the UPSes said come out.
//!
//! One poll per interval per UPS, whatever the number of recorders (they are answered
//! from the cache by the virtual UPS), plus an immediate poll when the policy wants a
//! shutdown trap confirmed. A UPS that lets a whole poll (every try) go unanswered is
//! reported silent once, and answering again once it does.

use std::collections::VecDeque;
use std::net::SocketAddr;

use crate::config::Site;
use crate::policy::{PollAnswer, Reading};
use crate::time::Timestamp;
use crate::wire::{Message, Oid, Pdu, PduType, Value, VarBind, Version, encode};

const NS: u64 = 1_000_000_000;
/// Tries per poll (the first and two retries), as net-snmp's default of retries.
pub const TRIES: u8 = 3;

/// What the poller has for the driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PollOutput {
    /// Send this get-request to the UPS.
    Send {
        /// The UPS.
        ups: usize,
        /// Where.
        to: SocketAddr,
        /// The encoded request.
        bytes: Vec<u8>,
    },
    /// The UPS answered.
    Answer {
        /// The UPS.
        ups: usize,
        /// What it said.
        answer: PollAnswer,
    },
    /// The UPS left a whole poll unanswered (first time since it last answered).
    Silent {
        /// The UPS.
        ups: usize,
    },
    /// The UPS answers again after being silent.
    Answering {
        /// The UPS.
        ups: usize,
    },
}

#[derive(Clone, Debug)]
struct Outstanding {
    id: i32,
    tries: u8,
    retry_at: Timestamp,
}

#[derive(Clone, Debug)]
struct UpsPoll {
    to: SocketAddr,
    community: Vec<u8>,
    /// What it is asked (`PollAnswer::polled`).
    objects: &'static [(&'static [u8], Reading)],
    interval: u64,
    next_due: Timestamp,
    outstanding: Option<Outstanding>,
    silent: bool,
}

/// The poller of a whole site.
#[derive(Debug)]
pub struct Poller {
    ups: Vec<UpsPoll>,
    try_timeout: u64,
    next_id: i32,
    out: VecDeque<PollOutput>,
    /// Requests sent, every try counted.
    pub sent: u64,
    /// Answers matched to a request.
    pub answered: u64,
    /// Responses from a UPS that matched no outstanding request (late or stray).
    pub unmatched: u64,
}

impl Poller {
    /// A poller for `site`; every UPS is polled first at `now`. Request ids start from
    /// the time, so that they differ between runs (agents dislike reused ids).
    pub fn new(site: &Site, now: Timestamp) -> Poller {
        // A poll, every try included, fits in the policy's poll timeout.
        let try_timeout = (site.policy.poll_timeout.0 as u64 * NS / TRIES as u64).max(NS / 2);
        Poller {
            ups: site
                .upses
                .iter()
                .map(|u| UpsPoll {
                    to: SocketAddr::new(u.address, u.port),
                    community: u.community.as_bytes().to_vec(),
                    objects: PollAnswer::polled(u.vendor),
                    interval: u.poll_interval.0.max(1) as u64 * NS,
                    next_due: now,
                    outstanding: None,
                    silent: false,
                })
                .collect(),
            try_timeout,
            next_id: (now.0 % 1_000_000) as i32 + 1,
            out: VecDeque::new(),
            sent: 0,
            answered: 0,
            unmatched: 0,
        }
    }

    /// Polls UPS `u` now (to confirm a shutdown trap), unless a poll is already out.
    pub fn poll_now(&mut self, now: Timestamp, u: usize) {
        if let Some(p) = self.ups.get_mut(u)
            && p.outstanding.is_none()
        {
            p.next_due = now;
        }
        self.handle_timeout(now);
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<PollOutput> {
        self.out.pop_front()
    }

    /// When `handle_timeout` must be called next.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.ups
            .iter()
            .map(|p| p.outstanding.as_ref().map_or(p.next_due, |o| o.retry_at))
            .min()
    }

    fn send(&mut self, u: usize, id: i32) {
        let p = &self.ups[u];
        let varbinds: Vec<VarBind<'_>> = p
            .objects
            .iter()
            .map(|(o, _)| VarBind {
                // The table's own constants: valid OIDs (a test decodes each).
                name: Oid::trusted(o),
                value: Value::Null,
            })
            .collect();
        let msg = Message::pdu(
            Version::V1,
            &p.community,
            PduType::GET_REQUEST,
            id,
            &varbinds,
        );
        let bytes = encode::to_vec(&msg);
        let to = p.to;
        self.sent += 1;
        self.out.push_back(PollOutput::Send { ups: u, to, bytes });
    }

    /// Sends what is due at `now`: new polls, retries; gives up on polls out of tries.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        for u in 0..self.ups.len() {
            let p = &mut self.ups[u];
            match &mut p.outstanding {
                Some(o) if o.retry_at <= now => {
                    if o.tries < TRIES {
                        o.tries += 1;
                        o.retry_at = Timestamp(now.0 + self.try_timeout);
                        let id = o.id;
                        self.send(u, id);
                    } else {
                        p.outstanding = None;
                        p.next_due = Timestamp(now.0 + p.interval);
                        if !p.silent {
                            p.silent = true;
                            self.out.push_back(PollOutput::Silent { ups: u });
                        }
                    }
                }
                Some(_) => {}
                None if p.next_due <= now => {
                    let id = self.next_id;
                    self.next_id = self.next_id.checked_add(1).unwrap_or(1);
                    p.outstanding = Some(Outstanding {
                        id,
                        tries: 1,
                        retry_at: Timestamp(now.0 + self.try_timeout),
                    });
                    self.send(u, id);
                }
                None => {}
            }
        }
    }

    /// A response from `from`; true when it answered one of our polls.
    pub fn handle_response(&mut self, now: Timestamp, from: SocketAddr, m: &Message<'_>) -> bool {
        let Pdu::Request(r) = &m.pdu else {
            return false;
        };
        if r.kind != PduType::RESPONSE {
            return false;
        }
        let Some(u) = self.ups.iter().position(|p| {
            p.to.ip() == from.ip() && p.outstanding.as_ref().is_some_and(|o| o.id == r.request_id)
        }) else {
            self.unmatched += 1;
            return false;
        };
        let p = &mut self.ups[u];
        p.outstanding = None;
        p.next_due = Timestamp(now.0 + p.interval);
        self.answered += 1;
        if p.silent {
            p.silent = false;
            self.out.push_back(PollOutput::Answering { ups: u });
        }
        let answer = if r.error_status == 0 {
            PollAnswer::from_varbinds(r.varbinds)
        } else {
            PollAnswer::default()
        };
        self.out.push_back(PollOutput::Answer { ups: u, answer });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Vendor;
    use crate::wire::oid::oid;
    use bumpalo::Bump;

    fn t(s: f64) -> Timestamp {
        Timestamp((1_000.0 * NS as f64 + s * NS as f64) as u64)
    }

    fn drain(p: &mut Poller) -> Vec<PollOutput> {
        core::iter::from_fn(|| p.poll_output()).collect()
    }

    fn sent_id(o: &PollOutput) -> i32 {
        let PollOutput::Send { bytes, .. } = o else {
            panic!("not a send: {o:?}")
        };
        let arena = Bump::new();
        let m = Message::parse(bytes, &arena).expect("our own request decodes");
        match m.pdu {
            Pdu::Request(r) => r.request_id,
            _ => panic!("not a request"),
        }
    }

    fn response(id: i32, charge: i64) -> Vec<u8> {
        let name = oid("1.3.6.1.4.1.318.1.1.1.2.2.1.0");
        let vb = [VarBind {
            name: name.as_oid(),
            value: Value::Gauge32(charge as u32),
        }];
        encode::to_vec(&Message::pdu(
            Version::V1,
            b"public",
            PduType::RESPONSE,
            id,
            &vb,
        ))
    }

    #[test]
    fn polls_each_interval_retries_and_matches_ids() {
        let site = Site::default_site();
        let ups: SocketAddr = "192.168.61.250:161".parse().unwrap();
        let mut p = Poller::new(&site, t(0.0));
        p.handle_timeout(t(0.0));
        let out = drain(&mut p);
        assert_eq!(out.len(), 1, "one poll at start: {out:?}");
        let id = sent_id(&out[0]);
        // Nothing more until the try times out (5 s / 3 tries).
        p.handle_timeout(t(1.0));
        assert!(drain(&mut p).is_empty());
        p.handle_timeout(t(1.7));
        let retry = drain(&mut p);
        assert_eq!(retry.len(), 1);
        assert_eq!(sent_id(&retry[0]), id, "a retry keeps the request id");
        // A response with another id is not ours; the right one is.
        let arena = Bump::new();
        let wrong = response(id + 7, 90);
        let m = Message::parse(&wrong, &arena).unwrap();
        assert!(!p.handle_response(t(1.8), ups, &m));
        let right = response(id, 90);
        let m = Message::parse(&right, &arena).unwrap();
        let other: SocketAddr = "192.168.61.251:161".parse().unwrap();
        assert!(
            !p.handle_response(t(1.8), other, &m),
            "right id, wrong host"
        );
        assert!(p.handle_response(t(1.8), ups, &m));
        let got = drain(&mut p);
        assert!(
            matches!(&got[..], [PollOutput::Answer { ups: 0, answer }] if answer.charge == Some(90)),
            "{got:?}"
        );
        // The next poll is due one interval (10 s) after the answer.
        assert_eq!(p.poll_timeout(), Some(t(11.8)));
        p.handle_timeout(t(11.8));
        let next = drain(&mut p);
        assert_eq!(next.len(), 1);
        assert_ne!(sent_id(&next[0]), id, "a new poll has a new request id");
    }

    /// Every object a poll asks for, answered, fills the whole answer: the poller and
    /// the policy read one table.
    #[test]
    fn what_a_poll_asks_for_is_what_the_policy_reads() {
        for vendor in [Vendor::Apc, Vendor::UpsMib, Vendor::Eaton] {
            let mut site = Site::default_site();
            site.upses[0].vendor = vendor;
            let mut p = Poller::new(&site, t(0.0));
            p.handle_timeout(t(0.0));
            let PollOutput::Send { bytes, .. } = &drain(&mut p)[0] else {
                panic!("a poll first")
            };
            let arena = Bump::new();
            // Decoding checks every OID the table gave the request.
            let m = Message::parse(bytes, &arena).expect("our own request decodes");
            let answered: Vec<VarBind<'_>> = m
                .varbinds()
                .iter()
                .map(|vb| VarBind {
                    name: vb.name,
                    value: Value::Integer(3),
                })
                .collect();
            let a = PollAnswer::from_varbinds(&answered);
            assert!(
                a.on_battery.is_some()
                    && a.battery_low.is_some()
                    && a.charge.is_some()
                    && a.runtime.is_some(),
                "{vendor:?}: {a:?}"
            );
        }
    }

    #[test]
    fn a_ups_that_stops_answering_is_reported_once_then_again_when_back() {
        let site = Site::default_site();
        let ups: SocketAddr = "192.168.61.250:161".parse().unwrap();
        let mut p = Poller::new(&site, t(0.0));
        let mut silent = 0;
        let mut sends = 0;
        let mut now = 0.0;
        while now < 60.0 {
            p.handle_timeout(t(now));
            for o in drain(&mut p) {
                match o {
                    PollOutput::Send { .. } => sends += 1,
                    PollOutput::Silent { .. } => silent += 1,
                    o => panic!("unexpected {o:?}"),
                }
            }
            now += 0.25;
        }
        assert_eq!(silent, 1, "silent is said once");
        // 3 tries every ~15 s (5 s of tries + 10 s interval) in 60 s.
        assert!((9..=15).contains(&sends), "{sends} requests in 60 s");
        p.poll_now(t(60.0), 0);
        let id = drain(&mut p)
            .iter()
            .map(sent_id)
            .next_back()
            .expect("a poll");
        let arena = Bump::new();
        let bytes = response(id, 80);
        let m = Message::parse(&bytes, &arena).unwrap();
        assert!(p.handle_response(t(60.1), ups, &m));
        let got = drain(&mut p);
        assert!(
            matches!(got[0], PollOutput::Answering { ups: 0 }),
            "{got:?}"
        );
    }
}
