//! What-if replay (`handoff::answers::whatif`): known answers for policy overrides, the diff of two
//! worlds, the overrides file's errors, and determinism over a generated log.
//!
//! The cast: `tx-travis-county` (J) is the county whose policy is overridden, `fci-bastrop` the
//! federal prison. Person ids are invented.

mod support;

use std::collections::BTreeMap;

use handoff::answers::whatif::{
    self, BedsOverride, DiffSummary, FundedBeds, Override, PolicyOverride,
};
use handoff::journal::control::Rules;
use serde_json::Value;
use support::*;

const J: &str = "tx-travis-county";
const FCI: &str = "fci-bastrop";

fn time(s: &str) -> handoff_core::model::Time {
    handoff::edge::envelope::parse_time(s).expect("test time")
}

fn overrides(json: &str) -> Vec<Override> {
    whatif::parse_overrides(json).expect("valid overrides")
}

/// Replays `log` with the overrides and renders the decisions and notes as `support::render`
/// does.
fn what_if(log: &Log, until: Option<&str>, overrides_json: &str) -> String {
    let (out, notes) = what_if_raw(&log.text(), until, &overrides(overrides_json));
    render(&out, &notes)
}

fn what_if_raw(
    log: &str,
    until: Option<&str>,
    overrides: &[Override],
) -> (String, Vec<(u64, handoff::answers::replay::Note)>) {
    let mut out = Vec::new();
    let mut notes = Vec::new();
    whatif::replay_with(
        log.as_bytes(),
        until.map(time),
        Rules::Journal,
        overrides,
        &mut out,
        |n, note| notes.push((n, note)),
    )
    .expect("reading from memory cannot fail");
    (String::from_utf8(out).expect("UTF-8"), notes)
}

/// Runs the diff and returns its raw output and summary.
fn diff_raw(log: &str, until: Option<&str>, overrides: &[Override]) -> (String, DiffSummary) {
    let mut out = Vec::new();
    let summary = whatif::diff(
        log.as_bytes(),
        until.map(time),
        Rules::Journal,
        overrides,
        &mut out,
    )
    .expect("reading from memory cannot fail");
    (String::from_utf8(out).expect("UTF-8"), summary)
}

/// Renders diff lines compactly: `person at by=cause before=[rule type, ...] after=[...]`,
/// after checking that every line has exactly the documented fields and that every decision in
/// it satisfies its schema.
fn render_diff(out: &str) -> String {
    let side = |v: &Value| -> String {
        let items: Vec<String> = v
            .as_array()
            .expect("an array of decisions")
            .iter()
            .map(|d| {
                handoff::edge::schemas::validate_decision(d)
                    .unwrap_or_else(|e| panic!("decision fails its schema: {e}\n{d}"));
                format!(
                    "{} {}",
                    d["data"]["rule"].as_str().unwrap(),
                    d["type"].as_str().unwrap().trim_start_matches("handoff.")
                )
            })
            .collect();
        format!("[{}]", items.join(", "))
    };
    out.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("diff lines are JSON");
            let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
            let mut sorted = vec!["after", "at", "before", "caused_by", "person_id"];
            sorted.sort();
            let mut got = keys.clone();
            got.sort();
            assert_eq!(got, sorted, "fields of {l}");
            format!(
                "{} {} by={} before={} after={}",
                v["person_id"].as_str().unwrap(),
                v["at"].as_str().unwrap(),
                v["caused_by"].as_str().unwrap(),
                side(&v["before"]),
                side(&v["after"])
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[track_caller]
fn assert_text(actual: &str, expect: &str) {
    let expect = normalize(expect);
    assert_eq!(
        actual, expect,
        "\n--- actual\n{actual}\n--- expected\n{expect}"
    );
}

// ---------------------------------------------------------------------------------
// 1. The issue's example: Travis County honors detainers from 2017-01-01.

const TRAVIS_HONORS: &str = r#"[{"jurisdiction_id":"tx-travis-county",
                                  "from":"2017-01-01T00:00:00Z","honors_detainers":true}]"#;

/// J does not honor detainers; a person with a detainer is released by J (R3.2, a declined
/// detainer).
fn declined_release() -> Log {
    Log::new()
        .at("2017-01-28T08:00:00Z", policy(J, false, false))
        .at(
            "2017-01-28T09:00:00Z",
            detainer("D-1", "P-9001", local(J), "charged"),
        )
        .at(
            "2017-01-31T09:00:00Z",
            local_release("P-9001", J, "2017-02-01T18:00:00Z"),
        )
}

#[test]
fn travis_county_honoring_detainers_holds_instead_of_releasing() {
    // As it was: R3.2.
    check(
        declined_release(),
        None,
        "#0 2017-01-31T09:00:00Z R3.2 release P-9001 by=e3 from=local:tx-travis-county \
         basis=detainer_declined effective_at=2017-02-01T18:00:00Z detainer_id=D-1",
    );
    // What if: R3.3, and with until past the 48 hours, the R3.5 lapse on the hold's timer.
    let hold = "#0 2017-01-31T09:00:00Z R3.3 hold P-9001 by=e3 jurisdiction_id=tx-travis-county \
                detainer_id=D-1 hold_from=2017-02-01T18:00:00Z hold_until=2017-02-03T18:00:00Z";
    assert_text(&what_if(&declined_release(), None, TRAVIS_HONORS), hold);
    assert_text(
        &what_if(
            &declined_release(),
            Some("2017-02-05T00:00:00Z"),
            TRAVIS_HONORS,
        ),
        &format!(
            "{hold}
             #1 2017-02-03T18:00:00Z R3.5 release P-9001 by=timer:hold:#0 \
             from=local:tx-travis-county \
             basis=hold_expired effective_at=2017-02-03T18:00:00Z detainer_id=D-1"
        ),
    );
}

