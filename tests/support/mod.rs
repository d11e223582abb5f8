//! Test support: build event logs in a few words and check what `handoff` decides.
//!
//! `Log` writes real CloudEvents JSON lines (so every test goes through the schemas and
//! the envelope decoder, not around them); `check` replays them and compares a compact
//! rendering of the decisions and notes with the expected text.

#![allow(dead_code)]

use serde_json::{Value, json};

/// A log under construction: one valid CloudEvent per line, ids `e1`, `e2`, ...
#[derive(Default)]
pub struct Log {
    lines: Vec<String>,
}

/// An event's source, type and data, without envelope.
pub struct Ev {
    source: String,
    ty: &'static str,
    data: Value,
}

impl Log {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an event sent at `time` (RFC 3339).
    pub fn at(mut self, time: &str, ev: Ev) -> Self {
        let id = format!("e{}", self.lines.len() + 1);
        self.lines.push(envelope(&id, time, ev));
        self
    }

    /// Adds an event with an explicit id (for duplicates).
    pub fn at_with_id(mut self, id: &str, time: &str, ev: Ev) -> Self {
        self.lines.push(envelope(id, time, ev));
        self
    }

    /// Adds a raw line, valid or not.
    pub fn raw(mut self, line: &str) -> Self {
        self.lines.push(line.to_owned());
        self
    }

    pub fn text(&self) -> String {
        let mut s = self.lines.join("\n");
        s.push('\n');
        s
    }
}

pub fn envelope(id: &str, time: &str, ev: Ev) -> String {
    let mut msg = json!({
        "specversion": "1.0",
        "id": id,
        "source": ev.source,
        "type": ev.ty,
        "time": time,
        "datacontenttype": "application/json",
        "data": ev.data,
    });
    if let Some(p) = msg["data"]["person_id"].as_str() {
        msg["subject"] = json!(p);
    }
    msg.to_string()
}

const ICE: &str = "urn:agency:ice:eagle";
const BOP: &str = "urn:agency:bop:sentry";

fn ev(source: &str, ty: &'static str, data: Value) -> Ev {
    Ev {
        source: source.to_owned(),
        ty,
        data,
    }
}

pub fn bop(facility: &str) -> Value {
    json!({"kind": "bop", "id": facility})
}

pub fn local(j: &str) -> Value {
    json!({"kind": "local", "id": j})
}

pub fn ice() -> Value {
    json!({"kind": "ice", "id": "ice"})
}

pub fn policy(j: &str, honors: bool, agreement: bool) -> Ev {
    ev(
        &format!("urn:jurisdiction:{j}"),
        "jurisdiction.policy.updated",
        json!({"jurisdiction_id": j, "name": "Test County", "state": "TX",
               "honors_detainers": honors, "return_agreement": agreement}),
    )
}

pub fn detainer(d: &str, p: &str, custodian: Value, status: &str) -> Ev {
    ev(
        ICE,
        "ice.detainer.issued",
        json!({"detainer_id": d, "person_id": p, "custodian": custodian,
               "criminal_status": status, "offenses": ["burglary"]}),
    )
}

pub fn withdrawn(d: &str, p: &str) -> Ev {
    ev(
        ICE,
        "ice.detainer.withdrawn",
        json!({"detainer_id": d, "person_id": p}),
    )
}

pub fn claim(c: &str, p: &str, j: &str) -> Ev {
    ev(
        &format!("urn:jurisdiction:{j}"),
        "local.claim.lodged",
        json!({"claim_id": c, "person_id": p, "jurisdiction_id": j, "charges": ["theft"]}),
    )
}

pub fn bop_release(p: &str, facility: &str, release_at: &str) -> Ev {
    ev(
        BOP,
        "bop.release.scheduled",
        json!({"person_id": p, "facility": facility, "release_at": release_at}),
    )
}

pub fn response(offer_id: &str, p: &str, decision: &str) -> Ev {
    ev(
        ICE,
        "ice.first_refusal.response",
        json!({"offer_id": offer_id, "person_id": p, "decision": decision}),
    )
}

pub fn writ(w: &str, p: &str, j: &str) -> Ev {
    ev(
        "urn:court:us-district-tx-w",
        "court.writ.issued",
        json!({"writ_id": w, "person_id": p, "jurisdiction_id": j,
               "kind": "ad_prosequendum", "court": "US District Court, W.D. Tex."}),
    )
}

pub fn local_release(p: &str, j: &str, release_at: &str) -> Ev {
    ev(
        &format!("urn:jurisdiction:{j}"),
        "local.release.due",
        json!({"person_id": p, "jurisdiction_id": j, "release_at": release_at}),
    )
}

pub fn declined(d: &str, p: &str, j: &str) -> Ev {
    ev(
        &format!("urn:jurisdiction:{j}"),
        "local.detainer.declined",
        json!({"detainer_id": d, "person_id": p, "jurisdiction_id": j}),
    )
}

pub fn hold_expired(p: &str, d: &str, j: &str) -> Ev {
    ev(
        &format!("urn:jurisdiction:{j}"),
        "hold.expired",
        json!({"person_id": p, "detainer_id": d, "jurisdiction_id": j}),
    )
}

