"""Parsers for Iggy's human-readable config values: durations ("30 s") and sizes ("64 MiB").

Durations follow Rust's `humantime` (used by Iggy): one or more `<number><unit>` parts, spaces
optional, e.g. "30 s", "1 m", "7 days", "500ms", "1h 30m". Sizes follow the `byte_unit` crate:
decimal units (KB = 1000) and binary units (KiB = 1024), e.g. "64 MiB", "1 GB", "100 KB".
"""

from __future__ import annotations

import re

_DURATION_UNITS: dict[str, float] = {}
for _names, _seconds in (
    (("ns", "nsec", "nsecs", "nanos", "nanosecond", "nanoseconds"), 1e-9),
    (("us", "µs", "usec", "usecs", "micros", "microsecond", "microseconds"), 1e-6),
    (("ms", "msec", "msecs", "millis", "millisecond", "milliseconds"), 1e-3),
    (("s", "sec", "secs", "second", "seconds"), 1.0),
    (("m", "min", "mins", "minute", "minutes"), 60.0),
    (("h", "hr", "hrs", "hour", "hours"), 3600.0),
    (("d", "day", "days"), 86400.0),
    (("w", "week", "weeks"), 604800.0),
    (("M", "month", "months"), 2_630_016.0),  # 30.44 days, as humantime
    (("y", "year", "years"), 31_557_600.0),  # 365.25 days, as humantime
):
    for _name in _names:
        _DURATION_UNITS[_name] = _seconds

_SIZE_UNITS: dict[str, int] = {"b": 1, "": 1}
for _i, _p in enumerate("kmgtpe", start=1):
    _SIZE_UNITS[_p] = 1000**_i
    _SIZE_UNITS[_p + "b"] = 1000**_i
    _SIZE_UNITS[_p + "ib"] = 1024**_i

_DURATION_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Zµ]+)")
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*")


def parse_duration(text: str | int | float) -> float:
    """Return seconds for a humantime string ("30 s", "1h 30m", "500ms"); numbers are seconds."""
    if isinstance(text, bool):
        raise ValueError(f"not a duration: {text!r}")
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError(f"negative duration: {text!r}")
        return float(text)
    s = text.strip().replace("_", "")
    if not s:
        raise ValueError("empty duration")
    if re.fullmatch(r"\d+(?:\.\d+)?", s):
        return float(s)
    total, pos = 0.0, 0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if not m:
            raise ValueError(f"invalid duration: {text!r}")
        number, unit = m.groups()
        factor = _DURATION_UNITS.get(unit)  # case-sensitive, as humantime ("M" = month)
        if factor is None:
            raise ValueError(f"unknown duration unit {unit!r} in {text!r}")
        total += float(number) * factor
        pos = m.end()
        while pos < len(s) and s[pos] in " \t":
            pos += 1
    return total


def parse_size(text: str | int) -> int:
    """Return bytes for a size string ("64 MiB", "1 GB", "100 KB", "1200 B"); ints are bytes."""
    if isinstance(text, bool):
        raise ValueError(f"not a size: {text!r}")
    if isinstance(text, int):
        if text < 0:
            raise ValueError(f"negative size: {text!r}")
        return text
    m = _SIZE.fullmatch(text.replace("_", ""))
    if not m:
        raise ValueError(f"invalid size: {text!r}")
    number, unit = m.groups()
    factor = _SIZE_UNITS.get(unit.lower())
    if factor is None:
        raise ValueError(f"unknown size unit {unit!r} in {text!r}")
    return int(round(float(number) * factor))


def format_duration(seconds: float) -> str:
    """Render seconds the way Iggy's config files write them ("30 s", "1 m", "500 ms")."""
    for unit, size in (("days", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and float(seconds / size).is_integer():
            return f"{int(seconds // size)} {unit}"
    if seconds == 0:
        return "0 s"
    return f"{seconds * 1000:g} ms"


def format_size(nbytes: int) -> str:
    """Render bytes with the largest exact binary unit ("64 MiB"), else bytes."""
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if nbytes >= size and nbytes % size == 0:
            return f"{nbytes // size} {unit}"
    return f"{nbytes} B"
