//! The least-privilege matrix: every user of `deploy/rabbitmq/definitions.json` tries every
//! inbound event type (ICD section 2) against the real RabbitMQ and the real service, and
//! what became of each attempt must equal the table the ICD gives.
//!
//! The users are recreated in a fresh vhost with exactly the definitions' permissions and
//! topic permissions (under per-test names, since users are global), the topology is the
//! definitions' own, and `handoff serve` runs as the definitions' `handoff` user with the
//! `[publishers]` of `deploy/handoff.toml`. An attempt is refused by RabbitMQ (the channel
//! is closed with 403 ACCESS_REFUSED or 406 PRECONDITION_FAILED), or reaches the service,
//! which journals it or dead-letters it with a reason. Run with `--nocapture` to see the
//! matrix as a Markdown table.
//!
//! The second matrix is of reads: every user tries to get from, consume from and bind
//! (with `#`, and with the queue's own party key) every agency queue, each holding one
//! decision; an agency may take its own decisions only, and nobody may bind.

#[path = "support/broker.rs"]
mod broker;
#[path = "support/serve.rs"]
mod serve;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use broker::Broker;
use chrono::{SecondsFormat, Utc};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueBindOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use serde_json::{Value, json};

use serve::{Serve, Watch};

/// What became of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cell {
    /// RabbitMQ closed the channel with 403 ACCESS_REFUSED: the user may not write to the
    /// exchange, or not with this routing key (topic permission).
    Refused,
    /// RabbitMQ closed the channel with 406 PRECONDITION_FAILED: the `user-id` property is
    /// not the connection's user.
    PreconditionFailed,
    /// The service journaled the event and dead-lettered nothing.
    Accepted,
    /// The service dead-lettered the message with this reason (`x-handoff-reason`).
    DeadLettered(&'static str),
}

impl Cell {
    fn text(self) -> &'static str {
        match self {
            Cell::Refused => "refused 403",
            Cell::PreconditionFailed => "refused 406",
            Cell::Accepted => "accepted",
            Cell::DeadLettered(reason) => reason,
        }
    }
}

/// The jurisdiction a jurisdiction's event speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Voice {
    /// The event names no jurisdiction it speaks for.
    None,
    /// The definitions' jurisdiction, `tx-travis-county`.
    Own,
    /// Another jurisdiction, which has no user.
    Other,
}

const OWN: &str = "tx-travis-county";
const OTHER: &str = "zz-other-county";

/// The columns: the 14 types in the order of ICD section 2, each type a jurisdiction sends
/// twice (for its own jurisdiction and for another); then two more, the forged `user-id`
/// and the smuggled type (`EXTRA`).
const COLUMNS: [(&str, Voice); 19] = [
    ("jurisdiction.policy.updated", Voice::Own),
    ("jurisdiction.policy.updated", Voice::Other),
    ("ice.detainer.issued", Voice::None),
    ("ice.detainer.withdrawn", Voice::None),
    ("local.claim.lodged", Voice::Own),
    ("local.claim.lodged", Voice::Other),
    ("bop.release.scheduled", Voice::None),
    ("ice.first_refusal.response", Voice::None),
    ("court.writ.issued", Voice::None),
    ("local.release.due", Voice::Own),
    ("local.release.due", Voice::Other),
    ("local.detainer.declined", Voice::Own),
    ("local.detainer.declined", Voice::Other),
    ("hold.expired", Voice::Own),
    ("hold.expired", Voice::Other),
    ("ice.custody.assumed", Voice::None),
    ("ice.capacity.updated", Voice::None),
    ("ice.removal.status", Voice::None),
    ("ice.release.factor", Voice::None),
];

/// The two columns after `COLUMNS`. A forged `user-id` is another user's name (ICE's, or
/// BOP's for ICE), on the first type RabbitMQ let the row publish, so that only the
/// user-id is at fault. A smuggled type is an event of the first type RabbitMQ refused the
/// row, published with the routing key of the first type it let through: the topic
/// permission sees only the routing key, so the service must refuse the event itself.
const EXTRA: [&str; 2] = ["forged user-id", "smuggled type"];
const WIDTH: usize = COLUMNS.len() + EXTRA.len();

/// The row of the service's user publishing through a binding of its own (see below).
const BACKDOOR: &str = "handoff (own binding)";
/// The routing key of that binding; the service never dead-letters with it.
const BACKDOOR_KEY: &str = "matrix.backdoor";

