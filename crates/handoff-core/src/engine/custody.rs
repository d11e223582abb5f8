//! How decisions leave the engine (`Emitter`), and the only two places custody changes
//! hands: [`Engine::transfer`] and [`Engine::release`]. Every rule that moves a person
//! comes through here with its rule id, basis and facts ([`Why`]). Every change of a
//! person's whereabouts, decided or named by an event, goes through
//! [`Engine::move_person`], which keeps the R2.2 index and ICE's occupancy in step.

use std::sync::Arc;

use super::person::{Holder, Place};
use super::{Engine, parties};
use crate::ids;
use crate::model::{Basis, Condition, Custodian, Decision, DecisionBody, Party, Rule, Time};
use crate::why::Why;

/// What caused the decisions being emitted: names them (`caused_by`) and their ids.
pub(super) enum Cause<'a> {
    Event { source: &'a str, id: &'a str },
    Timer(String),
}

/// Collects the decisions of one cause, numbering them for their deterministic ids.
pub(super) struct Emitter<'a> {
    pub(super) cause: Cause<'a>,
    pub(super) time: Time,
    pub(super) n: usize,
    pub(super) out: &'a mut Vec<Decision>,
}

impl Emitter<'_> {
    /// The id the next decision will get (an offer's id doubles as its `offer_id`).
    pub(super) fn next_id(&self) -> String {
        match &self.cause {
            Cause::Event { source, id } => ids::decision_id_for_event(source, id, self.n),
            Cause::Timer(name) => ids::decision_id_for_timer(name, self.n),
        }
    }

    /// Emits a decision told to `parties` (see [`parties::parties`]).
    pub(super) fn emit(
        &mut self,
        person_id: &str,
        rule: Rule,
        body: DecisionBody,
        parties: Vec<Party>,
        why: Why,
    ) -> String {
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
            why,
            parties,
        });
        self.n += 1;
        id
    }
}

/// A transfer about to be decided; the optional ids default to none.
pub(super) struct TransferSpec {
    pub(super) rule: Rule,
    pub(super) to: Custodian,
    pub(super) basis: Basis,
    pub(super) conditions: Vec<Condition>,
    pub(super) effective_at: Time,
    pub(super) detainer_id: Option<String>,
    pub(super) claim_id: Option<String>,
    pub(super) writ_id: Option<String>,
    pub(super) offer_id: Option<String>,
    pub(super) why: Why,
}

impl TransferSpec {
    pub(super) fn new(
        rule: Rule,
        to: Custodian,
        basis: Basis,
        effective_at: Time,
        why: Why,
    ) -> Self {
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
            why,
        }
    }
}

/// A release about to be decided.
pub(super) struct ReleaseSpec {
    pub(super) rule: Rule,
    pub(super) basis: Basis,
    pub(super) effective_at: Time,
    pub(super) detainer_id: Option<String>,
    pub(super) why: Why,
}

impl Engine {
    /// Decides a transfer from the person's current custodian and moves them.
    pub(super) fn transfer(&mut self, person_id: &str, t: TransferSpec, emit: &mut Emitter) {
        let from = self
            .person_mut(person_id)
            .custodian()
            .expect("a transfer is only decided for a person someone holds");
        let by = self.holder(t.to.custodian_kind(), t.to.id());
        let body = DecisionBody::Transfer {
            from,
            to: t.to,
            basis: t.basis,
            conditions: t.conditions,
            effective_at: t.effective_at,
            detainer_id: t.detainer_id,
            claim_id: t.claim_id,
            writ_id: t.writ_id,
            offer_id: t.offer_id,
        };
        let parties = self.parties_of(person_id, &body);
        self.move_person(
            person_id,
            Place::Held {
                by: by.clone(),
                since: Some(t.effective_at),
            },
        );
        if let Holder::Local(j) = &by {
            self.satisfy_claims(person_id, j);
        }
        emit.emit(person_id, t.rule, body, parties, t.why);
    }

    /// Decides a release from the person's current custodian.
    pub(super) fn release(&mut self, person_id: &str, r: ReleaseSpec, emit: &mut Emitter) {
        let from = self
            .person_mut(person_id)
            .custodian()
            .expect("a release is only decided for a person someone holds");
        let body = DecisionBody::Release {
            from,
            basis: r.basis,
            effective_at: r.effective_at,
            detainer_id: r.detainer_id,
        };
        let parties = self.parties_of(person_id, &body);
        self.move_person(person_id, Place::Released { at: r.effective_at });
        emit.emit(person_id, r.rule, body, parties, r.why);
    }

    /// The parties of a decision about to be made about the person, from their state now
    /// (ICD section 4).
    pub(super) fn parties_of(&mut self, person_id: &str, body: &DecisionBody) -> Vec<Party> {
        parties::parties(self.person_mut(person_id), body)
    }

    /// Moves a person (a decided transfer or release, or an event naming the custodian
    /// of a person who had none). Entering ICE custody puts the person's unsatisfied
    /// claims into the R2.2 index and leaving it takes them out; leaving ICE while
    /// detained frees a bed (R4 occupancy counts down, never below zero).
    pub(super) fn move_person(&mut self, person_id: &str, to: Place) {
        let p = self.person_mut(person_id);
        let was_ice = p.held_by_ice();
        p.place = to;
        let is_ice = p.held_by_ice();
        if was_ice == is_ice {
            return;
        }
        let claims: Vec<(Arc<str>, u64)> = p
            .claims
            .iter()
            .map(|c| (c.jurisdiction.clone(), c.seq))
            .collect();
        for (jurisdiction, seq) in claims {
            if is_ice {
                self.index_claim(&jurisdiction, seq, person_id);
            } else {
                self.unindex_claim(&jurisdiction, seq);
            }
        }
        if !is_ice {
            self.end_detention(person_id);
        }
    }

    /// Adds an unsatisfied claim of a person ICE holds to the R2.2 index.
    pub(super) fn index_claim(&mut self, jurisdiction: &str, seq: u64, person_id: &str) {
        self.ice_claims
            .entry_ref(jurisdiction)
            .or_default()
            .insert(seq, person_id.into());
    }

    fn unindex_claim(&mut self, jurisdiction: &str, seq: u64) {
        if let Some(index) = self.ice_claims.get_mut(jurisdiction) {
            index.remove(&seq);
            if index.is_empty() {
                self.ice_claims.remove(jurisdiction);
            }
        }
    }

    /// A transfer to a jurisdiction satisfies all of its claims on the person.
    fn satisfy_claims(&mut self, person_id: &str, jurisdiction_id: &str) {
        let p = self.person_mut(person_id);
        let mut satisfied = Vec::new();
        p.claims.retain(|c| {
            let keep = &*c.jurisdiction != jurisdiction_id;
            if !keep {
                satisfied.push(c.seq);
            }
            keep
        });
        for seq in satisfied {
            self.unindex_claim(jurisdiction_id, seq);
        }
    }
}