#[test]
fn travis_county_diff_shows_the_release_becoming_a_hold_and_the_lapse() {
    let o = overrides(TRAVIS_HONORS);
    let (out, summary) = diff_raw(&declined_release().text(), None, &o);
    assert_text(
        &render_diff(&out),
        "P-9001 2017-01-31T09:00:00Z by=e3 before=[R3.2 release] after=[R3.3 hold]",
    );
    assert_eq!(
        summary,
        DiffSummary {
            events: 3,
            people_changed: 1,
            decisions_before: 1,
            decisions_after: 1,
            other_rules: None,
            ..DiffSummary::default()
        }
    );
    // The decisions are written whole: `before` is exactly what replay printed.
    let line: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    let (replayed, _, _) = handoff::answers::replay::replay_str(&declined_release().text(), None);
    let replayed: Value = serde_json::from_str(replayed.trim_end()).unwrap();
    assert_eq!(line["before"][0], replayed);

    let (out, summary) = diff_raw(&declined_release().text(), Some("2017-02-05T00:00:00Z"), &o);
    assert_text(
        &render_diff(&out),
        "P-9001 2017-01-31T09:00:00Z by=e3 before=[R3.2 release] after=[R3.3 hold]
         P-9001 2017-02-05T00:00:00Z by=until before=[] after=[R3.5 release]",
    );
    assert_eq!(summary.people_changed, 1);
    assert_eq!((summary.decisions_before, summary.decisions_after), (1, 2));
}

// ---------------------------------------------------------------------------------
// 2. A window [from, to).

#[test]
fn only_releases_inside_the_window_are_held() {
    let log = Log::new()
        .at("2017-01-28T08:00:00Z", policy(J, false, false))
        .at(
            "2017-01-28T09:00:00Z",
            detainer("D-21", "P-9021", local(J), "charged"),
        )
        .at(
            "2017-01-28T09:10:00Z",
            detainer("D-22", "P-9022", local(J), "charged"),
        )
        .at(
            "2017-01-28T09:20:00Z",
            detainer("D-23", "P-9023", local(J), "charged"),
        )
        .at(
            "2017-01-28T09:30:00Z",
            detainer("D-24", "P-9024", local(J), "charged"),
        )
        // Before the window.
        .at(
            "2017-01-29T09:00:00Z",
            local_release("P-9021", J, "2017-01-29T18:00:00Z"),
        )
        // At the very start of the window: inside.
        .at(
            "2017-01-30T00:00:00Z",
            local_release("P-9022", J, "2017-01-30T18:00:00Z"),
        )
        // Inside.
        .at(
            "2017-01-31T09:00:00Z",
            local_release("P-9023", J, "2017-01-31T18:00:00Z"),
        )
        // At the very end of the window: outside.
        .at(
            "2017-02-02T00:00:00Z",
            local_release("P-9024", J, "2017-02-02T18:00:00Z"),
        );
    let window = r#"[{"jurisdiction_id":"tx-travis-county","from":"2017-01-30T00:00:00Z",
                      "to":"2017-02-02T00:00:00Z","honors_detainers":true}]"#;
    assert_text(
        &what_if(&log, None, window),
        "#0 2017-01-29T09:00:00Z R3.2 release P-9021 by=e6 from=local:tx-travis-county \
         basis=detainer_declined effective_at=2017-01-29T18:00:00Z detainer_id=D-21
         #1 2017-01-30T00:00:00Z R3.3 hold P-9022 by=e7 jurisdiction_id=tx-travis-county \
         detainer_id=D-22 hold_from=2017-01-30T18:00:00Z hold_until=2017-02-01T18:00:00Z
         #2 2017-01-31T09:00:00Z R3.3 hold P-9023 by=e8 jurisdiction_id=tx-travis-county \
         detainer_id=D-23 hold_from=2017-01-31T18:00:00Z hold_until=2017-02-02T18:00:00Z
         #3 2017-02-01T18:00:00Z R3.5 release P-9022 by=timer:hold:#1 from=local:tx-travis-county \
         basis=hold_expired effective_at=2017-02-01T18:00:00Z detainer_id=D-22
         #4 2017-02-02T00:00:00Z R3.2 release P-9024 by=e9 from=local:tx-travis-county \
         basis=detainer_declined effective_at=2017-02-02T18:00:00Z detainer_id=D-24",
    );
    // Outside the window the decisions are those of the log, byte for byte, ids included.
    let (real, _, _) = handoff::answers::replay::replay_str(&log.text(), None);
    let (with, _) = what_if_raw(&log.text(), None, &overrides(window));
    for person in ["P-9021", "P-9024"] {
        let of = |out: &str| -> Vec<String> {
            out.lines()
                .filter(|l| l.contains(&format!("\"subject\":\"{person}\"")))
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(of(&real), of(&with), "{person}");
        assert_eq!(of(&real).len(), 1, "{person}");
    }
    // The diff: the held people only. P-9022's hold lapses on its timer, which the `to` edge is
    // the first step to reach in the what-if world; the log's side of that step is empty, so the
    // lapse shows under the edge, at the edge's time (the decision keeps its own time).
    let (out, summary) = diff_raw(&log.text(), None, &overrides(window));
    assert_text(
        &render_diff(&out),
        "P-9022 2017-01-30T00:00:00Z by=e7 before=[R3.2 release] after=[R3.3 hold]
         P-9023 2017-01-31T09:00:00Z by=e8 before=[R3.2 release] after=[R3.3 hold]
         P-9022 2017-02-02T00:00:00Z by=override-0-to before=[] after=[R3.5 release]",
    );
    assert_eq!(summary.people_changed, 2);
}

// ---------------------------------------------------------------------------------
// 3. A return agreement gained mid-log by override: R2.2, caused by the injected event.

