//! Domain types: validated events going into the engine and decisions coming out.
//!
//! Nothing here knows about JSON. `envelope` turns wire messages into these types once,
//! and `wire` turns decisions back into CloudEvents; the engine sees only what is here.

use std::sync::Arc;

use chrono::{DateTime, Utc};

/// Declares a fieldless enum whose every variant has one wire name, written once here:
/// `ALL` and `NAMES` (in ICD order), `as_str` and `parse`. Every list of these names
/// elsewhere (schemas, bindings, metrics labels, docs) derives from `ALL`.
macro_rules! named_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name { $($(#[$vmeta])* $variant,)+ }

        impl $name {
            /// Every value, in the order of the ICD.
            pub const ALL: [$name; [$($text),+].len()] = [$($name::$variant),+];
            /// The wire names of [`Self::ALL`], in the same order.
            pub const NAMES: [&'static str; [$($text),+].len()] = [$($text),+];

            /// The wire name.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)+ }
            }

            /// The value with this wire name; `None` for any other string (never a default).
            pub fn parse(s: &str) -> Option<$name> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// A point in time. Always UTC inside handoff; offsets are normalised at the edge.
pub type Time = DateTime<Utc>;

/// Who holds a person. `Ice` is a single custodian, whatever the facility.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Custodian {
    /// A Bureau of Prisons facility, by facility id.
    Bop(String),
    /// A local jurisdiction (county, city, state), by `jurisdiction_id`.
    Local(String),
    Ice,
}

impl Custodian {
    /// The kind of custodian.
    pub fn custodian_kind(&self) -> CustodianKind {
        match self {
            Custodian::Bop(_) => CustodianKind::Bop,
            Custodian::Local(_) => CustodianKind::Local,
            Custodian::Ice => CustodianKind::Ice,
        }
    }

    /// The `kind` attribute of the wire form: `bop`, `local` or `ice`.
    pub fn kind(&self) -> &'static str {
        self.custodian_kind().as_str()
    }

    /// The `id` attribute of the wire form: facility, jurisdiction, or `ice`.
    pub fn id(&self) -> &str {
        match self {
            Custodian::Bop(id) | Custodian::Local(id) => id,
            Custodian::Ice => "ice",
        }
    }
}

named_enum! {
    /// A detainer's `criminal_status`.
    pub enum CriminalStatus {
        Convicted = "convicted",
        Charged = "charged",
        None = "none",
    }
}

named_enum! {
    /// A writ's `kind`.
    pub enum WritKind {
        AdProsequendum = "ad_prosequendum",
        AdTestificandum = "ad_testificandum",
        Other = "other",
    }
}

named_enum! {
    /// A humanitarian factor ICE has verified (`ice.release.factor`'s `factor`, R6.3).
    pub enum Factor {
        Medical = "medical",
        PrimaryCaretaker = "primary_caretaker",
    }
}

named_enum! {
    /// ICE's answer to a first-refusal offer (its `decision` field).
    pub enum Answer {
        Accept = "accept",
        Decline = "decline",
    }
}

named_enum! {
    /// A custodian's `kind` on the wire.
    pub enum CustodianKind {
        Bop = "bop",
        Local = "local",
        Ice = "ice",
    }
}

/// A validated inbound event: the envelope attributes the engine needs and a typed body.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The sending system (`urn:agency:ice:eagle`); with `id` it identifies the event.
    pub source: String,
    pub id: String,
    /// The sender's own timestamp (`time`).
    pub time: Time,
    /// When handoff accepted the event (`handoffreceived`), if it was journaled by handoff.
    pub received: Option<Time>,
    pub body: EventBody,
}

impl Event {
    /// The event's clock time (ICD section 5): `handoffreceived` when present, else `time`.
    pub fn clock_time(&self) -> Time {
        self.received.unwrap_or(self.time)
    }

    /// The person the event is about, for person events.
    pub fn person_id(&self) -> Option<&str> {
        self.body.person_id()
    }
}

/// The body of each inbound event type of ICD section 2.
#[derive(Debug, Clone, PartialEq)]
pub enum EventBody {
    PolicyUpdated {
        jurisdiction_id: String,
        name: String,
        state: String,
        honors_detainers: bool,
        return_agreement: bool,
    },
    DetainerIssued {
        detainer_id: String,
        person_id: String,
        custodian: Custodian,
        criminal_status: CriminalStatus,
        offenses: Vec<String>,
    },
    DetainerWithdrawn {
        detainer_id: String,
        person_id: String,
    },
    ClaimLodged {
        claim_id: String,
        person_id: String,
        jurisdiction_id: String,
        charges: Vec<String>,
    },
    BopReleaseScheduled {
        person_id: String,
        facility: String,
        release_at: Time,
    },
    FirstRefusalResponse {
        offer_id: String,
        person_id: String,
        answer: Answer,
    },
    WritIssued {
        writ_id: String,
        person_id: String,
        jurisdiction_id: String,
        kind: WritKind,
        court: String,
    },
    LocalReleaseDue {
        person_id: String,
        jurisdiction_id: String,
        release_at: Time,
    },
    DetainerDeclined {
        detainer_id: String,
        person_id: String,
        jurisdiction_id: String,
    },
    HoldExpired {
        person_id: String,
        detainer_id: String,
        jurisdiction_id: String,
    },
    CustodyAssumed {
        person_id: String,
        from: Custodian,
    },
    CapacityUpdated {
        funded_beds: u64,
        occupied_beds: u64,
    },
    RemovalStatus {
        person_id: String,
        country: String,
        foreseeable: bool,
    },
    ReleaseFactor {
        person_id: String,
        factor: Factor,
    },
}

named_enum! {
    /// The inbound event types of ICD section 2.
    pub enum EventType {
        PolicyUpdated = "jurisdiction.policy.updated",
        DetainerIssued = "ice.detainer.issued",
        DetainerWithdrawn = "ice.detainer.withdrawn",
        ClaimLodged = "local.claim.lodged",
        BopReleaseScheduled = "bop.release.scheduled",
        FirstRefusalResponse = "ice.first_refusal.response",
        WritIssued = "court.writ.issued",
        LocalReleaseDue = "local.release.due",
        DetainerDeclined = "local.detainer.declined",
        HoldExpired = "hold.expired",
        CustodyAssumed = "ice.custody.assumed",
        CapacityUpdated = "ice.capacity.updated",
        RemovalStatus = "ice.removal.status",
        ReleaseFactor = "ice.release.factor",
    }
}

named_enum! {
    /// The decision types of ICD section 3 (the CloudEvents `type` of a decision).
    pub enum DecisionType {
        Offer = "handoff.offer",
        Transfer = "handoff.transfer",
        Hold = "handoff.hold",
        Release = "handoff.release",
        Placement = "handoff.placement",
    }
}

impl EventBody {
    /// The ICD type of this body.
    pub fn event_type(&self) -> EventType {
        match self {
            EventBody::PolicyUpdated { .. } => EventType::PolicyUpdated,
            EventBody::DetainerIssued { .. } => EventType::DetainerIssued,
            EventBody::DetainerWithdrawn { .. } => EventType::DetainerWithdrawn,
            EventBody::ClaimLodged { .. } => EventType::ClaimLodged,
            EventBody::BopReleaseScheduled { .. } => EventType::BopReleaseScheduled,
            EventBody::FirstRefusalResponse { .. } => EventType::FirstRefusalResponse,
            EventBody::WritIssued { .. } => EventType::WritIssued,
            EventBody::LocalReleaseDue { .. } => EventType::LocalReleaseDue,
            EventBody::DetainerDeclined { .. } => EventType::DetainerDeclined,
            EventBody::HoldExpired { .. } => EventType::HoldExpired,
            EventBody::CustodyAssumed { .. } => EventType::CustodyAssumed,
            EventBody::CapacityUpdated { .. } => EventType::CapacityUpdated,
            EventBody::RemovalStatus { .. } => EventType::RemovalStatus,
            EventBody::ReleaseFactor { .. } => EventType::ReleaseFactor,
        }
    }

    /// The ICD type name of this body (`ice.detainer.issued`, ...).
    pub fn type_name(&self) -> &'static str {
        self.event_type().as_str()
    }

    pub fn person_id(&self) -> Option<&str> {
        match self {
            EventBody::PolicyUpdated { .. } | EventBody::CapacityUpdated { .. } => None,
            EventBody::DetainerIssued { person_id, .. }
            | EventBody::DetainerWithdrawn { person_id, .. }
            | EventBody::ClaimLodged { person_id, .. }
            | EventBody::BopReleaseScheduled { person_id, .. }
            | EventBody::FirstRefusalResponse { person_id, .. }
            | EventBody::WritIssued { person_id, .. }
            | EventBody::LocalReleaseDue { person_id, .. }
            | EventBody::DetainerDeclined { person_id, .. }
            | EventBody::HoldExpired { person_id, .. }
            | EventBody::CustodyAssumed { person_id, .. }
            | EventBody::RemovalStatus { person_id, .. }
            | EventBody::ReleaseFactor { person_id, .. } => Some(person_id),
        }
    }
}

