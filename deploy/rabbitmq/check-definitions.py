#!/usr/bin/env python3
"""Checks deploy/rabbitmq/definitions.json against a running RabbitMQ, for real.

How to run (needs the management plugin and the `pika` AMQP client):

    python3 -m venv /tmp/handoff-check && /tmp/handoff-check/bin/pip install pika
    /tmp/handoff-check/bin/python deploy/rabbitmq/check-definitions.py \
        [--api http://guest:guest@127.0.0.1:15672/api] [--amqp amqp://127.0.0.1:5672] \
        [--definitions deploy/rabbitmq/definitions.json]

`--api` must name an administrator (it imports definitions and deletes what it created).
`--definitions` checks another file (say a copy after add-jurisdiction.py) in its place.

What it does:
1. Reads the file and checks it statically: the topology `handoff serve` declares (exchanges,
   queues, arguments, the 14 event-type bindings); party routing (ICD section 4): every
   binding to an `agency.<name>` queue comes from `agency.decisions` with a party key, each
   agency queue is bound exactly to its own (`party.bop.*`, `party.ice`,
   `party.local.<jurisdiction_id>`), the decision exchanges bind nothing else (only
   `handoff.audit` with `#` and `agency.decisions` with `#`: no decision-type key); every
   agency user reads its own queue and no other queue or exchange of the file, and no
   agency user may configure anything or write anything but `handoff.events`; the stream
   journal (`journal.backend = "stream"`): the durable stream `handoff.journal` (three
   replicas, no age or size limit, no policy), fed only by the fanout exchange of the same
   name, no queue `handoff.writer` in the file (the service declares that lock itself), and
   no user but `handoff` with any permission on either name; and that every password hash
   is a well-formed rabbit_password_hashing_sha256 hash (it says which ones are still the
   demo passwords, equal to the user name).
2. Imports a rewritten copy through the management API (`POST /api/definitions`): vhost "/"
   becomes a throwaway vhost `deploy-check-<pid>`, every user `deploy-check-<pid>-<name>`,
   and every password a random one made for this run with the same hash function (so a
   login proves the hashing is RabbitMQ's, and no guessable password ever exists on the
   broker).
3. Lists what the broker now holds in that vhost (exchanges, queues, bindings, permissions,
   topic permissions, policies and the policy in force on each queue, user tags) and
   compares it with the file.
4. Connects over AMQP as each user and proves least privilege: what each user must be able
   to do works, and what it must not do is refused by the broker (ACCESS_REFUSED 403, or
   PRECONDITION_FAILED 406 for a forged user-id). Routing: the service's user publishes a
   table of test decisions (DECISIONS) as the service does, once each with the decision's
   routing key, a `BCC` header of its parties' keys and a message-id; each agency queue
   must get, once each, exactly the decisions whose BCC names its party, `handoff.audit`
   all of them, `handoff.unrouted` only those no agency queue took (a decision only for a
   jurisdiction without a queue; one published without BCC, since no agency queue is
   bound to a routing key), every delivery must carry its decision's routing key and no
   `BCC` header; dead letters go to `handoff.dead-letter`. Reads: every agency user, the
   court and the operator try basic.get and basic.consume on every agency queue (allowed
   on their own only), binding any agency queue to `agency.decisions` (`#` and a party
   key, their own queue included) or to `handoff.decisions`, unbinding and deleting their
   queue, exchange-to-exchange bindings and declaring queues (all refused), and the
   bindings are then still exactly the file's. The stream journal: the service publishes
   an entry through the exchange `handoff.journal` (confirmed; the default exchange is
   refused), reads it back from the stream (`x-stream-offset: first`), may not redeclare
   the stream, and takes the writer lock (an exclusive queue `handoff.writer`): a second
   connection is refused with 405 RESOURCE_LOCKED until the first closes. Every other user
   is refused (403) publishing to the journal, reading it and declaring the lock.
5. In a second, empty throwaway vhost, proves the service's user may create its whole
   topology from nothing (declare_topology = true on a broker without these definitions),
   except the stream journal, which only the definitions create (its creation is refused).
6. Always (also on failure or Ctrl-C) deletes the throwaway vhosts and users, then checks
   nothing of them is left.

It never reads, changes or deletes anything in vhost "/" and touches no user it did not
create. Exit status 0 when every check passed.
"""

import argparse
import base64
import hashlib
import json
import os
import re
import secrets
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

try:
    import pika
    from pika.exceptions import ChannelClosedByBroker, UnroutableError
except ImportError:  # pragma: no cover (main() says so, after --help had its chance)
    pika = None

HERE = Path(__file__).resolve().parent
DEFINITIONS = HERE / "definitions.json"

# ICD section 2: the event types, each the routing key of its events on handoff.events.
EVENT_TYPES = [
    "jurisdiction.policy.updated",
    "ice.detainer.issued",
    "ice.detainer.withdrawn",
    "local.claim.lodged",
    "bop.release.scheduled",
    "ice.first_refusal.response",
    "court.writ.issued",
    "local.release.due",
    "local.detainer.declined",
    "hold.expired",
    "ice.custody.assumed",
    "ice.capacity.updated",
    "ice.removal.status",
    "ice.release.factor",
]

# What `handoff serve` declares (src/config.rs defaults, queue_type = quorum).
SERVICE_EXCHANGES = {
    "handoff.events": ("topic", {}),
    "handoff.decisions": ("topic", {"alternate-exchange": "handoff.unrouted"}),
    "handoff.dead-letter": ("topic", {}),
    "handoff.unrouted": ("fanout", {}),
}
SERVICE_QUEUES = {
    "handoff.inbound": {"x-queue-type": "quorum", "x-dead-letter-exchange": "handoff.dead-letter"},
    "handoff.dead-letter": {"x-queue-type": "quorum"},
    "handoff.unrouted": {"x-queue-type": "quorum"},
}
SERVICE_BINDINGS = {("handoff.events", "handoff.inbound", t) for t in EVENT_TYPES} | {
    ("handoff.dead-letter", "handoff.dead-letter", "#"),
    ("handoff.unrouted", "handoff.unrouted", ""),
}

