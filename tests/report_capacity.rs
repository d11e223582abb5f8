//! The ICE capacity report (`handoff report capacity`): small logs whose every figure is
//! known by construction, the sample week, and the renderings.

mod support;

use std::path::PathBuf;

use handoff::answers::replay;
use handoff::answers::report::Format;
use handoff::answers::report::capacity::{
    ByBasis, ByMonitoring, ByPlacement, Capacity, CapacityReport, PlacementRow, ReviewMoves,
};
use handoff_core::engine::{Engine, Outcome, Step};
use handoff_core::model::{Decision, DecisionBody, Event, EventBody, Placement, Rule};
use handoff_core::why::Why;
use handoff_gen::{GenConfig, generate};
use serde_json::Value;
use support::{
    Log, assumed, capacity, detainer, factor, local, local_release, policy, removal, writ,
};

const COUNTY: &str = "tx-travis-county";

/// Replays `log` (advancing to `until` at the end, if given) into a capacity report at
/// `rate` USD per bed-day.
fn report(log: &str, until: Option<&str>, rate: f64) -> CapacityReport {
    report_with(log, until, Capacity::new(rate))
}

/// Replays `log` (advancing to `until` at the end, if given) into `r`.
fn report_with(log: &str, until: Option<&str>, mut r: Capacity) -> CapacityReport {
    let until = until.map(|t| handoff::edge::envelope::parse_time(t).expect("test time"));
    let mut engine = Engine::new();
    replay::run(&mut engine, log.as_bytes(), until, |e, seen| {
        r.observe(e, &seen);
        Ok(())
    })
    .expect("reading from memory cannot fail");
    r.finish(&engine)
}

/// The daily rows as `(date, funded, occupied, over_capacity, cost_usd)`.
fn days(r: &CapacityReport) -> Vec<(String, u64, u64, bool, f64)> {
    r.days
        .iter()
        .map(|d| {
            (
                d.date.to_string(),
                d.funded_beds,
                d.occupied_beds,
                d.over_capacity,
                d.cost_usd,
            )
        })
        .collect()
}

/// The placement rows as `(placement, basis, monitoring, count)`.
fn placements(r: &CapacityReport) -> Vec<(&str, &str, &str, u64)> {
    r.placements
        .iter()
        .map(|p: &PlacementRow| {
            (
                p.placement.as_str(),
                p.basis.as_str(),
                p.monitoring.as_deref().unwrap_or(""),
                p.count,
            )
        })
        .collect()
}

/// A reviews row: `(date, [capacity_review, prolonged_detention, humanitarian,
/// humanitarian_at_placement], on_atd_after_move, bed_days_avoided, cost_avoided_usd,
/// [removal_not_foreseeable, of them over 180 days])`.
type Rd = (String, [u64; 4], u64, f64, f64, [u64; 2]);

fn rd(date: &str, moves: [u64; 4], on_atd: u64, bed_days: f64, usd: f64, stuck: [u64; 2]) -> Rd {
    (date.to_owned(), moves, on_atd, bed_days, usd, stuck)
}

/// The reviews' daily rows as [`Rd`].
fn review_days(r: &CapacityReport) -> Vec<Rd> {
    r.reviews
        .days
        .iter()
        .map(|d| {
            (
                d.date.to_string(),
                [
                    d.capacity_review,
                    d.prolonged_detention,
                    d.humanitarian,
                    d.humanitarian_at_placement,
                ],
                d.on_atd_after_move,
                d.bed_days_avoided,
                d.cost_avoided_usd,
                [
                    d.removal_not_foreseeable,
                    d.removal_not_foreseeable_over_180_days,
                ],
            )
        })
        .collect()
}

fn row(
    date: &str,
    funded: u64,
    occupied: u64,
    over: bool,
    cost: f64,
) -> (String, u64, u64, bool, f64) {
    (date.to_owned(), funded, occupied, over, cost)
}

/// Test 1's log: 10 funded / 8 occupied on 1 March; three charged pickups on 2 March
/// (detain, detain, then ATD at capacity); nothing on 3 March; on 4 March a capacity
/// update to 12 / 5 and a convicted pickup.
fn four_days() -> Log {
    Log::new()
        .at("2017-03-01T06:00:00Z", capacity(10, 8))
        .at(
            "2017-03-01T07:00:00Z",
            detainer("D-1", "P-1001", local(COUNTY), "charged"),
        )
        .at(
            "2017-03-01T07:10:00Z",
            detainer("D-2", "P-1002", local(COUNTY), "charged"),
        )
        .at(
            "2017-03-01T07:20:00Z",
            detainer("D-3", "P-1003", local(COUNTY), "charged"),
        )
        .at(
            "2017-03-01T07:30:00Z",
            detainer("D-4", "P-1004", local(COUNTY), "convicted"),
        )
        .at("2017-03-02T09:00:00Z", assumed("P-1001", local(COUNTY)))
        .at("2017-03-02T10:00:00Z", assumed("P-1002", local(COUNTY)))
        .at("2017-03-02T11:00:00Z", assumed("P-1003", local(COUNTY)))
        .at("2017-03-04T08:00:00Z", capacity(12, 5))
        .at("2017-03-04T15:00:00Z", assumed("P-1004", local(COUNTY)))
}

