//! `handoff serve`: the live service, a thin lapin + tokio driver around the sans-IO
//! [`Pipeline`](crate::live::pipeline::Pipeline).
//!
//! The driver turns deliveries into `Inbound`s, reads the wall clock and passes it in as
//! `now`, commits and takes batches (`poll_batch`: one fsync, then what to publish and
//! acknowledge), publishes them with publisher confirms, reports the confirms back
//! (`handle_confirmed`) and stores the outbox marks it returns, acknowledges deliveries,
//! serves HTTP and metrics, and reconnects with backoff. Everything the service decides
//! about a message, and every invariant that makes it crash-safe, lives in the pipeline;
//! see its module documentation.
//!
//! Publishing is pipelined: a batch is published as soon as it is journaled, without
//! waiting for the previous batch's confirms; batches are settled (confirms awaited, then
//! one `basic.ack(multiple)`) strictly in order, up to four in flight.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_lite::StreamExt;
use futures_lite::future::poll_once;
use lapin::message::{BasicReturnMessage, Delivery};
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, Connection};
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

use handoff_core::authz::Readers;
use handoff_core::model::{DecisionType, EventType};

use crate::console::BoardCell;
use crate::edge::reason::DeadLetterReason;
use crate::journal::{AnyJournal, FileJournal, Journal, JournalError, OutboxMark};
use crate::live::amqp;
use crate::live::backoff::Backoff;
use crate::live::config::{Config, ConfigError, LogFormat};
use crate::live::http::{self, Health};
use crate::live::metrics::Metrics;
use crate::live::pipeline::{
    self, Batch, DeadLetter, Inbound, Marks, Origin, Outgoing, Pipeline, Recovering,
};

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
    /// The configuration cannot be used (publishers, TLS material, the HTTP address).
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// Something the service needs at start-up is unavailable (the HTTP port).
    #[error("{0}")]
    Setup(String),
}

impl ServeError {
    /// Whether reconnecting can help. A journal failure cannot be retried in place: the
    /// engine has already seen events that may not be on disk, so the process must stop
    /// and rebuild its state from the journal.
    pub(crate) fn is_transient(&self) -> bool {
        !matches!(
            self,
            ServeError::Journal(_)
                | ServeError::Tls(_)
                | ServeError::Config(_)
                | ServeError::Setup(_)
        )
    }

    /// The process's exit status when the service stops with this error: 75
    /// ([`EXIT_JOURNAL_FAILED`]) whenever the journal could not be read or written, at
    /// start-up as while serving; 78 ([`EXIT_OTHER_RULES`]) when the journal was decided
    /// under other rules than this build's; 1 otherwise (a damaged journal included: a
    /// restart cannot mend it, `handoff journal verify` and `repair` can).
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            ServeError::Journal(j) if j.is_io() => EXIT_JOURNAL_FAILED,
            ServeError::Journal(JournalError::OtherRules { .. }) => EXIT_OTHER_RULES,
            _ => 1,
        }
    }
}

/// The pipeline as the service runs it: the file or stream journal, and the AMQP
/// properties of each delivery carried along for its dead letter.
pub(crate) type LivePipeline = Pipeline<AnyJournal, BasicProperties>;

/// Where the outbox marks are kept: files beside a file journal, or marks in the stream
/// (sent to the task that appends them, see `replicated`).
pub(crate) enum MarkStore {
    Files {
        /// Decisions RabbitMQ confirmed.
        decisions: OutboxMark,
        /// The rules' refusals whose dead letters RabbitMQ confirmed.
        refusals: OutboxMark,
    },
    Stream {
        /// To the task that appends the marks as they move.
        to: watch::Sender<crate::live::replicated::Taken>,
        channel: Channel,
        stream: String,
        epoch: u64,
    },
}

/// A batch on its way to the publisher, with when its deliveries arrived.
struct Publishing {
    batch: Batch<BasicProperties>,
    arrived: Vec<Instant>,
}

/// The service's state across sessions (connections): the pipeline and the files and
/// gauges beside it.
pub struct Core {
    config: Config,
    pub(crate) pipeline: LivePipeline,
    marks: MarkStore,
    pub(crate) metrics: Arc<Metrics>,
    health: Arc<Health>,
    /// The parties that may have a queue of their own: the publishers but courts.
    configured: Readers,
    /// Those whose queue exists, as found at the last connection.
    readers: Arc<Readers>,
}

