//! The live service's sans-IO pipeline on a virtual clock, in the manner of quinn's `Pair`
//! tests: a small [`Driver`] plays RabbitMQ and the driver (deliveries, confirms, acks,
//! crashes), with no broker, no files and no sleeps, and checks the service's invariants
//! at every step.

#[path = "support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use serde_json::Value;

use handoff::edge::reason::DeadLetterReason;
use handoff::journal::control::{Control, Entry};
use handoff::journal::{EntryError, Journal, MemJournal, check_line, unframed};
use handoff::live::pipeline::{
    Batch, Disposition, Inbound, Marks, Origin, Pipeline, Recovering, Settings,
};
use handoff_core::authz::Agency;
use support::*;

type Time = DateTime<Utc>;
/// The delivery's "properties": its tag, so a dead letter says whose it is.
type Meta = u64;

const J: &str = "tx-travis-county";
/// The writer id the pipeline is given.
const WRITER: &str = "handoff-test:1";

fn settings() -> Settings {
    let mut agencies = BTreeMap::new();
    agencies.insert("ice".to_string(), Agency::Ice);
    agencies.insert("bop".to_string(), Agency::Bop);
    agencies.insert("travis".to_string(), Agency::Jurisdiction(J.to_string()));
    Settings {
        max_message_bytes: 4096,
        agencies,
        writer: WRITER.to_string(),
    }
}

fn t(s: &str) -> Time {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// A message as a publisher would send it.
#[derive(Debug, Clone)]
struct Message {
    user: Option<String>,
    bytes: Vec<u8>,
}

fn msg(user: &str, id: &str, time: Time, ev: Ev) -> Message {
    Message {
        user: Some(user.to_string()),
        bytes: envelope(id, &time.to_rfc3339(), ev).into_bytes(),
    }
}

/// (source, id) of an event's JSON, if it is one.
fn key_of(bytes: &[u8]) -> Option<(String, String)> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    Some((v["source"].as_str()?.into(), v["id"].as_str()?.into()))
}

/// A dead letter as published: its reason, the (source, id) of its body, its origin.
type DeadLettered = (DeadLetterReason, Option<(String, String)>, Origin);

/// A delivery RabbitMQ holds: its tag in the current session and the message.
#[derive(Debug, Clone)]
struct Unacked {
    tag: u64,
    message: Message,
}

/// Plays the driver and RabbitMQ around one pipeline, checking the invariants.
struct Driver {
    p: Pipeline<MemJournal, Meta>,
    now: Time,
    next_tag: u64,
    /// Delivered and not acknowledged, in tag order (RabbitMQ redelivers these).
    unacked: VecDeque<Unacked>,
    /// Batches handed out and published, not yet settled, in order.
    in_flight: VecDeque<Batch<Meta>>,
    /// Tags whose dead letter RabbitMQ confirmed (this session).
    dead_lettered: BTreeSet<u64>,
    /// Every dead letter confirmed: (reason, (source, id) of its body when an event).
    dead_letters: Vec<DeadLettered>,
    /// Every decision confirmed, by id, with its bytes (a republish must be identical).
    decisions: BTreeMap<String, Vec<u8>>,
    /// Decisions confirmed in order of confirmation (the first time each).
    order: Vec<String>,
    /// The marks as stored (the files beside the journal).
    stored: Marks,
    /// Everything the driver has confirmed so far.
    confirmed: Marks,
    /// Every batch's `upto` the driver reported, to check stored marks against.
    acked_upto: u64,
}

impl Driver {
    fn new(now: Time) -> Driver {
        Driver {
            p: Pipeline::new(settings(), MemJournal::new(), now).expect("commit"),
            now,
            next_tag: 1,
            unacked: VecDeque::new(),
            in_flight: VecDeque::new(),
            dead_lettered: BTreeSet::new(),
            dead_letters: Vec::new(),
            decisions: BTreeMap::new(),
            order: Vec::new(),
            stored: Marks::default(),
            confirmed: Marks::default(),
            acked_upto: 0,
        }
    }

