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
        // Listed one by one, so a new event type must be placed on one side or the other.
        EventBody::DetainerIssued { .. }
        | EventBody::DetainerWithdrawn { .. }
        | EventBody::BopReleaseScheduled { .. }
        | EventBody::FirstRefusalResponse { .. }
        | EventBody::WritIssued { .. }
        | EventBody::CustodyAssumed { .. }
        | EventBody::CapacityUpdated { .. }
        | EventBody::RemovalStatus { .. }
        | EventBody::ReleaseFactor { .. } => None,
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
    match &event.body {
        EventBody::BopReleaseScheduled { .. } => Agency::Bop,
        EventBody::WritIssued { .. } => Agency::Court,
        EventBody::DetainerIssued { .. }
        | EventBody::DetainerWithdrawn { .. }
        | EventBody::FirstRefusalResponse { .. }
        | EventBody::CustodyAssumed { .. }
        | EventBody::CapacityUpdated { .. }
        | EventBody::RemovalStatus { .. }
        | EventBody::ReleaseFactor { .. } => Agency::Ice,
        // The types a jurisdiction speaks in (`voice`); a policy from outside ICE's
        // namespace is the jurisdiction's own.
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
        } => Agency::Jurisdiction(jurisdiction_id.clone()),
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
pub fn may_send(agency: &Agency, event: &Event) -> Result<(), Unauthorized> {
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

/// The parties that have a queue of their own to be told in (ICD section 4): BOP (for all
/// its facilities), ICE and jurisdictions; a court is never a party. Built from the
/// configured publishers and kept to those whose queue exists, it says which of a
/// decision's parties the broker cannot reach: a jurisdiction named by a writ but never
/// set up, say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Readers {
    bop: bool,
    ice: bool,
    locals: std::collections::BTreeSet<String>,
}

impl Readers {
    /// The readers among these agencies.
    pub fn of<'a>(agencies: impl IntoIterator<Item = &'a Agency>) -> Readers {
        let mut r = Readers::default();
        for a in agencies {
            match a {
                Agency::Bop => r.bop = true,
                Agency::Ice => r.ice = true,
                Agency::Court => {}
                Agency::Jurisdiction(j) => {
                    r.locals.insert(j.clone());
                }
            }
        }
        r
    }

    /// The agencies' names, as their queues are named (`agency.<name>` in the deployment):
    /// `bop`, `ice`, and each jurisdiction's id.
    pub fn names(&self) -> Vec<&str> {
        let fixed = [(self.bop, "bop"), (self.ice, "ice")];
        fixed
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| *n)
            .chain(self.locals.iter().map(String::as_str))
            .collect()
    }

    /// Keeps only the agencies whose name `keep` accepts (those whose queue exists).
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.bop = self.bop && keep("bop");
        self.ice = self.ice && keep("ice");
        self.locals.retain(|j| keep(j));
    }

    /// Whether the party has a queue to be told in.
    pub fn reaches(&self, party: &crate::model::Party) -> bool {
        use crate::model::Party;
        match party {
            Party::Bop(_) => self.bop,
            Party::Ice => self.ice,
            Party::Local(j) => self.locals.contains(&**j),
        }
    }

    /// The keys among `keys` (a decision's parties, ICD section 4) that no queue takes, or
    /// that are no party key at all.
    pub fn unreached<'k>(&self, keys: &'k [String]) -> Vec<&'k str> {
        keys.iter()
            .filter(|k| !crate::model::Party::from_key(k).is_some_and(|p| self.reaches(&p)))
            .map(String::as_str)
            .collect()
    }
}

#[cfg(test)]
mod readers_tests {
    use super::*;
    use crate::model::Party;

    #[test]
    fn every_publisher_but_a_court_reads() {
        let agencies = [
            Agency::Bop,
            Agency::Court,
            Agency::Jurisdiction("tx-travis-county".into()),
        ];
        let r = Readers::of(&agencies);
        assert!(r.reaches(&Party::Bop("fci-bastrop".into())));
        assert!(r.reaches(&Party::Local("tx-travis-county".into())));
        assert!(!r.reaches(&Party::Ice));
        assert!(!r.reaches(&Party::Local("tx-hays-county".into())));
        let keys: Vec<String> = [
            "party.bop.fci-bastrop",
            "party.ice",
            "party.local.tx-hays-county",
            "party.local.tx-travis-county",
            "transfer.ice",
        ]
        .map(String::from)
        .into();
        assert_eq!(
            r.unreached(&keys),
            ["party.ice", "party.local.tx-hays-county", "transfer.ice"]
        );
        assert_eq!(Readers::of(&[]).unreached(&keys).len(), keys.len());
        assert_eq!(r.names(), ["bop", "tx-travis-county"]);
        let mut r = r;
        r.retain(|n| n != "bop");
        assert_eq!(r.names(), ["tx-travis-county"]);
        assert!(!r.reaches(&Party::Bop("fci-bastrop".into())));
    }
}
