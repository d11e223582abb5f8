//! `handoff explain`: one person's timeline from a journal, every event about them and
//! every decision, each decision with the rule that fired and the facts that made it fire.
//!
//! The whole log is replayed (other people's events shape this person's decisions too:
//! policies, capacity), but only this person's entries are kept, so memory stays small.
//! An explanation is a rendering of the decision and the facts its rule recorded when it
//! fired (`Decision::why`: a detainer's criminal status, the claimant's claim and
//! policy, ICE's beds): nothing is re-derived here, so it cannot drift from the rules.
//! Only the display names of jurisdictions are looked up, in the engine at that moment.

use std::fmt::Write as _;

use serde::Serialize;

use crate::answers::replay::{Seen, note_for};
use crate::answers::report::capacity::grouped;
use crate::edge::wire::{self, format_time};
use handoff_core::engine::Engine;
use handoff_core::model::{
    Answer, Basis, Custodian, Decision, DecisionBody, Event, EventBody, Factor, Party, Placement,
    Rule,
};
use handoff_core::why::{ClaimFacts, DetainerFacts, Order, Why};

/// One line of a timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    /// The engine's clock time (for a decision, its `time`).
    pub time: String,
    /// The log line of the event, or of the event that caused the decision; `None` for
    /// timers fired by `--until`.
    pub line: Option<u64>,
    #[serde(flatten)]
    pub what: What,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum What {
    /// An event about the person (or one that decided something for them).
    Event {
        #[serde(rename = "type")]
        ty: String,
        id: String,
        source: String,
        summary: String,
        /// Duplicate, no effect, or rejected, when it was.
        #[serde(skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// A decision about the person.
    Decision {
        rule: String,
        #[serde(rename = "type")]
        ty: String,
        id: String,
        caused_by: String,
        explanation: String,
        /// Who was told of it: its parties' keys, sorted (ICD section 4).
        told: Vec<String>,
        decision: serde_json::Value,
    },
}

/// A person's timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timeline {
    pub person_id: String,
    pub entries: Vec<Entry>,
}

/// Collects one person's timeline while a log is replayed.
pub struct Explainer {
    person_id: String,
    timeline: Vec<Entry>,
}

impl Explainer {
    pub fn new(person_id: &str) -> Self {
        Explainer {
            person_id: person_id.to_owned(),
            timeline: Vec::new(),
        }
    }

    /// Feed every item of `replay::run`.
    pub fn observe(&mut self, engine: &Engine, seen: &Seen<'_>) {
        match seen {
            Seen::Event { line, event, step } => {
                let mine: Vec<&Decision> = step
                    .decisions
                    .iter()
                    .filter(|d| d.person_id == self.person_id)
                    .collect();
                let about_me = event.person_id() == Some(self.person_id.as_str());
                if !about_me && mine.is_empty() {
                    return;
                }
                let clock = engine.clock().map(|t| format_time(&t)).unwrap_or_default();
                // Decisions fired by timers come before the event's own.
                let (timers, own): (Vec<&Decision>, Vec<&Decision>) = mine
                    .into_iter()
                    .partition(|d| d.caused_by.starts_with("timer:"));
                for d in timers {
                    self.decision(engine, Some(*line), d);
                }
                // Someone else's event that only happened to fire this person's timer is
                // not part of their story; the timer decision is.
                if !about_me && own.is_empty() {
                    return;
                }
                self.timeline.push(Entry {
                    time: clock,
                    line: Some(*line),
                    what: What::Event {
                        ty: event.body.type_name().to_owned(),
                        id: event.id.clone(),
                        source: event.source.clone(),
                        summary: summarize(engine, event),
                        note: note_for(&step.outcome).map(|n| n.to_string()),
                    },
                });
                for d in own {
                    self.decision(engine, Some(*line), d);
                }
            }
            Seen::Invalid { .. } => {}
            Seen::End { decisions } => {
                for d in decisions.iter() {
                    if d.person_id == self.person_id {
                        self.decision(engine, None, d);
                    }
                }
            }
        }
    }

    pub fn finish(self) -> Timeline {
        Timeline {
            person_id: self.person_id,
            entries: self.timeline,
        }
    }

    fn decision(&mut self, engine: &Engine, line: Option<u64>, d: &Decision) {
        let json: serde_json::Value =
            serde_json::from_str(&wire::decision_json(d)).expect("decisions are JSON");
        self.timeline.push(Entry {
            time: format_time(&d.time),
            line,
            what: What::Decision {
                rule: d.rule.as_str().to_owned(),
                ty: d.body.type_name().to_owned(),
                id: d.id.clone(),
                caused_by: d.caused_by.clone(),
                explanation: explain(engine, d),
                told: d.parties.iter().map(Party::key).collect(),
                decision: json,
            },
        });
    }
}