    fn journaled(&self) -> BTreeSet<(String, String)> {
        self.p
            .journal()
            .entries()
            .iter()
            .filter_map(|l| key_of(unframed(l).as_bytes()))
            .collect()
    }

    /// RabbitMQ delivers a message.
    fn deliver(&mut self, message: Message) -> Disposition {
        let tag = self.next_tag;
        self.next_tag += 1;
        self.unacked.push_back(Unacked {
            tag,
            message: message.clone(),
        });
        self.p.handle_delivery(
            self.now,
            Inbound {
                tag,
                user: message.user,
                bytes: message.bytes,
                meta: tag,
            },
        )
    }

    /// The driver's turn: fire timers, take the batch (commit), publish it.
    fn step(&mut self) {
        self.p.handle_timeout(self.now);
        if let Some(batch) = self.p.poll_batch().expect("commit") {
            self.in_flight.push_back(batch);
        }
    }

    /// Moves the virtual clock, firing what came due.
    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.step();
    }

    /// RabbitMQ confirms the oldest `n` batches in flight; each is settled in order:
    /// confirms, then the ack, then `handle_confirmed`.
    fn settle(&mut self, n: usize) {
        for _ in 0..n {
            let Some(batch) = self.in_flight.pop_front() else {
                return;
            };
            for d in &batch.decisions {
                match self.decisions.get(&d.id) {
                    Some(bytes) => assert_eq!(*bytes, d.body, "{} republished differently", d.id),
                    None => {
                        self.decisions.insert(d.id.clone(), d.body.clone());
                        self.order.push(d.id.clone());
                    }
                }
            }
            for dl in &batch.dead_letters {
                if let Origin::Live { tag, .. } = &dl.origin {
                    self.dead_lettered.insert(*tag);
                }
                self.dead_letters
                    .push((dl.reason, key_of(&dl.body), dl.origin.clone()));
            }
            if let Some(upto) = batch.ack_upto {
                self.ack(upto);
            }
            self.confirmed = Marks {
                decisions: self.confirmed.decisions.max(batch.upto.decisions),
                refusals: self.confirmed.refusals.max(batch.upto.refusals),
            };
            if let Some(marks) = self.p.handle_confirmed(batch.upto) {
                self.stored = marks;
            }
            self.check_marks();
        }
    }

    /// `basic.ack(multiple)` up to `upto`: each message acknowledged must be journaled or
    /// have its dead letter confirmed.
    fn ack(&mut self, upto: u64) {
        let journaled = self.journaled();
        while self.unacked.front().is_some_and(|u| u.tag <= upto) {
            let u = self.unacked.pop_front().unwrap();
            let in_journal = key_of(&u.message.bytes).is_some_and(|k| journaled.contains(&k));
            assert!(
                in_journal || self.dead_lettered.contains(&u.tag),
                "delivery {} acknowledged, but neither journaled nor dead-lettered",
                u.tag
            );
        }
        self.acked_upto = upto;
    }

    /// The marks stored are never ahead of what was confirmed.
    fn check_marks(&self) {
        assert!(
            self.stored.decisions <= self.confirmed.decisions
                && self.stored.refusals <= self.confirmed.refusals,
            "marks {:?} ahead of confirms {:?}",
            self.stored,
            self.confirmed
        );
        let c = self.p.confirmed();
        assert!(c.decisions <= self.confirmed.decisions && c.refusals <= self.confirmed.refusals);
    }

    /// The connection drops: what was in flight is never confirmed; the unacknowledged
    /// deliveries come again with new tags; the pipeline republishes what is unconfirmed.
    fn reconnect(&mut self) {
        self.in_flight.clear();
        self.dead_lettered.clear();
        if let Some(batch) = self.p.unconfirmed() {
            self.in_flight.push_back(batch);
        }
        self.redeliver();
    }

    /// The process dies (the durable journal entries and the stored marks survive) and
    /// starts again at `now`.
    fn crash(&mut self) {
        let journal = self.p.journal().crashed();
        let mut r = Recovering::new(self.stored);
        for line in journal.entries() {
            r.entry(line).unwrap();
        }
        let (p, _) = r.finish(settings(), journal, self.now).unwrap();
        self.p = p;
        self.confirmed = self.stored;
        self.reconnect();
    }

    fn redeliver(&mut self) {
        let again: Vec<Unacked> = self.unacked.drain(..).collect();
        for u in again {
            self.deliver(u.message);
        }
        self.step();
    }

    /// Settles everything, including whatever settling makes due.
    fn drain(&mut self) {
        self.step();
        while !self.in_flight.is_empty() {
            self.settle(self.in_flight.len());
            self.step();
        }
    }
}

