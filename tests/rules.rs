//! One test per rule of ICD section 4, named after it, plus the time, order and
//! duplicate rules of section 5. Each test is a log and the decisions it must give.
//!
//! The cast: person ids are invented; `tx-travis-county` (J) is the usual claimant,
//! `tx-hays-county` (K) a second jurisdiction, `fci-bastrop` the federal prison.

mod support;

use support::*;

const J: &str = "tx-travis-county";
const K: &str = "tx-hays-county";
/// A third jurisdiction, where a case needs one.
const L: &str = "tx-bexar-county";
const FCI: &str = "fci-bastrop";
/// The release date used by most federal cases.
const REL: &str = "2017-02-01T12:00:00Z";

// ---------------------------------------------------------------------------------
// R1: a federal release.

#[test]
fn r1_1_writ_decides_a_federal_release() {
    let log = Log::new()
        .at("2017-01-28T08:00:00Z", policy(J, true, false))
        .at(
            "2017-01-28T09:00:00Z",
            detainer("D-1", "P-1001", bop(FCI), "convicted"),
        )
        .at("2017-01-28T10:00:00Z", claim("C-1", "P-1001", J))
        .at("2017-01-28T11:00:00Z", writ("W-1", "P-1001", K))
        .at("2017-01-29T09:00:00Z", bop_release("P-1001", FCI, REL));
    check(
        log,
        None,
        "#0 2017-01-29T09:00:00Z R1.1 transfer P-1001 by=e5 from=bop:fci-bastrop to=local:tx-hays-county \
         basis=judicial_writ conditions=ice_detainer_forwarded effective_at=2017-02-01T12:00:00Z \
         detainer_id=D-1 writ_id=W-1",
    );
}

#[test]
fn r1_1_writ_of_the_claimant_satisfies_its_claim_and_earliest_writ_wins() {
    let log = Log::new()
        .at("2017-01-28T10:00:00Z", claim("C-1", "P-1011", J))
        .at("2017-01-28T11:00:00Z", writ("W-1", "P-1011", J))
        .at("2017-01-28T12:00:00Z", writ("W-2", "P-1011", K))
        .at("2017-01-29T09:00:00Z", bop_release("P-1011", FCI, REL));
    check(
        log,
        None,
        "#0 2017-01-29T09:00:00Z R1.1 transfer P-1011 by=e4 from=bop:fci-bastrop to=local:tx-travis-county \
         basis=judicial_writ conditions= effective_at=2017-02-01T12:00:00Z claim_id=C-1 writ_id=W-1",
    );
}

#[test]
fn r1_2_detainer_alone_goes_to_ice() {
    let log = Log::new()
        .at(
            "2017-01-28T09:00:00Z",
            detainer("D-2", "P-1002", bop(FCI), "charged"),
        )
        .at("2017-01-29T09:00:00Z", bop_release("P-1002", FCI, REL));
    check(
        log,
        None,
        "#0 2017-01-29T09:00:00Z R1.2 transfer P-1002 by=e2 from=bop:fci-bastrop to=ice:ice \
         basis=detainer conditions= effective_at=2017-02-01T12:00:00Z detainer_id=D-2",
    );
}

#[test]
fn r1_3_claim_alone_goes_to_the_claimant() {
    let log = Log::new()
        .at("2017-01-28T09:00:00Z", claim("C-3", "P-1003", J))
        .at("2017-01-28T10:00:00Z", claim("C-4", "P-1003", K))
        .at("2017-01-29T09:00:00Z", bop_release("P-1003", FCI, REL));
    check(
        log,
        None,
        "#0 2017-01-29T09:00:00Z R1.3 transfer P-1003 by=e3 from=bop:fci-bastrop to=local:tx-travis-county \
         basis=local_claim conditions= effective_at=2017-02-01T12:00:00Z claim_id=C-3",
    );
}

#[test]
fn r1_4_no_one_wants_the_person_so_the_sentence_is_complete() {
    let log = Log::new().at("2017-01-29T09:00:00Z", bop_release("P-1004", FCI, REL));
    check(
        log,
        None,
        "#0 2017-01-29T09:00:00Z R1.4 release P-1004 by=e1 from=bop:fci-bastrop \
         basis=sentence_complete effective_at=2017-02-01T12:00:00Z",
    );
}

#[test]
fn r1_5_claimant_with_return_agreement_gets_the_person_without_an_offer() {
    let log = Log::new()
        .at("2017-01-28T08:00:00Z", policy(J, false, true))
        .at(
            "2017-01-28T09:00:00Z",
            detainer("D-5", "P-1005", bop(FCI), "convicted"),
        )
        .at("2017-01-28T10:00:00Z", claim("C-5", "P-1005", J))
        .at("2017-01-29T09:00:00Z", bop_release("P-1005", FCI, REL));
    check(
        log,
        None,
        "#0 2017-01-29T09:00:00Z R1.5 transfer P-1005 by=e4 from=bop:fci-bastrop to=local:tx-travis-county \
         basis=return_agreement conditions=ice_detainer_forwarded,return_to_ice_before_release \
         effective_at=2017-02-01T12:00:00Z detainer_id=D-5 claim_id=C-5",
    );
}

/// The common start of the first-refusal cases: J honors detainers but has no return
/// agreement; the offer is decided by event e4.
fn offered(person: &str) -> Log {
    Log::new()
        .at("2017-01-28T08:00:00Z", policy(J, true, false))
        .at(
            "2017-01-28T09:00:00Z",
            detainer("D-6", person, bop(FCI), "convicted"),
        )
        .at("2017-01-28T10:00:00Z", claim("C-6", person, J))
        .at("2017-01-29T09:00:00Z", bop_release(person, FCI, REL))
}

const OFFER: &str = "#0 2017-01-29T09:00:00Z R1.6 offer P-1006 by=e4 offer_id=#0 \
    jurisdiction_id=tx-travis-county jurisdiction_honors_detainers=true \
    respond_by=2017-02-01T12:00:00Z detainer_id=D-6";

#[test]
fn r1_6_claimant_without_agreement_means_ice_gets_the_first_refusal() {
    check(offered("P-1006"), None, OFFER);
}

#[test]
fn r1_6_respond_by_is_the_clock_when_release_at_has_passed() {
    let log = Log::new()
        .at(
            "2017-01-28T09:00:00Z",
            detainer("D-6", "P-1016", bop(FCI), "none"),
        )
        .at("2017-01-28T10:00:00Z", claim("C-6", "P-1016", J))
        .at("2017-02-02T09:00:00Z", bop_release("P-1016", FCI, REL));
    // The offer lapses at once: ICE cannot answer before a deadline that is now.
    check(
        log,
        None,
        "#0 2017-02-02T09:00:00Z R1.6 offer P-1016 by=e3 offer_id=#0 jurisdiction_id=tx-travis-county \
         jurisdiction_honors_detainers=false respond_by=2017-02-02T09:00:00Z detainer_id=D-6
         #1 2017-02-02T09:00:00Z R1.9 transfer P-1016 by=timer:first_refusal:#0 from=bop:fci-bastrop \
         to=local:tx-travis-county basis=first_refusal_lapsed conditions=ice_detainer_forwarded \
         effective_at=2017-02-01T12:00:00Z detainer_id=D-6 claim_id=C-6 offer_id=#0",
    );
}

#[test]
fn r1_7_ice_accepts_the_offer() {
    let log = offered("P-1006").at(
        "2017-01-30T09:00:00Z",
        response(&offer_id_of("e4"), "P-1006", "accept"),
    );
    check(
        log,
        Some("2017-02-10T00:00:00Z"),
        &format!(
            "{OFFER}
             #1 2017-01-30T09:00:00Z R1.7 transfer P-1006 by=e5 from=bop:fci-bastrop to=ice:ice \
             basis=first_refusal_accepted conditions= effective_at=2017-02-01T12:00:00Z \
             detainer_id=D-6 offer_id=#0"
        ),
    );
}

#[test]
fn r1_8_ice_declines_the_offer() {
    let log = offered("P-1006").at(
        "2017-01-30T09:00:00Z",
        response(&offer_id_of("e4"), "P-1006", "decline"),
    );
    check(
        log,
        Some("2017-02-10T00:00:00Z"),
        &format!(
            "{OFFER}
             #1 2017-01-30T09:00:00Z R1.8 transfer P-1006 by=e5 from=bop:fci-bastrop \
             to=local:tx-travis-county basis=first_refusal_declined conditions=ice_detainer_forwarded \
             effective_at=2017-02-01T12:00:00Z detainer_id=D-6 claim_id=C-6 offer_id=#0"
        ),
    );
}

#[test]
fn r1_9_offer_lapses_and_a_late_answer_is_rejected() {
    // The answer comes exactly at respond_by: the deadline fires first (ICD section 5),
    // so the answer is late.
    let log = offered("P-1006").at(REL, response(&offer_id_of("e4"), "P-1006", "accept"));
    check(
        log,
        None,
        &format!(
            "{OFFER}
             #1 2017-02-01T12:00:00Z R1.9 transfer P-1006 by=timer:first_refusal:#0 from=bop:fci-bastrop \
             to=local:tx-travis-county basis=first_refusal_lapsed conditions=ice_detainer_forwarded \
             effective_at=2017-02-01T12:00:00Z detainer_id=D-6 claim_id=C-6 offer_id=#0
             ! line 5: rejected: late_response"
        ),
    );
}

