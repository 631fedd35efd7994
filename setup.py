"""Only the Cython extension lives here; metadata is in pyproject.toml.

RELAY_BUILD_EXTENSION=no   skip the extension (pure-Python twin only)
RELAY_BUILD_EXTENSION=yes  a failed build is fatal
(unset)                    best effort: the extension is optional
RELAY_CYTHON_TRACE=1       compile with line tracing (coverage of the .pyx)
RELAY_CYTHON_ANNOTATE=1    write the HTML annotation next to the .pyx
"""

import os

from setuptools import setup

mode = os.environ.get("RELAY_BUILD_EXTENSION", "")
ext_modules = []
if mode != "no":
    try:
        from Cython.Build import cythonize

        trace = os.environ.get("RELAY_CYTHON_TRACE") == "1"
        macros = [("CYTHON_TRACE", "1"), ("CYTHON_TRACE_NOGIL", "1")] if trace else []
        from setuptools import Extension

        ext = Extension(
            "relay._fastpath",
            ["relay/_fastpath.pyx"],
            define_macros=macros,
            extra_compile_args=["-O3"],
            optional=(mode != "yes"),
        )
        ext_modules = cythonize(
            [ext],
            compiler_directives={"language_level": "3", "linetrace": trace},
            annotate=os.environ.get("RELAY_CYTHON_ANNOTATE") == "1",
        )
    except ImportError:
        if mode == "yes":
            raise

setup(ext_modules=ext_modules)
