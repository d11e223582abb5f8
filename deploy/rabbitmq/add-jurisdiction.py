#!/usr/bin/env python3
"""Adds a jurisdiction (a local agency) to the RabbitMQ definitions, and optionally to a broker.

    python3 deploy/rabbitmq/add-jurisdiction.py tx-hays-county
    python3 deploy/rabbitmq/add-jurisdiction.py tx-hays-county --password-stdin < password-file
    python3 deploy/rabbitmq/add-jurisdiction.py tx-hays-county \\
        --api http://admin:PASSWORD@127.0.0.1:15672/api --vhost /
    python3 deploy/rabbitmq/add-jurisdiction.py tx-hays-county --no-file \\
        --api http://admin:PASSWORD@127.0.0.1:15672/api --vhost /

A jurisdiction JURISDICTION_ID gets, exactly like `tx-travis-county`:

- the user JURISDICTION_ID (no tags), its password stored as a rabbit_password_hashing_sha256
  hash, base64(4-byte salt + SHA-256(salt + UTF-8 password));
- permissions on vhost "/": configure ^$ (it declares nothing), write ^handoff\\.events$
  (it publishes events, binds nothing), read ^agency\\.JURISDICTION_ID$ (its queue only);
- a topic permission on exchange handoff.events: write
  ^(local\\..+|hold\\.expired|jurisdiction\\.policy\\.updated)$, read ^$ (the event types a
  jurisdiction may send, ICD section 2);
- the durable quorum queue agency.JURISDICTION_ID;
- the binding agency.decisions -> agency.JURISDICTION_ID with the key
  party.local.JURISDICTION_ID: the service publishes every decision with a BCC header of
  its parties' keys (ICD section 4), so this queue gets exactly the decisions the
  jurisdiction is a party to.

By default only the definitions file is edited (in place, same formatting); then import it
(`rabbitmqctl import_definitions`). With --api the same objects are also created on a
running broker through its management API, in --vhost (the file always says "/"); with
--no-file as well, only on the broker. The password is asked for (twice), or read from
the first line of standard input with --password-stdin; it is never printed or stored in
clear.

The id must be a jurisdiction_id (ICD section 1: 2 to 63 characters, the first [a-z0-9],
then [a-z0-9_-]), may not be `bop`, `ice` or `decisions` (agency.decisions is the
decisions' exchange), and may name no existing user, queue or exchange, in the file or on
the broker: nothing is changed then. Python 3 standard library only.
"""

import argparse
import base64
import getpass
import hashlib
import json
import os
import re
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFINITIONS = HERE / "definitions.json"

# crates/handoff-core/src/model.rs is_jurisdiction_id.
JURISDICTION_ID = re.compile(r"[a-z0-9][a-z0-9_-]{1,62}")
# Names a jurisdiction's queue agency.<id> or user <id> must not take.
RESERVED = {"bop": "agency.bop is BOP's queue", "ice": "agency.ice is ICE's queue",
            "decisions": "agency.decisions is the exchange of the agencies' decisions"}
FILE_VHOST = "/"


def die(msg):
    print(f"add-jurisdiction.py: {msg}", file=sys.stderr)
    sys.exit(2)


def literal(text):
    """A regular expression matching text literally. A jurisdiction id needs no escape:
    `-` is literal outside a character class, as in ^agency\\.tx-travis-county$."""
    return re.sub(r"([.^$*+?()\[\]{}|\\])", r"\\\1", text)


def rabbit_sha256(password, salt=None):
    """rabbit_password_hashing_sha256: base64(salt(4) + sha256(salt + utf8 password))."""
    salt = os.urandom(4) if salt is None else salt
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode("utf-8")).digest()).decode()


def objects(jid, password_hash, vhost):
    """What a jurisdiction is, in the shapes of definitions.json (tx-travis-county's)."""
    queue = f"agency.{jid}"
    return {
        "user": {
            "name": jid,
            "password_hash": password_hash,
            "hashing_algorithm": "rabbit_password_hashing_sha256",
            "tags": [],
            "limits": {},
        },
        "permission": {
            "user": jid,
            "vhost": vhost,
            "configure": "^$",
            "write": "^handoff\\.events$",
            "read": f"^{literal(queue)}$",
        },
        "topic_permission": {
            "user": jid,
            "vhost": vhost,
            "exchange": "handoff.events",
            "write": "^(local\\..+|hold\\.expired|jurisdiction\\.policy\\.updated)$",
            "read": "^$",
        },
        "queue": {
            "name": queue,
            "vhost": vhost,
            "durable": True,
            "auto_delete": False,
            "arguments": {"x-queue-type": "quorum"},
        },
        "binding": {
            "source": "agency.decisions",
            "vhost": vhost,
            "destination": queue,
            "destination_type": "queue",
            "routing_key": f"party.local.{jid}",
            "arguments": {},
        },
    }


