"""The doors' listening sockets, opened by `pyggy-server` before anything else is imported.

`pyggy-server` first reads the few settings that decide what to bind (`open_early`: the native
TCP and Kafka addresses and switches, the data directory, whether this process is a cluster
replica or one of several shards), locks the data directory and binds and listens on the doors'
addresses (`listen`); only then does it import argparse, logging and the config schema, read
the whole configuration and report its errors as it always did (a start that fails closes
these sockets: `close_all`), and import the server. A client connecting meanwhile is accepted
by the kernel into the socket's backlog and its first request waits until the door serves.
Each door's `Listener` takes its socket from here (`take`) instead of binding again, so its
behaviour is unchanged from then on.

Only what a listener would bind the same way is bound here: a literal IP address (a host name
may resolve to several addresses, left to the event loop), with the options asyncio's
`create_server` sets (SO_REUSEADDR; IPV6_V6ONLY for IPv6). A bind that fails is not reported
here: the listener binds again later and reports it as it always did.

Why so early and so bare (BENCHMARKS.md, "Issue 16, seventh session"): the interpreter starts
in ≈ 38 M instructions, and importing `pyggy.config` with what it needs (logging, argparse,
dataclasses, typing, inspect, enum…) took ≈ 170 M more before the ports listened. This module
imports only `os`, `fcntl` (pyggy/datadir.py) and the C `_socket` (the `socket` module imports
`enum` and `selectors`), and reads the settings without the schema; whenever a value is not
plain (a malformed argument, an unreadable config file, a value `pyggy.config` would refuse or
convert), it binds nothing and leaves the start to the full path, which binds as before.
"""

from __future__ import annotations

import _socket
import os

from pyggy import datadir

TYPE_CHECKING = False
if TYPE_CHECKING:  # the annotations only (the modules are not imported at run time)
    import socket
    from collections.abc import Mapping, Sequence
    from typing import Any

BACKLOG = 100  # the backlog asyncio's and uvloop's create_server use by default
_open: dict[str, tuple[str, int, _socket.socket]] = {}


def _family(host: str) -> int | None:
    """AF_INET or AF_INET6 for a literal IP address (what `ipaddress.ip_address` accepts),
    None for anything else (a host name, "" for every interface)."""
    for family in (_socket.AF_INET, _socket.AF_INET6):
        try:
            _socket.inet_pton(family, host)
        except (OSError, ValueError):  # ValueError: an embedded NUL
            continue
        return family
    if "%" in host:  # an IPv6 address with a zone ("fe80::1%eth0"): inet_pton refuses those
        import ipaddress

        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
        return _socket.AF_INET6
    return None


