"""franz-go's own integration tests (`github.com/twmb/franz-go/pkg/kgo`, FRANZ_GO_VERSION) against
the real Kafka broker and against pyggy: every allowlisted test must pass on real Kafka, and every
test (and subtest) that passes on real Kafka must pass on pyggy, the KIP-848 (`/848`) subtests and
Test848RegexBrokerResolves included (a skip is a failure).

The allowlist and the reasons for each test left out are in interop_tests/FINDINGS.md. The tests
run with KGO_TEST_RF=1 (one broker) and KGO_TEST_RECORDS=2000 (GroupETL's default is 500000);
`t.Parallel` tests run two at a time. About 65 s on Kafka, 45 s on pyggy (2 cores).

`PYGGY_KGO_TESTS=<go test -run regex>` runs other tests instead (e.g. `TestTxnEtl`), to look
at an excluded one; the comparison then still applies.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from interop_tests import go_tools
from interop_tests.kafka_broker.broker import BrokerUnavailable

ALLOWLIST = (
    # client basics
    "TestPing",
    "TestIssue1034",
    "TestUnknownGroupOffsetFetchPinned",
    # producing
    "TestClient_Produce",
    "TestClient_ProduceLargeMessages",
    "TestIssue769",
    "TestIssue831",
    "TestIssueProduceSyncManualPartitionNegativeDoesNotPanic",
    # direct consuming
    "TestIssue325",
    "TestConsumeTopicRetrieval",
    "TestConsumeTopicRetrieval_Many",
    "TestIssue337",
    "TestDirectPartitionPurge",
    "TestAddRemovePartitions",
    "TestPauseIssue489",
    "TestPauseIssueOct2023",
    "TestIssue648",
    "TestIssue810",
    "TestIssue865",
    "TestIssueFetchLargerThanBrokerMaxReadBytes",
    "TestPooling",
    "TestConsumeMaxDecompressBatchBytes",
    "TestConsumeRegex",
    # groups (classic, and KIP-848 in the /848 subtests)
    "TestIssue434",
    "TestIssue523",
    "TestGroupSimple",
    "TestHookPollStart",
    "TestGroupETL",
    # transactions (classic groups, and KIP-848 in the /848 subtests)
    "TestTxnEtl",
    "Test848RegexBrokerResolves",
)
RECORDS = 2000
TIMEOUT_S = 420


_RESULT = re.compile(r"^\s*--- (PASS|FAIL|SKIP): (\S+)")


@dataclass
class KgoRun:
    broker: str
    returncode: int
    seconds: float
    results: dict[str, str] = field(default_factory=dict)  # test or subtest name -> PASS/...
    output: str = ""

    def tail(self, lines: int = 80) -> str:
        return "\n".join(self.output.splitlines()[-lines:])


def run_kgo_tests(binary: Path, broker: str, seeds: str, pattern: str) -> KgoRun:
    env = os.environ | {
        "KGO_SEEDS": seeds,
        "KGO_TEST_RF": "1",
        "KGO_TEST_RECORDS": str(RECORDS),
        "GOMAXPROCS": "2",
    }
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [str(binary), "-test.run", pattern, "-test.count=1", "-test.v",
             "-test.parallel=2", f"-test.timeout={TIMEOUT_S}s"],
            cwd=binary.parent, env=env, capture_output=True, text=True, check=False,
            timeout=TIMEOUT_S + 60,
        )  # fmt: skip
        returncode, output = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as e:
        returncode, output = -1, f"{e.stdout or ''}{e.stderr or ''}\n(killed after {e.timeout} s)"
    run = KgoRun(broker, returncode, time.monotonic() - started, output=output)
    for line in output.splitlines():
        if m := _RESULT.match(line):
            run.results[m[2]] = m[1]
    return run


@pytest.fixture(scope="module")
def kgo_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        return go_tools.build_kgo_tests(tmp_path_factory.mktemp("franz-go"))
    except BrokerUnavailable as e:
        if os.environ.get("CI"):
            pytest.fail(str(e), pytrace=False)
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def kgo_runs(brokers: dict[str, str], kgo_binary: Path) -> dict[str, KgoRun]:
    pattern = os.environ.get("PYGGY_KGO_TESTS") or "^(" + "|".join(ALLOWLIST) + ")$"
    runs = {}
    for name, seeds in brokers.items():
        runs[name] = run_kgo_tests(kgo_binary, name, seeds, pattern)
        print(f"franz-go {go_tools.FRANZ_GO_VERSION} pkg/kgo on {name}: exit "
              f"{runs[name].returncode} in {runs[name].seconds:.1f} s, "
              f"{sum(r == 'PASS' for r in runs[name].results.values())} passed")  # fmt: skip
    return runs


def test_kgo_allowlist_passes_on_real_kafka(kgo_runs: dict[str, KgoRun]) -> None:
    run = kgo_runs["kafka"]
    top = {name: run.results.get(name, "missing") for name in ALLOWLIST}
    if os.environ.get("PYGGY_KGO_TESTS"):
        top = {name: r for name, r in run.results.items() if "/" not in name}
    failed = {name: r for name, r in top.items() if r != "PASS"}
    assert not failed and run.returncode == 0, (
        f"franz-go tests not passing on real Kafka: {failed}\n{run.tail()}"
    )


def test_kgo_passes_on_pyggy_as_on_real_kafka(kgo_runs: dict[str, KgoRun]) -> None:
    kafka, pyggy = kgo_runs["kafka"], kgo_runs["pyggy"]
    differ = {}
    for name, result in kafka.results.items():
        if result != "PASS":
            continue
        got = pyggy.results.get(name, "missing")
        if got == "PASS":
            continue
        differ[name] = got
    assert not differ, f"passed on real Kafka, not on pyggy: {differ}\n{pyggy.tail()}"
    if not os.environ.get("PYGGY_KGO_TESTS"):  # the KIP-848 variants did run (FINDINGS.md)
        kip848 = {n: r for n, r in pyggy.results.items()
                  if "/848" in n or n == "Test848RegexBrokerResolves"}
        assert len(kip848) >= 6 and set(kip848.values()) == {"PASS"}, kip848
    assert pyggy.returncode == 0 or os.environ.get("PYGGY_KGO_TESTS"), pyggy.tail()