impl Core {
    /// Opens the journal, replays it into a fresh pipeline, and queues every decision and
    /// refusal dead letter beyond the outbox marks for publishing. Timers that came due
    /// while the service was stopped are fired here, with their original deadlines as
    /// `time`. Every journal failure is [`ServeError::Journal`].
    pub fn recover(
        config: Config,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
    ) -> Result<Core, ServeError> {
        let settings = pipeline::Settings {
            max_message_bytes: config.amqp.max_message_bytes,
            agencies: config.agencies()?,
            writer: config.journal.writer_id(),
        };
        let writer = settings.writer.clone();
        let path = config.journal.path.clone();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| JournalError::Io {
                path: dir.to_path_buf(),
                op: "create the directory",
                source,
            })?;
        }
        let mark = OutboxMark::beside(&path);
        let refusal_mark = OutboxMark::refusals_beside(&path);
        let (published, unreadable) = mark.load()?;
        let (refused, refusals_unreadable) = refusal_mark.load()?;
        if unreadable || refusals_unreadable {
            warn!(
                "an outbox mark beside the journal is unreadable; every decision (or refusal dead letter) will be published again"
            );
        }
        let started = Instant::now();
        let mut recovering = Recovering::new(Marks {
            decisions: published,
            refusals: refused,
        });
        let (journal, recovery) = FileJournal::open(&path, |_offset, line| recovering.entry(line))?;
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
        let (pipeline, recovered) =
            recovering.finish(settings, AnyJournal::File(journal), Utc::now())?;
        if recovered.marks_ahead {
            warn!(
                published,
                decided = recovered.implied.decisions,
                refused,
                refusals = recovered.implied.refusals,
                "an outbox mark counts more than the journal implies (was the journal replaced?); none is published again"
            );
        }
        info!(
            entries = recovered.entries,
            control_entries = recovered.controls,
            writer = %writer,
            rules = handoff_core::RULES_VERSION,
            decisions = recovered.implied.decisions,
            unpublished = recovered.unpublished,
            refusals_to_dead_letter = recovered.undead,
            overdue_timer_decisions = recovered.overdue,
            seconds = started.elapsed().as_secs_f64(),
            "journal recovered"
        );
        metrics.set_journal_entries(pipeline.journal().len());
        metrics.set_unpublished(pipeline.unpublished() as u64);
        health.set_recovered(true);
        let core = Core::new(
            config,
            pipeline,
            MarkStore::Files {
                decisions: mark,
                refusals: refusal_mark,
            },
            metrics,
            health,
        );
        core.refresh_board(true);
        Ok(core)
    }

    /// The service's state around a recovered pipeline.
    pub(crate) fn new(
        config: Config,
        pipeline: LivePipeline,
        marks: MarkStore,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
    ) -> Core {
        let configured = config
            .agencies()
            .map(|a| Readers::of(a.values()))
            .unwrap_or_default();
        Core {
            config,
            pipeline,
            marks,
            metrics,
            health,
            readers: Arc::new(configured.clone()),
            configured,
        }
    }

    /// RabbitMQ confirmed everything before `upto`: the outbox drops it, and the marks
    /// that moved are stored.
    fn confirmed(&mut self, upto: Marks) {
        let before = self.pipeline.confirmed();
        if let Some(marks) = self.pipeline.handle_confirmed(upto) {
            match &self.marks {
                // A stale mark only makes a restart publish some decisions again.
                MarkStore::Files {
                    decisions,
                    refusals,
                } => {
                    if marks.decisions != before.decisions
                        && let Err(e) = decisions.store(marks.decisions)
                    {
                        warn!("cannot store the outbox mark: {e}");
                    }
                    if marks.refusals != before.refusals
                        && let Err(e) = refusals.store(marks.refusals)
                    {
                        warn!("cannot store the refusals' outbox mark: {e}");
                    }
                }
                MarkStore::Stream { to, .. } => {
                    to.send_replace(crate::live::replicated::Taken {
                        marks,
                        clock: self.pipeline.high_water(),
                    });
                }
            }
        }
        self.metrics
            .set_unpublished(self.pipeline.unpublished() as u64);
    }
}

