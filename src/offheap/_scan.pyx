# cython: language_level=3
"""Cython kernels of offheap, one include per family.

Each family lives in its own ``.pxi`` (strings, pattern matching, heap walking) and
has a pure-Python twin with the same functions in ``_scan_py.py``. Kernels take
``const unsigned char[::1]`` views (read-only mmaps need ``const``), run their loops
in ``noexcept nogil`` helpers and return numpy arrays.
"""

include "_simd.pxi"
include "_strings.pxi"
include "_match.pxi"
include "_heap.pxi"
include "_templates.pxi"
include "_attribute.pxi"
