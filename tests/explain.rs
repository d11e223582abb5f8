//! `handoff explain`: the timeline of one person, with rule and facts per decision.

use std::process::Command;

use handoff::answers::explain::{Explainer, Timeline, What};
use handoff::answers::replay;
use handoff_core::engine::Engine;
use handoff_gen::{GenConfig, generate};

fn explain(log: &[u8], person: &str) -> Timeline {
    let mut explainer = Explainer::new(person);
    let mut engine = Engine::new();
    replay::run(&mut engine, log, None, |e, seen| {
        explainer.observe(e, &seen);
        Ok(())
    })
    .unwrap();
    explainer.finish()
}

fn week() -> Vec<u8> {
    std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/samples/week.jsonl")).unwrap()
}

fn sequester() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/samples/sequester.jsonl"
    ))
    .unwrap()
}

fn explanations(t: &Timeline) -> Vec<String> {
    t.entries
        .iter()
        .filter_map(|e| match &e.what {
            What::Decision { explanation, .. } => Some(format!("{} {explanation}", e.time)),
            What::Event { .. } => None,
        })
        .collect()
}

#[test]
fn first_refusal_offer_then_acceptance_then_return_agreement() {
    let t = explain(&week(), "P-170004");
    assert_eq!(t.entries.len(), 8);
    assert_eq!(
        explanations(&t),
        [
            "2017-01-29T09:15:00Z R1.6: ICE detainer D-5004 active (convicted: drug trafficking); \
             Travis County (tx-travis-county) claim C-304 pending; Travis County (tx-travis-county) \
             has no return agreement and honors detainers → first-refusal offer to ICE, answer due \
             2017-02-01T15:00:00Z",
            "2017-01-30T09:00:00Z R1.7: ICE accepts first-refusal offer 0a28a00e-da9c-59fd-a5e8-5b24a3b05d7f \
             before its deadline → transfer from BOP fci-bastrop to ICE at 2017-02-01T15:00:00Z \
             (first_refusal_accepted)",
            // The policy event of the county, not an event about the person, caused this.
            "2017-02-02T14:00:00Z R2.2: held by ICE; Travis County (tx-travis-county) claim C-304 \
             pending; Travis County (tx-travis-county) has a return agreement → transfer from ICE to \
             Travis County (tx-travis-county) at 2017-02-02T14:00:00Z (return_agreement; \
             return_to_ice_before_release)",
        ]
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
    );
}

/// Who was told of each decision (ICD section 4), in the timeline and in its text.
#[test]
fn explain_names_who_was_told_of_each_decision() {
    let t = explain(&week(), "P-170004");
    let told: Vec<String> = t
        .entries
        .iter()
        .filter_map(|e| match &e.what {
            What::Decision { told, .. } => Some(told.join(" ")),
            What::Event { .. } => None,
        })
        .collect();
    assert_eq!(
        told,
        [
            "party.bop.fci-bastrop party.ice party.local.tx-travis-county",
            "party.bop.fci-bastrop party.ice party.local.tx-travis-county",
            "party.ice party.local.tx-travis-county",
        ]
    );
    let out = Command::new(env!("CARGO_BIN_EXE_handoff"))
        .args(["explain", "P-170004"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/samples/week.jsonl"))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("  told: party.ice, party.local.tx-travis-county\n"),
        "{text}"
    );
}

#[test]
fn ice_takes_custody_from_bop_then_places_the_person_in_a_freed_bed() {
    let t = explain(&week(), "P-170011");
    assert_eq!(
        explanations(&t),
        [
            "2017-02-02T09:30:00Z R4.1: ICE takes custody of a person BOP fci-bastrop holds, with \
             no first-refusal offer open and no hold; ICE detainer D-5011 active (charged: illegal \
             reentry) → transfer from BOP fci-bastrop to ICE at 2017-02-02T09:30:00Z \
             (custody_assumed)",
            // P-170001 left detention under a writ at 09:00, freeing the bed.
            "2017-02-02T09:30:00Z R4.2: ICE holds the person; criminal status charged; 41,499 of \
             41,500 funded beds occupied → detained (detainer)",
            // ICE reports 41,502 occupied of 41,500 funded: a funding review (R6.1). P-170022
            // went to ATD at 09:45 and P-170012 left ICE for the county at 14:00, so this
            // person is the only detained one who is not convicted: charged, so an ankle
            // monitor. Occupancy stays at 41,501 with nobody else movable.
            "2017-02-03T17:00:00Z R6.1: occupancy 41,502 over 41,500 funded beds; criminal status \
             charged; no humanitarian factor; no removal status; detained since \
             2017-02-02T09:30:00Z; the only detained person a funding review may move → \
             Alternatives to Detention, ankle_monitor (capacity_review)",
        ]
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
    );
}

#[test]
fn ice_taking_custody_during_an_open_offer_accepts_it() {
    let t = explain(&week(), "P-170012");
    let lines = explanations(&t);
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(
        lines[1].starts_with(
            "2017-02-02T09:45:00Z R1.7: ICE takes custody while its first-refusal offer "
        ),
        "{}",
        lines[1]
    );
    assert!(
        lines[1].ends_with(
            "is open: the offer is accepted → transfer from BOP fci-bastrop to ICE at \
             2017-02-02T12:00:00Z (first_refusal_accepted)"
        ),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].starts_with("2017-02-02T09:45:00Z R4.2:"),
        "{}",
        lines[2]
    );
    assert!(
        lines[3].starts_with("2017-02-02T14:00:00Z R2.2:"),
        "{}",
        lines[3]
    );
}

