//! R4: ICE takes custody (R4.1) and places the person, detained while beds last (R4.2);
//! and ICE's capacity reports (R5), which the placement counts against.

use super::Engine;
use super::custody::{Emitter, TransferSpec};
use crate::model::{
    Basis, CriminalStatus, Custodian, DecisionBody, Monitoring, Placement, Rule, Time,
};
use crate::why::{Beds, Why};

/// ICE's detention capacity as last reported, and the beds handoff has filled since.
#[derive(Debug, Clone, Copy)]
pub(super) struct Capacity {
    pub(super) funded: u64,
    pub(super) occupied: u64,
}

impl Engine {
    /// `ice.capacity.updated` (R5): the latest report replaces the count (a funding
    /// review, R6.1, follows).
    pub(super) fn capacity_updated(&mut self, funded: u64, occupied: u64) {
        self.capacity = Some(Capacity { funded, occupied });
    }

    /// R4.1: ICE takes the person from BOP or a jurisdiction, with no first-refusal
    /// offer open (R1.7) and no hold (R3.4): a transfer, so custody never changes hands
    /// without a decision. It takes effect at the later of the clock and the start of
    /// the giving custodian's custody.
    pub(super) fn r4_1(&mut self, now: Time, person_id: &str, emit: &mut Emitter) {
        let p = self.person_mut(person_id);
        let since = p.since();
        let detainer = p.latest_detainer().map(|d| d.facts());
        let effective_at = since.map_or(now, |s| s.max(now));
        let detainer_id = detainer.as_ref().map(|d| d.id.to_string());
        let why = Why::CustodyAssumed { since, detainer };
        let mut t = TransferSpec::new(
            Rule::R4_1,
            Custodian::Ice,
            Basis::CustodyAssumed,
            effective_at,
            why,
        );
        t.detainer_id = detainer_id;
        self.transfer(person_id, t, emit);
    }

    /// R4.2: detain while beds last; past capacity, only the convicted stay detained.
    /// The criminal status is the latest detainer's, `none` when there never was one.
    /// Called only for a person ICE does not already detain.
    pub(super) fn r4_2(&mut self, now: Time, person_id: &str, emit: &mut Emitter) {
        let status = self.person_mut(person_id).latest_status;
        let beds = self.capacity.map(|c| Beds {
            funded: c.funded,
            occupied: c.occupied,
        });
        let under = beds.is_none_or(|c| c.occupied < c.funded);
        let (placement, monitoring, basis) = match (under, status.unwrap_or(CriminalStatus::None)) {
            (_, CriminalStatus::Convicted) => (Placement::Detain, None, Basis::PriorityDetention),
            (true, _) => (Placement::Detain, None, Basis::Detainer),
            (false, CriminalStatus::Charged) => (
                Placement::Atd,
                Some(Monitoring::AnkleMonitor),
                Basis::Capacity,
            ),
            (false, CriminalStatus::None) => (
                Placement::Atd,
                Some(Monitoring::Telephonic),
                Basis::Capacity,
            ),
        };
        let body = DecisionBody::Placement {
            placement,
            monitoring,
            basis,
        };
        let parties = self.parties_of(person_id, &body);
        let why = Why::Placement {
            criminal_status: status,
            beds,
        };
        let id = emit.emit(person_id, Rule::R4_2, body, parties, why);
        if placement == Placement::Detain {
            // Detention begins: a bed is taken (R6.1 reviews if that is one too many),
            // and the 180-day clock of R6.2 starts if removal is not foreseeable.
            self.detention_began(now, person_id, &id);
            self.funding_review(emit);
            self.prolonged_check(now, person_id, emit);
        }
    }
}
