//! The fuzz checks, shared by the cargo-fuzz targets (`fuzz/fuzz_targets/`) and their
//! stable-Rust regression test (`tests/fuzz_regressions.rs`), so that a seed committed
//! under `tests/fuzz/` is checked by exactly the code that found it.
//!
//! - [`check_envelope`]: arbitrary bytes through the paths the live service (`Core::take`,
//!   then the journal and its recovery) and `handoff replay` use to turn a message into an
//!   [`Event`]. Nothing may panic; a rejection carries a documented reason code; an accepted
//!   event survives the journal's round trip unchanged, and every decision it leads to in a
//!   fresh engine satisfies its schema.
//! - [`check_engine`]: the bytes drive a builder of *valid* event sequences (all 12 inbound
//!   types over a small pool of people, detainers, jurisdictions and offers, with timers
//!   fired between events), fed to the engine while a tracker checks the decisions against
//!   the invariants of ARCHITECTURE.md; then the same sequence is run again in a fresh engine
//!   and, written as a JSON-lines log, through `handoff::answers::replay`, and all three must agree.
//!
//! Every check returns `Err` with an explanation instead of panicking, so the regression test
//! can name the input; a panic inside handoff itself is a failure of its own.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};

use chrono::{TimeDelta, TimeZone, Utc};
use serde_json::{Value, json};

use handoff::answers::replay::{self, Lines};
use handoff::edge::envelope::{self, Invalid};
use handoff::edge::reason::DeadLetterReason;
use handoff::edge::{schemas, wire};
use handoff::journal;
use handoff_core::engine::{Engine, HOLD_LIMIT, Outcome, Whereabouts};
use handoff_core::model::{
    Answer, Basis, CriminalStatus, Custodian, Decision, DecisionBody, Event, EventBody, Factor,
    Party, Placement, Rule, Time, WritKind,
};

/// The reason codes `Invalid::code` documents: the only ones an invalid message may get.
pub const ENVELOPE_CODES: [&str; 7] = [
    "not_utf8",
    "too_deep",
    "not_json",
    "unknown_type",
    "schema",
    "subject_mismatch",
    "bad_field",
];

/// The `handoffreceived` the simulated service stamps on every message it takes.
pub fn stamp() -> Time {
    Utc.with_ymd_and_hms(2017, 1, 28, 9, 0, 0).unwrap() + TimeDelta::milliseconds(123)
}

// ---------------------------------------------------------------------------------------
// The envelope: bytes → Event.
// ---------------------------------------------------------------------------------------

/// Checks one message (an AMQP body or a log line) as described in the module docs.
pub fn check_envelope(bytes: &[u8]) -> Result<(), String> {
    // `handoff replay` reads a line with `envelope::parse_event_bytes`.
    let replayed = envelope::parse_event_bytes(bytes);
    if let Err(e) = &replayed {
        known_code(e)?;
    }
    if let Ok(event) = &replayed {
        decisions_satisfy_schemas(event)?;
    }
    if bytes.len() > handoff::live::config::Amqp::default().max_message_bytes {
        // The service dead-letters it as `oversized` before reading it.
        return Ok(());
    }
    let taken = take(bytes);
    match (&replayed, &taken) {
        (Ok(event), Err(e)) => {
            return Err(format!(
                "replay accepts what the service refuses ({}: {e}): {event:?}",
                e.code()
            ));
        }
        (_, Err(e)) => known_code(e)?,
        (Ok(event), Ok((_, taken))) => {
            // The service only adds its receipt time.
            let mut expected = event.clone();
            expected.received = Some(stamp());
            if expected != *taken {
                return Err(format!(
                    "the service and replay read the message differently:\n \
                     service: {taken:?}\n replay: {event:?}"
                ));
            }
        }
        (Err(e), Ok(_)) => {
            // The service replaces `handoffreceived` and drops `handoffcrc`, so only a
            // fault in one of those may make replay refuse what the service takes.
            let about_receipt = match e {
                Invalid::Schema(s) => {
                    s.path.starts_with("/handoffreceived") || s.path.starts_with("/handoffcrc")
                }
                Invalid::BadField { field, .. } => *field == "handoffreceived",
                _ => false,
            };
            if !about_receipt {
                return Err(format!(
                    "the service takes a message replay refuses for another reason ({}: {e})",
                    e.code()
                ));
            }
        }
    }
    if let Ok((value, event)) = &taken {
        if event.received != Some(stamp()) {
            return Err(format!("the service's receipt time was lost: {event:?}"));
        }
        journal_round_trip(value, event)?;
        decisions_satisfy_schemas(event)?;
    }
    Ok(())
}

/// What `Core::take` does with a delivery's body before authorization
/// (`envelope::received`), stamped at [`stamp`].
pub fn take(bytes: &[u8]) -> Result<(Value, Event), Invalid> {
    envelope::received(bytes, stamp())
}

/// An invalid message's reason must be documented, both by `Invalid::code` and among the
/// service's dead-letter reasons, and its explanation must not be empty.
fn known_code(e: &Invalid) -> Result<(), String> {
    let code = e.code().as_str();
    if !ENVELOPE_CODES.contains(&code) || !DeadLetterReason::codes().any(|c| c == code) {
        return Err(format!("undocumented reason code {code:?} for {e:?}"));
    }
    if e.to_string().is_empty() {
        return Err(format!("empty explanation for {e:?}"));
    }
    Ok(())
}

