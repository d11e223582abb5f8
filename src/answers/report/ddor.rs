//! The Declined Detainer Outcome Report (ICD section 7): detainers issued, releases despite
//! a detainer, and the offenses on those detainers, for a period of a replayed journal.
//!
//! [`Ddor`] is fed every [`Seen`] of a `replay::run` and keeps only what the report needs,
//! in memory bounded for a ten-million-event log: a count per jurisdiction, per state and
//! per offense, and for every detainer issued before the end of the period its criminal
//! status and its offenses (offense strings and whole offense lists are interned, so a
//! detainer costs one small key and eight bytes). Nothing that reaches the output is in
//! hash order: everything is sorted in [`Ddor::finish`].
//!
//! Jurisdictions are counted by `jurisdiction_id`, never by name: the 2017 reports were
//! withdrawn because detainers were credited to the wrong county of the same name
//! (domain.md, "Reporting").

use std::collections::BTreeMap;
use std::fmt::Write;

use hashbrown::HashMap;
use serde::Serialize;

use crate::answers::replay::Seen;
use crate::answers::report::{Format, csv_field, html, md_cell};
use crate::edge::wire::format_time;
use handoff_core::engine::{Engine, Outcome};
use handoff_core::model::{
    CriminalStatus, Custodian, Decision, DecisionBody, Event, EventBody, Rule, Time,
};

/// The value of the top-level `"report"` field of the JSON rendering.
pub(crate) const REPORT_NAME: &str = "declined_detainer_outcome";

/// A detainer as issued: what a declined release of it is counted under.
#[derive(Debug, Clone, Copy)]
struct Issued {
    status: CriminalStatus,
    /// Index into `Ddor::lists`: the detainer's offenses as interned offense indices.
    offenses: u32,
}

/// Accumulates the report while a log is replayed (feed it every `replay::Seen`).
///
/// An event counts when its clock time, the engine's clock after handling it, is in
/// `[from, to)`; a decision counts when its `time` is. Duplicates never count.
#[derive(Debug)]
pub struct Ddor {
    from: Time,
    to: Time,
    top: usize,
    issued_total: u64,
    /// Detainers issued in the period whose custodian is a local jurisdiction, by
    /// `jurisdiction_id`.
    issued_by_jurisdiction: HashMap<String, u64>,
    /// Every detainer issued before `to`, keyed by `person_id`, NUL, `detainer_id` (neither
    /// identifier can hold a NUL). A re-issue overwrites the earlier entry.
    detainers: HashMap<Box<str>, Issued>,
    /// Interned offense strings, and the index of each.
    offense_names: Vec<String>,
    offense_ids: HashMap<String, u32>,
    /// Interned offense lists (each in the detainer's own order), and the index of each;
    /// most detainers share one of a few thousand lists.
    lists: Vec<Box<[u32]>>,
    list_ids: HashMap<Box<[u32]>, u32>,
    /// Scratch space for building keys and lists without allocating.
    key: String,
    scratch: Vec<u32>,
    /// The running counts; `by_state` is filled in from `by_state` at the end.
    declined: DeclinedReleases,
    by_state: BTreeMap<String, u64>,
    /// Declined releases per offense, indexed like `offense_names`.
    offense_counts: Vec<u64>,
}

impl Ddor {
    /// A report of the period `[from, to)` listing the `top` jurisdictions with the most
    /// detainers issued (the CLI's default is 10).
    pub fn new(from: Time, to: Time, top: usize) -> Self {
        Ddor {
            from,
            to,
            top,
            issued_total: 0,
            issued_by_jurisdiction: HashMap::new(),
            detainers: HashMap::new(),
            offense_names: Vec::new(),
            offense_ids: HashMap::new(),
            lists: Vec::new(),
            list_ids: HashMap::new(),
            key: String::new(),
            scratch: Vec::new(),
            declined: DeclinedReleases::default(),
            by_state: BTreeMap::new(),
            offense_counts: Vec::new(),
        }
    }

    fn in_period(&self, t: Time) -> bool {
        self.from <= t && t < self.to
    }

