//! Inbound messages at the edge: bytes → JSON → schema check → a validated [`Event`].
//!
//! This is the only place that reads inbound JSON. After the schema has passed, the
//! typed fields are read out once; the engine never sees a `serde_json::Value`.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::edge::reason::DeadLetterReason;
use crate::edge::schemas::{self, SchemaError};
use crate::journal::control::{Control, ControlType, Entry, Opened};
use handoff_core::model::{
    Answer, CriminalStatus, Custodian, CustodianKind, Event, EventBody, EventType, Factor, Time,
    WritKind,
};

/// Why a message is not a valid event. The `code` of each variant is what the service
/// puts in the dead-letter reason; the `Display` text is the specific explanation.
/// Neither ever quotes a person id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("not UTF-8: invalid byte sequence at byte {0}")]
    NotUtf8(usize),
    #[error("arrays and objects nested deeper than {limit} levels (at byte {at})")]
    TooDeep { limit: usize, at: usize },
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("{0}")]
    Schema(SchemaError),
    #[error("/subject: must equal data.person_id")]
    SubjectMismatch,
    #[error("{field}: {reason}")]
    BadField { field: &'static str, reason: String },
}

impl Invalid {
    /// A short, stable reason code: `not_utf8`, `too_deep`, `not_json`, `unknown_type`,
    /// `schema`, `subject_mismatch`, `bad_field`.
    pub fn code(&self) -> DeadLetterReason {
        match self {
            Invalid::NotUtf8(_) => DeadLetterReason::NotUtf8,
            Invalid::TooDeep { .. } => DeadLetterReason::TooDeep,
            Invalid::NotJson(_) => DeadLetterReason::NotJson,
            Invalid::Schema(e) if e.path == "/type" && e.keyword == "enum" => {
                DeadLetterReason::UnknownType
            }
            Invalid::Schema(_) => DeadLetterReason::Schema,
            Invalid::SubjectMismatch => DeadLetterReason::SubjectMismatch,
            Invalid::BadField { .. } => DeadLetterReason::BadField,
        }
    }
}

impl From<SchemaError> for Invalid {
    fn from(e: SchemaError) -> Self {
        Invalid::Schema(e)
    }
}

/// The deepest nesting of arrays and objects a message may have. An event is three levels
/// deep (the envelope, `data`, then a custodian or a list of texts), so anything past this
/// is refused before it is parsed, with its own reason, rather than reaching serde_json's
/// recursion limit (128) as a vague parse error.
pub(crate) const MAX_DEPTH: usize = 16;

/// Parses and validates one message given as raw bytes (one JSON-lines line, or an AMQP
/// body).
pub fn parse_event_bytes(bytes: &[u8]) -> Result<Event, Invalid> {
    event_from_value(&parse_json(bytes)?)
}

/// Parses and validates one message given as text.
pub fn parse_event(text: &str) -> Result<Event, Invalid> {
    event_from_value(&parse_json_text(text)?)
}

/// Parses and validates one journal or log line given as raw bytes: an event, or one of
/// the journal's control entries (a `type` under `handoff.journal.`, ICD section 8). The
/// live service never reads inbound messages this way: a control type is no event type, so
/// an agency that sends one is refused as `unknown_type`.
pub fn parse_entry_bytes(bytes: &[u8]) -> Result<Entry, Invalid> {
    entry_from_value(&parse_json(bytes)?)
}

/// [`parse_entry_bytes`] for text.
pub fn parse_entry(text: &str) -> Result<Entry, Invalid> {
    entry_from_value(&parse_json_text(text)?)
}

/// A parsed line as an event or a control entry. A `type` under `handoff.journal.` is
/// read as a control entry and nothing else: an unknown one is `unknown_type`, never
/// skipped, and one that fails its schema is `schema`.
pub fn entry_from_value(value: &Value) -> Result<Entry, Invalid> {
    match value.get("type").and_then(Value::as_str) {
        Some(ty) if ControlType::is_control(ty) => control_from_value(value).map(Entry::Control),
        _ => event_from_value(value).map(Entry::Event),
    }
}

/// Validates a control entry against its schema and reads it.
fn control_from_value(value: &Value) -> Result<Control, Invalid> {
    let ty = schemas::validate_control(value)?;
    let data = &value["data"];
    Ok(match ty {
        ControlType::Opened => Control::Opened(Opened {
            id: text(value, "id")?,
            time: time(value, "time")?,
            rules: u32::try_from(count(data, "rules")?).map_err(|_| missing("rules"))?,
            writer: text(data, "writer")?,
            epoch: match data.get("epoch") {
                Some(_) => Some(count(data, "epoch")?),
                None => None,
            },
        }),
    })
}

