//! ICE detention capacity: occupancy against funded beds day by day, what the beds cost,
//! the placements R4 and R6 decided, and ICE's detention reviews (R6): the moves to
//! Alternatives to Detention by basis, the bed-days and dollars they avoided, and the
//! people detained past 180 days whose removal is not foreseeable.
//!
//! `Capacity` is fed every `replay::Seen` of a run and reads the engine as it stands after
//! each step; `finish` gives a `CapacityReport`, rendered as JSON, CSV, Markdown or one
//! self-contained HTML page.
//!
//! The readings taken:
//!
//! - *Occupancy is the engine's* (`Engine::capacity()`): funded and occupied beds from the
//!   latest `ice.capacity.updated`, occupancy counting every `detain` since and every
//!   detained person who left detention since (a transfer out of ICE, a move to ATD under
//!   R6). Nothing here re-derives it.
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
//!   before any capacity was known (they are placements all the same), by kind
//!   (placement, basis, monitoring). Every kind the wire can carry has a counter (the
//!   table is indexed by the enums, so no decision can fall outside it); the kinds R4 and
//!   R6 decide are always listed, any other kind when it was seen. Duplicates decide
//!   nothing and are skipped outright, so they never count and never extend the days.
//!
//! The detention reviews (R6), in `reviews`, are counted from the decisions and events
//! themselves (never from the engine's R6 state), each at its own `time`: a decision at its
//! `time` (for a timer, its deadline), an `ice.removal.status` at the clock the engine
//! processed it at. So they are an independent account of what R6 did.
//!
//! - *A move to ATD* is a `handoff.placement` `atd` with basis `capacity_review` (R6.1),
//!   `prolonged_detention` (R6.2) or `humanitarian` (R6.3) of a person ICE detained (the
//!   decision's facts carry when detention began): it frees a bed. R6.3 placing a person in
//!   ATD instead of R4.2 detaining them frees none; it is counted apart, as
//!   `humanitarian_at_placement`.
//! - *Detained* means placed `detain` (R4.2) and not moved since: detention ends with a
//!   move to ATD, or with a transfer or release out of ICE's custody.
//! - *Bed-days avoided*: for each person moved to ATD out of detention, the time from the
//!   move until the first of: a transfer or release out of ICE's custody (its decision's
//!   `time`), a new `detain` placement of the person (back in a bed), or the report's end
//!   clock (`Engine::clock()` when the report is finished: the clock of the last event, or
//!   of the last timer fired). Days are 24 hours and fractional, the time counted to the
//!   millisecond; a day's row holds the part of that time that falls on it (and the last
//!   day's ends at the end clock). Bed-days are given to the millionth of a day. The cost
//!   avoided is the exact time times the rate per bed-day, rounded to the cent.
//! - *ATD cost*, only with an ATD rate (`--atd-rate`; there is no default): the same days
//!   (the moved person is on ATD throughout) times that rate, rounded to the cent; the
//!   *net saving* is the cost avoided minus the ATD cost. Without an ATD rate both are
//!   absent (`null`), and the renderings say the ATD cost is not counted.
//! - *Removal not foreseeable*: the latest `ice.removal.status` of the person says
//!   `foreseeable: false`. Each day's row counts, at the end of the day (the last day: at
//!   the end clock), the detained people whose removal is not foreseeable, and of them those
//!   detained more than 180 days (detention began more than 180 × 24 hours before). R6.2
//!   moves such a person when 180 days have passed, so under the rules the second count is
//!   zero; anything else there is someone held past R6.2.
//! - *The review rows* run from the first day of the occupancy rows or the first day with
//!   a placement decision, whichever is earlier, to the day of the end clock; before the
//!   first placement every review figure is zero.
//!
//! Memory is one small entry per day, one counter per kind of placement, and for the
//! reviews one entry per person ICE detains, per person on ATD after a move and per person
//! whose removal is not foreseeable; each decision costs O(1) (hash lookups), each day
//! closed O(log n) per person who passes 180 days that day. Nothing is scanned per day.
//!
//! The CSV is four tables separated by one blank line: first the daily table,
//! `date,funded_beds,occupied_beds,over_capacity,cost_usd`, one row per day; then
//! `placement,basis,monitoring,count`, one row per kind of placement (`monitoring` empty for
//! `detain`); then the reviews by day, `date,capacity_review,prolonged_detention,
//! humanitarian,humanitarian_at_placement,on_atd_after_move,bed_days_avoided,
//! cost_avoided_usd,removal_not_foreseeable,removal_not_foreseeable_over_180_days`; then
//! `figure,value`, the reviews' totals (`not counted` for the ATD figures without an ATD
//! rate). Cost figures always have two decimals, bed-days six.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use chrono::{NaiveDate, TimeDelta};
use hashbrown::{HashMap, HashSet};
use serde::{Deserialize, Serialize};

use crate::answers::replay::Seen;
use crate::answers::report::{Format, csv_field, html};
use crate::edge::wire::format_time;
use handoff_core::engine::{Engine, Outcome};
use handoff_core::model::{
    Basis, Custodian, Decision, DecisionBody, Event, EventBody, Monitoring, Placement, Time,
};
use handoff_core::why::Why;

/// The default cost of one bed for one day, in USD: ICE's 2013 figure (domain.md).
pub const DEFAULT_RATE_USD: f64 = 122.0;

