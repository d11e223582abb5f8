//! The JSON Schemas of the ICD (sections 1-3, and the journal's control entries of section
//! 8), embedded in the binary and compiled once, so
//! every inbound event and outbound decision can be checked against its contract.
//!
//! The schema files live under `schemas/` in the project and are compiled into the binary with
//! `include_str!`, so validation works from any directory and never touches the network: every
//! cross-file `$ref` is resolved from an in-process registry of the same files. The validators
//! use JSON Schema draft 2020-12 with format assertions on (`date-time`, `uri-reference`).
//!
//! Validation is on the hot path, so each call first asks the compiled validator for a plain
//! yes or no, and only builds a [`SchemaError`] when the answer is no.

use std::fmt;
use std::sync::LazyLock;

use crate::journal::control::ControlType;
use handoff_core::model::{DecisionType, EventType};
use jsonschema::error::ValidationErrorKind;
use jsonschema::{Draft, PatternOptions, Registry, ValidationError, Validator};
use serde_json::Value;

/// The `$id` prefix of every schema; a schema's `$id` is this prefix plus its path under
/// `schemas/`. The `.invalid` top-level domain never resolves, and nothing is ever fetched.
const BASE_URI: &str = "https://handoff.invalid/schemas/";

/// The longest message a [`SchemaError`] carries, in characters; longer ones are cut short so
/// a huge offending value cannot blow up a log line or a dead-letter reason.
const MAX_MESSAGE_CHARS: usize = 300;

/// Pairs a schema file's path under `schemas/` with its contents, embedded at compile time.
macro_rules! schema_file {
    ($path:literal) => {
        ($path, include_str!(concat!("../../schemas/", $path)))
    };
}

/// The schema of each event type. The match is exhaustive, so a new event type does not
/// compile without a schema; `files_match_types_and_ids` checks the file is named after it.
fn event_file(t: EventType) -> (&'static str, &'static str) {
    match t {
        EventType::PolicyUpdated => schema_file!("events/jurisdiction.policy.updated.json"),
        EventType::DetainerIssued => schema_file!("events/ice.detainer.issued.json"),
        EventType::DetainerWithdrawn => schema_file!("events/ice.detainer.withdrawn.json"),
        EventType::ClaimLodged => schema_file!("events/local.claim.lodged.json"),
        EventType::BopReleaseScheduled => schema_file!("events/bop.release.scheduled.json"),
        EventType::FirstRefusalResponse => {
            schema_file!("events/ice.first_refusal.response.json")
        }
        EventType::WritIssued => schema_file!("events/court.writ.issued.json"),
        EventType::LocalReleaseDue => schema_file!("events/local.release.due.json"),
        EventType::DetainerDeclined => schema_file!("events/local.detainer.declined.json"),
        EventType::HoldExpired => schema_file!("events/hold.expired.json"),
        EventType::CustodyAssumed => schema_file!("events/ice.custody.assumed.json"),
        EventType::CapacityUpdated => schema_file!("events/ice.capacity.updated.json"),
        EventType::RemovalStatus => schema_file!("events/ice.removal.status.json"),
        EventType::ReleaseFactor => schema_file!("events/ice.release.factor.json"),
    }
}

/// The schema of each decision type, as [`event_file`] for events.
fn decision_file(t: DecisionType) -> (&'static str, &'static str) {
    match t {
        DecisionType::Offer => schema_file!("decisions/handoff.offer.json"),
        DecisionType::Transfer => schema_file!("decisions/handoff.transfer.json"),
        DecisionType::Hold => schema_file!("decisions/handoff.hold.json"),
        DecisionType::Release => schema_file!("decisions/handoff.release.json"),
        DecisionType::Placement => schema_file!("decisions/handoff.placement.json"),
    }
}

/// The schema of each journal control entry type (ICD section 8), as [`event_file`].
fn control_file(t: ControlType) -> (&'static str, &'static str) {
    match t {
        ControlType::Opened => schema_file!("journal/handoff.journal.opened.json"),
    }
}

