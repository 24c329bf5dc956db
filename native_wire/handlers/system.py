"""ping, stats, cluster metadata, describe options, clients."""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import threading

from pyggy.core import permissions as perm
from pyggy.core.engine import LogEngine
from pyggy.core.errors import ErrorCode, IggyError
from pyggy.core.options import TOPIC_CATALOG
from pyggy.native_wire.codec import responses as rsp
from pyggy.native_wire.codec import snapshot
from pyggy.native_wire.codec.frames import HEADER_SIZE, MAX_MESSAGE_SIZE
from pyggy.native_wire.codec.reader import Reader, WireError
from pyggy.native_wire.context import Context, NodeInfo


def ping(ctx: Context, r: Reader) -> bytes:
    return b""


def process_memory() -> int:
    """This process's resident memory in bytes (0 where /proc is not there)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def _memory() -> tuple[int, int, int]:
    rss, total, available = process_memory(), 0, 0
    try:
        with open("/proc/meminfo") as f:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
        total, available = info.get("MemTotal", 0), info.get("MemAvailable", 0)
    except OSError:
        pass
    return rss, total, available


async def get_stats(ctx: Context, r: Reader) -> bytes:
    perm.ensure(perm.read_servers(ctx.user))
    await ctx.engine.data.refresh_stats()  # other shards' partitions and bytes (pyggy/shards)
    return rsp.encode_stats(_stats(ctx))


def _stats(ctx: Context) -> rsp.Stats:
    return stats(ctx.engine, ctx.server.node, len(ctx.server.sessions))


def stats(engine: LogEngine, node: NodeInfo, clients_count: int) -> rsp.Stats:
    """GET_STATS values (also the HTTP door's `/stats`); in a sharded server the caller has
    refreshed the other shards' figures (`DataService.refresh_stats`), and the totals are the
    whole server's: every shard's clients, and the memory and threads of every shard process
    (docs/sharding.md, "What an operator sees")."""
    c, io = engine.counts(), engine.data.stats
    rss, total, available = _memory()
    disk = shutil.disk_usage(engine.root)
    # whole-second precision, as the SDK documents `start_time`/`run_time` (Iggy reads both
    # from the process table)
    start = engine.data.stats.start_time // 1_000_000 * 1_000_000
    run_time = (engine.clock.now_us() - start) // 1_000_000 * 1_000_000
    import platform  # here: its import (regexes) is not paid at start

    uname = platform.uname()
    major, minor, patch = (int(x) for x in node.version.split(".")[:3])
    return rsp.Stats(
        process_id=os.getpid(), memory_usage=rss + io.elsewhere_memory, total_memory=total,
        available_memory=available, run_time=run_time,
        start_time=start, read_bytes=engine.data.stats.read_bytes + io.elsewhere_read,
        written_bytes=io.written_bytes + io.elsewhere_written, messages_size_bytes=c["size"],
        streams_count=c["streams"], topics_count=c["topics"],
        partitions_count=c["partitions"], segments_count=c["segments"],
        messages_count=c["messages"], clients_count=clients_count + io.elsewhere_clients,
        consumer_groups_count=c["groups"], hostname=socket.gethostname(),
        os_name=uname.system, os_version=uname.version, kernel_version=uname.release,
        iggy_server_version=node.version,
        iggy_server_semver=rsp.semver_number(major, minor, patch),
        threads_count=threading.active_count() + io.elsewhere_threads,
        free_disk_space=disk.free,
        total_disk_space=disk.total,
    )


async def get_snapshot(ctx: Context, r: Reader) -> bytes:
    """A zip of the server's diagnostics; needs read_servers (or manage_servers), as in Iggy:
    the archive describes the host."""
    perm.ensure(perm.read_servers(ctx.user))
    compression, sections = snapshot.decode_request(r.rest())
    source = ctx.server.snapshots
    if source is None:
        raise IggyError(ErrorCode.FEATURE_UNAVAILABLE, "no diagnostics on this server")
    archive = await source.snapshot(sections, compression, dataclasses.asdict(_stats(ctx)))
    if HEADER_SIZE + len(archive) > MAX_MESSAGE_SIZE:  # a client refuses larger frames
        raise IggyError(ErrorCode.SNAPSHOT_FILE_COMPLETION_FAILED,
                        f"snapshot of {len(archive)} bytes exceeds the frame limit")
    return archive


def get_cluster_metadata(ctx: Context, r: Reader) -> bytes:
    ctx.session.require_user()
    node = ctx.server.node
    cluster = ctx.server.engine.cluster
    if cluster is None:
        return rsp.encode_cluster_metadata(node.cluster_name, node.node_name, node.tcp_host,
                                           node.tcp_port, http_port=node.http_port)
    # the roster; the Leader is the metadata primary (nobody while a view change runs)
    leader = cluster.metadata_leader()
    return rsp.encode_cluster_nodes(node.cluster_name, [
        (n.name, n.host, n.tcp, 0, n.http, 0, LEADER if n.replica_id == leader else FOLLOWER,
         HEALTHY) for n in cluster.nodes()])


LEADER, FOLLOWER, HEALTHY = 0, 1, 0


def describe_options(ctx: Context, r: Reader) -> bytes:
    ctx.session.require_user()
    scope = r.u8()
    r.done()
    if scope == 1:
        return rsp.encode_describe_options(TOPIC_CATALOG)
    if scope in (2, 3):
        return rsp.encode_describe_options([])
    raise WireError(detail=f"unknown options scope {scope}")


def _client(ctx: Context, client_id: int, details: bool) -> bytes:
    s = ctx.server.sessions.get(client_id)
    if s is None:
        return b""
    user_id = s.user.id if s.user else 0xFFFFFFFF
    groups = [(t.stream_id, t.id, g.id) for t, g in ctx.engine.consumers.all_groups()
              if client_id in g.members]
    if details:
        return rsp.encode_client_details(s.client_id, user_id, s.transport, s.address, groups)
    return rsp.encode_client(s.client_id, user_id, s.transport, s.address, len(groups))


def get_me(ctx: Context, r: Reader) -> bytes:
    ctx.session.require_user()
    return _client(ctx, ctx.session.client_id, True)


def get_client(ctx: Context, r: Reader) -> bytes:
    perm.ensure(perm.read_servers(ctx.user))
    client_id = r.u32()
    r.done()
    return _client(ctx, client_id, True)


def get_clients(ctx: Context, r: Reader) -> bytes:
    perm.ensure(perm.read_servers(ctx.user))
    return b"".join(_client(ctx, cid, False) for cid in sorted(ctx.server.sessions))
