//! Everything that decides, sans-IO: the site file checked into a `Site` (`config`),
//! what may move a decision (`trust`), the per-packet decode → classify path with its
//! counters (`pipeline`), the shutdown policy (`policy`), the UPS poller (`poller`),
//! the acknowledgement ledger (`ledger`), the virtual UPS (`agent`), and the latency
//! histograms and Prometheus text (`metrics`), and every record they write (`record`). Bytes, events and time go in; decisions,
//! datagrams to send and counts come out. Nothing here reads a clock or touches a
//! socket, a file or a thread.

pub mod agent;
pub mod config;
pub mod forward;
pub mod id;
pub mod inform;
pub mod ingress;
pub mod ledger;
pub mod metrics;
pub mod nis;
pub mod nut;
pub mod pair;
pub mod pipeline;
pub mod policy;
pub mod poller;
pub mod power;
pub mod record;
pub mod room;
pub mod station;
pub mod tally;
pub mod tell;
pub mod trust;
pub mod usm;
