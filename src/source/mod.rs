//! Packet sources: the only input I/O. Capture files (`replay`), the live UDP reactor
//! (`udp`, with the socket details in `socket`), and the header parsing every source
//! shares (`frame`).

pub mod frame;
pub mod replay;
pub mod socket;
pub mod udp;
