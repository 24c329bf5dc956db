"""Smoke runs of every pyggy-bench mode against a real server: the run completes and the
counts add up (no timing assertions)."""

from __future__ import annotations

import json

import pytest

from pyggy.bench.cli import MODE_HELP, build_parser, run_cli
from pyggy.testing import PyggyServer

MODES = list(MODE_HELP)


def _run(server: PyggyServer, protocol: str, mode: str, tmp_path, *extra: str) -> dict:
    address = server.tcp_address if protocol == "native" else server.kafka_address
    out = tmp_path / f"{protocol}-{mode}.json"
    result = run_cli([mode, "--protocol", protocol, "--address", address, "--quiet",
                      "--total-messages", "2000", "--messages-per-batch", "100",
                      "--message-size", "64", "--producers", "2", "--consumers", "2",
                      "--partitions", "2", "--json", str(out), *extra])
    assert json.loads(out.read_text())["stats"] == result["stats"]
    # the cost figure: found the server by its listening port, counted its CPU and the bytes
    c = result["cost"]
    assert c["server_pids"] == [server.pid] and c["server_cpu_s"] >= 0
    moved = sum(s["bytes"] for s in result["stats"] if s["role"] != "end-to-end")
    assert round((c["gb_in"] + c["gb_out"]) * 1e9) == moved
    assert c["cpu_s_per_gb"] == c["server_cpu_s"] / (c["gb_in"] + c["gb_out"])
    return result


def _check(mode: str, result: dict) -> None:
    roles = {s["role"]: s for s in result["stats"]}
    produces = mode in ("pinned-producer", "producer-consumer", "end-to-end")
    consumes = mode != "pinned-producer"
    assert ("producers" in roles) == produces and ("consumers" in roles) == consumes
    for s in roles.values():
        assert s["messages"] == 2000 and s["bytes"] == 2000 * 64
        assert s["latency_samples"] > 0
    if mode == "end-to-end":
        assert roles["end-to-end"]["latency_samples"] > 0


def test_help_documents_every_mode(capsys) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    text = capsys.readouterr().out
    for mode in MODES:
        assert mode in text


@pytest.mark.parametrize("mode", MODES)
def test_native_modes(pyggy_server: PyggyServer, tmp_path, mode: str) -> None:
    _check(mode, _run(pyggy_server, "native", mode, tmp_path))


@pytest.mark.parametrize("mode", MODES)
def test_kafka_modes(pyggy_server: PyggyServer, tmp_path, mode: str) -> None:
    _check(mode, _run(pyggy_server, "kafka", mode, tmp_path))


def test_fsync_topics_and_png(pyggy_server: PyggyServer, tmp_path) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "chart.png"
    result = _run(pyggy_server, "native", "producer-consumer", tmp_path, "--fsync",
                  "--png", str(png))
    _check("producer-consumer", result)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_kafka_through_native_topics(pyggy_server: PyggyServer, tmp_path) -> None:
    result = _run(pyggy_server, "kafka", "producer-consumer", tmp_path, "--fsync",
                  "--native-address", pyggy_server.tcp_address)
    _check("producer-consumer", result)


@pytest.mark.parametrize("in_flight", [1, 3])
def test_native_send_poll_lockstep_and_pipelined(pyggy_server: PyggyServer,
                                                 in_flight: int) -> None:
    """pyggy's lean client with requests kept on the wire: every batch is stored once, in
    order, and polled back whole (the counts are checked by the client too)."""
    from pyggy.core.records import iggy_batch

    from pyggy.bench.native import native_send_poll
    from pyggy.native_client import NativeClient

    sent, polled = native_send_poll(pyggy_server.tcp_address, 7, 50, 100,
                                    stream=f"s{in_flight}", in_flight=in_flight)
    assert sent.messages == polled.messages == 350
    c = NativeClient(pyggy_server.tcp_address)
    c.login("iggy", "iggy")
    n, reply = c.poll(f"s{in_flight}", "t", 0, 0, 1000, view=True)
    assert n == 350
    batches = bytes(reply)[16:]  # the poll prefix: partition, current offset, count
    firsts = []
    while batches:
        _, base, _, _, length, count = iggy_batch.batch_fields(batches)
        firsts.append(iggy_batch.batch_offsets(batches[:length])[0])
        batches = batches[length:]
    assert firsts == list(range(0, 350, 50))
    c.close()


def test_a_batch_bigger_than_the_socket_buffers_goes_out_whole(
        pyggy_server: PyggyServer) -> None:
    """Three 6 MB batches in flight: the server stops reading while they queue, so the
    client's sendmsg takes each only in parts (its timeout makes the socket non-blocking);
    every byte must still arrive, as the stored offsets show."""
    from pyggy.core.records import iggy_batch

    from pyggy.native_client import NativeClient

    c = NativeClient(pyggy_server.tcp_address)
    c.login("iggy", "iggy")
    c.create_stream("big")
    c.create_topic("big", "t", 1)
    batch = iggy_batch.build_batch([(i + 1, bytes([i]) * 1_000_000, b"", 1) for i in range(6)])
    for _ in range(3):
        c.write_send("big", "t", 0, batch, 6)
    assert [c.read_send_reply() for _ in range(3)] == [0, 6, 12]
    c.close()
