"""Client sessions: registered at commit, oldest evicted when full, encoded deterministically."""

from __future__ import annotations

import pytest
from pyggy.consensus.client_table import ClientTable
from pyggy.consensus.state_machine import REGISTER


def client(i: int) -> bytes:
    return bytes([i]) * 16


def test_register_record_and_evict_the_least_recently_committed():
    t = ClientTable(clients_max=2)
    assert t.register(client(1), 10, REGISTER, b"s10") is None
    assert t.register(client(2), 11, REGISTER, b"s11") is None
    t.record(client(1), 1, 12, 40, b"r")  # client 1 is now the most recent
    assert t.register(client(3), 13, REGISTER, b"s13") == client(2)
    assert t.get(client(2)) is None
    entry = t.get(client(1))
    assert (entry.session, entry.request, entry.op, entry.reply) == (10, 1, 12, b"r")


def test_encoding_is_deterministic_and_round_trips():
    a, b = ClientTable(4), ClientTable(4)
    for table, order in ((a, (1, 2, 3)), (b, (3, 1, 2))):
        for c in order:
            table.register(client(c), c, REGISTER, bytes([c]))
    assert a.encode() == b.encode()
    restored = ClientTable(4)
    restored.restore(a.encode())
    assert restored.encode() == a.encode()


def test_restore_refuses_more_sessions_than_allowed_and_trailing_bytes():
    t = ClientTable(4)
    for c in range(4):
        t.register(client(c), c, REGISTER, b"")
    with pytest.raises(ValueError):
        ClientTable(3).restore(t.encode())
    with pytest.raises(ValueError):
        ClientTable(4).restore(t.encode() + b"x")