#[test]
fn occupancy_cost_and_placements_over_four_days() {
    let r = report(&four_days().text(), None, 122.0);
    assert_eq!(
        days(&r),
        vec![
            // 8 × 122.
            row("2017-03-01", 10, 8, false, 976.0),
            // Two detains fill the beds; the third pickup goes to ATD and is not a bed.
            row("2017-03-02", 10, 10, true, 1220.0),
            // No events: carried forward.
            row("2017-03-03", 10, 10, true, 1220.0),
            // Reset to 5 by the update, then one convicted detain.
            row("2017-03-04", 12, 6, false, 732.0),
        ]
    );
    let t = &r.totals;
    assert_eq!(t.first_date.unwrap().to_string(), "2017-03-01");
    assert_eq!(t.last_date.unwrap().to_string(), "2017-03-04");
    assert_eq!(t.days, 4);
    assert_eq!(t.bed_days, 8 + 10 + 10 + 6);
    assert_eq!(t.cost_usd, 34.0 * 122.0);
    assert_eq!(t.cost_usd, 4148.0);
    assert_eq!(t.rate_usd_per_bed_day, 122.0);
    // Reached on 2 March first; 3 March only carries it.
    assert_eq!(t.peak_occupied_beds, Some(10));
    assert_eq!(t.peak_date.unwrap().to_string(), "2017-03-02");
    assert_eq!(t.days_over_capacity, 2);
    assert_eq!(t.placements, 4);

    assert_eq!(
        placements(&r),
        vec![
            ("detain", "priority_detention", "", 1),
            ("detain", "detainer", "", 2),
            ("atd", "capacity", "ankle_monitor", 1),
            ("atd", "capacity", "telephonic", 0),
            ("atd", "capacity", "office_checkin", 0),
            ("atd", "capacity_review", "ankle_monitor", 0),
            ("atd", "capacity_review", "telephonic", 0),
            ("atd", "prolonged_detention", "ankle_monitor", 0),
            ("atd", "prolonged_detention", "telephonic", 0),
            ("atd", "humanitarian", "office_checkin", 0),
        ]
    );
    assert_eq!(
        r.placements_by_basis,
        ByBasis {
            priority_detention: 1,
            detainer: 2,
            capacity: 1,
            ..ByBasis::default()
        }
    );
    assert_eq!(r.placements_by_placement, ByPlacement { detain: 3, atd: 1 });
    assert_eq!(
        r.atd_by_monitoring,
        ByMonitoring {
            ankle_monitor: 1,
            telephonic: 0,
            office_checkin: 0
        }
    );
}

#[test]
fn a_custom_rate_changes_only_the_costs() {
    let at_122 = report(&four_days().text(), None, 122.0);
    // 99.25 is exact in binary, so every product below is exact too.
    let r = report(&four_days().text(), None, 99.25);
    assert_eq!(
        days(&r),
        vec![
            row("2017-03-01", 10, 8, false, 794.0),
            row("2017-03-02", 10, 10, true, 992.5),
            row("2017-03-03", 10, 10, true, 992.5),
            row("2017-03-04", 12, 6, false, 595.5),
        ]
    );
    assert_eq!(r.totals.cost_usd, 3374.5);
    assert_eq!(r.totals.rate_usd_per_bed_day, 99.25);
    assert_eq!(r.totals.bed_days, at_122.totals.bed_days);
    assert_eq!(r.placements, at_122.placements);
    assert_eq!(r.totals.peak_date, at_122.totals.peak_date);
}

/// Test 2's log: a pickup on 1 May before any capacity is known; capacity 20 / 15 on
/// 2 May, with a redelivered copy of the pickup; a convicted pickup and a 48-hour hold
/// from noon on 3 May; a redelivered copy of the capacity update dated 6 May; and an
/// invalid line.
fn gaps_and_duplicates() -> Log {
    Log::new()
        .at(
            "2017-05-01T08:00:00Z",
            detainer("D-A", "P-2001", local(COUNTY), "charged"),
        )
        .at_with_id(
            "pickup-a",
            "2017-05-01T09:00:00Z",
            assumed("P-2001", local(COUNTY)),
        )
        .raw("not json")
        .at_with_id("cap-1", "2017-05-02T08:00:00Z", capacity(20, 15))
        .at_with_id(
            "pickup-a",
            "2017-05-02T09:00:00Z",
            assumed("P-2001", local(COUNTY)),
        )
        .at(
            "2017-05-03T08:00:00Z",
            detainer("D-B", "P-2002", local(COUNTY), "convicted"),
        )
        .at("2017-05-03T09:00:00Z", assumed("P-2002", local(COUNTY)))
        .at("2017-05-03T10:00:00Z", policy(COUNTY, true, false))
        .at(
            "2017-05-03T10:10:00Z",
            detainer("D-C", "P-2003", local(COUNTY), "charged"),
        )
        .at(
            "2017-05-03T10:20:00Z",
            local_release("P-2003", COUNTY, "2017-05-03T12:00:00Z"),
        )
        .at_with_id("cap-1", "2017-05-06T08:00:00Z", capacity(20, 15))
}

#[test]
fn days_without_capacity_are_not_rows_and_duplicates_never_count() {
    let r = report(&gaps_and_duplicates().text(), None, 122.0);
    // 1 May has no capacity; the copy of the update neither resets occupancy to 15 nor
    // moves the days on to 6 May.
    assert_eq!(
        days(&r),
        vec![
            row("2017-05-02", 20, 15, false, 1830.0),
            row("2017-05-03", 20, 16, false, 1952.0),
        ]
    );
    assert_eq!(r.totals.days, 2);
    assert_eq!(r.totals.bed_days, 31);
    assert_eq!(r.totals.cost_usd, 3782.0);
    assert_eq!(r.totals.peak_occupied_beds, Some(16));
    assert_eq!(r.totals.peak_date.unwrap().to_string(), "2017-05-03");
    assert_eq!(r.totals.days_over_capacity, 0);
    // The pickup before any capacity is a placement all the same (and not a bed); its
    // copy is nothing.
    assert_eq!(
        r.placements_by_basis,
        ByBasis {
            priority_detention: 1,
            detainer: 1,
            ..ByBasis::default()
        }
    );
    assert_eq!(r.placements_by_placement, ByPlacement { detain: 2, atd: 0 });
    assert_eq!(r.totals.placements, 2);
}