#[test]
fn r1_9_offer_lapses_at_the_end_of_a_replay_with_until() {
    check(
        offered("P-1006"),
        Some("2017-02-01T12:00:00Z"),
        &format!(
            "{OFFER}
             #1 2017-02-01T12:00:00Z R1.9 transfer P-1006 by=timer:first_refusal:#0 from=bop:fci-bastrop \
             to=local:tx-travis-county basis=first_refusal_lapsed conditions=ice_detainer_forwarded \
             effective_at=2017-02-01T12:00:00Z detainer_id=D-6 claim_id=C-6 offer_id=#0"
        ),
    );
}

#[test]
fn r1_10_a_writ_voids_the_open_offer() {
    let log = offered("P-1006")
        .at("2017-01-30T09:00:00Z", writ("W-10", "P-1006", K))
        .at(
            "2017-01-30T10:00:00Z",
            response(&offer_id_of("e4"), "P-1006", "accept"),
        );
    check(
        log,
        Some("2017-02-10T00:00:00Z"),
        &format!(
            "{OFFER}
             #1 2017-01-30T09:00:00Z R1.10 transfer P-1006 by=e5 from=bop:fci-bastrop \
             to=local:tx-hays-county basis=judicial_writ conditions=ice_detainer_forwarded \
             effective_at=2017-02-01T12:00:00Z detainer_id=D-6 writ_id=W-10 offer_id=#0
             ! line 6: rejected: unknown_offer"
        ),
    );
}

#[test]
fn r1_11_withdrawing_the_detainer_voids_the_offer() {
    let log = offered("P-1006").at("2017-01-30T09:00:00Z", withdrawn("D-6", "P-1006"));
    check(
        log,
        Some("2017-02-10T00:00:00Z"),
        &format!(
            "{OFFER}
             #1 2017-01-30T09:00:00Z R1.11 transfer P-1006 by=e5 from=bop:fci-bastrop \
             to=local:tx-travis-county basis=local_claim conditions= \
             effective_at=2017-02-01T12:00:00Z claim_id=C-6 offer_id=#0"
        ),
    );
}

#[test]
fn r1_answer_to_an_offer_never_made_is_unknown() {
    let log = offered("P-1006").at(
        "2017-01-30T09:00:00Z",
        response("not-an-offer", "P-1006", "accept"),
    );
    check(
        log,
        None,
        &format!("{OFFER}\n! line 5: rejected: unknown_offer"),
    );
}

#[test]
fn r1_second_release_schedule_while_offer_is_open_changes_nothing() {
    let log = offered("P-1006").at(
        "2017-01-30T09:00:00Z",
        bop_release("P-1006", FCI, "2017-02-05T12:00:00Z"),
    );
    check(
        log,
        None,
        &format!("{OFFER}\n! line 5: no_effect: a first-refusal offer is already open"),
    );
}

// ---------------------------------------------------------------------------------
// R2: leaving ICE custody for a local jurisdiction.

#[test]
fn r2_1_writ_takes_the_person_from_ice_when_ice_custody_begins() {
    let log = Log::new()
        .at(
            "2017-01-28T09:00:00Z",
            detainer("D-21", "P-2001", bop(FCI), "charged"),
        )
        .at("2017-01-29T09:00:00Z", bop_release("P-2001", FCI, REL))
        .at("2017-01-30T09:00:00Z", writ("W-21", "P-2001", J));
    // ICE's custody begins at release_at, so the writ takes effect then, not earlier.
    check(
        log,
        None,
        "#0 2017-01-29T09:00:00Z R1.2 transfer P-2001 by=e2 from=bop:fci-bastrop to=ice:ice \
         basis=detainer conditions= effective_at=2017-02-01T12:00:00Z detainer_id=D-21
         #1 2017-01-30T09:00:00Z R2.1 transfer P-2001 by=e3 from=ice:ice to=local:tx-travis-county \
         basis=judicial_writ conditions=return_to_ice_after_proceedings \
         effective_at=2017-02-01T12:00:00Z writ_id=W-21",
    );
}

#[test]
fn r2_2_claimant_gains_a_return_agreement() {
    let log = offered("P-1006")
        .at(
            "2017-01-30T09:00:00Z",
            response(&offer_id_of("e4"), "P-1006", "accept"),
        )
        .at("2017-02-02T09:00:00Z", policy(J, true, true));
    check(
        log,
        None,
        &format!(
            "{OFFER}
             #1 2017-01-30T09:00:00Z R1.7 transfer P-1006 by=e5 from=bop:fci-bastrop to=ice:ice \
             basis=first_refusal_accepted conditions= effective_at=2017-02-01T12:00:00Z \
             detainer_id=D-6 offer_id=#0
             #2 2017-02-02T09:00:00Z R2.2 transfer P-1006 by=e6 from=ice:ice to=local:tx-travis-county \
             basis=return_agreement conditions=return_to_ice_before_release \
             effective_at=2017-02-02T09:00:00Z claim_id=C-6"
        ),
    );
}

#[test]
fn r2_2_claim_lodged_by_a_jurisdiction_that_already_has_an_agreement() {
    let log = Log::new()
        .at("2017-01-28T08:00:00Z", policy(J, false, true))
        .at(
            "2017-01-28T09:00:00Z",
            detainer("D-22", "P-2002", bop(FCI), "none"),
        )
        .at("2017-01-29T09:00:00Z", bop_release("P-2002", FCI, REL))
        .at("2017-02-03T09:00:00Z", claim("C-22", "P-2002", J));
    check(
        log,
        None,
        "#0 2017-01-29T09:00:00Z R1.2 transfer P-2002 by=e3 from=bop:fci-bastrop to=ice:ice \
         basis=detainer conditions= effective_at=2017-02-01T12:00:00Z detainer_id=D-22
         #1 2017-02-03T09:00:00Z R2.2 transfer P-2002 by=e4 from=ice:ice to=local:tx-travis-county \
         basis=return_agreement conditions=return_to_ice_before_release \
         effective_at=2017-02-03T09:00:00Z claim_id=C-22",
    );
}

#[test]
fn r2_2_agreeing_claim_behind_an_earlier_claim() {
    // J's claim came first but J has no agreement: it does not stand in the way of K's.
    let log = Log::new()
        .at(
            "2017-01-28T09:00:00Z",
            detainer("D-23", "P-2003", bop(FCI), "none"),
        )
        .at("2017-01-29T09:00:00Z", bop_release("P-2003", FCI, REL))
        .at("2017-02-03T09:00:00Z", claim("C-23", "P-2003", J))
        .at("2017-02-03T10:00:00Z", claim("C-24", "P-2003", K))
        .at("2017-02-04T09:00:00Z", policy(K, true, true));
    check(
        log,
        None,
        "#0 2017-01-29T09:00:00Z R1.2 transfer P-2003 by=e2 from=bop:fci-bastrop to=ice:ice \
         basis=detainer conditions= effective_at=2017-02-01T12:00:00Z detainer_id=D-23
         #1 2017-02-04T09:00:00Z R2.2 transfer P-2003 by=e5 from=ice:ice to=local:tx-hays-county \
         basis=return_agreement conditions=return_to_ice_before_release \
         effective_at=2017-02-04T09:00:00Z claim_id=C-24",
    );
}

#[test]
fn r2_2_a_policy_gaining_an_agreement_decides_for_each_person_in_claim_order() {
    // P-2006's claim by J was lodged before P-2005's, so P-2006 moves first; P-2007 is
    // not held by ICE, so J's claim on them decides nothing.
    let log = Log::new()
        .at(
            "2017-01-28T09:00:00Z",
            detainer("D-25", "P-2005", bop(FCI), "none"),
        )
        .at(
            "2017-01-28T09:01:00Z",
            detainer("D-26", "P-2006", bop(FCI), "none"),
        )
        .at("2017-01-29T09:00:00Z", bop_release("P-2005", FCI, REL))
        .at("2017-01-29T09:01:00Z", bop_release("P-2006", FCI, REL))
        .at("2017-02-03T09:00:00Z", claim("C-26", "P-2006", J))
        .at("2017-02-03T10:00:00Z", claim("C-25", "P-2005", J))
        .at("2017-02-03T11:00:00Z", claim("C-27", "P-2007", J))
        .at("2017-02-04T09:00:00Z", policy(J, true, true));
    check(
        log,
        None,
        "#0 2017-01-29T09:00:00Z R1.2 transfer P-2005 by=e3 from=bop:fci-bastrop to=ice:ice \
         basis=detainer conditions= effective_at=2017-02-01T12:00:00Z detainer_id=D-25
         #1 2017-01-29T09:01:00Z R1.2 transfer P-2006 by=e4 from=bop:fci-bastrop to=ice:ice \
         basis=detainer conditions= effective_at=2017-02-01T12:00:00Z detainer_id=D-26
         #2 2017-02-04T09:00:00Z R2.2 transfer P-2006 by=e8 from=ice:ice to=local:tx-travis-county \
         basis=return_agreement conditions=return_to_ice_before_release \
         effective_at=2017-02-04T09:00:00Z claim_id=C-26
         #3 2017-02-04T09:00:00Z R2.2 transfer P-2005 by=e8 from=ice:ice to=local:tx-travis-county \
         basis=return_agreement conditions=return_to_ice_before_release \
         effective_at=2017-02-04T09:00:00Z claim_id=C-25",
    );
}