    /// Takes in one thing the replay saw. `engine` is the engine right after it, so a
    /// jurisdiction's policy read here is the policy at the time of the decisions seen.
    pub fn observe(&mut self, engine: &Engine, seen: &Seen<'_>) {
        match seen {
            Seen::Event { event, step, .. } => {
                if step.outcome == Outcome::Duplicate {
                    return;
                }
                let clock = engine.clock().unwrap_or_else(|| event.clock_time());
                self.event(event, clock);
                for d in &step.decisions {
                    self.decision(engine, d);
                }
            }
            Seen::Invalid { .. } => {}
            Seen::End { decisions } => {
                for d in *decisions {
                    self.decision(engine, d);
                }
            }
        }
    }

    /// Records a detainer (whatever its time, so that a release in the period of a
    /// detainer issued before it is counted) and counts it when issued in the period.
    fn event(&mut self, event: &Event, clock: Time) {
        let EventBody::DetainerIssued {
            detainer_id,
            person_id,
            custodian,
            criminal_status,
            offenses,
        } = &event.body
        else {
            return;
        };
        if clock >= self.to {
            // No decision in the period can concern it.
            return;
        }
        if self.in_period(clock) {
            self.issued_total += 1;
            if let Custodian::Local(j) = custodian {
                *self
                    .issued_by_jurisdiction
                    .entry_ref(j.as_str())
                    .or_insert(0) += 1;
            }
        }
        let list = self.intern_list(offenses);
        let issued = Issued {
            status: *criminal_status,
            offenses: list,
        };
        set_key(&mut self.key, person_id, detainer_id);
        match self.detainers.get_mut(self.key.as_str()) {
            Some(slot) => *slot = issued,
            None => {
                self.detainers.insert(self.key.as_str().into(), issued);
            }
        }
    }

    /// The index of an offense list, interning each offense and the list itself.
    fn intern_list(&mut self, offenses: &[String]) -> u32 {
        self.scratch.clear();
        for o in offenses {
            let id = match self.offense_ids.get(o.as_str()) {
                Some(&id) => id,
                None => {
                    let id = u32::try_from(self.offense_names.len()).expect("offenses fit u32");
                    self.offense_names.push(o.clone());
                    self.offense_ids.insert(o.clone(), id);
                    self.offense_counts.push(0);
                    id
                }
            };
            self.scratch.push(id);
        }
        if let Some(&id) = self.list_ids.get(self.scratch.as_slice()) {
            return id;
        }
        let id = u32::try_from(self.lists.len()).expect("offense lists fit u32");
        let list: Box<[u32]> = self.scratch.as_slice().into();
        self.lists.push(list.clone());
        self.list_ids.insert(list, id);
        id
    }

    /// Counts a declined release decided in the period: R3.2 (at release) and R3.7
    /// (during a hold), both "a declined detainer for the report" (ICD section 7).
    fn decision(&mut self, engine: &Engine, d: &Decision) {
        if !matches!(d.rule, Rule::R3_2 | Rule::R3_7) || !self.in_period(d.time) {
            return;
        }
        let DecisionBody::Release {
            from, detainer_id, ..
        } = &d.body
        else {
            return;
        };
        // The detainer as issued; a release of a detainer never seen (impossible when the
        // whole journal is replayed) counts as `none`, with no offenses.
        let issued = detainer_id.as_deref().and_then(|detainer| {
            set_key(&mut self.key, &d.person_id, detainer);
            self.detainers.get(self.key.as_str()).copied()
        });
        let status = issued.map_or(CriminalStatus::None, |i| i.status);
        self.declined.total += 1;
        if d.rule == Rule::R3_2 {
            self.declined.at_release += 1;
        } else {
            self.declined.during_hold += 1;
        }
        match status {
            CriminalStatus::Convicted => self.declined.convicted += 1,
            CriminalStatus::Charged => self.declined.charged += 1,
            CriminalStatus::None => self.declined.none += 1,
        }
        let (state, honors) = match from {
            Custodian::Local(j) => (
                engine.policy(j).map_or("unknown", |p| p.state.as_str()),
                engine.stance(j).0,
            ),
            _ => ("unknown", false),
        };
        match self.by_state.get_mut(state) {
            Some(n) => *n += 1,
            None => {
                self.by_state.insert(state.to_owned(), 1);
            }
        }
        if honors {
            self.declined.in_honoring += 1;
        } else {
            self.declined.in_non_honoring += 1;
        }
        if let Some(i) = issued {
            for &o in self.lists[i.offenses as usize].iter() {
                self.offense_counts[o as usize] += 1;
            }
        }
    }

