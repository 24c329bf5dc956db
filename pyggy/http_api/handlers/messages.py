"""Poll and send messages as JSON (payloads and header values base64, as Iggy's HTTP API).

JSON needs one object per message, so this door is not the fast path (the binary and Kafka
doors are); a poll is still bounded by `count` and by the engine's bytes per poll.
"""

from __future__ import annotations

import struct
import uuid

from pyggy.core import permissions as perm
from pyggy.core.engine.data import BALANCED, MESSAGES_KEY, PARTITION_ID, Partitioning
from pyggy.core.offsets import CONSUMER
from pyggy.core.records import iggy_batch
from pyggy.http_api import views
from pyggy.http_api.body import Fields, identifier
from pyggy.http_api.context import Call
from pyggy.http_api.errors import FieldError
from pyggy.http_api.handlers import Answer, Created
from pyggy.http_api.handlers.streams import topic_of

STRATEGIES = {"offset": 1, "timestamp": 2, "first": 3, "last": 4, "next": 5}
PARTITIONING = {"balanced": BALANCED, "partition_id": PARTITION_ID, "messages_key": MESSAGES_KEY}
MAX_POLL_COUNT = 100_000
MAX_SEND_COUNT = 100_000


def consumer_id(q: Fields) -> int | str:
    raw = q.data.get("consumer_id")
    if raw is None:
        return 1  # Iggy's default consumer id
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    if not isinstance(raw, str):
        raise FieldError("consumer_id", "expected an identifier")
    return identifier(raw, "consumer_id")


async def poll(c: Call) -> Answer:
    t = topic_of(c)
    perm.ensure(perm.poll_messages(c.user, t.stream_id, t.id))
    q = c.query
    partition_id = q.integer("partition_id", 0, hi=0xFFFF_FFFF)
    strategy = q.choice("kind", STRATEGIES, STRATEGIES["offset"])
    value = q.integer("value", 0)
    count = q.integer("count", 10, lo=1, hi=MAX_POLL_COUNT)
    auto_commit = q.flag("auto_commit", False)
    result = await c.engine.data.poll_async(t.stream_id, t.id, partition_id, strategy, value,
                                            count, CONSUMER, consumer_id(q), auto_commit)
    messages = [views.message(*m) for chunk in result.chunks
                for m in iggy_batch.iter_messages(chunk)]
    return {"partition_id": result.partition_id, "current_offset": result.current_offset,
            "count": len(messages), "messages": messages}


def _partitioning(b: Fields) -> Partitioning:
    p = b.obj("partitioning", None)
    if p is None:
        return BALANCED, None
    kind = p.choice("kind", PARTITIONING)
    value = p.b64("value", b"", max_len=255)
    if kind == PARTITION_ID:
        if len(value) != 4:
            raise FieldError("partitioning", "partition_id value must be 4 bytes")
        return kind, struct.unpack("<I", value)[0]
    if kind == MESSAGES_KEY:
        if not value:
            raise FieldError("partitioning", "empty messages key")
        return kind, value
    return kind, None


async def send(c: Call) -> Answer:
    t = topic_of(c)
    perm.ensure(perm.send_messages(c.user, t.stream_id, t.id))
    b = await c.body()
    partitioning = _partitioning(b)
    now = c.engine.clock.now_us()
    messages = []
    for item in b.array("messages", max_items=MAX_SEND_COUNT):
        if not isinstance(item, dict):
            raise FieldError("messages", "expected message objects")
        m = Fields(item)
        msg_id = m.integer("id", 0, hi=(1 << 128) - 1) or uuid.uuid4().int
        payload = m.b64("payload", max_len=iggy_batch.MAX_PAYLOAD_SIZE)
        messages.append((msg_id, payload, views.parse_headers(m), now))
    if not messages:
        raise FieldError("messages", "at least one message")
    batch = iggy_batch.build_batch(messages)
    sid, tid, pid, base = await c.engine.data.append(t.stream_id, t.id, partitioning, batch,
                                                     len(messages))
    if c.span is not None:  # telemetry on: attributes, links to traceparent headers
        c.span.on_send(c.engine.metadata.stream_name(sid), t.name, pid, base, len(messages),
                       batch)
    return Created({"confirmations": [{"stream_id": sid, "topic_id": tid, "partition_id": pid,
                                       "base_offset": base}]})
