//! Test support: load under faults. A publisher that sends a stream of events at least
//! once through lost connections, broker restarts and dead nodes; an auditor that misses
//! no decision; and the load itself, a generated stream with holds that end during the run.
//! Used by `faults.rs` (one node) and `failover.rs` (a cluster: several URLs, tried in
//! turn).
//!
//! Include it with `#[path = "support/load.rs"] mod load;` beside `mod support;` and
//! `#[path = "support/serve.rs"] mod serve;`.

#![allow(dead_code)]

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
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties};
use serde_json::Value;

use crate::serve::{self, dedup, generated, now_rfc3339, user_for};
use crate::support;

/// A size from the environment, or its short-form default.
pub fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One message to publish: body, routing key, and the agency user it is sent as.
pub struct Outgoing {
    pub body: Vec<u8>,
    pub routing_key: String,
    pub user: String,
}

/// Publishes every message with confirms, at least once, through connection losses and
/// broker restarts: on any error it reconnects and sends again from the first message not
/// yet confirmed (the service treats the repeats as duplicates). Message `i` goes out no
/// sooner than `i / rate` seconds after the start, so the stream lasts through the faults.
/// `confirmed` counts the messages confirmed so far; `resent` the messages sent more than
/// once.
pub async fn publish_all(
    urls: Vec<String>,
    messages: Arc<Vec<Outgoing>>,
    rate: f64,
    confirmed: Arc<AtomicUsize>,
    resent: Arc<AtomicUsize>,
) {
    let start = tokio::time::Instant::now();
    let mut next_unconfirmed = 0;
    let mut sent_up_to = 0;
    let mut attempt = 0;
    while next_unconfirmed < messages.len() {
        let url = &urls[attempt % urls.len()];
        attempt += 1;
        let Some(conn) = bounded(Connection::connect(url, ConnectionProperties::default())).await
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
pub async fn bounded<T>(step: impl std::future::Future<Output = lapin::Result<T>>) -> Option<T> {
    tokio::time::timeout(Duration::from_secs(10), step)
        .await
        .ok()?
        .ok()
}

/// Resolves once the connection is no longer connected (polled every 100 ms).
pub async fn connection_lost(conn: &Connection) {
    while conn.status().connected() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A decision seen by the auditor, and when it arrived.
#[derive(Clone)]
pub struct Arrival {
    pub seen: serve::Seen,
    pub at: DateTime<Utc>,
}

/// An auditor's durable queue on `handoff.decisions`, consumed with acknowledgements and
/// reconnecting after every loss, so it misses nothing across broker restarts (a message
/// whose ack was lost arrives twice; `dedup` takes care of that). Returns once the queue is
/// bound: publish nothing before.
pub async fn audit(
    urls: Vec<String>,
    queue: &'static str,
    quorum: bool,
) -> Arc<Mutex<Vec<Arrival>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let (bound_tx, mut bound) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        for attempt in 0.. {
            let url = &urls[attempt % urls.len()];
            let _ = audit_session(url, queue, quorum, &sink, &bound_tx).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    // Nothing may be published before the queue is bound: a decision published earlier
    // reaches no auditor, and the test would count it lost (it did, under load: the
    // first decisions of a run, missed by an auditor still declaring its queue).
    tokio::time::timeout(Duration::from_secs(60), bound.wait_for(|b| *b))
        .await
        .expect("the auditor's queue was bound within 60 s")
        .expect("the auditor's task runs");
    seen
}

async fn audit_session(
    url: &str,
    queue: &str,
    quorum: bool,
    sink: &Mutex<Vec<Arrival>>,
    bound: &tokio::sync::watch::Sender<bool>,
) -> Result<(), lapin::Error> {
    let Some(conn) = bounded(Connection::connect(url, ConnectionProperties::default())).await
    else {
        return Ok(());
    };
    let Some(ch) = bounded(conn.create_channel()).await else {
        return Ok(());
    };
    let mut args = FieldTable::default();
    if quorum {
        // On a cluster the auditor's queue must outlive the loss of a node.
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString(LongString::from("quorum")),
        );
    }
    let setup = async {
        ch.queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            args,
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
    bound.send_replace(true);
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
pub fn load(
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

pub fn key(e: &Value) -> (String, String) {
    (
        e["source"].as_str().unwrap().to_owned(),
        e["id"].as_str().unwrap().to_owned(),
    )
}

/// Waits (up to 120 s) until the auditor has seen every decision of `expected` (bodies,
/// as `handoff replay` prints them), and gives every arrival; on failure it names the
/// decisions missing, and `logs` explains the rest.
pub async fn await_decisions(
    seen: &Mutex<Vec<Arrival>>,
    expected: &[String],
    logs: impl Fn() -> String,
) -> Vec<Arrival> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let all = seen.lock().unwrap().clone();
        let ids: BTreeSet<&str> = all.iter().map(|a| a.seen.message_id.as_str()).collect();
        if ids.len() >= expected.len() {
            return all;
        }
        if Instant::now() >= deadline {
            let missing: Vec<&String> = expected
                .iter()
                .filter(|d| {
                    let v: Value = serde_json::from_str(d).unwrap();
                    !ids.contains(v["id"].as_str().unwrap())
                })
                .collect();
            panic!(
                "saw {} of {} decisions after 120 s; missing:\n{}\n{}",
                ids.len(),
                expected.len(),
                missing
                    .iter()
                    .map(|d| d.as_str())
                    .collect::<Vec<_>>()
                    .join("\n"),
                logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What the auditor saw, checked against `handoff replay` of the journal.
pub struct Checked {
    /// Every arrival.
    pub plain: Vec<serve::Seen>,
    /// The decisions, deduplicated by id.
    pub live: BTreeSet<String>,
    /// Releases of lapsed holds.
    pub lapsed: usize,
    /// For the run's own holds (those of `county`): how long after its end each release
    /// reached the auditor, in ms, sorted.
    pub lags_ms: Vec<i64>,
}

/// The checks every fault test ends with: the decisions seen, deduplicated by id (no id
/// with two bodies), are exactly `expected` (the replay of the journal); no hold was
/// released later than its `hold_until`; and each of the `holds` holds set by the load in
/// `county` has ended with a release.
pub fn check_decisions(
    arrivals: &[Arrival],
    expected: &[String],
    holds: usize,
    county: &str,
) -> Checked {
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
        let ours = from == county;
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
        .filter(|((_, j), until)| j == county && **until < Utc::now())
        .count();
    assert_eq!(set, holds, "every hold of the run was set");
    assert!(
        lapsed >= holds,
        "{lapsed} releases for {holds} lapsed holds: someone is held past the law"
    );
    lags_ms.sort_unstable();
    Checked {
        plain,
        live,
        lapsed,
        lags_ms,
    }
}

/// The load as messages to publish, each as the user of the agency that sends it.
pub fn outgoing(events: &[Value]) -> Arc<Vec<Outgoing>> {
    Arc::new(
        events
            .iter()
            .map(|e| Outgoing {
                body: serde_json::to_vec(e).unwrap(),
                routing_key: e["type"].as_str().unwrap().to_owned(),
                user: user_for(e),
            })
            .collect(),
    )
}

/// Puts `items` in a random order drawn from `rng` (Fisher-Yates).
pub fn shuffle<T>(items: &mut [T], rng: &mut handoff_gen::Rng) {
    for i in (1..items.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        items.swap(i, j);
    }
}
