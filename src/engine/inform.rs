//! Forwarded informs waiting for their answers, sans-IO: the forward thread
//! (`crate::daemon::forward`) keeps the sockets, `sendmmsg` and the queues; this keeps
//! which informs are out, under which request ids, when each goes again, and which
//! answer counts. Time goes in as a `Timestamp`, request ids come from the injected
//! `RequestIds` (the OS's CSPRNG live, a sequence in tests), so every retry, limit and
//! check runs on a virtual clock in the tests below.
//!
//! An inform is forwarded as an inform under a request id of trapgate's choosing,
//! re-sent every `INFORM_TIMEOUT_S` up to `INFORM_RETRIES` times as net-snmp does (1 s,
//! 5 retries), and taken as acknowledged only by a get-response from the target's
//! address and port, to that request id, with the target's community; anything else is
//! refused. At most `MAX_OUTSTANDING` informs wait per target address; one more is not
//! admitted (the caller counts it dropped).

use std::collections::HashMap;
use std::net::SocketAddr;

use bumpalo::Bump;

use crate::engine::poller::RequestIds;
use crate::time::Timestamp;
use crate::wire::{Message, Pdu, PduType};

/// How long a forwarded inform waits for its answer before it is sent again (s).
pub const INFORM_TIMEOUT_S: u32 = 1;
/// How many times it is sent again before it counts as unacknowledged.
pub const INFORM_RETRIES: u32 = 5;
/// Informs waiting for their answer, per target address, at most.
pub const MAX_OUTSTANDING: usize = 1024;

/// An inform sent and not yet answered: whom it is for (the caller's key for the
/// target: its counts), the target's community, its bytes (re-sent as they are).
struct Outstanding<K> {
    whom: K,
    community: Vec<u8>,
    bytes: Vec<u8>,
    due: Timestamp,
    retries: u32,
}

/// The informs out, of every target.
pub struct Informs<K> {
    outstanding: HashMap<(SocketAddr, i32), Outstanding<K>>,
    /// Outstanding informs per target address (admitted ones included).
    waiting: Vec<(SocketAddr, usize)>,
    ids: Box<dyn RequestIds>,
    /// Buffers of answered informs, for the next ones.
    spare: Vec<Vec<u8>>,
}

impl<K> core::fmt::Debug for Informs<K> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Informs")
            .field("outstanding", &self.outstanding.len())
            .finish()
    }
}

/// Why an answer on a forward socket was not believed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotAnswer {
    /// It does not decode.
    Malformed,
    /// Not a get-response.
    NotResponse,
    /// No inform of that request id is out to that address and port.
    Unknown,
    /// Not the target's community.
    WrongCommunity,
}

impl<K> Informs<K> {
    /// None out yet; request ids from `ids`.
    pub fn new(ids: Box<dyn RequestIds>) -> Informs<K> {
        Informs {
            outstanding: HashMap::new(),
            waiting: Vec::new(),
            ids,
            spare: Vec::new(),
        }
    }

    /// Informs out now.
    pub fn len(&self) -> usize {
        self.outstanding.len()
    }

    /// Whether none is out.
    pub fn is_empty(&self) -> bool {
        self.outstanding.is_empty()
    }

    /// A request id for a new inform to `to`, if it may have one more out (None: its
    /// `MAX_OUTSTANDING` are out, the inform is not forwarded to it). The caller
    /// encodes the inform under it, then says it left (`sent`).
    pub fn admit(&mut self, to: SocketAddr) -> Option<i32> {
        let waiting = slot(&mut self.waiting, to);
        if *waiting >= MAX_OUTSTANDING {
            return None;
        }
        *waiting += 1;
        Some(self.ids.next_id())
    }

