"""State transfer of the metadata group: a checkpoint of the state log and the consumer-state
stores, fetched from a peer, verified, staged, and installed when the node next starts.

The metadata group's state is not the state log alone: the `STATE` ops change stores that are
not in it (Iggy consumer offsets per partition, Kafka committed group offsets, the producer-id
mark). A replica behind every peer's journal needs all of them at one op: an old producer-id
mark would let it, as primary, grant a block already handed out. The bundle is those files as
the serving peer holds them at its executed op `op` (read in one step of its event loop, so one
state), never older than the checkpoint the fetcher was sent (`RangeEvicted`):

- **Manifest** (JSON, `Manifest`): `op`, each file's relative path, size and CRC-32C, the chunk
  size and each chunk's CRC-32C. Paths are checked against the few places these stores live
  (`allowed`), so a manifest cannot name a file elsewhere.
- **Chunks**: `REQUEST_SEGMENT`/`SEGMENT_CHUNK` of the metadata group (`segment` = 0 asks for
  the manifest, else the manifest's op; `entry` = the chunk). Each chunk is checked against the
  manifest before it is kept; a refused chunk, a GONE or a timeout starts over from the next
  peer (a peer's bundle is its own state).
- **Staging**: every file written under `<data>/cluster/metadata-xfer/files/`, fsynced, then the
  manifest renamed into place as `ready.json` (fsynced): the staged checkpoint is complete.
- **Install** (`install_pending`, when the node starts, before the engine opens): files of
  these stores the manifest does not name, and the live copy of each file it replaces, go to
  lost+found (never deleted); each staged file replaces the live one with one rename; the
  directories are fsynced; then `<data>/cluster/metadata-installed` records `op` (tmp, fsync,
  rename) and the staging directory goes. A crash at any point leaves `ready.json`, and the
  next start completes the install (each step is skipped once done).

Between staging and the restart the replica takes the consensus checkpoint it was sent (the
staged files cover it) and executes nothing (node.py). After the install the metadata machine
skips every op up to `op` (its effect is in the installed files): the replica repairs the ops
above its checkpoint from the journals and executes those above `op` only.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from crc32c import crc32c
from pyggy.consensus.message import Command, Message
from pyggy.core.lost_found import LostAndFound
from pyggy.core.small_file import sync_dir

log = logging.getLogger(__name__)
STAGING = "metadata-xfer"  # under <data>/cluster/
READY = "ready.json"
INSTALLED = "metadata-installed"  # under <data>/cluster/: the op the installed state reached
GONE = 1  # SEGMENT_CHUNK flags (as a partition's): this peer cannot serve it
MANIFEST = 2  # SEGMENT_CHUNK flags: the body is the manifest
BUNDLE_MAX = 64 << 20  # bytes of a bundle (held in memory by the peer serving it)
FILES_MAX = 1 << 20
# where the stores the metadata group changes live, relative to the data directory
_ALLOWED = re.compile(
    r"state/[^/]+"
    r"|kafka/producer_ids(\.copy)?"
    r"|kafka/offsets/[^/]+"
    r"|streams/\d+/topics/\d+/partitions/\d+/offsets/[^/]+/[^/]+")


def allowed(rel: str) -> bool:
    return (_ALLOWED.fullmatch(rel) is not None and ".." not in rel.split("/")
            and "lost+found" not in rel)


def state_files(root: Path) -> list[str]:
    """The files of the metadata group's state in the data directory `root`, relative."""
    root = Path(root)
    found: list[Path] = []
    found += (root / "state").glob("*")
    found += (root / "kafka").glob("producer_ids*")
    found += (root / "kafka" / "offsets").glob("*")
    found += root.glob("streams/*/topics/*/partitions/*/offsets/*/*")
    rels = sorted(p.relative_to(root).as_posix() for p in found if p.is_file())
    return [r for r in rels if allowed(r)]


