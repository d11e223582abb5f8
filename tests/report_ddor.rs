//! The Declined Detainer Outcome Report (ICD section 6) over logs whose true counts are
//! known by construction: the first published report's week, the edges of the period,
//! a policy that changes mid-week, the renderings, and determinism.
//!
//! Every log is made of real CloudEvents JSON lines, so the report is computed through
//! the envelope decoder and the engine exactly as `handoff report ddor` computes it.
//! Person and detainer ids are invented; jurisdictions are real county names.

use std::collections::BTreeMap;

use chrono::TimeDelta;
use serde_json::{Value, json};

use handoff::answers::replay::{self, Seen};
use handoff::answers::report::Format;
use handoff::answers::report::ddor::Ddor;
use handoff::answers::report::ddor::{
    DdorReport, DeclinedReleases, DetainersIssued, JurisdictionCount, OffenseCount, StateCount,
};
use handoff::edge::wire::format_time;
use handoff_core::engine::{Engine, Outcome};
use handoff_core::model::Time;

// ---------------------------------------------------------------------------------
// A small log builder.

const ICE: &str = "urn:agency:ice:eagle";

/// An event without its envelope: source, type and data.
struct Ev {
    source: String,
    ty: &'static str,
    data: Value,
}

/// A log under construction: one CloudEvent per line, ids `e1`, `e2`, ...
#[derive(Default)]
struct Log {
    lines: Vec<String>,
}

impl Log {
    /// Adds an event sent at `time`.
    fn at(&mut self, time: Time, ev: Ev) {
        let id = format!("e{}", self.lines.len() + 1);
        self.lines.push(envelope(&id, time, None, ev));
    }

    /// Adds an event sent at `time` that handoff journaled at `received`.
    fn received(&mut self, time: Time, received: Time, ev: Ev) {
        let id = format!("e{}", self.lines.len() + 1);
        self.lines.push(envelope(&id, time, Some(received), ev));
    }

    /// Repeats the line added last: a duplicate (same `source` and `id`).
    fn repeat_last(&mut self) {
        let last = self.lines.last().expect("a line to repeat").clone();
        self.lines.push(last);
    }

    fn text(&self) -> String {
        let mut s = self.lines.join("\n");
        s.push('\n');
        s
    }
}

fn envelope(id: &str, time: Time, received: Option<Time>, ev: Ev) -> String {
    let mut msg = json!({
        "specversion": "1.0",
        "id": id,
        "source": ev.source,
        "type": ev.ty,
        "time": format_time(&time),
        "datacontenttype": "application/json",
        "data": ev.data,
    });
    if let Some(p) = msg["data"]["person_id"].as_str() {
        msg["subject"] = json!(p);
    }
    if let Some(r) = received {
        msg["handoffreceived"] = json!(format_time(&r));
    }
    msg.to_string()
}

fn t(s: &str) -> Time {
    handoff::edge::envelope::parse_time(s).expect("test time")
}

fn minutes(n: i64) -> TimeDelta {
    TimeDelta::minutes(n)
}

fn jur(j: &str) -> String {
    format!("urn:jurisdiction:{j}")
}

/// `jurisdiction.policy.updated`; `return_agreement` is always false here.
fn policy(j: &str, name: &str, state: &str, honors: bool) -> Ev {
    Ev {
        source: jur(j),
        ty: "jurisdiction.policy.updated",
        data: json!({"jurisdiction_id": j, "name": name, "state": state,
                     "honors_detainers": honors, "return_agreement": false}),
    }
}

fn local(j: &str) -> Value {
    json!({"kind": "local", "id": j})
}

fn detainer(d: &str, p: &str, custodian: Value, status: &str, offenses: &[&str]) -> Ev {
    Ev {
        source: ICE.to_owned(),
        ty: "ice.detainer.issued",
        data: json!({"detainer_id": d, "person_id": p, "custodian": custodian,
                     "criminal_status": status, "offenses": offenses}),
    }
}

fn withdrawn(d: &str, p: &str) -> Ev {
    Ev {
        source: ICE.to_owned(),
        ty: "ice.detainer.withdrawn",
        data: json!({"detainer_id": d, "person_id": p}),
    }
}

fn release_due(p: &str, j: &str, release_at: Time) -> Ev {
    Ev {
        source: jur(j),
        ty: "local.release.due",
        data: json!({"person_id": p, "jurisdiction_id": j,
                     "release_at": format_time(&release_at)}),
    }
}

fn declined(d: &str, p: &str, j: &str) -> Ev {
    Ev {
        source: jur(j),
        ty: "local.detainer.declined",
        data: json!({"detainer_id": d, "person_id": p, "jurisdiction_id": j}),
    }
}

fn hold_expired(p: &str, d: &str, j: &str) -> Ev {
    Ev {
        source: jur(j),
        ty: "hold.expired",
        data: json!({"person_id": p, "detainer_id": d, "jurisdiction_id": j}),
    }
}

