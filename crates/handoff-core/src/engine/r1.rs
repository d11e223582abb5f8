//! R1: BOP schedules a release (R1.1–R1.6), and how a first-refusal offer ends
//! (R1.7–R1.11).

use super::custody::{Cause, Emitter, TransferSpec};
use super::person::{Holder, Offer, OfferEnd, Writ};
use super::timers::TimerKind;
use super::{Engine, Outcome, Reject};
use crate::model::{
    Answer, Basis, Condition, Custodian, CustodianKind, Decision, DecisionBody, Rule, Time,
};
use crate::why::{DetainerFacts, OfferFacts, Stance, Why};

impl Engine {
    /// `bop.release.scheduled`: R1.1–R1.6 for a person BOP holds.
    pub(super) fn bop_release(
        &mut self,
        now: Time,
        person_id: &str,
        facility: &str,
        release_at: Time,
        emit: &mut Emitter,
    ) -> Outcome {
        if self.person_mut(person_id).stale_notice(release_at) {
            return Outcome::NoEffect("stale: not later than the person's last release");
        }
        self.name_custodian(person_id, CustodianKind::Bop, facility);
        let p = self.person_mut(person_id);
        if !matches!(p.holder(), Some(Holder::Bop(_))) {
            return Outcome::NoEffect("person is not held by BOP");
        }
        if p.offer.is_some() {
            return Outcome::NoEffect("a first-refusal offer is already open");
        }
        let detainer = p.latest_detainer().cloned();
        // R1.1: a writ, whoever holds it, decides first; the earliest writ wins.
        if let Some(writ) = p.execute_first_writ() {
            let claim = p.claim_of(&writ.jurisdiction).cloned();
            let why = Why::BopRelease {
                release_at,
                detainer: detainer.as_ref().map(|d| d.facts()),
                writ: Some(writ.facts()),
                claim: claim.as_ref().map(|c| c.facts()),
                stance: None,
            };
            let mut t = TransferSpec::new(
                Rule::R1_1,
                Custodian::Local(writ.jurisdiction),
                Basis::JudicialWrit,
                release_at,
                why,
            );
            if detainer.is_some() {
                t.conditions = vec![Condition::IceDetainerForwarded];
            }
            t.detainer_id = detainer.map(|d| d.id.to_string());
            t.claim_id = claim.map(|c| c.id.to_string());
            t.writ_id = Some(writ.id.to_string());
            self.transfer(person_id, t, emit);
            return Outcome::Applied;
        }
        let claimant = p.claimant().cloned();
        match (detainer, claimant) {
            // R1.2: ICE wants the person and no one else does.
            (Some(d), None) => {
                let why = Why::BopRelease {
                    release_at,
                    detainer: Some(d.facts()),
                    writ: None,
                    claim: None,
                    stance: None,
                };
                let mut t =
                    TransferSpec::new(Rule::R1_2, Custodian::Ice, Basis::Detainer, release_at, why);
                t.detainer_id = Some(d.id.to_string());
                self.transfer(person_id, t, emit);
            }
            // R1.3: only the claimant wants the person.
            (None, Some(c)) => {
                let why = Why::BopRelease {
                    release_at,
                    detainer: None,
                    writ: None,
                    claim: Some(c.facts()),
                    stance: None,
                };
                let mut t = TransferSpec::new(
                    Rule::R1_3,
                    Custodian::Local(c.jurisdiction.to_string()),
                    Basis::LocalClaim,
                    release_at,
                    why,
                );
                t.claim_id = Some(c.id.to_string());
                self.transfer(person_id, t, emit);
            }
            // R1.4: no one does; the sentence is complete.
            (None, None) => {
                let why = Why::BopRelease {
                    release_at,
                    detainer: None,
                    writ: None,
                    claim: None,
                    stance: None,
                };
                self.release(
                    person_id,
                    super::custody::ReleaseSpec {
                        rule: Rule::R1_4,
                        basis: Basis::SentenceComplete,
                        effective_at: release_at,
                        detainer_id: None,
                        why,
                    },
                    emit,
                );
            }
            (Some(d), Some(c)) => {
                let (honors, agreement) = self.stance(&c.jurisdiction);
                let why = Why::BopRelease {
                    release_at,
                    detainer: Some(d.facts()),
                    writ: None,
                    claim: Some(c.facts()),
                    stance: Some(Stance {
                        honors_detainers: honors,
                        return_agreement: agreement,
                    }),
                };
                if agreement {
                    // R1.5: the claimant has promised to return the person to ICE.
                    let mut t = TransferSpec::new(
                        Rule::R1_5,
                        Custodian::Local(c.jurisdiction.to_string()),
                        Basis::ReturnAgreement,
                        release_at,
                        why,
                    );
                    t.conditions = vec![
                        Condition::IceDetainerForwarded,
                        Condition::ReturnToIceBeforeRelease,
                    ];
                    t.detainer_id = Some(d.id.to_string());
                    t.claim_id = Some(c.id.to_string());
                    self.transfer(person_id, t, emit);
                } else {
                    // R1.6: offer ICE the first refusal under the BOP MOU.
                    let respond_by = release_at.max(now);
                    let offer_id = emit.next_id();
                    let timer = self.set_timer(respond_by, person_id, TimerKind::FirstRefusal);
                    let body = DecisionBody::Offer {
                        offer_id: offer_id.clone(),
                        jurisdiction_id: c.jurisdiction.to_string(),
                        jurisdiction_honors_detainers: honors,
                        respond_by,
                        detainer_id: d.id.to_string(),
                    };
                    let parties = self.parties_of(person_id, &body);
                    emit.emit(person_id, Rule::R1_6, body, parties, why);
                    self.person_mut(person_id).offer = Some(Box::new(Offer {
                        id: offer_id,
                        claim: c,
                        detainer_id: d.id,
                        release_at,
                        respond_by,
                        timer,
                    }));
                }
            }
        }
        Outcome::Applied
    }

