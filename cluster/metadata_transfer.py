"""State transfer of the metadata group: a checkpoint of the state log and the consumer-state
stores, fetched from a peer, verified, staged, and installed when the node next starts.

The metadata group's state is not the state log alone: the `STATE` ops change stores that are
not in it (Iggy consumer offsets per partition, Kafka committed group offsets, the producer-id
mark). A replica behind every peer's journal needs all of them at one op: an old producer-id
mark would let it, as primary, grant a block already handed out. The bundle is those files as
the serving peer holds them at its executed op `op`, never older than the checkpoint the
fetcher was sent (`RangeEvicted`). `snapshot` takes it in one step of the serving event loop
(so at one state) without reading the state log: its two copies are append-only while the
server runs, so a hard link (under `<data>/cluster/metadata-serve/`) and their size now stand
for their bytes at `op`; the other files (small, overwritten in place) are read at once, at
most `SMALL_MAX` bytes. The manifest's checksums (`describe`) and every chunk are then read on a
thread; until the manifest is ready the peer answers BUILDING and the fetcher asks again:

- **Manifest** (JSON, `Manifest`): `op`, each file's relative path, size and CRC-32C, the chunk
  size and each chunk's CRC-32C. Paths are checked against the few places these stores live
  (`allowed`), so a manifest cannot name a file elsewhere.
- **Chunks**: `REQUEST_SEGMENT`/`SEGMENT_CHUNK` of the metadata group (`segment` = 0 asks for
  the manifest, else the manifest's op; `entry` = the chunk). Each chunk is checked against the
  manifest before it is kept; a refused chunk, a GONE or a timeout starts over from the next
  peer (a peer's bundle is its own state).
- **Staging**: each verified chunk is written at once into its files under
  `<data>/cluster/metadata-xfer/files/` (nothing is held in memory); once all arrived, a thread
  checks each file's CRC-32C (computed as the chunks came), fsyncs the files and directories,
  then renames the manifest into place as `ready.json` (fsynced): the staged checkpoint is
  complete.
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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pyggy.consensus.message import Command, Message
from pyggy.core.crc import crc32c
from pyggy.core.lost_found import LostAndFound
from pyggy.core.small_file import sync_dir

log = logging.getLogger(__name__)
STAGING = "metadata-xfer"  # under <data>/cluster/
READY = "ready.json"
INSTALLED = "metadata-installed"  # under <data>/cluster/: the op the installed state reached
SERVING = "metadata-serve"  # under <data>/cluster/: hard links of the bundle being served
GONE = 1  # SEGMENT_CHUNK flags (as a partition's): this peer cannot serve it
MANIFEST = 2  # SEGMENT_CHUNK flags: the body is the manifest
BUILDING = 4  # SEGMENT_CHUNK flags: the manifest is being computed; ask again
SMALL_MAX = 64 << 20  # bytes of the small files of a bundle (read at once, held in memory)
FILES_MAX = 1 << 20
BUILDING_MAX = 600  # BUILDING answers a fetch accepts from one peer before giving up on it
# where the stores the metadata group changes live, relative to the data directory
_ALLOWED = re.compile(
    r"state/[^/]+"
    r"|kafka/producer_ids(\.copy)?"
    r"|kafka/offsets/[^/]+"
    r"|streams/\d+/topics/\d+/partitions/\d+/offsets/[^/]+/[^/]+")
# the state log and its mirror: appended to, never rewritten below their size while running
# (core/metadata/state_log.py)
_APPEND_ONLY = re.compile(r"state/state\.log(\.copy)?")


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
        if chunk == 0 or len(chunks) != -(-m.size // chunk):
            raise ValueError("metadata manifest: sizes do not add up")
        return m


@dataclass(frozen=True, slots=True)
class Source:
    """One file of a bundle as it was at the bundle's op: its bytes (a small file, read at
    once), or `size` bytes of a hard link to an append-only file (read later, off the loop)."""

    rel: str
    size: int
    data: bytes | None = None
    link: Path | None = None

    def read(self, start: int, end: int) -> bytes:
        if self.data is not None:
            return self.data[start:end]
        assert self.link is not None
        with open(self.link, "rb") as f:
            f.seek(start)
            got = f.read(end - start)
        if len(got) != end - start:
            raise OSError(f"{self.rel}: {len(got)} of {end - start} bytes at {start}")
        return got


@dataclass(slots=True)
class Bundle:
    """The metadata state at one op: what `snapshot` took, and its manifest (`describe`)."""

    op: int
    sources: tuple[Source, ...]
    chunk_size: int
    link_dir: Path | None = None  # the hard links (removed by `close`)
    manifest: Manifest | None = None

    @property
    def size(self) -> int:
        return sum(src.size for src in self.sources)

    def _pieces(self, start: int, end: int) -> Iterator[tuple[int, bytes]]:
        """(source index, bytes) covering bytes [start, end) of the files concatenated."""
        pos = 0
        for i, src in enumerate(self.sources):
            lo, hi = max(start, pos), min(end, pos + src.size)
            if lo < hi:
                yield i, src.read(lo - pos, hi - pos)
            pos += src.size
            if pos >= end:
                return

    def chunk(self, i: int) -> bytes:
        """Chunk `i` of the files concatenated (blocking: a thread's work for large files)."""
        c = self.chunk_size
        return b"".join(piece for _, piece in self._pieces(i * c, min((i + 1) * c, self.size)))

    def describe(self) -> Manifest:
        """Read every byte once for the CRC-32C of each file and each chunk (blocking)."""
        c = self.chunk_size
        files = [0] * len(self.sources)
        chunks = []
        for start in range(0, self.size, c):
            crc = 0
            for i, piece in self._pieces(start, min(start + c, self.size)):
                files[i] = crc32c(piece, files[i])
                crc = crc32c(piece, crc)
            chunks.append(crc)
        self.manifest = Manifest(self.op, tuple((src.rel, src.size, crc) for src, crc in
                                                zip(self.sources, files, strict=True)),
                                 c, tuple(chunks))
        return self.manifest

    def close(self) -> None:
        if self.link_dir is not None:
            shutil.rmtree(self.link_dir, ignore_errors=True)


def snapshot(root: Path, op: int, chunk: int, links: Path | None = None) -> Bundle:
    """The metadata state files of `root` as they are now (at executed op `op`), taken in one
    step of the event loop: the state log's copies (append-only: bytes below their size now
    never change) as hard links under `links` and their size, the other files (small,
    overwritten in place) read. ValueError when those exceed SMALL_MAX."""
    sources, small = [], 0
    if links is not None:
        shutil.rmtree(links, ignore_errors=True)
    for rel in state_files(root):
        path = Path(root) / rel
        try:
            if links is not None and _APPEND_ONLY.fullmatch(rel):
                link = links / rel
                link.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(path, link)
                except FileNotFoundError:
                    raise
                except OSError as e:  # a file system without hard links: read it now
                    log.warning("metadata transfer: cannot link %s (%s); reading it", rel, e)
                else:
                    sources.append(Source(rel, link.stat().st_size, link=link))
                    continue
            data = path.read_bytes()
        except FileNotFoundError:
            continue
        small += len(data)
        if small > SMALL_MAX:
            raise ValueError(f"the metadata state's small files exceed {SMALL_MAX} bytes")
        sources.append(Source(rel, len(data), data=data))
    return Bundle(op, tuple(sources), chunk, links)


def build(root: Path, op: int, chunk: int) -> Bundle:
    """`snapshot` (every file read at once) and `describe` in one call."""
    bundle = snapshot(root, op, chunk)
    bundle.describe()
    return bundle


def serve(bundle: Bundle | None, m: Message) -> tuple[int, bytes]:
    """(flags, body) answering a REQUEST_SEGMENT for a chunk of `bundle` (blocking)."""
    mf = None if bundle is None else bundle.manifest
    if bundle is None or mf is None or m.segment != mf.op or m.entry >= len(mf.chunks):
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
    stage it under `<cluster root>/metadata-xfer/`: each verified chunk is written to its
    files at once (nothing is held in memory); once all arrived (`complete`), `stage`
    (blocking: run it off the loop) checks each file's CRC-32C and makes the files durable."""

    ATTEMPTS_PER_PEER = 3

    def __init__(self, cluster_root: Path, group: int, checkpoint_op: int,
                 peers: list[int]) -> None:
        self.group, self.checkpoint_op, self.peers = group, checkpoint_op, peers
        self.dir = Path(cluster_root) / STAGING
        shutil.rmtree(self.dir, ignore_errors=True)  # an unfinished fetch (nothing installed)
        self.peer = 0
        self.failures = 0
        self.refused = 0
        self.building = 0  # BUILDING answers from the current peer
        self.manifest: Manifest | None = None
        self.crcs: list[int] = []  # each file's CRC-32C over the bytes received so far
        self.received = 0  # bytes received and written
        self.next = 0  # the next chunk
        self.complete = False  # every chunk received and written: `stage` next
        self.ask_again = False  # the peer answered BUILDING: ask again at the deadline
        self.done = False  # staged: `ready.json` durable

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
        return (not self.complete and m.replica == self.target
                and m.checkpoint_op == self.checkpoint_op
                and (bool(m.flags & GONE) or (m.segment == want and m.entry == self.next)
                     or (self.manifest is None and bool(m.flags & (MANIFEST | BUILDING)))))

    def failed(self) -> bool:
        """Count a failure and start over from the next peer; True when every peer failed
        `ATTEMPTS_PER_PEER` times in a row: give up."""
        self.failures += 1
        self.peer += 1
        self.manifest, self.crcs, self.received, self.next = None, [], 0, 0
        self.building, self.complete, self.ask_again = 0, False, False
        shutil.rmtree(self.dir / "files", ignore_errors=True)
        return self.failures >= self.ATTEMPTS_PER_PEER * len(self.peers)

    def on_chunk(self, m: Message) -> bool:
        """Verify and keep one answer (raise Refused, keeping nothing, if it does not hold;
        OSError if it cannot be written). False: the peer is still building the manifest
        (ask again later)."""
        if m.flags & GONE:
            raise Refused(f"replica {m.replica} cannot serve the metadata state")
        if self.manifest is None:
            if m.flags & BUILDING and not m.flags & MANIFEST:
                self.building += 1
                if self.building > BUILDING_MAX:
                    raise Refused(f"replica {m.replica} is still building the manifest")
                self.ask_again = True
                return False
            if not m.flags & MANIFEST:
                raise Refused("expected the manifest")
            try:
                manifest = Manifest.decode(m.body)
            except ValueError as e:
                raise Refused(str(e)) from None
            if manifest.op < self.checkpoint_op:
                raise Refused(f"the bundle's op {manifest.op} is below the checkpoint "
                              f"{self.checkpoint_op}")
            self.manifest, self.crcs = manifest, [0] * len(manifest.files)
        else:
            mf = self.manifest
            want = min(mf.chunk, mf.size - self.next * mf.chunk)
            if len(m.body) != want or crc32c(m.body) != mf.chunks[self.next]:
                raise Refused(f"chunk {self.next} fails its checksum or size")
            self._write(m.body)
            self.next += 1
        self.failures = 0
        if self.next == len(self.manifest.chunks):
            self.complete = True
        return True

    def _write(self, data: bytes) -> None:
        """Write verified bytes at `received` into the staged files they belong to."""
        mf = self.manifest
        assert mf is not None
        pos, end, view = 0, self.received + len(data), memoryview(data)
        for i, (rel, size, _) in enumerate(mf.files):
            lo, hi = max(self.received, pos), min(end, pos + size)
            if lo < hi:
                path = self.dir / "files" / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                piece = view[lo - self.received:hi - self.received]
                fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
                try:
                    done = 0
                    while done < len(piece):
                        done += os.pwrite(fd, piece[done:], lo - pos + done)
                finally:
                    os.close(fd)
                self.crcs[i] = crc32c(piece, self.crcs[i])
            pos += size
            if pos > end:
                break
        self.received = end

    def stage(self) -> None:
        """Check each file whole, make every file and directory durable, then `ready.json`
        (blocking)."""
        mf = self.manifest
        assert mf is not None and self.complete
        files = self.dir / "files"
        dirs: set[Path] = {self.dir}
        for (rel, size, crc), got in zip(mf.files, self.crcs, strict=True):
            if got != crc:
                raise Refused(f"{rel} fails its checksum")
            path = files / rel
            path.parent.mkdir(parents=True, exist_ok=True)  # an empty file gets no chunk
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                if os.fstat(fd).st_size != size:
                    raise Refused(f"{rel}: {os.fstat(fd).st_size} bytes staged, not {size}")
                os.fsync(fd)
            finally:
                os.close(fd)
            dirs.update(p for p in path.parents if p.is_relative_to(self.dir))
        for d in sorted(dirs, key=lambda p: -len(p.parts)):
            sync_dir(d)
        tmp = self.dir / (READY + ".tmp")
        _write_durable(tmp, mf.encode())
        os.replace(tmp, self.dir / READY)
        sync_dir(self.dir)
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