fn assumed(p: &str, from: Value) -> Ev {
    Ev {
        source: ICE.to_owned(),
        ty: "ice.custody.assumed",
        data: json!({"person_id": p, "from": from}),
    }
}

/// What a replay gave besides the report: the time of every decision, by rule.
type DecisionTimes = BTreeMap<&'static str, Vec<Time>>;

/// Replays `log` through a fresh engine into the report of `[from, to)`. The log must be
/// clean: no invalid or rejected line.
fn report(log: &Log, from: &str, to: &str, top: usize) -> (DdorReport, DecisionTimes) {
    let mut r = Ddor::new(t(from), t(to), top);
    let mut engine = Engine::new();
    let mut times = DecisionTimes::new();
    let text = log.text();
    let summary = replay::run(&mut engine, text.as_bytes(), None, |e, seen| {
        if let Seen::Event { step, .. } = &seen {
            assert!(
                !matches!(step.outcome, Outcome::Rejected(_)),
                "a rejected event in a test log"
            );
            for d in &step.decisions {
                times.entry(d.rule.as_str()).or_default().push(d.time);
            }
        }
        r.observe(e, &seen);
        Ok(())
    })
    .expect("reading from memory cannot fail");
    assert!(!summary.failed(), "the test log is not clean: {summary:?}");
    (r.finish(&engine), times)
}

fn jc(id: &str, name: Option<(&str, &str)>, count: u64) -> JurisdictionCount {
    JurisdictionCount {
        jurisdiction_id: id.to_owned(),
        name: name.map(|(n, _)| n.to_owned()),
        state: name.map(|(_, s)| s.to_owned()),
        count,
    }
}

fn sc(state: &str, count: u64) -> StateCount {
    StateCount {
        state: state.to_owned(),
        count,
    }
}

fn oc(offense: &str, count: u64) -> OffenseCount {
    OffenseCount {
        offense: offense.to_owned(),
        count,
    }
}

// ---------------------------------------------------------------------------------
// Case 1: the first published report, 28 January to 3 February 2017.

const WEEK_FROM: &str = "2017-01-28T00:00:00Z";
const WEEK_TO: &str = "2017-02-04T00:00:00Z";

/// A jurisdiction of the designed week.
struct Cast {
    id: &'static str,
    name: &'static str,
    state: &'static str,
    /// `None`: it never publishes a policy (so it does not honor detainers).
    honors: Option<bool>,
    /// Detainers issued in the week with it as custodian.
    detainers: usize,
    /// How many of those people it releases despite the detainer (R3.2). In a
    /// jurisdiction that honors detainers, each was declined explicitly first.
    released: usize,
}

const CAST: [Cast; 12] = [
    Cast {
        id: "nv-clark-county",
        name: "Clark County",
        state: "NV",
        honors: Some(true),
        detainers: 51,
        released: 5,
    },
    Cast {
        id: "ny-nassau-county",
        name: "Nassau County",
        state: "NY",
        honors: Some(true),
        detainers: 38,
        released: 4,
    },
    Cast {
        id: "tx-harris-county",
        name: "Harris County",
        state: "TX",
        honors: Some(true),
        detainers: 30,
        released: 10,
    },
    Cast {
        id: "tx-travis-county",
        name: "Travis County",
        state: "TX",
        honors: Some(false),
        detainers: 35,
        released: 30,
    },
    Cast {
        id: "tx-dallas-county",
        name: "Dallas County",
        state: "TX",
        honors: Some(false),
        detainers: 30,
        released: 30,
    },
    Cast {
        id: "tx-bexar-county",
        name: "Bexar County",
        state: "TX",
        honors: Some(false),
        detainers: 32,
        released: 30,
    },
    Cast {
        id: "tx-el-paso-county",
        name: "El Paso County",
        state: "TX",
        honors: Some(false),
        detainers: 25,
        released: 25,
    },
    Cast {
        id: "tx-hidalgo-county",
        name: "Hidalgo County",
        state: "TX",
        honors: Some(false),
        detainers: 24,
        released: 24,
    },
    Cast {
        id: "ca-santa-clara-county",
        name: "Santa Clara County",
        state: "CA",
        honors: Some(false),
        detainers: 25,
        released: 20,
    },
    Cast {
        id: "il-cook-county",
        name: "Cook County",
        state: "IL",
        honors: Some(false),
        detainers: 26,
        released: 16,
    },
    Cast {
        id: "or-multnomah-county",
        name: "Multnomah County",
        state: "OR",
        honors: Some(false),
        detainers: 12,
        released: 8,
    },
    Cast {
        id: "co-denver",
        name: "Denver",
        state: "CO",
        honors: None,
        detainers: 4,
        released: 4,
    },
];

/// Further jurisdictions, each custodian of `FILLER_DETAINERS` detainers (fewer than
/// Nassau's 38) and releasing no one despite one. They honor detainers.
const FILLERS: usize = 100;
const FILLER_DETAINERS: usize = 23;
const FILLER_STATES: [&str; 5] = ["GA", "FL", "AZ", "NC", "VA"];
/// Detainers whose custodian is a federal prison, and ICE itself: never in the top list.
const BOP_DETAINERS: usize = 300;
const ICE_DETAINERS: usize = 151;

