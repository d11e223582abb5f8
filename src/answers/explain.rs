//! `handoff explain`: one person's timeline from a journal, every event about them and
//! every decision, each decision with the rule that fired and the facts that made it fire.
//!
//! The whole log is replayed (other people's events shape this person's decisions too:
//! policies, capacity), but only this person's entries are kept, so memory stays small.
//! The facts come from the decision itself, the person's own events (a detainer's
//! criminal status, which claim a jurisdiction lodged) and the engine's state at that
//! moment (a jurisdiction's policy, ICE's beds): the explanation is what the engine saw.

use std::fmt::Write as _;

use serde::Serialize;

use crate::answers::replay::{Seen, note_for};
use crate::edge::wire::{self, format_time};
use handoff_core::engine::{Engine, Outcome};
use handoff_core::model::{
    Answer, Basis, Custodian, Decision, DecisionBody, Event, EventBody, Placement, Rule,
};

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
        decision: serde_json::Value,
    },
}

/// A person's timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timeline {
    pub person_id: String,
    pub entries: Vec<Entry>,
}

/// What the person's own events say, for the facts of later decisions.
#[derive(Debug, Default)]
struct Context {
    /// (detainer id, criminal status, offenses), latest issue last.
    detainers: Vec<(String, &'static str, Vec<String>)>,
    /// (claim id, jurisdiction).
    claims: Vec<(String, String)>,
    /// (writ id, jurisdiction, court).
    writs: Vec<(String, String, String)>,
}

/// Collects one person's timeline while a log is replayed.
pub struct Explainer {
    person_id: String,
    context: Context,
    timeline: Vec<Entry>,
}

impl Explainer {
    pub fn new(person_id: &str) -> Self {
        Explainer {
            person_id: person_id.to_owned(),
            context: Context::default(),
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
                if about_me && step.outcome != Outcome::Duplicate {
                    self.learn(event);
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

    fn learn(&mut self, event: &Event) {
        match &event.body {
            EventBody::DetainerIssued {
                detainer_id,
                criminal_status,
                offenses,
                ..
            } => {
                self.context.detainers.retain(|(d, _, _)| d != detainer_id);
                self.context.detainers.push((
                    detainer_id.clone(),
                    criminal_status.as_str(),
                    offenses.clone(),
                ));
            }
            EventBody::ClaimLodged {
                claim_id,
                jurisdiction_id,
                ..
            } => self
                .context
                .claims
                .push((claim_id.clone(), jurisdiction_id.clone())),
            EventBody::WritIssued {
                writ_id,
                jurisdiction_id,
                court,
                ..
            } => self
                .context
                .writs
                .push((writ_id.clone(), jurisdiction_id.clone(), court.clone())),
            _ => {}
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
                explanation: explain(engine, &self.context, d),
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
        } => format!("ICE capacity: {occupied_beds} of {funded_beds} funded beds occupied"),
    }
}

/// The facts behind a decision and what was decided, as one sentence:
/// "facts; facts → outcome".
fn explain(engine: &Engine, ctx: &Context, d: &Decision) -> String {
    let status = |id: &str| {
        ctx.detainers
            .iter()
            .find(|(d, _, _)| d == id)
            .map(|(_, s, o)| {
                if o.is_empty() {
                    (*s).to_owned()
                } else {
                    format!("{s}: {}", o.join(", "))
                }
            })
    };
    let detainer = |id: &Option<String>| -> String {
        match id {
            Some(id) => match status(id) {
                Some(s) => format!("ICE detainer {id} active ({s})"),
                None => format!("ICE detainer {id} active"),
            },
            None => "no active ICE detainer".to_owned(),
        }
    };
    let claim = |j: &str, id: &Option<String>| -> String {
        let id = id
            .clone()
            .or_else(|| {
                ctx.claims
                    .iter()
                    .rev()
                    .find(|(_, cj)| cj == j)
                    .map(|(c, _)| c.clone())
            })
            .unwrap_or_else(|| "?".to_owned());
        format!("{} claim {id} pending", jur(engine, j))
    };
    let at = |t| format_time(t);
    let mut s = String::new();
    let rule = d.rule;
    match &d.body {
        DecisionBody::Offer {
            jurisdiction_id,
            jurisdiction_honors_detainers,
            respond_by,
            detainer_id,
            ..
        } => {
            let _ = write!(
                s,
                "{}; {}; {} has no return agreement and {} detainers → first-refusal offer to ICE, \
                 answer due {}",
                detainer(&Some(detainer_id.clone())),
                claim(jurisdiction_id, &None),
                jur(engine, jurisdiction_id),
                if *jurisdiction_honors_detainers {
                    "honors"
                } else {
                    "does not honor"
                },
                at(respond_by)
            );
        }
        DecisionBody::Transfer {
            from,
            to,
            basis,
            conditions,
            effective_at,
            detainer_id,
            claim_id,
            writ_id,
            offer_id,
        } => {
            let to_name = custodian(engine, to);
            let facts = match (rule, to) {
                (Rule::R1_1 | Rule::R1_10 | Rule::R2_1, Custodian::Local(j)) => {
                    let writ = writ_id.as_deref().unwrap_or("?");
                    let court = ctx
                        .writs
                        .iter()
                        .find(|(w, _, _)| w == writ)
                        .map(|(_, _, c)| format!(" from {c}"))
                        .unwrap_or_default();
                    let lead = match rule {
                        Rule::R1_10 => format!(
                            "writ {writ}{court} for {} arrives while ICE's first refusal {} is open: the offer is void",
                            jur(engine, j),
                            offer_id.as_deref().unwrap_or("?")
                        ),
                        Rule::R2_1 => {
                            format!("held by ICE; writ {writ}{court} for {}", jur(engine, j))
                        }
                        _ => format!(
                            "BOP release; writ {writ}{court} for {} decides first",
                            jur(engine, j)
                        ),
                    };
                    if detainer_id.is_some() {
                        format!("{lead}; {}", detainer(detainer_id))
                    } else {
                        lead
                    }
                }
                (Rule::R1_2, _) => format!(
                    "BOP release; {}; no local claim pending",
                    detainer(detainer_id)
                ),
                (Rule::R1_3, Custodian::Local(j)) => format!(
                    "BOP release; no active ICE detainer; {}",
                    claim(j, claim_id)
                ),
                (Rule::R1_5, Custodian::Local(j)) => format!(
                    "BOP release; {}; {}; {} has a return agreement",
                    detainer(detainer_id),
                    claim(j, claim_id),
                    jur(engine, j)
                ),
                (Rule::R1_7, _) => format!(
                    "ICE accepts first-refusal offer {} before its deadline",
                    offer_id.as_deref().unwrap_or("?")
                ),
                (Rule::R1_8, _) => format!(
                    "ICE declines first-refusal offer {}",
                    offer_id.as_deref().unwrap_or("?")
                ),
                (Rule::R1_9, _) => format!(
                    "no answer from ICE to first-refusal offer {} by its deadline",
                    offer_id.as_deref().unwrap_or("?")
                ),
                (Rule::R1_11, _) => format!(
                    "ICE withdraws its detainer while first-refusal offer {} is open: the offer is void",
                    offer_id.as_deref().unwrap_or("?")
                ),
                (Rule::R2_2, Custodian::Local(j)) => format!(
                    "held by ICE; {}; {} has a return agreement",
                    claim(j, claim_id),
                    jur(engine, j)
                ),
                (Rule::R3_4, _) => format!(
                    "ICE takes custody during the 48-hour hold on {}",
                    detainer_id.as_deref().unwrap_or("?")
                ),
                _ => String::new(),
            };
            let conditions: Vec<&str> = conditions.iter().map(|c| c.as_str()).collect();
            let _ = write!(
                s,
                "{facts} → transfer from {} to {to_name} at {} ({}{}{})",
                custodian(engine, from),
                at(effective_at),
                basis.as_str(),
                if conditions.is_empty() { "" } else { "; " },
                conditions.join(", ")
            );
        }
        DecisionBody::Hold {
            jurisdiction_id,
            detainer_id,
            hold_from,
            hold_until,
        } => {
            let _ = write!(
                s,
                "{} would release at {}; {}; {} honors detainers and has not declined this one → \
                 held for ICE from {} until {} (48 hours at most)",
                jur(engine, jurisdiction_id),
                at(hold_from),
                detainer(&Some(detainer_id.clone())),
                jur(engine, jurisdiction_id),
                at(hold_from),
                at(hold_until)
            );
        }
        DecisionBody::Release {
            from,
            basis,
            effective_at,
            detainer_id,
        } => {
            let facts = match (rule, from) {
                (Rule::R1_4, _) => "BOP release; no active ICE detainer; no local claim".to_owned(),
                (Rule::R3_1, Custodian::Local(j)) => {
                    format!("{} releases; no active ICE detainer", jur(engine, j))
                }
                (Rule::R3_2, Custodian::Local(j)) => {
                    let (honors, _) = engine.stance(j);
                    format!(
                        "{} releases; {}; {}",
                        jur(engine, j),
                        detainer(detainer_id),
                        if honors {
                            "the jurisdiction declined this detainer".to_owned()
                        } else {
                            format!("{} does not honor detainers", jur(engine, j))
                        }
                    )
                }
                (Rule::R3_5, _) if d.caused_by.starts_with("timer:") => {
                    "the 48-hour hold ran out with no pickup by ICE".to_owned()
                }
                (Rule::R3_5, Custodian::Local(j)) => {
                    format!("{} reports the hold expired", jur(engine, j))
                }
                (Rule::R3_6, _) => format!(
                    "ICE withdraws detainer {} during the hold",
                    detainer_id.as_deref().unwrap_or("?")
                ),
                (Rule::R3_7, Custodian::Local(j)) => format!(
                    "{} declines detainer {} during the hold",
                    jur(engine, j),
                    detainer_id.as_deref().unwrap_or("?")
                ),
                _ => String::new(),
            };
            let _ = write!(
                s,
                "{facts} → released from {} at {} ({})",
                custodian(engine, from),
                at(effective_at),
                basis.as_str()
            );
            if *basis == Basis::DetainerDeclined && rule == Rule::R3_2 {
                s.push_str(": a declined detainer");
            }
        }
        DecisionBody::Placement {
            placement,
            monitoring,
            basis,
        } => {
            let status = ctx
                .detainers
                .last()
                .map_or("none (no detainer)", |(_, s, _)| s);
            let beds = match engine.capacity() {
                None => "ICE capacity unknown".to_owned(),
                Some((funded, occupied)) => {
                    let before = if *placement == Placement::Detain {
                        occupied.saturating_sub(1)
                    } else {
                        occupied
                    };
                    format!("{before} of {funded} funded beds occupied")
                }
            };
            let outcome = match (placement, monitoring) {
                (Placement::Detain, _) => "detained".to_owned(),
                (Placement::Atd, Some(m)) => {
                    format!("Alternatives to Detention, {}", m.as_str())
                }
                (Placement::Atd, None) => "Alternatives to Detention".to_owned(),
            };
            let _ = write!(
                s,
                "ICE holds the person; criminal status {status}; {beds} → {outcome} ({})",
                basis.as_str()
            );
        }
    }
    format!("{}: {s}", rule.as_str())
}

impl Timeline {
    /// The timeline as text for people: a header, then one line per entry, decisions
    /// indented under the event that caused them.
    pub fn to_text(&self) -> String {
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
                    ty, explanation, ..
                } => {
                    let _ = writeln!(out, "  {}  → {ty} {explanation}", e.time);
                }
            }
        }
        out
    }
}
