"""pyggy-bench against a three-process cluster (`PyggyCluster`): native requests follow each
partition's leader (a node answering 58 passes them on), Kafka clients get every broker, and
the cost figure counts every node's process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyggy.bench.cli import run_cli
from pyggy.testing import PyggyCluster

MESSAGES, SIZE = 3000, 64


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PyggyCluster]:
    c = PyggyCluster(tmp_path_factory.mktemp("bench-cluster")).start()
    yield c
    c.close()


def _bench(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "bench.json"
    result = run_cli(["pinned-consumer", "--quiet", "--total-messages", str(MESSAGES),
                      "--messages-per-batch", "100", "--message-size", str(SIZE),
                      "--partitions", "3", "--producers", "2", "--consumers", "3",
                      "--json", str(out), *args])
    assert result is not None
    assert json.loads(out.read_text())["stats"] == result["stats"]
    (consumers,) = result["stats"]
    assert consumers["messages"] == MESSAGES and consumers["bytes"] == MESSAGES * SIZE
    return result


def _pids(cluster: PyggyCluster) -> list[int]:
    return sorted(s.pid for s in cluster.servers if s.pid is not None)


def test_native_follows_the_leaders_from_a_list_starting_at_backups(
        cluster: PyggyCluster, tmp_path: Path) -> None:
    tcp = [s.tcp_address for s in cluster.servers]
    # node0 leads every group (view 0): the list puts both backups first, so each create,
    # send and poll is first refused (58) and must be passed on to reach it
    result = _bench(tmp_path, "--protocol", "native", "--address",
                    ",".join([tcp[1], tcp[2], tcp[0]]))
    assert result["cost"]["server_pids"] == _pids(cluster)


def test_native_cluster_discovers_the_roster_from_one_backup(
        cluster: PyggyCluster, tmp_path: Path) -> None:
    result = _bench(tmp_path, "--protocol", "native", "--cluster",
                    "--address", cluster.servers[2].tcp_address)
    assert result["cost"]["server_pids"] == _pids(cluster)


def test_kafka_acks_all_through_one_backup_with_cluster(
        cluster: PyggyCluster, tmp_path: Path) -> None:
    result = _bench(tmp_path, "--protocol", "kafka", "--acks", "all", "--cluster",
                    "--replication-factor", "3",
                    "--address", cluster.servers[1].kafka_address)
    assert result["cost"]["server_pids"] == _pids(cluster)
