//! The operator files in `deploy/` agree with the code: the example configuration loads,
//! the RabbitMQ definitions hold exactly the topology the service declares, the agency
//! queues are bound by party key only (ICD section 4) and read by their own agency only,
//! and `deploy/rabbitmq/add-jurisdiction.py` adds a jurisdiction in exactly that shape, to
//! the file and (`add_jurisdiction_applies_to_a_running_broker`, against the real
//! RabbitMQ) to a running broker.

#[path = "support/broker.rs"]
mod broker;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use broker::Broker;
use handoff::live::config::{Config, QueueType};
use handoff_core::model::{DecisionType, Party, is_jurisdiction_id};
use serde_json::{Value, json};

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
            let allowed = regex_matches(write, t);
            let may = may_send(&agency, t);
            assert_eq!(allowed, may, "{user} ({agency}) and {t}: regex {write}");
        }
    }
}

/// Whether an agency may send any event of this type (for some event): ICD section 2's
/// "who may publish" column, one arm per type, so a new type must be given its senders here.
fn may_send(agency: &handoff_core::authz::Agency, event_type: &str) -> bool {
    use handoff_core::authz::Agency;
    use handoff_core::model::EventType as T;
    let t = T::parse(event_type).unwrap_or_else(|| panic!("{event_type} is no event type"));
    let (ice, bop, court, jurisdiction) = match t {
        T::PolicyUpdated => (true, false, false, true),
        T::DetainerIssued
        | T::DetainerWithdrawn
        | T::FirstRefusalResponse
        | T::CustodyAssumed
        | T::CapacityUpdated
        | T::RemovalStatus
        | T::ReleaseFactor => (true, false, false, false),
        T::BopReleaseScheduled => (false, true, false, false),
        T::WritIssued => (false, false, true, false),
        T::ClaimLodged | T::LocalReleaseDue | T::DetainerDeclined | T::HoldExpired => {
            (false, false, false, true)
        }
    };
    match agency {
        Agency::Ice => ice,
        Agency::Bop => bop,
        Agency::Court => court,
        Agency::Jurisdiction(_) => jurisdiction,
    }
}

// --- the stream journal (journal.backend = "stream") ------------------------------------

/// The journal's stream, and its exchange of the same name.
const JOURNAL: &str = "handoff.journal";
/// The writer lock: an exclusive, auto-delete queue the service declares at run time.
const WRITER_LOCK: &str = "handoff.writer";

/// The stream journal of the definitions: a durable stream of three replicas that nothing
/// truncates (no `x-max-age`, no size limit, no policy), fed only by its fanout exchange;
/// no lock queue in the file; the service may write and read the journal and declare, write
/// and read the lock, and may not create the stream; nobody else may touch either.
#[test]
fn the_stream_journal_is_never_truncated_and_only_the_service_touches_it() {
    let defs = definitions();
    let list = |key: &str| defs[key].as_array().unwrap().clone();
    let queue = list("queues")
        .into_iter()
        .find(|q| q["name"] == JOURNAL)
        .unwrap_or_else(|| panic!("no queue {JOURNAL}"));
    assert_eq!(queue["durable"], true);
    assert_eq!(queue["auto_delete"], false);
    assert_eq!(
        queue["arguments"],
        json!({"x-queue-type": "stream", "x-initial-cluster-size": 3}),
        "{JOURNAL}: a stream of three replicas, and nothing that truncates it"
    );
    for p in list("policies") {
        assert!(
            !regex_matches(p["pattern"].as_str().unwrap(), JOURNAL),
            "policy {} applies to {JOURNAL}",
            p["name"]
        );
    }
    let exchange = list("exchanges")
        .into_iter()
        .find(|x| x["name"] == JOURNAL)
        .unwrap_or_else(|| panic!("no exchange {JOURNAL}"));
    assert_eq!(
        (
            &exchange["type"],
            &exchange["durable"],
            &exchange["internal"],
            &exchange["arguments"]
        ),
        (&json!("fanout"), &json!(true), &json!(false), &json!({}))
    );
    let touching: Vec<(String, String, String)> = list("bindings")
        .iter()
        .filter(|b| b["source"] == JOURNAL || b["destination"] == JOURNAL)
        .map(|b| {
            let s = |k: &str| b[k].as_str().unwrap().to_owned();
            (s("source"), s("destination_type"), s("destination"))
        })
        .collect();
    assert_eq!(
        touching,
        [(JOURNAL.to_owned(), "queue".to_owned(), JOURNAL.to_owned())],
        "the exchange {JOURNAL} feeds the stream and nothing else, and nothing else feeds it"
    );
    assert!(
        list("queues").iter().all(|q| q["name"] != WRITER_LOCK),
        "{WRITER_LOCK} is the service's to declare (exclusive), not the definitions'"
    );
    for p in list("permissions") {
        let may = |kind: &str, name: &str| regex_matches(p[kind].as_str().unwrap(), name);
        let got: Vec<(bool, bool)> = ["configure", "write", "read"]
            .iter()
            .map(|kind| (may(kind, JOURNAL), may(kind, WRITER_LOCK)))
            .collect();
        let want = if p["user"] == "handoff" {
            vec![(false, true), (true, true), (true, true)]
        } else {
            vec![(false, false); 3]
        };
        assert_eq!(
            got, want,
            "{}: (configure, write, read) on ({JOURNAL}, {WRITER_LOCK})",
            p["user"]
        );
    }
}

