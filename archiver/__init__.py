"""Archiving and tiered storage (disk or S3): see README "Archiving and tiered storage".

- `base`: the `Archiver` protocol (`init`, `is_archived`, `archive`, `read_range`, `read_all`,
  `delete`, `list`), `Source`, `ArchiverError`;
- `disk.DiskArchiver`, `s3.S3Archiver` (boto3), `faulty.FaultyArchiver` (fault injection for
  tests);
- `layout`: the browsable object keys;
- `tiered`: per-partition manifests and archived reads through a bounded cache
  (`TieredPartition` is core's `RemoteSegments`);
- `service.ArchiverService`: the background task that archives, offloads and deletes.
"""

from pyggy.archiver.base import Archiver, ArchiverError, ChecksumMismatch, Source, Stored
from pyggy.archiver.disk import DiskArchiver
from pyggy.archiver.faulty import FaultyArchiver
from pyggy.archiver.s3 import S3Archiver

__all__ = ["Archiver", "ArchiverError", "ChecksumMismatch", "DiskArchiver", "FaultyArchiver",
           "S3Archiver", "Source", "Stored"]