#[test]
fn timers_fired_at_the_end_extend_the_days_to_their_deadline() {
    // The hold from noon on 3 May lapses at noon on 5 May; advancing to 7 May fires it,
    // and the clock moves to the deadline, not to 7 May.
    let r = report(
        &gaps_and_duplicates().text(),
        Some("2017-05-07T00:00:00Z"),
        122.0,
    );
    assert_eq!(
        days(&r),
        vec![
            row("2017-05-02", 20, 15, false, 1830.0),
            row("2017-05-03", 20, 16, false, 1952.0),
            row("2017-05-04", 20, 16, false, 1952.0),
            row("2017-05-05", 20, 16, false, 1952.0),
        ]
    );
    assert_eq!(r.totals.days, 4);
    assert_eq!(r.totals.cost_usd, (15 + 16 * 3) as f64 * 122.0);
    assert_eq!(r.totals.peak_date.unwrap().to_string(), "2017-05-03");
    assert_eq!(r.totals.placements, 2);
}

fn manifest_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

#[test]
fn the_sample_week() {
    let log = std::fs::read_to_string(manifest_path("samples/week.jsonl")).unwrap();
    let r = report(&log, None, 122.0);
    // Capacity 41,500 / 41,498 from 28 January; P-170001 detained on 31 January
    // (convicted), P-170022 on 1 February (the last bed). On 2 February P-170001 leaves
    // under a writ (41,499), P-170011 takes the freed bed (41,500), P-170012 is detained
    // over capacity (convicted, 41,501), so the funding review moves P-170022 to ATD
    // (R6.1, 41,500), and P-170012 leaves under R2.2 (41,499). The update of 3 February
    // reports 41,502: the review moves P-170011, the one movable person left (41,501).
    assert_eq!(
        days(&r),
        vec![
            row("2017-01-28", 41_500, 41_498, false, 41_498.0 * 122.0),
            row("2017-01-29", 41_500, 41_498, false, 41_498.0 * 122.0),
            row("2017-01-30", 41_500, 41_498, false, 41_498.0 * 122.0),
            row("2017-01-31", 41_500, 41_499, false, 41_499.0 * 122.0),
            row("2017-02-01", 41_500, 41_500, true, 41_500.0 * 122.0),
            row("2017-02-02", 41_500, 41_499, false, 41_499.0 * 122.0),
            row("2017-02-03", 41_500, 41_501, true, 5_063_122.0),
        ]
    );
    assert_eq!(r.totals.bed_days, 290_493);
    assert_eq!(r.totals.cost_usd, 35_440_146.0);
    assert_eq!(r.totals.peak_occupied_beds, Some(41_501));
    assert_eq!(r.totals.peak_date.unwrap().to_string(), "2017-02-03");
    assert_eq!(r.totals.days_over_capacity, 2);
    assert_eq!(
        placements(&r),
        vec![
            ("detain", "priority_detention", "", 2),
            ("detain", "detainer", "", 2),
            ("atd", "capacity", "ankle_monitor", 1),
            ("atd", "capacity", "telephonic", 1),
            ("atd", "capacity", "office_checkin", 0),
            ("atd", "capacity_review", "ankle_monitor", 2),
            ("atd", "capacity_review", "telephonic", 0),
            ("atd", "prolonged_detention", "ankle_monitor", 0),
            ("atd", "prolonged_detention", "telephonic", 0),
            ("atd", "humanitarian", "office_checkin", 0),
        ]
    );
    assert_eq!(r.placements_by_placement, ByPlacement { detain: 4, atd: 4 });
    assert_eq!(
        r.atd_by_monitoring,
        ByMonitoring {
            ankle_monitor: 3,
            telephonic: 1,
            office_checkin: 0
        }
    );
    // P-170022 is on ATD from 02-02 09:45 to the end clock, 02-03 17:00 (the last event):
    // 14 h 15 min on 2 February and 17 h on 3 February; P-170011 moves at the end clock.
    // 31.25 h = 1.302083 days; × 122 = 158.854… → $158.85.
    let rv = &r.reviews;
    assert_eq!(
        rv.end.map(|t| handoff::edge::wire::format_time(&t)),
        Some("2017-02-03T17:00:00Z".to_owned())
    );
    assert_eq!(
        rv.moves,
        ReviewMoves {
            capacity_review: 2,
            ..ReviewMoves::default()
        }
    );
    assert_eq!(rv.bed_days_avoided, 1.302083);
    assert_eq!(rv.cost_avoided_usd, 158.85);
    assert_eq!(rv.atd_cost_usd, None);
    assert_eq!(
        review_days(&r)[5..],
        [
            rd("2017-02-02", [1, 0, 0, 0], 1, 0.59375, 72.44, [0, 0]),
            rd("2017-02-03", [1, 0, 0, 0], 2, 0.708333, 86.42, [0, 0]),
        ]
    );
    assert_eq!(r.reviews.days.len(), r.days.len());
}

#[test]
fn json_parses_back_to_the_report() {
    let r = report(&four_days().text(), None, 122.0);
    let json = r.render(Format::Json).unwrap();
    let value: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["report"], "ice_capacity");
    assert_eq!(value["days"][1]["date"], "2017-03-02");
    assert_eq!(value["days"][1]["occupied_beds"], 10);
    assert_eq!(value["days"][1]["over_capacity"], true);
    assert_eq!(value["totals"]["cost_usd"], 4148.0);
    assert_eq!(value["totals"]["peak_date"], "2017-03-02");
    assert_eq!(value["placements"][2]["monitoring"], "ankle_monitor");
    assert_eq!(value["placements"][0]["monitoring"], Value::Null);
    let back: CapacityReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back, r);
    let mut without_name = value.clone();
    without_name.as_object_mut().unwrap().remove("report");
    assert_eq!(without_name, serde_json::to_value(&r).unwrap());
}