fn start() -> Time {
    t("2017-01-28T08:00:00Z")
}

/// J honors detainers; ICE lodges one for P-1 held by J; J would release P-1 at
/// `release_at`: a hold from `release_at` to 48 hours later.
fn hold_story(d: &mut Driver, release_at: Time) {
    let now = d.now;
    d.deliver(msg("travis", "j1", now, policy(J, true, false)));
    d.deliver(msg(
        "ice",
        "i1",
        now,
        detainer("D-34", "P-0001", local(J), "charged"),
    ));
    d.deliver(msg(
        "travis",
        "j2",
        now,
        local_release("P-0001", J, &release_at.to_rfc3339()),
    ));
    d.drain();
}

fn decision(d: &Driver, id: &str) -> Value {
    serde_json::from_slice(&d.decisions[id]).unwrap()
}

fn decisions_of_type(d: &Driver, ty: &str) -> Vec<Value> {
    d.order
        .iter()
        .map(|id| decision(d, id))
        .filter(|v| v["type"] == ty)
        .collect()
}

#[test]
fn a_hold_fires_exactly_at_hold_until() {
    let mut d = Driver::new(start());
    let release_at = t("2017-01-28T10:00:00Z");
    hold_story(&mut d, release_at);
    let holds = decisions_of_type(&d, "handoff.hold");
    assert_eq!(holds.len(), 1, "{:?}", d.order);
    let until = t(holds[0]["data"]["hold_until"].as_str().unwrap());
    assert_eq!(until, release_at + Duration::hours(48));
    assert_eq!(d.p.poll_timeout(), Some(until));

    // A millisecond early: nothing.
    d.advance(until - d.now - Duration::milliseconds(1));
    assert!(decisions_of_type(&d, "handoff.release").is_empty());
    d.advance(Duration::milliseconds(1));
    d.drain();
    let releases = decisions_of_type(&d, "handoff.release");
    assert_eq!(releases.len(), 1);
    assert_eq!(releases[0]["data"]["basis"], "hold_expired");
    assert_eq!(t(releases[0]["time"].as_str().unwrap()), until);
    assert_eq!(d.p.poll_timeout(), None);
}

#[test]
fn a_hold_fires_at_hold_until_across_a_crash() {
    let mut d = Driver::new(start());
    let release_at = t("2017-01-28T10:00:00Z");
    hold_story(&mut d, release_at);
    let until = release_at + Duration::hours(48);
    // Down from before the end of the hold until 3 hours after it.
    d.now = until + Duration::hours(3);
    d.crash();
    d.drain();
    let releases = decisions_of_type(&d, "handoff.release");
    assert_eq!(releases.len(), 1);
    assert_eq!(t(releases[0]["time"].as_str().unwrap()), until);
    assert_eq!(
        t(releases[0]["data"]["effective_at"].as_str().unwrap()),
        until
    );
}

