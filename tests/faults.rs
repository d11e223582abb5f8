//! Fault injection under load: while a stream of events runs through `handoff serve`, the
//! service is killed with SIGKILL at random moments, its broker is restarted, and its
//! connections are dropped. In the end nothing may be lost or invented: every event is in
//! the journal exactly once, the decisions seen on `handoff.decisions` (deduplicated by
//! message id) are exactly `handoff replay` of the journal, no decision id came with two
//! bodies, and no hold was released later than its `hold_until`.
//!
//! The broker is a RabbitMQ node of the test's own (`support/node.rs`), since restarting
//! the shared one would break the tests running beside it.
//!
//! The short form (the defaults) runs in CI. The long form takes its sizes from the
//! environment, e.g.
//! `HANDOFF_FAULT_KILLS=200 HANDOFF_FAULT_DROPS=20 HANDOFF_FAULT_RESTARTS=3
//! HANDOFF_FAULT_EVENTS=60000 cargo test --release --test faults -- --nocapture`;
//! `HANDOFF_FAULT_SEED` picks another random schedule. The test prints a summary line
//! with the counts (docs/reliability.md quotes them).

#[path = "support/broker.rs"]
mod broker;
#[path = "support/load.rs"]
mod load;
#[path = "support/node.rs"]
mod node;
#[path = "support/serve.rs"]
mod serve;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::Value;

use handoff_gen::Rng;
use load::{
    Checked, audit, await_decisions, check_decisions, key, knob, load, outgoing, publish_all,
    shuffle,
};
use node::Node;
use serve::{Serve, jurisdictions, now_rfc3339, publishers_for, replay};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    Kill,
    DropConnections,
    RestartBroker,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_is_lost_through_kills_broker_restarts_and_dropped_connections() {
    let kills = knob("HANDOFF_FAULT_KILLS", 20) as usize;
    let drops = knob("HANDOFF_FAULT_DROPS", 3) as usize;
    let restarts = knob("HANDOFF_FAULT_RESTARTS", 1) as usize;
    let n_events = knob("HANDOFF_FAULT_EVENTS", 6000);
    let seed = knob("HANDOFF_FAULT_SEED", 20261124);
    let holds = knob("HANDOFF_FAULT_HOLDS", 40) as usize;
    let rate = knob("HANDOFF_FAULT_RATE", 400) as f64;
    let started = Instant::now();
    let mut rng = Rng::new(seed);

    let mut node = Node::start("faults", "");
    node.ctl(&["set_user_tags", "guest", "administrator", "impersonator"]);
    let service_url = node.add_user("handoff", &[]);

    // Holds end from 5 s after the load is made, one every 250 ms.
    let first_end = Utc::now() + chrono::Duration::seconds(5);
    let spacing = chrono::Duration::milliseconds(250);
    let events = load(n_events, seed, holds, first_end, spacing);
    let last_end = first_end + spacing * holds.saturating_sub(1) as i32;
    let distinct: BTreeSet<(String, String)> = events.iter().map(key).collect();
    let publishers = publishers_for(jurisdictions(&events).iter().map(String::as_str));
    let mut serve = Serve::start_on("faults", &service_url, &publishers, &[]);
    let seen = audit(vec![node.url()], "auditor", false).await;

    let messages = outgoing(&events);
    let confirmed = Arc::new(AtomicUsize::new(0));
    let resent = Arc::new(AtomicUsize::new(0));
    let sender = tokio::spawn(publish_all(
        vec![node.url()],
        messages.clone(),
        rate,
        confirmed.clone(),
        resent.clone(),
    ));

    // The faults, in a random order, each when the journal has grown by a random share of
    // the stream, so every one strikes while events are moving.
    let mut faults: Vec<Fault> = std::iter::repeat_n(Fault::Kill, kills)
        .chain(std::iter::repeat_n(Fault::DropConnections, drops))
        .chain(std::iter::repeat_n(Fault::RestartBroker, restarts))
        .collect();
    shuffle(&mut faults, &mut rng);
    let step = (distinct.len() / (faults.len() + 2)).max(1);
    let mut done: BTreeMap<Fault, usize> = BTreeMap::new();
    let mut while_publishing = 0;
    for fault in &faults {
        let grow = (step as u64 / 2 + rng.below(step as u64)) as usize;
        let before = serve.journal_lines().len();
        serve.wait_journal((before + grow).min(distinct.len()));
        if confirmed.load(Ordering::Relaxed) < messages.len() {
            while_publishing += 1;
        }
        match fault {
            Fault::Kill => {
                serve.kill();
                serve.spawn();
            }
            Fault::DropConnections => {
                node.close_all_connections();
                serve.wait_ready();
            }
            Fault::RestartBroker => {
                node.restart();
                serve.wait_ready();
            }
        }
        *done.entry(*fault).or_default() += 1;
    }
    sender.await.unwrap();
    serve.wait_journal(distinct.len());

    // Every event in the journal exactly once.
    let lines = serve.journal_lines();
    let journaled: Vec<(String, String)> = lines
        .iter()
        .map(|l| key(&serde_json::from_str(l).unwrap()))
        .collect();
    let journaled_set: BTreeSet<_> = journaled.iter().cloned().collect();
    assert_eq!(
        journaled.len(),
        journaled_set.len(),
        "an event was journaled twice"
    );
    assert_eq!(
        journaled_set, distinct,
        "the journal is not the events published"
    );

    // Wait until the last hold has ended, then compare what was published with replay.
    while Utc::now() < last_end + chrono::Duration::seconds(1) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let expected = replay(&serve.journal(), &now_rfc3339());
    let arrivals = await_decisions(&seen, &expected, || serve.logs()).await;
    let Checked {
        plain,
        live,
        lapsed,
        lags_ms,
    } = check_decisions(&arrivals, &expected, holds, "tx-fault-county");
    let duplicates = plain.len() - live.len();
    println!(
        "faults: seed={seed} events={} kills={} connection_drops={} broker_restarts={} \
         journaled={} journaled_twice=0 decisions={} decision_copies_seen={} \
         decisions_seen_more_than_once={duplicates} decisions_missing=0 decisions_extra=0 \
         ids_with_two_bodies=0 events_resent_by_publisher={} holds_lapsed={lapsed} \
         hold_releases_after_hold_until=0 run_holds={holds} \
         run_hold_release_seen_after_end_ms(p50/p90/max)={}/{}/{} \
         faults_while_publishing={while_publishing} service_runs={} elapsed_s={:.0}",
        distinct.len(),
        done.get(&Fault::Kill).copied().unwrap_or(0),
        done.get(&Fault::DropConnections).copied().unwrap_or(0),
        done.get(&Fault::RestartBroker).copied().unwrap_or(0),
        lines.len(),
        live.len(),
        plain.len(),
        resent.load(Ordering::Relaxed),
        lags_ms.get(lags_ms.len() / 2).copied().unwrap_or(0),
        lags_ms.get(lags_ms.len() * 9 / 10).copied().unwrap_or(0),
        lags_ms.last().copied().unwrap_or(0),
        serve.runs,
        started.elapsed().as_secs_f64(),
    );
    assert!(serve.terminate().success(), "{}", serve.logs());
    drop(node);
}

