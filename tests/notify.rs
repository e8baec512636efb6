//! The site's other systems told (`[[notify]]`), by real programs on loopback: Debian's
//! rsyslog receiving RFC 5424 over UDP and over TCP (octet counting), the structured
//! data read back from its file output; a TCP listener standing for XProtect's event
//! server; a local HTTP server for the webhook (503 first: the POST is tried again);
//! and a dead target (nothing listens) that never holds up an order.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;

fn free_port() -> u16 {
    let p = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The same port free for UDP too (rsyslog listens on both).
    UdpSocket::bind(("127.0.0.1", p)).map_or_else(|_| free_port(), |_| p)
}

/// rsyslogd in the foreground on `udp` and `tcp`, writing each message as
/// `MSGID STRUCTURED-DATA MSG` to `dir/out.log`.
fn rsyslog(dir: &Path, udp: u16, tcp: u16) -> Option<Child> {
    let Some(bin) = which("rsyslogd") else {
        trapgate::testing::skip(
            "rsyslog is not installed (apt-get install rsyslog, or bash .ci/run)",
        );
        return None;
    };
    let conf = format!(
        r#"global(workDirectory="{dir}")
module(load="imudp")
module(load="imtcp")
input(type="imudp" address="127.0.0.1" port="{udp}")
input(type="imtcp" address="127.0.0.1" port="{tcp}")
template(name="sd" type="string" string="%inputname% %syslogseverity-text% %msgid% %structured-data% %msg%\n")
*.* action(type="omfile" file="{dir}/out.log" template="sd")
"#,
        dir = dir.display()
    );
    Some(rsyslogd(&bin, dir, &conf, ("127.0.0.1", tcp)))
}

/// A webhook receiver: answers 503 to the first POST, 200 to the others; each body
/// (and the token header) comes through the channel.
fn webhook() -> (u16, mpsc::Receiver<(String, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for (n, conn) in listener.incoming().enumerate() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let (mut len, mut auth) = (0usize, String::new());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if lower.starts_with("authorization:") {
                    auth = line["authorization:".len()..].trim().to_string();
                }
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            let status = if n == 0 {
                "503 Service Unavailable"
            } else {
                "200 OK"
            };
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = tx.send((auth, String::from_utf8_lossy(&body).into_owned()));
        }
    });
    (port, rx)
}

/// XProtect's event server, played: every line received.
fn event_server() -> (u16, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(conn).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
    });
    (port, rx)
}

fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < until, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `what` (rsyslogd, mosquitto) started quietly, once its TCP port at `at` takes
/// connections (10 s at most).
fn serving(mut cmd: Command, what: &str, at: (&str, u16)) -> Child {
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{what} starts: {e}"));
    wait_until(
        &format!("{what} never listened on {}:{}", at.0, at.1),
        Duration::from_secs(10),
        || std::net::TcpStream::connect(at).is_ok(),
    );
    child
}

/// rsyslogd in the foreground with `conf` (written to `dir/rsyslog.conf`), serving once
/// `at` takes connections.
fn rsyslogd(bin: &Path, dir: &Path, conf: &str, at: (&str, u16)) -> Child {
    let path = dir.join("rsyslog.conf");
    std::fs::write(&path, conf).expect("rsyslog.conf");
    let mut cmd = Command::new(bin);
    cmd.args(["-n", "-f"])
        .arg(&path)
        .arg("-i")
        .arg(dir.join("rsyslogd.pid"));
    serving(cmd, "rsyslogd", at)
}

/// mosquitto with `conf` (written to `dir/mosquitto.conf`) on 127.0.0.1:`port`.
fn mosquittod(dir: &Path, conf: &str, port: u16) -> Child {
    let path = dir.join("mosquitto.conf");
    std::fs::write(&path, conf).expect("mosquitto.conf");
    let mut cmd = Command::new(which("mosquitto").expect("mosquitto"));
    cmd.arg("-c").arg(&path);
    serving(cmd, "mosquitto", ("127.0.0.1", port))
}

