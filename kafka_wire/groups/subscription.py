"""Topics of a ConsumerProtocolSubscription (JoinGroup metadata of protocol type "consumer").

Layout (every version, non-flexible): INT16 version, then ``topics`` = INT32 count of
INT16-length UTF-8 strings; later fields (user data, owned partitions, generation, rack)
follow and are not needed here.
"""

from __future__ import annotations

import struct

_HEAD = struct.Struct(">hi")
_LEN = struct.Struct(">h")


def subscription_topics(metadata: bytes) -> list[str] | None:
    """The subscribed topics, or None when ``metadata`` is not a readable subscription."""
    size = len(metadata)
    if size < _HEAD.size:
        return None
    version, count = _HEAD.unpack_from(metadata, 0)
    # each topic takes at least its 2-byte length: bound the count before looping
    if version < 0 or count < 0 or count > (size - _HEAD.size) // _LEN.size:
        return None
    pos, topics = _HEAD.size, []
    for _ in range(count):
        if pos + _LEN.size > size:
            return None
        (n,) = _LEN.unpack_from(metadata, pos)
        pos += _LEN.size
        if n < 0 or pos + n > size:
            return None
        try:
            topics.append(bytes(metadata[pos:pos + n]).decode("utf-8"))
        except UnicodeDecodeError:
            return None
        pos += n
    return topics
