//! Interop with Wireshark: tshark dissects every capture in `captures/`, and
//! `trapgate decode --json` must agree with it on every SNMP frame: version, community,
//! PDU type, v1 trap header fields, request-id, and each varbind's OID, type and value.
//!
//! Runs when `tshark` is installed (`.ci/run` installs it); otherwise it says SKIPPED,
//! except under `CI=true`, where a missing tshark is a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value as Json;

fn tshark_available() -> bool {
    let found = Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("tshark is not installed, and CI=true: .ci/run must install it");
        }
        trapgate::testing::skip("tshark is not installed; the Wireshark interop test did not run");
    }
    found
}

fn captures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("captures/")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("pcap" | "pcapng")
            )
        })
        .collect();
    v.sort();
    v
}

fn hex_bytes(s: &str) -> Vec<u8> {
    s.split([':', ' '])
        .filter(|h| !h.is_empty())
        .map(|h| u8::from_str_radix(h, 16).expect("hex"))
        .collect()
}

fn pdu_number(name: &str) -> &'static str {
    match name {
        "get-request" => "0",
        "get-next-request" => "1",
        "get-response" => "2",
        "set-request" => "3",
        "trap" => "4",
        "getBulkRequest" => "5",
        "informRequest" => "6",
        "snmpV2-trap" => "7",
        "report" => "8",
        _ => "?",
    }
}

/// Walks tshark's SNMP layer to the PDU element (`snmp.trap_element`, ...).
fn pdu_element(snmp: &Json) -> Option<&Json> {
    snmp.get("snmp.data_tree")?.as_object()?.values().next()
}

/// (name, type, value as comparable text) of each varbind in tshark's dissection.
fn tshark_varbinds(pdu: &Json) -> Vec<(String, String, String)> {
    let Some(tree) = pdu
        .get("snmp.variable_bindings_tree")
        .and_then(|t| t.as_object())
    else {
        return Vec::new();
    };
    tree.values()
        .map(|vb| {
            let name = vb["snmp.name"].as_str().expect("name").to_string();
            let (ty, value) = vb
                .as_object()
                .expect("varbind")
                .iter()
                .find(|(k, _)| k.starts_with("snmp.value."))
                .map(|(k, v)| {
                    (
                        k.trim_start_matches("snmp.value.").to_string(),
                        v.as_str().unwrap_or("").to_string(),
                    )
                })
                .expect("a value");
            let (ty, value) = match ty.as_str() {
                "int" => ("INTEGER".into(), value),
                "octets" => ("octets".into(), format!("{:?}", hex_bytes(&value))),
                "oid" => ("OID".into(), value),
                "timeticks" => ("Timeticks".into(), value),
                "gauge32" | "g32" => ("Gauge32".into(), value),
                "counter" | "c32" => ("Counter32".into(), value),
                "counter64" => ("Counter64".into(), value),
                "ipv4" => ("IpAddress".into(), value),
                "null" => ("NULL".into(), String::new()),
                other => (other.to_string(), value),
            };
            (name, ty, value)
        })
        .collect()
}

fn our_varbinds(line: &Json) -> Vec<(String, String, String)> {
    line["varbinds"]
        .as_array()
        .expect("varbinds")
        .iter()
        .map(|vb| {
            let ty = vb["type"].as_str().expect("type");
            let value = &vb["value"];
            let (ty, text) = match ty {
                "STRING" => (
                    "octets".to_string(),
                    format!("{:?}", value.as_str().expect("text").as_bytes()),
                ),
                "Hex-STRING" => (
                    "octets".to_string(),
                    format!("{:?}", hex_bytes(value.as_str().expect("hex"))),
                ),
                "NULL" => ("NULL".to_string(), String::new()),
                _ => (
                    ty.to_string(),
                    match value {
                        Json::String(s) => s.clone(),
                        other => other.to_string(),
                    },
                ),
            };
            (vb["oid"].as_str().expect("oid").to_string(), ty, text)
        })
        .collect()
}

