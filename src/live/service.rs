//! `handoff serve`: the live service, a thin shell that feeds the engine from RabbitMQ.
//!
//! The path of one inbound message: size check → parse and schema check (`envelope`) →
//! authorization by the AMQP `user-id` (`authz`) → engine → journal append. A batch of
//! such messages is made durable with one fsync (group commit), and only then handed to
//! the publisher task, which publishes the batch's decisions and dead letters with
//! publisher confirms and, once all are confirmed, acknowledges the batch's deliveries
//! with one `basic.ack(multiple)`. While it waits for confirms, the next batch is being
//! validated and journaled.
//!
//! Crash safety rests on three facts. Decisions are a pure function of the journal, so
//! start-up replays the journal and recomputes them, ids included. The outbox mark (a
//! count of confirmed decisions) says how many of those were surely published; the rest
//! are published again (at least once, same ids). And a message is acknowledged only
//! after it is journaled or dead-lettered, so whatever was not is delivered again, and a
//! redelivered event that is in the journal is a duplicate: acknowledged, nothing decided.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{SubsecRound, Utc};
use futures_lite::StreamExt;
use futures_lite::future::poll_once;
use lapin::message::{BasicReturnMessage, Delivery};
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Confirmation, Connection};
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

use crate::edge::envelope;
use crate::edge::schemas::{DECISION_TYPES, EVENT_TYPES};
use crate::edge::wire;
use crate::journal::{FileJournal, Journal, OutboxMark};
use crate::live::amqp;
use crate::live::config::{Config, LogFormat};
use crate::live::http::{self, Health};
use crate::live::metrics::Metrics;
use handoff_core::authz::{self, Agency};
use handoff_core::engine::{Engine, Outcome};
use handoff_core::model::{Decision, Time};

/// Why the service stopped or a session with RabbitMQ ended.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The connection or a channel failed: reconnect and carry on.
    #[error("RabbitMQ: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("RabbitMQ closed the consumer")]
    ConsumerClosed,
    #[error("the connection to RabbitMQ is gone")]
    ConnectionLost,
    /// TLS with the broker failed (an untrusted certificate, a client certificate refused
    /// or missing): stop, since reconnecting cannot mend the configuration.
    #[error(
        "TLS with RabbitMQ failed: {0}. Check amqp.tls: ca_file must hold the CA that signed \
         the broker's certificate, cert_file and key_file a client certificate the broker \
         trusts; and the URL's port must speak TLS"
    )]
    Tls(String),
    #[error("RabbitMQ refused decision {id}: {why}")]
    Refused { id: String, why: String },
    /// The journal cannot be read or written: stop; nothing unjournaled was acknowledged.
    #[error("journal: {0}")]
    Journal(#[from] crate::journal::JournalError),
}

impl ServeError {
    /// Whether reconnecting can help. A journal failure cannot be retried in place: the
    /// engine has already seen events that may not be on disk, so the process must stop
    /// and rebuild its state from the journal.
    fn is_transient(&self) -> bool {
        !matches!(self, ServeError::Journal(_) | ServeError::Tls(_))
    }
}

/// One decision ready to publish, with its position in decision order.
#[derive(Debug)]
struct Outgoing {
    /// 0-based position in the sequence of all decisions the journal implies.
    index: u64,
    id: String,
    decision_type: &'static str,
    routing_key: String,
    body: Vec<u8>,
}

/// An inbound message refused, to be published on the dead-letter exchange.
struct DeadLetter {
    reason: &'static str,
    detail: String,
    delivery: Delivery,
}

/// What the core hands to the publisher task: publish these, then acknowledge.
struct Batch {
    decisions: Vec<Arc<Outgoing>>,
    dead_letters: Vec<DeadLetter>,
    /// The highest delivery tag of the batch; every lower tag is in this or an earlier batch.
    ack_upto: Option<u64>,
    /// When each delivery of the batch arrived (for the consume-to-confirm histogram).
    arrived: Vec<Instant>,
    /// Counts of accepted events by type, reported once the batch is acknowledged.
    accepted: Vec<&'static str>,
}

