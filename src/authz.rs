//! Who may publish what (ICD section 2): an AMQP user is mapped to an agency by
//! configuration, and each event type names the agencies that may send it.
//!
//! The user comes from the AMQP `user-id` property, which RabbitMQ checks against the
//! connection's user, so a publisher cannot claim to be someone else.

use std::fmt;
use std::str::FromStr;

use crate::model::{Event, EventBody};

/// The kind of party a publishing user speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Agency {
    /// The Federal Bureau of Prisons.
    Bop,
    /// Immigration and Customs Enforcement.
    Ice,
    /// A court (federal or state) that issues writs.
    Court,
    /// A county or city, which may only speak for its own `jurisdiction_id`.
    Jurisdiction(String),
}

impl fmt::Display for Agency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Agency::Bop => f.write_str("bop"),
            Agency::Ice => f.write_str("ice"),
            Agency::Court => f.write_str("court"),
            Agency::Jurisdiction(id) => write!(f, "jurisdiction:{id}"),
        }
    }
}

impl FromStr for Agency {
    type Err = String;

    /// Reads `bop`, `ice`, `court` or `jurisdiction:<jurisdiction_id>`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "bop" => Ok(Agency::Bop),
            "ice" => Ok(Agency::Ice),
            "court" => Ok(Agency::Court),
            _ => match s.strip_prefix("jurisdiction:") {
                Some(id) if crate::model::is_jurisdiction_id(id) => {
                    Ok(Agency::Jurisdiction(id.to_string()))
                }
                Some(id) => Err(format!("{id:?} is not a jurisdiction_id")),
                None => Err(format!(
                    "{s:?} is not an agency (bop, ice, court or jurisdiction:<id>)"
                )),
            },
        }
    }
}

/// Why a publisher may not send an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unauthorized {
    #[error("the message has no user-id property, so its publisher is unknown")]
    NoUserId,
    #[error("user {0:?} is not a configured publisher")]
    UnknownUser(String),
    #[error("{agency} may not publish {event_type}")]
    WrongAgency {
        agency: String,
        event_type: &'static str,
    },
    #[error("{agency} may not speak for jurisdiction {named}")]
    OtherJurisdiction { agency: String, named: String },
    /// `source` + `id` identify an event (a repeat is a duplicate), so a source in the
    /// wrong hands could make another agency's real event look like a repeat, to be
    /// dropped.
    #[error("{agency} may not send from source {claimed:?}: its events' source must be {expected}")]
    ForeignSource {
        agency: String,
        claimed: String,
        expected: String,
    },
}

/// Where an agency's sources live (the naming of ICD section 1's examples): BOP's systems
/// are `urn:agency:bop:<system>`, ICE's `urn:agency:ice:<system>`, courts'
/// `urn:court:<court>`, and a jurisdiction's `urn:jurisdiction:<jurisdiction_id>`
/// (optionally followed by `:<system>`).
fn source_namespace(agency: &Agency) -> String {
    match agency {
        Agency::Bop => "urn:agency:bop:".into(),
        Agency::Ice => "urn:agency:ice:".into(),
        Agency::Court => "urn:court:".into(),
        Agency::Jurisdiction(id) => format!("urn:jurisdiction:{id}"),
    }
}

/// Whether `source` names one of `agency`'s own systems.
pub fn owns_source(agency: &Agency, source: &str) -> bool {
    let ns = source_namespace(agency);
    match agency {
        Agency::Jurisdiction(_) => source
            .strip_prefix(ns.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(':')),
        _ => source.len() > ns.len() && source.starts_with(ns.as_str()),
    }
}

/// The jurisdiction an event speaks for, for the types a jurisdiction may send: the
/// `jurisdiction_id` of its data.
pub fn voice(event: &Event) -> Option<&str> {
    match &event.body {
        EventBody::PolicyUpdated {
            jurisdiction_id, ..
        }
        | EventBody::ClaimLodged {
            jurisdiction_id, ..
        }
        | EventBody::LocalReleaseDue {
            jurisdiction_id, ..
        }
        | EventBody::DetainerDeclined {
            jurisdiction_id, ..
        }
        | EventBody::HoldExpired {
            jurisdiction_id, ..
        } => Some(jurisdiction_id),
        _ => None,
    }
}

/// The agency that ordinarily sends an event: ICE for a policy from one of ICE's systems,
/// else the jurisdiction it speaks for when there is one, else the one agency allowed.
pub fn usual_sender(event: &Event) -> Agency {
    if matches!(event.body, EventBody::PolicyUpdated { .. })
        && owns_source(&Agency::Ice, &event.source)
    {
        return Agency::Ice;
    }
    if let Some(j) = voice(event) {
        return Agency::Jurisdiction(j.to_string());
    }
    match &event.body {
        EventBody::BopReleaseScheduled { .. } => Agency::Bop,
        EventBody::WritIssued { .. } => Agency::Court,
        _ => Agency::Ice,
    }
}

/// Checks that `agency` may publish `event` (ICD section 2, "who may publish"), and that
/// the event comes from one of the agency's own sources.
pub fn check(agency: &Agency, event: &Event) -> Result<(), Unauthorized> {
    may_send(agency, event)?;
    if owns_source(agency, &event.source) {
        Ok(())
    } else {
        Err(Unauthorized::ForeignSource {
            agency: agency.to_string(),
            claimed: event.source.clone(),
            expected: match agency {
                Agency::Jurisdiction(_) => source_namespace(agency),
                _ => format!("{}<system>", source_namespace(agency)),
            },
        })
    }
}

/// The type half of [`check`]: ICD section 2's table.
fn may_send(agency: &Agency, event: &Event) -> Result<(), Unauthorized> {
    let wrong = || Unauthorized::WrongAgency {
        agency: agency.to_string(),
        event_type: event.body.type_name(),
    };
    match (&event.body, voice(event)) {
        // A policy may come from ICE as well as from the jurisdiction itself.
        (EventBody::PolicyUpdated { .. }, _) if *agency == Agency::Ice => Ok(()),
        (_, Some(named)) => match agency {
            Agency::Jurisdiction(id) if id == named => Ok(()),
            Agency::Jurisdiction(_) => Err(Unauthorized::OtherJurisdiction {
                agency: agency.to_string(),
                named: named.to_string(),
            }),
            _ => Err(wrong()),
        },
        (_, None) if usual_sender(event) == *agency => Ok(()),
        (_, None) => Err(wrong()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::parse_event;

    fn sample(event_type: &str) -> Event {
        include_str!("../samples/week.jsonl")
            .lines()
            .map(|l| parse_event(l).unwrap())
            .find(|e| e.body.type_name() == event_type)
            .unwrap_or_else(|| panic!("no {event_type} in the sample"))
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
        ];
        assert_eq!(table.len(), crate::schemas::EVENT_TYPES.len());
        for (t, allowed) in table {
            let event = sample(t);
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
}
