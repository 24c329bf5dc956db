#!/usr/bin/env bash
# Install test dependencies, run `ruff check .`, then pytest (arguments are passed to pytest).
# Exit status: non-zero if ruff or pytest fails. Pytest's exit 5 ("no tests collected") is a
# failure too: this project has tests, so collecting none means something is broken.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install-test-deps.sh
export PYGGY_IGGY08_PYTHON="${PYGGY_IGGY08_PYTHON:-$PWD/.venv-iggy08/bin/python}"

echo "==> ruff check ."
lint_rc=0
.venv/bin/ruff check . || lint_rc=$?

echo "==> pytest $*"
test_rc=0
.venv/bin/python -m pytest "$@" || test_rc=$?

if [[ $test_rc -eq 5 ]]; then
    echo "test.sh: pytest collected no tests (exit 5); treated as a failure" >&2
    test_rc=1
fi
if [[ $lint_rc -ne 0 ]]; then
    echo "test.sh: ruff check failed (exit $lint_rc)" >&2
fi
if [[ $test_rc -ne 0 ]]; then
    exit "$test_rc"
fi
exit $((lint_rc != 0))
