//! ICE detention capacity: occupancy against funded beds day by day, what the beds cost,
//! and the placements R4 decided (detention by basis, Alternatives to Detention by
//! monitoring).
//!
//! `Capacity` is fed every `replay::Seen` of a run and reads the engine as it stands after
//! each step; `finish` gives a `CapacityReport`, rendered as JSON, CSV, Markdown or one
//! self-contained HTML page.
//!
//! The readings taken:
//!
//! - *Occupancy is the engine's* (`Engine::capacity()`): funded and occupied beds from the
//!   latest `ice.capacity.updated`, occupancy counting every `detain` since (R4). Nothing
//!   here re-derives it.
//! - *A day* is a UTC calendar day. Its row holds the figures as they stood after the last
//!   step whose clock time (`Engine::clock()` after the step; for the timers fired at the
//!   end of a run, the clock they moved it to, which is the latest decision's `time`) falls
//!   on that day. Days without events carry the previous day's figures forward.
//! - *The rows* run from the first day on which the engine knew a capacity to the day of
//!   the engine's last clock time. Days before any capacity is known are not rows.
//! - *Cost* of a day is `occupied_beds × rate` (the occupied beds at the end of the day
//!   count as that day's bed-days), rounded to the cent. The total is
//!   `bed_days × rate`, rounded to the cent, where `bed_days` is the sum of the daily
//!   occupied beds; with a rate that is not a whole number of cents the total may then
//!   differ by a cent or so from the sum of the rounded daily costs.
//! - *The peak* is the largest end-of-day occupancy, dated on the first day it was
//!   reached. A peak inside a day that a capacity update reset before midnight is not seen.
//! - *Placements* are counted from every `handoff.placement` decision, including those made
//!   before any capacity was known (they are placements all the same). Duplicates decide
//!   nothing and are skipped outright, so they never count and never extend the days.
//!
//! Memory is one small entry per day and one counter per kind of placement, whatever the
//! number of events.
//!
//! The CSV is two tables separated by one blank line: first the daily table,
//! `date,funded_beds,occupied_beds,over_capacity,cost_usd`, one row per day; then
//! `placement,basis,monitoring,count`, one row per kind of placement (`monitoring` empty for
//! `detain`). The five kinds R4 can decide are always listed, with zero counts too. Cost
//! figures always have two decimals.

use std::fmt::Write as _;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::answers::replay::Seen;
use crate::answers::report::{Format, csv_field, html};
use handoff_core::engine::{Engine, Outcome};
use handoff_core::model::{Basis, Decision, DecisionBody, Monitoring, Placement};

/// The default cost of one bed for one day, in USD: ICE's 2013 figure (domain.md).
pub(crate) const DEFAULT_RATE_USD: f64 = 122.0;

/// The name of this report in its JSON form (`"report": "ice_capacity"`).
pub(crate) const REPORT_NAME: &str = "ice_capacity";

/// The accumulator: feed it every `Seen` of a replay, then `finish`.
#[derive(Debug, Clone)]
pub struct Capacity {
    rate: f64,
    /// End-of-day `(date, funded, occupied)` for every day from the first with a known
    /// capacity; the last entry is the current day and changes while events fall on it.
    days: Vec<(NaiveDate, u64, u64)>,
    /// Placements by kind, indexed like [`KINDS`].
    placements: [u64; KINDS.len()],
}

/// The kinds of placement R4 can decide, in the report's order (ICD order of basis, then
/// of monitoring); all are always listed.
const KINDS: [(Placement, Basis, Option<Monitoring>); 5] = [
    (Placement::Detain, Basis::PriorityDetention, None),
    (Placement::Detain, Basis::Detainer, None),
    (
        Placement::Atd,
        Basis::Capacity,
        Some(Monitoring::AnkleMonitor),
    ),
    (
        Placement::Atd,
        Basis::Capacity,
        Some(Monitoring::Telephonic),
    ),
    (
        Placement::Atd,
        Basis::Capacity,
        Some(Monitoring::OfficeCheckin),
    ),
];

