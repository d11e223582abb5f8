//! The live service's state machine, sans IO (in the manner of quinn-proto's `Connection`):
//! deliveries, the time and RabbitMQ's confirms go in; batches to publish and acknowledge
//! come out. No tokio, no lapin, no wall clock: the driver (`service.rs`) owns those and
//! passes `now` in, so every path here runs in a test on a virtual clock.
//!
//! ```text
//!   handle_delivery(now, Inbound) ─┐                            ┌─► Batch: decisions,
//!   handle_timeout(now) ───────────┼─► engine ─► journal.append │   dead letters, ack_upto
//!                                  └─► poll_batch: journal.commit (one fsync) ─┘
//!   handle_confirmed(upto) ─► outbox drops what is confirmed ─► the marks to store
//! ```
//!
//! The invariants it keeps, each tested in `tests/pipeline.rs`:
//! - `poll_batch` commits the journal (group commit) and hands a batch out only when the
//!   commit succeeded. A failed commit hands nothing out, and the pipeline refuses to go
//!   on: the engine has seen events that may not be on disk, so the process must stop and
//!   recover from the journal.
//! - Decisions and the rules' refusals (`unknown_offer`, `late_response`) are derived from
//!   the journal, so both live in the outbox until RabbitMQ confirms them, and recovery
//!   recomputes whatever lies beyond their marks. Other dead letters are not journaled; a
//!   delivery is acknowledged only with or after its dead letter, so a crash redelivers it.
//! - The marks [`Pipeline::handle_confirmed`] returns never run ahead of the confirms it
//!   was given, nor beyond what was handed out.
//! - Stamps never go backwards: the time given to the engine is `now` to the millisecond,
//!   or the latest time the engine was given if `now` is earlier.
//! - The first entry a pipeline appends to its journal is a `handoff.journal.opened` (ICD
//!   section 8) naming this build's rules version and the writer ([`Settings::writer`]),
//!   made durable by its own commit before any event is journaled; so it is also the first
//!   entry of every journal. Recovery skips control entries (they decide nothing) and
//!   refuses a journal whose opened entries name other rules.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use chrono::SubsecRound;

use crate::console::Recent;
use crate::edge::envelope;
use crate::edge::reason::DeadLetterReason;
use crate::edge::wire;
use crate::journal::control::{self, Control, Entry, Opened};
use crate::journal::feed::{self, Summary};
use crate::journal::{EntryError, Journal, JournalError, unframed};
use handoff_core::authz::{self, Agency};
use handoff_core::engine::{Engine, Outcome, Reject};
use handoff_core::model::{Decision, Party, Rule, Time};

/// What the pipeline needs to know of the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Larger messages are dead-lettered as `oversized` without being read.
    pub max_message_bytes: usize,
    /// The AMQP users that may publish, and the agency each speaks for.
    pub agencies: BTreeMap<String, Agency>,
    /// This writer's identity, for the `handoff.journal.opened` entry it appends (the
    /// `journal.writer` setting). Must be a writer id (`control::is_writer_id`).
    pub writer: String,
}

/// Positions in the two sequences the journal implies: decisions, and the rules'
/// refusals. As a mark, how many of each RabbitMQ has confirmed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Marks {
    pub decisions: u64,
    pub refusals: u64,
}

impl Marks {
    fn min(self, other: Marks) -> Marks {
        Marks {
            decisions: self.decisions.min(other.decisions),
            refusals: self.refusals.min(other.refusals),
        }
    }

    fn max(self, other: Marks) -> Marks {
        Marks {
            decisions: self.decisions.max(other.decisions),
            refusals: self.refusals.max(other.refusals),
        }
    }
}

/// One delivery as the driver received it. `meta` is whatever the driver needs back with
/// a dead letter (the AMQP properties); the pipeline never looks at it.
#[derive(Debug, Clone)]
pub struct Inbound<M> {
    pub tag: u64,
    /// The AMQP `user-id`, which RabbitMQ checked against the connection's user.
    pub user: Option<String>,
    pub bytes: Vec<u8>,
    pub meta: M,
}

