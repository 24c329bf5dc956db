"""The cost figure's readings (pyggy/bench/cost.py) against real processes and sockets."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
from pathlib import Path

from pyggy.bench.cost import CpuMeter, cost, cpu_seconds, listening_pids

TICK = 1 / os.sysconf("SC_CLK_TCK")


def test_stat_fields_are_read_after_the_command_name(tmp_path: Path) -> None:
    # a command name may hold spaces and ')': the fields are counted after its last ')'
    (tmp_path / "7").mkdir()
    rest = ["S", "1", "7", "7", "0", "-1", "4194304", "10", "0", "0", "0", "250", "50"]
    (tmp_path / "7" / "stat").write_text("7 (a b) c) " + " ".join(rest + ["0"] * 30) + "\n")
    assert math.isclose(cpu_seconds(7, tmp_path), 300 * TICK)


def test_a_busy_child_shows_its_cpu_time() -> None:
    child = subprocess.Popen([sys.executable, "-c",
                              "import time\ninput()\nt = time.process_time()\n"
                              "while time.process_time() - t < 0.3: pass\n"
                              "print('done', flush=True)\ninput()"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdin is not None and child.stdout is not None
    try:
        meter = CpuMeter([child.pid]).start()
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline() == "done\n"  # 0.3 s of CPU burnt, now blocked
        assert meter.stop() >= 0.29
        assert cpu_seconds(child.pid) >= meter.seconds
    finally:
        child.communicate("\n", timeout=10)


def test_a_gone_process_is_left_out() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    meter = CpuMeter([child.pid, os.getpid()]).start()
    child.wait(10)
    sum(range(2_000_000))  # some CPU of our own
    assert meter.stop() > 0


def test_listening_pids_finds_the_process_holding_the_port() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        assert listening_pids(port) == []  # bound, not listening
        s.listen()
        assert listening_pids(port) == [os.getpid()]
        with socket.create_connection(("127.0.0.1", port)):
            assert listening_pids(port) == [os.getpid()]  # a connection is not a listener


def test_cost_is_cpu_seconds_per_gb_moved() -> None:
    c = cost(1.5, 300_000_000, 200_000_000)
    assert c == {"server_cpu_s": 1.5, "gb_in": 0.3, "gb_out": 0.2, "cpu_s_per_gb": 3.0}
    assert math.isnan(cost(1.0, 0, 0)["cpu_s_per_gb"])
