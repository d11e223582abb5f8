//! What the engine knows about one person (ICD section 5, "State per person"), and the
//! housekeeping event that only changes it: `ice.detainer.issued` (R5).

use std::sync::Arc;

use compact_str::CompactString;

use super::timers::TimerKey;
use super::{Engine, Whereabouts};
use crate::model::{CriminalStatus, Custodian, CustodianKind, Time};
use crate::why::{ClaimFacts, DetainerFacts};

/// A short list stored as an exact-size boxed slice: 16 bytes in a `Person` and no
/// allocation when empty, where a `Vec` takes 24 and keeps spare capacity. A person's
/// lists are short and change rarely, and a journal of ten million events holds about
/// three million people, so this is what keeps replay under a gigabyte.
#[derive(Debug, Clone)]
pub(super) struct Few<T>(Box<[T]>);

impl<T> Default for Few<T> {
    fn default() -> Self {
        Few(Box::new([]))
    }
}

impl<T> Few<T> {
    fn edit(&mut self, f: impl FnOnce(&mut Vec<T>)) {
        let mut v = std::mem::take(&mut self.0).into_vec();
        f(&mut v);
        self.0 = v.into_boxed_slice();
    }

    /// One reallocation: room for exactly one more, so the slice needs no shrinking.
    pub(super) fn push(&mut self, item: T) {
        self.edit(|v| {
            v.reserve_exact(1);
            v.push(item);
        });
    }

    pub(super) fn remove(&mut self, index: usize) -> T {
        let mut out = None;
        self.edit(|v| out = Some(v.remove(index)));
        out.expect("set by edit")
    }

    pub(super) fn retain(&mut self, keep: impl FnMut(&T) -> bool) {
        self.edit(|v| v.retain(keep));
    }
}

impl<T> std::ops::Deref for Few<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<T> std::ops::DerefMut for Few<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.0
    }
}

#[derive(Debug, Clone)]
pub(super) struct Detainer {
    pub(super) id: Arc<str>,
    pub(super) status: CriminalStatus,
    pub(super) offenses: Arc<[String]>,
}

