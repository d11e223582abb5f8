//! Why an inbound message is dead-lettered: the reason codes of ICD section 2, in the
//! order they are checked. The routing key and the `x-handoff-reason` header of a dead
//! letter, the metric label and the dead-letter topology all derive from this one list.

use std::fmt;

/// A dead-letter reason code (ICD section 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeadLetterReason {
    Oversized,
    NotUtf8,
    TooDeep,
    NotJson,
    UnknownType,
    Schema,
    SubjectMismatch,
    BadField,
    Unauthorized,
    /// The rules' refusal: no open first-refusal offer has this id.
    UnknownOffer,
    /// The rules' refusal: the first-refusal offer lapsed before the answer came.
    LateResponse,
}

impl DeadLetterReason {
    /// Every reason, in ICD order (the order the checks run).
    pub const ALL: [DeadLetterReason; 11] = [
        DeadLetterReason::Oversized,
        DeadLetterReason::NotUtf8,
        DeadLetterReason::TooDeep,
        DeadLetterReason::NotJson,
        DeadLetterReason::UnknownType,
        DeadLetterReason::Schema,
        DeadLetterReason::SubjectMismatch,
        DeadLetterReason::BadField,
        DeadLetterReason::Unauthorized,
        DeadLetterReason::UnknownOffer,
        DeadLetterReason::LateResponse,
    ];

    /// The reason code as it appears on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::Oversized => "oversized",
            DeadLetterReason::NotUtf8 => "not_utf8",
            DeadLetterReason::TooDeep => "too_deep",
            DeadLetterReason::NotJson => "not_json",
            DeadLetterReason::UnknownType => "unknown_type",
            DeadLetterReason::Schema => "schema",
            DeadLetterReason::SubjectMismatch => "subject_mismatch",
            DeadLetterReason::BadField => "bad_field",
            DeadLetterReason::Unauthorized => "unauthorized",
            DeadLetterReason::UnknownOffer => "unknown_offer",
            DeadLetterReason::LateResponse => "late_response",
        }
    }

    /// Every reason code as text, in ICD order.
    pub fn codes() -> impl Iterator<Item = &'static str> {
        DeadLetterReason::ALL
            .into_iter()
            .map(DeadLetterReason::as_str)
    }

    /// Whether the rules refused the event (it is journaled as well as dead-lettered).
    pub fn is_refusal(self) -> bool {
        matches!(
            self,
            DeadLetterReason::UnknownOffer | DeadLetterReason::LateResponse
        )
    }
}

impl fmt::Display for DeadLetterReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for DeadLetterReason {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl From<handoff_core::engine::Reject> for DeadLetterReason {
    fn from(r: handoff_core::engine::Reject) -> Self {
        match r {
            handoff_core::engine::Reject::UnknownOffer => DeadLetterReason::UnknownOffer,
            handoff_core::engine::Reject::LateResponse => DeadLetterReason::LateResponse,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_icd_list_in_order() {
        let codes: Vec<&str> = DeadLetterReason::codes().collect();
        assert_eq!(
            codes,
            [
                "oversized",
                "not_utf8",
                "too_deep",
                "not_json",
                "unknown_type",
                "schema",
                "subject_mismatch",
                "bad_field",
                "unauthorized",
                "unknown_offer",
                "late_response",
            ]
        );
    }

    #[test]
    fn engine_refusals_map_to_their_codes() {
        use handoff_core::engine::Reject;
        for r in [Reject::UnknownOffer, Reject::LateResponse] {
            let reason = DeadLetterReason::from(r);
            assert_eq!(reason.as_str(), r.as_str());
            assert!(reason.is_refusal());
        }
    }
}
