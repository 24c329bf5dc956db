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

    def issue(self, user_id: int, created_at: int) -> Issued:
        """A token for a user; `created_at` pins it to that user, not a later one that gets
        the recycled id (checked by `valid_for`)."""
        now = int(self.clock())
        exp = now + max(1, round(self.config.access_token_expiry))
        claims = {"sub": str(user_id), "jti": uuid.uuid4().hex, "iat": now, "exp": exp,
                  "uca": created_at,
                  "nbf": now + round(self.config.not_before), "iss": self.config.issuer,
                  "aud": self.config.audience}
        return Issued(jwt.encode(claims, self._enc, algorithm="HS256"), exp)

    def verify(self, token: str) -> tuple[int, str, float, int]:
        """(user id, token id, expiry, user's created_at) of a valid token;
        INVALID_ACCESS_TOKEN otherwise."""
        try:
            claims = jwt.decode(token, self._dec, algorithms=["HS256"],
                                audience=self.config.audience, issuer=self.config.issuer,
                                leeway=self.config.clock_skew,
                                options={"require": ["sub", "jti", "exp"]})
            user_id, jti, created = int(claims["sub"]), str(claims["jti"]), int(claims["uca"])
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            raise IggyError(ErrorCode.INVALID_ACCESS_TOKEN, "invalid or expired token") from None
        if jti in self._revoked:
            raise IggyError(ErrorCode.INVALID_ACCESS_TOKEN, "token was revoked")
        return user_id, jti, float(claims["exp"]), created

    def revoke(self, jti: str, expiry: float) -> None:
        now = self.clock()
        for old in [k for k, exp in self._revoked.items() if exp + self.config.clock_skew < now]:
            del self._revoked[old]  # past their expiry they fail verification anyway
        self._revoked[jti] = expiry
