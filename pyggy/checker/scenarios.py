"""The real-process scenarios P1–P8 (/work/shared/reference/vsr.md §4.4 in the design notes;
docs/cluster.md, "Failure scenarios"): three pyggy processes on 127.0.0.1, real clients
(`workload.Workload`), a fault, then the history checked (`history.check`,
`linear.check`) and the scenario's own criteria. Each returns an `Outcome`. Runs are
short: `seconds` of load after the fault. Each writer sends 10 records a second (one op
each): enough to keep every group busy, and few enough that a node down for a few seconds
stays within the 128 ops a partition journal keeps (beyond them it needs a state transfer).

- `normal` (P1): no fault; every node names the same leader.
- `kill_primary` (P2, P3, P8): SIGKILL the partition's leader at a seeded moment under both
  Kafka clients and the Iggy SDK; acks resume (failover time per door); restarted, the node
  catches up byte-identical.
- `long_outage` (P3): a backup down for more ops than a partition journal holds (128), then
  restarted: it should catch up (fails today: no segment state transfer yet).
- `quorum_loss` (P4): SIGKILL one backup, then the other: nothing is acknowledged while one
  node is up; one restarted and acks resume.
- `whole_cluster` (P5): SIGKILL all three, restart: every acknowledgement survives (the page
  cache survives a process kill).
- `pause_primary` (P6): SIGSTOP the leader for 2 × the heartbeat timeout, SIGCONT: a new view,
  which the old leader follows.
- `stall_backup` (P7): heartbeat timeout 5 s (the default), a backup frozen for 3 s: no view
  changes.

Every run ends with the segment files of all nodes byte-identical, and checks from the logs
that each node's views only grow and that all nodes name the same primary for a (group,
view). SIGSTOP of a whole process stands for an event-loop stall (P7): from the peers' side
the two cannot be told apart.
"""

from __future__ import annotations

import random
import re
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pyggy.checker.history import History, Report, check
from pyggy.checker.linear import Result
from pyggy.checker.linear import check as check_linear
from pyggy.checker.workload import (
    IGGY_KEY,
    Workload,
    create_iggy_topic,
    create_kafka_topic,
    kafka_key,
    leaders,
    read_iggy,
    read_kafka,
    wait_leader,
)
from pyggy.testing import PyggyCluster, PyggyServer, ServerStartError

TOPIC = "checked"
HEARTBEAT = 2.0  # seconds: pyggy.testing.CLUSTER_TIMING
_VIEW = re.compile(r"cluster: (?:metadata|partition group (0x[0-9a-f]+)) primary is replica "
                   r"(\d+) \(view (\d+)\)")


@dataclass
class Outcome:
    scenario: str
    seed: int
    report: Report
    linear: Result
    figures: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    history: History | None = None
    metadata_ops: int = 0

    @property
    def ok(self) -> bool:
        return self.report.valid and self.linear.ok and not self.problems

    def __str__(self) -> str:
        figures = ", ".join(f"{k} {v:.2f} s" for k, v in self.figures.items())
        lines = [f"{self.scenario} seed {self.seed}: {'ok' if self.ok else 'FAILED'}"
                 f"{' (' + figures + ')' if figures else ''}",
                 "  " + str(self.report).replace("\n", "\n  "),
                 f"  metadata: {self.linear} ({self.metadata_ops} commands)"]
        lines += [f"  problem: {p}" for p in self.problems]
        return "\n".join(lines)