/// The rule that produced a decision, as named in ICD section 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    R1_1,
    R1_2,
    R1_3,
    R1_4,
    R1_5,
    R1_6,
    R1_7,
    R1_8,
    R1_9,
    R1_10,
    R1_11,
    R2_1,
    R2_2,
    R3_1,
    R3_2,
    R3_3,
    R3_4,
    R3_5,
    R3_6,
    R3_7,
    R4_1,
    R4_2,
    R6_1,
    R6_2,
    R6_3,
}

impl Rule {
    /// Every rule, in ICD order.
    pub const ALL: [Rule; 25] = [
        Rule::R1_1,
        Rule::R1_2,
        Rule::R1_3,
        Rule::R1_4,
        Rule::R1_5,
        Rule::R1_6,
        Rule::R1_7,
        Rule::R1_8,
        Rule::R1_9,
        Rule::R1_10,
        Rule::R1_11,
        Rule::R2_1,
        Rule::R2_2,
        Rule::R3_1,
        Rule::R3_2,
        Rule::R3_3,
        Rule::R3_4,
        Rule::R3_5,
        Rule::R3_6,
        Rule::R3_7,
        Rule::R4_1,
        Rule::R4_2,
        Rule::R6_1,
        Rule::R6_2,
        Rule::R6_3,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::R1_1 => "R1.1",
            Rule::R1_2 => "R1.2",
            Rule::R1_3 => "R1.3",
            Rule::R1_4 => "R1.4",
            Rule::R1_5 => "R1.5",
            Rule::R1_6 => "R1.6",
            Rule::R1_7 => "R1.7",
            Rule::R1_8 => "R1.8",
            Rule::R1_9 => "R1.9",
            Rule::R1_10 => "R1.10",
            Rule::R1_11 => "R1.11",
            Rule::R2_1 => "R2.1",
            Rule::R2_2 => "R2.2",
            Rule::R3_1 => "R3.1",
            Rule::R3_2 => "R3.2",
            Rule::R3_3 => "R3.3",
            Rule::R3_4 => "R3.4",
            Rule::R3_5 => "R3.5",
            Rule::R3_6 => "R3.6",
            Rule::R3_7 => "R3.7",
            Rule::R4_1 => "R4.1",
            Rule::R4_2 => "R4.2",
            Rule::R6_1 => "R6.1",
            Rule::R6_2 => "R6.2",
            Rule::R6_3 => "R6.3",
        }
    }
}

