"""The write-ahead journal of one group: a ring of prepare slots plus a ring of header copies.

Op `n` lives in slot `n % slot_count` of two zones: `wal_prepares` (the whole prepare) and
`wal_headers` (its 256-byte header again). Each entry starts with a 32-byte frame: a journal-local
write sequence, the prepare's checksum and a seal over both, so recovery can tell which of the
two copies of a slot is newer. The redundant header is what makes protocol-aware recovery
possible: a prepare whose body rotted, or whose write was misdirected, is still *known* (its
header survives in the other zone), so the replica reports it as faulty instead of forgetting an
op it may have acknowledged. A slot with neither copy intact was never durable (a torn write), so
it may be treated as empty.

The header copy is written only once the prepare is durable, so an intact header copy whose
prepare is damaged proves the prepare *was* durable (it rotted or was misdirected since: the op
may have been acknowledged); a prepare torn by a crash never got its header copy, so the replica
knows it never acknowledged it. Writes to one slot are serialised (a newer write waits for the
one in flight); an op is durable once its header copy is.
"""

from __future__ import annotations

import struct
from collections.abc import Hashable

import xxhash

from .message import HEADER_SIZE, DecodeError, Message, decode, decode_header
from .storage import Storage

PREPARES = "wal_prepares"
HEADERS = "wal_headers"
_FRAME = struct.Struct("<Q16sQ")
FRAME = _FRAME.size
_HEADER_ENTRY = FRAME + HEADER_SIZE
_SIZE_AT = 48


def _frame(seq: int, checksum: bytes) -> bytes:
    head = struct.pack("<Q16s", seq, checksum)
    return head + struct.pack("<Q", xxhash.xxh3_64_intdigest(head))


def _unframe(data: bytes) -> tuple[int, bytes] | None:
    seq, checksum, seal = _FRAME.unpack_from(data)
    if xxhash.xxh3_64_intdigest(data[:24]) != seal:
        return None
    return seq, checksum


class Recovered:
    """What recovery found for one op: its header and, if intact, the whole prepare."""

    __slots__ = ("header", "prepare")

    def __init__(self, header: Message, prepare: Message | None) -> None:
        self.header, self.prepare = header, prepare


class Journal:
    def __init__(self, storage: Storage, slot_count: int, prepare_max: int) -> None:
        self.storage = storage
        self.slot_count = slot_count
        self.prepare_max = prepare_max
        self.slot_size = FRAME + prepare_max
        self.seq = 0
        self._durable: dict[int, tuple[int, bytes]] = {}  # slot -> (op, checksum) on disk
        # slot -> (op, checksum, seq, framed header)
        self._inflight: dict[int, tuple[int, bytes, int, bytes]] = {}
        self._queued: dict[int, tuple[int, bytes, bytes]] = {}

    # -- writes -----------------------------------------------------------------------------------

    def write(self, op: int, raw: bytes, checksum: bytes) -> None:
        """Persist a prepare; `on_write_done` reports (op, checksum) once it is durable."""
        if len(raw) > self.prepare_max:
            raise ValueError(f"prepare of {len(raw)} bytes exceeds the slot")
        slot = op % self.slot_count
        if slot in self._inflight:
            self._queued[slot] = (op, raw, checksum)
            return
        self._start(slot, op, raw, checksum)

    def _start(self, slot: int, op: int, raw: bytes, checksum: bytes) -> None:
        self.seq += 1
        frame = _frame(self.seq, checksum)
        self._durable.pop(slot, None)
        self._inflight[slot] = (op, checksum, self.seq, frame + raw[:HEADER_SIZE])
        self.storage.write(PREPARES, slot * self.slot_size, frame + raw, ("j", slot, self.seq, 0))

    def on_write_done(self, token: Hashable) -> tuple[int, bytes] | None:
        if not isinstance(token, tuple) or token[0] != "j":
            return None
        slot, seq, phase = token[1], token[2], token[3]
        entry = self._inflight.get(slot)
        if entry is None or entry[2] != seq:
            return None
        if phase == 0:  # the prepare is down: now its header copy
            self.storage.write(HEADERS, slot * _HEADER_ENTRY, entry[3], ("j", slot, seq, 1))
            return None
        del self._inflight[slot]
        op, checksum = entry[0], entry[1]
        self._durable[slot] = (op, checksum)
        queued = self._queued.pop(slot, None)
        if queued is not None:
            self._start(slot, *queued)
        return op, checksum

    def durable(self, op: int, checksum: bytes) -> bool:
        return self._durable.get(op % self.slot_count) == (op, checksum)

    def pending(self, op: int, checksum: bytes) -> bool:
        slot = op % self.slot_count
        entry = self._inflight.get(slot)
        queued = self._queued.get(slot)
        return ((entry is not None and entry[0] == op and entry[1] == checksum)
                or (queued is not None and queued[0] == op and queued[2] == checksum))

    # -- reads ------------------------------------------------------------------------------------

    def read(self, op: int) -> Message | None:
        """The intact prepare of `op` in its slot, or None (overwritten, torn, corrupt)."""
        got = self._read_prepare(op % self.slot_count)
        if got is None or got[1].op != op or got[2] is None:
            return None
        return got[2]

    def _read_prepare(self, slot: int) -> tuple[int, Message, Message | None] | None:
        """Frame and header first, then only the bytes the header declares: a slot is as large
        as the largest prepare (8 MiB for a partition), so reading whole slots made every
        recovery scan and repair answer read (and zero-fill) megabytes per op."""
        base = slot * self.slot_size
        head = self.storage.read(PREPARES, base, _HEADER_ENTRY)
        framed = _unframe(head)
        if framed is None:
            return None
        seq, checksum = framed
        try:
            header = decode_header(head[FRAME:])
        except DecodeError:
            return None
        if header.checksum != checksum:
            return None
        size = int.from_bytes(head[FRAME + _SIZE_AT:FRAME + _SIZE_AT + 4], "little")
        prepare = None
        if HEADER_SIZE <= size <= self.prepare_max:
            body = self.storage.read(PREPARES, base + _HEADER_ENTRY, size - HEADER_SIZE)
            try:
                prepare = decode(head[FRAME:] + body, self.prepare_max)
            except DecodeError:
                prepare = None
        return seq, header, prepare

    def _read_header(self, slot: int) -> tuple[int, Message] | None:
        data = self.storage.read(HEADERS, slot * _HEADER_ENTRY, _HEADER_ENTRY)
        framed = _unframe(data)
        if framed is None:
            return None
        try:
            header = decode_header(data[FRAME:])
        except DecodeError:
            return None
        return (framed[0], header) if header.checksum == framed[1] else None

    def recover(self) -> dict[int, Recovered]:
        """Scan every slot: op -> what is known of it (newest copy wins; see module doc)."""
        found: dict[int, Recovered] = {}
        for slot in range(self.slot_count):
            p = self._read_prepare(slot)
            h = self._read_header(slot)
            if p is not None and p[1].op % self.slot_count != slot:
                p = None  # a misdirected write landed here
            if h is not None and h[1].op % self.slot_count != slot:
                h = None
            self.seq = max(self.seq, p[0] if p else 0, h[0] if h else 0)
            if p is None and h is None:
                continue
            if p is not None and (h is None or p[0] >= h[0] or p[1].checksum == h[1].checksum):
                header, prepare = p[1], p[2]
            else:
                assert h is not None
                header, prepare = h[1], None
            if prepare is not None:
                self._durable[slot] = (header.op, header.checksum)
            found[header.op] = Recovered(header, prepare)
        return found