/// The expected matrix, from ICD section 2 and the definitions: rows are users, columns
/// are `COLUMNS` and then the forged `user-id`.
#[rustfmt::skip]
fn expected() -> Vec<(&'static str, [Cell; WIDTH])> {
    use Cell::{Accepted as A, PreconditionFailed as P, Refused as R};
    const U: Cell = Cell::DeadLettered("unauthorized");
    vec![
        // pol  pol' det  wdr  clm  clm' bop  rsp  writ due  due' dcl  dcl' exp  exp' cus  cap  rem  fac  forged smuggled
        //
        // The service's user may not write to handoff.events at all, so RabbitMQ refuses
        // everything, the forged user-id included (write permission is checked first).
        (
            "handoff",
            [R, R, R, R, R, R, R, R, R, R, R, R, R, R, R, R, R, R, R, R, R],
        ),
        // It may, however, bind its own queue handoff.inbound to an exchange it may read
        // and write (queue.bind needs write on the queue, which declaring the topology
        // needs), and so put messages into its own queue. They carry its own user-id,
        // which is no agency's: the service dead-letters them all as unauthorized, and
        // RabbitMQ refuses another user's name (it has no impersonator tag).
        (
            BACKDOOR,
            [U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, P, U],
        ),
        // BOP sends only bop.release.scheduled.
        (
            "bop",
            [R, R, R, R, R, R, A, R, R, R, R, R, R, R, R, R, R, R, R, P, U],
        ),
        // ICE sends its own types and any jurisdiction's policy. Its first-refusal answer
        // names an offer the test made first (one per row), so it is accepted; without
        // that offer it would be journaled and dead-lettered as unknown_offer.
        (
            "ice",
            [A, A, A, A, R, R, R, A, R, R, R, R, R, R, R, A, A, A, A, P, U],
        ),
        // A jurisdiction sends the local types, hold.expired and its policy, for itself
        // only: the topic permission lets the routing key through, and the service
        // dead-letters an event that speaks for another jurisdiction.
        (
            "tx-travis-county",
            [A, U, R, R, A, U, R, R, R, A, U, A, U, A, U, R, R, R, R, P, U],
        ),
        // A court sends writs only.
        (
            "us-district-tx-w",
            [R, R, R, R, R, R, R, R, A, R, R, R, R, R, R, R, R, R, R, P, U],
        ),
        // The operator has no topic permission, so RabbitMQ lets every type through, but
        // as itself it is no configured publisher: unauthorized. Its impersonator tag is
        // what lets it forge a user-id (here ICE's, publishing a policy): accepted, by
        // design, for replays (deploy/README.md, "Impersonator").
        (
            "operator",
            [U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, A, U],
        ),
    ]
}

/// One user's connection and a channel in confirm mode, reopened after RabbitMQ closes it.
struct Conn {
    conn: Connection,
    ch: Channel,
}

impl Conn {
    async fn open(url: &str) -> Conn {
        let conn = Connection::connect(url, ConnectionProperties::default())
            .await
            .unwrap_or_else(|e| panic!("cannot connect as {url}: {e}"));
        let ch = confirming(&conn).await;
        Conn { conn, ch }
    }

    /// Publishes and waits for the confirm: `Ok` when RabbitMQ took the message, else the
    /// reply code it closed the channel with (the channel is then reopened).
    async fn publish(
        &mut self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        user_id: &str,
    ) -> Result<(), u16> {
        let props = BasicProperties::default()
            .with_content_type("application/cloudevents+json".into())
            .with_delivery_mode(2)
            .with_user_id(user_id.into());
        let sent = self
            .ch
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                body,
                props,
            )
            .await;
        let confirmed = match sent {
            Ok(confirm) => confirm.await,
            Err(e) => Err(e),
        };
        match confirmed {
            Ok(Confirmation::Ack(None)) => Ok(()),
            Ok(other) => panic!("{routing_key} as {user_id}: unexpected confirm {other:?}"),
            Err(e) => {
                let code = match e.kind() {
                    lapin::ErrorKind::ProtocolError(amqp) => amqp.get_id(),
                    other => panic!("{routing_key} as {user_id}: not a refusal: {other:?}"),
                };
                self.ch = confirming(&self.conn).await;
                Err(code)
            }
        }
    }
}

