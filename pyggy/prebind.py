"""The doors' listening sockets, opened by `pyggy-server` before the server is imported.

As soon as its configuration is read and the data directory locked, `pyggy.cli` binds and
listens on the native TCP and Kafka addresses (`listen`); importing the server and opening the
data follow. A client connecting meanwhile is accepted by the kernel into the socket's backlog
and its first request waits until the door starts serving. Each door's `Listener` takes its
socket from here (`take`) instead of binding again, so its behaviour is unchanged from then on.

Only what a listener would bind the same way is bound here: a literal IP address (a host name
may resolve to several addresses, left to the event loop), with the options asyncio's
`create_server` sets (SO_REUSEADDR; IPV6_V6ONLY for IPv6). A bind that fails is not reported
here: the listener binds again later and reports it as it always did.
"""

from __future__ import annotations

import ipaddress
import socket

BACKLOG = 100  # the backlog asyncio's and uvloop's create_server use by default
_open: dict[str, tuple[str, int, socket.socket]] = {}


def listen(door: str, host: str, port: int) -> int | None:
    """Bind and listen on `host:port` for `door` ("tcp", "kafka"); the port bound (`port`, or
    the one the system chose for 0), or None if not done here."""
    try:
        version = ipaddress.ip_address(host).version
    except ValueError:  # a host name, or "" for every interface: the event loop resolves it
        return None
    family = socket.AF_INET6 if version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        return None
    old = _open.pop(door, None)
    if old is not None:
        old[2].close()
    _open[door] = (host, port, sock)
    return int(sock.getsockname()[1])


def take(door: str, host: str, port: int) -> socket.socket | None:
    """`door`'s socket if one was opened for exactly `host:port` (the caller owns it now)."""
    entry = _open.get(door)
    if entry is None or entry[:2] != (host, port):
        return None
    del _open[door]
    return entry[2]


def close_all() -> None:
    """Close every socket no listener took (a start that failed before its doors opened)."""
    while _open:
        _open.popitem()[1][2].close()
