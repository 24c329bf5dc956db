"""Kafka codecs: what real clients write decodes; bombs stop at the cap; garbage fails cleanly."""

from __future__ import annotations

import gzip
import os

import cramjam
import lz4.frame
import pytest
import snappy
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka import codec as kafka_codec
from pyggy.core.records import compression as c
from pyggy.core.records.compression import CompressionError

DATA = b"".join(b"record %d payload " % i * (i % 5 + 1) for i in range(3000)) + os.urandom(500)


@pytest.mark.parametrize("codec", [c.NONE, c.GZIP, c.SNAPPY, c.LZ4, c.ZSTD])
def test_round_trip(codec: int) -> None:
    packed = c.compress(codec, DATA)
    assert bytes(c.decompress(codec, packed)) == DATA
    assert bytes(c.decompress(codec, c.compress(codec, b""))) == b""


@pytest.mark.parametrize("packed, codec", [
    (kafka_codec.gzip_encode(DATA), c.GZIP),
    (kafka_codec.snappy_encode(DATA), c.SNAPPY),  # xerial framing (Java, kafka-python)
    (snappy.compress(DATA), c.SNAPPY),  # raw block (librdkafka)
    (kafka_codec.lz4_encode(DATA), c.LZ4),
    (lz4.frame.compress(DATA, block_linked=True, store_size=False), c.LZ4),
    (kafka_codec.zstd_encode(DATA), c.ZSTD),
    (zstandard.ZstdCompressor(write_content_size=False).compress(DATA), c.ZSTD),
    (gzip.compress(DATA[:1000]) + gzip.compress(DATA[1000:]), c.GZIP),  # two members
    (zstandard.ZstdCompressor().compress(DATA[:7]) + zstandard.ZstdCompressor().compress(
        DATA[7:]), c.ZSTD),  # two frames
])
def test_what_clients_write(packed: bytes, codec: int) -> None:
    assert bytes(c.decompress(codec, packed)) == DATA


def test_ours_is_what_clients_read() -> None:
    assert kafka_codec.snappy_decode(c.compress(c.SNAPPY, DATA)) == DATA
    assert c.compress(c.SNAPPY, DATA)[:8] == c.XERIAL_MAGIC
    assert lz4.frame.decompress(c.compress(c.LZ4, DATA)) == DATA
    assert zstandard.ZstdDecompressor().decompressobj().decompress(
        c.compress(c.ZSTD, DATA)) == DATA
    assert gzip.decompress(c.compress(c.GZIP, DATA)) == DATA


@pytest.mark.parametrize("codec", [c.NONE, c.GZIP, c.SNAPPY, c.LZ4, c.ZSTD])
def test_bomb_stops_at_the_cap(codec: int) -> None:
    bomb = bytes(8 << 20)
    packed = c.compress(codec, bomb)
    assert len(packed) < len(bomb) or codec == c.NONE
    with pytest.raises(CompressionError) as e:
        c.decompress(codec, packed, limit=1 << 20)
    assert e.value.too_large
    assert len(c.decompress(codec, packed, limit=8 << 20)) == len(bomb)  # exactly at the cap


def test_raw_snappy_declared_size_checked_first() -> None:
    packed = bytes(cramjam.snappy.compress_raw(bytes(1 << 20)))
    with pytest.raises(CompressionError) as e:
        c.decompress(c.SNAPPY, packed, limit=1000)
    assert e.value.too_large


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([c.GZIP, c.SNAPPY, c.LZ4, c.ZSTD, 5, 7]), st.binary(max_size=200))
def test_garbage_is_a_compression_error(codec: int, garbage: bytes) -> None:
    for data in (garbage, c.XERIAL_MAGIC + garbage, c.compress(min(codec, 4), DATA)[:len(garbage)]):
        try:
            c.decompress(codec, data, limit=1 << 20)
        except CompressionError:
            pass