/// The offense lists of the 206 declined detainers, with how many detainers list each.
/// Offense counts: drug possession 60 + 20 = 80, driving under the influence 50 + 20 =
/// 70, assault 30 + 20 = 50, "burglary, residential" 20, homicide 6, sexual assault 5.
const RELEASED_OFFENSES: [(&[&str], usize); 8] = [
    (&["drug possession"], 60),
    (&["driving under the influence"], 50),
    (&["drug possession", "driving under the influence"], 20),
    (&["assault"], 30),
    (&["burglary, residential", "assault"], 20),
    (&["homicide"], 6),
    (&["sexual assault"], 5),
    (&[], 15),
];

/// Offenses on detainers that are not released despite them; never in the report.
const OTHER_OFFENSES: [&[&str]; 3] = [&["fraud"], &["theft", "illegal reentry"], &[]];

/// The designed week. Before it, policies and a few detainers and releases in Travis
/// County; during it, 3,083 detainers (one every two minutes from the first instant),
/// three holds in Clark County, then 206 declined releases, one every ten minutes; after
/// it, more detainers in Nassau County and releases in Travis County, the first at
/// exactly the end of the week. Nothing outside the week may count: if it did, Travis
/// County (35 + 7) would pass Nassau County, Nassau County would have 43, "forgery" would
/// be an offense, and the totals would differ.
fn week_log() -> Log {
    let mut log = Log::default();
    let from = t(WEEK_FROM);

    // Policies, a week earlier.
    let mut at = t("2017-01-20T00:00:00Z");
    for c in &CAST {
        if let Some(honors) = c.honors {
            log.at(at, policy(c.id, c.name, c.state, honors));
            at += minutes(1);
        }
    }
    for f in 0..FILLERS {
        let state = FILLER_STATES[f % FILLER_STATES.len()];
        let id = format!("{}-county-{:03}", state.to_lowercase(), f + 1);
        log.at(
            at,
            policy(&id, &format!("County {:03}", f + 1), state, true),
        );
        at += minutes(1);
    }

    // Before the week: seven detainers in Travis County, two released before it.
    let travis = "tx-travis-county";
    for k in 0..7 {
        let p = format!("P-PRE-{k}");
        let d = format!("D-PRE-{k}");
        let time = t("2017-01-27T12:00:00Z") + minutes(k);
        log.at(
            time,
            detainer(&d, &p, local(travis), "convicted", &["forgery"]),
        );
    }
    for k in 0..2 {
        let time = t("2017-01-27T18:00:00Z") + minutes(k);
        log.at(time, release_due(&format!("P-PRE-{k}"), travis, time));
    }

    // The week's detainers: first those of the people who will be released despite
    // them, jurisdiction by jurisdiction, then the others.
    let mut released_offenses = RELEASED_OFFENSES
        .iter()
        .flat_map(|(list, n)| std::iter::repeat_n(*list, *n));
    let mut n = 0usize;
    let mut at = from;
    let mut next = |log: &mut Log, custodian: Value, status: &str, offenses: &[&str]| {
        n += 1;
        let (p, d) = (format!("P-{n:06}"), format!("D-{n:06}"));
        log.at(at, detainer(&d, &p, custodian, status, offenses));
        at += minutes(2);
        p
    };
    // Declined releases to come: (person, detainer, jurisdiction, explicit decline).
    let mut to_release = Vec::new();
    let mut released = 0usize;
    for c in &CAST {
        for _ in 0..c.released {
            // Exactly 90 of the 206 are convicted, spread through the list.
            let convicted = (released + 1) * 90 / 206 != released * 90 / 206;
            let status = if convicted { "convicted" } else { "charged" };
            let offenses = released_offenses.next().expect("206 offense lists");
            let p = next(&mut log, local(c.id), status, offenses);
            let d = p.replacen("P-", "D-", 1);
            to_release.push((p, d, c.id, c.honors == Some(true)));
            released += 1;
        }
    }
    assert_eq!(released, 206);
    assert!(released_offenses.next().is_none());
    let mut clark_others = Vec::new();
    for c in &CAST {
        for k in 0..c.detainers - c.released {
            let offenses = OTHER_OFFENSES[k % OTHER_OFFENSES.len()];
            let status = ["convicted", "charged", "none"][k % 3];
            let p = next(&mut log, local(c.id), status, offenses);
            if c.id == "nv-clark-county" {
                clark_others.push(p);
            }
        }
    }
    for f in 0..FILLERS {
        let state = FILLER_STATES[f % FILLER_STATES.len()];
        let id = format!("{}-county-{:03}", state.to_lowercase(), f + 1);
        for k in 0..FILLER_DETAINERS {
            next(&mut log, local(&id), "charged", OTHER_OFFENSES[k % 3]);
        }
    }
    for k in 0..BOP_DETAINERS {
        let custodian = json!({"kind": "bop", "id": format!("fci-unit-{}", k % 7)});
        next(&mut log, custodian, "convicted", OTHER_OFFENSES[0]);
    }
    for _ in 0..ICE_DETAINERS {
        next(&mut log, json!({"kind": "ice", "id": "ice"}), "none", &[]);
    }
    // A duplicate of the last detainer: not a detainer issued.
    log.repeat_last();
    assert_eq!(n, 3083);
    assert!(at <= t("2017-02-01T08:00:00Z"));

    // Three Clark County people are held for ICE (R3.3): one is taken into custody
    // (R3.4), two holds lapse at 48 hours (R3.5, fired by the timer during the releases).
    let clark = "nv-clark-county";
    let hold_at = t("2017-02-01T08:00:00Z");
    for (k, p) in clark_others.iter().take(3).enumerate() {
        let time = hold_at + minutes(k as i64);
        log.at(time, release_due(p, clark, time));
    }
    log.at(
        hold_at + minutes(60),
        assumed(&clark_others[0], local(clark)),
    );

    // The declined releases, one every ten minutes; in a jurisdiction that honors
    // detainers, the county declines that detainer a minute before.
    let mut at = t("2017-02-02T00:00:00Z");
    for (p, d, j, explicit) in &to_release {
        if *explicit {
            log.at(at, declined(d, p, j));
        }
        let due = at + minutes(1);
        log.at(due, release_due(p, j, due));
        at += minutes(10);
    }
    // A repeated release notice: a duplicate, and no decision.
    log.repeat_last();
    assert!(at < t(WEEK_TO));

    // After the week: five detainers in Nassau County, and releases of people detained
    // before the week in Travis County, the first at exactly the end.
    for k in 0..5 {
        let time = t("2017-02-04T01:00:00Z") + minutes(k);
        let (p, d) = (format!("P-POST-{k}"), format!("D-POST-{k}"));
        let custodian = local("ny-nassau-county");
        log.at(time, detainer(&d, &p, custodian, "convicted", &["forgery"]));
    }
    for (k, time) in [
        t(WEEK_TO),
        t("2017-02-04T06:00:00Z"),
        t("2017-02-05T00:00:00Z"),
    ]
    .into_iter()
    .enumerate()
    {
        log.at(time, release_due(&format!("P-PRE-{}", k + 2), travis, time));
    }
    log
}