/// One decision ready to publish, with its position in decision order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// 0-based position in the sequence of all decisions the journal implies.
    pub index: u64,
    pub id: String,
    pub decision_type: &'static str,
    pub routing_key: String,
    /// The keys of the agencies told of it (ICD section 4), for the `BCC` header.
    pub parties: Vec<String>,
    pub body: Vec<u8>,
    /// For the end of a 48-hour hold (R3.5), its `hold_until`: how late the release went
    /// out is measured against it.
    pub hold_until: Option<Time>,
}

/// Where a dead letter came from.
#[derive(Debug, Clone)]
pub enum Origin {
    /// A delivery of this process: its properties are at hand.
    Live { tag: u64, user: Option<String> },
    /// A rules' refusal recomputed from the journal after a restart: the AMQP user is not
    /// journaled, so this names the agency that sends such an event
    /// (`authz::usual_sender`) and the event's id.
    Recovered { agency: String, event_id: String },
}

/// An inbound message refused, to be published on the dead-letter exchange.
#[derive(Debug, Clone)]
pub struct DeadLetter<M> {
    pub reason: DeadLetterReason,
    pub detail: String,
    /// The delivery's bytes, or for a recovered refusal the journaled event (without its
    /// `handoffcrc`).
    pub body: Vec<u8>,
    pub origin: Origin,
    /// The delivery's metadata (`None` for a recovered refusal).
    pub meta: Option<M>,
    /// For a rules' refusal, its 0-based position among all refusals the journal implies.
    pub refusal: Option<u64>,
}

/// What the driver must do next, handed out only after its journal commit succeeded:
/// publish the decisions and dead letters with confirms, then (once all are confirmed and
/// every earlier batch is settled) acknowledge deliveries up to `ack_upto` and report
/// `upto` to [`Pipeline::handle_confirmed`].
#[derive(Debug)]
pub struct Batch<M> {
    /// Journal entries made durable by this batch's commit.
    pub committed: usize,
    pub decisions: Vec<Arc<Outgoing>>,
    pub dead_letters: Vec<Arc<DeadLetter<M>>>,
    /// The highest delivery tag of the batch; every lower tag is in this or an earlier batch.
    pub ack_upto: Option<u64>,
    /// Once this batch and every earlier one are confirmed, everything before these
    /// positions is confirmed.
    pub upto: Marks,
    /// Deliveries taken into this batch.
    pub deliveries: usize,
    /// Accepted (journaled) events by type.
    pub accepted: Vec<&'static str>,
    /// Deliveries that were duplicates (acknowledged only).
    pub duplicates: u64,
}

impl<M> Batch<M> {
    fn empty(upto: Marks) -> Batch<M> {
        Batch {
            committed: 0,
            decisions: Vec::new(),
            dead_letters: Vec::new(),
            ack_upto: None,
            upto,
            deliveries: 0,
            accepted: Vec::new(),
            duplicates: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.decisions.is_empty() && self.dead_letters.is_empty() && self.ack_upto.is_none()
    }
}

/// What became of one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Refused before the engine: dead-lettered, nothing journaled.
    Dead(DeadLetterReason),
    /// Already in the journal: acknowledged, nothing else.
    Duplicate,
    /// Journaled; a refusal by the rules is also dead-lettered with its reason.
    Journaled {
        event_type: &'static str,
        refused: Option<DeadLetterReason>,
    },
    /// An earlier commit failed: nothing was done; the delivery is redelivered after a
    /// restart.
    Stopped,
}

/// The service's state across sessions: engine, journal, outbox, the batch being built.
pub struct Pipeline<J, M> {
    settings: Settings,
    engine: Engine,
    journal: J,
    /// Decisions handed out and not yet confirmed, in order.
    decisions: VecDeque<Arc<Outgoing>>,
    /// Refusal dead letters handed out and not yet confirmed, in order.
    refusals: VecDeque<Arc<DeadLetter<M>>>,
    /// How many decisions and refusals the engine has made (the next indices).
    next: Marks,
    /// How many were handed out in batches (their journal entries are durable).
    handed: Marks,
    /// How many RabbitMQ confirmed, as far as this pipeline was told.
    confirmed: Marks,
    /// The latest time given to the engine.
    high_water: Option<Time>,
    pending: Batch<M>,
    failed: bool,
    /// The latest decisions and the dead letters, for the console's board.
    recent: Recent,
}

