"""Replica sizes and timeouts (timeouts in ticks of 10 ms; defaults are Iggy's)."""

from __future__ import annotations

from dataclasses import dataclass

from .message import HEADER_SIZE, HEADERS_MAX


@dataclass(frozen=True)
class Options:
    pipeline_max: int = 32  # prepared, uncommitted ops a primary may have in flight
    journal_slots: int = 1024
    checkpoint_interval: int = 512  # ops between checkpoints (state snapshots)
    prepare_max: int = 1 << 20  # bytes of one prepare, header included
    clients_max: int = 8192
    commit_interval: int = 50  # primary's idle Commit heartbeat
    heartbeat_timeout: int = 500  # backup suspects the primary
    prepare_retransmit: int = 25
    view_change_retransmit: int = 50
    view_change_status_timeout: int = 500
    request_start_view_interval: int = 100
    view_probe_attempts_max: int = 5
    repair_interval: int = 100
    repair_chunk_max: int = 128
    snapshot_chunk: int = 1 << 20
    # "star": the primary sends each prepare to every backup (TigerBeetle since 2026);
    # "chain": to its successor, each backup forwarding to the next (Iggy). Retransmits go
    # straight from the primary to whoever has not acknowledged, in both.
    replication: str = "star"

    @property
    def message_size_max(self) -> int:
        return HEADER_SIZE + max(self.prepare_max, self.snapshot_chunk,
                                 (self.pipeline_max + 1) * HEADER_SIZE)

    def validate(self) -> Options:
        if self.replication not in ("star", "chain"):
            raise ValueError("replication is 'star' or 'chain'")
        if not 1 <= self.pipeline_max < HEADERS_MAX:
            raise ValueError("pipeline_max must be in 1..127")
        if self.checkpoint_interval + 2 * self.pipeline_max > self.journal_slots:
            raise ValueError("journal_slots must exceed checkpoint_interval + 2 * pipeline_max")
        if self.heartbeat_timeout < 4 * self.commit_interval:
            raise ValueError("heartbeat_timeout must be at least 4 x commit_interval")
        if self.view_change_status_timeout < 4 * self.view_change_retransmit:
            raise ValueError("view_change_status_timeout must be at least 4 x the retransmit")
        if self.prepare_max < 2 * HEADER_SIZE or min(self.repair_chunk_max,
                                                    self.snapshot_chunk) < 1:
            raise ValueError("prepare_max, repair_chunk_max and snapshot_chunk too small")
        return self