/// The loopback site with `notify` ([[notify]] tables) added, run in this process with
/// an HTTP endpoint; the seed's lowBattery sent from its UPS and both orders seen left.
/// (The gateway, its records from then on, its endpoint.)
fn seed_outage(
    dir: &Path,
    notify: &str,
) -> (InProcess, mpsc::Receiver<String>, std::net::SocketAddr) {
    let site = dir.join("site.toml");
    std::fs::write(&site, format!("{}\n{notify}", loopback_site())).unwrap();
    let (mut gw, traps, http) = in_process_with_http(&site);
    let out = gw.take_out();
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(&hex(SEED_TRAP), traps)
        .unwrap();
    let told = orders(&out, 2);
    assert_eq!(
        told.len(),
        2,
        "the orders left, whatever the targets: {told:?}"
    );
    (gw, out, http)
}

/// Waits until the target named `label` has counted a failed try on `/metrics`.
fn wait_for_failure(http: std::net::SocketAddr, label: &str, what: &str) {
    let failed = format!("trapgate_notify_failed_total{{target=\"{label}\"}}");
    wait_until(what, Duration::from_secs(10), || {
        scrape(&http.to_string())
            .lines()
            .any(|l| l.starts_with(&failed) && !l.ends_with(" 0"))
    });
}

