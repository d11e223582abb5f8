//! Each name once: the enums of `handoff_core::model` are the only place a wire name is
//! written, and every other list (the schema files' enumerations, the schema table, the
//! topology in `deploy/`) must say exactly the same. These tests are what make a name
//! added in one place and forgotten in another a red build.

use handoff::edge::reason::DeadLetterReason;
use handoff::edge::schemas;
use handoff::journal::control::ControlType;
use handoff_core::model::{
    Answer, Basis, Condition, CriminalStatus, CustodianKind, DecisionType, EventType, Factor,
    Monitoring, Placement, Rule, WritKind,
};
use serde_json::Value;

fn schema(path: &str) -> Value {
    let text = schemas::files()
        .iter()
        .find(|(p, _)| *p == path)
        .unwrap_or_else(|| panic!("no embedded schema {path}"))
        .1;
    serde_json::from_str(text).unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

fn names(n: &[&str]) -> Vec<String> {
    n.iter().map(|s| s.to_string()).collect()
}

/// Each schema enumeration, in the schema's own order, equals the enum's `NAMES`.
#[test]
fn schema_enumerations_are_the_enums() {
    let defs = schema("defs.json");
    let d = &defs["$defs"];
    let cases: [(&str, Vec<String>, &[&str]); 8] = [
        (
            "criminal_status",
            strings(&d["criminal_status"]["enum"]),
            &CriminalStatus::NAMES,
        ),
        ("basis", strings(&d["basis"]["enum"]), &Basis::NAMES),
        (
            "condition",
            strings(&d["condition"]["enum"]),
            &Condition::NAMES,
        ),
        (
            "decision (first refusal)",
            strings(
                &schema("events/ice.first_refusal.response.json")["properties"]["data"]["properties"]
                    ["decision"]["enum"],
            ),
            &Answer::NAMES,
        ),
        (
            "writ kind",
            strings(
                &schema("events/court.writ.issued.json")["properties"]["data"]["properties"]["kind"]
                    ["enum"],
            ),
            &WritKind::NAMES,
        ),
        (
            "humanitarian factor",
            strings(
                &schema("events/ice.release.factor.json")["properties"]["data"]["properties"]["factor"]
                    ["enum"],
            ),
            &Factor::NAMES,
        ),
        (
            "placement",
            strings(
                &schema("decisions/handoff.placement.json")["properties"]["data"]["properties"]["placement"]
                    ["enum"],
            ),
            &Placement::NAMES,
        ),
        (
            "monitoring",
            strings(
                &schema("decisions/handoff.placement.json")["properties"]["data"]["properties"]["monitoring"]
                    ["enum"],
            ),
            &Monitoring::NAMES,
        ),
    ];
    for (what, in_schema, in_code) in cases {
        assert_eq!(in_schema, names(in_code), "{what}");
    }
    // The custodian kinds: the enumeration, and one `if kind = …` alternative for each.
    let custodian = &d["custodian"];
    assert_eq!(
        strings(&custodian["properties"]["kind"]["enum"]),
        names(&CustodianKind::NAMES)
    );
    let alternatives: Vec<String> = custodian["allOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|alt| {
            alt["if"]["properties"]["kind"]["const"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(alternatives, names(&CustodianKind::NAMES));
}

/// The schema table holds one schema per type, named after it, and each schema says its
/// own type.
#[test]
fn the_schema_lists_every_rule_and_nothing_else() {
    let defs = schema("defs.json");
    let rules: Vec<&str> = Rule::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(strings(&defs["$defs"]["rule"]["enum"]), names(&rules));
}

#[test]
fn one_schema_per_type_named_after_it() {
    let paths: Vec<&str> = schemas::files().iter().map(|(p, _)| *p).collect();
    let expected: Vec<String> = ["defs.json".to_owned(), "envelope.json".to_owned()]
        .into_iter()
        .chain(EventType::ALL.iter().map(|t| format!("events/{t}.json")))
        .chain(
            DecisionType::ALL
                .iter()
                .map(|t| format!("decisions/{t}.json")),
        )
        .chain(ControlType::ALL.iter().map(|t| format!("journal/{t}.json")))
        .collect();
    assert_eq!(paths, expected);
    for t in EventType::NAMES {
        let s = schema(&format!("events/{t}.json"));
        assert_eq!(s["properties"]["type"]["const"], t, "events/{t}.json");
    }
    for t in DecisionType::NAMES {
        let s = schema(&format!("decisions/{t}.json"));
        assert_eq!(s["properties"]["type"]["const"], t, "decisions/{t}.json");
    }
    for t in ControlType::NAMES {
        let s = schema(&format!("journal/{t}.json"));
        assert_eq!(s["properties"]["type"]["const"], t, "journal/{t}.json");
        assert_eq!(
            s["properties"]["source"]["const"], "urn:handoff",
            "journal/{t}.json"
        );
    }
}

/// `parse` is the inverse of `as_str`, and nothing else parses: an unknown value is never
/// read as a known one.
#[test]
fn parse_inverts_as_str_and_nothing_else() {
    for t in EventType::ALL {
        assert_eq!(EventType::parse(t.as_str()), Some(t));
    }
    for t in DecisionType::ALL {
        assert_eq!(DecisionType::parse(t.as_str()), Some(t));
    }
    for t in ControlType::ALL {
        assert_eq!(ControlType::parse(t.as_str()), Some(t));
    }
    for s in [
        "",
        "acept",
        "ACCEPT",
        "accept ",
        "ice.detainer",
        "handoff.offer.x",
    ] {
        assert_eq!(Answer::parse(s), None, "{s:?}");
        assert_eq!(EventType::parse(s), None, "{s:?}");
        assert_eq!(DecisionType::parse(s), None, "{s:?}");
        assert_eq!(ControlType::parse(s), None, "{s:?}");
    }
    for s in [
        "handoff.journal",
        "handoff.journal.",
        "handoff.journal.opened.x",
    ] {
        assert_eq!(ControlType::parse(s), None, "{s:?}");
    }
}

/// The dead-letter reasons the operators' guide lists are the service's, in ICD order.
#[test]
fn the_deploy_guide_lists_the_dead_letter_reasons() {
    let guide = include_str!("../deploy/README.md");
    let start = guide
        .find("routing key = reason (")
        .expect("deploy/README.md lists the dead-letter reasons");
    let list = &guide[start + "routing key = reason (".len()..];
    let list = &list[..list.find(')').unwrap()];
    let listed: Vec<&str> = list.split(", ").map(|r| r.trim_matches('`')).collect();
    let reasons: Vec<&str> = DeadLetterReason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(listed, reasons);
}
