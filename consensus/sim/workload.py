"""Simulated clients: one request in flight each, retried with the same number until answered.

A client works against one group. It registers first (its session = the op of that commit),
then sends metadata commands or partition appends / DeleteRecords / purges / retention, with a
unique tag in every record so the checker can find each one in the log. It sends to the replica
it believes is primary (view % n from the last reply) and, on timeout, to every replica. An
Eviction (from a replica of the client's latest view or a newer one) means its session is gone:
the request in flight has an unknown outcome, its number is never used again for other
contents, and the client registers again.
"""

from __future__ import annotations

import random
import struct

from ..message import Command, Message, encode
from ..state_machine import REGISTER
from . import models

_TAG = struct.Struct("<HI")


class Request:
    __slots__ = ("number", "session", "operation", "body", "raw", "sent", "attempts", "deadline")

    def __init__(self, number: int, session: int, operation: int, body: bytes, raw: bytes) -> None:
        self.number, self.session, self.operation, self.body, self.raw = (
            number, session, operation, body, raw)
        self.sent = self.attempts = self.deadline = 0


class Client:
    def __init__(self, index: int, endpoint: int, group: int, partition: bool, cluster: bytes,
                 prng: random.Random, replicas: int, budget: int, timeout: int) -> None:
        self.index, self.endpoint, self.group, self.partition = index, endpoint, group, partition
        self.cluster, self.prng, self.replicas = cluster, prng, replicas
        self.id = prng.randbytes(16)
        self.budget, self.timeout = budget, timeout
        self.session = 0
        self.number = 0
        self.view = 0
        self.inflight: Request | None = None
        self.next_at = prng.randrange(20)
        self.acked = self.evictions = 0

    def _request(self, operation: int, body: bytes) -> Request:
        number = 0 if operation == REGISTER else self.number + 1
        m = Message(Command.REQUEST, cluster=self.cluster, group=self.group, client=self.id,
                    session=self.session, request=number, operation=operation, body=body)
        return Request(number, self.session, operation, body, encode(m))

    def _next_command(self) -> tuple[int, bytes]:
        r = self.prng
        if self.partition:
            roll = r.random()
            if roll < 0.9:
                records = [_TAG.pack(self.index, self.number + 1) + bytes([i]) + r.randbytes(
                    r.randrange(24)) for i in range(1 + r.randrange(4))]
                return models.APPEND, models.append_body(records)
            if roll < 0.95:
                return models.DELETE_RECORDS, struct.pack("<Q", r.randrange(64))
            if roll < 0.97:
                return models.PURGE, b""
            return models.RETENTION, struct.pack("<Q", r.randrange(8, 64))
        operation = r.choice(models.METADATA_OPERATIONS)
        names = [f"s{r.randrange(6)}", f"t{r.randrange(4)}"][:1 + (operation in (
            models.CREATE_TOPIC, models.DELETE_TOPIC, models.CREATE_TOKEN,
            models.CREATE_CONSUMER_GROUP))]
        return operation, models.pack_names(*names)

    def tick(self, now: int, issue: bool) -> list[tuple[int, bytes]]:
        """Packets to send now as (replica, bytes)."""
        req = self.inflight
        if req is None:
            if not issue or now < self.next_at or (self.budget <= 0 and self.session):
                return []
            if self.session == 0:
                req = self._request(REGISTER, b"")
            else:
                req = self._request(*self._next_command())
            req.sent = now
            self.inflight = req
            req.deadline = now + self.timeout
            return [(self.view % self.replicas, req.raw)]
        if now < req.deadline:
            return []
        req.attempts += 1
        req.deadline = now + self.timeout * min(1 << min(req.attempts, 3), 8) + \
            self.prng.randrange(self.timeout)
        return [(r, req.raw) for r in range(self.replicas)]

    def on_reply(self, now: int, m: Message) -> Request | None:
        """The request this reply completes, if any (the caller reports it to the checker)."""
        req = self.inflight
        if req is None or m.client != self.id:
            return None
        if m.command == Command.EVICTION:
            if m.session != req.session or m.view < self.view:
                return None  # another session's, or a replica of an older view that may not
                # know the registration yet
            self.evictions += 1
            self.inflight = None
            # the request's outcome is unknown: its number is spent (registering again may
            # give back the same session, whose table may hold that request's reply)
            self.number = max(self.number, req.number)
            self.session = 0
            self.next_at = now + 1
            return None
        if m.request != req.number or m.session != req.session and req.operation != REGISTER:
            return None
        if req.operation == REGISTER and m.operation != REGISTER:
            return None
        self.view = max(self.view, m.view)
        self.inflight = None
        self.acked += 1
        if req.operation == REGISTER:
            self.session = m.op
        else:
            self.number = req.number
            self.budget -= 1
        self.next_at = now + self.prng.randrange(1, 12)
        return req