#[test]
fn csv_is_the_daily_table_then_the_placements_then_the_reviews() {
    let r = report(&four_days().text(), None, 122.0);
    assert_eq!(
        r.render(Format::Csv).unwrap(),
        "date,funded_beds,occupied_beds,over_capacity,cost_usd\n\
2017-03-01,10,8,false,976.00\n\
2017-03-02,10,10,true,1220.00\n\
2017-03-03,10,10,true,1220.00\n\
2017-03-04,12,6,false,732.00\n\
\n\
placement,basis,monitoring,count\n\
detain,priority_detention,,1\n\
detain,detainer,,2\n\
atd,capacity,ankle_monitor,1\n\
atd,capacity,telephonic,0\n\
atd,capacity,office_checkin,0\n\
atd,capacity_review,ankle_monitor,0\n\
atd,capacity_review,telephonic,0\n\
atd,prolonged_detention,ankle_monitor,0\n\
atd,prolonged_detention,telephonic,0\n\
atd,humanitarian,office_checkin,0\n\
\n\
date,capacity_review,prolonged_detention,humanitarian,humanitarian_at_placement,\
on_atd_after_move,bed_days_avoided,cost_avoided_usd,removal_not_foreseeable,\
removal_not_foreseeable_over_180_days\n\
2017-03-01,0,0,0,0,0,0.000000,0.00,0,0\n\
2017-03-02,0,0,0,0,0,0.000000,0.00,0,0\n\
2017-03-03,0,0,0,0,0,0.000000,0.00,0,0\n\
2017-03-04,0,0,0,0,0,0.000000,0.00,0,0\n\
\n\
figure,value\n\
end,2017-03-04T15:00:00Z\n\
moves_capacity_review,0\n\
moves_prolonged_detention,0\n\
moves_humanitarian,0\n\
moves_total,0\n\
humanitarian_at_placement,0\n\
bed_days_avoided,0.000000\n\
rate_usd_per_bed_day,122.00\n\
cost_avoided_usd,0.00\n\
atd_rate_usd_per_day,not counted\n\
atd_cost_usd,not counted\n\
net_saving_usd,not counted\n\
peak_over_180_days,0\n"
    );
    let custom = report(&four_days().text(), None, 99.25);
    assert!(
        custom
            .render(Format::Csv)
            .unwrap()
            .contains("\n2017-03-01,10,8,false,794.00\n")
    );
}

#[test]
fn markdown_has_the_tables() {
    let r = report(&four_days().text(), None, 122.0);
    let md = r.render(Format::Md).unwrap();
    assert!(md.starts_with("# ICE detention capacity\n"));
    assert!(md.contains("- total cost: $4,148.00\n"));
    assert!(md.contains("| 2017-03-02 | 10 | 10 | yes | 1220.00 |\n"));
    assert!(md.contains("| capacity | 0 | 1 | 1 |\n"));
    assert!(md.contains("| capacity_review | 0 | 0 | 0 |\n"));
    assert!(md.contains("| ankle_monitor | 1 |\n"));
    assert!(md.contains("- ATD cost: not counted\n"));
    assert!(md.contains("| 2017-03-04 | 0 | 0 | 0 | 0 | 0 | 0.00 | 0.00 | 0 | 0 |\n"));
}

/// Checks that a page is one self-contained file: no scripts, nothing fetched.
fn assert_self_contained(html: &str) {
    assert!(!html.contains("<script"));
    assert!(!html.contains("https://"));
    assert!(!html.contains("<link"));
    assert!(!html.contains("@import"));
    // The SVG namespace is an identifier, not a fetch.
    assert_eq!(
        html.matches("http://").count(),
        html.matches("http://www.w3.org/2000/svg").count()
    );
}

#[test]
fn html_is_one_page_with_a_chart_and_tables() {
    let r = report(&four_days().text(), None, 122.0);
    let html = r.render(Format::Html).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_self_contained(&html);
    assert_eq!(html.matches("<svg").count(), 1);
    let svg = &html[html.find("<svg").unwrap()..html.find("</svg>").unwrap()];
    assert_eq!(svg.matches("<polyline").count(), 2);
    assert!(svg.contains(">funded beds<"));
    assert!(svg.contains(">occupied beds<"));
    assert!(svg.contains(">2017-03-01<"));
    // No funding review: no marker, and no legend for one.
    assert!(!svg.contains("funding review"));
    // Placements by basis, ATD by monitoring, the reviews by basis, the days, the reviews
    // by day.
    assert_eq!(html.matches("<table>").count(), 5);
    assert!(html.contains("<td>ankle_monitor</td><td class=\"n\">1</td>"));
    assert!(html.contains("<td>detainer</td><td class=\"n\">2</td><td class=\"n\">0</td>"));
    assert!(html.contains("<td>2017-03-02</td><td class=\"n\">10</td><td class=\"n\">10</td><td>yes</td><td class=\"n\">1220.00</td>"));
    assert!(html.contains("<b>$4,148.00</b>total cost"));
    assert!(html.contains("<b>10 on 2017-03-02</b>peak occupancy"));
    assert!(html.contains("<b>$122.00</b>per bed-day"));
}

#[test]
fn a_log_without_capacity_still_renders() {
    let log = Log::new()
        .at(
            "2017-03-01T07:00:00Z",
            detainer("D-1", "P-1001", local(COUNTY), "none"),
        )
        .at("2017-03-01T09:00:00Z", assumed("P-1001", local(COUNTY)));
    let r = report(&log.text(), None, 122.0);
    assert!(r.days.is_empty());
    assert_eq!(r.totals.cost_usd, 0.0);
    assert_eq!(r.totals.peak_occupied_beds, None);
    // With no capacity known, R4 detains.
    assert_eq!(r.placements_by_basis.detainer, 1);
    let html = r.render(Format::Html).unwrap();
    assert_self_contained(&html);
    assert!(!html.contains("<svg"));
    assert!(html.contains("No capacity was reported"));
    assert_eq!(
        r.render(Format::Csv).unwrap().lines().next(),
        Some("date,funded_beds,occupied_beds,over_capacity,cost_usd")
    );
}

