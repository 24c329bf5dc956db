"""Object keys of the archive: a tree a person can browse (`aws s3 ls`, `mc ls`, `ls -R`).

    streams/<stream name>/topics/<topic name>/partitions/<partition id>/<start offset>.log
    streams/<stream name>/topics/<topic name>/partitions/<partition id>/<start offset>.index
    state/state.log                              ([data_maintenance.state] overwrite = true)
    state/<UTC time, 20250101T120000Z>/state.log  (overwrite = false: one snapshot per change)

Start offsets are zero-padded to 20 digits, as the segment files on local disk are, so keys sort
in offset order. Names are percent-encoded (RFC 3986 unreserved characters stay as they are), so
every name maps to exactly one path component. The key of each archived segment is recorded in
the partition's manifest when it is uploaded, so a renamed stream or topic keeps reading its
older segments from where they were written; new segments go under the new name.
"""

from __future__ import annotations

from urllib.parse import quote, unquote

STATE_PREFIX = "state/"
STATE_KEY = "state/state.log"


def component(name: str) -> str:
    """A name as one path component (never "", "." or "..")."""
    text = quote(name, safe="")
    return text.replace(".", "%2E") if text.strip(".") == "" else text


def partition_prefix(stream: str, topic: str, partition_id: int) -> str:
    return (f"streams/{component(stream)}/topics/{component(topic)}/partitions/"
            f"{partition_id}/")


def segment_keys(stream: str, topic: str, partition_id: int, start_offset: int
                 ) -> tuple[str, str]:
    """(log key, index key) of a segment."""
    base = f"{partition_prefix(stream, topic, partition_id)}{start_offset:020}"
    return base + ".log", base + ".index"


def state_key(overwrite: bool, stamp: str) -> str:
    return STATE_KEY if overwrite else f"{STATE_PREFIX}{stamp}/state.log"


def parse_segment_key(key: str) -> tuple[str, str, int, int, str] | None:
    """(stream, topic, partition id, start offset, "log"|"index") of a segment key, else None."""
    parts = key.split("/")
    if (len(parts) != 7 or parts[0] != "streams" or parts[2] != "topics"
            or parts[4] != "partitions" or not parts[5].isdigit()):
        return None
    stem, _, ext = parts[6].rpartition(".")
    if ext not in ("log", "index") or not stem.isdigit():
        return None
    return unquote(parts[1]), unquote(parts[3]), int(parts[5]), int(stem), ext
