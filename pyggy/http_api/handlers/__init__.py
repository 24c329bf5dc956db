"""One small module per route family; each handler takes a `Call` and returns JSON-able data
(200), `Created(data)` (201), or None (204)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Created:
    data: Any
