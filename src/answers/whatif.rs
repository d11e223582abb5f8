//! What-if replay: what a log would have decided had some jurisdictions' policies, or ICE's
//! funded beds, been different for a while. The overrides act on the event stream, never on
//! the engine, which stays the single authority on the rules: real events inside an
//! override's window are rewritten (`jurisdiction.policy.updated` for a policy override,
//! `ice.capacity.updated` for a funded-beds override), and a synthetic event of the same
//! type is injected at each window edge. `diff` feeds the log as is and the rewritten stream
//! to two engines side by side, step by step, and writes only the people whose decisions
//! differ, so its memory is that of two replays (and of two accounts of the moves to ATD,
//! one small entry per person detained or moved).
//!
//! The overrides file is a JSON array; each entry is one of:
//!
//! - a policy override, `{"jurisdiction_id", "from"?, "to"?, "honors_detainers"?,
//!   "return_agreement"?}`: for clock times in `[from, to)` the jurisdiction's policy has
//!   the fields given (at least one);
//! - a funded-beds override, `{"funded_beds", "from"?, "to"?}`: for clock times in
//!   `[from, to)` ICE's funded beds are `funded_beds`, either a whole number of beds
//!   (`{"funded_beds": 30000}`) or a change in percent of the funded beds ICE reported
//!   (`{"funded_beds": {"percent": -10}}`, a 10% cut; at least -100). The percentage is of
//!   the latest real report's `funded_beds` (from the log, duplicates ignored), rounded to
//!   the nearest bed (halves away from zero).
//!
//! Times are RFC 3339 with an offset; `from` absent is the start of the log, `to` absent its
//! end. For example, a 10% cut of ICE's funded beds from 1 March 2013, and Travis County
//! honoring detainers for January 2017:
//!
//! ```json
//! [{"funded_beds": {"percent": -10}, "from": "2013-03-01T00:00:00Z"},
//!  {"jurisdiction_id": "tx-travis-county", "from": "2017-01-01T00:00:00Z",
//!   "to": "2017-02-01T00:00:00Z", "honors_detainers": true}]
//! ```
//!
//! The readings taken where the question leaves room:
//! - A jurisdiction's effective policy at an edge is its latest real policy (from the log,
//!   duplicates ignored) with the fields of every override active after the edge replacing the
//!   real ones. A jurisdiction the log has not described yet is taken as the ICD takes it (no
//!   detainers honoured, no agreement), named by its id, in state `ZZ`.
//! - ICE's capacity at an edge is an `ice.capacity.updated` whose `funded_beds` is the
//!   latest real report's with the override active after the edge applied (at a `to` edge
//!   with none active: the real figure again), and whose `occupied_beds` is the occupancy
//!   the what-if world's engine counts at that moment, after the timers due by then have
//!   fired (read, not changed: a report of the occupancy it already has, so that no
//!   detention or move since the real report is forgotten). Like every capacity report it
//!   sets off a funding review (R6.1): a cut that leaves occupancy over the funded beds
//!   moves people to ATD at the edge. Before the log's first real capacity report an edge
//!   injects nothing (no occupancy is known to report; the engine detains while no capacity
//!   is known, R4.2); the override then applies to the real reports inside its window as
//!   they come.
//! - A real capacity report inside a funded-beds window has its `funded_beds` replaced (a
//!   percentage of its own figure). With a funded-beds override in the file, every real
//!   report, inside a window or not, also has its `occupied_beds` lowered by the beds the log
//!   as it is occupies beyond the what-if world (or raised by those it occupies fewer), as
//!   both worlds stood after the previous event (at least 0): ICE counted the people of the
//!   real world, and without this a report would put back in beds everyone a cut moved out,
//!   and the next review would move as many again. So `replay --policy` with a funded-beds
//!   override replays the log as it is beside the what-if world, as `diff` does. With policy
//!   overrides only, real reports are kept as they are.
//! - Window edges are injected just before the first log event whose clock time (never earlier
//!   than the clock so far) is at or after the edge. At the same time, windows that end go
//!   before windows that start. An override without `from` starts at the first event, or at the
//!   earliest explicit edge if that comes sooner. Edges after the last event are injected only
//!   with `until`, and only those at or before it: without `until` a replay does not advance
//!   the clock past the log, and neither does a what-if replay.
//! - Two overrides of the same jurisdiction whose windows overlap may not set the same field,
//!   and two funded-beds overrides may not overlap at all; `parse_overrides` rejects them, so
//!   at any moment each field has at most one override.
//! - `diff` also counts, in each world, the moves to ATD out of detention by R6 rule and the
//!   bed-days they avoided, as `handoff report capacity` counts them (from the move until the
//!   person leaves ICE's custody, is detained again, or the world's end clock); the command
//!   line prices them.

use std::borrow::Cow;
use std::io::{self, BufRead, Write};

use hashbrown::{HashMap, HashSet};
use serde::{Deserialize, Deserializer};

use crate::answers::replay::{Lines, Note, ReadError, Summary, note_for, write_decisions};
use crate::answers::report::capacity::{ReviewTotals, ReviewTracker};
use crate::edge::envelope::{self, Invalid};
use crate::edge::wire;
use crate::journal::control::{OtherRules, Rules};
use handoff_core::engine::{Engine, Outcome, Policy};
use handoff_core::model::{Decision, Event, EventBody, Time, is_jurisdiction_id};

/// The `source` of every synthetic policy event injected at a window edge.
pub(crate) const SOURCE: &str = "urn:handoff:what-if";

/// The `caused_by` of a diff line for the timers that advancing the clock to `until` fires.
pub(crate) const UNTIL: &str = "until";

/// The state given to a jurisdiction the log has not described (no real state exists to keep).
pub(crate) const UNKNOWN_STATE: &str = "ZZ";

/// One entry of the overrides file: see the module documentation.
#[derive(Debug, Clone, PartialEq)]
pub enum Override {
    /// A jurisdiction's policy fields for a window.
    Policy(PolicyOverride),
    /// ICE's funded beds for a window.
    FundedBeds(BedsOverride),
}

