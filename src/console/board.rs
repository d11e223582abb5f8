//! What the console's board shows, as plain data: the open holds and offers, the latest
//! decisions, dead letters by reason, ICE occupancy and the instance's role.
//!
//! Sans IO, like the engine: a [`Board`] is built from an [`Engine`] and a [`Recent`] at a
//! time given by the caller. The live service builds one at most about once a second (see
//! `live::service`) and the offline console once, at the end of its replay; the pages render
//! whichever they are given.

use std::collections::{BTreeMap, VecDeque};

use handoff_core::engine::Engine;
use handoff_core::model::{Decision, Party, Time};

use crate::journal::feed::Seen;

/// How many of the latest decisions the board lists.
pub(crate) const LATEST: usize = 50;

/// One decision as the board lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecisionRow {
    pub(crate) id: String,
    pub(crate) time: Time,
    pub(crate) person_id: String,
    pub(crate) decision_type: &'static str,
    pub(crate) rule: &'static str,
    /// The keys of the parties told (`party.ice`, …), in order.
    pub(crate) parties: Vec<String>,
}

/// The decisions and dead letters seen so far: the latest few, and counts.
///
/// Fed by the pipeline as it decides (and by recovery, so a restarted service still lists
/// what it decided before) or by a replay's observer ([`Recent::observe`]).
#[derive(Debug, Clone, Default)]
pub struct Recent {
    latest: VecDeque<DecisionRow>,
    by_rule: BTreeMap<(&'static str, &'static str), u64>,
    dead_letters: BTreeMap<&'static str, u64>,
}

impl Recent {
    /// One decision, in decision order.
    pub(crate) fn decision(&mut self, d: &Decision) {
        let decision_type = d.body.decision_type().as_str();
        let rule = d.rule.as_str();
        *self.by_rule.entry((decision_type, rule)).or_default() += 1;
        if self.latest.len() == LATEST {
            self.latest.pop_front();
        }
        self.latest.push_back(DecisionRow {
            id: d.id.clone(),
            time: d.time,
            person_id: d.person_id.clone(),
            decision_type,
            rule,
            parties: d.parties.iter().map(Party::key).collect(),
        });
    }

    /// One dead letter, by its reason code (`schema`, `unknown_offer`, …).
    pub(crate) fn dead_letter(&mut self, reason: &'static str) {
        *self.dead_letters.entry(reason).or_default() += 1;
    }

    /// A replay's observer: every decision, and as dead letters what the live service
    /// would have dead-lettered (invalid lines, the rules' refusals).
    pub fn observe(&mut self, seen: &Seen<'_>) {
        match seen {
            Seen::Event { step, .. } => {
                for d in &step.decisions {
                    self.decision(d);
                }
                if let handoff_core::engine::Outcome::Rejected(r) = step.outcome {
                    self.dead_letter(r.as_str());
                }
            }
            Seen::Invalid { error, .. } => self.dead_letter(error.code().as_str()),
            Seen::End { decisions } => {
                for d in *decisions {
                    self.decision(d);
                }
            }
        }
    }
}

/// An open 48-hour hold on the board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldRow {
    pub(crate) person_id: String,
    pub(crate) jurisdiction_id: String,
    pub(crate) detainer_id: String,
    pub(crate) from: Time,
    pub(crate) until: Time,
}

/// An open first-refusal offer on the board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferRow {
    pub(crate) person_id: String,
    pub(crate) offer_id: String,
    pub(crate) jurisdiction_id: String,
    pub(crate) detainer_id: String,
    pub(crate) release_at: Time,
    pub(crate) respond_by: Time,
}

/// What an instance is, when several share a stream journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The only instance (file journal).
    Single,
    /// The instance that writes the stream journal and decides.
    Writer { epoch: u64 },
    /// A hot standby tailing the stream.
    Standby,
    /// An offline console over a log: nothing live.
    Replay,
}

/// Everything the board page shows, as of [`Board::as_of`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Board {
    /// The time "time left" counts from: the wall clock for the live service, the log's
    /// last clock time for a replay.
    pub(crate) as_of: Time,
    /// The engine's clock: the latest time it was given.
    pub(crate) clock: Option<Time>,
    pub(crate) role: Role,
    pub(crate) holds: Vec<HoldRow>,
    pub(crate) offers: Vec<OfferRow>,
    /// Newest first.
    pub(crate) latest: Vec<DecisionRow>,
    /// Decisions by (type, rule), in that order.
    pub(crate) by_rule: Vec<((&'static str, &'static str), u64)>,
    pub(crate) dead_letters: Vec<(&'static str, u64)>,
    /// ICE's `(funded, occupied)` beds, once a capacity was reported.
    pub(crate) capacity: Option<(u64, u64)>,
    pub(crate) people: usize,
}

