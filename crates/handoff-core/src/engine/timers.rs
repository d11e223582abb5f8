//! Timers (ICD section 5): the first-refusal deadline (R1.9) and the end of a 48-hour
//! hold (R3.5), entries in a map ordered by deadline, then by the order they were set.

use super::Engine;
use crate::model::{Decision, Time};

/// Timers sort by deadline, then by the order they were set (ICD section 5).
pub(super) type TimerKey = (Time, u64);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TimerKind {
    FirstRefusal,
    Hold,
    /// R6.2: 180 days of detention with removal not foreseeable.
    Prolonged,
}

#[derive(Debug, Clone)]
pub(super) struct Timer {
    pub(super) person: String,
    pub(super) kind: TimerKind,
}

impl Engine {
    /// Fires every timer due by `now`, moving the clock to each deadline fired.
    pub(super) fn fire_into(&mut self, now: Time, out: &mut Vec<Decision>) {
        while let Some(entry) = self.timers.first_entry() {
            let (deadline, _) = *entry.key();
            if deadline > now {
                break;
            }
            let timer = entry.remove();
            if self.clock.is_none_or(|c| c < deadline) {
                self.clock = Some(deadline);
            }
            match timer.kind {
                TimerKind::FirstRefusal => self.offer_lapsed(deadline, &timer.person, out),
                TimerKind::Hold => self.hold_ran_out(deadline, &timer.person, out),
                TimerKind::Prolonged => self.prolonged_ran_out(deadline, &timer.person, out),
            }
        }
    }

    pub(super) fn set_timer(&mut self, deadline: Time, person: &str, kind: TimerKind) -> TimerKey {
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

    pub(super) fn cancel_timer(&mut self, key: &TimerKey) {
        self.timers.remove(key);
    }
}

/// An open 48-hour hold (R3.3), as an operator sees it: [`Engine::open_holds`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenHold<'a> {
    pub person_id: &'a str,
    /// The jurisdiction holding the person for ICE.
    pub jurisdiction_id: &'a str,
    pub detainer_id: &'a str,
    pub from: Time,
    /// When the hold ends by law (`from` + 48 hours at the latest).
    pub until: Time,
}

/// An open right-of-first-refusal offer to ICE (R1.6): [`Engine::open_offers`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenOffer<'a> {
    pub person_id: &'a str,
    pub offer_id: &'a str,
    /// The local claimant the offer was made against.
    pub jurisdiction_id: &'a str,
    pub detainer_id: &'a str,
    pub release_at: Time,
    /// ICE's answer is due by then; the offer lapses to the claimant after.
    pub respond_by: Time,
}

impl Engine {
    /// The open 48-hour holds, soonest ending first (the timers' order).
    pub fn open_holds(&self) -> impl Iterator<Item = OpenHold<'_>> {
        self.timers
            .iter()
            .filter(|(_, t)| t.kind == TimerKind::Hold)
            .filter_map(|(key, t)| {
                let hold = self.people.get(&t.person)?.hold.as_deref()?;
                // A timer always belongs to the hold it was set for; checked so that a
                // stale one could never show a hold that has ended.
                (hold.timer == *key).then_some(OpenHold {
                    person_id: &t.person,
                    jurisdiction_id: &hold.jurisdiction,
                    detainer_id: &hold.detainer_id,
                    from: hold.from,
                    until: hold.until,
                })
            })
    }

    /// The open first-refusal offers, soonest due first.
    pub fn open_offers(&self) -> impl Iterator<Item = OpenOffer<'_>> {
        self.timers
            .iter()
            .filter(|(_, t)| t.kind == TimerKind::FirstRefusal)
            .filter_map(|(key, t)| {
                let offer = self.people.get(&t.person)?.offer.as_deref()?;
                (offer.timer == *key).then_some(OpenOffer {
                    person_id: &t.person,
                    offer_id: &offer.id,
                    jurisdiction_id: &offer.claim.jurisdiction,
                    detainer_id: &offer.detainer_id,
                    release_at: offer.release_at,
                    respond_by: offer.respond_by,
                })
            })
    }
}
