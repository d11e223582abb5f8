//! `handoff serve` with the stream journal (`journal.backend = "stream"`): one writer at a
//! time, every other instance a hot standby.
//!
//! ```text
//!  connect ─► tail the stream into an engine (standby: no inbound, no timers, /readyz 503)
//!     │            every lock_poll_ms: declare the exclusive lock queue
//!     ▼ won the lock
//!  append handoff.journal.opened (epoch = last read + 1) ─► read on until it comes back
//!     ▼
//!  fire the timers that came due ─► republish past the stream's outbox mark ─► consume
//!     │  (the writer: the same pipeline as the file backend, over a StreamJournal)
//!     ▼ a failure of the connection or the stream
//!  give up the role (the lock goes with the connection); rebuild from the stream; standby
//! ```
//!
//! The lock is an exclusive queue ([`lock`]), chosen over single active consumer because
//! it is held by the connection itself: everything this instance publishes (journal
//! entries, decisions, acknowledgements) goes over the connection that holds the lock, so
//! once the broker has dropped the connection (a crash, or a missed heartbeat of a paused
//! process) nothing more of it gets in. A single active consumer is held by a channel and
//! needs a token message to learn that it became active. The price is polling: a standby
//! tries twice a second, and each refused try writes an error line in the broker's log.
//!
//! Fencing does not rest on the lock alone (a network partition can free it while the old
//! writer still runs): every entry carries its writer's epoch, and readers skip what an
//! older writer appends after a newer one's marker ([`crate::journal::fence`]). A writer
//! hands out a batch only once it has read its entries back under its own epoch.

use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use chrono::{SubsecRound, Utc};
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use handoff_core::authz::Readers;

use crate::edge::wire;
use crate::journal::control::Opened;
use crate::journal::stream::{self, Message, Read, ReadBack, ReadError, Reader, StreamJournal};
use crate::journal::{AnyJournal, EntryError, JournalError, frame};
use crate::live::amqp;
use crate::live::backoff::Backoff;
use crate::live::config::{Config, TlsMaterial};
use crate::live::http::Health;
use crate::live::metrics::Metrics;
use crate::live::pipeline::{self, Marks, Recovering};
use crate::live::service::{self, Core, MarkStore, ServeError};

/// What a standby keeps between connections: the stream as read so far, decided by an
/// engine of its own, with the decisions past the latest outbox mark.
struct Follower {
    reader: Reader,
    recovering: Recovering,
}

impl Follower {
    fn new() -> Follower {
        Follower {
            reader: Reader::default(),
            recovering: Recovering::new(Marks::default()),
        }
    }

    /// Applies one message of the stream; returns what each of its entries meant.
    fn apply(&mut self, stream: &str, m: Message) -> Result<Vec<Read>, ServeError> {
        let offset = m.offset();
        let reads = self
            .reader
            .apply(m)
            .map_err(|e| damaged(stream, offset, e))?;
        for read in &reads {
            match read {
                Read::Line { line, .. } => {
                    self.recovering.entry(line).map_err(|e| match e {
                        EntryError::OtherRules(found) => JournalError::OtherRules {
                            path: stream.into(),
                            found,
                        },
                        EntryError::Invalid(message) => JournalError::Entry {
                            path: stream.into(),
                            offset,
                            line_number: self.reader.entries,
                            message,
                        },
                    })?;
                }
                Read::Mark {
                    published,
                    dead_lettered,
                    clock,
                } => {
                    self.recovering.confirmed(Marks {
                        decisions: *published,
                        refusals: *dead_lettered,
                    });
                    if let Some(t) = clock.and_then(|ms| {
                        chrono::DateTime::from_timestamp_millis(i64::try_from(ms).ok()?)
                    }) {
                        self.recovering.floor(t);
                    }
                }
                Read::Skipped(verdict) => {
                    if let Some(v) = verdict {
                        debug!(offset, verdict = ?v, "stream entry skipped");
                    }
                }
            }
        }
        Ok(reads)
    }
}

/// A stream no writer could have produced: stop, and say where.
fn damaged(stream: &str, offset: u64, e: ReadError) -> ServeError {
    match e {
        ReadError::Amqp(e) => ServeError::Amqp(e),
        ReadError::Closed => ServeError::ConsumerClosed,
        other => ServeError::Journal(JournalError::Entry {
            path: stream.into(),
            offset,
            line_number: 0,
            message: other.to_string(),
        }),
    }
}

