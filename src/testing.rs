//! What the tests share with the library's own: a test that cannot run says so where
//! its run shows it, and is never counted as passed.
//!
//! libtest has no "skipped" result: a test that returns early reports `ok`. So a test
//! whose tool or input is missing calls `skip`, which writes `SKIPPED <test>: <why>`
//! straight to the process's stderr (past libtest's capture, so a plain `cargo test`
//! shows it) and appends the same line to the file `TRAPGATE_SKIPS` names, if it names
//! one: `.ci/run` prints those lines after the tests and does not count them as passed.

use std::io::Write;

pub mod netns;

/// The environment variable naming the file skips are appended to.
pub const SKIPS_FILE: &str = "TRAPGATE_SKIPS";

/// Says that the calling test did not run, and why (what is missing, and how to get
/// it); the test then returns.
pub fn skip(why: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    let line = format!("SKIPPED {test}: {why}\n");
    // Straight to the file descriptor: `eprintln!` would be captured, and shown only if
    // the test failed.
    let _ = std::io::stderr().write_all(line.as_bytes());
    if let Some(path) = std::env::var_os(SKIPS_FILE) {
        append(std::path::Path::new(&path), &line);
    }
}

/// Appends `line` to the file at `path` in one write (concurrent tests do not
/// interleave in append mode).
fn append(path: &std::path::Path, line: &str) {
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(line.as_bytes());
    }
}

/// A v1 trap of `enterprise` (dotted) from `agent`, as a UPS card or a recorder sends it
/// (sysUpTime one hundredth), encoded: the one trap builder of the tests and the tools.
pub fn v1_trap(
    community: &[u8],
    enterprise: &str,
    agent: [u8; 4],
    specific: i64,
    varbinds: &[crate::wire::VarBind<'_>],
) -> Vec<u8> {
    let e = crate::wire::oid::oid(enterprise);
    crate::wire::encode::to_vec(&crate::wire::Message::trap_v1(
        community,
        e.as_oid(),
        agent,
        specific,
        1,
        varbinds,
    ))
}

/// An SNMPv3 lowBattery trap (APC's, as an SNMPv2 trap) of the user `upsv3user` from
/// engine `engine`, authNoPriv with the key `ku` localized to it: with a guessed `ku`,
/// what a forger sends (its MAC is wrong, which takes a key localization to learn).
pub fn v3_low_battery_keyed(ku: &crate::wire::usm::Key, engine: &[u8]) -> Vec<u8> {
    use crate::wire::usm::{AuthProtocol, Keys};
    use crate::wire::v3::{Level, Seal, seal};
    use crate::wire::{Message, PduType, Value, VarBind, Version};
    let keys = Keys::localized(AuthProtocol::Sha256, ku, None, engine);
    let (name, low) = (
        crate::wire::oid::oid("1.3.6.1.6.3.1.1.4.1.0"),
        crate::wire::oid::oid("1.3.6.1.4.1.318.0.7"),
    );
    let vbs = [VarBind {
        name: name.as_oid(),
        value: Value::ObjectId(low.as_oid()),
    }];
    let pdu = Message::pdu(Version::V3, b"", PduType::SNMPV2_TRAP, 1, &vbs).pdu;
    let s = Seal {
        msg_id: 1,
        max_size: 65_507,
        reportable: false,
        engine_id: engine,
        boots: 1,
        time: 1,
        user: b"upsv3user",
        level: Level::AuthNoPriv,
        context_engine_id: engine,
        context_name: b"",
        salt: [0; 8],
    };
    let (mut scratch, mut out) = (Vec::new(), Vec::new());
    seal(&pdu, &s, Some(&keys), &mut scratch, &mut out);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn skips_from_many_threads_are_whole_lines_one_each() {
        let path = std::env::temp_dir().join(format!("trapgate-skips-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || {
                    for k in 0..50 {
                        super::append(&path, &format!("SKIPPED t{i}: reason {k}\n"));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(text.lines().count(), 400);
        assert!(
            text.lines()
                .all(|l| l.starts_with("SKIPPED t") && l.contains(": reason "))
        );
    }
}
