//! `handoff-bench live`: a load test of the live service against a real RabbitMQ.
//!
//! It generates N events (`generator`), publishes them at a chosen rate to a fresh copy of
//! the topology, consumes the decisions, and reports throughput and latency (publish of an
//! event → arrival of its first decision). Everything is durable and confirmed end to end:
//! persistent messages, durable queues of the chosen type (the bench's own decision queue
//! too, as an agency's queue would be), publisher confirms on both legs, manual acks.
//!
//! Two modes run in the same invocation, one after the other, on the same events:
//!
//! - `handoff`: the real service (`service::serve`), in process, on its own 2-worker
//!   runtime (as `handoff serve` builds it), with a fresh journal that is fsync'd.
//! - `relay`: the ceiling. A bare consume → publish with confirms → ack loop with the
//!   service's shape (prefetch 1000, batches of whatever is ready up to prefetch/4, one
//!   batch confirming while the next is gathered, `basic.ack(multiple)`), but no
//!   validation, journal or engine. handoff's throughput is reported as a fraction of it.
//!
//! Isolation: each mode uses exchanges and queues named `handoff-bench-<run>-<mode>.*`,
//! deleted at the end (on error too, where the broker still answers), and event ids get a
//! `.<run>` suffix so that no run ever sees another's events as duplicates. Events are
//! published as the agency allowed to send them (AMQP `user-id`), which needs the
//! connecting user to have RabbitMQ's `impersonator` tag.
//!
//! Completion: after the N events the bench publishes a sentinel, a `bop.release.scheduled`
//! for a person no one else mentions, which the engine answers at once (R1.4). handoff
//! processes and publishes in order, so the sentinel's decision arrives last; the relay's
//! copy of the sentinel likewise. Throughput is N / (its arrival − the first publish).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use chrono::{SubsecRound, Utc};
use futures_lite::StreamExt;
use futures_lite::future::poll_once;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ExchangeDeclareOptions,
    ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ErrorKind, ExchangeKind};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};

use handoff::edge::envelope;
use handoff::live::amqp;
use handoff::live::config::{self, Config, QueueType};
use handoff::live::publish::redact_url;
use handoff::live::service;
use handoff_core::authz::{self, Agency};
use handoff_core::engine::Engine;
use handoff_core::ids::decision_id_for_event;
use handoff_core::model::{Custodian, Event, EventBody, Time};
use handoff_gen::{self as generator, GenConfig};

/// Unconfirmed events the publisher allows itself at a time.
const WINDOW: usize = 2_000;
/// The service's default prefetch; the relay uses the same.
const PREFETCH: u16 = 1_000;
/// How long the sentinel may take to come back after the last publish.
const SENTINEL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the service (or relay) may take to start consuming.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// The BOP source the generator uses, and the sentinel's.
const BOP_SOURCE: &str = "urn:agency:bop:sentry";

/// `handoff-bench live` arguments.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// The broker's AMQP URL [default: $HANDOFF_AMQP_URL, else
    /// amqp://guest:***@127.0.0.1:5672/%2f]. Its user needs RabbitMQ's impersonator tag.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Number of generated events to publish (a final sentinel event is added).
    #[arg(long, default_value_t = 50_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub events: u64,
    /// Events per second on an absolute schedule; 0 publishes as fast as confirms allow.
    #[arg(long, value_name = "EVENTS_PER_SEC", default_value_t = 0.0)]
    pub rate: f64,
    /// Seed of the generated log.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Number of distinct people (default: events / 10).
    #[arg(long)]
    pub people: Option<u64>,
    /// The type of every queue: the inbound queue, dead letters, and the bench's own
    /// decision queue.
    #[arg(long, value_enum, default_value = "quorum")]
    pub queue_type: QueueKind,
    /// Which to measure: handoff, the bare relay (the ceiling), or both in turn.
    #[arg(long, value_enum, default_value = "both")]
    pub mode: Mode,
    /// Where to put the journal (kept afterwards) [default: a fresh directory under the
    /// system's temporary directory, removed afterwards].
    #[arg(long, value_name = "DIR")]
    pub journal_dir: Option<PathBuf>,
    /// The journal handoff writes: `file` (fsync'd), or `stream`, which measures handoff
    /// twice in the same run, on the file journal and then on a RabbitMQ stream journal
    /// (a lone writer: it takes the lock at once), and reports their ratio.
    #[arg(long, value_enum, default_value = "file")]
    pub journal: JournalKind,
    /// Print one JSON object on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum JournalKind {
    File,
    Stream,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QueueKind {
    Quorum,
    Classic,
}

