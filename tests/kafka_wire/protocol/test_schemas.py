"""Schemas parsed at their first use (`message`, `api_messages`, `heads`) are the ones the
whole table gives (`messages`, `by_api_key`)."""

from __future__ import annotations

from pyggy.kafka_wire.protocol.schemas import (
    api_messages,
    api_names,
    by_api_key,
    heads,
    message,
    messages,
)


def test_each_message_parsed_alone_is_the_one_of_the_whole_table() -> None:
    everything = messages()
    assert set(heads()) == set(everything)
    for name, m in everything.items():
        assert message(name) == m
        assert heads()[name] == (m.api_key, m.versions, m.flexible)
    assert message("NoSuchRequest") is None


def test_each_api_pair_parsed_alone_is_the_one_of_the_whole_table() -> None:
    pairs = by_api_key()
    assert set(api_names()) == set(pairs)
    for key, pair in pairs.items():
        assert api_messages(key) == pair
    assert api_messages(9999) is None
