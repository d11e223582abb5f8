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
#[path = "support/node.rs"]
mod node;
#[path = "support/serve.rs"]
mod serve;
mod support;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties};
use serde_json::Value;

use handoff_gen::Rng;
use node::Node;
use serve::{
    Serve, dedup, generated, jurisdictions, now_rfc3339, publishers_for, replay, user_for,
};

/// A size from the environment, or its short-form default.
fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    Kill,
    DropConnections,
    RestartBroker,
}

/// One message to publish: body, routing key, and the agency user it is sent as.
struct Outgoing {
    body: Vec<u8>,
    routing_key: String,
    user: String,
}

/// Publishes every message with confirms, at least once, through connection losses and
/// broker restarts: on any error it reconnects and sends again from the first message not
/// yet confirmed (the service treats the repeats as duplicates). Message `i` goes out no
/// sooner than `i / rate` seconds after the start, so the stream lasts through the faults.
/// `confirmed` counts the messages confirmed so far; `resent` the messages sent more than
/// once.
async fn publish_all(
    url: String,
    messages: Arc<Vec<Outgoing>>,
    rate: f64,
    confirmed: Arc<AtomicUsize>,
    resent: Arc<AtomicUsize>,
) {
    let start = tokio::time::Instant::now();
    let mut next_unconfirmed = 0;
    let mut sent_up_to = 0;
    while next_unconfirmed < messages.len() {
        let Some(conn) = bounded(Connection::connect(&url, ConnectionProperties::default())).await
        else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let Some(ch) = bounded(conn.create_channel()).await else {
            continue;
        };
        if bounded(ch.confirm_select(ConfirmSelectOptions::default()))
            .await
            .is_none()
        {
            continue;
        }
        let mut pending = VecDeque::new();
        let mut i = next_unconfirmed;
        'session: loop {
            while pending.len() < 256 && i < messages.len() {
                let m = &messages[i];
                tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / rate)).await;
                let props = BasicProperties::default()
                    .with_content_type("application/cloudevents+json".into())
                    .with_delivery_mode(2)
                    .with_user_id(m.user.as_str().into());
                let Ok(confirm) = ch
                    .basic_publish(
                        "handoff.events".into(),
                        m.routing_key.as_str().into(),
                        BasicPublishOptions::default(),
                        &m.body,
                        props,
                    )
                    .await
                else {
                    break 'session;
                };
                if i < sent_up_to {
                    resent.fetch_add(1, Ordering::Relaxed);
                }
                sent_up_to = sent_up_to.max(i + 1);
                pending.push_back((i, confirm));
                i += 1;
            }
            let Some((k, confirm)) = pending.pop_front() else {
                break 'session;
            };
            // A confirm pending on a connection the broker closed may never resolve, so
            // the connection's state is watched beside it.
            let outcome = tokio::select! {
                c = confirm => c,
                _ = connection_lost(&conn) => break 'session,
            };
            match outcome {
                Ok(Confirmation::Ack(None)) => {
                    next_unconfirmed = k + 1;
                    confirmed.store(next_unconfirmed, Ordering::Relaxed);
                }
                // A nack, a return or a lost channel: send again from here.
                _ => break 'session,
            }
        }
        let _ = conn.close(200, "done".into()).await;
    }
}

/// An AMQP step bounded to 10 s: a connection made while the broker shuts down may never
/// answer. `None` on an error or a timeout.
async fn bounded<T>(step: impl std::future::Future<Output = lapin::Result<T>>) -> Option<T> {
    tokio::time::timeout(Duration::from_secs(10), step)
        .await
        .ok()?
        .ok()
}