/// A jurisdiction as people know it: "Travis County (tx-travis-county)", or its id.
fn jur(engine: &Engine, id: &str) -> String {
    match engine.policy(id) {
        Some(p) if !p.name.is_empty() => format!("{} ({id})", p.name),
        _ => id.to_owned(),
    }
}

fn custodian(engine: &Engine, c: &Custodian) -> String {
    match c {
        Custodian::Bop(f) => format!("BOP {f}"),
        Custodian::Local(j) => jur(engine, j),
        Custodian::Ice => "ICE".to_owned(),
    }
}

/// One line about an event, in words.
fn summarize(engine: &Engine, e: &Event) -> String {
    match &e.body {
        EventBody::PolicyUpdated {
            jurisdiction_id,
            honors_detainers,
            return_agreement,
            ..
        } => format!(
            "{} policy: {} detainers, {} return agreement",
            jur(engine, jurisdiction_id),
            if *honors_detainers {
                "honors"
            } else {
                "does not honor"
            },
            if *return_agreement { "has a" } else { "no" }
        ),
        EventBody::DetainerIssued {
            detainer_id,
            custodian: c,
            criminal_status,
            offenses,
            ..
        } => format!(
            "ICE detainer {detainer_id} lodged with {} ({}{}{})",
            custodian(engine, c),
            criminal_status.as_str(),
            if offenses.is_empty() { "" } else { ": " },
            offenses.join(", ")
        ),
        EventBody::DetainerWithdrawn { detainer_id, .. } => {
            format!("ICE withdrew detainer {detainer_id}")
        }
        EventBody::ClaimLodged {
            claim_id,
            jurisdiction_id,
            charges,
            ..
        } => format!(
            "{} lodged claim {claim_id} ({})",
            jur(engine, jurisdiction_id),
            charges.join(", ")
        ),
        EventBody::BopReleaseScheduled {
            facility,
            release_at,
            ..
        } => format!(
            "BOP {facility} schedules release at {}",
            format_time(release_at)
        ),
        EventBody::FirstRefusalResponse {
            offer_id, answer, ..
        } => format!(
            "ICE {} first-refusal offer {offer_id}",
            match answer {
                Answer::Accept => "accepts",
                Answer::Decline => "declines",
            }
        ),
        EventBody::WritIssued {
            writ_id,
            jurisdiction_id,
            court,
            ..
        } => format!(
            "{court} issues writ {writ_id} delivering the person to {}",
            jur(engine, jurisdiction_id)
        ),
        EventBody::LocalReleaseDue {
            jurisdiction_id,
            release_at,
            ..
        } => format!(
            "{} would release the person at {}",
            jur(engine, jurisdiction_id),
            format_time(release_at)
        ),
        EventBody::DetainerDeclined {
            detainer_id,
            jurisdiction_id,
            ..
        } => format!(
            "{} declines detainer {detainer_id}",
            jur(engine, jurisdiction_id)
        ),
        EventBody::HoldExpired {
            jurisdiction_id, ..
        } => format!(
            "{} reports the 48-hour hold expired",
            jur(engine, jurisdiction_id)
        ),
        EventBody::CustodyAssumed { from, .. } => {
            format!(
                "ICE takes physical custody from {}",
                custodian(engine, from)
            )
        }
        EventBody::CapacityUpdated {
            funded_beds,
            occupied_beds,
        } => format!(
            "ICE capacity: {} of {} funded beds occupied",
            grouped(*occupied_beds),
            grouped(*funded_beds)
        ),
        EventBody::RemovalStatus {
            country,
            foreseeable,
            ..
        } => format!(
            "ICE removal status: to {country}, removal {} in the reasonably foreseeable future",
            if *foreseeable {
                "expected"
            } else {
                "not expected"
            }
        ),
        EventBody::ReleaseFactor { factor: f, .. } => {
            format!("ICE verifies a humanitarian factor: {}", factor(*f))
        }
    }
}

