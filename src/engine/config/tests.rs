use super::*;
use crate::wire::usm::AuthProtocol;
use crate::wire::v3::Level;

#[test]
fn the_default_site_is_the_seeds() {
    let site = Site::default_site();
    assert_eq!(site.upses.len(), 1);
    let ups = &site.upses[0];
    assert_eq!(ups.address, "192.168.61.250".parse::<IpAddr>().unwrap());
    assert_eq!(
        (ups.vendor, ups.outlet_off_delay, ups.restart),
        (Vendor::Apc, Secs(180), Restart::Auto)
    );
    let addrs: Vec<String> = site
        .recorders
        .iter()
        .map(|r| r.address.to_string())
        .collect();
    assert_eq!(addrs, ["192.168.61.244", "192.168.61.251"]);
    assert!(
        site.recorders
            .iter()
            .all(|r| r.ups == UpsId(0) && r.port == 162 && r.kind == RecorderKind::TrapRelay)
    );
    assert_eq!(site.policy.grace.get(&1), Some(&Secs(600)));
    assert_eq!(site.policy.shutdown_below_runtime, Secs(300));
    assert_eq!(
        site.gateway.listen,
        vec!["0.0.0.0:162".parse::<SocketAddr>().unwrap()]
    );
}

const BROKEN: &str = r#"[gateway]
listen = ["0.0.0.0:162", "nowhere:162"]
colour = "blue"

[policy]
grace = { 1 = "10m", zero = 5 }
shutdown_below_charge = 130
shutdown_below_runtime = "5 fortnights"

[[ups]]
name = "ups-a"
address = "192.168.61.300"
vendor = "apc"
outlet_off_delay = "3m"

[[ups]]
name = "ups-a"
address = "10.0.0.1"
vendor = "acme"
outlet_off_delay = 180

[[recorder]]
name = "nvr-1"
address = "10.0.0.10"
ups = "ups-z"
tier = 1
shutdown_time = "90s"

[[recorder]]
name = "nvr-1"
address = "10.0.0.11"
ups = "ups-a"
tier = 3
shutdown_time = "90s"
kind = "exec"

[[rule]]
oid = "1.3.6.1.4.1.99999.0.x"
event = "Meltdown"
name = "bad"
"#;

#[test]
fn every_mistake_is_reported_with_its_line_and_column() {
    let errors = Site::parse(BROKEN).unwrap_err();
    let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    // Columns point at the value itself (inside its quotes) or at the key.
    let expect = [
        "2:27: `nowhere:162` is not an address:port",
        "3:1: unknown key `colour` (expected one of: listen, agent, community, exec_timeout, workers, max_message_size, nut, nis, http, engine_id)",
        "6:22: grace tier `zero` must be a number from 1 to 255",
        "7:25: `shutdown_below_charge` = 130 is out of range (0 to 100)",
        "8:27: `5 fortnights` is not a duration",
        "12:12: `192.168.61.300` is not an IP address",
        "17:9: duplicate UPS name `ups-a`",
        "19:11: `acme` is not one of: apc, ups-mib",
        "25:8: UPS `ups-z` is not defined in any [[ups]]",
        "29:1: a recorder of kind \"exec\" needs a `command`",
        "30:9: duplicate recorder name `nvr-1`",
        "33:8: tier 3 has no grace time in [policy] grace",
        "38:8: `1.3.6.1.4.1.99999.0.x` is not an OID",
        "39:10: `Meltdown` is not one of: OnBattery",
    ];
    for want in expect {
        assert!(
            shown.iter().any(|s| s.starts_with(want)),
            "missing {want:?} in:\n{}",
            shown.join("\n")
        );
    }
    assert_eq!(shown.len(), expect.len(), "{}", shown.join("\n"));
}

#[test]
fn addresses_that_cannot_be_told_apart_are_mistakes() {
    let text = DEFAULT_SITE.to_string()
        + r#"
[[recorder]]
name = "nvr-on-the-ups"
address = "192.168.61.250"
ups = "ups-main"
tier = 1
shutdown_time = "90s"

[[recorder]]
name = "nvr-twin"
address = "192.168.61.251"
ups = "ups-main"
tier = 1
shutdown_time = "90s"
"#;
    let errors = Site::parse(&text).unwrap_err();
    let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(shown.len(), 2, "{shown:#?}");
    assert!(
        shown[0].starts_with("53:12: recorder `nvr-on-the-ups` has the address of UPS `ups-main`"),
        "{shown:#?}"
    );
    assert!(
        shown[1]
            .starts_with("60:12: recorder `nvr-twin` has the same address as recorder `nvr-251`"),
        "{shown:#?}"
    );
}

#[test]
fn a_recorder_has_the_gateways_community_unless_it_says_its_own() {
    let text = DEFAULT_SITE
        .replace(
            "community = \"public\"\n\n[policy]",
            "community = \"site-secret\"\n\n[policy]",
        )
        .replace(
            "name = \"nvr-251\"",
            "name = \"nvr-251\"\ncommunity = \"nvr-251-own\"",
        );
    let site = Site::parse(&text).expect("valid");
    assert_eq!(site.gateway.community, "site-secret");
    assert_eq!(site.recorders[0].community, "site-secret");
    assert_eq!(site.recorders[1].community, "nvr-251-own");
    assert_eq!(site.gateway.max_message_size, 1472);
    let small = DEFAULT_SITE.replace(
        "community = \"public\"\n\n[policy]",
        "community = \"public\"\nmax_message_size = 100\n\n[policy]",
    );
    let errors = Site::parse(&small).unwrap_err();
    assert!(
        errors[0]
            .message
            .contains("`max_message_size` = 100 is out of range (484 to 65507)"),
        "{errors:?}"
    );
}