named_enum! {
    /// The legal basis stated on a transfer, release or placement (ICD section 3).
    pub enum Basis {
        SentenceComplete = "sentence_complete",
        LocalClaim = "local_claim",
        Detainer = "detainer",
        JudicialWrit = "judicial_writ",
        ReturnAgreement = "return_agreement",
        FirstRefusalAccepted = "first_refusal_accepted",
        FirstRefusalDeclined = "first_refusal_declined",
        FirstRefusalLapsed = "first_refusal_lapsed",
        DetainerHold = "detainer_hold",
        HoldExpired = "hold_expired",
        DetainerDeclined = "detainer_declined",
        DetainerWithdrawn = "detainer_withdrawn",
        CustodyAssumed = "custody_assumed",
        PriorityDetention = "priority_detention",
        Capacity = "capacity",
        CapacityReview = "capacity_review",
        ProlongedDetention = "prolonged_detention",
        Humanitarian = "humanitarian",
    }
}

named_enum! {
    /// A condition attached to a transfer (ICD section 3).
    pub enum Condition {
        IceDetainerForwarded = "ice_detainer_forwarded",
        ReturnToIceBeforeRelease = "return_to_ice_before_release",
        ReturnToIceAfterProceedings = "return_to_ice_after_proceedings",
    }
}

named_enum! {
    pub enum Placement {
        Detain = "detain",
        Atd = "atd",
    }
}

named_enum! {
    /// How a person placed in Alternatives to Detention is supervised.
    pub enum Monitoring {
        AnkleMonitor = "ankle_monitor",
        Telephonic = "telephonic",
        OfficeCheckin = "office_checkin",
    }
}

/// A decision of the engine: who takes custody, when, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Deterministic id (see `ids`): a pure function of the cause and position.
    pub id: String,
    /// The clock time at which it was decided; a timer's deadline for timer decisions.
    pub time: Time,
    pub person_id: String,
    pub rule: Rule,
    /// The `id` of the causing event, or `timer:<kind>:<ref>`.
    pub caused_by: String,
    pub body: DecisionBody,
    /// The facts the rule used (not part of the wire form; `handoff explain` renders
    /// them).
    pub why: crate::why::Why,
    /// Who is told of it (ICD section 4), sorted by key, each once. Not part of the
    /// decision's wire form: the live service lists them in the `BCC` header, and
    /// `handoff replay --parties` prints them.
    pub parties: Vec<Party>,
}

/// An agency a decision is told to (ICD section 4). Its key names it: `party.ice`,
/// `party.bop.<facility id>`, `party.local.<jurisdiction_id>`; parties order as their keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Party {
    Bop(Arc<str>),
    Ice,
    Local(Arc<str>),
}