// --- party routing (ICD section 4) ------------------------------------------------------

/// The exchange the agency queues are bound to, by party key.
const AGENCY_EXCHANGE: &str = "agency.decisions";

/// Routing keys of decisions of every type (ICD section 3), as `Decision::routing_key`
/// makes them: no agency queue may be bound by a key that matches one.
const DECISION_KEYS: [&str; 10] = [
    "offer.ice",
    "transfer.ice",
    "transfer.bop",
    "transfer.local.tx-travis-county",
    "hold.tx-travis-county",
    "hold.tx-new-county",
    "release.bop.fci-bastrop",
    "release.local.tx-travis-county",
    "release.ice.ice",
    "placement.ice",
];

/// The agency queues of the definitions are bound to `agency.decisions` by their party's
/// key only, and each agency user reads its own queue and nothing else.
#[test]
fn agency_queues_are_bound_by_party_keys_only() {
    let defs = definitions();
    let agencies = assert_party_routing(&defs);
    assert_eq!(agencies, ["bop", "ice", "tx-travis-county"]);
}

/// The one key queue `agency.<name>` is bound with: its party's key (`Party::key`), for BOP
/// the pattern of every facility's.
fn party_pattern(name: &str) -> String {
    match name {
        "ice" => Party::Ice.key(),
        "bop" => {
            let pattern = "party.bop.*".to_owned();
            let facility = Party::Bop("fci-bastrop".into()).key();
            assert!(topic_match(&pattern, &facility), "{pattern} and {facility}");
            pattern
        }
        j => {
            assert!(
                is_jurisdiction_id(j),
                "agency.{j}: {j:?} is no jurisdiction_id"
            );
            Party::Local(j.into()).key()
        }
    }
}

