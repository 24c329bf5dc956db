"""IdentityService: users, their passwords and SCRAM credentials, personal access tokens.

A password is stored as its scrypt hash plus SCRAM credentials derived from it, through the
state log like every metadata change, computed in the worker pool (`hasher`: never on the
event loop; only the first start's root user is hashed before the event loop runs, in a thread
started early, `auth.RootUser`, and stored before any client connects). The
doors log users in through `core.logins.Logins`, which uses this service's lookups.
"""

from __future__ import annotations

from pyggy.core import auth
from pyggy.core.errors import ErrorCode, IggyError
from pyggy.core.metadata.commands import CreateUser
from pyggy.core.metadata.machine import permissions_to_dict
from pyggy.core.model import (
    NEVER_EXPIRE,
    GlobalPermissions,
    Identifier,
    Permissions,
    PersonalAccessToken,
    ScramCredential,
    User,
)
from pyggy.core.options import OptionEntries, reject_options

from .commands import CommandLog

ROOT_PERMISSIONS = Permissions(GlobalPermissions(*([True] * 10)))  # root, as Iggy shows it


class IdentityService:
    def __init__(self, commands: CommandLog, hasher: auth.HashPool) -> None:
        self.commands = commands
        self.meta = commands.meta
        self.clock = commands.clock
        self.hasher = hasher

    def _user_command(self, username: str, record: auth.PasswordRecord, status: int,
                      permissions: Permissions | None) -> CreateUser:
        return {"type": "create_user", "username": username, "password_hash": record[0],
                "scram": auth.scram_to_dict(record[1]), "status": status,
                "permissions": permissions_to_dict(permissions),
                "created_at": self.clock.now_us()}

    def ensure_root(self, credentials: tuple[str, str] | auth.RootUser | None) -> str | None:
        """Create the root user when there is no user at all (a first start); return the
        password generated for it, if one was. A restart returns before any hashing."""
        if self.meta.users:
            return None
        root = credentials if isinstance(credentials, auth.RootUser) else \
            auth.RootUser(credentials)
        self.commands.commit(self._user_command(root.username, root.record(), 1,
                                                ROOT_PERMISSIONS))
        return root.generated

    # -- users -----------------------------------------------------------------------------
    @staticmethod
    def _check_new_user(options: OptionEntries, password: str) -> None:
        reject_options(options)
        if not 3 <= len(password) <= 100:
            raise IggyError(ErrorCode.INVALID_PASSWORD, "password must be 3 to 100 characters")

    async def create_user(self, username: str, password: str, status: int,
                          permissions: Permissions | None, options: OptionEntries = ()) -> User:
        self._check_new_user(options, password)
        if self.find_user(username) is not None:  # before the hashing work
            raise IggyError(ErrorCode.USER_ALREADY_EXISTS, "user already exists")
        record = await self.hasher.run(auth.password_record, password)
        return await self.commands.propose(self._user_command(username, record, status,
                                                              permissions))

    def get_user(self, user: Identifier) -> User | None:
        try:
            return self.meta.user(user)
        except IggyError:
            return None

    def user(self, user: Identifier) -> User:
        return self.meta.user(user)

    def users(self) -> list[User]:
        return sorted(self.meta.users.values(), key=lambda u: u.id)

    def find_user(self, username: str) -> User | None:
        return next((u for u in self.meta.users.values() if u.username == username), None)

    async def update_user(self, user: Identifier, username: str | None, status: int | None,
                          options: OptionEntries = ()) -> None:
        reject_options(options)
        await self.commands.propose({"type": "update_user", "user_id": self.meta.user(user).id,
                                     "username": username, "status": status})

    async def delete_user(self, user: Identifier) -> None:
        await self.commands.propose({"type": "delete_user", "user_id": self.meta.user(user).id})

    async def update_permissions(self, user: Identifier, permissions: Permissions | None) -> None:
        user_id = self.meta.user(user).id
        await self.commands.propose({"type": "update_permissions", "user_id": user_id,
                                     "permissions": permissions_to_dict(permissions)})

    # -- passwords and credentials ---------------------------------------------------------
    async def change_password(self, user: Identifier, current: str, new: str,
                              check_current: bool = True) -> None:
        """Check the current password (unless `check_current` is off: an admin's reset) and
        set the new one; both hashes are computed in the worker pool."""
        u = self.meta.user(user)
        if check_current and not await self.hasher.run(auth.verify_password, current,
                                                        u.password_hash):
            raise IggyError(ErrorCode.INVALID_CREDENTIALS, "invalid current password")
        if not 3 <= len(new) <= 100:
            raise IggyError(ErrorCode.INVALID_PASSWORD, "password must be 3 to 100 characters")
        record = await self.hasher.run(auth.password_record, new)
        await self.commands.propose({"type": "change_password", "user_id": u.id,
                                     "password_hash": record[0],
                                     "scram": auth.scram_to_dict(record[1])})

    async def set_scram(self, user: Identifier, mechanism: str,
                        credential: ScramCredential) -> None:
        """Add or replace one SCRAM credential of a user (the password stays as it is)."""
        await self.commands.propose({"type": "set_scram", "user_id": self.meta.user(user).id,
                                     "mechanism": mechanism, "salt": credential.salt.hex(),
                                     "iterations": credential.iterations,
                                     "stored_key": credential.stored_key.hex(),
                                     "server_key": credential.server_key.hex()})

    async def delete_scram(self, user: Identifier, mechanism: str) -> None:
        await self.commands.propose({"type": "delete_scram", "user_id": self.meta.user(user).id,
                                     "mechanism": mechanism})

    def authenticate(self, username: str, password: str) -> User:
        """Check a password inline (the doors use `core.logins.Logins`, off the loop)."""
        u = self.find_user(username)
        if not auth.check_password(password, u.password_hash if u is not None else None):
            raise IggyError(ErrorCode.INVALID_CREDENTIALS, "invalid credentials")
        assert u is not None  # check_password is false without a stored hash
        if u.status != 1:
            raise IggyError(ErrorCode.USER_INACTIVE, "user inactive")
        return u

    def authenticate_token(self, token: str) -> User:
        digest = auth.hash_token(token)
        now = self.clock.now_us()
        for u in self.meta.users.values():
            for pat in u.tokens.values():
                if pat.token_hash == digest:
                    if pat.expiry_at and pat.expiry_at <= now:
                        raise IggyError(ErrorCode.PAT_EXPIRED, "token expired")
                    if u.status != 1:
                        raise IggyError(ErrorCode.USER_INACTIVE, "user inactive")
                    return u
        raise IggyError(ErrorCode.INVALID_PAT, "invalid token")

    # -- personal access tokens ------------------------------------------------------------
    async def create_token(self, user_id: int, name: str, expiry_us: int,
                           max_tokens: int = 100) -> str:
        u = self.meta.user(user_id)
        if len(u.tokens) >= max_tokens:
            raise IggyError(ErrorCode.PATS_LIMIT_REACHED, "token limit reached")
        token = auth.new_token()
        expiry_at = 0 if expiry_us in (0, NEVER_EXPIRE) else self.clock.now_us() + expiry_us
        await self.commands.propose({"type": "create_token", "user_id": u.id, "name": name,
                                     "token_hash": auth.hash_token(token), "expiry_at": expiry_at})
        return token

    def tokens(self, user_id: int) -> list[PersonalAccessToken]:
        return sorted(self.meta.user(user_id).tokens.values(), key=lambda t: t.name)

    async def expire_tokens(self) -> int:
        """Delete personal access tokens past their expiry; return how many went."""
        now = self.clock.now_us()
        expired = [(u.id, t.name) for u in self.meta.users.values() for t in u.tokens.values()
                   if t.expiry_at and t.expiry_at <= now]
        for user_id, name in expired:
            await self.delete_token(user_id, name)
        return len(expired)

    async def delete_token(self, user_id: int, name: str) -> None:
        await self.commands.propose({"type": "delete_token", "user_id": user_id, "name": name})