/// Tries to take the writer's lock: the exclusive queue `name`, held as long as `conn`
/// lives. `Ok(false)`: another instance holds it.
pub(crate) async fn lock(conn: &Connection, name: &str) -> lapin::Result<bool> {
    let ch = conn.create_channel().await?;
    let options = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..QueueDeclareOptions::default()
    };
    match ch
        .queue_declare(name.into(), options, FieldTable::default())
        .await
    {
        Ok(_) => {
            let _ = ch.close(200, "locked".into()).await;
            Ok(true)
        }
        // 405 RESOURCE_LOCKED: the broker closed the channel.
        Err(e) if matches!(e.kind(), lapin::ErrorKind::ProtocolError(amqp) if amqp.get_id() == 405) => {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Reads the stream on a task of its own, so that nothing read is lost when the reader's
/// owner waits for something else.
fn spawn_tail(mut tail: stream::Tail) -> mpsc::Receiver<Result<Message, ReadError>> {
    let (tx, rx) = mpsc::channel(4096);
    tokio::spawn(async move {
        loop {
            let m = tail.next().await;
            let last = m.is_err();
            if tx.send(m).await.is_err() || last {
                break;
            }
        }
        tail.close().await;
    });
    rx
}

/// Relays the writer's own entries read back to its [`StreamJournal`], through the fence.
fn spawn_read_back(
    mut rx: mpsc::Receiver<Result<Message, ReadError>>,
    mut reader: Reader,
    epoch: u64,
    to: std_mpsc::Sender<ReadBack>,
) {
    tokio::spawn(async move {
        'read: while let Some(m) = rx.recv().await {
            let reads = match m.and_then(|m| reader.apply(m)) {
                Ok(reads) => reads,
                Err(e) => {
                    let _ = to.send(ReadBack::Failed(e.to_string()));
                    break;
                }
            };
            for read in reads {
                let report = match read {
                    Read::Line {
                        epoch: e,
                        seq,
                        line,
                    } if e == epoch => ReadBack::Ours { seq, line },
                    Read::Line { epoch: e, .. } => ReadBack::Superseded { epoch: e },
                    _ => continue,
                };
                let last = !matches!(report, ReadBack::Ours { .. });
                if to.send(report).is_err() || last {
                    break 'read;
                }
            }
        }
    });
}

/// Appends the writer's outbox marks to the stream as they move, at most five times a
/// second, until the sender is dropped.
fn spawn_marks(ch: Channel, stream: String, epoch: u64, mut rx: watch::Receiver<Taken>) {
    tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            let m = *rx.borrow_and_update();
            if let Err(e) = publish_mark(&ch, &stream, epoch, m).await {
                warn!("cannot append the outbox mark to the stream: {e}");
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
}

pub(crate) async fn publish_mark(
    ch: &Channel,
    stream: &str,
    epoch: u64,
    m: Taken,
) -> lapin::Result<()> {
    ch.basic_publish(
        stream.into(),
        "".into(),
        lapin::options::BasicPublishOptions::default(),
        b"",
        stream::mark_properties(
            epoch,
            m.marks.decisions,
            m.marks.refusals,
            m.clock
                .and_then(|t| u64::try_from(t.timestamp_millis()).ok()),
        ),
    )
    .await?
    .await?;
    Ok(())
}

/// An outbox mark as taken: what RabbitMQ confirmed, and the writer's clock then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Taken {
    pub marks: Marks,
    pub clock: Option<handoff_core::model::Time>,
}

/// Runs the service on the stream journal until `stop`.
pub(crate) async fn run(
    config: Config,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    stop: watch::Receiver<bool>,
) -> Result<(), ServeError> {
    let c = &config.amqp;
    let tls = c.tls.load(&c.url)?;
    let urls: Vec<String> = std::iter::once(c.url.clone())
        .chain(c.urls.iter().cloned())
        .collect();
    let mut backoff = Backoff::new(
        Duration::from_millis(c.reconnect_min_ms),
        Duration::from_millis(c.reconnect_max_ms),
        service::seed(),
    );
    let mut follower = Follower::new();
    let mut attempt = 0usize;
    health.set_recovered(true);
    loop {
        if *stop.borrow() {
            break;
        }
        let url = &urls[attempt % urls.len()];
        let mut connected = false;
        let result = term(
            &config,
            &metrics,
            &health,
            &mut follower,
            url,
            &tls,
            stop.clone(),
            &mut connected,
        )
        .await;
        health.set_connected(false);
        metrics.set_connected(false);
        metrics.set_role(false);
        health.set_standby(true);
        match result {
            Ok(()) => break,
            Err(ServeError::Journal(JournalError::Stream { stream, message })) => {
                // (`why`, not `message`: a field named `message` replaces the line's text.)
                warn!(%stream, why = %message, "gave up the writer's role; rebuilding from the stream as a standby");
            }
            Err(e) if e.is_transient() => {
                warn!(error = %e, "RabbitMQ session ended");
            }
            Err(e) => return Err(e),
        }
        attempt += 1;
        let wait = backoff.after(connected);
        info!(
            was_connected = connected,
            retry_in_ms = wait.as_millis() as u64,
            "reconnecting to RabbitMQ"
        );
        metrics.reconnect();
        let mut stop = stop.clone();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    health.set_stopping(true);
    info!("stopped");
    Ok(())
}

/// One connection's life: standby until the lock is won, then writer until the connection
/// or the stream fails (`Err`) or a shutdown is requested (`Ok`). A writer's failure
/// leaves `follower` empty, to be rebuilt from the start of the stream.
#[allow(clippy::too_many_arguments)]
async fn term(
    config: &Config,
    metrics: &Arc<Metrics>,
    health: &Arc<Health>,
    follower: &mut Follower,
    url: &str,
    tls: &TlsMaterial,
    mut stop: watch::Receiver<bool>,
    connected: &mut bool,
) -> Result<(), ServeError> {
    let j = &config.journal;
    let conn = service::connect(url, tls, "handoff serve").await?;
    *connected = true;
    let result = async {
        if config.amqp.declare_topology {
            let ch = conn.create_channel().await?;
            amqp::declare_topology(&ch, &config.amqp).await?;
            let _ = ch.close(200, "declared".into()).await;
        }
        stream::declare(&conn, &j.stream, j.stream_replicas, config.amqp.declare_topology)
            .await?;
        let mut rx = spawn_tail(stream::Tail::open(&conn, &j.stream, follower.reader.resume()).await?);
        // Which publishers have a queue, found now so that a takeover need not wait for it.
        let configured = config
            .agencies()
            .map(|a| Readers::of(a.values()))
            .unwrap_or_default();
        let readers = service::find_readers(config, &configured, url, tls).await;
        health.set_connected(true);
        metrics.set_connected(true);
        health.set_standby(true);
        metrics.set_role(false);
        info!(stream = %j.stream, from = ?follower.reader.resume(), "standby: tailing the journal stream");
        let mut lost = std::pin::pin!(service::connection_lost(&conn));
        let mut poll = tokio::time::interval(Duration::from_millis(j.lock_poll_ms));
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = async { let _ = stop.wait_for(|s| *s).await; } => return Ok(()),
                _ = &mut lost => return Err(ServeError::ConnectionLost),
                m = rx.recv() => {
                    let m = m.ok_or(ServeError::ConsumerClosed)?.map_err(|e| damaged(&j.stream, 0, e))?;
                    follower.apply(&j.stream, m)?;
                    observe(metrics, follower);
                }
                _ = poll.tick() => {
                    // Every lock poll (500 ms by default): the board is never staler than
                    // that, and a catch-up of many messages does not ask once per message.
                    refresh_board(health, follower);
                    if lock(&conn, &j.lock_queue).await? {
                        break;
                    }
                }
            }
        }
        let won = Instant::now();
        info!(lock = %j.lock_queue, "won the writer's lock; taking over");
        let taken = std::mem::replace(follower, Follower::new());
        let mut core = take_over(config, metrics, health, taken, &conn, &mut rx).await?;
        info!(
            seconds = won.elapsed().as_secs_f64(),
            "writer: caught up; publishing the decisions past the outbox mark, then consuming"
        );
        if let Some(readers) = readers {
            core.set_readers(readers);
        }
        let served = service::session_on(&mut core, &conn, &mut stop).await;
        if served.is_ok() {
            core.final_mark().await;
        }
        if conn.status().connected() {
            core.close_channels().await;
        }
        served
    }
    .await;
    service::close(&conn).await;
    result
}

