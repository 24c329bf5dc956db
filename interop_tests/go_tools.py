"""The Go toolchain for the interop suite: franz-go's own `pkg/kgo` integration tests and our Go
client program (interop_tests/go_client: sarama + franz-go).

Everything Go downloads or builds lives under `${XDG_CACHE_HOME:-~/.cache}/pyggy/go` (`mod/` =
GOMODCACHE, `build/` = GOCACHE), so CI can cache it; modules come from the Go module proxy.
Nothing is copied into the repository: franz-go's module source is copied from the module cache
into a temporary directory, where its test binary is built.

`python -m interop_tests.go_tools download` fills the caches (scripts/install-test-deps.sh).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from interop_tests.kafka_broker.broker import BrokerUnavailable, cache_root

HERE = Path(__file__).resolve().parent
GO_CLIENT = HERE / "go_client"
# franz-go whose pkg/kgo tests are run; keep in step with interop_tests/go_client/go.mod
FRANZ_GO_MODULE = "github.com/twmb/franz-go"
FRANZ_GO_VERSION = "v1.22.3"


def go_cache() -> Path:
    return cache_root() / "go"


def go_env(**extra: str) -> dict[str, str]:
    """The environment for `go`: caches under ~/.cache/pyggy/go, few CPUs, module mode."""
    env = dict(os.environ)
    env.update(
        GOMODCACHE=str(go_cache() / "mod"),
        GOCACHE=str(go_cache() / "build"),
        GOFLAGS="",
        GOMAXPROCS="2",
        GOWORK="off",
        CGO_ENABLED="0",
    )
    env.update(extra)
    return env


def go_binary() -> str:
    go = shutil.which("go")
    if go is None:
        raise BrokerUnavailable("no Go toolchain: `go` not found on PATH")
    return go


def _go(args: Sequence[str], cwd: Path | None = None, timeout: float = 900.0) -> str:
    proc = subprocess.run(
        [go_binary(), *args], cwd=cwd, env=go_env(), capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise BrokerUnavailable(f"`go {' '.join(args)}` failed ({proc.returncode}):\n{tail}")
    return proc.stdout


def module_dir(module: str = FRANZ_GO_MODULE, version: str = FRANZ_GO_VERSION) -> Path:
    """`go mod download` one module version (offline once cached); its directory in the cache."""
    info = json.loads(_go(["mod", "download", "-json", f"{module}@{version}"], cwd=go_cache()))
    if info.get("Error"):
        raise BrokerUnavailable(f"go mod download {module}@{version}: {info['Error']}")
    return Path(info["Dir"])


def build_kgo_tests(workdir: Path) -> Path:
    """franz-go's pkg/kgo test binary, built in a writable copy of the module source under
    `workdir` (the module cache is read-only). Returns the binary; it runs in pkg/kgo."""
    go_cache().mkdir(parents=True, exist_ok=True)
    src = workdir / f"franz-go@{FRANZ_GO_VERSION}"
    if not src.exists():
        shutil.copytree(module_dir(), src)
        for path in [src, *src.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
    binary = src / "pkg" / "kgo" / "kgo.test"
    if not binary.exists():
        _go(
            ["test", "-mod=mod", "-trimpath", "-p", "1", "-c", "-o", str(binary), "./pkg/kgo"],
            cwd=src,
        )
    return binary


def build_go_client(workdir: Path) -> Path:
    """interop_tests/go_client built into `workdir` (module downloads and builds are cached)."""
    binary = workdir / "go-client"
    if not binary.exists():
        _go(["build", "-mod=readonly", "-trimpath", "-o", str(binary), "."], cwd=GO_CLIENT)
    return binary


def download() -> None:
    """Fill the module cache (and the build cache) for both uses; fails loudly."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="pyggy-go-") as tmp:
        build_kgo_tests(Path(tmp))
        build_go_client(Path(tmp))


def main(argv: Sequence[str] = ()) -> int:
    args = list(argv) or sys.argv[1:] or ["download"]
    if args[0] == "download":
        started = time.monotonic()
        download()
        print(f"go modules and builds cached in {go_cache()} ({time.monotonic() - started:.1f} s)")
        return 0
    print(f"usage: {sys.argv[0]} [download]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
