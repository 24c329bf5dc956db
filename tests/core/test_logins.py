"""core/logins.py: the login guard (backoff, lockout, bounded memory) on a fake clock, the
audit's once-per-burst lines, and `Logins` against a real engine: off-loop hashing, unknown
users checked like known ones, PLAIN with tokens, SCRAM's fake credentials."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pyggy.core import auth
from pyggy.core.engine import LogEngine
from pyggy.core.errors import ErrorCode, IggyError
from pyggy.core.logins import (
    Attempt,
    Audit,
    GuardSettings,
    LockedOut,
    LoginGuard,
    Logins,
    LoginState,
    host_of,
)


class FakeTime:
    """A clock and a sleep that records; `advance`: sleeping moves the clock at once (one
    attempt after another), else sleepers only yield (attempts overlap)."""

    def __init__(self, advance: bool = True) -> None:
        self.now = 1000.0
        self.advance = advance
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        if self.advance:
            self.now += seconds
        else:
            await asyncio.sleep(0)


class CountingPool:
    """A fault-injecting HashPool: runs jobs inline after an optional delay, counts them,
    and can fail them."""

    def __init__(self, fail: bool = False) -> None:
        self.jobs = 0
        self.fail = fail

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        self.jobs += 1
        if self.fail:
            raise RuntimeError("hash pool down")
        return fn(*args)

    def close(self) -> None:
        pass


def run(coro):
    return asyncio.run(coro)


def test_guard_free_failures_then_doubling_delays_then_lockout() -> None:
    t = FakeTime()
    g = LoginGuard(GuardSettings(free_failures=2, max_failures=5, failure_delay=0.1,
                                 max_delay=0.3), t.clock, t.sleep)

    async def fail_once(user: str = "alice", host: str = "10.0.0.1") -> None:
        await g.admit(host, user)
        g.done(host, user, False)

    for _ in range(5):
        run(fail_once())
    assert t.slept == [0.1, 0.2, 0.3]  # failures 3, 4, 5 waited; capped at max_delay
    with pytest.raises(LockedOut):
        run(g.admit("10.0.0.1", "alice"))
    run(fail_once("bob"))  # another name from the same address is not delayed
    run(g.admit("10.0.0.2", "alice"))  # nor the same name from another address
    g.done("10.0.0.2", "alice", True)
    assert t.slept == [0.1, 0.2, 0.3]
    t.now += 61  # the failures age out of the window
    run(fail_once())
    assert g.recent("10.0.0.1", "alice") == 1


def test_guard_locks_out_an_address_that_tries_many_names() -> None:
    t = FakeTime()
    g = LoginGuard(GuardSettings(max_address_failures=10), t.clock, t.sleep)

    async def spray() -> None:
        for i in range(10):
            await g.admit("10.9.9.9", f"user{i}")
            g.done("10.9.9.9", f"user{i}", False)

    run(spray())
    assert t.slept == []  # one failure per name: no per-name delay
    with pytest.raises(LockedOut):
        run(g.admit("10.9.9.9", "someone-else"))
    assert g.recent("10.9.9.9") == 10


def test_guard_counts_attempts_in_flight_and_serializes_them() -> None:
    """A parallel burst: attempts not yet finished count, and delayed ones queue up."""
    t = FakeTime(advance=False)
    g = LoginGuard(GuardSettings(free_failures=1, max_failures=4, failure_delay=1.0,
                                 max_delay=1.0), t.clock, t.sleep)

    async def burst() -> list:
        return await asyncio.gather(*(g.admit("h", "u") for _ in range(6)),
                                    return_exceptions=True)

    results = run(burst())
    assert sum(isinstance(r, LockedOut) for r in results) == 2  # pending ones count
    assert t.slept == [1.0, 2.0, 3.0]  # one after another, not all at once
    assert g.recent("h", "u") == 4 and g.recent("h") == 4
    for _ in range(4):
        g.done("h", "u", True)
    assert g.recent("h", "u") == 0 and g.recent("h") == 0


def test_guard_memory_is_bounded() -> None:
    t = FakeTime()
    g = LoginGuard(GuardSettings(max_entries=100), t.clock, t.sleep)

    async def many() -> None:
        for i in range(1000):
            host = f"10.0.{i // 256}.{i % 256}"
            await g.admit(host, "u")
            g.done(host, "u", False)

    run(many())
    assert len(g._entries) <= 100


def test_connection_failures_wait_and_exhaust() -> None:
    t = FakeTime()
    g = LoginGuard(GuardSettings(max_connection_failures=3, failure_delay=0.1), t.clock,
                   t.sleep)
    state = LoginState()
    for _ in range(3):
        assert not state.exhausted
        run(g.connection_failed(state))
    assert state.exhausted and t.slept == [0.1, 0.2, 0.4]


def test_audit_logs_once_per_burst(caplog: pytest.LogCaptureFixture) -> None:
    t = FakeTime()
    audit = Audit(window=10, clock=t.clock)
    caplog.set_level(logging.INFO, "pyggy.audit")
    for _ in range(50):
        audit.login(False, "mallory", "10.0.0.9", "kafka", "PLAIN", "invalid credentials")
    audit.refused("bob", "10.0.0.8", "iggy", "topic.delete")
    assert len(caplog.records) == 2
    t.now += 11
    audit.flush()
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == ("login failed: user 'mallory' from 10.0.0.9 (kafka door, PLAIN): "
                        "invalid credentials")
    assert lines[1] == "permission refused: user 'bob' from 10.0.0.8 (iggy door): topic.delete"
    assert lines[2].endswith("(49 more like it within 10 s)")
    audit.login(False, "mallory", "10.0.0.9", "kafka", "PLAIN", "invalid credentials")
    assert len(caplog.records) == 4 and "more like it" not in caplog.records[3].getMessage()


def test_host_of() -> None:
    assert host_of("127.0.0.1:5000") == "127.0.0.1"
    assert host_of("[::1]:5000") == "::1"
    assert host_of("?") == "?"


@pytest.fixture
def engine(tmp_path: Path):
    e = LogEngine(tmp_path / "data", state_fsync=False)
    e.open(("iggy", "iggy"))
    asyncio.run(e.identity.create_user("alice", "alice-pw", 1, None))
    asyncio.run(e.identity.create_user("sleepy", "sleepy-pw", 2, None))
    yield e
    e.close()


def attempt(host: str = "127.0.0.1") -> Attempt:
    return Attempt(host, "iggy", LoginState())


def fast_guard() -> LoginGuard:
    return LoginGuard(GuardSettings(failure_delay=0.0, max_delay=0.0))


def test_password_logins_use_the_pool_for_known_and_unknown_users(engine: LogEngine) -> None:
    pool = CountingPool()
    engine.identity.hasher = pool
    logins = Logins(engine, fast_guard())
    assert run(logins.password("alice", "alice-pw", attempt())).username == "alice"
    for user, password, code in (("alice", "nope", ErrorCode.INVALID_CREDENTIALS),
                                 ("nobody", "nope", ErrorCode.INVALID_CREDENTIALS),
                                 ("sleepy", "sleepy-pw", ErrorCode.USER_INACTIVE)):
        with pytest.raises(IggyError) as e:
            run(logins.password(user, password, attempt()))
        assert e.value.code == code
    assert pool.jobs == 4  # the unknown user cost a hash too


def test_a_failing_pool_fails_the_login_not_the_server(engine: LogEngine) -> None:
    engine.identity.hasher = CountingPool(fail=True)
    logins = Logins(engine, fast_guard())
    with pytest.raises(RuntimeError):
        run(logins.password("alice", "alice-pw", attempt()))
    assert logins.guard.recent("127.0.0.1") == 0  # no attempt left pending


def test_hashing_never_blocks_the_event_loop(engine: LogEngine) -> None:
    engine.identity.hasher = auth.ThreadHashPool(1)
    logins = Logins(engine, LoginGuard(GuardSettings(free_failures=100, max_failures=100,
                                                     failure_delay=0.0)))

    async def go() -> float:
        lags: list[float] = []
        stop = asyncio.Event()

        async def ticker() -> None:
            while not stop.is_set():
                t = time.perf_counter()
                await asyncio.sleep(0.005)
                lags.append(time.perf_counter() - t - 0.005)

        tick = asyncio.create_task(ticker())
        await asyncio.gather(*(logins.password("alice", "wrong", attempt())
                               for _ in range(8)), return_exceptions=True)
        stop.set()
        await tick
        return max(lags)

    assert run(go()) < 0.05
    engine.identity.hasher.close()


def test_plain_takes_the_password_or_a_token_of_that_user(engine: LogEngine) -> None:
    logins = Logins(engine, fast_guard())
    token = asyncio.run(engine.identity.create_token(engine.identity.user("alice").id, "ci", 0))
    expiring = asyncio.run(
        engine.identity.create_token(engine.identity.user("alice").id, "short", 60_000_000))
    assert run(logins.plain("alice", token, attempt())) == (engine.identity.user("alice"), 0)
    user, expiry = run(logins.plain("alice", expiring, attempt()))
    assert user.username == "alice" and expiry > engine.clock.now_us()
    assert run(logins.plain("alice", "alice-pw", attempt()))[0].username == "alice"
    for user, secret in (("iggy", token), ("alice", token + "x"), ("nobody", token)):
        with pytest.raises(IggyError):
            run(logins.plain(user, secret, attempt()))


def test_lockout_refuses_even_the_right_password(engine: LogEngine) -> None:
    logins = Logins(engine, LoginGuard(GuardSettings(max_failures=3, failure_delay=0.0)))
    for _ in range(3):
        with pytest.raises(IggyError):
            run(logins.password("alice", "wrong", attempt("10.1.1.1")))
    state = LoginState()
    with pytest.raises(IggyError) as e:
        run(logins.password("alice", "alice-pw", Attempt("10.1.1.1", "kafka", state)))
    assert e.value.code == ErrorCode.INVALID_CREDENTIALS and state.exhausted
    assert run(logins.password("alice", "alice-pw", attempt("10.1.1.2"))).username == "alice"


def test_scram_credentials_of_unknown_users_look_real(engine: LogEngine) -> None:
    logins = Logins(engine)
    user, real = logins.scram_credential("alice", "SCRAM-SHA-256")
    assert user is engine.identity.user("alice") and real == user.scram["SCRAM-SHA-256"]
    nobody, fake = logins.scram_credential("nobody", "SCRAM-SHA-256")
    again = logins.scram_credential("nobody", "SCRAM-SHA-256")[1]
    assert nobody is None and fake.salt == again.salt  # stable: probing twice tells nothing
    assert (len(fake.salt), fake.iterations) == (len(real.salt), real.iterations)
    assert logins.scram_credential("nobody", "SCRAM-SHA-512")[1].salt != fake.salt


# -- the verified-password cache (core/auth.py VerifiedPasswords) ---------------------------
def test_a_repeated_right_password_skips_scrypt_a_wrong_one_never(engine: LogEngine) -> None:
    pool = CountingPool()
    engine.identity.hasher = pool
    logins = Logins(engine, fast_guard())
    for _ in range(3):
        assert run(logins.password("alice", "alice-pw", attempt())).username == "alice"
    assert pool.jobs == 1  # iggy-bench's three logins: one scrypt
    for wrong in ("alice-pW", "alice-pw ", ""):
        with pytest.raises(IggyError) as e:
            run(logins.password("alice", wrong, attempt()))
        assert e.value.code == ErrorCode.INVALID_CREDENTIALS
    assert pool.jobs == 4  # every wrong guess paid its scrypt
    with pytest.raises(IggyError):  # another user's name with alice's password: no match
        run(logins.password("iggy", "alice-pw", attempt()))
    assert pool.jobs == 5
    assert run(logins.plain("alice", "alice-pw", attempt()))[0].username == "alice"
    assert pool.jobs == 5  # PLAIN shares the cache


def test_a_changed_password_finds_no_cached_match(engine: LogEngine) -> None:
    pool = CountingPool()
    engine.identity.hasher = pool
    logins = Logins(engine, fast_guard())
    run(logins.password("alice", "alice-pw", attempt()))
    run(engine.identity.change_password("alice", "alice-pw", "new-pw", check_current=False))
    jobs = pool.jobs
    with pytest.raises(IggyError) as e:
        run(logins.password("alice", "alice-pw", attempt()))
    assert e.value.code == ErrorCode.INVALID_CREDENTIALS and pool.jobs == jobs + 1
    assert run(logins.password("alice", "new-pw", attempt())).username == "alice"
    assert run(logins.password("alice", "new-pw", attempt())).username == "alice"
    assert pool.jobs == jobs + 2


def test_a_cached_password_of_a_disabled_or_deleted_user_is_refused(engine: LogEngine) -> None:
    logins = Logins(engine, fast_guard())
    run(logins.password("alice", "alice-pw", attempt()))
    run(engine.identity.update_user("alice", None, 2))
    with pytest.raises(IggyError) as e:
        run(logins.password("alice", "alice-pw", attempt()))
    assert e.value.code == ErrorCode.USER_INACTIVE
    run(engine.identity.delete_user("alice"))
    with pytest.raises(IggyError) as e:
        run(logins.password("alice", "alice-pw", attempt()))
    assert e.value.code == ErrorCode.INVALID_CREDENTIALS


def test_the_cache_off_means_scrypt_every_time(engine: LogEngine) -> None:
    pool = CountingPool()
    engine.identity.hasher = pool
    logins = Logins(engine, fast_guard(), verified=auth.VerifiedPasswords(size=0))
    for _ in range(3):
        run(logins.password("alice", "alice-pw", attempt()))
    assert pool.jobs == 3


def test_a_locked_out_name_is_refused_even_with_a_remembered_password(
        engine: LogEngine) -> None:
    logins = Logins(engine, LoginGuard(GuardSettings(max_failures=3, failure_delay=0.0)))
    run(logins.password("alice", "alice-pw", attempt("10.1.1.1")))  # remembered from here on
    for _ in range(3):
        with pytest.raises(IggyError):
            run(logins.password("alice", "wrong", attempt("10.1.1.1")))
    with pytest.raises(IggyError) as e:
        run(logins.password("alice", "alice-pw", attempt("10.1.1.1")))
    assert e.value.code == ErrorCode.INVALID_CREDENTIALS
