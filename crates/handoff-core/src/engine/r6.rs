//! R6: ICE detention reviews. A detained person (placed `detain`, not moved since) goes to
//! Alternatives to Detention when funding runs short (R6.1, the funding review), when
//! detention passes 180 days with removal not foreseeable (R6.2), or at once for a
//! humanitarian factor (R6.3); custody stays with ICE and one bed is freed.
//!
//! The funding review takes people in a fixed order, kept as an index ([`ReviewKey`] in a
//! `BTreeSet`) of the detained people it may move: the convicted are never in it. Each
//! move pops the first key, so a cut that leaves tens of thousands over capacity costs
//! one `O(log n)` step per person moved, and the index is never larger than the number
//! of people detained. The 180-day timer is data like the others (`TimerKind::Prolonged`).

use std::num::NonZeroU64;

use chrono::TimeDelta;
use compact_str::CompactString;
use uuid::Uuid;

use super::Engine;
use super::custody::{Cause, Emitter};
use super::person::{Detention, Person};
use super::timers::TimerKind;
use crate::model::{
    Basis, CriminalStatus, Decision, DecisionBody, Factor, Monitoring, Placement, Rule, Time,
};
use crate::why::{Ahead, Beds, Order, Removal, Review, Why};

/// How long detention may last with removal not foreseeable before R6.2 moves the person.
pub const PROLONGED: TimeDelta = TimeDelta::days(180);

/// A detained person's place in the funding review's order (R6.1): `criminal_status`
/// `none` before `charged`; within each, a humanitarian factor first, then removal not
/// foreseeable, then the longest detained, then by `person_id`. Field order is the order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct ReviewKey {
    /// 0 for `none` (or no detainer), 1 for `charged`.
    charged: u8,
    /// `false` (first) when the person has a humanitarian factor.
    no_factor: bool,
    /// `false` (first) when the latest removal status says not foreseeable.
    removal_expected: bool,
    detained_since: Time,
    person_id: CompactString,
}

impl ReviewKey {
    /// The first criterion of the order on which `self` comes before `next`.
    fn first_difference(&self, next: &ReviewKey) -> Order {
        if self.charged != next.charged {
            Order::CriminalStatus
        } else if self.no_factor != next.no_factor {
            Order::Factor
        } else if self.removal_expected != next.removal_expected {
            Order::Removal
        } else if self.detained_since != next.detained_since {
            Order::DetainedLonger
        } else {
            Order::PersonId
        }
    }
}

/// The person's review key, if ICE detains them and a funding review may move them.
pub(super) fn review_key(p: &Person) -> Option<ReviewKey> {
    let rare = p.rare.as_ref()?;
    let detained_since = rare.detention.as_ref()?.since;
    let charged = match p.latest_status.unwrap_or(CriminalStatus::None) {
        CriminalStatus::None => 0,
        CriminalStatus::Charged => 1,
        CriminalStatus::Convicted => return None,
    };
    Some(ReviewKey {
        charged,
        no_factor: rare.factor().is_none(),
        removal_expected: rare.removal().is_none_or(|r| r.foreseeable),
        detained_since,
        person_id: p.id.clone(),
    })
}

/// The monitoring of a move to ATD, unless the rule says otherwise (R6).
fn monitoring(status: Option<CriminalStatus>) -> Monitoring {
    match status.unwrap_or(CriminalStatus::None) {
        CriminalStatus::Convicted | CriminalStatus::Charged => Monitoring::AnkleMonitor,
        CriminalStatus::None => Monitoring::Telephonic,
    }
}

impl Engine {
    /// Runs `change` on the engine and keeps the review index in step with whatever it
    /// changed of the person (criminal status, factor, removal status).
    pub(super) fn reviewed<R>(
        &mut self,
        person_id: &str,
        change: impl FnOnce(&mut Engine) -> R,
    ) -> R {
        let before = self.people.get(person_id).and_then(review_key);
        let r = change(self);
        let after = self.people.get(person_id).and_then(review_key);
        if before != after {
            if let Some(b) = before {
                self.review.remove(&b);
            }
            if let Some(a) = after {
                self.review.insert(a);
            }
        }
        r
    }