class Scenario:
    """One cluster, one workload; `finish` reads everything back and checks it."""

    def __init__(self, workdir: Path, name: str, seed: int, clients: tuple[str, ...],
                 rate: float = 10.0, timing: dict[str, object] | None = None) -> None:
        self.name, self.seed, self.rng = name, seed, random.Random(seed)
        self.cluster = _start_cluster(workdir, timing)
        self.clients = clients
        self.problems: list[str] = []
        self.figures: dict[str, float] = {}
        try:
            create_kafka_topic(self.cluster, TOPIC)
            if "iggy" in clients:
                create_iggy_topic(self.cluster)
            self.leader = wait_leader(self.cluster, TOPIC)
            self.groups = {m.group(1) or "metadata" for s in self.cluster.servers
                           for line in s.logs if (m := _VIEW.search(line))}
        except BaseException:
            self.close()
            raise
        self.load = Workload(self.cluster, TOPIC, seed, rate)

    def start(self) -> Scenario:
        self.load.start(*self.clients)
        return self

    def server(self, i: int) -> PyggyServer:
        return self.cluster.servers[i]

    def expect(self, condition: bool, problem: str) -> None:
        if not condition:
            self.problems.append(problem)

    def failover(self, moment: float, label: str, timeout: float = 40.0) -> None:
        """Record `moment` (a fault) -> the first acknowledgement of a send invoked after it,
        per door, waiting up to `timeout` s for it; none is a problem."""
        doors = [("kafka", kafka_key(TOPIC))] + ([("iggy", IGGY_KEY)]
                                                 if "iggy" in self.clients else [])
        deadline = moment + timeout
        for door, key in doors:
            while (seconds := self.load.history.first_ack_after(moment, key)) is None:
                if time.monotonic() > deadline:
                    self.problems.append(f"no {door} acknowledgement within {timeout} s of "
                                         f"{label}")
                    break
                time.sleep(0.05)
            else:
                self.figures[f"{label} -> first {door} ack"] = seconds

    def finish(self, identical: bool = True) -> Outcome:
        try:
            self.load.stop()
            self.expect(not self.load.errors or all(
                "Timed out" in e or "TIMED_OUT" in e or "Local: Message timed out" in e
                or "KafkaTimeoutError" in e or "java: TimeoutException" in e
                for e in self.load.errors),
                f"client errors: {self.load.errors[:5]}")
            for s in self.cluster.servers:
                if s.running:
                    s.wait_for_log("tcp listening on", 5)
            read_kafka(self.cluster, TOPIC, self.load.history)
            if "iggy" in self.clients:
                read_iggy(self.cluster, self.load.history)
            if identical:
                started = time.monotonic()
                differ = wait_identical(self.cluster, 60.0)
                self.expect(differ is None, f"segments differ between the nodes: {differ}")
                self.figures.setdefault("segments identical after", time.monotonic() - started)
            self.problems += views_problems(self.cluster, self.groups)
            if any("iggy" in p for p in self.problems):
                self.problems.append(f"iggy client notes: {self.load.notes[:5]}")
            report = check(self.load.history, idempotent=True)
            linear = check_linear(self.load.metadata.ops)
            return Outcome(self.name, self.seed, report, linear, self.figures, self.problems,
                           self.load.history, len(self.load.metadata.ops))
        finally:
            self.close()

    def close(self) -> None:
        """Stop the nodes and keep their logs next to their data (`node<i>/server.log`); a node
        that ignores SIGTERM is killed and the others are still stopped."""
        for s in self.cluster.servers:
            try:
                s.close()
            except AssertionError:  # did not exit within 15 s of SIGTERM: it was SIGKILLed
                pass
            (s.workdir / "server.log").write_text("\n".join(s.logs) + "\n")


def _start_cluster(workdir: Path, timing: dict[str, object] | None) -> PyggyCluster:
    """A started cluster; on a port another process took meanwhile (the roster's ports are
    chosen free, then bound a few seconds later), again with new ports in a new directory."""
    for attempt in range(3):
        cluster = PyggyCluster(workdir if attempt == 0 else workdir / f"retry{attempt}",
                               timing=timing)
        try:
            return cluster.start()
        except ServerStartError as e:
            for server in cluster.servers:
                server.kill() if server.running else server.close()
            if attempt == 2 or "address already in use" not in str(e):
                raise
    raise AssertionError("unreachable")


def normal(workdir: Path, seed: int, seconds: float = 4.0) -> Outcome:
    """P1: no fault; all nodes agree on the leader and hold the same bytes."""
    sc = Scenario(workdir, "normal", seed, ("librdkafka", "kafka-python", "iggy", "consumer",
                                            "metadata"))
    try:
        started = time.monotonic()
        sc.start()
        sc.failover(started, "start")  # both doors acknowledge
        time.sleep(seconds)
        named = leaders(sc.cluster, TOPIC)
        sc.expect(len(set(named.values())) == 1, f"nodes name different leaders: {named}")
    except BaseException:
        sc.close()
        raise
    return sc.finish()


