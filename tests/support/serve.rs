//! Test support: `handoff serve` as a child process, publishers with confirms, queues
//! that watch what the service publishes, and the checks the live tests share.
//!
//! Include it after `broker.rs`: `#[path = "support/serve.rs"] mod serve;`.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::broker::Broker;
use chrono::{SecondsFormat, Utc};
use futures_lite::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_handoff");

// ---------------------------------------------------------------------------------------
// The service as a child process.

/// A running (or stopped) `handoff serve` with its own journal and HTTP port.
pub struct Serve {
    pub child: Option<Child>,
    pub http: SocketAddr,
    pub dir: PathBuf,
    pub env: Vec<(String, String)>,
    pub runs: u32,
}

pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("handoff-serve-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Serve {
    /// Starts the service on `broker` and waits until `/readyz` says ready.
    pub fn start(name: &str, broker: &Broker, publishers: &str) -> Serve {
        Serve::start_with(name, broker, publishers, &[])
    }

    pub fn start_with(
        name: &str,
        broker: &Broker,
        publishers: &str,
        extra: &[(&str, &str)],
    ) -> Serve {
        // The service's own user, with no tags: it may not impersonate anyone.
        let (_, url) = broker.add_user("handoff", &[]);
        Serve::start_on(name, &url, publishers, extra)
    }

    /// Starts the service on the broker at `url` (a private node, say), as that URL's user.
    pub fn start_on(name: &str, url: &str, publishers: &str, extra: &[(&str, &str)]) -> Serve {
        let mut s = Serve::new_on(name, url, publishers, extra);
        s.spawn();
        s
    }

    /// The service's settings, not started yet.
    pub fn new_on(name: &str, url: &str, publishers: &str, extra: &[(&str, &str)]) -> Serve {
        let http = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let dir = scratch(name);
        let env = vec![
            ("HANDOFF_AMQP_URL".into(), url.to_string()),
            (
                "HANDOFF_JOURNAL".into(),
                dir.join("journal.jsonl").display().to_string(),
            ),
            ("HANDOFF_HTTP_LISTEN".into(), http.to_string()),
            ("HANDOFF_PUBLISHERS".into(), publishers.into()),
            ("HANDOFF_LOG_FORMAT".into(), "json".into()),
            ("HANDOFF_LOG".into(), "info,lapin=off".into()),
        ];
        let env = env
            .into_iter()
            .chain(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .collect();
        Serve {
            child: None,
            http,
            dir,
            env,
            runs: 0,
        }
    }

    pub fn journal(&self) -> PathBuf {
        self.dir.join("journal.jsonl")
    }

    pub fn spawn(&mut self) {
        self.spawn_only();
        self.wait_ready();
    }

    /// Starts the process and waits until it answers `/readyz` at all: ready, or a hot
    /// standby of the stream journal (503 `standby…`).
    pub fn spawn_up(&mut self) {
        self.spawn_only();
        self.wait_up();
    }

    fn spawn_only(&mut self) {
        assert!(self.child.is_none());
        self.runs += 1;
        let log = std::fs::File::create(self.dir.join(format!("serve-{}.log", self.runs))).unwrap();
        let child = Command::new(BIN)
            .arg("serve")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting handoff serve");
        self.child = Some(child);
    }

    /// Waits until the service is the writer (ready) or a standby.
    pub fn wait_up(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.is_writer() && !self.is_standby() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("handoff serve exited with {status}:\n{}", self.logs());
            }
            if Instant::now() > deadline {
                panic!(
                    "handoff serve neither writer nor standby after 60 s:\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether `/readyz` says ready (with the stream journal: the writer).
    pub fn is_writer(&self) -> bool {
        matches!(http_get(self.http, "/readyz"), Some((200, _)))
    }

    /// Whether `/readyz` says standby.
    pub fn is_standby(&self) -> bool {
        matches!(http_get(self.http, "/readyz"), Some((503, body)) if body.starts_with("standby"))
    }

    /// The process id of the running service.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGSTOP: the process freezes (its connections stay open until the broker's
    /// heartbeat gives up on them).
    pub fn pause(&self) {
        signal(self.pid(), "-STOP");
    }

    /// SIGCONT after [`Serve::pause`].
    pub fn resume(&self) {
        signal(self.pid(), "-CONT");
    }

    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some((200, _)) = http_get(self.http, "/readyz") {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("handoff serve exited with {status}:\n{}", self.logs());
            }
            if Instant::now() > deadline {
                panic!("handoff serve not ready after 60 s:\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no chance to flush or say goodbye.
    pub fn kill(&mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// SIGTERM, and the exit status of a graceful shutdown.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let ok = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                child.kill().unwrap();
                panic!("handoff serve ignored SIGTERM for 30 s:\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every run's stderr, for failure messages.
    pub fn logs(&self) -> String {
        (1..=self.runs)
            .map(|n| {
                let text = std::fs::read_to_string(self.dir.join(format!("serve-{n}.log")))
                    .unwrap_or_default();
                format!("--- run {n} ---\n{text}")
            })
            .collect()
    }

    /// Every line of the journal, its control entries (`handoff.journal.opened`) included.
    pub fn journal_entries(&self) -> Vec<String> {
        std::fs::read_to_string(self.journal())
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The journal's events: every line but its control entries.
    pub fn journal_lines(&self) -> Vec<String> {
        self.journal_entries()
            .into_iter()
            .filter(|l| !is_control(l))
            .collect()
    }

    /// Waits until the journal holds `n` events (control entries not counted).
    pub fn wait_journal(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let have = self.journal_lines().len();
            if have >= n {
                return;
            }
            if Instant::now() > deadline {
                panic!("journal has {have} of {n} entries:\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn metrics(&self) -> String {
        http_get(self.http, "/metrics").expect("metrics").1
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success(), "kill {sig} {pid}");
}

/// Whether a journal line is a control entry (a `type` under `handoff.journal.`).
pub fn is_control(line: &str) -> bool {
    serde_json::from_str::<Value>(line).is_ok_and(|v| {
        v["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("handoff.journal."))
    })
}

pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    http_get_as(addr, path, None)
}

/// [`http_get`] with `Authorization: Bearer <credential>` (the console).
pub fn http_get_as(addr: SocketAddr, path: &str, bearer: Option<&str>) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let auth = bearer.map_or(String::new(), |b| format!("Authorization: Bearer {b}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{auth}\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

/// A credential and its hash (`handoff console --hash-credential`), for a console.
pub fn console_credential() -> (String, String) {
    let credential = format!("console-test-{}-credential", std::process::id());
    let mut child = Command::new(BIN)
        .args(["console", "--hash-credential"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{credential}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    (
        credential,
        String::from_utf8(out.stdout).unwrap().trim().to_owned(),
    )
}

/// A console to turn on in a service: where it listens, its credential, and the settings.
pub struct ConsoleOn {
    pub addr: SocketAddr,
    pub credential: String,
    pub env: Vec<(&'static str, String)>,
}

impl ConsoleOn {
    pub fn new() -> ConsoleOn {
        let (credential, hash) = console_credential();
        let addr = free_addr();
        ConsoleOn {
            addr,
            credential,
            env: vec![
                ("HANDOFF_CONSOLE_ENABLED", "true".into()),
                ("HANDOFF_CONSOLE_LISTEN", addr.to_string()),
                ("HANDOFF_CONSOLE_CREDENTIAL_HASH", hash),
            ],
        }
    }

    /// Its settings and `more`, for [`Serve::start_with`].
    pub fn with<'a>(&'a self, more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        self.env
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .chain(more.iter().copied())
            .collect()
    }

    /// `GET path` with the credential (`None`: without).
    pub fn get(&self, path: &str, authed: bool) -> (u16, String) {
        http_get_as(self.addr, path, authed.then_some(self.credential.as_str()))
            .expect("the console answers")
    }
}

/// A free port on this host.
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// `handoff replay JOURNAL --until T`: the decisions the journal implies, as lines.
pub fn replay(journal: &Path, until: &str) -> Vec<String> {
    replay_with(journal, until, &[])
}

/// `handoff replay JOURNAL --until UNTIL --parties`: each decision with its parties.
pub fn replay_parties(journal: &Path, until: &str) -> Vec<String> {
    replay_with(journal, until, &["--parties"])
}

fn replay_with(journal: &Path, until: &str, flags: &[&str]) -> Vec<String> {
    let out = Command::new(BIN)
        .args(["replay", &journal.display().to_string(), "--until", until])
        .args(flags)
        .output()
        .unwrap();
    assert!(
        out.status.code() == Some(0) || out.status.code() == Some(1),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

// ---------------------------------------------------------------------------------------
// Publishing and watching.

/// The `user-id` each event is sent with: one configured user per agency.
pub fn user_for(event: &Value) -> String {
    let t = event["type"].as_str().unwrap();
    // A policy from one of ICE's own systems is sent by ICE.
    let from_ice = event["source"]
        .as_str()
        .is_some_and(|s| s.starts_with("urn:agency:ice:"));
    match t.split('.').next().unwrap() {
        _ if from_ice => "ice".into(),
        "bop" => "bop".into(),
        "ice" => "ice".into(),
        "court" => "court".into(),
        _ => format!("j-{}", event["data"]["jurisdiction_id"].as_str().unwrap()),
    }
}

/// `HANDOFF_PUBLISHERS` for the users of [`user_for`], given the jurisdictions in play.
pub fn publishers_for<'a>(jurisdictions: impl IntoIterator<Item = &'a str>) -> String {
    let mut s = String::from("bop=bop,ice=ice,court=court");
    for j in jurisdictions.into_iter().collect::<BTreeSet<_>>() {
        s.push_str(&format!(",j-{j}=jurisdiction:{j}"));
    }
    s
}

pub fn jurisdictions(events: &[Value]) -> BTreeSet<String> {
    events
        .iter()
        .filter_map(|e| e["data"]["jurisdiction_id"].as_str().map(str::to_owned))
        .chain(
            events
                .iter()
                .filter(|e| e["data"]["custodian"]["kind"] == "local")
                .map(|e| e["data"]["custodian"]["id"].as_str().unwrap().to_owned()),
        )
        .collect()
}

/// A publisher connection with confirms on.
pub struct Publisher {
    pub conn: Connection,
    pub ch: Channel,
}

impl Publisher {
    pub async fn connect(url: &str) -> Publisher {
        let conn = Connection::connect(url, ConnectionProperties::default())
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        Publisher { conn, ch }
    }

    /// Publishes raw bytes on `handoff.events` and waits for the broker's confirm.
    pub async fn send(
        &self,
        body: &[u8],
        routing_key: &str,
        user_id: Option<&str>,
    ) -> Confirmation {
        let mut props = BasicProperties::default()
            .with_content_type("application/cloudevents+json".into())
            .with_delivery_mode(2);
        if let Some(u) = user_id {
            props = props.with_user_id(u.into());
        }
        self.ch
            .basic_publish(
                "handoff.events".into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                body,
                props,
            )
            .await
            .unwrap()
            .await
            .unwrap()
    }

    /// Publishes an event as the user of its agency.
    pub async fn event(&self, event: &Value) {
        let body = serde_json::to_vec(event).unwrap();
        let c = self
            .send(
                &body,
                event["type"].as_str().unwrap(),
                Some(&user_for(event)),
            )
            .await;
        assert!(matches!(c, Confirmation::Ack(None)), "{c:?}");
    }
}

/// One message seen on a queue the test watches.
#[derive(Debug, Clone)]
pub struct Seen {
    pub routing_key: String,
    pub message_id: String,
    pub content_type: String,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

/// A queue of the test's own, bound to an exchange, collecting what arrives.
pub struct Watch {
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub _conn: Connection,
}

impl Watch {
    /// Binds a fresh queue to `exchange` with `#` (or consumes `queue` itself when the
    /// exchange is empty) and collects every message.
    pub async fn start(url: &str, exchange: &str, queue: &str) -> Watch {
        Watch::start_bound(url, exchange, queue, "#").await
    }

    /// [`Watch::start`], the fresh queue bound with `key`.
    pub async fn start_bound(url: &str, exchange: &str, queue: &str, key: &str) -> Watch {
        let conn = Connection::connect(url, ConnectionProperties::default())
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        if !exchange.is_empty() {
            ch.queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
            ch.queue_bind(
                queue.into(),
                exchange.into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        }
        let mut consumer = ch
            .basic_consume(
                queue.into(),
                "test".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        tokio::spawn(async move {
            while let Some(Ok(d)) = consumer.next().await {
                let p = &d.properties;
                let headers = p
                    .headers()
                    .as_ref()
                    .map(|h| {
                        h.inner()
                            .iter()
                            .map(|(k, v)| match v {
                                AMQPValue::LongString(s) => (k.to_string(), s.to_string()),
                                // A list of strings (BCC, x-handoff-unreached): comma-joined.
                                AMQPValue::FieldArray(a) => (
                                    k.to_string(),
                                    a.as_slice()
                                        .iter()
                                        .map(|v| match v {
                                            AMQPValue::LongString(s) => s.to_string(),
                                            other => format!("{other:?}"),
                                        })
                                        .collect::<Vec<_>>()
                                        .join(","),
                                ),
                                other => (k.to_string(), format!("{other:?}")),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                sink.lock().unwrap().push(Seen {
                    routing_key: d.routing_key.to_string(),
                    message_id: p
                        .message_id()
                        .as_ref()
                        .map(|s| s.to_string())
                        .unwrap_or_default(),
                    content_type: p
                        .content_type()
                        .as_ref()
                        .map(|s| s.to_string())
                        .unwrap_or_default(),
                    headers,
                    body: String::from_utf8_lossy(&d.data).into_owned(),
                });
            }
        });
        Watch { seen, _conn: conn }
    }

    pub fn all(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits until every decision `handoff replay` finds in `journal` has been seen, then
    /// checks that the decisions seen (deduplicated by message id, none with two bodies)
    /// are exactly those.
    pub async fn live_equals_replay(&self, journal: &Path) {
        let expected = replay(journal, &now_rfc3339());
        let seen = self
            .until(120, "every decision", |s| {
                s.iter()
                    .map(|s| &s.message_id)
                    .collect::<BTreeSet<_>>()
                    .len()
                    >= expected.len()
            })
            .await;
        let live: BTreeSet<String> = dedup(&seen).into_iter().collect();
        let replayed: BTreeSet<String> = expected.into_iter().collect();
        assert_eq!(live.len(), replayed.len());
        assert!(
            live == replayed,
            "live decisions differ from the replay of the journal"
        );
    }

    /// Waits until `done(seen)` holds, or fails after `secs` with what was seen.
    pub async fn until(&self, secs: u64, what: &str, done: impl Fn(&[Seen]) -> bool) -> Vec<Seen> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let all = self.all();
            if done(&all) {
                return all;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; saw {} messages", all.len());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

pub fn sample_events() -> Vec<Value> {
    include_str!("../../samples/week.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `handoff gen --events N --seed S [--people P] [--start T]`, as JSON values.
pub fn generated(events: u64, seed: u64, people: Option<u64>, start: Option<&str>) -> Vec<Value> {
    let mut args = vec![
        "gen".to_string(),
        "--events".into(),
        events.to_string(),
        "--seed".into(),
        seed.to_string(),
    ];
    if let Some(p) = people {
        args.extend(["--people".into(), p.to_string()]);
    }
    if let Some(t) = start {
        args.extend(["--start".into(), t.to_string()]);
    }
    let out = Command::new(BIN).args(&args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Live decisions, deduplicated by message id, checked to never reuse an id for a
/// different body; in first-seen order.
pub fn dedup(seen: &[Seen]) -> Vec<String> {
    let mut bodies: HashMap<&str, &str> = HashMap::new();
    let mut out = Vec::new();
    for s in seen {
        match bodies.get(s.message_id.as_str()) {
            Some(b) => assert_eq!(
                *b, s.body,
                "decision {} published with two bodies",
                s.message_id
            ),
            None => {
                bodies.insert(&s.message_id, &s.body);
                out.push(s.body.clone());
            }
        }
    }
    out
}
