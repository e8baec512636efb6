//! The HTTP endpoint (`run --http`): the status page, `/status.json` and `/metrics`,
//! read-only, 404 elsewhere; and an attacker's clients on loopback: 1,000 connections
//! that say nothing, a 10 MB request head, a client that sends its head a byte at a
//! time. Each is answered or closed within its bounds while scrapes are answered and a
//! trap is still decided.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;

/// One request (`Connection: close`): the status code, the head and the body.
fn request(at: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect_timeout(&at, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: trapgate\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, head.to_string(), body.to_string())
}

/// The gateway on the loopback site with its endpoint, in this process; (gateway,
/// traps, http).
fn gateway(name: &str) -> (InProcess, SocketAddr, SocketAddr) {
    in_process_with_http(&site_file(name, &loopback_site()))
}

/// The APC upsOnBattery v1 trap from the loopback site's UPS (127.0.0.1).
fn on_battery() -> Vec<u8> {
    trapgate::wire::encode::to_vec(&trapgate::wire::Message::trap_v1(
        b"public",
        trapgate::wire::oid::oid("1.3.6.1.4.1.318").as_oid(),
        [127, 0, 0, 1],
        5,
        100,
        &[],
    ))
}

/// `/status.json` until `ok` says it shows what is awaited (10 s at most).
fn status_until(http: SocketAddr, ok: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, _, body) = request(http, "GET", "/status.json");
        // 503 in the gateway's first second, before its first snapshot.
        if code == 503 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        if ok(&v) || Instant::now() > until {
            return v;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_endpoint_serves_the_page_the_status_and_the_metrics_and_nothing_else() {
    let (gw, traps, http) = gateway("http");
    let status = status_until(http, |v| {
        v["upses"].as_array().is_some_and(|u| !u.is_empty())
    });
    let (code, head, _) = request(http, "GET", "/metrics");
    assert_eq!(code, 200, "{head}");
    assert!(
        head.to_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert_eq!(status["upses"][0]["name"], "ups-main");
    assert_eq!(status["upses"][0]["on_battery"], false);
    let names: Vec<&str> = status["recorders"]
        .as_array()
        .expect("recorders")
        .iter()
        .map(|r| r["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, ["nvr-244", "nvr-251"]);
    assert!(status["recorders"][0]["state"] == "idle", "{status}");
    // An outage in progress: the UPS on battery, its trap, the alert among the records.
    let ups = std::net::UdpSocket::bind("127.0.0.1:0").expect("the UPS");
    ups.send_to(&on_battery(), traps).expect("send");
    expect_line(&gw.out, &["\"kind\":\"on_battery\""]);
    let status = status_until(http, |v| v["upses"][0]["on_battery"] == true);
    assert_eq!(status["upses"][0]["on_battery"], true, "{status}");
    assert_eq!(
        status["upses"][0]["last_trap"]["event"], "OnBattery",
        "{status}"
    );
    assert!(
        status["summary"]
            .as_str()
            .unwrap_or("")
            .contains("1 on battery"),
        "{status}"
    );
    let records = status["records"].as_array().expect("records");
    assert!(
        records.iter().any(|r| r["kind"] == "on_battery"),
        "{records:?}"
    );
    // `trapgate status`: the same as tables.
    let shown = trapgate_status(http);
    let table = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.status.success(), "{shown:?}");
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} row in:\n{table}"))
            .to_string()
    };
    assert!(row("ups-main").contains("ON BATTERY"), "{table}");
    assert!(row("ups-main").contains("OnBattery"), "{table}");
    assert!(
        row("nvr-244").contains("trap-relay") && row("nvr-244").contains("idle"),
        "{table}"
    );
    assert!(
        table.contains("0 UPS on mains, 1 on battery; 2 recorders"),
        "{table}"
    );
    // The outage: both tiers still to be shed at the end of their grace.
    assert!(table.contains("ups-main on battery since "), "{table}");
    assert!(
        table.contains("  tier 2: 1 recorders, to be shed at "),
        "{table}"
    );
    assert!(
        table.contains("  tier 1: 1 recorders, to be shed at "),
        "{table}"
    );
    // The page: its own script, nothing from elsewhere.
    let (code, head, page) = request(http, "GET", "/");
    assert_eq!(code, 200);
    assert!(
        head.to_lowercase()
            .contains("content-security-policy: default-src 'none'"),
        "{head}"
    );
    assert!(
        page.contains("/status.json") && !page.contains("http://") && !page.contains("https://")
    );
    // HEAD: the head alone; other paths 404; other methods 405.
    let (code, _, body) = request(http, "HEAD", "/metrics");
    assert_eq!((code, body.as_str()), (200, ""));
    assert_eq!(request(http, "GET", "/admin").0, 404);
    assert_eq!(request(http, "GET", "/metrics/../etc/passwd").0, 404);
    let (code, head, _) = request(http, "POST", "/");
    assert_eq!(code, 405);
    assert!(head.to_lowercase().contains("allow: get, head"), "{head}");
    gw.stop();
    // Nobody there: said plainly.
    let gone = trapgate_status(http);
    let said = String::from_utf8_lossy(&gone.stderr);
    assert_eq!(gone.status.code(), Some(2), "{said}");
    assert!(
        said.contains(&format!("cannot reach trapgate at {http}")),
        "{said}"
    );
}

#[test]
fn idle_slow_and_huge_clients_are_closed_while_scrapes_are_answered_and_traps_decided() {
    let (gw, traps, http) = gateway("http-flood");
    // 1,000 connections that say nothing.
    let idle: Vec<TcpStream> = (0..1_000)
        .filter_map(|_| TcpStream::connect_timeout(&http, Duration::from_secs(5)).ok())
        .collect();
    assert_eq!(idle.len(), 1_000);
    // A 10 MB head, sent while another client sends its head a byte at a time.
    let huge = std::thread::spawn(move || {
        let mut s = TcpStream::connect_timeout(&http, Duration::from_secs(5)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut head = b"GET /metrics HTTP/1.1\r\nHost: trapgate\r\nX-Big: ".to_vec();
        head.resize(10 << 20, b'a');
        let _ = s.write_all(&head);
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).to_string()
    });
    let slow = std::thread::spawn(move || {
        let mut s = TcpStream::connect_timeout(&http, Duration::from_secs(5)).expect("connect");
        let started = Instant::now();
        for b in b"GET /metrics HTTP/1.1\r\nHost: trapgate\r\n"
            .iter()
            .cycle()
            .take(200)
        {
            if s.write_all(&[*b]).is_err() {
                return started.elapsed();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        started.elapsed()
    });
    // Meanwhile: scrapes answered, a trap decided.
    status_until(http, |_| true);
    for _ in 0..5 {
        let t = Instant::now();
        assert_eq!(request(http, "GET", "/metrics").0, 200);
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "a scrape waited {:?}",
            t.elapsed()
        );
    }
    let ups = std::net::UdpSocket::bind("127.0.0.1:0").expect("the UPS");
    ups.send_to(&on_battery(), traps).expect("send");
    expect_line(&gw.out, &["\"kind\":\"on_battery\""]);
    let answer = huge.join().expect("the huge client");
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "a 10 MB head: {answer:?}"
    );
    let took = slow.join().expect("the slow client");
    assert!(
        took < Duration::from_secs(15),
        "the slow client was held {took:?}"
    );
    // The idle ones are closed after the head timeout.
    let closed = idle
        .iter()
        .filter(|s| {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            matches!((&**s).read(&mut [0u8; 64]), Ok(0) | Err(_))
        })
        .count();
    assert_eq!(closed, 1_000);
    assert_eq!(request(http, "GET", "/metrics").0, 200);
    gw.stop();
}

/// Chromium's binary (Debian's package), if installed.
fn chromium() -> Option<&'static str> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
}

