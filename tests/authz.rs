//! Who may publish what (ICD section 2), checked on real events of the sample week.

use handoff::edge::envelope::parse_event;
use handoff_core::authz::*;
use handoff_core::model::Event;

fn sample(event_type: &str) -> Event {
    include_str!("../samples/week.jsonl")
        .lines()
        .map(|l| parse_event(l).unwrap())
        .find(|e| e.body.type_name() == event_type)
        .unwrap_or_else(|| panic!("no {event_type} in the sample"))
}

/// An event of one of ICD version 2's ICE review types (`ice.removal.status`,
/// `ice.release.factor`), which the sample week does not hold: built from JSON and read
/// through the envelope, as the service reads it. `None` for the other types.
fn review_event(event_type: &str) -> Option<Event> {
    let data = match event_type {
        "ice.removal.status" => r#"{"person_id":"P-100234","country":"VE","foreseeable":false}"#,
        "ice.release.factor" => r#"{"person_id":"P-100234","factor":"primary_caretaker"}"#,
        _ => return None,
    };
    let line = format!(
        r#"{{"specversion":"1.0","id":"ice-review-1","source":"urn:agency:ice:eagle","type":"{event_type}","time":"2017-03-02T09:00:00Z","subject":"P-100234","datacontenttype":"application/json","data":{data}}}"#
    );
    Some(parse_event(&line).unwrap_or_else(|e| panic!("{event_type}: {e}")))
}

/// ICD section 2, row by row: which agencies may send each type (Travis County's own
/// events; Clark County is another jurisdiction). Sources are checked below.
#[test]
fn who_may_publish_each_type() {
    let travis = Agency::Jurisdiction("tx-travis-county".into());
    let clark = Agency::Jurisdiction("nv-clark-county".into());
    let table: &[(&str, &[&Agency])] = &[
        ("jurisdiction.policy.updated", &[&travis, &Agency::Ice]),
        ("ice.detainer.issued", &[&Agency::Ice]),
        ("ice.detainer.withdrawn", &[&Agency::Ice]),
        ("local.claim.lodged", &[&travis]),
        ("bop.release.scheduled", &[&Agency::Bop]),
        ("ice.first_refusal.response", &[&Agency::Ice]),
        ("court.writ.issued", &[&Agency::Court]),
        ("local.release.due", &[&travis]),
        ("local.detainer.declined", &[&travis]),
        ("hold.expired", &[&travis]),
        ("ice.custody.assumed", &[&Agency::Ice]),
        ("ice.capacity.updated", &[&Agency::Ice]),
        ("ice.removal.status", &[&Agency::Ice]),
        ("ice.release.factor", &[&Agency::Ice]),
    ];
    assert_eq!(table.len(), handoff_core::model::EventType::ALL.len());
    for (t, allowed) in table {
        let event = review_event(t).unwrap_or_else(|| sample(t));
        assert_eq!(event.body.type_name(), *t);
        for agency in [&Agency::Bop, &Agency::Ice, &Agency::Court, &travis, &clark] {
            let ok = may_send(agency, &event).is_ok();
            assert_eq!(ok, allowed.contains(&agency), "{agency} and {t}");
            if !ok && *agency == clark && voice(&event).is_some() {
                assert!(matches!(
                    may_send(agency, &event),
                    Err(Unauthorized::OtherJurisdiction { .. })
                ));
            }
        }
        assert!(check(&usual_sender(&event), &event).is_ok(), "{t}");
    }
}

/// One agency's user sending an event under another's source is refused, so it cannot
/// take an id the other will use and make the real event a "duplicate".
#[test]
fn an_agency_may_send_only_from_its_own_sources() {
    let travis = Agency::Jurisdiction("tx-travis-county".into());
    let mut claim = sample("local.claim.lodged");
    assert!(check(&travis, &claim).is_ok());
    claim.source = "urn:jurisdiction:tx-travis-county:jail-records".into();
    assert!(check(&travis, &claim).is_ok());
    for squatted in [
        "urn:agency:bop:sentry",
        "urn:jurisdiction:tx-travis-county-annex",
        "urn:jurisdiction:nv-clark-county",
        "urn:jurisdiction:",
    ] {
        claim.source = squatted.into();
        assert!(
            matches!(
                check(&travis, &claim),
                Err(Unauthorized::ForeignSource { .. })
            ),
            "{squatted}"
        );
    }
    let mut release = sample("bop.release.scheduled");
    release.source = "urn:agency:bop:".into();
    assert!(check(&Agency::Bop, &release).is_err());
    release.source = "urn:agency:ice:eagle".into();
    assert!(check(&Agency::Bop, &release).is_err());
    // ICE may send a policy from its own system; the jurisdiction may not use ICE's.
    let mut policy = sample("jurisdiction.policy.updated");
    policy.source = "urn:agency:ice:eagle".into();
    assert!(check(&Agency::Ice, &policy).is_ok());
    assert_eq!(usual_sender(&policy), Agency::Ice);
    assert!(check(&travis, &policy).is_err());
}

#[test]
fn agencies_read_as_configured() {
    assert_eq!("ice".parse::<Agency>(), Ok(Agency::Ice));
    assert_eq!(
        "jurisdiction:tx-travis-county".parse::<Agency>(),
        Ok(Agency::Jurisdiction("tx-travis-county".into()))
    );
    assert!("jurisdiction:TX".parse::<Agency>().is_err());
    assert!("sheriff".parse::<Agency>().is_err());
    assert_eq!(
        Agency::Jurisdiction("a1".into()).to_string(),
        "jurisdiction:a1"
    );
}
