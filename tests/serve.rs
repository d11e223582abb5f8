//! `handoff serve` end to end against a real RabbitMQ: the service runs as a child
//! process (so it can be killed with SIGKILL), each test in its own vhost.

#[path = "support/broker.rs"]
mod broker;
#[path = "support/serve.rs"]
mod serve;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use broker::Broker;
use chrono::{SecondsFormat, Utc};
use lapin::options::{BasicPublishOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties};
use serde_json::{Value, json};

use serve::*;

// ---------------------------------------------------------------------------------------
// The tests.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sample_log_published_live_decides_as_replay_of_the_journal() {
    let broker = Broker::new("sample");
    let events = sample_events();
    let js = jurisdictions(&events);
    let publishers = publishers_for(js.iter().map(String::as_str));
    let serve = Serve::start("sample", &broker, &publishers);
    let audit = Watch::start(&broker.url(), "handoff.decisions", "audit").await;
    // Queues bound only to party keys (ICD section 4), filled by the decisions' BCC header.
    let mut party_watches = Vec::new();
    for (queue, key) in [
        ("told-ice", "party.ice"),
        ("told-bop", "party.bop.*"),
        ("told-travis", "party.local.tx-travis-county"),
    ] {
        let w = Watch::start_bound(&broker.url(), "handoff.decisions", queue, key).await;
        party_watches.push((key, w));
    }
    let (_, operator) = broker.add_user("operator", &["impersonator"]);
    let publisher = Publisher::connect(&operator).await;
    for e in &events {
        publisher.event(e).await;
    }
    // The sample repeats one event on purpose: a duplicate is not journaled.
    let mut ids = BTreeSet::new();
    let distinct: Vec<&Value> = events
        .iter()
        .filter(|e| ids.insert(e["id"].to_string()))
        .collect();
    assert_eq!(distinct.len(), events.len() - 1);
    serve.wait_journal(distinct.len());
    // Every entry carries the receipt time and a checksum; the order is the publish order.
    for (line, e) in serve.journal_lines().iter().zip(&distinct) {
        let j: Value = serde_json::from_str(line).unwrap();
        assert!(
            j["handoffreceived"].is_string() && j["handoffcrc"].is_string(),
            "{line}"
        );
        assert_eq!(j["id"], e["id"]);
    }
    let until = now_rfc3339();
    let expected = replay(&serve.journal(), &until);
    assert!(expected.len() > 20, "{expected:?}");
    let seen = audit
        .until(60, "every decision", |s| s.len() >= expected.len())
        .await;
    assert_eq!(
        dedup(&seen),
        expected,
        "live decisions differ from the replay"
    );
    for s in &seen {
        let body: Value = serde_json::from_str(&s.body).unwrap();
        assert_eq!(s.message_id, body["id"].as_str().unwrap());
        assert_eq!(s.content_type, "application/cloudevents+json");
        assert!(!s.routing_key.is_empty());
    }
    // Each party's queue holds exactly the decisions replay --parties names it in: none
    // missing, none extra; and the BCC header never reaches a consumer.
    for (key, watch) in &party_watches {
        let told: BTreeSet<String> = replay_parties(&serve.journal(), &until)
            .iter()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|d| {
                d["parties"].as_array().unwrap().iter().any(|p| {
                    let p = p.as_str().unwrap();
                    match key.strip_suffix('*') {
                        Some(prefix) => p.starts_with(prefix),
                        None => p == *key,
                    }
                })
            })
            .map(|d| d["id"].as_str().unwrap().to_owned())
            .collect();
        assert!(!told.is_empty(), "{key}");
        let got = watch
            .until(60, key, |s| {
                s.iter()
                    .map(|s| &s.message_id)
                    .collect::<BTreeSet<_>>()
                    .len()
                    >= told.len()
            })
            .await;
        let got_ids: BTreeSet<String> = got.iter().map(|s| s.message_id.clone()).collect();
        assert_eq!(
            got_ids, told,
            "{key}: decisions delivered differ from its parties"
        );
        for s in got.iter().chain(&seen) {
            assert!(
                !s.headers.contains_key("BCC"),
                "BCC delivered: {:?}",
                s.headers
            );
        }
    }
    // The logs never name a person.
    let logs = serve.logs();
    assert!(!logs.contains("P-1700"), "{logs}");
    let metrics = serve.metrics();
    assert!(
        metrics.contains("handoff_events_in_total{type=\"bop.release.scheduled\"} 11"),
        "{metrics}"
    );
}

