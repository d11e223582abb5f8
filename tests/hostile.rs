//! Hostile input (issue 4): every kind of bad message an agency system, a bug or an
//! attacker could send gets a clear dead-letter reason, and none of it reaches the engine
//! or the journal (only the semantic rejects the ICD journals do).
//!
//! The table runs each input through the library's envelope path (fast, no broker); the
//! live test sends the same inputs, and the size and authorization cases only the service
//! checks, to `handoff serve` on a real RabbitMQ and reads the dead letters back.

#[path = "support/broker.rs"]
mod broker;
#[path = "support/serve.rs"]
mod serve;
#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;

use broker::Broker;
use lapin::Confirmation;
use serde_json::{Value, json};

use serve::{Publisher, Serve, Watch, http_get};

// ---------------------------------------------------------------------------------------
// The inputs.

/// One hostile input: what is sent, as whom, and the reason and explanation it must get.
struct Case {
    name: &'static str,
    body: Vec<u8>,
    /// The routing key it is published with (the event type it claims to be).
    routing_key: &'static str,
    /// The `user-id` it is published with; `None` for none at all.
    user: Option<&'static str>,
    code: &'static str,
    /// Substrings the explanation (`x-handoff-detail`) must contain.
    detail: Vec<&'static str>,
}

const TRAVIS: &str = "tx-travis-county";

/// A valid event of `ty` from `source`, with `subject` set for person events.
fn event(id: &str, ty: &str, source: &str, data: Value) -> Value {
    let mut e = json!({
        "specversion": "1.0",
        "id": id,
        "source": source,
        "type": ty,
        "time": "2017-03-01T09:00:00Z",
        "datacontenttype": "application/json",
        "data": data,
    });
    if let Some(p) = e["data"]["person_id"].as_str() {
        e["subject"] = json!(p);
    }
    e
}

/// BOP schedules a release (R1.4 releases the person: nobody else wants them).
fn bop_release(id: &str, person: &str) -> Value {
    event(
        id,
        "bop.release.scheduled",
        "urn:agency:bop:sentry",
        json!({"person_id": person, "facility": "fci-bastrop", "release_at": "2017-03-02T12:00:00Z"}),
    )
}

fn local_release() -> Value {
    event(
        "tcso-h1",
        "local.release.due",
        "urn:jurisdiction:tx-travis-county",
        json!({"person_id": "P-1002", "jurisdiction_id": TRAVIS, "release_at": "2017-03-02T12:00:00Z"}),
    )
}

fn policy() -> Value {
    event(
        "tcso-h2",
        "jurisdiction.policy.updated",
        "urn:jurisdiction:tx-travis-county",
        json!({"jurisdiction_id": TRAVIS, "name": "Travis County", "state": "TX",
               "honors_detainers": true, "return_agreement": false}),
    )
}

fn detainer() -> Value {
    event(
        "eagle-h1",
        "ice.detainer.issued",
        "urn:agency:ice:eagle",
        json!({"detainer_id": "D-1001", "person_id": "P-1003",
               "custodian": {"kind": "local", "id": TRAVIS},
               "criminal_status": "charged", "offenses": ["burglary"]}),
    )
}

/// ICE reports that a person's removal is not foreseeable (R6.2).
fn removal_status() -> Value {
    event(
        "eagle-h3",
        "ice.removal.status",
        "urn:agency:ice:eagle",
        json!({"person_id": "P-1003", "country": "VE", "foreseeable": false}),
    )
}

/// ICE reports a humanitarian factor (R6.3).
fn release_factor() -> Value {
    event(
        "eagle-h4",
        "ice.release.factor",
        "urn:agency:ice:eagle",
        json!({"person_id": "P-1003", "factor": "medical"}),
    )
}

