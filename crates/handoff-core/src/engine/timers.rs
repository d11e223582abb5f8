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