/// What recovery found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Events in the journal.
    pub entries: u64,
    /// Control entries in the journal, skipped (the opened entry this start appended not
    /// counted).
    pub controls: u64,
    /// Decisions and refusals the journal implies.
    pub implied: Marks,
    /// Decisions beyond the mark (to publish again).
    pub unpublished: usize,
    /// Refusals beyond their mark (to dead-letter again).
    pub undead: usize,
    /// Decisions of timers that came due while the service was stopped.
    pub overdue: usize,
    /// Whether a mark counted more than the journal implies (was the journal replaced?).
    pub marks_ahead: bool,
}

/// A refusal recomputed from the journal.
struct Refusal {
    index: u64,
    reject: Reject,
    body: String,
    agency: String,
    event_id: String,
}

/// Recovery: feed it the journal's entries in order ([`Recovering::entry`]), then
/// [`Recovering::finish`] with the journal opened for appending.
pub struct Recovering {
    engine: Engine,
    /// What the engine made of the journal, counted as replay counts it.
    summary: Summary,
    /// Entries given so far: the line number of the next one, less one (every line of a
    /// journal that opens is an entry).
    lines: u64,
    marks: Marks,
    next: Marks,
    decisions: VecDeque<Arc<Outgoing>>,
    refusals: Vec<Refusal>,
    /// No event this writer journals may be stamped earlier (a previous writer's clock,
    /// from its last outbox mark).
    floor: Option<Time>,
    /// The latest decisions, for the console's board.
    recent: Recent,
}

impl Recovering {
    /// Starts a recovery with the stored marks (what RabbitMQ confirmed before).
    pub fn new(marks: Marks) -> Recovering {
        Recovering {
            engine: Engine::new(),
            summary: Summary::default(),
            lines: 0,
            marks,
            next: Marks::default(),
            decisions: VecDeque::new(),
            refusals: Vec::new(),
            floor: None,
            recent: Recent::default(),
        }
    }

    /// A previous writer's clock (from an outbox mark in the stream): the pipeline will
    /// stamp nothing earlier. The decisions that writer's mark counts, timers it fired
    /// included, then keep their positions in decision order, whatever this host's clock.
    pub fn floor(&mut self, t: Time) {
        self.floor = self.floor.max(Some(t));
    }

    /// One journal entry (a framed line without '\n', or plain event JSON): the engine
    /// decides it again; what lies beyond the marks goes to the outbox. A control entry is
    /// skipped, after its rules version is checked: a journal decided under other rules
    /// is refused ([`EntryError::OtherRules`]), never decided on.
    pub fn entry(&mut self, line: &str) -> Result<(), EntryError> {
        self.lines += 1;
        let parsed = envelope::parse_entry(line).map_err(|e| EntryError::Invalid(e.to_string()))?;
        let event = match parsed {
            Entry::Event(event) => event,
            Entry::Control(Control::Opened(opened)) => {
                self.summary.controls += 1;
                return control::check_rules(self.lines, &opened).map_err(EntryError::OtherRules);
            }
        };
        let step = feed::decide(&mut self.engine, &mut self.summary, &event);
        for d in &step.decisions {
            self.recent.decision(d);
            if self.next.decisions >= self.marks.decisions {
                self.decisions
                    .push_back(Arc::new(outgoing(self.next.decisions, d)));
            }
            self.next.decisions += 1;
        }
        if let Outcome::Rejected(r) = step.outcome {
            if self.next.refusals >= self.marks.refusals {
                self.refusals.push(Refusal {
                    index: self.next.refusals,
                    reject: r,
                    body: unframed(line).into_owned(),
                    agency: authz::usual_sender(&event).to_string(),
                    event_id: event.id.clone(),
                });
            }
            self.next.refusals += 1;
        }
        Ok(())
    }

    /// The outbox marks moved (a standby read a newer mark in the stream): decisions and
    /// refusals before them need not be published again, and are let go.
    pub fn confirmed(&mut self, marks: Marks) {
        self.marks = self.marks.max(marks);
        while self
            .decisions
            .front()
            .is_some_and(|o| o.index < self.marks.decisions)
        {
            self.decisions.pop_front();
        }
        let upto = self.marks.refusals;
        self.refusals.retain(|r| r.index >= upto);
    }

