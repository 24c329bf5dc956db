"""The replica handshake codec: round trips, every refusal, and arbitrary or mutated frames
(hypothesis) that are refused cleanly, never accepted and never crash the parser."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyggy.cluster import handshake as h

KEY = b"k" * 32
CLUSTER = bytes(range(16))


def pair(dialer: int = 0, acceptor: int = 1, key_d: bytes = KEY, key_a: bytes = KEY,
         cluster_d: bytes = CLUSTER) -> tuple[h.Dialer, h.Acceptor]:
    return h.Dialer(key_d, cluster_d, dialer, acceptor), h.Acceptor(key_a, CLUSTER, acceptor, 3)


def test_both_sides_authenticate_and_agree_on_the_peer() -> None:
    d, a = pair()
    challenge, src = a.on_hello(d.hello())
    assert src == 0 and h.parse(challenge)[1] == h.OK
    assert a.on_finish(d.on_challenge(challenge)) == 0


@pytest.mark.parametrize(("case", "status"), [
    ("cluster", h.CLUSTER_MISMATCH), ("higher dials lower", h.DIRECTIONAL_RULE),
    ("dials someone else", h.DIRECTIONAL_RULE)])
def test_refusals_carry_their_status(case: str, status: int) -> None:
    if case == "cluster":
        d, a = pair(cluster_d=bytes(16))
    elif case == "higher dials lower":
        d, a = pair(dialer=2, acceptor=1)
    else:
        d, a = h.Dialer(KEY, CLUSTER, 0, 2), h.Acceptor(KEY, CLUSTER, 1, 3)
    answer, src = a.on_hello(d.hello())
    assert src is None and h.parse(answer)[1] == status
    if case != "cluster":  # (a refusal for another cluster names the acceptor's own)
        with pytest.raises(h.HandshakeError, match=h.STATUS_TEXT[status]):
            d.on_challenge(answer)


def test_a_wrong_secret_fails_on_both_sides() -> None:
    d, a = pair(key_d=b"x" * 32)
    challenge, _ = a.on_hello(d.hello())
    with pytest.raises(h.HandshakeError, match="acceptor failed authentication"):
        d.on_challenge(challenge)
    d2, a2 = pair(key_a=b"x" * 32)  # the dialler holds the key, a forged acceptor does not
    challenge, _ = a2.on_hello(d2.hello())
    with pytest.raises(h.HandshakeError):
        d2.on_challenge(challenge)


def test_an_answer_cannot_be_replayed_on_another_connection() -> None:
    d1, a1 = pair()
    challenge1, _ = a1.on_hello(d1.hello())
    finish1 = d1.on_challenge(challenge1)
    _, a2 = pair()
    a2.on_hello(h.Dialer(KEY, CLUSTER, 0, 1).hello())
    with pytest.raises(h.HandshakeError):
        a2.on_finish(finish1)  # other nonces: the old proof is worthless
    d3, _ = pair()
    d3.hello()
    with pytest.raises(h.HandshakeError):
        d3.on_challenge(challenge1)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=300))
def test_arbitrary_bytes_are_refused_never_accepted(data: bytes) -> None:
    _, a = pair()
    answer, src = a.on_hello(data)
    assert src is None and len(answer) == h.FRAME_SIZE
    assert h.parse(answer)[1] != h.OK
    d, _ = pair()
    d.hello()
    with pytest.raises(h.HandshakeError):
        d.on_challenge(data)
    with pytest.raises(h.HandshakeError):
        a.on_finish(data)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, h.FRAME_SIZE * 8 - 1))
def test_every_flipped_bit_of_a_finish_is_refused(bit: int) -> None:
    d, a = pair()
    challenge, _ = a.on_hello(d.hello())
    finish = bytearray(d.on_challenge(challenge))
    finish[bit // 8] ^= 1 << bit % 8
    with pytest.raises(h.HandshakeError):
        a.on_finish(bytes(finish))