def kill_primary(workdir: Path, seed: int, seconds: float = 2.0,
                 clients: tuple[str, ...] = ("librdkafka", "kafka-python", "java", "iggy",
                                             "consumer", "metadata")) -> Outcome:
    """P2 + P3 + P8: SIGKILL the leader at a seeded moment under idempotent producers of three
    Kafka clients (librdkafka, kafka-python, the Java client) and the Iggy SDK (5 records/s
    each); writes resume on the new leader; then
    the writers hold, the killed node restarts and catches up to the same bytes through journal
    repair (the outage stays under the partition journal's 128 ops: see `long_outage`), and
    the writers go on for `seconds`."""
    sc = Scenario(workdir, "kill_primary", seed, clients, rate=5.0).start()
    try:
        time.sleep(sc.rng.uniform(0.5, 2.0))
        victim = sc.leader
        killed = time.monotonic()
        sc.server(victim).kill()
        new = wait_leader(sc.cluster, TOPIC, timeout=HEARTBEAT + 40, avoid=victim)
        sc.figures["SIGKILL -> new leader named"] = time.monotonic() - killed
        sc.expect(new != victim, "the killed node is still named leader")
        sc.failover(killed, "SIGKILL")
        sc.load.pause()  # the outage stays under the journal even when failover is slow
        restarted = time.monotonic()
        sc.server(victim).start(60)
        listening = time.monotonic()
        sc.figures["restart -> listening"] = listening - restarted
        differ = wait_identical(sc.cluster, 60.0)  # 3-6 s on a quiet machine (BENCHMARKS.md)
        sc.expect(differ is None, f"the restarted node did not catch up: {differ}")
        sc.figures["listening -> byte-identical"] = time.monotonic() - listening
        sc.load.resume()
        time.sleep(seconds)
    except BaseException:
        sc.close()
        raise
    return sc.finish()


def long_outage(workdir: Path, seed: int, seconds: float = 2.0) -> Outcome:
    """P3's other half: a backup is down while more ops commit than a partition journal holds
    (128), then restarts: it catches up by a state transfer of segments (docs/cluster.md,
    "State transfer") and ends byte-identical."""
    sc = Scenario(workdir, "long_outage", seed, ("librdkafka",), rate=100.0).start()
    try:
        backup = next(i for i in range(3) if i != sc.leader)
        sc.server(backup).kill()
        time.sleep(seconds + 2.0)  # 100 ops/s: several hundred ops past the journal
        sc.load.pause()
        sc.server(backup).start(60)
        differ = wait_identical(sc.cluster, 20.0)
        sc.expect(differ is None, f"the restarted backup did not catch up: {differ}")
        sc.load.resume()
    except BaseException:
        sc.close()
        raise
    return sc.finish()


def quorum_loss(workdir: Path, seed: int, seconds: float = 3.0) -> Outcome:
    """P4: with both backups down nothing is acknowledged; one back and acks resume."""
    sc = Scenario(workdir, "quorum_loss", seed, ("librdkafka", "consumer")).start()
    try:
        time.sleep(1.0)
        backups = [i for i in range(3) if i != sc.leader]
        sc.server(backups[0]).kill()
        time.sleep(sc.rng.uniform(0.5, 1.5))
        sc.server(backups[1]).kill()
        lost = time.monotonic()
        time.sleep(seconds)
        late = sc.load.history.first_ack_after(lost + 0.5)  # in flight at the kill: may land
        sc.expect(late is None, f"acknowledged {late:.2f} s after quorum loss" if late else "")
        back = time.monotonic()
        sc.server(backups[0]).start(60)
        sc.failover(back, "restart of a backup")
        time.sleep(seconds)
        sc.server(backups[1]).start(60)
    except BaseException:
        sc.close()
        raise
    return sc.finish()


def whole_cluster(workdir: Path, seed: int, seconds: float = 2.0) -> Outcome:
    """P5: SIGKILL every node under load, restart them all; every ack survives."""
    sc = Scenario(workdir, "whole_cluster", seed, ("librdkafka", "kafka-python",
                                                   "consumer")).start()
    try:
        time.sleep(sc.rng.uniform(1.0, seconds + 1.0))
        for s in sc.cluster.servers:
            s.kill()
        killed = time.monotonic()  # after the last kill: the leader may not be the first
        sc.cluster.start()
        sc.figures["restart -> every node ready"] = time.monotonic() - killed
        wait_leader(sc.cluster, TOPIC, timeout=60)
        time.sleep(seconds)
        sc.failover(killed, "SIGKILL all")
    except BaseException:
        sc.close()
        raise
    return sc.finish()


def pause_primary(workdir: Path, seed: int, seconds: float = 2.0) -> Outcome:
    """P6: SIGSTOP the leader for twice the heartbeat timeout: the others elect a new one; after
    SIGCONT the old leader follows the new view (none of its stale prepares commits: the
    history would show an inconsistent offset)."""
    sc = Scenario(workdir, "pause_primary", seed, ("librdkafka", "kafka-python", "iggy",
                                                   "consumer", "metadata")).start()
    try:
        time.sleep(sc.rng.uniform(0.5, 1.5))
        victim = sc.leader
        mark = len(sc.server(victim).logs)
        stopped = time.monotonic()
        sc.server(victim).send_signal(signal.SIGSTOP)
        try:
            time.sleep(2 * HEARTBEAT)
        finally:
            sc.server(victim).send_signal(signal.SIGCONT)
        resumed = time.monotonic()
        new = wait_leader(sc.cluster, TOPIC, timeout=30, avoid=victim)
        sc.figures["SIGCONT -> all nodes agree on the new leader"] = time.monotonic() - resumed
        sc.expect(new != victim, "the paused node still leads")
        sc.expect(wait_log_after(sc.server(victim), mark, f"primary is replica {new}", 10),
                  "the resumed node did not log the new view")
        time.sleep(seconds)
        sc.failover(stopped, "SIGSTOP")
    except BaseException:
        sc.close()
        raise
    return sc.finish()