/// The service's state across sessions (connections): engine, journal and outbox.
pub struct Core {
    config: Config,
    agencies: BTreeMap<String, Agency>,
    engine: Engine,
    journal: FileJournal,
    /// Decisions not yet confirmed by RabbitMQ, in order.
    outbox: VecDeque<Arc<Outgoing>>,
    /// How many decisions the journal implies so far (the next decision's index).
    decided: u64,
    /// The latest time given to the engine (an event's `handoffreceived` or a `fire`),
    /// so that stamps never go backwards even if the wall clock does.
    high_water: Option<Time>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

impl Core {
    /// Opens the journal, replays it into a fresh engine, and queues every decision
    /// beyond the outbox mark for publishing. Timers that came due while the service was
    /// stopped are fired here, with their original deadlines as `time`.
    pub fn recover(
        config: Config,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
    ) -> Result<Core, anyhow::Error> {
        let agencies = config.agencies()?;
        let path = config.journal.path.clone();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
        }
        let mark = OutboxMark::beside(&path);
        let (published, unreadable) = mark.load()?;
        if unreadable {
            warn!(
                "the outbox mark beside the journal is unreadable; every decision will be published again"
            );
        }
        let started = Instant::now();
        let mut engine = Engine::new();
        let mut outbox = VecDeque::new();
        let mut decided = 0u64;
        let (journal, recovery) = FileJournal::open(&path, |_offset, line| {
            let event = envelope::parse_event(line).map_err(|e| e.to_string())?;
            let step = engine.handle(&event);
            for d in &step.decisions {
                if decided >= published {
                    outbox.push_back(Arc::new(outgoing(decided, d)));
                }
                decided += 1;
            }
            Ok(())
        })?;
        if let Some((offset, bytes)) = recovery.truncated {
            warn!(
                offset,
                bytes, "the journal ended in a torn write; the incomplete tail was cut off"
            );
        }
        if let Some(mode) = recovery.loose_mode {
            warn!(
                mode = format!("{mode:o}"),
                "the journal is readable or writable by others; it holds personal data, make it 0600"
            );
        }
        if published > decided {
            warn!(
                published,
                decided,
                "the outbox mark counts more decisions than the journal implies (was the journal replaced?); none is published again"
            );
        }
        let mut core = Core {
            config,
            agencies,
            engine,
            journal,
            outbox,
            decided,
            high_water: None,
            metrics,
            health,
        };
        core.high_water = core.engine.clock();
        let overdue = core.fire_due().len();
        info!(
            entries = recovery.entries,
            decisions = core.decided,
            unpublished = core.outbox.len(),
            overdue_timer_decisions = overdue,
            seconds = started.elapsed().as_secs_f64(),
            "journal recovered"
        );
        core.metrics.set_journal_entries(core.journal.len());
        core.metrics.set_unpublished(core.outbox.len() as u64);
        core.health.set_recovered(true);
        Ok(core)
    }

    /// The time to stamp on what happens now: the wall clock to the millisecond, never
    /// earlier than anything the engine has already been given.
    fn now(&mut self) -> Time {
        let wall = Utc::now().trunc_subsecs(3);
        let t = match self.high_water {
            Some(h) if h > wall => h,
            _ => wall,
        };
        self.high_water = Some(t);
        t
    }

    /// Fires every timer due by the wall clock, and queues the decisions they make.
    fn fire_due(&mut self) -> Vec<Arc<Outgoing>> {
        match self.engine.next_deadline() {
            Some(deadline) if deadline <= Utc::now() => {
                let now = self.now();
                let fired = self.engine.fire(now);
                debug!(decisions = fired.len(), "timers fired");
                self.queue_decisions(&fired)
            }
            _ => Vec::new(),
        }
    }

    fn queue_decisions(&mut self, decisions: &[Decision]) -> Vec<Arc<Outgoing>> {
        let mut fresh = Vec::with_capacity(decisions.len());
        for d in decisions {
            let o = Arc::new(outgoing(self.decided, d));
            self.decided += 1;
            self.outbox.push_back(o.clone());
            fresh.push(o);
        }
        fresh
    }

    /// Drops confirmed decisions from the outbox.
    fn confirmed_upto(&mut self, n: u64) {
        while self.outbox.front().is_some_and(|o| o.index < n) {
            self.outbox.pop_front();
        }
        self.metrics.set_unpublished(self.outbox.len() as u64);
    }