/// A generated log of 20,000 events (about a year and a half): the report is consistent
/// with itself and with the engine, is the same on every run, and its HTML is written to
/// `target/reports/capacity.html` for a look.
#[test]
fn a_generated_log_is_consistent_and_writes_the_html() {
    let mut log = Vec::new();
    generate(&GenConfig::new(20_000, 1), &mut log).unwrap();
    let log = String::from_utf8(log).unwrap();

    let mut r = Capacity::new(122.0);
    let mut engine = Engine::new();
    let mut placement_decisions = 0u64;
    replay::run(&mut engine, log.as_bytes(), None, |e, seen| {
        if let replay::Seen::Event { step, .. } = &seen {
            placement_decisions += step
                .decisions
                .iter()
                .filter(|d| d.body.type_name() == "handoff.placement")
                .count() as u64;
        }
        r.observe(e, &seen);
        Ok(())
    })
    .unwrap();
    let r = r.finish(&engine);

    assert!(r.days.len() > 300, "{} days", r.days.len());
    for pair in r.days.windows(2) {
        assert_eq!(pair[0].date.succ_opt(), Some(pair[1].date));
    }
    let last = r.days.last().unwrap();
    assert_eq!(last.date, engine.clock().unwrap().date_naive());
    assert_eq!(
        (last.funded_beds, last.occupied_beds),
        engine.capacity().unwrap()
    );
    for d in &r.days {
        assert_eq!(d.over_capacity, d.occupied_beds >= d.funded_beds);
        assert_eq!(d.cost_usd, d.occupied_beds as f64 * 122.0);
    }
    let t = &r.totals;
    assert_eq!(t.days, r.days.len() as u64);
    assert_eq!(
        t.bed_days,
        r.days.iter().map(|d| d.occupied_beds).sum::<u64>()
    );
    assert_eq!(t.cost_usd, r.days.iter().map(|d| d.cost_usd).sum::<f64>());
    assert_eq!(
        t.days_over_capacity,
        r.days.iter().filter(|d| d.over_capacity).count() as u64
    );
    assert_eq!(
        t.peak_occupied_beds,
        r.days.iter().map(|d| d.occupied_beds).max()
    );
    assert_eq!(t.placements, placement_decisions);
    assert_eq!(
        r.placements.iter().map(|p| p.count).sum::<u64>(),
        placement_decisions
    );
    let b = &r.placements_by_basis;
    assert_eq!(
        b.priority_detention
            + b.detainer
            + b.capacity
            + b.capacity_review
            + b.prolonged_detention
            + b.humanitarian,
        placement_decisions
    );
    assert_eq!(b.other, 0);
    // The reviews agree with the placements, and their days with the occupancy's.
    let rv = &r.reviews;
    assert_eq!(
        rv.moves_total + rv.humanitarian_at_placement,
        b.capacity_review + b.prolonged_detention + b.humanitarian
    );
    assert_eq!(
        rv.days.first().map(|d| d.date),
        r.days.first().map(|d| d.date)
    );
    assert_eq!(
        rv.days.last().map(|d| d.date),
        r.days.last().map(|d| d.date)
    );
    assert_eq!(
        rv.days.iter().map(|d| d.capacity_review).sum::<u64>(),
        rv.moves.capacity_review
    );
    let daily: f64 = rv.days.iter().map(|d| d.bed_days_avoided).sum();
    assert!((daily - rv.bed_days_avoided).abs() < 1e-6 * rv.days.len() as f64);
    assert!(
        rv.days
            .iter()
            .all(|d| d.removal_not_foreseeable_over_180_days == 0)
    );
    let a = &r.atd_by_monitoring;
    assert_eq!(
        a.ankle_monitor + a.telephonic + a.office_checkin,
        r.placements_by_placement.atd
    );

    let html = r.render(Format::Html).unwrap();
    assert_self_contained(&html);
    assert_eq!(html.matches("<svg").count(), 1);
    // Deterministic: a second run renders the same bytes.
    assert_eq!(
        report(&log, None, 122.0).render(Format::Html).unwrap(),
        html
    );

    let dir = manifest_path("target/reports");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("capacity.html"), &html).unwrap();
}

// ---------------------------------------------------------------------------------
// ICE's detention reviews (R6): moves to ATD, what they avoided, removal not foreseeable.

/// Three days of 2013 with every kind of R6 move. 10 funded / 8 occupied (anonymous
/// people) from 1 March. On 1 March ICE takes four people from the county:
/// - 08:00 P-1301 (none): detained, 9 occupied;
/// - 09:00 P-1302 (charged): detained, 10;
/// - 10:00 P-1303 (convicted): detained although the beds are full (priority), 11 > 10, so
///   the funding review (R6.1) moves the first movable person, P-1301 (none before charged),
///   to ATD, telephonic: 10;
/// - 12:00 ICE verifies a medical factor for P-1302: R6.3 moves them at once (office
///   check-in): 9;
/// - 13:00 a factor for P-1304 (none) while the county holds them, 14:00 ICE takes them: R6.3
///   places them in ATD instead of detaining them (at placement: no bed, 9).
///
/// On 2 March at 08:00 ICE reports P-1303's removal not foreseeable (the 180-day timer is
/// set for 27 August), and at 12:00 a writ takes P-1301, on ATD, out of ICE's custody (R2.1).
/// On 3 March at 18:00 a capacity report (10 / 9) ends the log: the end clock.
fn review_days_log() -> Log {
    let j = COUNTY;
    Log::new()
        .at("2013-03-01T06:00:00Z", capacity(10, 8))
        .at(
            "2013-03-01T07:00:00Z",
            detainer("D-1301", "P-1301", local(j), "none"),
        )
        .at(
            "2013-03-01T07:01:00Z",
            detainer("D-1302", "P-1302", local(j), "charged"),
        )
        .at(
            "2013-03-01T07:02:00Z",
            detainer("D-1303", "P-1303", local(j), "convicted"),
        )
        .at(
            "2013-03-01T07:03:00Z",
            detainer("D-1304", "P-1304", local(j), "none"),
        )
        .at("2013-03-01T08:00:00Z", assumed("P-1301", local(j)))
        .at("2013-03-01T09:00:00Z", assumed("P-1302", local(j)))
        .at("2013-03-01T10:00:00Z", assumed("P-1303", local(j)))
        .at("2013-03-01T12:00:00Z", factor("P-1302", "medical"))
        .at(
            "2013-03-01T13:00:00Z",
            factor("P-1304", "primary_caretaker"),
        )
        .at("2013-03-01T14:00:00Z", assumed("P-1304", local(j)))
        .at("2013-03-02T08:00:00Z", removal("P-1303", "CU", false))
        .at("2013-03-02T12:00:00Z", writ("W-1", "P-1301", j))
        .at("2013-03-03T18:00:00Z", capacity(10, 9))
}