#[test]
fn gaining_a_return_agreement_by_override_triggers_r2_2_at_the_window_start() {
    // J honors detainers without an agreement: ICE is offered the first refusal, accepts, and
    // holds the person; J's claim stays unsatisfied.
    let log = Log::new()
        .at("2017-01-28T08:00:00Z", policy(J, true, false))
        .at(
            "2017-01-28T09:00:00Z",
            detainer("D-31", "P-9031", bop(FCI), "convicted"),
        )
        .at("2017-01-28T10:00:00Z", claim("C-31", "P-9031", J))
        .at(
            "2017-01-29T09:00:00Z",
            bop_release("P-9031", FCI, "2017-02-01T12:00:00Z"),
        )
        .at(
            "2017-01-30T09:00:00Z",
            response(&offer_id_of("e4"), "P-9031", "accept"),
        )
        .at("2017-02-03T09:00:00Z", capacity(100, 10));
    let agreement = r#"[{"jurisdiction_id":"tx-travis-county","from":"2017-02-02T00:00:00Z",
                         "return_agreement":true}]"#;
    let rendered = what_if(&log, None, agreement);
    let last = rendered.lines().last().unwrap();
    assert_eq!(
        last,
        "#2 2017-02-02T00:00:00Z R2.2 transfer P-9031 by=override-0-from from=ice:ice \
         to=local:tx-travis-county basis=return_agreement conditions=return_to_ice_before_release \
         effective_at=2017-02-02T00:00:00Z claim_id=C-31"
    );
    assert_eq!(rendered.lines().count(), 3, "{rendered}");
    let (out, summary) = diff_raw(&log.text(), None, &overrides(agreement));
    assert_text(
        &render_diff(&out),
        "P-9031 2017-02-02T00:00:00Z by=override-0-from before=[] after=[R2.2 transfer]",
    );
    assert_eq!((summary.decisions_before, summary.decisions_after), (2, 3));
    // The same with the window's start after the last event: injected only when `until` reaches
    // it.
    let late = r#"[{"jurisdiction_id":"tx-travis-county","from":"2017-02-05T00:00:00Z",
                    "return_agreement":true}]"#;
    let (out, _) = diff_raw(&log.text(), None, &overrides(late));
    assert_eq!(out, "");
    let (out, _) = diff_raw(&log.text(), Some("2017-02-04T00:00:00Z"), &overrides(late));
    assert_eq!(out, "");
    let (out, _) = diff_raw(&log.text(), Some("2017-02-05T00:00:00Z"), &overrides(late));
    assert_text(
        &render_diff(&out),
        "P-9031 2017-02-05T00:00:00Z by=override-0-from before=[] after=[R2.2 transfer]",
    );
}

// ---------------------------------------------------------------------------------
// 4. A real policy event inside the window is rewritten: the override's field wins, the others
// are kept.

#[test]
fn a_real_policy_event_inside_the_window_keeps_its_other_fields() {
    let log = Log::new()
        .at("2017-01-28T08:00:00Z", policy(J, false, false))
        // Inside the window J signs a return agreement (and still says it does not honor
        // detainers).
        .at("2017-01-30T08:00:00Z", policy(J, false, true))
        .at(
            "2017-01-30T09:00:00Z",
            detainer("D-41", "P-9041", local(J), "charged"),
        )
        .at(
            "2017-01-30T09:10:00Z",
            detainer("D-42", "P-9042", bop(FCI), "charged"),
        )
        .at("2017-01-30T09:20:00Z", claim("C-42", "P-9042", J))
        .at(
            "2017-01-31T09:00:00Z",
            local_release("P-9041", J, "2017-01-31T18:00:00Z"),
        )
        .at(
            "2017-01-31T10:00:00Z",
            bop_release("P-9042", FCI, "2017-02-01T12:00:00Z"),
        );
    let window = r#"[{"jurisdiction_id":"tx-travis-county","from":"2017-01-29T00:00:00Z",
                      "to":"2017-02-10T00:00:00Z","honors_detainers":true}]"#;
    // Honors from the override: a hold. The agreement from the real event: R1.5 rather than an
    // offer.
    assert_text(
        &what_if(&log, None, window),
        "#0 2017-01-31T09:00:00Z R3.3 hold P-9041 by=e6 jurisdiction_id=tx-travis-county \
         detainer_id=D-41 hold_from=2017-01-31T18:00:00Z hold_until=2017-02-02T18:00:00Z
         #1 2017-01-31T10:00:00Z R1.5 transfer P-9042 by=e7 from=bop:fci-bastrop \
         to=local:tx-travis-county basis=return_agreement \
         conditions=ice_detainer_forwarded,return_to_ice_before_release \
         effective_at=2017-02-01T12:00:00Z detainer_id=D-42 claim_id=C-42",
    );
    let (out, _) = diff_raw(&log.text(), None, &overrides(window));
    assert_text(
        &render_diff(&out),
        "P-9041 2017-01-31T09:00:00Z by=e6 before=[R3.2 release] after=[R3.3 hold]",
    );
    // Where the override sets the agreement instead, the real event's own honors field is kept:
    // no hold.
    let agreement = r#"[{"jurisdiction_id":"tx-travis-county","from":"2017-01-29T00:00:00Z",
                         "return_agreement":false}]"#;
    let (out, _) = diff_raw(&log.text(), None, &overrides(agreement));
    let rendered = render_diff(&out);
    assert!(!rendered.contains("P-9041"), "{rendered}");
    assert_text(
        &rendered,
        "P-9042 2017-01-31T10:00:00Z by=e7 before=[R1.5 transfer] after=[R1.6 offer]",
    );
}

// ---------------------------------------------------------------------------------
// 5. Overrides that change nothing.

