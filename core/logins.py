"""Logins for both doors: no stalls, no oracles, no floods, and an audit trail.

- The slow password check runs in the engine's worker pool (`core.auth.HashPool`), never on
  the event loop; an unknown user name is checked against a dummy hash, so it costs the same.
- `LoginGuard` limits guessing per client address and user name: the first `free_failures`
  failures in `failure_window` pass at once, later attempts wait a doubling delay (queued one
  after another), and after `max_failures` that name is refused from that address without any
  check until its failures age out; after `max_address_failures` (any names) the whole
  address is. Each connection also waits a doubling delay after each of its own failures and is
  closed after `max_connection_failures`.
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
from dataclasses import field
from typing import TYPE_CHECKING

from pyggy.core import auth
from pyggy.core.errors import ErrorCode, IggyError
from pyggy.core.lean import lean
from pyggy.core.model import ScramCredential, User

if TYPE_CHECKING:
    from pyggy.core.engine import LogEngine

log = logging.getLogger("pyggy.audit")
Sleep = Callable[[float], Awaitable[None]]


@lean
class GuardSettings:
    """The login guard's limits and delays (`[login]`)."""

    max_connection_failures: int = 3
    free_failures: int = 5  # per address and user name, answered without delay
    max_failures: int = 20  # per address and user name, then refused unchecked
    max_address_failures: int = 100  # per address, whatever the user names
    failure_window: float = 60.0  # seconds a failure counts against its address
    failure_delay: float = 0.1  # first backoff; doubles with each further failure
    max_delay: float = 2.0
    max_entries: int = 10_000  # addresses (and address + user pairs) remembered at most


class LockedOut(Exception):
    """Too many recent failed logins from this address: refused without a check."""


@lean
class _Failures:
    """Recent failed logins of one key."""

    failures: deque[float] = field(default_factory=deque)  # monotonic times, oldest first
    pending: int = 0  # attempts admitted and not finished (they count as failures)
    next_slot: float = 0.0  # when the next delayed attempt may start

    def recent(self) -> int:
        return len(self.failures) + self.pending


class LoginGuard:
    """Failed-login backoff and lockout per client address and user name, and a higher
    limit per address whatever the names (password spraying); in memory, bounded.

    A client retrying a wrong password slows down and then locks out that user name from
    its address, not the other users behind the same address (until the address limit)."""

    def __init__(self, settings: GuardSettings | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Sleep = asyncio.sleep
                 ) -> None:
        self.settings = settings or GuardSettings()
        self.clock = clock
        self.sleep = sleep
        self._entries: dict[object, _Failures] = {}  # host, or (host, user)

    def _entry(self, key: object, now: float) -> _Failures:
        e = self._entries.get(key)
        if e is None:
            if len(self._entries) >= self.settings.max_entries:
                self._forget(now)
            e = self._entries[key] = _Failures()
        horizon = now - self.settings.failure_window
        while e.failures and e.failures[0] <= horizon:
            e.failures.popleft()
        return e

    def _forget(self, now: float) -> None:
        horizon = now - self.settings.failure_window
        for key in [k for k, e in self._entries.items()
                    if not e.pending and (not e.failures or e.failures[-1] <= horizon)]:
            del self._entries[key]
        while len(self._entries) >= self.settings.max_entries:  # all busy: oldest go
            del self._entries[next(iter(self._entries))]

    def recent(self, host: str, user: str | None = None) -> int:
        """Failures (and attempts in progress) that count against `host` (and `user`)."""
        return self._entry(host if user is None else (host, user), self.clock()).recent()

    async def admit(self, host: str, user: str) -> None:
        """Wait until an attempt may be checked; raise LockedOut if it may not."""
        s = self.settings
        now = self.clock()
        address, pair = self._entry(host, now), self._entry((host, user), now)
        if address.recent() >= s.max_address_failures or pair.recent() >= s.max_failures:
            raise LockedOut(host)
        excess = pair.recent() + 1 - s.free_failures
        wait = 0.0
        if excess > 0:
            start = max(now, pair.next_slot) + min(s.failure_delay * 2 ** (excess - 1),
                                                   s.max_delay)
            if start - now > s.failure_window:
                raise LockedOut(host)
            pair.next_slot, wait = start, start - now
        address.pending += 1
        pair.pending += 1
        if wait:
            try:
                await self.sleep(wait)
            except BaseException:
                self._release(host, user, ok=True)
                raise

    def done(self, host: str, user: str, ok: bool) -> None:
        """An admitted attempt finished."""
        self._release(host, user, ok)

    def _release(self, host: str, user: str, ok: bool) -> None:
        now = self.clock()
        for key, cap in ((host, self.settings.max_address_failures),
                         ((host, user), self.settings.max_failures)):
            e = self._entry(key, now)
            e.pending = max(e.pending - 1, 0)
            if not ok:
                e.failures.append(now)
                while len(e.failures) > cap:
                    e.failures.popleft()

    async def connection_failed(self, state: LoginState) -> None:
        """Count a failure against one connection and wait its doubling delay."""
        s = self.settings
        state.failures += 1
        state.limit = s.max_connection_failures
        await self.sleep(min(s.failure_delay * 2 ** (state.failures - 1), s.max_delay))