/// Headless Chromium on `url`, with `extra` arguments; the flags keep it off the
/// network (nothing outside the gateway is reachable) and out of the user's profile.
fn headless(
    bin: &str,
    profile: &std::path::Path,
    url: &str,
    extra: &[&str],
) -> std::process::Output {
    std::process::Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1280,900",
            // Lets the page's script fetch /status.json and fill its tables first.
            "--virtual-time-budget=4000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("chromium runs")
}

/// The status page in a real browser during an outage: its script fills the UPS row
/// (on battery, its last trap) and a row per recorder (tier 2's told after its grace,
/// tier 1's still idle); a screenshot is taken (`status-page.png` beside the site file).
#[test]
fn the_status_page_shows_the_outage_in_headless_chromium() {
    let Some(bin) = chromium() else {
        trapgate::testing::skip(
            "Chromium is not installed (apt-get install chromium, or bash .ci/run)",
        );
        return;
    };
    // Tier 2's grace of 2 s: nvr-244 is told within the test.
    let site = loopback_site().replace("2 = \"2m\"", "2 = \"2s\"");
    let file = site_file("http-page", &site);
    let (gw, traps, http) = in_process_with_http(&file);
    let ups = std::net::UdpSocket::bind("127.0.0.1:0").expect("the UPS");
    ups.send_to(&on_battery(), traps).expect("send");
    expect_line(&gw.out, &["\"decision\":\"ShutdownRecorder\"", "nvr-244"]);
    // Told, and the order sent (its attempt counted once it has left).
    status_until(http, |v| {
        v["recorders"][0]["state"] != "idle"
            && v["recorders"][0]["attempts"] == 1
            && v["upses"][0]["on_battery"] == true
    });
    let dir = file.parent().expect("dir").to_path_buf();
    let url = format!("http://{http}/");
    let dom = headless(bin, &dir.join("chromium-profile"), &url, &["--dump-dom"]);
    let page = String::from_utf8_lossy(&dom.stdout);
    let row = |attr: &str| {
        let at = page
            .find(attr)
            .unwrap_or_else(|| panic!("no {attr} row in the page:\n{page}"));
        let end = page[at..].find("</tr>").map_or(page.len(), |e| at + e);
        page[at..end].to_string()
    };
    let ups_row = row("data-ups=\"ups-main\"");
    assert!(
        ups_row.contains("on battery") && ups_row.contains("OnBattery"),
        "{ups_row}"
    );
    let told = row("data-recorder=\"nvr-244\"");
    assert!(
        told.contains("<td>told</td>") && told.contains("<td>1</td>"),
        "{told}"
    );
    assert!(told.contains(" min "), "the outlet-off countdown: {told}");
    let idle = row("data-recorder=\"nvr-251\"");
    assert!(idle.contains("<td>idle</td>"), "{idle}");
    assert!(page.contains("0 UPS on mains, 1 on battery"), "{page}");
    // The outage as a timeline: tier 2 shed (told, not acknowledged yet), tier 1 still
    // to be shed at the end of its grace, the outlets' cut counting down.
    let outage = {
        let at = page
            .find("data-outage=\"ups-main\"")
            .unwrap_or_else(|| panic!("no outage in the page:\n{page}"));
        let end = page[at..].find("</ol>").map_or(page.len(), |e| at + e);
        page[at..end].to_string()
    };
    // Since its trap, as the policy has it (the UPS has answered no poll).
    assert!(outage.contains("ups-main on battery since 2"), "{outage}");
    assert!(
        ups_row.matches("<td>2").count() >= 1,
        "on battery since: {ups_row}"
    );
    assert!(
        outage.contains("tier 2 shed at ")
            && outage.contains(": 1 told, 0 acknowledged, 0 not acknowledged of 1"),
        "{outage}"
    );
    assert!(
        outage.contains("tier 1 (1 recorders) to be shed in 9 min")
            || outage.contains("tier 1 (1 recorders) to be shed in 10 min"),
        "{outage}"
    );
    assert!(outage.contains("outlets off in "), "{outage}");
    // And what an operator sees: a screenshot of it.
    let shot = dir.join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    let taken = headless(
        bin,
        &dir.join("chromium-profile"),
        &url,
        &[&format!("--screenshot={}", shot.display())],
    );
    let png = std::fs::read(&shot).unwrap_or_else(|_| panic!("no screenshot: {taken:?}"));
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    gw.stop();
}

