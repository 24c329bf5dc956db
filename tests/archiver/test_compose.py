"""compose.yaml wires pyggy's s3 archiver to its MinIO service with real config keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyggy.config import NON_KEY_ENV, env_settings

ROOT = Path(__file__).resolve().parents[2]


def test_compose_archives_to_minio() -> None:
    yaml = pytest.importorskip("yaml")
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    env = services["pyggy"]["environment"]
    assert set(env) <= set(env_settings()) | NON_KEY_ENV
    assert env["IGGY_DATA_MAINTENANCE_ARCHIVER_ENABLED"] == "true"
    assert env["IGGY_DATA_MAINTENANCE_ARCHIVER_KIND"] == "s3"
    assert env["IGGY_DATA_MAINTENANCE_ARCHIVER_S3_ENDPOINT"] == "http://minio:9000"
    minio = services["minio"]["environment"]
    assert env["IGGY_DATA_MAINTENANCE_ARCHIVER_S3_KEY_ID"] == minio["MINIO_ROOT_USER"]
    assert env["IGGY_DATA_MAINTENANCE_ARCHIVER_S3_KEY_SECRET"] == minio["MINIO_ROOT_PASSWORD"]
    bucket = env["IGGY_DATA_MAINTENANCE_ARCHIVER_S3_BUCKET"]
    assert f"local/{bucket}" in services["minio-init"]["entrypoint"][-1]
    assert "minio-init" in services["pyggy"]["depends_on"]


def test_compose_scrapes_metrics_into_grafana() -> None:
    yaml = pytest.importorskip("yaml")
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    env = services["pyggy"]["environment"]
    assert env["IGGY_HTTP_ENABLED"] == "true"
    port = env["IGGY_HTTP_ADDRESS"].rsplit(":", 1)[1]
    assert f"{port}:{port}" in services["pyggy"]["ports"]
    scrape = yaml.safe_load((ROOT / "deploy/prometheus.yml").read_text())["scrape_configs"][0]
    assert scrape["static_configs"][0]["targets"] == [f"pyggy:{port}"]
    assert scrape["metrics_path"] == "/metrics"
    assert scrape["basic_auth"] == {"username": env["IGGY_ROOT_USERNAME"],
                                    "password": env["IGGY_ROOT_PASSWORD"]}
    assert "./deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in \
        services["prometheus"]["volumes"]
    mounts = " ".join(services["grafana"]["volumes"])
    assert "./deploy/grafana/dashboards:" in mounts and "./deploy/grafana/provisioning:" in mounts
    assert (ROOT / "deploy/grafana/dashboards/pyggy.json").is_file()