/// Checks the party-routing rules on a definitions file; returns its agencies (the names
/// of its `agency.<name>` queues).
fn assert_party_routing(defs: &Value) -> Vec<String> {
    let list = |key: &str| defs[key].as_array().unwrap().clone();
    let s = |v: &Value| v.as_str().unwrap().to_owned();
    let queues: BTreeSet<String> = list("queues").iter().map(|q| s(&q["name"])).collect();
    let exchanges: BTreeMap<String, Value> = list("exchanges")
        .iter()
        .map(|x| (s(&x["name"]), x.clone()))
        .collect();
    let users: BTreeSet<String> = list("users").iter().map(|u| s(&u["name"])).collect();
    // (source, destination type, destination, routing key)
    let bindings: Vec<(String, String, String, String)> = list("bindings")
        .iter()
        .map(|b| {
            (
                s(&b["source"]),
                s(&b["destination_type"]),
                s(&b["destination"]),
                s(&b["routing_key"]),
            )
        })
        .collect();
    let agencies: Vec<String> = queues
        .iter()
        .filter_map(|q| q.strip_prefix("agency."))
        .map(str::to_owned)
        .collect();
    for a in ["bop", "ice", "tx-travis-county"] {
        assert!(agencies.iter().any(|x| x == a), "no queue agency.{a}");
    }
    for a in &agencies {
        assert!(users.contains(a), "queue agency.{a} has no user {a}");
    }

    // The exchanges decisions cross.
    let x = &exchanges[AGENCY_EXCHANGE];
    assert_eq!(x["type"], "topic");
    assert_eq!(
        x["internal"], true,
        "nobody may publish to {AGENCY_EXCHANGE}"
    );
    assert_eq!(
        x["arguments"],
        json!({"alternate-exchange": "handoff.unrouted"})
    );
    let from = |source: &str| -> BTreeSet<(String, String, String)> {
        bindings
            .iter()
            .filter(|b| b.0 == source)
            .map(|b| (b.1.clone(), b.2.clone(), b.3.clone()))
            .collect()
    };
    let t = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
    assert_eq!(
        from("handoff.decisions"),
        BTreeSet::from([
            t("queue", "handoff.audit", "#"),
            t("exchange", AGENCY_EXCHANGE, "#"),
        ]),
        "handoff.decisions binds the audit (#) and {AGENCY_EXCHANGE} (#), nothing else: \
         no agency queue directly"
    );
    let want: BTreeSet<_> = agencies
        .iter()
        .map(|a| t("queue", &format!("agency.{a}"), &party_pattern(a)))
        .collect();
    assert_eq!(
        from(AGENCY_EXCHANGE),
        want,
        "{AGENCY_EXCHANGE} binds each agency queue by its own party key, nothing else"
    );

    // Every binding of an agency queue, from any exchange: its party key on agency.decisions.
    for a in &agencies {
        let queue = format!("agency.{a}");
        let mine: Vec<_> = bindings
            .iter()
            .filter(|b| b.1 == "queue" && b.2 == queue)
            .collect();
        assert_eq!(
            mine,
            [&(
                AGENCY_EXCHANGE.to_owned(),
                "queue".to_owned(),
                queue.clone(),
                party_pattern(a)
            )],
            "{queue} must be bound exactly once, by {}",
            party_pattern(a)
        );
    }

    // Nothing on the decisions' way is bound by a decision-type key, the audit's and the
    // exchange-to-exchange `#` aside.
    let words: Vec<&str> = DecisionType::NAMES
        .iter()
        .map(|n| n.strip_prefix("handoff.").unwrap())
        .collect();
    for (src, kind, dst, key) in &bindings {
        if src != "handoff.decisions" && src != AGENCY_EXCHANGE
            || key == "#" && src == "handoff.decisions"
        {
            continue;
        }
        let first = key.split('.').next().unwrap();
        assert!(
            !words.contains(&first),
            "{src} -> {kind} {dst} is bound by a decision-type key {key}"
        );
        for d in DECISION_KEYS {
            assert!(
                !topic_match(key, d),
                "{src} -> {kind} {dst}: its key {key} matches the decision key {d}"
            );
        }
    }

    // Reads: each agency user its own queue, and no other queue or exchange of the file.
    let resources: BTreeSet<&String> = queues.iter().chain(exchanges.keys()).collect();
    let perms: BTreeMap<String, Value> = list("permissions")
        .iter()
        .filter(|p| p["vhost"] == "/")
        .map(|p| (s(&p["user"]), p.clone()))
        .collect();
    for user in &users {
        if user == "handoff" {
            continue; // the service: its own expressions, checked by check-definitions.py
        }
        let p = perms
            .get(user)
            .unwrap_or_else(|| panic!("no permissions for {user}"));
        assert_eq!(p["configure"], "^$", "{user} may configure nothing");
        assert_eq!(
            p["write"], "^handoff\\.events$",
            "{user} may write handoff.events only (and so bind nothing)"
        );
        let read = p["read"].as_str().unwrap();
        let readable: Vec<&str> = resources
            .iter()
            .filter(|r| regex_matches(read, r))
            .map(|r| r.as_str())
            .collect();
        if agencies.contains(user) {
            assert_eq!(read, format!("^agency\\.{user}$"), "read of {user}");
            assert_eq!(readable, [format!("agency.{user}")], "what {user} may read");
        } else {
            assert!(
                readable.iter().all(|r| !r.starts_with("agency.")),
                "{user} may read an agency's queue: {readable:?}"
            );
        }
    }
    agencies
}

/// Whether a topic binding key matches a routing key (`*` one word, `#` zero or more).
fn topic_match(pattern: &str, key: &str) -> bool {
    fn m(p: &[&str], k: &[&str]) -> bool {
        match p.split_first() {
            None => k.is_empty(),
            Some((&"#", rest)) => (0..=k.len()).any(|i| m(rest, &k[i..])),
            Some((w, rest)) => !k.is_empty() && (*w == "*" || *w == k[0]) && m(rest, &k[1..]),
        }
    }
    let p: Vec<&str> = pattern.split('.').collect();
    let k: Vec<&str> = if key.is_empty() {
        Vec::new()
    } else {
        key.split('.').collect()
    };
    m(&p, &k)
}

