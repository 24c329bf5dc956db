"""The 0.9 SDK's cluster poll routing (iggy-protocol.md §7.3): with a roster of more than one
node the SDK asks the node it is logged in to (the coordinator) where to send auto-commit polls
and offset writes (GET_POLL_ROUTING 103, GET_CONSUMER_OFFSET_ROUTING 123), opens a data
connection there, attaches it to its coordinator session (ATTACH_CONSUMER_SESSION 14) and polls
(POLL_MESSAGES_ON_PRIMARY 104) or writes offsets on it.

pyggy routes to the coordinator itself: consumer offsets are metadata-group changes that any
node forwards to the metadata primary, polls serve committed data on every node, and group
membership lives on the node the consumer talks to — which an attached connection shares.
Route reply: ``client u128, session u64, metadata watermark u64`` (the attachment), then the
node as GET_CLUSTER_METADATA describes one.
"""

from __future__ import annotations

import struct

from pyggy.core import permissions as perm
from pyggy.core.errors import ErrorCode, IggyError
from pyggy.native_wire.codec import primitives as p
from pyggy.native_wire.codec import responses as rsp
from pyggy.native_wire.codec.reader import Reader
from pyggy.native_wire.context import Context
from pyggy.native_wire.handlers import messages

_TAIL = struct.Struct("<QQ")  # after the u128 client id: session, metadata watermark
LEADER, HEALTHY = 0, 0


def _route(ctx: Context, r: Reader) -> bytes:
    """The route of a request that starts with (consumer, stream, topic, optional partition)
    — the SDK sends the whole poll or offset request; the rest decides nothing here."""
    p.decode_consumer(r)
    t = ctx.engine.metadata.topic(p.decode_identifier(r), p.decode_identifier(r))
    p.decode_optional_partition(r)
    perm.ensure(perm.poll_messages(ctx.user, t.stream_id, t.id))
    s, node = ctx.session, ctx.server.node
    client: int = s.vsr_client
    attachment = client.to_bytes(16, "little") + _TAIL.pack(s.session_id,
                                                            ctx.engine.commands.last_op)
    here = (node.node_name, node.tcp_host, node.tcp_port, node.http_port)
    cluster = ctx.engine.cluster
    if cluster is not None:  # as the roster names this node (not a wildcard bind address)
        me = next(n for n in cluster.nodes() if n.replica_id == cluster.replica_id)
        here = (me.name, me.host, me.tcp, me.http)
    name, host, tcp, http = here
    return attachment + rsp.encode_cluster_node(name, host, tcp, 0, http, 0, LEADER, HEALTHY)


def get_poll_routing(ctx: Context, r: Reader) -> bytes:
    return _route(ctx, r)


def get_offset_routing(ctx: Context, r: Reader) -> bytes:
    return _route(ctx, r)


def attach_consumer_session(ctx: Context, r: Reader) -> bytes:
    """Share the group membership of the coordinator session named: same user, same epoch."""
    client, session = r.u128(), r.u64()
    r.u64()  # the coordinator's metadata watermark: this node's own state is used
    r.done()
    user = ctx.session.require_user()
    parent = next((s for s in ctx.server.sessions.values()
                   if s.vsr_client == client and s.session_id == session and s.user is not None),
                  None)
    if parent is None:  # gone, or another node's: the SDK asks for a route again
        raise IggyError(ErrorCode.TRANSIENT_NOT_ACCEPTED, "no such coordinator session here")
    if parent.user is None or parent.user.id != user.id:
        raise IggyError(ErrorCode.UNAUTHORIZED, "the coordinator session is another user's")
    ctx.session.attached = parent.client_id
    return b""


async def poll_on_primary(ctx: Context, r: Reader) -> bytes | list:
    return await messages.poll_messages(ctx, r)
