//! R2: a person ICE holds goes to a local jurisdiction, under a writ (R2.1) or a
//! return agreement (R2.2); and the two events that can set R2.2 off, a policy gaining
//! the agreement and a claim lodged by a jurisdiction that has one.

use std::sync::Arc;

use super::custody::{Emitter, TransferSpec};
use super::person::{Claim, Writ};
use super::{Engine, Outcome, Policy};
use crate::model::{Basis, Condition, Custodian, Rule, Time};
use crate::why::{Stance, Why};

impl Engine {
    /// `jurisdiction.policy.updated` (R5): the latest policy counts; one that gains a
    /// return agreement sets off R2.2 for the people the jurisdiction claims.
    pub(super) fn policy_updated(
        &mut self,
        now: Time,
        jurisdiction_id: &str,
        policy: Policy,
        emit: &mut Emitter,
    ) -> Outcome {
        let gains_agreement = policy.return_agreement;
        let had_agreement = self
            .policies
            .insert(jurisdiction_id.to_owned(), policy)
            .is_some_and(|p| p.return_agreement);
        if gains_agreement && !had_agreement {
            self.r2_2_for_jurisdiction(now, jurisdiction_id, emit);
        }
        Outcome::Applied
    }

    /// `local.claim.lodged` (R5): the claim joins the person's claims in lodge order;
    /// R2.2 when its jurisdiction already has a return agreement.
    pub(super) fn claim_lodged(
        &mut self,
        now: Time,
        person_id: &str,
        claim_id: &str,
        jurisdiction_id: &str,
        emit: &mut Emitter,
    ) -> Outcome {
        self.seq += 1;
        let seq = self.seq;
        let jurisdiction = self.name(jurisdiction_id);
        let p = self.person_mut(person_id);
        p.claims.push(Claim {
            id: claim_id.into(),
            jurisdiction,
            seq,
        });
        if p.held_by_ice() {
            self.index_claim(jurisdiction_id, seq, person_id);
            if self.stance(jurisdiction_id).1 {
                self.r2_2(now, person_id, emit);
            }
        }
        Outcome::Applied
    }

    fn stance_of(&self, jurisdiction_id: &str) -> Stance {
        let (honors_detainers, return_agreement) = self.stance(jurisdiction_id);
        Stance {
            honors_detainers,
            return_agreement,
        }
    }

    /// R2.1: a writ (already marked executed) takes the person out of ICE custody, to
    /// come back afterwards.
    pub(super) fn r2_1(&mut self, now: Time, person_id: &str, writ: Writ, emit: &mut Emitter) {
        let stance = self.stance_of(&writ.jurisdiction);
        let p = self.person_mut(person_id);
        let since = p.since();
        let claim = p.claim_of(&writ.jurisdiction).map(|c| c.facts());
        let effective_at = since.map_or(now, |s| s.max(now));
        let why = Why::FromIce {
            since,
            writ: Some(writ.facts()),
            claim: claim.clone(),
            stance,
        };
        let mut t = TransferSpec::new(
            Rule::R2_1,
            Custodian::Local(writ.jurisdiction),
            Basis::JudicialWrit,
            effective_at,
            why,
        );
        t.conditions = vec![Condition::ReturnToIceAfterProceedings];
        t.claim_id = claim.map(|c| c.id.to_string());
        t.writ_id = Some(writ.id.to_string());
        self.transfer(person_id, t, emit);
    }

    /// R2.2 for everyone ICE holds with an unsatisfied claim by `jurisdiction_id`, in
    /// the order those claims were lodged. The index holds only such claims, and each
    /// person it names leaves ICE here (the jurisdiction now agrees), so the cost is the
    /// transfers decided.
    fn r2_2_for_jurisdiction(&mut self, now: Time, jurisdiction_id: &str, emit: &mut Emitter) {
        let Some(claims) = self.ice_claims.get(jurisdiction_id) else {
            return;
        };
        let people: Vec<Arc<str>> = claims.values().cloned().collect();
        for person_id in people {
            self.r2_2(now, &person_id, emit);
        }
    }

    /// R2.2: ICE holds the person, and a claim's jurisdiction has a return agreement:
    /// the earliest such claim's jurisdiction gets the person and returns them to ICE
    /// before release. An earlier claim without an agreement does not stand in its way.
    fn r2_2(&mut self, now: Time, person_id: &str, emit: &mut Emitter) {
        let Some(p) = self.people.get(person_id) else {
            return;
        };
        if !p.held_by_ice() {
            return;
        }
        let policies = &self.policies;
        let Some(claim) = p.agreeing_claim(|j| policies.get(j).is_some_and(|p| p.return_agreement))
        else {
            return;
        };
        let jurisdiction_id = claim.jurisdiction.to_string();
        let since = p.since();
        let effective_at = since.map_or(now, |s| s.max(now));
        let claim_id = claim.id.to_string();
        let why = Why::FromIce {
            since,
            writ: None,
            claim: Some(claim.facts()),
            stance: self.stance_of(&jurisdiction_id),
        };
        let mut t = TransferSpec::new(
            Rule::R2_2,
            Custodian::Local(jurisdiction_id),
            Basis::ReturnAgreement,
            effective_at,
            why,
        );
        t.conditions = vec![Condition::ReturnToIceBeforeRelease];
        t.claim_id = Some(claim_id);
        self.transfer(person_id, t, emit);
    }
}
