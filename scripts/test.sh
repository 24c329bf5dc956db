#!/usr/bin/env bash
# Install test dependencies, run `ruff check .` and the type checker (mypy through
# scripts/typecheck.py), then pytest (arguments are passed to pytest).
#
#   bash scripts/test.sh              everything (CI): all tiers on .venv (Python 3.11), then
#                                     the unit tier again on .venv-313 (Python 3.13)
#   bash scripts/test.sh -m unit      the quick tier only (in-process tests, about a minute)
#   bash scripts/test.sh -m "not interop and not slow"    all but the real-Kafka and slow tiers
#
# Tiers (unit, e2e, slow, interop) are assigned in conftest.py at the repository root; each
# pytest run ends with the time each tier took.
# Exit status: non-zero if ruff, the type checker or a pytest run fails. Pytest's exit 5 ("no tests collected") is
# a failure too: this project has tests, so collecting none means something is broken. Without
# Python 3.13 the 3.13 run is skipped with a warning, except under CI (`CI` set), where it fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

started=$SECONDS
bash scripts/install-test-deps.sh
export PYGGY_IGGY08_PYTHON="${PYGGY_IGGY08_PYTHON:-$PWD/.venv-iggy08/bin/python}"
echo "==> dependencies ready after $((SECONDS - started)) s"

echo "==> ruff check ."
lint_rc=0
.venv/bin/ruff check . || lint_rc=$?

echo "==> mypy (scripts/typecheck.py)"
type_rc=0
t0=$SECONDS
.venv/bin/python scripts/typecheck.py || type_rc=$?
echo "==> mypy: exit $type_rc after $((SECONDS - t0)) s"

# run_pytest LABEL PYTHON ARGS...: one pytest run, timed; exit 5 counts as a failure
run_pytest() {
    local label=$1 python=$2 rc=0 t0=$SECONDS
    shift 2
    echo "==> pytest${*:+ $*} ($label)"
    "$python" -m pytest "$@" || rc=$?
    echo "==> pytest ($label): exit $rc after $((SECONDS - t0)) s"
    if [[ $rc -eq 5 ]]; then
        echo "test.sh: pytest collected no tests (exit 5); treated as a failure" >&2
        rc=1
    fi
    return "$rc"
}

test_rc=0
run_pytest "Python 3.11, .venv" .venv/bin/python "$@" || test_rc=$?

if [[ $# -eq 0 ]]; then  # the full run (CI) also runs the quick tier on Python 3.13
    if [[ -x .venv-313/bin/python ]]; then
        run_pytest "Python 3.13, .venv-313" .venv-313/bin/python -m unit \
            || test_rc=$?
    elif [[ -n ${CI:-} ]]; then
        echo "test.sh: no .venv-313: python3.13 was not found (install it, or set PYTHON313 to" \
            "its path, then rerun scripts/install-test-deps.sh); failing under CI" >&2
        test_rc=1
    else
        echo "test.sh: no .venv-313 (python3.13 not found): the Python 3.13 unit tier is" \
            "skipped" >&2
    fi
fi

echo "==> test.sh: $((SECONDS - started)) s in all"
if [[ $lint_rc -ne 0 ]]; then
    echo "test.sh: ruff check failed (exit $lint_rc)" >&2
fi
if [[ $type_rc -ne 0 ]]; then
    echo "test.sh: the type checker found errors (exit $type_rc; listed above)" >&2
fi
if [[ $test_rc -ne 0 ]]; then
    exit "$test_rc"
fi
exit $((lint_rc != 0 || type_rc != 0))
