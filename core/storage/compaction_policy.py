"""A topic's compaction settings (Kafka's ``cleanup.policy`` and the compaction topic
configs): read by retention and the topic options at every start; the compaction itself is
core/storage/compaction.py, imported when a pass runs."""

from __future__ import annotations

from collections.abc import Callable

from pyggy.core.lean import lean_frozen
from pyggy.core.model import TopicOptions

KEYS = ("cleanup.policy", "delete.retention.ms", "min.cleanable.dirty.ratio",
        "min.compaction.lag.ms", "max.compaction.lag.ms")
_DEFAULTS = {"cleanup.policy": "delete", "delete.retention.ms": "86400000",
             "min.cleanable.dirty.ratio": "0.5", "min.compaction.lag.ms": "0",
             "max.compaction.lag.ms": str(2**63 - 1)}
_US_MAX = 2**63 - 1
# is the record of producer id `pid` at `offset` in an aborted transaction?
Aborted = Callable[[int, int], bool]


@lean_frozen
class Policy:
    """A compacted topic's settings (Kafka topic configs, durations in µs)."""

    delete: bool  # `compact,delete`: retention deletes old segments as well
    delete_retention_us: int
    min_dirty_ratio: float
    min_lag_us: int
    max_lag_us: int


def _ms(text: str) -> int:
    return min(max(int(text), 0), _US_MAX // 1000) * 1000


def check_value(name: str, text: str) -> bool:
    """Whether `text` is a valid value of compaction config `name` (either door)."""
    try:
        if name == "cleanup.policy":
            items = [x.strip() for x in text.split(",") if x.strip()]
            return bool(items) and all(x in ("compact", "delete") for x in items)
        if name == "min.cleanable.dirty.ratio":
            return 0.0 <= float(text) <= 1.0
        return int(text) >= (1 if name == "max.compaction.lag.ms" else 0)
    except ValueError:
        return False


def policy_of(opts: TopicOptions) -> Policy | None:
    """The topic's compaction policy, None unless ``cleanup.policy`` includes compact."""
    values = dict(_DEFAULTS)
    for key, _kind, raw in opts.explicit:
        if key.startswith("kafka.") and key[6:] in values:
            text = raw.decode(errors="replace")
            if check_value(key[6:], text):
                values[key[6:]] = text
    items = {x.strip() for x in values["cleanup.policy"].split(",")}
    if "compact" not in items:
        return None
    return Policy("delete" in items, _ms(values["delete.retention.ms"]),
                  float(values["min.cleanable.dirty.ratio"]),
                  _ms(values["min.compaction.lag.ms"]), _ms(values["max.compaction.lag.ms"]))
