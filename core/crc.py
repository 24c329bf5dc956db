"""CRC-32C (Castagnoli): `crc32c(data, value=0)` — the checksum of `data`, or with `value` the
running checksum of what came before `data` continued over it.

It is the `fastcrc` package's `crc32.iscsi` (CRC-32/ISCSI is CRC-32C): on x86-64 with
carry-less multiply it checksums a 1 MiB batch in about half the time of the `crc32c`
package's SSE4.2 code (BENCHMARKS.md, "Issue 16, seventh session: CRC-32C"), and it releases
the GIL for the checksum as `crc32c` does. Every stored batch is checked against its CRC-32C
before it is served, so this is on every read path. tests/core/test_crc.py checks it against
the `crc32c` package on random inputs, running values included.
"""

from __future__ import annotations

from fastcrc.crc32 import iscsi as crc32c

__all__ = ["crc32c"]
