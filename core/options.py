"""The topic option catalog (Iggy 0.9): parsing TLV entries into TopicOptions and describing it."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import replace

from pyggy.core.errors import ErrorCode, IggyError
from pyggy.core.model import NEVER_EXPIRE, UNLIMITED_SIZE, TopicOptions
from pyggy.core.storage import compaction_policy
from pyggy.core.units import parse_duration, parse_size

# TLV value kinds
RAW, STRING, BOOL = 1, 2, 3
INT_KINDS = {4: "<b", 5: "<h", 6: "<i", 7: "<q", 9: "<B", 10: "<H", 11: "<I", 12: "<Q"}
UINT8, UINT32, UINT64 = 9, 11, 12

# option entries as requests carry them: (key, kind, value bytes)
OptionEntries = Sequence[tuple[str, int, bytes]]
MIN_SEGMENT = 1 << 20
MAX_SEGMENT = 1 << 30
# Iggy updates the first three; pyggy also lets tiering and the fsync policy change on a live
# topic (every append reads the policy, so the change holds from the next one)
UPDATABLE = {"compression_algorithm", "message_expiry", "max_topic_size", "local_retention_bytes",
             "local_retention_segments", "enforce_fsync"}


def _bad(key: str) -> IggyError:
    return IggyError(ErrorCode.INVALID_OPTION_VALUE, f"invalid value for option {key}")


def _int(key: str, kind: int, raw: bytes) -> int:
    fmt = INT_KINDS.get(kind)
    if fmt is None or struct.calcsize(fmt) != len(raw):
        raise _bad(key)
    value: int = struct.unpack(fmt, raw)[0]
    if value < 0:
        raise _bad(key)
    return value


def _text(key: str, raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise _bad(key) from None


def _bool(key: str, kind: int, raw: bytes) -> bool:
    if kind == BOOL and len(raw) == 1 and raw[0] in (0, 1):
        return raw == b"\x01"
    if kind == STRING and _text(key, raw).lower() in ("true", "false"):
        return _text(key, raw).lower() == "true"
    raise _bad(key)


def _duration_us(key: str, kind: int, raw: bytes) -> int:
    if kind == STRING:
        text = _text(key, raw).strip().lower()
        if text in ("none", "never", "unlimited", "never_expire"):
            return NEVER_EXPIRE
        try:
            return int(parse_duration(text) * 1_000_000)
        except ValueError:
            raise _bad(key) from None
    value = _int(key, kind, raw)
    return NEVER_EXPIRE if value == 0 else value


def _size(key: str, kind: int, raw: bytes, zero: int) -> int:
    if kind == STRING:
        text = _text(key, raw).strip().lower()
        if text in ("unlimited", "none"):
            return UNLIMITED_SIZE
        try:
            return parse_size(text)
        except ValueError:
            raise _bad(key) from None
    value = _int(key, kind, raw)
    return zero if value == 0 else value


def _apply(opts: TopicOptions, key: str, kind: int, raw: bytes) -> None:
    if key == "compression_algorithm":
        if kind == STRING:
            name = _text(key, raw).lower()
            if name not in ("none", "gzip"):
                raise _bad(key)
            opts.compression_algorithm = 1 if name == "none" else 2
        else:
            value = _int(key, kind, raw)
            if value not in (1, 2):
                raise _bad(key)
            opts.compression_algorithm = value
    elif key == "message_expiry":
        opts.message_expiry = _duration_us(key, kind, raw)
    elif key == "max_topic_size":
        opts.max_topic_size = _size(key, kind, raw, UNLIMITED_SIZE)
    elif key == "segment_size":
        size = _size(key, kind, raw, 1 << 30)
        if not MIN_SEGMENT <= size <= MAX_SEGMENT or size % 512:
            raise IggyError(ErrorCode.INVALID_OPTION_VALUE, "segment_size must be a 512-byte "
                            "multiple between 1 MiB and 1 GiB")
        opts.segment_size = size
    elif key == "enforce_fsync":
        opts.enforce_fsync = _bool(key, kind, raw)
    elif key == "messages_required_to_save":
        value = _int(key, kind, raw)
        if not 1 <= value <= 16 * 1024 * 1024:
            raise _bad(key)
        opts.messages_required_to_save = value
    elif key == "size_of_messages_required_to_save":
        value = _size(key, kind, raw, 1 << 20)
        if value > MAX_SEGMENT:
            raise _bad(key)
        opts.size_of_messages_required_to_save = value
    elif key == "preallocate_segments":
        opts.preallocate_segments = _bool(key, kind, raw)
    elif key == "local_retention_bytes":
        opts.local_retention_bytes = _size(key, kind, raw, UNLIMITED_SIZE)
    elif key == "local_retention_segments":
        if kind == STRING:
            text = _text(key, raw).strip().lower()
            if text in ("unlimited", "none"):
                text = "0"
            if not text.isdigit():
                raise _bad(key)
            opts.local_retention_segments = int(text)
        else:
            opts.local_retention_segments = _int(key, kind, raw)
    elif key.startswith("kafka.") and kind == STRING and len(key) > 6:
        text = _text(key, raw)  # a Kafka topic config kept for the Kafka door (`kafka.<name>`)
        if key[6:] in compaction_policy.KEYS and not compaction_policy.check_value(
                key[6:], text.strip()):
            raise _bad(key)  # the compactor's settings are checked for both doors
    elif key in ("durability", "consumer_offset_durability"):
        mode = _text(key, raw) if kind == STRING else ""
        if mode not in ("replicated", "persisted"):
            raise _bad(key)
        setattr(opts, key, mode)
    else:
        raise IggyError(ErrorCode.UNSUPPORTED_OPTION_KEY, f"unsupported option {key}")


def topic_options(entries: OptionEntries,
                  base: TopicOptions | None = None, update: bool = False,
                  reset: Sequence[str] = ()) -> TopicOptions:
    """Validate option entries and return the resulting options (a new object).

    With `update`, only the updatable keys are accepted and `base` is patched; the keys in
    `reset` (updatable or `kafka.*`) first go back to their defaults and stop being explicit.
    """
    opts = replace(base, explicit=list(base.explicit)) if base else TopicOptions()
    defaults = TopicOptions()
    for key in reset:
        if key not in UPDATABLE and not (key.startswith("kafka.") and len(key) > 6):
            raise IggyError(ErrorCode.UNSUPPORTED_OPTION_KEY, f"option {key} is not updatable")
        if key in UPDATABLE:
            setattr(opts, key, getattr(defaults, key))
        opts.explicit = [e for e in opts.explicit if e[0] != key]
    seen: set[str] = set()
    for key, kind, raw in entries:
        if key in seen:
            raise IggyError(ErrorCode.INVALID_OPTION_VALUE, f"duplicate option {key}")
        seen.add(key)
        if update and key not in UPDATABLE and not key.startswith("kafka."):
            raise IggyError(ErrorCode.UNSUPPORTED_OPTION_KEY, f"option {key} is not updatable")
        _apply(opts, key, kind, bytes(raw))
        if not update:  # create admission stores its own parse, in the key's canonical kind
            kind, raw = _canonical(opts).get(key, (kind, raw))
        opts.explicit = [e for e in opts.explicit if e[0] != key] + [(key, kind, bytes(raw))]
    return opts


def reject_options(entries: OptionEntries) -> None:
    """Streams and users have empty catalogs: any key is unsupported."""
    if entries:
        raise IggyError(ErrorCode.UNSUPPORTED_OPTION_KEY, f"unsupported option {entries[0][0]}")


def _u64(v: int) -> bytes:
    return struct.pack("<Q", v)


# (key, kind, default bytes, description) for DESCRIBE_OPTIONS scope 1 (topic).
TOPIC_CATALOG: list[tuple[str, int, bytes, str]] = [
    ("compression_algorithm", STRING, b"none", "Compression algorithm: none or gzip"),
    ("consumer_offset_durability", STRING, b"replicated",
     "Durability of consumer offsets: replicated or persisted"),
    ("durability", STRING, b"replicated", "Durability of messages: replicated or persisted"),
    ("enforce_fsync", BOOL, b"\x00", "fsync every append before acknowledging it"),
    ("local_retention_bytes", UINT64, _u64(UNLIMITED_SIZE),
     "Tiered storage: bytes kept on local disk; older archived segments are read from the "
     "archive"),
    ("local_retention_segments", UINT64, _u64(0),
     "Tiered storage: newest segments kept on local disk (0 = all); older archived segments "
     "are read from the archive"),
    ("max_topic_size", UINT64, _u64(UNLIMITED_SIZE), "Maximum topic size in bytes"),
    ("message_expiry", UINT64, _u64(NEVER_EXPIRE), "Message expiry in microseconds"),
    ("messages_required_to_save", UINT32, struct.pack("<I", 1024),
     "Messages buffered before a flush"),
    ("preallocate_segments", BOOL, b"\x00", "Preallocate segment files"),
    ("segment_size", UINT64, _u64(1 << 30), "Segment size in bytes (512-byte multiple)"),
    ("size_of_messages_required_to_save", UINT64, _u64(1 << 20),
     "Bytes buffered before a flush"),
]


def derived_entries(opts: TopicOptions) -> list[tuple[str, int, bytes]]:
    """Effective values of the catalog keys not set explicitly (TopicHeader's derived block)."""
    explicit = {k for k, _, _ in opts.explicit}
    return [(k, kind, raw) for k, (kind, raw) in _canonical(opts).items() if k not in explicit]


def _canonical(opts: TopicOptions) -> dict[str, tuple[int, bytes]]:
    """Every catalog key's effective value in its canonical kind (the catalog's kind)."""
    return {
        "compression_algorithm": (STRING, b"none" if opts.compression_algorithm == 1 else b"gzip"),
        "consumer_offset_durability": (STRING, opts.consumer_offset_durability.encode()),
        "durability": (STRING, opts.durability.encode()),
        "enforce_fsync": (BOOL, b"\x01" if opts.enforce_fsync else b"\x00"),
        "local_retention_bytes": (UINT64, _u64(opts.local_retention_bytes)),
        "local_retention_segments": (UINT64, _u64(opts.local_retention_segments)),
        "max_topic_size": (UINT64, _u64(opts.max_topic_size)),
        "message_expiry": (UINT64, _u64(opts.message_expiry)),
        "messages_required_to_save": (UINT32, struct.pack("<I", opts.messages_required_to_save)),
        "preallocate_segments": (BOOL, b"\x01" if opts.preallocate_segments else b"\x00"),
        "segment_size": (UINT64, _u64(opts.segment_size)),
        "size_of_messages_required_to_save": (UINT64,
                                              _u64(opts.size_of_messages_required_to_save)),
    }
