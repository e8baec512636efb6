//! Packet sources: the only I/O. Capture files (`replay`), the live UDP reactor (`udp`,
//! with the socket details in `socket`), the live clock (`clock`) and console
//! (`console`), and the header parsing every source shares (`frame`).

pub mod clock;
pub mod console;
pub mod frame;
pub mod replay;
pub mod socket;
pub mod udp;
