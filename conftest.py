"""Test tiers: every collected test gets exactly one marker of `unit`, `e2e`, `slow` and
`interop` (README, "Tests"). Select with `-m`: `bash scripts/test.sh -m unit` is the quick
tier; a run prints how long each tier took.

The rule, applied when tests are collected:

- `interop`: everything under interop_tests/ (a real Apache Kafka broker, JVM and Go clients).
- `slow`: a test that takes over ~20 s, or a file of tests that add up to well over that
  (SLOW: node-id prefixes, measured on the 2-core CI machine; each run lists the tests over
  SLOW_SECONDS not yet in SLOW).
- `e2e`: a test that starts a server (a pyggy process, a listener in the test process, an S3
  server) or drives real client programs: it uses one of SERVER_FIXTURES, directly or through
  other fixtures, or its path starts with one of E2E_PATHS.
- `unit`: everything else: codecs, core, handlers called in process. A unit test that starts a
  pyggy server or a listener fails, naming this file, so the table stays true.
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parent
# Hypothesis's per-example deadline is a timing assertion: on a shared 2-core CI machine it
# fails tests whose behaviour is right. Tests assert behaviour; benches report time.
settings.register_profile("pyggy", deadline=None)
settings.load_profile("pyggy")
TIERS = ("unit", "e2e", "slow", "interop")
SLOW_SECONDS = 20.0

SERVER_FIXTURES = frozenset({
    "pyggy_server", "pyggy_server_factory",  # tests/conftest.py: a `python -m pyggy` process
    "kafka_server",  # tests/kafka_wire/clients/conftest.py
    "moto_s3", "shared_s3",  # tests/archiver/conftest.py: moto's S3 server process
    "http_door",  # tests/http_api/conftest.py: a server with the HTTP door on
})
E2E_PATHS = (  # directories (ending in /), files and tests (node ids) starting servers themselves
    "tests/kafka_wire/clients/",  # kafka-python, aiokafka, confluent-kafka, kcat, kafkajs
    "tests/native_wire/sdk/",  # the apache-iggy 0.9.0 SDK
    "tests/native_wire/classic/",  # the apache-iggy 0.8.0 SDK
    "tests/scenarios/",
    "tests/kafka_wire/test_kafka_bad_input.py",
    "tests/kafka_wire/test_fetch_streamed.py",  # one pyggy process, raw large fetches
    "tests/native_wire/test_bad_input.py",
    "tests/native_wire/test_routing.py",  # one pyggy process, raw routing requests
    "tests/pyggy/test_packaging.py",  # builds and installs the wheel
    "tests/transport/test_connection.py",
    "tests/transport/test_limits_e2e.py",
    "tests/transport/test_many_connections.py",
    "tests/transport/test_tls.py",
    "tests/cluster/test_bus.py",  # replica buses on loopback
    "tests/cluster/test_node_e2e.py",  # nodes on loopback
    "tests/cluster/test_cluster_processes.py",  # three pyggy processes
    "tests/cluster/test_cluster_iggy_sdk.py",  # three pyggy processes, the 0.9 SDK
    "tests/pyggy/test_telemetry.py::test_a_view_change_in_a_cluster_is_a_span",  # a cluster
    "tests/cluster/test_replicated_state.py",  # nodes on loopback with Kafka coordinators
    "tests/cluster/test_cluster_consumer_state.py",  # three pyggy processes, SIGKILL
    "tests/cluster/test_cluster_scenarios.py",  # three pyggy processes under faults, checked
    "tests/cluster/test_cluster_tutorial.py",  # docs/cluster.md's tutorial, in a netns
    "tests/cluster/test_cluster_netns.py",  # three processes in network namespaces, cut links
    "tests/pyggy/test_checker_netns.py",  # namespaces, veths, a bridge; TCP across them
    "tests/pyggy/test_bench_cluster.py",  # pyggy-bench against three pyggy processes
    "tests/cluster/test_cluster_metadata_transfer.py",  # three pyggy processes, a restart
    "tests/cluster/test_cluster_metadata_fence.py",  # three pyggy processes, restarts
    "tests/scripts/test_iggy_compare.py::test_pyggy_config_reaches_the_server",  # pyggy twice
    "tests/scripts/test_iggy_compare.py::test_a_sharded_pyggy_is_measured_on_every_shard",
)
SLOW = (  # node-id prefixes (a file, or a file::test); seconds measured in a CI run
    "tests/pyggy/shards/test_sharded_server.py",  # 2-shard servers, restarts: 60-70 s shared
    "tests/pyggy/shards/test_sharded_groups.py",  # 2-shard servers, 3 tests: 12-25 s shared
    "tests/pyggy/shards/test_sharded_maintenance.py",  # 2-shard servers: 18 s shared
    "tests/pyggy/shards/test_sharded_transactions.py",  # 2-shard servers: 36 s shared
    "tests/core/faults/",  # fault injection over every file kind: 344 s, I/O bound
    "tests/kafka_wire/test_kafka_sasl.py::test_clients_authenticate_with_pyggy_users",  # 40 s
    # 1,000 simulator seeds on both cores (issue 12's CI budget): 75-190 s
    "tests/consensus/test_simulator.py::test_a_thousand_seeds_over_one_three_and_five_replicas",
    "tests/consensus/test_simulator.py::test_every_seed_that_ever_failed_passes_now",  # 10 s
    # three processes, SIGKILL of the metadata primary: 12-16 s each on the shared machine
    "tests/cluster/test_cluster_consumer_state.py",
    # three processes, 440 ops, a restart and a segment transfer: 16-39 s on a shared machine
    "tests/cluster/test_cluster_processes.py::"
    "test_a_backup_down_past_the_journal_rejoins_by_state_transfer",
    # three pyggy processes per failure scenario, checked histories: 20-100 s each, 6.5 min
    "tests/cluster/test_cluster_scenarios.py",
    "tests/cluster/test_cluster_tutorial.py",  # three processes, a failover: 40-60 s
    # N1, N2, N3, N5: three processes in network namespaces, links cut, checked histories
    "tests/cluster/test_cluster_netns.py",
    # three processes, > 1,100 metadata ops while a backup is down, its metadata transfer
    "tests/cluster/test_cluster_metadata_transfer.py",
    # three processes, SIGKILL and restart of the metadata primary, SDK routing: 25 s
    "tests/cluster/test_cluster_iggy_sdk.py::"
    "test_a_partition_led_by_a_backup_is_written_and_polled_through_the_leader",
    "tests/pyggy/test_bench_cluster.py",  # three processes, three bench runs: 50 s
    # three processes, a node restarted alone waits out its read fences, then the others: 41 s
    "tests/cluster/test_cluster_metadata_fence.py",
)


def pytest_configure(config: pytest.Config) -> None:
    for line in ("unit: fast in-process tests (codecs, core, handlers); the quick tier",
                 "e2e: starts a server or drives real clients",
                 f"slow: takes over ~{SLOW_SECONDS:.0f} s (not interop)",
                 "interop: runs against a real Apache Kafka broker too (interop_tests/)"):
        config.addinivalue_line("markers", line)
    config.stash[_DURATIONS] = defaultdict(float)
    config.stash[_COUNTS] = defaultdict(int)
    config.stash[_OVER] = []


def tier_of(item: pytest.Item) -> str:
    path = Path(str(item.path)).resolve().relative_to(ROOT).as_posix()
    if path.startswith("interop_tests/"):
        return "interop"
    if item.nodeid.startswith(SLOW):
        return "slow"
    if (path.startswith(E2E_PATHS) or item.nodeid.startswith(E2E_PATHS)
            or SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ()))):
        return "e2e"
    return "unit"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(tier_of(item))


@pytest.fixture(autouse=True)
def _unit_tests_start_no_server(request: pytest.FixtureRequest, monkeypatch) -> None:
    """In a unit test, starting a pyggy server or a listener is a misfiled test."""
    if request.node.get_closest_marker("unit") is None:
        return

    def refuse(*args, **kwargs):
        raise AssertionError(f"{request.node.nodeid} starts a server: it is an e2e test; list "
                             "its file in E2E_PATHS (conftest.py at the repository root)")

    from pyggy.transport.listener import Listener

    from pyggy.testing import PyggyServer

    monkeypatch.setattr(PyggyServer, "start", refuse)
    monkeypatch.setattr(Listener, "start", refuse)


_DURATIONS = pytest.StashKey[dict]()
_COUNTS = pytest.StashKey[dict]()
_OVER = pytest.StashKey[list]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem):
    started = time.perf_counter()
    try:
        return (yield)
    finally:
        seconds = time.perf_counter() - started  # setup + call + teardown
        stash = item.config.stash
        tier = next((t for t in TIERS if item.get_closest_marker(t)), "unit")
        stash[_DURATIONS][tier] += seconds
        stash[_COUNTS][tier] += 1
        if seconds > SLOW_SECONDS and tier in ("unit", "e2e"):
            stash[_OVER].append((seconds, item.nodeid))


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    durations, counts = config.stash[_DURATIONS], config.stash[_COUNTS]
    if not counts:
        return
    terminalreporter.section("test tiers (setup + call + teardown)")
    for name in TIERS:
        if counts.get(name):
            terminalreporter.write_line(f"{name:8} {counts[name]:5d} tests  "
                                        f"{durations[name]:8.1f} s")
    over = sorted(config.stash[_OVER], reverse=True)
    if over:
        terminalreporter.write_line(f"over {SLOW_SECONDS:.0f} s but not marked slow (add them to "
                                    "SLOW in conftest.py):")
        for seconds, nodeid in over:
            terminalreporter.write_line(f"  {seconds:6.1f} s  {nodeid}")
