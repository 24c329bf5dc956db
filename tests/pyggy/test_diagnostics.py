"""The diagnostic snapshot's contents (pyggy/diagnostics.py): sections, redaction, compression,
one collection at a time, a failing section left out, the bounded log tail."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import zipfile
from pathlib import Path

import pytest
from pyggy.core.errors import ErrorCode, IggyError

from pyggy.config import iter_settings, load_config
from pyggy.diagnostics import REDACTED, Diagnostics, redacted_config
from pyggy.logtail import LOG_LINE_MAX, LogTail

ALL = ("filesystem_overview", "process_list", "resource_usage", "server_logs", "server_config",
       "test")
SECRETS = {"IGGY_DATA_MAINTENANCE_ARCHIVER_S3_KEY_SECRET": "s3-Secret-Value-9",
           "IGGY_DATA_MAINTENANCE_ARCHIVER_S3_KEY_ID": "AKIA-KEY-ID-7",
           "IGGY_TELEMETRY_TRACES_ENDPOINT": "http://jaeger:Pass-Word-5@collector:4318/v1/traces"}


def config_for(data: Path, **env: str):
    return load_config(None, {"IGGY_SYSTEM_PATH": str(data), **env})


def unzip(archive: bytes) -> dict[str, str]:
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        return {name: z.read(name).decode() for name in z.namelist()}


def test_config_is_the_effective_toml_without_secrets(tmp_path: Path) -> None:
    config = config_for(tmp_path, IGGY_TCP_ADDRESS="127.0.0.1:18090", **SECRETS)
    text = redacted_config(config)
    for secret in ("s3-Secret-Value-9", "AKIA-KEY-ID-7", "Pass-Word-5", "jaeger"):
        assert secret not in text
    assert f'key_secret = "{REDACTED}"' in text
    assert f'endpoint = "http://{REDACTED}@collector:4318/v1/traces"' in text
    # the file loads back into the same configuration, the redacted values aside
    (tmp_path / "snapshot.toml").write_text(text)
    again = load_config(str(tmp_path / "snapshot.toml"), {})
    redacted = {"data_maintenance.archiver.s3.key_secret", "data_maintenance.archiver.s3.key_id",
                "telemetry.traces.endpoint"}
    theirs = {s.key: s.default for s in iter_settings(again)}
    ours = {s.key: s.default for s in iter_settings(config)}
    assert {k: v for k, v in theirs.items() if k not in redacted} == \
        {k: v for k, v in ours.items() if k not in redacted}
    assert theirs["tcp.address"] == "127.0.0.1:18090"


def test_every_section(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "streams" / "1").mkdir(parents=True)
    (data / "streams" / "1" / "00000.log").write_bytes(b"x" * 123)
    tail = LogTail()
    tail.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    tail.emit(logging.LogRecord("pyggy", logging.INFO, __file__, 1, "tcp listening", None, None))
    source = Diagnostics(config_for(data, **SECRETS), tail)
    stats = {"streams_count": 3, "messages_count": 42}
    files = unzip(asyncio.run(source.snapshot(ALL, "deflated", stats)))
    assert sorted(files) == sorted(f"{name}.txt" for name in ALL)
    assert "123\t" in files["filesystem_overview.txt"]
    assert "streams/1/00000.log" in files["filesystem_overview.txt"]
    assert f"pid {os.getpid()}" in files["process_list.txt"]
    assert "streams_count: 3" in files["resource_usage.txt"]
    assert "MemTotal" in files["resource_usage.txt"]
    assert files["server_logs.txt"] == "INFO tcp listening\n"
    assert files["server_config.txt"] == redacted_config(config_for(data, **SECRETS))
    assert files["test.txt"] == "test\n"


@pytest.mark.parametrize(("name", "method"), [
    ("stored", zipfile.ZIP_STORED), ("deflated", zipfile.ZIP_DEFLATED),
    ("bzip2", zipfile.ZIP_BZIP2), ("lzma", zipfile.ZIP_LZMA)])
def test_zip_methods(tmp_path: Path, name: str, method: int) -> None:
    archive = asyncio.run(Diagnostics(config_for(tmp_path)).snapshot(["test"], name, {}))
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        assert [i.compress_type for i in z.infolist()] == [method]
        assert z.read("test.txt") == b"test\n"


@pytest.mark.parametrize("name", ["zstd", "xz"])
def test_zip_methods_python_cannot_write_are_unavailable(tmp_path: Path, name: str) -> None:
    with pytest.raises(IggyError) as e:
        asyncio.run(Diagnostics(config_for(tmp_path)).snapshot(["test"], name, {}))
    assert e.value.code == ErrorCode.FEATURE_UNAVAILABLE


def test_one_snapshot_at_a_time(tmp_path: Path) -> None:
    source = Diagnostics(config_for(tmp_path))

    async def both():
        return await asyncio.gather(source.snapshot(["process_list"], "stored", {}),
                                    source.snapshot(["test"], "stored", {}),
                                    return_exceptions=True)

    first, second = asyncio.run(both())
    assert "process_list.txt" in unzip(first)
    assert isinstance(second, IggyError)
    assert second.code == ErrorCode.SNAPSHOT_FILE_COMPLETION_FAILED
    assert unzip(asyncio.run(source.snapshot(["test"], "stored", {}))) == {"test.txt": "test\n"}


def test_a_section_that_cannot_be_read_is_left_out(tmp_path: Path, caplog) -> None:
    source = Diagnostics(config_for(tmp_path / "never-created"))  # no data directory
    with caplog.at_level(logging.ERROR, "pyggy.diagnostics"):
        files = unzip(asyncio.run(source.snapshot(["filesystem_overview", "test"], "stored",
                                                  {})))
    assert files == {"test.txt": "test\n"}
    assert "could not capture filesystem_overview" in caplog.text


def test_the_log_tail_is_bounded() -> None:
    tail = LogTail(lines=3)
    for i in range(10):
        tail.emit(logging.LogRecord("x", logging.INFO, __file__, 1, f"line {i}", None, None))
    tail.emit(logging.LogRecord("x", logging.INFO, __file__, 1, "y" * 100_000, None, None))
    lines = tail.text().splitlines()
    assert lines[:2] == ["line 8", "line 9"] and len(lines[2]) == LOG_LINE_MAX


def test_the_config_text_is_rendered_at_the_first_snapshot_not_at_start(tmp_path: Path) -> None:
    source = Diagnostics(config_for(tmp_path, **SECRETS))
    assert "config_text" not in vars(source)  # a start renders nothing
    files = unzip(asyncio.run(source.snapshot(["server_config"], "stored", {})))
    assert files["server_config.txt"] == redacted_config(config_for(tmp_path, **SECRETS))
