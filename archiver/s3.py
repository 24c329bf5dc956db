"""S3Archiver: the archive is an S3 bucket (AWS, MinIO or any S3-compatible server), via boto3.

- Path-style addressing, so MinIO and other servers behind one host name work.
- Retries: botocore's "standard" mode retries throttling, 5xx and connection errors with
  exponential backoff and jitter (5 attempts for writes, 2 for the reads that serve clients);
  the archiver service retries whole uploads with its own backoff on top.
- Objects up to 8 MiB are one PUT; larger ones a multipart upload (parts of 8 MiB or more, at
  most 10,000), aborted on failure so no part is left behind.
- Integrity: the bytes sent must hash to the SHA-256 taken of the file before the upload; every
  request body carries Content-MD5 (S3 rejects a body that arrives different); every object
  carries its SHA-256 in `x-amz-meta-sha256`. After the upload the object is
  HEADed: its length, its SHA-256 metadata and its ETag (MD5, or for multipart the MD5 of the
  part MD5s with "-<parts>") must match what was computed locally. When the ETag is not an
  MD5 (SSE-KMS buckets) the object is read back and hashed instead.
"""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Any

from pyggy.archiver.base import ArchiverError, ChecksumMismatch, Source, Stored, sha256_stream

MULTIPART_THRESHOLD = 8 << 20
MIN_PART = 8 << 20
MAX_PARTS = 10_000
PERMANENT_CODES = {"NoSuchBucket", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                   "AllAccessDisabled", "InvalidBucketName", "AuthorizationHeaderMalformed",
                   "403", "404"}


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


