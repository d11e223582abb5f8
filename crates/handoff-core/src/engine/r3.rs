//! R3: a jurisdiction would release a person it holds (R3.1–R3.3), and how a 48-hour
//! hold ends (R3.4–R3.7).

use super::custody::{Cause, Emitter, ReleaseSpec, TransferSpec};
use super::person::Hold;
use super::timers::TimerKind;
use super::{Engine, HOLD_LIMIT, Outcome};
use crate::model::{Basis, Custodian, CustodianKind, Decision, DecisionBody, Rule, Time};
use crate::why::{DetainerFacts, HoldFacts, Stance, Why};

impl Hold {
    fn facts(&self) -> HoldFacts {
        HoldFacts {
            jurisdiction_id: self.jurisdiction.clone(),
            from: self.from,
            until: self.until,
        }
    }
}

impl Engine {
    /// The facts of a hold's end.
    fn hold_ends(&self, person_id: &str, hold: &Hold, on_timer: bool) -> Why {
        Why::HoldEnds {
            hold: hold.facts(),
            detainer: self
                .people
                .get(person_id)
                .and_then(|p| p.detainer(&hold.detainer_id))
                .map(|d| d.facts()),
            on_timer,
        }
    }

    /// `local.release.due`: R3.1–R3.3 for a person the jurisdiction holds.
    pub(super) fn local_release(
        &mut self,
        person_id: &str,
        jurisdiction_id: &str,
        release_at: Time,
        emit: &mut Emitter,
    ) -> Outcome {
        let (honors, agreement) = self.stance(jurisdiction_id);
        let stance = Stance {
            honors_detainers: honors,
            return_agreement: agreement,
        };
        if self.person_mut(person_id).stale_notice(release_at) {
            return Outcome::NoEffect("stale: not later than the person's last release");
        }
        self.name_custodian(person_id, CustodianKind::Local, jurisdiction_id);
        let p = self.person_mut(person_id);
        if !p.held_by_local(jurisdiction_id) {
            return Outcome::NoEffect("person is not held by this jurisdiction");
        }
        if p.hold.is_some() {
            return Outcome::NoEffect("a hold is already in progress");
        }
        let Some(latest) = p.latest_detainer() else {
            // R3.1: nothing stands in the way of release.
            let why = Why::LocalRelease {
                release_at,
                detainer: None,
                stance,
            };
            let r = ReleaseSpec {
                rule: Rule::R3_1,
                basis: Basis::SentenceComplete,
                effective_at: release_at,
                detainer_id: None,
                why,
            };
            self.release(person_id, r, emit);
            return Outcome::Applied;
        };
        let honorable = p
            .honorable_detainer(jurisdiction_id, None)
            .filter(|_| honors);
        match honorable {
            None => {
                // R3.2: a declined detainer (by this jurisdiction, or by its policy);
                // released at the normal time.
                let detainer_id = latest.id.to_string();
                let why = Why::LocalRelease {
                    release_at,
                    detainer: Some(latest.facts()),
                    stance,
                };
                let r = ReleaseSpec {
                    rule: Rule::R3_2,
                    basis: Basis::DetainerDeclined,
                    effective_at: release_at,
                    detainer_id: Some(detainer_id),
                    why,
                };
                self.release(person_id, r, emit);
            }
            Some(detainer) => {
                // R3.3: the jurisdiction holds the person for ICE, 48 hours at most.
                let until = release_at + HOLD_LIMIT;
                let detainer_id = detainer.id.clone();
                let why = Why::LocalRelease {
                    release_at,
                    detainer: Some(detainer.facts()),
                    stance,
                };
                let body = DecisionBody::Hold {
                    jurisdiction_id: jurisdiction_id.to_owned(),
                    detainer_id: detainer_id.to_string(),
                    hold_from: release_at,
                    hold_until: until,
                };
                let parties = self.parties_of(person_id, &body);
                let decision_id = emit.emit(person_id, Rule::R3_3, body, parties, why);
                let timer = self.set_timer(until, person_id, TimerKind::Hold);
                self.person_mut(person_id).hold = Some(Box::new(Hold {
                    jurisdiction: jurisdiction_id.into(),
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

    /// R3.4: ICE takes custody within the 48 hours (`ice.custody.assumed`, called with
    /// the hold already taken off the person).
    pub(super) fn r3_4(&mut self, now: Time, person_id: &str, hold: Hold, emit: &mut Emitter) {
        self.cancel_timer(&hold.timer);
        let since = self.people.get(person_id).and_then(|p| p.since());
        let effective_at = since.map_or(now, |s| s.max(now));
        let why = self.hold_ends(person_id, &hold, false);
        let mut t = TransferSpec::new(
            Rule::R3_4,
            Custodian::Ice,
            Basis::DetainerHold,
            effective_at,
            why,
        );
        t.detainer_id = Some(hold.detainer_id.to_string());
        self.transfer(person_id, t, emit);
    }

    /// `hold.expired`: R3.5 by the jurisdiction's report, at the clock but never after
    /// `hold_until`.
    pub(super) fn hold_expired(
        &mut self,
        now: Time,
        person_id: &str,
        jurisdiction_id: &str,
        emit: &mut Emitter,
    ) -> Outcome {
        let Some(p) = self.people.get_mut(person_id) else {
            return Outcome::NoEffect("no hold in progress");
        };
        if p.hold
            .as_ref()
            .is_none_or(|h| &*h.jurisdiction != jurisdiction_id)
        {
            return Outcome::NoEffect("no hold in progress at this jurisdiction");
        }
        if p.hold.as_ref().is_some_and(|h| now < h.from) {
            // A jurisdiction that will not hold declines the detainer instead (R3.7).
            return Outcome::NoEffect("the hold has not begun: it cannot lapse before hold_from");
        }
        let hold = p.hold.take().expect("checked above");
        self.cancel_timer(&hold.timer);
        let r = ReleaseSpec {
            rule: Rule::R3_5,
            basis: Basis::HoldExpired,
            effective_at: now.min(hold.until),
            detainer_id: Some(hold.detainer_id.to_string()),
            why: self.hold_ends(person_id, &hold, false),
        };
        self.release(person_id, r, emit);
        Outcome::Applied
    }

    /// The hold timer: R3.5 by the broker's own timer, released at `hold_until`, never
    /// later.
    pub(super) fn hold_ran_out(
        &mut self,
        deadline: Time,
        person_id: &str,
        out: &mut Vec<Decision>,
    ) {
        let Some(hold) = self.person_mut(person_id).hold.take() else {
            return;
        };
        let mut emit = Emitter {
            cause: Cause::Timer(format!("timer:hold:{}", hold.decision_id)),
            time: deadline,
            n: 0,
            out,
        };
        let r = ReleaseSpec {
            rule: Rule::R3_5,
            basis: Basis::HoldExpired,
            effective_at: hold.until,
            detainer_id: Some(hold.detainer_id.to_string()),
            why: self.hold_ends(person_id, &hold, true),
        };
        self.release(person_id, r, &mut emit);
    }

    /// R3.6: the detainer a hold rested on was withdrawn (`withdrawn`, already removed).
    pub(super) fn r3_6(
        &mut self,
        now: Time,
        person_id: &str,
        withdrawn: DetainerFacts,
        emit: &mut Emitter,
    ) {
        self.end_hold_for_detainer(
            now,
            person_id,
            (Rule::R3_6, Basis::DetainerWithdrawn),
            Some(withdrawn),
            emit,
        );
    }

    /// `local.detainer.declined`: recorded for R3.2, and R3.7 during that jurisdiction's
    /// hold on that detainer.
    pub(super) fn detainer_declined(
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
        let Some(detainer) = p.detainer(detainer_id) else {
            return Outcome::NoEffect("no such active detainer");
        };
        let id = detainer.id.clone();
        if !p.declined_by(detainer_id, jurisdiction_id) {
            let jurisdiction = self.name(jurisdiction_id);
            self.person_mut(person_id)
                .rare_mut()
                .declined
                .push((id, jurisdiction));
        }
        let p = self.person_mut(person_id);
        if p.hold
            .as_ref()
            .is_some_and(|h| &*h.detainer_id == detainer_id && &*h.jurisdiction == jurisdiction_id)
        {
            // R3.7: the holder declines the detainer its hold rests on.
            self.end_hold_for_detainer(
                now,
                person_id,
                (Rule::R3_7, Basis::DetainerDeclined),
                None,
                emit,
            );
        }
        Outcome::Applied
    }

    /// The detainer a hold rests on is gone (withdrawn or declined). If another active
    /// detainer the holder has not declined remains, the hold goes on under it, with the
    /// same `hold_until` (a hold is never extended); otherwise the person is released
    /// (R3.6, R3.7), at the later of the clock and `hold_from`.
    fn end_hold_for_detainer(
        &mut self,
        now: Time,
        person_id: &str,
        (rule, basis): (Rule, Basis),
        gone: Option<DetainerFacts>,
        emit: &mut Emitter,
    ) {
        let p = self.person_mut(person_id);
        let hold = p.hold.as_ref().expect("caller checked the hold");
        let other = p
            .honorable_detainer(&hold.jurisdiction, Some(&hold.detainer_id))
            .map(|d| d.id.clone());
        if let Some(other) = other {
            p.hold.as_mut().expect("checked above").detainer_id = other;
            return;
        }
        let hold = p.hold.take().expect("checked above");
        self.cancel_timer(&hold.timer);
        let mut why = self.hold_ends(person_id, &hold, false);
        if let (Some(gone), Why::HoldEnds { detainer, .. }) = (gone, &mut why) {
            *detainer = Some(gone);
        }
        let r = ReleaseSpec {
            rule,
            basis,
            effective_at: now.max(hold.from),
            detainer_id: Some(hold.detainer_id.to_string()),
            why,
        };
        self.release(person_id, r, emit);
    }
}