/// R6.2 across a stop: the service is down when 180 days of detention with removal not
/// foreseeable pass; at start-up the move is decided with the deadline as its time.
#[test]
fn the_180_days_passing_while_stopped_fire_at_start_up_at_the_deadline() {
    let mut d = Driver::new(start());
    let now = d.now;
    d.deliver(msg(
        "ice",
        "i1",
        now,
        detainer("D-60", "P-0060", ice(), "none"),
    ));
    d.deliver(msg("ice", "i2", now, assumed("P-0060", ice())));
    d.deliver(msg("ice", "i3", now, removal("P-0060", "VE", false)));
    d.drain();
    let placed = decisions_of_type(&d, "handoff.placement");
    assert_eq!(placed.len(), 1);
    assert_eq!(placed[0]["data"]["placement"], "detain");
    let deadline = now + Duration::days(180);
    assert_eq!(d.p.poll_timeout(), Some(deadline));
    // Down from a day after detention began until ten days past the deadline.
    d.now = deadline + Duration::days(10);
    d.crash();
    d.drain();
    let placed = decisions_of_type(&d, "handoff.placement");
    assert_eq!(placed.len(), 2, "{placed:?}");
    assert_eq!(placed[1]["data"]["rule"], "R6.2");
    assert_eq!(placed[1]["data"]["basis"], "prolonged_detention");
    assert_eq!(t(placed[1]["time"].as_str().unwrap()), deadline);
    assert!(
        placed[1]["data"]["caused_by"]
            .as_str()
            .unwrap()
            .starts_with("timer:prolonged:")
    );
    assert_eq!(d.p.poll_timeout(), None);
}

fn unknown_answer(d: &Driver, id: &str) -> Message {
    msg(
        "ice",
        id,
        d.now,
        response("no-such-offer", "P-0009", "accept"),
    )
}

#[test]
fn a_refusal_is_journaled_and_dead_lettered() {
    let mut d = Driver::new(start());
    let m = unknown_answer(&d, "r1");
    let k = key_of(&m.bytes);
    assert_eq!(
        d.deliver(m),
        Disposition::Journaled {
            event_type: "ice.first_refusal.response",
            refused: Some(DeadLetterReason::UnknownOffer)
        }
    );
    d.drain();
    assert!(d.journaled().contains(k.as_ref().unwrap()));
    assert_eq!(d.dead_letters.len(), 1);
    assert_eq!(d.dead_letters[0].0, DeadLetterReason::UnknownOffer);
    assert!(matches!(d.dead_letters[0].2, Origin::Live { tag: 1, .. }));
    assert_eq!(d.stored.refusals, 1);
}

/// Regression: the crash came after the refusal was journaled and before its dead letter
/// was confirmed. The redelivered message is a duplicate (acknowledged only), so the
/// dead letter must come from the journal: recovery puts it back in the outbox.
#[test]
fn a_refusal_is_dead_lettered_again_after_a_crash_before_its_confirm() {
    let mut d = Driver::new(start());
    let m = unknown_answer(&d, "r1");
    let k = key_of(&m.bytes);
    d.deliver(m);
    d.step();
    assert_eq!(d.in_flight.len(), 1);
    // The opened entry, then the refusal.
    assert_eq!(d.p.journal().len(), 2);
    d.crash();
    d.drain();
    assert!(d.unacked.is_empty());
    let dls: Vec<_> = d
        .dead_letters
        .iter()
        .filter(|(_, key, _)| *key == k)
        .collect();
    assert_eq!(dls.len(), 1, "{:?}", d.dead_letters);
    assert_eq!(dls[0].0, DeadLetterReason::UnknownOffer);
    match &dls[0].2 {
        Origin::Recovered { agency, event_id } => {
            assert_eq!(agency, "ice");
            assert_eq!(event_id, "r1");
        }
        other => panic!("expected a recovered dead letter, got {other:?}"),
    }
    assert_eq!(d.stored.refusals, 1);
    // Once confirmed, a further restart sends it no more.
    d.crash();
    d.drain();
    assert_eq!(d.dead_letters.len(), 1);
}