/// Whether a permission's regular expression matches a name, as RabbitMQ matches it (an
/// unanchored search, `re:run`; the definitions anchor their own).
fn regex_matches(regex: &str, name: &str) -> bool {
    regex::Regex::new(regex)
        .unwrap_or_else(|e| panic!("{regex}: {e}"))
        .is_match(name)
}

#[test]
fn the_matchers_of_these_tests_match_as_rabbitmq_would() {
    let yes = [
        ("^agency\\.tx-travis-county$", "agency.tx-travis-county"),
        (
            "^handoff\\.(audit|dead-letter|unrouted)$",
            "handoff.unrouted",
        ),
        (
            "^(ice\\..+|jurisdiction\\.policy\\.updated)$",
            "ice.detainer.issued",
        ),
        ("^agency\\..*$", "agency."),
        ("^$", ""),
    ];
    let no = [
        (
            "^agency\\.tx-travis-county$",
            "agency.tx-travis-county-annex",
        ),
        ("^agency\\.tx-travis-county$", "agencyXtx-travis-county"),
        ("^handoff\\.(audit|dead-letter|unrouted)$", "agency.bop"),
        ("^(ice\\..+|jurisdiction\\.policy\\.updated)$", "ice."),
        ("^$", "agency.bop"),
    ];
    for (r, n) in yes {
        assert!(regex_matches(r, n), "{r} must match {n}");
    }
    for (r, n) in no {
        assert!(!regex_matches(r, n), "{r} must not match {n}");
    }
    assert!(topic_match("party.bop.*", "party.bop.fci-bastrop"));
    assert!(!topic_match("party.bop.*", "party.bop"));
    assert!(!topic_match("party.bop.*", "party.bop.a.b"));
    assert!(topic_match("#", "transfer.ice"));
    assert!(topic_match("transfer.#", "transfer.local.tx-travis-county"));
    assert!(!topic_match("party.ice", "transfer.ice"));
}

// --- add-jurisdiction.py -----------------------------------------------------------------

