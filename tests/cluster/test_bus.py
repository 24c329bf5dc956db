"""The replica bus on loopback: handshake refusals, one link per pair, delivery, bounded
queues, reconnection, the keepalive."""

from __future__ import annotations

import asyncio
import socket

import pytest
from pyggy.cluster import handshake
from pyggy.cluster.bus import Bus, BusSettings
from pyggy.cluster.roster import Node, cluster_id
from pyggy.consensus.message import Command, Message, encode

KEY = b"k" * 32
CLUSTER = cluster_id("test")


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def roster(n: int) -> tuple[Node, ...]:
    return tuple(Node(f"n{i}", "127.0.0.1", i, tcp_replica=p)
                 for i, p in enumerate(free_ports(n)))


def commit(sender: int, commit: int = 1) -> Message:
    return Message(Command.COMMIT, cluster=CLUSTER, replica=sender, group=5, commit=commit)


async def start(nodes, me: int, key: bytes = KEY, cluster: bytes = CLUSTER,
                port: int | None = None, **kw):
    got: list[Message] = []
    kw.setdefault("reconnect_period", 0.05)
    bus = Bus(BusSettings(cluster=cluster, me=me, nodes=nodes, key=key, **kw), got.append)
    await bus.start("127.0.0.1", nodes[me].tcp_replica if port is None else port)
    return bus, got