/// The same across a reconnect: the dead letter stays in the outbox until confirmed.
#[test]
fn a_refusal_is_dead_lettered_again_after_a_reconnect() {
    let mut d = Driver::new(start());
    d.deliver(unknown_answer(&d, "r1"));
    d.step();
    d.reconnect();
    d.drain();
    assert_eq!(d.dead_letters.len(), 1);
    assert!(matches!(d.dead_letters[0].2, Origin::Live { .. }));
    assert_eq!(d.p.undead(), 0);
}

#[test]
fn a_failed_commit_hands_nothing_out_and_acks_nothing() {
    let mut d = Driver::new(start());
    hold_story(&mut d, t("2017-01-28T10:00:00Z"));
    let before = d.p.journal().len();
    let settled = d.acked_upto;
    d.deliver(msg("travis", "j9", d.now, claim("C-1", "P-0001", J)));
    d.deliver(Message {
        user: Some("ice".into()),
        bytes: b"not json".to_vec(),
    });
    d.p.journal_mut().fail_next_commit();
    assert!(d.p.poll_batch().unwrap_err().is_io());
    // Nothing handed out, then or later; nothing new in the journal; nothing acked.
    assert!(d.in_flight.is_empty());
    assert!(d.p.poll_batch().is_err());
    assert_eq!(d.p.journal().len(), before);
    assert!(d.p.has_failed());
    assert_eq!(
        d.deliver(Message {
            user: None,
            bytes: Vec::new()
        }),
        Disposition::Stopped
    );
    assert_eq!(d.p.poll_timeout(), None);
    assert_eq!(d.acked_upto, settled);
    assert_eq!(d.unacked.len(), 3);
    // A restart recovers from what is durable, appends its opened entry and takes the
    // messages again.
    d.crash();
    d.drain();
    assert!(d.unacked.is_empty());
    assert_eq!(d.p.journal().len(), before + 2);
}

#[test]
fn stamps_never_go_backwards() {
    let mut d = Driver::new(start());
    d.deliver(msg("travis", "j1", d.now, policy(J, true, false)));
    d.now -= Duration::hours(1);
    d.deliver(msg("travis", "j2", d.now, policy(J, false, false)));
    d.drain();
    let times: Vec<Time> =
        d.p.journal()
            .entries()
            .iter()
            .filter_map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                v["handoffreceived"].as_str().map(t)
            })
            .collect();
    assert_eq!(times, vec![start(), start()]);
}

/// The journal's entries as the readers see them: events, or control entries.
fn entries(journal: &MemJournal) -> Vec<Entry> {
    journal
        .entries()
        .iter()
        .map(|l| {
            assert_eq!(
                check_line(l.as_bytes()),
                Ok(()),
                "every entry has its CRC: {l}"
            );
            handoff::edge::envelope::parse_entry(l).expect("a valid entry")
        })
        .collect()
}

/// The opened entry at `index` of the journal, checked to name this build's rules and the
/// writer it was given; gives its time.
fn opened_at(journal: &MemJournal, index: usize) -> (Time, String) {
    match &entries(journal)[index] {
        Entry::Control(Control::Opened(o)) => {
            assert_eq!(o.rules, handoff_core::RULES_VERSION);
            assert_eq!(o.writer, WRITER);
            assert_eq!(o.epoch, None);
            (o.time, o.id.clone())
        }
        other => panic!("entry {index} is not an opened entry: {other:?}"),
    }
}

