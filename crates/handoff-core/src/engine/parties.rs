//! Who is told of a decision (ICD section 4): its parties, a pure function of the person's
//! state just before the decision takes effect and of the decision itself, so replay and
//! the live service agree on them as they agree on the decisions.

use super::person::{Holder, Person};
use crate::model::{Custodian, DecisionBody, Party};

impl Holder {
    fn party(&self) -> Party {
        match self {
            Holder::Bop(f) => Party::Bop(f.clone()),
            Holder::Local(j) => Party::Local(j.clone()),
            Holder::Ice => Party::Ice,
        }
    }
}

/// The parties of `body`, a decision about `person` (whose state is taken before the
/// decision moves them), sorted by key, each once:
/// - the custodian before the decision (for an offer, the BOP facility holding the
///   person), and for a transfer its receiver;
/// - ICE, for an offer, a hold or a placement, when ICE gives or receives the person,
///   when the decision names a detainer, or while the person has an active detainer;
/// - every jurisdiction with an unsatisfied claim or an unexecuted writ for the person,
///   and the claimant an offer names.
pub(super) fn parties(person: &Person, body: &DecisionBody) -> Vec<Party> {
    let mut out = Vec::with_capacity(4);
    if let Some(h) = person.holder() {
        out.push(h.party());
    }
    let ice = match body {
        DecisionBody::Offer {
            jurisdiction_id, ..
        } => {
            out.push(Party::Local(jurisdiction_id.as_str().into()));
            true
        }
        DecisionBody::Hold { .. } | DecisionBody::Placement { .. } => true,
        DecisionBody::Transfer {
            from,
            to,
            detainer_id,
            ..
        } => {
            out.push(Party::of(to));
            *from == Custodian::Ice || *to == Custodian::Ice || detainer_id.is_some()
        }
        DecisionBody::Release {
            from, detainer_id, ..
        } => *from == Custodian::Ice || detainer_id.is_some(),
    };
    if ice || !person.detainers.is_empty() {
        out.push(Party::Ice);
    }
    out.extend(
        person
            .claims
            .iter()
            .map(|c| Party::Local(c.jurisdiction.clone())),
    );
    out.extend(
        person
            .writs()
            .iter()
            .map(|w| Party::Local(w.jurisdiction.as_str().into())),
    );
    out.sort_unstable();
    out.dedup();
    out
}