#[test]
fn r2_2_a_claim_lodged_moves_the_person_to_the_earliest_agreeing_claim() {
    // ICE took the first refusal against J (no agreement); K's claim, with an agreement,
    // waited behind it. A claim by L (agreement too) sets R2.2 off: K's claim is the
    // earliest unsatisfied one whose jurisdiction agrees, so K gets the person.
    let log = Log::new()
        .at("2017-01-28T08:00:00Z", policy(J, true, false))
        .at("2017-01-28T08:30:00Z", policy(K, true, true))
        .at(
            "2017-01-28T09:00:00Z",
            detainer("D-28", "P-2008", bop(FCI), "convicted"),
        )
        .at("2017-01-28T10:00:00Z", claim("C-28", "P-2008", J))
        .at("2017-01-28T11:00:00Z", claim("C-29", "P-2008", K))
        .at("2017-01-29T09:00:00Z", bop_release("P-2008", FCI, REL))
        .at(
            "2017-01-30T09:00:00Z",
            response(&offer_id_of("e6"), "P-2008", "accept"),
        )
        .at("2017-02-02T08:00:00Z", policy(L, true, true))
        .at("2017-02-02T09:00:00Z", claim("C-30", "P-2008", L));
    check(
        log,
        None,
        "#0 2017-01-29T09:00:00Z R1.6 offer P-2008 by=e6 offer_id=#0 jurisdiction_id=tx-travis-county \
         jurisdiction_honors_detainers=true respond_by=2017-02-01T12:00:00Z detainer_id=D-28
         #1 2017-01-30T09:00:00Z R1.7 transfer P-2008 by=e7 from=bop:fci-bastrop to=ice:ice \
         basis=first_refusal_accepted conditions= effective_at=2017-02-01T12:00:00Z \
         detainer_id=D-28 offer_id=#0
         #2 2017-02-02T09:00:00Z R2.2 transfer P-2008 by=e9 from=ice:ice to=local:tx-hays-county \
         basis=return_agreement conditions=return_to_ice_before_release \
         effective_at=2017-02-02T09:00:00Z claim_id=C-29",
    );
}

#[test]
fn r2_1_earliest_unexecuted_writ_wins() {
    // K's writ came while J held the person and waited; when L's writ comes for the
    // person ICE now holds, the earliest writ, K's, is executed and L's waits.
    let log = Log::new()
        .at("2017-01-28T08:00:00Z", policy(J, true, false))
        .at(
            "2017-01-28T09:00:00Z",
            detainer("D-22", "P-2012", local(J), "charged"),
        )
        .at("2017-01-28T10:00:00Z", writ("W-22", "P-2012", K))
        .at("2017-01-31T09:00:00Z", local_release("P-2012", J, LREL))
        .at("2017-02-02T08:00:00Z", assumed("P-2012", local(J)))
        .at("2017-02-03T09:00:00Z", writ("W-23", "P-2012", L));
    check(
        log,
        None,
        "#0 2017-01-31T09:00:00Z R3.3 hold P-2012 by=e4 jurisdiction_id=tx-travis-county \
         detainer_id=D-22 hold_from=2017-02-01T18:00:00Z hold_until=2017-02-03T18:00:00Z
         #1 2017-02-02T08:00:00Z R3.4 transfer P-2012 by=e5 from=local:tx-travis-county to=ice:ice \
         basis=detainer_hold conditions= effective_at=2017-02-02T08:00:00Z detainer_id=D-22
         #2 2017-02-02T08:00:00Z R4.2 placement P-2012 by=e5 placement=detain basis=detainer
         #3 2017-02-03T09:00:00Z R2.1 transfer P-2012 by=e6 from=ice:ice to=local:tx-hays-county \
         basis=judicial_writ conditions=return_to_ice_after_proceedings \
         effective_at=2017-02-03T09:00:00Z writ_id=W-22",
    );
}

#[test]
fn writ_executed_once() {
    // W-21 took the person from ICE; they came back to ICE; the same writ sent again
    // (a new event) does not apply again.
    let log = Log::new()
        .at(
            "2017-01-28T09:00:00Z",
            detainer("D-21", "P-2011", bop(FCI), "charged"),
        )
        .at("2017-01-29T09:00:00Z", bop_release("P-2011", FCI, REL))
        .at("2017-01-30T09:00:00Z", writ("W-21", "P-2011", J))
        .at("2017-02-05T09:00:00Z", assumed("P-2011", local(J)))
        .at("2017-02-06T09:00:00Z", writ("W-21", "P-2011", J));
    check(
        log,
        None,
        "#0 2017-01-29T09:00:00Z R1.2 transfer P-2011 by=e2 from=bop:fci-bastrop to=ice:ice \
         basis=detainer conditions= effective_at=2017-02-01T12:00:00Z detainer_id=D-21
         #1 2017-01-30T09:00:00Z R2.1 transfer P-2011 by=e3 from=ice:ice to=local:tx-travis-county \
         basis=judicial_writ conditions=return_to_ice_after_proceedings \
         effective_at=2017-02-01T12:00:00Z writ_id=W-21
         #2 2017-02-05T09:00:00Z R4.1 transfer P-2011 by=e4 from=local:tx-travis-county to=ice:ice \
         basis=custody_assumed conditions= effective_at=2017-02-05T09:00:00Z detainer_id=D-21
         #3 2017-02-05T09:00:00Z R4.2 placement P-2011 by=e4 placement=detain basis=detainer
         ! line 5: no_effect: writ already executed",
    );
}

// ---------------------------------------------------------------------------------
// R3: a local release.

const LREL: &str = "2017-02-01T18:00:00Z";

#[test]
fn r3_1_no_detainer_means_release() {
    let log = Log::new().at("2017-01-31T09:00:00Z", local_release("P-3001", J, LREL));
    check(
        log,
        None,
        "#0 2017-01-31T09:00:00Z R3.1 release P-3001 by=e1 from=local:tx-travis-county \
         basis=sentence_complete effective_at=2017-02-01T18:00:00Z",
    );
}

#[test]
fn r3_2_jurisdiction_that_does_not_honor_detainers_releases() {
    let log = Log::new()
        .at("2017-01-28T08:00:00Z", policy(J, false, false))
        .at(
            "2017-01-28T09:00:00Z",
            detainer("D-32", "P-3002", local(J), "convicted"),
        )
        .at("2017-01-31T09:00:00Z", local_release("P-3002", J, LREL));
    check(
        log,
        None,
        "#0 2017-01-31T09:00:00Z R3.2 release P-3002 by=e3 from=local:tx-travis-county \
         basis=detainer_declined effective_at=2017-02-01T18:00:00Z detainer_id=D-32",
    );
}

#[test]
fn r3_2_jurisdiction_never_heard_of_does_not_honor_detainers() {
    let log = Log::new()
        .at(
            "2017-01-28T09:00:00Z",
            detainer("D-32", "P-3012", local(K), "charged"),
        )
        .at("2017-01-31T09:00:00Z", local_release("P-3012", K, LREL));
    check(
        log,
        None,
        "#0 2017-01-31T09:00:00Z R3.2 release P-3012 by=e2 from=local:tx-hays-county \
         basis=detainer_declined effective_at=2017-02-01T18:00:00Z detainer_id=D-32",
    );
}

#[test]
fn r3_2_detainer_declined_by_an_honoring_jurisdiction() {
    let log = Log::new()
        .at("2017-01-28T08:00:00Z", policy(J, true, false))
        .at(
            "2017-01-28T09:00:00Z",
            detainer("D-33", "P-3003", local(J), "charged"),
        )
        .at("2017-01-29T09:00:00Z", declined("D-33", "P-3003", J))
        .at("2017-01-31T09:00:00Z", local_release("P-3003", J, LREL));
    check(
        log,
        None,
        "#0 2017-01-31T09:00:00Z R3.2 release P-3003 by=e4 from=local:tx-travis-county \
         basis=detainer_declined effective_at=2017-02-01T18:00:00Z detainer_id=D-33",
    );
}

/// The common start of the hold cases: J honors detainers; e3 decides the hold.
fn held(person: &str, status: &str) -> Log {
    Log::new()
        .at("2017-01-28T08:00:00Z", policy(J, true, false))
        .at(
            "2017-01-28T09:00:00Z",
            detainer("D-34", person, local(J), status),
        )
        .at("2017-01-31T09:00:00Z", local_release(person, J, LREL))
}

fn hold_line(person: &str) -> String {
    format!(
        "#0 2017-01-31T09:00:00Z R3.3 hold {person} by=e3 jurisdiction_id=tx-travis-county \
         detainer_id=D-34 hold_from=2017-02-01T18:00:00Z hold_until=2017-02-03T18:00:00Z"
    )
}

#[test]
fn r3_3_honoring_jurisdiction_holds_for_48_hours() {
    check(held("P-3004", "charged"), None, &hold_line("P-3004"));
}

