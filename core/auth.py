"""Secrets: password hashes (scrypt), SCRAM credentials (RFC 5802/7677), token hashes, and
the bounded worker pool that runs the slow ones off the event loop.

Every function here is pure and CPU-bound; `hashlib.scrypt` and `hashlib.pbkdf2_hmac` release
the GIL, so a `ThreadHashPool` keeps the event loop free while they run.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from pyggy.core.metadata.commands import EncodedScram
from pyggy.core.model import ScramCredential

_N, _R, _P = 1 << 14, 8, 1
T = TypeVar("T")

# SCRAM mechanisms and the hash each uses (RFC 7677 for SHA-256; SHA-512 as Kafka offers it)
SCRAM_HASHES = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
# Iterations pyggy uses when it derives a credential from a password. Kafka's clients refuse
# fewer than 4096 and Kafka stores at most 16384 (KIP-554), the bounds kept here too.
SCRAM_ITERATIONS = 4096
MIN_ITERATIONS, MAX_ITERATIONS = 4096, 16384


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, salt_b64, digest_b64 = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    salt = base64.b64decode(salt_b64)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return hmac.compare_digest(digest, base64.b64decode(digest_b64))


@functools.cache
def dummy_hash() -> str:
    """A hash no password matches, checked for unknown users so they cost the same time."""
    return hash_password(secrets.token_urlsafe(32))


def check_password(password: str, stored: str | None) -> bool:
    """`verify_password`, or the same work against `dummy_hash()` when there is no user."""
    if stored is None:
        verify_password(password, dummy_hash())
        return False
    return verify_password(password, stored)


class VerifiedPasswords:
    """Passwords this process verified with scrypt lately, so that a client logging in again
    with the same password skips the scrypt (README.md, "Logins never stall the server").

    An entry is HMAC-SHA256, under a key drawn at random per process, of the stored hash and
    the password: it never leaves memory, is never written, and is tied to the stored hash, so
    a changed password (a new hash with a new salt) finds nothing. Only a password that matched
    is added; a wrong one always pays the full scrypt. An entry lives `ttl` seconds from its
    scrypt check (a hit does not extend it); at most `size` entries, the oldest dropped first.
    `size=0` turns the cache off."""

    def __init__(self, size: int = 1024, ttl: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.size, self.ttl, self._clock = size, ttl, clock
        self._key = secrets.token_bytes(32)
        self._until: OrderedDict[bytes, float] = OrderedDict()

    def _tag(self, password: str, stored: str) -> bytes:
        hashed = stored.encode()  # length-prefixed: no two (hash, password) pairs share input
        return hmac.digest(self._key, len(hashed).to_bytes(4, "little") + hashed
                           + password.encode(), "sha256")

    def known(self, password: str, stored: str | None) -> bool:
        """True if `password` matched `stored` less than `ttl` seconds ago."""
        if stored is None or not self.size:
            return False
        tag = self._tag(password, stored)
        until = self._until.get(tag)
        if until is None:
            return False
        if self._clock() >= until:
            del self._until[tag]
            return False
        return True

    def add(self, password: str, stored: str) -> None:
        """Remember that `password` matched `stored` (call only after scrypt said so)."""
        if not self.size:
            return
        tag = self._tag(password, stored)
        self._until.pop(tag, None)
        self._until[tag] = self._clock() + self.ttl
        while len(self._until) > self.size:
            self._until.popitem(last=False)

    def clear(self) -> None:
        self._until.clear()


# -- SCRAM ------------------------------------------------------------------------------------
def scram_from_salted(mechanism: str, salted: bytes, salt: bytes,
                      iterations: int) -> ScramCredential:
    """The stored credential for a SaltedPassword (RFC 5802 §3: StoredKey, ServerKey)."""
    name = SCRAM_HASHES[mechanism]
    client_key = hmac.digest(salted, b"Client Key", name)
    return ScramCredential(salt, iterations, hashlib.new(name, client_key).digest(),
                           hmac.digest(salted, b"Server Key", name))


def scram_credential(password: str, mechanism: str, salt: bytes | None = None,
                     iterations: int = SCRAM_ITERATIONS) -> ScramCredential:
    """Derive a SCRAM credential from a password. As Kafka's clients do, the password is
    UTF-8 encoded without SASLprep."""
    salt = salt or secrets.token_bytes(32)
    salted = hashlib.pbkdf2_hmac(SCRAM_HASHES[mechanism], password.encode(), salt, iterations)
    return scram_from_salted(mechanism, salted, salt, iterations)


# what is stored for a password: its scrypt hash and its SCRAM credentials by mechanism
PasswordRecord = tuple[str, dict[str, ScramCredential]]


def password_record(password: str) -> PasswordRecord:
    """Everything stored for a password: its scrypt hash and one SCRAM credential per
    mechanism (one worker-pool job)."""
    return hash_password(password), {m: scram_credential(password, m) for m in SCRAM_HASHES}


def scram_to_dict(creds: dict[str, ScramCredential]) -> EncodedScram:
    return {m: (c.salt.hex(), c.iterations, c.stored_key.hex(), c.server_key.hex())
            for m, c in creds.items()}


def scram_from_dict(d: EncodedScram | None) -> dict[str, ScramCredential]:
    return {m: ScramCredential(bytes.fromhex(s), int(i), bytes.fromhex(k), bytes.fromhex(v))
            for m, (s, i, k, v) in (d or {}).items()}


# -- tokens -----------------------------------------------------------------------------------
def new_token() -> str:
    """A random token (URL-safe, 43 characters), shown to the user once."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def random_password() -> str:
    return secrets.token_urlsafe(18)


class RootUser:
    """The root user a first start creates: its name, its password (a random one when none is
    given, reported once) and its `PasswordRecord`.

    `start()` hashes the password in a background thread (scrypt and PBKDF2 release the GIL),
    so a first start overlaps the hash with its imports and opening the data directory;
    `record()` waits for that thread, or hashes inline when it was never started. The user
    is still stored before any listener opens. A restart finds its users in the state log
    and never asks for the record, so it never hashes."""

    def __init__(self, credentials: tuple[str, str] | None) -> None:
        username, password = credentials or ("iggy", "")
        self.generated: str | None = None
        if not password:
            password = self.generated = random_password()
        self.username = username
        self.password = password
        self._record: PasswordRecord | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> RootUser:
        self._thread = threading.Thread(target=self._hash, name="pyggy-root-hash", daemon=True)
        self._thread.start()
        return self

    def _hash(self) -> None:
        self._record = password_record(self.password)

    @property
    def hashed(self) -> bool:
        """True once the record exists (computed by the thread or by `record()`)."""
        return self._record is not None

    def record(self) -> PasswordRecord:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._record is None:  # never started, or the thread failed: hash here
            self._record = password_record(self.password)
        return self._record


# -- the worker pool --------------------------------------------------------------------------
class HashPool(Protocol):
    """Runs a slow, pure function (a password hash) without blocking the event loop."""

    async def run(self, fn: Callable[..., T], *args: Any) -> T: ...

    def close(self) -> None: ...


class ThreadHashPool:
    """A fixed number of worker threads; jobs beyond them wait in the executor's queue, which
    holds at most one job per connection (a connection's requests are answered in order)."""

    def __init__(self, workers: int = 1) -> None:
        self.workers = max(1, workers)
        self._executor: ThreadPoolExecutor | None = None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="pyggy-hash")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
