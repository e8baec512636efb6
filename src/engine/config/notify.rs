//! `[[notify]]`: the site's other systems told of every decision (`crate::engine::tell`).
//!
//! ```toml
//! [[notify]]
//! kind = "syslog"                 # syslog, webhook, milestone
//! to = "127.0.0.1:514"            # host:port (a webhook: url = "http://…")
//! transport = "udp"               # syslog: udp or tcp (RFC 6587 octet counting)
//! facility = "daemon"             # syslog: its facility
//! enterprise = 32473              # syslog: the structured data's SD-ID, trapgate@N
//! match = ["decisions", "alerts", "failures"]   # or "actions", "all", record kinds
//! severity = "debug"              # nothing less severe than this
//! ```

use toml_span::Deserialize;
use toml_span::Spanned;
use toml_span::value::Value;

use super::power::secret;
use super::usm::Secrets;
use super::{Mistakes, finish, int_in, optional, or_default, required, resolve, table, text};
use crate::engine::tell::{Kind, MATCH_WORDS, Severity, Target, TlsTrust, Transport, Wants};

/// The CAs a TLS target's certificate is checked against unless `ca_file` says (Debian's
/// ca-certificates).
pub const DEFAULT_CA: &str = "/etc/ssl/certs/ca-certificates.crt";