# The stream journal (journal.backend = "stream"), from the definitions only: a durable
# stream of three replicas that is never truncated (no x-max-age, no x-max-length-bytes,
# no policy), written through a fanout exchange of the same name (publishing through the
# default exchange would need write on amq.default, i.e. on every queue). The writer lock
# is an exclusive, auto-delete queue the service declares itself at run time.
JOURNAL = "handoff.journal"
JOURNAL_ARGUMENTS = {"x-queue-type": "stream", "x-initial-cluster-size": 3}
WRITER_LOCK = "handoff.writer"

# Decisions published by the check, as the service publishes them (ICD sections 3 and 4):
# once each to handoff.decisions with the decision's routing key and a BCC header listing
# its parties' keys. RabbitMQ routes on the routing key and every BCC key (across the
# exchange-to-exchange binding to agency.decisions), delivers a message to a queue once
# however many keys match, and removes BCC before delivery. The agency queues are bound
# by party key only, so an agency queue must get exactly the decisions whose BCC names its
# party, and handoff.unrouted exactly those whose keys reach no agency queue at all.
# (message-id, routing key, BCC or None for no header, what it is)
DECISIONS = [
    ("transfer-bop-to-travis", "transfer.local.tx-travis-county",
     ["party.bop.fci-bastrop", "party.ice", "party.local.tx-travis-county"],
     "a transfer from BOP (fci-bastrop) to Travis County, ICE holding a detainer"),
    ("transfer-travis-to-ice", "transfer.ice", ["party.ice", "party.local.tx-travis-county"],
     "an R3.4 transfer from Travis County to ICE at the end of a hold"),
    ("hold-travis", "hold.tx-travis-county", ["party.ice", "party.local.tx-travis-county"],
     "a hold by Travis County for ICE"),
    ("offer-bop", "offer.ice", ["party.bop.fci-bastrop", "party.ice"],
     "a first-refusal offer to ICE of a BOP release"),
    ("transfer-williamson-to-travis", "transfer.local.tx-travis-county",
     ["party.local.tx-travis-county", "party.local.tx-williamson-county"],
     "a county-to-county transfer, no business of BOP or ICE (Williamson has no queue: "
     "Travis's takes it, so it is not unrouted)"),
    ("transfer-travis-to-la-tuna", "transfer.bop", ["party.bop.fci-la-tuna", "party.local.tx-travis-county"],
     "a transfer from Travis County to another BOP facility (party.bop.* takes any facility)"),
    ("release-bop", "release.bop.fci-bastrop", ["party.bop.fci-bastrop", "party.ice"],
     "a release from BOP that ICE is told of"),
    ("release-travis", "release.local.tx-travis-county", ["party.local.tx-travis-county"],
     "a release from Travis County without a detainer"),
    ("release-ice", "release.ice.ice", ["party.ice"], "a release from ICE"),
    ("placement-ice", "placement.ice", ["party.ice"], "a placement decision of ICE's"),
    ("hold-new-county", "hold.tx-new-county", ["party.local.tx-new-county"],
     "a decision only for a jurisdiction without a queue: must land in handoff.unrouted"),
    ("no-bcc", "transfer.local.tx-travis-county", None,
     "a decision without BCC (routing key alone, as before party routing): "
     "no agency queue is bound to a decision-type key, so only audit and unrouted get it"),
]

# The agencies of the definitions as they stand (add-jurisdiction.py adds more): queue
# agency.<name> is read by user <name>, and at least these must be there.
KNOWN_AGENCIES = ["bop", "ice", "tx-travis-county"]
# Users that read no agency queue (and must be refused every one).
NON_AGENCY_READERS = ["us-district-tx-w", "operator"]
DECISION_TYPES = {"offer", "transfer", "hold", "release", "placement"}

# jurisdiction_id (crates/handoff-core/src/model.rs is_jurisdiction_id).
JURISDICTION_ID = re.compile(r"[a-z0-9][a-z0-9_-]{1,62}")


def agencies(defs):
    """The names <name> of the definitions' queues agency.<name>."""
    return sorted(x["name"][len("agency."):] for x in defs["queues"] if x["name"].startswith("agency."))


def topic_match(pattern, key):
    """Whether a topic binding key matches a routing key (* one word, # zero or more)."""
    def m(p, k):
        if not p:
            return not k
        if p[0] == "#":
            return any(m(p[1:], k[i:]) for i in range(len(k) + 1))
        return bool(k) and (p[0] == "*" or p[0] == k[0]) and m(p[1:], k[1:])
    return m(pattern.split("."), key.split(".") if key else [])


def party_key(agency):
    """The one binding key of queue agency.<agency> on agency.decisions."""
    if agency == "ice":
        return "party.ice"
    if agency == "bop":
        return "party.bop.*"  # every BOP facility: party.bop.<facility id>
    return f"party.local.{agency}"  # (a valid jurisdiction id: checked where the queues are)


def names_party(agency, key):
    """Whether a BCC key (a concrete party key) names the party of agency.<agency>."""
    if agency == "bop":
        rest = key[len("party.bop."):] if key.startswith("party.bop.") else ""
        return bool(JURISDICTION_ID.fullmatch(rest))
    return key == party_key(agency)


def is_party_key(key):
    """A party key or the BOP wildcard: party.ice, party.bop.*|<id>, party.local.<id>."""
    if key in ("party.ice", "party.bop.*"):
        return True
    for prefix in ("party.bop.", "party.local."):
        if key.startswith(prefix) and JURISDICTION_ID.fullmatch(key[len(prefix):]):
            return True
    return False


FAILURES = []
ACCESS_REFUSED, RESOURCE_LOCKED, PRECONDITION_FAILED = 403, 405, 406


def check(ok, what):
    print(("  ok    " if ok else "  FAIL  ") + what)
    if not ok:
        FAILURES.append(what)
    return ok


def rabbit_sha256(password, salt=None):
    """rabbit_password_hashing_sha256: base64(salt(4) + sha256(salt + utf8 password))."""
    salt = os.urandom(4) if salt is None else salt
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode("utf-8")).digest()).decode()


# --- management API ------------------------------------------------------------------

