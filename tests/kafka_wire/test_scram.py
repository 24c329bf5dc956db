"""The server side of SCRAM (kafka_wire/scram.py): the RFC 7677 test vector, SHA-512 with a
client written from the RFC, refusals, and arbitrary bytes (only ScramError, bounded)."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyggy.core import auth
from pyggy.kafka_wire.scram import MAX_MESSAGE, ScramError, ScramExchange
from sasl_support import ScramClient

# RFC 7677 §3: user "user", password "pencil"
RFC_SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
RFC_CLIENT_FIRST = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
RFC_SERVER_NONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
RFC_SERVER_FIRST = (b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                    b"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
RFC_CLIENT_FINAL = (b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
RFC_SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def test_scram_sha256_exchange_matches_rfc7677() -> None:
    """The credential derived from the password, and the server side of the exchange."""
    from pyggy.kafka_wire.scram import ScramExchange

    c = auth.scram_credential("pencil", "SCRAM-SHA-256", RFC_SALT, 4096)
    salted = hashlib.pbkdf2_hmac("sha256", b"pencil", RFC_SALT, 4096)
    assert auth.scram_from_salted("SCRAM-SHA-256", salted, RFC_SALT, 4096) == c
    ex = ScramExchange.start("SCRAM-SHA-256", RFC_CLIENT_FIRST)
    ex.server_nonce = RFC_SERVER_NONCE
    assert ex.username == "user"
    assert ex.server_first(c) == RFC_SERVER_FIRST
    assert ex.final(RFC_CLIENT_FINAL) == (True, RFC_SERVER_FINAL)
    wrong = auth.scram_credential("pencil!", "SCRAM-SHA-256", RFC_SALT, 4096)
    ex = ScramExchange.start("SCRAM-SHA-256", RFC_CLIENT_FIRST)
    ex.server_nonce = RFC_SERVER_NONCE
    ex.server_first(wrong)
    assert ex.final(RFC_CLIENT_FINAL)[0] is False


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
@pytest.mark.parametrize("user", ["alice", "we,ird=name"])
def test_round_trip_and_wrong_password(mechanism: str, user: str) -> None:
    cred = auth.scram_credential("secret", mechanism)
    for password, ok in (("secret", True), ("Secret", False)):
        client = ScramClient(mechanism, user, password)
        ex = ScramExchange.start(mechanism, client.first())
        assert ex.username == user
        valid, server_final = ex.final(client.final(ex.server_first(cred)))
        assert valid is ok
        assert client.verify(server_final) is ok  # the server proves it knows the key


@pytest.mark.parametrize("first, why", [
    (b"p=tls-unique,,n=a,r=x", "channel binding"),
    (b"n,,n=a,r=x,tokenauth=true", "extensions"),
    (b"n,a=bob,n=alice,r=x", "authorization id"),
    (b"n,,r=x,n=a", "needs n= and r="),
    (b"n,,n=a=41,r=x", "escape"),
    (b"n,,n=,r=x", "empty"),
    (b"q,,n=a,r=x", "gs2"),
    (b"n,,n=a", "needs n= and r="),
    (b"\xff\xfe", "UTF-8"),
    (b"n,,n=a,r=" + b"x" * MAX_MESSAGE, "too long"),
])
def test_bad_client_first_is_refused(first: bytes, why: str) -> None:
    with pytest.raises(ScramError, match=why):
        ScramExchange.start("SCRAM-SHA-256", first)


def test_a_repeated_client_nonce_is_accepted() -> None:
    """librdkafka 2.0.2 (kcat 1.7.1) sends r=<client nonce><client nonce><server nonce>."""
    cred = auth.scram_credential("secret", "SCRAM-SHA-256")
    client = ScramClient("SCRAM-SHA-256", "alice", "secret")
    ex = ScramExchange.start("SCRAM-SHA-256", client.first())
    valid, server_final = ex.final(client.final(ex.server_first(cred), repeat_nonce=True))
    assert valid and client.verify(server_final)


def test_matching_authzid_and_escapes_are_accepted() -> None:
    ex = ScramExchange.start("SCRAM-SHA-256", b"n,a=b=3Dc,n=b=3Dc,r=abc")
    assert ex.username == "b=c"


def test_bad_client_final_is_refused() -> None:
    cred = auth.scram_credential("secret", "SCRAM-SHA-256")
    client = ScramClient("SCRAM-SHA-256", "alice", "secret")
    ex = ScramExchange.start("SCRAM-SHA-256", client.first())
    final = client.final(ex.server_first(cred))
    for bad, why in ((final.replace(b",p=", b"X,p="), "nonce"),
                     (final.replace(b"c=biws", b"c=eSws"), "channel binding"),
                     (final.rsplit(b",p=", 1)[0], "p= last"),
                     (final[:-4] + b"!!!=", "proof")):
        with pytest.raises(ScramError, match=why):
            ex.final(bad)
    short = final.rsplit(b",p=", 1)[0] + b",p=" + base64.b64encode(b"x")
    assert ex.final(short)[0] is False
    assert ex.final(final)[0] is True


@settings(max_examples=300, deadline=None)
@given(first=st.binary(max_size=200), final=st.binary(max_size=200))
def test_arbitrary_bytes_only_raise_scram_error(first: bytes, final: bytes) -> None:
    cred = auth.ScramCredential(b"salt", 4096, hashlib.sha256(b"k").digest(), b"s" * 32)
    try:
        ex = ScramExchange.start("SCRAM-SHA-256", first)
        ex.server_first(cred)
        assert ex.final(final)[0] is False
    except ScramError:
        pass


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=100))
def test_arbitrary_text_after_the_header_only_raises_scram_error(text: str) -> None:
    try:
        ScramExchange.start("SCRAM-SHA-512", ("n,," + text).encode())
    except ScramError:
        pass