    /// The report, with names and states of the top jurisdictions from their latest
    /// policies.
    pub fn finish(self, engine: &Engine) -> DdorReport {
        let mut jurisdictions: Vec<(&String, u64)> = self
            .issued_by_jurisdiction
            .iter()
            .map(|(j, n)| (j, *n))
            .collect();
        jurisdictions.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        let top_jurisdictions = jurisdictions
            .into_iter()
            .take(self.top)
            .map(|(j, count)| {
                let policy = engine.policy(j);
                JurisdictionCount {
                    jurisdiction_id: j.clone(),
                    name: policy.map(|p| p.name.clone()),
                    state: policy.map(|p| p.state.clone()),
                    count,
                }
            })
            .collect();
        let mut by_state: Vec<StateCount> = self
            .by_state
            .into_iter()
            .map(|(state, count)| StateCount { state, count })
            .collect();
        by_state.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.state.cmp(&b.state)));
        let mut offenses: Vec<OffenseCount> = self
            .offense_names
            .into_iter()
            .zip(self.offense_counts)
            .filter(|(_, count)| *count > 0)
            .map(|(offense, count)| OffenseCount { offense, count })
            .collect();
        offenses.sort_unstable_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.offense.cmp(&b.offense))
        });
        DdorReport {
            from: format_time(&self.from),
            to: format_time(&self.to),
            detainers_issued: DetainersIssued {
                total: self.issued_total,
                top_jurisdictions,
            },
            declined: DeclinedReleases {
                by_state,
                ..self.declined
            },
            offenses,
        }
    }
}

/// Writes the detainer map's key for `person_id` and `detainer_id` into `key`.
fn set_key(key: &mut String, person_id: &str, detainer_id: &str) {
    key.clear();
    key.push_str(person_id);
    key.push('\0');
    key.push_str(detainer_id);
}

/// The Declined Detainer Outcome Report for one period. Serialized (with a leading
/// `"report": "declined_detainer_outcome"`) it is the JSON rendering.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DdorReport {
    /// The start of the period, included (RFC 3339, UTC).
    pub from: String,
    /// The end of the period, excluded (RFC 3339, UTC).
    pub to: String,
    pub detainers_issued: DetainersIssued,
    pub declined: DeclinedReleases,
    /// The offenses listed on the detainers of declined releases, each counted once per
    /// release, by count (descending) then offense.
    pub offenses: Vec<OffenseCount>,
}

/// `ice.detainer.issued` events in the period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetainersIssued {
    pub total: u64,
    /// The jurisdictions with the most detainers issued to them as custodian (kind
    /// `local`), by count (descending) then `jurisdiction_id`.
    pub top_jurisdictions: Vec<JurisdictionCount>,
}

/// Detainers issued to one jurisdiction. `name` and `state` come from its latest policy,
/// and are null when it never published one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JurisdictionCount {
    pub jurisdiction_id: String,
    pub name: Option<String>,
    pub state: Option<String>,
    pub count: u64,
}

/// Releases despite a detainer decided in the period (ICD section 7): releases under
/// R3.2 (the jurisdiction released at the normal time: it does not honor detainers, or
/// had declined every active one) and under R3.7 (it declined the detainer during a
/// hold), both with basis `detainer_declined`. Each rule is also counted on its own.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DeclinedReleases {
    pub total: u64,
    /// R3.2: released at the normal time despite the detainer.
    pub at_release: u64,
    /// R3.7: the jurisdiction declined the detainer during its hold.
    pub during_hold: u64,
    /// By the `criminal_status` of the released detainer as issued.
    pub convicted: u64,
    pub charged: u64,
    pub none: u64,
    /// By the state of the releasing jurisdiction's policy at the time (`unknown` when it
    /// had none), by count (descending) then state.
    pub by_state: Vec<StateCount>,
    /// In jurisdictions whose policy at the time did not honor detainers (or that had no
    /// policy).
    pub in_non_honoring: u64,
    /// In jurisdictions whose policy at the time honored detainers: they declined that
    /// detainer explicitly.
    pub in_honoring: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StateCount {
    pub state: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OffenseCount {
    pub offense: String,
    pub count: u64,
}

/// The JSON form: the report, named.
#[derive(Serialize)]
struct Named<'a> {
    report: &'static str,
    #[serde(flatten)]
    body: &'a DdorReport,
}