/// Every schema file: the shared definitions, the envelope, then the event schemas in
/// [`EventType::ALL`] order, the decision schemas in [`DecisionType::ALL`] order and the
/// control entry schemas in [`ControlType::ALL`] order.
static FILES: LazyLock<Vec<(&'static str, &'static str)>> = LazyLock::new(|| {
    [schema_file!("defs.json"), schema_file!("envelope.json")]
        .into_iter()
        .chain(EventType::ALL.map(event_file))
        .chain(DecisionType::ALL.map(decision_file))
        .chain(ControlType::ALL.map(control_file))
        .collect()
});

/// Index in [`FILES`] of the envelope schema.
const ENVELOPE: usize = 1;
/// Index in [`FILES`] of the first event schema.
const FIRST_EVENT: usize = 2;
/// Index in [`FILES`] of the first decision schema.
const FIRST_DECISION: usize = FIRST_EVENT + EventType::ALL.len();
/// Index in [`FILES`] of the first control entry schema.
const FIRST_CONTROL: usize = FIRST_DECISION + DecisionType::ALL.len();

/// The schema files, as (path under schemas/, contents), for tools and docs.
pub fn files() -> &'static [(&'static str, &'static str)] {
    &FILES
}

/// Why a message failed its schema: where, which keyword, and a readable sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaError {
    /// The JSON pointer of the offending location in the message, `""` for the message itself.
    pub path: String,
    /// The JSON Schema keyword that failed, e.g. `pattern`, `required` or `false` (a `false`
    /// schema: the field must be absent).
    pub keyword: String,
    /// A readable sentence saying what is wrong.
    pub message: String,
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "/"
        } else {
            &self.path
        };
        write!(f, "{path}: {} ({})", self.message, self.keyword)
    }
}

impl std::error::Error for SchemaError {}

/// The compiled validators, built once on first use.
struct Compiled {
    /// The envelope alone, used to explain messages whose `type` cannot be dispatched on.
    envelope: Validator,
    /// One validator per event type, in [`EventType::ALL`] order.
    events: Vec<Validator>,
    /// One validator per decision type, in [`DecisionType::ALL`] order.
    decisions: Vec<Validator>,
    /// One validator per control entry type, in [`ControlType::ALL`] order.
    controls: Vec<Validator>,
}

static COMPILED: LazyLock<Compiled> = LazyLock::new(compile_all);

/// Parses every embedded schema, registers all of them under their `$id`s and compiles the
/// envelope, event and decision validators against that registry.
///
/// # Panics
///
/// Panics if an embedded schema is not valid JSON or does not compile; the unit tests make
/// sure neither can happen in a build that passed them.
fn compile_all() -> Compiled {
    let documents: Vec<Value> = FILES
        .iter()
        .map(|(path, text)| {
            serde_json::from_str(text)
                .unwrap_or_else(|e| panic!("embedded schema {path} is not valid JSON: {e}"))
        })
        .collect();
    let registry = Registry::new()
        .draft(Draft::Draft202012)
        .extend(
            FILES
                .iter()
                .zip(&documents)
                .map(|((path, _), doc)| (format!("{BASE_URI}{path}"), doc)),
        )
        .and_then(|builder| builder.prepare())
        .unwrap_or_else(|e| panic!("the embedded schemas do not form a registry: {e}"));
    let compile = |index: usize| -> Validator {
        jsonschema::options()
            .with_draft(Draft::Draft202012)
            .with_registry(&registry)
            .offline()
            .should_validate_formats(true)
            .with_pattern_options(PatternOptions::regex())
            .build(&documents[index])
            .unwrap_or_else(|e| panic!("embedded schema {} does not compile: {e}", FILES[index].0))
    };
    Compiled {
        envelope: compile(ENVELOPE),
        events: (FIRST_EVENT..FIRST_DECISION).map(compile).collect(),
        decisions: (FIRST_DECISION..FIRST_CONTROL).map(compile).collect(),
        controls: (FIRST_CONTROL..FILES.len()).map(compile).collect(),
    }
}

/// Validates an inbound event; returns its type.
pub fn validate_event(msg: &Value) -> Result<EventType, SchemaError> {
    let compiled = &*COMPILED;
    let ty = message_type(compiled, msg)?;
    let t = EventType::parse(ty).ok_or_else(|| unknown_type("event type", ty))?;
    check(&compiled.events[t as usize], msg).map(|()| t)
}