/// Bytes → JSON value: UTF-8, then the nesting depth, then JSON. Every reader of inbound
/// messages (replay, the live service, `validate`) goes through here, so they refuse the
/// same messages for the same reasons.
pub(crate) fn parse_json(bytes: &[u8]) -> Result<Value, Invalid> {
    let text = std::str::from_utf8(bytes).map_err(|e| Invalid::NotUtf8(e.valid_up_to()))?;
    parse_json_text(text)
}

/// Text → JSON value: the nesting depth, then JSON.
pub(crate) fn parse_json_text(text: &str) -> Result<Value, Invalid> {
    if let Some(at) = too_deep(text.as_bytes(), MAX_DEPTH) {
        return Err(Invalid::TooDeep {
            limit: MAX_DEPTH,
            at,
        });
    }
    serde_json::from_str(text).map_err(|e| Invalid::NotJson(e.to_string()))
}

/// The byte offset of the first `[` or `{` (outside strings) that opens level `limit + 1`,
/// if any. One pass, no allocation; malformed JSON is left for the parser to describe.
/// Most of a line is string contents, so a string is crossed with a SIMD search for its
/// closing quote or an escape, not byte by byte (this check was 8% of replay's
/// instructions when it went byte by byte).
fn too_deep(bytes: &[u8], limit: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                // To just past the closing quote; an escape skips the byte after it. A
                // string left open has no brackets after it.
                i += 1;
                loop {
                    let at = i + memchr::memchr2(b'"', b'\\', bytes.get(i..)?)?;
                    if bytes[at] == b'"' {
                        i = at + 1;
                        break;
                    }
                    i = at + 2;
                }
                continue;
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return Some(i);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
}

/// A message as the live service receives it at `received`: parsed, its `handoffcrc` (only
/// handoff checksums journal entries) dropped and its `handoffreceived` (only handoff
/// stamps receipt) set, then decoded. Returns the JSON value the journal stores and the
/// event the engine sees.
pub fn received(bytes: &[u8], received: Time) -> Result<(Value, Event), Invalid> {
    let mut value = parse_json(bytes)?;
    if let Some(obj) = value.as_object_mut() {
        obj.remove("handoffcrc");
        obj.insert(
            "handoffreceived".into(),
            Value::String(crate::edge::wire::format_time(&received)),
        );
    }
    let event = event_from_value(&value)?;
    Ok((value, event))
}

/// Validates a parsed message against its schema and reads it into an [`Event`].
pub fn event_from_value(value: &Value) -> Result<Event, Invalid> {
    let ty = schemas::validate_event(value)?;
    let data = &value["data"];
    let body = body(ty, data)?;
    if let Some(person_id) = body.person_id()
        && value.get("subject").and_then(Value::as_str) != Some(person_id)
    {
        return Err(Invalid::SubjectMismatch);
    }
    Ok(Event {
        source: text(value, "source")?,
        id: text(value, "id")?,
        time: time(value, "time")?,
        received: match value.get("handoffreceived") {
            Some(_) => Some(time(value, "handoffreceived")?),
            None => None,
        },
        body,
    })
}