impl DdorReport {
    /// The report in `format`; every format ends with a newline.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Json => self.json(),
            Format::Csv => self.csv(),
            Format::Md => self.markdown(),
            Format::Html => self.html(),
        }
    }

    fn title(&self) -> String {
        format!(
            "Declined Detainer Outcome Report, {} to {}",
            self.from, self.to
        )
    }

    fn json(&self) -> String {
        let named = Named {
            report: REPORT_NAME,
            body: self,
        };
        let mut out = serde_json::to_string_pretty(&named).expect("the report serializes");
        out.push('\n');
        out
    }

    fn csv(&self) -> String {
        let mut out = String::from("section,key,count\n");
        let mut row = |section: &str, key: &str, count: u64| {
            let _ = writeln!(out, "{section},{},{count}", csv_field(key));
        };
        let issued = &self.detainers_issued;
        row("detainers_issued", "total", issued.total);
        for j in &issued.top_jurisdictions {
            row("top_jurisdiction", &j.jurisdiction_id, j.count);
        }
        let d = &self.declined;
        row("declined", "total", d.total);
        row("declined", "at_release", d.at_release);
        row("declined", "during_hold", d.during_hold);
        row("declined", "convicted", d.convicted);
        row("declined", "charged", d.charged);
        row("declined", "none", d.none);
        for s in &d.by_state {
            row("declined_by_state", &s.state, s.count);
        }
        row("declined_policy", "not_honoring", d.in_non_honoring);
        row("declined_policy", "honoring", d.in_honoring);
        for o in &self.offenses {
            row("offense", &o.offense, o.count);
        }
        out
    }

    fn markdown(&self) -> String {
        let d = &self.declined;
        let mut out = format!(
            "# {}\n\n\
Events with a clock time from {} (included) to {} (excluded).\n\n\
## Totals\n\n",
            md_cell(&self.title()),
            self.from,
            self.to
        );
        md_table(
            &mut out,
            &["figure", "count"],
            &[
                ("Detainers issued", self.detainers_issued.total),
                ("Released despite a detainer (R3.2, R3.7)", d.total),
                ("at release (R3.2)", d.at_release),
                ("during a hold (R3.7)", d.during_hold),
                ("convicted", d.convicted),
                ("charged", d.charged),
                ("no criminal record (none)", d.none),
                ("in jurisdictions not honoring detainers", d.in_non_honoring),
                ("in jurisdictions honoring detainers", d.in_honoring),
            ]
            .map(|(k, v)| vec![k.to_owned(), v.to_string()]),
        );
        out.push_str("\n## Jurisdictions with the most detainers issued\n\n");
        let rows: Vec<Vec<String>> = self
            .detainers_issued
            .top_jurisdictions
            .iter()
            .map(|j| {
                vec![
                    j.jurisdiction_id.clone(),
                    j.name.clone().unwrap_or_default(),
                    j.state.clone().unwrap_or_default(),
                    j.count.to_string(),
                ]
            })
            .collect();
        md_table(
            &mut out,
            &["jurisdiction_id", "name", "state", "detainers"],
            &rows,
        );
        out.push_str("\n## Declined releases by state\n\n");
        let rows: Vec<Vec<String>> = d
            .by_state
            .iter()
            .map(|s| vec![s.state.clone(), s.count.to_string()])
            .collect();
        md_table(&mut out, &["state", "declined releases"], &rows);
        out.push_str("\n## Offenses on declined detainers\n\n");
        let rows: Vec<Vec<String>> = self
            .offenses
            .iter()
            .map(|o| vec![o.offense.clone(), o.count.to_string()])
            .collect();
        md_table(&mut out, &["offense", "count"], &rows);
        out
    }

    fn html(&self) -> String {
        let d = &self.declined;
        let mut body = format!(
            "<h1>{}</h1>\n<p class=\"note\">Events with a clock time from {} (included) to {} \
(excluded). A declined detainer is a release under rule R3.2 (the jurisdiction did not \
honor detainers, or had declined every active one) or R3.7 (it declined the detainer during \
its hold). Jurisdictions are identified by code.</p>\n",
            html::escape(&self.title()),
            html::escape(&self.from),
            html::escape(&self.to),
        );
        body.push_str(&html::totals(&[
            ("detainers issued", self.detainers_issued.total.to_string()),
            ("released despite a detainer", d.total.to_string()),
            ("at release (R3.2)", d.at_release.to_string()),
            ("during a hold (R3.7)", d.during_hold.to_string()),
            ("convicted", d.convicted.to_string()),
            ("charged", d.charged.to_string()),
            ("no criminal record", d.none.to_string()),
            (
                "in jurisdictions not honoring detainers",
                d.in_non_honoring.to_string(),
            ),
            (
                "in jurisdictions honoring detainers",
                d.in_honoring.to_string(),
            ),
        ]));
        body.push_str("<h2>Declined releases by state</h2>\n");
        let bars: Vec<(String, u64)> = d
            .by_state
            .iter()
            .map(|s| (s.state.clone(), s.count))
            .collect();
        body.push_str(&html::bar_chart("Declined releases by state", &bars));
        body.push_str("<h2>Detainers issued, by jurisdiction</h2>\n");
        let bars: Vec<(String, u64)> = self
            .detainers_issued
            .top_jurisdictions
            .iter()
            .map(|j| {
                let label = match (&j.name, &j.state) {
                    (Some(name), Some(state)) => {
                        format!("{name}, {state} ({})", j.jurisdiction_id)
                    }
                    _ => j.jurisdiction_id.clone(),
                };
                (label, j.count)
            })
            .collect();
        body.push_str(&html::bar_chart("Detainers issued, by jurisdiction", &bars));
        body.push_str("<h2>Offenses on declined detainers</h2>\n");
        if self.offenses.is_empty() {
            body.push_str("<p class=\"note\">None.</p>\n");
        } else {
            let rows: Vec<Vec<String>> = self
                .offenses
                .iter()
                .map(|o| vec![o.offense.clone(), o.count.to_string()])
                .collect();
            body.push_str(&html::table(&["offense", "declined releases"], &rows));
        }
        html::page(&self.title(), &body)
    }
}