class Api:
    def __init__(self, url):
        p = urllib.parse.urlsplit(url)
        self.base = urllib.parse.urlunsplit((p.scheme, p.hostname + (f":{p.port}" if p.port else ""),
                                             p.path.rstrip("/"), "", ""))
        user = urllib.parse.unquote(p.username or "guest")
        password = urllib.parse.unquote(p.password or "guest")
        self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def call(self, method, path, body=None, ok=(200, 201, 204)):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", self.auth)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                text = resp.read().decode()
                status = resp.status
        except urllib.error.HTTPError as e:
            text, status = e.read().decode(), e.code
        if status not in ok:
            raise RuntimeError(f"{method} {path}: HTTP {status}: {text[:500]}")
        return json.loads(text) if text.strip() else None

    def get(self, path):
        return self.call("GET", path)


def q(name):
    return urllib.parse.quote(name, safe="")


# --- 1. static checks ----------------------------------------------------------------

def static_checks(defs, path):
    path = path.resolve()
    print("1. static checks of", path.relative_to(HERE.parent.parent) if path.is_relative_to(HERE.parent.parent)
          else path)
    check([v["name"] for v in defs["vhosts"]] == ["/"], 'one vhost, "/"')
    ex = {e["name"]: e for e in defs["exchanges"]}
    for name, (typ, args) in SERVICE_EXCHANGES.items():
        e = ex.get(name)
        check(e is not None and e["type"] == typ and e["durable"] and not e["auto_delete"]
              and not e["internal"] and e["arguments"] == args,
              f"exchange {name}: {typ}, durable, arguments {args}")
    qs = {x["name"]: x for x in defs["queues"]}
    for name, args in SERVICE_QUEUES.items():
        x = qs.get(name)
        check(x is not None and x["durable"] and not x["auto_delete"] and x["arguments"] == args,
              f"queue {name}: durable, arguments {args}")
    for x in defs["queues"]:
        if x["name"] != JOURNAL:
            check(x["arguments"].get("x-queue-type") == "quorum" and x["durable"],
                  f"queue {x['name']} is a durable quorum queue")
    bs = {(b["source"], b["destination"], b["routing_key"]) for b in defs["bindings"]}
    missing = SERVICE_BINDINGS - bs
    check(not missing, f"the service's {len(SERVICE_BINDINGS)} bindings ({len(EVENT_TYPES)} event types, "
          f"dead-letter #, unrouted fanout)" + (f"; missing {sorted(missing)}" if missing else ""))
    inbound = {k for (s, d, k) in bs if d == "handoff.inbound"}
    check(inbound == set(EVENT_TYPES),
          f"handoff.inbound is bound to exactly the {len(EVENT_TYPES)} event types")
    party_routing_checks(defs)
    journal_checks(defs)
    demo = []
    for u in defs["users"]:
        raw = base64.b64decode(u["password_hash"])
        check(u["hashing_algorithm"] == "rabbit_password_hashing_sha256" and len(raw) == 36,
              f"user {u['name']}: a salted sha256 password hash")
        if rabbit_sha256(u["name"], raw[:4]) == u["password_hash"]:
            demo.append(u["name"])
    if demo:
        print(f"  note  DEMO PASSWORDS (password = user name) for: {', '.join(demo)}")


def party_routing_checks(defs):
    """Agency queues are bound by party key only (ICD section 4), and read by their agency only."""
    ex = {e["name"]: e for e in defs["exchanges"]}
    a = ex.get("agency.decisions", {})
    check(a.get("type") == "topic" and a.get("internal") is True and a.get("durable")
          and a.get("arguments") == {"alternate-exchange": "handoff.unrouted"},
          "exchange agency.decisions: topic, internal, alternate exchange handoff.unrouted")
    bindings = [(b["source"], b["destination_type"], b["destination"], b["routing_key"]) for b in defs["bindings"]]
    queues = {x["name"] for x in defs["queues"]}
    names = agencies(defs)
    agency_queues = [f"agency.{n}" for n in names]
    users = {u["name"] for u in defs["users"]}
    check(set(KNOWN_AGENCIES) <= set(names) and set(names) <= users
          and all(n in ("bop", "ice") or JURISDICTION_ID.fullmatch(n) for n in names),
          f"agency queues {agency_queues}, each named after its agency's user")
    for b in bindings:
        src, kind, dst, key = b
        if kind == "queue" and dst.startswith("agency."):
            check(src == "agency.decisions" and is_party_key(key),
                  f"{dst} <- {src} {key!r}: from agency.decisions, by a party key")
    for qn in agency_queues:
        name = qn[len("agency."):]
        keys = sorted(key for (src, kind, dst, key) in bindings if kind == "queue" and dst == qn)
        srcs = sorted({src for (src, kind, dst, key) in bindings if kind == "queue" and dst == qn})
        check(keys == [party_key(name)] and srcs == ["agency.decisions"],
              f"{qn} is bound exactly to its own party key {party_key(name)!r} on agency.decisions"
              + ("" if keys == [party_key(name)] else f" (it has {keys} from {srcs})"))
    # The decisions' path: handoff.decisions and every exchange it binds to (transitively).
    path, todo = set(), ["handoff.decisions"]
    while todo:
        x = todo.pop()
        if x not in path:
            path.add(x)
            todo += [dst for (src, kind, dst, key) in bindings if src == x and kind == "exchange"]
    check(path == {"handoff.decisions", "agency.decisions"},
          f"decisions flow through {sorted(path)} only")
    allowed = {("handoff.decisions", "queue", "handoff.audit", "#"),
               ("handoff.decisions", "exchange", "agency.decisions", "#")}
    allowed |= {("agency.decisions", "queue", f"agency.{n}", party_key(n)) for n in names}
    on_path = {b for b in bindings if b[0] in path}
    check(on_path == allowed, "bindings of the decision exchanges: audit #, agency.decisions # "
          "and one party key per agency queue, nothing else"
          + ("" if on_path == allowed else f"; extra {sorted(on_path - allowed)}, missing {sorted(allowed - on_path)}"))
    typed = sorted(b for b in on_path - {("handoff.decisions", "queue", "handoff.audit", "#"),
                                         ("handoff.decisions", "exchange", "agency.decisions", "#")}
                   if b[3].split(".")[0] in DECISION_TYPES or any(topic_match(b[3], k) for _, k, _, _ in DECISIONS))
    check(not typed, "nothing is bound to a decision-type key (only audit's #)"
          + ("" if not typed else f": {typed}"))
    # Reads: an agency user reads its own queue and nothing else of the definitions.
    resources = queues | set(ex)
    perms = {p["user"]: p for p in defs["permissions"] if p["vhost"] == "/"}
    for name in names:
        p = perms.get(name, {})
        readable = sorted(n for n in resources if re.search(p.get("read", "^$"), n))  # as RabbitMQ
        # (A jurisdiction id has no character a regular expression needs escaped.)
        check(p.get("read") == f"^agency\\.{name}$" and readable == [f"agency.{name}"],
              f"user {name} reads {readable} only (read {p.get('read')!r})")
    for name in NON_AGENCY_READERS:
        p = perms.get(name, {})
        readable = sorted(n for n in resources if n.startswith("agency.") and re.search(p.get("read", "^$"), n))
        check(not readable, f"user {name} reads no agency queue or exchange (read {p.get('read')!r})")
    for name in names + NON_AGENCY_READERS:
        p = perms.get(name, {})
        check(p.get("write") == "^handoff\\.events$" and p.get("configure") == "^$",
              f"user {name}: configure ^$, write ^handoff\\.events$ (may bind nothing)")


