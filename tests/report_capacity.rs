//! The ICE capacity report (`handoff report capacity`): small logs whose every figure is
//! known by construction, the sample week, and the renderings.

mod support;

use std::path::PathBuf;

use handoff::answers::replay;
use handoff::answers::report::Format;
use handoff::answers::report::capacity::{
    ByBasis, ByMonitoring, ByPlacement, Capacity, CapacityReport, PlacementRow,
};
use handoff_core::engine::Engine;
use handoff_gen::{GenConfig, generate};
use serde_json::Value;
use support::{Log, assumed, capacity, detainer, local, local_release, policy};

const COUNTY: &str = "tx-travis-county";

/// Replays `log` (advancing to `until` at the end, if given) into a capacity report at
/// `rate` USD per bed-day.
fn report(log: &str, until: Option<&str>, rate: f64) -> CapacityReport {
    let until = until.map(|t| handoff::edge::envelope::parse_time(t).expect("test time"));
    let mut r = Capacity::new(rate);
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
        ]
    );
    assert_eq!(
        r.placements_by_basis,
        ByBasis {
            priority_detention: 1,
            detainer: 2,
            capacity: 1
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
            capacity: 0
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
    // over capacity (convicted, 41,501) and leaves under R2.2 (41,500). The update of 3
    // February reports 41,502.
    assert_eq!(
        days(&r),
        vec![
            row("2017-01-28", 41_500, 41_498, false, 41_498.0 * 122.0),
            row("2017-01-29", 41_500, 41_498, false, 41_498.0 * 122.0),
            row("2017-01-30", 41_500, 41_498, false, 41_498.0 * 122.0),
            row("2017-01-31", 41_500, 41_499, false, 41_499.0 * 122.0),
            row("2017-02-01", 41_500, 41_500, true, 41_500.0 * 122.0),
            row("2017-02-02", 41_500, 41_500, true, 41_500.0 * 122.0),
            row("2017-02-03", 41_500, 41_502, true, 5_063_244.0),
        ]
    );
    assert_eq!(r.totals.bed_days, 290_495);
    assert_eq!(r.totals.cost_usd, 35_440_390.0);
    assert_eq!(r.totals.peak_occupied_beds, Some(41_502));
    assert_eq!(r.totals.peak_date.unwrap().to_string(), "2017-02-03");
    assert_eq!(r.totals.days_over_capacity, 3);
    assert_eq!(
        placements(&r),
        vec![
            ("detain", "priority_detention", "", 2),
            ("detain", "detainer", "", 2),
            ("atd", "capacity", "ankle_monitor", 1),
            ("atd", "capacity", "telephonic", 1),
            ("atd", "capacity", "office_checkin", 0),
        ]
    );
    assert_eq!(r.placements_by_placement, ByPlacement { detain: 4, atd: 2 });
    assert_eq!(
        r.atd_by_monitoring,
        ByMonitoring {
            ankle_monitor: 1,
            telephonic: 1,
            office_checkin: 0
        }
    );
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
fn csv_is_the_daily_table_then_the_placements() {
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
atd,capacity,office_checkin,0\n"
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
    assert!(md.contains("| ankle_monitor | 1 |\n"));
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
    // Placements by basis, ATD by monitoring, and the days.
    assert_eq!(html.matches("<table>").count(), 3);
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
        b.priority_detention + b.detainer + b.capacity,
        placement_decisions
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