#[test]
fn an_override_equal_to_the_log_diffs_to_nothing() {
    let o = overrides(r#"[{"jurisdiction_id":"tx-travis-county","honors_detainers":false}]"#);
    let (out, summary) = diff_raw(&declined_release().text(), Some("2017-02-10T00:00:00Z"), &o);
    assert_eq!(out, "");
    assert_eq!(summary.people_changed, 0);
    assert_eq!(summary.decisions_before, summary.decisions_after);
    assert_eq!(
        whatif::diff(
            declined_release().text().as_bytes(),
            None,
            Rules::Journal,
            &[],
            Vec::new(),
        )
        .unwrap()
        .people_changed,
        0
    );
}

#[test]
fn the_sample_week_with_an_override_for_a_jurisdiction_not_in_it_diffs_to_nothing() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/week.jsonl");
    let log = std::fs::read_to_string(path).unwrap();
    assert!(!log.contains("ny-kings-county"));
    let o = overrides(
        r#"[{"jurisdiction_id":"ny-kings-county","return_agreement":true},
            {"jurisdiction_id":"ny-kings-county","from":"2017-01-30T00:00:00+01:00",
             "to":"2017-02-01T00:00:00-05:00","honors_detainers":false}]"#,
    );
    for until in [None, Some("2017-02-20T00:00:00Z")] {
        let (out, summary) = diff_raw(&log, until, &o);
        assert_eq!(out, "", "until {until:?}");
        assert_eq!(summary.people_changed, 0);
        let (replayed, _, replay_summary) =
            handoff::answers::replay::replay_str(&log, until.map(time));
        assert_eq!(summary.events, replay_summary.events);
        assert_eq!(summary.decisions_before, replay_summary.decisions);
        assert_eq!(summary.decisions_after, replay_summary.decisions);
        // And `replay_with` prints the log's decisions, with the log's notes.
        let (with, notes) = what_if_raw(&log, until, &o);
        assert_eq!(with, replayed);
        let (_, real_notes, _) = handoff::answers::replay::replay_str(&log, until.map(time));
        assert_eq!(notes, real_notes);
    }
}

// ---------------------------------------------------------------------------------
// 6. The overrides file.

#[test]
fn overrides_parse_with_times_in_any_offset() {
    let o = overrides(
        r#"[{"jurisdiction_id":"tx-travis-county","from":"2017-01-01T00:00:00-06:00",
             "to":"2017-02-01T00:00:00Z","return_agreement":true},
            {"jurisdiction_id":"tx-hays-county","honors_detainers":false}]"#,
    );
    assert_eq!(
        o,
        vec![
            Override::Policy(PolicyOverride {
                jurisdiction_id: J.to_owned(),
                from: Some(time("2017-01-01T06:00:00Z")),
                to: Some(time("2017-02-01T00:00:00Z")),
                honors_detainers: None,
                return_agreement: Some(true),
            }),
            Override::Policy(PolicyOverride {
                jurisdiction_id: "tx-hays-county".to_owned(),
                from: None,
                to: None,
                honors_detainers: Some(false),
                return_agreement: None,
            }),
        ]
    );
    assert_eq!(whatif::parse_overrides("[]"), Ok(vec![]));
}

#[test]
fn overrides_errors_name_the_entry() {
    let ok = r#"{"jurisdiction_id":"tx-travis-county","honors_detainers":true}"#;
    let ok2 = r#"{"jurisdiction_id":"tx-hays-county","honors_detainers":true}"#;
    let cases: [(String, &[&str]); 8] = [
        ("[{".to_owned(), &["overrides: not JSON"]),
        (
            r#"{"a":1}"#.to_owned(),
            &["overrides: expected a JSON array"],
        ),
        (
            format!(r#"[{ok},{{"jurisdiction_id":"tx-hays-county","honors":true}}]"#),
            &["overrides[1]", "unknown field `honors`"],
        ),
        (
            r#"[{"jurisdiction_id":"tx-travis-county","from":"2017-02-01T00:00:00Z",
                 "to":"2017-02-01T00:00:00Z","honors_detainers":true}]"#
                .to_owned(),
            &[
                "overrides[0]",
                "from (2017-02-01T00:00:00Z) must be before to",
            ],
        ),
        (
            format!(
                r#"[{ok},{ok2},
                    {{"jurisdiction_id":"tx-bexar-county","from":"2017-01-01T00:00:00Z"}}]"#
            ),
            &["overrides[2]", "changes nothing"],
        ),
        (
            r#"[{"jurisdiction_id":"Travis County","honors_detainers":true}]"#.to_owned(),
            &["overrides[0]", "\"Travis County\" is not a jurisdiction id"],
        ),
        (
            r#"[{"jurisdiction_id":"tx-travis-county","from":"2017-01-01T00:00:00",
                 "honors_detainers":true}]"#
                .to_owned(),
            &["overrides[0]", "RFC 3339"],
        ),
        (
            format!(
                r#"[{ok},{{"jurisdiction_id":"tx-travis-county","from":"2017-01-01T00:00:00Z",
                         "honors_detainers":false}}]"#
            ),
            &["overrides[1]", "overlaps overrides[0]"],
        ),
    ];
    for (json, expected) in cases {
        let err = whatif::parse_overrides(&json).expect_err(&json);
        for part in expected {
            assert!(err.contains(part), "{err:?} lacks {part:?} for {json}");
        }
    }
    // Overlapping windows that set different fields, and touching windows, are fine.
    overrides(
        r#"[{"jurisdiction_id":"tx-travis-county","honors_detainers":true},
            {"jurisdiction_id":"tx-travis-county","return_agreement":true},
            {"jurisdiction_id":"tx-hays-county","to":"2017-01-05T00:00:00Z",
             "honors_detainers":true},
            {"jurisdiction_id":"tx-hays-county","from":"2017-01-05T00:00:00Z",
             "honors_detainers":false}]"#,
    );
}