/// Appends a Markdown table (cells escaped here), or a note when there are no rows.
fn md_table(out: &mut String, headers: &[&str], rows: &[Vec<String>]) {
    if rows.is_empty() {
        out.push_str("_None._\n");
        return;
    }
    let line = |cells: &mut dyn Iterator<Item = String>| {
        let cells: Vec<String> = cells.collect();
        format!("| {} |\n", cells.join(" | "))
    };
    out.push_str(&line(&mut headers.iter().map(|h| md_cell(h))));
    out.push_str(&line(&mut headers.iter().map(|_| "---".to_owned())));
    for row in rows {
        out.push_str(&line(&mut row.iter().map(|c| md_cell(c))));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> DdorReport {
        DdorReport {
            from: "2017-01-28T00:00:00Z".to_owned(),
            to: "2017-02-04T00:00:00Z".to_owned(),
            detainers_issued: DetainersIssued {
                total: 3,
                top_jurisdictions: vec![JurisdictionCount {
                    jurisdiction_id: "tx-travis-county".to_owned(),
                    name: None,
                    state: None,
                    count: 2,
                }],
            },
            declined: DeclinedReleases {
                total: 1,
                at_release: 1,
                during_hold: 0,
                convicted: 0,
                charged: 1,
                none: 0,
                by_state: vec![StateCount {
                    state: "unknown".to_owned(),
                    count: 1,
                }],
                in_non_honoring: 1,
                in_honoring: 0,
            },
            offenses: vec![OffenseCount {
                offense: "a | b, c".to_owned(),
                count: 1,
            }],
        }
    }

    #[test]
    fn report_csv_quotes_and_md_escapes() {
        let r = report();
        assert!(r.render(Format::Csv).contains("offense,\"a | b, c\",1\n"));
        assert!(r.render(Format::Md).contains("| a \\| b, c | 1 |"));
    }

    #[test]
    fn report_json_is_named_first() {
        let json = report().render(Format::Json);
        assert!(json.starts_with("{\n  \"report\": \"declined_detainer_outcome\",\n  \"from\""));
    }

    #[test]
    fn report_html_labels_jurisdictions_without_policy_by_id() {
        let html = report().render(Format::Html);
        assert!(html.contains(">tx-travis-county</text>"));
        assert!(!html.contains("<script"));
    }
}