/// ICD section 8: the first entry of every journal is `handoff.journal.opened`, and a
/// writer started after a crash appends another, made durable before the next event it
/// journals (it is committed even when no event ever comes).
#[test]
fn a_journal_starts_opened_and_a_restart_opens_it_again_before_its_next_event() {
    let mut d = Driver::new(start());
    assert_eq!(
        d.p.journal().len(),
        1,
        "committed before anything is delivered"
    );
    assert_eq!(d.p.journal().pending(), 0);
    assert_eq!(opened_at(d.p.journal(), 0).0, start());
    hold_story(&mut d, t("2017-01-28T10:00:00Z"));
    let before = d.p.journal().len() as usize;
    assert_eq!(before, 4);

    d.now += Duration::hours(1);
    d.crash();
    // Durable at once, with nothing delivered: a second crash keeps it.
    assert_eq!(d.p.journal().len() as usize, before + 1);
    assert_eq!(d.p.journal().pending(), 0);
    d.crash();
    assert_eq!(d.p.journal().len() as usize, before + 2);
    d.deliver(msg("travis", "j9", d.now, claim("C-1", "P-0001", J)));
    d.drain();
    let all = entries(d.p.journal());
    assert_eq!(all.len(), before + 3);
    let (first, first_id) = opened_at(d.p.journal(), 0);
    let (second, second_id) = opened_at(d.p.journal(), before);
    let (third, third_id) = opened_at(d.p.journal(), before + 1);
    assert_eq!((first, second, third), (start(), d.now, d.now));
    assert!(first_id != second_id && second_id != third_id && first_id != third_id);
    assert!(matches!(&all[before + 2], Entry::Event(e) if e.id == "j9"));
    // Only the opened entries are control entries.
    let controls = all
        .iter()
        .filter(|e| matches!(e, Entry::Control(_)))
        .count();
    assert_eq!(controls, 3);
}

/// Control entries decide nothing: recovery over the journal with and without them gives
/// the same decisions, ids and bytes, and the same refusals.
#[test]
fn decisions_are_the_same_with_and_without_control_entries() {
    let mut d = Driver::new(start());
    hold_story(&mut d, t("2017-01-28T10:00:00Z"));
    d.deliver(unknown_answer(&d, "r1"));
    d.drain();
    d.now += Duration::hours(30);
    d.crash();
    d.drain();
    d.deliver(msg("travis", "j9", d.now, claim("C-1", "P-0001", J)));
    d.now += Duration::hours(30);
    d.drain();
    let with: Vec<String> = d.p.journal().entries().to_vec();
    let without: Vec<String> = with
        .iter()
        .filter(|l| !l.contains("\"type\":\"handoff.journal."))
        .cloned()
        .collect();
    assert_eq!(with.len(), without.len() + 2);
    let recover = |lines: &[String]| {
        let mut r = Recovering::new(Marks::default());
        for line in lines {
            r.entry(line).unwrap();
        }
        let (p, recovered) = r
            .finish::<_, Meta>(settings(), MemJournal::new(), d.now)
            .unwrap();
        let batch = p.unconfirmed().expect("decisions");
        let decisions: Vec<(String, Vec<u8>)> = batch
            .decisions
            .iter()
            .map(|o| (o.id.clone(), o.body.clone()))
            .collect();
        (decisions, batch.dead_letters.len(), recovered)
    };
    let (a, refusals_a, ra) = recover(&with);
    let (b, refusals_b, rb) = recover(&without);
    assert_eq!(a.len(), 2, "the hold and its release: {a:?}");
    assert_eq!(a, b);
    assert_eq!((refusals_a, refusals_b), (1, 1));
    assert_eq!((ra.entries, ra.controls), (rb.entries, 2));
    assert_eq!(rb.controls, 0);
    // And what the live service published is exactly that.
    for (id, body) in &a {
        assert_eq!(d.decisions.get(id), Some(body), "{id}");
    }
}