/// A policy override: for clock times in [from, to), the jurisdiction's policy has these
/// fields.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyOverride {
    pub jurisdiction_id: String,
    /// Absent: from the beginning of the log.
    #[serde(default, deserialize_with = "optional_time")]
    pub from: Option<Time>,
    /// Absent: to the end of the log.
    #[serde(default, deserialize_with = "optional_time")]
    pub to: Option<Time>,
    pub honors_detainers: Option<bool>,
    pub return_agreement: Option<bool>,
}

/// A funded-beds override: for clock times in [from, to), ICE's funded beds are these.
#[derive(Debug, Clone, PartialEq)]
pub struct BedsOverride {
    /// Absent: from the beginning of the log.
    pub from: Option<Time>,
    /// Absent: to the end of the log.
    pub to: Option<Time>,
    pub funded_beds: FundedBeds,
}

/// What a funded-beds override sets the funded beds to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FundedBeds {
    /// This many beds.
    Beds(u64),
    /// The reported funded beds changed by this percentage (at least -100).
    Percent(f64),
}

impl FundedBeds {
    /// The funded beds in place of `reported`: rounded to the nearest bed, halves away from
    /// zero, never below zero.
    pub fn apply(self, reported: u64) -> u64 {
        match self {
            FundedBeds::Beds(n) => n,
            FundedBeds::Percent(p) => {
                let beds = (reported as f64 * (100.0 + p) / 100.0).round();
                // A float to integer cast saturates: at least 0, at most u64::MAX.
                beds as u64
            }
        }
    }
}

impl Override {
    /// The window's start (`None`: the start of the log).
    pub fn from(&self) -> Option<Time> {
        match self {
            Override::Policy(p) => p.from,
            Override::FundedBeds(b) => b.from,
        }
    }

    /// The window's end (`None`: the end of the log).
    pub fn to(&self) -> Option<Time> {
        match self {
            Override::Policy(p) => p.to,
            Override::FundedBeds(b) => b.to,
        }
    }

    /// Whether the windows of `self` and `other` share a moment.
    fn overlaps(&self, other: &Override) -> bool {
        let starts_before_other_ends = match (self.from(), other.to()) {
            (Some(from), Some(to)) => from < to,
            _ => true,
        };
        let other_starts_before_self_ends = match (other.from(), self.to()) {
            (Some(from), Some(to)) => from < to,
            _ => true,
        };
        starts_before_other_ends && other_starts_before_self_ends
    }
}

impl PolicyOverride {
    /// Whether `self` and `other` set a field in common.
    fn shares_a_field(&self, other: &PolicyOverride) -> bool {
        (self.honors_detainers.is_some() && other.honors_detainers.is_some())
            || (self.return_agreement.is_some() && other.return_agreement.is_some())
    }

    /// Replaces the fields this override sets.
    fn apply(&self, honors_detainers: &mut bool, return_agreement: &mut bool) {
        if let Some(h) = self.honors_detainers {
            *honors_detainers = h;
        }
        if let Some(a) = self.return_agreement {
            *return_agreement = a;
        }
    }
}

/// Reads an optional RFC 3339 time with an offset, as the envelope reads event times.
fn optional_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Time>, D::Error> {
    let text: Option<String> = Option::deserialize(d)?;
    text.map(|s| envelope::parse_time(&s).map_err(serde::de::Error::custom))
        .transpose()
}

/// A funded-beds entry as written, before its `funded_beds` is read.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBeds {
    funded_beds: serde_json::Value,
    #[serde(default, deserialize_with = "optional_time")]
    from: Option<Time>,
    #[serde(default, deserialize_with = "optional_time")]
    to: Option<Time>,
}

/// The fields of a policy override, which a funded-beds entry may not have.
const POLICY_FIELDS: [&str; 3] = ["jurisdiction_id", "honors_detainers", "return_agreement"];

/// Reads `funded_beds`: a whole number of beds, or `{"percent": P}` with P at least -100.
fn funded_beds(value: &serde_json::Value) -> Result<FundedBeds, String> {
    const WHAT: &str = "funded_beds must be a whole number of beds (0 or more) or                         {\"percent\": P}, a change in percent of the reported funded beds";
    match value {
        serde_json::Value::Number(n) => n
            .as_u64()
            .map(FundedBeds::Beds)
            .ok_or_else(|| format!("{WHAT}, not {n}")),
        serde_json::Value::Object(o) => {
            if let Some(other) = o.keys().find(|k| k.as_str() != "percent") {
                return Err(format!("{WHAT}: unknown field `{other}`"));
            }
            let p = o
                .get("percent")
                .ok_or_else(|| format!("{WHAT}: `percent` is missing"))?;
            let p = p
                .as_f64()
                .ok_or_else(|| format!("{WHAT}: percent must be a number, not {p}"))?;
            if !p.is_finite() || p < -100.0 {
                return Err(format!(
                    "funded_beds: percent {p} is less than -100 (a cut cannot take away more \
                     than every bed)"
                ));
            }
            Ok(FundedBeds::Percent(p))
        }
        other => Err(format!("{WHAT}, not {other}")),
    }
}

/// Reads one entry of the overrides file (without the checks across entries).
fn parse_entry(item: serde_json::Value) -> Result<Override, String> {
    let serde_json::Value::Object(fields) = &item else {
        return Err(format!(
            "expected an object (a policy or a funded_beds override), not {item}"
        ));
    };
    if !fields.contains_key("funded_beds") {
        return PolicyOverride::deserialize(item)
            .map(Override::Policy)
            .map_err(|e| e.to_string());
    }
    if let Some(f) = POLICY_FIELDS.iter().find(|f| fields.contains_key(**f)) {
        return Err(format!(
            "sets funded_beds and `{f}`: an entry overrides either ICE's funded beds or a \
             jurisdiction's policy; give them as separate entries"
        ));
    }
    let raw = RawBeds::deserialize(item).map_err(|e| e.to_string())?;
    Ok(Override::FundedBeds(BedsOverride {
        from: raw.from,
        to: raw.to,
        funded_beds: funded_beds(&raw.funded_beds)?,
    }))
}

