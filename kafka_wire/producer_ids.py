"""Where producer ids continue after a restart: `<data>/kafka/producer_ids`, one decimal line
holding the first id not yet reserved (see ProducerStates: ids are reserved in blocks)."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)


class ProducerIdFile:
    """The reservation mark, replaced atomically and always fsynced (a reused producer id
    would mix two producers' sequences); it is written once per block of ids."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self, default: int) -> int:
        try:
            text = self.path.read_text().strip()
        except FileNotFoundError:
            return default
        if not text.isdigit() or int(text) >= 2**62:
            # ids must not be handed out twice: start far above any the old mark allowed
            fresh = time.time_ns() // 1000
            log.error("%s is unreadable (%r): producer ids continue from %d", self.path,
                      text[:40], fresh)
            return fresh
        return max(default, int(text))

    def store(self, next_free: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w") as f:
            f.write(f"{next_free}\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