/// Resolves once the connection is no longer connected (polled every 100 ms).
async fn connection_lost(conn: &Connection) {
    while conn.status().connected() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A decision seen by the auditor, and when it arrived.
#[derive(Clone)]
struct Arrival {
    seen: serve::Seen,
    at: DateTime<Utc>,
}

/// An auditor's durable queue on `handoff.decisions`, consumed with acknowledgements and
/// reconnecting after every loss, so it misses nothing across broker restarts (a message
/// whose ack was lost arrives twice; `dedup` takes care of that).
fn audit(url: String, queue: &'static str) -> Arc<Mutex<Vec<Arrival>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    tokio::spawn(async move {
        loop {
            let _ = audit_session(&url, queue, &sink).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    seen
}

async fn audit_session(
    url: &str,
    queue: &str,
    sink: &Mutex<Vec<Arrival>>,
) -> Result<(), lapin::Error> {
    let Some(conn) = bounded(Connection::connect(url, ConnectionProperties::default())).await
    else {
        return Ok(());
    };
    let Some(ch) = bounded(conn.create_channel()).await else {
        return Ok(());
    };
    let setup = async {
        ch.queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
        ch.queue_bind(
            queue.into(),
            "handoff.decisions".into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
        ch.basic_qos(500, BasicQosOptions::default()).await?;
        ch.basic_consume(
            queue.into(),
            "auditor".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
    };
    let Some(mut consumer) = bounded(setup).await else {
        return Ok(());
    };
    loop {
        let next = tokio::select! {
            d = consumer.next() => d,
            _ = connection_lost(&conn) => return Ok(()),
        };
        let Some(d) = next else {
            return Ok(());
        };
        let d = d?;
        let p = &d.properties;
        sink.lock().unwrap().push(Arrival {
            seen: serve::Seen {
                routing_key: d.routing_key.to_string(),
                message_id: p
                    .message_id()
                    .as_ref()
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
                content_type: String::new(),
                headers: BTreeMap::new(),
                body: String::from_utf8_lossy(&d.data).into_owned(),
            },
            at: Utc::now(),
        });
        if bounded(d.ack(BasicAckOptions::default())).await.is_none() {
            return Ok(());
        }
    }
}

/// The load: a generated stream (starting now, so its answer-by times lie ahead), and in
/// front of it `holds` people held by a jurisdiction whose 48-hour holds end one after
/// another during the run, every `spacing` from `first_end` on.
fn load(
    events: u64,
    seed: u64,
    holds: usize,
    first_end: DateTime<Utc>,
    spacing: chrono::Duration,
) -> Vec<Value> {
    let start = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
    let stream = generated(events, seed, None, Some(&start));
    let now = now_rfc3339();
    let j = "tx-fault-county";
    let mut stories = vec![support::envelope(
        "fault-policy",
        &now,
        support::policy(j, true, false),
    )];
    for h in 0..holds {
        let person = format!("P-9{h:04}");
        let ends = first_end + spacing * h as i32;
        let release_at =
            (ends - chrono::Duration::hours(48)).to_rfc3339_opts(SecondsFormat::Secs, true);
        stories.push(support::envelope(
            &format!("fault-det-{h}"),
            &now,
            support::detainer(
                &format!("D-9{h:04}"),
                &person,
                support::local(j),
                "convicted",
            ),
        ));
        stories.push(support::envelope(
            &format!("fault-rel-{h}"),
            &now,
            support::local_release(&person, j, &release_at),
        ));
    }
    stories
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .chain(stream)
        .collect()
}

fn key(e: &Value) -> (String, String) {
    (
        e["source"].as_str().unwrap().to_owned(),
        e["id"].as_str().unwrap().to_owned(),
    )
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
    let seen = audit(node.url(), "auditor");

    let messages: Arc<Vec<Outgoing>> = Arc::new(
        events
            .iter()
            .map(|e| Outgoing {
                body: serde_json::to_vec(e).unwrap(),
                routing_key: e["type"].as_str().unwrap().to_owned(),
                user: user_for(e),
            })
            .collect(),
    );
    let confirmed = Arc::new(AtomicUsize::new(0));
    let resent = Arc::new(AtomicUsize::new(0));
    let sender = tokio::spawn(publish_all(
        node.url(),
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
    for i in (1..faults.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        faults.swap(i, j);
    }
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
    let deadline = Instant::now() + Duration::from_secs(120);
    let arrivals = loop {
        let all = seen.lock().unwrap().clone();
        let ids: BTreeSet<&str> = all.iter().map(|a| a.seen.message_id.as_str()).collect();
        if ids.len() >= expected.len() {
            break all;
        }
        assert!(
            Instant::now() < deadline,
            "saw {} of {} decisions after 120 s:\n{}",
            ids.len(),
            expected.len(),
            serve.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let plain: Vec<serve::Seen> = arrivals.iter().map(|a| a.seen.clone()).collect();
    // `dedup` fails if any decision id came with two bodies.
    let live: BTreeSet<String> = dedup(&plain).into_iter().collect();
    let replayed: BTreeSet<String> = expected.iter().cloned().collect();
    assert_eq!(
        live.len(),
        replayed.len(),
        "live and replayed decision counts differ"
    );
    assert!(
        live == replayed,
        "live decisions differ from the replay of the journal"
    );

    // No hold outlived its end: every hold has ended by now (all its ends are past), and a
    // release for a lapsed hold is effective no later than the hold's end.
    let bodies: Vec<Value> = live
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    let mut hold_until: BTreeMap<(String, String), DateTime<Utc>> = BTreeMap::new();
    for d in bodies.iter().filter(|d| d["type"] == "handoff.hold") {
        let until = DateTime::parse_from_rfc3339(d["data"]["hold_until"].as_str().unwrap())
            .unwrap()
            .with_timezone(&Utc);
        let from = DateTime::parse_from_rfc3339(d["data"]["hold_from"].as_str().unwrap()).unwrap();
        assert!(until - from.with_timezone(&Utc) <= chrono::Duration::hours(48));
        hold_until.insert(
            (
                d["data"]["person_id"].as_str().unwrap().to_owned(),
                d["data"]["jurisdiction_id"].as_str().unwrap().to_owned(),
            ),
            until,
        );
    }
    let mut lapsed = 0;
    let mut lags_ms = Vec::new();
    for d in bodies
        .iter()
        .filter(|d| d["data"]["basis"] == "hold_expired")
    {
        let person = d["data"]["person_id"].as_str().unwrap().to_owned();
        let from = d["data"]["from"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let ours = from == "tx-fault-county";
        let until = hold_until[&(person, from)];
        let effective = DateTime::parse_from_rfc3339(d["data"]["effective_at"].as_str().unwrap())
            .unwrap()
            .with_timezone(&Utc);
        assert!(effective <= until, "a hold was released after its end: {d}");
        lapsed += 1;
        let id = d["id"].as_str().unwrap();
        // How long after its end the auditor heard of a hold of the run ending (the
        // service was down, or the broker, when some of them ended).
        if !ours {
            continue;
        }
        if let Some(first) = arrivals.iter().find(|a| a.seen.message_id == id) {
            lags_ms.push((first.at - until).num_milliseconds());
        }
    }
    let set = hold_until
        .iter()
        .filter(|((_, j), until)| j == "tx-fault-county" && **until < Utc::now())
        .count();
    assert_eq!(set, holds, "every hold of the run was set");
    assert!(
        lapsed >= holds,
        "{lapsed} releases for {holds} lapsed holds: someone is held past the law"
    );
    lags_ms.sort_unstable();

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