impl QueueKind {
    fn queue_type(self) -> QueueType {
        match self {
            QueueKind::Quorum => QueueType::Quorum,
            QueueKind::Classic => QueueType::Classic,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Both,
    Handoff,
    Relay,
}

/// Why a run did not complete.
#[derive(Debug)]
enum BenchError {
    /// It could not run at all (exit 2): no broker, no impersonation, bad arguments.
    CannotRun(String),
    /// It ran and failed (exit 1): the service stopped, a sentinel never came.
    Failed(String),
}

fn failed(e: impl std::fmt::Display) -> BenchError {
    BenchError::Failed(e.to_string())
}

/// Runs `handoff-bench live`: 0 when every requested mode completed, 1 when one failed
/// (the service stopped with an error, or a sentinel never arrived), 2 when the bench
/// could not run.
pub fn run(args: &BenchArgs) -> ExitCode {
    match run_inner(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(BenchError::CannotRun(m)) => {
            eprintln!("handoff-bench live: {}", redact_url(&m));
            ExitCode::from(2)
        }
        Err(BenchError::Failed(m)) => {
            eprintln!("handoff-bench live: {}", redact_url(&m));
            ExitCode::from(1)
        }
    }
}

/// What every mode needs.
struct Ctx {
    url: String,
    run: String,
    queue_type: QueueType,
    rate: f64,
    journal_dir: Option<PathBuf>,
    progress: bool,
}

impl Ctx {
    fn say(&self, what: impl std::fmt::Display) {
        if self.progress {
            eprintln!("handoff-bench live: {what}");
        }
    }
}

fn run_inner(args: &BenchArgs) -> Result<(), BenchError> {
    if !(args.rate.is_finite() && args.rate >= 0.0) {
        return Err(BenchError::CannotRun(
            "--rate must be a non-negative number".into(),
        ));
    }
    let url = handoff::live::publish::broker_url(args.url.as_deref());
    if let Ok(filter) = std::env::var("HANDOFF_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .try_init();
    }
    let ctx = Ctx {
        url,
        run: run_id(),
        queue_type: args.queue_type.queue_type(),
        rate: args.rate,
        journal_dir: args.journal_dir.clone(),
        progress: std::io::stderr().is_terminal(),
    };
    let mut gen_config = GenConfig::new(args.events, args.seed);
    if let Some(p) = args.people {
        gen_config.people = p.max(1);
    }
    // Times start now, so release dates, offers' answer-by times and holds lie ahead of
    // the service's wall clock as they would live (a log from 2017 would make every
    // offer lapse on arrival and every answer to it a dead letter).
    gen_config.start = Utc::now().trunc_subsecs(0);
    ctx.say(format_args!(
        "generating {} events (seed {}, {} people), run {}",
        args.events, args.seed, gen_config.people, ctx.run
    ));
    let work = prepare(&gen_config, &ctx.run).map_err(|e| BenchError::CannotRun(e.to_string()))?;

    let harness = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-harness")
        .enable_all()
        .build()
        .map_err(|e| BenchError::CannotRun(format!("cannot start a runtime: {e}")))?;
    harness.block_on(preflight(&ctx))?;

    let mut modes: Vec<(Mode, config::Backend)> = match args.mode {
        Mode::Both => vec![
            (Mode::Handoff, config::Backend::File),
            (Mode::Relay, config::Backend::File),
        ],
        Mode::Handoff => vec![(Mode::Handoff, config::Backend::File)],
        Mode::Relay => vec![(Mode::Relay, config::Backend::File)],
    };
    if args.journal == JournalKind::Stream && args.mode != Mode::Relay {
        modes.insert(1, (Mode::Handoff, config::Backend::Stream));
    }
    let mut outcomes = Vec::new();
    let mut error = None;
    for (i, (mode, backend)) in modes.iter().enumerate() {
        if i > 0 {
            // Let the broker settle (queue deletions, WAL) between the two.
            std::thread::sleep(Duration::from_secs(2));
        }
        let result = harness.block_on(async {
            match mode {
                Mode::Relay => bench_relay(&ctx, &work).await,
                _ => bench_handoff(&ctx, &work, *backend).await,
            }
        });
        match result {
            Ok(o) => outcomes.push(o),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    harness.shutdown_timeout(Duration::from_secs(5));
    if !outcomes.is_empty() {
        let report = Report {
            relay_outputs: work
                .events
                .iter()
                .chain(std::iter::once(&work.sentinel))
                .map(|e| u64::from(e.outputs))
                .sum(),
            events: args.events,
            seed: args.seed,
            people: gen_config.people,
            queue_type: ctx.queue_type,
            rate: args.rate,
            outcomes,
        };
        if args.json {
            println!("{}", report.to_json());
        } else {
            print!("{}", report.to_text());
        }
    }
    match error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// A short id for this run: names, event id suffixes, the sentinel's person.
fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mixed = (nanos ^ (u64::from(std::process::id()) << 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!("{:08x}", mixed >> 32)
}

// ---------------------------------------------------------------------------------------
// The workload.

/// One event ready to publish.
struct Prepared {
    id: String,
    event_type: &'static str,
    user: String,
    body: Vec<u8>,
    /// How many messages handoff publishes for it (decisions, or a dead letter for an
    /// answer the rules refuse), by a replay before the run; what the relay publishes.
    outputs: u32,
}

/// The events, the sentinel, and who publishes them.
struct Workload {
    events: Vec<Prepared>,
    sentinel: Prepared,
    /// The message id of the sentinel's decision (handoff mode).
    sentinel_decision: String,
    /// Event id → index of its first occurrence (the generator repeats about one event in
    /// a thousand, as a redelivery would).
    index: HashMap<String, usize>,
    /// AMQP user → agency, for the service's `publishers`.
    publishers: BTreeMap<String, String>,
}

/// The user that publishes `event`, and the agency it is configured as. Policies come
/// from the jurisdiction itself unless ICE sent them.
pub fn publisher_of(event: &Event) -> (String, String) {
    let agency = authz::usual_sender(event);
    let user = match &agency {
        Agency::Jurisdiction(j) => format!("bench-j-{j}"),
        other => format!("bench-{other}"),
    };
    (user, agency.to_string())
}

/// Every jurisdiction an event names, as a party or as a custodian.
fn jurisdictions_named(event: &Event) -> Vec<&str> {
    if let Some(j) = authz::voice(event) {
        return vec![j];
    }
    match &event.body {
        EventBody::WritIssued {
            jurisdiction_id, ..
        } => vec![jurisdiction_id],
        EventBody::DetainerIssued {
            custodian: Custodian::Local(j),
            ..
        }
        | EventBody::CustodyAssumed {
            from: Custodian::Local(j),
            ..
        } => vec![j],
        _ => Vec::new(),
    }
}

/// The publishers table that lets every user of `events` send what it sends, plus a
/// user for every jurisdiction the events name.
pub fn publishers_for<'a>(events: impl IntoIterator<Item = &'a Event>) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for e in events {
        let (user, agency) = publisher_of(e);
        map.insert(user, agency);
        for j in jurisdictions_named(e) {
            map.insert(format!("bench-j-{j}"), format!("jurisdiction:{j}"));
        }
    }
    map
}

/// Generates the log in memory and makes it this run's: ids suffixed with `.<run>` (and
/// the first-refusal answers' `offer_id`s with them, since an offer's id derives from the
/// id of the release that caused it), each event checked and given its publisher.
fn prepare(cfg: &GenConfig, run: &str) -> anyhow::Result<Workload> {
    let mut bytes = Vec::with_capacity(cfg.events as usize * 400);
    generator::generate(cfg, &mut bytes)?;
    let mut offers: HashMap<String, String> = HashMap::new();
    let mut events = Vec::with_capacity(cfg.events as usize);
    let mut parsed = Vec::with_capacity(cfg.events as usize);
    let mut index = HashMap::with_capacity(cfg.events as usize);
    for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let mut value: Value = serde_json::from_slice(line)?;
        let old = value["id"].as_str().unwrap_or_default().to_string();
        let source = value["source"].as_str().unwrap_or_default().to_string();
        let id = format!("{old}.{run}");
        match value["type"].as_str() {
            Some("bop.release.scheduled") => {
                offers.insert(
                    decision_id_for_event(&source, &old, 0),
                    decision_id_for_event(&source, &id, 0),
                );
            }
            Some("ice.first_refusal.response") => {
                let offer = &mut value["data"]["offer_id"];
                if let Some(new) = offer.as_str().and_then(|o| offers.get(o)) {
                    *offer = Value::String(new.clone());
                }
            }
            _ => {}
        }
        value["id"] = Value::String(id.clone());
        let event = envelope::event_from_value(&value)
            .map_err(|e| anyhow::anyhow!("generated event {old} is invalid: {e}"))?;
        let (user, agency) = publisher_of(&event);
        let agency: Agency = agency.parse().map_err(|e: String| anyhow::anyhow!(e))?;
        authz::check(&agency, &event).map_err(|e| anyhow::anyhow!("generated event {old}: {e}"))?;
        index.entry(id.clone()).or_insert(events.len());
        events.push(Prepared {
            id,
            event_type: event.body.type_name(),
            user,
            body: serde_json::to_vec(&value)?,
            outputs: 0,
        });
        parsed.push(event);
    }
    count_outputs(&mut events, &parsed, cfg.start);
    let (sentinel, sentinel_event) = sentinel(run)?;
    parsed.push(sentinel_event.clone());
    let publishers = publishers_for(&parsed);
    // The sentinel must be decided at once, by itself, whatever came before.
    let step = Engine::new().handle(&sentinel_event);
    let first = step
        .decisions
        .first()
        .ok_or_else(|| anyhow::anyhow!("the sentinel event makes no decision"))?;
    Ok(Workload {
        events,
        sentinel,
        sentinel_decision: first.id.clone(),
        index,
        publishers,
    })
}

/// Sets each event's `outputs`: the messages handoff publishes for it when every event
/// arrives at `now` (the service stamps arrival with the wall clock, which moves by only
/// seconds in a run, while the generated deadlines lie hours and days ahead).
fn count_outputs(events: &mut [Prepared], parsed: &[Event], now: Time) {
    let mut engine = Engine::new();
    for (p, e) in events.iter_mut().zip(parsed) {
        let mut e = e.clone();
        e.received = Some(now);
        let step = engine.handle(&e);
        let dead = matches!(step.outcome, handoff_core::engine::Outcome::Rejected(_));
        p.outputs = (step.decisions.len() + usize::from(dead)) as u32;
    }
}

/// A release for a person no other event mentions: R1.4 decides it on arrival.
fn sentinel(run: &str) -> anyhow::Result<(Prepared, Event)> {
    let now = handoff::edge::wire::format_time(&Time::from(Utc::now().trunc_subsecs(0)));
    let person = format!("BENCH-{}", run.to_uppercase());
    let id = format!("sentinel.{run}");
    let value = json!({
        "specversion": "1.0",
        "id": id,
        "source": BOP_SOURCE,
        "type": "bop.release.scheduled",
        "time": now,
        "subject": person,
        "datacontenttype": "application/json",
        "data": {"person_id": person, "facility": "bench", "release_at": now},
    });
    let event = envelope::event_from_value(&value)
        .map_err(|e| anyhow::anyhow!("the sentinel is invalid: {e}"))?;
    let prepared = Prepared {
        id,
        event_type: "bop.release.scheduled",
        user: publisher_of(&event).0,
        body: serde_json::to_vec(&value)?,
        outputs: 1,
    };
    Ok((prepared, event))
}

// ---------------------------------------------------------------------------------------
// The broker side.

/// The exchanges and queues of one mode's run.
struct Names {
    events: String,
    decisions: String,
    inbound: String,
    dead_letter: String,
    unrouted: String,
    /// The bench's own decision queue, bound to `decisions` with `#`.
    out: String,
    /// The stream journal and its exchange, and the writer's lock (stream journal only).
    journal: String,
    lock: String,
}

impl Names {
    fn new(run: &str, mode: &str) -> Names {
        let p = format!("handoff-bench-{run}-{mode}");
        Names {
            events: format!("{p}.events"),
            decisions: format!("{p}.decisions"),
            inbound: format!("{p}.inbound"),
            dead_letter: format!("{p}.dead-letter"),
            unrouted: format!("{p}.unrouted"),
            out: format!("{p}.out"),
            journal: format!("{p}.journal"),
            lock: format!("{p}.writer"),
        }
    }
}

fn queue_args(queue_type: QueueType) -> FieldTable {
    let mut t = FieldTable::default();
    t.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from(queue_type.as_str())),
    );
    t
}

async fn connect(url: &str, name: &str) -> Result<Connection, BenchError> {
    // The bench takes no TLS files: an amqps:// URL is checked against the platform's roots.
    let tls = config::TlsMaterial::default();
    match tokio::time::timeout(Duration::from_secs(10), amqp::connect(url, &tls, name)).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(BenchError::CannotRun(format!(
            "cannot connect to {}: {e}",
            redact_url(url)
        ))),
        Err(_) => Err(BenchError::CannotRun(format!(
            "cannot connect to {}: no answer in 10 s",
            redact_url(url)
        ))),
    }
}

