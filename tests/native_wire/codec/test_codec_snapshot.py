"""GET_SNAPSHOT_FILE requests: golden bytes, round trips, and every bad request answered
INVALID_COMMAND (Iggy's answer), never another exception."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyggy.core.errors import ErrorCode
from pyggy.native_wire.codec import snapshot as snap
from pyggy.native_wire.codec.reader import WireError

compressions = st.sampled_from(sorted(snap.COMPRESSIONS.values()))
sections = st.lists(st.sampled_from(sorted(snap.SECTIONS.values())), max_size=8)


def test_golden_bytes_as_the_iggy_cli_sends_them() -> None:
    # `iggy snapshot` defaults: deflated; filesystem overview, process list, resource usage, logs
    body = bytes([2, 4, 1, 2, 3, 5])
    assert snap.encode_request("deflated", ["filesystem_overview", "process_list",
                                            "resource_usage", "server_logs"]) == body
    assert snap.decode_request(body) == ("deflated", ("filesystem_overview", "process_list",
                                                      "resource_usage", "server_logs"))
    assert snap.decode_request(bytes([1, 1, 100])) == ("stored", snap.EVERYTHING)
    assert "test" not in snap.EVERYTHING and len(snap.EVERYTHING) == 5
    assert snap.decode_request(bytes([6, 0])) == ("xz", ())  # an empty archive, as in Iggy


@settings(max_examples=200, deadline=None)
@given(compression=compressions, names=sections)
def test_round_trip(compression: str, names: list[str]) -> None:
    body = snap.encode_request(compression, names)
    assert snap.decode_request(body) == (compression, tuple(dict.fromkeys(names)))
    for cut in range(len(body)):  # every truncation
        with pytest.raises(WireError) as e:
            snap.decode_request(body[:cut])
        assert e.value.code == ErrorCode.INVALID_COMMAND
    with pytest.raises(WireError) as e:  # a trailing byte
        snap.decode_request(body + b"\x01")
    assert e.value.code == ErrorCode.INVALID_COMMAND


@pytest.mark.parametrize("body", [
    bytes([0, 1, 1]), bytes([7, 1, 1]), bytes([2, 1, 0]), bytes([2, 1, 7]), bytes([2, 1, 99]),
    bytes([2, 2, 100, 1]), bytes([2, 2, 1, 100]),
], ids=["compression-0", "compression-7", "type-0", "type-7", "type-99", "all-first",
        "all-second"])
def test_unknown_codes_and_mixed_all_are_invalid_commands(body: bytes) -> None:
    with pytest.raises(WireError) as e:
        snap.decode_request(body)
    assert e.value.code == ErrorCode.INVALID_COMMAND


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=300))
def test_any_bytes_decode_or_fail_with_invalid_command(body: bytes) -> None:
    try:
        compression, names = snap.decode_request(body)
    except WireError as e:
        assert e.code == ErrorCode.INVALID_COMMAND
        return
    assert compression in snap.COMPRESSIONS.values()
    assert set(names) <= set(snap.SECTIONS.values())
