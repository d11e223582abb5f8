//! `handoff publish` end to end: the real binary against a real RabbitMQ vhost.
//!
//! Needs RabbitMQ: a local one at 127.0.0.1:5672, `HANDOFF_TEST_AMQP_URL`, or Docker for a
//! container (`support/broker.rs`).

#[path = "support/broker.rs"]
mod broker;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use broker::Broker;
use lapin::options::{
    BasicGetOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};
use serde_json::Value;

const WEEK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/week.jsonl");

fn handoff(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_handoff"))
        .args(args)
        .env_remove("HANDOFF_AMQP_URL")
        .env_remove("HANDOFF_PUBLISHERS")
        .output()
        .expect("run handoff")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A file in the temporary directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(broker: &Broker, name: &str, text: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!("{}-{name}", broker.vhost()));
        std::fs::write(&path, text).unwrap();
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Declares the events exchange (and, with `bind`, a queue `q` bound to `#`).
fn topology(broker: &Broker, bind: bool) {
    runtime().block_on(async {
        let conn = Connection::connect(&broker.url(), ConnectionProperties::default())
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        ch.exchange_declare(
            "handoff.events".into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        if bind {
            ch.queue_declare(
                "q".into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
            ch.queue_bind(
                "q".into(),
                "handoff.events".into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        }
        conn.close(200, "OK".into()).await.unwrap();
    });
}

struct Message {
    routing_key: String,
    properties: BasicProperties,
    body: Vec<u8>,
}

/// Everything in queue `q`, in order.
fn drain(broker: &Broker) -> Vec<Message> {
    runtime().block_on(async {
        let conn = Connection::connect(&broker.url(), ConnectionProperties::default())
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        let mut out = Vec::new();
        while let Some(m) = ch
            .basic_get("q".into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            out.push(Message {
                routing_key: m.delivery.routing_key.to_string(),
                properties: m.delivery.properties.clone(),
                body: m.delivery.data.clone(),
            });
        }
        conn.close(200, "OK".into()).await.unwrap();
        out
    })
}

fn prop(p: &Option<lapin::types::ShortString>) -> &str {
    p.as_ref().map_or("", |s| s.as_str())
}

#[test]
fn the_sample_week_arrives_in_order_with_its_properties() {
    let broker = Broker::new("publish_week");
    topology(&broker, true);
    let url = broker.url();
    let out = handoff(&["publish", WEEK, "--url", &url, "--window", "7"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("published 72 events in "),
        "{}",
        stderr(&out)
    );
    let user = ::handoff::live::config::url_user(&url);
    let messages = drain(&broker);
    let lines: Vec<&str> = include_str!("../samples/week.jsonl").lines().collect();
    assert_eq!(messages.len(), 72);
    assert_eq!(lines.len(), 72);
    for (m, line) in messages.iter().zip(&lines) {
        let event: Value = serde_json::from_str(line).unwrap();
        let ty = event["type"].as_str().unwrap();
        assert_eq!(m.body, line.as_bytes(), "published byte for byte");
        assert_eq!(m.routing_key, ty);
        assert_eq!(
            prop(m.properties.message_id()),
            event["id"].as_str().unwrap()
        );
        assert_eq!(prop(m.properties.kind()), ty);
        assert_eq!(
            prop(m.properties.content_type()),
            "application/cloudevents+json"
        );
        assert_eq!(prop(m.properties.app_id()), "handoff-publish");
        assert_eq!(prop(m.properties.user_id()), user);
        assert_eq!(*m.properties.delivery_mode(), Some(2));
    }
}

#[test]
fn one_bad_line_publishes_nothing() {
    let broker = Broker::new("publish_bad_line");
    topology(&broker, true);
    let mut lines: Vec<String> = include_str!("../samples/week.jsonl")
        .lines()
        .take(3)
        .map(str::to_owned)
        .collect();
    lines.insert(1, String::new());
    lines[2] = lines[2].replace("\"specversion\":\"1.0\"", "\"specversion\":\"0.3\"");
    let file = TempFile::new(&broker, "bad.jsonl", &(lines.join("\n") + "\n"));
    let out = handoff(&["publish", file.path(), "--url", &broker.url()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{}:3: invalid (schema)", file.path())),
        "{err}"
    );
    assert!(err.contains("nothing published"), "{err}");
    assert!(drain(&broker).is_empty());
}

#[test]
fn unroutable_messages_are_reported_as_returned() {
    let broker = Broker::new("publish_unroutable");
    topology(&broker, false);
    let text: String = include_str!("../samples/week.jsonl")
        .lines()
        .take(5)
        .map(|l| format!("{l}\n"))
        .collect();
    let file = TempFile::new(&broker, "five.jsonl", &text);
    let out = handoff(&[
        "publish",
        file.path(),
        "--url",
        &broker.url(),
        "--window",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    for n in 1..=5 {
        assert!(
            err.contains(&format!(
                "{}:{n}: returned by the broker: NO_ROUTE (is handoff serve running and the \
                 topology declared?)",
                file.path()
            )),
            "{err}"
        );
    }
    assert!(err.contains("published 0 events"), "{err}");
    assert!(err.contains("5 of 5 events were not delivered"), "{err}");

    // No exchange at all: the broker closes the channel; that is a broker problem (2).
    let other = Broker::new("publish_no_exchange");
    let out = handoff(&["publish", file.path(), "--url", &other.url()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no exchange \"handoff.events\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn journal_attributes_are_not_published() {
    let broker = Broker::new("publish_journal");
    topology(&broker, true);
    let first = include_str!("../samples/week.jsonl")
        .lines()
        .next()
        .unwrap();
    let journal_line = first.replacen(
        '{',
        "{\"handoffreceived\":\"2017-01-28T06:00:01Z\",\"handoffcrc\":\"0123abcd\",",
        1,
    );
    let file = TempFile::new(
        &broker,
        "journal.jsonl",
        &format!("{journal_line}\n{first}\n"),
    );
    let out = handoff(&["publish", file.path(), "--url", &broker.url()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let messages = drain(&broker);
    assert_eq!(messages.len(), 2);
    let published: Value = serde_json::from_slice(&messages[0].body).unwrap();
    assert!(published.get("handoffreceived").is_none());
    assert!(published.get("handoffcrc").is_none());
    assert_eq!(published, serde_json::from_str::<Value>(first).unwrap());
    // A line without them goes out byte for byte.
    assert_eq!(messages[1].body, first.as_bytes());
}

/// A journal's control entries (ICD section 8) are handoff's own: publish skips them, says
/// how many, and sends every event.
#[test]
fn control_entries_are_never_published() {
    let broker = Broker::new("publish_controls");
    topology(&broker, true);
    let week: Vec<&str> = include_str!("../samples/week.jsonl")
        .lines()
        .take(3)
        .collect();
    let opened = |n: u32| {
        let o = ::handoff::journal::control::Opened::now(
            "handoff-a",
            ::handoff::edge::envelope::parse_time("2017-01-28T05:00:00Z").unwrap(),
            u64::from(n),
        );
        let mut line = Vec::new();
        ::handoff::journal::frame(&::handoff::edge::wire::opened_json(&o), &mut line);
        String::from_utf8(line).unwrap()
    };
    let text = format!(
        "{}{}\n{}\n{}{}\n",
        opened(0),
        week[0],
        week[1],
        opened(3),
        week[2]
    );
    let file = TempFile::new(&broker, "journal.jsonl", &text);
    let out = handoff(&["publish", file.path(), "--url", &broker.url()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("skipped 2 control entries (handoff.journal.*)"),
        "{err}"
    );
    assert!(err.contains("published 3 events in "), "{err}");
    let bodies: Vec<Vec<u8>> = drain(&broker).into_iter().map(|m| m.body).collect();
    let expected: Vec<Vec<u8>> = week.iter().map(|l| l.as_bytes().to_vec()).collect();
    assert_eq!(bodies, expected);
}

#[test]
fn impersonation_sends_each_event_as_its_publisher() {
    let broker = Broker::new("publish_impersonate");
    topology(&broker, true);
    let (_, publisher_url) = broker.add_user("publisher", &["impersonator"]);
    let user = |short: &str| broker.add_user(short, &[]).0;
    let (bop, court, ice) = (user("bop"), user("court"), user("ice"));
    let (nv, tx) = (user("nv-clark-county"), user("tx-travis-county"));
    let config = TempFile::new(
        &broker,
        "handoff.toml",
        &format!(
            "[publishers]\n\"{bop}\" = \"bop\"\n\"{court}\" = \"court\"\n\"{ice}\" = \"ice\"\n\
             \"{nv}\" = \"jurisdiction:nv-clark-county\"\n\
             \"{tx}\" = \"jurisdiction:tx-travis-county\"\n"
        ),
    );
    let out = handoff(&[
        "publish",
        WEEK,
        "--url",
        &publisher_url,
        "--impersonate",
        "--config",
        config.path(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let messages = drain(&broker);
    assert_eq!(messages.len(), 72);
    for m in &messages {
        let ty = m.routing_key.as_str();
        let expected = match ty.split('.').next().unwrap() {
            "bop" => &bop,
            "court" => &court,
            "ice" => &ice,
            // The week's policies come from Travis County's own source, so only Travis
            // County may send them (ICE sends policies from its own sources).
            "jurisdiction" => &tx,
            _ => &tx,
        };
        assert_eq!(prop(m.properties.user_id()), expected, "{ty}");
    }

    // A user without the impersonator tag is refused by the broker.
    let (_, plain_url) = broker.add_user("plain", &[]);
    let out = handoff(&[
        "publish",
        WEEK,
        "--url",
        &plain_url,
        "--impersonate",
        "--config",
        config.path(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the user must have the impersonator tag"),
        "{}",
        stderr(&out)
    );
    assert!(
        drain(&broker).is_empty(),
        "the refused message was not queued"
    );

    // An event no configured publisher may send is a bad line, found before publishing.
    let no_court = TempFile::new(
        &broker,
        "no-court.toml",
        &format!(
            "[publishers]\n\"{bop}\" = \"bop\"\n\"{ice}\" = \"ice\"\n\"{nv}\" = \"jurisdiction:nv-clark-county\"\n\"{tx}\" = \"jurisdiction:tx-travis-county\"\n"
        ),
    );
    let out = handoff(&[
        "publish",
        WEEK,
        "--url",
        &publisher_url,
        "--impersonate",
        "--config",
        no_court.path(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    let writ = include_str!("../samples/week.jsonl")
        .lines()
        .position(|l| l.contains("\"court.writ.issued\""))
        .unwrap()
        + 1;
    assert!(
        err.contains(&format!(
            "{WEEK}:{writ}: no configured publisher may send court.writ.issued"
        )),
        "{err}"
    );
    assert!(drain(&broker).is_empty());
}

#[test]
fn rate_paces_publishing() {
    let broker = Broker::new("publish_rate");
    topology(&broker, true);
    let text: String = include_str!("../samples/week.jsonl")
        .lines()
        .take(10)
        .map(|l| format!("{l}\n"))
        .collect();
    let file = TempFile::new(&broker, "ten.jsonl", &text);
    let started = Instant::now();
    let out = handoff(&[
        "publish",
        file.path(),
        "--url",
        &broker.url(),
        "--rate",
        "40",
    ]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Nine gaps of 25 ms.
    assert!(took >= Duration::from_millis(225), "{took:?}");
    assert_eq!(drain(&broker).len(), 10);
}

#[test]
fn passwords_are_never_printed() {
    let out = handoff(&[
        "publish",
        WEEK,
        "--url",
        "amqp://bop:s3cret@127.0.0.1:1/%2f",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("amqp://bop:***@127.0.0.1:1/%2f"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");

    let help = handoff(&["publish", "--help"]);
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("--impersonate"), "{text}");
    assert!(!text.contains("guest:guest"), "{text}");

    let out = handoff(&["publish", "/nonexistent/events.jsonl"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot read /nonexistent/events.jsonl"));
}
