//! Decisions at the edge: a [`Decision`] → its CloudEvent in structured JSON mode; and the
//! journal's own control entries (`opened_json`).
//!
//! The output is byte-stable: attributes and fields come in a fixed order per decision
//! type, optional fields are left out rather than set to null, and every time is written
//! in UTC with `Z` and only as many fractional digits as it has.

use chrono::SecondsFormat;
use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::journal::control::{ControlType, Opened};
use handoff_core::model::{Custodian, Decision, DecisionBody, Party, Time};

/// The `source` of every decision, and of the journal's control entries.
pub(crate) const SOURCE: &str = "urn:handoff";

/// Formats a time the way every handoff output does: UTC, `Z`, fractional digits only
/// when present (`2017-01-28T09:00:00Z`).
pub fn format_time(t: &Time) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Appends the decision as one line of JSON (no trailing newline).
pub fn write_decision(d: &Decision, out: &mut Vec<u8>) {
    serde_json::to_writer(out, &Wire(d, false)).expect("writing JSON to a Vec cannot fail");
}

/// [`write_decision`] with a last member, `parties`: the sorted keys of the agencies told
/// of it (ICD section 4; `handoff replay --parties`). Not the published form, which
/// carries them in the `BCC` header.
pub fn write_decision_with_parties(d: &Decision, out: &mut Vec<u8>) {
    serde_json::to_writer(out, &Wire(d, true)).expect("writing JSON to a Vec cannot fail");
}

/// The decision as a JSON string.
pub fn decision_json(d: &Decision) -> String {
    let mut out = Vec::with_capacity(512);
    write_decision(d, &mut out);
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// A `handoff.journal.opened` control entry as compact JSON (ICD section 8), its members
/// in a fixed order; `epoch` only when there is one.
pub fn opened_json(o: &Opened) -> String {
    serde_json::to_string(&WireOpened(o)).expect("writing JSON to a String cannot fail")
}

struct WireOpened<'a>(&'a Opened);

struct WireOpenedData<'a>(&'a Opened);

impl Serialize for WireOpened<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let o = self.0;
        let mut m = s.serialize_map(Some(7))?;
        m.serialize_entry("specversion", "1.0")?;
        m.serialize_entry("id", &o.id)?;
        m.serialize_entry("source", SOURCE)?;
        m.serialize_entry("type", ControlType::Opened.as_str())?;
        m.serialize_entry("time", &format_time(&o.time))?;
        m.serialize_entry("datacontenttype", "application/json")?;
        m.serialize_entry("data", &WireOpenedData(o))?;
        m.end()
    }
}

impl Serialize for WireOpenedData<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let o = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("rules", &o.rules)?;
        m.serialize_entry("writer", &o.writer)?;
        if let Some(epoch) = o.epoch {
            m.serialize_entry("epoch", &epoch)?;
        }
        m.end()
    }
}

/// A decision's wire form; with `true`, and its parties.
struct Wire<'a>(&'a Decision, bool);

struct WireCustodian<'a>(&'a Custodian);

impl Serialize for WireCustodian<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("kind", self.0.kind())?;
        m.serialize_entry("id", self.0.id())?;
        m.end()
    }
}

struct WireData<'a>(&'a Decision);

impl Serialize for Wire<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let d = self.0;
        let mut m = s.serialize_map(Some(8 + usize::from(self.1)))?;
        m.serialize_entry("specversion", "1.0")?;
        m.serialize_entry("id", &d.id)?;
        m.serialize_entry("source", SOURCE)?;
        m.serialize_entry("type", d.body.type_name())?;
        m.serialize_entry("time", &format_time(&d.time))?;
        m.serialize_entry("subject", &d.person_id)?;
        m.serialize_entry("datacontenttype", "application/json")?;
        m.serialize_entry("data", &WireData(d))?;
        if self.1 {
            let keys: Vec<String> = d.parties.iter().map(Party::key).collect();
            m.serialize_entry("parties", &keys)?;
        }
        m.end()
    }
}

impl Serialize for WireData<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let d = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("person_id", &d.person_id)?;
        m.serialize_entry("rule", d.rule.as_str())?;
        m.serialize_entry("caused_by", &d.caused_by)?;
        match &d.body {
            DecisionBody::Offer {
                offer_id,
                jurisdiction_id,
                jurisdiction_honors_detainers,
                respond_by,
                detainer_id,
            } => {
                m.serialize_entry("offer_id", offer_id)?;
                m.serialize_entry("jurisdiction_id", jurisdiction_id)?;
                m.serialize_entry(
                    "jurisdiction_honors_detainers",
                    jurisdiction_honors_detainers,
                )?;
                m.serialize_entry("respond_by", &format_time(respond_by))?;
                m.serialize_entry("detainer_id", detainer_id)?;
            }
            DecisionBody::Transfer {
                from,
                to,
                basis,
                conditions,
                effective_at,
                detainer_id,
                claim_id,
                writ_id,
                offer_id,
            } => {
                m.serialize_entry("from", &WireCustodian(from))?;
                m.serialize_entry("to", &WireCustodian(to))?;
                m.serialize_entry("basis", basis.as_str())?;
                let conditions: Vec<&str> = conditions.iter().map(|c| c.as_str()).collect();
                m.serialize_entry("conditions", &conditions)?;
                m.serialize_entry("effective_at", &format_time(effective_at))?;
                for (key, value) in [
                    ("detainer_id", detainer_id),
                    ("claim_id", claim_id),
                    ("writ_id", writ_id),
                    ("offer_id", offer_id),
                ] {
                    if let Some(v) = value {
                        m.serialize_entry(key, v)?;
                    }
                }
            }
            DecisionBody::Hold {
                jurisdiction_id,
                detainer_id,
                hold_from,
                hold_until,
            } => {
                m.serialize_entry("jurisdiction_id", jurisdiction_id)?;
                m.serialize_entry("detainer_id", detainer_id)?;
                m.serialize_entry("hold_from", &format_time(hold_from))?;
                m.serialize_entry("hold_until", &format_time(hold_until))?;
            }
            DecisionBody::Release {
                from,
                basis,
                effective_at,
                detainer_id,
            } => {
                m.serialize_entry("from", &WireCustodian(from))?;
                m.serialize_entry("basis", basis.as_str())?;
                m.serialize_entry("effective_at", &format_time(effective_at))?;
                if let Some(v) = detainer_id {
                    m.serialize_entry("detainer_id", v)?;
                }
            }
            DecisionBody::Placement {
                placement,
                monitoring,
                basis,
            } => {
                m.serialize_entry("placement", placement.as_str())?;
                if let Some(mon) = monitoring {
                    m.serialize_entry("monitoring", mon.as_str())?;
                }
                m.serialize_entry("basis", basis.as_str())?;
            }
        }
        m.end()
    }
}