// ---------------------------------------------------------------------------------
// 7. Determinism over a generated log.

fn generated(events: u64, seed: u64) -> String {
    let mut out = Vec::new();
    handoff_gen::generate(&handoff_gen::GenConfig::new(events, seed), &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

/// Per jurisdiction of the log: its `local.release.due` count and every (honors, agreement) its
/// policy events give.
fn jurisdictions(log: &str) -> BTreeMap<String, (usize, Vec<(bool, bool)>)> {
    let mut out: BTreeMap<String, (usize, Vec<(bool, bool)>)> = BTreeMap::new();
    for line in log.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let data = &v["data"];
        match v["type"].as_str().unwrap() {
            "local.release.due" => {
                let j = data["jurisdiction_id"].as_str().unwrap();
                out.entry(j.to_owned()).or_default().0 += 1;
            }
            "jurisdiction.policy.updated" => {
                let j = data["jurisdiction_id"].as_str().unwrap();
                out.entry(j.to_owned()).or_default().1.push((
                    data["honors_detainers"].as_bool().unwrap(),
                    data["return_agreement"].as_bool().unwrap(),
                ));
            }
            _ => {}
        }
    }
    out
}

#[test]
fn diff_over_a_generated_log_is_deterministic_and_reality_replays_as_itself() {
    let log = generated(20_000, 7);
    let js = jurisdictions(&log);
    // The busiest jurisdiction (ties to the first id), its policy flipped for the whole log.
    let (busy, (releases, policies)) = js
        .iter()
        .max_by_key(|(j, (n, _))| (*n, std::cmp::Reverse(*j)))
        .unwrap();
    assert!(*releases > 10, "{busy} has {releases} releases");
    let (honors, _) = policies[0];
    let flip = overrides(&format!(
        r#"[{{"jurisdiction_id":"{busy}","honors_detainers":{}}}]"#,
        !honors
    ));
    let until = Some("2019-01-01T00:00:00Z");
    let (first, summary) = diff_raw(&log, until, &flip);
    let (second, again) = diff_raw(&log, until, &flip);
    assert_eq!(first, second);
    assert_eq!(summary, again);
    assert!(summary.people_changed > 0, "{busy}: {summary:?}");
    assert_eq!(summary.events, 20_000);
    render_diff(&first);

    // A busy jurisdiction whose policy never changes in the log, overridden with its own policy
    // for the whole log: the log's decisions, byte for byte, and none caused by the synthetic
    // events.
    let (steady, (_, policies)) = js
        .iter()
        .filter(|(_, (_, p))| !p.is_empty() && p.iter().all(|x| *x == p[0]))
        .max_by_key(|(j, (n, _))| (*n, std::cmp::Reverse(*j)))
        .expect("a jurisdiction with a steady policy");
    let (honors, agreement) = policies[0];
    let same = overrides(&format!(
        r#"[{{"jurisdiction_id":"{steady}",
              "honors_detainers":{honors},"return_agreement":{agreement}}}]"#
    ));
    for until in [None, until] {
        let (real, real_notes, _) = handoff::answers::replay::replay_str(&log, until.map(time));
        let (with, notes) = what_if_raw(&log, until, &same);
        assert!(!with.contains("override-"));
        assert_eq!(with, real, "{steady}");
        assert_eq!(notes, real_notes);
        let (out, summary) = diff_raw(&log, until, &same);
        assert_eq!(out, "");
        assert_eq!(summary.decisions_before, summary.decisions_after);
    }
}

// ---------------------------------------------------------------------------------
// 8. ICE's funded beds: a cut, a restoration, and what the moves to ATD save.

/// ICE's beds in 2013: 24 funded, 18 occupied (anonymous) from 1 February. ICE takes four
/// people from J: P-1401 (none) on 02-04, P-1402 (charged) on 02-05, P-1403 (none) on 02-06,
/// P-1404 (convicted) on 02-07, all detained (22 of 24). ICE reports 24 / 22 on 03-15. On
/// 03-20 ICE takes P-1405 (convicted): detained (23 of 24). ICE's last report, 03-31 18:00
/// (24 / 23), ends the log. In the log as it is nobody is moved to ATD.
fn beds_2013() -> Log {
    let mut log = Log::new().at("2013-02-01T06:00:00Z", capacity(24, 18));
    for (p, d, status) in [
        ("P-1401", "D-1401", "none"),
        ("P-1402", "D-1402", "charged"),
        ("P-1403", "D-1403", "none"),
        ("P-1404", "D-1404", "convicted"),
        ("P-1405", "D-1405", "convicted"),
    ] {
        log = log.at("2013-02-01T07:00:00Z", detainer(d, p, local(J), status));
    }
    log.at("2013-02-04T09:00:00Z", assumed("P-1401", local(J)))
        .at("2013-02-05T09:00:00Z", assumed("P-1402", local(J)))
        .at("2013-02-06T09:00:00Z", assumed("P-1403", local(J)))
        .at("2013-02-07T09:00:00Z", assumed("P-1404", local(J)))
        .at("2013-03-15T06:00:00Z", capacity(24, 22))
        .at("2013-03-20T09:00:00Z", assumed("P-1405", local(J)))
        .at("2013-03-31T18:00:00Z", capacity(24, 23))
}

/// A cut to 20 funded beds from 1 March 2013, to the end of the log.
const CUT: &str = r#"[{"funded_beds": 20, "from": "2013-03-01T00:00:00Z"}]"#;

/// The same cut, restored on 10 March.
const CUT_RESTORED: &str = r#"[{"funded_beds": 20, "from": "2013-03-01T00:00:00Z",
                                "to": "2013-03-10T00:00:00Z"}]"#;