def stall_backup(workdir: Path, seed: int, seconds: float = 2.0) -> Outcome:
    """P7: with the default 5 s heartbeat timeout, a backup frozen for 3 s (an event-loop
    stall as its peers see it) under load: nobody starts a view change."""
    sc = Scenario(workdir, "stall_backup", seed, ("librdkafka", "consumer"),
                  timing={"heartbeat_timeout": "5 s"}).start()
    try:
        time.sleep(1.0)
        backup = next(i for i in range(3) if i != sc.leader)
        marks = [len(s.logs) for s in sc.cluster.servers]
        sc.server(backup).send_signal(signal.SIGSTOP)
        try:
            time.sleep(3.0)
        finally:
            sc.server(backup).send_signal(signal.SIGCONT)
        time.sleep(seconds + 5.0)  # long enough for a spurious election to show
        for s, mark in zip(sc.cluster.servers, marks, strict=True):
            views = _views(s.logs[:mark])  # groups created later (__consumer_offsets) are new
            changes = [line for line in s.logs[mark:] if "has no primary" in line
                       or ((m := _VIEW.search(line)) and (m.group(1) or "metadata") in views
                           and int(m.group(3)) > views[m.group(1) or "metadata"])]
            sc.expect(not changes, f"view change after a short stall: {changes[:3]}")
    except BaseException:
        sc.close()
        raise
    return sc.finish()


SCENARIOS: dict[str, Callable[..., Outcome]] = {
    "normal": normal, "kill_primary": kill_primary, "quorum_loss": quorum_loss,
    "whole_cluster": whole_cluster, "pause_primary": pause_primary,
    "stall_backup": stall_backup, "long_outage": long_outage}


# --- cluster-wide checks ----------------------------------------------------------------------

def views_problems(cluster: PyggyCluster, groups: set[str]) -> list[str]:
    """Each node's views only grow per group, and one (group, view) has one primary; over
    `groups` (the metadata group and the scenario's topics: a topic the metadata client
    deletes and creates again is a new group under the same id, starting from view 0)."""
    problems: list[str] = []
    primary_of: dict[tuple[str, int], int] = {}
    for i, s in enumerate(cluster.servers):
        last: dict[str, int] = {}
        for line in s.logs:
            m = _VIEW.search(line)
            if m is None:
                continue
            group, primary, view = m.group(1) or "metadata", int(m.group(2)), int(m.group(3))
            if group not in groups:
                continue
            if view < last.get(group, -1):
                problems.append(f"node {i} {group}: view {view} after {last[group]}")
            last[group] = view
            if primary_of.setdefault((group, view), primary) != primary:
                problems.append(f"{group} view {view}: primaries {primary_of[group, view]} "
                                f"and {primary}")
    return problems


def _views(lines: list[str]) -> dict[str, int]:
    """group -> the last view these log lines name."""
    out = {}
    for line in lines:
        if m := _VIEW.search(line):
            out[m.group(1) or "metadata"] = int(m.group(3))
    return out


def segment_files(server: PyggyServer) -> dict[str, bytes]:
    """Every segment and index file of a node (a topic deleted meanwhile drops out)."""
    root = server.data_path / "streams"
    out = {}
    for p in sorted(root.rglob("*")):
        if p.suffix in (".log", ".index"):
            try:
                out[str(p.relative_to(root))] = p.read_bytes()
            except FileNotFoundError:
                continue
    return out


def wait_identical(cluster: PyggyCluster, timeout: float) -> str | None:
    """None once every node holds the same segment files, else which files differ (sizes)."""
    deadline = time.monotonic() + timeout
    while True:
        files = [segment_files(s) for s in cluster.servers]
        if files[0] and all(f == files[0] for f in files):
            return None
        if time.monotonic() > deadline:
            names = sorted(set().union(*files))
            return "; ".join(f"{n}: {[len(f[n]) if n in f else None for f in files]}"
                             for n in names if len({f.get(n) for f in files}) > 1)
        time.sleep(0.2)


def wait_log_after(server: PyggyServer, mark: int, needle: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(needle in line for line in server.logs[mark:]):
            return True
        time.sleep(0.1)
    return False