@lean
class LoginState:
    """What a connection remembers about its failed logins."""

    failures: int = 0
    limit: int = 1 << 30

    @property
    def exhausted(self) -> bool:
        """Close the connection: it failed too often (or its address is locked out)."""
        return self.failures >= self.limit


@lean
class Attempt:
    """One login attempt: from which address, through which door, in which login state."""

    host: str  # the client's address, without port
    door: str  # "iggy" or "kafka"
    state: LoginState


@lean
class _Burst:
    """One kind of security event within its window: when it was first logged, how many
    repeats were not, and the line to report them with."""

    first: float
    more: int
    level: int
    text: str


# what makes two events the same kind: (event, user, address, door, operation)
EventKey = tuple[str | None, ...]


class Audit:
    """Security events logged once per burst: the first of a kind (event, user, address,
    door, operation) at once, its repeats within `window` seconds counted and reported with
    the next line of that kind or by `flush()`."""

    def __init__(self, window: float = 10.0, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 10_000) -> None:
        self.window = window
        self.clock = clock
        self.max_keys = max_keys
        self._seen: dict[EventKey, _Burst] = {}

    def event(self, level: int, key: EventKey, text: str) -> None:
        now = self.clock()
        entry = self._seen.get(key)
        if entry is not None and now - entry.first < self.window:
            entry.more += 1
            return
        more = entry.more if entry is not None else 0
        if entry is None and len(self._seen) >= self.max_keys:
            self.flush(force=True)
        self._seen[key] = _Burst(now, 0, level, text)
        log.log(level, "%s%s", text, f" (and {more} more like it before)" if more else "")

    def flush(self, force: bool = False) -> None:
        """Report the repeats of bursts that are over (all of them with `force`)."""
        now = self.clock()
        for key, burst in list(self._seen.items()):
            if force or now - burst.first >= self.window:
                if burst.more:
                    log.log(burst.level, "%s (%d more like it within %.0f s)", burst.text,
                            burst.more, self.window)
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
                 audit: Audit | None = None,
                 verified: auth.VerifiedPasswords | None = None) -> None:
        self.engine = engine
        self.guard = guard or LoginGuard()
        self.audit = audit or Audit()
        self.verified = verified if verified is not None else auth.VerifiedPasswords()
        self._fake_key = secrets.token_bytes(32)  # salts of unknown users' fake credentials

    def _find(self, username: str) -> User | None:
        return self.engine.identity.find_user(username)

    def _current(self, u: User) -> bool:
        return self.engine.identity.get_user(u.id) is u

    async def _checked(self, att: Attempt, username: str | None, how: str,
                       check: Callable[[], Awaitable[User]]) -> User:
        name = username or ""  # token logins have no user name
        try:
            await self.guard.admit(att.host, name)
        except LockedOut:
            att.state.failures = att.state.limit = max(att.state.failures, 1)
            self.audit.login(False, username, att.host, att.door, how,
                             "too many failed logins from this address")
            raise IggyError(ErrorCode.INVALID_CREDENTIALS, "invalid credentials") from None
        try:
            user = await check()
        except IggyError as e:
            self.guard.done(att.host, name, False)
            self.audit.login(False, username, att.host, att.door, how, str(e))
            await self.guard.connection_failed(att.state)
            raise
        except BaseException:  # not a failed login (e.g. shutdown): only end the attempt
            self.guard.done(att.host, name, True)
            raise
        self.guard.done(att.host, name, True)
        self.audit.login(True, user.username, att.host, att.door, how)
        return user

    def _active(self, u: User | None, matched: bool) -> User:
        if u is None or not matched or not self._current(u):
            raise IggyError(ErrorCode.INVALID_CREDENTIALS, "invalid credentials")
        if u.status != 1:
            raise IggyError(ErrorCode.USER_INACTIVE, "user inactive")
        return u

    async def _matches(self, password: str, u: User | None) -> bool:
        """Does `password` match `u`'s stored hash: from `verified` when this process checked
        it lately, else scrypt in the worker pool (an unknown user against the dummy hash)."""
        stored = u.password_hash if u is not None else None
        if self.verified.known(password, stored):
            return True
        matched = await self.engine.identity.hasher.run(auth.check_password, password, stored)
        if matched and stored is not None:
            self.verified.add(password, stored)
        return matched

    async def password(self, username: str, password: str, att: Attempt) -> User:
        """A user name and password (the Iggy door's LOGIN_USER)."""
        async def check() -> User:
            u = self._find(username)
            return self._active(u, await self._matches(password, u))

        return await self._checked(att, username, "password", check)

    async def token(self, token: str, att: Attempt) -> User:
        """A personal access token (LOGIN_WITH_PERSONAL_ACCESS_TOKEN)."""
        async def check() -> User:
            return self.engine.identity.authenticate_token(token)

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
            return self._active(u, await self._matches(secret, u))

        user = await self._checked(att, username, "PLAIN", check)
        return user, expiry[0]

    def certificate(self, name: str, att: Attempt) -> User | None:
        """The active user named by the common name of a client certificate the listener
        verified (mutual TLS), or None (logged; the connection then logs in as any other)."""
        u = self._find(name)
        if u is None or u.status != 1:
            self.audit.login(False, name, att.host, att.door, "certificate",
                             "the certificate names no active user")
            return None
        self.audit.login(True, u.username, att.host, att.door, "certificate")
        return u

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