/// Every kind of bad input ends on the dead-letter queue with its reason, and the
/// service goes on deciding.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_is_dead_lettered_with_its_reason() {
    let broker = Broker::new("bad-input");
    let publishers = publishers_for(["tx-travis-county"]);
    let mut serve = Serve::start("bad-input", &broker, &publishers);
    let dead = Watch::start(&broker.url(), "", "handoff.dead-letter").await;
    let (_, operator) = broker.add_user("operator", &["impersonator"]);
    let p = Publisher::connect(&operator).await;

    let good = sample_events()[0].clone();
    let mut schema = good.clone();
    schema["data"]["honors_detainers"] = json!("yes");
    let mut unknown_type = good.clone();
    unknown_type["type"] = json!("ice.detainer.misplaced");
    let mut subject = sample_events()[6].clone();
    subject["subject"] = json!("P-999999");
    let mut bad_time = good.clone();
    bad_time["time"] = json!("2017-02-30T06:00:00Z");
    let answer = json!({"specversion": "1.0", "id": "eagle-x1", "source": "urn:agency:ice:eagle",
        "type": "ice.first_refusal.response", "time": "2017-01-28T09:00:00Z", "subject": "P-170001",
        "data": {"offer_id": "no-such-offer", "person_id": "P-170001", "decision": "accept"}});

    let cases: Vec<(&str, Vec<u8>, &str, Option<&str>)> = vec![
        (
            "oversized",
            vec![b' '; 70 * 1024],
            "bop.release.scheduled",
            Some("bop"),
        ),
        (
            "not_utf8",
            b"{\"id\": \"\xff\"}".to_vec(),
            "bop.release.scheduled",
            Some("bop"),
        ),
        (
            "not_json",
            b"{not json".to_vec(),
            "bop.release.scheduled",
            Some("bop"),
        ),
        (
            "unknown_type",
            serde_json::to_vec(&unknown_type).unwrap(),
            "ice.detainer.issued",
            Some("ice"),
        ),
        (
            "schema",
            serde_json::to_vec(&schema).unwrap(),
            "jurisdiction.policy.updated",
            Some("ice"),
        ),
        (
            "subject_mismatch",
            serde_json::to_vec(&subject).unwrap(),
            "ice.detainer.issued",
            Some("ice"),
        ),
        (
            "schema",
            serde_json::to_vec(&bad_time).unwrap(),
            "jurisdiction.policy.updated",
            Some("ice"),
        ),
        (
            "unauthorized",
            serde_json::to_vec(&sample_events()[6]).unwrap(),
            "ice.detainer.issued",
            Some("bop"),
        ),
        (
            "unauthorized",
            serde_json::to_vec(&sample_events()[6]).unwrap(),
            "ice.detainer.issued",
            None,
        ),
        (
            "unknown_offer",
            serde_json::to_vec(&answer).unwrap(),
            "ice.first_refusal.response",
            Some("ice"),
        ),
    ];
    for (_, body, key, user) in &cases {
        let c = p.send(body, key, *user).await;
        assert!(matches!(c, Confirmation::Ack(None)), "{c:?}");
    }
    let seen = dead
        .until(60, "every dead letter", |s| s.len() >= cases.len())
        .await;
    let reasons: Vec<&str> = seen
        .iter()
        .map(|s| s.headers["x-handoff-reason"].as_str())
        .collect();
    let expected: Vec<&str> = cases.iter().map(|c| c.0).collect();
    assert_eq!(reasons, expected);
    for s in &seen {
        assert_eq!(s.routing_key, s.headers["x-handoff-reason"]);
        assert!(!s.headers["x-handoff-detail"].is_empty());
    }
    // Who sent it is kept, though the service publishes the dead letter as itself.
    assert_eq!(seen[7].headers["x-handoff-user-id"], "bop");
    assert!(!seen[8].headers.contains_key("x-handoff-user-id"));
    // The body is kept as sent, so the publisher can see what it sent.
    assert_eq!(seen[2].body, "{not json");
    // The semantic reject is journaled (replay must see what the live service saw);
    // nothing else is.
    serve.wait_journal(1);
    assert_eq!(serve.journal_lines().len(), 1);

    // The service is still up and decides.
    p.event(&good).await;
    serve.wait_journal(2);
    let metrics = serve.metrics();
    assert!(
        metrics.contains("handoff_dead_letters_total{reason=\"unauthorized\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("handoff_dead_letters_total{reason=\"oversized\"} 1"),
        "{metrics}"
    );
    assert!(serve.terminate().success(), "{}", serve.logs());
}