/// Parses an overrides file: a JSON array of [`Override`] (see the module documentation),
/// times RFC 3339 with an offset. An entry that is neither a policy nor a funded-beds
/// override, overrides nothing, mixes the two, has `from` >= `to`, has an invalid
/// `jurisdiction_id` or `funded_beds`, or overlaps an earlier entry that sets the same thing
/// (the same field of the same jurisdiction; the funded beds) is rejected; every message
/// names the entry as `overrides[i]`, counting from 0 as the synthetic event ids do.
pub fn parse_overrides(json: &str) -> Result<Vec<Override>, String> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("overrides: not JSON: {e}"))?;
    let serde_json::Value::Array(items) = value else {
        return Err("overrides: expected a JSON array of override objects".to_owned());
    };
    let mut overrides: Vec<Override> = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let o = parse_entry(item).map_err(|e| format!("overrides[{i}]: {e}"))?;
        if let Override::Policy(p) = &o {
            if !is_jurisdiction_id(&p.jurisdiction_id) {
                return Err(format!(
                    "overrides[{i}]: jurisdiction_id {:?} is not a jurisdiction id (lowercase \
                     letters, digits, '_' and '-', 2 to 63 characters, starting with a letter \
                     or digit)",
                    p.jurisdiction_id
                ));
            }
            if p.honors_detainers.is_none() && p.return_agreement.is_none() {
                return Err(format!(
                    "overrides[{i}]: changes nothing: give honors_detainers, return_agreement \
                     or both (or funded_beds, for ICE's funded beds)"
                ));
            }
        }
        if let (Some(from), Some(to)) = (o.from(), o.to())
            && from >= to
        {
            return Err(format!(
                "overrides[{i}]: from ({}) must be before to ({})",
                wire::format_time(&from),
                wire::format_time(&to)
            ));
        }
        if let Some(j) = overrides
            .iter()
            .position(|earlier| earlier.overlaps(&o) && sets_the_same(earlier, &o))
        {
            return Err(match &o {
                Override::Policy(p) => format!(
                    "overrides[{i}]: overlaps overrides[{j}] for {} and sets the same field; \
                     split the windows so that each field has one override at a time",
                    p.jurisdiction_id
                ),
                Override::FundedBeds(_) => format!(
                    "overrides[{i}]: overlaps overrides[{j}], which also sets funded_beds; \
                     split the windows so that one funded_beds override applies at a time"
                ),
            });
        }
        overrides.push(o);
    }
    Ok(overrides)
}

/// Whether any override sets ICE's funded beds.
fn has_funded_beds(overrides: &[Override]) -> bool {
    overrides
        .iter()
        .any(|o| matches!(o, Override::FundedBeds(_)))
}

/// Whether two overrides set something in common: a field of the same jurisdiction's
/// policy, or ICE's funded beds.
fn sets_the_same(a: &Override, b: &Override) -> bool {
    match (a, b) {
        (Override::Policy(a), Override::Policy(b)) => {
            a.jurisdiction_id == b.jurisdiction_id && a.shares_a_field(b)
        }
        (Override::FundedBeds(_), Override::FundedBeds(_)) => true,
        _ => false,
    }
}

/// Which edge of a window. Ends sort before starts, so that at a shared moment a window closes
/// before the next opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum EdgeKind {
    To,
    From,
}

impl EdgeKind {
    fn name(self) -> &'static str {
        match self {
            EdgeKind::To => "to",
            EdgeKind::From => "from",
        }
    }
}

/// An edge of an override's window: its time (`None` for the start of the log), kind, and the
/// override's index.
type Edge = (Option<Time>, EdgeKind, usize);

/// The stream transformation: decides where synthetic events go and rewrites real policy and
/// capacity events.
struct Rewriter<'o> {
    overrides: &'o [Override],
    /// Every window edge in injection order.
    edges: Vec<Edge>,
    /// The first edge not injected yet.
    next: usize,
    /// Whether each override's window is open.
    active: Vec<bool>,
    /// The latest real policy of each overridden jurisdiction, as the log gave it.
    real: HashMap<String, Policy>,
    /// The latest real `ice.capacity.updated`, as the log gave it: (funded, occupied).
    real_capacity: Option<(u64, u64)>,
    /// Whether there is a funded-beds override: then real capacity reports are shifted by
    /// the beds the what-if world has freed or taken (see [`Rewriter::rewrite`]).
    adjusts: bool,
    /// The clock as the engine keeps it for the log's events: the latest clock time of a
    /// non-duplicate event.
    clock: Option<Time>,
}

impl<'o> Rewriter<'o> {
    fn new(overrides: &'o [Override]) -> Self {
        let mut edges: Vec<Edge> = Vec::with_capacity(2 * overrides.len());
        for (i, o) in overrides.iter().enumerate() {
            edges.push((o.from(), EdgeKind::From, i));
            if let Some(to) = o.to() {
                edges.push((Some(to), EdgeKind::To, i));
            }
        }
        edges.sort();
        Rewriter {
            overrides,
            edges,
            next: 0,
            active: vec![false; overrides.len()],
            real: HashMap::new(),
            real_capacity: None,
            adjusts: has_funded_beds(overrides),
            clock: None,
        }
    }

    /// The clock time at which the engine will process `event`: its clock time, never earlier
    /// than the clock.
    fn horizon(&self, event: &Event) -> Time {
        let t = event.clock_time();
        self.clock.map_or(t, |c| c.max(t))
    }

    /// The next window edge due at or before `horizon`, if any, with its time; it is taken
    /// (the override's window opens or closes). Call until it gives `None`, passing each to
    /// [`Rewriter::synthetic`].
    fn next_edge(&mut self, horizon: Time) -> Option<(Time, EdgeKind, usize)> {
        let &(time, kind, index) = self.edges.get(self.next)?;
        let time = match time {
            Some(t) if t > horizon => return None,
            Some(t) => t,
            // The start of the log: the first moment anything is processed.
            None => self.edges[self.next..]
                .iter()
                .find_map(|e| e.0)
                .map_or(horizon, |t| t.min(horizon)),
        };
        self.next += 1;
        self.active[index] = kind == EdgeKind::From;
        Some((time, kind, index))
    }