def journal_checks(defs):
    """The stream journal: the stream, its exchange, no lock queue, and only handoff's access."""
    x = {q["name"]: q for q in defs["queues"]}.get(JOURNAL)
    check(x is not None and x["durable"] and not x["auto_delete"] and x["arguments"] == JOURNAL_ARGUMENTS,
          f"queue {JOURNAL}: a durable stream, arguments {JOURNAL_ARGUMENTS} (no x-max-age, "
          f"no x-max-length-bytes: never truncated)" + ("" if x else ": missing"))
    held = [p["name"] for p in defs["policies"] if re.search(p["pattern"], JOURNAL)]
    check(not held, f"no policy applies to {JOURNAL} (a retention policy would truncate it)"
          + ("" if not held else f": {held}"))
    e = {e["name"]: e for e in defs["exchanges"]}.get(JOURNAL, {})
    check(e.get("type") == "fanout" and e.get("durable") and not e.get("auto_delete")
          and not e.get("internal") and e.get("arguments") == {},
          f"exchange {JOURNAL}: fanout, durable, the journal's only way in")
    bs = {(b["source"], b["destination_type"], b["destination"], b["routing_key"]) for b in defs["bindings"]}
    touching = {b for b in bs if JOURNAL in (b[0], b[2])}
    want = {(JOURNAL, "queue", JOURNAL, "")}
    check(touching == want, f"{JOURNAL} (exchange) feeds {JOURNAL} (stream) and nothing else, and "
          "nothing else feeds the stream" + ("" if touching == want else f": {sorted(touching)}"))
    check(WRITER_LOCK not in {q["name"] for q in defs["queues"]},
          f"no queue {WRITER_LOCK} in the file (the service declares the lock: exclusive, auto-delete)")
    for p in defs["permissions"]:
        if p["user"] == "handoff":
            may = {k: [n for n in (JOURNAL, WRITER_LOCK) if re.search(p[k], n)]
                   for k in ("configure", "write", "read")}
            want = {"configure": [WRITER_LOCK], "write": [JOURNAL, WRITER_LOCK], "read": [JOURNAL, WRITER_LOCK]}
            check(may == want, f"handoff: configure {WRITER_LOCK}, write and read {JOURNAL} and "
                  f"{WRITER_LOCK}, configure not {JOURNAL}" + ("" if may == want else f" (it has {may})"))
        else:
            hits = [(k, n) for k in ("configure", "write", "read") for n in (JOURNAL, WRITER_LOCK)
                    if re.search(p[k], n)]
            check(not hits, f"user {p['user']} has no permission on {JOURNAL} or {WRITER_LOCK}"
                  + ("" if not hits else f": {hits}"))


# --- 2. import a rewritten copy ------------------------------------------------------

def rewrite(defs, vhost, prefix, password):
    d = json.loads(json.dumps(defs))
    d["vhosts"] = [{"name": vhost, "description": "deploy/rabbitmq/check-definitions.py (temporary)"}]
    for u in d["users"]:
        u["name"] = prefix + u["name"]
        u["password_hash"] = rabbit_sha256(password)
    for key in ("permissions", "topic_permissions"):
        for p in d[key]:
            assert p["vhost"] == "/"
            p["vhost"] = vhost
            p["user"] = prefix + p["user"]
    for key in ("queues", "exchanges", "bindings", "policies", "parameters"):
        for x in d.get(key, []):
            assert x["vhost"] == "/"
            x["vhost"] = vhost
    return d


# --- 3. compare what the broker holds -------------------------------------------------

def broker_checks(api, defs, vhost, prefix):
    print(f"3. what the broker holds in vhost {vhost}")
    v = q(vhost)
    got = {e["name"]: e for e in api.get(f"/exchanges/{v}") if not e["name"].startswith("amq.") and e["name"]}
    want = {e["name"]: e for e in defs["exchanges"]}
    check(set(got) == set(want), f"exchanges {sorted(got)}")
    for name, e in want.items():
        g = got.get(name, {})
        check(g.get("type") == e["type"] and g.get("durable") and g.get("arguments") == e["arguments"]
              and g.get("internal") == e["internal"],
              f"exchange {name} ({g.get('type')}, internal {g.get('internal')}, arguments {g.get('arguments')})")
    got = {x["name"]: x for x in api.get(f"/queues/{v}")}
    want = {x["name"]: x for x in defs["queues"]}
    check(set(got) == set(want), f"queues {sorted(got)}")
    for name, x in want.items():
        g = got.get(name, {})
        check(g.get("type") == x["arguments"]["x-queue-type"] and g.get("durable")
              and g.get("arguments") == x["arguments"],
              f"queue {name} ({g.get('type')}, arguments {g.get('arguments')})")
    got = {(b["source"], b["destination"], b["routing_key"]) for b in api.get(f"/bindings/{v}") if b["source"]}
    want = {(b["source"], b["destination"], b["routing_key"]) for b in defs["bindings"]}
    check(got == want, f"{len(got)} bindings, as in the file"
          + ("" if got == want else f"; extra {sorted(got - want)}, missing {sorted(want - got)}"))
    # (The administrator that created the vhost was given permissions on it too: not ours.)
    got = {(p["user"], p["configure"], p["write"], p["read"]) for p in api.get(f"/vhosts/{v}/permissions")
           if p["user"].startswith(prefix)}
    want = {(prefix + p["user"], p["configure"], p["write"], p["read"]) for p in defs["permissions"]}
    check(got == want, f"{len(got)} users' permissions, as in the file")
    got = {(p["user"], p["exchange"], p["write"], p["read"]) for p in api.get(f"/vhosts/{v}/topic-permissions")}
    want = {(prefix + p["user"], p["exchange"], p["write"], p["read"]) for p in defs["topic_permissions"]}
    check(got == want, f"{len(got)} topic permissions, as in the file")
    got = {(p["name"], p["pattern"], p["apply-to"], json.dumps(p["definition"], sort_keys=True))
           for p in api.get(f"/policies/{v}")}
    want = {(p["name"], p["pattern"], p["apply-to"], json.dumps(p["definition"], sort_keys=True))
            for p in defs["policies"]}
    check(got == want, f"policies {sorted(x[0] for x in got)}")
    for p in defs["policies"]:
        for x in defs["queues"]:
            if re.search(p["pattern"], x["name"]):
                # The management API shows a queue's policy with its next stats (every few seconds).
                for _ in range(30):
                    g = api.get(f"/queues/{v}/{q(x['name'])}")
                    if g.get("policy"):
                        break
                    time.sleep(1)
                check(g.get("policy") == p["name"] and g.get("effective_policy_definition") == p["definition"],
                      f"queue {x['name']} runs under policy {g.get('policy')}: "
                      f"{g.get('effective_policy_definition')}")
    for u in defs["users"]:
        g = api.get(f"/users/{q(prefix + u['name'])}")
        tags = g["tags"] if isinstance(g["tags"], list) else [t for t in g["tags"].split(",") if t]
        check(sorted(tags) == sorted(u["tags"]), f"user {u['name']} tags {sorted(tags)}")


