//! Two gateways, one site: `[pair]`.
//!
//! ```toml
//! [pair]
//! self = "192.0.2.1:1620"        # this gateway's pair endpoint
//! peer = "192.0.2.2:1620"        # the other gateway's
//! address = "192.0.2.100"        # the address keepalived moves between them
//! key_file = "/etc/trapgate/pair.key"   # the pair channel's shared secret (first line)
//! ```
//!
//! Both gateways read the same file: each takes as its own whichever of `self` and `peer`
//! is an address of its host (`Pair::oriented`).

use std::net::{IpAddr, SocketAddr};

use toml_span::Span;
use toml_span::value::Value;

use super::usm::{SecretAt, Secrets};
use super::{Mistakes, finish, parse_as, required, table, text};

/// The least length of the pair's key (its first line), in bytes.
pub const MIN_PAIR_KEY: usize = 16;

/// The pair channel's shared secret: never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct PairKey(pub std::sync::Arc<[u8]>);

impl core::fmt::Debug for PairKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("PairKey(..)")
    }
}

/// The site's pair of gateways.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pair {
    /// This gateway's pair endpoint, as written (`self`).
    pub this: SocketAddr,
    /// The other's (`peer`).
    pub peer: SocketAddr,
    /// The address keepalived moves: the recorders' "UPS IP", held by the actor.
    pub address: IpAddr,
    /// Where the key was read from.
    pub key_file: String,
    /// The key.
    pub key: PairKey,
}

impl Pair {
    /// `self` and `peer` as this host sees them: as written when `self` is one of
    /// `local`'s addresses, swapped when `peer` is; an error naming both when neither is.
    pub fn oriented(&self, local: &[IpAddr]) -> Result<(SocketAddr, SocketAddr), String> {
        if local.contains(&self.this.ip()) {
            Ok((self.this, self.peer))
        } else if local.contains(&self.peer.ip()) {
            Ok((self.peer, self.this))
        } else {
            Err(format!(
                "[pair]: neither self ({}) nor peer ({}) is an address of this host: each gateway of the pair runs on one of them",
                self.this.ip(),
                self.peer.ip()
            ))
        }
    }
}

/// Reads `[pair]`.
pub(super) fn pair(v: &mut Value<'_>, secrets: Secrets<'_>, m: &mut Mistakes) -> Option<Pair> {
    let at = v.span;
    let mut t = table(v, m)?;
    let endpoint = "an address:port (e.g. \"192.0.2.1:1620\")";
    let this = text(required(&mut t, "self", m), m);
    let this_span = this.as_ref().map_or(at, |s| s.span);
    let this: Option<SocketAddr> = parse_as(this, endpoint, m);
    let peer = text(required(&mut t, "peer", m), m);
    let peer_span = peer.as_ref().map_or(at, |s| s.span);
    let peer: Option<SocketAddr> = parse_as(peer, endpoint, m);
    let address = text(required(&mut t, "address", m), m);
    let address_span = address.as_ref().map_or(at, |s| s.span);
    let address: Option<IpAddr> = parse_as(address, "an IP address (e.g. \"192.0.2.100\")", m);
    let key_file = text(required(&mut t, "key_file", m), m);
    finish(t, m);
    let key = key_file.as_ref().and_then(|f| {
        match secrets(SecretAt::File(&f.value)) {
            Ok(k) if k.len() >= MIN_PAIR_KEY => Some(PairKey(k.into_bytes().into())),
            Ok(k) => {
                m.add(
                    f.span,
                    format!(
                        "`key_file` = \"{}\": its first line has {} bytes; the pair's key needs at least {MIN_PAIR_KEY} (e.g. `head -c 32 /dev/urandom | base64 > {}`)",
                        f.value,
                        k.len(),
                        f.value
                    ),
                );
                None
            }
            Err(why) => {
                m.add(f.span, format!("`key_file` = \"{}\": {why}", f.value));
                None
            }
        }
    });
    let (this, peer, address) = (this?, peer?, address?);
    let mut ok = true;
    let mut wrong = |span: Span, text: String| {
        m.add(span, text);
        ok = false;
    };
    if this.ip() == peer.ip() {
        wrong(
            peer_span,
            format!(
                "[pair] peer {peer} is on the same address as self: the two gateways run on two hosts"
            ),
        );
    }
    for (end, span, name) in [(this, this_span, "self"), (peer, peer_span, "peer")] {
        if end.port() == 0 {
            wrong(
                span,
                format!(
                    "[pair] {name} {end} has port 0: give the port the pair channel listens on"
                ),
            );
        }
        if end.ip().is_unspecified() {
            wrong(
                span,
                format!("[pair] {name} {end} is not one host's address"),
            );
        }
        if end.ip() == address {
            wrong(
                address_span,
                format!(
                    "[pair] address {address} is {name}'s own: the address that moves must be a third one, that neither host has of its own"
                ),
            );
        }
        if end.is_ipv4() != address.is_ipv4() {
            wrong(
                span,
                format!("[pair] {name} {end} and address {address} are of two address families"),
            );
        }
    }
    if address.is_unspecified() {
        wrong(
            address_span,
            "[pair] address must be one address (the recorders' \"UPS IP\")".into(),
        );
    }
    if !ok {
        return None;
    }
    Some(Pair {
        this,
        peer,
        address,
        key_file: key_file.map(|f| f.value).unwrap_or_default(),
        key: key?,
    })
}

/// Where the gateway's doors for the recorders must listen in a pair: on `address` (or
/// every address, which trapgate narrows to it). Each mistake names its key.
pub(super) fn check_doors(
    pair: &Pair,
    doors: &[(&str, Option<SocketAddr>)],
    at: Span,
    m: &mut Mistakes,
) {
    for (key, door) in doors {
        if let Some(d) = door
            && !d.ip().is_unspecified()
            && d.ip() != pair.address
        {
            m.add(
                at,
                format!(
                    "[gateway] {key} = \"{d}\" is not on the pair's address {}: the recorders' \"UPS IP\" moves with the actor, and so must what answers them (write \"{}\" or \"{}\")",
                    pair.address,
                    SocketAddr::new(pair.address, d.port()),
                    SocketAddr::new(
                        if d.is_ipv4() {
                            IpAddr::from([0, 0, 0, 0])
                        } else {
                            IpAddr::from([0u16; 8])
                        },
                        d.port()
                    )
                ),
            );
        }
    }
}
