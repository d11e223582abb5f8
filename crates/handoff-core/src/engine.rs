//! The decision engine: rules R1–R5 and the time rules of ICD sections 4 and 5, as a
//! plain state machine.
//!
//! It does no IO and never reads the clock. Time comes in with each event (its clock
//! time) or through [`Engine::fire`]; timers (the first-refusal deadline, the 48-hour
//! hold) are entries in a map ordered by deadline, so a caller can ask for
//! [`Engine::next_deadline`] and sleep until then. Fed the same events, it returns the
//! same decisions, byte for byte, on every machine: nothing it emits depends on hash
//! order, addresses or wall time.

use std::collections::BTreeMap;

use hashbrown::{HashMap, HashSet};

use chrono::TimeDelta;
use sha2::{Digest, Sha256};

use crate::ids;
use crate::model::{
    Answer, Basis, Condition, CriminalStatus, Custodian, Decision, DecisionBody, Event, EventBody,
    Monitoring, Placement, Rule, Time,
};

/// The legal ceiling of a detainer hold (domain.md: a flat 48 hours, never extended).
pub const HOLD_LIMIT: TimeDelta = TimeDelta::hours(48);

/// What the engine made of one event, besides the decisions it returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The event changed state (and may have produced decisions).
    Applied,
    /// `source` + `id` was seen before: nothing changed, not even the clock.
    Duplicate,
    /// The event means nothing in the person's state (R5); not an error.
    NoEffect(&'static str),
    /// The event was refused (R1: a response to an unknown, void or lapsed offer).
    Rejected(Reject),
}

/// Why a valid event was refused by the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// No open offer has this id for this person (never made, voided, or answered).
    UnknownOffer,
    /// The offer lapsed at its `respond_by` before the answer came.
    LateResponse,
}

impl Reject {
    pub fn as_str(self) -> &'static str {
        match self {
            Reject::UnknownOffer => "unknown_offer",
            Reject::LateResponse => "late_response",
        }
    }
}

/// The result of [`Engine::handle`]: the event's outcome and every decision made at
/// that moment, in decision order (timers that came due first, then the event's own).
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub outcome: Outcome,
    pub decisions: Vec<Decision>,
}

/// A jurisdiction's latest policy (ICD section 2, `jurisdiction.policy.updated`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub name: String,
    pub state: String,
    pub honors_detainers: bool,
    pub return_agreement: bool,
}

/// Where a person is, as far as handoff knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Whereabouts {
    /// No event has named a custodian yet.
    Unknown,
    Held {
        by: Custodian,
        /// When this custodian's custody took effect; `None` when it predates handoff's
        /// knowledge (the custodian was named by an event, not by a transfer).
        since: Option<Time>,
    },
    Released,
}

#[derive(Debug, Clone)]
struct Detainer {
    id: String,
    status: CriminalStatus,
}

#[derive(Debug, Clone)]
struct Claim {
    id: String,
    jurisdiction: String,
    /// Engine-wide lodge order, the key of the R2.2 index.
    seq: u64,
}

#[derive(Debug, Clone)]
struct Writ {
    id: String,
    jurisdiction: String,
}

/// An open right-of-first-refusal offer (R1.6).
#[derive(Debug, Clone)]
struct Offer {
    id: String,
    /// The claimant the offer was made against, and its claim.
    jurisdiction: String,
    claim_id: String,
    detainer_id: String,
    release_at: Time,
    timer: TimerKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OfferEnd {
    Answered,
    Lapsed,
    Void,
}

/// An active 48-hour hold (R3.3).
#[derive(Debug, Clone)]
struct Hold {
    jurisdiction: String,
    detainer_id: String,
    from: Time,
    until: Time,
    /// The id of the `handoff.hold` decision; names the timer (`timer:hold:<id>`).
    decision_id: String,
    timer: TimerKey,
}

/// Everything the rules need to know about one person.
#[derive(Debug, Clone)]
struct Person {
    whereabouts: Whereabouts,
    /// Active detainers (issued, not withdrawn), oldest first.
    detainers: Vec<Detainer>,
    /// (detainer, jurisdiction) pairs: the jurisdiction will not honor that detainer.
    declined: Vec<(String, String)>,
    /// The `criminal_status` of the latest detainer ever issued (R4).
    latest_status: CriminalStatus,
    /// Unsatisfied claims, in the order lodged; the first is "the claimant".
    claims: Vec<Claim>,
    /// Writs not yet acted on, in the order issued; the first wins.
    writs: Vec<Writ>,
    /// Boxed, like `hold`: most people never have one, and a small `Person` is cheap to
    /// move when the table grows.
    offer: Option<Box<Offer>>,
    /// Offers that are no longer open, to tell a late answer from an unknown one.
    closed_offers: Vec<(String, OfferEnd)>,
    hold: Option<Box<Hold>>,
}

impl Person {
    fn new() -> Self {
        Person {
            whereabouts: Whereabouts::Unknown,
            detainers: Vec::new(),
            declined: Vec::new(),
            latest_status: CriminalStatus::None,
            claims: Vec::new(),
            writs: Vec::new(),
            offer: None,
            closed_offers: Vec::new(),
            hold: None,
        }
    }

