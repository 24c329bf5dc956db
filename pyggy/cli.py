"""`pyggy-server` command line: load config, set up logging and uvloop, run the server.

The start is ordered for time to first connection (BENCHMARKS.md, start-up): the doors'
sockets listen (pyggy/prebind.py `open_early`) as soon as the few settings that name them are
read and the data directory locked, before this module imports argparse, logging and the
config schema; then the whole config is read and checked (its errors reported as before, the
early sockets closed), and the server's modules imported. The garbage collector is off from
then until the server is ready (`pyggy.server.serve` freezes what the start built
and turns it back on), except on a cluster replica, whose start may wait for its peers.

Exit codes: 0 after a clean shutdown, 1 when the first start cannot store its metadata (full
disk), 2 for a configuration error, 3 when the server refuses to start on damaged metadata (the
error names the file and the ways out), 130 on a second Ctrl-C.
"""

from __future__ import annotations

import gc
import os
import sys

from pyggy import datadir, prebind

TYPE_CHECKING = False
if TYPE_CHECKING:  # the annotations only: argparse, logging and the config schema are
    # imported once the ports listen (`main`, pyggy/prebind.py)
    import argparse
    import logging
    from collections.abc import Mapping, Sequence

    from pyggy.config import ServerConfig

DEFAULT_ROOT_CREDENTIALS = ("iggy", "iggy")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_LEVELS = {"trace": 10, "warn": 30}  # logging.DEBUG, logging.WARNING


def build_parser() -> argparse.ArgumentParser:
    import argparse

    p = argparse.ArgumentParser(
        prog="pyggy-server",
        description="pyggy: an Iggy-style message streaming server (Iggy and Kafka protocols).",
        epilog="Every config key can also be set as IGGY_<SECTION>_<KEY>, e.g. IGGY_TCP_ADDRESS.",
    )
    p.add_argument("--config", metavar="PATH", help="TOML config file (default: $IGGY_CONFIG_PATH)")
    p.add_argument(
        "--with-default-root-credentials",
        action="store_true",
        help="create the root user as iggy/iggy (instead of $IGGY_ROOT_USERNAME/PASSWORD "
        "or a random password printed once)",
    )
    p.add_argument("-f", "--fresh", action="store_true", help="delete the data directory first")
    p.add_argument(
        "--repair-state",
        action="store_true",
        help="if both copies of the state log are damaged at one entry, keep the entries "
        "before it and move the damaged files (and the streams only they described) to "
        "<data>/lost+found/ instead of refusing to start",
    )
    p.add_argument("--tcp-address", metavar="HOST:PORT", help="Iggy TCP listener [tcp] address")
    p.add_argument("--kafka-address", metavar="HOST:PORT", help="Kafka listener [kafka] address")
    p.add_argument("--data-path", metavar="DIR", help="data directory [system] path")
    p.add_argument("--replica-id", metavar="N", type=int,
                   help="which [[cluster.nodes]] entry this process is ([cluster] replica_id)")
    p.add_argument(
        "--log-level",
        choices=("trace", "debug", "info", "warn", "warning", "error"),
        help="log level (default: [system.logging] level, info)",
    )
    return p


def root_credentials(
    with_defaults: bool, env: Mapping[str, str]
) -> tuple[str, str] | None:
    """Flag → iggy/iggy; else both IGGY_ROOT_USERNAME and IGGY_ROOT_PASSWORD; else None.

    None means: the server generates a random root password on first start and prints it once.
    """
    if with_defaults:
        return DEFAULT_ROOT_CREDENTIALS
    username = env.get("IGGY_ROOT_USERNAME")
    password = env.get("IGGY_ROOT_PASSWORD")
    if username and password:
        return username, password
    if username or password:
        from pyggy.config import ConfigError

        raise ConfigError("set both IGGY_ROOT_USERNAME and IGGY_ROOT_PASSWORD, or neither")
    return None


def apply_flags(config: ServerConfig, args: argparse.Namespace) -> None:
    """CLI flags override file and environment."""
    from pyggy.config import set_value

    for flag, path in (
        (args.tcp_address, ("tcp", "address")),
        (args.kafka_address, ("kafka", "address")),
        (args.data_path, ("system", "path")),
        (args.log_level, ("system", "logging", "level")),
        (args.replica_id, ("cluster", "replica_id")),
    ):
        if flag is not None:
            set_value(config, path, flag)


def log_level(name: str) -> int:
    import logging

    name = name.lower()
    return _LEVELS.get(name) or logging.getLevelNamesMapping()[name.upper()]


def wipe_data(path: str) -> None:
    """`--fresh`: delete the data directory (refusing obviously wrong targets)."""
    from pathlib import Path

    from pyggy.config import ConfigError

    target = Path(path).resolve()
    if target in (Path(target.anchor), Path.home().resolve(), Path.cwd().resolve()):
        raise ConfigError(f"--fresh refuses to delete {target}")
    if target.exists():
        import shutil

        _log().warning("--fresh: deleting data directory %s", target)
        shutil.rmtree(target)


def _version() -> str:
    # not importlib.metadata: importing it costs ~50 ms of a ~350 ms cold start
    from pyggy import __version__

    return __version__


