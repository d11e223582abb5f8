#!/usr/bin/env python3
"""A second, independent validator for handoff's JSON Schemas, with format checking OFF.

    python3 tools/contract/validate_examples.py     (jsonschema from requirements.txt)

handoff validates with the Rust jsonschema crate, format assertions on. Many validators
treat `format` as an annotation only by default, so the schemas must also hold by their
patterns alone; this runs Python's jsonschema (draft 2020-12, no format checker) over:

- schemas/examples/valid/<type>.jsonl: every line must pass the schema of <type>;
- schemas/examples/invalid/<type>.jsonl: every line ({"expect": {"path", "keyword"},
  "message"}) must fail, with an error at the expected path (the keyword may differ: with
  formats off, a pattern stands in for a format);
- samples/*.jsonl: the sample logs and the decisions they replay to, each line by its
  own type.

An example file maps to its schema as in tests/schema_examples.rs: the schema of <type> is
events/, decisions/ or journal/<type>.json, whichever exists.

(Not ajv: ajv 8 wrongly reports properties a sibling `$ref` evaluated as unevaluated when
an `if`'s `then` branch is taken, ajv-validator/ajv#2559, and rejects valid
handoff.placement decisions.)
"""

import json
import sys
from pathlib import Path

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas"
# The `$id` prefix of every schema (src/edge/schemas.rs, BASE_URI): the schemas are
# registered under their `$id`s, so cross-file `$ref`s resolve here and nothing is fetched.
BASE_URI = "https://handoff.invalid/schemas/"
KINDS = ("events", "decisions", "journal")

failures = 0


def fail(message: str) -> None:
    global failures
    failures += 1
    print(f"validate-examples: {message}", file=sys.stderr)


def load_registry() -> Registry:
    paths = ["defs.json", "envelope.json"] + [
        f"{kind}/{p.name}" for kind in KINDS for p in sorted((SCHEMAS / kind).glob("*.json"))
    ]
    resources = []
    for path in paths:
        doc = json.loads((SCHEMAS / path).read_text())
        if doc.get("$id") != BASE_URI + path:
            fail(f"schemas/{path}: $id is {doc.get('$id')!r}, want {BASE_URI + path!r}")
        resources.append((BASE_URI + path, Resource.from_contents(doc)))
    return Registry().with_resources(resources)


REGISTRY = load_registry()
VALIDATORS: dict = {}


def validator_of(ty):
    """The validator of a message type (format checking off), or None if no schema is named after it."""
    if ty not in VALIDATORS:
        VALIDATORS[ty] = None
        for kind in KINDS:
            if isinstance(ty, str) and (SCHEMAS / kind / f"{ty}.json").is_file():
                schema = {"$ref": f"{BASE_URI}{kind}/{ty}.json"}
                VALIDATORS[ty] = Draft202012Validator(schema, registry=REGISTRY)
                break
    return VALIDATORS[ty]


def read_lines(path: Path):
    """The non-blank lines of a JSON-lines file, each with its 1-based number, parsed."""
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                yield n, json.loads(line)
            except json.JSONDecodeError as e:
                fail(f"{path.relative_to(ROOT)}:{n}: not JSON: {e}")


def pointer(error) -> str:
    return "".join(f"/{p}" for p in error.absolute_path)


def describe(errors) -> str:
    return "; ".join(f"{pointer(e) or '/'} {e.validator}: {e.message[:200]}" for e in errors)


def all_pass(path: Path, type_of) -> int:
    count = 0
    for n, msg in read_lines(path):
        count += 1
        at = f"{path.relative_to(ROOT)}:{n}"
        ty = type_of(msg)
        validator = validator_of(ty)
        if validator is None:
            fail(f"{at}: no schema for type {ty!r}")
            continue
        errors = list(validator.iter_errors(msg))
        if errors:
            fail(f"{at}: rejected as {ty}: {describe(errors)}")
    return count


def main() -> int:
    examples = SCHEMAS / "examples"
    valid = 0
    for path in sorted((examples / "valid").glob("*.jsonl")):
        ty = path.name.removesuffix(".jsonl")
        valid += all_pass(path, lambda _msg, ty=ty: ty)

    invalid = 0
    for path in sorted((examples / "invalid").glob("*.jsonl")):
        ty = path.name.removesuffix(".jsonl")
        validator = validator_of(ty)
        for n, example in read_lines(path):
            invalid += 1
            at = f"{path.relative_to(ROOT)}:{n}"
            if validator is None:
                fail(f"{at}: no schema for type {ty!r}")
                continue
            want = example.get("expect", {})
            errors = list(validator.iter_errors(example.get("message")))
            if not errors:
                fail(f"{at}: accepted, want {want.get('keyword')} at {want.get('path')!r}")
            elif not any(_at_path(e, want.get("path")) for e in errors):
                fail(f"{at}: rejected, but not at {want.get('path')!r}: {describe(errors)}")

    samples = 0
    for path in sorted((ROOT / "samples").glob("*.jsonl")):
        samples += all_pass(path, lambda msg: msg.get("type") if isinstance(msg, dict) else None)

    print(
        f"validate-examples: python-jsonschema {_version()} (draft 2020-12, formats off): "
        f"{valid} valid and {invalid} invalid examples, {samples} sample lines, "
        f"{failures} failures"
    )
    return 0 if failures == 0 else 1


def _at_path(error, path) -> bool:
    """Whether the error, or one of the errors under an anyOf/oneOf, is at `path`."""
    if pointer(error) == path:
        return True
    # A `false` schema (a field that must be absent) is reported at the object holding the
    # field, not at the field itself.
    if error.validator is None and path is not None and path.rsplit("/", 1)[0] == pointer(error):
        return True
    return any(_at_path(e, path) for e in error.context or ())


def _version() -> str:
    from importlib.metadata import version

    return version("jsonschema")


if __name__ == "__main__":
    sys.exit(main())