# --- 4. AMQP: least privilege ---------------------------------------------------------

class Amqp:
    """One connection per user; each attempt on a fresh channel with publisher confirms, so
    that a refusal (which closes the channel) is seen at once and does not spoil the next."""

    def __init__(self, url, vhost, user, password):
        params = pika.URLParameters(url)
        params.virtual_host = vhost
        params.credentials = pika.PlainCredentials(user, password)
        params.heartbeat = 0
        self.conn = pika.BlockingConnection(params)
        self.user = user

    def attempt(self, fn):
        """Runs fn(channel): returns 'ok', or the broker's reply code when it closed the channel."""
        ch = self.conn.channel()
        ch.confirm_delivery()
        try:
            fn(ch)
        except ChannelClosedByBroker as e:
            return e.reply_code
        except UnroutableError:
            return "unroutable"
        ch.close()
        return "ok"

    def close(self):
        if self.conn.is_open:
            self.conn.close()


def publish(exchange, key, user_id=None, headers=None, mandatory=True, message_id=None):
    props = pika.BasicProperties(user_id=user_id, headers=headers, delivery_mode=2, message_id=message_id,
                                 content_type="application/cloudevents+json")

    def fn(ch):
        ch.basic_publish(exchange, key, b"{}", props, mandatory=mandatory)
    return fn


def declare_queue(name, args=None, exclusive=False):
    return lambda ch: ch.queue_declare(name, durable=not exclusive, exclusive=exclusive,
                                       arguments=args or ({} if exclusive else {"x-queue-type": "quorum"}))


def get(queue):
    return lambda ch: ch.basic_get(queue, auto_ack=True)


def consume(queue):
    """basic.consume (the broker answers consume-ok or closes the channel), then cancel."""
    def fn(ch):
        tag = ch.basic_consume(queue, lambda *_: None)
        ch.basic_cancel(tag)
    return fn


def expect(conn, what, fn, want):
    got = conn.attempt(fn)
    check(got == want, f"{what}: {'allowed' if got == 'ok' else got}"
          + ("" if got == want else f" (expected {'allowed' if want == 'ok' else want})"))


def drain(conn, queue):
    """Takes every message of queue; returns (routing key, headers, user-id, message-id) of each."""
    out = []

    def fn(ch):
        while True:
            method, props, _ = ch.basic_get(queue, auto_ack=True)
            if method is None:
                return
            out.append((method.routing_key, props.headers or {}, props.user_id, props.message_id))
    check(conn.attempt(fn) == "ok", f"{conn.user.split('-', 3)[-1]} reads {queue}")
    return out


