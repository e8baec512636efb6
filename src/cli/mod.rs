//! The `trapgate` subcommands (`commands`), what they print (`report`: the packet list,
//! JSON lines, summaries) and the demo (`demo`: the seed's story on loopback).

pub mod commands;
pub mod demo;
pub mod report;