# --- the definitions file -----------------------------------------------------------

def check_file(defs, jid, path):
    """Refuses an id that collides with the file's names, or a file that is not ours."""
    for key in ("users", "permissions", "topic_permissions", "queues", "exchanges", "bindings"):
        if not isinstance(defs.get(key), list):
            die(f"{path} has no list {key!r}: not a RabbitMQ definitions file")
    exchanges = {x["name"] for x in defs["exchanges"]}
    for x in ("agency.decisions", "handoff.events"):
        if x not in exchanges:
            die(f"{path} has no exchange {x}: not handoff's definitions")
    queue = f"agency.{jid}"
    if jid in {u["name"] for u in defs["users"]}:
        die(f"{path} already has a user {jid!r}; nothing changed")
    if queue in {x["name"] for x in defs["queues"]} | exchanges:
        die(f"{path} already has a queue or exchange {queue!r}; nothing changed")
    for key in ("permissions", "topic_permissions"):
        if any(p["user"] == jid for p in defs[key]):
            die(f"{path} already has {key.replace('_', ' ')} of {jid!r}; nothing changed")
    if any(b["destination"] == queue for b in defs["bindings"]):
        die(f"{path} already has a binding to {queue!r}; nothing changed")


def jurisdictions(defs):
    """The file's jurisdictions: users with a queue agency.<user>, BOP and ICE aside."""
    queues = {x["name"] for x in defs["queues"]}
    return {u["name"] for u in defs["users"]
            if u["name"] not in RESERVED and f"agency.{u['name']}" in queues}


def insert(items, new, is_jurisdictions):
    """Puts new after the last jurisdiction entry of a list (so they stay together), or last."""
    at = max((i + 1 for i, x in enumerate(items) if is_jurisdictions(x)), default=len(items))
    items.insert(at, new)


def add_to_file(path, defs, obj):
    js = jurisdictions(defs)
    insert(defs["users"], obj["user"], lambda u: u["name"] in js)
    insert(defs["permissions"], obj["permission"], lambda p: p["user"] in js)
    insert(defs["topic_permissions"], obj["topic_permission"], lambda p: p["user"] in js)
    insert(defs["queues"], obj["queue"], lambda x: x["name"] in {f"agency.{j}" for j in js})
    insert(defs["bindings"], obj["binding"],
           lambda b: b["source"] == "agency.decisions" and b["destination"] in {f"agency.{j}" for j in js})
    text = json.dumps(defs, indent=2, ensure_ascii=False) + "\n"
    # Written next to the file, then renamed over it: never a half-written definitions file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


# --- the management API --------------------------------------------------------------