/// A directory of its own under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("handoff-deploy-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `python3 deploy/rabbitmq/add-jurisdiction.py ARGS` from the repository root with
/// `stdin` as its standard input.
fn add_jurisdiction(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new("python3")
        .arg("deploy/rabbitmq/add-jurisdiction.py")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run python3");
    // A refusal may come before the tool reads its input: a closed pipe is fine then.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

fn show(out: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Whether a rabbit_password_hashing_sha256 hash, base64(salt (4) + SHA-256(salt +
/// password)), is of this password.
fn hash_is_of(hash: &str, password: &str) -> bool {
    use sha2::{Digest, Sha256};
    let raw = base64_decode(hash);
    if raw.len() != 36 {
        return false;
    }
    let mut h = Sha256::new();
    h.update(&raw[..4]);
    h.update(password.as_bytes());
    h.finalize()[..] == raw[4..]
}

fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for b in text.bytes().filter(|b| *b != b'=') {
        let v = ALPHABET
            .iter()
            .position(|a| *a == b)
            .unwrap_or_else(|| panic!("{text} is not base64"));
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// The entries (`    {` to `    }`) of the top-level lists of definitions.json's text.
fn entries(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<Vec<&str>> = None;
    for line in text.lines() {
        if line == "    {" {
            cur = Some(vec![line]);
        } else if let Some(c) = cur.as_mut() {
            if line == "    }" || line == "    }," {
                c.push("    }");
                out.push(c.join("\n"));
                cur = None;
            } else {
                c.push(line);
            }
        }
    }
    out
}

/// What add-jurisdiction.py adds for a jurisdiction, in the file's shapes (as
/// `tx-travis-county`'s): (list, entry), the user's password hash given.
fn jurisdiction_entries(id: &str, password_hash: &str) -> Vec<(&'static str, Value)> {
    vec![
        (
            "users",
            json!({"name": id, "password_hash": password_hash,
                   "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": [], "limits": {}}),
        ),
        (
            "permissions",
            json!({"user": id, "vhost": "/", "configure": "^$", "write": "^handoff\\.events$",
                   "read": format!("^agency\\.{id}$")}),
        ),
        (
            "topic_permissions",
            json!({"user": id, "vhost": "/", "exchange": "handoff.events",
                   "write": "^(local\\..+|hold\\.expired|jurisdiction\\.policy\\.updated)$",
                   "read": "^$"}),
        ),
        (
            "queues",
            json!({"name": format!("agency.{id}"), "vhost": "/", "durable": true,
                   "auto_delete": false, "arguments": {"x-queue-type": "quorum"}}),
        ),
        (
            "bindings",
            json!({"source": AGENCY_EXCHANGE, "vhost": "/", "destination": format!("agency.{id}"),
                   "destination_type": "queue", "routing_key": format!("party.local.{id}"),
                   "arguments": {}}),
        ),
    ]
}

/// add-jurisdiction.py adds a jurisdiction to a copy of the definitions in exactly the
/// shape (and the formatting) of `tx-travis-county`, changes nothing else, and refuses an
/// id twice or an invalid or reserved id without touching the file.
#[test]
fn add_jurisdiction_adds_a_jurisdiction_shaped_like_travis_county() {
    let original = include_str!("../deploy/rabbitmq/definitions.json");
    let dir = TempDir::new("add-jurisdiction");
    let copy = dir.0.join("definitions.json");
    std::fs::write(&copy, original).unwrap();
    let file = copy.to_str().unwrap();
    let password = "hays county's password";

    let out = add_jurisdiction(
        &["tx-hays-county", "--definitions", file, "--password-stdin"],
        &format!("{password}\n"),
    );
    assert!(out.status.success(), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(r#"tx-hays-county = "jurisdiction:tx-hays-county""#),
        "the [publishers] line: {stdout}"
    );
    assert!(
        stdout.contains(&format!("rabbitmqctl import_definitions {file}")),
        "{stdout}"
    );

    let text = std::fs::read_to_string(&copy).unwrap();
    let defs: Value = serde_json::from_str(&text).unwrap();
    let before: Value = serde_json::from_str(original).unwrap();
    let hays = |list: &str| -> Vec<Value> {
        defs[list]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x.to_string().contains("tx-hays-county"))
            .cloned()
            .collect()
    };
    let hash = hays("users")[0]["password_hash"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        hash_is_of(&hash, password),
        "the hash {hash} is not of the password"
    );
    for (list, want) in jurisdiction_entries("tx-hays-county", &hash) {
        assert_eq!(hays(list), std::slice::from_ref(&want), "{list}");
        // The same as Travis County's, but for the names.
        let travis: Vec<Value> = before[list]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x.to_string().contains("tx-travis-county"))
            .cloned()
            .collect();
        assert_eq!(travis.len(), 1, "{list} of Travis County");
        let mut renamed: Value = serde_json::from_str(
            &travis[0]
                .to_string()
                .replace("tx-travis-county", "tx-hays-county"),
        )
        .unwrap();
        if list == "users" {
            renamed["password_hash"] = json!(hash); // the one difference
        }
        assert_eq!(renamed, want, "{list}: not Travis County's shape");
    }
    // Everything else is unchanged, in order.
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&defs), keys(&before));
    for (key, was) in before.as_object().unwrap() {
        let now = &defs[key];
        match (was.as_array(), now.as_array()) {
            (Some(was), Some(now)) => {
                let rest: Vec<&Value> = now
                    .iter()
                    .filter(|x| !x.to_string().contains("tx-hays-county"))
                    .collect();
                assert_eq!(rest, was.iter().collect::<Vec<_>>(), "{key} changed");
            }
            _ => assert_eq!(now, was, "{key} changed"),
        }
    }
    // And the text: Travis County's five entries, renamed, are in the file in the same
    // formatting (2 spaces, key order); without them the file is the original, byte for byte.
    let travis: Vec<String> = entries(original)
        .into_iter()
        .filter(|e| e.contains("tx-travis-county"))
        .collect();
    assert_eq!(travis.len(), 5, "Travis County's entries: {travis:#?}");
    let travis_hash = before["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "tx-travis-county")
        .unwrap()["password_hash"]
        .as_str()
        .unwrap();
    let mut stripped = text.clone();
    for entry in &travis {
        let new = entry
            .replace("tx-travis-county", "tx-hays-county")
            .replace(travis_hash, &hash);
        assert_eq!(
            stripped.matches(&new).count(),
            1,
            "not in the file, formatted as Travis County's:\n{new}\nfile:\n{text}"
        );
        let followed = format!("{new},\n");
        stripped = if stripped.contains(&followed) {
            stripped.replacen(&followed, "", 1)
        } else {
            stripped.replacen(&format!(",\n{new}"), "", 1)
        };
    }
    assert_eq!(stripped, original, "the rest of the file changed");
    assert!(text.ends_with("}\n"));
    // The party-routing rules hold with the new jurisdiction.
    assert_eq!(
        assert_party_routing(&defs),
        ["bop", "ice", "tx-hays-county", "tx-travis-county"]
    );

    // Again with the same id: refused, the file untouched.
    let out = add_jurisdiction(
        &["tx-hays-county", "--definitions", file, "--password-stdin"],
        "another password\n",
    );
    assert!(!out.status.success(), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("already has a user 'tx-hays-county'")
            && stderr.contains("nothing changed"),
        "{}",
        show(&out)
    );
    assert_eq!(std::fs::read_to_string(&copy).unwrap(), text);

    // Invalid and reserved ids: refused, the file untouched.
    for (id, why) in [
        ("TX", "is not a jurisdiction_id"),
        ("decisions", "is reserved"),
        ("bop", "is reserved"),
        ("tx.hays", "is not a jurisdiction_id"),
        ("operator", "already has a user 'operator'"),
    ] {
        let out = add_jurisdiction(&[id, "--definitions", file, "--password-stdin"], "pw\n");
        assert!(!out.status.success(), "{id}: {}", show(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("'{id}'")) && stderr.contains(why),
            "{id}: {}",
            show(&out)
        );
        assert_eq!(std::fs::read_to_string(&copy).unwrap(), text, "{id}");
    }
}

// --- add-jurisdiction.py --api, against a RabbitMQ ----------------------------------------

/// The management API (`http://user:password@host:port`) of the test broker:
fn http_get(url: &str) -> Value {
    ureq::get(url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .body_mut()
        .read_json::<Value>()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// Deletes a (global) broker user when dropped, test failed or not.
struct DeleteUser {
    api: String,
    name: String,
}

impl Drop for DeleteUser {
    fn drop(&mut self) {
        let _ = ureq::delete(&format!("{}/users/{}", self.api, self.name)).call();
    }
}

/// add-jurisdiction.py --api --no-file creates the jurisdiction on a running broker, in a
/// vhost holding the definitions' topology: its user logs in, gets a decision whose BCC
/// names it from its own queue, and is refused ICE's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_jurisdiction_applies_to_a_running_broker() {
    use lapin::options::{
        BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueBindOptions,
    };
    use lapin::types::{AMQPValue, FieldTable, LongString};
    use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties};

    let broker = Broker::new("add-jurisdiction-api");
    let api = broker.management_api();
    broker.import_topology(&definitions());
    // Users are global: a name no other run uses (the pid, and the time).
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let id = format!("deploy-api-{}-{nanos}", std::process::id());
    assert!(is_jurisdiction_id(&id), "{id}");
    let _user = DeleteUser {
        api: api.clone(),
        name: id.clone(),
    };
    let password = format!("pw-{nanos}");
    let vhost = broker.vhost().to_owned();
    let queue = format!("agency.{id}");

    let out = add_jurisdiction(
        &[
            &id,
            "--api",
            &api,
            "--vhost",
            &vhost,
            "--no-file",
            "--password-stdin",
        ],
        &format!("{password}\n"),
    );
    assert!(out.status.success(), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(r#"{id} = "jurisdiction:{id}""#)),
        "{stdout}"
    );
    assert!(!stdout.contains("import_definitions"), "{stdout}");

    // What the broker holds now (vhost names are URL-safe here: letters, digits, - and _).
    let user = http_get(&format!("{api}/users/{id}"));
    assert_eq!(user["hashing_algorithm"], "rabbit_password_hashing_sha256");
    assert!(user["tags"] == json!([]) || user["tags"] == "", "{user}");
    assert!(hash_is_of(
        user["password_hash"].as_str().unwrap(),
        &password
    ));
    let p = http_get(&format!("{api}/permissions/{vhost}/{id}"));
    assert_eq!(
        (&p["configure"], &p["write"], &p["read"]),
        (
            &json!("^$"),
            &json!("^handoff\\.events$"),
            &json!(format!("^agency\\.{id}$"))
        ),
        "{p}"
    );
    let tp = http_get(&format!("{api}/topic-permissions/{vhost}/{id}"));
    let tp: Vec<(Value, Value, Value)> = tp
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["exchange"].clone(), t["write"].clone(), t["read"].clone()))
        .collect();
    assert_eq!(
        tp,
        [(
            json!("handoff.events"),
            json!("^(local\\..+|hold\\.expired|jurisdiction\\.policy\\.updated)$"),
            json!("^$")
        )]
    );
    let q = http_get(&format!("{api}/queues/{vhost}/{queue}"));
    assert_eq!(q["durable"], true, "{q}");
    assert_eq!(q["auto_delete"], false, "{q}");
    assert_eq!(q["arguments"], json!({"x-queue-type": "quorum"}), "{q}");
    let b = http_get(&format!(
        "{api}/bindings/{vhost}/e/{AGENCY_EXCHANGE}/q/{queue}"
    ));
    let keys: Vec<&str> = b
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["routing_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, [format!("party.local.{id}")]);

    // A decision for the new jurisdiction, published as the service does: to
    // handoff.decisions, with its routing key and a BCC header of its party's key.
    let admin = Connection::connect(&broker.url(), ConnectionProperties::default())
        .await
        .unwrap();
    let ch = admin.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let mut headers = FieldTable::default();
    headers.insert(
        "BCC".into(),
        AMQPValue::FieldArray(
            vec![AMQPValue::LongString(LongString::from(
                format!("party.local.{id}").as_str(),
            ))]
            .into(),
        ),
    );
    let routing_key = format!("hold.{id}");
    let confirm = ch
        .basic_publish(
            "handoff.decisions".into(),
            routing_key.as_str().into(),
            BasicPublishOptions::default(),
            b"{}",
            BasicProperties::default()
                .with_delivery_mode(2)
                .with_message_id("add-jurisdiction-api".into())
                .with_headers(headers),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(confirm, Confirmation::Ack(None));

    // The new user reads it from its own queue, without the BCC header.
    let (scheme, rest) = broker
        .url()
        .split_once("://")
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .unwrap();
    let (_, at) = rest.split_once('@').unwrap();
    let user_url = format!("{scheme}://{id}:{password}@{at}");
    let conn = Connection::connect(&user_url, ConnectionProperties::default())
        .await
        .unwrap_or_else(|e| panic!("{id} cannot log in: {e}"));
    let uch = conn.create_channel().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let got = loop {
        let m = uch
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap_or_else(|e| panic!("{id} cannot read {queue}: {e}"));
        match m {
            Some(m) => break m.delivery,
            None if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            None => panic!("nothing reached {queue} within 10 s"),
        }
    };
    assert_eq!(
        got.properties.message_id().as_ref().map(|m| m.as_str()),
        Some("add-jurisdiction-api")
    );
    assert_eq!(got.routing_key.as_str(), routing_key);
    assert!(
        got.properties
            .headers()
            .as_ref()
            .is_none_or(|h| !h.contains_key("BCC")),
        "RabbitMQ must remove BCC before delivery: {:?}",
        got.properties.headers()
    );

    // ICE's queue is not its to read, and it may bind nothing, not even its own queue.
    let refused = |e: lapin::Error, what: &str| match e.kind() {
        lapin::ErrorKind::ProtocolError(amqp) => assert_eq!(amqp.get_id(), 403, "{what}"),
        other => panic!("{what}: not a refusal: {other:?}"),
    };
    let ch = conn.create_channel().await.unwrap();
    match ch
        .basic_get("agency.ice".into(), BasicGetOptions { no_ack: true })
        .await
    {
        Ok(m) => panic!("{id} read agency.ice: {m:?}"),
        Err(e) => refused(e, "basic.get agency.ice"),
    }
    let ch = conn.create_channel().await.unwrap();
    match ch
        .queue_bind(
            queue.as_str().into(),
            AGENCY_EXCHANGE.into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
    {
        Ok(()) => panic!("{id} bound {queue} with #"),
        Err(e) => refused(e, "queue.bind # to its own queue"),
    }
    conn.close(200, "OK".into()).await.unwrap();
    admin.close(200, "OK".into()).await.unwrap();
}
