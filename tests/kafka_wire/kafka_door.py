"""A Kafka client inside the test process: requests built with the codec go through
`dispatch.handle_frame` on a `Connection`, and responses are decoded strictly."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pyggy.core.engine import LogEngine
from pyggy.kafka_wire.context import Connection, KafkaServer
from pyggy.kafka_wire.dispatch import handle_frame
from pyggy.kafka_wire.protocol import decode_response, parse_response_header, request_frame


class Door:
    def __init__(self, server: KafkaServer, client_id: str = "in-process") -> None:
        self.server = server
        self.conn = Connection(server, "127.0.0.1")
        self.corr = itertools.count(1)
        self.client_id = client_id

    async def call(self, key: int, version: int, body: dict) -> dict:
        corr = next(self.corr)
        frame = request_frame(key, version, corr, self.client_id, body)
        parts = await handle_frame(self.conn, memoryview(frame)[4:])
        data = b"".join(bytes(p) for p in parts)[4:]
        got, pos = parse_response_header(data, key, version)
        assert got == corr
        return decode_response(key, version, data[pos:], strict=True)

    async def raw(self, token: bytes) -> bytes:
        """A frame without a request header (a SASL token after SaslHandshake v0)."""
        parts = await handle_frame(self.conn, memoryview(token))
        return b"".join(bytes(p) for p in parts)


@contextlib.contextmanager
def opened_engine(path: Path, **kwargs: Any) -> Iterator[LogEngine]:
    """A LogEngine on `path` (state fsync off) with the default root user, closed after."""
    engine = LogEngine(path, state_fsync=False, **kwargs)
    engine.open(("iggy", "iggy"))
    try:
        yield engine
    finally:
        engine.close()