/// The name of this report in its JSON form (`"report": "ice_capacity"`).
pub(crate) const REPORT_NAME: &str = "ice_capacity";

/// How long detention may last with removal not foreseeable (R6.2): the line of the
/// `removal_not_foreseeable_over_180_days` count.
const PROLONGED: TimeDelta = TimeDelta::days(180);

/// Milliseconds in a day of 24 hours.
const DAY_MS: u64 = 86_400_000;

/// The accumulator: feed it every `Seen` of a replay, then `finish`.
#[derive(Debug, Clone)]
pub struct Capacity {
    costs: Costs,
    /// End-of-day `(date, funded, occupied)` for every day from the first with a known
    /// capacity; the last entry is the current day and changes while events fall on it.
    days: Vec<(NaiveDate, u64, u64)>,
    /// Placements by kind, indexed by [`slot`].
    placements: Box<[u64; SLOTS]>,
    reviews: ReviewTracker,
}

/// One slot per (placement, basis, monitoring or none): every kind the wire can carry.
const SLOTS: usize = Placement::ALL.len() * Basis::ALL.len() * (Monitoring::ALL.len() + 1);

/// The slot of a kind of placement. The enums' `ALL` list their variants in declaration
/// order, so `as usize` is the position in `ALL`.
fn slot(placement: Placement, basis: Basis, monitoring: Option<Monitoring>) -> usize {
    let m = monitoring.map_or(0, |m| m as usize + 1);
    (placement as usize * Basis::ALL.len() + basis as usize) * (Monitoring::ALL.len() + 1) + m
}

/// The kind of placement in a slot (the inverse of [`slot`]).
fn kind(slot: usize) -> (Placement, Basis, Option<Monitoring>) {
    let m = slot % (Monitoring::ALL.len() + 1);
    let rest = slot / (Monitoring::ALL.len() + 1);
    let monitoring = m.checked_sub(1).map(|i| Monitoring::ALL[i]);
    (
        Placement::ALL[rest / Basis::ALL.len()],
        Basis::ALL[rest % Basis::ALL.len()],
        monitoring,
    )
}

/// The kinds of placement always listed, in the report's order: those R4.2 decides (and
/// `atd`/`capacity`/`office_checkin`, listed since the first version of the report), then
/// those R6 decides (R6.1 and R6.2: ankle monitor for charged or convicted, telephonic for
/// none; R6.3: office check-in). Any other kind seen follows them.
const LISTED: [(Placement, Basis, Option<Monitoring>); 10] = [
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
    (
        Placement::Atd,
        Basis::CapacityReview,
        Some(Monitoring::AnkleMonitor),
    ),
    (
        Placement::Atd,
        Basis::CapacityReview,
        Some(Monitoring::Telephonic),
    ),
    (
        Placement::Atd,
        Basis::ProlongedDetention,
        Some(Monitoring::AnkleMonitor),
    ),
    (
        Placement::Atd,
        Basis::ProlongedDetention,
        Some(Monitoring::Telephonic),
    ),
    (
        Placement::Atd,
        Basis::Humanitarian,
        Some(Monitoring::OfficeCheckin),
    ),
];

/// Rounds an amount in USD to the cent.
fn cents(usd: f64) -> f64 {
    (usd * 100.0).round() / 100.0
}

/// Milliseconds as days of 24 hours, to the millionth of a day (rounded half up), computed
/// in integers so that the same time always gives the same figure.
fn days_of(ms: u64) -> f64 {
    let micro = (u128::from(ms) * 1_000_000 + u128::from(DAY_MS / 2)) / u128::from(DAY_MS);
    micro as f64 / 1_000_000.0
}

/// What a bed-day and a day on ATD cost: the prices the reviews' figures are given at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Costs {
    /// USD for one bed for one day.
    pub rate: f64,
    /// USD for one day on ATD; `None`: not counted.
    pub atd_rate: Option<f64>,
}

/// Time on ATD after a move, priced: see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Priced {
    pub bed_days_avoided: f64,
    /// `bed_days_avoided × rate`, from the exact time, rounded to the cent.
    pub cost_avoided_usd: f64,
    /// The same days at the ATD rate, rounded to the cent; `None` without an ATD rate.
    pub atd_cost_usd: Option<f64>,
    /// `cost_avoided_usd − atd_cost_usd`; `None` without an ATD rate.
    pub net_saving_usd: Option<f64>,
}

impl Costs {
    /// Prices `ms` milliseconds of people on ATD after a move (a negative `ms`, for a
    /// difference between two worlds, gives negative figures).
    pub fn price(&self, ms: i128) -> Priced {
        let days = ms as f64 / DAY_MS as f64;
        let bed_days = days_of(ms.unsigned_abs().try_into().unwrap_or(u64::MAX));
        let cost = cents(days * self.rate);
        let atd = self.atd_rate.map(|r| cents(days * r));
        Priced {
            bed_days_avoided: if ms < 0 { -bed_days } else { bed_days },
            cost_avoided_usd: cost,
            atd_cost_usd: atd,
            net_saving_usd: atd.map(|a| cents(cost - a)),
        }
    }
}

impl Capacity {
    /// An empty report costing a bed-day at `rate_per_bed_day` USD, ATD cost not counted.
    /// The rate is used as given; the caller checks that it is finite and not negative.
    pub fn new(rate_per_bed_day: f64) -> Self {
        Capacity {
            costs: Costs {
                rate: rate_per_bed_day,
                atd_rate: None,
            },
            days: Vec::new(),
            placements: Box::new([0; SLOTS]),
            reviews: ReviewTracker::default(),
        }
    }