/// Writes the accepted message to a journal line as the service does, then reads it back
/// as recovery (`envelope::parse_event` on the checked line) and as `handoff replay` of the
/// journal (`Lines`) do. Both must give the event the engine saw.
fn journal_round_trip(value: &Value, event: &Event) -> Result<(), String> {
    let json = serde_json::to_string(value).map_err(|e| format!("cannot serialize: {e}"))?;
    let mut framed = Vec::new();
    journal::frame(&json, &mut framed);
    let line = &framed[..framed.len() - 1];
    journal::check_line(line).map_err(|e| format!("the journal's own line fails: {e}"))?;
    let text = std::str::from_utf8(line).map_err(|e| format!("journal line not UTF-8: {e}"))?;
    let recovered = envelope::parse_event(text).map_err(|e| {
        format!(
            "recovery refuses the journal line ({}): {e}\n{text}",
            e.code()
        )
    })?;
    if recovered != *event {
        return Err(format!(
            "the journal changes the event:\n before: {event:?}\n after: {recovered:?}\n{text}"
        ));
    }
    match Lines::new(&framed[..]).next() {
        Some(Ok((1, Ok(replayed)))) if replayed == *event => Ok(()),
        other => Err(format!(
            "replay of the journal line gives {other:?}, not {event:?}"
        )),
    }
}

/// Runs the event alone in a fresh engine, then lets every timer it set fire: each
/// decision must carry a rule and satisfy its schema.
fn decisions_satisfy_schemas(event: &Event) -> Result<(), String> {
    let mut engine = Engine::new();
    let mut decisions = engine.handle(event).decisions;
    let later = event
        .clock_time()
        .checked_add_signed(TimeDelta::days(30))
        .unwrap_or(event.clock_time());
    decisions.extend(engine.fire(later));
    decisions.iter().try_for_each(decision_satisfies_schema)
}

/// A decision must name a rule and its wire form must satisfy its schema.
fn decision_satisfies_schema(d: &Decision) -> Result<(), String> {
    let json = wire::decision_json(d);
    if d.rule.as_str().is_empty() {
        return Err(format!("decision without a rule: {json}"));
    }
    let value: Value =
        serde_json::from_str(&json).map_err(|e| format!("decision is not JSON: {e}: {json}"))?;
    schemas::validate_decision(&value)
        .map(|_| ())
        .map_err(|e| format!("decision fails its schema: {e}\n{json}"))
}

// ---------------------------------------------------------------------------------------
// The engine: bytes → a valid event sequence → decisions.
// ---------------------------------------------------------------------------------------

const PEOPLE: [&str; 4] = ["P-1001", "P-1002", "P-1003", "P-1004"];
const JURISDICTIONS: [&str; 3] = ["tx-travis-county", "tx-hays-county", "nv-clark-county"];
const FACILITIES: [&str; 2] = ["fci-bastrop", "fci-dublin"];
const DETAINERS: [&str; 3] = ["D-1", "D-2", "D-3"];
const ICE_SOURCE: &str = "urn:agency:ice:eagle";

/// Reads the fuzzer's bytes one choice at a time. Past the end every read is zero, so
/// every input, however short, is a valid sequence.
pub struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, pos: 0 }
    }

    fn done(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    fn byte(&mut self) -> u8 {
        let b = self.bytes.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    /// A number below `n` (which must be at most 256).
    fn below(&mut self, n: usize) -> usize {
        usize::from(self.byte()) % n
    }

    fn flag(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len())]
    }
}

/// One step of a sequence: an event handed to `Engine::handle`, or the wall clock
/// reaching a time with no traffic (`Engine::fire`).
#[derive(Debug, Clone)]
pub enum Item {
    Event(Event),
    Fire(Time),
}

/// A sequence and what the engine made of it.
pub struct Run {
    pub items: Vec<Item>,
    /// Every decision, in the order the engine gave them, the final firing included.
    pub decisions: Vec<Decision>,
    /// The outcome of each event, in order.
    pub outcomes: Vec<Outcome>,
    /// The time the clock is finally advanced to, past every deadline.
    pub end: Time,
}

/// The most events one input makes, to keep every run short.
const MAX_EVENTS: usize = 200;

/// The operation that fires timers; 0-11 are the event types in ICD order, 12 a new
/// event with an earlier `source` + `id`, 13 an earlier event delivered again.
const FIRE: usize = 14;

/// The operations a byte chooses from, weighted towards what keeps a person's story going
/// (detainers, policies that honour them, releases, answers to offers).
const OPS: [usize; 32] = [
    0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 4, 4, 4, 5, 5, 5, 6, 7, 7, 7, 8, 9, 9, 10, 10, 11, 12, 13,
    FIRE, FIRE, FIRE,
];

/// Builds a valid event sequence from `bytes` and checks the engine on it, as described in
/// the module docs.
pub fn check_engine(bytes: &[u8]) -> Result<(), String> {
    let run = build_and_run(bytes)?;
    deterministic(&run)?;
    replay_agrees(&run)
}

