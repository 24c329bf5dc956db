"""Logins for both doors: no stalls, no oracles, no floods, and an audit trail.

- The slow password check runs in the engine's worker pool (`core.auth.HashPool`), never on
  the event loop; an unknown user name is checked against a dummy hash, so it costs the same.
- `LoginGuard` limits guessing per client address: the first `address_free_failures` failures
  in `failure_window` pass at once, later attempts wait a doubling delay (queued one after
  another), and after `max_address_failures` the address is refused without any check until
  its failures age out. Each connection also waits a doubling delay after each of its own
  failures and is closed after `max_connection_failures`.
- `Audit` logs successful and failed logins and permission refusals (user, address, door,
  operation) once per burst: repeats within `window` seconds are counted and reported with
  the next line. Passwords and tokens are never logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pyggy.core import auth
from pyggy.core.errors import ErrorCode, IggyError
from pyggy.core.model import ScramCredential, User

if TYPE_CHECKING:
    from pyggy.core.engine import LogEngine

log = logging.getLogger("pyggy.audit")
Sleep = Callable[[float], Awaitable[None]]


@dataclass(slots=True)
class GuardSettings:
    max_connection_failures: int = 3
    address_free_failures: int = 5
    max_address_failures: int = 20
    failure_window: float = 60.0  # seconds a failure counts against its address
    failure_delay: float = 0.1  # first backoff; doubles with each further failure
    max_delay: float = 2.0
    max_addresses: int = 10_000  # addresses remembered at most (the oldest idle go first)


class LockedOut(Exception):
    """Too many recent failed logins from this address: refused without a check."""


@dataclass(slots=True)
class _Address:
    failures: deque = field(default_factory=deque)  # monotonic times, oldest first
    pending: int = 0  # attempts admitted and not finished (they count as failures)
    next_slot: float = 0.0  # when the next delayed attempt may start


class LoginGuard:
    """Per-address failed-login backoff and lockout (state in memory, bounded)."""

    def __init__(self, settings: GuardSettings | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Sleep = asyncio.sleep
                 ) -> None:
        self.settings = settings or GuardSettings()
        self.clock = clock
        self.sleep = sleep
        self._addresses: dict[str, _Address] = {}

    def _entry(self, host: str, now: float) -> _Address:
        a = self._addresses.get(host)
        if a is None:
            if len(self._addresses) >= self.settings.max_addresses:
                self._forget(now)
            a = self._addresses[host] = _Address()
        horizon = now - self.settings.failure_window
        while a.failures and a.failures[0] <= horizon:
            a.failures.popleft()
        return a

    def _forget(self, now: float) -> None:
        horizon = now - self.settings.failure_window
        for host in [h for h, a in self._addresses.items()
                     if not a.pending and (not a.failures or a.failures[-1] <= horizon)]:
            del self._addresses[host]
        while len(self._addresses) >= self.settings.max_addresses:  # all busy: oldest go
            del self._addresses[next(iter(self._addresses))]

    def recent(self, host: str) -> int:
        """Failures (and attempts in progress) that count against `host` now."""
        a = self._entry(host, self.clock())
        return len(a.failures) + a.pending

    async def admit(self, host: str) -> None:
        """Wait until an attempt from `host` may be checked; raise LockedOut if it may not."""
        s = self.settings
        now = self.clock()
        a = self._entry(host, now)
        recent = len(a.failures) + a.pending
        if recent >= s.max_address_failures:
            raise LockedOut(host)
        excess = recent + 1 - s.address_free_failures
        if excess <= 0:
            a.pending += 1
            return
        delay = min(s.failure_delay * 2 ** (excess - 1), s.max_delay)
        start = max(now, a.next_slot) + delay
        if start - now > s.failure_window:
            raise LockedOut(host)
        a.next_slot = start
        a.pending += 1
        try:
            await self.sleep(start - now)
        except BaseException:
            a.pending -= 1
            raise

    def done(self, host: str, ok: bool) -> None:
        """An admitted attempt finished."""
        now = self.clock()
        a = self._entry(host, now)
        a.pending = max(a.pending - 1, 0)
        if not ok:
            a.failures.append(now)
            while len(a.failures) > self.settings.max_address_failures:
                a.failures.popleft()

    async def connection_failed(self, state: LoginState) -> None:
        """Count a failure against one connection and wait its doubling delay."""
        s = self.settings
        state.failures += 1
        state.limit = s.max_connection_failures
        await self.sleep(min(s.failure_delay * 2 ** (state.failures - 1), s.max_delay))


@dataclass(slots=True)
class LoginState:
    """What a connection remembers about its failed logins."""

    failures: int = 0
    limit: int = 1 << 30

    @property
    def exhausted(self) -> bool:
        """Close the connection: it failed too often (or its address is locked out)."""
        return self.failures >= self.limit


@dataclass(slots=True)
class Attempt:
    host: str  # the client's address, without port
    door: str  # "iggy" or "kafka"
    state: LoginState


class Audit:
    """Security events logged once per burst: the first of a kind (event, user, address,
    door, operation) at once, its repeats within `window` seconds counted and reported with
    the next line of that kind or by `flush()`."""

    def __init__(self, window: float = 10.0, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 10_000) -> None:
        self.window = window
        self.clock = clock
        self.max_keys = max_keys
        self._seen: dict[tuple, list] = {}  # key -> [first time, suppressed, level, text]

    def event(self, level: int, key: tuple, text: str) -> None:
        now = self.clock()
        entry = self._seen.get(key)
        if entry is not None and now - entry[0] < self.window:
            entry[1] += 1
            return
        more = entry[1] if entry is not None else 0
        if entry is None and len(self._seen) >= self.max_keys:
            self.flush(force=True)
        self._seen[key] = [now, 0, level, text]
        log.log(level, "%s%s", text, f" (and {more} more like it before)" if more else "")

    def flush(self, force: bool = False) -> None:
        """Report the repeats of bursts that are over (all of them with `force`)."""
        now = self.clock()
        for key, (first, more, level, text) in list(self._seen.items()):
            if force or now - first >= self.window:
                if more:
                    log.log(level, "%s (%d more like it within %.0f s)", text, more,
                            self.window)
                del self._seen[key]

    def login(self, ok: bool, user: str | None, host: str, door: str, how: str,
              why: str = "") -> None:
        name = "anonymous" if user is None else repr(user)
        if ok:
            self.event(logging.INFO, ("login", user, host, door, how),
                       f"login: user {name} from {host} ({door} door, {how})")
        else:
            self.event(logging.WARNING, ("login-failed", user, host, door, how),
                       f"login failed: user {name} from {host} ({door} door, {how}): {why}")

    def refused(self, user: str | None, host: str, door: str, operation: str) -> None:
        name = "anonymous" if user is None else repr(user)
        self.event(logging.WARNING, ("refused", user, host, door, operation),
                   f"permission refused: user {name} from {host} ({door} door): {operation}")


def host_of(address: str) -> str:
    """The host part of "host:port" / "[v6]:port" (the address itself if it has no port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        return address
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


class Logins:
    """Password, token and SCRAM logins against the engine's users, for both doors."""

    def __init__(self, engine: LogEngine, guard: LoginGuard | None = None,
                 audit: Audit | None = None) -> None:
        self.engine = engine
        self.guard = guard or LoginGuard()
        self.audit = audit or Audit()
        self._fake_key = secrets.token_bytes(32)  # salts of unknown users' fake credentials

    def _find(self, username: str) -> User | None:
        return next((u for u in self.engine.meta.users.values() if u.username == username), None)

    def _current(self, u: User) -> bool:
        return self.engine.meta.users.get(u.id) is u

    async def _checked(self, att: Attempt, username: str | None, how: str,
                       check: Callable[[], Awaitable[User]]) -> User:
        try:
            await self.guard.admit(att.host)
        except LockedOut:
            att.state.failures = att.state.limit = max(att.state.failures, 1)
            self.audit.login(False, username, att.host, att.door, how,
                             "too many failed logins from this address")
            raise IggyError(ErrorCode.INVALID_CREDENTIALS, "invalid credentials") from None
        try:
            user = await check()
        except IggyError as e:
            self.guard.done(att.host, False)
            self.audit.login(False, username, att.host, att.door, how, str(e))
            await self.guard.connection_failed(att.state)
            raise
        except BaseException:  # not a failed login (e.g. shutdown): only end the attempt
            self.guard.done(att.host, True)
            raise
        self.guard.done(att.host, True)
        self.audit.login(True, user.username, att.host, att.door, how)
        return user

    def _active(self, u: User | None, matched: bool) -> User:
        if u is None or not matched or not self._current(u):
            raise IggyError(ErrorCode.INVALID_CREDENTIALS, "invalid credentials")
        if u.status != 1:
            raise IggyError(ErrorCode.USER_INACTIVE, "user inactive")
        return u

    async def password(self, username: str, password: str, att: Attempt) -> User:
        """A user name and password (the Iggy door's LOGIN_USER)."""
        async def check() -> User:
            u = self._find(username)
            stored = u.password_hash if u is not None else None
            matched = await self.engine.hasher.run(auth.check_password, password, stored)
            return self._active(u, matched)

        return await self._checked(att, username, "password", check)

    async def token(self, token: str, att: Attempt) -> User:
        """A personal access token (LOGIN_WITH_PERSONAL_ACCESS_TOKEN)."""
        async def check() -> User:
            return self.engine.authenticate_token(token)

        return await self._checked(att, None, "token", check)

    async def plain(self, username: str, secret: str, att: Attempt) -> tuple[User, int]:
        """SASL/PLAIN: `secret` is the user's password or one of the user's personal access
        tokens. Returns the user and, for a token with an expiry, its expiry (µs; else 0)."""
        expiry = [0]

        async def check() -> User:
            u = self._find(username)
            if u is not None:
                digest = auth.hash_token(secret)
                for pat in u.tokens.values():
                    if hmac.compare_digest(pat.token_hash, digest):
                        if pat.expiry_at and pat.expiry_at <= self.engine.clock.now_us():
                            raise IggyError(ErrorCode.PAT_EXPIRED, "token expired")
                        expiry[0] = pat.expiry_at
                        return self._active(u, True)
            stored = u.password_hash if u is not None else None
            matched = await self.engine.hasher.run(auth.check_password, secret, stored)
            return self._active(u, matched)

        user = await self._checked(att, username, "PLAIN", check)
        return user, expiry[0]

    # -- SCRAM: the exchange itself is the door's (two round trips); these bracket it -------
    def scram_credential(self, username: str, mechanism: str
                         ) -> tuple[User | None, ScramCredential]:
        """The user and its credential; an unknown user (or one without a credential for
        this mechanism) gets a fake one, the same on every attempt, so the first server
        message does not tell whether the name exists."""
        u = self._find(username)
        cred = u.scram.get(mechanism) if u is not None else None
        if u is not None and cred is not None:
            return u, cred
        seed = hmac.digest(self._fake_key, f"{mechanism}\0{username}".encode(), "sha256")
        fake = ScramCredential(seed, auth.SCRAM_ITERATIONS, secrets.token_bytes(64),
                               hashlib.sha256(seed).digest())
        return None, fake

    async def scram(self, username: str, mechanism: str, att: Attempt,
                    verify: Callable[[], User | None]) -> User:
        """Finish a SCRAM exchange: `verify()` checks the client's proof against the
        credential handed out by `scram_credential` (cheap) and returns the user, or None
        for a wrong proof or an unknown user — under the same guard, delays and audit as
        the other logins."""
        async def check() -> User:
            return self._active(verify(), True)

        return await self._checked(att, username, mechanism, check)