/// Rounds an amount in USD to the cent.
fn cents(usd: f64) -> f64 {
    (usd * 100.0).round() / 100.0
}

impl Capacity {
    /// An empty report costing a bed-day at `rate_per_bed_day` USD. The rate is used as
    /// given; the caller checks that it is finite and not negative.
    pub fn new(rate_per_bed_day: f64) -> Self {
        Capacity {
            rate: rate_per_bed_day,
            days: Vec::new(),
            placements: [0; KINDS.len()],
        }
    }

    /// Takes in one thing a replay saw, with the engine as it stands after it.
    pub fn observe(&mut self, engine: &Engine, seen: &Seen<'_>) {
        match seen {
            Seen::Event { step, .. } => {
                if step.outcome == Outcome::Duplicate {
                    return;
                }
                self.count(&step.decisions);
            }
            Seen::End { decisions } => self.count(decisions),
            Seen::Invalid { .. } => return,
        }
        self.record(engine);
    }

    /// The report. The engine's final state is recorded once more, so that a clock moved
    /// after the last `observe` (by `Engine::fire`) still extends the days.
    pub fn finish(mut self, engine: &Engine) -> CapacityReport {
        self.record(engine);
        let rate = self.rate;
        let days: Vec<DayRow> = self
            .days
            .iter()
            .map(|&(date, funded, occupied)| DayRow {
                date,
                funded_beds: funded,
                occupied_beds: occupied,
                over_capacity: occupied >= funded,
                cost_usd: cents(occupied as f64 * rate),
            })
            .collect();

        let bed_days: u64 = days.iter().map(|d| d.occupied_beds).sum();
        // The first day of the largest occupancy: `max_by_key` would take the last.
        let peak = days.iter().fold(None::<&DayRow>, |best, d| match best {
            Some(b) if b.occupied_beds >= d.occupied_beds => Some(b),
            _ => Some(d),
        });

        let mut by_basis = ByBasis::default();
        let mut by_placement = ByPlacement::default();
        let mut atd = ByMonitoring::default();
        let mut placements = Vec::with_capacity(self.placements.len());
        for (&(placement, basis, monitoring), &count) in KINDS.iter().zip(&self.placements) {
            match basis {
                Basis::PriorityDetention => by_basis.priority_detention += count,
                Basis::Detainer => by_basis.detainer += count,
                Basis::Capacity => by_basis.capacity += count,
                _ => {}
            }
            match placement {
                Placement::Detain => by_placement.detain += count,
                Placement::Atd => by_placement.atd += count,
            }
            match monitoring {
                Some(Monitoring::AnkleMonitor) => atd.ankle_monitor += count,
                Some(Monitoring::Telephonic) => atd.telephonic += count,
                Some(Monitoring::OfficeCheckin) => atd.office_checkin += count,
                None => {}
            }
            placements.push(PlacementRow {
                placement: placement.as_str().to_owned(),
                basis: basis.as_str().to_owned(),
                monitoring: monitoring.map(|m| m.as_str().to_owned()),
                count,
            });
        }

        CapacityReport {
            totals: Totals {
                first_date: days.first().map(|d| d.date),
                last_date: days.last().map(|d| d.date),
                days: days.len() as u64,
                bed_days,
                cost_usd: cents(bed_days as f64 * rate),
                rate_usd_per_bed_day: rate,
                peak_occupied_beds: peak.map(|d| d.occupied_beds),
                peak_date: peak.map(|d| d.date),
                days_over_capacity: days.iter().filter(|d| d.over_capacity).count() as u64,
                placements: by_placement.detain + by_placement.atd,
            },
            days,
            placements,
            placements_by_basis: by_basis,
            placements_by_placement: by_placement,
            atd_by_monitoring: atd,
        }
    }

    fn count(&mut self, decisions: &[Decision]) {
        for d in decisions {
            if let DecisionBody::Placement {
                placement,
                monitoring,
                basis,
            } = &d.body
            {
                let kind = (*placement, *basis, *monitoring);
                let i = KINDS
                    .iter()
                    .position(|k| *k == kind)
                    .expect("R4 decides only the kinds in KINDS");
                self.placements[i] += 1;
            }
        }
    }