    /// The inform admitted with `id` left for `to` at `now` as `bytes`, for `whom`,
    /// whose answers carry `community`.
    pub fn sent(
        &mut self,
        now: Timestamp,
        to: SocketAddr,
        id: i32,
        whom: K,
        community: &[u8],
        bytes: &[u8],
    ) {
        let mut kept = self.spare.pop().unwrap_or_default();
        kept.clear();
        kept.extend_from_slice(bytes);
        let mut c = self.spare.pop().unwrap_or_default();
        c.clear();
        c.extend_from_slice(community);
        self.outstanding.insert(
            (to, id),
            Outstanding {
                whom,
                community: c,
                bytes: kept,
                due: now.plus_secs(INFORM_TIMEOUT_S),
                retries: 0,
            },
        );
    }

    /// When `handle_timeout` must be called next.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.outstanding.values().map(|o| o.due).min()
    }

    /// Every inform due at `now` goes again (`resend`: where, its bytes, whom); one out
    /// of retries is given up (`gave_up`: whom, unacknowledged).
    pub fn handle_timeout(
        &mut self,
        now: Timestamp,
        mut resend: impl FnMut(SocketAddr, &[u8], &K),
        mut gave_up: impl FnMut(K),
    ) {
        let due: Vec<(SocketAddr, i32)> = self
            .outstanding
            .iter()
            .filter(|(_, o)| o.due <= now)
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            let Some(o) = self.outstanding.get_mut(&key) else {
                continue;
            };
            if o.retries >= INFORM_RETRIES {
                if let Some(o) = self.outstanding.remove(&key) {
                    self.done(key.0, o.bytes, o.community);
                    gave_up(o.whom);
                }
                continue;
            }
            o.retries += 1;
            o.due = now.plus_secs(INFORM_TIMEOUT_S);
            resend(key.0, &o.bytes, &o.whom);
        }
    }

    /// A datagram from `from` on a forward socket: the answer to an inform out (whom it
    /// was for: acknowledged), or why not.
    pub fn handle_answer(
        &mut self,
        from: SocketAddr,
        raw: &[u8],
        arena: &Bump,
    ) -> Result<K, NotAnswer> {
        let m = Message::parse(raw, arena).map_err(|_| NotAnswer::Malformed)?;
        let Pdu::Request(r) = m.pdu else {
            return Err(NotAnswer::NotResponse);
        };
        if r.kind != PduType::RESPONSE {
            return Err(NotAnswer::NotResponse);
        }
        let key = (from, r.request_id);
        let o = self.outstanding.get(&key).ok_or(NotAnswer::Unknown)?;
        if *m.community != *o.community {
            return Err(NotAnswer::WrongCommunity);
        }
        let o = self.outstanding.remove(&key).ok_or(NotAnswer::Unknown)?;
        self.done(from, o.bytes, o.community);
        Ok(o.whom)
    }

    /// An inform to `to` is no longer out: its buffers kept for the next ones.
    fn done(&mut self, to: SocketAddr, bytes: Vec<u8>, community: Vec<u8>) {
        if let Some((_, n)) = self.waiting.iter_mut().find(|(a, _)| *a == to) {
            *n = n.saturating_sub(1);
        }
        for b in [bytes, community] {
            if self.spare.len() < 512 {
                self.spare.push(b);
            }
        }
    }
}

