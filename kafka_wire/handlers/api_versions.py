"""ApiVersions (18): the advertised ranges come from the handler registry."""

from __future__ import annotations

from pyggy.kafka_wire.context import Connection
from pyggy.kafka_wire.protocol.errors import ErrorCode


def api_keys() -> list[dict]:
    from pyggy.kafka_wire.registry import REGISTRY

    return [{"api_key": key, "min_version": e.min_version, "max_version": e.max_version}
            for key, e in sorted(REGISTRY.items())]


def handle(conn: Connection, req: dict, version: int) -> dict:
    if version >= 3:
        conn.client_id = conn.client_id or req.get("client_software_name")
    return {"error_code": ErrorCode.NONE, "api_keys": api_keys(), "throttle_time_ms": 0}


def unsupported_version_body() -> dict:
    """The v0 body Kafka sends when the ApiVersions request version is unsupported."""
    return {"error_code": ErrorCode.UNSUPPORTED_VERSION, "api_keys": api_keys()}
