"""The server side of a SCRAM exchange (RFC 5802, RFC 7677), sans-I/O.

    ex = ScramExchange.start(mechanism, client_first)   # parse; ScramError if malformed
    reply = ex.server_first(credential)                  # salt, iterations, combined nonce
    user_ok, reply = ex.final(client_final)              # proof check; server signature

No channel binding (a client that requires it, `p=`, is refused) and no extensions (Kafka's
`tokenauth=true` for delegation tokens is refused: pyggy has none). User names are SASLnames
(`=2C` for ",", `=3D` for "="); passwords are not SASLprep-normalized, as in Kafka's clients.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

from pyggy.core.auth import SCRAM_HASHES
from pyggy.core.model import ScramCredential

MAX_MESSAGE = 4096  # bytes; real client messages are ~100-200


class ScramError(Exception):
    """A malformed or unacceptable SCRAM message (the exchange fails)."""


def _attributes(text: str) -> list[tuple[str, str]]:
    out = []
    for part in text.split(","):
        if len(part) < 2 or part[1] != "=" or not part[0].isalpha():
            raise ScramError(f"invalid SCRAM attribute {part[:20]!r}")
        out.append((part[0], part[2:]))
    return out


def _saslname(value: str) -> str:
    """Decode a SASLname: "=2C" and "=3D" are the only escapes allowed."""
    out, i = [], 0
    while i < len(value):
        if value[i] == "=":
            code = value[i + 1:i + 3]
            if code not in ("2C", "3D"):
                raise ScramError("invalid escape in SCRAM user name")
            out.append("," if code == "2C" else "=")
            i += 3
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def _text(data: bytes) -> str:
    if len(data) > MAX_MESSAGE:
        raise ScramError("SCRAM message too long")
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise ScramError("SCRAM message is not UTF-8") from None


@dataclass(slots=True)
class ScramExchange:
    mechanism: str
    username: str
    gs2_header: str
    client_nonce: str
    client_first_bare: str
    nonce: str = ""
    server_first_message: str = ""
    credential: ScramCredential | None = None
    server_nonce: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    @classmethod
    def start(cls, mechanism: str, data: bytes) -> ScramExchange:
        """Parse client-first-message: gs2-header, then `n=<user>,r=<nonce>[,ext...]`."""
        if mechanism not in SCRAM_HASHES:
            raise ScramError(f"unknown mechanism {mechanism}")
        text = _text(data)
        flag, sep, rest = text.partition(",")
        authzid, sep2, bare = rest.partition(",")
        if not (sep and sep2):
            raise ScramError("invalid SCRAM client-first message")
        if flag.startswith("p="):
            raise ScramError("channel binding is not supported")
        if flag not in ("n", "y"):
            raise ScramError("invalid SCRAM gs2 header")
        parts = bare.split(",")
        if len(parts) < 2 or not parts[0].startswith("n=") or not parts[1].startswith("r="):
            raise ScramError("SCRAM client-first message needs n= and r=")
        if parts[2:]:
            raise ScramError("SCRAM extensions (delegation tokens) are not supported")
        username, nonce = _saslname(parts[0][2:]), parts[1][2:]
        if not username or not nonce or not nonce.isprintable():
            raise ScramError("empty SCRAM user name or nonce")
        if authzid and (not authzid.startswith("a=") or _saslname(authzid[2:]) != username):
            raise ScramError("the authorization id differs from the user name")
        return cls(mechanism, username, flag + "," + authzid + ",", nonce, bare)

    def server_first(self, credential: ScramCredential) -> bytes:
        self.credential = credential
        self.nonce = self.client_nonce + self.server_nonce
        salt = base64.b64encode(credential.salt).decode()
        self.server_first_message = f"r={self.nonce},s={salt},i={credential.iterations}"
        return self.server_first_message.encode()

    def final(self, data: bytes) -> tuple[bool, bytes]:
        """Check client-final-message; (proof valid, server-final-message)."""
        cred = self.credential
        if cred is None:
            raise ScramError("SCRAM client-final before server-first")
        text = _text(data)
        without_proof, sep, proof_attr = text.rpartition(",")
        if not sep or not proof_attr.startswith("p="):
            raise ScramError("SCRAM client-final message needs p= last")
        attrs = _attributes(without_proof)
        if len(attrs) != 2 or attrs[0][0] != "c" or attrs[1][0] != "r":
            raise ScramError("SCRAM client-final message needs c= and r=")
        if attrs[0][1] != base64.b64encode(self.gs2_header.encode()).decode():
            raise ScramError("SCRAM channel binding data does not match")
        # librdkafka 2.0.2 (kcat 1.7.1) sends its client nonce twice. Kafka's broker long
        # accepted that (its ScramSaslServer compared with endsWith), and so does pyggy: the
        # server's fresh nonce must still end the attribute, and the proof signs all of it.
        if not attrs[1][1].endswith(self.nonce):
            raise ScramError("SCRAM nonce does not match")
        try:
            proof = base64.b64decode(proof_attr[2:], validate=True)
        except (binascii.Error, ValueError):
            raise ScramError("invalid SCRAM proof") from None
        name = SCRAM_HASHES[self.mechanism]
        auth_message = ",".join((self.client_first_bare, self.server_first_message,
                                 without_proof)).encode()
        signature = hmac.digest(cred.stored_key, auth_message, name)
        ok = len(proof) == len(signature)
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=False))
        ok = hmac.compare_digest(hashlib.new(name, client_key).digest(), cred.stored_key) and ok
        server_signature = hmac.digest(cred.server_key, auth_message, name)
        return ok, b"v=" + base64.b64encode(server_signature)