#[test]
fn hold_lapsing_on_the_timer_and_the_late_report() {
    let t = explain(&week(), "P-170023");
    let lines = explanations(&t);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with(
        "2017-01-30T12:05:00Z R3.3: Travis County (tx-travis-county) would release at \
         2017-01-31T08:00:00Z; ICE detainer D-6023 active (none)"
    ));
    assert!(lines[0].ends_with(
        "held for ICE from 2017-01-31T08:00:00Z until 2017-02-02T08:00:00Z (48 hours at most)"
    ));
    assert_eq!(
        lines[1],
        "2017-02-02T08:00:00Z R3.5: the 48-hour hold ran out with no pickup by ICE → released \
         from Travis County (tx-travis-county) at 2017-02-02T08:00:00Z (hold_expired)"
    );
    // The jail's late report is on the timeline, marked as changing nothing.
    let late = t
        .entries
        .iter()
        .find_map(|e| match &e.what {
            What::Event { ty, note, .. } if ty == "hold.expired" => note.clone(),
            _ => None,
        })
        .unwrap();
    assert!(late.starts_with("no_effect"), "{late}");
}

#[test]
fn declined_detainer_and_placement_facts() {
    let t = explain(&week(), "P-170021");
    assert_eq!(
        explanations(&t),
        [
            "2017-01-29T10:10:00Z R3.2: Travis County (tx-travis-county) releases; ICE detainer \
          D-6021 active (charged: driving under the influence); the jurisdiction declined this \
          detainer → released from Travis County (tx-travis-county) at 2017-01-30T08:00:00Z \
          (detainer_declined): a declined detainer"
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        ]
    );
    let t = explain(&week(), "P-170027");
    let lines = explanations(&t);
    assert_eq!(
        lines.last().unwrap(),
        "2017-02-01T16:00:00Z R4.2: ICE holds the person; criminal status none; 41,500 of 41,500 \
         funded beds occupied → Alternatives to Detention, telephonic (capacity)"
    );
}

#[test]
fn on_generated_data_explain_lists_exactly_the_persons_decisions() {
    let mut log = Vec::new();
    generate(&GenConfig::new(6000, 5), &mut log).unwrap();
    let (out, _, _) = replay::replay_str(std::str::from_utf8(&log).unwrap(), None);
    let decisions: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Forty people, spread over the log.
    for n in (1..=600).step_by(15) {
        let person = format!("P-{n:07}");
        let expected: Vec<&serde_json::Value> = decisions
            .iter()
            .filter(|d| d["subject"] == person.as_str())
            .collect();
        let t = explain(&log, &person);
        let listed: Vec<&serde_json::Value> = t
            .entries
            .iter()
            .filter_map(|e| match &e.what {
                What::Decision { decision, .. } => Some(decision),
                What::Event { .. } => None,
            })
            .collect();
        assert_eq!(listed, expected, "{person}");
        for e in &t.entries {
            if let What::Decision {
                rule, explanation, ..
            } = &e.what
            {
                assert!(
                    explanation.starts_with(&format!("{rule}: ")),
                    "{explanation}"
                );
                assert!(explanation.contains(" → "), "{explanation}");
                assert!(!explanation.contains(": →"), "no facts: {explanation}");
            }
        }
    }
}

#[test]
fn cli_explain_text_json_and_unknown_person() {
    let bin = env!("CARGO_BIN_EXE_handoff");
    let week = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/week.jsonl");
    let text = Command::new(bin)
        .args(["explain", "P-170006", week])
        .output()
        .unwrap();
    assert!(text.status.success());
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.starts_with("P-170006: 3 events, 2 decisions\n"),
        "{text}"
    );
    assert!(text.contains("R1.9: no answer from ICE"), "{text}");
    let json = Command::new(bin)
        .args(["explain", "P-170006", week, "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["person_id"], "P-170006");
    assert_eq!(v["entries"][3]["kind"], "decision");
    assert_eq!(v["entries"][3]["rule"], "R1.6");
    let missing = Command::new(bin)
        .args(["explain", "P-999999", week])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
}

/// Every rule the engine can emit has a rendering of its facts: the two samples together
/// exercise every rule (`tests/samples.rs`), and each of their decisions, explained for
/// its person, names its rule and states facts before the outcome.
#[test]
fn every_rule_has_a_rendering_of_its_facts() {
    use handoff_core::model::Rule;
    use std::collections::{BTreeMap, BTreeSet};

    let mut rendered: BTreeMap<String, String> = BTreeMap::new();
    for log in [week(), sequester()] {
        let (out, _, _) = replay::replay_str(std::str::from_utf8(&log).unwrap(), None);
        let people: BTreeSet<String> = out
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["subject"].as_str().unwrap().to_owned()
            })
            .collect();
        for person in &people {
            for e in explain(&log, person).entries {
                if let What::Decision {
                    rule, explanation, ..
                } = e.what
                {
                    let (facts, outcome) = explanation
                        .strip_prefix(&format!("{rule}: "))
                        .and_then(|rest| rest.split_once(" → "))
                        .unwrap_or_else(|| panic!("not 'rule: facts → outcome': {explanation}"));
                    assert!(!facts.trim().is_empty(), "no facts: {explanation}");
                    assert!(!outcome.trim().is_empty(), "no outcome: {explanation}");
                    assert!(!facts.contains('?'), "a fact is missing: {explanation}");
                    rendered.entry(rule).or_insert(explanation);
                }
            }
        }
    }
    let missing: Vec<&str> = Rule::ALL
        .iter()
        .map(|r| r.as_str())
        .filter(|r| !rendered.contains_key(*r))
        .collect();
    assert!(missing.is_empty(), "rules without a rendering: {missing:?}");
}