#[test]
fn syntax_errors_have_a_position_too() {
    // The inline table is never closed: the parser finds out at the end of the file.
    let errors = Site::parse("[policy]\ngrace = { 1 = 5 \n").unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!((errors[0].line, errors[0].column), (3, 1), "{}", errors[0]);
    let errors = Site::parse("[policy\n").unwrap_err();
    assert_eq!(errors[0].line, 1, "{}", errors[0]);
}

#[test]
fn durations() {
    let mut m = Mistakes {
        found: Vec::new(),
        secret_spans: Vec::new(),
    };
    for (text, want) in [
        ("90", Some(90)),
        ("\"90s\"", Some(90)),
        ("\"5m\"", Some(300)),
        ("\"1h\"", Some(3600)),
        ("\"-3s\"", None),
        ("\"3 days\"", None),
        ("-1", None),
    ] {
        let doc = format!("d = {text}");
        let mut v = toml_span::parse(&doc).unwrap();
        let mut t = table(&mut v, &mut m).unwrap();
        assert_eq!(
            duration(optional(&mut t, "d"), &mut m).map(|s| s.0),
            want,
            "{text}"
        );
    }
}

#[test]
fn extra_rules_and_exec_recorders() {
    let text = format!(
        "{DEFAULT_SITE}\n[[recorder]]\nname = \"vms\"\naddress = \"::1\"\nups = \"ups-main\"\ntier = 1\nshutdown_time = 120\nkind = \"exec\"\ncommand = \"ssh vms poweroff\"\n\n[[rule]]\noid = \"1.3.6.1.4.1.99999\"\nevent = \"OnBattery\"\nname = \"siteOnBattery\"\nprefix = true\n"
    );
    let site = Site::parse(&text).unwrap();
    assert_eq!(
        site.recorders[2].kind,
        RecorderKind::Exec("ssh vms poweroff".into())
    );
    assert_eq!(site.rules.len(), 1);
    assert_eq!(site.rules[0].event, Ev::Is(Event::OnBattery));
    assert!(site.rules[0].prefix);
}

#[test]
fn site_rules_replace_builtins_and_must_be_distinct() {
    let text = format!(
        "{DEFAULT_SITE}\n[[rule]]\noid = \"1.3.6.1.4.1.318.0.5\"\nevent = \"Informational\"\nname = \"siteIgnoresOnBattery\"\n"
    );
    let site = Site::parse(&text).unwrap();
    let c = site.classifier();
    let o = crate::wire::oid::oid("1.3.6.1.4.1.318.0.5");
    let got = c.classify(o.as_oid(), &[]);
    assert_eq!(got.event, Event::Informational);
    assert_eq!(c.rule(got.rule.unwrap()).name, "siteIgnoresOnBattery");
    let twice = format!(
        "{text}\n[[rule]]\noid = \"1.3.6.1.4.1.318.0.5\"\nevent = \"OnBattery\"\nname = \"again\"\n"
    );
    let errors = Site::parse(&twice).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].message.contains("same oid 1.3.6.1.4.1.318.0.5"),
        "{}",
        errors[0]
    );
}

#[test]
fn warnings_for_outlet_delay_and_runtime() {
    assert!(
        Site::default_site().warnings().is_empty(),
        "{:?}",
        Site::default_site().warnings()
    );
    let tight = DEFAULT_SITE
        .replace("outlet_off_delay = \"3m\"", "outlet_off_delay = \"60s\"")
        .replace("runtime = \"20m\"", "runtime = \"11m\"");
    let w = Site::parse(&tight).unwrap().warnings();
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(w[0].contains("cuts its outlets 60 s after its shutdown starts, but recorder `nvr-244` needs 90 s to shut down plus up to 5 s"), "{}", w[0]);
    assert!(w[1].contains("lasts 660 s on battery, but tier 1 shuts down after 600 s of grace and `nvr-251` needs 90 s more"), "{}", w[1]);
}

/// The seed's site with its UPS on SNMPv3 (`ups`' extra lines) and `users` before it.
fn v3_site(users: &str, ups: &str) -> String {
    DEFAULT_SITE.replacen("[[ups]]\n", &format!("{users}\n[[ups]]\n{ups}\n"), 1)
}

const USER: &str = r#"[[usm_user]]
name = "upsv3user"
auth_protocol = "SHA"
auth_passphrase = "authpass123"
priv_protocol = "AES"
priv_passphrase = "privpass123"
"#;

#[test]
fn a_v3_ups_names_its_user_and_level_and_no_passphrase_stays_in_the_text() {
    let text = v3_site(
        USER,
        "version = \"3\"\nuser = \"upsv3user\"\nsecurity_level = \"authNoPriv\"",
    );
    let site = Site::parse(&text).expect("valid");
    let u = &site.usm_users[0];
    assert_eq!(u.name, "upsv3user");
    assert_eq!(u.level(), Level::AuthPriv);
    assert_eq!(u.auth.as_ref().map(|(p, _)| *p), Some(AuthProtocol::Sha1));
    assert_eq!(
        u.auth.as_ref().map(|(_, k)| k.clone()),
        Some(crate::wire::usm::password_to_key(
            AuthProtocol::Sha1,
            b"authpass123"
        ))
    );
    assert_eq!(
        site.upses[0].v3,
        Some(V3Access {
            user: "upsv3user".into(),
            level: Level::AuthNoPriv
        })
    );
    // What the journal keeps: no passphrase, and it still reads.
    assert!(!site.text.contains("authpass123") && !site.text.contains("privpass123"));
    assert!(site.text.contains(REDACTED));
    let again = Site::parse(&site.text).expect("the journal's text reads");
    assert_eq!(again.upses[0].v3, site.upses[0].v3);
    assert_eq!(again.text, site.text);
    // The default level is authPriv, and a community UPS has none.
    let text = v3_site(USER, "version = \"3\"\nuser = \"upsv3user\"");
    assert_eq!(
        Site::parse(&text).unwrap().upses[0]
            .v3
            .as_ref()
            .map(|a| a.level),
        Some(Level::AuthPriv)
    );
    assert_eq!(Site::default_site().upses[0].v3, None);
}

