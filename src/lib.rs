//! trapgate: an SNMP trap gateway that keeps a video-surveillance site safe through a
//! power failure.
//!
//! Bytes come in from a socket or a capture (`source`), are decoded without copying into
//! borrowed SNMP messages (`wire`), classified by a compiled OID trie into normalized UPS
//! events (`classify`), and counted by reason when they are dropped (`pipeline`). The
//! wire layer and the classifier know nothing of sockets, files or clocks: time enters
//! as a parameter, which is what makes a capture replay deterministic.

#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod agent;
pub mod classify;
pub mod config;
pub mod demo;
pub mod exec;
pub mod gateway;
pub mod journal;
pub mod ledger;
pub mod metrics;
pub mod pipeline;
pub mod policy;
pub mod poller;
pub mod receive;
pub mod report;
pub mod source;
pub mod time;
pub mod trust;
pub mod wire;