/// Builds events from the bytes while the engine runs (answers must name offers it made),
/// checking each decision as it comes.
pub fn build_and_run(bytes: &[u8]) -> Result<Run, String> {
    let mut b = Cursor::new(bytes);
    let mut s = Builder::new();
    while !b.done() && s.events.len() < MAX_EVENTS {
        let op = b.pick(&OPS);
        if op == FIRE {
            let f = s.fire_time(&mut b);
            s.floor = s.floor.max(f);
            s.now = s.now.max(f);
            let decisions = s.engine.fire(f);
            s.items.push(Item::Fire(f));
            s.tracker.decisions(&decisions)?;
            s.take_decisions(decisions)?;
            s.agree()?;
            continue;
        }
        let event = s.event(op, &mut b);
        s.handle(event)?;
    }
    // Past every deadline: the longest timer is R6.2's, 180 days from detention, which
    // began before now.
    let end = s.now + TimeDelta::days(181);
    let last = s.engine.fire(end);
    s.tracker.decisions(&last)?;
    s.take_decisions(last)?;
    s.agree()?;
    if !s.tracker.holds.is_empty() {
        return Err(format!(
            "holds still open at the end: {:?}",
            s.tracker.holds
        ));
    }
    if s.tracker.holds_made != s.tracker.holds_ended {
        return Err(format!(
            "{} holds made but {} ended",
            s.tracker.holds_made, s.tracker.holds_ended
        ));
    }
    if let Some(t) = s.engine.next_deadline() {
        return Err(format!("a timer is still set at the end, for {t}"));
    }
    Ok(Run {
        items: s.items,
        decisions: s.decisions,
        outcomes: s.outcomes,
        end,
    })
}

/// The same sequence in a fresh engine (with its own hash seeds) gives the same decisions.
fn deterministic(run: &Run) -> Result<(), String> {
    let mut engine = Engine::new();
    let mut again = Vec::new();
    for item in &run.items {
        match item {
            Item::Event(e) => again.extend(engine.handle(e).decisions),
            Item::Fire(t) => again.extend(engine.fire(*t)),
        }
    }
    again.extend(engine.fire(run.end));
    if again != run.decisions {
        return Err(first_difference("a second run", &run.decisions, &again));
    }
    Ok(())
}

/// The events written as a JSON-lines log and replayed with `--until` the end give the
/// decisions, byte for byte, and the notes that feeding the engine directly gave. (The
/// timers fired between events are not in a log: replay fires them at the next event.)
fn replay_agrees(run: &Run) -> Result<(), String> {
    let mut log = String::new();
    let mut expected_notes = Vec::new();
    let events = run.items.iter().filter_map(|i| match i {
        Item::Event(e) => Some(e),
        Item::Fire(_) => None,
    });
    for (n, (event, outcome)) in events.zip(&run.outcomes).enumerate() {
        let line = event_json(event);
        match envelope::parse_event(&line) {
            Ok(back) if back == *event => {}
            other => {
                return Err(format!(
                    "the builder's event does not read back: {other:?}\n{line}"
                ));
            }
        }
        log.push_str(&line);
        log.push('\n');
        if let Some(note) = replay::note_for(outcome) {
            expected_notes.push((n as u64 + 1, note));
        }
    }
    let (out, notes, summary) = replay::replay_str(&log, Some(run.end));
    let expected: String = run
        .decisions
        .iter()
        .map(|d| wire::decision_json(d) + "\n")
        .collect();
    if out != expected {
        let got: Vec<&str> = out.lines().collect();
        let want: Vec<&str> = expected.lines().collect();
        return Err(first_difference("replay of the log", &want, &got));
    }
    if notes != expected_notes {
        return Err(format!(
            "replay's notes differ:\n direct: {expected_notes:?}\n replay: {notes:?}"
        ));
    }
    if summary.invalid != 0 {
        return Err(format!("the log has invalid lines: {summary:?}"));
    }
    Ok(())
}

fn first_difference<T: std::fmt::Debug + PartialEq>(what: &str, want: &[T], got: &[T]) -> String {
    let i = want.iter().zip(got).take_while(|(a, b)| a == b).count();
    format!(
        "{what} differs at decision {i} ({} vs {} decisions):\n expected: {:?}\n got: {:?}",
        want.len(),
        got.len(),
        want.get(i),
        got.get(i)
    )
}

