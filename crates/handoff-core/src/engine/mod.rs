//! The decision engine: rules R1–R6 and the time rules of ICD sections 4 and 5, as a
//! plain state machine.
//!
//! It does no IO and never reads the clock. Time comes in with each event (its clock
//! time) or through [`Engine::fire`]; timers (the first-refusal deadline, the 48-hour
//! hold) are entries in a map ordered by deadline, so a caller can ask for
//! [`Engine::next_deadline`] and sleep until then. Fed the same events, it returns the
//! same decisions, byte for byte, on every machine: nothing it emits depends on hash
//! order, addresses or wall time.
//!
//! Layout: this file holds the public API and the dispatch, one method per event type;
//! an event that can fire rules of several families (a withdrawn detainer, a writ, ICE
//! taking custody) is decided here by calling into them. `person` is the state per
//! person and `ice.detainer.issued`; `timers` the deadline map; `custody` the emitter
//! and the only two places custody changes hands; `r1` ... `r4` and `r6` (detention
//! reviews) the rules, each decided in its own file (search for `R1.6` to find where R1.6 is decided). Every decision
//! carries the facts its rule used ([`Why`](crate::why::Why)), filled in where it fires.

mod custody;
mod parties;
mod people;
mod person;
mod r1;
mod r2;
mod r3;
mod r4;
mod r6;
mod timers;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::TimeDelta;
use hashbrown::{HashMap, HashSet};
use sha2::{Digest, Sha256};

use crate::model::{Custodian, Decision, Event, EventBody, Time};
use crate::why::WritFacts;
use custody::{Cause, Emitter};
use people::People;
use person::{Holder, OfferEnd, Place, Writ};
use r4::Capacity;
use r6::ReviewKey;
use timers::{Timer, TimerKey};

/// The legal ceiling of a detainer hold (domain.md: a flat 48 hours, never extended).
pub const HOLD_LIMIT: TimeDelta = TimeDelta::hours(48);

pub use r6::PROLONGED;
pub use timers::{OpenHold, OpenOffer};

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

/// The decision engine. See the module documentation.
#[derive(Debug, Default)]
pub struct Engine {
    /// The engine's clock: the latest time seen, never moving backwards.
    clock: Option<Time>,
    /// Digests of every `source` + `id` seen (see [`event_key`]).
    seen: HashSet<EventKey>,
    people: People,
    /// Every distinct jurisdiction id and offense list, shared by the claims, declines,
    /// holds and detainers that name them instead of copied into each.
    names: HashSet<Arc<str>>,
    offense_lists: HashSet<Arc<[String]>>,
    policies: HashMap<String, Policy>,
    capacity: Option<Capacity>,
    timers: BTreeMap<TimerKey, Timer>,
    /// Source of timer and claim sequence numbers.
    seq: u64,
    /// The R2.2 index: by jurisdiction, in lodge order, the unsatisfied claims of people
    /// ICE holds, and nothing else. A policy that gains a return agreement reaches
    /// exactly the people R2.2 can move, so its cost is the decisions it makes, not the
    /// history behind it. Kept by [`Engine::move_person`] and the claim events.
    ice_claims: HashMap<String, BTreeMap<u64, Arc<str>>>,
    /// The R6.1 index: the detained people a funding review may move, in its order.
    review: BTreeSet<ReviewKey>,
}

/// The duplicate-detection key of an event (see [`event_key`]).
type EventKey = [u32; 3];

