//! The manual pages and completion scripts a package installs: written by `trapgate man`,
//! rendered by man(1) without a warning (skipped, saying so, where man is missing), and
//! a bash completion script bash accepts.

mod common;

use std::process::Command;

fn trapgate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_trapgate"))
        .args(args)
        .output()
        .expect("trapgate runs")
}

#[test]
fn the_manual_pages_render_and_name_every_subcommand_and_site_key() {
    let dir = common::site_file("man", "").with_file_name("pages");
    let _ = std::fs::remove_dir_all(&dir);
    let out = trapgate(&["man", "--dir", dir.to_str().expect("UTF-8")]);
    assert!(out.status.success(), "{out:?}");
    let listed = String::from_utf8_lossy(&out.stdout);
    for page in [
        "trapgate.1",
        "trapgate-run.1",
        "trapgate-replay.1",
        "trapgate-check-config.1",
        "trapgate-site.toml.5",
    ] {
        assert!(listed.contains(page), "{page} not written: {listed}");
    }
    let main = std::fs::read_to_string(dir.join("trapgate.1")).expect("trapgate.1");
    for sub in [
        "run",
        "replay",
        "decode",
        "events",
        "journal",
        "demo",
        "check-config",
    ] {
        // roff writes a hyphen as \-.
        let written = sub.replace('-', "\\-");
        assert!(main.contains(&written), "trapgate(1) does not name {sub}");
    }
    // Beyond clap's help: how it ends, where its files are, and how it is used.
    for section in [
        ".SH \"EXIT STATUS\"",
        ".SH FILES",
        ".SH EXAMPLES",
        ".SH \"SEE ALSO\"",
    ] {
        assert!(main.contains(section), "trapgate(1) has no {section}");
    }
    assert!(main.contains("/etc/trapgate/site.toml"), "{main}");
    assert!(main.contains("trapgate check\\-config"), "{main}");
    let site = std::fs::read_to_string(dir.join("trapgate-site.toml.5")).expect("the site page");
    for key in [
        "outlet_off_delay",
        "shutdown_time",
        "nut_ups",
        "auth_passphrase_env",
        "needs",
    ] {
        assert!(
            site.contains(key),
            "trapgate-site.toml(5) does not name {key}"
        );
    }
    if Command::new("man").arg("--version").output().is_err() {
        trapgate::testing::skip("man is not installed (apt-get install man-db)");
        return;
    }
    for page in ["trapgate.1", "trapgate-run.1", "trapgate-site.toml.5"] {
        let shown = Command::new("man")
            .args(["--warnings", "-l"])
            .arg(dir.join(page))
            .env("MANWIDTH", "80")
            .env("MAN_KEEP_FORMATTING", "0")
            .output()
            .expect("man runs");
        let text = String::from_utf8_lossy(&shown.stdout);
        let warned = String::from_utf8_lossy(&shown.stderr);
        assert!(
            shown.status.success() && warned.trim().is_empty(),
            "{page}: {warned}"
        );
        assert!(text.contains("trapgate"), "{page}: {text}");
    }
}

#[test]
fn the_bash_completion_script_is_bash() {
    let out = trapgate(&["completions", "bash"]);
    assert!(out.status.success(), "{out:?}");
    let script = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        script.contains("check-config") && script.contains("--config"),
        "{script}"
    );
    let file = common::site_file("completions", "").with_file_name("trapgate.bash");
    std::fs::write(&file, &script).expect("write");
    let checked = Command::new("bash")
        .arg("-n")
        .arg(&file)
        .output()
        .expect("bash runs");
    assert!(checked.status.success(), "{checked:?}");
    // An unknown shell is named.
    let bad = trapgate(&["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("tcsh"));
}