/// The broker's words when it closed a channel, if that is what `e` is.
fn broker_said(e: &lapin::Error) -> Option<(AMQPErrorKind, String)> {
    match e.kind() {
        ErrorKind::ProtocolError(amqp) => {
            Some((amqp.kind().clone(), amqp.get_message().to_string()))
        }
        _ => None,
    }
}

/// Connects and checks that the broker lets this user publish as others (`user-id`).
async fn preflight(ctx: &Ctx) -> Result<(), BenchError> {
    let conn = connect(&ctx.url, "handoff-bench live").await?;
    let result = async {
        let ch = amqp::confirmed_channel(&conn).await?;
        // A run-named exchange with no queue: the message is dropped, but the broker
        // checks the user-id first. (It checks the exchange before the user-id, and the
        // default exchange would need a permission the bench needs nowhere else.)
        let probe = format!("handoff-bench-{}.probe", ctx.run);
        ch.exchange_declare(
            probe.as_str().into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                auto_delete: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
        let confirm = ch
            .basic_publish(
                probe.as_str().into(),
                "".into(),
                BasicPublishOptions::default(),
                b"",
                BasicProperties::default().with_user_id("bench-bop".into()),
            )
            .await?;
        let refused = confirm.await.err();
        // A refusal closed the channel; delete the probe on a fresh one.
        let cleanup = conn.create_channel().await?;
        let _ = cleanup
            .exchange_delete(probe.as_str().into(), ExchangeDeleteOptions::default())
            .await;
        let _ = cleanup.close(200, "probed".into()).await;
        if let Some(e) = refused {
            return Err(e);
        }
        let _ = ch.close(200, "probed".into()).await;
        Ok::<(), lapin::Error>(())
    }
    .await;
    let _ = conn.close(200, "probed".into()).await;
    match result {
        Ok(()) => Ok(()),
        Err(e) => Err(match broker_said(&e) {
            Some((
                AMQPErrorKind::Soft(
                    AMQPSoftError::PRECONDITIONFAILED | AMQPSoftError::ACCESSREFUSED,
                ),
                text,
            )) if text.contains("user_id") => {
                let user = config::url_user(&ctx.url);
                BenchError::CannotRun(format!(
                    "the broker refused to let {user} publish as another user ({text}). \
                     handoff-bench live sends each event as the agency allowed to send it (the AMQP \
                     user-id), which needs RabbitMQ's impersonator tag on {user}: {}",
                    tag_command(&user)
                ))
            }
            _ => BenchError::CannotRun(format!("the broker refused a test publish: {e}")),
        }),
    }
}

/// The command that gives `user` the impersonator tag. `set_user_tags` replaces the
/// user's tags, so the command for guest keeps its administrator tag.
fn tag_command(user: &str) -> String {
    if user == "guest" {
        "rabbitmqctl set_user_tags guest administrator impersonator".into()
    } else {
        format!(
            "rabbitmqctl set_user_tags {user} impersonator (it replaces the user's tags: \
             list any it already has too)"
        )
    }
}

/// Waits until `queue` exists and has a consumer, or the system under test stops.
async fn wait_consuming(
    conn: &Connection,
    queue: &str,
    status: &mut Status,
) -> Result<(), BenchError> {
    let started = Instant::now();
    loop {
        if let Some(end) = status.borrow().clone() {
            return Err(failed(format!(
                "the service stopped before consuming: {}",
                end.err().unwrap_or_else(|| "no error".into())
            )));
        }
        // A passive declare of a queue that does not exist yet closes the channel.
        let ch = conn.create_channel().await.map_err(failed)?;
        let declared = ch
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await;
        if let Ok(q) = declared {
            let _ = ch.close(200, "checked".into()).await;
            if q.consumer_count() >= 1 {
                return Ok(());
            }
        }
        if started.elapsed() > START_TIMEOUT {
            return Err(failed(format!(
                "nothing consumed {queue} within {} s",
                START_TIMEOUT.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Declares the bench's decision queue (durable, of the run's type), binds it to
/// `exchange` with `#`, and consumes it (automatic acks: the bench only timestamps).
async fn consume_decisions(
    conn: &Connection,
    names: &Names,
    queue_type: QueueType,
) -> Result<lapin::Consumer, BenchError> {
    let ch = conn.create_channel().await.map_err(failed)?;
    ch.queue_declare(
        names.out.as_str().into(),
        QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        },
        queue_args(queue_type),
    )
    .await
    .map_err(failed)?;
    ch.queue_bind(
        names.out.as_str().into(),
        names.decisions.as_str().into(),
        "#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .map_err(failed)?;
    ch.basic_consume(
        names.out.as_str().into(),
        "bench".into(),
        BasicConsumeOptions {
            no_ack: true,
            ..BasicConsumeOptions::default()
        },
        FieldTable::default(),
    )
    .await
    .map_err(failed)
}

/// Deletes every queue and exchange of `names`, each on its own channel (a missing one
/// closes its channel), and says nothing of failures: it is best effort.
async fn cleanup(url: &str, names: &Names) {
    let Ok(conn) = connect(url, "handoff-bench live cleanup").await else {
        return;
    };
    for q in [
        &names.out,
        &names.inbound,
        &names.dead_letter,
        &names.unrouted,
        &names.journal,
    ] {
        if let Ok(ch) = conn.create_channel().await
            && ch
                .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                .await
                .is_ok()
        {
            let _ = ch.close(200, "deleted".into()).await;
        }
    }
    for x in [
        &names.events,
        &names.decisions,
        &names.dead_letter,
        &names.unrouted,
        &names.journal,
    ] {
        if let Ok(ch) = conn.create_channel().await
            && ch
                .exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default())
                .await
                .is_ok()
        {
            let _ = ch.close(200, "deleted".into()).await;
        }
    }
    let _ = conn.close(200, "cleaned up".into()).await;
}

/// How many messages `queue` holds, if it can be asked.
async fn message_count(conn: &Connection, queue: &str) -> Option<u64> {
    let ch = conn.create_channel().await.ok()?;
    let q = ch
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .ok()?;
    let _ = ch.close(200, "counted".into()).await;
    Some(u64::from(q.message_count()))
}

// ---------------------------------------------------------------------------------------
// Driving a run.

/// One message that arrived on the bench's decision queue.
struct Arrival {
    at: Instant,
    message_id: Option<String>,
    body: Vec<u8>,
}

/// The timings of one run.
struct Records {
    /// When each event was handed to the client library, by index.
    published: Vec<Instant>,
    first_publish: Instant,
    last_publish: Instant,
    arrivals: Vec<Arrival>,
    sentinel_at: Instant,
}

/// Publishes every event and the sentinel, paced by `ctx.rate`, with at most `WINDOW`
/// unconfirmed; returns each event's publish instant and the sentinel's.
async fn publish_all(
    ctx: &Ctx,
    exchange: &str,
    work: &Workload,
) -> Result<(Vec<Instant>, Instant), BenchError> {
    let conn = connect(&ctx.url, "handoff-bench live publisher").await?;
    let ch = match amqp::confirmed_channel(&conn).await {
        Ok(ch) => ch,
        Err(e) => {
            let _ = conn.close(200, "failed".into()).await;
            return Err(failed(e));
        }
    };
    let mut published = Vec::with_capacity(work.events.len() + 1);
    let mut pending: VecDeque<lapin::PublisherConfirm> = VecDeque::with_capacity(WINDOW);
    let result = async {
        let start = tokio::time::Instant::now();
        let all = work.events.iter().chain(std::iter::once(&work.sentinel));
        for (i, e) in all.enumerate() {
            if ctx.rate > 0.0 {
                tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / ctx.rate))
                    .await;
            }
            let properties = BasicProperties::default()
                .with_content_type(amqp::CONTENT_TYPE.into())
                .with_delivery_mode(2)
                .with_message_id(e.id.as_str().into())
                .with_type(e.event_type.into())
                .with_app_id("handoff-bench-live".into())
                .with_user_id(e.user.as_str().into());
            published.push(Instant::now());
            let confirm = ch
                .basic_publish(
                    exchange.into(),
                    e.event_type.into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    &e.body,
                    properties,
                )
                .await?;
            pending.push_back(confirm);
            while pending.len() >= WINDOW {
                let c = pending.pop_front().expect("not empty");
                if let Err(e) = settle(c.await?) {
                    return Ok(Err(e));
                }
            }
        }
        while let Some(c) = pending.pop_front() {
            if let Err(e) = settle(c.await?) {
                return Ok(Err(e));
            }
        }
        Ok::<_, lapin::Error>(Ok(()))
    }
    .await;
    let result = match result {
        Ok(r) => r,
        Err(e) => {
            // When the broker closes the channel, the first error is often only "the
            // channel is closing"; the broker's reason is on a confirm still pending.
            let mut reason = e;
            if broker_said(&reason).is_none() {
                for c in pending.drain(..) {
                    if let Err(e) = c.await
                        && broker_said(&e).is_some()
                    {
                        reason = e;
                        break;
                    }
                }
            }
            Err(publish_error(reason))
        }
    };
    let _ = ch.close(200, "published".into()).await;
    let _ = conn.close(200, "published".into()).await;
    result?;
    let sentinel = published.pop().expect("the sentinel was published");
    Ok((published, sentinel))
}

fn publish_error(e: lapin::Error) -> BenchError {
    match broker_said(&e) {
        Some((_, text)) if text.contains("user_id") => BenchError::CannotRun(format!(
            "the broker refused the user-id property mid-run ({text}): the user needs the \
             impersonator tag"
        )),
        Some((_, text)) => failed(format!("the broker stopped the publisher: {text}")),
        None => failed(format!("publishing failed: {e}")),
    }
}

fn settle(c: Confirmation) -> Result<(), BenchError> {
    match c {
        Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
        Confirmation::Ack(Some(r)) => Err(failed(format!(
            "an event was returned as unroutable: {}",
            r.reply_text
        ))),
        Confirmation::Nack(_) => Err(failed("the broker nacked an event")),
    }
}

/// Collects arrivals until the message with id `sentinel` comes.
async fn collect(
    mut consumer: lapin::Consumer,
    sentinel: String,
    expected: usize,
) -> Result<(Vec<Arrival>, Instant), BenchError> {
    let mut arrivals = Vec::with_capacity(expected);
    while let Some(d) = consumer.next().await {
        let d = d.map_err(|e| failed(format!("the decision consumer failed: {e}")))?;
        let at = Instant::now();
        let message_id = d.properties.message_id().as_ref().map(|m| m.to_string());
        let last = message_id.as_deref() == Some(sentinel.as_str());
        arrivals.push(Arrival {
            at,
            message_id,
            body: d.data,
        });
        if last {
            return Ok((arrivals, at));
        }
    }
    Err(failed("the decision consumer was closed"))
}

/// Publishes the workload and waits for the sentinel, failing early if the system under
/// test stops (`status` becomes `Some`).
async fn drive(
    ctx: &Ctx,
    names: &Names,
    work: &Workload,
    consumer: lapin::Consumer,
    sentinel: String,
    status: &mut Status,
) -> Result<Records, BenchError> {
    let stopped = |s: &Option<Result<(), String>>| match s {
        Some(Err(e)) => format!("the system under test stopped with an error: {e}"),
        _ => "the system under test stopped".to_string(),
    };
    let mut collector = tokio::spawn(collect(consumer, sentinel, work.events.len() * 2));
    ctx.say(format_args!("publishing {} events", work.events.len()));
    let publish = publish_all(ctx, &names.events, work);
    tokio::pin!(publish);
    let mut early = None;
    let (published, last) = tokio::select! {
        r = &mut publish => r?,
        s = status.wait_for(|s| s.is_some()) => {
            let why = s.map_or_else(|_| "the system under test panicked".into(), |s| stopped(&s));
            collector.abort();
            return Err(failed(why));
        }
        r = &mut collector => {
            // The sentinel cannot come before it is published: only an error ends it here.
            early = Some(r);
            publish.await?
        }
    };
    ctx.say("published; waiting for the sentinel");
    let collected = match early {
        Some(r) => r,
        None => tokio::select! {
            r = &mut collector => r,
            s = status.wait_for(|s| s.is_some()) => {
                let why = s.map_or_else(|_| "the system under test panicked".into(), |s| stopped(&s));
                collector.abort();
                return Err(failed(why));
            }
            _ = tokio::time::sleep(SENTINEL_TIMEOUT) => {
                collector.abort();
                return Err(failed(format!(
                    "the sentinel did not come back within {} s of the last publish",
                    SENTINEL_TIMEOUT.as_secs()
                )));
            }
        },
    };
    let (arrivals, sentinel_at) =
        collected.map_err(|e| failed(format!("the consumer task: {e}")))??;
    Ok(Records {
        first_publish: published.first().copied().unwrap_or(last),
        last_publish: last,
        published,
        arrivals,
        sentinel_at,
    })
}

/// What the system under test ended with, once it has: `None` while it runs.
type Status = watch::Receiver<Option<Result<(), String>>>;

/// Starts the system under test as `handoff serve` runs the service: `block_on` of a
/// 2-worker multi-thread runtime, on a thread of its own. (The service's future is not
/// `Send`, so it could not be spawned onto a runtime as a task anyway.) The status
/// becomes `Some` when it has ended and its runtime is shut down.
fn start_system<F, Fut>(name: &str, make: F) -> Result<Status, BenchError>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), String>>,
{
    let (tx, rx) = watch::channel(None);
    let name = name.to_string();
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name(format!("{name}-rt"))
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.send(Some(Err(format!("cannot start a runtime: {e}"))));
                    return;
                }
            };
            let result = runtime.block_on(make());
            runtime.shutdown_timeout(Duration::from_secs(5));
            let _ = tx.send(Some(result));
        })
        .map_err(|e| BenchError::CannotRun(format!("cannot start a thread: {e}")))?;
    Ok(rx)
}