/// The event as a CloudEvent JSON line, the way an agency (or the journal) would send it.
pub fn event_json(e: &Event) -> String {
    let t = |t: &Time| wire::format_time(t);
    let cust = |c: &Custodian| json!({"kind": c.kind(), "id": c.id()});
    let data = match &e.body {
        EventBody::PolicyUpdated {
            jurisdiction_id,
            name,
            state,
            honors_detainers,
            return_agreement,
        } => json!({"jurisdiction_id": jurisdiction_id, "name": name, "state": state,
            "honors_detainers": honors_detainers, "return_agreement": return_agreement}),
        EventBody::DetainerIssued {
            detainer_id,
            person_id,
            custodian,
            criminal_status,
            offenses,
        } => json!({"detainer_id": detainer_id, "person_id": person_id,
            "custodian": cust(custodian), "criminal_status": criminal_status.as_str(),
            "offenses": offenses}),
        EventBody::DetainerWithdrawn {
            detainer_id,
            person_id,
        } => json!({"detainer_id": detainer_id, "person_id": person_id}),
        EventBody::ClaimLodged {
            claim_id,
            person_id,
            jurisdiction_id,
            charges,
        } => json!({"claim_id": claim_id, "person_id": person_id,
            "jurisdiction_id": jurisdiction_id, "charges": charges}),
        EventBody::BopReleaseScheduled {
            person_id,
            facility,
            release_at,
        } => json!({"person_id": person_id, "facility": facility,
            "release_at": t(release_at)}),
        EventBody::FirstRefusalResponse {
            offer_id,
            person_id,
            answer,
        } => json!({"offer_id": offer_id, "person_id": person_id,
            "decision": match answer { Answer::Accept => "accept", Answer::Decline => "decline" }}),
        EventBody::WritIssued {
            writ_id,
            person_id,
            jurisdiction_id,
            kind,
            court,
        } => json!({"writ_id": writ_id, "person_id": person_id,
        "jurisdiction_id": jurisdiction_id, "court": court,
        "kind": match kind {
            WritKind::AdProsequendum => "ad_prosequendum",
            WritKind::AdTestificandum => "ad_testificandum",
            WritKind::Other => "other",
        }}),
        EventBody::LocalReleaseDue {
            person_id,
            jurisdiction_id,
            release_at,
        } => json!({"person_id": person_id, "jurisdiction_id": jurisdiction_id,
            "release_at": t(release_at)}),
        EventBody::DetainerDeclined {
            detainer_id,
            person_id,
            jurisdiction_id,
        } => json!({"detainer_id": detainer_id, "person_id": person_id,
            "jurisdiction_id": jurisdiction_id}),
        EventBody::HoldExpired {
            person_id,
            detainer_id,
            jurisdiction_id,
        } => json!({"person_id": person_id, "detainer_id": detainer_id,
            "jurisdiction_id": jurisdiction_id}),
        EventBody::CustodyAssumed { person_id, from } => {
            json!({"person_id": person_id, "from": cust(from)})
        }
        EventBody::CapacityUpdated {
            funded_beds,
            occupied_beds,
        } => json!({"funded_beds": funded_beds, "occupied_beds": occupied_beds}),
        EventBody::RemovalStatus {
            person_id,
            country,
            foreseeable,
        } => json!({"person_id": person_id, "country": country, "foreseeable": foreseeable}),
        EventBody::ReleaseFactor { person_id, factor } => {
            json!({"person_id": person_id, "factor": factor.as_str()})
        }
    };
    let mut msg = json!({
        "specversion": "1.0",
        "id": e.id,
        "source": e.source,
        "type": e.body.type_name(),
        "time": t(&e.time),
        "datacontenttype": "application/json",
        "data": data,
    });
    if let Some(p) = e.person_id() {
        msg["subject"] = json!(p);
    }
    if let Some(r) = &e.received {
        msg["handoffreceived"] = json!(t(r));
    }
    msg.to_string()
}

/// The sequence under construction, the engine running it and the tracker checking it.
struct Builder {
    engine: Engine,
    items: Vec<Item>,
    events: Vec<Event>,
    decisions: Vec<Decision>,
    outcomes: Vec<Outcome>,
    tracker: Tracker,
    /// Every decision id seen, with the decision's JSON.
    ids: HashMap<String, String>,
    /// Every offer made, as (person, offer_id), voided and answered ones included.
    offers: Vec<(String, String)>,
    /// The latest clock time handed to the engine, by an event or a firing.
    now: Time,
    /// The latest firing: no later event may be timed before it, as in the live service,
    /// whose receipt stamps never go back past the wall clock it fired timers at.
    floor: Time,
}

impl Builder {
    fn new() -> Self {
        let start = Utc.with_ymd_and_hms(2017, 1, 28, 0, 0, 0).unwrap();
        Builder {
            engine: Engine::new(),
            items: Vec::new(),
            events: Vec::new(),
            decisions: Vec::new(),
            outcomes: Vec::new(),
            tracker: Tracker::default(),
            ids: HashMap::new(),
            offers: Vec::new(),
            now: start,
            floor: start,
        }
    }

    /// A step of the clock: mostly forwards by minutes to days, sometimes not at all,
    /// sometimes by milliseconds, sometimes backwards (never past `floor`).
    fn clock_step(&mut self, b: &mut Cursor) -> Time {
        let n = i64::from(b.byte());
        let t = match b.below(8) {
            0..=3 => self.now + TimeDelta::minutes(n),
            4 => self.now + TimeDelta::minutes(n * 30),
            5 => self.now,
            6 => self.now - TimeDelta::minutes(n),
            _ => self.now + TimeDelta::milliseconds(n),
        };
        t.max(self.floor)
    }

    /// When the wall clock fires timers: at the next deadline, just before it, or later.
    fn fire_time(&mut self, b: &mut Cursor) -> Time {
        let next = self.engine.next_deadline();
        let n = i64::from(b.byte());
        let t = match (b.below(3), next) {
            (0, Some(d)) => d,
            (1, Some(d)) => d - TimeDelta::milliseconds(1),
            _ => self.now + TimeDelta::minutes(n * 30),
        };
        t.max(self.now)
    }

    /// A release time around `t`: at it, within a few days either side, or to the minute.
    fn release_at(&mut self, t: Time, b: &mut Cursor) -> Time {
        let n = i64::from(b.byte());
        match b.below(4) {
            0 => t,
            1 => t + TimeDelta::minutes((n - 128) * 15),
            2 => t + TimeDelta::hours(n),
            _ => t - TimeDelta::minutes(n),
        }
    }

    fn custodian(b: &mut Cursor) -> Custodian {
        match b.below(6) {
            0 | 1 => Custodian::Bop(b.pick(&FACILITIES).to_owned()),
            2..=4 => Custodian::Local(b.pick(&JURISDICTIONS).to_owned()),
            _ => Custodian::Ice,
        }
    }

