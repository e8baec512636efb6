//! Every plain count of the gateway, named once. A `Counter` is an index into a
//! `Tallies` array; its metric name and help text are in one table below, as the
//! kernel's SNMP MIB counters are. The receive workers, the station, forwarding and the
//! decision thread each count into a `Tallies` of their own and add them up: a counter
//! cannot be missed in one of the lists, because there is one list.

/// Writes the `Counter` enum and its table: `Variant => "metric_name", "help";`. A
/// help of "" is a count `/metrics` shows another way (a label of `dropped`).
macro_rules! counters {
    ($($(#[$doc:meta])* $variant:ident => $name:literal, $help:literal;)*) => {
        /// A plain count (`Tallies` holds one of each).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Counter {
            $($(#[$doc])* $variant),*
        }

        impl Counter {
            /// Every counter, in `/metrics` order.
            pub const ALL: &'static [Counter] = &[$(Counter::$variant),*];

            /// Its metric name (after `trapgate_`, before `_total`).
            pub fn name(self) -> &'static str {
                match self {
                    $(Counter::$variant => $name),*
                }
            }

            /// What it counts, as `/metrics` says it; "" for one shown another way.
            pub fn help(self) -> &'static str {
                match self {
                    $(Counter::$variant => $help),*
                }
            }
        }
    };
}

counters! {
    /// Datagrams from addresses that are not the site's, dropped before decoding.
    Foreign => "source_not_in_site", "";
    /// Of those, the ones decoded all the same for a `[[forward]]` of anyone's.
    ForeignDecoded => "foreign_decoded", "";
    /// Datagrams cut by the receive buffer.
    Truncated => "datagram_truncated", "";
    /// Decisions made by the policy.
    Decisions => "decisions", "Decisions made by the policy";
    /// Requests the virtual UPS answered.
    AgentAnswers => "agent_answers", "Requests the virtual UPS answered";
    /// GetBulk answers cut to fewer repetitions.
    AgentTrimmed => "agent_trimmed", "GetBulk answers cut to fewer repetitions to stay within the maximum message size";
    /// Requests answered tooBig, or not at all.
    AgentTooBig => "agent_too_big", "Requests answered tooBig, or dropped because not even that fits";
    /// NUT command lines answered.
    NutLines => "nut_lines", "NUT command lines the NUT server answered";
    /// NUT connections closed for a line past the protocol's limit.
    NutTooLong => "nut_lines_too_long", "NUT connections closed for a line past the protocol's limit";
    /// apcupsd NIS status requests answered.
    NisRequests => "nis_requests", "apcupsd status requests the NIS server answered";
    /// Datagrams on the agent or poll socket that did not decode.
    MalformedElsewhere => "malformed_elsewhere", "Datagrams on the agent or poll socket that did not decode";
    /// Journal appends and fsyncs that failed.
    JournalErrors => "journal_errors", "Journal appends and fsyncs that failed (orders still go out)";
    /// Records not shown on stdout (nobody read it fast enough).
    StdoutDropped => "stdout_dropped", "Records not shown on stdout because it was not read fast enough";
    /// Lines not shown on stderr.
    StderrDropped => "stderr_dropped", "Lines not shown on stderr because it was not read fast enough";
    /// Orders sent (traps and commands), re-sends included.
    OrdersSent => "orders_sent", "Shutdown orders sent to recorders";
    /// Orders sent again to recorders that had not acknowledged.
    Resends => "resends", "Orders sent again, unacknowledged";
    /// Polls sent.
    PollsSent => "polls_sent", "Polls sent to UPSes";
    /// Answers that answered a poll.
    PollAnswers => "poll_answers", "Answers believed: from the UPS's address and port, to an outstanding request id, with its community and the objects asked";
    /// Datagrams the kernel refused to send.
    SendErrors => "send_errors", "Datagrams the kernel refused to send";
    /// Datagrams on the forward sockets not believed.
    ForwardRefused => "forward_refused", "Datagrams on the forward sockets not believed: not a target's answer to one of its outstanding informs";
    /// NUT logouts after FSD of a recorder that had acknowledged already.
    NutLogoutsAfterAck => "nut_logouts_after_acknowledgement", "NUT logouts after FSD of a recorder that had acknowledged already (counted, not journaled)";
    /// SETs to outlets' cards sent, every try counted.
    OutletSets => "outlet_sets", "SET requests sent to outlets' cards, every try counted";
    /// SETs refused (an error-status) or left unanswered.
    OutletSetsRefused => "outlet_sets_refused", "SET requests to outlets' cards refused (an error-status) or left unanswered";
    /// Wake-on-LAN magic packets sent.
    Wakes => "wakes", "Wake-on-LAN magic packets sent";
    /// Recorders heard from after they should have been down, their UPS on battery.
    NotShutDown => "recorders_not_shut_down", "Recorders heard from after they should have been down, their UPS still on battery (did_not_shut_down alerts)";
    /// v1 traps not forwarded again (they came back through another forwarder).
    ForwardLoops => "forward_loops", "v1 traps not forwarded again: the same one was forwarded within 30 s (it came back through another forwarder)";
    /// SNMPv3 Reports sent.
    UsmReports => "usm_reports", "SNMPv3 Reports sent: discovery, time synchronization, a wrong key or user (to the site's addresses only)";
    /// Batches the receive workers handed to the decision thread.
    WorkerBatches => "worker_batches", "Batches of what can move a decision (UPS events, acknowledgements, recorders heard) the receive workers handed to the decision thread; what the policy ignores is counted on the workers and never crosses";
    /// Times a worker woke the decision thread.
    WorkerWakeups => "worker_wakeups", "Times a receive worker woke the decision thread for its batches (at most once until the thread looks)";
    /// SNMPv3 Reports held back by the gateway's budget of them.
    UsmReportsHeld => "usm_reports_held", "SNMPv3 Reports not sent: the gateway's budget of them (64 a second after a burst) was spent";
}

/// One of each `Counter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tallies([u64; Counter::ALL.len()]);

impl Default for Tallies {
    fn default() -> Tallies {
        Tallies([0; Counter::ALL.len()])
    }
}

impl Tallies {
    /// Counter `c`'s value.
    pub fn get(&self, c: Counter) -> u64 {
        self.0[c as usize]
    }

    /// Counts `n` more of `c`.
    pub fn add(&mut self, c: Counter, n: u64) {
        let v = &mut self.0[c as usize];
        *v = v.saturating_add(n);
    }

    /// Counts one more of `c`.
    pub fn inc(&mut self, c: Counter) {
        self.add(c, 1);
    }

    /// Sets `c` (a count kept elsewhere, read in).
    pub fn set(&mut self, c: Counter, v: u64) {
        self.0[c as usize] = v;
    }

    /// Adds every count of `other`.
    pub fn sum(&mut self, other: &Tallies) {
        for (mine, theirs) in self.0.iter_mut().zip(&other.0) {
            *mine = mine.saturating_add(*theirs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_counter_is_named_once_and_adds_up() {
        let mut names: Vec<&str> = Counter::ALL.iter().map(|c| c.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Counter::ALL.len(), "a name written twice");
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i, "ALL in declaration order");
        }
        let mut a = Tallies::default();
        a.inc(Counter::Wakes);
        a.add(Counter::OrdersSent, 5);
        let mut b = Tallies::default();
        b.add(Counter::OrdersSent, 2);
        b.sum(&a);
        assert_eq!((b.get(Counter::OrdersSent), b.get(Counter::Wakes)), (7, 1));
        assert_eq!(b.get(Counter::Resends), 0);
    }
}