    /// Records the engine's capacity as it stands now on the day of its clock.
    fn record(&mut self, engine: &Engine) {
        let (Some(clock), Some((funded, occupied))) = (engine.clock(), engine.capacity()) else {
            return;
        };
        let date = clock.date_naive();
        match self.days.last_mut() {
            // The engine's clock never moves backwards, so an earlier date cannot come;
            // were it to, it is taken as the current day rather than rewriting the past.
            Some(last) if date <= last.0 => {
                last.1 = funded;
                last.2 = occupied;
            }
            Some(&mut (last_date, last_funded, last_occupied)) => {
                let mut d = last_date;
                while let Some(next) = d.succ_opt().filter(|n| *n < date) {
                    self.days.push((next, last_funded, last_occupied));
                    d = next;
                }
                self.days.push((date, funded, occupied));
            }
            None => self.days.push((date, funded, occupied)),
        }
    }
}

/// ICE detention capacity over a log: see the module documentation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityReport {
    pub totals: Totals,
    /// One row per UTC day, from the first day a capacity was known to the last day.
    pub days: Vec<DayRow>,
    /// Placements by kind, in ICD order; the kinds R4 can decide are always present.
    pub placements: Vec<PlacementRow>,
    pub placements_by_basis: ByBasis,
    pub placements_by_placement: ByPlacement,
    pub atd_by_monitoring: ByMonitoring,
}

/// The headline figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub first_date: Option<NaiveDate>,
    pub last_date: Option<NaiveDate>,
    /// Days covered: the number of daily rows.
    pub days: u64,
    /// The sum of the daily occupied beds.
    pub bed_days: u64,
    /// `bed_days × rate`, rounded to the cent.
    pub cost_usd: f64,
    pub rate_usd_per_bed_day: f64,
    /// The largest end-of-day occupancy, and the first day it was reached.
    pub peak_occupied_beds: Option<u64>,
    pub peak_date: Option<NaiveDate>,
    /// Days ending with `occupied_beds >= funded_beds`.
    pub days_over_capacity: u64,
    /// All placement decisions.
    pub placements: u64,
}

/// One UTC day, as the engine stood at its end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DayRow {
    pub date: NaiveDate,
    pub funded_beds: u64,
    pub occupied_beds: u64,
    /// `occupied_beds >= funded_beds`: R4 detains only the convicted.
    pub over_capacity: bool,
    /// `occupied_beds × rate`, rounded to the cent.
    pub cost_usd: f64,
}

/// How many placements of one kind were decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlacementRow {
    /// `detain` or `atd`.
    pub placement: String,
    pub basis: String,
    /// For `atd` only.
    pub monitoring: Option<String>,
    pub count: u64,
}

/// Placements by basis (the three bases R4 gives).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ByBasis {
    pub priority_detention: u64,
    pub detainer: u64,
    pub capacity: u64,
}

/// Placements by placement.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ByPlacement {
    pub detain: u64,
    pub atd: u64,
}

/// Alternatives to Detention enrollments by monitoring.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ByMonitoring {
    pub ankle_monitor: u64,
    pub telephonic: u64,
    pub office_checkin: u64,
}

/// The JSON form: the report's name first, then the report.
#[derive(Serialize)]
struct Named<'a> {
    report: &'static str,
    #[serde(flatten)]
    body: &'a CapacityReport,
}

/// A date for display, or a dash.
fn date_or_dash(d: Option<NaiveDate>) -> String {
    d.map_or_else(|| "-".to_owned(), |d| d.to_string())
}

/// A whole number with thousands separators (`41,502`).
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// An amount in USD with thousands separators and two decimals (`$5,063,244.00`).
fn usd(amount: f64) -> String {
    if !amount.is_finite() {
        return format!("${amount}");
    }
    let fixed = format!("{:.2}", amount.abs());
    let (whole, frac) = fixed.split_once('.').unwrap_or((&fixed, "00"));
    let whole = whole
        .parse::<u64>()
        .map_or_else(|_| whole.to_owned(), grouped);
    let sign = if amount < 0.0 { "-" } else { "" };
    format!("{sign}${whole}.{frac}")
}