#[test]
fn r3_3_second_release_notice_during_a_hold_changes_nothing() {
    let log = held("P-3004", "charged").at(
        "2017-02-01T19:00:00Z",
        local_release("P-3004", J, "2017-02-02T18:00:00Z"),
    );
    check(
        log,
        None,
        &format!(
            "{}\n! line 4: no_effect: a hold is already in progress",
            hold_line("P-3004")
        ),
    );
}

#[test]
fn r3_4_ice_assumes_custody_during_the_hold() {
    let log = held("P-3004", "charged").at("2017-02-02T08:00:00Z", assumed("P-3004", local(J)));
    check(
        log,
        Some("2017-02-10T00:00:00Z"),
        &format!(
            "{}
             #1 2017-02-02T08:00:00Z R3.4 transfer P-3004 by=e4 from=local:tx-travis-county to=ice:ice \
             basis=detainer_hold conditions= effective_at=2017-02-02T08:00:00Z detainer_id=D-34
             #2 2017-02-02T08:00:00Z R4.2 placement P-3004 by=e4 placement=detain basis=detainer",
            hold_line("P-3004")
        ),
    );
}

#[test]
fn r3_5_hold_lapses_on_the_brokers_timer_exactly_at_hold_until() {
    check(
        held("P-3004", "charged"),
        Some("2017-02-10T00:00:00Z"),
        &format!(
            "{}
             #1 2017-02-03T18:00:00Z R3.5 release P-3004 by=timer:hold:#0 from=local:tx-travis-county \
             basis=hold_expired effective_at=2017-02-03T18:00:00Z detainer_id=D-34",
            hold_line("P-3004")
        ),
    );
}

#[test]
fn r3_5_hold_expired_event_releases_at_the_clock() {
    let log =
        held("P-3004", "charged").at("2017-02-02T20:00:00Z", hold_expired("P-3004", "D-34", J));
    check(
        log,
        Some("2017-02-10T00:00:00Z"),
        &format!(
            "{}
             #1 2017-02-02T20:00:00Z R3.5 release P-3004 by=e4 from=local:tx-travis-county \
             basis=hold_expired effective_at=2017-02-02T20:00:00Z detainer_id=D-34",
            hold_line("P-3004")
        ),
    );
}

#[test]
fn r3_5_late_hold_expired_event_finds_the_hold_already_released() {
    // The jail reports the lapse an hour late; the timer has released the person at
    // hold_until already, never later.
    let log =
        held("P-3004", "charged").at("2017-02-03T19:00:00Z", hold_expired("P-3004", "D-34", J));
    check(
        log,
        None,
        &format!(
            "{}
             #1 2017-02-03T18:00:00Z R3.5 release P-3004 by=timer:hold:#0 from=local:tx-travis-county \
             basis=hold_expired effective_at=2017-02-03T18:00:00Z detainer_id=D-34
             ! line 4: no_effect: no hold in progress at this jurisdiction",
            hold_line("P-3004")
        ),
    );
}

#[test]
fn r3_5_release_reported_after_48_hours_is_released_at_hold_until() {
    // The release notice itself comes three days late: the hold is decided and lapses
    // at once, with hold_until as its time and effective_at.
    let log = Log::new()
        .at("2017-01-28T08:00:00Z", policy(J, true, false))
        .at(
            "2017-01-28T09:00:00Z",
            detainer("D-35", "P-3005", local(J), "none"),
        )
        .at("2017-02-04T20:00:00Z", local_release("P-3005", J, LREL));
    check(
        log,
        None,
        "#0 2017-02-04T20:00:00Z R3.3 hold P-3005 by=e3 jurisdiction_id=tx-travis-county \
         detainer_id=D-35 hold_from=2017-02-01T18:00:00Z hold_until=2017-02-03T18:00:00Z
         #1 2017-02-03T18:00:00Z R3.5 release P-3005 by=timer:hold:#0 from=local:tx-travis-county \
         basis=hold_expired effective_at=2017-02-03T18:00:00Z detainer_id=D-35",
    );
}

#[test]
fn r3_5_hold_expired_before_hold_from_is_no_effect() {
    // The jail's release is due 2017-02-02T12:00Z; a hold.expired on 01-29 cannot end a
    // hold that has not begun. The hold runs its course on the timer.
    let log = Log::new()
        .at("2017-01-28T08:00:00Z", policy(J, true, false))
        .at(
            "2017-01-28T09:00:00Z",
            detainer("D-35", "P-3006", local(J), "charged"),
        )
        .at(
            "2017-01-28T10:00:00Z",
            local_release("P-3006", J, "2017-02-02T12:00:00Z"),
        )
        .at("2017-01-29T09:00:00Z", hold_expired("P-3006", "D-35", J));
    check(
        log,
        Some("2017-02-10T00:00:00Z"),
        "#0 2017-01-28T10:00:00Z R3.3 hold P-3006 by=e3 jurisdiction_id=tx-travis-county \
         detainer_id=D-35 hold_from=2017-02-02T12:00:00Z hold_until=2017-02-04T12:00:00Z
         #1 2017-02-04T12:00:00Z R3.5 release P-3006 by=timer:hold:#0 from=local:tx-travis-county \
         basis=hold_expired effective_at=2017-02-04T12:00:00Z detainer_id=D-35
         ! line 4: no_effect: the hold has not begun: it cannot lapse before hold_from",
    );
}

#[test]
fn r3_6_detainer_withdrawn_during_the_hold() {
    // Withdrawn before the hold even begins: released at hold_from, the normal time.
    let log = held("P-3004", "charged").at("2017-02-01T08:00:00Z", withdrawn("D-34", "P-3004"));
    check(
        log,
        Some("2017-02-10T00:00:00Z"),
        &format!(
            "{}
             #1 2017-02-01T08:00:00Z R3.6 release P-3004 by=e4 from=local:tx-travis-county \
             basis=detainer_withdrawn effective_at=2017-02-01T18:00:00Z detainer_id=D-34",
            hold_line("P-3004")
        ),
    );
}

#[test]
fn r3_7_jurisdiction_declines_the_detainer_during_the_hold() {
    let log = held("P-3004", "charged").at("2017-02-02T09:00:00Z", declined("D-34", "P-3004", J));
    check(
        log,
        Some("2017-02-10T00:00:00Z"),
        &format!(
            "{}
             #1 2017-02-02T09:00:00Z R3.7 release P-3004 by=e4 from=local:tx-travis-county \
             basis=detainer_declined effective_at=2017-02-02T09:00:00Z detainer_id=D-34",
            hold_line("P-3004")
        ),
    );
}

#[test]
fn r3_hold_goes_on_under_a_second_detainer_without_being_extended() {
    let log = held("P-3004", "charged")
        .at(
            "2017-02-01T10:00:00Z",
            detainer("D-35", "P-3004", local(J), "charged"),
        )
        .at("2017-02-02T09:00:00Z", withdrawn("D-34", "P-3004"));
    check(
        log,
        Some("2017-02-10T00:00:00Z"),
        &format!(
            "{}
             #1 2017-02-03T18:00:00Z R3.5 release P-3004 by=timer:hold:#0 from=local:tx-travis-county \
             basis=hold_expired effective_at=2017-02-03T18:00:00Z detainer_id=D-35",
            hold_line("P-3004")
        ),
    );
}

// ---------------------------------------------------------------------------------
// R4: ICE takes custody (R4.1) and places the person (R4.2).

#[test]
fn r4_1_ice_takes_custody_from_bop_with_no_offer_and_no_hold() {
    let log = Log::new()
        .at(
            "2017-01-28T09:00:00Z",
            detainer("D-40", "P-4100", bop(FCI), "charged"),
        )
        .at("2017-01-29T09:00:00Z", assumed("P-4100", bop(FCI)));
    check(
        log,
        None,
        "#0 2017-01-29T09:00:00Z R4.1 transfer P-4100 by=e2 from=bop:fci-bastrop to=ice:ice \
         basis=custody_assumed conditions= effective_at=2017-01-29T09:00:00Z detainer_id=D-40
         #1 2017-01-29T09:00:00Z R4.2 placement P-4100 by=e2 placement=detain basis=detainer",
    );
}

#[test]
fn r4_1_takes_effect_when_the_giving_custody_begins() {
    // J's custody begins at release_at (R1.3); ICE taking the person before then takes
    // effect at that moment, not earlier.
    let log = Log::new()
        .at("2017-01-28T09:00:00Z", claim("C-42", "P-4102", J))
        .at("2017-01-29T09:00:00Z", bop_release("P-4102", FCI, REL))
        .at("2017-01-30T09:00:00Z", assumed("P-4102", local(J)));
    check(
        log,
        None,
        "#0 2017-01-29T09:00:00Z R1.3 transfer P-4102 by=e2 from=bop:fci-bastrop \
         to=local:tx-travis-county basis=local_claim conditions= effective_at=2017-02-01T12:00:00Z \
         claim_id=C-42
         #1 2017-01-30T09:00:00Z R4.1 transfer P-4102 by=e3 from=local:tx-travis-county to=ice:ice \
         basis=custody_assumed conditions= effective_at=2017-02-01T12:00:00Z
         #2 2017-01-30T09:00:00Z R4.2 placement P-4102 by=e3 placement=detain basis=detainer",
    );
}

