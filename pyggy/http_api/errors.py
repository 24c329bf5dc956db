"""Iggy's HTTP error shape: `{id, code, reason, field}` with its status codes
(404 not found, 401 bad or missing credentials, 403 not permitted, else 400)."""

from __future__ import annotations

from aiohttp import web

from pyggy.core.errors import ErrorCode, IggyError

_NOT_FOUND = frozenset({
    ErrorCode.RESOURCE_NOT_FOUND, ErrorCode.STREAM_ID_NOT_FOUND, ErrorCode.STREAM_NAME_NOT_FOUND,
    ErrorCode.TOPIC_ID_NOT_FOUND, ErrorCode.TOPIC_NAME_NOT_FOUND, ErrorCode.PARTITION_NOT_FOUND,
    ErrorCode.SEGMENT_NOT_FOUND, ErrorCode.CLIENT_NOT_FOUND, ErrorCode.CONSUMER_OFFSET_NOT_FOUND,
    ErrorCode.CONSUMER_GROUP_ID_NOT_FOUND, ErrorCode.CONSUMER_GROUP_NAME_NOT_FOUND,
    ErrorCode.CONSUMER_GROUP_MEMBER_NOT_FOUND,
})
_UNAUTHENTICATED = frozenset({
    ErrorCode.UNAUTHENTICATED, ErrorCode.ACCESS_TOKEN_MISSING, ErrorCode.INVALID_ACCESS_TOKEN,
    ErrorCode.INVALID_PAT, ErrorCode.INVALID_CREDENTIALS, ErrorCode.PAT_EXPIRED,
})
# the request field an error is about, as Iggy names it
_FIELDS: dict[int, str] = {  # keyed by code: IggyError.code is an int
    ErrorCode.STREAM_ID_NOT_FOUND: "stream_id", ErrorCode.STREAM_NAME_NOT_FOUND: "stream_id",
    ErrorCode.TOPIC_ID_NOT_FOUND: "topic_id", ErrorCode.TOPIC_NAME_NOT_FOUND: "topic_id",
    ErrorCode.PARTITION_NOT_FOUND: "partition_id", ErrorCode.SEGMENT_NOT_FOUND: "segment_id",
    ErrorCode.CLIENT_NOT_FOUND: "client_id", ErrorCode.STREAM_NAME_ALREADY_EXISTS: "name",
    ErrorCode.TOPIC_NAME_ALREADY_EXISTS: "name", ErrorCode.PAT_ALREADY_EXISTS: "name",
    ErrorCode.CONSUMER_GROUP_NAME_ALREADY_EXISTS: "name", ErrorCode.INVALID_OFFSET: "offset",
    ErrorCode.USER_ALREADY_EXISTS: "username",
}


class FieldError(IggyError):
    """A request value that is missing or of the wrong shape; `field` names it."""

    def __init__(self, field: str, detail: str,
                 code: ErrorCode | int = ErrorCode.INVALID_FORMAT) -> None:
        super().__init__(code, f"{field}: {detail}")
        self.field = field


def status_of(code: int) -> int:
    if code in _NOT_FOUND:
        return 404
    if code in _UNAUTHENTICATED:
        return 401
    if code == ErrorCode.UNAUTHORIZED:
        return 403
    return 400


def code_name(code: int) -> str:
    try:
        return ErrorCode(code).name.lower()
    except ValueError:
        return "error"


def error_response(e: IggyError) -> web.Response:
    field = getattr(e, "field", None) or _FIELDS.get(e.code)
    reason = str(e)
    return web.json_response({"id": int(e.code), "code": code_name(e.code), "reason": reason,
                              "field": field}, status=status_of(e.code))
