"""Native connections move to the shard process that owns their partitions
(docs/sharding.md, "Iggy connections move to the owner").

The Iggy protocol has no partition leaders for a client to route by, so the kernel puts each
connection on any shard (SO_REUSEPORT) and a request for another shard's partition is
forwarded. A connection whose data requests (send, poll, consumer offsets) `MOVE_AFTER` times
in a row all went to one other shard — none served here, none to a third — is handed to that
shard once its reply is written and no request is waiting: a duplicate of its socket goes over
a Unix datagram socket (SCM_RIGHTS) with its session (client id, user, VSR session, protocol,
…) and the bytes of a request it had only partly received. The receiving shard serves it from
then on (`native_wire.listener.adopt`); this one drops its copy without ending the TCP
connection. If the handoff cannot be sent, the connection stays and keeps being forwarded.
TLS connections are never moved (their TLS state lives in this process's memory).
"""

from __future__ import annotations

import array
import asyncio
import errno
import json
import logging
import os
import socket
import struct
from functools import partial
from typing import TYPE_CHECKING, Any

from pyggy.native_wire.codec.codes import Code
from pyggy.native_wire.context import NativeServer
from pyggy.native_wire.listener import NativeDoor, adopt

if TYPE_CHECKING:
    from pyggy.transport import Listener

    from .counters import ShardCounters

log = logging.getLogger(__name__)

MOVE_AFTER = 16  # data requests in a row forwarded to one shard before the connection moves
MAX_UNREAD = 64 * 1024  # most bytes of a partly received request carried along
MAX_STATE = 16 * 1024  # a session's state, JSON
MAX_MESSAGE = 4 + MAX_STATE + MAX_UNREAD
_LENGTH = struct.Struct(">I")
# a send error's errno -> the reason label of `ShardCounters.handoffs_failed` (else send_error)
_SEND_FAILURES = {errno.EAGAIN: "peer_full", errno.ENOBUFS: "peer_full",
                  errno.ENOENT: "peer_gone", errno.ECONNREFUSED: "peer_gone"}
DATA = frozenset({Code.SEND_MESSAGES, Code.POLL_MESSAGES, Code.POLL_MESSAGES_ON_PRIMARY,
                  Code.GET_CONSUMER_OFFSET, Code.STORE_CONSUMER_OFFSET,
                  Code.DELETE_CONSUMER_OFFSET})


class HandoffError(ValueError):
    """A malformed handoff message."""


def encode(state: dict[str, Any], unread: bytes) -> bytes:
    body = json.dumps(state, separators=(",", ":")).encode()
    if len(body) > MAX_STATE or len(unread) > MAX_UNREAD:
        raise HandoffError("handoff too large")
    return _LENGTH.pack(len(body)) + body + unread


def decode(message: bytes) -> tuple[dict[str, Any], bytes]:
    if len(message) < 4:
        raise HandoffError("short handoff message")
    (n,) = _LENGTH.unpack_from(message)
    if n > MAX_STATE or 4 + n > len(message) or len(message) - 4 - n > MAX_UNREAD:
        raise HandoffError(f"state length {n} out of range")
    try:
        state = json.loads(message[4:4 + n])
    except (UnicodeDecodeError, ValueError) as e:
        raise HandoffError(f"bad state: {e}") from None
    if not isinstance(state, dict):
        raise HandoffError("state is not an object")
    return state, message[4 + n:]


