use super::*;

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
        "3:1: unknown key `colour` (expected one of: listen, agent, community, exec_timeout, workers, max_message_size)",
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
    let mut m = Mistakes { found: Vec::new() };
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
