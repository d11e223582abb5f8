//! Checks the schema examples under `schemas/examples` against the embedded validators: every
//! valid example passes as the type its file is named after, and every invalid example fails
//! at exactly the location and with exactly the keyword its `expect` names.

use std::fs;
use std::path::{Path, PathBuf};

use handoff::edge::schemas::{self, SchemaError};
use handoff::journal::control::ControlType;
use handoff_core::model::{DecisionType, EventType};

const EVENT_TYPES: [&str; EventType::ALL.len()] = EventType::NAMES;
const DECISION_TYPES: [&str; DecisionType::ALL.len()] = DecisionType::NAMES;
const CONTROL_TYPES: [&str; ControlType::ALL.len()] = ControlType::NAMES;
use serde_json::{Value, json};

/// The directory holding the `valid` and `invalid` example folders.
fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/examples")
}

/// Every message type: events, decisions, then the journal's control entries.
fn all_types() -> impl Iterator<Item = &'static str> {
    EVENT_TYPES
        .iter()
        .chain(DECISION_TYPES.iter())
        .chain(CONTROL_TYPES.iter())
        .copied()
}

/// The folder under `schemas/` of a type's schema.
fn kind_of(ty: &str) -> &'static str {
    if EVENT_TYPES.contains(&ty) {
        "events"
    } else if DECISION_TYPES.contains(&ty) {
        "decisions"
    } else {
        assert!(CONTROL_TYPES.contains(&ty), "{ty} is no message type");
        "journal"
    }
}

/// The non-blank lines of an example file, each with its 1-based line number, parsed as JSON.
fn read_lines(path: &Path) -> Vec<(usize, Value)> {
    let text =
        fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: cannot read: {e}", path.display()));
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            let value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}:{}: not JSON: {e}", path.display(), i + 1));
            (i + 1, value)
        })
        .collect()
}

/// The `.jsonl` files of one examples folder, sorted by name.
fn jsonl_files(kind: &str) -> Vec<PathBuf> {
    let dir = examples_dir().join(kind);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: cannot list: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "jsonl"))
        .collect();
    files.sort();
    files
}

/// The message type an example file is named after (`ice.detainer.issued.jsonl`).
fn type_of_file(path: &Path) -> String {
    let name = path.file_name().unwrap().to_string_lossy();
    name.strip_suffix(".jsonl").unwrap().to_owned()
}

#[test]
fn every_type_has_enough_examples() {
    for ty in all_types() {
        let valid = examples_dir().join("valid").join(format!("{ty}.jsonl"));
        let invalid = examples_dir().join("invalid").join(format!("{ty}.jsonl"));
        assert!(valid.is_file(), "{} is missing", valid.display());
        assert!(invalid.is_file(), "{} is missing", invalid.display());
        let n = read_lines(&valid).len();
        assert!(
            n >= 2,
            "{}: {n} valid examples, want at least 2",
            valid.display()
        );
        let n = read_lines(&invalid).len();
        assert!(
            n >= 3,
            "{}: {n} invalid examples, want at least 3",
            invalid.display()
        );
    }
    for kind in ["valid", "invalid"] {
        for path in jsonl_files(kind) {
            let ty = type_of_file(&path);
            assert!(
                all_types().any(|t| t == ty),
                "{}: not named after a message type",
                path.display()
            );
        }
    }
}

#[test]
fn valid_examples_pass() {
    for path in jsonl_files("valid") {
        let ty = type_of_file(&path);
        for (line, msg) in read_lines(&path) {
            match schemas::validate_any(&msg) {
                Ok(got) => assert_eq!(got, ty, "{}:{line}: validated as {got}", path.display()),
                Err(e) => panic!("{}:{line}: rejected: {e}", path.display()),
            }
            let by_kind = match kind_of(&ty) {
                "events" => schemas::validate_event(&msg).map(|t| t.as_str()),
                "decisions" => schemas::validate_decision(&msg).map(|t| t.as_str()),
                _ => schemas::validate_control(&msg).map(|t| t.as_str()),
            };
            assert_eq!(by_kind, Ok(ty.as_str()), "{}:{line}", path.display());
        }
    }
}

#[test]
fn invalid_examples_fail_for_the_expected_reason() {
    for path in jsonl_files("invalid") {
        let ty = type_of_file(&path);
        for (line, example) in read_lines(&path) {
            let at = format!("{}:{line}", path.display());
            let want_path = example["expect"]["path"]
                .as_str()
                .unwrap_or_else(|| panic!("{at}: expect.path is not a string"));
            let want_keyword = example["expect"]["keyword"]
                .as_str()
                .unwrap_or_else(|| panic!("{at}: expect.keyword is not a string"));
            let msg = &example["message"];
            assert_eq!(
                msg["type"], ty,
                "{at}: the message is not of the file's type"
            );
            let err: SchemaError = match schemas::validate_any(msg) {
                Ok(got) => panic!("{at}: accepted as {got}, want {want_keyword} at {want_path:?}"),
                Err(e) => e,
            };
            assert_eq!(
                (err.path.as_str(), err.keyword.as_str()),
                (want_path, want_keyword),
                "{at}: got {err}"
            );
            assert!(!err.message.is_empty(), "{at}: empty message");
        }
    }
}