    /// The latest time the journal's events gave the engine, or a previous writer's clock
    /// ([`Recovering::floor`]) if later.
    /// The engine and the latest decisions so far (a standby's board).
    pub(crate) fn board_parts(&self) -> (&Engine, &Recent) {
        (&self.engine, &self.recent)
    }

    pub fn clock(&self) -> Option<Time> {
        self.engine.clock().max(self.floor)
    }

    /// The pipeline, its `handoff.journal.opened` entry appended and committed (durable
    /// before any event this writer journals), with every timer due by `now` fired (each
    /// decision timed at its deadline) and its decisions in the outbox. `now` is also the
    /// opened entry's time (stamped as entries are: never before the journal's last).
    pub fn finish<J: Journal, M>(
        self,
        settings: Settings,
        journal: J,
        now: Time,
    ) -> Result<(Pipeline<J, M>, Recovered), JournalError> {
        self.finish_as(settings, journal, now, true)
    }

    /// [`Recovering::finish`] for a writer whose `handoff.journal.opened` entry is already
    /// in the journal and was given to [`Recovering::entry`] (a stream journal's writer
    /// appends its marker, with its epoch, before it knows it has read everything before
    /// it).
    pub fn finish_opened<J: Journal, M>(
        self,
        settings: Settings,
        journal: J,
        now: Time,
    ) -> Result<(Pipeline<J, M>, Recovered), JournalError> {
        self.finish_as(settings, journal, now, false)
    }

    fn finish_as<J: Journal, M>(
        self,
        settings: Settings,
        journal: J,
        now: Time,
        append_opened: bool,
    ) -> Result<(Pipeline<J, M>, Recovered), JournalError> {
        let marks_ahead =
            self.marks.decisions > self.next.decisions || self.marks.refusals > self.next.refusals;
        let refusals = self
            .refusals
            .into_iter()
            .map(|r| {
                Arc::new(DeadLetter {
                    reason: r.reject.into(),
                    detail: refusal_detail(r.reject),
                    body: r.body.into_bytes(),
                    origin: Origin::Recovered {
                        agency: r.agency,
                        event_id: r.event_id,
                    },
                    meta: None,
                    refusal: Some(r.index),
                })
            })
            .collect();
        let high_water = self.engine.clock().max(self.floor);
        let mut p = Pipeline {
            settings,
            engine: self.engine,
            journal,
            decisions: self.decisions,
            refusals,
            next: self.next,
            handed: self.next,
            confirmed: self.marks.min(self.next),
            high_water,
            pending: Batch::empty(self.next),
            failed: false,
            recent: self.recent,
        };
        if append_opened {
            p.append_opened(now);
        }
        let overdue = p.handle_timeout(now);
        // Commits the opened entry alone (firing timers appends nothing), and moves the
        // overdue decisions to the outbox the way every batch goes.
        p.poll_batch()?;
        let recovered = Recovered {
            entries: self.summary.events,
            controls: self.summary.controls,
            implied: p.next,
            unpublished: p.decisions.len(),
            undead: p.refusals.len(),
            overdue,
            marks_ahead,
        };
        Ok((p, recovered))
    }
}

impl<J: Journal, M> Pipeline<J, M> {
    /// A pipeline with an empty engine over `journal`, which must hold no entries (use
    /// [`Recovering`] for a journal that does), opened at `now`: its first entry, a
    /// `handoff.journal.opened`, is committed before this returns.
    pub fn new(settings: Settings, journal: J, now: Time) -> Result<Pipeline<J, M>, JournalError> {
        Recovering::new(Marks::default())
            .finish(settings, journal, now)
            .map(|(p, _)| p)
    }

    /// Appends this writer's `handoff.journal.opened` entry, stamped at `now`. The engine
    /// never sees it.
    fn append_opened(&mut self, now: Time) {
        let time = self.stamp(now);
        let opened = Opened::now(&self.settings.writer, time, self.journal.len());
        self.journal.append(&wire::opened_json(&opened));
    }

    /// The time to stamp on what happens at `now`: to the millisecond, never earlier than
    /// anything the engine has already been given.
    fn stamp(&mut self, now: Time) -> Time {
        let wall = now.trunc_subsecs(3);
        let t = match self.high_water {
            Some(h) if h > wall => h,
            _ => wall,
        };
        self.high_water = Some(t);
        t
    }

