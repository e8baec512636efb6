//! The wire layer: BER and SNMP v1/v2c messages, sans-IO and zero-copy, and the
//! link / IP / UDP headers around them in a capture (`frame`).
//!
//! `Message::parse(bytes, &arena)` decodes a UDP payload into a borrowed `Message`: the
//! usual encoding in one pass over the packet (`shape`), anything else and every error
//! through the general BER reader (`ber`, `message`). `encode::encode` writes one.
//! Nothing here knows about sockets, files or clocks.

pub mod ber;
pub mod encode;
pub mod error;
pub mod frame;
pub mod hex;
pub mod message;
pub mod oid;
mod shape;
pub(crate) mod swar;
pub mod usm;
pub mod v3;
pub mod value;

pub use error::{Error, ErrorKind};
pub use message::{Message, NotificationOidBuf, Pdu, PduType, RequestPdu, TrapV1, Version};
pub use oid::{Oid, OidBuf};
pub use value::{Value, VarBind};