/// A clean stop closes the AMQP connection: on SIGTERM the service closes its channels and
/// then its connection, waiting for the broker's answers, so the broker never logs it as a
/// client that went away. (It did in 4 of 6 tries: the publisher's channel, closing on
/// its own as its last handle dropped, made lapin refuse to close the connection.)
#[test]
fn a_clean_stop_closes_the_connection_to_the_broker() {
    let node = Node::start("clean-stop", "");
    let url = node.add_user("handoff", &[]);
    let mut serve = Serve::start_on("clean-stop", &url, "bop=bop", &[]);
    let tries = 6;
    for i in 0..tries {
        if i > 0 {
            serve.spawn();
        }
        assert!(serve.terminate().success(), "{}", serve.logs());
    }
    // The broker logs a connection's end as it handles it: give it a moment. Its log file
    // (not its console) has the connections.
    std::thread::sleep(Duration::from_millis(500));
    let logs: String = std::fs::read_dir(node.dir().join("log"))
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
                .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                .collect()
        })
        .unwrap_or_default();
    let unexpected = logs
        .lines()
        .filter(|l| l.contains("client unexpectedly closed TCP connection"))
        .count();
    let clean = logs
        .lines()
        .filter(|l| l.contains("closing AMQP connection") && l.contains("- handoff serve,"))
        .count();
    assert_eq!(unexpected, 0, "{unexpected} unclean closes:\n{logs}");
    assert!(clean >= tries, "{clean} clean closes of {tries}:\n{logs}");
}

/// After a broker that was up goes away, the first retry comes after the shortest wait,
/// however short the session was: two broker deaths seconds apart used to cost the whole
/// 10 s back-off. Each retry's wait is logged (`retry_in_ms`); the default minimum is
/// 100 ms, drawn from its upper half.
#[test]
fn reconnecting_after_a_broker_that_was_up_starts_from_the_shortest_wait() {
    let mut node = Node::start("prompt-retry", "");
    let url = node.add_user("handoff", &[]);
    let mut serve = Serve::start_on("prompt-retry", &url, "bop=bop", &[]);
    for _ in 0..2 {
        node.restart();
        serve.wait_ready();
    }
    let logs = serve.logs();
    let waits: Vec<u64> = logs
        .lines()
        .filter(|l| l.contains("RabbitMQ session ended"))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["retry_in_ms"].as_u64())
        .collect();
    // Each restart: the session that was up ends (first wait: the minimum), then attempts
    // while the node boots double from there.
    let firsts: Vec<u64> = logs
        .lines()
        .filter(|l| l.contains("RabbitMQ session ended"))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["was_connected"] == true)
        .filter_map(|v| v["retry_in_ms"].as_u64())
        .collect();
    assert!(firsts.len() >= 2, "{waits:?}\n{logs}");
    assert!(firsts.iter().all(|&w| w <= 100), "{firsts:?}\n{logs}");
    assert!(serve.terminate().success());
}