    /// Validates, authorizes, decides and journals one delivery. Returns what to do with it.
    fn take(&mut self, delivery: &Delivery, batch: &mut Vec<Arc<Outgoing>>) -> Disposition {
        let max = self.config.amqp.max_message_bytes;
        if delivery.data.len() > max {
            return Disposition::Dead(
                "oversized",
                format!(
                    "the message is {} bytes; the limit is {max}",
                    delivery.data.len()
                ),
            );
        }
        let (value, event) = match envelope::received(&delivery.data, self.now()) {
            Ok(taken) => taken,
            Err(e) => return Disposition::Dead(e.code(), e.to_string()),
        };
        let user = delivery.properties.user_id().as_ref().map(|u| u.as_str());
        let allowed = match user {
            None => Err(authz::Unauthorized::NoUserId),
            Some(u) => match self.agencies.get(u) {
                None => Err(authz::Unauthorized::UnknownUser(u.to_string())),
                Some(agency) => authz::check(agency, &event),
            },
        };
        if let Err(e) = allowed {
            return Disposition::Dead("unauthorized", e.to_string());
        }
        let step = self.engine.handle(&event);
        if matches!(step.outcome, Outcome::Duplicate) {
            return Disposition::Duplicate;
        }
        let json = serde_json::to_string(&value).expect("a JSON value always serializes");
        self.journal.append(&json);
        batch.extend(self.queue_decisions(&step.decisions));
        match step.outcome {
            Outcome::Rejected(r) => Disposition::Journaled {
                event_type: event.body.type_name(),
                dead: Some((r.as_str(), rejected_detail(r))),
            },
            _ => Disposition::Journaled {
                event_type: event.body.type_name(),
                dead: None,
            },
        }
    }
}