pub fn assumed(p: &str, from: Value) -> Ev {
    ev(
        ICE,
        "ice.custody.assumed",
        json!({"person_id": p, "from": from}),
    )
}

pub fn capacity(funded: u64, occupied: u64) -> Ev {
    ev(
        ICE,
        "ice.capacity.updated",
        json!({"funded_beds": funded, "occupied_beds": occupied}),
    )
}

pub fn removal(p: &str, country: &str, foreseeable: bool) -> Ev {
    ev(
        ICE,
        "ice.removal.status",
        json!({"person_id": p, "country": country, "foreseeable": foreseeable}),
    )
}

pub fn factor(p: &str, factor: &str) -> Ev {
    ev(
        ICE,
        "ice.release.factor",
        json!({"person_id": p, "factor": factor}),
    )
}

/// Replays `log` (then advances to `until`, if given) and renders what happened: one
/// line per decision, then one line per note.
pub fn run(log: &Log, until: Option<&str>) -> String {
    let until = until.map(|t| handoff::edge::envelope::parse_time(t).expect("test time"));
    let (out, notes, _) = handoff::answers::replay::replay_str(&log.text(), until);
    render(&out, &notes)
}

/// The compact rendering of decisions used in expectations:
/// `time rule type key=value ...` with the common fields left out, every decision id
/// replaced by `#n` (its position in the output), and `caused_by` shown as `by=`.
pub fn render(out: &str, notes: &[(u64, handoff::answers::replay::Note)]) -> String {
    let decisions: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("decisions are JSON"))
        .collect();
    let ids: Vec<String> = decisions
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect();
    let short = |s: &str| -> String {
        let mut s = s.to_owned();
        for (i, id) in ids.iter().enumerate() {
            s = s.replace(id, &format!("#{i}"));
        }
        s
    };
    let mut lines = Vec::new();
    for (i, d) in decisions.iter().enumerate() {
        // Every decision must satisfy its own schema; checked here so that every rule
        // test also checks the wire form.
        handoff::edge::schemas::validate_decision(d)
            .unwrap_or_else(|e| panic!("decision {i} fails its schema: {e}\n{d}"));
        assert_eq!(d["subject"], d["data"]["person_id"]);
        let ty = d["type"].as_str().unwrap().trim_start_matches("handoff.");
        let mut line = format!(
            "#{i} {} {} {} {}",
            d["time"].as_str().unwrap(),
            d["data"]["rule"].as_str().unwrap(),
            ty,
            d["data"]["person_id"].as_str().unwrap(),
        );
        line.push_str(&format!(
            " by={}",
            short(d["data"]["caused_by"].as_str().unwrap())
        ));
        let data = d["data"].as_object().unwrap();
        let order = field_order(ty);
        for k in data.keys() {
            assert!(
                matches!(k.as_str(), "person_id" | "rule" | "caused_by")
                    || order.contains(&k.as_str()),
                "field {k} of {ty} is not rendered"
            );
        }
        for (k, v) in order.iter().filter_map(|k| data.get(*k).map(|v| (k, v))) {
            let v = match v {
                Value::String(s) => short(s),
                Value::Object(o) => format!(
                    "{}:{}",
                    o["kind"].as_str().unwrap(),
                    o["id"].as_str().unwrap()
                ),
                Value::Array(a) => a
                    .iter()
                    .map(|x| x.as_str().unwrap().to_owned())
                    .collect::<Vec<_>>()
                    .join(","),
                other => other.to_string(),
            };
            line.push_str(&format!(" {k}={v}"));
        }
        lines.push(line);
    }
    for (n, note) in notes {
        lines.push(format!("! line {n}: {note}"));
    }
    lines.join("\n")
}

/// The order fields are shown in: the order of ICD section 3's table.
fn field_order(ty: &str) -> &'static [&'static str] {
    match ty {
        "offer" => &[
            "offer_id",
            "jurisdiction_id",
            "jurisdiction_honors_detainers",
            "respond_by",
            "detainer_id",
        ],
        "transfer" => &[
            "from",
            "to",
            "basis",
            "conditions",
            "effective_at",
            "detainer_id",
            "claim_id",
            "writ_id",
            "offer_id",
        ],
        "hold" => &["jurisdiction_id", "detainer_id", "hold_from", "hold_until"],
        "release" => &["from", "basis", "effective_at", "detainer_id"],
        "placement" => &["placement", "monitoring", "basis"],
        other => panic!("unknown decision type {other}"),
    }
}

/// An expectation as written in a test, without indentation and blank lines.
pub fn normalize(expect: &str) -> String {
    expect
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Replays `log` and compares the rendering with `expect` (indentation and surrounding
/// blank lines ignored).
#[track_caller]
pub fn check(log: Log, until: Option<&str>, expect: &str) {
    let actual = run(&log, until);
    let expect = normalize(expect);
    if actual != expect {
        panic!(
            "decisions differ\n--- expected\n{expect}\n--- actual\n{actual}\n--- log\n{}",
            log.text()
        );
    }
}

/// The `offer_id` handoff gives the first-refusal offer decided by the BOP event `id`
/// (an offer is always the first decision of its `bop.release.scheduled`).
pub fn offer_id_of(bop_event_id: &str) -> String {
    handoff_core::ids::decision_id_for_event(BOP, bop_event_id, 0)
}