#[test]
fn moves_to_atd_by_basis_and_the_bed_days_they_avoided() {
    let r = report(&review_days_log().text(), None, 122.0);
    // Occupancy as the engine has it: 9 at the end of 1 March, 9 after the report of 3 March.
    assert_eq!(
        days(&r),
        vec![
            row("2013-03-01", 10, 9, false, 1098.0),
            row("2013-03-02", 10, 9, false, 1098.0),
            row("2013-03-03", 10, 9, false, 1098.0),
        ]
    );
    assert_eq!(
        placements(&r),
        vec![
            ("detain", "priority_detention", "", 1),
            ("detain", "detainer", "", 2),
            ("atd", "capacity", "ankle_monitor", 0),
            ("atd", "capacity", "telephonic", 0),
            ("atd", "capacity", "office_checkin", 0),
            ("atd", "capacity_review", "ankle_monitor", 0),
            ("atd", "capacity_review", "telephonic", 1),
            ("atd", "prolonged_detention", "ankle_monitor", 0),
            ("atd", "prolonged_detention", "telephonic", 0),
            ("atd", "humanitarian", "office_checkin", 2),
        ]
    );
    // Bed-days avoided, by hand:
    // - P-1301: on ATD from 03-01 10:00 until the writ at 03-02 12:00: 14 h on 1 March, 12 h
    //   on 2 March (26 h);
    // - P-1302: from 03-01 12:00 to the end clock, 03-03 18:00: 12 h, 24 h, 18 h (54 h);
    // - P-1304: placed in ATD, never detained: nothing.
    // By day: 26 h = 1.083333 days ($132.17), 36 h = 1.5 ($183.00), 18 h = 0.75 ($91.50);
    // in all 80 h = 3.333333 days, × 122 = 406.666… → $406.67.
    // On ATD after a move at the end of each day: 2, 1 (P-1301 left), 1.
    // Removal not foreseeable: P-1303 from 2 March; detained 2 days, not more than 180.
    assert_eq!(
        review_days(&r),
        vec![
            rd("2013-03-01", [1, 0, 1, 1], 2, 1.083333, 132.17, [0, 0]),
            rd("2013-03-02", [0, 0, 0, 0], 1, 1.5, 183.0, [1, 0]),
            rd("2013-03-03", [0, 0, 0, 0], 1, 0.75, 91.5, [1, 0]),
        ]
    );
    let rv = &r.reviews;
    assert_eq!(
        rv.moves,
        ReviewMoves {
            capacity_review: 1,
            prolonged_detention: 0,
            humanitarian: 1,
        }
    );
    assert_eq!(rv.moves_total, 2);
    assert_eq!(rv.humanitarian_at_placement, 1);
    assert_eq!(
        rv.end.map(|t| handoff::edge::wire::format_time(&t)),
        Some("2013-03-03T18:00:00Z".to_owned())
    );
    assert_eq!(rv.bed_days_avoided, 3.333333);
    assert_eq!(rv.rate_usd_per_bed_day, 122.0);
    assert_eq!(rv.cost_avoided_usd, 406.67);
    // No --atd-rate: the ATD cost is not counted, and no net saving is made up.
    assert_eq!(
        (rv.atd_rate_usd_per_day, rv.atd_cost_usd, rv.net_saving_usd),
        (None, None, None)
    );
    assert_eq!(
        (rv.peak_over_180_days, rv.peak_over_180_days_date),
        (0, None)
    );

    // With an ATD day at $10.50: 80 h = 10/3 days × 10.50 = $35.00 exactly; the net
    // saving is 406.67 − 35.00 = $371.67. Nothing else changes.
    let with = report_with(
        &review_days_log().text(),
        None,
        Capacity::new(122.0).with_atd_rate(10.5),
    );
    let w = &with.reviews;
    assert_eq!(
        (w.atd_rate_usd_per_day, w.atd_cost_usd, w.net_saving_usd),
        (Some(10.5), Some(35.0), Some(371.67))
    );
    assert_eq!(w.cost_avoided_usd, 406.67);
    assert_eq!(w.days, rv.days);
    // Another bed-day rate prices the same days: 80 h at $99.25 = 330.833… → $330.83.
    let cheaper = report(&review_days_log().text(), None, 99.25);
    assert_eq!(cheaper.reviews.bed_days_avoided, 3.333333);
    assert_eq!(cheaper.reviews.cost_avoided_usd, 330.83);
}

