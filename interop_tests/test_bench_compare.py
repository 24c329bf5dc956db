"""scripts/bench_compare.py end to end, tiny: pyggy, the session's real Kafka and Tansu each take
one produce and one consume run, and the table has every peer and ratio. A smoke test of the
comparison (no timing is asserted): the script itself fails a run whose consumed count differs
from the produced one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from interop_tests.kafka_broker.broker import RealKafka

ROOT = Path(__file__).resolve().parent.parent


def test_compare_runs_each_peer_and_prints_ratios(real_kafka: RealKafka, tmp_path: Path) -> None:
    out = tmp_path / "compare.json"
    env = dict(os.environ, REAL_KAFKA_BOOTSTRAP=real_kafka.bootstrap)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_compare.py"), "--rounds", "1",
         "--messages", "4000", "--batch", "500", "--quiet", "--json", str(out)],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert set(result["runs"]) == {"pyggy", "kafka", "tansu"}
    for peer, runs in result["runs"].items():
        assert len(runs) == 1, peer
        assert runs[0]["produce_msgs_s"] > 0 and runs[0]["consume_msgs_s"] > 0, peer
    assert "| produce MB/s |" in proc.stdout
    assert "pyggy / kafka" in proc.stdout and "pyggy / tansu" in proc.stdout