fn mistakes(text: &str) -> Vec<String> {
    match Site::parse(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(errors) => errors.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn every_wrong_user_and_v3_ups_is_a_mistake_with_its_line_and_column() {
    let users = r#"[[usm_user]]
name = "bad-proto"
auth_protocol = "SHA-3"
auth_passphrase = "authpass123"

[[usm_user]]
name = "short"
auth_protocol = "MD5"
auth_passphrase = "tiny12"

[[usm_user]]
name = "priv-only"
priv_protocol = "AES"
priv_passphrase = "privpass123"

[[usm_user]]
name = "no-pass"
auth_protocol = "SHA-256"

[[usm_user]]
name = "bad-engine"
engine_id = "0x12"

[[usm_user]]
name = "auth-only"
auth_protocol = "SHA-512"
auth_passphrase = "authpass123"
"#;
    let text = v3_site(users, "version = \"3\"\nuser = \"auth-only\"");
    let found = mistakes(&text);
    let expect = [
        "`SHA-3` is not an authentication protocol: MD5, SHA, SHA-224, SHA-256, SHA-384, SHA-512",
        "user `short`'s authentication's passphrase is shorter than 8 characters",
        "user `priv-only` has a privacy protocol but no `auth_protocol`",
        "user `no-pass`'s authentication needs a passphrase",
        "`0x12` is not an engine ID",
        "user `auth-only` can meet only authNoPriv, but this UPS asks for authPriv",
    ];
    for e in expect {
        assert!(
            found.iter().any(|f| f.contains(e)),
            "no `{e}` in {found:#?}"
        );
    }
    assert!(
        found.iter().all(|f| !f.contains("tiny12")),
        "a passphrase is never in a message: {found:#?}"
    );
    // Each with its line: the short passphrase is on line 12 of the file.
    let short = found.iter().find(|f| f.contains("`short`")).unwrap();
    let line = text.lines().position(|l| l.contains("tiny12")).unwrap() + 1;
    assert!(short.starts_with(&format!("{line}:")), "{short}");

    let found = mistakes(&v3_site(USER, "version = \"3\"\nuser = \"nobody\""));
    assert!(
        found[0].contains("user `nobody` is not defined in any [[usm_user]]"),
        "{found:?}"
    );
    let found = mistakes(&v3_site(USER, "user = \"upsv3user\""));
    assert!(
        found[0].contains("`user` is for a UPS of version \"3\""),
        "{found:?}"
    );
    let found = mistakes(&v3_site(USER, "version = \"4\""));
    assert!(found[0].contains("`4` is not an SNMP version"), "{found:?}");
    let found = mistakes(&v3_site(
        USER,
        "version = \"3\"\nuser = \"upsv3user\"\nsecurity_level = \"authpriv-ish\"",
    ));
    assert!(found[0].contains("is not a security level"), "{found:?}");
    let twice = format!("{USER}\n{USER}");
    let found = mistakes(&v3_site(&twice, ""));
    assert!(
        found[0].contains("duplicate [[usm_user]] `upsv3user`"),
        "{found:?}"
    );
    let both = USER.replace(
        "auth_passphrase = \"authpass123\"",
        "auth_passphrase = \"authpass123\"\nauth_passphrase_env = \"UPS_AUTH\"",
    );
    let found = mistakes(&v3_site(&both, ""));
    assert!(found[0].contains("not several"), "{found:?}");
}

#[test]
fn passphrases_come_from_a_file_or_the_environment_through_the_reader_given() {
    let kept = USER
        .replace(
            "auth_passphrase = \"authpass123\"",
            "auth_passphrase_file = \"/etc/trapgate/ups.auth\"",
        )
        .replace(
            "priv_passphrase = \"privpass123\"",
            "priv_passphrase_env = \"UPS_PRIV\"",
        );
    let text = v3_site(&kept, "version = \"3\"\nuser = \"upsv3user\"");
    let found = mistakes(&text);
    assert!(
        found.iter().any(|f| f.contains(
            "`auth_passphrase_file` = \"/etc/trapgate/ups.auth\": a passphrase file is read only by"
        )),
        "{found:#?}"
    );
    let secrets = |at: SecretAt<'_>| match at {
        SecretAt::File("/etc/trapgate/ups.auth") => Ok("authpass123".to_string()),
        SecretAt::Env("UPS_PRIV") => Ok("privpass123".to_string()),
        other => Err(format!("no {other:?}")),
    };
    let site = Site::parse_with(&text, &secrets).expect("valid");
    let inline = Site::parse(&v3_site(USER, "version = \"3\"\nuser = \"upsv3user\"")).unwrap();
    assert_eq!(site.usm_users, inline.usm_users, "the same keys");
    assert_eq!(*site.text, *text, "nothing inline to redact");
}

#[test]
fn nut_recorders_need_their_login_and_stay_apart_by_user_behind_one_address() {
    let nut = |name: &str, user: &str, extra: &str| {
        format!(
            "[[recorder]]\nname = \"{name}\"\naddress = \"192.168.61.30\"\nups = \"ups-main\"\ntier = 1\nshutdown_time = \"60s\"\nkind = \"nut\"\nnut_user = \"{user}\"\n{extra}\n"
        )
    };
    let with = |recorders: &str| {
        DEFAULT_SITE.replacen("[[recorder]]\n", &format!("{recorders}[[recorder]]\n"), 1)
    };
    let two = nut(
        "nas-1",
        "monuser",
        "nut_password = \"secret\"\nnut_ups = \"ups\"",
    ) + &nut("srv-1", "upsmon1", "nut_password = \"pass1word\"");
    let site = Site::parse(&with(&two)).expect("two NUT clients behind one address");
    let srv = site.recorders.iter().find(|r| r.name == "srv-1").unwrap();
    assert_eq!(
        srv.kind,
        RecorderKind::Nut {
            user: "upsmon1".into(),
            password: "pass1word".into(),
            ups: "ups-main".into()
        },
        "the UPS name defaults to its UPS's"
    );
    let same = nut("nas-1", "monuser", "nut_password = \"secret\"")
        + &nut("nas-2", "monuser", "nut_password = \"other1\"");
    let found = mistakes(&with(&same));
    assert!(
        found
            .iter()
            .any(|f| f.contains("same address and NUT user")),
        "{found:?}"
    );
    let found = mistakes(&with(&nut("nas-1", "monuser", "")));
    assert!(
        found
            .iter()
            .any(|f| f.contains("needs `nut_user` and `nut_password`")),
        "{found:?}"
    );
    let relay = DEFAULT_SITE.replacen("tier = 2\n", "tier = 2\nnut_user = \"x\"\n", 1);
    let found = mistakes(&relay);
    assert!(
        found
            .iter()
            .any(|f| f.contains("are for recorders of kind \"nut\"")),
        "{found:?}"
    );
}

#[test]
fn every_feed_of_a_dual_fed_recorder_must_cover_its_shutdown() {
    let text = std::fs::read_to_string("captures/story-dual-feed.site.toml").unwrap();
    let site = Site::parse(&text).unwrap();
    assert!(site.warnings().is_empty(), "{:?}", site.warnings());
    // ups-b feeds nvr-dual second; if it is the last to give out, it must still cover
    // the recorder's 90 s.
    let short = text.replacen(
        "address = \"192.168.61.249\"\nvendor = \"apc\"\noutlet_off_delay = \"3m\"",
        "address = \"192.168.61.249\"\nvendor = \"apc\"\noutlet_off_delay = \"60s\"\nruntime = \"11m\"",
        1,
    );
    assert_ne!(short, text);
    let w = Site::parse(&short).unwrap().warnings();
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(
        w[0].contains("UPS `ups-b` cuts its outlets 60 s after its shutdown starts, but recorder `nvr-dual` needs 90 s"),
        "{}",
        w[0]
    );
    assert!(
        w[1].contains("UPS `ups-b` lasts 660 s on battery, but tier 1 shuts down after 600 s of grace and `nvr-dual` needs 90 s more"),
        "{}",
        w[1]
    );
}

#[test]
fn forward_targets_are_read_and_their_mistakes_named_where_they_are() {
    use crate::engine::forward::{ForwardVersion, Match, Sources};
    use crate::wire::oid::oid;
    let good = format!(
        "{DEFAULT_SITE}\n[[forward]]\nto = \"127.0.0.1:1162\"\n\n[[forward]]\nto = \"[::1]:162\"\nmatch = [\".1.3.6.1.4.1.318*\", \"1.3.6.1.6.3.1.1.5.*\", \"default\"]\nversion = \"2c\"\ncommunity = \"nms\"\nsources = \"any\"\n"
    );
    let site = Site::parse(&good).expect("valid");
    let t = site.forwarding.targets();
    assert_eq!(t.len(), 2);
    assert_eq!(t[0].to, "127.0.0.1:1162".parse().unwrap());
    assert_eq!(t[0].matches, [Match::Default]);
    assert_eq!(
        (t[0].version, t[0].community.as_str(), t[0].sources),
        (ForwardVersion::AsReceived, "public", Sources::Site)
    );
    assert_eq!(
        t[1].matches,
        [
            Match::Subtree(oid("1.3.6.1.4.1.318")),
            Match::Below(oid("1.3.6.1.6.3.1.1.5")),
            Match::Default
        ]
    );
    assert_eq!(
        (t[1].version, t[1].sources),
        (ForwardVersion::V2c, Sources::Any)
    );
    // Where forwards leave from: an address of the target's family.
    let from = |to: &str, source: &str| {
        Site::parse(&format!(
            "{DEFAULT_SITE}\n[[forward]]\nto = \"{to}\"\nsource = \"{source}\"\n"
        ))
        .map(|s| s.forwarding.targets()[0].source)
        .map_err(|e| e[0].message.clone())
    };
    assert_eq!(
        from("192.0.2.9:162", "127.0.0.1"),
        Ok(Some("127.0.0.1".parse().unwrap()))
    );
    assert!(
        from("192.0.2.9:162", "::1")
            .unwrap_err()
            .contains("not of the family of `to`")
    );
    assert!(
        from("192.0.2.9:162", "0.0.0.0")
            .unwrap_err()
            .contains("not a wildcard")
    );
    assert!(
        from("192.0.2.9:162", "nms")
            .unwrap_err()
            .contains("is not an IP address")
    );
    assert_eq!(t[0].source, None, "the gateway's listen address by default");
    let bad = format!(
        "{DEFAULT_SITE}\n[[forward]]\nto = \"nms-without-port\"\nmatch = [\"1.3.x*\"]\nversion = \"3\"\nsources = \"everyone\"\nhops = 2\n\n[[forward]]\nmatch = []\n"
    );
    let lines = DEFAULT_SITE.lines().count();
    let shown: Vec<String> = Site::parse(&bad)
        .unwrap_err()
        .iter()
        .map(|e| e.to_string())
        .collect();
    for (line, want) in [
        (3, "`nms-without-port` has no port"),
        (4, "`1.3.x*` is not an OID, OID*, OID.*, * or default"),
        (5, "`3` is not one of: as-received, 2c"),
        (6, "`everyone` is not one of: site, any"),
        (
            7,
            "unknown key `hops` (expected one of: to, match, version, community, sources, source)",
        ),
        (9, "missing key `to`"),
        (10, "`match` is empty"),
    ] {
        let at = format!("{}:", lines + line);
        assert!(
            shown.iter().any(|s| s.starts_with(&at) && s.contains(want)),
            "missing {at} {want:?} in:\n{}",
            shown.join("\n")
        );
    }
}

#[test]
fn a_forward_targets_name_is_resolved_outside_the_engine() {
    let text = format!("{DEFAULT_SITE}\n[[forward]]\nto = \"nms.example:162\"\n");
    // `Site::parse` looks nothing up: the name is refused, with where it is.
    let errors = Site::parse(&text).unwrap_err();
    assert!(
        errors.iter().any(|e| e
            .message
            .starts_with("`nms.example:162` cannot be resolved: a host name is resolved only by")),
        "{errors:?}"
    );
    // The reader given resolves it.
    let asked = std::cell::RefCell::new(Vec::new());
    let resolver = |at: SecretAt<'_>| match at {
        SecretAt::Host(h) => {
            asked.borrow_mut().push(h.to_string());
            Ok("192.0.2.9:162".to_string())
        }
        _ => Err("no".to_string()),
    };
    let site = Site::parse_with(&text, &resolver).expect("valid");
    assert_eq!(*asked.borrow(), ["nms.example:162"]);
    let t = &site.forwarding.targets()[0];
    assert_eq!(
        (t.to_text.as_str(), t.to),
        ("nms.example:162", "192.0.2.9:162".parse().unwrap())
    );
    // A literal address is never asked for.
    asked.borrow_mut().clear();
    Site::parse_with(&text.replace("nms.example", "127.0.0.1"), &resolver).expect("valid");
    assert!(asked.borrow().is_empty());
}