/// A publisher is whoever RabbitMQ says it is: its own user. It may send only what the
/// ICD lets its agency send, and a jurisdiction only for itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unauthorized_publisher_is_refused() {
    let broker = Broker::new("authz");
    let (bop, bop_url) = broker.add_user("bop", &[]);
    let (travis, travis_url) = broker.add_user("travis", &[]);
    let publishers = format!("{bop}=bop,{travis}=jurisdiction:tx-travis-county");
    let serve = Serve::start("authz", &broker, &publishers);
    let dead = Watch::start(&broker.url(), "", "handoff.dead-letter").await;
    let bop_pub = Publisher::connect(&bop_url).await;
    let travis_pub = Publisher::connect(&travis_url).await;

    let events = sample_events();
    let detainer = serde_json::to_vec(&events[6]).unwrap();
    let claim = events
        .iter()
        .find(|e| e["type"] == "local.claim.lodged")
        .unwrap()
        .clone();
    let mut other = claim.clone();
    other["data"]["jurisdiction_id"] = json!("nv-clark-county");
    other["id"] = json!("tcso-other");
    // BOP may not lodge ICE detainers; Travis may not speak for Clark County.
    bop_pub
        .send(&detainer, "ice.detainer.issued", Some(&bop))
        .await;
    travis_pub
        .send(
            &serde_json::to_vec(&other).unwrap(),
            "local.claim.lodged",
            Some(&travis),
        )
        .await;
    // But Travis may lodge its own claim.
    travis_pub
        .send(
            &serde_json::to_vec(&claim).unwrap(),
            "local.claim.lodged",
            Some(&travis),
        )
        .await;
    let seen = dead.until(60, "two refusals", |s| s.len() >= 2).await;
    assert_eq!(seen[0].headers["x-handoff-reason"], "unauthorized");
    assert!(
        seen[0].headers["x-handoff-detail"].contains("bop may not publish ice.detainer.issued")
    );
    assert!(
        seen[1].headers["x-handoff-detail"]
            .contains("may not speak for jurisdiction nv-clark-county")
    );
    serve.wait_journal(1);
    assert!(serve.journal_lines()[0].contains("\"tcso-"));

    // RabbitMQ itself refuses a user-id that is not the connection's user.
    let c = bop_pub
        .ch
        .basic_publish(
            "handoff.events".into(),
            "ice.detainer.issued".into(),
            BasicPublishOptions::default(),
            &detainer,
            BasicProperties::default().with_user_id(travis.as_str().into()),
        )
        .await;
    let refused = match c {
        Err(_) => true,
        Ok(confirm) => confirm.await.is_err(),
    };
    assert!(refused, "RabbitMQ accepted a forged user-id");
    drop(bop_pub.conn);
}

/// A repeat of an event already journaled is acknowledged and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicates_are_acknowledged_without_decisions() {
    let broker = Broker::new("duplicates");
    let events = sample_events();
    let publishers = publishers_for(jurisdictions(&events).iter().map(String::as_str));
    let serve = Serve::start("duplicates", &broker, &publishers);
    let audit = Watch::start(&broker.url(), "handoff.decisions", "audit").await;
    let (_, operator) = broker.add_user("operator", &["impersonator"]);
    let p = Publisher::connect(&operator).await;
    // Every one of the first 40 events twice: they decide offers, transfers and holds.
    let first: Vec<&Value> = events.iter().take(40).collect();
    for e in &first {
        p.event(e).await;
        p.event(e).await;
    }
    serve.wait_journal(first.len());
    let until = now_rfc3339();
    let expected = replay(&serve.journal(), &until);
    assert!(!expected.is_empty());
    let seen = audit
        .until(60, "decisions", |s| s.len() >= expected.len())
        .await;
    // A sentinel after the duplicates: once its decisions are in, the duplicates were
    // processed, and they added nothing.
    for e in events.iter().skip(40).take(10) {
        p.event(e).await;
    }
    serve.wait_journal(first.len() + 10);
    assert_eq!(serve.journal_lines().len(), first.len() + 10);
    let all = replay(&serve.journal(), &now_rfc3339());
    let seen_all = audit.until(60, "decisions", |s| s.len() >= all.len()).await;
    assert_eq!(dedup(&seen_all), all);
    assert_eq!(seen.len(), expected.len());
    assert!(
        serve
            .metrics()
            .contains("handoff_events_duplicate_total 40")
    );
}