    /// Counts a day on Alternatives to Detention at `usd` (finite, not negative: checked by
    /// the caller), so that the report gives the ATD cost of the moves and the net saving.
    pub fn with_atd_rate(mut self, usd: f64) -> Self {
        self.costs.atd_rate = Some(usd);
        self
    }

    /// Takes in one thing a replay saw, with the engine as it stands after it.
    pub fn observe(&mut self, engine: &Engine, seen: &Seen<'_>) {
        match seen {
            Seen::Event { event, step, .. } => {
                if step.outcome == Outcome::Duplicate {
                    return;
                }
                self.count(&step.decisions);
                self.reviews
                    .step(Some(event), engine.clock(), &step.decisions);
            }
            Seen::End { decisions } => {
                self.count(decisions);
                self.reviews.step(None, engine.clock(), decisions);
            }
            Seen::Invalid { .. } => return,
        }
        self.record(engine);
    }

    /// The report. The engine's final state is recorded once more, so that a clock moved
    /// after the last `observe` (by `Engine::fire`) still extends the days.
    pub fn finish(mut self, engine: &Engine) -> CapacityReport {
        self.record(engine);
        let rate = self.costs.rate;
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
        let mut placements = Vec::new();
        let extra = (0..SLOTS)
            .filter(|&s| self.placements[s] > 0)
            .map(kind)
            .filter(|k| !LISTED.contains(k));
        for (placement, basis, monitoring) in LISTED.into_iter().chain(extra) {
            let count = self.placements[slot(placement, basis, monitoring)];
            match basis {
                Basis::PriorityDetention => by_basis.priority_detention += count,
                Basis::Detainer => by_basis.detainer += count,
                Basis::Capacity => by_basis.capacity += count,
                Basis::CapacityReview => by_basis.capacity_review += count,
                Basis::ProlongedDetention => by_basis.prolonged_detention += count,
                Basis::Humanitarian => by_basis.humanitarian += count,
                _ => by_basis.other += count,
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

        let end = engine.clock();
        let reviews = self.reviews.finish(end);
        let reviews = Reviews::new(&reviews, days.first().map(|d| d.date), end, self.costs);

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
            reviews,
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
                self.placements[slot(*placement, *basis, *monitoring)] += 1;
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

/// The midnight (UTC) that ends `date`.
fn end_of(date: NaiveDate) -> Time {
    date.succ_opt()
        .unwrap_or(NaiveDate::MAX)
        .and_time(chrono::NaiveTime::MIN)
        .and_utc()
}

/// A detained person, as the reviews' account keeps them.
#[derive(Debug, Clone, Copy)]
struct Detention {
    since: Time,
    stage: Stage,
}

/// Where a detained person stands towards R6.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Removal foreseeable, or no removal status.
    Expected,
    /// Removal not foreseeable; not yet counted as detained more than 180 days.
    NotForeseeable,
    /// Removal not foreseeable, detained more than 180 days at a day's end.
    Over,
}

/// The R6 moves of one run, in total. All counts, so two runs compare exactly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReviewTotals {
    /// Moves out of detention to ATD, by basis.
    pub capacity_review: u64,
    pub prolonged_detention: u64,
    pub humanitarian: u64,
    /// R6.3 placing a person in ATD instead of R4.2 (never detained: no bed freed).
    pub humanitarian_at_placement: u64,
    /// Milliseconds on ATD after a move, summed over people (see the module docs).
    pub avoided_ms: u64,
    /// Milliseconds in detention, summed over the people the run detained (from their
    /// `detain` placement until detention ends or the end clock): the bed time the run's
    /// own people used, whoever was in the beds before (a capacity report's
    /// `occupied_beds`) left out.
    pub detained_ms: u64,
}

impl ReviewTotals {
    /// Every move to ATD out of detention.
    pub fn moves(&self) -> u64 {
        self.capacity_review + self.prolonged_detention + self.humanitarian
    }
}

/// One day of the reviews' account, as it is kept.
#[derive(Debug, Clone, Copy)]
struct DayAcc {
    date: NaiveDate,
    /// Moves by basis: capacity_review, prolonged_detention, humanitarian.
    moves: [u64; 3],
    at_placement: u64,
    avoided_ms: u64,
    /// At the end of the day.
    on_atd: u64,
    not_foreseeable: u64,
    over: u64,
}

impl DayAcc {
    fn new(date: NaiveDate) -> Self {
        DayAcc {
            date,
            moves: [0; 3],
            at_placement: 0,
            avoided_ms: 0,
            on_atd: 0,
            not_foreseeable: 0,
            over: 0,
        }
    }
}

/// The account of ICE's detention reviews (R6) of one run, kept from its decisions and
/// events as they come, in time order: see the module documentation for what is counted
/// and how. `Capacity` keeps one; a what-if `diff` keeps one per world.
#[derive(Debug, Clone, Default)]
pub struct ReviewTracker {
    /// The people ICE detains, by id.
    detained: HashMap<String, Detention>,
    /// The people whose latest removal status says not foreseeable (detained or not).
    not_foreseeable: HashSet<String>,
    /// For the detained people whose removal is not foreseeable and who are not counted
    /// over 180 days yet: the moment they pass 180 days, and their id.
    crossing: BTreeSet<(Time, String)>,
    /// The people on ATD after a move, still in ICE's custody.
    on_atd: HashSet<String>,
    /// Running counts: detained with removal not foreseeable, and of them `Stage::Over`.
    not_foreseeable_detained: u64,
    over: u64,
    /// The time the account has reached (never moves backwards).
    cursor: Option<Time>,
    /// From the first placement on, one entry per day; the last is the open day.
    days: Vec<DayAcc>,
    totals: ReviewTotals,
}

impl ReviewTracker {
    /// Takes in one step: the event the engine processed (`None` for timers fired at the
    /// end), the engine's clock after it, and the step's decisions in order. The event's
    /// own effect comes after the timers it fired and before its own decisions (those
    /// whose `caused_by` is its id). Skip duplicates: they change nothing.
    pub fn step(&mut self, event: Option<&Event>, clock: Option<Time>, decisions: &[Decision]) {
        let mut event = event;
        for d in decisions {
            if let Some(e) = event
                && d.caused_by == e.id
            {
                self.event(e, clock.unwrap_or(d.time));
                event = None;
            }
            self.decision(d);
        }
        if let Some(e) = event {
            self.event(e, clock.unwrap_or_else(|| e.clock_time()));
        }
    }

    /// The totals so far.
    pub fn totals(&self) -> ReviewTotals {
        self.totals
    }

    fn event(&mut self, event: &Event, at: Time) {
        let EventBody::RemovalStatus {
            person_id,
            foreseeable,
            ..
        } = &event.body
        else {
            return;
        };
        self.advance(at);
        if *foreseeable {
            self.not_foreseeable.remove(person_id.as_str());
        } else {
            self.not_foreseeable.insert(person_id.clone());
        }
        let Some(d) = self.detained.get_mut(person_id.as_str()) else {
            return;
        };
        match (d.stage, *foreseeable) {
            (Stage::Expected, false) => {
                d.stage = Stage::NotForeseeable;
                self.crossing
                    .insert((d.since + PROLONGED, person_id.clone()));
                self.not_foreseeable_detained += 1;
            }
            (Stage::NotForeseeable | Stage::Over, true) => {
                let d = *d;
                self.forget(person_id, d);
                if let Some(e) = self.detained.get_mut(person_id.as_str()) {
                    e.stage = Stage::Expected;
                }
            }
            _ => {}
        }
    }

    fn decision(&mut self, d: &Decision) {
        self.advance(d.time);
        let person = d.person_id.as_str();
        match &d.body {
            DecisionBody::Placement {
                placement: Placement::Detain,
                ..
            } => {
                self.start(d.time);
                // Back in a bed: an ATD spell after a move ends here.
                self.on_atd.remove(person);
                self.end_detention(person);
                let stage = if self.not_foreseeable.contains(person) {
                    self.crossing
                        .insert((d.time + PROLONGED, person.to_owned()));
                    self.not_foreseeable_detained += 1;
                    Stage::NotForeseeable
                } else {
                    Stage::Expected
                };
                self.detained.insert(
                    person.to_owned(),
                    Detention {
                        since: d.time,
                        stage,
                    },
                );
            }
            DecisionBody::Placement {
                placement: Placement::Atd,
                basis,
                ..
            } => {
                self.start(d.time);
                let column = match basis {
                    Basis::CapacityReview => 0,
                    Basis::ProlongedDetention => 1,
                    Basis::Humanitarian => 2,
                    // R4.2 at capacity: the person was never detained.
                    _ => return,
                };
                // R6.1 and R6.2 move only detained people; R6.3 also places people ICE never
                // detained (the decision's facts then carry no detention).
                let was_detained = self.end_detention(person);
                let moved = was_detained
                    || *basis != Basis::Humanitarian
                    || matches!(&d.why, Why::Review(r) if r.detained_since.is_some());
                let day = self.days.last_mut().expect("started above");
                if moved {
                    day.moves[column] += 1;
                    match column {
                        0 => self.totals.capacity_review += 1,
                        1 => self.totals.prolonged_detention += 1,
                        _ => self.totals.humanitarian += 1,
                    }
                    self.on_atd.insert(person.to_owned());
                } else {
                    day.at_placement += 1;
                    self.totals.humanitarian_at_placement += 1;
                }
            }
            DecisionBody::Transfer {
                from: Custodian::Ice,
                ..
            }
            | DecisionBody::Release {
                from: Custodian::Ice,
                ..
            } => {
                self.end_detention(person);
                self.on_atd.remove(person);
            }
            _ => {}
        }
    }

    /// Opens the first day at `t`, if no day is open yet.
    fn start(&mut self, t: Time) {
        if self.days.is_empty() {
            let t = self.cursor.map_or(t, |c| c.max(t));
            self.days.push(DayAcc::new(t.date_naive()));
            self.cursor = Some(t);
        }
    }

    /// Removes a detained person; `false` when they were not detained.
    fn end_detention(&mut self, person: &str) -> bool {
        match self.detained.remove(person) {
            Some(d) => {
                self.forget(person, d);
                true
            }
            None => false,
        }
    }

    /// Takes a detained person out of the not-foreseeable counts.
    fn forget(&mut self, person: &str, d: Detention) {
        match d.stage {
            Stage::Expected => {}
            Stage::NotForeseeable => {
                self.crossing
                    .remove(&(d.since + PROLONGED, person.to_owned()));
                self.not_foreseeable_detained -= 1;
            }
            Stage::Over => {
                self.not_foreseeable_detained -= 1;
                self.over -= 1;
            }
        }
    }

    /// Moves the account to `t`: the time on ATD accrues, and every day that ends before
    /// `t` is closed.
    fn advance(&mut self, t: Time) {
        let t = self.cursor.map_or(t, |c| c.max(t));
        let Some(mut cursor) = self.cursor.filter(|_| !self.days.is_empty()) else {
            self.cursor = Some(t);
            return;
        };
        while let Some(last) = self.days.last().map(|d| d.date)
            && last < t.date_naive()
        {
            let midnight = end_of(last);
            self.accrue(cursor, midnight);
            self.close(midnight);
            self.days.push(DayAcc::new(midnight.date_naive()));
            cursor = midnight;
        }
        self.accrue(cursor, t);
        self.cursor = Some(t);
    }

    /// Adds the time on ATD of everyone on it from `a` to `b` to the open day, and the time
    /// in detention of everyone detained to the total.
    fn accrue(&mut self, a: Time, b: Time) {
        let span = u64::try_from((b - a).num_milliseconds()).unwrap_or(0);
        let ms = span * self.on_atd.len() as u64;
        if let Some(day) = self.days.last_mut() {
            day.avoided_ms += ms;
        }
        self.totals.avoided_ms += ms;
        self.totals.detained_ms += span * self.detained.len() as u64;
    }

    /// Closes the open day at `instant`: who passed 180 days by then, and the counts.
    fn close(&mut self, instant: Time) {
        while let Some((crossed, _)) = self.crossing.first()
            && *crossed < instant
        {
            let (_, person) = self.crossing.pop_first().expect("just seen");
            if let Some(d) = self.detained.get_mut(person.as_str()) {
                d.stage = Stage::Over;
                self.over += 1;
            }
        }
        let (on_atd, not_foreseeable, over) = (
            self.on_atd.len() as u64,
            self.not_foreseeable_detained,
            self.over,
        );
        if let Some(day) = self.days.last_mut() {
            day.on_atd = on_atd;
            day.not_foreseeable = not_foreseeable;
            day.over = over;
        }
    }

    /// Ends the account at `end` (the end clock of its run) and gives its totals.
    pub fn finish_totals(self, end: Option<Time>) -> ReviewTotals {
        self.finish(end).1
    }

    /// Ends the account at `end` (the report's end clock) and gives its days and totals.
    fn finish(mut self, end: Option<Time>) -> (Vec<DayAcc>, ReviewTotals) {
        if let Some(end) = end {
            self.advance(end);
        }
        if let Some(at) = self.cursor.filter(|_| !self.days.is_empty()) {
            self.close(at);
        }
        (self.days, self.totals)
    }
}

/// ICE detention capacity over a log: see the module documentation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityReport {
    pub totals: Totals,
    /// One row per UTC day, from the first day a capacity was known to the last day.
    pub days: Vec<DayRow>,
    /// Placements by kind: the kinds R4 and R6 decide always, in ICD order; any other kind
    /// seen after them.
    pub placements: Vec<PlacementRow>,
    pub placements_by_basis: ByBasis,
    pub placements_by_placement: ByPlacement,
    pub atd_by_monitoring: ByMonitoring,
    /// ICE's detention reviews (R6).
    pub reviews: Reviews,
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

/// Placements by basis: the three R4.2 gives, the three R6 gives, and any other.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ByBasis {
    pub priority_detention: u64,
    pub detainer: u64,
    pub capacity: u64,
    pub capacity_review: u64,
    pub prolonged_detention: u64,
    pub humanitarian: u64,
    /// A basis no placement rule gives (zero unless the rules change).
    pub other: u64,
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

/// Moves to ATD out of detention, by basis.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewMoves {
    /// R6.1, the funding review.
    pub capacity_review: u64,
    /// R6.2, 180 days with removal not foreseeable.
    pub prolonged_detention: u64,
    /// R6.3, a humanitarian factor, of a detained person.
    pub humanitarian: u64,
}

/// ICE's detention reviews (R6) over the log: see the module documentation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reviews {
    /// The report's end clock: the time avoided bed-days are counted to.
    pub end: Option<Time>,
    pub moves: ReviewMoves,
    /// All moves to ATD out of detention.
    pub moves_total: u64,
    /// R6.3 placing a person in ATD instead of R4.2 detaining them: no bed freed.
    pub humanitarian_at_placement: u64,
    /// Days on ATD after a move, summed over the people moved (to the millionth).
    pub bed_days_avoided: f64,
    pub rate_usd_per_bed_day: f64,
    /// The exact time avoided × the rate, rounded to the cent.
    pub cost_avoided_usd: f64,
    /// `None`: ATD cost not counted (no ATD rate given).
    pub atd_rate_usd_per_day: Option<f64>,
    pub atd_cost_usd: Option<f64>,
    /// `cost_avoided_usd − atd_cost_usd`.
    pub net_saving_usd: Option<f64>,
    /// The largest end-of-day count of people detained more than 180 days with removal not
    /// foreseeable (zero when R6.2 did its work), and the first day it was reached.
    pub peak_over_180_days: u64,
    pub peak_over_180_days_date: Option<NaiveDate>,
    /// One row per UTC day: see the module documentation for the span.
    pub days: Vec<ReviewDay>,
}