/// The report the designed week must give, figure by figure.
fn week_expected() -> DdorReport {
    DdorReport {
        from: WEEK_FROM.to_owned(),
        to: WEEK_TO.to_owned(),
        detainers_issued: DetainersIssued {
            total: 3083,
            top_jurisdictions: vec![
                jc("nv-clark-county", Some(("Clark County", "NV")), 51),
                jc("ny-nassau-county", Some(("Nassau County", "NY")), 38),
                jc("tx-travis-county", Some(("Travis County", "TX")), 35),
                jc("tx-bexar-county", Some(("Bexar County", "TX")), 32),
                jc("tx-dallas-county", Some(("Dallas County", "TX")), 30),
                jc("tx-harris-county", Some(("Harris County", "TX")), 30),
                jc("il-cook-county", Some(("Cook County", "IL")), 26),
                jc(
                    "ca-santa-clara-county",
                    Some(("Santa Clara County", "CA")),
                    25,
                ),
                jc("tx-el-paso-county", Some(("El Paso County", "TX")), 25),
                jc("tx-hidalgo-county", Some(("Hidalgo County", "TX")), 24),
            ],
        },
        declined: DeclinedReleases {
            total: 206,
            at_release: 206,
            during_hold: 0,
            convicted: 90,
            charged: 116,
            none: 0,
            by_state: vec![
                sc("TX", 149),
                sc("CA", 20),
                sc("IL", 16),
                sc("OR", 8),
                sc("NV", 5),
                sc("NY", 4),
                sc("unknown", 4),
            ],
            in_non_honoring: 187,
            in_honoring: 19,
        },
        offenses: vec![
            oc("drug possession", 80),
            oc("driving under the influence", 70),
            oc("assault", 50),
            oc("burglary, residential", 20),
            oc("homicide", 6),
            oc("sexual assault", 5),
        ],
    }
}

fn week_report() -> DdorReport {
    week_report_with_times().0
}

fn week_report_with_times() -> (DdorReport, DecisionTimes) {
    report(&week_log(), WEEK_FROM, WEEK_TO, 10)
}