#[test]
fn r1_7_ice_takes_custody_while_the_offer_is_open() {
    let log = offered("P-1006")
        .at("2017-01-30T09:00:00Z", assumed("P-1006", bop(FCI)))
        .at(
            "2017-01-30T10:00:00Z",
            response(&offer_id_of("e4"), "P-1006", "decline"),
        );
    check(
        log,
        Some("2017-02-10T00:00:00Z"),
        &format!(
            "{OFFER}
             #1 2017-01-30T09:00:00Z R1.7 transfer P-1006 by=e5 from=bop:fci-bastrop to=ice:ice \
             basis=first_refusal_accepted conditions= effective_at=2017-02-01T12:00:00Z \
             detainer_id=D-6 offer_id=#0
             #2 2017-01-30T09:00:00Z R4.2 placement P-1006 by=e5 placement=detain \
             basis=priority_detention
             ! line 6: rejected: unknown_offer"
        ),
    );
}

#[test]
fn r4_2_detain_while_beds_last_then_atd_except_for_the_convicted() {
    // The county holds each person (their detainers name it), so each pickup is an R4.1
    // transfer before its placement; P-4005 was never held, so ICE simply has them. The
    // convicted P-4004, detained past capacity, puts occupancy over the funded beds: the
    // funding review (R6.1) moves P-4001, the one other person detained.
    let log = Log::new()
        .at("2017-01-28T08:00:00Z", capacity(10, 9))
        .at(
            "2017-01-28T09:00:00Z",
            detainer("D-41", "P-4001", local(J), "charged"),
        )
        .at(
            "2017-01-28T09:01:00Z",
            detainer("D-42", "P-4002", local(J), "charged"),
        )
        .at(
            "2017-01-28T09:02:00Z",
            detainer("D-43", "P-4003", local(J), "none"),
        )
        .at(
            "2017-01-28T09:03:00Z",
            detainer("D-44", "P-4004", local(J), "convicted"),
        )
        .at("2017-01-29T09:00:00Z", assumed("P-4001", local(J)))
        .at("2017-01-29T09:01:00Z", assumed("P-4002", local(J)))
        .at("2017-01-29T09:02:00Z", assumed("P-4003", local(J)))
        .at("2017-01-29T09:03:00Z", assumed("P-4004", local(J)))
        .at("2017-01-30T09:00:00Z", capacity(20, 5))
        .at("2017-01-30T09:01:00Z", assumed("P-4005", local(K)));
    check(
        log,
        None,
        "#0 2017-01-29T09:00:00Z R4.1 transfer P-4001 by=e6 from=local:tx-travis-county to=ice:ice \
         basis=custody_assumed conditions= effective_at=2017-01-29T09:00:00Z detainer_id=D-41
         #1 2017-01-29T09:00:00Z R4.2 placement P-4001 by=e6 placement=detain basis=detainer
         #2 2017-01-29T09:01:00Z R4.1 transfer P-4002 by=e7 from=local:tx-travis-county to=ice:ice \
         basis=custody_assumed conditions= effective_at=2017-01-29T09:01:00Z detainer_id=D-42
         #3 2017-01-29T09:01:00Z R4.2 placement P-4002 by=e7 placement=atd monitoring=ankle_monitor basis=capacity
         #4 2017-01-29T09:02:00Z R4.1 transfer P-4003 by=e8 from=local:tx-travis-county to=ice:ice \
         basis=custody_assumed conditions= effective_at=2017-01-29T09:02:00Z detainer_id=D-43
         #5 2017-01-29T09:02:00Z R4.2 placement P-4003 by=e8 placement=atd monitoring=telephonic basis=capacity
         #6 2017-01-29T09:03:00Z R4.1 transfer P-4004 by=e9 from=local:tx-travis-county to=ice:ice \
         basis=custody_assumed conditions= effective_at=2017-01-29T09:03:00Z detainer_id=D-44
         #7 2017-01-29T09:03:00Z R4.2 placement P-4004 by=e9 placement=detain basis=priority_detention
         #8 2017-01-29T09:03:00Z R6.1 placement P-4001 by=e9 placement=atd monitoring=ankle_monitor basis=capacity_review
         #9 2017-01-30T09:01:00Z R4.2 placement P-4005 by=e11 placement=detain basis=detainer",
    );
}

#[test]
fn r4_2_no_capacity_known_means_detain() {
    let log = Log::new()
        .at(
            "2017-01-28T09:00:00Z",
            detainer("D-45", "P-4006", local(J), "convicted"),
        )
        .at("2017-01-29T09:00:00Z", assumed("P-4006", local(J)));
    check(
        log,
        None,
        "#0 2017-01-29T09:00:00Z R4.1 transfer P-4006 by=e2 from=local:tx-travis-county to=ice:ice \
         basis=custody_assumed conditions= effective_at=2017-01-29T09:00:00Z detainer_id=D-45
         #1 2017-01-29T09:00:00Z R4.2 placement P-4006 by=e2 placement=detain basis=priority_detention",
    );
}

#[test]
fn r4_2_a_person_ice_already_detains_is_not_placed_again() {
    let log = Log::new()
        .at("2017-01-29T09:00:00Z", assumed("P-4103", ice()))
        .at("2017-01-30T09:00:00Z", assumed("P-4103", ice()));
    check(
        log,
        None,
        "#0 2017-01-29T09:00:00Z R4.2 placement P-4103 by=e1 placement=detain basis=detainer",
    );
}

#[test]
fn occupancy_counts_down() {
    // One bed. P-4105 fills it and leaves detention under a writ, which frees it, so
    // P-4106 (charged) is detained rather than sent to ATD.
    let log = Log::new()
        .at("2017-01-28T08:00:00Z", capacity(1, 0))
        .at("2017-01-28T09:00:00Z", assumed("P-4105", ice()))
        .at("2017-01-28T10:00:00Z", writ("W-44", "P-4105", J))
        .at(
            "2017-01-28T11:00:00Z",
            detainer("D-45", "P-4106", local(K), "charged"),
        )
        .at("2017-01-28T12:00:00Z", assumed("P-4106", local(K)));
    check(
        log,
        None,
        "#0 2017-01-28T09:00:00Z R4.2 placement P-4105 by=e2 placement=detain basis=detainer
         #1 2017-01-28T10:00:00Z R2.1 transfer P-4105 by=e3 from=ice:ice to=local:tx-travis-county \
         basis=judicial_writ conditions=return_to_ice_after_proceedings \
         effective_at=2017-01-28T10:00:00Z writ_id=W-44
         #2 2017-01-28T12:00:00Z R4.1 transfer P-4106 by=e5 from=local:tx-hays-county to=ice:ice \
         basis=custody_assumed conditions= effective_at=2017-01-28T12:00:00Z detainer_id=D-45
         #3 2017-01-28T12:00:00Z R4.2 placement P-4106 by=e5 placement=detain basis=detainer",
    );
}

#[test]
fn occupancy_never_goes_below_zero() {
    // ICE reports no beds occupied after P-4107 was detained; P-4107 leaving frees no
    // bed below zero, and the next report counts from its own number.
    let log = Log::new()
        .at("2017-01-28T08:00:00Z", capacity(1, 0))
        .at("2017-01-28T09:00:00Z", assumed("P-4107", ice()))
        .at("2017-01-28T09:30:00Z", capacity(1, 0))
        .at("2017-01-28T10:00:00Z", writ("W-47", "P-4107", J))
        .at("2017-01-28T11:00:00Z", assumed("P-4108", ice()))
        .at("2017-01-28T12:00:00Z", assumed("P-4109", ice()));
    check(
        log,
        None,
        "#0 2017-01-28T09:00:00Z R4.2 placement P-4107 by=e2 placement=detain basis=detainer
         #1 2017-01-28T10:00:00Z R2.1 transfer P-4107 by=e4 from=ice:ice to=local:tx-travis-county \
         basis=judicial_writ conditions=return_to_ice_after_proceedings \
         effective_at=2017-01-28T10:00:00Z writ_id=W-47
         #2 2017-01-28T11:00:00Z R4.2 placement P-4108 by=e5 placement=detain basis=detainer
         #3 2017-01-28T12:00:00Z R4.2 placement P-4109 by=e6 placement=atd monitoring=telephonic \
         basis=capacity",
    );
}

// ---------------------------------------------------------------------------------
// Custody after a release (ICD section 5, "Custody").

#[test]
fn reentry_a_released_person_jailed_again_by_a_county_is_decided_again() {
    let log = Log::new()
        .at("2017-01-29T09:00:00Z", bop_release("P-5101", FCI, REL))
        .at("2017-06-01T08:00:00Z", policy(J, true, false))
        .at(
            "2017-06-01T09:00:00Z",
            detainer("D-51", "P-5101", local(J), "charged"),
        )
        .at(
            "2017-06-05T09:00:00Z",
            local_release("P-5101", J, "2017-06-10T18:00:00Z"),
        );
    check(
        log,
        Some("2017-07-01T00:00:00Z"),
        "#0 2017-01-29T09:00:00Z R1.4 release P-5101 by=e1 from=bop:fci-bastrop \
         basis=sentence_complete effective_at=2017-02-01T12:00:00Z
         #1 2017-06-05T09:00:00Z R3.3 hold P-5101 by=e4 jurisdiction_id=tx-travis-county \
         detainer_id=D-51 hold_from=2017-06-10T18:00:00Z hold_until=2017-06-12T18:00:00Z
         #2 2017-06-12T18:00:00Z R3.5 release P-5101 by=timer:hold:#1 from=local:tx-travis-county \
         basis=hold_expired effective_at=2017-06-12T18:00:00Z detainer_id=D-51",
    );
}