    /// Validates, authorizes, decides and journals (appends, not yet commits) one delivery.
    pub fn handle_delivery(&mut self, now: Time, inbound: Inbound<M>) -> Disposition {
        if self.failed {
            return Disposition::Stopped;
        }
        let Inbound {
            tag,
            user,
            bytes,
            meta,
        } = inbound;
        self.pending.ack_upto = Some(tag);
        self.pending.deliveries += 1;
        let (disposition, dead) = match self.take(now, &bytes, user.as_deref()) {
            Taken::Dead(reason, detail) => {
                (Disposition::Dead(reason), Some((reason, detail, None)))
            }
            Taken::Duplicate => {
                self.pending.duplicates += 1;
                (Disposition::Duplicate, None)
            }
            Taken::Journaled {
                event_type,
                refused,
            } => {
                self.pending.accepted.push(event_type);
                let dead = refused.map(|r| {
                    let index = self.next.refusals;
                    self.next.refusals += 1;
                    (DeadLetterReason::from(r), refusal_detail(r), Some(index))
                });
                (
                    Disposition::Journaled {
                        event_type,
                        refused: refused.map(DeadLetterReason::from),
                    },
                    dead,
                )
            }
        };
        if let Some((reason, detail, refusal)) = dead {
            self.recent.dead_letter(reason.as_str());
            self.pending.dead_letters.push(Arc::new(DeadLetter {
                reason,
                detail,
                body: bytes,
                origin: Origin::Live { tag, user },
                meta: Some(meta),
                refusal,
            }));
        }
        disposition
    }

    fn take(&mut self, now: Time, bytes: &[u8], user: Option<&str>) -> Taken {
        let max = self.settings.max_message_bytes;
        if bytes.len() > max {
            return Taken::Dead(
                DeadLetterReason::Oversized,
                format!("the message is {} bytes; the limit is {max}", bytes.len()),
            );
        }
        let stamp = self.stamp(now);
        let (value, event) = match envelope::received(bytes, stamp) {
            Ok(taken) => taken,
            Err(e) => return Taken::Dead(e.code(), e.to_string()),
        };
        let allowed = match user {
            None => Err(authz::Unauthorized::NoUserId),
            Some(u) => match self.settings.agencies.get(u) {
                None => Err(authz::Unauthorized::UnknownUser(u.to_string())),
                Some(agency) => authz::check(agency, &event),
            },
        };
        if let Err(e) = allowed {
            return Taken::Dead(DeadLetterReason::Unauthorized, e.to_string());
        }
        let step = self.engine.handle(&event);
        if matches!(step.outcome, Outcome::Duplicate) {
            return Taken::Duplicate;
        }
        let json = serde_json::to_string(&value).expect("a JSON value always serializes");
        self.journal.append(&json);
        self.queue(&step.decisions);
        Taken::Journaled {
            event_type: event.body.type_name(),
            refused: match step.outcome {
                Outcome::Rejected(r) => Some(r),
                _ => None,
            },
        }
    }

    fn queue(&mut self, decisions: &[Decision]) {
        for d in decisions {
            self.recent.decision(d);
            self.pending
                .decisions
                .push(Arc::new(outgoing(self.next.decisions, d)));
            self.next.decisions += 1;
        }
    }

    /// Fires every timer due by `now` (the stamp never earlier than what the engine was
    /// given; each decision timed at its deadline). Returns how many decisions it made.
    pub fn handle_timeout(&mut self, now: Time) -> usize {
        if self.failed {
            return 0;
        }
        match self.engine.next_deadline() {
            Some(deadline) if deadline <= now => {
                let t = self.stamp(now);
                let fired = self.engine.fire(t);
                self.queue(&fired);
                fired.len()
            }
            _ => 0,
        }
    }

    /// The next timer's deadline: call [`Pipeline::handle_timeout`] once it has passed.
    pub fn poll_timeout(&self) -> Option<Time> {
        if self.failed {
            return None;
        }
        self.engine.next_deadline()
    }

