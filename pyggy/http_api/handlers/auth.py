"""Logins (password, personal access token), refresh, logout, and the caller's PATs."""

from __future__ import annotations

from pyggy.core.errors import ErrorCode, IggyError
from pyggy.core.model import User
from pyggy.http_api.context import Call
from pyggy.http_api.handlers import Answer, Created


def _identity(c: Call, user: User) -> dict[str, object]:
    issued = c.server.tokens.issue(user.id, user.created_at)
    return {"user_id": user.id, "access_token": {"token": issued.token, "expiry": issued.expiry}}


async def login(c: Call) -> Answer:
    b = await c.body()
    user = await c.server.logins.password(b.name("username"), b.text("password", max_len=1024),
                                          c.attempt())
    return _identity(c, user)


async def login_with_token(c: Call) -> Answer:
    b = await c.body()
    user = await c.server.logins.token(b.text("token", min_len=1, max_len=1024), c.attempt())
    return _identity(c, user)


async def refresh(c: Call) -> Answer:
    """Swap a still-valid access token for a new one (no Authorization header needed)."""
    b = await c.body()
    user_id, jti, expiry, created = c.server.tokens.verify(
        b.text("token", min_len=1, max_len=8192))
    user = c.engine.identity.get_user(user_id)
    if user is None or user.status != 1 or user.created_at != created:
        raise IggyError(ErrorCode.INVALID_ACCESS_TOKEN, "the token's user is gone or inactive")
    c.server.tokens.revoke(jti, expiry)
    return _identity(c, user)


async def logout(c: Call) -> Answer:
    c.user  # noqa: B018  (authenticated)
    if c.token is not None:
        c.server.tokens.revoke(c.token[1], c.token[2])
    return None


async def list_tokens(c: Call) -> Answer:
    return [{"name": t.name, "expiry_at": t.expiry_at or None}
            for t in c.engine.identity.tokens(c.user.id)]


async def create_token(c: Call) -> Answer:
    b = await c.body()
    name = b.name()
    expiry_us = b.integer("expiry", 0)  # µs, as Iggy's expiry JSON; 0 or u64::MAX = never
    token = await c.engine.identity.create_token(c.user.id, name, expiry_us,
                                                 c.server.native.node.max_tokens_per_user)
    return Created({"token": token})


async def delete_token(c: Call) -> Answer:
    name = c.request.match_info["name"]
    if name not in c.user.tokens:
        raise IggyError(ErrorCode.RESOURCE_NOT_FOUND, "token not found")
    await c.engine.identity.delete_token(c.user.id, name)
    return None