def amqp_checks(url, api_url, defs, vhost, prefix, password):
    print(f"4. AMQP least privilege in vhost {vhost} (users {prefix}*)")
    names = agencies(defs)
    u = {n: prefix + n for n in ["handoff", "bop", "ice", "tx-travis-county", "us-district-tx-w", "operator"]
         + [n for n in names if n not in KNOWN_AGENCIES]}
    # A jurisdiction added to the file (add-jurisdiction.py) gets a hold of its own.
    decisions = DECISIONS + [(f"hold-{n}", f"hold.{n}", ["party.ice", f"party.local.{n}"], f"a hold by {n}")
                             for n in names if n not in KNOWN_AGENCIES]
    conns = {}
    try:
        for name, user in u.items():
            conns[name] = Amqp(url, vhost, user, password)
        check(True, "every user logs in (the password hash function is RabbitMQ's)")
        svc, bop, ice, tx, court, op = (conns[n] for n in list(u)[:6])

        print("  -- handoff (the service)")
        def declare_topology(ch):
            for name, (typ, args) in SERVICE_EXCHANGES.items():
                ch.exchange_declare(name, typ, durable=True, arguments=args)
            for name, args in SERVICE_QUEUES.items():
                ch.queue_declare(name, durable=True, arguments=args)
            for src, dst, key in sorted(SERVICE_BINDINGS):
                ch.queue_bind(dst, src, key)
            ch.basic_qos(prefetch_count=1000)
        expect(svc, "handoff declares its whole topology (declare_topology = true)", declare_topology, "ok")
        for mid, key, bcc, _ in decisions:
            expect(svc, f"handoff publishes a decision {mid} ({key}, BCC {bcc})",
                   publish("handoff.decisions", key, headers=None if bcc is None else {"BCC": bcc},
                           message_id=mid), "ok")
        expect(svc, "handoff dead-letters (routing key schema, header x-handoff-reason)",
               publish("handoff.dead-letter", "schema", headers={"x-handoff-reason": "schema"}), "ok")
        expect(svc, "handoff publishes to handoff.events", publish("handoff.events", "hold.expired"), ACCESS_REFUSED)
        expect(svc, "handoff publishes to the default exchange", publish("", "handoff.inbound"), ACCESS_REFUSED)
        expect(svc, "handoff publishes to agency.decisions (internal)", publish("agency.decisions", "party.ice"),
               ACCESS_REFUSED)
        expect(svc, "handoff declares agency.bop", declare_queue("agency.bop"), ACCESS_REFUSED)
        expect(svc, "handoff declares handoff.audit", declare_queue("handoff.audit"), ACCESS_REFUSED)
        expect(svc, "handoff reads handoff.audit", get("handoff.audit"), ACCESS_REFUSED)
        expect(svc, "handoff reads agency.ice", get("agency.ice"), ACCESS_REFUSED)
        expect(svc, "handoff binds agency.ice to agency.decisions #",
               lambda ch: ch.queue_bind("agency.ice", "agency.decisions", "#"), ACCESS_REFUSED)

        print("  -- agencies: write on handoff.events, only their own routing keys")
        cases = [
            (bop, "bop", ["bop.release.scheduled"],
             ["ice.detainer.issued", "jurisdiction.policy.updated", "court.writ.issued",
              "ice.removal.status", "ice.release.factor"]),
            (ice, "ice", ["ice.detainer.issued", "ice.detainer.withdrawn", "ice.first_refusal.response",
                          "ice.custody.assumed", "ice.capacity.updated", "ice.removal.status",
                          "ice.release.factor", "jurisdiction.policy.updated"],
             ["bop.release.scheduled", "local.claim.lodged", "hold.expired", "court.writ.issued"]),
            (tx, "tx-travis-county", ["local.claim.lodged", "local.release.due", "local.detainer.declined",
                                      "hold.expired", "jurisdiction.policy.updated"],
             ["ice.custody.assumed", "bop.release.scheduled", "court.writ.issued",
              "ice.removal.status", "ice.release.factor"]),
            (court, "us-district-tx-w", ["court.writ.issued"],
             ["local.release.due", "ice.detainer.issued", "jurisdiction.policy.updated",
              "ice.removal.status", "ice.release.factor"]),
        ]
        published = []
        for conn, name, allowed, refused in cases:
            for key in allowed:
                expect(conn, f"{name} publishes {key}", publish("handoff.events", key, user_id=u[name]), "ok")
                published.append(key)
            for key in refused:
                expect(conn, f"{name} publishes {key}", publish("handoff.events", key), ACCESS_REFUSED)
            expect(conn, f"{name} publishes straight to handoff.inbound through the default exchange",
                   publish("", "handoff.inbound"), ACCESS_REFUSED)
            expect(conn, f"{name} publishes to amq.topic", publish("amq.topic", allowed[0]), ACCESS_REFUSED)
            expect(conn, f"{name} publishes to handoff.decisions (BCC party.ice)",
                   publish("handoff.decisions", "offer.ice", headers={"BCC": ["party.ice"]}), ACCESS_REFUSED)
            expect(conn, f"{name} declares a queue", declare_queue(f"agency.{name}.extra"), ACCESS_REFUSED)
            expect(conn, f"{name} reads handoff.inbound", get("handoff.inbound"), ACCESS_REFUSED)
        expect(bop, "bop forges user-id ice", publish("handoff.events", "bop.release.scheduled", user_id=u["ice"]),
               PRECONDITION_FAILED)
        expect(tx, "tx-travis-county reads handoff.audit", get("handoff.audit"), ACCESS_REFUSED)

        print("  -- operator (impersonator, monitoring)")
        expect(op, "operator publishes bop.release.scheduled as user-id bop (impersonator)",
               publish("handoff.events", "bop.release.scheduled", user_id=u["bop"],
                       headers={"x-check": "impersonated"}), "ok")
        published.append("bop.release.scheduled")
        expect(op, "operator publishes to handoff.decisions", publish("handoff.decisions", "offer.ice"), ACCESS_REFUSED)
        expect(op, "operator declares a queue", declare_queue("operator.scratch"), ACCESS_REFUSED)
        expect(op, "operator reads handoff.inbound", get("handoff.inbound"), ACCESS_REFUSED)

        print("  -- routing: each decision once to each agency queue its BCC names (party keys)")
        time.sleep(0.5)
        got = drain(svc, "handoff.inbound")
        check(sorted(k for k, _, _, _ in got) == sorted(published),
              f"handoff.inbound received the {len(published)} allowed events, nothing else")
        check([uid for _, h, uid, _ in got if h.get("x-check") == "impersonated"] == [u["bop"]],
              "the impersonated event arrived with user-id bop")
        # The management API as operator (monitoring tag + read on handoff.audit), as in the
        # README's demo: list the queues, peek at the audit queue without consuming it.
        p = urllib.parse.urlsplit(api_url)
        op_api = Api(urllib.parse.urlunsplit((p.scheme, f"{q(u['operator'])}:{q(password)}@{p.hostname}"
                                              + (f":{p.port}" if p.port else ""), p.path, "", "")))
        depth = {x["name"]: x for x in op_api.get(f"/queues/{q(vhost)}")}
        check(set(depth) >= {"handoff.audit", "agency.bop"}, "operator lists the queues through the management API")
        peek = op_api.call("POST", f"/queues/{q(vhost)}/handoff.audit/get",
                           {"count": 5, "ackmode": "ack_requeue_true", "encoding": "auto"})
        check(len(peek) == 5, "operator peeks at 5 decisions of handoff.audit through the management API")
        key_of = {mid: key for mid, key, _, _ in decisions}
        delivered = []  # every decision delivered anywhere, to check BCC is gone from all

        def received(queue, what, msgs, want):
            delivered.extend(msgs)
            ids = sorted(mid for _, _, _, mid in msgs)
            check(ids == sorted(want), f"{queue} {what}: {ids}"
                  + ("" if ids == sorted(want) else f" (expected {sorted(want)})"))
            wrong = [(mid, k) for k, _, _, mid in msgs if key_of.get(mid) != k]
            check(not wrong, f"{queue}: each delivered with its decision's routing key"
                  + ("" if not wrong else f"; wrong: {wrong}"))

        received("handoff.audit", "(#) received every decision once", drain(op, "handoff.audit"),
                 [mid for mid, _, _, _ in decisions])
        for name in names:
            want = [mid for mid, _, bcc, _ in decisions if any(names_party(name, k) for k in bcc or [])]
            received(f"agency.{name}", f"({party_key(name)}) received once each decision whose BCC names it",
                     drain(conns[name], f"agency.{name}"), want)
        nowhere = [mid for mid, _, bcc, _ in decisions
                   if not any(names_party(n, k) for n in names for k in bcc or [])]
        received("handoff.unrouted", "received only the decisions no agency queue took",
                 drain(op, "handoff.unrouted"), nowhere)
        check("hold-new-county" in nowhere and "transfer-williamson-to-travis" not in nowhere,
              "(a decision for a jurisdiction without a queue is unrouted, unless another party's queue took it)")
        bcc = [mid for _, h, _, mid in delivered if "BCC" in h]
        check(not bcc, f"no delivered decision carries a BCC header (RabbitMQ removed it from all "
              f"{len(delivered)} deliveries)" + ("" if not bcc else f"; it is still on {bcc}"))
        dead = drain(op, "handoff.dead-letter")
        check([(k, h.get("x-handoff-reason")) for k, h, _, _ in dead] == [("schema", "schema")],
              "handoff.dead-letter received the dead-lettered message with its reason header")

        # The queue's own dead-lettering (x-dead-letter-exchange): a rejected delivery.
        expect(bop, "bop publishes one more bop.release.scheduled",
               publish("handoff.events", "bop.release.scheduled"), "ok")

        def reject(ch):
            method, _, _ = ch.basic_get("handoff.inbound")
            ch.basic_reject(method.delivery_tag, requeue=False)
        expect(svc, "handoff rejects it without requeue", reject, "ok")
        time.sleep(0.5)
        dead = drain(op, "handoff.dead-letter")
        check([k for k, _, _, _ in dead] == ["bop.release.scheduled"],
              "the rejected delivery was dead-lettered by handoff.inbound to handoff.dead-letter")

        print("  -- reads: each agency reads (get, consume) its own queue only, and nobody binds")
        for user in names + NON_AGENCY_READERS:
            conn = conns[user]
            for name in names:
                queue = f"agency.{name}"
                want = "ok" if user == name else ACCESS_REFUSED
                expect(conn, f"{user} basic.get {queue}", get(queue), want)
                expect(conn, f"{user} basic.consume {queue}", consume(queue), want)
                for key in ["#", party_key(user if user in names else name)]:
                    expect(conn, f"{user} binds {queue} to agency.decisions {key}",
                           lambda ch, queue=queue, key=key: ch.queue_bind(queue, "agency.decisions", key),
                           ACCESS_REFUSED)
            own = f"agency.{user}" if user in names else "agency.ice"
            expect(conn, f"{user} binds {own} to handoff.decisions #",
                   lambda ch: ch.queue_bind(own, "handoff.decisions", "#"), ACCESS_REFUSED)
            expect(conn, f"{user} unbinds {own} from agency.decisions",
                   lambda ch: ch.queue_unbind(own, "agency.decisions", party_key(own[len("agency."):])),
                   ACCESS_REFUSED)
            expect(conn, f"{user} deletes {own}", lambda ch: ch.queue_delete(own), ACCESS_REFUSED)
            expect(conn, f"{user} binds exchange agency.decisions to handoff.decisions #",
                   lambda ch: ch.exchange_bind("agency.decisions", "handoff.decisions", "#"), ACCESS_REFUSED)
            expect(conn, f"{user} binds exchange handoff.events to amq.topic #",
                   lambda ch: ch.exchange_bind("handoff.events", "amq.topic", "#"), ACCESS_REFUSED)
            expect(conn, f"{user} declares a new queue {own}.mine", declare_queue(f"{own}.mine"), ACCESS_REFUSED)
            expect(conn, f"{user} declares a server-named exclusive queue", declare_queue("", exclusive=True),
                   ACCESS_REFUSED)
        left = {(b["source"], b["destination"], b["routing_key"]) for b in Api(api_url).get(f"/bindings/{q(vhost)}")
                if b["source"]}
        want = {(b["source"], b["destination"], b["routing_key"]) for b in defs["bindings"]}
        check(left == want, "the bindings are still exactly the file's after the refused attempts"
              + ("" if left == want else f"; extra {sorted(left - want)}, missing {sorted(want - left)}"))
        journal_amqp_checks(url, vhost, prefix + "handoff", password, conns, names + NON_AGENCY_READERS)
    finally:
        for c in conns.values():
            try:
                c.close()
            except Exception:
                pass