    /// The detainer to cite for an offer's outcome: the offer's own if still active,
    /// else the latest active one.
    fn offer_detainer(&self, person_id: &str, offer: &Offer) -> Option<DetainerFacts> {
        let p = self.people.get(person_id)?;
        p.detainer(&offer.detainer_id)
            .or_else(|| p.latest_detainer())
            .map(|d| d.facts())
    }

    /// The facts of an offer's outcome, citing `detainer`.
    fn offer_ends(offer: &Offer, detainer: Option<DetainerFacts>, writ: Option<&Writ>) -> Why {
        Why::OfferEnds {
            offer: OfferFacts {
                respond_by: offer.respond_by,
                claim: offer.claim.facts(),
            },
            detainer,
            writ: writ.map(|w| w.facts()),
            custody_assumed: false,
        }
    }

    /// `ice.first_refusal.response`: R1.7 and R1.8, ICE answers an open offer before
    /// its deadline.
    pub(super) fn first_refusal_response(
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
                .rare
                .as_ref()
                .map_or(&[][..], |r| &r.closed_offers)
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
        match answer {
            Answer::Accept => self.r1_7(person_id, offer, false, emit),
            Answer::Decline => self.r1_8(person_id, offer, emit),
        }
        Outcome::Applied
    }

    /// R1.7 when ICE takes the person (`ice.custody.assumed`) while its first refusal is
    /// open: the same as accepting it.
    pub(super) fn r1_7_taken(&mut self, person_id: &str, offer: Offer, emit: &mut Emitter) {
        self.r1_7(person_id, offer, true, emit);
    }

    /// R1.7: ICE takes the first refusal, by its answer or by taking custody.
    fn r1_7(&mut self, person_id: &str, offer: Offer, taken: bool, emit: &mut Emitter) {
        self.cancel_timer(&offer.timer);
        let detainer = self.offer_detainer(person_id, &offer);
        let mut why = Self::offer_ends(&offer, detainer.clone(), None);
        if let Why::OfferEnds {
            custody_assumed, ..
        } = &mut why
        {
            *custody_assumed = taken;
        }
        let mut t = TransferSpec::new(
            Rule::R1_7,
            Custodian::Ice,
            Basis::FirstRefusalAccepted,
            offer.release_at,
            why,
        );
        t.detainer_id = detainer.map(|d| d.id.to_string());
        t.offer_id = Some(offer.id);
        self.transfer(person_id, t, emit);
    }