/// One UTC day of the reviews.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewDay {
    pub date: NaiveDate,
    /// Moves out of detention decided that day, by basis.
    pub capacity_review: u64,
    pub prolonged_detention: u64,
    pub humanitarian: u64,
    pub humanitarian_at_placement: u64,
    /// People on ATD after a move at the end of the day.
    pub on_atd_after_move: u64,
    /// The part of the bed-days avoided that falls on the day, to the millionth.
    pub bed_days_avoided: f64,
    /// That part × the rate, rounded to the cent.
    pub cost_avoided_usd: f64,
    /// Detained with removal not foreseeable at the end of the day.
    pub removal_not_foreseeable: u64,
    /// Of them, detained more than 180 days.
    pub removal_not_foreseeable_over_180_days: u64,
}

impl Reviews {
    /// The reviews' figures from the account, with rows from `first_occupancy_day` (the
    /// first occupancy row, if earlier than the account's first day) to the end.
    fn new(
        (days, totals): &(Vec<DayAcc>, ReviewTotals),
        first_occupancy_day: Option<NaiveDate>,
        end: Option<Time>,
        costs: Costs,
    ) -> Reviews {
        let mut rows: Vec<ReviewDay> = Vec::with_capacity(days.len());
        let first = match (first_occupancy_day, days.first().map(|d| d.date)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let last = end.map(|e| e.date_naive());
        if let (Some(first), Some(last)) = (first, last) {
            let mut acc = days.iter().peekable();
            let mut date = first;
            while date <= last {
                let d = match acc.peek() {
                    Some(d) if d.date == date => *acc.next().expect("peeked"),
                    _ => DayAcc::new(date),
                };
                rows.push(ReviewDay {
                    date,
                    capacity_review: d.moves[0],
                    prolonged_detention: d.moves[1],
                    humanitarian: d.moves[2],
                    humanitarian_at_placement: d.at_placement,
                    on_atd_after_move: d.on_atd,
                    bed_days_avoided: days_of(d.avoided_ms),
                    cost_avoided_usd: costs.price(i128::from(d.avoided_ms)).cost_avoided_usd,
                    removal_not_foreseeable: d.not_foreseeable,
                    removal_not_foreseeable_over_180_days: d.over,
                });
                let Some(next) = date.succ_opt() else { break };
                date = next;
            }
        }
        let peak = rows.iter().fold(None::<&ReviewDay>, |best, d| match best {
            Some(b)
                if b.removal_not_foreseeable_over_180_days
                    >= d.removal_not_foreseeable_over_180_days =>
            {
                Some(b)
            }
            _ => Some(d),
        });
        let priced = costs.price(i128::from(totals.avoided_ms));
        Reviews {
            end,
            moves: ReviewMoves {
                capacity_review: totals.capacity_review,
                prolonged_detention: totals.prolonged_detention,
                humanitarian: totals.humanitarian,
            },
            moves_total: totals.moves(),
            humanitarian_at_placement: totals.humanitarian_at_placement,
            bed_days_avoided: priced.bed_days_avoided,
            rate_usd_per_bed_day: costs.rate,
            cost_avoided_usd: priced.cost_avoided_usd,
            atd_rate_usd_per_day: costs.atd_rate,
            atd_cost_usd: priced.atd_cost_usd,
            net_saving_usd: priced.net_saving_usd,
            peak_over_180_days: peak.map_or(0, |d| d.removal_not_foreseeable_over_180_days),
            peak_over_180_days_date: peak
                .filter(|d| d.removal_not_foreseeable_over_180_days > 0)
                .map(|d| d.date),
            days: rows,
        }
    }
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
pub(crate) fn grouped(n: u64) -> String {
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
pub(crate) fn usd(amount: f64) -> String {
    if !amount.is_finite() {
        return format!("${amount}");
    }
    let fixed = format!("{:.2}", amount.abs());
    let (whole, frac) = fixed.split_once('.').unwrap_or((&fixed, "00"));
    let whole = whole
        .parse::<u64>()
        .map_or_else(|_| whole.to_owned(), grouped);
    let sign = if amount < 0.0 && fixed != "0.00" {
        "-"
    } else {
        ""
    };
    format!("{sign}${whole}.{frac}")
}

/// Bed-days for display: two decimals, thousands separators (`1,234.50`).
pub(crate) fn fmt_days(days: f64) -> String {
    let money = usd(days);
    money.replacen('$', "", 1)
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
        out.push_str(
            "\ndate,capacity_review,prolonged_detention,humanitarian,humanitarian_at_placement,\
on_atd_after_move,bed_days_avoided,cost_avoided_usd,removal_not_foreseeable,\
removal_not_foreseeable_over_180_days\n",
        );
        for d in &self.reviews.days {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{:.6},{:.2},{},{}",
                d.date,
                d.capacity_review,
                d.prolonged_detention,
                d.humanitarian,
                d.humanitarian_at_placement,
                d.on_atd_after_move,
                d.bed_days_avoided,
                d.cost_avoided_usd,
                d.removal_not_foreseeable,
                d.removal_not_foreseeable_over_180_days
            );
        }
        let r = &self.reviews;
        let money =
            |v: Option<f64>| v.map_or_else(|| "not counted".to_owned(), |v| format!("{v:.2}"));
        out.push_str("\nfigure,value\n");
        let _ = write!(
            out,
            "end,{}\nmoves_capacity_review,{}\nmoves_prolonged_detention,{}\n\
moves_humanitarian,{}\nmoves_total,{}\nhumanitarian_at_placement,{}\n\
bed_days_avoided,{:.6}\nrate_usd_per_bed_day,{:.2}\ncost_avoided_usd,{:.2}\n\
atd_rate_usd_per_day,{}\natd_cost_usd,{}\nnet_saving_usd,{}\npeak_over_180_days,{}\n",
            r.end.map_or_else(String::new, |t| format_time(&t)),
            r.moves.capacity_review,
            r.moves.prolonged_detention,
            r.moves.humanitarian,
            r.moves_total,
            r.humanitarian_at_placement,
            r.bed_days_avoided,
            r.rate_usd_per_bed_day,
            r.cost_avoided_usd,
            money(r.atd_rate_usd_per_day),
            money(r.atd_cost_usd),
            money(r.net_saving_usd),
            r.peak_over_180_days,
        );
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

    /// The reviews' headline figures as (label, value) pairs, for HTML and Markdown.
    fn review_headline(&self) -> Vec<(&'static str, String)> {
        let r = &self.reviews;
        let mut out = vec![
            ("moved to ATD (R6)", grouped(r.moves_total)),
            ("bed-days avoided", fmt_days(r.bed_days_avoided)),
            ("bed cost avoided", usd(r.cost_avoided_usd)),
        ];
        match (r.atd_rate_usd_per_day, r.atd_cost_usd, r.net_saving_usd) {
            (Some(rate), Some(cost), Some(net)) => {
                out.push(("ATD cost", format!("{} at {}/day", usd(cost), usd(rate))));
                out.push(("net saving", usd(net)));
            }
            _ => out.push(("ATD cost", "not counted".to_owned())),
        }
        let peak = match r.peak_over_180_days_date {
            Some(d) => format!("{} on {d}", grouped(r.peak_over_180_days)),
            None => "0".to_owned(),
        };
        out.push(("most detained >180 days, removal not foreseeable", peak));
        out
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

    /// The reviews by basis: (basis, rule, moves).
    fn moves_table(&self) -> [(&'static str, &'static str, u64); 3] {
        let m = &self.reviews.moves;
        [
            ("capacity_review", "R6.1", m.capacity_review),
            ("prolonged_detention", "R6.2", m.prolonged_detention),
            ("humanitarian", "R6.3", m.humanitarian),
        ]
    }

    /// The reviews by day as table cells, in the order of [`REVIEW_HEADERS`].
    fn review_rows(&self) -> Vec<Vec<String>> {
        self.reviews
            .days
            .iter()
            .map(|d| {
                vec![
                    d.date.to_string(),
                    d.capacity_review.to_string(),
                    d.prolonged_detention.to_string(),
                    d.humanitarian.to_string(),
                    d.humanitarian_at_placement.to_string(),
                    d.on_atd_after_move.to_string(),
                    format!("{:.2}", d.bed_days_avoided),
                    format!("{:.2}", d.cost_avoided_usd),
                    d.removal_not_foreseeable.to_string(),
                    d.removal_not_foreseeable_over_180_days.to_string(),
                ]
            })
            .collect()
    }

    fn scope_note(&self) -> String {
        format!(
            "UTC days from {} to {}, as the engine stood at the end of each day: funded beds \
from the latest ice.capacity.updated, occupied beds counting every detain placement since \
(R4) and every detained person who left detention since (out of ICE's custody, or moved to \
ATD by R6). A day's cost is its occupied beds times {} per bed-day. Days without events \
carry the previous day's figures forward.",
            date_or_dash(self.totals.first_date),
            date_or_dash(self.totals.last_date),
            usd(self.totals.rate_usd_per_bed_day),
        )
    }

    /// How the reviews are counted, in one paragraph.
    fn review_note(&self) -> String {
        let r = &self.reviews;
        let end = r.end.map_or_else(|| "-".to_owned(), |t| format_time(&t));
        let atd = match r.atd_rate_usd_per_day {
            Some(rate) => format!(
                "The same days on ATD cost {} a day; the net saving is the bed cost avoided \
minus that.",
                usd(rate)
            ),
            None => "ATD cost not counted (no --atd-rate given).".to_owned(),
        };
        format!(
            "Moves to Alternatives to Detention by ICE's detention reviews (R6), each on the \
day of its decision: R6.1 capacity_review, R6.2 prolonged_detention and R6.3 humanitarian \
move a detained person out of a bed; R6.3 placing a person in ATD instead of detaining them \
(at placement) frees none. Bed-days avoided: for each person moved, the time from the move \
until they leave ICE's custody, are detained again, or the report's end clock ({end}), in \
fractional days of 24 hours; the bed cost avoided is that times {} per bed-day. {atd} \
Removal not foreseeable: detained people whose latest ice.removal.status says not \
foreseeable, at the end of each day (the last day at the end clock), and of them those \
detained more than 180 days, whom R6.2 should have moved.",
            usd(r.rate_usd_per_bed_day),
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
            // The days of funding reviews (R6.1 moves), at their place on the x axis.
            let first = self.days[0].date;
            let markers: Vec<html::Marker> = self
                .reviews
                .days
                .iter()
                .filter(|d| d.capacity_review > 0 && d.date >= first)
                .filter_map(|d| {
                    let i = usize::try_from((d.date - first).num_days()).ok()?;
                    (i < labels.len()).then(|| html::Marker {
                        index: i,
                        title: format!(
                            "{}: funding review, {} moved to ATD (R6.1)",
                            d.date, d.capacity_review
                        ),
                    })
                })
                .collect();
            body.push_str(&html::line_chart(
                "Funded and occupied beds by day",
                &labels,
                &series,
                Some(("funding review (R6.1)", &markers)),
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

        body.push_str("<h2>Detention reviews: moves to Alternatives to Detention (R6)</h2>\n");
        let _ = writeln!(
            body,
            "<p class=\"note\">{}</p>",
            html::escape(&self.review_note())
        );
        body.push_str(&html::totals(&self.review_headline()));
        let mut rows: Vec<Vec<String>> = self
            .moves_table()
            .iter()
            .map(|(basis, rule, n)| vec![(*basis).to_owned(), (*rule).to_owned(), n.to_string()])
            .collect();
        rows.push(vec![
            "humanitarian (at placement, no bed freed)".to_owned(),
            "R6.3".to_owned(),
            self.reviews.humanitarian_at_placement.to_string(),
        ]);
        body.push_str(&html::table(&["basis", "rule", "moves"], &rows));

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

        body.push_str("<h2>Detention reviews by day</h2>\n");
        body.push_str(&html::table(&REVIEW_HEADERS, &self.review_rows()));
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
        out.push_str("\n## Detention reviews: moves to Alternatives to Detention (R6)\n\n");
        let _ = writeln!(out, "{}\n", self.review_note());
        for (label, value) in self.review_headline() {
            let _ = writeln!(out, "- {label}: {value}");
        }
        out.push_str("\n| basis | rule | moves |\n|---|---|---:|\n");
        for (basis, rule, n) in self.moves_table() {
            let _ = writeln!(out, "| {basis} | {rule} | {n} |");
        }
        let _ = writeln!(
            out,
            "| humanitarian (at placement, no bed freed) | R6.3 | {} |",
            self.reviews.humanitarian_at_placement
        );
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
        out.push_str("\n## Detention reviews by day\n\n|");
        for h in REVIEW_HEADERS {
            let _ = write!(out, " {h} |");
        }
        out.push_str("\n|---|");
        out.push_str(&"---:|".repeat(REVIEW_HEADERS.len() - 1));
        out.push('\n');
        for row in self.review_rows() {
            out.push('|');
            for cell in row {
                let _ = write!(out, " {cell} |");
            }
            out.push('\n');
        }
        out
    }
}

/// The headers of the reviews-by-day table in HTML and Markdown.
const REVIEW_HEADERS: [&str; 10] = [
    "date",
    "capacity_review",
    "prolonged_detention",
    "humanitarian",
    "humanitarian at placement",
    "on ATD after a move",
    "bed-days avoided",
    "avoided (USD)",
    "removal not foreseeable",
    "of whom > 180 days",
];

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
        assert_eq!(usd(-1234.5), "-$1,234.50");
        assert_eq!(usd(-0.001), "$0.00");
        assert_eq!(fmt_days(1234.5), "1,234.50");
    }

    #[test]
    fn an_empty_log_gives_no_days_and_zero_placements() {
        let report = Capacity::new(DEFAULT_RATE_USD).finish(&Engine::new());
        assert!(report.days.is_empty());
        assert!(report.reviews.days.is_empty());
        assert_eq!(report.totals.days, 0);
        assert_eq!(report.totals.peak_date, None);
        assert_eq!(report.placements.len(), LISTED.len());
        assert!(report.placements.iter().all(|p| p.count == 0));
        assert_eq!(report.reviews.bed_days_avoided, 0.0);
        assert_eq!(report.reviews.atd_cost_usd, None);
        for format in [Format::Json, Format::Csv, Format::Md, Format::Html] {
            assert!(report.render(format).is_ok());
        }
    }

    #[test]
    fn every_kind_has_its_own_slot() {
        let mut seen = [false; SLOTS];
        for p in Placement::ALL {
            for b in Basis::ALL {
                for m in std::iter::once(None).chain(Monitoring::ALL.map(Some)) {
                    let s = slot(p, b, m);
                    assert!(!seen[s], "{p} {b} {m:?}");
                    seen[s] = true;
                    assert_eq!(kind(s), (p, b, m));
                }
            }
        }
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn days_are_counted_to_the_millionth() {
        assert_eq!(days_of(0), 0.0);
        assert_eq!(days_of(DAY_MS), 1.0);
        assert_eq!(days_of(DAY_MS * 3 / 2), 1.5);
        // One hour: 0.041666… days.
        assert_eq!(days_of(3_600_000), 0.041667);
        let costs = Costs {
            rate: 122.0,
            atd_rate: Some(10.5),
        };
        let p = costs.price(i128::from(DAY_MS * 3 / 2));
        assert_eq!(
            p,
            Priced {
                bed_days_avoided: 1.5,
                cost_avoided_usd: 183.0,
                atd_cost_usd: Some(15.75),
                net_saving_usd: Some(167.25),
            }
        );
        assert_eq!(costs.price(-i128::from(DAY_MS)).cost_avoided_usd, -122.0);
    }
}
