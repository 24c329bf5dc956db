"""Schemas parsed at their first use (`message`, `api_messages`, `heads`) are the ones the
whole table gives when every line is parsed at once (built here, as the reference)."""

from __future__ import annotations

from pyggy.kafka_wire.protocol import schemas
from pyggy.kafka_wire.protocol.schemas import (
    Message,
    api_messages,
    api_names,
    by_api_key,
    heads,
    message,
    messages,
    parse_line,
)


def _whole_table() -> dict[str, Message]:
    parsed = (parse_line(x) for x in schemas._SCHEMAS.strip().splitlines())
    return {m.name: m for m in parsed}


def _pairs(table: dict[str, Message]) -> dict[int, tuple[Message, Message]]:
    """Each API's request and response schema, paired by name from the whole table."""
    out: dict[int, list[Message]] = {}
    for m in table.values():
        if m.api_key is not None:
            out.setdefault(m.api_key, []).append(m)
    return {key: (next(m for m in ms if m.name.endswith("Request")),
                  next(m for m in ms if m.name.endswith("Response"))) for key, ms in out.items()}


def test_each_message_parsed_alone_is_the_one_of_the_whole_table() -> None:
    everything = _whole_table()
    assert set(heads()) == set(everything)
    assert messages() == everything
    for name, m in everything.items():
        assert message(name) == m
        assert heads()[name] == (m.api_key, m.versions, m.flexible)
    assert message("NoSuchRequest") is None


def test_each_api_pair_parsed_alone_is_the_one_of_the_whole_table() -> None:
    pairs = _pairs(_whole_table())
    assert set(api_names()) == set(pairs)
    assert by_api_key() == pairs
    for key, pair in pairs.items():
        assert api_messages(key) == pair
        assert pair[0].versions == pair[1].versions and pair[0].flexible == pair[1].flexible
    assert api_messages(9999) is None
