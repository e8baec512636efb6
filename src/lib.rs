//! trapgate: an SNMP trap gateway that keeps a video-surveillance site safe through a
//! power failure.
//!
//! The layers, each importing only those before it:
//!
//! - `wire`: the zero-copy SNMP v1/v2c decoder and encoder, and the link / IP / UDP
//!   headers around it (sans-IO);
//! - `classify`: the compiled OID trie that turns a trap into a UPS event;
//! - `engine`: everything that decides, sans-IO: the site, what to trust, the shutdown
//!   policy, the poller, the acknowledgement ledger, the virtual UPS, and the counters
//!   they keep; time enters as a parameter, which is what makes a replay deterministic;
//! - `capture`: pcap and pcapng files as a source, with their own timestamps as the
//!   clock;
//! - `daemon`: the only part that touches the OS for the live gateway: sockets, threads,
//!   clocks, the journal's files, commands, the console;
//! - `cli`: the `trapgate` subcommands' printing, and the demo.

#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod capture;
pub mod classify;
pub mod cli;
pub mod daemon;
pub mod engine;
#[doc(hidden)]
pub mod testing;
pub mod time;
pub mod wire;
