"""`[http.tls]`: the HTTP door over HTTPS (a self-signed certificate generated at the first
start, as for `[tcp.tls]`), and no plain HTTP on that port."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request

import pytest

from pyggy.testing import free_port


def test_https_with_the_generated_certificate(pyggy_server_factory) -> None:
    port = free_port()
    server = pyggy_server_factory(env={"IGGY_HTTP_ENABLED": "true",
                                       "IGGY_HTTP_ADDRESS": f"127.0.0.1:{port}",
                                       "IGGY_HTTP_TLS_ENABLED": "true"})
    assert "with TLS" in server.wait_for_log("http listening on")
    context = ssl.create_default_context(cafile=server.data_path / "certs" / "pyggy_cert.pem")
    req = urllib.request.Request(f"https://localhost:{port}/users/login", method="POST",
                                 data=json.dumps({"username": "iggy", "password": "iggy"})
                                 .encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30, context=context) as resp:
        token = json.loads(resp.read())["access_token"]["token"]
    req = urllib.request.Request(f"https://localhost:{port}/streams",
                                 headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=30, context=context) as resp:
        assert json.loads(resp.read()) == []
    with pytest.raises((urllib.error.URLError, ConnectionError)):  # no plain HTTP there
        urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=30)
