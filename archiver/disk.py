"""DiskArchiver: the archive is a directory tree (`[data_maintenance.archiver.disk] path`)."""

from __future__ import annotations

import os
from pathlib import Path

from pyggy.archiver.base import ArchiverError, ChecksumMismatch, Source, Stored, sha256_fd
from pyggy.core.small_file import sync_dir

COPY_CHUNK = 4 << 20


class DiskArchiver:
    """Objects are files under `path` named by their key. A write goes to a temporary file,
    is fsynced and renamed into place, then read back and hashed: only a verified copy counts.
    """

    kind = "disk"

    def __init__(self, path: str | os.PathLike) -> None:
        self.root = Path(path).resolve()

    def describe(self) -> str:
        return f"directory {self.root}"

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise ArchiverError(f"archive key {key!r} escapes the archive directory")
        return path

    def init(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / ".pyggy-write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise ArchiverError(f"archive directory {self.root} is not writable: {e}",
                                permanent=True) from None

    def is_archived(self, key: str, sha256: str | None = None) -> bool:
        path = self._path(key)
        if not path.is_file():
            return False
        if sha256 is None:
            return True
        fd = os.open(path, os.O_RDONLY)
        try:
            return sha256_fd(fd, os.fstat(fd).st_size) == sha256
        finally:
            os.close(fd)

    def archive(self, key: str, source: Source) -> Stored:
        path = self._path(key)
        tmp = path.with_name(path.name + ".part")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                pos = 0
                while pos < source.size:
                    chunk = os.pread(source.fd, min(COPY_CHUNK, source.size - pos), pos)
                    if not chunk:
                        raise ArchiverError(f"source of {key} shorter than {source.size} bytes")
                    os.write(fd, chunk)
                    pos += len(chunk)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            sync_dir(path.parent)
            fd = os.open(path, os.O_RDONLY)
            try:
                size = os.fstat(fd).st_size
                digest = sha256_fd(fd, size)
            finally:
                os.close(fd)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise ArchiverError(f"cannot write {path}: {e}") from None
        if size != source.size or digest != source.sha256:
            raise ChecksumMismatch(f"{path}: stored {size} bytes sha256 {digest}, expected "
                                   f"{source.size} bytes sha256 {source.sha256}")
        return Stored(key, size, digest)

    def read_range(self, key: str, start: int, length: int) -> bytes:
        try:
            fd = os.open(self._path(key), os.O_RDONLY)
        except OSError as e:
            raise ArchiverError(f"cannot open archived {key}: {e}") from None
        try:
            data = os.pread(fd, length, start)
        finally:
            os.close(fd)
        if len(data) != length:
            raise ArchiverError(f"archived {key} is shorter than {start + length} bytes")
        return data

    def read_all(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except OSError as e:
            raise ArchiverError(f"cannot read archived {key}: {e}") from None

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            path = self._path(key)
            try:
                path.unlink(missing_ok=True)
            except OSError as e:
                raise ArchiverError(f"cannot delete {path}: {e}") from None
            # prune directories left empty, up to the archive root
            parent = path.parent
            while parent != self.root:
                try:
                    parent.rmdir()
                except OSError:
                    break
                parent = parent.parent

    def list(self, prefix: str) -> list[tuple[str, int]]:
        base = self._path(prefix) if prefix.strip("/") else self.root
        if not base.exists():
            return []
        out = []
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                if name.endswith(".part") or name.startswith(".pyggy-"):
                    continue
                p = Path(dirpath) / name
                key = p.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    out.append((key, p.stat().st_size))
        return sorted(out)
