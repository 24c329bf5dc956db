"""Bounded, typed reading of request JSON bodies, query strings and path parameters.

Every accessor raises `FieldError` (400, Iggy's `invalid_format` with `field`) for a missing,
mistyped or out-of-range value, so a handler never sees an unexpected type and bad input never
becomes a 500. Body size is bounded before parsing (`[http] max_request_size`, aiohttp's
`client_max_size`); nesting depth is bounded by the parser (RecursionError is caught).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from pyggy.core.errors import ErrorCode
from pyggy.http_api.errors import FieldError

U32 = 0xFFFF_FFFF
U64 = (1 << 64) - 1
MAX_NAME = 255


def parse_json(raw: bytes) -> Fields:
    """A JSON object body as `Fields`; anything else is a 400."""
    try:
        value = json.loads(raw) if raw.strip() else None
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise FieldError("body", "not valid JSON") from None
    if not isinstance(value, dict):
        raise FieldError("body", "expected a JSON object")
    return Fields(value)


def identifier(text: str, field: str) -> int | str:
    """An Iggy identifier from a path segment: a u32 if all digits, else a 1..255-byte name."""
    if text.isdigit() and text.isascii():
        value = int(text)
        if value > U32:
            raise FieldError(field, "numeric identifier over u32", ErrorCode.INVALID_IDENTIFIER)
        return value
    if not 0 < len(text.encode()) <= MAX_NAME:
        raise FieldError(field, "identifier must be 1..255 bytes", ErrorCode.INVALID_IDENTIFIER)
    return text


_REQUIRED: Any = object()


class Fields:
    """Typed access to a JSON object or a query string (`from_query`: values are strings)."""

    __slots__ = ("data", "query")

    def __init__(self, data: Mapping[str, Any], query: bool = False) -> None:
        self.data = data
        self.query = query

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> Fields:
        return cls(query, query=True)

    def has(self, name: str) -> bool:
        return self.data.get(name) is not None

    def _get(self, name: str, default: Any) -> Any:
        value = self.data.get(name)
        if value is None:
            if default is _REQUIRED:
                raise FieldError(name, "required")
            return default
        return value

    def text(self, name: str, default: Any = _REQUIRED, *, min_len: int = 0,
             max_len: int = MAX_NAME) -> Any:
        value = self._get(name, default)
        if value is None:
            return None
        if not isinstance(value, str):
            raise FieldError(name, "expected a string")
        if not min_len <= len(value.encode()) <= max_len:
            raise FieldError(name, f"length must be {min_len}..{max_len} bytes")
        return value

    def name(self, field: str = "name") -> str:
        return self.text(field, min_len=1)

    def integer(self, name: str, default: Any = _REQUIRED, *, lo: int = 0, hi: int = U64) -> Any:
        value = self._get(name, default)
        if value is None:
            return None
        if self.query and isinstance(value, str):
            if not (value.isascii() and value.isdigit()) or len(value) > 40:
                raise FieldError(name, "expected an unsigned integer")
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise FieldError(name, "expected an integer")
        if not lo <= value <= hi:
            raise FieldError(name, f"must be {lo}..{hi}")
        return value

    def flag(self, name: str, default: Any = False) -> Any:
        value = self._get(name, default)
        if value is None:
            return None
        if self.query and isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise FieldError(name, "expected true or false")
        return value

    def choice(self, name: str, choices: Mapping[str, Any], default: Any = _REQUIRED) -> Any:
        value = self._get(name, default)
        if value is default:
            return value
        if not isinstance(value, str) or value not in choices:
            raise FieldError(name, f"expected one of {', '.join(choices)}")
        return choices[value]

    def b64(self, name: str, default: Any = _REQUIRED, *, max_len: int = U32) -> Any:
        value = self._get(name, default)
        if value is default:
            return value
        if not isinstance(value, str) or len(value) > max_len * 4 // 3 + 4:
            raise FieldError(name, "expected base64 text of bounded size")
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise FieldError(name, "not valid base64") from None

    def obj(self, name: str, default: Any = _REQUIRED) -> Any:
        value = self._get(name, default)
        if value is default:
            return value
        if not isinstance(value, dict):
            raise FieldError(name, "expected an object")
        return Fields(value)

    def array(self, name: str, *, max_items: int, default: Any = _REQUIRED) -> Any:
        value = self._get(name, default)
        if value is default:
            return value
        if not isinstance(value, list):
            raise FieldError(name, "expected an array")
        if len(value) > max_items:
            raise FieldError(name, f"at most {max_items} items")
        return value


