"""scripts/iggy_compare.py: reading `iggy-bench` output and the medians table (no servers), and
--pyggy-config reaching a real server."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from pyggy.testing import ServerStartError

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "iggy_compare.py"


@pytest.fixture(scope="module")
def cmp() -> ModuleType:
    spec = importlib.util.spec_from_file_location("iggy_compare", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["iggy_compare"] = module
    spec.loader.exec_module(module)
    return module


# the shape of iggy-bench 0.8's summary line (format_original), as a terminal gets it: coloured
LINE = ("\x1b[32mProducers Results: Total throughput: 812.40 MB/s, 812400 messages/s, average "
        "throughput per Producer: 812.40 MB/s, p50 latency: 1.21 ms, p90 latency: 1.60 ms, "
        "p95 latency: 1.80 ms, p99 latency: 2.50 ms, p999 latency: 3.00 ms, p9999 latency: "
        "3.10 ms, average latency: 1.25 ms, median latency: 1.21 ms, min: 0.90 ms, max: 3.20 "
        "ms, std dev: 0.20 ms, total time: 0.25 s\x1b[0m")


def test_reads_throughput_and_p50(cmp: ModuleType) -> None:
    text = "INFO Starting to benchmark: tcp\n" + LINE + "\n"
    assert cmp.parse_bench_output(text) == (812.40, 1.21)
    consumers = LINE.replace("Producers Results", "Consumers Results")
    assert cmp.parse_bench_output(consumers) == (812.40, 1.21)


def test_no_summary_is_none(cmp: ModuleType) -> None:
    assert cmp.parse_bench_output("Error: connection refused\n") is None
    assert cmp.parse_bench_output(LINE.replace("Total throughput", "throughput")) is None


def test_table_medians_and_ratio(cmp: ModuleType) -> None:
    def run(mbs: float) -> dict[str, float]:
        return {key: mbs for key, _, _ in cmp.CLASSIC}

    table = cmp.classic_table({"pyggy": [run(100), run(300), run(200)],
                               "iggy": [run(400), run(800), run(500)]})
    produce = next(line for line in table.splitlines() if "pinned-producer MB/s" in line)
    assert produce == "| pinned-producer MB/s | 200 (100–300) | 500 (400–800) | 0.40 |"
    alone = cmp.classic_table({"pyggy": [run(100)]})
    assert "pyggy / iggy" not in alone and "| 100 (100–100) |" in alone


def test_table_of_a_shard_sweep(cmp: ModuleType) -> None:
    """--pyggy-shards: each count is a column, each against Iggy, and the last against the
    first (the scaling figure)."""
    def run(mbs: float) -> dict[str, float]:
        return {key: mbs for key, _, _ in cmp.CLASSIC}

    table = cmp.classic_table({"pyggy 1 shard": [run(100)], "pyggy 2 shards": [run(130)],
                               "iggy": [run(200)]})
    head, _, produce = table.splitlines()[:3]
    assert head.endswith("| pyggy 1 shard / iggy | pyggy 2 shards / iggy "
                         "| pyggy 2 shards / pyggy 1 shard |")
    assert produce.endswith("| 0.50 | 0.65 | 1.30 |")


def test_table_of_both_shard_sweeps(cmp: ModuleType) -> None:
    """--pyggy-shards and --iggy-shards: each pyggy count against the Iggy of the same count,
    and each server's last count against its first."""
    def run(mbs: float) -> dict[str, float]:
        return {key: mbs for key, _, _ in cmp.CLASSIC}

    table = cmp.classic_table({"pyggy 1 shard": [run(100)], "pyggy 2 shards": [run(130)],
                               "iggy 1 shard": [run(200)], "iggy 2 shards": [run(260)]})
    head, _, produce = table.splitlines()[:3]
    assert head.endswith("| pyggy 1 shard / iggy 1 shard | pyggy 2 shards / iggy 2 shards "
                         "| pyggy 2 shards / pyggy 1 shard | iggy 2 shards / iggy 1 shard |")
    assert produce.endswith("| 0.50 | 0.50 | 1.30 | 1.30 |")


def test_pyggy_config_reaches_the_server(cmp: ModuleType, tmp_path: Path) -> None:
    """--pyggy-config: the server reads the file (a bad setting in it stops the start)."""
    bad = tmp_path / "bad.toml"
    bad.write_text("[login]\nverified_cache_size = -1\n")
    with pytest.raises(ServerStartError, match="verified_cache_size"):
        cmp.start_pyggy(tmp_path / "a", bad)
    good = tmp_path / "good.toml"
    good.write_text("[login]\nverified_cache_size = 0\n")
    server = cmp.start_pyggy(tmp_path / "b", good)
    try:
        assert server.address.startswith("127.0.0.1:")
    finally:
        server.stop()


def test_a_sharded_pyggy_is_measured_on_every_shard(cmp: ModuleType, tmp_path: Path) -> None:
    """start_pyggy returns once every shard listens, so the CPU figure counts them all."""
    server = cmp.start_pyggy(tmp_path, shards=2)
    try:
        port = int(server.address.rsplit(":", 1)[1])
        assert len(cmp.listening_pids(port)) == 2
    finally:
        server.stop()


def test_a_warm_up_runs_untimed_before_the_measured_runs(
        cmp: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """--warmup-batches: both modes first with the warm-up's batches, outside the CPU meter;
    the measured runs keep --batches."""
    calls: list[tuple[str, int, float]] = []
    clock = iter(range(100))

    class Meter:
        def __init__(self, pids: list[int]) -> None:
            self.pids = pids

        def start(self) -> Meter:
            self.began = next(clock)
            return self

        def stop(self) -> float:
            return float(next(clock) - self.began)

    def bench(_bench: Path, kind: str, _address: str, args: argparse.Namespace) -> tuple[
            float, float]:
        calls.append((kind, args.batches, next(clock)))
        return 100.0, 1.0

    monkeypatch.setattr(cmp, "iggy_bench", bench)
    monkeypatch.setattr(cmp, "CpuMeter", Meter)
    monkeypatch.setattr(cmp, "listening_pids", lambda port: [1])
    args = argparse.Namespace(actors=1, batches=250, messages_per_batch=1000, message_size=1000,
                              warmup_batches=10)
    server = cmp.Server("pyggy", "127.0.0.1:1", 1, lambda: None)
    run = cmp.classic_round(server, Path("iggy-bench"), args)
    assert [(k, b) for k, b, _ in calls] == [("pinned-producer", 10), ("pinned-consumer", 10),
                                             ("pinned-producer", 250), ("pinned-consumer", 250)]
    # each measured run's meter spans only its own run (start, run, stop: 2 ticks)
    assert run["produce_cpu_s_gb"] == run["consume_cpu_s_gb"] == 2 / 0.25