// ---------------------------------------------------------------------------------------
// The two modes.

async fn bench_handoff(
    ctx: &Ctx,
    work: &Workload,
    backend: config::Backend,
) -> Result<Outcome, BenchError> {
    let mode = match backend {
        config::Backend::File => "handoff",
        config::Backend::Stream => "handoff-stream",
    };
    let names = Names::new(&ctx.run, mode);
    let (dir, temporary) = match &ctx.journal_dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("handoff-bench-{}", ctx.run)),
            true,
        ),
    };
    std::fs::create_dir_all(&dir)
        .map_err(|e| BenchError::CannotRun(format!("cannot create {}: {e}", dir.display())))?;
    let mut config = Config::default();
    config.amqp.url = ctx.url.clone();
    config.amqp.queue_type = ctx.queue_type;
    config.amqp.prefetch = PREFETCH;
    config.amqp.events_exchange = names.events.clone();
    config.amqp.decisions_exchange = names.decisions.clone();
    config.amqp.queue = names.inbound.clone();
    config.amqp.dead_letter_exchange = names.dead_letter.clone();
    config.amqp.dead_letter_queue = names.dead_letter.clone();
    config.amqp.unrouted_exchange = names.unrouted.clone();
    config.amqp.unrouted_queue = names.unrouted.clone();
    config.journal.path = dir.join(format!("handoff-bench-{}.jsonl", ctx.run));
    config.journal.backend = backend;
    config.journal.stream = names.journal.clone();
    config.journal.lock_queue = names.lock.clone();
    // HTTP is off unless asked for with the service's own override, to watch /metrics
    // (the fsync and consume-to-confirm histograms) during a run.
    config.http.listen = std::env::var("HANDOFF_HTTP_LISTEN").unwrap_or_default();
    config.publishers = work.publishers.clone();
    config
        .check()
        .map_err(|e| BenchError::CannotRun(format!("the service's configuration: {e}")))?;

    let admin = connect(&ctx.url, "handoff-bench live").await?;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    ctx.say("starting the service");
    let mut status = start_system("handoff-serve", move || async move {
        let shutdown = async move {
            let _ = stop_rx.await;
        };
        service::serve(config, shutdown)
            .await
            .map_err(|e| format!("{e:#}"))
    })?;
    let result = async {
        wait_consuming(&admin, &names.inbound, &mut status).await?;
        let consumer = consume_decisions(&admin, &names, ctx.queue_type).await?;
        let records = drive(
            ctx,
            &names,
            work,
            consumer,
            work.sentinel_decision.clone(),
            &mut status,
        )
        .await?;
        let dead = message_count(&admin, &names.dead_letter).await;
        Ok((records, dead))
    }
    .await;
    let _ = stop_tx.send(());
    let stopped =
        tokio::time::timeout(Duration::from_secs(30), status.wait_for(|s| s.is_some())).await;
    let stop_error = match stopped {
        Ok(Ok(s)) => s.clone().and_then(Result::err),
        Ok(Err(_)) => Some("the service task panicked".into()),
        Err(_) => Some("the service did not stop within 30 s".into()),
    };
    let _ = admin.close(200, "done".into()).await;
    cleanup(&ctx.url, &names).await;
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let (records, dead) = result?;
    if let Some(e) = stop_error {
        return Err(failed(format!("the service stopped with an error: {e}")));
    }
    Ok(Outcome::from_records(
        mode,
        work,
        &records,
        |a| caused_by(&a.body),
        dead,
    ))
}

