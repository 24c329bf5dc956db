"""Iggy's permission model: global → stream → topic, with manage ⊃ read ⊃ poll.

Each check takes the user and, where it applies, the resolved stream and topic ids.
The root user (id 0) may do everything.
"""

from __future__ import annotations

from pyggy.core.errors import ErrorCode, IggyError
from pyggy.core.model import (
    GlobalPermissions,
    Permissions,
    StreamPermissions,
    TopicPermissions,
    User,
)


def _parts(user: User, stream_id: int | None, topic_id: int | None
           ) -> tuple[GlobalPermissions, StreamPermissions, TopicPermissions]:
    perms = user.permissions or Permissions()
    sp = perms.streams.get(stream_id) if stream_id is not None else None
    sp = sp or StreamPermissions()
    tp = sp.topics.get(topic_id) if topic_id is not None else None
    return perms.global_, sp, tp or TopicPermissions()


def read_servers(user: User) -> bool:
    g = _parts(user, None, None)[0]
    return user.is_root or g.read_servers or g.manage_servers


def manage_servers(user: User) -> bool:
    return user.is_root or _parts(user, None, None)[0].manage_servers


def read_users(user: User) -> bool:
    g = _parts(user, None, None)[0]
    return user.is_root or g.read_users or g.manage_users


def manage_users(user: User) -> bool:
    return user.is_root or _parts(user, None, None)[0].manage_users


def create_stream(user: User) -> bool:
    return user.is_root or _parts(user, None, None)[0].manage_streams


def read_streams(user: User) -> bool:
    """Listing every stream needs the global read_streams or manage_streams."""
    g = _parts(user, None, None)[0]
    return user.is_root or g.manage_streams or g.read_streams


def read_stream(user: User, stream_id: int) -> bool:
    g, s, _ = _parts(user, stream_id, None)
    return user.is_root or g.manage_streams or g.read_streams or s.manage_stream or s.read_stream


def manage_stream(user: User, stream_id: int) -> bool:
    g, s, _ = _parts(user, stream_id, None)
    return user.is_root or g.manage_streams or s.manage_stream


def create_topic(user: User, stream_id: int) -> bool:
    g, s, _ = _parts(user, stream_id, None)
    return (user.is_root or g.manage_streams or g.manage_topics or s.manage_stream
            or s.manage_topics)


def read_topic(user: User, stream_id: int, topic_id: int) -> bool:
    g, s, t = _parts(user, stream_id, topic_id)
    return (user.is_root or g.manage_streams or g.read_streams or g.manage_topics
            or g.read_topics or s.manage_stream or s.read_stream or s.manage_topics
            or s.read_topics or t.manage_topic or t.read_topic)


def manage_topic(user: User, stream_id: int, topic_id: int) -> bool:
    g, s, t = _parts(user, stream_id, topic_id)
    return (user.is_root or g.manage_streams or g.manage_topics or s.manage_stream
            or s.manage_topics or t.manage_topic)


def poll_messages(user: User, stream_id: int, topic_id: int) -> bool:
    if user.is_root:  # every poll asks: the common answer without the lookups
        return True
    g, s, t = _parts(user, stream_id, topic_id)
    return (read_topic(user, stream_id, topic_id) or g.poll_messages or s.poll_messages
            or t.poll_messages)


def send_messages(user: User, stream_id: int, topic_id: int) -> bool:
    g, s, t = _parts(user, stream_id, topic_id)
    return (user.is_root or g.manage_streams or g.manage_topics or g.send_messages
            or s.manage_stream or s.manage_topics or s.send_messages or t.manage_topic
            or t.send_messages)


def ensure(allowed: bool) -> None:
    """Raise Unauthorized (41) unless `allowed`."""
    if not allowed:
        raise IggyError(ErrorCode.UNAUTHORIZED, "unauthorized")
