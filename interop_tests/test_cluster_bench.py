"""scripts/cluster_bench.py end to end, tiny: three pyggy nodes, one pyggy node and a
three-broker Apache Kafka (interop_tests/kafka_broker/cluster.py, RF 3, min.insync.replicas 2)
each take one acks=all produce and consume run; the table has every peer and ratio. A smoke
test (no timing is asserted): the script fails a run whose consumed count differs from the
produced one, and the bench's setup fails a topic with fewer replicas in sync than asked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_cluster_bench_runs_each_peer_and_leaves_nothing_running(tmp_path: Path) -> None:
    out = tmp_path / "cluster.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "cluster_bench.py"), "--rounds", "1",
         "--messages", "4000", "--batch", "500", "--warmup", "0", "--quiet",
         "--timeout", "540", "--json", str(out)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert set(result["runs"]) == {"pyggy-3", "pyggy-1", "kafka-3"}
    for peer, runs in result["runs"].items():
        assert len(runs) == 1, peer
        assert runs[0]["produce_mb_s"] > 0 and runs[0]["consume_mb_s"] > 0, peer
    assert "| produce MB/s (acks=all) |" in proc.stdout
    assert "pyggy-3 / kafka-3" in proc.stdout and "pyggy-3 / pyggy-1" in proc.stdout
    # the cost figure counted every node's process
    assert [len(result["peers"][n]["pids"]) for n in ("pyggy-3", "pyggy-1", "kafka-3")] == \
        [3, 1, 3]
