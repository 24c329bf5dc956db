#!/usr/bin/env bash
# Create or refresh the test environments (idempotent; a stamp file skips work when up to date):
#   .venv         pyggy (editable) + its [test] extras, apache-iggy 0.9.0 among them
#   .venv-iggy08  apache-iggy==0.8.0 alone (classic protocol client; conflicts with 0.9.0)
# Downloads are cached in ${XDG_CACHE_HOME:-~/.cache}/pyggy/pip. Set PYTHON to pick the interpreter.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export PIP_CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/pyggy/pip"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_PROGRESS_BAR=off
IGGY08_REQUIREMENT="apache-iggy==0.8.0"

is_py311() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }

PY=""
for candidate in ${PYTHON:-} python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null && is_py311 "$candidate"; then PY=$candidate; break; fi
done
if [[ -z $PY ]]; then
    echo "install-test-deps: need Python >= 3.11 (set PYTHON=...)" >&2
    exit 1
fi

# ensure_venv DIR STAMP PIP_ARGS...: (re)create DIR and pip install unless DIR/.pyggy-stamp == STAMP
ensure_venv() {
    local dir=$1 stamp=$2
    shift 2
    if [[ -x $dir/bin/python ]] && ! is_py311 "$dir/bin/python"; then
        echo "==> $dir: Python too old, recreating"
        rm -rf "$dir"
    fi
    if [[ -x $dir/bin/python && -f $dir/.pyggy-stamp && "$(cat "$dir/.pyggy-stamp")" == "$stamp" ]]; then
        echo "==> $dir up to date"
        return
    fi
    [[ -x $dir/bin/python ]] || { echo "==> creating $dir with $PY"; "$PY" -m venv "$dir"; }
    echo "==> pip install $* into $dir"
    "$dir/bin/python" -m pip install --quiet "$@"
    printf '%s' "$stamp" >"$dir/.pyggy-stamp"
}

py_version=$("$PY" -c 'import sys; print(sys.version.split()[0])')
project_hash=$(sha256sum pyproject.toml | cut -d' ' -f1)
ensure_venv .venv "py$py_version $project_hash" -e '.[test]'
ensure_venv .venv-iggy08 "py$py_version $IGGY08_REQUIREMENT" "$IGGY08_REQUIREMENT"