/// ICE's capacity, with the two counts written verbatim (so that numbers serde_json would
/// never write, like `1e400`, can be sent).
fn capacity(funded: &str, occupied: &str) -> Vec<u8> {
    format!(
        r#"{{"specversion":"1.0","id":"eagle-h2","source":"urn:agency:ice:eagle","type":"ice.capacity.updated","time":"2017-03-01T09:00:00Z","data":{{"funded_beds":{funded},"occupied_beds":{occupied}}}}}"#
    )
    .into_bytes()
}

/// `base` with the value at JSON pointer `at` replaced.
fn with(mut base: Value, at: &str, value: Value) -> Value {
    *base.pointer_mut(at).unwrap_or_else(|| panic!("no {at}")) = value;
    base
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

/// `depth` nested arrays: `[[[...]]]`.
fn nested_arrays(depth: usize) -> Vec<u8> {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()
}

/// The hostile inputs both the envelope path and the live service refuse, each sent as
/// the user of the agency that may send its type (so that only the input is at fault).
#[rustfmt::skip]
fn hostile_inputs() -> Vec<Case> {
    let bop = Some("bop");
    let ice = Some("ice");
    let travis = Some("j-tx-travis-county");
    let case = |name, body, routing_key, user, code, detail: &[&'static str]| Case {
        name,
        body,
        routing_key,
        user,
        code,
        detail: detail.to_vec(),
    };
    let release = || bop_release("sentry-h1", "P-1001");
    let mut deep_data = json!("x");
    for _ in 0..20 {
        deep_data = json!({ "a": deep_data });
    }
    let mut valid_then_bad = bytes(&release());
    valid_then_bad.truncate(valid_then_bad.len() - 2);
    valid_then_bad.extend_from_slice(b"\xe2\x82}}");
    let long_id = "x".repeat(10_000);
    let long_jurisdiction = "j".repeat(64);
    vec![
        // Invalid UTF-8: a stray byte, an overlong '/', a UTF-16 surrogate, a cut sequence.
        case("stray 0xff byte", b"{\"id\": \"\xff\"}".to_vec(), "bop.release.scheduled", bop,
            "not_utf8", &["invalid byte sequence at byte 8"]),
        case("overlong encoding", b"{\"id\": \"\xc0\xaf\"}".to_vec(), "bop.release.scheduled", bop,
            "not_utf8", &["at byte 8"]),
        case("surrogate encoded in UTF-8", b"{\"id\": \"\xed\xa0\x80\"}".to_vec(), "bop.release.scheduled", bop,
            "not_utf8", &["at byte 8"]),
        case("cut multibyte sequence", valid_then_bad, "bop.release.scheduled", bop,
            "not_utf8", &["invalid byte sequence"]),
        // Not JSON, in the ways a parser can be pushed.
        case("byte-order mark", [b"\xef\xbb\xbf".as_slice(), &bytes(&release())].concat(), "bop.release.scheduled", bop,
            "not_json", &["line 1 column 1"]),
        case("lone surrogate escape", raw_id(release(), "sentry\\ud800"), "bop.release.scheduled", bop,
            "not_json", &["hex escape"]),
        case("float out of range", capacity("1e400", "1"), "ice.capacity.updated", ice,
            "not_json", &["number out of range"]),
        // Deep nesting is refused before parsing, with the limit.
        case("10 000 nested arrays", nested_arrays(10_000), "bop.release.scheduled", bop,
            "too_deep", &["nested deeper than 16 levels", "at byte 16"]),
        case("nesting inside data", bytes(&with(release(), "/data/facility", deep_data)), "bop.release.scheduled", bop,
            "too_deep", &["nested deeper than 16 levels"]),
        // Numbers out of range where counts are meant.
        case("count above u64", capacity("18446744073709551616", "1"), "ice.capacity.updated", ice,
            "schema", &["/data/funded_beds", "greater than the maximum of 1000000000"]),
        case("count above i64", capacity("1", "9223372036854775808"), "ice.capacity.updated", ice,
            "schema", &["/data/occupied_beds", "greater than the maximum of 1000000000"]),
        case("negative count", capacity("-1", "0"), "ice.capacity.updated", ice,
            "schema", &["/data/funded_beds", "less than the minimum of 0"]),
        case("fractional count", capacity("1.5", "0"), "ice.capacity.updated", ice,
            "schema", &["/data/funded_beds", "not of type \"integer\""]),
        case("count as a string", capacity("\"12\"", "0"), "ice.capacity.updated", ice,
            "schema", &["/data/funded_beds", "not of type \"integer\""]),
        // Times outside the window (years 2000-2199 as written) or not RFC 3339 at all.
        case("far-future release_at", bytes(&with(local_release(), "/data/release_at", json!("9999-12-31T23:59:59-23:59"))), "local.release.due", travis,
            "schema", &["/data/release_at", "^(20|21)[0-9]{2}-", "(pattern)"]),
        case("far-past release_at", bytes(&with(release(), "/data/release_at", json!("0001-01-01T00:00:00+23:59"))), "bop.release.scheduled", bop,
            "schema", &["/data/release_at", "(pattern)"]),
        case("year 0000", bytes(&with(release(), "/data/release_at", json!("0000-01-01T00:00:00Z"))), "bop.release.scheduled", bop,
            "schema", &["/data/release_at", "(pattern)"]),
        case("six-digit year", bytes(&with(release(), "/data/release_at", json!("+275760-09-13T00:00:00Z"))), "bop.release.scheduled", bop,
            "schema", &["/data/release_at", "is not a \"date-time\""]),
        case("far-past time", bytes(&with(release(), "/time", json!("1999-12-31T23:59:59Z"))), "bop.release.scheduled", bop,
            "schema", &["/time", "(pattern)"]),
        case("far-future time", bytes(&with(release(), "/time", json!("2200-01-01T00:00:00Z"))), "bop.release.scheduled", bop,
            "schema", &["/time", "(pattern)"]),
        case("leap second at noon", bytes(&with(release(), "/data/release_at", json!("2017-03-02T12:00:60Z"))), "bop.release.scheduled", bop,
            "schema", &["/data/release_at", "is not a \"date-time\""]),
        case("offset +24:00", bytes(&with(release(), "/data/release_at", json!("2017-03-02T12:00:00+24:00"))), "bop.release.scheduled", bop,
            "schema", &["/data/release_at", "is not a \"date-time\""]),
        case("29 February 2100", bytes(&with(release(), "/data/release_at", json!("2100-02-29T12:00:00Z"))), "bop.release.scheduled", bop,
            "schema", &["/data/release_at", "is not a \"date-time\""]),
        // Ids that could break or disguise a log line, a journal line or a routing key.
        case("NUL in id", bytes(&with(release(), "/id", json!("sentry\u{0}h1"))), "bop.release.scheduled", bop,
            "schema", &["/id", "sentry\\u0000h1", "(pattern)"]),
        case("newline in id", bytes(&with(release(), "/id", json!("sentry\nh1"))), "bop.release.scheduled", bop,
            "schema", &["/id", "sentry\\nh1"]),
        case("terminal escape in id", bytes(&with(release(), "/id", json!("sentry\u{1b}[2Jh1"))), "bop.release.scheduled", bop,
            "schema", &["/id", "\\u001b"]),
        case("C1 next-line in id", bytes(&with(release(), "/id", json!("sentry\u{85}h1"))), "bop.release.scheduled", bop,
            "schema", &["/id", "\\u{85}"]),
        case("line separator in id", bytes(&with(release(), "/id", json!("sentry\u{2028}h1"))), "bop.release.scheduled", bop,
            "schema", &["/id", "\\u{2028}"]),
        case("bidi override in id", bytes(&with(release(), "/id", json!("sentry-\u{202e}1h"))), "bop.release.scheduled", bop,
            "schema", &["/id", "\\u{202e}", "(pattern)"]),
        case("bidi isolate in id", bytes(&with(release(), "/id", json!("sentry-\u{2066}h1"))), "bop.release.scheduled", bop,
            "schema", &["/id", "\\u{2066}"]),
        case("zero-width space in id", bytes(&with(release(), "/id", json!("sentry\u{200b}h1"))), "bop.release.scheduled", bop,
            "schema", &["/id", "\\u{200b}"]),
        case("byte-order mark in id", bytes(&with(release(), "/id", json!("sentry\u{feff}h1"))), "bop.release.scheduled", bop,
            "schema", &["/id", "\\u{feff}"]),
        case("empty id", bytes(&with(release(), "/id", json!(""))), "bop.release.scheduled", bop,
            "schema", &["/id", "(pattern)"]),
        case("10 000-character id", bytes(&with(release(), "/id", json!(long_id))), "bop.release.scheduled", bop,
            "schema", &["/id", "longer than 128 characters", "…"]),
        case("bidi override in a name", bytes(&with(policy(), "/data/name", json!("Travis \u{202e}ytnuoC"))), "jurisdiction.policy.updated", travis,
            "schema", &["/data/name", "\\u{202e}"]),
        case("NUL in an offense", bytes(&with(detainer(), "/data/offenses/0", json!("theft\u{0}"))), "ice.detainer.issued", ice,
            "schema", &["/data/offenses/0", "(pattern)"]),
        case("newline in person_id", bytes(&with(with(release(), "/data/person_id", json!("P-1001\n")), "/subject", json!("P-1001\n"))), "bop.release.scheduled", bop,
            "schema", &["P-1001\\n", "(pattern)"]),
        case("newline in detainer_id", bytes(&with(detainer(), "/data/detainer_id", json!("D-1001\n"))), "ice.detainer.issued", ice,
            "schema", &["/data/detainer_id", "(pattern)"]),
        case("newline in source", bytes(&with(release(), "/source", json!("urn:agency:bop:sentry\n"))), "bop.release.scheduled", bop,
            "schema", &["/source", "uri-reference"]),
        case("bidi override in source", bytes(&with(release(), "/source", json!("urn:agency:bop:\u{202e}yrtnes"))), "bop.release.scheduled", bop,
            "schema", &["/source", "\\u{202e}", "uri-reference"]),
        case("newline in type", bytes(&with(release(), "/type", json!("bop.release.scheduled\n"))), "bop.release.scheduled", bop,
            "unknown_type", &["unknown event type \"bop.release.scheduled\\n\""]),
        // A jurisdiction_id becomes a routing key (hold.<j>): nothing that can split or
        // widen one.
        case("dot in jurisdiction_id", bytes(&with(local_release(), "/data/jurisdiction_id", json!("tx.travis"))), "local.release.due", travis,
            "schema", &["/data/jurisdiction_id", "(pattern)"]),
        case("wildcard jurisdiction_id", bytes(&with(local_release(), "/data/jurisdiction_id", json!("tx-#"))), "local.release.due", travis,
            "schema", &["/data/jurisdiction_id", "(pattern)"]),
        case("newline after jurisdiction_id", bytes(&with(local_release(), "/data/jurisdiction_id", json!("tx-travis-county\n"))), "local.release.due", travis,
            "schema", &["/data/jurisdiction_id", "(pattern)"]),
        case("64-character jurisdiction_id", bytes(&with(local_release(), "/data/jurisdiction_id", json!(long_jurisdiction))), "local.release.due", travis,
            "schema", &["/data/jurisdiction_id", "(pattern)"]),
        // A country is an ISO 3166-1 alpha-2 code, nothing longer and nothing around it.
        case("newline after country", bytes(&with(removal_status(), "/data/country", json!("VE\n"))), "ice.removal.status", ice,
            "schema", &["/data/country", "VE\\n", "(pattern)"]),
        case("bidi override in country", bytes(&with(removal_status(), "/data/country", json!("\u{202e}EV"))), "ice.removal.status", ice,
            "schema", &["/data/country", "\\u{202e}", "(pattern)"]),
        case("foreseeable as a string", bytes(&with(removal_status(), "/data/foreseeable", json!("false"))), "ice.removal.status", ice,
            "schema", &["/data/foreseeable", "not of type \"boolean\""]),
        case("a humanitarian factor the ICD does not name", bytes(&with(release_factor(), "/data/factor", json!("elderly"))), "ice.release.factor", ice,
            "schema", &["/data/factor", "(enum)"]),
        case("custodian jurisdiction with a dot", bytes(&with(detainer(), "/data/custodian/id", json!("tx.travis"))), "ice.detainer.issued", ice,
            "schema", &["/data/custodian/id", "(pattern)"]),
        case("subject of another person", bytes(&with(release(), "/subject", json!("P-9999"))), "bop.release.scheduled", bop,
            "subject_mismatch", &["/subject: must equal data.person_id"]),
    ]
}

/// `event` serialized with its `id` written as the raw JSON string text `raw`, for escapes
/// serde_json would never write.
fn raw_id(event: Value, raw: &str) -> Vec<u8> {
    let id = event["id"].to_string();
    let text = event.to_string();
    assert!(text.contains(&format!("\"id\":{id}")));
    text.replacen(&format!("\"id\":{id}"), &format!("\"id\":\"{raw}\""), 1)
        .into_bytes()
}

/// Whether `s` holds a character that could break or disguise a line: a control, a line
/// or paragraph separator, or an invisible formatting character.
fn has_invisible(s: &str) -> bool {
    s.chars().any(|c| {
        c.is_control()
            || matches!(c, '\u{ad}' | '\u{61c}' | '\u{180e}' | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{feff}')
    })
}

#[track_caller]
fn assert_explained(name: &str, code: &str, detail: &str, case: &Case) {
    assert_eq!(code, case.code, "{name}: {detail}");
    for want in &case.detail {
        assert!(detail.contains(want), "{name}: {detail:?} lacks {want:?}");
    }
    assert!(!has_invisible(detail), "{name}: {detail:?}");
}

// ---------------------------------------------------------------------------------------
// Through the library.

/// Each hostile input, through the envelope path replay and the service share, is refused
/// with its reason code and an explanation that names what is wrong and shows it safely.
#[test]
fn hostile_inputs_are_refused_with_a_clear_reason() {
    let cases = hostile_inputs();
    assert!(cases.len() > 40);
    for case in &cases {
        match handoff::edge::envelope::parse_event_bytes(&case.body) {
            Ok(e) => panic!("{}: accepted as {e:?}", case.name),
            Err(e) => assert_explained(case.name, e.code().as_str(), &e.to_string(), case),
        }
    }
    // Every code used is one the service can dead-letter with.
    for case in &cases {
        assert!(
            handoff::edge::reason::DeadLetterReason::codes().any(|c| c == case.code),
            "{}",
            case.code
        );
    }
}

/// A publisher's own `handoffreceived` is refused outside the window by the envelope
/// (the live service overwrites it with its own clock, so this guards offline logs).
#[test]
fn a_far_future_handoffreceived_is_refused() {
    let mut e = bop_release("sentry-h1", "P-1001");
    e["handoffreceived"] = json!("9999-12-31T23:59:59Z");
    let err = handoff::edge::envelope::parse_event_bytes(&bytes(&e)).unwrap_err();
    assert_eq!(err.code(), "schema");
    assert!(err.to_string().starts_with("/handoffreceived: "), "{err}");
}

/// Regression: a `local.release.due` in year 9999 used to be held until
/// `+10000-01-02T23:59:59Z`, a time that is not RFC 3339 (the hold decision failed its
/// own schema). It is now refused at the edge, before the engine sees it.
#[test]
fn a_far_future_release_is_refused_before_it_can_make_an_unformattable_hold() {
    let log = support::Log::new()
        .at("2017-03-01T08:00:00Z", support::policy(TRAVIS, true, false))
        .at(
            "2017-03-01T08:00:00Z",
            support::detainer("D-1", "P-1002", support::local(TRAVIS), "charged"),
        )
        .at(
            "2017-03-01T09:00:00Z",
            support::local_release("P-1002", TRAVIS, "9999-12-31T23:59:59Z"),
        );
    let out = support::run(&log, None);
    assert!(!out.contains("R3.3"), "{out}");
    assert!(
        out.contains("! line 3: invalid (schema): /data/release_at: "),
        "{out}"
    );
}

/// The bounds are not tighter than they must be: the edges of the window, the largest
/// offsets, a leap second, the largest count, an integral float and brackets inside
/// strings are all accepted, and every decision they lead to satisfies its schema (a hold
/// from the last second of 2199 ends in 2200, which a decision may say).
#[test]
fn values_at_the_edges_of_the_bounds_are_accepted_and_decided() {
    use support::{Log, detainer, local, local_release, run};
    let log = Log::new()
        .at(
            "2000-01-01T00:00:00+23:59",
            support::policy(TRAVIS, true, false),
        )
        .at(
            "2000-01-01T00:00:00Z",
            detainer("D-1", "P-1002", local(TRAVIS), "charged"),
        )
        .at(
            "2000-01-01T00:00:00Z",
            detainer("D-2", "P-1004", local(TRAVIS), "charged"),
        )
        .at(
            "2016-12-31T23:59:60Z",
            local_release("P-1004", TRAVIS, "2016-12-31T23:59:60Z"),
        )
        .at(
            "2199-12-31T23:59:59-23:59",
            local_release("P-1002", TRAVIS, "2199-12-31T23:59:59-23:59"),
        )
        .raw(std::str::from_utf8(&capacity("1000000000", "34000.0")).unwrap())
        .raw(
            &with(
                other_policy("tx-bracket-county"),
                "/data/name",
                json!("[[[[[[[[[[[[[[[[[[[[ {{{{{{{{{{{{{{{{{{{{ \"quoted\" \\"),
            )
            .to_string(),
        );
    let out = run(&log, Some("2200-01-05T00:00:00Z"));
    // `run` checks each decision against its schema; here the hold and its end.
    assert!(
        out.contains("hold_from=2200-01-01T23:58:59Z hold_until=2200-01-03T23:58:59Z"),
        "{out}"
    );
    assert!(
        out.contains("hold_from=2016-12-31T23:59:60Z hold_until=2017-01-02T23:59:59Z"),
        "{out}"
    );
    assert!(!out.contains("invalid"), "{out}");
}

/// The policy of another jurisdiction `j`, for the bracket test above.
fn other_policy(j: &str) -> Value {
    let e = support::envelope(
        &format!("{j}-p1"),
        "2017-03-01T09:00:00Z",
        support::policy(j, false, false),
    );
    serde_json::from_str(&e).unwrap()
}

// ---------------------------------------------------------------------------------------
// Live.

/// Every hostile input, sent to the live service, comes back as a dead letter with its
/// reason and explanation; so do a message over the size limit, an event replayed by
/// another agency's user, a jurisdiction speaking for another, and a publisher nobody
/// configured. The service stays up and ready, decides a valid event afterwards, and its
/// journal holds only the valid events and the one semantic reject.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_inputs_are_dead_lettered_live_and_the_service_carries_on() {
    let broker = Broker::new("hostile");
    let publishers = "bop=bop,ice=ice,court=court,j-tx-travis-county=jurisdiction:tx-travis-county,\
                      j-nv-clark-county=jurisdiction:nv-clark-county";
    let mut serve = Serve::start("hostile", &broker, publishers);
    let dead = Watch::start(&broker.url(), "", "handoff.dead-letter").await;
    let audit = Watch::start(&broker.url(), "handoff.decisions", "audit").await;
    let (_, operator) = broker.add_user("operator", &["impersonator"]);
    let p = Publisher::connect(&operator).await;

    // A valid BOP event, decided (R1.4), before the hostile ones.
    let first = bop_release("sentry-h0", "P-1000");
    p.event(&first).await;
    audit
        .until(60, "the first decision", |s| s.len() == 1)
        .await;

    let max = handoff::live::config::Amqp::default().max_message_bytes;
    let mut oversized = bytes(&bop_release("sentry-big", "P-1005"));
    oversized.resize(max + 1, b' ');
    let mut at_limit_is_parsed = bytes(&with(
        bop_release("sentry-big", "P-1005"),
        "/data/facility",
        json!("fci.bastrop#"),
    ));
    at_limit_is_parsed.resize(max, b' ');
    let clark_for_travis = with(
        local_release(),
        "/source",
        json!("urn:jurisdiction:nv-clark-county"),
    );
    let clark_policy_for_travis = policy();
    let answer = event(
        "eagle-h9",
        "ice.first_refusal.response",
        "urn:agency:ice:eagle",
        json!({"offer_id": "no-such-offer", "person_id": "P-1000", "decision": "accept"}),
    );
    let mut cases = vec![
        Case {
            name: "one byte over the size limit (a valid event padded)",
            body: oversized,
            routing_key: "bop.release.scheduled",
            user: Some("bop"),
            code: "oversized",
            detail: vec![Box::leak(
                format!("{} bytes; the limit is {max}", max + 1).into_boxed_str(),
            )],
        },
        Case {
            name: "at the size limit, parsed (and refused for its facility)",
            body: at_limit_is_parsed,
            routing_key: "bop.release.scheduled",
            user: Some("bop"),
            code: "schema",
            detail: vec!["/data/facility", "(pattern)"],
        },
        Case {
            name: "ICE's user replaying BOP's event",
            body: bytes(&first),
            routing_key: "bop.release.scheduled",
            user: Some("ice"),
            code: "unauthorized",
            detail: vec!["ice may not publish bop.release.scheduled"],
        },
        Case {
            name: "Clark County's user releasing Travis County's prisoner",
            body: bytes(&clark_for_travis),
            routing_key: "local.release.due",
            user: Some("j-nv-clark-county"),
            code: "unauthorized",
            detail: vec![
                "jurisdiction:nv-clark-county may not speak for jurisdiction tx-travis-county",
            ],
        },
        Case {
            name: "Clark County's user setting Travis County's policy",
            body: bytes(&clark_policy_for_travis),
            routing_key: "jurisdiction.policy.updated",
            user: Some("j-nv-clark-county"),
            code: "unauthorized",
            detail: vec!["may not speak for jurisdiction tx-travis-county"],
        },
        Case {
            name: "a jurisdiction's user claiming ICE custody",
            body: bytes(&event(
                "tcso-h3",
                "ice.custody.assumed",
                "urn:jurisdiction:tx-travis-county",
                json!({"person_id": "P-1003", "from": {"kind": "local", "id": TRAVIS}}),
            )),
            routing_key: "ice.custody.assumed",
            user: Some("j-tx-travis-county"),
            code: "unauthorized",
            detail: vec!["jurisdiction:tx-travis-county may not publish ice.custody.assumed"],
        },
        Case {
            name: "a jurisdiction's user reporting a humanitarian factor",
            body: bytes(&with(
                release_factor(),
                "/source",
                json!("urn:jurisdiction:tx-travis-county"),
            )),
            routing_key: "ice.release.factor",
            user: Some("j-tx-travis-county"),
            code: "unauthorized",
            detail: vec!["jurisdiction:tx-travis-county may not publish ice.release.factor"],
        },
        Case {
            name: "BOP's user reporting a removal status",
            body: bytes(&with(
                removal_status(),
                "/source",
                json!("urn:agency:bop:sentry"),
            )),
            routing_key: "ice.removal.status",
            user: Some("bop"),
            code: "unauthorized",
            detail: vec!["bop may not publish ice.removal.status"],
        },
        Case {
            // Unchecked, this took the id of BOP's next event (sent below), which was then
            // acknowledged as a duplicate and never decided.
            name: "Travis County's user sending under BOP's source, with BOP's next id",
            body: bytes(&with(
                with(local_release(), "/source", json!("urn:agency:bop:sentry")),
                "/id",
                json!("sentry-h4"),
            )),
            routing_key: "local.release.due",
            user: Some("j-tx-travis-county"),
            code: "unauthorized",
            detail: vec![
                "jurisdiction:tx-travis-county may not send from source \"urn:agency:bop:sentry\"",
                "must be urn:jurisdiction:tx-travis-county",
            ],
        },
        Case {
            name: "a user nobody configured",
            body: bytes(&bop_release("sentry-h2", "P-1006")),
            routing_key: "bop.release.scheduled",
            user: Some("mallory"),
            code: "unauthorized",
            detail: vec!["user \"mallory\" is not a configured publisher"],
        },
        Case {
            name: "no user-id",
            body: bytes(&bop_release("sentry-h3", "P-1007")),
            routing_key: "bop.release.scheduled",
            user: None,
            code: "unauthorized",
            detail: vec!["no user-id property"],
        },
        Case {
            name: "an answer to an offer never made (journaled: it moved the clock)",
            body: bytes(&answer),
            routing_key: "ice.first_refusal.response",
            user: Some("ice"),
            code: "unknown_offer",
            detail: vec!["no open first-refusal offer"],
        },
    ];
    cases.extend(hostile_inputs());
    for c in &cases {
        let confirm = p.send(&c.body, c.routing_key, c.user).await;
        assert!(
            matches!(confirm, Confirmation::Ack(None)),
            "{}: {confirm:?}",
            c.name
        );
    }
    // BOP's own user replaying its event: a duplicate, acknowledged and nothing more.
    let confirm = p
        .send(&bytes(&first), "bop.release.scheduled", Some("bop"))
        .await;
    assert!(matches!(confirm, Confirmation::Ack(None)), "{confirm:?}");

    let seen = dead
        .until(120, "every dead letter", |s| s.len() >= cases.len())
        .await;
    assert_eq!(seen.len(), cases.len());
    for (s, c) in seen.iter().zip(&cases) {
        let reason = s.headers.get("x-handoff-reason").map_or("", String::as_str);
        let detail = s.headers.get("x-handoff-detail").map_or("", String::as_str);
        assert_explained(c.name, reason, detail, c);
        assert_eq!(s.routing_key, c.code, "{}", c.name);
        assert_eq!(
            s.headers.get("x-handoff-user-id").map(String::as_str),
            c.user,
            "{}",
            c.name
        );
    }

    // Still up and ready, and a valid event sent afterwards is decided (BOP's, with the id
    // Travis County's user tried to take).
    assert_eq!(
        http_get(serve.http, "/readyz").map(|r| r.0),
        Some(200),
        "{}",
        serve.logs()
    );
    let last = bop_release("sentry-h4", "P-1008");
    p.event(&last).await;
    let decisions = audit.until(60, "the last decision", |s| s.len() >= 2).await;
    assert_eq!(decisions.len(), 2, "{decisions:?}");
    for (d, cause) in decisions.iter().zip(["sentry-h0", "sentry-h4"]) {
        let v: Value = serde_json::from_str(&d.body).unwrap();
        assert_eq!(v["data"]["caused_by"], cause);
    }

    // The journal: the two valid events and the semantic reject, nothing else; and
    // replay accepts every line of it.
    serve.wait_journal(3);
    let journal = serve.journal_lines();
    let ids: Vec<String> = journal
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids, ["sentry-h0", "eagle-h9", "sentry-h4"]);
    let (_, notes, summary) =
        handoff::answers::replay::replay_str(&(journal.join("\n") + "\n"), None);
    assert_eq!(summary.invalid, 0, "{notes:?}");
    assert_eq!(summary.rejected, 1, "{notes:?}");

    let metrics = serve.metrics();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &cases {
        *counts.entry(c.code).or_default() += 1;
    }
    for (code, n) in counts {
        let line = format!("handoff_dead_letters_total{{reason=\"{code}\"}} {n}");
        assert!(metrics.contains(&line), "{line} not in\n{metrics}");
    }
    assert!(serve.terminate().success(), "{}", serve.logs());
}