impl Core {
    /// Refreshes what others read of the engine: the next-deadline gauge (from which a
    /// scrape works out how overdue a timer is) and the console's board (at most once a
    /// second unless `force`).
    pub(crate) fn refresh_board(&self, force: bool) {
        self.metrics.set_next_deadline(self.pipeline.poll_timeout());
        let role = match &self.marks {
            MarkStore::Files { .. } => crate::console::Role::Single,
            MarkStore::Stream { epoch, .. } => crate::console::Role::Writer { epoch: *epoch },
        };
        self.health
            .board
            .refresh(self.pipeline.engine(), self.pipeline.recent(), role, force);
    }

    /// Closes the stream journal's channels, waiting for the broker's answers, so that
    /// none is still closing when the connection closes (lapin refuses to close a
    /// connection then).
    pub(crate) async fn close_channels(&self) {
        let mut channels = Vec::new();
        if let MarkStore::Stream { channel, .. } = &self.marks {
            channels.push(channel.clone());
        }
        if let AnyJournal::Stream(j) = self.pipeline.journal() {
            channels.push(j.channel().clone());
        }
        for ch in channels {
            let _ = tokio::time::timeout(Duration::from_secs(2), ch.close(200, "stopping".into()))
                .await;
        }
    }

    /// On a clean stop of a stream journal's writer: appends the last outbox mark, so that
    /// the next writer publishes nothing again.
    pub(crate) async fn final_mark(&self) {
        if let MarkStore::Stream {
            channel,
            stream,
            epoch,
            ..
        } = &self.marks
        {
            let marks = crate::live::replicated::Taken {
                marks: self.pipeline.confirmed(),
                clock: self.pipeline.high_water(),
            };
            let append = crate::live::replicated::publish_mark(channel, stream, *epoch, marks);
            if !matches!(
                tokio::time::timeout(Duration::from_secs(5), append).await,
                Ok(Ok(()))
            ) {
                warn!(
                    "could not append the last outbox mark; the next writer publishes some decisions again"
                );
            }
        }
    }
}

/// A seed for the reconnection jitter: differs between processes and starts.
pub(crate) fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}

/// Connects, bounded: a broker that accepts TCP but never answers must not stall the
/// service forever. A TLS failure is [`ServeError::Tls`] (reconnecting cannot mend it).
pub(crate) async fn connect(
    url: &str,
    tls: &crate::live::config::TlsMaterial,
    name: &str,
) -> Result<Connection, ServeError> {
    tokio::time::timeout(Duration::from_secs(30), amqp::connect(url, tls, name))
        .await
        .map_err(|_| ServeError::ConnectionLost)?
        .map_err(|e| match amqp::tls_failure(&e) {
            Some(tls) => ServeError::Tls(tls.to_string()),
            None => ServeError::Amqp(e),
        })
}

/// Closes the connection, bounded, saying why when the broker is not told (then it logs a
/// client that closed its TCP connection unexpectedly).
pub(crate) async fn close(conn: &Connection) {
    if !conn.status().connected() {
        return;
    }
    match tokio::time::timeout(
        Duration::from_secs(5),
        conn.close(200, "handoff serve stopping".into()),
    )
    .await
    {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!("could not close the connection to RabbitMQ cleanly: {e}"),
        Err(_) => warn!("closing the connection to RabbitMQ took over 5 s; leaving it"),
    }
}

/// The runtime the service runs on (and `handoff journal export`): two workers, IO and
/// timers. Multi-threaded, since journal commits run in `block_in_place`.
pub(crate) fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

