"""The tier rule of conftest.py (repository root): one tier per test, by path and fixtures,
and a unit test cannot start a server."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest

from pyggy.testing import PyggyServer

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("root_conftest", ROOT / "conftest.py")
tiers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tiers)


def item(nodeid: str, *fixtures: str) -> SimpleNamespace:
    return SimpleNamespace(path=ROOT / nodeid.split("::")[0], nodeid=nodeid,
                           fixturenames=["request", *fixtures])


@pytest.mark.parametrize(("nodeid", "fixtures", "tier"), [
    ("tests/core/records/test_kafka_batch.py::test_x", (), "unit"),
    ("tests/kafka_wire/protocol/test_kafka_codec_roundtrip.py::test_x[a]", (), "unit"),
    ("tests/native_wire/codec/test_codec_frames.py::test_x", (), "unit"),
    ("tests/pyggy/test_cli.py::test_x", ("pyggy_server",), "e2e"),  # through a fixture
    ("tests/native_wire/sdk/test_sdk_users.py::test_x", ("root", "pyggy_server"), "e2e"),
    ("tests/native_wire/test_bad_input.py::test_x", ("server",), "e2e"),  # by path
    ("tests/archiver/test_s3_archiver.py::test_x", ("moto_s3",), "e2e"),
    ("tests/core/faults/test_segment_faults.py::test_x", (), "slow"),
    ("interop_tests/test_differential.py::test_x[a]", ("brokers",), "interop"),
])
def test_the_rule(nodeid: str, fixtures: tuple[str, ...], tier: str) -> None:
    assert tiers.tier_of(item(nodeid, *fixtures)) == tier


def test_this_file_is_unit(request: pytest.FixtureRequest) -> None:
    marks = [m.name for m in request.node.iter_markers() if m.name in tiers.TIERS]
    assert marks == ["unit"]


def test_a_unit_test_cannot_start_a_server(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="starts a server: it is an e2e test"):
        PyggyServer(tmp_path).start()