class S3Archiver:
    """Keys are stored under `bucket` as they are (see `archiver.layout`)."""

    kind = "s3"

    def __init__(self, bucket: str, endpoint: str = "", region: str = "",
                 key_id: str = "", key_secret: str = "", connect_timeout: float = 5.0,
                 read_timeout: float = 30.0) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.endpoint = endpoint or None
        self.region = region or None
        session = boto3.session.Session(aws_access_key_id=key_id or None,
                                        aws_secret_access_key=key_secret or None,
                                        region_name=self.region)

        def client(attempts: int, read_timeout: float) -> Any:
            config = Config(
                s3={"addressing_style": "path"},
                retries={"mode": "standard", "max_attempts": attempts},
                connect_timeout=connect_timeout, read_timeout=read_timeout,
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                max_pool_connections=16,
            )
            return session.client("s3", endpoint_url=self.endpoint, config=config)

        self._client = client(5, read_timeout)
        self._reader = client(2, min(read_timeout, 10.0))

    def describe(self) -> str:
        return f"s3://{self.bucket} at {self.endpoint or 'AWS'}"

    # -- errors ------------------------------------------------------------------------------
    def _error(self, what: str, e: Exception) -> ArchiverError:
        from botocore.exceptions import BotoCoreError, ClientError

        if isinstance(e, ClientError):
            err = e.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("NoSuchBucket",) or (what == "init" and status == 404):
                return ArchiverError(f"S3 bucket {self.bucket!r} does not exist at "
                                     f"{self.endpoint or 'AWS'} (create it, or fix "
                                     "[data_maintenance.archiver.s3] bucket)", permanent=True)
            if code in PERMANENT_CODES or status == 403:
                return ArchiverError(f"S3 refused {what} on bucket {self.bucket!r} at "
                                     f"{self.endpoint or 'AWS'}: {code} {err.get('Message', '')}"
                                     " (check [data_maintenance.archiver.s3] key_id, key_secret"
                                     " and region)", permanent=True)
            return ArchiverError(f"S3 {what} failed: {code} {err.get('Message', '')}")
        if isinstance(e, BotoCoreError):
            return ArchiverError(f"S3 {what} failed: {e}")
        return ArchiverError(f"S3 {what} failed: {type(e).__name__}: {e}")

    # -- interface ---------------------------------------------------------------------------
    def init(self) -> None:
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except Exception as e:
            raise self._error("init", e) from None

    def is_archived(self, key: str, sha256: str | None = None) -> bool:
        from botocore.exceptions import ClientError

        try:
            head = self._client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as e:
            if e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return False
            raise self._error(f"HEAD {key}", e) from None
        except Exception as e:
            raise self._error(f"HEAD {key}", e) from None
        return sha256 is None or head.get("Metadata", {}).get("sha256") == sha256

    def archive(self, key: str, source: Source) -> Stored:
        try:
            if source.size <= MULTIPART_THRESHOLD:
                etag = self._put(key, source)
            else:
                etag = self._multipart(key, source)
            head = self._client.head_object(Bucket=self.bucket, Key=key)
        except ArchiverError:
            raise
        except Exception as e:
            raise self._error(f"upload of {key}", e) from None
        self._verify(key, source, head, etag)
        return Stored(key, source.size, source.sha256)

    def _put(self, key: str, source: Source) -> str:
        data = os.pread(source.fd, source.size, 0)
        if len(data) != source.size or hashlib.sha256(data).hexdigest() != source.sha256:
            raise ChecksumMismatch(f"source of {key} changed since it was hashed")
        md5 = hashlib.md5(data)
        self._client.put_object(Bucket=self.bucket, Key=key, Body=data,
                                ContentMD5=_b64(md5.digest()),
                                Metadata={"sha256": source.sha256})
        return f'"{md5.hexdigest()}"'

    def _multipart(self, key: str, source: Source) -> str:
        part_size = max(MIN_PART, -(-source.size // MAX_PARTS))
        upload = self._client.create_multipart_upload(Bucket=self.bucket, Key=key,
                                                      Metadata={"sha256": source.sha256})
        upload_id = upload["UploadId"]
        parts, digests = [], []
        whole = hashlib.sha256()
        try:
            for number, start in enumerate(range(0, source.size, part_size), 1):
                data = os.pread(source.fd, min(part_size, source.size - start), start)
                whole.update(data)
                md5 = hashlib.md5(data).digest()
                digests.append(md5)
                reply = self._client.upload_part(Bucket=self.bucket, Key=key,
                                                 UploadId=upload_id, PartNumber=number,
                                                 Body=data, ContentMD5=_b64(md5))
                if reply["ETag"].strip('"') != md5.hex():
                    raise ChecksumMismatch(f"S3 part {number} of {key}: ETag {reply['ETag']}, "
                                           f"expected {md5.hex()}")
                parts.append({"ETag": reply["ETag"], "PartNumber": number})
            if whole.hexdigest() != source.sha256:
                raise ChecksumMismatch(f"source of {key} changed since it was hashed")
            self._client.complete_multipart_upload(Bucket=self.bucket, Key=key,
                                                   UploadId=upload_id,
                                                   MultipartUpload={"Parts": parts})
        except BaseException:
            try:
                self._client.abort_multipart_upload(Bucket=self.bucket, Key=key,
                                                    UploadId=upload_id)
            except Exception:
                pass
            raise
        return f'"{hashlib.md5(b"".join(digests)).hexdigest()}-{len(digests)}"'

    def _verify(self, key: str, source: Source, head: dict, etag: str) -> None:
        size = head.get("ContentLength")
        stored_sha = head.get("Metadata", {}).get("sha256")
        if size != source.size or stored_sha != source.sha256:
            raise ChecksumMismatch(f"S3 object {key}: {size} bytes, sha256 {stored_sha}; "
                                   f"uploaded {source.size} bytes, sha256 {source.sha256}")
        if head.get("ETag") == etag:
            return
        # Not an MD5 ETag (e.g. SSE-KMS): read the object back and hash it.
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"]
            digest, n = sha256_stream(body)
        except Exception as e:
            raise self._error(f"read-back of {key}", e) from None
        if n != source.size or digest != source.sha256:
            raise ChecksumMismatch(f"S3 object {key} reads back as {n} bytes sha256 {digest}; "
                                   f"uploaded {source.size} bytes sha256 {source.sha256}")

    def read_range(self, key: str, start: int, length: int) -> bytes:
        if length <= 0:
            return b""
        try:
            reply = self._reader.get_object(Bucket=self.bucket, Key=key,
                                            Range=f"bytes={start}-{start + length - 1}")
            data = reply["Body"].read()
        except Exception as e:
            raise self._error(f"GET {key} bytes {start}-{start + length - 1}", e) from None
        if len(data) != length:
            raise ArchiverError(f"S3 object {key}: got {len(data)} bytes at {start}, "
                                f"expected {length}")
        return data

    def read_all(self, key: str) -> bytes:
        try:
            return self._reader.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except Exception as e:
            raise self._error(f"GET {key}", e) from None

    def delete(self, keys: list[str]) -> None:
        try:
            for i in range(0, len(keys), 1000):
                batch = [{"Key": k} for k in keys[i:i + 1000]]
                reply = self._client.delete_objects(Bucket=self.bucket,
                                                    Delete={"Objects": batch, "Quiet": True})
                errors = reply.get("Errors") or []
                if errors:
                    e = errors[0]
                    raise ArchiverError(f"S3 delete of {e.get('Key')} failed: {e.get('Code')} "
                                        f"{e.get('Message', '')}")
        except ArchiverError:
            raise
        except Exception as e:
            raise self._error("delete", e) from None

    def list(self, prefix: str) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                           Prefix=prefix)
            for page in pages:
                out.extend((o["Key"], o["Size"]) for o in page.get("Contents", ()))
        except Exception as e:
            raise self._error(f"list {prefix}", e) from None
        return sorted(out)
