//! Every capture in `captures/` replays to exactly its golden event log
//! (`NAME.events.jsonl`), through the `trapgate events` command a user runs.
//!
//! After an intended change, rewrite the logs with `TRAPGATE_BLESS=1 cargo test --test
//! captures` and review the diff.

use std::path::{Path, PathBuf};
use std::process::Command;

fn captures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("captures/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("pcap" | "pcapng")
            )
        })
        .collect();
    files.sort();
    files
}

fn golden_path(capture: &Path, kind: &str) -> PathBuf {
    let stem = capture
        .file_stem()
        .and_then(|s| s.to_str())
        .expect("file name");
    capture.with_file_name(format!("{stem}.{kind}.jsonl"))
}

/// `COMMAND [ARGS…] FILE [--config NAME.site.toml]`: a capture's own site, where it has
/// one, for every command (its rules classify, its SNMPv3 users decrypt).
fn with_site<'a>(command: &[&'a str], capture: &'a Path) -> Vec<&'a str> {
    let path = capture.to_str().expect("UTF-8 path");
    let site = capture.with_extension("site.toml");
    let mut args = command.to_vec();
    args.push(path);
    if site.exists() {
        args.push("--config");
        args.push(Box::leak(
            site.to_str()
                .expect("UTF-8 path")
                .to_string()
                .into_boxed_str(),
        ));
    }
    args
}

/// `replay FILE [--config NAME.site.toml] [ARGS…]`, ARGS from `NAME.replay-args` where
/// the story has one (`--restart-at 212`: the gateway restarted mid-capture).
fn replay_args(capture: &Path) -> Vec<&str> {
    let mut args = with_site(&["replay"], capture);
    if let Ok(extra) = std::fs::read_to_string(capture.with_extension("replay-args")) {
        let extra: &'static str = Box::leak(extra.into_boxed_str());
        args.extend(extra.split_whitespace());
    }
    args
}

fn run(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_trapgate"))
        .args(args)
        .output()
        .expect("trapgate runs");
    assert!(
        out.status.success(),
        "trapgate {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// A readable diff: the first differing lines, with line numbers.
fn diff(expected: &str, got: &str) -> String {
    let (e, g): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), got.lines().collect());
    let mut out = String::new();
    for i in 0..e.len().max(g.len()) {
        let (a, b) = (e.get(i), g.get(i));
        if a != b {
            out.push_str(&format!(
                "line {}:\n  expected: {}\n  got:      {}\n",
                i + 1,
                a.unwrap_or(&"<none>"),
                b.unwrap_or(&"<none>")
            ));
            if out.len() > 4000 {
                break;
            }
        }
    }
    out
}

