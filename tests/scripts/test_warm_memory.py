"""scripts/warm_memory.py: touches the memory it is asked to and says how fast."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "warm_memory.py"


def test_touches_the_size_asked_and_reports_a_rate() -> None:
    out = subprocess.run([sys.executable, str(SCRIPT), "--gib", "0.0625"], capture_output=True,
                         text=True, check=True, timeout=120).stdout
    assert out.startswith("touched 0.06 GiB in "), out
    assert float(out.rsplit("(", 1)[1].split()[0]) > 0