def read_stream(queue, out, count, timeout=10):
    """Consumes a stream from its first entry (a per-consumer prefetch, manual acks: a
    stream refuses anything else) until `count` entries are in `out`. Never cancels: pika's
    cancel() rejects what is pending, and a reject closes the connection of a stream's
    consumer; closing the channel (attempt() does) ends the consumer cleanly."""
    def fn(ch):
        ch.basic_qos(prefetch_count=max(count, 1))

        def on_message(ch, method, props, body):
            out.append(body)
            ch.basic_ack(method.delivery_tag)
        ch.basic_consume(queue, on_message, arguments={"x-stream-offset": "first"})
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            ch.connection.process_data_events(time_limit=0.2)
    return fn


def take_lock():
    """Declares the writer lock as the service does: exclusive (to the connection) and
    auto-delete, so that it disappears with the connection that holds it."""
    return lambda ch: ch.queue_declare(WRITER_LOCK, durable=False, exclusive=True, auto_delete=True)


def journal_amqp_checks(url, vhost, service_user, password, conns, others):
    print(f"  -- the stream journal ({JOURNAL}) and the writer lock ({WRITER_LOCK})")
    svc = conns["handoff"]
    entry = b'{"check":"journal entry"}'
    expect(svc, f"handoff appends an entry to the journal through the exchange {JOURNAL}",
           lambda ch: ch.basic_publish(JOURNAL, "", entry, pika.BasicProperties(delivery_mode=2),
                                       mandatory=True), "ok")
    expect(svc, f"handoff publishes to {JOURNAL} through the default exchange", publish("", JOURNAL),
           ACCESS_REFUSED)
    got = []
    expect(svc, f"handoff reads {JOURNAL} from its first entry", read_stream(JOURNAL, got, 1), "ok")
    check(got == [entry], f"the entry read back is the entry appended ({got})")
    expect(svc, f"handoff declares {JOURNAL} passively (needs no permission)",
           lambda ch: ch.queue_declare(JOURNAL, passive=True), "ok")
    expect(svc, f"handoff (re)declares {JOURNAL} (the definitions' alone)",
           lambda ch: ch.queue_declare(JOURNAL, durable=True, arguments=JOURNAL_ARGUMENTS), ACCESS_REFUSED)
    holder = Amqp(url, vhost, service_user, password)
    try:
        expect(holder, f"handoff takes the writer lock (exclusive, auto-delete {WRITER_LOCK})", take_lock(), "ok")
        expect(svc, f"a second handoff connection takes {WRITER_LOCK} while it is held", take_lock(),
               RESOURCE_LOCKED)
    finally:
        holder.close()
    deadline = time.monotonic() + 5
    while (result := svc.attempt(take_lock())) != "ok" and time.monotonic() < deadline:
        time.sleep(0.1)
    check(result == "ok", f"the second connection takes {WRITER_LOCK} once the holder's connection closed"
          f" ({'allowed' if result == 'ok' else result})")
    for user in others:
        conn = conns[user]
        expect(conn, f"{user} publishes to {JOURNAL}", publish(JOURNAL, ""), ACCESS_REFUSED)
        expect(conn, f"{user} reads {JOURNAL}", read_stream(JOURNAL, [], 1), ACCESS_REFUSED)
        expect(conn, f"{user} takes the writer lock {WRITER_LOCK}", take_lock(), ACCESS_REFUSED)


