"""The metadata state machine: the engine's metadata commands, replicated by the metadata group.

A request body is one engine command (the JSON dict `CommandLog.propose` gets, timestamps and
password hashes made by the proposer, so every replica applies identical bytes). A committed op
runs `MetadataService.apply` on every replica: the state machine, the state log (the command
logged with its op, so a restart knows what it already applied), the partitions' files, and
— through the engine's create/delete listeners — the partition groups of this node. The reply
is `{"op": N}` or `{"code": C, "error": "..."}` with the Iggy error code, the same on every
replica; the proposing node takes the Python result of its own apply from `results`.

A `STATE` request body is one consumer-state change (core/engine/replicated.py: Iggy consumer
offsets, Kafka group offsets, producer-id blocks), applied on every replica by its handler. It
is not in the state log: it is applied again on every restart that replays its op (handlers
are idempotent in op order). A disk error applying one is this replica's alone: logged, and
raised to the caller on the proposer.

Snapshot: the state log is already durable (fsync per command), so a checkpoint records the op
it reached; one ahead of the local state log is `missing` state, which the node fetches from a
peer with the consumer-state stores and installs at its next start (metadata_transfer.py);
ops up to the installed op are then skipped (their effect is in the installed files).
"""

from __future__ import annotations

import json
import logging
import struct
from collections import OrderedDict
from collections.abc import Sequence

from pyggy.consensus.status import Divergence
from pyggy.core.engine import LogEngine
from pyggy.core.errors import ErrorCode, IggyError
from pyggy.core.storage.outage import StorageFailure

log = logging.getLogger(__name__)
COMMAND = 32  # an engine metadata command
STATE = 33  # a consumer-state change
RESULTS_MAX = 1024
_Q = struct.Struct("<Q")


class RestartToInstall(Exception):
    """A metadata checkpoint is staged: this replica executes nothing until the node restarts
    and installs it (node.py stops feeding it)."""


class MetadataMachine:
    def __init__(self, engine: LogEngine, installed: int = 0) -> None:
        self.engine = engine
        self.commands = engine.commands
        self.results: OrderedDict[int, object] = OrderedDict()
        # the op a metadata checkpoint installed by state transfer reached: the installed
        # files hold the effect of every op up to it (metadata_transfer.py)
        self.installed = installed
        # the op of a metadata checkpoint fetched and staged, to be installed by a restart:
        # the replica may take the consensus checkpoint it covers but executes nothing more
        self.staged = 0

    def stamp(self, operation: int, body: bytes,
              pending: Sequence[tuple[int, bytes]]) -> bytes | None:
        return body if operation in (COMMAND, STATE) else None

    def apply(self, op: int, operation: int, body: bytes, timestamp: int) -> bytes:
        if self.staged:  # the engine's state is older than the staged one: apply nothing
            raise RestartToInstall(f"metadata checkpoint at op {self.staged} staged")
        if op <= self.installed:  # in the installed checkpoint's files already
            return json.dumps({"op": op}).encode()
        if operation == STATE:
            return self._apply_state(op, body)
        if op <= self.commands.last_op:  # in the state log already: applied before a restart
            return json.dumps({"op": op}).encode()
        cmd = json.loads(body)
        cmd["op"] = op
        try:
            result = self.engine.metadata.apply(cmd)
        except StorageFailure:
            raise  # this disk, not the command: the node fences this replica (node.py)
        except IggyError as e:
            return json.dumps({"op": op, "code": int(e.code), "error": str(e)}).encode()
        self.commands.last_op = op
        self._result(op, result)
        return json.dumps({"op": op}).encode()

    def _apply_state(self, op: int, body: bytes) -> bytes:
        try:
            result: object = self.engine.replicated.apply(json.loads(body))
        except IggyError as e:  # decided by replicated state: the same on every replica
            return json.dumps({"op": op, "code": int(e.code), "error": str(e)}).encode()
        except OSError as e:  # this replica's disk only
            log.error("cluster: consumer state op %d could not be stored here: %s", op, e)
            result = e
        except Exception as e:  # a malformed body (a bug of its proposer): refused everywhere
            log.error("cluster: consumer state op %d refused: %r", op, e)
            return json.dumps({"op": op, "code": int(ErrorCode.INVALID_FORMAT),
                               "error": f"malformed state change: {e!r}"}).encode()
        self._result(op, result)
        return json.dumps({"op": op}).encode()

    def _result(self, op: int, result: object) -> None:
        self.results[op] = result
        while len(self.results) > RESULTS_MAX:
            self.results.popitem(last=False)

    def read(self, query: bytes) -> bytes:
        return b""

    def snapshot(self) -> bytes:
        return _Q.pack(self.commands.last_op)

    def missing(self, data: bytes) -> bool:
        """A checkpoint ahead of the state log names state this replica lacks: the node is
        asked to fetch it (FETCH_STATE: metadata_transfer.py) rather than `restore` raising
        out of a bus handler."""
        op: int = _Q.unpack(data)[0]
        return op > self.commands.last_op

    def restore(self, data: bytes) -> None:
        (op,) = _Q.unpack(data)
        if op > self.commands.last_op and not self.staged:  # a staged bundle covers it
            raise Divergence(f"the metadata checkpoint is at op {op} but the state log at "
                             f"{self.commands.last_op}: fetch it first (metadata state transfer)")


def reply_result(machine: MetadataMachine, reply: bytes) -> object:
    """The proposer's result of a committed command, or its IggyError raised."""
    answer = json.loads(reply)
    if "code" in answer:
        raise IggyError(answer["code"], answer.get("error", ""))
    result = machine.results.pop(answer["op"], None)
    if isinstance(result, OSError):
        raise result
    return result
