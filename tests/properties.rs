//! Property tests: random event sequences over a few people, jurisdictions and
//! detainers, with the clock jumping forwards (and sometimes backwards), checked against
//! the invariants handoff promises:
//!
//! - no hold lasts longer than 48 hours, and none is released after its `hold_until`;
//! - every hold ends exactly once once time passes its end;
//! - a person never has two custodians (the engine's view equals the one the decisions
//!   and events imply);
//! - every transfer or release comes from the current custodian, and custody changes
//!   only through a transfer or release decision (or an event naming the custodian of a
//!   person who has none);
//! - a released person held again by a fresh release notice is decided on again;
//! - a writ is executed at most once; nobody ICE detains is placed again;
//! - ICE's occupancy is what the capacity reports and the placements and departures
//!   since imply, never below zero;
//! - R6 moves only detained people to ATD (so nobody in ATD is moved again), each move
//!   frees exactly one bed, and a funding review (R6.1) never moves the convicted and
//!   moves only while occupancy exceeds the funded beds;
//! - no decision without a rule id, and every decision satisfies its schema;
//! - the same events always give the same decisions (a fresh engine, with its own hash
//!   seeds, replays them byte for byte).

use std::collections::HashMap;

use chrono::{TimeDelta, TimeZone, Utc};
use proptest::prelude::*;

#[path = "support/fuzz_checks.rs"]
mod fuzz_checks;

use fuzz_checks::Tracker;
use handoff_core::engine::{Engine, Outcome, Whereabouts};
use handoff_core::model::{
    Answer, CriminalStatus, Custodian, Decision, DecisionBody, Event, EventBody, Factor, Time,
    WritKind,
};

const PEOPLE: u8 = 4;
const JURISDICTIONS: [&str; 3] = ["tx-travis-county", "tx-hays-county", "nv-clark-county"];

#[derive(Debug, Clone)]
enum Op {
    Policy {
        j: usize,
        honors: bool,
        agreement: bool,
    },
    Detainer {
        p: u8,
        d: u8,
        custodian: u8,
        status: u8,
    },
    Withdraw {
        p: u8,
        d: u8,
    },
    Claim {
        p: u8,
        j: usize,
    },
    BopRelease {
        p: u8,
        offset: i64,
    },
    Respond {
        p: u8,
        k: usize,
        accept: bool,
    },
    Writ {
        p: u8,
        j: usize,
        /// Writ ids repeat across steps: a writ issued again must not apply again.
        w: u8,
    },
    LocalRelease {
        p: u8,
        j: usize,
        offset: i64,
    },
    Decline {
        p: u8,
        d: u8,
        j: usize,
    },
    HoldExpired {
        p: u8,
        j: usize,
    },
    Assumed {
        p: u8,
    },
    Capacity {
        funded: u64,
        occupied: u64,
    },
    /// ICE's view of removal (R6.2).
    Removal {
        p: u8,
        foreseeable: bool,
    },
    /// A humanitarian factor (R6.3).
    Factor {
        p: u8,
        medical: bool,
    },
    /// Repeats the `k`th earlier event's `source` + `id` with this step's body.
    Duplicate {
        k: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let p = 0..PEOPLE;
    let j = 0..JURISDICTIONS.len();
    prop_oneof![
        1 => (j.clone(), any::<bool>(), any::<bool>())
            .prop_map(|(j, honors, agreement)| Op::Policy { j, honors, agreement }),
        3 => (p.clone(), 0..3u8, 0..5u8, 0..3u8)
            .prop_map(|(p, d, custodian, status)| Op::Detainer { p, d, custodian, status }),
        1 => (p.clone(), 0..3u8).prop_map(|(p, d)| Op::Withdraw { p, d }),
        2 => (p.clone(), j.clone()).prop_map(|(p, j)| Op::Claim { p, j }),
        3 => (p.clone(), -3000..6000i64).prop_map(|(p, offset)| Op::BopRelease { p, offset }),
        2 => (p.clone(), 0..4usize, any::<bool>())
            .prop_map(|(p, k, accept)| Op::Respond { p, k, accept }),
        1 => (p.clone(), j.clone(), 0..4u8).prop_map(|(p, j, w)| Op::Writ { p, j, w }),
        3 => (p.clone(), j.clone(), -3000..6000i64)
            .prop_map(|(p, j, offset)| Op::LocalRelease { p, j, offset }),
        1 => (p.clone(), 0..3u8, j.clone()).prop_map(|(p, d, j)| Op::Decline { p, d, j }),
        1 => (p.clone(), j.clone()).prop_map(|(p, j)| Op::HoldExpired { p, j }),
        2 => p.clone().prop_map(|p| Op::Assumed { p }),
        1 => (0..5u64, 0..6u64).prop_map(|(funded, occupied)| Op::Capacity { funded, occupied }),
        1 => (p.clone(), any::<bool>()).prop_map(|(p, foreseeable)| Op::Removal { p, foreseeable }),
        1 => (p.clone(), any::<bool>()).prop_map(|(p, medical)| Op::Factor { p, medical }),
        1 => (0..50usize).prop_map(|k| Op::Duplicate { k }),
    ]
}

/// A step of the scenario: how far the sender's clock moves (minutes, sometimes
/// backwards), then the event.
fn steps() -> impl Strategy<Value = Vec<(i64, Op)>> {
    prop::collection::vec((prop_oneof![8 => 0..3000i64, 1 => -600..0i64], op()), 1..80)
}

fn person(p: u8) -> String {
    format!("P-{:04}", 1000 + u32::from(p))
}

fn custodian(c: u8) -> Custodian {
    match c {
        0 => Custodian::Bop("fci-bastrop".to_owned()),
        4 => Custodian::Ice,
        n => Custodian::Local(JURISDICTIONS[usize::from(n) - 1].to_owned()),
    }
}

/// Builds the events of a scenario. Responses name offers the engine made earlier, so
/// they need the decisions so far: events are built while the engine runs.
struct Scenario {
    engine: Engine,
    events: Vec<Event>,
    decisions: Vec<Decision>,
    offers: HashMap<String, Vec<String>>,
    t: Time,
}

impl Scenario {
    fn new() -> Self {
        Scenario {
            engine: Engine::new(),
            events: Vec::new(),
            decisions: Vec::new(),
            offers: HashMap::new(),
            t: Utc.with_ymd_and_hms(2017, 1, 28, 0, 0, 0).unwrap(),
        }
    }