#[test]
fn reentry_a_release_notice_names_the_new_custodian_unless_it_is_stale() {
    // A notice not later than the last release's effective_at is stale; a later one,
    // from a county or from BOP, holds the person again.
    let log = Log::new()
        .at("2017-01-29T09:00:00Z", bop_release("P-5102", FCI, REL))
        .at(
            "2017-02-02T09:00:00Z",
            local_release("P-5102", J, "2017-01-15T12:00:00Z"),
        )
        .at(
            "2017-02-03T09:00:00Z",
            local_release("P-5102", J, "2017-03-01T12:00:00Z"),
        )
        .at(
            "2017-03-02T09:00:00Z",
            bop_release("P-5102", FCI, "2017-03-01T12:00:00Z"),
        )
        .at(
            "2017-03-03T09:00:00Z",
            bop_release("P-5102", "fci-la-tuna", "2018-01-01T12:00:00Z"),
        );
    check(
        log,
        None,
        "#0 2017-01-29T09:00:00Z R1.4 release P-5102 by=e1 from=bop:fci-bastrop \
         basis=sentence_complete effective_at=2017-02-01T12:00:00Z
         #1 2017-02-03T09:00:00Z R3.1 release P-5102 by=e3 from=local:tx-travis-county \
         basis=sentence_complete effective_at=2017-03-01T12:00:00Z
         #2 2017-03-03T09:00:00Z R1.4 release P-5102 by=e5 from=bop:fci-la-tuna \
         basis=sentence_complete effective_at=2018-01-01T12:00:00Z
         ! line 2: no_effect: stale: not later than the person's last release
         ! line 4: no_effect: stale: not later than the person's last release",
    );
}

#[test]
fn reentry_ice_takes_a_released_person_without_a_transfer() {
    let log = Log::new()
        .at("2017-01-29T09:00:00Z", bop_release("P-5103", FCI, REL))
        .at("2017-02-05T09:00:00Z", assumed("P-5103", bop(FCI)));
    check(
        log,
        None,
        "#0 2017-01-29T09:00:00Z R1.4 release P-5103 by=e1 from=bop:fci-bastrop \
         basis=sentence_complete effective_at=2017-02-01T12:00:00Z
         #1 2017-02-05T09:00:00Z R4.2 placement P-5103 by=e2 placement=detain basis=detainer",
    );
}

// ---------------------------------------------------------------------------------
// Several active detainers (ICD section 5).

#[test]
fn several_detainers_r1_11_only_when_no_active_detainer_remains() {
    // The offer cites the latest detainer, D-7; its withdrawal leaves D-6, so the offer
    // stays open; D-6's withdrawal leaves none: R1.11.
    let log = Log::new()
        .at("2017-01-28T08:00:00Z", policy(J, true, false))
        .at(
            "2017-01-28T09:00:00Z",
            detainer("D-6", "P-1007", bop(FCI), "convicted"),
        )
        .at(
            "2017-01-28T09:30:00Z",
            detainer("D-7", "P-1007", bop(FCI), "none"),
        )
        .at("2017-01-28T10:00:00Z", claim("C-6", "P-1007", J))
        .at("2017-01-29T09:00:00Z", bop_release("P-1007", FCI, REL))
        .at("2017-01-30T09:00:00Z", withdrawn("D-7", "P-1007"))
        .at("2017-01-30T10:00:00Z", withdrawn("D-6", "P-1007"));
    check(
        log,
        None,
        "#0 2017-01-29T09:00:00Z R1.6 offer P-1007 by=e5 offer_id=#0 jurisdiction_id=tx-travis-county \
         jurisdiction_honors_detainers=true respond_by=2017-02-01T12:00:00Z detainer_id=D-7
         #1 2017-01-30T10:00:00Z R1.11 transfer P-1007 by=e7 from=bop:fci-bastrop \
         to=local:tx-travis-county basis=local_claim conditions= \
         effective_at=2017-02-01T12:00:00Z claim_id=C-6 offer_id=#0",
    );
}

#[test]
fn several_detainers_the_hold_rests_on_one_not_declined_and_r3_2_when_all_are() {
    // P-6001: J declined D-62, so the hold rests on D-61; declining D-61 too leaves no
    // detainer to hold on (R3.7). P-6002: J declined both before the release: R3.2,
    // citing the latest active detainer.
    let log = Log::new()
        .at("2017-01-28T08:00:00Z", policy(J, true, false))
        .at(
            "2017-01-28T09:00:00Z",
            detainer("D-61", "P-6001", local(J), "charged"),
        )
        .at(
            "2017-01-28T10:00:00Z",
            detainer("D-62", "P-6001", local(J), "none"),
        )
        .at("2017-01-28T11:00:00Z", declined("D-62", "P-6001", J))
        .at("2017-01-31T09:00:00Z", local_release("P-6001", J, LREL))
        .at("2017-02-02T09:00:00Z", declined("D-61", "P-6001", J))
        .at(
            "2017-02-02T10:00:00Z",
            detainer("D-63", "P-6002", local(J), "charged"),
        )
        .at(
            "2017-02-02T11:00:00Z",
            detainer("D-64", "P-6002", local(J), "charged"),
        )
        .at("2017-02-02T12:00:00Z", declined("D-63", "P-6002", J))
        .at("2017-02-02T13:00:00Z", declined("D-64", "P-6002", J))
        .at(
            "2017-02-03T09:00:00Z",
            local_release("P-6002", J, "2017-02-05T18:00:00Z"),
        );
    check(
        log,
        None,
        "#0 2017-01-31T09:00:00Z R3.3 hold P-6001 by=e5 jurisdiction_id=tx-travis-county \
         detainer_id=D-61 hold_from=2017-02-01T18:00:00Z hold_until=2017-02-03T18:00:00Z
         #1 2017-02-02T09:00:00Z R3.7 release P-6001 by=e6 from=local:tx-travis-county \
         basis=detainer_declined effective_at=2017-02-02T09:00:00Z detainer_id=D-61
         #2 2017-02-03T09:00:00Z R3.2 release P-6002 by=e11 from=local:tx-travis-county \
         basis=detainer_declined effective_at=2017-02-05T18:00:00Z detainer_id=D-64",
    );
}

// ---------------------------------------------------------------------------------
// R5: housekeeping and events that mean nothing.

#[test]
fn r5_housekeeping_events_decide_nothing() {
    let log = Log::new()
        .at("2017-01-28T08:00:00Z", policy(J, true, false))
        .at(
            "2017-01-28T09:00:00Z",
            detainer("D-51", "P-5001", bop(FCI), "none"),
        )
        .at("2017-01-28T10:00:00Z", claim("C-51", "P-5001", J))
        .at("2017-01-28T11:00:00Z", capacity(100, 50))
        .at("2017-01-28T12:00:00Z", declined("D-51", "P-5001", J));
    check(log, None, "");
}

#[test]
fn r5_events_for_people_in_the_wrong_state_are_no_effect() {
    let log = Log::new()
        .at("2017-01-29T09:00:00Z", bop_release("P-5002", FCI, REL))
        .at("2017-02-02T09:00:00Z", bop_release("P-5002", FCI, REL))
        .at("2017-02-02T10:00:00Z", hold_expired("P-5002", "D-1", J))
        .at("2017-02-02T11:00:00Z", withdrawn("D-9", "P-5002"))
        .at("2017-02-02T12:00:00Z", local_release("P-5002", J, REL))
        .at("2017-02-02T13:00:00Z", writ("W-5", "P-5002", J));
    check(
        log,
        None,
        "#0 2017-01-29T09:00:00Z R1.4 release P-5002 by=e1 from=bop:fci-bastrop \
         basis=sentence_complete effective_at=2017-02-01T12:00:00Z
         ! line 2: no_effect: stale: not later than the person's last release
         ! line 3: no_effect: no hold in progress at this jurisdiction
         ! line 4: no_effect: no such active detainer
         ! line 5: no_effect: stale: not later than the person's last release
         ! line 6: no_effect: person has been released",
    );
}

// ---------------------------------------------------------------------------------
// R6: ICE detention reviews.

/// A person ICE already holds (the detainer names ICE as custodian), detained by R4.2
/// when ICE reports taking them: no transfer, only the placement.
fn held_by_ice(log: Log, at: &str, d: &str, p: &str, status: &str) -> Log {
    log.at(at, detainer(d, p, ice(), status))
}

