//! Network namespaces of a test's or a benchmark's own (`ip netns`), for what loopback
//! cannot play: an address that moves between two hosts (keepalived), a host that dies.
//! Addresses only inside them (192.0.2.0/24, and 198.18.0.0/15, the benchmarking
//! range, for thousands of recorders); every namespace made is deleted, its processes
//! killed first, when its `Namespaces` is dropped. (Test support only: its unsafe is
//! `geteuid`, `kill` and `setns`.)
#![allow(unsafe_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

/// Namespaces made, and the processes run in them: all gone on drop.
#[derive(Default)]
pub struct Namespaces {
    /// Their names.
    pub names: Vec<String>,
    /// Processes started in them (killed on drop).
    pub children: Vec<Child>,
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for n in &self.names {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

/// Runs `ip ARGS`; panics with its complaint if it fails.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip runs");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether network namespaces can be made here (root, `ip`): why not, if not.
pub fn possible(tag: &str) -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not root".into());
    }
    let probe = format!("{tag}probe");
    let made = Command::new("ip")
        .args(["netns", "add", &probe])
        .output()
        .map_err(|e| format!("no `ip`: {e}"))?;
    if !made.status.success() {
        return Err(String::from_utf8_lossy(&made.stderr).trim().to_string());
    }
    let _ = Command::new("ip").args(["netns", "del", &probe]).status();
    Ok(())
}

/// A site of two gateway hosts, `{tag}a` at `192.0.2.1/24` and `{tag}b` at
/// `192.0.2.2/24` (each with `eth0` on a bridge), and the site `{tag}s` holding the
/// bridge with `site_addresses`. With `benchmark_range`, 198.18.0.0/16 is local to the
/// site (every address of it answers there) and routed to it from both gateways.
pub fn pair_site(tag: &str, site_addresses: &[&str], benchmark_range: bool) -> Namespaces {
    let (a, b, s) = (format!("{tag}a"), format!("{tag}b"), format!("{tag}s"));
    let ns = Namespaces {
        names: vec![a.clone(), b.clone(), s.clone()],
        children: Vec::new(),
    };
    for n in &ns.names {
        ip(&["netns", "add", n]);
        ip(&["-n", n, "link", "set", "lo", "up"]);
    }
    ip(&["-n", &s, "link", "add", "br0", "type", "bridge"]);
    ip(&["-n", &s, "link", "set", "br0", "up"]);
    for addr in site_addresses {
        ip(&["-n", &s, "addr", "add", &format!("{addr}/24"), "dev", "br0"]);
    }
    for (g, addr, port) in [(&a, "192.0.2.1", "to-a"), (&b, "192.0.2.2", "to-b")] {
        ip(&[
            "-n", &s, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", g,
        ]);
        ip(&["-n", &s, "link", "set", port, "master", "br0", "up"]);
        ip(&["-n", g, "addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
        ip(&["-n", g, "link", "set", "eth0", "up"]);
    }
    if benchmark_range {
        ip(&[
            "-n",
            &s,
            "route",
            "add",
            "local",
            "198.18.0.0/16",
            "dev",
            "lo",
        ]);
        for g in [&a, &b] {
            ip(&[
                "-n",
                g,
                "route",
                "add",
                "198.18.0.0/16",
                "via",
                site_addresses[0],
            ]);
        }
    }
    ns
}

/// keepalived's configuration for one gateway of a pair (the README's): `address`
/// moved on `eth0`, `priority`, `advert_int` (below 1 s: VRRPv3), trapgate's own status
/// as its check (`trapgate` the binary's path).
pub fn keepalived_conf(
    name: &str,
    address: &str,
    priority: u32,
    advert: &str,
    trapgate: &str,
) -> String {
    let v3 = if advert.parse::<f64>().is_ok_and(|a| a < 1.0) {
        "    vrrp_version 3\n"
    } else {
        ""
    };
    format!(
        r#"global_defs {{
    router_id {name}
{v3}    script_user root
    enable_script_security
}}

vrrp_script trapgate {{
    script "{trapgate} status --http 127.0.0.1:9162"
    interval 1
    timeout 2
    fall 2
    rise 1
}}

vrrp_instance trapgate {{
    state BACKUP
    nopreempt
    interface eth0
    virtual_router_id 62
    priority {priority}
    advert_int {advert}
    virtual_ipaddress {{
        {address}/24 dev eth0
    }}
    track_script {{
        trapgate
    }}
}}
"#
    )
}

