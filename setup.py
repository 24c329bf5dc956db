"""The optional C extension (everything else is in pyproject.toml).

``pyggy.core.records._walks`` needs a C compiler and the xxHash headers (Debian:
``libxxhash-dev``); without them the build is skipped (``optional``) and pyggy runs the
pure-Python twins (README, "C walks").
"""

from setuptools import Extension, setup

setup(ext_modules=[
    Extension("pyggy.core.records._walks", ["core/records/_walks.c"], libraries=["xxhash"],
              extra_compile_args=["-O3"], optional=True),
])
