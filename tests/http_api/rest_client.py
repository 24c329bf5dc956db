"""A small JSON client for the HTTP door (urllib: plain real HTTP, no SDK in between)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from typing import Any

JWT_SECRET = "test-secret-known-to-the-tests-0123456789"  # the http_door fixture's


def b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def header(key: str, value: str) -> dict:
    """One Iggy user header (String key and value) in the API's JSON form."""
    return {"key": {"kind": "string", "value": b64(key)},
            "value": {"kind": "string", "value": b64(value)}}


class Client:
    def __init__(self, base: str, token: str | None = None) -> None:
        self.base = base
        self.token = token

    def call(self, method: str, path: str, body: Any = None, raw: bytes | None = None,
             headers: dict | None = None) -> tuple[int, Any]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None
                                            else None)
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                status, text, self.headers = resp.status, resp.read(), resp.headers
        except urllib.error.HTTPError as e:
            status, text, self.headers = e.code, e.read(), e.headers
        if not text:
            return status, None
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def login(self, username: str = "iggy", password: str = "iggy") -> dict:
        status, body = self.call("POST", "/users/login",
                                 {"username": username, "password": password})
        assert status == 200, body
        self.token = body["access_token"]["token"]
        return body

    def get(self, path: str) -> tuple[int, Any]:
        return self.call("GET", path)

    def post(self, path: str, body: Any) -> tuple[int, Any]:
        return self.call("POST", path, body)

    def put(self, path: str, body: Any) -> tuple[int, Any]:
        return self.call("PUT", path, body)

    def delete(self, path: str) -> tuple[int, Any]:
        return self.call("DELETE", path)

    def send(self, topic_path: str, partition: int, *messages: dict) -> tuple[int, Any]:
        return self.post(f"{topic_path}/messages", {
            "partitioning": {"kind": "partition_id", "value": b64(partition.to_bytes(4, "little"))},
            "messages": list(messages)})