/// What became of one delivery.
enum Disposition {
    /// Refused before the engine: dead-letter it, journal nothing.
    Dead(&'static str, String),
    /// Already in the journal: acknowledge, nothing else.
    Duplicate,
    /// Journaled; a semantic reject is also dead-lettered with its reason.
    Journaled {
        event_type: &'static str,
        dead: Option<(&'static str, String)>,
    },
}

fn rejected_detail(r: handoff_core::engine::Reject) -> String {
    match r {
        handoff_core::engine::Reject::UnknownOffer => {
            "no open first-refusal offer has this offer_id for this person (never made, voided or already answered)".into()
        }
        handoff_core::engine::Reject::LateResponse => {
            "the first-refusal offer lapsed at its respond_by before this answer arrived".into()
        }
    }
}

fn outgoing(index: u64, d: &Decision) -> Outgoing {
    let mut body = Vec::with_capacity(512);
    wire::write_decision(d, &mut body);
    Outgoing {
        index,
        id: d.id.clone(),
        decision_type: d.body.type_name(),
        routing_key: d.routing_key(),
        body,
    }
}

/// Runs `handoff serve` to the end: recovery, then sessions with RabbitMQ until SIGTERM or
/// SIGINT, reconnecting with backoff whenever a session fails.
pub fn run(config_path: Option<&Path>) -> ExitCode {
    let config = match Config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("handoff serve: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            error!("cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(serve(config, wait_for_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<ServeError>() {
            Some(ServeError::Journal(j)) => {
                error!(
                    exit_status = EXIT_JOURNAL_FAILED,
                    "stopped: the journal cannot be written: {j}. Nothing that is not in the \
                     journal was acknowledged; every unacknowledged message stays in RabbitMQ \
                     and is delivered again after a restart. Free space on the journal's disk \
                     (or fix the disk), then restart handoff"
                );
                ExitCode::from(EXIT_JOURNAL_FAILED)
            }
            _ => {
                error!("stopped: {e:#}");
                ExitCode::from(1)
            }
        },
    }
}

/// The exit status when a journal write or fsync failed while serving (a full disk, an IO
/// error): `EX_TEMPFAIL` from sysexits.h, since a restart succeeds once the disk is fixed.
pub const EXIT_JOURNAL_FAILED: u8 = 75;

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    // A second initialisation (tests run several services in one process) is harmless.
    let _ = match config.log.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// The service: recovery, the HTTP endpoint, and sessions until `shutdown` completes
/// (`run` passes SIGTERM or Ctrl-C; the load benchmark runs the service in-process).
/// Needs a multi-threaded tokio runtime: journal fsyncs run in `block_in_place`.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new());
    metrics.preregister(&EVENT_TYPES, &DECISION_TYPES, amqp::DEAD_LETTER_REASONS);
    let health = Arc::new(Health::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        info!("shutdown requested: no new deliveries; finishing the ones in flight");
        let _ = stop_tx.send(true);
    });
    if let Some(addr) = config.http_listen()? {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
        info!(%addr, "HTTP endpoint: /healthz /readyz /metrics");
        let mut stop = stop_rx.clone();
        let (h, m) = (health.clone(), metrics.clone());
        tokio::spawn(async move {
            let done = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            if let Err(e) = http::serve(listener, h, m, done).await {
                error!("HTTP endpoint failed: {e}");
            }
        });
    }
    let mut core = tokio::task::block_in_place(|| {
        Core::recover(config.clone(), metrics.clone(), health.clone())
    })?;
    let min = Duration::from_millis(config.amqp.reconnect_min_ms);
    let max = Duration::from_millis(
        config
            .amqp
            .reconnect_max_ms
            .max(config.amqp.reconnect_min_ms),
    );
    let mut backoff = min;
    let url = config.amqp.url.clone();
    let tls = config.amqp.tls.load(&url)?;
    loop {
        if *stop_rx.borrow() {
            break;
        }
        let started = Instant::now();
        let result = session(&mut core, &url, &tls, stop_rx.clone()).await;
        core.health.set_connected(false);
        core.metrics.set_connected(false);
        match result {
            Ok(()) => break,
            Err(e) if e.is_transient() => {
                if started.elapsed() > Duration::from_secs(30) {
                    backoff = min;
                }
                warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "RabbitMQ session ended; reconnecting");
                core.metrics.reconnect();
                let mut stop = stop_rx.clone();
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
                backoff = (backoff * 2).min(max);
            }
            Err(e) => return Err(e.into()),
        }
    }
    core.health.set_stopping(true);
    info!(
        journal_entries = core.journal.len(),
        unpublished = core.outbox.len(),
        "stopped"
    );
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// One connection's life: declare, republish the outbox, consume until the connection
/// fails (`Err`) or a shutdown is requested (`Ok`, after the in-flight batches finished).
async fn session(
    core: &mut Core,
    url: &str,
    tls: &crate::live::config::TlsMaterial,
    mut stop: watch::Receiver<bool>,
) -> Result<(), ServeError> {
    // A broker that accepts TCP but never answers must not stall the service forever.
    let connect = amqp::connect(url, tls, "handoff serve");
    let conn = tokio::time::timeout(Duration::from_secs(30), connect)
        .await
        .map_err(|_| ServeError::ConnectionLost)?
        .map_err(|e| match amqp::tls_failure(&e) {
            Some(tls) => ServeError::Tls(tls.to_string()),
            None => ServeError::Amqp(e),
        })?;
    let result = session_on(core, &conn, &mut stop).await;
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        conn.close(200, "handoff serve stopping".into()),
    )
    .await;
    result
}

async fn session_on(
    core: &mut Core,
    conn: &Connection,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), ServeError> {
    let c = core.config.amqp.clone();
    if c.declare_topology {
        let ch = conn.create_channel().await?;
        amqp::declare_topology(&ch, &c).await?;
        let _ = ch.close(200, "declared".into()).await;
    }
    let publish = amqp::confirmed_channel(conn).await?;
    // Unroutable decisions are parked on a channel of their own, so that their confirms
    // never interleave with the pipelined ones of the main channel.
    let park = amqp::confirmed_channel(conn).await?;
    let consume = amqp::consuming_channel(conn, c.prefetch).await?;
    core.health.set_connected(true);
    core.metrics.set_connected(true);
    info!(queue = %c.queue, prefetch = c.prefetch, queue_type = c.queue_type.as_str(), "connected to RabbitMQ");

    // Everything before the outbox's first decision is confirmed already.
    let start = core.outbox.front().map_or(core.decided, |o| o.index);
    let (confirmed_tx, mut confirmed_rx) = watch::channel(start);
    let (tx, rx) = mpsc::channel::<Batch>(2);
    let publisher = tokio::spawn(publisher(
        publish.clone(),
        park,
        consume.clone(),
        c.clone(),
        rx,
        confirmed_tx,
        OutboxMark::beside(&core.config.journal.path),
        core.metrics.clone(),
    ));
    let mut publisher = std::pin::pin!(publisher);
    // Confirms pending on a connection the broker closed may never resolve, so the
    // connection's state is watched on its own.
    let mut lost = std::pin::pin!(connection_lost(conn));

    // First, everything recovered or left unconfirmed by the last session.
    let catch_up = core.decided;
    if !core.outbox.is_empty() {
        info!(
            decisions = core.outbox.len(),
            "publishing decisions not yet confirmed"
        );
        let batch = Batch {
            decisions: core.outbox.iter().cloned().collect(),
            dead_letters: Vec::new(),
            ack_upto: None,
            arrived: Vec::new(),
            accepted: Vec::new(),
        };
        send(&tx, batch, &mut lost).await?;
    }

    let mut consumer = consume
        .basic_consume(
            c.queue.as_str().into(),
            "handoff".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let max_batch = usize::from(c.prefetch).div_ceil(4).max(1);
    let mut deliveries: Vec<Delivery> = Vec::with_capacity(max_batch);
    let result = loop {
        let confirmed = *confirmed_rx.borrow_and_update();
        core.confirmed_upto(confirmed);
        if confirmed >= catch_up {
            core.health.set_caught_up(true);
        }
        let deadline = core.engine.next_deadline();
        let wait = deadline.map(|d| {
            let until = (d - Utc::now()).to_std().unwrap_or(Duration::ZERO)
                // Sub-millisecond stamps are truncated; never wake before the deadline.
                + Duration::from_millis(1);
            // Deadlines are wall-clock times and tokio sleeps on the monotonic clock:
            // look again every second so a wall clock set forward (or a suspended
            // machine) never lets a hold run past its end.
            until.min(Duration::from_secs(1))
        });
        tokio::select! {
            biased;
            // (In its own block, so that no `watch::Ref` is held across an await and the
            // service's future stays `Send`.)
            _ = async { let _ = stop.wait_for(|s| *s).await; } => break Ok(()),
            _ = &mut lost => break Err(ServeError::ConnectionLost),
            done = &mut publisher => {
                break Err(match done {
                    Ok(Err(e)) => e,
                    _ => ServeError::ConsumerClosed,
                });
            }
            _ = confirmed_rx.changed() => continue,
            next = consumer.next() => match next {
                Some(Ok(d)) => {
                    deliveries.push(d);
                    // Take whatever else is already here, up to a batch.
                    while deliveries.len() < max_batch {
                        match poll_once(consumer.next()).await {
                            Some(Some(Ok(d))) => deliveries.push(d),
                            _ => break,
                        }
                    }
                }
                Some(Err(e)) => break Err(e.into()),
                None => break Err(ServeError::ConsumerClosed),
            },
            // A deadline passed with no traffic: `process` fires the timers due.
            _ = sleep_opt(wait) => {}
        }
        let batch = match process(core, &mut deliveries) {
            Ok(b) => b,
            Err(e) => break Err(e),
        };
        if let Some(batch) = batch
            && let Err(e) = send(&tx, batch, &mut lost).await
        {
            break Err(e);
        }
    };

    if result.is_err() {
        publisher.abort();
    }
    // Stop taking deliveries; those not yet processed are redelivered after we close.
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        consume.basic_cancel("handoff".into(), BasicCancelOptions::default()),
    )
    .await;
    drop(tx);
    if result.is_ok() {
        // Graceful: let the publisher finish the batches already journaled (what it cannot
        // finish is neither acknowledged nor lost: RabbitMQ delivers it again).
        tokio::select! {
            done = &mut publisher => match done {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(ServeError::ConsumerClosed),
            },
            _ = &mut lost => return Err(ServeError::ConnectionLost),
        }
        core.confirmed_upto(*confirmed_rx.borrow());
    }
    result
}

/// Completes when the connection is no longer usable (closed by the broker or an
/// operator, or failed).
async fn connection_lost(conn: &Connection) {
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if !conn.status().connected() {
            return;
        }
    }
}

