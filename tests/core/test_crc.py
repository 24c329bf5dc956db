"""pyggy.core.crc: fastcrc's CRC-32/ISCSI, checked against the crc32c package (the reference)."""

from __future__ import annotations

import subprocess
import sys

import crc32c as package
from hypothesis import given
from hypothesis import strategies as st
from pyggy.core.crc import crc32c


def test_the_check_value() -> None:
    assert crc32c(b"123456789") == 0xE3069283  # RFC 3720 B.4 / the CRC catalogue's check


@given(st.binary(max_size=4096), st.binary(max_size=512))
def test_it_is_the_package_function(data: bytes, more: bytes) -> None:
    assert crc32c(data) == package.crc32c(data)
    assert crc32c(more, crc32c(data)) == package.crc32c(data + more)  # running value
    assert crc32c(memoryview(data)) == crc32c(bytearray(data))


@given(st.binary(min_size=1, max_size=1 << 17), st.integers(0, (1 << 32) - 1),
       st.integers(0, 63))
def test_large_and_unaligned_buffers(data: bytes, value: int, skip: int) -> None:
    """The carry-less-multiply path (large inputs), from any running value, at any alignment,
    on every buffer kind the read paths pass (bytes, bytearray, memoryview slices)."""
    view = memoryview(bytearray(data))[skip % len(data):]
    assert crc32c(view, value) == package.crc32c(bytes(view), value)


def test_loading_it_does_not_import_the_reference() -> None:
    code = ("import sys\nfrom pyggy.core.crc import crc32c\n"
            "assert crc32c(b'a') == 0xC1D04330, crc32c(b'a')\n"
            "print(sorted(m for m in sys.modules\n"
            "             if m.startswith(('crc32c', 'importlib.metadata'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert out.strip() == "[]"