    /// Commits the journal (one write and fsync for every entry appended since the last
    /// call) and, only if that succeeded, hands out what the driver must do. `Ok(None)`:
    /// nothing to do. After an error the pipeline hands nothing out any more.
    pub fn poll_batch(&mut self) -> Result<Option<Batch<M>>, JournalError> {
        if self.failed {
            return Err(failed());
        }
        let committed = match self.journal.commit() {
            Ok(n) => n,
            Err(e) => {
                // The engine has seen events that are not on disk: nothing of this batch
                // may go out, and nothing later either.
                self.failed = true;
                self.pending = Batch::empty(self.handed);
                return Err(e);
            }
        };
        let mut batch = std::mem::replace(&mut self.pending, Batch::empty(self.next));
        batch.committed = committed;
        batch.upto = self.next;
        self.handed = self.next;
        self.decisions.extend(batch.decisions.iter().cloned());
        self.refusals.extend(
            batch
                .dead_letters
                .iter()
                .filter(|d| d.refusal.is_some())
                .cloned(),
        );
        if batch.is_empty() {
            return Ok(None);
        }
        Ok(Some(batch))
    }

    /// RabbitMQ confirmed everything before `upto` (a settled batch's [`Batch::upto`]):
    /// drops it from the outbox. Returns the marks to store when they moved; they never
    /// exceed `upto`, nor what was handed out.
    pub fn handle_confirmed(&mut self, upto: Marks) -> Option<Marks> {
        let upto = upto.min(self.handed);
        while self
            .decisions
            .front()
            .is_some_and(|o| o.index < upto.decisions)
        {
            self.decisions.pop_front();
        }
        while self
            .refusals
            .front()
            .is_some_and(|d| d.refusal.is_some_and(|i| i < upto.refusals))
        {
            self.refusals.pop_front();
        }
        let marks = self.confirmed.max(upto);
        if marks == self.confirmed {
            return None;
        }
        self.confirmed = marks;
        Some(marks)
    }

    /// Everything handed out and not yet confirmed, as one batch to publish again (after
    /// a reconnect, or at start-up after recovery): no acknowledgement in it.
    pub fn unconfirmed(&self) -> Option<Batch<M>> {
        if self.decisions.is_empty() && self.refusals.is_empty() {
            return None;
        }
        let mut batch = Batch::empty(self.handed);
        batch.decisions = self.decisions.iter().cloned().collect();
        batch.dead_letters = self.refusals.iter().cloned().collect();
        Some(batch)
    }

    /// What RabbitMQ confirmed so far (everything before the outbox).
    pub fn confirmed(&self) -> Marks {
        self.confirmed
    }

    /// Decisions and refusals the engine has made (handed out or pending).
    pub fn implied(&self) -> Marks {
        self.next
    }

    /// Decisions handed out and not yet confirmed.
    pub(crate) fn unpublished(&self) -> usize {
        self.decisions.len()
    }

    /// Refusal dead letters handed out and not yet confirmed.
    pub fn undead(&self) -> usize {
        self.refusals.len()
    }

    /// Whether a commit failed (the pipeline hands nothing out any more).
    pub fn has_failed(&self) -> bool {
        self.failed
    }

    pub fn journal(&self) -> &J {
        &self.journal
    }

    /// The journal, to inject faults in tests (`MemJournal::fail_next_commit`).
    pub fn journal_mut(&mut self) -> &mut J {
        &mut self.journal
    }

    /// The latest decisions and the dead letters (the console's board).
    pub(crate) fn recent(&self) -> &Recent {
        &self.recent
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The latest time given to the engine (events' stamps, timers fired).
    pub fn high_water(&self) -> Option<Time> {
        self.high_water
    }
}

/// The error after a failed commit.
fn failed() -> JournalError {
    JournalError::Io {
        path: "(journal)".into(),
        op: "write to",
        source: std::io::Error::other("an earlier commit failed; restart to recover the journal"),
    }
}

/// What `take` decided, with the dead letter's explanation.
enum Taken {
    Dead(DeadLetterReason, String),
    Duplicate,
    Journaled {
        event_type: &'static str,
        refused: Option<Reject>,
    },
}

/// The explanation of a refusal by the rules.
pub(crate) fn refusal_detail(r: Reject) -> String {
    match r {
        Reject::UnknownOffer => "no open first-refusal offer has this offer_id for this person (never made, voided or already answered)".into(),
        Reject::LateResponse => {
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
        parties: d.parties.iter().map(Party::key).collect(),
        body,
        hold_until: (d.rule == Rule::R3_5).then_some(d.time),
    }
}
