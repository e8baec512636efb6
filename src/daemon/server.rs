//! The live source's parts that are not the event loop (`crate::daemon`): the OS
//! clock, start errors, what the gateway reports when it stops, and the metrics server.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::engine::metrics::Stats;
use crate::time::Timestamp;

/// The time now, from the OS clock: only sources read it.
pub fn now() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp(d.as_nanos() as u64)
}

/// Why the gateway could not start.
#[derive(Debug)]
pub enum StartError {
    /// A listen address could not be bound.
    Bind(SocketAddr, io::Error),
    /// The reactor or the signal handlers could not be set up.
    Setup(io::Error),
    /// The journal could not be opened or read.
    Journal(std::path::PathBuf, io::Error),
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
        }
    }
}

impl std::error::Error for StartError {}

/// What the gateway saw when it stopped.
#[derive(Clone, Debug)]
pub struct Stopped {
    /// Everything it counted and timed.
    pub stats: Stats,
    /// The signal that stopped it.
    pub signal: i32,
}

/// Serves the latest metrics snapshot over HTTP (GET /metrics) on its own thread, so a
/// slow scraper never holds up the reactor; the reactor only swaps the snapshot in.
pub(crate) fn serve_metrics(listener: TcpListener, snapshot: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
            let mut request = [0u8; 2048];
            let mut got = 0;
            while got < request.len() {
                match stream.read(&mut request[got..]) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        got += n;
                        if request[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                }
            }
            let line = String::from_utf8_lossy(&request[..got]);
            let response = if line.starts_with("GET /metrics") || line.starts_with("GET / ") {
                let body = snapshot.lock().map(|s| s.clone()).unwrap_or_default();
                format!(
                    "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_string()
            };
            let _ = stream.write_all(response.as_bytes());
        }
    });
}
