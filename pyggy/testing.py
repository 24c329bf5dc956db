"""Run a real pyggy server as a subprocess, for tests (used by tests/conftest.py fixtures).

The server is `sys.executable -m pyggy` on free loopback ports. Its output (stderr, with stdout
merged in) is drained by a thread into `logs`, so the pipe never fills; `wait_for_log` blocks
on a condition variable until a line appears, the process exits or the timeout expires.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

READY_LINE = "tcp listening on"
_handed_out: set[int] = set()
_PORT_IN_USE = re.compile(r"address already in use|errno 98", re.IGNORECASE)


def free_port(host: str = "127.0.0.1") -> int:
    """A currently free TCP port on `host`, not handed out before in this process."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no free port found")


class ServerStartError(RuntimeError):
    """The server exited or did not log readiness in time."""


class PyggyServer:
    """One pyggy server process with its own data directory and ports."""

    def __init__(
        self,
        workdir: Path,
        *,
        data_path: Path | None = None,
        tcp_port: int | None = None,
        kafka_port: int | None = None,
        args: Sequence[str] = (),
        env: Mapping[str, str | None] | None = None,
        default_root_credentials: bool = True,
        start_timeout: float = 20.0,
        host: str = "127.0.0.1",
        prefix: Sequence[str] = (),
    ) -> None:
        self.workdir = Path(workdir)
        self.data_path = Path(data_path) if data_path else self.workdir / "data"
        self._auto_ports = tcp_port is None and kafka_port is None
        self.tcp_port = tcp_port or free_port()
        self.kafka_port = kafka_port or free_port()
        self.host = host
        self.prefix = list(prefix)  # e.g. `ip netns exec <ns>`: run in a network namespace
        self.args = list(args)
        self.extra_env = dict(env or {})
        self.default_root_credentials = default_root_credentials
        self.start_timeout = start_timeout
        self.logs: list[str] = []
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._cond = threading.Condition()
        self._eof = True
        self._start_index = 0

    # --- addresses ------------------------------------------------------------------------

    @property
    def tcp_address(self) -> str:
        return f"{self.host}:{self.tcp_port}"

    @property
    def kafka_address(self) -> str:
        return f"{self.host}:{self.kafka_port}"

    # --- process --------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def command(self) -> list[str]:
        cmd = [*self.prefix, sys.executable, "-m", "pyggy"]
        if self.default_root_credentials:
            cmd.append("--with-default-root-credentials")
        return cmd + self.args

    def environment(self) -> dict[str, str]:
        """The parent environment without its IGGY_* variables, plus this server's settings."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("IGGY_")}
        env.update(
            PYTHONUNBUFFERED="1",
            IGGY_SYSTEM_PATH=str(self.data_path),
            IGGY_TCP_ADDRESS=self.tcp_address,
            IGGY_KAFKA_ADDRESS=self.kafka_address,
            # one process unless a test asks for shards: the default (auto) depends on the
            # machine's cores (docs/sharding.md)
            IGGY_SYSTEM_SHARDING_SHARDS="1",
        )
        for key, value in self.extra_env.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def start(self, timeout: float | None = None, wait: bool = True) -> PyggyServer:
        """Spawn the server and (by default) wait for its "tcp listening on" line."""
        if self.running:
            raise RuntimeError("server already running")
        for attempt in range(3):
            self._spawn()
            if not wait:
                return self
            try:
                self.wait_for_log(READY_LINE, timeout or self.start_timeout)
                return self
            except ServerStartError:
                retry = self._auto_ports and attempt < 2 and self._port_clash()
                if not retry:
                    self.kill()
                    raise
                self.tcp_port, self.kafka_port = free_port(), free_port()
        raise AssertionError("unreachable")

    def _port_clash(self) -> bool:
        self._wait_exit(5.0)
        return any(_PORT_IN_USE.search(line) for line in self.logs[self._start_index :])

    def _spawn(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self._cond:
            self._start_index = len(self.logs)
            self._eof = False
        self._proc = subprocess.Popen(
            self.command(),
            cwd=self.workdir,
            env=self.environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self._reader = threading.Thread(
            target=self._drain, args=(self._proc,), name=f"pyggy-log-{self._proc.pid}", daemon=True
        )
        self._reader.start()

    def _drain(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with self._cond:
                self.logs.append(line.rstrip("\n"))
                self._cond.notify_all()
        proc.stdout.close()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def wait_for_log(self, needle: str, timeout: float = 20.0, since_start: bool = True) -> str:
        """Block until a log line containing `needle` appears (since the last start); return it."""
        deadline = time.monotonic() + timeout
        index = self._start_index if since_start else 0
        with self._cond:
            while True:
                for line in self.logs[index:]:
                    if needle in line:
                        return line
                index = len(self.logs)
                if self._eof:
                    raise ServerStartError(
                        f"server exited (code {self._wait_exit(5.0)}) before logging "
                        f"{needle!r}:\n{self.format_logs()}"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ServerStartError(
                        f"no {needle!r} log line within {timeout} s:\n{self.format_logs()}"
                    )
                self._cond.wait(remaining)

    def wait_exit(self, timeout: float = 15.0) -> int:
        """Wait for the process to exit by itself; return its exit code."""
        if self._proc is None:
            raise RuntimeError("server was never started")
        code = self._proc.wait(timeout)
        self._join_reader()
        return code

    def _wait_exit(self, timeout: float) -> int | None:
        try:
            return self._proc.wait(timeout) if self._proc else None
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Send `sig` and wait for exit; return the exit code (negative = killed by signal)."""
        if self._proc is None:
            raise RuntimeError("server was never started")
        if self._proc.poll() is None:
            self._proc.send_signal(sig)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
                self._join_reader()
                raise AssertionError(
                    f"server did not exit within {timeout} s of signal {sig}; killed\n"
                    + self.format_logs()
                ) from None
        self._join_reader()
        return self._proc.returncode

    def send_signal(self, sig: int) -> None:
        """Send `sig` and return at once (SIGSTOP/SIGCONT freeze and thaw the process)."""
        if self._proc is None or self._proc.poll() is not None:
            raise RuntimeError("server is not running")
        self._proc.send_signal(sig)

    def kill(self) -> int:
        """SIGKILL: a crash, no shutdown code runs."""
        return self.stop(signal.SIGKILL)

    def restart(self, sig: int = signal.SIGTERM, timeout: float | None = None) -> PyggyServer:
        """Stop (if running) with `sig`, then start again on the same ports and data."""
        if self.running:
            self.stop(sig)
        return self.start(timeout)

    def close(self) -> int | None:
        """Teardown: SIGTERM a running server; return its exit code (None if already stopped)."""
        if not self.running:
            self._join_reader()
            return None
        return self.stop(signal.SIGTERM)

    def _join_reader(self) -> None:
        if self._reader is not None:
            self._reader.join(5.0)

    def format_logs(self, last: int = 200) -> str:
        with self._cond:
            lines = self.logs[-last:]
        return "\n".join("    | " + line for line in lines)

    def __repr__(self) -> str:
        state = "running" if self.running else f"exited {self.returncode}"
        return f"<PyggyServer tcp={self.tcp_address} kafka={self.kafka_address} {state}>"


