"""The README's security walkthrough runs as written: root creates a restricted user with the
Iggy SDK, then that user works and is refused through kcat with SCRAM."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pyggy.testing import PyggyServer

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


@pytest.mark.timeout(180)
def test_security_walkthrough(tmp_path: Path) -> None:
    if shutil.which("kcat") is None:
        if os.environ.get("CI"):
            pytest.fail("kcat is not installed (scripts/install-test-deps.sh)")
        pytest.skip("kcat is not installed")
    section = README.split("### Walkthrough: a restricted user on both doors", 1)[1]
    start = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    assert start.strip() == ("IGGY_KAFKA_AUTHENTICATION=sasl pyggy-server "
                             "--with-default-root-credentials")
    server = PyggyServer(tmp_path, env={"IGGY_KAFKA_AUTHENTICATION": "sasl"}).start()
    try:
        server.wait_for_log("kafka listening on")
        code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
        out = subprocess.run([sys.executable, "-c",
                              code.replace("127.0.0.1:8090", server.tcp_address)],
                             capture_output=True, text=True, timeout=60)
        # apache-iggy 0.9.0 may abort at interpreter exit after a login (tests/test_readme.py)
        assert out.returncode in (0, -6), out.stderr
        assert out.stdout == "alice may send to and poll shop/orders\n"
        script = re.findall(r"```sh\n(.*?)```", section, re.S)[1]
        out = subprocess.run(["bash", "-uo", "pipefail", "-c",
                              script.replace("127.0.0.1:9092", server.kafka_address)],
                             capture_output=True, text=True, timeout=90)
        assert out.returncode == 0, out.stderr
        assert out.stdout == 'order 1\n  topic "shop.orders" with 1 partitions:\nrefused\n'
        assert "Delivery failed for message: Broker: Topic authorization failed" in out.stderr
        anonymous = subprocess.run(["kcat", "-b", server.kafka_address, "-L", "-m", "3"],
                                   capture_output=True, text=True, timeout=30)
        assert anonymous.returncode != 0
        server.wait_for_log("permission refused: user 'alice' from 127.0.0.1 (kafka door): "
                            "Metadata topic 'shop.invoices'")
    finally:
        assert server.close() in (None, 0)
    assert "alice-secret" not in "\n".join(server.logs)
