"""Stored secrets: SCRAM credentials, what the state log keeps for a password, the dummy
hash for unknown users, and users from data directories that predate SCRAM. (The RFC 7677
test vector is in tests/kafka_wire/test_scram.py, with the exchange.)"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyggy.core import auth
from pyggy.core.engine import LogEngine
from pyggy.core.errors import ErrorCode, IggyError


def test_password_record_has_both_mechanisms_with_fresh_salts() -> None:
    phc, scram = auth.password_record("pencil")
    assert auth.verify_password("pencil", phc) and not auth.verify_password("pencil!", phc)
    assert set(scram) == {"SCRAM-SHA-256", "SCRAM-SHA-512"}
    assert all(c.iterations >= 4096 and len(c.salt) == 32 for c in scram.values())
    assert scram["SCRAM-SHA-512"].stored_key != scram["SCRAM-SHA-256"].stored_key
    assert len(scram["SCRAM-SHA-512"].server_key) == 64
    again = auth.password_record("pencil")[1]
    assert again["SCRAM-SHA-256"].salt != scram["SCRAM-SHA-256"].salt
    assert auth.scram_from_dict(auth.scram_to_dict(scram)) == scram


def test_unknown_user_check_costs_a_hash() -> None:
    stored = auth.hash_password("right")
    auth.dummy_hash()  # computed once, at the first unknown user
    known = min(_timed(auth.check_password, "wrong", stored) for _ in range(5))
    unknown = min(_timed(auth.check_password, "wrong", None) for _ in range(5))
    assert not auth.check_password("right", None)
    assert 0.5 < unknown / known < 2, (known, unknown)


def _timed(fn, *args) -> float:
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


def test_password_changes_carry_scram_through_the_state_log(tmp_path: Path) -> None:
    e = LogEngine(tmp_path, state_fsync=False)
    e.open(("iggy", "iggy"))
    root_scram = dict(e.identity.user("iggy").scram)
    assert set(root_scram) == set(auth.SCRAM_HASHES)  # root gets them at first start
    alice = asyncio.run(e.identity.create_user("alice", "first-pw", 1, None))
    first = dict(alice.scram)
    asyncio.run(e.identity.change_password("alice", "first-pw", "second-pw"))
    assert alice.scram and alice.scram != first
    with pytest.raises(IggyError) as err:
        asyncio.run(e.identity.change_password("alice", "nope", "third-pw"))
    assert err.value.code == ErrorCode.INVALID_CREDENTIALS
    asyncio.run(e.identity.delete_scram("alice", "SCRAM-SHA-512"))
    kept = dict(alice.scram)
    e.close()
    log = (tmp_path / "state" / "state.log").read_bytes()
    assert b"first-pw" not in log and b"second-pw" not in log  # never the password itself
    e2 = LogEngine(tmp_path, state_fsync=False)
    e2.open()
    assert e2.identity.user("alice").scram == kept and set(kept) == {"SCRAM-SHA-256"}
    assert e2.identity.user("iggy").scram == root_scram
    assert e2.identity.authenticate("alice", "second-pw").username == "alice"
    e2.close()


def test_users_from_before_scram_keep_plain_only(tmp_path: Path) -> None:
    """A state log written before SCRAM support has no credentials: PLAIN still works."""
    e = LogEngine(tmp_path, state_fsync=False)
    e.commands.meta.apply({"type": "create_user", "username": "old", "password_hash":
                  auth.hash_password("old-pw"), "status": 1, "permissions": None,
                  "created_at": 1})
    old = e.commands.meta.user("old")
    assert old.scram == {} and e.identity.authenticate("old", "old-pw") is old
    e.commands.meta.apply({"type": "change_password", "user_id": old.id,
                  "password_hash": auth.hash_password("new-pw")})
    assert old.scram == {}
    with pytest.raises(IggyError):
        e.commands.meta.apply({"type": "set_scram", "user_id": old.id, "mechanism": "SCRAM-SHA-1",
                      "salt": "00", "iterations": 4096, "stored_key": "00",
                      "server_key": "00"})


def test_a_started_root_user_is_hashed_in_its_thread_and_stored(tmp_path: Path) -> None:
    root = auth.RootUser(None).start()  # a first start without credentials: a random password
    assert root.generated and root.username == "iggy"
    e = LogEngine(tmp_path, state_fsync=False)
    e.open(root)
    assert root.hashed and e.generated_root_password == root.generated
    assert e.identity.authenticate("iggy", root.generated).id == 0
    assert set(e.identity.user("iggy").scram) == set(auth.SCRAM_HASHES)
    e.close()


def test_a_restart_never_hashes_the_root_password(tmp_path: Path) -> None:
    e = LogEngine(tmp_path, state_fsync=False)
    e.open(("admin", "first-secret"))
    e.close()
    root = auth.RootUser(("admin", "other-secret"))  # not started: record() would hash
    e2 = LogEngine(tmp_path, state_fsync=False)
    e2.open(root)
    assert not root.hashed and e2.generated_root_password is None
    assert e2.identity.authenticate("admin", "first-secret").username == "admin"
    e2.close()


def test_a_root_user_never_started_is_hashed_when_needed(tmp_path: Path) -> None:
    root = auth.RootUser(("admin", "pw-123"))
    e = LogEngine(tmp_path, state_fsync=False)
    e.open(root)
    assert root.hashed and root.generated is None and e.generated_root_password is None
    assert e.identity.authenticate("admin", "pw-123").username == "admin"
    e.close()


def test_verified_passwords_expire_are_bounded_and_tied_to_the_hash() -> None:
    now = [0.0]
    v = auth.VerifiedPasswords(size=2, ttl=10.0, clock=lambda: now[0])
    v.add("pw", "scrypt$a$b")
    assert v.known("pw", "scrypt$a$b")
    assert not v.known("pw", "scrypt$a$c")  # another stored hash (a changed password)
    assert not v.known("pW", "scrypt$a$b") and not v.known("pw", None)
    now[0] = 9.9
    assert v.known("pw", "scrypt$a$b")  # a hit does not extend the entry...
    now[0] = 10.0
    assert not v.known("pw", "scrypt$a$b")  # ...which ends ttl after its scrypt check
    v.add("one", "h")
    v.add("two", "h")
    v.add("three", "h")  # the oldest goes
    assert not v.known("one", "h") and v.known("two", "h") and v.known("three", "h")
    a, b = auth.VerifiedPasswords(), auth.VerifiedPasswords()
    a.add("pw", "h")
    b.add("pw", "h")
    assert a._until.keys() != b._until.keys()  # a random key per process: different tags


def test_verified_passwords_size_zero_remembers_nothing() -> None:
    v = auth.VerifiedPasswords(size=0)
    v.add("pw", "h")
    assert not v.known("pw", "h")


@given(st.text(max_size=40), st.text(max_size=40), st.text(max_size=40))
def test_a_remembered_password_matches_only_itself_under_its_hash(
        password: str, other: str, stored: str) -> None:
    v = auth.VerifiedPasswords()
    v.add(password, stored)
    assert v.known(password, stored)
    assert v.known(other, stored) == (other == password)
    assert v.known(password, stored + "x") is False
    assert not v.known(password[1:], stored + password[:1]) or not password  # no shifting