    fn event(&self, dt: i64, op: &Op) -> Event {
        let t = self.t + TimeDelta::minutes(dt);
        let at = |offset: i64| t + TimeDelta::minutes(offset);
        let body = match op.clone() {
            Op::Policy {
                j,
                honors,
                agreement,
            } => EventBody::PolicyUpdated {
                jurisdiction_id: JURISDICTIONS[j].to_owned(),
                name: "County".to_owned(),
                state: "TX".to_owned(),
                honors_detainers: honors,
                return_agreement: agreement,
            },
            Op::Detainer {
                p,
                d,
                custodian: c,
                status,
            } => EventBody::DetainerIssued {
                detainer_id: format!("D-{d}"),
                person_id: person(p),
                custodian: custodian(c),
                criminal_status: [
                    CriminalStatus::Convicted,
                    CriminalStatus::Charged,
                    CriminalStatus::None,
                ][usize::from(status)],
                offenses: vec![],
            },
            Op::Withdraw { p, d } => EventBody::DetainerWithdrawn {
                detainer_id: format!("D-{d}"),
                person_id: person(p),
            },
            Op::Claim { p, j } => EventBody::ClaimLodged {
                claim_id: format!("C-{}", self.events.len()),
                person_id: person(p),
                jurisdiction_id: JURISDICTIONS[j].to_owned(),
                charges: vec![],
            },
            Op::BopRelease { p, offset } => EventBody::BopReleaseScheduled {
                person_id: person(p),
                facility: "fci-bastrop".to_owned(),
                release_at: at(offset),
            },
            Op::Respond { p, k, accept } => {
                let offers = self.offers.get(&person(p));
                EventBody::FirstRefusalResponse {
                    offer_id: offers
                        .and_then(|o| o.get(k % o.len().max(1)).cloned())
                        .unwrap_or_else(|| "no-such-offer".to_owned()),
                    person_id: person(p),
                    answer: if accept {
                        Answer::Accept
                    } else {
                        Answer::Decline
                    },
                }
            }
            Op::Writ { p, j, w } => EventBody::WritIssued {
                writ_id: format!("W-{w}"),
                person_id: person(p),
                jurisdiction_id: JURISDICTIONS[j].to_owned(),
                kind: WritKind::AdProsequendum,
                court: "court".to_owned(),
            },
            Op::LocalRelease { p, j, offset } => EventBody::LocalReleaseDue {
                person_id: person(p),
                jurisdiction_id: JURISDICTIONS[j].to_owned(),
                release_at: at(offset),
            },
            Op::Decline { p, d, j } => EventBody::DetainerDeclined {
                detainer_id: format!("D-{d}"),
                person_id: person(p),
                jurisdiction_id: JURISDICTIONS[j].to_owned(),
            },
            Op::HoldExpired { p, j } => EventBody::HoldExpired {
                person_id: person(p),
                detainer_id: "D-0".to_owned(),
                jurisdiction_id: JURISDICTIONS[j].to_owned(),
            },
            Op::Assumed { p } => EventBody::CustodyAssumed {
                person_id: person(p),
                from: Custodian::Ice,
            },
            Op::Capacity { funded, occupied } => EventBody::CapacityUpdated {
                funded_beds: funded,
                occupied_beds: occupied,
            },
            Op::Removal { p, foreseeable } => EventBody::RemovalStatus {
                person_id: person(p),
                country: "VE".to_owned(),
                foreseeable,
            },
            Op::Factor { p, medical } => EventBody::ReleaseFactor {
                person_id: person(p),
                factor: if medical {
                    Factor::Medical
                } else {
                    Factor::PrimaryCaretaker
                },
            },
            Op::Duplicate { .. } => EventBody::CapacityUpdated {
                funded_beds: 0,
                occupied_beds: 0,
            },
        };
        let (source, id) = match op {
            Op::Duplicate { k } if !self.events.is_empty() => {
                let e = &self.events[k % self.events.len()];
                (e.source.clone(), e.id.clone())
            }
            _ => (
                format!("urn:test:{}", body.type_name()),
                format!("e{}", self.events.len()),
            ),
        };
        Event {
            source,
            id,
            time: t,
            received: None,
            body,
        }
    }
}

/// Every decision names its rule and satisfies its schema.
fn decision_is_sound(d: &Decision) -> Result<(), TestCaseError> {
    prop_assert!(!d.rule.as_str().is_empty());
    let json = handoff::edge::wire::decision_json(d);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    prop_assert!(
        handoff::edge::schemas::validate_decision(&value).is_ok(),
        "decision fails its schema: {json}"
    );
    Ok(())
}

fn same_custodian(a: &Whereabouts, b: &Whereabouts) -> bool {
    match (a, b) {
        (Whereabouts::Held { by: x, .. }, Whereabouts::Held { by: y, .. }) => x == y,
        _ => a == b,
    }
}

fn run(steps: &[(i64, Op)]) -> Result<Scenario, TestCaseError> {
    let mut s = Scenario::new();
    let mut tracker = Tracker::default();
    for (dt, op) in steps {
        let event = s.event(*dt, op);
        s.t = event.time;
        let step = s.engine.handle(&event);
        if step.outcome == Outcome::Duplicate {
            prop_assert!(step.decisions.is_empty());
        }
        for d in &step.decisions {
            decision_is_sound(d)?;
            if let DecisionBody::Offer { offer_id, .. } = &d.body {
                s.offers
                    .entry(d.person_id.clone())
                    .or_default()
                    .push(offer_id.clone());
            }
        }
        let clock = s.engine.clock().expect("an event sets the clock");
        tracker
            .step(&event, &step.outcome, clock, &step.decisions)
            .map_err(TestCaseError::fail)?;
        tracker
            .counts_agree(&s.engine)
            .map_err(TestCaseError::fail)?;
        for p in 0..PEOPLE {
            let p = person(p);
            prop_assert!(
                same_custodian(&s.engine.whereabouts(&p), &tracker.get(&p)),
                "engine and decisions disagree on {}: {:?} vs {:?}",
                p,
                s.engine.whereabouts(&p),
                tracker.get(&p)
            );
        }
        s.events.push(event);
        s.decisions.extend(step.decisions);
    }
    // Once time passes every deadline (the longest, R6.2's, is 180 days from a detention
    // that began before now), every hold has ended, exactly once.
    let end = s.t + TimeDelta::days(181);
    for d in s.engine.fire(end) {
        decision_is_sound(&d)?;
        tracker.decision(&d).map_err(TestCaseError::fail)?;
        s.decisions.push(d);
    }
    tracker
        .counts_agree(&s.engine)
        .map_err(TestCaseError::fail)?;
    prop_assert!(
        tracker.holds.is_empty(),
        "holds still open: {:?}",
        tracker.holds
    );
    prop_assert_eq!(tracker.holds_made, tracker.holds_ended);
    prop_assert_eq!(s.engine.next_deadline(), None);
    Ok(s)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_for_random_event_sequences(steps in steps()) {
        run(&steps)?;
    }

    #[test]
    fn replay_is_deterministic(steps in steps()) {
        let first = run(&steps)?;
        // A fresh engine (new hash seeds) fed the same events gives the same decisions.
        let mut engine = Engine::new();
        let mut again = Vec::new();
        for e in &first.events {
            again.extend(engine.handle(e).decisions);
        }
        again.extend(engine.fire(first.t + TimeDelta::days(181)));
        prop_assert_eq!(&first.decisions, &again);
    }
}