/// Start-up refuses a journal whose opened entry names other rules, naming the line;
/// one naming this build's rules is skipped.
#[test]
fn recovery_refuses_a_journal_opened_under_other_rules() {
    let d = Driver::new(start());
    let opened = d.p.journal().entries()[0].clone();
    let other = {
        let mut v: Value = serde_json::from_str(unframed(&opened).as_ref()).unwrap();
        v["data"]["rules"] = Value::from(handoff_core::RULES_VERSION - 1);
        let mut line = Vec::new();
        handoff::journal::frame(&serde_json::to_string(&v).unwrap(), &mut line);
        String::from_utf8(line).unwrap().trim_end().to_string()
    };
    let event = envelope("j1", &start().to_rfc3339(), policy(J, true, false));
    let mut r = Recovering::new(Marks::default());
    r.entry(&opened).unwrap();
    r.entry(&event).unwrap();
    match r.entry(&other) {
        Err(EntryError::OtherRules(o)) => {
            assert_eq!((o.line, o.rules), (3, handoff_core::RULES_VERSION - 1));
            assert_eq!(o.writer, WRITER);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // An unknown control type is a bad entry, never skipped.
    let unknown = unframed(&opened).replace("handoff.journal.opened", "handoff.journal.closed");
    assert!(matches!(
        Recovering::new(Marks::default()).entry(&unknown),
        Err(EntryError::Invalid(m)) if m.contains("unknown journal control type")
    ));
}

/// One thing a driver or RabbitMQ can do.
#[derive(Debug, Clone)]
enum Op {
    /// Deliver the n-th message of the story (valid, invalid, duplicate or refused).
    Deliver(usize),
    Step,
    Settle(usize),
    Advance(i64),
    Reconnect,
    Crash,
}

/// The messages a property test draws from: a hold story, a first-refusal story,
/// refusals, duplicates and invalid input.
fn story(now: Time) -> Vec<Message> {
    let at = |m: i64| now + Duration::minutes(m);
    vec![
        msg("travis", "j1", at(0), policy(J, true, false)),
        msg(
            "ice",
            "i1",
            at(1),
            detainer("D-34", "P-0001", local(J), "charged"),
        ),
        msg(
            "travis",
            "j2",
            at(2),
            local_release("P-0001", J, &(now + Duration::hours(1)).to_rfc3339()),
        ),
        msg(
            "ice",
            "i2",
            at(3),
            response("no-such-offer", "P-0009", "accept"),
        ),
        msg(
            "ice",
            "i3",
            at(4),
            detainer("D-35", "P-0002", bop("sentry"), "convicted"),
        ),
        msg("travis", "j3", at(5), claim("C-1", "P-0002", J)),
        msg(
            "bop",
            "b1",
            at(6),
            bop_release("P-0002", "sentry", &(now + Duration::hours(2)).to_rfc3339()),
        ),
        msg(
            "ice",
            "i4",
            at(7),
            response("also-unknown", "P-0002", "decline"),
        ),
        Message {
            user: Some("ice".into()),
            bytes: b"{not json".to_vec(),
        },
        // ICE may not speak for a jurisdiction.
        msg("ice", "j4", at(8), policy(J, false, false)),
        Message {
            user: None,
            bytes: envelope("j5", &at(9).to_rfc3339(), policy(J, true, true)).into_bytes(),
        },
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..11).prop_map(Op::Deliver),
        3 => Just(Op::Step),
        3 => (1usize..3).prop_map(Op::Settle),
        2 => (1i64..4000).prop_map(Op::Advance),
        1 => Just(Op::Reconnect),
        1 => Just(Op::Crash),
    ]
}

/// Runs `ops`, checking the ack and mark invariants at every settle, then drains and
/// checks that nothing was lost: every refusal journaled was dead-lettered, and every
/// decision replay of the journal gives was published.
fn run(ops: &[Op]) {
    let now = start();
    let messages = story(now);
    let mut d = Driver::new(now);
    for op in ops {
        match op {
            Op::Deliver(i) => {
                d.deliver(messages[*i].clone());
            }
            Op::Step => d.step(),
            Op::Settle(n) => d.settle(*n),
            Op::Advance(minutes) => d.advance(Duration::minutes(*minutes)),
            Op::Reconnect => d.reconnect(),
            Op::Crash => d.crash(),
        }
    }
    d.drain();
    assert!(d.unacked.is_empty());
    assert_eq!(d.stored, d.p.implied(), "everything confirmed in the end");
    // Every refusal in the journal was dead-lettered at least once.
    let refused: BTreeSet<(String, String)> = d
        .dead_letters
        .iter()
        .filter(|(r, _, _)| r.is_refusal())
        .filter_map(|(_, k, _)| k.clone())
        .collect();
    for line in d.p.journal().entries() {
        let k = key_of(unframed(line).as_bytes()).unwrap();
        if k.1 == "i2" || k.1 == "i4" {
            assert!(refused.contains(&k), "refusal {k:?} never dead-lettered");
        }
    }
    // Everything replay of the journal decides was published.
    let mut r = Recovering::new(Marks::default());
    for line in d.p.journal().entries() {
        r.entry(line).unwrap();
    }
    let (replayed, _) = r
        .finish::<_, Meta>(settings(), MemJournal::new(), d.now)
        .unwrap();
    let all = replayed.unconfirmed().map_or(Vec::new(), |b| b.decisions);
    for o in all {
        assert_eq!(
            d.decisions.get(&o.id),
            Some(&o.body),
            "decision {} not published",
            o.id
        );
    }
}

#[test]
fn nothing_is_acked_before_it_is_journaled_or_dead_lettered() {
    use Op::*;
    run(&[
        Deliver(0),
        Deliver(8),
        Deliver(9),
        Deliver(3),
        Step,
        Deliver(1),
        Step,
        Settle(1),
        Deliver(2),
        Step,
        Crash,
        Settle(1),
        Deliver(0),
        Step,
        Settle(2),
    ]);
}

#[test]
fn the_outbox_mark_is_never_ahead_of_confirms() {
    use Op::*;
    run(&[
        Deliver(0),
        Deliver(1),
        Deliver(2),
        Step,
        Deliver(3),
        Step,
        Settle(1),
        Reconnect,
        Advance(60 * 50),
        Settle(1),
        Crash,
        Step,
        Settle(1),
    ]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any interleaving of deliveries, batches, confirms, clock moves, reconnects and
    /// crashes keeps the invariants and loses nothing.
    #[test]
    fn any_interleaving_keeps_the_invariants(ops in proptest::collection::vec(op(), 1..60)) {
        run(&ops);
    }
}

/// A new writer of the stream journal stamps nothing earlier than the previous writer's
/// clock (from its last outbox mark), even when its own host's clock is behind: the
/// decisions that mark counts (timers the old writer fired included) keep their positions
/// in decision order.
#[test]
fn a_new_writer_stamps_nothing_before_the_previous_writers_clock() {
    let before = t("2026-12-01T10:00:00Z");
    let theirs = t("2026-12-01T10:05:00Z");
    let mut r = Recovering::new(Marks::default());
    r.floor(theirs);
    assert_eq!(r.clock(), Some(theirs));
    let (mut p, _) = r
        .finish::<_, Meta>(settings(), MemJournal::new(), before)
        .unwrap();
    assert_eq!(p.high_water(), Some(theirs));
    let m = msg(
        "bop",
        "b1",
        before,
        bop_release("P-0001", "fci-test", "2026-12-20T00:00:00Z"),
    );
    p.handle_delivery(
        before,
        Inbound {
            tag: 1,
            user: m.user,
            bytes: m.bytes,
            meta: 1,
        },
    );
    p.poll_batch().unwrap();
    let last = p.journal().entries().last().unwrap().clone();
    let v: Value = serde_json::from_str(&unframed(&last)).unwrap();
    assert_eq!(v["handoffreceived"], "2026-12-01T10:05:00Z", "{v}");
}