impl Board {
    /// The board of `engine` and `recent` as of `as_of`, for an instance in `role`.
    pub fn build(engine: &Engine, recent: &Recent, as_of: Time, role: Role) -> Board {
        Board {
            as_of,
            clock: engine.clock(),
            role,
            holds: engine
                .open_holds()
                .map(|h| HoldRow {
                    person_id: h.person_id.to_owned(),
                    jurisdiction_id: h.jurisdiction_id.to_owned(),
                    detainer_id: h.detainer_id.to_owned(),
                    from: h.from,
                    until: h.until,
                })
                .collect(),
            offers: engine
                .open_offers()
                .map(|o| OfferRow {
                    person_id: o.person_id.to_owned(),
                    offer_id: o.offer_id.to_owned(),
                    jurisdiction_id: o.jurisdiction_id.to_owned(),
                    detainer_id: o.detainer_id.to_owned(),
                    release_at: o.release_at,
                    respond_by: o.respond_by,
                })
                .collect(),
            latest: recent.latest.iter().rev().cloned().collect(),
            by_rule: recent.by_rule.iter().map(|(k, v)| (*k, *v)).collect(),
            dead_letters: recent.dead_letters.iter().map(|(k, v)| (*k, *v)).collect(),
            capacity: engine.capacity(),
            people: engine.people(),
        }
    }

    /// The open holds, soonest ending first.
    pub fn holds(&self) -> &[HoldRow] {
        &self.holds
    }

    /// The open first-refusal offers, soonest due first.
    pub fn offers(&self) -> &[OfferRow] {
        &self.offers
    }

    /// The board before anything was recovered (the live service's first moments).
    pub(crate) fn empty(as_of: Time, role: Role) -> Board {
        Board::build(&Engine::new(), &Recent::default(), as_of, role)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::feed;

    fn board_of(log: &str) -> Board {
        let mut engine = Engine::new();
        let mut recent = Recent::default();
        feed::run(&mut engine, log.as_bytes(), None, |_, seen| {
            recent.observe(&seen);
            Ok(())
        })
        .unwrap();
        let as_of = engine.clock().unwrap();
        Board::build(&engine, &recent, as_of, Role::Replay)
    }

    #[test]
    fn the_sample_week_ends_with_its_holds_and_offers_in_deadline_order() {
        let log = std::fs::read_to_string("samples/week.jsonl").unwrap();
        let board = board_of(&log);
        assert!(board.latest.len() <= LATEST && !board.latest.is_empty());
        assert!(board.latest.windows(2).all(|w| w[0].time >= w[1].time));
        assert!(board.holds.windows(2).all(|w| w[0].until <= w[1].until));
        assert!(
            board
                .offers
                .windows(2)
                .all(|w| w[0].respond_by <= w[1].respond_by)
        );
        let total: u64 = board.by_rule.iter().map(|(_, n)| n).sum();
        let (decisions, _, _) = crate::answers::replay::replay_str(&log, None);
        assert_eq!(total as usize, decisions.lines().count());
    }

    #[test]
    fn a_hold_is_on_the_board_until_it_ends() {
        // A county jail books a person on an ICE detainer: a 48-hour hold opens (R3.3).
        let log = std::fs::read_to_string("samples/week.jsonl").unwrap();
        let mut engine = Engine::new();
        let mut recent = Recent::default();
        let mut most = 0;
        let mut seen_holds = 0;
        feed::run(&mut engine, log.as_bytes(), None, |engine, seen| {
            recent.observe(&seen);
            let n = engine.open_holds().count();
            if let Seen::Event { step, .. } = &seen {
                seen_holds += step
                    .decisions
                    .iter()
                    .filter(|d| d.rule.as_str() == "R3.3")
                    .count();
            }
            most = most.max(n);
            Ok(())
        })
        .unwrap();
        assert!(seen_holds > 0, "the sample week has a hold");
        assert!(most > 0, "a hold was open at some point");
        // Once every timer has fired, no hold is open.
        let end = engine.clock().unwrap() + chrono::TimeDelta::days(30);
        engine.fire(end);
        assert_eq!(engine.open_holds().count(), 0);
        assert_eq!(engine.open_offers().count(), 0);
    }
}