    /// Whether an edge is a funded-beds override's: its synthetic report needs the what-if
    /// world's occupancy.
    fn is_beds(&self, index: usize) -> bool {
        matches!(self.overrides[index], Override::FundedBeds(_))
    }

    /// The synthetic event of an edge from [`Rewriter::next_edge`]: a policy event, or a
    /// capacity report of `occupied` beds (the what-if world's occupancy at the edge). `None`
    /// for a funded-beds edge before the log's first real capacity report, or without an
    /// occupancy: no occupancy is known to report.
    fn synthetic(
        &self,
        (time, kind, index): (Time, EdgeKind, usize),
        occupied: Option<u64>,
    ) -> Option<Event> {
        let body = match &self.overrides[index] {
            Override::Policy(o) => self.policy_at_edge(&o.jurisdiction_id),
            Override::FundedBeds(_) => {
                let (Some((funded, _)), Some(occupied)) = (self.real_capacity, occupied) else {
                    return None;
                };
                EventBody::CapacityUpdated {
                    funded_beds: self.funded(funded),
                    occupied_beds: occupied,
                }
            }
        };
        Some(Event {
            source: SOURCE.to_owned(),
            id: format!("override-{index}-{}", kind.name()),
            time,
            received: None,
            body,
        })
    }

    /// The next synthetic event due at or before `horizon` in a world whose occupancy is
    /// `occupied` (for tests of the edges; `drive` settles the timers first).
    #[cfg(test)]
    fn next_due(&mut self, horizon: Time, occupied: Option<u64>) -> Option<Event> {
        while let Some(edge) = self.next_edge(horizon) {
            if let Some(e) = self.synthetic(edge, occupied) {
                return Some(e);
            }
        }
        None
    }

    /// The policy event of a jurisdiction at an edge: its latest real policy (or the ICD's
    /// default) with the open overrides applied.
    fn policy_at_edge(&self, jurisdiction_id: &str) -> EventBody {
        let (name, state, mut honors_detainers, mut return_agreement) =
            match self.real.get(jurisdiction_id) {
                Some(p) => (
                    p.name.clone(),
                    p.state.clone(),
                    p.honors_detainers,
                    p.return_agreement,
                ),
                None => (
                    jurisdiction_id.to_owned(),
                    UNKNOWN_STATE.to_owned(),
                    false,
                    false,
                ),
            };
        self.apply_active(
            jurisdiction_id,
            &mut honors_detainers,
            &mut return_agreement,
        );
        EventBody::PolicyUpdated {
            jurisdiction_id: jurisdiction_id.to_owned(),
            name,
            state,
            honors_detainers,
            return_agreement,
        }
    }

    /// Applies the fields of every open override of `jurisdiction_id`.
    fn apply_active(&self, jurisdiction_id: &str, honors: &mut bool, agreement: &mut bool) {
        for (o, _) in self
            .overrides
            .iter()
            .zip(&self.active)
            .filter(|(_, active)| **active)
        {
            if let Override::Policy(o) = o
                && o.jurisdiction_id == jurisdiction_id
            {
                o.apply(honors, agreement);
            }
        }
    }

    /// The funded beds in place of `reported` under the open funded-beds override, if any
    /// (`parse_overrides` lets at most one be open at a time).
    fn funded(&self, reported: u64) -> u64 {
        self.overrides
            .iter()
            .zip(&self.active)
            .find_map(|(o, active)| match o {
                Override::FundedBeds(b) if *active => Some(b.funded_beds.apply(reported)),
                _ => None,
            })
            .unwrap_or(reported)
    }

    /// The event the engine should see: a real policy event of an overridden jurisdiction
    /// inside a window gets the override's fields, a real capacity report inside a funded-beds
    /// window the override's funded beds; every other field, and every other event, is kept as
    /// it is, except that with a funded-beds override every real capacity report's
    /// `occupied_beds` is less `divergence` (the beds the log as it is occupies beyond the
    /// what-if world, as both stood before the report; at least 0), so that a report ICE
    /// made in the real world does not put back in beds the people the what-if moved out.
    fn rewrite<'e>(&self, event: &'e Event, divergence: Option<i128>) -> Cow<'e, Event> {
        match &event.body {
            EventBody::PolicyUpdated {
                jurisdiction_id,
                honors_detainers,
                return_agreement,
                ..
            } => {
                let (mut honors, mut agreement) = (*honors_detainers, *return_agreement);
                self.apply_active(jurisdiction_id, &mut honors, &mut agreement);
                if (honors, agreement) == (*honors_detainers, *return_agreement) {
                    return Cow::Borrowed(event);
                }
                let mut rewritten = event.clone();
                if let EventBody::PolicyUpdated {
                    honors_detainers,
                    return_agreement,
                    ..
                } = &mut rewritten.body
                {
                    *honors_detainers = honors;
                    *return_agreement = agreement;
                }
                Cow::Owned(rewritten)
            }
            EventBody::CapacityUpdated {
                funded_beds,
                occupied_beds,
            } => {
                let funded = self.funded(*funded_beds);
                let occupied = match divergence {
                    Some(d) if self.adjusts => {
                        let o = i128::from(*occupied_beds) - d;
                        u64::try_from(o.max(0)).unwrap_or(u64::MAX)
                    }
                    _ => *occupied_beds,
                };
                if (funded, occupied) == (*funded_beds, *occupied_beds) {
                    return Cow::Borrowed(event);
                }
                let mut rewritten = event.clone();
                if let EventBody::CapacityUpdated {
                    funded_beds,
                    occupied_beds,
                } = &mut rewritten.body
                {
                    *funded_beds = funded;
                    *occupied_beds = occupied;
                }
                Cow::Owned(rewritten)
            }
            _ => Cow::Borrowed(event),
        }
    }

    /// Records a log event the engine has processed (`duplicate` when it was ignored as one):
    /// the clock, and the real policy of an overridden jurisdiction.
    fn handled(&mut self, event: &Event, duplicate: bool) {
        if duplicate {
            return;
        }
        let t = event.clock_time();
        self.clock = Some(self.clock.map_or(t, |c| c.max(t)));
        if let EventBody::CapacityUpdated {
            funded_beds,
            occupied_beds,
        } = &event.body
        {
            self.real_capacity = Some((*funded_beds, *occupied_beds));
        }
        if let EventBody::PolicyUpdated {
            jurisdiction_id,
            name,
            state,
            honors_detainers,
            return_agreement,
        } = &event.body
            && self
                .overrides
                .iter()
                .any(|o| matches!(o, Override::Policy(p) if &p.jurisdiction_id == jurisdiction_id))
        {
            self.real.insert(
                jurisdiction_id.clone(),
                Policy {
                    name: name.clone(),
                    state: state.clone(),
                    honors_detainers: *honors_detainers,
                    return_agreement: *return_agreement,
                },
            );
        }
    }
}

