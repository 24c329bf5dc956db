"""One small module per route family; each handler takes a `Call` and returns JSON-able data
(200), `Created(data)` (201), None (204) or a ready response (`/metrics`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aiohttp import web

# what handlers answer as the JSON body (`json.dumps` checks what objects and arrays hold)
Json = Mapping[str, object] | Sequence[object] | str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class Created:
    data: Json


Answer = Json | Created | web.StreamResponse