#[test]
fn outlets_pdus_write_access_and_wake_on_lan_are_read_and_checked() {
    use crate::engine::id::PduId;
    let good = DEFAULT_SITE
        .replace(
            "restart = \"auto\"",
            "restart = \"auto\"\nwrite_community = \"private-rw\"",
        )
        .replace(
            "kind = \"trap-relay\"",
            "kind = \"trap-relay\"\noutlet = { ups = \"ups-main\", group = 2 }\nwol = \"00:11:22:aa:bb:cc\"",
        )
        + "\n[[pdu]]\nname = \"pdu-a\"\naddress = \"192.0.2.40\"\nvendor = \"apc-rpdu2\"\nwrite_community = \"pdu-rw\"\n\n\
           [[recorder]]\nname = \"nvr-9\"\naddress = \"192.0.2.9\"\nups = \"ups-main\"\ntier = 1\nshutdown_time = \"60s\"\n\
           outlet = { pdu = \"pdu-a\", outlet = 7 }\nwol = \"00-11-22-33-44-55\"\nwol_to = \"192.0.2.255:9\"\n";
    let site = Site::parse(&good).expect("valid");
    assert_eq!(
        site.upses[0].write,
        Some(Write::Community {
            community: "private-rw".into(),
            v2c: false
        })
    );
    assert_eq!(
        site.recorders[0].outlet,
        Some(Plug::Group {
            ups: UpsId(0),
            group: 2
        })
    );
    assert_eq!(
        site.recorders[0].wol,
        Some(Wol {
            mac: [0, 0x11, 0x22, 0xaa, 0xbb, 0xcc],
            to: WOL_BROADCAST
        })
    );
    assert_eq!(
        site.recorders[2].outlet,
        Some(Plug::PduOutlet {
            pdu: PduId(0),
            outlet: 7
        })
    );
    assert_eq!(site.pdus[0].vendor, PduVendor::ApcRpdu2);
    assert_eq!(
        site.recorders[2].wol.map(|w| w.to),
        Some("192.0.2.255:9".parse().unwrap())
    );
    // The write communities are kept out of the text the journal keeps.
    assert!(!site.text.contains("private-rw") && !site.text.contains("pdu-rw"));

    let mistakes = |text: &str| -> Vec<String> {
        Site::parse(text)
            .unwrap_err()
            .iter()
            .map(|e| e.message.clone())
            .collect()
    };
    let said = mistakes(&good.replace("vendor = \"apc\"", "vendor = \"ups-mib\""));
    assert!(
        said.iter()
            .any(|m| m.contains("has no outlet groups trapgate can command")),
        "{said:?}"
    );
    let said = mistakes(&good.replace("write_community = \"private-rw\"\n", ""));
    assert!(
        said.iter()
            .any(|m| m.contains("trapgate may not write to this UPS's card")),
        "{said:?}"
    );
    let said = mistakes(&good.replace("pdu = \"pdu-a\"", "pdu = \"pdu-b\""));
    assert!(
        said.iter()
            .any(|m| m.contains("PDU `pdu-b` is not defined")),
        "{said:?}"
    );
    let said = mistakes(&good.replace(", outlet = 7", ""));
    assert!(
        said.iter()
            .any(|m| m.contains("a PDU's outlet needs its number")),
        "{said:?}"
    );
    let said = mistakes(&good.replace("00-11-22-33-44-55", "00-11-22-33-44"));
    assert!(
        said.iter().any(|m| m.contains("is not a MAC address")),
        "{said:?}"
    );
    let said = mistakes(&good.replace(
        "write_community = \"pdu-rw\"",
        "write_community = \"pdu-rw\"\nwrite_user = \"x\"",
    ));
    assert!(said.iter().any(|m| m.contains("not both")), "{said:?}");
    let said = mistakes(&good.replace("write_community = \"pdu-rw\"\n", ""));
    assert!(
        said.iter().any(|m| m.contains("give it `write_community`")),
        "{said:?}"
    );
    // An outlet of a UPS that does not feed the recorder.
    let other = good.replace(
        "outlet = { pdu = \"pdu-a\", outlet = 7 }",
        "outlet = { ups = \"ups-b\" }",
    ) + "\n[[ups]]\nname = \"ups-b\"\naddress = \"192.0.2.99\"\nvendor = \"eaton\"\noutlet_off_delay = \"3m\"\nwrite_community = \"rw\"\n";
    let said = mistakes(&other);
    assert!(
        said.iter()
            .any(|m| m.contains("the outlet's UPS does not feed this recorder")),
        "{said:?}"
    );
    // The seed's two recorders, of tiers 1 and 2, share group 2: read, and the engineer
    // told that the cycle waits for the tier shed last.
    let said = site.warnings();
    assert!(
        said.iter().any(
            |w| w.contains("outlet `ups-main/group 2` feeds recorders of tiers 1, 2")
                && w.contains("only once tier 1 is shed too")
                && w.contains(&format!("`{}` (tier 2)", site.recorders[0].name))
        ),
        "{said:?}"
    );
    let own = good.replacen(
        "outlet = { ups = \"ups-main\", group = 2 }",
        "outlet = { ups = \"ups-main\", group = 1 }",
        1,
    );
    let said = Site::parse(&own).expect("valid").warnings();
    assert!(said.is_empty(), "an outlet a tier of its own: {said:?}");
}

