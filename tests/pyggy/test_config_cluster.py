"""`[cluster]` config: Iggy's keys and rules, the roster, the PSK rule, `--replica-id`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pyggy.cli import apply_flags, build_parser
from pyggy.config import ConfigError, load_config, ticks

SECRET = "s" * 32


def roster(ip: str = "127.0.0.1", n: int = 3) -> str:
    return "".join(f"""
[[cluster.nodes]]
name = "node{i}"
ip = "{ip}"
replica_id = {i}
ports = {{ tcp = {8090 + i}, tcp_replica = {9190 + i}, kafka = {9092 + 10 * i} }}
""" for i in range(n))


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None):
    path = tmp_path / "pyggy.toml"
    path.write_text(text)
    return load_config(str(path), env or {})


def test_a_three_node_roster_loads(tmp_path: Path) -> None:
    c = load(tmp_path, '[cluster]\nenabled = true\nname = "c1"\n' + roster(),
             {"IGGY_CLUSTER_REPLICA_ID": "2"}).cluster
    assert c.enabled and c.name == "c1" and c.replica_id == 2
    assert [n.name for n in c.nodes] == ["node0", "node1", "node2"]
    assert c.node().ports.tcp_replica == 9192 and c.node().ports.kafka == 9112
    assert c.node().ports.http == 0


def test_timing_is_rounded_down_to_ticks() -> None:
    assert ticks(5.0) == 500 and ticks(0.255) == 25 and ticks(0.004) == 1 and ticks(0.01) == 1


@pytest.mark.parametrize(("text", "words"), [
    ('heartbeat_timeout = "1 s"', "at least 2 s"),
    ('commit_broadcast_interval = "2 s"', "4 x commit_broadcast_interval"),
    ('view_change_status_timeout = "1 s"', "view_change_status_timeout"),
    ("view_probe_attempts_max = 0", "1..100"),
    ("repair_chunk_max = 300", "below peer_queue_capacity"),
    ('reconnect_period = "5 s"', "shorter than heartbeat_timeout"),
    ("replica_id = 7", "not in the roster"),
    ('prepare_retransmit_interval = "0 s"', "must be positive"),
])
def test_iggy_rules_are_enforced(tmp_path: Path, text: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        load(tmp_path, f"[cluster]\nenabled = true\n{text}\n" + roster())


@pytest.mark.parametrize(("nodes", "words"), [
    (roster(n=0), "roster is empty"),
    (roster().replace("replica_id = 2", "replica_id = 3"), "contiguous"),
    (roster().replace('name = "node1"', 'name = "node0"'), "unique name"),
    (roster().replace('ip = "127.0.0.1"', 'ip = "localhost"', 1), "literal IP"),
    (roster().replace("tcp_replica = 9191, ", ""), "tcp_replica is mandatory"),
])
def test_roster_rules(tmp_path: Path, nodes: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        load(tmp_path, "[cluster]\nenabled = true\n" + nodes)


def test_a_roster_beyond_loopback_needs_the_shared_secret(tmp_path: Path) -> None:
    text = "[cluster]\nenabled = true\n" + roster("10.0.0.1")
    with pytest.raises(ConfigError, match="needs \\[cluster.auth\\] enabled"):
        load(tmp_path, text)
    auth = "[cluster.auth]\nenabled = true\n"
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        load(tmp_path, text + auth, {"IGGY_CLUSTER_AUTH_SHARED_SECRET": "short"})
    c = load(tmp_path, text + auth, {"IGGY_CLUSTER_AUTH_SHARED_SECRET": SECRET}).cluster
    assert c.auth.enabled and c.auth.shared_secret == SECRET


def test_cluster_tls_needs_auth(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs \\[cluster.auth\\]"):
        load(tmp_path, "[cluster]\nenabled = true\n[cluster.tls]\nenabled = true\n" + roster())


def test_an_unknown_auth_key_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown security setting"):
        load(tmp_path, '[cluster]\nenabled = true\n[cluster.auth]\nshared_secrt = "x"\n'
             + roster())


def test_replica_id_flag_overrides(tmp_path: Path) -> None:
    config = load(tmp_path, "[cluster]\nenabled = true\n" + roster())
    apply_flags(config, build_parser().parse_args(["--replica-id", "1"]))
    assert config.cluster.replica_id == 1


def test_clustering_off_imports_nothing_of_the_cluster() -> None:
    """A single node pays nothing for clustering: the server module and config never load it."""
    code = ("import sys, pyggy.server, pyggy.config; pyggy.config.load_config(None, {}); "
            "print(sorted(m for m in sys.modules if m.startswith('pyggy.cluster')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert out.strip() == "[]"