/// The `data.caused_by` of a decision.
fn caused_by(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Decision {
        data: Data,
    }
    #[derive(serde::Deserialize)]
    struct Data {
        caused_by: String,
    }
    serde_json::from_slice::<Decision>(body)
        .ok()
        .map(|d| d.data.caused_by)
}

async fn bench_relay(ctx: &Ctx, work: &Workload) -> Result<Outcome, BenchError> {
    let names = Names::new(&ctx.run, "relay");
    let admin = connect(&ctx.url, "handoff-bench live").await?;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let mut status: Option<Status> = None;
    let result = async {
        declare_relay(&admin, &names, ctx.queue_type)
            .await
            .map_err(failed)?;
        ctx.say("starting the relay");
        let (url, queue, exchange) = (
            ctx.url.clone(),
            names.inbound.clone(),
            names.decisions.clone(),
        );
        let mut outputs: HashMap<String, u32> = HashMap::with_capacity(work.events.len() + 1);
        for e in work.events.iter().chain(std::iter::once(&work.sentinel)) {
            outputs.entry(e.id.clone()).or_insert(e.outputs);
        }
        let status = status.insert(start_system("bench-relay", move || {
            relay(url, queue, exchange, outputs, stop_rx)
        })?);
        wait_consuming(&admin, &names.inbound, status).await?;
        let consumer = consume_decisions(&admin, &names, ctx.queue_type).await?;
        drive(
            ctx,
            &names,
            work,
            consumer,
            work.sentinel.id.clone(),
            status,
        )
        .await
    }
    .await;
    let _ = stop_tx.send(());
    if let Some(status) = status.as_mut() {
        let _ =
            tokio::time::timeout(Duration::from_secs(30), status.wait_for(|s| s.is_some())).await;
    }
    let _ = admin.close(200, "done".into()).await;
    cleanup(&ctx.url, &names).await;
    let records = result?;
    Ok(Outcome::from_records(
        "relay",
        work,
        &records,
        |a| a.message_id.clone(),
        None,
    ))
}