class Api:
    def __init__(self, url):
        p = urllib.parse.urlsplit(url)
        if p.scheme not in ("http", "https") or not p.hostname:
            die(f"--api {url!r} is not an http(s) URL of the management API")
        self.base = urllib.parse.urlunsplit((p.scheme, p.hostname + (f":{p.port}" if p.port else ""),
                                             p.path.rstrip("/") or "/api", "", ""))
        user = urllib.parse.unquote(p.username or "guest")
        password = urllib.parse.unquote(p.password or "guest")
        self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def call(self, method, path, body=None, ok=(200, 201, 204)):
        """Returns (status, parsed body); dies on any status not in ok."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", self.auth)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                text, status = resp.read().decode(), resp.status
        except urllib.error.HTTPError as e:
            text, status = e.read().decode(errors="replace"), e.code
        except (urllib.error.URLError, OSError) as e:
            die(f"{method} {self.base}{path}: {e}")
        if status not in ok:
            die(f"{method} {self.base}{path}: HTTP {status}: {text[:500]}")
        return status, (json.loads(text) if text.strip() else None)


def q(name):
    return urllib.parse.quote(name, safe="")


def check_broker(api, jid, vhost):
    v, queue = q(vhost), f"agency.{jid}"
    status, _ = api.call("GET", f"/vhosts/{v}", ok=(200, 404))
    if status == 404:
        die(f"the broker has no vhost {vhost!r}")
    status, _ = api.call("GET", f"/exchanges/{v}/agency.decisions", ok=(200, 404))
    if status == 404:
        die(f"vhost {vhost!r} has no exchange agency.decisions: import the definitions first")
    status, _ = api.call("GET", f"/users/{q(jid)}", ok=(200, 404))
    if status == 200:
        die(f"the broker already has a user {jid!r} (users are global, in every vhost); nothing changed")
    for kind in ("queues", "exchanges"):
        status, _ = api.call("GET", f"/{kind}/{v}/{q(queue)}", ok=(200, 404))
        if status == 200:
            die(f"vhost {vhost!r} already has {kind[:-1]} {queue!r}; nothing changed")


def apply(api, obj, vhost):
    jid, v = obj["user"]["name"], q(vhost)
    u, p, t, x, b = (obj[k] for k in ("user", "permission", "topic_permission", "queue", "binding"))
    steps = [
        ("PUT", f"/users/{q(jid)}", {"password_hash": u["password_hash"],
                                     "hashing_algorithm": u["hashing_algorithm"], "tags": ""}),
        ("PUT", f"/permissions/{v}/{q(jid)}", {k: p[k] for k in ("configure", "write", "read")}),
        ("PUT", f"/topic-permissions/{v}/{q(jid)}", {k: t[k] for k in ("exchange", "write", "read")}),
        ("PUT", f"/queues/{v}/{q(x['name'])}", {k: x[k] for k in ("durable", "auto_delete", "arguments")}),
        ("POST", f"/bindings/{v}/e/{q(b['source'])}/q/{q(b['destination'])}",
         {"routing_key": b["routing_key"], "arguments": b["arguments"]}),
    ]
    for method, path, body in steps:
        api.call(method, path, body)
        print(f"  {method} {api.base}{path}")


# --- main ----------------------------------------------------------------------------

def read_password(from_stdin, jid):
    if from_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        password = password[:-1] if password.endswith("\r") else password
    else:
        password = getpass.getpass(f"password for {jid}: ")
        if getpass.getpass(f"password for {jid} again: ") != password:
            die("the passwords differ; nothing changed")
    if not password:
        die("empty password; nothing changed")
    return password


def main():
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("jurisdiction_id", metavar="JURISDICTION_ID",
                    help="the jurisdiction's id (e.g. tx-hays-county): its user name, queue agency.<id> "
                         "and party key party.local.<id>")
    ap.add_argument("--definitions", type=Path, default=DEFINITIONS, metavar="FILE",
                    help="the definitions file to edit in place (default: deploy/rabbitmq/definitions.json)")
    ap.add_argument("--password-stdin", action="store_true",
                    help="read the user's password from the first line of standard input instead of asking")
    ap.add_argument("--api", metavar="URL",
                    help="also create the objects on a running broker: its management API with an "
                         "administrator's credentials, e.g. http://admin:PASSWORD@127.0.0.1:15672/api")
    ap.add_argument("--vhost", default="/", help='the broker vhost for --api (default "/")')
    ap.add_argument("--no-file", action="store_true",
                    help="do not edit the definitions file (only with --api: apply to the broker only)")
    args = ap.parse_args()

    jid = args.jurisdiction_id
    if not JURISDICTION_ID.fullmatch(jid):
        die(f"{jid!r} is not a jurisdiction_id: 2 to 63 characters, the first a-z or 0-9, "
            "the others a-z, 0-9, _ or -; nothing changed")
    if jid in RESERVED:
        die(f"{jid!r} is reserved: {RESERVED[jid]}; nothing changed")
    if args.no_file and not args.api:
        die("--no-file without --api would change nothing")

    # Every check before any change: the file, then the broker.
    defs = None
    if not args.no_file:
        try:
            defs = json.loads(args.definitions.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            die(f"cannot read {args.definitions}: {e}")
        check_file(defs, jid, args.definitions)
    api = Api(args.api) if args.api else None
    if api:
        check_broker(api, jid, args.vhost)

    password_hash = rabbit_sha256(read_password(args.password_stdin, jid))
    if defs is not None:
        add_to_file(args.definitions, defs, objects(jid, password_hash, FILE_VHOST))
        print(f"Added jurisdiction {jid} to {args.definitions}: user {jid}, its permissions on vhost \"/\" "
              f"and topic permission on handoff.events, queue agency.{jid}, bound to agency.decisions "
              f"with party.local.{jid}.")
    if api:
        print(f"Creating jurisdiction {jid} in vhost {args.vhost!r} of {api.base}:")
        apply(api, objects(jid, password_hash, args.vhost), args.vhost)
        print("Done.")

    print("\nNext steps:")
    n = 1
    if not api:
        print(f"  {n}. Load the definitions into RabbitMQ (this also resets every user's password to the file's "
              "hash):\n"
              f"       rabbitmqctl import_definitions {args.definitions}")
        n += 1
    print(f"  {n}. Let the user publish as its jurisdiction: add this line to [publishers] in "
          "deploy/handoff.toml (or HANDOFF_PUBLISHERS), then restart handoff serve:\n"
          f'       {jid} = "jurisdiction:{jid}"')
    n += 1
    print(f"  {n}. Give the jurisdiction its password: it consumes agency.{jid} and publishes events to "
          f"handoff.events with user-id {jid}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