#[test]
fn first_published_report_week() {
    let (r, times) = week_report_with_times();
    // The log does what it was designed to do: 206 declined releases in the week, two
    // before it and three at or after its end; three holds, ended as designed.
    let r3_2 = &times["R3.2"];
    let (from, to) = (t(WEEK_FROM), t(WEEK_TO));
    assert_eq!(r3_2.iter().filter(|&&d| from <= d && d < to).count(), 206);
    assert_eq!(r3_2.iter().filter(|&&d| d < from).count(), 2);
    assert_eq!(r3_2.iter().filter(|&&d| d >= to).count(), 3);
    assert_eq!(times["R3.3"].len(), 3);
    assert_eq!(times["R3.4"].len(), 1);
    assert_eq!(times["R3.5"].len(), 2);

    assert_eq!(r.detainers_issued.total, 3083);
    let top = &r.detainers_issued.top_jurisdictions;
    assert_eq!(top[0].jurisdiction_id, "nv-clark-county");
    assert_eq!(top[0].count, 51);
    assert_eq!(top[1].jurisdiction_id, "ny-nassau-county");
    assert_eq!(top[1].count, 38);
    assert!(top[2..].iter().all(|j| j.count < 38));
    assert_eq!(r.declined.total, 206);
    assert_eq!(r.declined.convicted, 90);
    assert_eq!(r.declined.charged, 116);
    assert_eq!(r.declined.by_state[0], sc("TX", 149));
    assert_eq!(r.declined.in_non_honoring, 206 - 19);
    assert_eq!(r.declined.in_honoring, 19);
    // And every other figure, all at once.
    assert_eq!(r, week_expected());
}

// ---------------------------------------------------------------------------------
// Case 2: the edges of the period, duplicates, and the releases that do not count.

const EDGE_FROM: &str = "2017-03-01T00:00:00Z";
const EDGE_TO: &str = "2017-03-08T00:00:00Z";

fn edge_log() -> Log {
    let travis = "tx-travis-county";
    let clark = "nv-clark-county";
    let king = "wa-king-county"; // Never publishes a policy.
    let mut log = Log::default();
    log.at(
        t("2017-02-20T00:00:00Z"),
        policy(travis, "Travis County", "TX", false),
    );
    log.at(
        t("2017-02-20T00:01:00Z"),
        policy(clark, "Clark County", "NV", true),
    );

    // Issued and released before the period: out.
    log.at(
        t("2017-02-27T10:00:00Z"),
        detainer("D-OLD1", "P-OLD1", local(travis), "charged", &["theft"]),
    );
    log.at(
        t("2017-02-28T10:00:00Z"),
        release_due("P-OLD1", travis, t("2017-02-28T10:00:00Z")),
    );
    // Issued before the period, released at its first instant: the release counts.
    log.at(
        t("2017-02-28T11:00:00Z"),
        detainer("D-OLD2", "P-OLD2", local(travis), "convicted", &["robbery"]),
    );
    // Issued at exactly the start: counts (issued 1).
    log.at(
        t(EDGE_FROM),
        detainer("D-EDGE", "P-EDGE", local(travis), "none", &[]),
    );
    log.at(t(EDGE_FROM), release_due("P-OLD2", travis, t(EDGE_FROM)));

    // Issued, then re-issued with another status and offenses (issued 2 and 3); the
    // re-issue is repeated (a duplicate: not issued again). The release counts as the
    // re-issue says, and the duplicate release notice changes nothing.
    log.at(
        t("2017-03-01T01:00:00Z"),
        detainer("D-RE", "P-RE", local(travis), "charged", &["fraud"]),
    );
    log.at(
        t("2017-03-01T02:00:00Z"),
        detainer(
            "D-RE",
            "P-RE",
            local(travis),
            "convicted",
            &["homicide", "assault"],
        ),
    );
    log.repeat_last();
    log.at(
        t("2017-03-02T00:00:00Z"),
        release_due("P-RE", travis, t("2017-03-02T00:00:00Z")),
    );
    log.repeat_last();
    // The detainer issued at the start, released: a `none`.
    log.at(
        t("2017-03-02T01:00:00Z"),
        release_due("P-EDGE", travis, t("2017-03-02T01:00:00Z")),
    );

    // R3.1: a withdrawn detainer (issued 4), and a person with none.
    log.at(
        t("2017-03-03T00:00:00Z"),
        detainer("D-W", "P-WD", local(travis), "charged", &["fraud"]),
    );
    log.at(t("2017-03-03T03:00:00Z"), withdrawn("D-W", "P-WD"));
    log.at(
        t("2017-03-03T04:00:00Z"),
        release_due("P-WD", travis, t("2017-03-03T04:00:00Z")),
    );
    log.at(
        t("2017-03-03T05:00:00Z"),
        release_due("P-NONE", travis, t("2017-03-03T05:00:00Z")),
    );

    // R3.7: Clark County holds, then declines the detainer (issued 5): a declined
    // release for the report too (ICD section 7), counted apart as during a hold.
    log.at(
        t("2017-03-04T00:00:00Z"),
        detainer("D-H7", "P-H7", local(clark), "charged", &["burglary"]),
    );
    log.at(
        t("2017-03-04T01:00:00Z"),
        release_due("P-H7", clark, t("2017-03-04T01:00:00Z")),
    );
    log.at(t("2017-03-04T02:00:00Z"), declined("D-H7", "P-H7", clark));
    // R3.5: held, then released when the hold lapses (issued 6).
    log.at(
        t("2017-03-04T03:00:00Z"),
        detainer(
            "D-H5",
            "P-H5",
            local(clark),
            "convicted",
            &["drug trafficking"],
        ),
    );
    log.at(
        t("2017-03-04T04:00:00Z"),
        release_due("P-H5", clark, t("2017-03-04T04:00:00Z")),
    );
    log.at(
        t("2017-03-04T05:00:00Z"),
        hold_expired("P-H5", "D-H5", clark),
    );

    // A detainer for a federal prisoner (issued 7): counted, but no jurisdiction's.
    log.at(
        t("2017-03-05T00:00:00Z"),
        detainer(
            "D-B",
            "P-BOP",
            json!({"kind": "bop", "id": "fci-example"}),
            "convicted",
            &[],
        ),
    );
    // A jurisdiction with no policy (issued 8 and 9): its release is `unknown` and in a
    // jurisdiction that does not honor detainers.
    log.at(
        t("2017-03-05T01:00:00Z"),
        detainer("D-K1", "P-K1", local(king), "charged", &["identity theft"]),
    );
    log.at(
        t("2017-03-05T01:30:00Z"),
        detainer("D-K2", "P-K2", local(king), "charged", &[]),
    );
    log.at(
        t("2017-03-05T02:00:00Z"),
        release_due("P-K1", king, t("2017-03-05T02:00:00Z")),
    );

    // Sent before the period but received in it (issued 10); and sent before it, with
    // no `handoffreceived`, but arriving after the clock passed the start: its clock
    // time is the engine's clock (issued 11).
    log.received(
        t("2017-02-28T23:00:00Z"),
        t("2017-03-05T03:00:00Z"),
        detainer("D-LATE", "P-LATE", local(clark), "charged", &[]),
    );
    log.at(
        t("2017-02-26T00:00:00Z"),
        detainer("D-LATE2", "P-LATE2", local(clark), "charged", &[]),
    );

    // Issued in the period (issued 12) and released at exactly its end: out.
    log.at(
        t("2017-03-07T00:00:00Z"),
        detainer("D-T2R", "P-T2R", local(travis), "charged", &["theft"]),
    );
    log.at(t(EDGE_TO), release_due("P-T2R", travis, t(EDGE_TO)));
    // Issued at exactly the end: out.
    log.at(
        t(EDGE_TO),
        detainer("D-T2", "P-T2", local(travis), "convicted", &["theft"]),
    );
    log
}