impl Party {
    /// The party a custodian is.
    pub fn of(custodian: &Custodian) -> Party {
        match custodian {
            Custodian::Bop(f) => Party::Bop(f.as_str().into()),
            Custodian::Local(j) => Party::Local(j.as_str().into()),
            Custodian::Ice => Party::Ice,
        }
    }

    /// The party's key, the routing key its queue is bound to.
    pub fn key(&self) -> String {
        match self {
            Party::Bop(f) => format!("party.bop.{f}"),
            Party::Ice => "party.ice".to_owned(),
            Party::Local(j) => format!("party.local.{j}"),
        }
    }

    /// The party a key names; `None` for anything else.
    pub fn from_key(key: &str) -> Option<Party> {
        let rest = key.strip_prefix("party.")?;
        if rest == "ice" {
            return Some(Party::Ice);
        }
        if let Some(f) = rest.strip_prefix("bop.") {
            return is_jurisdiction_id(f).then(|| Party::Bop(f.into()));
        }
        let j = rest.strip_prefix("local.")?;
        is_jurisdiction_id(j).then(|| Party::Local(j.into()))
    }
}

/// The type-specific part of a decision (ICD section 3).
#[derive(Debug, Clone, PartialEq)]
pub enum DecisionBody {
    Offer {
        offer_id: String,
        jurisdiction_id: String,
        jurisdiction_honors_detainers: bool,
        respond_by: Time,
        detainer_id: String,
    },
    Transfer {
        from: Custodian,
        to: Custodian,
        basis: Basis,
        conditions: Vec<Condition>,
        effective_at: Time,
        detainer_id: Option<String>,
        claim_id: Option<String>,
        writ_id: Option<String>,
        offer_id: Option<String>,
    },
    Hold {
        jurisdiction_id: String,
        detainer_id: String,
        hold_from: Time,
        hold_until: Time,
    },
    Release {
        from: Custodian,
        basis: Basis,
        effective_at: Time,
        detainer_id: Option<String>,
    },
    Placement {
        placement: Placement,
        monitoring: Option<Monitoring>,
        basis: Basis,
    },
}

impl DecisionBody {
    /// The decision's type.
    pub fn decision_type(&self) -> DecisionType {
        match self {
            DecisionBody::Offer { .. } => DecisionType::Offer,
            DecisionBody::Transfer { .. } => DecisionType::Transfer,
            DecisionBody::Hold { .. } => DecisionType::Hold,
            DecisionBody::Release { .. } => DecisionType::Release,
            DecisionBody::Placement { .. } => DecisionType::Placement,
        }
    }

    /// The CloudEvents `type` of the decision.
    pub fn type_name(&self) -> &'static str {
        self.decision_type().as_str()
    }
}

impl Decision {
    /// The routing key on `handoff.decisions` (ICD section 3).
    pub fn routing_key(&self) -> String {
        match &self.body {
            DecisionBody::Offer { .. } => "offer.ice".to_owned(),
            DecisionBody::Transfer { to, .. } => match to {
                Custodian::Local(j) => format!("transfer.local.{j}"),
                other => format!("transfer.{}", other.kind()),
            },
            DecisionBody::Hold {
                jurisdiction_id, ..
            } => format!("hold.{jurisdiction_id}"),
            DecisionBody::Release { from, .. } => format!("release.{}.{}", from.kind(), from.id()),
            DecisionBody::Placement { .. } => "placement.ice".to_owned(),
        }
    }
}

/// Whether `id` is a `jurisdiction_id` (ICD section 1: `^[a-z0-9][a-z0-9_-]{1,62}$`).
pub fn is_jurisdiction_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    (2..=63).contains(&bytes.len())
        && matches!(bytes[0], b'a'..=b'z' | b'0'..=b'9')
        && bytes[1..]
            .iter()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
}

#[cfg(test)]
mod party_tests {
    use super::*;

    /// A party's key names it and nothing else: keys round-trip, and what is not a key
    /// (another prefix, an id with a dot or a capital, a wildcard) is none.
    #[test]
    fn party_keys_round_trip_and_nothing_else_is_a_key() {
        for p in [
            Party::Ice,
            Party::Bop("fci-bastrop".into()),
            Party::Local("tx-travis-county".into()),
        ] {
            assert_eq!(Party::from_key(&p.key()), Some(p));
        }
        for not in [
            "party.bop.*",
            "party.local.TX",
            "party.local.tx.travis",
            "party.ice.x",
            "transfer.ice",
            "party.",
        ] {
            assert_eq!(Party::from_key(not), None, "{not}");
        }
        // Parties sort as their keys do.
        let mut ps = [
            Party::Local("a1".into()),
            Party::Ice,
            Party::Bop("zz".into()),
        ];
        ps.sort();
        let keys: Vec<String> = ps.iter().map(Party::key).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }
}