/// syslog's facilities by name (RFC 5424's numbers).
const FACILITIES: [(&str, u8); 20] = [
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

/// The record kinds `match` may name.
const KINDS: [&str; 25] = [
    "ShutdownRecorder",
    "CancelShutdown",
    "PresentCharge",
    "Poll",
    "PowerBack",
    "Acknowledged",
    "CycleOutlet",
    "Alert",
    "OutletSet",
    "OutletAnswered",
    "OutletReported",
    "OutletRead",
    "WakeSent",
    "Sent",
    "SendFailed",
    "WouldSend",
    "Presented",
    "NotAcknowledged",
    "Back",
    "NotBack",
    "CommandDone",
    "Started",
    "Reloaded",
    "Role",
    "NotTold",
];

/// One `[[notify]]`. Every key is read whatever the kind (so that an unknown key is
/// named with all the others); a key of another kind's is a mistake.
pub(super) fn target(v: &mut Value<'_>, secrets: Secrets<'_>, m: &mut Mistakes) -> Option<Target> {
    let at = v.span;
    let mut t = table(v, m)?;
    let kind_text = text(required(&mut t, "kind", m), m);
    let to_text = optional(&mut t, "to").and_then(|v| text(Some(v), m));
    let url_text = optional(&mut t, "url").and_then(|v| text(Some(v), m));
    let transport = optional(&mut t, "transport").map(|v| (v.span, v));
    let facility = optional(&mut t, "facility").map(|v| (v.span, v));
    let enterprise = optional(&mut t, "enterprise").map(|v| (v.span, v));
    let header = optional(&mut t, "header").and_then(|v| text(Some(v), m));
    // Some(None): not given; None: a mistake, noted.
    let token = secret(&mut t, ["token", "token_file", "token_env"], secrets, m);
    let prefix = optional(&mut t, "prefix").and_then(|v| text(Some(v), m));
    let client_id = optional(&mut t, "client_id").and_then(|v| text(Some(v), m));
    let user = optional(&mut t, "user").and_then(|v| text(Some(v), m));
    let password = secret(
        &mut t,
        ["password", "password_file", "password_env"],
        secrets,
        m,
    );
    let discovery = optional(&mut t, "discovery").map(|v| (v.span, v));
    let keep_alive = optional(&mut t, "keep_alive").map(|v| (v.span, v));
    let ca_file = optional(&mut t, "ca_file").and_then(|v| text(Some(v), m));
    let tls_flag = optional(&mut t, "tls").map(|v| (v.span, v));
    let protocol = optional(&mut t, "protocol").map(|v| (v.span, v));
    let server_name = optional(&mut t, "server_name").and_then(|v| text(Some(v), m));
    let wants = wants(&mut t, m);
    finish(t, m);
    let kind_text = kind_text?;
    let kind_name = kind_text.value.as_str();
    if !["syslog", "webhook", "milestone", "mqtt"].contains(&kind_name) {
        m.add(
            kind_text.span,
            format!("`{kind_name}` is not a kind of [[notify]] this trapgate has: syslog, webhook, milestone, mqtt"),
        );
        return None;
    }
    // Keys of another kind's.
    let syslog_only = [
        ("transport", transport.as_ref().map(|x| x.0)),
        ("facility", facility.as_ref().map(|x| x.0)),
        ("enterprise", enterprise.as_ref().map(|x| x.0)),
        ("server_name", server_name.as_ref().map(|x| x.span)),
    ];
    let webhook_only = [
        ("url", url_text.as_ref().map(|x| x.span)),
        ("header", header.as_ref().map(|x| x.span)),
    ];
    let mqtt_only = [
        ("prefix", prefix.as_ref().map(|x| x.span)),
        ("client_id", client_id.as_ref().map(|x| x.span)),
        ("user", user.as_ref().map(|x| x.span)),
        ("discovery", discovery.as_ref().map(|x| x.0)),
        ("keep_alive", keep_alive.as_ref().map(|x| x.0)),
        ("tls", tls_flag.as_ref().map(|x| x.0)),
        ("protocol", protocol.as_ref().map(|x| x.0)),
    ];

    let mut ok = true;
    if let Some(c) = &ca_file
        && kind_name == "milestone"
    {
        m.add(
            c.span,
            "`ca_file` is for a target over TLS (syslog, mqtt, an https webhook), not a milestone one",
        );
        ok = false;
    }
    if kind_name != "mqtt" && password.as_ref().is_some_and(Option::is_some) {
        m.add(
            at,
            format!("a password is for an mqtt target, not {} one", a(kind_name)),
        );
        ok = false;
    }
    for (keys, for_kind) in [
        (&syslog_only[..], "syslog"),
        (&webhook_only[..], "webhook"),
        (&mqtt_only[..], "mqtt"),
    ] {
        for (key, span) in keys {
            if let Some(span) = span
                && kind_name != for_kind
            {
                m.add(
                    *span,
                    format!(
                        "`{key}` is for {} target, not {} one",
                        a(for_kind),
                        a(kind_name)
                    ),
                );
                ok = false;
            }
        }
    }
    if kind_name != "webhook" && token.as_ref().is_some_and(Option::is_some) {
        m.add(
            at,
            format!("a token is for a webhook target, not {} one", a(kind_name)),
        );
        ok = false;
    }
    if kind_name == "webhook" && to_text.is_some() {
        m.add(at, "a webhook target takes `url`, not `to`");
        ok = false;
    }
    // Where: host:port, or a webhook's URL.
    let (to_text, to) = if kind_name == "webhook" {
        let Some(url) = url_text else {
            m.add(at, "missing key `url`");
            return None;
        };
        let hostport = url
            .value
            .strip_prefix("http://")
            .map(|r| (r, 80))
            .or_else(|| url.value.strip_prefix("https://").map(|r| (r, 443)))
            .map(|(rest, port)| {
                let host = rest.split('/').next().unwrap_or("");
                if host.contains(':') && !host.ends_with(']') {
                    host.to_string()
                } else {
                    format!("{host}:{port}")
                }
            });
        let Some(hostport) = hostport.filter(|h| !h.starts_with(':')) else {
            m.add(
                url.span,
                format!(
                    "`url` {:?} is not an http:// or https:// URL with a host",
                    url.value
                ),
            );
            return None;
        };
        let to = match resolve(&hostport, secrets) {
            Ok(a) => Some(a),
            Err(e) => {
                m.add(url.span, format!("`url` {:?}: {e}", url.value));
                None
            }
        };
        (url.value, to)
    } else {
        let Some(s) = to_text else {
            m.add(at, "missing key `to`");
            return None;
        };
        let to = match resolve(&s.value, secrets) {
            Ok(a) => Some(a),
            Err(e) => {
                m.add(s.span, e);
                None
            }
        };
        (s.value, to)
    };
    let kind = match kind_name {
        "syslog" => {
            let transport = or_default(transport.map(|x| x.1), Transport::Udp, |v| {
                super::one_of(
                    text(v, m),
                    &[
                        ("udp", Transport::Udp),
                        ("tcp", Transport::Tcp),
                        ("tls", Transport::Tls),
                    ],
                    m,
                )
            });
            let facility = or_default(facility.map(|x| x.1), 3, |v| {
                super::one_of(text(v, m), &FACILITIES, m)
            });
            let enterprise = or_default(enterprise.map(|x| x.1), 32473, |v| {
                int_in(v, "enterprise", (1, i64::from(u32::MAX)), m)
            });
            let transport = transport?;
            let tls = match transport {
                Transport::Tls => {
                    let ca = ca_file.map_or_else(|| DEFAULT_CA.to_string(), |c| c.value);
                    if !std::path::Path::new(&ca).is_file() {
                        m.add(
                            at,
                            format!("`ca_file` {ca:?}: no such file (the PEM file of the CAs the syslog server's certificate chains to)"),
                        );
                        return None;
                    }
                    // The name the server's certificate must carry: as written, else
                    // the host of `to`.
                    let host = host_of(&to_text);
                    Some(TlsTrust {
                        ca_file: ca,
                        server_name: server_name.map_or_else(|| host.to_string(), |n| n.value),
                    })
                }
                _ => {
                    for (key, given) in [
                        ("ca_file", ca_file.is_some()),
                        ("server_name", server_name.is_some()),
                    ] {
                        if given {
                            m.add(at, format!("`{key}` is for transport = \"tls\""));
                            return None;
                        }
                    }
                    None
                }
            };
            Some(Kind::Syslog {
                transport,
                facility: facility?,
                enterprise: enterprise?,
                tls,
            })
        }
        "webhook" => {
            let ca_file = match ca_file {
                Some(c) if !to_text.starts_with("https://") => {
                    m.add(c.span, "`ca_file` is for an https:// url");
                    return None;
                }
                Some(c) if !std::path::Path::new(&c.value).is_file() => {
                    m.add(c.span, format!("`ca_file` {:?}: no such file (the PEM file of the CAs the webhook's certificate chains to)", c.value));
                    return None;
                }
                c => c.map(|c| c.value),
            };
            match token {
                Some(None) => Some(Kind::Webhook {
                    url: to_text.clone(),
                    header: None,
                    ca_file,
                }),
                Some(Some(token)) => {
                    let (name, value) = match header {
                        Some(h) => (h.value, token),
                        None => ("Authorization".to_string(), format!("Bearer {token}")),
                    };
                    Some(Kind::Webhook {
                        url: to_text.clone(),
                        header: Some((name, value)),
                        ca_file,
                    })
                }
                None => None,
            }
        }
        "mqtt" => {
            let discovery = or_default(discovery.map(|x| x.1), false, |v| super::flag(v, m));
            let keep_alive = or_default(keep_alive.map(|x| x.1), super::Secs(30), |v| {
                super::duration(v, m)
            });
            let login = match (user, password) {
                (None, Some(None)) => Some(None),
                (Some(u), Some(Some(p))) => Some(Some((u.value, p))),
                (Some(u), Some(None)) => {
                    m.add(
                        u.span,
                        "`user` without a password (`password`, `password_file` or `password_env`)",
                    );
                    None
                }
                (None, Some(Some(_))) => {
                    m.add(at, "a password without `user`");
                    None
                }
                (_, None) => None,
            };
            let keep_alive = keep_alive.and_then(|k| {
                if (5..=65_535).contains(&k.0) {
                    Some(k.0)
                } else {
                    m.add(
                        at,
                        format!("`keep_alive` {} s is out of range (5 s to 65535 s)", k.0),
                    );
                    None
                }
            });
            let tls_on = or_default(tls_flag.map(|x| x.1), false, |v| super::flag(v, m));
            let tls = match tls_on {
                Some(true) => {
                    let ca = ca_file.map_or_else(|| DEFAULT_CA.to_string(), |c| c.value);
                    if !std::path::Path::new(&ca).is_file() {
                        m.add(at, format!("`ca_file` {ca:?}: no such file (the PEM file of the CAs the broker's certificate chains to)"));
                        return None;
                    }
                    Some(Some(TlsTrust {
                        ca_file: ca,
                        server_name: host_of(&to_text).to_string(),
                    }))
                }
                Some(false) if ca_file.is_some() => {
                    m.add(at, "`ca_file` is for tls = true");
                    None
                }
                Some(false) => Some(None),
                None => None,
            };
            let v5 = or_default(protocol.map(|x| x.1), false, |v| {
                super::one_of(text(v, m), &[("3.1.1", false), ("5", true)], m)
            });
            Some(Kind::Mqtt {
                v5: v5?,
                tls: tls?,
                prefix: prefix.map_or_else(|| "trapgate".to_string(), |p| p.value),
                client_id: client_id.map(|c| c.value).unwrap_or_default(),
                login: login?,
                discovery: discovery?,
                keep_alive: keep_alive?,
            })
        }
        _ => Some(Kind::Milestone),
    };
    if !ok {
        return None;
    }
    Some(Target {
        kind: kind?,
        to_text,
        to: to?,
        wants: wants?,
    })
}

/// The host of `host:port` (an IPv6 address without its brackets).
fn host_of(to: &str) -> &str {
    to.rsplit_once(':')
        .map_or(to, |(h, _)| h)
        .trim_matches(['[', ']'])
}

/// `kind` with its article: "a syslog", "an mqtt".
fn a(kind: &str) -> String {
    let article = if kind == "mqtt" { "an" } else { "a" };
    format!("{article} {kind}")
}

/// `match` and `severity`.
fn wants(t: &mut super::Tbl<'_>, m: &mut Mistakes) -> Option<Wants> {
    let mut w = Wants::default();
    if let Some(mut v) = optional(t, "match") {
        let list = match Vec::<Spanned<String>>::deserialize(&mut v) {
            Ok(list) if list.is_empty() => {
                m.add(v.span, "`match` is empty: this target would be told nothing (leave it out for decisions, alerts and failures)");
                return None;
            }
            Ok(list) => list,
            Err(e) => {
                m.absorb(e);
                return None;
            }
        };
        w.categories.clear();
        let mut ok = true;
        for s in list {
            match MATCH_WORDS.iter().find(|(n, _)| *n == s.value) {
                Some((_, Some(c))) => w.categories.push(*c),
                Some((_, None)) => {
                    for (_, c) in MATCH_WORDS.iter() {
                        w.categories.extend(c.iter().copied());
                    }
                }
                None if KINDS.contains(&s.value.as_str()) => w.kinds.push(s.value),
                None => {
                    m.add(
                        s.span,
                        format!(
                            "`{}` is not in what `match` takes: decisions, alerts, actions, failures, all, or a record kind ({})",
                            s.value,
                            KINDS.join(", ")
                        ),
                    );
                    ok = false;
                }
            }
        }
        if !ok {
            return None;
        }
    }
    if let Some(v) = optional(t, "severity") {
        let s = text(Some(v), m)?;
        match Severity::parse(&s.value) {
            Some(sev) => w.at_least = sev,
            None => {
                m.add(
                    s.span,
                    format!(
                        "`{}` is not a severity: emerg, alert, crit, err, warning, notice, info, debug",
                        s.value
                    ),
                );
                return None;
            }
        }
    }
    Some(w)
}
