"""The replica handshake, sans I/O: the first frames of every replica connection.

A challenge-response over a pre-shared key (`[cluster.auth] shared_secret`) with HMAC-SHA256
(RFC 2104), as Iggy's ReplicaHello / Challenge / Finish do with a keyed BLAKE3:

1. the dialer (always the lower replica id) sends HELLO: cluster id, its id, the id it dials,
   a fresh 32-byte nonce;
2. the acceptor checks the cluster id and the directional rule (it accepts only lower ids and
   only for itself), then answers CHALLENGE with its own nonce and a MAC over both nonces and
   both ids — or a refusal status, and closes;
3. the dialer checks that MAC (the acceptor holds the key) and sends FINISH with its own MAC
   (so does the dialer). A wrong MAC on either side closes the connection.

Each MAC is keyed by the secret and covers a label per direction, the cluster id, both ids and
both nonces, so no answer can be replayed on another connection or reflected back. Without
`[cluster.auth]` (a loopback-only roster) the key is empty: the cluster and direction checks
still apply, authentication does not.

Every frame is 256 bytes with the 32-bit size at offset 48, as every replica message, so one
framing cuts both.
"""

from __future__ import annotations

import hmac
import os
import struct

FRAME_SIZE = 256
MAGIC = b"PYGGYRB1"
HELLO, CHALLENGE, FINISH = 1, 2, 3
OK, CLUSTER_MISMATCH, DIRECTIONAL_RULE, BAD_FRAME = 0, 2, 3, 4
STATUS_TEXT = {CLUSTER_MISMATCH: "cluster mismatch", DIRECTIONAL_RULE: "directional rule",
               BAD_FRAME: "malformed handshake"}
# magic, kind, status, from, to, pad, cluster, reserved, size, pad, nonce dialer, nonce acceptor,
# mac
_FRAME = struct.Struct("<8sBBBB4x16s16sI4x32s32s32s")
_PAD = bytes(FRAME_SIZE - _FRAME.size)


class HandshakeError(ValueError):
    """The peer failed the handshake (the connection closes)."""


def _frame(kind: int, status: int, src: int, dst: int, cluster: bytes, nonce_d: bytes,
           nonce_a: bytes, mac: bytes) -> bytes:
    return _FRAME.pack(MAGIC, kind, status, src, dst, cluster, bytes(16), FRAME_SIZE, nonce_d,
                       nonce_a, mac) + _PAD


# (kind, status, from, to, cluster, nonce dialer, nonce acceptor, mac)
Frame = tuple[int, int, int, int, bytes, bytes, bytes, bytes]


def parse(frame: bytes | bytearray) -> Frame:
    """(kind, status, from, to, cluster, nonce dialer, nonce acceptor, mac); raises
    HandshakeError for anything that is not an intact handshake frame."""
    if len(frame) != FRAME_SIZE:
        raise HandshakeError(f"handshake frame of {len(frame)} bytes")
    magic, kind, status, src, dst, cluster, reserved, size, nd, na, mac = _FRAME.unpack_from(
        frame)
    if magic != MAGIC or size != FRAME_SIZE or kind not in (HELLO, CHALLENGE, FINISH) or \
            any(reserved) or any(frame[12:16]) or any(frame[52:56]) or \
            bytes(frame[_FRAME.size:]) != _PAD or (kind != CHALLENGE and status != OK):
        raise HandshakeError("not a replica handshake frame")  # unused bytes must be zero
    return kind, status, src, dst, cluster, nd, na, mac


def _mac(key: bytes, label: bytes, cluster: bytes, dialer: int, acceptor: int, nonce_d: bytes,
         nonce_a: bytes) -> bytes:
    msg = label + cluster + bytes((dialer, acceptor)) + nonce_d + nonce_a
    return hmac.new(key, msg, "sha256").digest()


class Dialer:
    """The dialing side: `hello()` first, then `on_challenge(frame)` → FINISH to send."""

    def __init__(self, key: bytes, cluster: bytes, me: int, peer: int) -> None:
        self.key, self.cluster, self.me, self.peer = key, cluster, me, peer
        self.nonce = os.urandom(32)

    def hello(self) -> bytes:
        return _frame(HELLO, OK, self.me, self.peer, self.cluster, self.nonce, bytes(32),
                      bytes(32))

    def on_challenge(self, frame: bytes | bytearray) -> bytes:
        kind, status, src, dst, cluster, nd, na, mac = parse(frame)
        if kind != CHALLENGE:
            raise HandshakeError("expected CHALLENGE")
        if status != OK:
            raise HandshakeError(f"refused: {STATUS_TEXT.get(status, status)}")
        if (src, dst, cluster, nd) != (self.peer, self.me, self.cluster, self.nonce):
            raise HandshakeError("CHALLENGE does not answer our HELLO")
        want = _mac(self.key, b"acceptor", self.cluster, self.me, self.peer, nd, na)
        if not hmac.compare_digest(mac, want):
            raise HandshakeError("acceptor failed authentication (wrong shared secret?)")
        proof = _mac(self.key, b"dialer", self.cluster, self.me, self.peer, nd, na)
        return _frame(FINISH, OK, self.me, self.peer, self.cluster, nd, na, proof)


class Acceptor:
    """The accepting side: `on_hello(frame)` → (CHALLENGE or refusal to send, dialer id or
    None when refused); then `on_finish(frame)` → the authenticated peer id."""

    def __init__(self, key: bytes, cluster: bytes, me: int, replica_count: int) -> None:
        self.key, self.cluster, self.me, self.n = key, cluster, me, replica_count
        self.nonce = os.urandom(32)
        self.hello: tuple[int, bytes] | None = None  # (dialer id, its nonce)

    def on_hello(self, frame: bytes | bytearray) -> tuple[bytes, int | None]:
        try:
            kind, _, src, dst, cluster, nd, _, _ = parse(frame)
        except HandshakeError:
            return self._refuse(BAD_FRAME, 0, bytes(32)), None
        if kind != HELLO:
            return self._refuse(BAD_FRAME, src, nd), None
        if cluster != self.cluster:
            return self._refuse(CLUSTER_MISMATCH, src, nd), None
        if not (0 <= src < self.me and dst == self.me):  # only lower ids dial us
            return self._refuse(DIRECTIONAL_RULE, src, nd), None
        self.hello = (src, nd)
        mac = _mac(self.key, b"acceptor", self.cluster, src, self.me, nd, self.nonce)
        return _frame(CHALLENGE, OK, self.me, src, self.cluster, nd, self.nonce, mac), src

    def _refuse(self, status: int, src: int, nonce_d: bytes) -> bytes:
        return _frame(CHALLENGE, status, self.me, src & 0xFF, self.cluster, nonce_d, bytes(32),
                      bytes(32))

    def on_finish(self, frame: bytes | bytearray) -> int:
        kind, _, src, dst, cluster, nd, na, mac = parse(frame)
        if kind != FINISH or self.hello is None:
            raise HandshakeError("expected FINISH after HELLO")
        peer, nonce_d = self.hello
        if (src, dst, cluster, nd, na) != (peer, self.me, self.cluster, nonce_d, self.nonce):
            raise HandshakeError("FINISH does not answer our CHALLENGE")
        want = _mac(self.key, b"dialer", self.cluster, peer, self.me, nonce_d, self.nonce)
        if not hmac.compare_digest(mac, want):
            raise HandshakeError("dialer failed authentication (wrong shared secret?)")
        return peer