/// Validates an outbound decision; returns its type.
pub fn validate_decision(msg: &Value) -> Result<DecisionType, SchemaError> {
    let compiled = &*COMPILED;
    let ty = message_type(compiled, msg)?;
    let t = DecisionType::parse(ty).ok_or_else(|| unknown_type("decision type", ty))?;
    check(&compiled.decisions[t as usize], msg).map(|()| t)
}

/// Validates a journal control entry (ICD section 8); returns its type.
pub fn validate_control(msg: &Value) -> Result<ControlType, SchemaError> {
    let compiled = &*COMPILED;
    let ty = message_type(compiled, msg)?;
    let t = ControlType::parse(ty).ok_or_else(|| unknown_type("journal control type", ty))?;
    check(&compiled.controls[t as usize], msg).map(|()| t)
}

/// Validates any kind (event, decision, journal control entry), dispatching on `type`;
/// returns the type's name.
pub fn validate_any(msg: &Value) -> Result<&'static str, SchemaError> {
    let compiled = &*COMPILED;
    let ty = message_type(compiled, msg)?;
    if let Some(t) = EventType::parse(ty) {
        return check(&compiled.events[t as usize], msg).map(|()| t.as_str());
    }
    if let Some(t) = DecisionType::parse(ty) {
        return check(&compiled.decisions[t as usize], msg).map(|()| t.as_str());
    }
    if let Some(t) = ControlType::parse(ty) {
        return check(&compiled.controls[t as usize], msg).map(|()| t.as_str());
    }
    Err(unknown_type("type", ty))
}

/// Returns the message's `type` string, or, when there is none to dispatch on (the message is
/// not an object, or `type` is missing or not a string), the envelope's explanation of why.
fn message_type<'m>(compiled: &Compiled, msg: &'m Value) -> Result<&'m str, SchemaError> {
    if let Some(ty) = msg.get("type").and_then(Value::as_str) {
        return Ok(ty);
    }
    check(&compiled.envelope, msg)?;
    // Unreachable with the envelope schema as written (it requires a string `type`), but a
    // message without a type must never pass.
    Err(SchemaError {
        path: "/type".to_owned(),
        keyword: "type".to_owned(),
        message: "the message has no string `type`".to_owned(),
    })
}

/// The error for a `type` string that names no schema of the kind asked for.
fn unknown_type(what: &str, ty: &str) -> SchemaError {
    SchemaError {
        path: "/type".to_owned(),
        keyword: "enum".to_owned(),
        message: tidy(format!("unknown {what} {}", Value::from(ty))),
    }
}

/// Checks `msg` against `validator`: the fast yes/no first, the explanation only on failure.
fn check(validator: &Validator, msg: &Value) -> Result<(), SchemaError> {
    if validator.is_valid(msg) {
        return Ok(());
    }
    Err(explain(validator, msg))
}

/// Picks the error to report among those the validator finds, and describes it.
///
/// The choice is the first error in `iter_errors` order (which follows the compiled schema, so
/// it is deterministic), except that `unevaluatedProperties` errors are only reported when
/// nothing else failed: when a subschema fails, its properties count as unevaluated, so such an
/// error is often a consequence of the real one rather than a reason of its own.
fn explain(validator: &Validator, msg: &Value) -> SchemaError {
    let mut first_unevaluated: Option<SchemaError> = None;
    for error in validator.iter_errors(msg) {
        if matches!(
            error.kind(),
            ValidationErrorKind::UnevaluatedProperties { .. }
        ) {
            first_unevaluated.get_or_insert_with(|| describe(&error));
        } else {
            return describe(&error);
        }
    }
    first_unevaluated.unwrap_or_else(|| SchemaError {
        path: String::new(),
        keyword: "schema".to_owned(),
        message: "the message does not match its schema".to_owned(),
    })
}