/// What the transformed stream shows its consumer, in order.
trait Sink {
    /// Before a synthetic capacity report at `at`: fires the timers due by then in every world
    /// the sink keeps, showing their decisions as caused by the edge `id`, and gives the
    /// what-if world's occupancy after them (`None`: it knows no capacity).
    fn settle(&mut self, at: Time, id: &str) -> io::Result<Option<u64>>;
    /// The beds the log as it is occupies beyond the what-if world, as both stand now;
    /// `None` when the sink does not keep the log as it is, or no capacity is known.
    fn divergence(&self) -> Option<i128>;
    /// A synthetic event at a window edge.
    fn injected(&mut self, event: &Event) -> io::Result<()>;
    /// A valid log event as it is and as the what-if world sees it; returns whether the engine
    /// took it for a duplicate.
    fn event(&mut self, line: u64, original: &Event, rewritten: &Event) -> io::Result<bool>;
    /// A line that is not a valid event.
    fn invalid(&mut self, line: u64, error: Invalid) -> io::Result<()>;
    /// The end of the log with `until`: advance the clock to it.
    fn end(&mut self, until: Time) -> io::Result<()>;
}

/// What [`drive`] read: lines (blank ones included), control entries skipped, and with
/// [`Rules::Current`] the first opened entry that named other rules.
struct Read {
    lines: u64,
    controls: u64,
    other_rules: Option<OtherRules>,
}

/// Runs the transformed stream into `sink`, the log read under `rules` (its control
/// entries skipped, as every reader does).
fn drive<R: BufRead, S: Sink>(
    input: R,
    until: Option<Time>,
    rules: Rules,
    overrides: &[Override],
    sink: &mut S,
) -> Result<Read, ReadError> {
    let mut rewriter = Rewriter::new(overrides);
    let mut lines = Lines::with_rules(input, rules);
    for item in lines.by_ref() {
        let (line, parsed) = item?;
        let event = match parsed {
            Ok(event) => event,
            Err(error) => {
                sink.invalid(line, error)?;
                continue;
            }
        };
        let horizon = rewriter.horizon(&event);
        inject(&mut rewriter, sink, horizon)?;
        let rewritten = rewriter.rewrite(&event, sink.divergence());
        let duplicate = sink.event(line, &event, &rewritten)?;
        rewriter.handled(&event, duplicate);
    }
    if let Some(until) = until {
        inject(&mut rewriter, sink, until)?;
        sink.end(until)?;
    }
    Ok(Read {
        lines: lines.lines_read(),
        controls: lines.controls(),
        other_rules: lines.other_rules().cloned(),
    })
}

/// Injects every window edge due at or before `horizon`. A funded-beds edge first settles
/// the timers due by its time, so that its report gives the occupancy after them.
fn inject<S: Sink>(rewriter: &mut Rewriter<'_>, sink: &mut S, horizon: Time) -> io::Result<()> {
    while let Some(edge) = rewriter.next_edge(horizon) {
        let (time, kind, index) = edge;
        let occupied = if rewriter.is_beds(index) {
            sink.settle(time, &format!("override-{index}-{}", kind.name()))?
        } else {
            None
        };
        if let Some(synthetic) = rewriter.synthetic(edge, occupied) {
            sink.injected(&synthetic)?;
        }
    }
    Ok(())
}

/// The sink of `replay_with`: one engine, decisions out, notes for log lines only; with a
/// funded-beds override, the log as it is in a second engine beside it (`real`), only to
/// know how many beds the what-if world has freed or taken.
struct ReplaySink<W, N> {
    engine: Engine,
    real: Option<Engine>,
    out: W,
    buf: Vec<u8>,
    note: N,
    summary: Summary,
}

/// `before`'s occupancy less `after`'s, when both know a capacity.
fn divergence(before: &Engine, after: &Engine) -> Option<i128> {
    let (_, b) = before.capacity()?;
    let (_, a) = after.capacity()?;
    Some(i128::from(b) - i128::from(a))
}

impl<W: Write, N: FnMut(u64, Note)> Sink for ReplaySink<W, N> {
    fn settle(&mut self, at: Time, _id: &str) -> io::Result<Option<u64>> {
        if let Some(real) = self.real.as_mut() {
            real.fire(at);
        }
        let decisions = self.engine.fire(at);
        self.summary.decisions += decisions.len() as u64;
        write_decisions(&decisions, &mut self.buf, &mut self.out)?;
        Ok(self.engine.capacity().map(|(_, occupied)| occupied))
    }

    fn divergence(&self) -> Option<i128> {
        divergence(self.real.as_ref()?, &self.engine)
    }

    fn injected(&mut self, event: &Event) -> io::Result<()> {
        if let Some(real) = self.real.as_mut() {
            real.fire(event.time);
        }
        let step = self.engine.handle(event);
        self.summary.decisions += step.decisions.len() as u64;
        write_decisions(&step.decisions, &mut self.buf, &mut self.out)
    }