/// "ICE detainer D-1 active (convicted: drug trafficking)", from the facts when the
/// rule weighed the detainer, else from the id on the decision.
fn detainer(facts: Option<&DetainerFacts>, id: Option<&str>) -> String {
    match (facts, id) {
        (Some(d), _) => {
            let status = d.criminal_status.as_str();
            if d.offenses.is_empty() {
                format!("ICE detainer {} active ({status})", d.id)
            } else {
                format!(
                    "ICE detainer {} active ({status}: {})",
                    d.id,
                    d.offenses.join(", ")
                )
            }
        }
        (None, Some(id)) => format!("ICE detainer {id} active"),
        (None, None) => "no active ICE detainer".to_owned(),
    }
}

/// "Travis County (tx-travis-county) claim C-304 pending".
fn claim(engine: &Engine, j: &str, facts: Option<&ClaimFacts>, id: Option<&str>) -> String {
    let id = facts.map(|c| &*c.id).or(id).unwrap_or("?");
    format!("{} claim {id} pending", jur(engine, j))
}

/// The facts a decision's rule weighed, in words: rendered from the decision and its
/// [`Why`], never re-derived. One arm per rule, so a new rule does not compile until it
/// has a rendering.
fn facts(engine: &Engine, d: &Decision) -> String {
    let why = &d.why;
    let (to, detainer_id, claim_id, writ_id, offer_id) = match &d.body {
        DecisionBody::Transfer {
            to,
            detainer_id,
            claim_id,
            writ_id,
            offer_id,
            ..
        } => (
            Some(to),
            detainer_id.as_deref(),
            claim_id.as_deref(),
            writ_id.as_deref(),
            offer_id.as_deref(),
        ),
        DecisionBody::Release { detainer_id, .. } => {
            (None, detainer_id.as_deref(), None, None, None)
        }
        DecisionBody::Offer {
            detainer_id,
            offer_id,
            ..
        } => (
            None,
            Some(detainer_id.as_str()),
            None,
            None,
            Some(offer_id.as_str()),
        ),
        DecisionBody::Hold { detainer_id, .. } => {
            (None, Some(detainer_id.as_str()), None, None, None)
        }
        DecisionBody::Placement { .. } => (None, None, None, None, None),
    };
    // The jurisdiction the rule is about: the receiving one, the holder, the claimant.
    let j = match (&d.body, to) {
        (_, Some(Custodian::Local(j))) => j.as_str(),
        (DecisionBody::Release { from, .. }, _) => from.id(),
        (
            DecisionBody::Offer {
                jurisdiction_id, ..
            },
            _,
        )
        | (
            DecisionBody::Hold {
                jurisdiction_id, ..
            },
            _,
        ) => jurisdiction_id,
        _ => "?",
    };
    let the_detainer = detainer(why.detainer(), detainer_id);
    let offer = offer_id.unwrap_or("?");
    let writ = || {
        let id = writ_id.unwrap_or("?");
        match why.writ() {
            Some(w) => format!("writ {id} from {}", w.court),
            None => format!("writ {id}"),
        }
    };
    let with_detainer = |lead: String| {
        if detainer_id.is_some() {
            format!("{lead}; {the_detainer}")
        } else {
            lead
        }
    };
    let honors = why.stance().is_some_and(|s| s.honors_detainers);
    match d.rule {
        Rule::R1_1 => with_detainer(format!(
            "BOP release; {} for {} decides first",
            writ(),
            jur(engine, j)
        )),
        Rule::R1_2 => format!("BOP release; {the_detainer}; no local claim pending"),
        Rule::R1_3 => format!(
            "BOP release; no active ICE detainer; {}",
            claim(engine, j, why.claim(), claim_id)
        ),
        Rule::R1_4 => "BOP release; no active ICE detainer; no local claim".to_owned(),
        Rule::R1_5 => format!(
            "BOP release; {the_detainer}; {}; {} has a return agreement",
            claim(engine, j, why.claim(), claim_id),
            jur(engine, j)
        ),
        Rule::R1_6 => format!(
            "{the_detainer}; {}; {} has no return agreement and {} detainers",
            claim(engine, j, why.claim(), claim_id),
            jur(engine, j),
            if honors { "honors" } else { "does not honor" },
        ),
        Rule::R1_7 => match why {
            Why::OfferEnds {
                custody_assumed: true,
                ..
            } => format!(
                "ICE takes custody while its first-refusal offer {offer} is open: the offer \
                 is accepted"
            ),
            _ => format!("ICE accepts first-refusal offer {offer} before its deadline"),
        },
        Rule::R1_8 => format!("ICE declines first-refusal offer {offer}"),
        Rule::R1_9 => {
            format!("no answer from ICE to first-refusal offer {offer} by its deadline")
        }
        Rule::R1_10 => with_detainer(format!(
            "{} for {} arrives while ICE's first refusal {offer} is open: the offer is void",
            writ(),
            jur(engine, j)
        )),
        Rule::R1_11 => format!(
            "ICE withdraws its detainer while first-refusal offer {offer} is open: the offer \
             is void"
        ),
        Rule::R2_1 => with_detainer(format!("held by ICE; {} for {}", writ(), jur(engine, j))),
        Rule::R2_2 => format!(
            "held by ICE; {}; {} has a return agreement",
            claim(engine, j, why.claim(), claim_id),
            jur(engine, j)
        ),
        Rule::R3_1 => format!("{} releases; no active ICE detainer", jur(engine, j)),
        Rule::R3_2 => format!(
            "{} releases; {the_detainer}; {}",
            jur(engine, j),
            if honors {
                "the jurisdiction declined this detainer".to_owned()
            } else {
                format!("{} does not honor detainers", jur(engine, j))
            }
        ),
        Rule::R3_3 => {
            let from = match why {
                Why::LocalRelease { release_at, .. } => format_time(release_at),
                _ => "?".to_owned(),
            };
            format!(
                "{} would release at {from}; {the_detainer}; {} honors detainers and has not \
                 declined this one",
                jur(engine, j),
                jur(engine, j)
            )
        }
        Rule::R3_4 => format!(
            "ICE takes custody during the 48-hour hold on {}",
            detainer_id.unwrap_or("?")
        ),
        Rule::R3_5 => match why {
            Why::HoldEnds { on_timer: true, .. } => {
                "the 48-hour hold ran out with no pickup by ICE".to_owned()
            }
            _ => format!("{} reports the hold expired", jur(engine, j)),
        },
        Rule::R3_6 => format!(
            "ICE withdraws detainer {} during the hold",
            detainer_id.unwrap_or("?")
        ),
        Rule::R3_7 => format!(
            "{} declines detainer {} during the hold",
            jur(engine, j),
            detainer_id.unwrap_or("?")
        ),
        Rule::R4_1 => {
            let from = match &d.body {
                DecisionBody::Transfer { from, .. } => custodian(engine, from),
                _ => "?".to_owned(),
            };
            with_detainer(format!(
                "ICE takes custody of a person {from} holds, with no first-refusal offer open \
                 and no hold"
            ))
        }
        Rule::R4_2 => {
            let (status, beds) = match why {
                Why::Placement {
                    criminal_status,
                    beds,
                } => (
                    criminal_status.map_or("none (no detainer)", |s| s.as_str()),
                    match beds {
                        None => "ICE capacity unknown".to_owned(),
                        Some(b) => format!(
                            "{} of {} funded beds occupied",
                            grouped(b.occupied),
                            grouped(b.funded)
                        ),
                    },
                ),
                _ => ("?", "?".to_owned()),
            };
            format!("ICE holds the person; criminal status {status}; {beds}")
        }
        Rule::R6_1 | Rule::R6_2 | Rule::R6_3 => review(d, why),
    }
}