#[test]
fn rsyslog_xprotect_and_a_webhook_hear_every_decision_and_a_dead_target_holds_nothing_up() {
    let dir = std::env::temp_dir().join(format!("trapgate-notify-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (udp, tcp) = (free_port(), free_port());
    let Some(mut syslog) = rsyslog(&dir, udp, tcp) else {
        return;
    };
    let (hook, posted) = webhook();
    let (xprotect, lines) = event_server();
    let dead = free_port();
    let token = dir.join("token");
    std::fs::write(&token, "s3cret-token\n").unwrap();
    let notify = format!(
        r#"[[notify]]
kind = "syslog"
to = "127.0.0.1:{udp}"

[[notify]]
kind = "syslog"
to = "127.0.0.1:{tcp}"
transport = "tcp"
facility = "local3"
match = ["all"]

[[notify]]
kind = "milestone"
to = "127.0.0.1:{xprotect}"

[[notify]]
kind = "webhook"
url = "http://127.0.0.1:{hook}/trapgate"
token_file = "{}"
match = ["ShutdownRecorder"]

[[notify]]
kind = "milestone"
to = "127.0.0.1:{dead}"
"#,
        token.display()
    );
    // The seed's lowBattery from the site's UPS: both recorders shut down, a dead
    // target or not.
    let (gw, _out, http) = seed_outage(&dir, &notify);

    // rsyslog: over UDP the defaults (decisions, alerts, failures), over TCP everything.
    let log = dir.join("out.log");
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_until(
        "rsyslog never wrote both orders over both transports",
        Duration::from_secs(15),
        || {
            let l = read();
            l.lines()
                .any(|x| x.starts_with("imtcp notice Sent ") && x.contains("recorder=\"nvr-251\""))
                && ["imudp", "imtcp"].iter().all(|i| {
                    l.lines()
                        .filter(|x| x.starts_with(i) && x.contains("ShutdownRecorder"))
                        .count()
                        == 2
                })
        },
    );
    let l = read();
    let udp_order = l
        .lines()
        .find(|x| x.starts_with("imudp") && x.contains("nvr-244"))
        .expect("nvr-244's order over UDP");
    assert!(
        udp_order.starts_with("imudp warning ShutdownRecorder [trapgate@32473 "),
        "{udp_order}"
    );
    for field in [
        "ups=\"ups-main\"",
        "recorder=\"nvr-244\"",
        "tier=\"2\"",
        "severity=\"warning\"",
    ] {
        assert!(udp_order.contains(field), "{field} not in {udp_order}");
    }
    assert!(
        udp_order.contains("decided ShutdownRecorder ups=ups-main recorder=nvr-244"),
        "{udp_order}"
    );
    // TCP took the actions too (match all): the orders sent, notices.
    assert!(
        l.lines()
            .any(|x| x.starts_with("imtcp notice Sent ") && x.contains("recorder=\"nvr-251\"")),
        "{l}"
    );
    assert!(
        !l.lines()
            .any(|x| x.starts_with("imudp") && x.contains(" Sent ")),
        "{l}"
    );

    // XProtect's event server: a line per decision, naming the recorder.
    let mut got = Vec::new();
    while got
        .iter()
        .filter(|l: &&String| l.starts_with("trapgate ShutdownRecorder "))
        .count()
        < 2
    {
        got.push(
            lines
                .recv_timeout(Duration::from_secs(10))
                .expect("XProtect's lines"),
        );
    }
    assert!(
        got.iter()
            .any(|l| l.starts_with("trapgate ShutdownRecorder nvr-251: decided")),
        "{got:?}"
    );

    // The webhook: refused once (503), posted again; the token as a bearer.
    let mut bodies = Vec::new();
    while bodies.len() < 3 {
        bodies.push(
            posted
                .recv_timeout(Duration::from_secs(15))
                .expect("the webhook's POSTs"),
        );
    }
    assert!(
        bodies.iter().all(|(auth, _)| auth == "Bearer s3cret-token"),
        "{bodies:?}"
    );
    let recorders: Vec<String> = bodies
        .iter()
        .map(|(_, b)| {
            serde_json::from_str::<serde_json::Value>(b).unwrap()["recorder"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        recorders.iter().filter(|r| *r == "nvr-244").count()
            + recorders.iter().filter(|r| *r == "nvr-251").count(),
        3
    );

    // The counts: the dead target failed and dropped nothing yet (its queue holds).
    let value = |m: &str, name: &str| -> u64 {
        m.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} not in:\n{m}"))
    };
    let dead_label = format!("milestone 127.0.0.1:{dead}");
    let webhook_label = format!("webhook http://127.0.0.1:{hook}/trapgate");
    let mut metrics = String::new();
    wait_until("the counts never came", Duration::from_secs(10), || {
        metrics = scrape(&http.to_string());
        metrics.contains(&format!(
            "trapgate_notify_sent_total{{target=\"{webhook_label}\"}} 2"
        ))
    });
    assert!(
        value(
            &metrics,
            &format!("trapgate_notify_failed_total{{target=\"{dead_label}\"}}")
        ) >= 1,
        "{metrics}"
    );
    assert_eq!(
        value(
            &metrics,
            &format!("trapgate_notify_failed_total{{target=\"{webhook_label}\"}}")
        ),
        1,
        "{metrics}"
    );
    assert_eq!(
        value(
            &metrics,
            &format!("trapgate_notify_connected{{target=\"{dead_label}\"}}")
        ),
        0,
        "{metrics}"
    );
    let status = scrape_path(&http.to_string(), "/status.json");
    assert!(status.contains(&dead_label), "{status}");
    let said = trapgate_status(http);
    let said = String::from_utf8_lossy(&said.stdout);
    assert!(
        said.contains(&format!("notify {dead_label}: NOT CONNECTED, 0 sent")),
        "{said}"
    );
    assert!(
        said.contains(&format!("notify {webhook_label}: connected, 2 sent")),
        "{said}"
    );
    gw.stop();
    let _ = syslog.kill();
    let _ = syslog.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// mosquitto on `port` of 127.0.0.1, with user `gw` / `brokerpass` (its password file
/// made with mosquitto_passwd), anonymous clients refused.
fn mosquitto(dir: &Path, port: u16) -> Option<Child> {
    let (Some(_), Some(passwd)) = (which("mosquitto"), which("mosquitto_passwd")) else {
        trapgate::testing::skip(
            "mosquitto is not installed (apt-get install mosquitto mosquitto-clients, or bash .ci/run)",
        );
        return None;
    };
    if which("mosquitto_sub").is_none() {
        trapgate::testing::skip(
            "mosquitto_sub is not installed (apt-get install mosquitto-clients)",
        );
        return None;
    }
    let pw = dir.join("passwd");
    let made = Command::new(passwd)
        .args(["-b", "-c"])
        .arg(&pw)
        .args(["gw", "brokerpass"])
        .status()
        .expect("mosquitto_passwd runs");
    assert!(made.success());
    let conf = format!(
        "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\npersistence false\n",
        pw.display()
    );
    Some(mosquittod(dir, &conf, port))
}

/// `mosquitto_sub` on `topics` for `secs` seconds at most: the messages as `topic payload`.
fn subscribe(port: u16, topics: &[&str], count: usize, secs: u32) -> Child {
    let mut cmd = Command::new("mosquitto_sub");
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-u",
        "gw",
        "-P",
        "brokerpass",
        "-v",
    ])
    .args(["-C", &count.to_string(), "-W", &secs.to_string()]);
    for t in topics {
        cmd.args(["-t", t]);
    }
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto_sub runs")
}

fn messages(sub: Child) -> Vec<String> {
    let out = sub.wait_with_output().expect("mosquitto_sub ends");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn mosquitto_holds_each_recorders_state_and_the_last_will_after_a_kill() {
    let dir = std::env::temp_dir().join(format!("trapgate-mqtt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let Some(mut broker) = mosquitto(&dir, port) else {
        return;
    };
    let pass = dir.join("mqtt.pass");
    std::fs::write(&pass, "brokerpass\n").unwrap();
    let site = dir.join("site.toml");
    std::fs::write(
        &site,
        format!(
            r#"{}
[[notify]]
kind = "mqtt"
to = "127.0.0.1:{port}"
user = "gw"
password_file = "{}"
keep_alive = "5s"
discovery = true

[[notify]]
kind = "mqtt"
to = "127.0.0.1:{port}"
protocol = "5"
prefix = "trapgate5"
client_id = "trapgate-v5"
user = "gw"
password_file = "{}"
"#,
            loopback_site(),
            pass.display(),
            pass.display()
        ),
    )
    .unwrap();
    let (mut gw, out, err) = start(&[
        "run",
        "--config",
        site.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    let traps = listening_on(&err);
    // The events, as they are published.
    // The outage's alert and the two shutdowns.
    let events = subscribe(port, &["trapgate/event"], 3, 20);
    std::thread::sleep(Duration::from_millis(800));
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(&hex(SEED_TRAP), traps)
        .unwrap();
    assert_eq!(orders(&out, 2).len(), 2);
    let events = messages(events);
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(
        events.iter().all(|e| e.starts_with("trapgate/event {")),
        "{events:?}"
    );
    for nvr in ["nvr-244", "nvr-251"] {
        assert!(
            events
                .iter()
                .any(|e| e.contains("\"decision\":\"ShutdownRecorder\"")
                    && e.contains(&format!("\"recorder\":\"{nvr}\""))),
            "{events:?}"
        );
    }
    // The retained state, read by a client that comes later: the gateway online, each
    // recorder told, the UPS, Home Assistant's devices.
    let mut retained = Vec::new();
    wait_until(
        "the recorders' state never came retained",
        Duration::from_secs(10),
        || {
            retained = messages(subscribe(
                port,
                &["trapgate/#", "trapgate5/#", "homeassistant/#"],
                100,
                1,
            ));
            ["trapgate", "trapgate5"].iter().all(|prefix| {
                retained.iter().any(|m| {
                    m.starts_with(&format!("{prefix}/recorder/nvr-244 "))
                        && m.contains("\"state\":\"told\"")
                })
            })
        },
    );
    assert!(
        retained.contains(&"trapgate/status online".to_string()),
        "{retained:#?}"
    );
    assert!(
        retained.contains(&"trapgate5/status online".to_string()),
        "the MQTT 5 client too: {retained:#?}"
    );
    assert!(
        retained
            .iter()
            .any(|m| m.starts_with("trapgate/ups/ups-main {")),
        "{retained:#?}"
    );
    assert!(
        retained.iter().any(|m| m
            .starts_with("homeassistant/sensor/trapgate_nvr_244/state/config ")
            && m.contains("\"state_topic\":\"trapgate/recorder/nvr-244\"")),
        "{retained:#?}"
    );
    assert!(
        !retained.iter().any(|m| m.starts_with("trapgate/event")),
        "events are not retained"
    );
    // kill -9: the broker says the last will, retained, once the keep-alive (5 s) and a
    // half pass.
    signal(&gw, libc::SIGKILL);
    let _ = gw.wait();
    wait_until("the last will never came", Duration::from_secs(20), || {
        messages(subscribe(port, &["trapgate/status"], 1, 1)) == ["trapgate/status offline"]
    });
    let _ = broker.kill();
    let _ = broker.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn replay_notify_dry_prints_what_each_target_would_have_been_told_of_the_seed() {
    let dir = std::env::temp_dir().join(format!("trapgate-notify-dry-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let site = dir.join("site.toml");
    std::fs::write(
        &site,
        format!(
            "{}\n[[notify]]\nkind = \"milestone\"\nto = \"127.0.0.1:1234\"\n\n[[notify]]\nkind = \"syslog\"\nto = \"127.0.0.1:514\"\nmatch = [\"Acknowledged\"]\n",
            trapgate::engine::config::DEFAULT_SITE
        ),
    )
    .unwrap();
    let capture = concat!(env!("CARGO_MANIFEST_DIR"), "/captures/seed-trace.pcap");
    let run = |site: &Path| {
        Command::new(env!("CARGO_BIN_EXE_trapgate"))
            .args(["replay", capture, "--notify-dry", "--config"])
            .arg(site)
            .output()
            .expect("replay runs")
    };
    let out = run(&site);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let to = |target: &str, kind: &str| -> Vec<String> {
        lines
            .iter()
            .filter(|l| l["notify"] == target && l["kind"] == kind)
            .map(|l| l["message"].as_str().unwrap().to_string())
            .collect()
    };
    let xprotect = to("milestone 127.0.0.1:1234", "ShutdownRecorder");
    assert_eq!(xprotect.len(), 2, "{lines:#?}");
    assert!(
        xprotect[0].starts_with("trapgate ShutdownRecorder nvr-244: decided"),
        "{xprotect:?}"
    );
    let acks = to("syslog udp:127.0.0.1:514", "Acknowledged");
    assert_eq!(acks.len(), 1, "{lines:#?}");
    assert!(
        acks[0].starts_with(
            "<29>1 2019-03-07T08:21:22.318913Z - trapgate - Acknowledged [trapgate@32473 "
        ) && acks[0].contains("recorder=\"nvr-251\""),
        "{acks:?}"
    );
    assert!(
        lines
            .iter()
            .all(|l| l["notify"] != "syslog udp:127.0.0.1:514" || l["kind"] == "Acknowledged"),
        "the syslog target takes only what it matches"
    );
    // The seed's own site has no target: said, not an empty output.
    let bare = Command::new(env!("CARGO_BIN_EXE_trapgate"))
        .args(["replay", capture, "--notify-dry"])
        .output()
        .unwrap();
    assert!(!bare.status.success());
    assert!(String::from_utf8_lossy(&bare.stderr).contains("the site has no [[notify]]"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A CA and a certificate for 127.0.0.1 it signed, made with openssl in `dir`:
/// (ca.pem, srv.pem, srv.key); None, the test said skipped, without openssl.
fn certificates(dir: &Path, ca: &str) -> Option<()> {
    if which("openssl").is_none() {
        trapgate::testing::skip(
            "openssl is not installed: the TLS test makes its certificates with it",
        );
        return None;
    }
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &format!("{ca}.key"),
        "-out",
        &format!("{ca}.pem"),
        "-days",
        "2",
        "-subj",
        &format!("/CN={ca}"),
    ]);
    if ca == "ca" {
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "srv.key",
            "-out",
            "srv.csr",
            "-subj",
            "/CN=localhost",
        ]);
        std::fs::write(
            dir.join("ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "srv.pem",
            "-days",
            "2",
            "-extfile",
            "ext",
        ]);
    }
    Some(())
}

#[test]
fn rsyslog_over_tls_takes_a_target_that_trusts_its_ca_and_not_one_that_does_not() {
    let ossl = [
        "/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_ossl.so",
        "/usr/lib/rsyslog/lmnsd_ossl.so",
    ];
    let Some(bin) = which("rsyslogd") else {
        trapgate::testing::skip(
            "rsyslog is not installed (apt-get install rsyslog rsyslog-openssl, or bash .ci/run)",
        );
        return;
    };
    if !ossl.iter().any(|p| Path::new(p).exists()) {
        trapgate::testing::skip(
            "rsyslog's OpenSSL driver is not installed (apt-get install rsyslog-openssl, or bash .ci/run)",
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!("trapgate-notify-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    if certificates(&dir, "ca").is_none() || certificates(&dir, "other").is_none() {
        return;
    }
    let port = free_port();
    let conf = format!(
        r#"global(workDirectory="{d}" DefaultNetstreamDriver="ossl" DefaultNetstreamDriverCAFile="{d}/ca.pem" DefaultNetstreamDriverCertFile="{d}/srv.pem" DefaultNetstreamDriverKeyFile="{d}/srv.key")
module(load="imtcp" StreamDriver.Name="ossl" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")
input(type="imtcp" address="127.0.0.1" port="{port}")
input(type="imtcp" address="127.0.0.2" port="{port}")
template(name="sd" type="string" string="%msgid% %structured-data%\n")
*.* action(type="omfile" file="{d}/out.log" template="sd")
"#,
        d = dir.display()
    );
    let mut syslog = rsyslogd(&bin, &dir, &conf, ("127.0.0.2", port));
    let (gw, _out, http) = seed_outage(
        &dir,
        &format!(
            "[[notify]]\nkind = \"syslog\"\nto = \"127.0.0.1:{port}\"\ntransport = \"tls\"\nca_file = \"{d}/ca.pem\"\n\n[[notify]]\nkind = \"syslog\"\nto = \"127.0.0.2:{port}\"\ntransport = \"tls\"\nca_file = \"{d}/other.pem\"\nserver_name = \"localhost\"\nmatch = [\"all\"]\n",
            d = dir.display()
        ),
    );
    let log = dir.join("out.log");
    wait_until(
        "rsyslog never wrote both orders over TLS",
        Duration::from_secs(15),
        || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .filter(|l| l.starts_with("ShutdownRecorder [trapgate@32473"))
                .count()
                == 2
        },
    );
    wait_for_failure(
        http,
        &format!("syslog tls:127.0.0.2:{port}"),
        "the untrusting target never failed",
    );
    gw.stop();
    // Only the trusting target's records reached it (the other's were all records).
    let written = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        !written.lines().any(|l| l.starts_with("Sent ")),
        "the untrusting target got through: {written}"
    );
    let _ = syslog.kill();
    let _ = syslog.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn mosquitto_over_tls_keeps_the_state_for_a_gateway_that_trusts_its_ca() {
    let dir = std::env::temp_dir().join(format!("trapgate-mqtt-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    if which("mosquitto").is_none() || which("mosquitto_sub").is_none() {
        trapgate::testing::skip(
            "mosquitto is not installed (apt-get install mosquitto mosquitto-clients, or bash .ci/run)",
        );
        return;
    }
    if certificates(&dir, "ca").is_none() {
        return;
    }
    // mosquitto started as root reads its files as the user mosquitto: a test's key may
    // be read by all.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("srv.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let port = free_port();
    let conf = format!(
        "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\ncafile {d}/ca.pem\ncertfile {d}/srv.pem\nkeyfile {d}/srv.key\n",
        d = dir.display()
    );
    let mut broker = mosquittod(&dir, &conf, port);
    let (gw, _out, http) = seed_outage(
        &dir,
        &format!(
            "[[notify]]\nkind = \"mqtt\"\nto = \"127.0.0.1:{port}\"\ntls = true\nca_file = \"{}/ca.pem\"\n",
            dir.display()
        ),
    );
    let read = || {
        let sub = Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "--cafile"])
            .arg(dir.join("ca.pem"))
            .args(["-t", "trapgate/#", "-v", "-C", "100", "-W", "1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_sub runs");
        messages(sub)
    };
    let mut got = Vec::new();
    wait_until(
        "the state never came over TLS",
        Duration::from_secs(10),
        || {
            got = read();
            got.iter().any(|m| {
                m.starts_with("trapgate/recorder/nvr-251 ") && m.contains("\"state\":\"told\"")
            })
        },
    );
    assert!(
        got.contains(&"trapgate/status online".to_string()),
        "{got:#?}"
    );
    let metrics = scrape(&http.to_string());
    assert!(
        metrics.contains(&format!(
            "trapgate_notify_connected{{target=\"mqtt 127.0.0.1:{port}/trapgate\"}} 1"
        )),
        "{metrics}"
    );
    gw.stop();
    let _ = broker.kill();
    let _ = broker.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// An HTTPS webhook receiver (rustls, the certificate `dir/srv.pem` for 127.0.0.1):
/// every POST's body, answered 200.
fn https_webhook(dir: &Path) -> (u16, mpsc::Receiver<String>) {
    use rustls::pki_types::pem::PemObject;
    let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(dir.join("srv.pem"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(dir.join("srv.key")).unwrap();
    #[allow(deprecated)]
    let provider = rustls::crypto::ring::default_provider();
    let config = std::sync::Arc::new(
        rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(provider))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let Ok(session) = rustls::ServerConnection::new(std::sync::Arc::clone(&config)) else {
                continue;
            };
            let mut tls = rustls::StreamOwned::new(session, conn);
            let mut reader = BufReader::new(&mut tls);
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            // A handshake refused (the other target's) reads no request at all.
            if len == 0 || reader.read_exact(&mut body).is_err() {
                continue;
            }
            let _ = write!(
                tls,
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = tls.flush();
            let _ = tx.send(String::from_utf8_lossy(&body).into_owned());
        }
    });
    (port, rx)
}

#[test]
fn an_https_webhook_is_posted_to_when_its_certificate_chains_to_the_sites_ca() {
    let dir = std::env::temp_dir().join(format!("trapgate-https-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    if certificates(&dir, "ca").is_none() || certificates(&dir, "other").is_none() {
        return;
    }
    let (port, posted) = https_webhook(&dir);
    let (gw, _out, http) = seed_outage(
        &dir,
        &format!(
            "[[notify]]\nkind = \"webhook\"\nurl = \"https://127.0.0.1:{port}/hook\"\nca_file = \"{d}/ca.pem\"\nmatch = [\"ShutdownRecorder\"]\n\n[[notify]]\nkind = \"webhook\"\nurl = \"https://127.0.0.1:{port}/untrusting\"\nca_file = \"{d}/other.pem\"\nmatch = [\"ShutdownRecorder\"]\n",
            d = dir.display()
        ),
    );
    let mut bodies = Vec::new();
    while bodies.len() < 2 {
        bodies.push(
            posted
                .recv_timeout(Duration::from_secs(10))
                .expect("the POSTs over TLS"),
        );
    }
    assert!(
        bodies
            .iter()
            .all(|b| b.contains("\"decision\":\"ShutdownRecorder\"")),
        "{bodies:?}"
    );
    wait_for_failure(
        http,
        &format!("webhook https://127.0.0.1:{port}/untrusting"),
        "the untrusting webhook never failed",
    );
    // Only the trusting target's two came.
    assert!(posted.recv_timeout(Duration::from_millis(500)).is_err());
    gw.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_target_that_cannot_keep_up_drops_what_its_queue_cannot_hold_and_the_journal_says_so() {
    // A webhook that takes connections and never answers: each POST waits out its 5 s.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let mut site = loopback_site();
    // 5,000 recorders more, tier 1, all shut down by the one lowBattery: 5,000 records
    // for a queue of 4,096.
    for i in 0..5000 {
        site += &format!(
            "\n[[recorder]]\nname = \"nvr-x{i}\"\naddress = \"127.2.{}.{}\"\nups = \"ups-main\"\ntier = 1\nshutdown_time = \"90s\"\n",
            i / 250,
            i % 250 + 1
        );
    }
    site += &format!(
        "\n[[notify]]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{port}/never\"\nmatch = [\"ShutdownRecorder\"]\n"
    );
    let mut gw = InProcess::on_loopback(&site);
    let out = gw.take_out();
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(&hex(SEED_TRAP), gw.traps)
        .unwrap();
    let mut seen = Vec::new();
    let until = Instant::now() + Duration::from_secs(60);
    let not_told = loop {
        let line = out
            .recv_timeout(Duration::from_secs(30))
            .expect("the gateway's records");
        if line.contains("\"action\":\"NotTold\"") {
            break line;
        }
        seen.push(line);
        assert!(Instant::now() < until, "no NotTold record");
    };
    let v: serde_json::Value = serde_json::from_str(&not_told).unwrap();
    assert_eq!(
        v["target"],
        format!("webhook http://127.0.0.1:{port}/never")
    );
    let dropped = v["dropped"].as_u64().unwrap();
    // 5,002 shutdowns, the queue's 4,096 and the one its thread holds kept.
    assert!((900..=906).contains(&dropped), "{not_told}");
    let orders = seen
        .iter()
        .filter(|l| l.contains("\"decision\":\"ShutdownRecorder\""))
        .count();
    assert_eq!(
        orders, 5002,
        "every shutdown decided, the target's drops or not"
    );
    // Stopped while the webhook still holds its POST and 4,096 records: what is left is
    // counted dropped, not tried (five seconds each: a stop that tried would not end).
    gw.stop();
    drop(silent);
}
