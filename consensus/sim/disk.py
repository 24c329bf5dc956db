"""A simulated disk: writes become durable after a delay; crashes and faults within a fault model.

Faults (after TigerBeetle's storage fault model, src/testing/storage.zig in its repository): a
crash loses, completes or tears (a random range overwritten with garbage) each write still in
flight; on a *faulty* disk also bit rot of durable bytes, read errors (corrupt data returned),
write corruption and misdirected writes (the data lands on another unit of the same zone, the
target keeps its old bytes).

The fault atlas keeps the damage within what the protocol tolerates: only one replica per group
gets a faulty disk, and on it at most one of the two copies of a journal slot (prepare, header
copy) and at most one of the four superblock copies is damaged at any time. Snapshot areas are
never damaged. A unit is clean again once a write to it completes intact.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from ..journal import HEADERS, PREPARES
from ..superblock import ZONE as SUPERBLOCK

# zone -> the zone holding the other copies of the same unit
_TWINS = {PREPARES: HEADERS, HEADERS: PREPARES, SUPERBLOCK: SUPERBLOCK}
# a write in flight: (due tick, zone, offset, data, token, where it lands if misdirected)
PendingWrite = tuple[int, str, int, bytes, Hashable, int]


@dataclass
class DiskFaults:
    latency_max: int = 3  # ticks until a write is durable (1..latency_max)
    crash_tear: float = 0.9  # chance a write in flight at a crash is torn (else lost or whole)
    faulty: bool = False  # the faults below apply only to the faulty disk
    bit_rot: float = 0.0  # per tick
    read_fault: float = 0.0  # per read
    write_fault: float = 0.0  # per write
    misdirect: float = 0.0  # per write


class Disk:
    def __init__(self, prng: random.Random, faults: DiskFaults, units: dict[str, int],
                 on_durable: Callable[[str, int, bytes], None] | None = None) -> None:
        self.prng, self.faults, self.units = prng, faults, units
        self.on_durable = on_durable
        self.zones: dict[str, bytearray] = {}
        self.pending: list[PendingWrite] = []
        self.tainted: set[tuple[str, int]] = set()
        self.injected = 0
        self.now = 0

    # -- Storage protocol ------------------------------------------------------------------------

    def read(self, zone: str, offset: int, size: int) -> bytes:
        buf = self.zones.get(zone, b"")
        out = bytearray(buf[offset:offset + size])
        if len(out) < size:
            out += bytes(size - len(out))
        for _, z, _, data, _, target in self.pending:  # the page cache: newest data wins
            if z == zone and target < offset + size and target + len(data) > offset:
                lo, hi = max(target, offset), min(target + len(data), offset + size)
                out[lo - offset:hi - offset] = data[lo - target:hi - target]
        f = self.faults
        if f.faulty and f.read_fault and zone in self.units and self.prng.random() < f.read_fault:
            unit = offset // self.units[zone]
            if self._may_damage(zone, unit) and out:
                self._taint(zone, unit)
                self._flip(out, 0, len(out))
        return bytes(out)

    def write(self, zone: str, offset: int, data: bytes, token: Hashable) -> None:
        f = self.faults
        target = offset
        if f.faulty and zone in self.units and f.misdirect and self.prng.random() < f.misdirect:
            size = self.units[zone]
            count = max(1, len(self.zones.get(zone, b"")) // size)
            other = self.prng.randrange(count) * size
            unit, other_unit = offset // size, other // size
            if zone == SUPERBLOCK:  # the other copy gets this (valid) version: no harm there
                if other_unit != unit and self._may_damage(zone, unit):
                    self._taint(zone, unit)
                    target = other
            elif other_unit != unit and self._may_damage(zone, unit) and \
                    self._may_damage(zone, other_unit):
                self._taint(zone, unit)
                self._taint(zone, other_unit)
                target = other
        self.pending.append((self.now + 1 + self.prng.randrange(f.latency_max), zone, offset,
                             data, token, target))

    # -- driver --------------------------------------------------------------------------------

    def tick(self, now: int) -> list[Hashable]:
        """Complete the writes due by `now`; returns their tokens in completion order."""
        self.now = now
        done: list[Hashable] = []
        if self.pending:
            keep = []
            for w in self.pending:
                if w[0] <= now:
                    self._land(w)
                    done.append(w[4])
                else:
                    keep.append(w)
            self.pending = keep
        f = self.faults
        if f.faulty and f.bit_rot and self.prng.random() < f.bit_rot:
            self._rot()
        return done

    def complete_all(self) -> list[Hashable]:
        done = [w[4] for w in self.pending]
        for w in self.pending:
            self._land(w)
        self.pending = []
        return done

    def crash(self) -> None:
        """Power loss: each write in flight is lost, lands whole, or is torn."""
        for w in self.pending:
            r = self.prng.random()
            if r < self.faults.crash_tear:
                data = bytearray(w[3])
                lo = self.prng.randrange(len(data))
                hi = min(len(data), lo + 1 + self.prng.randrange(512))
                data[lo:hi] = self.prng.randbytes(hi - lo)
                self._store(w[1], w[5], bytes(data))
            elif r < (1 + self.faults.crash_tear) / 2:
                self._store(w[1], w[5], w[3])
                if w[5] == w[2] and self.on_durable is not None:
                    self.on_durable(w[1], w[2], w[3])
        self.pending = []

    # -- internals ---------------------------------------------------------------------------

    def _land(self, w: PendingWrite) -> None:
        _, zone, offset, data, _, target = w
        f = self.faults
        if f.faulty and f.write_fault and zone in self.units and self.prng.random() < f.write_fault:
            unit = target // self.units[zone]
            if self._may_damage(zone, unit):
                self._taint(zone, unit)
                corrupt = bytearray(data)
                self._flip(corrupt, 0, len(corrupt))
                self._store(zone, target, bytes(corrupt))
                return
        self._store(zone, target, data)
        if zone in self.units and target == offset:
            self.tainted.discard((zone, offset // self.units[zone]))
        if target == offset and self.on_durable is not None:
            self.on_durable(zone, offset, data)

    def _store(self, zone: str, offset: int, data: bytes) -> None:
        buf = self.zones.setdefault(zone, bytearray())
        end = offset + len(data)
        if len(buf) < end:
            buf.extend(bytes(end - len(buf)))
        buf[offset:end] = data

    def _may_damage(self, zone: str, unit: int) -> bool:
        twin = _TWINS[zone]
        if zone == SUPERBLOCK:
            return not any(z == SUPERBLOCK and u != unit for z, u in self.tainted)
        return (twin, unit) not in self.tainted

    def _taint(self, zone: str, unit: int) -> None:
        self.tainted.add((zone, unit))
        self.injected += 1

    def _flip(self, buf: bytearray, lo: int, hi: int) -> None:
        i = self.prng.randrange(lo, hi)
        buf[i] ^= 1 << self.prng.randrange(8)

    def _rot(self) -> None:
        zone = self.prng.choice(sorted(self.units))
        buf = self.zones.get(zone)
        size = self.units[zone]
        if not buf:
            return
        unit = self.prng.randrange(max(1, len(buf) // size))
        if self._may_damage(zone, unit):
            self._taint(zone, unit)
            lo = unit * size
            self._flip(buf, lo, min(len(buf), lo + size))