#[test]
fn the_reviews_in_every_format() {
    let plain = report(&review_days_log().text(), None, 122.0);
    let with = report_with(
        &review_days_log().text(),
        None,
        Capacity::new(122.0).with_atd_rate(10.5),
    );

    // JSON: the same figures, and `null` for the ATD cost not counted.
    for r in [&plain, &with] {
        let json = r.render(Format::Json).unwrap();
        let back: CapacityReport = serde_json::from_str(&json).unwrap();
        assert_eq!(&back, r);
    }
    let v: Value = serde_json::from_str(&plain.render(Format::Json).unwrap()).unwrap();
    let rv = &v["reviews"];
    assert_eq!(rv["end"], "2013-03-03T18:00:00Z");
    assert_eq!(rv["moves"]["capacity_review"], 1);
    assert_eq!(rv["moves"]["humanitarian"], 1);
    assert_eq!(rv["humanitarian_at_placement"], 1);
    assert_eq!(rv["bed_days_avoided"], 3.333333);
    assert_eq!(rv["cost_avoided_usd"], 406.67);
    assert_eq!(rv["atd_cost_usd"], Value::Null);
    assert_eq!(rv["net_saving_usd"], Value::Null);
    assert_eq!(rv["days"][0]["on_atd_after_move"], 2);
    assert_eq!(rv["days"][1]["removal_not_foreseeable"], 1);
    assert_eq!(v["placements_by_basis"]["humanitarian"], 2);
    let v: Value = serde_json::from_str(&with.render(Format::Json).unwrap()).unwrap();
    assert_eq!(v["reviews"]["atd_rate_usd_per_day"], 10.5);
    assert_eq!(v["reviews"]["atd_cost_usd"], 35.0);
    assert_eq!(v["reviews"]["net_saving_usd"], 371.67);

    // CSV: the reviews by day, then their figures.
    let csv = plain.render(Format::Csv).unwrap();
    let tail = &csv[csv.find("\ndate,capacity_review").unwrap() + 1..];
    assert_eq!(
        tail,
        "date,capacity_review,prolonged_detention,humanitarian,humanitarian_at_placement,\
on_atd_after_move,bed_days_avoided,cost_avoided_usd,removal_not_foreseeable,\
removal_not_foreseeable_over_180_days\n\
2013-03-01,1,0,1,1,2,1.083333,132.17,0,0\n\
2013-03-02,0,0,0,0,1,1.500000,183.00,1,0\n\
2013-03-03,0,0,0,0,1,0.750000,91.50,1,0\n\
\n\
figure,value\n\
end,2013-03-03T18:00:00Z\n\
moves_capacity_review,1\n\
moves_prolonged_detention,0\n\
moves_humanitarian,1\n\
moves_total,2\n\
humanitarian_at_placement,1\n\
bed_days_avoided,3.333333\n\
rate_usd_per_bed_day,122.00\n\
cost_avoided_usd,406.67\n\
atd_rate_usd_per_day,not counted\n\
atd_cost_usd,not counted\n\
net_saving_usd,not counted\n\
peak_over_180_days,0\n"
    );
    let csv = with.render(Format::Csv).unwrap();
    assert!(csv.ends_with(
        "atd_rate_usd_per_day,10.50\natd_cost_usd,35.00\nnet_saving_usd,371.67\n\
peak_over_180_days,0\n"
    ));

    // Markdown.
    let md = plain.render(Format::Md).unwrap();
    for line in [
        "- moved to ATD (R6): 2\n",
        "- bed-days avoided: 3.33\n",
        "- bed cost avoided: $406.67\n",
        "- ATD cost: not counted\n",
        "| capacity_review | R6.1 | 1 |\n",
        "| prolonged_detention | R6.2 | 0 |\n",
        "| humanitarian | R6.3 | 1 |\n",
        "| humanitarian (at placement, no bed freed) | R6.3 | 1 |\n",
        "| 2013-03-01 | 1 | 0 | 1 | 1 | 2 | 1.08 | 132.17 | 0 | 0 |\n",
        "| 2013-03-02 | 0 | 0 | 0 | 0 | 1 | 1.50 | 183.00 | 1 | 0 |\n",
        "| 2013-03-03 | 0 | 0 | 0 | 0 | 1 | 0.75 | 91.50 | 1 | 0 |\n",
    ] {
        assert!(md.contains(line), "{line:?} not in\n{md}");
    }
    assert!(md.contains("ATD cost not counted (no --atd-rate given)."));
    assert!(md.contains("the report's end clock (2013-03-03T18:00:00Z)"));
    let md = with.render(Format::Md).unwrap();
    assert!(md.contains("- ATD cost: $35.00 at $10.50/day\n"));
    assert!(md.contains("- net saving: $371.67\n"));
    assert!(!md.contains("not counted"));

    // HTML: the headline figures, the tables, and the funding review marked on 1 March.
    let html = plain.render(Format::Html).unwrap();
    assert_self_contained(&html);
    assert!(html.contains("<b>2</b>moved to ATD (R6)"));
    assert!(html.contains("<b>3.33</b>bed-days avoided"));
    assert!(html.contains("<b>$406.67</b>bed cost avoided"));
    assert!(html.contains("<b>not counted</b>ATD cost"));
    assert!(html.contains("<td>capacity_review</td><td>R6.1</td><td class=\"n\">1</td>"));
    assert!(html.contains(
        "<td>2013-03-01</td><td class=\"n\">1</td><td class=\"n\">0</td><td class=\"n\">1</td>\
<td class=\"n\">1</td><td class=\"n\">2</td><td class=\"n\">1.08</td><td class=\"n\">132.17</td>\
<td class=\"n\">0</td><td class=\"n\">0</td>"
    ));
    let svg = &html[html.find("<svg").unwrap()..html.find("</svg>").unwrap()];
    assert!(svg.contains(">funding review (R6.1)<"));
    assert_eq!(
        svg.matches("<title>2013-03-01: funding review, 1 moved to ATD (R6.1)</title>")
            .count(),
        1
    );
    assert_eq!(svg.matches("<g><title>").count(), 1);
    let html = with.render(Format::Html).unwrap();
    assert!(html.contains("<b>$35.00 at $10.50/day</b>ATD cost"));
    assert!(html.contains("<b>$371.67</b>net saving"));
}