def listen(door: str, host: str, port: int) -> int | None:
    """Bind and listen on `host:port` for `door` ("tcp", "kafka"); the port bound (`port`, or
    the one the system chose for 0), or None if not done here. A door that already listens
    on exactly `host:port` keeps its socket (the full configuration confirming what
    `open_early` bound); one listening elsewhere is closed first."""
    old = _open.get(door)
    if old is not None:
        if old[:2] == (host, port):
            return int(old[2].getsockname()[1])
        close(door)
    family = _family(host)
    if family is None:
        return None
    sock = _socket.socket(family, _socket.SOCK_STREAM)
    try:
        sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
        if family == _socket.AF_INET6:
            sock.setsockopt(_socket.IPPROTO_IPV6, _socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        return None
    _open[door] = (host, port, sock)
    return int(sock.getsockname()[1])


def take(door: str, host: str, port: int) -> socket.socket | None:
    """`door`'s socket if one was opened for exactly `host:port` (the caller owns it now)."""
    entry = _open.get(door)
    if entry is None or entry[:2] != (host, port):
        return None
    del _open[door]
    import socket

    return socket.socket(fileno=entry[2].detach())


def close(door: str) -> None:
    """Close `door`'s socket, if one is open and no listener took it."""
    entry = _open.pop(door, None)
    if entry is not None:
        entry[2].close()


def close_all() -> None:
    """Close every socket no listener took (a start that failed before its doors opened)."""
    while _open:
        _open.popitem()[1][2].close()


# --- the early start: the few settings that decide what to bind ---------------------------

# the defaults of the settings read here (pyggy/config.py's; tests/pyggy/test_prebind.py holds
# them equal) and the kind `pyggy.config.coerce` gives each
DEFAULTS: dict[tuple[str, ...], tuple[str, Any]] = {
    ("system", "path"): ("str", "local_data"),
    ("system", "sharding", "shards"): ("int", 0),
    ("tcp", "enabled"): ("bool", True),
    ("tcp", "address"): ("str", "127.0.0.1:8090"),
    ("kafka", "enabled"): ("bool", True),
    ("kafka", "address"): ("str", "127.0.0.1:9092"),
    ("data_maintenance", "archiver", "enabled"): ("bool", False),
    ("cluster", "enabled"): ("bool", False),
}
# the command line options `pyggy-server` has (pyggy/cli.py build_parser): those that take a
# value, with the setting it overrides (None: not read here), and the switches read here
_OPTIONS: dict[str, tuple[str, ...] | None] = {
    "--config": None,
    "--tcp-address": ("tcp", "address"),
    "--kafka-address": ("kafka", "address"),
    "--data-path": ("system", "path"),
    "--replica-id": None,
    "--log-level": None,
}
_SWITCHES = frozenset({"--with-default-root-credentials", "--repair-state"})
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


class _Unsure(Exception):
    """A value the early read does not judge: the full configuration decides (and reports)."""


class Early:
    """What `open_early` did: the data directory it locked (the lock's descriptor, or None
    when the directory did not exist yet: a first start creates and locks it later, as
    before) and the config file it parsed, which `pyggy.config.load_config` reuses."""

    __slots__ = ("path", "lock", "config_path", "document")

    def __init__(self, path: str, lock: int | None, config_path: str | None,
                 document: dict[str, Any] | None) -> None:
        self.path = path
        self.lock = lock
        self.config_path = config_path
        self.document = document

    def take_lock(self, path: str) -> int | None:
        """The data directory's lock for the start to keep, if it is `path`'s."""
        fd = self.lock if path == self.path else None
        if fd is not None:
            self.lock = None
        return fd

    def release(self) -> None:
        """Give back the lock the start did not take."""
        if self.lock is not None:
            datadir.unlock(self.lock)
            self.lock = None


def _options(argv: Sequence[str]) -> dict[str, str]:
    """The options of a command line in the forms argparse reads the same way (`--opt VALUE`,
    `--opt=VALUE`, the switches); anything else (an abbreviation, `-f`, `--help`, a value
    that looks like an option) is left to argparse."""
    found: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg in _SWITCHES:
            continue
        name, eq, value = arg.partition("=")
        if name not in _OPTIONS:
            raise _Unsure(arg)
        if not eq:
            if i == len(argv):
                raise _Unsure(arg)
            value = argv[i]
            i += 1
        if value.startswith("-"):
            raise _Unsure(arg)
        found[name] = value  # argparse keeps the last
    return found


def _setting(path: tuple[str, ...], options: Mapping[str, str], env: Mapping[str, str],
             document: Mapping[str, Any] | None) -> Any:
    """One setting as `pyggy.config.load_config` and `pyggy.cli.apply_flags` resolve it:
    the default < the config file < `IGGY_<PATH>` < the command line."""
    kind, value = DEFAULTS[path]
    for option, target in _OPTIONS.items():
        if target == path and option in options:
            return options[option]
    text = env.get("IGGY_" + "_".join(path).upper())
    if text is not None:
        if kind == "str":
            return text
        if kind == "bool":
            word = text.strip().lower()
            if word not in _TRUE and word not in _FALSE:
                raise _Unsure(path)
            return word in _TRUE
        try:
            return int(text.strip().replace("_", ""))
        except ValueError:
            raise _Unsure(path) from None
    table: Any = document
    for part in path:
        if table is None:
            return value
        if not isinstance(table, dict):
            raise _Unsure(path)
        table = table.get(part)
    if table is None:
        return value
    if kind == "int" and type(table) is not int or kind == "bool" and type(table) is not bool \
            or kind == "str" and type(table) is not str:
        raise _Unsure(path)
    return table


def split_address(address: str) -> tuple[str, int]:
    """`pyggy.config.split_address` without its errors' text (an invalid address: _Unsure)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise _Unsure(address)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise _Unsure(address)
    return host, int(port)


def _single_process(get: Any, env: Mapping[str, str]) -> bool:
    """Not a cluster replica, not a shard, and one process (pyggy.config.shard_count)."""
    if get(("cluster", "enabled")) or env.get("PYGGY_SHARD"):
        return False
    shards = get(("system", "sharding", "shards"))
    if shards == 0:
        return get(("data_maintenance", "archiver", "enabled")) or (os.cpu_count() or 1) <= 2
    return shards == 1


def open_early(argv: Sequence[str], env: Mapping[str, str]) -> Early | None:
    """Lock the data directory and open the doors' sockets from the few settings that name
    them, before the configuration is read in full; None when nothing was done (a value not
    judged here, a cluster replica or a sharded server, `--fresh`, the directory held by
    another process): the start then locks and binds after reading it, as before."""
    try:
        options = _options(argv)
        path = options.get("--config") or env.get("IGGY_CONFIG_PATH") or None
        document = None
        if path is not None:
            import tomllib  # read once: load_config takes the document from here

            try:
                with open(path, "rb") as fh:
                    document = tomllib.load(fh)
            except (OSError, ValueError):  # reported by load_config, in its words
                return None

        def get(key: tuple[str, ...]) -> Any:
            return _setting(key, options, env, document)

        if not _single_process(get, env):
            return None
        doors = [(door, split_address(get((door, "address"))))
                 for door in ("tcp", "kafka") if get((door, "enabled"))]
        data = get(("system", "path"))
        if not data:
            return None
    except _Unsure:
        return None
    lock = None
    if os.path.isdir(data):  # else a first start: nothing there to protect yet
        try:
            lock = datadir.lock(data)
        except (datadir.DataDirBusy, OSError):  # reported by the start, as before
            return None
    for door, (host, port) in doors:
        listen(door, host, port)
    return Early(data, lock, path, document)