    fn custodian(&self) -> Option<&Custodian> {
        match &self.whereabouts {
            Whereabouts::Held { by, .. } => Some(by),
            _ => None,
        }
    }

    fn since(&self) -> Option<Time> {
        match &self.whereabouts {
            Whereabouts::Held { since, .. } => *since,
            _ => None,
        }
    }

    /// Sets the custodian if no event has named one yet (ICD section 4).
    fn name_custodian(&mut self, custodian: &Custodian) {
        if self.whereabouts == Whereabouts::Unknown {
            self.whereabouts = Whereabouts::Held {
                by: custodian.clone(),
                since: None,
            };
        }
    }

    fn latest_detainer(&self) -> Option<&Detainer> {
        self.detainers.last()
    }

    fn declined_by(&self, detainer: &str, jurisdiction: &str) -> bool {
        self.declined
            .iter()
            .any(|(d, j)| d == detainer && j == jurisdiction)
    }

    /// The latest active detainer that `jurisdiction` has not declined.
    fn honorable_detainer(&self, jurisdiction: &str) -> Option<&Detainer> {
        self.detainers
            .iter()
            .rev()
            .find(|d| !self.declined_by(&d.id, jurisdiction))
    }

    fn claimant(&self) -> Option<&Claim> {
        self.claims.first()
    }

    fn claim_of(&self, jurisdiction: &str) -> Option<&Claim> {
        self.claims.iter().find(|c| c.jurisdiction == jurisdiction)
    }

    fn close_offer(&mut self, end: OfferEnd) -> Option<Offer> {
        let offer = self.offer.take()?;
        self.closed_offers.push((offer.id.clone(), end));
        Some(*offer)
    }
}

/// Timers sort by deadline, then by the order they were set (ICD section 5).
type TimerKey = (Time, u64);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimerKind {
    FirstRefusal,
    Hold,
}

#[derive(Debug, Clone)]
struct Timer {
    person: String,
    kind: TimerKind,
}

/// ICE's detention capacity as last reported, and the beds handoff has filled since.
#[derive(Debug, Clone, Copy)]
struct Capacity {
    funded: u64,
    occupied: u64,
}

/// What caused the decisions being emitted: names them (`caused_by`) and their ids.
enum Cause<'a> {
    Event { source: &'a str, id: &'a str },
    Timer(String),
}

/// Collects the decisions of one cause, numbering them for their deterministic ids.
struct Emitter<'a> {
    cause: Cause<'a>,
    time: Time,
    n: usize,
    out: &'a mut Vec<Decision>,
}

impl Emitter<'_> {
    /// The id the next decision will get (an offer's id doubles as its `offer_id`).
    fn next_id(&self) -> String {
        match &self.cause {
            Cause::Event { source, id } => ids::decision_id_for_event(source, id, self.n),
            Cause::Timer(name) => ids::decision_id_for_timer(name, self.n),
        }
    }

    fn emit(&mut self, person_id: &str, rule: Rule, body: DecisionBody) -> String {
        let id = self.next_id();
        let caused_by = match &self.cause {
            Cause::Event { id, .. } => (*id).to_owned(),
            Cause::Timer(name) => name.clone(),
        };
        self.out.push(Decision {
            id: id.clone(),
            time: self.time,
            person_id: person_id.to_owned(),
            rule,
            caused_by,
            body,
        });
        self.n += 1;
        id
    }
}

/// A transfer about to be decided; the optional ids default to none.
struct TransferSpec {
    rule: Rule,
    to: Custodian,
    basis: Basis,
    conditions: Vec<Condition>,
    effective_at: Time,
    detainer_id: Option<String>,
    claim_id: Option<String>,
    writ_id: Option<String>,
    offer_id: Option<String>,
}

impl TransferSpec {
    fn new(rule: Rule, to: Custodian, basis: Basis, effective_at: Time) -> Self {
        TransferSpec {
            rule,
            to,
            basis,
            conditions: Vec::new(),
            effective_at,
            detainer_id: None,
            claim_id: None,
            writ_id: None,
            offer_id: None,
        }
    }
}

/// The decision engine. See the module documentation.
#[derive(Debug, Default)]
pub struct Engine {
    /// The engine's clock: the latest time seen, never moving backwards.
    clock: Option<Time>,
    /// Digests of every `source` + `id` seen (see [`event_key`]).
    seen: HashSet<u128>,
    /// Boxed: a table of a million people has two million slots, and a slot holding a
    /// pointer instead of a whole `Person` keeps the empty ones (and rehashing) cheap.
    people: HashMap<String, Box<Person>>,
    policies: HashMap<String, Policy>,
    capacity: Option<Capacity>,
    timers: BTreeMap<TimerKey, Timer>,
    /// Source of timer and claim sequence numbers.
    seq: u64,
    /// Unsatisfied claims by jurisdiction, in lodge order, for R2.2 (a policy that gains
    /// a return agreement reaches the people it concerns without scanning everyone).
    claims_by_jurisdiction: HashMap<String, BTreeMap<u64, String>>,
}