/// The relay's topology: events exchange → inbound queue; output exchange → (the bench's
/// queue, bound by `consume_decisions`).
async fn declare_relay(
    conn: &Connection,
    names: &Names,
    queue_type: QueueType,
) -> lapin::Result<()> {
    let ch = conn.create_channel().await?;
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    for x in [&names.events, &names.decisions] {
        ch.exchange_declare(
            x.as_str().into(),
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await?;
    }
    ch.queue_declare(
        names.inbound.as_str().into(),
        QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        },
        queue_args(queue_type),
    )
    .await?;
    ch.queue_bind(
        names.inbound.as_str().into(),
        names.events.as_str().into(),
        "#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await?;
    let _ = ch.close(200, "declared".into()).await;
    Ok(())
}

/// The bare relay: consume → publish with confirms → ack the batch. Batching and
/// pipelining as the service does them (whatever is ready, up to prefetch/4; one batch
/// confirming while the next is gathered), nothing else.
///
/// It publishes each event's body as many times as handoff publishes messages for that
/// event (`outputs`, by message id; a repeated id gets none, as handoff ignores a
/// duplicate), so that the broker does the same work for both: a relay that forwarded
/// every event would publish half as much again as handoff does, and be no ceiling.
async fn relay(
    url: String,
    queue: String,
    exchange: String,
    mut outputs: HashMap<String, u32>,
    mut stop: oneshot::Receiver<()>,
) -> Result<(), String> {
    let conn = amqp::connect(&url, &Default::default(), "handoff-bench live relay")
        .await
        .map_err(|e| e.to_string())?;
    let result = async {
        let publish = amqp::confirmed_channel(&conn).await?;
        let consume = amqp::consuming_channel(&conn, PREFETCH).await?;
        let mut consumer = consume
            .basic_consume(
                queue.as_str().into(),
                "relay".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let (tx, rx) = mpsc::channel::<Vec<(u32, Delivery)>>(2);
        let mut publisher = tokio::spawn(relay_publisher(publish, consume.clone(), exchange, rx));
        let max_batch = usize::from(PREFETCH).div_ceil(4);
        loop {
            let mut batch = Vec::with_capacity(max_batch);
            tokio::select! {
                biased;
                _ = &mut stop => break,
                done = &mut publisher => {
                    return match done {
                        Ok(Err(e)) => Err(e),
                        _ => Ok(()),
                    };
                }
                next = consumer.next() => match next {
                    Some(Ok(d)) => {
                        let copies = |d: &Delivery, outputs: &mut HashMap<String, u32>| {
                            match d.properties.message_id() {
                                Some(id) => outputs.remove(id.as_str()).unwrap_or(0),
                                None => 1,
                            }
                        };
                        batch.push((copies(&d, &mut outputs), d));
                        while batch.len() < max_batch {
                            match poll_once(consumer.next()).await {
                                Some(Some(Ok(d))) => batch.push((copies(&d, &mut outputs), d)),
                                _ => break,
                            }
                        }
                    }
                    Some(Err(e)) => return Err(e),
                    None => break,
                },
            }
            if tx.send(batch).await.is_err() {
                break;
            }
        }
        drop(tx);
        match publisher.await {
            Ok(r) => r,
            Err(_) => Ok(()),
        }
    }
    .await;
    let _ = conn.close(200, "relay stopping".into()).await;
    result.map_err(|e| e.to_string())
}

/// The relay's publisher, shaped like the service's: each batch is published as soon as it
/// comes, and a second task settles batches in order (confirms, then one ack).
async fn relay_publisher(
    publish: Channel,
    consume: Channel,
    exchange: String,
    mut rx: mpsc::Receiver<Vec<(u32, Delivery)>>,
) -> lapin::Result<()> {
    type Published = (u64, Vec<lapin::PublisherConfirm>);
    let (tx, mut settling) = mpsc::channel::<Published>(4);
    let mut settler = tokio::spawn(async move {
        while let Some((last_tag, pending)) = settling.recv().await {
            for c in pending {
                c.await?;
            }
            consume
                .basic_ack(last_tag, BasicAckOptions { multiple: true })
                .await?;
        }
        Ok::<(), lapin::Error>(())
    });
    let published = async {
        while let Some(batch) = rx.recv().await {
            let mut pending = Vec::with_capacity(batch.len());
            for (copies, d) in &batch {
                let mut properties = BasicProperties::default()
                    .with_content_type(amqp::CONTENT_TYPE.into())
                    .with_delivery_mode(2)
                    .with_app_id("handoff-bench-relay".into());
                if let Some(id) = d.properties.message_id() {
                    properties = properties.with_message_id(id.clone());
                }
                if let Some(t) = d.properties.kind() {
                    properties = properties.with_type(t.clone());
                }
                for _ in 0..*copies {
                    pending.push(
                        publish
                            .basic_publish(
                                exchange.as_str().into(),
                                d.routing_key.clone(),
                                BasicPublishOptions {
                                    mandatory: true,
                                    ..BasicPublishOptions::default()
                                },
                                &d.data,
                                properties.clone(),
                            )
                            .await?,
                    );
                }
            }
            if let Some((_, last)) = batch.last()
                && tx.send((last.delivery_tag, pending)).await.is_err()
            {
                break;
            }
        }
        Ok::<(), lapin::Error>(())
    }
    .await;
    drop(tx);
    if let Err(e) = published {
        settler.abort();
        return Err(e);
    }
    match (&mut settler).await {
        Ok(r) => r,
        Err(_) => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------
// Results.

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub samples: usize,
}

/// The nearest-rank `p`th percentile (0 < p ≤ 100) of `sorted` (ascending, not empty):
/// the smallest sample with at least p% of the samples at or below it.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len();
    // The tolerance keeps 99.9% of 1000 at rank 999: 0.999 * 1000.0 is 999.0000000000001.
    let rank = ((p / 100.0) * n as f64 - 1e-9).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

impl Latency {
    /// The percentiles of `samples` (milliseconds), `None` when there are none.
    pub fn of(mut samples: Vec<f64>) -> Option<Latency> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_by(f64::total_cmp);
        Some(Latency {
            p50: percentile(&samples, 50.0),
            p90: percentile(&samples, 90.0),
            p99: percentile(&samples, 99.0),
            p999: percentile(&samples, 99.9),
            max: *samples.last().expect("not empty"),
            samples: samples.len(),
        })
    }
}

/// One mode's figures.
struct Outcome {
    mode: &'static str,
    events: usize,
    publish_rate: f64,
    throughput: f64,
    seconds: f64,
    latency: Option<Latency>,
    /// Messages received on the bench's queue, the sentinel's included.
    received: usize,
    dead_lettered: Option<u64>,
}

impl Outcome {
    /// `key` names the event a received message answers (`None`: not an event's).
    fn from_records(
        mode: &'static str,
        work: &Workload,
        r: &Records,
        key: impl Fn(&Arrival) -> Option<String>,
        dead_lettered: Option<u64>,
    ) -> Outcome {
        let n = work.events.len();
        let mut seen = vec![false; n];
        let mut samples = Vec::with_capacity(n);
        for a in &r.arrivals {
            let Some(i) = key(a).and_then(|k| work.index.get(&k).copied()) else {
                continue;
            };
            if !std::mem::replace(&mut seen[i], true) {
                samples.push((a.at - r.published[i]).as_secs_f64() * 1000.0);
            }
        }
        let publishing = (r.last_publish - r.first_publish).as_secs_f64();
        let seconds = (r.sentinel_at - r.first_publish).as_secs_f64();
        Outcome {
            mode,
            events: n,
            publish_rate: n as f64 / publishing.max(1e-9),
            throughput: n as f64 / seconds.max(1e-9),
            seconds,
            latency: Latency::of(samples),
            received: r.arrivals.len(),
            dead_lettered,
        }
    }
}

struct Report {
    /// Messages the relay publishes in all: handoff's, by the replay before the run.
    relay_outputs: u64,
    events: u64,
    seed: u64,
    people: u64,
    queue_type: QueueType,
    rate: f64,
    outcomes: Vec<Outcome>,
}

impl Report {
    fn ratio(&self) -> Option<f64> {
        self.ratio_of("handoff", "relay")
    }

    /// The stream journal's throughput over the file journal's, when both ran.
    fn stream_ratio(&self) -> Option<f64> {
        self.ratio_of("handoff-stream", "handoff")
    }

    fn ratio_of(&self, a: &str, b: &str) -> Option<f64> {
        let get = |m: &str| self.outcomes.iter().find(|o| o.mode == m);
        Some(get(a)?.throughput / get(b)?.throughput)
    }

    fn cores() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let target = if self.rate > 0.0 {
            format!("{:.0}/s", self.rate)
        } else {
            "max".into()
        };
        let _ = writeln!(
            s,
            "handoff-bench live: {} events (seed {}, {} people), {} queues, target rate {target}; \
             durable and confirmed end to end",
            self.events,
            self.seed,
            self.people,
            self.queue_type.as_str()
        );
        let _ = writeln!(
            s,
            "RabbitMQ, the system under test (a 2-worker runtime + its AMQP I/O thread) and this \
             harness share this machine's {} cores, as with a broker on the same box.",
            Self::cores()
        );
        let _ = writeln!(
            s,
            "{:<14} {:<8} {:>7} {:>8} {:>10} {:>12} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8} {:>9} {:>5}",
            "mode",
            "queues",
            "events",
            "target",
            "publish/s",
            "throughput/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "samples",
            "received",
            "dead"
        );
        for o in &self.outcomes {
            let l = o.latency.clone();
            let ms =
                |f: fn(&Latency) -> f64| l.as_ref().map_or("-".into(), |l| format!("{:.1}", f(l)));
            let _ = writeln!(
                s,
                "{:<14} {:<8} {:>7} {:>8} {:>10.0} {:>12.0} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8} {:>9} {:>5}",
                o.mode,
                self.queue_type.as_str(),
                o.events,
                target,
                o.publish_rate,
                o.throughput,
                ms(|l| l.p50),
                ms(|l| l.p90),
                ms(|l| l.p99),
                ms(|l| l.p999),
                ms(|l| l.max),
                l.as_ref().map_or(0, |l| l.samples),
                o.received,
                o.dead_lettered.map_or("-".into(), |d| d.to_string()),
            );
        }
        if self.outcomes.iter().any(|o| o.mode == "relay") {
            let _ = writeln!(
                s,
                "relay: consume, publish with confirms, ack; no validation, journal or engine. \
                 It publishes for each event as many messages as handoff does ({} in all, by \
                 a replay before the run), so the broker's work is the same.",
                self.relay_outputs
            );
        }
        if let Some(r) = self.ratio() {
            let _ = writeln!(s, "handoff / relay throughput: {r:.2}");
        }
        if let Some(r) = self.stream_ratio() {
            let _ = writeln!(
                s,
                "stream journal / file journal throughput: {r:.2} (handoff-stream: the journal \
                 in a RabbitMQ stream on the same broker, each commit read back)"
            );
        }
        s
    }

    fn to_json(&self) -> Value {
        let runs: Vec<Value> = self
            .outcomes
            .iter()
            .map(|o| {
                json!({
                    "mode": o.mode,
                    "events": o.events,
                    "publish_rate": round1(o.publish_rate),
                    "throughput": round1(o.throughput),
                    "seconds": (o.seconds * 1000.0).round() / 1000.0,
                    "latency_ms": o.latency.as_ref().map(|l| json!({
                        "p50": round1(l.p50), "p90": round1(l.p90), "p99": round1(l.p99),
                        "p99.9": round1(l.p999), "max": round1(l.max),
                    })),
                    "samples": o.latency.as_ref().map_or(0, |l| l.samples),
                    "received": o.received,
                    "dead_lettered": o.dead_lettered,
                })
            })
            .collect();
        json!({
            "events": self.events,
            "seed": self.seed,
            "people": self.people,
            "queue_type": self.queue_type.as_str(),
            "target_rate": if self.rate > 0.0 { json!(self.rate) } else { Value::Null },
            "cores": Self::cores(),
            "relay_outputs": self.relay_outputs,
            "runs": runs,
            "handoff_to_relay": self.ratio().map(|r| (r * 1000.0).round() / 1000.0),
            "stream_to_file": self.stream_ratio().map(|r| (r * 1000.0).round() / 1000.0),
        })
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=1000).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 500.0);
        assert_eq!(percentile(&v, 99.0), 990.0);
        assert_eq!(percentile(&v, 99.9), 999.0);
        assert_eq!(percentile(&v, 100.0), 1000.0);
        assert_eq!(percentile(&[7.0], 99.9), 7.0);
        assert_eq!(percentile(&[1.0, 2.0], 50.0), 1.0);
        let l = Latency::of(vec![3.0, 1.0, 2.0, 10.0]).unwrap();
        assert_eq!((l.p50, l.p90, l.max, l.samples), (2.0, 10.0, 10.0, 4));
        assert_eq!(Latency::of(Vec::new()), None);
    }

    #[test]
    fn every_generated_event_has_an_authorized_publisher() {
        let mut cfg = GenConfig::new(3000, 5);
        cfg.start = Utc::now().trunc_subsecs(0);
        let work = prepare(&cfg, "0badf00d").unwrap();
        assert_eq!(work.events.len(), 3000);
        assert!(work.events.iter().all(|e| e.id.ends_with(".0badf00d")));
        // The configuration the service gets accepts the table, and the table holds the
        // user of every event (`prepare` checked each against its agency already).
        let config = Config {
            publishers: work.publishers.clone(),
            ..Config::default()
        };
        let agencies = config.agencies().unwrap();
        for e in &work.events {
            assert!(agencies.contains_key(&e.user), "{}", e.user);
        }
        assert_eq!(agencies["bench-bop"], Agency::Bop);
        assert!(
            agencies
                .keys()
                .filter(|u| u.starts_with("bench-j-"))
                .count()
                > 10
        );
        // Each event's outputs: none for a repeated event, and some events make several.
        let mut seen = std::collections::HashSet::new();
        for e in &work.events {
            if !seen.insert(e.id.clone()) {
                assert_eq!(e.outputs, 0, "{} is a repeat", e.id);
            }
        }
        let total: u32 = work.events.iter().map(|e| e.outputs).sum();
        assert!(
            total > 1000 && work.events.iter().any(|e| e.outputs > 1),
            "{total}"
        );
        assert_eq!(work.sentinel.outputs, 1);
        // The sentinel's expected decision id is the one the engine gives.
        let sentinel = envelope::parse_event_bytes(&work.sentinel.body).unwrap();
        assert_eq!(
            work.sentinel_decision,
            decision_id_for_event(BOP_SOURCE, &sentinel.id, 0)
        );
    }

    #[test]
    fn answers_keep_naming_their_offers() {
        // The generator's answers name offers by an id derived from the release's event
        // id; renaming the event must rename the offer with it, so that replaying the
        // prepared log rejects no answer.
        let mut cfg = GenConfig::new(3000, 9);
        cfg.start = Utc::now().trunc_subsecs(0);
        let work = prepare(&cfg, "abc").unwrap();
        let mut engine = Engine::new();
        let mut answers = 0;
        for e in &work.events {
            let event = envelope::parse_event_bytes(&e.body).unwrap();
            if matches!(event.body, EventBody::FirstRefusalResponse { .. }) {
                answers += 1;
            }
            let step = engine.handle(&event);
            assert!(
                !matches!(step.outcome, handoff_core::engine::Outcome::Rejected(_)),
                "{} was rejected",
                e.id
            );
        }
        assert!(answers > 0);
    }

    #[test]
    fn publishers_of_each_kind() {
        let ev = |line: &str| envelope::parse_event(line).unwrap();
        let policy = ev(
            r#"{"specversion":"1.0","id":"1","source":"urn:agency:ice:eagle","type":"jurisdiction.policy.updated","time":"2017-01-28T00:00:00Z","data":{"jurisdiction_id":"tx-travis-county","name":"Travis County","state":"TX","honors_detainers":true,"return_agreement":false}}"#,
        );
        assert_eq!(publisher_of(&policy), ("bench-ice".into(), "ice".into()));
        let claim = ev(
            r#"{"specversion":"1.0","id":"2","source":"urn:jurisdiction:tx-travis-county","type":"local.claim.lodged","time":"2017-01-28T00:00:00Z","subject":"P-0001","data":{"claim_id":"C-1","person_id":"P-0001","jurisdiction_id":"tx-travis-county","charges":[]}}"#,
        );
        assert_eq!(
            publisher_of(&claim),
            (
                "bench-j-tx-travis-county".into(),
                "jurisdiction:tx-travis-county".into()
            )
        );
        let map = publishers_for([&policy, &claim]);
        assert_eq!(map.len(), 2);
    }
}
