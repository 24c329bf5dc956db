"""The metadata command log: every change of streams, topics, partitions, users, tokens and
groups is appended to the (mirrored) state log, then applied by the state machine — before it
returns, so nothing is acknowledged that a restart would not replay."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar, overload

from pyggy.core.clock import Clock
from pyggy.core.metadata import commands as c
from pyggy.core.metadata.machine import MetadataStateMachine
from pyggy.core.metadata.state_log import StateLog
from pyggy.core.model import ConsumerGroup, Partition, Stream, Topic, User
from pyggy.core.storage.outage import WriteOutage
from pyggy.core.transactions import Txn

log = logging.getLogger(__name__)
_LOGGED_COMMANDS = frozenset({"create_stream", "create_topic"})
_C = TypeVar("_C", bound=c.MetadataCommand)
_R = TypeVar("_R")


class CommandLog:
    """The state machine (`meta`, the current metadata) and the log it is rebuilt from."""

    def __init__(self, meta: MetadataStateMachine, state: StateLog, clock: Clock) -> None:
        self.meta = meta
        self.state = state
        self.clock = clock
        self.writes = WriteOutage("metadata", clock, log)
        # runs a committed command with its side effects (the engine sets
        # MetadataService.apply: partition files follow the command); a cluster node calls it
        # where the metadata group commits
        self.applier: Callable[[c.MetadataCommand], object] = self.commit
        # a cluster node's submit to the metadata group (None on one node): `propose` hands it
        # every command and answers the result of the command's commit
        self.consensus: Callable[[c.MetadataCommand], Awaitable[object]] | None = None
        self.last_op = 0  # the metadata group's op of the newest logged command (a cluster)
        # False on a shard process other than 0: shard 0 logs every command and broadcasts
        # it; the others apply it without writing the state log (docs/sharding.md)
        self.logged = True

    # What each command's result is: the return type of the state machine's method of the same
    # name (tests/core/engine/test_commands.py checks that these overloads agree with them).
    @overload
    async def propose(self, cmd: c.CreateStream | c.DeleteStream) -> Stream: ...
    @overload
    async def propose(self, cmd: c.CreateTopic | c.UpdateTopic | c.DeleteTopic) -> Topic: ...
    @overload
    async def propose(self, cmd: c.CreatePartitions | c.DeletePartitions) -> list[Partition]: ...
    @overload
    async def propose(self, cmd: c.CreateGroup | c.DeleteGroup) -> ConsumerGroup: ...
    @overload
    async def propose(self, cmd: c.CreateUser | c.UpdateUser | c.DeleteUser) -> User: ...
    @overload
    async def propose(self, cmd: c.UpdateStream | c.UpdatePermissions | c.ChangePassword
                      | c.SetScram | c.DeleteScram | c.CreateToken | c.DeleteToken
                      | c.SetGroupConfigs | c.SetBrokerConfigs | c.TxnOffsets
                      | c.TxnFirstOffset) -> None: ...
    @overload
    async def propose(self, cmd: c.TxnInit | c.TxnAdd | c.TxnPrepare | c.TxnComplete) -> Txn: ...
    @overload
    async def propose(self, cmd: c.TxnExpire) -> list[str]: ...

    async def propose(self, cmd: c.MetadataCommand) -> object:
        """Make `cmd` happen and return its result: the one way a door's request changes
        metadata. On a single node it commits at once; on a cluster node it goes through the
        metadata group's consensus (the command is applied where and when it commits)."""
        if self.consensus is not None:
            return await self.consensus(cmd)
        return self.applier(cmd)

    @overload
    def commit(self, cmd: c.MetadataCommand) -> object: ...
    @overload
    def commit(self, cmd: _C, apply: Callable[[_C], _R]) -> _R: ...

    def commit(self, cmd: _C, apply: Callable[[_C], object] | None = None) -> object:
        """Append `cmd` to the state log, then apply it; return what the state machine did
        (`apply`: the state machine's method of the command's type, for a typed result).

        A full or failing disk fails the command with CANNOT_WRITE_TO_FILE and changes
        nothing; a command the state machine refuses is cut off the log again."""
        if not self.logged:
            return (apply or self.meta.apply)(cmd)
        try:
            pos = self.state.append(cmd)
        except OSError as e:
            raise self.writes.failed(e) from None
        self.writes.ok()
        try:
            result = (apply or self.meta.apply)(cmd)
        except Exception:
            self.state.rollback(pos)
            raise
        if cmd["type"] in _LOGGED_COMMANDS:  # names only: commands may hold password hashes
            log.info("metadata: %s %r", cmd["type"], cmd.get("name", ""))
        return result
