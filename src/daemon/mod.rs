//! The live gateway: everything that touches the OS. The receive workers
//! (`receive`) and the decision thread (`gateway`), the sockets and batch calls
//! (`socket`, the only unsafe code), the monotonic clock (`clock`), stdout and stderr
//! through bounded queues (`console`), exec recorders' commands (`exec`), the journal's
//! files (`journal`), systemd's notify protocol (`notify`), the HTTP endpoint (`http`: metrics, status), the stop summary, a pair's role and channel (`pair`) (`server`), and playing a
//! capture onto the network (`send`).

pub mod clock;
pub mod console;
pub mod exec;
pub mod forward;
pub mod gateway;
pub mod http;
pub mod hugepages;
pub mod journal;
pub mod notify;
pub mod nut;
pub mod pair;
pub mod probe;
pub mod random;
pub mod receive;
pub mod secrets;
pub mod send;
pub mod server;
pub mod socket;
pub mod tell;

pub use gateway::{Bound, Gateway, Options, Resumed, Shown, Shutdown, run, start};
