"""Where producer ids continue after a restart: `<data>/kafka/producer_ids`, the first id not
yet reserved (see ProducerStates: ids are reserved in blocks), as decimal text in two
checksummed copies (core/small_file.py).

If both copies are damaged, ids continue far above any the lost mark could have allowed (the
current time in microseconds, above 10**15, stored at once): an id is never handed out twice;
an error says so and the damaged copies are copied to lost+found."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from pyggy.core.lost_found import LostAndFound
from pyggy.core.small_file import CorruptFile, SmallFile, decimal, decimal_value

log = logging.getLogger(__name__)
MAX_MARK = 2**62


class ProducerIdFile:
    """The reservation mark, always fsynced (a reused producer id would mix two producers'
    sequences); it is written once per block of ids."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.file = SmallFile(self.path, legacy=decimal)

    def load(self, default: int) -> int:
        try:
            payload = self.file.read()
            if payload is None:
                return default
            mark = decimal_value(payload)
            if mark >= MAX_MARK:
                raise ValueError(f"mark {mark} is out of range")
        except (CorruptFile, ValueError) as e:
            # ids must not be handed out twice: start far above any the old mark allowed
            fresh = time.time_ns() // 1000
            log.error("producer id mark unreadable (%s): producer ids continue from %d", e,
                      fresh)
            found = LostAndFound.near(self.path)
            for p in (self.file.path, self.file.copy):
                if p.exists():
                    found.copy(p, "damaged producer id mark")
            self.store(fresh)  # at once: a restart before the first new id must not go back
            return fresh
        return max(default, mark)

    def store(self, next_free: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file.write(f"{next_free}".encode())


class IdBlocks:
    """A cluster's producer-id mark, the same on every replica: each block the metadata primary
    takes is a replicated change (kafka_wire/replicated.py, `kafka_producer_ids`) that every
    replica applies, so the primary after a failover continues above every id handed out."""

    def __init__(self, file: ProducerIdFile, first_id: int, size: int) -> None:
        self.file = file
        self.size = size
        self.mark = file.load(first_id)

    def apply(self, body: dict[str, object]) -> int:
        """The first id of the block granted (at least the proposer's `floor`)."""
        floor = body["floor"]
        if type(floor) is not int:
            raise ValueError("floor")
        start = max(self.mark, floor)
        self.file.store(start + self.size)  # OSError: nothing changed here
        self.mark = start + self.size
        return start