/// The duplicate-detection key of an event: the first 128 bits of SHA-256 over
/// `source`, a NUL, and `id`. A cryptographic digest keeps the set small (16 bytes an
/// event) while no publisher can craft an id that collides with another agency's.
fn event_key(source: &str, id: &str) -> u128 {
    let mut h = Sha256::new();
    h.update(source.as_bytes());
    h.update([0u8]);
    h.update(id.as_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    u128::from_be_bytes(first)
}

impl Engine {
    pub fn new() -> Self {
        Self::default()
    }

    /// The engine's clock: the latest clock time it has seen, if any.
    pub fn clock(&self) -> Option<Time> {
        self.clock
    }

    /// The earliest pending timer deadline. A live service sleeps until then and calls
    /// [`Engine::fire`].
    pub fn next_deadline(&self) -> Option<Time> {
        self.timers.keys().next().map(|(t, _)| *t)
    }

    /// A jurisdiction's latest policy, if it has published one.
    pub fn policy(&self, jurisdiction_id: &str) -> Option<&Policy> {
        self.policies.get(jurisdiction_id)
    }

    /// Where a person is, as far as the engine knows.
    pub fn whereabouts(&self, person_id: &str) -> Whereabouts {
        self.people
            .get(person_id)
            .map_or(Whereabouts::Unknown, |p| p.whereabouts.clone())
    }

    /// ICE's detention capacity as the engine sees it: `(funded_beds, occupied_beds)`
    /// from the latest `ice.capacity.updated`, occupancy counting every `detain` since
    /// (R4). `None` until a capacity is reported.
    pub fn capacity(&self) -> Option<(u64, u64)> {
        self.capacity.map(|c| (c.funded, c.occupied))
    }

    /// The number of people the engine holds state for.
    pub fn people(&self) -> usize {
        self.people.len()
    }

    /// Fires every timer with a deadline at or before `now`, in deadline order. Each
    /// decision carries its timer's deadline as `time`, so firing late (after a
    /// restart, or in replay at the next event) gives the decisions firing on time gives.
    /// The clock moves only as far as the deadlines fired, never to `now` itself: live
    /// and replayed runs then agree on the clock for every later event.
    pub fn fire(&mut self, now: Time) -> Vec<Decision> {
        let mut out = Vec::new();
        self.fire_into(now, &mut out);
        out
    }

    /// Processes one validated event at its clock time (`handoffreceived`, else `time`).
    /// Timers due by then fire first; then the event's own rules; then any timer the
    /// event set that is already overdue (a hold reported after its 48 hours had passed).
    pub fn handle(&mut self, event: &Event) -> Step {
        if !self.seen.insert(event_key(&event.source, &event.id)) {
            return Step {
                outcome: Outcome::Duplicate,
                decisions: Vec::new(),
            };
        }
        let now = match self.clock {
            Some(c) if c > event.clock_time() => c,
            _ => event.clock_time(),
        };
        let mut decisions = Vec::new();
        self.fire_into(now, &mut decisions);
        self.clock = Some(now);
        let mut emit = Emitter {
            cause: Cause::Event {
                source: &event.source,
                id: &event.id,
            },
            time: now,
            n: 0,
            out: &mut decisions,
        };
        let outcome = self.apply(now, &event.body, &mut emit);
        self.fire_into(now, &mut decisions);
        Step { outcome, decisions }
    }

    fn fire_into(&mut self, now: Time, out: &mut Vec<Decision>) {
        while let Some(entry) = self.timers.first_entry() {
            let (deadline, _) = *entry.key();
            if deadline > now {
                break;
            }
            let timer = entry.remove();
            if self.clock.is_none_or(|c| c < deadline) {
                self.clock = Some(deadline);
            }
            self.fire_timer(deadline, timer, out);
        }
    }

    fn set_timer(&mut self, deadline: Time, person: &str, kind: TimerKind) -> TimerKey {
        self.seq += 1;
        let key = (deadline, self.seq);
        self.timers.insert(
            key,
            Timer {
                person: person.to_owned(),
                kind,
            },
        );
        key
    }

    fn fire_timer(&mut self, deadline: Time, timer: Timer, out: &mut Vec<Decision>) {
        let person_id = timer.person;
        match timer.kind {
            TimerKind::FirstRefusal => {
                let Some(offer) = self.person_mut(&person_id).close_offer(OfferEnd::Lapsed) else {
                    return;
                };
                let mut emit = Emitter {
                    cause: Cause::Timer(format!("timer:first_refusal:{}", offer.id)),
                    time: deadline,
                    n: 0,
                    out,
                };
                // R1.9: no answer by respond_by; the claimant gets the person.
                let mut t = TransferSpec::new(
                    Rule::R1_9,
                    Custodian::Local(offer.jurisdiction.clone()),
                    Basis::FirstRefusalLapsed,
                    offer.release_at,
                );
                t.conditions = vec![Condition::IceDetainerForwarded];
                t.detainer_id = self.offer_detainer(&person_id, &offer);
                t.claim_id = Some(offer.claim_id.clone());
                t.offer_id = Some(offer.id.clone());
                self.transfer(&person_id, t, &mut emit);
            }
            TimerKind::Hold => {
                let Some(hold) = self.person_mut(&person_id).hold.take() else {
                    return;
                };
                let mut emit = Emitter {
                    cause: Cause::Timer(format!("timer:hold:{}", hold.decision_id)),
                    time: deadline,
                    n: 0,
                    out,
                };
                // R3.5 by the broker's own timer: released at hold_until, never later.
                self.release(
                    &person_id,
                    Rule::R3_5,
                    Basis::HoldExpired,
                    hold.until,
                    Some(hold.detainer_id),
                    &mut emit,
                );
            }
        }
    }

    /// The person's state, created on first mention. The id is hashed once, and copied
    /// only when the person is new.
    fn person_mut(&mut self, person_id: &str) -> &mut Person {
        self.people
            .entry_ref(person_id)
            .or_insert_with(|| Box::new(Person::new()))
    }

    /// Applies one event's rules at clock time `now`.
    fn apply(&mut self, now: Time, body: &EventBody, emit: &mut Emitter) -> Outcome {
        match body {
            EventBody::PolicyUpdated {
                jurisdiction_id,
                name,
                state,
                honors_detainers,
                return_agreement,
            } => {
                let policy = Policy {
                    name: name.clone(),
                    state: state.clone(),
                    honors_detainers: *honors_detainers,
                    return_agreement: *return_agreement,
                };
                let had_agreement = self
                    .policies
                    .insert(jurisdiction_id.clone(), policy)
                    .is_some_and(|p| p.return_agreement);
                if *return_agreement && !had_agreement {
                    self.r2_2_for_jurisdiction(now, jurisdiction_id, emit);
                }
                Outcome::Applied
            }
            EventBody::CapacityUpdated {
                funded_beds,
                occupied_beds,
            } => {
                self.capacity = Some(Capacity {
                    funded: *funded_beds,
                    occupied: *occupied_beds,
                });
                Outcome::Applied
            }
            EventBody::DetainerIssued {
                detainer_id,
                person_id,
                custodian,
                criminal_status,
                ..
            } => {
                let p = self.person_mut(person_id);
                p.name_custodian(custodian);
                p.latest_status = *criminal_status;
                match p.detainers.iter_mut().find(|d| &d.id == detainer_id) {
                    Some(d) => d.status = *criminal_status,
                    None => p.detainers.push(Detainer {
                        id: detainer_id.clone(),
                        status: *criminal_status,
                    }),
                }
                Outcome::Applied
            }
            EventBody::DetainerWithdrawn {
                detainer_id,
                person_id,
            } => self.detainer_withdrawn(now, person_id, detainer_id, emit),
            EventBody::ClaimLodged {
                claim_id,
                person_id,
                jurisdiction_id,
                ..
            } => {
                self.seq += 1;
                let seq = self.seq;
                self.person_mut(person_id).claims.push(Claim {
                    id: claim_id.clone(),
                    jurisdiction: jurisdiction_id.clone(),
                    seq,
                });
                self.claims_by_jurisdiction
                    .entry(jurisdiction_id.clone())
                    .or_default()
                    .insert(seq, person_id.clone());
                if self.stance(jurisdiction_id).1 {
                    self.r2_2(now, person_id, jurisdiction_id, emit);
                }
                Outcome::Applied
            }
            EventBody::BopReleaseScheduled {
                person_id,
                facility,
                release_at,
            } => self.bop_release(now, person_id, facility, *release_at, emit),
            EventBody::FirstRefusalResponse {
                offer_id,
                person_id,
                answer,
            } => self.first_refusal_response(person_id, offer_id, *answer, emit),
            EventBody::WritIssued {
                writ_id,
                person_id,
                jurisdiction_id,
                ..
            } => self.writ(now, person_id, writ_id, jurisdiction_id, emit),
            EventBody::LocalReleaseDue {
                person_id,
                jurisdiction_id,
                release_at,
            } => self.local_release(person_id, jurisdiction_id, *release_at, emit),
            EventBody::DetainerDeclined {
                detainer_id,
                person_id,
                jurisdiction_id,
            } => self.detainer_declined(now, person_id, detainer_id, jurisdiction_id, emit),
            EventBody::HoldExpired {
                person_id,
                jurisdiction_id,
                ..
            } => {
                let Some(p) = self.people.get_mut(person_id.as_str()) else {
                    return Outcome::NoEffect("no hold in progress");
                };
                if p.hold
                    .as_ref()
                    .is_none_or(|h| &h.jurisdiction != jurisdiction_id)
                {
                    return Outcome::NoEffect("no hold in progress at this jurisdiction");
                }
                let hold = p.hold.take().expect("checked above");
                self.timers.remove(&hold.timer);
                // R3.5 by the jurisdiction's report: at the clock, but never after hold_until.
                self.release(
                    person_id,
                    Rule::R3_5,
                    Basis::HoldExpired,
                    now.min(hold.until),
                    Some(hold.detainer_id),
                    emit,
                );
                Outcome::Applied
            }
            EventBody::CustodyAssumed { person_id, .. } => {
                self.custody_assumed(now, person_id, emit);
                Outcome::Applied
            }
        }
    }

    /// Whether a jurisdiction honors detainers and has a return agreement, in that
    /// order, by its latest policy. A jurisdiction never heard of does neither (ICD
    /// section 4); reports and explanations ask here rather than reading `policy` and
    /// repeating that default.
    pub fn stance(&self, jurisdiction_id: &str) -> (bool, bool) {
        self.policies
            .get(jurisdiction_id)
            .map_or((false, false), |p| (p.honors_detainers, p.return_agreement))
    }

    /// R1: BOP schedules a release.
    fn bop_release(
        &mut self,
        now: Time,
        person_id: &str,
        facility: &str,
        release_at: Time,
        emit: &mut Emitter,
    ) -> Outcome {
        let p = self.person_mut(person_id);
        p.name_custodian(&Custodian::Bop(facility.to_owned()));
        if !matches!(p.custodian(), Some(Custodian::Bop(_))) {
            return Outcome::NoEffect("person is not held by BOP");
        }
        if p.offer.is_some() {
            return Outcome::NoEffect("a first-refusal offer is already open");
        }
        let detainer = p.latest_detainer().map(|d| d.id.clone());
        // R1.1: a writ, whoever holds it, decides first; the earliest writ wins.
        if let Some(writ) = p.writs.first().cloned() {
            p.writs.remove(0);
            let mut t = TransferSpec::new(
                Rule::R1_1,
                Custodian::Local(writ.jurisdiction.clone()),
                Basis::JudicialWrit,
                release_at,
            );
            if detainer.is_some() {
                t.conditions = vec![Condition::IceDetainerForwarded];
            }
            t.detainer_id = detainer;
            t.claim_id = p.claim_of(&writ.jurisdiction).map(|c| c.id.clone());
            t.writ_id = Some(writ.id);
            self.transfer(person_id, t, emit);
            return Outcome::Applied;
        }
        let claimant = p.claimant().cloned();
        match (detainer, claimant) {
            // R1.2: ICE wants the person and no one else does.
            (Some(d), None) => {
                let mut t =
                    TransferSpec::new(Rule::R1_2, Custodian::Ice, Basis::Detainer, release_at);
                t.detainer_id = Some(d);
                self.transfer(person_id, t, emit);
            }
            // R1.3: only the claimant wants the person.
            (None, Some(c)) => {
                let mut t = TransferSpec::new(
                    Rule::R1_3,
                    Custodian::Local(c.jurisdiction),
                    Basis::LocalClaim,
                    release_at,
                );
                t.claim_id = Some(c.id);
                self.transfer(person_id, t, emit);
            }
            // R1.4: no one does; the sentence is complete.
            (None, None) => {
                self.release(
                    person_id,
                    Rule::R1_4,
                    Basis::SentenceComplete,
                    release_at,
                    None,
                    emit,
                );
            }
            (Some(d), Some(c)) => {
                let (honors, agreement) = self.stance(&c.jurisdiction);
                if agreement {
                    // R1.5: the claimant has promised to return the person to ICE.
                    let mut t = TransferSpec::new(
                        Rule::R1_5,
                        Custodian::Local(c.jurisdiction),
                        Basis::ReturnAgreement,
                        release_at,
                    );
                    t.conditions = vec![
                        Condition::IceDetainerForwarded,
                        Condition::ReturnToIceBeforeRelease,
                    ];
                    t.detainer_id = Some(d);
                    t.claim_id = Some(c.id);
                    self.transfer(person_id, t, emit);
                } else {
                    // R1.6: offer ICE the first refusal under the BOP MOU.
                    let respond_by = release_at.max(now);
                    let offer_id = emit.next_id();
                    let timer = self.set_timer(respond_by, person_id, TimerKind::FirstRefusal);
                    emit.emit(
                        person_id,
                        Rule::R1_6,
                        DecisionBody::Offer {
                            offer_id: offer_id.clone(),
                            jurisdiction_id: c.jurisdiction.clone(),
                            jurisdiction_honors_detainers: honors,
                            respond_by,
                            detainer_id: d.clone(),
                        },
                    );
                    self.person_mut(person_id).offer = Some(Box::new(Offer {
                        id: offer_id,
                        jurisdiction: c.jurisdiction,
                        claim_id: c.id,
                        detainer_id: d,
                        release_at,
                        timer,
                    }));
                }
            }
        }
        Outcome::Applied
    }

    /// The detainer to cite for an offer's outcome: the offer's own if still active,
    /// else the latest active one.
    fn offer_detainer(&self, person_id: &str, offer: &Offer) -> Option<String> {
        let p = self.people.get(person_id)?;
        if p.detainers.iter().any(|d| d.id == offer.detainer_id) {
            return Some(offer.detainer_id.clone());
        }
        p.latest_detainer().map(|d| d.id.clone())
    }

    /// R1.7 and R1.8: ICE answers an open offer before its deadline.
    fn first_refusal_response(
        &mut self,
        person_id: &str,
        offer_id: &str,
        answer: Answer,
        emit: &mut Emitter,
    ) -> Outcome {
        let Some(p) = self.people.get_mut(person_id) else {
            return Outcome::Rejected(Reject::UnknownOffer);
        };
        if p.offer.as_ref().is_none_or(|o| o.id != offer_id) {
            let lapsed = p
                .closed_offers
                .iter()
                .any(|(id, end)| id == offer_id && *end == OfferEnd::Lapsed);
            return Outcome::Rejected(if lapsed {
                Reject::LateResponse
            } else {
                Reject::UnknownOffer
            });
        }
        // Timers due by now have fired before this event, so an open offer is in time.
        let offer = p.close_offer(OfferEnd::Answered).expect("checked above");
        self.timers.remove(&offer.timer);
        let detainer_id = self.offer_detainer(person_id, &offer);
        let mut t = match answer {
            Answer::Accept => TransferSpec::new(
                Rule::R1_7,
                Custodian::Ice,
                Basis::FirstRefusalAccepted,
                offer.release_at,
            ),
            Answer::Decline => {
                let mut t = TransferSpec::new(
                    Rule::R1_8,
                    Custodian::Local(offer.jurisdiction.clone()),
                    Basis::FirstRefusalDeclined,
                    offer.release_at,
                );
                t.conditions = vec![Condition::IceDetainerForwarded];
                t.claim_id = Some(offer.claim_id.clone());
                t
            }
        };
        t.detainer_id = detainer_id;
        t.offer_id = Some(offer.id);
        self.transfer(person_id, t, emit);
        Outcome::Applied
    }

    /// `court.writ.issued`: R1.10 during an open offer, R2.1 for a person ICE holds;
    /// otherwise the writ waits for the release it will decide (R1.1).
    fn writ(
        &mut self,
        now: Time,
        person_id: &str,
        writ_id: &str,
        jurisdiction_id: &str,
        emit: &mut Emitter,
    ) -> Outcome {
        let p = self.person_mut(person_id);
        if p.whereabouts == Whereabouts::Released {
            return Outcome::NoEffect("person has been released");
        }
        let to = Custodian::Local(jurisdiction_id.to_owned());
        let claim_id = p.claim_of(jurisdiction_id).map(|c| c.id.clone());
        if let Some(offer) = p.close_offer(OfferEnd::Void) {
            // R1.10: the writ voids the offer and takes the person.
            self.timers.remove(&offer.timer);
            let mut t = TransferSpec::new(Rule::R1_10, to, Basis::JudicialWrit, offer.release_at);
            t.conditions = vec![Condition::IceDetainerForwarded];
            t.detainer_id = self.offer_detainer(person_id, &offer);
            t.claim_id = claim_id;
            t.writ_id = Some(writ_id.to_owned());
            t.offer_id = Some(offer.id);
            self.transfer(person_id, t, emit);
        } else if p.custodian() == Some(&Custodian::Ice) {
            // R2.1: a writ takes the person out of ICE custody, to come back afterwards.
            let effective_at = p.since().map_or(now, |s| s.max(now));
            let mut t = TransferSpec::new(Rule::R2_1, to, Basis::JudicialWrit, effective_at);
            t.conditions = vec![Condition::ReturnToIceAfterProceedings];
            t.claim_id = claim_id;
            t.writ_id = Some(writ_id.to_owned());
            self.transfer(person_id, t, emit);
        } else {
            p.writs.push(Writ {
                id: writ_id.to_owned(),
                jurisdiction: jurisdiction_id.to_owned(),
            });
        }
        Outcome::Applied
    }

    /// R2.2 for everyone ICE holds whose claimant is `jurisdiction_id`, in lodge order.
    fn r2_2_for_jurisdiction(&mut self, now: Time, jurisdiction_id: &str, emit: &mut Emitter) {
        let Some(claims) = self.claims_by_jurisdiction.get(jurisdiction_id) else {
            return;
        };
        let people: Vec<String> = claims.values().cloned().collect();
        for person_id in people {
            self.r2_2(now, &person_id, jurisdiction_id, emit);
        }
    }

    /// R2.2: ICE holds the person and the claimant, `jurisdiction_id`, has a return
    /// agreement: the claimant gets the person and returns them to ICE before release.
    fn r2_2(&mut self, now: Time, person_id: &str, jurisdiction_id: &str, emit: &mut Emitter) {
        let Some(p) = self.people.get(person_id) else {
            return;
        };
        if p.custodian() != Some(&Custodian::Ice) {
            return;
        }
        let Some(claim) = p.claimant().filter(|c| c.jurisdiction == jurisdiction_id) else {
            return;
        };
        let effective_at = p.since().map_or(now, |s| s.max(now));
        let mut t = TransferSpec::new(
            Rule::R2_2,
            Custodian::Local(jurisdiction_id.to_owned()),
            Basis::ReturnAgreement,
            effective_at,
        );
        t.conditions = vec![Condition::ReturnToIceBeforeRelease];
        t.claim_id = Some(claim.id.clone());
        self.transfer(person_id, t, emit);
    }

    /// R3: a jurisdiction would release the person it holds.
    fn local_release(
        &mut self,
        person_id: &str,
        jurisdiction_id: &str,
        release_at: Time,
        emit: &mut Emitter,
    ) -> Outcome {
        let (honors, _) = self.stance(jurisdiction_id);
        let here = Custodian::Local(jurisdiction_id.to_owned());
        let p = self.person_mut(person_id);
        p.name_custodian(&here);
        if p.custodian() != Some(&here) {
            return Outcome::NoEffect("person is not held by this jurisdiction");
        }
        if p.hold.is_some() {
            return Outcome::NoEffect("a hold is already in progress");
        }
        let Some(latest) = p.latest_detainer().map(|d| d.id.clone()) else {
            // R3.1: nothing stands in the way of release.
            self.release(
                person_id,
                Rule::R3_1,
                Basis::SentenceComplete,
                release_at,
                None,
                emit,
            );
            return Outcome::Applied;
        };
        let honorable = p.honorable_detainer(jurisdiction_id).map(|d| d.id.clone());
        match honorable.filter(|_| honors) {
            None => {
                // R3.2: a declined detainer; released at the normal time.
                self.release(
                    person_id,
                    Rule::R3_2,
                    Basis::DetainerDeclined,
                    release_at,
                    Some(latest),
                    emit,
                );
            }
            Some(detainer_id) => {
                // R3.3: the jurisdiction holds the person for ICE, 48 hours at most.
                let until = release_at + HOLD_LIMIT;
                let decision_id = emit.emit(
                    person_id,
                    Rule::R3_3,
                    DecisionBody::Hold {
                        jurisdiction_id: jurisdiction_id.to_owned(),
                        detainer_id: detainer_id.clone(),
                        hold_from: release_at,
                        hold_until: until,
                    },
                );
                let timer = self.set_timer(until, person_id, TimerKind::Hold);
                self.person_mut(person_id).hold = Some(Box::new(Hold {
                    jurisdiction: jurisdiction_id.to_owned(),
                    detainer_id,
                    from: release_at,
                    until,
                    decision_id,
                    timer,
                }));
            }
        }
        Outcome::Applied
    }

    /// `ice.detainer.withdrawn`: R1.11 during an offer, R3.6 during a hold.
    fn detainer_withdrawn(
        &mut self,
        now: Time,
        person_id: &str,
        detainer_id: &str,
        emit: &mut Emitter,
    ) -> Outcome {
        let Some(p) = self.people.get_mut(person_id) else {
            return Outcome::NoEffect("no such active detainer");
        };
        let Some(pos) = p.detainers.iter().position(|d| d.id == detainer_id) else {
            return Outcome::NoEffect("no such active detainer");
        };
        p.detainers.remove(pos);
        if p.offer.is_some() && p.detainers.is_empty() {
            // R1.11: without a detainer there is nothing to offer ICE; the claimant gets
            // the person.
            let offer = p.close_offer(OfferEnd::Void).expect("checked above");
            self.timers.remove(&offer.timer);
            let mut t = TransferSpec::new(
                Rule::R1_11,
                Custodian::Local(offer.jurisdiction.clone()),
                Basis::LocalClaim,
                offer.release_at,
            );
            t.claim_id = Some(offer.claim_id.clone());
            t.offer_id = Some(offer.id);
            self.transfer(person_id, t, emit);
        } else if p
            .hold
            .as_ref()
            .is_some_and(|h| h.detainer_id == detainer_id)
        {
            self.end_hold_for_detainer(now, person_id, Rule::R3_6, Basis::DetainerWithdrawn, emit);
        }
        Outcome::Applied
    }

    /// `local.detainer.declined`: recorded for R3.2, and R3.7 during that jurisdiction's
    /// hold on that detainer.
    fn detainer_declined(
        &mut self,
        now: Time,
        person_id: &str,
        detainer_id: &str,
        jurisdiction_id: &str,
        emit: &mut Emitter,
    ) -> Outcome {
        let Some(p) = self.people.get_mut(person_id) else {
            return Outcome::NoEffect("no such active detainer");
        };
        if !p.detainers.iter().any(|d| d.id == detainer_id) {
            return Outcome::NoEffect("no such active detainer");
        }
        if !p.declined_by(detainer_id, jurisdiction_id) {
            p.declined
                .push((detainer_id.to_owned(), jurisdiction_id.to_owned()));
        }
        if p.hold
            .as_ref()
            .is_some_and(|h| h.detainer_id == detainer_id && h.jurisdiction == jurisdiction_id)
        {
            self.end_hold_for_detainer(now, person_id, Rule::R3_7, Basis::DetainerDeclined, emit);
        }
        Outcome::Applied
    }

    /// The detainer a hold rests on is gone (withdrawn or declined). If another active
    /// detainer the holder honors remains, the hold goes on under it, with the same
    /// `hold_until` (a hold is never extended); otherwise the person is released.
    fn end_hold_for_detainer(
        &mut self,
        now: Time,
        person_id: &str,
        rule: Rule,
        basis: Basis,
        emit: &mut Emitter,
    ) {
        let p = self.person_mut(person_id);
        let hold = p.hold.as_mut().expect("caller checked the hold");
        let other = p
            .detainers
            .iter()
            .rev()
            .find(|d| {
                d.id != hold.detainer_id
                    && !p
                        .declined
                        .iter()
                        .any(|(x, j)| x == &d.id && j == &hold.jurisdiction)
            })
            .map(|d| d.id.clone());
        if let Some(other) = other {
            hold.detainer_id = other;
            return;
        }
        let hold = p.hold.take().expect("checked above");
        self.timers.remove(&hold.timer);
        self.release(
            person_id,
            rule,
            basis,
            now.max(hold.from),
            Some(hold.detainer_id),
            emit,
        );
    }

    /// `ice.custody.assumed`: R3.4 during a hold, then R4 placement, always.
    fn custody_assumed(&mut self, now: Time, person_id: &str, emit: &mut Emitter) {
        let p = self.person_mut(person_id);
        // ICE took the person while its first refusal was still open: the offer is moot,
        // and the claim stays for R2.
        let offer = p.close_offer(OfferEnd::Void);
        let hold = p.hold.take();
        let since = p.since();
        if let Some(offer) = offer {
            self.timers.remove(&offer.timer);
        }
        if let Some(hold) = hold {
            self.timers.remove(&hold.timer);
            // R3.4: ICE came within the 48 hours.
            let effective_at = since.map_or(now, |s| s.max(now));
            let mut t = TransferSpec::new(
                Rule::R3_4,
                Custodian::Ice,
                Basis::DetainerHold,
                effective_at,
            );
            t.detainer_id = Some(hold.detainer_id);
            self.transfer(person_id, t, emit);
        }
        let p = self.person_mut(person_id);
        if p.custodian() != Some(&Custodian::Ice) {
            p.whereabouts = Whereabouts::Held {
                by: Custodian::Ice,
                since: Some(now),
            };
        }
        let status = p.latest_status;
        // R4: detain while beds last; past capacity, only the convicted stay detained.
        let under = self.capacity.is_none_or(|c| c.occupied < c.funded);
        let (placement, monitoring, basis) = match (under, status) {
            (_, CriminalStatus::Convicted) => (Placement::Detain, None, Basis::PriorityDetention),
            (true, _) => (Placement::Detain, None, Basis::Detainer),
            (false, CriminalStatus::Charged) => (
                Placement::Atd,
                Some(Monitoring::AnkleMonitor),
                Basis::Capacity,
            ),
            (false, CriminalStatus::None) => (
                Placement::Atd,
                Some(Monitoring::Telephonic),
                Basis::Capacity,
            ),
        };
        if placement == Placement::Detain
            && let Some(c) = self.capacity.as_mut()
        {
            c.occupied += 1;
        }
        emit.emit(
            person_id,
            Rule::R4,
            DecisionBody::Placement {
                placement,
                monitoring,
                basis,
            },
        );
    }

    /// Decides a transfer from the person's current custodian and moves them.
    fn transfer(&mut self, person_id: &str, t: TransferSpec, emit: &mut Emitter) {
        let p = self.person_mut(person_id);
        let from = p
            .custodian()
            .cloned()
            .expect("a transfer is only decided for a person someone holds");
        p.whereabouts = Whereabouts::Held {
            by: t.to.clone(),
            since: Some(t.effective_at),
        };
        if let Custodian::Local(j) = &t.to {
            self.satisfy_claims(person_id, j);
        }
        emit.emit(
            person_id,
            t.rule,
            DecisionBody::Transfer {
                from,
                to: t.to,
                basis: t.basis,
                conditions: t.conditions,
                effective_at: t.effective_at,
                detainer_id: t.detainer_id,
                claim_id: t.claim_id,
                writ_id: t.writ_id,
                offer_id: t.offer_id,
            },
        );
    }

    /// Decides a release from the person's current custodian.
    fn release(
        &mut self,
        person_id: &str,
        rule: Rule,
        basis: Basis,
        effective_at: Time,
        detainer_id: Option<String>,
        emit: &mut Emitter,
    ) {
        let p = self.person_mut(person_id);
        let from = p
            .custodian()
            .cloned()
            .expect("a release is only decided for a person someone holds");
        p.whereabouts = Whereabouts::Released;
        emit.emit(
            person_id,
            rule,
            DecisionBody::Release {
                from,
                basis,
                effective_at,
                detainer_id,
            },
        );
    }

    /// A transfer to a jurisdiction satisfies all of its claims on the person.
    fn satisfy_claims(&mut self, person_id: &str, jurisdiction_id: &str) {
        let p = self.person_mut(person_id);
        let mut satisfied = Vec::new();
        p.claims.retain(|c| {
            let keep = c.jurisdiction != jurisdiction_id;
            if !keep {
                satisfied.push(c.seq);
            }
            keep
        });
        if let Some(index) = self.claims_by_jurisdiction.get_mut(jurisdiction_id) {
            for seq in satisfied {
                index.remove(&seq);
            }
            if index.is_empty() {
                self.claims_by_jurisdiction.remove(jurisdiction_id);
            }
        }
    }
}