/// `/metrics` until `ok` says it shows what is awaited (10 s at most).
fn metrics_until(http: SocketAddr, ok: impl Fn(&str) -> bool) -> String {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, _, body) = request(http, "GET", "/metrics");
        if code == 200 && ok(&body) || Instant::now() > until {
            return body;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_metrics_show_each_ups_and_the_recorders_by_state_and_pass_promtool() {
    let (gw, traps, http) = gateway("http-metrics");
    let page = metrics_until(http, |p| p.contains("trapgate_ups_on_battery{"));
    let ups = "{ups=\"ups-main\",address=\"127.0.0.1\"}";
    assert!(
        page.contains(&format!("trapgate_ups_on_battery{ups} 0")),
        "{page}"
    );
    assert!(
        page.contains(&format!("trapgate_ups_answering{ups} 0")),
        "{page}"
    );
    assert!(
        page.contains("trapgate_recorders{state=\"idle\"} 2"),
        "{page}"
    );
    assert!(page.contains("trapgate_build_info{version=\""), "{page}");
    // The UPS on battery; a datagram from an address that is not the site's, dropped for
    // its source and counted among the datagrams all the same.
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").expect("the UPS");
    sender.send_to(&on_battery(), traps).expect("send");
    expect_line(&gw.out, &["\"kind\":\"on_battery\""]);
    let stranger = std::net::UdpSocket::bind("127.0.0.77:0").expect("a stranger");
    stranger.send_to(&on_battery(), traps).expect("send");
    let page = metrics_until(http, |p| {
        p.contains("trapgate_dropped_total{reason=\"source_not_in_site\"} 1")
            && p.contains(&format!("trapgate_ups_on_battery{ups} 1"))
    });
    assert!(
        page.contains(&format!("trapgate_ups_on_battery{ups} 1")),
        "{page}"
    );
    assert!(page.contains("trapgate_datagrams_total 2"), "{page}");
    assert!(
        page.contains("trapgate_dropped_total{reason=\"source_not_in_site\"} 1"),
        "{page}"
    );
    assert!(
        page.contains("trapgate_decision_latency_seconds_count{event=\"OnBattery\"} 1"),
        "{page}"
    );
    match which("promtool") {
        None => trapgate::testing::skip(
            "promtool check metrics did not run: promtool is not installed (apt-get install prometheus, or bash .ci/run)",
        ),
        Some(promtool) => {
            let mut check = std::process::Command::new(promtool)
                .args(["check", "metrics"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("promtool runs");
            check
                .stdin
                .take()
                .expect("stdin")
                .write_all(page.as_bytes())
                .expect("to promtool");
            let said = check.wait_with_output().expect("promtool ends");
            assert!(
                said.status.success(),
                "promtool check metrics: {}{}\n{page}",
                String::from_utf8_lossy(&said.stdout),
                String::from_utf8_lossy(&said.stderr)
            );
        }
    }
    gw.stop();
}