/// Converts a jsonschema error into a [`SchemaError`].
fn describe(error: &ValidationError<'_>) -> SchemaError {
    let (keyword, message) = match error.kind() {
        // A `false` schema marks a field that must be absent; say so in plain words.
        ValidationErrorKind::FalseSchema => (
            "false",
            format!("the field is not allowed here (found {})", error.instance()),
        ),
        kind => (kind.keyword(), error.to_string()),
    };
    SchemaError {
        path: error.instance_path().as_str().to_owned(),
        keyword: keyword.to_owned(),
        message: tidy(message),
    }
}

/// Escapes what could hide or break a line, then cuts to length: a message quotes the
/// offending value, and that value must show as what it is in a log, a terminal or a
/// dead-letter header.
fn tidy(message: String) -> String {
    truncate(escape_invisible(&message))
}

/// Writes controls, line and paragraph separators, bidirectional overrides, zero-width and
/// other invisible characters as Rust escapes (`\u{202e}`); quotes and backslashes, which
/// the message already escapes as JSON does, are left alone.
fn escape_invisible(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for c in message.chars() {
        match c {
            '"' | '\'' | '\\' => out.push(c),
            c => out.extend(c.escape_debug()),
        }
    }
    out
}

/// Cuts `message` to [`MAX_MESSAGE_CHARS`] characters, marking the cut with an ellipsis.
/// The cut is in the middle: a message quotes the offending value first and says what is
/// wrong with it last, so a huge value must not push the explanation out.
fn truncate(message: String) -> String {
    let chars = message.chars().count();
    if chars <= MAX_MESSAGE_CHARS {
        return message;
    }
    let head = MAX_MESSAGE_CHARS / 2;
    let tail = MAX_MESSAGE_CHARS - head;
    let mut out: String = message.chars().take(head).collect();
    out.push('…');
    out.extend(message.chars().skip(chars - tail));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn detainer() -> Value {
        json!({
            "specversion": "1.0",
            "id": "evt-1",
            "source": "urn:agency:ice:eagle",
            "type": "ice.detainer.issued",
            "time": "2017-01-28T09:00:00Z",
            "subject": "P-100234",
            "datacontenttype": "application/json",
            "data": {
                "detainer_id": "DET-1",
                "person_id": "P-100234",
                "custodian": {"kind": "local", "id": "tx-travis-county"},
                "criminal_status": "charged",
                "offenses": ["burglary"]
            }
        })
    }

    #[test]
    fn every_schema_compiles() {
        let compiled = &*COMPILED;
        assert_eq!(compiled.events.len(), EventType::ALL.len());
        assert_eq!(compiled.decisions.len(), DecisionType::ALL.len());
        assert_eq!(compiled.controls.len(), ControlType::ALL.len());
    }

    #[test]
    fn files_match_types_and_ids() {
        for t in EventType::ALL {
            assert_eq!(
                FILES[FIRST_EVENT + t as usize].0,
                format!("events/{t}.json")
            );
        }
        for t in DecisionType::ALL {
            assert_eq!(
                FILES[FIRST_DECISION + t as usize].0,
                format!("decisions/{t}.json")
            );
        }
        for t in ControlType::ALL {
            assert_eq!(
                FILES[FIRST_CONTROL + t as usize].0,
                format!("journal/{t}.json")
            );
        }
        // Nothing under schemas/ that is not embedded, and nothing embedded that is not there.
        let on_disk: std::collections::BTreeSet<String> = ["events", "decisions", "journal"]
            .iter()
            .flat_map(|dir| {
                let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("schemas")
                    .join(dir);
                std::fs::read_dir(path)
                    .unwrap()
                    .map(move |e| format!("{dir}/{}", e.unwrap().file_name().to_string_lossy()))
            })
            .collect();
        let embedded: std::collections::BTreeSet<String> = FILES[FIRST_EVENT..]
            .iter()
            .map(|(p, _)| p.to_string())
            .collect();
        assert_eq!(on_disk, embedded);
        for (path, text) in files() {
            let doc: Value = serde_json::from_str(text).unwrap();
            assert_eq!(doc["$id"], format!("{BASE_URI}{path}"), "{path}");
            assert_eq!(
                doc["$schema"],
                "https://json-schema.org/draft/2020-12/schema"
            );
            assert!(
                doc["title"].is_string() && doc["description"].is_string(),
                "{path}"
            );
        }
    }

    #[test]
    fn valid_event_passes() {
        assert_eq!(validate_event(&detainer()), Ok(EventType::DetainerIssued));
        assert_eq!(validate_any(&detainer()), Ok("ice.detainer.issued"));
    }

    #[test]
    fn bad_person_id_is_a_pattern_error() {
        let mut msg = detainer();
        msg["data"]["person_id"] = json!("p-100234");
        let err = validate_event(&msg).unwrap_err();
        assert_eq!(
            (err.path.as_str(), err.keyword.as_str()),
            ("/data/person_id", "pattern")
        );
        assert!(
            err.to_string()
                .starts_with("/data/person_id: \"p-100234\" does not match")
        );
        assert!(err.to_string().ends_with("(pattern)"));
    }

    #[test]
    fn offsetless_time_is_a_format_error() {
        let mut msg = detainer();
        msg["time"] = json!("2017-01-28T09:00:00");
        let err = validate_event(&msg).unwrap_err();
        assert_eq!(
            (err.path.as_str(), err.keyword.as_str()),
            ("/time", "format")
        );
    }

    #[test]
    fn dispatch_errors() {
        let err = validate_event(&json!([1])).unwrap_err();
        assert_eq!((err.path.as_str(), err.keyword.as_str()), ("", "type"));
        assert_eq!(err.to_string(), format!("/: {} (type)", err.message));

        let mut msg = detainer();
        msg.as_object_mut().unwrap().remove("type");
        let err = validate_event(&msg).unwrap_err();
        assert_eq!((err.path.as_str(), err.keyword.as_str()), ("", "required"));

        msg["type"] = json!(7);
        let err = validate_any(&msg).unwrap_err();
        assert_eq!((err.path.as_str(), err.keyword.as_str()), ("/type", "type"));

        msg["type"] = json!("handoff.offer");
        let err = validate_event(&msg).unwrap_err();
        assert_eq!((err.path.as_str(), err.keyword.as_str()), ("/type", "enum"));
        assert_eq!(err.message, "unknown event type \"handoff.offer\"");

        msg["type"] = json!("ice.detainer.issued");
        let err = validate_decision(&msg).unwrap_err();
        assert_eq!(err.message, "unknown decision type \"ice.detainer.issued\"");
    }

    #[test]
    fn decisions_validate() {
        let placement = json!({
            "specversion": "1.0",
            "id": "4f7c1f8e-7d0b-5c55-9a1e-3b2f6d1a9c10",
            "source": "urn:handoff",
            "type": "handoff.placement",
            "time": "2017-01-28T09:00:00Z",
            "subject": "P-100234",
            "datacontenttype": "application/json",
            "data": {
                "person_id": "P-100234",
                "rule": "R4.2",
                "caused_by": "evt-9",
                "placement": "atd",
                "monitoring": "telephonic",
                "basis": "capacity"
            }
        });
        assert_eq!(validate_decision(&placement), Ok(DecisionType::Placement));
        let mut bad = placement.clone();
        bad["data"]["extra"] = json!(1);
        let err = validate_decision(&bad).unwrap_err();
        assert_eq!(
            (err.path.as_str(), err.keyword.as_str()),
            ("/data", "unevaluatedProperties")
        );
        let mut bad = placement;
        bad["data"]["placement"] = json!("detain");
        let err = validate_any(&bad).unwrap_err();
        assert_eq!(
            (err.path.as_str(), err.keyword.as_str()),
            ("/data/monitoring", "false")
        );
    }

    #[test]
    fn long_messages_are_truncated() {
        let long = truncate("x".repeat(1000));
        assert_eq!(long.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert_eq!(truncate("short".to_owned()), "short");
        // The explanation at the end survives a huge value at the start.
        let long = truncate(format!(
            "\"{}\" is longer than 128 characters",
            "x".repeat(1000)
        ));
        assert!(long.starts_with("\"xxx"), "{long}");
        assert!(long.contains('…') && long.ends_with("is longer than 128 characters"));
    }
}