async fn sleep_opt(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// Hands a batch to the publisher, unless the connection goes first.
async fn send(
    tx: &mpsc::Sender<Batch>,
    batch: Batch,
    lost: &mut (impl Future<Output = ()> + Unpin),
) -> Result<(), ServeError> {
    tokio::select! {
        sent = tx.send(batch) => sent.map_err(|_| ServeError::ConsumerClosed),
        _ = lost => Err(ServeError::ConnectionLost),
    }
}

/// Turns the deliveries received into one journaled batch (one fsync), plus any timers due.
fn process(core: &mut Core, deliveries: &mut Vec<Delivery>) -> Result<Option<Batch>, ServeError> {
    let mut batch = Batch {
        decisions: Vec::new(),
        dead_letters: Vec::new(),
        ack_upto: None,
        arrived: Vec::with_capacity(deliveries.len()),
        accepted: Vec::new(),
    };
    let arrived = Instant::now();
    for d in deliveries.drain(..) {
        batch.ack_upto = Some(d.delivery_tag);
        batch.arrived.push(arrived);
        match core.take(&d, &mut batch.decisions) {
            Disposition::Dead(reason, detail) => {
                debug!(reason, tag = d.delivery_tag, "dead-lettering");
                batch.dead_letters.push(DeadLetter {
                    reason,
                    detail,
                    delivery: d,
                });
            }
            Disposition::Duplicate => core.metrics.duplicate(),
            Disposition::Journaled { event_type, dead } => {
                batch.accepted.push(event_type);
                if let Some((reason, detail)) = dead {
                    batch.dead_letters.push(DeadLetter {
                        reason,
                        detail,
                        delivery: d,
                    });
                }
            }
        }
    }
    // Timers that came due while this batch was gathered.
    batch.decisions.extend(core.fire_due());
    let t = Instant::now();
    let committed = match tokio::task::block_in_place(|| core.journal.commit()) {
        Ok(n) => n,
        Err(e) => {
            // Not ready from here on: the service stops without acknowledging this batch.
            core.health.set_stopping(true);
            return Err(e.into());
        }
    };
    if committed > 0 {
        core.metrics.observe_fsync(t.elapsed());
        core.metrics.set_journal_entries(core.journal.len());
    }
    core.metrics.set_unpublished(core.outbox.len() as u64);
    if batch.decisions.is_empty() && batch.dead_letters.is_empty() && batch.ack_upto.is_none() {
        return Ok(None);
    }
    Ok(Some(batch))
}

/// How many batches may be published and awaiting their confirms at once.
const BATCHES_IN_FLIGHT: usize = 4;

/// A batch published, with the confirms still to come (`None`: a dead letter's).
type Published = (Batch, Vec<(Option<usize>, lapin::PublisherConfirm)>);

/// Publishes each batch as soon as it comes and hands it to [`settle`], which waits for
/// RabbitMQ's confirms, then acknowledges the batch's deliveries and moves the outbox
/// mark. Publishing does not wait for the previous batch's confirms (a quorum queue takes
/// milliseconds to confirm under load), but batches are settled strictly in order, so a
/// delivery is acknowledged only after every decision before it is confirmed.
#[allow(clippy::too_many_arguments)]
async fn publisher(
    publish: Channel,
    park: Channel,
    consume: Channel,
    c: crate::live::config::Amqp,
    mut rx: mpsc::Receiver<Batch>,
    confirmed: watch::Sender<u64>,
    mark: OutboxMark,
    metrics: Arc<Metrics>,
) -> Result<(), ServeError> {
    let (tx, settling) = mpsc::channel::<Published>(BATCHES_IN_FLIGHT);
    let mut settler = AbortOnDrop(tokio::spawn(settle(
        park,
        consume,
        c.clone(),
        settling,
        confirmed,
        mark,
        metrics,
    )));
    let mandatory = BasicPublishOptions {
        mandatory: true,
        ..BasicPublishOptions::default()
    };
    let published = async {
        while let Some(batch) = rx.recv().await {
            let mut pending = Vec::with_capacity(batch.decisions.len() + batch.dead_letters.len());
            for (i, o) in batch.decisions.iter().enumerate() {
                let confirm = publish
                    .basic_publish(
                        c.decisions_exchange.as_str().into(),
                        o.routing_key.as_str().into(),
                        mandatory,
                        &o.body,
                        amqp::decision_properties(&o.id, o.decision_type),
                    )
                    .await?;
                pending.push((Some(i), confirm));
            }
            for dl in &batch.dead_letters {
                let confirm = publish
                    .basic_publish(
                        c.dead_letter_exchange.as_str().into(),
                        dl.reason.into(),
                        mandatory,
                        &dl.delivery.data,
                        amqp::dead_letter_properties(
                            &dl.delivery.properties,
                            dl.reason,
                            &dl.detail,
                        ),
                    )
                    .await?;
                pending.push((None, confirm));
            }
            if tx.send((batch, pending)).await.is_err() {
                // The settler stopped on an error; it says which below.
                break;
            }
        }
        Ok::<(), ServeError>(())
    }
    .await;
    drop(tx);
    // On an error, returning drops the settler, which aborts it.
    published?;
    match (&mut settler.0).await {
        Ok(r) => r,
        Err(_) => Err(ServeError::ConsumerClosed),
    }
}

/// A task that is aborted when its handle is dropped: the settling task must not outlive
/// the publisher (an aborted session drops the publisher).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The second stage of [`publisher`]: confirms, then ack, metrics and the outbox mark, one
/// batch at a time, in order.
async fn settle(
    park: Channel,
    consume: Channel,
    c: crate::live::config::Amqp,
    mut rx: mpsc::Receiver<Published>,
    confirmed: watch::Sender<u64>,
    mark: OutboxMark,
    metrics: Arc<Metrics>,
) -> Result<(), ServeError> {
    while let Some((batch, pending)) = rx.recv().await {
        for (i, confirm) in pending {
            let o = i.map(|i| &batch.decisions[i]);
            match confirm.await? {
                Confirmation::Ack(None) | Confirmation::NotRequested => {}
                // lapin hands a returned message to whichever confirm completes next,
                // not always its own: the message itself says what it was.
                Confirmation::Ack(Some(returned)) => {
                    park_returned(&park, &c, &returned, &metrics).await?
                }
                Confirmation::Nack(_) => {
                    return Err(ServeError::Refused {
                        id: o.map_or("(dead letter)".into(), |o| o.id.clone()),
                        why: "negatively acknowledged".into(),
                    });
                }
            }
        }
        if let Some(tag) = batch.ack_upto {
            consume
                .basic_ack(tag, BasicAckOptions { multiple: true })
                .await?;
        }
        let done = Instant::now();
        for t in &batch.arrived {
            metrics.observe_confirm_latency(done - *t);
        }
        for t in &batch.accepted {
            metrics.event_in(t);
        }
        for dl in &batch.dead_letters {
            metrics.dead_letter(dl.reason);
        }
        for o in &batch.decisions {
            metrics.decision_out(o.decision_type);
        }
        if let Some(last) = batch.decisions.last() {
            let n = last.index + 1;
            if n > *confirmed.borrow() {
                if let Err(e) = mark.store(n) {
                    // A stale mark only makes a restart publish some decisions again.
                    warn!("cannot store the outbox mark: {e}");
                }
                let _ = confirmed.send(n);
            }
        }
    }
    Ok(())
}

/// A message RabbitMQ returned as unroutable. A decision (no queue bound, and no
/// alternate exchange on the decisions exchange) goes to the unrouted exchange instead,
/// loudly; a dead letter with nowhere to go is an error that ends the session.
async fn park_returned(
    park: &Channel,
    c: &crate::live::config::Amqp,
    returned: &BasicReturnMessage,
    metrics: &Metrics,
) -> Result<(), ServeError> {
    let d = &returned.delivery;
    let id = d
        .properties
        .message_id()
        .as_ref()
        .map_or_else(|| "(no message id)".to_string(), |s| s.to_string());
    if d.exchange.as_str() != c.decisions_exchange {
        return Err(ServeError::Refused {
            id,
            why: format!(
                "no queue is bound to {} ({})",
                d.exchange, returned.reply_text
            ),
        });
    }
    metrics.unroutable();
    error!(
        decision = %id,
        routing_key = %d.routing_key,
        parked_in = %c.unrouted_exchange,
        "no queue is bound for this decision"
    );
    let confirm = park
        .basic_publish(
            c.unrouted_exchange.as_str().into(),
            d.routing_key.clone(),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            &d.data,
            d.properties.clone(),
        )
        .await?
        .await?;
    match confirm {
        Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
        _ => Err(ServeError::Refused {
            id,
            why: format!(
                "unroutable, and {} has no queue bound either",
                c.unrouted_exchange
            ),
        }),
    }
}
