//! `trapgate check-config`, as a site engineer runs it: every mistake of a broken file,
//! each with its line and column, and a non-zero exit; the embedded default site is OK.

use std::process::Command;

fn check(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_trapgate"))
        .arg("check-config")
        .args(args)
        .output()
        .expect("trapgate runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn the_embedded_default_site_is_valid() {
    let (code, text) = check(&[]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("OK: 1 UPS, 2 recorders, tiers 1, 2"),
        "{text}"
    );
}

#[test]
fn a_broken_site_gets_every_mistake_with_its_position() {
    let dir = std::env::temp_dir().join(format!("trapgate-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("site.toml");
    std::fs::write(
        &file,
        r#"[policy]
grace = { 1 = "10m" }
shutdown_below_charge = 101
shutdown_below_runtime = "5m"
colour = 3

[[ups]]
name = "u"
address = "10.0.0.999"
vendor = "apc"
outlet_off_delay = "3m"

[[recorder]]
name = "r"
address = "10.0.0.2"
ups = "v"
tier = 2
shutdown_time = "1m"
"#,
    )
    .expect("write");
    let path = file.to_str().expect("UTF-8 path");
    let (code, text) = check(&[path]);
    assert_eq!(code, Some(1), "{text}");
    for want in [
        ":3:25: `shutdown_below_charge` = 101 is out of range (0 to 100)",
        ":5:1: unknown key `colour`",
        ":9:12: `10.0.0.999` is not an IP address",
        ":16:8: UPS `v` is not defined in any [[ups]]",
        ":17:8: tier 2 has no grace time in [policy] grace",
        ": 5 mistakes",
    ] {
        assert!(
            text.contains(&format!("{path}{want}")),
            "missing {want:?} in\n{text}"
        );
    }
    let (code, text) = check(&[dir.join("missing.toml").to_str().expect("UTF-8")]);
    assert_eq!(code, Some(2), "{text}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_readme_example_site_is_valid() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let section = &readme[readme.find("## The site file").expect("site section")..];
    let start = section.find("```toml\n").expect("toml block") + "```toml\n".len();
    let block = &section[start..start + section[start..].find("```").expect("block end")];
    let site = trapgate::engine::config::Site::parse(block).unwrap_or_else(|e| {
        panic!(
            "{}",
            e.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    assert_eq!(
        (site.upses.len(), site.recorders.len(), site.rules.len()),
        (1, 1, 1)
    );
}

#[test]
fn forward_targets_are_shown_as_read_and_a_bad_one_named() {
    let dir = std::env::temp_dir().join(format!("trapgate-check-fwd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("site.toml");
    let good = format!(
        "{}\n[[forward]]\nto = \"localhost:1162\"\nmatch = [\".1.3.6.1.4.1.318*\", \"default\"]\nversion = \"2c\"\n",
        trapgate::engine::config::DEFAULT_SITE
    );
    std::fs::write(&file, &good).expect("write");
    let (code, text) = check(&[file.to_str().expect("UTF-8")]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("forwards to localhost:1162 (")
            && text
                .contains("): 1.3.6.1.4.1.318*, default; as v2c; the site's UPSes' notifications"),
        "{text}"
    );
    std::fs::write(
        &file,
        good.replace("localhost:1162", "localhost")
            .replace("318*", "318**"),
    )
    .expect("write");
    let (code, text) = check(&[file.to_str().expect("UTF-8")]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("`localhost` has no port"), "{text}");
    assert!(
        text.contains("`.1.3.6.1.4.1.318**` is not an OID"),
        "{text}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
