//! `[[usm_user]]`: SNMPv3 users in net-snmp's `createUser` vocabulary, and what a v3
//! UPS says of its user and level.
//!
//! A passphrase is given inline (`auth_passphrase`), in a file (`auth_passphrase_file`,
//! its first line) or in the environment (`auth_passphrase_env`); it is turned into the
//! user's key (RFC 3414's megabyte of hashing) once, here, and never kept, printed or
//! journaled: the site's `text`, which the journal keeps, has every inline passphrase
//! replaced by `REDACTED`.

use toml_span::Span;
use toml_span::value::Value;

use super::{Mistakes, Tbl, finish, optional, required, table, text};
use crate::wire::usm::{AuthProtocol, Key, PrivProtocol, password_to_key};
use crate::wire::v3::Level;

/// What an inline passphrase reads as in the text the journal keeps.
pub const REDACTED: &str = "(not journaled)";

/// The least length of a passphrase (net-snmp's, RFC 3414 §11.2's advice).
pub const MIN_PASSPHRASE: usize = 8;

/// What the site file names outside itself: a passphrase kept elsewhere, or the host
/// name of a forward target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretAt<'a> {
    /// A passphrase: the first line of this file.
    File(&'a str),
    /// A passphrase: this environment variable.
    Env(&'a str),
    /// A `[[forward]]`'s `host:port`, to resolve to one `address:port`.
    Host(&'a str),
}

/// Reads what the site file names outside itself (the daemon's and the command line's
/// reader reads files and the environment and resolves names; `Site::parse` does none
/// of it: the engine touches no file and no resolver).
pub type Secrets<'r> = &'r dyn Fn(SecretAt<'_>) -> Result<String, String>;

/// A reader of no outside passphrase.
pub fn no_secrets(at: SecretAt<'_>) -> Result<String, String> {
    Err(match at {
        SecretAt::File(_) => {
            "a passphrase file is read only by `trapgate run` and `check-config`".into()
        }
        SecretAt::Env(_) => {
            "a passphrase from the environment is read only by `trapgate run` and `check-config`"
                .into()
        }
        SecretAt::Host(_) => {
            "a host name is resolved only by `trapgate run` and `check-config`: write an address"
                .into()
        }
    })
}

/// One SNMPv3 user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsmUser {
    /// Its name (msgUserName).
    pub name: String,
    /// Its authentication protocol and key (Ku, from its passphrase).
    pub auth: Option<(AuthProtocol, Key)>,
    /// Its privacy protocol and key (Ku of its privacy passphrase, with the
    /// authentication protocol's hash).
    pub privacy: Option<(PrivProtocol, Key)>,
    /// The only engine it is for, if given.
    pub engine_id: Option<Vec<u8>>,
}

impl UsmUser {
    /// The highest level this user can meet.
    pub fn level(&self) -> Level {
        match (&self.auth, &self.privacy) {
            (Some(_), Some(_)) => Level::AuthPriv,
            (Some(_), None) => Level::AuthNoPriv,
            _ => Level::NoAuthNoPriv,
        }
    }
}

/// What a v3 UPS's traps must come with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V3Access {
    /// Its user's name (a `[[usm_user]]`).
    pub user: String,
    /// The least level accepted.
    pub level: Level,
}

/// An engine ID written as hex (`0x8000000001020304`, or without `0x`): 5 to 32 bytes
/// (RFC 3411's SnmpEngineID).
pub fn engine_id(s: &str) -> Option<Vec<u8>> {
    let h = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if !h.len().is_multiple_of(2) || !(10..=64).contains(&h.len()) {
        return None;
    }
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(h.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A passphrase: inline, from a file or from the environment (exactly one), at least
/// `MIN_PASSPHRASE` characters; the span of an inline one is kept for redaction.
fn passphrase(
    t: &mut Tbl<'_>,
    what: &str,
    keys: [&'static str; 3],
    at: Span,
    secrets: Secrets<'_>,
    m: &mut Mistakes,
) -> Option<String> {
    let given: Vec<(&str, Option<toml_span::Spanned<String>>)> = keys
        .iter()
        .filter_map(|k| optional(t, k).map(|v| (*k, text(Some(v), m))))
        .collect();
    let (key, value) = match given.as_slice() {
        [] => {
            m.add(
                at,
                format!(
                    "{what} needs a passphrase: `{}`, `{}` or `{}`",
                    keys[0], keys[1], keys[2]
                ),
            );
            return None;
        }
        [(key, value)] => (*key, value.clone()?),
        [.., (key, value)] => {
            let span = value.as_ref().map_or(at, |v| v.span);
            m.add(
                span,
                format!(
                    "`{key}`: give one of `{}`, `{}` and `{}`, not several",
                    keys[0], keys[1], keys[2]
                ),
            );
            return None;
        }
    };
    let pass = if key == keys[0] {
        m.secret_spans.push(value.span);
        value.value.clone()
    } else {
        let source = if key == keys[1] {
            SecretAt::File(&value.value)
        } else {
            SecretAt::Env(&value.value)
        };
        match secrets(source) {
            Ok(p) => p,
            Err(why) => {
                m.add(value.span, format!("`{key}` = \"{}\": {why}", value.value));
                return None;
            }
        }
    };
    // A redacted text (a journal's) is read with its stand-in, long enough.
    if pass.chars().count() < MIN_PASSPHRASE {
        m.add(
            value.span,
            format!("{what}'s passphrase is shorter than {MIN_PASSPHRASE} characters (net-snmp refuses it too)"),
        );
        return None;
    }
    Some(pass)
}

/// One `[[usm_user]]`, and where its name is.
pub(super) fn user(
    v: &mut Value<'_>,
    secrets: Secrets<'_>,
    m: &mut Mistakes,
) -> Option<(Span, UsmUser)> {
    let at = v.span;
    let mut t = table(v, m)?;
    let name = text(required(&mut t, "name", m), m);
    let auth_name = optional(&mut t, "auth_protocol").and_then(|v| text(Some(v), m));
    let priv_name = optional(&mut t, "priv_protocol").and_then(|v| text(Some(v), m));
    let engine = optional(&mut t, "engine_id").and_then(|v| text(Some(v), m));
    let mut ok = true;
    let auth_protocol = auth_name.as_ref().and_then(|s| {
        let p = AuthProtocol::parse(&s.value);
        if p.is_none() {
            let all: Vec<&str> = AuthProtocol::ALL.iter().map(|p| p.name()).collect();
            m.add(
                s.span,
                format!(
                    "`{}` is not an authentication protocol: {}",
                    s.value,
                    all.join(", ")
                ),
            );
            ok = false;
        }
        p
    });
    let priv_protocol = priv_name.as_ref().and_then(|s| {
        let p = PrivProtocol::parse(&s.value);
        if p.is_none() {
            let all: Vec<&str> = PrivProtocol::ALL.iter().map(|p| p.name()).collect();
            m.add(
                s.span,
                format!(
                    "`{}` is not a privacy protocol: {}",
                    s.value,
                    all.join(", ")
                ),
            );
            ok = false;
        }
        p
    });
    let who = name
        .as_ref()
        .map_or("this user".to_string(), |n| format!("user `{}`", n.value));
    let auth = match auth_protocol {
        Some(p) => passphrase(
            &mut t,
            &format!("{who}'s authentication"),
            [
                "auth_passphrase",
                "auth_passphrase_file",
                "auth_passphrase_env",
            ],
            at,
            secrets,
            m,
        )
        .map(|pass| (p, password_to_key(p, pass.as_bytes()))),
        None => None,
    };
    let privacy = match (priv_protocol, auth_protocol) {
        (Some(p), Some(a)) => passphrase(
            &mut t,
            &format!("{who}'s privacy"),
            [
                "priv_passphrase",
                "priv_passphrase_file",
                "priv_passphrase_env",
            ],
            at,
            secrets,
            m,
        )
        .map(|pass| (p, password_to_key(a, pass.as_bytes()))),
        (Some(_), None) if auth_name.is_none() => {
            let span = priv_name.as_ref().map_or(at, |s| s.span);
            m.add(
                span,
                format!("{who} has a privacy protocol but no `auth_protocol`: USM encrypts only authenticated messages"),
            );
            ok = false;
            None
        }
        _ => None,
    };
    let engine_id = match &engine {
        Some(s) => match engine_id(&s.value) {
            Some(id) => Some(id),
            None => {
                m.add(
                    s.span,
                    format!(
                        "`{}` is not an engine ID: 5 to 32 bytes in hex, as \"0x8000000001020304\"",
                        s.value
                    ),
                );
                ok = false;
                None
            }
        },
        None => None,
    };
    finish(t, m);
    let name = name?;
    if !ok
        || (auth_protocol.is_some() && auth.is_none())
        || (priv_protocol.is_some() && privacy.is_none())
    {
        return None;
    }
    Some((
        name.span,
        UsmUser {
            name: name.value,
            auth,
            privacy,
            engine_id,
        },
    ))
}

/// A UPS's or recorder's (`what`) `version`, `user` and `security_level`: None for a
/// community one (version "1" or "2c", the default), else its v3 access. `users` are the
/// site's, by name.
pub(super) fn access(
    t: &mut Tbl<'_>,
    at: Span,
    users: &[(Span, UsmUser)],
    what: &str,
    m: &mut Mistakes,
) -> Option<Option<V3Access>> {
    let version = optional(t, "version").and_then(|v| text(Some(v), m));
    let user = optional(t, "user").and_then(|v| text(Some(v), m));
    let level = optional(t, "security_level").and_then(|v| text(Some(v), m));
    let v3 = match version.as_ref().map(|v| v.value.as_str()) {
        None | Some("1") | Some("2c") => false,
        Some("3") => true,
        Some(other) => {
            let span = version.as_ref().map_or(at, |v| v.span);
            m.add(
                span,
                format!("`{other}` is not an SNMP version: \"1\", \"2c\" or \"3\""),
            );
            return None;
        }
    };
    if !v3 {
        for (key, given) in [("user", &user), ("security_level", &level)] {
            if let Some(s) = given {
                m.add(
                    s.span,
                    format!(
                        "`{key}` is for a {what} of version \"3\": add `version = \"3\"`, or remove it"
                    ),
                );
            }
        }
        return Some(None);
    }
    let Some(user) = user else {
        m.add(
            at,
            format!("a {what} of version \"3\" needs `user` (a [[usm_user]]'s name)"),
        );
        return None;
    };
    let level_at = level.as_ref().map_or(user.span, |s| s.span);
    let level = match &level {
        None => Level::AuthPriv,
        Some(s) => match Level::parse(&s.value) {
            Some(l) => l,
            None => {
                m.add(
                    s.span,
                    format!(
                        "`{}` is not a security level: noAuthNoPriv, authNoPriv or authPriv",
                        s.value
                    ),
                );
                return None;
            }
        },
    };
    let Some((_, u)) = users.iter().find(|(_, u)| u.name == user.value) else {
        m.add(
            user.span,
            format!("user `{}` is not defined in any [[usm_user]]", user.value),
        );
        return None;
    };
    if u.level() < level {
        m.add(
            level_at,
            format!(
                "user `{}` can meet only {}, but this {what} asks for {}",
                u.name,
                u.level().name(),
                level.name()
            ),
        );
        return None;
    }
    Some(Some(V3Access {
        user: user.value,
        level,
    }))
}

/// `text` with every span in `spans` (inline passphrases, quotes included) replaced by
/// `REDACTED` in quotes.
pub(super) fn redact(text: &str, spans: &mut [Span]) -> String {
    spans.sort_by_key(|s| s.start);
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for s in spans.iter() {
        let (start, end) = (s.start, s.end);
        if start < at || end > text.len() {
            continue;
        }
        out.push_str(&text[at..start]);
        // A span of a string value may or may not hold its quotes.
        let quoted = text[start..end].starts_with(['"', '\'']);
        if quoted {
            out.push('"');
            out.push_str(REDACTED);
            out.push('"');
        } else {
            out.push_str(REDACTED);
        }
        at = end;
    }
    out.push_str(&text[at..]);
    out
}
