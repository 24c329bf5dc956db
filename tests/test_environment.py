"""The test environments scripts/install-test-deps.sh builds: both Iggy SDK versions."""

from __future__ import annotations

import importlib.metadata
import subprocess
from pathlib import Path

VERSION = "import importlib.metadata as m, apache_iggy; print(m.version('apache-iggy'))"


def test_main_venv_has_iggy_sdk_0_9() -> None:
    assert importlib.metadata.version("apache-iggy") == "0.9.0"


def test_iggy08_venv_has_iggy_sdk_0_8(iggy08_python: Path) -> None:
    out = subprocess.run(
        [str(iggy08_python), "-c", VERSION], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0.8.0"