/// The facts of an R6 detention review, from its [`Why::Review`]: what the rule weighed
/// (beds for R6.1, the removal status and detention start for R6.2, the humanitarian
/// factor for R6.3), then the rest of what ICE had reported about the person; for a
/// funding review, also who came next and which criterion of the order put this person
/// first ("R6.1: occupancy 41,620 over 41,500 funded beds; criminal status none; ...").
fn review(d: &Decision, why: &Why) -> String {
    let rule = d.rule;
    let Why::Review(r) = why else {
        return "ICE detention review".to_owned();
    };
    let mut parts = Vec::new();
    if let (Rule::R6_1, Some(b)) = (rule, &r.beds) {
        parts.push(format!(
            "occupancy {} over {} funded beds",
            grouped(b.occupied),
            grouped(b.funded)
        ));
    }
    if rule == Rule::R6_3 && r.detained_since.is_none() {
        parts.push("placed in ATD in place of R4.2's placement".to_owned());
    }
    parts.push(format!(
        "criminal status {}",
        r.criminal_status
            .map_or("none (no detainer)", |s| s.as_str())
    ));
    parts.push(match r.factor {
        Some(f) => format!("humanitarian factor: {}", factor(f)),
        None => "no humanitarian factor".to_owned(),
    });
    parts.push(match &r.removal {
        Some(removal) if removal.foreseeable => {
            format!("removal foreseeable ({})", removal.country)
        }
        Some(removal) => format!("removal not foreseeable ({})", removal.country),
        None => "no removal status".to_owned(),
    });
    if let Some(since) = &r.detained_since {
        parts.push(format!("detained since {}", format_time(since)));
        if rule == Rule::R6_2 {
            let reached = *since + handoff_core::engine::PROLONGED;
            parts.push(if d.caused_by.starts_with("timer:") {
                format!("180 days of detention reached at {}", format_time(&reached))
            } else {
                format!(
                    "180 days of detention had passed already (at {})",
                    format_time(&reached)
                )
            });
        }
    }
    if rule == Rule::R6_1 {
        parts.push(match &r.ahead_of {
            Some(a) => format!(
                "first in review order, before {} ({})",
                a.person_id,
                match a.by {
                    Order::CriminalStatus => "charged: none comes first",
                    Order::Factor => "no humanitarian factor",
                    Order::Removal => "removal foreseeable or unknown",
                    Order::DetainedLonger => "detained since later",
                    Order::PersonId => "detained as long: by person id",
                }
            ),
            None => "the only detained person a funding review may move".to_owned(),
        });
    }
    parts.join("; ")
}

