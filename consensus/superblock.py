"""The superblock: a replica's durable VSR state for one group, in four checksummed copies.

Every update writes all four copies with one new sequence number, one pair of copies first and
the other only once those are durable: a crash tears at most one pair, so the newest completed
state always survives in the other pair, and one corrupt copy (bit rot) never makes the state
regress. Open picks the highest sequence held by two intact copies or more (a single copy is an
update a crash cut short: simulator seed 6005239), and the next update starts with the
pair holding fewer intact copies of it (after a crash tore one pair, the intact pair is kept
until the torn one has been rewritten).

Copy layout: fixed fields (`_FIXED`), the header of the checkpoint op (256 B), `vh_max` view
headers (256 B each: the log suffix [commit_max, op] known when the copy was written, all from
the log of `log_view`, so a restarted replica still knows which prepares it holds for that
view), then xxh3-128 of everything before.
"""

from __future__ import annotations

import struct
from collections.abc import Hashable
from dataclasses import dataclass, field

import xxhash

from .message import HEADER_SIZE, ZERO16
from .storage import Storage

ZONE = "superblock"
COPIES = 4
MAGIC = b"PYSB"
VERSION = 1
_FIXED = struct.Struct("<4sHQ16sQBBIIQQQBQ16sH")


class SuperblockError(Exception):
    """No intact copy, or a copy of another cluster, group or replica."""


@dataclass(frozen=True)
class SuperblockState:
    view: int = 0
    log_view: int = 0
    commit_max: int = 0
    op: int = 0
    checkpoint_op: int = 0
    checkpoint_header: bytes = bytes(HEADER_SIZE)
    snapshot_area: int = 0
    snapshot_size: int = 0
    snapshot_checksum: bytes = ZERO16
    view_headers: tuple[bytes, ...] = field(default=())


class Superblock:
    def __init__(self, storage: Storage, *, cluster: bytes, group: int, replica: int,
                 replica_count: int, vh_max: int) -> None:
        self.storage = storage
        self.cluster, self.group, self.replica = cluster, group, replica
        self.replica_count, self.vh_max = replica_count, vh_max
        self.copy_size = _FIXED.size + HEADER_SIZE * (1 + vh_max) + 16
        self.sequence = 0
        self._pairs = ((0, 2), (2, 4))
        self._inflight: tuple[int, SuperblockState, set[int]] | None = None
        self._next: SuperblockState | None = None

    def encode(self, state: SuperblockState, sequence: int) -> bytes:
        if len(state.view_headers) > self.vh_max or state.log_view > state.view:
            raise ValueError("superblock state out of bounds")
        fixed = _FIXED.pack(MAGIC, VERSION, sequence, self.cluster, self.group, self.replica,
                            self.replica_count, state.view, state.log_view, state.commit_max,
                            state.op, state.checkpoint_op, state.snapshot_area, state.snapshot_size,
                            state.snapshot_checksum, len(state.view_headers))
        pad = bytes(HEADER_SIZE * (self.vh_max - len(state.view_headers)))
        data = fixed + state.checkpoint_header + b"".join(state.view_headers) + pad
        return data + xxhash.xxh3_128_digest(data)

    def decode(self, data: bytes) -> tuple[int, SuperblockState] | None:
        """(sequence, state) of an intact copy, None if torn or corrupt."""
        body, seal = data[:-16], data[-16:]
        if len(data) != self.copy_size or xxhash.xxh3_128_digest(body) != seal:
            return None
        (magic, version, sequence, cluster, group, replica, replica_count, view, log_view,
         commit_max, op, checkpoint_op, area, snap_size, snap_sum,
         vh_count) = _FIXED.unpack_from(body)
        if magic != MAGIC or version != VERSION or vh_count > self.vh_max or log_view > view:
            return None
        if (cluster, group, replica, replica_count) != (self.cluster, self.group, self.replica,
                                                        self.replica_count):
            raise SuperblockError("superblock of another cluster, group or replica")
        pos = _FIXED.size
        cp_header = body[pos:pos + HEADER_SIZE]
        pos += HEADER_SIZE
        vh = tuple(body[pos + i * HEADER_SIZE:pos + (i + 1) * HEADER_SIZE] for i in range(vh_count))
        return sequence, SuperblockState(view, log_view, commit_max, op, checkpoint_op, cp_header,
                                         area, snap_size, snap_sum, vh)

    def open(self) -> SuperblockState:
        found = [self.decode(self.storage.read(ZONE, copy * self.copy_size, self.copy_size))
                 for copy in range(COPIES)]
        intact = [got for got in found if got is not None]
        if not intact:
            raise SuperblockError("no intact superblock copy")
        counts: dict[int, int] = {}
        for got in intact:
            counts[got[0]] = counts.get(got[0], 0) + 1
        # A sequence on one copy only is an update a crash cut short (every update ends with
        # all four copies durable, and bit rot damages one): the replica never acted on it, and
        # one more fault would take it away after the replica had. The newest sequence on two
        # copies or more wins; a single copy only when nothing better is left.
        quorum = [got for got in intact if counts[got[0]] >= 2]
        best = max(quorum or intact, key=lambda got: got[0])
        self.sequence = max(counts)  # the next update never reuses a stray copy's number
        # The next update writes first the pair holding fewer intact newest copies, so the
        # pair that carries the current state is overwritten only once the other is durable.
        newest = [got is not None and got[0] == best[0] for got in found]
        self._pairs = ((2, 4), (0, 2)) if sum(newest[:2]) > sum(newest[2:]) else ((0, 2), (2, 4))
        return best[1]

    def format(self, state: SuperblockState) -> None:
        """Write every copy of a fresh superblock (tokens ("sb-format", copy))."""
        self.sequence = 1
        data = self.encode(state, 1)
        for copy in range(COPIES):
            self.storage.write(ZONE, copy * self.copy_size, data, ("sb-format", copy))

    @property
    def busy(self) -> bool:
        return self._inflight is not None

    def write(self, state: SuperblockState) -> None:
        """Make `state` durable after any update in flight; the latest request wins."""
        if self._inflight is None:
            self._start(state)
        else:
            self._next = state

    def _start(self, state: SuperblockState) -> None:
        self.sequence += 1
        first = self._pairs[0]
        self._inflight = (self.sequence, state, set(range(*first)))
        self._issue(*first)

    def _issue(self, first: int, last: int) -> None:
        assert self._inflight is not None
        sequence, state, _ = self._inflight
        data = self.encode(state, sequence)
        for copy in range(first, last):
            self.storage.write(ZONE, copy * self.copy_size, data, ("sb", sequence, copy))

    def on_write_done(self, token: Hashable) -> SuperblockState | None:
        """Feed a ("sb", ...) token; returns the state once all four copies are durable."""
        if self._inflight is None or not isinstance(token, tuple) or token[0] != "sb":
            return None
        sequence, state, waiting = self._inflight
        if token[1] != sequence:
            return None
        waiting.discard(token[2])
        if waiting:
            return None
        first, second = self._pairs
        if first[0] <= token[2] < first[1]:
            self._inflight = (sequence, state, set(range(*second)))
            self._issue(*second)
            return None
        self._inflight = None
        if self._next is not None:
            nxt, self._next = self._next, None
            self._start(nxt)
        return state
