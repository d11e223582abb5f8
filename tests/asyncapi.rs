//! `schemas/asyncapi.yaml`, the AsyncAPI document agency developers generate clients and
//! documentation from, says what the code says: every schema an agency sees is referenced
//! from it (never copied), and every event type, decision type, dead-letter reason, party
//! key form and header the service sets is in it. The names come from the crate's enums
//! and constants, so one added there and forgotten here is a red build.
//!
//! The document is read as text, not parsed: these tests only look for names, in a file
//! whose layout is ours, and a YAML crate would add a dependency for that alone. Whether it
//! is valid AsyncAPI is the official parser's to say (`tools/check-contract.sh`).

use std::collections::BTreeSet;
use std::path::Path;

use handoff::edge::reason::DeadLetterReason;
use handoff::edge::schemas;
use handoff_core::model::{DecisionType, EventType, Party};

const DOC: &str = include_str!("../schemas/asyncapi.yaml");
const PATH: &str = "schemas/asyncapi.yaml";

/// The lines of the block a line opens: the lines after `header` (an exact, whole line,
/// which must occur once) that are indented deeper than it.
fn block(header: &str) -> Vec<&'static str> {
    let starts: Vec<usize> = DOC
        .lines()
        .enumerate()
        .filter(|(_, l)| *l == header)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        starts.len(),
        1,
        "{PATH}: want exactly one line {header:?}, found {}",
        starts.len()
    );
    let indent = indent_of(header);
    DOC.lines()
        .skip(starts[0] + 1)
        .take_while(|l| l.trim().is_empty() || indent_of(l) > indent)
        .collect()
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// The items of the YAML list right under `key:` (a line `key:` followed by `- item`
/// lines) inside `lines`, unquoted.
fn list_under(lines: &[&str], key: &str) -> Vec<String> {
    let start = lines
        .iter()
        .position(|l| l.trim() == format!("{key}:"))
        .unwrap_or_else(|| panic!("{PATH}: no `{key}:` list where expected"));
    lines[start + 1..]
        .iter()
        .map(|l| l.trim())
        .take_while(|l| l.starts_with("- "))
        .map(|l| l.trim_start_matches("- ").trim_matches('\'').to_owned())
        .collect()
}

/// Every relative file reference (`$ref: './events/x.json'`), as a path under `schemas/`.
fn file_refs() -> BTreeSet<String> {
    DOC.lines()
        .filter_map(|l| l.trim().strip_prefix("$ref: "))
        .map(|r| r.trim_matches('\''))
        .filter_map(|r| r.strip_prefix("./"))
        .map(str::to_owned)
        .collect()
}

/// The schemas of everything on the wire (the definitions, the envelope, every event and
/// decision) are referenced, and every file reference names a file that exists. The
/// journal's control entries are never published, so the document leaves them out.
#[test]
fn every_published_schema_is_referenced() {
    let refs = file_refs();
    for (path, _) in schemas::files() {
        if path.starts_with("journal/") {
            continue;
        }
        assert!(
            refs.contains(*path),
            "{PATH} does not reference schemas/{path}: add `$ref: './{path}'` where its messages are"
        );
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    for r in &refs {
        assert!(
            dir.join(r).is_file(),
            "{PATH} references ./{r}, which is no file under schemas/"
        );
    }
}

/// Each event type has its channel on `handoff.events` (address = routing key = the type),
/// an operation receiving it, and a message whose payload is its schema.
#[test]
fn every_event_type_has_a_channel_and_a_message() {
    for t in EventType::NAMES {
        assert!(
            DOC.lines().any(|l| l == format!("    address: {t}")),
            "{PATH}: no channel with `address: {t}` (its routing key on handoff.events)"
        );
        let message = block(&format!("    {t}:"));
        for want in [
            format!("name: {t}"),
            format!("$ref: './events/{t}.json'"),
            "contentType: application/cloudevents+json".to_owned(),
        ] {
            assert!(
                message.iter().any(|l| l.trim() == want),
                "{PATH}: the message {t} (components/messages) lacks `{want}`"
            );
        }
        assert!(
            DOC.contains(&format!("/messages/{t}'")),
            "{PATH}: no operation sends or receives {t}"
        );
    }
}

/// Each decision type has a message whose payload is its schema, and a channel on
/// `handoff.decisions` whose routing key is its (ICD section 3: `offer.ice` for
/// `handoff.offer`, ...).
#[test]
fn every_decision_type_has_a_channel_and_a_message() {
    for t in DecisionType::NAMES {
        let message = block(&format!("    {t}:"));
        for want in [
            format!("name: {t}"),
            format!("$ref: './decisions/{t}.json'"),
            format!("messageType: {t}"),
        ] {
            assert!(
                message.iter().any(|l| l.trim() == want),
                "{PATH}: the message {t} (components/messages) lacks `{want}`"
            );
        }
        let key = t
            .strip_prefix("handoff.")
            .expect("a decision type is handoff.*");
        assert!(
            DOC.lines().any(|l| l
                .trim()
                .trim_start_matches("address: ")
                .trim_matches('\'')
                .starts_with(&format!("{key}."))),
            "{PATH}: no channel whose address (routing key) starts {key}."
        );
    }
}

/// The dead-letter reasons, in the order the service checks them, both as the channel's
/// routing-key parameter and as the `x-handoff-reason` header.
#[test]
fn the_dead_letter_reasons_are_the_services() {
    let reasons: Vec<String> = DeadLetterReason::codes().map(str::to_owned).collect();
    assert_eq!(
        list_under(&block("    reason:"), "enum"),
        reasons,
        "{PATH}: components/parameters/reason"
    );
    assert_eq!(
        list_under(&block("          x-handoff-reason:"), "enum"),
        reasons,
        "{PATH}: the x-handoff-reason header of deadLetter"
    );
}

/// The `BCC` of a decision holds party keys of the three forms `Party::key` makes.
#[test]
fn the_bcc_lists_the_party_key_forms() {
    let forms = [
        Party::Ice.key(),
        Party::Bop("{facility_id}".into()).key(),
        Party::Local("{jurisdiction_id}".into()).key(),
    ];
    let lines: Vec<&str> = DOC.lines().collect();
    assert_eq!(
        list_under(&lines, "bcc"),
        forms,
        "{PATH}: the bcc of components/operationBindings/decision"
    );
}

/// Every header the service sets on what it publishes (the `*_HEADER` constants of
/// src/live/amqp.rs) is described.
#[test]
fn every_header_the_service_sets_is_described() {
    let source = include_str!("../src/live/amqp.rs");
    let headers: Vec<&str> = source
        .lines()
        .filter(|l| l.contains("_HEADER: &str = \""))
        .filter_map(|l| l.split('"').nth(1))
        .collect();
    assert!(
        headers.len() >= 6,
        "src/live/amqp.rs: found only {headers:?}; has the header constants' form changed?"
    );
    for h in headers {
        assert!(
            DOC.lines().any(|l| l.trim() == format!("{h}:")),
            "{PATH} does not describe the header {h} (src/live/amqp.rs) in a headers schema"
        );
    }
}
