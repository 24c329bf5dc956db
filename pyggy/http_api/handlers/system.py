"""ping, stats, clients, cluster metadata."""

from __future__ import annotations

import dataclasses

from pyggy.core import permissions as perm
from pyggy.core.errors import ErrorCode, IggyError
from pyggy.http_api.context import Call
from pyggy.http_api.handlers import Answer
from pyggy.native_wire.handlers.system import stats as native_stats

TRANSPORTS = {1: "TCP", 2: "QUIC", 3: "HTTP", 4: "WebSocket"}


async def ping(c: Call) -> Answer:
    return "pong"


async def stats(c: Call) -> Answer:
    perm.ensure(perm.read_servers(c.user))
    await c.engine.data.refresh_stats()  # other shards' partitions and bytes (pyggy/shards)
    s = native_stats(c.engine, c.server.native.node, len(c.server.native.sessions))
    out = dataclasses.asdict(s)
    out["cache_metrics"] = {}
    return out


def _client(c: Call, client_id: int, details: bool) -> dict | None:
    s = c.server.native.sessions.get(client_id)
    if s is None:
        return None
    groups = [{"stream_id": t.stream_id, "topic_id": t.id, "group_id": g.id}
              for t, g in c.engine.consumers.all_groups() if client_id in g.members]
    out: dict[str, object] = {
        "client_id": s.client_id, "user_id": s.user.id if s.user else None,
        "address": s.address, "transport": TRANSPORTS.get(s.transport, "TCP"),
        "consumer_groups_count": len(groups)}
    if details:
        out["consumer_groups"] = groups
    return out


async def clients(c: Call) -> Answer:
    perm.ensure(perm.read_servers(c.user))
    return [_client(c, cid, False) for cid in sorted(c.server.native.sessions)]


async def client(c: Call) -> Answer:
    perm.ensure(perm.read_servers(c.user))
    found = _client(c, c.number("client_id"), True)
    if found is None:
        raise IggyError(ErrorCode.CLIENT_NOT_FOUND, "client not found")
    return found


async def cluster_metadata(c: Call) -> Answer:
    """This node alone (what GET_CLUSTER_METADATA reports over TCP)."""
    c.user  # noqa: B018  (authenticated)
    node = c.server.native.node
    return {"name": node.cluster_name, "nodes": [{
        "name": node.node_name, "ip": node.tcp_host,
        "endpoints": {"tcp": node.tcp_port, "quic": 0, "http": node.http_port, "websocket": 0},
        "role": "leader", "status": "healthy"}]}