#[test]
fn a_cut_in_funded_beds_moves_people_to_atd() {
    let log = beds_2013();
    // As it was: R4.1 and R4.2 for each of the five; no R6.
    let (real, notes, _) = handoff::answers::replay::replay_str(&log.text(), None);
    assert!(notes.is_empty(), "{notes:?}");
    assert_eq!(real.lines().count(), 10);
    assert!(!real.contains("\"R6."));

    // What if: the cut's edge is injected before the first event on or after 03-01 (the
    // report of 03-15), at 03-01 00:00, as a capacity report of 20 funded and the 22
    // occupied the world counts: 22 > 20, so the funding review (R6.1) moves the `none`
    // people, longest detained first: P-1401 (02-04), then P-1403 (02-06); 20 of 20.
    // The real report of 03-15 says 22 occupied; the what-if world has 2 fewer in beds, so
    // it is read as 20 / 20: nobody moves. On 03-20 P-1405 (convicted) is detained at 20
    // of 20 (priority), 21 > 20: the review moves P-1402 (charged, ankle monitor). The last
    // report (23 occupied, 3 more than the what-if) is read as 20 / 20.
    let (out, summary) = diff_raw(&log.text(), None, &overrides(CUT));
    assert_text(
        &render_diff(&out),
        "P-1401 2013-03-01T00:00:00Z by=override-0-from before=[] after=[R6.1 placement]
         P-1403 2013-03-01T00:00:00Z by=override-0-from before=[] after=[R6.1 placement]
         P-1402 2013-03-20T09:00:00Z by=e12 before=[] after=[R6.1 placement]",
    );
    let moved: Vec<(String, String, String)> = out
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let d = &v["after"][0];
            (
                d["time"].as_str().unwrap().to_owned(),
                d["data"]["basis"].as_str().unwrap().to_owned(),
                d["data"]["monitoring"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        moved,
        [
            ("2013-03-01T00:00:00Z", "capacity_review", "telephonic"),
            ("2013-03-01T00:00:00Z", "capacity_review", "telephonic"),
            ("2013-03-20T09:00:00Z", "capacity_review", "ankle_monitor"),
        ]
        .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()))
    );
    assert_eq!(summary.people_changed, 3);
    assert_eq!(
        (summary.decisions_before, summary.decisions_after),
        (10, 13)
    );

    // What the moves saved, counted as `report capacity` counts it, to the end clock
    // (03-31 18:00): P-1401 and P-1403 on ATD from 03-01 00:00, 30 days 18 h = 30.75 days
    // each; P-1402 from 03-20 09:00, 11 days 9 h = 11.375 days; in all 72.875 bed-days.
    let day = 86_400_000u64;
    assert_eq!(summary.reviews_before.moves(), 0);
    assert_eq!(summary.reviews_before.avoided_ms, 0);
    assert_eq!(
        (
            summary.reviews_after.capacity_review,
            summary.reviews_after.prolonged_detention,
            summary.reviews_after.humanitarian
        ),
        (3, 0, 0)
    );
    assert_eq!(summary.reviews_after.avoided_ms, day * 72_875 / 1000);
    // In detention, the five people spent, to the end clock: as it was 55.375 + 54.375 +
    // 53.375 + 52.375 + 11.375 = 226.875 days; in the what-if 24.625 (P-1401) + 43 (P-1402)
    // + 22.625 (P-1403) + 52.375 + 11.375 = 154 days: 72.875 bed-days fewer, the moves'.
    assert_eq!(summary.reviews_before.detained_ms, day * 226_875 / 1000);
    assert_eq!(summary.reviews_after.detained_ms, day * 154);

    // `replay --policy` prints the same what-if world: the moves, caused by the edge and by
    // P-1405's pickup, and nothing at the report of 03-15.
    let (with, notes) = what_if_raw(&log.text(), None, &overrides(CUT));
    assert!(notes.is_empty());
    let r6: Vec<String> = with
        .lines()
        .filter(|l| l.contains("\"rule\":\"R6.1\""))
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            format!(
                "{} {} {}",
                v["time"].as_str().unwrap(),
                v["subject"].as_str().unwrap(),
                v["data"]["caused_by"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        r6,
        [
            "2013-03-01T00:00:00Z P-1401 override-0-from",
            "2013-03-01T00:00:00Z P-1403 override-0-from",
            "2013-03-20T09:00:00Z P-1402 e12",
        ]
    );
    assert_eq!(with.lines().count(), 13);
}

#[test]
fn restoring_the_funded_beds_stops_the_moves() {
    // The cut moves P-1401 and P-1403 on 03-01 as above. On 10 March the funded beds are
    // back: the edge (injected before the report of 03-15) reports 24 funded and the 20 the
    // what-if world counts; nobody moves back (R6 has no rule for that). The report of
    // 03-15 reads 20 occupied (22 less the 2 moved); on 03-20 P-1405 is detained at 20 of
    // 24: 21 does not exceed 24, nobody moves. So only the two moves of 03-01 differ.
    let (out, summary) = diff_raw(&beds_2013().text(), None, &overrides(CUT_RESTORED));
    assert_text(
        &render_diff(&out),
        "P-1401 2013-03-01T00:00:00Z by=override-0-from before=[] after=[R6.1 placement]
         P-1403 2013-03-01T00:00:00Z by=override-0-from before=[] after=[R6.1 placement]",
    );
    assert_eq!(summary.reviews_after.capacity_review, 2);
    // 2 × 30.75 days = 61.5 bed-days.
    assert_eq!(summary.reviews_after.avoided_ms, 86_400_000 * 615 / 10);
    let (with, _) = what_if_raw(&beds_2013().text(), None, &overrides(CUT_RESTORED));
    let v: Vec<Value> = with
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Both edges are there as causes only of what they decided: the `to` edge decided
    // nothing.
    assert!(!with.contains("override-0-to"));
    let last = v.last().unwrap();
    assert_eq!(last["data"]["rule"], "R4.2");
    assert_eq!(last["data"]["placement"], "detain");
    assert_eq!(last["subject"], "P-1405");
}