def fill_disk(directory: Path) -> Path:
    """Take every free byte of the file system holding `directory` (a test's small tmpfs);
    return the filler file, whose deletion gives the space back."""
    filler = Path(directory) / "filler"
    with open(filler, "wb", buffering=0) as f:
        for chunk in (1 << 16, 4096, 1):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
    return filler


CLUSTER_TIMING = {  # fast enough for tests, within Iggy's rules (pyggy.config.validate_cluster)
    "heartbeat_timeout": "2 s", "commit_broadcast_interval": "100 ms",
    "prepare_retransmit_interval": "50 ms", "view_change_retransmit_interval": "100 ms",
    "view_change_status_timeout": "1 s", "request_start_view_retransmit_interval": "200 ms",
    "view_probe_attempts_max": 3, "repair_retry_interval": "200 ms",
    "reconnect_period": "200 ms",
}


class NodeNetwork(Protocol):
    """Where node `i` runs: its address and the command prefix entering its network namespace
    (`pyggy.checker.netns.Network`)."""

    def address(self, i: int) -> str: ...

    def exec_prefix(self, i: int) -> list[str]: ...


NETNS_PORTS = {"tcp": 8090, "tcp_replica": 8091, "kafka": 9092}  # each node owns its stack


class PyggyCluster:
    """`n` pyggy processes forming one cluster: one shared config file (the roster), each
    process started with `--replica-id i`. On loopback with free ports by default; with a
    `network`, node i runs in its own namespace at `network.address(i)` on fixed ports."""

    def __init__(self, workdir: Path, n: int = 3, *, name: str = "test-cluster",
                 secret: str | None = "pyggy-test-cluster-shared-secret-0123456789",
                 timing: Mapping[str, object] | None = None,
                 env: Mapping[str, str | None] | None = None,
                 network: NodeNetwork | None = None) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config = self.workdir / "cluster.toml"
        self.servers: list[PyggyServer] = []
        for i in range(n):
            args = ["--config", str(self.config), "--replica-id", str(i)]
            if network is None:
                server = PyggyServer(self.workdir / f"node{i}", args=args, env=env)
            else:
                server = PyggyServer(self.workdir / f"node{i}", args=args, env=env,
                                     host=network.address(i), prefix=network.exec_prefix(i),
                                     tcp_port=NETNS_PORTS["tcp"],
                                     kafka_port=NETNS_PORTS["kafka"])
            self.servers.append(server)
        replica_ports = ([free_port() for _ in range(n)] if network is None
                         else [NETNS_PORTS["tcp_replica"]] * n)
        lines = ["[cluster]", "enabled = true", f'name = "{name}"']
        for key, value in {**CLUSTER_TIMING, **(timing or {})}.items():
            lines.append(f"{key} = {value!r}".replace("'", '"'))
        if secret is not None:
            lines += ["[cluster.auth]", "enabled = true", f'shared_secret = "{secret}"']
        for i, s in enumerate(self.servers):
            lines += ["[[cluster.nodes]]", f'name = "node{i}"', f'ip = "{s.host}"',
                      f"replica_id = {i}",
                      f"ports = {{ tcp = {s.tcp_port}, tcp_replica = {replica_ports[i]}, "
                      f"kafka = {s.kafka_port} }}"]
        if network is not None:  # the test's private network stands for the loopback of the
            # other tests, where "auto" leaves the Kafka door open (the Iggy door still logs in)
            lines += ["[kafka]", 'authentication = "none"']
        self.config.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 60.0) -> PyggyCluster:
        for s in self.servers:
            s.start(timeout, wait=False)
        for s in self.servers:
            s.wait_for_log(READY_LINE, timeout)
        for s in self.servers:  # every node knows who leads the metadata group
            s.wait_for_log("cluster: metadata primary is replica", timeout)
        return self

    @property
    def kafka_bootstrap(self) -> str:
        return ",".join(s.kafka_address for s in self.servers)

    def close(self) -> None:
        for s in self.servers:
            s.close()
