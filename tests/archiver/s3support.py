"""Helpers of the archiver tests. `MotoS3`: a real S3-compatible server, moto's standalone
server (`moto[server]`), as a subprocess on a free loopback port. It can be stopped and started
again on the same port (its objects live in memory: a restart starts empty, as a wiped S3
would)."""

from __future__ import annotations

import http.client
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from pyggy.testing import free_port

KEY_ID, KEY_SECRET, REGION = "pyggy-test", "pyggy-test-secret", "eu-west-1"


class MotoS3:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=KEY_ID,
                            aws_secret_access_key=KEY_SECRET, region_name=REGION,
                            config=Config(s3={"addressing_style": "path"},
                                          retries={"max_attempts": 1}))

    def start(self, timeout: float = 20.0) -> MotoS3:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / "moto.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=2).close()
                return self
            except urllib.error.HTTPError:  # it answers: ready
                return self
            except (OSError, http.client.HTTPException):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto server did not start:\n"
                                       + (self.workdir / "moto.log").read_text()) from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name,
                                    CreateBucketConfiguration={"LocationConstraint": REGION})

    def objects(self, bucket: str, prefix: str = "") -> dict[str, int]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                        Prefix=prefix)
        return {o["Key"]: o["Size"] for page in pages for o in page.get("Contents", ())}

    def read(self, bucket: str, key: str) -> bytes:
        return self.client().get_object(Bucket=bucket, Key=key)["Body"].read()



def s3_env(s3: MotoS3, bucket: str, tmp: Path) -> dict[str, str]:
    """pyggy's environment for the s3 archiver at `s3`, with quick passes for tests."""
    return {
        "IGGY_DATA_MAINTENANCE_ARCHIVER_ENABLED": "true",
        "IGGY_DATA_MAINTENANCE_ARCHIVER_KIND": "s3",
        "IGGY_DATA_MAINTENANCE_ARCHIVER_S3_ENDPOINT": s3.endpoint,
        "IGGY_DATA_MAINTENANCE_ARCHIVER_S3_BUCKET": bucket,
        "IGGY_DATA_MAINTENANCE_ARCHIVER_S3_KEY_ID": KEY_ID,
        "IGGY_DATA_MAINTENANCE_ARCHIVER_S3_KEY_SECRET": KEY_SECRET,
        "IGGY_DATA_MAINTENANCE_ARCHIVER_S3_REGION": REGION,
        "IGGY_DATA_MAINTENANCE_ARCHIVER_S3_TMP_UPLOAD_DIR": str(tmp / "s3_tmp"),
        **QUICK,
    }


QUICK = {
    "IGGY_DATA_MAINTENANCE_MESSAGES_ARCHIVER_ENABLED": "true",
    "IGGY_DATA_MAINTENANCE_MESSAGES_INTERVAL": "1 s",
    "IGGY_DATA_MAINTENANCE_STATE_ARCHIVER_ENABLED": "true",
    "IGGY_DATA_MAINTENANCE_STATE_INTERVAL": "1 s",
}


def disk_env(path: Path) -> dict[str, str]:
    return {
        "IGGY_DATA_MAINTENANCE_ARCHIVER_ENABLED": "true",
        "IGGY_DATA_MAINTENANCE_ARCHIVER_KIND": "disk",
        "IGGY_DATA_MAINTENANCE_ARCHIVER_DISK_PATH": str(path),
        **QUICK,
    }
