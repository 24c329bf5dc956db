"""The log engine facade: the one object both wire packages call.

Metadata changes are appended to the (mirrored) state log, then applied by the state machine,
before they return; partition appends go to the partition's log. Methods raise `IggyError`
with an Iggy code on a business error (not found, already exists, invalid value), and
CANNOT_WRITE_TO_FILE when the disk refuses a metadata or offset write (ENOSPC, EIO).

Nothing metadata cannot account for is deleted: directories under `streams/` that the state
log does not know go to `<data>/lost+found/` (core/storage/lost_found.py).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import xxhash
from pyggy.core import auth, groups
from pyggy.core.clock import Clock, SystemClock
from pyggy.core.errors import ErrorCode, IggyError
from pyggy.core.metadata.machine import (
    MAX_PARTITIONS_PER_REQUEST,
    MetadataStateMachine,
    encode_options,
    free_id,
    permissions_to_dict,
)
from pyggy.core.metadata.state_log import StateLog
from pyggy.core.model import (
    NEVER_EXPIRE,
    UNLIMITED_SIZE,
    ConsumerGroup,
    GlobalPermissions,
    Identifier,
    Partition,
    Permissions,
    PersonalAccessToken,
    ScramCredential,
    Stream,
    Topic,
    User,
)
from pyggy.core.offsets import CONSUMER, CONSUMER_GROUP, ConsumerOffsets
from pyggy.core.options import reject_options
from pyggy.core.records import iggy_batch, kafka_batch, transcode
from pyggy.core.records.encoding import ENCODING_IGGY, ENCODING_KAFKA
from pyggy.core.storage.fsync import GroupCommitter
from pyggy.core.storage.lost_found import LostAndFound
from pyggy.core.storage.outage import WriteOutage
from pyggy.core.storage.partition_log import PartitionLog
from pyggy.core.storage.scrub import ScrubReport, scrub_partition
from pyggy.core.storage.segment import Segment
from pyggy.core.storage.tiered import RemoteFetch, RemoteSegments

log = logging.getLogger(__name__)
_LOGGED_COMMANDS = frozenset({"create_stream", "create_topic"})

__all__ = ["CONSUMER", "CONSUMER_GROUP", "LogEngine", "PollResult"]

# Polling strategies (Iggy wire values)
OFFSET, TIMESTAMP, FIRST, LAST, NEXT = 1, 2, 3, 4, 5
# Partitioning kinds
BALANCED, PARTITION_ID, MESSAGES_KEY = 1, 2, 3
# (topic, partition, partition directory) -> the partition's archive tier, or None
RemoteFactory = Callable[[Topic, Partition, Path], RemoteSegments | None]
FETCH_ROUNDS = 8  # non-blocking read attempts (each after awaiting a fetch) before blocking
# Stored bytes one poll reads at most (at least one batch): a poll may return fewer messages
# than asked, and clients poll again; without it `count` = 2**32 - 1 read a whole partition.
POLL_MAX_BYTES = 64 << 20


@dataclass(slots=True)
class PollResult:
    partition_id: int
    current_offset: int
    count: int
    chunks: list = field(default_factory=list)  # Iggy batch records (bytes-like), in order


@dataclass(slots=True)
class EngineStats:
    start_time: int
    read_bytes: int = 0
    written_bytes: int = 0


class LogEngine:
    """Streams, topics, partitions, users, offsets and groups of one node."""

    def __init__(self, root: Path, clock: Clock | None = None, validate_checksum: bool = True,
                 state_fsync: bool = True, remote: RemoteFactory | None = None,
                 hasher: auth.HashPool | None = None) -> None:
        self.root = Path(root)
        # Password hashing runs here, off the event loop (the async user methods use it).
        self.hasher: auth.HashPool = hasher or auth.ThreadHashPool()
        # Tiered storage: gives each partition log its archive tier (injected by the server).
        self.remote = remote
        self.clock = clock or SystemClock()
        self.validate_checksum = validate_checksum
        self.meta = MetadataStateMachine()
        self.state = StateLog(self.root / "state" / "state.log", fsync=state_fsync)
        self.lost_found = LostAndFound(self.root)
        self.metadata_writes = WriteOutage("metadata", self.clock, log)
        self.offset_writes = WriteOutage("consumer offsets", self.clock, log)
        self.committer = GroupCommitter()
        self.message_writes = WriteOutage("messages", self.clock, log,
                                          ErrorCode.CANNOT_SAVE_MESSAGES_TO_SEGMENT)
        self.offsets: dict[tuple[int, int, int], ConsumerOffsets] = {}
        self.stats = EngineStats(start_time=self.clock.now_us())
        self.poll_max_bytes = POLL_MAX_BYTES
        self.generated_root_password: str | None = None
        # Called as listener(topic, partition_id) after every append, through either door.
        self.append_listeners: list = []
        # Called as listener(stream name, topic, partitions) after partitions are deleted
        # (with their stream or topic, or by delete_partitions), through either door.
        self.delete_listeners: list = []
        # Called as listener(topic, partition_id, segment) when a partition's active segment
        # is sealed (it reached segment_size and the next batch starts a new one).
        self.seal_listeners: list = []

    # -- lifecycle -------------------------------------------------------------------------
    def open(self, root_credentials: tuple[str, str] | None = None,
             repair_state: bool = False) -> None:
        """Replay the state log, open every partition (recovering tails), ensure a root user.

        Raises `CorruptState` when the state log is damaged beyond repair; `repair_state` then
        keeps its provable prefix instead (see core/metadata/state_log.py)."""
        started = time.monotonic()
        replayed = 0
        for cmd in self.state.replay(repair=repair_state, lost_found=self.lost_found):
            try:
                self.meta.apply(cmd)
            except IggyError as e:  # a command that failed live is never logged; be loud
                log.error("state log command %s failed on replay: %s", cmd.get("type"), e)
            replayed += 1
        for stream in self.meta.streams.values():
            for topic in stream.topics.values():
                for p in topic.partitions:
                    self._attach(topic, p)
        self._remove_orphans()
        if not self.meta.users:
            username, password = root_credentials or ("iggy", "")
            if not password:
                password = auth.random_password()
                self.generated_root_password = password
            full = Permissions(GlobalPermissions(*([True] * 10)))  # root, as Iggy shows it
            self._commit(self._user_command(username, auth.password_record(password), 1, full))
        log.info("engine opened %s: %d state entries, %d streams in %.0f ms", self.root,
                 replayed, len(self.meta.streams), (time.monotonic() - started) * 1000)

    def close(self) -> None:
        """Flush and fsync every partition, mark them clean, close the state log."""
        for stream in self.meta.streams.values():
            for topic in stream.topics.values():
                for p in topic.partitions:
                    if p.log is not None:
                        p.log.close(clean=True)
        self.committer.close()
        self.hasher.close()
        self.state.close()

    def _partition_path(self, stream_id: int, topic_id: int, partition_id: int) -> Path:
        return (self.root / "streams" / str(stream_id) / "topics" / str(topic_id) / "partitions"
                / str(partition_id))

    def _attach(self, topic: Topic, p: Partition) -> None:
        path = self._partition_path(topic.stream_id, topic.id, p.id)
        remote = self.remote(topic, p, path) if self.remote is not None else None
        p.log = PartitionLog(path, p.id, topic.options, self.committer, self.clock,
                             self.validate_checksum, remote,
                             lost_found=self.lost_found, writes=self.message_writes)
        p.log.open()
        p.log.on_seal = partial(self._sealed, topic, p.id)
        self.offsets[(topic.stream_id, topic.id, p.id)] = ConsumerOffsets(path, self.lost_found)

    def _new_partition_dirs(self, stream_id: int, topic_id: int, first: int,
                            count: int) -> list[Path]:
        """Create the directories of partitions a command is about to create, before it is
        logged, so a full disk fails the command and leaves nothing half made. A directory
        left over from a deleted partition with the same id goes to lost+found first."""
        made: list[Path] = []
        try:
            for pid in range(first, first + min(max(count, 0), MAX_PARTITIONS_PER_REQUEST)):
                path = self._partition_path(stream_id, topic_id, pid)
                if path.exists():
                    self._set_aside(path, "leftover of a deleted partition whose id is used "
                                    "again")
                path.mkdir(parents=True)
                made.append(path)
        except OSError as e:
            self._remove_dirs(made)
            raise self.metadata_writes.failed(e) from None
        return made

    def _remove_dirs(self, made: list[Path]) -> None:
        """Remove the directories `_new_partition_dirs` made for a failed command, and their
        parents up to `streams/` while empty (rmdir: a directory with anything in it stays)."""
        stop = self.root / "streams"
        for path in reversed(made):
            while path != stop and stop in path.parents:
                try:
                    path.rmdir()
                except OSError:
                    break
                path = path.parent

    def _attach_new(self, t: Topic, parts: Sequence[Partition], undo: dict) -> None:
        """Open the logs of partitions just created; if the disk refuses (no inode left, EIO),
        the command is undone by its inverse and fails with the storage error."""
        try:
            for p in parts:
                self._attach(t, p)
        except OSError as e:
            error = self.metadata_writes.failed(e)
            self._detach(t.stream_id, t, parts)  # their directories: made by this command
            self._commit(undo)
            raise error from None

    def _sealed(self, topic: Topic, partition_id: int, segment: Segment) -> None:
        for listener in self.seal_listeners:
            listener(topic, partition_id, segment)

    def _detach(self, stream_id: int, topic: Topic, parts: Sequence[Partition]) -> None:
        for p in parts:
            if p.log is not None:
                p.log.destroy()
            self.offsets.pop((stream_id, topic.id, p.id), None)

    def _deleted(self, stream_name: str, topic: Topic, parts: Sequence[Partition]) -> None:
        for listener in self.delete_listeners:
            listener(stream_name, topic, parts)

    def _set_aside(self, path: Path, why: str) -> None:
        """Move a directory metadata does not account for to lost+found (an empty tree, which
        holds nothing to account for, is just removed)."""
        if not any(f.is_file() or f.is_symlink() for f in path.rglob("*")):
            for d in sorted((d for d in path.rglob("*")), key=lambda d: -len(d.parts)):
                d.rmdir()
            path.rmdir()
            return
        self.lost_found.move(path, why)

    def _remove_orphans(self) -> None:
        """Directories under `streams/` that the state log does not know go to lost+found."""
        streams_dir = self.root / "streams"
        if not streams_dir.is_dir():
            return
        why = "not in the metadata (state log)"
        for sdir in sorted(streams_dir.iterdir()):
            s = self.meta.streams.get(int(sdir.name)) if sdir.name.isdigit() else None
            if s is None:
                self._set_aside(sdir, f"stream directory {why}")
                continue
            for tdir in sorted((sdir / "topics").glob("*")):
                t = s.topics.get(int(tdir.name)) if tdir.name.isdigit() else None
                if t is None:
                    self._set_aside(tdir, f"topic directory {why}")
                    continue
                for pdir in sorted((tdir / "partitions").glob("*")):
                    if not pdir.name.isdigit() or int(pdir.name) >= len(t.partitions):
                        self._set_aside(pdir, f"partition directory {why}")

    def _commit(self, cmd: dict):
        """Append a metadata command to the state log, then apply it (before any reply).

        A full or failing disk fails the command with CANNOT_WRITE_TO_FILE and changes
        nothing; a command the state machine refuses is cut off the log again."""
        try:
            pos = self.state.append(cmd)
        except OSError as e:
            raise self.metadata_writes.failed(e) from None
        self.metadata_writes.ok()
        try:
            result = self.meta.apply(cmd)
        except Exception:
            self.state.rollback(pos)
            raise
        if cmd["type"] in _LOGGED_COMMANDS:  # names only: commands may hold password hashes
            log.info("metadata: %s %r", cmd["type"], cmd.get("name", ""))
        return result

    # -- streams ---------------------------------------------------------------------------
    def create_stream(self, name: str, options: Sequence = ()) -> Stream:
        reject_options(options)
        return self._commit({"type": "create_stream", "name": name,
                             "created_at": self.clock.now_us()})

    def get_stream(self, stream: Identifier) -> Stream | None:
        try:
            return self.meta.stream(stream)
        except IggyError:
            return None

    def stream(self, stream: Identifier) -> Stream:
        return self.meta.stream(stream)

    def streams(self) -> list[Stream]:
        return sorted(self.meta.streams.values(), key=lambda s: s.id)

    def update_stream(self, stream: Identifier, name: str, options: Sequence = ()) -> None:
        reject_options(options)
        self._commit({"type": "update_stream", "stream_id": self.meta.stream(stream).id,
                      "name": name})

    def delete_stream(self, stream: Identifier) -> None:
        s = self._commit({"type": "delete_stream", "stream_id": self.meta.stream(stream).id})
        for t in s.topics.values():
            self._detach(s.id, t, t.partitions)
            self._deleted(s.name, t, t.partitions)
        shutil.rmtree(self.root / "streams" / str(s.id), ignore_errors=True)

    def purge_stream(self, stream: Identifier) -> None:
        for t in self.meta.stream(stream).topics.values():
            self._purge(t)

    # -- topics ----------------------------------------------------------------------------
    def create_topic(self, stream: Identifier, name: str, partitions_count: int,
                     options: Sequence[tuple[str, int, bytes]] = ()) -> Topic:
        s = self.meta.stream(stream)
        # the id the command will get (the state machine takes the smallest free one)
        made = self._new_partition_dirs(s.id, free_id(s.topics), 0, partitions_count)
        try:
            t = self._commit({"type": "create_topic", "stream_id": s.id, "name": name,
                              "partitions_count": partitions_count,
                              "options": encode_options(list(options)),
                              "created_at": self.clock.now_us()})
        except IggyError:
            self._remove_dirs(made)
            raise
        self._attach_new(t, t.partitions, {"type": "delete_topic", "stream_id": s.id,
                                           "topic_id": t.id})
        return t

    def get_topic(self, stream: Identifier, topic: Identifier) -> Topic | None:
        try:
            return self.meta.topic(stream, topic)
        except IggyError:
            return None

    def topic(self, stream: Identifier, topic: Identifier) -> Topic:
        return self.meta.topic(stream, topic)

    def topics(self, stream: Identifier) -> list[Topic]:
        return sorted(self.meta.stream(stream).topics.values(), key=lambda t: t.id)

    def update_topic(self, stream: Identifier, topic: Identifier, name: str,
                     options: Sequence[tuple[str, int, bytes]] = (),
                     reset: Sequence[str] = ()) -> None:
        """Rename and patch options; keys in `reset` return to their defaults first."""
        t = self.meta.topic(stream, topic)
        cmd = {"type": "update_topic", "stream_id": t.stream_id, "topic_id": t.id,
               "name": name, "options": encode_options(list(options))}
        if reset:
            cmd["reset"] = list(reset)
        self._commit(cmd)

    def delete_topic(self, stream: Identifier, topic: Identifier) -> None:
        t = self.meta.topic(stream, topic)
        self._commit({"type": "delete_topic", "stream_id": t.stream_id, "topic_id": t.id})
        self._detach(t.stream_id, t, t.partitions)
        self._deleted(self.meta.streams[t.stream_id].name, t, t.partitions)
        shutil.rmtree(self._partition_path(t.stream_id, t.id, 0).parent.parent,
                      ignore_errors=True)

    def purge_topic(self, stream: Identifier, topic: Identifier) -> None:
        self._purge(self.meta.topic(stream, topic))

    def _purge(self, t: Topic) -> None:
        for p in t.partitions:
            p.log.purge()
            self.offsets[(t.stream_id, t.id, p.id)].clear()

    def create_partitions(self, stream: Identifier, topic: Identifier, count: int) -> None:
        t = self.meta.topic(stream, topic)
        made = self._new_partition_dirs(t.stream_id, t.id, len(t.partitions), count)
        try:
            new = self._commit({"type": "create_partitions", "stream_id": t.stream_id,
                                "topic_id": t.id, "count": count,
                                "created_at": self.clock.now_us()})
        except IggyError:
            self._remove_dirs(made)
            raise
        self._attach_new(t, new, {"type": "delete_partitions", "stream_id": t.stream_id,
                                  "topic_id": t.id, "count": len(new)})
        self._rebalance_all(t)

    def delete_partitions(self, stream: Identifier, topic: Identifier, count: int) -> None:
        t = self.meta.topic(stream, topic)
        gone = self._commit({"type": "delete_partitions", "stream_id": t.stream_id,
                             "topic_id": t.id, "count": count})
        self._detach(t.stream_id, t, gone)
        self._deleted(self.meta.streams[t.stream_id].name, t, gone)
        self._rebalance_all(t)

    def delete_segments(self, stream: Identifier, topic: Identifier, partition_id: int,
                        count: int) -> None:
        self.partition(self.meta.topic(stream, topic), partition_id).log.delete_oldest(count)

    def delete_records(self, t: Topic, partition_id: int, offset: int) -> int:
        """Raise a partition's log start offset to `offset` (Kafka DeleteRecords): records
        below it are no longer readable through either door. Returns the new start offset."""
        p = self.partition(t, partition_id)
        if not 0 <= offset <= p.log.next_offset:
            raise IggyError(ErrorCode.INVALID_OFFSET,
                            f"offset {offset} is outside 0..{p.log.next_offset}")
        try:
            return p.log.advance_start(offset)
        except OSError as e:  # the new start offset could not be stored: nothing changed
            raise self.metadata_writes.failed(e) from None

    def partition(self, t: Topic, partition_id: int) -> Partition:
        if not 0 <= partition_id < len(t.partitions):
            raise IggyError(ErrorCode.PARTITION_NOT_FOUND, f"partition {partition_id} not found")
        return t.partitions[partition_id]

    # -- users and tokens ------------------------------------------------------------------
    # A password is stored as its scrypt hash plus SCRAM credentials derived from it; the
    # `*_async` methods compute them in the worker pool (`hasher`), the others inline.
    def _user_command(self, username: str, record: tuple[str, dict], status: int,
                      permissions: Permissions | None) -> dict:
        return {"type": "create_user", "username": username, "password_hash": record[0],
                "scram": auth.scram_to_dict(record[1]), "status": status,
                "permissions": permissions_to_dict(permissions),
                "created_at": self.clock.now_us()}

    @staticmethod
    def _check_new_user(options: Sequence, password: str) -> None:
        reject_options(options)
        if not 3 <= len(password) <= 100:
            raise IggyError(ErrorCode.INVALID_PASSWORD, "password must be 3 to 100 characters")

    def create_user(self, username: str, password: str, status: int,
                    permissions: Permissions | None, options: Sequence = ()) -> User:
        self._check_new_user(options, password)
        return self._commit(self._user_command(username, auth.password_record(password), status,
                                               permissions))

    async def create_user_async(self, username: str, password: str, status: int,
                                permissions: Permissions | None, options: Sequence = ()) -> User:
        self._check_new_user(options, password)
        if any(u.username == username for u in self.meta.users.values()):  # before the work
            raise IggyError(ErrorCode.USER_ALREADY_EXISTS, "user already exists")
        record = await self.hasher.run(auth.password_record, password)
        return self._commit(self._user_command(username, record, status, permissions))

    def get_user(self, user: Identifier) -> User | None:
        try:
            return self.meta.user(user)
        except IggyError:
            return None

    def user(self, user: Identifier) -> User:
        return self.meta.user(user)

    def users(self) -> list[User]:
        return sorted(self.meta.users.values(), key=lambda u: u.id)

    def update_user(self, user: Identifier, username: str | None, status: int | None,
                    options: Sequence = ()) -> None:
        reject_options(options)
        self._commit({"type": "update_user", "user_id": self.meta.user(user).id,
                      "username": username, "status": status})

    def delete_user(self, user: Identifier) -> None:
        self._commit({"type": "delete_user", "user_id": self.meta.user(user).id})

    def update_permissions(self, user: Identifier, permissions: Permissions | None) -> None:
        self._commit({"type": "update_permissions", "user_id": self.meta.user(user).id,
                      "permissions": permissions_to_dict(permissions)})

    def change_password(self, user: Identifier, current: str, new: str,
                        check_current: bool = True) -> None:
        u = self.meta.user(user)
        if check_current and not auth.verify_password(current, u.password_hash):
            raise IggyError(ErrorCode.INVALID_CREDENTIALS, "invalid current password")
        self._set_password(u, new, auth.password_record(new) if 3 <= len(new) <= 100 else None)

    async def change_password_async(self, user: Identifier, current: str, new: str,
                                    check_current: bool = True) -> None:
        """`change_password` with both hashes computed in the worker pool."""
        u = self.meta.user(user)
        if check_current and not await self.hasher.run(auth.verify_password, current,
                                                        u.password_hash):
            raise IggyError(ErrorCode.INVALID_CREDENTIALS, "invalid current password")
        record = await self.hasher.run(auth.password_record, new) if 3 <= len(new) <= 100 \
            else None
        self._set_password(u, new, record)

    def _set_password(self, u: User, new: str, record: tuple[str, dict] | None) -> None:
        if record is None:
            raise IggyError(ErrorCode.INVALID_PASSWORD, "password must be 3 to 100 characters")
        self._commit({"type": "change_password", "user_id": u.id, "password_hash": record[0],
                      "scram": auth.scram_to_dict(record[1])})

    def set_scram(self, user: Identifier, mechanism: str, credential: ScramCredential) -> None:
        """Add or replace one SCRAM credential of a user (the password stays as it is)."""
        self._commit({"type": "set_scram", "user_id": self.meta.user(user).id,
                      "mechanism": mechanism, "salt": credential.salt.hex(),
                      "iterations": credential.iterations,
                      "stored_key": credential.stored_key.hex(),
                      "server_key": credential.server_key.hex()})

    def delete_scram(self, user: Identifier, mechanism: str) -> None:
        self._commit({"type": "delete_scram", "user_id": self.meta.user(user).id,
                      "mechanism": mechanism})

    def authenticate(self, username: str, password: str) -> User:
        """Check a password inline (the doors use `core.logins.Logins`, off the loop)."""
        u = next((u for u in self.meta.users.values() if u.username == username), None)
        if not auth.check_password(password, u.password_hash if u is not None else None):
            raise IggyError(ErrorCode.INVALID_CREDENTIALS, "invalid credentials")
        if u.status != 1:
            raise IggyError(ErrorCode.USER_INACTIVE, "user inactive")
        return u

    def authenticate_token(self, token: str) -> User:
        digest = auth.hash_token(token)
        now = self.clock.now_us()
        for u in self.meta.users.values():
            for pat in u.tokens.values():
                if pat.token_hash == digest:
                    if pat.expiry_at and pat.expiry_at <= now:
                        raise IggyError(ErrorCode.PAT_EXPIRED, "token expired")
                    if u.status != 1:
                        raise IggyError(ErrorCode.USER_INACTIVE, "user inactive")
                    return u
        raise IggyError(ErrorCode.INVALID_PAT, "invalid token")

    def create_token(self, user_id: int, name: str, expiry_us: int,
                     max_tokens: int = 100) -> str:
        u = self.meta.user(user_id)
        if len(u.tokens) >= max_tokens:
            raise IggyError(ErrorCode.PATS_LIMIT_REACHED, "token limit reached")
        token = auth.new_token()
        expiry_at = 0 if expiry_us in (0, NEVER_EXPIRE) else self.clock.now_us() + expiry_us
        self._commit({"type": "create_token", "user_id": u.id, "name": name,
                      "token_hash": auth.hash_token(token), "expiry_at": expiry_at})
        return token

    def tokens(self, user_id: int) -> list[PersonalAccessToken]:
        return sorted(self.meta.user(user_id).tokens.values(), key=lambda t: t.name)

    def expire_tokens(self) -> int:
        """Delete personal access tokens past their expiry; return how many went."""
        now = self.clock.now_us()
        expired = [(u.id, t.name) for u in self.meta.users.values() for t in u.tokens.values()
                   if t.expiry_at and t.expiry_at <= now]
        for user_id, name in expired:
            self.delete_token(user_id, name)
        return len(expired)

    def delete_token(self, user_id: int, name: str) -> None:
        self._commit({"type": "delete_token", "user_id": user_id, "name": name})

    # -- messages --------------------------------------------------------------------------
    def resolve_partition(self, t: Topic, kind: int, value: object) -> int:
        n = len(t.partitions)
        if n == 0:
            raise IggyError(ErrorCode.NO_PARTITIONS, "topic has no partitions")
        if kind == PARTITION_ID:
            return int(value)  # type: ignore[call-overload]
        if kind == MESSAGES_KEY:
            return xxhash.xxh32_intdigest(bytes(value)) % n  # type: ignore[arg-type]
        pid = t.next_partition % n
        t.next_partition = pid + 1
        return pid

    async def append(self, stream: Identifier, topic: Identifier, partitioning: tuple[int, object],
                     batch: bytearray | memoryview, messages_count: int | None = None
                     ) -> tuple[int, int, int, int]:
        """Validate, stamp and store one Iggy batch; return (stream, topic, partition, base)."""
        t = self.meta.topic(stream, topic)
        p = self.partition(t, self.resolve_partition(t, *partitioning))
        try:
            info = iggy_batch.validate_batch(memoryview(batch), expected_count=messages_count,
                                             verify_checksums=True)
        except iggy_batch.BatchError as e:
            raise IggyError(e.code, str(e)) from None
        self._check_topic_full(t)
        base = await p.log.append_iggy(batch, info.message_count, info.frame_sums)
        self.stats.written_bytes += len(batch)
        self._appended(t, p.id)
        return t.stream_id, t.id, p.id, base

    async def append_kafka(self, t: Topic, partition_id: int, batch: bytearray | memoryview,
                           info: kafka_batch.KafkaBatchInfo, log_append_time: bool = False
                           ) -> int:
        """Store one validated Kafka batch (stamped in place); return its base offset."""
        p = self.partition(t, partition_id)
        self._check_topic_full(t)
        base = await p.log.append_kafka(batch, info.record_count, info.max_timestamp,
                                        log_append_time)
        self.stats.written_bytes += len(batch)
        self._appended(t, partition_id)
        return base

    def _appended(self, t: Topic, partition_id: int) -> None:
        for listener in self.append_listeners:
            listener(t, partition_id)

    def read_kafka(self, t: Topic, partition_id: int, offset: int, max_bytes: int,
                   block: bool = True) -> list:
        """Kafka RecordBatch bytes from the batch holding `offset`, up to about `max_bytes`
        (at least one batch). Kafka batches are served verbatim; Iggy batches transcoded.
        `block` as in `PartitionLog.read` (archived data)."""
        p = self.partition(t, partition_id)
        out: list = []
        for ref in p.log.read(offset, 1 << 62, max_bytes, block):
            self.stats.read_bytes += len(ref.data)
            if ref.encoding == ENCODING_KAFKA:
                out.append(ref.data)
            else:
                out.append(transcode.iggy_to_kafka(memoryview(ref.data)))
        return out

    async def read_kafka_async(self, t: Topic, partition_id: int, offset: int,
                               max_bytes: int) -> list:
        """`read_kafka` that awaits archived data instead of blocking the event loop."""
        for _ in range(FETCH_ROUNDS):
            try:
                return self.read_kafka(t, partition_id, offset, max_bytes, block=False)
            except RemoteFetch as need:
                await need.fetch()
        return self.read_kafka(t, partition_id, offset, max_bytes)

    def _check_topic_full(self, t: Topic) -> None:
        limit = t.options.max_topic_size
        if limit != UNLIMITED_SIZE and limit and t.size_bytes >= limit and len(t.partitions):
            # Like Iggy: a full topic first drops its oldest sealed segments, else refuses.
            share = limit // len(t.partitions)
            for p in t.partitions:
                p.log.enforce_retention(self.clock.now_us(), NEVER_EXPIRE, share)
            if t.size_bytes >= limit and all(len(p.log.segments) == 1 and not p.log.tiered
                                             for p in t.partitions):
                return  # only active segments left: keep accepting, the cleaner trims later
            if t.size_bytes >= limit:
                raise IggyError(ErrorCode.TOPIC_FULL, "topic is full")

    def poll(self, stream: Identifier, topic: Identifier, partition_id: int | None,
             strategy: int, value: int, count: int, consumer_kind: int = CONSUMER,
             consumer_id: Identifier = 0, auto_commit: bool = False,
             member_id: int | None = None, block: bool = True) -> PollResult:
        """Poll `count` messages by strategy. `block` as in `PartitionLog.read` (archived
        data); nothing changes before the read, so a RemoteFetch leaves no trace."""
        t = self.meta.topic(stream, topic)
        key: Identifier = consumer_id
        if consumer_kind == CONSUMER_GROUP:
            g = self.meta.group(t.stream_id, t.id, consumer_id)
            key = g.id
            if member_id is not None:
                if member_id not in g.members:
                    raise IggyError(ErrorCode.CONSUMER_GROUP_MEMBER_NOT_FOUND, "not a member")
                if partition_id is None:
                    owned = g.members[member_id].partitions
                    if not owned:
                        return PollResult(0, 0, 0)
                    partition_id = owned[g.generation % len(owned)]
                elif not groups.owns(g, member_id, partition_id):
                    raise IggyError(ErrorCode.CONSUMER_GROUP_PARTITION_NOT_OWNED,
                                    "partition not owned")
        pid = 0 if partition_id is None else partition_id
        p = self.partition(t, pid)
        plog = p.log
        offsets = self.offsets[(t.stream_id, t.id, pid)]
        start: int | None
        if strategy == OFFSET:
            start = value
        elif strategy == TIMESTAMP:
            start = plog.offset_for_timestamp(value, block=block)
        elif strategy == FIRST:
            start = plog.start_offset
        elif strategy == LAST:
            start = max(plog.next_offset - count, plog.start_offset)
        elif strategy == NEXT:
            stored = offsets.get(consumer_kind, key)
            start = plog.start_offset if stored is None else stored + 1
        else:
            raise IggyError(ErrorCode.INVALID_FORMAT, "unknown polling strategy")
        result = PollResult(pid, p.current_offset, 0)
        if start is None or count <= 0 or start >= plog.next_offset:
            return result
        start = max(start, plog.start_offset)
        remaining = count
        last = start - 1
        for ref in plog.read(start, count, self.poll_max_bytes, block=block):
            self.stats.read_bytes += len(ref.data)
            if ref.encoding == ENCODING_IGGY:
                batches = [ref.data]
            else:  # a Kafka batch seen through the Iggy door: transcoded, offsets kept
                batches = transcode.split_iggy(transcode.kafka_to_iggy(
                    memoryview(ref.data), partition_id=pid, timestamp_us=ref.timestamp))
            for data in batches:
                chunk = iggy_batch.slice_batch(data, start, remaining)
                if not chunk:
                    continue
                n = iggy_batch.batch_fields(chunk)[5]
                result.chunks.append(chunk)
                result.count += n
                remaining -= n
                last = iggy_batch.batch_offsets(chunk)[1]
                if remaining <= 0:
                    break
            if remaining <= 0:
                break
        if auto_commit and result.count:
            self._store(offsets, consumer_kind, key, last)
        return result

    async def poll_async(self, *args, **kwargs) -> PollResult:
        """`poll` that awaits archived data instead of blocking the event loop."""
        for _ in range(FETCH_ROUNDS):
            try:
                return self.poll(*args, block=False, **kwargs)
            except RemoteFetch as need:
                await need.fetch()
        return self.poll(*args, **kwargs)

    # -- consumer offsets ------------------------------------------------------------------
    def _offsets_for(self, kind: int, consumer: Identifier, stream: Identifier,
                     topic: Identifier, partition_id: int | None
                     ) -> tuple[ConsumerOffsets, Identifier, Partition]:
        t = self.meta.topic(stream, topic)
        key = consumer
        if kind == CONSUMER_GROUP:
            key = self.meta.group(t.stream_id, t.id, consumer).id
        elif kind != CONSUMER:
            raise IggyError(ErrorCode.INVALID_FORMAT, "invalid consumer kind")
        p = self.partition(t, partition_id or 0)
        return self.offsets[(t.stream_id, t.id, p.id)], key, p

    def store_offset(self, kind: int, consumer: Identifier, stream: Identifier,
                     topic: Identifier, partition_id: int | None, offset: int) -> None:
        offsets, key, p = self._offsets_for(kind, consumer, stream, topic, partition_id)
        if offset > p.current_offset:  # as Iggy: an offset past the partition's end is refused
            raise IggyError(ErrorCode.INVALID_OFFSET, f"offset {offset} > {p.current_offset}")
        self._store(offsets, kind, key, offset)

    def _store(self, offsets: ConsumerOffsets, kind: int, key: Identifier, offset: int) -> None:
        try:
            offsets.store(kind, key, offset)
        except OSError as e:
            raise self.offset_writes.failed(e) from None
        self.offset_writes.ok()

    def get_offset(self, kind: int, consumer: Identifier, stream: Identifier,
                   topic: Identifier, partition_id: int | None) -> tuple[int, int, int] | None:
        """(partition id, current offset, stored offset) or None when nothing is stored."""
        offsets, key, p = self._offsets_for(kind, consumer, stream, topic, partition_id)
        stored = offsets.get(kind, key)
        return None if stored is None else (p.id, p.current_offset, stored)

    def delete_offset(self, kind: int, consumer: Identifier, stream: Identifier,
                      topic: Identifier, partition_id: int | None) -> None:
        offsets, key, _ = self._offsets_for(kind, consumer, stream, topic, partition_id)
        if not offsets.delete(kind, key):
            raise IggyError(ErrorCode.CONSUMER_OFFSET_NOT_FOUND, "consumer offset not found")

    # -- consumer groups -------------------------------------------------------------------
    def create_group(self, stream: Identifier, topic: Identifier, name: str) -> ConsumerGroup:
        t = self.meta.topic(stream, topic)
        return self._commit({"type": "create_group", "stream_id": t.stream_id,
                             "topic_id": t.id, "name": name})

    def get_group(self, stream: Identifier, topic: Identifier,
                  group: Identifier) -> ConsumerGroup | None:
        try:
            return self.meta.group(stream, topic, group)
        except IggyError:
            return None

    def group(self, stream: Identifier, topic: Identifier, group: Identifier) -> ConsumerGroup:
        return self.meta.group(stream, topic, group)

    def groups(self, stream: Identifier, topic: Identifier) -> list[ConsumerGroup]:
        return sorted(self.meta.topic(stream, topic).groups.values(), key=lambda g: g.id)

    def delete_group(self, stream: Identifier, topic: Identifier, group: Identifier) -> None:
        t = self.meta.topic(stream, topic)
        g = self._commit({"type": "delete_group", "stream_id": t.stream_id, "topic_id": t.id,
                          "group_id": self.meta.group(t.stream_id, t.id, group).id})
        for p in t.partitions:
            self.offsets[(t.stream_id, t.id, p.id)].delete(CONSUMER_GROUP, g.id)

    def join_group(self, stream: Identifier, topic: Identifier, group: Identifier,
                   member_id: int) -> None:
        t = self.meta.topic(stream, topic)
        groups.join(self.meta.group(t.stream_id, t.id, group), member_id, len(t.partitions))

    def leave_group(self, stream: Identifier, topic: Identifier, group: Identifier,
                    member_id: int) -> None:
        t = self.meta.topic(stream, topic)
        g = self.meta.group(t.stream_id, t.id, group)
        if not groups.leave(g, member_id, len(t.partitions)):
            raise IggyError(ErrorCode.CONSUMER_GROUP_MEMBER_NOT_FOUND, "not a member")

    def sync_group(self, stream: Identifier, topic: Identifier, group: Identifier,
                   member_id: int) -> tuple[int, list[int]] | None:
        g = self.meta.group(stream, topic, group)
        m = g.members.get(member_id)
        return None if m is None else (g.generation, list(m.partitions))

    def member_gone(self, member_id: int) -> None:
        """A client session ended: remove it from every group it joined."""
        for s in self.meta.streams.values():
            for t in s.topics.values():
                for g in t.groups.values():
                    groups.leave(g, member_id, len(t.partitions))

    def _rebalance_all(self, t: Topic) -> None:
        for g in t.groups.values():
            groups.rebalance(g, len(t.partitions))

    # -- maintenance -----------------------------------------------------------------------
    def clean(self) -> int:
        """Enforce message expiry and max topic size on sealed segments; return segments gone."""
        now = self.clock.now_us()
        removed = 0
        for s in self.meta.streams.values():
            for t in s.topics.values():
                o = t.options
                share = None
                if o.max_topic_size not in (0, UNLIMITED_SIZE) and t.partitions:
                    share = o.max_topic_size // len(t.partitions)
                for p in t.partitions:
                    removed += p.log.enforce_retention(now, o.message_expiry, share)
        return removed

    def scrub(self) -> ScrubReport:
        """Verify every stored batch of every local segment now (blocking reads of the
        archive for repairs): what `pyggy-scrub` runs after `open`."""
        report = ScrubReport()
        for plog in self.partition_logs():
            for _ in scrub_partition(plog, report):
                pass
        return report

    def partition_logs(self) -> list[PartitionLog]:
        return [p.log for s in self.meta.streams.values() for t in s.topics.values()
                for p in t.partitions if p.log is not None]

    def offload(self) -> int:
        """Tiering: drop local copies of archived sealed segments beyond each topic's
        `local_retention_bytes` / `local_retention_segments`; return how many went."""
        gone = 0
        for s in self.meta.streams.values():
            for t in s.topics.values():
                o = t.options
                max_bytes = None if o.local_retention_bytes in (0, UNLIMITED_SIZE) \
                    else o.local_retention_bytes
                max_segments = o.local_retention_segments or None
                if max_bytes is None and max_segments is None:
                    continue
                for p in t.partitions:
                    gone += p.log.offload(max_bytes, max_segments)
        return gone

    def counts(self) -> dict[str, int]:
        topics = [t for s in self.meta.streams.values() for t in s.topics.values()]
        parts = [p for t in topics for p in t.partitions]
        return {
            "streams": len(self.meta.streams), "topics": len(topics),
            "partitions": len(parts), "segments": sum(p.log.segments_count for p in parts),
            "messages": sum(p.log.messages_count for p in parts),
            "size": sum(p.log.size_bytes for p in parts),
            "groups": sum(len(t.groups) for t in topics),
        }
