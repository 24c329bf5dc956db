"""Wiring of the archiver from the config: the archiver (disk or S3), the tiered store whose
factory the engine takes as `remote`, and the background service.

Importing this module is cheap: `pyggy.archiver` (and boto3 for S3) is imported only when
`setup` finds the archiver enabled, so a server without one never loads it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pyggy.config import ServerConfig

if TYPE_CHECKING:
    from pyggy.archiver.base import Archiver
    from pyggy.archiver.service import ArchiverService, BackgroundTelemetry
    from pyggy.archiver.tiered import TieredPartition
    from pyggy.core.engine import LogEngine
    from pyggy.core.model import Partition, Topic

log = logging.getLogger(__name__)

STORE_DIR = "archiver"  # under [system] path: pending deletions, last state snapshot


def make_archiver(config: ServerConfig) -> Archiver:
    a = config.data_maintenance.archiver
    if a.kind == "s3":
        from pyggy.archiver.s3 import S3Archiver

        s3 = a.s3
        return S3Archiver(bucket=s3.bucket, endpoint=s3.endpoint, region=s3.region,
                          key_id=s3.key_id, key_secret=s3.key_secret)
    from pyggy.archiver.disk import DiskArchiver

    return DiskArchiver(a.disk.path)


class Archiving:
    """The archiver of one server: `remote` goes to the engine, `start` after it opened."""

    def __init__(self, config: ServerConfig, archiver: Archiver | None = None) -> None:
        from pyggy.archiver.service import ServiceSettings
        from pyggy.archiver.tiered import TieredStore

        dm = config.data_maintenance
        self.store = TieredStore(archiver or make_archiver(config),
                                 Path(config.system.path) / STORE_DIR, dm.archiver.cache_size)
        staging = (Path(dm.archiver.s3.tmp_upload_dir) if dm.archiver.kind == "s3"
                   else Path(config.system.path) / STORE_DIR / "tmp")
        self.settings = ServiceSettings(
            messages=dm.messages.archiver_enabled, state=dm.state.archiver_enabled,
            state_overwrite=dm.state.overwrite, state_interval=dm.state.interval,
            interval=dm.messages.interval, staging_dir=staging,
            max_backoff=min(30.0, max(1.0, dm.messages.interval)))
        self.service: ArchiverService | None = None

    @property
    def remote(self) -> Callable[[Topic, Partition, Path], TieredPartition]:
        return self.store.remote_for

    def start(self, engine: LogEngine,
              telemetry: BackgroundTelemetry | None = None) -> asyncio.Task[None]:
        from pyggy.archiver.service import ArchiverService

        self.service = ArchiverService(engine, self.store, self.settings)
        self.service.telemetry = telemetry  # pyggy.telemetry.Telemetry: a span per pass
        return asyncio.get_running_loop().create_task(self.service.run())

    def close(self) -> None:
        if self.service is not None:
            self.service.close()
        else:
            self.store.close()


def setup(config: ServerConfig) -> Archiving | None:
    """The server's archiving, or None when `[data_maintenance.archiver] enabled` is false."""
    dm = config.data_maintenance
    if not dm.archiver.enabled:
        if dm.messages.archiver_enabled or dm.state.archiver_enabled:
            log.warning("archiver_enabled is set, but [data_maintenance.archiver] enabled is "
                        "false: nothing is archived")
        return None
    if not (dm.messages.archiver_enabled or dm.state.archiver_enabled):
        log.warning("[data_maintenance.archiver] is enabled, but neither [data_maintenance."
                    "messages] nor [data_maintenance.state] archiver_enabled is: nothing new "
                    "is archived (archived segments stay readable)")
    return Archiving(config)