/// Runs `handoff serve` to the end: recovery, then sessions with RabbitMQ until SIGTERM or
/// SIGINT, reconnecting with backoff whenever a session fails.
pub(crate) fn run(config_path: Option<&Path>) -> ExitCode {
    let config = match Config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("handoff serve: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config);
    let runtime = match runtime() {
        Ok(r) => r,
        Err(e) => {
            error!("cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(serve(config, wait_for_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let status = e.exit_code();
            match &e {
                ServeError::Journal(j) if status == EXIT_JOURNAL_FAILED => error!(
                    exit_status = EXIT_JOURNAL_FAILED,
                    "stopped: the journal cannot be written: {j}. Nothing that is not in the \
                     journal was acknowledged; every unacknowledged message stays in RabbitMQ \
                     and is delivered again after a restart. Free space on the journal's disk \
                     (or fix the disk), then restart handoff"
                ),
                _ => error!("stopped: {e:#}"),
            }
            ExitCode::from(status)
        }
    }
}

/// The exit status when a journal write or fsync failed while serving (a full disk, an IO
/// error): `EX_TEMPFAIL` from sysexits.h, since a restart succeeds once the disk is fixed.
pub(crate) const EXIT_JOURNAL_FAILED: u8 = 75;

/// The exit status when the journal was decided under other rules than this build's (its
/// `handoff.journal.opened` says so, ICD section 8): `EX_CONFIG` from sysexits.h, since
/// this release and this journal do not belong together. No restart can help: run the
/// release that decides by the journal's rules, or give this one a new journal.
pub(crate) const EXIT_OTHER_RULES: u8 = 78;

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
) -> Result<(), ServeError> {
    let metrics = Arc::new(Metrics::new());
    let reasons: Vec<&'static str> = DeadLetterReason::codes().collect();
    metrics.preregister(&EventType::NAMES, &DecisionType::NAMES, &reasons);
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
            .map_err(|e| ServeError::Setup(format!("cannot listen on {addr}: {e}")))?;
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
    if config.console.enabled {
        let (addr, hash) = config.console_listen()?;
        let gate = crate::console::auth::Gate::new(&hash)
            .map_err(|e| ServeError::Setup(format!("console.credential_hash: {e}")))?;
        let log = match config.journal.backend {
            crate::live::config::Backend::File => {
                crate::console::source::Log::File(config.journal.path.clone())
            }
            crate::live::config::Backend::Stream => crate::console::source::Log::Stream {
                url: config.amqp.url.clone(),
                tls: config.amqp.tls.load(&config.amqp.url)?,
                stream: config.journal.stream.clone(),
            },
        };
        health.board.turn_on();
        let console = crate::console::Console::new(
            gate,
            crate::console::source::Source::Live {
                board: health.board.clone(),
                log,
            },
        );
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| ServeError::Setup(format!("console: cannot listen on {addr}: {e}")))?;
        info!(%addr, "console: http://{addr}/ (sign in with the configured credential)");
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let done = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            if let Err(e) =
                http::serve_router(listener, crate::console::routes(console), done).await
            {
                error!("console failed: {e}");
            }
        });
    }
    if config.journal.backend == crate::live::config::Backend::Stream {
        return crate::live::replicated::run(config, metrics, health, stop_rx).await;
    }
    metrics.set_role(true);
    let mut core = tokio::task::block_in_place(|| {
        Core::recover(config.clone(), metrics.clone(), health.clone())
    })?;
    let mut backoff = Backoff::new(
        Duration::from_millis(config.amqp.reconnect_min_ms),
        Duration::from_millis(config.amqp.reconnect_max_ms),
        seed(),
    );
    let urls: Vec<String> = std::iter::once(config.amqp.url.clone())
        .chain(config.amqp.urls.iter().cloned())
        .collect();
    let tls = config.amqp.tls.load(&config.amqp.url)?;
    let mut attempt = 0usize;
    loop {
        if *stop_rx.borrow() {
            break;
        }
        let url = &urls[attempt % urls.len()];
        let mut connected = false;
        let result = session(&mut core, url, &tls, stop_rx.clone(), &mut connected).await;
        core.health.set_connected(false);
        core.metrics.set_connected(false);
        match result {
            Ok(()) => break,
            Err(e) if e.is_transient() => {
                attempt += 1;
                let wait = backoff.after(connected);
                warn!(error = %e, was_connected = connected, retry_in_ms = wait.as_millis() as u64, "RabbitMQ session ended; reconnecting");
                core.metrics.reconnect();
                let mut stop = stop_rx.clone();
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
            Err(e) => return Err(e),
        }
    }
    core.health.set_stopping(true);
    info!(
        journal_entries = core.pipeline.journal().len(),
        unpublished = core.pipeline.unpublished(),
        refusals_to_dead_letter = core.pipeline.undead(),
        "stopped"
    );
    Ok(())
}