/// The count of `to` in `counts`, made 0 if it had none (per-target counts: the
/// informs out here, the datagrams queued on the forward thread).
pub fn slot(counts: &mut Vec<(SocketAddr, usize)>, to: SocketAddr) -> &mut usize {
    let i = match counts.iter().position(|(a, _)| *a == to) {
        Some(i) => i,
        None => {
            counts.push((to, 0));
            counts.len() - 1
        }
    };
    &mut counts[i].1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::poller::Sequence;
    use crate::time::ns;
    use crate::wire::{Version, encode};

    fn t(ms: u64) -> Timestamp {
        Timestamp(1_000 * ns::SECOND + ms * 1_000_000)
    }

    fn nms() -> SocketAddr {
        "192.0.2.50:162".parse().unwrap()
    }

    /// A get-response from the target with `id` and `community`.
    fn response(id: i32, community: &[u8], kind: PduType) -> Vec<u8> {
        encode::to_vec(&Message::pdu(Version::V2c, community, kind, id, &[]))
    }

    #[test]
    fn an_inform_goes_again_every_second_five_times_then_is_given_up() {
        let mut informs: Informs<&str> = Informs::new(Box::new(Sequence(0)));
        let id = informs.admit(nms()).expect("room");
        informs.sent(t(0), nms(), id, "nms", b"public", b"the inform");
        assert_eq!(informs.poll_timeout(), Some(t(1000)));
        let (mut resent, mut given_up) = (Vec::new(), Vec::new());
        informs.handle_timeout(t(999), |_, _, _| resent.push(0), |w| given_up.push(w));
        assert!(resent.is_empty(), "not before its second");
        for s in 1..=6u64 {
            let now = t(s * 1000);
            informs.handle_timeout(
                now,
                |to, bytes, whom| {
                    assert_eq!((to, bytes, *whom), (nms(), &b"the inform"[..], "nms"));
                    resent.push(s)
                },
                |w| given_up.push(w),
            );
        }
        assert_eq!(resent, [1, 2, 3, 4, 5], "five retries, a second apart");
        assert_eq!(given_up, ["nms"], "then unacknowledged");
        assert!(informs.is_empty() && informs.poll_timeout().is_none());
        // Its room is back.
        assert!(informs.admit(nms()).is_some());
    }

    #[test]
    fn only_the_targets_answer_to_the_id_with_its_community_acknowledges() {
        let mut informs: Informs<u32> = Informs::new(Box::new(Sequence(41)));
        let id = informs.admit(nms()).expect("room");
        assert_eq!(id, 42, "from the injected source");
        informs.sent(t(0), nms(), id, 7, b"nms-community", b"x");
        let arena = Bump::new();
        let other_port: SocketAddr = "192.0.2.50:1162".parse().unwrap();
        for (from, raw, why) in [
            (nms(), b"\x30\x03garbage".to_vec(), NotAnswer::Malformed),
            (
                nms(),
                response(id, b"nms-community", PduType::INFORM_REQUEST),
                NotAnswer::NotResponse,
            ),
            (
                nms(),
                response(id + 1, b"nms-community", PduType::RESPONSE),
                NotAnswer::Unknown,
            ),
            (
                other_port,
                response(id, b"nms-community", PduType::RESPONSE),
                NotAnswer::Unknown,
            ),
            (
                nms(),
                response(id, b"public", PduType::RESPONSE),
                NotAnswer::WrongCommunity,
            ),
        ] {
            assert_eq!(informs.handle_answer(from, &raw, &arena), Err(why));
        }
        assert_eq!(informs.len(), 1, "no forgery took it");
        let right = response(id, b"nms-community", PduType::RESPONSE);
        assert_eq!(informs.handle_answer(nms(), &right, &arena), Ok(7));
        assert_eq!(
            informs.handle_answer(nms(), &right, &arena),
            Err(NotAnswer::Unknown),
            "a repeat of it counts once"
        );
        assert!(informs.is_empty());
    }

    #[test]
    fn at_most_max_outstanding_informs_wait_per_target() {
        let mut informs: Informs<()> = Informs::new(Box::new(Sequence(0)));
        let other: SocketAddr = "192.0.2.51:162".parse().unwrap();
        let mut ids = Vec::new();
        for _ in 0..MAX_OUTSTANDING {
            let id = informs.admit(nms()).expect("room");
            informs.sent(t(0), nms(), id, (), b"c", b"x");
            ids.push(id);
        }
        assert_eq!(informs.admit(nms()), None, "one more is not admitted");
        assert!(
            informs.admit(other).is_some(),
            "another target has its own room"
        );
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), MAX_OUTSTANDING, "a request id each");
        let arena = Bump::new();
        informs
            .handle_answer(nms(), &response(ids[0], b"c", PduType::RESPONSE), &arena)
            .expect("answered");
        assert!(informs.admit(nms()).is_some(), "an answer frees a place");
    }
}
