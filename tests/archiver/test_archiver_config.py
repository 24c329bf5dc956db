"""The archiver's config keys are Iggy's, in TOML and as IGGY_* variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyggy.archiving import make_archiver, setup
from pyggy.config import ConfigError, load_config


def test_iggy_keys_in_toml_and_env(tmp_path: Path) -> None:
    toml = tmp_path / "pyggy.toml"
    toml.write_text("""
[data_maintenance.archiver]
enabled = true
kind = "s3"

[data_maintenance.archiver.s3]
key_id = "id"
key_secret = "secret"
bucket = "from-file"
endpoint = "http://127.0.0.1:9000"
region = "us-east-1"
tmp_upload_dir = "/tmp/x"

[data_maintenance.messages]
archiver_enabled = true

[data_maintenance.state]
archiver_enabled = true
overwrite = false
interval = "5 m"
""")
    config = load_config(str(toml), {"IGGY_DATA_MAINTENANCE_ARCHIVER_S3_BUCKET": "from-env",
                                     "IGGY_DATA_MAINTENANCE_ARCHIVER_DISK_PATH": "/srv/a"})
    dm = config.data_maintenance
    assert (dm.archiver.enabled, dm.archiver.kind) == (True, "s3")
    s3 = dm.archiver.s3
    assert (s3.key_id, s3.key_secret, s3.bucket, s3.endpoint, s3.region, s3.tmp_upload_dir) == (
        "id", "secret", "from-env", "http://127.0.0.1:9000", "us-east-1", "/tmp/x")
    assert dm.archiver.disk.path == "/srv/a"
    assert dm.messages.archiver_enabled and dm.state.archiver_enabled
    assert (dm.state.overwrite, dm.state.interval) == (False, 300.0)
    assert make_archiver(config).describe() == "s3://from-env at http://127.0.0.1:9000"


def test_defaults_are_iggys_and_off() -> None:
    config = load_config(None, {})
    dm = config.data_maintenance
    assert not dm.archiver.enabled and dm.archiver.kind == "disk"
    assert dm.archiver.disk.path == "local_data/archive"
    s3 = dm.archiver.s3
    assert (s3.key_id, s3.key_secret, s3.bucket, s3.endpoint, s3.region, s3.tmp_upload_dir) == (
        "123", "secret", "iggy", "http://localhost:9000", "eu-west-1", "local_data/s3_tmp")
    assert not dm.messages.archiver_enabled and not dm.state.archiver_enabled
    assert dm.state.overwrite and dm.state.interval == 60.0
    assert setup(config) is None


@pytest.mark.parametrize("env", [
    {"IGGY_DATA_MAINTENANCE_ARCHIVER_KIND": "tape"},
    {"IGGY_DATA_MAINTENANCE_ARCHIVER_S3_ENDPOINT": "localhost:9000"},
    {"IGGY_DATA_MAINTENANCE_STATE_INTERVAL": "0 s"},
    {"IGGY_DATA_MAINTENANCE_ARCHIVER_ENABLED": "true", "IGGY_DATA_MAINTENANCE_ARCHIVER_KIND": "s3",
     "IGGY_DATA_MAINTENANCE_ARCHIVER_S3_BUCKET": ""},
])
def test_invalid_values_are_config_errors(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        load_config(None, env)