/// SIGTERM or SIGINT (Ctrl-C).
pub(crate) async fn wait_for_signal() {
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

/// Finds which publishers have a queue to be told in (ICD section 4), on a connection of
/// its own: each missing queue costs a channel the broker closes, which the session's own
/// connection is spared. Bounded, so that a slow broker cannot hold the session up; when
/// the check cannot be made, the last answer stands (at the first connection: every
/// configured publisher), and a warning says so.
pub(crate) async fn check_readers(
    core: &mut Core,
    url: &str,
    tls: &crate::live::config::TlsMaterial,
) {
    if let Some(readers) = find_readers(&core.config, &core.configured, url, tls).await {
        core.readers = Arc::new(readers);
    }
}

/// The publishers that have a queue to be told in, checked on a connection of its own and
/// bounded (see [`check_readers`]); `None` when the check could not be made.
pub(crate) async fn find_readers(
    config: &Config,
    configured: &Readers,
    url: &str,
    tls: &crate::live::config::TlsMaterial,
) -> Option<Readers> {
    let check = async {
        let conn = amqp::connect(url, tls, "handoff serve (queue check)").await?;
        let found = amqp::existing_readers(&conn, configured).await;
        let _ = conn.close(200, "checked".into()).await;
        found
    };
    match tokio::time::timeout(Duration::from_secs(15), check).await {
        Ok(Ok((readers, missing))) => {
            for name in &missing {
                warn!(
                    agency = %name,
                    queue = %format!("{}{name}", amqp::AGENCY_QUEUE_PREFIX),
                    parked_in = %config.amqp.unrouted_exchange,
                    "a publisher has no queue to be told in: decisions it is a party to are parked for it"
                );
            }
            Some(readers)
        }
        Ok(Err(e)) => {
            warn!(
                error = %crate::live::publish::redact_url(&e.to_string()),
                "could not check which publishers have a queue; the last answer stands"
            );
            None
        }
        Err(_) => {
            warn!("checking which publishers have a queue took over 15 s; the last answer stands");
            None
        }
    }
}

impl Core {
    /// Sets which publishers have a queue (found while this instance was a standby).
    pub(crate) fn set_readers(&mut self, readers: Readers) {
        self.readers = Arc::new(readers);
    }
}

/// One connection's life: declare, republish the outbox, consume until the connection
/// fails (`Err`) or a shutdown is requested (`Ok`, after the in-flight batches finished).
async fn session(
    core: &mut Core,
    url: &str,
    tls: &crate::live::config::TlsMaterial,
    mut stop: watch::Receiver<bool>,
    connected: &mut bool,
) -> Result<(), ServeError> {
    let conn = connect(url, tls, "handoff serve").await?;
    *connected = true;
    check_readers(core, url, tls).await;
    let result = session_on(core, &conn, &mut stop).await;
    close(&conn).await;
    result
}

pub(crate) async fn session_on(
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

    // Everything before the outbox is confirmed already.
    let (confirmed_tx, mut confirmed_rx) = watch::channel(core.pipeline.confirmed());
    let (tx, rx) = mpsc::channel::<Publishing>(2);
    let channels = Channels {
        publish: publish.clone(),
        park: park.clone(),
        consume: consume.clone(),
    };
    let publisher = tokio::spawn(publisher(
        channels,
        c.clone(),
        rx,
        confirmed_tx,
        core.metrics.clone(),
        core.readers.clone(),
    ));
    let mut publisher = std::pin::pin!(publisher);
    // Confirms pending on a connection the broker closed may never resolve, so the
    // connection's state is watched on its own.
    let mut lost = std::pin::pin!(connection_lost(conn));

    // First, everything recovered or left unconfirmed by the last session.
    let catch_up = core.pipeline.implied();
    if let Some(batch) = core.pipeline.unconfirmed() {
        info!(
            decisions = batch.decisions.len(),
            dead_letters = batch.dead_letters.len(),
            "publishing decisions and refusal dead letters not yet confirmed"
        );
        let batch = Publishing {
            batch,
            arrived: Vec::new(),
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
    let at_start = core.pipeline.confirmed();
    let mut first_confirmed = false;
    let result = loop {
        let confirmed = *confirmed_rx.borrow_and_update();
        core.confirmed(confirmed);
        if !first_confirmed && confirmed.decisions > at_start.decisions {
            // The moment a new writer's first decision is out (failover measurements).
            first_confirmed = true;
            info!(
                decisions = confirmed.decisions - at_start.decisions,
                "first decisions of this session confirmed"
            );
        }
        if confirmed.decisions >= catch_up.decisions && confirmed.refusals >= catch_up.refusals {
            core.health.set_caught_up(true);
        }
        let deadline = core.pipeline.poll_timeout();
        let wait = deadline.map(|d| {
            let until = (d - Utc::now()).to_std().unwrap_or(Duration::ZERO)
                // Sub-millisecond stamps are truncated; never wake before the deadline.
                + Duration::from_millis(1);
            // Deadlines are wall-clock times and tokio sleeps on the monotonic clock:
            // look again every second so a wall clock set forward (or a suspended
            // machine) never lets a hold run past its end.
            until.min(Duration::from_secs(1))
        });
        // With the console on, wake at least once a second so its board catches up.
        let wait = match (wait, core.health.board.is_on()) {
            (w, false) => w,
            (w, true) => Some(w.map_or(BoardCell::EVERY, |w| w.min(BoardCell::EVERY))),
        };
        tokio::select! {
            biased;
            // (In its own block, so that no `watch::Ref` is held across an await and the
            // service's future stays `Send`.)
            _ = async { let _ = stop.wait_for(|s| *s).await; } => break Ok(()),
            _ = &mut lost => break Err(ServeError::ConnectionLost),
            done = &mut publisher => break Err(ended(done)),
            changed = confirmed_rx.changed() => match changed {
                Ok(()) => continue,
                // The settler dropped its sender: it ended, so the publisher ends too and
                // says why. (Looping on a closed watch would spin: `changed` fails at once.)
                Err(_) => {
                    let done = tokio::time::timeout(Duration::from_secs(5), &mut publisher).await;
                    break Err(done.map_or(ServeError::ConsumerClosed, ended));
                }
            },
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
        core.refresh_board(false);
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
        core.confirmed(*confirmed_rx.borrow());
        // Close the channels before the connection, each waiting for the broker's answer.
        // A channel whose last handle is dropped (the publisher's, as it ends) starts
        // closing on its own, and lapin then refuses to close the connection ("channel
        // in state Closing"): the process would exit with the connection open, which the
        // broker logs as a client that went away unexpectedly.
        for ch in [&consume, &publish, &park] {
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                ch.close(200, "handoff serve stopping".into()),
            )
            .await;
        }
    }
    result
}

/// Why a session ends when its publisher task ended on its own.
fn ended(done: Result<Result<(), ServeError>, tokio::task::JoinError>) -> ServeError {
    match done {
        Ok(Err(e)) => e,
        _ => ServeError::ConsumerClosed,
    }
}

/// Completes when the connection is no longer usable (closed by the broker or an
/// operator, or failed).
pub(crate) async fn connection_lost(conn: &Connection) {
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
    tx: &mpsc::Sender<Publishing>,
    batch: Publishing,
    lost: &mut (impl Future<Output = ()> + Unpin),
) -> Result<(), ServeError> {
    tokio::select! {
        sent = tx.send(batch) => sent.map_err(|_| ServeError::ConsumerClosed),
        _ = lost => Err(ServeError::ConnectionLost),
    }
}

/// Feeds the deliveries received to the pipeline, fires the timers due, and takes the
/// batch: one journal commit (one fsync), then what to publish and acknowledge.
fn process(
    core: &mut Core,
    deliveries: &mut Vec<Delivery>,
) -> Result<Option<Publishing>, ServeError> {
    let arrived = Instant::now();
    let n = deliveries.len();
    for d in deliveries.drain(..) {
        let inbound = Inbound {
            tag: d.delivery_tag,
            user: d
                .properties
                .user_id()
                .as_ref()
                .map(|u| u.as_str().to_string()),
            bytes: d.data,
            meta: d.properties,
        };
        core.pipeline.handle_delivery(Utc::now(), inbound);
    }
    // Timers that came due while this batch was gathered.
    let fired = core.pipeline.handle_timeout(Utc::now());
    if fired > 0 {
        debug!(decisions = fired, "timers fired");
    }
    let t = Instant::now();
    let batch = match tokio::task::block_in_place(|| core.pipeline.poll_batch()) {
        Ok(b) => b,
        Err(e) => {
            // Not ready from here on: the service stops without acknowledging this batch
            // (with the stream journal, the instance gives up the writer's role instead,
            // and carries on as a standby).
            core.metrics.write_failure();
            if !matches!(e, JournalError::Stream { .. }) {
                core.health.set_stopping(true);
            }
            return Err(e.into());
        }
    };
    let Some(batch) = batch else {
        return Ok(None);
    };
    if batch.committed > 0 {
        core.metrics.observe_fsync(t.elapsed());
        if let AnyJournal::Stream(j) = core.pipeline.journal() {
            core.metrics.set_journal_lag(j.last_commit().as_secs_f64());
        }
        core.metrics
            .set_journal_entries(core.pipeline.journal().len());
    }
    for _ in 0..batch.duplicates {
        core.metrics.duplicate();
    }
    for dl in &batch.dead_letters {
        debug!(reason = dl.reason.as_str(), "dead-lettering");
    }
    core.metrics
        .set_unpublished(core.pipeline.unpublished() as u64);
    Ok(Some(Publishing {
        batch,
        arrived: vec![arrived; n],
    }))
}

/// A session's channels: decisions and dead letters are published on one, returned
/// decisions parked on another (so that its confirms never interleave with the pipelined
/// ones), and deliveries consumed and acknowledged on the third.
struct Channels {
    publish: Channel,
    park: Channel,
    consume: Channel,
}

/// How many batches may be published and awaiting their confirms at once.
const BATCHES_IN_FLIGHT: usize = 4;

/// A batch published, with the confirms still to come (`None`: a dead letter's).
type Published = (Publishing, Vec<(Option<usize>, lapin::PublisherConfirm)>);

/// Publishes each batch as soon as it comes and hands it to [`settle`], which waits for
/// RabbitMQ's confirms, then acknowledges the batch's deliveries and reports the confirmed
/// positions. Publishing does not wait for the previous batch's confirms (a quorum queue
/// takes milliseconds to confirm under load), but batches are settled strictly in order,
/// so a delivery is acknowledged only after everything before it is confirmed.
///
/// When the settler ends (on an error: a nack, a dead letter returned, a failed ack), so
/// does the publisher, at once and with the settler's error, so that the session ends and
/// the service reconnects or stops instead of waiting for a batch that cannot settle.
async fn publisher(
    Channels {
        publish,
        park,
        consume,
    }: Channels,
    c: crate::live::config::Amqp,
    mut rx: mpsc::Receiver<Publishing>,
    confirmed: watch::Sender<Marks>,
    metrics: Arc<Metrics>,
    readers: Arc<Readers>,
) -> Result<(), ServeError> {
    let (tx, settling) = mpsc::channel::<Published>(BATCHES_IN_FLIGHT);
    let mut settler = AbortOnDrop(tokio::spawn(settle(
        park,
        consume,
        c.clone(),
        settling,
        confirmed,
        metrics,
        readers.clone(),
    )));
    let mandatory = BasicPublishOptions {
        mandatory: true,
        ..BasicPublishOptions::default()
    };
    let mut settled = None;
    loop {
        let next = tokio::select! {
            next = rx.recv() => next,
            done = &mut settler.0 => {
                settled = Some(done);
                break;
            }
        };
        let Some(p) = next else { break };
        let batch = &p.batch;
        let mut pending = Vec::with_capacity(batch.decisions.len() + batch.dead_letters.len());
        for (i, o) in batch.decisions.iter().enumerate() {
            let confirm = publish
                .basic_publish(
                    c.decisions_exchange.as_str().into(),
                    o.routing_key.as_str().into(),
                    mandatory,
                    &o.body,
                    amqp::decision_properties(&o.id, o.decision_type, &o.parties),
                )
                .await?;
            pending.push((Some(i), confirm));
            // A party with no queue (ICD section 4) would miss it while the others are
            // told, and RabbitMQ parks a decision only when no party at all has a queue:
            // so a copy goes to the unrouted exchange, naming who was not reached.
            if let Some(unreached) = partly_unreached(&readers, o) {
                warn!(
                    decision = %o.id,
                    routing_key = %o.routing_key,
                    unreached = %unreached.join(","),
                    parked_in = %c.unrouted_exchange,
                    "a party of this decision has no queue (not among the publishers)"
                );
                let confirm = publish
                    .basic_publish(
                        c.unrouted_exchange.as_str().into(),
                        o.routing_key.as_str().into(),
                        mandatory,
                        &o.body,
                        amqp::unreached_properties(&o.id, o.decision_type, &unreached),
                    )
                    .await?;
                pending.push((Some(i), confirm));
            }
        }
        for dl in &batch.dead_letters {
            let confirm = publish
                .basic_publish(
                    c.dead_letter_exchange.as_str().into(),
                    dl.reason.as_str().into(),
                    mandatory,
                    &dl.body,
                    dead_letter_properties(dl),
                )
                .await?;
            pending.push((None, confirm));
        }
        if tx.send((p, pending)).await.is_err() {
            // The settler stopped on an error; it says which below.
            break;
        }
    }
    drop(tx);
    let done = match settled {
        Some(done) => done,
        None => (&mut settler.0).await,
    };
    match done {
        Ok(r) => r,
        Err(_) => Err(ServeError::ConsumerClosed),
    }
}

/// The parties of a decision that no queue takes, when some other party is told: a
/// decision none of whose parties has a queue is parked by RabbitMQ itself (alternate
/// exchange, or returned and parked by [`park_returned`]).
fn partly_unreached<'o>(readers: &Readers, o: &'o Outgoing) -> Option<Vec<&'o str>> {
    let unreached = readers.unreached(&o.parties);
    (!unreached.is_empty() && unreached.len() < o.parties.len()).then_some(unreached)
}

/// A dead letter's properties: the delivery's own, with the reason headers, or for a
/// refusal recomputed from the journal, the recovered form.
fn dead_letter_properties(dl: &DeadLetter<BasicProperties>) -> BasicProperties {
    match (&dl.meta, &dl.origin) {
        (Some(original), _) => amqp::dead_letter_properties(original, dl.reason, &dl.detail),
        (None, Origin::Recovered { agency, event_id }) => {
            amqp::recovered_dead_letter_properties(dl.reason, &dl.detail, agency, event_id)
        }
        (None, Origin::Live { .. }) => {
            amqp::dead_letter_properties(&BasicProperties::default(), dl.reason, &dl.detail)
        }
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

/// The second stage of [`publisher`]: confirms, then ack, metrics and the confirmed
/// positions, one batch at a time, in order.
async fn settle(
    park: Channel,
    consume: Channel,
    c: crate::live::config::Amqp,
    mut rx: mpsc::Receiver<Published>,
    confirmed: watch::Sender<Marks>,
    metrics: Arc<Metrics>,
    readers: Arc<Readers>,
) -> Result<(), ServeError> {
    while let Some((p, pending)) = rx.recv().await {
        let batch = &p.batch;
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
        for t in &p.arrived {
            metrics.observe_confirm_latency(done - *t);
        }
        for t in &batch.accepted {
            metrics.event_in(t);
        }
        for dl in &batch.dead_letters {
            metrics.dead_letter(dl.reason.as_str());
        }
        let now = Utc::now();
        for o in &batch.decisions {
            metrics.decision_out(o.decision_type);
            if let Some(until) = o.hold_until {
                metrics.observe_hold_release(now - until);
            }
            if partly_unreached(&readers, o).is_some() {
                metrics.unreached();
            }
        }
        confirmed.send_if_modified(|m| {
            let moved = *m != batch.upto;
            *m = batch.upto;
            moved
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_journal_io_failure_exits_75_and_damage_exits_1() {
        let io = ServeError::Journal(JournalError::Io {
            path: "j".into(),
            op: "open",
            source: std::io::Error::other("disk"),
        });
        assert_eq!(io.exit_code(), EXIT_JOURNAL_FAILED);
        assert!(!io.is_transient());
        let damaged = ServeError::Journal(JournalError::Entry {
            path: "j".into(),
            offset: 0,
            line_number: 1,
            message: "not an event".into(),
        });
        assert_eq!(damaged.exit_code(), 1);
        assert_eq!(ServeError::ConnectionLost.exit_code(), 1);
        let other_rules = ServeError::Journal(JournalError::OtherRules {
            path: "j".into(),
            found: crate::journal::control::OtherRules {
                line: 1,
                rules: 1,
                writer: "w".into(),
            },
        });
        assert_eq!(other_rules.exit_code(), EXIT_OTHER_RULES);
        assert!(!other_rules.is_transient());
    }

    /// Recovery's own IO (here: opening a journal whose path is a directory) is a typed
    /// journal failure, so it exits 75 like a failed write while serving.
    #[test]
    fn a_journal_that_cannot_be_opened_at_recovery_is_a_journal_failure() {
        let dir = std::env::temp_dir().join(format!("handoff-recover-{}", std::process::id()));
        let path = dir.join("journal.jsonl");
        std::fs::create_dir_all(&path).unwrap();
        let mut config = Config::default();
        config.journal.path = path;
        let err = Core::recover(
            config,
            Arc::new(Metrics::new()),
            Arc::new(Health::default()),
        )
        .err()
        .expect("a directory is no journal");
        assert!(matches!(err, ServeError::Journal(_)), "{err}");
        assert_eq!(err.exit_code(), EXIT_JOURNAL_FAILED);
        std::fs::remove_dir_all(&dir).ok();
    }
}
