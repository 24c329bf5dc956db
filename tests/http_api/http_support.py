"""A pyggy server with its HTTP door on, and a small JSON client for it (urllib: real HTTP)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from pyggy.testing import PyggyServer, free_port


def http_server(factory, **env: str) -> tuple[PyggyServer, str]:
    port = free_port()
    server = factory(env={"IGGY_HTTP_ENABLED": "true", "IGGY_HTTP_ADDRESS": f"127.0.0.1:{port}",
                          **env})
    server.wait_for_log("http listening on")
    return server, f"http://127.0.0.1:{port}"


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
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, text = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read()
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
