"""The three-node tutorial of docs/cluster.md runs as written: its shell blocks, verbatim but
for the scratch directory, in a private network namespace (`unshare --net`, root), so the
ports it names are free whatever else runs on the machine."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def tutorial_script() -> str:
    doc = (REPO / "docs" / "cluster.md").read_text()
    section = doc.split("## Tutorial: three nodes on one machine", 1)[1].split("\n## ", 1)[0]
    return "\n".join(re.findall(r"```sh\n(.*?)```", section, re.S))


def test_the_tutorial_runs_as_written(tmp_path: Path) -> None:
    script = tutorial_script().replace("/tmp/pyggy3", str(tmp_path / "pyggy3"))
    assert "kill -9" in script and "cmp -s" in script
    wrapped = ("set -e\nip link set lo up\n"
               "trap 'kill -9 $(cat n0.pid n1.pid n2.pid 2>/dev/null) 2>/dev/null' EXIT\n"
               + script)
    done = subprocess.run(["unshare", "--net", "timeout", "240", "bash", "-c", wrapped],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    assert re.search(r"partition 0, leader \d, replicas: 0,1,2", out), out[-2000:]
    assert " ".join(str(i) for i in range(1, 21)) + " identical" in out, out[-2000:]
    assert "primary is replica" in out