    fn event(&mut self, line: u64, original: &Event, rewritten: &Event) -> io::Result<bool> {
        if let Some(real) = self.real.as_mut() {
            real.handle(original);
        }
        let step = self.engine.handle(rewritten);
        self.summary.count(&step.outcome);
        self.summary.decisions += step.decisions.len() as u64;
        if let Some(n) = note_for(&step.outcome) {
            (self.note)(line, n);
        }
        write_decisions(&step.decisions, &mut self.buf, &mut self.out)?;
        Ok(step.outcome == Outcome::Duplicate)
    }

    fn invalid(&mut self, line: u64, error: Invalid) -> io::Result<()> {
        self.summary.invalid += 1;
        (self.note)(line, Note::Invalid(error));
        Ok(())
    }

    fn end(&mut self, until: Time) -> io::Result<()> {
        let decisions = self.engine.fire(until);
        self.summary.decisions += decisions.len() as u64;
        write_decisions(&decisions, &mut self.buf, &mut self.out)
    }
}

/// Replays with the overrides applied, writing decisions as JSON lines like `replay::replay`,
/// with the same notes for log lines (synthetic events never get one). In the summary, `events`
/// counts the log's valid events only and `decisions` every decision written, those the
/// synthetic events caused included. The log is read under `rules`, as replay reads it.
pub fn replay_with<R: BufRead, W: Write>(
    input: R,
    until: Option<Time>,
    rules: Rules,
    overrides: &[Override],
    out: W,
    note: impl FnMut(u64, Note),
) -> Result<Summary, ReadError> {
    let mut sink = ReplaySink {
        engine: Engine::new(),
        real: has_funded_beds(overrides).then(Engine::new),
        out,
        buf: Vec::with_capacity(4096),
        note,
        summary: Summary::default(),
    };
    let read = drive(input, until, rules, overrides, &mut sink)?;
    sink.out.flush()?;
    let mut summary = sink.summary;
    summary.lines = read.lines;
    summary.controls = read.controls;
    summary.other_rules = read.other_rules;
    Ok(summary)
}

/// Counts for one `diff` run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiffSummary {
    /// The moves to ATD out of detention (R6) of the log as it is, and the time they kept
    /// people out of a bed, counted as `handoff report capacity` counts them.
    pub reviews_before: ReviewTotals,
    /// The same in the what-if world.
    pub reviews_after: ReviewTotals,
    /// Valid events in the log (duplicates included; synthetic events not).
    pub events: u64,
    /// Distinct people with at least one diff line.
    pub people_changed: u64,
    /// Decisions of the log as it is.
    pub decisions_before: u64,
    /// Decisions of the what-if world (those the synthetic events caused included).
    pub decisions_after: u64,
    /// With [`Rules::Current`]: the first opened entry that named other rules.
    pub other_rules: Option<OtherRules>,
}

/// Whether two decisions are the same apart from their ids, which derive from cause and
/// position and would differ only when positions shift. Comparing the fields is comparing the
/// wire JSON without `id`: the wire form is a one-to-one rendering of them (the facts in
/// `why` and the parties told are not on the wire, and are not compared).
fn same_decision(a: &Decision, b: &Decision) -> bool {
    let Decision {
        id: _,
        time,
        person_id,
        rule,
        caused_by,
        body,
        why: _,
        parties: _,
    } = a;
    *time == b.time
        && *person_id == b.person_id
        && *rule == b.rule
        && *caused_by == b.caused_by
        && *body == b.body
}

/// Whether two sequences of decisions are the same apart from ids.
fn same_sequence<'d>(
    a: impl Iterator<Item = &'d Decision>,
    b: impl Iterator<Item = &'d Decision>,
) -> bool {
    let mut b = b;
    for x in a {
        match b.next() {
            Some(y) if same_decision(x, y) => {}
            _ => return false,
        }
    }
    b.next().is_none()
}

/// The sink of `diff`: the log as is in `before`, the what-if stream in `after`, compared step
/// by step.
struct DiffSink<W> {
    before: Engine,
    after: Engine,
    out: W,
    buf: Vec<u8>,
    summary: DiffSummary,
    /// The people with a diff line so far, to count them once.
    changed: HashSet<String>,
    /// The moves to ATD of each world.
    reviews_before: ReviewTracker,
    reviews_after: ReviewTracker,
}

impl<W: Write> DiffSink<W> {
    /// Compares one step's decisions person by person and writes a line for each person whose
    /// differ.
    fn compare(
        &mut self,
        at: Time,
        caused_by: &str,
        before: &[Decision],
        after: &[Decision],
    ) -> io::Result<()> {
        self.summary.decisions_before += before.len() as u64;
        self.summary.decisions_after += after.len() as u64;
        if same_sequence(before.iter(), after.iter()) {
            return Ok(());
        }
        // People in order of first appearance: first in `before`, then those only in `after`.
        let mut people: Vec<&str> = Vec::new();
        for d in before.iter().chain(after) {
            if !people.contains(&d.person_id.as_str()) {
                people.push(&d.person_id);
            }
        }
        let at = wire::format_time(&at);
        for person in people {
            let of = |d: &&Decision| d.person_id == person;
            if same_sequence(before.iter().filter(of), after.iter().filter(of)) {
                continue;
            }
            self.buf.clear();
            self.buf.extend_from_slice(b"{\"person_id\":");
            json_string(person, &mut self.buf);
            self.buf.extend_from_slice(b",\"at\":");
            json_string(&at, &mut self.buf);
            self.buf.extend_from_slice(b",\"caused_by\":");
            json_string(caused_by, &mut self.buf);
            for (key, side) in [("before", before), ("after", after)] {
                self.buf.extend_from_slice(b",\"");
                self.buf.extend_from_slice(key.as_bytes());
                self.buf.extend_from_slice(b"\":[");
                for (k, d) in side.iter().filter(of).enumerate() {
                    if k > 0 {
                        self.buf.push(b',');
                    }
                    wire::write_decision(d, &mut self.buf);
                }
                self.buf.push(b']');
            }
            self.buf.extend_from_slice(b"}\n");
            self.out.write_all(&self.buf)?;
            if !self.changed.contains(person) {
                self.changed.insert(person.to_owned());
            }
        }
        Ok(())
    }
}

