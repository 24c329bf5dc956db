"""`pyggy.checker.netns.Network`: real namespaces, veths and a bridge (root; without it the
tests fail, they never skip). A small TCP echo server in one namespace stands for a node; the
faults are checked by what a connection can and cannot do."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from pyggy.checker import netns

SERVE = """
import socket, sys
s = socket.create_server((sys.argv[1], 7000))
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.sendall(b"hi " + c.recv(16))
    c.close()
"""
SAY = """
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], 7000), timeout=1.5)
    c.sendall(b"x")
    print(c.recv(16).decode())
except OSError as e:
    print(type(e).__name__)
"""


def served(net: netns.Network, node: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen([*net.exec_prefix(node), sys.executable, "-c", SERVE,
                             net.address(node)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def say(net: netns.Network, address: str, node: int | None = None) -> str:
    """What a client says it got from `address`: from the root namespace, or node `node`."""
    prefix = [] if node is None else net.exec_prefix(node)
    done = subprocess.run([*prefix, sys.executable, "-c", SAY, address], capture_output=True,
                          text=True, timeout=30)
    return done.stdout.strip()


def names() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


@pytest.fixture
def net():
    with netns.Network(3) as n:
        yield n


def test_nodes_reach_each_other_and_the_root_namespace_reaches_them(net) -> None:
    server = served(net, 1)
    try:
        assert say(net, net.address(1)) == "hi x"
        assert say(net, net.address(1), node=0) == "hi x"
        assert say(net, net.address(1), node=2) == "hi x"
    finally:
        server.kill()
        server.wait()
    assert net.address(0).startswith("10.") and len({net.address(i) for i in range(3)}) == 3


def test_isolation_cuts_everyone_off_and_heal_restores(net) -> None:
    server = served(net, 1)
    try:
        net.isolate(1)
        assert net.faults() == [(1, "in"), (1, "out")]
        assert say(net, net.address(1)) == "TimeoutError"
        assert say(net, net.address(1), node=0) == "TimeoutError"
        assert say(net, net.address(2), node=0) == "ConnectionRefusedError"  # others unaffected
        net.heal(1)
        assert net.faults() == []
        assert say(net, net.address(1), node=2) == "hi x"
    finally:
        server.kill()
        server.wait()


def test_a_one_way_cut_drops_one_direction_only(net) -> None:
    """A UDP datagram shows one direction on its own (TCP needs both ways to connect)."""
    net.cut(0, inbound=True, outbound=False)
    recv = subprocess.Popen([*net.exec_prefix(1), sys.executable, "-c",
                             "import socket,sys; s=socket.socket(socket.AF_INET, "
                             "socket.SOCK_DGRAM); s.bind((sys.argv[1], 7001)); "
                             "s.settimeout(5); print('ready', flush=True); "
                             "print(s.recv(16).decode())", net.address(1)],
                            stdout=subprocess.PIPE, text=True)
    assert recv.stdout is not None and recv.stdout.readline().strip() == "ready"
    send = ("import socket,sys; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
            ".sendto(b'out-ok', (sys.argv[1], 7001))")
    subprocess.run([*net.exec_prefix(0), sys.executable, "-c", send, net.address(1)],
                   check=True, timeout=30)
    out, _ = recv.communicate(timeout=30)
    assert out.split()[-1] == "out-ok"  # node 0 can still send
    server = served(net, 0)
    try:
        assert say(net, net.address(0), node=1) == "TimeoutError"  # but receives nothing
    finally:
        server.kill()
        server.wait()


def test_close_removes_every_namespace_and_link() -> None:
    net = netns.Network(2)
    made = [*net.namespaces, net.router]
    assert all(n in names() for n in made)
    net.close()
    left = names()
    assert not any(n in left for n in made)
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert net.client_link + ":" not in links and net.client_link + "@" not in links


def test_what_a_killed_run_left_is_reaped() -> None:
    """A namespace tagged with a pid that no longer exists is deleted by the next Network."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = f"{netns.PREFIX}{dead.pid}x0r"
    subprocess.run(["ip", "netns", "add", stale], check=True)
    try:
        assert stale in netns.reap_stale()
        assert stale not in names()
    finally:
        subprocess.run(["ip", "netns", "del", stale], capture_output=True)


def test_without_root_it_fails_not_skips(monkeypatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(netns.NetworkUnavailable, match="root"):
        netns.Network(3)


def test_the_subnets_of_two_networks_differ() -> None:
    with netns.Network(1) as a, netns.Network(1) as b:
        assert a.prefix != b.prefix and a.tag != b.tag
        assert socket.inet_aton(a.address(0)) != socket.inet_aton(b.address(0))