#[test]
fn r6_1_funding_review_moves_in_order_with_every_tie_breaker() {
    // Six non-convicted detained people and one convicted; a cut to 2 funded beds with 7
    // occupied moves five, in R6.1's order: P-6013 (a factor; convicted when it was
    // reported, so R6.3 did not move them, then detained as `none` by a new detainer),
    // P-6012 (removal not foreseeable), P-6014 and P-6015 (detained longest, at the same
    // minute: by person id), P-6011; then occupancy is 2 and P-6010 (`charged`, last in
    // the order) stays, as does the convicted P-6016.
    let mut log = Log::new().at("2017-03-01T08:00:00Z", capacity(100, 0));
    for (t, d, p, s) in [
        ("2017-03-01T08:10:00Z", "D-60", "P-6010", "charged"),
        ("2017-03-01T08:11:00Z", "D-61", "P-6011", "none"),
        ("2017-03-01T08:12:00Z", "D-62", "P-6012", "none"),
        ("2017-03-01T08:13:00Z", "D-63", "P-6013", "convicted"),
    ] {
        log = held_by_ice(log, t, d, p, s);
    }
    log = log.at("2017-03-01T08:14:00Z", factor("P-6013", "medical"));
    for (t, d, p, s) in [
        ("2017-03-01T08:15:00Z", "D-64", "P-6014", "none"),
        ("2017-03-01T08:16:00Z", "D-65", "P-6015", "none"),
        ("2017-03-01T08:17:00Z", "D-66", "P-6016", "convicted"),
    ] {
        log = held_by_ice(log, t, d, p, s);
    }
    let log = log
        .at("2017-03-01T08:59:00Z", assumed("P-6015", ice()))
        .at("2017-03-01T08:59:00Z", assumed("P-6014", ice()))
        .at("2017-03-01T09:00:00Z", assumed("P-6010", ice()))
        .at("2017-03-01T09:01:00Z", assumed("P-6011", ice()))
        .at("2017-03-01T09:02:00Z", assumed("P-6012", ice()))
        .at("2017-03-01T09:03:00Z", assumed("P-6013", ice()))
        .at("2017-03-01T09:04:00Z", assumed("P-6016", ice()))
        .at("2017-03-01T10:00:00Z", removal("P-6011", "MX", true))
        .at("2017-03-01T10:01:00Z", removal("P-6012", "VE", false))
        .at(
            "2017-03-01T11:00:00Z",
            detainer("D-67", "P-6013", ice(), "none"),
        )
        .at("2017-03-01T12:00:00Z", capacity(2, 7));
    check(
        log,
        None,
        "#0 2017-03-01T08:59:00Z R4.2 placement P-6015 by=e10 placement=detain basis=detainer
         #1 2017-03-01T08:59:00Z R4.2 placement P-6014 by=e11 placement=detain basis=detainer
         #2 2017-03-01T09:00:00Z R4.2 placement P-6010 by=e12 placement=detain basis=detainer
         #3 2017-03-01T09:01:00Z R4.2 placement P-6011 by=e13 placement=detain basis=detainer
         #4 2017-03-01T09:02:00Z R4.2 placement P-6012 by=e14 placement=detain basis=detainer
         #5 2017-03-01T09:03:00Z R4.2 placement P-6013 by=e15 placement=detain basis=priority_detention
         #6 2017-03-01T09:04:00Z R4.2 placement P-6016 by=e16 placement=detain basis=priority_detention
         #7 2017-03-01T12:00:00Z R6.1 placement P-6013 by=e20 placement=atd monitoring=telephonic basis=capacity_review
         #8 2017-03-01T12:00:00Z R6.1 placement P-6012 by=e20 placement=atd monitoring=telephonic basis=capacity_review
         #9 2017-03-01T12:00:00Z R6.1 placement P-6014 by=e20 placement=atd monitoring=telephonic basis=capacity_review
         #10 2017-03-01T12:00:00Z R6.1 placement P-6015 by=e20 placement=atd monitoring=telephonic basis=capacity_review
         #11 2017-03-01T12:00:00Z R6.1 placement P-6011 by=e20 placement=atd monitoring=telephonic basis=capacity_review",
    );
}

#[test]
fn r6_1_a_detention_past_capacity_moves_the_first_in_review_order() {
    // Two beds; two people detained; a convicted third is detained past capacity (R4.2),
    // so the review moves the longest detained of the others. `charged` goes to an ankle
    // monitor.
    let log = held_by_ice(
        Log::new(),
        "2017-03-01T08:00:00Z",
        "D-70",
        "P-6020",
        "charged",
    );
    let log = held_by_ice(log, "2017-03-01T08:01:00Z", "D-71", "P-6021", "charged");
    let log = held_by_ice(log, "2017-03-01T08:02:00Z", "D-72", "P-6022", "convicted")
        .at("2017-03-01T08:30:00Z", capacity(2, 0))
        .at("2017-03-01T09:00:00Z", assumed("P-6020", ice()))
        .at("2017-03-01T09:01:00Z", assumed("P-6021", ice()))
        .at("2017-03-01T09:02:00Z", assumed("P-6022", ice()));
    check(
        log,
        None,
        "#0 2017-03-01T09:00:00Z R4.2 placement P-6020 by=e5 placement=detain basis=detainer
         #1 2017-03-01T09:01:00Z R4.2 placement P-6021 by=e6 placement=detain basis=detainer
         #2 2017-03-01T09:02:00Z R4.2 placement P-6022 by=e7 placement=detain basis=priority_detention
         #3 2017-03-01T09:02:00Z R6.1 placement P-6020 by=e7 placement=atd monitoring=ankle_monitor basis=capacity_review",
    );
}

#[test]
fn r6_1_a_cut_with_nobody_movable_moves_nobody() {
    // Only the convicted are detained: a cut leaves ICE over capacity, and nobody moves.
    let log = held_by_ice(
        Log::new(),
        "2017-03-01T08:00:00Z",
        "D-73",
        "P-6030",
        "convicted",
    );
    let log = held_by_ice(log, "2017-03-01T08:01:00Z", "D-74", "P-6031", "convicted")
        .at("2017-03-01T09:00:00Z", assumed("P-6030", ice()))
        .at("2017-03-01T09:01:00Z", assumed("P-6031", ice()))
        .at("2017-03-02T09:00:00Z", capacity(0, 2));
    check(
        log,
        None,
        "#0 2017-03-01T09:00:00Z R4.2 placement P-6030 by=e3 placement=detain basis=priority_detention
         #1 2017-03-01T09:01:00Z R4.2 placement P-6031 by=e4 placement=detain basis=priority_detention",
    );
}

#[test]
fn r6_2_prolonged_detention_ends_at_180_days_when_removal_is_not_foreseeable() {
    // Detained 2017-03-01T09:00; removal to VE not foreseeable: the timer fires at
    // detention + 180 days, whatever the criminal status (convicted here).
    let log = held_by_ice(
        Log::new(),
        "2017-03-01T08:00:00Z",
        "D-75",
        "P-6040",
        "convicted",
    )
    .at("2017-03-01T09:00:00Z", assumed("P-6040", ice()))
    .at("2017-04-01T09:00:00Z", removal("P-6040", "VE", false));
    check(
        log,
        Some("2017-12-31T00:00:00Z"),
        "#0 2017-03-01T09:00:00Z R4.2 placement P-6040 by=e2 placement=detain basis=priority_detention
         #1 2017-08-28T09:00:00Z R6.2 placement P-6040 by=timer:prolonged:#0 placement=atd monitoring=ankle_monitor basis=prolonged_detention",
    );
}

#[test]
fn r6_2_removal_foreseeable_again_cancels_the_timer() {
    let log = held_by_ice(Log::new(), "2017-03-01T08:00:00Z", "D-76", "P-6041", "none")
        .at("2017-03-01T09:00:00Z", assumed("P-6041", ice()))
        .at("2017-04-01T09:00:00Z", removal("P-6041", "VE", false))
        .at("2017-05-01T09:00:00Z", removal("P-6041", "VE", true));
    check(
        log,
        Some("2017-12-31T00:00:00Z"),
        "#0 2017-03-01T09:00:00Z R4.2 placement P-6041 by=e2 placement=detain basis=detainer",
    );
}

#[test]
fn r6_2_moves_at_once_when_the_180_days_have_passed() {
    // Removal is found not foreseeable after 200 days of detention: the move is decided
    // by that event, at its time.
    let log = held_by_ice(Log::new(), "2017-03-01T08:00:00Z", "D-77", "P-6042", "none")
        .at("2017-03-01T09:00:00Z", assumed("P-6042", ice()))
        .at("2017-09-17T09:00:00Z", removal("P-6042", "CU", false));
    check(
        log,
        None,
        "#0 2017-03-01T09:00:00Z R4.2 placement P-6042 by=e2 placement=detain basis=detainer
         #1 2017-09-17T09:00:00Z R6.2 placement P-6042 by=e3 placement=atd monitoring=telephonic basis=prolonged_detention",
    );
}

