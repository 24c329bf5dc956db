"""Sans-I/O Kafka wire codec: schemas as data, compiled `construct` codecs, headers, errors.

The codec's names (`decode_request`, `codec`, ...) load `protocol.codec` (construct and the
schemas) at their first use (PEP 562 `__getattr__`), so what a start needs, `protocol.errors`
and `protocol.headers`, does not build it. Import the function `codec` from `protocol.codec`:
once that module is loaded, `protocol.codec` names the module.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    ErrorCode,
    FrameError,
    KafkaDecodeError,
    KafkaEncodeError,
    UnsupportedVersionError,
)
from .headers import (
    RequestHeader,
    encode_request_header,
    encode_response_header,
    frame_length,
    parse_request_header,
    parse_response_header,
    request_frame,
    request_header_version,
    response_frame,
    response_header_version,
)

if TYPE_CHECKING:
    from .codec import (
        MAX_REQUEST_ELEMENTS,
        Codec,
        codec,
        decode_data,
        decode_request,
        decode_response,
        decode_versioned,
        encode_data,
        encode_request,
        encode_response,
        encode_response_parts,
        encode_versioned,
        is_flexible,
        supported_versions,
    )

__all__ = [
    "MAX_REQUEST_ELEMENTS", "Codec", "ErrorCode", "FrameError", "KafkaDecodeError",
    "KafkaEncodeError", "RequestHeader",
    "UnsupportedVersionError", "codec", "decode_data", "decode_request", "decode_response",
    "decode_versioned", "encode_data", "encode_request", "encode_request_header",
    "encode_response", "encode_response_header", "encode_response_parts", "encode_versioned",
    "frame_length", "is_flexible", "parse_request_header", "parse_response_header",
    "request_frame", "request_header_version", "response_frame", "response_header_version",
    "supported_versions",
]  # fmt: skip

_FROM_CODEC = frozenset({
    "MAX_REQUEST_ELEMENTS", "Codec", "codec", "decode_data", "decode_request", "decode_response",
    "decode_versioned", "encode_data", "encode_request", "encode_response",
    "encode_response_parts", "encode_versioned", "is_flexible", "supported_versions",
})


def __getattr__(name: str) -> Any:
    if name in _FROM_CODEC:
        return getattr(importlib.import_module(f"{__name__}.codec"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