def listen_early(config: ServerConfig, env: Mapping[str, str]) -> list[str]:
    """Open the native TCP and Kafka doors' listening sockets now (pyggy/prebind.py), for a
    single-process server; "door host:port" of each opened. A sharded server binds its ports
    with SO_REUSEPORT in every shard, and a cluster replica opens its doors once it has
    joined: those bind when their listeners start, as before. What `prebind.open_early`
    opened from its reading of the same settings is kept where this configuration agrees
    and closed where it does not."""
    from pyggy.config import shard_count, split_address

    if config.cluster.enabled or shard_count(config) > 1 or env.get("PYGGY_SHARD"):
        prebind.close_all()
        return []
    opened = []
    for name, section in (("tcp", config.tcp), ("kafka", config.kafka)):
        if not section.enabled:
            prebind.close(name)
            continue
        host, port = split_address(section.address)
        bound = prebind.listen(name, host, port)
        if bound is not None:
            opened.append(f"{name} {host}:{bound}")
    return opened


def install_uvloop() -> None:
    import asyncio

    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; stay usable without it
        _log().warning("uvloop not available; using the default asyncio event loop")
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _log() -> logging.Logger:
    import logging

    return logging.getLogger("pyggy")


def main(argv: Sequence[str] | None = None) -> int:
    early = None
    try:
        # the ports first (pyggy/prebind.py): before argparse, logging and the config schema
        # are imported, from the few settings that name them
        early = prebind.open_early(sys.argv[1:] if argv is None else argv, os.environ)
        return _main(argv, early)
    finally:
        prebind.close_all()  # the sockets of doors that never started
        if early is not None:
            early.release()  # the lock, if the start did not take it
        gc.enable()  # if the server did not start (it turns it on once it has)


def _main(argv: Sequence[str] | None, early: prebind.Early | None = None) -> int:
    import logging
    from pathlib import Path

    from pyggy.config import ConfigError, config_path, load_config, validate
    from pyggy.logtail import LOG_TAIL

    log = _log()
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=log_level(args.log_level or "info"), format=LOG_FORMAT, stream=sys.stderr
    )
    LOG_TAIL.setFormatter(logging.Formatter(LOG_FORMAT))  # recent lines, for `iggy snapshot`
    logging.getLogger().addHandler(LOG_TAIL)
    env = os.environ
    try:
        document = None
        if early is not None and early.config_path == config_path(args.config, env):
            document = early.document  # the file, read once
        config = load_config(args.config, env, document=document)
        apply_flags(config, args)
        validate(config)
        credentials = root_credentials(args.with_default_root_credentials, env)
        # the lock open_early took (never with --fresh: it reads no -f), else as before
        data_lock = None if early is None else early.take_lock(config.system.path)
        if data_lock is None:
            if early is not None:
                early.release()
            datadir.unlock(datadir.lock(config.system.path))  # refuse before deleting anything
            if args.fresh:
                wipe_data(config.system.path)
            data_lock = datadir.lock(config.system.path)  # held until the process ends
    except ConfigError as e:
        log.error("configuration error: %s", e)
        return 2
    except datadir.DataDirBusy as e:
        log.error("%s", e)
        return 2
    opened = listen_early(config, env)
    if not config.cluster.enabled:  # a replica may wait for its peers: it collects as usual
        gc.disable()  # for the start: its objects live on (server.serve turns it on again)
    # a first start hashes the root password in a thread from here on, while the server's
    # modules are imported and the data directory opened (core/auth.py RootUser)
    from pyggy.core.auth import RootUser

    root = RootUser(credentials)
    if datadir.is_new(config.system.path):
        root.start()
    logging.getLogger().setLevel(log_level(config.system.logging.level))
    log.info(
        "pyggy %s starting: config %s, data in %s",
        _version(), config_path(args.config, env) or "(defaults)",
        Path(config.system.path).resolve(),
    )
    if opened:  # connections wait in the backlog until the doors serve ("... listening on")
        log.info("ports open (connections wait until their door serves): %s", ", ".join(opened))
    install_uvloop()

    from pyggy import server
    from pyggy.core.errors import IggyError
    from pyggy.core.small_file import CorruptFile

    restart = ""
    try:
        restart = server.run(config, root, repair_state=args.repair_state)
    except ConfigError as e:  # found while starting, e.g. an unreadable TLS certificate
        log.error("configuration error: %s", e)
        return 2
    except KeyboardInterrupt:  # a second Ctrl-C while shutting down
        return 130
    except CorruptFile as e:  # damaged beyond repair: say what and how out, no traceback
        log.error("refusing to start: %s", e)
        return 3
    except IggyError as e:  # e.g. the root user cannot be stored on a full disk
        log.error("cannot start: %s", e)
        return 1
    finally:
        datadir.unlock(data_lock)
    if restart:
        _restart(restart)
    return 0


def _restart(why: str) -> None:
    """Start this server again in this process (same pid, same arguments but `--fresh`):
    the cluster asks it to install a fetched metadata checkpoint (docs/cluster.md)."""
    import logging

    argv = [a for a in sys.orig_argv if a not in ("-f", "--fresh")]
    _log().warning("restarting the server: %s", why)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
