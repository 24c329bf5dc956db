"""Entry point of a shard process other than 0 (started by `runtime.ShardRuntime.spawn` with
the parent's command-line arguments): the same configuration, but no data-directory lock
(shard 0 holds it for the whole server), no --fresh, no HTTP door, and the ports shard 0
bound (`PYGGY_SHARD_PORTS`)."""

from __future__ import annotations

import logging
import os
import sys

from pyggy import cli
from pyggy.config import load_config, validate

SHARD_ENV = "PYGGY_SHARD"  # "<index>/<count>/<socket directory>/<tcp port>/<kafka port>"


def main() -> int:
    args = cli.build_parser().parse_args(sys.argv[1:])
    index = os.environ[SHARD_ENV].split("/", 1)[0]
    logging.basicConfig(level=cli.log_level(args.log_level or "info"), stream=sys.stderr,
                        format=cli.LOG_FORMAT.replace("%(name)s", f"shard{index} %(name)s"))
    config = load_config(args.config, os.environ)
    cli.apply_flags(config, args)
    validate(config)
    logging.getLogger().setLevel(cli.log_level(config.system.logging.level))
    config.http.enabled = False  # the HTTP door is shard 0's
    cli.install_uvloop()
    from pyggy import server

    server.run(config, None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
