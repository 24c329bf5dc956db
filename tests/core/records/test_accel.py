"""core/records/accel.py: PYGGY_PURE_PYTHON selects the Python twins in a fresh process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = ("from pyggy.core.records import accel, iggy_batch, kafka_batch; "
         "print(accel.IMPLEMENTATION, iggy_batch.WALKS is accel.WALKS is kafka_batch.WALKS)")


@pytest.mark.parametrize(("value", "want"), [("1", "python"), ("", None)])
def test_pure_python_is_selected_by_the_environment(value: str, want: str | None) -> None:
    env = {**os.environ, "PYGGY_PURE_PYTHON": value}
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                          text=True, timeout=60, check=True)
    implementation, shared = done.stdout.split()
    assert shared == "True"
    if want is not None:
        assert implementation == want
    else:  # unset: the extension when it was built (required under CI)
        try:
            from pyggy.core.records import _walks  # noqa: F401
            built = True
        except ImportError:
            built = False
        assert implementation == ("c" if built else "python")
        if os.environ.get("CI"):
            assert implementation == "c", "the C walks are not built (setup.py, libxxhash-dev)"


def test_a_build_older_than_the_source_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """An extension built from an older _walks.c (an editable install not rebuilt) lacks
    functions the record modules call: the twins run instead of failing at the first batch.
    A stand-in module plays that stale build (one cannot be compiled here on demand)."""
    import types

    import pyggy.core.records
    from pyggy.core.records import accel

    stale = types.ModuleType("pyggy.core.records._walks")
    stale.iggy_validate = lambda *args: None  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pyggy.core.records._walks", stale)
    monkeypatch.setattr(pyggy.core.records, "_walks", stale, raising=False)
    monkeypatch.delenv("PYGGY_PURE_PYTHON", raising=False)
    walks, why = accel._load()
    assert walks is None
    assert "older than core/records/_walks.c" in why  # the server logs this as a warning