#[test]
fn r6_2_known_before_detention_starts_the_clock_at_detention() {
    // The status comes first; the 180 days count from detention, and leaving ICE's
    // custody before then (a writ, R2.1) cancels the timer.
    let log = held_by_ice(Log::new(), "2017-03-01T08:00:00Z", "D-78", "P-6043", "none")
        .at("2017-03-01T08:30:00Z", removal("P-6043", "VE", false))
        .at("2017-03-01T09:00:00Z", assumed("P-6043", ice()));
    let left = held_by_ice(Log::new(), "2017-03-01T08:00:00Z", "D-79", "P-6044", "none")
        .at("2017-03-01T08:30:00Z", removal("P-6044", "VE", false))
        .at("2017-03-01T09:00:00Z", assumed("P-6044", ice()))
        .at("2017-04-01T09:00:00Z", writ("W-79", "P-6044", J));
    check(
        log,
        Some("2017-12-31T00:00:00Z"),
        "#0 2017-03-01T09:00:00Z R4.2 placement P-6043 by=e3 placement=detain basis=detainer
         #1 2017-08-28T09:00:00Z R6.2 placement P-6043 by=timer:prolonged:#0 placement=atd monitoring=telephonic basis=prolonged_detention",
    );
    check(
        left,
        Some("2017-12-31T00:00:00Z"),
        "#0 2017-03-01T09:00:00Z R4.2 placement P-6044 by=e3 placement=detain basis=detainer
         #1 2017-04-01T09:00:00Z R2.1 transfer P-6044 by=e4 from=ice:ice to=local:tx-travis-county \
         basis=judicial_writ conditions=return_to_ice_after_proceedings \
         effective_at=2017-04-01T09:00:00Z writ_id=W-79",
    );
}

#[test]
fn r6_3_a_humanitarian_factor_moves_a_detained_person_at_once() {
    let log = held_by_ice(
        Log::new(),
        "2017-03-01T08:00:00Z",
        "D-80",
        "P-6050",
        "charged",
    )
    .at("2017-03-01T09:00:00Z", assumed("P-6050", ice()))
    .at(
        "2017-03-05T09:00:00Z",
        factor("P-6050", "primary_caretaker"),
    );
    check(
        log,
        None,
        "#0 2017-03-01T09:00:00Z R4.2 placement P-6050 by=e2 placement=detain basis=detainer
         #1 2017-03-05T09:00:00Z R6.3 placement P-6050 by=e3 placement=atd monitoring=office_checkin basis=humanitarian",
    );
}

#[test]
fn r6_3_a_factor_known_at_placement_places_in_atd_instead_of_detaining() {
    let log = held_by_ice(Log::new(), "2017-03-01T08:00:00Z", "D-81", "P-6051", "none")
        .at("2017-03-01T08:30:00Z", factor("P-6051", "medical"))
        .at("2017-03-01T09:00:00Z", assumed("P-6051", ice()));
    check(
        log,
        None,
        "#0 2017-03-01T09:00:00Z R6.3 placement P-6051 by=e3 placement=atd monitoring=office_checkin basis=humanitarian",
    );
}

#[test]
fn r6_3_a_convicted_person_s_factor_is_recorded_and_decides_nothing() {
    let log = held_by_ice(
        Log::new(),
        "2017-03-01T08:00:00Z",
        "D-82",
        "P-6052",
        "convicted",
    )
    .at("2017-03-01T08:30:00Z", factor("P-6052", "medical"))
    .at("2017-03-01T09:00:00Z", assumed("P-6052", ice()))
    .at(
        "2017-03-05T09:00:00Z",
        factor("P-6052", "primary_caretaker"),
    );
    check(
        log,
        None,
        "#0 2017-03-01T09:00:00Z R4.2 placement P-6052 by=e3 placement=detain basis=priority_detention",
    );
}

// ---------------------------------------------------------------------------------
// Section 5: time, order, duplicates.

#[test]
fn duplicates_decide_nothing_and_change_nothing() {
    let log = Log::new()
        .at_with_id(
            "x-1",
            "2017-01-28T09:00:00Z",
            detainer("D-61", "P-6001", bop(FCI), "none"),
        )
        .at_with_id("x-1", "2017-01-28T09:30:00Z", withdrawn("D-61", "P-6001"))
        .at_with_id(
            "x-2",
            "2017-01-29T09:00:00Z",
            bop_release("P-6001", FCI, REL),
        )
        .at_with_id(
            "x-2",
            "2017-01-29T09:00:00Z",
            bop_release("P-6001", FCI, REL),
        );
    // `x-1` from the county is not a duplicate of `x-1` from ICE: source + id is the key.
    let log = log.at_with_id("x-1", "2017-01-29T10:00:00Z", claim("C-61", "P-6001", J));
    check(
        log,
        None,
        "#0 2017-01-29T09:00:00Z R1.2 transfer P-6001 by=x-2 from=bop:fci-bastrop to=ice:ice \
         basis=detainer conditions= effective_at=2017-02-01T12:00:00Z detainer_id=D-61
         ! line 2: duplicate: source + id seen before; ignored
         ! line 4: duplicate: source + id seen before; ignored",
    );
}

#[test]
fn clock_never_moves_backwards() {
    let log = Log::new()
        .at("2017-02-01T10:00:00Z", capacity(100, 1))
        .at("2017-01-30T09:00:00Z", bop_release("P-6002", FCI, REL));
    check(
        log,
        None,
        "#0 2017-02-01T10:00:00Z R1.4 release P-6002 by=e2 from=bop:fci-bastrop \
         basis=sentence_complete effective_at=2017-02-01T12:00:00Z",
    );
}

#[test]
fn handoffreceived_is_the_clock_when_present() {
    let line = envelope(
        "e1",
        "2017-01-29T09:00:00Z",
        bop_release("P-6003", FCI, REL),
    )
    .replacen(
        '{',
        r#"{"handoffreceived":"2017-01-29T11:30:00.25+02:00","#,
        1,
    );
    let log = Log::new().raw(&line);
    check(
        log,
        None,
        "#0 2017-01-29T09:30:00.250Z R1.4 release P-6003 by=e1 from=bop:fci-bastrop \
         basis=sentence_complete effective_at=2017-02-01T12:00:00Z",
    );
}

#[test]
fn timers_fire_in_deadline_order_across_people_ties_in_the_order_set() {
    let log = Log::new()
        .at("2017-01-28T08:00:00Z", policy(J, true, false))
        .at(
            "2017-01-28T09:00:00Z",
            detainer("D-71", "P-7001", local(J), "none"),
        )
        .at(
            "2017-01-28T09:00:00Z",
            detainer("D-72", "P-7002", local(J), "none"),
        )
        .at(
            "2017-01-28T09:00:00Z",
            detainer("D-73", "P-7003", local(J), "none"),
        )
        // Set in the order P-7001 (latest deadline), P-7002, P-7003 (same as P-7002).
        .at(
            "2017-01-29T09:00:00Z",
            local_release("P-7001", J, "2017-01-30T12:00:00Z"),
        )
        .at(
            "2017-01-29T09:01:00Z",
            local_release("P-7002", J, "2017-01-30T06:00:00Z"),
        )
        .at(
            "2017-01-29T09:02:00Z",
            local_release("P-7003", J, "2017-01-30T06:00:00Z"),
        )
        // An event after every deadline fires them all, before its own rules.
        .at("2017-02-05T00:00:00Z", bop_release("P-7004", FCI, REL));
    check(
        log,
        None,
        "#0 2017-01-29T09:00:00Z R3.3 hold P-7001 by=e5 jurisdiction_id=tx-travis-county detainer_id=D-71 \
         hold_from=2017-01-30T12:00:00Z hold_until=2017-02-01T12:00:00Z
         #1 2017-01-29T09:01:00Z R3.3 hold P-7002 by=e6 jurisdiction_id=tx-travis-county detainer_id=D-72 \
         hold_from=2017-01-30T06:00:00Z hold_until=2017-02-01T06:00:00Z
         #2 2017-01-29T09:02:00Z R3.3 hold P-7003 by=e7 jurisdiction_id=tx-travis-county detainer_id=D-73 \
         hold_from=2017-01-30T06:00:00Z hold_until=2017-02-01T06:00:00Z
         #3 2017-02-01T06:00:00Z R3.5 release P-7002 by=timer:hold:#1 from=local:tx-travis-county \
         basis=hold_expired effective_at=2017-02-01T06:00:00Z detainer_id=D-72
         #4 2017-02-01T06:00:00Z R3.5 release P-7003 by=timer:hold:#2 from=local:tx-travis-county \
         basis=hold_expired effective_at=2017-02-01T06:00:00Z detainer_id=D-73
         #5 2017-02-01T12:00:00Z R3.5 release P-7001 by=timer:hold:#0 from=local:tx-travis-county \
         basis=hold_expired effective_at=2017-02-01T12:00:00Z detainer_id=D-71
         #6 2017-02-05T00:00:00Z R1.4 release P-7004 by=e8 from=bop:fci-bastrop \
         basis=sentence_complete effective_at=2017-02-01T12:00:00Z",
    );
}

#[test]
fn bad_lines_are_reported_with_their_number_and_skipped() {
    let log = Log::new()
        .raw("this is not json")
        .raw(r#"{"specversion":"1.0","id":"e2","source":"urn:x","type":"no.such.type","time":"2017-01-28T09:00:00Z","data":{}}"#)
        .at("2017-01-29T09:00:00Z", bop_release("p-lowercase", FCI, REL))
        .at("2017-01-29T10:00:00Z", bop_release("P-6004", FCI, REL));
    let out = run(&log, None);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[0].contains("R1.4 release P-6004"), "{out}");
    assert!(
        lines[1].starts_with("! line 1: invalid (not_json): not JSON:"),
        "{out}"
    );
    assert!(
        lines[2].starts_with("! line 2: invalid (unknown_type): /type:"),
        "{out}"
    );
    assert!(
        lines[3].starts_with("! line 3: invalid (schema): /data/person_id:"),
        "{out}"
    );
}