    /// ICE begins to detain the person (an R4.2 `detain`, decided as `decision_id`): a bed
    /// is taken, the person enters the review index, and the 180-day timer starts if
    /// removal is already known not to be foreseeable.
    pub(super) fn detention_began(&mut self, now: Time, person_id: &str, decision_id: &str) {
        let placement = *Uuid::parse_str(decision_id)
            .expect("decision ids are UUIDs")
            .as_bytes();
        self.person_mut(person_id).rare_mut().detention = Some(Box::new(Detention {
            since: now,
            placement,
            prolonged: None,
        }));
        if let Some(key) = self.people.get(person_id).and_then(review_key) {
            self.review.insert(key);
        }
        if let Some(c) = self.capacity.as_mut() {
            c.occupied += 1;
        }
    }

    /// The person leaves detention (out of ICE's custody, or to ATD): the bed is freed
    /// (occupancy never below zero), the review index forgets them, and the 180-day timer
    /// is cancelled. `false` when ICE did not detain them.
    pub(super) fn end_detention(&mut self, person_id: &str) -> bool {
        let Some(p) = self.people.get_mut(person_id) else {
            return false;
        };
        let key = review_key(p);
        let Some(detention) = p.rare.as_mut().and_then(|r| r.detention.take()) else {
            return false;
        };
        if let Some(k) = key {
            self.review.remove(&k);
        }
        if let Some(seq) = detention.prolonged {
            self.cancel_timer(&(detention.since + PROLONGED, seq.get()));
        }
        if let Some(c) = self.capacity.as_mut() {
            c.occupied = c.occupied.saturating_sub(1);
        }
        true
    }

    /// R6.1: while occupancy exceeds the funded beds, the first person of the review
    /// index goes to ATD; stops when it no longer exceeds them, or nobody movable is left.
    pub(super) fn funding_review(&mut self, emit: &mut Emitter) {
        while let Some(c) = self.capacity
            && c.occupied > c.funded
            && let Some(key) = self.review.first()
        {
            let beds = Beds {
                funded: c.funded,
                occupied: c.occupied,
            };
            let person_id = key.person_id.clone();
            // Who came next, and what put this person first: for `explain`.
            let ahead = self.review.iter().nth(1).map(|next| Ahead {
                person_id: next.person_id.to_string(),
                by: key.first_difference(next),
            });
            self.move_to_atd(
                &person_id,
                Rule::R6_1,
                Basis::CapacityReview,
                None,
                Some(beds),
                emit,
            );
            if let Some(Decision {
                why: Why::Review(r),
                ..
            }) = emit.out.last_mut()
            {
                r.ahead_of = ahead;
            }
        }
    }

    /// Moves a detained person to ATD under an R6 rule (custody stays with ICE).
    fn move_to_atd(
        &mut self,
        person_id: &str,
        rule: Rule,
        basis: Basis,
        monitoring_override: Option<Monitoring>,
        beds: Option<Beds>,
        emit: &mut Emitter,
    ) {
        let why = self.review_facts(person_id, beds);
        let body = DecisionBody::Placement {
            placement: Placement::Atd,
            monitoring: Some(monitoring_override.unwrap_or(monitoring(why.criminal_status))),
            basis,
        };
        let parties = self.parties_of(person_id, &body);
        self.end_detention(person_id);
        emit.emit(person_id, rule, body, parties, Why::Review(why));
    }

    /// The facts an R6 rule weighs about the person, as they stand.
    fn review_facts(&mut self, person_id: &str, beds: Option<Beds>) -> Review {
        let p = self.person_mut(person_id);
        let rare = p.rare.as_ref();
        Review {
            criminal_status: p.latest_status,
            factor: rare.and_then(|r| r.factor()),
            removal: rare.and_then(|r| r.removal().cloned()),
            detained_since: rare.and_then(|r| r.detention.as_ref()).map(|d| d.since),
            beds,
            ahead_of: None,
        }
    }