/// R6.2 over half a year: P-1307 (none) detained on 1 January 2013 at 09:00 with removal not
/// foreseeable from 2 January; P-1308 (none) detained the same day, removal foreseeable.
/// Funded beds are plenty. R6.2's timer fires at 1 January + 180 days = 30 June 09:00; a
/// capacity report on 1 July at 09:00 ends the log.
fn half_a_year() -> Log {
    Log::new()
        .at("2013-01-01T06:00:00Z", capacity(100, 50))
        .at(
            "2013-01-01T07:00:00Z",
            detainer("D-1307", "P-1307", local(COUNTY), "none"),
        )
        .at(
            "2013-01-01T07:01:00Z",
            detainer("D-1308", "P-1308", local(COUNTY), "none"),
        )
        .at("2013-01-01T09:00:00Z", assumed("P-1307", local(COUNTY)))
        .at("2013-01-01T09:00:00Z", assumed("P-1308", local(COUNTY)))
        .at("2013-01-02T10:00:00Z", removal("P-1307", "CU", false))
        .at("2013-01-03T10:00:00Z", removal("P-1308", "MX", true))
        .at("2013-07-01T09:00:00Z", capacity(100, 52))
}

#[test]
fn removal_not_foreseeable_is_counted_day_by_day_and_r6_2_leaves_no_one_past_180_days() {
    let r = report(&half_a_year().text(), None, 122.0);
    let rows = review_days(&r);
    // 1 January to 1 July: 182 rows.
    assert_eq!(rows.len(), 182);
    assert_eq!(rows[0], rd("2013-01-01", [0; 4], 0, 0.0, 0.0, [0, 0]));
    // P-1307 counts from the end of 2 January to the end of 29 June; P-1308, detained as long
    // but with removal foreseeable, never.
    assert_eq!(rows[1], rd("2013-01-02", [0; 4], 0, 0.0, 0.0, [1, 0]));
    assert_eq!(rows[179], rd("2013-06-29", [0; 4], 0, 0.0, 0.0, [1, 0]));
    assert!(rows[1..180].iter().all(|d| d.5 == [1, 0]));
    // 30 June 09:00: R6.2 moves P-1307 at exactly 180 days (never more than 180 at a day's
    // end), and P-1307 is on ATD for 15 h that day and 9 h on 1 July, to the end clock:
    // 24 h = 1 bed-day, $122.
    assert_eq!(
        rows[180],
        rd("2013-06-30", [0, 1, 0, 0], 1, 0.625, 76.25, [0, 0])
    );
    assert_eq!(rows[181], rd("2013-07-01", [0; 4], 1, 0.375, 45.75, [0, 0]));
    let rv = &r.reviews;
    assert_eq!(rv.moves.prolonged_detention, 1);
    assert_eq!(rv.bed_days_avoided, 1.0);
    assert_eq!(rv.cost_avoided_usd, 122.0);
    assert_eq!(
        (rv.peak_over_180_days, rv.peak_over_180_days_date),
        (0, None)
    );
    assert!(rows.iter().all(|d| d.5[1] == 0));
}

/// The reviews are counted from the decisions and events, not from the engine's R6 state:
/// fed decisions in which nobody moved P-1309 at 180 days (as a release without R6.2 would
/// have decided), the report counts P-1309 as detained more than 180 days with removal not
/// foreseeable, from the first day's end after 180 days have passed.
#[test]
fn a_person_held_past_180_days_is_counted_from_the_decisions() {
    let t = |s: &str| handoff::edge::envelope::parse_time(s).unwrap();
    let detain = Decision {
        id: "d-1".to_owned(),
        time: t("2013-01-01T09:00:00Z"),
        person_id: "P-1309".to_owned(),
        rule: Rule::R4_2,
        caused_by: "e-1".to_owned(),
        body: DecisionBody::Placement {
            placement: Placement::Detain,
            monitoring: None,
            basis: handoff_core::model::Basis::Detainer,
        },
        why: Why::Placement {
            criminal_status: None,
            beds: None,
        },
        parties: vec![],
    };
    let status = Event {
        source: "urn:agency:ice:eagle".to_owned(),
        id: "e-2".to_owned(),
        time: t("2013-01-01T10:00:00Z"),
        received: None,
        body: EventBody::RemovalStatus {
            person_id: "P-1309".to_owned(),
            country: "CU".to_owned(),
            foreseeable: false,
        },
    };
    let mut engine = Engine::new();
    let mut r = Capacity::new(122.0);
    r.observe(
        &engine,
        &replay::Seen::End {
            decisions: std::slice::from_ref(&detain),
        },
    );
    let step = Step {
        outcome: Outcome::Applied,
        decisions: vec![],
    };
    r.observe(
        &engine,
        &replay::Seen::Event {
            line: 2,
            event: &status,
            step: &step,
        },
    );
    // The end clock: an event on 2 July at 12:00 (nothing else in the engine).
    let end = Log::new()
        .at("2013-07-02T12:00:00Z", capacity(10, 0))
        .text();
    replay::run(&mut engine, end.as_bytes(), None, |_, _| Ok(())).unwrap();
    let r = r.finish(&engine);
    let rows = review_days(&r);
    assert_eq!(rows.len(), 183);
    // 180 days after 1 January 09:00 is 30 June 09:00: at the end of 29 June P-1309 has been
    // detained less than 180 days, at the end of 30 June more.
    assert_eq!(rows[179].0, "2013-06-29");
    assert_eq!(rows[179].5, [1, 0]);
    assert_eq!(rows[180].0, "2013-06-30");
    assert_eq!(rows[180].5, [1, 1]);
    assert_eq!(rows[182], rd("2013-07-02", [0; 4], 0, 0.0, 0.0, [1, 1]));
    assert_eq!(r.reviews.peak_over_180_days, 1);
    assert_eq!(
        r.reviews.peak_over_180_days_date.map(|d| d.to_string()),
        Some("2013-06-30".to_owned())
    );
}
