//! The `trapgate` subcommands (`commands`), what they print (`report`: the packet list,
//! JSON lines, summaries), the demo (`demo`: the seed's story on loopback) and the manual
//! pages and completions (`manual`).

pub mod commands;
pub mod demo;
pub mod manual;
pub mod report;
