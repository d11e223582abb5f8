//! R4: ICE takes custody and places the person, detained while beds last; and ICE's
//! capacity reports (R5), which the placement counts against.

use super::custody::Emitter;
use super::{Engine, Outcome};
use crate::model::{Basis, CriminalStatus, DecisionBody, Monitoring, Placement, Rule};
use crate::why::{Beds, Why};

/// ICE's detention capacity as last reported, and the beds handoff has filled since.
#[derive(Debug, Clone, Copy)]
pub(super) struct Capacity {
    pub(super) funded: u64,
    pub(super) occupied: u64,
}

impl Engine {
    /// `ice.capacity.updated` (R5): the latest report replaces the count.
    pub(super) fn capacity_updated(&mut self, funded: u64, occupied: u64) -> Outcome {
        self.capacity = Some(Capacity { funded, occupied });
        Outcome::Applied
    }

    /// R4: detain while beds last; past capacity, only the convicted stay detained. The
    /// criminal status is the latest detainer's, `none` when there never was one.
    pub(super) fn r4(&mut self, person_id: &str, emit: &mut Emitter) {
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
        if placement == Placement::Detain
            && let Some(c) = self.capacity.as_mut()
        {
            c.occupied += 1;
        }
        emit.emit(
            person_id,
            Rule::R4,
            DecisionBody::Placement {
                placement,
                monitoring,
                basis,
            },
            Why::Placement {
                criminal_status: status,
                beds,
            },
        );
    }
}