async def until(predicate, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_three_replicas_link_every_pair_once_and_deliver_both_ways() -> None:
    async def main() -> None:
        nodes = roster(3)
        buses = [await start(nodes, i) for i in range(3)]
        await until(lambda: all(len(b.linked()) == 2 for b, _ in buses))
        # one connection per pair: the lower id dialled, the higher accepted
        assert [len(b.listener.connections) for b, _ in buses] == [0, 1, 2]
        for i, (b, _) in enumerate(buses):
            for j in range(3):
                if j != i:
                    b.send(j, commit(i, 10 + i))
        await until(lambda: all(len(got) == 2 for _, got in buses))
        for i, (_, got) in enumerate(buses):
            assert sorted(m.replica for m in got) == [j for j in range(3) if j != i]
            assert all(m.commit == 10 + m.replica and m.group == 5 for m in got)
        for b, _ in buses:
            await b.close()

    asyncio.run(main())


@pytest.mark.parametrize("case", ["wrong secret", "wrong cluster"])
def test_a_replica_without_the_secret_or_of_another_cluster_is_refused(case: str) -> None:
    async def main() -> None:
        nodes = roster(2)
        good, got = await start(nodes, 1)
        bad, _ = await start(nodes, 0, key=b"x" * 32 if case == "wrong secret" else KEY,
                             cluster=cluster_id("other") if case == "wrong cluster" else CLUSTER)
        await asyncio.sleep(0.5)  # ten redial periods: every attempt must fail
        assert good.linked() == [] and bad.linked() == []
        bad.send(1, commit(0))
        await asyncio.sleep(0.1)
        assert got == []
        if case == "wrong cluster":
            assert good.refusals >= 1
        await bad.close()
        await good.close()

    asyncio.run(main())


def _raw_hello(nodes, src: int, dst: int) -> tuple[bytes, handshake.Dialer]:
    d = handshake.Dialer(KEY, CLUSTER, src, dst)
    return d.hello(), d


def test_the_directional_rule_refuses_a_higher_id_dialling_a_lower() -> None:
    async def main() -> None:
        nodes = roster(3)
        low, _ = await start(nodes, 0)
        r, w = await asyncio.open_connection("127.0.0.1", nodes[0].tcp_replica)
        hello, dialer = _raw_hello(nodes, 2, 0)  # replica 2 dials replica 0: wrong way
        w.write(hello)
        answer = await asyncio.wait_for(r.readexactly(handshake.FRAME_SIZE), 5)
        assert handshake.parse(answer)[1] == handshake.DIRECTIONAL_RULE
        with pytest.raises(handshake.HandshakeError, match="directional rule"):
            dialer.on_challenge(answer)
        assert await asyncio.wait_for(r.read(), 5) == b""  # and it hangs up
        w.close()
        await low.close()

    asyncio.run(main())


def test_handshake_garbage_and_forged_finish_close_the_connection() -> None:
    async def main() -> None:
        nodes = roster(2)
        high, got = await start(nodes, 1)
        # garbage with a plausible size field
        r, w = await asyncio.open_connection("127.0.0.1", nodes[1].tcp_replica)
        junk = bytearray(256)
        junk[48:52] = (256).to_bytes(4, "little")
        w.write(bytes(junk))
        assert handshake.parse(await r.readexactly(256))[1] == handshake.BAD_FRAME
        assert await asyncio.wait_for(r.read(), 5) == b""
        # a FINISH whose MAC was not made with the secret
        r, w = await asyncio.open_connection("127.0.0.1", nodes[1].tcp_replica)
        d = handshake.Dialer(b"y" * 32, CLUSTER, 0, 1)
        w.write(d.hello())
        challenge = await r.readexactly(256)
        _, _, _, _, _, nd, na, _ = handshake.parse(challenge)
        forged = handshake._frame(handshake.FINISH, 0, 0, 1, CLUSTER, nd, na, bytes(32))
        w.write(forged)
        assert await asyncio.wait_for(r.read(), 5) == b""
        assert high.linked() == [] and got == []
        await high.close()

    asyncio.run(main())


def test_messages_in_the_same_read_as_finish_are_delivered() -> None:
    """A dialer whose queue filled while the link was down (a heal) writes its messages right
    behind FINISH; arriving in one read, they were framed before FINISH was handled and
    refused as oversized handshake frames, closing every new link (finding N-c)."""
    async def main() -> None:
        nodes = roster(2)
        high, got = await start(nodes, 1)
        r, w = await asyncio.open_connection("127.0.0.1", nodes[1].tcp_replica)
        d = handshake.Dialer(KEY, CLUSTER, 0, 1)
        w.write(d.hello())
        finish = d.on_challenge(bytearray(await r.readexactly(256)))
        queued = [encode(commit(0, k)) for k in range(3)]
        queued.append(encode(Message(Command.START_VIEW, cluster=CLUSTER, replica=0, group=5,
                                     body=bytes(256 * 4))))  # 1,280 bytes
        w.write(finish + b"".join(queued))  # one write: one read on loopback
        await until(lambda: len(got) == 4)
        assert [m.commit for m in got[:3]] == [0, 1, 2] and high.linked() == [0]
        w.close()
        await high.close()

    asyncio.run(main())


def test_a_forged_finish_drops_the_messages_behind_it() -> None:
    async def main() -> None:
        nodes = roster(2)
        high, got = await start(nodes, 1)
        r, w = await asyncio.open_connection("127.0.0.1", nodes[1].tcp_replica)
        d = handshake.Dialer(b"y" * 32, CLUSTER, 0, 1)
        w.write(d.hello())
        challenge = await r.readexactly(256)
        _, _, _, _, _, nd, na, _ = handshake.parse(challenge)
        forged = handshake._frame(handshake.FINISH, 0, 0, 1, CLUSTER, nd, na, bytes(32))
        w.write(forged + encode(commit(0, 7)))
        assert await asyncio.wait_for(r.read(), 5) == b""
        assert high.linked() == [] and got == []
        await high.close()

    asyncio.run(main())


def test_a_full_queue_drops_instead_of_blocking_and_a_restarted_peer_relinks() -> None:
    async def main() -> None:
        nodes = roster(2)
        low, _ = await start(nodes, 0, queue_capacity=4)
        for k in range(10):  # peer 1 is not there: queue 4, drop 6
            low.send(1, commit(0, k))
        assert len(low.peers[1].queue) == 4 and low.peers[1].dropped == 6
        high, got = await start(nodes, 1)
        await until(lambda: len(got) == 4)  # the queue is flushed once the link is up
        assert [m.commit for m in got] == [0, 1, 2, 3]
        await high.close()
        await until(lambda: low.linked() == [])
        high, got = await start(nodes, 1)  # restarted: the dialler finds it again
        await until(lambda: low.linked() == [1])
        low.send(1, commit(0, 99))
        await until(lambda: [m.commit for m in got] == [99])
        await high.close()
        await low.close()

    asyncio.run(main())


class Cut:
    """A TCP relay in front of a replica port that cuts the link as a network would: from
    `cut()` on, the connections it carries stay open but carry nothing either way, ever (as
    ones whose retransmissions back off past the heal), and new ones are refused; `heal()`
    accepts again."""

    def __init__(self, port: int, target: int) -> None:
        self.port, self.target = port, target
        self.generation = 0  # bumped by each cut: connections of an older one are dead
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def heal(self) -> None:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    def cut(self) -> None:
        self.generation += 1
        assert self.server is not None
        self.server.close()  # listening socket only (3.11): the carried connections stay

    async def _relay(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        ur, uw = await asyncio.open_connection("127.0.0.1", self.target)
        self.writers += [w, uw]
        gen = self.generation
        await asyncio.gather(self._pump(r, uw, gen), self._pump(ur, w, gen),
                             return_exceptions=True)

    async def _pump(self, r: asyncio.StreamReader, w: asyncio.StreamWriter, gen: int) -> None:
        while data := await r.read(65536):
            if gen == self.generation:
                w.write(data)
        if gen == self.generation:  # a close while cut never reaches the other end
            w.close()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for w in self.writers:
            w.transport.abort()


def test_a_silent_link_is_closed_and_redialled_and_pings_keep_an_idle_one() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        nodes = roster(2)
        link = Cut(nodes[1].tcp_replica, free_ports(1)[0])  # replica 0 dials 1 through it
        await link.heal()
        kw = {"ping_interval": 0.2, "silence_timeout": 1.0, "reconnect_period": 0.2}
        low, got_low = await start(nodes, 0, **kw)
        high, got_high = await start(nodes, 1, port=link.target, **kw)
        await until(lambda: low.linked() == [1] and high.linked() == [0])
        # idle for three silence timeouts: no consensus traffic, the pings keep the link
        # (and never reach a replica)
        await asyncio.sleep(3.0)
        assert (low.peers[1].connects, high.peers[0].connects) == (1, 1)
        assert (low.peers[1].silences, high.peers[0].silences) == (0, 0)
        assert got_low == got_high == []
        assert low.heard(1.0) == [1] and high.heard(1.0) == [0]  # what a lease counts
        link.cut()
        cut_at = loop.time()
        await until(lambda: low.linked() == [] and high.linked() == [])
        # both ends gave up after about the silence timeout (the last ping up to one interval
        # before the cut; the ticks late on a loaded machine)
        assert 0.7 <= loop.time() - cut_at < 2.5
        assert (low.peers[1].silences, high.peers[0].silences) == (1, 1)
        await asyncio.sleep(0.5)  # still cut: the redials are refused
        assert low.linked() == [] and high.linked() == []
        await link.heal()
        healed_at = loop.time()
        await until(lambda: low.linked() == [1] and high.linked() == [0])
        assert loop.time() - healed_at < 1.5  # the next redial, not a TCP retransmission
        low.send(1, commit(0, 7))
        high.send(0, commit(1, 8))
        await until(lambda: [m.commit for m in got_high] == [7] and
                    [m.commit for m in got_low] == [8])
        assert len(high.listener.connections) == 1  # still one connection for the pair
        await low.close()
        await high.close()
        link.close()

    asyncio.run(main())


def test_a_message_claiming_another_sender_closes_the_link() -> None:
    async def main() -> None:
        nodes = roster(3)
        b0, _ = await start(nodes, 0)
        b2, got2 = await start(nodes, 2)
        await until(lambda: b0.linked() == [2] and b2.linked() == [0])
        link = b2.peers[0].conn
        assert link is not None
        b0.send(2, commit(1))  # replica 0's link carrying a message signed "replica 1"
        await until(lambda: link.closed)  # (and replica 0 redials at once)
        assert got2 == []
        await b0.close()
        await b2.close()

    asyncio.run(main())


def test_frame_lengths_are_bounded_before_and_after_the_handshake() -> None:
    """A peer cannot make the bus buffer more than a handshake frame for each handshake step
    (HELLO, FINISH), nor more than `message_size_max` for a frame after them (the dialer's
    queued messages follow its FINISH at once)."""
    from types import SimpleNamespace

    from pyggy.cluster.bus import BusError, ReplicaDoor

    bus = SimpleNamespace(settings=BusSettings(cluster=CLUSTER, me=1, nodes=roster(2),
                                               message_size_max=4096))
    door = ReplicaDoor(bus)  # type: ignore[arg-type]

    def frame(size: int) -> memoryview:
        raw = bytearray(256)
        raw[48:52] = size.to_bytes(4, "little")
        return memoryview(raw)

    assert door.frame_length(memoryview(bytes(100))) == 0  # not even a header yet
    for size in (0, 255, 257, 1 << 31):
        with pytest.raises(BusError):
            door.frame_length(frame(size))
    assert door.frame_length(frame(256)) == 256  # HELLO
    with pytest.raises(BusError):
        door.frame_length(frame(512))  # where FINISH belongs
    assert door.frame_length(frame(256)) == 256  # FINISH
    assert door.frame_length(frame(4096)) == 0  # a message behind it, not all here yet
    with pytest.raises(BusError):
        door.frame_length(frame(4097))
    door.peer = 0  # authenticated
    assert door.frame_length(frame(4096)) == 0  # announced, not all here yet
    assert door.declared_length(frame(4096)) == 4096
    with pytest.raises(BusError):
        door.frame_length(frame(4097))


def test_replica_links_over_tls(tmp_path) -> None:
    """`[cluster.tls]`: the replica port speaks TLS (transport/tls.py), the PSK handshake
    runs inside it."""
    import ssl

    from pyggy.transport import tls

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    tls.generate_self_signed(cert, key, ["127.0.0.1"])
    client = ssl.create_default_context(cafile=str(cert))
    client.check_hostname = False  # the certificate names 127.0.0.1 as an IP SAN

    async def main() -> None:
        nodes = roster(2)
        low, _ = await start(nodes, 0, client_tls=client)
        high, got = await start(nodes, 1, server_tls=tls.server_context(cert, key))
        await until(lambda: low.linked() == [1] and high.linked() == [0])
        conn = high.peers[0].conn
        assert conn is not None and conn.tls
        low.send(1, commit(0, 5))
        await until(lambda: [m.commit for m in got] == [5])
        await low.close()
        await high.close()

    asyncio.run(main())