    /// Makes the next event: `op` picks its type (see [`OPS`]), the rest of the bytes its
    /// fields and time.
    fn event(&mut self, op: usize, b: &mut Cursor) -> Event {
        let clock = self.clock_step(b);
        let n = self.events.len();
        let p = b.pick(&PEOPLE).to_owned();
        let j = b.pick(&JURISDICTIONS).to_owned();
        let d = b.pick(&DETAINERS).to_owned();
        let jurisdiction_source = format!("urn:jurisdiction:{j}");
        let (source, body) = match op {
            0 => (
                jurisdiction_source,
                EventBody::PolicyUpdated {
                    jurisdiction_id: j,
                    name: "Test County".to_owned(),
                    state: "TX".to_owned(),
                    honors_detainers: b.below(4) != 0,
                    return_agreement: b.flag(),
                },
            ),
            1 => (
                ICE_SOURCE.to_owned(),
                EventBody::DetainerIssued {
                    detainer_id: d,
                    person_id: p,
                    custodian: Self::custodian(b),
                    criminal_status: b.pick(&[
                        CriminalStatus::Convicted,
                        CriminalStatus::Charged,
                        CriminalStatus::None,
                    ]),
                    offenses: if b.flag() {
                        vec!["burglary".to_owned()]
                    } else {
                        vec![]
                    },
                },
            ),
            2 => (
                ICE_SOURCE.to_owned(),
                EventBody::DetainerWithdrawn {
                    detainer_id: d,
                    person_id: p,
                },
            ),
            3 => (
                jurisdiction_source,
                EventBody::ClaimLodged {
                    claim_id: format!("C-{n}"),
                    person_id: p,
                    jurisdiction_id: j,
                    charges: vec!["theft".to_owned()],
                },
            ),
            4 => (
                "urn:agency:bop:sentry".to_owned(),
                EventBody::BopReleaseScheduled {
                    person_id: p,
                    facility: b.pick(&FACILITIES).to_owned(),
                    release_at: self.release_at(clock, b),
                },
            ),
            5 => {
                // The person's latest offer, any offer made (perhaps another person's), or
                // one never made.
                let latest = self.offers.iter().rev().find(|(q, _)| *q == p).cloned();
                let k = b.byte();
                let (person_id, offer_id) = match (b.below(4), latest) {
                    (0 | 1, Some(o)) => o,
                    (2, _) if !self.offers.is_empty() => {
                        self.offers[usize::from(k) % self.offers.len()].clone()
                    }
                    _ => (p, "OFFER-0".to_owned()),
                };
                (
                    ICE_SOURCE.to_owned(),
                    EventBody::FirstRefusalResponse {
                        offer_id,
                        person_id,
                        answer: if b.flag() {
                            Answer::Accept
                        } else {
                            Answer::Decline
                        },
                    },
                )
            }
            6 => (
                "urn:court:us-district-tx".to_owned(),
                EventBody::WritIssued {
                    // Sometimes a writ issued before (pending or executed) comes again.
                    writ_id: if b.below(4) == 0 {
                        format!("W-{}", b.below(3))
                    } else {
                        format!("W-{n}")
                    },
                    person_id: p,
                    jurisdiction_id: j,
                    kind: b.pick(&[
                        WritKind::AdProsequendum,
                        WritKind::AdTestificandum,
                        WritKind::Other,
                    ]),
                    court: "US District Court".to_owned(),
                },
            ),
            7 => (
                jurisdiction_source,
                EventBody::LocalReleaseDue {
                    person_id: p,
                    jurisdiction_id: j,
                    release_at: self.release_at(clock, b),
                },
            ),
            8 => (
                jurisdiction_source,
                EventBody::DetainerDeclined {
                    detainer_id: d,
                    person_id: p,
                    jurisdiction_id: j,
                },
            ),
            9 => (
                jurisdiction_source,
                EventBody::HoldExpired {
                    person_id: p,
                    detainer_id: d,
                    jurisdiction_id: j,
                },
            ),
            10 => (
                ICE_SOURCE.to_owned(),
                EventBody::CustodyAssumed {
                    person_id: p,
                    from: Self::custodian(b),
                },
            ),
            // ICE's reports: capacity, and what its detention reviews weigh (R6).
            11 => (
                ICE_SOURCE.to_owned(),
                match b.below(4) {
                    0 => EventBody::RemovalStatus {
                        person_id: p,
                        country: b.pick(&["VE", "CU", "MX"]).to_owned(),
                        foreseeable: b.flag(),
                    },
                    1 => EventBody::ReleaseFactor {
                        person_id: p,
                        factor: if b.flag() {
                            Factor::Medical
                        } else {
                            Factor::PrimaryCaretaker
                        },
                    },
                    _ => EventBody::CapacityUpdated {
                        funded_beds: u64::from(b.byte() % 5),
                        occupied_beds: u64::from(b.byte() % 6),
                    },
                },
            ),
            _ if self.events.is_empty() => (
                ICE_SOURCE.to_owned(),
                EventBody::CapacityUpdated {
                    funded_beds: 0,
                    occupied_beds: 0,
                },
            ),
            12 => {
                // An earlier `source` + `id` with a new body: a duplicate, ignored.
                let k = usize::from(b.byte()) % self.events.len();
                let fresh = self.event(b.below(12), b);
                let earlier = &self.events[k];
                return Event {
                    source: earlier.source.clone(),
                    id: earlier.id.clone(),
                    ..fresh
                };
            }
            _ => {
                // An earlier event delivered again, stamped with a later receipt time.
                let k = usize::from(b.byte()) % self.events.len();
                let mut again = self.events[k].clone();
                again.received = Some(clock);
                return again;
            }
        };
        // The clock time is `handoffreceived` (with the sender's `time` earlier) or `time`.
        let (time, received) = if b.flag() {
            (clock - TimeDelta::minutes(i64::from(b.byte())), Some(clock))
        } else {
            (clock, None)
        };
        Event {
            source,
            id: format!("e{n}"),
            time,
            received,
            body,
        }
    }