async fn confirming(conn: &Connection) -> Channel {
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    ch
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The `source` an agency's events carry (its own namespace, which the service checks), or
/// a source of no agency's for a user that is no configured publisher.
fn source_of(agency: Option<&handoff_core::authz::Agency>) -> String {
    use handoff_core::authz::Agency;
    match agency {
        Some(Agency::Bop) => "urn:agency:bop:matrix".into(),
        Some(Agency::Ice) => "urn:agency:ice:matrix".into(),
        Some(Agency::Court) => "urn:court:matrix".into(),
        Some(Agency::Jurisdiction(j)) => format!("urn:jurisdiction:{j}"),
        None => "urn:test:matrix".into(),
    }
}

/// A valid event of type `t`, with its own event id `id` and person `person`, from
/// `source`.
fn event(
    t: &str,
    voice: Voice,
    id: &str,
    person: &str,
    offer_id: Option<&str>,
    source: &str,
) -> Value {
    let j = match voice {
        Voice::Other => OTHER,
        _ => OWN,
    };
    let release_at =
        (Utc::now() + chrono::Duration::days(7)).to_rfc3339_opts(SecondsFormat::Millis, true);
    let bop = json!({"kind": "bop", "id": "fci-matrix"});
    let data = match t {
        "jurisdiction.policy.updated" => json!({
            "jurisdiction_id": j, "name": "Matrix County", "state": "TX",
            "honors_detainers": true, "return_agreement": false
        }),
        "ice.detainer.issued" => json!({
            "detainer_id": format!("D-{id}"), "person_id": person, "custodian": bop,
            "criminal_status": "convicted", "offenses": []
        }),
        "ice.detainer.withdrawn" => {
            json!({"detainer_id": format!("D-{id}"), "person_id": person})
        }
        "local.claim.lodged" => json!({
            "claim_id": format!("C-{id}"), "person_id": person, "jurisdiction_id": j,
            "charges": ["theft"]
        }),
        "bop.release.scheduled" => json!({
            "person_id": person, "facility": "fci-matrix", "release_at": release_at
        }),
        "ice.first_refusal.response" => json!({
            "offer_id": offer_id.expect("an offer"), "person_id": person, "decision": "decline"
        }),
        "court.writ.issued" => json!({
            "writ_id": format!("W-{id}"), "person_id": person, "jurisdiction_id": OWN,
            "kind": "ad_testificandum", "court": "Matrix District Court"
        }),
        "local.release.due" => json!({
            "person_id": person, "jurisdiction_id": j, "release_at": release_at
        }),
        "local.detainer.declined" => json!({
            "detainer_id": format!("D-{id}"), "person_id": person, "jurisdiction_id": j
        }),
        "hold.expired" => json!({
            "person_id": person, "detainer_id": format!("D-{id}"), "jurisdiction_id": j
        }),
        "ice.custody.assumed" => json!({"person_id": person, "from": bop}),
        "ice.capacity.updated" => json!({"funded_beds": 100, "occupied_beds": 10}),
        "ice.removal.status" => json!({"person_id": person, "country": "VE", "foreseeable": false}),
        "ice.release.factor" => json!({"person_id": person, "factor": "medical"}),
        other => panic!("no event type {other}"),
    };
    let mut e = json!({
        "specversion": "1.0",
        "id": id,
        "source": source,
        "type": t,
        "time": now(),
        "datacontenttype": "application/json",
        "data": data,
    });
    if e["data"]["person_id"].is_string() {
        e["subject"] = json!(person);
    }
    e
}

fn message_id(body: &str) -> String {
    serde_json::from_str::<Value>(body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The users of the definitions, created in `broker`'s vhost under per-test names with
/// exactly their tags, permissions and topic permissions of vhost "/": (definitions name,
/// name, AMQP URL), in the definitions' order.
fn create_users(broker: &Broker, defs: &Value) -> Vec<(String, String, String)> {
    let mut users = Vec::new();
    for u in defs["users"].as_array().unwrap() {
        let name = u["name"].as_str().unwrap();
        let tags: Vec<&str> = u["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        let mine = |p: &&Value| p["user"] == name && p["vhost"] == "/";
        let perms: Vec<&Value> = defs["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(mine)
            .collect();
        assert_eq!(perms.len(), 1, "permissions of {name}");
        let p = perms[0];
        let topics: Vec<(&str, &str, &str)> = defs["topic_permissions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(mine)
            .map(|t| {
                (
                    t["exchange"].as_str().unwrap(),
                    t["write"].as_str().unwrap(),
                    t["read"].as_str().unwrap(),
                )
            })
            .collect();
        let (real, url) = broker.add_user_with_permissions(
            name,
            &tags,
            (
                p["configure"].as_str().unwrap(),
                p["write"].as_str().unwrap(),
                p["read"].as_str().unwrap(),
            ),
            &topics,
        );
        users.push((name.to_owned(), real, url));
    }
    users
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_user_may_publish_only_what_the_icd_lets_it() {
    let defs: Value =
        serde_json::from_str(include_str!("../deploy/rabbitmq/definitions.json")).unwrap();
    // The columns are the event types, each once (or twice, own and another), in order.
    let mut types: Vec<&str> = COLUMNS.iter().map(|(t, _)| *t).collect();
    types.dedup();
    assert_eq!(types, handoff_core::model::EventType::NAMES);
    let broker = Broker::new("matrix");
    broker.import_topology(&defs);

    let users = create_users(&broker, &defs);
    let real: HashMap<&str, &str> = users
        .iter()
        .map(|(d, r, _)| (d.as_str(), r.as_str()))
        .collect();

    // The service, as the definitions' `handoff`, with deploy/handoff.toml's publishers.
    let config = handoff::live::config::Config::from_toml(
        include_str!("../deploy/handoff.toml"),
        Path::new("deploy/handoff.toml"),
    )
    .unwrap();
    let agencies = config.agencies().unwrap();
    let publishers: Vec<String> = agencies
        .iter()
        .map(|(user, agency)| {
            let user = real
                .get(user.as_str())
                .unwrap_or_else(|| panic!("publisher {user} is not in the definitions"));
            format!("{user}={agency}")
        })
        .collect();
    // Each event carries the source of the agency its user-id is configured as.
    let agency_of: HashMap<&str, &handoff_core::authz::Agency> = agencies
        .iter()
        .map(|(user, agency)| (real[user.as_str()], agency))
        .collect();
    let service_url = &users.iter().find(|(d, _, _)| d == "handoff").unwrap().2;
    let serve = Serve::start_on("matrix", service_url, &publishers.join(","), &[]);
    let dead = Watch::start(&broker.url(), "handoff.dead-letter", "matrix.dead").await;
    let decisions = Watch::start(&broker.url(), "handoff.decisions", "matrix.decisions").await;

    let mut conns: BTreeMap<&str, Conn> = BTreeMap::new();
    for (d, _, url) in &users {
        conns.insert(d.as_str(), Conn::open(url).await);
    }
    // The rows: every user, and the service's user once more through its own binding.
    let mut rows: Vec<&str> = users.iter().map(|(d, _, _)| d.as_str()).collect();
    let at = rows.iter().position(|r| *r == "handoff").unwrap() + 1;
    rows.insert(at, BACKDOOR);
    let expected = expected();
    assert_eq!(
        rows,
        expected.iter().map(|(r, _)| *r).collect::<Vec<_>>(),
        "the users of definitions.json are not the rows of the expected matrix"
    );

    // One open first-refusal offer per row, so that an answer reaching the engine names a
    // real offer: a detainer, a claim by the county that has no return agreement, and a
    // release from BOP (R1.6). Published by the agencies that may send them.
    let offer_person = |row: usize| format!("MX-OFFER-{row}");
    let mut setup = 0;
    for row in 0..rows.len() {
        let p = offer_person(row);
        for (t, who) in [
            ("ice.detainer.issued", "ice"),
            ("local.claim.lodged", OWN),
            ("bop.release.scheduled", "bop"),
        ] {
            let source = source_of(agency_of.get(real[who]).copied());
            let e = event(
                t,
                Voice::Own,
                &format!("setup-{row}-{t}"),
                &p,
                None,
                &source,
            );
            let body = serde_json::to_vec(&e).unwrap();
            let c = conns.get_mut(who).unwrap();
            assert_eq!(
                c.publish("handoff.events", t, &body, real[who]).await,
                Ok(())
            );
            setup += 1;
        }
    }
    let offers = decisions
        .until(30, "an offer for every row", |s| {
            s.iter().filter(|d| d.routing_key == "offer.ice").count() >= rows.len()
        })
        .await;
    let offer_ids: HashMap<String, String> = offers
        .iter()
        .filter(|d| d.routing_key == "offer.ice")
        .map(|d| {
            let v: Value = serde_json::from_str(&d.body).unwrap();
            (
                v["data"]["person_id"].as_str().unwrap().to_owned(),
                v["data"]["offer_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();

    // The service's user binds its own queue to the dead-letter exchange (which it may
    // read) with a key the service never dead-letters with.
    conns["handoff"]
        .ch
        .queue_bind(
            "handoff.inbound".into(),
            "handoff.dead-letter".into(),
            BACKDOOR_KEY.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("the service's user binds handoff.inbound");

    // Every row tries every column. `pending` holds what RabbitMQ took, by event id.
    let mut observed: BTreeMap<(usize, usize), Cell> = BTreeMap::new();
    let mut pending: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut smuggled: BTreeMap<usize, &str> = BTreeMap::new();
    let ice_name = real["ice"].to_owned();
    let bop_name = real["bop"].to_owned();
    for (r, &row) in rows.iter().enumerate() {
        let (conn_name, exchange, own_name) = match row {
            BACKDOOR => ("handoff", "handoff.dead-letter", real["handoff"]),
            _ => (row, "handoff.events", real[row]),
        };
        // The first column RabbitMQ refused (or let through) this row, for `EXTRA`.
        let first = |observed: &BTreeMap<(usize, usize), Cell>, refused: bool| {
            (0..COLUMNS.len())
                .find(|c| (observed.get(&(r, *c)) == Some(&Cell::Refused)) == refused)
                .map_or(COLUMNS[0], |c| COLUMNS[c])
        };
        for c in 0..WIDTH {
            // The event's type and voice, its routing key and its user-id.
            let ((t, voice), key, user_id) = if let Some(&column) = COLUMNS.get(c) {
                (column, column.0, own_name)
            } else if c == COLUMNS.len() {
                let forged = if row == "ice" { &bop_name } else { &ice_name };
                let allowed = first(&observed, false);
                (allowed, allowed.0, forged.as_str())
            } else {
                let refused = first(&observed, true);
                smuggled.insert(r, refused.0);
                (refused, first(&observed, false).0, own_name)
            };
            let id = format!("matrix-{r}-{c}");
            let person = match t {
                "ice.first_refusal.response" => offer_person(r),
                _ => format!("MX-{r}-{c}"),
            };
            let offer = offer_ids.get(&person).map(String::as_str);
            let source = source_of(agency_of.get(user_id).copied());
            let body = serde_json::to_vec(&event(t, voice, &id, &person, offer, &source)).unwrap();
            let key = if row == BACKDOOR { BACKDOOR_KEY } else { key };
            let conn = conns.get_mut(conn_name).unwrap();
            match conn.publish(exchange, key, &body, user_id).await {
                Ok(()) => {
                    pending.insert(id, (r, c));
                }
                Err(403) => {
                    observed.insert((r, c), Cell::Refused);
                }
                Err(406) => {
                    observed.insert((r, c), Cell::PreconditionFailed);
                }
                Err(code) => panic!("{row} publishing {t}: closed with {code}"),
            }
        }
    }

    // A last message with no user-id, dead-lettered as unauthorized. The service
    // publishes dead letters in the order it took the messages, and journals before it
    // publishes, so once this one is seen every earlier outcome is known.
    let sentinel = event(
        "ice.capacity.updated",
        Voice::None,
        "matrix-sentinel",
        "",
        None,
        &source_of(None),
    );
    let admin = Connection::connect(&broker.url(), ConnectionProperties::default())
        .await
        .unwrap();
    let ch = confirming(&admin).await;
    let confirm = ch
        .basic_publish(
            "handoff.events".into(),
            "ice.capacity.updated".into(),
            BasicPublishOptions::default(),
            &serde_json::to_vec(&sentinel).unwrap(),
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(confirm, Confirmation::Ack(None));
    // Only the service's dead letters: they carry the reason header (the messages sent
    // through the backdoor reach this queue too, without one).
    let service_dead = |all: &[serve::Seen]| -> Vec<serve::Seen> {
        all.iter()
            .filter(|s| s.routing_key != BACKDOOR_KEY && s.headers.contains_key("x-handoff-reason"))
            .cloned()
            .collect()
    };
    let seen = dead
        .until(30, "the sentinel's dead letter", |s| {
            service_dead(s)
                .iter()
                .any(|d| message_id(&d.body) == "matrix-sentinel")
        })
        .await;
    let mut reasons: HashMap<String, Vec<String>> = HashMap::new();
    let mut details: HashMap<String, String> = HashMap::new();
    for d in service_dead(&seen) {
        assert_eq!(d.routing_key, d.headers["x-handoff-reason"]);
        details.insert(
            message_id(&d.body),
            d.headers
                .get("x-handoff-detail")
                .cloned()
                .unwrap_or_default(),
        );
        reasons
            .entry(message_id(&d.body))
            .or_default()
            .push(d.routing_key.clone());
    }
    let journaled: BTreeSet<String> = serve
        .journal_lines()
        .iter()
        .map(|l| message_id(l))
        .collect();
    for (id, (r, c)) in &pending {
        let cell = match (reasons.get(id).map(Vec::as_slice), journaled.contains(id)) {
            (None, true) => Cell::Accepted,
            (Some([reason]), _) => Cell::DeadLettered(match reason.as_str() {
                "unauthorized" => "unauthorized",
                "unknown_offer" => "unknown_offer",
                "late_response" => "late_response",
                "schema" => "schema",
                other => Box::leak(other.to_owned().into_boxed_str()),
            }),
            (Some(many), _) => panic!("{id} was dead-lettered {} times", many.len()),
            (None, false) => {
                panic!("{id} was taken by RabbitMQ but neither journaled nor dead-lettered")
            }
        };
        observed.insert((*r, *c), cell);
    }
    // Every setup event was journaled, and nothing else was (apart from accepted cells).
    let accepted = observed.values().filter(|c| **c == Cell::Accepted).count();
    assert_eq!(journaled.len(), setup + accepted, "journal: {journaled:?}");

    // The matrix, as a Markdown table: one line per column, one column per user.
    let mut table = String::from("| event type (`jurisdiction_id`) |");
    for row in &rows {
        table.push_str(&format!(" `{row}` |"));
    }
    table.push_str("\n|---|");
    table.push_str(&"---|".repeat(rows.len()));
    table.push('\n');
    for c in 0..WIDTH {
        let label = match COLUMNS.get(c) {
            Some((t, Voice::None)) => format!("`{t}`"),
            Some((t, Voice::Own)) => format!("`{t}` (own: `{OWN}`)"),
            Some((t, Voice::Other)) => format!("`{t}` (another: `{OTHER}`)"),
            None if c == COLUMNS.len() => "forged `user-id` (another user's name)".to_owned(),
            None => "smuggled type (an allowed routing key, a refused type)".to_owned(),
        };
        table.push_str(&format!("| {label} |"));
        for r in 0..rows.len() {
            table.push_str(&format!(" {} |", observed[&(r, c)].text()));
        }
        table.push('\n');
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for cell in observed.values() {
        *counts.entry(cell.text()).or_default() += 1;
    }
    println!("{table}");
    println!(
        "{} cells tried ({} users x {} attempts), {setup} setup events; {}",
        observed.len(),
        rows.len(),
        WIDTH,
        counts
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );

    // The observed matrix equals the expected one, cell by cell.
    assert_eq!(observed.len(), rows.len() * WIDTH);
    let mut wrong = Vec::new();
    for (r, (row, cells)) in expected.iter().enumerate() {
        for (c, want) in cells.iter().enumerate() {
            let got = observed[&(r, c)];
            if got != *want {
                let what = COLUMNS
                    .get(c)
                    .map_or_else(|| EXTRA[c - COLUMNS.len()], |(t, _)| *t);
                wrong.push(format!(
                    "{row} / {what} (column {c}): expected {want:?}, got {got:?}"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}\n{table}", wrong.join("\n"));

    // And each was refused for the right reason: a jurisdiction for speaking for another,
    // a smuggled event for its type (or for a user that is no publisher at all).
    let detail = |r: usize, c: usize| -> &str {
        let id = format!("matrix-{r}-{c}");
        details.get(&id).map_or("", String::as_str)
    };
    let own = rows.iter().position(|r| *r == OWN).unwrap();
    for (c, (t, voice)) in COLUMNS.iter().enumerate() {
        if *voice == Voice::Other {
            let d = detail(own, c);
            assert!(
                d.contains(&format!("may not speak for jurisdiction {OTHER}")),
                "{t}: {d}"
            );
        }
    }
    for (r, t) in &smuggled {
        if observed[&(*r, WIDTH - 1)] == Cell::DeadLettered("unauthorized") {
            let d = detail(*r, WIDTH - 1);
            assert!(
                d.contains(&format!("may not publish {t}"))
                    || d.contains("not a configured publisher"),
                "{}: {d}",
                rows[*r]
            );
        }
    }
    drop(serve);
}

// ---------------------------------------------------------------------------------------
// The read matrix: who may take decisions out of which agency queue.

/// What became of one read attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    /// RabbitMQ let it through (a get or a consume that was allowed returned the message
    /// the test put into the queue).
    Allowed,
    /// RabbitMQ closed the channel with this reply code (403 ACCESS_REFUSED expected).
    Refused(u16),
}

impl Read {
    fn text(self) -> String {
        match self {
            Read::Allowed => "allowed".to_owned(),
            Read::Refused(code) => format!("refused {code}"),
        }
    }
}

/// The agency queues, in the order of the expected read matrix: the definitions' queues
/// named `agency.*`, in the definitions' order.
const AGENCY_QUEUES: [&str; 3] = ["agency.bop", "agency.ice", "agency.tx-travis-county"];

/// The exchange the agency queues are bound to (by party keys only).
const AGENCY_EXCHANGE: &str = "agency.decisions";

/// What each user tries on each agency queue: take one message (`basic.get`, with
/// acknowledgements, so that closing the channel puts it back), consume (then cancel),
/// bind the queue to `agency.decisions` with `#` (the attack: every decision), and bind it
/// with the queue's own party key (harmless, but bindings are the operator's).
const READS: [&str; 4] = [
    "basic.get",
    "basic.consume",
    "queue.bind `#`",
    "queue.bind own party key",
];
const READ_WIDTH: usize = AGENCY_QUEUES.len() * READS.len();

/// The expected read matrix: rows are the definitions' users, columns are `AGENCY_QUEUES`
/// times `READS` (the queue outer).
fn expected_reads() -> Vec<(&'static str, [Read; READ_WIDTH])> {
    use Read::Allowed as A;
    const R: Read = Read::Refused(403);
    vec![
        //           agency.bop     agency.ice     agency.tx-travis-county
        //           get con # own  get con # own  get con # own
        //
        // The service reads only its own queues, and has no read on agency.decisions, so
        // it may not bind either (queue.bind needs write on the queue, read on the
        // exchange).
        ("handoff", [R, R, R, R, R, R, R, R, R, R, R, R]),
        // Each agency reads its own queue only; its write permission is handoff.events
        // alone, so it binds nothing.
        ("bop", [A, A, R, R, R, R, R, R, R, R, R, R]),
        ("ice", [R, R, R, R, A, A, R, R, R, R, R, R]),
        ("tx-travis-county", [R, R, R, R, R, R, R, R, A, A, R, R]),
        // A court reads nothing.
        ("us-district-tx-w", [R, R, R, R, R, R, R, R, R, R, R, R]),
        // The operator reads the audit, the dead letters and the unrouted, no agency's.
        ("operator", [R, R, R, R, R, R, R, R, R, R, R, R]),
    ]
}

/// The reply code of a refusal; anything but a protocol error fails the test.
fn refusal(what: &str, e: &lapin::Error) -> u16 {
    match e.kind() {
        lapin::ErrorKind::ProtocolError(amqp) => amqp.get_id(),
        other => panic!("{what}: not a refusal: {other:?}"),
    }
}

/// The `message_id` of a delivery, or "" when it has none.
fn delivered_id(d: &lapin::message::Delivery) -> String {
    d.properties
        .message_id()
        .as_ref()
        .map_or_else(String::new, |m| m.as_str().to_owned())
}

/// One read attempt (`READS[attempt]`) on `queue`, on a channel of its own that is closed
/// afterwards (which puts back a message taken with acknowledgements). An allowed get or
/// consume must return the message `message_id` the test put into the queue. Returns the
/// outcome and whether the attempt left a binding with `#` behind (for the admin to undo).
async fn try_read(
    conn: &Connection,
    who: &str,
    queue: &str,
    attempt: usize,
    party_key: &str,
    message_id: &str,
) -> (Read, bool) {
    use futures_lite::StreamExt;
    use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicGetOptions};
    let what = format!("{who}: {} on {queue}", READS[attempt]);
    let ch = conn
        .create_channel()
        .await
        .unwrap_or_else(|e| panic!("{what}: no channel: {e}"));
    let bind = |key: &str| {
        ch.queue_bind(
            queue.into(),
            AGENCY_EXCHANGE.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
    };
    let outcome = match attempt {
        0 => match ch
            .basic_get(queue.into(), BasicGetOptions { no_ack: false })
            .await
        {
            Ok(Some(m)) => {
                let got = delivered_id(&m);
                assert_eq!(got, message_id, "{what}: another message");
                Ok(())
            }
            Ok(None) => panic!("{what}: allowed, but the queue was empty"),
            Err(e) => Err(refusal(&what, &e)),
        },
        1 => match ch
            .basic_consume(
                queue.into(),
                "matrix-read".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
        {
            Ok(mut consumer) => {
                let next =
                    tokio::time::timeout(std::time::Duration::from_secs(10), consumer.next());
                let d = match next.await {
                    Ok(Some(Ok(d))) => d,
                    Ok(other) => panic!("{what}: allowed, but no delivery: {other:?}"),
                    Err(_) => panic!("{what}: allowed, but nothing delivered within 10 s"),
                };
                assert_eq!(delivered_id(&d), message_id, "{what}: another message");
                ch.basic_cancel("matrix-read".into(), BasicCancelOptions::default())
                    .await
                    .unwrap_or_else(|e| panic!("{what}: cannot cancel: {e}"));
                Ok(())
            }
            Err(e) => Err(refusal(&what, &e)),
        },
        2 => bind("#").await.map_err(|e| refusal(&what, &e)),
        3 => bind(party_key).await.map_err(|e| refusal(&what, &e)),
        _ => unreachable!("{attempt}"),
    };
    if ch.status().connected() {
        ch.close(200, "OK".into())
            .await
            .unwrap_or_else(|e| panic!("{what}: cannot close the channel: {e}"));
    }
    match outcome {
        Ok(()) => (Read::Allowed, attempt == 2),
        Err(code) => (Read::Refused(code), false),
    }
}

/// Messages ready in `queue`, as the broker admin sees them (a passive declare): waits up
/// to 10 s for `want`, and returns what it saw last.
async fn ready(conn: &Connection, queue: &str, want: u32) -> u32 {
    use lapin::options::QueueDeclareOptions;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let ch = conn.create_channel().await.unwrap();
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let n = ch
            .queue_declare(queue.into(), passive, FieldTable::default())
            .await
            .unwrap_or_else(|e| panic!("{queue}: {e}"))
            .message_count();
        ch.close(200, "OK".into()).await.unwrap();
        if n == want || std::time::Instant::now() >= deadline {
            return n;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_user_may_read_only_its_own_queue() {
    use lapin::types::{AMQPValue, LongString};
    let defs: Value =
        serde_json::from_str(include_str!("../deploy/rabbitmq/definitions.json")).unwrap();
    let broker = Broker::new("matrix-reads");
    broker.import_topology(&defs);
    let users = create_users(&broker, &defs);

    // The agency queues, and the one key each is bound to agency.decisions with.
    let queues: Vec<&str> = defs["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .filter(|q| q.starts_with("agency."))
        .collect();
    assert_eq!(
        queues, AGENCY_QUEUES,
        "the agency queues of definitions.json are not the columns of the expected matrix"
    );
    let binding_key = |queue: &str| -> String {
        let keys: Vec<&str> = defs["bindings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["source"] == AGENCY_EXCHANGE && b["destination"] == queue)
            .map(|b| b["routing_key"].as_str().unwrap())
            .collect();
        assert_eq!(
            keys.len(),
            1,
            "bindings of {queue} to {AGENCY_EXCHANGE}: {keys:?}"
        );
        keys[0].to_owned()
    };
    let rows: Vec<&str> = users.iter().map(|(d, _, _)| d.as_str()).collect();
    let expected = expected_reads();
    assert_eq!(
        rows,
        expected.iter().map(|(r, _)| *r).collect::<Vec<_>>(),
        "the users of definitions.json are not the rows of the expected read matrix"
    );

    // One decision per agency queue, published as the broker admin to handoff.decisions
    // the way the service publishes them: a routing key no party binding matches, and a
    // BCC header naming one party's key (a BOP facility's for the pattern party.bop.*).
    let admin = Connection::connect(&broker.url(), ConnectionProperties::default())
        .await
        .unwrap();
    let seed = confirming(&admin).await;
    let message_id = |queue: &str| format!("matrix-read-{queue}");
    for queue in AGENCY_QUEUES {
        let pattern = binding_key(queue);
        assert!(!pattern.contains('#'), "{queue} is bound with {pattern}");
        let key = pattern.replace('*', "fci-matrix");
        assert!(
            handoff_core::model::Party::from_key(&key).is_some(),
            "{key} is no party key"
        );
        let mut headers = FieldTable::default();
        headers.insert(
            "BCC".into(),
            AMQPValue::FieldArray(
                vec![AMQPValue::LongString(LongString::from(key.as_str()))].into(),
            ),
        );
        let props = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_message_id(message_id(queue).into())
            .with_headers(headers);
        let confirm = seed
            .basic_publish(
                "handoff.decisions".into(),
                "matrix.read".into(),
                BasicPublishOptions::default(),
                format!("{{\"to\":\"{key}\"}}").as_bytes(),
                props,
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert_eq!(confirm, Confirmation::Ack(None), "the decision for {queue}");
    }
    for queue in AGENCY_QUEUES {
        assert_eq!(
            ready(&admin, queue, 1).await,
            1,
            "{queue} holds its decision"
        );
    }

    // The control: the broker admin may do every attempt, so a refusal below is the
    // user's permissions and nothing else (a bind with `#` it made is undone).
    let undo = |queue: &str| {
        let admin = &admin;
        let queue = queue.to_owned();
        async move {
            let ch = admin.create_channel().await.unwrap();
            ch.queue_unbind(
                queue.as_str().into(),
                AGENCY_EXCHANGE.into(),
                "#".into(),
                FieldTable::default(),
            )
            .await
            .unwrap_or_else(|e| panic!("cannot unbind {queue} from {AGENCY_EXCHANGE} #: {e}"));
            ch.close(200, "OK".into()).await.unwrap();
        }
    };
    for queue in AGENCY_QUEUES {
        let key = binding_key(queue);
        for (attempt, what) in READS.iter().enumerate() {
            let (read, bound) =
                try_read(&admin, "admin", queue, attempt, &key, &message_id(queue)).await;
            assert_eq!(read, Read::Allowed, "the admin: {what} on {queue}");
            if bound {
                undo(queue).await;
            }
        }
    }

    // Every user tries every attempt on every agency queue.
    let mut observed: BTreeMap<(usize, usize), Read> = BTreeMap::new();
    for (r, (row, _, url)) in users.iter().enumerate() {
        let conn = Connection::connect(url, ConnectionProperties::default())
            .await
            .unwrap_or_else(|e| panic!("cannot connect as {row}: {e}"));
        for (q, queue) in AGENCY_QUEUES.iter().enumerate() {
            let key = binding_key(queue);
            for (attempt, what) in READS.iter().enumerate() {
                let (read, bound) =
                    try_read(&conn, row, queue, attempt, &key, &message_id(queue)).await;
                if let Read::Refused(code) = read {
                    assert!(
                        conn.status().connected(),
                        "{row}: {what} on {queue} (refused {code}) closed the connection"
                    );
                }
                if bound {
                    undo(queue).await;
                }
                observed.insert((r, q * READS.len() + attempt), read);
            }
        }
    }
    // Nothing was taken for good: each queue still holds its one decision.
    for queue in AGENCY_QUEUES {
        assert_eq!(
            ready(&admin, queue, 1).await,
            1,
            "{queue} after the attempts"
        );
    }

    // The matrix, as a Markdown table: one line per queue and attempt, one column per user.
    let mut table = String::from("| agency queue: attempt |");
    for row in &rows {
        table.push_str(&format!(" `{row}` |"));
    }
    table.push_str("\n|---|");
    table.push_str(&"---|".repeat(rows.len()));
    table.push('\n');
    for c in 0..READ_WIDTH {
        let (queue, attempt) = (AGENCY_QUEUES[c / READS.len()], c % READS.len());
        let label = match attempt {
            3 => format!("`{queue}`: queue.bind `{}`", binding_key(queue)),
            _ => format!("`{queue}`: {}", READS[attempt]),
        };
        table.push_str(&format!("| {label} |"));
        for r in 0..rows.len() {
            table.push_str(&format!(" {} |", observed[&(r, c)].text()));
        }
        table.push('\n');
    }
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for cell in observed.values() {
        *counts.entry(cell.text()).or_default() += 1;
    }
    println!("{table}");
    println!(
        "{} cells tried ({} users x {} agency queues x {} attempts); {}; \
         the broker admin (control) was allowed all {}",
        observed.len(),
        rows.len(),
        AGENCY_QUEUES.len(),
        READS.len(),
        counts
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        READ_WIDTH
    );

    // The observed matrix equals the expected one, cell by cell.
    assert_eq!(observed.len(), rows.len() * READ_WIDTH);
    let mut wrong = Vec::new();
    for (r, (row, cells)) in expected.iter().enumerate() {
        for (c, want) in cells.iter().enumerate() {
            let got = observed[&(r, c)];
            if got != *want {
                let (queue, attempt) = (AGENCY_QUEUES[c / READS.len()], READS[c % READS.len()]);
                wrong.push(format!(
                    "{row} / {attempt} on {queue} (column {c}): expected {}, got {}",
                    want.text(),
                    got.text()
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}\n{table}", wrong.join("\n"));
}