    /// `ice.release.factor` (R5, R6.3): recorded; a detained person who is not convicted
    /// goes to ATD at once.
    pub(super) fn release_factor(&mut self, person_id: &str, factor: Factor, emit: &mut Emitter) {
        self.reviewed(person_id, |e| {
            e.person_mut(person_id).rare_mut().reported_mut().factor = Some(factor)
        });
        let p = self.person_mut(person_id);
        if p.detained_since().is_some() && p.latest_status != Some(CriminalStatus::Convicted) {
            self.move_to_atd(
                person_id,
                Rule::R6_3,
                Basis::Humanitarian,
                Some(Monitoring::OfficeCheckin),
                None,
                emit,
            );
        }
    }

    /// R6.3 in place of R4.2: whether the person, about to be placed, has a humanitarian
    /// factor and is not convicted; then they are placed in ATD on that basis.
    pub(super) fn r6_3_placement(&mut self, person_id: &str, emit: &mut Emitter) -> bool {
        let p = self.person_mut(person_id);
        let factor = p.rare.as_ref().and_then(|r| r.factor());
        if factor.is_none() || p.latest_status == Some(CriminalStatus::Convicted) {
            return false;
        }
        let why = self.review_facts(person_id, None);
        let body = DecisionBody::Placement {
            placement: Placement::Atd,
            monitoring: Some(Monitoring::OfficeCheckin),
            basis: Basis::Humanitarian,
        };
        let parties = self.parties_of(person_id, &body);
        emit.emit(person_id, Rule::R6_3, body, parties, Why::Review(why));
        true
    }

    /// `ice.removal.status` (R5, R6.2): recorded; for a detained person, the 180-day timer
    /// is started or cancelled to match.
    pub(super) fn removal_status(
        &mut self,
        now: Time,
        person_id: &str,
        removal: Removal,
        emit: &mut Emitter,
    ) {
        self.reviewed(person_id, |e| {
            e.person_mut(person_id).rare_mut().reported_mut().removal = Some(removal)
        });
        self.prolonged_check(now, person_id, emit);
    }

    /// R6.2 for a detained person: with removal not foreseeable, the timer at detention
    /// start + 180 days is set, or the person moved at once when that has passed; with
    /// removal foreseeable (or unknown), any timer is cancelled.
    pub(super) fn prolonged_check(&mut self, now: Time, person_id: &str, emit: &mut Emitter) {
        let p = self.person_mut(person_id);
        let Some(rare) = p.rare.as_mut() else {
            return;
        };
        let stuck = rare.removal().is_some_and(|r| !r.foreseeable);
        let Some(detention) = rare.detention.as_mut() else {
            return;
        };
        let deadline = detention.since + PROLONGED;
        match (stuck, detention.prolonged) {
            (false, Some(seq)) => {
                detention.prolonged = None;
                self.cancel_timer(&(deadline, seq.get()));
            }
            (false, None) | (true, Some(_)) => {}
            (true, None) if deadline <= now => self.move_to_atd(
                person_id,
                Rule::R6_2,
                Basis::ProlongedDetention,
                None,
                None,
                emit,
            ),
            (true, None) => {
                let (_, seq) = self.set_timer(deadline, person_id, TimerKind::Prolonged);
                let d = self.person_mut(person_id).rare_mut().detention.as_mut();
                d.expect("checked above").prolonged =
                    Some(NonZeroU64::new(seq).expect("timer sequence numbers start at 1"));
            }
        }
    }

    /// The 180-day timer of a person whose removal is not foreseeable ran out (R6.2).
    pub(super) fn prolonged_ran_out(
        &mut self,
        deadline: Time,
        person_id: &str,
        out: &mut Vec<Decision>,
    ) {
        let p = self.person_mut(person_id);
        let Some(detention) = p.rare.as_mut().and_then(|r| r.detention.as_mut()) else {
            return;
        };
        detention.prolonged = None;
        let placement = Uuid::from_bytes(detention.placement);
        let mut emit = Emitter {
            cause: Cause::Timer(format!("timer:prolonged:{placement}")),
            time: deadline,
            n: 0,
            out,
        };
        self.move_to_atd(
            person_id,
            Rule::R6_2,
            Basis::ProlongedDetention,
            None,
            None,
            &mut emit,
        );
    }
}