impl CapacityReport {
    /// The report in `format`. Every format is available.
    pub fn render(&self, format: Format) -> Result<String, String> {
        match format {
            Format::Json => self.json(),
            Format::Csv => Ok(self.csv()),
            Format::Md => Ok(self.markdown()),
            Format::Html => Ok(self.html()),
        }
    }

    fn json(&self) -> Result<String, String> {
        let mut s = serde_json::to_string_pretty(&Named {
            report: REPORT_NAME,
            body: self,
        })
        .map_err(|e| e.to_string())?;
        s.push('\n');
        Ok(s)
    }

    fn csv(&self) -> String {
        let mut out = String::from("date,funded_beds,occupied_beds,over_capacity,cost_usd\n");
        for d in &self.days {
            let _ = writeln!(
                out,
                "{},{},{},{},{:.2}",
                d.date, d.funded_beds, d.occupied_beds, d.over_capacity, d.cost_usd
            );
        }
        out.push_str("\nplacement,basis,monitoring,count\n");
        for p in &self.placements {
            let _ = writeln!(
                out,
                "{},{},{},{}",
                csv_field(&p.placement),
                csv_field(&p.basis),
                csv_field(p.monitoring.as_deref().unwrap_or("")),
                p.count
            );
        }
        out
    }

    /// The headline figures as (label, value) pairs, for HTML and Markdown.
    fn headline(&self) -> Vec<(&'static str, String)> {
        let t = &self.totals;
        let peak = match (t.peak_occupied_beds, t.peak_date) {
            (Some(n), Some(d)) => format!("{} on {d}", grouped(n)),
            _ => "-".to_owned(),
        };
        vec![
            ("days covered", t.days.to_string()),
            ("total cost", usd(t.cost_usd)),
            ("bed-days", grouped(t.bed_days)),
            ("peak occupancy", peak),
            ("days over capacity", t.days_over_capacity.to_string()),
            ("per bed-day", usd(t.rate_usd_per_bed_day)),
        ]
    }

    /// Placements by basis, split by placement: (basis, detain, atd), in report order.
    fn basis_table(&self) -> Vec<(String, u64, u64)> {
        let mut rows: Vec<(String, u64, u64)> = Vec::new();
        for p in &self.placements {
            let i = match rows.iter().position(|r| r.0 == p.basis) {
                Some(i) => i,
                None => {
                    rows.push((p.basis.clone(), 0, 0));
                    rows.len() - 1
                }
            };
            if p.placement == "detain" {
                rows[i].1 += p.count;
            } else {
                rows[i].2 += p.count;
            }
        }
        rows
    }