/// Lines of a child's stream, through a channel.
fn lines(stream: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stream)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Runs `args` inside namespace `ns`, its stdout and stderr as lines.
pub fn spawn_in(
    ns: &str,
    args: &[&str],
) -> (Child, mpsc::Receiver<String>, mpsc::Receiver<String>) {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let out = lines(child.stdout.take().expect("stdout"));
    let err = lines(child.stderr.take().expect("stderr"));
    (child, out, err)
}

/// Starts keepalived (VRRP only, in the foreground) in `ns` on `conf`, its pid files
/// in `dir`: the process, its stderr, and the file its VRRP process's pid is written to.
pub fn keepalived(
    ns: &str,
    conf: &std::path::Path,
    dir: &std::path::Path,
) -> (Child, mpsc::Receiver<String>, PathBuf) {
    let pid = |what: &str| dir.join(format!("{ns}-{what}.pid"));
    let vrrp = pid("vrrp");
    let (child, _, err) = spawn_in(
        ns,
        &[
            "keepalived",
            "--dont-fork",
            "--log-console",
            "--vrrp",
            "--use-file",
            &conf.display().to_string(),
            "--pid",
            &pid("main").display().to_string(),
            "--vrrp_pid",
            &vrrp.display().to_string(),
        ],
    );
    (child, err, vrrp)
}

/// One gateway of a pair started in its host's namespace.
pub struct Gateway {
    /// What `trapgate run` prints on stdout and stderr.
    pub out: mpsc::Receiver<String>,
    /// Its stderr.
    pub err: mpsc::Receiver<String>,
    /// keepalived's stderr.
    pub keepalived: mpsc::Receiver<String>,
    /// The file keepalived's VRRP process's pid is in (`kill_host`).
    pub vrrp_pid: PathBuf,
    /// Its journal.
    pub journal: PathBuf,
}

/// Starts `trapgate run` (`trapgate`: the binary) on `site` with a journal, and
/// keepalived (the README's configuration: `address`, `priority`, `advert`), in
/// namespace `ns`; their processes are added to `all` (trapgate's, then keepalived's),
/// their files go in `dir`.
pub fn start_gateway(
    all: &mut Namespaces,
    ns: &str,
    dir: &std::path::Path,
    (trapgate, site): (&str, &std::path::Path),
    (address, priority, advert): (&str, u32, &str),
) -> Gateway {
    let conf = dir.join(format!("{ns}.conf"));
    std::fs::write(
        &conf,
        keepalived_conf(ns, address, priority, advert, trapgate),
    )
    .expect("keepalived.conf");
    let journal = dir.join(format!("{ns}.journal"));
    let (tg, out, err) = spawn_in(
        ns,
        &[
            trapgate,
            "run",
            "--config",
            &site.display().to_string(),
            "--journal",
            &journal.display().to_string(),
        ],
    );
    let (ka, keepalived_err, vrrp_pid) = keepalived(ns, &conf, dir);
    all.children.push(tg);
    all.children.push(ka);
    Gateway {
        out,
        err,
        keepalived: keepalived_err,
        vrrp_pid,
        journal,
    }
}

/// Kills a host of a pair as a power cut would: keepalived's VRRP process first (it
/// says nothing on its way out), then `children` (SIGKILL), then its link.
pub fn kill_host(ns: &str, vrrp_pid_file: &std::path::Path, children: Vec<Child>) {
    if let Some(pid) = std::fs::read_to_string(vrrp_pid_file)
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
    {
        // SAFETY: kill on the pid keepalived wrote for its VRRP process.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    for mut c in children {
        // `ip netns exec` execs the program: the child is the program itself.
        let _ = c.kill();
        let _ = c.wait();
    }
    ip(&["-n", ns, "link", "del", "eth0"]);
}

/// Runs `f` on a thread inside namespace `ns` (the sockets it makes are the
/// namespace's).
pub fn in_namespace<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let path = PathBuf::from("/var/run/netns").join(ns);
    std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        let file = std::fs::File::open(&path).expect("the namespace");
        // SAFETY: setns on a namespace file descriptor, for this thread only.
        let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
        f()
    })
}