    /// Hands the event to the engine and checks what came of it.
    fn handle(&mut self, event: Event) -> Result<(), String> {
        self.now = self.now.max(event.clock_time());
        let step = self.engine.handle(&event);
        if step.outcome == Outcome::Duplicate && !step.decisions.is_empty() {
            return Err(format!("a duplicate made decisions: {:?}", step.decisions));
        }
        let clock = self.engine.clock().expect("an event sets the clock");
        self.tracker
            .step(&event, &step.outcome, clock, &step.decisions)?;
        self.outcomes.push(step.outcome.clone());
        self.items.push(Item::Event(event.clone()));
        self.events.push(event);
        self.take_decisions(step.decisions)?;
        self.tracker.counts_agree(&self.engine)?;
        self.agree()
    }

    /// Checks decisions in order and records them.
    fn take_decisions(&mut self, decisions: Vec<Decision>) -> Result<(), String> {
        for d in decisions {
            decision_satisfies_schema(&d)?;
            let json = wire::decision_json(&d);
            if let Some(before) = self.ids.insert(d.id.clone(), json.clone())
                && before != json
            {
                return Err(format!(
                    "decision id {} repeats with a different body:\n {before}\n {json}",
                    d.id
                ));
            }
            if let DecisionBody::Offer { offer_id, .. } = &d.body {
                self.offers.push((d.person_id.clone(), offer_id.clone()));
            }
            self.decisions.push(d);
        }
        Ok(())
    }

    /// The engine's view of every person equals the one the events and decisions imply.
    fn agree(&self) -> Result<(), String> {
        for p in PEOPLE {
            let (engine, tracked) = (self.engine.whereabouts(p), self.tracker.get(p));
            let same = match (&engine, &tracked) {
                (Whereabouts::Held { by: x, .. }, Whereabouts::Held { by: y, .. }) => x == y,
                _ => engine == tracked,
            };
            if !same {
                return Err(format!(
                    "engine and decisions disagree on {p}: {engine:?} vs {tracked:?}"
                ));
            }
        }
        Ok(())
    }
}

/// What the events and decisions say about each person, kept apart from the engine to
/// check it. `tests/properties.rs` uses it too. Custody changes here only as ICD section
/// 5 allows: an event names the custodian of a person who has none (never seen, or
/// released and not by a stale notice), and otherwise only a transfer or a release
/// decision moves anyone. So an engine that moved a person silently disagrees with it.
#[derive(Default)]
pub struct Tracker {
    pub whereabouts: HashMap<String, Whereabouts>,
    /// Open holds: person → (hold_from, hold_until).
    pub holds: HashMap<String, (Time, Time)>,
    pub holds_made: usize,
    pub holds_ended: usize,
    /// The `effective_at` of each person's latest release.
    pub released_at: HashMap<String, Time>,
    /// ICE's occupancy as the decisions imply it (R4): `None` until a capacity report.
    pub occupied: Option<u64>,
    /// People ICE detains (placed `detain`, not moved since).
    pub detained: HashSet<String>,
    /// ICE's funded beds, from the latest capacity report.
    pub funded: Option<u64>,
    /// Each person's latest detainer's `criminal_status` (R4.2, R6).
    pub status: HashMap<String, CriminalStatus>,
    /// Moves of detained people to ATD (R6), each freeing one bed.
    pub atd_moves: usize,
    /// Writs a transfer was decided under, by person: each at most once.
    pub executed_writs: HashSet<(String, String)>,
    /// Unsatisfied claims by person, as the jurisdictions that lodged them.
    pub claims: HashMap<String, Vec<String>>,
    /// By person, every agency other than ICE with a tie to them: a custodian that held
    /// them, a jurisdiction that lodged a claim or had a writ issued. Only these may be
    /// told of the person's decisions (ICD section 4).
    pub ties: HashMap<String, HashSet<Party>>,
}

impl Tracker {
    pub fn get(&self, p: &str) -> Whereabouts {
        self.whereabouts
            .get(p)
            .cloned()
            .unwrap_or(Whereabouts::Unknown)
    }

    fn tie(&mut self, p: &str, party: Party) {
        self.ties.entry(p.to_owned()).or_default().insert(party);
    }

    /// An event names the custodian of a person who has none.
    pub fn name(&mut self, p: &str, c: Custodian) {
        if self.current(p).is_none() {
            self.tie(p, Party::of(&c));
            self.whereabouts
                .insert(p.to_owned(), Whereabouts::Held { by: c, since: None });
        }
    }

    pub fn current(&self, p: &str) -> Option<Custodian> {
        match self.get(p) {
            Whereabouts::Held { by, .. } => Some(by),
            _ => None,
        }
    }

    /// Whether a release notice for `release_at` finds the person released at or after
    /// it (stale: it names no one).
    fn stale(&self, p: &str, release_at: Time) -> bool {
        self.get(p) == Whereabouts::Released
            && self.released_at.get(p).is_some_and(|r| release_at <= *r)
    }

