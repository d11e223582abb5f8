//! Why a decision was made: the facts its rule weighed, as the engine saw them at the
//! moment the rule fired, filled in by the rule itself (`engine/r1.rs` ... `r4.rs`).
//!
//! Each [`Decision`](crate::model::Decision) carries one [`Why`], one variant per rule
//! family. The decision's own fields (custodians, basis, `effective_at`, the ids of the
//! detainer, claim, writ and offer) are not repeated here unless a fact needs them
//! beside it; `Why` holds what the wire form does not say: a detainer's criminal
//! status and offenses, the claimant's policy stance, the offer's deadline, the hold
//! window, ICE's beds before a placement. `handoff explain` renders these facts instead
//! of re-deriving the rules, so it cannot drift from them.
//!
//! The facts are not part of the wire form: `edge::wire` does not serialize them and
//! replay output does not change. Strings are shared with the engine's own state
//! (`Arc<str>`, `Arc<[String]>`), so filling them in clones pointers, not text.

use std::sync::Arc;

use crate::model::{CriminalStatus, Factor, Time};

/// The facts behind one decision, by rule family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// R1.1–R1.6: BOP schedules a release of a person it holds.
    BopRelease {
        /// The `release_at` of the schedule.
        release_at: Time,
        /// The latest active detainer, if any (none: R1.3, R1.4, or R1.1 without one).
        detainer: Option<DetainerFacts>,
        /// R1.1: the earliest writ not yet executed, which decides first.
        writ: Option<WritFacts>,
        /// The claim weighed: the claimant's (R1.3, R1.5, R1.6), or for R1.1 the writ
        /// jurisdiction's own claim, if it has one.
        claim: Option<ClaimFacts>,
        /// The claimant's policy as it stood then (R1.5, R1.6).
        stance: Option<Stance>,
    },
    /// R1.7–R1.11: an open first-refusal offer ends (answered, lapsed or void).
    OfferEnds {
        offer: OfferFacts,
        /// The detainer the outcome cites: the offer's own if still active, else the
        /// latest active one; none after R1.11.
        detainer: Option<DetainerFacts>,
        /// R1.10: the writ that voided the offer.
        writ: Option<WritFacts>,
        /// R1.7: ICE took custody (`ice.custody.assumed`) while the offer was open,
        /// rather than answering it.
        custody_assumed: bool,
    },
    /// R2.1, R2.2: a jurisdiction takes the person from ICE.
    FromIce {
        /// When ICE's custody took effect, if handoff decided it.
        since: Option<Time>,
        /// R2.1: the writ.
        writ: Option<WritFacts>,
        /// The receiving jurisdiction's claim (R2.2 always; R2.1 if it has one).
        claim: Option<ClaimFacts>,
        /// The receiving jurisdiction's policy as it stood then.
        stance: Stance,
    },
    /// R3.1–R3.3: a jurisdiction would release a person it holds.
    LocalRelease {
        /// The `release_at` of the notice.
        release_at: Time,
        /// R3.2: the latest active detainer; R3.3: the latest one the jurisdiction has
        /// not declined; R3.1: none.
        detainer: Option<DetainerFacts>,
        /// The jurisdiction's policy as it stood then. R3.2 with `honors_detainers`
        /// means the jurisdiction had declined every active detainer.
        stance: Stance,
    },
    /// R3.4–R3.7: a 48-hour hold ends.
    HoldEnds {
        hold: HoldFacts,
        /// The detainer the hold rested on (for R3.6, the one just withdrawn).
        detainer: Option<DetainerFacts>,
        /// R3.5: `hold_until` passed on handoff's own timer (`false`: the jurisdiction
        /// reported the hold expired first).
        on_timer: bool,
    },
    /// R4.1: ICE takes custody of a person BOP or a jurisdiction holds, with no offer
    /// open and no hold.
    CustodyAssumed {
        /// When the giving custodian's custody took effect, if handoff decided it.
        since: Option<Time>,
        /// The latest active detainer, if any.
        detainer: Option<DetainerFacts>,
    },
    /// R4.2: ICE places the person.
    Placement {
        /// The `criminal_status` of the person's latest detainer; `None` when no
        /// detainer was ever issued (the rule then uses `none`).
        criminal_status: Option<CriminalStatus>,
        /// ICE's beds just before the placement; `None` when no capacity is known.
        beds: Option<Beds>,
    },
    /// R6: ICE moves a detained person to ATD (or R6.3 places one there directly).
    Review(Review),
}

