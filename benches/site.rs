//! Reading a large site file: 100,000 recorders on 1,000 UPSes checked into a `Site`, a
//! file with 100,000 mistakes reported, and what a SIGHUP costs the decision thread once
//! the file is read (the policy, ledger, virtual UPS and poller taking the new site).
//! Medians of several runs, each a fresh parse. Run: `cargo bench --bench site`.

use std::hint::black_box;
use std::time::Instant;

use trapgate::engine::agent::Agent;
use trapgate::engine::config::{Remap, Site};
use trapgate::engine::ledger::Ledger;
use trapgate::engine::policy::Decider;
use trapgate::engine::poller::{Poller, Sequence};
use trapgate::time::Timestamp;

/// Recorder `r`'s address: 10.2.0.1 onwards, 250 to a /24.
fn address(r: usize) -> String {
    format!("10.{}.{}.{}", 2 + r / 62_500, (r / 250) % 250, r % 250 + 1)
}

/// A site of `recorders` recorders on `upses` UPSes, as a site engineer would write it.
fn big(upses: usize, recorders: usize) -> String {
    let mut s = String::from(
        "[gateway]\nlisten = [\"0.0.0.0:162\"]\n\n[policy]\ngrace = { 1 = \"10m\", 2 = \"2m\" }\n\
         shutdown_below_charge = 30\nshutdown_below_runtime = \"5m\"\n\n",
    );
    for u in 0..upses {
        s += &format!(
            "[[ups]]\nname = \"ups-{u}\"\naddress = \"10.1.{}.{}\"\nvendor = \"apc\"\noutlet_off_delay = \"3m\"\n\n",
            u / 250,
            u % 250 + 1
        );
    }
    for r in 0..recorders {
        s += &format!(
            "[[recorder]]\nname = \"nvr-{r}\"\naddress = \"{}\"\nups = \"ups-{}\"\ntier = {}\nshutdown_time = \"90s\"\n\n",
            address(r),
            r % upses,
            r % 2 + 1
        );
    }
    s
}

/// `recorders` recorders with one mistake each: the first names a UPS that does not
/// exist, every other one has the first one's name.
fn broken(recorders: usize) -> String {
    let mut s = String::from(
        "[policy]\ngrace = { 1 = \"10m\" }\nshutdown_below_charge = 30\nshutdown_below_runtime = \"5m\"\n\n\
         [[ups]]\nname = \"u\"\naddress = \"10.0.0.1\"\nvendor = \"apc\"\noutlet_off_delay = \"3m\"\n\n",
    );
    for r in 0..recorders {
        s += &format!(
            "[[recorder]]\nname = \"nvr\"\naddress = \"{}\"\nups = \"{}\"\ntier = 1\nshutdown_time = \"90s\"\n\n",
            address(r),
            if r == 0 { "nowhere" } else { "u" }
        );
    }
    s
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let (recorders, rounds) = if quick { (10_000, 1) } else { (100_000, 7) };
    let upses = recorders / 100;
    let good = big(upses, recorders);
    let bad = broken(recorders);
    let (mut read, mut refused, mut prepared, mut applied) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut mistakes = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        let site = Site::parse(black_box(&good)).expect("a valid site");
        read.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        mistakes = Site::parse(black_box(&bad)).expect_err("mistakes").len();
        refused.push(t.elapsed().as_secs_f64());
        // What the decision thread does with a site read for it (SIGHUP): the reload
        // thread made the new machines and the remap; the decision thread carries the
        // state over.
        let now = Timestamp(1_700_000_000_000_000_000);
        let mut decider = Decider::new(site.clone());
        let mut ledger = Ledger::new(&site);
        let mut agent = Agent::new(&site, now);
        let mut poller = Poller::new(&site, now, Box::new(Sequence(1)));
        let t = Instant::now();
        let remap = Remap::between(&site, &site);
        let fresh = (
            Decider::new(site.clone()),
            Ledger::new(&site),
            Agent::new(&site, now),
            Poller::new(&site, now, Box::new(Sequence(1))),
        );
        prepared.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let mut old = None;
        if decider.reload_refusal(&site).is_none() {
            old = Some((
                agent.take_over(fresh.2, &remap),
                poller.take_over(fresh.3, &remap),
                ledger.take_over(fresh.1, &remap),
                decider.take_over(fresh.0, &remap),
            ));
        }
        applied.push(t.elapsed().as_secs_f64());
        // The gateway drops what was replaced on the reload thread.
        drop(old);
        black_box((&decider, &ledger, &agent, &poller));
    }
    assert_eq!(mistakes, recorders, "every mistake reported");
    if quick {
        println!(
            "site bench: {recorders} recorders read, {mistakes} mistakes reported; run `cargo bench --bench site` to measure"
        );
        return;
    }
    println!(
        "site of {recorders} recorders on {upses} UPSes ({:.1} MB): read and checked in {:.0} ms (median of {rounds})",
        good.len() as f64 / 1e6,
        median(read) * 1e3
    );
    println!(
        "file with {mistakes} mistakes ({:.1} MB): every one reported, with line and column, in {:.0} ms",
        bad.len() as f64 / 1e6,
        median(refused) * 1e3
    );
    println!(
        "SIGHUP: the new policy, ledger, virtual UPS, poller and remap made on the reload thread in {:.0} ms; \
         the decision thread carries the state over in {:.1} ms",
        median(prepared) * 1e3,
        median(applied) * 1e3
    );
}