/// Appends `s` as a JSON string.
fn json_string(s: &str, out: &mut Vec<u8>) {
    serde_json::to_writer(out, s).expect("writing JSON to a Vec cannot fail");
}

impl<W: Write> Sink for DiffSink<W> {
    fn settle(&mut self, at: Time, id: &str) -> io::Result<Option<u64>> {
        let before = self.before.fire(at);
        let after = self.after.fire(at);
        self.reviews_before.step(None, self.before.clock(), &before);
        self.reviews_after.step(None, self.after.clock(), &after);
        self.compare(at, id, &before, &after)?;
        Ok(self.after.capacity().map(|(_, occupied)| occupied))
    }

    fn divergence(&self) -> Option<i128> {
        divergence(&self.before, &self.after)
    }

    fn injected(&mut self, event: &Event) -> io::Result<()> {
        // Every handle fires the timers due by its clock first, so firing `before` to the edge
        // fires exactly the timers the synthetic event fires in `after`.
        let before = self.before.fire(event.time);
        let step = self.after.handle(event);
        self.reviews_before.step(None, self.before.clock(), &before);
        if step.outcome != Outcome::Duplicate {
            self.reviews_after
                .step(Some(event), self.after.clock(), &step.decisions);
        }
        self.compare(event.time, &event.id, &before, &step.decisions)
    }

    fn event(&mut self, _line: u64, original: &Event, rewritten: &Event) -> io::Result<bool> {
        self.summary.events += 1;
        let before = self.before.handle(original);
        let step = self.after.handle(rewritten);
        if before.outcome != Outcome::Duplicate {
            self.reviews_before
                .step(Some(original), self.before.clock(), &before.decisions);
        }
        if step.outcome != Outcome::Duplicate {
            self.reviews_after
                .step(Some(rewritten), self.after.clock(), &step.decisions);
        }
        let at = self.after.clock().unwrap_or_else(|| original.clock_time());
        self.compare(at, &original.id, &before.decisions, &step.decisions)?;
        Ok(step.outcome == Outcome::Duplicate)
    }

    fn invalid(&mut self, _line: u64, _error: Invalid) -> io::Result<()> {
        Ok(())
    }

    fn end(&mut self, until: Time) -> io::Result<()> {
        let before = self.before.fire(until);
        let after = self.after.fire(until);
        self.reviews_before.step(None, self.before.clock(), &before);
        self.reviews_after.step(None, self.after.clock(), &after);
        self.compare(until, UNTIL, &before, &after)
    }
}