/// The facts of an R6 review of one person, as they stood when it moved them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    /// The `criminal_status` of the person's latest detainer (`None`: never a detainer).
    pub criminal_status: Option<CriminalStatus>,
    /// The humanitarian factor ICE reported, if any.
    pub factor: Option<Factor>,
    /// The latest `ice.removal.status`, if any.
    pub removal: Option<Removal>,
    /// When detention began; `None` for a person R6.3 places in ATD at once.
    pub detained_since: Option<Time>,
    /// R6.1: ICE's beds just before the move (occupancy over the funded beds).
    pub beds: Option<Beds>,
    /// R6.1: the person the review would have moved next, and the first criterion of
    /// its order that put this one before them; `None` when nobody else was movable.
    pub ahead_of: Option<Ahead>,
}

/// Who came next in a funding review (R6.1), and why this person came first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ahead {
    pub person_id: String,
    pub by: Order,
}

/// The criteria of R6.1's order, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// `none` before `charged`.
    CriminalStatus,
    /// A humanitarian factor first.
    Factor,
    /// Removal not foreseeable first.
    Removal,
    /// The longest detained first.
    DetainedLonger,
    /// Then by `person_id`.
    PersonId,
}

/// An `ice.removal.status` as the engine keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    pub country: Arc<str>,
    pub foreseeable: bool,
}

/// A detainer as the rule saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetainerFacts {
    pub id: Arc<str>,
    pub criminal_status: CriminalStatus,
    pub offenses: Arc<[String]>,
}

/// A local claim on the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimFacts {
    pub id: Arc<str>,
    pub jurisdiction_id: Arc<str>,
}

/// A court's writ (its id and jurisdiction are on the decision).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WritFacts {
    pub id: Arc<str>,
    pub court: Arc<str>,
}

/// A jurisdiction's policy at the moment a rule weighed it (a jurisdiction never heard
/// of does neither).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stance {
    pub honors_detainers: bool,
    pub return_agreement: bool,
}

/// The first-refusal offer an outcome ends (its id is the decision's `offer_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferFacts {
    pub respond_by: Time,
    /// The claimant the offer was made against.
    pub claim: ClaimFacts,
}

/// A hold's window and holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldFacts {
    pub jurisdiction_id: Arc<str>,
    pub from: Time,
    pub until: Time,
}

/// ICE's detention beds: funded, and occupied as the engine counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Beds {
    pub funded: u64,
    pub occupied: u64,
}

impl Why {
    /// The detainer the rule weighed, whatever the family.
    pub fn detainer(&self) -> Option<&DetainerFacts> {
        match self {
            Why::BopRelease { detainer, .. }
            | Why::OfferEnds { detainer, .. }
            | Why::LocalRelease { detainer, .. }
            | Why::HoldEnds { detainer, .. }
            | Why::CustodyAssumed { detainer, .. } => detainer.as_ref(),
            Why::FromIce { .. } | Why::Placement { .. } | Why::Review(_) => None,
        }
    }

    /// The claim the rule weighed (for an offer's outcome, the offer's claimant).
    pub fn claim(&self) -> Option<&ClaimFacts> {
        match self {
            Why::BopRelease { claim, .. } | Why::FromIce { claim, .. } => claim.as_ref(),
            Why::OfferEnds { offer, .. } => Some(&offer.claim),
            Why::LocalRelease { .. }
            | Why::HoldEnds { .. }
            | Why::CustodyAssumed { .. }
            | Why::Placement { .. }
            | Why::Review(_) => None,
        }
    }

    /// The writ that decided (R1.1, R1.10, R2.1).
    pub fn writ(&self) -> Option<&WritFacts> {
        match self {
            Why::BopRelease { writ, .. }
            | Why::OfferEnds { writ, .. }
            | Why::FromIce { writ, .. } => writ.as_ref(),
            Why::LocalRelease { .. }
            | Why::HoldEnds { .. }
            | Why::CustodyAssumed { .. }
            | Why::Placement { .. }
            | Why::Review(_) => None,
        }
    }

    /// The policy of the jurisdiction the rule weighed, as it stood then.
    pub fn stance(&self) -> Option<Stance> {
        match self {
            Why::BopRelease { stance, .. } => *stance,
            Why::FromIce { stance, .. } | Why::LocalRelease { stance, .. } => Some(*stance),
            Why::OfferEnds { .. }
            | Why::HoldEnds { .. }
            | Why::CustodyAssumed { .. }
            | Why::Placement { .. }
            | Why::Review(_) => None,
        }
    }
}
