"""JWT access tokens of the HTTP door (RFC 7519, HS256 via PyJWT), as Iggy's `[http.jwt]`.

A token names the user (`sub`), has an id (`jti`) and expires after `access_token_expiry`.
Logout revokes a token's id until it would have expired; refresh swaps a valid token for a new
one (revoking the old). Empty secrets mean a random secret per start.
"""

from __future__ import annotations

import base64
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import jwt

from pyggy.config import HttpJwtConfig
from pyggy.core.errors import ErrorCode, IggyError


@dataclass(frozen=True, slots=True)
class Issued:
    token: str
    expiry: int  # seconds since the epoch


class Tokens:
    def __init__(self, config: HttpJwtConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        enc, dec = config.encoding_secret, config.decoding_secret
        if not enc:
            enc = dec = secrets.token_urlsafe(48)
        elif config.use_base64_secret:
            enc, dec = base64.b64decode(enc), base64.b64decode(dec)  # type: ignore[assignment]
        self._enc, self._dec = enc, dec
        self._revoked: dict[str, float] = {}  # jti → its expiry

    def issue(self, user_id: int) -> Issued:
        now = int(self.clock())
        exp = now + max(1, round(self.config.access_token_expiry))
        claims = {"sub": str(user_id), "jti": uuid.uuid4().hex, "iat": now, "exp": exp,
                  "nbf": now + round(self.config.not_before), "iss": self.config.issuer,
                  "aud": self.config.audience}
        return Issued(jwt.encode(claims, self._enc, algorithm="HS256"), exp)

    def verify(self, token: str) -> tuple[int, str, float]:
        """(user id, token id, expiry) of a valid token; INVALID_ACCESS_TOKEN otherwise."""
        try:
            claims = jwt.decode(token, self._dec, algorithms=["HS256"],
                                audience=self.config.audience, issuer=self.config.issuer,
                                leeway=self.config.clock_skew,
                                options={"require": ["sub", "jti", "exp"]})
            user_id, jti = int(claims["sub"]), str(claims["jti"])
        except (jwt.PyJWTError, ValueError, TypeError):
            raise IggyError(ErrorCode.INVALID_ACCESS_TOKEN, "invalid or expired token") from None
        if jti in self._revoked:
            raise IggyError(ErrorCode.INVALID_ACCESS_TOKEN, "token was revoked")
        return user_id, jti, float(claims["exp"])

    def revoke(self, jti: str, expiry: float) -> None:
        now = self.clock()
        for old in [k for k, exp in self._revoked.items() if exp + self.config.clock_skew < now]:
            del self._revoked[old]  # past their expiry they fail verification anyway
        self._revoked[jti] = expiry