fn body(ty: EventType, d: &Value) -> Result<EventBody, Invalid> {
    Ok(match ty {
        EventType::PolicyUpdated => EventBody::PolicyUpdated {
            jurisdiction_id: text(d, "jurisdiction_id")?,
            name: text(d, "name")?,
            state: text(d, "state")?,
            honors_detainers: boolean(d, "honors_detainers")?,
            return_agreement: boolean(d, "return_agreement")?,
        },
        EventType::DetainerIssued => EventBody::DetainerIssued {
            detainer_id: text(d, "detainer_id")?,
            person_id: text(d, "person_id")?,
            custodian: custodian(d, "custodian")?,
            criminal_status: one_of(d, "criminal_status", CriminalStatus::parse)?,
            offenses: texts(d, "offenses")?,
        },
        EventType::DetainerWithdrawn => EventBody::DetainerWithdrawn {
            detainer_id: text(d, "detainer_id")?,
            person_id: text(d, "person_id")?,
        },
        EventType::ClaimLodged => EventBody::ClaimLodged {
            claim_id: text(d, "claim_id")?,
            person_id: text(d, "person_id")?,
            jurisdiction_id: text(d, "jurisdiction_id")?,
            charges: texts(d, "charges")?,
        },
        EventType::BopReleaseScheduled => EventBody::BopReleaseScheduled {
            person_id: text(d, "person_id")?,
            facility: text(d, "facility")?,
            release_at: time(d, "release_at")?,
        },
        EventType::FirstRefusalResponse => EventBody::FirstRefusalResponse {
            offer_id: text(d, "offer_id")?,
            person_id: text(d, "person_id")?,
            answer: one_of(d, "decision", Answer::parse)?,
        },
        EventType::WritIssued => EventBody::WritIssued {
            writ_id: text(d, "writ_id")?,
            person_id: text(d, "person_id")?,
            jurisdiction_id: text(d, "jurisdiction_id")?,
            kind: one_of(d, "kind", WritKind::parse)?,
            court: text(d, "court")?,
        },
        EventType::LocalReleaseDue => EventBody::LocalReleaseDue {
            person_id: text(d, "person_id")?,
            jurisdiction_id: text(d, "jurisdiction_id")?,
            release_at: time(d, "release_at")?,
        },
        EventType::DetainerDeclined => EventBody::DetainerDeclined {
            detainer_id: text(d, "detainer_id")?,
            person_id: text(d, "person_id")?,
            jurisdiction_id: text(d, "jurisdiction_id")?,
        },
        EventType::HoldExpired => EventBody::HoldExpired {
            person_id: text(d, "person_id")?,
            detainer_id: text(d, "detainer_id")?,
            jurisdiction_id: text(d, "jurisdiction_id")?,
        },
        EventType::CustodyAssumed => EventBody::CustodyAssumed {
            person_id: text(d, "person_id")?,
            from: custodian(d, "from")?,
        },
        EventType::CapacityUpdated => EventBody::CapacityUpdated {
            funded_beds: count(d, "funded_beds")?,
            occupied_beds: count(d, "occupied_beds")?,
        },
        EventType::RemovalStatus => EventBody::RemovalStatus {
            person_id: text(d, "person_id")?,
            country: text(d, "country")?,
            foreseeable: boolean(d, "foreseeable")?,
        },
        EventType::ReleaseFactor => EventBody::ReleaseFactor {
            person_id: text(d, "person_id")?,
            factor: one_of(d, "factor", Factor::parse)?,
        },
    })
}

// The readers below only meet values the schema has already checked; their errors
// exist so that a schema and this decoder drifting apart is a reported rejection, never
// a panic.

fn missing(field: &'static str) -> Invalid {
    Invalid::BadField {
        field,
        reason: "missing or of the wrong type (schema and decoder disagree)".to_owned(),
    }
}

fn word<'v>(v: &'v Value, field: &'static str) -> Result<&'v str, Invalid> {
    v.get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| missing(field))
}

fn text(v: &Value, field: &'static str) -> Result<String, Invalid> {
    word(v, field).map(str::to_owned)
}

fn boolean(v: &Value, field: &'static str) -> Result<bool, Invalid> {
    v.get(field)
        .and_then(Value::as_bool)
        .ok_or_else(|| missing(field))
}

/// A non-negative integer. JSON Schema counts `34000.0` as an integer too, so an
/// integral float the schema has bounded is read as the integer it is.
fn count(v: &Value, field: &'static str) -> Result<u64, Invalid> {
    let n = v.get(field).ok_or_else(|| missing(field))?;
    n.as_u64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= 1e15)
                .map(|f| f as u64)
        })
        .ok_or_else(|| missing(field))
}

fn texts(v: &Value, field: &'static str) -> Result<Vec<String>, Invalid> {
    v.get(field)
        .and_then(Value::as_array)
        .ok_or_else(|| missing(field))?
        .iter()
        .map(|s| s.as_str().map(str::to_owned).ok_or_else(|| missing(field)))
        .collect()
}

/// One of an enum's wire names. A value the schema let through but the decoder does not
/// know (the two drifted apart) is a reported rejection, never read as some other value.
fn one_of<T>(
    v: &Value,
    field: &'static str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<T, Invalid> {
    let w = word(v, field)?;
    parse(w).ok_or_else(|| Invalid::BadField {
        field,
        reason: format!(
            "{w:?} is not a value this version of handoff knows (schema and decoder disagree)"
        ),
    })
}

fn custodian(v: &Value, field: &'static str) -> Result<Custodian, Invalid> {
    let c = v.get(field).ok_or_else(|| missing(field))?;
    let id = word(c, "id")?;
    Ok(match one_of(c, "kind", CustodianKind::parse)? {
        CustodianKind::Bop => Custodian::Bop(id.to_owned()),
        CustodianKind::Local => Custodian::Local(id.to_owned()),
        CustodianKind::Ice => Custodian::Ice,
    })
}