#[test]
fn unknown_data_fields_are_rejected_for_every_event_type() {
    for ty in EVENT_TYPES {
        let path = examples_dir().join("valid").join(format!("{ty}.jsonl"));
        let (line, mut msg) = read_lines(&path).into_iter().next().expect("an example");
        msg["data"]["extra"] = json!(1);
        let err = schemas::validate_event(&msg).expect_err(&format!(
            "{}:{line}: accepted with data.extra",
            path.display()
        ));
        assert_eq!(
            (err.path.as_str(), err.keyword.as_str()),
            ("/data", "additionalProperties"),
            "{}:{line}: got {err}",
            path.display()
        );
    }
}

#[test]
fn unknown_data_fields_are_rejected_for_every_control_type() {
    for ty in CONTROL_TYPES {
        let path = examples_dir().join("valid").join(format!("{ty}.jsonl"));
        let (line, mut msg) = read_lines(&path).into_iter().next().expect("an example");
        msg["data"]["extra"] = json!(1);
        let err = schemas::validate_control(&msg).expect_err(&format!(
            "{}:{line}: accepted with data.extra",
            path.display()
        ));
        assert_eq!(
            (err.path.as_str(), err.keyword.as_str()),
            ("/data", "additionalProperties"),
            "{}:{line}: got {err}",
            path.display()
        );
    }
}

/// A `type` under `handoff.journal.` that names no control type is refused as an unknown
/// type, by the schemas and by the reader of journal lines alike: never skipped as a
/// control entry, never read as an event.
#[test]
fn an_unknown_control_type_is_an_unknown_type() {
    let path = examples_dir().join("valid/handoff.journal.opened.jsonl");
    let (_, mut msg) = read_lines(&path).into_iter().next().expect("an example");
    msg["type"] = json!("handoff.journal.closed");
    let err = schemas::validate_any(&msg).unwrap_err();
    assert_eq!((err.path.as_str(), err.keyword.as_str()), ("/type", "enum"));
    let err = schemas::validate_control(&msg).unwrap_err();
    assert_eq!(
        err.message,
        "unknown journal control type \"handoff.journal.closed\""
    );
    let line = serde_json::to_string(&msg).unwrap();
    let err = handoff::edge::envelope::parse_entry(&line).unwrap_err();
    assert_eq!(err.code().as_str(), "unknown_type", "{err}");
    // And a control entry is no event: the live service refuses it as unknown_type.
    let (_, opened) = read_lines(&path).into_iter().next().unwrap();
    let err = handoff::edge::envelope::event_from_value(&opened).unwrap_err();
    assert_eq!(err.code().as_str(), "unknown_type", "{err}");
}

#[test]
fn unknown_data_fields_are_rejected_for_every_decision_type() {
    for ty in DECISION_TYPES {
        let path = examples_dir().join("valid").join(format!("{ty}.jsonl"));
        let (line, mut msg) = read_lines(&path).into_iter().next().expect("an example");
        msg["data"]["extra"] = json!(1);
        let err = schemas::validate_decision(&msg).expect_err(&format!(
            "{}:{line}: accepted with data.extra",
            path.display()
        ));
        assert_eq!(
            (err.path.as_str(), err.keyword.as_str()),
            ("/data", "unevaluatedProperties"),
            "{}:{line}: got {err}",
            path.display()
        );
    }
}

/// Each invalid example must be invalid for one reason only: compiling the same embedded
/// schemas here and listing every error, all of them name the expected location and keyword,
/// apart from `unevaluatedProperties` errors that only follow from the real one.
#[test]
fn invalid_examples_have_a_single_reason() {
    let documents: Vec<(String, Value)> = schemas::files()
        .iter()
        .map(|(path, text)| {
            let uri = format!("https://handoff.invalid/schemas/{path}");
            (uri, serde_json::from_str(text).expect("schema JSON"))
        })
        .collect();
    let registry = jsonschema::Registry::new()
        .extend(documents.iter().map(|(uri, doc)| (uri.as_str(), doc)))
        .and_then(|builder| builder.prepare())
        .expect("registry");
    for path in jsonl_files("invalid") {
        let ty = type_of_file(&path);
        let kind = kind_of(&ty);
        let uri = format!("https://handoff.invalid/schemas/{kind}/{ty}.json");
        let schema = &documents.iter().find(|(u, _)| *u == uri).expect("schema").1;
        let validator = jsonschema::options()
            .with_registry(&registry)
            .offline()
            .should_validate_formats(true)
            .build(schema)
            .expect("schema compiles");
        for (line, example) in read_lines(&path) {
            let want = (
                example["expect"]["path"].as_str().unwrap().to_owned(),
                example["expect"]["keyword"].as_str().unwrap().to_owned(),
            );
            let mut found = Vec::new();
            for error in validator.iter_errors(&example["message"]) {
                let keyword = match error.kind().keyword() {
                    "falseSchema" => "false",
                    k => k,
                }
                .to_owned();
                found.push((error.instance_path().as_str().to_owned(), keyword));
            }
            let reasons: Vec<_> = found
                .iter()
                .filter(|(_, k)| k != "unevaluatedProperties" || want.1 == "unevaluatedProperties")
                .collect();
            assert!(
                !reasons.is_empty() && reasons.iter().all(|r| **r == want),
                "{}:{line}: want only {want:?}, found {found:?}",
                path.display()
            );
        }
    }
}