#[test]
fn an_outlet_off_delay_left_out_is_the_cards_where_trapgate_reads_it() {
    // APC: read from the card; until then the slowest shutdown of what the UPS feeds,
    // and no warning against it (the card's value is held against that when read).
    let apc = DEFAULT_SITE
        .replace("outlet_off_delay = \"3m\"", "")
        .replace("shutdown_time = \"90s\"", "shutdown_time = \"4m\"");
    let site = Site::parse(&apc).expect("valid");
    assert!(site.upses[0].off_delay_from_card);
    assert_eq!(site.upses[0].outlet_off_delay, Secs(240));
    assert!(
        !site
            .warnings()
            .iter()
            .any(|w| w.contains("lose power mid-write")),
        "{:?}",
        site.warnings()
    );
    assert!(!Site::default_site().upses[0].off_delay_from_card);
    // Another vendor's card: a mistake naming the key, with the UPS's line.
    let eaton = DEFAULT_SITE
        .replace("outlet_off_delay = \"3m\"", "")
        .replace("vendor = \"apc\"", "vendor = \"eaton\"");
    let said = mistakes(&eaton);
    let line = eaton.lines().position(|l| l == "[[ups]]").unwrap() + 1;
    assert!(
        said.iter().any(|m| m.starts_with(&format!("{line}:"))
            && m.contains("missing key `outlet_off_delay`")
            && m.contains("this eaton UPS")),
        "{said:?}"
    );
}

