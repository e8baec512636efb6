//! Packet sources: the only input I/O. For now, capture files (`replay`) and the
//! header parsing every source shares (`frame`).

pub mod frame;
pub mod replay;