#[test]
fn decode_agrees_with_tshark_on_every_field() {
    if !tshark_available() {
        return;
    }
    let mut checked = 0;
    let mut problems = Vec::new();
    for capture in captures() {
        let path = capture.to_str().expect("UTF-8 path");
        let out = Command::new("tshark")
            .args(["-r", path, "-T", "json", "-J", "frame snmp"])
            .output()
            .expect("tshark runs");
        let frames: Json = serde_json::from_slice(&out.stdout).expect("tshark JSON");
        let ours = Command::new(env!("CARGO_BIN_EXE_trapgate"))
            .args(["decode", "--json", path])
            .output()
            .expect("trapgate runs");
        let lines: Vec<Json> = String::from_utf8(ours.stdout)
            .expect("UTF-8")
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect();
        for f in frames.as_array().expect("array") {
            let layers = &f["_source"]["layers"];
            let Some(snmp) = layers.get("snmp") else {
                continue;
            };
            let number: u64 = layers["frame"]["frame.number"]
                .as_str()
                .expect("n")
                .parse()
                .expect("n");
            let at = format!("{} frame {number}", capture.display());
            let Some(pdu) = pdu_element(snmp) else {
                // tshark could not dissect a PDU: trapgate must not have decoded one.
                let ours = lines.iter().find(|l| l["frame"] == number);
                if ours.is_some_and(|l| l.get("pdu").is_some()) {
                    problems.push(format!("{at}: decoded where tshark finds no PDU"));
                }
                continue;
            };
            let Some(line) = lines.iter().find(|l| l["frame"] == number) else {
                // malformed.pcap holds an IP fragment that tshark reassembles and an ICMP
                // error whose quoted trap it dissects: trapgate counts both, by design.
                if !path.ends_with("malformed.pcap") {
                    problems.push(format!(
                        "{at}: tshark dissects SNMP, trapgate printed nothing"
                    ));
                }
                continue;
            };
            if line.get("error").is_some() {
                // Where trapgate is stricter (malformed.pcap), its reason is in the golden log.
                if !path.ends_with("malformed.pcap") {
                    problems.push(format!("{at}: refused: {}", line["detail"]));
                }
                continue;
            }
            checked += 1;
            let version = match line["version"].as_str() {
                Some("v1") => "0",
                Some("v2c") => "1",
                _ => "?",
            };
            let fields = [
                ("snmp.version", Some(version.to_string())),
                (
                    "snmp.community",
                    line["community"].as_str().map(String::from),
                ),
                (
                    "snmp.data",
                    Some(pdu_number(line["pdu"].as_str().unwrap_or("")).to_string()),
                ),
            ];
            for (key, ours) in fields {
                if snmp[key].as_str().map(String::from) != ours {
                    problems.push(format!("{at}: {key} tshark {} ours {ours:?}", snmp[key]));
                }
            }
            let header = [
                ("snmp.enterprise", "enterprise"),
                ("snmp.agent_addr", "agent_addr"),
                ("snmp.generic_trap", "generic_trap"),
                ("snmp.specific_trap", "specific_trap"),
                ("snmp.time_stamp", "time_stamp"),
                ("snmp.request_id", "request_id"),
            ];
            for (key, ours_key) in header {
                let theirs = pdu.get(key).and_then(|v| v.as_str()).map(String::from);
                let ours = line.get(ours_key).map(|v| match v {
                    Json::String(s) => s.clone(),
                    other => other.to_string(),
                });
                if theirs != ours {
                    problems.push(format!("{at}: {key} tshark {theirs:?} ours {ours:?}"));
                }
            }
            let (theirs, ours) = (tshark_varbinds(pdu), our_varbinds(line));
            if theirs != ours {
                problems.push(format!(
                    "{at}: varbinds\n  tshark {theirs:?}\n  ours   {ours:?}"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(checked >= 49, "only {checked} frames compared");
}

/// tshark's `-o uat:snmp_users:…` records for the `[[usm_user]]`s of a site file with
/// inline passphrases (Wireshark's names for the protocols), or none.
fn tshark_users(site: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(site) else {
        return Vec::new();
    };
    let auth = |p: &str| match p {
        "MD5" => "MD5",
        "SHA" => "SHA1",
        "SHA-224" => "SHA2-224",
        "SHA-256" => "SHA2-256",
        "SHA-384" => "SHA2-384",
        "SHA-512" => "SHA2-512",
        other => panic!("no Wireshark name for {other}"),
    };
    let privacy = |p: &str| match p {
        "DES" => "DES",
        "AES" => "AES",
        "AES-192" => "AES192",
        "AES-256" => "AES256",
        other => panic!("no Wireshark name for {other}"),
    };
    let mut out = Vec::new();
    for block in text.split("[[usm_user]]").skip(1) {
        let block = block.split("\n[").next().unwrap_or_default();
        let get = |key: &str| {
            block
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{key} = ")))
                .map(|v| v.trim().trim_matches('"').to_string())
                .unwrap_or_default()
        };
        out.push(format!(
            "uat:snmp_users:\"\",\"{}\",\"{}\",\"{}\",\"{}\",\"{}\"",
            get("name"),
            auth(&get("auth_protocol")),
            get("auth_passphrase"),
            privacy(&get("priv_protocol")),
            get("priv_passphrase")
        ));
    }
    out
}

/// The first object under `v` holding `key`, depth first.
fn find<'a>(v: &'a Json, key: &str) -> Option<&'a Json> {
    match v {
        Json::Object(o) => o.get(key).or_else(|| o.values().find_map(|x| find(x, key))),
        Json::Array(a) => a.iter().find_map(|x| find(x, key)),
        _ => None,
    }
}

/// The SNMPv3 captures (those with a site of `[[usm_user]]`s): tshark, given the same
/// users in its SNMP users table, authenticates and decrypts each frame as trapgate's
/// `decode --config` does: the same user, the same verdict on the MAC, the same PDU,
/// request id and bindings.
#[test]
fn v3_captures_decrypt_as_tshark_decrypts_them() {
    if !tshark_available() {
        return;
    }
    let mut checked = 0;
    let mut problems = Vec::new();
    for capture in captures() {
        let site = capture.with_extension("site.toml");
        let users = tshark_users(&site);
        if users.is_empty() {
            continue;
        }
        let path = capture.to_str().expect("UTF-8 path");
        let mut tshark = Command::new("tshark");
        tshark.args(["-r", path, "-T", "json", "-J", "frame snmp"]);
        for u in &users {
            tshark.args(["-o", u]);
        }
        let frames: Json =
            serde_json::from_slice(&tshark.output().expect("tshark runs").stdout).expect("JSON");
        let ours = Command::new(env!("CARGO_BIN_EXE_trapgate"))
            .args([
                "decode",
                "--json",
                "--config",
                site.to_str().expect("UTF-8"),
                path,
            ])
            .output()
            .expect("trapgate runs");
        let lines: Vec<Json> = String::from_utf8(ours.stdout)
            .expect("UTF-8")
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect();
        for f in frames.as_array().expect("array") {
            let layers = &f["_source"]["layers"];
            let Some(snmp) = layers.get("snmp") else {
                continue;
            };
            let number: u64 = layers["frame"]["frame.number"]
                .as_str()
                .and_then(|n| n.parse().ok())
                .expect("frame number");
            let at = format!("{} frame {number}", capture.display());
            let line = lines
                .iter()
                .find(|l| l["frame"] == number)
                .unwrap_or_else(|| panic!("{at}: trapgate printed nothing"));
            let theirs_user = snmp["snmp.msgUserName"].as_str().unwrap_or_default();
            if line["user"].as_str() != Some(theirs_user) {
                problems.push(format!(
                    "{at}: user tshark {theirs_user:?} ours {}",
                    line["user"]
                ));
            }
            let tshark_bad_mac = find(snmp, "snmp.authentication_error").is_some();
            match line["error"].as_str() {
                Some("usm_wrong_digest") => {
                    if !tshark_bad_mac {
                        problems.push(format!("{at}: a wrong MAC to trapgate, not to tshark"));
                    }
                    continue;
                }
                // tshark keeps no engine clocks: a replay outside its window is one
                // trapgate refuses and tshark shows.
                Some("usm_not_in_time_window") => continue,
                Some(other) => {
                    problems.push(format!("{at}: refused: {other}"));
                    continue;
                }
                None if tshark_bad_mac => {
                    problems.push(format!(
                        "{at}: tshark finds the MAC wrong, trapgate does not"
                    ));
                    continue;
                }
                None => {}
            }
            let Some(pdu) =
                find(snmp, "snmp.data_tree").and_then(|t| t.as_object()?.values().next())
            else {
                problems.push(format!("{at}: tshark found no PDU"));
                continue;
            };
            checked += 1;
            let theirs_id = pdu
                .get("snmp.request_id")
                .and_then(|v| v.as_str())
                .map(String::from);
            if theirs_id != Some(line["request_id"].to_string()) {
                problems.push(format!(
                    "{at}: request_id tshark {theirs_id:?} ours {}",
                    line["request_id"]
                ));
            }
            let (theirs, ours) = (tshark_varbinds(pdu), our_varbinds(line));
            if theirs != ours {
                problems.push(format!(
                    "{at}: varbinds\n  tshark {theirs:?}\n  ours   {ours:?}"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(checked >= 5, "only {checked} v3 frames compared");
}