def fresh_checks(api, url, defs, vhost, prefix, password):
    """The service's permissions suffice to create its topology where none exists (a broker
    without the definitions, declare_topology = true): creating an exchange with an
    alternate exchange, or a queue with a dead-letter exchange, needs more than redeclaring."""
    print(f"5. handoff creates its topology in an empty vhost {vhost}")
    d = rewrite(defs, vhost, prefix, password)
    d["users"] = [u for u in d["users"] if u["name"] == prefix + "handoff"]
    d["permissions"] = [p for p in d["permissions"] if p["user"] == prefix + "handoff"]
    for key in ("topic_permissions", "queues", "exchanges", "bindings", "policies", "parameters"):
        d[key] = []
    api.call("POST", "/definitions", d)
    svc = Amqp(url, vhost, prefix + "handoff", password)
    try:
        for name, (typ, args) in SERVICE_EXCHANGES.items():
            expect(svc, f"handoff creates exchange {name}",
                   lambda ch: ch.exchange_declare(name, typ, durable=True, arguments=args), "ok")
        for name, args in SERVICE_QUEUES.items():
            expect(svc, f"handoff creates queue {name}",
                   lambda ch: ch.queue_declare(name, durable=True, arguments=args), "ok")

        def bind(ch):
            for src, dst, key in sorted(SERVICE_BINDINGS):
                ch.queue_bind(dst, src, key)
        expect(svc, f"handoff creates its {len(SERVICE_BINDINGS)} bindings", bind, "ok")
        expect(svc, f"handoff creates the stream {JOURNAL} (the definitions' alone)",
               lambda ch: ch.queue_declare(JOURNAL, durable=True, arguments=JOURNAL_ARGUMENTS), ACCESS_REFUSED)
    finally:
        svc.close()


# --- 6. clean up ----------------------------------------------------------------------

def cleanup(api, vhosts, users):
    print("6. clean up")
    for vhost in vhosts:
        assert vhost != "/" and vhost.startswith("deploy-check-")
        api.call("DELETE", f"/vhosts/{q(vhost)}", ok=(204, 404))
    for user in users:
        assert user.startswith("deploy-check-")
        api.call("DELETE", f"/users/{q(user)}", ok=(204, 404))
    left_v = [v["name"] for v in api.get("/vhosts") if v["name"] in vhosts]
    left_u = [x["name"] for x in api.get("/users") if x["name"] in users]
    check(not left_v and not left_u, f"vhosts {', '.join(vhosts)} and {len(users)} users deleted"
          + (f"; LEFT: {left_v + left_u}" if left_v or left_u else ""))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--api", default="http://guest:guest@127.0.0.1:15672/api",
                    help="management API URL with an administrator's credentials")
    ap.add_argument("--amqp", default="amqp://127.0.0.1:5672", help="AMQP URL (host and port only)")
    ap.add_argument("--definitions", type=Path, default=DEFINITIONS,
                    help="the definitions file to check (default: deploy/rabbitmq/definitions.json)")
    args = ap.parse_args()
    if pika is None:
        sys.exit("check-definitions.py needs pika: python3 -m venv V && V/bin/pip install pika")

    defs = json.loads(args.definitions.read_text())
    static_checks(defs, args.definitions)

    api = Api(args.api)
    pid = os.getpid()
    vhost, fresh = f"deploy-check-{pid}", f"deploy-check-{pid}-empty"
    prefix, fresh_prefix = f"deploy-check-{pid}-", f"deploy-check-{pid}-empty-"
    password = secrets.token_urlsafe(24)
    users = [prefix + u["name"] for u in defs["users"]] + [fresh_prefix + "handoff"]
    existing_v = {v["name"] for v in api.get("/vhosts")}
    existing_u = {u["name"] for u in api.get("/users")}
    if existing_v & {vhost, fresh} or existing_u & set(users):
        sys.exit(f"{vhost} or its users exist already; not touching them")

    try:
        print(f"2. import a copy into vhost {vhost} (POST /api/definitions)")
        api.call("POST", "/definitions", rewrite(defs, vhost, prefix, password))
        check(True, "import accepted")
        broker_checks(api, defs, vhost, prefix)
        amqp_checks(args.amqp, args.api, defs, vhost, prefix, password)
        fresh_checks(api, args.amqp, defs, fresh, fresh_prefix, password)
    except Exception as e:  # report, then clean up
        check(False, f"{type(e).__name__}: {e}")
    finally:
        cleanup(api, [vhost, fresh], users)

    print()
    if FAILURES:
        print(f"{len(FAILURES)} check(s) FAILED:")
        for f in FAILURES:
            print("  -", f)
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
