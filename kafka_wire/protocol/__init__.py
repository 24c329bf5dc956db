"""Sans-I/O Kafka wire codec: schemas as data, compiled `construct` codecs, headers, errors."""

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
