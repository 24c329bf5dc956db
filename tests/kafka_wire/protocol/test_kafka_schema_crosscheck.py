"""Our dense schema lines vs Apache Kafka's JSON message definitions, read from the
kafka-clients jar of the Kafka release the interop suite runs (tests/kafka_wire/protocol/
kafka_spec.py; missing jars fail these tests).

For every message and every version we support, the fields present on the wire must match the
JSON field by field: name, type, array-ness, nullability at that version, tag, explicit default.
Every API the registry offers has its schemas here, so every offered version is checked.
"""

from __future__ import annotations

from typing import Any

import pytest
from kafka_spec import message_specs
from pyggy.kafka_wire.protocol.schemas import ANY, Field, Message, messages
from pyggy.kafka_wire.registry import REGISTRY

_JSON_TYPES = {
    "int8": "i8", "int16": "i16", "int32": "i32", "int64": "i64", "uint16": "u16",
    "uint32": "u32", "float64": "f64", "bool": "bool", "string": "str", "bytes": "bytes",
    "records": "records", "uuid": "uuid",
}  # fmt: skip


def _versions(text: str | None) -> tuple[int, int] | None:
    if text is None or text == "none":
        return None
    if text.endswith("+"):
        return int(text[:-1]), ANY
    lo, _, hi = text.partition("-")
    return int(lo), int(hi or lo)


def _in(rng: tuple[int, int] | None, v: int) -> bool:
    return rng is not None and rng[0] <= v <= rng[1]


def _json_default(f: dict[str, Any], typ: str) -> Any:
    """The JSON's explicit non-trivial default, normalised (None if it is the zero value)."""
    d = f.get("default")
    if d is None or d in ("null", "", 0, "0", False, "false"):
        return None
    if typ == "bool":
        return d in (True, "true")
    return int(d, 0) if isinstance(d, str) else d


def _json_rows(fields: list[dict], v: int, flexible: bool, path: str = "",
               common: dict[str, list[dict]] | None = None) -> list[tuple]:
    """The wire fields at version `v`; `common` holds the spec's commonStructs by type name."""
    rows = []
    for f in fields:
        if not _in(_versions(f["versions"]), v):
            continue
        tag = f.get("tag")
        if tag is not None and not (flexible and _in(_versions(f.get("taggedVersions")), v)):
            continue
        t = f["type"]
        array = t.startswith("[]")
        base = t[2:] if array else t
        typ = _JSON_TYPES.get(base, "struct")
        nullable = _in(_versions(f.get("nullableVersions")), v)
        name = path + f["name"]
        rows.append((name, typ, array, nullable, tag, _json_default(f, typ)))
        if typ == "struct":
            sub = f.get("fields") or (common or {}).get(base, [])
            rows += _json_rows(sub, v, flexible, name + ".", common)
    return rows


def _our_rows(fields: tuple[Field, ...], v: int, flexible: bool, path: str = "") -> list[tuple]:
    rows = []
    for f in fields:
        if not f.present(v) or (f.tag is not None and not flexible):
            continue
        dflt = f.explicit_default if f.explicit_default not in (0, False) else None
        name = path + f.kafka_name
        rows.append((name, f.type, f.array, f.nullable_at(v), f.tag, dflt))
        if f.type == "struct":
            rows += _our_rows(f.fields, v, flexible, name + ".")
    return rows


MESSAGES = sorted(messages().values(), key=lambda m: m.name)


@pytest.mark.parametrize("msg", MESSAGES, ids=lambda m: m.name)
def test_fields_match_kafka_json(msg: Message) -> None:
    js = message_specs()[msg.name]
    assert js.get("apiKey") == msg.api_key
    assert _versions(js["flexibleVersions"]) == (
        None if msg.flexible is None else (msg.flexible, ANY)
    )
    valid = _versions(js["validVersions"])
    assert valid is not None and msg.versions[1] <= valid[1]
    common = {c["name"]: c["fields"] for c in js.get("commonStructs", [])}
    for v in range(msg.versions[0], msg.versions[1] + 1):
        flexible = msg.is_flexible(v)
        theirs = _json_rows(js["fields"], v, flexible, "", common)
        assert _our_rows(msg.fields, v, flexible) == theirs, f"{msg.name} v{v}"


def test_every_offered_version_is_checked_against_kafka() -> None:
    """Each registry row has request and response schemas (so the test above checked every
    version it offers) within the versions Kafka defines for that API key."""
    specs = message_specs()
    for key, api in REGISTRY.items():
        for kind in ("Request", "Response"):
            ours = messages()[api.name + kind]
            assert (ours.api_key, ours.versions) == (key, (api.min_version, api.max_version))
            valid = _versions(specs[api.name + kind]["validVersions"])
            # Kafka 4 dropped some old versions (KIP-896) that pyggy still offers to old clients;
            # their fields are still described by the JSON's field version ranges.
            assert valid is not None and api.min_version <= api.max_version <= valid[1]
