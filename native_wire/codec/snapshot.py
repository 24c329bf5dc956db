"""GET_SNAPSHOT_FILE (code 11): the request `[compression u8][count u8][type u8 × count]`,
answered by the bare bytes of a zip archive (Iggy's `GetSnapshotRequest` and
`GetSnapshotResponse`, apache/iggy `core/binary_protocol/src/{requests,responses}/system/`).

Codes (Iggy's `SnapshotCompression` and `SystemSnapshotType`): compression 1 stored,
2 deflated, 3 bzip2, 4 zstd, 5 lzma, 6 xz; sections 1 filesystem_overview, 2 process_list,
3 resource_usage, 4 test, 5 server_logs, 6 server_config, and 100 for all of them but `test`
(alone only). A bad request of any kind is INVALID_COMMAND, as Iggy answers it.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyggy.core.errors import ErrorCode
from pyggy.native_wire.codec.reader import Reader, WireError

COMPRESSIONS = {1: "stored", 2: "deflated", 3: "bzip2", 4: "zstd", 5: "lzma", 6: "xz"}
SECTIONS = {1: "filesystem_overview", 2: "process_list", 3: "resource_usage", 4: "test",
            5: "server_logs", 6: "server_config"}
ALL = 100
EVERYTHING = tuple(name for name in SECTIONS.values() if name != "test")
_COMPRESSION_CODES = {name: code for code, name in COMPRESSIONS.items()}
_SECTION_CODES = {name: code for code, name in SECTIONS.items()}


def decode_request(body: bytes | bytearray | memoryview) -> tuple[str, tuple[str, ...]]:
    """(compression, section names in request order without repeats); `WireError(3)`."""
    try:
        r = Reader(body)
        compression = r.u8()
        codes = [r.u8() for _ in range(r.u8())]
        r.done()
    except WireError as e:
        raise WireError(ErrorCode.INVALID_COMMAND, f"snapshot request: {e}") from None
    if compression not in COMPRESSIONS:
        raise WireError(ErrorCode.INVALID_COMMAND, f"unknown snapshot compression {compression}")
    if ALL in codes:
        if len(codes) > 1:
            raise WireError(ErrorCode.INVALID_COMMAND, "snapshot type `all` must come alone")
        return COMPRESSIONS[compression], EVERYTHING
    unknown = [c for c in codes if c not in SECTIONS]
    if unknown:
        raise WireError(ErrorCode.INVALID_COMMAND, f"unknown snapshot type {unknown[0]}")
    return COMPRESSIONS[compression], tuple(dict.fromkeys(SECTIONS[c] for c in codes))


def encode_request(compression: str, sections: Sequence[str]) -> bytes:
    """The request body (for clients and tests); `sections == ("all",)` asks for everything."""
    codes = [ALL if name == "all" else _SECTION_CODES[name] for name in sections]
    return bytes((_COMPRESSION_CODES[compression], len(codes), *codes))