    fn atd_table(&self) -> [(&'static str, u64); 3] {
        let a = &self.atd_by_monitoring;
        [
            ("ankle_monitor", a.ankle_monitor),
            ("telephonic", a.telephonic),
            ("office_checkin", a.office_checkin),
        ]
    }

    fn scope_note(&self) -> String {
        format!(
            "UTC days from {} to {}, as the engine stood at the end of each day: funded beds \
from the latest ice.capacity.updated, occupied beds counting every detain placement since \
(R4). A day's cost is its occupied beds times {} per bed-day. Days without events carry \
the previous day's figures forward.",
            date_or_dash(self.totals.first_date),
            date_or_dash(self.totals.last_date),
            usd(self.totals.rate_usd_per_bed_day),
        )
    }

    fn html(&self) -> String {
        let mut body = String::from("<h1>ICE detention capacity</h1>\n");
        let _ = writeln!(
            body,
            "<p class=\"note\">{}</p>",
            html::escape(&self.scope_note())
        );
        body.push_str(&html::totals(&self.headline()));

        body.push_str("<h2>Occupancy against funded beds</h2>\n");
        if self.days.is_empty() {
            body.push_str("<p class=\"note\">No capacity was reported in this log.</p>\n");
        } else {
            let labels: Vec<String> = self.days.iter().map(|d| d.date.to_string()).collect();
            let series = [
                html::Series {
                    name: "funded beds",
                    color: "#57606a",
                    values: self.days.iter().map(|d| d.funded_beds as f64).collect(),
                },
                html::Series {
                    name: "occupied beds",
                    color: "#0969da",
                    values: self.days.iter().map(|d| d.occupied_beds as f64).collect(),
                },
            ];
            body.push_str(&html::line_chart(
                "Funded and occupied beds by day",
                &labels,
                &series,
            ));
        }

        body.push_str("<h2>Placements by basis</h2>\n");
        let rows: Vec<Vec<String>> = self
            .basis_table()
            .into_iter()
            .map(|(basis, detain, atd)| {
                vec![
                    basis,
                    detain.to_string(),
                    atd.to_string(),
                    (detain + atd).to_string(),
                ]
            })
            .collect();
        body.push_str(&html::table(&["basis", "detain", "atd", "total"], &rows));

        body.push_str("<h2>Alternatives to Detention by monitoring</h2>\n");
        let rows: Vec<Vec<String>> = self
            .atd_table()
            .iter()
            .map(|(m, n)| vec![(*m).to_owned(), n.to_string()])
            .collect();
        body.push_str(&html::table(&["monitoring", "enrollments"], &rows));

        body.push_str("<h2>Daily occupancy</h2>\n");
        let rows: Vec<Vec<String>> = self
            .days
            .iter()
            .map(|d| {
                vec![
                    d.date.to_string(),
                    d.funded_beds.to_string(),
                    d.occupied_beds.to_string(),
                    if d.over_capacity { "yes" } else { "no" }.to_owned(),
                    format!("{:.2}", d.cost_usd),
                ]
            })
            .collect();
        body.push_str(&html::table(
            &[
                "date",
                "funded beds",
                "occupied beds",
                "over capacity",
                "cost (USD)",
            ],
            &rows,
        ));
        html::page("ICE detention capacity", &body)
    }

    fn markdown(&self) -> String {
        let mut out = String::from("# ICE detention capacity\n\n");
        let _ = writeln!(out, "{}\n", self.scope_note());
        for (label, value) in self.headline() {
            let _ = writeln!(out, "- {label}: {value}");
        }
        out.push_str(
            "\n## Placements by basis\n\n| basis | detain | atd | total |\n|---|---:|---:|---:|\n",
        );
        for (basis, detain, atd) in self.basis_table() {
            let _ = writeln!(out, "| {basis} | {detain} | {atd} | {} |", detain + atd);
        }
        out.push_str("\n## Alternatives to Detention by monitoring\n\n| monitoring | enrollments |\n|---|---:|\n");
        for (m, n) in self.atd_table() {
            let _ = writeln!(out, "| {m} | {n} |");
        }
        out.push_str(
            "\n## Daily occupancy\n\n| date | funded beds | occupied beds | over capacity | cost (USD) |\n\
|---|---:|---:|---|---:|\n",
        );
        for d in &self.days {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {:.2} |",
                d.date,
                d.funded_beds,
                d.occupied_beds,
                if d.over_capacity { "yes" } else { "no" },
                d.cost_usd
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_grouped_with_two_decimals() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(41_502), "41,502");
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(usd(5_063_244.0), "$5,063,244.00");
        assert_eq!(usd(99.25), "$99.25");
        assert_eq!(usd(0.5), "$0.50");
    }

    #[test]
    fn an_empty_log_gives_no_days_and_zero_placements() {
        let report = Capacity::new(DEFAULT_RATE_USD).finish(&Engine::new());
        assert!(report.days.is_empty());
        assert_eq!(report.totals.days, 0);
        assert_eq!(report.totals.peak_date, None);
        assert_eq!(report.placements.len(), KINDS.len());
        assert!(report.placements.iter().all(|p| p.count == 0));
        for format in [Format::Json, Format::Csv, Format::Md, Format::Html] {
            assert!(report.render(format).is_ok());
        }
    }
}
