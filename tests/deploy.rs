//! The operator files in `deploy/` agree with the code: the example configuration loads,
//! and the RabbitMQ definitions hold exactly the topology the service declares.

use std::collections::BTreeSet;
use std::path::Path;

use handoff::live::config::{Config, QueueType};
use serde_json::Value;

fn definitions() -> Value {
    serde_json::from_str(include_str!("../deploy/rabbitmq/definitions.json")).unwrap()
}

#[test]
fn the_example_config_loads_and_checks() {
    let c = Config::from_toml(
        include_str!("../deploy/handoff.toml"),
        Path::new("deploy/handoff.toml"),
    )
    .unwrap();
    c.check().unwrap();
    assert_eq!(c.amqp.queue_type, QueueType::Quorum);
    // Its names are the defaults, so the definitions below describe it too.
    let d = Config::default().amqp;
    assert_eq!(c.amqp.events_exchange, d.events_exchange);
    assert_eq!(c.amqp.decisions_exchange, d.decisions_exchange);
    assert_eq!(c.amqp.queue, d.queue);
    assert_eq!(c.amqp.dead_letter_exchange, d.dead_letter_exchange);
    assert_eq!(c.amqp.unrouted_exchange, d.unrouted_exchange);
    // Every configured publisher is a user in the definitions.
    let users: BTreeSet<String> = definitions()["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap().to_owned())
        .collect();
    for user in c.agencies().unwrap().keys() {
        assert!(users.contains(user), "{user} is not in definitions.json");
    }
}

#[test]
fn the_definitions_hold_the_topology_the_service_declares() {
    let defs = definitions();
    let c = Config::default().amqp;
    let exchange = |name: &str| -> Value {
        defs["exchanges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == name)
            .unwrap_or_else(|| panic!("no exchange {name}"))
            .clone()
    };
    let queue = |name: &str| -> Value {
        defs["queues"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["name"] == name)
            .unwrap_or_else(|| panic!("no queue {name}"))
            .clone()
    };
    let bindings: BTreeSet<(String, String, String)> = defs["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["source"].as_str().unwrap().to_owned(),
                b["destination"].as_str().unwrap().to_owned(),
                b["routing_key"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let bound = |x: &str, q: &str, key: &str| {
        assert!(
            bindings.contains(&(x.into(), q.into(), key.into())),
            "{q} is not bound to {x} with {key:?}"
        );
    };

    for (name, kind) in [
        (&c.events_exchange, "topic"),
        (&c.decisions_exchange, "topic"),
        (&c.dead_letter_exchange, "topic"),
        (&c.unrouted_exchange, "fanout"),
    ] {
        let x = exchange(name);
        assert_eq!(x["type"], kind, "{name}");
        assert_eq!(x["durable"], true, "{name}");
    }
    assert_eq!(
        exchange(&c.decisions_exchange)["arguments"]["alternate-exchange"],
        c.unrouted_exchange.as_str()
    );
    for name in [&c.queue, &c.dead_letter_queue, &c.unrouted_queue] {
        let q = queue(name);
        assert_eq!(q["durable"], true, "{name}");
        assert_eq!(q["arguments"]["x-queue-type"], "quorum", "{name}");
    }
    assert_eq!(
        queue(&c.queue)["arguments"]["x-dead-letter-exchange"],
        c.dead_letter_exchange.as_str()
    );
    for t in handoff_core::model::EventType::NAMES {
        bound(&c.events_exchange, &c.queue, t);
    }
    bound(&c.dead_letter_exchange, &c.dead_letter_queue, "#");
    bound(&c.unrouted_exchange, &c.unrouted_queue, "");
}

/// Each agency user may write only the routing keys (event types) its agency may send:
/// the broker's topic permissions agree with `authz`.
#[test]
fn topic_permissions_match_who_may_publish() {
    let defs = definitions();
    let c = Config::from_toml(
        include_str!("../deploy/handoff.toml"),
        Path::new("deploy/handoff.toml"),
    )
    .unwrap();
    let perms = defs["topic_permissions"].as_array().unwrap();
    for (user, agency) in c.agencies().unwrap() {
        let p = perms
            .iter()
            .find(|p| p["user"] == user.as_str() && p["exchange"] == "handoff.events")
            .unwrap_or_else(|| panic!("no topic permission for {user}"));
        let write = p["write"].as_str().unwrap();
        for t in handoff_core::model::EventType::NAMES {
            let allowed = matches_anchored(write, t);
            let may = may_send(&agency, t);
            assert_eq!(allowed, may, "{user} ({agency}) and {t}: regex {write}");
        }
    }
}

/// Whether an agency may send any event of this type (for some event): ICD section 2.
fn may_send(agency: &handoff_core::authz::Agency, event_type: &str) -> bool {
    use handoff_core::authz::Agency;
    match agency {
        Agency::Bop => event_type == "bop.release.scheduled",
        Agency::Ice => {
            event_type.starts_with("ice.") || event_type == "jurisdiction.policy.updated"
        }
        Agency::Court => event_type == "court.writ.issued",
        Agency::Jurisdiction(_) => {
            event_type.starts_with("local.")
                || event_type == "hold.expired"
                || event_type == "jurisdiction.policy.updated"
        }
    }
}

/// The definitions' regexes are simple alternations of literal names with `\.` and `.+`;
/// this matches the subset they use, anchored at both ends.
fn matches_anchored(regex: &str, text: &str) -> bool {
    let body = regex
        .strip_prefix('^')
        .and_then(|r| r.strip_suffix('$'))
        .unwrap_or_else(|| panic!("{regex} is not anchored"));
    let body = body
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or(body);
    body.split('|').any(|alt| {
        let alt = alt.replace("\\.", ".");
        match alt.strip_suffix(".+") {
            Some(prefix) => text.len() > prefix.len() && text.starts_with(prefix),
            None => alt == text,
        }
    })
}
