"""The produce/fetch path: RECORDS are never copied or walked, so cost is independent of size.

Run with ``-s`` to see the timings.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from pyggy.kafka_wire.protocol import (
    decode_request,
    parse_request_header,
    request_frame,
    response_frame,
)


def _best_us(fn: Callable[[], Any], n: int = 200) -> float:
    fn()
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - start) / n)
    return best * 1e6


def _produce_frame(batch: bytes) -> memoryview:
    value = {"transactional_id": None, "acks": -1, "timeout_ms": 30000, "topic_data": [
        {"name": "topic", "partition_data": [{"index": 0, "records": batch}]}]}  # fmt: skip
    return memoryview(request_frame(0, 9, 1, "bench", value))[4:]


def _decode(frame: memoryview) -> dict:
    header, off = parse_request_header(frame)
    return decode_request(header.api_key, header.api_version, frame[off:])


def test_produce_v9_decode_is_zero_copy() -> None:
    big, small = _produce_frame(os.urandom(1 << 20)), _produce_frame(os.urandom(1 << 10))
    records = _decode(big)["topic_data"][0]["partition_data"][0]["records"]
    assert isinstance(records, memoryview) and records.obj is big.obj  # a view of the frame
    t_big, t_small = _best_us(lambda: _decode(big)), _best_us(lambda: _decode(small))
    print(f"\ndecode Produce v9, header+body: 1 MiB batch {t_big:.1f} us, 1 KiB {t_small:.1f} us")
    assert t_big < 3 * t_small + 50


def _fetch_response(records: Any) -> dict:
    return {"throttle_time_ms": 0, "error_code": 0, "session_id": 0, "responses": [
        {"topic": "topic", "partitions": [{"partition_index": 0, "high_watermark": 100,
                                           "last_stable_offset": 100, "log_start_offset": 0,
                                           "records": records}]}]}  # fmt: skip


def test_fetch_v11_encode_keeps_records_uncopied() -> None:
    records = memoryview(os.urandom(1 << 20))
    parts = response_frame(1, 11, 1, _fetch_response(records))
    assert any(p is records for p in parts)
    assert sum(map(len, parts)) - 4 == int.from_bytes(parts[0][:4], "big")
    t_parts = _best_us(lambda: response_frame(1, 11, 1, _fetch_response(records)))
    t_join = _best_us(lambda: b"".join(response_frame(1, 11, 1, _fetch_response(records))), 50)
    print(f"\nencode Fetch v11 with 1 MiB records: {t_parts:.1f} us as chunks for writelines, "
          f"{t_join:.1f} us joined into one bytes")  # fmt: skip
    small = memoryview(os.urandom(1 << 10))
    assert t_parts < 3 * _best_us(lambda: response_frame(1, 11, 1, _fetch_response(small))) + 50