@dataclass(frozen=True, slots=True)
class Manifest:
    op: int
    files: tuple[tuple[str, int, int], ...]  # path, size, CRC-32C
    chunk: int
    chunks: tuple[int, ...]  # CRC-32C of each chunk of the files' bytes, concatenated

    @property
    def size(self) -> int:
        return sum(f[1] for f in self.files)

    def encode(self) -> bytes:
        return json.dumps({"op": self.op, "files": self.files, "chunk": self.chunk,
                           "chunks": self.chunks}, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> Manifest:
        """Raise ValueError unless `data` is a well-formed manifest of allowed paths."""
        try:
            d = json.loads(data)
            op, chunk = d["op"], d["chunk"]
            files = tuple((str(p), s, c) for p, s, c in d["files"])
            chunks = tuple(d["chunks"])
        except (ValueError, KeyError, TypeError, RecursionError) as e:
            raise ValueError(f"malformed metadata manifest: {e!r}") from None
        ints = [op, chunk, *chunks, *(x for f in files for x in f[1:])]
        if not all(type(x) is int and 0 <= x < 1 << 64 for x in ints):
            raise ValueError("metadata manifest: a number out of range")
        if len(files) > FILES_MAX or not all(allowed(f[0]) for f in files) or \
                len({f[0] for f in files}) != len(files):
            raise ValueError("metadata manifest: a path outside the metadata stores")
        m = cls(op, files, chunk, chunks)
        if chunk == 0 or m.size > BUNDLE_MAX or len(chunks) != -(-m.size // chunk):
            raise ValueError("metadata manifest: sizes do not add up")
        return m


@dataclass(slots=True)
class Bundle:
    manifest: Manifest
    data: bytes

    def chunk(self, i: int) -> bytes:
        c = self.manifest.chunk
        return self.data[i * c:(i + 1) * c]


def build(root: Path, op: int, chunk: int) -> Bundle:
    """The bundle of the metadata state files of `root` as they are now (at executed op `op`).
    ValueError when it exceeds BUNDLE_MAX."""
    files, parts, size = [], [], 0
    for rel in state_files(root):
        try:
            data = (Path(root) / rel).read_bytes()
        except FileNotFoundError:
            continue
        size += len(data)
        if size > BUNDLE_MAX:
            raise ValueError(f"the metadata state exceeds {BUNDLE_MAX} bytes")
        files.append((rel, len(data), crc32c(data)))
        parts.append(data)
    blob = b"".join(parts)
    chunks = tuple(crc32c(blob[i:i + chunk]) for i in range(0, len(blob), chunk))
    return Bundle(Manifest(op, tuple(files), chunk, chunks), blob)


def serve(bundle: Bundle | None, m: Message) -> tuple[int, bytes]:
    """(flags, body) answering a REQUEST_SEGMENT for a chunk of `bundle`."""
    if bundle is None or m.segment != bundle.manifest.op or \
            m.entry >= len(bundle.manifest.chunks):
        return GONE, b""
    return 0, bundle.chunk(m.entry)


class Refused(ValueError):
    """A manifest or chunk that does not verify (kept nowhere)."""


def _write_durable(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


class MetadataFetch:
    """Fetch a peer's metadata bundle at an op ≥ `checkpoint_op`, one request in flight, and
    stage it under `<cluster root>/metadata-xfer/`."""

    ATTEMPTS_PER_PEER = 3

    def __init__(self, cluster_root: Path, group: int, checkpoint_op: int,
                 peers: list[int]) -> None:
        self.group, self.checkpoint_op, self.peers = group, checkpoint_op, peers
        self.dir = Path(cluster_root) / STAGING
        shutil.rmtree(self.dir, ignore_errors=True)  # an unfinished fetch (nothing installed)
        self.peer = 0
        self.failures = 0
        self.refused = 0
        self.manifest: Manifest | None = None
        self.data = bytearray()
        self.next = 0  # the next chunk
        self.done = False

    @property
    def target(self) -> int:
        return self.peers[self.peer % len(self.peers)]

    def request(self, cluster: bytes, view: int, replica: int) -> Message:
        m = self.manifest
        return Message(Command.REQUEST_SEGMENT, cluster=cluster, view=view, replica=replica,
                       group=self.group, checkpoint_op=self.checkpoint_op,
                       segment=0 if m is None else m.op, entry=self.next)

    def expects(self, m: Message) -> bool:
        want = 0 if self.manifest is None else self.manifest.op
        return (not self.done and m.replica == self.target
                and m.checkpoint_op == self.checkpoint_op
                and (bool(m.flags & GONE) or (m.segment == want and m.entry == self.next)
                     or (self.manifest is None and bool(m.flags & MANIFEST))))

    def failed(self) -> bool:
        """Count a failure and start over from the next peer; True when every peer failed
        `ATTEMPTS_PER_PEER` times in a row: give up."""
        self.failures += 1
        self.peer += 1
        self.manifest, self.data, self.next = None, bytearray(), 0
        return self.failures >= self.ATTEMPTS_PER_PEER * len(self.peers)

    def on_chunk(self, m: Message) -> None:
        """Verify and keep one answer (raise Refused, keeping nothing, if it does not hold)."""
        if m.flags & GONE:
            raise Refused(f"replica {m.replica} cannot serve the metadata state")
        if self.manifest is None:
            if not m.flags & MANIFEST:
                raise Refused("expected the manifest")
            try:
                manifest = Manifest.decode(m.body)
            except ValueError as e:
                raise Refused(str(e)) from None
            if manifest.op < self.checkpoint_op:
                raise Refused(f"the bundle's op {manifest.op} is below the checkpoint "
                              f"{self.checkpoint_op}")
            self.manifest = manifest
        else:
            mf = self.manifest
            want = min(mf.chunk, mf.size - self.next * mf.chunk)
            if len(m.body) != want or crc32c(m.body) != mf.chunks[self.next]:
                raise Refused(f"chunk {self.next} fails its checksum or size")
            self.data += m.body
            self.next += 1
        self.failures = 0
        if self.next == len(self.manifest.chunks):
            self._stage()

    def _stage(self) -> None:
        mf = self.manifest
        assert mf is not None
        pos, files = 0, self.dir / "files"
        for rel, size, crc in mf.files:  # chunks verified; each file again, whole
            data = bytes(self.data[pos:pos + size])
            pos += size
            if crc32c(data) != crc:
                raise Refused(f"{rel} fails its checksum")
        pos = 0
        dirs: set[Path] = set()
        for rel, size, _ in mf.files:
            path = files / rel
            _write_durable(path, bytes(self.data[pos:pos + size]))
            pos += size
            dirs.update(p for p in path.parents if p.is_relative_to(self.dir))
        for d in sorted(dirs, key=lambda p: -len(p.parts)):
            sync_dir(d)
        tmp = self.dir / (READY + ".tmp")
        _write_durable(tmp, mf.encode())
        os.replace(tmp, self.dir / READY)
        sync_dir(self.dir)
        self.data = bytearray()
        self.done = True

    def abandon(self) -> None:
        if not self.done:
            shutil.rmtree(self.dir, ignore_errors=True)


def installed_op(cluster_root: Path) -> int:
    """The op an installed metadata checkpoint reached (0: none)."""
    try:
        return int((Path(cluster_root) / INSTALLED).read_text())
    except FileNotFoundError:
        return 0


def install_pending(data_root: Path) -> int | None:
    """Install a staged metadata checkpoint, if one is complete (see the module docstring);
    drop an incomplete one. Returns the installed op, None when there was none."""
    root = Path(data_root)
    cluster = root / "cluster"
    staging = cluster / STAGING
    ready = staging / READY
    if not ready.exists():
        shutil.rmtree(staging, ignore_errors=True)
        return None
    mf = Manifest.decode(ready.read_bytes())
    why = f"replaced by the metadata checkpoint at op {mf.op} (state transfer)"
    lost = LostAndFound(root)
    named = {f[0] for f in mf.files}
    dirs: set[Path] = set()
    for rel in state_files(root):
        if rel not in named:
            dirs.add((root / rel).parent)
            lost.move(root / rel, f"not in the metadata checkpoint at op {mf.op}")
    for rel in sorted(named):
        staged, live = staging / "files" / rel, root / rel
        if not staged.exists():
            continue  # installed before a crash
        live.parent.mkdir(parents=True, exist_ok=True)
        if live.exists():
            lost.move(live, why)
        os.replace(staged, live)
        dirs.update(d for d in live.parents if d.is_relative_to(root))
    for d in sorted(dirs, key=lambda p: -len(p.parts)):
        if d.is_dir():
            sync_dir(d)
    tmp = cluster / (INSTALLED + ".tmp")
    _write_durable(tmp, str(mf.op).encode())
    os.replace(tmp, cluster / INSTALLED)
    sync_dir(cluster)
    shutil.rmtree(staging, ignore_errors=True)
    log.warning("cluster: installed the metadata checkpoint at op %d (%d files) fetched by "
                "state transfer", mf.op, len(mf.files))
    return mf.op
