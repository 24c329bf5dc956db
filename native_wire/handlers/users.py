"""Users and personal access tokens."""

from __future__ import annotations

from pyggy.core import permissions as perm
from pyggy.core.errors import ErrorCode, IggyError
from pyggy.core.model import User
from pyggy.native_wire.codec import primitives as p
from pyggy.native_wire.codec import responses as rsp
from pyggy.native_wire.codec.reader import Reader
from pyggy.native_wire.context import Context


def _details(ctx: Context, user: User) -> bytes:
    return rsp.encode_user_details_classic(user) if ctx.classic else rsp.encode_user_details(user)


def get_user(ctx: Context, r: Reader) -> bytes:
    ident = p.decode_identifier(r)
    r.done()
    u = ctx.engine.identity.get_user(ident)
    if u is None:
        return b""
    if u.id != ctx.user.id:
        perm.ensure(perm.read_users(ctx.user))
    return _details(ctx, u)


def get_users(ctx: Context, r: Reader) -> bytes:
    r.done()
    perm.ensure(perm.read_users(ctx.user))
    users = ctx.engine.identity.users()
    return rsp.encode_users_classic(users) if ctx.classic else rsp.encode_users(users)


async def create_user(ctx: Context, r: Reader) -> bytes:
    perm.ensure(perm.manage_users(ctx.user))
    username = r.name()
    password = r.short_string()
    status = r.u8()
    permissions = p.decode_request_permissions(r)
    options = [] if ctx.classic else p.decode_options(r.rest())
    r.done()
    user = await ctx.engine.identity.create_user(username, password, status, permissions,
                                                       options)
    return _details(ctx, user)


async def delete_user(ctx: Context, r: Reader) -> bytes:
    ident = p.decode_identifier(r)
    r.done()
    perm.ensure(perm.manage_users(ctx.user))
    target = ctx.engine.identity.user(ident)
    await ctx.engine.identity.delete_user(target.id)
    # Like Iggy, the deleted user's sessions end: they must not keep acting as the user (nor
    # as a later user that gets the recycled id).
    for session in ctx.server.sessions.values():
        if session.user is target:
            session.user = None
    return b""


async def update_user(ctx: Context, r: Reader) -> bytes:
    ident = p.decode_identifier(r)
    username = r.name() if r.u8() else None
    status = r.u8() if r.u8() else None
    options = [] if ctx.classic else p.decode_options(r.rest())
    r.done()
    perm.ensure(perm.manage_users(ctx.user))
    await ctx.engine.identity.update_user(ident, username, status, options)
    return b""


async def update_permissions(ctx: Context, r: Reader) -> bytes:
    ident = p.decode_identifier(r)
    permissions = p.decode_request_permissions(r)
    r.done()
    perm.ensure(perm.manage_users(ctx.user))
    await ctx.engine.identity.update_permissions(ident, permissions)
    return b""


async def change_password(ctx: Context, r: Reader) -> bytes:
    """Hashes run in the worker pool; checking one's own current password is a login (it
    counts against the connection and address like one, see core/logins.py)."""
    ident = p.decode_identifier(r)
    current = r.short_string()
    new = r.short_string()
    r.done()
    target = ctx.engine.identity.user(ident)
    own = target.id == ctx.user.id
    if not own:
        perm.ensure(perm.manage_users(ctx.user))
    else:
        try:
            await ctx.server.logins.password(target.username, current, ctx.session.attempt())
        except IggyError:
            raise IggyError(ErrorCode.INVALID_CREDENTIALS, "invalid current password") from None
    await ctx.engine.identity.change_password(target.id, current, new, check_current=False)
    return b""


def get_tokens(ctx: Context, r: Reader) -> bytes:
    r.done()
    return rsp.encode_pats(ctx.engine.identity.tokens(ctx.user.id))


async def create_token(ctx: Context, r: Reader) -> bytes:
    name = r.name()
    expiry = r.u64()
    r.done()
    token = await ctx.engine.identity.create_token(ctx.user.id, name, expiry,
                                    ctx.server.node.max_tokens_per_user)
    return rsp.encode_raw_token(token)


async def delete_token(ctx: Context, r: Reader) -> bytes:
    name = r.name()
    r.done()
    if name not in ctx.user.tokens:
        raise IggyError(ErrorCode.RESOURCE_NOT_FOUND, "token not found")
    await ctx.engine.identity.delete_token(ctx.user.id, name)
    return b""
