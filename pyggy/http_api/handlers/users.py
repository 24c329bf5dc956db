"""Users: list, get, create, update, delete, password, permissions."""

from __future__ import annotations

from pyggy.core import permissions as perm
from pyggy.core.errors import ErrorCode, IggyError
from pyggy.http_api import views
from pyggy.http_api.context import Call
from pyggy.http_api.handlers import Answer, Created

_STATUS = {"active": 1, "inactive": 2}
MAX_PASSWORD = 255


async def get_users(c: Call) -> Answer:
    perm.ensure(perm.read_users(c.user))
    return [views.user(u) for u in c.engine.identity.users()]


async def get_user(c: Call) -> Answer:
    u = c.engine.identity.user(c.ident("user_id"))
    if u.id != c.user.id:
        perm.ensure(perm.read_users(c.user))
    return views.user(u, details=True)


async def create_user(c: Call) -> Answer:
    perm.ensure(perm.manage_users(c.user))
    b = await c.body()
    u = await c.engine.identity.create_user(
        b.name("username"), b.text("password", min_len=1, max_len=MAX_PASSWORD),
        b.choice("status", _STATUS, 1), views.parse_permissions(b))
    return Created(views.user(u, details=True))


async def update_user(c: Call) -> Answer:
    perm.ensure(perm.manage_users(c.user))
    b = await c.body()
    username = b.text("username", None, min_len=1)
    status = b.choice("status", _STATUS, None)
    await c.engine.identity.update_user(c.ident("user_id"), username, status)
    return None


async def delete_user(c: Call) -> Answer:
    perm.ensure(perm.manage_users(c.user))
    target = c.engine.identity.user(c.ident("user_id"))
    await c.engine.identity.delete_user(target.id)
    for session in c.server.native.sessions.values():  # as the TCP door: their sessions end
        if session.user is target:
            session.user = None
    return None


async def update_permissions(c: Call) -> Answer:
    perm.ensure(perm.manage_users(c.user))
    b = await c.body()
    await c.engine.identity.update_permissions(c.ident("user_id"), views.parse_permissions(b))
    return None


async def change_password(c: Call) -> Answer:
    """Another user's password needs manage_users; one's own needs the current password,
    checked as a login (it counts against the address like one, core/logins.py)."""
    target = c.engine.identity.user(c.ident("user_id"))
    b = await c.body()
    current = b.text("current_password", max_len=MAX_PASSWORD)
    new = b.text("new_password", min_len=1, max_len=MAX_PASSWORD)
    if target.id != c.user.id:
        perm.ensure(perm.manage_users(c.user))
    else:
        try:
            await c.server.logins.password(target.username, current, c.attempt())
        except IggyError:
            raise IggyError(ErrorCode.INVALID_CREDENTIALS, "invalid current password") from None
    await c.engine.identity.change_password(target.id, current, new, check_current=False)
    return None