#[test]
fn a_write_community_is_v1_unless_its_version_says_2c() {
    let with = |extra: &str| {
        DEFAULT_SITE.replace(
            "restart = \"auto\"",
            &format!("restart = \"auto\"\nwrite_community = \"rw\"{extra}"),
        )
    };
    let write = |text: &str| Site::parse(text).expect("valid").upses[0].write.clone();
    assert_eq!(
        write(&with("")),
        Some(Write::Community {
            community: "rw".into(),
            v2c: false
        })
    );
    assert_eq!(
        write(&with("\nwrite_version = \"2c\"")),
        Some(Write::Community {
            community: "rw".into(),
            v2c: true
        })
    );
    let said = mistakes(&with("\nwrite_version = \"3\""));
    assert!(
        said.iter()
            .any(|m| m.contains("`write_version` `3`: \"1\" or \"2c\"")),
        "{said:?}"
    );
    let alone = DEFAULT_SITE.replace(
        "restart = \"auto\"",
        "restart = \"auto\"\nwrite_version = \"2c\"",
    );
    let said = mistakes(&alone);
    assert!(
        said.iter()
            .any(|m| m.contains("`write_version` is the version of `write_community`")),
        "{said:?}"
    );
}

/// The seed site with `[pair]` and `gateway` lines of a test's.
fn pair_site(pair: &str, gateway: &str) -> String {
    let text = DEFAULT_SITE.replace("[gateway]\n", &format!("[gateway]\n{gateway}\n"));
    let text = text.replace("agent = \"0.0.0.0:161\"", "");
    format!("{text}\n[pair]\n{pair}\n")
}

const PAIR: &str = r#"self = "192.0.2.1:1620"
peer = "192.0.2.2:1620"
address = "192.0.2.100"
key_file = "/etc/trapgate/pair.key""#;

fn pair_key(at: SecretAt<'_>) -> Result<String, String> {
    match at {
        SecretAt::File("/etc/trapgate/pair.key") => Ok("0123456789abcdef0123".into()),
        SecretAt::File("/etc/trapgate/short.key") => Ok("short".into()),
        other => Err(format!("cannot read it: no {other:?}")),
    }
}