#[test]
fn period_edges_duplicates_and_other_releases() {
    let (r, times) = report(&edge_log(), EDGE_FROM, EDGE_TO, 2);
    // The log does what it was designed to do.
    assert_eq!(times["R3.2"].len(), 6);
    assert_eq!(times["R3.1"].len(), 2);
    assert_eq!(times["R3.7"].len(), 1);
    assert_eq!(times["R3.5"].len(), 1);

    let travis = Some(("Travis County", "TX"));
    let clark = Some(("Clark County", "NV"));
    let expected = DdorReport {
        from: EDGE_FROM.to_owned(),
        to: EDGE_TO.to_owned(),
        detainers_issued: DetainersIssued {
            total: 12,
            // Travis: D-EDGE, D-RE twice, D-W, D-T2R; Clark: D-H7, D-H5, D-LATE,
            // D-LATE2; King County's 2 are cut by `top`.
            top_jurisdictions: vec![
                jc("tx-travis-county", travis, 5),
                jc("nv-clark-county", clark, 4),
            ],
        },
        declined: DeclinedReleases {
            // At release (R3.2): P-OLD2 (convicted, robbery), P-RE (convicted as
            // re-issued), P-EDGE (none), P-K1 (charged). During a hold (R3.7): P-H7
            // (charged, burglary), in Clark County, which honors detainers.
            total: 5,
            at_release: 4,
            during_hold: 1,
            convicted: 2,
            charged: 2,
            none: 1,
            by_state: vec![sc("TX", 3), sc("NV", 1), sc("unknown", 1)],
            in_non_honoring: 4,
            in_honoring: 1,
        },
        offenses: vec![
            oc("assault", 1),
            oc("burglary", 1),
            oc("homicide", 1),
            oc("identity theft", 1),
            oc("robbery", 1),
        ],
    };
    assert_eq!(r, expected);

    // With room for a third, King County is listed by id, with no name or state.
    let (r3, _) = report(&edge_log(), EDGE_FROM, EDGE_TO, 3);
    assert_eq!(
        r3.detainers_issued.top_jurisdictions[2],
        jc("wa-king-county", None, 2)
    );
    let json: Value = serde_json::from_str(&r3.render(Format::Json)).unwrap();
    let king = &json["detainers_issued"]["top_jurisdictions"][2];
    assert_eq!(king["name"], Value::Null);
    assert_eq!(king["state"], Value::Null);
}

// ---------------------------------------------------------------------------------
// Case 3: the policy at the time of each release.