/// A humanitarian factor in words.
fn factor(f: Factor) -> &'static str {
    match f {
        Factor::Medical => "medical",
        Factor::PrimaryCaretaker => "primary caretaker of children",
    }
}

/// The facts behind a decision and what was decided, as one sentence:
/// "R1.6: facts; facts → outcome".
fn explain(engine: &Engine, d: &Decision) -> String {
    let at = |t| format_time(t);
    let outcome = match &d.body {
        DecisionBody::Offer { respond_by, .. } => {
            format!("first-refusal offer to ICE, answer due {}", at(respond_by))
        }
        DecisionBody::Transfer {
            from,
            to,
            basis,
            conditions,
            effective_at,
            ..
        } => {
            let conditions: Vec<&str> = conditions.iter().map(|c| c.as_str()).collect();
            format!(
                "transfer from {} to {} at {} ({}{}{})",
                custodian(engine, from),
                custodian(engine, to),
                at(effective_at),
                basis.as_str(),
                if conditions.is_empty() { "" } else { "; " },
                conditions.join(", ")
            )
        }
        DecisionBody::Hold {
            hold_from,
            hold_until,
            ..
        } => format!(
            "held for ICE from {} until {} (48 hours at most)",
            at(hold_from),
            at(hold_until)
        ),
        DecisionBody::Release {
            from,
            basis,
            effective_at,
            ..
        } => {
            let declined = if *basis == Basis::DetainerDeclined {
                ": a declined detainer"
            } else {
                ""
            };
            format!(
                "released from {} at {} ({}){declined}",
                custodian(engine, from),
                at(effective_at),
                basis.as_str()
            )
        }
        DecisionBody::Placement {
            placement,
            monitoring,
            basis,
        } => {
            let placed = match (placement, monitoring) {
                (Placement::Detain, _) => "detained".to_owned(),
                (Placement::Atd, Some(m)) => format!("Alternatives to Detention, {}", m.as_str()),
                (Placement::Atd, None) => "Alternatives to Detention".to_owned(),
            };
            format!("{placed} ({})", basis.as_str())
        }
    };
    format!("{}: {} → {outcome}", d.rule.as_str(), facts(engine, d))
}

impl Timeline {
    /// The timeline as text for people: a header, then one line per entry, decisions
    /// indented under the event that caused them.
    pub(crate) fn to_text(&self) -> String {
        let events = self
            .entries
            .iter()
            .filter(|e| matches!(e.what, What::Event { .. }))
            .count();
        let decisions = self.entries.len() - events;
        let mut out = format!(
            "{}: {events} events, {decisions} decisions\n",
            self.person_id
        );
        for e in &self.entries {
            let line = e.line.map_or("end".to_owned(), |n| format!("line {n}"));
            match &e.what {
                What::Event {
                    ty, summary, note, ..
                } => {
                    let _ = write!(out, "\n{}  {line:<10} {ty}: {summary}", e.time);
                    if let Some(n) = note {
                        let _ = write!(out, " [{n}]");
                    }
                    out.push('\n');
                }
                What::Decision {
                    ty,
                    explanation,
                    told,
                    ..
                } => {
                    let _ = writeln!(out, "  {}  → {ty} {explanation}", e.time);
                    let _ = writeln!(out, "{:24}told: {}", "", told.join(", "));
                }
            }
        }
        out
    }
}