/// ICE's review events (ICD version 2) show in the person's timeline in words; for a
/// person ICE does not detain they decide nothing.
#[test]
fn ice_review_events_are_summarized() {
    let log = br#"{"specversion":"1.0","id":"eagle-r1","source":"urn:agency:ice:eagle","type":"ice.removal.status","time":"2017-03-02T09:00:00Z","subject":"P-180001","data":{"person_id":"P-180001","country":"VE","foreseeable":false}}
{"specversion":"1.0","id":"eagle-r2","source":"urn:agency:ice:eagle","type":"ice.removal.status","time":"2017-03-03T09:00:00Z","subject":"P-180001","data":{"person_id":"P-180001","country":"VE","foreseeable":true}}
{"specversion":"1.0","id":"eagle-r3","source":"urn:agency:ice:eagle","type":"ice.release.factor","time":"2017-03-04T09:00:00Z","subject":"P-180001","data":{"person_id":"P-180001","factor":"primary_caretaker"}}
{"specversion":"1.0","id":"eagle-r4","source":"urn:agency:ice:eagle","type":"ice.release.factor","time":"2017-03-05T09:00:00Z","subject":"P-180001","data":{"person_id":"P-180001","factor":"medical"}}
"#;
    let t = explain(log, "P-180001");
    let events: Vec<(String, String)> = t
        .entries
        .iter()
        .filter_map(|e| match &e.what {
            What::Event { ty, summary, .. } => Some((ty.clone(), summary.clone())),
            What::Decision { .. } => None,
        })
        .collect();
    let want = [
        (
            "ice.removal.status",
            "ICE removal status: to VE, removal not expected in the reasonably foreseeable future",
        ),
        (
            "ice.removal.status",
            "ICE removal status: to VE, removal expected in the reasonably foreseeable future",
        ),
        (
            "ice.release.factor",
            "ICE verifies a humanitarian factor: primary caretaker of children",
        ),
        (
            "ice.release.factor",
            "ICE verifies a humanitarian factor: medical",
        ),
    ]
    .map(|(t, s)| (t.to_owned(), s.to_owned()));
    assert_eq!(events, want);
    assert!(explanations(&t).is_empty(), "{:?}", explanations(&t));
}

/// The sequester's cut (samples/README.md, "The sequester"): each person the funding
/// review moves is explained with the facts R6.1's order weighs, and with the person who
/// came next and the criterion that put this one first. P-130013 (none, removal to CU not
/// foreseeable) goes before P-130011, who was detained two days longer.
#[test]
fn a_funding_review_says_why_the_person_came_before_the_next() {
    let log = sequester();
    let lines = explanations(&explain(&log, "P-130013"));
    assert_eq!(
        lines.last().unwrap(),
        &"2013-03-01T12:00:00Z R6.1: occupancy 33,999 over 33,994 funded beds; criminal status \
          none; no humanitarian factor; removal not foreseeable (CU); detained since \
          2013-02-08T09:00:00Z; first in review order, before P-130011 (removal foreseeable \
          or unknown) → Alternatives to Detention, telephonic (capacity_review)"
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    );
    // Every tie-breaker of the order shows in the cut, one person each (who came next,
    // and by which criterion); the last, P-130021, moved by the review that a convicted
    // person's detention started on 03-05.
    for (person, next, by) in [
        ("P-130014", "P-130013", "no humanitarian factor"),
        ("P-130011", "P-130012", "detained as long: by person id"),
        ("P-130012", "P-130010", "detained since later"),
        ("P-130010", "P-130002", "charged: none comes first"),
        ("P-130002", "P-130021", "detained since later"),
        ("P-130021", "P-130022", "detained since later"),
    ] {
        let lines = explanations(&explain(&log, person));
        let last = lines.last().unwrap();
        assert!(last.contains(" R6.1: occupancy "), "{person}: {last}");
        assert!(
            last.contains(&format!("; first in review order, before {next} ({by}) → ")),
            "{person}: {last}"
        );
    }
}