#[test]
fn policy_at_the_time_of_the_release() {
    let sc_j = "ca-santa-clara-county";
    let mult = "or-multnomah-county";
    let mut log = Log::default();
    log.at(
        t("2017-03-01T00:00:00Z"),
        policy(sc_j, "Santa Clara County", "CA", true),
    );

    // While Santa Clara honors detainers: two explicit declines (honoring) and a hold.
    let start = t("2017-04-01T01:00:00Z");
    for (k, p) in ["P-A1", "P-A2", "P-A3"].into_iter().enumerate() {
        let d = p.replacen("P-", "D-", 1);
        log.at(
            start + minutes(k as i64),
            detainer(&d, p, local(sc_j), "charged", &["assault"]),
        );
    }
    // Multnomah County has no policy yet: `unknown`, not honoring.
    log.at(
        start + minutes(10),
        detainer("D-C1", "P-C1", local(mult), "convicted", &["theft"]),
    );
    let day2 = t("2017-04-02T00:00:00Z");
    log.at(day2, declined("D-A1", "P-A1", sc_j));
    log.at(day2 + minutes(1), declined("D-A2", "P-A2", sc_j));
    log.at(
        day2 + minutes(2),
        release_due("P-A1", sc_j, day2 + minutes(2)),
    );
    log.at(
        day2 + minutes(3),
        release_due("P-A2", sc_j, day2 + minutes(3)),
    );
    log.at(
        day2 + minutes(4),
        release_due("P-A3", sc_j, day2 + minutes(4)),
    );
    log.at(
        day2 + minutes(5),
        release_due("P-C1", mult, day2 + minutes(5)),
    );

    // Mid-week, Santa Clara stops honoring detainers and Multnomah starts.
    let day4 = t("2017-04-04T00:00:00Z");
    log.at(day4, policy(sc_j, "Santa Clara County", "CA", false));
    log.at(
        day4 + minutes(1),
        policy(mult, "Multnomah County", "OR", true),
    );
    for (k, p) in ["P-B1", "P-B2", "P-B3", "P-B4"].into_iter().enumerate() {
        let d = p.replacen("P-", "D-", 1);
        let time = day4 + minutes(10 + k as i64);
        log.at(time, detainer(&d, p, local(sc_j), "charged", &["assault"]));
    }
    log.at(
        day4 + minutes(20),
        detainer("D-C2", "P-C2", local(mult), "convicted", &["theft"]),
    );
    let day5 = t("2017-04-05T00:00:00Z");
    // Declined explicitly, but the policy no longer honors detainers: not honoring.
    log.at(day5, declined("D-B4", "P-B4", sc_j));
    log.at(day5 + minutes(1), declined("D-C2", "P-C2", mult));
    for (k, p) in ["P-B1", "P-B2", "P-B3", "P-B4"].into_iter().enumerate() {
        let time = day5 + minutes(2 + k as i64);
        log.at(time, release_due(p, sc_j, time));
    }
    log.at(
        day5 + minutes(10),
        release_due("P-C2", mult, day5 + minutes(10)),
    );

    let (r, times) = report(&log, "2017-04-01T00:00:00Z", "2017-04-08T00:00:00Z", 10);
    assert_eq!(times["R3.3"].len(), 1, "P-A3 is held");
    let expected = DdorReport {
        from: "2017-04-01T00:00:00Z".to_owned(),
        to: "2017-04-08T00:00:00Z".to_owned(),
        detainers_issued: DetainersIssued {
            total: 9,
            // Names and states are those of the latest policies.
            top_jurisdictions: vec![
                jc(sc_j, Some(("Santa Clara County", "CA")), 7),
                jc(mult, Some(("Multnomah County", "OR")), 2),
            ],
        },
        declined: DeclinedReleases {
            total: 8,
            at_release: 8,
            during_hold: 0,
            convicted: 2,
            charged: 6,
            none: 0,
            // P-C1 was released before Multnomah County published a policy.
            by_state: vec![sc("CA", 6), sc("OR", 1), sc("unknown", 1)],
            // Before the change: P-A1, P-A2 (honoring), P-C1 (not). After: P-B1..P-B4
            // (not), P-C2 (honoring).
            in_non_honoring: 5,
            in_honoring: 3,
        },
        offenses: vec![oc("assault", 6), oc("theft", 2)],
    };
    assert_eq!(r, expected);
}

// ---------------------------------------------------------------------------------
// Case 4: the renderings.

#[test]
fn json_rendering_is_the_struct_named() {
    let r = week_report();
    let text = r.render(Format::Json);
    let mut json: Value = serde_json::from_str(&text).expect("the JSON parses");
    let name = json
        .as_object_mut()
        .unwrap()
        .remove("report")
        .expect("a report field");
    assert_eq!(name, "declined_detainer_outcome");
    assert_eq!(json, serde_json::to_value(&r).unwrap());
    // Fields in the documented order.
    let keys = [
        "\"report\"",
        "\"from\"",
        "\"to\"",
        "\"detainers_issued\"",
        "\"declined\"",
        "\"offenses\"",
    ];
    let positions: Vec<usize> = keys.iter().map(|k| text.find(k).unwrap()).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    assert!(text.ends_with("}\n"));
}

