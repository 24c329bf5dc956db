"""Type-check pyggy with mypy, each module named as installed and read from its real file.

The source folders install under the `pyggy` namespace through pyproject.toml's
`[tool.setuptools] package-dir` (`pyggy.core` is `core/`, ...). mypy does not follow that
mapping (`mypy -p pyggy` run in the repository finds no `pyggy.core`), so this script hands mypy
every module of every package pyproject.toml lists, under its installed name and with the path
of its file here; errors therefore name the files you edit. The checker's settings live in
`[tool.mypy]` of pyproject.toml; arguments are mypy options (e.g. `--strict`, `--no-incremental`).

    .venv/bin/python scripts/typecheck.py

Exit status: 0 no error, 1 errors found, 2 mypy could not run (bad option, syntax error).
"""

from __future__ import annotations

import os
import sys
import time
import tomllib
from pathlib import Path

from mypy import util
from mypy.fscache import FileSystemCache
from mypy.main import process_options, run_build
from mypy.modulefinder import BuildSource

ROOT = Path(__file__).resolve().parent.parent


def package_folder(package: str, package_dir: dict[str, str]) -> Path:
    """The folder setuptools installs `package` from (the longest mapped prefix wins)."""
    parts = package.split(".")
    for cut in range(len(parts), 0, -1):
        prefix = ".".join(parts[:cut])
        if prefix in package_dir:
            return ROOT / package_dir[prefix] / Path(*parts[cut:])
    return ROOT / Path(*parts)


def sources() -> list[BuildSource]:
    """One build source per module of the packages pyproject.toml installs."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = []
    for package in setuptools["packages"]:
        folder = package_folder(package, setuptools.get("package-dir", {}))
        # a .pyi alone is the stub of a compiled module (core/records/_walks.pyi)
        stubs = [p for p in folder.glob("*.pyi") if not p.with_suffix(".py").exists()]
        for path in sorted([*folder.glob("*.py"), *stubs]):
            module = package if path.stem == "__init__" else f"{package}.{path.stem}"
            found.append(BuildSource(str(path.relative_to(ROOT)), module))
    return found


def main(args: list[str]) -> int:
    t0 = time.time()
    fscache = FileSystemCache()
    targets, options = process_options(args, require_targets=False, fscache=fscache)
    if targets:
        print("typecheck.py: the modules come from pyproject.toml; pass options only",
              file=sys.stderr)
        return 2
    modules = sources()
    _result, messages, blockers = run_build(modules, options, fscache, t0, sys.stdout, sys.stderr)
    formatter = util.FancyFormatter(sys.stdout, sys.stderr, options.hide_error_codes)
    n_errors, _notes, n_files = util.count_stats(messages)
    if n_errors or blockers:
        print(formatter.format_error(n_errors, n_files, len(modules), blockers=blockers,
                                     use_color=options.color_output))
        return 2 if blockers else 1
    print(formatter.format_success(len(modules), options.color_output))
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)  # error paths are relative to the repository
    sys.exit(main(sys.argv[1:]))
