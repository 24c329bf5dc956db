"""Our dense schema lines vs Apache Kafka's JSON message definitions (shipped by kafka-python).

For every message and every version we support, the fields present on the wire must match the
JSON field by field: name, type, array-ness, nullability at that version, tag, explicit default.
"""

from __future__ import annotations

from typing import Any

import pytest
from pyggy.kafka_wire.protocol.schemas import ANY, Field, Message, messages

load_json = pytest.importorskip("kafka.protocol.schemas.load_json").load_json
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # importlib.resources API

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


def _json_rows(fields: list[dict], v: int, flexible: bool, path: str = "") -> list[tuple]:
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
            rows += _json_rows(f.get("fields", []), v, flexible, name + ".")
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
    js = load_json(msg.name)
    assert js.get("apiKey") == msg.api_key
    assert _versions(js["flexibleVersions"]) == (
        None if msg.flexible is None else (msg.flexible, ANY)
    )
    valid = _versions(js["validVersions"])
    assert valid is not None and msg.versions[1] <= valid[1]
    for v in range(msg.versions[0], msg.versions[1] + 1):
        flexible = msg.is_flexible(v)
        assert _our_rows(msg.fields, v, flexible) == _json_rows(js["fields"], v, flexible), (
            f"{msg.name} v{v}"
        )


def test_every_brief_api_is_covered() -> None:
    from pyggy.kafka_wire.protocol import supported_versions

    assert supported_versions() == {
        0: (0, 12), 1: (4, 12), 2: (1, 7), 3: (0, 12), 8: (2, 9), 9: (1, 9), 10: (0, 4),
        11: (0, 9), 12: (0, 4), 13: (0, 5), 14: (0, 5), 15: (0, 6), 16: (0, 5), 17: (0, 1),
        18: (0, 4), 19: (2, 7), 20: (1, 6), 21: (0, 2), 22: (0, 5), 23: (2, 4), 24: (0, 3),
        25: (0, 3), 26: (0, 4), 28: (0, 3), 29: (1, 3), 30: (1, 3), 31: (1, 3), 32: (1, 4),
        33: (0, 2), 36: (0, 2), 37: (0, 3), 42: (0, 2), 44: (0, 1), 47: (0, 0), 48: (0, 1),
        50: (0, 0),
        51: (0, 0), 60: (0, 1),
    }  # fmt: skip