impl Detainer {
    pub(super) fn facts(&self) -> DetainerFacts {
        DetainerFacts {
            id: self.id.clone(),
            criminal_status: self.status,
            offenses: self.offenses.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Claim {
    pub(super) id: Arc<str>,
    pub(super) jurisdiction: Arc<str>,
    /// Engine-wide lodge order, the key of the R2.2 index.
    pub(super) seq: u64,
}

impl Claim {
    pub(super) fn facts(&self) -> ClaimFacts {
        ClaimFacts {
            id: self.id.clone(),
            jurisdiction_id: self.jurisdiction.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Writ {
    pub(super) id: Arc<str>,
    pub(super) jurisdiction: String,
    pub(super) court: Arc<str>,
}

/// An open right-of-first-refusal offer (R1.6).
#[derive(Debug, Clone)]
pub(super) struct Offer {
    pub(super) id: String,
    /// The claimant the offer was made against.
    pub(super) claim: Claim,
    pub(super) detainer_id: Arc<str>,
    pub(super) release_at: Time,
    pub(super) respond_by: Time,
    pub(super) timer: TimerKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OfferEnd {
    Answered,
    Lapsed,
    Void,
}

/// An active 48-hour hold (R3.3).
#[derive(Debug, Clone)]
pub(super) struct Hold {
    pub(super) jurisdiction: Arc<str>,
    pub(super) detainer_id: Arc<str>,
    pub(super) from: Time,
    pub(super) until: Time,
    /// The id of the `handoff.hold` decision; names the timer (`timer:hold:<id>`).
    pub(super) decision_id: String,
    pub(super) timer: TimerKey,
}

/// Who holds a person, as the engine keeps it: a [`Custodian`] whose id is the engine's
/// shared copy (see `Engine::name`), not a string of its own per person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Holder {
    Bop(Arc<str>),
    Local(Arc<str>),
    Ice,
}

impl Holder {
    pub(super) fn custodian(&self) -> Custodian {
        match self {
            Holder::Bop(id) => Custodian::Bop(id.to_string()),
            Holder::Local(id) => Custodian::Local(id.to_string()),
            Holder::Ice => Custodian::Ice,
        }
    }
}

/// Where a person is, as the engine keeps it ([`Whereabouts`] is the public view).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Place {
    /// No event has named a custodian yet.
    Unknown,
    Held {
        by: Holder,
        /// When this custody took effect; `None` when it predates handoff's knowledge.
        since: Option<Time>,
    },
    /// Released, effective `at`: a release notice not later than `at` is stale (ICD
    /// section 5, "Custody").
    Released { at: Time },
}

impl Place {
    pub(super) fn whereabouts(&self) -> Whereabouts {
        match self {
            Place::Unknown => Whereabouts::Unknown,
            Place::Held { by, since } => Whereabouts::Held {
                by: by.custodian(),
                since: *since,
            },
            Place::Released { .. } => Whereabouts::Released,
        }
    }
}

/// Everything the rules need to know about one person.
#[derive(Debug, Clone)]
pub(super) struct Person {
    /// The person's id, the key of the engine's table of people, kept inline (ids of up
    /// to 24 bytes need no allocation).
    pub(super) id: CompactString,
    pub(super) place: Place,
    /// Active detainers (issued, not withdrawn), oldest first.
    pub(super) detainers: Few<Detainer>,
    /// The `criminal_status` of the latest detainer ever issued (R4); `None` until one is.
    pub(super) latest_status: Option<CriminalStatus>,
    /// Unsatisfied claims, in the order lodged; the first is "the claimant".
    pub(super) claims: Few<Claim>,
    /// Boxed, like `hold` and `rare`: most people never have one, and a small `Person`
    /// (128 bytes, a size class of the allocator) keeps a table of millions small.
    pub(super) offer: Option<Box<Offer>>,
    pub(super) hold: Option<Box<Hold>>,
    /// What few people ever have; `None` until one of them is set.
    pub(super) rare: Option<Box<Rare>>,
}

/// The parts of a person's state that most people never have.
#[derive(Debug, Clone, Default)]
pub(super) struct Rare {
    /// (detainer, jurisdiction) pairs: the jurisdiction will not honor that detainer.
    pub(super) declined: Few<(Arc<str>, Arc<str>)>,
    /// Writs not yet executed, in the order issued; the first wins.
    pub(super) writs: Few<Writ>,
    /// Ids of the writs a transfer was decided under: an executed writ does not apply
    /// again (ICD section 5, "Custody").
    pub(super) executed_writs: Few<Arc<str>>,
    /// Offers that are no longer open, to tell a late answer from an unknown one.
    pub(super) closed_offers: Few<(String, OfferEnd)>,
    /// While ICE detains the person (placed `detain`, not moved since). Leaving detention
    /// frees a bed (R4 occupancy). Boxed, like `reported`: both are rare even here.
    pub(super) detention: Option<Box<Detention>>,
    /// What ICE reported of the person for its detention reviews (R6).
    pub(super) reported: Option<Box<Reported>>,
}

/// What ICE reported of a person for its detention reviews (R6).
#[derive(Debug, Clone, Default)]
pub(super) struct Reported {
    /// The latest `ice.removal.status`.
    pub(super) removal: Option<crate::why::Removal>,
    /// The humanitarian factor ICE verified (R6.3).
    pub(super) factor: Option<crate::model::Factor>,
}

impl Rare {
    pub(super) fn factor(&self) -> Option<crate::model::Factor> {
        self.reported.as_ref()?.factor
    }

    pub(super) fn removal(&self) -> Option<&crate::why::Removal> {
        self.reported.as_ref()?.removal.as_ref()
    }

    /// What ICE reported, created on first write.
    pub(super) fn reported_mut(&mut self) -> &mut Reported {
        self.reported.get_or_insert_with(Default::default)
    }
}

/// ICE's detention of a person, from an R4.2 `detain` until they leave detention. Kept
/// small: a ten-million-event history holds hundreds of thousands of them.
#[derive(Debug, Clone)]
pub(super) struct Detention {
    pub(super) since: Time,
    /// The id of the `detain` placement (a UUID, as its 16 bytes): it names the R6.2 timer.
    pub(super) placement: [u8; 16],
    /// The R6.2 timer's sequence number while it runs; its deadline is `since` + 180 days.
    pub(super) prolonged: Option<std::num::NonZeroU64>,
}

impl Person {
    pub(super) fn new(id: &str) -> Self {
        Person {
            id: id.into(),
            place: Place::Unknown,
            detainers: Few::default(),
            latest_status: None,
            claims: Few::default(),
            offer: None,
            hold: None,
            rare: None,
        }
    }

    pub(super) fn holder(&self) -> Option<&Holder> {
        match &self.place {
            Place::Held { by, .. } => Some(by),
            _ => None,
        }
    }

    /// The person's custodian, as decisions name it.
    pub(super) fn custodian(&self) -> Option<Custodian> {
        self.holder().map(Holder::custodian)
    }

    pub(super) fn held_by_ice(&self) -> bool {
        self.holder() == Some(&Holder::Ice)
    }

    pub(super) fn held_by_local(&self, jurisdiction_id: &str) -> bool {
        matches!(self.holder(), Some(Holder::Local(j)) if &**j == jurisdiction_id)
    }

    pub(super) fn since(&self) -> Option<Time> {
        match &self.place {
            Place::Held { since, .. } => *since,
            _ => None,
        }
    }

    /// Whether the person has no custodian: never seen, or released.
    pub(super) fn unheld(&self) -> bool {
        !matches!(self.place, Place::Held { .. })
    }

    pub(super) fn released(&self) -> bool {
        matches!(self.place, Place::Released { .. })
    }

    /// Whether a release notice for `release_at` is stale: the person was released, at
    /// or after `release_at` (ICD section 5, "Custody").
    pub(super) fn stale_notice(&self, release_at: Time) -> bool {
        matches!(self.place, Place::Released { at } if release_at <= at)
    }

    /// The rare parts, created on first write.
    pub(super) fn rare_mut(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Default::default)
    }

    /// Writs not yet executed, in the order issued.
    pub(super) fn writs(&self) -> &[Writ] {
        self.rare.as_ref().map_or(&[], |r| &r.writs)
    }

    /// Whether a transfer was decided under the writ `id`.
    pub(super) fn executed(&self, id: &str) -> bool {
        self.rare
            .as_ref()
            .is_some_and(|r| r.executed_writs.iter().any(|w| &**w == id))
    }

    /// Takes the earliest writ not yet executed and marks it executed.
    pub(super) fn execute_first_writ(&mut self) -> Option<Writ> {
        let rare = self.rare.as_mut().filter(|r| !r.writs.is_empty())?;
        let writ = rare.writs.remove(0);
        rare.executed_writs.push(writ.id.clone());
        Some(writ)
    }

    /// When ICE's detention of the person began, while it detains them.
    pub(super) fn detained_since(&self) -> Option<Time> {
        self.rare.as_ref()?.detention.as_ref().map(|d| d.since)
    }

    /// Whether a writ with this id was issued before (pending or executed).
    pub(super) fn knows_writ(&self, id: &str) -> bool {
        self.writs().iter().any(|w| &*w.id == id) || self.executed(id)
    }

    pub(super) fn latest_detainer(&self) -> Option<&Detainer> {
        self.detainers.last()
    }

    pub(super) fn detainer(&self, id: &str) -> Option<&Detainer> {
        self.detainers.iter().find(|d| &*d.id == id)
    }

    pub(super) fn declined_by(&self, detainer: &str, jurisdiction: &str) -> bool {
        self.rare
            .as_ref()
            .map_or(&[][..], |r| &r.declined)
            .iter()
            .any(|(d, j)| &**d == detainer && &**j == jurisdiction)
    }

    /// The latest active detainer that `jurisdiction` has not declined, other than
    /// `except`.
    pub(super) fn honorable_detainer(
        &self,
        jurisdiction: &str,
        except: Option<&str>,
    ) -> Option<&Detainer> {
        self.detainers
            .iter()
            .rev()
            .find(|d| Some(&*d.id) != except && !self.declined_by(&d.id, jurisdiction))
    }

    pub(super) fn claimant(&self) -> Option<&Claim> {
        self.claims.first()
    }

    /// The earliest unsatisfied claim whose jurisdiction has a return agreement (R2.2).
    pub(super) fn agreeing_claim(&self, has_agreement: impl Fn(&str) -> bool) -> Option<&Claim> {
        self.claims.iter().find(|c| has_agreement(&c.jurisdiction))
    }

    pub(super) fn claim_of(&self, jurisdiction: &str) -> Option<&Claim> {
        self.claims
            .iter()
            .find(|c| &*c.jurisdiction == jurisdiction)
    }

    pub(super) fn close_offer(&mut self, end: OfferEnd) -> Option<Offer> {
        let offer = self.offer.take()?;
        self.rare_mut().closed_offers.push((offer.id.clone(), end));
        Some(*offer)
    }
}

impl Engine {
    /// The person's state, created on first mention.
    pub(super) fn person_mut(&mut self, person_id: &str) -> &mut Person {
        self.people.get_or_insert(person_id)
    }

    /// Who holds a person in the engine's terms: the custodian's id is the shared copy.
    pub(super) fn holder(&mut self, kind: CustodianKind, id: &str) -> Holder {
        match kind {
            CustodianKind::Bop => Holder::Bop(self.name(id)),
            CustodianKind::Local => Holder::Local(self.name(id)),
            CustodianKind::Ice => Holder::Ice,
        }
    }

    /// Sets the custodian of a person who has none (never seen, or released): the
    /// event names who holds them now (ICD section 5, "Custody").
    pub(super) fn name_custodian(&mut self, person_id: &str, kind: CustodianKind, id: &str) {
        if self.person_mut(person_id).unheld() {
            let by = self.holder(kind, id);
            self.move_person(person_id, Place::Held { by, since: None });
        }
    }

    /// `ice.detainer.issued` (R5): names the custodian, records the detainer (a
    /// re-issue updates its status and offenses) and the latest criminal status (R4).
    pub(super) fn detainer_issued(
        &mut self,
        person_id: &str,
        detainer_id: &str,
        custodian: &Custodian,
        criminal_status: CriminalStatus,
        offenses: &[String],
    ) {
        self.name_custodian(person_id, custodian.custodian_kind(), custodian.id());
        let offenses = self.offense_list(offenses);
        let p = self.person_mut(person_id);
        p.latest_status = Some(criminal_status);
        match p.detainers.iter_mut().find(|d| &*d.id == detainer_id) {
            Some(d) => {
                d.status = criminal_status;
                d.offenses = offenses;
            }
            None => p.detainers.push(Detainer {
                id: detainer_id.into(),
                status: criminal_status,
                offenses,
            }),
        }
    }
}