#[test]
fn a_cut_in_percent_is_of_the_reported_beds_and_rounds_to_the_nearest_bed() {
    // 10% off from the start: the first real report (24 / 18) is read as 21.6 → 22 funded
    // (no edge is injected before it: no capacity was known to report). The four are
    // detained (22 of 22; P-1404, convicted, at 21 of 22). On 03-20 P-1405 (convicted) is
    // detained at 22 of 22 (priority): 23 > 22, so R6.1 moves P-1401 (none, longest
    // detained). Rounded down to 21, P-1404 would have set off that move on 02-07.
    let o = overrides(r#"[{"funded_beds": {"percent": -10}}]"#);
    let (out, summary) = diff_raw(&beds_2013().text(), None, &o);
    assert_text(
        &render_diff(&out),
        "P-1401 2013-03-20T09:00:00Z by=e12 before=[] after=[R6.1 placement]",
    );
    // 03-20 09:00 to 03-31 18:00: 11.375 days.
    assert_eq!(summary.reviews_after.avoided_ms, 86_400_000 * 11_375 / 1000);
    assert_eq!(FundedBeds::Percent(-10.0).apply(24), 22);
    assert_eq!(FundedBeds::Percent(-10.0).apply(41_500), 37_350);
    assert_eq!(FundedBeds::Percent(-12.5).apply(4), 4); // 3.5 rounds away from zero
    assert_eq!(FundedBeds::Percent(-100.0).apply(34_000), 0);
    assert_eq!(FundedBeds::Percent(50.0).apply(3), 5); // 4.5 → 5
    assert_eq!(FundedBeds::Beds(7).apply(34_000), 7);
}

#[test]
fn an_edge_before_any_capacity_report_injects_nothing() {
    // The window opens and closes before ICE's first report: there is no occupancy to
    // report, so nothing is injected, and nothing changes.
    let log = Log::new()
        .at(
            "2013-01-10T07:00:00Z",
            detainer("D-1406", "P-1406", local(J), "none"),
        )
        .at("2013-01-11T09:00:00Z", assumed("P-1406", local(J)))
        .at("2013-01-20T06:00:00Z", capacity(24, 18));
    let o = overrides(
        r#"[{"funded_beds": 0, "from": "2013-01-01T00:00:00Z", "to": "2013-01-15T00:00:00Z"}]"#,
    );
    let (out, summary) = diff_raw(&log.text(), None, &o);
    assert_eq!(out, "");
    assert_eq!(summary.decisions_before, summary.decisions_after);
    let (with, _) = what_if_raw(&log.text(), None, &o);
    assert!(!with.contains("override-"));
}

#[test]
fn the_diff_command_prints_what_the_moves_saved() {
    let dir = std::env::temp_dir().join(format!("handoff-whatif-beds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("beds.jsonl");
    let cut = dir.join("cut.json");
    std::fs::write(&log, beds_2013().text()).unwrap();
    std::fs::write(&cut, CUT).unwrap();
    let run = |extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_handoff"))
            .args([
                "replay",
                log.to_str().unwrap(),
                "--policy",
                cut.to_str().unwrap(),
            ])
            .arg("--diff")
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    // 72.875 bed-days × $122 = $8,890.75.
    let (stdout, stderr) = run(&[]);
    assert_eq!(stdout.lines().count(), 3);
    assert_eq!(
        stderr,
        "handoff: 13 events; 3 people decided differently (10 decisions before, 13 after)\n\
handoff: moved to ATD out of detention (R6): 0 (R6.1 0, R6.2 0, R6.3 0) before, 3 (R6.1 3, \
R6.2 0, R6.3 0) after; the bed-days those moves avoided: 0.00 before ($0.00), 72.88 after \
($8,890.75), a change of +72.88 (+$8,890.75) at $122.00 a bed-day; ATD cost not counted \
(no --atd-rate)\n\
handoff: bed-days in detention of the log's people: 226.88 before, 154.00 after: the \
what-if saves 72.88 bed-days, $8,890.75 at $122.00 a bed-day\n"
    );
    // At $100 a bed-day and $10.50 a day on ATD: $7,287.50 avoided, less 72.875 × 10.50 =
    // $765.19 (765.1875), a net saving of $6,522.31.
    let (_, stderr) = run(&["--rate", "100", "--atd-rate", "10.5"]);
    assert!(
        stderr.contains(
            "72.88 after ($7,287.50), a change of +72.88 (+$7,287.50) at $100.00 a bed-day; \
net of ATD at $10.50 a day: $0.00 before, $6,522.31 after, a change of +$6,522.31\n"
        ),
        "{stderr}"
    );
    // The rates are checked, and need --diff.
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_handoff"))
        .args([
            "replay",
            log.to_str().unwrap(),
            "--policy",
            cut.to_str().unwrap(),
        ])
        .args(["--diff", "--atd-rate", "-1"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_handoff"))
        .args([
            "replay",
            log.to_str().unwrap(),
            "--policy",
            cut.to_str().unwrap(),
        ])
        .args(["--rate", "100"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn funded_beds_overrides_parse_and_refuse_what_they_must() {
    assert_eq!(
        overrides(
            r#"[{"funded_beds": {"percent": -10}, "from": "2013-03-01T00:00:00-07:00"},
                {"funded_beds": 30000, "to": "2013-03-01T07:00:00Z"},
                {"jurisdiction_id": "tx-travis-county", "honors_detainers": true}]"#
        ),
        vec![
            Override::FundedBeds(BedsOverride {
                from: Some(time("2013-03-01T07:00:00Z")),
                to: None,
                funded_beds: FundedBeds::Percent(-10.0),
            }),
            // Touching the other window is not overlapping it.
            Override::FundedBeds(BedsOverride {
                from: None,
                to: Some(time("2013-03-01T07:00:00Z")),
                funded_beds: FundedBeds::Beds(30_000),
            }),
            Override::Policy(PolicyOverride {
                jurisdiction_id: J.to_owned(),
                from: None,
                to: None,
                honors_detainers: Some(true),
                return_agreement: None,
            }),
        ]
    );
    let ok = r#"{"funded_beds": 30000, "from": "2013-03-01T00:00:00Z"}"#;
    let cases: &[(&str, &[&str])] = &[
        (
            r#"[{"funded_beds": -5}]"#,
            &["overrides[0]", "whole number of beds", "not -5"],
        ),
        (
            r#"[{"funded_beds": 2.5}]"#,
            &["overrides[0]", "whole number of beds", "not 2.5"],
        ),
        (
            r#"[{"funded_beds": "30000"}]"#,
            &["overrides[0]", "whole number of beds"],
        ),
        (
            r#"[{"funded_beds": {"percent": -101}}]"#,
            &["overrides[0]", "percent -101 is less than -100"],
        ),
        (
            r#"[{"funded_beds": {"percent": "-10"}}]"#,
            &["overrides[0]", "percent must be a number"],
        ),
        (
            r#"[{"funded_beds": {"pct": -10}}]"#,
            &["overrides[0]", "unknown field `pct`"],
        ),
        (
            r#"[{"funded_beds": {}}]"#,
            &["overrides[0]", "`percent` is missing"],
        ),
        (
            r#"[{"funded_beds": 100, "until": "2013-03-01T00:00:00Z"}]"#,
            &["overrides[0]", "unknown field `until`"],
        ),
        (
            r#"[{"funded_beds": 100, "jurisdiction_id": "tx-travis-county"}]"#,
            &[
                "overrides[0]",
                "funded_beds and `jurisdiction_id`",
                "separate entries",
            ],
        ),
        (
            r#"[{"funded_beds": 100, "honors_detainers": true}]"#,
            &["overrides[0]", "funded_beds and `honors_detainers`"],
        ),
        (
            r#"[{"funded_beds": 100, "from": "2013-03-02T00:00:00Z",
                 "to": "2013-03-01T00:00:00Z"}]"#,
            &[
                "overrides[0]",
                "from (2013-03-02T00:00:00Z) must be before to",
            ],
        ),
        (
            r#"[{"funded_beds": 100, "from": "2013-03-01"}]"#,
            &["overrides[0]", "RFC 3339"],
        ),
        (r#"[30000]"#, &["overrides[0]", "expected an object"]),
        (
            r#"[{"from": "2013-03-01T00:00:00Z"}]"#,
            &["overrides[0]", "missing field `jurisdiction_id`"],
        ),
    ];
    for (json, expected) in cases {
        let err = whatif::parse_overrides(json).expect_err(json);
        for part in *expected {
            assert!(err.contains(part), "{err:?} lacks {part:?} for {json}");
        }
    }
    // Overlapping funded-beds windows, whatever their values.
    for later in [
        r#"{"funded_beds": {"percent": -10}, "from": "2013-02-01T00:00:00Z",
            "to": "2013-03-02T00:00:00Z"}"#,
        r#"{"funded_beds": 30000}"#,
        r#"{"funded_beds": 20000, "from": "2013-06-01T00:00:00Z"}"#,
    ] {
        let json = format!(
            "[{ok}, {{\"jurisdiction_id\": \"tx-travis-county\", \"honors_detainers\": true}}, \
{later}]"
        );
        let err = whatif::parse_overrides(&json).expect_err(&json);
        assert!(
            err.contains("overrides[2]: overlaps overrides[0], which also sets funded_beds"),
            "{err}"
        );
    }
    // A policy override beside a funded-beds one, over the same window, is fine.
    overrides(&format!(
        "[{ok}, {{\"jurisdiction_id\": \"tx-travis-county\", \"from\": \
\"2013-03-01T00:00:00Z\", \"honors_detainers\": true}}]"
    ));
}

#[test]
fn funded_beds_over_a_generated_log_replay_reality_as_itself_and_a_cut_moves_people() {
    let log = generated(20_000, 7);
    let until = Some("2019-01-01T00:00:00Z");
    // The funded beds as reported, from the start: the log's decisions, byte for byte.
    let same = overrides(r#"[{"funded_beds": {"percent": 0}}]"#);
    for until in [None, until] {
        let (real, real_notes, _) = handoff::answers::replay::replay_str(&log, until.map(time));
        let (with, notes) = what_if_raw(&log, until, &same);
        assert_eq!(with, real);
        assert_eq!(notes, real_notes);
        let (out, summary) = diff_raw(&log, until, &same);
        assert_eq!(out, "");
        assert_eq!(summary.reviews_before, summary.reviews_after);
    }
    // A 20% cut from the start: more people go to ATD, and the moves are counted in the
    // what-if world; the diff is the same on every run and agrees with `replay --policy`.
    let cut = overrides(r#"[{"funded_beds": {"percent": -20}}]"#);
    let (first, summary) = diff_raw(&log, until, &cut);
    let (second, again) = diff_raw(&log, until, &cut);
    assert_eq!(first, second);
    assert_eq!(summary, again);
    assert!(summary.people_changed > 0, "{summary:?}");
    assert!(
        summary.reviews_after.detained_ms < summary.reviews_before.detained_ms,
        "{summary:?}"
    );
    render_diff(&first);
    let (with, _) = what_if_raw(&log, until, &cut);
    let after_decisions = with.lines().count() as u64;
    assert_eq!(after_decisions, summary.decisions_after);
}
