"""A minimal SCRAM client (RFC 5802) for tests that drive the SASL exchange by hand."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

HASHES = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}


class ScramClient:
    def __init__(self, mechanism: str, user: str, password: str,
                 authzid: str | None = None) -> None:
        self.hash = HASHES[mechanism]
        self.user, self.password = user, password
        self.nonce = secrets.token_urlsafe(18)
        name = user.replace("=", "=3D").replace(",", "=2C")
        self.gs2 = "n," + (f"a={authzid}" if authzid else "") + ","
        self.first_bare = f"n={name},r={self.nonce}"
        self.server_signature = b""

    def first(self) -> bytes:
        return (self.gs2 + self.first_bare).encode()

    def final(self, server_first: bytes, repeat_nonce: bool = False) -> bytes:
        """The client-final message; `repeat_nonce` sends the client nonce twice, as
        librdkafka 2.0.2 does."""
        attrs = dict(a.split("=", 1) for a in server_first.decode().split(","))
        nonce, salt, iterations = attrs["r"], base64.b64decode(attrs["s"]), int(attrs["i"])
        assert nonce.startswith(self.nonce)
        salted = hashlib.pbkdf2_hmac(self.hash, self.password.encode(), salt, iterations)
        client_key = hmac.digest(salted, b"Client Key", self.hash)
        stored = hashlib.new(self.hash, client_key).digest()
        sent = self.nonce + nonce if repeat_nonce else nonce
        without_proof = f"c={base64.b64encode(self.gs2.encode()).decode()},r={sent}"
        message = f"{self.first_bare},{server_first.decode()},{without_proof}".encode()
        signature = hmac.digest(stored, message, self.hash)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_key = hmac.digest(salted, b"Server Key", self.hash)
        self.server_signature = hmac.digest(server_key, message, self.hash)
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify(self, server_final: bytes) -> bool:
        return server_final == b"v=" + base64.b64encode(self.server_signature)
