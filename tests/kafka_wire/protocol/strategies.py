"""Hypothesis strategies derived from the schemas: a value for any message at any version."""

from __future__ import annotations

from functools import cache
from typing import Any

from hypothesis import strategies as st
from pyggy.kafka_wire.protocol.schemas import Field, Message, by_api_key, messages

_INTS = {
    "i8": (-(2**7), 2**7 - 1), "i16": (-(2**15), 2**15 - 1), "i32": (-(2**31), 2**31 - 1),
    "i64": (-(2**63), 2**63 - 1), "u16": (0, 2**16 - 1), "u32": (0, 2**32 - 1),
}  # fmt: skip


def _base(f: Field, version: int, flexible: bool) -> st.SearchStrategy[Any]:
    if f.type in _INTS:
        lo, hi = _INTS[f.type]
        return st.integers(lo, hi)
    if f.type == "bool":
        return st.booleans()
    if f.type == "f64":
        return st.floats(allow_nan=False)
    if f.type == "uuid":
        return st.uuids()
    if f.type == "str":
        return st.text(max_size=6)
    if f.type in ("bytes", "records"):
        return st.binary(max_size=12)
    return fields_strategy(f.fields, version, flexible)


def field_strategy(f: Field, version: int, flexible: bool) -> st.SearchStrategy[Any]:
    if not f.present(version) or (f.tag is not None and not flexible):
        return st.builds(f.default)
    s = _base(f, version, flexible)
    if f.array:
        s = st.lists(s, max_size=3)
    if f.nullable_at(version):
        s = st.none() | s
    return s


def fields_strategy(fields: tuple[Field, ...], version: int, flexible: bool) -> st.SearchStrategy:
    return st.fixed_dictionaries({f.name: field_strategy(f, version, flexible) for f in fields})


@cache
def message_strategy(message: Message, version: int) -> st.SearchStrategy[dict[str, Any]]:
    return fields_strategy(message.fields, version, message.is_flexible(version))


def all_cases() -> list[tuple[str, int, int, str]]:
    """(message name, api key, version, kind) for every request and response we support."""
    out = []
    for key, (req, resp) in sorted(by_api_key().items()):
        for v in range(req.versions[0], req.versions[1] + 1):
            out += [(req.name, key, v, "request"), (resp.name, key, v, "response")]
    return out


def message(name: str) -> Message:
    return messages()[name]


_SAMPLE = {
    "i8": -7, "i16": 300, "i32": -70000, "i64": 2**40 + 3, "u16": 65000, "u32": 2**31 + 9,
    "f64": 1.5, "bool": True, "str": "abç", "bytes": b"\x00by", "records": b"rec\xff",
}  # fmt: skip


def sample_value(fields: tuple[Field, ...], version: int, flexible: bool) -> dict[str, Any]:
    """A deterministic value with every present field set to a non-default (two array items,
    non-null nullables, tagged fields set), so that its encoding exercises every field."""
    from uuid import UUID

    out: dict[str, Any] = {}
    for f in fields:
        if not f.present(version) or (f.tag is not None and not flexible):
            out[f.name] = f.default()
            continue
        if f.type == "struct":
            item: Any = sample_value(f.fields, version, flexible)
        elif f.type == "uuid":
            item = UUID(int=0x0123456789ABCDEF)
        else:
            item = _SAMPLE[f.type]
        out[f.name] = [item, item] if f.array else item
    return out
