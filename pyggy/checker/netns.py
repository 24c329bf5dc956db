"""A private network for a test cluster: one network namespace per node, bridged in a router
namespace, and faults on the links (vsr.md §4.5 of the design notes; docs/cluster.md,
"Network-namespace scenarios").

    node i  [ns <tag>n<i>: eth0 10.a.b.(i+1)] ─veth─ p<i> ┐
    client  [root ns: <tag>c 10.a.b.254]      ─veth─ pc   ┴ br0 [ns <tag>r]

Every name carries a tag with this process's pid, so concurrent runs never collide; the /24
is chosen under a lock among those the root namespace does not use. Deleting the router
namespace removes the bridge and both ends of every veth; `close` does it, and a later run
removes what a killed run left (names whose pid is gone).

A fault is a `pfifo limit 0` qdisc (every packet dropped) on one end of a node's veth: on the
router's port it drops what goes *into* the node, on the node's eth0 what comes *out of* it.
The kernel here has no netem or tc classifiers, the machine no iptables/nft; a drop on the
node's own device is seen by its TCP as a lost segment (retransmitted later), as a drop on
the wire would be.
Needs root and `ip`/`tc` (iproute2): without them `Network()` raises, it never skips.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import re
import shutil
import subprocess
from collections.abc import Sequence

PREFIX = "pgy"
LOCK = "/run/lock/pyggy-netns.lock"
_STALE = re.compile(rf"^{PREFIX}(\d+)x\d+[rnc]")
_count = itertools.count()


class NetworkUnavailable(RuntimeError):
    """Not root, or no iproute2: the namespace scenarios cannot run here."""


def _ip(*args: str, check: bool = True) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def _tc(ns: str, *args: str) -> None:
    done = subprocess.run(["ip", "netns", "exec", ns, "tc", *args], capture_output=True,
                          text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"tc {' '.join(args)} in {ns}: {done.stderr.strip()}")


def _mac(ns: str | None, dev: str) -> str:
    out = _ip(*(("-n", ns) if ns else ()), "-o", "link", "show", dev)
    return out.split("link/ether ", 1)[1].split()[0]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_stale() -> list[str]:
    """Delete namespaces and root links this module made in processes that are gone."""
    gone = []
    for line in _ip("netns", "list").splitlines():
        name = line.split()[0] if line.strip() else ""
        if (m := _STALE.match(name)) and not _alive(int(m.group(1))):
            _ip("netns", "del", name, check=False)
            gone.append(name)
    for m in re.finditer(r"^\d+: ([^:@]+)", _ip("-o", "link", "show"), re.M):
        name = m.group(1)
        if (s := _STALE.match(name)) and name.endswith("c") and not _alive(int(s.group(1))):
            _ip("link", "del", name, check=False)
            gone.append(name)
    return gone


def _free_subnet() -> str:
    """A 10.a.b prefix no address or route of the root namespace overlaps (under LOCK)."""
    used = _ip("-4", "route", "show", "table", "all") + _ip("-4", "addr", "show")
    start = os.getpid() * 7 + next(_count)
    for k in range(1 << 14):
        n = (start + k) % (1 << 14)
        prefix = f"10.{200 + n // 256 % 50}.{n % 256}"
        if f"{prefix}." not in used:
            return prefix
    raise RuntimeError("no free 10.x.y.0/24 in the root namespace")


class Network:
    """`n` node namespaces and a root-namespace client link on one bridge; a context manager."""

    def __init__(self, n: int = 3) -> None:
        if os.geteuid() != 0:
            raise NetworkUnavailable("network namespaces need root (ip netns add)")
        if shutil.which("ip") is None or shutil.which("tc") is None:
            raise NetworkUnavailable("network namespaces need iproute2 (ip, tc) on PATH")
        reap_stale()
        self.tag = f"{PREFIX}{os.getpid()}x{next(_count)}"
        self.router = f"{self.tag}r"
        self.namespaces = [f"{self.tag}n{i}" for i in range(n)]
        self.client_link = f"{self.tag}c"
        self._cut: set[tuple[int, str]] = set()
        self.prefix = ""
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _build(self) -> None:
        r = self.router
        _ip("netns", "add", r)
        _ip("-n", r, "link", "set", "lo", "up")
        _ip("-n", r, "link", "add", "br0", "type", "bridge")
        _ip("-n", r, "link", "set", "br0", "up")
        os.makedirs(os.path.dirname(LOCK), exist_ok=True)
        with open(LOCK, "w") as lock:  # two runs must not pick the same /24 in the root ns
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.prefix = _free_subnet()
            _ip("link", "add", self.client_link, "type", "veth", "peer", "name", "pc",
                "netns", r)
            _ip("addr", "add", f"{self.prefix}.254/24", "dev", self.client_link)
        _ip("link", "set", self.client_link, "up")
        self._port("pc")
        for i, ns in enumerate(self.namespaces):
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", f"p{i}",
                "netns", r)
            _ip("-n", ns, "addr", "add", f"{self.address(i)}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            self._port(f"p{i}")
        self._pin_neighbours()

    def _pin_neighbours(self) -> None:
        """Permanent ARP entries everywhere: a one-way cut must not also stop the other way
        because an ARP reply (or request) is dropped."""
        ends = [(None, self.client_link, f"{self.prefix}.254")] + [
            (ns, "eth0", self.address(i)) for i, ns in enumerate(self.namespaces)]
        macs = [_mac(ns, dev) for ns, dev, _ in ends]
        for ns, dev, _ in ends:
            for (other, _, address), mac in zip(ends, macs, strict=True):
                if other != ns:
                        _ip(*(("-n", ns) if ns else ()), "neigh", "replace", address, "lladdr",
                        mac, "dev", dev, "nud", "permanent")

    def _port(self, name: str) -> None:
        _ip("-n", self.router, "link", "set", name, "master", "br0")
        _ip("-n", self.router, "link", "set", name, "up")

    # --- what a cluster needs ---------------------------------------------------------------

    def address(self, i: int) -> str:
        return f"{self.prefix}.{i + 1}"

    def exec_prefix(self, i: int) -> list[str]:
        """The command prefix that runs a program in node `i`'s namespace."""
        return ["ip", "netns", "exec", self.namespaces[i]]

    # --- faults -----------------------------------------------------------------------------

    def cut(self, i: int, inbound: bool = True, outbound: bool = True) -> None:
        """Drop every packet into (`inbound`) and/or out of (`outbound`) node `i`."""
        for direction, wanted in (("in", inbound), ("out", outbound)):
            if wanted and (i, direction) not in self._cut:
                _tc(*self._end(i, direction), "root", "pfifo", "limit", "0")
                self._cut.add((i, direction))

    def isolate(self, i: int) -> None:
        self.cut(i)

    def heal(self, i: int | None = None) -> None:
        """Remove the faults of node `i` (all nodes when None)."""
        for node, direction in sorted(self._cut):
            if i is None or node == i:
                _tc(*self._end(node, direction), "root")
                self._cut.discard((node, direction))

    def faults(self) -> list[tuple[int, str]]:
        return sorted(self._cut)

    def _end(self, i: int, direction: str) -> Sequence[str]:
        ns, dev = (self.router, f"p{i}") if direction == "in" else (self.namespaces[i], "eth0")
        return (ns, "qdisc", "del" if (i, direction) in self._cut else "replace", "dev", dev)

    # --- teardown ---------------------------------------------------------------------------

    def close(self) -> None:
        """Delete every namespace and link of this network (idempotent)."""
        for ns in [*self.namespaces, self.router]:
            _ip("netns", "del", ns, check=False)
        _ip("link", "del", self.client_link, check=False)
        self._cut.clear()

    def __enter__(self) -> Network:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
