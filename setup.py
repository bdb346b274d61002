"""Build the Cython kernels; all metadata lives in pyproject.toml.

OFFHEAP_DEBUG_BUILD=1 turns bounds checking back on in every kernel.
"""
import os

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

debug = os.environ.get("OFFHEAP_DEBUG_BUILD") == "1"

extensions = [
    Extension(
        "offheap._scan",
        ["src/offheap/_scan.pyx"],
        include_dirs=[numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O3"] if not debug else ["-O0", "-g"],
    )
]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={"boundscheck": debug, "wraparound": debug} if debug else {},
    )
)