#[test]
fn csv_rendering_has_every_row() {
    let csv = week_report().render(Format::Csv);
    let expected = "\
section,key,count
detainers_issued,total,3083
top_jurisdiction,nv-clark-county,51
top_jurisdiction,ny-nassau-county,38
top_jurisdiction,tx-travis-county,35
top_jurisdiction,tx-bexar-county,32
top_jurisdiction,tx-dallas-county,30
top_jurisdiction,tx-harris-county,30
top_jurisdiction,il-cook-county,26
top_jurisdiction,ca-santa-clara-county,25
top_jurisdiction,tx-el-paso-county,25
top_jurisdiction,tx-hidalgo-county,24
declined,total,206
declined,at_release,206
declined,during_hold,0
declined,convicted,90
declined,charged,116
declined,none,0
declined_by_state,TX,149
declined_by_state,CA,20
declined_by_state,IL,16
declined_by_state,OR,8
declined_by_state,NV,5
declined_by_state,NY,4
declined_by_state,unknown,4
declined_policy,not_honoring,187
declined_policy,honoring,19
offense,drug possession,80
offense,driving under the influence,70
offense,assault,50
offense,\"burglary, residential\",20
offense,homicide,6
offense,sexual assault,5
";
    assert_eq!(csv, expected);
}

#[test]
fn markdown_rendering_has_the_tables() {
    let md = week_report().render(Format::Md);
    assert!(md.starts_with(
        "# Declined Detainer Outcome Report, 2017-01-28T00:00:00Z to 2017-02-04T00:00:00Z\n"
    ));
    for needle in [
        "| Detainers issued | 3083 |",
        "| Released despite a detainer (R3.2, R3.7) | 206 |",
        "| at release (R3.2) | 206 |",
        "| during a hold (R3.7) | 0 |",
        "| convicted | 90 |",
        "| charged | 116 |",
        "| in jurisdictions not honoring detainers | 187 |",
        "| in jurisdictions honoring detainers | 19 |",
        "| jurisdiction_id | name | state | detainers |",
        "| nv-clark-county | Clark County | NV | 51 |",
        "| ny-nassau-county | Nassau County | NY | 38 |",
        "| state | declined releases |",
        "| TX | 149 |",
        "| unknown | 4 |",
        "| offense | count |",
        "| drug possession | 80 |",
        "| burglary, residential | 20 |",
        "| sexual assault | 5 |",
    ] {
        assert!(md.contains(needle), "missing {needle:?} in\n{md}");
    }
    // Every table row has as many cells as its header.
    for table in md.split("\n\n").filter(|b| b.starts_with('|')) {
        let widths: Vec<usize> = table.lines().map(|l| l.matches(" | ").count()).collect();
        assert!(widths.iter().all(|w| *w == widths[0]), "{table}");
    }
}

#[test]
fn html_rendering_is_one_self_contained_file() {
    let html = week_report().render(Format::Html);
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/target/reports");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(format!("{dir}/ddor-2017-week.html"), &html).unwrap();

    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_eq!(html.matches("<html").count(), 1);
    assert_eq!(html.matches("</html>").count(), 1);
    let title = "Declined Detainer Outcome Report, 2017-01-28T00:00:00Z to 2017-02-04T00:00:00Z";
    assert!(html.contains(&format!("<title>{title}</title>")));
    assert!(html.contains(&format!("<h1>{title}</h1>")));
    for total in [
        "<b>3083</b>",
        "<b>206</b>",
        "<b>90</b>",
        "<b>116</b>",
        "<b>187</b>",
        "<b>19</b>",
    ] {
        assert!(html.contains(total), "{total}");
    }
    // Two charts: declined releases by state, detainers by jurisdiction.
    assert_eq!(html.matches("<svg").count(), 2);
    assert!(html.contains("<title>Declined releases by state</title>"));
    assert!(html.contains(">TX</text>"));
    assert!(html.contains(">149</text>"));
    assert!(html.contains("<title>Detainers issued, by jurisdiction</title>"));
    assert!(html.contains(">Clark County, NV (nv-clark-county)</text>"));
    assert!(html.contains(">Nassau County, NY (ny-nassau-county)</text>"));
    // The offense table.
    assert!(html.contains("<td>drug possession</td><td class=\"n\">80</td>"));
    assert!(html.contains("<td>burglary, residential</td><td class=\"n\">20</td>"));
    // Nothing loaded from elsewhere, nothing run.
    assert!(!html.contains("<script"));
    assert!(!html.contains("https://"));
    assert_eq!(
        html.matches("http://").count(),
        html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count()
    );
}

// ---------------------------------------------------------------------------------
// Case 5: determinism.

#[test]
fn same_log_same_bytes() {
    let log = week_log();
    let a = report(&log, WEEK_FROM, WEEK_TO, 10).0;
    let b = report(&log, WEEK_FROM, WEEK_TO, 10).0;
    for format in [Format::Json, Format::Csv, Format::Md, Format::Html] {
        assert_eq!(a.render(format), b.render(format), "{format:?}");
    }
}
