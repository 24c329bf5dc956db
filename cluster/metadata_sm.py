"""The metadata state machine: the engine's metadata commands, replicated by the metadata group.

A request body is one engine command (the JSON dict `CommandLog.propose` gets, timestamps and
password hashes made by the proposer, so every replica applies identical bytes). A committed op
runs `MetadataService.apply` on every replica: the state machine, the state log (the command
logged with its op, so a restart knows what it already applied), the partitions' files, and
— through the engine's create/delete listeners — the partition groups of this node. The reply
is `{"op": N}` or `{"code": C, "error": "..."}` with the Iggy error code, the same on every
replica; the proposing node takes the Python result of its own apply from `results`.

Snapshot: the state log is already durable (fsync per command), so a checkpoint records the op
it reached; restoring one ahead of the local state log (state transfer) is not implemented yet.
"""

from __future__ import annotations

import json
import logging
import struct
from collections import OrderedDict
from collections.abc import Sequence

from pyggy.consensus.status import Divergence
from pyggy.core.engine import LogEngine
from pyggy.core.errors import IggyError
from pyggy.core.storage.outage import StorageFailure

log = logging.getLogger(__name__)
COMMAND = 32  # the operation of every metadata request
RESULTS_MAX = 1024
_Q = struct.Struct("<Q")


class MetadataMachine:
    def __init__(self, engine: LogEngine) -> None:
        self.engine = engine
        self.commands = engine.commands
        self.results: OrderedDict[int, object] = OrderedDict()

    def stamp(self, operation: int, body: bytes,
              pending: Sequence[tuple[int, bytes]]) -> bytes | None:
        return body if operation == COMMAND else None

    def apply(self, op: int, operation: int, body: bytes, timestamp: int) -> bytes:
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
        self.results[op] = result
        while len(self.results) > RESULTS_MAX:
            self.results.popitem(last=False)
        return json.dumps({"op": op}).encode()

    def read(self, query: bytes) -> bytes:
        return b""

    def snapshot(self) -> bytes:
        return _Q.pack(self.commands.last_op)

    def missing(self, data: bytes) -> bool:
        return False  # state transfer of the state log is not implemented: restore refuses

    def restore(self, data: bytes) -> None:
        (op,) = _Q.unpack(data)
        if op > self.commands.last_op:
            raise Divergence(f"the metadata checkpoint is at op {op} but the state log at "
                             f"{self.commands.last_op}: state transfer is not implemented yet")


def reply_result(machine: MetadataMachine, reply: bytes) -> object:
    """The proposer's result of a committed command, or its IggyError raised."""
    answer = json.loads(reply)
    if "code" in answer:
        raise IggyError(answer["code"], answer.get("error", ""))
    return machine.results.pop(answer["op"], None)