    /// R1.8: ICE declines; the claimant gets the person, the detainer forwarded.
    fn r1_8(&mut self, person_id: &str, offer: Offer, emit: &mut Emitter) {
        self.cancel_timer(&offer.timer);
        let detainer = self.offer_detainer(person_id, &offer);
        let why = Self::offer_ends(&offer, detainer.clone(), None);
        let mut t = TransferSpec::new(
            Rule::R1_8,
            Custodian::Local(offer.claim.jurisdiction.to_string()),
            Basis::FirstRefusalDeclined,
            offer.release_at,
            why,
        );
        t.conditions = vec![Condition::IceDetainerForwarded];
        t.claim_id = Some(offer.claim.id.to_string());
        t.detainer_id = detainer.map(|d| d.id.to_string());
        t.offer_id = Some(offer.id);
        self.transfer(person_id, t, emit);
    }

    /// The first-refusal timer: R1.9, no answer by `respond_by`; the claimant gets the
    /// person.
    pub(super) fn offer_lapsed(
        &mut self,
        deadline: Time,
        person_id: &str,
        out: &mut Vec<Decision>,
    ) {
        let Some(offer) = self.person_mut(person_id).close_offer(OfferEnd::Lapsed) else {
            return;
        };
        let mut emit = Emitter {
            cause: Cause::Timer(format!("timer:first_refusal:{}", offer.id)),
            time: deadline,
            n: 0,
            out,
        };
        let detainer = self.offer_detainer(person_id, &offer);
        let why = Self::offer_ends(&offer, detainer.clone(), None);
        let mut t = TransferSpec::new(
            Rule::R1_9,
            Custodian::Local(offer.claim.jurisdiction.to_string()),
            Basis::FirstRefusalLapsed,
            offer.release_at,
            why,
        );
        t.conditions = vec![Condition::IceDetainerForwarded];
        t.detainer_id = detainer.map(|d| d.id.to_string());
        t.claim_id = Some(offer.claim.id.to_string());
        t.offer_id = Some(offer.id.clone());
        self.transfer(person_id, t, &mut emit);
    }

    /// R1.10: a writ arrives while the offer is open; it voids the offer and takes the
    /// person.
    pub(super) fn r1_10(&mut self, person_id: &str, offer: Offer, writ: Writ, emit: &mut Emitter) {
        self.cancel_timer(&offer.timer);
        self.person_mut(person_id)
            .rare_mut()
            .executed_writs
            .push(writ.id.clone());
        let claim_id = self
            .people
            .get(person_id)
            .and_then(|p| p.claim_of(&writ.jurisdiction).map(|c| c.id.to_string()));
        let detainer = self.offer_detainer(person_id, &offer);
        let why = Self::offer_ends(&offer, detainer.clone(), Some(&writ));
        let mut t = TransferSpec::new(
            Rule::R1_10,
            Custodian::Local(writ.jurisdiction),
            Basis::JudicialWrit,
            offer.release_at,
            why,
        );
        t.conditions = vec![Condition::IceDetainerForwarded];
        t.detainer_id = detainer.map(|d| d.id.to_string());
        t.claim_id = claim_id;
        t.writ_id = Some(writ.id.to_string());
        t.offer_id = Some(offer.id);
        self.transfer(person_id, t, emit);
    }

    /// R1.11: the last active detainer is withdrawn while the offer is open: nothing is
    /// left to offer ICE, and the claimant gets the person.
    pub(super) fn r1_11(&mut self, person_id: &str, offer: Offer, emit: &mut Emitter) {
        self.cancel_timer(&offer.timer);
        let why = Self::offer_ends(&offer, None, None);
        let mut t = TransferSpec::new(
            Rule::R1_11,
            Custodian::Local(offer.claim.jurisdiction.to_string()),
            Basis::LocalClaim,
            offer.release_at,
            why,
        );
        t.claim_id = Some(offer.claim.id.to_string());
        t.offer_id = Some(offer.id);
        self.transfer(person_id, t, emit);
    }
}