#[test]
fn every_capture_matches_its_golden_event_log() {
    let bless = std::env::var_os("TRAPGATE_BLESS").is_some();
    let files = captures();
    assert!(
        files.len() >= 8,
        "expected the built captures, found {files:?}"
    );
    let mut failures = Vec::new();
    for capture in &files {
        let got = run(&with_site(&["events"], capture));
        let golden = golden_path(capture, "events");
        if bless {
            std::fs::write(&golden, &got).expect("write golden");
            std::fs::write(
                golden_path(capture, "decisions"),
                run(&replay_args(capture)),
            )
            .expect("write golden");
            let decode_golden = golden_path(capture, "decode");
            if decode_golden.exists() {
                let got = run(&with_site(&["decode", "--json"], capture));
                std::fs::write(&decode_golden, got).expect("write golden");
            }
            continue;
        }
        let expected = std::fs::read_to_string(&golden).unwrap_or_else(|_| {
            panic!(
                "{} has no golden log {}",
                capture.display(),
                golden.display()
            )
        });
        if expected != got {
            failures.push(format!("{}:\n{}", capture.display(), diff(&expected, &got)));
        }
        // The decision log: the capture through the policy, with NAME.site.toml as the
        // site where there is one, else the embedded default site.
        let decisions = run(&replay_args(capture));
        let decisions_golden = golden_path(capture, "decisions");
        match std::fs::read_to_string(&decisions_golden) {
            Ok(expected) if expected == decisions => {}
            Ok(expected) => failures.push(format!(
                "{} (decisions):\n{}",
                capture.display(),
                diff(&expected, &decisions)
            )),
            Err(_) => failures.push(format!("{} has no golden decision log", capture.display())),
        }
        // Where a decode log is kept too (malformed.pcap: the reason and byte offset of
        // every refused packet), it must match as well.
        let decode_golden = golden_path(capture, "decode");
        if decode_golden.exists() {
            let got = run(&with_site(&["decode", "--json"], capture));
            let expected = std::fs::read_to_string(&decode_golden).expect("readable golden");
            if expected != got {
                let d = diff(&expected, &got);
                failures.push(format!("{} (decode):\n{d}", capture.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn replay_is_deterministic() {
    for capture in captures() {
        let path = capture.to_str().expect("UTF-8 path");
        assert_eq!(run(&["events", path]), run(&["events", path]));
        assert_eq!(
            run(&["decode", "--json", path]),
            run(&["decode", "--json", path])
        );
    }
}

#[test]
fn seed_trace_shows_its_ten_snmp_frames() {
    let capture = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/seed-trace.pcap");
    let text = run(&["decode", capture.to_str().expect("UTF-8 path")]);
    let lines: Vec<&str> = text.lines().filter(|l| l.contains(" → ")).collect();
    assert_eq!(lines.len(), 10, "{text}");
    // Times, sizes and PDU types as DESIGN.md's table gives them.
    let expected = [
        ("1233.504849", "143", "trap"),
        ("1233.519644", "143", "trap"),
        ("1278.475628", "85", "get-request"),
        ("1278.509070", "86", "get-response"),
        ("1279.203829", "85", "get-request"),
        ("1279.214345", "86", "get-response"),
        ("1282.318913", "88", "trap"),
        ("1283.263812", "85", "get-request"),
        ("1283.273752", "86", "get-response"),
        ("1287.313588", "85", "get-request"),
    ];
    for (line, (time, len, pdu)) in lines.iter().zip(expected) {
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words[1], time, "{line}");
        assert_eq!(words[5], len, "{line}");
        assert_eq!(words[8], pdu, "{line}");
    }
    assert!(
        lines[0].contains("PowerNet-MIB::lowBattery"),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains("PowerNet-MIB::mtrapargsString.0"),
        "{}",
        lines[0]
    );
    assert!(
        lines[2].contains("UPS-MIB::upsEstimatedChargeRemaining.0"),
        "{}",
        lines[2]
    );
    assert!(
        lines[6].contains("enterprise=1.3.6.1.4.1.50001"),
        "{}",
        lines[6]
    );
    assert!(
        text.contains("events: LowBattery 2, RecorderAck 1"),
        "{text}"
    );
}

#[test]
fn bad_files_give_a_clear_error_not_a_panic() {
    let dir = std::env::temp_dir().join(format!("trapgate-badfile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let not_capture = dir.join("notes.txt");
    std::fs::write(&not_capture, "not a capture").expect("write");
    let empty = dir.join("empty.pcap");
    std::fs::write(&empty, "").expect("write");
    let bad_header = dir.join("bad.pcap");
    std::fs::write(&bad_header, [0xd4, 0xc3, 0xb2, 0xa1, 0, 0]).expect("write");
    let missing = dir.join("missing.pcap");
    for (file, message) in [
        (&not_capture, "is not a pcap or pcapng capture file"),
        (&empty, "is not a pcap or pcapng capture file"),
        (&bad_header, "capture file header is invalid"),
        (&missing, "cannot read"),
    ] {
        for cmd in ["decode", "events"] {
            let out = Command::new(env!("CARGO_BIN_EXE_trapgate"))
                .args([cmd, file.to_str().expect("UTF-8 path")])
                .output()
                .expect("trapgate runs");
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{cmd} {}: {err}",
                file.display()
            );
            assert!(err.contains(message), "{cmd} {}: {err}", file.display());
            assert!(!err.contains("panicked"), "{err}");
        }
    }
    // A capture cut in the middle of a packet: what was read is shown, with a warning.
    let seed =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/seed-trace.pcap"))
            .expect("seed capture");
    let cut = dir.join("cut.pcap");
    std::fs::write(&cut, &seed[..seed.len() - 20]).expect("write");
    let text = run(&["decode", cut.to_str().expect("UTF-8 path")]);
    assert!(text.contains("cut short"), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.contains(" → ")).count(),
        9,
        "{text}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn replay_expect_says_match_or_prints_the_difference() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
    let capture = dir.join("seed-trace.pcap");
    let golden = dir.join("seed-trace.decisions.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_trapgate"))
        .args([
            "replay",
            capture.to_str().expect("UTF-8"),
            "--expect",
            golden.to_str().expect("UTF-8"),
        ])
        .output()
        .expect("trapgate runs");
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("the decisions match"));
    // The trace stops 49 s after the orders; its timers run out past it: nvr-244, silent
    // all along, is reported when its UPS cuts its outlets (3 min after its order).
    let replayed = Command::new(env!("CARGO_BIN_EXE_trapgate"))
        .args(["replay", capture.to_str().expect("UTF-8")])
        .output()
        .expect("trapgate runs");
    let story = String::from_utf8_lossy(&replayed.stdout);
    assert!(
        story
            .lines()
            .any(|l| l.contains("\"action\":\"NotAcknowledged\"")
                && l.contains("nvr-244")
                && l.contains("08:23:38.504849Z")),
        "{story}"
    );
    // A golden log where nvr-244 was never told: the difference is shown, exit 1.
    let text = std::fs::read_to_string(&golden).expect("golden");
    let edited: String = text
        .lines()
        .filter(|l| !(l.contains("ShutdownRecorder") && l.contains("nvr-244")))
        .map(|l| format!("{l}\n"))
        .collect();
    let tmp = std::env::temp_dir().join(format!("trapgate-expect-{}.jsonl", std::process::id()));
    std::fs::write(&tmp, edited).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_trapgate"))
        .args([
            "replay",
            capture.to_str().expect("UTF-8"),
            "--expect",
            tmp.to_str().expect("UTF-8"),
        ])
        .output()
        .expect("trapgate runs");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("+ {\"time\":\"2019-03-07T08:20:38.504849Z\",\"decision\":\"ShutdownRecorder\",\"ups\":\"ups-main\",\"recorder\":\"nvr-244\""), "{shown}");
    assert!(shown.contains("the decisions differ"), "{shown}");
    std::fs::remove_file(&tmp).ok();
}

#[test]
fn replay_takes_snmp_on_other_ports_with_port_as_decode_does() {
    use pcap_file::pcap::{PcapReader, PcapWriter};
    // The seed's trace moved to ports 10161 and 10162 (the UDP checksum cleared, as
    // IPv4 allows).
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/seed-trace.pcap");
    let dir = std::env::temp_dir().join(format!("trapgate-ports-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let moved = dir.join("seed-moved.pcap");
    let mut reader = PcapReader::new(std::fs::File::open(&seed).expect("seed")).expect("pcap");
    let header = reader.header();
    let mut writer =
        PcapWriter::with_header(std::fs::File::create(&moved).expect("create"), header)
            .expect("header");
    while let Some(p) = reader.next_packet() {
        let mut p = p.expect("packet").into_owned();
        let data = p.data.to_mut();
        if data.len() > 34 && data[12..14] == [0x08, 0x00] && data[23] == 17 {
            let udp = 14 + usize::from(data[14] & 0x0f) * 4;
            for at in [udp, udp + 2] {
                let port = u16::from_be_bytes([data[at], data[at + 1]]);
                if port == 161 || port == 162 {
                    data[at..at + 2].copy_from_slice(&(port + 10_000).to_be_bytes());
                }
            }
            data[udp + 6..udp + 8].copy_from_slice(&[0, 0]);
        }
        writer.write_packet(&p).expect("write");
    }
    drop(writer);
    let path = moved.to_str().expect("UTF-8");
    let plain = run(&["replay", path]);
    assert!(plain.contains("\"snmp_messages\":0"), "{plain}");
    let ported = run(&["replay", path, "--port", "10161", "--port", "10162"]);
    let original = run(&["replay", seed.to_str().expect("UTF-8")]);
    assert_eq!(ported, original, "{}", diff(&original, &ported));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_reader_that_goes_away_is_not_an_error() {
    // `trapgate decode big.pcap | head -1`: the seed's frames 2,000 times over (far past
    // a pipe's buffer), the reader gone after its first line.
    use pcap_file::pcap::{PcapReader, PcapWriter};
    use std::io::{BufRead, BufReader};
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/seed-trace.pcap");
    let mut reader = PcapReader::new(std::fs::File::open(&seed).expect("open")).expect("pcap");
    let big = std::env::temp_dir().join(format!("trapgate-big-{}.pcap", std::process::id()));
    let mut writer = PcapWriter::with_header(
        std::fs::File::create(&big).expect("create"),
        reader.header(),
    )
    .expect("header");
    let mut frames = Vec::new();
    while let Some(p) = reader.next_packet() {
        frames.push(p.expect("a packet").into_owned());
    }
    for _ in 0..2000 {
        for f in &frames {
            writer.write_packet(f).expect("write");
        }
    }
    drop(writer);
    let mut child = Command::new(env!("CARGO_BIN_EXE_trapgate"))
        .args(["decode", big.to_str().expect("UTF-8")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("trapgate runs");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("a line");
    // The reader is dropped here: its end of the pipe closes.
    let out = child.wait_with_output().expect("trapgate ends");
    let _ = std::fs::remove_file(&big);
    assert!(first.contains("trap"), "{first}");
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned()
        ),
        (Some(0), String::new())
    );
}

#[test]
fn replay_shows_what_the_gateway_forwards_and_answers() {
    // The seed's site with a [[forward]] target: the UPS's low-battery traps, believed,
    // are forwarded; the recorder's acknowledgement, not a UPS's, is not.
    let dir = std::env::temp_dir().join(format!("trapgate-fwd-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let site = dir.join("site.toml");
    std::fs::write(
        &site,
        format!(
            "{}\n[[forward]]\nto = \"192.0.2.50:162\"\nmatch = [\"*\"]\ncommunity = \"nms\"\n",
            include_str!("../src/engine/config/default-site.toml")
        ),
    )
    .expect("site");
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/seed-trace.pcap");
    let story = run(&[
        "replay",
        seed.to_str().expect("UTF-8"),
        "--config",
        site.to_str().expect("UTF-8"),
    ]);
    let forwarded: Vec<&str> = story
        .lines()
        .filter(|l| l.contains("\"action\":\"Forwarded\""))
        .collect();
    assert_eq!(forwarded.len(), 2, "{story}");
    assert!(
        forwarded
            .iter()
            .all(|l| l.contains("\"from\":\"192.168.61.250:161\"")
                && l.contains("\"to\":[\"192.0.2.50:162\"]")),
        "{story}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    // An inform from the site's UPS is answered, as the live gateway answers it.
    let v2c = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/ups-mib-v2c.pcapng");
    let story = run(&replay_args(&v2c));
    assert!(
        story
            .lines()
            .any(|l| l.contains("\"action\":\"Replied\"") && l.contains("inform answered")),
        "{story}"
    );
}