/// Refreshes the console's board from what the standby has read.
fn refresh_board(health: &Health, follower: &Follower) {
    let (engine, recent) = follower.recovering.board_parts();
    health
        .board
        .refresh(engine, recent, crate::console::Role::Standby, false);
}

/// Sets the standby's gauges.
fn observe(metrics: &Metrics, follower: &Follower) {
    metrics.set_journal_entries(follower.reader.entries);
    if let Some(clock) = follower.recovering.clock() {
        let lag = (Utc::now() - clock).to_std().unwrap_or(Duration::ZERO);
        metrics.set_journal_lag(lag.as_secs_f64());
    }
    if let Some(e) = follower.reader.fence.epoch() {
        metrics.set_epoch(e);
    }
}

/// The takeover: appends this writer's marker under the next epoch, reads on until it
/// comes back (so everything before it is in the engine), and builds the writer's core.
async fn take_over(
    config: &Config,
    metrics: &Arc<Metrics>,
    health: &Arc<Health>,
    mut follower: Follower,
    conn: &Connection,
    rx: &mut mpsc::Receiver<Result<Message, ReadError>>,
) -> Result<Core, ServeError> {
    let j = &config.journal;
    let timeout = Duration::from_millis(j.confirm_timeout_ms);
    let settings = pipeline::Settings {
        max_message_bytes: config.amqp.max_message_bytes,
        agencies: config.agencies()?,
        writer: j.writer_id(),
    };
    let journal_channel = amqp::confirmed_channel(conn).await?;
    let stream_failed = |message: String| {
        ServeError::Journal(JournalError::Stream {
            stream: j.stream.clone(),
            message,
        })
    };
    // The epoch is one above the last this standby read. If it had not read to the end
    // yet, an older writer's marker of that epoch or a later one lies ahead, and this
    // marker will not count: the standby reads on until its own marker comes back (so it
    // has then read everything before it) and claims again, one above the last it read.
    // Only this instance appends markers while it holds the lock, so the second claim wins.
    let mut tries = 0;
    let epoch = 'claim: loop {
        tries += 1;
        if tries > 3 {
            return Err(stream_failed("three markers in a row did not count".into()));
        }
        let epoch = follower.reader.fence.next_epoch();
        let now = Utc::now().trunc_subsecs(3);
        let time = follower.recovering.clock().map_or(now, |c| c.max(now));
        let mut opened = Opened::now(&settings.writer, time, follower.reader.entries);
        opened.epoch = Some(epoch);
        let mut line = Vec::new();
        frame(&wire::opened_json(&opened), &mut line);
        line.pop();
        let line = String::from_utf8(line).expect("a framed line is UTF-8");
        let append = stream::publish_entries(
            &journal_channel,
            &j.stream,
            epoch,
            0,
            std::slice::from_ref(&line),
        );
        match tokio::time::timeout(timeout, append).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(stream_failed(e)),
            Err(_) => {
                return Err(stream_failed(
                    "the writer's marker was not confirmed".into(),
                ));
            }
        }
        loop {
            // Bounded per message, not in all: a standby far behind may have much to read.
            let m = tokio::time::timeout(timeout, rx.recv())
                .await
                .map_err(|_| stream_failed("the writer's marker was not read back".into()))?
                .ok_or(ServeError::ConsumerClosed)?
                .map_err(|e| damaged(&j.stream, 0, e))?;
            let ours = matches!(
                &m,
                Message::Entry { epoch: e, seq: 0, lines, .. }
                    if *e == epoch && lines.len() == 1 && lines[0] == line
            );
            let reads = follower.apply(&j.stream, m)?;
            if ours {
                if matches!(reads.first(), Some(Read::Line { .. })) {
                    break 'claim epoch;
                }
                info!(
                    epoch,
                    "an older writer's marker of this epoch came first; claiming the next"
                );
                continue 'claim;
            }
        }
    };
    observe(metrics, &follower);
    metrics.set_epoch(epoch);
    let (read_back_tx, read_back_rx) = std_mpsc::channel();
    let rx_taken = std::mem::replace(rx, mpsc::channel(1).1);
    spawn_read_back(rx_taken, follower.reader.clone(), epoch, read_back_tx);
    let journal = StreamJournal::new(
        tokio::runtime::Handle::current(),
        journal_channel,
        j.stream.clone(),
        epoch,
        follower.reader.entries,
        read_back_rx,
        timeout,
    );
    let started = Instant::now();
    let (pipeline, recovered) =
        follower
            .recovering
            .finish_opened(settings, AnyJournal::Stream(journal), Utc::now())?;
    let (marks_tx, marks_rx) = watch::channel(Taken {
        marks: pipeline.confirmed(),
        clock: pipeline.high_water(),
    });
    let marks_channel = amqp::confirmed_channel(conn).await?;
    spawn_marks(marks_channel.clone(), j.stream.clone(), epoch, marks_rx);
    info!(
        epoch,
        entries = recovered.entries,
        decisions = recovered.implied.decisions,
        unpublished = recovered.unpublished,
        refusals_to_dead_letter = recovered.undead,
        overdue_timer_decisions = recovered.overdue,
        seconds = started.elapsed().as_secs_f64(),
        "writer: the journal stream is ours"
    );
    metrics.set_unpublished(pipeline.unpublished() as u64);
    health.set_standby(false);
    metrics.set_role(true);
    let core = Core::new(
        config.clone(),
        pipeline,
        MarkStore::Stream {
            to: marks_tx,
            channel: marks_channel,
            stream: j.stream.clone(),
            epoch,
        },
        metrics.clone(),
        health.clone(),
    );
    core.refresh_board(true);
    Ok(core)
}