    /// One event and the decisions it gave, at clock time `clock`. Checks that a
    /// released person held again by a fresh release notice is decided on again.
    pub fn step(
        &mut self,
        event: &Event,
        outcome: &Outcome,
        clock: Time,
        decisions: &[Decision],
    ) -> Result<(), String> {
        if *outcome == Outcome::Duplicate {
            return self.decisions(decisions);
        }
        // Timers due by the event's clock time fired before it (ICD section 6): their
        // decisions come first, before the first one the event caused.
        let split = decisions
            .iter()
            .position(|d| d.caused_by == event.id)
            .unwrap_or(decisions.len());
        let (timers, decisions) = decisions.split_at(split);
        self.decisions(timers)?;
        let mut decided_again = None;
        match &event.body {
            EventBody::DetainerIssued {
                person_id,
                custodian,
                criminal_status,
                ..
            } => {
                self.status.insert(person_id.clone(), *criminal_status);
                self.name(person_id, custodian.clone());
            }
            EventBody::BopReleaseScheduled {
                person_id,
                facility,
                release_at,
            } if !self.stale(person_id, *release_at) => {
                if self.get(person_id) == Whereabouts::Released {
                    decided_again = Some(person_id);
                }
                self.name(person_id, Custodian::Bop(facility.clone()));
            }
            EventBody::LocalReleaseDue {
                person_id,
                jurisdiction_id,
                release_at,
            } if !self.stale(person_id, *release_at) => {
                if self.get(person_id) == Whereabouts::Released {
                    decided_again = Some(person_id);
                }
                self.name(person_id, Custodian::Local(jurisdiction_id.clone()));
            }
            EventBody::CustodyAssumed { person_id, .. } if self.current(person_id).is_none() => {
                // A person no one holds simply comes into ICE's custody; anyone else
                // changes hands only by the decisions below (R1.7, R3.4, R4.1).
                self.whereabouts.insert(
                    person_id.clone(),
                    Whereabouts::Held {
                        by: Custodian::Ice,
                        since: Some(clock),
                    },
                );
            }
            EventBody::CapacityUpdated {
                funded_beds,
                occupied_beds,
            } => {
                self.occupied = Some(*occupied_beds);
                self.funded = Some(*funded_beds);
            }
            EventBody::ClaimLodged {
                person_id,
                jurisdiction_id,
                ..
            } => {
                self.tie(person_id, Party::Local(jurisdiction_id.as_str().into()));
                self.claims
                    .entry(person_id.clone())
                    .or_default()
                    .push(jurisdiction_id.clone());
            }
            EventBody::WritIssued {
                person_id,
                jurisdiction_id,
                ..
            } => self.tie(person_id, Party::Local(jurisdiction_id.as_str().into())),
            _ => {}
        }
        if let Some(p) = decided_again
            && !decisions.iter().any(|d| &d.person_id == p)
        {
            return Err(format!(
                "{p} was released and held again by a fresh release notice, but nothing \
                 was decided: {outcome:?}"
            ));
        }
        self.decisions(decisions)
    }

    /// Who is told (ICD section 4): the parties are sorted and distinct; they include the
    /// custodian giving the person up (or holding them) and, for a transfer, the one
    /// receiving them, and ICE for every offer, hold and placement; and no agency without
    /// a tie to the person is among them.
    fn parties_are_sound(&mut self, d: &Decision, json: &str) -> Result<(), String> {
        let p = d.person_id.as_str();
        let parties = &d.parties;
        if parties.windows(2).any(|w| w[0] >= w[1]) {
            return Err(format!(
                "parties not sorted and distinct {parties:?}: {json}"
            ));
        }
        let mut must = Vec::new();
        must.extend(self.current(p).map(|c| Party::of(&c)));
        match &d.body {
            DecisionBody::Transfer { to, .. } => {
                must.push(Party::of(to));
                // The receiver is tied to the person from now on.
                self.tie(p, Party::of(to));
            }
            DecisionBody::Offer { .. }
            | DecisionBody::Hold { .. }
            | DecisionBody::Placement { .. } => must.push(Party::Ice),
            DecisionBody::Release { .. } => {}
        }
        if let Some(missing) = must.iter().find(|m| !parties.contains(m)) {
            return Err(format!("{} is not told: {json}", missing.key()));
        }
        let ties = self.ties.get(p);
        if let Some(stranger) = parties
            .iter()
            .find(|party| **party != Party::Ice && !ties.is_some_and(|t| t.contains(*party)))
        {
            return Err(format!(
                "{} is told but has no claim, writ or custody for {p}: {json}",
                stranger.key()
            ));
        }
        Ok(())
    }

    pub fn decisions(&mut self, decisions: &[Decision]) -> Result<(), String> {
        decisions.iter().try_for_each(|d| self.decision(d))
    }

    /// ICE's occupancy as the engine counts it equals the one the decisions imply, and
    /// the R2.2 index holds exactly the unsatisfied claims of the people ICE holds (so a
    /// policy event costs what it decides, not the history behind it).
    pub fn counts_agree(&self, engine: &Engine) -> Result<(), String> {
        let ice_claims: usize = self
            .claims
            .iter()
            .filter(|(p, _)| self.current(p) == Some(Custodian::Ice))
            .map(|(_, c)| c.len())
            .sum();
        if engine.r2_2_index_len() != ice_claims {
            return Err(format!(
                "the R2.2 index holds {} claims; ICE holds people with {ice_claims}",
                engine.r2_2_index_len()
            ));
        }
        let engine_occupied = engine.capacity().map(|(_, occupied)| occupied);
        if engine_occupied != self.occupied {
            return Err(format!(
                "occupancy: engine {engine_occupied:?}, decisions imply {:?}",
                self.occupied
            ));
        }
        Ok(())
    }

