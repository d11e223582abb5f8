//! Every party told, and nobody else (ICD section 4), over the deployment's own topology:
//! `deploy/rabbitmq/definitions.json` imported into a fresh vhost of the real RabbitMQ, the
//! real service publishing, and every agency queue read back.
//!
//! The log is the sample week (every rule of section 4, `tests/samples.rs`) and then a
//! generated one, whose two hundred jurisdictions have no queue in the definitions. Each
//! (decision, party) pair that `handoff replay --parties` names must end in exactly one
//! place: the party's own queue when it has one, else `handoff.unrouted`, named there.
//! Run with `--nocapture` for the counts `docs/reliability.md` cites.

#[path = "support/broker.rs"]
mod broker;
#[path = "support/serve.rs"]
mod serve;

use std::collections::{BTreeMap, BTreeSet};

use broker::Broker;
use serde_json::Value;

use serve::*;

/// The agency queues of the definitions and the party keys each is bound to.
fn agency_queues(defs: &Value) -> BTreeMap<String, String> {
    defs["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["source"] == "agency.decisions")
        .map(|b| {
            (
                b["destination"].as_str().unwrap().to_owned(),
                b["routing_key"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Whether a binding key (`party.ice`, `party.bop.*`) matches a party key.
fn matches(binding: &str, key: &str) -> bool {
    match binding.strip_suffix('*') {
        Some(prefix) => key
            .strip_prefix(prefix)
            .is_some_and(|rest| !rest.is_empty() && !rest.contains('.')),
        None => key == binding,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_agency_queue_holds_exactly_the_decisions_it_is_a_party_to() {
    let defs: Value =
        serde_json::from_str(include_str!("../deploy/rabbitmq/definitions.json")).unwrap();
    let queues = agency_queues(&defs);
    assert_eq!(
        queues.keys().map(String::as_str).collect::<Vec<_>>(),
        ["agency.bop", "agency.ice", "agency.tx-travis-county"]
    );
    let broker = Broker::new("parties");
    broker.import_topology(&defs);

    let mut events = sample_events();
    events.extend(generated(1500, 12, Some(150), None));
    // Every jurisdiction in play publishes (so its events are accepted), but only those
    // of the definitions have a queue: the others' decisions must be parked for them.
    let publishers = publishers_for(jurisdictions(&events).iter().map(String::as_str));
    let serve = Serve::start("parties", &broker, &publishers);
    let mut watches = BTreeMap::new();
    for q in queues
        .keys()
        .map(String::as_str)
        .chain(["handoff.unrouted"])
    {
        watches.insert(q, Watch::start(&broker.url(), "", q).await);
    }
    let (_, operator) = broker.add_user("operator", &["impersonator"]);
    let publisher = Publisher::connect(&operator).await;
    for e in &events {
        publisher.event(e).await;
    }
    let distinct: BTreeSet<String> = events.iter().map(|e| e["id"].to_string()).collect();
    serve.wait_journal(distinct.len());
    let until = now_rfc3339();
    let decisions: Vec<Value> = replay_parties(&serve.journal(), &until)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let parties_of = |d: &Value| -> Vec<String> {
        d["parties"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_owned())
            .collect()
    };

    // Each agency queue: exactly the decisions that name one of its keys, each once.
    let mut checked = 0;
    let mut missing = 0;
    let mut extra = 0;
    for (queue, binding) in &queues {
        let want: BTreeSet<String> = decisions
            .iter()
            .filter(|d| parties_of(d).iter().any(|p| matches(binding, p)))
            .map(|d| d["id"].as_str().unwrap().to_owned())
            .collect();
        assert!(want.len() > 20, "{queue}: {}", want.len());
        let seen = watches[queue.as_str()]
            .until(120, queue, |s| s.len() >= want.len())
            .await;
        let got: BTreeSet<String> = seen.iter().map(|s| s.message_id.clone()).collect();
        missing += want.difference(&got).count();
        extra += got.difference(&want).count();
        checked += decisions.len();
        assert_eq!(
            got, want,
            "{queue}: decisions delivered differ from its parties"
        );
        assert_eq!(
            seen.len(),
            want.len(),
            "{queue}: a decision delivered twice"
        );
        for s in &seen {
            assert!(!s.headers.contains_key("BCC"), "{queue}: {:?}", s.headers);
        }
    }

    // handoff.unrouted: a decision some of whose parties have no queue, once, naming them
    // (the service's copy); one none of whose parties has a queue, once, as RabbitMQ's
    // alternate exchange parks it (no header).
    let reached = |p: &str| queues.values().any(|b| matches(b, p));
    let mut want: BTreeMap<String, String> = BTreeMap::new();
    let mut partly = 0;
    for d in &decisions {
        let parties = parties_of(d);
        assert!(!parties.is_empty(), "{d}");
        let unreached: Vec<&str> = parties
            .iter()
            .map(String::as_str)
            .filter(|p| !reached(p))
            .collect();
        let header = match unreached.len() {
            0 => continue,
            n if n == parties.len() => String::new(),
            _ => {
                partly += 1;
                unreached.join(",")
            }
        };
        want.insert(d["id"].as_str().unwrap().to_owned(), header);
    }
    assert!(
        partly > 20 && want.len() > partly,
        "{partly} of {}",
        want.len()
    );
    let seen = watches["handoff.unrouted"]
        .until(120, "the parked decisions", |s| s.len() >= want.len())
        .await;
    let got: BTreeMap<String, String> = seen
        .iter()
        .map(|s| {
            let header = s.headers.get("x-handoff-unreached").cloned();
            (s.message_id.clone(), header.unwrap_or_default())
        })
        .collect();
    assert_eq!(seen.len(), want.len(), "a decision parked twice");
    assert_eq!(
        got, want,
        "parked decisions differ from the unreached parties"
    );
    let metrics = serve.metrics();
    assert!(
        metrics.contains(&format!("handoff_decisions_unreached_total {partly}")),
        "{metrics}"
    );
    println!(
        "{} decisions x {} agency queues = {checked} checks: {missing} missing, {extra} extra; \
         {} parked in handoff.unrouted ({partly} for some of their parties, the rest for all)",
        decisions.len(),
        queues.len(),
        want.len()
    );
}
