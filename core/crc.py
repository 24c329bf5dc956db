"""CRC-32C (Castagnoli): `crc32c(data, value=0)`, the one function pyggy takes from the
`crc32c` package.

The package's `__init__` looks its own version up through `importlib.metadata`, which costs
a cold start tens of milliseconds (it imports `email`, `csv`, `zipfile`, and scans the
installed distributions). The function itself lives in the package's C extension
`crc32c._crc32c`, loaded here by its file without running the `__init__`; if the package is
laid out differently, the ordinary import is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crc32c import crc32c as crc32c
else:
    def _load():
        import importlib.machinery
        import importlib.util
        import sys
        from pathlib import Path

        name = "crc32c._crc32c"
        if name in sys.modules:
            return sys.modules[name].crc32c
        spec = importlib.util.find_spec("crc32c")  # finds the package, does not import it
        for folder in (spec.submodule_search_locations or []) if spec else []:
            for suffix in importlib.machinery.EXTENSION_SUFFIXES:
                path = Path(folder) / f"_crc32c{suffix}"
                if path.is_file():
                    loader = importlib.machinery.ExtensionFileLoader(name, str(path))
                    ext = importlib.util.spec_from_file_location(name, path, loader=loader)
                    assert ext is not None
                    module = importlib.util.module_from_spec(ext)
                    loader.exec_module(module)
                    return module.crc32c
        from crc32c import crc32c

        return crc32c

    crc32c = _load()
    del _load