class Handoff:
    """This shard's side: decides when a connection moves, sends it, adopts those sent here.
    `paths[k]` is shard k's datagram socket (in the shards' 0700 socket directory)."""

    def __init__(self, index: int, paths: list[str], server: NativeServer, listener: Listener,
                 max_frame: int, counters: ShardCounters) -> None:
        self.index, self.paths = index, paths
        self.server, self.listener, self.max_frame = server, listener, max_frame
        self.counters = counters  # handoffs out, in, failed (by reason), adopted
        self.tasks: set[asyncio.Task[None]] = set()
        self.inbox = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.inbox.setblocking(False)
        self.inbox.bind(paths[index])
        self.outbox = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.outbox.setblocking(False)
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(self.inbox.fileno(), self._receive)

    # -- the rule (called by NativeDoor after each request) ----------------------------------
    def observe(self, door: NativeDoor, code: int, peer: int) -> None:
        if code not in DATA:
            return  # pings, metadata, stats: neither for nor against a move
        if peer != door.run_peer:
            door.run_peer, door.run = peer, 0
        door.run += 1
        conn = door.conn
        if peer >= 0 and door.run >= MOVE_AFTER and conn is not None and not conn.tls:
            conn.after_reply = partial(self._move, door, peer)

    # -- sending ---------------------------------------------------------------------------
    def _move(self, door: NativeDoor, peer: int) -> None:
        """After a reply was written: send the connection to `peer`, if at a boundary."""
        conn = door.conn
        if conn is None or door.session is None or not conn.idle():
            return  # a request waits or a reply is unsent: the next data request tries again
        unread = conn.unread()
        if len(unread) > MAX_UNREAD:
            return
        transport = conn.transport
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is None:
            return
        message = encode(door.export(), unread)
        fd = os.dup(sock.fileno())
        try:
            # sendmsg, not socket.send_fds: that one ignores its address argument
            self.outbox.sendmsg([message], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                             array.array("i", [fd]))], 0, self.paths[peer])
        except OSError as e:  # the peer's socket is full or gone: keep forwarding
            self.counters.handoffs_failed[_SEND_FAILURES.get(e.errno or 0, "send_error")] += 1
            door.run = 0  # another MOVE_AFTER requests before the next attempt
            log.warning("shard %d: could not hand a connection from %s to shard %d: %s",
                        self.index, conn.peer, peer, e)
            return
        finally:
            os.close(fd)  # the message holds its own reference to the socket now
        self.counters.handoffs_out += 1
        log.debug("shard %d: connection from %s (client %d) handed to shard %d", self.index,
                  conn.peer, door.session.client_id, peer)
        door.release()
        conn.detach()

    # -- receiving -------------------------------------------------------------------------
    def _receive(self) -> None:
        while True:
            try:
                message, fds, flags, _ = socket.recv_fds(self.inbox, MAX_MESSAGE, 1,
                                                         socket.MSG_CMSG_CLOEXEC)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                log.error("shard %d: handoff socket: %s", self.index, e)
                return
            self.counters.handoffs_in += 1
            if not fds:
                self.counters.handoffs_failed["malformed"] += 1
                log.error("shard %d: a handoff message without a socket", self.index)
                continue
            try:
                if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
                    raise HandoffError("truncated handoff message")
                state, unread = decode(message)
                sock = socket.socket(fileno=fds[0])
            except (HandoffError, OSError) as e:
                self.counters.handoffs_failed["malformed"] += 1
                log.error("shard %d: refusing a handed-over connection: %s", self.index, e)
                for fd in fds:
                    os.close(fd)
                continue
            for fd in fds[1:]:
                os.close(fd)
            task = self.loop.create_task(self._adopt(sock, state, unread))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _adopt(self, sock: socket.socket, state: dict[str, Any], unread: bytes) -> None:
        try:
            await adopt(self.listener, self.server, self.max_frame, sock, state, unread)
        except Exception:  # a bug here: the client sees its connection close
            self.counters.handoffs_failed["adopt_error"] += 1
            log.exception("shard %d: could not adopt a handed-over connection", self.index)
            sock.close()
            return
        self.counters.adopted += 1

    def close(self) -> None:
        self.loop.remove_reader(self.inbox.fileno())
        for task in list(self.tasks):
            task.cancel()
        self.inbox.close()
        self.outbox.close()
        try:
            os.unlink(self.paths[self.index])
        except OSError:
            pass