    pub fn decision(&mut self, d: &Decision) -> Result<(), String> {
        let p = d.person_id.as_str();
        let json = wire::decision_json(d);
        self.parties_are_sound(d, &json)?;
        let ends_hold = matches!(d.rule, Rule::R3_4 | Rule::R3_5 | Rule::R3_6 | Rule::R3_7);
        if let Some((from, until)) = self.holds.get(p).copied() {
            // While a hold is open, only its end may be decided for the person.
            if !ends_hold {
                return Err(format!("{:?} decided during a hold: {json}", d.rule));
            }
            if let DecisionBody::Release { effective_at, .. } = &d.body {
                if *effective_at > until {
                    return Err(format!("released after hold_until {until}: {json}"));
                }
                if *effective_at < from.min(d.time) {
                    return Err(format!("released before hold_from {from}: {json}"));
                }
            }
            if d.rule == Rule::R3_5 && d.caused_by.starts_with("timer:") && d.time != until {
                return Err(format!(
                    "hold timer fired at {} not {until}: {json}",
                    d.time
                ));
            }
            self.holds.remove(p);
            self.holds_ended += 1;
        } else if ends_hold {
            return Err(format!("{:?} without an open hold: {json}", d.rule));
        }
        if let DecisionBody::Release {
            basis: Basis::HoldExpired,
            ..
        } = &d.body
            && d.rule != Rule::R3_5
        {
            return Err(format!("hold_expired release by {:?}: {json}", d.rule));
        }
        match &d.body {
            DecisionBody::Hold {
                hold_from,
                hold_until,
                ..
            } => {
                if *hold_until - *hold_from > HOLD_LIMIT || hold_until < hold_from {
                    return Err(format!("a hold longer than 48 hours, or negative: {json}"));
                }
                self.holds.insert(p.to_owned(), (*hold_from, *hold_until));
                self.holds_made += 1;
            }
            DecisionBody::Transfer {
                from,
                to,
                effective_at,
                writ_id,
                ..
            } => {
                if Some(from) != self.current(p).as_ref() {
                    return Err(format!(
                        "transfer not from the custodian {:?}: {json}",
                        self.current(p)
                    ));
                }
                if from == to {
                    return Err(format!("transfer to the same custodian: {json}"));
                }
                if let Some(w) = writ_id
                    && !self.executed_writs.insert((p.to_owned(), w.clone()))
                {
                    return Err(format!("writ {w} executed twice: {json}"));
                }
                if *from == Custodian::Ice && self.detained.remove(p) {
                    self.occupied = self.occupied.map(|o| o.saturating_sub(1));
                }
                if let Custodian::Local(j) = to
                    && let Some(claims) = self.claims.get_mut(p)
                {
                    claims.retain(|c| c != j);
                }
                self.whereabouts.insert(
                    p.to_owned(),
                    Whereabouts::Held {
                        by: to.clone(),
                        since: Some(*effective_at),
                    },
                );
            }
            DecisionBody::Release {
                from, effective_at, ..
            } => {
                if Some(from) != self.current(p).as_ref() {
                    return Err(format!(
                        "release not from the custodian {:?}: {json}",
                        self.current(p)
                    ));
                }
                if *from == Custodian::Ice && self.detained.remove(p) {
                    self.occupied = self.occupied.map(|o| o.saturating_sub(1));
                }
                self.whereabouts.insert(p.to_owned(), Whereabouts::Released);
                self.released_at.insert(p.to_owned(), *effective_at);
            }
            DecisionBody::Placement { placement, .. } => {
                if self.current(p) != Some(Custodian::Ice) {
                    return Err(format!("placed while ICE does not hold the person: {json}"));
                }
                // R6 moves a detained person to ATD (R6.3 may also place one there at
                // once): never anyone else, the convicted never by a funding review,
                // and every move frees exactly one bed.
                let review = matches!(d.rule, Rule::R6_1 | Rule::R6_2)
                    || d.rule == Rule::R6_3 && self.detained.contains(p);
                if review {
                    if *placement != Placement::Atd {
                        return Err(format!("an R6 move not to ATD: {json}"));
                    }
                    if !self.detained.remove(p) {
                        return Err(format!("moved to ATD while not detained: {json}"));
                    }
                    let status = self.status.get(p).copied();
                    if d.rule == Rule::R6_1 {
                        if status == Some(CriminalStatus::Convicted) {
                            return Err(format!(
                                "a funding review moved a convicted person: {json}"
                            ));
                        }
                        if self.occupied.zip(self.funded).is_none_or(|(o, f)| o <= f) {
                            return Err(format!(
                                "a funding review with occupancy {:?} not over {:?} funded beds: {json}",
                                self.occupied, self.funded
                            ));
                        }
                    }
                    self.occupied = self.occupied.map(|o| o.saturating_sub(1));
                    self.atd_moves += 1;
                    return Ok(());
                }
                if self.detained.contains(p) {
                    return Err(format!("placed again while ICE detains the person: {json}"));
                }
                if *placement == Placement::Detain {
                    self.detained.insert(p.to_owned());
                    self.occupied = self.occupied.map(|o| o + 1);
                }
            }
            DecisionBody::Offer { .. } => {}
        }
        Ok(())
    }
}