/// Reads an RFC 3339 time with its offset and normalises it to UTC.
pub fn parse_time(s: &str) -> Result<Time, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{s:?} is not an RFC 3339 time with offset: {e}"))
}

fn time(v: &Value, field: &'static str) -> Result<Time, Invalid> {
    parse_time(word(v, field)?).map_err(|reason| Invalid::BadField { field, reason })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The depth check as it was first written, byte by byte: the reference.
    fn too_deep_bytewise(bytes: &[u8], limit: usize) -> Option<usize> {
        let mut depth = 0usize;
        let mut in_string = false;
        let mut escaped = false;
        for (i, &b) in bytes.iter().enumerate() {
            if in_string {
                match b {
                    _ if escaped => escaped = false,
                    b'\\' => escaped = true,
                    b'"' => in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    if depth > limit {
                        return Some(i);
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        None
    }

    proptest! {
        /// The fast depth check finds the same offset as the byte-by-byte one, on text
        /// made of the bytes that matter (brackets, quotes, escapes) and filler, well
        /// formed or not: strings left open, escapes at the very end.
        #[test]
        fn too_deep_agrees_with_the_bytewise_check(
            text in proptest::collection::vec(
                prop_oneof![Just(b'['), Just(b'{'), Just(b']'), Just(b'}'), Just(b'"'),
                            Just(b'\\'), Just(b'a'), Just(b','), Just(b':')],
                0..200,
            ),
            limit in 0usize..6,
        ) {
            prop_assert_eq!(too_deep(&text, limit), too_deep_bytewise(&text, limit));
        }
    }

    #[test]
    fn too_deep_skips_brackets_and_escaped_quotes_inside_strings() {
        let line = br#"{"a":"x\"[[[[","b":[{"c":"\\"}],"d":"{{{{"}"#;
        assert_eq!(too_deep(line, 3), None);
        // Level 2 is "b"'s array, level 3 the object in it.
        assert_eq!((line[19], line[20]), (b'[', b'{'));
        assert_eq!(too_deep(line, 1), Some(19));
        assert_eq!(too_deep(line, 2), Some(20));
        for limit in 0..4 {
            assert_eq!(
                too_deep(line, limit),
                too_deep_bytewise(line, limit),
                "{limit}"
            );
        }
    }

    /// ICE's review events (ICD version 2) are read field by field, and, being person
    /// events, refused when their subject is another person.
    #[test]
    fn the_ice_review_events_are_read() {
        let line = |ty: &str, subject: &str, data: &str| {
            format!(
                r#"{{"specversion":"1.0","id":"ice-r-1","source":"urn:agency:ice:eagle","type":"{ty}","time":"2017-03-02T09:00:00Z","subject":"{subject}","data":{data}}}"#
            )
        };
        let status = r#"{"person_id":"P-100234","country":"VE","foreseeable":false}"#;
        let factor = r#"{"person_id":"P-100234","factor":"primary_caretaker"}"#;
        assert_eq!(
            parse_event(&line("ice.removal.status", "P-100234", status))
                .unwrap()
                .body,
            EventBody::RemovalStatus {
                person_id: "P-100234".into(),
                country: "VE".into(),
                foreseeable: false,
            }
        );
        assert_eq!(
            parse_event(&line("ice.release.factor", "P-100234", factor))
                .unwrap()
                .body,
            EventBody::ReleaseFactor {
                person_id: "P-100234".into(),
                factor: Factor::PrimaryCaretaker,
            }
        );
        for (ty, data) in [
            ("ice.removal.status", status),
            ("ice.release.factor", factor),
        ] {
            let err = parse_event(&line(ty, "P-999999", data)).unwrap_err();
            assert_eq!(err, Invalid::SubjectMismatch, "{ty}");
        }
    }

    /// A value the schema let through but the decoder does not know is a `bad_field`
    /// rejection that says so, never silently another value (`"acept"` is not a decline).
    #[test]
    fn an_unknown_enum_value_is_a_reported_rejection() {
        let d = serde_json::json!({"decision": "acept", "kind": "habeas", "factor": "elderly", "custodian": {"kind": "state", "id": "x"}});
        for e in [
            one_of(&d, "decision", Answer::parse).map(|_| ()),
            one_of(&d, "kind", WritKind::parse).map(|_| ()),
            one_of(&d, "factor", Factor::parse).map(|_| ()),
            custodian(&d, "custodian").map(|_| ()),
        ] {
            match e {
                Err(Invalid::BadField { reason, .. }) => {
                    assert!(reason.contains("schema and decoder disagree"), "{reason}")
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