/// The duplicate-detection key of an event: the first 96 bits of SHA-256 over `source`,
/// a NUL, and `id`. A cryptographic digest keeps the set small (12 bytes an event: a
/// ten-million-event journal's set is about 220 MB) while no publisher can craft an id
/// that collides with another agency's; two honest ids collide with probability about
/// n²/2⁹⁷, 10⁻¹⁵ for ten million events.
fn event_key(source: &str, id: &str) -> EventKey {
    let mut h = Sha256::new();
    h.update(source.as_bytes());
    h.update([0u8]);
    h.update(id.as_bytes());
    let digest = h.finalize();
    let word = |i: usize| u32::from_be_bytes(digest[i..i + 4].try_into().expect("4 bytes"));
    [word(0), word(4), word(8)]
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

    /// Whether a jurisdiction honors detainers and has a return agreement, in that
    /// order, by its latest policy. A jurisdiction never heard of does neither (ICD
    /// section 4); reports ask here rather than reading `policy` and repeating that
    /// default.
    pub fn stance(&self, jurisdiction_id: &str) -> (bool, bool) {
        self.policies
            .get(jurisdiction_id)
            .map_or((false, false), |p| (p.honors_detainers, p.return_agreement))
    }

    /// Where a person is, as far as the engine knows.
    pub fn whereabouts(&self, person_id: &str) -> Whereabouts {
        self.people
            .get(person_id)
            .map_or(Whereabouts::Unknown, |p| p.place.whereabouts())
    }

    /// ICE's detention capacity as the engine sees it: `(funded_beds, occupied_beds)`
    /// from the latest `ice.capacity.updated`, occupancy counting every `detain` since
    /// and every detained person who left detention since (R4). `None` until a capacity
    /// is reported.
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

    /// The shared copy of a jurisdiction id (see `names`).
    pub(super) fn name(&mut self, s: &str) -> Arc<str> {
        if let Some(n) = self.names.get(s) {
            return n.clone();
        }
        let n: Arc<str> = s.into();
        self.names.insert(n.clone());
        n
    }

    /// The shared copy of an offense list (see `offense_lists`).
    pub(super) fn offense_list(&mut self, offenses: &[String]) -> Arc<[String]> {
        if let Some(l) = self.offense_lists.get(offenses) {
            return l.clone();
        }
        let l: Arc<[String]> = offenses.into();
        self.offense_lists.insert(l.clone());
        l
    }

    /// The number of people ICE holds with an unsatisfied claim, counted once per claim:
    /// the size of the R2.2 index (for tests and benchmarks of its cost).
    pub fn r2_2_index_len(&self) -> usize {
        self.ice_claims.values().map(BTreeMap::len).sum()
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

    /// Applies one event's rules at clock time `now`: one method per event type.
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
                self.policy_updated(now, jurisdiction_id, policy, emit)
            }
            EventBody::CapacityUpdated {
                funded_beds,
                occupied_beds,
            } => {
                self.capacity_updated(*funded_beds, *occupied_beds);
                self.funding_review(emit);
                Outcome::Applied
            }
            EventBody::DetainerIssued {
                detainer_id,
                person_id,
                custodian,
                criminal_status,
                offenses,
            } => {
                self.reviewed(person_id, |e| {
                    e.detainer_issued(
                        person_id,
                        detainer_id,
                        custodian,
                        *criminal_status,
                        offenses,
                    )
                });
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
            } => self.claim_lodged(now, person_id, claim_id, jurisdiction_id, emit),
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
                court,
                ..
            } => {
                let writ = Writ {
                    id: writ_id.as_str().into(),
                    jurisdiction: jurisdiction_id.clone(),
                    court: court.as_str().into(),
                };
                self.writ_issued(now, person_id, writ, emit)
            }
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
            } => self.hold_expired(now, person_id, jurisdiction_id, emit),
            EventBody::CustodyAssumed { person_id, .. } => {
                self.custody_assumed(now, person_id, emit);
                Outcome::Applied
            }
            EventBody::RemovalStatus {
                person_id,
                country,
                foreseeable,
            } => {
                let removal = crate::why::Removal {
                    country: self.name(country),
                    foreseeable: *foreseeable,
                };
                self.removal_status(now, person_id, removal, emit);
                Outcome::Applied
            }
            EventBody::ReleaseFactor { person_id, factor } => {
                self.release_factor(person_id, *factor, emit);
                Outcome::Applied
            }
        }
    }

    /// `ice.detainer.withdrawn`: R1.11 when it leaves an open offer without a detainer,
    /// R3.6 when a hold rested on it (and no other detainer can carry the hold).
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
        let Some(pos) = p.detainers.iter().position(|d| &*d.id == detainer_id) else {
            return Outcome::NoEffect("no such active detainer");
        };
        let withdrawn = p.detainers.remove(pos);
        if p.offer.is_some() && p.detainers.is_empty() {
            let offer = p.close_offer(OfferEnd::Void).expect("checked above");
            self.r1_11(person_id, offer, emit);
        } else if p
            .hold
            .as_ref()
            .is_some_and(|h| &*h.detainer_id == detainer_id)
        {
            self.r3_6(now, person_id, withdrawn.facts(), emit);
        }
        Outcome::Applied
    }

    /// `court.writ.issued`: R1.10 during an open offer, R2.1 for a person ICE holds;
    /// otherwise the writ waits for the release it will decide (R1.1). A writ is
    /// executed once: one issued again, or for a released person, changes nothing.
    fn writ_issued(
        &mut self,
        now: Time,
        person_id: &str,
        writ: Writ,
        emit: &mut Emitter,
    ) -> Outcome {
        let p = self.person_mut(person_id);
        if p.released() {
            return Outcome::NoEffect("person has been released");
        }
        if p.executed(&writ.id) {
            return Outcome::NoEffect("writ already executed");
        }
        if p.knows_writ(&writ.id) {
            return Outcome::NoEffect("writ already issued");
        }
        if let Some(offer) = p.close_offer(OfferEnd::Void) {
            self.r1_10(person_id, offer, writ, emit);
        } else if p.held_by_ice() {
            // R2.1: where several writs wait, the earliest wins.
            p.rare_mut().writs.push(writ);
            let first = p.execute_first_writ().expect("one was just added");
            self.r2_1(now, person_id, first, emit);
        } else {
            p.rare_mut().writs.push(writ);
        }
        Outcome::Applied
    }

    /// `ice.custody.assumed`: R1.7 during an open offer, R3.4 during a hold, R4.1 from
    /// BOP or a jurisdiction otherwise; a person with no custodian comes into ICE's
    /// custody, one ICE holds stays. Then the R4.2 placement, unless ICE already
    /// detains the person.
    fn custody_assumed(&mut self, now: Time, person_id: &str, emit: &mut Emitter) {
        let p = self.person_mut(person_id);
        if let Some(offer) = p.close_offer(OfferEnd::Answered) {
            self.r1_7_taken(person_id, offer, emit);
        } else if let Some(hold) = p.hold.take() {
            self.r3_4(now, person_id, *hold, emit);
        } else {
            match p.holder() {
                Some(Holder::Bop(_) | Holder::Local(_)) => self.r4_1(now, person_id, emit),
                Some(Holder::Ice) => {}
                None => self.move_person(
                    person_id,
                    Place::Held {
                        by: Holder::Ice,
                        since: Some(now),
                    },
                ),
            }
        }
        if self.person_mut(person_id).detained_since().is_none()
            && !self.r6_3_placement(person_id, emit)
        {
            self.r4_2(now, person_id, emit);
        }
    }
}

impl Writ {
    fn facts(&self) -> WritFacts {
        WritFacts {
            id: self.id.clone(),
            court: self.court.clone(),
        }
    }
}
