"""Iggy's human-readable durations ("30 s", "7 days") and sizes ("64 MiB", "1 GB")."""

from __future__ import annotations

import re

_DURATION_UNITS = {
    "us": 1e-6, "µs": 1e-6, "usec": 1e-6, "ms": 1e-3, "msec": 1e-3,
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400, "w": 604800, "week": 604800, "weeks": 604800,
}
_SIZE_UNITS = {
    "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
    "k": 1000, "m": 1000**2, "g": 1000**3,
}
_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Zµ]*)")


def parse_duration(text: str | int | float) -> float:
    """Seconds in a humantime string such as "1 m", "500ms" or "1h 30m"; numbers are seconds."""
    if isinstance(text, int | float):
        return float(text)
    s = text.strip()
    if not s:
        raise ValueError("empty duration")
    total, pos = 0.0, 0
    while pos < len(s):
        m = _PART.match(s, pos)
        if not m or m.end() == pos:
            raise ValueError(f"bad duration {text!r}")
        unit = m.group(2).lower() or "s"
        if unit not in _DURATION_UNITS:
            raise ValueError(f"bad duration unit in {text!r}")
        total += float(m.group(1)) * _DURATION_UNITS[unit]
        pos = m.end()
    return total


def parse_size(text: str | int) -> int:
    """Bytes in a size string such as "64 MiB", "1 GB", "100 KB"; integers are bytes."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if not m:
        raise ValueError(f"bad size {text!r}")
    unit = m.group(2).lower() or "b"
    if unit not in _SIZE_UNITS:
        raise ValueError(f"bad size unit in {text!r}")
    return int(float(m.group(1)) * _SIZE_UNITS[unit])