/// Replays twice at once, the log as is and with the overrides, and writes only what differs,
/// person by person, as JSON lines: `{"person_id", "at", "caused_by", "before": [decisions],
/// "after": [decisions]}`. `at` is the clock time of the step, `caused_by` the id of the log
/// event, the synthetic event's id (`override-<i>-from` or `override-<i>-to`), or `until`.
/// Decisions are compared without their `id`, and written whole. Invalid lines are skipped
/// silently (`replay` reports them). The log is read under `rules`, as replay reads it. The
/// summary also gives each world's moves to ATD (R6) and the time on ATD after them, to the
/// end clock of each world's engine.
pub fn diff<R: BufRead, W: Write>(
    input: R,
    until: Option<Time>,
    rules: Rules,
    overrides: &[Override],
    out: W,
) -> Result<DiffSummary, ReadError> {
    let mut sink = DiffSink {
        before: Engine::new(),
        after: Engine::new(),
        out,
        buf: Vec::with_capacity(4096),
        summary: DiffSummary::default(),
        changed: HashSet::new(),
        reviews_before: ReviewTracker::default(),
        reviews_after: ReviewTracker::default(),
    };
    let read = drive(input, until, rules, overrides, &mut sink)?;
    sink.out.flush()?;
    let mut summary = sink.summary;
    summary.people_changed = sink.changed.len() as u64;
    summary.reviews_before = sink.reviews_before.finish_totals(sink.before.clock());
    summary.reviews_after = sink.reviews_after.finish_totals(sink.after.clock());
    summary.other_rules = read.other_rules;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Time {
        envelope::parse_time(s).unwrap()
    }

    fn policy_event(id: &str, time: &str, j: &str, honors: bool, agreement: bool) -> Event {
        Event {
            source: format!("urn:jurisdiction:{j}"),
            id: id.to_owned(),
            time: t(time),
            received: None,
            body: EventBody::PolicyUpdated {
                jurisdiction_id: j.to_owned(),
                name: "Test County".to_owned(),
                state: "TX".to_owned(),
                honors_detainers: honors,
                return_agreement: agreement,
            },
        }
    }

    fn capacity_event(id: &str, time: &str) -> Event {
        Event {
            source: "urn:agency:ice:eagle".to_owned(),
            id: id.to_owned(),
            time: t(time),
            received: None,
            body: EventBody::CapacityUpdated {
                funded_beds: 10,
                occupied_beds: 0,
            },
        }
    }

    fn body_fields(e: &Event) -> (&str, &str, &str, bool, bool) {
        match &e.body {
            EventBody::PolicyUpdated {
                jurisdiction_id,
                name,
                state,
                honors_detainers,
                return_agreement,
            } => (
                jurisdiction_id,
                name,
                state,
                *honors_detainers,
                *return_agreement,
            ),
            other => panic!("not a policy: {other:?}"),
        }
    }

    fn window(j: &str, from: Option<&str>, to: Option<&str>, honors: Option<bool>) -> Override {
        Override::Policy(policy_window(j, from, to, honors))
    }

    fn policy_window(
        j: &str,
        from: Option<&str>,
        to: Option<&str>,
        honors: Option<bool>,
    ) -> PolicyOverride {
        PolicyOverride {
            jurisdiction_id: j.to_owned(),
            from: from.map(t),
            to: to.map(t),
            honors_detainers: honors,
            return_agreement: None,
        }
    }

    #[test]
    fn edges_are_injected_before_the_first_event_at_or_after_them() {
        let overrides = [window(
            "tx-travis-county",
            Some("2017-01-02T00:00:00Z"),
            Some("2017-01-04T00:00:00Z"),
            Some(true),
        )];
        let mut r = Rewriter::new(&overrides);
        let e1 = capacity_event("e1", "2017-01-01T00:00:00Z");
        assert_eq!(r.next_due(r.horizon(&e1), None), None);
        r.handled(&e1, false);
        // An event earlier than the clock counts at the clock: still before the edge.
        let e2 = capacity_event("e2", "2016-12-01T00:00:00Z");
        assert_eq!(r.next_due(r.horizon(&e2), None), None);
        r.handled(&e2, false);
        let e3 = capacity_event("e3", "2017-01-02T00:00:00Z");
        let s = r
            .next_due(r.horizon(&e3), None)
            .expect("the from edge is due");
        assert_eq!(
            (s.source.as_str(), s.id.as_str(), s.time),
            (SOURCE, "override-0-from", t("2017-01-02T00:00:00Z"))
        );
        // Never heard of: named by its id, state ZZ, the ICD's defaults under the override.
        assert_eq!(
            body_fields(&s),
            ("tx-travis-county", "tx-travis-county", "ZZ", true, false)
        );
        assert_eq!(r.next_due(r.horizon(&e3), None), None);
        r.handled(&e3, false);
        let e4 = capacity_event("e4", "2017-01-05T00:00:00Z");
        let s = r
            .next_due(r.horizon(&e4), None)
            .expect("the to edge is due");
        assert_eq!(s.id, "override-0-to");
        assert_eq!(
            body_fields(&s),
            ("tx-travis-county", "tx-travis-county", "ZZ", false, false)
        );
        assert_eq!(r.next_due(r.horizon(&e4), None), None);
    }

    #[test]
    fn real_policy_inside_a_window_is_rewritten_and_remembered() {
        let j = "tx-travis-county";
        let overrides = [window(j, None, Some("2017-01-10T00:00:00Z"), Some(true))];
        let mut r = Rewriter::new(&overrides);
        let e1 = policy_event("e1", "2017-01-05T00:00:00Z", j, false, true);
        let s = r.next_due(r.horizon(&e1), None).expect("the start edge");
        assert_eq!(s.time, t("2017-01-05T00:00:00Z"));
        let rewritten = r.rewrite(&e1, None);
        assert!(matches!(rewritten, Cow::Owned(_)));
        assert_eq!(
            body_fields(&rewritten),
            (j, "Test County", "TX", true, true)
        );
        assert_eq!(
            (&rewritten.source, &rewritten.id, rewritten.time),
            (&e1.source, &e1.id, e1.time)
        );
        r.handled(&e1, false);
        // The to edge restores the real policy, name and state included.
        let e2 = capacity_event("e2", "2017-01-11T00:00:00Z");
        let s = r.next_due(r.horizon(&e2), None).expect("the to edge");
        assert_eq!(body_fields(&s), (j, "Test County", "TX", false, true));
        // Outside the window nothing is rewritten.
        let e3 = policy_event("e3", "2017-01-12T00:00:00Z", j, false, false);
        assert!(matches!(r.rewrite(&e3, None), Cow::Borrowed(_)));
    }

    #[test]
    fn a_start_edge_goes_no_later_than_the_earliest_explicit_edge() {
        let j = "tx-travis-county";
        let overrides = [
            window(j, Some("2017-01-01T00:00:00Z"), None, Some(true)),
            Override::Policy(PolicyOverride {
                return_agreement: Some(true),
                ..policy_window(j, None, None, None)
            }),
        ];
        let mut r = Rewriter::new(&overrides);
        let e1 = capacity_event("e1", "2017-02-01T00:00:00Z");
        let h = r.horizon(&e1);
        let first = r.next_due(h, None).unwrap();
        let second = r.next_due(h, None).unwrap();
        assert_eq!(
            (first.id.as_str(), first.time),
            ("override-1-from", t("2017-01-01T00:00:00Z"))
        );
        assert_eq!(
            (body_fields(&first).3, body_fields(&first).4),
            (false, true)
        );
        assert_eq!(
            (second.id.as_str(), second.time),
            ("override-0-from", t("2017-01-01T00:00:00Z"))
        );
        assert_eq!(
            (body_fields(&second).3, body_fields(&second).4),
            (true, true)
        );
        assert_eq!(r.next_due(h, None), None);
    }

    #[test]
    fn duplicates_move_neither_the_clock_nor_the_real_policy() {
        let j = "tx-travis-county";
        let overrides = [window(j, Some("2017-01-10T00:00:00Z"), None, Some(true))];
        let mut r = Rewriter::new(&overrides);
        r.handled(
            &policy_event("e1", "2017-01-20T00:00:00Z", j, false, true),
            true,
        );
        assert_eq!(r.clock, None);
        assert!(r.real.is_empty());
    }

    #[test]
    fn windows_overlap_unless_one_ends_before_the_other_starts() {
        let j = "tx-travis-county";
        let a = window(
            j,
            Some("2017-01-01T00:00:00Z"),
            Some("2017-01-05T00:00:00Z"),
            Some(true),
        );
        let b = window(j, Some("2017-01-05T00:00:00Z"), None, Some(true));
        let c = window(j, None, Some("2017-01-02T00:00:00Z"), Some(true));
        assert!(!a.overlaps(&b) && !b.overlaps(&a));
        assert!(a.overlaps(&c) && c.overlaps(&a));
        assert!(!b.overlaps(&c));
        assert!(window(j, None, None, None).overlaps(&b));
    }

    #[test]
    fn jurisdiction_ids_follow_the_icd() {
        for ok in ["tx-travis-county", "a1", "0_x"] {
            assert!(is_jurisdiction_id(ok), "{ok}");
        }
        let long = "a".repeat(64);
        for bad in ["", "a", "Tx-travis", "-tx", "tx.travis", long.as_str()] {
            assert!(!is_jurisdiction_id(bad), "{bad}");
        }
    }
}