/// The journal entry that set a hold is all the service needs: stopped before the hold
/// ends, it releases the person at restart, with the hold's own end as the time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hold_that_expires_while_stopped_is_released_at_restart() {
    let broker = Broker::new("hold");
    let publishers = publishers_for(["tx-travis-county"]);
    // The console on, to see the hold on the board while it runs.
    let console = ConsoleOn::new();
    let mut serve = Serve::start_with("hold", &broker, &publishers, &console.with(&[]));
    let audit = Watch::start(&broker.url(), "handoff.decisions", "audit").await;
    let (_, operator) = broker.add_user("operator", &["impersonator"]);
    let p = Publisher::connect(&operator).await;
    let events = sample_events();
    // Travis honors detainers; ICE lodges one for P-170022, held by Travis County; Travis
    // would release P-170022 48 hours and 4 seconds ago: the hold ends 4 s from now.
    let release_at = Utc::now() - chrono::Duration::hours(48) + chrono::Duration::seconds(4);
    let mut due = events
        .iter()
        .find(|e| e["id"] == "tcso-3011")
        .unwrap()
        .clone();
    due["data"]["release_at"] = json!(release_at.to_rfc3339_opts(SecondsFormat::Secs, true));
    for e in [
        &events[0],
        events.iter().find(|e| e["id"] == "eagle-2010").unwrap(),
        &due,
    ] {
        p.event(e).await;
    }
    let held = audit
        .until(60, "the hold", |s| {
            s.iter().any(|s| s.routing_key == "hold.tx-travis-county")
        })
        .await;
    let hold: Value = serde_json::from_str(
        &held
            .iter()
            .find(|s| s.routing_key == "hold.tx-travis-county")
            .unwrap()
            .body,
    )
    .unwrap();
    let hold_until = hold["data"]["hold_until"].as_str().unwrap().to_owned();
    // The operator's board lists the open hold (refreshed within a second), its person
    // linked; without the credential, nothing.
    let (status, page) = console.get("/", false);
    assert_eq!(status, 401);
    assert!(!page.contains("P-170022"));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, page) = console.get("/", true);
        assert_eq!(status, 200);
        assert!(page.contains("the only instance (file journal)"), "{page}");
        if page.contains("<a href=\"/person/P-170022\">") {
            assert!(page.contains(&hold_until), "the hold's end: {page}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the hold never reached the board: {page}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Running and on time: no timer is overdue.
    assert!(
        serve
            .metrics()
            .contains("handoff_timer_overdue_seconds 0.0"),
        "{}",
        serve.metrics()
    );
    assert!(serve.terminate().success(), "{}", serve.logs());
    let ends = chrono::DateTime::parse_from_rfc3339(&hold_until).unwrap();
    while Utc::now() < ends + chrono::Duration::seconds(1) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        audit
            .all()
            .iter()
            .all(|s| !s.routing_key.starts_with("release."))
    );
    serve.spawn();
    let seen = audit
        .until(60, "the release", |s| {
            s.iter().any(|s| s.routing_key.starts_with("release."))
        })
        .await;
    let release: Value = serde_json::from_str(
        &seen
            .iter()
            .find(|s| s.routing_key.starts_with("release."))
            .unwrap()
            .body,
    )
    .unwrap();
    assert_eq!(release["data"]["basis"], "hold_expired", "{release}");
    assert_eq!(release["time"], hold_until.as_str());
    assert_eq!(release["data"]["effective_at"], hold_until.as_str());
    // The release went out at least a second after hold_until (the service was stopped),
    // and the metric the "held past hold_until" alert reads says so.
    let metrics = serve.metrics();
    let sample = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
    };
    assert_eq!(sample("handoff_hold_release_delay_seconds_count"), 1.0);
    assert!(sample("handoff_hold_release_delay_seconds_sum") >= 1.0);
    assert_eq!(
        sample("handoff_hold_release_delay_seconds_bucket{le=\"0.5\"}"),
        0.0
    );
    let (_, board) = console.get("/", true);
    assert!(board.contains("No hold is open."), "{board}");
    let expected = replay(&serve.journal(), &now_rfc3339());
    assert_eq!(dedup(&seen), expected);
}

