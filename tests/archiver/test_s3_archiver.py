"""S3Archiver against a real S3-compatible server (moto): single and multipart uploads verified
after the fact, range reads, listing, deletes, and the errors it reports."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from pyggy.archiver.base import ArchiverError, ChecksumMismatch, Source
from pyggy.archiver.s3 import MULTIPART_THRESHOLD, S3Archiver
from s3support import KEY_ID, KEY_SECRET, REGION, MotoS3


def archiver(s3: MotoS3, bucket: str) -> S3Archiver:
    return S3Archiver(bucket=bucket, endpoint=s3.endpoint, region=REGION, key_id=KEY_ID,
                      key_secret=KEY_SECRET)


def source(path: Path, data: bytes) -> Source:
    path.write_bytes(data)
    return Source.open(path)


def test_uploads_are_verified_and_read_back(shared_s3: MotoS3, tmp_path: Path) -> None:
    shared_s3.create_bucket("s3-archiver")
    a = archiver(shared_s3, "s3-archiver")
    a.init()
    small = os.urandom(300_000)
    big = os.urandom(2 * MULTIPART_THRESHOLD + 12345)  # three parts
    for key, data in (("x/small.log", small), ("x/big.log", big)):
        src = source(tmp_path / "f", data)
        stored = a.archive(key, src)
        src.close()
        assert stored.size == len(data) and stored.sha256 == hashlib.sha256(data).hexdigest()
        assert a.is_archived(key, stored.sha256) and not a.is_archived(key, "0" * 64)
        assert a.read_range(key, 1000, 5000) == data[1000:6000]
        assert a.read_all(key) == data
    head = shared_s3.client().head_object(Bucket="s3-archiver", Key="x/big.log")
    assert head["ETag"].endswith('-3"')  # a multipart upload
    assert head["Metadata"]["sha256"] == hashlib.sha256(big).hexdigest()
    assert a.list("x/") == [("x/big.log", len(big)), ("x/small.log", len(small))]
    a.delete(["x/big.log", "x/missing.log"])
    assert [k for k, _ in a.list("x/")] == ["x/small.log"]
    assert not a.is_archived("x/big.log")
    with pytest.raises(ArchiverError):
        a.read_range("x/small.log", len(small) - 10, 20)  # past the end


def test_bytes_changed_in_transit_are_caught(shared_s3: MotoS3, tmp_path: Path) -> None:
    """moto does not check Content-MD5, so a body altered on the wire gets stored: the ETag
    and then the read-back hash must catch it."""
    shared_s3.create_bucket("s3-transit")
    a = archiver(shared_s3, "s3-transit")

    def flip(request, **_kwargs) -> None:
        raw = request.body.getvalue() if hasattr(request.body, "getvalue") else request.body
        body = bytearray(raw)
        body[len(body) // 2] ^= 0xFF
        request.body = bytes(body)

    a._client.meta.events.register("before-send.s3.PutObject", flip)
    src = source(tmp_path / "f", os.urandom(100_000))
    with pytest.raises(ChecksumMismatch):
        a.archive("seg.log", src)
    # a source that changed after it was hashed is refused before it is sent
    a._client.meta.events.unregister("before-send.s3.PutObject", flip)
    (tmp_path / "f").write_bytes(os.urandom(100_000))
    with pytest.raises(ChecksumMismatch):
        a.archive("seg.log", src)


def test_errors_say_what_to_fix(shared_s3: MotoS3) -> None:
    with pytest.raises(ArchiverError) as missing:
        archiver(shared_s3, "never-created").init()
    assert missing.value.permanent and "does not exist" in str(missing.value)
    from botocore.exceptions import ClientError

    refused = archiver(shared_s3, "b")._error("init", ClientError(
        {"Error": {"Code": "InvalidAccessKeyId", "Message": "no such key"},
         "ResponseMetadata": {"HTTPStatusCode": 403}}, "HeadBucket"))
    assert refused.permanent and "key_id, key_secret" in str(refused)
    down = S3Archiver(bucket="b", endpoint="http://127.0.0.1:9", region=REGION,
                      key_id=KEY_ID, key_secret=KEY_SECRET, connect_timeout=0.5)
    with pytest.raises(ArchiverError) as unreachable:
        down.init()
    assert not unreachable.value.permanent
