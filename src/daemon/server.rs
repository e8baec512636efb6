//! The live source's parts that are not the event loop (`crate::daemon`): start
//! errors, and what the gateway reports when it stops.

use std::io;
use std::net::SocketAddr;

use crate::engine::metrics::Stats;

/// Why the gateway could not start.
#[derive(Debug)]
pub enum StartError {
    /// A listen address could not be bound.
    Bind(SocketAddr, io::Error),
    /// The reactor or the signal handlers could not be set up.
    Setup(io::Error),
    /// The journal could not be opened or read.
    Journal(std::path::PathBuf, io::Error),
    /// The site's `[pair]` cannot be run on this host (the sentence says why).
    Pair(String),
}

impl core::fmt::Display for StartError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StartError::Bind(addr, e) => {
                let hint = match e.kind() {
                    io::ErrorKind::AddrInUse => {
                        " (is another trap receiver, such as snmptrapd, listening there?)"
                    }
                    io::ErrorKind::PermissionDenied => {
                        " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
                    }
                    _ => "",
                };
                write!(f, "cannot listen on {addr}: {e}{hint}")
            }
            StartError::Setup(e) => write!(f, "cannot set up the event loop: {e}"),
            StartError::Journal(p, e) => write!(f, "cannot use the journal {}: {e}", p.display()),
            StartError::Pair(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for StartError {}

/// What the gateway saw when it stopped.
#[derive(Clone, Debug)]
pub struct Stopped {
    /// Everything it counted and timed.
    pub stats: Stats,
    /// The signal that stopped it (0: its `Shutdown` handle).
    pub signal: i32,
}
