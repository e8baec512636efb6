use super::*;
use crate::engine::config::DEFAULT_SITE;
use crate::engine::record::AlertKind;
use crate::engine::trust::Trust;
use crate::time::ns;
use proptest::prelude::*;

const UPS: &str = "192.168.61.250";
const S: u64 = ns::SECOND;
/// The seed site's UPS, as the trust layer names it.
const MAIN: Who = Who::Ups(UpsId(0));

fn t(secs: u64) -> Timestamp {
    Timestamp(1_000 * S + secs * S)
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn decider() -> Decider {
    let mut d = Decider::new(Site::default_site());
    assert_eq!(d.poll_decision(), None, "the default site has no warnings");
    d
}

/// Feeds `events` (seconds, event), firing every timer due before each, then up to `end`.
fn run(d: &mut Decider, events: &[(u64, Event)], end: u64) -> Vec<(u64, Decision)> {
    let mut out = Vec::new();
    // As a driver does: a poll decided goes out at once.
    let drain = |d: &mut Decider, at: u64, out: &mut Vec<(u64, Decision)>| {
        while let Some(x) = d.poll_decision() {
            if let Decision::Poll { ups, .. } = x {
                d.handle_poll_sent(t(at), ups);
            }
            out.push((at, x));
        }
    };
    drain(d, 0, &mut out);
    let fire = |d: &mut Decider, until: u64, out: &mut Vec<(u64, Decision)>| {
        while let Some(due) = d.poll_timeout().filter(|due| *due <= t(until)) {
            d.handle_timeout(due);
            drain(d, (due.0 - t(0).0) / S, out);
        }
    };
    for &(at, event) in events {
        fire(d, at, &mut out);
        d.handle_notification(t(at), MAIN, event, event.name());
        drain(d, at, &mut out);
    }
    fire(d, end, &mut out);
    out
}

fn shutdowns(log: &[(u64, Decision)]) -> Vec<(u64, usize)> {
    log.iter()
        .filter_map(|(at, d)| match d {
            Decision::ShutdownRecorder { recorder, .. } => Some((*at, recorder.index())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_blip_shorter_than_the_grace_shuts_nothing_down() {
    let mut d = decider();
    let log = run(
        &mut d,
        &[(0, Event::OnBattery), (30, Event::PowerRestored)],
        1000,
    );
    assert!(shutdowns(&log).is_empty(), "{log:?}");
    // The cancel comes once mains power has stayed back for SETTLE.
    assert!(
        log.iter().any(|(at, x)| *at == 90
            && matches!(x, Decision::CancelShutdown { tiers, .. } if *tiers == vec![1, 2])),
        "{log:?}"
    );
}

#[test]
fn a_long_outage_sheds_tier_by_tier_then_low_battery_takes_the_rest() {
    let mut d = decider();
    // nvr-244 is tier 2 (grace 2 min), nvr-251 tier 1 (grace 10 min).
    let log = run(
        &mut d,
        &[(0, Event::OnBattery), (300, Event::LowBattery)],
        400,
    );
    assert_eq!(shutdowns(&log), vec![(120, 0), (305, 1)], "{log:?}");
    let poll = log.iter().find(|(_, x)| matches!(x, Decision::Poll { .. }));
    assert_eq!(poll.map(|(at, _)| *at), Some(300));
}

#[test]
fn low_battery_confirmed_by_poll_shuts_everything_lower_tiers_first() {
    let mut d = decider();
    d.handle_notification(t(0), MAIN, Event::LowBattery, "lowBattery");
    let answer = PollAnswer {
        on_battery: Some(true),
        ..PollAnswer::default()
    };
    d.handle_poll(t(1), UpsId(0), answer);
    let log: Vec<Decision> = std::iter::from_fn(|| d.poll_decision()).collect();
    let order: Vec<usize> = log
        .iter()
        .filter_map(|x| match x {
            Decision::ShutdownRecorder {
                recorder,
                reason,
                cause,
                ..
            } => {
                assert_eq!(&**reason, "lowBattery confirmed by poll");
                assert_eq!(cause.event, Some(Event::LowBattery));
                Some(recorder.index())
            }
            _ => None,
        })
        .collect();
    assert_eq!(order, vec![0, 1], "tier 2 (nvr-244) before tier 1: {log:?}");
    // The shutdown is the presented 0 % too: no decision of its own.
    assert!(
        !log.iter()
            .any(|d| matches!(d, Decision::PresentCharge { .. })),
        "{log:?}"
    );
}

#[test]
fn an_unanswered_poll_follows_the_site_choice() {
    let mut d = decider();
    let log = run(&mut d, &[(0, Event::LowBattery)], 60);
    assert_eq!(shutdowns(&log), vec![(5, 0), (5, 1)], "{log:?}");
    let ignore = DEFAULT_SITE.replace(
        "when_unconfirmed = \"shutdown\"",
        "when_unconfirmed = \"ignore\"",
    );
    let mut d = Decider::new(Site::parse(&ignore).expect("valid"));
    let log = run(&mut d, &[(0, Event::LowBattery)], 60);
    assert!(shutdowns(&log).is_empty(), "{log:?}");
    assert!(log.iter().any(|(_, x)| matches!(
        x,
        Decision::Alert {
            kind: AlertKind::NotConfirmed,
            ..
        }
    )));
}

#[test]
fn a_poll_that_contradicts_the_trap_shuts_nothing() {
    let mut d = decider();
    d.handle_notification(t(0), MAIN, Event::ShutdownPending, "gracefulShutdown");
    let fine = PollAnswer {
        on_battery: Some(false),
        battery_low: Some(false),
        charge: Some(100),
        runtime: None,
    };
    d.handle_poll(t(1), UpsId(0), fine);
    let log = run(&mut d, &[], 3600);
    assert!(shutdowns(&log).is_empty(), "{log:?}");
}

#[test]
fn repeated_on_battery_traps_restart_nothing() {
    let mut d = decider();
    // RFC 1628's upsTrapOnBattery repeats every minute.
    let events: Vec<(u64, Event)> = (0..10).map(|m| (m * 60, Event::OnBattery)).collect();
    let log = run(&mut d, &events, 700);
    assert_eq!(shutdowns(&log), vec![(120, 0), (600, 1)]);
    let alerts = log
        .iter()
        .filter(|(_, x)| {
            matches!(
                x,
                Decision::Alert {
                    kind: AlertKind::OnBattery,
                    ..
                }
            )
        })
        .count();
    assert_eq!(alerts, 1);
}

#[test]
fn the_on_battery_alert_says_the_plan_or_that_there_is_none() {
    let alert = |site: Site| {
        let mut d = Decider::new(site);
        let log = run(&mut d, &[(0, Event::OnBattery)], 1);
        log.into_iter()
            .find_map(|(_, x)| match x {
                Decision::Alert {
                    kind: AlertKind::OnBattery,
                    text,
                    ..
                } => Some(text),
                _ => None,
            })
            .expect("an on-battery alert")
    };
    assert_eq!(
        alert(Site::default_site()),
        "UPS `ups-main` on battery (OnBattery): tier 2 in 120 s, tier 1 in 600 s"
    );
    // A UPS that feeds no recorder (a spare, or one watched for the NMS only).
    let bare = DEFAULT_SITE[..DEFAULT_SITE.find("[[recorder]]").expect("recorders")].to_string();
    assert_eq!(
        alert(Site::parse(&bare).expect("valid")),
        "UPS `ups-main` on battery (OnBattery): it feeds no recorder of the site: nothing to shut down"
    );
}

#[test]
fn flapping_power_sends_no_storm() {
    let mut d = decider();
    let mut events = Vec::new();
    for i in 0..20 {
        events.push((i * 10, Event::OnBattery));
        events.push((i * 10 + 5, Event::PowerRestored));
    }
    let log = run(&mut d, &events, 400);
    // One alert; the outage clock keeps running from the first OnBattery; one cancel at the end.
    assert_eq!(
        log.iter()
            .filter(|(_, x)| matches!(x, Decision::Alert { .. }))
            .count(),
        1,
        "{log:?}"
    );
    assert_eq!(shutdowns(&log), vec![(120, 0)], "{log:?}");
    let cancels: Vec<u64> = log
        .iter()
        .filter(|(_, x)| matches!(x, Decision::CancelShutdown { .. }))
        .map(|(at, _)| *at)
        .collect();
    assert_eq!(cancels, vec![255]);
}

#[test]
fn charge_under_the_threshold_shuts_everything_down() {
    let mut d = decider();
    d.handle_notification(t(0), MAIN, Event::OnBattery, "upsOnBattery");
    d.handle_poll(
        t(10),
        UpsId(0),
        PollAnswer {
            charge: Some(18),
            ..PollAnswer::default()
        },
    );
    let log = run(&mut d, &[], 20);
    // Decisions made before `run` are logged at 0.
    assert_eq!(shutdowns(&log), vec![(0, 0), (0, 1)], "{log:?}");
    let reason = log.iter().find_map(|(_, x)| match x {
        Decision::ShutdownRecorder { reason, .. } => Some(reason.clone()),
        _ => None,
    });
    assert_eq!(reason.as_deref(), Some("poll: charge 18% below 30%"));
}

#[test]
fn a_low_charge_while_recharging_on_mains_shuts_nothing_down() {
    let mut d = decider();
    d.handle_notification(t(0), MAIN, Event::OnBattery, "upsOnBattery");
    d.handle_notification(t(30), MAIN, Event::PowerRestored, "powerRestored");
    // Mains power is back and the battery recharges from 20 %: said with or without the
    // output source, a low charge is not a reason to shut down any more.
    let recharging = |on_battery| PollAnswer {
        on_battery,
        charge: Some(20),
        ..PollAnswer::default()
    };
    d.handle_poll(t(40), UpsId(0), recharging(None));
    d.handle_poll(t(50), UpsId(0), recharging(Some(false)));
    d.handle_poll(t(200), UpsId(0), recharging(None));
    let log = run(&mut d, &[], 300);
    assert_eq!(shutdowns(&log), vec![], "{log:?}");
    // On battery again, the same charge does shut down.
    d.handle_poll(t(400), UpsId(0), recharging(Some(true)));
    let log = run(&mut d, &[], 410);
    assert_eq!(shutdowns(&log).len(), 2, "{log:?}");
}

#[test]
fn acknowledgements_are_recorded_for_told_recorders_only() {
    let mut d = decider();
    let nvr = Who::Recorder(RecorderId(1));
    d.handle_notification(t(0), nvr, Event::RecorderAck, "recorderAck");
    assert_eq!(d.poll_decision(), None);
    let _ = run(&mut d, &[(0, Event::LowBattery)], 10);
    d.handle_notification(t(20), nvr, Event::RecorderAck, "recorderAck");
    assert_eq!(
        d.poll_decision(),
        Some(Decision::Acknowledged {
            recorder: RecorderId(1)
        })
    );
    // Said once an outage: its repeats (a flood of them) change nothing.
    let before = d.revision();
    for i in 0..1000 {
        d.handle_notification(t(21 + i), nvr, Event::RecorderAck, "recorderAck");
    }
    assert_eq!(d.poll_decision(), None);
    assert_eq!(d.revision(), before, "repeats leave the state as it was");
}

#[test]
fn poll_answers_are_read_from_ups_mib_and_powernet() {
    use crate::wire::oid::oid;
    let names = [
        oid("1.3.6.1.2.1.33.1.2.4.0"),
        oid("1.3.6.1.2.1.33.1.4.1.0"),
        oid("1.3.6.1.4.1.318.1.1.1.2.2.3.0"),
        oid("1.3.6.1.4.1.318.1.1.1.2.1.1.0"),
    ];
    let vbs = [
        VarBind {
            name: names[0].as_oid(),
            value: Value::Integer(18),
        },
        VarBind {
            name: names[1].as_oid(),
            value: Value::Integer(5),
        },
        VarBind {
            name: names[2].as_oid(),
            value: Value::TimeTicks(30_000),
        },
        VarBind {
            name: names[3].as_oid(),
            value: Value::Integer(3),
        },
    ];
    let a = PollAnswer::from_varbinds(&vbs);
    assert_eq!(
        a,
        PollAnswer {
            on_battery: Some(true),
            battery_low: Some(true),
            charge: Some(18),
            runtime: Some(Secs(300))
        }
    );
}

fn calm_event() -> impl Strategy<Value = (u64, u8, bool)> {
    // (seconds later, which event, spoofed?) with no shutdown-class event from the UPS.
    (0u64..400, 0u8..8, any::<bool>())
}

proptest! {
    /// A UPS that stays on mains, with no low-battery or shutdown-pending event, never
    /// causes a shutdown, whatever else arrives (spoofed shutdown traps included).
    #[test]
    fn no_shutdown_while_the_ups_stays_on_mains(steps in proptest::collection::vec(calm_event(), 0..40)) {
        let mut d = decider();
        let trust = Trust::new(d.site());
        let mut now = 0;
        for (gap, which, spoof) in steps {
            now += gap;
            d.handle_timeout(t(now));
            let (event, source, community): (Event, &str, &[u8]) = match (which, spoof) {
                (0, _) => (Event::PowerRestored, UPS, b"public"),
                (1, _) => (Event::BatteryRestored, UPS, b"public"),
                (2, _) => (Event::CommunicationLost, UPS, b"public"),
                (3, _) => (Event::Informational, UPS, b"public"),
                (4, _) => (Event::RecorderAck, "192.168.61.251", b"public"),
                (5, true) => (Event::LowBattery, "10.9.9.9", b"public"),
                (5, false) => (Event::ShutdownPending, UPS, b"wrong"),
                (6, _) => {
                    d.handle_poll(t(now), UpsId(0), PollAnswer { on_battery: Some(false), battery_low: Some(false), charge: Some(90), runtime: Some(Secs(3600)) });
                    continue;
                }
                _ => (Event::Unknown, UPS, b"public"),
            };
            // What the trust layer admits reaches the policy; the rest is refused.
            if let Some(who) = trust.who(ip(source))
                && let Ok(who) =
                    trust.notification(who, crate::engine::trust::Credential::community(community), event)
            {
                d.handle_notification(t(now), who, event, event.name());
            }
        }
        d.handle_timeout(t(now + 100_000));
        while let Some(x) = d.poll_decision() {
            prop_assert!(!matches!(x, Decision::ShutdownRecorder { .. }), "{:?}", x);
        }
    }

    /// Whatever happens, a recorder is told at most once per outage, and every order
    /// carries its reason and cause.
    #[test]
    fn one_order_per_recorder_per_outage(steps in proptest::collection::vec((0u64..300, 0u8..7), 0..60)) {
        let mut d = decider();
        let mut now = 0;
        let mut told = [0u32; 2];
        let mut outages = 0u32;
        let check = |d: &mut Decider, told: &mut [u32; 2], outages: &mut u32| -> Result<(), TestCaseError> {
            while let Some(x) = d.poll_decision() {
                match x {
                    Decision::Alert { kind: AlertKind::OnBattery | AlertKind::Outage, .. } => *outages += 1,
                    Decision::ShutdownRecorder { recorder, reason, cause, .. } => {
                        told[recorder] += 1;
                        prop_assert!(told[recorder] <= *outages, "recorder {} told {} times in {} outages", recorder, told[recorder], outages);
                        prop_assert!(!reason.is_empty() && !cause.rule.is_empty());
                    }
                    _ => {}
                }
            }
            Ok(())
        };
        for (gap, which) in steps {
            now += gap;
            while let Some(due) = d.poll_timeout().filter(|due| *due <= t(now)) {
                d.handle_timeout(due);
                check(&mut d, &mut told, &mut outages)?;
            }
            match which {
                0 => d.handle_notification(t(now), MAIN, Event::OnBattery, "upsOnBattery"),
                1 => d.handle_notification(t(now), MAIN, Event::LowBattery, "lowBattery"),
                2 => d.handle_notification(t(now), MAIN, Event::PowerRestored, "powerRestored"),
                3 => d.handle_notification(t(now), MAIN, Event::ShutdownPending, "gracefulShutdown"),
                4 => d.handle_poll(t(now), UpsId(0), PollAnswer { on_battery: Some(true), charge: Some(10), ..PollAnswer::default() }),
                5 => d.handle_poll(t(now), UpsId(0), PollAnswer { on_battery: Some(false), battery_low: Some(false), charge: Some(100), runtime: None }),
                _ => d.handle_notification(t(now), MAIN, Event::BatteryRestored, "returnFromLowBattery"),
            }
            check(&mut d, &mut told, &mut outages)?;
        }
    }
}

#[test]
fn battery_restored_ends_an_outage_like_power_restored() {
    let mut d = decider();
    let log = run(
        &mut d,
        &[(0, Event::OnBattery), (30, Event::BatteryRestored)],
        1000,
    );
    assert!(shutdowns(&log).is_empty(), "{log:?}");
    assert!(
        log.iter()
            .any(|(at, x)| *at == 90 && matches!(x, Decision::CancelShutdown { .. })),
        "{log:?}"
    );
}

#[test]
fn a_second_outage_tells_the_recorders_again() {
    let mut d = decider();
    let log = run(
        &mut d,
        &[
            (0, Event::LowBattery),
            (100, Event::PowerRestored),
            (1000, Event::LowBattery),
        ],
        2000,
    );
    // Each outage: the poll goes unanswered and both recorders are told, once.
    assert_eq!(
        shutdowns(&log),
        vec![(5, 0), (5, 1), (1005, 0), (1005, 1)],
        "{log:?}"
    );
}

#[test]
fn a_poll_saying_mains_is_back_ends_the_outage_and_one_saying_battery_resumes_it() {
    let mut d = decider();
    d.handle_notification(t(0), MAIN, Event::OnBattery, "upsOnBattery");
    d.handle_poll(
        t(30),
        UpsId(0),
        PollAnswer {
            on_battery: Some(false),
            ..PollAnswer::default()
        },
    );
    d.handle_poll(
        t(50),
        UpsId(0),
        PollAnswer {
            on_battery: Some(true),
            ..PollAnswer::default()
        },
    );
    let log = run(&mut d, &[], 130);
    // Still the same outage: tier 2's grace counts from 0.
    assert_eq!(shutdowns(&log), vec![(120, 0)], "{log:?}");
    d.handle_poll(
        t(200),
        UpsId(0),
        PollAnswer {
            on_battery: Some(false),
            ..PollAnswer::default()
        },
    );
    let log = run(&mut d, &[], 300);
    assert!(
        log.iter()
            .any(|(_, x)| matches!(x, Decision::CancelShutdown { tiers, .. } if *tiers == vec![1])),
        "{log:?}"
    );
}

#[test]
fn a_reload_keeps_the_outage_of_a_ups_that_stays() {
    let mut d = decider();
    let log = run(&mut d, &[(0, Event::OnBattery)], 130);
    assert_eq!(shutdowns(&log), vec![(120, 0)]);
    // The site file changes: a third recorder on the same UPS, tier 2 grace now 3 min.
    let text = DEFAULT_SITE.replace(
        "grace = { 1 = \"10m\", 2 = \"2m\" }",
        "grace = { 1 = \"10m\", 2 = \"3m\" }",
    ) + "\n[[recorder]]\nname = \"nvr-new\"\naddress = \"192.168.61.245\"\nups = \"ups-main\"\ntier = 1\nshutdown_time = \"60s\"\n";
    d.reload(Site::parse(&text).expect("valid"));
    let log = run(&mut d, &[], 700);
    // nvr-244 is not told again; tier 1 (nvr-251 and the new one) still at 600 s from the first OnBattery.
    let told: Vec<(u64, String)> = log
        .iter()
        .filter_map(|(at, x)| match x {
            Decision::ShutdownRecorder { recorder, .. } => {
                Some((*at, d.site().recorders[*recorder].name.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        told,
        vec![(600, "nvr-251".to_string()), (600, "nvr-new".to_string())],
        "{log:?}"
    );
}

#[test]
fn the_confirm_window_runs_from_when_the_poll_left() {
    let mut d = decider();
    d.handle_notification(t(0), MAIN, Event::LowBattery, "lowBattery");
    assert!(matches!(d.poll_decision(), Some(Decision::Poll { .. })));
    // The decision thread was late: the poll left only at 3 s. Nothing times out before
    // it has left, and the UPS has the whole poll_timeout (5 s) from then.
    assert_eq!(d.poll_timeout(), None);
    d.handle_timeout(t(60));
    assert_eq!(
        d.poll_decision(),
        None,
        "no 'did not answer' before the poll left"
    );
    let mut d = decider();
    d.handle_notification(t(0), MAIN, Event::LowBattery, "lowBattery");
    let _ = d.poll_decision();
    d.handle_poll_sent(t(3), UpsId(0));
    d.handle_poll_sent(t(4), UpsId(0));
    assert_eq!(d.poll_timeout(), Some(t(8)), "from the first try that left");
    d.handle_timeout(t(7));
    assert_eq!(d.poll_decision(), None);
    // The card says all is well at 7 s: not confirmed, nothing shut down.
    d.handle_poll(
        t(7),
        UpsId(0),
        PollAnswer {
            on_battery: Some(false),
            battery_low: Some(false),
            charge: Some(100),
            runtime: None,
        },
    );
    let log = run(&mut d, &[], 100);
    assert!(shutdowns(&log).is_empty(), "{log:?}");
}

#[test]
fn a_confirming_poll_that_could_not_be_sent_follows_the_site_choice() {
    let mut d = decider();
    d.handle_notification(t(0), MAIN, Event::LowBattery, "lowBattery");
    let _ = d.poll_decision();
    d.handle_poll_unanswered(t(6), UpsId(0), false);
    let log = run(&mut d, &[], 7);
    assert_eq!(shutdowns(&log).len(), 2, "{log:?}");
    assert!(log.iter().any(|(_, x)| matches!(x,
        Decision::ShutdownRecorder { reason, .. } if &**reason == "lowBattery, not confirmed: the poll could not be sent")));
}

#[test]
fn a_reload_that_would_drop_an_outage_is_refused() {
    let mut d = decider();
    let calm = DEFAULT_SITE.replace("name = \"ups-main\"", "name = \"ups-renamed\"");
    let calm =
        Site::parse(&calm.replace("ups = \"ups-main\"", "ups = \"ups-renamed\"")).expect("valid");
    assert_eq!(
        d.reload_refusal(&calm),
        None,
        "no outage: any change is fine"
    );
    d.handle_notification(t(0), MAIN, Event::OnBattery, "upsOnBattery");
    let why = d.reload_refusal(&calm).expect("refused");
    assert!(
        why.contains("UPS `ups-main` is in an outage and the new file removes or renames it"),
        "{why}"
    );
    let moved = Site::parse(&DEFAULT_SITE.replace(
        "address = \"192.168.61.250\"",
        "address = \"192.168.61.249\"",
    ))
    .expect("valid");
    let why = d.reload_refusal(&moved).expect("refused");
    assert!(
        why.contains("moves it from 192.168.61.250 to 192.168.61.249"),
        "{why}"
    );
    let same = Site::default_site();
    assert_eq!(d.reload_refusal(&same), None);
    assert_eq!(d.oldest_outage(), Some(t(0)));
}

#[test]
fn recorders_see_the_real_values_as_soon_as_mains_power_is_back() {
    let mut d = decider();
    // Low battery (confirm by poll: the poll confirms), everything told at 10 s; mains
    // back at 100 s; gone again at 120 s (within the settling minute); back at 130 s.
    d.handle_notification(t(10), MAIN, Event::LowBattery, "lowBattery");
    while let Some(x) = d.poll_decision() {
        if let Decision::Poll { ups, .. } = x {
            d.handle_poll_sent(t(10), ups);
        }
    }
    let on_battery = PollAnswer {
        on_battery: Some(true),
        battery_low: Some(true),
        ..PollAnswer::default()
    };
    d.handle_poll(t(10), UpsId(0), on_battery);
    let told: Vec<Decision> = std::iter::from_fn(|| d.poll_decision()).collect();
    assert_eq!(
        shutdowns(&told.iter().map(|x| (10, x.clone())).collect::<Vec<_>>()).len(),
        2
    );
    let log = run(
        &mut d,
        &[
            (100, Event::PowerRestored),
            (120, Event::OnBattery),
            (130, Event::PowerRestored),
        ],
        400,
    );
    let presented: Vec<(u64, usize, Option<u8>)> = log
        .iter()
        .filter_map(|(at, x)| match x {
            Decision::PresentCharge { recorder, percent } => {
                Some((*at, recorder.index(), *percent))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        presented,
        [
            // At once with PowerBack, not a minute later.
            (100, 0, None),
            (100, 1, None),
            // The same outage goes on: 0 % again.
            (120, 0, Some(0)),
            (120, 1, Some(0)),
            (130, 0, None),
            (130, 1, None),
        ],
        "{log:?}"
    );
}

/// The seed's site with a second UPS (192.168.61.249) and a recorder fed by both,
/// deciding on traps alone.
fn dual_site() -> Site {
    let text = DEFAULT_SITE
        .replace("confirm_by_poll = true", "confirm_by_poll = false")
        .replacen(
            "[[recorder]]\n",
            "[[ups]]\nname = \"ups-b\"\naddress = \"192.168.61.249\"\nvendor = \"apc\"\noutlet_off_delay = \"3m\"\n\n[[recorder]]\nname = \"nvr-dual\"\naddress = \"192.168.61.230\"\nups = [\"ups-main\", \"ups-b\"]\ntier = 1\nshutdown_time = \"90s\"\n\n[[recorder]]\n",
            1,
        );
    Site::parse(&text).expect("valid")
}

fn told_dual(d: &mut Decider) -> Vec<String> {
    let dual = RecorderId::enumerate(&d.site().recorders)
        .find(|(_, r)| r.name == "nvr-dual")
        .map(|(i, _)| i)
        .unwrap();
    std::iter::from_fn(|| d.poll_decision())
        .filter_map(|x| match x {
            Decision::ShutdownRecorder {
                recorder, reason, ..
            } if recorder == dual => Some(format!("down: {reason}")),
            Decision::Alert {
                kind: AlertKind::CarriedByAnotherFeed,
                text,
                ..
            } => Some(format!("up: {text}")),
            _ => None,
        })
        .collect()
}

#[test]
fn a_recorder_fed_by_two_ups_goes_only_when_neither_can_carry_it() {
    let (a, b) = (Who::Ups(UpsId(0)), Who::Ups(UpsId(1)));
    let mut d = Decider::new(dual_site());
    let _ = told_dual(&mut d);
    d.handle_notification(t(0), a, Event::OnBattery, "upsOnBattery");
    d.handle_notification(t(10), a, Event::LowBattery, "lowBattery");
    let said = told_dual(&mut d);
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(
        said[0].starts_with("up: recorder `nvr-dual` stays up: lowBattery, but 1 of its 2 UPS still carry it (ups-main cannot, ups-b can carry it; it needs 1)"),
        "{said:?}"
    );
    d.handle_notification(t(20), b, Event::OnBattery, "upsOnBattery");
    d.handle_notification(t(30), b, Event::LowBattery, "lowBattery");
    let said = told_dual(&mut d);
    assert_eq!(
        said,
        [
            "down: lowBattery; only 0 of its 2 UPS can carry it, it needs 1 (ups-main cannot, ups-b cannot)"
        ]
    );
    // Told once: the first UPS's timers or traps do not tell it again.
    d.handle_notification(t(40), a, Event::LowBattery, "lowBattery");
    d.handle_timeout(t(700));
    assert!(told_dual(&mut d).iter().all(|s| !s.starts_with("down")));
}

#[test]
fn a_feed_back_on_mains_carries_its_recorder_again() {
    let (a, b) = (Who::Ups(UpsId(0)), Who::Ups(UpsId(1)));
    let mut d = Decider::new(dual_site());
    let _ = told_dual(&mut d);
    d.handle_notification(t(0), a, Event::OnBattery, "upsOnBattery");
    d.handle_notification(t(10), a, Event::LowBattery, "lowBattery");
    // The first feed comes back mid-outage and holds (its settling minute passes).
    d.handle_notification(t(20), a, Event::PowerRestored, "powerRestored");
    d.handle_timeout(t(90));
    let _ = told_dual(&mut d);
    // The second one fails: the first carries it again.
    d.handle_notification(t(100), b, Event::OnBattery, "upsOnBattery");
    d.handle_notification(t(110), b, Event::LowBattery, "lowBattery");
    let said = told_dual(&mut d);
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(
        said[0].contains("ups-main can carry it, ups-b cannot"),
        "{said:?}"
    );
    // needs = 2: either failing takes it down.
    let text = dual_site().text.replace(
        "tier = 1\nshutdown_time = \"90s\"\n\n[[recorder]]\nname = \"nvr-244\"",
        "tier = 1\nshutdown_time = \"90s\"\nneeds = 2\n\n[[recorder]]\nname = \"nvr-244\"",
    );
    let mut d = Decider::new(Site::parse(&text).expect("valid"));
    let _ = told_dual(&mut d);
    d.handle_notification(t(0), a, Event::LowBattery, "lowBattery");
    let said = told_dual(&mut d);
    assert!(
        said.iter()
            .any(|s| s.starts_with("down:") && s.contains("it needs 2")),
        "{said:?}"
    );
}
