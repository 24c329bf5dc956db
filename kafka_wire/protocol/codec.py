"""Schema-driven Kafka body codec: one compiled construct per (message, version), built lazily.

    req = decode_request(api_key, version, body)          # dict, snake_case keys
    out = encode_response(api_key, version, {"throttle_time_ms": 0, ...})   # bytes

Decoded values are plain dicts holding every field the message has in any version (absent ones
at their defaults); RECORDS decode to a memoryview into ``body`` (no copy: keep ``body`` alive
and unmodified while it is used). Encoding fills missing fields with schema defaults.
Any malformed input raises `KafkaDecodeError`; a bad value to encode raises `KafkaEncodeError`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, Literal

from construct import Construct

from . import primitives as P
from .constructs import Array, Entry, KafkaConstruct, KafkaStruct, NullableStruct, leaf
from .errors import KafkaDecodeError, KafkaEncodeError, UnsupportedVersionError
from .primitives import Buffer, Input, Output
from .schemas import Field, Message, api_messages, api_names, heads, message

# Array elements one request may hold in all: far above what clients send (a Fetch or
# OffsetCommit naming 10,000 partitions is ~10,000) and small enough that decoding it and
# answering it stay well under a second and a few hundred MB.
MAX_REQUEST_ELEMENTS = 100_000

Kind = Literal["request", "response"]


def _field_construct(f: Field, version: int, flexible: bool) -> KafkaConstruct:
    nullable = f.nullable_at(version)
    if f.type == "struct":
        elem: KafkaConstruct = struct_construct(f.fields, version, flexible)
        if nullable and not f.array:
            return NullableStruct(elem)
    else:
        elem = leaf(f.type, flexible, nullable and not f.array)
    return Array(elem, flexible, nullable) if f.array else elem


def struct_construct(
    fields: tuple[Field, ...], version: int, flexible: bool, top: bool = False
) -> KafkaStruct:
    """The uncompiled `KafkaStruct` for ``fields`` at ``version``."""
    entries = []
    for f in fields:
        present = f.present(version) and (f.tag is None or flexible)
        con = _field_construct(f, version, flexible) if present else None
        entries.append(Entry(f.name, con, f.default(), f.tag if present else None))
    return KafkaStruct(entries, flexible, top)


class Codec:
    """A message at one version: the construct, its compiled form and fast entry points."""

    __slots__ = ("message", "version", "flexible", "construct", "compiled", "_parse", "_build")

    def __init__(self, message: Message, version: int, compile: bool = True) -> None:
        self.message, self.version = message, version
        self.flexible = message.is_flexible(version)
        self.construct: Construct = struct_construct(message.fields, version, self.flexible, True)
        self.compiled: Construct | None = None
        self._parse: Callable[[Input, Any], dict[str, Any]]
        self._build: Callable[[Any, Any, Any], Any]
        if compile:
            try:
                self.compiled = self.construct.compile()
            except Exception:  # pragma: no cover - fall back to the interpreted construct
                self.compiled = None
        if self.compiled is not None:
            self._parse, self._build = self.compiled.parsefunc, self.compiled.buildfunc
        else:
            con = self.construct
            self._parse = lambda io, this: con._parse(io, this, "(parsing)")
            self._build = lambda obj, io, this: con._build(obj, io, this, "(building)")

    def decode(self, data: Buffer, strict: bool = False,
               max_elements: int | None = None) -> dict[str, Any]:
        """Decode a whole body; ``strict`` also rejects trailing bytes; ``max_elements`` caps
        the array elements of the whole body (nested ones included)."""
        try:
            io = Input(data, budget=None if max_elements is None else [max_elements])
            value = self._parse(io, None)
        except KafkaDecodeError:
            raise
        except Exception as e:  # struct.error, UnicodeDecodeError, ... from compiled code
            raise KafkaDecodeError(f"{self.message.name} v{self.version}: {e}") from e
        if strict and io.pos != io.end:
            raise KafkaDecodeError(f"{self.message.name} v{self.version}: "
                                   f"{io.end - io.pos} trailing bytes")  # fmt: skip
        return value

    def decode_prefix(self, data: Buffer) -> tuple[dict[str, Any], int]:
        """Decode from the start of ``data``; return the value and the bytes consumed."""
        io = Input(data)
        try:
            value = self._parse(io, None)
        except KafkaDecodeError:
            raise
        except Exception as e:
            raise KafkaDecodeError(f"{self.message.name} v{self.version}: {e}") from e
        return value, io.pos

    def encode_parts(self, value: Any) -> Output:
        """Encode into chunks; RECORDS values appear uncopied among them."""
        out = Output()
        try:
            self._build(value, out, None)
        except Exception as e:
            raise KafkaEncodeError(f"{self.message.name} v{self.version}: {e!r}") from e
        return out

    def encode(self, value: Any) -> bytes:
        return b"".join(self.encode_parts(value))


@cache
def codec(api_key: int, version: int, kind: Kind) -> Codec:
    """The cached codec for a request or response; `UnsupportedVersionError` if none."""
    pair = api_messages(api_key)
    if pair is None:
        raise UnsupportedVersionError(f"unsupported api key {api_key}")
    message = pair[0] if kind == "request" else pair[1]
    lo, hi = message.versions
    if not lo <= version <= hi:
        raise UnsupportedVersionError(f"{message.name}: version {version} not in {lo}..{hi}")
    return Codec(message, version)


@cache
def data_codec(name: str, version: int) -> Codec:
    """The cached codec for a non-API struct such as ``ConsumerProtocolSubscription``."""
    schema = message(name)
    if schema is None or schema.api_key is not None:
        raise UnsupportedVersionError(f"unknown data struct {name!r}")
    lo, hi = schema.versions
    if not lo <= version <= hi:
        raise UnsupportedVersionError(f"{name}: version {version} not in {lo}..{hi}")
    return Codec(schema, version)


def decode_request(api_key: int, version: int, body: Buffer, *, strict: bool = False,
                   max_elements: int | None = MAX_REQUEST_ELEMENTS) -> dict:
    """A request body; more than ``max_elements`` array elements in all is a decode error
    (one 10 MB Metadata request of empty topic names would otherwise be 5 million dicts)."""
    return codec(api_key, version, "request").decode(body, strict, max_elements)


def decode_response(api_key: int, version: int, body: Buffer, *, strict: bool = False) -> dict:
    return codec(api_key, version, "response").decode(body, strict)


def encode_request(api_key: int, version: int, value: Any) -> bytes:
    return codec(api_key, version, "request").encode(value)


def encode_response(api_key: int, version: int, value: Any) -> bytes:
    return codec(api_key, version, "response").encode(value)


def encode_response_parts(api_key: int, version: int, value: Any) -> list[bytes | memoryview]:
    """The response body as chunks for ``writelines``: large RECORDS values are not copied."""
    return codec(api_key, version, "response").encode_parts(value).coalesce()


def supported_versions() -> dict[int, tuple[int, int]]:
    """``api_key → (min, max)`` of every API this codec has schemas for."""
    h = heads()
    return {k: h[req].versions for k, (req, _) in sorted(api_names().items())}


def is_flexible(api_key: int, version: int) -> bool:
    """Whether ``version`` of the API uses compact types and tag buffers (False if unknown).

    Kafka's flexible ranges are open-ended (``N+``), so this also answers for versions above
    the supported range, which is what choosing a request header version needs.
    """
    first = _first_flexible().get(api_key)
    return first is not None and version >= first


@cache
def _first_flexible() -> dict[int, int | None]:
    h = heads()
    return {k: h[req].flexible for k, (req, _) in api_names().items()}


def decode_data(name: str, version: int, data: Buffer, *, strict: bool = False) -> dict:
    return data_codec(name, version).decode(data, strict)


def encode_data(name: str, version: int, value: Any) -> bytes:
    return data_codec(name, version).encode(value)


def encode_versioned(name: str, version: int, value: Any) -> bytes:
    """INT16 version + struct, as in consumer-protocol subscription/assignment bytes."""
    return P.I16.pack(version) + encode_data(name, version, value)


def decode_versioned(name: str, data: Buffer) -> tuple[int, dict]:
    """Read an INT16 version then the struct; a newer version is read as our newest (Kafka's
    ``ConsumerProtocol`` rule: later versions only append fields), trailing bytes ignored."""
    if len(data) < 2:
        raise KafkaDecodeError(f"{name}: missing version")
    version = P.I16.unpack_from(data, 0)[0]
    if version < 0:
        raise KafkaDecodeError(f"{name}: negative version {version}")
    schema = message(name)
    if schema is None:
        raise UnsupportedVersionError(f"unknown data struct {name!r}")
    use = min(max(version, schema.versions[0]), schema.versions[1])
    value, _ = data_codec(name, use).decode_prefix(memoryview(data)[2:])
    return version, value