/// A generated stream, published while the service is killed with SIGKILL (or loses its
/// connection) and restarted: in the end the journal holds every event once, and every
/// decision replay finds in it was published, with the same id and bytes, and nothing
/// else was.
async fn survive(name: &str, fault: Fault) {
    let broker = Broker::new(name);
    let events = generated(3000, 11, Some(300), None);
    let distinct: BTreeSet<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["source"].as_str().unwrap().into(),
                e["id"].as_str().unwrap().into(),
            )
        })
        .collect();
    let publishers = publishers_for(jurisdictions(&events).iter().map(String::as_str));
    let mut serve = Serve::start(name, &broker, &publishers);
    let audit = Watch::start(&broker.url(), "handoff.decisions", "audit").await;
    let (_, operator) = broker.add_user("operator", &["impersonator"]);
    let p = Publisher::connect(&operator).await;
    let chunk = events.len() / 3;
    for (i, part) in events.chunks(chunk).enumerate() {
        // Faults strike while the stream is moving: publishing runs alongside.
        let sender = {
            let part: Vec<Value> = part.to_vec();
            let p = Publisher::connect(&operator).await;
            tokio::spawn(async move {
                for e in &part {
                    p.event(e).await;
                }
            })
        };
        if i < 2 {
            let before = serve.journal_lines().len();
            serve.wait_journal(before + chunk / 4);
            match fault {
                Fault::Kill => {
                    serve.kill();
                    serve.spawn();
                }
                Fault::CloseConnection => {
                    let closed = broker.close_connections_named("handoff serve");
                    assert!(closed >= 1);
                }
            }
        }
        sender.await.unwrap();
    }
    drop(p);
    serve.wait_journal(distinct.len());
    let lines = serve.journal_lines();
    let journaled: BTreeSet<(String, String)> = lines
        .iter()
        .map(|l| {
            let e: Value = serde_json::from_str(l).unwrap();
            (
                e["source"].as_str().unwrap().into(),
                e["id"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(lines.len(), journaled.len(), "an event was journaled twice");
    assert_eq!(journaled, distinct);
    audit.live_equals_replay(&serve.journal()).await;
    if let Fault::CloseConnection = fault {
        assert!(serve.metrics().contains("handoff_amqp_reconnects_total 2"));
    }
    assert!(serve.terminate().success(), "{}", serve.logs());
}

#[derive(Clone, Copy)]
enum Fault {
    Kill,
    CloseConnection,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_with_sigkill_mid_stream_loses_nothing() {
    survive("sigkill", Fault::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dropped_connection_is_recovered() {
    survive("dropped", Fault::CloseConnection).await;
}

/// Decisions no agency queue is bound for are parked in `handoff.unrouted`, through the
/// alternate exchange the service declares.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unroutable_decision_is_parked_not_dropped() {
    let broker = Broker::new("unrouted");
    let (_serve, seen, expected) = parked_decisions(&broker, "unrouted", &[]).await;
    assert_eq!(dedup(&seen), expected);
}

/// Where an operator's topology has no alternate exchange, RabbitMQ returns an
/// unroutable decision; the service parks it in `handoff.unrouted` itself and counts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_returned_decision_is_parked_and_counted() {
    let broker = Broker::new("returned");
    declare_without_alternate_exchange(&broker.url()).await;
    let no_topology = [
        ("HANDOFF_DECLARE_TOPOLOGY", "false"),
        ("HANDOFF_QUEUE_TYPE", "classic"),
    ];
    let (serve, seen, expected) = parked_decisions(&broker, "returned", &no_topology).await;
    assert_eq!(dedup(&seen), expected);
    let metrics = serve.metrics();
    let line = format!("handoff_decisions_unroutable_total {}", expected.len());
    assert!(metrics.contains(&line), "{metrics}");
}

/// Runs the service with no queue bound to the decisions exchange, publishes the sample's
/// first 40 events, and returns what `handoff.unrouted` received once it holds as many
/// decisions as replay of the journal gives (those, in order, are the second value).
async fn parked_decisions(
    broker: &Broker,
    name: &str,
    extra: &[(&str, &str)],
) -> (Serve, Vec<Seen>, Vec<String>) {
    let events = sample_events();
    let publishers = publishers_for(jurisdictions(&events).iter().map(String::as_str));
    let serve = Serve::start_with(name, broker, &publishers, extra);
    let parked = Watch::start(&broker.url(), "", "handoff.unrouted").await;
    let (_, operator) = broker.add_user("operator", &["impersonator"]);
    let p = Publisher::connect(&operator).await;
    for e in events.iter().take(40) {
        p.event(e).await;
    }
    serve.wait_journal(40);
    let expected = replay(&serve.journal(), &now_rfc3339());
    assert!(!expected.is_empty());
    let seen = parked
        .until(60, "parked decisions", |s| s.len() >= expected.len())
        .await;
    (serve, seen, expected)
}

/// The service's four exchanges as an operator might declare them, with no alternate
/// exchange on `handoff.decisions`, and the given queues with their bindings.
async fn declare_topology(url: &str, queues: &[(&str, &str, Vec<&str>)]) {
    use lapin::ExchangeKind;
    use lapin::options::ExchangeDeclareOptions;
    let conn = Connection::connect(url, ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    for (name, kind) in [
        ("handoff.events", ExchangeKind::Topic),
        ("handoff.decisions", ExchangeKind::Topic),
        ("handoff.dead-letter", ExchangeKind::Topic),
        ("handoff.unrouted", ExchangeKind::Fanout),
    ] {
        ch.exchange_declare(name.into(), kind, durable, FieldTable::default())
            .await
            .unwrap();
    }
    let queue = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    for (q, x, keys) in queues {
        ch.queue_declare((*q).into(), queue, FieldTable::default())
            .await
            .unwrap();
        for k in keys {
            ch.queue_bind(
                (*q).into(),
                (*x).into(),
                (*k).into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        }
    }
    conn.close(200, "declared".into()).await.unwrap();
}

/// The inbound queue, bound to every event type.
fn inbound_queue() -> (&'static str, &'static str, Vec<&'static str>) {
    (
        "handoff.inbound",
        "handoff.events",
        handoff_core::model::EventType::NAMES.to_vec(),
    )
}

/// The service's topology, but with no alternate exchange on `handoff.decisions`.
async fn declare_without_alternate_exchange(url: &str) {
    declare_topology(
        url,
        &[
            inbound_queue(),
            ("handoff.dead-letter", "handoff.dead-letter", vec!["#"]),
            ("handoff.unrouted", "handoff.unrouted", vec![""]),
        ],
    )
    .await;
}

/// Power lost in the middle of a journal write leaves a torn last line: the next start
/// cuts it off (the event was never acknowledged, so RabbitMQ delivers it again).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_torn_last_journal_line_is_cut_off_at_start_up() {
    let broker = Broker::new("torn");
    let events = sample_events();
    let publishers = publishers_for(jurisdictions(&events).iter().map(String::as_str));
    let mut serve = Serve::start("torn", &broker, &publishers);
    let (_, operator) = broker.add_user("operator", &["impersonator"]);
    let p = Publisher::connect(&operator).await;
    for e in events.iter().take(10) {
        p.event(e).await;
    }
    serve.wait_journal(10);
    serve.kill();
    let intact = std::fs::read(serve.journal()).unwrap();
    let mut torn = intact.clone();
    torn.extend_from_slice(&intact[..intact.len() / 20]);
    std::fs::write(serve.journal(), &torn).unwrap();
    serve.spawn();
    // The torn tail is cut off; the restarted writer's opened entry follows what was intact.
    let after = std::fs::read(serve.journal()).unwrap();
    assert!(after.starts_with(&intact), "{}", serve.logs());
    let appended = String::from_utf8(after[intact.len()..].to_vec()).unwrap();
    assert_eq!(appended.lines().count(), 1, "{appended}");
    assert!(is_control(appended.trim_end()), "{appended}");
    assert!(serve.logs().contains("torn write"), "{}", serve.logs());
    p.event(&events[10]).await;
    serve.wait_journal(11);
    let out = Command::new(BIN)
        .args(["replay", &serve.journal().display().to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Regression: a dead letter RabbitMQ returns (no queue is bound to the dead-letter
/// exchange) ended the settling task while the connection stayed up, and the session loop
/// then spun on the closed confirm channel at full CPU: no deliveries, no reconnect,
/// `/readyz` still ready. Now the session ends with the error and the service reconnects
/// with backoff, using next to no CPU.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_returned_dead_letter_ends_the_session_instead_of_spinning() {
    let broker = Broker::new("dlreturned");
    declare_without_dead_letter_queue(&broker.url()).await;
    let no_topology = [
        ("HANDOFF_DECLARE_TOPOLOGY", "false"),
        ("HANDOFF_QUEUE_TYPE", "classic"),
    ];
    let mut serve = Serve::start_with(
        "dlreturned",
        &broker,
        &publishers_for(["tx-travis-county"]),
        &no_topology,
    );
    let (_, operator) = broker.add_user("operator", &["impersonator"]);
    let p = Publisher::connect(&operator).await;
    let c = p.send(b"not json", "ice.capacity.updated", None).await;
    assert!(matches!(c, Confirmation::Ack(None)), "{c:?}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let logs = serve.logs();
        if logs.contains("RabbitMQ session ended; reconnecting")
            && logs.contains("no queue is bound to handoff.dead-letter")
            && !serve
                .metrics()
                .contains("handoff_amqp_reconnects_total 0\n")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the session did not end on the returned dead letter:\n{logs}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Not spinning: well under one core over three seconds.
    let pid = serve.child.as_ref().unwrap().id();
    let cpu = || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        // utime and stime, fields 14 and 15 of stat (11 and 12 after the command name).
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    };
    let ticks = 100; // USER_HZ on Linux
    let before = cpu();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let used = (cpu() - before) as f64 / ticks as f64;
    assert!(used < 1.5, "handoff serve used {used:.2} s of CPU in 3 s");
    // The message was never acknowledged: it is still in RabbitMQ.
    serve.kill();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while broker.messages_ready("handoff.inbound") != 1 {
        assert!(std::time::Instant::now() < deadline, "the message was lost");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The service's topology with nothing bound to `handoff.dead-letter`: every dead letter
/// is returned as unroutable.
async fn declare_without_dead_letter_queue(url: &str) {
    declare_topology(url, &[inbound_queue()]).await;
}

/// Regression: a journal that cannot be opened at start-up (here its path is a directory)
/// is a journal failure like a full disk while serving: exit 75 (`EX_TEMPFAIL`), not 1.
#[test]
fn a_journal_failure_at_start_up_exits_75() {
    let dir = scratch("journal-is-a-directory");
    let journal = dir.join("journal.jsonl");
    std::fs::create_dir_all(&journal).unwrap();
    let out = Command::new(BIN)
        .arg("serve")
        .env("HANDOFF_JOURNAL", &journal)
        .env("HANDOFF_HTTP_LISTEN", "")
        .env("HANDOFF_PUBLISHERS", publishers_for(["tx-travis-county"]))
        // Never reached: recovery comes first.
        .env("HANDOFF_AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2f")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{stderr}");
    assert!(stderr.contains("the journal cannot be written"), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
}

/// The live console over the stream journal: the board names the writer's epoch, and a
/// person page reads the journal back from the stream (one stream, one node: the shared
/// broker, `x-initial-cluster-size` capped at the nodes there are).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_console_reads_a_person_from_the_stream_journal() {
    let broker = Broker::new("console-stream");
    let events = sample_events();
    let publishers = publishers_for(jurisdictions(&events).iter().map(String::as_str));
    let console = ConsoleOn::new();
    let serve = Serve::start_with(
        "console-stream",
        &broker,
        &publishers,
        &console.with(&[("HANDOFF_JOURNAL_BACKEND", "stream")]),
    );
    let audit = Watch::start(&broker.url(), "handoff.decisions", "audit").await;
    let (_, operator) = broker.add_user("operator", &["impersonator"]);
    let p = Publisher::connect(&operator).await;
    for e in &events {
        p.event(e).await;
    }
    audit
        .until(60, "P-170001's transfer to ICE", |s| {
            s.iter()
                .any(|s| s.routing_key == "transfer.ice" && s.body.contains("P-170001"))
        })
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, board) = console.get("/", true);
        assert_eq!(status, 200);
        if board.contains("writer of the journal stream, epoch 1") && board.contains("R1.2") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{board}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, person) = console.get("/person/P-170001", true);
    assert_eq!(status, 200, "{person}");
    assert!(person.contains("Person P-170001"));
    assert!(person.contains("R1.2"), "{person}");
    assert!(person.contains("party.ice"), "{person}");
    let (status, _) = console.get("/person/P-170001", false);
    assert_eq!(status, 401);
    drop(serve);
}