fn pair_mistakes(text: &str) -> Vec<String> {
    match Site::parse_with(text, &pair_key) {
        Ok(_) => Vec::new(),
        Err(e) => e.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn a_pair_is_read_with_its_key_and_oriented_by_the_hosts_addresses() {
    let site = Site::parse_with(&pair_site(PAIR, ""), &pair_key).expect("valid");
    let pair = site.pair.expect("a pair");
    assert_eq!(pair.address, "192.0.2.100".parse::<IpAddr>().unwrap());
    assert_eq!(&*pair.key.0, b"0123456789abcdef0123");
    assert!(
        !format!("{pair:?}").contains("0123456789"),
        "the key is never printed"
    );
    let (a, b): (SocketAddr, SocketAddr) = (
        "192.0.2.1:1620".parse().unwrap(),
        "192.0.2.2:1620".parse().unwrap(),
    );
    assert_eq!(pair.oriented(&[a.ip()]), Ok((a, b)));
    assert_eq!(
        pair.oriented(&[b.ip(), "127.0.0.1".parse().unwrap()]),
        Ok((b, a))
    );
    let neither = pair.oriented(&["127.0.0.1".parse().unwrap()]).unwrap_err();
    assert!(
        neither.contains("neither self (192.0.2.1) nor peer (192.0.2.2)"),
        "{neither}"
    );
    // Without a reader of files (the engine's own), the key file is named, not read.
    let found = mistakes(&pair_site(PAIR, ""));
    assert!(
        found
            .iter()
            .any(|f| f.contains("`key_file` = \"/etc/trapgate/pair.key\"")),
        "{found:#?}"
    );
}

#[test]
fn every_wrong_pair_is_a_mistake_naming_what_is_wrong() {
    let cases: &[(&str, &str, &str)] = &[
        (
            &PAIR.replace("192.0.2.2:1620", "192.0.2.1:1621"),
            "",
            "peer 192.0.2.1:1621 is on the same address as self",
        ),
        (
            &PAIR.replace("192.0.2.100", "192.0.2.1"),
            "",
            "address 192.0.2.1 is self's own",
        ),
        (
            &PAIR.replace("192.0.2.2:1620", "192.0.2.2:0"),
            "",
            "peer 192.0.2.2:0 has port 0",
        ),
        (
            &PAIR.replace("192.0.2.100", "2001:db8::1"),
            "",
            "of two address families",
        ),
        (
            &PAIR.replace("pair.key", "short.key"),
            "",
            "the pair's key needs at least 16",
        ),
        (
            &PAIR.replace("pair.key", "absent.key"),
            "",
            "`key_file` = \"/etc/trapgate/absent.key\": cannot read it",
        ),
        (
            &PAIR.replace("192.0.2.100", "not-an-address"),
            "",
            "`not-an-address` is not an IP address",
        ),
        (&format!("{PAIR}\nprio = 3"), "", "prio"),
        (
            PAIR,
            "agent = \"192.0.2.7:161\"",
            "[gateway] agent = \"192.0.2.7:161\" is not on the pair's address 192.0.2.100",
        ),
        (
            PAIR,
            "nut = \"192.0.2.7:3493\"",
            "[gateway] nut = \"192.0.2.7:3493\"",
        ),
        (
            &PAIR.replace("192.0.2.100", "192.168.61.244"),
            "",
            "recorder `nvr-244` has one of the pair's addresses",
        ),
        (
            &PAIR.replace("192.0.2.2:1620", "192.168.61.250:1620"),
            "",
            "UPS `ups-main` has one of the pair's addresses (192.168.61.250)",
        ),
        (
            &PAIR.replace("peer = \"192.0.2.2:1620\"\n", ""),
            "",
            "missing key `peer`",
        ),
    ];
    for (pair, gateway, want) in cases {
        let found = pair_mistakes(&pair_site(pair, gateway));
        assert!(
            found.iter().any(|f| f.contains(want)),
            "{want:?} not in {found:#?}"
        );
        assert!(
            found.iter().all(|f| f.contains(':')),
            "each with its line: {found:#?}"
        );
    }
    // The doors on the address, or on every address, are right.
    for gateway in [
        "agent = \"192.0.2.100:161\"",
        "agent = \"0.0.0.0:161\"\nnut = \"0.0.0.0:3493\"",
    ] {
        assert_eq!(
            pair_mistakes(&pair_site(PAIR, gateway)),
            Vec::<String>::new(),
            "{gateway}"
        );
    }
}

fn notify_site(items: &str) -> String {
    format!("{DEFAULT_SITE}\n{items}\n")
}

fn notify_secrets(at: SecretAt<'_>) -> Result<String, String> {
    match at {
        SecretAt::File("/etc/trapgate/hook.token") => Ok("t0ken".into()),
        SecretAt::Host(h) if h.starts_with("127.0.0.1:") => Ok(h.to_string()),
        SecretAt::Host(h) => Err(format!("{h} does not resolve")),
        other => Err(format!("cannot read it: no {other:?}")),
    }
}

#[test]
fn notify_targets_are_read_with_their_defaults_and_token() {
    let site = Site::parse_with(
        &notify_site(
            r#"[[notify]]
kind = "syslog"
to = "127.0.0.1:514"

[[notify]]
kind = "syslog"
to = "127.0.0.1:6514"
transport = "tcp"
facility = "local3"
match = ["all"]
severity = "notice"

[[notify]]
kind = "webhook"
url = "http://127.0.0.1:8080/hook"
token_file = "/etc/trapgate/hook.token"
match = ["ShutdownRecorder", "Back"]

[[notify]]
kind = "milestone"
to = "127.0.0.1:1234"

[[notify]]
kind = "mqtt"
to = "127.0.0.1:1883"
user = "gw"
password = "brokerpass"
discovery = true
"#,
        ),
        &notify_secrets,
    )
    .expect("valid");
    use crate::engine::tell::{Category, Kind, Severity, Transport};
    let n = &site.notify;
    assert_eq!(n.len(), 5);
    assert_eq!(
        n[4].kind,
        Kind::Mqtt {
            prefix: "trapgate".into(),
            client_id: String::new(),
            login: Some(("gw".into(), "brokerpass".into())),
            discovery: true,
            keep_alive: 30,
            tls: None,
            v5: false
        }
    );
    assert!(
        !site.text.contains("brokerpass"),
        "an inline password is not journaled"
    );
    assert_eq!(
        n[0].kind,
        Kind::Syslog {
            transport: Transport::Udp,
            facility: 3,
            enterprise: 32473,
            tls: None
        }
    );
    assert_eq!(
        n[0].wants.categories,
        [Category::Decision, Category::Alert, Category::Failure]
    );
    assert_eq!(n[1].wants.at_least, Severity::Notice);
    assert!(matches!(
        n[1].kind,
        Kind::Syslog {
            facility: 19,
            transport: Transport::Tcp,
            ..
        }
    ));
    assert_eq!(
        n[2].kind,
        Kind::Webhook {
            url: "http://127.0.0.1:8080/hook".into(),
            header: Some(("Authorization".into(), "Bearer t0ken".into())),
            ca_file: None
        }
    );
    assert_eq!(n[2].wants.kinds, ["ShutdownRecorder", "Back"]);
    assert!(
        !format!("{:?}", n[2]).contains("t0ken"),
        "the token is never printed"
    );
    assert_eq!(n[3].label(), "milestone 127.0.0.1:1234");
}

#[test]
fn every_wrong_notify_target_is_a_mistake_naming_what_is_wrong() {
    let cases = [
        (
            "kind = \"smtp\"\nto = \"127.0.0.1:25\"",
            "`smtp` is not a kind of [[notify]]",
        ),
        (
            "kind = \"mqtt\"\nto = \"127.0.0.1:1883\"\nuser = \"gw\"",
            "`user` without a password",
        ),
        (
            "kind = \"mqtt\"\nto = \"127.0.0.1:1883\"\npassword = \"x\"",
            "a password without `user`",
        ),
        (
            "kind = \"mqtt\"\nto = \"127.0.0.1:1883\"\nkeep_alive = \"1s\"",
            "`keep_alive` 1 s is out of range",
        ),
        (
            "kind = \"syslog\"\nto = \"127.0.0.1:6514\"\ntransport = \"tls\"\nca_file = \"/nonexistent/ca.pem\"",
            "`ca_file` \"/nonexistent/ca.pem\": no such file",
        ),
        (
            "kind = \"mqtt\"\nto = \"127.0.0.1:1883\"\nca_file = \"/etc/hostname\"",
            "`ca_file` is for tls = true",
        ),
        (
            "kind = \"webhook\"\nurl = \"http://127.0.0.1:1/\"\nca_file = \"/etc/hostname\"",
            "`ca_file` is for an https:// url",
        ),
        (
            "kind = \"mqtt\"\nto = \"127.0.0.1:8883\"\ntls = true\nca_file = \"/nonexistent.pem\"",
            "`ca_file` \"/nonexistent.pem\": no such file",
        ),
        (
            "kind = \"mqtt\"\nto = \"127.0.0.1:1883\"\nprotocol = \"4\"",
            "`4` is not one of: 3.1.1, 5",
        ),
        (
            "kind = \"syslog\"\nto = \"127.0.0.1:514\"\nserver_name = \"logs\"",
            "`server_name` is for transport = \"tls\"",
        ),
        (
            "kind = \"milestone\"\nto = \"127.0.0.1:1234\"\n\n[[notify]]\nkind = \"milestone\"\nto = \"127.0.0.1:1234\"",
            "another [[notify]] is the same target (milestone 127.0.0.1:1234)",
        ),
        (
            "kind = \"syslog\"\nto = \"127.0.0.1:514\"\nprefix = \"x\"",
            "`prefix` is for an mqtt target, not a syslog one",
        ),
        ("kind = \"syslog\"", "missing key `to`"),
        ("kind = \"webhook\"", "missing key `url`"),
        (
            "kind = \"webhook\"\nurl = \"ftp://127.0.0.1/x\"",
            "is not an http:// or https:// URL",
        ),
        (
            "kind = \"syslog\"\nto = \"127.0.0.1:514\"\ntransport = \"dtls\"",
            "`dtls` is not one of: udp, tcp, tls",
        ),
        (
            "kind = \"syslog\"\nto = \"127.0.0.1:514\"\nfacility = \"local9\"",
            "`local9` is not one of",
        ),
        (
            "kind = \"syslog\"\nto = \"127.0.0.1:514\"\nmatch = []",
            "`match` is empty",
        ),
        (
            "kind = \"syslog\"\nto = \"127.0.0.1:514\"\nmatch = [\"Orders\"]",
            "`Orders` is not in what `match` takes",
        ),
        (
            "kind = \"syslog\"\nto = \"127.0.0.1:514\"\nseverity = \"loud\"",
            "`loud` is not a severity",
        ),
        (
            "kind = \"milestone\"\nto = \"127.0.0.1:1234\"\ntransport = \"tcp\"",
            "`transport` is for a syslog target, not a milestone one",
        ),
        (
            "kind = \"syslog\"\nto = \"127.0.0.1:514\"\ntoken = \"x\"",
            "a token is for a webhook target",
        ),
        (
            "kind = \"webhook\"\nurl = \"http://127.0.0.1:1/\"\ntoken_file = \"/nope\"",
            "`token_file` = \"/nope\": cannot read it",
        ),
        (
            "kind = \"syslog\"\nto = \"nowhere.example:514\"",
            "does not resolve",
        ),
        (
            "kind = \"syslog\"\nto = \"127.0.0.1:514\"\ncolour = \"red\"",
            "colour",
        ),
    ];
    for (item, want) in cases {
        let text = notify_site(&format!("[[notify]]\n{item}"));
        let found = match Site::parse_with(&text, &notify_secrets) {
            Ok(_) => panic!("accepted: {item}"),
            Err(e) => e.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
        };
        assert!(
            found.iter().any(|f| f.contains(want)),
            "{want:?} not in {found:#?}"
        );
    }
}
